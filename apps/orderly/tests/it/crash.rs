//! Crash safety: `orderly serve` is killed with SIGKILL while orders are in flight and
//! restarted on the same data directory. Every order that got a 201 must reach a terminal
//! status, none may be lost, and for every product
//! `initial stock = current stock + units held by CONFIRMED/FULFILLED orders`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_orderly");

fn serve(dir: &std::path::Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        // Outbound requests to loopback only, as for every test server.
        .env(orderly_config::env::EGRESS, "loopback")
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log",
            "warn,orderly=info",
        ])
        .args([
            "--visibility-timeout-secs",
            "2",
            "--redelivery-base-ms",
            "50",
        ])
        .args([
            "--payment-retry-base-ms",
            "20",
            "--workers",
            "4",
            "--rate-limit-rps",
            "100000",
            "--rate-limit-burst",
            "100000",
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent
                && let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "orderly is serving"
            {
                let _ = tx.send(v["addr"].as_str().unwrap().to_owned());
                sent = true;
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server starts");
    (child, addr)
}

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

/// Every order in the store, walking all pages.
async fn all_orders(client: &reqwest::Client, addr: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = format!("http://{addr}/orders?limit=100{cursor}");
        let page: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_orders_in_flight_loses_nothing_and_conserves_stock() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(dir.path(), &["--payment-transient-failures", "1"]);
    let client = keyed_client(dir.path());
    let initial: HashMap<String, u64> = {
        let v: Value = client
            .get(format!("http://{addr}/products"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["productId"].as_str().unwrap().to_owned(),
                    p["stock"].as_u64().unwrap(),
                )
            })
            .collect()
    };

    // Eight clients place orders (some over the payment limit, some exhausting PROD-009,
    // some cancelled right away) until the server dies under them.
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let mut clients = Vec::new();
    for c in 0..8u32 {
        let (client, addr, accepted) = (client.clone(), addr.clone(), accepted.clone());
        clients.push(tokio::spawn(async move {
            for i in 0..90u32 {
                let items = match (c + i) % 6 {
                    0 => json!([{"productId": "PROD-005", "qty": 60}]),
                    1 => json!([{"productId": "PROD-009", "qty": 7}, {"productId": "PROD-001", "qty": 1}]),
                    2 => json!([{"productId": "PROD-002", "qty": 2}, {"productId": "PROD-003", "qty": 1}]),
                    _ => json!([{"productId": "PROD-00".to_owned() + &((i % 4) + 4).to_string(), "qty": 1 + i % 3}]),
                };
                let body = json!({"userId": format!("crash-{c}"), "items": items});
                let Ok(r) = client.post(format!("http://{addr}/orders")).json(&body).send().await else {
                    return; // the server is gone
                };
                if r.status() != 201 {
                    return;
                }
                let Ok(o) = r.json::<Value>().await else { return };
                let id = o["orderId"].as_str().unwrap().to_owned();
                accepted.lock().unwrap().insert(id.clone());
                if i % 5 == 4 {
                    let _ = client.delete(format!("http://{addr}/orders/{id}")).send().await;
                }
            }
        }));
    }
    // Kill once a good number of orders are in.
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted.lock().unwrap().len() < 300 {
        assert!(Instant::now() < deadline, "orders are not being accepted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let accepted: HashSet<String> = accepted.lock().unwrap().clone();

    let (mut child, addr) = serve(dir.path(), &[]);
    let in_flight = all_orders(&client, &addr)
        .await
        .iter()
        .filter(|o| matches!(o["status"].as_str(), Some("PENDING" | "CONFIRMED")))
        .count();
    eprintln!("orders in flight when the server was killed: {in_flight}");
    assert!(
        in_flight >= 10,
        "the kill must catch orders mid-saga (only {in_flight} were)"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let orders = loop {
        let orders = all_orders(&client, &addr).await;
        let pending = orders
            .iter()
            .filter(|o| {
                !matches!(
                    o["status"].as_str(),
                    Some("FULFILLED" | "FAILED" | "CANCELLED")
                )
            })
            .count();
        if pending == 0 {
            break orders;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} orders never reached a terminal status"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stored: HashSet<String> = orders
        .iter()
        .map(|o| o["orderId"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<&String> = accepted.difference(&stored).collect();
    assert!(lost.is_empty(), "orders answered 201 but lost: {lost:?}");
    assert!(accepted.len() >= 300);

    // Compensations queued for cancelled orders may still be finishing: wait for the
    // conservation law to hold, then check it holds exactly.
    let mut held: HashMap<String, u64> = HashMap::new();
    for o in &orders {
        if matches!(o["status"].as_str(), Some("CONFIRMED" | "FULFILLED")) {
            for item in o["items"].as_array().unwrap() {
                *held
                    .entry(item["productId"].as_str().unwrap().to_owned())
                    .or_default() += item["qty"].as_u64().unwrap();
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = client
            .get(format!("http://{addr}/products"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mismatches: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| {
                let id = p["productId"].as_str().unwrap();
                let now = p["stock"].as_u64().unwrap();
                let h = held.get(id).copied().unwrap_or(0);
                (initial[id] != now + h)
                    .then(|| format!("{id}: initial {} != stock {now} + held {h}", initial[id]))
            })
            .collect();
        if mismatches.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stock not conserved: {mismatches:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let statuses: HashMap<&str, usize> = orders.iter().fold(HashMap::new(), |mut m, o| {
        *m.entry(o["status"].as_str().unwrap()).or_default() += 1;
        m
    });
    eprintln!("after the crash: {} orders, {statuses:?}", orders.len());
    assert!(statuses.get("FULFILLED").copied().unwrap_or(0) > 0);
    assert!(statuses.get("FAILED").copied().unwrap_or(0) > 0);
    child.kill().unwrap();
    child.wait().unwrap();
}
