//! What the engine knows between claims, in one place: the jobs leased and waiting per
//! endpoint, the workers running, each endpoint's pace and rate limit, the endpoints announced
//! by publishing, and every lease this node holds.
//!
//! Every decision the dispatcher takes from memory — how much an endpoint may lease, whether a
//! claim is worth a query, which read-ahead to give back, which job goes next — is a method
//! here. A test builds a state, steps it and looks, with no database, no runtime and no clock.

use crate::ids::{DeliveryId, EndpointId};
use crate::store::deliveries::{Claimed, LeaseRef};
use crate::store::endpoints::EndpointRow;
use crate::store::events::EventRow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// A leased delivery with what sending it needs.
pub(super) struct Job {
    pub delivery: Claimed,
    pub endpoint: Arc<EndpointRow>,
    pub event: Arc<EventRow>,
    /// When a rate-limited endpoint's send slot for this job comes (ms): reserved on the
    /// schedule all nodes share.
    pub not_before: Option<i64>,
}

/// A fast endpoint may have this many times its concurrency leased (in flight included), so
/// one claim brings it many rounds of work at once and its workers keep sending while the
/// writer is busy with a large publish or a record batch.
pub(super) const PREFETCH_FACTOR: usize = 32;
/// The node may have this many times the global concurrency leased.
pub(super) const GLOBAL_FACTOR: usize = 8;
/// Finished attempts the recorder may have waiting before claiming pauses: a few record
/// batches. Without the bound a store slower to write than the endpoints are to answer (a
/// large PostgreSQL table) lets the recorder fall behind until leases run out under attempts
/// already sent, and those deliveries are claimed and sent again.
pub(super) const MAX_UNRECORDED: usize = 2_000;

/// The limits the state's decisions follow.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Deliveries in flight on this node at once.
    pub concurrency: usize,
    /// Deliveries in flight to one endpoint on this node (its share of the installation's).
    pub endpoint_concurrency: usize,
    pub lease_ms: i64,
}

/// What the dispatcher remembers between rounds of claims.
#[derive(Default)]
pub(super) struct Claims {
    /// Endpoints whose last claim took all the room they had: more may be due for them.
    pub backlog: HashSet<EndpointId>,
    /// When the next delivery falls due, if nothing is due now.
    pub next_due: Option<i64>,
    /// When the next lease runs out (perhaps already): its delivery is released then, at
    /// once, rather than claimed for in vain until the next release tick.
    pub next_lease_end: Option<i64>,
    /// Turns the order endpoints are served in when a claim cannot take all they have room for.
    pub turn: usize,
}

#[derive(Default)]
pub(super) struct State {
    /// Workers running per endpoint (each sends one delivery at a time).
    workers: HashMap<EndpointId, usize>,
    /// Leased deliveries per endpoint waiting for a worker, in the order they go.
    ready: HashMap<EndpointId, VecDeque<Job>>,
    /// Recent attempt duration per endpoint, in ms (see `allowance`).
    pace: HashMap<EndpointId, f64>,
    /// Endpoints announced by publishing since the last claim.
    hints: HashSet<EndpointId>,
    /// Deliveries this node has leased and not yet finished (id → lease token), to give back
    /// on shutdown.
    leased: HashMap<DeliveryId, String>,
    /// Rate limits (per second) of the endpoints that have one, as their rows last said; the
    /// send slots themselves come from the shared schedule in the store.
    limiters: HashMap<EndpointId, i64>,
    /// Attempts handed to the recorder and not yet written.
    unrecorded: usize,
}

