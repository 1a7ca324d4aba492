//! Orders processed end to end by `orderly serve` (API and worker in one process).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::smtp::SmtpSink;
use common::{assert_error, spawn_app, spawn_configured};
use orderly_core::ports::Queue;
use serde_json::{Value, json};

#[tokio::test]
async fn an_order_reaches_fulfilled_with_its_whole_timeline() {
    let app = spawn_app().await;
    let o = app.create("user-1", "PROD-009", 3).await;
    let id = o["orderId"].as_str().unwrap();
    let done = app.wait_terminal(id, 20).await;
    assert_eq!(done["status"], "FULFILLED");
    assert!(done["trackingId"].as_str().unwrap().starts_with("TRK-"));
    assert!(done["failureReason"].is_null());
    assert_eq!(
        app.timeline(id).await,
        [
            "OrderCreated",
            "InventoryReserved",
            "PaymentCompleted",
            "OrderConfirmed",
            "OrderPlaced",
            "FulfillmentCompleted"
        ]
    );
    assert_eq!(
        app.stock("PROD-009").await,
        77,
        "decremented by exactly the ordered quantity"
    );
    // A fulfilled order can no longer be cancelled.
    let r = app
        .client
        .delete(app.url(&format!("/orders/{id}")))
        .send()
        .await
        .unwrap();
    assert_error(r, 409, "order_not_cancellable", None).await;
}

#[tokio::test]
async fn failures_end_failed_with_a_reason_and_stock_restored() {
    let app = spawn_app().await;
    let declined = app.create("user-1", "PROD-005", 60).await; // 11,999.40 over the limit
    let short = app.create("user-1", "PROD-005", 101).await; // more than the 100 in stock
    for (o, reason) in [
        (&declined, "exceeds the limit"),
        (&short, "insufficient stock"),
    ] {
        let id = o["orderId"].as_str().unwrap();
        let done = app.wait_terminal(id, 20).await;
        assert_eq!(done["status"], "FAILED");
        assert!(
            done["failureReason"].as_str().unwrap().contains(reason),
            "{done}"
        );
    }
    assert_eq!(app.stock("PROD-005").await, 100);
    let d = declined["orderId"].as_str().unwrap();
    assert_eq!(
        app.timeline(d).await,
        [
            "OrderCreated",
            "InventoryReserved",
            "PaymentFailed",
            "InventoryReleased",
            "OrderFailed"
        ]
    );
}

#[tokio::test]
async fn fifty_concurrent_orders_for_the_last_unit_exactly_one_wins() {
    let app = spawn_app().await;
    let r = app
        .client
        .put(app.url("/products/LAST-UNIT"))
        .json(&json!({"name": "Last unit", "price": 15.0, "stock": 1, "category": "Test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = app.client.clone();
        let url = app.url("/orders");
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"userId": format!("racer-{i}"), "items": [{"productId": "LAST-UNIT", "qty": 1}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["orderId"].as_str().unwrap().to_owned()
        }));
    }
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        let id = t.await.unwrap();
        let o = app.wait_terminal(&id, 30).await;
        *by_status
            .entry(o["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(by_status.get("FULFILLED"), Some(&1), "{by_status:?}");
    assert_eq!(by_status.get("FAILED"), Some(&49), "{by_status:?}");
    assert_eq!(app.stock("LAST-UNIT").await, 0);
}

#[tokio::test]
async fn transient_payment_failures_recover() {
    let app = spawn_configured(|c| c.processing.payment.transient_failures = 2).await;
    let o = app.create("user-1", "PROD-010", 1).await;
    let done = app.wait_terminal(o["orderId"].as_str().unwrap(), 20).await;
    assert_eq!(done["status"], "FULFILLED");
}

#[tokio::test]
async fn cancellations_racing_the_saga_never_leak_stock_or_money() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let o = app.create(&format!("c-{i}"), "PROD-007", 2).await;
        let id = o["orderId"].as_str().unwrap().to_owned();
        if i % 3 != 0 {
            // Cancel at once, racing the worker.
            let r = app
                .client
                .delete(app.url(&format!("/orders/{id}")))
                .send()
                .await
                .unwrap();
            assert!(r.status() == 200 || r.status() == 409, "{}", r.status());
        }
        ids.push(id);
    }
    let mut held = 0;
    for id in &ids {
        let o = app.wait_terminal(id, 30).await;
        let t = app.timeline(id).await;
        let has = |k: &str| t.iter().any(|e| e == k);
        match o["status"].as_str().unwrap() {
            "FULFILLED" => held += 2,
            "CANCELLED" => {
                assert_eq!(
                    has("InventoryReserved"),
                    has("InventoryReleased"),
                    "{id}: {t:?}"
                );
                assert_eq!(
                    has("PaymentCompleted"),
                    has("PaymentRefunded"),
                    "{id}: {t:?}"
                );
            }
            other => panic!("{id} ended {other}: {t:?}"),
        }
    }
    // Queued compensations may still be finishing; give them a moment, then check.
    let mut stock = 0;
    for _ in 0..200 {
        stock = app.stock("PROD-007").await;
        if stock + held == 120 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stock + held, 120, "stock conserved");
}

#[tokio::test]
async fn the_order_placed_mail_reaches_the_smtp_server() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_configured(move |c| c.processing.smtp_url = Some(url)).await;
    let r = app.post_order(&common::typical_request()).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_terminal(&id, 20).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mails = sink.mails();
        let placed = mails
            .iter()
            .find(|m| m.data.contains(&format!("Subject: Order {id} confirmed")));
        if let Some(m) = placed {
            assert_eq!(m.to, ["<ada@example.com>"]);
            assert!(m.from.contains("orderly@localhost"), "{m:?}");
            assert!(
                m.data.contains(&format!("Thank you for your order {id}")),
                "{}",
                m.data
            );
            assert!(m.data.contains("109.97"), "{}", m.data);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no mail arrived: {mails:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn poison_messages_show_up_in_the_dlq_and_replay_through_the_api() {
    let app = spawn_app().await;
    // Another process (here: another connection) writes a message nobody can process.
    let side = orderly_sqlite::SqliteStore::open(&app.data_dir, Default::default()).unwrap();
    side.send("orders", "{\"orderId\": 42}", Duration::ZERO)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let (status, body) = app.get_json("/admin/dlq").await;
        assert_eq!(status, 200);
        let items = body["items"].as_array().unwrap().clone();
        if !items.is_empty() {
            break items;
        }
        assert!(std::time::Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["queue"], "orders");
    assert_eq!(dead[0]["receiveCount"], 3);
    assert!(
        dead[0]["lastError"]
            .as_str()
            .unwrap()
            .contains("malformed order message")
    );
    let id = dead[0]["id"].as_str().unwrap();
    // A blank body is malformed, never "replay everything".
    for blank in [" ", "\n", "\t", " \r\n "] {
        let r = app
            .client
            .post(app.url("/admin/dlq/replay"))
            .header("content-type", "application/json")
            .body(blank)
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "malformed_json", Some("body")).await;
    }
    let (_, still) = app.get_json("/admin/dlq").await;
    assert_eq!(
        still["items"].as_array().unwrap().len(),
        1,
        "the DLQ is untouched"
    );
    let r = app
        .client
        .post(app.url("/admin/dlq/replay"))
        .json(&json!({"ids": [id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["replayed"], json!([id]));
    let r = app
        .client
        .post(app.url("/admin/dlq/replay"))
        .json(&json!({"ids": "all"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "validation_failed", Some("ids")).await;
    side.close();
}
