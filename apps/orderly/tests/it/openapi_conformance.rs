//! The running server answers as openapi.json says: for a walk over every operation and
//! the answers it documents (successes, validation errors, unknown ids, conflicts, limits,
//! missing or insufficient credentials), each status is documented for its operation, each
//! JSON body validates against the documented schema and the documented headers are there.
//! (scripts/fuzz-api.sh does the same with generated requests; this runs in every test run.)

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{TestApp, spawn_api_only};
use orderly_auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

fn document() -> Value {
    serde_json::from_str(&orderly_http::openapi::openapi_json()).unwrap()
}

/// The documented response of `method path_template` for `status` (`$ref`s resolved).
fn documented(doc: &Value, method: &Method, template: &str, status: u16) -> Value {
    let op = &doc["paths"][template][method.as_str().to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {template} is not documented");
    let r = &op["responses"][status.to_string()];
    assert!(
        r.is_object(),
        "{method} {template} answered {status}, which is not documented"
    );
    match r["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            doc["components"]["responses"][name].clone()
        }
        None => r.clone(),
    }
}

struct Checked {
    status: u16,
    body: Value,
}

async fn check(
    doc: &Value,
    req: reqwest::RequestBuilder,
    method: Method,
    template: &str,
) -> Checked {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let spec = documented(doc, &method, template, status);
    for (name, _) in spec["headers"].as_object().into_iter().flatten() {
        // `Idempotent-Replayed` is there only on a replay; every other documented header
        // is always sent with its status.
        if name != "Idempotent-Replayed" {
            assert!(
                headers.contains_key(name.as_str()),
                "{method} {template} {status}: no {name} header"
            );
        }
    }
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let documented_types: Vec<&String> = spec["content"]
        .as_object()
        .map(|c| c.keys().collect())
        .unwrap_or_default();
    assert!(
        documented_types
            .iter()
            .any(|t| content_type.starts_with(t.as_str())),
        "{method} {template} {status}: content type {content_type:?}, documented {documented_types:?}"
    );
    let mut body = Value::Null;
    if content_type.starts_with("application/json") {
        body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {template} {status}: not JSON ({e}): {text}"));
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": doc["components"],
            "allOf": [spec["content"]["application/json"]["schema"]],
        });
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: {body}\n{}",
            errors.join("\n")
        );
    }
    Checked { status, body }
}

async fn customer_key(app: &TestApp, user: &str) -> String {
    let cfg = orderly::ServeConfig::new(app.data_dir.clone());
    let opened = orderly::open_backend(&cfg).await.unwrap();
    let k = opened
        .keys
        .create(Role::Customer, Some(user.parse().unwrap()), None)
        .await
        .unwrap();
    opened.close().await.unwrap();
    k.key
}

