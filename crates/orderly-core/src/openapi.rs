//! OpenAPI schemas (`utoipa`, feature `openapi`) of the value types, beside the types (the
//! orphan rule puts a foreign trait's impl here). Each is the type's JSON Schema from
//! [`Wire`](crate::shape::Wire), the same one the request bodies' schemas are made of, so a
//! type describes itself once. [`from_json`] turns such a schema into utoipa's form.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::money::Money;
use crate::shape::Wire;
use crate::types::{Email, Qty};

/// A JSON Schema (2020-12) as utoipa's schema. The shapes this crate generates convert
/// without loss (orderly-http's OpenAPI tests compare them both ways); anything utoipa
/// cannot hold becomes an empty schema rather than a panic.
pub fn from_json(schema: serde_json::Value) -> RefOr<Schema> {
    serde_json::from_value(schema).unwrap_or_else(|_| ObjectBuilder::new().into())
}

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        from_json(<Money as Wire>::schema())
    }
}

impl ToSchema for Money {}

impl PartialSchema for Qty {
    fn schema() -> RefOr<Schema> {
        from_json(<Qty as Wire>::schema())
    }
}

impl ToSchema for Qty {}

impl PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        from_json(<Email as Wire>::schema())
    }
}

impl ToSchema for Email {}
