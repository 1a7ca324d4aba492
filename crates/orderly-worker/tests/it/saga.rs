//! The local saga engine on the SQLite store: every path of the saga, cancellation,
//! duplicates, the last unit, and resumption after a crash.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;

use orderly_core::input::parse_create_order;
use orderly_core::payment::{PaymentSimulator, SimulatorConfig};
use orderly_core::ports::{OrderStore, PaymentState, SeedMode, StepRecord, SystemClock};
use orderly_core::saga::{Action, SagaDef, SagaSettings};
use orderly_core::{Order, OrderId, OrderStatus, Orderly, Ports, SagaPorts, Settings};
use orderly_sqlite::{SqliteOptions, SqliteStore};
use orderly_testkit::faults::RefuseConfirm;
use orderly_worker::{SagaEngine, SagaOutcome};
use serde_json::json;

struct Env {
    app: Orderly,
    engine: SagaEngine,
    _dir: tempfile::TempDir,
}

fn settings() -> SagaSettings {
    SagaSettings {
        payment_attempts: 3,
        payment_base_delay_ms: 5,
    }
}

/// An Orderly on a fresh SQLite store; `wrap` may replace the order store (fault injection).
async fn env_with(
    sim: SimulatorConfig,
    wrap: impl FnOnce(Arc<SqliteStore>) -> Option<Arc<dyn OrderStore>>,
) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let mut ports = Ports::from_store(store.clone(), Arc::new(SystemClock));
    let saga = SagaPorts::from_store(store.clone(), Arc::new(PaymentSimulator::new(sim)));
    if let Some(orders) = wrap(store) {
        ports.orders = orders;
    }
    let app = Orderly::new(ports, Settings::default()).with_saga(saga);
    app.seed(SeedMode::KeepExisting).await.unwrap();
    let engine = SagaEngine::new(app.clone(), SagaDef::orders(settings()));
    Env {
        app,
        engine,
        _dir: dir,
    }
}

async fn env() -> Env {
    env_with(SimulatorConfig::default(), |_| None).await
}

impl Env {
    async fn place(&self, product: &str, qty: u32) -> OrderId {
        let body = json!({"userId": "u1", "customerEmail": "ada@example.com",
                          "items": [{"productId": product, "qty": qty}]});
        let req = parse_create_order(&body).unwrap();
        self.app
            .place_order(req, &body, None)
            .await
            .unwrap()
            .order_id
    }

    async fn order(&self, id: OrderId) -> Order {
        self.app.order(id).await.unwrap()
    }

    async fn stock(&self, product: &str) -> u32 {
        self.app
            .product(&product.parse().unwrap())
            .await
            .unwrap()
            .stock
    }

    async fn timeline(&self, id: OrderId) -> Vec<String> {
        self.app
            .order_events(id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.detail_type.to_string())
            .collect()
    }

    async fn payment(&self, id: OrderId) -> Option<PaymentState> {
        self.app
            .saga_ports()
            .expect("saga ports")
            .payments
            .payment(id)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn happy_path_confirms_then_fulfilment_assigns_a_tracking_id() {
    let env = env().await;
    let id = env.place("PROD-001", 3).await;
    assert_eq!(
        env.engine.process(id).await.unwrap(),
        SagaOutcome::Completed
    );
    assert_eq!(env.order(id).await.status, OrderStatus::Confirmed);
    assert_eq!(env.stock("PROD-001").await, 497);
    env.app.fulfil(id).await.unwrap();
    let o = env.order(id).await;
    assert_eq!(o.status, OrderStatus::Fulfilled);
    assert!(o.tracking_id.unwrap().starts_with("TRK-"));
    assert_eq!(
        env.timeline(id).await,
        [
            "OrderCreated",
            "InventoryReserved",
            "PaymentCompleted",
            "OrderConfirmed",
            "OrderPlaced",
            "FulfillmentCompleted"
        ]
    );
    assert!(matches!(
        env.payment(id).await,
        Some(PaymentState::Charged { .. })
    ));
    let log: Vec<(Action, bool)> = env
        .app
        .saga_ports()
        .expect("saga ports")
        .saga_log
        .steps(id)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.action, r.succeeded))
        .collect();
    assert_eq!(
        log,
        [
            (Action::ReserveInventory, true),
            (Action::ProcessPayment, true),
            (Action::ConfirmOrder, true),
            (Action::EmitOrderPlaced, true)
        ]
    );
}

