//! The delivery engine. The queue is the `deliveries` table: a dispatcher claims due rows in
//! batches with a lease (woken at once on enqueue and at the next due time), each claimed
//! delivery is sent by its own task within global and per-endpoint limits, and a recorder
//! writes finished attempts in batched transactions.

pub mod activity;
pub mod attempt;
pub mod catalog;
pub mod cluster;
mod dispatch;
pub mod guard;
mod maintenance;
pub mod metrics;
mod recent;
mod recorder;
pub mod sender;
pub mod signing;
mod state;

use crate::crypto::SecretBox;
use crate::ids::{now_ms, ShopId};
use crate::store::deliveries::LeaseRef;
use crate::store::endpoints::EndpointRow;
use crate::store::events::EventRow;
use crate::store::Store;
use activity::ActivityHub;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify, Semaphore};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub concurrency: usize,
    pub endpoint_concurrency: usize,
    pub lease: Duration,
    pub allow_private_targets: bool,
    /// Replaces every shop's retentions (`HERALD_RETENTION_SECONDS`, for tests and soaks).
    pub retention_override: Option<Duration>,
    /// This node's name (`HERALD_NODE_ID`).
    pub node_id: String,
    /// The largest body a template may render to ([`crate::domain::template::body_limit`] of
    /// the event size limit): past it the attempt fails without sending.
    pub max_body_bytes: usize,
    /// Live activity streams one principal may hold open (`HERALD_STREAMS_PER_CLIENT`).
    pub streams_per_holder: usize,
}

/// Handle to the running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    secrets: SecretBox,
    config: EngineConfig,
    sender: sender::Sender,
    wake: Notify,
    activity: ActivityHub,
    metrics: metrics::Metrics,
    global: Arc<Semaphore>,
    /// What the engine knows between claims (see `state`): ready jobs, workers, pace, rate
    /// limits, announced endpoints and the leases held, under one lock.
    state: Mutex<state::State>,
    /// Per endpoint with workers: the turn to queue for a global permit. One worker of an
    /// endpoint waits for a permit at a time, so the (first come, first served) queue for
    /// permits holds at most one waiter per endpoint and permits go round the endpoints.
    gates: Mutex<HashMap<crate::ids::EndpointId, Arc<tokio::sync::Mutex<()>>>>,
    /// Held by a claim round from its claim until its jobs are in the ready queues: a cancel
    /// waits for it, so a delivery just claimed is found where it will be.
    claiming: tokio::sync::Mutex<()>,
    /// Set by [`Engine::wake`]: new work may be due anywhere; look for every endpoint with
    /// due work.
    announced: AtomicBool,
    /// This process's part of every lease token, and how many claims it made: a claim's token
    /// is both, so two claims of one delivery never share a token, even in one process.
    lease_prefix: String,
    claims: std::sync::atomic::AtomicU64,
    /// Endpoints whose secrets would not open, alerted about once since start.
    secret_failures: Mutex<HashSet<String>>,
    /// Events just published, so claiming their deliveries need not read them back.
    recent: Mutex<recent::RecentEvents>,
    /// When this node started, and how many nodes are alive and whether another watches the
    /// activity feed, as of the last heartbeat (see `cluster`).
    started_at: i64,
    live_nodes: std::sync::atomic::AtomicUsize,
    others_listen: AtomicBool,
    shutdown: watch::Sender<bool>,
    /// Set when the engine thread has ended: the dispatcher stopped and the recorder wrote
    /// everything handed to it.
    stopped: watch::Sender<bool>,
}

