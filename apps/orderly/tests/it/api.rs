//! The order API end to end over HTTP, against the embedded store. These tests run the
//! API without the worker, so orders stay as the API leaves them.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::collections::{HashMap, HashSet};

use common::{assert_error, spawn_api_only as spawn_app, typical_request};
use serde_json::{Value, json};

#[tokio::test]
async fn a_typical_order_creates_a_pending_order_priced_from_the_catalogue() {
    let app = spawn_app().await;
    let r = app.post_order(&typical_request()).await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["totalAmount"], json!(109.97));
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["currency"], "USD");
    assert_eq!(order["userId"], "user-123");
    assert_eq!(order["customerEmail"], "ada@example.com");
    assert_eq!(order["version"], 1);
    assert_eq!(order["items"][0]["unitPrice"], json!(29.99));
    assert_eq!(order["items"][1]["unitPrice"], json!(49.99));
    assert!(order["failureReason"].is_null() && order["trackingId"].is_null());
    let id = order["orderId"].as_str().unwrap();
    assert_eq!(location, format!("/orders/{id}"));
    assert!(order["createdAt"].as_str().unwrap().ends_with('Z'));

    let (status, fetched) = app.get_json(&location).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, order, "GET shows what POST answered");

    let (status, events) = app.get_json(&format!("{location}/events")).await;
    assert_eq!(status, 200);
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let e = &items[0];
    assert_eq!(e["detailType"], "OrderCreated");
    assert_eq!(e["source"], "orderly");
    assert_eq!(e["detail"]["orderId"], id);
    assert_eq!(e["detail"]["totalAmount"], json!(109.97));
    assert!(e["id"].is_string() && e["time"].is_string());
}

