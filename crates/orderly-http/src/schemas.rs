//! The shapes of the API's answers as the OpenAPI document shows them: the bodies handlers
//! build with `json!`, and the reusable error responses every operation refers to. Handlers
//! (`lib.rs`, `ops.rs`, `webhooks.rs`) name these in their `#[utoipa::path]`; `openapi.rs`
//! gathers them into the document.

use orderly_core::input::MAX_ITEMS;
use orderly_core::money::CURRENCY;
use orderly_core::openapi::{
    closed, email_schema, money_object, or_null, reference, trimmed_text_pattern, ty,
};
use orderly_core::ports::DeadLetter;
use orderly_core::{DomainEvent, OrderId, Product};
use orderly_core::{ProductId, Qty, UserId};
use serde::Serialize;
use serde_json::json;
use utoipa::PartialSchema;
use utoipa::ToSchema;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response as OaResponse, ResponseBuilder};
use utoipa::openapi::schema::{
    AllOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
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

/// `GET /admin/alarms`: every alarm and its state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmList {
    pub items: Vec<orderly_core::alarms::AlarmStatus>,
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

// ---- Request bodies (parsed from a `serde_json::Value` by `orderly_core::input`, so each
// schema says what its parser accepts as far as JSON Schema can) --------------------------

/// The body of `POST /orders` (parsed by `orderly_core::input::parse_create_order`).
#[derive(Debug)]
pub struct CreateOrderRequest;

/// One line of a [`CreateOrderRequest`].
#[derive(Debug)]
pub struct OrderLineRequest;

/// The body of `PUT /products/{productId}` (parsed by `orderly_core::input::parse_product`).
#[derive(Debug)]
pub struct ProductRequest;

/// The optional body of `POST /admin/dlq/replay`.
#[derive(Debug)]
pub struct ReplayRequest;

impl PartialSchema for OrderLineRequest {
    fn schema() -> RefOr<Schema> {
        let id = |description: &str, deprecated: bool| {
            let mut b = ObjectBuilder::new()
                .schema_type(or_null(Type::String))
                .description(Some(description))
                .pattern(Some(format!(
                    "^[A-Za-z0-9._:@-]{{1,{}}}$",
                    ProductId::MAX_LEN
                )));
            if deprecated {
                b = b.deprecated(Some(utoipa::openapi::Deprecated::True));
            }
            b
        };
        let fields = ObjectBuilder::new()
            .schema_type(ty(Type::Object))
            .property(
                "productId",
                id("The catalogue product to order.", false).examples([json!("PROD-001")]),
            )
            .property(
                "sku",
                id(
                    "Another name for `productId` (an older client's); give one of the two.",
                    true,
                ),
            )
            .property("qty", Qty::schema())
            .required("qty")
            .additional_properties(closed());
        // Exactly one of `productId` and `sku` is a string (the other absent or null).
        let named = |field: &str| -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(ty(Type::Object))
                .property(field, ObjectBuilder::new().schema_type(ty(Type::String)))
                .required(field)
                .into()
        };
        AllOfBuilder::new()
            .description(Some(
                "One product and how many of it. Each product may appear in at most one line \
                 of an order.",
            ))
            .item(fields)
            .item(
                OneOfBuilder::new()
                    .item(named("productId"))
                    .item(named("sku")),
            )
            .into()
    }
}

impl ToSchema for OrderLineRequest {}

