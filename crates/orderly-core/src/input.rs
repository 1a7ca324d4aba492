//! Requests parsed from JSON into domain types, once, with every problem reported against
//! the field it concerns (`items[1].qty must be at least 1`).
//!
//! Parsing works on a `serde_json::Value` rather than a derived struct so that one request
//! gets all of its field errors at once, named by path, with our wording.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::{Error, FieldError};
use crate::model::{OrderFilter, ProductSpec};
use crate::money::Money;
use crate::status::OrderStatus;
use crate::types::{Email, ProductId, Qty, Stock, UserId};

/// Most lines an order may have.
pub const MAX_ITEMS: usize = 100;
/// Most orders one page of a listing may hold.
pub const MAX_PAGE: u32 = 100;
/// Page size when `limit` is absent.
pub const DEFAULT_PAGE: u32 = 20;

/// A validated `POST /orders` body (prices not yet known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOrder {
    pub user_id: UserId,
    pub customer_email: Option<Email>,
    pub items: Vec<LineRequest>,
    pub total_amount: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRequest {
    pub product_id: ProductId,
    pub qty: Qty,
}

/// A validated `GET /orders` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOrders {
    pub filter: OrderFilter,
    pub limit: u32,
    pub cursor: Option<String>,
}

/// How a key is named in a field error: itself, or `""` for the empty key, which would
/// otherwise name no field at all.
fn key_name(key: &str) -> &str {
    if key.is_empty() { "\"\"" } else { key }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The text of each number at the top level of a JSON object, as the client wrote it, so
/// that amounts are read exactly rather than through a binary float. A repeated key keeps
/// its last value, as `serde_json::Value` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberTexts(HashMap<String, String>);

impl NumberTexts {
    /// The top-level numbers of `raw` (empty when it is not a JSON object).
    pub fn of(raw: &[u8]) -> NumberTexts {
        let Ok(fields) =
            serde_json::from_slice::<HashMap<String, &serde_json::value::RawValue>>(raw)
        else {
            return NumberTexts::default();
        };
        NumberTexts(
            fields
                .into_iter()
                .filter(|(_, v)| {
                    v.get()
                        .starts_with(|c: char| c == '-' || c.is_ascii_digit())
                })
                .map(|(k, v)| (k, v.get().to_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Collects field errors while walking one object.
struct Fields<'a, 'e> {
    obj: &'a Map<String, Value>,
    prefix: String,
    errors: &'e mut Vec<FieldError>,
    /// The numbers' texts, for the top-level object of a request from a client.
    numbers: Option<&'a NumberTexts>,
}

impl<'a> Fields<'a, '_> {
    fn path(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    fn err(&mut self, name: &str, reason: impl Into<String>) {
        let field = self.path(name);
        self.errors.push(FieldError::new(field, reason));
    }

    fn reject_unknown(&mut self, known: &[&str]) {
        let mut unknown: Vec<&String> = self
            .obj
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
        unknown.sort();
        for k in unknown {
            let reason = format!(
                "is not a known field (expected one of: {})",
                known.join(", ")
            );
            self.err(key_name(k), reason);
        }
    }

    /// A present, non-null value.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    fn string(&mut self, name: &str, required: bool) -> Option<&'a str> {
        match self.get(name) {
            None => {
                if required {
                    self.err(name, "is required");
                }
                None
            }
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                let reason = format!("must be a string, not {}", type_name(other));
                self.err(name, reason);
                None
            }
        }
    }

    fn parse<T: std::str::FromStr<Err = crate::types::InvalidValue>>(
        &mut self,
        name: &str,
        required: bool,
    ) -> Option<T> {
        let s = self.string(name, required)?;
        match s.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(name, e.0);
                None
            }
        }
    }

    fn text(&mut self, name: &str, max: usize) -> Option<String> {
        let s = self.string(name, true)?;
        let t = s.trim();
        if t.is_empty() {
            self.err(name, "must not be blank");
            None
        } else if t.chars().count() > max {
            self.err(name, format!("must be at most {max} characters"));
            None
        } else if t.chars().any(char::is_control) {
            self.err(name, "must not contain control characters");
            None
        } else {
            Some(t.to_owned())
        }
    }

    fn integer(&mut self, name: &str, min: u64, max: u64) -> Option<u64> {
        let v = match self.get(name) {
            None => {
                self.err(name, "is required");
                return None;
            }
            Some(v) => v,
        };
        match v {
            // JSON has one number type: 2.0 and 2e0 are the integer 2.
            Value::Number(n) => match n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9.0e15)
                    .map(|f| f as u64)
            }) {
                Some(u) if u < min => self.err(name, format!("must be at least {min}")),
                Some(u) if u > max => self.err(name, format!("must be at most {max}")),
                Some(u) => return Some(u),
                None if n.as_i64().is_some() => self.err(name, format!("must be at least {min}")),
                None => self.err(name, "must be a whole number"),
            },
            other => {
                let reason = format!("must be an integer, not {}", type_name(other));
                self.err(name, reason);
            }
        }
        None
    }

    fn money(&mut self, name: &str, required: bool) -> Option<Money> {
        let Some(v) = self.get(name) else {
            if required {
                self.err(name, "is required");
            }
            return None;
        };
        let exact = match (v, self.numbers.and_then(|n| n.get(name))) {
            (Value::Number(_), Some(text)) => Money::from_json_text(text),
            _ => Money::from_json(v),
        };
        match exact {
            Ok(m) => Some(m),
            Err(e) => {
                self.err(name, e.to_string());
                None
            }
        }
    }
}

