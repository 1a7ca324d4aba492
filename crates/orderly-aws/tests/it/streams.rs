//! The DynamoDB stream relays on the moto emulator: the events stream as the event
//! outbox (the outbox contract), the orders stream as the intake of the processing queue,
//! checkpoints that survive a restart, and the Lambda event shape read the same way as the
//! Streams API. The test script starts moto and sets `ORDERLY_TEST_AWS_ENDPOINT`.

#![cfg(feature = "streams")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, Record, ShardIteratorType};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orderly_aws::dynamo::stream::{ChangeKind, event_of, processing_request, record_from_lambda};
use orderly_aws::dynamo::{DynamoStore, Tables, create_tables};
use orderly_aws::streams::{
    StreamOutbox, StreamReader, record_from_stream, relay_orders, run_orders_relay,
};
use orderly_aws::{AwsSettings, sdk_config};
use orderly_core::ports::{
    EventOutbox, NewOrder, OrderStore, Queue, StepRecord, Transition, TransitionOutcome,
};
use orderly_core::{
    DomainEvent, EventType, Order, OrderFilter, OrderId, OrderStatus, Page, StoreError,
};
use orderly_testkit::memory::MemoryStore;
use orderly_testkit::processing::outbox_contract;
use orderly_testkit::{new_order, order};
use serde_json::{Value, json};

static NEXT: AtomicUsize = AtomicUsize::new(0);
const QUEUE: &str = "orders";
const NO_WAIT: Duration = Duration::ZERO;

fn endpoint() -> String {
    std::env::var(orderly_config::env::harness::TEST_AWS_ENDPOINT).expect(
        "ORDERLY_TEST_AWS_ENDPOINT is not set: run scripts/test.sh, which starts the moto \
         emulator, or start `moto_server` yourself and point this variable at it",
    )
}

/// A store on freshly created tables with a unique prefix, and a DynamoDB Streams client.
async fn fresh() -> (DynamoStore, aws_sdk_dynamodbstreams::Client) {
    let settings = AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint()),
    };
    let config = sdk_config(&settings).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tables = Tables::with_prefix(&format!("st{}-{n}", std::process::id()));
    create_tables(&client, &tables)
        .await
        .expect("create tables");
    (
        DynamoStore::new(client, tables),
        aws_sdk_dynamodbstreams::Client::new(&config),
    )
}

/// The order store and the stream outbox in one value, as the outbox contract wants.
struct OutboxStore {
    store: DynamoStore,
    outbox: StreamOutbox,
}

#[async_trait]
impl OrderStore for OutboxStore {
    async fn create(&self, new: NewOrder) -> Result<(), StoreError> {
        self.store.create(new).await
    }
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.store.get(id).await
    }
    async fn list(
        &self,
        filter: &OrderFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        self.store.list(filter, limit, cursor).await
    }
    async fn transition(&self, t: Transition) -> Result<TransitionOutcome, StoreError> {
        self.store.transition(t).await
    }
    async fn events(&self, id: OrderId) -> Result<Vec<DomainEvent>, StoreError> {
        self.store.events(id).await
    }
    async fn append_event(
        &self,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<bool, StoreError> {
        self.store.append_event(event, step).await
    }
}

#[async_trait]
impl EventOutbox for OutboxStore {
    async fn unpublished(
        &self,
        limit: u32,
        wait: Duration,
    ) -> Result<Vec<(i64, DomainEvent)>, StoreError> {
        self.outbox.unpublished(limit, wait).await
    }
    async fn mark_published(&self, position: i64) -> Result<(), StoreError> {
        self.outbox.mark_published(position).await
    }
}

fn transition(o: &Order, from: OrderStatus, to: OrderStatus, enqueue: bool) -> Transition {
    let at = o.created_at.plus_secs(1);
    let kind = match to {
        OrderStatus::Cancelled => EventType::OrderCancelled,
        OrderStatus::Confirmed => EventType::OrderConfirmed,
        OrderStatus::Fulfilled => EventType::FulfillmentCompleted,
        _ => EventType::OrderFailed,
    };
    Transition {
        order_id: o.order_id,
        from,
        to,
        at,
        event: DomainEvent::new(o.order_id, kind, at, json!({})),
        failure_reason: None,
        tracking_id: None,
        enqueue_processing: enqueue,
        step: None,
    }
}

