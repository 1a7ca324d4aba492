//! DynamoDB adapters: orders, the audit log of events, the inventory and idempotency keys.
//!
//! Tables (names from [`Tables`]):
//! - orders: PK `orderId`; GSIs `byUser` (`userId`, `createdKey`), `byStatus` (`status`,
//!   `createdKey`) and `all` (`kind`, `createdKey`) for newest-first listing; stream on.
//!   `createdKey` is the creation time in zero-padded epoch milliseconds, `#`, the order
//!   id, so listing order is total and stable.
//! - events (the audit log): PK `orderId`, SK `sk` = time (epoch ms, zero padded) `#`
//!   event id. Next to each event a marker item (SK `~id#<event id>`) written under the
//!   condition that it does not exist, in the same transaction, keeps an event once.
//! - inventory: PK `productId`.
//! - idempotency: PK `key`; `ttl` (epoch seconds) for DynamoDB's TTL, and expiry checked
//!   by the code as well because TTL deletion is lazy.
//! - saga: PK `orderId`, SK `sk`: each order's reservation, payment, saga steps and sent
//!   notifications ([`saga`]).
//!
//! Every multi-item change is one `TransactWriteItems`, so an order, its event and its
//! idempotency record are written together or not at all.

mod keys;
mod saga;
mod schema;
pub mod stream;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use orderly_core::money::CURRENCY;
use orderly_core::ports::{
    IdempotencyBegin, IdempotencyStore, Inventory, NewOrder, OrderStore, Readiness, SeedMode,
    SeedOutcome, StepRecord, StoredResponse, Transition, TransitionOutcome,
};
use orderly_core::{
    DomainEvent, EventType, IdempotencyKey, Money, Order, OrderFilter, OrderId, Page, Product,
    ProductId, ProductSpec, StoreError, Timestamp,
};

pub use saga::MAX_RESERVABLE_LINES;
pub use schema::{IndexSpec, TableSpec, create_tables, table_specs};

type Item = HashMap<String, AttributeValue>;

/// Table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub orders: String,
    pub events: String,
    pub inventory: String,
    pub idempotency: String,
    pub saga: String,
}

impl Tables {
    /// `<prefix>-orders`, `-events`, `-inventory`, `-idempotency` and `-saga`.
    pub fn with_prefix(prefix: &str) -> Tables {
        Tables {
            orders: format!("{prefix}-orders"),
            events: format!("{prefix}-events"),
            inventory: format!("{prefix}-inventory"),
            idempotency: format!("{prefix}-idempotency"),
            saga: format!("{prefix}-saga"),
        }
    }
}

/// Index names of the orders table.
pub const BY_USER: &str = "byUser";
pub const BY_STATUS: &str = "byStatus";
pub const ALL_ORDERS: &str = "all";

/// The DynamoDB adapters.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> DynamoStore {
        DynamoStore { client, tables }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Runs one transaction; `Some(codes)` (one per item) when DynamoDB cancelled it.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(e) => match cancellation_codes(&e) {
                Some(codes) => Ok(Some(codes)),
                None => Err(sdk_err(e)),
            },
        }
    }

    /// The order's saga items whose sort key starts with `prefix`, all pages.
    async fn saga_items(&self, order_id: OrderId, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.saga)
                .key_condition_expression("orderId = :o AND begins_with(sk, :p)")
                .expression_attribute_values(":o", s(order_id.to_string()))
                .expression_attribute_values(":p", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_err)?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => return Ok(items),
            }
        }
    }
}

// ----- attribute helpers ----------------------------------------------------------------

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("stored {what} is not valid: {detail}"))
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(corrupt(name, "missing or not a string")),
    }
}

fn opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn get_n(item: &Item, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|e| corrupt(name, e)),
        _ => Err(corrupt(name, "missing or not a number")),
    }
}

fn ts(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millis(ms).ok_or_else(|| corrupt("time stamp", ms))
}

fn money(minor: i64) -> Result<Money, StoreError> {
    Money::from_minor(minor).ok_or_else(|| corrupt("amount", minor))
}

