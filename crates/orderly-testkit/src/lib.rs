//! # orderly-testkit
//!
//! One contract test suite per port, run unchanged against every adapter (in-memory,
//! SQLite, DynamoDB on the emulator) so the adapters cannot drift apart. Each suite takes a
//! factory for a fresh, empty adapter and panics with a message naming the broken rule.
//!
//! It also holds the in-memory adapters ([`memory`]): the reference implementation of
//! every port, and the fake that unit and integration tests wire in.
//!
//! It may depend on `orderly-core` only (plus test helpers); adapters depend on it as a
//! dev-dependency.

pub mod faults;
pub mod memory;
pub mod processing;
pub mod webhooks;

use std::future::Future;

use orderly_core::model::{Order, OrderFilter, OrderItem, ProductSpec, Timestamp};
use orderly_core::ports::{
    IdempotencyBegin, IdempotencyCompletion, IdempotencyStore, Inventory, NewOrder, OrderStore,
    SeedMode, SeedOutcome, StoredResponse, Transition, TransitionOutcome,
};
use orderly_core::{
    DomainEvent, EventType, IdempotencyKey, Money, OrderId, OrderStatus, ProductId, Qty, StoreError,
};

/// A fixed base time so suites are deterministic.
pub fn t0() -> Timestamp {
    Timestamp::from_millis(1_767_225_600_000).expect("valid time") // 2026-01-01T00:00:00Z
}

/// An order for `user` created at `t0 + offset_ms`.
pub fn order(user: &str, offset_ms: i64) -> Order {
    let at = t0().plus_millis(offset_ms);
    let items = vec![OrderItem {
        product_id: "PROD-001".parse().expect("id"),
        qty: Qty::new(2).expect("qty"),
        unit_price: Money::from_minor(2999).expect("money"),
    }];
    Order {
        order_id: OrderId::generate(at.datetime()),
        user_id: user.parse().expect("user"),
        customer_email: Some("ada@example.com".parse().expect("email")),
        items,
        total_amount: Money::from_minor(5998).expect("money"),
        currency: "USD".into(),
        status: OrderStatus::Pending,
        failure_reason: None,
        tracking_id: None,
        created_at: at,
        updated_at: at,
        version: 1,
    }
}

pub fn new_order(o: &Order) -> NewOrder {
    NewOrder {
        order: o.clone(),
        event: DomainEvent::order_created(o),
        idempotency: None,
    }
}

fn transition(o: &Order, from: OrderStatus, to: OrderStatus, kind: EventType) -> Transition {
    let at = o.created_at.plus_secs(1);
    Transition {
        order_id: o.order_id,
        from,
        to,
        at,
        event: DomainEvent::new(o.order_id, kind, at, serde_json::json!({})),
        failure_reason: (to == OrderStatus::Failed).then(|| "out of stock".to_owned()),
        tracking_id: None,
        enqueue_processing: false,
        step: None,
    }
}

async fn walk(store: &dyn OrderStore, filter: &OrderFilter, page: u32) -> Vec<OrderId> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let p = store
            .list(filter, page, cursor.as_deref())
            .await
            .expect("list");
        assert!(p.items.len() <= page as usize, "page larger than limit");
        seen.extend(p.items.iter().map(|o| o.order_id));
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return seen,
        }
    }
    panic!("pagination did not end");
}

