//! # orderly-http
//!
//! The REST API (docs/api.md) as one `axum::Router` ([`router`]), served the same way by
//! `orderly serve` and inside the API Lambda. Handlers parse requests into domain types
//! with `orderly_core::input`, call the use cases of [`orderly_core::Orderly`] and map
//! every failure to the one [`ApiError`] type.
//!
//! It may depend on `orderly-core`, axum, tower and serde; never on a concrete store:
//! adapters arrive already wired inside the `Orderly` value.

pub mod auth;
pub mod dashboard;
mod error;
mod extract;
mod hardening;
pub mod openapi;
pub mod ops;
pub mod schemas;
pub mod server;
mod webhooks;

use axum::Router;
use axum::extract::{MatchedPath, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use orderly_auth::Principal;
use orderly_core::input::{parse_create_order_exact, parse_list_orders, parse_product_exact};
use orderly_core::shape::Shape;
use orderly_core::{IdempotencyKey, OrderId, Orderly, ProductId, UserId};
use serde_json::json;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use auth::{Admin, Authenticator, Caller, GatewayIdentity};
pub use error::ApiError;
use extract::AmountsBody;
pub use hardening::{Gate, parse_cors_origins};

/// Limits and switches of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest accepted request body in bytes (413 above it).
    pub max_body_bytes: usize,
    /// A request still running after this long is answered 503 (`overloaded`).
    pub request_timeout: std::time::Duration,
    /// Requests handled at once; more are answered 503 at once rather than queued. A
    /// request's body is read before it takes a place here, so slow senders hold none.
    pub max_concurrent_requests: usize,
    /// Requests one credential may have in flight at once, its body read included; more
    /// are answered 429 at once.
    pub max_concurrent_per_credential: usize,
    /// A request body must arrive in full within this long (408 otherwise).
    pub body_read_timeout: std::time::Duration,
    /// A connection must deliver a request's headers within this long of its first byte
    /// (or of opening); otherwise it is closed.
    pub header_read_timeout: std::time::Duration,
    /// A connection idle this long between requests is closed.
    pub keep_alive_timeout: std::time::Duration,
    /// Open connections at most (further lowered to fit the process's file limit). At the
    /// cap, a new connection replaces the longest-idle one, or is refused if none is idle.
    pub max_connections: usize,
    /// On shutdown, how long requests already read may take to be answered.
    pub drain_timeout: std::time::Duration,
    /// Origins allowed to call the API from a browser (CORS). Empty: CORS is off and
    /// browsers get no `Access-Control-*` headers.
    pub cors_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            max_body_bytes: 64 * 1024,
            request_timeout: std::time::Duration::from_secs(30),
            max_concurrent_requests: 1024,
            max_concurrent_per_credential: 64,
            body_read_timeout: std::time::Duration::from_secs(10),
            header_read_timeout: std::time::Duration::from_secs(5),
            keep_alive_timeout: std::time::Duration::from_secs(30),
            max_connections: 10_000,
            drain_timeout: std::time::Duration::from_secs(10),
            cors_origins: Vec::new(),
        }
    }
}

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub app: Orderly,
    pub config: HttpConfig,
    pub auth: Arc<Authenticator>,
    /// Metrics and alarms of this process (`GET /metrics`, `GET /admin/alarms`).
    pub ops: Option<ops::Ops>,
}

type ApiResult<T> = Result<T, ApiError>;

