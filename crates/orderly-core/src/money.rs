//! Money held as integer minor units (cents).
//!
//! On the wire money is a JSON number with at most two decimals (`109.97`). Inside it is
//! an `i64` count of minor units, so sums are exact. Parsing goes through the shortest
//! decimal representation of the JSON number, which for every amount this type accepts
//! (at most 15 significant digits) is exactly the decimal the client wrote.

use std::fmt;
use std::ops::{Add, Mul};

use serde::{Serialize, Serializer};

/// Largest amount accepted: 10 000 000 000.00 (keeps every value exactly representable as
/// an `f64` on the way out, with room for sums).
pub const MAX_MINOR: i64 = 1_000_000_000_000;

/// The single currency Orderly prices in.
pub const CURRENCY: &str = "USD";

/// A non-negative amount of money in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// Why a value is not money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a number")]
    NotANumber,
    #[error("must not be negative")]
    Negative,
    #[error("must have at most 2 decimal places")]
    TooPrecise,
    #[error("must be at most 10000000000.00")]
    TooLarge,
}

impl Money {
    pub const ZERO: Money = Money(0);

    /// Money from minor units; `None` when negative or above [`MAX_MINOR`].
    pub fn from_minor(minor: i64) -> Option<Money> {
        (0..=MAX_MINOR).contains(&minor).then_some(Money(minor))
    }

    pub fn minor(self) -> i64 {
        self.0
    }

    /// Parses a decimal string such as `"109.97"`, `"5"` or `"0.5"`.
    pub fn parse_decimal(s: &str) -> Result<Money, MoneyError> {
        let s = s.trim();
        if s.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(MoneyError::NotANumber);
        }
        if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyError::NotANumber);
        }
        // Trailing zeros in the fraction carry no precision ("1.50" == "1.5").
        let frac = frac.trim_end_matches('0');
        if frac.len() > 2 {
            return Err(MoneyError::TooPrecise);
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 12 {
            return Err(MoneyError::TooLarge);
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| MoneyError::NotANumber)?
        };
        let mut cents: i64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            let digit = i64::from(b - b'0');
            cents += if i == 0 { digit * 10 } else { digit };
        }
        let minor = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(cents))
            .ok_or(MoneyError::TooLarge)?;
        Money::from_minor(minor).ok_or(MoneyError::TooLarge)
    }

    /// Parses the text of a JSON number exactly as the client wrote it (`29.99`, `2999e-2`,
    /// `1E2`): the decimal value must have at most two decimals. No binary float is involved,
    /// so `29.990000000000002` is refused although it reads as the same `f64` as `29.99`.
    pub fn from_json_text(text: &str) -> Result<Money, MoneyError> {
        let text = text.trim();
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
            None => (unsigned, None),
        };
        let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_ok(whole) || !digits_ok(frac) {
            return Err(MoneyError::NotANumber);
        }
        let exponent: i64 = match exponent {
            None => 0,
            Some(e) => {
                let e = e.strip_prefix('+').unwrap_or(e);
                let magnitude = e.strip_prefix('-').unwrap_or(e);
                if magnitude.is_empty() || !digits_ok(magnitude) {
                    return Err(MoneyError::NotANumber);
                }
                // Past a few hundred places the value is too large or too precise anyway.
                e.parse::<i64>()
                    .unwrap_or(if e.starts_with('-') { -1000 } else { 1000 })
            }
        };
        let exponent = exponent.clamp(-1000, 1000);
        let all_zero = whole.bytes().chain(frac.bytes()).all(|b| b == b'0');
        if all_zero {
            return Ok(Money::ZERO);
        }
        if negative {
            return Err(MoneyError::Negative);
        }
        // Move the decimal point by the exponent, on the digits as written.
        let digits = format!("{whole}{frac}");
        let point = whole.len() as i64 + exponent;
        let shifted = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}", "0".repeat(point as usize - digits.len()))
        } else {
            let (w, f) = digits.split_at(point as usize);
            format!("{w}.{f}")
        };
        Money::parse_decimal(&shifted)
    }

    /// Parses a JSON value that must be a number with at most two decimals.
    pub fn from_json(value: &serde_json::Value) -> Result<Money, MoneyError> {
        match value {
            serde_json::Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    let minor = i64::try_from(u)
                        .ok()
                        .and_then(|u| u.checked_mul(100))
                        .ok_or(MoneyError::TooLarge)?;
                    return Money::from_minor(minor).ok_or(MoneyError::TooLarge);
                }
                if n.as_i64().is_some() {
                    return Err(MoneyError::Negative);
                }
                let f = n.as_f64().ok_or(MoneyError::NotANumber)?;
                if !f.is_finite() {
                    return Err(MoneyError::NotANumber);
                }
                if f < 0.0 {
                    return Err(MoneyError::Negative);
                }
                if f > (MAX_MINOR / 100) as f64 {
                    return Err(MoneyError::TooLarge);
                }
                // Display of f64 is the shortest string that round-trips, never exponential.
                Money::parse_decimal(&f.to_string())
            }
            _ => Err(MoneyError::NotANumber),
        }
    }

    /// The amount as an `f64` for JSON output; exact to the cent for every valid amount.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).and_then(Money::from_minor)
    }

    pub fn checked_mul(self, qty: u32) -> Option<Money> {
        self.0
            .checked_mul(i64::from(qty))
            .and_then(Money::from_minor)
    }
}

