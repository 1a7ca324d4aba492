//! The contract of the `Webhooks` port: endpoints read back exactly as stored (secret
//! included), oldest first; disabling is idempotent; a delivery is scheduled (and its first
//! message enqueued) once per id; attempts are recorded once per number and listed per
//! delivery oldest first and per endpoint newest first; deleting an endpoint removes its
//! deliveries and log and nothing else.

use std::future::Future;
use std::time::Duration;

use orderly_core::EventType;
use orderly_core::ports::Queue;
use orderly_core::webhooks::{
    DeliveryAttempt, DeliveryOutcome, EventFilter, ScheduledDelivery, WebhookEndpoint, Webhooks,
    delivery_id,
};
use uuid::Uuid;

use crate::t0;

/// An endpoint created at `t0 + offset_secs`.
pub fn endpoint(url: &str, events: EventFilter, offset_secs: i64) -> WebhookEndpoint {
    let at = t0().plus_secs(offset_secs);
    WebhookEndpoint {
        id: Uuid::new_v4(),
        url: url.to_owned(),
        events,
        secret: format!("whsec_secret-of-{url}"),
        active: true,
        description: (offset_secs % 2 == 0).then(|| format!("endpoint at {url}")),
        created_at: at,
        updated_at: at,
    }
}

fn attempt(
    ep: &WebhookEndpoint,
    event_id: Uuid,
    n: u32,
    outcome: DeliveryOutcome,
    offset_secs: i64,
) -> DeliveryAttempt {
    let failed = outcome != DeliveryOutcome::Delivered;
    DeliveryAttempt {
        delivery_id: delivery_id(ep.id, event_id),
        endpoint_id: ep.id,
        event_id,
        event_type: EventType::OrderPlaced,
        attempt: n,
        at: t0().plus_secs(offset_secs),
        outcome,
        status_code: if failed && n == 1 {
            None
        } else {
            Some(if failed { 503 } else { 204 })
        },
        error: failed.then(|| format!("attempt {n} failed")),
        duration_ms: 10 + u64::from(n),
    }
}

const QUEUE: &str = "webhook-deliveries";

async fn received<S: Queue>(s: &S) -> Vec<String> {
    s.receive(QUEUE, 10, Duration::from_secs(30), Duration::ZERO)
        .await
        .expect("receive")
        .into_iter()
        .map(|m| m.body)
        .collect()
}

