//! The delivery engine and REST API, end to end: Herald on port 0 with a temporary SQLite
//! file, publishing through the API to a real receiver on 127.0.0.1.

mod common;

use common::receiver::Receiver;
use common::*;
use serde_json::json;
use std::time::Duration;

fn status(
    code: u16,
) -> impl Fn(usize) -> (u16, Vec<(&'static str, String)>, String, Duration) + Send + Sync {
    move |_| (code, vec![], String::new(), Duration::ZERO)
}

#[tokio::test]
async fn an_event_is_delivered_signed_with_the_documented_headers() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    let (code, ep) = api.post("/endpoints", json!({"url": rx.url("/hook"), "basic_auth": {"username": "u", "password": "p"}, "headers": {"X-Extra": "1"}})).await;
    assert_eq!(code, 201, "{ep}");
    let secret = ep["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));

    let (code, published) = api
        .post(
            "/events",
            json!({"type": "order.created", "data": {"order_id": 7}, "channels": ["client_1"]}),
        )
        .await;
    assert_eq!(code, 202, "{published}");
    let delivery = published["deliveries"][0].as_str().unwrap().to_string();
    let got = rx.wait_for(1, 5).await;
    let h = &got[0].headers;
    let event_id = published["id"].as_str().unwrap();
    assert_eq!(h["webhook-id"], event_id);
    assert_eq!(h["content-type"], "application/json");
    assert!(h["user-agent"].to_str().unwrap().starts_with("Herald/"));
    assert_eq!(h["x-herald-event-type"], "order.created");
    assert_eq!(h["x-herald-delivery"], delivery.as_str());
    assert_eq!(h["x-herald-attempt"], "1");
    assert_eq!(h["authorization"], "Basic dTpw");
    assert_eq!(h["x-extra"], "1");
    let ts: i64 = h["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    assert!(herald::engine::signing::verify(
        &secret,
        event_id,
        ts,
        got[0].body.as_bytes(),
        h["webhook-signature"].to_str().unwrap()
    ));
    let body: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "order.created");
    assert_eq!(body["family"], "order");
    assert_eq!(body["action"], "order.created");
    assert_eq!(body["data"]["order_id"], 7);
    assert_eq!(body["channels"], json!(["client_1"]));

    let d = api.wait_status(&delivery, "succeeded", 5).await;
    assert_eq!(d["attempt_count"], 1);
    assert_eq!(d["attempts"][0]["status_code"], 200);
    assert_eq!(d["attempts"][0]["response"]["body"], "ok");
    assert_eq!(
        d["attempts"][0]["request"]["headers"]["authorization"], "Basic ••••••",
        "secrets are masked in logs"
    );
}

