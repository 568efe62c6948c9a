//! Several nodes on one PostgreSQL database: a node killed with `kill -9` loses nothing, and
//! an endpoint's rate limit holds across nodes. These run in the PostgreSQL pass of
//! `make test` (`HERALD_TEST_POSTGRES`); on SQLite, where there is one node, they pass at once.

mod common;

use common::receiver::Receiver;
use serde_json::json;
use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A node, killed when dropped: a failing assertion leaves no server behind.
struct Node {
    child: Child,
    port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/api/v1{path}", self.port)
    }

    /// `kill -9`: no shutdown, nothing given back.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// The same key on every node: each must open the secrets the others sealed.
const SECRET_KEY: &str = "4242424242424242424242424242424242424242424242424242424242424242";

fn start_node(dir: &std::path::Path, name: &str, env: &[(&str, &str)]) -> Node {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = common::herald_cli(dir)
        .arg("serve")
        .env("HERALD_SECRET_KEY", SECRET_KEY)
        .env("HERALD_NODE_ID", name)
        .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HERALD_ADMIN_PASSWORD", "admin-password-1")
        .env("HERALD_ALLOW_PRIVATE_TARGETS", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .expect("herald starts");
    Node { child, port }
}

async fn wait_healthy(node: &Node) {
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{}/healthz", node.port)).await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node on port {} did not become healthy", node.port);
}

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let out = common::herald_cli(dir)
        .args(args)
        .env("HERALD_SECRET_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::last_line(&out)
}

/// The database the nodes share, as a test looks at it.
async fn store(dir: &std::path::Path) -> herald::store::Store {
    herald::store::Store::connect(&common::database_url(dir))
        .await
        .unwrap()
}

async fn scalar(store: &herald::store::Store, sql: &str) -> i64 {
    herald::with_raw_pool!(store, |pool, d| sqlx::query_scalar::<_, i64>(&d.sql(sql))
        .fetch_one(pool)
        .await
        .unwrap())
}

/// Nodes named `names` on the test's database, each healthy, and an API key of a shop with
/// webhooks; `None` on SQLite (one node).
async fn cluster(
    dir: &std::path::Path,
    names: &[&str],
    env: &[(&str, &str)],
) -> Option<(Vec<Node>, String)> {
    if !common::on_postgres() {
        eprintln!("several nodes need PostgreSQL: runs in the PostgreSQL pass");
        return None;
    }
    let nodes: Vec<Node> = names.iter().map(|n| start_node(dir, n, env)).collect();
    for n in &nodes {
        wait_healthy(n).await;
    }
    Some((nodes, shop_and_key(dir)))
}

