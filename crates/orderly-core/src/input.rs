//! Requests parsed from JSON into domain types, once, with every problem reported against
//! the field it concerns (`items[1].qty must be at least 1`).
//!
//! The request bodies are declared here once, as Rust types ([`CreateOrderBody`],
//! [`LineBody`], [`ProductBody`], with [`shape!`](crate::shape!)); their parsers, their
//! OpenAPI schemas and the API Gateway model all come from those declarations (see
//! [`crate::shape`]). The functions below turn a parsed body into what the use cases take.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::error::{Error, FieldError};
use crate::model::{OrderFilter, ProductSpec};
use crate::money::Money;
pub use crate::shape::NumberTexts;
use crate::shape::{Currency, Cx, List, PageSize, Positive, Scope, Shape, Text, Whole, Wire};
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

/// The highest stock level a product may be given.
pub const MAX_STOCK: u64 = (u32::MAX / 2) as u64;

crate::shape! {
    /// An order to place. Prices come from the catalogue, never from the client.
    pub struct CreateOrderBody as "CreateOrderRequest" {
        /// Whose order it is. A customer's credential supplies it: a customer may leave it
        /// out or give their own id (another user's is 403). An admin names any user, and
        /// must unless the admin credential is bound to one.
        "userId" => user_id: Option<UserId> { example: Some(json!("user-123")) },
        /// Where notifications go (optional): an e-mail address as the `Email` schema
        /// describes it.
        "customerEmail" => customer_email: Option<Email>,
        /// 1 to 100 lines, each product at most once.
        "items" => items: List<LineBody, 1, MAX_ITEMS>,
        /// Optional check: when given it must equal the catalogue total of the items (else
        /// 422, stating the computed total). At most 2 decimals.
        "totalAmount" => total_amount: Option<Money> { example: Some(json!(109.97)) },
    }
    example(json!({
        "userId": "user-123",
        "customerEmail": "ada@example.com",
        "items": [{"productId": "PROD-001", "qty": 2}, {"productId": "PROD-003", "qty": 1}],
        "totalAmount": 109.97
    }));
}

crate::shape! {
    /// One product and how many of it. Each product may appear in at most one line of an
    /// order.
    pub struct LineBody as "OrderLineRequest" {
        /// The catalogue product to order.
        "productId" => product_id: Option<ProductId> { example: Some(json!("PROD-001")) },
        /// Another name for `productId` (an older client's); give one of the two.
        "sku" => sku: Option<ProductId> { deprecated: true },
        /// How many: a whole number from 1 to 1,000,000.
        "qty" => qty: Qty { example: Some(json!(2)) },
    }
    exactly_one_of("productId", "sku");
    check_list(each_product_once);
}

impl LineBody {
    /// The product and the field that named it (`sku` is another name for `productId`).
    fn product(&self) -> Option<(&ProductId, &'static str)> {
        match (&self.product_id, &self.sku) {
            (Some(id), _) => Some((id, "productId")),
            (None, Some(id)) => Some((id, "sku")),
            (None, None) => None,
        }
    }
}

/// An order names each product once: a later line with the same product is refused.
fn each_product_once(lines: &[(usize, &LineBody)], scope: &mut Scope<'_>) {
    let mut seen: HashMap<&ProductId, usize> = HashMap::new();
    for (i, line) in lines {
        let Some((id, name)) = line.product() else {
            continue;
        };
        match seen.get(id) {
            Some(first) => scope.fail_in(
                &format!("[{i}].{name}"),
                format!("{id} is already ordered in items[{first}]; order each product once"),
            ),
            None => {
                seen.insert(id, *i);
            }
        }
    }
}

crate::shape! {
    /// A product's writable fields. Text fields are trimmed of surrounding white space.
    pub struct ProductBody as "ProductRequest" {
        /// May be echoed back, but must then equal the product id in the path.
        "productId" => product_id: Option<String> { read_only: true },
        /// 1 to 200 characters after trimming, no control characters.
        "name" => name: Text<200> { example: Some(json!("Wireless Mouse")) },
        /// The unit price: more than 0, at most 2 decimals.
        "price" => price: Positive { example: Some(json!(29.99)) },
        /// Units on hand; replaces the current stock.
        "stock" => stock: Whole<0, MAX_STOCK> { example: Some(json!(500)) },
        /// 1 to 100 characters after trimming, no control characters.
        "category" => category: Text<100> { example: Some(json!("Electronics")) },
        /// Optional; USD, the only currency.
        "currency" => currency: Option<Currency>,
    }
}

crate::shape! {
    /// Which dead letters to replay: `ids`, or all of them when `ids` is absent or null (or
    /// when there is no body at all).
    pub struct ReplayBody as "ReplayRequest" {
        /// The ids of the dead letters to move back to their queues.
        "ids" => ids: Option<Vec<String>>,
    }
}

