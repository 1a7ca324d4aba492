//! Domain events in an EventBridge-style envelope.
//!
//! An event's id is derived from the order and the event type, so recording the same
//! event twice (a redelivered message, a replayed dead letter) is recognisably the same
//! event and stores keep it once.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::model::{Order, Timestamp};
use crate::types::{InvalidValue, OrderId};

/// The `source` of every Orderly event.
pub const SOURCE: &str = "orderly";

/// The `detailType` of a domain event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventType {
    OrderCreated,
    InventoryReserved,
    InventoryReleased,
    PaymentCompleted,
    PaymentFailed,
    PaymentRefunded,
    OrderConfirmed,
    OrderPlaced,
    OrderFailed,
    OrderCancelled,
    FulfillmentCompleted,
}

impl EventType {
    pub const ALL: [EventType; 11] = [
        EventType::OrderCreated,
        EventType::InventoryReserved,
        EventType::InventoryReleased,
        EventType::PaymentCompleted,
        EventType::PaymentFailed,
        EventType::PaymentRefunded,
        EventType::OrderConfirmed,
        EventType::OrderPlaced,
        EventType::OrderFailed,
        EventType::OrderCancelled,
        EventType::FulfillmentCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderCreated => "OrderCreated",
            EventType::InventoryReserved => "InventoryReserved",
            EventType::InventoryReleased => "InventoryReleased",
            EventType::PaymentCompleted => "PaymentCompleted",
            EventType::PaymentFailed => "PaymentFailed",
            EventType::PaymentRefunded => "PaymentRefunded",
            EventType::OrderConfirmed => "OrderConfirmed",
            EventType::OrderPlaced => "OrderPlaced",
            EventType::OrderFailed => "OrderFailed",
            EventType::OrderCancelled => "OrderCancelled",
            EventType::FulfillmentCompleted => "FulfillmentCompleted",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<EventType, InvalidValue> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| InvalidValue(format!("unknown event type {s}")))
    }
}

/// One domain event (an EventBridge-style envelope). `detail` always carries `orderId`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DomainEvent {
    /// The same for every copy of one event of one order.
    pub id: Uuid,
    /// Always `orderly`.
    #[cfg_attr(feature = "openapi", schema(example = "orderly"))]
    pub source: &'static str,
    pub detail_type: EventType,
    pub time: Timestamp,
    /// What happened: `orderId` and the event's own fields.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: Value,
    #[serde(skip)]
    pub order_id: OrderId,
}

impl DomainEvent {
    /// The id every copy of "event `kind` of order `order_id`" shares.
    pub fn id_for(order_id: OrderId, kind: EventType) -> Uuid {
        Uuid::new_v5(&order_id.as_uuid(), kind.as_str().as_bytes())
    }

    /// An event about `order_id` with extra detail fields merged after `orderId`.
    pub fn new(order_id: OrderId, kind: EventType, time: Timestamp, extra: Value) -> DomainEvent {
        let mut detail = json!({ "orderId": order_id });
        if let (Some(d), Value::Object(extra)) = (detail.as_object_mut(), extra) {
            d.extend(extra);
        }
        DomainEvent {
            id: DomainEvent::id_for(order_id, kind),
            source: SOURCE,
            detail_type: kind,
            time,
            detail,
            order_id,
        }
    }

    /// Rebuilds a stored event.
    pub fn from_parts(
        id: Uuid,
        order_id: OrderId,
        kind: EventType,
        time: Timestamp,
        detail: Value,
    ) -> DomainEvent {
        DomainEvent {
            id,
            source: SOURCE,
            detail_type: kind,
            time,
            detail,
            order_id,
        }
    }

    pub fn order_created(order: &Order) -> DomainEvent {
        DomainEvent::new(
            order.order_id,
            EventType::OrderCreated,
            order.created_at,
            json!({
                "userId": order.user_id,
                "totalAmount": order.total_amount,
                "currency": order.currency,
                "itemCount": order.items.iter().map(|i| u64::from(i.qty.get())).sum::<u64>(),
                "items": order.items,
            }),
        )
    }

    /// Parses an envelope as [`DomainEvent`] serializes it, or as an EventBridge rule
    /// target receives an event Orderly published (`detail-type`, and the event id as
    /// `detail.eventId`, since EventBridge assigns its own `id`; see `orderly-aws`).
    pub fn from_json(text: &str) -> Result<DomainEvent, InvalidValue> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| InvalidValue(format!("event is not JSON: {e}")))?;
        DomainEvent::from_value(v)
    }

    /// [`DomainEvent::from_json`] on parsed JSON.
    pub fn from_value(v: Value) -> Result<DomainEvent, InvalidValue> {
        let field = |name: &str| {
            v.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| InvalidValue(format!("event has no {name}")))
        };
        if field("source")? != SOURCE {
            return Err(InvalidValue("event source is not orderly".into()));
        }
        let eventbridge = v.get("detail-type").is_some();
        let kind: EventType = if eventbridge {
            field("detail-type")?
        } else {
            field("detailType")?
        }
        .parse()?;
        let time = Timestamp::parse_rfc3339(field("time")?)
            .ok_or_else(|| InvalidValue("event time is not RFC 3339".into()))?;
        let mut detail = v.get("detail").cloned().unwrap_or(Value::Null);
        let id = if eventbridge {
            let id = detail
                .as_object_mut()
                .and_then(|d| d.remove("eventId"))
                .ok_or_else(|| InvalidValue("event detail has no eventId".into()))?;
            id.as_str()
                .map(str::to_owned)
                .ok_or_else(|| InvalidValue("eventId is not a string".into()))?
        } else {
            field("id")?.to_owned()
        };
        let id = Uuid::parse_str(&id).map_err(|e| InvalidValue(format!("event id: {e}")))?;
        let order_id: OrderId = detail
            .get("orderId")
            .and_then(Value::as_str)
            .ok_or_else(|| InvalidValue("event detail has no orderId".into()))?
            .parse()?;
        Ok(DomainEvent::from_parts(id, order_id, kind, time, detail))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn order_cancelled(order_id: OrderId, time: Timestamp, reason: &str) -> DomainEvent {
        DomainEvent::new(
            order_id,
            EventType::OrderCancelled,
            time,
            json!({ "reason": reason }),
        )
    }
}