#[tokio::test]
async fn events_fan_out_by_type_and_channel() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    let (_, typed) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/typed"), "event_types": ["order.created"]}),
        )
        .await;
    let (_, channeled) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/chan"), "channels": ["client_1"]}),
        )
        .await;
    let (_, all) = api.post("/endpoints", json!({"url": rx.url("/all")})).await;

    let (_, p) = api
        .post(
            "/events",
            json!({"type": "order.created", "data": {}, "channels": ["client_2"]}),
        )
        .await;
    let (_, ev) = api
        .get(&format!("/events/{}", p["id"].as_str().unwrap()))
        .await;
    let mut targets: Vec<String> = ev["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["endpoint_id"].as_str().unwrap().to_string())
        .collect();
    targets.sort();
    let mut want = vec![
        typed["id"].as_str().unwrap().to_string(),
        all["id"].as_str().unwrap().to_string(),
    ];
    want.sort();
    assert_eq!(targets, want);

    let (_, p2) = api
        .post(
            "/events",
            json!({"type": "ticket.updated", "data": {}, "channels": ["client_1"]}),
        )
        .await;
    assert_eq!(
        p2["deliveries"].as_array().unwrap().len(),
        2,
        "channel client_1 and the catch-all"
    );
    let (_, list) = api
        .get(&format!(
            "/deliveries?endpoint_id={}",
            channeled["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn publishing_the_same_id_twice_queues_nothing_new() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    api.post("/endpoints", json!({"url": rx.url("/")})).await;
    let ev = json!({"id": "order-42-created", "type": "order.created", "data": {"n": 1}});
    let (c1, first) = api.post("/events", ev.clone()).await;
    let (c2, second) = api.post("/events", ev).await;
    assert_eq!((c1, c2), (202, 200));
    assert_eq!(first, second);
    let (_, list) = api.get("/deliveries").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

/// Single publishes arriving together share commits (group commit) yet each is answered for
/// itself: its own 202, its own idempotency (a repeated id gets the first result, 200), its
/// own validation error.
#[tokio::test]
async fn concurrent_single_publishes_each_get_their_own_answer() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    api.post("/endpoints", json!({"url": rx.url("/")})).await;
    let mut tasks = Vec::new();
    for i in 0..96 {
        let api = app.api(&key);
        tasks.push(tokio::spawn(async move {
            let ev = if i % 8 == 7 {
                json!({"id": format!("bad-{i}"), "type": "Not A Type", "data": {}})
            } else {
                json!({"id": format!("ev-{}", i % 40), "type": "order.created", "data": {"i": i}})
            };
            (i, api.post("/events", ev).await)
        }));
    }
    let mut by_id: std::collections::HashMap<String, Vec<(u16, serde_json::Value)>> =
        Default::default();
    for t in tasks {
        let (i, (code, body)) = t.await.unwrap();
        if i % 8 == 7 {
            assert_eq!(code, 422, "{body}");
            assert!(body.to_string().contains("type"), "names the field: {body}");
            continue;
        }
        by_id
            .entry(body["id"].as_str().unwrap().to_string())
            .or_default()
            .push((code, body));
    }
    let ids: std::collections::HashSet<usize> =
        (0..96).filter(|i| i % 8 != 7).map(|i| i % 40).collect();
    assert_eq!(by_id.len(), ids.len(), "every valid id answered");
    for (id, answers) in &by_id {
        let accepted = answers.iter().filter(|(c, _)| *c == 202).count();
        assert_eq!(accepted, 1, "{id}: one 202, the rest 200: {answers:?}");
        assert!(answers.iter().all(|(c, _)| *c == 202 || *c == 200));
        let first = &answers[0].1["deliveries"];
        assert_eq!(first.as_array().unwrap().len(), 1, "{id}");
        assert!(
            answers.iter().all(|(_, b)| b["deliveries"] == *first),
            "{id}: every answer names the first result's delivery: {answers:?}"
        );
    }
    rx.wait_for(ids.len(), 20).await;
    let (_, list) = api.get("/deliveries?limit=100").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        ids.len(),
        "one delivery per id"
    );
}

/// How many times SQLite's WAL was synced to disk, from `/metrics`.
async fn wal_syncs(app: &TestApp) -> u64 {
    let metrics = app.metrics().await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("herald_store_wal_sync_seconds_count "))
        .unwrap_or_else(|| panic!("no WAL sync count in {metrics}"))
        .trim()
        .parse()
        .unwrap()
}

/// With `synchronous = full` (the default) a publish is answered only after the WAL holding
/// it was synced to disk (that syncs are shared and never answer an earlier commit is
/// `store::wal_sync`'s unit test); with `normal` nothing is synced per commit. PostgreSQL
/// syncs its own commits.
#[tokio::test]
async fn a_publish_is_answered_after_its_commit_is_synced_to_disk_unless_normal() {
    for sync in [
        herald::store::SqliteSync::Full,
        herald::store::SqliteSync::Normal,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::test_config(dir.path());
        config.sqlite_synchronous = sync;
        let app = TestApp::start(config).await;
        let (_, key) = app.api_shop().await;
        let before = wal_syncs(&app).await;
        let mut tasks = Vec::new();
        for i in 0..64 {
            let api = app.api(&key);
            tasks.push(tokio::spawn(async move {
                api.post(
                    "/events",
                    json!({"type": "order.created", "data": {"i": i}}),
                )
                .await
                .0
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 202);
        }
        let synced = wal_syncs(&app).await - before;
        match (common::on_postgres(), sync) {
            (true, _) | (false, herald::store::SqliteSync::Normal) => {
                assert_eq!(synced, 0, "{sync:?}")
            }
            (false, herald::store::SqliteSync::Full) => {
                assert!(synced >= 1, "no sync for 64 publishes")
            }
        }
    }
}

/// SQLite never shrinks its WAL file by itself: once writes pause, the engine empties it, so
/// a burst does not keep its disk while the queue is quiet.
#[tokio::test]
async fn the_wal_file_is_emptied_once_writes_pause() {
    if common::on_postgres() {
        return;
    }
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let batch: Vec<serde_json::Value> = (0..500)
        .map(|i| json!({"type": "order.created", "data": {"i": i, "pad": "x".repeat(200)}}))
        .collect();
    let (code, published) = api.post("/events/batch", json!(batch)).await;
    assert_eq!(code, 202);
    let wal = app.config.data_dir.join("herald.db-wal");
    let size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(size() > 0, "the batch went through the WAL");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while size() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL still holds {} bytes",
            size()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What was written is in the database file.
    let last = published["items"][499]["id"].as_str().unwrap();
    let (code, _) = api.get(&format!("/events/{last}")).await;
    assert_eq!(code, 200);
}

/// Publishing keeps what it knows of a shop in memory; every change committed before a
/// publish is seen by it: a new endpoint, a changed subscription, webhooks switched off, a
/// revoked key.
#[tokio::test]
async fn a_publish_sees_every_change_committed_before_it() {
    use app::backend::Backend;
    let app = TestApp::spawn().await;
    let (shop, key) = app.api_shop().await;
    let api = app.api(&key);
    let ev = || json!({"type": "order.created", "data": {}});
    let (code, out) = api.post("/events", ev()).await;
    assert_eq!(
        (code, out["deliveries"].clone()),
        (202, json!([])),
        "no endpoint yet"
    );

    let rx = Receiver::ok().await;
    let (_, ep) = api.post("/endpoints", json!({"url": rx.url("/")})).await;
    let (_, out) = api.post("/events", ev()).await;
    assert_eq!(
        out["deliveries"].as_array().unwrap().len(),
        1,
        "the new endpoint: {out}"
    );

    let id = ep["id"].as_str().unwrap();
    let (code, _) = api
        .patch(
            &format!("/endpoints/{id}"),
            json!({"event_types": ["order.paid"]}),
        )
        .await;
    assert_eq!(code, 200);
    let (_, out) = api.post("/events", ev()).await;
    assert_eq!(out["deliveries"], json!([]), "no longer subscribed: {out}");

    let system = herald::service::Service::system();
    app.service
        .set_webhooks_enabled(&system, &shop, false)
        .await
        .unwrap();
    let (code, _) = api.post("/events", ev()).await;
    assert_eq!(code, 403, "webhooks switched off");
    app.service
        .set_webhooks_enabled(&system, &shop, true)
        .await
        .unwrap();
    let (code, _) = api.post("/events", ev()).await;
    assert_eq!(code, 202, "switched on again");

    let keys = app.service.api_keys(&system, &shop).await.unwrap();
    app.service
        .revoke_api_key(&system, &shop, &keys[0].id)
        .await
        .unwrap();
    let (code, _) = api.post("/events", ev()).await;
    assert_eq!(code, 401, "a revoked key publishes nothing");
    let (code, _) = api.post("/events/batch", json!([ev()])).await;
    assert_eq!(code, 401, "nor in a batch");
}

#[tokio::test]
async fn a_batch_mixing_new_and_seen_ids_queues_only_the_new() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    api.post("/endpoints", json!({"url": rx.url("/")})).await;
    let (_, old) = api
        .post(
            "/events",
            json!({"id": "old", "type": "order.created", "data": {}}),
        )
        .await;
    let batch = json!([
        {"id": "new", "type": "order.created", "data": {"n": 1}},
        {"id": "old", "type": "order.created", "data": {}},
        {"id": "new", "type": "order.created", "data": {"n": 2}},
    ]);
    let (code, out) = api.post("/events/batch", batch).await;
    assert_eq!(code, 202, "{out}");
    let items = out["items"].as_array().unwrap();
    assert_eq!(
        items[1]["deliveries"], old["deliveries"],
        "seen before: its first result"
    );
    assert_eq!(items[0]["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(
        items[2]["deliveries"], items[0]["deliveries"],
        "repeated: the first's result"
    );
    let (_, list) = api.get("/deliveries").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "one for old, one for new"
    );
    let (_, ev) = api.get("/events/new").await;
    assert_eq!(ev["data"], json!({"n": 1}));
}

#[tokio::test]
async fn an_api_key_shows_when_it_was_last_used() {
    let app = TestApp::spawn().await;
    let (shop, key) = app.api_shop().await;
    let system = herald::service::Service::system();
    let keys = app.service.api_keys(&system, &shop).await.unwrap();
    assert!(keys[0].last_used_at.is_none());
    let (code, _) = app.api(&key).get("/endpoints").await;
    assert_eq!(code, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let keys = app.service.api_keys(&system, &shop).await.unwrap();
        if keys[0].last_used_at.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "last use never noted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_batch_is_published_in_order_and_unknown_types_join_the_catalog() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let batch: Vec<_> = (0..5)
        .map(|i| json!({"id": format!("b{i}"), "type": "custom.thing_happened", "data": {"i": i}}))
        .collect();
    let (code, out) = api.post("/events/batch", json!(batch)).await;
    assert_eq!(code, 202, "{out}");
    let ids: Vec<_> = out["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["b0", "b1", "b2", "b3", "b4"]);
    let (code, t) = api.get("/event-types/custom.thing_happened").await;
    assert_eq!(code, 200);
    assert_eq!(t["source"], "discovered");
    assert_eq!(t["sample"], json!({"i": 0}));
    let (_, all) = api.get("/event-types").await;
    assert!(all["items"].as_array().unwrap().len() > 80);
}

#[tokio::test]
async fn a_failed_delivery_is_retried_after_the_policy_delay() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::start(|n| {
        (
            if n == 0 { 500 } else { 200 },
            vec![],
            String::new(),
            Duration::ZERO,
        )
    })
    .await;
    api.post(
        "/endpoints",
        json!({"url": rx.url("/"), "retry": {"policy": "schedule", "delays_s": [1, 1]}}),
    )
    .await;
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let delivery = p["deliveries"][0].as_str().unwrap();
    let retrying = api.wait_status(delivery, "retrying", 5).await;
    assert_eq!(retrying["last_status_code"], 500);
    assert!(retrying["next_attempt_at"].is_string());
    let started = std::time::Instant::now();
    let done = api.wait_status(delivery, "succeeded", 5).await;
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "waited for the schedule"
    );
    assert_eq!(done["attempt_count"], 2);
    let got = rx.requests();
    assert_eq!(
        got[0].headers["webhook-id"], got[1].headers["webhook-id"],
        "same id on every retry"
    );
    assert_eq!(got[1].headers["x-herald-attempt"], "2");
}

#[tokio::test]
async fn exhausted_retries_fail_raise_an_alert_and_can_be_retried_by_hand_and_in_bulk() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::start(status(500)).await;
    api.post(
        "/endpoints",
        json!({"url": rx.url("/"), "retry": {"policy": "schedule", "delays_s": []}}),
    )
    .await;
    let (_, p1) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let (_, p2) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let d1 = p1["deliveries"][0].as_str().unwrap();
    let d2 = p2["deliveries"][0].as_str().unwrap();
    api.wait_status(d1, "failed", 5).await;
    api.wait_status(d2, "failed", 5).await;
    let (_, alerts) = api.get("/alerts").await;
    let alerts = alerts["items"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["kind"], "retries_exhausted");

    rx.set(status(200));
    let (code, _) = api
        .post(&format!("/deliveries/{d1}/retry"), json!({}))
        .await;
    assert_eq!(code, 202);
    api.wait_status(d1, "succeeded", 5).await;
    let (code, out) = api
        .post("/deliveries/retry", json!({"status": "failed"}))
        .await;
    assert_eq!((code, out["retried"].as_u64()), (200, Some(1)));
    let d = api.wait_status(d2, "succeeded", 5).await;
    assert_eq!(d["attempt_count"], 2);
}

#[tokio::test]
async fn a_410_disables_the_endpoint_holds_its_deliveries_and_enabling_resumes_them() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::start(status(410)).await;
    let (_, ep) = api.post("/endpoints", json!({"url": rx.url("/")})).await;
    let ep_id = ep["id"].as_str().unwrap();
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let delivery = p["deliveries"][0].as_str().unwrap();
    api.wait_status(delivery, "held", 5).await;
    let (_, ep) = api.get(&format!("/endpoints/{ep_id}")).await;
    assert_eq!(ep["enabled"], false);
    assert!(ep["disabled_reason"].as_str().unwrap().contains("410"));
    let (_, alerts) = api.get("/alerts").await;
    assert_eq!(alerts["items"][0]["kind"], "endpoint_disabled");

    let (_, p2) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let second = p2["deliveries"][0].as_str().unwrap();
    api.wait_status(second, "held", 2).await;

    rx.set(status(200));
    let (code, _) = api
        .patch(&format!("/endpoints/{ep_id}"), json!({"enabled": true}))
        .await;
    assert_eq!(code, 200);
    api.wait_status(delivery, "succeeded", 5).await;
    api.wait_status(second, "succeeded", 5).await;
}