#[tokio::test]
async fn insufficient_stock_fails_without_touching_stock() {
    let env = env().await;
    let id = env.place("PROD-005", 101).await;
    let out = env.engine.process(id).await.unwrap();
    assert!(
        matches!(out, SagaOutcome::Failed(ref r) if r.contains("insufficient stock")),
        "{out:?}"
    );
    let o = env.order(id).await;
    assert_eq!(o.status, OrderStatus::Failed);
    assert!(o.failure_reason.unwrap().contains("PROD-005"));
    assert_eq!(env.stock("PROD-005").await, 100);
    assert_eq!(env.timeline(id).await, ["OrderCreated", "OrderFailed"]);
    assert_eq!(env.payment(id).await, None, "never charged");
}

#[tokio::test]
async fn a_decline_releases_the_stock_and_is_never_retried() {
    let env = env().await;
    let id = env.place("PROD-005", 60).await; // 11,999.40 > 10,000.00
    let out = env.engine.process(id).await.unwrap();
    assert!(
        matches!(out, SagaOutcome::Failed(ref r) if r.contains("exceeds the limit")),
        "{out:?}"
    );
    assert_eq!(env.order(id).await.status, OrderStatus::Failed);
    assert_eq!(env.stock("PROD-005").await, 100, "stock restored");
    assert_eq!(
        env.timeline(id).await,
        [
            "OrderCreated",
            "InventoryReserved",
            "PaymentFailed",
            "InventoryReleased",
            "OrderFailed"
        ]
    );
    let steps = env
        .app
        .saga_ports()
        .expect("saga ports")
        .saga_log
        .steps(id)
        .await
        .unwrap();
    let pay = steps
        .iter()
        .find(|s| s.action == Action::ProcessPayment)
        .unwrap();
    assert_eq!(
        (pay.succeeded, pay.attempts),
        (false, 1),
        "a decline is not retried"
    );
}

#[tokio::test]
async fn transient_payment_failures_recover_within_the_retries() {
    let sim = SimulatorConfig {
        transient_failures: 2,
        ..SimulatorConfig::default()
    };
    let env = env_with(sim, |_| None).await;
    let id = env.place("PROD-002", 1).await;
    assert_eq!(
        env.engine.process(id).await.unwrap(),
        SagaOutcome::Completed
    );
    let steps = env
        .app
        .saga_ports()
        .expect("saga ports")
        .saga_log
        .steps(id)
        .await
        .unwrap();
    let pay = steps
        .iter()
        .find(|s| s.action == Action::ProcessPayment)
        .unwrap();
    assert_eq!((pay.succeeded, pay.attempts), (true, 3));
    assert_eq!(env.stock("PROD-002").await, 299);
}

#[tokio::test]
async fn payment_that_keeps_failing_transiently_compensates_once() {
    let sim = SimulatorConfig {
        transient_failures: 100,
        ..SimulatorConfig::default()
    };
    let env = env_with(sim, |_| None).await;
    let id = env.place("PROD-002", 2).await;
    let out = env.engine.process(id).await.unwrap();
    assert!(
        matches!(out, SagaOutcome::Failed(ref r) if r.contains("after 3 attempts")),
        "{out:?}"
    );
    assert_eq!(env.stock("PROD-002").await, 300);
    assert!(matches!(
        env.payment(id).await,
        Some(PaymentState::Declined { .. })
    ));
    // A redelivery changes nothing (and charges nothing).
    assert_eq!(
        env.engine.process(id).await.unwrap(),
        SagaOutcome::NothingToDo(OrderStatus::Failed)
    );
    assert_eq!(env.stock("PROD-002").await, 300);
}

