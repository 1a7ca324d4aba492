//! The port implementations over [`Db`].

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use orderly_core::access::ApiKeyRecord;
use orderly_core::cursor;
use orderly_core::money::CURRENCY;
use orderly_core::ports::{
    ApiKeys, Clock, IdempotencyBegin, IdempotencyStore, Inventory, NewOrder, OrderStore, Readiness,
    SeedMode, SeedOutcome, StepRecord, StoredResponse, SystemClock, Transition, TransitionOutcome,
};
use orderly_core::{
    DomainEvent, IdempotencyKey, Money, Order, OrderFilter, OrderId, Page, Product, ProductId,
    ProductSpec, StoreError, Timestamp,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::cache::{Cached, Generations, Kind};
use crate::db::{Db, Durability, store_err};
use crate::schema;

pub use orderly_core::ports::ORDERS_QUEUE;

/// How to open the store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub durability: Durability,
    /// Reader connections (threads).
    pub readers: usize,
    /// Where queue and outbox time comes from.
    pub clock: Arc<dyn Clock>,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            durability: Durability::Full,
            readers: 4,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Every port Orderly needs, on one SQLite database in a data directory.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) db: Arc<Db>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Woken when this process writes a queue's message or an event, so long polls return
    /// at once instead of sleeping.
    pub(crate) wake: Arc<crate::wake::Wakers>,
    /// The data directory's generations, and the caches they keep true.
    pub(crate) gens: Arc<Generations>,
    keys: Arc<Cached<String, ApiKeyRecord>>,
    catalogue: Arc<Cached<String, Product>>,
    /// This process's registration in the data directory: the owner of its in-flight claims.
    owner: Arc<crate::owners::Owner>,
}

/// Most API keys and products each cache holds.
const CACHE_CAP: usize = 10_000;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "orderly.db";

pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("stored {what} is not valid: {detail}"))
}

pub(crate) fn ts(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millis(ms).ok_or_else(|| corrupt("time stamp", ms))
}

pub(crate) fn money(minor: i64) -> Result<Money, StoreError> {
    Money::from_minor(minor).ok_or_else(|| corrupt("amount", minor))
}

const ORDER_COLS: &str = "seq, order_id, user_id, customer_email, items, total_minor, currency, \
                          status, failure_reason, tracking_id, created_at, updated_at, version";

fn order_from_row(r: &Row<'_>) -> Result<(i64, Order), StoreError> {
    let get_s = |i: usize| r.get::<_, String>(i).map_err(store_err);
    let get_i = |i: usize| r.get::<_, i64>(i).map_err(store_err);
    let get_o = |i: usize| r.get::<_, Option<String>>(i).map_err(store_err);
    let seq = get_i(0)?;
    let order = Order {
        order_id: get_s(1)?.parse().map_err(|e| corrupt("order id", e))?,
        user_id: get_s(2)?.parse().map_err(|e| corrupt("user id", e))?,
        customer_email: get_o(3)?
            .map(|e| e.parse())
            .transpose()
            .map_err(|e| corrupt("email", e))?,
        items: serde_json::from_str(&get_s(4)?).map_err(|e| corrupt("items", e))?,
        total_amount: money(get_i(5)?)?,
        currency: get_s(6)?,
        status: get_s(7)?.parse().map_err(|e| corrupt("status", e))?,
        failure_reason: get_o(8)?,
        tracking_id: get_o(9)?,
        created_at: ts(get_i(10)?)?,
        updated_at: ts(get_i(11)?)?,
        version: u64::try_from(get_i(12)?).map_err(|e| corrupt("version", e))?,
    };
    Ok((seq, order))
}

pub(crate) fn load_order(conn: &Connection, id: OrderId) -> Result<Option<Order>, StoreError> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {ORDER_COLS} FROM orders WHERE order_id = ?1"
        ))
        .map_err(store_err)?;
    let mut rows = st.query(params![id.to_string()]).map_err(store_err)?;
    match rows.next().map_err(store_err)? {
        Some(r) => Ok(Some(order_from_row(r)?.1)),
        None => Ok(None),
    }
}

