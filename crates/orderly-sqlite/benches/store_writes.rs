//! Micro-benchmarks of the embedded store's hot paths: creating an order through the
//! `OrderStore` port (order, `OrderCreated` event and processing message in one
//! transaction), one at a time and 64 at once, which shows group commit (one fsync per
//! batch), under both durabilities; and the catalogue read that pricing does.
//!
//! `cargo bench -p orderly-sqlite --bench store_writes`; `cargo test --benches` runs each
//! once. The database lives in a temporary directory.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orderly_core::ports::{Clock, Inventory, NewOrder, OrderStore, SeedMode, SystemClock};
use orderly_core::service::seed_catalogue;
use orderly_core::{DomainEvent, Order, OrderId, OrderItem, OrderStatus, ProductId, Qty, UserId};
use orderly_sqlite::{Durability, SqliteOptions, SqliteStore};

fn new_order(clock: &dyn Clock) -> NewOrder {
    let now = clock.now();
    let item = |id: &str, qty: u32, cents: i64| OrderItem {
        product_id: id.parse().unwrap_or_else(|e| panic!("{e:?}")),
        qty: Qty::new(qty).unwrap_or_else(|e| panic!("{e:?}")),
        unit_price: orderly_core::Money::from_minor(cents).unwrap_or_else(|| panic!("price")),
    };
    let items = vec![item("PROD-001", 2, 2999), item("PROD-003", 1, 4999)];
    let order = Order {
        order_id: OrderId::generate(now.datetime()),
        user_id: "user-123"
            .parse::<UserId>()
            .unwrap_or_else(|e| panic!("{e:?}")),
        customer_email: "ada@example.com".parse().ok(),
        total_amount: orderly_core::Money::from_minor(10_997).unwrap_or_else(|| panic!("total")),
        items,
        currency: orderly_core::money::CURRENCY.to_owned(),
        status: OrderStatus::Pending,
        failure_reason: None,
        tracking_id: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    NewOrder {
        event: DomainEvent::order_created(&order),
        order,
        idempotency: None,
    }
}

fn open(
    dir: &std::path::Path,
    durability: Durability,
    rt: &tokio::runtime::Runtime,
) -> SqliteStore {
    let store = SqliteStore::open(
        dir,
        SqliteOptions {
            durability,
            ..SqliteOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("open: {e}"));
    rt.block_on(async {
        let now = SystemClock.now();
        for spec in seed_catalogue() {
            store
                .seed_product(spec, SeedMode::KeepExisting, now)
                .await
                .unwrap_or_else(|e| panic!("seed: {e}"));
        }
    });
    store
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut group = c.benchmark_group("create_order");
    group.sample_size(20);
    for (name, durability) in [("full", Durability::Full), ("normal", Durability::Normal)] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let store = open(dir.path(), durability, &rt);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("single", name), |b| {
            b.to_async(&rt).iter(|| async {
                store
                    .create(new_order(clock.as_ref()))
                    .await
                    .unwrap_or_else(|e| panic!("create: {e}"))
            })
        });
        const AT_ONCE: usize = 64;
        group.throughput(Throughput::Elements(AT_ONCE as u64));
        group.bench_function(BenchmarkId::new("concurrent_64", name), |b| {
            b.to_async(&rt).iter(|| async {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..AT_ONCE {
                    let (store, clock) = (store.clone(), clock.clone());
                    tasks.spawn(async move { store.create(new_order(clock.as_ref())).await });
                }
                while let Some(r) = tasks.join_next().await {
                    r.unwrap_or_else(|e| panic!("task: {e}"))
                        .unwrap_or_else(|e| panic!("create: {e}"));
                }
            })
        });
        store.close();
    }
    group.finish();

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let store = open(dir.path(), Durability::Full, &rt);
    let ids: Vec<ProductId> = ["PROD-001", "PROD-003"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    c.bench_function("read/products_of_an_order", |b| {
        b.to_async(&rt).iter(|| async {
            let found = store
                .products(&ids)
                .await
                .unwrap_or_else(|e| panic!("read: {e}"));
            assert_eq!(found.len(), 2);
        })
    });
    store.close();
}

criterion_group!(benches, bench);
criterion_main!(benches);
