//! Reading DynamoDB streams from a long-running process: the local relays of
//! `orderly serve --backend aws`. (In Lambda the event source mapping reads the streams and
//! hands the records to the function, which uses [`crate::dynamo::stream`] directly.)
//!
//! - [`StreamReader`] reads one table's stream, shard by shard in lineage order (a child
//!   shard only after its parent is read to its end), and keeps per-shard checkpoints in
//!   the saga table (PK `orderId` = `~stream#<table>`, SK `sk` = shard id, attributes
//!   `seq` and `finished`), so a restarted process resumes where the last one committed.
//!   Delivery is at least once: what was read but not committed is read again.
//! - [`StreamOutbox`] is the [`EventOutbox`] of the events table's stream: the audit log
//!   is the outbox, so recording an event and having it published are one write.
//! - [`relay_orders`] / [`run_orders_relay`] turn the orders table's stream into
//!   processing messages (`{"orderId":...}`): an order and its processing request are one
//!   write, never a write-then-send.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::{
    AttributeValue as StreamValue, OperationType, Record, ShardIteratorType,
};
use orderly_core::ports::{EventOutbox, Queue};
use orderly_core::{DomainEvent, StoreError};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

use crate::dynamo::stream::{
    ChangeKind, ChangeRecord, Item, Relayed, Stream, event_of, relay_change, seq_cmp,
};
use crate::dynamo::{DynamoStore, s, sdk_err};

/// How often a reader waiting for records polls the stream.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Records per relay pass.
pub const RELAY_BATCH: usize = 100;
/// How long one relay pass waits for records.
pub const RELAY_WAIT: Duration = Duration::from_secs(1);
/// Prefix of the partition key of a table's checkpoints in the saga table.
pub const CHECKPOINT_PREFIX: &str = "~stream#";

/// Every this many polls of one `read`, a kept iterator that finds nothing is
/// double-checked with a fresh one (about once a second).
const RECHECK_EVERY: u64 = 5;
/// GetRecords returns at most this many records per call.
const PAGE: i32 = 1000;
/// The shard list is read again this often (and whenever a shard ends).
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// Positions handed out and not committed that are remembered (a consumer that never
/// commits must not grow memory without bound); the oldest are forgotten first.
const MAX_HANDED: usize = 100_000;

/// Where a shard was read to, as committed (or, while reading, as read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Checkpoint {
    /// The last sequence number done; `None`: nothing yet (read from the trim horizon).
    seq: Option<String>,
    /// The shard is closed and read to its end.
    finished: bool,
}

#[derive(Debug, Clone)]
struct ShardInfo {
    id: String,
    parent: Option<String>,
}

/// A position handed out: the record it stands for.
#[derive(Debug, Clone)]
struct Handed {
    shard: String,
    seq: String,
    /// The last record of a closed shard: committing it finishes the shard.
    finishes: bool,
}

#[derive(Debug, Default)]
struct Shared {
    /// Checkpoints loaded from the table.
    loaded: bool,
    stream_arn: Option<String>,
    shards: Vec<ShardInfo>,
    refreshed_at: Option<Instant>,
    committed: HashMap<String, Checkpoint>,
    handed: BTreeMap<i64, Handed>,
    last_position: i64,
}

/// A record read in this call, before it gets its position.
#[derive(Debug)]
struct Read<T> {
    shard: String,
    seq: String,
    finishes: bool,
    item: Option<T>,
}

/// The state of one `read` call.
#[derive(Debug)]
struct Call<T> {
    arn: String,
    shards: Vec<ShardInfo>,
    /// Where each shard was read to in this call (from the committed checkpoints).
    cursors: HashMap<String, Checkpoint>,
    /// The iterator each open shard continues with at the next poll of this call.
    iterators: HashMap<String, String>,
    read: Vec<Read<T>>,
    /// How many records of `read` are kept.
    kept: usize,
    limit: usize,
    /// Also look from the cursor when a kept iterator finds nothing (see `read_shard`).
    recheck: bool,
}

/// Reads one table's DynamoDB stream with checkpoints (see the module documentation).
#[derive(Debug)]
pub struct StreamReader {
    dynamo: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
    checkpoint_table: String,
    state: Mutex<Shared>,
    /// Which eligible shard a poll starts with, so a busy shard cannot starve the others.
    rotation: AtomicUsize,
}

