//! Claiming and running deliveries.
//!
//! The dispatcher leases due deliveries from the store in batches into per-endpoint ready
//! queues, a little ahead of what can be sent at once, so that sending never waits for a
//! database round trip. Workers (at most the endpoint concurrency per endpoint, at most the
//! global concurrency in all) take jobs from their endpoint's ready queue one after another
//! and hand each finished attempt to the recorder.
//!
//! Claiming is level-triggered: after every finished job the dispatcher looks, in memory only,
//! whether a claim is worth a query (new work was announced, a timer fell due, or an endpoint
//! known to have more due work has drained half of its allowance), so a busy queue is claimed
//! in large batches and an idle one costs nothing.
//!
//! A claim asks only particular endpoints, each with a seek of its own: those publishing just
//! named, those the last claim left with more due, and, when work was announced without its
//! endpoints or a timer fell due, every endpoint with due work (found one index seek per
//! endpoint). No claim scans a backlog, and no endpoint's backlog hides another's deliveries.

use super::activity::Activity;
use super::recorder::RecorderTx;
use super::state::Job;
use super::state::{Claims, Limits};
use super::{attempt, metrics, Engine, Inner};
use crate::ids::{now_ms, EndpointId, EventId, ShopId};
use crate::store::deliveries::Claimed;
use crate::store::endpoints::EndpointRow;
use crate::store::events::EventRow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Room kept between the end of an attempt (its start plus the endpoint's timeout) and the end
/// of its lease, for what surrounds the request: signing, scheduling, reading the answer.
fn lease_margin(lease_ms: i64) -> i64 {
    (lease_ms / 4).min(2_000)
}

/// Whether an attempt started now surely ends within the job's lease. One that waited too
/// long (in the ready queue, for the rate limit) is given back unsent instead: sending it
/// could outlast the lease while another worker, after the lease ran out, sends it again.
fn lease_covers(c: &Claimed, ep: &EndpointRow, lease_ms: i64, now: i64) -> bool {
    now + ep.timeout_ms + lease_margin(lease_ms) <= c.lease_until
}

impl Engine {
    /// The limits the state's decisions follow, with this node's share of the endpoint
    /// concurrency.
    fn limits(&self) -> Limits {
        Limits {
            concurrency: self.inner.config.concurrency,
            endpoint_concurrency: self.endpoint_concurrency(),
            lease_ms: self.inner.config.lease.as_millis() as i64,
        }
    }

    /// Attempts an endpoint may have in flight on this node: the configured concurrency shared
    /// by the nodes alive (at least one each), so together they hold to it.
    fn endpoint_concurrency(&self) -> usize {
        (self.inner.config.endpoint_concurrency.max(1) / self.live_nodes()).max(1)
    }

    /// Gives back read-ahead so endpoints with nothing leased get `wanted` leases (see
    /// `State::read_ahead_to_give_back`).
    async fn make_room(&self, wanted: usize) -> crate::store::Result<()> {
        let given = self.state().read_ahead_to_give_back(wanted);
        if given.is_empty() {
            return Ok(());
        }
        self.inner.store.release(&given, now_ms()).await
    }

    /// Starts workers for ready jobs, up to the endpoint concurrency per endpoint.
    ///
    /// A worker holds a global permit only while it sends (see [`run`]), never while it waits
    /// for its endpoint's rate limit or between jobs. Permits are handed out first come, first
    /// served, and only one worker per endpoint queues for one at a time, so they go round
    /// the endpoints: slow endpoints cannot keep every permit for themselves.
    fn spawn_workers(&self, main: &tokio::runtime::Handle, tx: &RecorderTx) {
        let limits = self.limits();
        let start = self.state().start_workers(&limits);
        for (endpoint, n) in start {
            for _ in 0..n {
                let engine = self.clone();
                let tx = tx.clone();
                let endpoint = endpoint.clone();
                main.spawn(async move {
                    worker(&engine, &endpoint, &tx).await;
                    if engine.state().worker_ended(&endpoint) {
                        engine.lock(&engine.inner.gates).remove(&endpoint);
                    }
                    engine.inner.wake.notify_one();
                });
            }
        }
    }

    /// The endpoint's turn to queue for a global permit (see `Inner::gates`).
    fn gate(&self, endpoint: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.lock(&self.inner.gates)
            .entry(EndpointId::from(endpoint))
            .or_default()
            .clone()
    }

    /// Whether the endpoint has jobs waiting for a worker (and the engine is not stopping).
    fn has_ready(&self, endpoint: &str) -> bool {
        !*self.inner.shutdown.borrow() && self.state().has_ready(endpoint)
    }

    fn next_job(&self, endpoint: &str) -> Option<Job> {
        if *self.inner.shutdown.borrow() {
            return None;
        }
        self.state().next_job(endpoint)
    }
}

/// Claims due deliveries and keeps workers running, until shutdown.
pub(super) async fn dispatcher(engine: Engine, tx: RecorderTx, main: tokio::runtime::Handle) {
    let inner: &Inner = &engine.inner;
    let lease_ms = inner.config.lease.as_millis() as i64;
    let mut shutdown = inner.shutdown.subscribe();
    let mut last_release = 0i64;
    let mut state = Claims {
        next_due: Some(0),
        ..Claims::default()
    };
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = now_ms();
        let lease_ran_out = state.next_lease_end.is_some_and(|t| t <= now);
        if lease_ran_out || now - last_release >= (lease_ms / 4).max(250) {
            last_release = now;
            state.next_lease_end = None;
            match inner.store.release_expired_leases(now).await {
                Ok(n) if n > 0 => {
                    tracing::warn!(
                        released = n,
                        "deliveries whose lease ran out are queued again"
                    );
                    inner.announced.store(true, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "could not release expired leases"),
            }
        }
        engine.spawn_workers(&main, &tx);
        let announced = inner.announced.swap(false, Ordering::SeqCst);
        let worth = engine
            .state()
            .worth_claiming(&state, announced, now_ms(), &engine.limits());
        if worth {
            // Work announced without its endpoints, or a timer: look for every endpoint with
            // due work; otherwise the announced and backlogged endpoints are enough.
            let discover = announced || state.next_due.is_some_and(|t| t <= now_ms());
            if let Err(e) = claim_round(&engine, &mut state, lease_ms, discover).await {
                tracing::error!(error = %e, "could not claim deliveries");
                inner.announced.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            engine.spawn_workers(&main, &tx);
            continue;
        }
        let wait = [state.next_due, state.next_lease_end]
            .into_iter()
            .flatten()
            .min()
            .map(|t| (t - now_ms()).clamp(1, lease_ms.max(1000)))
            .unwrap_or(lease_ms.clamp(1000, 5000));
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {
                state.next_due = Some(0);
            }
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!("dispatcher stopped");
}

/// One claim: leases what endpoints and the process have room for, loads what sending needs,
/// and queues the jobs. Updates `state` with what was left behind.
///
/// The endpoints asked are those announced by publishing, those left with a backlog by the
/// last claim, and, when `discover` is set, every endpoint with due work.
async fn claim_round(
    engine: &Engine,
    state: &mut Claims,
    lease_ms: i64,
    discover: bool,
) -> crate::store::Result<()> {
    let store = &engine.inner.store;
    let _round = engine.inner.claiming.lock().await;
    let now = now_ms();
    engine.inner.metrics.claim_rounds.inc();
    let hints = engine.state().take_hints();
    let mut candidates: Vec<EndpointId> = hints.into_iter().chain(state.backlog.drain()).collect();
    if discover {
        candidates.extend(store.endpoints_with_due(now).await?);
    }
    candidates.sort();
    candidates.dedup();
    if !candidates.is_empty() {
        // Whoever came first last time comes later this time, should the room run out.
        state.turn = state.turn.wrapping_add(1);
        let at = state.turn % candidates.len();
        candidates.rotate_left(at);
    }
    // An endpoint not seen since start may be rate-limited, which allows it no read-ahead:
    // learn that from its row before deciding its room.
    let unseen: Vec<EndpointId> = {
        let st = engine.state();
        candidates
            .iter()
            .filter(|e| !st.has_pace(e) && !st.has_limit(e))
            .cloned()
            .collect()
    };
    if !unseen.is_empty() {
        let rows = store.endpoints_by_ids(&unseen).await?;
        let mut st = engine.state();
        for ep in &rows {
            st.note_limit(ep);
        }
    }
    let limits = engine.limits();
    // Endpoints with nothing leased first, with room made for them if need be.
    let (idle_wanted, room) = {
        let st = engine.state();
        candidates.sort_by_key(|e| !st.is_idle(e));
        let wanted: usize = candidates
            .iter()
            .take_while(|e| st.is_idle(e))
            .map(|e| st.room_for(e, &limits).min(limits.endpoint_concurrency))
            .sum();
        (wanted, st.global_room(&limits))
    };
    if room < idle_wanted {
        engine.make_room(idle_wanted - room).await?;
    }
    let mut targets: Vec<(EndpointId, usize)> = Vec::new();
    {
        let st = engine.state();
        let mut budget = st
            .global_room(&limits)
            .min(engine.inner.store.tuning().max_claim);
        for endpoint in candidates {
            let n = st.room_for(&endpoint, &limits).min(budget);
            if n == 0 {
                state.backlog.insert(endpoint);
                continue;
            }
            budget -= n;
            targets.push((endpoint, n));
        }
    }
    let claimed = store
        .claim_due(now, lease_ms, &engine.lease_token(), &targets)
        .await?;
    let mut taken: HashMap<&str, usize> = HashMap::new();
    for c in &claimed {
        *taken.entry(c.endpoint_id.as_str()).or_insert(0) += 1;
    }
    for (endpoint, n) in &targets {
        if taken.get(endpoint.as_str()).copied().unwrap_or(0) >= *n {
            state.backlog.insert(endpoint.clone());
        }
    }
    // The next delivery to fall due that no claim has seen yet (a seek, not a scan).
    (state.next_due, state.next_lease_end) = store.next_wakeup(now).await?;
    if claimed.is_empty() {
        return Ok(());
    }
    engine
        .state()
        .note_leased(claimed.iter().map(Claimed::lease));
    let mut endpoint_ids: Vec<EndpointId> = claimed.iter().map(|c| c.endpoint_id.clone()).collect();
    endpoint_ids.sort();
    endpoint_ids.dedup();
    // Events published moments ago are still in memory; only the others are read.
    let mut events: HashMap<(ShopId, EventId), Arc<EventRow>> = HashMap::new();
    let mut keys: Vec<(ShopId, EventId)> = Vec::new();
    {
        let recent = engine.lock(&engine.inner.recent);
        for c in &claimed {
            let key = (c.shop_id.clone(), c.event_id.clone());
            if events.contains_key(&key) {
                continue;
            }
            match recent.get(&c.shop_id, &c.event_id) {
                Some(e) => {
                    events.insert(key, e);
                }
                None => keys.push(key),
            }
        }
    }
    keys.sort();
    keys.dedup();
    let loaded = async {
        let endpoints = store.endpoints_by_ids(&endpoint_ids).await?;
        let events = if keys.is_empty() {
            Vec::new()
        } else {
            store.events_by_keys(&keys).await?
        };
        Ok::<_, crate::store::Error>((endpoints, events))
    }
    .await;
    let (endpoints, loaded_events) = match loaded {
        Ok(x) => x,
        Err(e) => {
            // Give them back rather than wait for their lease.
            let leases: Vec<_> = claimed.iter().map(Claimed::lease).collect();
            if let Err(release) = store.release(&leases, now_ms()).await {
                tracing::warn!(error = %release, deliveries = leases.len(), node = %engine.node_id(),
                    "could not give back deliveries whose endpoints or events could not be read; their leases will run out");
            }
            engine.state().forget_leased(&leases);
            return Err(e);
        }
    };
    let endpoints: HashMap<EndpointId, Arc<EndpointRow>> = endpoints
        .into_iter()
        .map(|e| (e.id.clone(), Arc::new(e)))
        .collect();
    {
        let mut st = engine.state();
        for ep in endpoints.values() {
            st.note_limit(ep);
        }
    }
    events.extend(
        loaded_events
            .into_iter()
            .map(|(shop, e)| ((shop, e.id.clone()), Arc::new(e))),
    );
    let slots = reserve_slots(engine, &claimed, &endpoints).await;
    let mut slots: HashMap<EndpointId, VecDeque<i64>> = slots;
    let mut gone = Vec::new();
    {
        let mut st = engine.state();
        for c in claimed {
            let (Some(endpoint), Some(event)) = (
                endpoints.get(&c.endpoint_id).cloned(),
                events
                    .get(&(c.shop_id.clone(), c.event_id.clone()))
                    .cloned(),
            ) else {
                gone.push(c.lease());
                continue;
            };
            let not_before = slots.get_mut(&c.endpoint_id).and_then(VecDeque::pop_front);
            st.queue(Job {
                delivery: c,
                endpoint,
                event,
                not_before,
            });
        }
    }
    if !gone.is_empty() {
        // Its endpoint or event is gone (deleted meanwhile): nothing to send.
        store.cancel_leased(&gone, now_ms()).await?;
        engine.state().forget_leased(&gone);
    }
    Ok(())
}

/// Send slots for the claimed deliveries of rate-limited endpoints, in claim order, from the
/// schedule every node shares. Should the store fail, the slots are spaced by this node alone.
async fn reserve_slots(
    engine: &Engine,
    claimed: &[Claimed],
    endpoints: &HashMap<EndpointId, Arc<EndpointRow>>,
) -> HashMap<EndpointId, VecDeque<i64>> {
    let mut counts: HashMap<&EndpointId, usize> = HashMap::new();
    for c in claimed {
        *counts.entry(&c.endpoint_id).or_insert(0) += 1;
    }
    let mut slots = HashMap::new();
    for (endpoint, n) in counts {
        let Some(rate) = endpoints
            .get(endpoint)
            .and_then(|ep| ep.rate_limit_per_second)
            .filter(|r| *r > 0)
        else {
            continue;
        };
        let now = now_ms();
        let times = match engine
            .inner
            .store
            .reserve_rate_slots(endpoint, n, rate, now)
            .await
        {
            Ok(times) => times,
            Err(e) => {
                tracing::warn!(error = %e, %endpoint, "could not reserve rate-limit slots");
                (0..n as i64).map(|k| now + k * 1000 / rate).collect()
            }
        };
        slots.insert(endpoint.clone(), times.into());
    }
    slots
}

/// Runs an endpoint's ready jobs one after another, until its queue is empty.
async fn worker(engine: &Engine, endpoint: &str, tx: &RecorderTx) {
    while engine.has_ready(endpoint) {
        // The rate limit first, then a global permit, queued for in turn with the other
        // endpoints; only then is a job taken. Until that moment it stays in the ready queue,
        // where read-ahead can be given back to others (`make_room`) and cancelled.
        let slot = engine.state().front_not_before(endpoint);
        if let Some(at) = slot {
            sleep_until_ms(at).await;
        }
        // A free permit is taken at once (none is free while others queue: the semaphore
        // hands released permits to its waiters first); only when none is free does the
        // endpoint queue, one worker at a time, behind the other endpoints.
        let permit = match engine.inner.global.try_acquire() {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::Closed) => return,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let gate = engine.gate(endpoint);
                let _turn = gate.lock().await;
                let Ok(permit) = engine.inner.global.acquire().await else {
                    return;
                };
                permit
            }
        };
        let Some(job) = engine.next_job(endpoint) else {
            return;
        };
        // A job that overtook the front (higher priority) may have a later slot.
        if let Some(at) = job.not_before {
            sleep_until_ms(at).await;
        }
        let id = job.delivery.id.clone();
        let recording = run(engine, job, tx).await;
        drop(permit);
        engine.state().finished(&id, recording);
        engine.inner.wake.notify_one();
    }
}

/// Waits until the wall-clock time `at` (ms), if it is still ahead.
async fn sleep_until_ms(at: i64) {
    let wait = at - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

/// One attempt, its global permit held by the caller: sends, decides, and passes the outcome
/// to the recorder (true), or gives the job back unsent when its lease no longer covers an
/// attempt (false).
async fn run(engine: &Engine, job: Job, tx: &RecorderTx) -> bool {
    let Job {
        delivery: c,
        endpoint: ep,
        event: ev,
        ..
    } = job;
    let lease_ms = engine.inner.config.lease.as_millis() as i64;
    if !lease_covers(&c, &ep, lease_ms, now_ms()) {
        if let Err(e) = engine.inner.store.release(&[c.lease()], now_ms()).await {
            tracing::warn!(error = %e, delivery_id = %c.id, node = %engine.node_id(),
                "could not give back a delivery whose lease ran short; the lease will run out");
        }
        engine.inner.announced.store(true, Ordering::SeqCst);
        return false;
    }
    let number = c.attempt_count + 1;
    let now = now_ms();
    let mut secret_alert = None;
    let body = attempt::body_for(&ep, &ev, engine.inner.config.max_body_bytes);
    let (req, out) = match (engine.open_secrets(&ep, now), body) {
        (Ok(secrets), Ok(body)) => {
            let req = attempt::prepare(&ep, &ev, &c, number, &secrets, body, now);
            let cert = secrets
                .client_certificate
                .as_deref()
                .map(|pem| (ep.id.as_str(), ep.updated_at, pem));
            let out = engine.inner.sender.send(&req, cert).await;
            (req, out)
        }
        (Ok(_), Err(why)) => {
            // The template cannot make this event's body: nothing is sent, and the delivery
            // fails at once (the same render would fail again).
            let req = attempt::prepare(
                &ep,
                &ev,
                &c,
                number,
                &attempt::Secrets::default(),
                attempt::no_body(&ep),
                now,
            );
            tracing::warn!(endpoint_id = %ep.id, delivery_id = %c.id, "{why}");
            let out = super::sender::Outcome {
                error_kind: Some(attempt::TEMPLATE_ERROR),
                error_message: Some(why),
                ..Default::default()
            };
            (req, out)
        }
        (Err(why), body) => {
            // Nothing is sent: the attempt fails (and retries by the policy, in case the key
            // is put right), and the owner is told once per endpoint and process.
            let body = body.unwrap_or_else(|_| attempt::no_body(&ep));
            let req = attempt::prepare(
                &ep,
                &ev,
                &c,
                number,
                &attempt::Secrets::default(),
                body,
                now,
            );
            tracing::error!(endpoint_id = %ep.id, "{why}");
            if engine.first_secret_failure(&ep.id) {
                secret_alert = Some((
                    "secret_unavailable".to_string(),
                    format!(
                        "Endpoint {} ({}): {why}.",
                        ep.id,
                        attempt::display_url(&ep.url)
                    ),
                ));
            }
            let out = super::sender::Outcome {
                error_kind: Some("secret"),
                error_message: Some(why),
                ..Default::default()
            };
            (req, out)
        }
    };
    let mut rec = attempt::decide(&ep, &c, &ev, number, &req, &out, now_ms());
    if rec.alert.is_none() {
        rec.alert = secret_alert;
    }
    let act = Activity {
        shop_id: c.shop_id.to_string(),
        kind: "attempt".into(),
        at: rec.at,
        event_id: ev.id.to_string(),
        event_type: ev.event_type.clone(),
        delivery_id: Some(c.id.to_string()),
        endpoint_id: Some(ep.id.to_string()),
        status: Some(rec.new_status.as_str().to_string()),
        status_code: rec.status_code,
        error_kind: rec.error_kind.clone(),
        attempt: Some(number),
        duration_ms: Some(rec.duration_ms),
    };
    let m = &engine.inner.metrics;
    m.attempt_seconds.observe(out.duration.as_secs_f64());
    engine
        .state()
        .note_pace(&ep.id, out.duration.as_secs_f64() * 1000.0);
    if rec.new_status != app::model::DeliveryStatus::Succeeded {
        m.endpoint_failures
            .get_or_create(&metrics::EndpointLabel {
                endpoint_id: ep.id.to_string(),
            })
            .inc();
    }
    tx.send((rec, act)).is_ok()
}
