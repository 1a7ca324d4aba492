//! Ports: the traits adapters implement (SQLite, DynamoDB, in-memory). Use cases see only
//! these. Every adapter of a port passes the same contract suite (`orderly-testkit`).

use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::events::DomainEvent;
use crate::model::{Order, OrderFilter, Page, Product, ProductSpec, Timestamp};
use crate::status::OrderStatus;
use crate::types::{IdempotencyKey, OrderId, ProductId};

/// Where time comes from. Nothing in the core reads the system clock directly.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(chrono::Utc::now())
    }
}

/// A clock tests move by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Mutex::new(start))
    }

    pub fn advance_secs(&self, secs: i64) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t = t.plus_secs(secs);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The HTTP answer recorded under an idempotency key, replayed verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// The JSON body as first sent.
    pub body: String,
    pub order_id: OrderId,
}

/// Marks an idempotency key as completed with its response, inside the order's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyCompletion {
    pub key: IdempotencyKey,
    pub fingerprint: String,
    pub response: StoredResponse,
    pub expires_at: Timestamp,
}

/// Everything accepting an order writes, in one transaction: the order, its `OrderCreated`
/// event, the message that gets it processed, and the idempotency record if a key was sent.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub order: Order,
    pub event: DomainEvent,
    pub idempotency: Option<IdempotencyCompletion>,
}

/// A conditional status change: applied only if the order is still in `from`.
#[derive(Debug, Clone)]
pub struct Transition {
    pub order_id: OrderId,
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub at: Timestamp,
    pub event: DomainEvent,
    pub failure_reason: Option<String>,
    pub tracking_id: Option<String>,
    /// Also enqueue the order's processing message in the same write (a cancellation
    /// queues its compensations this way, so a crash cannot skip them).
    pub enqueue_processing: bool,
    /// The saga-log record of the step this transition is, committed with it when the
    /// order is in `to` afterwards (applied now, or found there already).
    pub step: Option<StepRecord>,
}

/// What a [`Transition`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// Written; the order as it is now.
    Applied(Order),
    /// The order was no longer in `from`; nothing written; the order as it is.
    Stale(Order),
    NotFound,
}

/// Orders, their event timelines and the processing queue's intake.
#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Writes a new order atomically with its event, its processing message and its
    /// idempotency completion (all or nothing).
    async fn create(&self, new: NewOrder) -> Result<(), StoreError>;

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// Newest first. `cursor` is one this store returned as `next_cursor`; a page walk
    /// sees every order that existed when it started exactly once, whatever is inserted
    /// meanwhile.
    async fn list(
        &self,
        filter: &OrderFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError>;

    /// Applies a status change if the stored status is `t.from`, appending `t.event` and
    /// bumping `version` in the same write.
    async fn transition(&self, t: Transition) -> Result<TransitionOutcome, StoreError>;

    /// Several transitions, each applied or not on its own as [`OrderStore::transition`]
    /// would, with their outcomes in order; the embedded store in one operation.
    async fn transition_many(
        &self,
        ts: Vec<Transition>,
    ) -> Result<Vec<TransitionOutcome>, StoreError> {
        let mut out = Vec::with_capacity(ts.len());
        for t in ts {
            out.push(self.transition(t).await?);
        }
        Ok(out)
    }

    /// The order's events, oldest first. Appending an event id twice keeps one.
    async fn events(&self, id: OrderId) -> Result<Vec<DomainEvent>, StoreError>;

    /// Appends an event on its own; `false` if an event with its id was already there.
    /// `step` is committed with it either way.
    async fn append_event(
        &self,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<bool, StoreError>;
}

/// How `seed` treats a product that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeedMode {
    /// Leave it as it is (running seed twice changes nothing).
    #[default]
    KeepExisting,
    /// Add the seed's stock to it.
    AddStock,
    /// Overwrite name, price, stock and category with the seed's.
    Reset,
}

/// What seeding one product did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedOutcome {
    Created,
    Kept,
    StockAdded,
    Reset,
}

/// The catalogue and its stock.
#[async_trait]
pub trait Inventory: Send + Sync {
    /// The products among `ids` that exist (in any order), for pricing an order. An
    /// adapter may serve them from a cache that any catalogue change (a product put or
    /// reseeded, by any process) invalidates before the change is acknowledged; their
    /// `stock` may lag behind reservations (read [`Inventory::product`] for stock).
    async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError>;

    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError>;

    /// All products ordered by id.
    async fn list_products(&self) -> Result<Vec<Product>, StoreError>;