pub(crate) fn insert_event(conn: &Connection, e: &DomainEvent) -> Result<(), StoreError> {
    let detail = serde_json::to_string(&e.detail).map_err(|err| corrupt("event", err))?;
    conn.prepare_cached(
        "INSERT INTO events (event_id, order_id, detail_type, time, detail)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (event_id) DO NOTHING",
    )
    .and_then(|mut st| {
        st.execute(params![
            e.id.to_string(),
            e.order_id.to_string(),
            e.detail_type.as_str(),
            e.time.millis(),
            detail
        ])
    })
    .map_err(store_err)?;
    Ok(())
}

/// Inserts a queue message visible from `visible_at_ms` (the outbox write of a change).
pub(crate) fn enqueue(
    c: &Connection,
    queue: &str,
    body: &str,
    at_ms: i64,
    visible_at_ms: i64,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO queue (queue, body, enqueued_at, visible_at) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut st| st.execute(params![queue, body, at_ms, visible_at_ms]))
    .map(|_| ())
    .map_err(store_err)
}

/// Enqueues the processing message of an order.
fn enqueue_processing(c: &Connection, id: OrderId, at: Timestamp) -> Result<(), StoreError> {
    let body = orderly_core::ports::processing_message(id);
    enqueue(c, ORDERS_QUEUE, &body, at.millis(), at.millis())
}

/// Columns [`event_from_row`] reads.
pub(crate) const EVENT_COLS: &str = "seq, event_id, order_id, detail_type, time, detail";

/// An event row (selected as [`EVENT_COLS`]) with its position.
pub(crate) fn event_from_row(r: &Row<'_>) -> Result<(i64, DomainEvent), StoreError> {
    let get_s = |i: usize| r.get::<_, String>(i).map_err(store_err);
    let seq: i64 = r.get(0).map_err(store_err)?;
    let event = DomainEvent::from_parts(
        get_s(1)?.parse().map_err(|e| corrupt("event id", e))?,
        get_s(2)?.parse().map_err(|e| corrupt("order id", e))?,
        get_s(3)?.parse().map_err(|e| corrupt("event type", e))?,
        ts(r.get(4).map_err(store_err)?)?,
        serde_json::from_str(&get_s(5)?).map_err(|e| corrupt("event detail", e))?,
    );
    Ok((seq, event))
}

const PRODUCT_COLS: &str =
    "product_id, name, price_minor, stock, category, created_at, updated_at, version";

fn product_from_row(r: &Row<'_>) -> Result<Product, StoreError> {
    let get_s = |i: usize| r.get::<_, String>(i).map_err(store_err);
    let get_i = |i: usize| r.get::<_, i64>(i).map_err(store_err);
    Ok(Product {
        product_id: get_s(0)?.parse().map_err(|e| corrupt("product id", e))?,
        name: get_s(1)?,
        price: money(get_i(2)?)?,
        currency: CURRENCY.to_owned(),
        stock: u32::try_from(get_i(3)?).map_err(|e| corrupt("stock", e))?,
        category: get_s(4)?,
        created_at: ts(get_i(5)?)?,
        updated_at: ts(get_i(6)?)?,
        version: u64::try_from(get_i(7)?).map_err(|e| corrupt("version", e))?,
    })
}

pub(crate) fn load_product(conn: &Connection, id: &str) -> Result<Option<Product>, StoreError> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {PRODUCT_COLS} FROM products WHERE product_id = ?1"
        ))
        .map_err(store_err)?;
    let mut rows = st.query(params![id]).map_err(store_err)?;
    match rows.next().map_err(store_err)? {
        Some(r) => Ok(Some(product_from_row(r)?)),
        None => Ok(None),
    }
}

fn write_product(conn: &Connection, spec: &ProductSpec, at: Timestamp) -> Result<bool, StoreError> {
    let existed = load_product(conn, spec.product_id.as_str())?.is_some();
    conn.prepare_cached(
        "INSERT INTO products (product_id, name, price_minor, stock, category,
                               created_at, updated_at, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1)
         ON CONFLICT (product_id) DO UPDATE SET
             name = excluded.name, price_minor = excluded.price_minor,
             stock = excluded.stock, category = excluded.category,
             updated_at = excluded.updated_at, version = products.version + 1",
    )
    .and_then(|mut st| {
        st.execute(params![
            spec.product_id.as_str(),
            spec.name,
            spec.price.minor(),
            i64::from(spec.stock),
            spec.category,
            at.millis()
        ])
    })
    .map_err(store_err)?;
    Ok(!existed)
}