/// The [`OrderStore`] contract.
pub async fn order_store_contract<S, F, Fut>(fresh: F)
where
    S: OrderStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    // Several transitions in one call: each on its own, outcomes in order.
    {
        let store = fresh().await;
        let a = order("user-1", 0);
        let b = order("user-1", 1);
        store.create(new_order(&a)).await.expect("create");
        store.create(new_order(&b)).await.expect("create");
        let outs = store
            .transition_many(vec![
                transition(
                    &a,
                    OrderStatus::Pending,
                    OrderStatus::Confirmed,
                    EventType::OrderConfirmed,
                ),
                transition(
                    &b,
                    OrderStatus::Confirmed,
                    OrderStatus::Fulfilled,
                    EventType::FulfillmentCompleted,
                ),
            ])
            .await
            .expect("transition_many");
        assert!(
            matches!(&outs[0], TransitionOutcome::Applied(o) if o.status == OrderStatus::Confirmed)
        );
        assert!(
            matches!(&outs[1], TransitionOutcome::Stale(o) if o.status == OrderStatus::Pending)
        );
        assert!(
            store
                .transition_many(Vec::new())
                .await
                .expect("none")
                .is_empty()
        );
    }
    // Create, read back, timeline.
    {
        let store = fresh().await;
        let o = order("user-1", 0);
        store.create(new_order(&o)).await.expect("create");
        assert_eq!(store.get(o.order_id).await.expect("get"), Some(o.clone()));
        let events = store.events(o.order_id).await.expect("events");
        assert_eq!(events.len(), 1, "create appends exactly OrderCreated");
        assert_eq!(events[0].detail_type, EventType::OrderCreated);
        assert_eq!(events[0].detail["orderId"], o.order_id.to_string());
        assert!(
            store.create(new_order(&o)).await.is_err(),
            "creating the same order id twice must fail"
        );
        assert_eq!(store.events(o.order_id).await.expect("events").len(), 1);
        let unknown = OrderId::generate(t0().datetime());
        assert_eq!(store.get(unknown).await.expect("get"), None);
        assert!(store.events(unknown).await.expect("events").is_empty());
    }

    // Listing: newest first, filters, pagination visiting each order once.
    {
        let store = fresh().await;
        let mut all = Vec::new();
        for i in 0..23 {
            let o = order(if i % 3 == 0 { "alice" } else { "bob" }, i);
            store.create(new_order(&o)).await.expect("create");
            all.push(o);
        }
        for o in all.iter().filter(|o| o.created_at.millis() % 2 == 0) {
            let t = transition(
                o,
                OrderStatus::Pending,
                OrderStatus::Confirmed,
                EventType::OrderConfirmed,
            );
            assert!(matches!(
                store.transition(t).await.expect("transition"),
                TransitionOutcome::Applied(_)
            ));
        }
        let newest_first: Vec<OrderId> = all.iter().rev().map(|o| o.order_id).collect();
        for page in [1, 5, 7, 23, 100] {
            let seen = walk(&store, &OrderFilter::default(), page).await;
            assert_eq!(seen, newest_first, "walk with page size {page}");
        }
        let alice: Vec<OrderId> = all
            .iter()
            .rev()
            .filter(|o| o.user_id.as_str() == "alice")
            .map(|o| o.order_id)
            .collect();
        let f = OrderFilter {
            user_id: Some("alice".parse().expect("user")),
            status: None,
        };
        assert_eq!(walk(&store, &f, 3).await, alice, "userId filter");
        let confirmed_bob: Vec<OrderId> = all
            .iter()
            .rev()
            .filter(|o| o.user_id.as_str() == "bob" && o.created_at.millis() % 2 == 0)
            .map(|o| o.order_id)
            .collect();
        let f = OrderFilter {
            user_id: Some("bob".parse().expect("user")),
            status: Some(OrderStatus::Confirmed),
        };
        assert_eq!(
            walk(&store, &f, 4).await,
            confirmed_bob,
            "user+status filter"
        );
        let f = OrderFilter {
            user_id: None,
            status: Some(OrderStatus::Pending),
        };
        assert_eq!(walk(&store, &f, 4).await.len(), 11, "status filter");
        let f = OrderFilter {
            user_id: Some("nobody".parse().expect("user")),
            status: None,
        };
        let empty = store.list(&f, 10, None).await.expect("list");
        assert!(empty.items.is_empty() && empty.next_cursor.is_none());
        for bad in ["garbage", "bzE6MA", "eyJ4IjoxfQ"] {
            assert_eq!(
                store
                    .list(&OrderFilter::default(), 5, Some(bad))
                    .await
                    .err(),
                Some(StoreError::InvalidCursor),
                "cursor {bad:?} must be refused"
            );
        }
        // A walk that started before new inserts sees each pre-existing order exactly once.
        let first = store
            .list(&OrderFilter::default(), 10, None)
            .await
            .expect("list");
        for i in 100..105 {
            store
                .create(new_order(&order("carol", i)))
                .await
                .expect("create");
        }
        let mut seen: Vec<OrderId> = first.items.iter().map(|o| o.order_id).collect();
        let mut cursor = first.next_cursor;
        while let Some(c) = cursor {
            let p = store
                .list(&OrderFilter::default(), 10, Some(&c))
                .await
                .expect("list");
            seen.extend(p.items.iter().map(|o| o.order_id));
            cursor = p.next_cursor;
        }
        assert_eq!(seen, newest_first, "inserts during a walk disturb it");
    }

    // Conditional transitions.
    {
        let store = fresh().await;
        let o = order("user-1", 0);
        store.create(new_order(&o)).await.expect("create");
        let t = transition(
            &o,
            OrderStatus::Pending,
            OrderStatus::Failed,
            EventType::OrderFailed,
        );
        let TransitionOutcome::Applied(after) = store.transition(t.clone()).await.expect("t")
        else {
            panic!("first transition must apply");
        };
        assert_eq!(after.status, OrderStatus::Failed);
        assert_eq!(after.version, 2);
        assert_eq!(after.failure_reason.as_deref(), Some("out of stock"));
        assert_eq!(after.updated_at, t.at);
        // The same transition again is stale and writes nothing.
        let TransitionOutcome::Stale(now) = store.transition(t).await.expect("t") else {
            panic!("a repeated transition must be stale");
        };
        assert_eq!(now, after);
        // A different transition from the old status (another event) is stale too: the
        // write is conditional on the status, not merely deduplicated by event.
        let late = transition(
            &o,
            OrderStatus::Pending,
            OrderStatus::Cancelled,
            EventType::OrderCancelled,
        );
        let TransitionOutcome::Stale(now) = store.transition(late).await.expect("t") else {
            panic!("a transition from a status the order left must be stale");
        };
        assert_eq!(now, after, "a stale transition writes nothing");
        // A transition the state machine forbids is never written, even if `from` matches.
        let bad = transition(
            &o,
            OrderStatus::Failed,
            OrderStatus::Confirmed,
            EventType::OrderConfirmed,
        );
        assert!(matches!(
            store.transition(bad).await.expect("t"),
            TransitionOutcome::Stale(_)
        ));
        let kinds: Vec<EventType> = store
            .events(o.order_id)
            .await
            .expect("events")
            .iter()
            .map(|e| e.detail_type)
            .collect();
        assert_eq!(kinds, [EventType::OrderCreated, EventType::OrderFailed]);
        let ghost = order("user-1", 1);
        let t = transition(
            &ghost,
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            EventType::OrderConfirmed,
        );
        assert_eq!(
            store.transition(t).await.expect("t"),
            TransitionOutcome::NotFound
        );
    }
}

