//! The event bus on EventBridge: domain events go to a custom bus, whose rules (one per
//! subscription of `orderly_core::events::routes`) deliver them to their targets.
//!
//! `PutEvents` can accept a call and still refuse some of its entries (`FailedEntryCount`);
//! those entries, and only those, are sent again with backoff.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use orderly_core::events::{EventPattern, SOURCE};
use orderly_core::ports::EventBus;
use orderly_core::{DomainEvent, StoreError};

/// Entries per `PutEvents` call (the API's limit).
const BATCH: usize = 10;
/// Calls per batch before giving up on the entries still refused.
const ATTEMPTS: u32 = 5;

/// Publishes domain events to an EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus: String,
    retry_base: Duration,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus: impl Into<String>) -> EventBridgeBus {
        EventBridgeBus {
            client,
            bus: bus.into(),
            retry_base: Duration::from_millis(100),
        }
    }
}

fn sdk_err<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StoreError {
    match &e {
        SdkError::ServiceError(se) if se.err().code() != Some("ThrottlingException") => {
            StoreError::Backend(format!(
                "{}: {}",
                se.err().code().unwrap_or("Unknown"),
                se.err().message().unwrap_or("")
            ))
        }
        _ => StoreError::Unavailable(format!("EventBridge call failed: {e:?}")),
    }
}

/// The EventBridge `detail` of an event: its detail plus its id, so that targets can
/// process each event once.
pub fn detail_of(e: &DomainEvent) -> String {
    let mut detail = e.detail.clone();
    if let Some(obj) = detail.as_object_mut() {
        obj.insert(
            "eventId".into(),
            serde_json::Value::String(e.id.to_string()),
        );
    }
    detail.to_string()
}

/// The EventBridge event pattern of a subscription.
pub fn pattern_json(p: &EventPattern) -> String {
    let mut v = serde_json::json!({ "source": [p.source] });
    if !p.detail_types.is_empty() {
        let types: Vec<&str> = p.detail_types.iter().map(|t| t.as_str()).collect();
        v["detail-type"] = serde_json::json!(types);
    }
    v.to_string()
}

/// Sends `entries` through `put` until every one is accepted: `put` answers, per entry,
/// `None` (accepted) or the error code; refused entries are sent again, alone, with
/// exponential backoff, at most [`ATTEMPTS`] calls in all.
pub async fn put_all<E, F, Fut>(
    mut entries: Vec<E>,
    base: Duration,
    mut put: F,
) -> Result<(), StoreError>
where
    E: Clone,
    F: FnMut(Vec<E>) -> Fut,
    Fut: Future<Output = Result<Vec<Option<String>>, StoreError>>,
{
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if entries.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            tokio::time::sleep(base * 2u32.pow(attempt - 1)).await;
        }
        let results = put(entries.clone()).await?;
        let mut refused = Vec::new();
        for (entry, result) in entries.into_iter().zip(results) {
            if let Some(code) = result {
                last = code;
                refused.push(entry);
            }
        }
        if !refused.is_empty() {
            tracing::warn!(refused = refused.len(), code = %last, "EventBridge refused entries; retrying them");
        }
        entries = refused;
    }
    if entries.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Unavailable(format!(
            "EventBridge refused {} events after {ATTEMPTS} attempts (last error {last})",
            entries.len()
        )))
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), StoreError> {
        for chunk in events.chunks(BATCH) {
            let entries: Vec<PutEventsRequestEntry> = chunk
                .iter()
                .map(|e| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(SOURCE)
                        .detail_type(e.detail_type.as_str())
                        .detail(detail_of(e))
                        .time(aws_sdk_eventbridge::primitives::DateTime::from_millis(
                            e.time.millis(),
                        ))
                        .build()
                })
                .collect();
            put_all(entries, self.retry_base, |batch| async move {
                let out = self
                    .client
                    .put_events()
                    .set_entries(Some(batch))
                    .send()
                    .await
                    .map_err(sdk_err)?;
                Ok(out
                    .entries()
                    .iter()
                    .map(|r| r.error_code().map(str::to_owned))
                    .collect())
            })
            .await?;
        }
        Ok(())
    }
}