/// The `Webhooks` contract (the store is also the queue deliveries are scheduled on).
pub async fn webhooks_contract<S, F, Fut>(fresh: F)
where
    S: Webhooks + Queue,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let s = fresh().await;
    assert!(s.list_endpoints().await.expect("list").is_empty());
    assert_eq!(s.endpoint(Uuid::new_v4()).await.expect("get"), None);

    // Endpoints read back exactly, oldest first.
    let all = endpoint("https://a.example.com/hook", EventFilter::All, 0);
    let some = endpoint(
        "http://127.0.0.1:9/in?x=1",
        EventFilter::Only(vec![
            EventType::OrderPlaced,
            EventType::FulfillmentCompleted,
        ]),
        1,
    );
    s.insert_endpoint(&all).await.expect("insert");
    s.insert_endpoint(&some).await.expect("insert");
    assert_eq!(
        s.endpoint(some.id).await.expect("get").as_ref(),
        Some(&some)
    );
    assert_eq!(
        s.list_endpoints().await.expect("list"),
        vec![all.clone(), some.clone()],
        "oldest first, secrets and filters included"
    );
    let mut clash = endpoint("https://evil.example.com/", EventFilter::All, 2);
    clash.id = all.id;
    assert!(
        s.insert_endpoint(&clash).await.is_err(),
        "an existing id is never overwritten"
    );
    assert_eq!(s.endpoint(all.id).await.expect("get").as_ref(), Some(&all));

    // Disabling and enabling.
    let later = t0().plus_secs(60);
    let off = s
        .set_endpoint_active(some.id, false, later)
        .await
        .expect("disable")
        .expect("exists");
    assert!(!off.active);
    assert_eq!(off.updated_at, later);
    let again = s
        .set_endpoint_active(some.id, false, later.plus_secs(5))
        .await
        .expect("disable again")
        .expect("exists");
    assert_eq!(again.updated_at, later, "no change, no new updated_at");
    assert_eq!(s.endpoint(some.id).await.expect("get").as_ref(), Some(&off));
    assert_eq!(
        s.set_endpoint_active(Uuid::new_v4(), false, later)
            .await
            .expect("unknown"),
        None
    );
    let on = s
        .set_endpoint_active(some.id, true, later.plus_secs(10))
        .await
        .expect("enable")
        .expect("exists");
    assert!(on.active);
    assert_eq!(on.created_at, some.created_at);

    // Scheduling: once per delivery id, with its message.
    let (e1, e2) = (Uuid::new_v4(), Uuid::new_v4());
    let sched = |ep: &WebhookEndpoint, ev: Uuid| ScheduledDelivery {
        delivery_id: delivery_id(ep.id, ev),
        endpoint_id: ep.id,
        event_id: ev,
        at: t0(),
    };
    assert!(
        s.schedule_delivery(&sched(&all, e1), QUEUE, "first")
            .await
            .expect("schedule")
    );
    assert!(
        !s.schedule_delivery(&sched(&all, e1), QUEUE, "duplicate")
            .await
            .expect("schedule again"),
        "a delivery id is scheduled once"
    );
    assert!(
        s.schedule_delivery(&sched(&some, e1), QUEUE, "second")
            .await
            .expect("schedule")
    );
    let mut bodies = received(&s).await;
    bodies.sort();
    assert_eq!(bodies, ["first", "second"], "one message per new delivery");

    // The log.
    let a1 = attempt(&all, e1, 1, DeliveryOutcome::Failed, 1);
    let a2 = attempt(&all, e1, 2, DeliveryOutcome::Failed, 2);
    let b1 = attempt(&some, e1, 1, DeliveryOutcome::Delivered, 3);
    let a3 = attempt(&all, e1, 3, DeliveryOutcome::Dead, 4);
    let c1 = attempt(&all, e2, 1, DeliveryOutcome::Delivered, 5);
    for a in [&a1, &a2, &b1, &a3, &c1] {
        assert!(s.record_attempt(a).await.expect("record"));
    }
    let mut dup = a1.clone();
    dup.outcome = DeliveryOutcome::Delivered;
    assert!(
        !s.record_attempt(&dup).await.expect("record again"),
        "an attempt number is recorded once"
    );
    assert_eq!(
        s.delivery_attempts(a1.delivery_id).await.expect("attempts"),
        vec![a1.clone(), a2.clone(), a3.clone()],
        "one delivery's attempts, oldest first, exactly as recorded"
    );
    assert!(
        s.delivery_attempts(Uuid::new_v4())
            .await
            .expect("none")
            .is_empty()
    );
    assert_eq!(
        s.endpoint_attempts(all.id, 100).await.expect("log"),
        vec![c1.clone(), a3.clone(), a2.clone(), a1.clone()],
        "an endpoint's attempts, newest first"
    );
    assert_eq!(
        s.endpoint_attempts(all.id, 2).await.expect("log"),
        vec![c1.clone(), a3.clone()]
    );
    assert_eq!(
        s.endpoint_attempts(some.id, 100).await.expect("log"),
        vec![b1.clone()]
    );

    // Deleting takes the endpoint's deliveries and log with it, and nothing else.
    assert!(s.delete_endpoint(all.id).await.expect("delete"));
    assert!(!s.delete_endpoint(all.id).await.expect("delete again"));
    assert_eq!(s.endpoint(all.id).await.expect("get"), None);
    assert!(
        s.endpoint_attempts(all.id, 100)
            .await
            .expect("log")
            .is_empty()
    );
    assert!(
        s.delivery_attempts(a1.delivery_id)
            .await
            .expect("attempts")
            .is_empty()
    );
    assert_eq!(
        s.list_endpoints().await.expect("list"),
        vec![on.clone()],
        "the other endpoint stays"
    );
    assert_eq!(
        s.endpoint_attempts(some.id, 100).await.expect("log"),
        vec![b1]
    );
    assert!(
        !s.schedule_delivery(&sched(&some, e1), QUEUE, "dup")
            .await
            .expect("schedule"),
        "the other endpoint's deliveries stay"
    );
    assert!(
        received(&s).await.is_empty(),
        "nothing enqueued for a duplicate"
    );
}
