//! One shop cannot hurt the others (issue 28), end to end: Herald on port 0 with a temporary
//! store, real receivers on 127.0.0.1 and raw client connections.

mod common;

use app::backend::Backend;
use common::receiver::Receiver;
use common::*;
use herald::service::Service;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn answer(
    code: u16,
) -> impl Fn(usize) -> (u16, Vec<(&'static str, String)>, String, Duration) + Send + Sync {
    move |_| (code, vec![], String::new(), Duration::ZERO)
}

/// Herald with a configuration the test adjusts, in a data directory kept for its life.
async fn app_with(
    adjust: impl FnOnce(&mut herald::config::Config),
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    adjust(&mut config);
    (TestApp::start(config).await, dir)
}

#[tokio::test]
async fn a_template_that_renders_past_the_limit_fails_its_delivery_once_without_sending() {
    // Events of at most 64 KiB: bodies of at most 64 KiB + 64 KiB.
    let (app, _dir) = app_with(|c| c.max_event_bytes = 64 * 1024).await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    // 100 copies of the event: fine against the small sample, 6 MB for a 60 KB event.
    let template = "{data}".repeat(100);
    let (code, ep) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/"), "event_types": ["order.created"],
                   "payload": {"content_type": "text/plain", "template": template},
                   "retry": {"policy": "schedule", "delays_s": [1, 1, 1]}}),
        )
        .await;
    assert_eq!(code, 201, "{ep}");
    let (code, published) = api
        .post(
            "/events",
            json!({"type": "order.created", "data": {"blob": "x".repeat(60 * 1024)}}),
        )
        .await;
    assert_eq!(code, 202, "{published}");
    let delivery = published["deliveries"][0].as_str().unwrap();
    let d = api.wait_status(delivery, "failed", 10).await;
    assert_eq!(
        d["attempt_count"], 1,
        "no retry of an impossible render: {d}"
    );
    let attempt = &d["attempts"][0];
    assert_eq!(attempt["error_kind"], "template", "{attempt}");
    let why = attempt["error_message"].as_str().unwrap();
    assert!(why.contains("renders to more than 131072 bytes"), "{why}");
    // A small event still goes out through the same template.
    let (_, small) = api
        .post(
            "/events",
            json!({"type": "order.created", "data": {"n": 1}}),
        )
        .await;
    api.wait_status(small["deliveries"][0].as_str().unwrap(), "succeeded", 10)
        .await;
    assert_eq!(rx.count(), 1, "the impossible render sent nothing");
}

#[tokio::test]
async fn samples_and_a_shops_event_types_are_bounded() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let (code, e) = api
        .post(
            "/event-types",
            json!({"name": "blob.made", "sample": {"blob": "x".repeat(70 * 1024)}}),
        )
        .await;
    assert_eq!(code, 422, "{e}");
    assert_eq!(e["error"]["field"], "sample");
    assert!(e["error"]["message"].as_str().unwrap().contains("65536"));

    // A thousand types discovered in one batch fill the catalog…
    let batch: Vec<_> = (0..1000)
        .map(|i| json!({"type": format!("custom.kind{i}"), "data": {"i": i}}))
        .collect();
    let (code, e) = api.post("/events/batch", json!(batch)).await;
    assert_eq!(code, 202, "{e}");
    // …so a new one is refused, naming the event, on publish and in the catalog.
    let (code, e) = api
        .post(
            "/events/batch",
            json!([{"type": "custom.kind1", "data": {}}, {"type": "custom.new", "data": {}}]),
        )
        .await;
    assert_eq!(code, 422, "{e}");
    assert_eq!(e["error"]["field"], "[1].type");
    let (code, e) = api
        .post("/events", json!({"type": "custom.other", "data": {}}))
        .await;
    assert_eq!(code, 422, "{e}");
    assert_eq!(e["error"]["field"], "type");
    let (code, e) = api
        .post("/event-types", json!({"name": "custom.made", "sample": {}}))
        .await;
    assert_eq!(code, 422, "{e}");
    assert_eq!(e["error"]["field"], "name");
    // Known types still publish.
    let (code, e) = api
        .post("/events", json!({"type": "custom.kind7", "data": {}}))
        .await;
    assert_eq!(code, 202, "{e}");
}

