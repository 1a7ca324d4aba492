//! Nothing a test server does leaves the machine: with `--egress loopback` (what every test,
//! fuzz and benchmark server runs with) webhooks to public addresses, to private ones, and
//! to names other than `localhost` are refused without a connection or a name lookup, while
//! a receiver on loopback still gets its deliveries.
//!
//! The first test checks the refusals through the API's delivery log, in process. The second
//! runs the binary under strace and reads every address the server tried to reach.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
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

/// Every address the traced process tried to reach (`connect`, `sendto`, `sendmsg`), and
/// whether it tried a name lookup (a packet to port 53, or the name service cache).
fn traced_destinations(trace: &str) -> (Vec<String>, Vec<String>) {
    let mut addrs = Vec::new();
    let mut lookups = Vec::new();
    for line in trace.lines() {
        for (open, close) in [("inet_addr(\"", "\")"), ("inet_pton(AF_INET6, \"", "\"")] {
            let mut rest = line;
            while let Some(i) = rest.find(open) {
                let after = &rest[i + open.len()..];
                let end = after.find(close).unwrap_or(after.len());
                addrs.push(after[..end].to_owned());
                rest = &after[end..];
            }
        }
        if line.contains("htons(53)") || line.contains("nscd") {
            lookups.push(line.to_owned());
        }
    }
    (addrs, lookups)
}

fn is_loopback(addr: &str) -> bool {
    addr.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    })
}

#[test]
fn the_trace_reader_sees_both_families_and_lookups() {
    let trace = "\
123 connect(9, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr(\"3.101.179.203\")}, 16) = -1\n\
123 connect(9, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, \"::1\", &sin6_addr), sin6_scope_id=0}, 28) = 0\n\
124 sendto(7, \"...\", 40, MSG_NOSIGNAL, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr(\"10.255.255.53\")}, 16) = 40\n\
125 connect(8, {sa_family=AF_UNIX, sun_path=\"/var/run/nscd/socket\"}, 110) = -1 ENOENT\n";
    let (addrs, lookups) = traced_destinations(trace);
    assert_eq!(addrs, ["3.101.179.203", "::1", "10.255.255.53"]);
    assert_eq!(lookups.len(), 2);
    assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("::ffff:127.0.0.9"));
    assert!(!is_loopback("3.101.179.203") && !is_loopback("10.255.255.53"));
}

/// The binary under strace: every connection it tries goes to loopback, and it looks up no
/// name, although webhooks name public addresses, private ones and a DNS name.
#[tokio::test]
#[ignore = "needs strace: scripts/test.sh installs it (scripts/tools.sh strace) and runs ignored tests"]
async fn the_server_under_strace_connects_to_loopback_only_and_resolves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let trace_file = dir.path().join("connect.trace");
    let data = dir.path().join("data");
    let mut child = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=connect,sendto,sendmsg,sendmmsg",
            "-e",
            "signal=none",
        ])
        .arg("-o")
        .arg(&trace_file)
        .arg(env!("CARGO_BIN_EXE_orderly"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--egress",
            "loopback",
        ])
        .args(["--webhook-retry-base-ms", "50", "--data-dir"])
        .arg(&data)
        .env_remove("ORDERLY_EGRESS_ALLOW_HOSTS")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("strace runs (install it: scripts/tools.sh strace)");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server starts under strace");
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["message"] == "orderly is serving"
        {
            break v["addr"].as_str().unwrap().to_owned();
        }
    };
    let client = common::client_with_key(&common::admin_key(&data));
    let base = format!("http://{addr}");
    exercise(&client, &base).await;
    // Stop the server (strace's child), then strace.
    let pids = Command::new("pgrep")
        .args(["-P", &child.id().to_string()])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = Command::new("kill").args(["-TERM", pid]).status();
    }
    let _ = child.wait();
    let trace = std::fs::read_to_string(&trace_file).unwrap();
    let (addrs, lookups) = traced_destinations(&trace);
    // The trace saw the deliveries to the loopback receiver: it would see others too.
    assert!(
        addrs.iter().any(|a| is_loopback(a)),
        "strace recorded no connection at all:\n{trace}"
    );
    let off: Vec<&String> = addrs.iter().filter(|a| !is_loopback(a)).collect();
    assert!(
        off.is_empty(),
        "the server tried to reach {off:?}:\n{trace}"
    );
    assert!(
        lookups.is_empty(),
        "the server tried name lookups:\n{lookups:#?}"
    );
}
