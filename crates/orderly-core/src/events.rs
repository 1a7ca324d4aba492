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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// One domain event. `detail` always carries `orderId`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainEvent {
    pub id: Uuid,
    pub source: &'static str,
    pub detail_type: EventType,
    pub time: Timestamp,
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

    pub fn order_cancelled(order_id: OrderId, time: Timestamp, reason: &str) -> DomainEvent {
        DomainEvent::new(
            order_id,
            EventType::OrderCancelled,
            time,
            json!({ "reason": reason }),
        )
    }
}
