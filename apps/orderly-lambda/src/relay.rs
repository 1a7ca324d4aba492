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

use orderly_aws::dynamo::stream::{event_of, processing_request, record_from_lambda};
use orderly_core::ports::{ORDERS_QUEUE, processing_message};
use serde_json::{Value, json};

use crate::Lambda;

/// The table a stream record comes from: `arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>`.
fn table_of(record: &Value) -> Option<&str> {
    let arn = record.get("eventSourceARN")?.as_str()?;
    let rest = arn.split_once(":table/")?.1;
    Some(rest.split_once("/stream/").map_or(rest, |(t, _)| t))
}

/// What relaying one record did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Relayed {
    Queued,
    Published,
    Ignored,
}

async fn relay_one(l: &Lambda, record: &Value) -> Result<Relayed, String> {
    let tables = l.deployment.tables();
    let table = table_of(record).ok_or("stream record has no table in eventSourceARN")?;
    let change = record_from_lambda(record).map_err(|e| e.to_string())?;
    if table == tables.orders {
        let Some(id) = processing_request(&change) else {
            return Ok(Relayed::Ignored);
        };
        l.app
            .ports()
            .queue
            .send(
                ORDERS_QUEUE,
                &processing_message(id),
                std::time::Duration::ZERO,
            )
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(order_id = %id, "processing queued");
        Ok(Relayed::Queued)
    } else if table == tables.events {
        let Some(event) = event_of(&change).map_err(|e| e.to_string())? else {
            return Ok(Relayed::Ignored);
        };
        l.bus
            .publish(std::slice::from_ref(&event))
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(order_id = %event.order_id, event = %event.detail_type, "event published");
        Ok(Relayed::Published)
    } else {
        Err(format!("stream record of an unknown table {table}"))
    }
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
            Ok(Relayed::Queued) => queued += 1,
            Ok(Relayed::Published) => published += 1,
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
