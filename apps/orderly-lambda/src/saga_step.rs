//! `saga-step`: the task handler of the saga's state machine. One invocation runs one
//! saga action (a step, a compensation or `FailOrder`) for one order through the saga use
//! case of `orderly-core` ([`orderly_core::Orderly::saga_task`]), which shares its rules
//! with the local engine; each action is idempotent by (order, action): a retried or
//! duplicated task changes nothing twice.
//!
//! Input: `{"orderId": "...", "action": "ReserveInventory", "retryCount": 0, "reason": ...}`
//! where `retryCount` is the state's `$$.State.RetryCount` and `reason` (for `FailOrder`)
//! is the error a `Catch` caught (`{"Error", "Cause"}`) or a string.
//!
//! Errors carry the name the state machine's `Retry`/`Catch` match on:
//! `Orderly.Retryable` (try again) or `Orderly.Final` (compensate). When payment fails
//! transiently on its last allowed attempt, core's exhaustion rule records the failure (so
//! no later attempt charges an order whose stock was released) and answers it as final.

use orderly_core::OrderId;
use orderly_core::actions::StepError;
use orderly_core::saga::Action;
use serde_json::{Value, json};

use crate::Lambda;

/// A failed step as Step Functions sees it: the retry class is the error type its
/// `Retry`/`Catch` match on, the reason the message.
pub fn diagnostic(e: StepError) -> lambda_runtime::Diagnostic {
    lambda_runtime::Diagnostic {
        error_type: e.name().to_owned(),
        error_message: e.to_string(),
    }
}

fn fatal(msg: impl Into<String>) -> StepError {
    StepError::Final(msg.into())
}

/// The failure reason from a `Catch` result: the Lambda error's message if the cause is
/// the JSON Lambda reports, else the cause or error name as they are.
fn reason_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => {
            let cause = o.get("Cause").and_then(Value::as_str);
            if let Some(c) = cause {
                if let Ok(inner) = serde_json::from_str::<Value>(c)
                    && let Some(m) = inner.get("errorMessage").and_then(Value::as_str)
                {
                    return Some(m.to_owned());
                }
                return Some(c.to_owned());
            }
            o.get("Error").and_then(Value::as_str).map(str::to_owned)
        }
        _ => None,
    }
}

pub async fn handle(l: &Lambda, input: Value) -> Result<Value, lambda_runtime::Diagnostic> {
    run(l, input).await.map_err(diagnostic)
}

async fn run(l: &Lambda, input: Value) -> Result<Value, StepError> {
    let id: OrderId = input
        .get("orderId")
        .and_then(Value::as_str)
        .ok_or_else(|| fatal("task input has no orderId"))?
        .parse()
        .map_err(|e| fatal(format!("orderId: {e}")))?;
    let action_name = input
        .get("action")
        .and_then(Value::as_str)
        .ok_or_else(|| fatal("task input has no action"))?;
    let action =
        Action::parse(action_name).ok_or_else(|| fatal(format!("unknown action {action_name}")))?;
    let attempt = input
        .get("retryCount")
        .and_then(Value::as_u64)
        .map_or(1, |n| {
            u32::try_from(n).unwrap_or(u32::MAX).saturating_add(1)
        });
    let reason = input.get("reason").and_then(reason_of);
    l.app
        .saga_task(&l.saga, id, action, attempt, reason.as_deref())
        .await?;
    Ok(json!({ "orderId": id, "action": action, "outcome": "ok" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_from_catch_results() {
        let lambda_cause = json!({
            "Error": "Orderly.Final",
            "Cause": "{\"errorType\":\"Orderly.Final\",\"errorMessage\":\"insufficient stock for PROD-001\"}"
        });
        assert_eq!(
            reason_of(&lambda_cause).as_deref(),
            Some("insufficient stock for PROD-001")
        );
        assert_eq!(
            reason_of(&json!({"Error": "States.Timeout", "Cause": "timed out"})).as_deref(),
            Some("timed out")
        );
        assert_eq!(
            reason_of(&json!({"Error": "States.Timeout"})).as_deref(),
            Some("States.Timeout")
        );
        assert_eq!(reason_of(&json!("plain")).as_deref(), Some("plain"));
        assert_eq!(reason_of(&json!(3)), None);
    }

    #[test]
    fn failures_are_named_for_retry_and_catch() {
        let d = diagnostic(StepError::Retryable("busy".into()));
        assert_eq!(d.error_type, "Orderly.Retryable");
        let d = diagnostic(fatal("declined"));
        assert_eq!(
            (d.error_type.as_str(), d.error_message.as_str()),
            ("Orderly.Final", "declined")
        );
    }
}
