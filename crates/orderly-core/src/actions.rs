//! The saga's actions and the subscribers' reactions, as use cases. Each is idempotent by
//! (order, action): running one twice (a redelivered message, a replayed dead letter, a
//! duplicated execution) changes nothing the second time.
//!
//! The local engine (`orderly-worker`) and the AWS `saga-step` function both call these.

use crate::metrics as m;
use serde_json::json;

use crate::error::StoreError;
use crate::events::{AUDIT, DomainEvent, EventType, FULFILMENT, NOTIFICATIONS, WEBHOOKS};
use crate::model::{Order, Timestamp};
use crate::ports::{
    ChargeResult, GatewayError, Notification, Notifier, PaymentState, ReleaseOutcome,
    ReserveOutcome, StepRecord, Transition, TransitionOutcome,
};
use crate::saga::Action;
use crate::service::Orderly;
use crate::status::OrderStatus;
use crate::types::OrderId;

/// Why a saga action did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Trying again later may succeed (provider timeout, busy store).
    #[error("{0}")]
    Retryable(String),
    /// Trying again will not help (out of stock, declined, order cancelled).
    #[error("{0}")]
    Final(String),
}

impl StepError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StepError::Retryable(_))
    }

    /// The error name retry policies match on ([`crate::saga::RETRYABLE`] or
    /// [`crate::saga::FINAL`]).
    pub fn name(&self) -> &'static str {
        match self {
            StepError::Retryable(_) => crate::saga::RETRYABLE,
            StepError::Final(_) => crate::saga::FINAL,
        }
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> StepError {
        if e.is_retryable() {
            StepError::Retryable(e.to_string())
        } else {
            // A store that fails for good is still worth retrying at the message level;
            // the engine gives up on it through the dead-letter queue, not by compensating.
            StepError::Retryable(format!("store failure: {e}"))
        }
    }
}

/// The tracking id fulfilment assigns to an order (stable, so a retry assigns the same).
pub fn tracking_id(order_id: OrderId) -> String {
    let hex = order_id.as_uuid().simple().to_string();
    format!("TRK-{}", hex[hex.len() - 12..].to_ascii_uppercase())
}

impl Orderly {
    /// The saga's ports. A runtime wired without them cannot run a step: that is a
    /// retryable error (a wiring mistake, not the order's fault), never a final one that
    /// would compensate the order.
    pub(crate) fn saga(&self) -> Result<&crate::service::SagaPorts, StepError> {
        self.saga_ports().ok_or_else(|| {
            StepError::Retryable("this runtime runs no saga steps (no saga ports wired)".into())
        })
    }

    fn now(&self) -> Timestamp {
        self.ports().clock.now()
    }

    fn event(&self, order_id: OrderId, kind: EventType, extra: serde_json::Value) -> DomainEvent {
        DomainEvent::new(order_id, kind, self.now(), extra)
    }

