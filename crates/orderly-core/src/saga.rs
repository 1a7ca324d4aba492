//! The order saga, defined once as data.
//!
//! The local engine (`orderly-worker`) executes this definition and the Step Functions
//! state machine is generated from it, so both runtimes take the same paths. A step that
//! fails for good triggers the compensations of the steps that completed before it, in
//! reverse order, and then `FailOrder`.

use std::time::Duration;

use serde::Serialize;

/// Everything the saga can do: forward steps, compensations and the final failure write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Action {
    ReserveInventory,
    ProcessPayment,
    ConfirmOrder,
    EmitOrderPlaced,
    RefundPayment,
    ReleaseInventory,
    FailOrder,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ReserveInventory => "ReserveInventory",
            Action::ProcessPayment => "ProcessPayment",
            Action::ConfirmOrder => "ConfirmOrder",
            Action::EmitOrderPlaced => "EmitOrderPlaced",
            Action::RefundPayment => "RefundPayment",
            Action::ReleaseInventory => "ReleaseInventory",
            Action::FailOrder => "FailOrder",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        [
            Action::ReserveInventory,
            Action::ProcessPayment,
            Action::ConfirmOrder,
            Action::EmitOrderPlaced,
            Action::RefundPayment,
            Action::ReleaseInventory,
            Action::FailOrder,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error name of failures that may succeed when tried again (timeouts, busy stores).
pub const RETRYABLE: &str = "Orderly.Retryable";
/// The error name of failures that will not (declines, out of stock, a cancelled order).
pub const FINAL: &str = "Orderly.Final";

/// When and how often a failed action is tried again. Only errors named in `retry_on` are
/// retried; a final error (a payment decline) never is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Error names that are retried (the same names the Step Functions Retry uses).
    pub retry_on: &'static [&'static str],
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub base_delay_ms: u64,
    /// Each further retry waits this many times longer.
    pub backoff_rate: f64,
    /// Upper bound of one delay.
    pub max_delay_ms: u64,
    /// Full jitter: each delay is drawn uniformly from [0, computed delay].
    pub jitter: bool,
}

impl RetryPolicy {
    /// Whether a failure named `error` is retried by this policy.
    pub fn retries(&self, error: &str) -> bool {
        self.retry_on.contains(&error)
    }

    /// The delay before attempt `next_attempt` (2 for the first retry), given a uniform
    /// random number in [0, 1) for the jitter.
    pub fn delay(&self, next_attempt: u32, random01: f64) -> Duration {
        let exp = next_attempt.saturating_sub(2);
        let raw = self.base_delay_ms as f64 * self.backoff_rate.powi(exp as i32);
        let capped = raw.min(self.max_delay_ms as f64).max(0.0);
        let ms = if self.jitter {
            capped * random01.clamp(0.0, 1.0)
        } else {
            capped
        };
        Duration::from_millis(ms as u64)
    }

    /// The longest the retries of one action can wait in total.
    pub fn worst_case_wait(&self) -> Duration {
        (2..=self.max_attempts).map(|a| self.delay(a, 1.0)).sum()
    }
}

/// One forward step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepDef {
    pub action: Action,
    /// What undoes this step when a later step fails.
    pub compensation: Option<Action>,
    pub retry: RetryPolicy,
    /// Longest one attempt may take.
    pub timeout_secs: u32,
    /// A failure of a best-effort step is logged, never compensated.
    pub best_effort: bool,
}

/// The whole saga.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SagaDef {
    pub steps: Vec<StepDef>,
    /// Retries of compensations and of `FailOrder` (they must eventually succeed).
    pub compensation_retry: RetryPolicy,
    pub compensation_timeout_secs: u32,
}

/// Tunables of the saga's retry behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SagaSettings {
    /// Payment attempts in all (default 3).
    pub payment_attempts: u32,
    /// First payment retry delay (default 2 s).
    pub payment_base_delay_ms: u64,
}

impl Default for SagaSettings {
    fn default() -> SagaSettings {
        SagaSettings {
            payment_attempts: 3,
            payment_base_delay_ms: 2000,
        }
    }
}

