//! The `orderly` binary against hostile clients, crashes and restarts: slow senders, a
//! connection storm under a low file limit, SIGKILL between an idempotency key's claim and
//! its order, SIGTERM under load, one key used by two customers, amounts that only a
//! binary float would accept, and webhooks aimed into the server's own network.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_orderly");

/// A running `orderly serve` process.
struct Server {
    child: Child,
    addr: String,
    dir: std::path::PathBuf,
    logs: Arc<Mutex<Vec<Value>>>,
}

impl Server {
    /// Starts `orderly serve` on port 0 in `dir` with `extra` arguments; with `fd_limit`,
    /// under that soft and hard limit on open files.
    fn start(dir: &Path, extra: &[&str], fd_limit: Option<u32>) -> Server {
        let mut cmd = match fd_limit {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let mut child = cmd
            // Outbound requests to loopback only, as for every test server, unless a test
            // sets the policy itself.
            .env(orderly_config::env::EGRESS, "loopback")
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log",
                "warn,orderly=info,orderly_http=info",
                "--rate-limit-rps",
                "100000",
                "--rate-limit-burst",
                "100000",
                "--payment-retry-base-ms",
                "20",
                "--data-dir",
            ])
            .arg(dir)
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v["message"] == "orderly is serving" {
                    let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push(v);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server starts");
        Server {
            child,
            addr,
            dir: dir.to_owned(),
            logs,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn admin_key(&self) -> String {
        std::fs::read_to_string(self.dir.join("admin.key"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The first log line with `message`, waiting up to 5 s for it.
    fn log(&self, message: &str) -> Option<Value> {
        let started = Instant::now();
        loop {
            let found = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| l["message"] == message)
                .cloned();
            if found.is_some() || started.elapsed() > Duration::from_secs(5) {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logged(&self, text: &str) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.to_string().contains(text))
            .cloned()
            .collect()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for the process to exit; how long it took.
    fn wait_exit(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "the server did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(key: &str, timeout: Duration) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", key.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(timeout)
        .build()
        .unwrap()
}

/// Creates a customer key for `user` with `orderly keys create`.
fn customer_key(dir: &Path, user: &str) -> String {
    let out = Command::new(BIN)
        .env(orderly_config::env::EGRESS, "loopback")
        .args(["keys", "--log-format", "json", "--data-dir"])
        .arg(dir)
        .args(["create", "--role", "customer", "--user", user])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Lifts this test process's own open-file limit, for the client side of a storm.
fn lift_own_fd_limit(at_least: u64) {
    let limits = orderly_http::server::raise_fd_limit().expect("file limits");
    assert!(
        limits.soft >= at_least,
        "this machine allows {} open files; the test needs {at_least}",
        limits.soft
    );
}

/// The status code of the answer on `s`, within `limit`; `None` when the server closed the
/// connection without one.
async fn status_of(s: &mut TcpStream, limit: Duration) -> Option<u16> {
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(limit, s.read(&mut buf))
        .await
        .expect("an answer or a close in time")
        .unwrap_or(0);
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// GET `url` and its body as JSON.
async fn get_json(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

async fn timed_get(c: &reqwest::Client, url: &str) -> (u16, Duration) {
    let started = Instant::now();
    let status = c.get(url).send().await.unwrap().status().as_u16();
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_senders_hold_neither_liveness_nor_other_callers() {
    lift_own_fd_limit(2_500);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--header-read-timeout-ms",
            "2000",
            "--body-read-timeout-ms",
            "3000",
        ],
        None,
    );
    let customer = customer_key(dir.path(), "slow");
    let addr = server.addr.clone();
    // 550 connections that stop in the middle of their headers, 550 that stop in the
    // middle of an order's body.
    let mut heads = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..550 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        heads.push(s);
    }
    let started = Instant::now();
    for _ in 0..550 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let req = format!(
            "POST /orders HTTP/1.1\r\nHost: x\r\nx-api-key: {customer}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"items\":"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        bodies.push(s);
    }
    // Meanwhile liveness, readiness and an admin's request answer at once.
    let admin = client(&server.admin_key(), Duration::from_secs(5));
    for _ in 0..5 {
        for (path, expect) in [("/health", 200), ("/ready", 200), ("/orders", 200)] {
            let (status, took) = timed_get(&admin, &server.url(path)).await;
            assert_eq!(status, expect, "{path}");
            assert!(took < Duration::from_secs(1), "{path} took {took:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The stalled bodies: past the credential's share, refused at once (429); the rest
    // answered 408 at the body timeout. None waits longer, none is 503.
    let mut counts: HashMap<Option<u16>, usize> = HashMap::new();
    for s in &mut bodies {
        *counts
            .entry(status_of(s, Duration::from_secs(5)).await)
            .or_default() += 1;
    }
    // All answered by the body timeout (3 s) and some slack for a busy machine: none
    // waited for the 30 s request timeout.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Every one answered 408 or 429: at least the credential's share (64) waited for the
    // body timeout (more when slots freed while the connections were still opening).
    let (timed_out, refused) = (
        counts.get(&Some(408)).copied().unwrap_or(0),
        counts.get(&Some(429)).copied().unwrap_or(0),
    );
    assert_eq!(timed_out + refused, 550, "{counts:?}");
    assert!(timed_out >= 64 && refused >= 1, "{counts:?}");
    // The stalled headers: closed without an answer at the header timeout.
    for s in &mut heads {
        assert_eq!(status_of(s, Duration::from_secs(3)).await, None);
    }
    assert!(server.log("HTTP connection limits").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_storm_under_a_low_file_limit_never_runs_out_of_descriptors() {
    lift_own_fd_limit(1_300);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], Some(1024));
    let limits = server.log("open-file limit (soft raised to hard)").unwrap();
    assert_eq!(
        (limits["soft"].as_u64(), limits["hard"].as_u64()),
        (Some(1024), Some(1024))
    );
    let cap = server.log("HTTP connection limits").unwrap();
    assert_eq!(cap["max_connections"], 896, "{cap}");
    // 1,100 idle connections: more than the file limit allows.
    let mut idle = Vec::new();
    for _ in 0..1_100 {
        idle.push(TcpStream::connect(&server.addr).await.unwrap());
    }
    let c = client(&server.admin_key(), Duration::from_secs(5));
    for _ in 0..3 {
        let (status, took) = timed_get(&c, &server.url("/health")).await;
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(1), "/health took {took:?}");
    }
    // A new connection replaced an idle one: at most the cap is open.
    let mut closed = 0;
    for s in &mut idle {
        let mut b = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= 1_100 - 896,
        "only {closed} idle connections were closed"
    );
    assert!(
        server.logged("file descriptors").is_empty() && server.logged("Too many open").is_empty(),
        "accept ran out of descriptors"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_storm_gives_its_memory_back() {
    lift_own_fd_limit(2_500);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], None);
    let c = client(&server.admin_key(), Duration::from_secs(5));
    assert_eq!(timed_get(&c, &server.url("/health")).await.0, 200);
    let before = server.rss_kib();
    // 2,000 keep-alive connections, each with a request answered, all open at once.
    let mut conns = Vec::new();
    for _ in 0..2_000 {
        let mut s = TcpStream::connect(&server.addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        conns.push(s);
    }
    for s in &mut conns {
        assert_eq!(status_of(s, Duration::from_secs(5)).await, Some(200));
    }
    let peak = server.rss_kib();
    drop(conns);
    // The allocator's background thread gives freed pages back within its decay time
    // (10 s): wait for it, bounded.
    let started = Instant::now();
    let mut after = server.rss_kib();
    while after > before + 8 * 1024 && started.elapsed() < Duration::from_secs(25) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = server.rss_kib();
    }
    eprintln!(
        "RSS before {before} KiB, with 2,000 connections {peak} KiB, after {after} KiB ({:?})",
        started.elapsed()
    );
    assert!(
        after <= before + 8 * 1024,
        "RSS {before} KiB before the storm, {peak} KiB during, {after} KiB after"
    );
}

/// An order request with its own idempotency key, as a client would retry it.
#[derive(Debug, Clone)]
struct Attempt {
    key: String,
    body: Value,
    outcome: Result<u16, String>,
    order_id: Option<String>,
}

/// `clients` clients posting orders with unique keys until the server goes away (each stops
/// at its first connection error, or after `max_each` requests), each waiting `pause`
/// between its requests.
async fn load(
    base: &str,
    admin: &str,
    clients: usize,
    max_each: usize,
    pause: Duration,
) -> Vec<Attempt> {
    let mut tasks = Vec::new();
    for i in 0..clients {
        let c = client(admin, Duration::from_secs(10));
        let url = format!("{base}/orders");
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for n in 0..max_each {
                let key = format!("load-{i}-{n}-{}", uuid_like());
                let body = json!({
                    "userId": format!("user-{i}"),
                    "items": [{"productId": "PROD-001", "qty": 1}],
                });
                let r = c
                    .post(&url)
                    .header("idempotency-key", &key)
                    .json(&body)
                    .send()
                    .await;
                match r {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let v: Value = resp.json().await.unwrap_or(Value::Null);
                        out.push(Attempt {
                            key,
                            body,
                            outcome: Ok(status),
                            order_id: v["orderId"].as_str().map(str::to_owned),
                        });
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                    Err(e) => {
                        out.push(Attempt {
                            key,
                            body,
                            outcome: Err(e.to_string()),
                            order_id: None,
                        });
                        break;
                    }
                }
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Retries `a` with its key and body: the status and whether it was a replay.
async fn retry(c: &reqwest::Client, base: &str, a: &Attempt) -> (u16, bool, Option<String>) {
    let resp = c
        .post(format!("{base}/orders"))
        .header("idempotency-key", &a.key)
        .json(&a.body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let replayed = resp.headers().contains_key("idempotent-replayed");
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    (status, replayed, v["orderId"].as_str().map(str::to_owned))
}

/// Polls until every order is in a terminal status; the time it took.
async fn all_terminal(
    c: &reqwest::Client,
    base: &str,
    ids: &[String],
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    let mut pending: Vec<String> = ids.to_vec();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            let v: Value = get_json(c, format!("{base}/orders/{id}")).await;
            let status = v["status"].as_str().unwrap_or_default().to_owned();
            if !["FULFILLED", "FAILED", "CANCELLED"].contains(&status.as_str()) {
                still.push(format!("{id} {status} updated {}", v["updatedAt"]));
            }
        }
        pending = still
            .iter()
            .map(|s| s.split(' ').next().unwrap_or_default().to_owned())
            .collect();
        if !pending.is_empty() {
            assert!(
                started.elapsed() < limit,
                "{} orders not terminal after {limit:?}: {:?}",
                still.len(),
                &still[..still.len().min(5)]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_what_it_read_and_hands_back_what_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--drain-timeout-ms", "5000"], None);
    let admin = server.admin_key();
    let base = server.url("");
    let loader = {
        let (base, admin) = (base.clone(), admin.clone());
        // Paced (10 requests a second per client), so that the orders in progress at
        // SIGTERM are what a debug build's worker holds, not a backlog of thousands.
        tokio::spawn(async move { load(&base, &admin, 32, 400, Duration::from_millis(100)).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.signal("-TERM");
    let took = server.wait_exit(Duration::from_secs(15));
    let attempts = loader.await.unwrap();
    let answered: Vec<&Attempt> = attempts.iter().filter(|a| a.outcome.is_ok()).collect();
    let unanswered: Vec<&Attempt> = attempts.iter().filter(|a| a.outcome.is_err()).collect();
    assert!(
        answered.len() >= 32,
        "the load did not get going: {attempts:?}"
    );
    assert!(
        answered.iter().all(|a| a.outcome == Ok(201)),
        "{:?}",
        answered.iter().find(|a| a.outcome != Ok(201))
    );
    drop(server);

    let server = Server::start(dir.path(), &[], None);
    let restarted = Instant::now();
    let c = client(&admin, Duration::from_secs(10));
    let base = server.url("");
    let mut ids: Vec<String> = answered.iter().filter_map(|a| a.order_id.clone()).collect();
    // A request without an answer was never read: its retry is a new order, not a replay.
    for a in &unanswered {
        let (status, replayed, id) = retry(&c, &base, a).await;
        assert_eq!(status, 201, "{a:?}");
        assert!(
            !replayed,
            "the server read and processed {a:?} but never answered it"
        );
        ids.extend(id);
    }
    let terminal = all_terminal(
        &c,
        &base,
        &ids,
        Duration::from_secs(5) - restarted.elapsed().min(Duration::from_secs(4)),
    )
    .await;
    // Nothing handed back was taken so often that it was dead-lettered.
    let dlq: Value = get_json(&c, format!("{base}/admin/dlq")).await;
    assert_eq!(dlq["items"].as_array().map(Vec::len), Some(0), "{dlq}");
    eprintln!(
        "SIGTERM: exit in {took:?}; {} answered, {} unanswered; {} orders terminal {:?} after the restart",
        answered.len(),
        unanswered.len(),
        ids.len(),
        restarted.elapsed().max(terminal)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_claimed_by_a_killed_process_is_free_at_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orderly.db");
    let mut seen_claims = 0;
    for round in 0..8 {
        let mut server = Server::start(dir.path(), &[], None);
        let admin = server.admin_key();
        let base = server.url("");
        let loader = {
            let (base, admin) = (base.clone(), admin.clone());
            tokio::spawn(async move { load(&base, &admin, 32, 400, Duration::ZERO).await })
        };
        tokio::time::sleep(Duration::from_millis(600 + 150 * round)).await;
        server.signal("-KILL");
        server.wait_exit(Duration::from_secs(5));
        let attempts = loader.await.unwrap();
        drop(server);
        // The keys the dead process held in flight.
        let claimed: Vec<String> = {
            let conn = rusqlite::Connection::open(&db).unwrap();
            let mut st = conn
                .prepare("SELECT key FROM idempotency WHERE state = 'in_flight'")
                .unwrap();
            st.query_map([], |r| r.get::<_, String>(0))
                .unwrap()
                .map(Result::unwrap)
                .filter_map(|k| k.split_once('\n').map(|(_, k)| k.to_owned()))
                .collect()
        };
        if claimed.is_empty() {
            continue;
        }
        seen_claims += claimed.len();
        let server = Server::start(dir.path(), &[], None);
        let c = client(&admin, Duration::from_secs(10));
        let base = server.url("");
        for key in &claimed {
            let a = attempts
                .iter()
                .find(|a| &a.key == key)
                .expect("a claimed key belongs to a request of the load");
            assert!(
                a.outcome.is_err(),
                "an answered request's key stayed in flight: {a:?}"
            );
            let started = Instant::now();
            let (status, replayed, _) = retry(&c, &base, a).await;
            assert_eq!(status, 201, "the retry of {key} after the crash");
            assert!(!replayed);
            assert!(started.elapsed() < Duration::from_secs(1));
        }
        break;
    }
    assert!(
        seen_claims > 0,
        "no SIGKILL landed between a key's claim and its order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_customers_with_the_same_key_get_their_own_orders() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], None);
    let alice = client(&customer_key(dir.path(), "alice"), Duration::from_secs(5));
    let bob = client(&customer_key(dir.path(), "bob"), Duration::from_secs(5));
    let mut ids = Vec::new();
    for (c, qty) in [(&alice, 1), (&bob, 2)] {
        let resp = c
            .post(server.url("/orders"))
            .header("idempotency-key", "order-1001")
            .json(&json!({"items": [{"productId": "PROD-001", "qty": qty}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        assert!(!resp.headers().contains_key("idempotent-replayed"));
        let v: Value = resp.json().await.unwrap();
        ids.push(v["orderId"].as_str().unwrap().to_owned());
    }
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_are_read_from_their_digits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], None);
    let c = client(&server.admin_key(), Duration::from_secs(5));
    let product: Value = get_json(&c, server.url("/products/PROD-001")).await;
    let price = product["price"].as_f64().unwrap();
    let exact = format!("{price:.2}");
    let post = |total: String| {
        let body = format!(
            r#"{{"userId":"u1","items":[{{"productId":"PROD-001","qty":1}}],"totalAmount":{total}}}"#
        );
        c.post(server.url("/orders"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // 16 and more significant digits: refused unless the decimals past the cents are zeros.
    for bad in [
        format!("{exact}0000000000002"),
        format!("{exact}000000000001"),
    ] {
        let resp = post(bad.clone()).await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["details"][0]["field"], "totalAmount", "{bad}: {v}");
    }
    for good in [exact.clone(), format!("{exact}00000000000000")] {
        assert_eq!(post(good.clone()).await.unwrap().status(), 201, "{good}");
    }
    let resp = c
        .put(server.url("/products/PROD-NEW"))
        .header("content-type", "application/json")
        .body(r#"{"name":"n","price":12.340000000000001,"stock":1,"category":"c"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["details"][0]["field"], "price", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_webhooks_into_the_servers_own_network_are_refused() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A receiver on loopback that would count any request reaching it.
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    {
        let hits = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                hits.fetch_add(1, Ordering::SeqCst);
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    // The production default, said explicitly (the harness sets loopback otherwise).
    let server = Server::start(
        dir.path(),
        &["--egress", "public", "--webhook-retry-base-ms", "50"],
        None,
    );
    let c = client(&server.admin_key(), Duration::from_secs(5));
    let urls = [
        format!("http://127.0.0.1:{port}/hook"),
        "http://10.0.0.1:8080/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        // A name, resolved at delivery time, to a private (loopback) address.
        format!("http://localhost:{port}/hook"),
    ];
    let mut ids = Vec::new();
    for url in &urls {
        let resp = c
            .post(server.url("/admin/webhooks"))
            .json(&json!({"url": url, "events": ["ORDER_CREATED"]}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap();
        if status == 400 {
            // Refused already at registration: as good.
            continue;
        }
        assert_eq!(status, 201, "{url}: {v}");
        ids.push((url.clone(), v["id"].as_str().unwrap().to_owned()));
    }
    let resp = c
        .post(server.url("/orders"))
        .json(&json!({"userId": "u1", "items": [{"productId": "PROD-001", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    for (url, id) in &ids {
        let started = Instant::now();
        loop {
            let v: Value =
                get_json(&c, server.url(&format!("/admin/webhooks/{id}/deliveries"))).await;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            if let Some(a) = items.first() {
                let error = a["error"].as_str().unwrap_or_default();
                assert!(error.contains("refused by the egress policy"), "{url}: {a}");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{url}: no attempt: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a webhook reached the loopback receiver"
    );
}
