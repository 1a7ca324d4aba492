//! `orderly bench`: a load generator for a running Orderly server.
//!
//! It places orders over HTTP, either at a target rate (open loop: order `i` is due at
//! `start + i / rate`, and its latency counts from that due time, so a server that falls
//! behind shows its queueing instead of hiding it) or from a fixed number of clients that
//! each send the next request when the last is answered (closed loop). Lines go mostly to
//! a few hot products; a share of orders is priced over the payment decline limit so the
//! saga's compensation path runs too.
//!
//! After the last answer it waits until every order of the run is terminal (its orders
//! carry one user id of their own, so listing `GET /orders?userId=..` finds them all),
//! then checks that none is lost and that stock is conserved: for every product, the
//! stock before the run minus the stock after it equals the units held by FULFILLED
//! orders. This holds only when nothing else orders from the server during the run.
//!
//! [`run`] is the library entry (the integration test calls it); [`main`] is the command.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use orderly_core::{Money, Timestamp};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Open loop: request `i` is due at `start + i / rate`; its latency counts from then.
    Rate(f64),
    /// Closed loop: this many clients, each sending its next request once the last is
    /// answered; latency counts from the actual send.
    Concurrency(usize),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Sent as `x-api-key`. An admin key: the run lists orders and may restock products.
    pub api_key: Option<String>,
    /// Requests to send.
    pub orders: u64,
    pub load: Load,
    /// Open loop: most requests outstanding at once (later ones wait, and their wait
    /// counts in their latency).
    pub max_in_flight: usize,
    /// Share (0..=1) of order lines that go to the hot products.
    pub hot_share: f64,
    /// How many products (the first by id) are hot.
    pub hot_products: usize,
    /// Lines of an ordinary order (distinct products, 1 unit each).
    pub lines: usize,
    /// Share (0..=1) of orders priced over `decline_over`, which the payment simulator
    /// declines: the most expensive product, just enough units to exceed the limit.
    pub decline_share: f64,
    /// The server's decline limit (`--payment-decline-over` of `orderly serve`).
    pub decline_over: Money,
    /// Before the run, set every product's stock to this (admin `PUT /products/{id}`).
    pub restock: Option<u32>,
    /// Wait for the orders to become terminal and check them (off: creates only, no
    /// loss or stock check, e.g. against an API-only server).
    pub settle: bool,
    /// How long to wait for every order to become terminal after the last answer.
    pub settle_timeout: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Instead of orders: `GET` this URL (the HTTP ceiling of client and server); no
    /// settling or stock check.
    pub raw_get: Option<String>,
    /// Seed of the order mix (the same seed gives the same orders).
    pub seed: u64,
    /// The user id the orders are placed for (default: `bench-<millis>-<pid>`).
    pub user_id: Option<String>,
    /// Show progress bars on stderr (they hide themselves when stderr is not a terminal).
    pub progress: bool,
}

