//! DynamoDB stream records: what a change to the orders or events table means.
//!
//! Pure functions over [`ChangeRecord`]s, so the same decisions are made whether the
//! records come from a Lambda event source mapping ([`record_from_lambda`] on each element
//! of the event's `Records`) or from a process reading the stream itself
//! (`crate::streams`):
//!
//! - on the orders table, [`processing_request`] says when an order's processing must be
//!   queued: when the order is inserted, and when a change bumps its `enqueueSeq` (a
//!   cancellation queues its compensations that way). The order and its processing
//!   request are thus one atomic write; the stream delivers the request at least once.
//! - on the events table, [`event_of`] is the domain event an inserted event item
//!   records (marker items, `~id#<uuid>`, are not events).

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orderly_core::{DomainEvent, OrderId, StoreError};
use serde_json::Value;

use super::{corrupt, item_event};

/// An item (or key, or image) as DynamoDB holds it.
pub type Item = HashMap<String, AttributeValue>;

/// The attribute of the order item a change bumps to queue the order's processing again.
pub const ENQUEUE_SEQ: &str = "enqueueSeq";

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

/// One change of one item, as a DynamoDB stream reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    pub kind: ChangeKind,
    /// Unique within the stream and increasing within a shard (a decimal string of up to
    /// 40 digits, compare with [`seq_cmp`]).
    pub sequence_number: String,
    pub keys: Item,
    /// The item after the change (stream views `NEW_IMAGE`, `NEW_AND_OLD_IMAGES`).
    pub new_image: Option<Item>,
    /// The item before the change (stream views `OLD_IMAGE`, `NEW_AND_OLD_IMAGES`).
    pub old_image: Option<Item>,
}

impl ChangeKind {
    /// From a stream `eventName` (`INSERT`, `MODIFY`, `REMOVE`).
    pub fn from_event_name(name: &str) -> Option<ChangeKind> {
        match name {
            "INSERT" => Some(ChangeKind::Insert),
            "MODIFY" => Some(ChangeKind::Modify),
            "REMOVE" => Some(ChangeKind::Remove),
            _ => None,
        }
    }
}

/// Orders two stream sequence numbers numerically (they are decimal strings that need not
/// have the same length).
pub fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn bad(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("invalid stream record: {what}: {detail}"))
}

fn json_str<'a>(v: &'a Value, what: &str) -> Result<&'a str, StoreError> {
    v.as_str().ok_or_else(|| bad(what, "not a string"))
}

fn json_strings(v: &Value, what: &str) -> Result<Vec<String>, StoreError> {
    v.as_array()
        .ok_or_else(|| bad(what, "not a list"))?
        .iter()
        .map(|x| json_str(x, what).map(str::to_owned))
        .collect()
}

fn blob(v: &Value, what: &str) -> Result<Blob, StoreError> {
    let bytes = STANDARD
        .decode(json_str(v, what)?)
        .map_err(|e| bad(what, e))?;
    Ok(Blob::new(bytes))
}

/// One attribute value in DynamoDB JSON (`{"S":"x"}`, `{"N":"1"}`, ...).
fn value_from_json(v: &Value) -> Result<AttributeValue, StoreError> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad("attribute value", "not an object"))?;
    let mut entries = obj.iter();
    let (tag, inner) = match (entries.next(), entries.next()) {
        (Some(e), None) => e,
        _ => {
            return Err(bad(
                "attribute value",
                format!("expected one type tag: {v}"),
            ));
        }
    };
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(json_str(inner, "S")?.to_owned()),
        "N" => AttributeValue::N(json_str(inner, "N")?.to_owned()),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or_else(|| bad("BOOL", inner))?),
        "NULL" => AttributeValue::Null(inner.as_bool().ok_or_else(|| bad("NULL", inner))?),
        "B" => AttributeValue::B(blob(inner, "B")?),
        "SS" => AttributeValue::Ss(json_strings(inner, "SS")?),
        "NS" => AttributeValue::Ns(json_strings(inner, "NS")?),
        "BS" => AttributeValue::Bs(
            inner
                .as_array()
                .ok_or_else(|| bad("BS", "not a list"))?
                .iter()
                .map(|b| blob(b, "BS"))
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(item_from_json(inner)?),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .ok_or_else(|| bad("L", "not a list"))?
                .iter()
                .map(value_from_json)
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(bad("attribute value", format!("unknown type {other}"))),
    })
}

