//! Contract suites of the order-processing ports.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use orderly_core::ports::{
    Clock, EventOutbox, Inventory, MAX_RECEIVES, ManualClock, NackOutcome, Notification,
    NotificationLog, OrderStore, PaymentLedger, PaymentState, Queue, ReleaseOutcome, Reservations,
    ReserveOutcome, SagaLog, StepRecord, Transition, TransitionOutcome,
};
use orderly_core::saga::Action;
use orderly_core::{DomainEvent, EventType, Money, OrderItem, OrderStatus, Qty};
use serde_json::json;

use crate::{new_order, order, spec, t0};

const NO_WAIT: Duration = Duration::ZERO;
const VIS: Duration = Duration::from_secs(30);

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(t0()))
}

/// The [`Queue`] contract. `fresh` gets the clock the adapter must use.
pub async fn queue_contract<S, F, Fut>(fresh: F)
where
    S: Queue,
    F: Fn(Arc<dyn Clock>) -> Fut,
    Fut: Future<Output = S>,
{
    // FIFO, batches, visibility, queues kept apart.
    let c = clock();
    let q = fresh(c.clone()).await;
    for b in ["a", "b", "c"] {
        q.send("q", b, Duration::ZERO).await.expect("send");
    }
    q.send("other", "x", Duration::ZERO).await.expect("send");
    let first = q.receive("q", 2, VIS, NO_WAIT).await.expect("receive");
    let bodies: Vec<&str> = first.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["a", "b"], "oldest first, at most max");
    assert!(first.iter().all(|m| m.receive_count == 1));
    let second = q.receive("q", 10, VIS, NO_WAIT).await.expect("receive");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].body, "c");
    assert!(
        q.receive("q", 10, VIS, NO_WAIT)
            .await
            .expect("receive")
            .is_empty(),
        "received messages are hidden"
    );
    let d = q.depth("q").await.expect("depth");
    assert_eq!((d.waiting, d.in_flight), (0, 3));
    q.ack("q", &first[0].id).await.expect("ack");
    c.advance_secs(31);
    let again = q.receive("q", 10, VIS, NO_WAIT).await.expect("receive");
    let bodies: Vec<&str> = again.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        ["b", "c"],
        "unacked messages come back after the visibility timeout"
    );
    assert!(again.iter().all(|m| m.receive_count == 2));
    // A stale receipt (from before the redelivery) no longer acks.
    q.ack("q", &first[1].id).await.expect("ack");
    c.advance_secs(31);
    assert_eq!(
        q.receive("q", 10, VIS, NO_WAIT)
            .await
            .expect("receive")
            .len(),
        2
    );
    let other = q.receive("other", 10, VIS, NO_WAIT).await.expect("receive");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].body, "x");

    // Nack, retry delay, dead-lettering after MAX_RECEIVES, replay.
    let c = clock();
    let q = fresh(c.clone()).await;
    q.send("q", "poison", Duration::ZERO).await.expect("send");
    for n in 1..=MAX_RECEIVES {
        let m = q.receive("q", 1, VIS, NO_WAIT).await.expect("receive");
        assert_eq!(m.len(), 1, "delivery {n}");
        assert_eq!(m[0].receive_count, n);
        let out = q
            .nack("q", &m[0].id, &format!("boom {n}"), Duration::from_secs(5))
            .await
            .expect("nack");
        if n < MAX_RECEIVES {
            assert_eq!(out, NackOutcome::WillRetry);
            assert!(
                q.receive("q", 1, VIS, NO_WAIT).await.expect("r").is_empty(),
                "nack delay"
            );
            c.advance_secs(6);
        } else {
            assert_eq!(out, NackOutcome::DeadLettered);
        }
    }
    assert!(q.receive("q", 1, VIS, NO_WAIT).await.expect("r").is_empty());
    let dead = q.dead_letters(10).await.expect("dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(dead[0].queue, "q");
    assert_eq!(dead[0].receive_count, MAX_RECEIVES);
    assert_eq!(dead[0].last_error.as_deref(), Some("boom 3"));
    assert_eq!(q.dead_letter_count().await.expect("count"), 1);
    assert!(
        q.replay(Some(vec!["no-such-id".into()]))
            .await
            .expect("replay")
            .is_empty()
    );
    let moved = q
        .replay(Some(vec![dead[0].id.clone()]))
        .await
        .expect("replay");
    assert_eq!(moved, [dead[0].id.clone()]);
    assert_eq!(q.dead_letter_count().await.expect("count"), 0);
    let m = q.receive("q", 1, VIS, NO_WAIT).await.expect("receive");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].receive_count, 1, "a replayed message starts afresh");

    // A last delivery that times out is dead-lettered, never delivered a fourth time.
    let c = clock();
    let q = fresh(c.clone()).await;
    q.send("q", "slow", Duration::ZERO).await.expect("send");
    for _ in 0..MAX_RECEIVES {
        assert_eq!(q.receive("q", 1, VIS, NO_WAIT).await.expect("r").len(), 1);
        c.advance_secs(31);
    }
    assert!(q.receive("q", 1, VIS, NO_WAIT).await.expect("r").is_empty());
    assert_eq!(q.dead_letter_count().await.expect("count"), 1);
    q.send("q", "second", Duration::ZERO).await.expect("send");
    for _ in 0..MAX_RECEIVES {
        let m = q.receive("q", 1, VIS, NO_WAIT).await.expect("r");
        q.nack("q", &m[0].id, "no", Duration::ZERO)
            .await
            .expect("nack");
    }
    assert_eq!(q.replay(None).await.expect("replay all").len(), 2);
    assert_eq!(q.depth("q").await.expect("depth").waiting, 2);

    // Delayed sends, extending visibility, dead-letter retention.
    let c = clock();
    let q = fresh(c.clone()).await;
    q.send("q", "later", Duration::from_secs(10))
        .await
        .expect("send");
    assert!(q.receive("q", 1, VIS, NO_WAIT).await.expect("r").is_empty());
    c.advance_secs(11);
    let m = q.receive("q", 1, VIS, NO_WAIT).await.expect("r");
    assert_eq!(m.len(), 1);
    assert_eq!(q.depth("q").await.expect("depth").oldest_age_ms, 11_000);
    c.advance_secs(20);
    q.extend("q", &m[0].id, VIS).await.expect("extend");
    c.advance_secs(20);
    assert!(
        q.receive("q", 1, VIS, NO_WAIT).await.expect("r").is_empty(),
        "extended message stays hidden"
    );
    c.advance_secs(11);
    let m = q.receive("q", 1, VIS, NO_WAIT).await.expect("r");
    assert_eq!(m.len(), 1);
    q.nack("q", &m[0].id, "x", Duration::ZERO)
        .await
        .expect("nack");
    let m = q.receive("q", 1, VIS, NO_WAIT).await.expect("r");
    assert_eq!(
        q.nack("q", &m[0].id, "x", Duration::ZERO)
            .await
            .expect("nack"),
        NackOutcome::DeadLettered
    );
    c.advance_secs(100);
    assert_eq!(
        q.purge_dead_letters(c.now().plus_secs(-50))
            .await
            .expect("purge"),
        1
    );
    assert_eq!(q.dead_letter_count().await.expect("count"), 0);
}

