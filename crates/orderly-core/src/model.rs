//! Orders, products and the time stamps they carry, in the shape the API shows them.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::money::Money;
use crate::status::OrderStatus;
use crate::types::{Email, OrderId, ProductId, Qty, Stock, UserId};

/// A UTC instant, shown as RFC 3339 with milliseconds (`2026-11-22T10:15:30.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(value_type = String, format = DateTime, example = "2026-11-22T10:15:30.123Z")
)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn from_datetime(dt: DateTime<Utc>) -> Timestamp {
        // Stored and shown to the millisecond; truncate so a round trip is exact.
        let ms = dt.timestamp_millis();
        Timestamp(DateTime::from_timestamp_millis(ms).unwrap_or(dt))
    }

    pub fn from_millis(ms: i64) -> Option<Timestamp> {
        DateTime::from_timestamp_millis(ms).map(Timestamp)
    }

    pub fn millis(self) -> i64 {
        self.0.timestamp_millis()
    }

    pub fn datetime(self) -> DateTime<Utc> {
        self.0
    }

    pub fn to_rfc3339(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| Timestamp::from_datetime(d.with_timezone(&Utc)))
    }

    pub fn plus_secs(self, secs: i64) -> Timestamp {
        Timestamp(self.0 + chrono::Duration::seconds(secs))
    }

    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0 + chrono::Duration::milliseconds(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 time stamp"))
    }
}

/// One line of an order, priced from the catalogue when the order was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderItem {
    pub product_id: ProductId,
    pub qty: Qty,
    pub unit_price: Money,
}

impl OrderItem {
    pub fn line_total(&self) -> Option<Money> {
        self.unit_price.checked_mul(self.qty.get())
    }
}

/// An order as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Order {
    pub order_id: OrderId,
    pub user_id: UserId,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub customer_email: Option<Email>,
    pub items: Vec<OrderItem>,
    pub total_amount: Money,
    pub currency: String,
    pub status: OrderStatus,
    /// Why the saga failed (`FAILED` orders only).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub failure_reason: Option<String>,
    /// Set when the order is `FULFILLED`.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub tracking_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: u64,
}

/// A catalogue entry with its available stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Product {
    pub product_id: ProductId,
    pub name: String,
    pub price: Money,
    pub currency: String,
    /// Units available to order now.
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    pub stock: Stock,
    pub category: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: u64,
}

/// The writable fields of a product (`PUT /products/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSpec {
    pub product_id: ProductId,
    pub name: String,
    pub price: Money,
    pub stock: Stock,
    pub category: String,
}

/// Filters of an order listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub user_id: Option<UserId>,
    pub status: Option<OrderStatus>,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; pass back as `cursor` for the next page. Null on the last page.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub next_cursor: Option<String>,
}