/// The header that marks a replayed idempotent response.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Builds the API: the protected routes behind authentication and rate limiting, the
/// public probes, and the hardening layers around everything.
pub fn router(state: AppState) -> Router {
    let x_request_id = header::HeaderName::from_static("x-request-id");
    let protected = Router::new()
        .route("/orders", get(list_orders).post(create_order))
        .route("/orders/{order_id}", get(get_order).delete(cancel_order))
        .route("/orders/{order_id}/events", get(order_events))
        .route("/products", get(list_products))
        .route("/products/{product_id}", get(get_product).put(put_product))
        .route("/admin/dlq", get(list_dead_letters))
        .route("/admin/alarms", get(ops::alarms_endpoint))
        .route("/metrics", get(ops::metrics_endpoint))
        .route("/admin/dlq/replay", post(replay_dead_letters))
        .route(
            "/admin/webhooks",
            get(webhooks::list_webhooks).post(webhooks::create_webhook),
        )
        .route(
            "/admin/webhooks/{webhook_id}",
            get(webhooks::get_webhook)
                .patch(webhooks::update_webhook)
                .delete(webhooks::delete_webhook),
        )
        .route(
            "/admin/webhooks/{webhook_id}/deliveries",
            get(webhooks::list_deliveries),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    let public = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready));
    let config = state.config.clone();
    let router = public
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .merge(openapi::docs_router())
        .merge(dashboard::dashboard_router())
        .layer(axum::middleware::from_fn(ops::record_http));
    hardening::harden(router, &config)
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::Internal {
                    cause: "a request handler panicked".into(),
                }
                .into_response()
            },
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map(|m| m.as_str().to_owned())
                        .unwrap_or_default();
                    let request_id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        route,
                        request_id,
                        credential = tracing::field::Empty,
                        order_id = tracing::field::Empty,
                    )
                })
                .on_response(
                    |resp: &Response, latency: std::time::Duration, _span: &tracing::Span| {
                        tracing::info!(
                            status = resp.status().as_u16(),
                            latency_us = latency.as_micros() as u64,
                            "response"
                        );
                    },
                ),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

/// Adds the order id to the request's log span so every line about it carries the id.
fn record_order(id: &OrderId) {
    tracing::Span::current().record("order_id", tracing::field::display(id));
}

fn order_id(raw: &str) -> ApiResult<OrderId> {
    let id = raw
        .parse::<OrderId>()
        .map_err(|e| ApiError::bad_field("orderId", e.0))?;
    record_order(&id);
    Ok(id)
}

fn product_id(raw: &str) -> ApiResult<ProductId> {
    raw.parse::<ProductId>()
        .map_err(|e| ApiError::bad_field("productId", e.0))
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A customer's order is always their own: a missing `userId` is filled from the
/// credential and another user's is refused. Admins create orders for anyone; an admin
/// credential bound to a user fills in that user.
fn bind_user(caller: &Principal, mut body: serde_json::Value) -> ApiResult<serde_json::Value> {
    let Some(obj) = body.as_object_mut() else {
        return Ok(body);
    };
    match obj.get("userId") {
        None | Some(serde_json::Value::Null) => {
            if let Some(u) = &caller.user_id {
                obj.insert("userId".into(), json!(u.as_str()));
            }
        }
        Some(serde_json::Value::String(given)) => {
            if let Some(own) = caller.confined_to()
                && own.as_str() != given
            {
                return Err(ApiError::Forbidden {
                    message: "userId: a customer may create orders only for themselves".into(),
                });
            }
        }
        Some(_) => {}
    }
    Ok(body)
}

/// Another customer's order does not exist as far as this caller can tell.
fn ensure_visible(caller: &Principal, order_user: &UserId, id: OrderId) -> ApiResult<()> {
    match caller.confined_to() {
        Some(own) if own != order_user => Err(orderly_core::Error::NotFound {
            what: "order",
            id: id.to_string(),
        }
        .into()),
        _ => Ok(()),
    }
}

#[utoipa::path(
    post,
    path = "/orders",
    tag = "orders",
    operation_id = "createOrder",
    summary = "Place an order",
    description = "Prices the items from the catalogue, checks a given `totalAmount` and \
        accepts the order as `PENDING`; it is then processed asynchronously. A customer \
        creates orders only for themselves (their `userId` comes from the credential); an \
        admin creates orders for any user.\n\nWith an `Idempotency-Key`, repeating the same \
        payload (compared as parsed JSON) answers the first response again with \
        `Idempotent-Replayed: true`; the same key with another payload is 422, and while the \
        first request is still in flight 409. Without the header every POST is a new order.",
    params(
        ("Idempotency-Key" = Option<String>, Header, pattern = r#"^(?:"[ -~]{1,255}"|[!-~]|[!#-~][ -~]{0,253}[!-~]|[!-~][ -~]{0,253}[!#-~])$"#,
            description = "1 to 255 visible ASCII characters, optionally as a quoted \
            structured-field string (`\"abc\"`). Remembered for 24 hours."),
    ),
    request_body(content = schemas::CreateOrderRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Accepted (or replayed): the order as stored.", body = orderly_core::Order,
            headers(
                ("Location" = String, description = "`/orders/{orderId}` of the order."),
                ("Idempotent-Replayed" = String, description = "`true` when this is the \
                    stored answer to an earlier request with the same `Idempotency-Key`; \
                    absent otherwise."),
            )),
        (status = 400, response = schemas::BadRequest),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::Unprocessable),
    ),
)]
async fn create_order(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    AmountsBody(body, numbers): AmountsBody,
) -> ApiResult<Response> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let text = v.to_str().map_err(|_| {
                ApiError::bad_field("Idempotency-Key", "may contain only visible ASCII")
            })?;
            Some(
                text.parse::<IdempotencyKey>()
                    .map_err(|e| ApiError::bad_field("Idempotency-Key", e.0))?,
            )
        }
    };
    // Keys are the caller's own: another caller's equal key is another key.
    let key = key.map(|k| k.scoped(&caller.idempotency_scope()));
    let body = bind_user(&caller, body)?;
    let req = parse_create_order_exact(&body, &numbers)?;
    let placed = state.app.place_order(req, &body, key).await?;
    record_order(&placed.order_id);
    let mut resp = json_response(StatusCode::CREATED, placed.body);
    let location = format!("/orders/{}", placed.order_id);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if placed.replayed {
        resp.headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(resp)
}

