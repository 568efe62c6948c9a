//! The engine under pressure: leases have owners and cover their attempt (a delivery is never
//! sent twice at once, and a holder that lost its lease never overwrites the current state);
//! slow endpoints cannot take every permit; priority and cancel act on what was read ahead.

mod common;

use common::receiver::Receiver;
use common::*;
use serde_json::json;
use std::time::Duration;

/// Herald with this lease, a shop's API, and an endpoint with this timeout at `rx`.
async fn with_lease(
    lease_seconds: u64,
    timeout_ms: u64,
    rx: &Receiver,
) -> (tempfile::TempDir, TestApp, Api) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.lease_seconds = lease_seconds;
    let app = TestApp::start(config).await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let (code, ep) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/hook"), "timeout_ms": timeout_ms}),
        )
        .await;
    assert_eq!(code, 201, "{ep}");
    (dir, app, api)
}

async fn publish_one(api: &Api) -> String {
    let (code, published) = api
        .post(
            "/events",
            json!({"type": "order.created", "data": {"n": 1}}),
        )
        .await;
    assert_eq!(code, 202, "{published}");
    published["deliveries"][0].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_attempt_that_outlasts_the_configured_lease_is_sent_once() {
    // The receiver takes 2 s; the lease is 1 s, the endpoint's timeout 3 s. The lease must
    // cover the attempt, or the sweep gives it back mid-flight and a second worker sends it.
    let rx = Receiver::start(|_| (200, vec![], "ok".into(), Duration::from_secs(2))).await;
    let (_dir, app, api) = with_lease(1, 3_000, &rx).await;
    let delivery = publish_one(&api).await;
    let done = api.wait_status(&delivery, "succeeded", 10).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(rx.count(), 1, "sent exactly once");
    assert_eq!(done["attempt_count"], 1);
    drop(app);
}

#[tokio::test]
async fn a_record_from_a_holder_that_lost_its_lease_changes_nothing() {
    let rx = Receiver::start(|_| (200, vec![], "ok".into(), Duration::from_millis(800))).await;
    let (_dir, app, api) = with_lease(30, 5_000, &rx).await;
    let delivery = publish_one(&api).await;
    rx.wait_for(1, 5).await;
    // While the attempt is in flight, the lease passes to another holder (as when it ran out
    // and another node claimed the delivery).
    herald::with_raw_pool!(app.service.store, |pool, d| {
        sqlx::query(&d.sql("UPDATE deliveries SET lease_owner = 'another-holder' WHERE id = ?"))
            .bind(herald::ids::DeliveryId::from(delivery.as_str()))
            .execute(pool)
            .await
            .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, owner): (String, Option<String>) = herald::with_raw_pool!(
        app.service.store,
        |pool, d| sqlx::query_as(&d.sql("SELECT status, lease_owner FROM deliveries WHERE id = ?"))
            .bind(herald::ids::DeliveryId::from(delivery.as_str()))
            .fetch_one(pool)
            .await
            .unwrap()
    );
    assert_eq!(status, "delivering", "the new holder's state stands");
    assert_eq!(owner.as_deref(), Some("another-holder"));
    let attempts: i64 = herald::with_raw_pool!(app.service.store, |pool, d| sqlx::query_scalar(
        &d.sql("SELECT COUNT(*) FROM attempts WHERE delivery_id = ?")
    )
    .bind(herald::ids::DeliveryId::from(delivery.as_str()))
    .fetch_one(pool)
    .await
    .unwrap());
    assert_eq!(attempts, 1, "the attempt is kept as evidence");
}

/// Herald with the default engine limits (256 in flight, 32 per endpoint) unless changed.
async fn default_limits(
    change: impl FnOnce(&mut herald::config::Config),
) -> (tempfile::TempDir, TestApp, Api) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.concurrency = 256;
    config.endpoint_concurrency = 32;
    change(&mut config);
    let app = TestApp::start(config).await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    (dir, app, api)
}

async fn endpoint(api: &Api, body: serde_json::Value) -> String {
    let (code, ep) = api.post("/endpoints", body).await;
    assert_eq!(code, 201, "{ep}");
    ep["id"].as_str().unwrap().to_string()
}

/// Publishes `n` events of one type in batches of 1,000; returns their delivery ids.
async fn publish_many(api: &Api, n: usize, event_type: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for start in (0..n).step_by(1000) {
        let batch: Vec<_> = (start..(start + 1000).min(n))
            .map(|i| json!({"type": event_type, "data": {"i": i}}))
            .collect();
        let (code, out) = api.post("/events/batch", json!(batch)).await;
        assert_eq!(code, 202, "{out}");
        for item in out["items"].as_array().unwrap() {
            for d in item["deliveries"].as_array().unwrap() {
                ids.push(d.as_str().unwrap().to_string());
            }
        }
    }
    ids
}

fn event_ids(rx: &Receiver) -> Vec<String> {
    rx.requests()
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_high_priority_event_overtakes_a_deep_backlog_read_ahead() {
    let (_dir, _app, api) = default_limits(|_| {}).await;
    // 32 at a time, 10 ms each: the 4,000-event backlog takes over a second to send.
    let rx = Receiver::start(|_| (200, vec![], "ok".into(), Duration::from_millis(10))).await;
    endpoint(&api, json!({"url": rx.url("/")})).await;
    publish_many(&api, 4000, "order.created").await;
    rx.wait_for(200, 10).await;
    let (code, urgent) = api
        .post(
            "/events",
            json!({"type": "order.created", "data": {"urgent": true}, "priority": "high"}),
        )
        .await;
    assert_eq!(code, 202, "{urgent}");
    let urgent_id = urgent["id"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    loop {
        if let Some(at) = event_ids(&rx).iter().position(|id| *id == urgent_id) {
            assert!(
                at < 3000,
                "sent as number {at} of 4,001: it did not overtake"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "not sent within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_delivery_read_ahead_but_not_yet_sent_can_be_cancelled() {
    let (_dir, _app, api) = default_limits(|c| c.endpoint_concurrency = 1).await;
    let rx = Receiver::start(|_| (200, vec![], "ok".into(), Duration::from_millis(200))).await;
    endpoint(&api, json!({"url": rx.url("/")})).await;
    let deliveries = publish_many(&api, 5, "order.created").await;
    rx.wait_for(1, 5).await;
    let last = deliveries.last().unwrap();
    let (_, before) = api.get(&format!("/deliveries/{last}")).await;
    assert_eq!(before["status"], "delivering", "leased ahead: {before}");
    let (code, cancelled) = api
        .post(&format!("/deliveries/{last}/cancel"), json!({}))
        .await;
    assert_eq!(
        (code, cancelled["status"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    rx.wait_for(4, 5).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rx.count(), 4, "the cancelled delivery was never sent");
    let (_, after) = api.get(&format!("/deliveries/{last}")).await;
    assert_eq!(after["status"], "cancelled");
}

#[tokio::test]
async fn slow_endpoints_cannot_take_every_global_permit() {
    // 8 permits; four endpoints whose receivers never answer within their 1 s timeout, each
    // with a backlog; two more wait on a rate limit of 1 a second. A healthy endpoint's event
    // must go out within about one slow attempt.
    let (_dir, _app, api) = default_limits(|c| c.concurrency = 8).await;
    let stuck = Receiver::start(|_| (200, vec![], "late".into(), Duration::from_secs(5))).await;
    for _ in 0..4 {
        endpoint(
            &api,
            json!({"url": stuck.url("/"), "timeout_ms": 1000, "event_types": ["order.created"]}),
        )
        .await;
    }
    let limited = Receiver::ok().await;
    for _ in 0..2 {
        endpoint(&api, json!({"url": limited.url("/"), "rate_limit_per_second": 1, "event_types": ["order.created"]})).await;
    }
    let healthy = Receiver::ok().await;
    endpoint(
        &api,
        json!({"url": healthy.url("/"), "event_types": ["ticket.created"]}),
    )
    .await;
    publish_many(&api, 200, "order.created").await;
    stuck.wait_for(8, 5).await;
    let started = std::time::Instant::now();
    let (code, _) = api
        .post("/events", json!({"type": "ticket.created", "data": {}}))
        .await;
    assert_eq!(code, 202);
    healthy.wait_for(1, 5).await;
    // About one slow attempt (1 s), with room for a loaded machine (2.0 s seen once in a CI
    // run on a fresh clone); were the permits kept by the slow endpoints, the event would wait
    // behind their backlog of hundreds of attempts, 8 a second.
    assert!(
        started.elapsed() < Duration::from_millis(3_000),
        "the healthy endpoint waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_lease_left_by_a_dead_process_is_released_at_once_without_a_busy_loop() {
    let rx = Receiver::ok().await;
    let (_dir, app, api) = with_lease(60, 1_000, &rx).await;
    let delivery = publish_one(&api).await;
    api.wait_status(&delivery, "succeeded", 5).await;
    // As if a process that died held it: leased, its lease run out a moment ago. The release
    // tick is 15 s away; the engine must not spin on it meanwhile.
    herald::with_raw_pool!(app.service.store, |pool, d| {
        sqlx::query(&d.sql(
            "UPDATE deliveries SET status = 'delivering', lease_owner = 'dead-process',
             lease_until = ? WHERE id = ?",
        ))
        .bind(herald::ids::now_ms() - 1)
        .bind(herald::ids::DeliveryId::from(delivery.as_str()))
        .execute(pool)
        .await
        .unwrap();
    });
    let rounds = || app.service.engine.metrics().claim_rounds.get();
    publish_one(&api).await; // a claim round notes when the next lease ends
    rx.wait_for(3, 3).await;
    api.wait_status(&delivery, "succeeded", 3).await;
    let before = rounds();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let idle = rounds() - before;
    assert!(idle < 10, "{idle} claim rounds in an idle second");
}

#[tokio::test]
async fn secrets_that_do_not_open_send_nothing_and_say_why() {
    let rx = Receiver::ok().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.secret_key = Some("11".repeat(32));
    let app = TestApp::start(config.clone()).await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let ep = endpoint(
        &api,
        json!({"url": rx.url("/"), "basic_auth": {"username": "u", "password": "p"},
        "retry": {"policy": "schedule", "delays_s": [3600]}}),
    )
    .await;
    // A sealed password that no key opens (as after a key change for this one value).
    let other = herald::crypto::SecretBox::load(Some(&"22".repeat(32)), dir.path()).unwrap();
    herald::with_raw_pool!(app.service.store, |pool, d| {
        sqlx::query(&d.sql("UPDATE endpoints SET basic_auth_password_enc = ? WHERE id = ?"))
            .bind(other.seal("p"))
            .bind(&ep)
            .execute(pool)
            .await
            .unwrap();
    });
    app.service.engine.endpoint_changed(&ep).await;
    let delivery = publish_one(&api).await;
    let d = api.wait_status(&delivery, "retrying", 5).await;
    assert_eq!(d["attempts"][0]["error_kind"], "secret", "{d}");
    assert_eq!(rx.count(), 0, "nothing went out without its password");
    let (_, alerts) = api.get("/alerts").await;
    let kinds: Vec<_> = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].clone())
        .collect();
    assert!(kinds.contains(&json!("secret_unavailable")), "{alerts}");
    drop(app);

    // Started with another key, Herald refuses and says why.
    config.secret_key = Some("33".repeat(32));
    let refused = herald::startup::Server::build(&config).await;
    let message = format!("{:#}", refused.err().expect("refuses to start"));
    assert!(message.contains("secret key does not open"), "{message}");
}

/// PostgreSQL plans by its statistics, which autovacuum takes a minute late by default: the
/// engine takes them itself once a burst changed a table by a fifth, so the queue pages after
/// a million published are planned for a million. (SQLite's queries name their index.)
#[tokio::test]
async fn a_burst_of_deliveries_gets_fresh_planner_statistics_on_postgres() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    let (code, _) = api
        .post("/endpoints", json!({"url": rx.url("/"), "enabled": false}))
        .await;
    assert_eq!(code, 201);
    for batch in 0..12 {
        let events: Vec<_> = (0..1000)
            .map(|i| json!({"type": "order.created", "data": {"n": batch * 1000 + i}}))
            .collect();
        let (code, body) = api.post("/events/batch", json!(events)).await;
        assert_eq!(code, 202, "{body}");
    }
    if !on_postgres() {
        assert!(app
            .service
            .store
            .refresh_statistics()
            .await
            .unwrap()
            .is_empty());
        return;
    }
    let analyzed = || async {
        herald::with_raw_pool!(app.service.store, |pool, _d| {
            sqlx::query_scalar::<_, bool>(
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables
                 WHERE relname = 'deliveries' AND schemaname = current_schema()",
            )
            .fetch_one(pool)
            .await
            .unwrap()
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !analyzed().await {
        assert!(
            std::time::Instant::now() < deadline,
            "12,000 new deliveries and no ANALYZE after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