fn event(o: &orderly_core::Order, kind: EventType) -> DomainEvent {
    DomainEvent::new(o.order_id, kind, o.created_at, json!({}))
}

async fn stock(inv: &dyn Inventory, id: &str) -> u32 {
    inv.product(&id.parse().expect("id"))
        .await
        .expect("product")
        .expect("exists")
        .stock
}

/// The [`Reservations`] contract: all or nothing, idempotent per order, no re-reserve
/// after a release.
pub async fn reservations_contract<S, F, Fut>(fresh: F)
where
    S: Reservations + Inventory + OrderStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let s = fresh().await;
    s.put_product(spec("P1", 100, 5), t0()).await.expect("put");
    s.put_product(spec("P2", 100, 1), t0()).await.expect("put");
    let line = |p: &str, q: u32| OrderItem {
        product_id: p.parse().expect("id"),
        qty: Qty::new(q).expect("qty"),
        unit_price: Money::from_minor(100).expect("money"),
    };
    let mut a = order("u", 0);
    a.items = vec![line("P1", 2), line("P2", 1)];
    s.create(new_order(&a)).await.expect("create");
    let reserved = |o: &orderly_core::Order| event(o, EventType::InventoryReserved);
    let released = |o: &orderly_core::Order| event(o, EventType::InventoryReleased);
    assert_eq!(
        s.reserve(&a, reserved(&a)).await.expect("r"),
        ReserveOutcome::Reserved
    );
    assert_eq!((stock(&s, "P1").await, stock(&s, "P2").await), (3, 0));
    assert_eq!(
        s.reserve(&a, reserved(&a)).await.expect("r"),
        ReserveOutcome::AlreadyReserved
    );
    assert_eq!(
        (stock(&s, "P1").await, stock(&s, "P2").await),
        (3, 0),
        "no double reserve"
    );

    let mut b = order("u", 1);
    b.items = vec![line("P1", 1), line("P2", 1)];
    assert_eq!(
        s.reserve(&b, reserved(&b)).await.expect("r"),
        ReserveOutcome::Insufficient {
            product_id: "P2".parse().expect("id"),
            requested: 1,
            available: 0
        }
    );
    assert_eq!(stock(&s, "P1").await, 3, "all or nothing");

    assert_eq!(
        s.release(a.order_id, released(&a)).await.expect("rel"),
        ReleaseOutcome::Released
    );
    assert_eq!((stock(&s, "P1").await, stock(&s, "P2").await), (5, 1));
    assert_eq!(
        s.release(a.order_id, released(&a)).await.expect("rel"),
        ReleaseOutcome::AlreadyReleased
    );
    assert_eq!(
        (stock(&s, "P1").await, stock(&s, "P2").await),
        (5, 1),
        "no double release"
    );
    assert_eq!(
        s.reserve(&a, reserved(&a)).await.expect("r"),
        ReserveOutcome::Released
    );
    assert_eq!(
        stock(&s, "P1").await,
        5,
        "a released order is never reserved again"
    );
    let kinds: Vec<EventType> = s
        .events(a.order_id)
        .await
        .expect("events")
        .iter()
        .map(|e| e.detail_type)
        .collect();
    assert_eq!(
        kinds,
        [
            EventType::OrderCreated,
            EventType::InventoryReserved,
            EventType::InventoryReleased
        ]
    );

    // Releasing first (a cancellation racing the saga) blocks a later reserve.
    let mut c = order("u", 2);
    c.items = vec![line("P1", 1)];
    assert_eq!(
        s.release(c.order_id, released(&c)).await.expect("rel"),
        ReleaseOutcome::NothingReserved
    );
    assert_eq!(
        s.reserve(&c, reserved(&c)).await.expect("r"),
        ReserveOutcome::Released
    );
    assert_eq!(stock(&s, "P1").await, 5);

    let mut d = order("u", 3);
    d.items = vec![line("P9", 1)];
    assert_eq!(
        s.reserve(&d, reserved(&d)).await.expect("r"),
        ReserveOutcome::UnknownProduct("P9".parse().expect("id"))
    );

    // Only a PENDING order reserves.
    let mut e = order("u", 4);
    e.items = vec![line("P1", 1)];
    s.create(new_order(&e)).await.expect("create");
    let t = Transition {
        order_id: e.order_id,
        from: OrderStatus::Pending,
        to: OrderStatus::Cancelled,
        at: t0(),
        event: event(&e, EventType::OrderCancelled),
        failure_reason: None,
        tracking_id: None,
        enqueue_processing: false,
    };
    assert!(matches!(
        s.transition(t).await.expect("t"),
        TransitionOutcome::Applied(_)
    ));
    assert_eq!(
        s.reserve(&e, reserved(&e)).await.expect("r"),
        ReserveOutcome::NotPending(OrderStatus::Cancelled)
    );
    assert_eq!(stock(&s, "P1").await, 5);
}