impl StreamReader {
    /// A reader of `table`'s stream keeping its checkpoints in `checkpoint_table` (a table
    /// with PK `orderId` and SK `sk`, the saga table).
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table: impl Into<String>,
        checkpoint_table: impl Into<String>,
    ) -> StreamReader {
        StreamReader {
            dynamo,
            streams,
            table: table.into(),
            checkpoint_table: checkpoint_table.into(),
            state: Mutex::new(Shared::default()),
            rotation: AtomicUsize::new(0),
        }
    }

    /// A reader of the store's orders table (checkpoints in its saga table).
    pub fn orders(store: &DynamoStore, streams: aws_sdk_dynamodbstreams::Client) -> StreamReader {
        let t = store.tables();
        StreamReader::new(store.client().clone(), streams, &t.orders, &t.saga)
    }

    /// A reader of the store's events table (checkpoints in its saga table).
    pub fn events(store: &DynamoStore, streams: aws_sdk_dynamodbstreams::Client) -> StreamReader {
        let t = store.tables();
        StreamReader::new(store.client().clone(), streams, &t.events, &t.saga)
    }

    /// The table whose stream this reads.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Up to `limit` records after the committed checkpoints, each with a position for
    /// [`commit`](Self::commit). Records handed out and not committed are handed out again
    /// (with new positions) by the next call. When there are none, polls for up to `wait`.
    pub async fn read(
        &self,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<(i64, ChangeRecord)>, StoreError> {
        let (out, _) = self.read_with(limit, wait, |r| Ok(Some(r.clone()))).await?;
        Ok(out)
    }

    /// Persists the checkpoints of everything handed out up to and including `position`.
    /// Committing a position older than one committed before changes nothing.
    pub async fn commit(&self, position: i64) -> Result<(), StoreError> {
        let mut st = self.state.lock().await;
        let rest = st.handed.split_off(&position.saturating_add(1));
        let done = std::mem::replace(&mut st.handed, rest);
        let mut updates: HashMap<String, Checkpoint> = HashMap::new();
        for h in done.values() {
            let cp = updates
                .entry(h.shard.clone())
                .or_insert_with(|| st.committed.get(&h.shard).cloned().unwrap_or_default());
            if cp.seq.as_deref().is_none_or(|c| seq_cmp(&h.seq, c).is_gt()) {
                cp.seq = Some(h.seq.clone());
            }
            cp.finished |= h.finishes;
        }
        for (shard, cp) in updates {
            if st.committed.get(&shard) == Some(&cp) {
                continue;
            }
            if let Err(e) = self.persist(&shard, &cp).await {
                // Keep what is not committed yet, so a retried commit still covers it.
                st.handed.extend(done);
                return Err(e);
            }
            st.committed.insert(shard, cp);
        }
        Ok(())
    }

    /// Reads like [`read`](Self::read), keeping the records `f` maps to `Some`: up to
    /// `limit` of them. Every record read gets a position (so committing a kept record
    /// commits the skipped ones before it); also answers the last position handed out.
    async fn read_with<T>(
        &self,
        limit: usize,
        wait: Duration,
        f: impl Fn(&ChangeRecord) -> Result<Option<T>, StoreError>,
    ) -> Result<(Vec<(i64, T)>, Option<i64>), StoreError> {
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        // `None`: wait as long as it takes (a `wait` too long to represent).
        let deadline = Instant::now().checked_add(wait);
        let result = async {
            let (arn, shards, cursors) = self.snapshot().await?;
            let mut call = Call {
                arn,
                shards,
                cursors,
                iterators: HashMap::new(),
                read: Vec::new(),
                kept: 0,
                limit,
                recheck: false,
            };
            for polls in 1_u64.. {
                self.poll(&mut call, &f).await?;
                let now = Instant::now();
                if call.kept > 0 || deadline.is_some_and(|d| now >= d) {
                    break;
                }
                let left = deadline.map_or(POLL_INTERVAL, |d| d - now);
                tokio::time::sleep(POLL_INTERVAL.min(left)).await;
                call.recheck = polls % RECHECK_EVERY == 0;
            }
            Ok(call.read)
        }
        .await;
        let read = match result {
            Ok(read) => read,
            Err(e) => {
                // The stream may have been re-created or a shard trimmed: look again.
                self.state.lock().await.refreshed_at = None;
                return Err(e);
            }
        };
        let mut st = self.state.lock().await;
        let mut out = Vec::new();
        let mut last = None;
        for r in read {
            st.last_position += 1;
            let position = st.last_position;
            st.handed.insert(
                position,
                Handed {
                    shard: r.shard,
                    seq: r.seq,
                    finishes: r.finishes,
                },
            );
            if let Some(item) = r.item {
                out.push((position, item));
            }
            last = Some(position);
        }
        while st.handed.len() > MAX_HANDED {
            st.handed.pop_first();
        }
        Ok((out, last))
    }

    /// One pass over the shards that can be read now, continuing where the call is.
    async fn poll<T>(
        &self,
        call: &mut Call<T>,
        f: &impl Fn(&ChangeRecord) -> Result<Option<T>, StoreError>,
    ) -> Result<(), StoreError> {
        let mut visited: HashSet<String> = HashSet::new();
        loop {
            let cursors = &call.cursors;
            let finished = |id: &str| cursors.get(id).is_some_and(|c| c.finished);
            let known: HashSet<&str> = call.shards.iter().map(|s| s.id.as_str()).collect();
            let mut eligible: Vec<String> = call
                .shards
                .iter()
                .filter(|s| !finished(&s.id) && !visited.contains(&s.id))
                .filter(|s| {
                    // A parent past the stream's retention is no longer listed: done.
                    s.parent
                        .as_deref()
                        .is_none_or(|p| finished(p) || !known.contains(p))
                })
                .map(|s| s.id.clone())
                .collect();
            if eligible.is_empty() {
                return Ok(());
            }
            let turn = self.rotation.fetch_add(1, Ordering::Relaxed) % eligible.len();
            eligible.rotate_left(turn);
            let mut ended = false;
            for shard in eligible {
                visited.insert(shard.clone());
                ended |= self.read_shard(call, &shard, f).await?;
                if call.kept >= call.limit {
                    return Ok(());
                }
            }
            if ended {
                // Children of the shards that ended may be listed now.
                let (_, fresh) = self.refresh().await?;
                call.shards = fresh;
            }
        }
    }

    /// Reads one shard from where the call is until `limit` records are kept or nothing
    /// more is there now; answers whether the shard ended.
    ///
    /// An open shard with nothing new leaves its next iterator for the next poll of the
    /// call (DynamoDB may need several calls to get past a stretch without records). Every
    /// few polls (`recheck`) a kept iterator that finds nothing is double-checked with a
    /// fresh one from the cursor: moto's iterators stop seeing new records once a
    /// cancelled transaction restores the table they point into.
    async fn read_shard<T>(
        &self,
        call: &mut Call<T>,
        shard: &str,
        f: &impl Fn(&ChangeRecord) -> Result<Option<T>, StoreError>,
    ) -> Result<bool, StoreError> {
        let cursor = call.cursors.entry(shard.to_owned()).or_default();
        let (mut iterator, mut on_kept) = match call.iterators.remove(shard) {
            Some(it) => (it, true),
            None => (
                self.iterator(&call.arn, shard, cursor.seq.as_deref())
                    .await?,
                false,
            ),
        };
        // The kept iterator's next, while a fresh one double-checks.
        let mut kept_next: Option<String> = None;
        loop {
            let page = self
                .streams
                .get_records()
                .shard_iterator(iterator)
                .limit(PAGE)
                .send()
                .await
                .map_err(stream_err)?;
            if page.records().is_empty() {
                let Some(next) = page.next_shard_iterator() else {
                    break; // closed, and read to its end
                };
                if on_kept && call.recheck {
                    kept_next = Some(next.to_owned());
                    iterator = self
                        .iterator(&call.arn, shard, cursor.seq.as_deref())
                        .await?;
                    on_kept = false;
                    continue;
                }
                // Nothing more for now. Continue with the iterator that got furthest.
                let next = kept_next.take().unwrap_or_else(|| next.to_owned());
                call.iterators.insert(shard.to_owned(), next);
                return Ok(false);
            }
            // Records on this iterator: it is the one to follow.
            kept_next = None;
            for r in page.records() {
                let rec = record_from_stream(r)?;
                let item = f(&rec)?;
                let keep = item.is_some();
                cursor.seq = Some(rec.sequence_number.clone());
                call.read.push(Read {
                    shard: shard.to_owned(),
                    seq: rec.sequence_number,
                    finishes: false,
                    item,
                });
                if keep {
                    call.kept += 1;
                    if call.kept >= call.limit {
                        // Not necessarily the shard's end: the next read looks again.
                        return Ok(false);
                    }
                }
            }
            match page.next_shard_iterator() {
                Some(next) => iterator = next.to_owned(),
                None => break, // closed, and read to its end
            }
        }
        cursor.finished = true;
        match call.read.iter_mut().rev().find(|r| r.shard == shard) {
            // Its last record finishes it when committed...
            Some(last) => last.finishes = true,
            // ...or, when nothing of it was read in this call, everything of it is
            // committed already: it is finished now.
            None => self.finish_now(shard, cursor).await?,
        }
        Ok(true)
    }

    /// A shard iterator after `after` (or at the trim horizon).
    async fn iterator(
        &self,
        arn: &str,
        shard: &str,
        after: Option<&str>,
    ) -> Result<String, StoreError> {
        let request = |kind: ShardIteratorType, seq: Option<&str>| {
            self.streams
                .get_shard_iterator()
                .stream_arn(arn)
                .shard_id(shard)
                .shard_iterator_type(kind)
                .set_sequence_number(seq.map(str::to_owned))
                .send()
        };
        let out = match after {
            None => request(ShardIteratorType::TrimHorizon, None).await,
            Some(seq) => match request(ShardIteratorType::AfterSequenceNumber, Some(seq)).await {
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_trimmed_data_access_exception()) =>
                {
                    tracing::error!(
                        table = %self.table,
                        shard,
                        checkpoint = seq,
                        "stream records after the checkpoint were trimmed before they were \
                         read (the reader was stopped longer than the stream's retention); \
                         resuming at the trim horizon"
                    );
                    request(ShardIteratorType::TrimHorizon, None).await
                }
                other => other,
            },
        };
        out.map_err(stream_err)?
            .shard_iterator()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Backend(format!("no iterator for shard {shard}")))
    }

    /// The stream, its shards and the committed checkpoints (loaded on first use).
    async fn snapshot(
        &self,
    ) -> Result<(String, Vec<ShardInfo>, HashMap<String, Checkpoint>), StoreError> {
        let stale = {
            let st = self.state.lock().await;
            st.stream_arn.is_none() || st.refreshed_at.is_none_or(|t| t.elapsed() >= REFRESH_EVERY)
        };
        if stale {
            self.refresh().await?;
        }
        let mut st = self.state.lock().await;
        if !st.loaded {
            let loaded = self.load_checkpoints().await?;
            // Nothing can have been committed before the first load.
            st.committed = loaded;
            st.loaded = true;
        }
        let arn = st
            .stream_arn
            .clone()
            .ok_or_else(|| StoreError::Backend(format!("table {} has no stream", self.table)))?;
        Ok((arn, st.shards.clone(), st.committed.clone()))
    }

    /// Reads the table's latest stream and its shards again.
    async fn refresh(&self) -> Result<(String, Vec<ShardInfo>), StoreError> {
        let table = self
            .dynamo
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(sdk_err)?;
        let arn = table
            .table()
            .and_then(|t| t.latest_stream_arn())
            .map(str::to_owned)
            .ok_or_else(|| {
                StoreError::Backend(format!("table {} has no stream enabled", self.table))
            })?;
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(&arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(stream_err)?;
            let Some(desc) = out.stream_description() else {
                break;
            };
            for s in desc.shards() {
                if let Some(id) = s.shard_id() {
                    shards.push(ShardInfo {
                        id: id.to_owned(),
                        parent: s.parent_shard_id().map(str::to_owned),
                    });
                }
            }
            match desc.last_evaluated_shard_id() {
                Some(last) => start = Some(last.to_owned()),
                None => break,
            }
        }
        let mut st = self.state.lock().await;
        st.stream_arn = Some(arn.clone());
        st.shards = shards.clone();
        st.refreshed_at = Some(Instant::now());
        Ok((arn, shards))
    }

    fn checkpoint_key(&self) -> String {
        format!("{CHECKPOINT_PREFIX}{}", self.table)
    }

    async fn load_checkpoints(&self) -> Result<HashMap<String, Checkpoint>, StoreError> {
        let mut out = HashMap::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .dynamo
                .query()
                .table_name(&self.checkpoint_table)
                .key_condition_expression("orderId = :o")
                .expression_attribute_values(":o", s(self.checkpoint_key()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_err)?;
            for item in page.items() {
                let Some(AttributeValue::S(shard)) = item.get("sk") else {
                    continue;
                };
                let seq = match item.get("seq") {
                    Some(AttributeValue::S(v)) => Some(v.clone()),
                    _ => None,
                };
                let finished = matches!(item.get("finished"), Some(AttributeValue::Bool(true)));
                out.insert(shard.clone(), Checkpoint { seq, finished });
            }
            match page.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => return Ok(out),
            }
        }
    }

    async fn persist(&self, shard: &str, cp: &Checkpoint) -> Result<(), StoreError> {
        let mut put = self
            .dynamo
            .put_item()
            .table_name(&self.checkpoint_table)
            .item("orderId", s(self.checkpoint_key()))
            .item("sk", s(shard))
            .item("finished", AttributeValue::Bool(cp.finished));
        if let Some(seq) = &cp.seq {
            put = put.item("seq", s(seq));
        }
        put.send().await.map_err(sdk_err)?;
        Ok(())
    }

    /// Marks a shard finished whose records are all committed.
    async fn finish_now(&self, shard: &str, read_to: &Checkpoint) -> Result<(), StoreError> {
        let mut st = self.state.lock().await;
        let mut cp = st.committed.get(shard).cloned().unwrap_or_default();
        if cp.finished {
            return Ok(());
        }
        cp.finished = true;
        if let Some(seq) = &read_to.seq
            && cp.seq.as_deref().is_none_or(|c| seq_cmp(seq, c).is_gt())
        {
            cp.seq = Some(seq.clone());
        }
        self.persist(shard, &cp).await?;
        st.committed.insert(shard.to_owned(), cp);
        Ok(())
    }
}

