//! The OpenAPI 3.1 document of the API, generated from the Rust types and the handlers'
//! `#[utoipa::path]` attributes, and the public routes that serve it.
//!
//! - [`openapi`] is the document; [`openapi_json`] its stable, pretty JSON text, which is
//!   also committed as `openapi.json` at the repository root (a test keeps it current).
//! - Each handler's attribute names its route-specific answers; [`Protect`] adds what every
//!   protected operation shares (the security requirement and the 401, 403, 429, 500 and
//!   503 answers), so that they cannot be forgotten on a new route.
//! - [`docs_router`] serves `GET /openapi.json` and `GET /docs` without authentication.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use orderly_core::ports::DeadLetter;
use orderly_core::webhooks::{CreatedWebhook, DeliveryAttempt, DeliveryOutcome, WebhookEndpoint};
use orderly_core::{
    DomainEvent, Email, EventType, FieldError, Money, Order, OrderId, OrderItem, OrderStatus, Page,
    Product, ProductId, Qty, Timestamp, UserId,
};
use sha2::Digest;
use utoipa::openapi::Required;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ArrayBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::error::Body;

/// Paths anyone may call: no credential, no rate limit, none of the shared error answers.
pub const PUBLIC_PATHS: [&str; 4] = ["/health", "/ready", "/openapi.json", "/docs"];

/// The security schemes' names in the document.
pub const API_KEY_SCHEME: &str = "apiKey";
pub const BEARER_SCHEME: &str = "bearerAuth";

const DESCRIPTION: &str = "\
Orderly accepts orders, reserves stock, takes payment, confirms, fulfils and notifies \
asynchronously, compensating (refund, restock) when a later step fails.

JSON is camelCase. Money is a JSON number with at most 2 decimals, held as integer minor \
units inside. Every error answer is `{\"error\": \"<code>\", \"message\": \"<sentence>\", \
\"details\": [{\"field\", \"reason\"}]}`; validation errors name each field.

**Authentication.** Every operation except `/health`, `/ready`, `/openapi.json` and `/docs` \
needs a credential: an API key in `x-api-key`, or a bearer JWT in `Authorization`. Without a \
valid one the answer is 401 with `WWW-Authenticate`; past the caller's rate limit it is 429 \
with `Retry-After`.

**Authorization.** Admins may do everything. Customers may create, read, list and cancel \
only their own orders (another customer's order answers 404, as if it did not exist) and \
read the catalogue; `PUT /products/{productId}` and `/admin/*` are admin-only (403 for \
customers).";

/// The document's parts that are not operations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orderly",
        version = env!("CARGO_PKG_VERSION"),
        description = DESCRIPTION,
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::create_order,
        crate::list_orders,
        crate::get_order,
        crate::cancel_order,
        crate::order_events,
        crate::list_products,
        crate::get_product,
        crate::put_product,
        crate::list_dead_letters,
        crate::replay_dead_letters,
        crate::webhooks::create_webhook,
        crate::webhooks::list_webhooks,
        crate::webhooks::get_webhook,
        crate::webhooks::update_webhook,
        crate::webhooks::delete_webhook,
        crate::webhooks::list_deliveries,
        crate::ops::alarms_endpoint,
        crate::ops::metrics_endpoint,
        crate::health,
        crate::ready,
        openapi_document,
        docs_page,
    ),
    components(
        schemas(
            Order, OrderItem, OrderStatus, Product, ProductList, DomainEvent,
            EventType, OrderEvents, DeadLetter, DeadLetterList, AlarmList,
            crate::schemas::AlarmStatus, crate::schemas::AlarmState, ReplayResult, Body, FieldError,
            Health, Readiness, Money, Qty, Email, OrderId, ProductId, UserId, Timestamp,
            CreateOrderRequest, OrderLineRequest, ProductRequest, ReplayRequest,
            WebhookEndpoint, CreatedWebhook, DeliveryAttempt, DeliveryOutcome,
            crate::webhooks::WebhookList, crate::webhooks::DeliveryAttemptList,
            crate::schemas::WebhookRequest, crate::schemas::WebhookPatch,
        ),
        responses(
            BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge,
            UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable, Internal,
            NotImplemented,
        ),
    ),
    modifiers(&Protect, &Tidy),
    tags(
        (name = "orders", description = "Placing, reading, listing and cancelling orders."),
        (name = "products", description = "The catalogue, with prices and available stock."),
        (name = "admin", description = "Dead-lettered messages (admin only)."),
        (name = "webhooks", description = "Webhook endpoints that receive signed domain events, \
            and their delivery log (admin only)."),
        (name = "operations", description = "Probes and this documentation (public)."),
    ),
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// [`openapi`] as pretty JSON with every object's keys sorted, so the text is the same
/// whatever the build (it is committed as `openapi.json`).
pub fn openapi_json() -> String {
    let value = serde_json::to_value(openapi()).unwrap_or_default();
    let mut text = serde_json::to_string_pretty(&sorted(value)).unwrap_or_default();
    text.push('\n');
    text
}

fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

use crate::schemas::*;

// ---- What every protected operation shares ------------------------------------------------

/// Adds the security schemes, and to every operation outside [`PUBLIC_PATHS`] the security
/// requirement (an API key or a bearer JWT) and the 401, 403, 429, 500 and 503 answers.
#[derive(Debug)]
pub struct Protect;

impl Modify for Protect {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::auth::API_KEY_HEADER,
                "An Orderly API key (`oly_<id>_<secret>`). The server writes an admin key to \
                 `<data-dir>/admin.key` on first start.",
            ))),
        );
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT (Cognito RS256, or HS256 in development) whose claims give the \
                         role and, for customers, the user id.",
                    ))
                    .build(),
            ),
        );
        let shared = [
            ("401", "Unauthorized"),
            ("403", "Forbidden"),
            ("429", "TooManyRequests"),
            ("500", "Internal"),
            ("503", "Unavailable"),
        ];
        for (path, item) in api.paths.paths.iter_mut() {
            if PUBLIC_PATHS.contains(&path.as_str()) {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                protect(op, &shared);
            }
        }
    }
}

fn protect(op: &mut Operation, shared: &[(&str, &str)]) {
    op.security = Some(vec![
        SecurityRequirement::new(API_KEY_SCHEME, Vec::<String>::new()),
        SecurityRequirement::new(BEARER_SCHEME, Vec::<String>::new()),
    ]);
    for (status, name) in shared {
        op.responses
            .responses
            .entry((*status).to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
    }
}

// ---- What the derives cannot say -------------------------------------------------------

/// - `OrderPage`: the schema of `Page<Order>` (the derive inlines a generic's argument;
///   here it refers to `Order`).
/// - Parameters are never `null` in HTTP: an optional parameter's schema drops `null`.
/// - An optional request body is absent, never JSON `null` (the replay body).
#[derive(Debug)]
pub struct Tidy;

impl Modify for Tidy {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let mut page = <Page<Order> as PartialSchema>::schema();
        if let RefOr::T(Schema::Object(obj)) = &mut page {
            obj.description = Some("One page of orders, newest first.".into());
            obj.properties.insert(
                "items".into(),
                ArrayBuilder::new()
                    .items(Ref::from_schema_name(Order::name()))
                    .into(),
            );
        }
        api.components
            .get_or_insert_with(Default::default)
            .schemas
            .insert("OrderPage".into(), page);
        for item in api.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                for p in op.parameters.iter_mut().flatten() {
                    if let Some(schema) = p.schema.take() {
                        p.schema = Some(without_null(schema));
                    }
                }
                if let Some(body) = op.request_body.as_mut() {
                    for content in body.content.values_mut() {
                        if let Some(schema) = content.schema.take() {
                            let plain = without_null(schema.clone());
                            if plain != schema {
                                body.required = Some(Required::False);
                            }
                            content.schema = Some(plain);
                        }
                    }
                }
            }
        }
    }
}

/// `schema` without its `null` alternative.
fn without_null(schema: RefOr<Schema>) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::Object(mut obj)) => {
            if let SchemaType::Array(types) = &obj.schema_type {
                let rest: Vec<Type> = types
                    .iter()
                    .filter(|t| **t != Type::Null)
                    .cloned()
                    .collect();
                obj.schema_type = match rest.as_slice() {
                    [one] => SchemaType::Type(one.clone()),
                    _ => SchemaType::Array(rest),
                };
            }
            RefOr::T(Schema::Object(obj))
        }
        RefOr::T(Schema::OneOf(one)) => {
            let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
            let rest: Vec<RefOr<Schema>> =
                one.items.iter().filter(|s| !is_null(s)).cloned().collect();
            match <[RefOr<Schema>; 1]>::try_from(rest) {
                Ok([only]) if one.items.len() == 2 => only,
                _ => RefOr::T(Schema::OneOf(one)),
            }
        }
        other => other,
    }
}

