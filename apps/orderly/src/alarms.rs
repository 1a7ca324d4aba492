//! The binary's alarms over metric samples, evaluated in-process like the CloudWatch alarms
//! of the AWS stack: dead letters piling up, sagas failing, the API answering 5xx. What
//! `GET /admin/alarms` shows of them is `orderly_http::schemas::AlarmStatus`; their names are
//! the `alarm` label values of the metric catalogue (`orderly_core::metrics::ALARM_NAMES`).
//!
//! The evaluator is pure: it is fed [`Sample`]s (cumulative counters and a gauge, read
//! from the metrics registry at a moment) and answers which alarms changed state. Rates
//! are computed over a sliding window from the oldest sample still inside it, so a burst
//! of failures five minutes ago no longer counts.

use std::collections::VecDeque;

use serde::Serialize;

use orderly_core::Timestamp;
use orderly_core::metrics::ALARM_NAMES;
use orderly_http::schemas::{AlarmState, AlarmStatus};

/// Cumulative counters (since the process started) and gauges at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    pub at_ms: i64,
    pub dlq_depth: f64,
    pub sagas_fulfilled: f64,
    pub sagas_failed: f64,
    pub http_requests: f64,
    pub http_5xx: f64,
}

/// Thresholds; the defaults are those of the stack's CloudWatch alarms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlarmConfig {
    /// Dead letters above this fire `dlq_depth`.
    pub dlq_depth: f64,
    /// Failed / (failed + fulfilled) sagas over the window above this fire
    /// `saga_failure_rate`.
    pub saga_failure_rate: f64,
    /// 5xx / all responses over the window above this fire `http_5xx_rate`.
    pub http_5xx_rate: f64,
    pub window_secs: i64,
    /// Fewer finished sagas than this in the window: not enough data to judge.
    pub min_sagas: f64,
    /// Fewer requests than this in the window: not enough data to judge.
    pub min_requests: f64,
}

impl Default for AlarmConfig {
    fn default() -> AlarmConfig {
        AlarmConfig {
            dlq_depth: 10.0,
            saga_failure_rate: 0.30,
            http_5xx_rate: 0.05,
            window_secs: 300,
            min_sagas: 10.0,
            min_requests: 20.0,
        }
    }
}

impl AlarmConfig {
    /// Names the first bad value.
    pub fn validate(&self) -> Result<(), String> {
        if self.dlq_depth.is_nan() || self.dlq_depth < 0.0 {
            return Err("the DLQ depth threshold must be 0 or more".into());
        }
        for (name, v) in [
            ("saga failure rate", self.saga_failure_rate),
            ("5xx rate", self.http_5xx_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("the {name} threshold must be between 0 and 1"));
            }
        }
        if self.window_secs < 1 {
            return Err("the alarm window must be at least 1 second".into());
        }
        Ok(())
    }
}

/// A state change, to notify.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmChange {
    pub from: AlarmState,
    pub alarm: AlarmStatus,
}

pub const DLQ_DEPTH: &str = ALARM_NAMES[0];
pub const SAGA_FAILURE_RATE: &str = ALARM_NAMES[1];
pub const HTTP_5XX_RATE: &str = ALARM_NAMES[2];

/// The alarms and the samples of the window.
#[derive(Debug)]
pub struct Alarms {
    config: AlarmConfig,
    samples: VecDeque<Sample>,
    statuses: Vec<AlarmStatus>,
}

impl Alarms {
    pub fn new(config: AlarmConfig, now: Timestamp) -> Alarms {
        let status = |name, description: String, threshold| AlarmStatus {
            name,
            description,
            state: AlarmState::InsufficientData,
            value: None,
            threshold,
            since: now,
        };
        let pct = |r: f64| format!("{:.0} %", r * 100.0);
        let mins = config.window_secs as f64 / 60.0;
        Alarms {
            statuses: vec![
                status(
                    DLQ_DEPTH,
                    format!("more than {} dead letters", config.dlq_depth),
                    config.dlq_depth,
                ),
                status(
                    SAGA_FAILURE_RATE,
                    format!(
                        "more than {} of finished sagas failed over {mins} min",
                        pct(config.saga_failure_rate)
                    ),
                    config.saga_failure_rate,
                ),
                status(
                    HTTP_5XX_RATE,
                    format!(
                        "more than {} of API responses were 5xx over {mins} min",
                        pct(config.http_5xx_rate)
                    ),
                    config.http_5xx_rate,
                ),
            ],
            config,
            samples: VecDeque::new(),
        }
    }

    pub fn statuses(&self) -> &[AlarmStatus] {
        &self.statuses
    }

