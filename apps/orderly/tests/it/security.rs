//! Security at the edge: authentication on every route, customers confined to their own
//! orders, rate limits, the first-start admin key and the hardening headers.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::time::Duration;

use common::{TestApp, client_with_key, spawn_configured};
use orderly_auth::Role;
use serde_json::{Value, json};

/// Every protected route with a body it would accept from an admin.
fn protected_routes() -> Vec<(reqwest::Method, &'static str, Option<Value>)> {
    use reqwest::Method;
    let order = json!({"userId": "u", "items": [{"productId": "PROD-001", "qty": 1}]});
    let id = "0196a1d2-7c3e-7a10-9b1c-2d3e4f5a6b7c";
    let order_path: &'static str = Box::leak(format!("/orders/{id}").into_boxed_str());
    let events_path: &'static str = Box::leak(format!("/orders/{id}/events").into_boxed_str());
    let webhook_path = "/admin/webhooks/0196a1d2-7c3e-7a10-9b1c-2d3e4f5a6b7c";
    let deliveries_path = "/admin/webhooks/0196a1d2-7c3e-7a10-9b1c-2d3e4f5a6b7c/deliveries";
    vec![
        (Method::GET, "/orders", None),
        (Method::POST, "/orders", Some(order)),
        (Method::GET, order_path, None),
        (Method::DELETE, order_path, None),
        (Method::GET, events_path, None),
        (Method::GET, "/products", None),
        (Method::GET, "/products/PROD-001", None),
        (
            Method::PUT,
            "/products/PROD-NEW",
            Some(json!({"name": "n", "price": 1.0, "stock": 1, "category": "c"})),
        ),
        (Method::GET, "/admin/dlq", None),
        (Method::POST, "/admin/dlq/replay", Some(json!({}))),
        (Method::GET, "/admin/alarms", None),
        (Method::GET, "/metrics", None),
        (
            Method::POST,
            "/admin/webhooks",
            Some(json!({"url": "https://hooks.example.com/x", "events": ["*"]})),
        ),
        (Method::GET, "/admin/webhooks", None),
        (Method::GET, webhook_path, None),
        (Method::PATCH, webhook_path, Some(json!({"active": false}))),
        (Method::DELETE, webhook_path, None),
        (Method::GET, deliveries_path, None),
    ]
}

async fn send(
    client: &reqwest::Client,
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut rb = client.request(method, app.url(path));
    if let Some(b) = body {
        rb = rb.json(b);
    }
    rb.send().await.unwrap()
}

/// Creates a key on the running server's store (as `orderly keys create` does).
async fn create_key(app: &TestApp, role: Role, user: Option<&str>) -> (String, String) {
    let cfg = orderly::ServeConfig::new(app.data_dir.clone());
    let opened = orderly::open_backend(&cfg).await.unwrap();
    let k = opened
        .keys
        .create(role, user.map(|u| u.parse().unwrap()), None)
        .await
        .unwrap();
    opened.close().await.unwrap();
    (k.key, k.record.id)
}

async fn revoke_key(app: &TestApp, id: &str) {
    let cfg = orderly::ServeConfig::new(app.data_dir.clone());
    let opened = orderly::open_backend(&cfg).await.unwrap();
    assert!(opened.keys.revoke(id).await.unwrap());
    opened.close().await.unwrap();
}

async fn assert_unauthorized(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), 401, "{what}");
    let challenge = r.headers().get("www-authenticate").cloned();
    assert!(
        challenge.is_some_and(|c| c.to_str().unwrap().contains("ApiKey")),
        "{what}: 401 carries WWW-Authenticate"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized", "{what}: {body}");
}

