//! `make bench`: end-to-end throughput and latency of a release Herald on a fresh SQLite file,
//! delivering to a fast receiver in a separate process, beside the raw limit of a bare HTTP
//! client posting to the same receiver. Writes `target/bench/report.json`.
//!
//! Then a soak: a fresh Herald with a short retention under a steady publish rate, its
//! database size and RSS sampled over time, and the 1-endpoint burst again on it.
//!
//! Then, when `HERALD_TEST_POSTGRES` names a PostgreSQL server (`make bench` starts a private
//! one), the same burst on PostgreSQL with 1, 2 and 3 nodes sharing a fresh database, with the
//! CPU time Herald and PostgreSQL spent per delivery.
//!
//! Usage: `herald-bench [--events N] [--fan-events N] [--soak-seconds N] [--soak-rate N]
//! [--herald PATH] [--only publish|scale]`; `--only scale` is `make bench-scale` (see
//! `herald-bench/scale.rs`: a million deliveries, `--events` to change it);
//! `herald-bench receiver` is the receiver process it starts itself. `HERALD_BENCH_LOG` sets
//! Herald's log filter (default `warn`), e.g. `sqlx::query=debug` to time every statement.

#[path = "herald-bench/scale.rs"]
mod scale;

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What the receiver measured: how many requests, and publish→receipt latencies for those
/// carrying a `sent_at_us` stamp.
#[derive(Default)]
struct Stats {
    count: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

const STAMP: &[u8] = b"\"sent_at_us\":";

async fn receiver() {
    use axum::{body::Bytes, extract::State, routing::get, Router};
    async fn hook(State(s): State<Arc<Stats>>, body: Bytes) -> &'static str {
        s.count.fetch_add(1, Ordering::Relaxed);
        // Only latency-probe events carry the stamp.
        if let Some(i) = body.windows(STAMP.len()).position(|w| w == STAMP) {
            let digits: String = body[i + STAMP.len()..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .map(|b| *b as char)
                .collect();
            if let Ok(sent) = digits.parse::<u64>() {
                s.latencies_us
                    .lock()
                    .unwrap()
                    .push(now_us().saturating_sub(sent));
            }
        }
        "ok"
    }
    async fn stats(State(s): State<Arc<Stats>>) -> axum::Json<Value> {
        let mut l = s.latencies_us.lock().unwrap().clone();
        l.sort_unstable();
        axum::Json(json!({ "count": s.count.load(Ordering::Relaxed), "latencies_us": l }))
    }
    async fn reset(State(s): State<Arc<Stats>>) -> &'static str {
        s.count.store(0, Ordering::Relaxed);
        s.latencies_us.lock().unwrap().clear();
        "ok"
    }
    let app = Router::new()
        .route("/stats", get(stats))
        .route("/reset", axum::routing::post(reset))
        .fallback(axum::routing::post(hook))
        .with_state(Arc::new(Stats::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    axum::serve(listener, app).await.unwrap();
}

/// Kills the child processes when the bench ends, however it ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `kB` line of `/proc/<pid>/status`: `VmHWM` (peak RSS) or `VmRSS` (now).
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn peak_rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:")
}

fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

/// The database's size on disk: the file, its write-ahead log and shared memory.
fn db_bytes(dir: &std::path::Path) -> u64 {
    ["herald.db", "herald.db-wal", "herald.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = s.rsplit_once(") ")?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// CPU ticks of every PostgreSQL server process on the machine (the bench's own cluster).
fn postgres_ticks() -> u64 {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == "postgres")
                })
                .map(cpu_ticks)
                .sum()
        })
        .unwrap_or(0)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux unless configured otherwise).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU µs per delivery from tick counts.
fn us_per(ticks: u64, deliveries: u64) -> f64 {
    (ticks as f64 / clock_ticks() * 1e6 / deliveries.max(1) as f64).round()
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / 1_048_576.0 * 10.0).round() / 10.0
}

/// The event the throughput runs publish: about a hundred bytes of data, as a shop's order.
fn order_created(order_id: u64) -> Value {
    json!({"type": "order.created", "data": {"order_id": order_id,
        "total": {"amount": "149.90", "currency": "EUR"}}})
}

