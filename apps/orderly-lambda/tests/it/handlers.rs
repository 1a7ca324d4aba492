//! Every Lambda handler, called in-process with the event shapes AWS delivers, on a fresh
//! deployment in the moto emulator (tables, orders queue and its DLQ, event bus, SNS topic,
//! state machine). Effects are asserted where they land: DynamoDB items, SQS messages,
//! Step Functions executions. The test script starts moto and sets
//! `ORDERLY_TEST_AWS_ENDPOINT`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use orderly_aws::aws_sdk_dynamodb::types::AttributeValue;
use orderly_aws::aws_sdk_sqs::types::QueueAttributeName;
use orderly_aws::deployment::Deployment;
use orderly_aws::dynamo::create_tables;
use orderly_aws::eventbridge::{detail_of, ensure_bus, route};
use orderly_aws::{AwsSettings, SdkConfig, aws_sdk_dynamodb, aws_sdk_eventbridge};
use orderly_aws::{aws_sdk_sfn, aws_sdk_sns, aws_sdk_sqs, sdk_config};
use orderly_core::actions::tracking_id;
use orderly_core::events::{EventPattern, routes};
use orderly_core::ports::{
    MAX_RECEIVES, NackOutcome, ORDERS_QUEUE, PaymentState, SeedMode, Transition, TransitionOutcome,
    processing_message,
};
use orderly_core::{DomainEvent, EventType, OrderId, OrderStatus};
use orderly_lambda::{Lambda, Tunables, dlq_replay, events, intake, relay, saga_step};
use serde_json::{Value, json};
use tower::ServiceExt;

static NEXT: AtomicUsize = AtomicUsize::new(0);

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn endpoint() -> String {
    std::env::var(orderly_config::env::harness::TEST_AWS_ENDPOINT).expect(
        "ORDERLY_TEST_AWS_ENDPOINT is not set: run scripts/test.sh, which starts the moto \
         emulator, or start `moto_server` yourself and point this variable at it",
    )
}

async fn config() -> SdkConfig {
    sdk_config(&AwsSettings {
        region: Some(REGION.into()),
        endpoint_url: Some(endpoint()),
    })
    .await
}

/// One deployment of its own, wired as the functions wire it, plus clients to look at it.
struct Env {
    cfg: SdkConfig,
    deployment: Deployment,
    l: Lambda,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    sfn: aws_sdk_sfn::Client,
    eb: aws_sdk_eventbridge::Client,
    /// The queue subscribed to the notification topic.
    notified_url: String,
    orders_url: String,
    orders_arn: String,
    dlq_url: String,
}

/// A queue and its ARN.
async fn sink(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let arn = orderly_aws::sqs::queue_arn(sqs, &url).await.unwrap();
    (url, arn)
}

/// A state machine the tests only start executions of (moto does not run it).
const PASS_ONLY: &str = r#"{
  "Comment": "stand-in for the order saga: the tests only count executions",
  "StartAt": "Noop",
  "States": { "Noop": { "Type": "Pass", "End": true } }
}"#;

impl Env {
    async fn new() -> Env {
        Env::with(Tunables::default()).await
    }

    async fn with(tunables: Tunables) -> Env {
        let cfg = config().await;
        let prefix = format!(
            "lt{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dynamo = aws_sdk_dynamodb::Client::new(&cfg);
        let sqs = aws_sdk_sqs::Client::new(&cfg);
        let sns = aws_sdk_sns::Client::new(&cfg);
        let sfn = aws_sdk_sfn::Client::new(&cfg);
        let eb = aws_sdk_eventbridge::Client::new(&cfg);

        let mut deployment = Deployment::new(prefix.as_str());
        create_tables(&dynamo, &deployment.tables()).await.unwrap();
        orderly_aws::sqs::create_queues(&sqs, &prefix, &[ORDERS_QUEUE], Duration::from_secs(30))
            .await
            .unwrap();
        ensure_bus(&eb, &deployment.event_bus).await.unwrap();

        let topic = sns
            .create_topic()
            .name(format!("{prefix}-customers"))
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_owned();
        let (notified_url, notified_arn) = sink(&sqs, &format!("{prefix}-notified")).await;
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(&notified_arn)
            .send()
            .await
            .unwrap();
        let state_machine = sfn
            .create_state_machine()
            .name(format!("{prefix}-saga"))
            .definition(PASS_ONLY)
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/sfn"))
            .send()
            .await
            .unwrap()
            .state_machine_arn()
            .to_owned();
        deployment.notify_topic_arn = Some(topic);
        deployment.state_machine_arn = Some(state_machine);

        let l = Lambda::new(&cfg, deployment.clone(), tunables)
            .with_event_bus(&cfg)
            .with_sns(&cfg)
            .with_saga_starter(&cfg)
            .with_saga();
        l.app.seed(SeedMode::KeepExisting).await.unwrap();
        let orders_url = sqs
            .get_queue_url()
            .queue_name(orderly_aws::sqs::queue_name(&prefix, ORDERS_QUEUE))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_owned();
        let orders_arn = orderly_aws::sqs::queue_arn(&sqs, &orders_url)
            .await
            .unwrap();
        let dlq_url = sqs
            .get_queue_url()
            .queue_name(orderly_aws::sqs::dlq_name(&prefix, ORDERS_QUEUE))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_owned();
        Env {
            cfg,
            deployment,
            l,
            dynamo,
            sqs,
            sfn,
            eb,
            notified_url,
            orders_url,
            orders_arn,
            dlq_url,
        }
    }

    async fn place(&self, body: Value) -> OrderId {
        let req = orderly_core::input::parse_create_order(&body).unwrap();
        self.l
            .app
            .place_order(req, &body, None)
            .await
            .unwrap()
            .order_id
    }

    async fn order(&self, id: OrderId) -> orderly_core::Order {
        self.l.app.order(id).await.unwrap()
    }

    async fn stock(&self, product: &str) -> u32 {
        self.l
            .app
            .product(&product.parse().unwrap())
            .await
            .unwrap()
            .stock
    }

    /// The detail types of the order's events, oldest first.
    async fn timeline(&self, id: OrderId) -> Vec<EventType> {
        self.l
            .app
            .ports()
            .orders
            .events(id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.detail_type)
            .collect()
    }

    /// The names of the state machine's executions.
    async fn executions(&self) -> Vec<String> {
        let out = self
            .sfn
            .list_executions()
            .state_machine_arn(self.deployment.state_machine_arn.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        let mut names: Vec<String> = out
            .executions()
            .iter()
            .map(|e| e.name().to_owned())
            .collect();
        names.sort();
        names
    }

    /// Runs one saga task as Step Functions invokes it.
    async fn step(&self, id: OrderId, action: &str) -> Result<Value, lambda_runtime::Diagnostic> {
        saga_step::handle(
            &self.l,
            json!({ "orderId": id, "action": action, "retryCount": 0 }),
        )
        .await
    }
}

/// Receives (and deletes) messages until `n` arrived or `within` passed; the bodies.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str, n: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        let r = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
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
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    out
}

/// Exactly `n` messages: waits for them, then checks for a moment that no other follows
/// (moto delivers EventBridge targets and SNS subscriptions during the publishing call).
async fn drain_exactly(sqs: &aws_sdk_sqs::Client, url: &str, n: usize) -> Vec<Value> {
    let mut got = drain(sqs, url, n, Duration::from_secs(5)).await;
    got.extend(drain(sqs, url, 1, Duration::from_millis(500)).await);
    assert_eq!(got.len(), n, "{got:?}");
    got
}

/// Messages visible or in flight on a queue (moto's counts are exact).
async fn queue_size(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attrs = out.attributes().unwrap();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|k| attrs[k].parse::<u64>().unwrap())
    .sum()
}