impl SqliteStore {
    /// Opens the store in `data_dir` (created if missing) and migrates its schema.
    pub fn open(data_dir: &Path, opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Backend(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let db = Db::open(
            &data_dir.join(DB_FILE),
            opts.durability,
            opts.readers,
            schema::migrate,
        )?;
        Ok(SqliteStore {
            db: Arc::new(db),
            clock: opts.clock,
            wake: Arc::new(crate::wake::Wakers::default()),
            gens: Arc::new(Generations::open(data_dir)?),
            keys: Arc::new(Cached::new(CACHE_CAP)),
            catalogue: Arc::new(Cached::new(CACHE_CAP)),
            owner: Arc::new(crate::owners::Owner::register(data_dir)?),
        })
    }

    /// Commits what is queued and stops the writer. Later calls fail as "shut down".
    pub fn close(&self) {
        self.db.close();
    }

    /// Number of messages waiting in `queue` (visible or not).
    pub async fn queue_len(&self, queue: &'static str) -> Result<u64, StoreError> {
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT count(*) FROM queue WHERE queue = ?1",
                    params![queue],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .map_err(store_err)
            })
            .await
    }
}

#[async_trait]
impl OrderStore for SqliteStore {
    async fn create(&self, new: NewOrder) -> Result<(), StoreError> {
        self.db
            .write(move |c| {
                let o = &new.order;
                let items = serde_json::to_string(&o.items).map_err(|e| corrupt("items", e))?;
                let id = o.order_id.to_string();
                c.prepare_cached(
                    "INSERT INTO orders (order_id, user_id, customer_email, items, total_minor,
                        currency, status, failure_reason, tracking_id, created_at, updated_at,
                        version)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        id,
                        o.user_id.as_str(),
                        o.customer_email.as_ref().map(|e| e.as_str()),
                        items,
                        o.total_amount.minor(),
                        o.currency,
                        o.status.as_str(),
                        o.failure_reason,
                        o.tracking_id,
                        o.created_at.millis(),
                        o.updated_at.millis(),
                        o.version as i64,
                    ])
                })
                .map_err(store_err)?;
                insert_event(c, &new.event)?;
                enqueue_processing(c, o.order_id, o.created_at)?;
                if let Some(idem) = &new.idempotency {
                    c.prepare_cached(
                        "INSERT INTO idempotency (key, fingerprint, state, response_status,
                            response_body, order_id, lock_until, expires_at, created_at)
                         VALUES (?1, ?2, 'completed', ?3, ?4, ?5, ?6, ?6, ?7)
                         ON CONFLICT (key) DO UPDATE SET
                            fingerprint = excluded.fingerprint, state = 'completed',
                            response_status = excluded.response_status,
                            response_body = excluded.response_body,
                            order_id = excluded.order_id, lock_until = excluded.lock_until,
                            expires_at = excluded.expires_at",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            idem.key.as_str(),
                            idem.fingerprint,
                            i64::from(idem.response.status),
                            idem.response.body,
                            id,
                            idem.expires_at.millis(),
                            o.created_at.millis(),
                        ])
                    })
                    .map_err(store_err)?;
                }
                Ok(())
            })
            .await?;
        self.wake.wake_queue(ORDERS_QUEUE);
        self.wake.wake_events();
        Ok(())
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.db.read(move |c| load_order(c, id)).await
    }

    async fn list(
        &self,
        filter: &OrderFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let before = cursor.map(cursor::decode_seq).transpose()?;
        let user = filter.user_id.as_ref().map(|u| u.as_str().to_owned());
        let status = filter.status.map(|s| s.as_str());
        self.db
            .read(move |c| {
                // Conditions are spelled out per combination so each query uses its index.
                let mut sql = format!("SELECT {ORDER_COLS} FROM orders WHERE seq < ?1");
                if user.is_some() {
                    sql.push_str(" AND user_id = ?3");
                }
                if status.is_some() {
                    sql.push_str(" AND status = ?4");
                }
                sql.push_str(" ORDER BY seq DESC LIMIT ?2");
                let mut st = c.prepare_cached(&sql).map_err(store_err)?;
                let upper = before.unwrap_or(i64::MAX);
                let fetch = i64::from(limit) + 1;
                let mut rows = match (&user, status) {
                    (Some(u), Some(s)) => st.query(params![upper, fetch, u, s]),
                    (Some(u), None) => st.query(params![upper, fetch, u]),
                    (None, Some(s)) => {
                        // ?3 is unused; bind a placeholder so ?4 has its slot.
                        st.query(params![upper, fetch, rusqlite::types::Null, s])
                    }
                    (None, None) => st.query(params![upper, fetch]),
                }
                .map_err(store_err)?;
                let mut items = Vec::new();
                let mut last_seq = None;
                let mut more = false;
                while let Some(r) = rows.next().map_err(store_err)? {
                    if items.len() == limit as usize {
                        more = true;
                        break;
                    }
                    let (seq, o) = order_from_row(r)?;
                    items.push(o);
                    last_seq = Some(seq);
                }
                Ok(Page {
                    items,
                    next_cursor: if more {
                        last_seq.map(cursor::encode_seq)
                    } else {
                        None
                    },
                })
            })
            .await
    }

    async fn transition(&self, t: Transition) -> Result<TransitionOutcome, StoreError> {
        let enqueued = t.enqueue_processing;
        let out = self.db.write(move |c| apply_transition(c, &t)).await?;
        if matches!(out, TransitionOutcome::Applied(_)) {
            self.wake.wake_events();
            if enqueued {
                self.wake.wake_queue(ORDERS_QUEUE);
            }
        }
        Ok(out)
    }

    async fn transition_many(
        &self,
        ts: Vec<Transition>,
    ) -> Result<Vec<TransitionOutcome>, StoreError> {
        if ts.is_empty() {
            return Ok(Vec::new());
        }
        let enqueued = ts.iter().any(|t| t.enqueue_processing);
        let out = self
            .db
            .write(move |c| {
                ts.iter()
                    .map(|t| apply_transition(c, t))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        if out
            .iter()
            .any(|o| matches!(o, TransitionOutcome::Applied(_)))
        {
            self.wake.wake_events();
            if enqueued {
                self.wake.wake_queue(ORDERS_QUEUE);
            }
        }
        Ok(out)
    }

    async fn append_event(
        &self,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<bool, StoreError> {
        let added = self
            .db
            .write(move |c| {
                let before = c.total_changes();
                insert_event(c, &event)?;
                let added = c.total_changes() > before;
                put_step(c, event.order_id, step.as_ref())?;
                Ok(added)
            })
            .await?;
        if added {
            self.wake.wake_events();
        }
        Ok(added)
    }

    async fn events(&self, id: OrderId) -> Result<Vec<DomainEvent>, StoreError> {
        self.db
            .read(move |c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLS} FROM events WHERE order_id = ?1 ORDER BY seq"
                    ))
                    .map_err(store_err)?;
                let mut rows = st.query(params![id.to_string()]).map_err(store_err)?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(store_err)? {
                    out.push(event_from_row(r)?.1);
                }
                Ok(out)
            })
            .await
    }
}