#[utoipa::path(
    get,
    path = "/orders/{orderId}",
    tag = "orders",
    operation_id = "getOrder",
    summary = "One order",
    description = "A customer sees only their own orders: another customer's order is 404, \
        as if it did not exist. Admins see every order.",
    params(("orderId" = orderly_core::OrderId, Path, description = "The order's id (a UUID).")),
    responses(
        (status = 200, description = "The order.", body = orderly_core::Order),
        (status = 400, response = schemas::BadRequest),
        (status = 404, response = schemas::NotFound),
    ),
)]
async fn get_order(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(raw): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = order_id(&raw)?;
    let order = state.app.order(id).await?;
    ensure_visible(&caller, &order.user_id, id)?;
    Ok(axum::Json(order))
}

#[utoipa::path(
    get,
    path = "/orders",
    tag = "orders",
    operation_id = "listOrders",
    summary = "List orders, newest first",
    description = "One page of orders matching the filters. A customer lists only their own \
        orders (`userId`, if given, must be their own, else 403); admins list everyone's. \
        Every parameter may be given at most once; unknown parameters are 400.",
    params(schemas::ListOrdersParams),
    responses(
        (status = 200, description = "One page; `nextCursor` is null on the last page.",
            body = ref("#/components/schemas/OrderPage")),
        (status = 400, response = schemas::BadRequest),
    ),
)]
async fn list_orders(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(pairs) = query.map_err(|e| ApiError::BadRequest {
        code: "bad_query",
        message: format!("the query string is malformed: {}", e.body_text()),
        details: vec![],
    })?;
    let mut q = parse_list_orders(&pairs)?;
    if let Some(own) = caller.confined_to() {
        match &q.filter.user_id {
            Some(asked) if asked != own => {
                return Err(ApiError::Forbidden {
                    message: "userId: a customer may list only their own orders".into(),
                });
            }
            _ => q.filter.user_id = Some(own.clone()),
        }
    }
    Ok(axum::Json(state.app.list_orders(&q).await?))
}