#[tokio::test]
async fn the_unsubscribe_phrase_deactivates_the_endpoint() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::start(|_| {
        (
            400,
            vec![],
            "Please unsubscribe me now".into(),
            Duration::ZERO,
        )
    })
    .await;
    let (_, ep) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/"), "unsubscribe_action": "delete"}),
        )
        .await;
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let _ = p;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (code, _) = api
            .get(&format!("/endpoints/{}", ep["id"].as_str().unwrap()))
            .await;
        if code == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "endpoint was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, alerts) = api.get("/alerts").await;
    assert_eq!(alerts["items"][0]["kind"], "endpoint_deleted");
    // The evidence stays: what was sent, and the answer that asked to unsubscribe.
    let delivery = p["deliveries"][0].as_str().unwrap();
    let (code, d) = api.get(&format!("/deliveries/{delivery}")).await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["status"], "failed");
    assert!(d["attempts"][0]["response"]["body"]
        .as_str()
        .unwrap()
        .contains("unsubscribe"));
    let (_, listed) = api.get("/endpoints").await;
    assert_eq!(
        listed["items"],
        json!([]),
        "a deleted endpoint is gone from the list"
    );
}

#[tokio::test]
async fn the_unsubscribe_phrase_in_a_2xx_answer_counts_and_the_delivery_succeeds() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::start(|_| {
        (
            200,
            vec![],
            "ok, please unsubscribe me".into(),
            Duration::ZERO,
        )
    })
    .await;
    let (_, ep) = api.post("/endpoints", json!({"url": rx.url("/")})).await;
    let endpoint = ep["id"].as_str().unwrap();
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let delivery = p["deliveries"][0].as_str().unwrap();
    let d = api.wait_status(delivery, "succeeded", 5).await;
    assert_eq!(d["attempt_count"], 1, "delivered, not sent again");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, e) = api.get(&format!("/endpoints/{endpoint}")).await;
        if e["enabled"] == false {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "endpoint was not disabled: {e}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, alerts) = api.get("/alerts").await;
    assert_eq!(alerts["items"][0]["kind"], "endpoint_disabled");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 1);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::start(|_| {
        (
            302,
            vec![("location", "http://127.0.0.1:9/elsewhere".to_string())],
            String::new(),
            Duration::ZERO,
        )
    })
    .await;
    api.post(
        "/endpoints",
        json!({"url": rx.url("/"), "retry": {"policy": "schedule", "delays_s": []}}),
    )
    .await;
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let d = api
        .wait_status(p["deliveries"][0].as_str().unwrap(), "failed", 5)
        .await;
    assert_eq!(d["attempts"][0]["status_code"], 302);
    assert_eq!(rx.count(), 1);
}

#[tokio::test]
async fn private_targets_are_blocked_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.allow_private_targets = false;
    let app = TestApp::start(config).await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    api.post(
        "/endpoints",
        json!({"url": rx.url("/"), "retry": {"policy": "schedule", "delays_s": []}}),
    )
    .await;
    api.post("/endpoints", json!({"url": format!("http://localhost:{}/", rx.addr.port()), "retry": {"policy": "schedule", "delays_s": []}})).await;
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    for d in p["deliveries"].as_array().unwrap() {
        let d = api.wait_status(d.as_str().unwrap(), "failed", 5).await;
        assert_eq!(d["attempts"][0]["error_kind"], "blocked", "{d}");
    }
    assert_eq!(rx.count(), 0);
}