    /// Adds a sample and re-evaluates; answers the alarms whose state changed.
    pub fn observe(&mut self, sample: Sample) -> Vec<AlarmChange> {
        let horizon = sample.at_ms - self.config.window_secs * 1000;
        self.samples.push_back(sample);
        // Keep the newest sample at or before the horizon as the window's base.
        while self.samples.len() > 1 && self.samples.get(1).is_some_and(|s| s.at_ms <= horizon) {
            self.samples.pop_front();
        }
        let base = self.samples.front().copied().unwrap_or(sample);
        let ratio = |num: f64, den: f64, min: f64| (den >= min && den > 0.0).then(|| num / den);
        let failed = (sample.sagas_failed - base.sagas_failed).max(0.0);
        let fulfilled = (sample.sagas_fulfilled - base.sagas_fulfilled).max(0.0);
        let requests = (sample.http_requests - base.http_requests).max(0.0);
        let errors = (sample.http_5xx - base.http_5xx).max(0.0);
        let values = [
            Some(sample.dlq_depth),
            ratio(failed, failed + fulfilled, self.config.min_sagas),
            ratio(errors, requests, self.config.min_requests),
        ];
        let now = Timestamp::from_millis(sample.at_ms);
        let mut changes = Vec::new();
        for (status, value) in self.statuses.iter_mut().zip(values) {
            let state = match value {
                None => AlarmState::InsufficientData,
                Some(v) if v > status.threshold => AlarmState::Alarm,
                Some(_) => AlarmState::Ok,
            };
            status.value = value;
            if state != status.state {
                let from = status.state;
                status.state = state;
                if let Some(now) = now {
                    status.since = now;
                }
                changes.push(AlarmChange {
                    from,
                    alarm: status.clone(),
                });
            }
        }
        changes
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(secs: i64, f: impl FnOnce(&mut Sample)) -> Sample {
        let mut s = Sample {
            at_ms: 1_800_000_000_000 + secs * 1000,
            ..Sample::default()
        };
        f(&mut s);
        s
    }

    fn alarms() -> Alarms {
        Alarms::new(
            AlarmConfig::default(),
            Timestamp::from_millis(1_800_000_000_000).unwrap(),
        )
    }

    fn state(a: &Alarms, name: &str) -> AlarmState {
        a.statuses().iter().find(|s| s.name == name).unwrap().state
    }

    #[test]
    fn dlq_depth_fires_above_ten_and_clears() {
        let mut a = alarms();
        let c = a.observe(at(0, |s| s.dlq_depth = 10.0));
        assert_eq!(state(&a, DLQ_DEPTH), AlarmState::Ok);
        assert_eq!(c.len(), 1, "INSUFFICIENT_DATA -> OK for the DLQ only");
        let c = a.observe(at(10, |s| s.dlq_depth = 11.0));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].from, AlarmState::Ok);
        assert_eq!(c[0].alarm.state, AlarmState::Alarm);
        assert_eq!(c[0].alarm.value, Some(11.0));
        assert!(
            a.observe(at(20, |s| s.dlq_depth = 12.0)).is_empty(),
            "no repeat"
        );
        let c = a.observe(at(30, |s| s.dlq_depth = 0.0));
        assert_eq!(c[0].alarm.state, AlarmState::Ok);
    }

    #[test]
    fn saga_failure_rate_is_judged_over_the_window_only() {
        let mut a = alarms();
        a.observe(at(0, |_| {}));
        // 4 failed of 10 finished: 40 % > 30 %.
        a.observe(at(60, |s| {
            s.sagas_failed = 4.0;
            s.sagas_fulfilled = 6.0;
        }));
        assert_eq!(state(&a, SAGA_FAILURE_RATE), AlarmState::Alarm);
        // Six minutes later with 100 more fulfilled and no new failure: the old failures
        // left the window.
        a.observe(at(200, |s| {
            s.sagas_failed = 4.0;
            s.sagas_fulfilled = 6.0;
        }));
        a.observe(at(420, |s| {
            s.sagas_failed = 4.0;
            s.sagas_fulfilled = 106.0;
        }));
        assert_eq!(state(&a, SAGA_FAILURE_RATE), AlarmState::Ok);
        let value = a
            .statuses()
            .iter()
            .find(|s| s.name == SAGA_FAILURE_RATE)
            .unwrap()
            .value
            .unwrap();
        assert_eq!(value, 0.0);
    }

    #[test]
    fn too_few_events_are_insufficient_data_not_ok() {
        let mut a = alarms();
        a.observe(at(0, |_| {}));
        a.observe(at(30, |s| {
            s.sagas_failed = 3.0;
            s.http_requests = 5.0;
            s.http_5xx = 5.0;
        }));
        assert_eq!(state(&a, SAGA_FAILURE_RATE), AlarmState::InsufficientData);
        assert_eq!(state(&a, HTTP_5XX_RATE), AlarmState::InsufficientData);
    }

    #[test]
    fn five_percent_5xx_fires_above_not_at() {
        let mut a = alarms();
        a.observe(at(0, |_| {}));
        a.observe(at(30, |s| {
            s.http_requests = 100.0;
            s.http_5xx = 5.0;
        }));
        assert_eq!(state(&a, HTTP_5XX_RATE), AlarmState::Ok);
        a.observe(at(60, |s| {
            s.http_requests = 200.0;
            s.http_5xx = 11.0;
        }));
        assert_eq!(state(&a, HTTP_5XX_RATE), AlarmState::Alarm);
    }

    #[test]
    fn thresholds_are_validated() {
        assert!(AlarmConfig::default().validate().is_ok());
        let bad = AlarmConfig {
            saga_failure_rate: 1.5,
            ..AlarmConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("saga failure rate"));
    }
}
