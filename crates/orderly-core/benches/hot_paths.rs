//! Micro-benchmarks of the pure work `POST /orders` does per request: validating the
//! body, pricing its lines from the catalogue, and serialising the accepted order (the
//! 201 body and the `OrderCreated` event).
//!
//! `cargo bench -p orderly-core --bench hot_paths`; `cargo test --benches` runs each once.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use orderly_core::input::parse_create_order;
use orderly_core::service::{order_total, price_lines, seed_catalogue};
use orderly_core::{
    DomainEvent, Money, Order, OrderId, OrderStatus, Product, ProductId, Timestamp,
};
use serde_json::{Value, json};

/// A typical order request: two lines, an email and a total to check.
fn typical_body() -> Value {
    json!({
        "userId": "user-123",
        "customerEmail": "ada@example.com",
        "items": [ { "productId": "PROD-001", "qty": 2 }, { "productId": "PROD-003", "qty": 1 } ],
        "totalAmount": 109.97
    })
}

fn catalogue() -> HashMap<ProductId, Product> {
    let now = Timestamp::from_millis(1_700_000_000_000).unwrap_or_else(|| panic!("time"));
    seed_catalogue()
        .into_iter()
        .map(|s| {
            let p = Product {
                product_id: s.product_id.clone(),
                name: s.name,
                price: s.price,
                currency: orderly_core::money::CURRENCY.to_owned(),
                stock: s.stock,
                category: s.category,
                created_at: now,
                updated_at: now,
                version: 1,
            };
            (s.product_id, p)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let body = typical_body();
    let raw = body.to_string();
    c.bench_function("validate/parse_create_order", |b| {
        b.iter(|| parse_create_order(black_box(&body)))
    });
    c.bench_function("validate/json_bytes_then_parse", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_str(black_box(&raw)).unwrap_or_default();
            parse_create_order(&v)
        })
    });

    let req = parse_create_order(&body).unwrap_or_else(|e| panic!("{e:?}"));
    let cat = catalogue();
    c.bench_function("price/lines_and_total", |b| {
        b.iter(|| {
            let items = price_lines(black_box(&req.items), black_box(&cat))?;
            let total = order_total(&items)?;
            Ok::<_, orderly_core::Error>((items, total))
        })
    });

    let items = price_lines(&req.items, &cat).unwrap_or_else(|e| panic!("{e:?}"));
    let total = order_total(&items).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(Some(total), Money::from_minor(10_997));
    let now = Timestamp::from_millis(1_700_000_000_000).unwrap_or_else(|| panic!("time"));
    let order = Order {
        order_id: OrderId::generate(now.datetime()),
        user_id: req.user_id.clone(),
        customer_email: req.customer_email.clone(),
        items,
        total_amount: total,
        currency: orderly_core::money::CURRENCY.to_owned(),
        status: OrderStatus::Pending,
        failure_reason: None,
        tracking_id: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    c.bench_function("accept/order_body_and_event", |b| {
        b.iter(|| {
            let body = serde_json::to_string(black_box(&order)).unwrap_or_default();
            let event = DomainEvent::order_created(black_box(&order));
            (body, event)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