#[tokio::test]
async fn unique_pending_also_replaces_a_delivery_waiting_to_retry() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::start(status(500)).await;
    let (_, ep) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/"), "unique_pending": true,
                   "retry": {"policy": "schedule", "delays_s": [3600]}}),
        )
        .await;
    assert!(ep["id"].is_string(), "{ep}");
    let event =
        |v: i64| json!({"type": "order.updated", "data": {"v": v}, "entity_key": "order-9"});
    let (_, a) = api.post("/events", event(1)).await;
    let first = a["deliveries"][0].as_str().unwrap().to_string();
    api.wait_status(&first, "retrying", 5).await;
    let (_, b) = api.post("/events", event(2)).await;
    assert_eq!(
        b["deliveries"],
        json!([first]),
        "the retrying item carries the new event"
    );
    let (_, d) = api.get(&format!("/deliveries/{first}")).await;
    assert_eq!(d["event_id"], b["id"]);
}

#[tokio::test]
async fn unique_pending_replaces_a_waiting_delivery_of_the_same_entity() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    // Disabled, so the first delivery is still waiting when the second event arrives.
    let (_, ep) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/"), "unique_pending": true, "enabled": false}),
        )
        .await;
    let ep_id = ep["id"].as_str().unwrap();
    let (_, a) = api
        .post(
            "/events",
            json!({"type": "order.updated", "data": {"v": 1}, "entity_key": "order-1"}),
        )
        .await;
    let (_, b) = api
        .post(
            "/events",
            json!({"type": "order.updated", "data": {"v": 2}, "entity_key": "order-1"}),
        )
        .await;
    let (_, c) = api
        .post(
            "/events",
            json!({"type": "order.updated", "data": {"v": 3}, "entity_key": "order-2"}),
        )
        .await;
    assert_eq!(a["deliveries"], b["deliveries"], "the same queue item");
    assert_ne!(
        a["deliveries"], c["deliveries"],
        "another entity queues its own"
    );
    let (_, list) = api.get(&format!("/deliveries?endpoint_id={ep_id}")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (_, replaced) = api
        .get(&format!("/events/{}", a["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        replaced["deliveries"],
        json!([]),
        "the replaced event no longer lists the delivery it gave up: {replaced}"
    );

    api.patch(&format!("/endpoints/{ep_id}"), json!({"enabled": true}))
        .await;
    let got = rx.wait_for(2, 5).await;
    let bodies: Vec<serde_json::Value> = got
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert!(
        bodies.iter().any(|b| b["data"]["v"] == 2),
        "the newest data of order-1 is sent"
    );
    assert!(
        !bodies.iter().any(|b| b["data"]["v"] == 1),
        "the replaced one is not"
    );
}

#[tokio::test]
async fn the_activity_stream_reports_events_and_attempts_live() {
    use futures::StreamExt;
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    api.post("/endpoints", json!({"url": rx.url("/")})).await;
    let resp = reqwest::Client::new()
        .get(app.url("/api/v1/activity"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut stream = resp.bytes_stream();
    api.post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !(text.contains("event: event.published") && text.contains("event: attempt")) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("activity arrives")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("\"status\":\"succeeded\""), "{text}");
}

/// Herald with one endpoint limited to `rate` deliveries a second; `events` are published to
/// it, and the returned instant is when publishing started.
async fn rate_limited(rate: u32, events: usize) -> (TestApp, Api, Receiver, std::time::Instant) {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    api.post(
        "/endpoints",
        json!({"url": rx.url("/"), "rate_limit_per_second": rate}),
    )
    .await;
    let batch: Vec<_> = (0..events)
        .map(|i| json!({"type": "order.created", "data": {"i": i}}))
        .collect();
    let started = std::time::Instant::now();
    api.post("/events/batch", json!(batch)).await;
    (app, api, rx, started)
}

#[tokio::test]
async fn an_endpoint_rate_limit_spaces_its_deliveries() {
    let (_app, _api, rx, started) = rate_limited(2, 5).await;
    rx.wait_for(5, 10).await;
    // Two at once, then two a second: the fifth cannot arrive before about 1.5 s.
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_endpoint_with_a_backlog_does_not_delay_another() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let slow = Receiver::start(|_| (200, vec![], "ok".into(), Duration::from_millis(200))).await;
    let fast = Receiver::ok().await;
    api.post(
        "/endpoints",
        json!({"url": slow.url("/"), "event_types": ["order.created"]}),
    )
    .await;
    api.post(
        "/endpoints",
        json!({"url": fast.url("/"), "event_types": ["order.paid"]}),
    )
    .await;
    // Far more waiting for the slow endpoint than one claim looks at, all ahead in the queue.
    for b in 0..5 {
        let batch: Vec<_> = (0..1000)
            .map(|i| json!({"type": "order.created", "data": {"i": b * 1000 + i}}))
            .collect();
        let (code, _) = api.post("/events/batch", json!(batch)).await;
        assert_eq!(code, 202);
    }
    slow.wait_for(1, 5).await;
    let started = std::time::Instant::now();
    api.post("/events", json!({"type": "order.paid", "data": {"i": 0}}))
        .await;
    fast.wait_for(1, 5).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        slow.count() < 1000,
        "the slow endpoint's backlog is still there"
    );
}

#[tokio::test]
async fn a_rate_limited_endpoint_leases_no_more_than_it_can_send() {
    let (_app, api, rx, _) = rate_limited(1, 50).await;
    rx.wait_for(1, 5).await;
    let (_, leased) = api.get("/deliveries?status=delivering&limit=100").await;
    let n = leased["items"].as_array().unwrap().len();
    // Its concurrency at most (8 here): the rest wait in the queue, unleased.
    assert!((1..=8).contains(&n), "{n} leased");
}

#[tokio::test]
async fn retry_after_is_honoured_within_the_policy() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::start(|_| {
        (
            503,
            vec![("retry-after", "2".to_string())],
            String::new(),
            Duration::ZERO,
        )
    })
    .await;
    api.post(
        "/endpoints",
        json!({"url": rx.url("/"), "retry": {"policy": "schedule", "delays_s": [1, 3]}}),
    )
    .await;
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let d = api
        .wait_status(p["deliveries"][0].as_str().unwrap(), "retrying", 5)
        .await;
    let parse = |v: &serde_json::Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let wait = parse(&d["next_attempt_at"]) - parse(&d["attempts"][0]["at"]);
    assert!(
        wait >= time::Duration::milliseconds(1900),
        "waited {wait} instead of the 1 s schedule"
    );
    assert!(wait <= time::Duration::milliseconds(2100), "{wait}");
}

#[tokio::test]
async fn an_endpoint_failing_for_days_is_disabled() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::start(status(500)).await;
    let (_, ep) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/"), "disable_after_days": 5}),
        )
        .await;
    let id = ep["id"].as_str().unwrap();
    let six_days_ago = herald::ids::now_ms() - 6 * 86_400_000;
    herald::with_raw_pool!(app.service.store, |pool, d| {
        sqlx::query(&d.sql("UPDATE endpoints SET failing_since = ? WHERE id = ?"))
            .bind(six_days_ago)
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
    });
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    api.wait_status(p["deliveries"][0].as_str().unwrap(), "held", 5)
        .await;
    let (_, ep) = api.get(&format!("/endpoints/{id}")).await;
    assert_eq!(ep["enabled"], false);
    assert_eq!(ep["disabled_reason"], "failing continuously for 5 days");
}

