//! The port contract suites against the DynamoDB adapters on the moto emulator. The
//! test script starts moto and sets `ORDERLY_TEST_AWS_ENDPOINT`.

#![cfg(feature = "dynamodb")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::atomic::{AtomicUsize, Ordering};

use orderly_aws::dynamo::{DynamoStore, Tables, create_tables};
use orderly_aws::{AwsSettings, sdk_config};
use orderly_testkit::{idempotency_contract, inventory_contract, order_store_contract};

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn endpoint() -> String {
    std::env::var("ORDERLY_TEST_AWS_ENDPOINT").expect(
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
async fn dynamodb_order_store() {
    order_store_contract(fresh).await;
}

#[tokio::test]
async fn dynamodb_inventory() {
    inventory_contract(fresh).await;
}

#[tokio::test]
async fn dynamodb_idempotency() {
    idempotency_contract(fresh).await;
}