#[utoipa::path(
    delete,
    path = "/orders/{orderId}",
    tag = "orders",
    operation_id = "cancelOrder",
    summary = "Cancel an order",
    description = "A `PENDING` or `CONFIRMED` order becomes `CANCELLED` and its compensations \
        run (refund, restock); the record stays. Cancelling a cancelled order is harmless and \
        answers it again; a `FULFILLED` or `FAILED` order is 409. A customer cancels only \
        their own orders (another customer's is 404); admins cancel any.",
    params(("orderId" = orderly_core::OrderId, Path, description = "The order's id (a UUID).")),
    responses(
        (status = 200, description = "The order, now `CANCELLED`.", body = orderly_core::Order),
        (status = 400, response = schemas::BadRequest),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
    ),
)]
async fn cancel_order(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(raw): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = order_id(&raw)?;
    if caller.confined_to().is_some() {
        // The owner never changes, so checking before cancelling is race-free.
        let order = state.app.order(id).await?;
        ensure_visible(&caller, &order.user_id, id)?;
    }
    Ok(axum::Json(state.app.cancel_order(id).await?))
}

#[utoipa::path(
    get,
    path = "/orders/{orderId}/events",
    tag = "orders",
    operation_id = "orderEvents",
    summary = "An order's timeline",
    description = "Every domain event of the order, oldest first. A customer reads only their \
        own orders' timelines (another customer's order is 404).",
    params(("orderId" = orderly_core::OrderId, Path, description = "The order's id (a UUID).")),
    responses(
        (status = 200, description = "The events.", body = schemas::OrderEvents),
        (status = 400, response = schemas::BadRequest),
        (status = 404, response = schemas::NotFound),
    ),
)]
async fn order_events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(raw): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = order_id(&raw)?;
    if caller.confined_to().is_some() {
        let order = state.app.order(id).await?;
        ensure_visible(&caller, &order.user_id, id)?;
    }
    let events = state.app.order_events(id).await?;
    Ok(axum::Json(json!({ "orderId": id, "items": events })))
}

#[utoipa::path(
    get,
    path = "/products",
    tag = "products",
    operation_id = "listProducts",
    summary = "The catalogue",
    description = "Every product with its price and available stock. Customers and admins.",
    responses((status = 200, description = "The products.", body = schemas::ProductList)),
)]
async fn list_products(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(json!({ "items": state.app.products().await? })))
}

#[utoipa::path(
    get,
    path = "/products/{productId}",
    tag = "products",
    operation_id = "getProduct",
    summary = "One product",
    description = "A product with its price and available stock. Customers and admins.",
    params(("productId" = orderly_core::ProductId, Path, description = "The product's id.")),
    responses(
        (status = 200, description = "The product.", body = orderly_core::Product),
        (status = 400, response = schemas::BadRequest),
        (status = 404, response = schemas::NotFound),
    ),
)]
async fn get_product(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = product_id(&raw)?;
    Ok(axum::Json(state.app.product(&id).await?))
}

#[utoipa::path(
    put,
    path = "/products/{productId}",
    tag = "products",
    operation_id = "putProduct",
    summary = "Create or replace a product (admin only)",
    description = "Sets the product's name, price, stock and category; 201 when it is new, 200 \
        when it replaced an existing one. Admins only: a customer gets 403.",
    params(("productId" = orderly_core::ProductId, Path, description = "The product's id.")),
    request_body(content = schemas::ProductRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced.", body = orderly_core::Product),
        (status = 201, description = "Created.", body = orderly_core::Product),
        (status = 400, response = schemas::BadRequest),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
    ),
)]
async fn put_product(
    State(state): State<AppState>,
    _admin: Admin,
    Path(raw): Path<String>,
    AmountsBody(body, numbers): AmountsBody,
) -> ApiResult<impl IntoResponse> {
    let spec = parse_product_exact(&raw, &body, &numbers)?;
    let (product, created) = state.app.put_product(spec).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(product)))
}

