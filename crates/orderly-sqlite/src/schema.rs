//! Schema migrations, applied in order at start-up under `PRAGMA user_version`.
//!
//! Each migration runs in its own `BEGIN IMMEDIATE` transaction, so two processes opening
//! the same data directory at once cannot both apply one. Migrations are append-only:
//! never edit one that has shipped; add the next.

use orderly_core::StoreError;
use rusqlite::{Connection, TransactionBehavior};

use crate::db::store_err;

const MIGRATIONS: &[&str] = &[
    // 1: catalogue, orders, events, the queue (also the transactional outbox), idempotency.
    r#"
    CREATE TABLE products (
        product_id  TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
        stock       INTEGER NOT NULL CHECK (stock >= 0),
        category    TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        version     INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE orders (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id       TEXT NOT NULL UNIQUE,
        user_id        TEXT NOT NULL,
        customer_email TEXT,
        items          TEXT NOT NULL,
        total_minor    INTEGER NOT NULL CHECK (total_minor >= 0),
        currency       TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (status IN
                         ('PENDING','CONFIRMED','FULFILLED','FAILED','CANCELLED')),
        failure_reason TEXT,
        tracking_id    TEXT,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        version        INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX orders_by_user ON orders (user_id, seq);
    CREATE INDEX orders_by_status ON orders (status, seq);

    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id    TEXT NOT NULL UNIQUE,
        order_id    TEXT NOT NULL,
        detail_type TEXT NOT NULL,
        time        INTEGER NOT NULL,
        detail      TEXT NOT NULL
    ) STRICT;
    CREATE INDEX events_by_order ON events (order_id, seq);

    CREATE TABLE queue (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        queue         TEXT NOT NULL,
        body          TEXT NOT NULL,
        enqueued_at   INTEGER NOT NULL,
        visible_at    INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        last_error    TEXT
    ) STRICT;
    CREATE INDEX queue_ready ON queue (queue, visible_at, id);

    CREATE TABLE idempotency (
        key             TEXT PRIMARY KEY,
        fingerprint     TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('in_flight', 'completed')),
        response_status INTEGER,
        response_body   TEXT,
        order_id        TEXT,
        lock_until      INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        created_at      INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX idempotency_expiry ON idempotency (expires_at);
    "#,
    // 2: order processing: reservations, payments, the saga log, dead letters, the event
    // outbox position, sent notifications.
    r#"
    CREATE TABLE reservations (
        order_id   TEXT PRIMARY KEY,
        state      TEXT NOT NULL CHECK (state IN ('reserved', 'released')),
        items      TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE payments (
        order_id     TEXT PRIMARY KEY,
        state        TEXT NOT NULL CHECK (state IN ('charged', 'declined', 'refunded')),
        payment_id   TEXT,
        refund_id    TEXT,
        amount_minor INTEGER,
        reason       TEXT,
        updated_at   INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE saga_steps (
        order_id  TEXT NOT NULL,
        action    TEXT NOT NULL,
        succeeded INTEGER NOT NULL,
        attempts  INTEGER NOT NULL,
        detail    TEXT,
        at        INTEGER NOT NULL,
        PRIMARY KEY (order_id, action)
    ) STRICT;

    CREATE TABLE dead_letters (
        id            INTEGER PRIMARY KEY,
        queue         TEXT NOT NULL,
        body          TEXT NOT NULL,
        receive_count INTEGER NOT NULL,
        last_error    TEXT,
        enqueued_at   INTEGER NOT NULL,
        dead_at       INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE outbox_offsets (
        name     TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE notifications (
        event_id  TEXT PRIMARY KEY,
        order_id  TEXT NOT NULL,
        recipient TEXT NOT NULL,
        subject   TEXT NOT NULL,
        transport TEXT NOT NULL,
        sent_at   INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX notifications_by_order ON notifications (order_id);
    "#,
    // 2: API keys (digests only).
    r#"
    CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        role        TEXT NOT NULL CHECK (role IN ('admin','customer')),
        user_id     TEXT,
        label       TEXT,
        created_at  INTEGER NOT NULL,
        revoked_at  INTEGER
    ) STRICT;
    "#,
    // 4: webhooks: endpoints (with their signing secrets, which signing needs in the
    // clear), scheduled deliveries (one per endpoint and event) and the attempt log.
    r#"
    CREATE TABLE webhook_endpoints (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        id          TEXT NOT NULL UNIQUE,
        url         TEXT NOT NULL,
        events      TEXT NOT NULL,
        secret      TEXT NOT NULL,
        active      INTEGER NOT NULL CHECK (active IN (0, 1)),
        description TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE webhook_deliveries (
        delivery_id TEXT PRIMARY KEY,
        endpoint_id TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id);

    CREATE TABLE webhook_attempts (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        event_type  TEXT NOT NULL,
        attempt     INTEGER NOT NULL CHECK (attempt >= 1),
        at          INTEGER NOT NULL,
        outcome     TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed', 'dead')),
        status_code INTEGER,
        error       TEXT,
        duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
        UNIQUE (delivery_id, attempt)
    ) STRICT;
    CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, seq);
    "#,
    // 5: the process that holds an idempotency key in flight (see `owners`), so a claim of
    // a process that died is void at once.
    r#"
    ALTER TABLE idempotency ADD COLUMN owner TEXT;
    "#,
];

/// The schema version this build expects.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Current `user_version` of the database.
pub fn current_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(store_err)
}

/// Applies every migration newer than the database.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_err)?;
        let current: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(store_err)?;
        if current > latest_version() {
            return Err(StoreError::Backend(format!(
                "the database schema is version {current}, newer than this build \
                 understands ({}); upgrade orderly",
                latest_version()
            )));
        }
        if current >= version {
            continue;
        }
        tx.execute_batch(sql).map_err(store_err)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}