#[tokio::test]
async fn every_answer_of_the_server_is_the_documented_one() {
    let doc = document();
    let app = spawn_api_only().await;
    let c = &app.client;
    let anonymous = reqwest::Client::new();
    let customer = common::client_with_key(&customer_key(&app, "user-123").await);
    let (get, post, put, delete) = (Method::GET, Method::POST, Method::PUT, Method::DELETE);
    let unknown = "0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c";

    let order = json!({"userId": "user-123", "customerEmail": "ada@example.com",
        "items": [{"productId": "PROD-001", "qty": 2}, {"productId": "PROD-003", "qty": 1}],
        "totalAmount": 109.97});
    let created = check(
        &doc,
        c.post(app.url("/orders"))
            .header("idempotency-key", "k-1")
            .json(&order),
        post.clone(),
        "/orders",
    )
    .await;
    assert_eq!(created.status, 201);
    let id = created.body["orderId"].as_str().unwrap().to_owned();
    let replayed = c
        .post(app.url("/orders"))
        .header("idempotency-key", "k-1")
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    let cases: Vec<(reqwest::RequestBuilder, Method, &str, u16)> = vec![
        // POST /orders
        (
            c.post(app.url("/orders")).json(&json!({"items": []})),
            post.clone(),
            "/orders",
            400,
        ),
        (
            c.post(app.url("/orders"))
                .header("content-type", "text/plain")
                .body("hello"),
            post.clone(),
            "/orders",
            415,
        ),
        (
            c.post(app.url("/orders"))
                .header("content-type", "application/json")
                .body(format!("{{\"userId\": \"{}\"}}", "x".repeat(70_000))),
            post.clone(),
            "/orders",
            413,
        ),
        (
            c.post(app.url("/orders"))
                .json(&json!({"items": [{"productId": "PROD-999", "qty": 1}]})),
            post.clone(),
            "/orders",
            422,
        ),
        (
            c.post(app.url("/orders"))
                .header("idempotency-key", "k-1")
                .json(&json!({"items": [{"productId": "PROD-002", "qty": 1}]})),
            post.clone(),
            "/orders",
            422,
        ),
        (
            anonymous.post(app.url("/orders")).json(&order),
            post.clone(),
            "/orders",
            401,
        ),
        (
            customer.post(app.url("/orders")).json(
                &json!({"userId": "someone-else", "items": [{"productId": "PROD-001", "qty": 1}]}),
            ),
            post.clone(),
            "/orders",
            403,
        ),
        (
            customer
                .post(app.url("/orders"))
                .json(&json!({"items": [{"productId": "PROD-001", "qty": 1}]})),
            post.clone(),
            "/orders",
            201,
        ),
        // GET /orders
        (
            c.get(app.url("/orders?limit=1")),
            get.clone(),
            "/orders",
            200,
        ),
        (
            c.get(app.url("/orders?limit=0")),
            get.clone(),
            "/orders",
            400,
        ),
        (
            c.get(app.url("/orders?cursor=bm90LWEtY3Vyc29y")),
            get.clone(),
            "/orders",
            400,
        ),
        (
            customer.get(app.url("/orders?userId=someone-else")),
            get.clone(),
            "/orders",
            403,
        ),
        (
            anonymous.get(app.url("/orders")),
            get.clone(),
            "/orders",
            401,
        ),
        // GET and DELETE /orders/{orderId}, its events
        (
            c.get(app.url(&format!("/orders/{id}"))),
            get.clone(),
            "/orders/{orderId}",
            200,
        ),
        (
            c.get(app.url("/orders/not-a-uuid")),
            get.clone(),
            "/orders/{orderId}",
            400,
        ),
        (
            c.get(app.url(&format!("/orders/{unknown}"))),
            get.clone(),
            "/orders/{orderId}",
            404,
        ),
        (
            c.get(app.url(&format!("/orders/{id}/events"))),
            get.clone(),
            "/orders/{orderId}/events",
            200,
        ),
        (
            c.get(app.url(&format!("/orders/{unknown}/events"))),
            get.clone(),
            "/orders/{orderId}/events",
            404,
        ),
        (
            c.delete(app.url(&format!("/orders/{id}"))),
            delete.clone(),
            "/orders/{orderId}",
            200,
        ),
        (
            c.delete(app.url(&format!("/orders/{unknown}"))),
            delete.clone(),
            "/orders/{orderId}",
            404,
        ),
        // Products
        (c.get(app.url("/products")), get.clone(), "/products", 200),
        (
            customer.get(app.url("/products/PROD-001")),
            get.clone(),
            "/products/{productId}",
            200,
        ),
        (
            c.get(app.url("/products/PROD-999")),
            get.clone(),
            "/products/{productId}",
            404,
        ),
        (
            c.get(app.url("/products/bad%20id")),
            get.clone(),
            "/products/{productId}",
            400,
        ),
        (
            c.put(app.url("/products/NEW-1")).json(
                &json!({"name": "Cable", "price": 9.99, "stock": 5, "category": "Electronics"}),
            ),
            put.clone(),
            "/products/{productId}",
            201,
        ),
        (
            c.put(app.url("/products/NEW-1")).json(
                &json!({"name": "Cable", "price": 8.99, "stock": 6, "category": "Electronics"}),
            ),
            put.clone(),
            "/products/{productId}",
            200,
        ),
        (
            c.put(app.url("/products/NEW-1"))
                .json(&json!({"name": "", "price": 0})),
            put.clone(),
            "/products/{productId}",
            400,
        ),
        (
            customer.put(app.url("/products/NEW-1")).json(
                &json!({"name": "Cable", "price": 9.99, "stock": 5, "category": "Electronics"}),
            ),
            put.clone(),
            "/products/{productId}",
            403,
        ),
        // Admin
        (c.get(app.url("/admin/dlq")), get.clone(), "/admin/dlq", 200),
        (
            c.get(app.url("/admin/dlq?limit=abc")),
            get.clone(),
            "/admin/dlq",
            400,
        ),
        (
            customer.get(app.url("/admin/dlq")),
            get.clone(),
            "/admin/dlq",
            403,
        ),
        (
            c.post(app.url("/admin/dlq/replay")),
            post.clone(),
            "/admin/dlq/replay",
            200,
        ),
        (
            c.post(app.url("/admin/dlq/replay"))
                .json(&json!({"ids": ["a"]})),
            post.clone(),
            "/admin/dlq/replay",
            200,
        ),
        (
            c.post(app.url("/admin/dlq/replay"))
                .json(&json!({"ids": "a"})),
            post.clone(),
            "/admin/dlq/replay",
            400,
        ),
        (
            c.post(app.url("/admin/dlq/replay"))
                .header("content-type", "text/plain")
                .body("ids"),
            post.clone(),
            "/admin/dlq/replay",
            415,
        ),
        (
            c.post(app.url("/admin/dlq/replay"))
                .header("content-type", "application/json")
                .body(format!("{{\"ids\": [\"{}\"]}}", "x".repeat(70_000))),
            post.clone(),
            "/admin/dlq/replay",
            413,
        ),
        // Public probes
        (
            anonymous.get(app.url("/health")),
            get.clone(),
            "/health",
            200,
        ),
        (anonymous.get(app.url("/ready")), get.clone(), "/ready", 200),
    ];
    for (req, method, template, expected) in cases {
        let got = check(&doc, req, method.clone(), template).await;
        assert_eq!(got.status, expected, "{method} {template}: {}", got.body);
    }
}