/// Maps an SDK failure: throttling, timeouts and transport errors are retryable.
pub(crate) fn sdk_err<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    let retryable_codes = [
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "TransactionConflictException",
        "ServiceUnavailable",
    ];
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            StoreError::Unavailable(format!("DynamoDB unreachable: {e:?}"))
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown").to_owned();
            let msg = se.err().message().unwrap_or("").to_owned();
            if retryable_codes.contains(&code.as_str()) {
                StoreError::Unavailable(format!("{code}: {msg}"))
            } else {
                StoreError::Backend(format!("{code}: {msg}"))
            }
        }
        _ => StoreError::Backend(format!("DynamoDB call failed: {e:?}")),
    }
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("invalid DynamoDB request: {e}"))
}

/// The cancellation reason codes of a cancelled transaction, one per item; `None` when
/// the failure was something else.
fn cancellation_codes<R: std::fmt::Debug>(
    e: &SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<String>> {
    let SdkError::ServiceError(se) = e else {
        return None;
    };
    match se.err() {
        TransactWriteItemsError::TransactionCanceledException(c) => Some(
            c.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_owned())
                .collect(),
        ),
        _ => None,
    }
}

// ----- orders ------------------------------------------------------------------------------

fn created_key(o: &Order) -> String {
    format!("{:013}#{}", o.created_at.millis(), o.order_id)
}

fn order_item(o: &Order) -> Result<Item, StoreError> {
    let mut item = Item::new();
    item.insert("orderId".into(), s(o.order_id.to_string()));
    item.insert("userId".into(), s(o.user_id.as_str()));
    if let Some(e) = &o.customer_email {
        item.insert("customerEmail".into(), s(e.as_str()));
    }
    let items = serde_json::to_string(&o.items).map_err(|e| corrupt("items", e))?;
    item.insert("items".into(), s(items));
    item.insert("totalMinor".into(), n(o.total_amount.minor()));
    item.insert("currency".into(), s(&o.currency));
    item.insert("status".into(), s(o.status.as_str()));
    if let Some(r) = &o.failure_reason {
        item.insert("failureReason".into(), s(r));
    }
    if let Some(t) = &o.tracking_id {
        item.insert("trackingId".into(), s(t));
    }
    item.insert("createdAt".into(), n(o.created_at.millis()));
    item.insert("updatedAt".into(), n(o.updated_at.millis()));
    item.insert("createdKey".into(), s(created_key(o)));
    item.insert("kind".into(), s("order"));
    item.insert("version".into(), n(o.version as i64));
    Ok(item)
}

fn item_order(item: &Item) -> Result<Order, StoreError> {
    Ok(Order {
        order_id: get_s(item, "orderId")?
            .parse()
            .map_err(|e| corrupt("order id", e))?,
        user_id: get_s(item, "userId")?
            .parse()
            .map_err(|e| corrupt("user id", e))?,
        customer_email: opt_s(item, "customerEmail")
            .map(|e| e.parse())
            .transpose()
            .map_err(|e| corrupt("email", e))?,
        items: serde_json::from_str(get_s(item, "items")?).map_err(|e| corrupt("items", e))?,
        total_amount: money(get_n(item, "totalMinor")?)?,
        currency: get_s(item, "currency")?.to_owned(),
        status: get_s(item, "status")?
            .parse()
            .map_err(|e| corrupt("status", e))?,
        failure_reason: opt_s(item, "failureReason"),
        tracking_id: opt_s(item, "trackingId"),
        created_at: ts(get_n(item, "createdAt")?)?,
        updated_at: ts(get_n(item, "updatedAt")?)?,
        version: u64::try_from(get_n(item, "version")?).map_err(|e| corrupt("version", e))?,
    })
}

