//! The OpenAPI document against the code it describes: the committed `openapi.json` is the
//! generated one; real values of the API's types validate against their schemas; the
//! request-body schemas accept what the parsers accept; the public routes serve it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::IntoResponse;
use orderly_core::input::{parse_create_order, parse_product};
use orderly_core::model::{Order, Page, Timestamp};
use orderly_core::payment::PaymentSimulator;
use orderly_core::ports::{ManualClock, Queue, SeedMode};
use orderly_core::saga::Action;
use orderly_core::{FieldError, OrderStatus, Orderly, Ports, Settings};
use orderly_http::ApiError;
use orderly_http::openapi::{docs_router, openapi_json};
use orderly_testkit::memory::MemoryStore;
use serde_json::{Value, json};
use tower::ServiceExt;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");

fn document() -> Value {
    serde_json::from_str(&openapi_json()).expect("the document is JSON")
}

/// A validator for `#/components/schemas/<name>` of the document (JSON Schema 2020-12, the
/// dialect of OpenAPI 3.1), formats (date-time, uuid) checked too.
fn validator(doc: &Value, name: &str) -> jsonschema::Validator {
    assert!(
        doc["components"]["schemas"].get(name).is_some(),
        "no schema {name}"
    );
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"],
    });
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"))
}

#[track_caller]
fn assert_valid(doc: &Value, name: &str, value: &Value) {
    let v = validator(doc, name);
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} refuses {value}:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_committed_openapi_json_is_current() {
    let fresh = openapi_json();
    if std::env::var_os(orderly_config::env::harness::UPDATE_GENERATED).is_some() {
        std::fs::write(COMMITTED, &fresh).expect("write openapi.json");
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == fresh,
        "openapi.json is stale: rerun this test with ORDERLY_UPDATE_GENERATED=1 \
         (cargo test -p orderly-http --test openapi)"
    );
}

fn app() -> (Orderly, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let start = Timestamp::from_millis(1_767_225_600_123).expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let gateway = Arc::new(PaymentSimulator::default());
    let ports = Ports::from_store(store.clone(), clock);
    let saga = orderly_core::SagaPorts::from_store(store.clone(), gateway);
    (
        Orderly::new(ports, Settings::default()).with_saga(saga),
        store,
    )
}

async fn place(app: &Orderly, body: Value) -> Order {
    let req = parse_create_order(&body).expect("a valid body");
    let placed = app.place_order(req, &body, None).await.expect("placed");
    serde_json::from_str(&placed.body).expect("the answer is an order")
}

/// Orders in every status, with every optional field both set and unset, made by the use
/// cases and the saga's own steps on the in-memory store.
async fn orders(app: &Orderly) -> Vec<Order> {
    app.seed(SeedMode::KeepExisting).await.expect("seed");
    let pending = place(
        app,
        json!({"userId": "user-123", "customerEmail": "ada@example.com",
               "items": [{"productId": "PROD-001", "qty": 2}, {"sku": "PROD-003", "qty": 1}],
               "totalAmount": 109.97}),
    )
    .await;
    let fulfilled = place(
        app,
        json!({"userId": "u", "items": [{"productId": "PROD-005", "qty": 1}]}),
    )
    .await;
    for action in [
        Action::ReserveInventory,
        Action::ProcessPayment,
        Action::ConfirmOrder,
        Action::EmitOrderPlaced,
    ] {
        app.run_action(action, &fulfilled, None, None)
            .await
            .expect("happy path");
    }
    app.fulfil(fulfilled.order_id).await.expect("fulfil");
    let failed = place(
        app,
        json!({"userId": "u", "items": [{"productId": "PROD-009", "qty": 81}]}),
    )
    .await;
    assert!(
        app.run_action(Action::ReserveInventory, &failed, None, None)
            .await
            .is_err()
    );
    app.run_action(Action::FailOrder, &failed, Some("insufficient stock"), None)
        .await
        .expect("fail");
    let cancelled = place(
        app,
        json!({"userId": "u", "items": [{"productId": "PROD-002", "qty": 3}]}),
    )
    .await;
    app.cancel_order(cancelled.order_id).await.expect("cancel");
    let mut out = Vec::new();
    for id in [
        pending.order_id,
        fulfilled.order_id,
        failed.order_id,
        cancelled.order_id,
    ] {
        out.push(app.order(id).await.expect("order"));
    }
    let statuses: Vec<OrderStatus> = out.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        [
            OrderStatus::Pending,
            OrderStatus::Fulfilled,
            OrderStatus::Failed,
            OrderStatus::Cancelled
        ]
    );
    assert!(out[1].tracking_id.is_some() && out[2].failure_reason.is_some());
    out
}

