//! The [`Queue`] port on Amazon SQS (standard queues).
//!
//! # Mapping
//!
//! - **Queues.** The logical queue `q` ("orders", "fulfilment", "notifications") is the SQS
//!   queue `<prefix>-q`; its dead letters live in `<prefix>-q-dlq`. [`create_queues`] creates
//!   both, idempotently: the dead-letter queue keeps messages [`DLQ_RETENTION_SECS`] (14
//!   days, the SQS maximum); the main queue gets the default visibility timeout, long
//!   polling (`ReceiveMessageWaitTimeSeconds` 10) and a redrive policy to its dead-letter
//!   queue with `maxReceiveCount` = [`MAX_RECEIVES`].
//! - **Known queues.** [`SqsQueue::new`] takes the logical names it serves; dead letters are
//!   listed, replayed, purged and counted across those, plus any other queue this adapter
//!   has sent to or received from since it was built. Queue URLs are resolved with
//!   `GetQueueUrl` once and cached.
//! - **Time is SQS's.** Visibility timeouts, retry delays and send delays are whole seconds
//!   on SQS: every duration is rounded **up** (a visibility of 1.2 s hides a message for
//!   2 s; a receive visibility is at least 1 s). Send delays are capped at 900 s,
//!   visibility at 12 hours, long-poll waits at 20 s (a wait below one second but above
//!   zero waits one second). `enqueued_at` is the message's `SentTimestamp`.
//! - **Message ids.** [`Message::id`] is `<receive count>:<receipt handle>`. The receipt
//!   handle is what `DeleteMessage` and `ChangeMessageVisibility` need; the receive count
//!   tells [`Queue::nack`] whether this was the last allowed delivery. SQS honours only the
//!   latest receipt handle of a message: a stale one (the message was redelivered since)
//!   neither deletes nor delays the newer delivery. Answers such as
//!   `ReceiptHandleIsInvalid` or `MessageNotInflight` (the message is gone or no longer in
//!   flight) are not errors: `ack` and `extend` do nothing and `nack` answers
//!   [`NackOutcome::WillRetry`], as the other adapters do for unknown ids.
//! - **Dead-lettering.** A nack of the last allowed delivery moves the message explicitly:
//!   `SendMessage` to the dead-letter queue with the message attributes `orderlyQueue`,
//!   `lastError` (at most 1024 characters), `receiveCount`, `enqueuedAt` and `deadAt`
//!   (epoch ms), then `DeleteMessage` from the main queue, in that order, so a crash in
//!   between duplicates the dead letter rather than losing it. The body comes from this
//!   adapter's memory of the last deliveries it handed out; when another process received
//!   it (so the body is unknown here), the nack makes it visible again and SQS's redrive
//!   policy moves it on the next receive, without a recorded error. A last delivery whose
//!   visibility timeout passes is moved by SQS itself on its 4th receive (never delivered a
//!   4th time); such dead letters carry no attributes: their queue is the dead-letter
//!   queue's owner, `last_error` is `None`, `receive_count` is [`MAX_RECEIVES`] and
//!   `enqueued_at` = `dead_at` = their original `SentTimestamp` (SQS keeps it when
//!   redriving, and expires them 14 days after it). Should a queue lack the redrive policy,
//!   [`Queue::receive`] moves messages received more than [`MAX_RECEIVES`] times itself
//!   and does not hand them out.
//! - **Listing dead letters.** SQS cannot browse a queue. `dead_letters`, `replay` and
//!   `purge_dead_letters` receive every message of each dead-letter queue, hidden for 30 s
//!   so that the walk sees each once (with a zero visibility timeout SQS, and moto, would
//!   answer the same first messages again and again), and make the ones they keep visible
//!   again at the end with `ChangeMessageVisibility` 0. Two of these calls running at the
//!   same time therefore see fewer dead letters each. [`DeadLetter::id`] is the SQS
//!   `MessageId`, stable across listings. Receiving from a dead-letter queue has no other
//!   effect (it has no redrive policy of its own).
//! - **Depth.** `waiting` = `ApproximateNumberOfMessages` + `...Delayed`, `in_flight` =
//!   `ApproximateNumberOfMessagesNotVisible` (which also counts nacked messages waiting for
//!   their retry delay, as the other adapters do). SQS's counts are approximate and
//!   eventually consistent. `oldest_age_ms` is always 0: SQS publishes the age of the
//!   oldest message only as the CloudWatch metric `ApproximateAgeOfOldestMessage`, and
//!   peeking at messages would count as receives.
//! - **Errors.** Throttling, server errors, timeouts and transport failures are
//!   [`StoreError::Unavailable`] (retryable); the rest is [`StoreError::Backend`].
//!
//! Bodies must be non-empty and at most 256 KiB (SQS limits).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message as SqsMessage, MessageAttributeValue,
    MessageSystemAttributeName, QueueAttributeName,
};
use orderly_core::ports::{
    Clock, DLQ_RETENTION_SECS, DeadLetter, MAX_RECEIVES, Message, NackOutcome, Queue, QueueDepth,
    SystemClock,
};
use orderly_core::{StoreError, Timestamp};

