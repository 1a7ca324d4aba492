//! `events`: the target of the EventBridge rules, one rule per subscription: `audit`
//! (records the event in the audit log, the events table; a no-op when it is already
//! there, as it is for events Orderly wrote itself), `fulfilment` (assigns a tracking id,
//! `FULFILLED`) and `notifications` (SNS, once per event).
//!
//! Each rule's target wraps the event as `{"subscriber": "<name>", "event": <the event>}`
//! (an input transformer with `<aws.events.event.json>`), so each subscription is invoked,
//! retried and dead-lettered on its own. A bare EventBridge event (no wrapper) is recorded
//! and handed to every subscriber whose pattern matches it. All of it is idempotent, so
//! EventBridge's at-least-once delivery and Lambda's retries change nothing twice.

use orderly_aws::eventbridge::event_from_target;
use orderly_core::DomainEvent;
use orderly_core::events::{AUDIT, FULFILMENT, NOTIFICATIONS, routes};
use serde_json::{Value, json};

use crate::Lambda;

/// The subscriptions an invocation names: its wrapper's, or all that match.
fn subscribers(input: &Value, e: &DomainEvent) -> Result<Vec<&'static str>, String> {
    match input.get("subscriber") {
        None => {
            let mut all = vec![AUDIT];
            all.extend(
                routes()
                    .into_iter()
                    .filter(|r| r.pattern.matches(e))
                    .map(|r| r.target),
            );
            Ok(all)
        }
        Some(Value::String(name)) => [AUDIT, FULFILMENT, NOTIFICATIONS]
            .into_iter()
            .find(|s| s == name)
            .map(|s| vec![s])
            .ok_or_else(|| format!("subscriber: unknown subscription {name:?}")),
        Some(other) => Err(format!("subscriber: expected a string, got {other}")),
    }
}

pub async fn handle(l: &Lambda, input: Value) -> Result<Value, String> {
    let event = match input.get("event") {
        Some(inner) if input.get("subscriber").is_some() => inner,
        _ => &input,
    };
    let e = event_from_target(event)?;
    let mut delivered = Vec::new();
    let mut audited = false;
    for s in subscribers(&input, &e)? {
        // Each subscription's reaction is core's (the local worker runs the same).
        let new = l.app.react(s, &e, l.notifier.as_ref()).await?;
        if s == AUDIT {
            audited = new;
        }
        delivered.push(s);
    }
    Ok(json!({ "eventId": e.id, "audited": audited, "subscribers": delivered }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderly_core::{EventType, OrderId, Timestamp};

    #[test]
    fn a_wrapped_event_goes_to_its_subscription_only() {
        let at = Timestamp::from_millis(1_767_225_600_000).unwrap();
        let e = DomainEvent::new(
            OrderId::generate(at.datetime()),
            EventType::OrderPlaced,
            at,
            json!({}),
        );
        assert_eq!(
            subscribers(&json!({}), &e).unwrap(),
            [AUDIT, FULFILMENT, NOTIFICATIONS]
        );
        assert_eq!(
            subscribers(&json!({"subscriber": "fulfilment"}), &e).unwrap(),
            [FULFILMENT]
        );
        assert!(
            subscribers(&json!({"subscriber": "billing"}), &e)
                .unwrap_err()
                .contains("billing")
        );
        assert!(subscribers(&json!({"subscriber": 3}), &e).is_err());
    }
}
