//! `herald copy`: an installation moved to another store keeps everything — users and their
//! passwords, keys, endpoints with their sealed secrets, events, deliveries in their state,
//! attempts — and a copy never writes into a store that is not empty. On the SQLite pass it
//! copies SQLite to SQLite; on the PostgreSQL pass, SQLite to PostgreSQL.

mod common;

use common::receiver::Receiver;
use common::*;
use serde_json::json;
use std::process::Command;

fn copy(from: &str, to: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["copy", "--from", from, "--to", to])
        .env("HERALD_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn an_installation_copied_to_a_new_store_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let source_url = format!("sqlite://{}/source.db", dir.path().display());
    config.database_url = source_url.clone();
    let app = TestApp::start(config.clone()).await;
    let (shop, key) = app.api_shop().await;
    let api = app.api(&key);
    let rx = Receiver::ok().await;
    let (_, _live) = api
        .post(
            "/endpoints",
            json!({"url": rx.url("/live"), "description": "Live"}),
        )
        .await;
    let (code, paused) = api
        .post(
            "/endpoints",
            json!({
                "url": rx.url("/paused"),
                "headers": {"X-Token": "header-secret"},
                "basic_auth": {"username": "u", "password": "basic-secret"},
            }),
        )
        .await;
    assert_eq!(code, 201, "{paused}");
    let paused_id = paused["id"].as_str().unwrap().to_string();
    let (code, _) = api
        .patch(
            &format!("/endpoints/{paused_id}"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(code, 200);
    let (_, published) = api
        .post(
            "/events",
            json!({"type": "order.created", "channels": ["eu"], "data": {"total": 42}}),
        )
        .await;
    let deliveries: Vec<String> = published["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(deliveries.len(), 2);
    let sent = api.wait_status(&deliveries[0], "succeeded", 5).await;
    let held = &deliveries[1];
    api.wait_status(held, "held", 5).await;
    drop(app);

    // Into a new store: another SQLite file, or a fresh PostgreSQL database.
    let target_dir = tempfile::tempdir().unwrap();
    let target_url = database_url(target_dir.path());
    let out = copy(&source_url, &target_url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("deliveries: 2") && stdout.contains("attempts: 1"),
        "{stdout}"
    );

    // Herald on the copy (same secret key: the same data directory).
    config.database_url = target_url.clone();
    let copied = TestApp::start(config).await;
    assert!(copied
        .service
        .authenticate(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .unwrap()
        .is_some());
    let api = copied.api(&key);
    let (code, list) = api.get("/endpoints").await;
    assert_eq!(code, 200, "the API key works on the copy: {list}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
    let (_, d) = api.get(&format!("/deliveries/{}", deliveries[0])).await;
    assert_eq!(d["status"], "succeeded");
    assert_eq!(
        d["attempts"], sent["attempts"],
        "attempts copied as they were"
    );
    let (_, h) = api.get(&format!("/deliveries/{held}")).await;
    assert_eq!(h["status"], "held");
    assert_eq!(h["channels"], json!(["eu"]));
    // The held delivery goes once its endpoint is enabled, with the sealed secrets opened.
    let (code, _) = api
        .patch(&format!("/endpoints/{paused_id}"), json!({"enabled": true}))
        .await;
    assert_eq!(code, 200);
    api.wait_status(held, "succeeded", 5).await;
    let got = rx.requests();
    let last = got.last().unwrap();
    assert_eq!(last.headers["x-token"], "header-secret");
    assert!(last.headers["authorization"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    assert!(last.body.contains("\"total\":42"), "{}", last.body);
    let store = &copied.service.store;
    let shop = herald::ids::ShopId::from(shop.as_str());
    let old = store
        .attempts_of_delivery(&shop, &deliveries[0].as_str().into())
        .await
        .unwrap();
    let new = store
        .attempts_of_delivery(&shop, &held.as_str().into())
        .await
        .unwrap();
    assert!(
        new[0].id > old[0].id,
        "new attempts are numbered after the copied ones: {} then {}",
        old[0].id,
        new[0].id
    );
    drop(copied);

    // The copy is not empty now: a second copy into it is refused, and changes nothing.
    let again = copy(&source_url, &target_url);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn copy_refuses_what_is_not_a_store() {
    let out = copy("mysql://h/db", "sqlite://x.db");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--from") && err.contains("`mysql:`"), "{err}");
}
