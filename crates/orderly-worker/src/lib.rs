//! # orderly-worker
//!
//! The processing side of the one-machine Orderly:
//! - the local saga engine ([`engine`]), consuming the `orders` queue;
//! - the event relay, handing the domain events the outbox recorded to the event bus
//!   ([`bus`]: one durable queue per subscription);
//! - the subscribers: fulfilment (tracking id, `FULFILLED`) and notifications (mail to the
//!   customer through a [`orderly_core::ports::Notifier`], see [`notify`]);
//! - retention of dead letters.
//!
//! Every loop takes a shutdown signal and finishes the message in hand before it stops.
//! It may depend on `orderly-core`, tokio and the mail client; it reaches storage only
//! through the ports, so it runs unchanged on any adapter.

pub mod bus;
pub mod egress;
pub mod engine;
pub mod notify;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use orderly_core::events::{FULFILMENT, NOTIFICATIONS, WEBHOOKS};
use orderly_core::ports::{
    DLQ_RETENTION_SECS, EventBus, EventOutbox, Message, NackOutcome, Notifier, Queue,
};
use orderly_core::saga::SagaDef;
use orderly_core::{DomainEvent, Orderly};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use engine::{SagaEngine, SagaOutcome};

/// The queue the saga engine consumes (the order store enqueues into it).
pub use orderly_core::ports::ORDERS_QUEUE;

/// Tunables of the worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Concurrent consumers of the orders queue.
    pub consumers: usize,
    /// Messages taken per receive.
    pub batch: usize,
    /// How long a received message stays hidden; renewed while it is being worked on.
    pub visibility: Duration,
    /// Longest a receive waits for a message. Shutdown lets a receive in progress finish
    /// (and hands back what it took), so this also bounds how long stopping can wait for it.
    pub poll_wait: Duration,
    /// First redelivery delay of a failed message (doubles per receive, jittered).
    pub redelivery_base: Duration,
    /// After shutdown, how long the messages in hand may take to finish; those still
    /// running then are stopped and handed back (visible again at once).
    pub drain_timeout: Duration,
    pub saga: SagaDef,
}

impl WorkerConfig {
    pub fn new(saga: SagaDef) -> WorkerConfig {
        WorkerConfig {
            consumers: 4,
            batch: 8,
            visibility: Duration::from_secs(30),
            poll_wait: Duration::from_secs(10),
            redelivery_base: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(10),
            saga,
        }
    }
}

/// Everything the worker runs.
#[derive(Clone)]
pub struct Worker {
    app: Orderly,
    /// Where the relay reads the recorded events from (the processing side only: no use
    /// case reads the outbox, so it is not one of the application's ports).
    outbox: Arc<dyn EventOutbox>,
    bus: Arc<dyn EventBus>,
    notifier: Arc<dyn Notifier>,
    cfg: Arc<WorkerConfig>,
    /// Webhook fan-out and delivery, when enabled ([`Worker::with_webhooks`]).
    webhooks: Option<Arc<webhooks::Deliverer>>,
    /// Messages let go at shutdown, handed back once every loop has stopped.
    handback: HandBack,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(
        app: Orderly,
        outbox: Arc<dyn EventOutbox>,
        bus: Arc<dyn EventBus>,
        notifier: Arc<dyn Notifier>,
        cfg: WorkerConfig,
    ) -> Worker {
        Worker {
            app,
            outbox,
            bus,
            notifier,
            cfg: Arc::new(cfg),
            webhooks: None,
            handback: HandBack::default(),
        }
    }

    /// Also runs the webhooks subscriber (consuming the `webhooks` event queue, which the
    /// bus must feed: `orderly_core::events::local_routes`) and delivers webhooks. Fails
    /// when the application has no webhook store.
    pub fn with_webhooks(mut self, cfg: webhooks::WebhookConfig) -> Result<Worker, String> {
        self.webhooks = Some(Arc::new(webhooks::Deliverer::new(self.app.clone(), cfg)?));
        Ok(self)
    }

    /// Sets the longest a receive waits for a message ([`WorkerConfig::poll_wait`]).
    pub fn with_poll_wait(mut self, wait: Duration) -> Worker {
        Arc::make_mut(&mut self.cfg).poll_wait = wait;
        self
    }

    /// Sets how long shutdown waits for the messages in hand ([`WorkerConfig::drain_timeout`]).
    pub fn with_drain_timeout(mut self, drain: Duration) -> Worker {
        Arc::make_mut(&mut self.cfg).drain_timeout = drain;
        self
    }

    pub fn engine(&self) -> SagaEngine {
        SagaEngine::new(self.app.clone(), self.cfg.saga.clone())
    }