/// Maps a DynamoDB Streams failure (throttling and expired iterators are retryable).
fn stream_err<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    let code = e
        .as_service_error()
        .and_then(|se| se.code())
        .map(str::to_owned);
    match (code.as_deref(), sdk_err(e)) {
        (Some("LimitExceededException" | "ExpiredIteratorException"), StoreError::Backend(m)) => {
            StoreError::Unavailable(m)
        }
        (_, other) => other,
    }
}

fn value_from_stream(v: &StreamValue) -> Result<AttributeValue, StoreError> {
    use aws_sdk_dynamodb::primitives::Blob;
    Ok(match v {
        StreamValue::S(x) => AttributeValue::S(x.clone()),
        StreamValue::N(x) => AttributeValue::N(x.clone()),
        StreamValue::Bool(x) => AttributeValue::Bool(*x),
        StreamValue::Null(x) => AttributeValue::Null(*x),
        StreamValue::B(b) => AttributeValue::B(Blob::new(b.as_ref().to_vec())),
        StreamValue::Ss(x) => AttributeValue::Ss(x.clone()),
        StreamValue::Ns(x) => AttributeValue::Ns(x.clone()),
        StreamValue::Bs(x) => {
            AttributeValue::Bs(x.iter().map(|b| Blob::new(b.as_ref().to_vec())).collect())
        }
        StreamValue::M(m) => AttributeValue::M(item_from_stream(m)?),
        StreamValue::L(l) => {
            AttributeValue::L(l.iter().map(value_from_stream).collect::<Result<_, _>>()?)
        }
        other => {
            return Err(StoreError::Backend(format!(
                "unsupported attribute value in a stream record: {other:?}"
            )));
        }
    })
}

