//! OpenAPI schemas (`utoipa`, feature `openapi`) that a derive cannot say.
//!
//! Most API types derive `utoipa::ToSchema` where they are defined. This module holds the
//! rest, built from the same constants the code checks with:
//! - value types whose JSON shape is a bounded number or string ([`Money`], [`Qty`],
//!   [`Email`]): the derive for a newtype has no numeric bounds or length limits;
//! - the request bodies, which are parsed from a `serde_json::Value` by [`crate::input`]
//!   rather than deserialized into a type: [`CreateOrderRequest`], [`OrderLineRequest`],
//!   [`ProductRequest`], [`ReplayRequest`]. Each schema accepts what its parser accepts as
//!   far as JSON Schema can say it: limits, required fields, `null` where the parser reads
//!   `null` as absent, no unknown fields. What it cannot say is in the descriptions (an
//!   e-mail's limits in bytes, a product ordered twice, a total that must match the
//!   catalogue).

use serde_json::json;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{RefOr, schema::AdditionalProperties};
use utoipa::{PartialSchema, ToSchema};

use crate::input::MAX_ITEMS;
use crate::money::{CURRENCY, MAX_MINOR, Money};
use crate::types::{Email, ProductId, Qty, UserId};

/// Characters Rust's `char::is_whitespace` (Unicode `White_Space`) accepts, as the inside
/// of a regular-expression class. Written out rather than `\s`, whose meaning differs
/// between regex dialects.
const WHITE_SPACE: &str = "\\t\\n\\u000b\\u000c\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
/// `White_Space` and the control characters (`char::is_control`), as a class's inside.
const SPACE_OR_CONTROL: &str =
    "\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
/// The control characters, as a class's inside.
const CONTROL: &str = "\\u0000-\\u001f\\u007f-\\u009f";

/// The pattern of a text field that the parser trims and then requires to be non-blank, at
/// most `max` characters and free of control characters (`name`, `category`).
pub fn trimmed_text_pattern(max: usize) -> String {
    let inner = max.saturating_sub(2);
    format!(
        "^[{WHITE_SPACE}]*[^{SPACE_OR_CONTROL}](?:[^{CONTROL}]{{0,{inner}}}[^{SPACE_OR_CONTROL}])?[{WHITE_SPACE}]*$"
    )
}

/// The pattern of [`Email`]'s checks: one `@`, a non-empty local part of at most
/// `local_max` characters, a domain of dot-separated non-empty labels (at least two) that
/// does not start with `-`, and no spaces, control characters, `<` or `>` anywhere; with
/// `ascii`, only printable ASCII characters.
pub fn email_pattern(local_max: usize, ascii: bool) -> String {
    let (c, label, first) = if ascii {
        // Printable ASCII but `<` `>` `@`; the domain's also not `.`, its first not `-`.
        (
            "[!-;=?A-~]".to_owned(),
            "[!-\\-/-;=?A-~]".to_owned(),
            "[!-,/-;=?A-~]".to_owned(),
        )
    } else {
        (
            format!("[^@<>{SPACE_OR_CONTROL}]"),
            format!("[^.@<>{SPACE_OR_CONTROL}]"),
            format!("[^.@<>\\-{SPACE_OR_CONTROL}]"),
        )
    };
    format!("^{c}{{1,{local_max}}}@{first}{label}*(?:\\.{label}+)+$")
}

const EMAIL_DESCRIPTION: &str = "An e-mail address: one `@`, a local part of 1 to 64 bytes, \
    a dotted domain that neither starts with `.` or `-` nor ends with `.`, no spaces, control \
    characters, `<` or `>`; at most 254 bytes in all. The limits are in bytes and a schema \
    counts characters, so an address with characters beyond ASCII (up to 4 bytes each) is \
    described here as at most 16 characters before the `@` and 63 in all, which always fit.";

/// [`Email`] as a schema: an ASCII address bounded exactly, or any address short enough
/// that its bytes are within the limits whatever its characters; `null` too if `nullable`.
fn email_schema(description: &str, nullable: bool) -> RefOr<Schema> {
    let ascii = ObjectBuilder::new()
        .schema_type(ty(Type::String))
        .max_length(Some(254))
        .pattern(Some(email_pattern(64, true)));
    let any = ObjectBuilder::new()
        .schema_type(ty(Type::String))
        .max_length(Some(63))
        .pattern(Some(email_pattern(16, false)));
    let mut b = AnyOfBuilder::new()
        .description(Some(description))
        .item(ascii)
        .item(any)
        .examples([json!("ada@example.com")]);
    if nullable {
        b = b.item(ObjectBuilder::new().schema_type(ty(Type::Null)));
    }
    b.into()
}

fn ty(t: Type) -> SchemaType {
    SchemaType::Type(t)
}

fn or_null(t: Type) -> SchemaType {
    SchemaType::Array(vec![t, Type::Null])
}

fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
}

/// `additionalProperties: false`: the parsers refuse unknown fields.
fn closed() -> Option<AdditionalProperties<Schema>> {
    Some(AdditionalProperties::FreeForm(false))
}

fn money_object(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(ty(Type::Number))
        .description(Some(description))
        .minimum(Some(0))
        .maximum(Some(MAX_MINOR / 100))
        .multiple_of(Some(0.01))
}

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        money_object(&format!(
            "An amount in {CURRENCY} as a JSON number with at most 2 decimals (109.97), from 0 \
             to {}.",
            Money::from_minor(MAX_MINOR).unwrap_or_default()
        ))
        .examples([json!(109.97)])
        .into()
    }
}

impl ToSchema for Money {}

impl PartialSchema for Qty {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(ty(Type::Integer))
            .description(Some("A quantity of one product, a whole number."))
            .minimum(Some(1))
            .maximum(Some(Qty::MAX))
            .examples([json!(2)])
            .into()
    }
}

impl ToSchema for Qty {}

impl PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        email_schema(EMAIL_DESCRIPTION, false)
    }
}

impl ToSchema for Email {}

/// The body of `POST /orders` (parsed by [`crate::input::parse_create_order`]).
#[derive(Debug)]
pub struct CreateOrderRequest;

/// One line of a [`CreateOrderRequest`].
#[derive(Debug)]
pub struct OrderLineRequest;

/// The body of `PUT /products/{productId}` (parsed by [`crate::input::parse_product`]).
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