impl BenchOptions {
    /// Defaults: 10,000 orders from 64 clients, 80 % of lines on 2 hot products, 5 %
    /// declines.
    pub fn new(url: impl Into<String>, api_key: Option<String>) -> BenchOptions {
        BenchOptions {
            url: url.into(),
            api_key,
            orders: 10_000,
            load: Load::Concurrency(64),
            max_in_flight: 1000,
            hot_share: 0.8,
            hot_products: 2,
            lines: 2,
            decline_share: 0.05,
            decline_over: Money::from_minor(1_000_000).unwrap_or(Money::ZERO),
            restock: None,
            settle: true,
            settle_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            raw_get: None,
            seed: 1,
            user_id: None,
            progress: true,
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.orders == 0 {
            bail!("--orders must be at least 1");
        }
        match self.load {
            Load::Rate(r) if !(r.is_finite() && r > 0.0) => bail!("--rate must be positive"),
            Load::Concurrency(0) => bail!("--concurrency must be at least 1"),
            _ => {}
        }
        if self.max_in_flight == 0 {
            bail!("--max-in-flight must be at least 1");
        }
        for (name, v) in [
            ("--hot-share", self.hot_share),
            ("--decline-share", self.decline_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                bail!("{name} must be between 0 and 1 (or 0% and 100%)");
            }
        }
        if self.lines == 0 {
            bail!("--lines must be at least 1");
        }
        Ok(())
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// From a histogram of values in `unit_ms` milliseconds each.
    fn of(h: &Histogram<u64>, unit_ms: f64) -> Latency {
        let q = |p: f64| h.value_at_quantile(p) as f64 * unit_ms;
        Latency {
            count: h.len(),
            p50_ms: q(0.50),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: h.max() as f64 * unit_ms,
            mean_ms: h.mean() * unit_ms,
        }
    }
}

/// One product's stock before and after the run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StockCheck {
    pub product_id: String,
    pub initial: u64,
    #[serde(rename = "final")]
    pub final_: u64,
    /// Units on this run's FULFILLED orders.
    pub held_by_fulfilled: u64,
    /// `initial - final == held_by_fulfilled`.
    pub ok: bool,
}

/// How the orders of the run ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Settlement {
    /// Every order of the run was terminal before the timeout.
    pub settled: bool,
    /// From the last create answer until every order was terminal (or the timeout).
    pub settle_secs: f64,
    /// Orders of the run by final status (every order listed under the run's user).
    pub by_status: BTreeMap<String, u64>,
    /// FAILED orders by the first part of their `failureReason`.
    pub failure_reasons: BTreeMap<String, u64>,
    /// Orders priced over the decline limit, and how many of them ended FAILED.
    pub declines_sent: u64,
    pub declines_failed: u64,
    /// Answered 201 but missing, or not terminal after settling.
    pub lost: u64,
    /// Up to 20 of their ids.
    pub lost_ids: Vec<String>,
    /// Orders listed under the run's user without a 201 seen (e.g. a client timeout
    /// after the server had accepted): counted in statuses and stock, not lost.
    pub unacknowledged: u64,
    /// Per order: `updatedAt` of its terminal status minus `createdAt`, both server
    /// time stamps (millisecond resolution).
    pub end_to_end: Latency,
    /// Terminal orders / (last terminal `updatedAt` - first `createdAt`), server time.
    pub sagas_per_sec: f64,
    /// Stock conservation: every product checks and no order is left PENDING/CONFIRMED.
    pub conserved: bool,
    pub stock: Vec<StockCheck>,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// `orders` or `raw-get`.
    pub mode: String,
    pub url: String,
    /// `rate` or `concurrency`.
    pub load: String,
    pub target_rate: Option<f64>,
    pub concurrency: Option<usize>,
    pub requested: u64,
    /// Requests answered as expected (201 for orders, 2xx for raw GETs).
    pub succeeded: u64,
    /// Failed requests by kind: `http_<status>` or a transport error class.
    pub errors: BTreeMap<String, u64>,
    /// From the first due time to the last answer.
    pub elapsed_secs: f64,
    /// Successful requests per second over `elapsed_secs`.
    pub throughput: f64,
    /// Request latency; see `latency_from`.
    pub latency: Latency,
    /// `intended send time` (open loop) or `actual send time` (closed loop).
    pub latency_from: String,
    /// The user id the orders were placed for.
    pub user_id: Option<String>,
    /// `None` for raw GETs and without settling.
    pub settlement: Option<Settlement>,
    /// The server's write work over the run, from its `/metrics` before and after
    /// (`None` when the key cannot read `/metrics`, or for raw GETs).
    pub store: Option<StoreWork>,
}

/// The embedded store's write work over a run (`orderly_store_write_ops_total` and
/// `orderly_store_commits_total`, read before the first order and after settling). The
/// counters are process-wide, so anything else the server did meanwhile is included.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoreWork {
    pub write_ops: f64,
    pub commits: f64,
    /// Per order that reached a terminal status in the run (`None` when none did).
    pub write_ops_per_order: Option<f64>,
    pub commits_per_order: Option<f64>,
    /// Per FULFILLED order, the figure the targets use.
    pub write_ops_per_fulfilled: Option<f64>,
    pub commits_per_fulfilled: Option<f64>,
}

impl StoreWork {
    fn between(
        before: (f64, f64),
        after: (f64, f64),
        settlement: Option<&Settlement>,
    ) -> StoreWork {
        let write_ops = after.0 - before.0;
        let commits = after.1 - before.1;
        let count = |pred: &dyn Fn(&str) -> bool| -> Option<f64> {
            let st = settlement?;
            let n: u64 = st
                .by_status
                .iter()
                .filter(|(k, _)| pred(k))
                .map(|(_, v)| *v)
                .sum();
            (n > 0).then_some(n as f64)
        };
        let terminal = count(&|k| matches!(k, "FULFILLED" | "FAILED" | "CANCELLED"));
        let fulfilled = count(&|k| k == "FULFILLED");
        StoreWork {
            write_ops,
            commits,
            write_ops_per_order: terminal.map(|n| write_ops / n),
            commits_per_order: terminal.map(|n| commits / n),
            write_ops_per_fulfilled: fulfilled.map(|n| write_ops / n),
            commits_per_fulfilled: fulfilled.map(|n| commits / n),
        }
    }
}

/// The server's store counters (write operations, commits), if `/metrics` answers.
async fn store_counters(client: &reqwest::Client, base: &str) -> Option<(f64, f64)> {
    let r = client.get(format!("{base}/metrics")).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    let text = r.text().await.ok()?;
    let ops = crate::ops::sum_series(&text, orderly_core::metrics::STORE_WRITE_OPS, |_| true);
    let commits = crate::ops::sum_series(&text, orderly_core::metrics::STORE_COMMITS, |_| true);
    Some((ops, commits))
}

impl Report {
    /// No order lost and stock conserved (true when nothing was checked).
    pub fn ok(&self) -> bool {
        self.settlement
            .as_ref()
            .is_none_or(|s| s.lost == 0 && s.conserved)
    }

