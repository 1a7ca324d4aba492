//! The use cases: what a client can ask of Orderly, written against the ports only.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, FieldError};
use crate::events::DomainEvent;
use crate::idempotency::fingerprint;
use crate::input::{CreateOrder, ListOrders};
use crate::model::{Order, OrderItem, Page, Product, ProductSpec};
use crate::money::{CURRENCY, Money};
use crate::ports::{
    Clock, IdempotencyBegin, IdempotencyCompletion, IdempotencyStore, Inventory, NewOrder,
    NotificationLog, OrderStore, PaymentGateway, PaymentLedger, Queue, Readiness, Reservations,
    SagaLog, SeedMode, SeedOutcome, StoredResponse, Transition, TransitionOutcome,
};
use crate::status::OrderStatus;
use crate::types::{IdempotencyKey, OrderId, ProductId};

/// Tunables of the use cases.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a completed idempotency key is remembered (default 24 h).
    pub idempotency_ttl_secs: i64,
    /// How long an in-flight claim blocks the key if its request never finishes.
    pub idempotency_lock_secs: i64,
    /// Most lines an order may have on this backend (the API allows 100; DynamoDB
    /// reserves at most 96 in one transaction, so the AWS backend lowers this).
    pub max_order_lines: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            idempotency_ttl_secs: 24 * 3600,
            idempotency_lock_secs: 60,
            max_order_lines: 100,
        }
    }
}

/// The adapters every running Orderly is wired with: what taking, reading and cancelling
/// orders, the catalogue, the dead letters and the subscribers' reactions use.
#[derive(Clone)]
pub struct Ports {
    pub orders: Arc<dyn OrderStore>,
    pub inventory: Arc<dyn Inventory>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub readiness: Arc<dyn Readiness>,
    pub clock: Arc<dyn Clock>,
    pub queue: Arc<dyn Queue>,
    pub notifications: Arc<dyn NotificationLog>,
}

impl Ports {
    /// Every port but the clock from one adapter that implements them all.
    pub fn from_store<S>(store: Arc<S>, clock: Arc<dyn Clock>) -> Ports
    where
        S: OrderStore
            + Inventory
            + IdempotencyStore
            + Readiness
            + Queue
            + NotificationLog
            + 'static,
    {
        Ports {
            orders: store.clone(),
            inventory: store.clone(),
            idempotency: store.clone(),
            readiness: store.clone(),
            queue: store.clone(),
            notifications: store,
            clock,
        }
    }
}

/// The adapters only the saga's actions use (stock reservations, the payment ledger and
/// gateway, the saga log), wired with [`Orderly::with_saga`] by the runtimes that run saga
/// steps or compensations: the one-machine worker, the `saga-step` and `intake` functions.
/// The `api` function, which only takes orders, goes without them.
#[derive(Clone)]
pub struct SagaPorts {
    pub reservations: Arc<dyn Reservations>,
    pub payments: Arc<dyn PaymentLedger>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub saga_log: Arc<dyn SagaLog>,
}

impl SagaPorts {
    /// Every saga port but the gateway from one adapter that implements them all.
    pub fn from_store<S>(store: Arc<S>, gateway: Arc<dyn PaymentGateway>) -> SagaPorts
    where
        S: Reservations + PaymentLedger + SagaLog + 'static,
    {
        SagaPorts {
            reservations: store.clone(),
            payments: store.clone(),
            saga_log: store,
            gateway,
        }
    }
}

impl std::fmt::Debug for SagaPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaPorts").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// An accepted (or replayed) order: the exact JSON body to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order_id: OrderId,
    pub body: String,
    pub replayed: bool,
}

/// The application: use cases over the ports.
#[derive(Clone)]
pub struct Orderly {
    ports: Ports,
    /// The saga's ports, on runtimes that run saga steps; set with [`Orderly::with_saga`].
    saga: Option<SagaPorts>,
    settings: Settings,
    /// Webhook endpoints and their delivery log, on backends that keep them (see
    /// [`crate::webhooks`]); set with [`Orderly::with_webhooks`].
    webhooks: Option<Arc<dyn crate::webhooks::Webhooks>>,
}

impl std::fmt::Debug for Orderly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orderly")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn not_found(id: OrderId) -> Error {
    Error::NotFound {
        what: "order",
        id: id.to_string(),
    }
}

impl Orderly {
    pub fn new(ports: Ports, settings: Settings) -> Orderly {
        Orderly {
            ports,
            saga: None,
            settings,
            webhooks: None,
        }
    }

