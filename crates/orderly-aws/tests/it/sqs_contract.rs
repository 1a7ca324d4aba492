//! The SQS adapter of the queue port on the moto emulator: the real-time queue contract,
//! the queues `create_queues` makes, and the redrive safety net. The test script starts
//! moto and sets `ORDERLY_TEST_AWS_ENDPOINT`. Every test uses its own queue prefix.

#![cfg(feature = "sqs")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use orderly_aws::sqs::{SqsQueue, create_queues, dlq_name, queue_arn, queue_name};
use orderly_aws::{AwsSettings, sdk_config};
use orderly_core::ports::{MAX_RECEIVES, NackOutcome, Queue};
use orderly_testkit::processing::{REALTIME_QUEUES, RealtimeOptions, queue_contract_realtime_with};

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn endpoint() -> String {
    std::env::var(orderly_config::env::harness::TEST_AWS_ENDPOINT).expect(
        "ORDERLY_TEST_AWS_ENDPOINT is not set: run scripts/test.sh, which starts the moto \
         emulator, or start `moto_server` yourself and point this variable at it",
    )
}

async fn client() -> Client {
    let settings = AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint()),
    };
    Client::new(&sdk_config(&settings).await)
}

fn prefix() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("t{}-{n}", std::process::id())
}

/// An adapter on freshly created queues with a unique prefix, and the prefix.
async fn fresh_with_prefix() -> (SqsQueue, String) {
    let client = client().await;
    let prefix = prefix();
    create_queues(&client, &prefix, REALTIME_QUEUES, Duration::from_secs(30))
        .await
        .expect("create queues");
    (
        SqsQueue::new(client, prefix.clone(), REALTIME_QUEUES),
        prefix,
    )
}

async fn fresh() -> SqsQueue {
    fresh_with_prefix().await.0
}

async fn url(client: &Client, name: &str) -> String {
    client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .expect("queue url")
        .queue_url()
        .expect("url")
        .to_owned()
}

