//! Property tests for the request parsers (`orderly_core::input`) and the domain value
//! types: no input makes them panic, what they accept satisfies the documented limits and
//! survives a round trip, what they refuse is explained field by field, and every
//! create-order body the parser accepts is one the published JSON schema accepts too.
//!
//! The unit tests beside the parsers cover hand-picked examples; these cover the space
//! around them: arbitrary JSON, and bodies that are nearly right (right keys with wrong
//! types, huge numbers, unicode, strings at and past their length limits, fractional
//! quantities, duplicate products).

use orderly_core::input::{
    CreateOrder, CreateOrderBody, DEFAULT_PAGE, ListOrders, MAX_ITEMS, MAX_PAGE,
    parse_create_order, parse_list_orders, parse_product,
};
use orderly_core::model::ProductSpec;
use orderly_core::money::MAX_MINOR;
use orderly_core::shape::Shape;
use orderly_core::{
    Email, Error, IdempotencyKey, Money, OrderId, OrderStatus, ProductId, Qty, UserId,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Number, Value, json};

// ---------------------------------------------------------------------------------------
// Strategies

/// Keys the parsers know, so that arbitrary objects often hit a real field.
const KNOWN_KEYS: &[&str] = &[
    "userId",
    "customerEmail",
    "items",
    "totalAmount",
    "productId",
    "sku",
    "qty",
    "name",
    "price",
    "stock",
    "category",
    "currency",
];

fn finite_f64() -> impl Strategy<Value = Value> {
    any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number))
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        finite_f64(),
        "\\PC{0,12}".prop_map(Value::String),
        "[A-Za-z0-9._:@-]{1,12}".prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KNOWN_KEYS).prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

/// Any JSON value, nested at most four levels deep.
fn arb_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A value of a type no field of these requests takes as a whole.
fn wrong_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        finite_f64(),
        Just(json!([])),
        Just(json!(["x"])),
        Just(json!({})),
        Just(json!({"a": 1})),
    ]
}

fn repeat(c: &'static str, lens: Vec<usize>) -> impl Strategy<Value = String> {
    prop::sample::select(lens).prop_map(move |n| c.repeat(n))
}

/// A string that is usually a valid identifier of at most `max` characters.
fn near_ident(max: usize) -> BoxedStrategy<Value> {
    prop_oneof![
        40 => "[A-Za-z0-9._:@-]{1,16}".prop_map(Value::String),
        // Few distinct values, so that lines now and then name the same product.
        4 => "P-[0-3]".prop_map(Value::String),
        1 => repeat("a", vec![max - 1, max, max + 1, 4 * max]).prop_map(Value::String),
        1 => "\\PC{0,12}".prop_map(Value::String),
        1 => "[a-z]{1,5}[ \t\n][a-z]{1,5}".prop_map(Value::String),
        1 => Just(Value::String(String::new())),
        1 => wrong_type(),
    ]
    .boxed()
}

fn near_email() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => "[a-z0-9._%+-]{1,12}@[a-z0-9][a-z0-9-]{0,9}\\.[a-z]{2,6}".prop_map(Value::String),
        1 => "\\PC{1,8}@\\PC{1,8}\\.[a-z]{2,3}".prop_map(Value::String),
        1 => "\\PC{0,20}".prop_map(Value::String),
        1 => (repeat("l", vec![63, 64, 65]), repeat("d", vec![180, 186, 187, 188, 250]))
            .prop_map(|(l, d)| Value::String(format!("{l}@{d}.com"))),
        1 => wrong_type(),
    ]
    .boxed()
}

fn money_value(minor: i64) -> Value {
    let m = Money::from_minor(minor).expect("minor units in range");
    serde_json::to_value(m).expect("money serializes")
}

/// Usually an amount with at most two decimals; sometimes negative, too precise, too
/// large, tiny, or not a number.
fn near_money() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => (0..=MAX_MINOR).prop_map(money_value),
        2 => (0u64..=10_000_000_000).prop_map(Value::from),
        2 => prop::sample::select(vec![
            json!(0),
            json!(0.0),
            json!(0.01),
            json!(10_000_000_000u64),
            money_value(MAX_MINOR),
        ]),
        2 => prop::sample::select(vec![
            json!(-1),
            json!(-0.01),
            json!(-0.0),
            json!(1.005),
            json!(0.001),
            json!(1e10),
            json!(1e10 + 0.01),
            json!(10_000_000_001u64),
            json!(1e11),
            json!(1e300),
            json!(5e-324),
            json!(u64::MAX),
            json!(i64::MIN),
            json!("9.99"),
        ]),
        1 => finite_f64(),
        1 => wrong_type(),
    ]
    .boxed()
}

