//! In-memory adapters of the ports: the reference the contract suite is checked against,
//! and fast fakes for use-case tests. Nothing here survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use orderly_core::cursor;
use orderly_core::error::StoreError;
use orderly_core::events::DomainEvent;
use orderly_core::model::{Order, OrderFilter, Page, Product, ProductSpec, Timestamp};
use orderly_core::money::CURRENCY;
use orderly_core::ports::{
    Clock, DeadLetter, EventOutbox, IdempotencyBegin, IdempotencyStore, Inventory, MAX_RECEIVES,
    Message, NackOutcome, NewOrder, Notification, NotificationLog, OrderStore, PaymentLedger,
    PaymentState, Queue, QueueDepth, Readiness, ReleaseOutcome, Reservations, ReserveOutcome,
    SagaLog, SeedMode, SeedOutcome, StepRecord, StoredResponse, Transition, TransitionOutcome,
};
use orderly_core::status::OrderStatus;
use orderly_core::types::{IdempotencyKey, OrderId, ProductId};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct IdemRecord {
    fingerprint: String,
    response: Option<StoredResponse>,
    lock_until: Timestamp,
    expires_at: Timestamp,
}

#[derive(Debug, Clone)]
struct QueuedMsg {
    id: u64,
    queue: String,
    body: String,
    receive_count: u32,
    enqueued_at: Timestamp,
    visible_at: Timestamp,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    next_msg: u64,
    messages: Vec<QueuedMsg>,
    /// Moves whenever a message may have become receivable; long polls wait on it.
    queue_version: u64,
    /// Long polls waiting for `queue_version` to move.
    receivers: Vec<Waker>,
    dead: Vec<DeadLetter>,
    /// Events in recording order (the outbox) and how many were published.
    event_log: Vec<DomainEvent>,
    published: usize,
    /// order -> (reserved units per product, released?)
    reservations: HashMap<OrderId, (Vec<(ProductId, u32)>, bool)>,
    payments: HashMap<OrderId, PaymentState>,
    saga: HashMap<OrderId, Vec<StepRecord>>,
    sent: Vec<(Notification, String)>,
    next_seq: i64,
    /// seq -> order; seq grows with every insert, so iteration order is insertion order.
    orders: BTreeMap<i64, Order>,
    seq_of: HashMap<OrderId, i64>,
    events: HashMap<OrderId, Vec<DomainEvent>>,
    /// Processing messages enqueued by `create` (order ids), oldest first.
    queued: Vec<OrderId>,
    products: BTreeMap<ProductId, Product>,
    idempotency: HashMap<String, IdemRecord>,
    api_keys: Vec<orderly_core::access::ApiKeyRecord>,
    /// Webhook endpoints (oldest first), scheduled delivery ids, and the attempt log in
    /// recording order.
    webhook_endpoints: Vec<orderly_core::webhooks::WebhookEndpoint>,
    webhook_deliveries: Vec<orderly_core::webhooks::ScheduledDelivery>,
    webhook_attempts: Vec<orderly_core::webhooks::DeliveryAttempt>,
}

