//! The order-processing ports on SQLite: the durable queue and its dead letters, stock
//! reservations, the payment ledger, the saga log, the event outbox and sent
//! notifications.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use orderly_core::ports::{
    DeadLetter, EventOutbox, MAX_RECEIVES, Message, NackOutcome, Notification, NotificationLog,
    PaymentLedger, PaymentState, Queue, QueueDepth, ReleaseOutcome, Reservations, ReserveOutcome,
    SagaLog, StepRecord,
};
use orderly_core::saga::Action;
use orderly_core::{DomainEvent, Order, OrderId, OrderStatus, StoreError, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::store_err;
use crate::store::{
    EVENT_COLS, SqliteStore, corrupt, enqueue, event_from_row, insert_event, money, put_step, ts,
};

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Receipt handles are `<row id>.<receive count>`: a consumer whose visibility timeout
/// passed (and whose message was received again) can no longer ack or nack it.
fn parse_handle(id: &str) -> Option<(i64, i64)> {
    let (row, count) = id.split_once('.')?;
    Some((row.parse().ok()?, count.parse().ok()?))
}

fn to_dead_letters(
    c: &Connection,
    row: i64,
    error: Option<&str>,
    at: i64,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO dead_letters (id, queue, body, receive_count, last_error, enqueued_at, dead_at)
         SELECT id, queue, body, receive_count, coalesce(?2, last_error), enqueued_at, ?3
         FROM queue WHERE id = ?1",
    )
    .and_then(|mut st| st.execute(params![row, error, at]))
    .and_then(|_| c.execute("DELETE FROM queue WHERE id = ?1", params![row]))
    .map(|_| ())
    .map_err(store_err)
}

impl SqliteStore {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// One non-blocking receive; also answers when the next delayed message turns visible.
    async fn receive_once(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<(Vec<Message>, Option<i64>), StoreError> {
        let queue = queue.to_owned();
        let now = self.now().millis();
        let hide_until = now.saturating_add(millis(visibility));
        self.db
            .write(move |c| {
                let rows: Vec<(i64, String, i64, i64)> = c
                    .prepare_cached(
                        "SELECT id, body, receive_count, enqueued_at FROM queue
                         WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3",
                    )
                    .and_then(|mut st| {
                        st.query_map(params![queue, now, max as i64], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                        })?
                        .collect()
                    })
                    .map_err(store_err)?;
                let mut out = Vec::with_capacity(rows.len());
                for (id, body, count, enqueued) in rows {
                    if count >= i64::from(MAX_RECEIVES) {
                        // Its last delivery timed out without an answer.
                        to_dead_letters(
                            c,
                            id,
                            Some("visibility timeout expired on the last allowed receive"),
                            now,
                        )?;
                        continue;
                    }
                    c.prepare_cached(
                        "UPDATE queue SET receive_count = receive_count + 1, visible_at = ?2
                         WHERE id = ?1",
                    )
                    .and_then(|mut st| st.execute(params![id, hide_until]))
                    .map_err(store_err)?;
                    out.push(Message {
                        id: format!("{id}.{}", count + 1),
                        body,
                        receive_count: u32::try_from(count + 1).unwrap_or(u32::MAX),
                        enqueued_at: ts(enqueued)?,
                    });
                }
                let next: Option<i64> = c
                    .prepare_cached(
                        "SELECT min(visible_at) FROM queue WHERE queue = ?1 AND visible_at > ?2",
                    )
                    .and_then(|mut st| st.query_row(params![queue, now], |r| r.get(0)))
                    .map_err(store_err)?;
                Ok((out, next))
            })
            .await
    }