    /// Runs one saga action for `order`. `reason` is the failure reason `FailOrder` records.
    ///
    /// `step` is the saga-log record of the action's success: it is committed in the same
    /// write as the effect when there is one. Answers whether it was (`false` when the
    /// action succeeded without writing anything, e.g. it was already done, or when no
    /// record was given): the caller records it on its own then.
    pub async fn run_action(
        &self,
        action: Action,
        order: &Order,
        reason: Option<&str>,
        step: Option<StepRecord>,
    ) -> Result<bool, StepError> {
        let id = order.order_id;
        let p = self.ports();
        let saga = self.saga()?;
        let given = step.is_some();
        match action {
            Action::ReserveInventory => {
                let event = self.event(
                    id,
                    EventType::InventoryReserved,
                    json!({ "items": order.items }),
                );
                match saga.reservations.reserve(order, event, step).await? {
                    ReserveOutcome::Reserved => {
                        metrics::counter!(m::INVENTORY_RESERVED).increment(1);
                        Ok(given)
                    }
                    ReserveOutcome::AlreadyReserved => Ok(given),
                    ReserveOutcome::Released => {
                        Err(StepError::Final("the order was cancelled".into()))
                    }
                    ReserveOutcome::Insufficient {
                        product_id,
                        requested,
                        available,
                    } => Err(StepError::Final(format!(
                        "insufficient stock for {product_id}: {requested} requested, \
                         {available} available"
                    ))),
                    ReserveOutcome::UnknownProduct(pid) => Err(StepError::Final(format!(
                        "product {pid} is no longer in the catalogue"
                    ))),
                    ReserveOutcome::NotPending(st) => {
                        Err(StepError::Final(format!("the order is {st}")))
                    }
                }
            }
            Action::ProcessPayment => {
                match saga.payments.payment(id).await? {
                    Some(PaymentState::Charged { .. }) => return Ok(false),
                    Some(PaymentState::Declined { reason }) => {
                        return Err(StepError::Final(reason));
                    }
                    Some(PaymentState::Refunded { .. }) => {
                        return Err(StepError::Final("the payment was refunded".into()));
                    }
                    None => {}
                }
                let state = match saga.gateway.charge(id, order.total_amount).await {
                    Ok(ChargeResult::Approved { payment_id }) => PaymentState::Charged {
                        payment_id,
                        amount: order.total_amount,
                    },
                    Ok(ChargeResult::Declined { reason }) => PaymentState::Declined { reason },
                    Err(GatewayError::Transient(m)) => return Err(StepError::Retryable(m)),
                    Err(GatewayError::Fatal(m)) => PaymentState::Declined { reason: m },
                };
                self.record_charge(id, state, step).await.map(|()| given)
            }
            Action::ConfirmOrder => {
                let mut t = self.transition(id, OrderStatus::Pending, OrderStatus::Confirmed);
                t.step = step;
                match p.orders.transition(t).await? {
                    TransitionOutcome::Applied(_) => {
                        metrics::counter!(m::ORDERS_CONFIRMED).increment(1);
                        Ok(given)
                    }
                    TransitionOutcome::Stale(o) if o.status == OrderStatus::Confirmed => Ok(given),
                    TransitionOutcome::Stale(o) => {
                        Err(StepError::Final(format!("the order is {}", o.status)))
                    }
                    TransitionOutcome::NotFound => {
                        Err(StepError::Final("the order does not exist".into()))
                    }
                }
            }
            Action::EmitOrderPlaced => {
                let event = self.event(
                    id,
                    EventType::OrderPlaced,
                    json!({
                        "userId": order.user_id,
                        "customerEmail": order.customer_email,
                        "totalAmount": order.total_amount,
                        "currency": order.currency,
                        "itemCount": order.items.iter().map(|i| u64::from(i.qty.get())).sum::<u64>(),
                    }),
                );
                p.orders.append_event(event, step).await?;
                Ok(given)
            }
            Action::RefundPayment => {
                let Some(PaymentState::Charged { payment_id, amount }) =
                    saga.payments.payment(id).await?
                else {
                    return Ok(false); // nothing charged, or already refunded
                };
                let refund_id = match saga.gateway.refund(id, &payment_id, amount).await {
                    Ok(r) => r,
                    Err(GatewayError::Transient(m)) => return Err(StepError::Retryable(m)),
                    Err(GatewayError::Fatal(m)) => return Err(StepError::Retryable(m)),
                };
                let event = self.event(
                    id,
                    EventType::PaymentRefunded,
                    json!({ "paymentId": payment_id, "refundId": refund_id, "amount": amount }),
                );
                saga.payments
                    .record_refund(id, refund_id, event, step)
                    .await?;
                tracing::info!(order_id = %id, %amount, "payment refunded");
                Ok(given)
            }
            Action::ReleaseInventory => {
                let event = self.event(
                    id,
                    EventType::InventoryReleased,
                    json!({ "items": order.items }),
                );
                if saga.reservations.release(id, event, step).await? == ReleaseOutcome::Released {
                    metrics::counter!(m::INVENTORY_RELEASED).increment(1);
                    tracing::info!(order_id = %id, "inventory released");
                }
                Ok(given)
            }
            Action::FailOrder => {
                let reason = reason.unwrap_or("the order could not be processed");
                let mut t = self.transition(id, OrderStatus::Pending, OrderStatus::Failed);
                t.failure_reason = Some(reason.to_owned());
                t.event = self.event(id, EventType::OrderFailed, json!({ "reason": reason }));
                t.step = step;
                match p.orders.transition(t).await? {
                    TransitionOutcome::Applied(o) => {
                        m::record_terminal(&o, m::ORDERS_FAILED, m::outcome::FAILED);
                        tracing::info!(order_id = %id, reason, "order failed");
                        Ok(given)
                    }
                    TransitionOutcome::Stale(o) if o.status == OrderStatus::Failed => Ok(given),
                    // Already terminal otherwise (cancelled meanwhile).
                    TransitionOutcome::Stale(_) | TransitionOutcome::NotFound => Ok(false),
                }
            }
        }
    }

