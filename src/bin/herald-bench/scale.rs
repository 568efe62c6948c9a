//! `make bench-scale`: Herald with a million deliveries. Publishes them to a disabled
//! endpoint (held), times every API list and panel page on the full queue, re-enables the
//! endpoint and times the drain, measures the disk each delivered event takes, then a bulk
//! retry of all of them with a deactivation and a resume in the middle, with the longest hold
//! of the database's writer meanwhile; then the single-event publish figure. On SQLite, and
//! on PostgreSQL when `HERALD_TEST_POSTGRES` names a server. Writes `target/bench/scale.json`.

use super::*;

/// Each list or page is fetched this many times; the median counts.
const FETCHES: usize = 3;

/// The API lists timed on the full queue (`{ep}` is the endpoint's id).
const API_LISTS: &[&str] = &[
    "/endpoints",
    "/endpoints/{ep}",
    "/deliveries",
    "/deliveries?status=held",
    "/deliveries?status=succeeded",
    "/deliveries?channel=orders",
    "/deliveries?endpoint_id={ep}",
    "/deliveries?event_type=order.created",
    "/channels",
    "/alerts",
];

/// The panel pages timed on the full queue (`{shop}`, `{ep}` as above).
const PAGES: &[&str] = &[
    "/",
    "/shops/{shop}",
    "/shops/{shop}/endpoints",
    "/shops/{shop}/endpoints/{ep}",
    "/shops/{shop}/channels",
    "/shops/{shop}/catalog",
    "/shops/{shop}/queue",
    "/shops/{shop}/queue?status=failed",
    "/shops/{shop}/queue?channel=orders",
    "/shops/{shop}/logs",
    "/shops/{shop}/activity",
    "/shops/{shop}/alerts",
    "/shops/{shop}/settings",
    "/shops/{shop}/members",
    "/admin/shops",
    "/admin/nodes",
];

/// The writer-hold histogram's buckets from `/metrics`: (upper bound in s, count).
fn hold_buckets(metrics: &str) -> Vec<(f64, u64)> {
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("herald_store_writer_hold_seconds_bucket{le=\"")?;
            let (le, count) = rest.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The longest writer hold between two snapshots, as the smallest bucket bound that holds
/// every hold since the first: "≤ 5 ms". `None` when the store has no such figure.
fn longest_hold(before: &[(f64, u64)], after: &[(f64, u64)]) -> Option<f64> {
    let total = after
        .last()?
        .1
        .saturating_sub(before.last().map_or(0, |b| b.1));
    if total == 0 {
        return None;
    }
    after
        .iter()
        .zip(before.iter().map(|b| b.1).chain(std::iter::repeat(0)))
        .find(|((_, a), b)| a.saturating_sub(*b) == total)
        .map(|((le, _), _)| *le)
}

fn hold_text(le: Option<f64>) -> String {
    match le {
        None => "n/a".into(),
        Some(le) if le.is_infinite() => "> 10 s".into(),
        Some(le) => format!("≤ {} ms", le * 1000.0),
    }
}

/// One store's run: figures as JSON.
struct Run<'a> {
    b: Bench,
    panel: reqwest::Client,
    shop: String,
    endpoint: String,
    pid: u32,
    dir: &'a std::path::Path,
    /// The PostgreSQL database's URL, or none for SQLite.
    pg: Option<String>,
}