/// SQS's largest `DelaySeconds`.
const MAX_DELAY_SECS: i32 = 900;
/// SQS's largest visibility timeout (12 hours).
const MAX_VISIBILITY_SECS: i32 = 43_200;
/// SQS's largest `WaitTimeSeconds`.
const MAX_WAIT_SECS: i32 = 20;
/// The long-poll wait of a receive that names none (queue attribute).
const DEFAULT_WAIT_SECS: i32 = 10;
/// How long a dead-letter walk hides the messages it has seen.
const HOLD_SECS: i32 = 30;
/// At most this many receives per dead-letter walk (10 messages each).
const MAX_WALK_RECEIVES: usize = 1_000;
/// `lastError` is cut to this many characters.
const MAX_ERROR_CHARS: usize = 1024;
/// Slack added to the SDK's timeouts over a long poll's wait.
const LONG_POLL_SLACK: Duration = Duration::from_secs(10);
/// Last deliveries remembered longer than this (the longest visibility) are forgotten.
const LAST_DELIVERY_TTL: Duration = Duration::from_secs(43_200);
/// The error recorded when a last delivery timed out and this adapter moved it.
const TIMED_OUT: &str = "visibility timeout expired on the last allowed receive";

const ATTR_QUEUE: &str = "orderlyQueue";
const ATTR_ERROR: &str = "lastError";
const ATTR_COUNT: &str = "receiveCount";
const ATTR_ENQUEUED: &str = "enqueuedAt";
const ATTR_DEAD: &str = "deadAt";

/// The SQS name of the logical queue `queue`: `<prefix>-<queue>`.
pub fn queue_name(prefix: &str, queue: &str) -> String {
    format!("{prefix}-{queue}")
}

/// The SQS name of the dead-letter queue of `queue`: `<prefix>-<queue>-dlq`.
pub fn dlq_name(prefix: &str, queue: &str) -> String {
    format!("{prefix}-{queue}-dlq")
}