async fn apply(store: &DynamoStore, t: Transition) {
    match store.transition(t).await.unwrap() {
        TransitionOutcome::Applied(_) => {}
        other => panic!("transition not applied: {other:?}"),
    }
}

/// The order ids of the processing messages waiting on the queue (and acks them).
async fn drain(queue: &MemoryStore) -> Vec<OrderId> {
    let msgs = queue
        .receive(QUEUE, 100, Duration::from_secs(30), NO_WAIT)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for m in msgs {
        let v: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(
            v.as_object().unwrap().len(),
            1,
            "the body is {{\"orderId\"}}: {}",
            m.body
        );
        ids.push(v["orderId"].as_str().unwrap().parse().unwrap());
        queue.ack(QUEUE, &m.id).await.unwrap();
    }
    ids
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn stream_outbox_contract() {
    outbox_contract(|| async {
        let (store, streams) = fresh().await;
        OutboxStore {
            outbox: StreamOutbox::new(StreamReader::events(&store, streams)),
            store,
        }
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn the_outbox_waits_for_an_event() {
    let (store, streams) = fresh().await;
    let outbox = StreamOutbox::new(StreamReader::events(&store, streams));
    assert!(outbox.unpublished(10, NO_WAIT).await.unwrap().is_empty());
    let a = order("u", 0);
    let writer = {
        let store = store.clone();
        let a = a.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            store.create(new_order(&a)).await.unwrap();
        })
    };
    let started = Instant::now();
    let got = outbox
        .unpublished(10, Duration::from_secs(10))
        .await
        .unwrap();
    writer.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "woke up late");
    let kinds: Vec<_> = got
        .iter()
        .map(|(_, e)| (e.order_id, e.detail_type))
        .collect();
    assert_eq!(kinds, [(a.order_id, EventType::OrderCreated)]);
    assert_eq!(got[0].1, DomainEvent::order_created(&a));
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn a_waiting_outbox_sees_events_recorded_after_a_cancelled_transaction() {
    let (store, streams) = fresh().await;
    let outbox = StreamOutbox::new(StreamReader::events(&store, streams));
    let a = order("u", 0);
    store.create(new_order(&a)).await.unwrap();
    let first = outbox.unpublished(10, NO_WAIT).await.unwrap();
    outbox.mark_published(first[0].0).await.unwrap();
    let writer = {
        let store = store.clone();
        let a = a.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            // Recorded already: the transaction is cancelled (moto restores the table).
            let again = DomainEvent::order_created(&a);
            assert!(!store.append_event(again, None).await.unwrap());
            tokio::time::sleep(Duration::from_millis(100)).await;
            let placed =
                DomainEvent::new(a.order_id, EventType::OrderPlaced, a.created_at, json!({}));
            assert!(store.append_event(placed, None).await.unwrap());
        })
    };
    let started = Instant::now();
    let got = outbox
        .unpublished(10, Duration::from_secs(20))
        .await
        .unwrap();
    writer.await.unwrap();
    let kinds: Vec<_> = got.iter().map(|(_, e)| e.detail_type).collect();
    assert_eq!(kinds, [EventType::OrderPlaced]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "seen late: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn relay_queues_created_orders_and_enqueueing_changes_only() {
    let (store, streams) = fresh().await;
    let reader = StreamReader::orders(&store, streams);
    let queue = MemoryStore::new();
    let a = order("u", 0);
    let b = order("u", 1);
    let c = order("u", 2);
    for o in [&a, &b, &c] {
        store.create(new_order(o)).await.unwrap();
    }
    // A status change that queues nothing, and a cancellation that queues compensations.
    apply(
        &store,
        transition(&a, OrderStatus::Pending, OrderStatus::Confirmed, false),
    )
    .await;
    apply(
        &store,
        transition(&b, OrderStatus::Pending, OrderStatus::Cancelled, true),
    )
    .await;
    // A transition refused (stale) writes nothing and queues nothing.
    let stale = store
        .transition(transition(
            &b,
            OrderStatus::Pending,
            OrderStatus::Cancelled,
            true,
        ))
        .await
        .unwrap();
    assert!(matches!(stale, TransitionOutcome::Stale(_)), "{stale:?}");

    let sent = relay_orders(&reader, &queue, QUEUE, 100, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(sent, 4);
    assert_eq!(
        drain(&queue).await,
        [a.order_id, b.order_id, c.order_id, b.order_id]
    );
    let body = {
        store.create(new_order(&order("u", 3))).await.unwrap();
        relay_orders(&reader, &queue, QUEUE, 100, NO_WAIT)
            .await
            .unwrap();
        queue
            .receive(QUEUE, 10, Duration::from_secs(30), NO_WAIT)
            .await
            .unwrap()
            .remove(0)
            .body
    };
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, json!({ "orderId": v["orderId"] }).to_string());

    // Committed: nothing is relayed twice.
    assert_eq!(
        relay_orders(&reader, &queue, QUEUE, 100, NO_WAIT)
            .await
            .unwrap(),
        0
    );
    // A later cancellation of the confirmed order queues it again, once.
    apply(
        &store,
        transition(&a, OrderStatus::Confirmed, OrderStatus::Cancelled, true),
    )
    .await;
    assert_eq!(
        relay_orders(&reader, &queue, QUEUE, 100, NO_WAIT)
            .await
            .unwrap(),
        1
    );
    let ids = drain(&queue).await;
    assert_eq!(ids[ids.len() - 1], a.order_id);
    assert_eq!(
        relay_orders(&reader, &queue, QUEUE, 100, NO_WAIT)
            .await
            .unwrap(),
        0
    );
}

/// A queue whose `send` fails once, at the given call (1-based).
struct FailingOnce {
    inner: MemoryStore,
    calls: AtomicUsize,
    fail_at: usize,
}

#[async_trait]
impl Queue for FailingOnce {
    async fn send(&self, queue: &str, body: &str, delay: Duration) -> Result<(), StoreError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(StoreError::Unavailable("queue down".into()));
        }
        self.inner.send(queue, body, delay).await
    }
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<orderly_core::ports::Message>, StoreError> {
        self.inner.receive(queue, max, visibility, wait).await
    }
    async fn ack(&self, queue: &str, id: &str) -> Result<(), StoreError> {
        self.inner.ack(queue, id).await
    }
    async fn nack(
        &self,
        queue: &str,
        id: &str,
        error: &str,
        retry_after: Duration,
    ) -> Result<orderly_core::ports::NackOutcome, StoreError> {
        self.inner.nack(queue, id, error, retry_after).await
    }
    async fn extend(&self, queue: &str, id: &str, visibility: Duration) -> Result<(), StoreError> {
        self.inner.extend(queue, id, visibility).await
    }
    async fn dead_letters(
        &self,
        limit: u32,
    ) -> Result<Vec<orderly_core::ports::DeadLetter>, StoreError> {
        self.inner.dead_letters(limit).await
    }
    async fn replay(&self, ids: Option<Vec<String>>) -> Result<Vec<String>, StoreError> {
        self.inner.replay(ids).await
    }
    async fn purge_dead_letters(&self, before: orderly_core::Timestamp) -> Result<u64, StoreError> {
        self.inner.purge_dead_letters(before).await
    }
    async fn depth(&self, queue: &str) -> Result<orderly_core::ports::QueueDepth, StoreError> {
        self.inner.depth(queue).await
    }
    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.inner.dead_letter_count().await
    }
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn a_failed_send_is_relayed_again_and_what_was_sent_is_not() {
    let (store, streams) = fresh().await;
    let reader = StreamReader::orders(&store, streams);
    let queue = FailingOnce {
        inner: MemoryStore::new(),
        calls: AtomicUsize::new(0),
        fail_at: 2,
    };
    let orders: Vec<Order> = (0..3).map(|i| order("u", i)).collect();
    for o in &orders {
        store.create(new_order(o)).await.unwrap();
    }
    let err = relay_orders(&reader, &queue, QUEUE, 100, NO_WAIT)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        relay_orders(&reader, &queue, QUEUE, 100, NO_WAIT)
            .await
            .unwrap(),
        2
    );
    let want: Vec<_> = orders.iter().map(|o| o.order_id).collect();
    assert_eq!(drain(&queue.inner).await, want, "each exactly once");
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn relay_passes_respect_the_batch_size() {
    let (store, streams) = fresh().await;
    let reader = StreamReader::orders(&store, streams);
    let queue = MemoryStore::new();
    let orders: Vec<Order> = (0..5).map(|i| order("u", i)).collect();
    for o in &orders {
        store.create(new_order(o)).await.unwrap();
    }
    assert_eq!(
        relay_orders(&reader, &queue, QUEUE, 2, NO_WAIT)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        relay_orders(&reader, &queue, QUEUE, 2, NO_WAIT)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        relay_orders(&reader, &queue, QUEUE, 2, NO_WAIT)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        relay_orders(&reader, &queue, QUEUE, 2, NO_WAIT)
            .await
            .unwrap(),
        0
    );
    let want: Vec<_> = orders.iter().map(|o| o.order_id).collect();
    assert_eq!(drain(&queue).await, want);
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn a_restarted_reader_resumes_from_its_checkpoint() {
    let (store, streams) = fresh().await;
    let orders: Vec<Order> = (0..3).map(|i| order("u", i)).collect();
    for o in &orders {
        store.create(new_order(o)).await.unwrap();
    }
    let id_of = |r: &orderly_aws::dynamo::stream::ChangeRecord| processing_request(r).unwrap();

    let first = StreamReader::orders(&store, streams.clone());
    let got = first.read(2, NO_WAIT).await.unwrap();
    let ids: Vec<_> = got.iter().map(|(_, r)| id_of(r)).collect();
    assert_eq!(ids, [orders[0].order_id, orders[1].order_id]);
    assert!(got[0].0 < got[1].0, "positions increase");
    first.commit(got[0].0).await.unwrap();
    // Handed out but not committed: read again by the next call.
    let again = first.read(10, NO_WAIT).await.unwrap();
    let ids: Vec<_> = again.iter().map(|(_, r)| id_of(r)).collect();
    assert_eq!(ids, [orders[1].order_id, orders[2].order_id]);
    assert!(again[0].0 > got[1].0, "positions keep increasing");
    drop(first); // "crashes" without committing more

    let second = StreamReader::orders(&store, streams.clone());
    let resumed = second.read(10, NO_WAIT).await.unwrap();
    let ids: Vec<_> = resumed.iter().map(|(_, r)| id_of(r)).collect();
    assert_eq!(
        ids,
        [orders[1].order_id, orders[2].order_id],
        "nothing lost, nothing committed read again"
    );
    second.commit(resumed[1].0).await.unwrap();
    second.commit(resumed[0].0).await.unwrap(); // older: never goes back
    assert!(second.read(10, NO_WAIT).await.unwrap().is_empty());

    // The checkpoint is one item per shard in the saga table.
    let items = store
        .client()
        .query()
        .table_name(&store.tables().saga)
        .key_condition_expression("orderId = :o")
        .expression_attribute_values(
            ":o",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "~stream#{}",
                store.tables().orders
            )),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(items.items().len(), 1, "{:?}", items.items());
    assert_eq!(
        items.items()[0].get("seq"),
        Some(&aws_sdk_dynamodb::types::AttributeValue::S(
            resumed[1].1.sequence_number.clone()
        ))
    );
    assert_eq!(
        items.items()[0].get("finished"),
        Some(&aws_sdk_dynamodb::types::AttributeValue::Bool(false))
    );

    let d = order("u", 3);
    store.create(new_order(&d)).await.unwrap();
    let third = StreamReader::orders(&store, streams);
    let after = third.read(10, NO_WAIT).await.unwrap();
    let ids: Vec<_> = after.iter().map(|(_, r)| id_of(r)).collect();
    assert_eq!(ids, [d.order_id]);
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn the_relay_loop_runs_until_shutdown() {
    let (store, streams) = fresh().await;
    let queue = Arc::new(MemoryStore::new());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(run_orders_relay(
        StreamReader::orders(&store, streams),
        queue.clone(),
        QUEUE,
        shutdown,
    ));
    let a = order("u", 0);
    store.create(new_order(&a)).await.unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    while got.is_empty() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = drain(&queue).await;
    }
    assert_eq!(got, [a.order_id]);
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), relay)
        .await
        .expect("the relay stops on shutdown")
        .unwrap();
}

