//! Identifier and value types, each parsed once at the edge and trusted afterwards.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a value was refused; the message completes "`<field>` ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn invalid<T>(msg: impl Into<String>) -> Result<T, InvalidValue> {
    Err(InvalidValue(msg.into()))
}

/// An order identifier: a UUID (version 7, time ordered, when Orderly makes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(
        value_type = String,
        format = Uuid,
        // Only the canonical hyphenated form (either case), as `from_str` accepts.
        pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$",
        example = "0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c"
    )
)]
pub struct OrderId(Uuid);

impl OrderId {
    /// A new id whose leading bits are the given time, so ids sort roughly by creation.
    pub fn generate(now: DateTime<Utc>) -> OrderId {
        let secs = u64::try_from(now.timestamp()).unwrap_or(0);
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, now.timestamp_subsec_nanos());
        OrderId(Uuid::new_v7(ts))
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl FromStr for OrderId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<OrderId, InvalidValue> {
        // Only the canonical hyphenated form, so one order has exactly one spelling.
        const HINT: &str = "must be a UUID such as 0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c";
        match Uuid::try_parse(s) {
            Ok(u) if u.hyphenated().to_string() == s.to_ascii_lowercase() => Ok(OrderId(u)),
            _ => invalid(HINT),
        }
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// Checks a short printable identifier: 1..=max chars from `[A-Za-z0-9._:@-]`.
fn check_ident(s: &str, max: usize) -> Result<(), InvalidValue> {
    if s.is_empty() {
        return invalid("must not be empty");
    }
    if s.chars().count() > max {
        return invalid(format!("must be at most {max} characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'))
    {
        return invalid("may contain only letters, digits and - _ . : @");
    }
    Ok(())
}

/// `pattern` is [`check_ident`] as a regular expression (orderly-http's OpenAPI tests compare
/// the two).
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $max:expr, pattern = $pattern:literal, example = $example:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(
            feature = "openapi",
            schema(value_type = String, pattern = $pattern, example = $example)
        )]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                check_ident(s, $max)?;
                Ok($name(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, InvalidValue> {
                check_ident(&s, $max)?;
                Ok($name(s))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A catalogue product id such as `PROD-001`: 1 to 64 letters, digits and `-_.:@`.
    ProductId,
    64,
    pattern = "^[A-Za-z0-9._:@-]{1,64}$",
    example = "PROD-001"
);
string_id!(
    /// The customer an order belongs to: 1 to 128 letters, digits and `-_.:@`.
    UserId,
    128,
    pattern = "^[A-Za-z0-9._:@-]{1,128}$",
    example = "user-123"
);

/// A positive item quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Qty(u32);

impl Qty {
    pub const MAX: u32 = 1_000_000;
    pub fn new(n: u32) -> Result<Qty, InvalidValue> {
        match n {
            0 => invalid("must be at least 1"),
            n if n > Qty::MAX => invalid(format!("must be at most {}", Qty::MAX)),
            n => Ok(Qty(n)),
        }
    }
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Qty {
    type Error = InvalidValue;
    fn try_from(n: u32) -> Result<Qty, InvalidValue> {
        Qty::new(n)
    }
}

impl From<Qty> for u32 {
    fn from(q: Qty) -> u32 {
        q.0
    }
}

/// Units of stock on hand (may be zero).
pub type Stock = u32;

/// A syntactically valid e-mail address (one `@`, a dotted domain, no spaces), at most 254
/// characters as RFC 5321 allows. Stored as given; compared as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Email, InvalidValue> {
        if s.len() > 254 {
            return invalid("must be at most 254 characters");
        }
        let Some((local, domain)) = s.split_once('@') else {
            return invalid("must be an e-mail address like ada@example.com");
        };
        let bad_char = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>');
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || s.chars().any(bad_char)
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || domain.starts_with('-')
        {
            return invalid("must be an e-mail address like ada@example.com");
        }
        Ok(Email(s.to_owned()))
    }
}

impl TryFrom<String> for Email {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Email, InvalidValue> {
        s.parse()
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client-chosen `Idempotency-Key`: 1..=255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as stored: within the caller's `scope` (a newline, which no key contains,
    /// separates them), so equal keys of different callers are different keys.
    pub fn scoped(&self, scope: &str) -> IdempotencyKey {
        IdempotencyKey(format!("{scope}\n{}", self.0))
    }
}

impl FromStr for IdempotencyKey {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<IdempotencyKey, InvalidValue> {
        // The draft sends the key as a structured-field string: "..." quoted. Accept both.
        let inner = s
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(s);
        if inner.is_empty() {
            return invalid("must not be empty");
        }
        if inner.len() > 255 {
            return invalid("must be at most 255 characters");
        }
        if !inner.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return invalid("may contain only visible ASCII characters");
        }
        Ok(IdempotencyKey(inner.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_parse_only_canonical_uuids() {
        let id = OrderId::generate(Utc::now());
        assert_eq!(id.to_string().parse::<OrderId>().unwrap(), id);
        assert!("not-a-uuid".parse::<OrderId>().is_err());
        assert!(
            "{0192f0c8-7d3a-7b1e-9c61-2f4d5e6a7b8c}"
                .parse::<OrderId>()
                .is_err()
        );
        assert!(
            "0192f0c87d3a7b1e9c612f4d5e6a7b8c"
                .parse::<OrderId>()
                .is_err()
        );
    }

    #[test]
    fn emails() {
        assert!("ada@example.com".parse::<Email>().is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@example.com",
            "ada@.example.com",
            "ada@example..com",
        ] {
            assert!(bad.parse::<Email>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn idents_and_quantities() {
        assert!("PROD-001".parse::<ProductId>().is_ok());
        assert!("".parse::<ProductId>().is_err());
        assert!("PROD 001".parse::<ProductId>().is_err());
        assert!("x".repeat(65).parse::<ProductId>().is_err());
        assert!(Qty::new(0).is_err());
        assert!(Qty::new(1).is_ok());
        assert!(Qty::new(Qty::MAX + 1).is_err());
    }

    #[test]
    fn idempotency_keys() {
        assert_eq!("\"abc\"".parse::<IdempotencyKey>().unwrap().as_str(), "abc");
        assert!("".parse::<IdempotencyKey>().is_err());
        assert!("é".parse::<IdempotencyKey>().is_err());
        assert!("k".repeat(256).parse::<IdempotencyKey>().is_err());
    }
}