#[tokio::test]
async fn retention_purges_old_failed_deliveries_and_logs() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::start(status(500)).await;
    api.post(
        "/endpoints",
        json!({"url": rx.url("/"), "retry": {"policy": "schedule", "delays_s": []}}),
    )
    .await;
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let id = p["deliveries"][0].as_str().unwrap();
    api.wait_status(id, "failed", 5).await;
    let store = &app.service.store;
    let now = herald::ids::now_ms();
    assert_eq!(
        store.purge_expired(now, None).await.unwrap().total(),
        0,
        "fresh ones stay"
    );
    let later = now + 31 * 86_400_000;
    let purged = store.purge_expired(later, None).await.unwrap();
    // The delivery, then its event (nothing refers to it any more) and its alert.
    assert_eq!(
        (purged.deliveries, purged.events, purged.alerts, purged.more),
        (1, 1, 1, false),
        "{purged:?}"
    );
    let (code, _) = api.get(&format!("/deliveries/{id}")).await;
    assert_eq!(code, 404);
    let (code, _) = api
        .get(&format!("/events/{}", p["id"].as_str().unwrap()))
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn retention_removes_every_kind_of_row_it_no_longer_keeps() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let ok = Receiver::ok().await;
    let failing = Receiver::start(status(500)).await;
    api.post(
        "/endpoints",
        json!({"url": ok.url("/"), "event_types": ["order.created"]}),
    )
    .await;
    api.post(
        "/endpoints",
        json!({"url": failing.url("/"), "event_types": ["order.paid"],
               "retry": {"policy": "schedule", "delays_s": [3600]}}),
    )
    .await;
    let (_, held_ep) = api
        .post(
            "/endpoints",
            json!({"url": ok.url("/held"), "enabled": false, "event_types": ["order.shipped"]}),
        )
        .await;
    assert_eq!(held_ep["enabled"], false);
    let mut ids = Vec::new();
    for t in ["order.created", "order.paid", "order.shipped"] {
        let (_, p) = api.post("/events", json!({"type": t, "data": {}})).await;
        ids.push(p["deliveries"][0].as_str().unwrap().to_string());
    }
    api.wait_status(&ids[0], "succeeded", 5).await;
    api.wait_status(&ids[1], "retrying", 5).await;
    api.wait_status(&ids[2], "held", 5).await;

    // Past the retry retention (7 days) but within the log retention (30 days): the retrying
    // and held deliveries go, the succeeded one and its attempt stay.
    let store = &app.service.store;
    let count = |table: &'static str| async move {
        herald::with_raw_pool!(store, |pool, _d| sqlx::query_scalar::<_, i64>(&format!(
            "SELECT COUNT(*) FROM {table}"
        ))
        .fetch_one(pool)
        .await
        .unwrap())
    };
    let in_8_days = herald::ids::now_ms() + 8 * 86_400_000;
    while store.purge_expired(in_8_days, None).await.unwrap().total() > 0 {}
    assert_eq!(count("deliveries").await, 1);
    assert_eq!(count("attempts").await, 1);
    assert_eq!(
        count("events").await,
        1,
        "only the delivered event is still referenced"
    );
    // Past the log retention: nothing of it is left.
    let in_31_days = herald::ids::now_ms() + 31 * 86_400_000;
    while store.purge_expired(in_31_days, None).await.unwrap().total() > 0 {}
    for table in ["deliveries", "attempts", "events", "alerts"] {
        assert_eq!(count(table).await, 0, "{table}");
    }
}

#[tokio::test]
async fn bad_input_names_the_field_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let (shop, key) = app.api_shop().await;
    let api = app.api(&key);
    let (code, e) = api.post("/events", json!({"data": {}})).await;
    assert_eq!(code, 422, "{e}");
    assert_eq!(e["error"]["field"], "type", "{e}");
    let (code, e) = api
        .post("/events", json!({"type": "Not A Type", "data": {}}))
        .await;
    assert_eq!((code, e["error"]["field"].as_str()), (422, Some("type")));
    let (code, e) = api.post("/endpoints", json!({"url": "ftp://x"})).await;
    assert_eq!((code, e["error"]["field"].as_str()), (422, Some("url")));
    let (code, e) = api
        .post(
            "/endpoints",
            json!({"url": "https://example.com", "payload": {"template": "{\"a\": {order_id"}}),
        )
        .await;
    assert_eq!(
        (code, e["error"]["field"].as_str()),
        (422, Some("template"))
    );
    let (code, e) = api.post("/endpoints", json!({"url": "https://example.com", "retry": {"policy": "fixed", "interval_s": 0, "max_retries": 5}})).await;
    assert_eq!(
        (code, e["error"]["field"].as_str()),
        (422, Some("retry.interval_s"))
    );
    let (code, e) = api
        .post(
            "/endpoints",
            json!({"url": "https://example.com", "headers": {"webhook-id": "x"}}),
        )
        .await;
    assert_eq!(
        (code, e["error"]["field"].as_str()),
        (422, Some("headers.webhook-id"))
    );
    let (code, e) = api
        .post(
            "/events/batch",
            json!([{"type": "order.created", "data": {}}, {"type": "bad", "data": {}}]),
        )
        .await;
    assert_eq!(
        (code, e["error"]["field"].as_str()),
        (422, Some("[1].type"))
    );
    let (_, list) = api.get("/deliveries").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing half-written"
    );
    let (code, list) = api.get("/endpoints").await;
    assert_eq!((code, list["items"].as_array().unwrap().len()), (200, 0));

    let raw = reqwest::Client::new()
        .post(app.url("/api/v1/events"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400, "malformed JSON is a bad request");
    let e: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(e["error"]["field"], "body");

    for (path, field) in [
        ("/deliveries?limit=abc", "limit"),
        ("/deliveries?limit=0", "limit"),
        ("/deliveries?status=lost", "status"),
        ("/deliveries?since=yesterday", "since"),
    ] {
        let (code, e) = api.get(path).await;
        assert_eq!(
            (code, e["error"]["field"].as_str()),
            (400, Some(field)),
            "{path}: {e}"
        );
        assert_eq!(e["error"]["code"], "bad_request");
    }
    let (code, e) = api.post("/alerts/alr_unknown/acknowledge", json!({})).await;
    assert_eq!(code, 404, "{e}");

    let big = "x".repeat(1024 * 1024 + 10);
    let (code, e) = api
        .post(
            "/events",
            json!({"type": "order.created", "data": {"big": big}}),
        )
        .await;
    assert_eq!(code, 413, "{e}");

    let (code, _) = app.api("hk_wrong").get("/deliveries").await;
    assert_eq!(code, 401);
    use app::backend::Backend;
    app.service
        .set_webhooks_enabled(&herald::service::Service::system(), &shop, false)
        .await
        .unwrap();
    let (code, e) = api.get("/deliveries").await;
    assert_eq!(code, 403);
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not enabled"));
}