const ADA_ORDER: &str = r#"{"userId":"user-123","customerEmail":"ada@example.com","items":[{"productId":"PROD-001","qty":2},{"productId":"PROD-003","qty":1}],"totalAmount":109.97}"#;

fn order_of(product: &str, qty: u32) -> Value {
    json!({
        "userId": "user-123",
        "customerEmail": "ada@example.com",
        "items": [ { "productId": product, "qty": qty } ]
    })
}

// ----- api --------------------------------------------------------------------------------

/// An API Gateway REST proxy event (stage `prod`), as the `api` function receives it.
fn apigw_event(
    method: &str,
    resource: &str,
    path: &str,
    path_parameters: Value,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> String {
    let mut h = serde_json::Map::new();
    let mut mh = serde_json::Map::new();
    let host = "k3x9d7q2ab.execute-api.us-east-1.amazonaws.com";
    let base = [
        ("Accept", "application/json"),
        ("Host", host),
        ("User-Agent", "curl/8.5.0"),
        (
            "X-Amzn-Trace-Id",
            "Root=1-67a1b2c3-0123456789abcdef01234567",
        ),
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Port", "443"),
        ("X-Forwarded-Proto", "https"),
    ];
    for (k, v) in base.iter().chain(headers) {
        h.insert((*k).into(), json!(v));
        mh.insert((*k).into(), json!([v]));
    }
    json!({
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": h,
        "multiValueHeaders": mh,
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": path_parameters,
        "stageVariables": null,
        "requestContext": {
            "resourceId": "a1b2c3",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": "Gx1AbHqZIAMFqCg=",
            "requestTime": "23/Nov/2026:10:00:00 +0000",
            "path": format!("/prod{path}"),
            "accountId": ACCOUNT,
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": "k3x9d7q2ab",
            "requestTimeEpoch": 1_795_428_000_000_i64,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {
                "cognitoIdentityPoolId": null,
                "accountId": null,
                "cognitoIdentityId": null,
                "caller": null,
                "sourceIp": "203.0.113.7",
                "principalOrgId": null,
                "accessKey": null,
                "cognitoAuthenticationType": null,
                "cognitoAuthenticationProvider": null,
                "userArn": null,
                "userAgent": "curl/8.5.0",
                "user": null,
                "apiKey": "kP3xExampleApiKey0123456789abcdef",
                "apiKeyId": "u1v2w3x4y5"
            },
            "domainName": host,
            "apiId": "k3x9d7q2ab"
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

/// The `api` function's authorization settings, as `ORDERLY_AUTH_MODE=gateway` gives them.
fn gateway_auth() -> orderly_lambda::GatewayAuth {
    let vars = [(
        orderly_config::env::AUTH_MODE.to_owned(),
        "gateway".to_owned(),
    )]
    .into();
    orderly_lambda::GatewayAuth::from_vars(&vars).unwrap()
}

/// The event as a Cognito user pool authorizer passes it on: the token's claims in the
/// context (REST APIs flatten them to strings) and no API key. `None`: no identity at all.
fn as_cognito_user(event: &str, claims: Option<Value>) -> String {
    let mut v: Value = serde_json::from_str(event).unwrap();
    v["requestContext"]["identity"]["apiKeyId"] = Value::Null;
    v["requestContext"]["identity"]["apiKey"] = Value::Null;
    if let Some(c) = claims {
        v["requestContext"]["authorizer"] = json!({ "claims": c });
    }
    v.to_string()
}

/// Sends an API Gateway event through the `api` function's router: status, headers, body.
async fn call_api(l: &Lambda, event: &str) -> (u16, axum::http::HeaderMap, Value) {
    let req = lambda_http::request::from_str(event).expect("an API Gateway proxy event");
    let resp = orderly_lambda::api_router(l, &gateway_auth())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, headers, body)
}

async fn order_count(env: &Env) -> i32 {
    env.dynamo
        .scan()
        .table_name(&env.deployment.tables().orders)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await
        .unwrap()
        .count()
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn api_trusts_the_authorizer_context_and_confines_customers() {
    let env = Env::new().await;
    let alice = json!({"sub": "alice-sub", "cognito:groups": "customers", "token_use": "id"});
    let bob = json!({"sub": "bob-sub", "token_use": "id"});
    let admin = json!({"sub": "ops-sub", "cognito:groups": "[admin ops]"});
    let no_user = r#"{"items":[{"productId":"PROD-001","qty":1}]}"#;
    let post = apigw_event(
        "POST",
        "/orders",
        "/orders",
        Value::Null,
        &[("Content-Type", "application/json")],
        Some(no_user),
    );

    // No identity in the context: 401, nothing stored.
    let (status, headers, body) = call_api(&env.l, &as_cognito_user(&post, None)).await;
    assert_eq!(status, 401, "{body}");
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(order_count(&env).await, 0);

    // Alice's order is hers: the user id comes from her token's `sub`.
    let (status, _, order) = call_api(&env.l, &as_cognito_user(&post, Some(alice.clone()))).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["userId"], "alice-sub");
    let id = order["orderId"].as_str().unwrap().to_owned();
    let get = apigw_event(
        "GET",
        "/orders/{orderId}",
        &format!("/orders/{id}"),
        json!({"orderId": id}),
        &[],
        None,
    );
    let (status, _, _) = call_api(&env.l, &as_cognito_user(&get, Some(alice))).await;
    assert_eq!(status, 200);
    // Bob cannot see it (404, as if it did not exist); an admin can.
    let (status, _, body) = call_api(&env.l, &as_cognito_user(&get, Some(bob.clone()))).await;
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = call_api(&env.l, &as_cognito_user(&get, Some(admin))).await;
    assert_eq!(status, 200);
    // Bob may not order for Alice, nor reach the admin routes.
    let for_alice = apigw_event(
        "POST",
        "/orders",
        "/orders",
        Value::Null,
        &[("Content-Type", "application/json")],
        Some(r#"{"userId":"alice-sub","items":[{"productId":"PROD-001","qty":1}]}"#),
    );
    let (status, _, _) = call_api(&env.l, &as_cognito_user(&for_alice, Some(bob.clone()))).await;
    assert_eq!(status, 403);
    let dlq = apigw_event("GET", "/admin/dlq", "/admin/dlq", Value::Null, &[], None);
    let (status, _, _) = call_api(&env.l, &as_cognito_user(&dlq, Some(bob))).await;
    assert_eq!(status, 403);
    assert_eq!(order_count(&env).await, 1);
}

#[test]
fn the_api_function_starts_only_behind_an_authorizer() {
    use orderly_lambda::GatewayAuth;
    let vars = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    };
    assert!(GatewayAuth::from_vars(&vars(&[])).is_err());
    assert!(GatewayAuth::from_vars(&vars(&[(orderly_config::env::AUTH_MODE, "none")])).is_err());
    let a = GatewayAuth::from_vars(&vars(&[
        (orderly_config::env::AUTH_MODE, "gateway"),
        (orderly_config::env::JWT_ADMIN_GROUP, "ops"),
    ]))
    .unwrap();
    assert_eq!(a.admin_group, "ops");
    assert_eq!(a.roles_claim, "cognito:groups");
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn api_places_an_order_once_per_idempotency_key() {
    let env = Env::new().await;
    let post = |key: &str, body: &str| {
        apigw_event(
            "POST",
            "/orders",
            "/orders",
            Value::Null,
            &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", key),
            ],
            Some(body),
        )
    };

    let (status, headers, body) = call_api(&env.l, &post("3f9c2a7e-first-order", ADA_ORDER)).await;
    assert_eq!(status, 201, "{body}");
    let id: OrderId = body["orderId"].as_str().unwrap().parse().unwrap();
    assert_eq!(headers["location"], format!("/orders/{id}").as_str());
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(body["totalAmount"], 109.97);
    assert_eq!(body["status"], "PENDING");

    let item = env
        .dynamo
        .get_item()
        .table_name(&env.deployment.tables().orders)
        .key("orderId", AttributeValue::S(id.to_string()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the order item is in the orders table");
    assert_eq!(item["status"], AttributeValue::S("PENDING".into()));
    assert_eq!(item["userId"], AttributeValue::S("user-123".into()));
    assert_eq!(
        item["customerEmail"],
        AttributeValue::S("ada@example.com".into())
    );
    assert_eq!(item["totalMinor"], AttributeValue::N("10997".into()));

    // The same request with the same key: the first answer again, no second order.
    let (status, headers, again) = call_api(&env.l, &post("3f9c2a7e-first-order", ADA_ORDER)).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(again["orderId"], id.to_string());
    assert_eq!(order_count(&env).await, 1);

    // A bad body: 400 naming the field, nothing written.
    let bad = r#"{"userId":"user-123","items":[{"productId":"PROD-001","qty":0}]}"#;
    let (status, _, err) = call_api(&env.l, &post("3f9c2a7e-bad-order", bad)).await;
    assert_eq!(status, 400, "{err}");
    let fields: Vec<&str> = err["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["items[0].qty"], "{err}");
    assert_eq!(order_count(&env).await, 1);

    // The order reads back through a path-parameter route.
    let get = apigw_event(
        "GET",
        "/orders/{orderId}",
        &format!("/orders/{id}"),
        json!({ "orderId": id }),
        &[],
        None,
    );
    let (status, _, got) = call_api(&env.l, &get).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["orderId"], id.to_string());
    assert_eq!(got["status"], "PENDING");

    // A query string survives the stage being taken off the path.
    let mut list: Value = serde_json::from_str(&apigw_event(
        "GET",
        "/orders",
        "/orders",
        Value::Null,
        &[],
        None,
    ))
    .unwrap();
    list["queryStringParameters"] = json!({ "userId": "user-123", "limit": "5" });
    list["multiValueQueryStringParameters"] = json!({ "userId": ["user-123"], "limit": ["5"] });
    let (status, _, page) = call_api(&env.l, &list.to_string()).await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["orderId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.to_string()], "{page}");
}

// ----- relay ------------------------------------------------------------------------------

/// A DynamoDB (Streams) JSON call to the emulator, unsigned but for the scope moto routes by.
async fn dynamo_call(target: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(endpoint())
        .header("X-Amz-Target", target)
        .header("Content-Type", "application/x-amz-json-1.0")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host, Signature=x",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{target}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Every record of a table's stream so far, as a Lambda event source mapping hands them
/// over (with `eventSourceARN`).
async fn stream_records(table: &str) -> Vec<Value> {
    let d = dynamo_call(
        "DynamoDB_20120810.DescribeTable",
        json!({ "TableName": table }),
    )
    .await;
    let stream_arn = d["Table"]["LatestStreamArn"].as_str().unwrap().to_owned();
    let s = dynamo_call(
        "DynamoDBStreams_20120810.DescribeStream",
        json!({ "StreamArn": stream_arn }),
    )
    .await;
    let mut records = Vec::new();
    for shard in s["StreamDescription"]["Shards"].as_array().unwrap() {
        let it = dynamo_call(
            "DynamoDBStreams_20120810.GetShardIterator",
            json!({
                "StreamArn": stream_arn,
                "ShardId": shard["ShardId"],
                "ShardIteratorType": "TRIM_HORIZON"
            }),
        )
        .await;
        let mut iterator = it["ShardIterator"].clone();
        loop {
            let page = dynamo_call(
                "DynamoDBStreams_20120810.GetRecords",
                json!({ "ShardIterator": iterator }),
            )
            .await;
            let got = page["Records"].as_array().unwrap();
            if got.is_empty() {
                break;
            }
            for r in got {
                let mut r = r.clone();
                r["eventSourceARN"] = json!(stream_arn);
                records.push(r);
            }
            iterator = page["NextShardIterator"].clone();
            if iterator.is_null() {
                break;
            }
        }
    }
    assert!(!records.is_empty(), "no stream records for {table}");
    records
}

fn order_ids(messages: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = messages
        .iter()
        .map(|m| m["orderId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn relay_queues_processing_and_publishes_events_from_the_streams() {
    let env = Env::new().await;
    // One order through the saga (its events reach OrderPlaced), one cancelled.
    let placed = env.place(order_of("PROD-002", 1)).await;
    for action in [
        "ReserveInventory",
        "ProcessPayment",
        "ConfirmOrder",
        "EmitOrderPlaced",
    ] {
        env.step(placed, action).await.unwrap();
    }
    let cancelled = env.place(order_of("PROD-008", 3)).await;
    assert_eq!(
        env.l.app.cancel_order(cancelled).await.unwrap().status,
        OrderStatus::Cancelled
    );
    assert_eq!(
        queue_size(&env.sqs, &env.orders_url).await,
        0,
        "only the relay sends"
    );

    // The subscribers' rules on the bus, each delivering into a queue.
    let mut sinks = HashMap::new();
    for r in routes() {
        let (url, arn) = sink(
            &env.sqs,
            &format!("{}-{}-sink", env.deployment.prefix, r.target),
        )
        .await;
        let rule = format!("{}-{}", env.deployment.prefix, r.target);
        route(&env.eb, &env.deployment.event_bus, &rule, &r.pattern, &arn)
            .await
            .unwrap();
        sinks.insert(r.target, url);
    }
    // And one rule for every Orderly event, to see each published exactly once.
    let (audit_url, audit_arn) =
        sink(&env.sqs, &format!("{}-all-sink", env.deployment.prefix)).await;
    let everything = EventPattern {
        source: orderly_core::events::SOURCE,
        detail_types: &[],
    };
    route(
        &env.eb,
        &env.deployment.event_bus,
        &format!("{}-all", env.deployment.prefix),
        &everything,
        &audit_arn,
    )
    .await
    .unwrap();

    // The orders stream: one message per inserted order, one for the cancellation.
    let tables = env.deployment.tables();
    let records = stream_records(&tables.orders).await;
    let out = relay::handle(&env.l, json!({ "Records": records }))
        .await
        .unwrap();
    assert_eq!(out, json!({ "batchItemFailures": [] }));
    let queued = drain_exactly(&env.sqs, &env.orders_url, 3).await;
    let mut expected = vec![
        placed.to_string(),
        cancelled.to_string(),
        cancelled.to_string(),
    ];
    expected.sort();
    assert_eq!(order_ids(&queued), expected, "{queued:?}");
    for m in &queued {
        let id: OrderId = m["orderId"].as_str().unwrap().parse().unwrap();
        let want: Value = serde_json::from_str(&processing_message(id)).unwrap();
        assert_eq!(*m, want, "the body is exactly the processing message");
    }

    // The events stream: each event published once to the bus, routed by the rules.
    let records = stream_records(&tables.events).await;
    let out = relay::handle(&env.l, json!({ "Records": records }))
        .await
        .unwrap();
    assert_eq!(out, json!({ "batchItemFailures": [] }));
    let stored: HashMap<(String, String), String> = {
        let mut m = HashMap::new();
        for id in [placed, cancelled] {
            for e in env.l.app.ports().orders.events(id).await.unwrap() {
                m.insert(
                    (id.to_string(), e.detail_type.to_string()),
                    e.id.to_string(),
                );
            }
        }
        m
    };
    let seen = |got: &[Value]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = got
            .iter()
            .map(|m| {
                assert_eq!(m["source"], "orderly");
                let key = (
                    m["detail"]["orderId"].as_str().unwrap().to_owned(),
                    m["detail-type"].as_str().unwrap().to_owned(),
                );
                assert_eq!(
                    m["detail"]["eventId"].as_str(),
                    stored.get(&key).map(String::as_str),
                    "the event id of the stored event: {m}"
                );
                key
            })
            .collect();
        v.sort();
        v
    };
    let all = drain_exactly(&env.sqs, &audit_url, stored.len()).await;
    let mut every: Vec<(String, String)> = stored.keys().cloned().collect();
    every.sort();
    assert_eq!(seen(&all), every, "every stored event, once");
    assert_eq!(every.len(), 7, "{every:?}");
    let fulfilment = drain_exactly(&env.sqs, &sinks["fulfilment"], 1).await;
    assert_eq!(
        seen(&fulfilment),
        [(placed.to_string(), "OrderPlaced".to_owned())]
    );
    let notifications = drain_exactly(&env.sqs, &sinks["notifications"], 2).await;
    let mut want = vec![
        (placed.to_string(), "OrderPlaced".to_owned()),
        (cancelled.to_string(), "OrderCancelled".to_owned()),
    ];
    want.sort();
    assert_eq!(seen(&notifications), want);

    // A record of a table the relay does not know: reported by its sequence number, and
    // the records after it are left for Lambda's retry.
    let orders_records = stream_records(&tables.orders).await;
    let insert = orders_records
        .iter()
        .find(|r| r["eventName"] == "INSERT")
        .unwrap()
        .clone();
    let mut stranger = insert.clone();
    let seq = "4900000000000000000000000000000000001";
    stranger["dynamodb"]["SequenceNumber"] = json!(seq);
    stranger["eventSourceARN"] = json!(format!(
        "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/someone-elses-table/stream/2026-01-01T00:00:00.000"
    ));
    let out = relay::handle(&env.l, json!({ "Records": [stranger, insert] }))
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({ "batchItemFailures": [ { "itemIdentifier": seq } ] })
    );
    assert!(
        drain(&env.sqs, &env.orders_url, 1, Duration::from_secs(1))
            .await
            .is_empty(),
        "nothing after the failed record is relayed"
    );
}

// ----- intake -----------------------------------------------------------------------------

/// One SQS record as the event source mapping delivers it.
fn sqs_record(env: &Env, message_id: &str, body: &str, receive_count: u32) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": format!("AQEB{}", message_id.replace('-', "")),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": receive_count.to_string(),
            "SentTimestamp": "1795428000000",
            "SenderId": "AROAEXAMPLE:orderly-relay",
            "ApproximateFirstReceiveTimestamp": "1795428000125"
        },
        "messageAttributes": {},
        "md5OfBody": "7b270e59b47ff90a553787216d55d91d",
        "eventSource": "aws:sqs",
        "eventSourceARN": env.orders_arn,
        "awsRegion": REGION
    })
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn intake_starts_one_saga_per_order_and_reports_poison_messages() {
    let env = Env::new().await;
    let pending = env.place(order_of("PROD-002", 1)).await;
    let good = sqs_record(
        &env,
        "059f36b4-87a3-44ab-83d2-661975830a7d",
        &processing_message(pending),
        1,
    );
    let poison = sqs_record(&env, "2e1424d4-f796-459a-8184-9c92662be6da", "{not json", 1);
    let out = intake::handle(&env.l, json!({ "Records": [good, poison] }))
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({ "batchItemFailures": [ { "itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da" } ] })
    );
    assert_eq!(env.executions().await, [pending.to_string()]);
    let execution = env
        .sfn
        .list_executions()
        .state_machine_arn(env.deployment.state_machine_arn.as_deref().unwrap())
        .send()
        .await
        .unwrap()
        .executions()[0]
        .execution_arn()
        .to_owned();
    let described = env
        .sfn
        .describe_execution()
        .execution_arn(execution)
        .send()
        .await
        .unwrap();
    let input: Value = serde_json::from_str(described.input().unwrap()).unwrap();
    assert_eq!(input, json!({ "orderId": pending }));

    // Delivered again (same message, second receive): one execution still.
    let again = sqs_record(
        &env,
        "059f36b4-87a3-44ab-83d2-661975830a7d",
        &processing_message(pending),
        2,
    );
    let out = intake::handle(&env.l, json!({ "Records": [again] }))
        .await
        .unwrap();
    assert_eq!(out, json!({ "batchItemFailures": [] }));
    assert_eq!(env.executions().await, [pending.to_string()]);
    assert_eq!(env.order(pending).await.status, OrderStatus::Pending);

    // A cancelled order whose compensations did not run (the cancelling function died
    // after the status write): the intake releases its stock.
    let cancelled = env.place(order_of("PROD-004", 5)).await;
    env.step(cancelled, "ReserveInventory").await.unwrap();
    assert_eq!(env.stock("PROD-004").await, 145);
    let now = env.l.app.ports().clock.now();
    let t = Transition {
        order_id: cancelled,
        from: OrderStatus::Pending,
        to: OrderStatus::Cancelled,
        at: now,
        event: DomainEvent::order_cancelled(cancelled, now, "cancelled by request"),
        failure_reason: None,
        tracking_id: None,
        enqueue_processing: true,
        step: None,
    };
    assert!(matches!(
        env.l.app.ports().orders.transition(t).await.unwrap(),
        TransitionOutcome::Applied(_)
    ));
    let msg = sqs_record(
        &env,
        "6a1d0b1e-5a55-4f3e-a3a8-0c3d6b1f7e21",
        &processing_message(cancelled),
        1,
    );
    let out = intake::handle(&env.l, json!({ "Records": [msg.clone()] }))
        .await
        .unwrap();
    assert_eq!(out, json!({ "batchItemFailures": [] }));
    assert_eq!(env.stock("PROD-004").await, 150, "stock is back");
    // Delivered twice: released once.
    intake::handle(&env.l, json!({ "Records": [msg] }))
        .await
        .unwrap();
    assert_eq!(env.stock("PROD-004").await, 150);
    let timeline = env.timeline(cancelled).await;
    assert_eq!(
        timeline
            .iter()
            .filter(|t| **t == EventType::InventoryReleased)
            .count(),
        1,
        "{timeline:?}"
    );

    // Finished orders need nothing: no saga, no change.
    let failed = env.place(order_of("PROD-006", 1)).await;
    saga_step::handle(
        &env.l,
        json!({ "orderId": failed, "action": "FailOrder", "reason": "insufficient stock" }),
    )
    .await
    .unwrap();
    let fulfilled = env.place(order_of("PROD-007", 1)).await;
    for action in [
        "ReserveInventory",
        "ProcessPayment",
        "ConfirmOrder",
        "EmitOrderPlaced",
    ] {
        env.step(fulfilled, action).await.unwrap();
    }
    env.l.app.fulfil(fulfilled).await.unwrap();
    let before = (env.order(failed).await, env.order(fulfilled).await);
    assert_eq!(before.0.status, OrderStatus::Failed);
    assert_eq!(before.1.status, OrderStatus::Fulfilled);
    let stock_before = env.stock("PROD-007").await;
    let out = intake::handle(
        &env.l,
        json!({ "Records": [
            sqs_record(&env, "a3c5e7f9-0000-4000-8000-000000000001", &processing_message(failed), 1),
            sqs_record(&env, "a3c5e7f9-0000-4000-8000-000000000002", &processing_message(fulfilled), 1),
        ] }),
    )
    .await
    .unwrap();
    assert_eq!(out, json!({ "batchItemFailures": [] }));
    assert_eq!(env.executions().await, [pending.to_string()]);
    assert_eq!(
        (env.order(failed).await, env.order(fulfilled).await),
        before
    );
    assert_eq!(env.stock("PROD-007").await, stock_before);
}

// ----- saga-step --------------------------------------------------------------------------

fn diagnostic(r: Result<Value, lambda_runtime::Diagnostic>) -> lambda_runtime::Diagnostic {
    r.expect_err("the task fails")
}

fn count(timeline: &[EventType], kind: EventType) -> usize {
    timeline.iter().filter(|t| **t == kind).count()
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn saga_step_runs_each_action_once_and_names_its_failures() {
    let env = Env::new().await;

    // ReserveInventory twice: stock taken once, one event.
    let ok = env.place(order_of("PROD-006", 2)).await;
    for _ in 0..2 {
        let out = env.step(ok, "ReserveInventory").await.unwrap();
        assert_eq!(
            out,
            json!({ "orderId": ok, "action": "ReserveInventory", "outcome": "ok" })
        );
    }
    assert_eq!(env.stock("PROD-006").await, 248);
    assert_eq!(
        count(&env.timeline(ok).await, EventType::InventoryReserved),
        1
    );

    // ProcessPayment: charged, PaymentCompleted.
    env.step(ok, "ProcessPayment").await.unwrap();
    assert!(matches!(
        env.l
            .app
            .saga_ports()
            .expect("saga ports")
            .payments
            .payment(ok)
            .await
            .unwrap(),
        Some(PaymentState::Charged { .. })
    ));
    assert_eq!(
        count(&env.timeline(ok).await, EventType::PaymentCompleted),
        1
    );

    // A decline (60 x PROD-005 = 11,999.40 > 10,000.00) is final.
    let big = env.place(order_of("PROD-005", 60)).await;
    assert_eq!(env.order(big).await.total_amount.to_string(), "11999.40");
    env.step(big, "ReserveInventory").await.unwrap();
    assert_eq!(env.stock("PROD-005").await, 40);
    let d = diagnostic(env.step(big, "ProcessPayment").await);
    assert_eq!(d.error_type, "Orderly.Final");
    assert!(d.error_message.contains("declined"), "{}", d.error_message);

    // The Catch path: ReleaseInventory twice (stock back once), then FailOrder with the
    // caught error as its reason.
    for _ in 0..2 {
        env.step(big, "ReleaseInventory").await.unwrap();
    }
    assert_eq!(env.stock("PROD-005").await, 100);
    let out = saga_step::handle(
        &env.l,
        json!({
            "orderId": big,
            "action": "FailOrder",
            "reason": {
                "Error": "Orderly.Final",
                "Cause": "{\"errorType\":\"Orderly.Final\",\"errorMessage\":\"payment declined\"}"
            }
        }),
    )
    .await
    .unwrap();
    assert_eq!(out["outcome"], "ok");
    let failed = env.order(big).await;
    assert_eq!(failed.status, OrderStatus::Failed);
    assert_eq!(failed.failure_reason.as_deref(), Some("payment declined"));
    assert_eq!(
        env.timeline(big).await,
        [
            EventType::OrderCreated,
            EventType::InventoryReserved,
            EventType::PaymentFailed,
            EventType::InventoryReleased,
            EventType::OrderFailed,
        ]
    );

    // Transient payment failures: retryable until the last attempt, then recorded and final.
    let mut tunables = Tunables::default();
    tunables.payment.transient_failures = 5;
    let flaky = Lambda::new(&env.cfg, env.deployment.clone(), tunables).with_saga();
    let slow = env.place(order_of("PROD-010", 1)).await;
    let pay = |retry: u32| {
        saga_step::handle(
            &flaky,
            json!({ "orderId": slow, "action": "ProcessPayment", "retryCount": retry }),
        )
    };
    let d = diagnostic(pay(0).await);
    assert_eq!(d.error_type, "Orderly.Retryable", "{}", d.error_message);
    assert_eq!(
        env.l
            .app
            .saga_ports()
            .expect("saga ports")
            .payments
            .payment(slow)
            .await
            .unwrap(),
        None
    );
    let d = diagnostic(pay(2).await);
    assert_eq!(d.error_type, "Orderly.Final", "{}", d.error_message);
    assert!(
        d.error_message.contains("3 attempts"),
        "{}",
        d.error_message
    );
    assert!(matches!(
        env.l
            .app
            .saga_ports()
            .expect("saga ports")
            .payments
            .payment(slow)
            .await
            .unwrap(),
        Some(PaymentState::Declined { .. })
    ));
    assert_eq!(
        count(&env.timeline(slow).await, EventType::PaymentFailed),
        1
    );
    // A later attempt (a redelivered task, or the healthy function) stays final.
    let d = diagnostic(pay(0).await);
    assert_eq!(d.error_type, "Orderly.Final");
    let d = diagnostic(env.step(slow, "ProcessPayment").await);
    assert_eq!(d.error_type, "Orderly.Final");
    assert_eq!(
        count(&env.timeline(slow).await, EventType::PaymentFailed),
        1
    );

    // Malformed input is final: retrying it cannot help.
    for input in [
        json!({ "action": "ReserveInventory", "retryCount": 0 }),
        json!({ "orderId": "not-an-id", "action": "ReserveInventory" }),
        json!({ "orderId": ok, "action": "Teleport", "retryCount": 0 }),
        json!({ "orderId": ok }),
    ] {
        let d = diagnostic(saga_step::handle(&env.l, input.clone()).await);
        assert_eq!(
            d.error_type, "Orderly.Final",
            "{input}: {}",
            d.error_message
        );
    }
    let d = diagnostic(saga_step::handle(&env.l, json!({ "action": "ReserveInventory" })).await);
    assert!(d.error_message.contains("orderId"), "{}", d.error_message);
    let d =
        diagnostic(saga_step::handle(&env.l, json!({ "orderId": ok, "action": "Teleport" })).await);
    assert!(d.error_message.contains("Teleport"), "{}", d.error_message);
}

// ----- events -----------------------------------------------------------------------------

/// An EventBridge event as a rule's Lambda target receives it (whole seconds of `time`).
fn eventbridge_event(e: &DomainEvent) -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": e.detail_type.as_str(),
        "source": "orderly",
        "account": ACCOUNT,
        "time": e.time.datetime().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": REGION,
        "resources": [],
        "detail": serde_json::from_str::<Value>(&detail_of(e)).unwrap()
    })
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn events_fulfil_and_notify_once_per_event() {
    let env = Env::new().await;
    let id = env
        .place(json!({
            "userId": "user-123",
            "customerEmail": "ada@example.com",
            "items": [ { "productId": "PROD-009", "qty": 1 } ]
        }))
        .await;
    for action in [
        "ReserveInventory",
        "ProcessPayment",
        "ConfirmOrder",
        "EmitOrderPlaced",
    ] {
        env.step(id, action).await.unwrap();
    }
    assert_eq!(env.order(id).await.status, OrderStatus::Confirmed);
    let placed = env
        .l
        .app
        .ports()
        .orders
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.detail_type == EventType::OrderPlaced)
        .unwrap();
    let event = eventbridge_event(&placed);

    let out = events::handle(&env.l, event.clone()).await.unwrap();
    assert_eq!(out["eventId"], placed.id.to_string());
    assert_eq!(out["audited"], false, "Orderly wrote this event itself");
    assert_eq!(
        out["subscribers"],
        json!(["audit", "fulfilment", "notifications"])
    );
    let fulfilled = env.order(id).await;
    assert_eq!(fulfilled.status, OrderStatus::Fulfilled);
    assert_eq!(fulfilled.tracking_id, Some(tracking_id(id)));

    let mails = drain_exactly(&env.sqs, &env.notified_url, 1).await;
    let m = &mails[0];
    assert_eq!(m["Type"], "Notification");
    assert_eq!(m["Subject"], format!("Order {id} confirmed"));
    assert!(m["Message"].as_str().unwrap().contains("109.99"), "{m}");
    assert_eq!(m["MessageAttributes"]["email"]["Value"], "ada@example.com");
    assert_eq!(m["MessageAttributes"]["orderId"]["Value"], id.to_string());

    // EventBridge delivers it again, bare and through the notifications rule's wrapper
    // (`{"subscriber", "event"}`): nothing changes, nobody is mailed twice.
    let wrapped = json!({ "subscriber": "notifications", "event": event.clone() });
    let out = events::handle(&env.l, wrapped).await.unwrap();
    assert_eq!(out["subscribers"], json!(["notifications"]));
    let out = events::handle(&env.l, event).await.unwrap();
    assert_eq!(out["audited"], false);
    assert_eq!(env.order(id).await, fulfilled);
    assert!(
        drain(&env.sqs, &env.notified_url, 1, Duration::from_secs(1))
            .await
            .is_empty()
    );
    let timeline = env.timeline(id).await;
    assert_eq!(
        count(&timeline, EventType::FulfillmentCompleted),
        1,
        "{timeline:?}"
    );
}

// ----- dlq-replay -------------------------------------------------------------------------

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn dlq_replay_moves_dead_letters_back() {
    let env = Env::new().await;
    let id = env.place(order_of("PROD-001", 1)).await;
    let queue = env.l.app.ports().queue.clone();
    queue
        .send(ORDERS_QUEUE, &processing_message(id), Duration::ZERO)
        .await
        .unwrap();
    for attempt in 1..=MAX_RECEIVES {
        let got = queue
            .receive(
                ORDERS_QUEUE,
                1,
                Duration::from_secs(30),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "delivery {attempt}");
        assert_eq!(got[0].receive_count, attempt);
        let outcome = queue
            .nack(
                ORDERS_QUEUE,
                &got[0].id,
                "saga could not start",
                Duration::ZERO,
            )
            .await
            .unwrap();
        let want = if attempt == MAX_RECEIVES {
            NackOutcome::DeadLettered
        } else {
            NackOutcome::WillRetry
        };
        assert_eq!(outcome, want);
    }
    assert_eq!(queue_size(&env.sqs, &env.orders_url).await, 0);
    let dead = env.l.app.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].last_error.as_deref(), Some("saga could not start"));

    let out = dlq_replay::handle(&env.l, json!({})).await.unwrap();
    assert_eq!(out, json!({ "replayed": [dead[0].id] }));
    assert_eq!(
        queue_size(&env.sqs, &env.dlq_url).await,
        0,
        "the DLQ is empty"
    );
    let back = drain(&env.sqs, &env.orders_url, 1, Duration::from_secs(3)).await;
    assert_eq!(back, [json!({ "orderId": id })]);

    let err = dlq_replay::handle(&env.l, json!({ "ids": 5 }))
        .await
        .unwrap_err();
    assert!(err.contains("ids"), "{err}");
    let out = dlq_replay::handle(&env.l, json!({ "ids": [] }))
        .await
        .unwrap();
    assert_eq!(out, json!({ "replayed": [] }));
}

