//! Webhooks end to end: a receiver on loopback verifies each delivery's signature and
//! records it; the server delivers exactly the matching events once each, retries a
//! failing receiver with backoff, dead-letters a delivery whose attempts run out (every
//! attempt in the log, the message in `/admin/dlq`, replayable), and keeps `/admin/webhooks`
//! for admins with field-level errors.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{TestApp, spawn_configured};
use hmac::{Hmac, Mac};
use orderly_auth::Role;
use serde_json::{Value, json};
use sha2::Sha256;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: String,
}

/// Answers 500 to the first `fail_first` requests (all of them while `always_fail`), then 200.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    fail_first: Arc<AtomicUsize>,
    always_fail: Arc<std::sync::atomic::AtomicBool>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let n = {
        let mut got = r.got.lock().unwrap();
        got.push(Received { headers, body });
        got.len()
    };
    if r.always_fail.load(Ordering::SeqCst) || n <= r.fail_first.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

impl Receiver {
    /// Starts serving on 127.0.0.1, port 0; answers the URL to register.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/hook")
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (at most `secs`), then a little longer so
    /// that an extra one would be seen too.
    async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while self.got().len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} deliveries, got {:?}",
                self.got()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.got()
    }
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {:?}", r.headers))
}

/// Checks the signature the way a receiver would, with its own HMAC.
fn verify(r: &Received, secret: &str) {
    let ts = header(r, "orderly-webhook-timestamp");
    let sent: i64 = ts.parse().unwrap();
    let now = chrono_now_secs();
    assert!(
        (now - sent).abs() <= 300,
        "timestamp {sent} is not now ({now})"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{}", r.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        header(r, "orderly-webhook-signature"),
        format!("v1={expected}"),
        "signature of {}",
        r.body
    );
    assert_eq!(header(r, "content-type"), "application/json");
}

fn chrono_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A server whose webhook retries wait milliseconds, not seconds.
async fn spawn(attempts: u32) -> TestApp {
    spawn_configured(|c| {
        c.processing.webhooks.attempts = attempts;
        c.processing.webhooks.retry_base = Duration::from_millis(30);
        c.processing.webhooks.timeout = Duration::from_secs(3);
    })
    .await
}