/// Selects events by source and detail type, as EventBridge rules do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPattern {
    pub source: &'static str,
    /// Empty matches every type.
    pub detail_types: &'static [EventType],
}

impl EventPattern {
    pub fn matches(&self, e: &DomainEvent) -> bool {
        e.source == self.source
            && (self.detail_types.is_empty() || self.detail_types.contains(&e.detail_type))
    }
}

/// A subscription: events matching `pattern` go to the subscriber `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub target: &'static str,
    pub pattern: EventPattern,
}

/// The fulfilment subscriber: assigns tracking ids to placed orders.
pub const FULFILMENT: &str = "fulfilment";
/// The notifications subscriber: mails the customer.
pub const NOTIFICATIONS: &str = "notifications";
/// The webhooks subscriber: fans every event out to the registered webhook endpoints
/// (see [`crate::webhooks`]).
pub const WEBHOOKS: &str = "webhooks";
/// The audit subscriber of the AWS event bus: records every event in its order's
/// timeline (the embedded store records events as it writes them).
pub const AUDIT: &str = "audit";

/// The subscriptions of the event bus. (The audit log receives every event too: it is the
/// event store itself, written in the same transaction as the change each event records.)
pub fn routes() -> Vec<Route> {
    vec![
        Route {
            target: FULFILMENT,
            pattern: EventPattern {
                source: SOURCE,
                detail_types: &[EventType::OrderPlaced],
            },
        },
        Route {
            target: NOTIFICATIONS,
            pattern: EventPattern {
                source: SOURCE,
                detail_types: &[
                    EventType::OrderPlaced,
                    EventType::OrderFailed,
                    EventType::OrderCancelled,
                    EventType::FulfillmentCompleted,
                ],
            },
        },
    ]
}

/// The webhooks subscription: every Orderly event goes to the [`WEBHOOKS`] queue, whose
/// subscriber schedules a delivery for each matching endpoint. Only the embedded backend
/// runs it (see [`local_routes`]); on AWS, EventBridge API destinations do this job.
pub fn webhooks_route() -> Route {
    Route {
        target: WEBHOOKS,
        pattern: EventPattern {
            source: SOURCE,
            detail_types: &[],
        },
    }
}

/// The subscriptions of the one-machine event bus: [`routes`] and [`webhooks_route`].
pub fn local_routes() -> Vec<Route> {
    let mut all = routes();
    all.push(webhooks_route());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json_and_ids_are_stable() {
        let id = OrderId::generate(chrono::Utc::now());
        let t = Timestamp::from_millis(1_767_225_600_123).unwrap();
        let e = DomainEvent::new(id, EventType::OrderPlaced, t, json!({"x": 1}));
        let back = DomainEvent::from_json(&e.to_json()).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.id, DomainEvent::id_for(id, EventType::OrderPlaced));
        assert_ne!(e.id, DomainEvent::id_for(id, EventType::OrderFailed));
        assert!(DomainEvent::from_json("{}").is_err());
    }

    #[test]
    fn routes_select_by_type() {
        let id = OrderId::generate(chrono::Utc::now());
        let t = Timestamp::from_millis(0).unwrap();
        let placed = DomainEvent::new(id, EventType::OrderPlaced, t, json!({}));
        let reserved = DomainEvent::new(id, EventType::InventoryReserved, t, json!({}));
        let targets = |e: &DomainEvent| -> Vec<&str> {
            routes()
                .into_iter()
                .filter(|r| r.pattern.matches(e))
                .map(|r| r.target)
                .collect()
        };
        assert_eq!(targets(&placed), [FULFILMENT, NOTIFICATIONS]);
        assert!(targets(&reserved).is_empty());
    }

    #[test]
    fn the_local_bus_also_sends_every_event_to_webhooks() {
        let id = OrderId::generate(chrono::Utc::now());
        let t = Timestamp::from_millis(0).unwrap();
        for kind in EventType::ALL {
            let e = DomainEvent::new(id, kind, t, json!({}));
            let local: Vec<&str> = local_routes()
                .into_iter()
                .filter(|r| r.pattern.matches(&e))
                .map(|r| r.target)
                .collect();
            assert_eq!(local.last(), Some(&WEBHOOKS), "{kind}");
            assert_eq!(
                local.len(),
                routes().iter().filter(|r| r.pattern.matches(&e)).count() + 1
            );
        }
    }
}