/// `userId` is optional in the published shape (the API fills in a customer's own id
/// before parsing) but an order must have one.
fn user_id_given(body: &Value) -> Vec<FieldError> {
    match body.as_object().map(|o| o.get("userId")) {
        Some(None | Some(Value::Null)) => vec![FieldError::new("userId", "is required")],
        _ => Vec::new(),
    }
}

/// Parses a create-order body built in code (its numbers have no text of their own).
pub fn parse_create_order(body: &Value) -> Result<CreateOrder, Error> {
    parse_create_order_exact(body, &NumberTexts::default())
}

/// Parses a create-order body a client sent: `numbers` holds the text of its top-level
/// numbers ([`NumberTexts::of`] its raw bytes), so `totalAmount` is read exactly.
pub fn parse_create_order_exact(body: &Value, numbers: &NumberTexts) -> Result<CreateOrder, Error> {
    let parsed = CreateOrderBody::parse(body, numbers, user_id_given(body))?;
    let missing = || Error::invalid_field("userId", "is required");
    let user_id = parsed.user_id.ok_or_else(missing)?;
    let items = parsed
        .items
        .0
        .into_iter()
        .enumerate()
        .map(|(i, line)| match line.product_id.or(line.sku) {
            Some(product_id) => Ok(LineRequest {
                product_id,
                qty: line.qty,
            }),
            None => Err(Error::invalid_field(
                &format!("items[{i}].productId"),
                "is required",
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(CreateOrder {
        user_id,
        customer_email: parsed.customer_email,
        items,
        total_amount: parsed.total_amount,
    })
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
    let mut before = Vec::new();
    if let Some(Value::String(echoed)) = body.get("productId")
        && echoed != product_id.as_str()
    {
        before.push(FieldError::new(
            "productId",
            "must match the product id in the path",
        ));
    }
    let parsed = ProductBody::parse(body, numbers, before)?;
    let stock = Stock::try_from(parsed.stock.0)
        .map_err(|_| Error::invalid_field("stock", format!("must be at most {MAX_STOCK}")))?;
    Ok(ProductSpec {
        product_id,
        name: parsed.name.0,
        price: parsed.price.0,
        stock,
        category: parsed.category.0,
    })
}

/// A page cursor as the client gives it back: 1 to 512 characters (what it holds is
/// checked when it is used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorText(pub String);

impl Wire for CursorText {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        match v.as_str() {
            Some(s) if !s.is_empty() && s.len() <= 512 => Some(CursorText(s.to_owned())),
            _ => {
                cx.fail("is not a valid cursor");
                None
            }
        }
    }
    fn schema() -> Value {
        json!({"type": "string", "minLength": 1, "maxLength": 512})
    }
}

crate::shape! {
    /// The query of `GET /orders`: filters and paging.
    pub struct ListOrdersQuery as "ListOrdersQuery" {
        /// Only this user's orders.
        "userId" => user_id: Option<UserId>,
        /// Only orders in this status.
        "status" => status: Option<OrderStatus>,
        /// Page size, 1 to 100 (default 20).
        "limit" => limit: PageSize<DEFAULT_PAGE, MAX_PAGE>,
        /// The `nextCursor` of the previous page, as given (opaque). Any other value is 400.
        "cursor" => cursor: Option<CursorText>,
    }
}

crate::shape! {
    /// The query of the admin lists (`GET /admin/dlq`, a webhook's deliveries).
    pub struct AdminListQuery as "AdminListQuery" {
        /// At most this many, 1 to 1000 (default 100).
        "limit" => limit: PageSize<100, 1000>,
    }
}

/// Parses the query string pairs of `GET /orders`.
pub fn parse_list_orders(pairs: &[(String, String)]) -> Result<ListOrders, Error> {
    let q = ListOrdersQuery::parse_query(pairs)?;
    Ok(ListOrders {
        filter: OrderFilter {
            user_id: q.user_id,
            status: q.status,
        },
        limit: q.limit.0,
        cursor: q.cursor.map(|c| c.0),
    })
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

    /// A validator of the draft-04 keywords the create-order gateway model uses.
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
        if let Some(all) = schema.get("allOf").and_then(Value::as_array)
            && !all.iter().all(|s| schema_accepts(s, v))
        {
            return false;
        }
        if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
            && one.iter().filter(|s| schema_accepts(s, v)).count() != 1
        {
            return false;
        }
        true
    }

    #[test]
    fn the_request_schema_never_refuses_what_the_parser_accepts() {
        let schema = CreateOrderBody::gateway_model();
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