fn as_object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Error> {
    v.as_object().ok_or_else(|| {
        Error::invalid_field(what, format!("must be a JSON object, not {}", type_name(v)))
    })
}

/// The JSON Schema (draft-04, the dialect API Gateway request models use) of a
/// create-order body, built from the limits [`parse_create_order`] applies, so that a
/// gateway validating with it never refuses a body the code accepts; the code still gives
/// the precise, field-level answer for everything the schema cannot express (e-mail and id
/// syntax, money with more than two decimals, a product ordered twice).
pub fn create_order_schema() -> Value {
    let id = |max: usize| serde_json::json!({ "type": ["string", "null"], "minLength": 1, "maxLength": max });
    serde_json::json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "CreateOrder",
        "type": "object",
        "additionalProperties": false,
        // `userId` may be left out: the API fills in the caller's own user id.
        "required": ["items"],
        "properties": {
            "userId": id(UserId::MAX_LEN),
            "customerEmail": { "type": ["string", "null"], "maxLength": 254 },
            "totalAmount": { "type": ["number", "null"], "minimum": 0 },
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_ITEMS,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["qty"],
                    "properties": {
                        "productId": id(ProductId::MAX_LEN),
                        "sku": id(ProductId::MAX_LEN),
                        "qty": { "type": "number", "minimum": 1, "maximum": Qty::MAX },
                    },
                    "anyOf": [ { "required": ["productId"] }, { "required": ["sku"] } ],
                },
            },
        },
    })
}

/// Parses a create-order body built in code (its numbers have no text of their own).
pub fn parse_create_order(body: &Value) -> Result<CreateOrder, Error> {
    parse_create_order_exact(body, &NumberTexts::default())
}

/// Parses a create-order body a client sent: `numbers` holds the text of its top-level
/// numbers ([`NumberTexts::of`] its raw bytes), so `totalAmount` is read exactly.
pub fn parse_create_order_exact(body: &Value, numbers: &NumberTexts) -> Result<CreateOrder, Error> {
    let obj = as_object(body, "body")?;
    let mut errors = Vec::new();
    let mut f = Fields {
        obj,
        prefix: String::new(),
        errors: &mut errors,
        numbers: Some(numbers),
    };
    f.reject_unknown(&["userId", "customerEmail", "items", "totalAmount"]);
    let user_id = f.parse::<UserId>("userId", true);
    let customer_email = f.parse::<Email>("customerEmail", false);
    let total_amount = f.money("totalAmount", false);
    let items = match f.get("items") {
        None => {
            f.err("items", "is required");
            None
        }
        Some(Value::Array(a)) if a.is_empty() => {
            f.err("items", "must contain at least 1 item");
            None
        }
        Some(Value::Array(a)) if a.len() > MAX_ITEMS => {
            f.err("items", format!("must contain at most {MAX_ITEMS} items"));
            None
        }
        Some(Value::Array(a)) => Some(parse_lines(a, &mut errors)),
        Some(other) => {
            let reason = format!("must be an array, not {}", type_name(other));
            f.err("items", reason);
            None
        }
    };
    match (user_id, items, errors.is_empty()) {
        (Some(user_id), Some(items), true) => Ok(CreateOrder {
            user_id,
            customer_email,
            items,
            total_amount,
        }),
        _ => Err(Error::invalid(errors)),
    }
}