#[tokio::test]
async fn prices_come_from_the_catalogue_and_a_wrong_total_names_the_right_one() {
    let app = spawn_app().await;
    let mut req = typical_request();
    req["totalAmount"] = json!(1.00);
    let body = assert_error(
        app.post_order(&req).await,
        422,
        "total_mismatch",
        Some("totalAmount"),
    )
    .await;
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("109.97"),
        "computed total missing from {msg:?}"
    );

    // Without totalAmount the catalogue total is used.
    req.as_object_mut().unwrap().remove("totalAmount");
    let r = app.post_order(&req).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap()["totalAmount"],
        json!(109.97)
    );

    // Nothing was stored for the refused request.
    let (_, list) = app.get_json("/orders").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn every_validation_rule_answers_4xx_naming_the_field() {
    let app = spawn_app().await;
    let ok_item = json!({"productId": "PROD-001", "qty": 1});
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"productId": format!("P-{i}"), "qty": 1}))
        .collect();
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "empty userId",
            json!({"userId": "", "items": [ok_item]}),
            400,
            "validation_failed",
            "userId",
        ),
        (
            "empty userId",
            json!({"userId": "", "items": [ok_item]}),
            400,
            "validation_failed",
            "userId",
        ),
        (
            "userId not a string",
            json!({"userId": 7, "items": [ok_item]}),
            400,
            "validation_failed",
            "userId",
        ),
        (
            "missing items",
            json!({"userId": "u"}),
            400,
            "validation_failed",
            "items",
        ),
        (
            "empty items",
            json!({"userId": "u", "items": []}),
            400,
            "validation_failed",
            "items",
        ),
        (
            "101 items",
            json!({"userId": "u", "items": many}),
            400,
            "validation_failed",
            "items",
        ),
        (
            "items not an array",
            json!({"userId": "u", "items": {}}),
            400,
            "validation_failed",
            "items",
        ),
        (
            "item not an object",
            json!({"userId": "u", "items": [3]}),
            400,
            "validation_failed",
            "items[0]",
        ),
        (
            "qty 0",
            json!({"userId": "u", "items": [{"productId": "PROD-001", "qty": 0}]}),
            400,
            "validation_failed",
            "items[0].qty",
        ),
        (
            "qty negative",
            json!({"userId": "u", "items": [{"productId": "PROD-001", "qty": -2}]}),
            400,
            "validation_failed",
            "items[0].qty",
        ),
        (
            "qty fractional",
            json!({"userId": "u", "items": [{"productId": "PROD-001", "qty": 1.5}]}),
            400,
            "validation_failed",
            "items[0].qty",
        ),
        (
            "qty a string",
            json!({"userId": "u", "items": [{"productId": "PROD-001", "qty": "2"}]}),
            400,
            "validation_failed",
            "items[0].qty",
        ),
        (
            "qty missing",
            json!({"userId": "u", "items": [{"productId": "PROD-001"}]}),
            400,
            "validation_failed",
            "items[0].qty",
        ),
        (
            "productId missing",
            json!({"userId": "u", "items": [{"qty": 1}]}),
            400,
            "validation_failed",
            "items[0].productId",
        ),
        (
            "product twice",
            json!({"userId": "u", "items": [ok_item, {"sku": "PROD-001", "qty": 2}]}),
            400,
            "validation_failed",
            "items[1].sku",
        ),
        (
            "productId and sku",
            json!({"userId": "u", "items": [{"productId": "PROD-001", "sku": "PROD-001", "qty": 1}]}),
            400,
            "validation_failed",
            "items[0].sku",
        ),
        (
            "bad email",
            json!({"userId": "u", "customerEmail": "ada.example.com", "items": [ok_item]}),
            400,
            "validation_failed",
            "customerEmail",
        ),
        (
            "unknown field",
            json!({"userId": "u", "items": [ok_item], "price": 1}),
            400,
            "validation_failed",
            "price",
        ),
        (
            "unknown item field",
            json!({"userId": "u", "items": [{"productId": "PROD-001", "qty": 1, "unitPrice": 0.01}]}),
            400,
            "validation_failed",
            "items[0].unitPrice",
        ),
        (
            "total with 3 decimals",
            json!({"userId": "u", "items": [ok_item], "totalAmount": 29.991}),
            400,
            "validation_failed",
            "totalAmount",
        ),
        (
            "negative total",
            json!({"userId": "u", "items": [ok_item], "totalAmount": -29.99}),
            400,
            "validation_failed",
            "totalAmount",
        ),
        (
            "total a string",
            json!({"userId": "u", "items": [ok_item], "totalAmount": "29.99"}),
            400,
            "validation_failed",
            "totalAmount",
        ),
        (
            "body an array",
            json!([1, 2]),
            400,
            "validation_failed",
            "body",
        ),
        (
            "unknown product",
            json!({"userId": "u", "items": [{"productId": "PROD-999", "qty": 1}]}),
            422,
            "unknown_product",
            "items[0].productId",
        ),
    ];
    for (name, body, status, code, field) in cases {
        let r = app.post_order(&body).await;
        assert_eq!(r.status().as_u16(), status, "case {name}");
        let got: Value = r.json().await.unwrap();
        assert_eq!(got["error"], code, "case {name}: {got}");
        assert!(
            got["details"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["field"] == field),
            "case {name}: field {field} not named in {got}"
        );
    }
    // The seed-000 shape (sku) is accepted.
    let r = app
        .post_order(&json!({"userId": "u", "items": [{"sku": "PROD-002", "qty": 2}]}))
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap()["totalAmount"],
        json!(179.98)
    );

    // Only the sku order was stored.
    let (_, list) = app.get_json("/orders").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn malformed_requests_get_clear_4xx_never_5xx() {
    let app = spawn_app().await;
    let post_raw = |body: &'static str, ct: &'static str| {
        app.client
            .post(app.url("/orders"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    assert_error(
        post_raw("{\"userId\": ", "application/json").await.unwrap(),
        400,
        "malformed_json",
        Some("body"),
    )
    .await;
    assert_error(
        post_raw("", "application/json").await.unwrap(),
        400,
        "validation_failed",
        Some("body"),
    )
    .await;
    assert_error(
        post_raw("userId=u", "application/x-www-form-urlencoded")
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
        None,
    )
    .await;
    let big = "x".repeat(70_000);
    let r = app
        .client
        .post(app.url("/orders"))
        .header("content-type", "application/json")
        .body(format!("{{\"userId\": \"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_error(r, 413, "payload_too_large", None).await;
    // Bad ids in paths.
    assert_error(
        app.get("/orders/not-a-uuid").await,
        400,
        "validation_failed",
        Some("orderId"),
    )
    .await;
    assert_error(
        app.get("/orders/not-a-uuid/events").await,
        400,
        "validation_failed",
        Some("orderId"),
    )
    .await;
    let r = app
        .client
        .delete(app.url("/orders/123"))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "validation_failed", Some("orderId")).await;
    assert_error(
        app.get("/products/bad%20id").await,
        400,
        "validation_failed",
        Some("productId"),
    )
    .await;
    // Unknown things.
    assert_error(
        app.get("/orders/0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c")
            .await,
        404,
        "not_found",
        None,
    )
    .await;
    assert_error(
        app.get("/orders/0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c/events")
            .await,
        404,
        "not_found",
        None,
    )
    .await;
    assert_error(app.get("/products/PROD-999").await, 404, "not_found", None).await;
    assert_error(app.get("/no/such/route").await, 404, "not_found", None).await;
    let r = app.client.patch(app.url("/orders")).send().await.unwrap();
    assert_error(r, 405, "method_not_allowed", None).await;
    // Bad query parameters.
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("status=DONE", "status"),
        ("cursor=garbage", "cursor"),
        ("cursor=bzE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk", "cursor"),
        ("page=2", "page"),
        ("userId=", "userId"),
        ("limit=5&limit=6", "limit"),
    ] {
        assert_error(
            app.get(&format!("/orders?{q}")).await,
            400,
            "validation_failed",
            Some(field),
        )
        .await;
    }
    // Idempotency keys must be sane.
    let r = app
        .post_order_with_key(&typical_request(), &"k".repeat(300))
        .await;
    assert_error(r, 400, "validation_failed", Some("Idempotency-Key")).await;
}

/// Walks every page of `query` and returns the order ids seen, in order.
async fn walk(app: &common::TestApp, query: &str, limit: u32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("/orders?limit={limit}{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = app.get_json(&url).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit as usize);
        seen.extend(
            items
                .iter()
                .map(|o| o["orderId"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn pagination_walks_every_order_exactly_once_while_orders_are_inserted() {
    let app = spawn_app().await;
    let users = ["alice", "bob", "carol"];
    let mut existing: Vec<(String, String)> = Vec::new(); // (id, user), oldest first
    for i in 0..45 {
        let user = users[i % 3];
        let o = app.create(user, "PROD-008", 1).await;
        existing.push((o["orderId"].as_str().unwrap().to_owned(), user.to_owned()));
    }
    let cancelled: HashSet<String> = existing
        .iter()
        .step_by(4)
        .map(|(id, _)| id.clone())
        .collect();
    for id in &cancelled {
        let r = app
            .client
            .delete(app.url(&format!("/orders/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    // Keep inserting while the walks run.
    let writer = {
        let client = app.client.clone();
        let url = app.url("/orders");
        tokio::spawn(async move {
            let mut n = 0;
            for i in 0..60 {
                let user = ["alice", "bob", "carol"][i % 3];
                let r = client
                    .post(&url)
                    .json(&json!({"userId": user, "items": [{"productId": "PROD-010", "qty": 1}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                n += 1;
            }
            n
        })
    };
    let check = |seen: Vec<String>, expected: Vec<&String>, what: &str| {
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{what}: an order was listed twice"
        );
        let seen_existing: Vec<&String> = seen.iter().filter(|id| expected.contains(id)).collect();
        let expected_newest_first: Vec<&String> = expected.into_iter().rev().collect();
        assert_eq!(
            seen_existing, expected_newest_first,
            "{what}: existing orders missed or out of order"
        );
    };
    let all: Vec<&String> = existing.iter().map(|(id, _)| id).collect();
    check(walk(&app, "", 7).await, all.clone(), "all orders");
    let bobs: Vec<&String> = existing
        .iter()
        .filter(|(_, u)| u == "bob")
        .map(|(id, _)| id)
        .collect();
    let seen = walk(&app, "&userId=bob", 4).await;
    check(seen, bobs, "userId=bob");
    let pending: Vec<&String> = existing
        .iter()
        .filter(|(id, _)| !cancelled.contains(id))
        .map(|(id, _)| id)
        .collect();
    check(
        walk(&app, "&status=PENDING", 5).await,
        pending,
        "status=PENDING",
    );
    let cancelled_alice: Vec<&String> = existing
        .iter()
        .filter(|(id, u)| u == "alice" && cancelled.contains(id))
        .map(|(id, _)| id)
        .collect();
    let seen = walk(&app, "&userId=alice&status=CANCELLED", 2).await;
    assert_eq!(
        seen.len(),
        cancelled_alice.len(),
        "no new order can be CANCELLED"
    );
    check(seen, cancelled_alice, "alice CANCELLED");
    assert_eq!(writer.await.unwrap(), 60);
    // After the writer is done, a fresh walk sees everything exactly once.
    assert_eq!(walk(&app, "", 100).await.len(), 105);
    // The default page size is 20.
    let (_, page) = app.get_json("/orders").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 20);
    assert!(page["nextCursor"].is_string());
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer() {
    let app = spawn_app().await;
    let first = app
        .post_order_with_key(&typical_request(), "order-abc-1")
        .await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_location = first.headers()["location"].clone();
    let first_body = first.text().await.unwrap();

    // Same payload, different key order, spacing and number spelling: the same answer.
    let same = r#"{ "totalAmount": 109.970, "items": [ {"qty": 2, "productId": "PROD-001"},
                  {"productId": "PROD-003", "qty": 1.0e0} ], "customerEmail": "ada@example.com",
                  "userId": "user-123" }"#;
    let again = app
        .client
        .post(app.url("/orders"))
        .header("content-type", "application/json")
        .header("idempotency-key", "order-abc-1")
        .body(same)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], first_location);
    assert_eq!(again.text().await.unwrap(), first_body);

    // Same key, different payload: 422 naming the header.
    let mut other = typical_request();
    other["items"][0]["qty"] = json!(3);
    other.as_object_mut().unwrap().remove("totalAmount");
    let r = app.post_order_with_key(&other, "order-abc-1").await;
    assert_error(r, 422, "idempotency_key_reused", Some("Idempotency-Key")).await;

    // A refused request does not burn its key: fix it and retry with the same key.
    let mut bad = typical_request();
    bad["totalAmount"] = json!(1);
    let r = app.post_order_with_key(&bad, "order-abc-2").await;
    assert_eq!(r.status(), 422);
    let r = app
        .post_order_with_key(&typical_request(), "order-abc-2")
        .await;
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("idempotent-replayed").is_none());

    // Without a key two identical requests are two orders.
    assert_eq!(app.post_order(&typical_request()).await.status(), 201);
    assert_eq!(app.post_order(&typical_request()).await.status(), 201);
    let (_, list) = app.get_json("/orders?userId=user-123").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_exactly_one_order() {
    let app = spawn_app().await;
    let body = json!({"userId": "racer", "items": [{"productId": "PROD-004", "qty": 1}]});
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let client = app.client.clone();
        let url = app.url("/orders");
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("idempotency-key", "same-key")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v)
        }));
    }
    let mut ids = HashSet::new();
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for t in tasks {
        let (status, v) = t.await.unwrap();
        *by_status.entry(status).or_default() += 1;
        match status {
            201 => {
                ids.insert(v["orderId"].as_str().unwrap().to_owned());
            }
            409 => assert_eq!(v["error"], "idempotency_key_in_flight"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(
        ids.len(),
        1,
        "every 201 names the same order: {by_status:?}"
    );
    let (_, list) = app.get_json("/orders?userId=racer").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "exactly one order stored"
    );
}

#[tokio::test]
async fn cancelling_a_pending_order_keeps_the_record_and_is_repeatable() {
    let app = spawn_app().await;
    let o = app.create("user-9", "PROD-006", 2).await;
    let id = o["orderId"].as_str().unwrap();
    let url = app.url(&format!("/orders/{id}"));
    let r = app.client.delete(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cancelled: Value = r.json().await.unwrap();
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(cancelled["version"], 2);
    let r = app.client.delete(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "repeating a cancel is harmless");
    assert_eq!(
        r.json::<Value>().await.unwrap()["version"],
        2,
        "and changes nothing"
    );
    let (_, got) = app.get_json(&format!("/orders/{id}")).await;
    assert_eq!(got["status"], "CANCELLED");
    let (_, events) = app.get_json(&format!("/orders/{id}/events")).await;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detailType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["OrderCreated", "OrderCancelled"]);
    let r = app
        .client
        .delete(app.url("/orders/0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c"))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found", None).await;
}

#[tokio::test]
async fn products_can_be_listed_read_created_and_updated() {
    let app = spawn_app().await;
    let (status, list) = app.get_json("/products").await;
    assert_eq!(status, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 10, "the seed catalogue");
    assert_eq!(items[4]["productId"], "PROD-005");
    assert_eq!(items[4]["price"], json!(199.99));
    assert_eq!(items[4]["stock"], 100);

    let put = |body: Value| {
        app.client
            .put(app.url("/products/PROD-011"))
            .json(&body)
            .send()
    };
    let r = put(json!({"name": "USB Cable", "price": 9.99, "stock": 40, "category": "Cables"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = put(json!({"name": "USB-C Cable", "price": 11.5, "stock": 35, "category": "Cables"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(
        (p["price"].clone(), p["stock"].clone(), p["version"].clone()),
        (json!(11.5), json!(35), json!(2))
    );
    let (_, got) = app.get_json("/products/PROD-011").await;
    assert_eq!(got["name"], "USB-C Cable");
    // The new price is used for new orders.
    let o = app.create("u", "PROD-011", 2).await;
    assert_eq!(o["totalAmount"], json!(23.0));

    let r = put(json!({"name": "", "price": 1.001, "stock": -1}))
        .await
        .unwrap();
    let body = assert_error(r, 400, "validation_failed", Some("name")).await;
    for f in ["price", "stock", "category"] {
        assert!(
            body["details"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["field"] == f),
            "{f}"
        );
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = app.get_json("/ready").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}

#[tokio::test]
async fn data_survives_a_restart_on_the_same_data_dir() {
    let mut app = spawn_app().await;
    let first = app
        .post_order_with_key(&typical_request(), "restart-key")
        .await;
    assert_eq!(first.status(), 201);
    let body = first.text().await.unwrap();
    let order: Value = serde_json::from_str(&body).unwrap();
    let id = order["orderId"].as_str().unwrap().to_owned();
    let cancelled = app.create("user-r", "PROD-002", 1).await;
    let cid = cancelled["orderId"].as_str().unwrap().to_owned();
    app.client
        .delete(app.url(&format!("/orders/{cid}")))
        .send()
        .await
        .unwrap();

    app.restart().await;

    let (status, got) = app.get_json(&format!("/orders/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got, order);
    let (_, c) = app.get_json(&format!("/orders/{cid}")).await;
    assert_eq!(c["status"], "CANCELLED");
    let (_, events) = app.get_json(&format!("/orders/{cid}/events")).await;
    assert_eq!(events["items"].as_array().unwrap().len(), 2);
    // The idempotency record survived too.
    let again = app
        .post_order_with_key(&typical_request(), "restart-key")
        .await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), body);
    // The catalogue was not seeded a second time.
    let (_, p) = app.get_json("/products/PROD-001").await;
    assert_eq!(p["stock"], 500);
    app.stop().await;
}