pub fn spec(id: &str, price: i64, stock: u32) -> ProductSpec {
    ProductSpec {
        product_id: id.parse().expect("id"),
        name: format!("Product {id}"),
        price: Money::from_minor(price).expect("money"),
        stock,
        category: "Test".into(),
    }
}

async fn stock_of(inv: &dyn Inventory, id: &str) -> Option<u32> {
    let id: ProductId = id.parse().expect("id");
    inv.product(&id).await.expect("product").map(|p| p.stock)
}

/// The [`Inventory`] contract.
pub async fn inventory_contract<S, F, Fut>(fresh: F)
where
    S: Inventory,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let inv = fresh().await;
    let (p, created) = inv
        .put_product(spec("P-2", 1000, 5), t0())
        .await
        .expect("put");
    assert!(created);
    assert_eq!((p.version, p.stock, p.price.minor()), (1, 5, 1000));
    let later = t0().plus_secs(5);
    let (p2, created) = inv
        .put_product(spec("P-2", 1250, 7), later)
        .await
        .expect("put");
    assert!(!created, "second put updates");
    assert_eq!((p2.version, p2.stock, p2.price.minor()), (2, 7, 1250));
    assert_eq!(p2.created_at, p.created_at, "created_at survives updates");
    assert_eq!(p2.updated_at, later);
    inv.put_product(spec("P-1", 500, 0), t0())
        .await
        .expect("put");
    let ids: Vec<ProductId> = ["P-1", "P-9", "P-2"]
        .iter()
        .map(|s| s.parse().expect("id"))
        .collect();
    let mut found: Vec<String> = inv
        .products(&ids)
        .await
        .expect("products")
        .into_iter()
        .map(|p| p.product_id.to_string())
        .collect();
    found.sort();
    assert_eq!(
        found,
        ["P-1", "P-2"],
        "products() returns just the known ones"
    );
    let listed: Vec<String> = inv
        .list_products()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.product_id.to_string())
        .collect();
    assert_eq!(listed, ["P-1", "P-2"], "list is ordered by id");
    assert_eq!(
        inv.product(&"P-9".parse().expect("id"))
            .await
            .expect("product"),
        None
    );

    // Seeding modes.
    let s = spec("S-1", 100, 10);
    assert_eq!(
        inv.seed_product(s.clone(), SeedMode::KeepExisting, t0())
            .await
            .expect("seed"),
        SeedOutcome::Created
    );
    assert_eq!(
        inv.seed_product(s.clone(), SeedMode::KeepExisting, t0())
            .await
            .expect("seed"),
        SeedOutcome::Kept
    );
    assert_eq!(
        stock_of(&inv, "S-1").await,
        Some(10),
        "seeding twice must not add stock"
    );
    assert_eq!(
        inv.seed_product(s.clone(), SeedMode::AddStock, t0())
            .await
            .expect("seed"),
        SeedOutcome::StockAdded
    );
    assert_eq!(stock_of(&inv, "S-1").await, Some(20));
    assert_eq!(
        inv.seed_product(s, SeedMode::Reset, t0())
            .await
            .expect("seed"),
        SeedOutcome::Reset
    );
    assert_eq!(stock_of(&inv, "S-1").await, Some(10));
}

