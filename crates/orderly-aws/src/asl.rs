//! The Step Functions state machine of the saga, generated from the saga definition of
//! `orderly-core` ([`SagaDef`]), so that the serverless saga and the local engine cannot
//! drift apart. `orderly asl` prints it; `deploy/terraform/saga.asl.json` is this output
//! (a test fails when the committed file is stale).
//!
//! Shape (one Task per action, each invoking the `saga-step` function with
//! `{"orderId", "action", "retryCount"}`):
//!
//! - forward steps in order, then `Done` (Succeed);
//! - one compensation chain, newest first (`RefundPayment` -> `ReleaseInventory`), then
//!   `FailOrder`, then `SagaFailed`, a `Fail` state: a compensated saga is a *failed*
//!   execution, so CloudWatch's `ExecutionsFailed` (and the failure-rate alarm) counts it;
//! - `Retry` only on `Orderly.Retryable` (and Lambda's own transient errors), with the
//!   step's backoff, `MaxDelaySeconds` and full jitter; `Catch` of `Orderly.Final` enters the
//!   chain at the compensation of the newest completed step (as the local engine does);
//!   any other error (retries exhausted, a timeout) enters it at the step's *own*
//!   compensation, since the step may have taken effect before failing (compensations are
//!   idempotent and harmless when nothing happened);
//! - a best-effort step (`EmitOrderPlaced`) catches everything into `Done`.
//!
//! It is meant for a **Standard** workflow: Standard executions are unique by name for 90
//! days, so the `worker` function starting the execution named by the order id twice (a
//! duplicated SQS message, a replayed dead letter) starts one saga. Express workflows do not
//! deduplicate names and would run the saga twice.

use serde_json::{Map, Value, json};

use orderly_core::saga::{Action, FINAL, RetryPolicy, SagaDef};

/// The Terraform `templatefile` variable the saga-step function's ARN is substituted for.
pub const FUNCTION_PLACEHOLDER: &str = "${saga_step_function_arn}";
/// The terminal state of a saga that completed.
pub const DONE: &str = "Done";
/// The terminal state of a compensated saga (a `Fail` state).
pub const SAGA_FAILED: &str = "SagaFailed";
/// The error name of a compensated saga's failed execution.
pub const SAGA_FAILED_ERROR: &str = "Orderly.SagaFailed";

/// Errors of the Lambda service itself (throttling, a restarting runtime) that AWS
/// recommends retrying for every Lambda task.
const LAMBDA_TRANSIENT: [&str; 4] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