#[async_trait]
impl Inventory for SqliteStore {
    async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        // From memory while the catalogue's generation holds; the rest from a reader.
        let seen = self.gens.current(Kind::Catalogue);
        let mut out = Vec::with_capacity(ids.len());
        let mut missing: Vec<String> = Vec::new();
        for id in ids {
            match self.catalogue.get(seen, &id.as_str().to_owned()) {
                Some(p) => out.push(p),
                None => missing.push(id.as_str().to_owned()),
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let loaded = self
            .db
            .read(move |c| {
                let mut out = Vec::with_capacity(missing.len());
                for id in &missing {
                    if let Some(p) = load_product(c, id)? {
                        out.push(p);
                    }
                }
                Ok(out)
            })
            .await?;
        for p in loaded {
            self.catalogue
                .insert(seen, p.product_id.as_str().to_owned(), p.clone());
            out.push(p);
        }
        Ok(out)
    }

    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        let id = id.as_str().to_owned();
        self.db.read(move |c| load_product(c, &id)).await
    }

    async fn list_products(&self) -> Result<Vec<Product>, StoreError> {
        self.db
            .read(|c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {PRODUCT_COLS} FROM products ORDER BY product_id"
                    ))
                    .map_err(store_err)?;
                let mut rows = st.query([]).map_err(store_err)?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(store_err)? {
                    out.push(product_from_row(r)?);
                }
                Ok(out)
            })
            .await
    }

    async fn put_product(
        &self,
        spec: ProductSpec,
        at: Timestamp,
    ) -> Result<(Product, bool), StoreError> {
        self.db
            .write(move |c| {
                let created = write_product(c, &spec, at)?;
                let p = load_product(c, spec.product_id.as_str())?
                    .ok_or_else(|| StoreError::Backend("product vanished".into()))?;
                Ok((p, created))
            })
            .await
            .and_then(|out| {
                self.gens.bump(Kind::Catalogue)?;
                Ok(out)
            })
    }

    async fn seed_product(
        &self,
        spec: ProductSpec,
        mode: SeedMode,
        at: Timestamp,
    ) -> Result<SeedOutcome, StoreError> {
        self.db
            .write(move |c| {
                let exists = load_product(c, spec.product_id.as_str())?.is_some();
                match (exists, mode) {
                    (false, _) => {
                        write_product(c, &spec, at)?;
                        Ok(SeedOutcome::Created)
                    }
                    (true, SeedMode::KeepExisting) => Ok(SeedOutcome::Kept),
                    (true, SeedMode::Reset) => {
                        write_product(c, &spec, at)?;
                        Ok(SeedOutcome::Reset)
                    }
                    (true, SeedMode::AddStock) => {
                        c.execute(
                            "UPDATE products SET stock = stock + ?1, updated_at = ?2,
                                version = version + 1 WHERE product_id = ?3",
                            params![i64::from(spec.stock), at.millis(), spec.product_id.as_str()],
                        )
                        .map_err(store_err)?;
                        Ok(SeedOutcome::StockAdded)
                    }
                }
            })
            .await
            .and_then(|out| {
                if matches!(out, SeedOutcome::Created | SeedOutcome::Reset) {
                    self.gens.bump(Kind::Catalogue)?;
                }
                Ok(out)
            })
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: Timestamp,
        lock_until: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError> {
        let key = key.as_str().to_owned();
        let fingerprint = fingerprint.to_owned();
        let owner = self.owner.clone();
        self.db
            .write(move |c| {
                type Rec = (
                    String,
                    String,
                    Option<i64>,
                    Option<String>,
                    Option<String>,
                    i64,
                    i64,
                    Option<String>,
                );
                let rec: Option<Rec> = c
                    .prepare_cached(
                        "SELECT fingerprint, state, response_status, response_body, order_id,
                                lock_until, expires_at, owner
                         FROM idempotency WHERE key = ?1",
                    )
                    .and_then(|mut st| {
                        st.query_row(params![key], |r| {
                            Ok((
                                r.get(0)?,
                                r.get(1)?,
                                r.get(2)?,
                                r.get(3)?,
                                r.get(4)?,
                                r.get(5)?,
                                r.get(6)?,
                                r.get(7)?,
                            ))
                        })
                        .optional()
                    })
                    .map_err(store_err)?;
                if let Some((fp, state, status, body, order_id, lock, expires, holder)) = rec {
                    let completed = state == "completed";
                    // An in-flight claim stands while its lock runs and its process lives:
                    // a process that died (even by SIGKILL) answers nothing, so its claim
                    // is void and the client's retry goes ahead at once.
                    let live = if completed {
                        expires > now.millis()
                    } else {
                        lock > now.millis() && holder.is_none_or(|h| owner.is_alive(&h))
                    };
                    if live {
                        if fp != fingerprint {
                            return Ok(IdempotencyBegin::Mismatch);
                        }
                        if !completed {
                            return Ok(IdempotencyBegin::InFlight);
                        }
                        let response = StoredResponse {
                            status: status
                                .and_then(|s| u16::try_from(s).ok())
                                .ok_or_else(|| corrupt("idempotent status", "missing"))?,
                            body: body.ok_or_else(|| corrupt("idempotent body", "missing"))?,
                            order_id: order_id
                                .ok_or_else(|| corrupt("idempotent order", "missing"))?
                                .parse()
                                .map_err(|e| corrupt("idempotent order", e))?,
                        };
                        return Ok(IdempotencyBegin::Replay(response));
                    }
                }
                c.prepare_cached(
                    "INSERT INTO idempotency (key, fingerprint, state, lock_until, expires_at,
                        created_at, owner)
                     VALUES (?1, ?2, 'in_flight', ?3, ?3, ?4, ?5)
                     ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint,
                        state = 'in_flight', response_status = NULL, response_body = NULL,
                        order_id = NULL, lock_until = excluded.lock_until,
                        expires_at = excluded.expires_at, created_at = excluded.created_at,
                        owner = excluded.owner",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        key,
                        fingerprint,
                        lock_until.millis(),
                        now.millis(),
                        owner.id()
                    ])
                })
                .map_err(store_err)?;
                Ok(IdempotencyBegin::Started)
            })
            .await
    }

    async fn abandon(&self, key: &IdempotencyKey, fingerprint: &str) -> Result<(), StoreError> {
        let key = key.as_str().to_owned();
        let fingerprint = fingerprint.to_owned();
        self.db
            .write(move |c| {
                c.execute(
                    "DELETE FROM idempotency
                     WHERE key = ?1 AND fingerprint = ?2 AND state = 'in_flight'",
                    params![key, fingerprint],
                )
                .map(|_| ())
                .map_err(store_err)
            })
            .await
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.db
            .write(move |c| {
                c.execute(
                    "DELETE FROM idempotency WHERE expires_at <= ?1",
                    params![now.millis()],
                )
                .map(|n| n as u64)
                .map_err(store_err)
            })
            .await
    }
}