/// Creates (or updates) the main and dead-letter queue of every logical name: see the
/// module documentation. Idempotent: an existing queue gets its attributes set again.
pub async fn create_queues(
    client: &Client,
    prefix: &str,
    names: &[&str],
    visibility: Duration,
) -> Result<(), StoreError> {
    for name in names {
        let dlq_url = ensure_queue(
            client,
            &dlq_name(prefix, name),
            vec![(
                QueueAttributeName::MessageRetentionPeriod,
                DLQ_RETENTION_SECS.to_string(),
            )],
        )
        .await?;
        let dlq_arn = queue_arn(client, &dlq_url).await?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": MAX_RECEIVES,
        });
        ensure_queue(
            client,
            &queue_name(prefix, name),
            vec![
                (
                    QueueAttributeName::VisibilityTimeout,
                    secs_up(visibility, MAX_VISIBILITY_SECS).to_string(),
                ),
                (
                    QueueAttributeName::ReceiveMessageWaitTimeSeconds,
                    DEFAULT_WAIT_SECS.to_string(),
                ),
                (QueueAttributeName::RedrivePolicy, redrive.to_string()),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The ARN of the queue at `queue_url` (to point EventBridge rules or SNS subscriptions
/// at it).
pub async fn queue_arn(client: &Client, queue_url: &str) -> Result<String, StoreError> {
    let out = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sdk_err)?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| StoreError::Backend(format!("SQS gave no ARN for {queue_url}")))
}

/// Creates a queue with `attrs`, or sets them on the queue of that name if it exists
/// with other attributes. Answers its URL.
async fn ensure_queue(
    client: &Client,
    name: &str,
    attrs: Vec<(QueueAttributeName, String)>,
) -> Result<String, StoreError> {
    let mut req = client.create_queue().queue_name(name);
    for (k, v) in &attrs {
        req = req.attributes(k.clone(), v.clone());
    }
    match req.send().await {
        Ok(out) => out
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Backend(format!("SQS gave no URL for {name}"))),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_queue_name_exists()) =>
        {
            let url = client
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(sdk_err)?
                .queue_url()
                .map(str::to_owned)
                .ok_or_else(|| StoreError::Backend(format!("SQS gave no URL for {name}")))?;
            let mut set = client.set_queue_attributes().queue_url(&url);
            for (k, v) in attrs {
                set = set.attributes(k, v);
            }
            set.send().await.map_err(sdk_err)?;
            Ok(url)
        }
        Err(e) => Err(sdk_err(e)),
    }
}

/// The [`Queue`] port on SQS. Cheap to clone; clones share the URL cache and the memory
/// of last deliveries.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    prefix: String,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// SQS queue name -> URL.
    urls: Mutex<HashMap<String, String>>,
    /// Logical names whose dead-letter queues this adapter lists.
    names: Mutex<BTreeSet<String>>,
    /// Receipt handle -> the last allowed delivery handed out with it (what `nack` needs
    /// to dead-letter it).
    last: Mutex<HashMap<String, LastDelivery>>,
}

#[derive(Debug, Clone)]
struct LastDelivery {
    body: String,
    enqueued_at: Timestamp,
    received: Instant,
}

/// A dead letter hidden by a walk of its dead-letter queue.
#[derive(Debug)]
struct Held {
    receipt: String,
    letter: DeadLetter,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> Timestamp {
    SystemClock.now()
}

/// Whole seconds, rounded up, at most `max`.
fn secs_up(d: Duration, max: i32) -> i32 {
    let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    i32::try_from(secs).unwrap_or(max).min(max)
}

/// Splits a [`Message::id`] into receive count (0 when absent) and receipt handle.
fn parse_id(id: &str) -> (u32, &str) {
    match id.split_once(':') {
        Some((n, receipt)) => match n.parse() {
            Ok(n) => (n, receipt),
            Err(_) => (0, id),
        },
        None => (0, id),
    }
}

/// The last segment of an SQS error code (`AWS.SimpleQueueService.NonExistentQueue` ->
/// `NonExistentQueue`).
fn error_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error()
        .and_then(|se| se.code())
        .and_then(|c| c.rsplit('.').next())
}

/// The message a receipt handle names is gone or no longer in flight.
fn receipt_gone<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(
        error_code(e),
        Some("ReceiptHandleIsInvalid" | "MessageNotInflight" | "InvalidIdFormat")
    )
}

/// Maps an SDK failure: throttling, server errors, timeouts and transport errors are
/// retryable.
fn sdk_err<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    const RETRYABLE: [&str; 9] = [
        "ThrottlingException",
        "RequestThrottled",
        "Throttling",
        "KmsThrottled",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
    ];
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("SQS unreachable: {e:?}"))
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown").to_owned();
            let msg = se.err().message().unwrap_or("").to_owned();
            let short = code.rsplit('.').next().unwrap_or(&code);
            if RETRYABLE.contains(&short) {
                StoreError::Unavailable(format!("{code}: {msg}"))
            } else {
                StoreError::Backend(format!("{code}: {msg}"))
            }
        }
        _ => StoreError::Backend(format!("SQS call failed: {e:?}")),
    }
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("invalid SQS request: {e}"))
}