#[utoipa::path(
    get,
    path = "/admin/dlq",
    tag = "admin",
    operation_id = "listDeadLetters",
    summary = "Dead-lettered messages (admin only)",
    description = "Messages that failed 3 times, oldest first (kept 14 days). Admins only: a \
        customer gets 403. Unknown parameters are 400.",
    params(schemas::AdminListParams),
    responses(
        (status = 200, description = "The dead letters.", body = schemas::DeadLetterList),
        (status = 400, response = schemas::BadRequest),
    ),
)]
async fn list_dead_letters(
    State(state): State<AppState>,
    _admin: Admin,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let limit = limit_only(query)?;
    let items = state.app.dead_letters(limit).await?;
    Ok(axum::Json(json!({ "items": items })))
}

/// `POST /admin/dlq/replay` with no body or `{}` replays everything; `{"ids": [...]}` only
/// those dead letters.
#[utoipa::path(
    post,
    path = "/admin/dlq/replay",
    tag = "admin",
    operation_id = "replayDeadLetters",
    summary = "Replay dead letters (admin only)",
    description = "Moves dead letters back to their queues with a fresh receive count: all of \
        them (no body, `{}` or `{\"ids\": null}`), or those named in `ids` (unknown ids are \
        skipped). Replaying an order that is already finished does nothing. Admins only: a \
        customer gets 403.",
    request_body(content = Option<schemas::ReplayRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The ids moved.", body = schemas::ReplayResult),
        (status = 400, response = schemas::BadRequest),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
    ),
)]
async fn replay_dead_letters(
    State(state): State<AppState>,
    _admin: Admin,
    extract::OptionalJsonBytes(body): extract::OptionalJsonBytes,
) -> ApiResult<impl IntoResponse> {
    // Only an absent (empty) body means "all": a body of whitespace is a malformed request,
    // and an operator's malformed request must never widen to every dead letter.
    let ids = if body.is_empty() {
        None
    } else if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            code: "malformed_json",
            message: "the request body is blank: send no body, {} or {\"ids\": [...]}".into(),
            details: vec![orderly_core::FieldError::new("body", "is blank")],
        });
    } else {
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
                code: "malformed_json",
                message: format!("the request body is not valid JSON: {e}"),
                details: vec![orderly_core::FieldError::new("body", "is not valid JSON")],
            })?;
        let none = orderly_core::input::NumberTexts::default();
        orderly_core::input::ReplayBody::parse(&v, &none, Vec::new())?.ids
    };
    let replayed = state.app.replay_dead_letters(ids).await?;
    Ok(axum::Json(json!({ "replayed": replayed })))
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    operation_id = "health",
    summary = "Liveness",
    description = "Answers while the process runs. Public.",
    responses((status = 200, description = "Alive.", body = schemas::Health)),
)]
async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    operation_id = "ready",
    summary = "Readiness",
    description = "Ready when the store is reachable and migrated and the server has room for \
        more work (503 `overloaded` otherwise). Public.",
    responses(
        (status = 200, description = "Ready.", body = schemas::Readiness),
        (status = 503, description = "Not ready (`not_ready`), or overloaded (`overloaded`: \
            every place for a request in flight, or every connection, is taken).", body = error::Body),
    ),
)]
async fn ready(
    State(state): State<AppState>,
    gate: Option<axum::Extension<Arc<hardening::Gate>>>,
    load: Option<axum::Extension<Arc<server::Load>>>,
) -> Response {
    let gate_full = gate.is_some_and(|g| g.saturated());
    let conns_full = load.is_some_and(|l| l.saturated());
    if gate_full || conns_full {
        let body = json!({
            "error": "overloaded",
            "message": if gate_full {
                "every place for a request in flight is taken"
            } else {
                "the server is at its connection cap"
            },
            "details": [],
        });
        let mut resp = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    }
    match state.app.ready().await {
        Ok(()) => axum::Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            let body = json!({
                "error": "not_ready",
                "message": "the store is not ready",
                "details": [],
            });
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound {
        message: format!("there is no route for {method} {}", uri.path()),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        message: format!("{} does not accept {method}", uri.path()),
    }
}

/// The query of the admin lists: only `limit`, 1 to 1000 (default 100).
pub(crate) fn limit_only(
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<u32> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_field("query", e.body_text()))?;
    Ok(orderly_core::input::AdminListQuery::parse_query(&pairs)?
        .limit
        .0)
}
