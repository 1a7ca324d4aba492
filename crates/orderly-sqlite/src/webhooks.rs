//! The `Webhooks` port on SQLite (tables of migration 4): endpoints, the deliveries the
//! fan-out scheduled (one row per endpoint and event, written in the same transaction as
//! the delivery's first queue message) and the attempt log.

use async_trait::async_trait;
use orderly_core::webhooks::{
    DeliveryAttempt, DeliveryOutcome, EventFilter, ScheduledDelivery, WebhookEndpoint, Webhooks,
};
use orderly_core::{StoreError, Timestamp};
use rusqlite::{Row, params};
use uuid::Uuid;

use crate::db::store_err;
use crate::store::{SqliteStore, corrupt, enqueue, ts};

const ENDPOINT_COLS: &str = "id, url, events, secret, active, description, created_at, updated_at";

fn uuid_at(r: &Row<'_>, i: usize, what: &str) -> Result<Uuid, StoreError> {
    let s: String = r.get(i).map_err(store_err)?;
    Uuid::parse_str(&s).map_err(|e| corrupt(what, e))
}

fn endpoint_from_row(r: &Row<'_>) -> Result<WebhookEndpoint, StoreError> {
    let events: String = r.get(2).map_err(store_err)?;
    let names: Vec<String> =
        serde_json::from_str(&events).map_err(|e| corrupt("webhook events", e))?;
    Ok(WebhookEndpoint {
        id: uuid_at(r, 0, "webhook id")?,
        url: r.get(1).map_err(store_err)?,
        events: EventFilter::parse(&names, "events")
            .map_err(|e| corrupt("webhook events", e.reason))?,
        secret: r.get(3).map_err(store_err)?,
        active: r.get::<_, i64>(4).map_err(store_err)? != 0,
        description: r.get(5).map_err(store_err)?,
        created_at: ts(r.get(6).map_err(store_err)?)?,
        updated_at: ts(r.get(7).map_err(store_err)?)?,
    })
}

fn events_json(f: &EventFilter) -> String {
    serde_json::Value::from(f.to_strings()).to_string()
}

const ATTEMPT_COLS: &str = "delivery_id, endpoint_id, event_id, event_type, attempt, at, \
                            outcome, status_code, error, duration_ms";

fn attempt_from_row(r: &Row<'_>) -> Result<DeliveryAttempt, StoreError> {
    let get_s = |i: usize| r.get::<_, String>(i).map_err(store_err);
    let get_i = |i: usize| r.get::<_, i64>(i).map_err(store_err);
    Ok(DeliveryAttempt {
        delivery_id: uuid_at(r, 0, "delivery id")?,
        endpoint_id: uuid_at(r, 1, "webhook id")?,
        event_id: uuid_at(r, 2, "event id")?,
        event_type: get_s(3)?.parse().map_err(|e| corrupt("event type", e))?,
        attempt: u32::try_from(get_i(4)?).map_err(|e| corrupt("attempt", e))?,
        at: ts(get_i(5)?)?,
        outcome: get_s(6)?
            .parse::<DeliveryOutcome>()
            .map_err(|e| corrupt("delivery outcome", e))?,
        status_code: r
            .get::<_, Option<i64>>(7)
            .map_err(store_err)?
            .map(u16::try_from)
            .transpose()
            .map_err(|e| corrupt("status code", e))?,
        error: r.get(8).map_err(store_err)?,
        duration_ms: u64::try_from(get_i(9)?).map_err(|e| corrupt("duration", e))?,
    })
}

#[async_trait]
impl Webhooks for SqliteStore {
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        let e = endpoint.clone();
        self.db
            .write(move |c| {
                c.execute(
                    &format!(
                        "INSERT INTO webhook_endpoints ({ENDPOINT_COLS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    ),
                    params![
                        e.id.to_string(),
                        e.url,
                        events_json(&e.events),
                        e.secret,
                        i64::from(e.active),
                        e.description,
                        e.created_at.millis(),
                        e.updated_at.millis(),
                    ],
                )
                .map_err(store_err)?;
                Ok(())
            })
            .await
    }

