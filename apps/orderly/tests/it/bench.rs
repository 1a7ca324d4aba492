//! `orderly bench` against an in-process server: a short run must lose no order and
//! conserve stock exactly. It checks correctness under load, not speed.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::time::Duration;

use orderly::bench::{BenchOptions, Load, Report, run};

fn options(app: &common::TestApp) -> BenchOptions {
    let mut opts = BenchOptions::new(
        format!("http://{}", app.addr),
        Some(common::admin_key(&app.data_dir)),
    );
    opts.progress = false;
    opts.settle_timeout = Duration::from_secs(60);
    opts.request_timeout = Duration::from_secs(10);
    opts
}

fn assert_sound(r: &Report, orders: u64) {
    let s = r.settlement.as_ref().expect("orders are settled");
    assert!(r.errors.is_empty(), "errors: {:?}", r.errors);
    assert_eq!(r.succeeded, orders, "{}", r.text());
    assert!(s.settled, "{}", r.text());
    assert_eq!(s.lost, 0, "{}", r.text());
    assert_eq!(s.unacknowledged, 0, "{}", r.text());
    assert!(s.conserved, "{}", r.text());
    assert!(r.ok());
    assert_eq!(
        s.by_status.values().sum::<u64>(),
        orders,
        "{:?}",
        s.by_status
    );
    assert_eq!(s.end_to_end.count, orders);
    assert_eq!(r.latency.count, orders);
    assert!(r.latency.p50_ms <= r.latency.p99_ms && r.latency.p99_ms <= r.latency.max_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_run_loses_nothing_and_conserves_stock() {
    let app = common::spawn_app().await;
    let mut opts = options(&app);
    opts.orders = 300;
    opts.load = Load::Concurrency(16);
    opts.decline_share = 0.1;
    // Enough stock that only the declines fail, whatever the interleaving.
    opts.restock = Some(100_000);
    let r = run(&opts).await.unwrap();
    assert_sound(&r, 300);
    let s = r.settlement.as_ref().unwrap();
    // About 10 % of 300 are priced over the limit; every one of them is declined.
    assert!(
        (10..=60).contains(&s.declines_sent),
        "declines sent: {}",
        s.declines_sent
    );
    assert_eq!(s.declines_failed, s.declines_sent, "{}", r.text());
    assert_eq!(
        s.by_status.get("FAILED").copied().unwrap_or(0),
        s.declines_sent
    );
    assert_eq!(
        s.by_status.get("FULFILLED").copied().unwrap_or(0),
        300 - s.declines_sent
    );
    assert_eq!(
        s.failure_reasons.get("payment declined").copied(),
        Some(s.declines_sent),
        "{:?}",
        s.failure_reasons
    );
    // The stock check is not vacuous: fulfilled orders took units from the hot products.
    let hot: u64 = s
        .stock
        .iter()
        .filter(|c| c.product_id == "PROD-001" || c.product_id == "PROD-002")
        .map(|c| c.held_by_fulfilled)
        .sum();
    assert!(hot > 300, "hot units fulfilled: {hot}");
    assert!(s.stock.iter().all(|c| c.initial == 100_000));
    app_stock_matches(&app, s).await;
}

/// The report's final stock is what the server says now.
async fn app_stock_matches(app: &common::TestApp, s: &orderly::bench::Settlement) {
    for c in &s.stock {
        assert_eq!(app.stock(&c.product_id).await, c.final_, "{}", c.product_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_run_without_restock_still_conserves_stock() {
    // Seed stock only: some orders may fail for lack of stock; conservation must hold.
    let app = common::spawn_app().await;
    let mut opts = options(&app);
    opts.orders = 150;
    opts.load = Load::Rate(300.0);
    opts.decline_share = 0.05;
    let r = run(&opts).await.unwrap();
    assert_sound(&r, 150);
    assert_eq!(r.latency_from, "intended send time");
    // 150 orders at 300/s take about half a second.
    assert!(r.elapsed_secs >= 0.45, "elapsed {}", r.elapsed_secs);
    app_stock_matches(&app, r.settlement.as_ref().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_order_fails_the_run() {
    // An API without a worker never processes its orders: after the settle timeout they
    // are still PENDING, which the bench must report as lost and not conserved.
    let app = common::spawn_api_only().await;
    let mut opts = options(&app);
    opts.orders = 20;
    opts.load = Load::Concurrency(4);
    opts.decline_share = 0.0;
    opts.settle_timeout = Duration::from_millis(300);
    let r = run(&opts).await.unwrap();
    let s = r.settlement.as_ref().unwrap();
    assert!(!s.settled);
    assert_eq!(s.lost, 20);
    assert!(!s.conserved);
    assert!(!r.ok());
    // Creates only: nothing is checked, so nothing fails.
    opts.settle = false;
    let r = run(&opts).await.unwrap();
    assert_eq!(r.succeeded, 20);
    assert!(r.settlement.is_none());
    assert!(r.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_get_mode_counts_answers() {
    let app = common::spawn_api_only().await;
    let mut opts = options(&app);
    opts.orders = 50;
    opts.load = Load::Concurrency(4);
    opts.raw_get = Some(app.url("/health"));
    let r = run(&opts).await.unwrap();
    assert_eq!(r.mode, "raw-get");
    assert_eq!(r.succeeded, 50);
    assert!(r.settlement.is_none());
    // A route that is not there is counted by status.
    opts.raw_get = Some(app.url("/nowhere"));
    let r = run(&opts).await.unwrap();
    assert_eq!(r.succeeded, 0);
    assert_eq!(r.errors.get("http_404").copied(), Some(50));
}