/// An item in DynamoDB JSON (`{"orderId":{"S":"..."},"version":{"N":"1"}}`), as stream
/// records in Lambda events carry keys and images. Binary values are base64.
pub fn item_from_json(v: &Value) -> Result<Item, StoreError> {
    v.as_object()
        .ok_or_else(|| bad("item", "not an object"))?
        .iter()
        .map(|(k, v)| Ok((k.clone(), value_from_json(v)?)))
        .collect()
}

/// One element of the `Records` array of a Lambda DynamoDB stream event.
pub fn record_from_lambda(v: &Value) -> Result<ChangeRecord, StoreError> {
    let name = json_str(&v["eventName"], "eventName")?;
    let kind =
        ChangeKind::from_event_name(name).ok_or_else(|| bad("eventName", format!("{name:?}")))?;
    let d = v
        .get("dynamodb")
        .filter(|d| d.is_object())
        .ok_or_else(|| bad("dynamodb", "missing"))?;
    let image = |name: &str| match d.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => item_from_json(x).map(Some),
    };
    Ok(ChangeRecord {
        kind,
        sequence_number: json_str(&d["SequenceNumber"], "SequenceNumber")?.to_owned(),
        keys: item_from_json(d.get("Keys").ok_or_else(|| bad("Keys", "missing"))?)?,
        new_image: image("NewImage")?,
        old_image: image("OldImage")?,
    })
}

fn order_id_of(keys: &Item) -> Option<OrderId> {
    match keys.get("orderId") {
        Some(AttributeValue::S(id)) => id.parse().ok(),
        _ => None,
    }
}

fn enqueue_seq(image: Option<&Item>) -> i128 {
    match image.and_then(|i| i.get(ENQUEUE_SEQ)) {
        Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
        _ => 0,
    }
}

/// For a record of the orders table: the order whose processing must be queued (again),
/// if any. That is every inserted order, and every change whose new image has a greater
/// `enqueueSeq` than its old image (an absent attribute counts as 0; a change without an
/// old image, which a stream without old images reports, counts as one from 0, so that
/// no request is missed).
pub fn processing_request(rec: &ChangeRecord) -> Option<OrderId> {
    let id = order_id_of(&rec.keys)?;
    match rec.kind {
        ChangeKind::Insert => Some(id),
        ChangeKind::Modify => {
            let new = enqueue_seq(rec.new_image.as_ref());
            let old = enqueue_seq(rec.old_image.as_ref());
            (new > old).then_some(id)
        }
        ChangeKind::Remove => None,
    }
}