    async fn endpoint(&self, id: Uuid) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.db
            .read(move |c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE id = ?1"
                    ))
                    .map_err(store_err)?;
                let mut rows = st.query(params![id.to_string()]).map_err(store_err)?;
                match rows.next().map_err(store_err)? {
                    Some(r) => Ok(Some(endpoint_from_row(r)?)),
                    None => Ok(None),
                }
            })
            .await
    }

    async fn list_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.db
            .read(|c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {ENDPOINT_COLS} FROM webhook_endpoints ORDER BY seq"
                    ))
                    .map_err(store_err)?;
                let mut rows = st.query([]).map_err(store_err)?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(store_err)? {
                    out.push(endpoint_from_row(r)?);
                }
                Ok(out)
            })
            .await
    }

    async fn set_endpoint_active(
        &self,
        id: Uuid,
        active: bool,
        at: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.db
            .write(move |c| {
                c.execute(
                    "UPDATE webhook_endpoints SET active = ?2, updated_at = ?3 \
                     WHERE id = ?1 AND active != ?2",
                    params![id.to_string(), i64::from(active), at.millis()],
                )
                .map_err(store_err)?;
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE id = ?1"
                    ))
                    .map_err(store_err)?;
                let mut rows = st.query(params![id.to_string()]).map_err(store_err)?;
                match rows.next().map_err(store_err)? {
                    Some(r) => Ok(Some(endpoint_from_row(r)?)),
                    None => Ok(None),
                }
            })
            .await
    }

    async fn delete_endpoint(&self, id: Uuid) -> Result<bool, StoreError> {
        self.db
            .write(move |c| {
                let id = id.to_string();
                c.execute(
                    "DELETE FROM webhook_attempts WHERE endpoint_id = ?1",
                    params![id],
                )
                .map_err(store_err)?;
                c.execute(
                    "DELETE FROM webhook_deliveries WHERE endpoint_id = ?1",
                    params![id],
                )
                .map_err(store_err)?;
                let n = c
                    .execute("DELETE FROM webhook_endpoints WHERE id = ?1", params![id])
                    .map_err(store_err)?;
                Ok(n > 0)
            })
            .await
    }

    async fn schedule_delivery(
        &self,
        delivery: &ScheduledDelivery,
        queue: &str,
        body: &str,
    ) -> Result<bool, StoreError> {
        let d = delivery.clone();
        let woken = queue;
        let (queue, body) = (queue.to_owned(), body.to_owned());
        let now = self.clock.now().millis();
        let new = self
            .db
            .write(move |c| {
                let n = c
                    .execute(
                        "INSERT INTO webhook_deliveries (delivery_id, endpoint_id, event_id, created_at) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (delivery_id) DO NOTHING",
                        params![
                            d.delivery_id.to_string(),
                            d.endpoint_id.to_string(),
                            d.event_id.to_string(),
                            d.at.millis(),
                        ],
                    )
                    .map_err(store_err)?;
                if n == 0 {
                    return Ok(false);
                }
                enqueue(c, &queue, &body, now, now)?;
                Ok(true)
            })
            .await?;
        if new {
            self.wake.wake_queue(woken);
        }
        Ok(new)
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<bool, StoreError> {
        let a = attempt.clone();
        self.db
            .write(move |c| {
                let n = c
                    .execute(
                        &format!(
                            "INSERT INTO webhook_attempts ({ATTEMPT_COLS}) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                             ON CONFLICT (delivery_id, attempt) DO NOTHING"
                        ),
                        params![
                            a.delivery_id.to_string(),
                            a.endpoint_id.to_string(),
                            a.event_id.to_string(),
                            a.event_type.as_str(),
                            i64::from(a.attempt),
                            a.at.millis(),
                            a.outcome.as_str(),
                            a.status_code.map(i64::from),
                            a.error,
                            i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
                        ],
                    )
                    .map_err(store_err)?;
                Ok(n > 0)
            })
            .await
    }

    async fn delivery_attempts(
        &self,
        delivery_id: Uuid,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.db
            .read(move |c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {ATTEMPT_COLS} FROM webhook_attempts \
                         WHERE delivery_id = ?1 ORDER BY seq"
                    ))
                    .map_err(store_err)?;
                let mut rows = st
                    .query(params![delivery_id.to_string()])
                    .map_err(store_err)?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(store_err)? {
                    out.push(attempt_from_row(r)?);
                }
                Ok(out)
            })
            .await
    }

    async fn endpoint_attempts(
        &self,
        endpoint_id: Uuid,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.db
            .read(move |c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {ATTEMPT_COLS} FROM webhook_attempts \
                         WHERE endpoint_id = ?1 ORDER BY seq DESC LIMIT ?2"
                    ))
                    .map_err(store_err)?;
                let mut rows = st
                    .query(params![endpoint_id.to_string(), i64::from(limit)])
                    .map_err(store_err)?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(store_err)? {
                    out.push(attempt_from_row(r)?);
                }
                Ok(out)
            })
            .await
    }
}
