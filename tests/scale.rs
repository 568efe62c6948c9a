//! What keeps Herald fast on a full queue: counters that pages read instead of counting
//! deliveries, and bulk changes made in slices. Herald on port 0 with a temporary database
//! (each store), publishing through the API to a real receiver on 127.0.0.1.

mod common;

use common::receiver::Receiver;
use common::*;
use herald::ids::ShopId;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Deliveries by (status, endpoint) and by channel, counted in the table itself.
async fn counted(
    app: &TestApp,
    shop: &str,
) -> (BTreeMap<(String, String), i64>, BTreeMap<String, i64>) {
    let store = &app.service.store;
    let by_status: Vec<(String, String, i64)> = herald::with_raw_pool!(store, |pool, d| {
        sqlx::query_as(&d.sql(
            "SELECT status, (SELECT e.id FROM endpoints e WHERE e.num = endpoint), COUNT(*)
             FROM deliveries WHERE shop = (SELECT num FROM shops WHERE id = ?)
             GROUP BY status, endpoint",
        ))
        .bind(shop)
        .fetch_all(pool)
        .await
        .unwrap()
    });
    let by_channel: Vec<(String, i64)> = herald::with_raw_pool!(store, |pool, d| {
        sqlx::query_as(d.pick(
            "SELECT j.value, COUNT(*) FROM deliveries d, json_each(d.channels) j
             WHERE d.shop = (SELECT num FROM shops WHERE id = ?) GROUP BY j.value",
            "SELECT j.value, COUNT(*) FROM deliveries d, jsonb_array_elements_text(d.channels) j
             WHERE d.shop = (SELECT num FROM shops WHERE id = $1) GROUP BY j.value",
        ))
        .bind(shop)
        .fetch_all(pool)
        .await
        .unwrap()
    });
    (
        by_status.into_iter().map(|(s, e, n)| ((s, e), n)).collect(),
        by_channel.into_iter().collect(),
    )
}

/// What the counters say, in the same shape as [`counted`].
async fn from_counters(
    app: &TestApp,
    shop: &str,
) -> (BTreeMap<(String, String), i64>, BTreeMap<String, i64>) {
    let store = &app.service.store;
    let shop = ShopId::from(shop);
    let by_status = store.status_counts(Some(&shop)).await.unwrap();
    let by_channel = store.channel_counts(&shop).await.unwrap();
    (
        by_status
            .into_iter()
            .filter(|(_, _, n)| *n != 0)
            .map(|(s, e, n)| ((s, e), n))
            .collect(),
        by_channel.into_iter().collect(),
    )
}

/// Waits until no bulk change of the shop is left unfinished.
async fn wait_bulk_done(app: &TestApp, shop: &str, secs: u64) {
    let shop = ShopId::from(shop);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let open = app
            .service
            .store
            .bulk_changes(&shop, herald::ids::now_ms())
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.finished_at.is_none())
            .count();
        if open == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} bulk changes still open after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `n` deliveries of the endpoint are recorded as succeeded.
