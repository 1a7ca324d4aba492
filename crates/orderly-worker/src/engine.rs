//! The local saga engine: executes [`SagaDef`] for one order, persisting each action's
//! outcome in the saga log so that a restarted engine resumes where it stopped.

use std::time::Duration;

use orderly_core::ports::StepRecord;
use orderly_core::processing::StepError;
use orderly_core::saga::{Action, RetryPolicy, SagaDef};
use orderly_core::{Order, OrderId, OrderStatus, Orderly};

/// Why processing a message must be tried again later (the message is nacked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry(pub String);

impl std::error::Error for Retry {}

impl std::fmt::Display for Retry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How one order's saga ended (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaOutcome {
    /// Confirmed and OrderPlaced emitted.
    Completed,
    /// Compensated and failed with this reason.
    Failed(String),
    /// Already terminal or cancelled; compensations ensured.
    NothingToDo(OrderStatus),
}

/// Executes the saga definition against the use cases of [`Orderly`].
#[derive(Debug, Clone)]
pub struct SagaEngine {
    app: Orderly,
    saga: SagaDef,
}

fn random01() -> f64 {
    rand::random::<f64>()
}

impl SagaEngine {
    pub fn new(app: Orderly, saga: SagaDef) -> SagaEngine {
        SagaEngine { app, saga }
    }

    pub fn saga(&self) -> &SagaDef {
        &self.saga
    }

    async fn record(
        &self,
        id: OrderId,
        action: Action,
        ok: bool,
        attempts: u32,
        detail: Option<String>,
    ) -> Result<(), Retry> {
        let at = self.app.ports().clock.now();
        self.app
            .ports()
            .saga_log
            .record_step(
                id,
                StepRecord {
                    action,
                    succeeded: ok,
                    attempts,
                    detail,
                    at,
                },
            )
            .await
            .map_err(|e| Retry(format!("cannot record saga step: {e}")))
    }

