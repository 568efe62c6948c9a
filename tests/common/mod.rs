//! Test helpers: start the real Herald on port 0 with a temporary database — a SQLite file,
//! or, when `HERALD_TEST_POSTGRES` names a PostgreSQL server (`make test` starts one and runs
//! every suite on both stores), a fresh database of its own on that server.

#![allow(dead_code)]

pub mod receiver;

use herald::config::Config;
use herald::startup::Server;
use std::net::SocketAddr;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

pub struct TestApp {
    pub addr: SocketAddr,
    pub config: Config,
    pub service: herald::service::Service,
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Whether the suite runs on PostgreSQL (`HERALD_TEST_POSTGRES`) rather than SQLite.
pub fn on_postgres() -> bool {
    std::env::var("HERALD_TEST_POSTGRES").is_ok_and(|s| !s.is_empty())
}

/// The store under test for the data directory `dir`: the same URL for every call with one
/// directory, so a test can stop Herald and start it again on what it left.
pub fn database_url(dir: &std::path::Path) -> String {
    let Some(server) = std::env::var("HERALD_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        return format!("sqlite://{}/herald.db", dir.display());
    };
    let remembered = dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return url;
    }
    let name = herald::ids::new_id("herald_test").to_lowercase();
    let url = match server.rsplit_once('/') {
        Some((root, _)) => format!("{root}/{name}"),
        None => panic!("HERALD_TEST_POSTGRES must be postgres://user@host:port/database"),
    };
    // On a thread of its own: callers may be inside a runtime already.
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&server)
                    .await
                    .expect("the test PostgreSQL server answers");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("a test database is created");
            })
    })
    .join()
    .unwrap();
    std::fs::write(&remembered, &url).unwrap();
    url
}

/// The herald command line on the store of the data directory `dir`.
pub fn herald_cli(dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.env("HERALD_DATABASE_URL", database_url(dir))
        .env("HERALD_DATA_DIR", dir)
        .env("HERALD_LOG", "warn");
    cmd
}

/// The last line a command printed: where the command line puts the id or key a script needs.
pub fn last_line(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        database_url: database_url(dir),
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: None,
        admin_email: ADMIN_EMAIL.into(),
        admin_password: Some(ADMIN_PASSWORD.into()),
        signin_burst: 5,
        secret_key: None,
        allow_private_targets: true,
        max_body_bytes: 16 * 1024 * 1024,
        max_event_bytes: 1024 * 1024,
        concurrency: 64,
        endpoint_concurrency: 8,
        lease_seconds: 60,
        metrics_token: None,
        shutdown_grace_seconds: 10,
        retention_seconds: None,
        trusted_proxies: Vec::new(),
        header_timeout_seconds: 30,
        request_timeout_seconds: 60,
        streams_per_client: 8,
        node_id: None,
        database_connections: herald::store::DEFAULT_PG_CONNECTIONS,
        sqlite_synchronous: herald::store::SqliteSync::Full,
        log: "warn".into(),
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let config = test_config(dir.path());
        let mut app = Self::start(config).await;
        app._dir = Some(dir);
        app
    }

    /// Starts Herald with this configuration; the caller keeps its data directory alive.
    pub async fn start(config: Config) -> TestApp {
        let server = Server::build(&config).await.expect("herald starts");
        let addr = server.addr();
        let service = server.service.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            config,
            service,
            _dir: None,
            shutdown: Some(tx),
        }
    }

    /// The `/metrics` text (no token is configured in tests).
    pub async fn metrics(&self) -> String {
        self.client()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A browser-like client: keeps cookies, does not follow redirects, sends our Origin.
    pub fn client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ORIGIN,
            format!("http://{}", self.addr).parse().unwrap(),
        );
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            // A request that never answers fails naming its URL instead of hanging the test.
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// Signs in and returns the client holding the session.
    pub async fn signed_in(&self, email: &str, password: &str) -> reqwest::Client {
        let client = self.client();
        let resp = client
            .post(self.url("/login"))
            .form(&[("email", email), ("password", password), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "sign-in redirects");
        let landing = resp.headers()["location"].to_str().unwrap();
        assert!(
            !landing.starts_with("/login"),
            "sign-in succeeds for {email}: {landing}"
        );
        client
    }

    /// Creates a shop and a user with a role in it; returns (shop id, email, password).
    pub async fn shop_with(&self, role: &str) -> (String, String, String) {
        use app::backend::Backend;
        let system = herald::service::Service::system();
        let shop = self
            .service
            .create_shop(&system, "Shop", true)
            .await
            .unwrap();
        let email = format!("{role}-{}@example.com", &shop.id[4..]);
        let password = "password-123".to_string();
        self.service
            .create_user(&system, &email, &password, role, Some(&shop.id))
            .await
            .unwrap();
        (shop.id, email, password)
    }
}

impl TestApp {
    /// A shop with webhooks enabled and an API key for it: (shop id, key).
    pub async fn api_shop(&self) -> (String, String) {
        use app::backend::Backend;
        let system = herald::service::Service::system();
        let shop = self
            .service
            .create_shop(&system, "API shop", true)
            .await
            .unwrap();
        let (_, key) = self
            .service
            .create_api_key(&system, &shop.id, "tests")
            .await
            .unwrap();
        (shop.id, key)
    }

    /// A REST client for an API key.
    pub fn api(&self, key: &str) -> Api {
        Api {
            base: self.url("/api/v1"),
            key: key.to_string(),
            client: reqwest::Client::new(),
        }
    }
}

pub struct Api {
    pub base: String,
    pub key: String,
    pub client: reqwest::Client,
}

impl Api {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// Waits until the delivery reaches `status` (up to `secs` seconds) and returns it.
    pub async fn wait_status(&self, delivery: &str, status: &str, secs: u64) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let (_, d) = self.get(&format!("/deliveries/{delivery}")).await;
            if d["status"] == status {
                return d;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "delivery never became {status}: {d}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
}

/// Calls a server function the way a form without JavaScript would.
pub async fn call_server_fn<F: leptos::server_fn::ServerFn>(
    app: &TestApp,
    client: &reqwest::Client,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(app.url(F::PATH))
        .header("accept", "application/json")
        .form(form)
        .send()
        .await
        .unwrap()
}
