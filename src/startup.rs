//! Start-up: open the store, migrate, make sure an operator exists, bind and serve. `build`
//! binds the listener and returns before serving, so tests can start Herald on port 0.

use crate::auth::throttle::SignInThrottle;
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::engine::{Engine, EngineConfig};
use crate::service::{Limits, Service};
use crate::store::Store;
use crate::web::{router, AppState};
use leptos::prelude::LeptosOptions;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// A bound, ready-to-serve Herald.
pub struct Server {
    listener: tokio::net::TcpListener,
    router: axum::Router,
    pub service: Service,
    /// How long a stop may take, from the signal to the end (`HERALD_SHUTDOWN_GRACE_SECONDS`).
    grace: std::time::Duration,
    /// `HERALD_HEADER_TIMEOUT_SECONDS`.
    header_timeout: std::time::Duration,
}

/// Opens the store (migrated) and the service with its engine, not yet started.
pub async fn open_service(config: &Config) -> anyhow::Result<Service> {
    let store = Store::connect_with(
        &config.database_url,
        crate::store::StoreOptions {
            pg_connections: config.database_connections,
            sqlite_sync: config.sqlite_synchronous,
        },
    )
    .await?;
    store.migrate().await?;
    let secrets = SecretBox::load(config.secret_key.as_deref(), &config.data_dir)?;
    // Fail closed: with a key that does not open what is stored, nothing could be signed.
    if let Some(sealed) = store.any_sealed_secret().await? {
        if let Err(e) = secrets.open(&sealed) {
            anyhow::bail!(
                "the secret key does not open the stored endpoint secrets ({e}). Start with the \
                 HERALD_SECRET_KEY (or {}/secret.key) they were sealed with.",
                config.data_dir.display()
            );
        }
    }
    seal_plain_headers(&store, &secrets).await?;
    let engine = Engine::new(
        store.clone(),
        secrets,
        EngineConfig {
            concurrency: config.concurrency,
            endpoint_concurrency: config.endpoint_concurrency,
            lease: std::time::Duration::from_secs(config.lease_seconds.max(1)),
            allow_private_targets: config.allow_private_targets,
            retention_override: config.retention_seconds.map(std::time::Duration::from_secs),
            node_id: config.node_name(),
            max_body_bytes: crate::domain::template::body_limit(config.max_event_bytes),
            streams_per_holder: config.streams_per_client,
        },
    );
    Ok(Service::new(
        store,
        engine,
        Limits {
            max_event_bytes: config.max_event_bytes,
        },
    ))
}

/// Extra header values stored in plaintext (before they were sealed at rest) are sealed now,
/// once; an endpoint changed meanwhile is left to its new, sealed, values.
async fn seal_plain_headers(store: &Store, secrets: &SecretBox) -> anyhow::Result<()> {
    for (id, sqlx::types::Json(mut headers), updated_at) in store.all_endpoint_headers().await? {
        let mut changed = false;
        for value in headers.values_mut() {
            if let Some(v) = value.as_str().filter(|v| !SecretBox::is_sealed(v)) {
                *value = serde_json::Value::String(secrets.seal(v));
                changed = true;
            }
        }
        if changed {
            store
                .replace_endpoint_headers(&id, updated_at, &headers)
                .await?;
        }
    }
    Ok(())
}

/// Where the built assets are: `target/site` under the working directory unless cargo-leptos
/// says otherwise.
fn leptos_options(addr: SocketAddr) -> LeptosOptions {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let prod = env("LEPTOS_ENV", "DEV").eq_ignore_ascii_case("PROD");
    LeptosOptions::builder()
        .output_name(env("LEPTOS_OUTPUT_NAME", "herald"))
        .site_root(env("LEPTOS_SITE_ROOT", "target/site"))
        .site_pkg_dir(env("LEPTOS_SITE_PKG_DIR", "pkg"))
        .site_addr(addr)
        .env(if prod {
            leptos::config::Env::PROD
        } else {
            leptos::config::Env::DEV
        })
        .build()
}

impl Server {
    /// Opens the store, applies migrations, creates the first operator if there is no user,
    /// and binds `config.listen`.
    pub async fn build(config: &Config) -> anyhow::Result<Server> {
        let mut service = open_service(config).await?;
        if let Some((email, generated)) = service
            .ensure_operator(&config.admin_email, config.admin_password.as_deref())
            .await?
        {
            match generated {
                Some(pw) => println!(
                    "Created the operator account {email} with the password {pw}\n\
                     (shown only this once; change it on the Account page after signing in,\n\
                     or with `herald user set-password --email {email} --password …`)."
                ),
                None => println!(
                    "Created the operator account {email} (password from HERALD_ADMIN_PASSWORD)."
                ),
            }
        }
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        service.public_url = config
            .public_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{addr}"));
        let state = AppState::new(crate::web::AppStateInner {
            leptos_options: leptos_options(addr),
            service: service.clone(),
            signin_throttle: SignInThrottle::new(config.signin_burst),
            metrics_token: config.metrics_token.clone().filter(|t| !t.is_empty()),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            public_origin: config.public_url.as_deref().and_then(crate::web::origin_of),
            secure_cookies: config.secure_cookies(),
        });
        let router = router::build(state, config).await?;
        service.engine.start();
        Ok(Server {
            listener,
            router,
            service,
            grace: std::time::Duration::from_secs(config.shutdown_grace_seconds),
            header_timeout: std::time::Duration::from_secs(config.header_timeout_seconds),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops within the grace: claiming stops and
    /// activity streams end at once, requests in flight finish, attempts in flight finish and
    /// are recorded, and what is still unfinished at the end of the grace is given back to
    /// the queue. Connections still open then are dropped.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let engine = self.service.engine.clone();
        // When the signal came; the grace counts from then.
        let signalled = Arc::new((std::sync::OnceLock::new(), tokio::sync::Notify::new()));
        let serve = crate::web::serve::serve(self.listener, self.router, self.header_timeout, {
            let (engine, signalled) = (engine.clone(), signalled.clone());
            async move {
                shutdown.await;
                let _ = signalled.0.set(tokio::time::Instant::now());
                signalled.1.notify_one();
                engine.stop_claiming();
            }
        });
        let grace = self.grace;
        tokio::select! {
            _ = serve => {}
            _ = async {
                signalled.1.notified().await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!("connections still open at the end of the grace are dropped"),
        }
        let deadline = signalled
            .0
            .get()
            .copied()
            .unwrap_or_else(tokio::time::Instant::now)
            + grace;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        engine.shutdown(left).await;
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
