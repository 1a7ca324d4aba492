//! The use cases of `Orderly` on the in-memory adapters: accepting, pricing, idempotency,
//! cancelling, listing.

#![allow(clippy::unwrap_used)]
use std::sync::Arc;

use orderly_core::input::parse_create_order;
use orderly_core::model::Timestamp;
use orderly_core::ports::ManualClock;
use orderly_core::ports::{OrderStore, SeedMode, Transition, TransitionOutcome};
use orderly_core::service::*;
use orderly_core::*;
use orderly_testkit::memory::MemoryStore;
use serde_json::Value;
use serde_json::json;

fn app() -> (Orderly, Arc<MemoryStore>, Arc<ManualClock>) {
    let store = Arc::new(MemoryStore::new());
    let start = Timestamp::from_millis(1_767_225_600_000).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let gateway = Arc::new(orderly_core::payment::PaymentSimulator::default());
    let ports = Ports::from_store(store.clone(), clock.clone());
    let saga = orderly_core::SagaPorts::from_store(store.clone(), gateway);
    (
        Orderly::new(ports, Settings::default()).with_saga(saga),
        store,
        clock,
    )
}

async fn place(app: &Orderly, body: Value, key: Option<&str>) -> Result<Placed, Error> {
    let req = parse_create_order(&body)?;
    app.place_order(req, &body, key.map(|k| k.parse().unwrap()))
        .await
}

fn body() -> Value {
    json!({"userId": "u1", "items": [{"productId": "PROD-005", "qty": 2}]})
}

#[tokio::test]
async fn a_backend_line_limit_is_a_field_error() {
    let (app, _store, _) = app();
    app.seed(SeedMode::KeepExisting).await.unwrap();
    let limited = Orderly::new(
        app.ports().clone(),
        Settings {
            max_order_lines: 1,
            ..Settings::default()
        },
    );
    let two = json!({"userId": "u", "items": [
        {"productId": "PROD-001", "qty": 1}, {"productId": "PROD-002", "qty": 1}]});
    match place(&limited, two, None).await {
        Err(Error::Invalid { details, .. }) => {
            assert_eq!(details[0].field, "items");
            assert!(details[0].reason.contains("at most 1"), "{details:?}");
        }
        other => panic!("expected a field error, got {other:?}"),
    }
    let one = json!({"userId": "u", "items": [{"productId": "PROD-001", "qty": 1}]});
    assert!(place(&limited, one, None).await.is_ok());
}

#[tokio::test]
async fn accepting_enqueues_processing_in_the_same_write() {
    let (app, store, _) = app();
    app.seed(SeedMode::KeepExisting).await.unwrap();
    let placed = place(&app, body(), None).await.unwrap();
    assert_eq!(store.queued(), vec![placed.order_id]);
    let order = app.order(placed.order_id).await.unwrap();
    assert_eq!(order.total_amount.minor(), 39998);
}

#[tokio::test]
async fn idempotency_keys_expire_after_the_ttl() {
    let (app, _, clock) = app();
    app.seed(SeedMode::KeepExisting).await.unwrap();
    let first = place(&app, body(), Some("k")).await.unwrap();
    clock.advance_secs(24 * 3600 - 1);
    let again = place(&app, body(), Some("k")).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.order_id, first.order_id);
    clock.advance_secs(2);
    let later = place(&app, body(), Some("k")).await.unwrap();
    assert!(!later.replayed, "an expired key is a new key");
    assert_ne!(later.order_id, first.order_id);
}

#[tokio::test]
async fn unknown_products_are_all_named() {
    let (app, _, _) = app();
    app.seed(SeedMode::KeepExisting).await.unwrap();
    let body = json!({"userId": "u", "items": [{"productId": "X-1", "qty": 1},
        {"productId": "PROD-001", "qty": 1}, {"productId": "X-2", "qty": 1}]});
    match place(&app, body, Some("k2")).await {
        Err(Error::Unprocessable { code, details, .. }) => {
            assert_eq!(code, "unknown_product");
            let fields: Vec<&str> = details.iter().map(|d| d.field.as_str()).collect();
            assert_eq!(fields, ["items[0].productId", "items[2].productId"]);
        }
        other => panic!("{other:?}"),
    }
    // The failed request released its key.
    let ok = place(
        &app,
        json!({"userId": "u", "items": [{"productId": "PROD-001", "qty": 1}]}),
        Some("k2"),
    )
    .await;
    assert!(ok.is_ok());
}

async fn move_to(app: &Orderly, store: &MemoryStore, id: OrderId, path: &[OrderStatus]) {
    let mut from = OrderStatus::Pending;
    for &to in path {
        let now = app.ports().clock.now();
        let t = Transition {
            order_id: id,
            from,
            to,
            at: now,
            event: DomainEvent::new(id, orderly_core::EventType::OrderConfirmed, now, json!({})),
            failure_reason: None,
            tracking_id: None,
            enqueue_processing: false,
            step: None,
        };
        assert!(matches!(
            store.transition(t).await.unwrap(),
            TransitionOutcome::Applied(_)
        ));
        from = to;
    }
}

#[tokio::test]
async fn cancel_rules() {
    use OrderStatus::*;
    let (app, store, _) = app();
    app.seed(SeedMode::KeepExisting).await.unwrap();
    for (path, cancellable) in [
        (vec![], true),
        (vec![Confirmed], true),
        (vec![Confirmed, Fulfilled], false),
        (vec![Failed], false),
    ] {
        let id = place(&app, body(), None).await.unwrap().order_id;
        move_to(&app, &store, id, &path).await;
        let out = app.cancel_order(id).await;
        if cancellable {
            assert_eq!(out.unwrap().status, Cancelled, "{path:?}");
            assert_eq!(app.cancel_order(id).await.unwrap().status, Cancelled);
        } else {
            match out {
                Err(Error::Conflict { code, message }) => {
                    assert_eq!(code, "order_not_cancellable");
                    assert!(message.contains(path.last().unwrap().as_str()));
                }
                other => panic!("{path:?}: {other:?}"),
            }
        }
    }
    let missing = OrderId::generate(chrono::Utc::now());
    assert!(matches!(
        app.cancel_order(missing).await,
        Err(Error::NotFound { .. })
    ));
}

/// A runtime that only takes orders (the `api` function) is wired without the saga's
/// ports: taking an order works; a saga step asked of it is retried, never a failed order.
#[tokio::test]
async fn without_the_saga_ports_orders_are_taken_and_steps_are_retried() {
    let store = Arc::new(MemoryStore::new());
    let start = Timestamp::from_millis(1_767_225_600_000).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let app = Orderly::new(Ports::from_store(store.clone(), clock), Settings::default());
    assert!(app.saga_ports().is_none());
    app.seed(SeedMode::KeepExisting).await.unwrap();
    let body = json!({"userId": "u1", "items": [{"productId": "PROD-001", "qty": 1}]});
    let id = place(&app, body, None).await.unwrap().order_id;
    let order = store.get(id).await.unwrap().expect("stored");
    let step = app
        .run_action(
            orderly_core::saga::Action::ReserveInventory,
            &order,
            None,
            None,
        )
        .await;
    match step {
        Err(orderly_core::actions::StepError::Retryable(why)) => {
            assert!(why.contains("saga ports"), "{why}")
        }
        other => panic!("expected a retryable step error, got {other:?}"),
    }
    let still = store.get(id).await.unwrap().expect("stored");
    assert_eq!(still.status, OrderStatus::Pending);
}