async fn wait_succeeded(app: &TestApp, shop: &str, endpoint: &str, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = from_counters(app, shop)
            .await
            .0
            .get(&("succeeded".to_string(), endpoint.to_string()))
            .copied()
            .unwrap_or(0);
        if got == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{got} of {n} succeeded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deliveries of an endpoint held, from the counters.
async fn held_at(app: &TestApp, shop: &str, endpoint: &str) -> i64 {
    from_counters(app, shop)
        .await
        .0
        .get(&("held".to_string(), endpoint.to_string()))
        .copied()
        .unwrap_or(0)
}

async fn publish_batch(api: &Api, n: usize, channel: &str) {
    for start in (0..n).step_by(500) {
        let batch: Vec<_> = (start..(start + 500).min(n))
            .map(|i| json!({"type": "order.created", "channels": [channel], "data": {"n": i}}))
            .collect();
        let (code, out) = api.post("/events/batch", json!(batch)).await;
        assert_eq!(code, 202, "{out}");
    }
}

#[tokio::test]
async fn counters_agree_with_the_rows_they_count_through_publishing_delivery_and_deletion() {
    let app = TestApp::spawn().await;
    let (shop, key) = app.api_shop().await;
    let api = app.api(&key);
    let ok = Receiver::ok().await;
    let (_, live) = api
        .post(
            "/endpoints",
            json!({"url": ok.url("/live"), "channels": ["orders"]}),
        )
        .await;
    let (_, held) = api
        .post(
            "/endpoints",
            json!({"url": ok.url("/held"), "enabled": false}),
        )
        .await;
    publish_batch(&api, 30, "orders").await;
    publish_batch(&api, 20, "refunds").await;
    // 30 to the live endpoint (its channel), 50 held at the other.
    ok.wait_for(30, 10).await;
    let live_id = live["id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (counted, _) = counted(&app, &shop).await;
        if counted.get(&("succeeded".into(), live_id.into())) == Some(&30) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{counted:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counted(&app, &shop).await, from_counters(&app, &shop).await);
    let (by_status, by_channel) = from_counters(&app, &shop).await;
    assert_eq!(
        by_status[&("held".to_string(), held["id"].as_str().unwrap().to_string())],
        50
    );
    assert_eq!(by_channel["orders"], 60, "30 at each endpoint");

    // The channels list and the metrics read the counters.
    let (_, channels) = api.get("/channels").await;
    let orders = channels["items"]
        .as_array()
        .or(channels.as_array())
        .unwrap()
        .iter()
        .find(|c| c["name"] == "orders")
        .cloned()
        .unwrap();
    assert_eq!(orders["deliveries"], 60);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("herald_queue_depth{status=\"held\"} 50"),
        "{metrics}"
    );
    assert!(
        metrics.contains("herald_store_writer_hold_seconds_bucket"),
        "{metrics}"
    );

    // Deleting the held endpoint removes its deliveries and their counts.
    let (code, _) = app
        .api(&key)
        .call(
            reqwest::Method::DELETE,
            &format!("/endpoints/{}", held["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(code, 204);
    wait_bulk_done(&app, &shop, 10).await;
    assert_eq!(counted(&app, &shop).await, from_counters(&app, &shop).await);
    assert_eq!(from_counters(&app, &shop).await.1["orders"], 30);

    // Folding (PostgreSQL) and pruning change no figure.
    app.service.store.fold_counters().await.unwrap();
    app.service
        .store
        .prune_counters(herald::ids::now_ms())
        .await
        .unwrap();
    assert_eq!(counted(&app, &shop).await, from_counters(&app, &shop).await);

    // The hourly figures: 50 events this hour, 30 attempts succeeded.
    let since = herald::ids::now_ms() - 3_600_000;
    let shop_id = ShopId::from(shop.as_str());
    let events = app.service.store.events_since_by_shop(since).await.unwrap();
    assert_eq!(events, vec![(shop.clone(), 50)]);
    let success = app
        .service
        .store
        .endpoint_success(&shop_id, since)
        .await
        .unwrap();
    assert_eq!(success, vec![(live_id.to_string(), 30, 30)]);
}

#[tokio::test]
async fn changes_to_thousands_of_deliveries_go_in_slices_and_finish() {
    let app = TestApp::spawn().await;
    let (shop, key) = app.api_shop().await;
    let api = app.api(&key);
    let ok = Receiver::ok().await;
    let (_, ep) = api
        .post("/endpoints", json!({"url": ok.url("/"), "enabled": false}))
        .await;
    let id = ep["id"].as_str().unwrap().to_string();
    let n = 2_500;
    publish_batch(&api, n, "orders").await;
    let held = || held_at(&app, &shop, &id);
    assert_eq!(held().await, n as i64);

    // Enabling resumes the first slice at once and the rest in slices; the progress shows.
    let (code, _) = api
        .patch(&format!("/endpoints/{id}"), json!({"enabled": true}))
        .await;
    assert_eq!(code, 200);
    let progress = app
        .service
        .store
        .bulk_changes(&ShopId::from(shop.as_str()), herald::ids::now_ms())
        .await
        .unwrap();
    assert_eq!(progress.len(), 1, "{progress:?}");
    assert_eq!(
        (progress[0].kind.as_str(), progress[0].total),
        ("resume", n as i64)
    );
    assert!(
        progress[0].done >= herald::store::bulk::SLICE,
        "the first slice with the request: {progress:?}"
    );
    ok.wait_for(n, 60).await;
    wait_bulk_done(&app, &shop, 10).await;
    assert_eq!(held().await, 0);
    wait_succeeded(&app, &shop, &id, n as i64).await;

    // A bulk retry answers the whole count and queues them all, slice by slice.
    let (code, out) = api
        .post("/deliveries/retry", json!({"status": "succeeded"}))
        .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["retried"], n);
    ok.wait_for(2 * n, 60).await;
    wait_bulk_done(&app, &shop, 10).await;
    // Received is not yet recorded: the outcomes follow the receipts.
    wait_succeeded(&app, &shop, &id, n as i64).await;

    // An endpoint disabled while a retry goes through its deliveries: the rest are held,
    // and sent once it is enabled again.
    let (_, out) = api
        .post("/deliveries/retry", json!({"status": "succeeded"}))
        .await;
    assert_eq!(out["retried"], n);
    let (code, _) = api
        .patch(&format!("/endpoints/{id}"), json!({"enabled": false}))
        .await;
    assert_eq!(code, 200);
    wait_bulk_done(&app, &shop, 10).await;
    let (code, _) = api
        .patch(&format!("/endpoints/{id}"), json!({"enabled": true}))
        .await;
    assert_eq!(code, 200);
    ok.wait_for(3 * n, 60).await;
    wait_bulk_done(&app, &shop, 10).await;

    // A bulk retry reaches no delivery of a disabled endpoint.
    let (code, _) = api
        .patch(&format!("/endpoints/{id}"), json!({"enabled": false}))
        .await;
    assert_eq!(code, 200);
    let (_, out) = api
        .post("/deliveries/retry", json!({"status": "succeeded"}))
        .await;
    assert_eq!(
        out["retried"], 0,
        "a disabled endpoint's deliveries are not retried"
    );

    // Deleting the endpoint removes its deliveries and attempts in slices, then the endpoint.
    let store = &app.service.store;
    let num: i64 = herald::with_raw_pool!(store, |pool, d| sqlx::query_scalar(
        &d.sql("SELECT num FROM endpoints WHERE id = ?")
    )
    .bind(&id)
    .fetch_one(pool)
    .await
    .unwrap());
    let (code, _) = api
        .call(reqwest::Method::DELETE, &format!("/endpoints/{id}"), None)
        .await;
    assert_eq!(code, 204);
    let (code, _) = api.get(&format!("/endpoints/{id}")).await;
    assert_eq!(code, 404, "gone for the shop at once");
    wait_bulk_done(&app, &shop, 30).await;
    let left: i64 = herald::with_raw_pool!(store, |pool, d| sqlx::query_scalar(&d.sql(
        "SELECT (SELECT COUNT(*) FROM deliveries WHERE endpoint = ?)
              + (SELECT COUNT(*) FROM attempts WHERE endpoint_id = ?)
              + (SELECT COUNT(*) FROM endpoints WHERE id = ?)"
    ))
    .bind(num)
    .bind(&id)
    .bind(&id)
    .fetch_one(pool)
    .await
    .unwrap());
    assert_eq!(left, 0);
    assert_eq!(counted(&app, &shop).await, from_counters(&app, &shop).await);
}

/// The dashboard's figures come from the counters and the minute samples: endpoints ranked by
/// their mean attempt time and by failed attempts, and the queue's depth and lag minute by
/// minute (a minute sampled twice keeps its first value).
#[tokio::test]
async fn the_dashboard_ranks_endpoints_and_shows_the_queue_minute_by_minute() {
    let app = TestApp::spawn().await;
    let (shop, key) = app.api_shop().await;
    let api = app.api(&key);
    let slow = Receiver::start(|_| (200, vec![], "ok".into(), Duration::from_millis(150))).await;
    let failing = Receiver::start(|_| (500, vec![], "no".into(), Duration::ZERO)).await;
    let (_, slow_ep) = api
        .post(
            "/endpoints",
            json!({"url": slow.url("/"), "description": "Slow one"}),
        )
        .await;
    // One failure each, then a retry an hour later: they wait as "retrying".
    let (_, failing_ep) = api
        .post(
            "/endpoints",
            json!({"url": failing.url("/"), "retry": {"policy": "schedule", "delays_s": [3600]}}),
        )
        .await;
    publish_batch(&api, 3, "orders").await;
    slow.wait_for(3, 10).await;
    failing.wait_for(3, 10).await;
    let shop_id = ShopId::from(shop.as_str());
    let hour = 3_600_000;
    let mut figures = vec![];
    for _ in 0..100 {
        figures = app
            .service
            .store
            .endpoint_figures(&shop_id, herald::ids::now_ms() - hour)
            .await
            .unwrap();
        if figures.iter().map(|f| f.1).sum::<i64>() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let slow_id = slow_ep["id"].as_str().unwrap();
    let failing_id = failing_ep["id"].as_str().unwrap();
    let of = |id: &str| figures.iter().find(|f| f.0 == id).cloned().unwrap();
    assert_eq!(of(slow_id).1, 3, "{figures:?}");
    assert_eq!(of(failing_id).2, 3, "{figures:?}");
    assert!(of(slow_id).3 >= 3 * 150, "{figures:?}");

    // The queue holds the three retrying deliveries: sampled now, and in two hours (when they
    // are an hour overdue).
    let now = herald::ids::now_ms();
    assert_eq!(app.service.store.sample_queues(now).await.unwrap(), 1);
    assert_eq!(app.service.store.sample_queues(now).await.unwrap(), 1);
    let later = now + 2 * hour;
    app.service.store.sample_queues(later).await.unwrap();
    let samples = app
        .service
        .store
        .queue_samples(&shop_id, now - 60_000)
        .await
        .unwrap();
    assert_eq!(samples.len(), 2, "{samples:?}");
    assert_eq!(samples[0].1, 3, "depth now, sampled twice, counted once");
    // Nothing is overdue now (the engine may have sampled this minute first, while the
    // deliveries waited for their first attempt: a lag of moments).
    assert!(samples[0].2 < 5_000, "{samples:?}");
    assert_eq!(samples[1].1, 3);
    // Retried an hour (±10 % jitter) after the failure, so about an hour overdue.
    assert!(
        (hour * 8 / 10..=hour * 12 / 10).contains(&samples[1].2),
        "an hour of lag in two hours: {samples:?}"
    );

    let system = herald::service::Service::system();
    let dash = app.service.dashboard(&system, &shop).await.unwrap();
    assert_eq!(dash.queue_last_hour.len(), 60);
    assert_eq!(dash.queue_last_hour.last().unwrap().depth, 3);
    assert_eq!(dash.slowest_endpoints[0].name, "Slow one");
    assert_eq!(dash.slowest_endpoints[0].attempts, 3);
    assert_eq!(dash.most_failing_endpoints.len(), 1);
    assert_eq!(dash.most_failing_endpoints[0].id, failing_id);
    assert_eq!(dash.most_failing_endpoints[0].failed, 3);
    assert_eq!(dash.most_failing_endpoints[0].name, failing.url("/"));

    // Pruning keeps the last day of samples.
    app.service.store.prune_counters(later).await.unwrap();
    assert_eq!(
        app.service
            .store
            .queue_samples(&shop_id, now - 60_000)
            .await
            .unwrap()
            .len(),
        2
    );
    app.service
        .store
        .prune_counters(now + 27 * hour)
        .await
        .unwrap();
    assert!(app
        .service
        .store
        .queue_samples(&shop_id, now - 60_000)
        .await
        .unwrap()
        .is_empty());
}
