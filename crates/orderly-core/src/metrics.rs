//! Every metric Orderly records, named once. The names follow Prometheus conventions
//! (`_total` counters, `_seconds` durations); in Lambda the same names go out as
//! CloudWatch embedded-metric-format log lines. Recording goes through the `metrics`
//! facade, which does nothing until a binary installs a recorder.

/// Orders accepted (`POST /orders` answered 201, not counting idempotent replays).
pub const ORDERS_CREATED: &str = "orderly_orders_created_total";
pub const ORDERS_CONFIRMED: &str = "orderly_orders_confirmed_total";
pub const ORDERS_FAILED: &str = "orderly_orders_failed_total";
pub const ORDERS_CANCELLED: &str = "orderly_orders_cancelled_total";
pub const ORDERS_FULFILLED: &str = "orderly_orders_fulfilled_total";
/// Charges that succeeded.
pub const PAYMENTS_PROCESSED: &str = "orderly_payments_processed_total";
/// Charges declined or failed for good (transient attempts that were retried not counted).
pub const PAYMENTS_FAILED: &str = "orderly_payments_failed_total";
/// Orders whose stock was reserved / released.
pub const INVENTORY_RESERVED: &str = "orderly_inventory_reserved_total";
pub const INVENTORY_RELEASED: &str = "orderly_inventory_released_total";

/// HTTP requests, labels `route` (the matched route template, or `unmatched`), `method`,
/// `status`.
pub const HTTP_REQUESTS: &str = "orderly_http_requests_total";
/// HTTP latency histogram, labels `route`, `method`.
pub const HTTP_REQUEST_DURATION: &str = "orderly_http_request_duration_seconds";
/// From order creation to a terminal status, label `outcome` (`fulfilled`, `failed`,
/// `cancelled`).
pub const SAGA_DURATION: &str = "orderly_saga_duration_seconds";
/// Messages waiting and in flight, label `queue`.
pub const QUEUE_DEPTH: &str = "orderly_queue_depth";
/// Age of the oldest message, label `queue`.
pub const QUEUE_OLDEST_AGE: &str = "orderly_queue_oldest_message_age_seconds";
/// Dead letters over all queues.
pub const DLQ_DEPTH: &str = "orderly_dlq_depth";
/// Webhook deliveries, label `outcome` (`delivered`, `retried`, `dead`).
pub const WEBHOOK_DELIVERIES: &str = "orderly_webhook_deliveries_total";
/// 1 while an alarm fires, else 0; label `alarm`.
pub const ALARM_STATE: &str = "orderly_alarm_state";
/// Operations the embedded store's single writer ran (each one a savepoint of a batch):
/// the unit of write work, whatever the operation.
pub const STORE_WRITE_OPS: &str = "orderly_store_write_ops_total";
/// Transactions the embedded store's writer committed (one per batch of operations).
pub const STORE_COMMITS: &str = "orderly_store_commits_total";

/// Label values of [`SAGA_DURATION`].
pub mod outcome {
    pub const FULFILLED: &str = "fulfilled";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";
}

/// Every name, for exporters that declare their metrics up front and for tests.
pub const ALL: &[&str] = &[
    ORDERS_CREATED,
    ORDERS_CONFIRMED,
    ORDERS_FAILED,
    ORDERS_CANCELLED,
    ORDERS_FULFILLED,
    PAYMENTS_PROCESSED,
    PAYMENTS_FAILED,
    INVENTORY_RESERVED,
    INVENTORY_RELEASED,
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    SAGA_DURATION,
    QUEUE_DEPTH,
    QUEUE_OLDEST_AGE,
    DLQ_DEPTH,
    WEBHOOK_DELIVERIES,
    ALARM_STATE,
    STORE_WRITE_OPS,
    STORE_COMMITS,
];