fn item_from_stream(m: &HashMap<String, StreamValue>) -> Result<Item, StoreError> {
    m.iter()
        .map(|(k, v)| Ok((k.clone(), value_from_stream(v)?)))
        .collect()
}

/// A record of the DynamoDB Streams API as a [`ChangeRecord`].
pub fn record_from_stream(r: &Record) -> Result<ChangeRecord, StoreError> {
    let bad = |what: &str| StoreError::Backend(format!("invalid stream record: {what}"));
    let kind = match r.event_name() {
        Some(OperationType::Insert) => ChangeKind::Insert,
        Some(OperationType::Modify) => ChangeKind::Modify,
        Some(OperationType::Remove) => ChangeKind::Remove,
        other => return Err(bad(&format!("event name {other:?}"))),
    };
    let d = r.dynamodb().ok_or_else(|| bad("no dynamodb part"))?;
    Ok(ChangeRecord {
        kind,
        sequence_number: d
            .sequence_number()
            .ok_or_else(|| bad("no sequence number"))?
            .to_owned(),
        keys: item_from_stream(d.keys().ok_or_else(|| bad("no keys"))?)?,
        new_image: d.new_image().map(item_from_stream).transpose()?,
        old_image: d.old_image().map(item_from_stream).transpose()?,
    })
}

