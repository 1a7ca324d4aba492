//! Operations of the one-machine runtime: the process-wide Prometheus registry behind the
//! `metrics` facade, a sampler that turns queue depths into gauges, and the in-process
//! alarms (`crate::alarms`) evaluated on what the registry holds. Alarm state
//! changes are logged, and posted to a webhook when one is configured.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::alarms::{AlarmChange, AlarmConfig, Alarms, Sample};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use orderly_core::Orderly;
use orderly_core::metrics as m;
use orderly_core::ports::ORDERS_QUEUE;
use orderly_http::schemas::{AlarmState, AlarmStatus};
use tokio::sync::watch;

/// Histogram buckets (seconds) of every `_seconds` metric: fine below 10 ms for the API,
/// up to a minute for sagas with payment retries.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide registry, installed on first use. `None` if another recorder was
/// installed first (metrics then go there).
pub fn prometheus() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(h) => {
                    start_at_zero();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

/// Declares every metric with its help text and creates its first series at zero, so a
/// fresh process exports them all.
fn start_at_zero() {
    for m in m::CATALOGUE {
        match m.kind {
            m::Kind::Counter => metrics::describe_counter!(m.name, m.help),
            m::Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            m::Kind::Histogram => {
                metrics::describe_histogram!(m.name, metrics::Unit::Seconds, m.help)
            }
        }
    }
    for (m, labels) in m::initial_series() {
        let labels: Vec<metrics::Label> = labels
            .into_iter()
            .map(|(k, v)| metrics::Label::new(k, v))
            .collect();
        match m.kind {
            m::Kind::Counter => metrics::counter!(m.name, labels).increment(0),
            m::Kind::Gauge => metrics::gauge!(m.name, labels).increment(0.0),
            m::Kind::Histogram => drop(metrics::histogram!(m.name, labels)),
        }
    }
}

/// Sums the samples of a metric in Prometheus text, over the series whose labels satisfy
/// `keep` (given the label text between the braces, or "" for none).
pub fn sum_series(text: &str, name: &str, keep: impl Fn(&str) -> bool) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
                let (labels, v) = r.split_once('}')?;
                (labels, v)
            } else if rest.starts_with(' ') {
                ("", rest)
            } else {
                return None; // another metric whose name starts with `name`
            };
            keep(labels).then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

/// Reads the registry into an alarm sample.
pub fn sample_from(text: &str, at_ms: i64) -> Sample {
    Sample {
        at_ms,
        dlq_depth: sum_series(text, m::DLQ_DEPTH, |_| true),
        sagas_fulfilled: sum_series(text, m::ORDERS_FULFILLED, |_| true),
        sagas_failed: sum_series(text, m::ORDERS_FAILED, |_| true),
        http_requests: sum_series(text, m::HTTP_REQUESTS, |_| true),
        http_5xx: sum_series(text, m::HTTP_REQUESTS, |l| l.contains("status=\"5")),
    }
}

/// Alarm settings of `serve` and `worker`.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    pub alarms: AlarmConfig,
    /// How often queues are sampled and alarms evaluated.
    pub interval: Duration,
    /// Alarm state changes are POSTed here as JSON.
    pub alarm_webhook: Option<String>,
    /// Serve `/metrics` without credentials on this address too.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Alarm state changes are mailed here (through the SMTP server of the processing
    /// configuration).
    pub alarm_email: Option<orderly_core::Email>,
}

impl Default for OpsConfig {
    fn default() -> OpsConfig {
        OpsConfig {
            alarms: AlarmConfig::default(),
            interval: Duration::from_secs(5),
            alarm_webhook: None,
            metrics_addr: None,
            alarm_email: None,
        }
    }
}

/// The registry and the alarm board, as the HTTP layer sees them.
#[derive(Debug)]
pub struct ProcessOps {
    handle: Option<PrometheusHandle>,
    alarms: Mutex<Alarms>,
}

impl orderly_http::ops::OpsView for ProcessOps {
    fn metrics_text(&self) -> String {
        self.handle
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default()
    }

    fn alarms(&self) -> Vec<AlarmStatus> {
        self.alarms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .statuses()
            .to_vec()
    }
}

impl ProcessOps {
    pub fn new(cfg: &OpsConfig, app: &Orderly) -> Arc<ProcessOps> {
        Arc::new(ProcessOps {
            handle: prometheus(),
            alarms: Mutex::new(Alarms::new(cfg.alarms, app.clock().now())),
        })
    }

