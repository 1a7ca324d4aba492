//! `relay`: the DynamoDB streams of the orders and events tables, read by Lambda event
//! source mappings (with `ReportBatchItemFailures`).
//!
//! - An order inserted, or one whose `enqueueSeq` grew (a cancellation), gets its
//!   processing message on the orders queue. The order and the fact that it must be
//!   processed are one DynamoDB write; the stream makes the send follow it, so the API
//!   function never writes and then sends.
//! - An event inserted into the events table (the audit log) is published to the
//!   EventBridge bus.
//!
//! Records are handled in stream order; at the first failure the handler stops and
//! reports that record, so Lambda retries from it (everything downstream is idempotent).

use orderly_aws::dynamo::stream::{Relayed, Stream, record_from_lambda, relay_change};
use orderly_core::ports::ORDERS_QUEUE;
use serde_json::{Value, json};

use crate::Lambda;

/// The table a stream record comes from: `arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>`.
fn table_of(record: &Value) -> Option<&str> {
    let arn = record.get("eventSourceARN")?.as_str()?;
    let rest = arn.split_once(":table/")?.1;
    Some(rest.split_once("/stream/").map_or(rest, |(t, _)| t))
}

async fn relay_one(l: &Lambda, record: &Value) -> Result<Relayed, String> {
    let tables = l.deployment.tables();
    let table = table_of(record).ok_or("stream record has no table in eventSourceARN")?;
    let stream = if table == tables.orders {
        Stream::Orders
    } else if table == tables.events {
        Stream::Events
    } else {
        return Err(format!("stream record of an unknown table {table}"));
    };
    let change = record_from_lambda(record).map_err(|e| e.to_string())?;
    // The relay's rules are orderly-aws's, shared with `serve --backend aws`.
    let out = relay_change(
        stream,
        &change,
        l.app.queue().as_ref(),
        ORDERS_QUEUE,
        l.bus.as_deref(),
    )
    .await
    .map_err(|e| e.to_string())?;
    match &out {
        Relayed::Queued(id) => tracing::info!(order_id = %id, "processing queued"),
        Relayed::Published(e) => {
            tracing::info!(order_id = %e.order_id, event = %e.detail_type, "event published")
        }
        Relayed::Ignored => {}
    }
    Ok(out)
}

/// Handles a DynamoDB stream batch; answers the partial batch response.
pub async fn handle(l: &Lambda, event: Value) -> Result<Value, String> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or("not a DynamoDB stream event: no Records")?;
    let (mut queued, mut published) = (0, 0);
    for record in records {
        match relay_one(l, record).await {
            Ok(Relayed::Queued(_)) => queued += 1,
            Ok(Relayed::Published(_)) => published += 1,
            Ok(Relayed::Ignored) => {}
            Err(e) => {
                let seq = record
                    .pointer("/dynamodb/SequenceNumber")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                tracing::warn!(error = %e, sequence_number = seq, "relay failed; Lambda retries from this record");
                return Ok(json!({ "batchItemFailures": [ { "itemIdentifier": seq } ] }));
            }
        }
    }
    tracing::debug!(queued, published, "stream batch relayed");
    Ok(json!({ "batchItemFailures": [] }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_comes_from_the_source_arn() {
        let r = json!({ "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/shop-orders/stream/2026-11-23T00:00:00.000" });
        assert_eq!(table_of(&r), Some("shop-orders"));
        assert_eq!(table_of(&json!({})), None);
    }
}