/// For a record of the events table: the domain event an inserted event item records;
/// `None` for marker items and for changes and removals (events are never changed).
pub fn event_of(rec: &ChangeRecord) -> Result<Option<DomainEvent>, StoreError> {
    if rec.kind != ChangeKind::Insert {
        return Ok(None);
    }
    let sk = match rec.keys.get("sk") {
        Some(AttributeValue::S(sk)) => sk,
        _ => return Err(corrupt("event key", "missing or not a string sort key")),
    };
    if sk.starts_with('~') {
        return Ok(None);
    }
    let order_id = match rec.keys.get("orderId") {
        Some(AttributeValue::S(id)) => id.parse().map_err(|e| corrupt("order id", e))?,
        _ => return Err(corrupt("event key", "missing or not a string orderId")),
    };
    let image = rec.new_image.as_ref().ok_or_else(|| {
        corrupt(
            "event record",
            "no new image (the events stream must show NEW_IMAGE)",
        )
    })?;
    item_event(order_id, image).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderly_core::EventType;
    use serde_json::json;

    const ORDER: &str = "019b7a3c-5e00-7000-8000-0123456789ab";
    const EVENT: &str = "6f1c0b5e-3d2a-5b7e-9c41-8a2f4e6d1b3c";

    fn order_image(status: &str, version: u32, enqueue_seq: Option<u32>) -> Value {
        let mut image = json!({
            "orderId": {"S": ORDER},
            "userId": {"S": "user-123"},
            "customerEmail": {"S": "ada@example.com"},
            "items": {"S": "[{\"productId\":\"PROD-001\",\"qty\":2,\"unitPrice\":29.99}]"},
            "totalMinor": {"N": "5998"},
            "currency": {"S": "USD"},
            "status": {"S": status},
            "createdAt": {"N": "1767225600000"},
            "updatedAt": {"N": "1767225600000"},
            "createdKey": {"S": format!("1767225600000#{ORDER}")},
            "kind": {"S": "order"},
            "version": {"N": version.to_string()}
        });
        if let Some(seq) = enqueue_seq {
            image["enqueueSeq"] = json!({"N": seq.to_string()});
        }
        image
    }

    /// A Lambda DynamoDB stream event as the event source mapping delivers it.
    fn lambda_event(records: Vec<Value>) -> Value {
        json!({ "Records": records })
    }

    fn lambda_record(
        name: &str,
        seq: &str,
        keys: Value,
        new: Option<Value>,
        old: Option<Value>,
    ) -> Value {
        let mut d = json!({
            "ApproximateCreationDateTime": 1767225600,
            "Keys": keys,
            "SequenceNumber": seq,
            "SizeBytes": 312,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        });
        if let Some(n) = new {
            d["NewImage"] = n;
        }
        if let Some(o) = old {
            d["OldImage"] = o;
        }
        json!({
            "eventID": "c81e728d9d4c2f636f067f89cc14862c",
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "eu-west-1",
            "dynamodb": d,
            "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/orderly-orders/stream/2026-01-01T00:00:00.000"
        })
    }

    fn records(event: &Value) -> Vec<ChangeRecord> {
        event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| record_from_lambda(r).unwrap())
            .collect()
    }

    #[test]
    fn orders_stream_insert_and_enqueue_bumps_request_processing() {
        let keys = json!({"orderId": {"S": ORDER}});
        let event = lambda_event(vec![
            lambda_record(
                "INSERT",
                "100000000000000000001",
                keys.clone(),
                Some(order_image("PENDING", 1, None)),
                None,
            ),
            // A status change without enqueue_processing.
            lambda_record(
                "MODIFY",
                "100000000000000000002",
                keys.clone(),
                Some(order_image("CONFIRMED", 2, None)),
                Some(order_image("PENDING", 1, None)),
            ),
            // A cancellation with enqueue_processing: enqueueSeq absent -> 1.
            lambda_record(
                "MODIFY",
                "100000000000000000003",
                keys.clone(),
                Some(order_image("CANCELLED", 3, Some(1))),
                Some(order_image("CONFIRMED", 2, None)),
            ),
            // A later change that keeps enqueueSeq.
            lambda_record(
                "MODIFY",
                "100000000000000000004",
                keys.clone(),
                Some(order_image("CANCELLED", 4, Some(1))),
                Some(order_image("CANCELLED", 3, Some(1))),
            ),
            // A bump from 1 to 2.
            lambda_record(
                "MODIFY",
                "100000000000000000005",
                keys.clone(),
                Some(order_image("CANCELLED", 5, Some(2))),
                Some(order_image("CANCELLED", 4, Some(1))),
            ),
            lambda_record(
                "REMOVE",
                "100000000000000000006",
                keys,
                None,
                Some(order_image("CANCELLED", 5, Some(2))),
            ),
        ]);
        let recs = records(&event);
        let kinds: Vec<_> = recs.iter().map(|r| r.kind).collect();
        use ChangeKind::*;
        assert_eq!(kinds, [Insert, Modify, Modify, Modify, Modify, Remove]);
        let id: OrderId = ORDER.parse().unwrap();
        let requests: Vec<_> = recs.iter().map(processing_request).collect();
        assert_eq!(requests, [Some(id), None, Some(id), None, Some(id), None]);
        assert_eq!(recs[0].sequence_number, "100000000000000000001");
        assert_eq!(
            recs[0].keys,
            Item::from([("orderId".into(), AttributeValue::S(ORDER.into()))])
        );
        assert!(recs[0].old_image.is_none());
        assert_eq!(
            recs[2].new_image.as_ref().unwrap()["enqueueSeq"],
            AttributeValue::N("1".into())
        );
        // A stream without old images cannot tell: it errs on the side of queueing.
        let mut no_old = recs[3].clone();
        no_old.old_image = None;
        assert_eq!(processing_request(&no_old), Some(id));
    }

    #[test]
    fn events_stream_yields_inserted_events_and_skips_markers() {
        let detail = json!({"orderId": ORDER, "userId": "user-123", "totalAmount": 59.98});
        let event_keys =
            json!({"orderId": {"S": ORDER}, "sk": {"S": format!("1767225600000#{EVENT}")}});
        let event_item = json!({
            "orderId": {"S": ORDER},
            "sk": {"S": format!("1767225600000#{EVENT}")},
            "eventId": {"S": EVENT},
            "detailType": {"S": "OrderCreated"},
            "time": {"N": "1767225600000"},
            "detail": {"S": detail.to_string()}
        });
        let marker_keys = json!({"orderId": {"S": ORDER}, "sk": {"S": format!("~id#{EVENT}")}});
        let event = lambda_event(vec![
            lambda_record(
                "INSERT",
                "200",
                marker_keys.clone(),
                Some(marker_keys.clone()),
                None,
            ),
            lambda_record(
                "INSERT",
                "201",
                event_keys.clone(),
                Some(event_item.clone()),
                None,
            ),
            lambda_record(
                "MODIFY",
                "202",
                event_keys.clone(),
                Some(event_item.clone()),
                Some(event_item.clone()),
            ),
            lambda_record("REMOVE", "203", event_keys, None, Some(event_item)),
        ]);
        let recs = records(&event);
        assert_eq!(event_of(&recs[0]).unwrap(), None);
        let e = event_of(&recs[1]).unwrap().unwrap();
        assert_eq!(e.id.to_string(), EVENT);
        assert_eq!(e.order_id.to_string(), ORDER);
        assert_eq!(e.detail_type, EventType::OrderCreated);
        assert_eq!(e.time.millis(), 1_767_225_600_000);
        assert_eq!(e.detail, detail);
        assert_eq!(event_of(&recs[2]).unwrap(), None);
        assert_eq!(event_of(&recs[3]).unwrap(), None);
        // An events record is not an order: the relay asks nothing of it unless inserted.
        let mut keys_only = recs[1].clone();
        keys_only.new_image = None;
        assert!(event_of(&keys_only).is_err());
    }

    #[test]
    fn every_attribute_type_decodes() {
        let item = item_from_json(&json!({
            "s": {"S": "text"},
            "n": {"N": "-12.5"},
            "t": {"BOOL": true},
            "z": {"NULL": true},
            "b": {"B": "aGVsbG8="},
            "ss": {"SS": ["a", "b"]},
            "ns": {"NS": ["1", "2"]},
            "bs": {"BS": ["aGk="]},
            "m": {"M": {"inner": {"L": [{"S": "x"}, {"N": "1"}, {"M": {}}]}}},
            "l": {"L": []}
        }))
        .unwrap();
        use AttributeValue as A;
        assert_eq!(item["s"], A::S("text".into()));
        assert_eq!(item["n"], A::N("-12.5".into()));
        assert_eq!(item["t"], A::Bool(true));
        assert_eq!(item["z"], A::Null(true));
        assert_eq!(item["b"], A::B(Blob::new(b"hello".to_vec())));
        assert_eq!(item["ss"], A::Ss(vec!["a".into(), "b".into()]));
        assert_eq!(item["ns"], A::Ns(vec!["1".into(), "2".into()]));
        assert_eq!(item["bs"], A::Bs(vec![Blob::new(b"hi".to_vec())]));
        assert_eq!(
            item["m"],
            A::M(Item::from([(
                "inner".into(),
                A::L(vec![A::S("x".into()), A::N("1".into()), A::M(Item::new())])
            )]))
        );
        assert_eq!(item["l"], A::L(vec![]));
        for bad in [
            json!([]),
            json!({"a": "plain"}),
            json!({"a": {}}),
            json!({"a": {"S": "x", "N": "1"}}),
            json!({"a": {"X": "x"}}),
            json!({"a": {"N": 1}}),
            json!({"a": {"B": "not base64!"}}),
        ] {
            assert!(item_from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_records_are_errors() {
        let good = lambda_record("INSERT", "1", json!({"orderId": {"S": ORDER}}), None, None);
        assert!(record_from_lambda(&good).is_ok());
        let mut bad_name = good.clone();
        bad_name["eventName"] = json!("UPSERT");
        let mut no_seq = good.clone();
        no_seq["dynamodb"]
            .as_object_mut()
            .unwrap()
            .remove("SequenceNumber");
        let mut no_keys = good.clone();
        no_keys["dynamodb"].as_object_mut().unwrap().remove("Keys");
        for bad in [bad_name, no_seq, no_keys, json!({"eventName": "INSERT"})] {
            assert!(record_from_lambda(&bad).is_err(), "{bad}");
        }
        // A record whose key is not an order id asks for nothing.
        let other = record_from_lambda(&lambda_record(
            "INSERT",
            "2",
            json!({"orderId": {"S": "~stream#orders"}}),
            None,
            None,
        ))
        .unwrap();
        assert_eq!(processing_request(&other), None);
    }

    #[test]
    fn sequence_numbers_compare_numerically() {
        use std::cmp::Ordering::*;
        assert_eq!(seq_cmp("9", "10"), Less);
        assert_eq!(
            seq_cmp("1100000000017454423010", "1100000000017454423009"),
            Greater
        );
        assert_eq!(seq_cmp("007", "7"), Equal);
    }
}

/// Which of Orderly's streams a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Orders,
    Events,
}

/// What relaying one change record did.
#[derive(Debug, Clone, PartialEq)]
pub enum Relayed {
    /// The order's processing message was sent to the orders queue.
    Queued(OrderId),
    /// The event was published on the bus.
    Published(Box<DomainEvent>),
    /// Nothing to relay in this record.
    Ignored,
}

/// The relay of both runtimes (the `relay` Lambda function and `serve --backend aws`'s
/// relay loop): a change of the orders table that requests processing sends the order's
/// processing message to `orders_queue`; an event item inserted into the events table is
/// published on `bus`. At least once: a failure is answered and the caller relays the
/// record again (everything downstream is idempotent).
pub async fn relay_change(
    stream: Stream,
    change: &ChangeRecord,
    queue: &dyn orderly_core::ports::Queue,
    orders_queue: &str,
    bus: Option<&dyn orderly_core::ports::EventBus>,
) -> Result<Relayed, StoreError> {
    match stream {
        Stream::Orders => {
            let Some(id) = processing_request(change) else {
                return Ok(Relayed::Ignored);
            };
            queue
                .send(
                    orders_queue,
                    &orderly_core::ports::processing_message(id),
                    std::time::Duration::ZERO,
                )
                .await?;
            Ok(Relayed::Queued(id))
        }
        Stream::Events => {
            let Some(event) = event_of(change)? else {
                return Ok(Relayed::Ignored);
            };
            let bus = bus
                .ok_or_else(|| StoreError::Backend("relaying events needs the event bus".into()))?;
            bus.publish(std::slice::from_ref(&event)).await?;
            Ok(Relayed::Published(Box::new(event)))
        }
    }
}