impl State {
    /// Deliveries an endpoint may have leased (in flight and ready) at once: its concurrency,
    /// and as much read-ahead as it sends within a quarter of the lease at its recent pace, so
    /// no job waits in a ready queue until its lease runs out. A rate-limited endpoint gets no
    /// read-ahead: its jobs would wait for their slots, not for a worker.
    pub fn allowance(&self, endpoint: &str, limits: &Limits) -> usize {
        let n = limits.endpoint_concurrency.max(1);
        if self.limiters.contains_key(endpoint) {
            return n;
        }
        let max_ahead = n * (PREFETCH_FACTOR - 1);
        let ahead = match self.pace.get(endpoint) {
            Some(avg_ms) => {
                let horizon = limits.lease_ms as f64 / 4.0;
                ((n as f64 * horizon / avg_ms.max(1.0)) as usize).min(max_ahead)
            }
            None => max_ahead,
        };
        n + ahead
    }

    /// Folds an attempt's duration into its endpoint's pace (a moving average).
    pub fn note_pace(&mut self, endpoint: &str, ms: f64) {
        let avg = self.pace.entry(EndpointId::from(endpoint)).or_insert(ms);
        *avg = *avg * 0.9 + ms * 0.1;
    }

    /// Whether the endpoint's pace is known (it was sent to since start).
    pub fn has_pace(&self, endpoint: &str) -> bool {
        self.pace.contains_key(endpoint)
    }

    /// How many more deliveries an endpoint may lease now.
    pub fn room_for(&self, endpoint: &str, limits: &Limits) -> usize {
        let busy = self.workers.get(endpoint).copied().unwrap_or(0);
        let ready = self.ready.get(endpoint).map_or(0, VecDeque::len);
        self.allowance(endpoint, limits)
            .saturating_sub(busy + ready)
    }

    /// Whether an endpoint has nothing leased (nothing in flight, nothing read ahead).
    pub fn is_idle(&self, endpoint: &str) -> bool {
        !self.workers.contains_key(endpoint) && !self.ready.contains_key(endpoint)
    }

    /// Deliveries this node may lease now, across all endpoints: none while the recorder is
    /// behind.
    pub fn global_room(&self, limits: &Limits) -> usize {
        if self.recorder_behind() {
            return 0;
        }
        (limits.concurrency.max(1) * GLOBAL_FACTOR).saturating_sub(self.leased.len())
    }

    /// Whether the recorder has so many attempts waiting that nothing more is claimed (see
    /// [`MAX_UNRECORDED`]).
    pub fn recorder_behind(&self) -> bool {
        self.unrecorded >= MAX_UNRECORDED
    }

    /// The recorder wrote `n` attempts.
    pub fn recorded(&mut self, n: usize) {
        self.unrecorded = self.unrecorded.saturating_sub(n);
    }

    /// Whether a claim query is worth running now: new work was announced, a timer fell due,
    /// or an endpoint with more due work has drained half of its allowance (and the node has
    /// room for a batch worth a query).
    pub fn worth_claiming(
        &self,
        claims: &Claims,
        announced: bool,
        now: i64,
        limits: &Limits,
    ) -> bool {
        if self.recorder_behind() {
            return false;
        }
        let room = self.global_room(limits);
        if room == 0 {
            // Full of read-ahead: still worth a claim for an endpoint with nothing leased,
            // which others' read-ahead then makes room for (see `read_ahead_to_give_back`).
            return self
                .hints
                .iter()
                .chain(&claims.backlog)
                .any(|e| self.is_idle(e));
        }
        if announced || !self.hints.is_empty() || claims.next_due.is_some_and(|t| t <= now) {
            return true;
        }
        let low_water = (limits.concurrency / 4).clamp(1, 64);
        room >= low_water
            && claims
                .backlog
                .iter()
                .any(|e| self.room_for(e, limits) * 2 >= self.allowance(e, limits))
    }