    /// A few human lines.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let l = &self.latency;
        let _ = writeln!(
            s,
            "{} x {} against {} ({}{})",
            self.requested,
            if self.mode == "orders" {
                "POST /orders"
            } else {
                "GET"
            },
            self.url,
            self.load,
            match (self.target_rate, self.concurrency) {
                (Some(r), _) => format!(" {r}/s"),
                (_, Some(c)) => format!(" {c}"),
                _ => String::new(),
            }
        );
        let _ = writeln!(
            s,
            "succeeded   {} in {:.2} s: {:.0}/s",
            self.succeeded, self.elapsed_secs, self.throughput
        );
        let _ = writeln!(
            s,
            "latency     p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms (from {})",
            l.p50_ms, l.p95_ms, l.p99_ms, l.p999_ms, l.max_ms, self.latency_from
        );
        if self.errors.is_empty() {
            let _ = writeln!(s, "errors      none");
        } else {
            let _ = writeln!(s, "errors      {}", kv(&self.errors));
        }
        if self.mode == "orders" && self.settlement.is_none() {
            let _ = writeln!(s, "settled     not checked (--no-settle)");
        }
        if let Some(st) = &self.settlement {
            let e = &st.end_to_end;
            let _ = writeln!(
                s,
                "settled     {} after {:.2} s; final statuses: {}",
                if st.settled { "yes" } else { "NO" },
                st.settle_secs,
                kv(&st.by_status)
            );
            if !st.failure_reasons.is_empty() {
                let _ = writeln!(s, "failures    {}", kv(&st.failure_reasons));
            }
            let _ = writeln!(
                s,
                "declines    {} sent, {} ended FAILED",
                st.declines_sent, st.declines_failed
            );
            let _ = writeln!(
                s,
                "end to end  p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms (server createdAt -> updatedAt); {:.0} sagas/s",
                e.p50_ms, e.p99_ms, e.max_ms, st.sagas_per_sec
            );
            let _ = writeln!(
                s,
                "lost        {}{}",
                st.lost,
                if st.lost_ids.is_empty() {
                    String::new()
                } else {
                    format!(" (e.g. {})", st.lost_ids.join(", "))
                }
            );
            if st.unacknowledged > 0 {
                let _ = writeln!(
                    s,
                    "unanswered  {} created without a 201 seen",
                    st.unacknowledged
                );
            }
            let _ = writeln!(
                s,
                "stock       {}",
                if st.conserved {
                    "conserved"
                } else {
                    "NOT conserved"
                }
            );
            if let Some(w) = &self.store {
                let per = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
                let _ = writeln!(
                    s,
                    "store       {:.0} writer ops, {:.0} commits; per terminal order {} ops, {} commits; per fulfilled {} ops, {} commits",
                    w.write_ops,
                    w.commits,
                    per(w.write_ops_per_order),
                    per(w.commits_per_order),
                    per(w.write_ops_per_fulfilled),
                    per(w.commits_per_fulfilled)
                );
            }
            for c in st.stock.iter().filter(|c| !c.ok) {
                let _ = writeln!(
                    s,
                    "  {}: initial {} - final {} != {} units on FULFILLED orders",
                    c.product_id, c.initial, c.final_, c.held_by_fulfilled
                );
            }
        }
        s
    }
}