impl Run<'_> {
    /// A gauge of `/metrics`, e.g. `herald_queue_depth{status="held"}`.
    async fn gauge(&self, series: &str) -> f64 {
        metric_value(&self.b.metrics().await, series)
    }

    async fn holds(&self) -> Vec<(f64, u64)> {
        hold_buckets(&self.b.metrics().await)
    }

    async fn set_enabled(&self, enabled: bool) -> f64 {
        let start = Instant::now();
        let r = self
            .b
            .client
            .patch(format!(
                "{}/api/v1/endpoints/{}",
                self.b.herald, self.endpoint
            ))
            .bearer_auth(&self.b.key)
            .json(&json!({ "enabled": enabled }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "enable={enabled}: {}", r.status());
        start.elapsed().as_secs_f64() * 1000.0
    }

    /// The database's size: its files (SQLite) or `pg_database_size`.
    async fn disk_bytes(&self) -> u64 {
        match &self.pg {
            None => db_bytes(self.dir),
            Some(url) => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let n: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                n as u64
            }
        }
    }

    /// Publishes `n` events labelled `orders`, 1,000 per batch, 8 batches in flight.
    async fn publish(&self, n: usize) -> f64 {
        let start = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let client = self.b.client.clone();
            let url = format!("{}/api/v1/events/batch", self.b.herald);
            let key = self.b.key.clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let first = next.fetch_add(1000, Ordering::Relaxed);
                    if first >= n as u64 {
                        break;
                    }
                    let last = (first + 1000).min(n as u64);
                    let batch: Vec<Value> = (first..last)
                        .map(|i| {
                            let mut e = order_created(i);
                            e["channels"] = json!(["orders"]);
                            e
                        })
                        .collect();
                    post_batch(&client, &url, &key, &batch).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        (n as f64 / start.elapsed().as_secs_f64()).round()
    }

    /// Waits until the held gauge reaches `n` (or `limit` passes).
    async fn wait_held(&self, n: f64, limit: Duration) {
        let start = Instant::now();
        while self.gauge("herald_queue_depth{status=\"held\"}").await < n {
            if start.elapsed() > limit {
                eprintln!("  held did not reach {n} within {limit:?}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The median time of `FETCHES` fetches of a URL, in ms (the whole body read).
    async fn time(&self, client: &reqwest::Client, url: &str, bearer: bool) -> f64 {
        let mut took = Vec::new();
        for _ in 0..FETCHES {
            let mut req = client.get(url);
            if bearer {
                req = req.bearer_auth(&self.b.key);
            }
            let start = Instant::now();
            let r = req.send().await.unwrap();
            let status = r.status();
            let _ = r.bytes().await;
            took.push(start.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success() {
                eprintln!("  {url}: {status}");
            }
        }
        took.sort_by(f64::total_cmp);
        (took[took.len() / 2] * 10.0).round() / 10.0
    }

    /// Every API list and page timed: (all as JSON, the slowest "name: ms").
    async fn pages(&self) -> (Value, (String, f64)) {
        let fill = |p: &str| {
            p.replace("{shop}", &self.shop)
                .replace("{ep}", &self.endpoint)
        };
        let mut all = serde_json::Map::new();
        let mut slowest = (String::new(), 0.0);
        for p in API_LISTS {
            let path = fill(p);
            let url = format!("{}/api/v1{path}", self.b.herald);
            let ms = self.time(&self.b.client, &url, true).await;
            let name = format!("GET /api/v1{path}");
            if ms > slowest.1 {
                slowest = (name.clone(), ms);
            }
            all.insert(name, json!(ms));
        }
        for p in PAGES {
            let path = fill(p);
            let url = format!("{}{path}", self.b.herald);
            let ms = self.time(&self.panel, &url, false).await;
            let name = format!("page {path}");
            if ms > slowest.1 {
                slowest = (name.clone(), ms);
            }
            all.insert(name, json!(ms));
        }
        (Value::Object(all), slowest)
    }

    /// Posts a bulk retry of every succeeded delivery: (ms to answer, how many it retried).
    async fn bulk_retry(&self) -> (f64, u64) {
        let start = Instant::now();
        let v = self
            .b
            .post("/deliveries/retry", &json!({"status": "succeeded"}))
            .await;
        (
            start.elapsed().as_secs_f64() * 1000.0,
            v["retried"].as_u64().unwrap_or(0),
        )
    }
}

/// A client signed in to the panel as the operator the bench creates.
async fn panel_client(herald: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::ORIGIN, herald.parse().unwrap());
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    let r = client
        .post(format!("{herald}/login"))
        .form(&[
            ("email", "admin@herald.local"),
            ("password", "bench-password-1"),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER, "sign-in");
    assert_eq!(r.headers()["location"], "/", "sign-in succeeds");
    client
}

/// The bench shop's id, from the operator's shop list.
async fn shop_id(panel: &reqwest::Client, herald: &str) -> String {
    let html = panel
        .get(format!("{herald}/admin/shops"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html
        .find("/shops/shp_")
        .expect("the shop list links the shop")
        + "/shops/".len();
    html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The million-row run on one store; `pg` is a fresh PostgreSQL database's URL, or none for
/// SQLite in a temporary directory.
async fn scale_run(
    herald_bin: &str,
    client: &reqwest::Client,
    receiver: &str,
    pg: Option<String>,
    n: usize,
) -> Value {
    let store = if pg.is_some() { "PostgreSQL" } else { "SQLite" };
    let (b, mut children, dir) = match &pg {
        None => {
            let (b, child, dir) = launch(herald_bin, client, receiver, &[]).await;
            (b, vec![child], dir)
        }
        Some(url) => launch_on(herald_bin, client, receiver, &[], url, 1, None).await,
    };
    let pid = children[0].id();
    let list = b
        .client
        .get(format!("{}/api/v1/endpoints", b.herald))
        .bearer_auth(&b.key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let endpoint = list["items"][0]["id"].as_str().unwrap().to_string();
    let panel = panel_client(&b.herald).await;
    let shop = shop_id(&panel, &b.herald).await;
    let run = Run {
        b,
        panel,
        shop,
        endpoint,
        pid,
        dir: dir.path(),
        pg,
    };
    println!("  {store}: {n} events to one disabled endpoint");
    run.set_enabled(false).await;
    let disk_empty = run.disk_bytes().await;
    let publish_rate = run.publish(n).await;
    run.wait_held(n as f64, Duration::from_secs(120)).await;
    let disk_queued = run.disk_bytes().await;
    let rss_queued = rss_kib(run.pid);
    println!(
        "    published {publish_rate} events/s; queued: {} MiB on disk, RSS {} MiB",
        mib(disk_queued),
        mib(rss_queued * 1024)
    );
    let (held_pages, held_slowest) = run.pages().await;
    println!(
        "    {n} held: slowest list or page {} ({} ms)",
        held_slowest.0, held_slowest.1
    );

    // Resume and drain.
    run.b.reset_receiver().await;
    let h0 = run.holds().await;
    let drain_start = Instant::now();
    let enable_ms = run.set_enabled(true).await;
    run.b
        .wait_received(n as u64, Duration::from_secs(900))
        .await;
    let drain = (n as f64 / drain_start.elapsed().as_secs_f64()).round();
    let resume_hold = longest_hold(&h0, &run.holds().await);
    println!(
        "    resumed (answered in {enable_ms:.1} ms) and drained at {drain} deliveries/s; \
         longest writer hold {}",
        hold_text(resume_hold)
    );
    // The outcomes of the last attempts are written after their receipt.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The receiver answers every request 200 at once: anything past n was sent again.
    let received = run.b.receiver_stats().await["count"].as_u64().unwrap_or(0);
    let resent = received.saturating_sub(n as u64);
    println!("    received {received} requests for {n} deliveries ({resent} sent again)");
    let disk_delivered = run.disk_bytes().await;
    let per_event = (disk_delivered.saturating_sub(disk_empty)) as f64 / n as f64;
    let wal = match &run.pg {
        None => std::fs::metadata(run.dir.join("herald.db-wal")).map_or(0, |m| m.len()),
        Some(_) => 0,
    };
    println!(
        "    delivered: {} MiB on disk (of which the WAL {} MiB), {per_event:.0} B per delivered event",
        mib(disk_delivered),
        mib(wal)
    );
    let (done_pages, done_slowest) = run.pages().await;
    println!(
        "    {n} succeeded: slowest list or page {} ({} ms)",
        done_slowest.0, done_slowest.1
    );

    // A bulk retry of every one, a deactivation and a resume while it goes.
    let h1 = run.holds().await;
    let retry_start = Instant::now();
    let (retry_ms, retried) = run.bulk_retry().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let disable_ms = run.set_enabled(false).await;
    run.wait_held(1.0, Duration::from_secs(30)).await;
    let held_after = run.gauge("herald_queue_depth{status=\"held\"}").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    run.set_enabled(true).await;
    run.b
        .wait_received(2 * n as u64, Duration::from_secs(900))
        .await;
    let second_drain = (n as f64 / retry_start.elapsed().as_secs_f64()).round();
    let bulk_hold = longest_hold(&h1, &run.holds().await);
    println!(
        "    bulk retry of {retried} answered in {retry_ms:.1} ms; disabled mid-way \
         ({disable_ms:.1} ms, {held_after} held), resumed, all delivered again at \
         {second_drain}/s; longest writer hold {}",
        hold_text(bulk_hold)
    );
    let peak = peak_rss_kib(run.pid);
    println!("    peak RSS {} MiB", mib(peak * 1024));
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    // HERALD_BENCH_KEEP=1 keeps SQLite's database for a look inside (sqlite3's dbstat).
    if std::env::var_os("HERALD_BENCH_KEEP").is_some() {
        println!("    kept {}", dir.keep().display());
    }
    let slowest = if held_slowest.1 >= done_slowest.1 {
        held_slowest
    } else {
        done_slowest
    };
    let longest = match (resume_hold, bulk_hold) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    json!({
        "store": store,
        "events": n,
        "publish_events_per_s": publish_rate,
        "disk_queued_bytes": disk_queued,
        "disk_delivered_bytes": disk_delivered,
        "disk_per_delivered_event_bytes": per_event.round(),
        "rss_queued_mib": mib(rss_queued * 1024),
        "peak_rss_mib": mib(peak * 1024),
        "pages_held_ms": held_pages,
        "pages_succeeded_ms": done_pages,
        "slowest": {"name": slowest.0, "ms": slowest.1},
        "resume_answer_ms": enable_ms,
        "drain_per_s": drain,
        "resent": resent,
        "bulk_retry": {"answer_ms": retry_ms, "retried": retried, "deactivate_ms": disable_ms,
                       "second_drain_per_s": second_drain},
        "longest_writer_hold": hold_text(longest),
        "longest_writer_hold_s": longest,
    })
}

/// Events published before the single-publish figure is measured.
const WARM_UP_EVENTS: usize = 20_000;

/// Single-event publishing at 32 keep-alive clients on a fresh SQLite Herald whose endpoint
/// holds what it gets, timed after [`WARM_UP_EVENTS`] (`HERALD_SQLITE_SYNCHRONOUS=full`, the
/// default: a 202 once on disk).
async fn single_publish_figure(
    herald_bin: &str,
    client: &reqwest::Client,
    receiver: &str,
) -> Value {
    let (b, mut herald, _dir) = launch(herald_bin, client, receiver, &[]).await;
    b.hold_deliveries().await;
    // Steady state, as a running Herald publishes: the first events (not counted) open the
    // connections and grow the new database's WAL file to its working size.
    b.single_publish(WARM_UP_EVENTS, 32).await;
    let r = b.single_publish(60_000, 32).await;
    let _ = herald.kill();
    let _ = herald.wait();
    r
}

/// A fresh database on the PostgreSQL server at `server`.
async fn fresh_pg_database(server: &str) -> String {
    use sqlx::Connection;
    let name = format!("herald_scale_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .expect("the PostgreSQL server answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("a bench database is created");
    format!(
        "{}/{name}",
        server.rsplit_once('/').map_or(server, |(r, _)| r)
    )
}

/// `herald-bench --only scale`: both stores, then the table (`--store postgres`: PostgreSQL
/// alone, when only its figures changed).
pub async fn run(
    herald_bin: &str,
    client: &reqwest::Client,
    receiver: &str,
    events: usize,
    only_postgres: bool,
) {
    println!("Herald at scale: {events} deliveries (Herald, the receiver and the publisher share the machine's cores)");
    let (single, sqlite) = if only_postgres {
        (Value::Null, Value::Null)
    } else {
        let single = single_publish_figure(herald_bin, client, receiver).await;
        println!(
            "  single-event publish, 32 clients: {} events/s, p99 {} ms",
            single["events_per_s"], single["p99_ms"]
        );
        let sqlite = scale_run(herald_bin, client, receiver, None, events).await;
        (single, sqlite)
    };
    let postgres = match std::env::var("HERALD_TEST_POSTGRES") {
        Ok(server) => {
            let url = fresh_pg_database(&server).await;
            scale_run(herald_bin, client, receiver, Some(url), events).await
        }
        Err(_) => {
            println!("  PostgreSQL: skipped (HERALD_TEST_POSTGRES is not set)");
            Value::Null
        }
    };
    let cell = |v: &Value, f: &dyn Fn(&Value) -> String| {
        if v.is_null() {
            "—".to_string()
        } else {
            f(v)
        }
    };
    let rows: Vec<(&str, String, String)> = vec![
        (
            "single-event publish, 32 clients (SQLite)",
            cell(&single, &|v| {
                format!("{}/s, p99 {} ms", v["events_per_s"], v["p99_ms"])
            }),
            "—".into(),
        ),
        (
            "disk per delivered event",
            cell(&sqlite, &|v| {
                format!("{} B", v["disk_per_delivered_event_bytes"])
            }),
            cell(&postgres, &|v| {
                format!("{} B", v["disk_per_delivered_event_bytes"])
            }),
        ),
        (
            "peak RSS, queued then drained",
            cell(&sqlite, &|v| format!("{} MiB", v["peak_rss_mib"])),
            cell(&postgres, &|v| format!("{} MiB", v["peak_rss_mib"])),
        ),
        (
            "slowest page or API list",
            cell(&sqlite, &|v| {
                format!(
                    "{} ms ({})",
                    v["slowest"]["ms"],
                    v["slowest"]["name"].as_str().unwrap_or("")
                )
            }),
            cell(&postgres, &|v| {
                format!(
                    "{} ms ({})",
                    v["slowest"]["ms"],
                    v["slowest"]["name"].as_str().unwrap_or("")
                )
            }),
        ),
        (
            "longest writer hold, bulk retry / resume / deactivation",
            cell(&sqlite, &|v| {
                v["longest_writer_hold"].as_str().unwrap_or("").to_string()
            }),
            cell(&postgres, &|_| "n/a (concurrent writers)".into()),
        ),
        (
            "drain of the backlog",
            cell(&sqlite, &|v| format!("{}/s", v["drain_per_s"])),
            cell(&postgres, &|v| format!("{}/s", v["drain_per_s"])),
        ),
        (
            "deliveries sent again while draining",
            cell(&sqlite, &|v| v["resent"].to_string()),
            cell(&postgres, &|v| v["resent"].to_string()),
        ),
    ];
    println!("\n| measure | SQLite | PostgreSQL |\n|---|---|---|");
    for (name, a, b) in &rows {
        println!("| {name} | {a} | {b} |");
    }
    let report = json!({
        "events": events,
        "single_publish_32_clients": single,
        "sqlite": sqlite,
        "postgres": postgres,
    });
    std::fs::create_dir_all("target/bench").unwrap();
    std::fs::write(
        "target/bench/scale.json",
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    println!("  report: target/bench/scale.json");
}
