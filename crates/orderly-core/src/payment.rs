//! The built-in payment provider simulator.
//!
//! Decisions are a pure function of the order (its id and total), so a retried or
//! redelivered charge gets the same answer: a simulated 20 % decline rate declines 20 % of
//! orders, not 20 % of attempts. Transient failures can be injected for tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::money::Money;
use crate::ports::{ChargeResult, GatewayError, PaymentGateway};
use crate::types::OrderId;

/// How the simulator behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatorConfig {
    /// Orders whose total exceeds this are declined (default 10,000.00).
    pub decline_over: Money,
    /// Share of orders (0..=100) declined regardless of amount, chosen by order id.
    pub decline_percent: u8,
    /// The first N charge attempts of every order fail transiently (for tests).
    pub transient_failures: u32,
}

impl Default for SimulatorConfig {
    fn default() -> SimulatorConfig {
        SimulatorConfig {
            decline_over: Money::from_minor(1_000_000).unwrap_or(Money::ZERO),
            decline_percent: 0,
            transient_failures: 0,
        }
    }
}

/// An in-process payment provider.
#[derive(Debug, Default)]
pub struct PaymentSimulator {
    config: SimulatorConfig,
    attempts: Mutex<HashMap<OrderId, u32>>,
}

impl PaymentSimulator {
    pub fn new(config: SimulatorConfig) -> PaymentSimulator {
        PaymentSimulator {
            config,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// The decision for an order, ignoring injected transient failures.
    pub fn decide(&self, order_id: OrderId, amount: Money) -> ChargeResult {
        if amount > self.config.decline_over {
            return ChargeResult::Declined {
                reason: format!(
                    "payment declined: {amount} exceeds the limit of {}",
                    self.config.decline_over
                ),
            };
        }
        // The low bits of an order id are random: a stable per-order draw.
        let draw = (order_id.as_uuid().as_u128() % 100) as u8;
        if draw < self.config.decline_percent {
            return ChargeResult::Declined {
                reason: "payment declined by the card issuer (simulated)".into(),
            };
        }
        ChargeResult::Approved {
            payment_id: format!("pay_{}", order_id.as_uuid().simple()),
        }
    }
}

#[async_trait]
impl PaymentGateway for PaymentSimulator {
    async fn charge(&self, order_id: OrderId, amount: Money) -> Result<ChargeResult, GatewayError> {
        let attempt = {
            let mut a = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
            let n = a.entry(order_id).or_insert(0);
            *n += 1;
            *n
        };
        if attempt <= self.config.transient_failures {
            return Err(GatewayError::Transient(format!(
                "simulated provider timeout (attempt {attempt})"
            )));
        }
        Ok(self.decide(order_id, amount))
    }

    async fn refund(
        &self,
        order_id: OrderId,
        _payment_id: &str,
        _amount: Money,
    ) -> Result<String, GatewayError> {
        Ok(format!("re_{}", order_id.as_uuid().simple()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> OrderId {
        OrderId::generate(chrono::Utc::now())
    }

    #[tokio::test]
    async fn declines_over_the_limit_and_never_rerolls() {
        let sim = PaymentSimulator::new(SimulatorConfig::default());
        let big = Money::from_minor(1_199_940).unwrap();
        let o = id();
        for _ in 0..3 {
            assert!(matches!(
                sim.charge(o, big).await,
                Ok(ChargeResult::Declined { .. })
            ));
        }
        let ok = Money::from_minor(1_000_000).unwrap();
        assert!(matches!(
            sim.charge(id(), ok).await,
            Ok(ChargeResult::Approved { .. })
        ));
    }

    #[tokio::test]
    async fn decline_percentage_is_per_order() {
        let sim = PaymentSimulator::new(SimulatorConfig {
            decline_percent: 20,
            ..SimulatorConfig::default()
        });
        let amount = Money::from_minor(100).unwrap();
        let mut declined = 0;
        for _ in 0..2000 {
            let o = id();
            let first = sim.charge(o, amount).await.unwrap();
            // Asking again never changes the answer.
            assert_eq!(sim.charge(o, amount).await.unwrap(), first);
            if matches!(first, ChargeResult::Declined { .. }) {
                declined += 1;
            }
        }
        assert!(
            (300..=500).contains(&declined),
            "{declined} of 2000 declined"
        );
    }

    #[tokio::test]
    async fn transient_failures_come_first() {
        let sim = PaymentSimulator::new(SimulatorConfig {
            transient_failures: 2,
            ..SimulatorConfig::default()
        });
        let o = id();
        let amount = Money::from_minor(100).unwrap();
        assert!(matches!(
            sim.charge(o, amount).await,
            Err(GatewayError::Transient(_))
        ));
        assert!(matches!(
            sim.charge(o, amount).await,
            Err(GatewayError::Transient(_))
        ));
        assert!(matches!(
            sim.charge(o, amount).await,
            Ok(ChargeResult::Approved { .. })
        ));
    }
}
