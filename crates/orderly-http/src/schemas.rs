//! The shapes of the API's answers as the OpenAPI document shows them: the bodies handlers
//! build with `json!`, and the reusable error responses every operation refers to. Handlers
//! (`lib.rs`, `ops.rs`, `webhooks.rs`) name these in their `#[utoipa::path]`; `openapi.rs`
//! gathers them into the document.

use orderly_core::input;
use orderly_core::openapi::from_json;
use orderly_core::ports::DeadLetter;
use orderly_core::shape::Shape;
use orderly_core::webhooks;
use orderly_core::{DomainEvent, OrderId, Product};
use serde::Serialize;
use utoipa::PartialSchema;
use utoipa::ToSchema;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response as OaResponse, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};

// ---- Response bodies the handlers build with `json!` -------------------------------------

/// `GET /products`: the whole catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList {
    pub items: Vec<Product>,
}

/// `GET /orders/{orderId}/events`: the order's timeline, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvents {
    pub order_id: OrderId,
    pub items: Vec<DomainEvent>,
}

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[derive(utoipa::ToSchema)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl std::fmt::Display for AlarmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        })
    }
}

/// One alarm as `GET /admin/alarms` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[derive(utoipa::ToSchema)]
pub struct AlarmStatus {
    /// `dlq_depth`, `saga_failure_rate` or `http_5xx_rate`.
    #[schema(value_type = String)]
    pub name: &'static str,
    pub description: String,
    pub state: AlarmState,
    /// The last evaluated value (a count or a ratio); `null` without enough data.
    #[schema(required = true)]
    pub value: Option<f64>,
    pub threshold: f64,
    /// When the alarm entered its state.
    pub since: orderly_core::Timestamp,
}

/// `GET /admin/alarms`: every alarm and its state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmList {
    pub items: Vec<AlarmStatus>,
}

/// `GET /admin/dlq`: dead-lettered messages, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub items: Vec<DeadLetter>,
}

/// `POST /admin/dlq/replay`: the ids of the dead letters moved back to their queues.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResult {
    pub replayed: Vec<String>,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(inline)]
    pub status: HealthStatus,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
}

/// `GET /ready` when the store is reachable and migrated.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(inline)]
    pub status: ReadyStatus,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadyStatus {
    Ready,
}

// ---- Reusable error answers ----------------------------------------------------------------

fn error_response(description: &str, example: serde_json::Value) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .example(Some(example))
            .build(),
    )
}

fn string_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

fn retry_after() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some("Seconds to wait before retrying."))
        .build()
}

fn err(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": code, "message": message, "details": [] })
}

/// Declares a reusable response (`#/components/responses/<Name>`).
macro_rules! reusable_response {
    ($name:ident, $build:expr) => {
        #[doc = concat!("The `", stringify!($name), "` response component.")]
        #[derive(Debug)]
        pub struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<OaResponse>) {
                let built: ResponseBuilder = $build;
                (stringify!($name), RefOr::T(built.build()))
            }
        }
    };
}

reusable_response!(
    BadRequest,
    error_response(
        "The request is malformed (bad JSON, a bad id, header or query parameter) or fields \
         are invalid; `details` names each field.",
        serde_json::json!({
            "error": "validation_failed",
            "message": "items[0].qty must be at least 1",
            "details": [{"field": "items[0].qty", "reason": "must be at least 1"}],
        }),
    )
);
reusable_response!(
    Unauthorized,
    error_response(
        "No credential, or one that is malformed, unknown, revoked, expired or wrongly signed.",
        err(
            "unauthorized",
            "credentials are required: send an API key in x-api-key or a bearer token"
        ),
    )
    .header(
        "WWW-Authenticate",
        string_header("The schemes this server accepts, e.g. `ApiKey realm=\"orderly\"`."),
    )
);
reusable_response!(
    Forbidden,
    error_response(
        "The caller is known but their role may not do this (a customer on an admin-only \
         operation, or naming another user).",
        err("forbidden", "this operation is for admins only"),
    )
);
reusable_response!(
    NotFound,
    error_response(
        "No such resource (for a customer, also another customer's order).",
        err(
            "not_found",
            "order 0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c was not found"
        ),
    )
);
reusable_response!(
    Conflict,
    error_response(
        "The resource's state forbids the request, or a request with the same idempotency \
         key is still in flight.",
        err(
            "order_not_cancellable",
            "order 0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c is FULFILLED and can no longer be cancelled"
        ),
    )
);
reusable_response!(
    PayloadTooLarge,
    error_response(
        "The body is larger than the server's limit (64 KiB by default).",
        err(
            "payload_too_large",
            "the request body is larger than 65536 bytes"
        ),
    )
);
reusable_response!(
    UnsupportedMediaType,
    error_response(
        "The body is not JSON (`Content-Type` other than `application/json` or `*/*+json`).",
        err(
            "unsupported_media_type",
            "the body must be application/json, not \"text/plain\""
        ),
    )
);
reusable_response!(
    Unprocessable,
    error_response(
        "Well formed, but a business rule refuses it: an unknown product, a `totalAmount` \
         that is not the catalogue total, an idempotency key reused with another payload.",
        serde_json::json!({
            "error": "unknown_product",
            "message": "items[0].productId PROD-999 is not in the catalogue",
            "details": [{"field": "items[0].productId", "reason": "is not in the catalogue"}],
        }),
    )
);
reusable_response!(
    TooManyRequests,
    error_response(
        "The caller's (or the server's) request rate limit is reached; nothing was done.",
        err("rate_limited", "this credential sent too many requests"),
    )
    .header("Retry-After", retry_after())
);
reusable_response!(
    Unavailable,
    error_response(
        "The store is briefly unavailable, or the server is overloaded; retrying is safe (with \
         the same `Idempotency-Key` for a POST).",
        err(
            "unavailable",
            "the service is briefly unavailable; retry shortly"
        ),
    )
    .header("Retry-After", retry_after())
);
reusable_response!(
    NotImplemented,
    error_response(
        "This backend does not offer the feature (webhooks on the AWS backend, where \
         EventBridge API destinations deliver events to HTTP endpoints).",
        err(
            "not_implemented",
            "webhooks are not available on this backend"
        ),
    )
);
reusable_response!(
    Internal,
    error_response(
        "A bug or an infrastructure failure; logged on the server.",
        err("internal", "an internal error occurred; it has been logged"),
    )
);

