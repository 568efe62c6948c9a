//! At-least-once across a crash: a Herald process killed mid-delivery loses nothing; the
//! next one delivers again once the lease runs out.

mod common;

use common::receiver::Receiver;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A Herald process, killed when dropped: a failing assertion leaves no server behind.
struct Herald(Child);

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_herald(db: &std::path::Path, port: u16) -> Herald {
    start_herald_with(db, port, &[])
}

fn start_herald_with(db: &std::path::Path, port: u16, env: &[(&str, String)]) -> Herald {
    let child = common::herald_cli(db)
        .arg("serve")
        // The allocator's setting is the server's own unless the test gives one.
        .env_remove("MIMALLOC_PURGE_DELAY")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HERALD_ADMIN_PASSWORD", "admin-password-1")
        .env("HERALD_ALLOW_PRIVATE_TARGETS", "1")
        .env("HERALD_LEASE_SECONDS", "1")
        .stdout(Stdio::null())
        .spawn()
        .expect("herald starts");
    Herald(child)
}

async fn wait_healthy(port: u16) {
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("herald did not become healthy");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the herald command line on the database in `dir`; returns its last line of output.
fn run_cli(dir: &std::path::Path, args: &[&str]) -> String {
    common::last_line(&common::herald_cli(dir).args(args).output().unwrap())
}

#[tokio::test]
async fn deliveries_ignore_proxy_variables() {
    // With HTTP_PROXY set, a client that honours it connects to the proxy, and the guarded
    // resolver never sees the target. Deliveries go straight to the target instead.
    let dir = tempfile::tempdir().unwrap();
    let shop = run_cli(
        dir.path(),
        &["shop", "create", "--name", "Proxy", "--enable-webhooks"],
    );
    let key = run_cli(
        dir.path(),
        &["api-key", "create", "--shop", &shop, "--name", "t"],
    );
    let target = Receiver::ok().await;
    let proxy = Receiver::ok().await;
    let port = free_port();
    let proxy_url = format!("http://{}", proxy.addr);
    let _herald = start_herald_with(
        dir.path(),
        port,
        &[
            ("HTTP_PROXY", proxy_url.clone()),
            ("http_proxy", proxy_url.clone()),
            ("HTTPS_PROXY", proxy_url.clone()),
            ("ALL_PROXY", proxy_url),
        ],
    );
    wait_healthy(port).await;
    let api = |path: &str| format!("http://127.0.0.1:{port}/api/v1{path}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let ep = client
        .post(api("/endpoints"))
        .bearer_auth(&key)
        .json(&json!({"url": target.url("/hook")}))
        .send()
        .await
        .unwrap();
    assert_eq!(ep.status(), 201);
    let published = client
        .post(api("/events"))
        .bearer_auth(&key)
        .json(&json!({"type": "order.created", "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 202);
    target.wait_for(1, 10).await;
    assert_eq!(proxy.count(), 0, "nothing went through the proxy");
}

#[tokio::test]
async fn a_process_killed_mid_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| run_cli(dir.path(), args);
    let shop = run(&["shop", "create", "--name", "Crash", "--enable-webhooks"]);
    let key = run(&["api-key", "create", "--shop", &shop, "--name", "t"]);

    // The first request hangs (the process dies while waiting for it); later ones succeed.
    let rx = Receiver::start(|n| {
        (
            200,
            vec![],
            "ok".into(),
            if n == 0 {
                Duration::from_secs(30)
            } else {
                Duration::ZERO
            },
        )
    })
    .await;
    let port = free_port();
    let first = start_herald(dir.path(), port);
    wait_healthy(port).await;
    let api = |path: &str| format!("http://127.0.0.1:{port}/api/v1{path}");
    let client = reqwest::Client::new();
    let ep: serde_json::Value = client
        .post(api("/endpoints"))
        .bearer_auth(&key)
        .json(&json!({"url": rx.url("/"), "timeout_ms": 1000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ep["id"].is_string(), "{ep}");
    let published: serde_json::Value = client
        .post(api("/events"))
        .bearer_auth(&key)
        .json(&json!({"type": "order.created", "data": {"n": 1}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let delivery = published["deliveries"][0].as_str().unwrap().to_string();
    rx.wait_for(1, 10).await;
    drop(first);

    let port2 = free_port();
    let second = start_herald(dir.path(), port2);
    wait_healthy(port2).await;
    let got = rx.wait_for(2, 15).await;
    assert_eq!(
        got[0].headers["webhook-id"], got[1].headers["webhook-id"],
        "the same event, again"
    );
    let url = format!("http://127.0.0.1:{port2}/api/v1/deliveries/{delivery}");
    let mut status = String::new();
    for _ in 0..100 {
        let d: serde_json::Value = client
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status = d["status"].as_str().unwrap_or_default().to_string();
        if status == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
    assert_eq!(status, "succeeded");
}

#[tokio::test]
async fn sigterm_ends_the_process_within_the_grace_with_activity_streams_open() {
    let dir = tempfile::tempdir().unwrap();
    let shop = run_cli(
        dir.path(),
        &["shop", "create", "--name", "Stop", "--enable-webhooks"],
    );
    let key = run_cli(
        dir.path(),
        &["api-key", "create", "--shop", &shop, "--name", "t"],
    );
    // An attempt that would hang far past the grace.
    let rx = Receiver::start(|_| (200, vec![], "ok".into(), Duration::from_secs(30))).await;
    let port = free_port();
    let mut herald = start_herald_with(
        dir.path(),
        port,
        &[("HERALD_SHUTDOWN_GRACE_SECONDS", "2".to_string())],
    );
    wait_healthy(port).await;
    let api = |path: &str| format!("http://127.0.0.1:{port}/api/v1{path}");
    let client = reqwest::Client::new();
    let ep = client
        .post(api("/endpoints"))
        .bearer_auth(&key)
        .json(&json!({"url": rx.url("/"), "timeout_ms": 30000}))
        .send()
        .await
        .unwrap();
    assert_eq!(ep.status(), 201);
    let mut streams = Vec::new();
    for _ in 0..3 {
        let s = client
            .get(api("/activity"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(s.status(), 200);
        streams.push(s);
    }
    let published: serde_json::Value = client
        .post(api("/events"))
        .bearer_auth(&key)
        .json(&json!({"type": "order.created", "data": {"n": 1}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let delivery = published["deliveries"][0].as_str().unwrap().to_string();
    rx.wait_for(1, 10).await;

    let started = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &herald.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = herald.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running {:?} after SIGTERM",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "it waited for the attempt"
    );
    drop(streams);

    // The unfinished attempt went back to the queue, not lost and not left leased.
    let (state, lease): (String, Option<i64>) = {
        let store = herald::store::Store::connect(&common::database_url(dir.path()))
            .await
            .unwrap();
        herald::with_raw_pool!(store, |pool, d| sqlx::query_as(
            &d.sql("SELECT status, lease_until FROM deliveries WHERE id = ?")
        )
        .bind(herald::ids::DeliveryId::from(delivery.as_str()))
        .fetch_one(pool)
        .await
        .unwrap())
    };
    assert_eq!((state.as_str(), lease), ("pending", None));
}

/// The environment the process `pid` runs with (Linux: `/proc/<pid>/environ`).
fn environment_of(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[tokio::test]
async fn the_server_gives_freed_memory_back_soon_unless_told_otherwise() {
    // `herald serve` starts itself again with mimalloc's purge delay set; the same process
    // (same id) then serves. A delay the operator set is kept as it is.
    for (given, expected) in [
        (None, "MIMALLOC_PURGE_DELAY=10"),
        (Some("250"), "MIMALLOC_PURGE_DELAY=250"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let env: Vec<(&str, String)> = given
            .map(|d| ("MIMALLOC_PURGE_DELAY", d.to_string()))
            .into_iter()
            .collect();
        let herald = start_herald_with(dir.path(), port, &env);
        wait_healthy(port).await;
        let env = environment_of(herald.0.id());
        let delays: Vec<&String> = env
            .iter()
            .filter(|v| v.starts_with("MIMALLOC_PURGE_DELAY="))
            .collect();
        assert_eq!(delays, [expected], "given {given:?}");
    }
}