    /// Calls `attempt` until it finds something or `wait` passes. Between attempts it
    /// sleeps until this process writes a message or event, the next delayed item (the
    /// attempt's second value, epoch ms) turns visible, or [`CROSS_PROCESS_POLL`] passes.
    async fn long_poll<T, F, Fut>(
        &self,
        wake: &tokio::sync::Notify,
        wait: Duration,
        mut attempt: F,
    ) -> Result<Vec<T>, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<T>, Option<i64>), StoreError>>,
    {
        let deadline = Instant::now() + wait;
        loop {
            // Register interest before looking, so a write in between is not missed.
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (found, next_visible) = attempt().await?;
            let now = Instant::now();
            if !found.is_empty() || now >= deadline {
                return Ok(found);
            }
            let mut sleep = (deadline - now).min(CROSS_PROCESS_POLL);
            if let Some(next) = next_visible {
                let until = u64::try_from(next - self.now().millis()).unwrap_or(0);
                sleep = sleep.min(Duration::from_millis(until));
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}

/// How long a long poll sleeps between checks when nothing wakes it: writes made by
/// another process sharing the data directory are seen within this time.
const CROSS_PROCESS_POLL: Duration = Duration::from_millis(250);

#[async_trait]
impl Queue for SqliteStore {
    async fn send(&self, queue: &str, body: &str, delay: Duration) -> Result<(), StoreError> {
        let woken = queue;
        let (queue, body) = (queue.to_owned(), body.to_owned());
        let now = self.now().millis();
        let visible = now.saturating_add(millis(delay));
        self.db
            .write(move |c| enqueue(c, &queue, &body, now, visible))
            .await?;
        self.wake.wake_queue(woken);
        Ok(())
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Message>, StoreError> {
        let wake = self.wake.queue(queue);
        self.long_poll(&wake, wait, || self.receive_once(queue, max, visibility))
            .await
    }

    async fn send_many(&self, messages: &[(&str, String)]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let owned: Vec<(String, String)> = messages
            .iter()
            .map(|(q, b)| ((*q).to_owned(), b.clone()))
            .collect();
        let now = self.now().millis();
        self.db
            .write(move |c| {
                for (queue, body) in &owned {
                    enqueue(c, queue, body, now, now)?;
                }
                Ok(())
            })
            .await?;
        let mut woken: Vec<&str> = messages.iter().map(|(q, _)| *q).collect();
        woken.sort_unstable();
        woken.dedup();
        for q in woken {
            self.wake.wake_queue(q);
        }
        Ok(())
    }

    async fn ack_many(&self, queue: &str, ids: &[String]) -> Result<(), StoreError> {
        let handles: Vec<(i64, i64)> = ids.iter().filter_map(|id| parse_handle(id)).collect();
        if handles.is_empty() {
            return Ok(());
        }
        let queue = queue.to_owned();
        self.db
            .write(move |c| {
                let mut st = c
                    .prepare_cached(
                        "DELETE FROM queue WHERE id = ?1 AND queue = ?2 AND receive_count = ?3",
                    )
                    .map_err(store_err)?;
                for (row, count) in handles {
                    st.execute(params![row, queue, count]).map_err(store_err)?;
                }
                Ok(())
            })
            .await
    }

    async fn ack(&self, queue: &str, id: &str) -> Result<(), StoreError> {
        let Some((row, count)) = parse_handle(id) else {
            return Ok(());
        };
        let queue = queue.to_owned();
        self.db
            .write(move |c| {
                c.prepare_cached(
                    "DELETE FROM queue WHERE id = ?1 AND queue = ?2 AND receive_count = ?3",
                )
                .and_then(|mut st| st.execute(params![row, queue, count]))
                .map(|_| ())
                .map_err(store_err)
            })
            .await
    }

    async fn nack(
        &self,
        queue: &str,
        id: &str,
        error: &str,
        retry_after: Duration,
    ) -> Result<NackOutcome, StoreError> {
        let Some((row, count)) = parse_handle(id) else {
            return Ok(NackOutcome::WillRetry);
        };
        let woken = queue;
        let (queue, error) = (queue.to_owned(), error.to_owned());
        let now = self.now().millis();
        let visible = now.saturating_add(millis(retry_after));
        let out = self
            .db
            .write(move |c| {
                let found: Option<i64> = c
                    .prepare_cached(
                        "SELECT receive_count FROM queue
                         WHERE id = ?1 AND queue = ?2 AND receive_count = ?3",
                    )
                    .and_then(|mut st| {
                        st.query_row(params![row, queue, count], |r| r.get(0))
                            .optional()
                    })
                    .map_err(store_err)?;
                match found {
                    None => Ok(NackOutcome::WillRetry),
                    Some(n) if n >= i64::from(MAX_RECEIVES) => {
                        to_dead_letters(c, row, Some(&error), now)?;
                        Ok(NackOutcome::DeadLettered)
                    }
                    Some(_) => {
                        c.prepare_cached(
                            "UPDATE queue SET last_error = ?2, visible_at = ?3 WHERE id = ?1",
                        )
                        .and_then(|mut st| st.execute(params![row, error, visible]))
                        .map_err(store_err)?;
                        Ok(NackOutcome::WillRetry)
                    }
                }
            })
            .await?;
        if retry_after.is_zero() {
            self.wake.wake_queue(woken);
        }
        Ok(out)
    }

    async fn extend(&self, queue: &str, id: &str, visibility: Duration) -> Result<(), StoreError> {
        let Some((row, count)) = parse_handle(id) else {
            return Ok(());
        };
        let queue = queue.to_owned();
        let until = self.now().millis().saturating_add(millis(visibility));
        self.db
            .write(move |c| {
                c.prepare_cached(
                    "UPDATE queue SET visible_at = ?4 WHERE id = ?1 AND queue = ?2 AND receive_count = ?3",
                )
                .and_then(|mut st| st.execute(params![row, queue, count, until]))
                .map(|_| ())
                .map_err(store_err)
            })
            .await
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        self.db
            .read(move |c| {
                let rows: Vec<(i64, String, String, i64, Option<String>, i64, i64)> = c
                    .prepare_cached(
                        "SELECT id, queue, body, receive_count, last_error, enqueued_at, dead_at
                         FROM dead_letters ORDER BY dead_at, id LIMIT ?1",
                    )
                    .and_then(|mut st| {
                        st.query_map(params![i64::from(limit)], |r| {
                            Ok((
                                r.get(0)?,
                                r.get(1)?,
                                r.get(2)?,
                                r.get(3)?,
                                r.get(4)?,
                                r.get(5)?,
                                r.get(6)?,
                            ))
                        })?
                        .collect()
                    })
                    .map_err(store_err)?;
                rows.into_iter()
                    .map(|(id, queue, body, count, last_error, enq, dead)| {
                        Ok(DeadLetter {
                            id: id.to_string(),
                            queue,
                            body,
                            receive_count: u32::try_from(count).unwrap_or(u32::MAX),
                            last_error,
                            enqueued_at: ts(enq)?,
                            dead_at: ts(dead)?,
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn replay(&self, ids: Option<Vec<String>>) -> Result<Vec<String>, StoreError> {
        let now = self.now().millis();
        let moved = self
            .db
            .write(move |c| {
                let all: Vec<i64> = c
                    .prepare_cached("SELECT id FROM dead_letters ORDER BY id")
                    .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
                    .map_err(store_err)?;
                let chosen: Vec<i64> = match &ids {
                    None => all,
                    Some(ids) => all
                        .into_iter()
                        .filter(|id| ids.iter().any(|x| x == &id.to_string()))
                        .collect(),
                };
                for id in &chosen {
                    c.prepare_cached(
                        "INSERT INTO queue (queue, body, enqueued_at, visible_at)
                         SELECT queue, body, ?2, ?2 FROM dead_letters WHERE id = ?1",
                    )
                    .and_then(|mut st| st.execute(params![id, now]))
                    .and_then(|_| c.execute("DELETE FROM dead_letters WHERE id = ?1", params![id]))
                    .map_err(store_err)?;
                }
                Ok(chosen
                    .into_iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>())
            })
            .await?;
        if !moved.is_empty() {
            self.wake.wake_all();
        }
        Ok(moved)
    }

    async fn purge_dead_letters(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.db
            .write(move |c| {
                c.execute(
                    "DELETE FROM dead_letters WHERE dead_at < ?1",
                    params![before.millis()],
                )
                .map(|n| n as u64)
                .map_err(store_err)
            })
            .await
    }

    async fn depth(&self, queue: &str) -> Result<QueueDepth, StoreError> {
        let queue = queue.to_owned();
        let now = self.now().millis();
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT
                        coalesce(sum(receive_count = 0 OR visible_at <= ?2), 0),
                        coalesce(sum(receive_count > 0 AND visible_at > ?2), 0),
                        min(enqueued_at)
                     FROM queue WHERE queue = ?1",
                    params![queue, now],
                    |r| {
                        let oldest: Option<i64> = r.get(2)?;
                        Ok(QueueDepth {
                            waiting: r.get::<_, i64>(0)? as u64,
                            in_flight: r.get::<_, i64>(1)? as u64,
                            oldest_age_ms: oldest.map(|o| (now - o).max(0) as u64).unwrap_or(0),
                        })
                    },
                )
                .map_err(store_err)
            })
            .await
    }

    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.db
            .read(|c| {
                c.query_row("SELECT count(*) FROM dead_letters", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n as u64)
                .map_err(store_err)
            })
            .await
    }
}

#[async_trait]
impl Reservations for SqliteStore {
    async fn reserve(
        &self,
        order: &Order,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<ReserveOutcome, StoreError> {
        let order = order.clone();
        let now = self.now().millis();
        let out = self
            .db
            .write(move |c| {
                let out = (|| -> Result<_, StoreError> {
                    let id = order.order_id.to_string();
                    let state: Option<String> = c
                        .prepare_cached("SELECT state FROM reservations WHERE order_id = ?1")
                        .and_then(|mut st| st.query_row(params![id], |r| r.get(0)).optional())
                        .map_err(store_err)?;
                    match state.as_deref() {
                        Some("reserved") => return Ok(ReserveOutcome::AlreadyReserved),
                        Some(_) => return Ok(ReserveOutcome::Released),
                        None => {}
                    }
                    let status: Option<String> = c
                        .prepare_cached("SELECT status FROM orders WHERE order_id = ?1")
                        .and_then(|mut st| st.query_row(params![id], |r| r.get(0)).optional())
                        .map_err(store_err)?;
                    if let Some(st) = status {
                        let st: OrderStatus = st.parse().map_err(|e| corrupt("status", e))?;
                        if st != OrderStatus::Pending {
                            return Ok(ReserveOutcome::NotPending(st));
                        }
                    }
                    // Check every line first: all or nothing (one writer, so nothing moves
                    // between the check and the update).
                    for item in &order.items {
                        let stock: Option<i64> = c
                            .prepare_cached("SELECT stock FROM products WHERE product_id = ?1")
                            .and_then(|mut st| {
                                st.query_row(params![item.product_id.as_str()], |r| r.get(0))
                                    .optional()
                            })
                            .map_err(store_err)?;
                        match stock {
                            None => {
                                return Ok(ReserveOutcome::UnknownProduct(item.product_id.clone()));
                            }
                            Some(s) if s < i64::from(item.qty.get()) => {
                                return Ok(ReserveOutcome::Insufficient {
                                    product_id: item.product_id.clone(),
                                    requested: item.qty.get(),
                                    available: u32::try_from(s).unwrap_or(0),
                                });
                            }
                            Some(_) => {}
                        }
                    }
                    let mut held = Vec::new();
                    for item in &order.items {
                        let n = c
                            .prepare_cached(
                                "UPDATE products SET stock = stock - ?1, updated_at = ?2,
                                version = version + 1
                             WHERE product_id = ?3 AND stock >= ?1",
                            )
                            .and_then(|mut st| {
                                st.execute(params![
                                    i64::from(item.qty.get()),
                                    now,
                                    item.product_id.as_str()
                                ])
                            })
                            .map_err(store_err)?;
                        if n != 1 {
                            return Err(StoreError::Backend(
                                "stock changed during a reservation".into(),
                            ));
                        }
                        held.push((item.product_id.as_str().to_owned(), item.qty.get()));
                    }
                    let items =
                        serde_json::to_string(&held).map_err(|e| corrupt("reservation", e))?;
                    c.prepare_cached(
                        "INSERT INTO reservations (order_id, state, items, updated_at)
                     VALUES (?1, 'reserved', ?2, ?3)",
                    )
                    .and_then(|mut st| st.execute(params![id, items, now]))
                    .map_err(store_err)?;
                    insert_event(c, &event)?;
                    Ok(ReserveOutcome::Reserved)
                })()?;
                if matches!(
                    out,
                    ReserveOutcome::Reserved | ReserveOutcome::AlreadyReserved
                ) {
                    put_step(c, order.order_id, step.as_ref())?;
                }
                Ok(out)
            })
            .await?;
        if out == ReserveOutcome::Reserved {
            self.wake.wake_events();
        }
        Ok(out)
    }

    async fn release(
        &self,
        order_id: OrderId,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<ReleaseOutcome, StoreError> {
        let now = self.now().millis();
        let out = self
            .db
            .write(move |c| {
                let out = (|| -> Result<_, StoreError> {
                    let id = order_id.to_string();
                    let row: Option<(String, String)> = c
                        .prepare_cached("SELECT state, items FROM reservations WHERE order_id = ?1")
                        .and_then(|mut st| {
                            st.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                                .optional()
                        })
                        .map_err(store_err)?;
                    match row {
                        None => {
                            c.execute(
                                "INSERT INTO reservations (order_id, state, items, updated_at)
                             VALUES (?1, 'released', '[]', ?2)",
                                params![id, now],
                            )
                            .map_err(store_err)?;
                            Ok(ReleaseOutcome::NothingReserved)
                        }
                        Some((state, _)) if state == "released" => {
                            Ok(ReleaseOutcome::AlreadyReleased)
                        }
                        Some((_, items)) => {
                            let held: Vec<(String, u32)> = serde_json::from_str(&items)
                                .map_err(|e| corrupt("reservation", e))?;
                            for (pid, qty) in held {
                                c.prepare_cached(
                                    "UPDATE products SET stock = stock + ?1, updated_at = ?2,
                                    version = version + 1 WHERE product_id = ?3",
                                )
                                .and_then(|mut st| st.execute(params![i64::from(qty), now, pid]))
                                .map_err(store_err)?;
                            }
                            c.execute(
                                "UPDATE reservations SET state = 'released', updated_at = ?2
                             WHERE order_id = ?1",
                                params![id, now],
                            )
                            .map_err(store_err)?;
                            insert_event(c, &event)?;
                            Ok(ReleaseOutcome::Released)
                        }
                    }
                })()?;
                if true {
                    put_step(c, order_id, step.as_ref())?;
                }
                Ok(out)
            })
            .await?;
        if out == ReleaseOutcome::Released {
            self.wake.wake_events();
        }
        Ok(out)
    }
}

fn load_payment(c: &Connection, id: &str) -> Result<Option<PaymentState>, StoreError> {
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
    );
    let row: Option<Row> = c
        .prepare_cached(
            "SELECT state, payment_id, refund_id, amount_minor, reason FROM payments
             WHERE order_id = ?1",
        )
        .and_then(|mut st| {
            st.query_row(params![id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
        })
        .map_err(store_err)?;
    let Some((state, payment_id, refund_id, amount, reason)) = row else {
        return Ok(None);
    };
    let need = |v: Option<String>, what: &str| v.ok_or_else(|| corrupt("payment", what));
    Ok(Some(match state.as_str() {
        "charged" => PaymentState::Charged {
            payment_id: need(payment_id, "payment id")?,
            amount: money(amount.unwrap_or(0))?,
        },
        "declined" => PaymentState::Declined {
            reason: reason.unwrap_or_default(),
        },
        "refunded" => PaymentState::Refunded {
            payment_id: need(payment_id, "payment id")?,
            refund_id: need(refund_id, "refund id")?,
            amount: money(amount.unwrap_or(0))?,
        },
        other => return Err(corrupt("payment state", other)),
    }))
}

#[async_trait]
impl PaymentLedger for SqliteStore {
    async fn payment(&self, order_id: OrderId) -> Result<Option<PaymentState>, StoreError> {
        self.db
            .read(move |c| load_payment(c, &order_id.to_string()))
            .await
    }

    async fn record_charge(
        &self,
        order_id: OrderId,
        state: PaymentState,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<PaymentState, StoreError> {
        let now = self.now().millis();
        let out = self
            .db
            .write(move |c| {
                let out = (|| -> Result<_, StoreError> {
                let id = order_id.to_string();
                if let Some(existing) = load_payment(c, &id)? {
                    return Ok((existing, false));
                }
                let (st, pid, amount, reason) = match &state {
                    PaymentState::Charged { payment_id, amount } => {
                        ("charged", Some(payment_id.clone()), Some(amount.minor()), None)
                    }
                    PaymentState::Declined { reason } => ("declined", None, None, Some(reason.clone())),
                    PaymentState::Refunded { .. } => {
                        return Err(StoreError::Backend("a charge cannot be recorded as refunded".into()));
                    }
                };
                c.prepare_cached(
                    "INSERT INTO payments (order_id, state, payment_id, amount_minor, reason, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| s.execute(params![id, st, pid, amount, reason, now]))
                .map_err(store_err)?;
                insert_event(c, &event)?;
                Ok((state, true))
                })()?;
                if matches!(out.0, PaymentState::Charged { .. }) {
                    put_step(c, order_id, step.as_ref())?;
                }
                Ok(out)
            })
            .await?;
        if out.1 {
            self.wake.wake_events();
        }
        Ok(out.0)
    }

    async fn record_refund(
        &self,
        order_id: OrderId,
        refund_id: String,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<Option<PaymentState>, StoreError> {
        let now = self.now().millis();
        let out = self
            .db
            .write(move |c| {
                let out = (|| -> Result<_, StoreError> {
                    let id = order_id.to_string();
                    match load_payment(c, &id)? {
                        Some(PaymentState::Charged { .. }) => {}
                        other => return Ok((other, false)),
                    }
                    c.execute(
                        "UPDATE payments SET state = 'refunded', refund_id = ?2, updated_at = ?3
                     WHERE order_id = ?1 AND state = 'charged'",
                        params![id, refund_id, now],
                    )
                    .map_err(store_err)?;
                    insert_event(c, &event)?;
                    Ok((load_payment(c, &id)?, true))
                })()?;
                if true {
                    put_step(c, order_id, step.as_ref())?;
                }
                Ok(out)
            })
            .await?;
        if out.1 {
            self.wake.wake_events();
        }
        Ok(out.0)
    }
}

#[async_trait]
impl SagaLog for SqliteStore {
    async fn steps(&self, order_id: OrderId) -> Result<Vec<StepRecord>, StoreError> {
        self.db
            .read(move |c| {
                let rows: Vec<(String, i64, i64, Option<String>, i64)> = c
                    .prepare_cached(
                        "SELECT action, succeeded, attempts, detail, at FROM saga_steps
                         WHERE order_id = ?1 ORDER BY at, rowid",
                    )
                    .and_then(|mut st| {
                        st.query_map(params![order_id.to_string()], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                        })?
                        .collect()
                    })
                    .map_err(store_err)?;
                rows.into_iter()
                    .map(|(a, ok, attempts, detail, at)| {
                        Ok(StepRecord {
                            action: Action::parse(&a).ok_or_else(|| corrupt("saga action", &a))?,
                            succeeded: ok != 0,
                            attempts: u32::try_from(attempts).unwrap_or(0),
                            detail,
                            at: ts(at)?,
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn record_step(&self, order_id: OrderId, record: StepRecord) -> Result<(), StoreError> {
        self.db
            .write(move |c| put_step(c, order_id, Some(&record)))
            .await
    }
}

#[async_trait]
impl EventOutbox for SqliteStore {
    async fn unpublished(
        &self,
        limit: u32,
        wait: Duration,
    ) -> Result<Vec<(i64, DomainEvent)>, StoreError> {
        let wake = self.wake.events();
        self.long_poll(&wake, wait, || async move {
            let batch = self
                .db
                .read(move |c| {
                    let mut st = c
                        .prepare_cached(&format!(
                            "SELECT {EVENT_COLS} FROM events
                             WHERE seq > coalesce(
                                (SELECT position FROM outbox_offsets WHERE name = 'bus'), 0)
                             ORDER BY seq LIMIT ?1"
                        ))
                        .map_err(store_err)?;
                    let mut rows = st.query(params![i64::from(limit)]).map_err(store_err)?;
                    let mut out = Vec::new();
                    while let Some(r) = rows.next().map_err(store_err)? {
                        out.push(event_from_row(r)?);
                    }
                    Ok(out)
                })
                .await?;
            Ok((batch, None))
        })
        .await
    }

    async fn mark_published(&self, position: i64) -> Result<(), StoreError> {
        self.db
            .write(move |c| {
                c.execute(
                    "INSERT INTO outbox_offsets (name, position) VALUES ('bus', ?1)
                     ON CONFLICT (name) DO UPDATE SET position = max(position, excluded.position)",
                    params![position],
                )
                .map(|_| ())
                .map_err(store_err)
            })
            .await
    }
}

#[async_trait]
impl NotificationLog for SqliteStore {
    async fn was_sent(&self, event_id: uuid::Uuid) -> Result<bool, StoreError> {
        self.db
            .read(move |c| {
                c.prepare_cached("SELECT 1 FROM notifications WHERE event_id = ?1")
                    .and_then(|mut st| st.exists(params![event_id.to_string()]))
                    .map_err(store_err)
            })
            .await
    }

    async fn record_sent(
        &self,
        n: &Notification,
        transport: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let (n, transport) = (n.clone(), transport.to_owned());
        self.db
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO notifications (event_id, order_id, recipient, subject, transport, sent_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (event_id) DO NOTHING",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        n.event_id.to_string(),
                        n.order_id.to_string(),
                        n.to.as_str(),
                        n.subject,
                        transport,
                        at.millis()
                    ])
                })
                .map(|_| ())
                .map_err(store_err)
            })
            .await
    }

    async fn record_sent_many(
        &self,
        sent: &[Notification],
        transport: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if sent.is_empty() {
            return Ok(());
        }
        let (sent, transport) = (sent.to_vec(), transport.to_owned());
        self.db
            .write(move |c| {
                let mut st = c
                    .prepare_cached(
                        "INSERT INTO notifications (event_id, order_id, recipient, subject, transport, sent_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (event_id) DO NOTHING",
                    )
                    .map_err(store_err)?;
                for n in &sent {
                    st.execute(params![
                        n.event_id.to_string(),
                        n.order_id.to_string(),
                        n.to.as_str(),
                        n.subject,
                        transport,
                        at.millis()
                    ])
                    .map_err(store_err)?;
                }
                Ok(())
            })
            .await
    }

    async fn sent_for(
        &self,
        order_id: OrderId,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        self.db
            .read(move |c| {
                c.prepare_cached(
                    "SELECT subject, recipient, transport FROM notifications
                     WHERE order_id = ?1 ORDER BY sent_at, rowid",
                )
                .and_then(|mut st| {
                    st.query_map(params![order_id.to_string()], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect()
                })
                .map_err(store_err)
            })
            .await
    }
}
