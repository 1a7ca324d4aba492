//! The contract suites against the in-memory reference adapters.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use orderly_core::memory::MemoryStore;
use orderly_testkit::{idempotency_contract, inventory_contract, order_store_contract};

#[tokio::test]
async fn memory_order_store() {
    order_store_contract(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn memory_inventory() {
    inventory_contract(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn memory_idempotency() {
    idempotency_contract(|| async { MemoryStore::new() }).await;
}