/// All ports in one mutex-guarded state. Queue time stamps come from `clock`.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::with_clock(Arc::new(orderly_core::ports::SystemClock))
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    pub fn with_clock(clock: Arc<dyn Clock>) -> MemoryStore {
        MemoryStore {
            state: Mutex::new(State::default()),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Order ids whose processing message was enqueued, oldest first.
    pub fn queued(&self) -> Vec<OrderId> {
        self.lock().queued.clone()
    }
}

fn push_event(state: &mut State, event: DomainEvent) -> bool {
    let list = state.events.entry(event.order_id).or_default();
    if list.iter().any(|e| e.id == event.id) {
        return false;
    }
    list.push(event.clone());
    state.event_log.push(event);
    true
}

/// Wakes the long polls waiting in `receive`.
fn wake_receivers(state: &mut State) {
    state.queue_version = state.queue_version.wrapping_add(1);
    for w in state.receivers.drain(..) {
        w.wake();
    }
}

fn enqueue(state: &mut State, queue: &str, body: String, at: Timestamp) {
    wake_receivers(state);
    state.next_msg += 1;
    let id = state.next_msg;
    state.messages.push(QueuedMsg {
        id,
        queue: queue.to_owned(),
        body,
        receive_count: 0,
        enqueued_at: at,
        visible_at: at,
        last_error: None,
    });
}

pub use orderly_core::ports::ORDERS_QUEUE;

#[async_trait]
impl OrderStore for MemoryStore {
    async fn create(&self, new: NewOrder) -> Result<(), StoreError> {
        let mut s = self.lock();
        let id = new.order.order_id;
        if s.seq_of.contains_key(&id) {
            return Err(StoreError::Backend(format!("order {id} already exists")));
        }
        if let Some(c) = &new.idempotency {
            let rec = IdemRecord {
                fingerprint: c.fingerprint.clone(),
                response: Some(c.response.clone()),
                lock_until: c.expires_at,
                expires_at: c.expires_at,
            };
            s.idempotency.insert(c.key.as_str().to_owned(), rec);
        }
        s.next_seq += 1;
        let seq = s.next_seq;
        s.orders.insert(seq, new.order);
        s.seq_of.insert(id, seq);
        let at = new.event.time;
        push_event(&mut s, new.event);
        s.queued.push(id);
        enqueue(
            &mut s,
            ORDERS_QUEUE,
            orderly_core::ports::processing_message(id),
            at,
        );
        Ok(())
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let s = self.lock();
        Ok(s.seq_of.get(&id).and_then(|seq| s.orders.get(seq)).cloned())
    }

    async fn list(
        &self,
        filter: &OrderFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let before = cursor.map(cursor::decode_seq).transpose()?;
        let s = self.lock();
        let limit = limit as usize;
        let mut items = Vec::new();
        let mut last_seq = None;
        let mut more = false;
        let upper = before.unwrap_or(i64::MAX);
        for (seq, o) in s.orders.range(..upper).rev() {
            if filter.user_id.as_ref().is_some_and(|u| *u != o.user_id)
                || filter.status.is_some_and(|st| st != o.status)
            {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(o.clone());
            last_seq = Some(*seq);
        }
        Ok(Page {
            items,
            next_cursor: if more {
                last_seq.map(cursor::encode_seq)
            } else {
                None
            },
        })
    }

    async fn transition(&self, t: Transition) -> Result<TransitionOutcome, StoreError> {
        let mut s = self.lock();
        let Some(seq) = s.seq_of.get(&t.order_id).copied() else {
            return Ok(TransitionOutcome::NotFound);
        };
        let Some(order) = s.orders.get_mut(&seq) else {
            return Ok(TransitionOutcome::NotFound);
        };
        if order.status != t.from || !t.from.can_become(t.to) {
            let found = order.clone();
            if found.status == t.to {
                put_step(&mut s, t.order_id, t.step);
            }
            return Ok(TransitionOutcome::Stale(found));
        }
        order.status = t.to;
        order.updated_at = t.at;
        order.version += 1;
        if t.failure_reason.is_some() {
            order.failure_reason = t.failure_reason;
        }
        if t.tracking_id.is_some() {
            order.tracking_id = t.tracking_id;
        }
        let out = order.clone();
        push_event(&mut s, t.event);
        put_step(&mut s, t.order_id, t.step);
        if t.enqueue_processing {
            let body = orderly_core::ports::processing_message(t.order_id);
            enqueue(&mut s, ORDERS_QUEUE, body, t.at);
        }
        Ok(TransitionOutcome::Applied(out))
    }

    async fn append_event(
        &self,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let id = event.order_id;
        let added = push_event(&mut s, event);
        put_step(&mut s, id, step);
        Ok(added)
    }

    async fn events(&self, id: OrderId) -> Result<Vec<DomainEvent>, StoreError> {
        Ok(self.lock().events.get(&id).cloned().unwrap_or_default())
    }
}

fn product_from(spec: ProductSpec, at: Timestamp, created_at: Timestamp, version: u64) -> Product {
    Product {
        product_id: spec.product_id,
        name: spec.name,
        price: spec.price,
        currency: CURRENCY.to_owned(),
        stock: spec.stock,
        category: spec.category,
        created_at,
        updated_at: at,
        version,
    }
}

#[async_trait]
impl Inventory for MemoryStore {
    async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        let s = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| s.products.get(id).cloned())
            .collect())
    }

    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        Ok(self.lock().products.get(id).cloned())
    }

    async fn list_products(&self) -> Result<Vec<Product>, StoreError> {
        Ok(self.lock().products.values().cloned().collect())
    }

    async fn put_product(
        &self,
        spec: ProductSpec,
        at: Timestamp,
    ) -> Result<(Product, bool), StoreError> {
        let mut s = self.lock();
        let (created_at, version, created) = match s.products.get(&spec.product_id) {
            Some(p) => (p.created_at, p.version + 1, false),
            None => (at, 1, true),
        };
        let p = product_from(spec, at, created_at, version);
        s.products.insert(p.product_id.clone(), p.clone());
        Ok((p, created))
    }

    async fn seed_product(
        &self,
        spec: ProductSpec,
        mode: SeedMode,
        at: Timestamp,
    ) -> Result<SeedOutcome, StoreError> {
        let mut s = self.lock();
        match (s.products.get_mut(&spec.product_id), mode) {
            (None, _) => {
                let p = product_from(spec, at, at, 1);
                s.products.insert(p.product_id.clone(), p);
                Ok(SeedOutcome::Created)
            }
            (Some(_), SeedMode::KeepExisting) => Ok(SeedOutcome::Kept),
            (Some(p), SeedMode::AddStock) => {
                p.stock = p.stock.saturating_add(spec.stock);
                p.updated_at = at;
                p.version += 1;
                Ok(SeedOutcome::StockAdded)
            }
            (Some(p), SeedMode::Reset) => {
                *p = product_from(spec, at, p.created_at, p.version + 1);
                Ok(SeedOutcome::Reset)
            }
        }
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: Timestamp,
        lock_until: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError> {
        let mut s = self.lock();
        if let Some(rec) = s.idempotency.get(key.as_str()) {
            let live = match &rec.response {
                Some(_) => rec.expires_at > now,
                None => rec.lock_until > now,
            };
            if live {
                return Ok(if rec.fingerprint != fingerprint {
                    IdempotencyBegin::Mismatch
                } else if let Some(r) = &rec.response {
                    IdempotencyBegin::Replay(r.clone())
                } else {
                    IdempotencyBegin::InFlight
                });
            }
        }
        s.idempotency.insert(
            key.as_str().to_owned(),
            IdemRecord {
                fingerprint: fingerprint.to_owned(),
                response: None,
                lock_until,
                expires_at: lock_until,
            },
        );
        Ok(IdempotencyBegin::Started)
    }

    async fn abandon(&self, key: &IdempotencyKey, fingerprint: &str) -> Result<(), StoreError> {
        let mut s = self.lock();
        if s.idempotency
            .get(key.as_str())
            .is_some_and(|r| r.response.is_none() && r.fingerprint == fingerprint)
        {
            s.idempotency.remove(key.as_str());
        }
        Ok(())
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut s = self.lock();
        let before = s.idempotency.len();
        s.idempotency.retain(|_, r| r.expires_at > now);
        Ok((before - s.idempotency.len()) as u64)
    }
}