/// Usually a quantity in range, as an integer or a whole float; sometimes zero, negative,
/// fractional, huge, or not a number.
fn near_qty() -> BoxedStrategy<Value> {
    prop_oneof![
        24 => (1..=Qty::MAX).prop_map(Value::from),
        8 => (1..=Qty::MAX).prop_map(|n| json!(f64::from(n))),
        4 => prop::sample::select(vec![
            json!(1),
            json!(1.0),
            json!(Qty::MAX),
            json!(f64::from(Qty::MAX)),
        ]),
        2 => prop::sample::select(vec![
            json!(0),
            json!(-1),
            json!(-0.0),
            json!(-2.0),
            json!(Qty::MAX + 1),
            json!(f64::from(Qty::MAX) + 1.0),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(4_294_967_297u64),
            json!(1e20),
            json!(1e300),
            json!(9.0e15),
            json!(9.0e15 + 2.0),
            json!(f64::MIN_POSITIVE),
            json!("2"),
        ]),
        2 => (0u32..1000, 0.0f64..1.0).prop_map(|(n, f)| json!(f64::from(n) + f)),
        1 => finite_f64(),
        1 => wrong_type(),
    ]
    .boxed()
}

fn object(fields: Vec<(&str, Option<Value>)>, extra: Option<(String, Value)>) -> Value {
    let mut m: Map<String, Value> = fields
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v?)))
        .collect();
    if let Some((k, v)) = extra {
        m.insert(k, v);
    }
    Value::Object(m)
}

fn near_line() -> BoxedStrategy<Value> {
    (
        prop::sample::select(vec!["productId", "productId", "productId", "sku"]),
        prop::option::weighted(0.97, near_ident(ProductId::MAX_LEN)),
        prop::option::weighted(0.03, near_ident(ProductId::MAX_LEN)),
        prop::option::weighted(0.97, near_qty()),
        prop::option::weighted(0.02, (key(), wrong_type())),
    )
        .prop_map(|(id_key, id, other_id, qty, extra)| {
            let other_key = if id_key == "sku" { "productId" } else { "sku" };
            object(
                vec![(id_key, id), (other_key, other_id), ("qty", qty)],
                extra,
            )
        })
        .boxed()
}

fn near_items() -> BoxedStrategy<Value> {
    prop_oneof![
        30 => prop::collection::vec(near_line(), 1..5).prop_map(Value::Array),
        1 => Just(json!([])),
        1 => prop::collection::vec(near_line(), MAX_ITEMS - 1..=MAX_ITEMS + 1)
            .prop_map(Value::Array),
        1 => prop::collection::vec(wrong_type(), 1..3).prop_map(Value::Array),
        1 => wrong_type(),
    ]
    .boxed()
}

/// A create-order body that is often valid and otherwise wrong in a few places.
fn near_order() -> BoxedStrategy<Value> {
    (
        prop::option::weighted(0.95, near_ident(UserId::MAX_LEN)),
        prop::option::weighted(0.4, near_email()),
        prop::option::weighted(0.95, near_items()),
        prop::option::weighted(0.4, near_money()),
        prop::option::weighted(0.03, (key(), arb_json())),
    )
        .prop_map(|(user, email, items, total, extra)| {
            object(
                vec![
                    ("userId", user),
                    ("customerEmail", email),
                    ("items", items),
                    ("totalAmount", total),
                ],
                extra,
            )
        })
        .boxed()
}

/// Text for a product's name or category of at most `max` characters.
fn near_text(max: usize) -> BoxedStrategy<Value> {
    prop_oneof![
        30 => "[A-Za-z0-9][A-Za-z0-9 ]{0,30}".prop_map(Value::String),
        1 => " {0,3}[A-Za-z]{1,8} {0,3}".prop_map(Value::String),
        1 => "\\PC{0,20}".prop_map(Value::String),
        1 => "[ \t\n]{0,3}".prop_map(Value::String),
        1 => "[a-z]{1,5}[\\x00-\\x1f\\x7f-\\x9f][a-z]{0,5}".prop_map(Value::String),
        // Two bytes per character: the limit is in characters.
        1 => repeat("é", vec![max - 1, max, max + 1]).prop_map(Value::String),
        1 => wrong_type(),
    ]
    .boxed()
}