fn secs_ceil(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

fn retriers(policy: &RetryPolicy) -> Value {
    let mut out = Vec::new();
    if policy.max_attempts > 1 {
        let mut r = json!({
            "ErrorEquals": policy.retry_on,
            "IntervalSeconds": secs_ceil(policy.base_delay_ms),
            "MaxAttempts": policy.max_attempts - 1,
            "BackoffRate": policy.backoff_rate,
            "MaxDelaySeconds": secs_ceil(policy.max_delay_ms),
        });
        if policy.jitter {
            r["JitterStrategy"] = json!("FULL");
        }
        out.push(r);
    }
    out.push(json!({
        "ErrorEquals": LAMBDA_TRANSIENT,
        "IntervalSeconds": 1,
        "MaxAttempts": 3,
        "BackoffRate": 2.0,
        "MaxDelaySeconds": 10,
        "JitterStrategy": "FULL",
    }));
    Value::Array(out)
}

fn task(
    action: Action,
    timeout_secs: u32,
    policy: &RetryPolicy,
    with_reason: bool,
) -> Map<String, Value> {
    let mut payload = json!({
        "orderId.$": "$.orderId",
        "action": action.as_str(),
        "retryCount.$": "$$.State.RetryCount",
    });
    if with_reason {
        payload["reason.$"] = json!("$.error");
    }
    let mut m = Map::new();
    m.insert("Type".into(), json!("Task"));
    m.insert("Comment".into(), json!(format!("saga-step: {action}")));
    m.insert("Resource".into(), json!("arn:aws:states:::lambda:invoke"));
    m.insert(
        "Parameters".into(),
        json!({ "FunctionName": FUNCTION_PLACEHOLDER, "Payload": payload }),
    );
    // The state data stays `{"orderId", "error"?}`: task results are not kept.
    m.insert("ResultPath".into(), Value::Null);
    m.insert("TimeoutSeconds".into(), json!(timeout_secs));
    m.insert("Retry".into(), retriers(policy));
    m
}

/// The chain of compensations, newest first, then `FailOrder`.
fn chain(saga: &SagaDef) -> Vec<Action> {
    let mut c = saga.all_compensations();
    c.push(Action::FailOrder);
    c
}

/// Where a failure of the step at `idx` enters the compensation chain: at the
/// compensation of the newest step before it (a final error) or of the step itself too
/// (`own`: the step's outcome is unknown).
fn entry(saga: &SagaDef, idx: usize, own: bool) -> Action {
    let upto = if own { idx + 1 } else { idx };
    saga.steps[..upto]
        .iter()
        .rev()
        .find_map(|s| s.compensation)
        .unwrap_or(Action::FailOrder)
}

/// The state machine definition (Amazon States Language) of `saga`.
pub fn definition(saga: &SagaDef) -> Value {
    let mut states = Map::new();
    for (i, step) in saga.steps.iter().enumerate() {
        let mut t = task(step.action, step.timeout_secs, &step.retry, false);
        let next = saga.steps.get(i + 1).map_or(DONE, |s| s.action.as_str());
        t.insert("Next".into(), json!(next));
        let catch = if step.best_effort {
            json!([{ "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": DONE }])
        } else {
            json!([
                { "ErrorEquals": [FINAL], "ResultPath": "$.error",
                  "Next": entry(saga, i, false).as_str() },
                { "ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                  "Next": entry(saga, i, true).as_str() },
            ])
        };
        t.insert("Catch".into(), catch);
        states.insert(step.action.as_str().into(), Value::Object(t));
    }
    let chain = chain(saga);
    for (i, action) in chain.iter().enumerate() {
        let fail = *action == Action::FailOrder;
        let mut t = task(
            *action,
            saga.compensation_timeout_secs,
            &saga.compensation_retry,
            fail,
        );
        let next = chain.get(i + 1).map_or(SAGA_FAILED, |a| a.as_str());
        t.insert("Next".into(), json!(next));
        states.insert(action.as_str().into(), Value::Object(t));
    }
    states.insert(DONE.into(), json!({ "Type": "Succeed" }));
    states.insert(
        SAGA_FAILED.into(),
        json!({
            "Type": "Fail",
            "Error": SAGA_FAILED_ERROR,
            "Cause": "The saga failed and was compensated; the order is FAILED with its reason.",
        }),
    );
    let first = saga.steps.first().map_or(DONE, |s| s.action.as_str());
    let worst: u64 = saga.worst_case().as_secs() + 60;
    json!({
        "Comment": "Orderly order saga, generated from orderly-core's SagaDef by `orderly asl`; \
                    do not edit. Run it as a STANDARD workflow: executions are named by order \
                    id and Standard workflows refuse a second execution of a name, which is \
                    what makes a duplicated start harmless (Express workflows do not).",
        "StartAt": first,
        "TimeoutSeconds": worst,
        "States": states,
    })
}

/// [`definition`] as the pretty-printed JSON committed in `deploy/terraform`.
pub fn definition_text(saga: &SagaDef) -> String {
    let mut s = serde_json::to_string_pretty(&definition(saga)).unwrap_or_default();
    s.push('\n');
    s
}

/// The Task states an execution visits when step `failed` fails with a final error (or
/// none fails), read off the definition by following `Next` and the `Orderly.Final`
/// catchers: what the local engine's [`SagaDef::path`] must equal.
pub fn visited(definition: &Value, failed: Option<&str>) -> Vec<String> {
    let states = &definition["States"];
    let mut out = Vec::new();
    let mut at = definition["StartAt"].as_str().map(str::to_owned);
    let mut guard = 0;
    while let Some(name) = at.take() {
        guard += 1;
        if guard > 64 {
            break;
        }
        let s = &states[name.as_str()];
        if s["Type"] != "Task" {
            break;
        }
        out.push(name.clone());
        let next = if failed == Some(name.as_str()) {
            s["Catch"].as_array().and_then(|cs| {
                cs.iter()
                    .find(|c| {
                        c["ErrorEquals"]
                            .as_array()
                            .is_some_and(|e| e.iter().any(|x| x == FINAL || x == "States.ALL"))
                    })
                    .and_then(|c| c["Next"].as_str())
            })
        } else {
            s["Next"].as_str()
        };
        at = next.map(str::to_owned);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderly_core::saga::{RETRYABLE, SagaSettings};

    fn saga() -> SagaDef {
        SagaDef::orders(SagaSettings::default())
    }

    #[test]
    fn every_path_of_the_definition_is_the_local_engines_path() {
        let saga = saga();
        let def = definition(&saga);
        let names = |v: Vec<Action>| v.iter().map(|a| a.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(visited(&def, None), names(saga.path(None)));
        for step in &saga.steps {
            assert_eq!(
                visited(&def, Some(step.action.as_str())),
                names(saga.path(Some(step.action))),
                "{}",
                step.action
            );
        }
    }

    #[test]
    fn retries_only_retryable_errors_and_catches_final_ones() {
        let def = definition(&saga());
        let pay = &def["States"]["ProcessPayment"];
        assert_eq!(pay["Retry"][0]["ErrorEquals"], json!([RETRYABLE]));
        assert_eq!(pay["Retry"][0]["MaxAttempts"], 2, "3 attempts in all");
        assert_eq!(pay["Retry"][0]["IntervalSeconds"], 2);
        assert_eq!(pay["Retry"][0]["JitterStrategy"], "FULL");
        assert!(pay["Retry"][0]["MaxDelaySeconds"].as_u64().unwrap() >= 2);
        assert!(
            def.to_string().matches(FINAL).count() >= 3,
            "final errors are caught, never retried"
        );
        for r in pay["Retry"].as_array().unwrap() {
            assert!(!r["ErrorEquals"].as_array().unwrap().contains(&json!(FINAL)));
        }
        assert_eq!(pay["Catch"][0]["Next"], "ReleaseInventory");
        assert_eq!(
            pay["Catch"][1]["Next"], "RefundPayment",
            "unknown outcome: refund too"
        );
        assert_eq!(
            def["States"]["ReserveInventory"]["Catch"][0]["Next"],
            "FailOrder"
        );
        assert_eq!(
            def["States"]["ReserveInventory"]["Catch"][1]["Next"],
            "ReleaseInventory"
        );
        assert_eq!(def["States"]["FailOrder"]["Next"], SAGA_FAILED);
        assert_eq!(
            def["States"]["FailOrder"]["Parameters"]["Payload"]["reason.$"],
            "$.error"
        );
        assert_eq!(def["States"][SAGA_FAILED]["Type"], "Fail");
        assert_eq!(def["States"]["EmitOrderPlaced"]["Catch"][0]["Next"], DONE);
        for (name, s) in def["States"].as_object().unwrap() {
            if s["Type"] == "Task" {
                assert!(s["TimeoutSeconds"].as_u64().unwrap() > 0, "{name}");
                assert_eq!(s["Parameters"]["FunctionName"], FUNCTION_PLACEHOLDER);
            }
        }
    }

    #[test]
    fn the_committed_definition_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/terraform/saga.asl.json"
        );
        let fresh = definition_text(&saga());
        if std::env::var_os(orderly_config::env::harness::UPDATE_GENERATED).is_some() {
            std::fs::write(path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == fresh,
            "deploy/terraform/saga.asl.json is stale: run `orderly asl > deploy/terraform/saga.asl.json` \
             (or this test with ORDERLY_UPDATE_GENERATED=1)"
        );
    }
}
