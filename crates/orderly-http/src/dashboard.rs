//! The operator's dashboard: a static page (`GET /`) and its assets
//! (`GET /dashboard/{asset}`), plain HTML, CSS and JavaScript compiled into the binary.
//!
//! The page itself is public: it holds no data. In the browser it asks for an admin API
//! key, keeps it in `sessionStorage` and sends it as `x-api-key` on every call to the API
//! (orders, timelines, dead letters, alarms, metrics), so every piece of data still goes
//! through authentication. Its own `Content-Security-Policy` allows only scripts, styles
//! and connections of this origin: no inline code, nothing from elsewhere.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::ApiError;

/// The policy of every dashboard response.
pub const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

const INDEX_HTML: &str = include_str!("dashboard/index.html");

/// The files under `/dashboard/`: name, media type, content.
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/dashboard.css"),
    ),
    (
        "prom.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/prom.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/charts.js"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/dashboard.js"),
    ),
];

fn with_headers(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DASHBOARD_CSP),
    );
    resp
}

async fn index() -> Response {
    with_headers(INDEX_HTML, "text/html; charset=utf-8")
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => with_headers(body, content_type),
        None => ApiError::NotFound {
            message: format!("there is no dashboard file {name:?}"),
        }
        .into_response(),
    }
}

/// `GET /` and `GET /dashboard/{asset}`, public (merge next to the protected routes).
/// Other methods on these paths get the API's JSON 405.
pub fn dashboard_router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/dashboard/{asset}", get(asset))
        .method_not_allowed_fallback(crate::method_not_allowed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get_path(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let resp = dashboard_router()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_page_and_every_asset_are_served_with_their_type_and_policy() {
        let (status, headers, body) = get_path("/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(headers["content-security-policy"], DASHBOARD_CSP);
        assert!(body.contains("<title>Orderly dashboard</title>"));
        for (name, content_type, content) in ASSETS {
            let (status, headers, body) = get_path(&format!("/dashboard/{name}")).await;
            assert_eq!(status, StatusCode::OK, "{name}");
            assert_eq!(headers["content-type"], content_type, "{name}");
            assert_eq!(headers["content-security-policy"], DASHBOARD_CSP, "{name}");
            assert_eq!(body, content, "{name}");
        }
    }

    #[tokio::test]
    async fn an_unknown_asset_is_a_json_404_and_other_methods_a_405() {
        let (status, _, body) = get_path("/dashboard/secret.txt").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "not_found");
        let (status, _, _) = get_path("/dashboard/..%2Fdashboard.rs").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let resp = dashboard_router()
            .oneshot(Request::post("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    /// The policy forbids inline code, so the page must have none, and it may only load
    /// files the router serves.
    #[test]
    fn the_page_has_no_inline_code_and_loads_only_served_assets() {
        let lower = INDEX_HTML.to_ascii_lowercase();
        assert!(!lower.contains("<style"), "inline <style>");
        assert!(!lower.contains(" style="), "inline style attribute");
        assert!(!lower.contains("javascript:"), "javascript: URL");
        for (i, _) in lower.match_indices(" on") {
            let name: String = lower[i + 3..]
                .chars()
                .take_while(char::is_ascii_lowercase)
                .collect();
            let after = &lower[i + 3 + name.len()..];
            assert!(
                name.is_empty() || !after.starts_with('='),
                "inline event handler on{name}="
            );
        }
        let mut loaded = 0;
        for (i, _) in lower.match_indices("<script") {
            let tag = &lower[i..i + lower[i..].find('>').unwrap()];
            assert!(tag.contains(" src=\"/dashboard/"), "inline script: {tag}");
            assert!(lower[i..].starts_with(&format!("{tag}></script>")));
        }
        for attr in ["src=\"", "href=\""] {
            for (i, _) in INDEX_HTML.match_indices(attr) {
                let rest = &INDEX_HTML[i + attr.len()..];
                let url = &rest[..rest.find('"').unwrap()];
                let name = url.strip_prefix("/dashboard/").unwrap_or_else(|| {
                    panic!("{url} is not a dashboard asset");
                });
                assert!(ASSETS.iter().any(|(n, _, _)| *n == name), "{url}");
                loaded += 1;
            }
        }
        assert_eq!(loaded, ASSETS.len(), "every asset is used by the page");
    }

    /// Data is rendered as text only (`textContent`), never parsed as HTML.
    #[test]
    fn the_scripts_never_parse_html() {
        for (name, _, content) in ASSETS {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
            ] {
                assert!(!content.contains(sink), "{name} uses {sink}");
            }
        }
    }
}