#[tokio::test]
async fn deliveries_are_listed_newest_first_with_keyset_pagination() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    api.post(
        "/endpoints",
        json!({"url": "http://127.0.0.1:9/", "enabled": false}),
    )
    .await;
    let batch: Vec<_> = (0..5)
        .map(|i| json!({"type": "order.created", "data": {"i": i}}))
        .collect();
    api.post("/events/batch", json!(batch)).await;
    let (_, p1) = api.get("/deliveries?limit=2").await;
    let (_, p2) = api
        .get(&format!(
            "/deliveries?limit=2&cursor={}",
            p1["next_cursor"].as_str().unwrap()
        ))
        .await;
    let (_, p3) = api
        .get(&format!(
            "/deliveries?limit=2&cursor={}",
            p2["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(p3["items"].as_array().unwrap().len(), 1);
    assert!(p3["next_cursor"].is_null());
    let ids: Vec<String> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| {
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_string())
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);
    let (code, e) = api.get("/deliveries?status=bogus").await;
    assert_eq!((code, e["error"]["field"].as_str()), (400, Some("status")));
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_old_one() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    let (_, ep) = api.post("/endpoints", json!({"url": rx.url("/")})).await;
    let id = ep["id"].as_str().unwrap();
    let old = ep["secret"].as_str().unwrap().to_string();
    let (_, read) = api.get(&format!("/endpoints/{id}/secret")).await;
    assert_eq!(read["secret"], old.as_str());
    let (_, rotated) = api
        .post(&format!("/endpoints/{id}/secret/rotate"), json!({}))
        .await;
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let (code, t) = api
        .post(
            &format!("/endpoints/{id}/test"),
            json!({"event_type": "ticket.updated"}),
        )
        .await;
    assert_eq!(code, 202, "{t}");
    let got = rx.wait_for(1, 5).await;
    let h = &got[0].headers;
    let sig = h["webhook-signature"].to_str().unwrap();
    assert_eq!(sig.split(' ').count(), 2);
    let ts: i64 = h["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    let id_h = h["webhook-id"].to_str().unwrap();
    assert!(herald::engine::signing::verify(
        &new,
        id_h,
        ts,
        got[0].body.as_bytes(),
        sig
    ));
    assert!(herald::engine::signing::verify(
        &old,
        id_h,
        ts,
        got[0].body.as_bytes(),
        sig
    ));
    assert_eq!(h["x-herald-event-type"], "ticket.updated");
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_format() {
    let app = TestApp::spawn().await;
    let body = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("herald_queue_depth"), "{body}");
    assert!(body.contains("herald_attempt_duration_seconds"));
}

#[tokio::test]
async fn anonymous_metrics_show_nothing_of_any_shop() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.metrics_token = Some("scrape-token-1".into());
    let app = TestApp::start(config).await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::start(status(500)).await;
    let (_, ep) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/"), "retry": {"policy": "schedule", "delays_s": []}}),
        )
        .await;
    let endpoint = ep["id"].as_str().unwrap().to_string();
    let (_, published) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    api.wait_status(published["deliveries"][0].as_str().unwrap(), "failed", 5)
        .await;
    let scrape = |token: Option<&'static str>| {
        let mut req = reqwest::Client::new().get(app.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap() }
    };
    let anonymous = scrape(None).await.text().await.unwrap();
    assert!(
        anonymous.contains("herald_delivery_attempts"),
        "{anonymous}"
    );
    assert!(!anonymous.contains(&endpoint), "{anonymous}");
    assert!(!anonymous.contains("endpoint_failures"));
    let with_token = scrape(Some("scrape-token-1")).await.text().await.unwrap();
    assert!(
        with_token.contains(&format!("endpoint_id=\"{endpoint}\"")),
        "{with_token}"
    );
    assert_eq!(scrape(Some("wrong")).await.status(), 401);
    // A deleted endpoint's series go with it: label sets do not grow for ever.
    let (code, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/endpoints/{endpoint}"),
            None,
        )
        .await;
    assert_eq!(code, 204);
    let after = scrape(Some("scrape-token-1")).await.text().await.unwrap();
    assert!(!after.contains(&endpoint), "{after}");
}

#[tokio::test]
async fn shutdown_gives_unfinished_deliveries_back_to_the_queue() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::start(|_| (200, vec![], String::new(), Duration::from_secs(30))).await;
    api.post("/endpoints", json!({"url": rx.url("/")})).await;
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let id = p["deliveries"][0].as_str().unwrap();
    rx.wait_for(1, 5).await;
    api.wait_status(id, "delivering", 2).await;
    app.service
        .engine
        .shutdown(Duration::from_millis(100))
        .await;
    let (_, d) = api.get(&format!("/deliveries/{id}")).await;
    assert_eq!(
        d["status"], "pending",
        "queued again without waiting for the lease"
    );
}

#[tokio::test]
async fn a_delivery_failing_after_its_endpoint_was_disabled_is_held_not_retried() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    // The attempt is answered 500 after a moment, while the endpoint is being disabled.
    let rx = Receiver::start(|_| (500, vec![], String::new(), Duration::from_millis(500))).await;
    let (_, ep) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/"), "retry": {"policy": "schedule", "delays_s": [1, 1]}}),
        )
        .await;
    let ep_id = ep["id"].as_str().unwrap();
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let id = p["deliveries"][0].as_str().unwrap();
    rx.wait_for(1, 5).await;
    let (code, _) = api
        .patch(&format!("/endpoints/{ep_id}"), json!({"enabled": false}))
        .await;
    assert_eq!(code, 200);
    api.wait_status(id, "held", 5).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.count(), 1, "a disabled endpoint gets no retry");
    let (_, d) = api.get(&format!("/deliveries/{id}")).await;
    assert_eq!(d["status"], "held");
}