#[tokio::test]
async fn webhooks_turned_off_hold_what_waits_refuse_retries_and_tests_and_resume_when_on() {
    let app = TestApp::spawn().await;
    let (shop, key) = app.api_shop().await;
    let api = app.api(&key);
    let system = Service::system();
    let rx = Receiver::start(answer(500)).await;
    let (_, ep) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/"), "retry": {"policy": "schedule", "delays_s": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}}),
        )
        .await;
    let endpoint = ep["id"].as_str().unwrap().to_string();
    let mut deliveries = Vec::new();
    for i in 0..3 {
        let (_, p) = api
            .post(
                "/events",
                json!({"type": "order.created", "data": {"i": i}}),
            )
            .await;
        deliveries.push(p["deliveries"][0].as_str().unwrap().to_string());
    }
    // Each has failed once and waits to retry.
    rx.wait_for(3, 10).await;
    for d in &deliveries {
        api.wait_status(d, "retrying", 10).await;
    }

    app.service
        .set_webhooks_enabled(&system, &shop, false)
        .await
        .unwrap();
    // An attempt already on the wire may still land; nothing starts after.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = rx.count();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rx.count(), sent, "nothing goes out while webhooks are off");
    for d in &deliveries {
        let view = app.service.get_delivery(&system, &shop, d).await.unwrap();
        assert_eq!(view.status, "held", "{view:?}");
    }

    // Retries, bulk retries and test events are refused, saying why.
    let off = |r: Result<_, app::model::ServiceError>| {
        let e = r.expect_err("refused");
        assert_eq!(e.status(), 403, "{e}");
        assert!(e.to_string().contains("not enabled"), "{e}");
    };
    off(app
        .service
        .retry_delivery(&system, &shop, &deliveries[0])
        .await
        .map(drop));
    off(
        Backend::act_on_deliveries(&app.service, &system, &shop, &deliveries, false)
            .await
            .map(drop),
    );
    off(
        Backend::bulk_retry(&app.service, &system, &shop, &Default::default())
            .await
            .map(drop),
    );
    off(app
        .service
        .send_test(&system, &shop, &endpoint, None)
        .await
        .map(drop));
    assert_eq!(rx.count(), sent);

    // On again: the held deliveries resume and are delivered.
    rx.set(answer(200));
    app.service
        .set_webhooks_enabled(&system, &shop, true)
        .await
        .unwrap();
    for d in &deliveries {
        api.wait_status(d, "succeeded", 10).await;
    }
}

