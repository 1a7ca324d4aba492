//! In-memory adapters of the ports: the reference the contract suite is checked against,
//! and fast fakes for use-case tests. Nothing here survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::cursor;
use crate::error::StoreError;
use crate::events::DomainEvent;
use crate::model::{Order, OrderFilter, Page, Product, ProductSpec, Timestamp};
use crate::money::CURRENCY;
use crate::ports::{
    IdempotencyBegin, IdempotencyStore, Inventory, NewOrder, OrderStore, Readiness, SeedMode,
    SeedOutcome, StoredResponse, Transition, TransitionOutcome,
};
use crate::types::{IdempotencyKey, OrderId, ProductId};

#[derive(Debug, Clone)]
struct IdemRecord {
    fingerprint: String,
    response: Option<StoredResponse>,
    lock_until: Timestamp,
    expires_at: Timestamp,
}

#[derive(Debug, Default)]
struct State {
    next_seq: i64,
    /// seq -> order; seq grows with every insert, so iteration order is insertion order.
    orders: BTreeMap<i64, Order>,
    seq_of: HashMap<OrderId, i64>,
    events: HashMap<OrderId, Vec<DomainEvent>>,
    /// Processing messages enqueued by `create` (order ids), oldest first.
    queued: Vec<OrderId>,
    products: BTreeMap<ProductId, Product>,
    idempotency: HashMap<String, IdemRecord>,
}

/// All ports in one mutex-guarded state.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Order ids whose processing message was enqueued, oldest first.
    pub fn queued(&self) -> Vec<OrderId> {
        self.lock().queued.clone()
    }
}

fn push_event(state: &mut State, event: DomainEvent) {
    let list = state.events.entry(event.order_id).or_default();
    if !list.iter().any(|e| e.id == event.id) {
        list.push(event);
    }
}

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
        push_event(&mut s, new.event);
        s.queued.push(id);
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
            return Ok(TransitionOutcome::Stale(order.clone()));
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
        Ok(TransitionOutcome::Applied(out))
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
