//! Webhook fan-out on the in-memory adapters.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use orderly_core::model::Timestamp;
use orderly_core::webhooks::*;
use orderly_core::{DomainEvent, Error, EventType, Orderly};
use uuid::Uuid;

#[tokio::test]
async fn fan_out_schedules_one_delivery_per_matching_active_endpoint_and_event() {
    use orderly_core::ports::{Queue, SystemClock};
    use orderly_testkit::memory::MemoryStore;
    let store = Arc::new(MemoryStore::new());
    let ports = orderly_core::Ports::from_store(store.clone(), Arc::new(SystemClock));
    let plain = Orderly::new(ports, orderly_core::Settings::default());
    let order = orderly_core::OrderId::generate(chrono::Utc::now());
    let at = Timestamp::from_millis(1_767_225_600_000).unwrap();
    let placed = DomainEvent::new(order, EventType::OrderPlaced, at, serde_json::json!({}));
    let created = DomainEvent::new(order, EventType::OrderCreated, at, serde_json::json!({}));
    assert_eq!(plain.fan_out_webhook(&placed).await.unwrap(), 0);
    assert!(plain.webhook_admin().is_none(), "no store, no webhooks");

    let app = plain.with_webhooks(store.clone());
    let admin = app.webhook_admin().unwrap();
    let new = |events: &[&str]| NewWebhook {
        url: "https://h.example.com/in".into(),
        events: EventFilter::parse(&names(events), "events").unwrap(),
        description: None,
    };
    let all = admin.create(new(&["*"])).await.unwrap();
    let placed_only = admin.create(new(&["OrderPlaced"])).await.unwrap();
    let disabled = admin.create(new(&["*"])).await.unwrap();
    admin.set_active(disabled.endpoint.id, false).await.unwrap();
    assert_ne!(all.secret, placed_only.secret);

    assert_eq!(app.fan_out_webhook(&placed).await.unwrap(), 2);
    assert_eq!(
        app.fan_out_webhook(&placed).await.unwrap(),
        0,
        "a repeated event schedules nothing new"
    );
    assert_eq!(app.fan_out_webhook(&created).await.unwrap(), 1);
    let msgs = store
        .receive(
            DELIVERY_QUEUE,
            10,
            std::time::Duration::from_secs(30),
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    let mut got: Vec<(Uuid, Uuid, u32)> = msgs
        .iter()
        .map(|m| {
            let d = DeliveryMessage::parse(&m.body).unwrap();
            let id = d.event["id"].as_str().unwrap().parse::<Uuid>().unwrap();
            assert_eq!(d.delivery_id, delivery_id(d.endpoint_id, id));
            (d.endpoint_id, id, d.attempt)
        })
        .collect();
    got.sort();
    let mut want = vec![
        (all.endpoint.id, placed.id, 1),
        (placed_only.endpoint.id, placed.id, 1),
        (all.endpoint.id, created.id, 1),
    ];
    want.sort();
    assert_eq!(got, want);
    let body = &DeliveryMessage::parse(&msgs[0].body).unwrap().event;
    assert_eq!(body["source"], "orderly");
    assert!(
        body["detail"]["orderId"].is_string(),
        "the timeline's envelope"
    );

    assert!(matches!(
        admin.deliveries(Uuid::new_v4(), 10).await,
        Err(Error::NotFound {
            what: "webhook",
            ..
        })
    ));
    admin.delete(all.endpoint.id).await.unwrap();
    assert!(matches!(
        admin.delete(all.endpoint.id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(admin.list().await.unwrap().len(), 2);
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}
