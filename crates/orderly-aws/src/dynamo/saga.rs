//! The saga's state on DynamoDB, in one table keyed by order (PK `orderId`, SK `sk`):
//! `reservation`, `payment`, `step#<action>` and `notified#<event id>` items.
//!
//! A reservation is one `TransactWriteItems`: a condition that the order is still
//! `PENDING`, the reservation record (only if absent: a retried reserve is a no-op), a
//! conditional decrement per line (never below zero), the InventoryReserved event and the
//! saga step's record.
//! DynamoDB allows 100 actions per transaction, so an order of more than
//! [`MAX_RESERVABLE_LINES`] lines is refused rather than reserved in parts.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use orderly_core::ports::{
    Inventory, Notification, NotificationLog, OrderStore, PaymentLedger, PaymentState,
    ReleaseOutcome, Reservations, ReserveOutcome, SagaLog, StepRecord,
};
use orderly_core::saga::Action;
use orderly_core::{DomainEvent, Order, OrderId, OrderStatus, StoreError, Timestamp};

use super::{
    DynamoStore, Item, build_err, corrupt, event_writes, get_n, get_s, is_condition_failure, money,
    n, opt_s, s, sdk_err, ts,
};

/// Most order lines one reservation transaction can hold (100 actions, less the order
/// check, the reservation record, the event's two writes and the saga step's record).
pub const MAX_RESERVABLE_LINES: usize = 95;

/// The item of a saga step's record.
fn step_item(order_id: OrderId, record: &StepRecord) -> HashMap<String, AttributeValue> {
    let mut item: HashMap<String, AttributeValue> = HashMap::from([
        ("orderId".to_owned(), s(order_id.to_string())),
        ("sk".to_owned(), s(format!("step#{}", record.action))),
        ("action".to_owned(), s(record.action.as_str())),
        ("succeeded".to_owned(), n(i64::from(record.succeeded))),
        ("attempts".to_owned(), n(i64::from(record.attempts))),
        ("at".to_owned(), n(record.at.millis())),
    ]);
    if let Some(d) = &record.detail {
        item.insert("detail".into(), s(d));
    }
    item
}

impl DynamoStore {
    /// A saga step's record as one action of a transaction (none without a record).
    pub(crate) fn step_write(
        &self,
        order_id: OrderId,
        step: Option<&StepRecord>,
    ) -> Result<Option<TransactWriteItem>, StoreError> {
        let Some(record) = step else {
            return Ok(None);
        };
        let put = Put::builder()
            .table_name(&self.tables.saga)
            .set_item(Some(step_item(order_id, record)))
            .build()
            .map_err(build_err)?;
        Ok(Some(TransactWriteItem::builder().put(put).build()))
    }

    /// Records a saga step on its own: the effect was already there, so there is nothing
    /// to commit it with.
    pub(crate) async fn step_alone(
        &self,
        order_id: OrderId,
        step: Option<StepRecord>,
    ) -> Result<(), StoreError> {
        match step {
            Some(record) => self.record_step(order_id, record).await,
            None => Ok(()),
        }
    }

    async fn saga_item(&self, order_id: OrderId, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.saga)
            .key("orderId", s(order_id.to_string()))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(out.item().cloned())
    }

    async fn reservation_state(&self, order_id: OrderId) -> Result<Option<String>, StoreError> {
        Ok(self
            .saga_item(order_id, "reservation")
            .await?
            .and_then(|i| opt_s(&i, "state")))
    }
}

