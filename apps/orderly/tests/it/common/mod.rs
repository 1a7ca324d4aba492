//! `spawn_app`: the server started in-process on port 0 with a temporary data directory,
//! plus a client and helpers. Each test gets its own server and store.

#![allow(dead_code, clippy::unwrap_used)]

pub mod smtp;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use orderly::{Running, ServeConfig};
use serde_json::{Value, json};

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    running: Option<Running>,
    worker: bool,
    _dir: Option<tempfile::TempDir>,
}

pub fn config(data_dir: &Path) -> ServeConfig {
    let mut cfg = ServeConfig::new(data_dir.to_owned());
    cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.processing.saga.payment_base_delay_ms = 5;
    cfg.processing.redelivery_base = std::time::Duration::from_millis(20);
    cfg.processing.visibility = std::time::Duration::from_secs(5);
    // The suites send hundreds of requests a second with one key; the rate-limit tests
    // set their own limits.
    cfg.auth.rate_limit = orderly_auth::limit::RateLimitConfig::disabled();
    // Likewise for requests in flight per credential (the load tests run more than the
    // default 64 at once; tests/it/hostile.rs checks the limit on the real binary).
    cfg.http.max_concurrent_per_credential = 1_000_000;
    // Nothing a test server does may leave the machine: webhooks, mail and alarms go to
    // loopback only, and no name but `localhost` is looked up.
    cfg.processing.egress = orderly_core::egress::EgressPolicy::loopback();
    cfg
}

/// The admin key the server saved on first start in `data_dir`.
pub fn admin_key(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join(orderly::ADMIN_KEY_FILE))
        .expect("the first start saved an admin key")
        .trim()
        .to_owned()
}

/// A client that sends `key` as `x-api-key` on every request.
pub fn client_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", key.parse().expect("header value"));
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// A server (API and worker) on a fresh temporary data directory, seeded with the seed
/// catalogue, with fast retries.
pub async fn spawn_app() -> TestApp {
    spawn_configured(|_| {}).await
}

/// The API alone (no worker): orders stay as the API leaves them.
pub async fn spawn_api_only() -> TestApp {
    spawn_configured(|c| c.run_worker = false).await
}

/// A server on a fresh temporary data directory after `tweak` adjusts its configuration.
pub async fn spawn_configured(tweak: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = config(dir.path());
    tweak(&mut cfg);
    let mut app = spawn_with(cfg).await;
    app._dir = Some(dir);
    app
}

/// A server with a custom configuration.
pub async fn spawn_with(cfg: ServeConfig) -> TestApp {
    let data_dir = cfg.data_dir.clone();
    let worker = cfg.run_worker;
    let serves_api = cfg.serve_api;
    let running = orderly::start(cfg).await.expect("server starts");
    let client = if serves_api {
        client_with_key(&admin_key(&data_dir))
    } else {
        reqwest::Client::new()
    };
    TestApp {
        addr: running.addr(),
        client,
        data_dir,
        running: Some(running),
        worker,
        _dir: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_order(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/orders"))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_order_with_key(&self, body: &Value, key: &str) -> reqwest::Response {
        self.client
            .post(self.url("/orders"))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.get(path).await;
        let status = r.status().as_u16();
        (status, r.json().await.expect("json body"))
    }

    /// Creates an order and returns its JSON.
    pub async fn create(&self, user: &str, product: &str, qty: u32) -> Value {
        let r = self
            .post_order(&json!({"userId": user, "items": [{"productId": product, "qty": qty}]}))
            .await;
        assert_eq!(r.status(), 201);
        r.json().await.expect("json")
    }

    /// Stops the server gracefully and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut cfg = config(&self.data_dir);
        cfg.run_worker = self.worker;
        let running = orderly::start(cfg).await.expect("restart");
        self.addr = running.addr();
        self.running = Some(running);
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }
}

/// A typical order request (two lines, an email and a total).
pub fn typical_request() -> Value {
    json!({
        "userId": "user-123",
        "customerEmail": "ada@example.com",
        "items": [ { "productId": "PROD-001", "qty": 2 }, { "productId": "PROD-003", "qty": 1 } ],
        "totalAmount": 109.97
    })
}

/// Asserts an error body: status, code, and (if given) that `field` is named in details.
pub async fn assert_error(
    r: reqwest::Response,
    status: u16,
    code: &str,
    field: Option<&str>,
) -> Value {
    assert_eq!(r.status().as_u16(), status, "status");
    let body: Value = r.json().await.expect("error body is JSON");
    assert_eq!(body["error"], code, "error code in {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
    let details = body["details"].as_array().expect("details array");
    if let Some(field) = field {
        assert!(
            details.iter().any(|d| d["field"] == field && d["reason"].as_str().is_some_and(|r| !r.is_empty())),
            "field {field} not named in {body}"
        );
    }
    body
}

impl TestApp {
    /// Polls an order until its status is terminal (or `secs` pass) and returns it.
    pub async fn wait_terminal(&self, id: &str, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let (status, o) = self.get_json(&format!("/orders/{id}")).await;
            assert_eq!(status, 200);
            if matches!(
                o["status"].as_str(),
                Some("FULFILLED" | "FAILED" | "CANCELLED")
            ) {
                return o;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "order {id} stuck: {o}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The detail types of an order's timeline.
    pub async fn timeline(&self, id: &str) -> Vec<String> {
        let (_, events) = self.get_json(&format!("/orders/{id}/events")).await;
        events["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["detailType"].as_str().expect("type").to_owned())
            .collect()
    }

    pub async fn stock(&self, product: &str) -> u64 {
        let (_, p) = self.get_json(&format!("/products/{product}")).await;
        p["stock"].as_u64().expect("stock")
    }
}

/// Runs the calling test in a process of its own, for tests that read process-wide state
/// (the metrics recorder is global to a process, and the other tests of this binary run
/// servers beside it). In the parent it runs this test binary again with only `name`
/// selected and answers `false` once that child passed; in the child it answers `true`:
/// run the test's body. `name` is the test's full path, e.g. `ops::metrics_count_...`.
pub fn in_own_process(name: &str) -> bool {
    const VAR: &str = orderly_config::env::harness::TEST_OWN_PROCESS;
    if std::env::var(VAR).as_deref() == Ok(name) {
        return true;
    }
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([name, "--exact", "--include-ignored", "--test-threads", "1"])
        .env(VAR, name)
        .status()
        .expect("run the test binary again");
    assert!(
        status.success(),
        "{name} failed in its own process (output above)"
    );
    false
}