/// The two writes that record an event once: its marker (conditional) and the event.
fn event_writes(table: &str, e: &DomainEvent) -> Result<Vec<TransactWriteItem>, StoreError> {
    let oid = e.order_id.to_string();
    let detail = serde_json::to_string(&e.detail).map_err(|err| corrupt("event", err))?;
    let marker = Put::builder()
        .table_name(table)
        .item("orderId", s(&oid))
        .item("sk", s(format!("~id#{}", e.id)))
        .condition_expression("attribute_not_exists(sk)")
        .build()
        .map_err(build_err)?;
    let event = Put::builder()
        .table_name(table)
        .item("orderId", s(&oid))
        .item("sk", s(format!("{:013}#{}", e.time.millis(), e.id)))
        .item("eventId", s(e.id.to_string()))
        .item("detailType", s(e.detail_type.as_str()))
        .item("time", n(e.time.millis()))
        .item("detail", s(detail))
        .build()
        .map_err(build_err)?;
    Ok(vec![
        TransactWriteItem::builder().put(marker).build(),
        TransactWriteItem::builder().put(event).build(),
    ])
}

pub(crate) fn item_event(order_id: OrderId, item: &Item) -> Result<DomainEvent, StoreError> {
    Ok(DomainEvent::from_parts(
        get_s(item, "eventId")?
            .parse()
            .map_err(|e| corrupt("event id", e))?,
        order_id,
        get_s(item, "detailType")?
            .parse()
            .map_err(|e| corrupt("event type", e))?,
        ts(get_n(item, "time")?)?,
        serde_json::from_str(get_s(item, "detail")?).map_err(|e| corrupt("event detail", e))?,
    ))
}

/// Position of an event type in an order's life, to order events recorded in the same
/// millisecond the way they happen.
fn lifecycle_rank(t: EventType) -> usize {
    EventType::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

fn encode_cursor(created_key: &str, order_id: &str) -> String {
    let v = serde_json::json!({ "k": created_key, "id": order_id });
    URL_SAFE_NO_PAD.encode(format!("d1:{v}"))
}

fn decode_cursor(c: &str) -> Result<(String, String), StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| StoreError::InvalidCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| StoreError::InvalidCursor)?;
    let json = text.strip_prefix("d1:").ok_or(StoreError::InvalidCursor)?;
    let v: serde_json::Value = serde_json::from_str(json).map_err(|_| StoreError::InvalidCursor)?;
    let k = v["k"].as_str().ok_or(StoreError::InvalidCursor)?;
    let id = v["id"].as_str().ok_or(StoreError::InvalidCursor)?;
    // Validate the shapes, so a forged cursor is a clear 400 and not a DynamoDB error.
    let (ms, kid) = k.split_once('#').ok_or(StoreError::InvalidCursor)?;
    if ms.len() != 13
        || !ms.bytes().all(|b| b.is_ascii_digit())
        || kid != id
        || id.parse::<OrderId>().is_err()
    {
        return Err(StoreError::InvalidCursor);
    }
    Ok((k.to_owned(), id.to_owned()))
}

