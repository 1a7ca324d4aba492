//! `spawn_app`: the server started in-process on port 0 with a temporary data directory,
//! plus a client and helpers. Each test gets its own server and store.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use orderly::{Running, ServeConfig};
use serde_json::{Value, json};

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    running: Option<Running>,
    _dir: Option<tempfile::TempDir>,
}

pub fn config(data_dir: &Path) -> ServeConfig {
    let mut cfg = ServeConfig::new(data_dir.to_owned());
    cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg
}

/// A server on a fresh temporary data directory, seeded with the seed catalogue.
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(dir.path());
    let mut app = spawn_with(cfg).await;
    app._dir = Some(dir);
    app
}

/// A server with a custom configuration.
pub async fn spawn_with(cfg: ServeConfig) -> TestApp {
    let data_dir = cfg.data_dir.clone();
    let running = orderly::start(cfg).await.expect("server starts");
    TestApp {
        addr: running.addr(),
        client: reqwest::Client::new(),
        data_dir,
        running: Some(running),
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
        let running = orderly::start(config(&self.data_dir))
            .await
            .expect("restart");
        self.addr = running.addr();
        self.running = Some(running);
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }
}

/// The request of SPEC.md / seed 001.
pub fn seed_001_request() -> Value {
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