#[tokio::test]
async fn a_confirm_failure_refunds_and_releases() {
    let env = env_with(SimulatorConfig::default(), |s| {
        Some(Arc::new(RefuseConfirm(s)))
    })
    .await;
    let id = env.place("PROD-003", 4).await;
    let out = env.engine.process(id).await.unwrap();
    assert!(matches!(out, SagaOutcome::Failed(_)), "{out:?}");
    assert_eq!(env.order(id).await.status, OrderStatus::Failed);
    assert_eq!(env.stock("PROD-003").await, 200);
    assert!(matches!(
        env.payment(id).await,
        Some(PaymentState::Refunded { .. })
    ));
    assert_eq!(
        env.timeline(id).await,
        [
            "OrderCreated",
            "InventoryReserved",
            "PaymentCompleted",
            "PaymentRefunded",
            "InventoryReleased",
            "OrderFailed"
        ]
    );
    // The paths match the saga definition.
    let saga = env.engine.saga();
    assert_eq!(
        saga.path(Some(Action::ConfirmOrder)),
        [
            Action::ReserveInventory,
            Action::ProcessPayment,
            Action::ConfirmOrder,
            Action::RefundPayment,
            Action::ReleaseInventory,
            Action::FailOrder
        ]
    );
}

#[tokio::test]
async fn cancelling_a_pending_order_before_processing_reserves_nothing() {
    let env = env().await;
    let id = env.place("PROD-004", 5).await;
    let o = env.app.cancel_order(id).await.unwrap();
    assert_eq!(o.status, OrderStatus::Cancelled);
    assert_eq!(
        env.engine.process(id).await.unwrap(),
        SagaOutcome::NothingToDo(OrderStatus::Cancelled)
    );
    assert_eq!(env.stock("PROD-004").await, 150);
    assert_eq!(env.payment(id).await, None);
    assert_eq!(env.timeline(id).await, ["OrderCreated", "OrderCancelled"]);
}

#[tokio::test]
async fn cancelling_a_confirmed_order_refunds_and_restocks() {
    let env = env().await;
    let id = env.place("PROD-006", 2).await;
    assert_eq!(
        env.engine.process(id).await.unwrap(),
        SagaOutcome::Completed
    );
    assert_eq!(env.stock("PROD-006").await, 248);
    let o = env.app.cancel_order(id).await.unwrap();
    assert_eq!(o.status, OrderStatus::Cancelled);
    assert_eq!(env.stock("PROD-006").await, 250);
    assert!(matches!(
        env.payment(id).await,
        Some(PaymentState::Refunded { .. })
    ));
    // Fulfilment arriving late leaves it cancelled; the queued compensation changes nothing.
    env.app.fulfil(id).await.unwrap();
    assert_eq!(
        env.engine.process(id).await.unwrap(),
        SagaOutcome::NothingToDo(OrderStatus::Cancelled)
    );
    assert_eq!(env.order(id).await.status, OrderStatus::Cancelled);
    assert_eq!(env.stock("PROD-006").await, 250);
    let t = env.timeline(id).await;
    assert_eq!(t.iter().filter(|e| *e == "PaymentRefunded").count(), 1);
    assert_eq!(t.iter().filter(|e| *e == "InventoryReleased").count(), 1);
    // Once fulfilled, cancellation is refused.
    let id2 = env.place("PROD-006", 1).await;
    env.engine.process(id2).await.unwrap();
    env.app.fulfil(id2).await.unwrap();
    assert!(env.app.cancel_order(id2).await.is_err());
}