#[async_trait]
impl OrderStore for DynamoStore {
    async fn create(&self, new: NewOrder) -> Result<(), StoreError> {
        let t = &self.tables;
        let put = Put::builder()
            .table_name(&t.orders)
            .set_item(Some(order_item(&new.order)?))
            .condition_expression("attribute_not_exists(orderId)")
            .build()
            .map_err(build_err)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        items.extend(event_writes(&t.events, &new.event)?);
        if let Some(c) = &new.idempotency {
            let put = Put::builder()
                .table_name(&t.idempotency)
                .item("key", s(c.key.as_str()))
                .item("fingerprint", s(&c.fingerprint))
                .item("state", s("completed"))
                .item("responseStatus", n(i64::from(c.response.status)))
                .item("responseBody", s(&c.response.body))
                .item("orderId", s(c.response.order_id.to_string()))
                .item("lockUntil", n(c.expires_at.millis()))
                .item("expiresAt", n(c.expires_at.millis()))
                .item("ttl", n(c.expires_at.millis() / 1000))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        match self.transact(items).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::Backend(format!(
                "order {} already exists",
                new.order.order_id
            ))),
        }
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.orders)
            .key("orderId", s(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        out.item().map(item_order).transpose()
    }

    async fn list(
        &self,
        filter: &OrderFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let start = cursor.map(decode_cursor).transpose()?;
        let (index, pk_name, pk_value) = match (&filter.user_id, filter.status) {
            (Some(u), _) => (BY_USER, "userId", u.as_str().to_owned()),
            (None, Some(st)) => (BY_STATUS, "status", st.as_str().to_owned()),
            (None, None) => (ALL_ORDERS, "kind", "order".to_owned()),
        };
        let status_filter = filter.status.filter(|_| filter.user_id.is_some());
        let mut exclusive: Option<Item> = start.map(|(k, id)| {
            Item::from([
                ("orderId".to_owned(), s(id)),
                ("createdKey".to_owned(), s(k)),
                (pk_name.to_owned(), s(&pk_value)),
            ])
        });
        let want = limit as usize + 1;
        let mut found: Vec<Order> = Vec::new();
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.tables.orders)
                .index_name(index)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_values(":pk", s(&pk_value))
                .scan_index_forward(false)
                .limit(i32::try_from(want.max(10)).unwrap_or(100))
                .set_exclusive_start_key(exclusive.take());
            if let Some(st) = status_filter {
                q = q
                    .filter_expression("#st = :st")
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(":st", s(st.as_str()));
            }
            let out = q.send().await.map_err(sdk_err)?;
            for item in out.items() {
                found.push(item_order(item)?);
                if found.len() == want {
                    break;
                }
            }
            match out.last_evaluated_key() {
                Some(k) if found.len() < want => exclusive = Some(k.clone()),
                _ => break,
            }
        }
        let more = found.len() > limit as usize;
        found.truncate(limit as usize);
        let next_cursor = match (more, found.last()) {
            (true, Some(o)) => Some(encode_cursor(&created_key(o), &o.order_id.to_string())),
            _ => None,
        };
        Ok(Page {
            items: found,
            next_cursor,
        })
    }

    async fn transition(&self, t: Transition) -> Result<TransitionOutcome, StoreError> {
        let current = || async {
            Ok::<_, StoreError>(match self.get(t.order_id).await? {
                Some(o) => TransitionOutcome::Stale(o),
                None => TransitionOutcome::NotFound,
            })
        };
        if !t.from.can_become(t.to) {
            let now = current().await?;
            if let TransitionOutcome::Stale(o) = &now
                && o.status == t.to
            {
                self.step_alone(t.order_id, t.step.clone()).await?;
            }
            return Ok(now);
        }
        let mut set = vec!["#st = :to", "updatedAt = :at", "version = version + :one"];
        let mut update = Update::builder()
            .table_name(&self.tables.orders)
            .key("orderId", s(t.order_id.to_string()))
            .condition_expression("#st = :from")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":to", s(t.to.as_str()))
            .expression_attribute_values(":from", s(t.from.as_str()))
            .expression_attribute_values(":at", n(t.at.millis()))
            .expression_attribute_values(":one", n(1));
        if let Some(r) = &t.failure_reason {
            set.push("failureReason = :fr");
            update = update.expression_attribute_values(":fr", s(r));
        }
        if let Some(tr) = &t.tracking_id {
            set.push("trackingId = :tr");
            update = update.expression_attribute_values(":tr", s(tr));
        }
        if t.enqueue_processing {
            // The stream relay queues the order's processing when this changes.
            set.push("enqueueSeq = if_not_exists(enqueueSeq, :zero) + :one");
            update = update.expression_attribute_values(":zero", n(0));
        }
        let update = update
            .update_expression(format!("SET {}", set.join(", ")))
            .build()
            .map_err(build_err)?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(event_writes(&self.tables.events, &t.event)?);
        items.extend(self.step_write(t.order_id, t.step.as_ref())?);
        match self.transact(items).await? {
            None => match self.get(t.order_id).await? {
                Some(o) => Ok(TransitionOutcome::Applied(o)),
                None => Ok(TransitionOutcome::NotFound),
            },
            Some(_) => {
                let now = current().await?;
                if let TransitionOutcome::Stale(o) = &now
                    && o.status == t.to
                {
                    self.step_alone(t.order_id, t.step.clone()).await?;
                }
                Ok(now)
            }
        }
    }

    async fn events(&self, id: OrderId) -> Result<Vec<DomainEvent>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.events)
                .key_condition_expression("orderId = :o AND sk < :marker")
                .expression_attribute_values(":o", s(id.to_string()))
                .expression_attribute_values(":marker", s("~"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_err)?;
            for item in page.items() {
                out.push(item_event(id, item)?);
            }
            match page.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => break,
            }
        }
        out.sort_by_key(|e| (e.time, lifecycle_rank(e.detail_type)));
        Ok(out)
    }

    async fn append_event(
        &self,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<bool, StoreError> {
        let mut items = event_writes(&self.tables.events, &event)?;
        items.extend(self.step_write(event.order_id, step.as_ref())?);
        let added = self.transact(items).await?.is_none();
        if !added {
            // The event was there already: record the step on its own.
            self.step_alone(event.order_id, step).await?;
        }
        Ok(added)
    }
}