impl Engine {
    pub fn new(store: Store, secrets: SecretBox, config: EngineConfig) -> Self {
        let metrics = metrics::Metrics::default();
        metrics.register_store(&store);
        Engine {
            inner: Arc::new(Inner {
                sender: sender::Sender::new(config.allow_private_targets),
                global: Arc::new(Semaphore::new(config.concurrency.max(1))),
                activity: ActivityHub::new(config.streams_per_holder),
                store,
                secrets,
                config,
                wake: Notify::new(),
                metrics,
                state: Mutex::default(),
                gates: Mutex::new(HashMap::new()),
                claiming: tokio::sync::Mutex::new(()),
                announced: AtomicBool::new(true),
                lease_prefix: crate::ids::new_lease_prefix(),
                claims: std::sync::atomic::AtomicU64::new(0),
                secret_failures: Mutex::new(HashSet::new()),
                recent: Mutex::default(),
                started_at: now_ms(),
                live_nodes: std::sync::atomic::AtomicUsize::new(1),
                others_listen: AtomicBool::new(false),
                shutdown: watch::channel(false).0,
                stopped: watch::channel(false).0,
            }),
        }
    }

    /// The store the engine works on.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn secrets(&self) -> &SecretBox {
        &self.inner.secrets
    }

    pub fn activity(&self) -> &ActivityHub {
        &self.inner.activity
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    pub fn allow_private_targets(&self) -> bool {
        self.inner.config.allow_private_targets
    }

    /// New work is queued: claim it now instead of at the next poll.
    pub fn wake(&self) {
        self.inner.announced.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// New work is queued for these endpoints: claim it now, from them alone (cheaper than
    /// looking for every endpoint with due work, as [`Engine::wake`] does).
    pub fn wake_endpoints<'a>(&self, endpoints: impl IntoIterator<Item = &'a str>) {
        self.state().add_hints(endpoints);
        self.inner.wake.notify_one();
    }

    /// Events a shop just published (with deliveries queued): kept for a while, so claiming
    /// their deliveries need not read them back from the database.
    pub fn remember_events(
        &self,
        shop_id: &crate::ids::ShopId,
        events: impl IntoIterator<Item = EventRow>,
    ) {
        let mut recent = self.lock(&self.inner.recent);
        for e in events {
            recent.insert(shop_id, e);
        }
    }

    /// Starts the dispatcher, the recorder and the retention purge.
    ///
    /// The dispatcher and the recorder run on a thread of their own: they take turns on the one
    /// database writer, and each of their queries would otherwise wait for a turn on the
    /// runtime behind every request being sent, which makes the writer, not the network, the
    /// limit. Workers (the sending) stay on the caller's runtime. When that runtime goes away
    /// (a test ends without shutting down), the engine thread stops too.
    pub fn start(&self) {
        let (tx, rx) = mpsc::unbounded_channel();
        let main = tokio::runtime::Handle::current();
        main.spawn(maintenance::purger(self.clone()));
        main.spawn(maintenance::checkpointer(self.clone()));
        main.spawn(maintenance::counter_keeper(self.clone()));
        main.spawn(maintenance::bulk_worker(self.clone()));
        main.spawn(cluster::heartbeats(self.clone()));
        main.spawn(cluster::listener(self.clone()));
        main.spawn({
            let stop = StopOnDrop(self.clone());
            async move {
                let _stop = stop;
                std::future::pending::<()>().await
            }
        });
        let engine = self.clone();
        let spawned = std::thread::Builder::new()
            .name("herald-engine".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "could not start the delivery engine");
                        return;
                    }
                };
                rt.block_on(async move {
                    let recorder = tokio::spawn(recorder::recorder(engine.clone(), rx));
                    dispatch::dispatcher(engine.clone(), tx, main).await;
                    let _ = recorder.await;
                    let _ = engine.inner.stopped.send(true);
                });
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the delivery engine thread");
        }
    }

    /// Stops claiming and waits (up to `grace`) for attempts in flight to finish and be
    /// recorded; what is still unfinished then is given back to the queue at once, so another
    /// process need not wait for the lease to run out.
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        self.stop_claiming();
        let total = self.inner.config.concurrency.max(1) as u32;
        let finished = tokio::time::timeout_at(deadline, self.inner.global.acquire_many(total))
            .await
            .is_ok();
        // The recorder writes what the finished attempts handed it, then the engine thread
        // ends (when every worker has let go of it): wait for that, not for a fixed time.
        let mut stopped = self.inner.stopped.subscribe();
        let _ = tokio::time::timeout_at(deadline, stopped.wait_for(|s| *s)).await;
        if !finished {
            tracing::warn!("attempts still in flight at shutdown are given back unrecorded");
        }
        // Leased and not finished: in flight past the grace, or waiting for a worker.
        let leases: Vec<LeaseRef> = self.state().give_up_all();
        if !leases.is_empty() {
            match self.inner.store.release(&leases, now_ms()).await {
                Ok(()) => {
                    tracing::info!(released = leases.len(), "unfinished deliveries given back")
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not release deliveries; their leases will run out")
                }
            }
        }
        self.say_stopped().await;
    }

    /// The first step of shutting down: no more claims, and live activity streams end (so
    /// the HTTP server's graceful shutdown is not held open by them).
    pub fn stop_claiming(&self) {
        let _ = self.inner.shutdown.send(true);
        self.wake();
    }

    /// Completes when shutdown has begun.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// An endpoint was edited, disabled or deleted: its deliveries leased but not yet started
    /// go back to the queue (held if it is disabled), so none is sent with what it was before.
    pub async fn endpoint_changed(&self, endpoint_id: &str) {
        let leases = self.state().take_endpoint_jobs(endpoint_id);
        if self.give_back(&leases).await {
            self.wake();
        }
    }

    /// Gives back leases read ahead and not started (held or waiting again, as their endpoint
    /// and shop say); false when there were none.
    async fn give_back(&self, leases: &[LeaseRef]) -> bool {
        if leases.is_empty() {
            return false;
        }
        if let Err(e) = self.inner.store.release(leases, now_ms()).await {
            tracing::error!(error = %e, deliveries = leases.len(),
                "could not give back deliveries; their leases will run out");
        }
        true
    }

    /// A shop's webhooks were turned off: its deliveries leased but not yet started go back
    /// to the queue (held), on this node and, told through PostgreSQL, on every other.
    pub async fn shop_paused(&self, shop_id: &ShopId) {
        self.give_back_shop(shop_id).await;
        if let Err(e) = self.inner.store.notify_shop_paused(shop_id).await {
            tracing::warn!(error = %e, %shop_id,
                "could not tell other nodes that a shop's webhooks are off; what they read ahead goes out");
        }
    }

    /// Gives back this node's read-ahead of a shop (held, as its webhooks are off). Under
    /// the claim lock: a claim round in progress queues its jobs first, then they are taken.
    pub(crate) async fn give_back_shop(&self, shop_id: &str) {
        let leases = {
            let _round = self.inner.claiming.lock().await;
            self.state().take_shop_jobs(shop_id)
        };
        self.give_back(&leases).await;
    }

    /// Takes a leased delivery of this shop out of its ready queue, if it waits there (read
    /// ahead, not yet being sent), and returns its lease: so cancelling it wins over the
    /// read-ahead, and it is never sent.
    pub async fn take_queued(&self, shop_id: &str, delivery_id: &str) -> Option<LeaseRef> {
        let _round = self.inner.claiming.lock().await;
        self.state().take_queued(shop_id, delivery_id)
    }

    /// An endpoint is gone: what the engine kept about it (pace, rate limiter, metric
    /// series) goes too, so none of it grows with endpoints created and deleted over months.
    pub fn forget_endpoint(&self, endpoint_id: &str) {
        self.state().forget_endpoint(endpoint_id);
        self.lock(&self.inner.secret_failures).remove(endpoint_id);
        self.inner.metrics.forget_endpoint(endpoint_id);
        self.inner.sender.forget_endpoint(endpoint_id);
    }

    /// Whether a lease token is one this node wrote.
    pub fn holds_lease(&self, token: &str) -> bool {
        token
            .strip_prefix(self.inner.lease_prefix.as_str())
            .is_some_and(|rest| rest.starts_with('.'))
    }

    /// Whether this is the first attempt since start whose secrets would not open for this
    /// endpoint (then the owner gets an alert; the next ones only fail).
    fn first_secret_failure(&self, endpoint_id: &str) -> bool {
        self.lock(&self.inner.secret_failures)
            .insert(endpoint_id.to_string())
    }

    /// Locks one of the engine's maps; a panic elsewhere never poisons the engine.
    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The engine's state, locked. Held only for a step of memory work, never across an
    /// await.
    fn state(&self) -> MutexGuard<'_, state::State> {
        self.lock(&self.inner.state)
    }

    /// A fresh lease token for one claim.
    fn lease_token(&self) -> String {
        let n = self.inner.claims.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n}", self.inner.lease_prefix)
    }

    /// The endpoint's plaintext secrets for one attempt, or why they cannot be had. Fails
    /// closed: a secret that does not open (the key changed) stops the attempt, so nothing goes
    /// out unsigned, without its basic-auth password or without its client certificate.
    fn open_secrets(&self, ep: &EndpointRow, now: i64) -> Result<attempt::Secrets, String> {
        let open = |what: &str, sealed: &str| {
            self.inner.secrets.open(sealed).map_err(|e| {
                format!("the endpoint's {what} could not be opened ({e}); nothing was sent")
            })
        };
        let signing = open("signing secret", &ep.secret_enc)?;
        let mut keys = vec![signing::decode_secret(&signing).map_err(|_| {
            "the endpoint's signing secret is malformed; nothing was sent".to_string()
        })?];
        if ep.previous_secret_until.is_some_and(|until| until > now) {
            if let Some(k) = ep
                .previous_secret_enc
                .as_deref()
                .and_then(|s| self.inner.secrets.open(s).ok())
                .and_then(|s| signing::decode_secret(&s).ok())
            {
                keys.push(k);
            }
        }
        let basic_auth = match (&ep.basic_auth_username, &ep.basic_auth_password_enc) {
            (Some(u), Some(p)) => Some((u.clone(), open("basic-auth password", p)?)),
            (Some(u), None) => Some((u.clone(), String::new())),
            _ => None,
        };
        let client_certificate = ep
            .client_certificate_enc
            .as_deref()
            .map(|c| open("client certificate", c))
            .transpose()?;
        let mut headers = Vec::with_capacity(ep.headers.len());
        for (name, value) in ep.headers.iter() {
            let v = value.as_str().unwrap_or_default();
            let v = if SecretBox::is_sealed(v) {
                open(&format!("header {name}"), v)?
            } else {
                v.to_string()
            };
            headers.push((name.to_ascii_lowercase(), v));
        }
        Ok(attempt::Secrets {
            signing_keys: keys,
            basic_auth,
            client_certificate,
            headers,
        })
    }
}

/// Stops the engine when the runtime that started it drops its tasks.
struct StopOnDrop(Engine);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.inner.shutdown.send(true);
        self.0.inner.wake.notify_one();
    }
}

/// Refreshes the queue gauges from the store (called when metrics are scraped).
pub async fn refresh_queue_metrics(engine: &Engine) {
    let inner = &engine.inner;
    if let Ok(counts) = inner.store.queue_counts().await {
        // The open statuses: what is still to be sent.
        let open = app::model::DeliveryStatus::ALL
            .into_iter()
            .filter(|s| !s.is_final())
            .map(|s| s.as_str());
        for status in open {
            let n = counts
                .iter()
                .find(|(s, _)| s == status)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            inner
                .metrics
                .queue_depth
                .get_or_create(&metrics::StatusLabel {
                    status: status.into(),
                })
                .set(n);
        }
    }
    let now = now_ms();
    let lag = inner
        .store
        .oldest_due(now)
        .await
        .ok()
        .flatten()
        .map(|t| (now - t) as f64 / 1000.0);
    inner.metrics.queue_lag_seconds.set(lag.unwrap_or(0.0));
}
