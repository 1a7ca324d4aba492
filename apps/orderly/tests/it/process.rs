//! The `orderly` binary as a user runs it: JSON logs, SIGTERM, `orderly seed`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_orderly");

/// A client sending the admin key the server saved on its first start in `dir`.
fn keyed_client(dir: &std::path::Path) -> reqwest::Client {
    let key = std::fs::read_to_string(dir.join("admin.key")).expect("admin key saved");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", key.trim().parse().expect("header value"));
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// Starts `orderly serve` on port 0; returns the child, its address and its log lines.
fn serve(data_dir: &std::path::Path) -> (std::process::Child, String, mpsc::Receiver<Value>) {
    let mut child = Command::new(BIN)
        // Outbound requests to loopback only, as for every test server.
        .env(orderly_config::env::EGRESS, "loopback")
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(data_dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start orderly");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server starts");
        if line["message"] == "orderly is serving" {
            break line["addr"].as_str().expect("addr").to_owned();
        }
    };
    (child, addr, rx)
}

fn sigterm(child: &std::process::Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
}

#[tokio::test]
async fn json_logs_carry_the_order_id_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, logs) = serve(dir.path());
    let client = keyed_client(dir.path());
    let r = client
        .post(format!("http://{addr}/orders"))
        .json(&json!({"userId": "log-user", "items": [{"productId": "PROD-001", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = client
        .get(format!("http://{addr}/orders/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean exit, got {status}");
    let lines: Vec<Value> = logs.try_iter().collect();
    // The admin key never reaches the logs (it goes to the terminal and admin.key only).
    let key = std::fs::read_to_string(dir.path().join("admin.key")).unwrap();
    let secret = key.trim().rsplit_once('_').map_or(key.trim(), |(_, s)| s);
    let id_and_secret = &key.trim()[4..];
    for l in &lines {
        let text = l.to_string();
        assert!(
            !text.contains(secret) && !text.contains(id_and_secret),
            "a log line holds the key: {text}"
        );
    }
    // Every line logged within a request about this order names it.
    let about: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["span"]["path"].as_str().is_some_and(|u| u.contains(&id))
                || l["order_id"] == id
                || l["span"]["order_id"] == id
        })
        .collect();
    assert!(
        about.len() >= 3,
        "accepted + GET response lines expected: {lines:#?}"
    );
    for l in &about {
        assert!(
            l["span"]["order_id"] == id || l["order_id"] == id,
            "line without order id: {l}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "order accepted" && l["order_id"] == id)
    );
    assert!(
        lines.iter().any(|l| l["message"] == "response"
            && l["span"]["order_id"] == id
            && l["status"] == 201)
    );
    assert!(lines.iter().any(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutting down"))
    }));

    // The order is still there after the clean stop.
    let (mut child, addr, _logs) = serve(dir.path());
    let r = client
        .get(format!("http://{addr}/orders/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

fn seed(dir: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::new(BIN)
        // Outbound requests to loopback only, as for every test server.
        .env(orderly_config::env::EGRESS, "loopback")
        .args(["seed", "--data-dir"])
        .arg(dir)
        .args(extra)
        .output()
        .expect("run seed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `orderly keys ...` on a data directory: (success, stdout, stderr).
fn keys(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        // Outbound requests to loopback only, as for every test server.
        .env(orderly_config::env::EGRESS, "loopback")
        .args(["keys", "--log-format", "json", "--data-dir"])
        .arg(dir)
        .args(args)
        .output()
        .expect("run keys");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn the_keys_commands_create_list_and_revoke_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, key, _) = keys(
        dir.path(),
        &["create", "--role", "customer", "--user", "kim"],
    );
    assert!(ok);
    let key = key.trim().to_owned();
    assert!(key.starts_with("oly_"), "{key}");
    let (ok, _, err) = keys(dir.path(), &["create", "--role", "customer"]);
    assert!(!ok && err.contains("--user"), "{err}");
    let (ok, _, err) = keys(dir.path(), &["create", "--role", "root", "--user", "x"]);
    assert!(!ok && err.contains("root"), "{err}");

    let (ok, listed, _) = keys(dir.path(), &["list"]);
    assert!(ok);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["role"], "customer");
    assert_eq!(items[0]["userId"], "kim");
    assert!(items[0].get("secretHash").is_none());
    assert!(
        !listed.to_string().contains(&key[17..]),
        "list never shows secrets"
    );
    let id = items[0]["id"].as_str().unwrap().to_owned();

    // A store that already has a key gets no bootstrap admin key.
    let (mut child, addr, _logs) = serve(dir.path());
    assert!(!dir.path().join("admin.key").exists());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", key.parse().unwrap());
    let kim = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let r = kim
        .get(format!("http://{addr}/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (ok, out, _) = keys(dir.path(), &["revoke", &id]);
    assert!(ok, "{out}");
    let r = kim
        .get(format!("http://{addr}/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "revoked from another process takes effect at once"
    );
    let (ok, _, err) = keys(dir.path(), &["revoke", "0123456789ab"]);
    assert!(!ok && err.contains("no API key"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn seed_is_idempotent_unless_asked_to_add_stock() {
    let dir = tempfile::tempdir().unwrap();
    let first = seed(dir.path(), &[]);
    assert_eq!(first.matches("Created").count(), 10, "{first}");
    let second = seed(dir.path(), &[]);
    assert_eq!(second.matches("Kept").count(), 10, "{second}");
    let added = seed(dir.path(), &["--add-stock"]);
    assert_eq!(added.matches("StockAdded").count(), 10, "{added}");

    let (mut child, addr, _logs) = serve(dir.path());
    let products: Value = keyed_client(dir.path())
        .get(format!("http://{addr}/products"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stock: Vec<u64> = products["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["stock"].as_u64().unwrap())
        .collect();
    assert_eq!(stock, [1000, 600, 400, 300, 200, 500, 240, 800, 160, 700]);
    child.kill().unwrap();
    child.wait().unwrap();

    let reset = seed(dir.path(), &["--reset"]);
    assert_eq!(reset.matches("Reset").count(), 10, "{reset}");
}

#[tokio::test]
async fn a_separate_worker_process_processes_what_an_api_only_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    // The API alone, in this process, with no worker of its own.
    let mut cfg = orderly::ServeConfig::new(dir.path().to_owned());
    cfg.addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.run_worker = false;
    let api = orderly::start(cfg).await.unwrap();
    let addr = api.addr();
    // `orderly worker` as its own process on the same data directory, showing its
    // metrics on an address of its own.
    let metrics_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut worker = Command::new(BIN)
        // Outbound requests to loopback only, as for every test server.
        .env(orderly_config::env::EGRESS, "loopback")
        .args([
            "worker",
            "--log-format",
            "json",
            "--payment-retry-base-ms",
            "5",
            "--metrics-addr",
            &metrics_addr,
            "--data-dir",
        ])
        .arg(dir.path())
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = keyed_client(dir.path());
    let r = client
        .post(format!("http://{addr}/orders"))
        .json(&json!({"userId": "split", "items": [{"productId": "PROD-004", "qty": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let o: Value = client
            .get(format!("http://{addr}/orders/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if o["status"] == "FULFILLED" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not processed: {o}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The worker counted the saga it ran; its metrics need no credential there.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("orderly_orders_fulfilled_total 1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sigterm(&worker);
    assert!(
        worker.wait().unwrap().success(),
        "the worker stops cleanly on SIGTERM"
    );
    api.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_dlq_commands_list_and_replay_dead_letters() {
    use orderly_core::ports::Queue;
    let dir = tempfile::tempdir().unwrap();
    {
        let store = orderly_sqlite::SqliteStore::open(dir.path(), Default::default()).unwrap();
        store
            .send("orders", "not an order", Duration::ZERO)
            .await
            .unwrap();
        for _ in 0..3 {
            let m = store
                .receive("orders", 1, Duration::from_secs(30), Duration::ZERO)
                .await
                .unwrap();
            store
                .nack("orders", &m[0].id, "cannot parse", Duration::ZERO)
                .await
                .unwrap();
        }
        store.close();
    }
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            // Outbound requests to loopback only, as for every test server.
            .env(orderly_config::env::EGRESS, "loopback")
            .arg("dlq")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let listed = run(&["list"]);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["lastError"], "cannot parse");
    assert_eq!(items[0]["body"], "not an order");
    let id = items[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(run(&["replay", "--id", "nope"])["replayed"], json!([]));
    assert_eq!(run(&["replay", "--id", &id])["replayed"], json!([id]));
    assert_eq!(run(&["list"])["items"], json!([]));
}

/// The default binary (`cargo build -p orderly`: no `aws` feature, no AWS SDK) refuses
/// `--backend aws` with the way out. The tests themselves are built with the `aws` feature,
/// so this one runs the default build that `scripts/test.sh` makes and names in
/// `ORDERLY_DEFAULT_BIN`.
#[test]
#[ignore = "needs the default build of orderly in ORDERLY_DEFAULT_BIN: scripts/test.sh makes it"]
fn the_aws_backend_needs_the_aws_build() {
    let bin = std::env::var(orderly_config::env::harness::DEFAULT_BIN).expect(
        "ORDERLY_DEFAULT_BIN is not set: run scripts/test.sh, or `cargo build -p orderly` and \
         point it at a copy of target/debug/orderly",
    );
    let bin = bin.as_str();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin)
        .args(["serve", "--backend", "aws", "--addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove(orderly_config::env::BACKEND)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--features aws"), "{stderr}");
    // And `asl` needs no AWS build: it prints the generated state machine.
    let out = std::process::Command::new(bin).arg("asl").output().unwrap();
    assert!(out.status.success());
    let asl: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(asl["StartAt"], "ReserveInventory");
    assert_eq!(asl["States"]["SagaFailed"]["Type"], "Fail");
}

/// The price an order of one PROD-001 gets from the server at `addr`.
async fn priced(client: &reqwest::Client, addr: &str) -> String {
    let r = client
        .post(format!("http://{addr}/orders"))
        .json(&json!({"userId": "cat", "items": [{"productId": "PROD-001", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["totalAmount"].to_string()
}

#[tokio::test]
async fn a_catalogue_change_from_any_process_prices_the_next_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, _logs) = serve(dir.path());
    let client = keyed_client(dir.path());
    assert_eq!(priced(&client, &addr).await, "29.99", "the seed price");
    assert_eq!(priced(&client, &addr).await, "29.99", "again, from memory");
    // Through the API of this server.
    let r = client
        .put(format!("http://{addr}/products/PROD-001"))
        .json(&json!({"name": "Wireless Mouse", "price": 12.5, "stock": 50, "category": "Electronics"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert_eq!(priced(&client, &addr).await, "12.5");
    // From another process on the same data directory.
    let reset = seed(dir.path(), &["--reset"]);
    assert_eq!(reset.matches("Reset").count(), 10, "{reset}");
    assert_eq!(
        priced(&client, &addr).await,
        "29.99",
        "a reseed by another process is seen by the next request"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_fresh_servers_metrics_list_every_series_with_its_help() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, _logs) = serve(dir.path());
    let text = keyed_client(dir.path())
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    for m in orderly_core::metrics::CATALOGUE {
        assert!(
            text.contains(&format!("# HELP {} {}", m.name, m.help)),
            "{} has no help text:\n{text}",
            m.name
        );
        let sample = text
            .lines()
            .any(|l| !l.starts_with('#') && l.starts_with(m.name));
        assert!(sample, "{} has no series:\n{text}", m.name);
    }
    // Counters start at zero.
    assert!(text.contains("orderly_payments_failed_total 0"), "{text}");
}
