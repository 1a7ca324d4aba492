//! The AWS actions the adapters call at run time, so that each Lambda function's IAM
//! policy grants exactly what its code calls and nothing more. A test reads the adapters'
//! source and checks that every SDK operation they call is listed here (provisioning
//! calls such as `create_tables` are not run by the functions and are not granted).

/// Everything the DynamoDB adapters do with the tables ([`crate::dynamo::DynamoStore`]):
/// `TransactWriteItems` is authorised per action inside it (put, update, condition check).
pub const DYNAMO_STORE: &[&str] = &[
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
];

/// Everything the SQS queue adapter does (receive, settle, dead letters, depth).
pub const SQS_QUEUE: &[&str] = &[
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
];

/// What `Queue::send` of the SQS adapter does (the relay only sends).
pub const SQS_SEND: &[&str] = &["sqs:GetQueueUrl", "sqs:SendMessage"];

/// The EventBridge bus adapter.
pub const EVENT_BUS: &[&str] = &["events:PutEvents"];

/// The SNS notifier.
pub const SNS_NOTIFIER: &[&str] = &["sns:Publish"];

/// Starting saga executions.
pub const SAGA_STARTER: &[&str] = &["states:StartExecution"];

/// What a Lambda event source mapping on a DynamoDB stream does with the function's role.
pub const STREAM_SOURCE: &[&str] = &[
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
];

/// What a Lambda event source mapping on an SQS queue does with the function's role.
pub const SQS_SOURCE: &[&str] = &[
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
];

/// The union of some action lists, sorted and without duplicates.
pub fn union(lists: &[&[&'static str]]) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = lists.iter().flat_map(|l| l.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The operations of each service an adapter could call (a superset of what Orderly
    /// calls: anything here found in a source file must be declared).
    const OPERATIONS: &[(&str, &[&str])] = &[
        (
            "dynamodb",
            &[
                "batch_get_item",
                "batch_write_item",
                "create_table",
                "delete_item",
                "delete_table",
                "describe_table",
                "execute_statement",
                "get_item",
                "list_tables",
                "put_item",
                "query",
                "scan",
                "transact_get_items",
                "transact_write_items",
                "update_item",
                "update_time_to_live",
            ],
        ),
        (
            "sqs",
            &[
                "change_message_visibility",
                "change_message_visibility_batch",
                "create_queue",
                "delete_message",
                "delete_message_batch",
                "get_queue_attributes",
                "get_queue_url",
                "list_queues",
                "purge_queue",
                "receive_message",
                "send_message",
                "send_message_batch",
                "set_queue_attributes",
                "start_message_move_task",
            ],
        ),
        (
            "events",
            &["create_event_bus", "put_events", "put_rule", "put_targets"],
        ),
        (
            "sns",
            &["create_topic", "publish", "publish_batch", "subscribe"],
        ),
        (
            "states",
            &[
                "describe_execution",
                "start_execution",
                "start_sync_execution",
            ],
        ),
    ];

    fn camel(op: &str) -> String {
        op.split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The SDK operations called in `source` (outside `provisioning`), as IAM actions.
    fn called(service: &str, source: &str, provisioning: &[&str]) -> BTreeSet<String> {
        let ops = OPERATIONS
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, o)| *o)
            .unwrap_or_default();
        let mut out = BTreeSet::new();
        for op in ops {
            if provisioning.contains(op) || !source.contains(&format!(".{op}()")) {
                continue;
            }
            if *op == "transact_write_items" {
                // Authorised per item of the transaction.
                for (builder, action) in [
                    ("Put::builder()", "PutItem"),
                    ("Update::builder()", "UpdateItem"),
                    ("ConditionCheck::builder()", "ConditionCheckItem"),
                    ("Delete::builder()", "DeleteItem"),
                ] {
                    if source.contains(builder) {
                        out.insert(format!("dynamodb:{action}"));
                    }
                }
                continue;
            }
            // SQS authorises a batch call with the action of its single form.
            let op = if service == "sqs" {
                op.strip_suffix("_batch").unwrap_or(op)
            } else {
                op
            };
            out.insert(format!("{service}:{}", camel(op)));
        }
        out
    }

    fn set(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_declared_actions_are_what_the_adapters_call() {
        let dynamo = [
            include_str!("dynamo/mod.rs"),
            include_str!("dynamo/saga.rs"),
            include_str!("dynamo/keys.rs"),
        ]
        .concat();
        assert_eq!(
            called("dynamodb", &dynamo, &[]),
            set(DYNAMO_STORE),
            "DynamoDB adapters"
        );
        // Provisioning (create_queues) is not run by the functions.
        let sqs = include_str!("sqs.rs");
        assert_eq!(
            called("sqs", sqs, &["create_queue", "set_queue_attributes"]),
            set(SQS_QUEUE),
            "SQS adapter"
        );
        assert_eq!(
            called(
                "events",
                include_str!("eventbridge.rs"),
                &["create_event_bus", "put_rule", "put_targets"]
            ),
            set(EVENT_BUS)
        );
        assert_eq!(
            called("sns", include_str!("sns.rs"), &[]),
            set(SNS_NOTIFIER)
        );
        assert_eq!(
            called("states", include_str!("sfn.rs"), &[]),
            set(SAGA_STARTER)
        );
        // The provisioning code really is elsewhere: the table definitions call these.
        assert!(
            called("dynamodb", include_str!("dynamo/schema.rs"), &[])
                .contains("dynamodb:CreateTable")
        );
        assert!(SQS_SEND.iter().all(|a| SQS_QUEUE.contains(a)));
        assert!(SQS_SOURCE.iter().all(|a| SQS_QUEUE.contains(a)));
    }

    #[test]
    fn union_sorts_and_dedups() {
        assert_eq!(
            union(&[SQS_SEND, SQS_SOURCE]),
            [
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ReceiveMessage",
                "sqs:SendMessage"
            ]
        );
    }
}