// ----- inventory ---------------------------------------------------------------------------

fn item_product(item: &Item) -> Result<Product, StoreError> {
    Ok(Product {
        product_id: get_s(item, "productId")?
            .parse()
            .map_err(|e| corrupt("product id", e))?,
        name: get_s(item, "name")?.to_owned(),
        price: money(get_n(item, "priceMinor")?)?,
        currency: CURRENCY.to_owned(),
        stock: u32::try_from(get_n(item, "stock")?).map_err(|e| corrupt("stock", e))?,
        category: get_s(item, "category")?.to_owned(),
        created_at: ts(get_n(item, "createdAt")?)?,
        updated_at: ts(get_n(item, "updatedAt")?)?,
        version: u64::try_from(get_n(item, "version")?).map_err(|e| corrupt("version", e))?,
    })
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

impl DynamoStore {
    /// Creates or replaces a product, keeping `createdAt`; answers it and whether it is new.
    async fn write_product(
        &self,
        spec: &ProductSpec,
        at: Timestamp,
    ) -> Result<(Product, bool), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.inventory)
            .key("productId", s(spec.product_id.as_str()))
            .update_expression(
                "SET #name = :name, priceMinor = :price, stock = :stock, category = :cat, \
                 createdAt = if_not_exists(createdAt, :at), updatedAt = :at, \
                 version = if_not_exists(version, :zero) + :one",
            )
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":name", s(&spec.name))
            .expression_attribute_values(":price", n(spec.price.minor()))
            .expression_attribute_values(":stock", n(i64::from(spec.stock)))
            .expression_attribute_values(":cat", s(&spec.category))
            .expression_attribute_values(":at", n(at.millis()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(sdk_err)?;
        let item = out
            .attributes()
            .ok_or_else(|| StoreError::Backend("UpdateItem returned nothing".into()))?;
        let p = item_product(item)?;
        let created = p.version == 1;
        Ok((p, created))
    }
}