    /// Creates or replaces a product; `true` when it was created.
    async fn put_product(
        &self,
        spec: ProductSpec,
        at: Timestamp,
    ) -> Result<(Product, bool), StoreError>;

    /// Seeds one product, atomically, as `mode` says.
    async fn seed_product(
        &self,
        spec: ProductSpec,
        mode: SeedMode,
        at: Timestamp,
    ) -> Result<SeedOutcome, StoreError>;
}

/// What beginning a request under an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// The key is now held by this request until it completes or `lock_until` passes.
    Started,
    /// A request with the same key and payload completed: answer this again.
    Replay(StoredResponse),
    /// The key was used with a different payload.
    Mismatch,
    /// A request with this key is still being processed.
    InFlight,
}

/// Idempotency keys (IETF httpapi idempotency-key draft semantics).
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request whose payload has `fingerprint`. Expired records and
    /// in-flight claims whose lock passed count as absent.
    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: Timestamp,
        lock_until: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError>;

    /// Gives up an in-flight claim (the request failed), so the client can retry.
    async fn abandon(&self, key: &IdempotencyKey, fingerprint: &str) -> Result<(), StoreError>;

    /// Deletes records expired at `now`; returns how many.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// Whether the backing store can serve requests.
#[async_trait]
pub trait Readiness: Send + Sync {
    async fn ready(&self) -> Result<(), StoreError>;
}

// ---------------------------------------------------------------------------------------
// Order processing (the saga, the queue, events, notifications).
// ---------------------------------------------------------------------------------------

use std::time::Duration;

use crate::money::Money;
use crate::saga::Action;
use crate::types::Email;

/// What reserving an order's stock found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every item reserved now, in one atomic write.
    Reserved,
    /// Reserved by an earlier call (a redelivered message): nothing changed.
    AlreadyReserved,
    /// The order's reservation was released before (it was cancelled): nothing reserved.
    Released,
    /// Not enough stock for this item: nothing reserved.
    Insufficient {
        product_id: ProductId,
        requested: u32,
        available: u32,
    },
    /// The product no longer exists: nothing reserved.
    UnknownProduct(ProductId),
    /// The order is no longer `PENDING` (cancelled meanwhile): nothing reserved.
    NotPending(OrderStatus),
}

/// What releasing an order's stock found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The reserved units went back to stock now.
    Released,
    /// Released by an earlier call: nothing changed.
    AlreadyReleased,
    /// Nothing was reserved; a later reserve of this order will be refused.
    NothingReserved,
}

/// Stock reservations, idempotent per order.
#[async_trait]
pub trait Reservations: Send + Sync {
    /// Reserves every item of the order or none (never below zero stock), if the order is
    /// still `PENDING`, appending `event` (InventoryReserved) in the same write. `step` is
    /// committed with it when the outcome is `Reserved` or `AlreadyReserved`.
    async fn reserve(
        &self,
        order: &Order,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<ReserveOutcome, StoreError>;

    /// Returns the order's reserved units to stock, appending `event` (InventoryReleased)
    /// if anything was released; `step` is committed with it whatever the outcome.
    async fn release(
        &self,
        order_id: OrderId,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<ReleaseOutcome, StoreError>;
}

/// A payment as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentState {
    Charged {
        payment_id: String,
        amount: Money,
    },
    Declined {
        reason: String,
    },
    Refunded {
        payment_id: String,
        refund_id: String,
        amount: Money,
    },
}

/// What Orderly recorded about each order's payment (one per order).
#[async_trait]
pub trait PaymentLedger: Send + Sync {
    async fn payment(&self, order_id: OrderId) -> Result<Option<PaymentState>, StoreError>;

    /// Records a charge outcome (`Charged` or `Declined`) with its event, unless one is
    /// already recorded; answers what is recorded afterwards. `step` is committed with it
    /// when that is `Charged`.
    async fn record_charge(
        &self,
        order_id: OrderId,
        state: PaymentState,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<PaymentState, StoreError>;

    /// Marks a charged payment refunded, with its event; answers what is recorded. `step`
    /// is committed with it whatever was recorded.
    async fn record_refund(
        &self,
        order_id: OrderId,
        refund_id: String,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<Option<PaymentState>, StoreError>;
}

/// The answer of a payment provider to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeResult {
    Approved {
        payment_id: String,
    },
    /// Final: the same charge will be declined again.
    Declined {
        reason: String,
    },
}

/// A payment provider failure that is not a decline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// May succeed if tried again (timeouts, 5xx).
    #[error("payment provider temporarily failed: {0}")]
    Transient(String),
    /// Will not succeed if tried again.
    #[error("payment provider refused the request: {0}")]
    Fatal(String),
}

/// A payment provider. Calls are idempotent per order: charging an order twice returns the
/// first charge.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    async fn charge(&self, order_id: OrderId, amount: Money) -> Result<ChargeResult, GatewayError>;
    /// Refunds a charge; answers the refund id.
    async fn refund(
        &self,
        order_id: OrderId,
        payment_id: &str,
        amount: Money,
    ) -> Result<String, GatewayError>;
}