#[tokio::test]
async fn real_values_match_their_component_schemas() {
    let doc = document();
    let (app, store) = app();
    let orders = orders(&app).await;
    for o in &orders {
        assert_valid(&doc, "Order", &serde_json::to_value(o).expect("json"));
        let events = app.order_events(o.order_id).await.expect("events");
        assert!(!events.is_empty());
        for e in &events {
            assert_valid(&doc, "DomainEvent", &serde_json::to_value(e).expect("json"));
        }
        assert_valid(
            &doc,
            "OrderEvents",
            &json!({ "orderId": o.order_id, "items": events }),
        );
    }
    let q = orderly_core::input::parse_list_orders(&[("limit".into(), "2".into())]).expect("query");
    let page: Page<Order> = app.list_orders(&q).await.expect("list");
    assert!(page.next_cursor.is_some());
    assert_valid(
        &doc,
        "OrderPage",
        &serde_json::to_value(&page).expect("json"),
    );
    let last = Page::<Order> {
        items: vec![],
        next_cursor: None,
    };
    assert_valid(
        &doc,
        "OrderPage",
        &serde_json::to_value(&last).expect("json"),
    );

    let products = app.products().await.expect("products");
    for p in &products {
        assert_valid(&doc, "Product", &serde_json::to_value(p).expect("json"));
    }
    assert_valid(&doc, "ProductList", &json!({ "items": products }));

    // A message that fails every delivery ends in the dead-letter queue.
    store
        .send("orders", "{\"orderId\":\"x\"}", std::time::Duration::ZERO)
        .await
        .expect("send");
    for _ in 0..10 {
        let got = store
            .receive(
                "orders",
                10,
                std::time::Duration::ZERO,
                std::time::Duration::ZERO,
            )
            .await
            .expect("receive");
        for m in got {
            store
                .nack("orders", &m.id, "boom", std::time::Duration::ZERO)
                .await
                .expect("nack");
        }
    }
    let dead = app.dead_letters(10).await.expect("dead letters");
    assert!(!dead.is_empty(), "the message was dead-lettered");
    for d in &dead {
        assert_valid(&doc, "DeadLetter", &serde_json::to_value(d).expect("json"));
    }
    assert_valid(&doc, "DeadLetterList", &json!({ "items": dead }));
    assert_valid(&doc, "ReplayResult", &json!({ "replayed": ["a", "b"] }));
    assert_valid(&doc, "Health", &json!({"status": "ok"}));
    assert_valid(&doc, "Readiness", &json!({"status": "ready"}));

    // And the schemas do refuse what the types never produce.
    let mut bad = serde_json::to_value(&orders[0]).expect("json");
    bad["totalAmount"] = json!(1.005);
    assert!(!validator(&doc, "Order").is_valid(&bad), "3 decimals");
    bad["totalAmount"] = json!("109.97");
    assert!(
        !validator(&doc, "Order").is_valid(&bad),
        "money as a string"
    );
    let mut bad = serde_json::to_value(&orders[0]).expect("json");
    bad["status"] = json!("pending");
    assert!(!validator(&doc, "Order").is_valid(&bad));
    let mut bad = serde_json::to_value(&orders[0]).expect("json");
    bad.as_object_mut().expect("object").remove("trackingId");
    assert!(
        !validator(&doc, "Order").is_valid(&bad),
        "null fields are always present"
    );
}

async fn body_of(resp: axum::response::Response) -> (StatusCode, axum::http::HeaderMap, Value) {
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        headers,
        serde_json::from_slice(&bytes).expect("a JSON body"),
    )
}