async fn attribute(client: &Client, url: &str, name: QueueAttributeName) -> String {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .expect("attributes")
        .attributes()
        .and_then(|a| a.get(&name))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn sqs_queue_realtime() {
    // moto accepts every receipt handle a message ever had, so a stale ack deletes the
    // newer delivery there; real SQS honours only the latest receipt handle.
    let emulated = !endpoint().contains("amazonaws.com");
    let opts = RealtimeOptions {
        stale_ack_may_delete: emulated,
    };
    queue_contract_realtime_with(opts, fresh).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn create_queues_sets_dlq_retention_redrive_and_is_idempotent() {
    let client = client().await;
    let prefix = prefix();
    create_queues(&client, &prefix, &["orders"], Duration::from_secs(30))
        .await
        .expect("create");
    // Again with another visibility: no error, the new value wins.
    create_queues(&client, &prefix, &["orders"], Duration::from_millis(44_500))
        .await
        .expect("create again");
    let main = url(&client, &queue_name(&prefix, "orders")).await;
    let dlq = url(&client, &dlq_name(&prefix, "orders")).await;
    assert!(main.ends_with(&format!("/{prefix}-orders")), "{main}");
    assert!(dlq.ends_with(&format!("/{prefix}-orders-dlq")), "{dlq}");
    assert_eq!(
        attribute(&client, &dlq, QueueAttributeName::MessageRetentionPeriod).await,
        "1209600"
    );
    assert_eq!(
        attribute(&client, &main, QueueAttributeName::VisibilityTimeout).await,
        "45",
        "rounded up to whole seconds"
    );
    assert_eq!(
        attribute(
            &client,
            &main,
            QueueAttributeName::ReceiveMessageWaitTimeSeconds
        )
        .await,
        "10"
    );
    let redrive: serde_json::Value =
        serde_json::from_str(&attribute(&client, &main, QueueAttributeName::RedrivePolicy).await)
            .expect("redrive policy JSON");
    let dlq_arn = queue_arn(&client, &dlq).await.expect("arn");
    assert!(
        dlq_arn.ends_with(&format!(":{prefix}-orders-dlq")),
        "{dlq_arn}"
    );
    assert_eq!(redrive["deadLetterTargetArn"], dlq_arn.as_str());
    assert_eq!(
        redrive["maxReceiveCount"].as_u64(),
        Some(u64::from(MAX_RECEIVES))
    );
    let q = SqsQueue::new(client.clone(), prefix.clone(), &["orders"]);
    assert_eq!(q.queue_url("orders").await.expect("url"), main);
    assert_eq!(q.dlq_url("orders").await.expect("url"), dlq);
    assert_eq!(
        q.queue_arn("orders").await.expect("arn"),
        queue_arn(&client, &main).await.expect("arn")
    );
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn sqs_redrive_moves_a_message_after_three_receives() {
    // Plain SDK calls: the safety net is SQS's own, whatever the adapter does.
    let client = client().await;
    let prefix = prefix();
    create_queues(&client, &prefix, &["orders"], Duration::from_secs(1))
        .await
        .expect("create");
    let main = url(&client, &queue_name(&prefix, "orders")).await;
    client
        .send_message()
        .queue_url(&main)
        .message_body("timed out")
        .send()
        .await
        .expect("send");
    for n in 1..=MAX_RECEIVES {
        let got = client
            .receive_message()
            .queue_url(&main)
            .visibility_timeout(1)
            .wait_time_seconds(5)
            .send()
            .await
            .expect("receive");
        assert_eq!(got.messages().len(), 1, "delivery {n}");
    }
    tokio::time::sleep(Duration::from_millis(1400)).await;
    let fourth = client
        .receive_message()
        .queue_url(&main)
        .wait_time_seconds(0)
        .send()
        .await
        .expect("receive");
    assert!(fourth.messages().is_empty(), "never delivered a 4th time");
    // The adapter lists it: no attributes, so its queue is the DLQ's owner and no error.
    let q = SqsQueue::new(client, prefix, &["orders"]);
    assert_eq!(q.dead_letter_count().await.expect("count"), 1);
    let dead = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].queue.as_str(), dead[0].body.as_str()),
        ("orders", "timed out")
    );
    assert_eq!(dead[0].receive_count, MAX_RECEIVES);
    assert_eq!(dead[0].last_error, None);
    assert_eq!(
        q.dead_letters(10).await.expect("again")[0].id,
        dead[0].id,
        "listing leaves dead letters in place"
    );
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn without_redrive_the_adapter_dead_letters_over_received_messages() {
    let client = client().await;
    let prefix = prefix();
    for name in [queue_name(&prefix, "orders"), dlq_name(&prefix, "orders")] {
        client
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create");
    }
    let q = SqsQueue::new(client, prefix, &["orders"]);
    q.send("orders", "stuck", Duration::ZERO)
        .await
        .expect("send");
    for n in 1..=MAX_RECEIVES {
        let m = q
            .receive("orders", 1, Duration::from_secs(1), Duration::from_secs(5))
            .await
            .expect("receive");
        assert_eq!(m.len(), 1, "delivery {n}");
    }
    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert!(
        q.receive("orders", 10, Duration::from_secs(1), Duration::ZERO)
            .await
            .expect("receive")
            .is_empty(),
        "a 4th receive is not handed out"
    );
    let dead = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "stuck");
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("visibility timeout expired on the last allowed receive")
    );
    assert_eq!(q.depth("orders").await.expect("depth").waiting, 0);
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn a_last_nack_through_another_instance_is_left_to_the_redrive() {
    let (first, prefix) = fresh_with_prefix().await;
    first
        .send("q", "elsewhere", Duration::ZERO)
        .await
        .expect("send");
    let mut last = None;
    for _ in 1..=MAX_RECEIVES {
        let m = first
            .receive("q", 1, Duration::from_secs(30), Duration::from_secs(5))
            .await
            .expect("receive");
        assert_eq!(m.len(), 1);
        if m[0].receive_count < MAX_RECEIVES {
            first
                .nack("q", &m[0].id, "again", Duration::ZERO)
                .await
                .expect("nack");
        }
        last = Some(m[0].clone());
    }
    let last = last.expect("last delivery");
    // Another process (here: a fresh adapter on the same queues) nacks the last delivery
    // without knowing its body.
    let other = SqsQueue::new(client().await, prefix, REALTIME_QUEUES);
    assert_eq!(
        other
            .nack("q", &last.id, "boom", Duration::ZERO)
            .await
            .expect("nack"),
        NackOutcome::DeadLettered
    );
    assert!(
        first
            .receive("q", 10, Duration::from_secs(30), Duration::ZERO)
            .await
            .expect("receive")
            .is_empty(),
        "never delivered a 4th time"
    );
    let dead = first.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "elsewhere");
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn a_long_poll_outlasts_the_sdk_operation_timeout() {
    // sdk_config sets a 10 s operation timeout; a 12 s long poll must not trip it.
    let q = fresh().await;
    let start = Instant::now();
    let got = q
        .receive("q", 10, Duration::from_secs(2), Duration::from_secs(12))
        .await
        .expect("a long poll is not a timeout");
    assert!(got.is_empty());
    assert!(
        start.elapsed() >= Duration::from_secs(11),
        "{:?}",
        start.elapsed()
    );
}
