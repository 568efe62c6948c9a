//! Group commit for publishing: concurrent publish requests share one write transaction, so
//! one commit (and on SQLite one sync to disk) answers many producers at once.
//!
//! A request joins the group that forms while the previous commit is in flight: there is no
//! timer to wait out, so a lone request is committed at once and a crowd is committed in as
//! few transactions as the group bound allows. Each request still gets its own answer, and no
//! request is answered before the transaction holding it has committed.

use crate::engine::Engine;
use crate::store::events::{GroupOutcome, PublishRequest};
use crate::store::{Error, Result, Store};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Events in one group at most: a group is one transaction on the one writer, and other
/// writes (the engine's outcomes) wait for it.
const MAX_GROUP_EVENTS: usize = 2_000;

/// Requests waiting to join a group at most; a producer beyond them waits for room.
const QUEUE: usize = 4_096;

/// What follows a request's commit (waking senders, metrics, the activity feed): run by the
/// committer, before the request is answered, whether or not its caller still waits. A
/// producer that hangs up drops its request's future, not the work its commit calls for.
pub type AfterCommit = Box<dyn FnOnce(&Committed) + Send>;

struct Job {
    request: PublishRequest,
    after: AfterCommit,
    reply: oneshot::Sender<Result<Committed>>,
}

/// A request's answer, with the request handed back and the time it was written at.
pub struct Committed {
    pub outcome: GroupOutcome,
    pub request: PublishRequest,
    pub at: i64,
}

/// The handle publishers submit to; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the committer on `store` with `lanes` transactions in flight at most: one on
    /// SQLite (it has one writer), a few on PostgreSQL (a commit waits on the server's disk,
    /// and other groups can form meanwhile).
    pub fn start(store: Store, engine: Engine, lanes: usize) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(gather(store, engine, rx, lanes.max(1)));
        GroupCommit { jobs }
    }

    /// Submits one request and waits for the commit that holds it; `after` runs once it is
    /// committed, even if this future is dropped meanwhile.
    pub async fn submit(&self, request: PublishRequest, after: AfterCommit) -> Result<Committed> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                request,
                after,
                reply,
            })
            .await
            .map_err(|_| Error::Corrupt("the publish committer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Corrupt("the publish committer dropped a request".into()))?
    }
}

/// Forms groups: takes the first waiting request, waits for a free lane (requests pile up
/// meanwhile), then takes every request already waiting, up to the group bound.
async fn gather(store: Store, engine: Engine, mut rx: mpsc::Receiver<Job>, lanes: usize) {
    let lanes = Arc::new(Semaphore::new(lanes));
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let Ok(lane) = lanes.clone().acquire_owned().await else {
            return;
        };
        let mut events = first.request.events.len();
        let mut group = vec![first];
        while events < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(job) if events + job.request.events.len() > MAX_GROUP_EVENTS => {
                    next = Some(job);
                    break;
                }
                Ok(job) => {
                    events += job.request.events.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let store = store.clone();
        let engine = engine.clone();
        tokio::spawn(async move {
            let metrics = engine.metrics();
            metrics.publish_group_requests.observe(group.len() as f64);
            let started = std::time::Instant::now();
            commit(&store, group, lane).await;
            metrics
                .publish_commit_seconds
                .observe(started.elapsed().as_secs_f64());
        });
    }
}

/// Commits a group and answers each of its requests once the commit is on disk. The lane is
/// given back as soon as the transaction has committed, so the next group writes while this
/// one's sync runs (see `store::wal_sync`). When the shared transaction fails, each request is
/// tried again in a transaction of its own, so one request's failure is its own.
async fn commit(store: &Store, group: Vec<Job>, lane: OwnedSemaphorePermit) {
    let at = crate::ids::now_ms();
    let (requests, rest): (Vec<PublishRequest>, Vec<_>) = group
        .into_iter()
        .map(|j| (j.request, (j.after, j.reply)))
        .unzip();
    match store.publish_group_unsynced(&requests, at).await {
        Ok((outcomes, unsynced)) => {
            drop(lane);
            let synced = unsynced.synced().await;
            for ((request, (after, reply)), outcome) in requests.into_iter().zip(rest).zip(outcomes)
            {
                let _ = reply.send(match &synced {
                    Ok(()) => Ok(committed(
                        Committed {
                            outcome,
                            request,
                            at,
                        },
                        after,
                    )),
                    Err(e) => Err(Error::Sync(e.clone())),
                });
            }
        }
        Err(e) if requests.len() == 1 => {
            let _ = rest.into_iter().next().map(|(_, r)| r.send(Err(e)));
        }
        Err(e) => {
            tracing::warn!(error = %e, requests = requests.len(),
                "a publish group failed; committing its requests one by one");
            for (request, (after, reply)) in requests.into_iter().zip(rest) {
                let at = crate::ids::now_ms();
                let outcome = store
                    .publish_group(std::slice::from_ref(&request), at)
                    .await
                    .map(|mut o| {
                        committed(
                            Committed {
                                outcome: o.pop().unwrap_or(GroupOutcome::Stale),
                                request,
                                at,
                            },
                            after,
                        )
                    });
                let _ = reply.send(outcome);
            }
        }
    }
}

/// A committed request, its follow-up done.
fn committed(c: Committed, after: AfterCommit) -> Committed {
    after(&c);
    c
}