fn kv(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a share: `0.8`, or `80%`.
pub fn parse_share(s: &str) -> Result<f64, String> {
    let (num, scale) = match s.strip_suffix('%') {
        Some(p) => (p, 100.0),
        None => (s, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    let v = v / scale;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s:?} is not between 0 and 1 (or 0% and 100%)"))
    }
}

/// `orderly bench` on the command line.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Base URL of the server.
    #[arg(long, env = orderly_config::env::URL, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Admin API key (default: read from --api-key-file).
    #[arg(long, env = orderly_config::env::API_KEY, hide_env_values = true)]
    api_key: Option<String>,
    /// File holding the admin API key (the one `orderly serve` writes on first start).
    #[arg(long, default_value = "./data/admin.key")]
    api_key_file: PathBuf,
    /// Orders (or raw GETs) to send.
    #[arg(long, default_value_t = 10_000)]
    orders: u64,
    /// Open loop: orders per second (latency counts from each order's due time).
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Closed loop: clients each sending the next order when the last is answered
    /// (default 64 when --rate is not given).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Open loop: most requests outstanding at once.
    #[arg(long, default_value_t = 1000)]
    max_in_flight: usize,
    /// Share of order lines on the hot products (0..1, or a percentage like 80%).
    #[arg(long, default_value = "0.8", value_parser = parse_share)]
    hot_share: f64,
    /// Number of hot products (the first ones by id).
    #[arg(long, default_value_t = 2)]
    hot_products: usize,
    /// Lines of an ordinary order (distinct products, one unit each).
    #[arg(long, default_value_t = 2)]
    lines: usize,
    /// Share of orders priced over the decline limit (0..1, or a percentage like 10%).
    #[arg(long, default_value = "0.05", value_parser = parse_share)]
    decline_share: f64,
    /// The server's --payment-decline-over (declining orders are priced just above it).
    #[arg(long, default_value = "10000.00", value_parser = parse_money)]
    decline_over: Money,
    /// Before the run, set every product's stock to this (so orders do not fail for
    /// lack of stock).
    #[arg(long)]
    restock: Option<u32>,
    /// Seconds to wait after the last answer for every order to become terminal.
    #[arg(long, default_value_t = 120)]
    settle_timeout_secs: u64,
    /// Measure creates only: no waiting, no loss or stock check (for an API-only server).
    #[arg(long)]
    no_settle: bool,
    /// Seconds before one request times out.
    #[arg(long, default_value_t = 30)]
    request_timeout_secs: u64,
    /// Send GETs to this URL instead of orders (the HTTP ceiling of this machine; no key
    /// needed, no settling).
    #[arg(long)]
    raw_get: Option<String>,
    /// Seed of the order mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

fn parse_money(s: &str) -> Result<Money, String> {
    Money::parse_decimal(s).map_err(|e| format!("{s:?} {e}"))
}

/// Runs `orderly bench`: prints the report; fails when an order was lost or stock was
/// not conserved.
pub async fn main(args: BenchArgs) -> anyhow::Result<()> {
    let api_key = match args.api_key {
        Some(k) => Some(k.trim().to_owned()),
        None => match std::fs::read_to_string(&args.api_key_file) {
            Ok(k) => Some(k.trim().to_owned()),
            Err(_) if args.raw_get.is_some() => None,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "reading the API key from {} (give --api-key or --api-key-file)",
                        args.api_key_file.display()
                    )
                });
            }
        },
    };
    let mut opts = BenchOptions::new(args.url, api_key);
    opts.orders = args.orders;
    opts.load = match (args.rate, args.concurrency) {
        (Some(r), _) => Load::Rate(r),
        (None, Some(c)) => Load::Concurrency(c),
        (None, None) => Load::Concurrency(64),
    };
    opts.max_in_flight = args.max_in_flight;
    opts.hot_share = args.hot_share;
    opts.hot_products = args.hot_products;
    opts.lines = args.lines;
    opts.decline_share = args.decline_share;
    opts.decline_over = args.decline_over;
    opts.restock = args.restock;
    opts.settle = !args.no_settle;
    opts.settle_timeout = Duration::from_secs(args.settle_timeout_secs);
    opts.request_timeout = Duration::from_secs(args.request_timeout_secs);
    opts.raw_get = args.raw_get;
    opts.seed = args.seed;
    opts.progress = !args.no_progress;
    let report = run(&opts).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.text());
    }
    if !report.ok() {
        let s = report.settlement.as_ref();
        bail!(
            "bench failed: {} order(s) lost, stock {}",
            s.map_or(0, |s| s.lost),
            if s.is_some_and(|s| s.conserved) {
                "conserved"
            } else {
                "not conserved"
            }
        );
    }
    Ok(())
}

/// A product as the bench sees it.
#[derive(Debug, Clone)]
struct Product {
    id: String,
    price: Money,
    stock: u64,
    raw: Value,
}

/// A deterministic pseudo-random stream (SplitMix64): the order mix needs no more.
#[derive(Debug, Clone)]
struct Mix(u64);