#[async_trait]
impl Reservations for DynamoStore {
    async fn reserve(
        &self,
        order: &Order,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<ReserveOutcome, StoreError> {
        let id = order.order_id;
        match self.reservation_state(id).await?.as_deref() {
            Some("reserved") => {
                self.step_alone(id, step).await?;
                return Ok(ReserveOutcome::AlreadyReserved);
            }
            Some(_) => return Ok(ReserveOutcome::Released),
            None => {}
        }
        if order.items.len() > MAX_RESERVABLE_LINES {
            return Err(StoreError::Backend(format!(
                "an order of {} lines exceeds the {MAX_RESERVABLE_LINES} lines DynamoDB can \
                 reserve in one transaction",
                order.items.len()
            )));
        }
        let t = &self.tables;
        let check = ConditionCheck::builder()
            .table_name(&t.orders)
            .key("orderId", s(id.to_string()))
            .condition_expression("attribute_not_exists(orderId) OR #st = :pending")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":pending", s(OrderStatus::Pending.as_str()))
            .build()
            .map_err(build_err)?;
        let held: Vec<(String, u32)> = order
            .items
            .iter()
            .map(|i| (i.product_id.as_str().to_owned(), i.qty.get()))
            .collect();
        let record = Put::builder()
            .table_name(&t.saga)
            .item("orderId", s(id.to_string()))
            .item("sk", s("reservation"))
            .item("state", s("reserved"))
            .item(
                "items",
                s(serde_json::to_string(&held).map_err(|e| corrupt("reservation", e))?),
            )
            .item("at", n(event.time.millis()))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(build_err)?;
        let mut items = vec![
            TransactWriteItem::builder().condition_check(check).build(),
            TransactWriteItem::builder().put(record).build(),
        ];
        for (pid, qty) in &held {
            let update = Update::builder()
                .table_name(&t.inventory)
                .key("productId", s(pid))
                .update_expression("SET stock = stock - :q, version = version + :one")
                .condition_expression("attribute_exists(productId) AND stock >= :q")
                .expression_attribute_values(":q", n(i64::from(*qty)))
                .expression_attribute_values(":one", n(1))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        items.extend(event_writes(&t.events, &event)?);
        items.extend(self.step_write(id, step.as_ref())?);
        let Some(codes) = self.transact(items).await? else {
            return Ok(ReserveOutcome::Reserved);
        };
        let failed = |i: usize| codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed");
        if failed(0) {
            let status = self
                .get(id)
                .await?
                .map(|o| o.status)
                .unwrap_or(OrderStatus::Pending);
            return Ok(ReserveOutcome::NotPending(status));
        }
        if failed(1) {
            return Ok(match self.reservation_state(id).await?.as_deref() {
                Some("reserved") => {
                    self.step_alone(id, step).await?;
                    ReserveOutcome::AlreadyReserved
                }
                _ => ReserveOutcome::Released,
            });
        }
        for (i, item) in order.items.iter().enumerate() {
            if failed(2 + i) {
                return Ok(match self.product(&item.product_id).await? {
                    None => ReserveOutcome::UnknownProduct(item.product_id.clone()),
                    Some(p) => ReserveOutcome::Insufficient {
                        product_id: item.product_id.clone(),
                        requested: item.qty.get(),
                        available: p.stock,
                    },
                });
            }
        }
        Err(StoreError::Unavailable(format!(
            "the reservation transaction was cancelled: {codes:?}"
        )))
    }

    async fn release(
        &self,
        order_id: OrderId,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<ReleaseOutcome, StoreError> {
        let t = &self.tables;
        for _ in 0..3 {
            let Some(item) = self.saga_item(order_id, "reservation").await? else {
                // Nothing reserved: leave a released record so a late reserve is refused.
                let put = self
                    .client
                    .put_item()
                    .table_name(&t.saga)
                    .item("orderId", s(order_id.to_string()))
                    .item("sk", s("reservation"))
                    .item("state", s("released"))
                    .item("items", s("[]"))
                    .item("at", n(event.time.millis()))
                    .condition_expression("attribute_not_exists(sk)")
                    .send()
                    .await;
                match put {
                    Ok(_) => {
                        self.step_alone(order_id, step).await?;
                        return Ok(ReleaseOutcome::NothingReserved);
                    }
                    Err(e) if is_condition_failure(&e) => continue,
                    Err(e) => return Err(sdk_err(e)),
                }
            };
            if get_s(&item, "state")? != "reserved" {
                self.step_alone(order_id, step).await?;
                return Ok(ReleaseOutcome::AlreadyReleased);
            }
            let held: Vec<(String, u32)> = serde_json::from_str(get_s(&item, "items")?)
                .map_err(|e| corrupt("reservation", e))?;
            let flip = Update::builder()
                .table_name(&t.saga)
                .key("orderId", s(order_id.to_string()))
                .key("sk", s("reservation"))
                .update_expression("SET #state = :released, releasedAt = :at")
                .condition_expression("#state = :reserved")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":released", s("released"))
                .expression_attribute_values(":reserved", s("reserved"))
                .expression_attribute_values(":at", n(event.time.millis()))
                .build()
                .map_err(build_err)?;
            let mut items = vec![TransactWriteItem::builder().update(flip).build()];
            for (pid, qty) in &held {
                let back = Update::builder()
                    .table_name(&t.inventory)
                    .key("productId", s(pid))
                    .update_expression("SET stock = stock + :q, version = version + :one")
                    .condition_expression("attribute_exists(productId)")
                    .expression_attribute_values(":q", n(i64::from(*qty)))
                    .expression_attribute_values(":one", n(1))
                    .build()
                    .map_err(build_err)?;
                items.push(TransactWriteItem::builder().update(back).build());
            }
            items.extend(event_writes(&t.events, &event)?);
            items.extend(self.step_write(order_id, step.as_ref())?);
            match self.transact(items).await? {
                None => return Ok(ReleaseOutcome::Released),
                Some(_) => continue, // released concurrently: look again
            }
        }
        Err(StoreError::Unavailable(
            "the reservation is contended; retry".into(),
        ))
    }
}

fn payment_state(item: &Item) -> Result<PaymentState, StoreError> {
    let need = |name: &str| opt_s(item, name).ok_or_else(|| corrupt("payment", name));
    Ok(match get_s(item, "state")? {
        "charged" => PaymentState::Charged {
            payment_id: need("paymentId")?,
            amount: money(get_n(item, "amountMinor")?)?,
        },
        "declined" => PaymentState::Declined {
            reason: opt_s(item, "reason").unwrap_or_default(),
        },
        "refunded" => PaymentState::Refunded {
            payment_id: need("paymentId")?,
            refund_id: need("refundId")?,
            amount: money(get_n(item, "amountMinor")?)?,
        },
        other => return Err(corrupt("payment state", other)),
    })
}

#[async_trait]
impl PaymentLedger for DynamoStore {
    async fn payment(&self, order_id: OrderId) -> Result<Option<PaymentState>, StoreError> {
        self.saga_item(order_id, "payment")
            .await?
            .as_ref()
            .map(payment_state)
            .transpose()
    }