impl Add for Money {
    type Output = Option<Money>;
    fn add(self, rhs: Money) -> Option<Money> {
        self.checked_add(rhs)
    }
}

impl Mul<u32> for Money {
    type Output = Option<Money>;
    fn mul(self, rhs: u32) -> Option<Money> {
        self.checked_mul(rhs)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> serde::Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Money::from_json(&v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn parses_the_seed_example_exactly() {
        assert_eq!(Money::from_json(&json!(109.97)).unwrap().minor(), 10997);
        assert_eq!(Money::from_json(&json!(0.1)).unwrap().minor(), 10);
        assert_eq!(Money::from_json(&json!(5)).unwrap().minor(), 500);
        assert_eq!(Money::from_json(&json!(29.99)).unwrap().minor(), 2999);
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!(Money::from_json(&json!(1.005)), Err(MoneyError::TooPrecise));
        assert_eq!(Money::from_json(&json!(-1)), Err(MoneyError::Negative));
        assert_eq!(Money::from_json(&json!(-0.5)), Err(MoneyError::Negative));
        assert_eq!(
            Money::from_json(&json!("1.00")),
            Err(MoneyError::NotANumber)
        );
        assert_eq!(Money::from_json(&json!(1e20)), Err(MoneyError::TooLarge));
        assert_eq!(Money::parse_decimal("1.2.3"), Err(MoneyError::NotANumber));
        assert_eq!(Money::parse_decimal("."), Err(MoneyError::NotANumber));
        assert_eq!(Money::parse_decimal("1.50").unwrap().minor(), 150);
    }

    #[test]
    fn serializes_as_a_json_number() {
        let m = Money::from_minor(10997).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "109.97");
        assert_eq!(m.to_string(), "109.97");
        assert_eq!(Money::from_minor(5).unwrap().to_string(), "0.05");
    }

    proptest! {
        #[test]
        fn json_round_trip_is_exact(minor in 0i64..=MAX_MINOR) {
            let m = Money::from_minor(minor).unwrap();
            let text = serde_json::to_string(&m).unwrap();
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(Money::from_json(&back), Ok(m));
        }

        #[test]
        fn display_round_trip_is_exact(minor in 0i64..=MAX_MINOR) {
            let m = Money::from_minor(minor).unwrap();
            prop_assert_eq!(Money::parse_decimal(&m.to_string()), Ok(m));
        }

        #[test]
        fn three_decimals_are_rejected(whole in 0u32..1_000_000, frac in 1u32..1000) {
            prop_assume!(frac % 10 != 0);
            let s = format!("{whole}.{frac:03}");
            prop_assert_eq!(Money::parse_decimal(&s), Err(MoneyError::TooPrecise));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = Money::parse_decimal(&s);
        }
    }

    #[test]
    fn amounts_are_read_from_the_json_text_exactly() {
        let ok = |t: &str, minor: i64| {
            assert_eq!(
                Money::from_json_text(t),
                Ok(Money::from_minor(minor).unwrap()),
                "{t}"
            );
        };
        ok("29.99", 2999);
        ok("29.990", 2999);
        ok("2999e-2", 2999);
        ok("2.999E1", 2999);
        ok("1e2", 10000);
        ok("0.5", 50);
        ok("0", 0);
        ok("-0.00", 0);
        ok("10000000000.00", 1_000_000_000_000);
        ok("9999999999.99", 999_999_999_999);
        ok("1.000000000000000", 100);
        for t in [
            "29.990000000000002",
            "29.99000000000001",
            "0.001",
            "1e-3",
            "1.005",
        ] {
            assert_eq!(Money::from_json_text(t), Err(MoneyError::TooPrecise), "{t}");
        }
        for t in ["-1", "-0.5", "-1e2"] {
            assert_eq!(Money::from_json_text(t), Err(MoneyError::Negative), "{t}");
        }
        for t in ["1e400", "123456789012345", "10000000000.01"] {
            assert_eq!(Money::from_json_text(t), Err(MoneyError::TooLarge), "{t}");
        }
        assert_eq!(Money::from_json_text("1e-400"), Err(MoneyError::TooPrecise));
        for t in ["", "abc", "1.2.3", "--1", "1e", "0e", "1e+", "\"1\""] {
            assert_eq!(Money::from_json_text(t), Err(MoneyError::NotANumber), "{t}");
        }
    }
}