// ---- Serving it ----------------------------------------------------------------------------

/// The document, as committed.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object)),
)]
async fn openapi_document() -> Response {
    let mut resp = openapi_json().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

const DOCS_CSS: &str = include_str!("docs/docs.css");
const DOCS_JS: &str = include_str!("docs/docs.js");

fn csp_hash(text: &str) -> String {
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// A human-readable rendering of the document.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    operation_id = "docs",
    summary = "This API's documentation as a web page",
    description = "A self-contained page that fetches `/openapi.json` and shows every operation, \
                   its parameters, bodies and answers, and the schemas.",
    responses((status = 200, description = "An HTML page.", content_type = "text/html", body = String)),
)]
async fn docs_page() -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Orderly API</title>\n<style>{DOCS_CSS}</style>\n</head>\n<body>\n\
         <header><h1>Orderly API</h1><p id=\"meta\">Loading /openapi.json…</p></header>\n\
         <nav id=\"toc\"></nav>\n<main id=\"content\"></main>\n\
         <script>{DOCS_JS}</script>\n</body>\n</html>\n"
    );
    // Only this page's own inline style and script may run, and it may fetch only from here.
    let csp = format!(
        "default-src 'none'; style-src {}; script-src {}; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        csp_hash(DOCS_CSS),
        csp_hash(DOCS_JS)
    );
    let mut resp = Html(html).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// `GET /openapi.json` and `GET /docs`: public, so they go outside the authentication layer
/// (merge this router next to the protected one). Other methods on these paths get the
/// API's JSON 405 with `Allow`, wherever the router is merged.
pub fn docs_router() -> Router {
    Router::new()
        .route("/openapi.json", get(openapi_document))
        .route("/docs", get(docs_page))
        .method_not_allowed_fallback(crate::method_not_allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protected_operation_requires_a_credential_and_documents_the_shared_answers() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let mut protected = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                if PUBLIC_PATHS.contains(&path.as_str()) {
                    assert!(op.get("security").is_none(), "{method} {path}");
                    assert!(!responses.contains_key("401"), "{method} {path}");
                    continue;
                }
                protected += 1;
                assert_eq!(
                    op["security"],
                    serde_json::json!([{API_KEY_SCHEME: []}, {BEARER_SCHEME: []}]),
                    "{method} {path}"
                );
                for status in ["401", "403", "429", "503"] {
                    assert!(responses.contains_key(status), "{method} {path} {status}");
                }
            }
        }
        // Every route but the four public ones (orders, products, admin, metrics, ...).
        assert!(protected >= 12, "{protected} protected operations");
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes[API_KEY_SCHEME]["in"], "header");
        assert_eq!(schemes[API_KEY_SCHEME]["name"], "x-api-key");
        assert_eq!(schemes[BEARER_SCHEME]["scheme"], "bearer");
        assert_eq!(schemes[BEARER_SCHEME]["bearerFormat"], "JWT");
        let unauthorized = &doc["components"]["responses"]["Unauthorized"];
        assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
        for name in ["TooManyRequests", "Unavailable"] {
            assert!(doc["components"]["responses"][name]["headers"]["Retry-After"].is_object());
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_its_text_is_stable() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(openapi_json(), openapi_json());
        let text = openapi_json();
        let top: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  \"") && !l.starts_with("   "))
            .collect();
        let mut keys = top.clone();
        keys.sort();
        assert_eq!(top, keys, "keys are sorted");
    }

    #[test]
    fn the_docs_page_allows_exactly_its_own_script_and_style() {
        let js = csp_hash(DOCS_JS);
        assert!(js.starts_with("'sha256-") && js.ends_with("='"));
        assert_ne!(csp_hash(DOCS_JS), csp_hash(DOCS_CSS));
        assert!(
            !DOCS_JS.contains("</script"),
            "the script cannot close its own tag"
        );
        assert!(!DOCS_CSS.contains("</style"));
        assert!(
            !DOCS_JS.contains("innerHTML"),
            "text is inserted as text, never as HTML"
        );
    }
}