/// Creates the bus if it is missing (for emulators and first runs).
pub async fn ensure_bus(client: &Client, bus: &str) -> Result<(), StoreError> {
    match client.create_event_bus().name(bus).send().await {
        Ok(_) => Ok(()),
        Err(e) if matches!(&e, SdkError::ServiceError(se) if se.err().code() == Some("ResourceAlreadyExistsException")) => {
            Ok(())
        }
        Err(e) => Err(sdk_err(e)),
    }
}

/// Routes the events matching `pattern` on `bus` to the target `target_arn`.
pub async fn route(
    client: &Client,
    bus: &str,
    rule: &str,
    pattern: &EventPattern,
    target_arn: &str,
) -> Result<(), StoreError> {
    client
        .put_rule()
        .name(rule)
        .event_bus_name(bus)
        .event_pattern(pattern_json(pattern))
        .send()
        .await
        .map_err(sdk_err)?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id(format!("{rule}-target"))
        .arn(target_arn)
        .build()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    client
        .put_targets()
        .rule(rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(sdk_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn only_refused_entries_are_sent_again() {
        let calls: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let seen = calls.clone();
        put_all(
            vec![1, 2, 3, 4],
            Duration::from_millis(1),
            move |batch: Vec<u32>| {
                let seen = seen.clone();
                async move {
                    let n = {
                        let mut c = seen.lock().unwrap();
                        c.push(batch.clone());
                        c.len()
                    };
                    // First call refuses 2 and 4; then everything is accepted.
                    Ok(batch
                        .iter()
                        .map(|x| (n == 1 && x % 2 == 0).then(|| "ThrottlingException".to_owned()))
                        .collect())
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(*calls.lock().unwrap(), vec![vec![1, 2, 3, 4], vec![2, 4]]);
    }

    #[tokio::test]
    async fn gives_up_after_the_attempts() {
        let out = put_all(
            vec![7],
            Duration::from_millis(1),
            |b: Vec<u32>| async move {
                Ok(b.iter()
                    .map(|_| Some("InternalFailure".to_owned()))
                    .collect())
            },
        )
        .await;
        assert!(matches!(out, Err(StoreError::Unavailable(m)) if m.contains("InternalFailure")));
    }

    #[test]
    fn patterns_follow_the_routes() {
        let routes = orderly_core::events::routes();
        assert_eq!(
            pattern_json(&routes[0].pattern),
            r#"{"detail-type":["OrderPlaced"],"source":["orderly"]}"#
        );
    }
}

/// Rebuilds the domain event from an EventBridge event as a rule's target receives it
/// (`{"id", "source", "detail-type", "time", "detail": {..., "eventId"}}`): the inverse of
/// [`EventBridgeBus::publish`]. EventBridge keeps whole seconds of `time`.
pub fn event_from_target(v: &serde_json::Value) -> Result<DomainEvent, String> {
    DomainEvent::from_value(v.clone()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod target_tests {
    use super::*;

    #[test]
    fn a_published_event_comes_back_from_its_target() {
        let order_id = orderly_core::OrderId::generate(chrono::Utc::now());
        let at = orderly_core::Timestamp::parse_rfc3339("2026-11-23T10:00:00Z").unwrap();
        let e = DomainEvent::new(
            order_id,
            orderly_core::EventType::OrderPlaced,
            at,
            serde_json::json!({ "totalAmount": 12.5 }),
        );
        let delivered = serde_json::json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "OrderPlaced",
            "source": "orderly",
            "account": "123456789012",
            "time": "2026-11-23T10:00:00Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": serde_json::from_str::<serde_json::Value>(&detail_of(&e)).unwrap(),
        });
        let back = event_from_target(&delivered).unwrap();
        assert_eq!(back, e);
        let mut wrong = delivered.clone();
        wrong["source"] = "other".into();
        assert!(event_from_target(&wrong).is_err());
        let mut no_id = delivered;
        no_id["detail"].as_object_mut().unwrap().remove("eventId");
        assert!(event_from_target(&no_id).unwrap_err().contains("eventId"));
    }
}