#[tokio::test]
async fn endpoint_patches_racing_a_disable_or_a_delete_lose_neither() {
    let app = TestApp::spawn().await;
    let (shop, key) = app.api_shop().await;
    let api = app.api(&key);
    let system = herald::service::Service::system();
    for _ in 0..3 {
        let (_, ep) = api
            .post(
                "/endpoints",
                json!({"url": "http://127.0.0.1:9/", "enabled": true}),
            )
            .await;
        let id = ep["id"].as_str().unwrap().to_string();
        // Many patches of the description, and in the middle the engine's kind of write: a
        // disable. No patch mentions `enabled`, so the endpoint must end disabled.
        let patches = (0..20).map(|i| {
            let api = app.api(&key);
            let id = id.clone();
            tokio::spawn(async move {
                api.patch(
                    &format!("/endpoints/{id}"),
                    json!({"description": format!("d{i}")}),
                )
                .await
            })
        });
        let patches: Vec<_> = patches.collect();
        app.service
            .store
            .set_endpoint_enabled(
                &shop.as_str().into(),
                &id.as_str().into(),
                false,
                Some("test disable"),
                herald::ids::now_ms(),
            )
            .await
            .unwrap();
        for p in patches {
            let (code, e) = p.await.unwrap();
            assert_eq!(code, 200, "{e}");
        }
        let (_, e) = api.get(&format!("/endpoints/{id}")).await;
        assert_eq!(e["enabled"], false, "a patch re-enabled it: {e}");

        // And a delete in the middle of patches stays a delete.
        let patches: Vec<_> = (0..20)
            .map(|i| {
                let api = app.api(&key);
                let id = id.clone();
                tokio::spawn(async move {
                    api.patch(
                        &format!("/endpoints/{id}"),
                        json!({"description": format!("e{i}")}),
                    )
                    .await
                })
            })
            .collect();
        app.service
            .delete_endpoint(&system, &shop, &id)
            .await
            .unwrap();
        for p in patches {
            let (code, e) = p.await.unwrap();
            assert!(code == 200 || code == 404, "{code} {e}");
        }
        let (code, _) = api.get(&format!("/endpoints/{id}")).await;
        assert_eq!(code, 404, "a patch undid the delete");
    }
}

