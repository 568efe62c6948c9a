//! Upgrading a store with data in it: what was written before a migration reads back after
//! it, on either store.

mod common;

use herald::ids::{DeliveryId, EventId, ShopId};
use herald::store::Store;

/// The migrations of this store up to, not including, `version`, in a directory of their own.
fn migrations_before(version: i64, dir: &std::path::Path) -> std::path::PathBuf {
    let store = if common::on_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(store);
    let target = dir.join("migrations-before");
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let number: i64 = name.split('_').next().unwrap().parse().unwrap();
        if number < version {
            std::fs::copy(&path, target.join(&name)).unwrap();
        }
    }
    target
}

/// Runs raw statements, each with its `?` placeholders bound to the texts given.
async fn exec(store: &Store, statements: &[(&str, &[&str])]) {
    for (sql, texts) in statements {
        herald::with_raw_pool!(store, |pool, d| {
            let sql = d.sql(sql);
            let mut q = sqlx::query(&sql);
            for t in *texts {
                q = q.bind(*t);
            }
            q.execute(pool).await.unwrap();
        });
    }
}

#[tokio::test]
async fn deliveries_made_before_keys_keep_their_rows_attempts_events_and_old_ids() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(dir.path());
    let store = Store::connect(&url).await.unwrap();
    let before_keys = if common::on_postgres() { 6 } else { 13 };
    let migrator = sqlx::migrate::Migrator::new(migrations_before(before_keys, dir.path()))
        .await
        .unwrap();
    herald::with_raw_pool!(store, |pool, _d| migrator.run(pool).await.unwrap());

    // Two deliveries created in the same millisecond, one a millisecond later; the first
    // has an attempt, the event lists the first two, and a bulk retry is half done.
    let (a, b, c) = (
        "dlv_01jc000000000000000000000a",
        "dlv_01jc000000000000000000000b",
        "dlv_01jc000000000000000000000c",
    );
    let delivery = "INSERT INTO deliveries (id, shop_id, event_id, endpoint_id, event_type,
        status, created_at, updated_at) VALUES (?, 'shp_a', ?, 'ep_a', 'order.created', ?,
        CAST(? AS BIGINT), 1)";
    exec(
        &store,
        &[
            // Webhooks on: a shop whose webhooks are off holds what a retry queues.
            (
                "INSERT INTO shops (id, name, webhooks_enabled, created_at, updated_at) VALUES ('shp_a', 'A', TRUE, 1, 1)",
                &[],
            ),
            (
                "INSERT INTO endpoints (id, shop_id, url, secret_enc, created_at, updated_at)
                 VALUES ('ep_a', 'shp_a', 'http://127.0.0.1:9/', 'x', 1, 1)",
                &[],
            ),
            (
                "INSERT INTO events (shop_id, id, type, data, deliveries, created_at)
                 VALUES ('shp_a', 'evt_1', 'order.created', '{}', ?, 1700000000000)",
                &[&format!("[\"{b}\",\"{a}\"]")],
            ),
            (delivery, &[b, "evt_1", "failed", "1700000000000"]),
            (delivery, &[a, "evt_1", "succeeded", "1700000000000"]),
            (delivery, &[c, "evt_2", "failed", "1700000000001"]),
            (
                "INSERT INTO attempts (shop_id, delivery_id, endpoint_id, number, status_code,
                 duration_ms, request_headers, request_body, at)
                 VALUES ('shp_a', ?, 'ep_a', 1, 500, 3, '{}', '', 1700000000002)",
                &[a],
            ),
            (
                "INSERT INTO bulk_changes (id, shop_id, kind, status, filter, up_to, after_id,
                 total, created_at, updated_at)
                 VALUES ('blk_1', 'shp_a', 'retry', 'failed', '{}', ?, ?, 2, 1, 1)",
                &["dlv_01jd", b],
            ),
        ],
    )
    .await;

    store.migrate().await.unwrap();

    let shop = ShopId::from("shp_a");
    let mut keys = Vec::new();
    for old in [a, b, c] {
        let id = store
            .canonical_delivery_id(&DeliveryId::from(old))
            .await
            .unwrap();
        let row = store.delivery(&shop, &id).await.unwrap();
        assert!(row.is_some(), "{old} found as {id}");
        keys.push(id.key().expect("the old id finds a key"));
    }
    assert!(
        keys[0] < keys[1] && keys[1] < keys[2],
        "in the old ids' order: {keys:?}"
    );
    assert_eq!(
        keys[0] >> DeliveryId::TIME_SHIFT,
        1_700_000_000_000,
        "creation time"
    );
    assert_eq!(keys[2] >> DeliveryId::TIME_SHIFT, 1_700_000_000_001);

    let new_a = DeliveryId::from_key(keys[0]);
    let attempts = store.attempts_of_delivery(&shop, &new_a).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, Some(500));

    let event = store
        .event(&shop, &EventId::from("evt_1"))
        .await
        .unwrap()
        .unwrap();
    let listed: Vec<DeliveryId> = store
        .deliveries_of_event(&shop, &event)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        listed,
        vec![new_a.clone(), DeliveryId::from_key(keys[1])],
        "the event still lists both"
    );

    // The half-done retry goes on after b, up to c: c is retried, a (succeeded) is not.
    let slice = store.next_bulk_slice(1_800_000_000_000).await.unwrap();
    assert!(
        slice.is_some_and(|s| s.changed == 1),
        "one delivery retried"
    );
    let status = |k: i64| {
        let store = &store;
        let shop = &shop;
        async move {
            store
                .delivery(shop, &DeliveryId::from_key(k))
                .await
                .unwrap()
                .unwrap()
                .status
        }
    };
    assert_eq!(status(keys[2]).await, "pending");
    assert_eq!(
        status(keys[1]).await,
        "failed",
        "before the change's position"
    );
    assert_eq!(status(keys[0]).await, "succeeded");

    // An id that is neither a key nor an old id finds nothing.
    let unknown = store
        .canonical_delivery_id(&DeliveryId::from("dlv_unknown"))
        .await
        .unwrap();
    assert!(store.delivery(&shop, &unknown).await.unwrap().is_none());
}
