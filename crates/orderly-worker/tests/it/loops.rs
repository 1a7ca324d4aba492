//! The worker's loops on the SQLite store: queue consumption, the outbox relay and the
//! subscribers, dead letters and their replay, shutdown.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orderly_core::events::routes;
use orderly_core::input::parse_create_order;
use orderly_core::payment::{PaymentSimulator, SimulatorConfig};
use orderly_core::ports::{Notification, Notifier, NotifyError, SeedMode, SystemClock};
use orderly_core::saga::{SagaDef, SagaSettings};
use orderly_core::{OrderId, OrderStatus, Orderly, Ports, SagaPorts, Settings};
use orderly_sqlite::{SqliteOptions, SqliteStore};
use orderly_worker::bus::QueueBus;
use orderly_worker::{ORDERS_QUEUE, Worker, WorkerConfig};
use serde_json::json;
use tokio::sync::watch;

/// Records notifications instead of sending them.
#[derive(Default)]
struct Outbox(Mutex<Vec<Notification>>);

#[async_trait]
impl Notifier for Outbox {
    fn transport(&self) -> &'static str {
        "test"
    }
    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        self.0.lock().unwrap().push(n.clone());
        Ok(())
    }
}

struct Env {
    app: Orderly,
    mail: Arc<Outbox>,
    worker: Worker,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Env {
    start_with(None).await
}

/// A worker whose notifications go to `notifier` (or to the recording outbox).
async fn start_with(notifier: Option<Arc<dyn Notifier>>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let ports = Ports::from_store(store.clone(), Arc::new(SystemClock));
    let gateway = Arc::new(PaymentSimulator::new(SimulatorConfig::default()));
    let app = Orderly::new(ports, Settings::default())
        .with_saga(SagaPorts::from_store(store.clone(), gateway));
    app.seed(SeedMode::KeepExisting).await.unwrap();
    let mut cfg = WorkerConfig::new(SagaDef::orders(SagaSettings {
        payment_attempts: 3,
        payment_base_delay_ms: 5,
    }));
    cfg.redelivery_base = Duration::from_millis(10);
    cfg.visibility = Duration::from_secs(5);
    cfg.poll_wait = Duration::from_millis(500);
    let mail = Arc::new(Outbox::default());
    let bus = Arc::new(QueueBus::new(app.ports().queue.clone(), routes()));
    let sink: Arc<dyn Notifier> = notifier.unwrap_or_else(|| mail.clone());
    let worker = Worker::new(app.clone(), store, bus, sink, cfg);
    let mut env = Env {
        app,
        mail,
        worker,
        stop: watch::channel(false).0,
        task: None,
        _dir: dir,
    };
    env.run_worker();
    env
}

impl Env {
    async fn place(&self, product: &str, qty: u32) -> OrderId {
        let body = json!({"userId": "u", "customerEmail": "ada@example.com",
                          "items": [{"productId": product, "qty": qty}]});
        let req = parse_create_order(&body).unwrap();
        self.app
            .place_order(req, &body, None)
            .await
            .unwrap()
            .order_id
    }

    async fn until<F: Fn() -> Fut, Fut: Future<Output = bool>>(&self, what: &str, f: F) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn status(&self, id: OrderId) -> OrderStatus {
        self.app.order(id).await.unwrap().status
    }

    fn run_worker(&mut self) {
        let (stop, rx) = watch::channel(false);
        self.stop = stop;
        self.task = Some(tokio::spawn(self.worker.clone().run(rx)));
    }

    async fn stop(&mut self) {
        self.stop.send(true).unwrap();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("the worker stops promptly")
                .unwrap();
        }
    }
}

#[tokio::test]
async fn orders_flow_through_saga_relay_fulfilment_and_notifications() {
    let mut env = start().await;
    let id = env.place("PROD-001", 1).await;
    let failed = env.place("PROD-005", 60).await;
    env.until("fulfilment", || async {
        env.status(id).await == OrderStatus::Fulfilled
    })
    .await;
    env.until("failure", || async {
        env.status(failed).await == OrderStatus::Failed
    })
    .await;
    env.until("three mails", || async {
        env.mail.0.lock().unwrap().len() == 3
    })
    .await;
    let subjects: Vec<String> = env
        .mail
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.subject.clone())
        .collect();
    assert!(
        subjects.contains(&format!("Order {id} confirmed")),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&format!("Order {id} is on its way")),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&format!("Order {failed} could not be completed")),
        "{subjects:?}"
    );
    // The mail goes out before it is recorded: wait for the record too.
    let log = env.app.ports().notifications.clone();
    env.until("both mails recorded", || async {
        log.sent_for(id).await.unwrap().len() == 2
    })
    .await;
    let sent = log.sent_for(id).await.unwrap();
    assert!(
        sent.iter()
            .all(|(_, to, transport)| to == "ada@example.com" && transport == "test")
    );
    env.stop().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_after_three_receives_and_can_be_replayed() {
    let mut env = start().await;
    let q = env.app.ports().queue.clone();
    q.send(ORDERS_QUEUE, "this is not an order message", Duration::ZERO)
        .await
        .unwrap();
    env.until("dead letter", || async {
        q.dead_letter_count().await.unwrap() == 1
    })
    .await;
    let dead = env.app.dead_letters(10).await.unwrap();
    assert_eq!(dead[0].receive_count, 3);
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("malformed order message")
    );
    assert_eq!(q.depth(ORDERS_QUEUE).await.unwrap().waiting, 0);
    let replayed = env
        .app
        .replay_dead_letters(Some(vec![dead[0].id.clone()]))
        .await
        .unwrap();
    assert_eq!(replayed.len(), 1);
    // Still poison: it goes round again and lands back in the dead-letter queue.
    env.until("dead again", || async {
        q.dead_letter_count().await.unwrap() == 1
    })
    .await;
    env.stop().await;
}