#[tokio::test]
async fn every_route_needs_a_valid_unrevoked_credential() {
    let app = spawn_configured(|_| {}).await;
    let anonymous = reqwest::Client::new();
    let (customer_key, customer_id) = create_key(&app, Role::Customer, Some("carol")).await;
    let customer = client_with_key(&customer_key);
    let garbage = client_with_key("oly_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for (method, path, body) in protected_routes() {
        let what = format!("{method} {path}");
        let r = send(&anonymous, &app, method.clone(), path, body.as_ref()).await;
        assert_unauthorized(r, &format!("{what} without credentials")).await;
        let r = send(&garbage, &app, method.clone(), path, body.as_ref()).await;
        assert_unauthorized(r, &format!("{what} with an unknown key")).await;
        let r = anonymous
            .request(method.clone(), app.url(path))
            .header("authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .unwrap();
        assert_unauthorized(r, &format!("{what} with Basic auth")).await;
    }
    // The probes stay open.
    for path in ["/health", "/ready"] {
        assert_eq!(
            anonymous.get(app.url(path)).send().await.unwrap().status(),
            200
        );
    }
    // Nothing was created by any refused request.
    let (_, page) = app.get_json("/orders").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);

    // A valid key does not carry an invalid credential through with it.
    let r = customer
        .get(app.url("/products"))
        .header("authorization", "Bearer garbage")
        .send()
        .await
        .unwrap();
    assert_unauthorized(r, "a valid key with a bad bearer token").await;
    let r = anonymous
        .get(app.url("/products"))
        .header("authorization", "Bearer garbage")
        .send()
        .await
        .unwrap();
    assert_unauthorized(r, "a bad bearer token alone").await;

    // A working customer key stops working once revoked.
    let r = customer.get(app.url("/products")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    revoke_key(&app, &customer_id).await;
    let r = customer.get(app.url("/products")).send().await.unwrap();
    assert_unauthorized(r, "a revoked key").await;
}

#[tokio::test]
async fn customers_get_403_on_admin_routes() {
    let app = spawn_configured(|_| {}).await;
    let (key, _) = create_key(&app, Role::Customer, Some("carol")).await;
    let customer = client_with_key(&key);
    for (method, path, body) in protected_routes() {
        if !(path.starts_with("/admin") || path == "/metrics" || method == reqwest::Method::PUT) {
            continue;
        }
        let r = send(&customer, &app, method.clone(), path, body.as_ref()).await;
        assert_eq!(r.status(), 403, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "forbidden");
    }
    // The product was not created.
    assert_eq!(app.get("/products/PROD-NEW").await.status(), 404);
}

#[tokio::test]
async fn a_customer_sees_and_changes_only_their_own_orders() {
    let app = spawn_configured(|c| c.run_worker = false).await;
    let (a_key, _) = create_key(&app, Role::Customer, Some("alice")).await;
    let (b_key, _) = create_key(&app, Role::Customer, Some("bob")).await;
    let (alice, bob) = (client_with_key(&a_key), client_with_key(&b_key));
    let line = json!([{"productId": "PROD-002", "qty": 1}]);

    // userId is filled from the key; naming yourself is fine; naming another is 403.
    let r = alice
        .post(app.url("/orders"))
        .json(&json!({"items": line}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["userId"], "alice");
    let id = order["orderId"].as_str().unwrap().to_owned();
    let r = alice
        .post(app.url("/orders"))
        .json(&json!({"userId": "alice", "items": line}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = bob
        .post(app.url("/orders"))
        .json(&json!({"userId": "alice", "items": line}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "bob cannot order for alice");
    let r = bob
        .post(app.url("/orders"))
        .json(&json!({"items": line}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let bobs: Value = r.json().await.unwrap();

    // Bob cannot read, read the events of, or cancel Alice's order: 404 as if absent.
    let missing = app.url("/orders/0196a1d2-7c3e-7a10-9b1c-2d3e4f5a6b7c");
    let absent: Value = bob
        .get(&missing)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (method, path) in [
        (reqwest::Method::GET, format!("/orders/{id}")),
        (reqwest::Method::GET, format!("/orders/{id}/events")),
        (reqwest::Method::DELETE, format!("/orders/{id}")),
    ] {
        let r = bob
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], absent["error"]);
        assert_eq!(
            body["message"].as_str().unwrap().replace(&id, "ID"),
            absent["message"]
                .as_str()
                .unwrap()
                .replace("0196a1d2-7c3e-7a10-9b1c-2d3e4f5a6b7c", "ID"),
            "another user's order looks exactly like a missing one"
        );
    }
    let (_, still) = app.get_json(&format!("/orders/{id}")).await;
    assert_eq!(still["status"], "PENDING", "bob's cancel changed nothing");

    // Lists: each sees only their own; asking for another user's is refused.
    let list = |c: &reqwest::Client, q: &str| {
        let c = c.clone();
        let url = app.url(&format!("/orders{q}"));
        async move { c.get(url).send().await.unwrap() }
    };
    let page: Value = list(&bob, "").await.json().await.unwrap();
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["orderId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![bobs["orderId"].as_str().unwrap()]);
    assert_eq!(list(&bob, "?userId=alice").await.status(), 403);
    let page: Value = list(&alice, "?status=PENDING").await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    // An admin key bound to no user must name the user.
    let (ops_key, _) = create_key(&app, Role::Admin, None).await;
    let r = client_with_key(&ops_key)
        .post(app.url("/orders"))
        .json(&json!({"items": line}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["details"][0]["field"], "userId", "{body}");
    // The admin sees all three.
    let (_, all) = app.get_json("/orders").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3);

    // Alice can cancel her own.
    let r = alice
        .delete(app.url(&format!("/orders/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn hs256_token(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn bearer_jwts_are_verified_and_map_to_roles() {
    let secret = b"a development secret of at least thirty-two bytes".to_vec();
    let s = secret.clone();
    let app = spawn_configured(move |c| {
        c.run_worker = false;
        c.auth.jwt = Some(orderly_auth::jwt::JwtConfig {
            issuer: Some("https://issuer.example".into()),
            audience: Some("orderly-web".into()),
            hs256_secret: Some(s),
            ..orderly_auth::jwt::JwtConfig::default()
        });
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |sub: &str, exp: u64, groups: &[&str]| {
        json!({"sub": sub, "iss": "https://issuer.example", "client_id": "orderly-web",
               "token_use": "access", "exp": exp, "cognito:groups": groups})
    };
    let bearer = |token: String| {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        reqwest::Client::builder()
            .default_headers(h)
            .build()
            .unwrap()
    };
    let dave = bearer(hs256_token(&secret, &claims("dave", now + 600, &[])));
    let r = dave
        .post(app.url("/orders"))
        .json(&json!({"items": [{"productId": "PROD-001", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["userId"], "dave");
    assert_eq!(
        dave.get(app.url("/admin/dlq"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let admin = bearer(hs256_token(&secret, &claims("root", now + 600, &["admin"])));
    assert_eq!(
        admin
            .get(app.url("/admin/dlq"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let expired = bearer(hs256_token(&secret, &claims("dave", now - 3600, &[])));
    let forged = bearer(hs256_token(
        b"another secret, also thirty-two bytes long",
        &claims("dave", now + 600, &["admin"]),
    ));
    let mut wrong_issuer = claims("dave", now + 600, &[]);
    wrong_issuer["iss"] = json!("https://evil.example");
    let wrong_issuer = bearer(hs256_token(&secret, &wrong_issuer));
    for (client, what) in [
        (&expired, "an expired token"),
        (&forged, "a wrongly signed token"),
        (&wrong_issuer, "another issuer's token"),
    ] {
        let r = client.get(app.url("/products")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains("Bearer"), "{what}: {challenge}");
    }
}

#[tokio::test]
async fn a_burst_above_the_limit_gets_429s_and_each_accepted_order_is_stored_once() {
    let app = spawn_configured(|c| {
        c.run_worker = false;
        c.auth.rate_limit = orderly_auth::limit::RateLimitConfig {
            per_credential_rps: 5.0,
            burst: 10,
            global_rps: 10_000.0,
            global_burst: 20_000,
        };
    })
    .await;
    let (key, _) = create_key(&app, Role::Customer, Some("burst")).await;
    let customer = client_with_key(&key);
    let stock_before = app.stock("PROD-002").await;
    let sends = (0..40).map(|i| {
        let c = customer.clone();
        let url = app.url("/orders");
        async move {
            c.post(url)
                .header("idempotency-key", format!("burst-{i}"))
                .json(&json!({"items": [{"productId": "PROD-002", "qty": 1}]}))
                .send()
                .await
                .unwrap()
        }
    });
    let responses = futures::future::join_all(sends).await;
    let mut accepted = Vec::new();
    let mut limited = 0;
    let mut retry_after = 0u64;
    for r in responses {
        match r.status().as_u16() {
            201 => {
                let v: Value = r.json().await.unwrap();
                accepted.push(v["orderId"].as_str().unwrap().to_owned());
            }
            429 => {
                limited += 1;
                let ra: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=2).contains(&ra), "Retry-After {ra}");
                retry_after = retry_after.max(ra);
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["error"], "rate_limited");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // The burst of 10, plus at most a token or two refilled while the requests ran.
    assert!(
        (10..=13).contains(&accepted.len()),
        "accepted {}",
        accepted.len()
    );
    assert_eq!(accepted.len() + limited, 40);
    // The admin (its own bucket) sees exactly the accepted orders, each once.
    let (_, page) = app.get_json("/orders?userId=burst&limit=100").await;
    let mut stored: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["orderId"].as_str().unwrap().to_owned())
        .collect();
    stored.sort();
    accepted.sort();
    assert_eq!(stored, accepted);
    assert_eq!(
        app.stock("PROD-002").await,
        stock_before,
        "the API alone reserves nothing"
    );

    // After waiting, the client is served again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let r = customer.get(app.url("/orders")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_first_start_creates_one_admin_key_readable_by_its_owner_only() {
    let mut app = spawn_configured(|_| {}).await;
    let path = app.data_dir.join(orderly::ADMIN_KEY_FILE);
    let key = std::fs::read_to_string(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "admin.key mode {mode:o}");
    }
    app.restart().await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        key,
        "no second key"
    );
    let cfg = orderly::ServeConfig::new(app.data_dir.clone());
    let opened = orderly::open_backend(&cfg).await.unwrap();
    let keys = opened.keys.list().await.unwrap();
    opened.close().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].role, Role::Admin);
    assert!(!key.contains(&keys[0].secret_hash));
    assert_eq!(app.get("/orders").await.status(), 200);
}

#[tokio::test]
async fn responses_carry_security_headers_and_cors_only_when_configured() {
    let app = spawn_configured(|c| c.http.max_body_bytes = 1024).await;
    let r = app
        .client
        .get(app.url("/products"))
        .header("origin", "https://shop.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "CORS is off by default"
    );
    // A body over the limit: 413 before anything is stored.
    let big = json!({"userId": "x".repeat(2000), "items": [{"productId": "PROD-001", "qty": 1}]});
    let r = app.post_order(&big).await;
    assert_eq!(r.status(), 413);

    let cors =
        spawn_configured(|c| c.http.cors_origins = vec!["https://shop.example.com".into()]).await;
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, cors.url("/orders"))
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-api-key, content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    let other = cors
        .client
        .get(cors.url("/products"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

/// The test-only RSA keys of `crates/orderly-auth/tests/fixtures`.
fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/orderly-auth/tests/fixtures")
        .join(name)
}

fn rs256_token(pem_file: &str, kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    // PKCS#1 PEM: the base64 body is the DER key.
    use base64::Engine;
    let pem = std::fs::read_to_string(fixture(pem_file)).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(&der),
    )
    .unwrap()
}

#[tokio::test]
async fn cognito_style_rs256_tokens_verify_against_the_jwks() {
    let issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Test";
    let app = spawn_configured(move |c| {
        c.run_worker = false;
        c.auth.jwt = Some(orderly_auth::jwt::JwtConfig {
            issuer: Some(issuer.into()),
            audience: Some("app-client".into()),
            token_use: Some("access".into()),
            jwks: Some(orderly_auth::jwt::JwksSource::File(fixture("jwks_a.json"))),
            ..orderly_auth::jwt::JwtConfig::default()
        });
    })
    .await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = json!({"sub": "erin", "iss": issuer, "client_id": "app-client",
                        "token_use": "access", "exp": exp});
    let call = |token: String| {
        let c = reqwest::Client::new();
        let url = app.url("/orders");
        async move {
            c.get(url)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        call(rs256_token("rsa_a.pem", "test-key-a", &claims)).await,
        200
    );
    // Signed by another key under the same key id: refused.
    assert_eq!(
        call(rs256_token("rsa_b.pem", "test-key-a", &claims)).await,
        401
    );
    // An ID token where access tokens are required: refused.
    let mut id_token = claims.clone();
    id_token["token_use"] = json!("id");
    assert_eq!(
        call(rs256_token("rsa_a.pem", "test-key-a", &id_token)).await,
        401
    );
}

#[tokio::test]
async fn idempotency_keys_belong_to_their_caller() {
    let app = spawn_configured(|_| {}).await;
    let (carol_key, _) = create_key(&app, Role::Customer, Some("carol")).await;
    let (dave_key, _) = create_key(&app, Role::Customer, Some("dave")).await;
    let post = |key: &str, qty: u32| {
        client_with_key(key)
            .post(app.url("/orders"))
            .header("idempotency-key", "order-1001")
            .json(&json!({"items": [{"productId": "PROD-001", "qty": qty}]}))
            .send()
    };
    let carol = post(&carol_key, 1).await.unwrap();
    assert_eq!(carol.status(), 201);
    let carol: Value = carol.json().await.unwrap();
    // Dave's equal key with another body is his own key: a new order, no 422.
    let dave = post(&dave_key, 2).await.unwrap();
    assert_eq!(
        dave.status(),
        201,
        "another caller's key does not block this one"
    );
    let dave: Value = dave.json().await.unwrap();
    assert_ne!(carol["orderId"], dave["orderId"]);
    assert_eq!(dave["userId"], "dave");
    // Each retry replays its own caller's order.
    let again = post(&carol_key, 1).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.json::<Value>().await.unwrap()["orderId"],
        carol["orderId"]
    );
    let again = post(&dave_key, 2).await.unwrap();
    assert_eq!(
        again.json::<Value>().await.unwrap()["orderId"],
        dave["orderId"]
    );
}

#[tokio::test]
async fn an_answer_before_the_body_closes_the_connection_and_says_so() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_configured(|_| {}).await;
    let addr = app
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let body = r#"{"items":[{"productId":"PROD-001","qty":1}]}"#;
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /orders HTTP/1.1\r\nHost: x\r\nx-api-key: oly_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(
        read.is_ok(),
        "the server closes the connection after the 401: {text}"
    );
    assert!(text.starts_with("http/1.1 401"), "{text}");
    assert!(text.contains("connection: close"), "{text}");

    // A client that keeps its connection alive never sends into a closed one: every
    // request of a burst is answered.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for i in 0..300 {
        let r = client
            .post(app.url("/orders"))
            .header(
                "x-api-key",
                "oly_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} was not answered: {e}"));
        // 401, or 429 once the failed authentications of this address are over their
        // limit: both answered before the body, both closing the connection.
        assert!(
            matches!(r.status().as_u16(), 401 | 429),
            "request {i}: {}",
            r.status()
        );
    }
}

#[tokio::test]
async fn failed_authentications_are_limited_per_client_address() {
    let app = spawn_configured(|_| {}).await;
    let wrong = client_with_key("oly_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let (mut unauthorized, mut limited) = (0, 0);
    for _ in 0..300 {
        let r = wrong.get(app.url("/products")).send().await.unwrap();
        match r.status().as_u16() {
            401 => unauthorized += 1,
            429 => {
                let retry: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1, "Retry-After {retry}");
                let body: Value = r.json().await.unwrap();
                assert!(
                    body["message"]
                        .as_str()
                        .unwrap()
                        .contains("failed authentications")
                );
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // The burst (100) and what refilled meanwhile (10 a second) get their 401; the rest 429.
    assert!(
        (100..=140).contains(&unauthorized),
        "{unauthorized} answered 401, {limited} 429"
    );
    assert_eq!(unauthorized + limited, 300);
}