impl Mix {
    fn new(seed: u64, i: u64) -> Mix {
        Mix(seed ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The orders of a run.
#[derive(Debug)]
struct Plan {
    user_id: String,
    hot: Vec<String>,
    cold: Vec<String>,
    /// The product and quantity of a declining order.
    decline: Option<(String, u32)>,
    lines: usize,
    hot_share: f64,
    decline_share: f64,
    seed: u64,
}

impl Plan {
    fn new(opts: &BenchOptions, user_id: String, catalogue: &[Product]) -> anyhow::Result<Plan> {
        if catalogue.is_empty() {
            bail!("the server has no products to order");
        }
        let mut ids: Vec<&Product> = catalogue.iter().collect();
        ids.sort_by(|a, b| a.id.cmp(&b.id));
        let hot_n = opts.hot_products.min(ids.len());
        let hot: Vec<String> = ids[..hot_n].iter().map(|p| p.id.clone()).collect();
        let cold: Vec<String> = ids[hot_n..].iter().map(|p| p.id.clone()).collect();
        let decline = if opts.decline_share > 0.0 {
            let top = catalogue
                .iter()
                .filter(|p| p.price > Money::ZERO)
                .max_by_key(|p| p.price)
                .context("no product has a price")?;
            let qty = opts.decline_over.minor() / top.price.minor() + 1;
            Some((
                top.id.clone(),
                u32::try_from(qty).context("decline quantity")?,
            ))
        } else {
            None
        };
        Ok(Plan {
            user_id,
            hot,
            cold,
            decline,
            lines: opts.lines.min(catalogue.len()),
            hot_share: opts.hot_share,
            decline_share: opts.decline_share,
            seed: opts.seed,
        })
    }

    /// The body of order `i` and whether it is priced to be declined.
    fn order(&self, i: u64) -> (String, bool) {
        let mut mix = Mix::new(self.seed, i);
        let (items, decline): (Vec<Value>, bool) = match &self.decline {
            Some((id, qty)) if mix.unit() < self.decline_share => {
                (vec![json!({"productId": id, "qty": qty})], true)
            }
            _ => {
                let mut hot: Vec<&String> = self.hot.iter().collect();
                let mut cold: Vec<&String> = self.cold.iter().collect();
                let mut out = Vec::with_capacity(self.lines);
                for _ in 0..self.lines {
                    let want_hot = mix.unit() < self.hot_share;
                    let pool = match (want_hot, hot.is_empty(), cold.is_empty()) {
                        (_, true, true) => break,
                        (true, false, _) | (false, false, true) => &mut hot,
                        _ => &mut cold,
                    };
                    let k = mix.below(pool.len());
                    let id = pool.swap_remove(k);
                    out.push(json!({"productId": id, "qty": 1}));
                }
                (out, false)
            }
        };
        let body = json!({
            "userId": self.user_id,
            "customerEmail": "bench@example.com",
            "items": items,
        });
        (body.to_string(), decline)
    }

    /// Units of each product the plan orders (for a warning about stock).
    fn demand(&self, orders: u64) -> HashMap<String, u64> {
        let mut d = HashMap::new();
        for i in 0..orders.min(20_000) {
            let (body, _) = self.order(i);
            if let Ok(v) = serde_json::from_str::<Value>(&body)
                && let Some(items) = v["items"].as_array()
            {
                for it in items {
                    if let (Some(id), Some(q)) = (it["productId"].as_str(), it["qty"].as_u64()) {
                        *d.entry(id.to_owned()).or_insert(0) += q;
                    }
                }
            }
        }
        if orders > 20_000 {
            for v in d.values_mut() {
                *v = *v * orders / 20_000;
            }
        }
        d
    }
}

/// One answered request.
#[derive(Debug)]
struct Outcome {
    latency: Duration,
    /// The created order's id and whether it was priced to be declined; `None` for raw
    /// GETs.
    result: Result<Option<(String, bool)>, String>,
}

/// What the load phase collected.
#[derive(Debug)]
struct Tally {
    hist: Histogram<u64>,
    succeeded: u64,
    errors: BTreeMap<String, u64>,
    created: Vec<(String, bool)>,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs to 1 h at 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).context("latency histogram")
}

fn error_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else if e.is_request() {
        "request"
    } else {
        "transport"
    }
    .to_owned()
}

#[derive(Debug, Clone)]
enum Job {
    Orders(Arc<Plan>, String),
    RawGet(String),
}

async fn one(
    client: &reqwest::Client,
    job: &Job,
    i: u64,
) -> Result<Option<(String, bool)>, String> {
    match job {
        Job::RawGet(url) => {
            let resp = client.get(url).send().await.map_err(|e| error_kind(&e))?;
            let status = resp.status();
            resp.bytes().await.map_err(|e| error_kind(&e))?;
            if status.is_success() {
                Ok(None)
            } else {
                Err(format!("http_{}", status.as_u16()))
            }
        }
        Job::Orders(plan, url) => {
            let (body, decline) = plan.order(i);
            let resp = client
                .post(url)
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| error_kind(&e))?;
            let status = resp.status();
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.rsplit('/').next())
                .map(str::to_owned);
            let bytes = resp.bytes().await.map_err(|e| error_kind(&e))?;
            if status.as_u16() != 201 {
                return Err(format!("http_{}", status.as_u16()));
            }
            let id = match location {
                Some(id) if !id.is_empty() => id,
                _ => serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v["orderId"].as_str().map(str::to_owned))
                    .ok_or_else(|| "no_order_id".to_owned())?,
            };
            Ok(Some((id, decline)))
        }
    }
}

fn bar(progress: bool, len: u64, what: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, {eta} left)",
    ) {
        pb.set_style(style);
    }
    pb.set_message(what.to_owned());
    pb
}