fn attribute(data_type: &str, value: String) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(build_err)
}

/// `error` cut to [`MAX_ERROR_CHARS`], with the characters SQS refuses in attribute
/// values replaced; never empty (SQS refuses empty values).
fn error_text(error: &str) -> String {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
            || c >= '\u{10000}'
    };
    let text: String = error
        .chars()
        .take(MAX_ERROR_CHARS)
        .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
        .collect();
    if text.is_empty() {
        "(no error message)".to_owned()
    } else {
        text
    }
}

fn system_attr<'a>(m: &'a SqsMessage, name: &MessageSystemAttributeName) -> Option<&'a str> {
    m.attributes().and_then(|a| a.get(name)).map(String::as_str)
}

fn sent_at(m: &SqsMessage) -> Option<Timestamp> {
    system_attr(m, &MessageSystemAttributeName::SentTimestamp)
        .and_then(|s| s.parse().ok())
        .and_then(Timestamp::from_millis)
}

/// A message of the dead-letter queue of `owner` as a [`DeadLetter`].
fn dead_letter_of(owner: &str, m: &SqsMessage, id: &str) -> DeadLetter {
    let attr = |k: &str| {
        m.message_attributes()
            .and_then(|a| a.get(k))
            .and_then(|v| v.string_value())
    };
    let millis = |k: &str| {
        attr(k)
            .and_then(|s| s.parse().ok())
            .and_then(Timestamp::from_millis)
    };
    let sent = sent_at(m).unwrap_or_else(now);
    DeadLetter {
        id: id.to_owned(),
        queue: owner.to_owned(),
        body: m.body().unwrap_or_default().to_owned(),
        receive_count: attr(ATTR_COUNT)
            .and_then(|s| s.parse().ok())
            .unwrap_or(MAX_RECEIVES),
        last_error: attr(ATTR_ERROR).map(str::to_owned),
        enqueued_at: millis(ATTR_ENQUEUED).unwrap_or(sent),
        dead_at: millis(ATTR_DEAD).unwrap_or(sent),
    }
}

impl SqsQueue {
    /// An adapter for the queues `<prefix>-<name>` (see [`create_queues`]); `names` are the
    /// logical queues whose dead letters it lists, replays, purges and counts.
    pub fn new(client: Client, prefix: impl Into<String>, names: &[&str]) -> SqsQueue {
        let shared = Shared::default();
        lock(&shared.names).extend(names.iter().map(|n| (*n).to_owned()));
        SqsQueue {
            client,
            prefix: prefix.into(),
            shared: Arc::new(shared),
        }
    }

    /// The URL of the main SQS queue of `queue`.
    pub async fn queue_url(&self, queue: &str) -> Result<String, StoreError> {
        let url = self.url_of(&queue_name(&self.prefix, queue)).await?;
        lock(&self.shared.names).insert(queue.to_owned());
        Ok(url)
    }

    /// The URL of the dead-letter queue of `queue`.
    pub async fn dlq_url(&self, queue: &str) -> Result<String, StoreError> {
        self.url_of(&dlq_name(&self.prefix, queue)).await
    }

    /// The ARN of the main SQS queue of `queue`.
    pub async fn queue_arn(&self, queue: &str) -> Result<String, StoreError> {
        queue_arn(&self.client, &self.queue_url(queue).await?).await
    }