/// The [`IdempotencyStore`] contract; completion happens through the order store, in the
/// order's transaction, so the suite needs both ports of one adapter.
pub async fn idempotency_contract<S, F, Fut>(fresh: F)
where
    S: IdempotencyStore + OrderStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let s = fresh().await;
    let key: IdempotencyKey = "key-1".parse().expect("key");
    let now = t0();
    let lock = now.plus_secs(60);
    let begin = |fp: &'static str, at: Timestamp| {
        let key = key.clone();
        let s = &s;
        async move {
            s.begin(&key, fp, at, at.plus_secs(60))
                .await
                .expect("begin")
        }
    };
    assert_eq!(begin("fp-a", now).await, IdempotencyBegin::Started);
    assert_eq!(begin("fp-a", now).await, IdempotencyBegin::InFlight);
    assert_eq!(begin("fp-b", now).await, IdempotencyBegin::Mismatch);
    // Abandoning with the wrong fingerprint does nothing; with the right one frees the key.
    s.abandon(&key, "fp-b").await.expect("abandon");
    assert_eq!(begin("fp-a", now).await, IdempotencyBegin::InFlight);
    s.abandon(&key, "fp-a").await.expect("abandon");
    assert_eq!(begin("fp-a", now).await, IdempotencyBegin::Started);

    // Completion inside the order's write; then replay with the stored answer.
    let o = order("user-1", 0);
    let mut n = new_order(&o);
    let response = StoredResponse {
        status: 201,
        body: r#"{"orderId":"x"}"#.into(),
        order_id: o.order_id,
    };
    n.idempotency = Some(IdempotencyCompletion {
        key: key.clone(),
        fingerprint: "fp-a".into(),
        response: response.clone(),
        expires_at: now.plus_secs(86_400),
    });
    s.create(n).await.expect("create");
    assert_eq!(
        begin("fp-a", now.plus_secs(3600)).await,
        IdempotencyBegin::Replay(response)
    );
    assert_eq!(
        begin("fp-b", now.plus_secs(3600)).await,
        IdempotencyBegin::Mismatch
    );
    s.abandon(&key, "fp-a").await.expect("abandon");
    assert!(
        matches!(
            begin("fp-a", now.plus_secs(7200)).await,
            IdempotencyBegin::Replay(_)
        ),
        "abandon must not remove a completed record"
    );
    // After expiry the key is new again, even before any purge runs.
    assert_eq!(
        begin("fp-b", now.plus_secs(86_401)).await,
        IdempotencyBegin::Started
    );

    // An in-flight claim whose lock passed counts as absent.
    let k2: IdempotencyKey = "key-2".parse().expect("key");
    assert_eq!(
        s.begin(&k2, "fp", now, lock).await.expect("begin"),
        IdempotencyBegin::Started
    );
    assert_eq!(
        s.begin(&k2, "fp", now.plus_secs(61), now.plus_secs(121))
            .await
            .expect("begin"),
        IdempotencyBegin::Started
    );

    // Purging removes only what expired.
    let k3: IdempotencyKey = "key-3".parse().expect("key");
    s.begin(&k3, "fp", now, now.plus_secs(1_000_000))
        .await
        .expect("begin");
    let purged = s
        .purge_expired(now.plus_secs(100_000))
        .await
        .expect("purge");
    assert_eq!(
        purged, 2,
        "key-1 (in flight again) and key-2 expired; key-3 did not"
    );
    assert_eq!(
        s.begin(&k3, "fp", now.plus_secs(100_000), now.plus_secs(100_060))
            .await
            .expect("begin"),
        IdempotencyBegin::InFlight
    );
}

