//! The port contract suites against the SQLite adapters, each case on a fresh database.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::atomic::{AtomicUsize, Ordering};

use orderly_sqlite::{SqliteOptions, SqliteStore};
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
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        SqliteStore::open(
            &self.base.path().join(n.to_string()),
            SqliteOptions::default(),
        )
        .expect("open store")
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