#[tokio::test]
async fn redelivered_and_replayed_messages_of_finished_orders_change_nothing() {
    let mut env = start().await;
    let id = env.place("PROD-002", 2).await;
    env.until("fulfilment", || async {
        env.status(id).await == OrderStatus::Fulfilled
    })
    .await;
    env.until("mails", || async { env.mail.0.lock().unwrap().len() == 2 })
        .await;
    let before = (
        env.app.order(id).await.unwrap(),
        env.app.order_events(id).await.unwrap().len(),
        env.app
            .saga_ports()
            .expect("saga ports")
            .payments
            .payment(id)
            .await
            .unwrap(),
        env.app
            .product(&"PROD-002".parse().unwrap())
            .await
            .unwrap()
            .stock,
    );
    assert_eq!(before.3, 298);
    let q = env.app.ports().queue.clone();
    let body = json!({ "orderId": id }).to_string();
    // The same processing message delivered twice more.
    q.send(ORDERS_QUEUE, &body, Duration::ZERO).await.unwrap();
    q.send(ORDERS_QUEUE, &body, Duration::ZERO).await.unwrap();
    // And the same event delivered again to both subscribers.
    let placed = env
        .app
        .order_events(id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.detail_type == orderly_core::EventType::OrderPlaced)
        .unwrap();
    for target in ["fulfilment", "notifications"] {
        q.send(target, &placed.to_json(), Duration::ZERO)
            .await
            .unwrap();
    }
    env.until("queues drained", || async {
        let mut empty = true;
        for name in [ORDERS_QUEUE, "fulfilment", "notifications"] {
            let d = q.depth(name).await.unwrap();
            empty &= d.waiting == 0 && d.in_flight == 0;
        }
        empty
    })
    .await;
    let after = (
        env.app.order(id).await.unwrap(),
        env.app.order_events(id).await.unwrap().len(),
        env.app
            .saga_ports()
            .expect("saga ports")
            .payments
            .payment(id)
            .await
            .unwrap(),
        env.app
            .product(&"PROD-002".parse().unwrap())
            .await
            .unwrap()
            .stock,
    );
    assert_eq!(after, before);
    assert_eq!(
        env.mail.0.lock().unwrap().len(),
        2,
        "no second mail for the same event"
    );
    env.stop().await;

    // With the worker stopped, the order's message fails three times by hand and is
    // dead-lettered; replaying it into a running worker changes nothing either.
    q.send(ORDERS_QUEUE, &body, Duration::ZERO).await.unwrap();
    for _ in 0..3 {
        let m = q
            .receive(ORDERS_QUEUE, 1, Duration::from_secs(5), Duration::ZERO)
            .await
            .unwrap();
        q.nack(ORDERS_QUEUE, &m[0].id, "forced failure", Duration::ZERO)
            .await
            .unwrap();
    }
    let dead = env.app.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, body);
    env.run_worker();
    assert_eq!(env.app.replay_dead_letters(None).await.unwrap().len(), 1);
    env.until("replay processed", || async {
        let d = q.depth(ORDERS_QUEUE).await.unwrap();
        d.waiting == 0 && d.in_flight == 0
    })
    .await;
    assert_eq!(q.dead_letter_count().await.unwrap(), 0);
    let replayed = (
        env.app.order(id).await.unwrap(),
        env.app.order_events(id).await.unwrap().len(),
        env.app
            .saga_ports()
            .expect("saga ports")
            .payments
            .payment(id)
            .await
            .unwrap(),
        env.app
            .product(&"PROD-002".parse().unwrap())
            .await
            .unwrap()
            .stock,
    );
    assert_eq!(replayed, before);
    env.stop().await;
}

/// A mail server that is always down.
struct Down;

#[async_trait]
impl Notifier for Down {
    fn transport(&self) -> &'static str {
        "down"
    }
    async fn send(&self, _: &Notification) -> Result<(), NotifyError> {
        Err(NotifyError {
            transient: true,
            message: "connection refused".into(),
        })
    }
}

#[tokio::test]
async fn a_failing_subscriber_dead_letters_without_blocking_the_others() {
    let mut env = start_with(Some(Arc::new(Down))).await;
    let q = env.app.ports().queue.clone();
    let ids = [
        env.place("PROD-003", 1).await,
        env.place("PROD-004", 1).await,
    ];
    for id in ids {
        env.until("fulfilment despite the mail outage", || async {
            env.status(id).await == OrderStatus::Fulfilled
        })
        .await;
    }
    // Each order's OrderPlaced and FulfillmentCompleted mails fail 3 times, then rest in
    // the dead-letter queue with the reason.
    env.until("four dead-lettered notifications", || async {
        q.dead_letter_count().await.unwrap() == 4
    })
    .await;
    let dead = env.app.dead_letters(10).await.unwrap();
    assert!(dead.iter().all(|d| {
        d.queue == "notifications"
            && d.last_error
                .as_deref()
                .unwrap()
                .contains("connection refused")
    }));
    assert!(
        env.app
            .ports()
            .notifications
            .sent_for(ids[0])
            .await
            .unwrap()
            .is_empty()
    );
    env.stop().await;
}