// ---- Request bodies ------------------------------------------------------------------------

/// Names a request body declared in `orderly_core::input` (with `orderly_core::shape!`) for
/// the handlers' `#[utoipa::path]`: its schema, and those it refers to, are the ones derived
/// from that declaration, the same one its parser is.
macro_rules! request_bodies {
    ($($(#[$doc:meta])* $name:ident = $shape:ty;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let components = <$shape as Shape>::all_components();
                from_json(<$shape as Shape>::own_schema(&components))
            }
        }

        impl ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                <$shape as Shape>::NAME.into()
            }
            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                for (name, schema) in <$shape as Shape>::all_components() {
                    if name != <$shape as Shape>::NAME {
                        schemas.push((name.to_owned(), from_json(schema)));
                    }
                }
            }
        }
    )*};
}

/// Names a query declared in core with `orderly_core::shape!` for the handlers'
/// `#[utoipa::path]` (`params(...)`): each field is a parameter, described from the same
/// declaration its parser is.
macro_rules! query_params {
    ($($(#[$doc:meta])* $name:ident = $shape:ty;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                query_parameters::<$shape>()
            }
        }
    )*};
}

/// A schema without its `null` alternative: a query parameter is left out, never null.
fn without_null(mut schema: serde_json::Value) -> serde_json::Value {
    if let Some(types) = schema.get_mut("type").and_then(|t| t.as_array_mut()) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            schema["type"] = types[0].clone();
        }
    }
    if let Some(values) = schema.get_mut("enum").and_then(|e| e.as_array_mut()) {
        values.retain(|v| !v.is_null());
    }
    schema
}

/// The query parameters of the shape `S`, in the order it declares them.
fn query_parameters<S: Shape>() -> Vec<utoipa::openapi::path::Parameter> {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    let own = S::own_schema(&S::all_components());
    let required: Vec<&str> = own["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str())
        .collect();
    S::FIELDS
        .iter()
        .map(|name| {
            let mut schema = own["properties"][*name].clone();
            let description = schema
                .as_object_mut()
                .and_then(|o| o.remove("description"))
                .and_then(|d| d.as_str().map(str::to_owned));
            let required = if required.contains(name) {
                utoipa::openapi::Required::True
            } else {
                utoipa::openapi::Required::False
            };
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(required)
                .description(description)
                .schema(Some(from_json(without_null(schema))))
                .build()
        })
        .collect()
}

query_params! {
    /// The query of `GET /orders` ([`input::ListOrdersQuery`]).
    ListOrdersParams = input::ListOrdersQuery;
    /// The query of the admin lists ([`input::AdminListQuery`]).
    AdminListParams = input::AdminListQuery;
}

request_bodies! {
    /// The body of `POST /orders` ([`input::CreateOrderBody`]).
    CreateOrderRequest = input::CreateOrderBody;
    /// One line of a [`CreateOrderRequest`] ([`input::LineBody`]).
    OrderLineRequest = input::LineBody;
    /// The body of `PUT /products/{productId}` ([`input::ProductBody`]).
    ProductRequest = input::ProductBody;
    /// The optional body of `POST /admin/dlq/replay` ([`input::ReplayBody`]).
    ReplayRequest = input::ReplayBody;
    /// The body of `POST /admin/webhooks` ([`webhooks::NewWebhookBody`]).
    WebhookRequest = webhooks::NewWebhookBody;
    /// The body of `PATCH /admin/webhooks/{webhookId}` ([`webhooks::WebhookPatchBody`]).
    WebhookPatch = webhooks::WebhookPatchBody;
}
