//! Metrics at /metrics and the in-process alarms. One test per concern; the metrics
//! registry is process-wide, so counts are compared before and after.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client_with_key, spawn_configured};
use orderly::ops::sum_series;
use orderly_core::ports::Queue;
use serde_json::{Value, json};

async fn metrics(app: &common::TestApp) -> String {
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "Prometheus text"
    );
    r.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_orders_requests_and_saga_outcomes() {
    if !crate::common::in_own_process("ops::metrics_count_orders_requests_and_saga_outcomes") {
        return;
    }
    let app = spawn_configured(|c| c.ops.interval = Duration::from_millis(100)).await;
    let before = metrics(&app).await;
    let created = |t: &str| sum_series(t, "orderly_orders_created_total", |_| true);
    let fulfilled = |t: &str| sum_series(t, "orderly_orders_fulfilled_total", |_| true);
    let failed = |t: &str| sum_series(t, "orderly_orders_failed_total", |_| true);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            app.create("m-user", "PROD-001", 1).await["orderId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // 60 x PROD-005 is over the simulator's decline limit: a failed saga.
    ids.push(
        app.create("m-user", "PROD-005", 60).await["orderId"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    for id in &ids {
        app.wait_terminal(id, 20).await;
    }
    // Gauges are sampled every 100 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = metrics(&app).await;
    assert_eq!(created(&after) - created(&before), 4.0, "{after}");
    assert_eq!(fulfilled(&after) - fulfilled(&before), 3.0);
    assert_eq!(failed(&after) - failed(&before), 1.0);
    let payments = |t: &str| {
        (
            sum_series(t, "orderly_payments_processed_total", |_| true),
            sum_series(t, "orderly_payments_failed_total", |_| true),
        )
    };
    let (p0, f0) = payments(&before);
    let (p1, f1) = payments(&after);
    assert_eq!((p1 - p0, f1 - f0), (3.0, 1.0));
    let posts = sum_series(&after, "orderly_http_requests_total", |l| {
        l.contains("route=\"/orders\"")
            && l.contains("method=\"POST\"")
            && l.contains("status=\"201\"")
    });
    assert!(posts >= 4.0, "{after}");
    // Histograms with buckets, by outcome and by route.
    assert!(
        after.contains("orderly_saga_duration_seconds_bucket{outcome=\"fulfilled\""),
        "{after}"
    );
    assert!(after.contains("orderly_saga_duration_seconds_bucket{outcome=\"failed\""));
    assert!(after.contains(
        "orderly_http_request_duration_seconds_bucket{route=\"/orders\",method=\"POST\""
    ));
    assert!(after.contains("orderly_queue_depth{queue=\"orders\"}"));
    assert!(after.contains("orderly_dlq_depth"));

    // Admins only.
    let anonymous = reqwest::Client::new()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let cfg = orderly::ServeConfig::new(app.data_dir.clone());
    let opened = orderly::open_backend(&cfg).await.unwrap();
    let key = opened
        .keys
        .create(
            orderly_auth::Role::Customer,
            Some("m-user".parse().unwrap()),
            None,
        )
        .await
        .unwrap();
    opened.close().await.unwrap();
    let customer = client_with_key(&key.key);
    assert_eq!(
        customer
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        customer
            .get(app.url("/admin/alarms"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}

/// A tiny HTTP receiver that records the JSON bodies POSTed to it.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/alarm",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alarm", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[tokio::test]
async fn dead_letters_above_the_threshold_raise_the_dlq_alarm_and_notify() {
    if !crate::common::in_own_process(
        "ops::dead_letters_above_the_threshold_raise_the_dlq_alarm_and_notify",
    ) {
        return;
    }
    let (url, got) = receiver().await;
    let sink = common::smtp::SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_configured(move |c| {
        c.ops.interval = Duration::from_millis(100);
        c.ops.alarms.dlq_depth = 1.0;
        c.ops.alarm_webhook = Some(url);
        c.ops.alarm_email = Some("ops@example.com".parse().unwrap());
        c.processing.smtp_url = Some(smtp);
    })
    .await;
    let alarm = |items: &Value| {
        items["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "dlq_depth")
            .cloned()
            .unwrap()
    };
    let (status, body) = app.get_json("/admin/alarms").await;
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().unwrap().len(), 3, "{body}");
    // Two poison messages: more than one dead letter.
    let side = orderly_sqlite::SqliteStore::open(&app.data_dir, Default::default()).unwrap();
    for n in 0..2 {
        side.send("orders", &format!("{{\"orderId\": {n}}}"), Duration::ZERO)
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = app.get_json("/admin/alarms").await;
        let a = alarm(&body);
        if a["state"] == "ALARM" {
            assert_eq!(a["value"], 2.0);
            assert_eq!(a["threshold"], 1.0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never fired: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The change was posted to the webhook.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let posted = got.lock().unwrap().clone();
        if let Some(change) = posted.iter().find(|c| c["alarm"]["state"] == "ALARM") {
            assert_eq!(change["alarm"]["name"], "dlq_depth");
            assert_eq!(change["from"], "OK");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no notification: {posted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And mailed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mails = sink.mails();
        if let Some(m) = mails
            .iter()
            .find(|m| m.data.contains("Subject: [Orderly] dlq_depth is ALARM"))
        {
            assert_eq!(m.to, ["<ops@example.com>"]);
            assert!(m.data.contains("Threshold: 1"), "{}", m.data);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no alarm mail: {mails:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // (`orderly_alarm_state` is a process-wide gauge; with two servers in this test
    // process it is not asserted here.)
    // Replaying the dead letters empties the DLQ (they will die again, but the alarm
    // clears in between).
    let r = app
        .client
        .post(app.url("/admin/dlq/replay"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
