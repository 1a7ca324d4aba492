//! Running an order's saga: every rule of it, for both runtimes.
//!
//! - [`Orderly::process_order`] is the local engine: it takes a processing message's
//!   order, decides what it calls for ([`Orderly::intake`]), runs or resumes the saga with
//!   each step's retry policy, compensates a failure and records every outcome in the
//!   saga log. `orderly-worker` drives it from the `orders` queue.
//! - [`Orderly::intake`] is the status check a processing message gets first: a cancelled
//!   order is compensated, a terminal one is left alone, a live one goes to its saga. The
//!   AWS `worker` function calls it and starts a Step Functions execution for a live order.
//! - [`Orderly::saga_task`] is one state of the Step Functions machine (the AWS
//!   `saga-step` function): one action, the same exhaustion rule as the local engine.
//!
//! A successful step is recorded in the same write as its effect (see
//! [`crate::ports::StepRecord`]). The waiting between attempts comes from the driver
//! ([`Pause`]), so this crate needs no runtime.

use std::time::Duration;

use async_trait::async_trait;

use crate::actions::StepError;
use crate::model::Order;
use crate::ports::StepRecord;
use crate::saga::{Action, RetryPolicy, SagaDef};
use crate::service::Orderly;
use crate::status::OrderStatus;
use crate::types::OrderId;

/// Why the message that asked for a saga must be delivered again later (it is not acked):
/// the saga could not move on now (a busy store, a step whose failure is retryable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeliver(pub String);

impl std::error::Error for Redeliver {}

impl std::fmt::Display for Redeliver {
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
    /// Already terminal, or cancelled and compensated.
    NothingToDo(OrderStatus),
}

/// What a processing message calls for.
#[derive(Debug, Clone, PartialEq)]
pub enum Intake {
    /// The order is `PENDING` or `CONFIRMED`: run (or resume) its saga.
    Saga(Box<Order>),
    /// The order was cancelled; its compensations have run now.
    Compensated,
    /// The order is `FAILED` or `FULFILLED`: nothing to do.
    Done(OrderStatus),
}