    async fn record_charge(
        &self,
        id: OrderId,
        state: PaymentState,
        step: Option<StepRecord>,
    ) -> Result<(), StepError> {
        let event = match &state {
            PaymentState::Charged { payment_id, amount } => self.event(
                id,
                EventType::PaymentCompleted,
                json!({ "paymentId": payment_id, "amount": amount }),
            ),
            PaymentState::Declined { reason } => {
                self.event(id, EventType::PaymentFailed, json!({ "reason": reason }))
            }
            PaymentState::Refunded { .. } => {
                return Err(StepError::Final("the payment was refunded".into()));
            }
        };
        let new_charge = matches!(state, PaymentState::Charged { .. });
        match self
            .saga()?
            .payments
            .record_charge(id, state, event, step)
            .await?
        {
            PaymentState::Charged { .. } => {
                if new_charge {
                    metrics::counter!(m::PAYMENTS_PROCESSED).increment(1);
                }
                Ok(())
            }
            PaymentState::Declined { reason } => {
                if !new_charge {
                    metrics::counter!(m::PAYMENTS_FAILED).increment(1);
                }
                Err(StepError::Final(reason))
            }
            PaymentState::Refunded { .. } => {
                Err(StepError::Final("the payment was refunded".into()))
            }
        }
    }