#[tokio::test]
async fn every_error_answer_is_an_error_body_with_its_documented_headers() {
    let doc = document();
    let errors = [
        ApiError::bad_field("items[0].qty", "must be at least 1"),
        ApiError::Unauthorized {
            message: "credentials are required".into(),
            challenge: r#"ApiKey realm="orderly""#,
        },
        ApiError::Forbidden {
            message: "admins only".into(),
        },
        ApiError::NotFound {
            message: "order x was not found".into(),
        },
        ApiError::Conflict {
            code: "order_not_cancellable",
            message: "no".into(),
        },
        ApiError::PayloadTooLarge { limit: 65536 },
        ApiError::UnsupportedMediaType {
            message: "not JSON".into(),
        },
        ApiError::Unprocessable {
            code: "total_mismatch",
            message: "totalAmount is not the catalogue total".into(),
            details: vec![FieldError::new("totalAmount", "must be 109.97")],
        },
        ApiError::TooManyRequests {
            message: "slow down".into(),
            retry_after_secs: 3,
        },
        ApiError::Unavailable {
            message: "busy".into(),
        },
        ApiError::Internal {
            cause: "bug".into(),
        },
        ApiError::NotImplemented {
            message: "webhooks are not available on this backend".into(),
        },
    ];
    let responses = doc["components"]["responses"]
        .as_object()
        .expect("responses");
    for e in errors {
        let (status, headers, body) = body_of(e.into_response()).await;
        assert_valid(&doc, "ErrorBody", &body);
        // The reusable response documented for this status, and the headers it promises.
        let name = match status.as_u16() {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            413 => "PayloadTooLarge",
            415 => "UnsupportedMediaType",
            422 => "Unprocessable",
            429 => "TooManyRequests",
            503 => "Unavailable",
            500 => "Internal",
            501 => "NotImplemented",
            other => panic!("undocumented status {other}"),
        };
        let r = &responses[name];
        for h in r["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            assert!(headers.contains_key(h.as_str()), "{status} lacks {h}");
        }
        assert_valid(
            &doc,
            "ErrorBody",
            &r["content"]["application/json"]["example"],
        );
    }
}

/// The request bodies are declared once, in `orderly_core::input`: the document holds
/// exactly the schemas derived from those declarations (utoipa's typed form drops nothing),
/// and so do the value types' components.
#[test]
fn the_request_schemas_are_the_declared_shapes() {
    use orderly_core::input::{CreateOrderBody, ProductBody, ReplayBody};
    use orderly_core::shape::{Shape, Wire};
    use orderly_core::webhooks::{NewWebhookBody, WebhookPatchBody};
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let mut declared = CreateOrderBody::all_components();
    declared.extend(ProductBody::all_components());
    declared.extend(ReplayBody::all_components());
    declared.extend(NewWebhookBody::all_components());
    declared.extend(WebhookPatchBody::all_components());
    assert_eq!(declared.len(), 6, "{declared:?}");
    declared.push(("Money", <orderly_core::Money as Wire>::schema()));
    declared.push(("Qty", <orderly_core::Qty as Wire>::schema()));
    declared.push(("Email", <orderly_core::Email as Wire>::schema()));
    for (name, schema) in declared {
        assert_eq!(
            schemas[name], schema,
            "{name} in the document is not the declared shape"
        );
    }
}