/// The recorded outcome of one saga action of one order.
///
/// A step that succeeds is recorded in the same write as its effect: the effect ports
/// (`reserve`, `record_charge`, `transition`, `append_event`, `release`, `record_refund`)
/// take the record and commit it with the effect when the outcome is the step's success,
/// so no crash can separate an effect from its record. Failures, and successes that
/// wrote nothing (the effect was already there), are recorded with
/// [`SagaLog::record_step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    pub action: Action,
    pub succeeded: bool,
    pub attempts: u32,
    pub detail: Option<String>,
    pub at: Timestamp,
}

/// Where the saga engine persists each action's outcome, so a restarted engine resumes.
#[async_trait]
pub trait SagaLog: Send + Sync {
    async fn steps(&self, order_id: OrderId) -> Result<Vec<StepRecord>, StoreError>;
    /// Records (or overwrites) the outcome of `record.action` for the order.
    async fn record_step(&self, order_id: OrderId, record: StepRecord) -> Result<(), StoreError>;
}

/// The queue of order-processing messages (the saga's intake).
pub const ORDERS_QUEUE: &str = "orders";

/// The body of an order's processing message.
pub fn processing_message(order_id: OrderId) -> String {
    serde_json::json!({ "orderId": order_id }).to_string()
}

/// The order a processing message is about.
pub fn parse_processing_message(body: &str) -> Result<OrderId, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("malformed order message: {e}"))?;
    v.get("orderId")
        .and_then(|x| x.as_str())
        .ok_or("malformed order message: no orderId")?
        .parse()
        .map_err(|e| format!("malformed order message: {e}"))
}

/// Messages are delivered to a consumer at most this many times before dead-lettering.
pub const MAX_RECEIVES: u32 = 3;
/// Dead letters are kept this long.
pub const DLQ_RETENTION_SECS: i64 = 14 * 24 * 3600;

/// A received message; hidden from other consumers until acked, nacked or its visibility
/// timeout passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub body: String,
    /// 1 on first delivery.
    pub receive_count: u32,
    pub enqueued_at: Timestamp,
}

/// A message that failed [`MAX_RECEIVES`] times.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    pub id: String,
    /// The queue it came from and is replayed to.
    pub queue: String,
    /// The message as it was enqueued.
    pub body: String,
    pub receive_count: u32,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_error: Option<String>,
    pub enqueued_at: Timestamp,
    pub dead_at: Timestamp,
}

/// What a nack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackOutcome {
    WillRetry,
    DeadLettered,
}

/// A queue's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueDepth {
    /// Waiting (visible now or delayed).
    pub waiting: u64,
    /// Received and not yet acked.
    pub in_flight: u64,
    /// Age of the oldest message, in milliseconds.
    pub oldest_age_ms: u64,
}

