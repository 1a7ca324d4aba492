//! The caches of verified API keys and of the catalogue: served from memory, and dropped
//! by the next read after a change committed by any store on the same data directory.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use orderly_core::access::{ApiKeyRecord, Role};
use orderly_core::ports::{ApiKeys, Inventory, SeedMode};
use orderly_core::{Money, ProductId, ProductSpec, Timestamp};
use orderly_sqlite::{SqliteOptions, SqliteStore};

fn open(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(dir, SqliteOptions::default()).unwrap()
}

/// A change made behind the store's back (no generation bump), to tell a cached answer
/// from a fresh read.
fn raw_sql(dir: &std::path::Path, sql: &str) {
    let c = rusqlite::Connection::open(dir.join(orderly_sqlite::DB_FILE)).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(c.execute(sql, []).unwrap(), 1, "{sql}");
}

fn record(id: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        secret_hash: "h".repeat(64),
        role: Role::Customer,
        user_id: Some("u-1".parse().unwrap()),
        label: None,
        created_at: Timestamp::from_millis(1_000).unwrap(),
        revoked_at: None,
    }
}

#[tokio::test]
async fn a_revocation_by_another_store_is_seen_by_the_next_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let admin = open(dir.path()); // as `orderly keys revoke` opens it, in its own process
    server.insert_key(&record("aaaaaaaaaaaa")).await.unwrap();
    server.insert_key(&record("bbbbbbbbbbbb")).await.unwrap();
    let k = server.key_by_id("aaaaaaaaaaaa").await.unwrap().unwrap();
    assert!(k.is_active());
    // Cached: a change that does not start a new generation is not seen ...
    raw_sql(
        dir.path(),
        "UPDATE api_keys SET label = 'behind' WHERE id = 'aaaaaaaaaaaa'",
    );
    let k = server.key_by_id("aaaaaaaaaaaa").await.unwrap().unwrap();
    assert_eq!(k.label, None, "served from memory");
    // ... but a revocation through any store is, on the very next lookup.
    assert!(
        admin
            .revoke_key("bbbbbbbbbbbb", Timestamp::from_millis(2_000).unwrap())
            .await
            .unwrap()
    );
    let k = server.key_by_id("aaaaaaaaaaaa").await.unwrap().unwrap();
    assert_eq!(k.label.as_deref(), Some("behind"), "the cache was dropped");
    let b = server.key_by_id("bbbbbbbbbbbb").await.unwrap().unwrap();
    assert!(!b.is_active(), "the revoked key is revoked");
    assert_eq!(server.key_by_id("cccccccccccc").await.unwrap(), None);
    // Unknown ids are not cached: a key inserted later is found.
    admin.insert_key(&record("cccccccccccc")).await.unwrap();
    assert!(server.key_by_id("cccccccccccc").await.unwrap().is_some());
}

fn spec(id: &str, minor: i64) -> ProductSpec {
    ProductSpec {
        product_id: id.parse().unwrap(),
        name: "n".into(),
        price: Money::from_minor(minor).unwrap(),
        stock: 10,
        category: "c".into(),
    }
}

async fn price(store: &SqliteStore, id: &str) -> Option<i64> {
    let ids: Vec<ProductId> = vec![id.parse().unwrap()];
    let found = store.products(&ids).await.unwrap();
    found.first().map(|p| p.price.minor())
}

#[tokio::test]
async fn a_catalogue_change_by_another_store_is_seen_by_the_next_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let other = open(dir.path()); // as `orderly seed --reset` opens it
    let t = Timestamp::from_millis(1_000).unwrap();
    server.put_product(spec("P-1", 100), t).await.unwrap();
    assert_eq!(price(&server, "P-1").await, Some(100));
    raw_sql(
        dir.path(),
        "UPDATE products SET price_minor = 111 WHERE product_id = 'P-1'",
    );
    assert_eq!(price(&server, "P-1").await, Some(100), "served from memory");
    other.put_product(spec("P-1", 300), t).await.unwrap();
    assert_eq!(price(&server, "P-1").await, Some(300), "a put elsewhere");
    other
        .seed_product(spec("P-1", 400), SeedMode::Reset, t)
        .await
        .unwrap();
    assert_eq!(price(&server, "P-1").await, Some(400), "a reseed elsewhere");
    // Adding stock changes no price and keeps the cache.
    raw_sql(
        dir.path(),
        "UPDATE products SET price_minor = 111 WHERE product_id = 'P-1'",
    );
    other
        .seed_product(spec("P-1", 999), SeedMode::AddStock, t)
        .await
        .unwrap();
    assert_eq!(price(&server, "P-1").await, Some(400));
    // A product that did not exist is found once created.
    assert_eq!(price(&server, "P-2").await, None);
    other
        .seed_product(spec("P-2", 50), SeedMode::KeepExisting, t)
        .await
        .unwrap();
    assert_eq!(price(&server, "P-2").await, Some(50));
}