fn near_stock() -> BoxedStrategy<Value> {
    prop_oneof![
        20 => (0..=u32::MAX / 2).prop_map(Value::from),
        2 => prop::sample::select(vec![
            json!(0.0),
            json!(3.0),
            json!(1.5),
            json!(-1),
            json!(u32::MAX / 2 + 1),
            json!(u32::MAX),
            json!(u64::MAX),
            json!(1e300),
            json!("3"),
        ]),
        1 => finite_f64(),
        1 => wrong_type(),
    ]
    .boxed()
}

/// A product id for the path and a `PUT /products/{id}` body that is often valid.
fn near_product() -> BoxedStrategy<(String, Value)> {
    (
        prop_oneof![9 => "[A-Za-z0-9._:@-]{1,16}", 1 => "\\PC{0,10}"],
        prop::option::weighted(
            0.3,
            prop_oneof![3 => Just(None), 1 => near_ident(ProductId::MAX_LEN).prop_map(Some)],
        ),
        prop::option::weighted(0.95, near_text(200)),
        prop::option::weighted(0.95, near_money()),
        prop::option::weighted(0.95, near_stock()),
        prop::option::weighted(0.95, near_text(100)),
        prop::option::weighted(
            0.3,
            prop_oneof![
                3 => Just(json!("USD")),
                1 => Just(json!("usd")),
                1 => Just(json!("EUR")),
                1 => wrong_type(),
            ],
        ),
        prop::option::weighted(0.03, (key(), wrong_type())),
    )
        .prop_map(
            |(path, body_id, name, price, stock, category, currency, extra)| {
                // `Some(None)`: the body repeats the path's id.
                let body_id = body_id.map(|id| id.unwrap_or_else(|| json!(path)));
                let body = object(
                    vec![
                        ("productId", body_id),
                        ("name", name),
                        ("price", price),
                        ("stock", stock),
                        ("category", category),
                        ("currency", currency),
                    ],
                    extra,
                );
                (path, body)
            },
        )
        .boxed()
}

fn near_pair() -> BoxedStrategy<(String, String)> {
    let statuses: Vec<String> = OrderStatus::ALL
        .iter()
        .flat_map(|s| [s.as_str().to_owned(), s.as_str().to_lowercase()])
        .collect();
    let value = |s: BoxedStrategy<String>, k: &'static str| s.prop_map(move |v| (k.to_owned(), v));
    prop_oneof![
        3 => value(
            prop_oneof![
                4 => "[A-Za-z0-9._:@-]{1,16}".boxed(),
                1 => "\\PC{0,10}".boxed(),
                1 => repeat("u", vec![128, 129]).boxed(),
            ]
            .boxed(),
            "userId",
        ),
        3 => value(
            prop_oneof![4 => prop::sample::select(statuses).boxed(), 1 => "[A-Z_]{0,10}".boxed()]
                .boxed(),
            "status",
        ),
        3 => value(
            prop_oneof![
                4 => "[0-9]{1,3}".boxed(),
                1 => "[+-]?[0-9]{1,12}".boxed(),
                1 => " ?[0-9]{1,2} ?".boxed(),
                1 => "\\PC{0,5}".boxed(),
            ]
            .boxed(),
            "limit",
        ),
        3 => value(
            prop_oneof![
                4 => "[A-Za-z0-9_-]{1,40}".boxed(),
                1 => "\\PC{0,20}".boxed(),
                1 => repeat("c", vec![511, 512, 513]).boxed(),
            ]
            .boxed(),
            "cursor",
        ),
        1 => ("\\PC{0,8}", "\\PC{0,8}"),
    ]
    .boxed()
}

fn near_query() -> BoxedStrategy<Vec<(String, String)>> {
    prop::collection::vec(near_pair(), 0..4).boxed()
}

// ---------------------------------------------------------------------------------------
// Checks

/// A refusal must be `Invalid` with at least one error, each naming a field and a reason.
fn check_rejected(e: Error) -> Result<(), TestCaseError> {
    match e {
        Error::Invalid { message, details } => {
            prop_assert!(!details.is_empty(), "no field errors: {}", message);
            prop_assert!(!message.is_empty());
            for d in &details {
                prop_assert!(!d.field.is_empty(), "unnamed field in {:?}", details);
                prop_assert!(!d.reason.is_empty(), "no reason in {:?}", details);
            }
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "expected Invalid, got {other:?}"
        ))),
    }
}

