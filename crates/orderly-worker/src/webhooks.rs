//! Webhook delivery: POSTs each scheduled delivery (a message on
//! [`orderly_core::webhooks::DELIVERY_QUEUE`]) to its endpoint, signed, and applies the
//! retry policy.
//!
//! **The request.** The body is the event envelope exactly as `GET /orders/{id}/events`
//! lists it. Headers: `content-type: application/json`; `orderly-webhook-id` (the delivery
//! id, the same on every attempt: receivers dedupe by it); `orderly-webhook-timestamp`
//! (unix seconds); `orderly-webhook-attempt`; `orderly-webhook-signature:
//! v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. Redirects are not followed.
//!
//! **Retries.** Each attempt is its own queue message carrying its attempt number: a 2xx
//! answer is `delivered`; anything else (another status, a timeout, a connection error)
//! is a `failed` attempt, and the next attempt is enqueued with an exponential delay
//! (`retry_base * 2^(n-1)`, capped, "equal jitter": between half and all of it). The
//! queue's own three receives are thus kept for crashes, not for endpoint failures. The
//! last attempt that fails is `dead`: its message is then nacked until the queue moves it
//! to the dead-letter queue (`/admin/dlq`, with the reason as its last error). Replaying
//! it makes one more attempt (numbered after the last one); if that fails too, it is dead
//! again. Every attempt is recorded in the delivery log.
//!
//! A delivery whose endpoint was deleted or disabled meanwhile is dropped; one already
//! delivered is not made again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use orderly_core::Orderly;
use orderly_core::egress::EgressPolicy;
use orderly_core::metrics::WEBHOOK_DELIVERIES;
use orderly_core::ports::{Message, NackOutcome, Queue};
use orderly_core::webhooks::{
    DELIVERY_QUEUE, DeliveryAttempt, DeliveryMessage, DeliveryOutcome, WebhookEndpoint, Webhooks,
};
use orderly_core::{EventType, StoreError};
use rand::Rng;
use sha2::Sha256;
use tokio::sync::watch;
use uuid::Uuid;

/// Header names of a delivery.
pub const HEADER_ID: &str = "orderly-webhook-id";
pub const HEADER_TIMESTAMP: &str = "orderly-webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "orderly-webhook-signature";
pub const HEADER_ATTEMPT: &str = "orderly-webhook-attempt";

/// Tunables of webhook delivery.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Attempts per delivery in all (the last failed one dead-letters it).
    pub attempts: u32,
    /// Nominal delay before the second attempt; doubles per attempt.
    pub retry_base: Duration,
    /// Longest nominal delay between two attempts.
    pub retry_cap: Duration,
    /// Longest one attempt may take (connecting, sending, the answer's head).
    pub timeout: Duration,
    /// Deliveries made at once.
    pub consumers: usize,
    /// Where deliveries may go (checked on the address connected to, at delivery time).
    pub egress: EgressPolicy,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            attempts: 6,
            retry_base: Duration::from_secs(30),
            retry_cap: Duration::from_secs(3600),
            timeout: Duration::from_secs(5),
            consumers: 2,
            egress: EgressPolicy::default(),
        }
    }
}

/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, the key being the secret's
/// UTF-8 bytes as shown at creation (`whsec_...`).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> Result<String, String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .map_err(|e| format!("cannot key the signature: {e}"))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("v1={hex}"))
}

/// The delay before attempt `attempt + 1` after attempt `attempt` failed: the nominal
/// `base * 2^(attempt-1)` (at most `cap`), of which a random half is added to a fixed half.
pub fn retry_delay(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
    let nominal = base.saturating_mul(factor).min(cap);
    let half = nominal / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    let extra = rand::rng().random_range(0..=jitter_ms);
    half + Duration::from_millis(extra)
}

/// What one POST found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    delivered: bool,
    status: Option<u16>,
    error: Option<String>,
}

/// What to do with a received delivery message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settle {
    Ack,
    Nack {
        error: String,
        retry_after: Duration,
    },
}

/// Makes webhook deliveries.
#[derive(Clone)]
pub struct Deliverer {
    app: Orderly,
    store: Arc<dyn Webhooks>,
    client: reqwest::Client,
    cfg: WebhookConfig,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// An error and its sources, `: `-separated (reqwest's own message is generic; the
/// cause, e.g. a refused connection or the egress policy, is in the chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

fn store_failure(e: StoreError) -> Settle {
    Settle::Nack {
        error: e.to_string(),
        retry_after: Duration::from_secs(1),
    }
}

fn describe(last: &DeliveryAttempt) -> String {
    let why = match (&last.error, last.status_code) {
        (Some(e), _) => e.clone(),
        (None, Some(s)) => format!("HTTP {s}"),
        (None, None) => "no answer".into(),
    };
    format!(
        "webhook {} delivery {} failed after attempt {}: {why}",
        last.endpoint_id, last.delivery_id, last.attempt
    )
}

impl Deliverer {
    /// A deliverer for the application's webhook store.
    pub fn new(app: Orderly, cfg: WebhookConfig) -> Result<Deliverer, String> {
        let store = app
            .webhooks()
            .cloned()
            .ok_or("this backend keeps no webhooks")?;
        let client = crate::egress::client_builder(Arc::new(cfg.egress.clone()))
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Orderly-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Deliverer {
            app,
            store,
            client,
            cfg,
        })
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.cfg
    }