/// Sends the requests and collects their outcomes. Answers the tally and the elapsed time.
async fn drive(
    client: &reqwest::Client,
    opts: &BenchOptions,
    job: Job,
) -> anyhow::Result<(Tally, Duration)> {
    let n = opts.orders;
    let pb = bar(
        opts.progress,
        n,
        match job {
            Job::Orders(..) => "orders",
            Job::RawGet(_) => "requests",
        },
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let collector = {
        let pb = pb.clone();
        let mut tally = Tally {
            hist: histogram()?,
            succeeded: 0,
            errors: BTreeMap::new(),
            created: Vec::with_capacity(usize::try_from(n).unwrap_or(0)),
        };
        tokio::spawn(async move {
            while let Some(o) = rx.recv().await {
                let us = u64::try_from(o.latency.as_micros()).unwrap_or(u64::MAX);
                tally.hist.saturating_record(us.max(1));
                match o.result {
                    Ok(created) => {
                        tally.succeeded += 1;
                        if let Some(c) = created {
                            tally.created.push(c);
                        }
                    }
                    Err(kind) => *tally.errors.entry(kind).or_insert(0) += 1,
                }
                pb.inc(1);
            }
            tally
        })
    };
    let start = Instant::now();
    match opts.load {
        Load::Rate(rate) => {
            let limit = Arc::new(Semaphore::new(opts.max_in_flight));
            for i in 0..n {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let permit = limit.clone().acquire_owned().await?;
                let (client, job, tx) = (client.clone(), job.clone(), tx.clone());
                tokio::spawn(async move {
                    let result = one(&client, &job, i).await;
                    drop(permit);
                    let _ = tx.send(Outcome {
                        latency: due.elapsed(),
                        result,
                    });
                });
            }
            // Every permit back means every request answered.
            let all = u32::try_from(opts.max_in_flight).unwrap_or(u32::MAX);
            let _ = limit.acquire_many(all).await?;
        }
        Load::Concurrency(c) => {
            let next = Arc::new(AtomicU64::new(0));
            let mut clients = tokio::task::JoinSet::new();
            for _ in 0..c {
                let (client, job, tx, next) =
                    (client.clone(), job.clone(), tx.clone(), next.clone());
                clients.spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let sent = Instant::now();
                        let result = one(&client, &job, i).await;
                        let _ = tx.send(Outcome {
                            latency: sent.elapsed(),
                            result,
                        });
                    }
                });
            }
            while let Some(r) = clients.join_next().await {
                r.context("a bench client panicked")?;
            }
        }
    }
    let elapsed = start.elapsed();
    drop(tx);
    let tally = collector.await.context("collecting outcomes")?;
    pb.finish_and_clear();
    Ok((tally, elapsed))
}

/// GETs a JSON document, retrying transient failures a few times.
async fn get_json(
    client: &reqwest::Client,
    url: &str,
    query: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let mut last = String::new();
    for attempt in 0..5u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
        }
        match client.get(url).query(query).send().await {
            Ok(r) if r.status().is_success() => {
                return r.json().await.with_context(|| format!("reading {url}"));
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                if !(status.is_server_error() || status.as_u16() == 429) {
                    bail!("GET {url}: {status}: {body}");
                }
                last = format!("{status}: {body}");
            }
            Err(e) => last = e.to_string(),
        }
    }
    bail!("GET {url} kept failing: {last}")
}

async fn catalogue(client: &reqwest::Client, base: &str) -> anyhow::Result<Vec<Product>> {
    let v = get_json(client, &format!("{base}/products"), &[]).await?;
    let items = v["items"].as_array().context("GET /products: no items")?;
    items
        .iter()
        .map(|p| {
            Ok(Product {
                id: p["productId"]
                    .as_str()
                    .context("a product without productId")?
                    .to_owned(),
                price: Money::from_json(&p["price"])
                    .map_err(|e| anyhow::anyhow!("a product's price: {e}"))?,
                stock: p["stock"].as_u64().context("a product without stock")?,
                raw: p.clone(),
            })
        })
        .collect()
}