    /// Records that payment gave up after its retries, so a redelivery does not retry it.
    pub async fn abandon_payment(&self, id: OrderId, reason: &str) -> Result<(), StepError> {
        let state = PaymentState::Declined {
            reason: reason.to_owned(),
        };
        match self.record_charge(id, state, None).await {
            Err(StepError::Final(_)) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn transition(&self, id: OrderId, from: OrderStatus, to: OrderStatus) -> Transition {
        let kind = match to {
            OrderStatus::Confirmed => EventType::OrderConfirmed,
            OrderStatus::Failed => EventType::OrderFailed,
            OrderStatus::Cancelled => EventType::OrderCancelled,
            OrderStatus::Fulfilled => EventType::FulfillmentCompleted,
            OrderStatus::Pending => EventType::OrderCreated,
        };
        let at = self.now();
        Transition {
            order_id: id,
            from,
            to,
            at,
            event: DomainEvent::new(id, kind, at, json!({})),
            failure_reason: None,
            tracking_id: None,
            enqueue_processing: false,
            step: None,
        }
    }

    /// The fulfilment subscriber: a placed (confirmed) order gets its tracking id and
    /// becomes `FULFILLED`. Anything else is left alone.
    pub async fn fulfil(&self, id: OrderId) -> Result<(), StoreError> {
        self.fulfil_many(&[id]).await
    }

    /// [`Orderly::fulfil`] for several orders in one store call.
    pub async fn fulfil_many(&self, ids: &[OrderId]) -> Result<(), StoreError> {
        let ts: Vec<Transition> = ids
            .iter()
            .map(|&id| {
                let tracking = tracking_id(id);
                let mut t = self.transition(id, OrderStatus::Confirmed, OrderStatus::Fulfilled);
                t.event = self.event(
                    id,
                    EventType::FulfillmentCompleted,
                    json!({ "trackingId": tracking }),
                );
                t.tracking_id = Some(tracking);
                t
            })
            .collect();
        let outs = self.ports().orders.transition_many(ts).await?;
        for (id, out) in ids.iter().zip(outs) {
            match out {
                TransitionOutcome::Applied(o) => {
                    m::record_terminal(&o, m::ORDERS_FULFILLED, m::outcome::FULFILLED);
                    tracing::info!(order_id = %id, tracking_id = ?o.tracking_id, "order fulfilled")
                }
                TransitionOutcome::Stale(o) => {
                    tracing::debug!(order_id = %id, status = %o.status, "fulfilment skipped")
                }
                TransitionOutcome::NotFound => {
                    tracing::warn!(order_id = %id, "fulfilment of unknown order")
                }
            }
        }
        Ok(())
    }

    /// The notification an event calls for, if its order has an e-mail address.
    pub async fn notification_for(
        &self,
        event: &DomainEvent,
    ) -> Result<Option<Notification>, StoreError> {
        let Some(order) = self.ports().orders.get(event.order_id).await? else {
            return Ok(None);
        };
        let Some(to) = order.customer_email.clone() else {
            return Ok(None);
        };
        let id = order.order_id;
        let (subject, body) = match event.detail_type {
            EventType::OrderPlaced => (
                format!("Order {id} confirmed"),
                format!(
                    "Thank you for your order {id}.\nTotal: {} {}\nWe will let you know when it ships.\n",
                    order.total_amount, order.currency
                ),
            ),
            EventType::FulfillmentCompleted => (
                format!("Order {id} is on its way"),
                format!(
                    "Your order {id} has shipped.\nTracking id: {}\n",
                    event.detail["trackingId"].as_str().unwrap_or("-")
                ),
            ),
            EventType::OrderFailed => (
                format!("Order {id} could not be completed"),
                format!(
                    "We could not complete your order {id}: {}.\nYou have not been charged.\n",
                    event.detail["reason"].as_str().unwrap_or("unknown reason")
                ),
            ),
            EventType::OrderCancelled => (
                format!("Order {id} cancelled"),
                format!("Your order {id} has been cancelled. Any payment is refunded.\n"),
            ),
            _ => return Ok(None),
        };
        Ok(Some(Notification {
            event_id: event.id,
            order_id: id,
            to,
            subject,
            body,
        }))
    }

    /// The notifications subscriber: sends the mail an event calls for, at most once per
    /// event (the notification log is checked first and written after sending). A
    /// transient transport failure is an error (the message is retried); a permanent one
    /// is logged and dropped, since retrying cannot help.
    pub async fn deliver_notification(
        &self,
        notifier: &dyn Notifier,
        event: &DomainEvent,
    ) -> Result<(), String> {
        self.deliver_notifications(notifier, std::slice::from_ref(event))
            .await
            .remove(0)
    }

    /// [`Orderly::deliver_notification`] for several events, sent in the order given and
    /// recorded together after the last send (one store call). If recording fails, every
    /// event that sent a mail answers the error, so its message is retried (and may send
    /// again: a crash between a send and its record repeats a mail, never loses one).
    pub async fn deliver_notifications(
        &self,
        notifier: &dyn Notifier,
        events: &[DomainEvent],
    ) -> Vec<Result<(), String>> {
        let log = self.ports().notifications.clone();
        let mut out: Vec<Result<(), String>> = Vec::with_capacity(events.len());
        let mut sent: Vec<(usize, Notification)> = Vec::new();
        for event in events {
            let n = match log.was_sent(event.id).await {
                Err(e) => Err(e.to_string()),
                Ok(true) => Ok(None),
                Ok(false) => self
                    .notification_for(event)
                    .await
                    .map_err(|e| e.to_string()),
            };
            let n = match n {
                Ok(Some(n)) => n,
                Ok(None) => {
                    out.push(Ok(()));
                    continue;
                }
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            match notifier.send(&n).await {
                Ok(()) => {
                    sent.push((out.len(), n));
                    out.push(Ok(()));
                }
                Err(err) if !err.transient => {
                    tracing::error!(order_id = %n.order_id, error = %err, "notification cannot be delivered");
                    out.push(Ok(()));
                }
                Err(err) => out.push(Err(err.to_string())),
            }
        }
        let notes: Vec<Notification> = sent.iter().map(|(_, n)| n.clone()).collect();
        if let Err(e) = log
            .record_sent_many(&notes, notifier.transport(), self.now())
            .await
        {
            for (i, _) in &sent {
                out[*i] = Err(format!("recording the notification failed: {e}"));
            }
        }
        out
    }
}

impl Orderly {
    /// Subscription `subscriber`'s reaction to `event`, for both runtimes' event
    /// consumers: [`AUDIT`] appends it to its order's timeline, [`FULFILMENT`] fulfils a
    /// placed order, [`NOTIFICATIONS`] mails the customer, [`WEBHOOKS`] schedules the
    /// deliveries to the registered endpoints. Each is idempotent per event. Answers, for
    /// `audit`, whether the event was new to the timeline, and `true` otherwise; an error
    /// means "try again later".
    pub async fn react(
        &self,
        subscriber: &str,
        event: &DomainEvent,
        notifier: &dyn Notifier,
    ) -> Result<bool, String> {
        match subscriber {
            AUDIT => self
                .ports()
                .orders
                .append_event(event.clone(), None)
                .await
                .map_err(|e| e.to_string()),
            FULFILMENT => self
                .fulfil(event.order_id)
                .await
                .map(|()| true)
                .map_err(|e| e.to_string()),
            NOTIFICATIONS => self
                .deliver_notification(notifier, event)
                .await
                .map(|()| true),
            WEBHOOKS => self
                .fan_out_webhook(event)
                .await
                .map(|_| true)
                .map_err(|e| e.to_string()),
            other => Err(format!("no subscriber {other}")),
        }
    }

    /// [`Orderly::react`] to several events of one subscription, in order, with one result
    /// per event: fulfilment and notifications write once for the whole batch.
    pub async fn react_many(
        &self,
        subscriber: &str,
        events: &[DomainEvent],
        notifier: &dyn Notifier,
    ) -> Vec<Result<(), String>> {
        match subscriber {
            FULFILMENT => {
                let ids: Vec<OrderId> = events.iter().map(|e| e.order_id).collect();
                let out = self.fulfil_many(&ids).await.map_err(|e| e.to_string());
                vec![out; events.len()]
            }
            NOTIFICATIONS => self.deliver_notifications(notifier, events).await,
            _ => {
                let mut out = Vec::with_capacity(events.len());
                for e in events {
                    out.push(self.react(subscriber, e, notifier).await.map(|_| ()));
                }
                out
            }
        }
    }
}

impl Orderly {
    /// Schedules one delivery of `event` to every active endpoint whose filter matches it
    /// (at most once per endpoint and event, however often the event comes); answers how
    /// many deliveries were new. Without a webhook store, does nothing.
    pub async fn fan_out_webhook(&self, event: &DomainEvent) -> Result<usize, StoreError> {
        let Some(store) = self.webhooks() else {
            return Ok(0);
        };
        let now = self.ports().clock.now();
        let envelope = serde_json::to_value(event)
            .map_err(|e| StoreError::Backend(format!("cannot serialize an event: {e}")))?;
        let mut scheduled = 0;
        for ep in store.list_endpoints().await? {
            if !ep.active || !ep.events.matches(event.detail_type) {
                continue;
            }
            let id = crate::webhooks::delivery_id(ep.id, event.id);
            let message = crate::webhooks::DeliveryMessage {
                delivery_id: id,
                endpoint_id: ep.id,
                attempt: 1,
                event: envelope.clone(),
            };
            let delivery = crate::webhooks::ScheduledDelivery {
                delivery_id: id,
                endpoint_id: ep.id,
                event_id: event.id,
                at: now,
            };
            if store
                .schedule_delivery(
                    &delivery,
                    crate::webhooks::DELIVERY_QUEUE,
                    &message.to_json(),
                )
                .await?
            {
                scheduled += 1;
            }
        }
        Ok(scheduled)
    }
}