// ----- the Lambda event shape --------------------------------------------------------------

/// An attribute value in DynamoDB JSON, as Lambda serialises stream records.
fn value_json(v: &StreamValue) -> Value {
    match v {
        StreamValue::S(s) => json!({ "S": s }),
        StreamValue::N(n) => json!({ "N": n }),
        StreamValue::Bool(b) => json!({ "BOOL": b }),
        StreamValue::Null(b) => json!({ "NULL": b }),
        StreamValue::B(b) => json!({ "B": STANDARD.encode(b.as_ref()) }),
        StreamValue::Ss(s) => json!({ "SS": s }),
        StreamValue::Ns(s) => json!({ "NS": s }),
        StreamValue::Bs(s) => {
            json!({ "BS": s.iter().map(|b| STANDARD.encode(b.as_ref())).collect::<Vec<_>>() })
        }
        StreamValue::M(m) => json!({ "M": item_json(m) }),
        StreamValue::L(l) => json!({ "L": l.iter().map(value_json).collect::<Vec<_>>() }),
        other => panic!("unexpected attribute value {other:?}"),
    }
}

fn item_json(m: &HashMap<String, StreamValue>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), value_json(v))).collect())
}

/// A Streams API record as the element of a Lambda event's `Records` it becomes.
fn lambda_record(r: &Record, stream_arn: &str) -> Value {
    let d = r.dynamodb().unwrap();
    let mut dynamodb = json!({
        "Keys": item_json(d.keys().unwrap()),
        "SequenceNumber": d.sequence_number().unwrap(),
        "SizeBytes": d.size_bytes().unwrap_or(0),
        "StreamViewType": d.stream_view_type().map(|v| v.as_str()).unwrap_or("NEW_AND_OLD_IMAGES"),
    });
    if let Some(t) = d.approximate_creation_date_time() {
        dynamodb["ApproximateCreationDateTime"] = json!(t.secs());
    }
    if let Some(i) = d.new_image() {
        dynamodb["NewImage"] = item_json(i);
    }
    if let Some(i) = d.old_image() {
        dynamodb["OldImage"] = item_json(i);
    }
    json!({
        "eventID": r.event_id().unwrap_or("0"),
        "eventName": r.event_name().unwrap().as_str(),
        "eventVersion": r.event_version().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": r.aws_region().unwrap_or("us-east-1"),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

/// Every record of a table's stream, straight from the Streams API (no checkpoints), and
/// the stream's ARN.
async fn raw_records(
    store: &DynamoStore,
    streams: &aws_sdk_dynamodbstreams::Client,
    table: &str,
) -> (Vec<Record>, String) {
    let arn = store
        .client()
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table()
        .unwrap()
        .latest_stream_arn()
        .unwrap()
        .to_owned();
    let desc = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for shard in desc.stream_description().unwrap().shards() {
        let mut it = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id().unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_owned);
        while let Some(i) = it.take() {
            let page = streams
                .get_records()
                .shard_iterator(i)
                .send()
                .await
                .unwrap();
            if page.records().is_empty() {
                break;
            }
            out.extend(page.records().iter().cloned());
            it = page.next_shard_iterator().map(str::to_owned);
        }
    }
    (out, arn)
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn lambda_event_records_read_like_the_streams_api() {
    let (store, streams) = fresh().await;
    let a = order("u", 0);
    let b = order("u", 1);
    store.create(new_order(&a)).await.unwrap();
    store.create(new_order(&b)).await.unwrap();
    apply(
        &store,
        transition(&a, OrderStatus::Pending, OrderStatus::Confirmed, false),
    )
    .await;
    apply(
        &store,
        transition(&a, OrderStatus::Confirmed, OrderStatus::Cancelled, true),
    )
    .await;
    apply(
        &store,
        transition(&b, OrderStatus::Pending, OrderStatus::Cancelled, true),
    )
    .await;

    // Orders: the Lambda event of the raw records, decoded, is what the reader reads.
    let (raw, arn) = raw_records(&store, &streams, &store.tables().orders).await;
    let event =
        json!({ "Records": raw.iter().map(|r| lambda_record(r, &arn)).collect::<Vec<_>>() });
    let from_lambda: Vec<_> = event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| record_from_lambda(r).unwrap())
        .collect();
    let reader = StreamReader::orders(&store, streams.clone());
    let from_reader: Vec<_> = reader
        .read(100, NO_WAIT)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(from_lambda, from_reader);
    for (r, l) in raw.iter().zip(&from_lambda) {
        assert_eq!(&record_from_stream(r).unwrap(), l);
    }
    let kinds: Vec<_> = from_lambda.iter().map(|r| r.kind).collect();
    use ChangeKind::*;
    assert_eq!(kinds, [Insert, Insert, Modify, Modify, Modify]);
    assert!(
        from_lambda[2].old_image.is_some(),
        "the orders stream has old images"
    );
    let lambda_requests: Vec<_> = from_lambda.iter().map(processing_request).collect();
    let reader_requests: Vec<_> = from_reader.iter().map(processing_request).collect();
    assert_eq!(lambda_requests, reader_requests);
    assert_eq!(
        lambda_requests,
        [
            Some(a.order_id),
            Some(b.order_id),
            None,
            Some(a.order_id),
            Some(b.order_id)
        ]
    );

    // Events: the same events either way, markers skipped.
    let (raw, arn) = raw_records(&store, &streams, &store.tables().events).await;
    let lambda_events: Vec<_> = raw
        .iter()
        .map(|r| record_from_lambda(&lambda_record(r, &arn)).unwrap())
        .filter_map(|r| event_of(&r).unwrap())
        .collect();
    let outbox = StreamOutbox::new(StreamReader::events(&store, streams));
    let outbox_events: Vec<_> = outbox
        .unpublished(100, NO_WAIT)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(lambda_events, outbox_events);
    assert_eq!(raw.len(), 2 * outbox_events.len(), "one marker per event");
    let kinds: Vec<_> = lambda_events
        .iter()
        .map(|e| (e.order_id, e.detail_type))
        .collect();
    assert_eq!(
        kinds,
        [
            (a.order_id, EventType::OrderCreated),
            (b.order_id, EventType::OrderCreated),
            (a.order_id, EventType::OrderConfirmed),
            (a.order_id, EventType::OrderCancelled),
            (b.order_id, EventType::OrderCancelled),
        ]
    );
    let stored = store.events(a.order_id).await.unwrap();
    assert_eq!(
        stored,
        lambda_events
            .iter()
            .filter(|e| e.order_id == a.order_id)
            .cloned()
            .collect::<Vec<_>>()
    );
}

// ----- shard lineage (moto has one shard that never closes: a fake Streams API) -----------

/// A DynamoDB Streams API with a shard tree: `A` (closed) -> `B` (open, child of `A`) and
/// `C` (open root). Serves DescribeStream (two shards per page), GetShardIterator and
/// GetRecords over HTTP/1.1 with the JSON protocol, and counts the iterators asked per
/// shard.
/// One fake shard: id, parent, whether it is closed, its records as (sequence number,
/// order id).
type FakeShard = (
    &'static str,
    Option<&'static str>,
    bool,
    Vec<(String, OrderId)>,
);

#[derive(Debug, Default)]
struct FakeStreams {
    shards: Vec<FakeShard>,
    iterators: HashMap<String, usize>,
}

impl FakeStreams {
    fn answer(&mut self, target: &str, body: &Value) -> Value {
        match target {
            "DescribeStream" => {
                let start = body["ExclusiveStartShardId"].as_str();
                let from = start
                    .and_then(|s| self.shards.iter().position(|x| x.0 == s))
                    .map_or(0, |i| i + 1);
                let page: Vec<_> = self.shards.iter().skip(from).take(2).collect();
                let shards: Vec<Value> = page
                    .iter()
                    .map(|(id, parent, closed, recs)| {
                        let mut range = json!({ "StartingSequenceNumber": "1" });
                        if *closed {
                            range["EndingSequenceNumber"] =
                                json!(recs.last().map_or("1".to_owned(), |r| r.0.clone()));
                        }
                        let mut s = json!({ "ShardId": id, "SequenceNumberRange": range });
                        if let Some(p) = parent {
                            s["ParentShardId"] = json!(p);
                        }
                        s
                    })
                    .collect();
                let mut desc = json!({
                    "StreamArn": body["StreamArn"],
                    "StreamStatus": "ENABLED",
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                    "TableName": "fake",
                    "Shards": shards,
                });
                if from + page.len() < self.shards.len() {
                    desc["LastEvaluatedShardId"] = json!(page.last().unwrap().0);
                }
                json!({ "StreamDescription": desc })
            }
            "GetShardIterator" => {
                let shard = body["ShardId"].as_str().unwrap();
                *self.iterators.entry(shard.to_owned()).or_default() += 1;
                let recs = &self.shards.iter().find(|s| s.0 == shard).unwrap().3;
                let at = match body["ShardIteratorType"].as_str().unwrap() {
                    "TRIM_HORIZON" => 0,
                    "AFTER_SEQUENCE_NUMBER" => {
                        let seq = body["SequenceNumber"].as_str().unwrap();
                        recs.iter().position(|r| r.0 == seq).unwrap() + 1
                    }
                    other => panic!("unexpected iterator type {other}"),
                };
                json!({ "ShardIterator": format!("{shard}|{at}") })
            }
            "GetRecords" => {
                let it = body["ShardIterator"].as_str().unwrap();
                let (shard, at) = it.split_once('|').unwrap();
                let at: usize = at.parse().unwrap();
                let limit = body["Limit"].as_u64().unwrap_or(1000) as usize;
                let (_, _, closed, recs) = self.shards.iter().find(|s| s.0 == shard).unwrap();
                let page: Vec<Value> = recs
                    .iter()
                    .skip(at)
                    .take(limit)
                    .map(|(seq, id)| {
                        json!({
                            "eventID": format!("{shard}-{seq}"),
                            "eventName": "INSERT",
                            "eventVersion": "1.1",
                            "eventSource": "aws:dynamodb",
                            "awsRegion": "us-east-1",
                            "dynamodb": {
                                "ApproximateCreationDateTime": 1767225600,
                                "Keys": { "orderId": { "S": id.to_string() } },
                                "NewImage": { "orderId": { "S": id.to_string() } },
                                "SequenceNumber": seq,
                                "SizeBytes": 60,
                                "StreamViewType": "NEW_AND_OLD_IMAGES"
                            }
                        })
                    })
                    .collect();
                let next = at + page.len();
                let mut out = json!({ "Records": page });
                if !(*closed && next >= recs.len()) {
                    out["NextShardIterator"] = json!(format!("{shard}|{next}"));
                }
                out
            }
            other => panic!("unexpected call {other}"),
        }
    }
}

/// Serves `fake` on loopback; answers its endpoint URL.
async fn serve(fake: Arc<std::sync::Mutex<FakeStreams>>) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            let fake = fake.clone();
            tokio::spawn(async move {
                let mut conn = BufReader::new(conn);
                loop {
                    let (mut length, mut target) = (0, String::new());
                    let mut line = String::new();
                    if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        conn.read_line(&mut line).await.unwrap();
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        let (name, value) = l.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "x-amz-target" => target = value.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    conn.read_exact(&mut body).await.unwrap();
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    let op = target.rsplit('.').next().unwrap().to_owned();
                    let answer = fake.lock().unwrap().answer(&op, &body).to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n\
                         Content-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    conn.get_mut().write_all(response.as_bytes()).await.unwrap();
                }
            });
        }
    });
    url
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn children_are_read_after_their_parents_and_finished_shards_are_skipped() {
    let (store, _) = fresh().await;
    let ids: Vec<OrderId> = (0..5).map(|i| order("u", i).order_id).collect();
    // Sequence numbers of different lengths, as DynamoDB's are: "1000" comes after "900".
    let fake = Arc::new(std::sync::Mutex::new(FakeStreams {
        shards: vec![
            ("B", Some("A"), false, vec![("1100".into(), ids[2])]),
            ("C", None, false, vec![("950".into(), ids[3])]),
            (
                "A",
                None,
                true,
                vec![("900".into(), ids[0]), ("1000".into(), ids[1])],
            ),
        ],
        ..FakeStreams::default()
    }));
    let url = serve(fake.clone()).await;
    let config = sdk_config(&AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint()),
    })
    .await;
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&config)
            .endpoint_url(url)
            .build(),
    );
    let reader = || StreamReader::orders(&store, streams.clone());
    let order_of = |got: &[(i64, orderly_aws::dynamo::stream::ChangeRecord)]| -> Vec<OrderId> {
        got.iter()
            .map(|(_, r)| processing_request(r).unwrap())
            .collect()
    };
    let checkpoint = |shard: &'static str| {
        let store = store.clone();
        async move {
            store
                .client()
                .get_item()
                .table_name(&store.tables().saga)
                .key(
                    "orderId",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!(
                        "~stream#{}",
                        store.tables().orders
                    )),
                )
                .key(
                    "sk",
                    aws_sdk_dynamodb::types::AttributeValue::S(shard.into()),
                )
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item()
                .map(|i| {
                    let seq = match i.get("seq") {
                        Some(aws_sdk_dynamodb::types::AttributeValue::S(s)) => s.clone(),
                        _ => String::new(),
                    };
                    let finished = matches!(
                        i.get("finished"),
                        Some(aws_sdk_dynamodb::types::AttributeValue::Bool(true))
                    );
                    (seq, finished)
                })
        }
    };

    // The first two records: A's (listed after its child; C may come first or between).
    let first = reader();
    let got = first.read(2, NO_WAIT).await.unwrap();
    assert_eq!(got.len(), 2);
    let a1 = got.iter().position(|(_, r)| r.sequence_number == "900");
    assert!(a1.is_some(), "A is read before its child: {got:?}");
    assert!(!order_of(&got).contains(&ids[2]), "B waits for A: {got:?}");
    first.commit(got[a1.unwrap()].0).await.unwrap();
    assert_eq!(checkpoint("A").await, Some(("900".into(), false)));

    // All the rest, B only after A's last record.
    let rest = first.read(100, NO_WAIT).await.unwrap();
    let seqs: Vec<&str> = rest
        .iter()
        .map(|(_, r)| r.sequence_number.as_str())
        .collect();
    let pos = |s: &str| seqs.iter().position(|x| *x == s).unwrap();
    // Committing A's first record committed whatever was handed out before it (C's).
    let committed = a1.unwrap() + 1;
    assert_eq!(rest.len(), 4 - committed, "{seqs:?}");
    assert!(pos("1000") < pos("1100"), "{seqs:?}");
    // Committing the child commits its parent to its end, and finishes it.
    first.commit(rest[pos("1100")].0).await.unwrap();
    assert_eq!(checkpoint("A").await, Some(("1000".into(), true)));
    assert_eq!(checkpoint("B").await, Some(("1100".into(), false)));
    first.commit(rest.last().unwrap().0).await.unwrap();
    assert_eq!(checkpoint("C").await, Some(("950".into(), false)));

    // A restarted reader finds nothing new and never opens the finished shard again.
    let iterators_of_a = fake.lock().unwrap().iterators["A"];
    let second = reader();
    assert!(second.read(100, NO_WAIT).await.unwrap().is_empty());
    assert_eq!(fake.lock().unwrap().iterators["A"], iterators_of_a);

    // A new record on the child: only it is read.
    fake.lock().unwrap().shards[0]
        .3
        .push(("1200".into(), ids[4]));
    let got = second.read(100, NO_WAIT).await.unwrap();
    assert_eq!(order_of(&got), [ids[4]]);
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn a_parent_that_ends_with_nothing_new_is_finished_at_once() {
    let (store, _) = fresh().await;
    let ids: Vec<OrderId> = (0..3).map(|i| order("u", i).order_id).collect();
    let fake = Arc::new(std::sync::Mutex::new(FakeStreams {
        shards: vec![
            (
                "P",
                None,
                true,
                vec![("10".into(), ids[0]), ("11".into(), ids[1])],
            ),
            ("Q", Some("P"), false, vec![("12".into(), ids[2])]),
        ],
        ..FakeStreams::default()
    }));
    let url = serve(fake.clone()).await;
    let config = sdk_config(&AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint()),
    })
    .await;
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&config)
            .endpoint_url(url)
            .build(),
    );
    let first = StreamReader::orders(&store, streams.clone());
    // Exactly P's records: whether P ended is not known yet.
    let got = first.read(2, NO_WAIT).await.unwrap();
    let seqs: Vec<_> = got.iter().map(|(_, r)| r.sequence_number.clone()).collect();
    assert_eq!(seqs, ["10", "11"]);
    first.commit(got[1].0).await.unwrap();
    drop(first);
    // P ends with nothing after its checkpoint: finished without a commit; Q follows.
    let second = StreamReader::orders(&store, streams.clone());
    let got = second.read(10, NO_WAIT).await.unwrap();
    let seqs: Vec<_> = got.iter().map(|(_, r)| r.sequence_number.clone()).collect();
    assert_eq!(seqs, ["12"]);
    drop(second);
    let before = fake.lock().unwrap().iterators["P"];
    let third = StreamReader::orders(&store, streams);
    let got = third.read(10, NO_WAIT).await.unwrap();
    assert_eq!(got.len(), 1, "Q's record is not committed: read again");
    assert_eq!(
        fake.lock().unwrap().iterators["P"],
        before,
        "P is finished for good"
    );
}
