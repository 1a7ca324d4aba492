//! `orderly serve --backend aws` end to end on the moto emulator: the API, the stream
//! relay, SQS, the local saga engine, EventBridge rules into the subscriber queues, SNS.
//! Built only with the `aws` feature; `scripts/test.sh` starts moto and sets
//! `ORDERLY_TEST_AWS_ENDPOINT`.

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestApp, spawn_with, typical_request};
use orderly::Backend;
use orderly::aws::AwsOptions;
use orderly_aws::aws_sdk_dynamodb::types::AttributeValue;
use orderly_aws::deployment::Deployment;
use orderly_aws::dynamo::{DynamoStore, Tables};
use orderly_aws::{AwsSettings, sdk_config};
use orderly_core::ports::NotificationLog;
use serde_json::json;

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn settings() -> AwsSettings {
    AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(
            std::env::var(orderly_config::env::harness::TEST_AWS_ENDPOINT).expect(
                "ORDERLY_TEST_AWS_ENDPOINT is not set: run scripts/test.sh, which starts the moto \
             emulator, or start `moto_server` yourself and point this variable at it",
            ),
        ),
    }
}

/// A server on a fresh deployment (unique prefix), created by `--create-resources`.
async fn spawn_aws() -> (TestApp, Tables, tempfile::TempDir) {
    if let Ok(filter) = std::env::var(orderly_config::env::harness::TEST_LOG) {
        orderly::init_logging(orderly::LogFormat::Pretty, &filter);
    }
    let prefix = format!(
        "e2e{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    let deployment = Deployment::new(prefix);
    let tables = deployment.tables();
    let mut opts = AwsOptions::new(deployment);
    opts.settings = settings();
    opts.create_resources = true;
    cfg.backend = Backend::Aws(opts);
    (spawn_with(cfg).await, tables, dir)
}

async fn dynamo() -> orderly_aws::aws_sdk_dynamodb::Client {
    orderly_aws::aws_sdk_dynamodb::Client::new(&sdk_config(&settings()).await)
}

async fn item(
    client: &orderly_aws::aws_sdk_dynamodb::Client,
    table: &str,
    key: (&str, &str),
) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .key(key.0, AttributeValue::S(key.1.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
        .unwrap_or_else(|| panic!("no item {key:?} in {table}"))
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => n.clone(),
        other => panic!("{name} is {other:?}"),
    }
}

/// Items of an order in a table with a sort key.
async fn count_items(
    client: &orderly_aws::aws_sdk_dynamodb::Client,
    table: &str,
    id: &str,
) -> usize {
    client
        .query()
        .table_name(table)
        .key_condition_expression("orderId = :o")
        .expression_attribute_values(":o", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn orders_reach_a_terminal_status_with_every_record_in_dynamodb() {
    let (mut app, tables, _dir) = spawn_aws().await;
    let r = app
        .post_order_with_key(&typical_request(), "aws-e2e-first-order")
        .await;
    assert_eq!(r.status(), 201);
    let placed: serde_json::Value = r.json().await.unwrap();
    let id = placed["orderId"].as_str().unwrap().to_owned();
    assert_eq!(placed["status"], "PENDING");

    let done = app.wait_terminal(&id, 60).await;
    assert_eq!(done["status"], "FULFILLED", "{done}");
    assert!(done["trackingId"].as_str().unwrap().starts_with("TRK-"));
    assert_eq!(
        app.timeline(&id).await,
        [
            "OrderCreated",
            "InventoryReserved",
            "PaymentCompleted",
            "OrderConfirmed",
            "OrderPlaced",
            "FulfillmentCompleted"
        ]
    );

    // Every record is in the tables, not just answered by the API.
    let ddb = dynamo().await;
    let order = item(&ddb, &tables.orders, ("orderId", &id)).await;
    assert_eq!(text(&order, "status"), "FULFILLED");
    assert_eq!(
        text(&order, "trackingId"),
        done["trackingId"].as_str().unwrap()
    );
    assert_eq!(text(&order, "totalMinor"), "10997");
    assert_eq!(
        text(
            &item(&ddb, &tables.inventory, ("productId", "PROD-001")).await,
            "stock"
        ),
        "498"
    );
    assert_eq!(
        text(
            &item(&ddb, &tables.inventory, ("productId", "PROD-003")).await,
            "stock"
        ),
        "199"
    );
    // Stored within the caller's scope (the bootstrap admin key acts as user `admin`).
    let stored = "aws-e2e-first-order"
        .parse::<orderly_core::IdempotencyKey>()
        .unwrap()
        .scoped("user:admin");
    let idem = item(&ddb, &tables.idempotency, ("key", stored.as_str())).await;
    assert_eq!(text(&idem, "orderId"), id);
    // Six events, each with its once-marker.
    assert_eq!(count_items(&ddb, &tables.events, &id).await, 12);
    assert!(
        count_items(&ddb, &tables.saga, &id).await >= 2,
        "reservation and payment"
    );
    // The notifications subscriber got OrderPlaced and FulfillmentCompleted off the bus.
    let store = DynamoStore::new(ddb.clone(), tables.clone());
    let oid = id.parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let sent = store.sent_for(oid).await.unwrap();
        if sent.len() >= 2 {
            let subjects: Vec<&str> = sent.iter().map(|(s, _, _)| s.as_str()).collect();
            assert_eq!(sent.len(), 2, "{subjects:?}");
            assert!(
                sent.iter()
                    .all(|(_, to, transport)| to == "ada@example.com" && transport == "sns"),
                "{sent:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "notifications missing: {sent:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The same key answers the same order again.
    let again = app
        .post_order_with_key(&typical_request(), "aws-e2e-first-order")
        .await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");

    // A declined order compensates: FAILED, stock back.
    let r = app
        .post_order(&json!({"userId": "user-9", "items": [{"productId": "PROD-005", "qty": 60}]}))
        .await;
    assert_eq!(r.status(), 201);
    let declined: serde_json::Value = r.json().await.unwrap();
    let did = declined["orderId"].as_str().unwrap().to_owned();
    let failed = app.wait_terminal(&did, 60).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert!(
        failed["failureReason"]
            .as_str()
            .unwrap()
            .contains("declined")
    );
    assert_eq!(
        app.timeline(&did).await,
        [
            "OrderCreated",
            "InventoryReserved",
            "PaymentFailed",
            "InventoryReleased",
            "OrderFailed"
        ]
    );
    assert_eq!(app.stock("PROD-005").await, 100);

    // A cancellation queued through the stream runs its compensations.
    let c = app.create("user-7", "PROD-002", 3).await;
    let cid = c["orderId"].as_str().unwrap().to_owned();
    let r = app
        .client
        .delete(app.url(&format!("/orders/{cid}")))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 200 || r.status() == 409, "{}", r.status());
    let end = app.wait_terminal(&cid, 60).await;
    if end["status"] == "CANCELLED" {
        // Stock is conserved whatever the saga had done before the cancellation.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while app.stock("PROD-002").await != 300 {
            assert!(
                std::time::Instant::now() < deadline,
                "PROD-002 stock not restored"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    app.stop().await;
}
