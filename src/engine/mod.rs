//! The delivery engine. The queue is the `deliveries` table: a dispatcher claims due rows in
//! batches with a lease (woken at once on enqueue and at the next due time), each claimed
//! delivery is sent by its own task within global and per-endpoint limits, and a recorder
//! writes finished attempts in batched transactions.

pub mod activity;
pub mod attempt;
pub mod catalog;
pub mod guard;
pub mod metrics;
pub mod retry;
pub mod sender;
pub mod signing;
pub mod template;

use crate::crypto::SecretBox;
use crate::ids::now_ms;
use crate::store::attempts::AttemptRecord;
use crate::store::deliveries::Claimed;
use crate::store::endpoints::EndpointRow;
use crate::store::events::EventRow;
use crate::store::Store;
use activity::{Activity, ActivityHub};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify, Semaphore};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub concurrency: usize,
    pub endpoint_concurrency: usize,
    pub lease: Duration,
    pub allow_private_targets: bool,
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
    in_flight: Mutex<HashMap<String, usize>>,
    /// Deliveries this process has leased and not yet finished, to give back on shutdown.
    leased: Mutex<std::collections::HashSet<String>>,
    limiters: Mutex<HashMap<String, (i64, Arc<DefaultDirectRateLimiter>)>>,
    shutdown: watch::Sender<bool>,
}

impl Engine {
    pub fn new(store: Store, secrets: SecretBox, config: EngineConfig) -> Self {
        Engine {
            inner: Arc::new(Inner {
                sender: sender::Sender::new(config.allow_private_targets),
                global: Arc::new(Semaphore::new(config.concurrency.max(1))),
                store,
                secrets,
                config,
                wake: Notify::new(),
                activity: ActivityHub::default(),
                metrics: metrics::Metrics::default(),
                in_flight: Mutex::new(HashMap::new()),
                leased: Mutex::new(Default::default()),
                limiters: Mutex::new(HashMap::new()),
                shutdown: watch::channel(false).0,
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
        self.inner.wake.notify_one();
    }

    /// Starts the dispatcher, the recorder and the retention purge.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(recorder(self.clone(), rx));
        tokio::spawn(purger(self.clone()));
        tokio::spawn(dispatcher(self.clone(), tx))
    }

    /// Stops claiming and waits (up to `grace`) for attempts in flight to finish and be
    /// recorded; what is still unfinished then is given back to the queue at once, so another
    /// process need not wait for the lease to run out.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.inner.shutdown.send(true);
        self.wake();
        let total = self.inner.config.concurrency.max(1) as u32;
        let finished = tokio::time::timeout(grace, self.inner.global.acquire_many(total))
            .await
            .is_ok();
        // Give the recorder a moment to write the last batch.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if !finished {
            let ids: Vec<String> = self.lock_leased().drain().collect();
            match self.inner.store.release(&ids, now_ms()).await {
                Ok(()) => tracing::info!(released = ids.len(), "unfinished deliveries given back"),
                Err(e) => {
                    tracing::error!(error = %e, "could not release deliveries; their leases will run out")
                }
            }
        }
    }

    fn lock_leased(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.inner.leased.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn room_for(&self, endpoint: &str) -> usize {
        let map = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.inner
            .config
            .endpoint_concurrency
            .saturating_sub(map.get(endpoint).copied().unwrap_or(0))
    }

    fn saturated(&self) -> Vec<String> {
        let cap = self.inner.config.endpoint_concurrency;
        let map = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, n)| **n >= cap)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn track(&self, endpoint: &str, delta: isize) {
        let mut map = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = map.entry(endpoint.to_string()).or_insert(0);
        *n = (*n as isize + delta).max(0) as usize;
        if *n == 0 {
            map.remove(endpoint);
        }
    }

    fn limiter(&self, ep: &EndpointRow) -> Option<Arc<DefaultDirectRateLimiter>> {
        let rate = NonZeroU32::new(ep.rate_limit_per_second.filter(|r| *r > 0)? as u32)?;
        let mut map = self
            .inner
            .limiters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match map.get(&ep.id) {
            Some((v, l)) if *v == rate.get() as i64 => Some(l.clone()),
            _ => {
                let l = Arc::new(RateLimiter::direct(Quota::per_second(rate)));
                map.insert(ep.id.clone(), (rate.get() as i64, l.clone()));
                Some(l)
            }
        }
    }

