//! The order state machine.
//!
//! `PENDING -> CONFIRMED -> FULFILLED`, `PENDING -> FAILED`, `PENDING|CONFIRMED -> CANCELLED`.
//! Nothing else. Stores apply a transition only if the stored status is still the `from`
//! status, so a stale or duplicated step can never overwrite a newer state.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::types::InvalidValue;

/// Where an order is in its life: `PENDING -> CONFIRMED -> FULFILLED`, `PENDING -> FAILED`,
/// `PENDING|CONFIRMED -> CANCELLED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Fulfilled,
    Failed,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Fulfilled,
        OrderStatus::Failed,
        OrderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Fulfilled => "FULFILLED",
            OrderStatus::Failed => "FAILED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Whether `self -> to` is one of the allowed transitions.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Pending, Confirmed)
                | (Confirmed, Fulfilled)
                | (Pending, Failed)
                | (Pending, Cancelled)
                | (Confirmed, Cancelled)
        )
    }

    /// No transition leaves a terminal status.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Fulfilled | OrderStatus::Failed | OrderStatus::Cancelled
        )
    }

    /// The status may still be cancelled by the customer.
    pub fn is_cancellable(self) -> bool {
        self.can_become(OrderStatus::Cancelled)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<OrderStatus, InvalidValue> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                InvalidValue(
                    "must be one of PENDING, CONFIRMED, FULFILLED, FAILED, CANCELLED".to_owned(),
                )
            })
    }
}

/// A transition that the state machine refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order in status {from} cannot become {to}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

/// Checks a transition against the state machine.
pub fn transition(from: OrderStatus, to: OrderStatus) -> Result<OrderStatus, IllegalTransition> {
    if from.can_become(to) {
        Ok(to)
    } else {
        Err(IllegalTransition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;
    use proptest::prelude::*;

    const ALLOWED: [(OrderStatus, OrderStatus); 5] = [
        (Pending, Confirmed),
        (Confirmed, Fulfilled),
        (Pending, Failed),
        (Pending, Cancelled),
        (Confirmed, Cancelled),
    ];

    fn any_status() -> impl Strategy<Value = OrderStatus> {
        prop::sample::select(OrderStatus::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn only_the_listed_transitions_are_allowed(from in any_status(), to in any_status()) {
            prop_assert_eq!(from.can_become(to), ALLOWED.contains(&(from, to)));
            prop_assert_eq!(transition(from, to).is_ok(), ALLOWED.contains(&(from, to)));
        }

        #[test]
        fn any_walk_ends_in_a_terminal_state_and_stays_there(
            targets in prop::collection::vec(any_status(), 0..20)
        ) {
            let mut st = Pending;
            let mut steps = 0;
            for to in targets {
                if let Ok(next) = transition(st, to) {
                    prop_assert!(!st.is_terminal(), "left terminal state {st}");
                    st = next;
                    steps += 1;
                }
            }
            // Every path is at most two transitions long (PENDING -> CONFIRMED -> end).
            prop_assert!(steps <= 2);
        }

        #[test]
        fn status_text_round_trips(st in any_status()) {
            prop_assert_eq!(st.as_str().parse::<OrderStatus>(), Ok(st));
            let json = serde_json::to_string(&st).unwrap();
            prop_assert_eq!(json, format!("\"{}\"", st.as_str()));
        }
    }

    #[test]
    fn terminal_states_have_no_exit() {
        for from in [Fulfilled, Failed, Cancelled] {
            for to in OrderStatus::ALL {
                assert!(!from.can_become(to));
            }
        }
        assert!("pending".parse::<OrderStatus>().is_err());
    }
}