/// How a driver waits between attempts of a step.
#[async_trait]
pub trait Pause: Send + Sync {
    async fn pause(&self, d: Duration);
    /// A number in [0, 1) for the backoff's jitter.
    fn jitter(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// No waiting (for a policy of one attempt).
struct NoPause;

#[async_trait]
impl Pause for NoPause {
    async fn pause(&self, _d: Duration) {}
}

impl Orderly {
    fn record(
        &self,
        action: Action,
        ok: bool,
        attempts: u32,
        detail: Option<String>,
    ) -> StepRecord {
        StepRecord {
            action,
            succeeded: ok,
            attempts,
            detail,
            at: self.ports().clock.now(),
        }
    }

    async fn record_step(&self, id: OrderId, record: StepRecord) -> Result<(), Redeliver> {
        self.saga()
            .map_err(|e| Redeliver(e.to_string()))?
            .saga_log
            .record_step(id, record)
            .await
            .map_err(|e| Redeliver(format!("cannot record saga step: {e}")))
    }

    /// The status check every processing message gets first (both runtimes).
    pub async fn intake(
        &self,
        saga: &SagaDef,
        id: OrderId,
        pause: &dyn Pause,
    ) -> Result<Intake, Redeliver> {
        let order = self
            .ports()
            .orders
            .get(id)
            .await
            .map_err(|e| Redeliver(e.to_string()))?
            .ok_or_else(|| Redeliver(format!("order {id} does not exist")))?;
        match order.status {
            OrderStatus::Cancelled => {
                self.compensate(saga, &order, &saga.all_compensations(), pause)
                    .await?;
                Ok(Intake::Compensated)
            }
            st @ (OrderStatus::Failed | OrderStatus::Fulfilled) => Ok(Intake::Done(st)),
            OrderStatus::Pending | OrderStatus::Confirmed => Ok(Intake::Saga(Box::new(order))),
        }
    }

    /// Processes one order on the local engine: runs or resumes its saga, or ensures the
    /// compensations of a cancelled order. Idempotent: processing an order again changes
    /// nothing.
    pub async fn process_order(
        &self,
        saga: &SagaDef,
        id: OrderId,
        pause: &dyn Pause,
    ) -> Result<SagaOutcome, Redeliver> {
        match self.intake(saga, id, pause).await? {
            Intake::Compensated => Ok(SagaOutcome::NothingToDo(OrderStatus::Cancelled)),
            Intake::Done(st) => Ok(SagaOutcome::NothingToDo(st)),
            Intake::Saga(order) if order.status == OrderStatus::Confirmed => {
                // Stopped between ConfirmOrder and EmitOrderPlaced: emit (idempotent).
                let _ = self
                    .forward(saga, &order, Action::EmitOrderPlaced, pause)
                    .await?;
                Ok(SagaOutcome::Completed)
            }
            Intake::Saga(order) => self.run_saga(saga, &order, pause).await,
        }
    }

    /// The rule for an action whose last allowed attempt failed: a payment still failing
    /// transiently is recorded as declined, so no later delivery charges an order whose
    /// stock was released, and the failure becomes final (the saga compensates). Other
    /// errors are answered as they are.
    pub async fn out_of_attempts(
        &self,
        action: Action,
        order_id: OrderId,
        attempts: u32,
        err: StepError,
    ) -> StepError {
        match err {
            StepError::Retryable(e) if action == Action::ProcessPayment => {
                let reason = format!("payment failed after {attempts} attempts: {e}");
                match self.abandon_payment(order_id, &reason).await {
                    Ok(()) => StepError::Final(reason),
                    Err(e) => e,
                }
            }
            other => other,
        }
    }

    /// One state of the Step Functions machine: runs `action` for the order, where
    /// `attempt` is the state's attempt number (1 for the first) and `reason` the failure
    /// a `FailOrder` records. The state machine retries and catches by the error's name.
    pub async fn saga_task(
        &self,
        saga: &SagaDef,
        id: OrderId,
        action: Action,
        attempt: u32,
        reason: Option<&str>,
    ) -> Result<(), StepError> {
        let order = self
            .ports()
            .orders
            .get(id)
            .await?
            .ok_or_else(|| StepError::Final(format!("order {id} does not exist")))?;
        match self.run_action(action, &order, reason, None).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let allowed = saga.step(action).map_or(1, |s| s.retry.max_attempts);
                if e.is_retryable() && attempt >= allowed {
                    Err(self.out_of_attempts(action, id, attempt, e).await)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Runs `action` with `policy`: retryable errors are tried again after a jittered
    /// backoff, final errors are answered at once. On success the step's record is
    /// committed with the effect (or on its own when the action wrote nothing).
    async fn attempt(
        &self,
        action: Action,
        order: &Order,
        reason: Option<&str>,
        policy: &RetryPolicy,
        pause: &dyn Pause,
    ) -> Result<Result<u32, (StepError, u32)>, Redeliver> {
        let mut attempt = 1;
        loop {
            let step = self.record(action, true, attempt, None);
            match self
                .run_action(action, order, reason, Some(step.clone()))
                .await
            {
                Ok(true) => return Ok(Ok(attempt)),
                Ok(false) => {
                    self.record_step(order.order_id, step).await?;
                    return Ok(Ok(attempt));
                }
                Err(e) if policy.retries(e.name()) && attempt < policy.max_attempts => {
                    attempt += 1;
                    let delay = policy.delay(attempt, pause.jitter());
                    tracing::info!(order_id = %order.order_id, %action, attempt,
                        delay_ms = delay.as_millis() as u64, error = %e, "retrying");
                    pause.pause(delay).await;
                }
                Err(e) => return Ok(Err((e, attempt))),
            }
        }
    }

    /// A forward step: `Ok(Err((action, reason)))` when it failed for good.
    async fn forward(
        &self,
        saga: &SagaDef,
        order: &Order,
        action: Action,
        pause: &dyn Pause,
    ) -> Result<Result<(), (Action, String)>, Redeliver> {
        let Some(step) = saga.step(action) else {
            return Ok(Ok(()));
        };
        let (e, attempts) = match self
            .attempt(action, order, None, &step.retry, pause)
            .await?
        {
            Ok(_) => return Ok(Ok(())),
            Err(failed) => failed,
        };
        if step.best_effort {
            tracing::warn!(order_id = %order.order_id, %action, error = %e, "best-effort step failed");
            let r = self.record(action, false, attempts, Some(e.to_string()));
            self.record_step(order.order_id, r).await?;
            return Ok(Ok(()));
        }
        match self
            .out_of_attempts(action, order.order_id, attempts, e)
            .await
        {
            StepError::Final(reason) => Ok(Err((action, reason))),
            StepError::Retryable(e) => Err(Redeliver(format!("{action} failed: {e}"))),
        }
    }

    /// Runs the saga of a `PENDING` order from where its log says it stopped.
    pub async fn run_saga(
        &self,
        saga: &SagaDef,
        order: &Order,
        pause: &dyn Pause,
    ) -> Result<SagaOutcome, Redeliver> {
        let id = order.order_id;
        let log = self
            .saga()
            .map_err(|e| Redeliver(e.to_string()))?
            .saga_log
            .steps(id)
            .await
            .map_err(|e| Redeliver(e.to_string()))?;
        let done = |a: Action| log.iter().any(|r| r.action == a && r.succeeded);
        // A forward step already failed for good: resume its compensation.
        let failed = saga.steps.iter().find_map(|s| {
            log.iter()
                .find(|r| r.action == s.action && !r.succeeded && !s.best_effort)
                .map(|r| (s.action, r.detail.clone().unwrap_or_default()))
        });
        let failure = match failed {
            Some(f) => Some(f),
            None => {
                let mut failure = None;
                for step in &saga.steps {
                    if done(step.action) {
                        continue;
                    }
                    if let Err(f) = self.forward(saga, order, step.action, pause).await? {
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
        self.record_step(id, self.record(action, false, 1, Some(reason.clone())))
            .await?;
        tracing::info!(order_id = %id, failed = %action, %reason, "compensating");
        let path = saga.failure_path(action);
        self.compensate(saga, order, &path[..path.len() - 1], pause)
            .await?;
        match self
            .attempt(
                Action::FailOrder,
                order,
                Some(&reason),
                &saga.compensation_retry,
                pause,
            )
            .await?
        {
            Ok(_) => Ok(SagaOutcome::Failed(reason)),
            Err((e, _)) => Err(Redeliver(format!("FailOrder failed: {e}"))),
        }
    }

    /// Runs compensations in order, each with the compensation retry policy. They must
    /// happen: one that keeps failing leaves the message to be retried.
    async fn compensate(
        &self,
        saga: &SagaDef,
        order: &Order,
        actions: &[Action],
        pause: &dyn Pause,
    ) -> Result<(), Redeliver> {
        self.compensate_with(order, actions, &saga.compensation_retry, pause)
            .await
    }

    /// The compensations of a cancelled order, tried once each right away (the cancel
    /// request): one that fails stops the rest, which the processing message queued with
    /// the cancellation runs again with the full retry policy.
    pub async fn compensate_cancelled(&self, order: &Order) {
        let saga = SagaDef::orders(Default::default());
        let once = RetryPolicy {
            max_attempts: 1,
            ..saga.compensation_retry
        };
        if let Err(e) = self
            .compensate_with(order, &saga.all_compensations(), &once, &NoPause)
            .await
        {
            tracing::warn!(order_id = %order.order_id, error = %e,
                "compensation deferred to the worker");
        }
    }

    async fn compensate_with(
        &self,
        order: &Order,
        actions: &[Action],
        policy: &RetryPolicy,
        pause: &dyn Pause,
    ) -> Result<(), Redeliver> {
        for &action in actions {
            if let Err((e, attempts)) = self.attempt(action, order, None, policy, pause).await? {
                let r = self.record(action, false, attempts, Some(e.to_string()));
                self.record_step(order.order_id, r).await?;
                return Err(Redeliver(format!("{action} failed: {e}")));
            }
        }
        Ok(())
    }
}