/// The [`PaymentLedger`] contract: one charge outcome per order, the first wins.
pub async fn payment_ledger_contract<S, F, Fut>(fresh: F)
where
    S: PaymentLedger + OrderStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let s = fresh().await;
    let o = order("u", 0);
    s.create(new_order(&o)).await.expect("create");
    let id = o.order_id;
    assert_eq!(s.payment(id).await.expect("p"), None);
    let charged = PaymentState::Charged {
        payment_id: "pay_1".into(),
        amount: Money::from_minor(5998).expect("m"),
    };
    let got = s
        .record_charge(id, charged.clone(), event(&o, EventType::PaymentCompleted))
        .await
        .expect("charge");
    assert_eq!(got, charged);
    let declined = PaymentState::Declined {
        reason: "no".into(),
    };
    let got = s
        .record_charge(id, declined, event(&o, EventType::PaymentFailed))
        .await
        .expect("charge");
    assert_eq!(got, charged, "the first recorded outcome wins");
    let refunded = s
        .record_refund(id, "re_1".into(), event(&o, EventType::PaymentRefunded))
        .await
        .expect("refund");
    let expected = PaymentState::Refunded {
        payment_id: "pay_1".into(),
        refund_id: "re_1".into(),
        amount: Money::from_minor(5998).expect("m"),
    };
    assert_eq!(refunded, Some(expected.clone()));
    let again = s
        .record_refund(id, "re_2".into(), event(&o, EventType::PaymentRefunded))
        .await
        .expect("refund");
    assert_eq!(again, Some(expected), "a second refund changes nothing");
    let kinds: Vec<EventType> = s
        .events(id)
        .await
        .expect("events")
        .iter()
        .map(|e| e.detail_type)
        .collect();
    assert_eq!(
        kinds,
        [
            EventType::OrderCreated,
            EventType::PaymentCompleted,
            EventType::PaymentRefunded
        ]
    );

    let o2 = order("u", 1);
    s.create(new_order(&o2)).await.expect("create");
    let declined = PaymentState::Declined {
        reason: "limit".into(),
    };
    s.record_charge(
        o2.order_id,
        declined.clone(),
        event(&o2, EventType::PaymentFailed),
    )
    .await
    .expect("charge");
    assert_eq!(
        s.record_refund(
            o2.order_id,
            "re".into(),
            event(&o2, EventType::PaymentRefunded)
        )
        .await
        .expect("refund"),
        Some(declined),
        "a declined payment has nothing to refund"
    );
}

