//! The deployment manifest: what the code of the functions expects of the AWS stack,
//! written to `deploy/terraform/orderly.manifest.json` (a test fails when the committed
//! file is stale) and checked against the Terraform by `deploy/checks/check_terraform.py`:
//! each function's binary, the environment variables it needs, the AWS actions its
//! adapters and triggers call (from [`orderly_aws::iam`]), the tables with their keys,
//! indexes, streams and TTL (from [`orderly_aws::dynamo::table_specs`]), the queue with its
//! dead-letter queue, the generated state machine and the request schema.

use orderly_aws::deployment::{
    ENV_EVENT_BUS, ENV_NOTIFY_TOPIC_ARN, ENV_PREFIX, ENV_STATE_MACHINE_ARN,
};
use orderly_aws::dynamo::{Tables, table_specs};
use orderly_aws::iam::{
    DYNAMO_STORE, EVENT_BUS, SAGA_STARTER, SNS_NOTIFIER, SQS_QUEUE, SQS_SEND, SQS_SOURCE,
    STREAM_SOURCE, union,
};
use orderly_core::ports::{DLQ_RETENTION_SECS, MAX_RECEIVES, ORDERS_QUEUE};
use serde_json::{Value, json};

/// One Lambda function as the code defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The function's short name (`saga-step`).
    pub name: &'static str,
    /// The cargo binary, and so the directory of its zip (`orderly-saga-step`).
    pub binary: &'static str,
    /// Variables the function cannot do without in a deployment.
    pub env_required: Vec<&'static str>,
    /// Every AWS action its adapters and its trigger call.
    pub actions: Vec<&'static str>,
}

/// The functions, what they need and what they call.
pub fn functions() -> Vec<Function> {
    vec![
        Function {
            name: "api",
            binary: "orderly-api",
            env_required: vec![ENV_PREFIX, crate::ENV_AUTH_MODE],
            // The order store, and the orders queue for the admin dead-letter routes.
            actions: union(&[DYNAMO_STORE, SQS_QUEUE]),
        },
        Function {
            name: "relay",
            binary: "orderly-relay",
            env_required: vec![ENV_PREFIX, ENV_EVENT_BUS],
            actions: union(&[SQS_SEND, EVENT_BUS, STREAM_SOURCE]),
        },
        Function {
            name: "intake",
            binary: "orderly-intake",
            env_required: vec![ENV_PREFIX, ENV_STATE_MACHINE_ARN],
            actions: union(&[DYNAMO_STORE, SAGA_STARTER, SQS_SOURCE]),
        },
        Function {
            name: "saga-step",
            binary: "orderly-saga-step",
            env_required: vec![ENV_PREFIX],
            actions: union(&[DYNAMO_STORE]),
        },
        Function {
            name: "events",
            binary: "orderly-events",
            env_required: vec![ENV_PREFIX, ENV_NOTIFY_TOPIC_ARN],
            actions: union(&[DYNAMO_STORE, SNS_NOTIFIER]),
        },
        Function {
            name: "dlq-replay",
            binary: "orderly-dlq-replay",
            env_required: vec![ENV_PREFIX],
            actions: union(&[SQS_QUEUE]),
        },
    ]
}

/// The manifest as JSON (names are suffixes after the deployment's prefix).
pub fn manifest() -> Value {
    let mut fns = serde_json::Map::new();
    for f in functions() {
        fns.insert(
            f.name.into(),
            json!({ "binary": f.binary, "env_required": f.env_required, "actions": f.actions }),
        );
    }
    let mut tables = serde_json::Map::new();
    for t in table_specs(&Tables::with_prefix("")) {
        let indexes: serde_json::Map<String, Value> = t
            .indexes
            .iter()
            .map(|i| (i.name.to_owned(), json!([i.hash_key, i.range_key])))
            .collect();
        tables.insert(
            t.role.into(),
            json!({
                "name": t.name,
                "hash_key": t.hash_key,
                "range_key": t.range_key,
                "indexes": indexes,
                "stream": t.stream.as_ref().map(|s| s.as_str()),
                "ttl": t.ttl,
            }),
        );
    }
    json!({
        "functions": fns,
        "tables": tables,
        "queues": {
            ORDERS_QUEUE: {
                "name": orderly_aws::sqs::queue_name("", ORDERS_QUEUE),
                "dlq": orderly_aws::sqs::dlq_name("", ORDERS_QUEUE),
                "max_receive_count": MAX_RECEIVES,
                "dlq_retention_seconds": DLQ_RETENTION_SECS,
            }
        },
        "state_machine": {
            "definition": "saga.asl.json",
            "placeholder": orderly_aws::asl::FUNCTION_PLACEHOLDER
                .trim_start_matches("${")
                .trim_end_matches('}'),
        },
        "request_schema": "create_order.schema.json",
    })
}

/// [`manifest`] as the pretty-printed JSON committed in `deploy/terraform`.
pub fn manifest_text() -> String {
    let mut s = serde_json::to_string_pretty(&manifest()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_is_current(file: &str, fresh: &str) {
        let path = format!(
            "{}/../../deploy/terraform/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        if std::env::var_os(orderly_config::env::harness::UPDATE_GENERATED).is_some() {
            std::fs::write(&path, fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "deploy/terraform/{file} is stale: rerun this test with ORDERLY_UPDATE_GENERATED=1"
        );
    }

    #[test]
    fn the_committed_manifest_is_current() {
        committed_is_current("orderly.manifest.json", &manifest_text());
    }

    #[test]
    fn the_committed_request_schema_is_current() {
        let mut schema = serde_json::to_string_pretty(
            &<orderly_core::input::CreateOrderBody as orderly_core::shape::Shape>::gateway_model(),
        )
        .unwrap();
        schema.push('\n');
        committed_is_current("create_order.schema.json", &schema);
    }

    #[test]
    fn every_function_is_a_binary_of_this_crate() {
        let cargo = include_str!("../Cargo.toml");
        for f in functions() {
            assert!(
                cargo.contains(&format!("name = \"{}\"", f.binary)),
                "{} has no [[bin]]",
                f.binary
            );
            assert!(f.env_required.contains(&ENV_PREFIX));
        }
        assert_eq!(cargo.matches("[[bin]]").count(), functions().len());
    }
}