    /// POSTs `body` to the endpoint, signed.
    async fn post(&self, ep: &WebhookEndpoint, m: &DeliveryMessage, attempt: u32) -> Answer {
        if let Err(e) = crate::egress::check_url(&self.cfg.egress, &ep.url) {
            return Answer {
                delivered: false,
                status: None,
                error: Some(format!("refused by the egress policy: {e}")),
            };
        }
        let body = m.event.to_string();
        let timestamp = self.app.clock().now().millis().div_euclid(1000);
        let signed = match signature(&ep.secret, timestamp, &body) {
            Ok(s) => s,
            Err(e) => {
                return Answer {
                    delivered: false,
                    status: None,
                    error: Some(e),
                };
            }
        };
        let sent = self
            .client
            .post(&ep.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_ID, m.delivery_id.to_string())
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_ATTEMPT, attempt.to_string())
            .header(HEADER_SIGNATURE, signed)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => Answer {
                delivered: true,
                status: Some(resp.status().as_u16()),
                error: None,
            },
            Ok(resp) => Answer {
                delivered: false,
                status: Some(resp.status().as_u16()),
                error: Some(format!("HTTP {}", resp.status())),
            },
            Err(e) if e.is_timeout() => Answer {
                delivered: false,
                status: None,
                error: Some(format!(
                    "timed out after {} ms",
                    self.cfg.timeout.as_millis()
                )),
            },
            Err(e) => Answer {
                delivered: false,
                status: None,
                error: Some(format!("request failed: {}", error_chain(&e.without_url()))),
            },
        }
    }

    /// Handles one message of the delivery queue and says how to settle it.
    async fn handle(&self, m: &Message) -> Settle {
        let msg = match DeliveryMessage::parse(&m.body) {
            Ok(msg) => msg,
            Err(error) => {
                return Settle::Nack {
                    error,
                    retry_after: Duration::ZERO,
                };
            }
        };
        let (event_id, event_type) = match event_identity(&msg.event) {
            Ok(x) => x,
            Err(error) => {
                return Settle::Nack {
                    error,
                    retry_after: Duration::ZERO,
                };
            }
        };
        let ep = match self.store.endpoint(msg.endpoint_id).await {
            Ok(Some(ep)) => ep,
            Ok(None) => {
                tracing::info!(webhook = %msg.endpoint_id, delivery = %msg.delivery_id, "webhook deleted: delivery dropped");
                return Settle::Ack;
            }
            Err(e) => return store_failure(e),
        };
        let log = match self.store.delivery_attempts(msg.delivery_id).await {
            Ok(log) => log,
            Err(e) => return store_failure(e),
        };
        let last = log.last();
        let replay = match last.map(|a| a.outcome) {
            Some(DeliveryOutcome::Delivered) => return Settle::Ack,
            // On its way to the dead-letter queue (the queue counts the receives).
            Some(DeliveryOutcome::Dead) if m.receive_count > 1 => {
                return Settle::Nack {
                    error: last.map(describe).unwrap_or_default(),
                    retry_after: Duration::ZERO,
                };
            }
            // A replayed dead letter: one more attempt.
            Some(DeliveryOutcome::Dead) => true,
            _ => false,
        };
        if !ep.active {
            tracing::info!(webhook = %ep.id, delivery = %msg.delivery_id, "webhook disabled: delivery dropped");
            return Settle::Ack;
        }
        let attempt = msg.attempt.max(last.map_or(1, |a| a.attempt + 1));
        let at = self.app.clock().now();
        let started = Instant::now();
        let answer = self.post(&ep, &msg, attempt).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let outcome = if answer.delivered {
            DeliveryOutcome::Delivered
        } else if replay || attempt >= self.cfg.attempts {
            DeliveryOutcome::Dead
        } else {
            DeliveryOutcome::Failed
        };
        let record = DeliveryAttempt {
            delivery_id: msg.delivery_id,
            endpoint_id: ep.id,
            event_id,
            event_type,
            attempt,
            at,
            outcome,
            status_code: answer.status,
            error: answer.error,
            duration_ms,
        };
        if let Err(e) = self.store.record_attempt(&record).await {
            // Not recorded: try again (the endpoint may see this attempt twice; it
            // dedupes by the delivery id).
            return store_failure(e);
        }
        let label = match outcome {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "retried",
            DeliveryOutcome::Dead => "dead",
        };
        metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => label).increment(1);
        match outcome {
            DeliveryOutcome::Delivered => {
                tracing::info!(webhook = %ep.id, delivery = %msg.delivery_id, attempt, status = ?record.status_code, "webhook delivered");
                Settle::Ack
            }
            DeliveryOutcome::Failed => {
                let delay = retry_delay(self.cfg.retry_base, self.cfg.retry_cap, attempt);
                tracing::warn!(webhook = %ep.id, delivery = %msg.delivery_id, attempt, error = ?record.error, retry_in_ms = delay.as_millis() as u64, "webhook attempt failed");
                let next = DeliveryMessage {
                    attempt: attempt + 1,
                    ..msg
                };
                match self
                    .app
                    .queue()
                    .send(DELIVERY_QUEUE, &next.to_json(), delay)
                    .await
                {
                    Ok(()) => Settle::Ack,
                    Err(e) => store_failure(e),
                }
            }
            DeliveryOutcome::Dead => {
                let error = describe(&record);
                tracing::error!(webhook = %ep.id, delivery = %msg.delivery_id, attempt, %error, "webhook delivery dead-lettered");
                Settle::Nack {
                    error,
                    retry_after: Duration::ZERO,
                }
            }
        }
    }
}

