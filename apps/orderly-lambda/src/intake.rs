//! `intake`: the orders queue (SQS, partial batch responses). Each message names an order:
//! a pending or confirmed order gets its saga started as a Step Functions execution named
//! by the order id (so a message delivered twice starts one execution); a cancelled order
//! gets its compensations (refund, release), each idempotent; a failed or fulfilled order
//! needs nothing, so a replayed dead letter of a finished order changes nothing.

use orderly_aws::sfn::SagaStart;
use orderly_core::OrderStatus;
use orderly_core::execution::{Intake, Pause};
use orderly_core::ports::parse_processing_message;
use serde_json::{Value, json};

use crate::Lambda;

/// What one message led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    SagaStarted,
    SagaAlreadyStarted,
    Compensated,
    NothingToDo(OrderStatus),
}

/// Handles one message body.
pub async fn process(l: &Lambda, body: &str) -> Result<Outcome, String> {
    let id = parse_processing_message(body)?;
    // The status check and a cancelled order's compensations are core's rules.
    match l
        .app
        .intake(&l.saga, id, &TokioPause)
        .await
        .map_err(|e| e.0)?
    {
        Intake::Saga(_) => {
            let starter = l
                .starter
                .as_ref()
                .ok_or("ORDERLY_STATE_MACHINE_ARN is not set")?;
            match starter.start(id).await.map_err(|e| e.to_string())? {
                SagaStart::Started(arn) => {
                    tracing::info!(order_id = %id, execution = %arn, "saga started");
                    Ok(Outcome::SagaStarted)
                }
                SagaStart::AlreadyStarted => Ok(Outcome::SagaAlreadyStarted),
            }
        }
        Intake::Compensated => Ok(Outcome::Compensated),
        Intake::Done(st) => Ok(Outcome::NothingToDo(st)),
    }
}

/// Waits with tokio's timer (between attempts of a compensation).
struct TokioPause;

#[async_trait::async_trait]
impl Pause for TokioPause {
    async fn pause(&self, d: std::time::Duration) {
        tokio::time::sleep(d).await;
    }
}

pub async fn handle(l: &Lambda, event: Value) -> Result<Value, String> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or("not an SQS event: no Records")?;
    let mut failures = Vec::new();
    for r in records {
        let id = r
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let body = r.get("body").and_then(Value::as_str).unwrap_or_default();
        match process(l, body).await {
            Ok(outcome) => tracing::debug!(message = id, ?outcome, "message processed"),
            Err(e) => {
                tracing::warn!(message = id, error = %e, "message failed; it will be retried");
                failures.push(json!({ "itemIdentifier": id }));
            }
        }
    }
    Ok(json!({ "batchItemFailures": failures }))
}