    async fn record_charge(
        &self,
        order_id: OrderId,
        state: PaymentState,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<PaymentState, StoreError> {
        let charged = |st: &PaymentState| matches!(st, PaymentState::Charged { .. });
        let mut put = Put::builder()
            .table_name(&self.tables.saga)
            .item("orderId", s(order_id.to_string()))
            .item("sk", s("payment"))
            .item("at", n(event.time.millis()))
            .condition_expression("attribute_not_exists(sk)");
        put = match &state {
            PaymentState::Charged { payment_id, amount } => put
                .item("state", s("charged"))
                .item("paymentId", s(payment_id))
                .item("amountMinor", n(amount.minor())),
            PaymentState::Declined { reason } => {
                put.item("state", s("declined")).item("reason", s(reason))
            }
            PaymentState::Refunded { .. } => {
                return Err(StoreError::Backend(
                    "a charge cannot be recorded as refunded".into(),
                ));
            }
        };
        let mut items = vec![
            TransactWriteItem::builder()
                .put(put.build().map_err(build_err)?)
                .build(),
        ];
        items.extend(event_writes(&self.tables.events, &event)?);
        if charged(&state) {
            items.extend(self.step_write(order_id, step.as_ref())?);
        }
        match self.transact(items).await? {
            None => Ok(state),
            Some(_) => {
                let now = self.payment(order_id).await?.ok_or_else(|| {
                    StoreError::Unavailable("payment record contended; retry".into())
                })?;
                if charged(&now) {
                    self.step_alone(order_id, step).await?;
                }
                Ok(now)
            }
        }
    }

    async fn record_refund(
        &self,
        order_id: OrderId,
        refund_id: String,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<Option<PaymentState>, StoreError> {
        match self.payment(order_id).await? {
            Some(PaymentState::Charged { .. }) => {}
            other => {
                self.step_alone(order_id, step).await?;
                return Ok(other);
            }
        }
        let update = Update::builder()
            .table_name(&self.tables.saga)
            .key("orderId", s(order_id.to_string()))
            .key("sk", s("payment"))
            .update_expression("SET #state = :refunded, refundId = :rid, refundedAt = :at")
            .condition_expression("#state = :charged")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":refunded", s("refunded"))
            .expression_attribute_values(":charged", s("charged"))
            .expression_attribute_values(":rid", s(&refund_id))
            .expression_attribute_values(":at", n(event.time.millis()))
            .build()
            .map_err(build_err)?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(event_writes(&self.tables.events, &event)?);
        items.extend(self.step_write(order_id, step.as_ref())?);
        if self.transact(items).await?.is_some() {
            // Refunded concurrently: the refund is there, record the step alone.
            self.step_alone(order_id, step).await?;
        }
        self.payment(order_id).await
    }
}

#[async_trait]
impl SagaLog for DynamoStore {
    async fn steps(&self, order_id: OrderId) -> Result<Vec<StepRecord>, StoreError> {
        let items = self.saga_items(order_id, "step#").await?;
        let mut steps = items
            .iter()
            .map(|i| {
                let name = get_s(i, "action")?;
                Ok(StepRecord {
                    action: Action::parse(name).ok_or_else(|| corrupt("saga action", name))?,
                    succeeded: get_n(i, "succeeded")? != 0,
                    attempts: u32::try_from(get_n(i, "attempts")?).unwrap_or(0),
                    detail: opt_s(i, "detail"),
                    at: ts(get_n(i, "at")?)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        steps.sort_by_key(|r| r.at);
        Ok(steps)
    }

    async fn record_step(&self, order_id: OrderId, record: StepRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.saga)
            .set_item(Some(step_item(order_id, &record)))
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }
}

#[async_trait]
impl NotificationLog for DynamoStore {
    async fn was_sent(&self, event_id: uuid::Uuid) -> Result<bool, StoreError> {
        // The event id alone does not name the order: the marker is keyed by it instead.
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.saga)
            .key("orderId", s(format!("event#{event_id}")))
            .key("sk", s("notified"))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(out.item().is_some())
    }

    async fn record_sent(
        &self,
        n_: &Notification,
        transport: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let marker = Put::builder()
            .table_name(&self.tables.saga)
            .item("orderId", s(format!("event#{}", n_.event_id)))
            .item("sk", s("notified"))
            .item("at", n(at.millis()))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(build_err)?;
        let record = Put::builder()
            .table_name(&self.tables.saga)
            .item("orderId", s(n_.order_id.to_string()))
            .item("sk", s(format!("notified#{}", n_.event_id)))
            .item("recipient", s(n_.to.as_str()))
            .item("subject", s(&n_.subject))
            .item("transport", s(transport))
            .item("at", n(at.millis()))
            .build()
            .map_err(build_err)?;
        self.transact(vec![
            TransactWriteItem::builder().put(marker).build(),
            TransactWriteItem::builder().put(record).build(),
        ])
        .await?;
        Ok(())
    }

    async fn sent_for(
        &self,
        order_id: OrderId,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let items = self.saga_items(order_id, "notified#").await?;
        let mut rows = items
            .iter()
            .map(|i| {
                Ok((
                    get_n(i, "at")?,
                    (
                        get_s(i, "subject")?.to_owned(),
                        get_s(i, "recipient")?.to_owned(),
                        get_s(i, "transport")?.to_owned(),
                    ),
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.sort_by_key(|(at, _)| *at);
        Ok(rows.into_iter().map(|(_, r)| r).collect())
    }
}