/// The [`SagaLog`] contract.
pub async fn saga_log_contract<S, F, Fut>(fresh: F)
where
    S: SagaLog,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let s = fresh().await;
    let id = order("u", 0).order_id;
    let rec = |action, ok, attempts, secs| StepRecord {
        action,
        succeeded: ok,
        attempts,
        detail: (!ok).then(|| "declined".to_owned()),
        at: t0().plus_secs(secs),
    };
    assert!(s.steps(id).await.expect("steps").is_empty());
    s.record_step(id, rec(Action::ReserveInventory, true, 1, 1))
        .await
        .expect("rec");
    s.record_step(id, rec(Action::ProcessPayment, false, 1, 2))
        .await
        .expect("rec");
    s.record_step(id, rec(Action::ProcessPayment, false, 3, 3))
        .await
        .expect("rec");
    s.record_step(id, rec(Action::ReleaseInventory, true, 1, 4))
        .await
        .expect("rec");
    let steps = s.steps(id).await.expect("steps");
    let got: Vec<(Action, bool, u32)> = steps
        .iter()
        .map(|r| (r.action, r.succeeded, r.attempts))
        .collect();
    assert_eq!(
        got,
        [
            (Action::ReserveInventory, true, 1),
            (Action::ProcessPayment, false, 3),
            (Action::ReleaseInventory, true, 1)
        ],
        "one record per action, the latest"
    );
    assert_eq!(steps[1].detail.as_deref(), Some("declined"));
}

/// The [`EventOutbox`] contract: every recorded event once, in order.
pub async fn outbox_contract<S, F, Fut>(fresh: F)
where
    S: EventOutbox + OrderStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let s = fresh().await;
    let a = order("u", 0);
    let b = order("u", 1);
    s.create(new_order(&a)).await.expect("create");
    s.create(new_order(&b)).await.expect("create");
    assert!(
        s.append_event(event(&a, EventType::OrderPlaced))
            .await
            .expect("append")
    );
    assert!(
        !s.append_event(event(&a, EventType::OrderPlaced))
            .await
            .expect("append"),
        "the same event id is kept once"
    );
    let batch = s.unpublished(2, NO_WAIT).await.expect("unpublished");
    let ids: Vec<_> = batch
        .iter()
        .map(|(_, e)| (e.order_id, e.detail_type))
        .collect();
    assert_eq!(
        ids,
        [
            (a.order_id, EventType::OrderCreated),
            (b.order_id, EventType::OrderCreated)
        ]
    );
    s.mark_published(batch[1].0).await.expect("mark");
    let rest = s.unpublished(10, NO_WAIT).await.expect("unpublished");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].1.detail_type, EventType::OrderPlaced);
    s.mark_published(batch[0].0).await.expect("mark older");
    assert_eq!(
        s.unpublished(10, NO_WAIT).await.expect("unpublished").len(),
        1,
        "marking an older position never goes back"
    );
    s.mark_published(rest[0].0).await.expect("mark");
    assert!(
        s.unpublished(10, NO_WAIT)
            .await
            .expect("unpublished")
            .is_empty()
    );
}

/// The [`NotificationLog`] contract.
pub async fn notification_log_contract<S, F, Fut>(fresh: F)
where
    S: NotificationLog,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let s = fresh().await;
    let o = order("u", 0);
    let n = Notification {
        event_id: DomainEvent::id_for(o.order_id, EventType::OrderPlaced),
        order_id: o.order_id,
        to: "ada@example.com".parse().expect("email"),
        subject: "Order confirmed".into(),
        body: "Thanks".into(),
    };
    assert!(!s.was_sent(n.event_id).await.expect("sent?"));
    s.record_sent(&n, "smtp", t0()).await.expect("record");
    s.record_sent(&n, "smtp", t0()).await.expect("record twice");
    assert!(s.was_sent(n.event_id).await.expect("sent?"));
    assert_eq!(
        s.sent_for(o.order_id).await.expect("sent_for"),
        [(
            "Order confirmed".to_owned(),
            "ada@example.com".to_owned(),
            "smtp".to_owned()
        )]
    );
}
