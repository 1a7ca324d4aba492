//! The local saga engine: a thin driver of the saga use case in `orderly-core`
//! ([`Orderly::process_order`]), which holds every rule of the saga (retries,
//! compensations, the payment-exhaustion rule, the status check). This module only
//! supplies tokio's timer for the waits between attempts.

use std::time::Duration;

use async_trait::async_trait;
use orderly_core::execution::Pause;
use orderly_core::saga::SagaDef;
use orderly_core::{OrderId, Orderly};

pub use orderly_core::execution::{Redeliver, SagaOutcome};

/// Waits with tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioPause;

#[async_trait]
impl Pause for TokioPause {
    async fn pause(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// Runs [`SagaDef`] for orders through the use cases of [`Orderly`].
#[derive(Debug, Clone)]
pub struct SagaEngine {
    app: Orderly,
    saga: SagaDef,
}

impl SagaEngine {
    pub fn new(app: Orderly, saga: SagaDef) -> SagaEngine {
        SagaEngine { app, saga }
    }

    pub fn saga(&self) -> &SagaDef {
        &self.saga
    }

    /// Processes one order: runs or resumes its saga, or ensures the compensations of a
    /// cancelled order. Idempotent: processing an order again changes nothing.
    pub async fn process(&self, id: OrderId) -> Result<SagaOutcome, Redeliver> {
        self.app.process_order(&self.saga, id, &TokioPause).await
    }
}

/// Backoff for redeliveries of a failed message: 2^(n-1) x base, full jitter.
pub fn redelivery_delay(base: Duration, receive_count: u32) -> Duration {
    let factor = 2u32.saturating_pow(receive_count.saturating_sub(1).min(10));
    base.saturating_mul(factor)
        .mul_f64(rand::random::<f64>().max(0.1))
}
