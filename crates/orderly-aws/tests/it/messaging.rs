//! EventBridge and SNS adapters on the moto emulator, each delivering into an SQS queue
//! that the test reads back.

#![cfg(all(feature = "eventbridge", feature = "sns"))]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use orderly_aws::eventbridge::{EventBridgeBus, ensure_bus, route};
use orderly_aws::sns::SnsNotifier;
use orderly_aws::{AwsSettings, sdk_config};
use orderly_core::events::{FULFILMENT, routes};
use orderly_core::ports::{EventBus, Notification, Notifier};
use orderly_core::{DomainEvent, EventType, OrderId, Timestamp};
use serde_json::Value;

static NEXT: AtomicUsize = AtomicUsize::new(0);

async fn config() -> aws_config::SdkConfig {
    let endpoint = std::env::var(orderly_config::env::harness::TEST_AWS_ENDPOINT).expect(
        "ORDERLY_TEST_AWS_ENDPOINT is not set: run scripts/test.sh, which starts the moto emulator",
    );
    sdk_config(&AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint),
    })
    .await
}

fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A queue and its ARN.
async fn queue(sqs: &aws_sdk_sqs::Client) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(unique("sink"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn =
        attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    (url, arn)
}

/// Reads messages until `n` arrived or `within` passed.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str, n: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        let r = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        for m in r.messages() {
            out.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if r.messages().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    out
}

fn event(id: OrderId, kind: EventType) -> DomainEvent {
    DomainEvent::new(
        id,
        kind,
        Timestamp::from_millis(1_767_225_600_000).unwrap(),
        serde_json::json!({ "totalAmount": 59.98 }),
    )
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn eventbridge_routes_matching_events_to_their_target() {
    let cfg = config().await;
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let (url, arn) = queue(&sqs).await;
    let bus = unique("orderly-bus");
    ensure_bus(&eb, &bus).await.unwrap();
    ensure_bus(&eb, &bus).await.unwrap(); // idempotent
    let fulfilment = routes()
        .into_iter()
        .find(|r| r.target == FULFILMENT)
        .unwrap();
    route(&eb, &bus, &unique("fulfilment"), &fulfilment.pattern, &arn)
        .await
        .unwrap();

    let (a, b) = (
        OrderId::generate(chrono::Utc::now()),
        OrderId::generate(chrono::Utc::now()),
    );
    let events: Vec<DomainEvent> = vec![
        event(a, EventType::OrderCreated),
        event(a, EventType::OrderPlaced),
        event(b, EventType::InventoryReserved),
        event(b, EventType::OrderPlaced),
    ];
    EventBridgeBus::new(eb, &bus)
        .publish(&events)
        .await
        .unwrap();

    let got = drain(&sqs, &url, 2, Duration::from_secs(10)).await;
    assert_eq!(
        got.len(),
        2,
        "only OrderPlaced matches the fulfilment rule: {got:?}"
    );
    let mut orders: Vec<String> = got
        .iter()
        .map(|m| {
            assert_eq!(m["source"], "orderly");
            assert_eq!(m["detail-type"], "OrderPlaced");
            assert_eq!(m["detail"]["totalAmount"], 59.98);
            let oid: OrderId = m["detail"]["orderId"].as_str().unwrap().parse().unwrap();
            assert_eq!(
                m["detail"]["eventId"],
                DomainEvent::id_for(oid, EventType::OrderPlaced).to_string(),
                "targets get the event id to deduplicate with"
            );
            oid.to_string()
        })
        .collect();
    orders.sort();
    let mut expected = vec![a.to_string(), b.to_string()];
    expected.sort();
    assert_eq!(orders, expected);
    // Nothing else arrives.
    assert!(
        drain(&sqs, &url, 1, Duration::from_secs(1))
            .await
            .is_empty()
    );
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn sns_notifier_publishes_the_mail_with_its_recipient() {
    let cfg = config().await;
    let sns = aws_sdk_sns::Client::new(&cfg);
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let (url, arn) = queue(&sqs).await;
    let topic = sns
        .create_topic()
        .name(unique("customers"))
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&arn)
        .send()
        .await
        .unwrap();
    let id = OrderId::generate(chrono::Utc::now());
    let n = Notification {
        event_id: DomainEvent::id_for(id, EventType::OrderPlaced),
        order_id: id,
        to: "ada@example.com".parse().unwrap(),
        subject: format!("Order {id} confirmed"),
        body: format!("Thank you for your order {id}."),
    };
    let notifier = SnsNotifier::new(sns, &topic);
    assert_eq!(notifier.transport(), "sns");
    notifier.send(&n).await.unwrap();
    let got = drain(&sqs, &url, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m["Type"], "Notification");
    assert_eq!(m["Subject"], format!("Order {id} confirmed"));
    assert!(m["Message"].as_str().unwrap().contains(&id.to_string()));
    assert_eq!(m["MessageAttributes"]["email"]["Value"], "ada@example.com");
    assert_eq!(m["MessageAttributes"]["orderId"]["Value"], id.to_string());
}
