//! Contract suites of the order-processing ports.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use orderly_core::ports::{
    Clock, EventOutbox, Inventory, MAX_RECEIVES, ManualClock, Message, NackOutcome, Notification,
    NotificationLog, OrderStore, PaymentLedger, PaymentState, Queue, ReleaseOutcome, Reservations,
    ReserveOutcome, SagaLog, StepRecord, SystemClock, Transition, TransitionOutcome,
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

    // Sending and acking several at once: in order, queues kept apart, stale receipts
    // ignored.
    let c = clock();
    let q = fresh(c.clone()).await;
    q.send_many(&[]).await.expect("nothing to send");
    q.send_many(&[("m", "1".into()), ("n", "x".into()), ("m", "2".into())])
        .await
        .expect("send_many");
    let got = q.receive("m", 10, VIS, NO_WAIT).await.expect("receive");
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["1", "2"], "in the order sent");
    let n = q.receive("n", 10, VIS, NO_WAIT).await.expect("receive");
    assert_eq!(n.len(), 1);
    let ids: Vec<String> = got.iter().map(|m| m.id.clone()).collect();
    q.ack_many("m", &[]).await.expect("nothing to ack");
    // A receipt of another queue acks nothing here.
    q.ack_many("m", &[n[0].id.clone()]).await.expect("ack_many");
    q.ack_many("m", &ids).await.expect("ack_many");
    let d = q.depth("m").await.expect("depth");
    assert_eq!((d.waiting, d.in_flight), (0, 0), "both acked");
    let d = q.depth("n").await.expect("depth");
    assert_eq!(d.in_flight, 1, "the other queue's message is still there");
    c.advance_secs(31);
    assert!(
        q.receive("m", 10, VIS, NO_WAIT)
            .await
            .expect("receive")
            .is_empty(),
        "acked messages never come back"
    );

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

/// The queues [`queue_contract_realtime`] uses. Adapters that need their queues created
/// up front (SQS) create these.
pub const REALTIME_QUEUES: &[&str] = &["q", "other"];

/// What [`queue_contract_realtime_with`] tolerates of a backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RealtimeOptions {
    /// An ack with a stale receipt (one from before the message was redelivered) may delete
    /// the newer delivery. The local adapters and real SQS never do (SQS honours only the
    /// latest receipt handle); the moto emulator does: it accepts every receipt handle a
    /// message ever had. Everything else stays strict.
    pub stale_ack_may_delete: bool,
}

const RT_VIS: Duration = Duration::from_secs(2);
const RT_SHORT: Duration = Duration::from_secs(1);
/// How long to long-poll for a message that is expected to show up.
const RT_POLL: Duration = Duration::from_secs(5);
/// Slack after a visibility timeout before expecting the message back.
const RT_MARGIN: Duration = Duration::from_millis(400);
/// Clock tolerance when checking that something did not happen too early.
const RT_EARLY: Duration = Duration::from_millis(200);