impl PartialSchema for CreateOrderRequest {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(ty(Type::Object))
            .description(Some(
                "An order to place. Prices come from the catalogue, never from the client.",
            ))
            .property(
                "userId",
                ObjectBuilder::new()
                    .schema_type(or_null(Type::String))
                    .pattern(Some(format!("^[A-Za-z0-9._:@-]{{1,{}}}$", UserId::MAX_LEN)))
                    .description(Some(
                        "Whose order it is. A customer's credential supplies it: a customer may \
                         leave it out or give their own id (another user's is 403). An admin \
                         names any user, and must unless the admin credential is bound to one.",
                    ))
                    .examples([json!("user-123")]),
            )
            .property(
                "customerEmail",
                email_schema(
                    "Where notifications go (optional): an e-mail address as the `Email` \
                     schema describes it.",
                    true,
                ),
            )
            .property(
                "items",
                ArrayBuilder::new()
                    .items(reference::<OrderLineRequest>())
                    .min_items(Some(1))
                    .max_items(Some(MAX_ITEMS))
                    .description(Some(format!(
                        "1 to {MAX_ITEMS} lines, each product at most once."
                    ))),
            )
            .property(
                "totalAmount",
                money_object(
                    "Optional check: when given it must equal the catalogue total of the items \
                     (else 422, stating the computed total). At most 2 decimals.",
                )
                .schema_type(or_null(Type::Number))
                .examples([json!(109.97)]),
            )
            .required("items")
            .additional_properties(closed())
            .examples([json!({
                "userId": "user-123",
                "customerEmail": "ada@example.com",
                "items": [{"productId": "PROD-001", "qty": 2}, {"productId": "PROD-003", "qty": 1}],
                "totalAmount": 109.97
            })])
            .into()
    }
}

impl ToSchema for CreateOrderRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((OrderLineRequest::name().into(), OrderLineRequest::schema()));
    }
}

impl PartialSchema for ProductRequest {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(ty(Type::Object))
            .description(Some(
                "A product's writable fields. Text fields are trimmed of surrounding white \
                 space.",
            ))
            .property(
                "productId",
                ObjectBuilder::new()
                    .schema_type(or_null(Type::String))
                    .read_only(Some(true))
                    .description(Some(
                        "May be echoed back, but must then equal the product id in the path.",
                    )),
            )
            .property(
                "name",
                ObjectBuilder::new()
                    .schema_type(ty(Type::String))
                    .pattern(Some(trimmed_text_pattern(200)))
                    .description(Some(
                        "1 to 200 characters after trimming, no control characters.",
                    ))
                    .examples([json!("Wireless Mouse")]),
            )
            .property(
                "price",
                money_object("The unit price: more than 0, at most 2 decimals.")
                    .minimum(None::<i64>)
                    .exclusive_minimum(Some(0))
                    .examples([json!(29.99)]),
            )
            .property(
                "stock",
                ObjectBuilder::new()
                    .schema_type(ty(Type::Integer))
                    .minimum(Some(0))
                    .maximum(Some(u32::MAX / 2))
                    .description(Some("Units on hand; replaces the current stock."))
                    .examples([json!(500)]),
            )
            .property(
                "category",
                ObjectBuilder::new()
                    .schema_type(ty(Type::String))
                    .pattern(Some(trimmed_text_pattern(100)))
                    .description(Some(
                        "1 to 100 characters after trimming, no control characters.",
                    ))
                    .examples([json!("Electronics")]),
            )
            .property(
                "currency",
                ObjectBuilder::new()
                    .schema_type(or_null(Type::String))
                    .enum_values(Some([json!(CURRENCY), json!(null)]))
                    .description(Some(format!("Optional; {CURRENCY}, the only currency."))),
            )
            .required("name")
            .required("price")
            .required("stock")
            .required("category")
            .additional_properties(closed())
            .into()
    }
}

impl ToSchema for ProductRequest {}

impl PartialSchema for ReplayRequest {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(ty(Type::Object))
            .description(Some(
                "Which dead letters to replay: `ids`, or all of them when `ids` is absent or \
                 null (or when there is no body at all).",
            ))
            .property(
                "ids",
                ArrayBuilder::new()
                    .schema_type(or_null(Type::Array))
                    .items(ObjectBuilder::new().schema_type(ty(Type::String))),
            )
            .additional_properties(closed())
            .into()
    }
}

impl ToSchema for ReplayRequest {}
