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

/// Connections the HTTP server holds open (`orderly serve`).
pub const HTTP_CONNECTIONS_OPEN: &str = "orderly_http_connections_open";
/// Connections refused at the connection cap because every open one was busy.
pub const HTTP_CONNECTIONS_REFUSED: &str = "orderly_http_connections_refused_total";
/// Connections closed for sending no complete headers in time, or idling too long.
pub const HTTP_CONNECTIONS_TIMED_OUT: &str = "orderly_http_connections_timed_out_total";

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Durations in seconds.
    Histogram,
}

/// One metric: its name, kind and help text.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn metric(name: &'static str, kind: Kind, help: &'static str) -> Metric {
    Metric { name, kind, help }
}

/// Every metric with its help text, for exporters that declare their metrics up front.
pub const CATALOGUE: &[Metric] = &[
    metric(
        ORDERS_CREATED,
        Kind::Counter,
        "Orders accepted (idempotent replays not counted).",
    ),
    metric(
        ORDERS_CONFIRMED,
        Kind::Counter,
        "Orders whose stock and payment were secured.",
    ),
    metric(
        ORDERS_FAILED,
        Kind::Counter,
        "Orders that ended FAILED (compensated).",
    ),
    metric(
        ORDERS_CANCELLED,
        Kind::Counter,
        "Orders cancelled by their customer or an admin.",
    ),
    metric(ORDERS_FULFILLED, Kind::Counter, "Orders fulfilled."),
    metric(PAYMENTS_PROCESSED, Kind::Counter, "Charges that succeeded."),
    metric(
        PAYMENTS_FAILED,
        Kind::Counter,
        "Charges declined or failed for good.",
    ),
    metric(
        INVENTORY_RESERVED,
        Kind::Counter,
        "Orders whose stock was reserved.",
    ),
    metric(
        INVENTORY_RELEASED,
        Kind::Counter,
        "Orders whose reserved stock was released.",
    ),
    metric(
        HTTP_REQUESTS,
        Kind::Counter,
        "HTTP requests answered, by route, method and status.",
    ),
    metric(
        HTTP_REQUEST_DURATION,
        Kind::Histogram,
        "HTTP request latency in seconds, by route and method.",
    ),
    metric(
        SAGA_DURATION,
        Kind::Histogram,
        "Seconds from an order's creation to its terminal status, by outcome.",
    ),
    metric(
        QUEUE_DEPTH,
        Kind::Gauge,
        "Messages waiting or in flight, by queue.",
    ),
    metric(
        QUEUE_OLDEST_AGE,
        Kind::Gauge,
        "Age in seconds of the oldest message, by queue.",
    ),
    metric(DLQ_DEPTH, Kind::Gauge, "Dead letters over all queues."),
    metric(
        WEBHOOK_DELIVERIES,
        Kind::Counter,
        "Webhook delivery attempts, by outcome.",
    ),
    metric(
        ALARM_STATE,
        Kind::Gauge,
        "1 while the alarm fires, else 0, by alarm.",
    ),
    metric(
        STORE_WRITE_OPS,
        Kind::Counter,
        "Operations the embedded store's writer ran.",
    ),
    metric(
        STORE_COMMITS,
        Kind::Counter,
        "Transactions the embedded store's writer committed.",
    ),
    metric(
        HTTP_CONNECTIONS_OPEN,
        Kind::Gauge,
        "Connections the HTTP server holds open.",
    ),
    metric(
        HTTP_CONNECTIONS_REFUSED,
        Kind::Counter,
        "Connections refused at the connection cap.",
    ),
    metric(
        HTTP_CONNECTIONS_TIMED_OUT,
        Kind::Counter,
        "Connections closed at the header or keep-alive timeout.",
    ),
];

/// Every name.
pub fn all() -> impl Iterator<Item = &'static str> {
    CATALOGUE.iter().map(|m| m.name)
}

/// The alarms of `orderly serve` (the `alarm` label of [`ALARM_STATE`]): dead letters
/// piling up, sagas failing, the API answering 5xx.
pub const ALARM_NAMES: [&str; 3] = ["dlq_depth", "saga_failure_rate", "http_5xx_rate"];

/// The series a fresh process exports, at zero, so that dashboards and `rate()` see every
/// metric from the start: each metric with each of its known label values (the queues, the
/// alarms, the outcomes); a metric labelled by request starts with the order-creation series.
pub fn initial_series() -> Vec<(Metric, Vec<(&'static str, &'static str)>)> {
    let queues: Vec<&'static str> = [crate::ports::ORDERS_QUEUE, crate::webhooks::DELIVERY_QUEUE]
        .into_iter()
        .chain(crate::events::local_routes().iter().map(|r| r.target))
        .collect();
    let mut out = Vec::new();
    for m in CATALOGUE {
        let sets: Vec<Vec<(&'static str, &'static str)>> = match m.name {
            QUEUE_DEPTH | QUEUE_OLDEST_AGE => queues.iter().map(|q| vec![("queue", *q)]).collect(),
            ALARM_STATE => ALARM_NAMES.iter().map(|a| vec![("alarm", *a)]).collect(),
            SAGA_DURATION => [outcome::FULFILLED, outcome::FAILED, outcome::CANCELLED]
                .iter()
                .map(|o| vec![("outcome", *o)])
                .collect(),
            WEBHOOK_DELIVERIES => ["delivered", "retried", "dead"]
                .iter()
                .map(|o| vec![("outcome", *o)])
                .collect(),
            HTTP_REQUESTS => vec![vec![
                ("route", "/orders"),
                ("method", "POST"),
                ("status", "201"),
            ]],
            HTTP_REQUEST_DURATION => vec![vec![("route", "/orders"), ("method", "POST")]],
            _ => vec![Vec::new()],
        };
        out.extend(sets.into_iter().map(|labels| (*m, labels)));
    }
    out
}

/// Counts an order that just reached a terminal status and how long its saga took (from
/// creation to this status).
pub(crate) fn record_terminal(
    order: &crate::model::Order,
    counter: &'static str,
    outcome: &'static str,
) {
    metrics::counter!(counter).increment(1);
    let ms = order
        .updated_at
        .millis()
        .saturating_sub(order.created_at.millis())
        .max(0);
    metrics::histogram!(SAGA_DURATION, "outcome" => outcome).record(ms as f64 / 1000.0);
}

#[cfg(test)]
mod tests {
    use super::{CATALOGUE, Kind, initial_series};

    #[test]
    fn every_metric_is_named_once_and_starts_with_a_series() {
        let mut names: Vec<&str> = CATALOGUE.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
        for m in CATALOGUE {
            assert!(
                m.name.starts_with("orderly_") && !m.help.is_empty(),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
            assert!(
                initial_series().iter().any(|(s, _)| s.name == m.name),
                "{}",
                m.name
            );
        }
    }
}