// ----- what one order costs ------------------------------------------------------------------

/// The emulator's request counts for requests mentioning `marker` (scripts/moto_serial.py).
async fn counts(marker: &str) -> std::collections::BTreeMap<String, u64> {
    reqwest::get(format!("{}/orderly-counts/{marker}", endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The AWS work of one order, counted on the emulator around each function invocation
/// (not around the test's own calls), as the deployed functions would do it.
#[derive(Debug, Default, serde::Serialize)]
struct OrderWork {
    /// `service.Action` -> requests, from the functions.
    requests: std::collections::BTreeMap<String, u64>,
    /// Invocations per function.
    invocations: std::collections::BTreeMap<String, u64>,
    /// Step Functions state transitions (states entered, the terminal one included).
    state_transitions: u64,
    /// Events put on the bus.
    events: u64,
    /// API Gateway requests.
    api_requests: u64,
    final_status: String,
}

impl OrderWork {
    async fn add<T>(
        &mut self,
        marker: &str,
        function: &str,
        call: impl std::future::Future<Output = T>,
    ) -> T {
        let before = counts(marker).await;
        let out = call.await;
        for (k, v) in counts(marker).await {
            let d = v - before.get(&k).copied().unwrap_or(0);
            if d > 0 {
                *self.requests.entry(k).or_default() += d;
            }
        }
        *self.invocations.entry(function.to_owned()).or_default() += 1;
        out
    }
}

async fn one_order_on_aws(body: &str, saga_fails_at: Option<&str>) -> OrderWork {
    let env = Env::new().await;
    let marker = env.deployment.prefix.clone();
    reqwest::Client::new()
        .post(format!("{}/orderly-counts/watch/{marker}", endpoint()))
        .send()
        .await
        .unwrap();
    let mut w = OrderWork::default();
    // The API call.
    let event = apigw_event(
        "POST",
        "/orders",
        "/orders",
        Value::Null,
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "cost-0001"),
        ],
        Some(body),
    );
    let (status, _, created) = w.add(&marker, "api", call_api(&env.l, &event)).await;
    assert_eq!(status, 201, "{created}");
    w.api_requests += 1;
    let id: OrderId = created["orderId"].as_str().unwrap().parse().unwrap();
    // The orders stream to the queue, the queue to the state machine.
    let records = stream_records(&env.deployment.tables().orders).await;
    w.add(
        &marker,
        "relay",
        relay::handle(&env.l, json!({ "Records": records })),
    )
    .await
    .unwrap();
    let msg = sqs_record(
        &env,
        "cost-msg-1",
        &orderly_core::ports::processing_message(id),
        1,
    );
    w.add(
        &marker,
        "intake",
        intake::handle(&env.l, json!({ "Records": [msg] })),
    )
    .await
    .unwrap();
    // The state machine's tasks, as the generated definition runs them.
    let definition = orderly_aws::asl::definition(&env.l.saga);
    let tasks = orderly_aws::asl::visited(&definition, saga_fails_at);
    w.state_transitions = tasks.len() as u64 + 1;
    for action in &tasks {
        let _ = w.add(&marker, "saga-step", env.step(id, action)).await;
    }
    // Every event through the bus to its subscribers, until no new event appears.
    let mut seen = std::collections::HashSet::new();
    loop {
        let fresh: Vec<(Value, DomainEvent)> = stream_records(&env.deployment.tables().events)
            .await
            .into_iter()
            .filter_map(|r| {
                let change = orderly_aws::dynamo::stream::record_from_lambda(&r).ok()?;
                let e = orderly_aws::dynamo::stream::event_of(&change).ok()??;
                seen.insert(e.id).then_some((r, e))
            })
            .collect();
        if fresh.is_empty() {
            break;
        }
        for (record, e) in fresh {
            // One stream batch per event: the events are seconds apart in a real saga.
            w.add(
                &marker,
                "relay",
                relay::handle(&env.l, json!({ "Records": [record] })),
            )
            .await
            .unwrap();
            w.events += 1;
            let mut subs = vec![orderly_core::events::AUDIT];
            subs.extend(
                routes()
                    .into_iter()
                    .filter(|r| r.pattern.matches(&e))
                    .map(|r| r.target),
            );
            for s in subs {
                let input = json!({ "subscriber": s, "event": eventbridge_event(&e) });
                w.add(&marker, "events", events::handle(&env.l, input))
                    .await
                    .unwrap();
            }
        }
    }
    w.final_status = env.order(id).await.status.to_string();
    w
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn the_aws_work_of_one_order_is_counted() {
    let fulfilled = one_order_on_aws(
        r#"{"userId":"cost","customerEmail":"ada@example.com","items":[{"productId":"PROD-001","qty":1},{"productId":"PROD-002","qty":1}]}"#,
        None,
    )
    .await;
    let declined = one_order_on_aws(
        r#"{"userId":"cost","customerEmail":"ada@example.com","items":[{"productId":"PROD-005","qty":51}]}"#,
        Some("ProcessPayment"),
    )
    .await;
    assert_eq!(fulfilled.final_status, "FULFILLED", "{fulfilled:?}");
    assert_eq!(declined.final_status, "FAILED", "{declined:?}");
    for w in [&fulfilled, &declined] {
        assert!(
            w.requests.keys().any(|k| k.starts_with("dynamodb.")),
            "{w:?}"
        );
        assert!(
            w.requests.contains_key("awsstepfunctions.StartExecution"),
            "{w:?}"
        );
        assert!(w.requests.contains_key("awsevents.PutEvents"), "{w:?}");
    }
    let report = json!({ "fulfilled": fulfilled, "declined": declined });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    if let Ok(path) = std::env::var(orderly_config::env::harness::COST_OUT) {
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }
}
