//! The port contract suites against the DynamoDB adapters on the moto emulator. The
//! test script starts moto and sets `ORDERLY_TEST_AWS_ENDPOINT`.

#![cfg(feature = "dynamodb")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::atomic::{AtomicUsize, Ordering};

use orderly_aws::dynamo::{DynamoStore, Tables, create_tables};
use orderly_aws::{AwsSettings, sdk_config};
use orderly_testkit::processing::{
    notification_log_contract, payment_ledger_contract, reservations_contract, saga_log_contract,
    steps_with_effects_contract,
};
use orderly_testkit::{idempotency_contract, inventory_contract, order_store_contract};

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn endpoint() -> String {
    std::env::var(orderly_config::env::harness::TEST_AWS_ENDPOINT).expect(
        "ORDERLY_TEST_AWS_ENDPOINT is not set: run scripts/test.sh, which starts the moto \
         emulator, or start `moto_server` yourself and point this variable at it",
    )
}

/// A store on freshly created tables with a unique prefix.
async fn fresh() -> DynamoStore {
    let settings = AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint()),
    };
    let client = aws_sdk_dynamodb::Client::new(&sdk_config(&settings).await);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tables = Tables::with_prefix(&format!("t{}-{n}", std::process::id()));
    create_tables(&client, &tables)
        .await
        .expect("create tables");
    DynamoStore::new(client, tables)
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn dynamodb_order_store() {
    order_store_contract(fresh).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn dynamodb_inventory() {
    inventory_contract(fresh).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn dynamodb_idempotency() {
    idempotency_contract(fresh).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn dynamodb_reservations() {
    reservations_contract(fresh).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn dynamodb_payment_ledger() {
    payment_ledger_contract(fresh).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn dynamodb_saga_log() {
    saga_log_contract(fresh).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn dynamodb_steps_with_effects() {
    steps_with_effects_contract(fresh).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn dynamodb_notification_log() {
    notification_log_contract(fresh).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn dynamodb_api_keys() {
    orderly_testkit::api_keys_contract(fresh).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn twenty_concurrent_orders_for_the_last_unit_exactly_one_reserves() {
    use orderly_core::ports::{Inventory, OrderStore, Reservations, ReserveOutcome};
    use orderly_core::{DomainEvent, EventType, Money, OrderItem, Qty};
    use std::sync::Arc;

    let store = Arc::new(fresh().await);
    store
        .put_product(
            orderly_testkit::spec("LAST", 1000, 1),
            orderly_testkit::t0(),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut o = orderly_testkit::order("racer", i);
            o.items = vec![OrderItem {
                product_id: "LAST".parse().unwrap(),
                qty: Qty::new(1).unwrap(),
                unit_price: Money::from_minor(1000).unwrap(),
            }];
            store.create(orderly_testkit::new_order(&o)).await.unwrap();
            let e = DomainEvent::new(
                o.order_id,
                EventType::InventoryReserved,
                o.created_at,
                serde_json::json!({}),
            );
            store.reserve(&o, e, None).await.unwrap()
        }));
    }
    let mut reserved = 0;
    for t in tasks {
        match t.await.unwrap() {
            ReserveOutcome::Reserved => reserved += 1,
            ReserveOutcome::Insufficient { available: 0, .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(reserved, 1);
    let stock = store
        .product(&"LAST".parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .stock;
    assert_eq!(stock, 0);
}