fn key_record(
    id: &str,
    role: orderly_core::access::Role,
    user: Option<&str>,
    at: Timestamp,
) -> orderly_core::access::ApiKeyRecord {
    orderly_core::access::ApiKeyRecord {
        id: id.to_owned(),
        secret_hash: format!("{id}-digest"),
        role,
        user_id: user.map(|u| u.parse().expect("user id")),
        label: Some(format!("label of {id}")),
        created_at: at,
        revoked_at: None,
    }
}

/// The `ApiKeys` contract: insert, look up, list oldest first, revoke once.
pub async fn api_keys_contract<S, F, Fut>(fresh: F)
where
    S: orderly_core::ports::ApiKeys,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    use orderly_core::access::Role;
    let s = fresh().await;
    assert!(
        s.list_keys().await.expect("list").is_empty(),
        "a fresh store has no keys"
    );
    assert_eq!(s.key_by_id("aaaaaaaaaaaa").await.expect("get"), None);

    let admin = key_record("aaaaaaaaaaaa", Role::Admin, None, t0());
    let customer = key_record(
        "bbbbbbbbbbbb",
        Role::Customer,
        Some("user-b"),
        t0().plus_secs(1),
    );
    s.insert_key(&admin).await.expect("insert admin");
    s.insert_key(&customer).await.expect("insert customer");
    assert_eq!(
        s.key_by_id("bbbbbbbbbbbb").await.expect("get").as_ref(),
        Some(&customer),
        "a key reads back exactly as stored, digest and user included"
    );
    assert_eq!(
        s.list_keys().await.expect("list"),
        vec![admin.clone(), customer.clone()]
    );

    let mut clash = key_record("aaaaaaaaaaaa", Role::Customer, Some("mallory"), t0());
    clash.secret_hash = "other".into();
    assert!(
        s.insert_key(&clash).await.is_err(),
        "an existing id is never overwritten"
    );
    assert_eq!(
        s.key_by_id("aaaaaaaaaaaa").await.expect("get").as_ref(),
        Some(&admin)
    );

    let at = t0().plus_secs(10);
    assert!(s.revoke_key("bbbbbbbbbbbb", at).await.expect("revoke"));
    assert!(
        s.revoke_key("bbbbbbbbbbbb", at.plus_secs(5))
            .await
            .expect("revoke again")
    );
    let revoked = s
        .key_by_id("bbbbbbbbbbbb")
        .await
        .expect("get")
        .expect("still listed");
    assert_eq!(
        revoked.revoked_at,
        Some(at),
        "the first revocation time is kept"
    );
    assert!(!revoked.is_active());
    assert!(
        !s.revoke_key("cccccccccccc", at)
            .await
            .expect("revoke unknown")
    );
    assert_eq!(
        s.list_keys().await.expect("list").len(),
        2,
        "revoked keys stay listed"
    );
    assert!(
        s.key_by_id("aaaaaaaaaaaa")
            .await
            .expect("get")
            .expect("admin")
            .is_active()
    );
}