/// The [`EventOutbox`] on the events table's stream: the unpublished events are the event
/// items inserted after the committed checkpoints (marker items are skipped).
#[derive(Debug)]
pub struct StreamOutbox {
    reader: StreamReader,
}

impl StreamOutbox {
    /// `reader` reads the events table (see [`StreamReader::events`]).
    pub fn new(reader: StreamReader) -> StreamOutbox {
        StreamOutbox { reader }
    }

    pub fn reader(&self) -> &StreamReader {
        &self.reader
    }
}

#[async_trait]
impl EventOutbox for StreamOutbox {
    async fn unpublished(
        &self,
        limit: u32,
        wait: Duration,
    ) -> Result<Vec<(i64, DomainEvent)>, StoreError> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let (events, last) = self.reader.read_with(limit, wait, event_of).await?;
        if events.is_empty()
            && let Some(last) = last
        {
            // Only records that are not events were read: nothing to publish in them, so
            // they need not be read again.
            self.reader.commit(last).await?;
        }
        Ok(events)
    }

    async fn mark_published(&self, position: i64) -> Result<(), StoreError> {
        self.reader.commit(position).await
    }
}

/// One relay pass over the orders table's stream: reads up to `batch` records (waiting up
/// to `wait` for some), sends the processing message of each order that must be
/// (re)queued to `queue_name`, and commits what it relayed. Answers the messages sent.
/// A failure leaves the unsent records uncommitted: they are relayed again (at least once;
/// the consumers are idempotent).
pub async fn relay_orders(
    reader: &StreamReader,
    queue: &dyn Queue,
    queue_name: &str,
    batch: usize,
    wait: Duration,
) -> Result<usize, StoreError> {
    let records = reader.read(batch, wait).await?;
    let mut sent = 0;
    let mut done: Option<i64> = None;
    for (position, rec) in &records {
        // The relay's rules, shared with the `relay` Lambda function.
        match relay_change(Stream::Orders, rec, queue, queue_name, None).await {
            Ok(Relayed::Queued(_)) => sent += 1,
            Ok(_) => {}
            Err(e) => {
                if let Some(p) = done {
                    // Keep what was relayed; the send failure is the error to report.
                    if let Err(c) = reader.commit(p).await {
                        tracing::warn!(error = %c, "could not commit the relayed records");
                    }
                }
                return Err(e);
            }
        }
        done = Some(*position);
    }
    if let Some(p) = done {
        reader.commit(p).await?;
    }
    Ok(sent)
}