    async fn url_of(&self, sqs_name: &str) -> Result<String, StoreError> {
        if let Some(url) = lock(&self.shared.urls).get(sqs_name) {
            return Ok(url.clone());
        }
        let out = self
            .client
            .get_queue_url()
            .queue_name(sqs_name)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|se| se.is_queue_does_not_exist())
                {
                    StoreError::Backend(format!(
                        "SQS queue {sqs_name} does not exist (see create_queues)"
                    ))
                } else {
                    sdk_err(e)
                }
            })?;
        let url = out
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Backend(format!("SQS gave no URL for {sqs_name}")))?;
        lock(&self.shared.urls).insert(sqs_name.to_owned(), url.clone());
        Ok(url)
    }

    fn known_queues(&self) -> Vec<String> {
        lock(&self.shared.names).iter().cloned().collect()
    }

    /// The client's timeouts, lengthened to outlast a long poll of `wait_secs`, when they
    /// are shorter (the SDK would otherwise abort a long poll as timed out).
    fn long_poll_override(&self, wait_secs: i32) -> Option<aws_sdk_sqs::config::Builder> {
        let base = self.client.config().timeout_config()?;
        let need = Duration::from_secs(u64::try_from(wait_secs).unwrap_or(0)) + LONG_POLL_SLACK;
        let short = |d: Option<Duration>| d.is_some_and(|d| d < need);
        let (op, attempt, read) = (
            short(base.operation_timeout()),
            short(base.operation_attempt_timeout()),
            short(base.read_timeout()),
        );
        if !(op || attempt || read) {
            return None;
        }
        let mut t = base.to_builder();
        if op {
            t = t.operation_timeout(need);
        }
        if attempt {
            t = t.operation_attempt_timeout(need);
        }
        if read {
            t = t.read_timeout(need);
        }
        let t: TimeoutConfig = t.build();
        Some(aws_sdk_sqs::config::Builder::default().timeout_config(t))
    }

    /// Sets the visibility timeout of the delivery `receipt`. `Ok(false)` when the message
    /// is gone or no longer in flight.
    async fn change_visibility(
        &self,
        url: &str,
        receipt: &str,
        secs: i32,
    ) -> Result<bool, StoreError> {
        match self
            .client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if receipt_gone(&e) => Ok(false),
            Err(e) => Err(sdk_err(e)),
        }
    }

    /// Deletes the delivery `receipt`. `Ok(false)` when the message was already gone.
    async fn delete(&self, url: &str, receipt: &str) -> Result<bool, StoreError> {
        match self
            .client
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if receipt_gone(&e) => Ok(false),
            Err(e) => Err(sdk_err(e)),
        }
    }

    /// Moves a delivery of `queue` to its dead-letter queue: send there first, then delete
    /// from the main queue (a crash in between leaves a duplicate, never a loss).
    async fn move_to_dlq(
        &self,
        queue: &str,
        main_url: &str,
        receipt: &str,
        last: &LastDelivery,
        error: &str,
    ) -> Result<(), StoreError> {
        let dlq_url = self.dlq_url(queue).await?;
        let dead_at = now();
        self.client
            .send_message()
            .queue_url(&dlq_url)
            .message_body(&last.body)
            .message_attributes(ATTR_QUEUE, attribute("String", queue.to_owned())?)
            .message_attributes(ATTR_ERROR, attribute("String", error_text(error))?)
            .message_attributes(ATTR_COUNT, attribute("Number", MAX_RECEIVES.to_string())?)
            .message_attributes(
                ATTR_ENQUEUED,
                attribute("Number", last.enqueued_at.millis().to_string())?,
            )
            .message_attributes(
                ATTR_DEAD,
                attribute("Number", dead_at.millis().to_string())?,
            )
            .send()
            .await
            .map_err(sdk_err)?;
        if !self.delete(main_url, receipt).await? {
            tracing::warn!(
                queue,
                "dead-lettered message had already left the main queue; the dead-letter queue may hold it twice"
            );
        }
        Ok(())
    }

    /// Every message of the dead-letter queue of `owner`, each hidden for [`HOLD_SECS`]
    /// so that the walk sees it once. The caller must [`Self::release`] those it keeps.
    async fn hold(&self, owner: &str, dlq_url: &str) -> Result<Vec<Held>, StoreError> {
        let mut held: Vec<Held> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut long_polled = false;
        for _ in 0..MAX_WALK_RECEIVES {
            let out = self
                .client
                .receive_message()
                .queue_url(dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(HOLD_SECS)
                .wait_time_seconds(i32::from(long_polled))
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .message_attribute_names("All")
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                Err(e) => {
                    self.release(dlq_url, &held).await;
                    return Err(sdk_err(e));
                }
            };
            let mut new = 0;
            for m in out.messages() {
                let (Some(id), Some(receipt)) = (m.message_id(), m.receipt_handle()) else {
                    continue;
                };
                match index.get(id) {
                    Some(&i) => held[i].receipt = receipt.to_owned(),
                    None => {
                        index.insert(id.to_owned(), held.len());
                        held.push(Held {
                            receipt: receipt.to_owned(),
                            letter: dead_letter_of(owner, m, id),
                        });
                        new += 1;
                    }
                }
            }
            if new > 0 {
                long_polled = false;
                continue;
            }
            if long_polled {
                break;
            }
            // A short poll samples only some SQS servers: when messages seem to be left,
            // look once more with a long poll, which asks them all.
            match self
                .numbers(dlq_url, [QueueAttributeName::ApproximateNumberOfMessages])
                .await
            {
                Ok([0]) => break,
                Ok(_) => long_polled = true,
                Err(e) => {
                    self.release(dlq_url, &held).await;
                    return Err(e);
                }
            }
        }
        Ok(held)
    }

    /// Makes held dead letters visible again (best effort: if this fails they return by
    /// themselves after [`HOLD_SECS`]).
    async fn release(&self, dlq_url: &str, held: &[Held]) {
        for chunk in held.chunks(10) {
            let mut req = self
                .client
                .change_message_visibility_batch()
                .queue_url(dlq_url);
            for (i, h) in chunk.iter().enumerate() {
                match ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&h.receipt)
                    .visibility_timeout(0)
                    .build()
                {
                    Ok(entry) => req = req.entries(entry),
                    Err(e) => tracing::warn!(error = %e, "could not release a dead letter"),
                }
            }
            match req.send().await {
                Ok(out) if !out.failed().is_empty() => tracing::warn!(
                    failed = out.failed().len(),
                    "some dead letters stay hidden until their visibility timeout passes"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "could not release dead letters"),
            }
        }
    }

    /// The given numeric attributes of a queue (missing or unreadable ones are 0).
    async fn numbers<const N: usize>(
        &self,
        url: &str,
        names: [QueueAttributeName; N],
    ) -> Result<[u64; N], StoreError> {
        let mut req = self.client.get_queue_attributes().queue_url(url);
        for n in &names {
            req = req.attribute_names(n.clone());
        }
        let out = req.send().await.map_err(sdk_err)?;
        let attrs = out.attributes();
        Ok(names.map(|n| {
            attrs
                .and_then(|a| a.get(&n))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        }))
    }

    /// Holds the dead letters of `owner`, lets `act` consume some of them (it answers
    /// whether it consumed each), and releases the rest, also when `act` fails.
    async fn for_each_dead_letter<F, Fut>(&self, owner: &str, mut act: F) -> Result<(), StoreError>
    where
        F: FnMut(String, Held) -> Fut,
        Fut: std::future::Future<Output = Result<Option<Held>, StoreError>>,
    {
        let dlq_url = self.dlq_url(owner).await?;
        let held = self.hold(owner, &dlq_url).await?;
        let mut keep = Vec::new();
        let mut result = Ok(());
        let mut rest = held.into_iter();
        for h in rest.by_ref() {
            match act(dlq_url.clone(), h).await {
                Ok(Some(kept)) => keep.push(kept),
                Ok(None) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        keep.extend(rest);
        self.release(&dlq_url, &keep).await;
        result
    }

    fn remember_last(&self, receipt: &str, last: LastDelivery) {
        let mut map = lock(&self.shared.last);
        map.retain(|_, l| l.received.elapsed() < LAST_DELIVERY_TTL);
        map.insert(receipt.to_owned(), last);
    }

    fn forget_last(&self, receipt: &str) -> Option<LastDelivery> {
        lock(&self.shared.last).remove(receipt)
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue: &str, body: &str, delay: Duration) -> Result<(), StoreError> {
        let url = self.queue_url(queue).await?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .delay_seconds(secs_up(delay, MAX_DELAY_SECS))
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Message>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let url = self.queue_url(queue).await?;
        let wait_secs = secs_up(wait, MAX_WAIT_SECS);
        let req = self
            .client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(i32::try_from(max.min(10)).unwrap_or(10))
            .visibility_timeout(secs_up(visibility, MAX_VISIBILITY_SECS).max(1))
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp);
        let out = match self.long_poll_override(wait_secs) {
            Some(cfg) => req.customize().config_override(cfg).send().await,
            None => req.send().await,
        }
        .map_err(sdk_err)?;
        let mut got = Vec::new();
        for m in out.messages() {
            let Some(receipt) = m.receipt_handle() else {
                continue;
            };
            let body = m.body().unwrap_or_default();
            let count: u32 = system_attr(m, &MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            let enqueued_at = sent_at(m).unwrap_or_else(now);
            let last = LastDelivery {
                body: body.to_owned(),
                enqueued_at,
                received: Instant::now(),
            };
            if count > MAX_RECEIVES {
                // The queue has no (or a laxer) redrive policy: its last delivery timed
                // out; dead-letter it here instead of delivering it again.
                if let Err(e) = self
                    .move_to_dlq(queue, &url, receipt, &last, TIMED_OUT)
                    .await
                {
                    tracing::warn!(queue, error = %e, "could not dead-letter an over-received message; it will be tried again");
                }
                continue;
            }
            if count == MAX_RECEIVES {
                self.remember_last(receipt, last);
            }
            got.push(Message {
                id: format!("{count}:{receipt}"),
                body: body.to_owned(),
                receive_count: count,
                enqueued_at,
            });
        }
        Ok(got)
    }

    async fn ack(&self, queue: &str, id: &str) -> Result<(), StoreError> {
        let (_, receipt) = parse_id(id);
        self.forget_last(receipt);
        let url = self.queue_url(queue).await?;
        self.delete(&url, receipt).await?;
        Ok(())
    }

    async fn nack(
        &self,
        queue: &str,
        id: &str,
        error: &str,
        retry_after: Duration,
    ) -> Result<NackOutcome, StoreError> {
        let (count, receipt) = parse_id(id);
        let last = self.forget_last(receipt);
        let url = self.queue_url(queue).await?;
        if count < MAX_RECEIVES {
            let secs = secs_up(retry_after, MAX_VISIBILITY_SECS);
            self.change_visibility(&url, receipt, secs).await?;
            return Ok(NackOutcome::WillRetry);
        }
        let Some(last) = last else {
            // Not received through this adapter: make it visible, and SQS's redrive policy
            // (or the guard in `receive`) dead-letters it on its next receive.
            if !self.change_visibility(&url, receipt, 0).await? {
                return Ok(NackOutcome::WillRetry);
            }
            tracing::warn!(
                queue,
                error,
                "last delivery nacked without its body at hand; SQS redrive moves it, without the error"
            );
            return Ok(NackOutcome::DeadLettered);
        };
        // Keep the delivery hidden while it moves, and check it is still ours.
        if !self.change_visibility(&url, receipt, HOLD_SECS).await? {
            return Ok(NackOutcome::WillRetry);
        }
        self.move_to_dlq(queue, &url, receipt, &last, error).await?;
        Ok(NackOutcome::DeadLettered)
    }

    async fn extend(&self, queue: &str, id: &str, visibility: Duration) -> Result<(), StoreError> {
        let (_, receipt) = parse_id(id);
        let url = self.queue_url(queue).await?;
        self.change_visibility(&url, receipt, secs_up(visibility, MAX_VISIBILITY_SECS))
            .await?;
        Ok(())
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let mut all = Vec::new();
        for owner in self.known_queues() {
            let dlq_url = self.dlq_url(&owner).await?;
            let held = self.hold(&owner, &dlq_url).await?;
            self.release(&dlq_url, &held).await;
            all.extend(held.into_iter().map(|h| h.letter));
        }
        all.sort_by(|a, b| (a.dead_at, &a.id).cmp(&(b.dead_at, &b.id)));
        all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(all)
    }

    async fn replay(&self, ids: Option<Vec<String>>) -> Result<Vec<String>, StoreError> {
        let moved = Mutex::new(Vec::new());
        for owner in self.known_queues() {
            let main_url = self.queue_url(&owner).await?;
            let (ids, moved, main_url) = (&ids, &moved, &main_url);
            self.for_each_dead_letter(&owner, |dlq_url, h| async move {
                if ids.as_ref().is_some_and(|ids| !ids.contains(&h.letter.id)) {
                    return Ok(Some(h));
                }
                // Back to the main queue as a new message (fresh receive count), then out
                // of the dead-letter queue.
                self.client
                    .send_message()
                    .queue_url(main_url)
                    .message_body(&h.letter.body)
                    .send()
                    .await
                    .map_err(sdk_err)?;
                self.delete(&dlq_url, &h.receipt).await?;
                lock(moved).push(h.letter.id);
                Ok(None)
            })
            .await?;
        }
        Ok(moved.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    async fn purge_dead_letters(&self, before: Timestamp) -> Result<u64, StoreError> {
        let purged = Mutex::new(0u64);
        for owner in self.known_queues() {
            let purged = &purged;
            self.for_each_dead_letter(&owner, |dlq_url, h| async move {
                if h.letter.dead_at >= before {
                    return Ok(Some(h));
                }
                if self.delete(&dlq_url, &h.receipt).await? {
                    *lock(purged) += 1;
                }
                Ok(None)
            })
            .await?;
        }
        Ok(purged.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    async fn depth(&self, queue: &str) -> Result<QueueDepth, StoreError> {
        let url = self.queue_url(queue).await?;
        let [visible, delayed, not_visible] = self
            .numbers(
                &url,
                [
                    QueueAttributeName::ApproximateNumberOfMessages,
                    QueueAttributeName::ApproximateNumberOfMessagesDelayed,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ],
            )
            .await?;
        Ok(QueueDepth {
            waiting: visible + delayed,
            in_flight: not_visible,
            oldest_age_ms: 0,
        })
    }

    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        for owner in self.known_queues() {
            let url = self.dlq_url(&owner).await?;
            let counts = self
                .numbers(
                    &url,
                    [
                        QueueAttributeName::ApproximateNumberOfMessages,
                        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
                    ],
                )
                .await?;
            n += counts.iter().sum::<u64>();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_whole_seconds() {
        assert_eq!(secs_up(Duration::ZERO, 900), 0);
        assert_eq!(secs_up(Duration::from_millis(1), 900), 1);
        assert_eq!(secs_up(Duration::from_millis(1000), 900), 1);
        assert_eq!(secs_up(Duration::from_millis(1001), 900), 2);
        assert_eq!(secs_up(Duration::from_secs(5000), 900), 900);
        assert_eq!(secs_up(Duration::MAX, 20), 20);
    }

    #[test]
    fn ids_carry_the_receive_count() {
        assert_eq!(parse_id("3:abc:def"), (3, "abc:def"));
        assert_eq!(parse_id("abc"), (0, "abc"));
        assert_eq!(parse_id("x:abc"), (0, "x:abc"));
    }

    #[test]
    fn error_text_is_bounded_and_valid() {
        assert_eq!(error_text(""), "(no error message)");
        assert_eq!(error_text("a\u{0}b"), "a\u{FFFD}b");
        assert_eq!(
            error_text(&"x".repeat(5000)).chars().count(),
            MAX_ERROR_CHARS
        );
    }
}