#[tokio::test]
async fn the_request_schemas_accept_what_the_parsers_accept() {
    let doc = document();
    let create = validator(&doc, "CreateOrderRequest");
    let long_user = "u".repeat(128);
    let lines = |n: usize| -> Value {
        Value::Array(
            (0..n)
                .map(|i| json!({"productId": format!("P-{i}"), "qty": 1}))
                .collect(),
        )
    };
    let item = |line: Value| json!({"userId": "u", "items": [line]});
    let accepted = [
        json!({"userId": "user-123", "customerEmail": "ada@example.com",
               "items": [{"productId": "PROD-001", "qty": 2}, {"productId": "PROD-003", "qty": 1}],
               "totalAmount": 109.97}),
        json!({"userId": long_user, "items": [{"sku": "PROD-001", "qty": 2.0}]}),
        json!({"userId": "u", "items": [{"productId": "PROD-001", "sku": null, "qty": 1e0}],
               "customerEmail": null, "totalAmount": null}),
        json!({"userId": "u", "items": lines(100), "totalAmount": 0}),
        json!({"userId": "u", "items": [{"productId": "P", "qty": 1_000_000}]}),
        json!({"userId": "a.B_c:d@e-1", "items": [{"productId": "a.B_c:d@e-1", "qty": 1}],
               "totalAmount": 10000000000.0, "customerEmail": "o'brien+x@ex-ample.co.uk"}),
        json!({"userId": "u", "items": [{"productId": "P", "qty": 1}], "totalAmount": 0.1}),
        json!({"userId": "u", "items": [{"productId": "P", "qty": 1}],
               "customerEmail": "ünï@exämple.de"}),
        json!({"userId": "u", "items": [{"productId": "P", "qty": 1}],
               "customerEmail": format!("{}@example.com", "l".repeat(64))}),
    ];
    for body in &accepted {
        assert!(
            parse_create_order(body).is_ok(),
            "parser refused {body}: {:?}",
            parse_create_order(body)
        );
        assert!(create.is_valid(body), "schema refused {body}");
    }
    // A body without `userId` (or with null) is the customer's shape: the API fills it in
    // from the credential before parsing, so the schema accepts it.
    for mut filled in [
        json!({"items": [{"productId": "P", "qty": 1}]}),
        json!({"userId": null, "items": [{"productId": "P", "qty": 1}]}),
    ] {
        assert!(create.is_valid(&filled), "{filled}");
        filled["userId"] = json!("from-the-credential");
        assert!(parse_create_order(&filled).is_ok());
    }

    let refused = [
        json!([]),
        json!("order"),
        json!({"userId": "u"}),
        json!({"userId": "", "items": [{"productId": "P", "qty": 1}]}),
        json!({"userId": 7, "items": [{"productId": "P", "qty": 1}]}),
        json!({"userId": "u u", "items": [{"productId": "P", "qty": 1}]}),
        json!({"userId": long_user.clone() + "u", "items": [{"productId": "P", "qty": 1}]}),
        json!({"userId": "u", "items": []}),
        json!({"userId": "u", "items": null}),
        json!({"userId": "u", "items": lines(101)}),
        item(json!({"productId": "P"})),
        item(json!({"qty": 1})),
        item(json!({"productId": null, "sku": null, "qty": 1})),
        item(json!({"productId": "P", "sku": "P", "qty": 1})),
        item(json!({"productId": "", "qty": 1})),
        item(json!({"productId": "P/1", "qty": 1})),
        item(json!({"productId": "x".repeat(65), "qty": 1})),
        item(json!({"productId": "P", "qty": 0})),
        item(json!({"productId": "P", "qty": 1.5})),
        item(json!({"productId": "P", "qty": "2"})),
        item(json!({"productId": "P", "qty": null})),
        item(json!({"productId": "P", "qty": 1_000_001})),
        item(json!({"productId": "P", "qty": 1, "price": 1})),
        item(json!(["P", 1])),
        json!({"userId": "u", "items": [{"productId": "P", "qty": 1}], "totalAmount": -1}),
        json!({"userId": "u", "items": [{"productId": "P", "qty": 1}], "totalAmount": 1.005}),
        json!({"userId": "u", "items": [{"productId": "P", "qty": 1}], "totalAmount": "9"}),
        json!({"userId": "u", "items": [{"productId": "P", "qty": 1}],
               "totalAmount": 10000000000.01}),
        json!({"userId": "u", "items": [{"productId": "P", "qty": 1}], "extra": true}),
    ];
    for body in &refused {
        assert!(parse_create_order(body).is_err(), "parser accepted {body}");
        assert!(!create.is_valid(body), "schema accepted {body}");
    }
    let with_email = |e: &str| json!({"userId": "u", "items": [{"productId": "P", "qty": 1}], "customerEmail": e});
    for bad in [
        "",
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "a b@example.com",
        "a\u{a0}b@example.com",
        "a\u{3000}b@example.com",
        "a\tb@example.com",
        "a\u{85}b@example.com",
        "a@b@example.com",
        "ada@.example.com",
        "ada@example.com.",
        "ada@example..com",
        "ada@-example.com",
        "<ada@example.com>",
        "ada@exa>mple.com",
    ] {
        let body = with_email(bad);
        assert!(
            parse_create_order(&body).is_err(),
            "parser accepted {bad:?}"
        );
        assert!(!create.is_valid(&body), "schema accepted {bad:?}");
    }
    // The limits are in bytes: 64 before the `@`, 254 in all.
    let longest = format!("{}@{}.com", "l".repeat(64), "d".repeat(185));
    assert_eq!(longest.len(), 254);
    for ok in [
        longest.as_str(),
        "ünï@exämple.de",
        "名前@例え.jp",
        "a!#$%&'*+/=?^_`{|}~-@x.y",
    ] {
        let body = with_email(ok);
        assert!(parse_create_order(&body).is_ok(), "parser refused {ok:?}");
        assert!(create.is_valid(&body), "schema refused {ok:?}");
    }
    for bad in [
        format!("{}@example.com", "l".repeat(65)),
        format!("{}x", longest),
        format!("{}@example.com", "é".repeat(33)),
        format!("ü@{}.de", "ä".repeat(130)),
    ] {
        let body = with_email(&bad);
        assert!(
            parse_create_order(&body).is_err(),
            "parser accepted {bad:?}"
        );
        assert!(!create.is_valid(&body), "schema accepted {bad:?}");
    }
    // Where characters and bytes part, the schema errs on the safe side: an address it
    // accepts is always accepted; a long one beyond ASCII may be accepted by the server
    // and not by the schema.
    let wide = format!("{}@example.com", "é".repeat(20));
    assert!(parse_create_order(&with_email(&wide)).is_ok());
    assert!(!create.is_valid(&with_email(&wide)));

    let product = validator(&doc, "ProductRequest");
    let p = |extra: Value| {
        let mut base = json!({"name": "Wireless Mouse", "price": 29.99, "stock": 500,
                              "category": "Electronics"});
        for (k, v) in extra.as_object().expect("object") {
            base[k] = v.clone();
        }
        base
    };
    let accepted = [
        p(json!({})),
        p(json!({"productId": "PROD-001", "currency": "USD"})),
        p(json!({"productId": null, "currency": null})),
        p(json!({"name": "  padded\t", "category": "\u{3000}wide\u{a0}"})),
        p(json!({"name": "x", "stock": 0, "price": 0.01})),
        p(json!({"name": "n".repeat(200), "category": "c".repeat(100)})),
        p(json!({"name": format!(" {} ", "n".repeat(200))})),
        p(json!({"name": "a b", "stock": 2147483647})),
        p(json!({"price": 10000000000u64})),
        p(json!({"name": "Ünïcödé ✓ 名前"})),
    ];
    for body in &accepted {
        assert!(
            parse_product("PROD-001", body).is_ok(),
            "parser refused {body}: {:?}",
            parse_product("PROD-001", body)
        );
        assert!(product.is_valid(body), "schema refused {body}");
    }
    let refused = [
        json!({}),
        json!([]),
        p(json!({"name": ""})),
        p(json!({"name": "   "})),
        p(json!({"name": "\u{3000}"})),
        p(json!({"name": "a\u{0}b"})),
        p(json!({"name": "a\nb"})),
        p(json!({"name": "a\u{1c}"})),
        p(json!({"name": "\u{1c}a"})),
        p(json!({"name": "a\u{9f}b"})),
        p(json!({"name": "n".repeat(201)})),
        p(json!({"category": "c".repeat(101)})),
        p(json!({"name": null})),
        p(json!({"price": 0})),
        p(json!({"price": -1})),
        p(json!({"price": 1.001})),
        p(json!({"price": "1"})),
        p(json!({"stock": -1})),
        p(json!({"stock": 2147483648u64})),
        p(json!({"stock": 1.5})),
        p(json!({"currency": "EUR"})),
        p(json!({"extra": 1})),
    ];
    for body in &refused {
        assert!(
            parse_product("PROD-001", body).is_err(),
            "parser accepted {body}"
        );
        assert!(!product.is_valid(body), "schema accepted {body}");
    }
    // The one rule a schema cannot state: a `productId` in the body must be the path's.
    // The schema marks it read-only (a client does not send it) and says so.
    assert!(parse_product("PROD-001", &p(json!({"productId": "PROD-002"}))).is_err());
    let doc_product = &doc["components"]["schemas"]["ProductRequest"]["properties"]["productId"];
    assert_eq!(doc_product["readOnly"], true);

    let replay = validator(&doc, "ReplayRequest");
    for ok in [json!({}), json!({"ids": null}), json!({"ids": ["a", "b"]})] {
        assert!(replay.is_valid(&ok), "{ok}");
    }
    for bad in [
        json!({"ids": "a"}),
        json!({"ids": [1]}),
        json!({"id": ["a"]}),
        json!([]),
        json!(null),
    ] {
        assert!(!replay.is_valid(&bad), "{bad}");
    }
}