#[tokio::test]
async fn a_publish_whose_producer_hangs_up_is_delivered_as_promptly_as_any() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    api.post("/endpoints", json!({"url": rx.url("/")})).await;
    // Warm: the shop's publish configuration is cached, so a publish goes straight to commit.
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    api.wait_status(p["deliveries"][0].as_str().unwrap(), "succeeded", 10)
        .await;

    // Sixty producers send a publish and hang up 0–20 ms later, mid-commit for some.
    let mut producers = Vec::new();
    for i in 0..60u64 {
        let addr = app.addr;
        let key = key.clone();
        producers.push(tokio::spawn(async move {
            let body = format!(r#"{{"type": "order.created", "data": {{"i": {i}}}}}"#);
            let request = format!(
                "POST /api/v1/events HTTP/1.1\r\nhost: herald\r\nauthorization: Bearer {key}\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            conn.write_all(request.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_micros(i * 333)).await;
            drop(conn);
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    let hung_up = tokio::time::Instant::now();
    // Whatever was committed is delivered within the usual latency (no later publish wakes
    // anything: the work after a commit ran although its caller was gone).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deadline = hung_up + Duration::from_secs(2);
    loop {
        let (_, list) = api.get("/deliveries?limit=100").await;
        let committed = list["items"].as_array().map_or(0, Vec::len);
        if rx.count() == committed {
            assert!(committed > 1, "some hung-up publishes were committed");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{committed} committed, {} delivered within 2 s",
            rx.count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn wrong_passwords_from_one_address_do_not_lock_the_user_out_from_another() {
    let (app, _dir) = app_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let sign_in = |from: &'static str, password: &'static str| {
        let client = app.client();
        let url = app.url("/login");
        async move {
            let resp = client
                .post(url)
                .header("x-forwarded-for", from)
                .form(&[
                    ("email", ADMIN_EMAIL),
                    ("password", password),
                    ("next", "/"),
                ])
                .send()
                .await
                .unwrap();
            resp.headers()["location"].to_str().unwrap().to_string()
        }
    };
    let mut throttled = false;
    for _ in 0..30 {
        let landing = sign_in("198.51.100.7", "wrong-password").await;
        assert!(landing.starts_with("/login?error="), "{landing}");
        throttled |= landing.contains("throttled");
    }
    assert!(throttled, "the guessing address is throttled");
    let landing = sign_in("203.0.113.9", ADMIN_PASSWORD).await;
    assert!(
        !landing.starts_with("/login"),
        "the right password from elsewhere signs in: {landing}"
    );
}

#[tokio::test]
async fn moving_an_endpoint_to_another_origin_requires_its_credentials_again() {
    let app = TestApp::spawn().await;
    let (_, key) = app.api_shop().await;
    let api = app.api(&key);
    let (old, new) = (Receiver::ok().await, Receiver::ok().await);
    let (_, ep) = api
        .post(
            "/endpoints",
            json!({"url": old.url("/hook"), "basic_auth": {"username": "u", "password": "p"},
                   "headers": {"X-Token": "t0ken"}}),
        )
        .await;
    let id = ep["id"].as_str().unwrap();
    // Another path on the same origin keeps them.
    let (code, e) = api
        .patch(
            &format!("/endpoints/{id}"),
            json!({"url": old.url("/other")}),
        )
        .await;
    assert_eq!(code, 200, "{e}");
    // Another port is another origin: refused, naming what would go along, nothing written.
    let (code, e) = api
        .patch(
            &format!("/endpoints/{id}"),
            json!({"url": new.url("/hook")}),
        )
        .await;
    assert_eq!(code, 422, "{e}");
    assert_eq!(e["error"]["field"], "url");
    let why = e["error"]["message"].as_str().unwrap();
    assert!(
        why.contains("basic_auth") && why.contains("headers"),
        "{why}"
    );
    let (_, now) = api.get(&format!("/endpoints/{id}")).await;
    assert_eq!(now["url"], old.url("/other"));
    // Only the password given again: the headers still refuse it.
    let (code, e) = api
        .patch(
            &format!("/endpoints/{id}"),
            json!({"url": new.url("/hook"), "basic_auth": {"username": "u", "password": "p2"}}),
        )
        .await;
    assert_eq!(code, 422, "{e}");
    // Both given again (the headers removed): moved, and what goes out is what was given.
    let (code, e) = api
        .patch(
            &format!("/endpoints/{id}"),
            json!({"url": new.url("/hook"), "basic_auth": {"username": "u", "password": "p2"},
                   "headers": {}}),
        )
        .await;
    assert_eq!(code, 200, "{e}");
    let (code, e) = api.post(&format!("/endpoints/{id}/test"), json!({})).await;
    assert!(code < 300, "{e}");
    let got = new.wait_for(1, 10).await;
    assert_eq!(got[0].headers["authorization"], "Basic dTpwMg==");
    assert!(!got[0].headers.contains_key("x-token"));
    assert_eq!(old.count(), 0);
}

/// Reads until the server closes the connection (`Ok`) or `within` passes (`Err`).
async fn closed_within(conn: &mut tokio::net::TcpStream, within: Duration) -> Result<String, ()> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return Err(()),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_idle_and_greedy_connections_are_closed() {
    let (app, _dir) = app_with(|c| {
        c.header_timeout_seconds = 1;
        c.request_timeout_seconds = 1;
    })
    .await;
    // A header line now and then: closed once the headers are a second late.
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let drip = async {
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if slow
                .write_all(format!("x-drip-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let started = std::time::Instant::now();
    drip.await;
    assert!(
        closed_within(&mut slow, Duration::from_secs(1))
            .await
            .is_ok(),
        "the slow-header connection was closed"
    );
    assert!(started.elapsed() < Duration::from_secs(6));

    // Idle after a response: closed too.
    let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: herald\r\n\r\n")
        .await
        .unwrap();
    let answered = closed_within(&mut idle, Duration::from_secs(4)).await;
    let answered = answered.expect("the idle keep-alive connection was closed");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // A body that never finishes: 408 once the request has taken a second.
    let (_, key) = app.api_shop().await;
    let mut greedy = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    greedy
        .write_all(
            format!(
                "POST /api/v1/events HTTP/1.1\r\nhost: herald\r\nauthorization: Bearer {key}\r\n\
                 content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"type\": "
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(4), greedy.read(&mut buf))
        .await
        .expect("answered within the request timeout")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
}

#[tokio::test]
async fn a_key_holds_a_bounded_number_of_activity_streams_of_its_own_shop() {
    let (app, _dir) = app_with(|c| c.streams_per_client = 2).await;
    let (_, key) = app.api_shop().await;
    let (_, other_key) = app.api_shop().await;
    let open = |key: String| {
        let url = app.url("/api/v1/activity");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
        }
    };
    let mut first = open(key.clone()).await;
    assert_eq!(first.status(), 200);
    let second = open(key.clone()).await;
    assert_eq!(second.status(), 200);
    let third = open(key.clone()).await;
    assert_eq!(third.status(), 429);
    let e: serde_json::Value = third.json().await.unwrap();
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 2"));
    // Another key is not held back by this one's streams.
    assert_eq!(open(other_key.clone()).await.status(), 200);

    // Each stream hears its own shop only.
    app.api(&other_key)
        .post(
            "/events",
            json!({"type": "order.created", "id": "evt_other", "data": {}}),
        )
        .await;
    app.api(&key)
        .post(
            "/events",
            json!({"type": "order.created", "id": "evt_mine", "data": {}}),
        )
        .await;
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), first.chunk())
            .await
            .expect("activity arrives")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        text.contains("evt_mine") && !text.contains("evt_other"),
        "{text}"
    );
}

#[tokio::test]
async fn viewers_see_urls_without_their_query_and_errors_never_quote_it() {
    let app = TestApp::spawn().await;
    let (shop, key) = app.api_shop().await;
    let api = app.api(&key);
    let (_, ep) = api
        .post(
            "/endpoints",
            json!({"url": "http://127.0.0.1:9/hook?token=s3cret",
                   "retry": {"policy": "schedule", "delays_s": []}}),
        )
        .await;
    let id = ep["id"].as_str().unwrap();
    let viewer = app::model::Principal {
        user_id: "usr_viewer".into(),
        email: "viewer@example.com".into(),
        operator: false,
        memberships: vec![app::model::Membership {
            shop_id: shop.clone(),
            shop_name: "API shop".into(),
            role: app::model::ShopRole::Viewer,
        }],
    };
    let seen = app.service.get_endpoint(&viewer, &shop, id).await.unwrap();
    assert_eq!(seen.url, "http://127.0.0.1:9/hook");
    let listed = Backend::list_endpoints(&app.service, &viewer, &shop)
        .await
        .unwrap();
    assert_eq!(listed[0].url, "http://127.0.0.1:9/hook");
    // Owners (and the key) still see the whole URL.
    let (_, full) = api.get(&format!("/endpoints/{id}")).await;
    assert_eq!(full["url"], "http://127.0.0.1:9/hook?token=s3cret");

    // Nothing listens on port 9: the recorded transport error names the URL without its query.
    let (_, p) = api
        .post("/events", json!({"type": "order.created", "data": {}}))
        .await;
    let d = api
        .wait_status(p["deliveries"][0].as_str().unwrap(), "failed", 10)
        .await;
    let why = d["attempts"][0]["error_message"].as_str().unwrap();
    assert!(why.contains("127.0.0.1:9/hook"), "{why}");
    assert!(!why.contains("s3cret"), "{why}");
    assert!(!d["last_error"].to_string().contains("s3cret"), "{d}");
}