#[async_trait]
impl Inventory for DynamoStore {
    async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        // BatchGetItem takes at most 100 keys per call; an order has at most 100 lines.
        for chunk in ids.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| Item::from([("productId".to_owned(), s(id.as_str()))]))
                .collect();
            let mut request = Some(
                aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(build_err)?,
            );
            while let Some(ka) = request.take() {
                let resp = self
                    .client
                    .batch_get_item()
                    .request_items(&self.tables.inventory, ka)
                    .send()
                    .await
                    .map_err(sdk_err)?;
                if let Some(items) = resp.responses().and_then(|r| r.get(&self.tables.inventory)) {
                    for item in items {
                        out.push(item_product(item)?);
                    }
                }
                request = resp
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.tables.inventory))
                    .cloned();
            }
        }
        Ok(out)
    }

    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.inventory)
            .key("productId", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        out.item().map(item_product).transpose()
    }

    async fn list_products(&self) -> Result<Vec<Product>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.tables.inventory)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_err)?;
            for item in page.items() {
                out.push(item_product(item)?);
            }
            match page.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => break,
            }
        }
        out.sort_by(|a, b| a.product_id.cmp(&b.product_id));
        Ok(out)
    }

    async fn put_product(
        &self,
        spec: ProductSpec,
        at: Timestamp,
    ) -> Result<(Product, bool), StoreError> {
        self.write_product(&spec, at).await
    }

    async fn seed_product(
        &self,
        spec: ProductSpec,
        mode: SeedMode,
        at: Timestamp,
    ) -> Result<SeedOutcome, StoreError> {
        match mode {
            SeedMode::Reset => {
                let (_, created) = self.write_product(&spec, at).await?;
                Ok(if created {
                    SeedOutcome::Created
                } else {
                    SeedOutcome::Reset
                })
            }
            SeedMode::KeepExisting | SeedMode::AddStock => {
                let put = self
                    .client
                    .put_item()
                    .table_name(&self.tables.inventory)
                    .item("productId", s(spec.product_id.as_str()))
                    .item("name", s(&spec.name))
                    .item("priceMinor", n(spec.price.minor()))
                    .item("stock", n(i64::from(spec.stock)))
                    .item("category", s(&spec.category))
                    .item("createdAt", n(at.millis()))
                    .item("updatedAt", n(at.millis()))
                    .item("version", n(1))
                    .condition_expression("attribute_not_exists(productId)")
                    .send()
                    .await;
                match put {
                    Ok(_) => Ok(SeedOutcome::Created),
                    Err(e) if is_condition_failure(&e) => {
                        if mode == SeedMode::KeepExisting {
                            return Ok(SeedOutcome::Kept);
                        }
                        self.client
                            .update_item()
                            .table_name(&self.tables.inventory)
                            .key("productId", s(spec.product_id.as_str()))
                            .update_expression(
                                "SET stock = stock + :add, updatedAt = :at, version = version + :one",
                            )
                            .expression_attribute_values(":add", n(i64::from(spec.stock)))
                            .expression_attribute_values(":at", n(at.millis()))
                            .expression_attribute_values(":one", n(1))
                            .send()
                            .await
                            .map_err(sdk_err)?;
                        Ok(SeedOutcome::StockAdded)
                    }
                    Err(e) => Err(sdk_err(e)),
                }
            }
        }
    }
}

// ----- idempotency -------------------------------------------------------------------------

impl DynamoStore {
    async fn idempotency_record(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.idempotency)
            .key("key", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(out.item().cloned())
    }
}