#[async_trait]
impl Readiness for MemoryStore {
    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl Reservations for MemoryStore {
    async fn reserve(
        &self,
        order: &Order,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<ReserveOutcome, StoreError> {
        let mut s = self.lock();
        let id = order.order_id;
        if let Some((_, released)) = s.reservations.get(&id) {
            if *released {
                return Ok(ReserveOutcome::Released);
            }
            put_step(&mut s, id, step);
            return Ok(ReserveOutcome::AlreadyReserved);
        }
        let status = s
            .seq_of
            .get(&id)
            .and_then(|q| s.orders.get(q))
            .map(|o| o.status);
        if let Some(st) = status.filter(|st| *st != OrderStatus::Pending) {
            return Ok(ReserveOutcome::NotPending(st));
        }
        for item in &order.items {
            let Some(p) = s.products.get(&item.product_id) else {
                return Ok(ReserveOutcome::UnknownProduct(item.product_id.clone()));
            };
            if p.stock < item.qty.get() {
                return Ok(ReserveOutcome::Insufficient {
                    product_id: item.product_id.clone(),
                    requested: item.qty.get(),
                    available: p.stock,
                });
            }
        }
        let mut held = Vec::new();
        for item in &order.items {
            if let Some(p) = s.products.get_mut(&item.product_id) {
                p.stock -= item.qty.get();
                held.push((item.product_id.clone(), item.qty.get()));
            }
        }
        s.reservations.insert(id, (held, false));
        push_event(&mut s, event);
        put_step(&mut s, id, step);
        Ok(ReserveOutcome::Reserved)
    }

    async fn release(
        &self,
        order_id: OrderId,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<ReleaseOutcome, StoreError> {
        let mut s = self.lock();
        let held = match s.reservations.get_mut(&order_id) {
            None => {
                s.reservations.insert(order_id, (Vec::new(), true));
                put_step(&mut s, order_id, step);
                return Ok(ReleaseOutcome::NothingReserved);
            }
            Some((_, true)) => {
                put_step(&mut s, order_id, step);
                return Ok(ReleaseOutcome::AlreadyReleased);
            }
            Some((held, released)) => {
                *released = true;
                held.clone()
            }
        };
        for (pid, qty) in held {
            if let Some(p) = s.products.get_mut(&pid) {
                p.stock += qty;
            }
        }
        push_event(&mut s, event);
        put_step(&mut s, order_id, step);
        Ok(ReleaseOutcome::Released)
    }
}

#[async_trait]
impl PaymentLedger for MemoryStore {
    async fn payment(&self, order_id: OrderId) -> Result<Option<PaymentState>, StoreError> {
        Ok(self.lock().payments.get(&order_id).cloned())
    }

    async fn record_charge(
        &self,
        order_id: OrderId,
        state: PaymentState,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<PaymentState, StoreError> {
        let mut s = self.lock();
        let now = match s.payments.get(&order_id) {
            Some(existing) => existing.clone(),
            None => {
                s.payments.insert(order_id, state.clone());
                push_event(&mut s, event);
                state
            }
        };
        if matches!(now, PaymentState::Charged { .. }) {
            put_step(&mut s, order_id, step);
        }
        Ok(now)
    }

    async fn record_refund(
        &self,
        order_id: OrderId,
        refund_id: String,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<Option<PaymentState>, StoreError> {
        let mut s = self.lock();
        let next = match s.payments.get(&order_id) {
            Some(PaymentState::Charged { payment_id, amount }) => PaymentState::Refunded {
                payment_id: payment_id.clone(),
                refund_id,
                amount: *amount,
            },
            other => {
                let other = other.cloned();
                put_step(&mut s, order_id, step);
                return Ok(other);
            }
        };
        s.payments.insert(order_id, next.clone());
        push_event(&mut s, event);
        put_step(&mut s, order_id, step);
        Ok(Some(next))
    }
}

#[async_trait]
impl SagaLog for MemoryStore {
    async fn steps(&self, order_id: OrderId) -> Result<Vec<StepRecord>, StoreError> {
        Ok(self.lock().saga.get(&order_id).cloned().unwrap_or_default())
    }

    async fn record_step(&self, order_id: OrderId, record: StepRecord) -> Result<(), StoreError> {
        put_step(&mut self.lock(), order_id, Some(record));
        Ok(())
    }
}

/// Records (or overwrites) a saga step, in the caller's critical section.
fn put_step(s: &mut State, order_id: OrderId, step: Option<StepRecord>) {
    if let Some(record) = step {
        let steps = s.saga.entry(order_id).or_default();
        steps.retain(|r| r.action != record.action);
        steps.push(record);
    }
}

fn msg_id(m: &QueuedMsg) -> String {
    format!("{}.{}", m.id, m.receive_count)
}

fn dead_letter(m: QueuedMsg, at: Timestamp) -> DeadLetter {
    DeadLetter {
        id: m.id.to_string(),
        queue: m.queue,
        body: m.body,
        receive_count: m.receive_count,
        last_error: m.last_error,
        enqueued_at: m.enqueued_at,
        dead_at: at,
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl MemoryStore {
    /// One non-blocking receive; also answers the queue version it saw and when the next
    /// hidden message of `queue` turns visible.
    fn receive_now(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> (Vec<Message>, u64, Option<Timestamp>) {
        let now = self.clock.now();
        let mut s = self.lock();
        let mut out = Vec::new();
        let mut dead = Vec::new();
        for m in s.messages.iter_mut() {
            if out.len() >= max {
                break;
            }
            if m.queue != queue || m.visible_at > now {
                continue;
            }
            if m.receive_count >= MAX_RECEIVES {
                dead.push(m.id);
                continue;
            }
            m.receive_count += 1;
            m.visible_at = now.plus_millis(ms(visibility));
            out.push(Message {
                id: msg_id(m),
                body: m.body.clone(),
                receive_count: m.receive_count,
                enqueued_at: m.enqueued_at,
            });
        }
        for id in dead {
            if let Some(pos) = s.messages.iter().position(|m| m.id == id) {
                let m = s.messages.remove(pos);
                s.dead.push(dead_letter(m, now));
            }
        }
        let next = s
            .messages
            .iter()
            .filter(|m| m.queue == queue && m.visible_at > now)
            .map(|m| m.visible_at)
            .min();
        (out, s.queue_version, next)
    }

    /// Resolves once the queue version moves past `seen`, or after `pause` (real time,
    /// timed by a short-lived thread: the core has no async runtime of its own).
    fn queue_changed(&self, seen: u64, pause: Duration) -> impl Future<Output = ()> + Send + '_ {
        let timer: Arc<Mutex<(bool, Option<Waker>)>> = Arc::new(Mutex::new((false, None)));
        let fire = timer.clone();
        let spawned = std::thread::Builder::new()
            .name("memory-queue-timer".into())
            .spawn(move || {
                std::thread::sleep(pause);
                let mut t = fire.lock().unwrap_or_else(|p| p.into_inner());
                t.0 = true;
                if let Some(w) = t.1.take() {
                    w.wake();
                }
            });
        if spawned.is_err() {
            // No thread for the timer: answer at once rather than wait forever.
            timer.lock().unwrap_or_else(|p| p.into_inner()).0 = true;
        }
        std::future::poll_fn(move |cx| {
            {
                let mut s = self.lock();
                if s.queue_version != seen {
                    return Poll::Ready(());
                }
                s.receivers.retain(|w| !w.will_wake(cx.waker()));
                s.receivers.push(cx.waker().clone());
            }
            let mut t = timer.lock().unwrap_or_else(|p| p.into_inner());
            if t.0 {
                Poll::Ready(())
            } else {
                t.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

#[async_trait]
impl Queue for MemoryStore {
    async fn send(&self, queue: &str, body: &str, delay: Duration) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut s = self.lock();
        enqueue(&mut s, queue, body.to_owned(), now);
        if let Some(m) = s.messages.last_mut() {
            m.visible_at = now.plus_millis(ms(delay));
        }
        Ok(())
    }

    /// Long polls in real time: when nothing is visible, waits up to `wait` for a send,
    /// nack or replay, or for the next delayed message to turn visible (by the clock).
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Message>, StoreError> {
        let deadline = Instant::now() + wait;
        loop {
            let (out, version, next_visible) = self.receive_now(queue, max, visibility);
            let left = deadline.saturating_duration_since(Instant::now());
            if !out.is_empty() || left.is_zero() {
                return Ok(out);
            }
            let mut pause = left;
            if let Some(next) = next_visible {
                let until = u64::try_from(next.millis() - self.clock.now().millis()).unwrap_or(0);
                pause = pause.min(Duration::from_millis(until.saturating_add(1)));
            }
            self.queue_changed(version, pause).await;
        }
    }

    async fn ack(&self, queue: &str, id: &str) -> Result<(), StoreError> {
        let mut s = self.lock();
        s.messages
            .retain(|m| !(m.queue == queue && msg_id(m) == id));
        Ok(())
    }

    async fn nack(
        &self,
        queue: &str,
        id: &str,
        error: &str,
        retry_after: Duration,
    ) -> Result<NackOutcome, StoreError> {
        let now = self.clock.now();
        let mut s = self.lock();
        let Some(pos) = s
            .messages
            .iter()
            .position(|m| m.queue == queue && msg_id(m) == id)
        else {
            return Ok(NackOutcome::WillRetry);
        };
        s.messages[pos].last_error = Some(error.to_owned());
        if s.messages[pos].receive_count >= MAX_RECEIVES {
            let m = s.messages.remove(pos);
            s.dead.push(dead_letter(m, now));
            return Ok(NackOutcome::DeadLettered);
        }
        s.messages[pos].visible_at = now.plus_millis(ms(retry_after));
        wake_receivers(&mut s);
        Ok(NackOutcome::WillRetry)
    }

    async fn extend(&self, queue: &str, id: &str, visibility: Duration) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut s = self.lock();
        if let Some(m) = s
            .messages
            .iter_mut()
            .find(|m| m.queue == queue && msg_id(m) == id)
        {
            m.visible_at = now.plus_millis(ms(visibility));
        }
        Ok(())
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .lock()
            .dead
            .iter()
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn replay(&self, ids: Option<Vec<String>>) -> Result<Vec<String>, StoreError> {
        let now = self.clock.now();
        let mut s = self.lock();
        let (moved, kept): (Vec<DeadLetter>, Vec<DeadLetter>) = std::mem::take(&mut s.dead)
            .into_iter()
            .partition(|d| ids.as_ref().is_none_or(|ids| ids.contains(&d.id)));
        s.dead = kept;
        let mut out = Vec::new();
        for d in moved {
            out.push(d.id.clone());
            enqueue(&mut s, &d.queue, d.body, now);
        }
        Ok(out)
    }

    async fn purge_dead_letters(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut s = self.lock();
        let n = s.dead.len();
        s.dead.retain(|d| d.dead_at >= before);
        Ok((n - s.dead.len()) as u64)
    }

    async fn depth(&self, queue: &str) -> Result<QueueDepth, StoreError> {
        let now = self.clock.now();
        let s = self.lock();
        let mut d = QueueDepth::default();
        for m in s.messages.iter().filter(|m| m.queue == queue) {
            if m.receive_count > 0 && m.visible_at > now {
                d.in_flight += 1;
            } else {
                d.waiting += 1;
            }
            let age = u64::try_from(now.millis() - m.enqueued_at.millis()).unwrap_or(0);
            d.oldest_age_ms = d.oldest_age_ms.max(age);
        }
        Ok(d)
    }

    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        Ok(self.lock().dead.len() as u64)
    }
}

#[async_trait]
impl EventOutbox for MemoryStore {
    async fn unpublished(
        &self,
        limit: u32,
        _wait: Duration,
    ) -> Result<Vec<(i64, DomainEvent)>, StoreError> {
        let s = self.lock();
        Ok(s.event_log
            .iter()
            .enumerate()
            .skip(s.published)
            .take(limit as usize)
            .map(|(i, e)| (i as i64 + 1, e.clone()))
            .collect())
    }

    async fn mark_published(&self, position: i64) -> Result<(), StoreError> {
        let mut s = self.lock();
        s.published = s.published.max(usize::try_from(position).unwrap_or(0));
        Ok(())
    }
}

#[async_trait]
impl NotificationLog for MemoryStore {
    async fn was_sent(&self, event_id: uuid::Uuid) -> Result<bool, StoreError> {
        Ok(self.lock().sent.iter().any(|(n, _)| n.event_id == event_id))
    }

    async fn record_sent(
        &self,
        n: &Notification,
        transport: &str,
        _at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        if !s.sent.iter().any(|(x, _)| x.event_id == n.event_id) {
            s.sent.push((n.clone(), transport.to_owned()));
        }
        Ok(())
    }

    async fn sent_for(
        &self,
        order_id: OrderId,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(self
            .lock()
            .sent
            .iter()
            .filter(|(n, _)| n.order_id == order_id)
            .map(|(n, t)| (n.subject.clone(), n.to.to_string(), t.clone()))
            .collect())
    }
}

#[async_trait]
impl orderly_core::ports::ApiKeys for MemoryStore {
    async fn insert_key(&self, key: &orderly_core::access::ApiKeyRecord) -> Result<(), StoreError> {
        let mut s = self.lock();
        if s.api_keys.iter().any(|k| k.id == key.id) {
            return Err(StoreError::Backend(format!("API key id {} exists", key.id)));
        }
        s.api_keys.push(key.clone());
        Ok(())
    }

    async fn key_by_id(
        &self,
        id: &str,
    ) -> Result<Option<orderly_core::access::ApiKeyRecord>, StoreError> {
        Ok(self.lock().api_keys.iter().find(|k| k.id == id).cloned())
    }

    async fn list_keys(&self) -> Result<Vec<orderly_core::access::ApiKeyRecord>, StoreError> {
        Ok(self.lock().api_keys.clone())
    }

    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let mut s = self.lock();
        match s.api_keys.iter_mut().find(|k| k.id == id) {
            None => Ok(false),
            Some(k) => {
                k.revoked_at.get_or_insert(at);
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl orderly_core::webhooks::Webhooks for MemoryStore {
    async fn insert_endpoint(
        &self,
        endpoint: &orderly_core::webhooks::WebhookEndpoint,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        if s.webhook_endpoints.iter().any(|e| e.id == endpoint.id) {
            return Err(StoreError::Backend(format!(
                "webhook {} exists",
                endpoint.id
            )));
        }
        s.webhook_endpoints.push(endpoint.clone());
        Ok(())
    }

    async fn endpoint(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<orderly_core::webhooks::WebhookEndpoint>, StoreError> {
        Ok(self
            .lock()
            .webhook_endpoints
            .iter()
            .find(|e| e.id == id)
            .cloned())
    }

    async fn list_endpoints(
        &self,
    ) -> Result<Vec<orderly_core::webhooks::WebhookEndpoint>, StoreError> {
        Ok(self.lock().webhook_endpoints.clone())
    }

    async fn set_endpoint_active(
        &self,
        id: uuid::Uuid,
        active: bool,
        at: Timestamp,
    ) -> Result<Option<orderly_core::webhooks::WebhookEndpoint>, StoreError> {
        let mut s = self.lock();
        Ok(s.webhook_endpoints
            .iter_mut()
            .find(|e| e.id == id)
            .map(|e| {
                if e.active != active {
                    e.active = active;
                    e.updated_at = at;
                }
                e.clone()
            }))
    }

    async fn delete_endpoint(&self, id: uuid::Uuid) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let before = s.webhook_endpoints.len();
        s.webhook_endpoints.retain(|e| e.id != id);
        s.webhook_deliveries.retain(|d| d.endpoint_id != id);
        s.webhook_attempts.retain(|a| a.endpoint_id != id);
        Ok(s.webhook_endpoints.len() != before)
    }

    async fn schedule_delivery(
        &self,
        delivery: &orderly_core::webhooks::ScheduledDelivery,
        queue: &str,
        body: &str,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut s = self.lock();
        if s.webhook_deliveries
            .iter()
            .any(|d| d.delivery_id == delivery.delivery_id)
        {
            return Ok(false);
        }
        s.webhook_deliveries.push(delivery.clone());
        enqueue(&mut s, queue, body.to_owned(), now);
        Ok(true)
    }

    async fn record_attempt(
        &self,
        attempt: &orderly_core::webhooks::DeliveryAttempt,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        if s.webhook_attempts
            .iter()
            .any(|a| a.delivery_id == attempt.delivery_id && a.attempt == attempt.attempt)
        {
            return Ok(false);
        }
        s.webhook_attempts.push(attempt.clone());
        Ok(true)
    }

    async fn delivery_attempts(
        &self,
        delivery_id: uuid::Uuid,
    ) -> Result<Vec<orderly_core::webhooks::DeliveryAttempt>, StoreError> {
        Ok(self
            .lock()
            .webhook_attempts
            .iter()
            .filter(|a| a.delivery_id == delivery_id)
            .cloned()
            .collect())
    }

    async fn endpoint_attempts(
        &self,
        endpoint_id: uuid::Uuid,
        limit: u32,
    ) -> Result<Vec<orderly_core::webhooks::DeliveryAttempt>, StoreError> {
        Ok(self
            .lock()
            .webhook_attempts
            .iter()
            .rev()
            .filter(|a| a.endpoint_id == endpoint_id)
            .take(limit as usize)
            .cloned()
            .collect())
    }
}
