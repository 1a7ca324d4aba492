//! The dashboard as the running server serves it: public, with its own
//! Content-Security-Policy in place of the API's deny-all default, and the other hardening
//! headers kept; the data behind it still needs a key. (scripts/e2e-dashboard.sh drives the
//! page itself in a browser.)

#![allow(clippy::unwrap_used)]

use crate::common;

use common::spawn_api_only;
use orderly_http::dashboard::DASHBOARD_CSP;

#[tokio::test]
async fn the_dashboard_is_public_with_its_own_policy_and_the_data_is_not() {
    let app = spawn_api_only().await;
    let anonymous = reqwest::Client::new();
    for (path, media) in [
        ("/", "text/html"),
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
    ] {
        let resp = anonymous.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(media),
            "{path}"
        );
        assert_eq!(h["content-security-policy"], DASHBOARD_CSP, "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
    let page = anonymous
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<script src=\"/dashboard/dashboard.js\" defer></script>"));

    let missing = anonymous
        .get(app.url("/dashboard/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "not_found");

    for path in ["/orders", "/admin/dlq", "/metrics", "/admin/alarms"] {
        let resp = anonymous.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path} without a key");
        assert_eq!(
            resp.headers()["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'",
            "{path}"
        );
    }
    let (status, _) = app.get_json("/orders").await;
    assert_eq!(status, 200);
}