/// The JSON the API would send back for a parsed order, as text and back.
fn order_body(o: &CreateOrder) -> Value {
    let items: Vec<Value> = o
        .items
        .iter()
        .map(|l| json!({"productId": l.product_id.as_str(), "qty": l.qty.get()}))
        .collect();
    let mut m = Map::new();
    m.insert("userId".into(), json!(o.user_id.as_str()));
    m.insert("items".into(), Value::Array(items));
    if let Some(e) = &o.customer_email {
        m.insert("customerEmail".into(), json!(e.as_str()));
    }
    if let Some(t) = o.total_amount {
        m.insert(
            "totalAmount".into(),
            serde_json::to_value(t).expect("money"),
        );
    }
    let text = Value::Object(m).to_string();
    serde_json::from_str(&text).expect("our own JSON parses")
}

fn check_accepted_order(body: &Value, o: &CreateOrder) -> Result<(), TestCaseError> {
    prop_assert!(
        (1..=MAX_ITEMS).contains(&o.items.len()),
        "{} lines",
        o.items.len()
    );
    for l in &o.items {
        prop_assert!((1..=Qty::MAX).contains(&l.qty.get()), "qty {}", l.qty.get());
    }
    let mut ids: Vec<&str> = o.items.iter().map(|l| l.product_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    prop_assert_eq!(ids.len(), o.items.len(), "a product is ordered twice");
    // Every line of the body became a line of the order, in order.
    let lines = body["items"].as_array().map_or(0, Vec::len);
    prop_assert_eq!(lines, o.items.len());
    prop_assert_eq!(parse_create_order(&order_body(o)), Ok(o.clone()));
    if let Err(why) = schema_check(&CreateOrderBody::gateway_model(), body, "body") {
        return Err(TestCaseError::fail(format!(
            "the parser accepted {body} but the schema refuses it: {why}"
        )));
    }
    Ok(())
}

fn product_body(p: &ProductSpec) -> Value {
    json!({
        "productId": p.product_id.as_str(),
        "name": p.name,
        "price": serde_json::to_value(p.price).expect("money"),
        "stock": p.stock,
        "category": p.category,
        "currency": "USD",
    })
}

fn check_text(s: &str, max: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(s, s.trim());
    prop_assert!((1..=max).contains(&s.chars().count()), "{:?}", s);
    prop_assert!(!s.chars().any(char::is_control), "{:?}", s);
    Ok(())
}

fn check_accepted_product(path: &str, p: &ProductSpec) -> Result<(), TestCaseError> {
    prop_assert_eq!(p.product_id.as_str(), path);
    check_text(&p.name, 200)?;
    check_text(&p.category, 100)?;
    prop_assert!(p.price.minor() > 0 && p.price.minor() <= MAX_MINOR);
    prop_assert!(p.stock <= u32::MAX / 2);
    prop_assert_eq!(parse_product(path, &product_body(p)), Ok(p.clone()));
    Ok(())
}

fn query_pairs(q: &ListOrders) -> Vec<(String, String)> {
    let mut pairs = vec![("limit".to_owned(), q.limit.to_string())];
    if let Some(u) = &q.filter.user_id {
        pairs.push(("userId".into(), u.to_string()));
    }
    if let Some(s) = q.filter.status {
        pairs.push(("status".into(), s.to_string()));
    }
    if let Some(c) = &q.cursor {
        pairs.push(("cursor".into(), c.clone()));
    }
    pairs
}

fn check_accepted_query(pairs: &[(String, String)], q: &ListOrders) -> Result<(), TestCaseError> {
    prop_assert!((1..=MAX_PAGE).contains(&q.limit));
    let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    let n = keys.len();
    keys.dedup();
    prop_assert_eq!(keys.len(), n, "a parameter given twice was accepted");
    for k in &keys {
        prop_assert!(["userId", "status", "limit", "cursor"].contains(k), "{}", k);
    }
    if !keys.contains(&"limit") {
        prop_assert_eq!(q.limit, DEFAULT_PAGE);
    }
    if let Some(c) = &q.cursor {
        prop_assert!(!c.is_empty() && c.len() <= 512);
    }
    prop_assert_eq!(parse_list_orders(&query_pairs(q)), Ok(q.clone()));
    Ok(())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `v` against the draft-04 keywords the create-order gateway model uses (type,
/// required, properties, additionalProperties, items, anyOf, allOf, oneOf and the length, size and range bounds),
/// saying where it fails.
fn schema_check(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    if let Some(t) = schema.get("type") {
        let allowed: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{path}: unreadable type {t}")),
        };
        let actual = json_type(v);
        let integer = v.as_i64().is_some() || v.as_u64().is_some();
        let matches = allowed.contains(&actual) || (integer && allowed.contains(&"integer"));
        if !matches {
            return Err(format!("{path}: {actual} is not one of {allowed:?}"));
        }
    }
    let bound = |k: &str| schema.get(k).and_then(Value::as_f64);
    let within = |x: f64, lo: &str, hi: &str| -> Result<(), String> {
        match (bound(lo), bound(hi)) {
            (Some(min), _) if x < min => Err(format!("{path}: {x} is below {lo} {min}")),
            (_, Some(max)) if x > max => Err(format!("{path}: {x} is above {hi} {max}")),
            _ => Ok(()),
        }
    };
    match v {
        Value::String(s) => within(s.chars().count() as f64, "minLength", "maxLength")?,
        Value::Number(n) => within(n.as_f64().unwrap_or(f64::NAN), "minimum", "maximum")?,
        Value::Array(a) => {
            within(a.len() as f64, "minItems", "maxItems")?;
            if let Some(item) = schema.get("items") {
                for (i, x) in a.iter().enumerate() {
                    schema_check(item, x, &format!("{path}[{i}]"))?;
                }
            }
        }
        Value::Object(o) => {
            for k in schema["required"].as_array().into_iter().flatten() {
                let k = k.as_str().unwrap_or_default();
                if !o.contains_key(k) {
                    return Err(format!("{path}: required {k} is missing"));
                }
            }
            for (k, x) in o {
                match schema["properties"].get(k) {
                    Some(s) => schema_check(s, x, &format!("{path}.{k}"))?,
                    None if schema["additionalProperties"] == json!(false) => {
                        return Err(format!("{path}: {k} is not allowed"));
                    }
                    None => {}
                }
            }
        }
        _ => {}
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(|s| schema_check(s, v, path).is_ok())
    {
        return Err(format!("{path}: matches none of anyOf"));
    }
    for s in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        schema_check(s, v, path)?;
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let n = one
            .iter()
            .filter(|s| schema_check(s, v, path).is_ok())
            .count();
        if n != 1 {
            return Err(format!("{path}: matches {n} of oneOf, not 1"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Tests that keep the properties honest: the checker checks, the strategies reach both
// outcomes.

#[test]
fn the_schema_checker_refuses_structural_mistakes() {
    let schema = CreateOrderBody::gateway_model();
    let ok = json!({"userId": "u", "customerEmail": null,
                    "items": [{"sku": "P", "productId": null, "qty": 2.0}], "totalAmount": 0});
    assert_eq!(schema_check(&schema, &ok, "body"), Ok(()));
    let line = json!({"productId": "P", "qty": 1});
    for bad in [
        json!([line]),
        json!({"userId": "u"}),
        json!({"userId": 1, "items": [line]}),
        json!({"userId": "", "items": [line]}),
        json!({"userId": "u".repeat(UserId::MAX_LEN + 1), "items": [line]}),
        json!({"userId": "u", "items": []}),
        json!({"userId": "u", "items": vec![line.clone(); MAX_ITEMS + 1]}),
        json!({"userId": "u", "items": [line], "extra": 1}),
        json!({"userId": "u", "items": [line], "totalAmount": "1"}),
        json!({"userId": "u", "items": [line], "totalAmount": -1}),
        json!({"userId": "u", "items": [{"qty": 1}]}),
        json!({"userId": "u", "items": [{"productId": "P"}]}),
        json!({"userId": "u", "items": [{"productId": "P", "qty": 0}]}),
        json!({"userId": "u", "items": [{"productId": "P", "qty": Qty::MAX + 1}]}),
        json!({"userId": "u", "items": [{"productId": "P", "qty": "1"}]}),
        json!({"userId": "u", "items": [{"productId": "P", "qty": 1, "x": 1}]}),
        json!({"userId": "u", "items": [{"productId": 7, "qty": 1}]}),
    ] {
        assert!(schema_check(&schema, &bad, "body").is_err(), "{bad}");
    }
}

/// Found by the properties below: an unknown empty key used to be reported with the
/// field name "", which names nothing.
#[test]
fn an_empty_key_is_named_in_the_error() {
    let named = |e: Error| -> Vec<String> {
        match e {
            Error::Invalid { details, .. } => details.into_iter().map(|d| d.field).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    };
    let line = json!({"productId": "P", "qty": 1});
    let top = named(
        parse_create_order(&json!({"userId": "u", "items": [line], "": 1}))
            .expect_err("unknown key"),
    );
    assert_eq!(top, vec!["\"\"".to_owned()]);
    let nested = named(
        parse_create_order(&json!({"userId": "u", "items": [{"productId": "P", "qty": 1, "": 1}]}))
            .expect_err("unknown key"),
    );
    assert_eq!(nested, vec!["items[0].\"\"".to_owned()]);
    let query = named(
        parse_list_orders(&[("".into(), "x".into()), ("".into(), "y".into())])
            .expect_err("unknown parameter"),
    );
    assert_eq!(query, vec!["\"\"".to_owned(), "\"\"".to_owned()]);
}

/// Share of `n` samples of `strategy` that `accepts` accepts.
fn acceptance<T: std::fmt::Debug>(
    strategy: impl Strategy<Value = T>,
    accepts: impl Fn(&T) -> bool,
) -> f64 {
    let mut runner = TestRunner::deterministic();
    let n = 1000;
    let mut yes = 0;
    for _ in 0..n {
        let v = strategy.new_tree(&mut runner).expect("sample").current();
        yes += usize::from(accepts(&v));
    }
    yes as f64 / n as f64
}

#[test]
fn near_valid_strategies_reach_both_outcomes() {
    let share = [
        (
            "order",
            acceptance(near_order(), |b| parse_create_order(b).is_ok()),
        ),
        (
            "product",
            acceptance(near_product(), |(p, b)| parse_product(p, b).is_ok()),
        ),
        (
            "query",
            acceptance(near_query(), |q| parse_list_orders(q).is_ok()),
        ),
    ];
    for (what, s) in share {
        assert!((0.1..=0.9).contains(&s), "{what}: {s} of samples accepted");
    }
}

// ---------------------------------------------------------------------------------------
// Properties

proptest! {
    #[test]
    fn create_order_on_arbitrary_json(body in arb_json()) {
        match parse_create_order(&body) {
            Ok(o) => check_accepted_order(&body, &o)?,
            Err(e) => check_rejected(e)?,
        }
    }

    #[test]
    fn create_order_on_near_valid_bodies(body in near_order()) {
        match parse_create_order(&body) {
            Ok(o) => check_accepted_order(&body, &o)?,
            Err(e) => check_rejected(e)?,
        }
    }

    /// Well-formed bodies are accepted, and say what they said.
    #[test]
    fn create_order_accepts_valid_bodies(
        user in "[A-Za-z0-9._:@-]{1,128}",
        email in prop::option::of("[a-z0-9._+-]{1,20}@[a-z0-9][a-z0-9-]{0,20}\\.[a-z]{2,6}"),
        lines in prop::collection::btree_map(
            "[A-Za-z0-9._:@-]{1,64}",
            (1..=Qty::MAX, any::<bool>(), any::<bool>()),
            1..=MAX_ITEMS,
        ),
        total in prop::option::of(prop_oneof![Just(0), Just(MAX_MINOR), 0..=MAX_MINOR]),
    ) {
        let items: Vec<Value> = lines
            .iter()
            .map(|(id, (qty, as_float, as_sku))| {
                let key = if *as_sku { "sku" } else { "productId" };
                let qty = if *as_float { json!(f64::from(*qty)) } else { json!(qty) };
                json!({ key: id, "qty": qty })
            })
            .collect();
        let body = object(
            vec![
                ("userId", Some(json!(user))),
                ("customerEmail", email.as_ref().map(|e| json!(e))),
                ("items", Some(Value::Array(items))),
                ("totalAmount", total.map(money_value)),
            ],
            None,
        );
        let o = parse_create_order(&body);
        prop_assert!(o.is_ok(), "{} refused: {:?}", body, o);
        let o = o.expect("checked");
        prop_assert_eq!(o.user_id.as_str(), user.as_str());
        prop_assert_eq!(o.customer_email.as_ref().map(Email::as_str), email.as_deref());
        prop_assert_eq!(o.total_amount.map(Money::minor), total);
        let got: Vec<(&str, u32)> =
            o.items.iter().map(|l| (l.product_id.as_str(), l.qty.get())).collect();
        let want: Vec<(&str, u32)> =
            lines.iter().map(|(id, (q, _, _))| (id.as_str(), *q)).collect();
        prop_assert_eq!(got, want);
        check_accepted_order(&body, &o)?;
    }

    #[test]
    fn product_on_arbitrary_input(path in "\\PC{0,12}", body in arb_json()) {
        match parse_product(&path, &body) {
            Ok(p) => check_accepted_product(&path, &p)?,
            Err(e) => check_rejected(e)?,
        }
    }

    #[test]
    fn product_on_near_valid_bodies((path, body) in near_product()) {
        match parse_product(&path, &body) {
            Ok(p) => check_accepted_product(&path, &p)?,
            Err(e) => check_rejected(e)?,
        }
    }

    #[test]
    fn list_orders_on_arbitrary_pairs(
        pairs in prop::collection::vec(("(?s).{0,10}", "(?s).{0,20}"), 0..5),
    ) {
        match parse_list_orders(&pairs) {
            Ok(q) => check_accepted_query(&pairs, &q)?,
            Err(e) => check_rejected(e)?,
        }
    }

    #[test]
    fn list_orders_on_near_valid_pairs(pairs in near_query()) {
        match parse_list_orders(&pairs) {
            Ok(q) => check_accepted_query(&pairs, &q)?,
            Err(e) => check_rejected(e)?,
        }
    }

    // -----------------------------------------------------------------------------------
    // Domain types

    #[test]
    fn order_ids(
        bits in any::<u128>(),
        upper in any::<bool>(),
        noise in "(?s).{0,40}",
    ) {
        let hex = format!("{bits:032x}");
        let canonical = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]
        );
        let text = if upper { canonical.to_uppercase() } else { canonical.clone() };
        let id = text.parse::<OrderId>();
        prop_assert!(id.is_ok(), "{} refused", text);
        let id = id.expect("checked");
        prop_assert_eq!(id.to_string(), canonical.clone());
        prop_assert_eq!(id.to_string().parse::<OrderId>(), Ok(id));
        // Other spellings of the same UUID, and anything else, are refused or round-trip.
        for s in [
            noise.clone(),
            hex.clone(),
            format!("{{{canonical}}}"),
            format!("urn:uuid:{canonical}"),
            format!(" {canonical}"),
            format!("{}{}", &canonical[..35], &noise),
        ] {
            if let Ok(id) = s.parse::<OrderId>() {
                prop_assert_eq!(id.to_string(), s.to_ascii_lowercase());
                prop_assert_eq!(id.to_string().parse::<OrderId>(), Ok(id));
            }
        }
    }

    /// Product and user ids are exactly the strings of 1 to MAX_LEN characters from
    /// `[A-Za-z0-9._:@-]`, and print as given.
    #[test]
    fn product_and_user_ids(
        s in prop_oneof![
            "(?s).{0,20}",
            "[A-Za-z0-9._:@ /-]{0,140}",
            "[A-Za-z0-9._:@-]{60,70}",
            "[A-Za-z0-9._:@-]{125,131}",
        ],
    ) {
        let charset_ok = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:@-".contains(c));
        let n = s.chars().count();
        let p = s.parse::<ProductId>();
        prop_assert_eq!(p.is_ok(), charset_ok && (1..=ProductId::MAX_LEN).contains(&n), "{:?}", s);
        if let Ok(p) = p {
            prop_assert_eq!(p.to_string(), s.clone());
            prop_assert_eq!(p.to_string().parse::<ProductId>(), Ok(p.clone()));
            let json = serde_json::to_string(&p).expect("serializes");
            prop_assert_eq!(serde_json::from_str::<ProductId>(&json).ok(), Some(p));
        }
        let u = s.parse::<UserId>();
        prop_assert_eq!(u.is_ok(), charset_ok && (1..=UserId::MAX_LEN).contains(&n), "{:?}", s);
        if let Ok(u) = u {
            prop_assert_eq!(u.to_string(), s.clone());
            prop_assert_eq!(u.to_string().parse::<UserId>(), Ok(u.clone()));
            let json = serde_json::to_string(&u).expect("serializes");
            prop_assert_eq!(serde_json::from_str::<UserId>(&json).ok(), Some(u));
        }
        // Deserializing goes through the same check.
        let json = serde_json::to_string(&s).expect("serializes");
        prop_assert_eq!(serde_json::from_str::<UserId>(&json).is_ok(), s.parse::<UserId>().is_ok());
    }

    #[test]
    fn emails(
        s in prop_oneof![
            "(?s).{0,40}",
            "[a-z0-9._+-]{0,20}@[a-z0-9.-]{0,20}",
            "\\PC{1,10}@\\PC{1,10}\\.\\PC{1,4}",
            "[a-z]{60,70}@[a-z]{180,195}\\.com",
        ],
    ) {
        if let Ok(e) = s.parse::<Email>() {
            prop_assert_eq!(e.to_string(), s.clone());
            prop_assert_eq!(e.to_string().parse::<Email>(), Ok(e.clone()));
            prop_assert!(s.len() <= 254);
            prop_assert_eq!(s.matches('@').count(), 1);
            prop_assert!(!s.chars().any(char::is_whitespace));
            let json = serde_json::to_string(&e).expect("serializes");
            prop_assert_eq!(serde_json::from_str::<Email>(&json).ok(), Some(e));
        }
    }

    #[test]
    fn valid_emails_are_accepted(
        s in "[a-z0-9._+-]{1,30}@[a-z0-9][a-z0-9-]{0,20}(\\.[a-z0-9][a-z0-9-]{0,10}){1,3}",
    ) {
        prop_assert!(s.parse::<Email>().is_ok(), "{} refused", s);
    }

    #[test]
    fn quantities(n in any::<u32>(), wide in any::<i64>()) {
        let q = Qty::new(n);
        prop_assert_eq!(q.is_ok(), (1..=Qty::MAX).contains(&n));
        if let Ok(q) = q {
            prop_assert_eq!(q.get(), n);
            let json = serde_json::to_string(&q).expect("serializes");
            prop_assert_eq!(json.clone(), n.to_string());
            prop_assert_eq!(serde_json::from_str::<Qty>(&json).ok(), Some(q));
        }
        let from_wide = serde_json::from_value::<Qty>(json!(wide)).ok().map(Qty::get);
        let expected = u32::try_from(wide).ok().filter(|w| (1..=Qty::MAX).contains(w));
        prop_assert_eq!(from_wide, expected);
    }

    /// Any JSON number either is refused or is money equal to it exactly.
    #[test]
    fn money_from_json_numbers(
        n in prop_oneof![
            finite_f64(),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (0..=MAX_MINOR * 2).prop_map(|m| json!(m as f64 / 100.0)),
        ],
    ) {
        if let Ok(m) = Money::from_json(&n) {
            prop_assert!((0..=MAX_MINOR).contains(&m.minor()));
            prop_assert_eq!(Some(m.as_f64()), n.as_f64(), "{} became {}", n, m);
            prop_assert_eq!(Money::parse_decimal(&m.to_string()), Ok(m));
            let back = serde_json::to_value(m).expect("serializes");
            prop_assert_eq!(Money::from_json(&back), Ok(m));
        }
    }

    #[test]
    fn money_from_decimal_strings(s in "[+-]?[0-9]{0,14}(\\.[0-9]{0,4})?|\\PC{0,8}") {
        if let Ok(m) = Money::parse_decimal(&s) {
            prop_assert!((0..=MAX_MINOR).contains(&m.minor()));
            prop_assert_eq!(Money::parse_decimal(&m.to_string()), Ok(m));
        }
    }

    /// Idempotency keys: 1 to 255 visible ASCII characters, optionally sent as a quoted
    /// structured-field string. The quoted form of a key always parses back to it; the
    /// bare form does too unless the key itself starts and ends with a quote.
    #[test]
    fn idempotency_keys(
        s in prop_oneof![
            "(?s).{0,20}",
            "\"?[ -~]{0,20}\"?",
            "\"{0,4}",
            "[!-~]{250,260}",
            "\"[!-~]{254,256}\"",
        ],
    ) {
        if let Ok(k) = s.parse::<IdempotencyKey>() {
            let key = k.as_str();
            prop_assert!((1..=255).contains(&key.len()), "{:?}", key);
            prop_assert!(key.bytes().all(|b| (0x20..0x7f).contains(&b)), "{:?}", key);
            prop_assert!(s == key || s == format!("\"{key}\""), "{:?} became {:?}", s, key);
            prop_assert_eq!(format!("\"{key}\"").parse::<IdempotencyKey>(), Ok(k.clone()));
            let quoted = key.len() >= 2 && key.starts_with('"') && key.ends_with('"');
            if !quoted {
                prop_assert_eq!(key.parse::<IdempotencyKey>(), Ok(k.clone()));
            }
        }
    }
}
