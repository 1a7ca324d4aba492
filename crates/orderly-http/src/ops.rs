//! Operations: HTTP request metrics for every response, `GET /metrics` (Prometheus text)
//! and `GET /admin/alarms`, both admin-only.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orderly_core::metrics as m;
use serde_json::json;

use crate::schemas::AlarmStatus;
use crate::{Admin, ApiError, AppState};

/// What the process knows about itself: the metrics registry and the alarms. The binary
/// implements it; the API Lambda has none (its metrics go out as CloudWatch EMF).
pub trait OpsView: Send + Sync + std::fmt::Debug {
    /// The metrics in Prometheus text exposition format.
    fn metrics_text(&self) -> String;
    /// Every alarm and its state.
    fn alarms(&self) -> Vec<AlarmStatus>;
}

/// Shared handle.
pub type Ops = Arc<dyn OpsView>;

/// Counts every response by route template, method and status, and times it.
pub async fn record_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!(m::HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(m::HTTP_REQUEST_DURATION, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    resp
}

fn not_here(what: &str) -> ApiError {
    ApiError::NotFound {
        message: format!(
            "{what} are not served by this process (in Lambda, metrics go to CloudWatch)"
        ),
    }
}

/// `GET /metrics`
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "admin",
    operation_id = "metrics",
    summary = "Metrics in Prometheus text format (admin only)",
    description = "Orders created/confirmed/failed/cancelled/fulfilled, payments, inventory, \
        HTTP requests by route and status with latency histograms, saga duration by outcome, \
        queue depth, DLQ depth, oldest message age, alarm states. Names: \
        `orderly_core::metrics`. 404 where the process keeps no registry (the API Lambda \
        sends CloudWatch EMF instead).",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4.",
            content_type = "text/plain", body = String),
        (status = 404, response = crate::schemas::NotFound),
    ),
)]
pub async fn metrics_endpoint(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let ops = state.ops.as_ref().ok_or_else(|| not_here("metrics"))?;
    let mut resp = ops.metrics_text().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}

/// `GET /admin/alarms`
#[utoipa::path(
    get,
    path = "/admin/alarms",
    tag = "admin",
    operation_id = "listAlarms",
    summary = "Alarms and their states (admin only)",
    description = "The in-process alarms: DLQ depth, saga failure rate and 5xx rate over \
        their window, each OK, ALARM or INSUFFICIENT_DATA.",
    responses(
        (status = 200, description = "Every alarm.", body = crate::schemas::AlarmList),
        (status = 404, response = crate::schemas::NotFound),
    ),
)]
pub async fn alarms_endpoint(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let ops = state.ops.as_ref().ok_or_else(|| not_here("alarms"))?;
    Ok(axum::Json(json!({ "items": ops.alarms() })).into_response())
}