    /// One round: queue gauges, histogram upkeep, alarm evaluation. Answers the changes.
    pub async fn tick(&self, app: &Orderly) -> Vec<AlarmChange> {
        let queue = &app.queue();
        // The orders queue and one queue per event subscription (the local event bus).
        let subscriptions = orderly_core::events::local_routes();
        let names = [ORDERS_QUEUE, orderly_core::webhooks::DELIVERY_QUEUE]
            .into_iter()
            .chain(subscriptions.iter().map(|r| r.target));
        for name in names {
            if let Ok(d) = queue.depth(name).await {
                metrics::gauge!(m::QUEUE_DEPTH, "queue" => name)
                    .set((d.waiting + d.in_flight) as f64);
                metrics::gauge!(m::QUEUE_OLDEST_AGE, "queue" => name)
                    .set(d.oldest_age_ms as f64 / 1000.0);
            }
        }
        if let Ok(n) = queue.dead_letter_count().await {
            metrics::gauge!(m::DLQ_DEPTH).set(n as f64);
        }
        let Some(handle) = &self.handle else {
            return Vec::new();
        };
        handle.run_upkeep();
        let sample = sample_from(&handle.render(), app.clock().now().millis());
        let changes = self
            .alarms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(sample);
        for status in self.alarms().iter().chain(changes.iter().map(|c| &c.alarm)) {
            let firing = f64::from(u8::from(status.state == AlarmState::Alarm));
            metrics::gauge!(m::ALARM_STATE, "alarm" => status.name).set(firing);
        }
        changes
    }
}

use orderly_http::ops::OpsView as _;

/// Serves `GET /metrics` (no credentials) on `listener` until `stop`.
pub async fn serve_metrics(
    ops: Arc<ProcessOps>,
    listener: tokio::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let ops = ops.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    ops.metrics_text(),
                )
            }
        }),
    );
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = served {
        tracing::warn!(error = %e, "the metrics listener failed");
    }
}

/// Where alarm state changes go besides the log.
#[derive(Debug, Default)]
pub struct AlarmChannels {
    pub webhook: Option<String>,
    /// The recipient and the mail transport.
    pub mail: Option<(orderly_core::Email, orderly_worker::notify::SmtpNotifier)>,
}

/// Samples and evaluates every `cfg.interval` until `stop`.
pub async fn run(
    ops: Arc<ProcessOps>,
    app: Orderly,
    cfg: OpsConfig,
    egress: orderly_core::egress::EgressPolicy,
    channels: AlarmChannels,
    mut stop: watch::Receiver<bool>,
) {
    // The alarm webhook is the operator's own endpoint: held to the policy only in
    // loopback mode (where `start` has already checked it is on loopback).
    let builder = match egress.mode {
        orderly_core::egress::EgressMode::Loopback => {
            orderly_worker::egress::client_builder(Arc::new(egress))
        }
        orderly_core::egress::EgressMode::Public => reqwest::Client::builder(),
    };
    let client = builder.timeout(Duration::from_secs(5)).build().ok();
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for change in ops.tick(&app).await {
                    notify(&change, &channels, client.as_ref()).await;
                }
            }
            _ = stop.changed() => break,
        }
    }
}

async fn notify(change: &AlarmChange, channels: &AlarmChannels, client: Option<&reqwest::Client>) {
    let a = &change.alarm;
    if a.state == AlarmState::Alarm {
        tracing::warn!(alarm = a.name, from = %change.from, value = ?a.value, threshold = a.threshold, "ALARM: {}", a.description);
    } else {
        tracing::info!(alarm = a.name, from = %change.from, to = %a.state, value = ?a.value, "alarm state changed");
    }
    if let Some((to, smtp)) = &channels.mail {
        let subject = format!("[Orderly] {} is {}", a.name, a.state);
        let value = a
            .value
            .map_or_else(|| "not enough data".to_owned(), |v| v.to_string());
        let body = format!(
            "The alarm {} went from {} to {}.\n\n{}\nValue: {value}\nThreshold: {}\nSince: {}\n",
            a.name, change.from, a.state, a.description, a.threshold, a.since
        );
        if let Err(e) = smtp.send_mail(to, &subject, &body).await {
            tracing::warn!(alarm = a.name, error = %e, "alarm mail not sent");
        }
    }
    let (Some(url), Some(client)) = (channels.webhook.as_deref(), client) else {
        return;
    };
    match client.post(url).json(change).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => tracing::warn!(
            alarm = a.name,
            status = r.status().as_u16(),
            "alarm webhook refused the notification"
        ),
        Err(e) => tracing::warn!(alarm = a.name, error = %e, "alarm webhook unreachable"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn series_are_summed_by_name_and_label() {
        let text = "\
# TYPE orderly_http_requests_total counter
orderly_http_requests_total{route=\"/orders\",method=\"POST\",status=\"201\"} 7
orderly_http_requests_total{route=\"/orders\",method=\"GET\",status=\"503\"} 2
orderly_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"500\"} 1
orderly_http_requests_totalx 99
orderly_orders_failed_total 3
orderly_dlq_depth 12
";
        let s = sample_from(text, 5);
        assert_eq!(s.http_requests, 10.0);
        assert_eq!(s.http_5xx, 3.0);
        assert_eq!(s.sagas_failed, 3.0);
        assert_eq!(s.sagas_fulfilled, 0.0);
        assert_eq!(s.dlq_depth, 12.0);
    }
}