#[tokio::test]
async fn a_publish_racing_a_disable_or_delete_queues_nothing_sendable_and_never_fails() {
    let app = TestApp::spawn().await;
    let (shop, key) = app.api_shop().await;
    let api = app.api(&key);
    let system = herald::service::Service::system();
    let rx = Receiver::ok().await;
    let (_, ep) = api.post("/endpoints", json!({"url": rx.url("/")})).await;
    let id = ep["id"].as_str().unwrap().to_string();
    let publishes: Vec<_> = (0..30)
        .map(|i| {
            let api = app.api(&key);
            tokio::spawn(async move {
                api.post(
                    "/events",
                    json!({"type": "order.created", "data": {"i": i}}),
                )
                .await
            })
        })
        .collect();
    app.service
        .store
        .set_endpoint_enabled(
            &shop.as_str().into(),
            &id.as_str().into(),
            false,
            Some("test disable"),
            herald::ids::now_ms(),
        )
        .await
        .unwrap();
    let sent_before = rx.count();
    for p in publishes {
        let (code, e) = p.await.unwrap();
        assert_eq!(code, 202, "{e}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, page) = api.get("/deliveries?status=pending").await;
    assert_eq!(
        page["items"],
        json!([]),
        "nothing pending to a disabled endpoint"
    );
    assert!(
        rx.count() <= sent_before + 64,
        "at most what was already leased went out"
    );

    // Deleted while events are published: every publish answers 202, never a 500.
    let (_, ep) = api.post("/endpoints", json!({"url": rx.url("/")})).await;
    let id = ep["id"].as_str().unwrap().to_string();
    let publishes: Vec<_> = (0..30)
        .map(|i| {
            let api = app.api(&key);
            tokio::spawn(async move {
                api.post(
                    "/events",
                    json!({"type": "order.created", "data": {"j": i}}),
                )
                .await
            })
        })
        .collect();
    app.service
        .delete_endpoint(&system, &shop, &id)
        .await
        .unwrap();
    for p in publishes {
        let (code, e) = p.await.unwrap();
        assert_eq!(code, 202, "{e}");
    }
}

#[tokio::test]
async fn extra_headers_are_sealed_at_rest_and_masked_in_attempts_and_for_viewers() {
    use app::model::{Membership, Principal, ShopRole};
    let app = TestApp::spawn().await;
    let (shop, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    let (code, ep) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/"), "headers": {"X-Api-Token": "s3cret-value"}}),
        )
        .await;
    assert_eq!(code, 201, "{ep}");
    let id = ep["id"].as_str().unwrap().to_string();
    let stored: String = herald::with_raw_pool!(app.service.store, |pool, d| sqlx::query_scalar(
        &d.sql("SELECT CAST(headers AS TEXT) FROM endpoints WHERE id = ?")
    )
    .bind(&id)
    .fetch_one(pool)
    .await
    .unwrap());
    assert!(
        !stored.contains("s3cret-value"),
        "stored in the clear: {stored}"
    );

    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let delivery = p["deliveries"][0].as_str().unwrap();
    let d = api.wait_status(delivery, "succeeded", 5).await;
    assert_eq!(rx.requests()[0].headers["x-api-token"], "s3cret-value");
    assert_eq!(
        d["attempts"][0]["request"]["headers"]["x-api-token"], "••••••",
        "{d}"
    );

    let (_, owner_view) = api.get(&format!("/endpoints/{id}")).await;
    assert_eq!(owner_view["headers"]["X-Api-Token"], "s3cret-value");
    let viewer = Principal {
        user_id: "usr_viewer".into(),
        email: "viewer@example.com".into(),
        operator: false,
        memberships: vec![Membership {
            shop_id: shop.clone(),
            shop_name: "Shop".into(),
            role: ShopRole::Viewer,
        }],
    };
    let seen = app.service.get_endpoint(&viewer, &shop, &id).await.unwrap();
    assert_eq!(seen.headers["X-Api-Token"], "••••••");
}

/// An endpoint's JSON settings are read as their types: a corrupt stored value is an error
/// (logged, a 500), never read as empty — empty event types would mean "every type".
#[tokio::test]
async fn a_corrupt_stored_setting_fails_loudly_instead_of_reading_as_empty() {
    let app = TestApp::spawn().await;
    let (shop, key) = app.api_shop().await;
    let api = app.api(&key);
    let (status, ep) = api
        .post(
            "/endpoints",
            json!({"url": "https://example.com/hook", "event_types": ["order.created"]}),
        )
        .await;
    assert_eq!(status, 201, "{ep}");
    let id = ep["id"].as_str().unwrap();
    let store = &app.service.store;
    let row = store
        .endpoint(&shop.as_str().into(), &id.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.event_types.0, vec!["order.created".to_string()]);

    // Well-formed JSON of the wrong shape (what PostgreSQL's jsonb also lets through).
    herald::with_raw_pool!(store, |pool, d| {
        sqlx::query(
            &d.sql("UPDATE endpoints SET event_types = '{\"order.created\": true}' WHERE id = ?"),
        )
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    });
    assert!(store
        .endpoint(&shop.as_str().into(), &id.into())
        .await
        .is_err());
    let (status, body) = api.get(&format!("/endpoints/{id}")).await;
    assert_eq!(status, 500, "{body}");
}

/// Each attempt stores only what differs from the delivery's other attempts (timestamp,
/// signature, the endpoint's own headers; a templated body), yet reads back as exactly the
/// request the receiver got: the envelope and the headers the delivery names are rebuilt.
#[tokio::test]
async fn each_attempt_reads_back_as_the_exact_request_while_storing_only_what_differs() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let failing_first = |n: usize| {
        let code = if n == 0 { 500 } else { 200 };
        (code, vec![], "ok".to_string(), Duration::ZERO)
    };
    let envelope_rx = Receiver::start(failing_first).await;
    let template_rx = Receiver::start(failing_first).await;
    let no_retries = json!({"policy": "schedule", "delays_s": []});
    let (_, envelope_ep) = api
        .post("/endpoints", json!({"url": envelope_rx.url("/e"), "retry": no_retries,
            "basic_auth": {"username": "u", "password": "p"}, "headers": {"X-Api-Token": "s3cret"}}))
        .await;
    let (code, template_ep) = api
        .post("/endpoints", json!({"url": template_rx.url("/t"), "retry": no_retries,
            "payload": {"content_type": "text/plain", "template": "Order {order_id}: {event_type}"}}))
        .await;
    assert_eq!(code, 201, "{template_ep}");
    let (_, published) = api
        .post(
            "/events",
            json!({"type": "order.created", "data": {"order_id": 7, "total": 1.5},
            "channels": ["eu"]}),
        )
        .await;
    let event_id = published["id"].as_str().unwrap();
    let deliveries: Vec<String> = published["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    for d in &deliveries {
        api.wait_status(d, "failed", 5).await;
        let (code, _) = api.post(&format!("/deliveries/{d}/retry"), json!({})).await;
        assert_eq!(code, 202);
        api.wait_status(d, "succeeded", 5).await;
    }

    for (rx, ep, form) in [
        (&envelope_rx, &envelope_ep, 14),
        (&template_rx, &template_ep, 13),
    ] {
        let secret = ep["secret"].as_str().unwrap();
        let got = rx.wait_for(2, 5).await;
        let delivery = got[0].headers["x-herald-delivery"].to_str().unwrap();
        let (_, d) = api.get(&format!("/deliveries/{delivery}")).await;
        let attempts = d["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "{d}");
        for (sent, attempt) in got.iter().zip(attempts) {
            let request = &attempt["request"];
            assert_eq!(request["body"], sent.body.as_str(), "{attempt}");
            let recorded = request["headers"].as_object().unwrap();
            for name in [
                "content-type",
                "user-agent",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "x-herald-event-type",
                "x-herald-delivery",
                "x-herald-attempt",
            ] {
                assert_eq!(
                    recorded[name],
                    sent.headers[name].to_str().unwrap(),
                    "{name}: {attempt}"
                );
            }
            let masked = recorded
                .iter()
                .filter(|(_, v)| v.as_str().unwrap().contains('•'));
            assert_eq!(
                masked.count(),
                if form == 14 { 2 } else { 0 },
                "{recorded:?}"
            );
            let ts: i64 = recorded["webhook-timestamp"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let signature = recorded["webhook-signature"].as_str().unwrap();
            assert!(
                herald::engine::signing::verify(
                    secret,
                    event_id,
                    ts,
                    request["body"].as_str().unwrap().as_bytes(),
                    signature
                ),
                "the body read back is the one signed"
            );
        }
        assert_eq!(attempts[1]["request"]["headers"]["x-herald-attempt"], "2");
        // The receiver's response headers read back as it sent them.
        for attempt in attempts {
            let response = &attempt["response"]["headers"];
            assert_eq!(
                response["content-type"], "text/plain; charset=utf-8",
                "{attempt}"
            );
            assert_eq!(response["content-length"], "2", "{attempt}");
            let date = response["date"].as_str().unwrap();
            let date = httpdate::parse_http_date(date).expect("an HTTP date");
            let apart = std::time::SystemTime::now()
                .duration_since(date)
                .unwrap_or_else(|e| e.duration());
            assert!(
                apart < Duration::from_secs(60),
                "sent moments ago: {attempt}"
            );
        }

        let stored: Vec<(i64, String, String, String)> =
            herald::with_raw_pool!(app.service.store, |pool, d| {
                sqlx::query_as(&d.sql(
                    "SELECT request_form, request_headers, request_body, response_headers
                 FROM attempts WHERE delivery_id = ? ORDER BY number",
                ))
                .bind(herald::ids::DeliveryId::from(delivery))
                .fetch_all(pool)
                .await
                .unwrap()
            });
        assert_eq!(stored.len(), 2, "both attempts stored");
        for (stored_form, headers, body, response) in &stored {
            assert_eq!(*stored_form, form);
            // Packed: the date as seconds from the attempt's time, no header names.
            assert!(
                response.ends_with("\n2\ntext/plain; charset=utf-8"),
                "{response}"
            );
            assert!(!response.contains("date"), "{response}");
            for derived in [
                "webhook-id",
                "x-herald-delivery",
                "x-herald-attempt",
                "x-herald-event-type",
            ] {
                assert!(!headers.contains(derived), "{derived} stored: {headers}");
            }
            // Packed: the signing headers' values without their names.
            for named in ["user-agent", "webhook-timestamp", "webhook-signature"] {
                assert!(!headers.contains(named), "{named} named: {headers}");
            }
            assert!(headers.contains("v1,"), "the signature kept: {headers}");
            assert!(!headers.contains("s3cret"), "a secret stored: {headers}");
            assert_eq!(body.is_empty(), form == 14, "{body}");
        }
    }
    assert_eq!(template_rx.requests()[1].body, "Order 7: order.created");

    // An event with an entity key may be replaced in its waiting delivery by a newer one, so
    // its attempts keep the request as sent.
    let (_, keyed) = api
        .post(
            "/events",
            json!({"type": "order.updated", "data": {"v": 1}, "entity_key": "order-7"}),
        )
        .await;
    let d = keyed["deliveries"][0].as_str().unwrap();
    api.wait_status(d, "succeeded", 5).await;
    let (_, shown) = api.get(&format!("/deliveries/{d}")).await;
    let sent = envelope_rx.requests().last().unwrap().clone();
    assert_eq!(shown["attempts"][0]["request"]["body"], sent.body.as_str());
    let form: i64 = herald::with_raw_pool!(app.service.store, |pool, q| {
        sqlx::query_scalar(&q.sql("SELECT request_form FROM attempts WHERE delivery_id = ?"))
            .bind(herald::ids::DeliveryId::from(d))
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(form, 0);
}