/// Runs [`relay_orders`] passes until `shutdown` turns true (or its sender is dropped),
/// backing off (200 ms doubling to 30 s) while passes fail.
pub async fn run_orders_relay(
    reader: StreamReader,
    queue: Arc<dyn Queue>,
    queue_name: &'static str,
    mut shutdown: watch::Receiver<bool>,
) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(200);
    const MAX_BACKOFF: Duration = Duration::from_secs(30);
    let mut backoff = FIRST_BACKOFF;
    tracing::info!(
        table = reader.table(),
        queue = queue_name,
        "orders relay started"
    );
    while !*shutdown.borrow() {
        // Stopping in the middle of a pass is safe: what was not committed is relayed
        // again by the next process.
        let pass = tokio::select! {
            r = relay_orders(&reader, queue.as_ref(), queue_name, RELAY_BATCH, RELAY_WAIT) => r,
            _ = stopped(&mut shutdown) => break,
        };
        match pass {
            Ok(sent) => {
                backoff = FIRST_BACKOFF;
                if sent > 0 {
                    tracing::debug!(sent, queue = queue_name, "relayed processing requests");
                }
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    table = reader.table(),
                    retry_in_ms = backoff.as_millis() as u64,
                    "orders relay pass failed"
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped(&mut shutdown) => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    tracing::info!(table = reader.table(), "orders relay stopped");
}

/// Resolves when `shutdown` is true or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}