#[async_trait]
impl Readiness for SqliteStore {
    async fn ready(&self) -> Result<(), StoreError> {
        self.db
            .read(|c| {
                let v = schema::current_version(c)?;
                if v != schema::latest_version() {
                    return Err(StoreError::Unavailable(format!(
                        "schema version {v}, expected {}",
                        schema::latest_version()
                    )));
                }
                c.query_row("SELECT count(*) FROM products", [], |r| r.get::<_, i64>(0))
                    .map_err(store_err)?;
                Ok(())
            })
            .await
    }
}

const KEY_COLS: &str = "id, secret_hash, role, user_id, label, created_at, revoked_at";

fn key_from_row(r: &rusqlite::Row<'_>) -> Result<ApiKeyRecord, StoreError> {
    let role: String = r.get(2).map_err(store_err)?;
    let user: Option<String> = r.get(3).map_err(store_err)?;
    let revoked: Option<i64> = r.get(6).map_err(store_err)?;
    Ok(ApiKeyRecord {
        id: r.get(0).map_err(store_err)?,
        secret_hash: r.get(1).map_err(store_err)?,
        role: role.parse().map_err(|_| corrupt("key role", &role))?,
        user_id: match user {
            None => None,
            Some(u) => Some(u.parse().map_err(|_| corrupt("key user", &u))?),
        },
        label: r.get(4).map_err(store_err)?,
        created_at: ts(r.get(5).map_err(store_err)?)?,
        revoked_at: revoked.map(ts).transpose()?,
    })
}