#[tokio::test]
async fn duplicate_deliveries_change_nothing() {
    let env = env().await;
    let ok = env.place("PROD-007", 3).await;
    let declined = env.place("PROD-005", 60).await;
    for id in [ok, declined] {
        env.engine.process(id).await.unwrap();
    }
    let snapshot = |env: &Env| {
        let app = env.app.clone();
        async move {
            let mut s = Vec::new();
            for id in [ok, declined] {
                let o = app.order(id).await.unwrap();
                let events = app.order_events(id).await.unwrap().len();
                let pay = app
                    .saga_ports()
                    .expect("saga ports")
                    .payments
                    .payment(id)
                    .await
                    .unwrap();
                s.push(format!(
                    "{:?} {} {:?} v{}",
                    o.status, events, pay, o.version
                ));
            }
            for p in ["PROD-005", "PROD-007"] {
                s.push(
                    app.product(&p.parse().unwrap())
                        .await
                        .unwrap()
                        .stock
                        .to_string(),
                );
            }
            s
        }
    };
    let before = snapshot(&env).await;
    for _ in 0..3 {
        for id in [ok, declined] {
            env.engine.process(id).await.unwrap();
        }
    }
    assert_eq!(snapshot(&env).await, before);
}

#[tokio::test]
async fn fifty_orders_for_the_last_unit_one_wins() {
    let env = env().await;
    env.app
        .put_product(orderly_core::ProductSpec {
            product_id: "LAST-1".parse().unwrap(),
            name: "Last one".into(),
            price: orderly_core::Money::from_minor(1000).unwrap(),
            stock: 1,
            category: "Test".into(),
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(env.place("LAST-1", 1).await);
    }
    let mut tasks = Vec::new();
    for id in ids.clone() {
        let engine = env.engine.clone();
        tasks.push(tokio::spawn(
            async move { engine.process(id).await.unwrap() },
        ));
    }
    let mut completed = 0;
    let mut failed = 0;
    for t in tasks {
        match t.await.unwrap() {
            SagaOutcome::Completed => completed += 1,
            SagaOutcome::Failed(r) => {
                assert!(r.contains("insufficient stock"), "{r}");
                failed += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((completed, failed), (1, 49));
    assert_eq!(env.stock("LAST-1").await, 0);
}

#[tokio::test]
async fn a_restarted_engine_resumes_where_the_log_says() {
    let env = env().await;
    // Crashed right after reserving: the engine must not reserve again.
    let id = env.place("PROD-008", 10).await;
    let order = env.order(id).await;
    let at = env.app.ports().clock.now();
    let record = StepRecord {
        action: Action::ReserveInventory,
        succeeded: true,
        attempts: 1,
        detail: None,
        at,
    };
    // The record commits with the reservation: one write, nothing to record after it.
    assert!(
        env.app
            .run_action(Action::ReserveInventory, &order, None, Some(record.clone()))
            .await
            .unwrap(),
        "recorded with the effect"
    );
    assert_eq!(
        env.app
            .saga_ports()
            .expect("saga ports")
            .saga_log
            .steps(id)
            .await
            .unwrap(),
        [record]
    );
    assert_eq!(env.stock("PROD-008").await, 390);
    assert_eq!(
        env.engine.process(id).await.unwrap(),
        SagaOutcome::Completed
    );
    assert_eq!(env.stock("PROD-008").await, 390, "reserved exactly once");

    // Crashed after a payment failure was recorded, before the release: resume compensation.
    let id = env.place("PROD-009", 5).await;
    let order = env.order(id).await;
    env.app
        .run_action(Action::ReserveInventory, &order, None, None)
        .await
        .unwrap();
    for (action, ok) in [
        (Action::ReserveInventory, true),
        (Action::ProcessPayment, false),
    ] {
        env.app
            .saga_ports()
            .expect("saga ports")
            .saga_log
            .record_step(
                id,
                StepRecord {
                    action,
                    succeeded: ok,
                    attempts: 1,
                    detail: (!ok).then(|| "declined before the crash".into()),
                    at,
                },
            )
            .await
            .unwrap();
    }
    assert_eq!(env.stock("PROD-009").await, 75);
    let out = env.engine.process(id).await.unwrap();
    assert_eq!(out, SagaOutcome::Failed("declined before the crash".into()));
    assert_eq!(
        env.stock("PROD-009").await,
        80,
        "the compensation ran after the restart"
    );
    assert_eq!(
        env.order(id).await.failure_reason.as_deref(),
        Some("declined before the crash")
    );
}
