//! Nothing a test server does leaves the machine: with `--egress loopback` (what every test,
//! fuzz and benchmark server runs with) webhooks to public addresses, to private ones, and
//! to names other than `localhost` are refused without a connection or a name lookup, while
//! a receiver on loopback still gets its deliveries.
//!
//! The test reads the refusals from the API's delivery log. That no packet and no DNS query
//! left the machine meanwhile is what `scripts/test.sh` checks around the whole test run:
//! it runs `cargo test` under strace (`scripts/egress.sh`) and fails on any connection or
//! datagram to an address outside loopback, and on any DNS query.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{self, TestApp};

/// Webhook URLs off the machine, as a fuzzer would generate them.
const OFF_MACHINE: [&str; 4] = [
    "http://3.101.179.203/hook",
    "https://hooks.example.com/orderly",
    "http://10.0.0.1:8080/hook",
    "http://169.254.169.254/latest/meta-data",
];

/// A receiver on 127.0.0.1 that counts the requests it gets; answers its URL.
async fn loopback_receiver(count: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hook")
}

/// Registers a webhook for every event; answers its id.
async fn register(client: &reqwest::Client, base: &str, url: &str) -> String {
    let r = client
        .post(format!("{base}/admin/webhooks"))
        .json(&json!({"url": url, "events": ["*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "registering {url}");
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The delivery log of a webhook once it has at least one attempt (at most 20 s).
async fn attempts(client: &reqwest::Client, base: &str, id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client
            .get(format!("{base}/admin/webhooks/{id}/deliveries"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let items = r.json::<Value>().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .clone();
        if !items.is_empty() {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery attempt for webhook {id}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Places one order (its events are what the webhooks get).
async fn place_order(client: &reqwest::Client, base: &str) {
    let r = client
        .post(format!("{base}/orders"))
        .json(&json!({"userId": "egress-user", "items": [{"productId": "PROD-001", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// Registers the off-machine webhooks and a loopback one, places an order, and checks that
/// every off-machine attempt was refused by the policy while loopback got its deliveries.
async fn exercise(client: &reqwest::Client, base: &str) {
    let delivered = Arc::new(AtomicUsize::new(0));
    let local = loopback_receiver(delivered.clone()).await;
    let local_id = register(client, base, &local).await;
    let mut ids = Vec::new();
    for url in OFF_MACHINE {
        ids.push((url, register(client, base, url).await));
    }
    place_order(client, base).await;
    for (url, id) in &ids {
        let log = attempts(client, base, id).await;
        for a in &log {
            assert!(
                a["outcome"] == "failed" || a["outcome"] == "dead",
                "{url}: {a}"
            );
            let error = a["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("refused by the egress policy"),
                "{url}: the attempt failed for another reason: {a}"
            );
            assert!(a["statusCode"].is_null(), "{url}: {a}");
        }
    }
    let log = attempts(client, base, &local_id).await;
    assert!(
        log.iter().any(|a| a["outcome"] == "delivered"),
        "the loopback receiver got nothing: {log:?}"
    );
    assert!(delivered.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn webhooks_off_the_machine_are_refused_and_loopback_ones_delivered() {
    let app: TestApp = common::spawn_configured(|c| {
        c.processing.webhooks.retry_base = Duration::from_millis(50);
    })
    .await;
    let base = app.url("");
    exercise(&app.client, base.trim_end_matches('/')).await;
}