#[async_trait]
impl ApiKeys for SqliteStore {
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let k = key.clone();
        self.db
            .write(move |c| {
                c.execute(
                    &format!(
                        "INSERT INTO api_keys ({KEY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    ),
                    params![
                        k.id,
                        k.secret_hash,
                        k.role.as_str(),
                        k.user_id.as_ref().map(|u| u.as_str().to_owned()),
                        k.label,
                        k.created_at.millis(),
                        k.revoked_at.map(Timestamp::millis),
                    ],
                )
                .map_err(store_err)?;
                Ok(())
            })
            .await
    }

    async fn key_by_id(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        // Known keys from memory while the keys' generation holds (a revocation, here or
        // in another process, starts a new one); unknown ids always go to a reader, so
        // guessing ids cannot fill the cache.
        let seen = self.gens.current(Kind::ApiKeys);
        if let Some(k) = self.keys.get(seen, &id.to_owned()) {
            return Ok(Some(k));
        }
        let id = id.to_owned();
        let found = self
            .db
            .read(move |c| {
                let mut st = c
                    .prepare_cached(&format!("SELECT {KEY_COLS} FROM api_keys WHERE id = ?1"))
                    .map_err(store_err)?;
                let mut rows = st.query(params![id]).map_err(store_err)?;
                match rows.next().map_err(store_err)? {
                    Some(r) => Ok(Some(key_from_row(r)?)),
                    None => Ok(None),
                }
            })
            .await?;
        if let Some(k) = &found {
            self.keys.insert(seen, k.id.clone(), k.clone());
        }
        Ok(found)
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.db
            .read(|c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {KEY_COLS} FROM api_keys ORDER BY created_at, id"
                    ))
                    .map_err(store_err)?;
                let mut rows = st.query([]).map_err(store_err)?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(store_err)? {
                    out.push(key_from_row(r)?);
                }
                Ok(out)
            })
            .await
    }

    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.db
            .write(move |c| {
                let n = c
                    .execute(
                        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                        params![id, at.millis()],
                    )
                    .map_err(store_err)?;
                Ok(n > 0)
            })
            .await
            .and_then(|found| {
                // Committed: every process's cached keys are now stale.
                self.gens.bump(Kind::ApiKeys)?;
                Ok(found)
            })
    }
}