    /// Runs `action` with `policy`: retryable errors are retried with backoff and jitter,
    /// final errors are returned at once.
    async fn attempt(
        &self,
        action: Action,
        order: &Order,
        reason: Option<&str>,
        policy: &RetryPolicy,
    ) -> (Result<(), StepError>, u32) {
        let mut attempt = 1;
        loop {
            let out = self.app.run_action(action, order, reason).await;
            match out {
                Err(ref e) if policy.retries(e.name()) && attempt < policy.max_attempts => {
                    attempt += 1;
                    let delay = policy.delay(attempt, random01());
                    tracing::info!(order_id = %order.order_id, %action, attempt, delay_ms = delay.as_millis() as u64, error = %e, "retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return (other, attempt),
            }
        }
    }

    /// Processes one order: runs or resumes its saga, or ensures the compensations of a
    /// cancelled order. Idempotent: processing an order again changes nothing.
    pub async fn process(&self, id: OrderId) -> Result<SagaOutcome, Retry> {
        let order = self
            .app
            .ports()
            .orders
            .get(id)
            .await
            .map_err(|e| Retry(e.to_string()))?
            .ok_or_else(|| Retry(format!("order {id} does not exist")))?;
        match order.status {
            OrderStatus::Cancelled => {
                self.compensate(&order, &self.saga.all_compensations())
                    .await?;
                Ok(SagaOutcome::NothingToDo(order.status))
            }
            OrderStatus::Failed | OrderStatus::Fulfilled => {
                Ok(SagaOutcome::NothingToDo(order.status))
            }
            OrderStatus::Confirmed => {
                // Crashed between ConfirmOrder and EmitOrderPlaced: emit (idempotent).
                // Best effort: forward() logs and records a failure itself.
                let _ = self.forward(&order, Action::EmitOrderPlaced).await?;
                Ok(SagaOutcome::Completed)
            }
            OrderStatus::Pending => self.run(&order).await,
        }
    }

    async fn forward(
        &self,
        order: &Order,
        action: Action,
    ) -> Result<Result<(), (Action, String)>, Retry> {
        let Some(step) = self.saga.step(action) else {
            return Ok(Ok(()));
        };
        let (out, attempts) = self.attempt(action, order, None, &step.retry).await;
        match out {
            Ok(()) => {
                self.record(order.order_id, action, true, attempts, None)
                    .await?;
                Ok(Ok(()))
            }
            Err(e) if step.best_effort => {
                tracing::warn!(order_id = %order.order_id, %action, error = %e, "best-effort step failed");
                self.record(order.order_id, action, false, attempts, Some(e.to_string()))
                    .await?;
                Ok(Ok(()))
            }
            Err(StepError::Final(reason)) => Ok(Err((action, reason))),
            Err(StepError::Retryable(e)) if action == Action::ProcessPayment => {
                // Out of retries: the payment failed. Record it so no later delivery
                // charges this order after its stock was released.
                let reason = format!("payment failed after {attempts} attempts: {e}");
                self.app
                    .abandon_payment(order.order_id, &reason)
                    .await
                    .map_err(|e| Retry(e.to_string()))?;
                Ok(Err((action, reason)))
            }
            Err(StepError::Retryable(e)) => Err(Retry(format!("{action} failed: {e}"))),
        }
    }

    async fn run(&self, order: &Order) -> Result<SagaOutcome, Retry> {
        let id = order.order_id;
        let log = self
            .app
            .ports()
            .saga_log
            .steps(id)
            .await
            .map_err(|e| Retry(e.to_string()))?;
        let done = |a: Action| log.iter().any(|r| r.action == a && r.succeeded);
        // A forward step already failed for good: resume its compensation.
        let failed = self.saga.steps.iter().find_map(|s| {
            log.iter()
                .find(|r| r.action == s.action && !r.succeeded && !s.best_effort)
                .map(|r| (s.action, r.detail.clone().unwrap_or_default()))
        });
        let failure = match failed {
            Some(f) => Some(f),
            None => {
                let mut failure = None;
                for step in &self.saga.steps {
                    if done(step.action) {
                        continue;
                    }
                    if let Err(f) = self.forward(order, step.action).await? {
                        failure = Some(f);
                        break;
                    }
                }
                failure
            }
        };
        let Some((action, reason)) = failure else {
            tracing::info!(order_id = %id, "saga completed");
            return Ok(SagaOutcome::Completed);
        };
        self.record(id, action, false, 1, Some(reason.clone()))
            .await?;
        tracing::info!(order_id = %id, failed = %action, %reason, "compensating");
        let path = self.saga.failure_path(action);
        self.compensate(order, &path[..path.len() - 1]).await?;
        self.finish_failed(order, &reason).await?;
        Ok(SagaOutcome::Failed(reason))
    }

    async fn compensate(&self, order: &Order, actions: &[Action]) -> Result<(), Retry> {
        for &action in actions {
            let (out, attempts) = self
                .attempt(action, order, None, &self.saga.compensation_retry)
                .await;
            match out {
                Ok(()) => {
                    self.record(order.order_id, action, true, attempts, None)
                        .await?
                }
                Err(e) => {
                    // Compensations must happen: leave the message to be retried.
                    self.record(order.order_id, action, false, attempts, Some(e.to_string()))
                        .await?;
                    return Err(Retry(format!("{action} failed: {e}")));
                }
            }
        }
        Ok(())
    }

    async fn finish_failed(&self, order: &Order, reason: &str) -> Result<(), Retry> {
        let (out, attempts) = self
            .attempt(
                Action::FailOrder,
                order,
                Some(reason),
                &self.saga.compensation_retry,
            )
            .await;
        match out {
            Ok(()) => {
                self.record(order.order_id, Action::FailOrder, true, attempts, None)
                    .await
            }
            Err(e) => Err(Retry(format!("FailOrder failed: {e}"))),
        }
    }
}

/// Backoff for redeliveries of a failed message: 2^(n-1) x base, full jitter.
pub fn redelivery_delay(base: Duration, receive_count: u32) -> Duration {
    let factor = 2u32.saturating_pow(receive_count.saturating_sub(1).min(10));
    base.saturating_mul(factor).mul_f64(random01().max(0.1))
}