/// A series' value in a `/metrics` text (`name` with its labels), 0 when absent.
fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Posts one batch of events and checks it was accepted.
async fn post_batch(client: &reqwest::Client, url: &str, key: &str, batch: &[Value]) {
    let r = client
        .post(url)
        .bearer_auth(key)
        .json(batch)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "batch: {}", r.status());
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

struct Bench {
    client: reqwest::Client,
    herald: String,
    /// Other nodes on the same database: publishers go round the nodes.
    others: Vec<String>,
    receiver: String,
    key: String,
}

impl Bench {
    async fn post(&self, path: &str, body: &Value) -> Value {
        let r = self
            .client
            .post(format!("{}/api/v1{path}", self.herald))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .expect("herald answers");
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn receiver_stats(&self) -> Value {
        self.client
            .get(format!("{}/stats", self.receiver))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn reset_receiver(&self) {
        self.client
            .post(format!("{}/reset", self.receiver))
            .send()
            .await
            .unwrap();
    }

    async fn wait_received(&self, n: u64, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            let got = self.receiver_stats().await["count"].as_u64().unwrap_or(0);
            if got >= n {
                return true;
            }
            if start.elapsed() > limit {
                eprintln!("  only {got} of {n} received after {limit:?}");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Publishes `events` through the batch API (4 publishers, 1,000 per batch) and waits for
    /// `events * endpoints` deliveries.
    async fn throughput(&self, events: usize, endpoints: usize) -> Value {
        self.reset_receiver().await;
        let start = Instant::now();
        let batches: Vec<usize> = (0..events.div_ceil(1000)).collect();
        let nodes: Vec<&String> = std::iter::once(&self.herald).chain(&self.others).collect();
        let publishers = (2 * nodes.len()).max(4);
        let per_task = batches.len().div_ceil(publishers).max(1);
        let mut tasks = Vec::new();
        for (t, chunk) in batches.chunks(per_task).map(<[usize]>::to_vec).enumerate() {
            let client = self.client.clone();
            let url = format!("{}/api/v1/events/batch", nodes[t % nodes.len()]);
            let key = self.key.clone();
            tasks.push(tokio::spawn(async move {
                for b in chunk {
                    let n = (events - b * 1000).min(1000);
                    let batch: Vec<Value> = (0..n)
                        .map(|i| order_created((b * 1000 + i) as u64))
                        .collect();
                    post_batch(&client, &url, &key, &batch).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let published = start.elapsed();
        let expected = (events * endpoints) as u64;
        let complete = self
            .wait_received(expected, Duration::from_secs(1800))
            .await;
        let total = start.elapsed();
        let got = self.receiver_stats().await["count"].as_u64().unwrap_or(0);
        json!({
            "events": events,
            "endpoints": endpoints,
            "deliveries": got,
            "complete": complete,
            "publish_events_per_s": (events as f64 / published.as_secs_f64()).round(),
            "deliveries_per_s": (got as f64 / total.as_secs_f64()).round(),
            "seconds": (total.as_secs_f64() * 100.0).round() / 100.0,
        })
    }

    /// Single events at a steady rate; latency from publish to receipt.
    async fn latency(&self, rate: u64, seconds: u64) -> Value {
        self.reset_receiver().await;
        let total = rate * seconds;
        let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        let mut tasks = Vec::new();
        for i in 0..total {
            ticker.tick().await;
            let client = self.client.clone();
            let url = format!("{}/api/v1/events", self.herald);
            let key = self.key.clone();
            tasks.push(tokio::spawn(async move {
                let body = json!({"type": "order.created", "data": {"order_id": i, "sent_at_us": now_us()}});
                client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        self.wait_received(total, Duration::from_secs(60)).await;
        let stats = self.receiver_stats().await;
        let l: Vec<u64> = stats["latencies_us"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        json!({
            "rate_per_s": rate,
            "events": total,
            "received": l.len(),
            "p50_ms": percentile_ms(&l, 0.50),
            "p99_ms": percentile_ms(&l, 0.99),
            "max_ms": l.last().map(|m| *m as f64 / 1000.0).unwrap_or(0.0),
        })
    }

    /// A steady publish rate (batches of 100, 20 a second at 2,000/s) for `seconds`, sampling
    /// the database's size and Herald's RSS every `every`: with retention at work both must
    /// level off. The delivery rate is what the receiver got over the run.
    async fn soak(&self, pid: u32, dir: &std::path::Path, rate: u64, seconds: u64) -> Value {
        self.reset_receiver().await;
        let start = Instant::now();
        let every = Duration::from_secs((seconds / 12).max(5));
        let publisher = {
            let client = self.client.clone();
            let url = format!("{}/api/v1/events/batch", self.herald);
            let key = self.key.clone();
            tokio::spawn(async move {
                let per_tick = (rate / 20).max(1);
                let mut ticker = tokio::time::interval(Duration::from_millis(50));
                let mut sent = 0u64;
                while start.elapsed() < Duration::from_secs(seconds) {
                    ticker.tick().await;
                    let batch: Vec<Value> = (0..per_tick)
                        .map(|i| {
                            json!({"type": "order.created", "data": {"order_id": sent + i,
                            "total": {"amount": "149.90", "currency": "EUR"}}})
                        })
                        .collect();
                    let r = client
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&batch)
                        .send()
                        .await;
                    assert!(
                        r.is_ok_and(|r| r.status().is_success()),
                        "soak batch refused"
                    );
                    sent += per_tick;
                }
                sent
            })
        };
        let mut samples = Vec::new();
        while !publisher.is_finished() {
            tokio::time::sleep(every.min(
                Duration::from_secs(seconds).saturating_sub(start.elapsed())
                    + Duration::from_millis(100),
            ))
            .await;
            let received = self.receiver_stats().await["count"].as_u64().unwrap_or(0);
            let sample = json!({
                "t_s": start.elapsed().as_secs(),
                "db_mib": mib(db_bytes(dir)),
                "rss_mib": mib(rss_kib(pid) * 1024),
                "received": received,
            });
            println!("    {sample}");
            samples.push(sample);
        }
        let sent = publisher.await.unwrap();
        let complete = self.wait_received(sent, Duration::from_secs(120)).await;
        let elapsed = start.elapsed().as_secs_f64();
        let received = self.receiver_stats().await["count"].as_u64().unwrap_or(0);
        // Levelling off: the second half's largest size against the first half's.
        let half = |key: &str, second: bool| {
            let n = samples.len();
            let range = if second { n / 2..n } else { 0..n / 2 };
            samples[range]
                .iter()
                .filter_map(|s| s[key].as_f64())
                .fold(0.0_f64, f64::max)
        };
        json!({
            "rate_per_s": rate,
            "seconds": seconds,
            "events": sent,
            "complete": complete,
            "deliveries_per_s": (received as f64 / elapsed).round(),
            "db_mib_max_first_half": half("db_mib", false),
            "db_mib_max_second_half": half("db_mib", true),
            "rss_mib_max_first_half": half("rss_mib", false),
            "rss_mib_max_second_half": half("rss_mib", true),
            "samples": samples,
        })
    }

    /// One event per request, as products publish when a trigger fires: `clients` tasks each
    /// on its own keep-alive connection, `events` in all, to endpoints that hold what they get
    /// (so the figure is the publish path's, not the sender's). Latency is each request's.
    async fn single_publish(&self, events: usize, clients: usize) -> Value {
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            // A client per task: one connection each, kept alive.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let url = format!("{}/api/v1/events", self.herald);
            let key = self.key.clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                let mut took = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= events as u64 {
                        break took;
                    }
                    let body = order_created(i);
                    let sent = Instant::now();
                    let r = client
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED, "single publish");
                    took.push(sent.elapsed().as_micros() as u64);
                }
            }));
        }
        let mut took = Vec::with_capacity(events);
        for t in tasks {
            took.extend(t.await.unwrap());
        }
        let secs = start.elapsed().as_secs_f64();
        took.sort_unstable();
        json!({
            "events": events,
            "clients": clients,
            "events_per_s": (events as f64 / secs).round(),
            "p50_ms": percentile_ms(&took, 0.50),
            "p99_ms": percentile_ms(&took, 0.99),
        })
    }

    /// Herald's `/metrics` text.
    async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.herald))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Group commits so far from `/metrics`: (commits, requests, seconds spent committing).
    async fn group_commits(&self) -> (f64, f64, f64) {
        let text = self.metrics().await;
        let value = |name: &str| metric_value(&text, name);
        (
            value("herald_publish_group_requests_count"),
            value("herald_publish_group_requests_sum"),
            value("herald_publish_commit_duration_seconds_sum"),
        )
    }

    /// Disables every endpoint of the shop: what is published is then held, not sent.
    async fn hold_deliveries(&self) {
        let list = self
            .client
            .get(format!("{}/api/v1/endpoints", self.herald))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        for ep in list["items"].as_array().into_iter().flatten() {
            let id = ep["id"].as_str().unwrap();
            let r = self
                .client
                .patch(format!("{}/api/v1/endpoints/{id}", self.herald))
                .bearer_auth(&self.key)
                .json(&json!({"enabled": false}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "disable {id}: {}", r.status());
        }
    }

    /// The raw limit: a bare client posting similar bodies with Herald's concurrency.
    async fn raw_limit(&self, requests: usize, concurrency: usize) -> Value {
        self.reset_receiver().await;
        let start = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let client = self.client.clone();
            let url = format!("{}/hook", self.receiver);
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < requests as u64 {
                    let body =
                        json!({"id": "evt_x", "type": "order.created", "data": {"order_id": 1}});
                    client.post(&url).json(&body).send().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        json!({
            "requests": requests,
            "concurrency": concurrency,
            "requests_per_s": (requests as f64 / secs).round(),
        })
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("receiver") {
        receiver().await;
        return;
    }
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let events: usize = arg("--events")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let fan_events: usize = arg("--fan-events")
        .and_then(|v| v.parse().ok())
        .unwrap_or(events / 10);
    let herald_bin = arg("--herald").unwrap_or_else(|| "target/release/herald".into());
    let soak_seconds: u64 = arg("--soak-seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(180);
    let soak_rate: u64 = arg("--soak-rate")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let concurrency = 256;

    // The receiver, in its own process.
    let mut rx = Command::new(std::env::current_exe().unwrap())
        .arg("receiver")
        .stdout(Stdio::piped())
        .spawn()
        .expect("receiver starts");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(rx.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let rx_port: u16 = line.trim().parse().expect("receiver port");
    let mut children = Children(vec![rx]);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let receiver = format!("http://127.0.0.1:{rx_port}");
    if arg("--only").as_deref() == Some("scale") {
        let events = arg("--events")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let only_postgres = arg("--store").as_deref() == Some("postgres");
        scale::run(&herald_bin, &client, &receiver, events, only_postgres).await;
        return;
    }
    let (b, herald, dir) = launch(&herald_bin, &client, &receiver, &[]).await;
    let herald_pid = herald.id();
    children.0.push(herald);
    let hook = json!({"url": format!("{}/hook", b.receiver)});
    let _keep = &dir;

    println!(
        "Herald bench: {events} events to 1 endpoint, {fan_events} events to 10 endpoints \
         (Herald, the receiver and the publisher share the machine's cores)"
    );
    let raw = b.raw_limit(events.min(50_000), concurrency).await;
    println!(
        "  raw limit (bare client, {concurrency} in flight): {} requests/s",
        raw["requests_per_s"]
    );
    let single = publish_runs(&herald_bin, &client, &receiver, events).await;
    if arg("--only").as_deref() == Some("publish") {
        return;
    }
    let latency = b.latency(500, 10).await;
    println!(
        "  publish→receipt at 500 events/s: p50 {} ms, p99 {} ms, max {} ms",
        latency["p50_ms"], latency["p99_ms"], latency["max_ms"]
    );
    let ticks = cpu_ticks(herald_pid);
    let mut one = b.throughput(events, 1).await;
    let sqlite_cpu = us_per(
        cpu_ticks(herald_pid) - ticks,
        one["deliveries"].as_u64().unwrap_or(0),
    );
    one["herald_cpu_us_per_delivery"] = json!(sqlite_cpu);
    println!(
        "  1 endpoint: {} deliveries/s end to end; publish {} events/s; {} s; Herald {} µs CPU per delivery",
        one["deliveries_per_s"], one["publish_events_per_s"], one["seconds"], sqlite_cpu
    );
    for _ in 0..9 {
        b.post("/endpoints", &hook).await;
    }
    let ten = b.throughput(fan_events, 10).await;
    println!(
        "  10 endpoints: {} deliveries/s end to end; publish {} events/s; {} s",
        ten["deliveries_per_s"], ten["publish_events_per_s"], ten["seconds"]
    );
    let rss = peak_rss_kib(herald_pid);
    if let Some(mut first) = children.0.pop() {
        let _ = first.kill();
        let _ = first.wait();
    }

    // The soak (`--soak-seconds 0` skips it): a fresh Herald keeping everything only
    // `retention` seconds, a steady rate, then the 1-endpoint burst again with the purge at
    // work on a full database.
    let (soak, after_soak, kept) = if soak_seconds == 0 {
        (Value::Null, Value::Null, 0.0)
    } else {
        soak_run(
            &herald_bin,
            &client,
            &receiver,
            &mut children,
            soak_rate,
            soak_seconds,
            events,
            &one,
        )
        .await
    };
    let ratio = one["deliveries_per_s"].as_f64().unwrap_or(0.0)
        / raw["requests_per_s"].as_f64().unwrap_or(1.0).max(1.0);
    println!(
        "  Herald peak RSS {} MiB; 1-endpoint throughput is {:.0} % of the raw limit",
        rss / 1024,
        ratio * 100.0
    );

    let postgres = match std::env::var("HERALD_TEST_POSTGRES") {
        Ok(server) if !server.is_empty() => {
            postgres_runs(&herald_bin, &client, &receiver, &server, events).await
        }
        _ => {
            println!("  PostgreSQL: skipped (no HERALD_TEST_POSTGRES; `make bench` starts one)");
            Value::Null
        }
    };

    let report = json!({
        "raw_limit": raw,
        "single_publish": single,
        "latency_500_per_s": latency,
        "one_endpoint": one,
        "ten_endpoints": ten,
        "peak_rss_mib": rss / 1024,
        "soak": soak,
        "one_endpoint_after_soak": after_soak,
        "after_soak_ratio": (kept * 1000.0).round() / 1000.0,
        "ratio_to_raw_limit": (ratio * 1000.0).round() / 1000.0,
        "postgres": postgres,
        "durability": "every attempt recorded in SQLite (WAL; HERALD_SQLITE_SYNCHRONOUS=full, the default: the WAL synced to disk after every commit before it is answered) in batched transactions; single publishes also with normal; figures count receipts at the receiver",
    });
    std::fs::create_dir_all("target/bench").unwrap();
    std::fs::write(
        "target/bench/report.json",
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    println!("  report: target/bench/report.json");
    drop(children);
}

/// Single-event publishing with group commit, at 8 and 32 clients, on a fresh Herald whose
/// endpoint holds what it gets: with Herald's default `HERALD_SQLITE_SYNCHRONOUS=full` (a 202
/// only once the commit is on disk) and with `HERALD_SQLITE_SYNCHRONOUS=normal` traded back.
async fn publish_runs(
    herald_bin: &str,
    client: &reqwest::Client,
    receiver: &str,
    events: usize,
) -> Value {
    let mut out = serde_json::Map::new();
    for (mode, extra) in [
        ("full", vec![]),
        ("normal", vec![("HERALD_SQLITE_SYNCHRONOUS", "normal")]),
    ] {
        // `HERALD_BENCH_SYNC=normal` measures one mode only (for profiling).
        if std::env::var("HERALD_BENCH_SYNC").is_ok_and(|m| m != mode) {
            continue;
        }
        let (b, mut herald, _dir) = launch(herald_bin, client, receiver, &extra).await;
        b.hold_deliveries().await;
        let mut runs = Vec::new();
        for clients in [8, 32] {
            let before = b.group_commits().await;
            let mut r = b.single_publish(events.min(60_000), clients).await;
            let after = b.group_commits().await;
            let groups = (after.0 - before.0).max(1.0);
            r["requests_per_commit"] = json!(((after.1 - before.1) / groups * 10.0).round() / 10.0);
            r["commit_ms"] = json!(((after.2 - before.2) / groups * 1e4).round() / 10.0);
            println!(
                "  single-event publish, synchronous={mode}, {clients} clients: {} events/s, \
                 p50 {} ms, p99 {} ms ({} requests per commit, {} ms per commit)",
                r["events_per_s"],
                r["p50_ms"],
                r["p99_ms"],
                r["requests_per_commit"],
                r["commit_ms"]
            );
            runs.push(r);
        }
        let _ = herald.kill();
        let _ = herald.wait();
        out.insert(mode.into(), json!(runs));
    }
    Value::Object(out)
}

/// The soak and the 1-endpoint burst after it: (soak figures, burst figures, burst / fresh).
#[allow(clippy::too_many_arguments)]
async fn soak_run(
    herald_bin: &str,
    client: &reqwest::Client,
    receiver: &str,
    children: &mut Children,
    soak_rate: u64,
    soak_seconds: u64,
    events: usize,
    one: &Value,
) -> (Value, Value, f64) {
    let retention = soak_seconds / 6;
    println!(
        "  soak: {soak_rate} events/s for {soak_seconds} s, retention {retention} s \
         (database size and RSS every {} s):",
        (soak_seconds / 12).max(5)
    );
    let retention_env = retention.to_string();
    let (sb, soaker, soak_dir) = launch(
        herald_bin,
        client,
        receiver,
        &[("HERALD_RETENTION_SECONDS", retention_env.as_str())],
    )
    .await;
    let soak_pid = soaker.id();
    children.0.push(soaker);
    let soak = sb
        .soak(soak_pid, soak_dir.path(), soak_rate, soak_seconds)
        .await;
    let after_soak = sb.throughput(events, 1).await;
    let kept = after_soak["deliveries_per_s"].as_f64().unwrap_or(0.0)
        / one["deliveries_per_s"].as_f64().unwrap_or(1.0).max(1.0);
    println!(
        "  soak: {} deliveries/s; database {} → {} MiB, RSS {} → {} MiB (first half → second half max)",
        soak["deliveries_per_s"],
        soak["db_mib_max_first_half"],
        soak["db_mib_max_second_half"],
        soak["rss_mib_max_first_half"],
        soak["rss_mib_max_second_half"]
    );
    println!(
        "  1 endpoint after the soak, retention at work: {} deliveries/s ({:.0} % of the fresh run); database {} MiB",
        after_soak["deliveries_per_s"],
        kept * 100.0,
        mib(db_bytes(soak_dir.path()))
    );
    // Done with it: it must not take the machine's cores from the runs that follow.
    if let Some(mut soaker) = children.0.pop() {
        let _ = soaker.kill();
        let _ = soaker.wait();
    }
    (soak, after_soak, kept)
}

/// The 1-endpoint burst on PostgreSQL with 1, 2 and 3 nodes, each on a fresh database of the
/// server, with the CPU Herald's nodes and PostgreSQL spent per delivery.
async fn postgres_runs(
    herald_bin: &str,
    client: &reqwest::Client,
    receiver: &str,
    server: &str,
    events: usize,
) -> Value {
    use sqlx::Connection;
    let mut runs = Vec::new();
    for nodes in 1..=3 {
        let name = format!("herald_bench_{nodes}_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(server)
            .await
            .expect("the PostgreSQL server answers");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("a bench database is created");
        let url = format!(
            "{}/{name}",
            server.rsplit_once('/').map_or(server, |(r, _)| r)
        );
        let (b, children, _dir) =
            launch_on(herald_bin, client, receiver, &[], &url, nodes, None).await;
        let pids: Vec<u32> = children.iter().map(Child::id).collect();
        let _children = Children(children);
        let latency = if nodes == 1 {
            b.latency(500, 10).await
        } else {
            Value::Null
        };
        let herald_before: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
        let pg_before = postgres_ticks();
        let mut run = b.throughput(events, 1).await;
        let delivered = run["deliveries"].as_u64().unwrap_or(0);
        let herald_cpu = us_per(
            pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>() - herald_before,
            delivered,
        );
        let pg_cpu = us_per(postgres_ticks() - pg_before, delivered);
        run["nodes"] = json!(nodes);
        run["herald_cpu_us_per_delivery"] = json!(herald_cpu);
        run["postgres_cpu_us_per_delivery"] = json!(pg_cpu);
        run["latency_500_per_s"] = latency.clone();
        // Cores needed for 100,000 deliveries/s at these costs.
        run["cores_for_100k_per_s"] = json!({
            "herald": (herald_cpu * 0.1).round() / 1.0,
            "postgres": (pg_cpu * 0.1).round() / 1.0,
        });
        if nodes == 1 {
            println!(
                "  PostgreSQL, 1 node: publish→receipt at 500 events/s: p50 {} ms, p99 {} ms",
                latency["p50_ms"], latency["p99_ms"]
            );
        }
        println!(
            "  PostgreSQL, {nodes} node(s): {} deliveries/s end to end; publish {} events/s; \
             CPU per delivery: Herald {herald_cpu} µs, PostgreSQL {pg_cpu} µs",
            run["deliveries_per_s"], run["publish_events_per_s"]
        );
        runs.push(run);
    }
    if let Some(one) = runs.first() {
        let h = one["herald_cpu_us_per_delivery"].as_f64().unwrap_or(0.0);
        let p = one["postgres_cpu_us_per_delivery"].as_f64().unwrap_or(0.0);
        println!(
            "  100,000 deliveries/s at these costs: ~{:.0} cores of Herald nodes and ~{:.0} of PostgreSQL",
            h * 0.1,
            p * 0.1
        );
    }
    json!({
        "settings": "a private cluster: fsync on, synchronous_commit off (commits are not flushed one by one, as SQLite's WAL with synchronous=NORMAL)",
        "runs": runs,
    })
}

/// Herald on a fresh database in a temporary directory, with a shop, an API key and one
/// endpoint at the receiver; `extra` adds to its environment.
async fn launch(
    herald_bin: &str,
    client: &reqwest::Client,
    receiver: &str,
    extra: &[(&str, &str)],
) -> (Bench, Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/herald.db", dir.path().display());
    let (b, mut children, dir) =
        launch_on(herald_bin, client, receiver, extra, &db, 1, Some(dir)).await;
    (b, children.remove(0), dir)
}

/// `nodes` Herald nodes on the database at `db` (one data directory, so one secret key), with
/// a shop, an API key and one endpoint at the receiver.
async fn launch_on(
    herald_bin: &str,
    client: &reqwest::Client,
    receiver: &str,
    extra: &[(&str, &str)],
    db: &str,
    nodes: usize,
    dir: Option<tempfile::TempDir>,
) -> (Bench, Vec<Child>, tempfile::TempDir) {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let env = |c: &mut Command| {
        c.env("HERALD_DATABASE_URL", db)
            .env("HERALD_DATA_DIR", dir.path())
            .env(
                "HERALD_LOG",
                std::env::var("HERALD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("HERALD_ALLOW_PRIVATE_TARGETS", "1")
            .env("HERALD_ADMIN_PASSWORD", "bench-password-1")
            .envs(extra.iter().copied());
    };
    let cli = |args: &[&str]| {
        let mut c = Command::new(herald_bin);
        c.args(args);
        env(&mut c);
        let out = c.output().expect("herald runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .lines()
            .last()
            .unwrap()
            .to_string()
    };
    let shop = cli(&["shop", "create", "--name", "Bench", "--enable-webhooks"]);
    let key = cli(&["api-key", "create", "--shop", &shop, "--name", "bench"]);
    let mut children = Vec::new();
    let mut urls = Vec::new();
    for n in 0..nodes {
        let port = free_port();
        let mut serve = Command::new(herald_bin);
        serve
            .arg("serve")
            .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HERALD_NODE_ID", format!("bench-{n}"))
            .stdout(Stdio::null());
        env(&mut serve);
        children.push(serve.spawn().expect("herald starts"));
        urls.push(format!("http://127.0.0.1:{port}"));
    }
    let b = Bench {
        client: client.clone(),
        herald: urls[0].clone(),
        others: urls[1..].to_vec(),
        receiver: receiver.to_string(),
        key,
    };
    for url in &urls {
        for _ in 0..200 {
            let up = b.client.get(format!("{url}/healthz")).send().await;
            if up.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    b.post("/endpoints", &json!({"url": format!("{receiver}/hook")}))
        .await;
    (b, children, dir)
}