    /// The same application able to run saga steps and compensations.
    pub fn with_saga(mut self, saga: SagaPorts) -> Orderly {
        self.saga = Some(saga);
        self
    }

    /// The saga's ports, when this runtime runs saga steps.
    pub fn saga_ports(&self) -> Option<&SagaPorts> {
        self.saga.as_ref()
    }

    /// The same application with a webhook store (the embedded backend has one).
    pub fn with_webhooks(mut self, store: Arc<dyn crate::webhooks::Webhooks>) -> Orderly {
        self.webhooks = Some(store);
        self
    }

    /// The webhook store, when this backend keeps webhooks.
    pub fn webhooks(&self) -> Option<&Arc<dyn crate::webhooks::Webhooks>> {
        self.webhooks.as_ref()
    }

    /// The webhook admin use cases, when this backend stores webhooks.
    pub fn webhook_admin(&self) -> Option<crate::webhooks::WebhookAdmin> {
        self.webhooks()
            .map(|w| crate::webhooks::WebhookAdmin::new(w.clone(), self.ports().clock.clone()))
    }

    /// Every adapter, for tests and diagnostics that inspect what they hold. The drivers
    /// (HTTP, the worker, the Lambda functions, the binary) reach the use cases through
    /// `Orderly`'s methods, and of the ports only the two below.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The message queue, which the drivers consume (the worker's loops, the Lambda relay,
    /// the queue-depth gauges).
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.ports.queue
    }

    /// The time every use case and driver reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.ports.clock
    }

    /// Accepts an order: prices it from the catalogue, checks a given total, and writes it
    /// with its event and processing message atomically. With an idempotency key, a repeat
    /// of the same payload gets the first answer again.
    pub async fn place_order(
        &self,
        req: CreateOrder,
        raw_body: &Value,
        key: Option<IdempotencyKey>,
    ) -> Result<Placed, Error> {
        let now = self.ports.clock.now();
        let claim = match key {
            None => None,
            Some(key) => {
                let fp = fingerprint(raw_body);
                let lock_until = now.plus_secs(self.settings.idempotency_lock_secs);
                match self
                    .ports
                    .idempotency
                    .begin(&key, &fp, now, lock_until)
                    .await?
                {
                    IdempotencyBegin::Started => Some((key, fp)),
                    IdempotencyBegin::Replay(r) => {
                        tracing::info!(order_id = %r.order_id, "idempotent replay");
                        return Ok(Placed {
                            order_id: r.order_id,
                            body: r.body,
                            replayed: true,
                        });
                    }
                    IdempotencyBegin::Mismatch => {
                        return Err(Error::Unprocessable {
                            code: "idempotency_key_reused",
                            message: "this Idempotency-Key was already used with a different \
                                      request body"
                                .into(),
                            details: vec![FieldError::new(
                                "Idempotency-Key",
                                "was used before with another payload; use a new key",
                            )],
                        });
                    }
                    IdempotencyBegin::InFlight => {
                        return Err(Error::Conflict {
                            code: "idempotency_key_in_flight",
                            message: "a request with this Idempotency-Key is still being \
                                      processed; retry shortly"
                                .into(),
                        });
                    }
                }
            }
        };
        let result = self.accept(req, claim.as_ref()).await;
        if result.is_err()
            && let Some((key, fp)) = &claim
            && let Err(e) = self.ports.idempotency.abandon(key, fp).await
        {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        result
    }

    async fn accept(
        &self,
        req: CreateOrder,
        claim: Option<&(IdempotencyKey, String)>,
    ) -> Result<Placed, Error> {
        if req.items.len() > self.settings.max_order_lines {
            return Err(Error::invalid(vec![FieldError::new(
                "items",
                format!(
                    "must have at most {} lines on this backend ({} given)",
                    self.settings.max_order_lines,
                    req.items.len()
                ),
            )]));
        }
        let items = self.price(&req).await?;
        let total = order_total(&items)?;
        if let Some(given) = req.total_amount
            && given != total
        {
            return Err(Error::Unprocessable {
                code: "total_mismatch",
                message: format!("totalAmount {given} does not match the catalogue total {total}"),
                details: vec![FieldError::new(
                    "totalAmount",
                    format!("must equal the catalogue total {total} (or be left out)"),
                )],
            });
        }
        let now = self.ports.clock.now();
        let order = Order {
            order_id: OrderId::generate(now.datetime()),
            user_id: req.user_id,
            customer_email: req.customer_email,
            items,
            total_amount: total,
            currency: CURRENCY.to_owned(),
            status: OrderStatus::Pending,
            failure_reason: None,
            tracking_id: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let body = serde_json::to_string(&order)
            .map_err(|e| crate::error::StoreError::Backend(e.to_string()))?;
        let idempotency = claim.map(|(key, fp)| IdempotencyCompletion {
            key: key.clone(),
            fingerprint: fp.clone(),
            response: StoredResponse {
                status: 201,
                body: body.clone(),
                order_id: order.order_id,
            },
            expires_at: now.plus_secs(self.settings.idempotency_ttl_secs),
        });
        let event = DomainEvent::order_created(&order);
        let order_id = order.order_id;
        tracing::debug!(%order_id, "writing order");
        self.ports
            .orders
            .create(NewOrder {
                order,
                event,
                idempotency,
            })
            .await?;
        tracing::info!(%order_id, total = %total, "order accepted");
        metrics::counter!(crate::metrics::ORDERS_CREATED).increment(1);
        Ok(Placed {
            order_id,
            body,
            replayed: false,
        })
    }

    /// Prices each line from the catalogue; unknown products are a 422 naming the line.
    async fn price(&self, req: &CreateOrder) -> Result<Vec<OrderItem>, Error> {
        let ids: Vec<ProductId> = req.items.iter().map(|l| l.product_id.clone()).collect();
        let found: HashMap<ProductId, Product> = self
            .ports
            .inventory
            .products(&ids)
            .await?
            .into_iter()
            .map(|p| (p.product_id.clone(), p))
            .collect();
        price_lines(&req.items, &found)
    }

    pub async fn order(&self, id: OrderId) -> Result<Order, Error> {
        self.ports
            .orders
            .get(id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn list_orders(&self, q: &ListOrders) -> Result<Page<Order>, Error> {
        self.ports
            .orders
            .list(&q.filter, q.limit, q.cursor.as_deref())
            .await
            .map_err(|e| match e {
                crate::error::StoreError::InvalidCursor => Error::invalid_field(
                    "cursor",
                    "is not a cursor this server issued; start again without it",
                ),
                other => other.into(),
            })
    }

    /// Cancels a `PENDING` or `CONFIRMED` order; cancelling a cancelled order is a no-op.
    pub async fn cancel_order(&self, id: OrderId) -> Result<Order, Error> {
        // A concurrent writer may move the order between our read and our conditional
        // write; re-read and decide again a few times.
        for _ in 0..5 {
            let order = self.order(id).await?;
            match order.status {
                OrderStatus::Cancelled => return Ok(order),
                OrderStatus::Fulfilled | OrderStatus::Failed => {
                    return Err(Error::Conflict {
                        code: "order_not_cancellable",
                        message: format!(
                            "order {id} is {} and can no longer be cancelled",
                            order.status
                        ),
                    });
                }
                from @ (OrderStatus::Pending | OrderStatus::Confirmed) => {
                    let now = self.ports.clock.now();
                    let t = Transition {
                        order_id: id,
                        from,
                        to: OrderStatus::Cancelled,
                        at: now,
                        event: DomainEvent::order_cancelled(id, now, "cancelled by request"),
                        failure_reason: None,
                        tracking_id: None,
                        // The compensations are queued with the status change, so they run
                        // even if this process dies right after it.
                        enqueue_processing: true,
                        step: None,
                    };
                    match self.ports.orders.transition(t).await? {
                        TransitionOutcome::Applied(o) => {
                            crate::metrics::record_terminal(
                                &o,
                                crate::metrics::ORDERS_CANCELLED,
                                crate::metrics::outcome::CANCELLED,
                            );
                            tracing::info!(order_id = %id, from = %from, "order cancelled");
                            self.compensate_cancelled(&o).await;
                            return self.order(id).await;
                        }
                        TransitionOutcome::Stale(_) => continue,
                        TransitionOutcome::NotFound => return Err(not_found(id)),
                    }
                }
            }
        }
        Err(Error::Conflict {
            code: "order_busy",
            message: format!("order {id} is changing right now; retry the cancellation"),
        })
    }

    pub async fn order_events(&self, id: OrderId) -> Result<Vec<DomainEvent>, Error> {
        // 404 for unknown orders rather than an empty timeline.
        self.order(id).await?;
        Ok(self.ports.orders.events(id).await?)
    }

    pub async fn products(&self) -> Result<Vec<Product>, Error> {
        Ok(self.ports.inventory.list_products().await?)
    }

    pub async fn product(&self, id: &ProductId) -> Result<Product, Error> {
        self.ports
            .inventory
            .product(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "product",
                id: id.to_string(),
            })
    }

    /// Creates or replaces a product; `true` when created.
    pub async fn put_product(&self, spec: ProductSpec) -> Result<(Product, bool), Error> {
        let now = self.ports.clock.now();
        Ok(self.ports.inventory.put_product(spec, now).await?)
    }

    /// Loads the seed catalogue.
    pub async fn seed(&self, mode: SeedMode) -> Result<Vec<(ProductId, SeedOutcome)>, Error> {
        let now = self.ports.clock.now();
        let mut out = Vec::new();
        for spec in seed_catalogue() {
            let id = spec.product_id.clone();
            let outcome = self.ports.inventory.seed_product(spec, mode, now).await?;
            out.push((id, outcome));
        }
        Ok(out)
    }

    /// Dead-lettered messages, oldest first.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<crate::ports::DeadLetter>, Error> {
        Ok(self.ports.queue.dead_letters(limit).await?)
    }

    /// Moves dead letters (all, or the given ids) back to their queues; answers the ids.
    pub async fn replay_dead_letters(
        &self,
        ids: Option<Vec<String>>,
    ) -> Result<Vec<String>, Error> {
        let moved = self.ports.queue.replay(ids).await?;
        tracing::info!(count = moved.len(), "dead letters replayed");
        Ok(moved)
    }

    pub async fn ready(&self) -> Result<(), Error> {
        Ok(self.ports.readiness.ready().await?)
    }

    /// Forgets idempotency keys past their expiry.
    pub async fn purge_idempotency(&self) -> Result<u64, Error> {
        let now = self.ports.clock.now();
        Ok(self.ports.idempotency.purge_expired(now).await?)
    }
}

/// Prices order lines from catalogue entries (the pure half of pricing: the products are
/// already read). Unknown products are a 422 naming each line.
pub fn price_lines(
    lines: &[crate::input::LineRequest],
    catalogue: &HashMap<ProductId, Product>,
) -> Result<Vec<OrderItem>, Error> {
    let mut missing = Vec::new();
    let mut items = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match catalogue.get(&line.product_id) {
            Some(p) => items.push(OrderItem {
                product_id: line.product_id.clone(),
                qty: line.qty,
                unit_price: p.price,
            }),
            None => missing.push(FieldError::new(
                format!("items[{i}].productId"),
                format!("{} is not in the catalogue", line.product_id),
            )),
        }
    }
    if missing.is_empty() {
        Ok(items)
    } else {
        let names: Vec<&str> = missing
            .iter()
            .map(|d| d.reason.split(' ').next().unwrap_or(""))
            .collect();
        Err(Error::Unprocessable {
            code: "unknown_product",
            message: format!("unknown product: {}", names.join(", ")),
            details: missing,
        })
    }
}