async fn restock(
    client: &reqwest::Client,
    base: &str,
    products: &[Product],
    stock: u32,
) -> anyhow::Result<()> {
    for p in products {
        let body = json!({
            "name": p.raw["name"],
            "price": p.raw["price"],
            "category": p.raw["category"],
            "stock": stock,
        });
        let r = client
            .put(format!("{base}/products/{}", p.id))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("restocking {}", p.id))?;
        if !r.status().is_success() {
            let status = r.status();
            bail!(
                "restocking {}: {status}: {} (--restock needs an admin key)",
                p.id,
                r.text().await.unwrap_or_default()
            );
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedItem {
    product_id: String,
    qty: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    order_id: String,
    status: String,
    failure_reason: Option<String>,
    created_at: String,
    updated_at: String,
    items: Vec<ListedItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPage {
    items: Vec<Listed>,
    next_cursor: Option<String>,
}

async fn list_page(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    status: Option<&str>,
    limit: u32,
    cursor: Option<&str>,
) -> anyhow::Result<ListPage> {
    let limit = limit.to_string();
    let mut q = vec![("userId", user), ("limit", limit.as_str())];
    if let Some(s) = status {
        q.push(("status", s));
    }
    if let Some(c) = cursor {
        q.push(("cursor", c));
    }
    let v = get_json(client, &format!("{base}/orders"), &q).await?;
    serde_json::from_value(v).context("GET /orders: unexpected page")
}

const TERMINAL: [&str; 3] = ["FULFILLED", "FAILED", "CANCELLED"];

/// Waits until no order of the run is PENDING or CONFIRMED, then checks them all.
async fn settle(
    client: &reqwest::Client,
    opts: &BenchOptions,
    plan: &Plan,
    created: &[(String, bool)],
    before: &[Product],
) -> anyhow::Result<Settlement> {
    let base = opts.url.trim_end_matches('/');
    let user = plan.user_id.as_str();
    let started = Instant::now();
    let deadline = started + opts.settle_timeout;
    let spinner = if opts.progress {
        let s = ProgressBar::new_spinner();
        s.set_message("waiting for every order to become terminal");
        s.enable_steady_tick(Duration::from_millis(200));
        s
    } else {
        ProgressBar::hidden()
    };
    let settled = loop {
        let mut open = false;
        for status in ["PENDING", "CONFIRMED"] {
            if !list_page(client, base, user, Some(status), 1, None)
                .await?
                .items
                .is_empty()
            {
                open = true;
                break;
            }
        }
        if !open {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let settle_secs = started.elapsed().as_secs_f64();
    spinner.finish_and_clear();

    // Every order of the run, newest first.
    let mut orders: HashMap<String, Listed> = HashMap::with_capacity(created.len());
    let mut cursor: Option<String> = None;
    loop {
        let page = list_page(client, base, user, None, 100, cursor.as_deref()).await?;
        for o in page.items {
            orders.insert(o.order_id.clone(), o);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let after = catalogue(client, base).await?;

    let mut lost_ids = Vec::new();
    let mut lost = 0u64;
    let mut declines_sent = 0u64;
    let mut declines_failed = 0u64;
    let acknowledged: HashSet<&str> = created.iter().map(|(id, _)| id.as_str()).collect();
    for (id, decline) in created {
        let o = orders.get(id);
        if *decline {
            declines_sent += 1;
            if o.is_some_and(|o| o.status == "FAILED") {
                declines_failed += 1;
            }
        }
        if !o.is_some_and(|o| TERMINAL.contains(&o.status.as_str())) {
            lost += 1;
            if lost_ids.len() < 20 {
                lost_ids.push(id.clone());
            }
        }
    }
    let unacknowledged = orders
        .keys()
        .filter(|id| !acknowledged.contains(id.as_str()))
        .count() as u64;

    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut failure_reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut held: HashMap<&str, u64> = HashMap::new();
    let mut e2e = histogram()?;
    let mut first_created = i64::MAX;
    let mut last_terminal = i64::MIN;
    let mut terminal = 0u64;
    let mut open_left = false;
    for o in orders.values() {
        *by_status.entry(o.status.clone()).or_insert(0) += 1;
        match o.status.as_str() {
            "FULFILLED" => {
                for it in &o.items {
                    *held.entry(it.product_id.as_str()).or_insert(0) += it.qty;
                }
            }
            "FAILED" => {
                let reason = o.failure_reason.as_deref().unwrap_or("(none)");
                let head = reason.split(':').next().unwrap_or(reason).trim();
                *failure_reasons.entry(head.to_owned()).or_insert(0) += 1;
            }
            "CANCELLED" => {}
            _ => open_left = true,
        }
        if TERMINAL.contains(&o.status.as_str())
            && let (Some(c), Some(u)) = (
                Timestamp::parse_rfc3339(&o.created_at),
                Timestamp::parse_rfc3339(&o.updated_at),
            )
        {
            terminal += 1;
            first_created = first_created.min(c.millis());
            last_terminal = last_terminal.max(u.millis());
            let ms = u64::try_from(u.millis() - c.millis()).unwrap_or(0);
            e2e.saturating_record(ms.max(1));
        }
    }
    let span_ms = last_terminal.saturating_sub(first_created).max(1);
    let sagas_per_sec = if terminal == 0 {
        0.0
    } else {
        terminal as f64 * 1000.0 / span_ms as f64
    };

    let initial: HashMap<&str, u64> = before.iter().map(|p| (p.id.as_str(), p.stock)).collect();
    let mut stock = Vec::new();
    let mut ids: Vec<&str> = initial.keys().copied().collect();
    for p in &after {
        if !initial.contains_key(p.id.as_str()) {
            ids.push(p.id.as_str());
        }
    }
    ids.sort_unstable();
    let final_of: HashMap<&str, u64> = after.iter().map(|p| (p.id.as_str(), p.stock)).collect();
    for id in ids {
        let initial = initial.get(id).copied().unwrap_or(0);
        let final_ = final_of.get(id).copied().unwrap_or(0);
        let held_by_fulfilled = held.get(id).copied().unwrap_or(0);
        stock.push(StockCheck {
            product_id: id.to_owned(),
            initial,
            final_,
            held_by_fulfilled,
            ok: initial.checked_sub(final_) == Some(held_by_fulfilled),
        });
    }
    let conserved = !open_left && stock.iter().all(|c| c.ok);
    Ok(Settlement {
        settled,
        settle_secs,
        by_status,
        failure_reasons,
        declines_sent,
        declines_failed,
        lost,
        lost_ids,
        unacknowledged,
        end_to_end: Latency::of(&e2e, 1.0),
        sagas_per_sec,
        conserved,
        stock,
    })
}

fn client(opts: &BenchOptions) -> anyhow::Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    if let Some(key) = &opts.api_key {
        let mut v = HeaderValue::from_str(key).context("the API key is not a valid header")?;
        v.set_sensitive(true);
        headers.insert("x-api-key", v);
    }
    let pool = match opts.load {
        Load::Rate(_) => opts.max_in_flight,
        Load::Concurrency(c) => c,
    };
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(pool)
        .timeout(opts.request_timeout)
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// Runs a benchmark against the server at `opts.url` and reports what it measured.
pub async fn run(opts: &BenchOptions) -> anyhow::Result<Report> {
    opts.check()?;
    let client = client(opts)?;
    let base = opts.url.trim_end_matches('/').to_owned();
    let (target_rate, concurrency, load, latency_from) = match opts.load {
        Load::Rate(r) => (Some(r), None, "rate", "intended send time"),
        Load::Concurrency(c) => (None, Some(c), "concurrency", "actual send time"),
    };
    let report = |mode: &str,
                  url: String,
                  tally: &Tally,
                  elapsed: Duration,
                  user_id: Option<String>,
                  settlement: Option<Settlement>,
                  store: Option<StoreWork>| {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Report {
            mode: mode.to_owned(),
            url,
            load: load.to_owned(),
            target_rate,
            concurrency,
            requested: opts.orders,
            succeeded: tally.succeeded,
            errors: tally.errors.clone(),
            elapsed_secs: secs,
            throughput: tally.succeeded as f64 / secs,
            latency: Latency::of(&tally.hist, 0.001),
            latency_from: latency_from.to_owned(),
            user_id,
            settlement,
            store,
        }
    };
    if let Some(url) = &opts.raw_get {
        let (tally, elapsed) = drive(&client, opts, Job::RawGet(url.clone())).await?;
        return Ok(report(
            "raw-get",
            url.clone(),
            &tally,
            elapsed,
            None,
            None,
            None,
        ));
    }

    let mut before = catalogue(&client, &base).await?;
    if let Some(n) = opts.restock {
        restock(&client, &base, &before, n).await?;
        before = catalogue(&client, &base).await?;
    }
    let user_id = opts.user_id.clone().unwrap_or_else(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("bench-{ms}-{}", std::process::id())
    });
    let plan = Arc::new(Plan::new(opts, user_id.clone(), &before)?);
    let short: Vec<String> = plan
        .demand(opts.orders)
        .into_iter()
        .filter(|(id, units)| before.iter().any(|p| p.id == *id && p.stock < *units))
        .map(|(id, _)| id)
        .collect();
    if !short.is_empty() {
        tracing::warn!(
            products = short.join(", "),
            "the run orders more than these products have in stock: orders will fail for lack \
             of stock (use --restock)"
        );
    }
    let counters_before = store_counters(&client, &base).await;
    let (tally, elapsed) = drive(
        &client,
        opts,
        Job::Orders(plan.clone(), format!("{base}/orders")),
    )
    .await?;
    let settlement = if opts.settle {
        Some(settle(&client, opts, &plan, &tally.created, &before).await?)
    } else {
        None
    };
    let store = match (counters_before, store_counters(&client, &base).await) {
        (Some(b), Some(a)) => Some(StoreWork::between(b, a, settlement.as_ref())),
        _ => None,
    };
    Ok(report(
        "orders",
        base,
        &tally,
        elapsed,
        Some(user_id),
        settlement,
        store,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str, price: i64, stock: u64) -> Product {
        Product {
            id: id.into(),
            price: Money::from_minor(price).unwrap_or(Money::ZERO),
            stock,
            raw: Value::Null,
        }
    }

    fn plan(hot_share: f64, decline_share: f64) -> Plan {
        let mut opts = BenchOptions::new("http://x", None);
        opts.hot_share = hot_share;
        opts.decline_share = decline_share;
        let cat: Vec<Product> = (1..=10)
            .map(|i| product(&format!("PROD-{i:03}"), 1000 * i, 100))
            .collect();
        Plan::new(&opts, "u".into(), &cat).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn shares_parse_as_fractions_or_percentages() {
        assert_eq!(parse_share("0.25"), Ok(0.25));
        assert_eq!(parse_share("80%"), Ok(0.8));
        assert!(parse_share("1.5").is_err());
        assert!(parse_share("-1").is_err());
        assert!(parse_share("x").is_err());
    }

    #[test]
    fn declining_orders_exceed_the_limit_on_the_priciest_product() {
        let p = plan(0.8, 1.0);
        // PROD-010 at 100.00: 10,000.00 / 100.00 + 1 = 101 units.
        assert_eq!(p.decline, Some(("PROD-010".to_owned(), 101)));
        let (body, decline) = p.order(7);
        assert!(decline);
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(v["items"][0]["qty"], 101);
    }

    #[test]
    fn lines_are_distinct_and_mostly_hot() {
        let p = plan(0.8, 0.0);
        let (mut hot, mut all) = (0, 0);
        for i in 0..2000 {
            let (body, decline) = p.order(i);
            assert!(!decline);
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            let items = v["items"].as_array().cloned().unwrap_or_default();
            assert_eq!(items.len(), 2);
            assert_ne!(items[0]["productId"], items[1]["productId"]);
            for it in &items {
                all += 1;
                if matches!(it["productId"].as_str(), Some("PROD-001" | "PROD-002")) {
                    hot += 1;
                }
            }
        }
        let share = f64::from(hot) / f64::from(all);
        assert!((0.75..0.85).contains(&share), "hot share {share}");
    }

    #[test]
    fn the_same_seed_gives_the_same_orders() {
        let p = plan(0.5, 0.1);
        assert_eq!(p.order(42), p.order(42));
        assert_ne!(p.order(42).0, p.order(43).0);
    }
}