    /// The endpoint's plaintext secrets for one attempt.
    fn open_secrets(&self, ep: &EndpointRow, now: i64) -> attempt::Secrets {
        let open = |s: &str| self.inner.secrets.open(s).ok();
        let mut keys = Vec::new();
        if let Some(k) = open(&ep.secret_enc).and_then(|s| signing::decode_secret(&s).ok()) {
            keys.push(k);
        }
        if ep.previous_secret_until.is_some_and(|until| until > now) {
            if let Some(k) = ep
                .previous_secret_enc
                .as_deref()
                .and_then(open)
                .and_then(|s| signing::decode_secret(&s).ok())
            {
                keys.push(k);
            }
        }
        let basic_auth = ep.basic_auth_username.clone().map(|u| {
            let p = ep
                .basic_auth_password_enc
                .as_deref()
                .and_then(open)
                .unwrap_or_default();
            (u, p)
        });
        attempt::Secrets {
            signing_keys: keys,
            basic_auth,
        }
    }
}

/// Claims due deliveries and starts an attempt for each, within the concurrency limits.
async fn dispatcher(engine: Engine, tx: mpsc::UnboundedSender<(AttemptRecord, Activity)>) {
    let inner = &engine.inner;
    let lease_ms = inner.config.lease.as_millis() as i64;
    let mut shutdown = inner.shutdown.subscribe();
    let mut last_release = 0i64;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = now_ms();
        if now - last_release >= (lease_ms / 4).max(250) {
            last_release = now;
            match inner.store.release_expired_leases(now).await {
                Ok(n) if n > 0 => tracing::warn!(
                    released = n,
                    "deliveries whose lease ran out are queued again"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "could not release expired leases"),
            }
        }
        let free = inner.global.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            let skip = engine.saturated();
            match inner
                .store
                .claim_due(now, lease_ms, free.min(512), &skip, |ep| {
                    engine.room_for(ep)
                })
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "could not claim deliveries");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        };
        if !claimed.is_empty() {
            let full = claimed.len() >= free.min(512);
            if let Err(e) = start_attempts(&engine, claimed, &tx).await {
                tracing::error!(error = %e, "could not load claimed deliveries");
            }
            if !full {
                // Capacity frees up one attempt at a time; wait a moment so the next claim
                // takes a batch instead of a single row.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            continue;
        }
        // Nothing to do now: sleep until the next due time, new work, or freed capacity.
        let next = if free == 0 {
            None
        } else {
            inner.store.next_wakeup().await.ok().flatten()
        };
        let wait = next
            .map(|t| (t - now_ms()).clamp(1, lease_ms.max(1000)))
            .unwrap_or(lease_ms.clamp(1000, 5000));
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!("dispatcher stopped");
}

