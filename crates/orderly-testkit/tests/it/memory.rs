//! The contract suites against the in-memory reference adapters.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use orderly_testkit::memory::MemoryStore;
use orderly_testkit::processing::{
    notification_log_contract, outbox_contract, payment_ledger_contract, queue_contract,
    queue_contract_realtime, reservations_contract, saga_log_contract, steps_with_effects_contract,
};
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

#[tokio::test]
async fn memory_queue() {
    queue_contract(|clock| async move { MemoryStore::with_clock(clock) }).await;
}

#[tokio::test]
async fn memory_queue_realtime() {
    // MemoryStore::new() runs on the system clock.
    queue_contract_realtime(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn memory_reservations() {
    reservations_contract(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn memory_payment_ledger() {
    payment_ledger_contract(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn memory_saga_log() {
    saga_log_contract(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn memory_steps_with_effects() {
    steps_with_effects_contract(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn memory_outbox() {
    outbox_contract(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn memory_notification_log() {
    notification_log_contract(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn memory_api_keys() {
    orderly_testkit::api_keys_contract(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn memory_webhooks() {
    orderly_testkit::webhooks::webhooks_contract(|| async { MemoryStore::new() }).await;
}