/// Sleeps in real time without depending on an async runtime (the timer is a thread).
async fn sleep(d: Duration) {
    let state: Arc<Mutex<(bool, Option<Waker>)>> = Arc::new(Mutex::new((false, None)));
    let fire = state.clone();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let mut s = fire.lock().unwrap_or_else(|p| p.into_inner());
        s.0 = true;
        if let Some(w) = s.1.take() {
            w.wake();
        }
    });
    std::future::poll_fn(|cx| {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0 {
            Poll::Ready(())
        } else {
            s.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await
}

/// Runs two futures concurrently on the current task.
async fn join2<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (Box::pin(a), Box::pin(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (ra.expect("first done"), rb.expect("second done"))
}

/// Runs futures concurrently on the current task until all are done.
async fn join_all(mut futs: Vec<Pin<Box<dyn Future<Output = ()> + '_>>>) {
    let mut done = vec![false; futs.len()];
    std::future::poll_fn(|cx| {
        for (f, d) in futs.iter_mut().zip(done.iter_mut()) {
            if !*d && f.as_mut().poll(cx).is_ready() {
                *d = true;
            }
        }
        if done.iter().all(|d| *d) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

fn bodies(ms: &[Message]) -> BTreeSet<&str> {
    ms.iter().map(|m| m.body.as_str()).collect()
}

/// Receives from `queue` until `n` messages came or `within` passed: a backend may answer
/// a batch in parts (SQS does).
async fn receive_n<S: Queue>(
    q: &S,
    queue: &str,
    n: usize,
    visibility: Duration,
    within: Duration,
) -> Vec<Message> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let batch = q
            .receive(queue, n - got.len(), visibility, left)
            .await
            .expect("receive");
        assert!(batch.len() <= n, "at most max messages");
        got.extend(batch);
    }
    got
}

async fn nothing_visible<S: Queue>(q: &S, queue: &str) -> bool {
    q.receive(queue, 10, RT_VIS, NO_WAIT)
        .await
        .expect("receive")
        .is_empty()
}

async fn depth_of<S: Queue>(q: &S, queue: &str) -> (u64, u64) {
    let d = q.depth(queue).await.expect("depth");
    (d.waiting, d.in_flight)
}

/// The [`Queue`] contract on the real clock, for adapters whose time cannot be driven
/// by hand (SQS: visibility timeouts and delays are real, whole seconds), run on the local
/// adapters too. `fresh` yields an empty adapter on the system clock; the suite uses the
/// queues [`REALTIME_QUEUES`]. Its scenarios run concurrently, each on its own adapter,
/// with visibility timeouts of 1-2 s and real sleeps: about 6-8 s in all.
///
/// SQS is not FIFO, may answer fewer messages than it holds, and has no browsing: the
/// suite compares sets, not order, and does not check `oldest_age_ms`.
pub async fn queue_contract_realtime<S, F, Fut>(fresh: F)
where
    S: Queue,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    queue_contract_realtime_with(RealtimeOptions::default(), fresh).await
}

/// [`queue_contract_realtime`] with the given tolerances.
pub async fn queue_contract_realtime_with<S, F, Fut>(opts: RealtimeOptions, fresh: F)
where
    S: Queue,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let fresh = &fresh;
    join_all(vec![
        Box::pin(async move { rt_batches_and_redelivery(fresh().await, opts).await }),
        Box::pin(async move { rt_nack_dead_letter_replay(fresh().await).await }),
        Box::pin(async move { rt_last_delivery_times_out(fresh().await).await }),
        Box::pin(async move { rt_delay_and_extend(fresh().await).await }),
        Box::pin(async move { rt_long_poll(fresh().await).await }),
        Box::pin(async move { rt_queues_apart_and_purge(fresh().await).await }),
    ])
    .await
}

/// Batches, hiding, ack, redelivery after the visibility timeout, stale receipts, depth.
async fn rt_batches_and_redelivery<S: Queue>(q: S, opts: RealtimeOptions) {
    let before = SystemClock.now().plus_secs(-60);
    for b in ["a", "b", "c"] {
        q.send("q", b, Duration::ZERO).await.expect("send");
    }
    q.send("other", "x", Duration::ZERO).await.expect("send");
    let first = q.receive("q", 2, RT_VIS, RT_POLL).await.expect("receive");
    assert!(
        (1..=2).contains(&first.len()),
        "a batch holds at most max messages, got {}",
        first.len()
    );
    let mut all = first.clone();
    all.extend(receive_n(&q, "q", 3 - first.len(), RT_VIS, RT_POLL).await);
    assert_eq!(all.len(), 3, "every message once: {all:?}");
    assert_eq!(bodies(&all), BTreeSet::from(["a", "b", "c"]));
    let after = SystemClock.now().plus_secs(60);
    for m in &all {
        assert_eq!(m.receive_count, 1, "first delivery");
        assert!(
            before <= m.enqueued_at && m.enqueued_at <= after,
            "enqueued_at is the send time"
        );
    }
    assert!(
        nothing_visible(&q, "q").await,
        "received messages are hidden"
    );
    assert_eq!(depth_of(&q, "q").await, (0, 3), "depth: all in flight");
    assert_eq!(depth_of(&q, "other").await, (1, 0), "depth: queues apart");

    let (acked, rest) = all.split_first().expect("three messages");
    q.ack("q", &acked.id).await.expect("ack");
    assert_eq!(depth_of(&q, "q").await, (0, 2), "ack removes");
    sleep(RT_VIS + RT_MARGIN).await;
    let again = receive_n(&q, "q", 2, RT_VIS, RT_POLL).await;
    assert_eq!(
        bodies(&again),
        bodies(rest),
        "unacked messages come back after the visibility timeout, acked ones do not"
    );
    assert!(again.iter().all(|m| m.receive_count == 2), "{again:?}");

    // Receipts from the first delivery are stale now.
    let (stale, kept) = (&rest[0], &rest[1]);
    q.ack("q", &stale.id)
        .await
        .expect("a stale ack is not an error");
    q.ack("q", &acked.id)
        .await
        .expect("acking twice is not an error");
    sleep(RT_VIS + RT_MARGIN).await;
    let within = if opts.stale_ack_may_delete {
        RT_SHORT
    } else {
        RT_POLL
    };
    let third = receive_n(&q, "q", 2, RT_VIS, within).await;
    let third_bodies = bodies(&third);
    assert!(
        third_bodies.contains(kept.body.as_str()),
        "redelivered again: {third:?}"
    );
    if opts.stale_ack_may_delete {
        assert!(third_bodies.is_subset(&bodies(rest)), "{third:?}");
    } else {
        assert_eq!(
            third_bodies,
            bodies(rest),
            "a stale receipt does not ack the newer delivery"
        );
    }
    assert!(third.iter().all(|m| m.receive_count == 3), "{third:?}");
    for m in &third {
        q.ack("q", &m.id).await.expect("ack");
    }
    assert!(nothing_visible(&q, "q").await);
    assert_eq!(depth_of(&q, "q").await, (0, 0));

    let other = q
        .receive("other", 10, RT_VIS, RT_POLL)
        .await
        .expect("receive");
    assert_eq!(
        bodies(&other),
        BTreeSet::from(["x"]),
        "queues are kept apart"
    );
    assert_eq!(other[0].receive_count, 1);
    q.ack("other", &other[0].id).await.expect("ack");
    assert_eq!(depth_of(&q, "other").await, (0, 0));
}

/// Nack with a retry delay, dead-lettering after MAX_RECEIVES nacks, replay by id.
async fn rt_nack_dead_letter_replay<S: Queue>(q: S) {
    q.send("q", "poison", Duration::ZERO).await.expect("send");
    let mut nacked_at: Option<Instant> = None;
    for n in 1..=MAX_RECEIVES {
        let m = q.receive("q", 1, RT_VIS, RT_POLL).await.expect("receive");
        assert_eq!(m.len(), 1, "delivery {n}");
        if let Some(t) = nacked_at {
            assert!(
                t.elapsed() + RT_EARLY >= RT_SHORT,
                "a nacked message returns only after its retry delay ({:?})",
                t.elapsed()
            );
        }
        assert_eq!(m[0].body, "poison");
        assert_eq!(m[0].receive_count, n);
        let out = q
            .nack("q", &m[0].id, &format!("boom {n}"), RT_SHORT)
            .await
            .expect("nack");
        if n < MAX_RECEIVES {
            nacked_at = Some(Instant::now());
            assert_eq!(out, NackOutcome::WillRetry);
            assert!(nothing_visible(&q, "q").await, "a nack delay hides");
        } else {
            assert_eq!(out, NackOutcome::DeadLettered);
        }
    }
    assert!(
        nothing_visible(&q, "q").await,
        "dead letters are not delivered"
    );
    assert_eq!(depth_of(&q, "q").await, (0, 0));
    let dead = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!(
        (d.queue.as_str(), d.body.as_str(), d.receive_count),
        ("q", "poison", MAX_RECEIVES)
    );
    assert_eq!(
        d.last_error.as_deref(),
        Some("boom 3"),
        "the last error is kept"
    );
    assert!(d.enqueued_at <= d.dead_at);
    assert_eq!(q.dead_letter_count().await.expect("count"), 1);
    assert!(
        q.replay(Some(vec!["no-such-id".into()]))
            .await
            .expect("replay")
            .is_empty(),
        "unknown ids are ignored"
    );
    assert_eq!(q.dead_letter_count().await.expect("count"), 1);
    let moved = q.replay(Some(vec![d.id.clone()])).await.expect("replay");
    assert_eq!(moved, std::slice::from_ref(&d.id));
    assert_eq!(q.dead_letter_count().await.expect("count"), 0);
    assert!(q.dead_letters(10).await.expect("dead letters").is_empty());
    let m = q.receive("q", 1, RT_VIS, RT_POLL).await.expect("receive");
    assert_eq!(m.len(), 1, "a replayed message is delivered again");
    assert_eq!(m[0].body, "poison");
    assert_eq!(m[0].receive_count, 1, "a replayed message starts afresh");
    q.ack("q", &m[0].id).await.expect("ack");
}

/// A last delivery that times out ends in the dead-letter queue and is never delivered a
/// fourth time; replay of all dead letters.
async fn rt_last_delivery_times_out<S: Queue>(q: S) {
    q.send("q", "slow", Duration::ZERO).await.expect("send");
    for n in 1..=MAX_RECEIVES {
        let m = q.receive("q", 1, RT_SHORT, RT_POLL).await.expect("receive");
        assert_eq!(m.len(), 1, "delivery {n} after the visibility timeout");
        assert_eq!(m[0].receive_count, n);
    }
    sleep(RT_SHORT + RT_MARGIN).await;
    assert!(
        nothing_visible(&q, "q").await,
        "a last delivery that timed out is never delivered a fourth time"
    );
    assert_eq!(q.dead_letter_count().await.expect("count"), 1);

    q.send("q", "second", Duration::ZERO).await.expect("send");
    for n in 1..=MAX_RECEIVES {
        let m = q.receive("q", 1, RT_VIS, RT_POLL).await.expect("receive");
        assert_eq!(m.len(), 1, "delivery {n}");
        assert_eq!(m[0].body, "second");
        let out = q
            .nack("q", &m[0].id, "no", Duration::ZERO)
            .await
            .expect("nack");
        let expected = if n < MAX_RECEIVES {
            NackOutcome::WillRetry
        } else {
            NackOutcome::DeadLettered
        };
        assert_eq!(out, expected, "nack {n}");
    }
    assert_eq!(q.dead_letter_count().await.expect("count"), 2);
    let dead = q.dead_letters(10).await.expect("dead letters");
    let order: Vec<&str> = dead.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(order, ["slow", "second"], "oldest first");
    assert!(dead[0].dead_at <= dead[1].dead_at);
    for d in &dead {
        assert_eq!((d.queue.as_str(), d.receive_count), ("q", MAX_RECEIVES));
    }
    assert_eq!(dead[1].last_error.as_deref(), Some("no"));
    let first = q.dead_letters(1).await.expect("dead letters");
    assert_eq!(first.len(), 1, "at most limit");
    assert_eq!(first[0].id, dead[0].id, "ids are stable across listings");

    let moved: BTreeSet<String> = q
        .replay(None)
        .await
        .expect("replay all")
        .into_iter()
        .collect();
    let ids: BTreeSet<String> = dead.iter().map(|d| d.id.clone()).collect();
    assert_eq!(moved, ids, "replay all moves every dead letter");
    assert_eq!(q.dead_letter_count().await.expect("count"), 0);
    assert_eq!(depth_of(&q, "q").await, (2, 0));
    let back = receive_n(&q, "q", 2, RT_VIS, RT_POLL).await;
    assert_eq!(bodies(&back), BTreeSet::from(["slow", "second"]));
    assert!(back.iter().all(|m| m.receive_count == 1), "{back:?}");
}

/// A delayed send is not visible before its delay; `extend` keeps a message hidden.
async fn rt_delay_and_extend<S: Queue>(q: S) {
    let delay = Duration::from_secs(2);
    let sent = Instant::now();
    q.send("q", "later", delay).await.expect("send");
    assert!(
        nothing_visible(&q, "q").await,
        "a delayed message is not visible before its delay"
    );
    assert_eq!(
        depth_of(&q, "q").await,
        (1, 0),
        "a delayed message is waiting"
    );
    let m = q.receive("q", 1, RT_SHORT, RT_POLL).await.expect("receive");
    assert_eq!(m.len(), 1, "a delayed message turns visible");
    assert!(
        sent.elapsed() + RT_EARLY >= delay,
        "not before its delay ({:?})",
        sent.elapsed()
    );
    assert_eq!(m[0].receive_count, 1);
    let extension = Duration::from_secs(3);
    q.extend("q", &m[0].id, extension).await.expect("extend");
    let extended = Instant::now();
    sleep(RT_SHORT + RT_MARGIN).await;
    assert!(
        nothing_visible(&q, "q").await,
        "an extended message stays hidden past its first visibility timeout"
    );
    assert_eq!(depth_of(&q, "q").await, (0, 1), "in flight");
    let m = q.receive("q", 1, RT_VIS, RT_POLL).await.expect("receive");
    assert_eq!(m.len(), 1, "back after the extension");
    assert!(
        extended.elapsed() + RT_EARLY >= extension,
        "not before the extension ends ({:?})",
        extended.elapsed()
    );
    assert_eq!(m[0].receive_count, 2);
    q.ack("q", &m[0].id).await.expect("ack");
    assert_eq!(depth_of(&q, "q").await, (0, 0));
}

/// A long poll returns a message sent during the wait promptly.
async fn rt_long_poll<S: Queue>(q: S) {
    assert!(
        q.receive("q", 10, RT_VIS, RT_SHORT)
            .await
            .expect("an empty long poll")
            .is_empty()
    );
    let wait = Duration::from_secs(8);
    let start = Instant::now();
    let (got, ()) = join2(q.receive("q", 10, RT_VIS, wait), async {
        sleep(RT_SHORT).await;
        q.send("q", "wake", Duration::ZERO).await.expect("send");
    })
    .await;
    let got = got.expect("receive");
    let took = start.elapsed();
    assert_eq!(bodies(&got), BTreeSet::from(["wake"]));
    assert!(
        took < Duration::from_secs(5),
        "a long poll answers a message sent during the wait promptly (took {took:?} of {wait:?})"
    );
    q.ack("q", &got[0].id).await.expect("ack");
}

/// Dead letters keep their queue; replay returns a message to its own queue; purge.
async fn rt_queues_apart_and_purge<S: Queue>(q: S) {
    q.send("q", "old", Duration::ZERO).await.expect("send");
    q.send("other", "o1", Duration::ZERO).await.expect("send");
    for queue in ["q", "other"] {
        for n in 1..=MAX_RECEIVES {
            let m = q.receive(queue, 1, RT_VIS, RT_POLL).await.expect("receive");
            assert_eq!(m.len(), 1, "{queue}: delivery {n}");
            q.nack(queue, &m[0].id, "bad", Duration::ZERO)
                .await
                .expect("nack");
        }
    }
    assert_eq!(q.dead_letter_count().await.expect("count"), 2);
    let dead = q.dead_letters(10).await.expect("dead letters");
    let by_body: Vec<(&str, &str)> = dead
        .iter()
        .map(|d| (d.body.as_str(), d.queue.as_str()))
        .collect();
    assert_eq!(
        by_body,
        [("old", "q"), ("o1", "other")],
        "dead letters keep their queue"
    );
    let (old, o1) = (&dead[0], &dead[1]);
    assert_eq!(
        q.replay(Some(vec![o1.id.clone()])).await.expect("replay"),
        std::slice::from_ref(&o1.id)
    );
    assert!(
        nothing_visible(&q, "q").await,
        "replay moves only the chosen ids"
    );
    let m = q
        .receive("other", 10, RT_VIS, RT_POLL)
        .await
        .expect("receive");
    assert_eq!(bodies(&m), BTreeSet::from(["o1"]), "back to its own queue");
    q.ack("other", &m[0].id).await.expect("ack");
    assert_eq!(
        q.purge_dead_letters(old.dead_at).await.expect("purge"),
        0,
        "purge keeps dead letters that died at or after `before`"
    );
    assert_eq!(q.dead_letter_count().await.expect("count"), 1);
    assert_eq!(
        q.purge_dead_letters(SystemClock.now().plus_secs(1))
            .await
            .expect("purge"),
        1
    );
    assert_eq!(q.dead_letter_count().await.expect("count"), 0);
    assert!(q.dead_letters(10).await.expect("dead letters").is_empty());
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
        s.reserve(&a, reserved(&a), None).await.expect("r"),
        ReserveOutcome::Reserved
    );
    assert_eq!((stock(&s, "P1").await, stock(&s, "P2").await), (3, 0));
    assert_eq!(
        s.reserve(&a, reserved(&a), None).await.expect("r"),
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
        s.reserve(&b, reserved(&b), None).await.expect("r"),
        ReserveOutcome::Insufficient {
            product_id: "P2".parse().expect("id"),
            requested: 1,
            available: 0
        }
    );
    assert_eq!(stock(&s, "P1").await, 3, "all or nothing");

    assert_eq!(
        s.release(a.order_id, released(&a), None)
            .await
            .expect("rel"),
        ReleaseOutcome::Released
    );
    assert_eq!((stock(&s, "P1").await, stock(&s, "P2").await), (5, 1));
    assert_eq!(
        s.release(a.order_id, released(&a), None)
            .await
            .expect("rel"),
        ReleaseOutcome::AlreadyReleased
    );
    assert_eq!(
        (stock(&s, "P1").await, stock(&s, "P2").await),
        (5, 1),
        "no double release"
    );
    assert_eq!(
        s.reserve(&a, reserved(&a), None).await.expect("r"),
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
        s.release(c.order_id, released(&c), None)
            .await
            .expect("rel"),
        ReleaseOutcome::NothingReserved
    );
    assert_eq!(
        s.reserve(&c, reserved(&c), None).await.expect("r"),
        ReserveOutcome::Released
    );
    assert_eq!(stock(&s, "P1").await, 5);

    let mut d = order("u", 3);
    d.items = vec![line("P9", 1)];
    assert_eq!(
        s.reserve(&d, reserved(&d), None).await.expect("r"),
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
        step: None,
    };
    assert!(matches!(
        s.transition(t).await.expect("t"),
        TransitionOutcome::Applied(_)
    ));
    assert_eq!(
        s.reserve(&e, reserved(&e), None).await.expect("r"),
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
        .record_charge(
            id,
            charged.clone(),
            event(&o, EventType::PaymentCompleted),
            None,
        )
        .await
        .expect("charge");
    assert_eq!(got, charged);
    let declined = PaymentState::Declined {
        reason: "no".into(),
    };
    let got = s
        .record_charge(id, declined, event(&o, EventType::PaymentFailed), None)
        .await
        .expect("charge");
    assert_eq!(got, charged, "the first recorded outcome wins");
    let refunded = s
        .record_refund(
            id,
            "re_1".into(),
            event(&o, EventType::PaymentRefunded),
            None,
        )
        .await
        .expect("refund");
    let expected = PaymentState::Refunded {
        payment_id: "pay_1".into(),
        refund_id: "re_1".into(),
        amount: Money::from_minor(5998).expect("m"),
    };
    assert_eq!(refunded, Some(expected.clone()));
    let again = s
        .record_refund(
            id,
            "re_2".into(),
            event(&o, EventType::PaymentRefunded),
            None,
        )
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
        None,
    )
    .await
    .expect("charge");
    assert_eq!(
        s.record_refund(
            o2.order_id,
            "re".into(),
            event(&o2, EventType::PaymentRefunded),
            None
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

/// The contract of saga steps recorded with their effects: each effect port commits the
/// step's record given to it exactly when its outcome is the step's success (see
/// [`StepRecord`]), and never when it is not.
pub async fn steps_with_effects_contract<S, F, Fut>(fresh: F)
where
    S: SagaLog + Reservations + PaymentLedger + Inventory + OrderStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let s = fresh().await;
    s.put_product(spec("P1", 100, 5), t0()).await.expect("put");
    let rec = |action, attempts| StepRecord {
        action,
        succeeded: true,
        attempts,
        detail: None,
        at: t0().plus_secs(i64::from(attempts)),
    };
    let has = |steps: &[StepRecord], a: Action, attempts: u32| {
        steps
            .iter()
            .any(|r| r.action == a && r.succeeded && r.attempts == attempts)
    };
    let mut o = order("u", 0);
    o.items = vec![OrderItem {
        product_id: "P1".parse().expect("id"),
        qty: Qty::new(2).expect("qty"),
        unit_price: Money::from_minor(100).expect("money"),
    }];
    s.create(new_order(&o)).await.expect("create");
    let id = o.order_id;

    // Reserve: committed with a reservation, and with a repeated one.
    let out = s
        .reserve(
            &o,
            event(&o, EventType::InventoryReserved),
            Some(rec(Action::ReserveInventory, 1)),
        )
        .await
        .expect("reserve");
    assert_eq!(out, ReserveOutcome::Reserved);
    assert!(has(
        &s.steps(id).await.expect("steps"),
        Action::ReserveInventory,
        1
    ));
    s.reserve(
        &o,
        event(&o, EventType::InventoryReserved),
        Some(rec(Action::ReserveInventory, 2)),
    )
    .await
    .expect("reserve");
    assert!(
        has(
            &s.steps(id).await.expect("steps"),
            Action::ReserveInventory,
            2
        ),
        "AlreadyReserved is a success too"
    );
    // Not committed when the reservation is refused.
    let mut big = order("u", 1);
    big.items = vec![OrderItem {
        product_id: "P1".parse().expect("id"),
        qty: Qty::new(50).expect("qty"),
        unit_price: Money::from_minor(100).expect("money"),
    }];
    s.create(new_order(&big)).await.expect("create");
    let out = s
        .reserve(
            &big,
            event(&big, EventType::InventoryReserved),
            Some(rec(Action::ReserveInventory, 1)),
        )
        .await
        .expect("reserve");
    assert!(matches!(out, ReserveOutcome::Insufficient { .. }));
    assert!(s.steps(big.order_id).await.expect("steps").is_empty());

    // A charge: committed when the ledger ends Charged, not when it ends Declined.
    let charged = PaymentState::Charged {
        payment_id: "pay_1".into(),
        amount: Money::from_minor(200).expect("m"),
    };
    s.record_charge(
        id,
        charged,
        event(&o, EventType::PaymentCompleted),
        Some(rec(Action::ProcessPayment, 1)),
    )
    .await
    .expect("charge");
    assert!(has(
        &s.steps(id).await.expect("steps"),
        Action::ProcessPayment,
        1
    ));
    let declined = PaymentState::Declined {
        reason: "no".into(),
    };
    s.record_charge(
        big.order_id,
        declined,
        event(&big, EventType::PaymentFailed),
        Some(rec(Action::ProcessPayment, 1)),
    )
    .await
    .expect("charge");
    assert!(
        s.steps(big.order_id).await.expect("steps").is_empty(),
        "a decline is no success"
    );

    // A transition: committed when the order ends in `to`.
    let confirm = |attempts| {
        let mut t = Transition {
            order_id: id,
            from: OrderStatus::Pending,
            to: OrderStatus::Confirmed,
            at: t0(),
            event: event(&o, EventType::OrderConfirmed),
            failure_reason: None,
            tracking_id: None,
            enqueue_processing: false,
            step: None,
        };
        t.step = Some(rec(Action::ConfirmOrder, attempts));
        t
    };
    assert!(matches!(
        s.transition(confirm(1)).await.expect("t"),
        TransitionOutcome::Applied(_)
    ));
    assert!(has(
        &s.steps(id).await.expect("steps"),
        Action::ConfirmOrder,
        1
    ));
    assert!(matches!(
        s.transition(confirm(2)).await.expect("t"),
        TransitionOutcome::Stale(_)
    ));
    assert!(
        has(&s.steps(id).await.expect("steps"), Action::ConfirmOrder, 2),
        "already in `to` is a success too"
    );
    let mut wrong = confirm(1);
    wrong.order_id = big.order_id;
    wrong.from = OrderStatus::Confirmed;
    wrong.to = OrderStatus::Fulfilled;
    assert!(matches!(
        s.transition(wrong).await.expect("t"),
        TransitionOutcome::Stale(_)
    ));
    assert!(s.steps(big.order_id).await.expect("steps").is_empty());

    // An event: committed whether it is new or not.
    let placed = event(&o, EventType::OrderPlaced);
    assert!(
        s.append_event(placed.clone(), Some(rec(Action::EmitOrderPlaced, 1)))
            .await
            .expect("append")
    );
    assert!(
        !s.append_event(placed, Some(rec(Action::EmitOrderPlaced, 2)))
            .await
            .expect("append")
    );
    assert!(has(
        &s.steps(id).await.expect("steps"),
        Action::EmitOrderPlaced,
        2
    ));

    // Compensations: committed with the refund and the release, and when there was
    // nothing left to undo.
    s.record_refund(
        id,
        "re_1".into(),
        event(&o, EventType::PaymentRefunded),
        Some(rec(Action::RefundPayment, 1)),
    )
    .await
    .expect("refund");
    assert!(has(
        &s.steps(id).await.expect("steps"),
        Action::RefundPayment,
        1
    ));
    s.record_refund(
        id,
        "re_1".into(),
        event(&o, EventType::PaymentRefunded),
        Some(rec(Action::RefundPayment, 2)),
    )
    .await
    .expect("refund");
    assert!(has(
        &s.steps(id).await.expect("steps"),
        Action::RefundPayment,
        2
    ));
    let out = s
        .release(
            id,
            event(&o, EventType::InventoryReleased),
            Some(rec(Action::ReleaseInventory, 1)),
        )
        .await
        .expect("release");
    assert_eq!(out, ReleaseOutcome::Released);
    assert!(has(
        &s.steps(id).await.expect("steps"),
        Action::ReleaseInventory,
        1
    ));
    let out = s
        .release(
            big.order_id,
            event(&big, EventType::InventoryReleased),
            Some(rec(Action::ReleaseInventory, 1)),
        )
        .await
        .expect("release");
    assert_eq!(out, ReleaseOutcome::NothingReserved);
    assert!(has(
        &s.steps(big.order_id).await.expect("steps"),
        Action::ReleaseInventory,
        1
    ));
    assert_eq!(stock(&s, "P1").await, 5, "stock back");
    // Without a record nothing is recorded.
    let before = s.steps(id).await.expect("steps");
    s.release(id, event(&o, EventType::InventoryReleased), None)
        .await
        .expect("release");
    assert_eq!(s.steps(id).await.expect("steps"), before);
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
        s.append_event(event(&a, EventType::OrderPlaced), None)
            .await
            .expect("append")
    );
    assert!(
        !s.append_event(event(&a, EventType::OrderPlaced), None)
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
    // Several at once, one of them already recorded.
    let m = Notification {
        event_id: DomainEvent::id_for(o.order_id, EventType::FulfillmentCompleted),
        subject: "Order shipped".into(),
        ..n.clone()
    };
    s.record_sent_many(&[], "smtp", t0())
        .await
        .expect("nothing");
    s.record_sent_many(&[n.clone(), m.clone()], "smtp", t0())
        .await
        .expect("record many");
    assert!(s.was_sent(m.event_id).await.expect("sent?"));
    assert_eq!(s.sent_for(o.order_id).await.expect("sent_for").len(), 2);
}
