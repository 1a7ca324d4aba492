//! # orderly-http
//!
//! The REST API of SPEC.md as one `axum::Router` ([`router`]), served the same way by
//! `orderly serve` and inside the API Lambda. Handlers parse requests into domain types
//! with `orderly_core::input`, call the use cases of [`orderly_core::Orderly`] and map
//! every failure to the one [`ApiError`] type.
//!
//! It may depend on `orderly-core`, axum, tower and serde; never on a concrete store:
//! adapters arrive already wired inside the `Orderly` value.

mod error;
mod extract;

use axum::Router;
use axum::extract::{MatchedPath, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use orderly_core::input::{parse_create_order, parse_list_orders, parse_product};
use orderly_core::{IdempotencyKey, OrderId, Orderly, ProductId};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
use extract::JsonBody;

/// Limits and switches of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest accepted request body in bytes (413 above it).
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            max_body_bytes: 64 * 1024,
        }
    }
}

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub app: Orderly,
    pub config: HttpConfig,
}

type ApiResult<T> = Result<T, ApiError>;

/// The header that marks a replayed idempotent response.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Builds the API.
pub fn router(state: AppState) -> Router {
    let x_request_id = header::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/orders", get(list_orders).post(create_order))
        .route("/orders/{order_id}", get(get_order).delete(cancel_order))
        .route("/orders/{order_id}/events", get(order_events))
        .route("/products", get(list_products))
        .route("/products/{product_id}", get(get_product).put(put_product))
        .route("/admin/dlq", get(list_dead_letters))
        .route(
            "/admin/dlq/replay",
            axum::routing::post(replay_dead_letters),
        )
        .route("/health", get(health))
        .route("/ready", get(ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
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
                        uri = %req.uri(),
                        route,
                        request_id,
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

async fn create_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
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
    let req = parse_create_order(&body)?;
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

async fn get_order(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = order_id(&raw)?;
    Ok(axum::Json(state.app.order(id).await?))
}

async fn list_orders(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(pairs) = query.map_err(|e| ApiError::BadRequest {
        code: "bad_query",
        message: format!("the query string is malformed: {}", e.body_text()),
        details: vec![],
    })?;
    let q = parse_list_orders(&pairs)?;
    Ok(axum::Json(state.app.list_orders(&q).await?))
}

async fn cancel_order(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = order_id(&raw)?;
    Ok(axum::Json(state.app.cancel_order(id).await?))
}

async fn order_events(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = order_id(&raw)?;
    let events = state.app.order_events(id).await?;
    Ok(axum::Json(json!({ "orderId": id, "items": events })))
}

async fn list_products(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(json!({ "items": state.app.products().await? })))
}

async fn get_product(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = product_id(&raw)?;
    Ok(axum::Json(state.app.product(&id).await?))
}

async fn put_product(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<impl IntoResponse> {
    let spec = parse_product(&raw, &body)?;
    let (product, created) = state.app.put_product(spec).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(product)))
}

async fn list_dead_letters(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_field("query", e.body_text()))?;
    let mut limit = 100;
    for (k, v) in pairs {
        match k.as_str() {
            "limit" => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_field("limit", "must be a whole number from 1 to 1000")
                    })?;
            }
            other => {
                return Err(ApiError::bad_field(
                    other,
                    "is not a known query parameter (expected limit)",
                ));
            }
        }
    }
    let items = state.app.dead_letters(limit).await?;
    Ok(axum::Json(json!({ "items": items })))
}

/// `POST /admin/dlq/replay` with no body or `{}` replays everything; `{"ids": [...]}` only
/// those dead letters.
async fn replay_dead_letters(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    let ids = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
                code: "malformed_json",
                message: format!("the request body is not valid JSON: {e}"),
                details: vec![orderly_core::FieldError::new("body", "is not valid JSON")],
            })?;
        let obj = v
            .as_object()
            .ok_or_else(|| ApiError::bad_field("body", "must be a JSON object"))?;
        if let Some(k) = obj.keys().find(|k| k.as_str() != "ids") {
            return Err(ApiError::bad_field(
                k,
                "is not a known field (expected ids)",
            ));
        }
        match obj.get("ids") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Array(a)) => Some(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| {
                        x.as_str().map(str::to_owned).ok_or_else(|| {
                            ApiError::bad_field(&format!("ids[{i}]"), "must be a string")
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => {
                return Err(ApiError::bad_field(
                    "ids",
                    "must be an array of dead-letter ids",
                ));
            }
        }
    };
    let replayed = state.app.replay_dead_letters(ids).await?;
    Ok(axum::Json(json!({ "replayed": replayed })))
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

async fn ready(State(state): State<AppState>) -> Response {
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