/// What a stored record means at `now`: `None` when expired (absent).
fn judge(
    item: &Item,
    fingerprint: &str,
    now: Timestamp,
) -> Result<Option<IdempotencyBegin>, StoreError> {
    let completed = get_s(item, "state")? == "completed";
    let live = if completed {
        get_n(item, "expiresAt")? > now.millis()
    } else {
        get_n(item, "lockUntil")? > now.millis()
    };
    if !live {
        return Ok(None);
    }
    if get_s(item, "fingerprint")? != fingerprint {
        return Ok(Some(IdempotencyBegin::Mismatch));
    }
    if !completed {
        return Ok(Some(IdempotencyBegin::InFlight));
    }
    Ok(Some(IdempotencyBegin::Replay(StoredResponse {
        status: u16::try_from(get_n(item, "responseStatus")?)
            .map_err(|e| corrupt("idempotent status", e))?,
        body: get_s(item, "responseBody")?.to_owned(),
        order_id: get_s(item, "orderId")?
            .parse()
            .map_err(|e| corrupt("idempotent order", e))?,
    })))
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: Timestamp,
        lock_until: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError> {
        for _ in 0..3 {
            if let Some(item) = self.idempotency_record(key.as_str()).await?
                && let Some(answer) = judge(&item, fingerprint, now)?
            {
                return Ok(answer);
            }
            // Absent or expired: claim it, unless someone else claimed it meanwhile.
            let put = self
                .client
                .put_item()
                .table_name(&self.tables.idempotency)
                .item("key", s(key.as_str()))
                .item("fingerprint", s(fingerprint))
                .item("state", s("in_flight"))
                .item("lockUntil", n(lock_until.millis()))
                .item("expiresAt", n(lock_until.millis()))
                .item("ttl", n(lock_until.millis() / 1000))
                .condition_expression(
                    "attribute_not_exists(#k) OR \
                     (#state = :completed AND expiresAt <= :now) OR \
                     (#state = :in_flight AND lockUntil <= :now)",
                )
                .expression_attribute_names("#k", "key")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":completed", s("completed"))
                .expression_attribute_values(":in_flight", s("in_flight"))
                .expression_attribute_values(":now", n(now.millis()))
                .send()
                .await;
            match put {
                Ok(_) => return Ok(IdempotencyBegin::Started),
                Err(e) if is_condition_failure(&e) => continue,
                Err(e) => return Err(sdk_err(e)),
            }
        }
        Err(StoreError::Unavailable(
            "the idempotency key is contended; retry".into(),
        ))
    }

    async fn abandon(&self, key: &IdempotencyKey, fingerprint: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.tables.idempotency)
            .key("key", s(key.as_str()))
            .condition_expression("#state = :in_flight AND fingerprint = :fp")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_flight", s("in_flight"))
            .expression_attribute_values(":fp", s(fingerprint))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(sdk_err(e)),
        }
    }

    /// DynamoDB's TTL removes expired records eventually; this removes them now.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut purged = 0;
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.tables.idempotency)
                .filter_expression("expiresAt <= :now")
                .expression_attribute_values(":now", n(now.millis()))
                .projection_expression("#k")
                .expression_attribute_names("#k", "key")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_err)?;
            for item in page.items() {
                let key = get_s(item, "key")?;
                let del = self
                    .client
                    .delete_item()
                    .table_name(&self.tables.idempotency)
                    .key("key", s(key))
                    .condition_expression("expiresAt <= :now")
                    .expression_attribute_values(":now", n(now.millis()))
                    .send()
                    .await;
                match del {
                    Ok(_) => purged += 1,
                    Err(e) if is_condition_failure(&e) => {}
                    Err(e) => return Err(sdk_err(e)),
                }
            }
            match page.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => break,
            }
        }
        Ok(purged)
    }
}

#[async_trait]
impl Readiness for DynamoStore {
    async fn ready(&self) -> Result<(), StoreError> {
        for table in [
            &self.tables.orders,
            &self.tables.events,
            &self.tables.inventory,
            &self.tables.idempotency,
            &self.tables.saga,
        ] {
            let out = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(sdk_err)?;
            let status = out.table().and_then(|t| t.table_status());
            if status != Some(&aws_sdk_dynamodb::types::TableStatus::Active) {
                return Err(StoreError::Unavailable(format!(
                    "table {table} is not active"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let id = OrderId::generate(chrono_now());
        let key = format!("{:013}#{id}", 1_767_225_600_000_i64);
        let c = encode_cursor(&key, &id.to_string());
        assert_eq!(decode_cursor(&c).unwrap(), (key, id.to_string()));
        for bad in [
            "",
            "garbage",
            &URL_SAFE_NO_PAD.encode("d1:{}"),
            &URL_SAFE_NO_PAD.encode("o1:5"),
        ] {
            assert_eq!(decode_cursor(bad), Err(StoreError::InvalidCursor), "{bad}");
        }
        let forged =
            URL_SAFE_NO_PAD.encode(format!("d1:{}", serde_json::json!({"k": "1#x", "id": "x"})));
        assert_eq!(decode_cursor(&forged), Err(StoreError::InvalidCursor));
    }

    fn chrono_now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(1_767_225_600_000).unwrap()
    }
}
