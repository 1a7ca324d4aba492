//! The layers around every route: body size limit, request timeout, a cap on requests in
//! flight, security headers and (when configured) CORS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::{ApiError, HttpConfig};

/// Checks CORS origins (`https://shop.example.com`, or `*` for any origin).
pub fn parse_cors_origins(origins: &[String]) -> Result<Vec<HeaderValue>, String> {
    origins
        .iter()
        .map(|o| {
            let o = o.trim();
            let ok = o == "*"
                || ((o.starts_with("http://") || o.starts_with("https://"))
                    && !o.ends_with('/')
                    && !o.contains(char::is_whitespace));
            if !ok {
                return Err(format!(
                    "CORS origin {o:?} must look like https://host[:port] (no path) or be *"
                ));
            }
            HeaderValue::from_str(o).map_err(|_| format!("CORS origin {o:?} is not valid"))
        })
        .collect()
}

/// The CORS layer for the configured origins; `None` when CORS is off.
pub fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    let values = parse_cors_origins(origins)?;
    if values.is_empty() {
        return Ok(None);
    }
    let allow = if values.iter().any(|v| v == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static("idempotent-replayed"),
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    ))
}

/// What bounds the requests of this router: the in-flight cap, the timeouts and the
/// per-credential concurrency. The outer layer puts it in every request's extensions; the
/// authentication middleware uses it for requests with a body, which take their place in
/// the in-flight cap only once the body has arrived.
#[derive(Debug)]
pub struct Gate {
    in_flight: Arc<Semaphore>,
    request_timeout: Duration,
    body_timeout: Duration,
    max_body_bytes: usize,
    per_credential: usize,
    by_credential: Mutex<HashMap<String, usize>>,
}

/// A credential's place among its requests in flight; given back on drop.
#[derive(Debug)]
pub struct CredentialSlot {
    gate: Arc<Gate>,
    credential: String,
}

impl Drop for CredentialSlot {
    fn drop(&mut self) {
        let mut map = self
            .gate
            .by_credential
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.credential) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.credential);
            }
        }
    }
}

fn overloaded() -> ApiError {
    ApiError::Overloaded {
        message: "too many requests are in flight; retry shortly".into(),
    }
}

impl Gate {
    fn new(cfg: &HttpConfig) -> Gate {
        Gate {
            in_flight: Arc::new(Semaphore::new(cfg.max_concurrent_requests.max(1))),
            request_timeout: cfg.request_timeout,
            body_timeout: cfg.body_read_timeout,
            max_body_bytes: cfg.max_body_bytes,
            per_credential: cfg.max_concurrent_per_credential.max(1),
            by_credential: Mutex::new(HashMap::new()),
        }
    }

    /// Whether every place in the in-flight cap is taken (`/ready` reports it).
    pub fn saturated(&self) -> bool {
        self.in_flight.available_permits() == 0
    }

    /// A place for one more request of `credential`, or 429 when it has its fill in flight.
    pub fn enter(self: &Arc<Gate>, credential: &str) -> Result<CredentialSlot, ApiError> {
        let mut map = self.by_credential.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(credential.to_owned()).or_insert(0);
        if *n >= self.per_credential {
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "this credential already has {} requests in flight",
                    self.per_credential
                ),
                retry_after_secs: 1,
            });
        }
        *n += 1;
        Ok(CredentialSlot {
            gate: self.clone(),
            credential: credential.to_owned(),
        })
    }

    /// Reads the whole body within the body timeout (408 past it, 413 over the size limit),
    /// so that the handler never waits on the client.
    pub async fn read_body(&self, req: Request) -> Result<Request, ApiError> {
        let (parts, body) = req.into_parts();
        let read = crate::extract::read_limited(&parts.headers, body, self.max_body_bytes);
        match tokio::time::timeout(self.body_timeout, read).await {
            Err(_) => Err(ApiError::RequestTimeout {
                message: format!(
                    "the request body did not arrive within {} s",
                    self.body_timeout.as_secs_f64()
                ),
            }),
            Ok(read) => Ok(Request::from_parts(parts, axum::body::Body::from(read?))),
        }
    }

    /// Runs the rest of the request in a place of the in-flight cap, within the request
    /// timeout; 503 when no place is free or the time runs out.
    pub async fn run(&self, req: Request, next: Next) -> Response {
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            return overloaded().into_response();
        };
        match tokio::time::timeout(self.request_timeout, next.run(req)).await {
            Ok(resp) => resp,
            Err(_) => {
                tracing::warn!(
                    timeout_ms = self.request_timeout.as_millis() as u64,
                    "request timed out"
                );
                ApiError::Overloaded {
                    message: format!(
                        "the request took longer than {} s; it may still complete, so retry \
                         with the same Idempotency-Key",
                        self.request_timeout.as_secs_f64()
                    ),
                }
                .into_response()
            }
        }
    }
}

/// Whether a request has a body still to come (a length above 0, or chunked).
pub(crate) fn carries_body(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// Liveness, and readiness, which reports overload, never wait for a place. A request with
/// a body goes on to authentication, which reads the body before it takes a place; any other
/// takes its place here.
async fn gate(gate: Arc<Gate>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/health" {
        return next.run(req).await;
    }
    let ready = path == "/ready";
    let deferred = carries_body(req.headers());
    req.extensions_mut().insert(gate.clone());
    if ready || deferred {
        return next.run(req).await;
    }
    gate.run(req, next).await
}

/// Wraps `router` in the hardening layers. CORS origins must have been checked with
/// [`parse_cors_origins`]; invalid ones are skipped with a warning.
pub fn harden(router: Router, cfg: &HttpConfig) -> Router {
    let shared = Arc::new(Gate::new(cfg));
    let mut router = router
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| gate(shared.clone(), req, next),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    match cors_layer(&cfg.cors_origins) {
        Ok(Some(cors)) => router = router.layer(cors),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "CORS is off"),
    }
    router
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{harden, parse_cors_origins};
    use crate::HttpConfig;
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use std::time::Duration;
    use tower::ServiceExt;

    fn slow_router(cfg: &HttpConfig) -> Router {
        let app = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        );
        harden(app, cfg)
    }

    fn get_slow() -> Request<Body> {
        Request::get("/slow").body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_request_over_the_timeout_gets_503_with_retry_after() {
        let cfg = HttpConfig {
            request_timeout: Duration::from_millis(50),
            ..HttpConfig::default()
        };
        let resp = slow_router(&cfg).oneshot(get_slow()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["retry-after"], "1");
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    }

    #[tokio::test]
    async fn requests_beyond_the_concurrency_cap_are_refused_at_once() {
        let cfg = HttpConfig {
            max_concurrent_requests: 1,
            ..HttpConfig::default()
        };
        let router = slow_router(&cfg);
        let first = tokio::spawn(router.clone().oneshot(get_slow()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let second = router.clone().oneshot(get_slow()).await.unwrap();
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() < Duration::from_millis(200), "not queued");
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        // The permit is back: the next request is served.
        let third = router.oneshot(get_slow()).await.unwrap();
        assert_eq!(third.status(), StatusCode::OK);
    }

    #[test]
    fn cors_origins_are_checked() {
        assert!(parse_cors_origins(&["https://shop.example.com".into()]).is_ok());
        assert!(parse_cors_origins(&["http://localhost:3000".into(), "*".into()]).is_ok());
        for bad in ["shop.example.com", "https://x/", "https://a b", "ftp://x"] {
            assert!(parse_cors_origins(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