async fn start_attempts(
    engine: &Engine,
    claimed: Vec<Claimed>,
    tx: &mpsc::UnboundedSender<(AttemptRecord, Activity)>,
) -> sqlx::Result<()> {
    let store = &engine.inner.store;
    let mut endpoint_ids: Vec<String> = claimed.iter().map(|c| c.endpoint_id.clone()).collect();
    endpoint_ids.sort();
    endpoint_ids.dedup();
    let endpoints: HashMap<String, Arc<EndpointRow>> = store
        .endpoints_by_ids(&endpoint_ids)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), Arc::new(e)))
        .collect();
    let mut keys: Vec<(String, String)> = claimed
        .iter()
        .map(|c| (c.shop_id.clone(), c.event_id.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    let events: HashMap<(String, String), Arc<EventRow>> = store
        .events_by_keys(&keys)
        .await?
        .into_iter()
        .map(|(shop, e)| ((shop, e.id.clone()), Arc::new(e)))
        .collect();
    for c in claimed {
        let (Some(ep), Some(ev)) = (
            endpoints.get(&c.endpoint_id).cloned(),
            events
                .get(&(c.shop_id.clone(), c.event_id.clone()))
                .cloned(),
        ) else {
            // Its endpoint or event is gone (deleted meanwhile): nothing to send.
            let _ = store.cancel_delivery(&c.shop_id, &c.id, now_ms()).await;
            continue;
        };
        let Ok(permit) = engine.inner.global.clone().try_acquire_owned() else {
            let _ = store.release(std::slice::from_ref(&c.id), now_ms()).await;
            continue;
        };
        engine.track(&c.endpoint_id, 1);
        engine.lock_leased().insert(c.id.clone());
        let engine = engine.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Some(limiter) = engine.limiter(&ep) {
                limiter.until_ready().await;
            }
            let number = c.attempt_count + 1;
            let now = now_ms();
            let secrets = engine.open_secrets(&ep, now);
            let req = attempt::prepare(&ep, &ev, &c, number, &secrets, now);
            let cert = ep
                .client_certificate_enc
                .as_deref()
                .and_then(|s| engine.inner.secrets.open(s).ok());
            let out = engine
                .inner
                .sender
                .send(
                    &req,
                    cert.as_deref()
                        .map(|pem| (ep.id.as_str(), ep.updated_at, pem)),
                )
                .await;
            let rec = attempt::decide(&ep, &c, &ev.event_type, number, &req, &out, now_ms());
            let act = Activity {
                shop_id: c.shop_id.clone(),
                kind: "attempt".into(),
                at: rec.at,
                event_id: ev.id.clone(),
                event_type: ev.event_type.clone(),
                delivery_id: Some(c.id.clone()),
                endpoint_id: Some(ep.id.clone()),
                status: Some(rec.new_status.to_string()),
                status_code: rec.status_code,
                error_kind: rec.error_kind.clone(),
                attempt: Some(number),
                duration_ms: Some(rec.duration_ms),
            };
            let m = &engine.inner.metrics;
            m.attempt_seconds.observe(out.duration.as_secs_f64());
            if rec.new_status != "succeeded" {
                m.endpoint_failures
                    .get_or_create(&metrics::EndpointLabel {
                        endpoint_id: ep.id.clone(),
                    })
                    .inc();
            }
            let _ = tx.send((rec, act));
            engine.lock_leased().remove(&c.id);
            engine.track(&c.endpoint_id, -1);
            drop(permit);
            engine.wake();
        });
    }
    Ok(())
}

/// Writes finished attempts in batches; retries a failed write rather than losing it.
async fn recorder(engine: Engine, mut rx: mpsc::UnboundedReceiver<(AttemptRecord, Activity)>) {
    let inner = &engine.inner;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 1000 {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let records: Vec<AttemptRecord> = batch.iter().map(|(r, _)| r.clone()).collect();
        let mut delay = Duration::from_millis(50);
        while let Err(e) = inner.store.record_attempts(&records).await {
            tracing::error!(error = %e, "could not record attempts; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        for (rec, act) in batch {
            inner
                .metrics
                .attempts
                .get_or_create(&metrics::OutcomeLabel {
                    outcome: rec.new_status.to_string(),
                })
                .inc();
            if let Some((kind, message)) = &rec.alert {
                tracing::warn!(shop_id = %rec.shop_id, kind, message, "alert");
            }
            inner.activity.publish(act);
        }
        engine.wake();
    }
}

/// Purges what retention no longer keeps, every few minutes.
async fn purger(engine: Engine) {
    let mut shutdown = engine.inner.shutdown.subscribe();
    loop {
        match engine.inner.store.purge_expired(now_ms()).await {
            Ok((a, d)) if a + d > 0 => {
                tracing::info!(attempts = a, deliveries = d, "retention purge")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention purge failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Refreshes the queue gauges from the store (called when metrics are scraped).
pub async fn refresh_queue_metrics(engine: &Engine) {
    let inner = &engine.inner;
    if let Ok(counts) = inner.store.queue_counts().await {
        for status in [
            "pending",
            "delivering",
            "retrying",
            "succeeded",
            "failed",
            "cancelled",
            "held",
        ] {
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