/// A conditional status change inside the caller's write (see [`OrderStore::transition`]).
fn apply_transition(c: &Connection, t: &Transition) -> Result<TransitionOutcome, StoreError> {
    // The step's record, when the order is in `to` afterwards.
    let done = |o: &Order| -> Result<(), StoreError> {
        if o.status == t.to {
            put_step(c, t.order_id, t.step.as_ref())?;
        }
        Ok(())
    };
    if !t.from.can_become(t.to) {
        return match load_order(c, t.order_id)? {
            Some(o) => {
                done(&o)?;
                Ok(TransitionOutcome::Stale(o))
            }
            None => Ok(TransitionOutcome::NotFound),
        };
    }
    let changed = c
        .prepare_cached(
            "UPDATE orders SET status = ?1, updated_at = ?2, version = version + 1,
                        failure_reason = coalesce(?3, failure_reason),
                        tracking_id = coalesce(?4, tracking_id)
                     WHERE order_id = ?5 AND status = ?6",
        )
        .and_then(|mut st| {
            st.execute(params![
                t.to.as_str(),
                t.at.millis(),
                t.failure_reason,
                t.tracking_id,
                t.order_id.to_string(),
                t.from.as_str()
            ])
        })
        .map_err(store_err)?;
    if changed == 1 {
        insert_event(c, &t.event)?;
        if t.enqueue_processing {
            enqueue_processing(c, t.order_id, t.at)?;
        }
    }
    match (changed, load_order(c, t.order_id)?) {
        (_, None) => Ok(TransitionOutcome::NotFound),
        (1, Some(o)) => {
            done(&o)?;
            Ok(TransitionOutcome::Applied(o))
        }
        (_, Some(o)) => {
            done(&o)?;
            Ok(TransitionOutcome::Stale(o))
        }
    }
}

/// Records (or overwrites) a saga step, inside the caller's write.
pub(crate) fn put_step(
    c: &Connection,
    order_id: OrderId,
    record: Option<&StepRecord>,
) -> Result<(), StoreError> {
    let Some(record) = record else {
        return Ok(());
    };
    c.prepare_cached(
        "INSERT INTO saga_steps (order_id, action, succeeded, attempts, detail, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (order_id, action) DO UPDATE SET succeeded = excluded.succeeded,
            attempts = excluded.attempts, detail = excluded.detail, at = excluded.at",
    )
    .and_then(|mut st| {
        st.execute(params![
            order_id.to_string(),
            record.action.as_str(),
            i64::from(record.succeeded),
            i64::from(record.attempts),
            record.detail,
            record.at.millis()
        ])
    })
    .map(|_| ())
    .map_err(store_err)
}