/// The event id and type of an envelope.
fn event_identity(event: &serde_json::Value) -> Result<(Uuid, EventType), String> {
    let id = event
        .get("id")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or("webhook delivery message: the event has no id")?;
    let kind = event
        .get("detailType")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| s.parse::<EventType>().ok())
        .ok_or("webhook delivery message: the event has no known detailType")?;
    Ok((id, kind))
}

/// Consumes the delivery queue until shutdown, finishing the delivery in hand.
pub(crate) async fn run_deliveries(
    d: Arc<Deliverer>,
    queue: Arc<dyn Queue>,
    worker: Arc<crate::WorkerConfig>,
    handback: crate::HandBack,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        // One at a time: a delivery may take the whole timeout, and messages waiting in a
        // batch would not have their visibility renewed meanwhile.
        let Some(received) = crate::receive_or_stop(
            &queue,
            DELIVERY_QUEUE,
            1,
            worker.visibility,
            worker.poll_wait,
            &handback,
            &mut shutdown,
        )
        .await
        else {
            return;
        };
        let msgs = match received {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(queue = DELIVERY_QUEUE, error = %e, "receive failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
        };
        for m in msgs {
            let heartbeat = tokio::spawn(crate::keep_hidden(
                queue.clone(),
                DELIVERY_QUEUE,
                m.id.clone(),
                worker.visibility,
            ));
            let settle = d.handle(&m).await;
            heartbeat.abort();
            let done = match settle {
                Settle::Ack => queue.ack(DELIVERY_QUEUE, &m.id).await,
                Settle::Nack { error, retry_after } => queue
                    .nack(DELIVERY_QUEUE, &m.id, &error, retry_after)
                    .await
                    .map(|outcome| {
                        if outcome == NackOutcome::DeadLettered {
                            tracing::error!(queue = DELIVERY_QUEUE, message = %m.id, %error, "webhook message dead-lettered");
                        }
                    }),
            };
            if let Err(e) = done {
                tracing::warn!(queue = DELIVERY_QUEUE, message = %m.id, error = %e, "could not settle message; it will be redelivered");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_an_independent_hmac_sha256() {
        // Computed with Python's standard library:
        //   hmac.new(b'whsec_test-secret',
        //            b'1700000000.{"id":"e1","detailType":"OrderPlaced"}',
        //            hashlib.sha256).hexdigest()
        assert_eq!(
            signature(
                "whsec_test-secret",
                1_700_000_000,
                r#"{"id":"e1","detailType":"OrderPlaced"}"#
            )
            .unwrap(),
            "v1=20efff722d62bd1d23a74e9ec9dad1fd574dccfcd49c8b6a61571b9c5e26e6ca"
        );
        // The timestamp and the body are both covered.
        let base = signature("k", 1, "{}").unwrap();
        assert_ne!(signature("k", 2, "{}").unwrap(), base);
        assert_ne!(signature("k", 1, "{ }").unwrap(), base);
        assert_ne!(signature("k2", 1, "{}").unwrap(), base);
    }

    #[test]
    fn retry_delays_grow_exponentially_with_jitter_and_a_cap() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        for attempt in 1..=40u32 {
            let nominal = (base * 2u32.saturating_pow((attempt - 1).min(30))).min(cap);
            for _ in 0..50 {
                let d = retry_delay(base, cap, attempt);
                assert!(d >= nominal / 2 && d <= nominal, "attempt {attempt}: {d:?}");
            }
        }
        assert!(retry_delay(base, cap, 1) <= Duration::from_millis(100));
        assert!(retry_delay(base, cap, 3) >= Duration::from_millis(200));
        let spread: std::collections::HashSet<Duration> =
            (0..50).map(|_| retry_delay(base, cap, 4)).collect();
        assert!(spread.len() > 1, "jittered");
    }

    #[test]
    fn events_name_their_id_and_type() {
        let id = Uuid::new_v4();
        assert_eq!(
            event_identity(&serde_json::json!({"id": id, "detailType": "OrderPlaced"})).unwrap(),
            (id, EventType::OrderPlaced)
        );
        assert!(event_identity(&serde_json::json!({"id": id})).is_err());
        assert!(
            event_identity(&serde_json::json!({"id": "x", "detailType": "OrderPlaced"})).is_err()
        );
    }
}