fn parse_lines(lines: &[Value], errors: &mut Vec<FieldError>) -> Vec<LineRequest> {
    let mut out = Vec::with_capacity(lines.len());
    let mut seen: HashMap<ProductId, usize> = HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(obj) = line.as_object() else {
            errors.push(FieldError::new(
                format!("items[{i}]"),
                format!("must be an object, not {}", type_name(line)),
            ));
            continue;
        };
        let mut f = Fields {
            obj,
            prefix: format!("items[{i}]."),
            errors,
            numbers: None,
        };
        f.reject_unknown(&["productId", "sku", "qty"]);
        // `sku` is accepted as another name for the product id.
        let name = match (f.get("productId"), f.get("sku")) {
            (Some(_), Some(_)) => {
                f.err("sku", "must not be given together with productId");
                None
            }
            (None, None) => {
                f.err("productId", "is required");
                None
            }
            (Some(_), None) => Some("productId"),
            (None, Some(_)) => Some("sku"),
        };
        let product_id = name.and_then(|n| f.parse::<ProductId>(n, true));
        let qty = f
            .integer("qty", 1, u64::from(Qty::MAX))
            .and_then(|q| u32::try_from(q).ok())
            .and_then(|q| Qty::new(q).ok());
        if let (Some(product_id), Some(qty)) = (product_id, qty) {
            if let Some(first) = seen.get(&product_id) {
                errors.push(FieldError::new(
                    format!("items[{i}].{}", name.unwrap_or("productId")),
                    format!(
                        "{product_id} is already ordered in items[{first}]; order each product once"
                    ),
                ));
            } else {
                seen.insert(product_id.clone(), i);
                out.push(LineRequest { product_id, qty });
            }
        }
    }
    out
}

/// Parses a `PUT /products/{productId}` body built in code.
pub fn parse_product(path_id: &str, body: &Value) -> Result<ProductSpec, Error> {
    parse_product_exact(path_id, body, &NumberTexts::default())
}

/// Parses a `PUT /products/{productId}` body a client sent, reading `price` exactly from
/// its text (see [`parse_create_order_exact`]).
pub fn parse_product_exact(
    path_id: &str,
    body: &Value,
    numbers: &NumberTexts,
) -> Result<ProductSpec, Error> {
    let product_id: ProductId = path_id
        .parse()
        .map_err(|e: crate::types::InvalidValue| Error::invalid_field("productId", e.0))?;
    let obj = as_object(body, "body")?;
    let mut errors = Vec::new();
    let mut f = Fields {
        obj,
        prefix: String::new(),
        errors: &mut errors,
        numbers: Some(numbers),
    };
    f.reject_unknown(&[
        "productId",
        "name",
        "price",
        "stock",
        "category",
        "currency",
    ]);
    if let Some(body_id) = f.string("productId", false)
        && body_id != product_id.as_str()
    {
        f.err("productId", "must match the product id in the path");
    }
    if let Some(cur) = f.string("currency", false)
        && cur != crate::money::CURRENCY
    {
        let reason = format!("must be {} (the only currency)", crate::money::CURRENCY);
        f.err("currency", reason);
    }
    let name = f.text("name", 200);
    let price = f.money("price", true);
    if price == Some(Money::ZERO) {
        f.err("price", "must be greater than 0");
    }
    let stock = f
        .integer("stock", 0, u64::from(u32::MAX / 2))
        .and_then(|s| Stock::try_from(s).ok());
    let category = f.text("category", 100);
    match (name, price, stock, category, errors.is_empty()) {
        (Some(name), Some(price), Some(stock), Some(category), true) => Ok(ProductSpec {
            product_id,
            name,
            price,
            stock,
            category,
        }),
        _ => Err(Error::invalid(errors)),
    }
}