    /// Read-ahead is speculative: when endpoints with nothing leased need `wanted` leases the
    /// node has no room for, the endpoints with the most read ahead give that many back (from
    /// the back of their ready queues, not yet sent). Slow endpoints' backlogs then cannot fill
    /// the node's leases and keep a healthy endpoint's event waiting.
    pub fn read_ahead_to_give_back(&mut self, wanted: usize) -> Vec<LeaseRef> {
        let mut given = Vec::new();
        if self.recorder_behind() {
            // Nothing would be claimed in its place.
            return given;
        }
        while given.len() < wanted {
            let Some(queue) = self
                .ready
                .values_mut()
                .filter(|q| q.len() > 1)
                .max_by_key(|q| q.len())
            else {
                break;
            };
            match queue.pop_back() {
                Some(job) => given.push(job.delivery.lease()),
                None => break,
            }
        }
        self.forget_leased(&given);
        given
    }

    /// Endpoints announced by publishing since the last claim (taken: the next claim asks them).
    pub fn take_hints(&mut self) -> HashSet<EndpointId> {
        std::mem::take(&mut self.hints)
    }

    pub fn add_hints<'a>(&mut self, endpoints: impl IntoIterator<Item = &'a str>) {
        self.hints
            .extend(endpoints.into_iter().map(EndpointId::from));
    }

    /// Claimed deliveries are this node's to send or give back.
    pub fn note_leased(&mut self, leases: impl IntoIterator<Item = LeaseRef>) {
        self.leased.extend(leases);
    }

    /// These deliveries are no longer this node's to give back on shutdown.
    pub fn forget_leased(&mut self, leases: &[LeaseRef]) {
        for (id, _) in leases {
            self.leased.remove(id);
        }
    }

    /// A job ended: its delivery is no longer held here. `recording` says whether its attempt
    /// went to the recorder (a job given back unsent did not).
    pub fn finished(&mut self, delivery_id: &str, recording: bool) {
        self.leased.remove(delivery_id);
        if recording {
            self.unrecorded += 1;
        }
    }

    /// Every lease still held, and no job waiting any more (shutdown).
    pub fn give_up_all(&mut self) -> Vec<LeaseRef> {
        self.ready.clear();
        self.leased.drain().collect()
    }

    /// Queues a leased job behind every job of its priority or higher and ahead of the lower
    /// ones: a high-priority delivery overtakes what was read ahead. (Usually the back: one
    /// step.)
    pub fn queue(&mut self, job: Job) {
        let queue = self
            .ready
            .entry(job.delivery.endpoint_id.clone())
            .or_default();
        let at = queue
            .iter()
            .rposition(|j| j.delivery.priority <= job.delivery.priority)
            .map_or(0, |i| i + 1);
        queue.insert(at, job);
    }

    /// The endpoint's jobs not yet started, taken out (its settings changed).
    pub fn take_endpoint_jobs(&mut self, endpoint: &str) -> Vec<LeaseRef> {
        let leases: Vec<LeaseRef> = self
            .ready
            .remove(endpoint)
            .into_iter()
            .flatten()
            .map(|j| j.delivery.lease())
            .collect();
        self.forget_leased(&leases);
        leases
    }

    /// A shop's jobs not yet started, taken out of every ready queue (its webhooks were
    /// turned off).
    pub fn take_shop_jobs(&mut self, shop_id: &str) -> Vec<LeaseRef> {
        let mut leases = Vec::new();
        for queue in self.ready.values_mut() {
            queue.retain(|j| {
                let mine = j.delivery.shop_id == shop_id;
                if mine {
                    leases.push(j.delivery.lease());
                }
                !mine
            });
        }
        self.ready.retain(|_, queue| !queue.is_empty());
        self.forget_leased(&leases);
        leases
    }

    /// Takes a leased delivery of this shop out of its ready queue, if it waits there (read
    /// ahead, not yet being sent), and returns its lease.
    pub fn take_queued(&mut self, shop_id: &str, delivery_id: &str) -> Option<LeaseRef> {
        let (endpoint, at) = self.ready.iter().find_map(|(endpoint, queue)| {
            queue
                .iter()
                .position(|j| j.delivery.id == delivery_id && j.delivery.shop_id == shop_id)
                .map(|at| (endpoint.clone(), at))
        })?;
        let queue = self.ready.get_mut(&endpoint)?;
        let job = queue.remove(at)?;
        if queue.is_empty() {
            self.ready.remove(&endpoint);
        }
        let lease = job.delivery.lease();
        self.forget_leased(std::slice::from_ref(&lease));
        Some(lease)
    }

    /// The workers to start: per endpoint with jobs waiting, as many as its concurrency has
    /// room for, counted as running from now.
    pub fn start_workers(&mut self, limits: &Limits) -> Vec<(EndpointId, usize)> {
        let mut start = Vec::new();
        for (endpoint, queue) in &self.ready {
            if queue.is_empty() {
                continue;
            }
            let busy = self.workers.entry(endpoint.clone()).or_insert(0);
            let want = queue
                .len()
                .min(limits.endpoint_concurrency.max(1).saturating_sub(*busy));
            *busy += want;
            if want > 0 {
                start.push((endpoint.clone(), want));
            }
        }
        self.workers.retain(|_, n| *n > 0);
        start
    }

    /// A worker of the endpoint ended; true when it was the endpoint's last.
    pub fn worker_ended(&mut self, endpoint: &str) -> bool {
        match self.workers.get_mut(endpoint) {
            Some(n) => {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.workers.remove(endpoint);
                    true
                } else {
                    false
                }
            }
            None => true,
        }
    }

    /// Whether the endpoint has jobs waiting for a worker.
    pub fn has_ready(&self, endpoint: &str) -> bool {
        self.ready.get(endpoint).is_some_and(|q| !q.is_empty())
    }

    /// When the endpoint's next job may be sent (its rate-limit slot), if it must wait.
    pub fn front_not_before(&self, endpoint: &str) -> Option<i64> {
        self.ready
            .get(endpoint)
            .and_then(|q| q.front())
            .and_then(|j| j.not_before)
    }

    /// The endpoint's next job, out of its ready queue.
    pub fn next_job(&mut self, endpoint: &str) -> Option<Job> {
        let queue = self.ready.get_mut(endpoint)?;
        let job = queue.pop_front();
        if queue.is_empty() {
            self.ready.remove(endpoint);
        }
        job
    }

    /// Notes the endpoint's rate limit (per second), if it has one.
    pub fn note_limit(&mut self, ep: &EndpointRow) -> Option<i64> {
        match ep.rate_limit_per_second.filter(|r| *r > 0) {
            Some(rate) => {
                self.limiters.insert(ep.id.clone(), rate);
                Some(rate)
            }
            None => {
                self.limiters.remove(&ep.id);
                None
            }
        }
    }

    /// Whether the endpoint's rate limit is known (or that it has none).
    pub fn has_limit(&self, endpoint: &str) -> bool {
        self.limiters.contains_key(endpoint)
    }

    /// An endpoint is gone: what was kept about it goes too.
    pub fn forget_endpoint(&mut self, endpoint: &str) {
        self.pace.remove(endpoint);
        self.limiters.remove(endpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::deliveries::Claimed;
    use crate::store::events::EventRow;
    use sqlx::types::Json;
    use std::sync::Arc;

    const LIMITS: Limits = Limits {
        concurrency: 4,
        endpoint_concurrency: 2,
        lease_ms: 60_000,
    };

    fn endpoint(id: &str) -> EndpointRow {
        EndpointRow {
            id: id.into(),
            shop_id: "shp_1".into(),
            url: "https://example.com/hook".into(),
            description: String::new(),
            enabled: true,
            event_types: Json(vec![]),
            channels: Json(vec![]),
            basic_auth_username: None,
            basic_auth_password_enc: None,
            headers: Json(Default::default()),
            content_type: "application/json".into(),
            template: None,
            retry: Json(Default::default()),
            timeout_ms: 5_000,
            priority: 1,
            unique_pending: false,
            disable_on_status: Json(vec![410]),
            unsubscribe_phrase: None,
            unsubscribe_action: "disable".into(),
            disable_after_days: None,
            client_certificate_enc: None,
            rate_limit_per_second: None,
            secret_enc: String::new(),
            previous_secret_enc: None,
            previous_secret_until: None,
            disabled_reason: None,
            failing_since: None,
            last_attempt_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn job(id: &str, endpoint_id: &str, priority: i64) -> Job {
        Job {
            delivery: Claimed {
                id: id.into(),
                shop_id: "shp_1".into(),
                event_id: format!("evt_{id}").into(),
                endpoint_id: endpoint_id.into(),
                attempt_count: 0,
                created_at: 0,
                priority,
                lease_owner: format!("lease.{id}"),
                lease_until: 60_000,
            },
            endpoint: Arc::new(endpoint(endpoint_id)),
            event: Arc::new(EventRow {
                id: format!("evt_{id}").into(),
                event_type: "order.created".into(),
                channels: Json(vec![]),
                data: "{}".into(),
                entity_key: None,
                deliveries: "[]".into(),
                created_at: 0,
            }),
            not_before: None,
        }
    }

    /// A state holding these jobs, leased and queued as a claim leaves them.
    fn with_jobs(jobs: Vec<Job>) -> State {
        let mut state = State::default();
        for j in jobs {
            state.note_leased([j.delivery.lease()]);
            state.queue(j);
        }
        state
    }

    fn order(state: &mut State, endpoint: &str) -> Vec<String> {
        std::iter::from_fn(|| state.next_job(endpoint))
            .map(|j| j.delivery.id.into())
            .collect()
    }

    #[test]
    fn a_high_priority_job_overtakes_what_was_read_ahead_but_not_its_equals() {
        let mut state = with_jobs(vec![
            job("a", "ep", 1),
            job("b", "ep", 1),
            job("urgent", "ep", 0),
            job("c", "ep", 2),
            job("urgent2", "ep", 0),
        ]);
        assert_eq!(
            order(&mut state, "ep"),
            ["urgent", "urgent2", "a", "b", "c"]
        );
        assert!(!state.has_ready("ep"));
    }

    #[test]
    fn read_ahead_is_given_back_from_the_longest_queue_and_never_its_last_job() {
        let mut state = with_jobs(vec![
            job("s1", "slow", 1),
            job("s2", "slow", 1),
            job("s3", "slow", 1),
            job("f1", "fast", 1),
        ]);
        let given = state.read_ahead_to_give_back(5);
        let ids: Vec<&str> = given.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["s3", "s2"], "from the back of the longest queue");
        assert_eq!(order(&mut state, "slow"), ["s1"]);
        assert_eq!(order(&mut state, "fast"), ["f1"]);
        assert_eq!(
            state.give_up_all().len(),
            2,
            "the given back are no longer held"
        );
    }

    #[test]
    fn an_endpoints_allowance_follows_its_pace_and_its_rate_limit() {
        let mut state = State::default();
        let full = LIMITS.endpoint_concurrency * PREFETCH_FACTOR;
        assert_eq!(
            state.allowance("ep", &LIMITS),
            full,
            "unknown pace: all read-ahead"
        );
        // 5 s per attempt: two workers send 6 in a quarter of the 60 s lease.
        state.note_pace("ep", 5_000.0);
        assert_eq!(state.allowance("ep", &LIMITS), 2 + 6);
        let mut limited = endpoint("limited");
        limited.rate_limit_per_second = Some(10);
        state.note_limit(&limited);
        assert_eq!(state.allowance("limited", &LIMITS), 2, "no read-ahead");
        state.forget_endpoint("ep");
        assert_eq!(state.allowance("ep", &LIMITS), full);
    }

    #[test]
    fn workers_start_up_to_the_endpoint_concurrency_and_the_last_one_says_so() {
        let mut state = with_jobs(vec![
            job("a", "ep", 1),
            job("b", "ep", 1),
            job("c", "ep", 1),
        ]);
        assert_eq!(state.start_workers(&LIMITS), [(EndpointId::from("ep"), 2)]);
        assert!(state.start_workers(&LIMITS).is_empty(), "both are running");
        assert_eq!(
            state.room_for("ep", &LIMITS),
            LIMITS.endpoint_concurrency * PREFETCH_FACTOR - 5,
            "2 running, 3 waiting"
        );
        assert!(!state.worker_ended("ep"));
        assert!(state.worker_ended("ep"), "the last worker");
        assert!(!state.is_idle("ep"), "a job still waits");
    }

    #[test]
    fn a_claim_is_worth_a_query_when_work_was_announced_fell_due_or_a_backlog_drained() {
        let mut state = State::default();
        let mut claims = Claims::default();
        assert!(!state.worth_claiming(&claims, false, 1_000, &LIMITS));
        assert!(
            state.worth_claiming(&claims, true, 1_000, &LIMITS),
            "announced"
        );
        claims.next_due = Some(1_000);
        assert!(state.worth_claiming(&claims, false, 1_000, &LIMITS), "due");
        claims.next_due = None;
        state.add_hints(["ep"]);
        assert!(
            state.worth_claiming(&claims, false, 1_000, &LIMITS),
            "named by a publish"
        );
        state.take_hints();
        claims.backlog.insert("ep".into());
        assert!(
            state.worth_claiming(&claims, false, 1_000, &LIMITS),
            "a backlog with room"
        );
        // Full: every lease the node may hold is taken, and the backlogged endpoint has some.
        let held = LIMITS.concurrency * GLOBAL_FACTOR;
        for i in 0..held {
            let j = job(&format!("d{i}"), "ep", 1);
            state.note_leased([j.delivery.lease()]);
            state.queue(j);
        }
        assert!(
            !state.worth_claiming(&claims, false, 1_000, &LIMITS),
            "no room, no idle endpoint"
        );
        claims.backlog.insert("idle".into());
        assert!(
            state.worth_claiming(&claims, false, 1_000, &LIMITS),
            "an idle endpoint waits"
        );
    }

    #[test]
    fn claiming_pauses_while_the_recorder_is_behind_and_goes_on_once_it_wrote() {
        let mut state = State::default();
        let claims = Claims::default();
        for i in 0..MAX_UNRECORDED {
            let j = job(&format!("d{i}"), "ep", 1);
            state.note_leased([j.delivery.lease()]);
            state.finished(&j.delivery.id, true);
        }
        assert!(state.recorder_behind());
        assert_eq!(state.global_room(&LIMITS), 0);
        assert!(
            !state.worth_claiming(&claims, true, 1_000, &LIMITS),
            "announced work waits for the recorder"
        );
        let j = job("ahead", "ep", 1);
        state.note_leased([j.delivery.lease()]);
        state.queue(j);
        state.queue(job("ahead2", "ep", 1));
        assert!(
            state.read_ahead_to_give_back(1).is_empty(),
            "nothing is given back for a claim that cannot run"
        );
        state.finished("unsent", false);
        state.recorded(1_000);
        assert!(!state.recorder_behind());
        assert!(state.global_room(&LIMITS) > 0);
        assert!(state.worth_claiming(&claims, true, 1_000, &LIMITS));
    }

    #[test]
    fn a_queued_job_is_taken_out_by_its_shop_only_and_no_longer_held() {
        let mut state = with_jobs(vec![job("a", "ep", 1), job("b", "ep", 1)]);
        assert_eq!(state.take_queued("shp_other", "b"), None);
        assert_eq!(
            state.take_queued("shp_1", "b").map(|(id, _)| id),
            Some("b".into())
        );
        assert_eq!(state.take_queued("shp_1", "b"), None, "once");
        assert_eq!(state.give_up_all(), [("a".into(), "lease.a".into())]);
    }
}