/// Durable at-least-once queues with visibility timeouts and a dead-letter queue.
#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, queue: &str, body: &str, delay: Duration) -> Result<(), StoreError>;

    /// Sends each `(queue, body)`, visible at once, in the order given. All or none: an
    /// adapter that can write them in one operation does (the embedded store); the
    /// default sends them one by one, so on failure a prefix may have been sent (the
    /// caller retries, which at-least-once delivery allows).
    async fn send_many(&self, messages: &[(&str, String)]) -> Result<(), StoreError> {
        for (queue, body) in messages {
            self.send(queue, body, Duration::ZERO).await?;
        }
        Ok(())
    }

    /// Up to `max` visible messages, each hidden for `visibility`; when none is visible,
    /// waits up to `wait` for one (long polling). Messages already received
    /// [`MAX_RECEIVES`] times are moved to the dead-letter queue instead.
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Message>, StoreError>;

    /// Deletes a processed message.
    async fn ack(&self, queue: &str, id: &str) -> Result<(), StoreError>;

    /// Deletes processed messages of one queue; the embedded store in one operation.
    async fn ack_many(&self, queue: &str, ids: &[String]) -> Result<(), StoreError> {
        for id in ids {
            self.ack(queue, id).await?;
        }
        Ok(())
    }

    /// Records a failed attempt: visible again after `retry_after`, or dead-lettered if it
    /// was the last allowed receive.
    async fn nack(
        &self,
        queue: &str,
        id: &str,
        error: &str,
        retry_after: Duration,
    ) -> Result<NackOutcome, StoreError>;

    /// Keeps a message hidden `visibility` longer (a consumer still working on it).
    async fn extend(&self, queue: &str, id: &str, visibility: Duration) -> Result<(), StoreError>;

    /// Dead letters, oldest first.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError>;

    /// Moves dead letters (all, or those with the given ids) back to their queue with a
    /// fresh receive count; answers the ids moved.
    async fn replay(&self, ids: Option<Vec<String>>) -> Result<Vec<String>, StoreError>;

    /// Deletes dead letters that died before `before`.
    async fn purge_dead_letters(&self, before: Timestamp) -> Result<u64, StoreError>;

    async fn depth(&self, queue: &str) -> Result<QueueDepth, StoreError>;

    async fn dead_letter_count(&self) -> Result<u64, StoreError>;
}

/// Events not yet handed to the event bus, in the order they were recorded (the
/// transactional outbox of domain events).
#[async_trait]
pub trait EventOutbox: Send + Sync {
    /// Up to `limit` unpublished events with their positions; when there are none, waits
    /// up to `wait` for one to be recorded.
    async fn unpublished(
        &self,
        limit: u32,
        wait: Duration,
    ) -> Result<Vec<(i64, DomainEvent)>, StoreError>;
    /// Marks everything up to and including `position` published.
    async fn mark_published(&self, position: i64) -> Result<(), StoreError>;
}

/// Delivers events to the subscribers whose patterns match (EventBridge locally emulated
/// by per-subscriber queues; EventBridge itself on AWS).
#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), StoreError>;
}

/// One e-mail to a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub event_id: uuid::Uuid,
    pub order_id: OrderId,
    pub to: Email,
    pub subject: String,
    pub body: String,
}

/// A notification transport failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notification failed: {message}")]
pub struct NotifyError {
    pub transient: bool,
    pub message: String,
}

/// Sends notifications (SMTP, SNS, or the log).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Short name of the transport, recorded with each notification.
    fn transport(&self) -> &'static str;
    async fn send(&self, n: &Notification) -> Result<(), NotifyError>;
}

/// The notifier when no mail server or topic is configured: each notification goes to the
/// log (both runtimes fall back to it).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    fn transport(&self) -> &'static str {
        "log"
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        tracing::info!(order_id = %n.order_id, subject = %n.subject, "notification (no mail server or topic configured)");
        Ok(())
    }
}

/// Which notifications went out, so a redelivered event sends no second mail.
#[async_trait]
pub trait NotificationLog: Send + Sync {
    async fn was_sent(&self, event_id: uuid::Uuid) -> Result<bool, StoreError>;
    async fn record_sent(
        &self,
        n: &Notification,
        transport: &str,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Records several sent notifications; the embedded store in one operation.
    async fn record_sent_many(
        &self,
        sent: &[Notification],
        transport: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        for n in sent {
            self.record_sent(n, transport, at).await?;
        }
        Ok(())
    }
    /// Notifications recorded for an order, oldest first: (subject, recipient, transport).
    async fn sent_for(
        &self,
        order_id: OrderId,
    ) -> Result<Vec<(String, String, String)>, StoreError>;
}

/// Stored API keys (hashes only). Keys are looked up by their public id; the caller
/// compares the secret's digest in constant time.
#[async_trait]
pub trait ApiKeys: Send + Sync {
    /// Stores a new key. An id that already exists is a `Backend` error (ids are random).
    async fn insert_key(&self, key: &crate::access::ApiKeyRecord) -> Result<(), StoreError>;
    async fn key_by_id(&self, id: &str) -> Result<Option<crate::access::ApiKeyRecord>, StoreError>;
    /// Every key, revoked ones included, oldest first.
    async fn list_keys(&self) -> Result<Vec<crate::access::ApiKeyRecord>, StoreError>;
    /// Marks a key revoked. `false` when there is no such key; revoking twice keeps the
    /// first revocation time and answers `true`.
    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool, StoreError>;
}