    /// Runs every loop until `shutdown` turns true, then lets each finish what it holds.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
        for _ in 0..self.cfg.consumers.max(1) {
            let w = self.clone();
            let engine = self.engine();
            tasks.spawn(w.consume(ORDERS_QUEUE, shutdown.clone(), move |m| {
                let engine = engine.clone();
                async move { handle_order(&engine, &m).await }
            }));
        }
        // Fulfilment is one conditional write per batch: as many consumers as the saga, so
        // it keeps up with the saga.
        for _ in 0..self.cfg.consumers.max(1) {
            tasks.spawn(self.clone().subscriber(FULFILMENT, shutdown.clone()));
        }
        // One consumer, its batch in queue order: a customer's mails keep their order.
        tasks.spawn(self.clone().subscriber(NOTIFICATIONS, shutdown.clone()));
        if let Some(deliverer) = &self.webhooks {
            tasks.spawn(self.clone().subscriber(WEBHOOKS, shutdown.clone()));
            for _ in 0..deliverer.config().consumers.max(1) {
                tasks.spawn(webhooks::run_deliveries(
                    deliverer.clone(),
                    self.app.queue().clone(),
                    self.cfg.clone(),
                    self.handback.clone(),
                    shutdown.clone(),
                ));
            }
        }
        tasks.spawn(self.clone().relay_events(shutdown.clone()));
        tasks.spawn(self.clone().retention(shutdown.clone()));
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "worker task failed");
            }
        }
        self.handback.flush(self.app.queue()).await;
        tracing::info!("worker stopped");
    }

    /// Consumes the queue of `subscription`, running core's reaction of that subscriber on
    /// each received batch ([`Orderly::react_many`]: in queue order, written once per
    /// batch where the subscriber allows it), then acking what succeeded in one call.
    async fn subscriber(self, subscription: &'static str, shutdown: watch::Receiver<bool>) {
        let q = self.app.queue().clone();
        let (app, notifier, cfg) = (self.app.clone(), self.notifier.clone(), self.cfg.clone());
        self.receive_loop(subscription, shutdown, move |msgs, _| {
            let (q, app, notifier, cfg) = (q.clone(), app.clone(), notifier.clone(), cfg.clone());
            async move {
                let heartbeats: Vec<_> = msgs
                    .iter()
                    .map(|m| {
                        Heartbeat(tokio::spawn(keep_hidden(
                            q.clone(),
                            subscription,
                            m.id.clone(),
                            cfg.visibility,
                        )))
                    })
                    .collect();
                let mut results: Vec<Result<(), String>> = Vec::with_capacity(msgs.len());
                let mut events = Vec::new();
                let mut at = Vec::new();
                for m in &msgs {
                    match parse_event(m) {
                        Ok(e) => {
                            at.push(results.len());
                            results.push(Ok(()));
                            events.push(e);
                        }
                        Err(why) => results.push(Err(why)),
                    }
                }
                let reacted = app
                    .react_many(subscription, &events, notifier.as_ref())
                    .await;
                for (i, r) in at.into_iter().zip(reacted) {
                    results[i] = r;
                }
                let mut done = Vec::new();
                for ((m, r), heartbeat) in msgs.into_iter().zip(results).zip(heartbeats) {
                    match r {
                        Ok(()) => done.push(Handled {
                            id: m.id,
                            _heartbeat: heartbeat,
                        }),
                        Err(why) => {
                            drop(heartbeat);
                            retry_later(&q, subscription, &cfg, &m, &why).await;
                        }
                    }
                }
                ack(&q, subscription, done).await;
            }
        })
        .await
    }

    /// Receives batches from `queue` and runs `on_batch` on each until shutdown; the batch
    /// in hand is finished (or, past the drain deadline, handed back) before the loop stops.
    async fn receive_loop<F, Fut>(
        self,
        queue: &'static str,
        mut shutdown: watch::Receiver<bool>,
        on_batch: F,
    ) where
        F: Fn(Vec<Message>, watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let q = self.app.queue().clone();
        let cfg = self.cfg.clone();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let Some(received) = receive_or_stop(
                &q,
                queue,
                cfg.batch,
                cfg.visibility,
                cfg.poll_wait,
                &self.handback,
                &mut shutdown,
            )
            .await
            else {
                return;
            };
            match received {
                Ok(msgs) if msgs.is_empty() => {}
                Ok(msgs) => on_batch(msgs, shutdown.clone()).await,
                Err(e) => {
                    tracing::warn!(queue, error = %e, "receive failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// Receives from `queue` and runs `handle` on every message of each batch at once,
    /// until shutdown. A handler's error text is recorded as the message's last error.
    async fn consume<F, Fut>(self, queue: &'static str, shutdown: watch::Receiver<bool>, handle: F)
    where
        F: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let q = self.app.queue().clone();
        let cfg = self.cfg.clone();
        let handle = Arc::new(handle);
        let handback = self.handback.clone();
        self.receive_loop(queue, shutdown, move |msgs, shutdown| {
            let (q, cfg, handle) = (q.clone(), cfg.clone(), handle.clone());
            let handback = handback.clone();
            async move {
                let settle = |m: Message| {
                    let (q, cfg, handle) = (q.clone(), cfg.clone(), handle.clone());
                    async move {
                        let id = m.id.clone();
                        (id, settle_message(&q, queue, &cfg, m, handle.as_ref()).await)
                    }
                };
                // All messages of the batch at once, each with its own heartbeat, as with
                // separate consumers (independent messages: one order each); the ones
                // handled are acked together once the batch is done (one store
                // operation), before the next receive.
                let mut done = Vec::new();
                let mut in_hand: std::collections::HashSet<String> =
                    msgs.iter().map(|m| m.id.clone()).collect();
                let mut batch = JoinSet::new();
                for m in msgs {
                    batch.spawn(settle(m));
                }
                let deadline = drain_deadline(shutdown, cfg.drain_timeout);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        r = batch.join_next() => match r {
                            None => break,
                            Some(Ok((id, d))) => {
                                in_hand.remove(&id);
                                done.extend(d);
                            }
                            Some(Err(e)) => {
                                tracing::error!(queue, error = %e, "message handler failed");
                            }
                        },
                        () = &mut deadline => {
                            // Steps are recorded as they complete, so another receive
                            // resumes these orders where they stopped.
                            batch.abort_all();
                            while batch.join_next().await.is_some() {}
                            tracing::warn!(queue, messages = in_hand.len(), "drain deadline passed: handing back the messages still in hand");
                            handback.add(queue, in_hand.drain());
                            break;
                        }
                    }
                }
                ack(&q, queue, done).await;
            }
        })
        .await
    }

    /// Hands recorded events to the bus, in order, at least once.
    async fn relay_events(self, mut shutdown: watch::Receiver<bool>) {
        let outbox = self.outbox.clone();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let batch = tokio::select! {
                r = outbox.unpublished(256, self.cfg.poll_wait) => r,
                _ = shutdown.changed() => return,
            };
            let failed = match batch {
                Ok(b) if b.is_empty() => false,
                Ok(b) => {
                    let last = b.last().map(|(p, _)| *p).unwrap_or(0);
                    let events: Vec<DomainEvent> = b.into_iter().map(|(_, e)| e).collect();
                    match self.bus.publish(&events).await {
                        Ok(()) => outbox.mark_published(last).await.is_err(),
                        Err(e) => {
                            tracing::warn!(error = %e, "publishing events failed; retrying");
                            true
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the event outbox failed");
                    true
                }
            };
            if failed {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }

    /// Deletes dead letters older than the retention period, hourly.
    async fn retention(self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let before = self.app.clock().now().plus_secs(-DLQ_RETENTION_SECS);
            match self.app.queue().purge_dead_letters(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired dead letters removed"),
                Err(e) => tracing::warn!(error = %e, "dead-letter retention failed"),
            }
        }
    }
}

/// A message handled successfully, still kept hidden until it is acked.
struct Handled {
    id: String,
    /// Held until the ack is done; dropping it stops the heartbeat.
    _heartbeat: Heartbeat,
}

/// The task keeping a message hidden; stopped when dropped, so a handler stopped midway
/// (at the drain deadline) does not hide its message again after it was handed back.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves `drain` after shutdown begins (never, before it does).
async fn drain_deadline(mut shutdown: watch::Receiver<bool>, drain: Duration) {
    let _ = shutdown.wait_for(|s| *s).await;
    tokio::time::sleep(drain).await;
}

/// Receives from `queue` unless shutdown comes first. A receive that shutdown interrupts
/// is let finish (it ends within its wait, `poll_wait`; a receive dropped midway could have
/// hidden messages that nobody then holds) and whatever it took is handed back at once, so
/// that no message waits out its visibility timeout because this process stopped.
/// `None`: stop.
pub(crate) async fn receive_or_stop(
    q: &Arc<dyn Queue>,
    queue: &'static str,
    max: usize,
    visibility: Duration,
    wait: Duration,
    handback: &HandBack,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Result<Vec<Message>, orderly_core::StoreError>> {
    let receive = q.receive(queue, max, visibility, wait);
    tokio::pin!(receive);
    tokio::select! {
        r = &mut receive => return Some(r),
        _ = shutdown.changed() => {}
    }
    if let Ok(Ok(msgs)) = tokio::time::timeout(wait + Duration::from_secs(1), receive).await {
        handback.add(queue, msgs.into_iter().map(|m| m.id));
    }
    None
}

/// Messages this process let go without handling them (taken by a receive that shutdown
/// interrupted, or still running at the drain deadline). They are handed back, visible again
/// at once, when every loop has stopped: handed back earlier, another loop of this process
/// still finishing its receive could take them again, and every take counts towards the
/// dead-letter limit.
#[derive(Debug, Clone, Default)]
pub(crate) struct HandBack(Arc<std::sync::Mutex<Vec<(&'static str, String)>>>);

impl HandBack {
    pub(crate) fn add(&self, queue: &'static str, ids: impl IntoIterator<Item = String>) {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        held.extend(ids.into_iter().map(|id| (queue, id)));
    }

    /// Makes every message let go visible again (the next receive, here after a restart or
    /// in another process, resumes its handling).
    async fn flush(&self, q: &Arc<dyn Queue>) {
        let held = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        if !held.is_empty() {
            tracing::info!(
                messages = held.len(),
                "handing back the messages let go at shutdown"
            );
        }
        for (queue, id) in held {
            if let Err(e) = q.extend(queue, &id, Duration::ZERO).await {
                tracing::warn!(queue, message = %id, error = %e, "could not hand a message back; it returns after its visibility timeout");
            }
        }
    }
}

/// Acks handled messages of `queue` in one call, then stops their heartbeats. A failed
/// ack leaves them to be redelivered (handling is idempotent).
async fn ack(q: &Arc<dyn Queue>, queue: &'static str, done: Vec<Handled>) {
    if done.is_empty() {
        return;
    }
    let ids: Vec<String> = done.iter().map(|d| d.id.clone()).collect();
    if let Err(e) = q.ack_many(queue, &ids).await {
        tracing::warn!(queue, messages = ids.len(), error = %e, "could not ack; the messages will be redelivered");
    }
    drop(done);
}

/// Runs `handle` on one message (keeping it hidden meanwhile). Answers the message to
/// ack when it succeeded; otherwise nacks it for a later retry or the dead-letter queue.
async fn settle_message<F, Fut>(
    q: &Arc<dyn Queue>,
    queue: &'static str,
    cfg: &WorkerConfig,
    m: Message,
    handle: &F,
) -> Option<Handled>
where
    F: Fn(Message) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let heartbeat = Heartbeat(tokio::spawn(keep_hidden(
        q.clone(),
        queue,
        m.id.clone(),
        cfg.visibility,
    )));
    let out = handle(m.clone()).await;
    if out.is_ok() {
        return Some(Handled {
            id: m.id,
            _heartbeat: heartbeat,
        });
    }
    drop(heartbeat);
    if let Err(why) = out {
        retry_later(q, queue, cfg, &m, &why).await;
    }
    None
}

/// Nacks a failed message: visible again after the redelivery backoff, or dead-lettered
/// on its last allowed receive.
async fn retry_later(
    q: &Arc<dyn Queue>,
    queue: &'static str,
    cfg: &WorkerConfig,
    m: &Message,
    why: &str,
) {
    let delay = engine::redelivery_delay(cfg.redelivery_base, m.receive_count);
    match q.nack(queue, &m.id, why, delay).await {
        Ok(NackOutcome::DeadLettered) => {
            tracing::error!(queue, message = %m.id, error = %why, "message dead-lettered");
        }
        Ok(NackOutcome::WillRetry) => {
            tracing::warn!(queue, message = %m.id, receive = m.receive_count, error = %why, "message will be retried");
        }
        Err(e) => {
            tracing::warn!(queue, message = %m.id, error = %e, "could not settle message; it will be redelivered");
        }
    }
}

/// Renews a message's visibility while its handler runs.
async fn keep_hidden(q: Arc<dyn Queue>, queue: &'static str, id: String, visibility: Duration) {
    let every = (visibility / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = q.extend(queue, &id, visibility).await {
            tracing::warn!(queue, message = %id, error = %e, "cannot extend visibility");
        }
    }
}

fn parse_event(m: &Message) -> Result<DomainEvent, String> {
    DomainEvent::from_json(&m.body).map_err(|e| format!("malformed event message: {e}"))
}

async fn handle_order(engine: &SagaEngine, m: &Message) -> Result<(), String> {
    let id = orderly_core::ports::parse_processing_message(&m.body)?;
    let out = engine.process(id).await.map_err(|e| e.0)?;
    tracing::debug!(order_id = %id, outcome = ?out, "order processed");
    Ok(())
}
