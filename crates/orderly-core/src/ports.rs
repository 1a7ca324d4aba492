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

    /// The order's events, oldest first. Appending an event id twice keeps one.
    async fn events(&self, id: OrderId) -> Result<Vec<DomainEvent>, StoreError>;
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
    /// The products among `ids` that exist (in any order).
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