/// Creates an endpoint through `node`.
async fn endpoint(client: &reqwest::Client, node: &Node, key: &str, body: serde_json::Value) {
    let ep = client
        .post(node.api("/endpoints"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ep.status(), 201);
}

/// Publishes `n` events (`{"i": i}`) going round the nodes, each answered 202.
async fn publish_round_robin(client: &reqwest::Client, nodes: &[Node], key: &str, n: usize) {
    for i in 0..n {
        let r = client
            .post(nodes[i % nodes.len()].api("/events"))
            .bearer_auth(key)
            .json(&json!({"type": "order.created", "data": {"i": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
}

/// A shop with webhooks and an API key; returns the key.
fn shop_and_key(dir: &std::path::Path) -> String {
    let shop = cli(
        dir,
        &["shop", "create", "--name", "Cluster", "--enable-webhooks"],
    );
    cli(dir, &["api-key", "create", "--shop", &shop, "--name", "t"])
}

/// Three nodes, thousands of events published round robin through all three, one node killed
/// mid-way: every event is delivered, none is left leased, and the events sent twice are no
/// more than the killed node held when it died.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_way_loses_nothing_and_repeats_only_what_it_held() {
    let dir = tempfile::tempdir().unwrap();
    // Short leases: the killed node's deliveries are sent by the others within seconds.
    let env = [("HERALD_LEASE_SECONDS", "2")];
    let Some((mut nodes, key)) = cluster(dir.path(), &["node-a", "node-b", "node-c"], &env).await
    else {
        return;
    };
    // A receiver that takes 20 ms per request: the nodes have deliveries in flight and read
    // ahead when one dies.
    let rx = Receiver::start(|_| (200, vec![], "ok".into(), Duration::from_millis(20))).await;
    let client = reqwest::Client::new();
    endpoint(&client, &nodes[0], &key, json!({"url": rx.url("/hook")})).await;

    const EVENTS: usize = 3000;
    // 24 producers publish one event per request, round robin over the nodes, as long as
    // node b lives; when it dies, what was meant for it goes through another node (the same
    // event id: accepted once, whichever node had it).
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b_dead = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let urls: Vec<String> = nodes.iter().map(|n| n.api("/events")).collect();
    let producers: Vec<_> = (0..24)
        .map(|_| {
            let (client, key, urls) = (client.clone(), key.clone(), urls.clone());
            let (next, b_dead) = (next.clone(), b_dead.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= EVENTS {
                        return;
                    }
                    let body = json!({"id": format!("evt_{i}"), "type": "order.created", "data": {"i": i}});
                    let mut node = i % 3;
                    loop {
                        if node == 1 && b_dead.load(std::sync::atomic::Ordering::SeqCst) {
                            node = 2 * (i % 2);
                        }
                        match client.post(&urls[node]).bearer_auth(&key).json(&body).send().await {
                            Ok(r) if r.status() == 202 || r.status() == 200 => break,
                            Ok(r) => panic!("event {i} through node {node}: {}", r.status()),
                            Err(_) if node == 1 => continue,
                            Err(e) => panic!("event {i} through node {node}: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    // Node b dies mid-way, with whatever it holds.
    while next.load(std::sync::atomic::Ordering::SeqCst) < EVENTS / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let store = store(dir.path()).await;
    let prefix: String = herald::with_raw_pool!(store, |pool, d| sqlx::query_scalar(
        &d.sql("SELECT lease_prefix FROM nodes WHERE id = 'node-b'")
    )
    .fetch_one(pool)
    .await
    .unwrap());
    b_dead.store(true, std::sync::atomic::Ordering::SeqCst);
    nodes[1].kill();
    let held = scalar(
        &store,
        &format!(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'delivering'
             AND lease_owner LIKE '{prefix}.%'"
        ),
    )
    .await;
    for p in producers {
        p.await.unwrap();
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let distinct = loop {
        let got = rx.requests();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for r in &got {
            let id = r.headers["webhook-id"].to_str().unwrap().to_string();
            *seen.entry(id).or_default() += 1;
        }
        if seen.len() == EVENTS {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {EVENTS} events delivered after 60 s",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Everything recorded: nothing left leased, every delivery succeeded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let unfinished = scalar(
            &store,
            "SELECT COUNT(*) FROM deliveries WHERE status != 'succeeded'",
        )
        .await;
        if unfinished == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unfinished} deliveries unfinished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let twice: usize = distinct.values().map(|n| n - 1).sum();
    eprintln!("node-b held {held} when killed; {twice} events were delivered twice");
    assert!(
        twice as i64 <= held,
        "{twice} repeats, more than the {held} the killed node held"
    );
    let rows = scalar(&store, "SELECT COUNT(*) FROM deliveries").await;
    assert_eq!(rows, EVENTS as i64, "one delivery per event");
}

/// Two nodes sending to one rate-limited endpoint send no faster together than its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_holds_across_two_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let Some((nodes, key)) = cluster(dir.path(), &["node-a", "node-b"], &[]).await else {
        return;
    };
    let rx = Receiver::ok().await;
    let client = reqwest::Client::new();
    const RATE: usize = 20;
    endpoint(
        &client,
        &nodes[0],
        &key,
        json!({"url": rx.url("/hook"), "rate_limit_per_second": RATE}),
    )
    .await;
    // Both nodes must know the other is alive before the work comes (their first heartbeats).
    tokio::time::sleep(Duration::from_millis(300)).await;
    const EVENTS: usize = 100;
    publish_round_robin(&client, &nodes, &key, EVENTS).await;
    let got = rx.wait_for(EVENTS, 30).await;
    let took = got.last().unwrap().at - got.first().unwrap().at;
    // A burst of one second's worth goes at once, the rest at the rate: at 20/s, 100 take
    // at least (100 - 20) / 20 = 4 s. Twice the rate would take 2 s.
    let floor = Duration::from_secs_f64((EVENTS - RATE) as f64 / RATE as f64 * 0.9);
    assert!(
        took >= floor,
        "{EVENTS} sent in {took:?}: faster than {RATE}/s (at least {floor:?})"
    );
}

/// A delivery read ahead by one node is cancelled through another: the holder takes it out of
/// its ready queue, and it is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_read_ahead_on_one_node_is_cancelled_through_another() {
    let dir = tempfile::tempdir().unwrap();
    // One attempt in flight per node at a time, each taking two seconds: time enough, on a
    // loaded machine too, for the cancel to reach the holder before it sends the delivery
    // (with one second it once started it first, in a full `make test`).
    let env = [("HERALD_ENDPOINT_CONCURRENCY", "2")];
    let Some((nodes, key)) = cluster(dir.path(), &["node-a", "node-b"], &env).await else {
        return;
    };
    let rx = Receiver::start(|_| (200, vec![], "ok".into(), Duration::from_secs(2))).await;
    let client = reqwest::Client::new();
    endpoint(&client, &nodes[0], &key, json!({"url": rx.url("/hook")})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut deliveries = Vec::new();
    for i in 0..8 {
        let r: serde_json::Value = client
            .post(nodes[i % 2].api("/events"))
            .bearer_auth(&key)
            .json(&json!({"type": "order.created", "data": {"i": i}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        deliveries.push(r["deliveries"][0].as_str().unwrap().to_string());
    }
    rx.wait_for(2, 5).await;
    // A delivery leased but not being sent: read ahead by its holder.
    let store = store(dir.path()).await;
    let sent: Vec<String> = rx.requests().iter().map(|r| r.body.clone()).collect();
    let mut target = None;
    for d in deliveries.iter().rev() {
        let (status, owner, event): (String, Option<String>, String) =
            herald::with_raw_pool!(store, |pool, q| sqlx::query_as(
                &q.sql("SELECT status, lease_owner, event_id FROM deliveries WHERE id = ?")
            )
            .bind(herald::ids::DeliveryId::from(d.as_str()))
            .fetch_one(pool)
            .await
            .unwrap());
        if status == "delivering" && !sent.iter().any(|b| b.contains(&event)) {
            target = owner.map(|o| (d.clone(), o));
            break;
        }
    }
    let (delivery, owner) = target.expect("a delivery read ahead");
    let holder: String = herald::with_raw_pool!(store, |pool, q| sqlx::query_scalar(
        &q.sql("SELECT id FROM nodes WHERE ? LIKE lease_prefix || '.%'")
    )
    .bind(&owner)
    .fetch_one(pool)
    .await
    .unwrap());
    let other = if holder == "node-a" {
        &nodes[1]
    } else {
        &nodes[0]
    };
    let r = client
        .post(other.api(&format!("/deliveries/{delivery}/cancel")))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (status.as_u16(), body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    // Everything else goes; the cancelled one never does.
    rx.wait_for(7, 30).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.count(), 7, "the cancelled delivery was never sent");
}

/// The activity feed of any node shows what every node does: an event published through one
/// node appears, with its attempt, on a stream opened on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_activity_of_every_node_shows_on_any_node() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let Some((nodes, key)) = cluster(dir.path(), &["node-a", "node-b"], &[]).await else {
        return;
    };
    let rx = Receiver::ok().await;
    let client = reqwest::Client::new();
    endpoint(&client, &nodes[0], &key, json!({"url": rx.url("/hook")})).await;
    let resp = client
        .get(nodes[0].api("/activity"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    // Node b learns that node a now has a listener (a's heartbeat and a wake-up say so).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = client
        .post(nodes[1].api("/events"))
        .bearer_auth(&key)
        .json(&json!({"id": "evt_through_b", "type": "order.created", "data": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(text.contains("event: event.published") && text.contains("event: attempt")) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("activity from node b arrives on node a: {text}"))
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("evt_through_b"), "{text}");
}

/// A node keeps what publishing needs of a shop in memory; a change made through another
/// node is seen by its next publish (the version check inside the publish transaction).
#[tokio::test]
async fn a_publish_on_one_node_sees_an_endpoint_created_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let Some((nodes, key)) = cluster(dir.path(), &["node-a", "node-b"], &[]).await else {
        return;
    };
    let client = reqwest::Client::new();
    let publish = |node: &Node| {
        client
            .post(node.api("/events"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"type": "order.created", "data": {}}))
            .send()
    };
    let first: serde_json::Value = publish(&nodes[1]).await.unwrap().json().await.unwrap();
    assert_eq!(
        first["deliveries"],
        serde_json::json!([]),
        "no endpoint yet"
    );
    let rx = common::receiver::Receiver::ok().await;
    endpoint(
        &client,
        &nodes[0],
        &key,
        serde_json::json!({"url": rx.url("/")}),
    )
    .await;
    let next: serde_json::Value = publish(&nodes[1]).await.unwrap().json().await.unwrap();
    assert_eq!(
        next["deliveries"].as_array().unwrap().len(),
        1,
        "node-b publishes to the endpoint node-a created: {next}"
    );
    rx.wait_for(1, 10).await;
}

/// Webhooks turned off through one node stop what the other node read ahead: it gives it
/// back (held) instead of sending it once its attempt in flight ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_turned_off_through_one_node_stop_what_another_read_ahead() {
    use leptos::server_fn::ServerFn as _;
    if !common::on_postgres() {
        eprintln!("several nodes need PostgreSQL: runs in the PostgreSQL pass");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // One attempt in flight per node, two seconds each: the rest is read ahead meanwhile.
    let env = [("HERALD_ENDPOINT_CONCURRENCY", "2")];
    let nodes: Vec<Node> = ["node-a", "node-b"]
        .iter()
        .map(|n| start_node(dir.path(), n, &env))
        .collect();
    for n in &nodes {
        wait_healthy(n).await;
    }
    let shop = cli(
        dir.path(),
        &["shop", "create", "--name", "Paused", "--enable-webhooks"],
    );
    let key = cli(
        dir.path(),
        &["api-key", "create", "--shop", &shop, "--name", "t"],
    );
    let rx = Receiver::start(|_| (200, vec![], "ok".into(), Duration::from_secs(2))).await;
    let client = reqwest::Client::new();
    endpoint(&client, &nodes[0], &key, json!({"url": rx.url("/hook")})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish_round_robin(&client, &nodes, &key, 8).await;
    // Each node is sending one; what else they leased waits in their ready queues.
    rx.wait_for(2, 10).await;

    // The operator turns the shop's webhooks off on node A.
    let origin = format!("http://127.0.0.1:{}", nodes[0].port);
    let operator = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = operator
        .post(format!("{origin}/login"))
        .header("origin", &origin)
        .form(&[
            ("email", "admin@herald.local"),
            ("password", "admin-password-1"),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let off = operator
        .post(format!("{origin}{}", app::api::SetWebhooks::PATH))
        .header("origin", &origin)
        .header("accept", "application/json")
        .form(&[("shop_id", shop.as_str()), ("enabled", "false")])
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 200, "{:?}", off.text().await);
    let sent = rx.count();
    // The attempts in flight end; nothing else starts, on either node.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rx.count(), sent, "nothing went out after the switch");
    let store = store(dir.path()).await;
    let held = scalar(
        &store,
        "SELECT COUNT(*) FROM deliveries WHERE status = 'held'",
    )
    .await;
    assert_eq!(held as usize, 8 - sent, "everything unsent is held");
}
