//! The port contract suites against the SQLite adapters, each case on a fresh database.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::atomic::{AtomicUsize, Ordering};

use std::sync::Arc;

use orderly_core::ports::Clock;
use orderly_sqlite::{SqliteOptions, SqliteStore};
use orderly_testkit::processing::{
    notification_log_contract, outbox_contract, payment_ledger_contract, queue_contract,
    queue_contract_realtime, reservations_contract, saga_log_contract, steps_with_effects_contract,
};
use orderly_testkit::{idempotency_contract, inventory_contract, order_store_contract};

/// Hands out fresh stores in numbered subdirectories of one temporary directory.
struct Stores {
    base: tempfile::TempDir,
    next: AtomicUsize,
}

impl Stores {
    fn new() -> Stores {
        Stores {
            base: tempfile::tempdir().expect("temp dir"),
            next: AtomicUsize::new(0),
        }
    }

    fn fresh(&self) -> SqliteStore {
        self.with_clock(SqliteOptions::default().clock)
    }

    fn with_clock(&self, clock: Arc<dyn Clock>) -> SqliteStore {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let opts = SqliteOptions {
            clock,
            ..SqliteOptions::default()
        };
        SqliteStore::open(&self.base.path().join(n.to_string()), opts).expect("open store")
    }
}

#[tokio::test]
async fn sqlite_order_store() {
    let stores = Stores::new();
    order_store_contract(|| async { stores.fresh() }).await;
}

#[tokio::test]
async fn sqlite_inventory() {
    let stores = Stores::new();
    inventory_contract(|| async { stores.fresh() }).await;
}

#[tokio::test]
async fn sqlite_idempotency() {
    let stores = Stores::new();
    idempotency_contract(|| async { stores.fresh() }).await;
}

#[tokio::test]
async fn sqlite_queue() {
    let stores = Stores::new();
    queue_contract(|clock| async { stores.with_clock(clock) }).await;
}

#[tokio::test]
async fn sqlite_queue_realtime() {
    let stores = Stores::new();
    queue_contract_realtime(|| async { stores.fresh() }).await;
}

#[tokio::test]
async fn sqlite_reservations() {
    let stores = Stores::new();
    reservations_contract(|| async { stores.fresh() }).await;
}

#[tokio::test]
async fn sqlite_payment_ledger() {
    let stores = Stores::new();
    payment_ledger_contract(|| async { stores.fresh() }).await;
}

#[tokio::test]
async fn sqlite_saga_log() {
    let stores = Stores::new();
    saga_log_contract(|| async { stores.fresh() }).await;
}

#[tokio::test]
async fn sqlite_steps_with_effects() {
    let stores = Stores::new();
    steps_with_effects_contract(|| async { stores.fresh() }).await;
}

#[tokio::test]
async fn sqlite_outbox() {
    let stores = Stores::new();
    outbox_contract(|| async { stores.fresh() }).await;
}

#[tokio::test]
async fn sqlite_notification_log() {
    let stores = Stores::new();
    notification_log_contract(|| async { stores.fresh() }).await;
}

#[tokio::test]
async fn sqlite_api_keys() {
    let stores = Stores::new();
    orderly_testkit::api_keys_contract(|| async { stores.fresh() }).await;
}

#[tokio::test]
async fn sqlite_webhooks() {
    let stores = Stores::new();
    orderly_testkit::webhooks::webhooks_contract(|| async { stores.fresh() }).await;
}
