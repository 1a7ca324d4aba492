//! Metrics in Lambda: the `metrics` facade's values written to the function's log as
//! CloudWatch embedded metric format (EMF) documents, which CloudWatch turns into metrics
//! without any API call. [`flush`] writes what was recorded since the last flush; the
//! handlers call it at the end of every invocation.
//!
//! One document per metric and label set: the labels become the dimensions. Counters are
//! summed, gauges keep their last value, histogram values are listed (at most 100 per
//! document, as EMF allows).
//!
//! Why not `metrics_cloudwatch_embedded`, the `metrics` recorder for EMF: its histograms
//! hold at most 100 values between two flushes (a bounded channel) and drop the rest with an
//! error log, where a batch handler here records one value per message and every value must
//! reach CloudWatch (this recorder writes them all, 100 to a document); and it installs
//! itself as the process's one global recorder (its own tests run each in a forked
//! process), where this one also works as a local recorder, so the test below checks the
//! documents in-process. What is left here is small: the cells, the drain and the document.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use serde_json::{Map, Value, json};

/// The CloudWatch namespace of Orderly's own metrics.
pub const NAMESPACE: &str = "Orderly";

#[derive(Debug, Default)]
struct Values(Mutex<Vec<f64>>);

impl HistogramFn for Values {
    fn record(&self, value: f64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(value);
    }
}

#[derive(Debug, Default)]
struct GaugeCell(AtomicU64, std::sync::atomic::AtomicBool);

impl GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some((f64::from_bits(b) + value).to_bits())
            });
        self.1.store(true, Ordering::Release);
    }
    fn decrement(&self, value: f64) {
        self.increment(-value);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Release);
        self.1.store(true, Ordering::Release);
    }
}

#[derive(Debug, Default)]
struct CounterCell(AtomicU64);

impl CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::AcqRel);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::AcqRel);
    }
}

/// The EMF recorder: what was recorded, by metric key.
#[derive(Debug, Default)]
pub struct EmfRecorder {
    counters: Mutex<BTreeMap<Key, Arc<CounterCell>>>,
    gauges: Mutex<BTreeMap<Key, Arc<GaugeCell>>>,
    histograms: Mutex<BTreeMap<Key, Arc<Values>>>,
}

fn cell<T: Default>(map: &Mutex<BTreeMap<Key, Arc<T>>>, key: &Key) -> Arc<T> {
    map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key.clone())
        .or_default()
        .clone()
}

impl Recorder for EmfRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(cell(&self.counters, key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(cell(&self.gauges, key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(cell(&self.histograms, key))
    }
}

fn document(key: &Key, unit: &str, value: Value, at_ms: i64) -> Value {
    let dims: Vec<&str> = key.labels().map(|l| l.key()).collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dims],
                "Metrics": [{ "Name": key.name(), "Unit": unit }],
            }],
        }),
    );
    for l in key.labels() {
        doc.insert(l.key().to_owned(), Value::String(l.value().to_owned()));
    }
    doc.insert(key.name().to_owned(), value);
    Value::Object(doc)
}

impl EmfRecorder {
    /// The EMF documents of everything recorded since the last call, emptying the
    /// counters and histograms (gauges keep their value but are reported once per set).
    pub fn drain(&self, at_ms: i64) -> Vec<Value> {
        let mut out = Vec::new();
        for (key, c) in self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let n = c.0.swap(0, Ordering::AcqRel);
            if n > 0 {
                out.push(document(key, "Count", json!(n), at_ms));
            }
        }
        for (key, g) in self.gauges.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if g.1.swap(false, Ordering::AcqRel) {
                let v = f64::from_bits(g.0.load(Ordering::Acquire));
                out.push(document(key, "None", json!(v), at_ms));
            }
        }
        for (key, h) in self
            .histograms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let values = std::mem::take(&mut *h.0.lock().unwrap_or_else(|p| p.into_inner()));
            let unit = if key.name().ends_with("_seconds") {
                "Seconds"
            } else {
                "None"
            };
            for chunk in values.chunks(100) {
                out.push(document(key, unit, json!(chunk), at_ms));
            }
        }
        out
    }
}

static RECORDER: OnceLock<Option<&'static EmfRecorder>> = OnceLock::new();

/// Installs the EMF recorder as the process's metrics recorder (once).
pub fn install() -> Option<&'static EmfRecorder> {
    *RECORDER.get_or_init(|| {
        let r: &'static EmfRecorder = Box::leak(Box::new(EmfRecorder::default()));
        metrics::set_global_recorder(r).ok().map(|()| r)
    })
}

/// Writes the EMF documents recorded since the last flush to stdout (the function's log).
pub fn flush() {
    let Some(r) = RECORDER.get().copied().flatten() else {
        return;
    };
    let now = chrono::Utc::now().timestamp_millis();
    for doc in r.drain(now) {
        println!("{doc}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use orderly_core::metrics as m;

    #[test]
    fn counters_gauges_and_histograms_become_emf_documents() {
        let r = EmfRecorder::default();
        metrics::with_local_recorder(&r, || {
            metrics::counter!(m::ORDERS_CREATED).increment(2);
            metrics::counter!(m::ORDERS_CREATED).increment(1);
            metrics::counter!(m::HTTP_REQUESTS, "route" => "/orders", "method" => "POST", "status" => "201").increment(1);
            metrics::histogram!(m::SAGA_DURATION, "outcome" => "fulfilled").record(0.25);
            metrics::gauge!(m::DLQ_DEPTH).set(4.0);
        });
        let docs = r.drain(1_800_000_000_000);
        let find = |name: &str| docs.iter().find(|d| d.get(name).is_some()).unwrap().clone();
        let created = find(m::ORDERS_CREATED);
        assert_eq!(created[m::ORDERS_CREATED], 3);
        assert_eq!(
            created["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            NAMESPACE
        );
        assert_eq!(
            created["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Count"
        );
        assert_eq!(created["_aws"]["Timestamp"], 1_800_000_000_000_i64);
        let http = find(m::HTTP_REQUESTS);
        assert_eq!(http["route"], "/orders");
        assert_eq!(http["status"], "201");
        assert_eq!(
            http["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["route", "method", "status"]])
        );
        let saga = find(m::SAGA_DURATION);
        assert_eq!(saga[m::SAGA_DURATION], json!([0.25]));
        assert_eq!(
            saga["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Seconds"
        );
        assert_eq!(find(m::DLQ_DEPTH)[m::DLQ_DEPTH], 4.0);
        // Drained: nothing new, nothing written again.
        assert!(r.drain(1_800_000_000_001).is_empty());
    }

    #[test]
    fn the_dashboard_reads_metric_names_the_code_records() {
        let tf = include_str!("../../../deploy/terraform/cloudwatch.tf");
        let start = tf.find("custom_metric_groups = {").unwrap();
        let block = &tf[start..start + tf[start..].find("\n  }").unwrap()];
        let names: Vec<&str> = block
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| s.starts_with("orderly_"))
            .collect();
        assert!(names.len() >= 6, "{block}");
        for n in names {
            assert!(
                m::all().any(|a| a == n),
                "{n} is not a metric the code records"
            );
        }
    }
}