async fn register(app: &TestApp, url: &str, events: Value) -> (String, String) {
    let r = app
        .client
        .post(app.url("/admin/webhooks"))
        .json(&json!({"url": url, "events": events, "description": "test receiver"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/admin/webhooks/{id}"));
    assert_eq!(body["url"], url);
    assert_eq!(body["events"], events);
    assert_eq!(body["active"], true);
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    (id, secret)
}

async fn place(app: &TestApp, product: &str) -> String {
    let o = app.create("user-7", product, 1).await;
    let id = o["orderId"].as_str().unwrap().to_owned();
    assert_eq!(app.wait_terminal(&id, 20).await["status"], "FULFILLED");
    id
}

async fn deliveries(app: &TestApp, webhook: &str) -> Vec<Value> {
    let (status, body) = app
        .get_json(&format!("/admin/webhooks/{webhook}/deliveries"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn matching_events_arrive_once_each_signed_with_the_timeline_envelope() {
    let app = spawn(6).await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let (webhook, secret) =
        register(&app, &url, json!(["OrderPlaced", "FulfillmentCompleted"])).await;
    // A second endpoint that wants nothing these orders do gets nothing.
    let other = Receiver::default();
    register(&app, &other.start().await, json!(["OrderCancelled"])).await;

    let orders = [place(&app, "PROD-001").await, place(&app, "PROD-002").await];
    let got = receiver.wait_for(4, 20).await;
    assert_eq!(
        got.len(),
        4,
        "exactly the matching events, once each: {got:?}"
    );
    assert!(other.got().is_empty());

    let mut expected = BTreeSet::new();
    let mut envelopes = HashMap::new();
    for id in &orders {
        let (_, timeline) = app.get_json(&format!("/orders/{id}/events")).await;
        for e in timeline["items"].as_array().unwrap() {
            let kind = e["detailType"].as_str().unwrap().to_owned();
            if kind == "OrderPlaced" || kind == "FulfillmentCompleted" {
                expected.insert((id.clone(), kind.clone()));
                envelopes.insert((id.clone(), kind), e.clone());
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for r in &got {
        verify(r, &secret);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        let key = (
            body["detail"]["orderId"].as_str().unwrap().to_owned(),
            body["detailType"].as_str().unwrap().to_owned(),
        );
        assert_eq!(
            envelopes.get(&key),
            Some(&body),
            "the body is the timeline's envelope"
        );
        assert!(seen.insert(key), "delivered twice: {}", r.body);
        assert!(ids.insert(header(r, "orderly-webhook-id").to_owned()));
        assert_eq!(header(r, "orderly-webhook-attempt"), "1");
    }
    assert_eq!(seen, expected);

    let log = deliveries(&app, &webhook).await;
    assert_eq!(log.len(), 4);
    for a in &log {
        assert_eq!(a["outcome"], "delivered");
        assert_eq!(a["attempt"], 1);
        assert_eq!(a["statusCode"], 204);
        assert_eq!(a["endpointId"], webhook.as_str());
        assert!(ids.contains(a["deliveryId"].as_str().unwrap()));
    }
    // Listing and reading never show the secret again.
    let (_, list) = app.get_json("/admin/webhooks").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&secret));
    let (status, one) = app.get_json(&format!("/admin/webhooks/{webhook}")).await;
    assert_eq!(status, 200);
    assert!(one.get("secret").is_none());
    assert_eq!(
        one["events"],
        json!(["OrderPlaced", "FulfillmentCompleted"])
    );
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_delivery_on_attempt_3() {
    let app = spawn(6).await;
    let receiver = Receiver::default();
    receiver.fail_first.store(2, Ordering::SeqCst);
    let url = receiver.start().await;
    let (webhook, secret) = register(&app, &url, json!(["OrderPlaced"])).await;
    let order = place(&app, "PROD-003").await;

    let got = receiver.wait_for(3, 20).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let attempts: Vec<&str> = got
        .iter()
        .map(|r| header(r, "orderly-webhook-attempt"))
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    for r in &got {
        verify(r, &secret);
        assert_eq!(
            header(r, "orderly-webhook-id"),
            header(&got[0], "orderly-webhook-id"),
            "one delivery id for every attempt"
        );
        assert_eq!(r.body, got[0].body);
    }
    let log = deliveries(&app, &webhook).await;
    let summary: Vec<(u64, &str, u64)> = log
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["outcome"].as_str().unwrap(),
                a["statusCode"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, "delivered", 204),
            (2, "failed", 500),
            (1, "failed", 500)
        ],
        "newest first"
    );
    assert!(log[1]["error"].as_str().unwrap().contains("500"));
    assert_eq!(log[0]["eventType"], "OrderPlaced");
    let (_, timeline) = app.get_json(&format!("/orders/{order}/events")).await;
    let placed = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["detailType"] == "OrderPlaced")
        .unwrap()
        .clone();
    assert_eq!(log[0]["eventId"], placed["id"]);
    let (_, dlq) = app.get_json("/admin/dlq").await;
    assert!(dlq["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_receiver_that_always_fails_ends_dead_lettered_and_a_replay_delivers() {
    let app = spawn(3).await;
    let receiver = Receiver::default();
    receiver.always_fail.store(true, Ordering::SeqCst);
    let url = receiver.start().await;
    let (webhook, _) = register(&app, &url, json!(["OrderPlaced"])).await;
    place(&app, "PROD-004").await;

    // Three attempts, then the message is in the dead-letter queue.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let (_, dlq) = app.get_json("/admin/dlq").await;
        let found: Vec<Value> = dlq["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["queue"] == "webhook-deliveries")
            .cloned()
            .collect();
        if !found.is_empty() {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 1);
    let last_error = dead[0]["lastError"].as_str().unwrap();
    assert!(last_error.contains("attempt 3"), "{last_error}");
    assert!(last_error.contains("500"), "{last_error}");
    let got = receiver.wait_for(3, 5).await;
    assert_eq!(got.len(), 3, "no attempt after the last: {got:?}");

    let log = deliveries(&app, &webhook).await;
    let summary: Vec<(u64, &str)> = log
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(3, "dead"), (2, "failed"), (1, "failed")]);
    for a in &log {
        assert_eq!(a["statusCode"], 500);
        assert!(a["durationMs"].is_u64());
    }

    // The receiver is fixed; replaying the dead letter makes one more attempt.
    receiver.always_fail.store(false, Ordering::SeqCst);
    let r = app
        .client
        .post(app.url("/admin/dlq/replay"))
        .json(&json!({"ids": [dead[0]["id"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = receiver.wait_for(4, 10).await;
    assert_eq!(got.len(), 4);
    assert_eq!(header(&got[3], "orderly-webhook-attempt"), "4");
    let log = deliveries(&app, &webhook).await;
    assert_eq!(log[0]["attempt"], 4);
    assert_eq!(log[0]["outcome"], "delivered");
    let (_, dlq) = app.get_json("/admin/dlq").await;
    assert!(dlq["items"].as_array().unwrap().is_empty());
}

async fn customer_key(app: &TestApp) -> String {
    let cfg = orderly::ServeConfig::new(app.data_dir.clone());
    let opened = orderly::open_backend(&cfg).await.unwrap();
    let k = opened
        .keys
        .create(Role::Customer, Some("user-7".parse().unwrap()), None)
        .await
        .unwrap();
    opened.close().await.unwrap();
    k.key
}

#[tokio::test]
async fn admins_only_bad_input_is_400_by_field_and_disabled_endpoints_get_nothing() {
    let app = spawn(6).await;
    let customer = common::client_with_key(&customer_key(&app).await);
    for r in [
        customer
            .get(app.url("/admin/webhooks"))
            .send()
            .await
            .unwrap(),
        customer
            .post(app.url("/admin/webhooks"))
            .json(&json!({"url": "https://example.com/h", "events": ["*"]}))
            .send()
            .await
            .unwrap(),
    ] {
        common::assert_error(r, 403, "forbidden", None).await;
    }
    let anonymous = reqwest::Client::new();
    let r = anonymous
        .get(app.url("/admin/webhooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let bad = [
        (
            json!({"url": "ftp://example.com/h", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "https://user:pw@example.com/h", "events": ["*"]}),
            "url",
        ),
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (json!({"events": ["*"]}), "url"),
        (
            json!({"url": "https://example.com/h", "events": ["OrderShipped"]}),
            "events[0]",
        ),
        (
            json!({"url": "https://example.com/h", "events": []}),
            "events",
        ),
        (json!({"url": "https://example.com/h"}), "events"),
        (
            json!({"url": "https://example.com/h", "events": ["*"], "secret": "mine"}),
            "secret",
        ),
    ];
    for (body, field) in bad {
        let r = app
            .client
            .post(app.url("/admin/webhooks"))
            .json(&body)
            .send()
            .await
            .unwrap();
        common::assert_error(r, 400, "validation_failed", Some(field)).await;
    }
    let r = app.get("/admin/webhooks/not-a-uuid").await;
    common::assert_error(r, 400, "validation_failed", Some("webhookId")).await;
    let r = app
        .get("/admin/webhooks/0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c")
        .await;
    common::assert_error(r, 404, "not_found", None).await;

    // A disabled endpoint gets nothing; deleting removes it.
    let receiver = Receiver::default();
    let (webhook, _) = register(&app, &receiver.start().await, json!(["*"])).await;
    let path = format!("/admin/webhooks/{webhook}");
    let r = app
        .client
        .patch(app.url(&path))
        .json(&json!({"active": "no"}))
        .send()
        .await
        .unwrap();
    common::assert_error(r, 400, "validation_failed", Some("active")).await;
    let r = app
        .client
        .patch(app.url(&path))
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["active"], false);
    place(&app, "PROD-005").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.got().is_empty(), "{:?}", receiver.got());
    let r = app.get(&format!("{path}/deliveries?limit=0")).await;
    common::assert_error(r, 400, "validation_failed", Some("limit")).await;
    assert!(deliveries(&app, &webhook).await.is_empty());

    let r = app.client.delete(app.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    common::assert_error(app.get(&path).await, 404, "not_found", None).await;
    let r = app.client.delete(app.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