#[tokio::test]
async fn the_docs_router_serves_the_document_and_a_page_that_renders_it() {
    let router = docs_router();
    let resp = router
        .clone()
        .oneshot(
            Request::get("/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    let (_, _, served) = body_of(resp).await;
    assert_eq!(served, document());

    let resp = router
        .oneshot(Request::get("/docs").body(Body::empty()).expect("request"))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.contains("script-src 'sha256-") && csp.contains("connect-src 'self'"));
    assert!(!csp.contains("unsafe-inline"));
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let html = String::from_utf8(bytes.to_vec()).expect("utf-8");
    assert!(html.contains("fetch(\"openapi.json\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing is loaded from elsewhere"
    );

    // Other methods: the API's JSON 405, with the methods that are allowed.
    let resp = docs_router()
        .oneshot(
            Request::post("/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.headers()[header::ALLOW], "GET,HEAD");
    let (status, _, body) = body_of(resp).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "method_not_allowed");
}

#[tokio::test]
async fn the_docs_router_merges_into_a_router_with_its_own_fallbacks() {
    async fn fallback() -> StatusCode {
        StatusCode::IM_A_TEAPOT
    }
    let merged = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .fallback(fallback)
        .method_not_allowed_fallback(fallback)
        .merge(docs_router());
    let status = |method: &'static str, path: &'static str| {
        let router = merged.clone();
        async move {
            router
                .oneshot(
                    Request::builder()
                        .method(method)
                        .uri(path)
                        .body(Body::empty())
                        .expect("request"),
                )
                .await
                .expect("response")
                .status()
        }
    };
    assert_eq!(status("GET", "/docs").await, StatusCode::OK);
    assert_eq!(status("GET", "/openapi.json").await, StatusCode::OK);
    assert_eq!(
        status("TRACE", "/docs").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(status("GET", "/elsewhere").await, StatusCode::IM_A_TEAPOT);
}

#[test]
fn every_operation_documents_its_success_and_the_statuses_the_handlers_give() {
    let doc = document();
    let expect: &[(&str, &str, &[&str])] = &[
        (
            "/orders",
            "post",
            &[
                "201", "400", "401", "403", "409", "413", "415", "422", "429", "503",
            ],
        ),
        (
            "/orders",
            "get",
            &["200", "400", "401", "403", "429", "503"],
        ),
        (
            "/orders/{orderId}",
            "get",
            &["200", "400", "401", "403", "404", "429", "503"],
        ),
        (
            "/orders/{orderId}",
            "delete",
            &["200", "400", "401", "403", "404", "409", "429", "503"],
        ),
        (
            "/orders/{orderId}/events",
            "get",
            &["200", "400", "401", "403", "404", "429", "503"],
        ),
        ("/products", "get", &["200", "401", "403", "429", "503"]),
        (
            "/products/{productId}",
            "get",
            &["200", "400", "401", "403", "404", "429", "503"],
        ),
        (
            "/products/{productId}",
            "put",
            &[
                "200", "201", "400", "401", "403", "413", "415", "429", "503",
            ],
        ),
        (
            "/admin/dlq",
            "get",
            &["200", "400", "401", "403", "429", "503"],
        ),
        (
            "/admin/dlq/replay",
            "post",
            &["200", "400", "401", "403", "413", "415", "429", "503"],
        ),
        (
            "/admin/webhooks",
            "post",
            &[
                "201", "400", "401", "403", "409", "413", "415", "429", "501", "503",
            ],
        ),
        (
            "/admin/webhooks",
            "get",
            &["200", "401", "403", "429", "501", "503"],
        ),
        (
            "/admin/webhooks/{webhookId}",
            "get",
            &["200", "400", "401", "403", "404", "429", "501", "503"],
        ),
        (
            "/admin/webhooks/{webhookId}",
            "patch",
            &[
                "200", "400", "401", "403", "404", "413", "415", "429", "501", "503",
            ],
        ),
        (
            "/admin/webhooks/{webhookId}",
            "delete",
            &["204", "400", "401", "403", "404", "429", "501", "503"],
        ),
        (
            "/admin/webhooks/{webhookId}/deliveries",
            "get",
            &["200", "400", "401", "403", "404", "429", "501", "503"],
        ),
        (
            "/admin/alarms",
            "get",
            &["200", "401", "403", "404", "429", "503"],
        ),
        (
            "/metrics",
            "get",
            &["200", "401", "403", "404", "429", "503"],
        ),
        ("/health", "get", &["200"]),
        ("/ready", "get", &["200", "503"]),
        ("/openapi.json", "get", &["200"]),
        ("/docs", "get", &["200"]),
    ];
    let mut count = 0;
    for item in doc["paths"].as_object().expect("paths").values() {
        count += item.as_object().expect("item").len();
    }
    assert_eq!(count, expect.len(), "every operation is listed here");
    for (path, method, statuses) in expect {
        let op = &doc["paths"][path][method];
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}"));
        for s in *statuses {
            assert!(responses.contains_key(*s), "{method} {path} lacks {s}");
        }
        assert!(op["operationId"].is_string(), "{method} {path}");
    }
    let created = &doc["paths"]["/orders"]["post"]["responses"]["201"]["headers"];
    assert!(created["Location"].is_object() && created["Idempotent-Replayed"].is_object());
    let key = &doc["paths"]["/orders"]["post"]["parameters"][0];
    assert_eq!(key["name"], "Idempotency-Key");
    assert_eq!(key["in"], "header");
    assert_eq!(key["required"], false);
}

#[test]
fn the_value_schemas_accept_what_the_value_parsers_accept() {
    use orderly_core::{Email, OrderId, ProductId, UserId};
    let doc = document();
    let ids = [
        "PROD-001",
        "a",
        "a.B_c:d@e-1",
        "",
        " ",
        "PROD 001",
        "P/1",
        "é",
        "x\n",
        &"x".repeat(64),
        &"x".repeat(65),
        &"u".repeat(128),
        &"u".repeat(129),
    ];
    let product = validator(&doc, "ProductId");
    let user = validator(&doc, "UserId");
    for s in ids {
        let v = json!(s);
        assert_eq!(
            s.parse::<ProductId>().is_ok(),
            product.is_valid(&v),
            "{s:?}"
        );
        assert_eq!(s.parse::<UserId>().is_ok(), user.is_valid(&v), "{s:?}");
    }
    let order = validator(&doc, "OrderId");
    for s in [
        "0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c",
        "0192F0C8-7D3A-7B1E-9C61-2F4D5E6A7B8C",
        "0192f0c87d3a7b1e9c612f4d5e6a7b8c",
        "{0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c}",
        "urn:uuid:0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c",
        "0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8",
        "0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8g",
        "",
    ] {
        assert_eq!(
            s.parse::<OrderId>().is_ok(),
            order.is_valid(&json!(s)),
            "{s:?}"
        );
    }
    let email = validator(&doc, "Email");
    for s in [
        "ada@example.com",
        "a@b.c",
        "o'brien+x@ex-ample.co.uk",
        "ünï@exämple.de",
        "ada",
        "ada@example",
        "ada@-example.com",
        "ada@example..com",
        "ada@example.com.",
        "a b@example.com",
        "<a@b.c>",
        "a@b@c.d",
    ] {
        assert_eq!(
            s.parse::<Email>().is_ok(),
            email.is_valid(&json!(s)),
            "{s:?}"
        );
    }
}