/// Parses the query string pairs of `GET /orders`.
pub fn parse_list_orders(pairs: &[(String, String)]) -> Result<ListOrders, Error> {
    let mut errors = Vec::new();
    let mut out = ListOrders {
        filter: OrderFilter::default(),
        limit: DEFAULT_PAGE,
        cursor: None,
    };
    let mut seen = Vec::new();
    for (k, v) in pairs {
        if seen.contains(&k.as_str()) {
            errors.push(FieldError::new(key_name(k), "must be given at most once"));
            continue;
        }
        seen.push(k.as_str());
        match k.as_str() {
            "userId" => match v.parse::<UserId>() {
                Ok(u) => out.filter.user_id = Some(u),
                Err(e) => errors.push(FieldError::new("userId", e.0)),
            },
            "status" => match v.parse::<OrderStatus>() {
                Ok(s) => out.filter.status = Some(s),
                Err(e) => errors.push(FieldError::new("status", e.0)),
            },
            "limit" => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => out.limit = n,
                _ => errors.push(FieldError::new(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                )),
            },
            "cursor" => {
                if v.is_empty() || v.len() > 512 {
                    errors.push(FieldError::new("cursor", "is not a valid cursor"));
                } else {
                    out.cursor = Some(v.clone());
                }
            }
            other => errors.push(FieldError::new(
                key_name(other),
                "is not a known query parameter (expected userId, status, limit, cursor)",
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(e: Error) -> Vec<(String, String)> {
        match e {
            Error::Invalid { details, .. } => {
                details.into_iter().map(|d| (d.field, d.reason)).collect()
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_typical_order() {
        let req = parse_create_order(&json!({
            "userId": "user-123", "customerEmail": "ada@example.com",
            "items": [{"productId": "PROD-001", "qty": 2}, {"productId": "PROD-003", "qty": 1}],
            "totalAmount": 109.97
        }))
        .unwrap();
        assert_eq!(req.items.len(), 2);
        assert_eq!(req.total_amount.unwrap().minor(), 10997);
    }

    #[test]
    fn accepts_sku_as_an_alias() {
        let req = parse_create_order(&json!({
            "userId": "u1", "items": [{"sku": "SKU123", "qty": 2}]
        }))
        .unwrap();
        assert_eq!(req.items[0].product_id.as_str(), "SKU123");
    }

    #[test]
    fn reports_every_bad_field_by_path() {
        let errs = fields(
            parse_create_order(&json!({
                "userId": "", "customerEmail": "nope", "extra": 1, "totalAmount": 1.234,
                "items": [{"productId": "P1", "qty": 0}, 5, {"qty": 1.5, "productId": "P2"},
                          {"productId": "P1", "qty": 1}, {"productId": "P3", "sku": "P3", "qty": 1}]
            }))
            .unwrap_err(),
        );
        let names: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        for expected in [
            "extra",
            "userId",
            "customerEmail",
            "totalAmount",
            "items[0].qty",
            "items[1]",
            "items[2].qty",
            "items[4].sku",
        ] {
            assert!(names.contains(&expected), "{expected} missing in {names:?}");
        }
    }

    #[test]
    fn duplicate_products_are_refused() {
        let errs = fields(
            parse_create_order(&json!({
                "userId": "u", "items": [{"productId": "P1", "qty": 1}, {"sku": "P1", "qty": 2}]
            }))
            .unwrap_err(),
        );
        assert_eq!(errs[0].0, "items[1].sku");
        assert!(errs[0].1.contains("items[0]"));
    }

    #[test]
    fn item_count_bounds() {
        let none = fields(parse_create_order(&json!({"userId": "u", "items": []})).unwrap_err());
        assert_eq!(none[0].0, "items");
        let whole =
            parse_create_order(&json!({"userId": "u", "items": [{"sku": "A", "qty": 2.0}]}));
        assert_eq!(whole.unwrap().items[0].qty.get(), 2);
        let many: Vec<Value> = (0..101)
            .map(|i| json!({"productId": format!("P{i}"), "qty": 1}))
            .collect();
        let errs = fields(parse_create_order(&json!({"userId": "u", "items": many})).unwrap_err());
        assert!(errs[0].1.contains("at most 100"));
        let missing = fields(parse_create_order(&json!({})).unwrap_err());
        assert_eq!(missing.len(), 2);
        assert!(parse_create_order(&json!([1])).is_err());
    }

    #[test]
    fn list_query() {
        let q = parse_list_orders(&[
            ("userId".into(), "u1".into()),
            ("status".into(), "PENDING".into()),
            ("limit".into(), "5".into()),
        ])
        .unwrap();
        assert_eq!(q.limit, 5);
        for (k, v) in [
            ("limit", "0"),
            ("limit", "101"),
            ("limit", "x"),
            ("status", "DONE"),
            ("page", "2"),
            ("cursor", ""),
        ] {
            let errs = fields(parse_list_orders(&[(k.into(), v.into())]).unwrap_err());
            assert_eq!(errs[0].0, k);
        }
    }

    #[test]
    fn products() {
        let p = parse_product(
            "PROD-011",
            &json!({"name": "Cable", "price": 9.99, "stock": 10, "category": "Cables"}),
        )
        .unwrap();
        assert_eq!(p.price.minor(), 999);
        let errs = fields(
            parse_product(
                "PROD-011",
                &json!({"productId": "X", "name": " ", "price": 0, "stock": -1}),
            )
            .unwrap_err(),
        );
        let names: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            ["productId", "name", "price", "stock", "category"],
            "{errs:?}"
        );
        assert!(parse_product("bad id", &json!({})).is_err());
    }

    /// A validator of the draft-04 keywords [`create_order_schema`] uses.
    fn schema_accepts(schema: &Value, v: &Value) -> bool {
        let types_ok = match schema.get("type") {
            None => true,
            Some(t) => {
                let names: Vec<&str> = match t {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                names.iter().any(|n| match (*n, v) {
                    ("null", Value::Null) | ("boolean", Value::Bool(_)) => true,
                    ("number", Value::Number(_)) => true,
                    ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
                    ("string", Value::String(_)) | ("array", Value::Array(_)) => true,
                    ("object", Value::Object(_)) => true,
                    _ => false,
                })
            }
        };
        if !types_ok {
            return false;
        }
        let num = |k: &str| schema.get(k).and_then(Value::as_f64);
        if let Value::String(s) = v {
            let n = s.chars().count() as f64;
            if num("minLength").is_some_and(|m| n < m) || num("maxLength").is_some_and(|m| n > m) {
                return false;
            }
        }
        if let Value::Number(x) = v {
            let x = x.as_f64().unwrap_or(f64::NAN);
            if num("minimum").is_some_and(|m| x < m) || num("maximum").is_some_and(|m| x > m) {
                return false;
            }
        }
        if let Value::Array(a) = v {
            let n = a.len() as f64;
            if num("minItems").is_some_and(|m| n < m) || num("maxItems").is_some_and(|m| n > m) {
                return false;
            }
            if let Some(item) = schema.get("items")
                && !a.iter().all(|x| schema_accepts(item, x))
            {
                return false;
            }
        }
        if let Value::Object(o) = v {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(req) = schema.get("required").and_then(Value::as_array)
                && !req
                    .iter()
                    .filter_map(Value::as_str)
                    .all(|k| o.contains_key(k))
            {
                return false;
            }
            for (k, x) in o {
                match props.and_then(|p| p.get(k)) {
                    Some(ps) if !schema_accepts(ps, x) => return false,
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return false;
                    }
                    _ => {}
                }
            }
        }
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
            && !any.iter().any(|s| schema_accepts(s, v))
        {
            return false;
        }
        true
    }

    #[test]
    fn the_request_schema_never_refuses_what_the_parser_accepts() {
        let schema = create_order_schema();
        let long = "u".repeat(UserId::MAX_LEN);
        let lines = |n: usize| -> Value {
            Value::Array(
                (0..n)
                    .map(|i| json!({"productId": format!("P-{i}"), "qty": 1}))
                    .collect(),
            )
        };
        let accepted = [
            json!({"userId": "user-123", "customerEmail": "ada@example.com",
                   "items": [{"productId": "PROD-001", "qty": 2}, {"productId": "PROD-003", "qty": 1}],
                   "totalAmount": 109.97}),
            json!({"userId": long, "items": [{"sku": "PROD-001", "qty": 2.0}]}),
            json!({"userId": "u", "items": [{"productId": "PROD-001", "sku": null, "qty": 1e0}],
                   "customerEmail": null, "totalAmount": null}),
            json!({"userId": "u", "items": lines(MAX_ITEMS), "totalAmount": 0}),
            json!({"userId": "u", "items": [{"productId": "P", "qty": Qty::MAX}]}),
        ];
        for body in &accepted {
            assert!(parse_create_order(body).is_ok(), "parser: {body}");
            assert!(schema_accepts(&schema, body), "schema refused {body}");
        }
        // No userId: the API fills in the caller's own before parsing, so the gateway
        // must let it through.
        let own = json!({"items": [{"productId": "P", "qty": 1}]});
        assert!(schema_accepts(&schema, &own), "schema refused {own}");
        // Structural mistakes are refused by both (the gateway answers them first).
        let refused = [
            json!([]),
            json!({"userId": "", "items": [{"productId": "P", "qty": 1}]}),
            json!({"userId": 7, "items": [{"productId": "P", "qty": 1}]}),
            json!({"userId": "u"}),
            json!({"userId": "u", "items": []}),
            json!({"userId": "u", "items": lines(MAX_ITEMS + 1)}),
            json!({"userId": "u", "items": [{"productId": "P"}]}),
            json!({"userId": "u", "items": [{"qty": 1}]}),
            json!({"userId": "u", "items": [{"productId": "P", "qty": 0}]}),
            json!({"userId": "u", "items": [{"productId": "P", "qty": "2"}]}),
            json!({"userId": "u", "items": [{"productId": "P", "qty": Qty::MAX as u64 + 1}]}),
            json!({"userId": "u", "items": [{"productId": "P", "qty": 1, "price": 1}]}),
            json!({"userId": "u", "items": [{"productId": "P", "qty": 1}], "totalAmount": -1}),
            json!({"userId": "u", "items": [{"productId": "P", "qty": 1}], "totalAmount": "9"}),
            json!({"userId": "u", "items": [{"productId": "P", "qty": 1}], "extra": true}),
            json!({"userId": long.clone() + "u", "items": [{"productId": "P", "qty": 1}]}),
        ];
        for body in &refused {
            assert!(parse_create_order(body).is_err(), "parser accepted {body}");
            assert!(!schema_accepts(&schema, body), "schema accepted {body}");
        }
    }

    #[test]
    fn amounts_from_a_client_are_read_from_their_text() {
        let parse = |raw: &str| {
            let body: Value = serde_json::from_str(raw).unwrap();
            parse_create_order_exact(&body, &NumberTexts::of(raw.as_bytes()))
        };
        let line = r#""userId":"u1","items":[{"productId":"PROD-001","qty":1}]"#;
        let ok = parse(&format!(r#"{{{line},"totalAmount":29.99}}"#)).unwrap();
        assert_eq!(ok.total_amount, Some(Money::from_minor(2999).unwrap()));
        for bad in ["29.990000000000002", "29.99000000000001"] {
            let e = parse(&format!(r#"{{{line},"totalAmount":{bad}}}"#)).unwrap_err();
            assert_eq!(fields(e)[0].0, "totalAmount", "{bad}");
        }
        // A repeated key keeps its last value, text and parsed value alike.
        let twice = parse(&format!(
            r#"{{{line},"totalAmount":1.001,"totalAmount":2.5}}"#
        ))
        .unwrap();
        assert_eq!(twice.total_amount, Some(Money::from_minor(250).unwrap()));
        let spec = parse_product_exact(
            "P1",
            &serde_json::json!({"name":"n","price":0.1,"stock":1,"category":"c"}),
            &NumberTexts::of(
                br#"{"name":"n","price":0.100000000000000001,"stock":1,"category":"c"}"#,
            ),
        );
        assert_eq!(fields(spec.unwrap_err())[0].0, "price");
    }
}