/// The total of priced lines; a 422 when it overflows the largest amount.
pub fn order_total(items: &[OrderItem]) -> Result<Money, Error> {
    items
        .iter()
        .try_fold(Money::ZERO, |acc, i| {
            i.line_total().and_then(|l| acc.checked_add(l))
        })
        .ok_or_else(|| Error::Unprocessable {
            code: "total_too_large",
            message: "the order total exceeds the largest amount Orderly accepts".into(),
            details: vec![FieldError::new("items", "total is too large")],
        })
}

/// The seed inventory: the catalogue `orderly seed` loads (docs/operations.md).
pub fn seed_catalogue() -> Vec<ProductSpec> {
    const SEED: [(&str, &str, i64, u32, &str); 10] = [
        ("PROD-001", "Wireless Mouse", 2999, 500, "Electronics"),
        ("PROD-002", "Mechanical Keyboard", 8999, 300, "Electronics"),
        ("PROD-003", "USB-C Hub", 4999, 200, "Electronics"),
        ("PROD-004", "Laptop Stand", 3999, 150, "Accessories"),
        (
            "PROD-005",
            "Noise-Cancelling Headphones",
            19999,
            100,
            "Audio",
        ),
        ("PROD-006", "Webcam HD 1080p", 5999, 250, "Electronics"),
        ("PROD-007", "Monitor Arm", 4499, 120, "Accessories"),
        ("PROD-008", "Desk Pad XL", 2499, 400, "Accessories"),
        ("PROD-009", "Portable SSD 1TB", 10999, 80, "Storage"),
        ("PROD-010", "Bluetooth Speaker", 3499, 350, "Audio"),
    ];
    SEED.iter()
        .filter_map(|&(id, name, price, stock, category)| {
            Some(ProductSpec {
                product_id: id.parse().ok()?,
                name: name.to_owned(),
                price: Money::from_minor(price)?,
                stock,
                category: category.to_owned(),
            })
        })
        .collect()
}
