//! OpenAPI schemas (`utoipa`, feature `openapi`) of the value types, beside the types: the
//! derive for a newtype has no numeric bounds or length limits, so [`Money`], [`Qty`] and
//! [`Email`] describe themselves here, from the same constants the code checks with; and
//! the building blocks (patterns, `null`-able types, closed objects) that the request-body
//! schemas of the HTTP edge (`orderly-http`'s `schemas.rs`) are made of.

use serde_json::json;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{RefOr, schema::AdditionalProperties};
use utoipa::{PartialSchema, ToSchema};

use crate::money::{CURRENCY, MAX_MINOR, Money};
use crate::types::{Email, Qty};

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
pub fn email_schema(description: &str, nullable: bool) -> RefOr<Schema> {
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

/// A schema type of one JSON type.
pub fn ty(t: Type) -> SchemaType {
    SchemaType::Type(t)
}

/// A schema type of one JSON type or `null` (which the parsers read as absent).
pub fn or_null(t: Type) -> SchemaType {
    SchemaType::Array(vec![t, Type::Null])
}

/// A reference to the named schema of `T`.
pub fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
}

/// `additionalProperties: false`: the parsers refuse unknown fields.
pub fn closed() -> Option<AdditionalProperties<Schema>> {
    Some(AdditionalProperties::FreeForm(false))
}

/// An amount of money: a number of at most two decimals within the bounds of [`Money`].
pub fn money_object(description: &str) -> ObjectBuilder {
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