impl SagaDef {
    /// The order saga: reserve stock, take payment, confirm (docs/architecture.md).
    pub fn orders(settings: SagaSettings) -> SagaDef {
        let store_retry = RetryPolicy {
            retry_on: &[RETRYABLE],
            max_attempts: 3,
            base_delay_ms: 200,
            backoff_rate: 2.0,
            max_delay_ms: 5_000,
            jitter: true,
        };
        let payment_retry = RetryPolicy {
            retry_on: &[RETRYABLE],
            max_attempts: settings.payment_attempts.max(1),
            base_delay_ms: settings.payment_base_delay_ms,
            backoff_rate: 2.0,
            max_delay_ms: settings.payment_base_delay_ms.saturating_mul(8).max(1),
            jitter: true,
        };
        SagaDef {
            steps: vec![
                StepDef {
                    action: Action::ReserveInventory,
                    compensation: Some(Action::ReleaseInventory),
                    retry: store_retry,
                    timeout_secs: 10,
                    best_effort: false,
                },
                StepDef {
                    action: Action::ProcessPayment,
                    compensation: Some(Action::RefundPayment),
                    retry: payment_retry,
                    timeout_secs: 15,
                    best_effort: false,
                },
                StepDef {
                    action: Action::ConfirmOrder,
                    compensation: None,
                    retry: store_retry,
                    timeout_secs: 10,
                    best_effort: false,
                },
                StepDef {
                    action: Action::EmitOrderPlaced,
                    compensation: None,
                    retry: store_retry,
                    timeout_secs: 10,
                    best_effort: true,
                },
            ],
            compensation_retry: RetryPolicy {
                retry_on: &[RETRYABLE],
                max_attempts: 5,
                base_delay_ms: 200,
                backoff_rate: 2.0,
                max_delay_ms: 5_000,
                jitter: true,
            },
            compensation_timeout_secs: 15,
        }
    }

    pub fn step(&self, action: Action) -> Option<&StepDef> {
        self.steps.iter().find(|s| s.action == action)
    }

    /// What runs after step `failed` fails for good: the compensations of the steps before
    /// it, newest first, then `FailOrder`.
    pub fn failure_path(&self, failed: Action) -> Vec<Action> {
        let idx = self
            .steps
            .iter()
            .position(|s| s.action == failed)
            .unwrap_or(0);
        let mut path: Vec<Action> = self.steps[..idx]
            .iter()
            .rev()
            .filter_map(|s| s.compensation)
            .collect();
        path.push(Action::FailOrder);
        path
    }

    /// Every compensation, in the order a cancellation runs them (refund before release).
    pub fn all_compensations(&self) -> Vec<Action> {
        self.steps
            .iter()
            .rev()
            .filter_map(|s| s.compensation)
            .collect()
    }

    /// The actions taken when step `failed` fails for good (or none fails): forward steps
    /// up to and including it, then its failure path.
    pub fn path(&self, failed: Option<Action>) -> Vec<Action> {
        let mut out = Vec::new();
        for s in &self.steps {
            out.push(s.action);
            if Some(s.action) == failed {
                if s.best_effort {
                    continue;
                }
                out.extend(self.failure_path(s.action));
                return out;
            }
        }
        out
    }

    /// Longest the saga can take end to end, for sizing queue visibility timeouts.
    pub fn worst_case(&self) -> Duration {
        let steps: Duration = self
            .steps
            .iter()
            .map(|s| {
                Duration::from_secs(u64::from(s.timeout_secs) * u64::from(s.retry.max_attempts))
                    + s.retry.worst_case_wait()
            })
            .sum();
        let comp = (Duration::from_secs(u64::from(self.compensation_timeout_secs))
            * self.compensation_retry.max_attempts
            + self.compensation_retry.worst_case_wait())
            * 3;
        steps + comp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    #[test]
    fn the_paths_of_the_spec() {
        let saga = SagaDef::orders(SagaSettings::default());
        assert_eq!(
            saga.path(None),
            [
                ReserveInventory,
                ProcessPayment,
                ConfirmOrder,
                EmitOrderPlaced
            ]
        );
        assert_eq!(
            saga.path(Some(ReserveInventory)),
            [ReserveInventory, FailOrder]
        );
        assert_eq!(
            saga.path(Some(ProcessPayment)),
            [
                ReserveInventory,
                ProcessPayment,
                ReleaseInventory,
                FailOrder
            ]
        );
        assert_eq!(
            saga.path(Some(ConfirmOrder)),
            [
                ReserveInventory,
                ProcessPayment,
                ConfirmOrder,
                RefundPayment,
                ReleaseInventory,
                FailOrder
            ]
        );
        // A best-effort step never compensates.
        assert_eq!(saga.path(Some(EmitOrderPlaced)), saga.path(None));
        assert_eq!(saga.all_compensations(), [RefundPayment, ReleaseInventory]);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            retry_on: &[RETRYABLE],
            max_attempts: 5,
            base_delay_ms: 2000,
            backoff_rate: 2.0,
            max_delay_ms: 10_000,
            jitter: true,
        };
        assert!(p.retries(RETRYABLE) && !p.retries(FINAL));
        assert_eq!(p.delay(2, 1.0), Duration::from_millis(2000));
        assert_eq!(p.delay(3, 1.0), Duration::from_millis(4000));
        assert_eq!(p.delay(5, 1.0), Duration::from_millis(10_000));
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(2000));
        assert_eq!(p.delay(3, 0.0), Duration::ZERO);
        assert_eq!(
            p.worst_case_wait(),
            Duration::from_millis(2000 + 4000 + 8000 + 10_000)
        );
        for a in ["ReserveInventory", "FailOrder", "RefundPayment"] {
            assert_eq!(Action::parse(a).map(|x| x.as_str()), Some(a));
        }
    }
}
