//! The engine's background upkeep, each loop on the main runtime until shutdown: SQLite's
//! WAL checkpoints, bulk changes slice by slice, the counters pages read, and retention.

use super::Engine;
use crate::ids::now_ms;
use std::time::Duration;

/// The WAL is emptied once nothing was written for this long.
const WAL_IDLE: Duration = Duration::from_secs(1);

/// Checkpoints SQLite's WAL every [`crate::store::CHECKPOINT_EVERY`], off the writer's path
/// (see the store), and empties the WAL file once writes have paused: a burst that grew it
/// does not keep its disk while the queue is quiet. Returns at once on PostgreSQL.
pub(super) async fn checkpointer(engine: Engine) {
    if !engine.inner.store.tuning().checkpoints_wal {
        return;
    }
    let mut shutdown = engine.inner.shutdown.subscribe();
    // The WAL's length when last seen fully copied, and since when it has not changed.
    let mut unchanged: Option<(i64, std::time::Instant)> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(crate::store::CHECKPOINT_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        let frames = match engine.inner.store.checkpoint().await {
            Ok(frames) => frames,
            Err(e) => {
                tracing::warn!(error = %e, "could not checkpoint the WAL");
                None
            }
        };
        unchanged = match (frames, unchanged) {
            (Some(n), Some((m, since))) if n == m => Some((m, since)),
            (Some(n), _) => Some((n, std::time::Instant::now())),
            (None, _) => None,
        };
        if let Some((n, since)) = unchanged {
            if n > 0 && since.elapsed() >= WAL_IDLE {
                if let Err(e) = engine.inner.store.truncate_wal().await {
                    tracing::warn!(error = %e, "could not empty the WAL");
                }
                unchanged = None;
            }
        }
    }
}

/// Works through bulk changes slice by slice (see `store::bulk`), with a breath between
/// slices so the writer goes to publishes and attempts in turn; when none is left, waits to
/// be told of one (or a second: a change another node or the engine wrote down).
pub(super) async fn bulk_worker(engine: Engine) {
    const BREATH: Duration = Duration::from_millis(2);
    const IDLE: Duration = Duration::from_secs(1);
    let mut shutdown = engine.inner.shutdown.subscribe();
    let mut rounds = 0u32;
    loop {
        let pause = match engine.inner.store.next_bulk_slice(now_ms()).await {
            Ok(Some(done)) => {
                use crate::store::bulk::BulkKind;
                if done.changed > 0 && matches!(done.kind, BulkKind::Retry | BulkKind::Resume) {
                    engine.announce();
                }
                BREATH
            }
            Ok(None) => {
                rounds = rounds.wrapping_add(1);
                if rounds % 3600 == 1 {
                    if let Err(e) = engine
                        .inner
                        .store
                        .forget_finished_bulk_changes(now_ms())
                        .await
                    {
                        tracing::warn!(error = %e, "could not forget finished bulk changes");
                    }
                }
                IDLE
            }
            Err(e) => {
                tracing::error!(error = %e, "a bulk change slice failed; trying again");
                IDLE
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = engine.inner.store.bulk_written(), if pause == IDLE => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Keeps the counters pages read: on PostgreSQL folds the deltas every transaction appended
/// into the counter rows every second (the deltas a reader adds up stay few), refreshes the
/// planner statistics of tables that grew in a burst every five seconds, samples each shop's
/// queue depth and lag once a minute (the dashboard's last hour), and prunes hourly counters
/// past the dashboard's week and samples past a day every ten minutes (both stores).
pub(super) async fn counter_keeper(engine: Engine) {
    const FOLD_EVERY: Duration = Duration::from_secs(1);
    const PRUNE_EVERY: u32 = 600;
    const STATISTICS_EVERY: u32 = 5;
    let mut shutdown = engine.inner.shutdown.subscribe();
    let mut rounds = 0u32;
    let mut sampled = 0i64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FOLD_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = engine.inner.store.fold_counters().await {
            tracing::warn!(error = %e, "could not fold the counters");
        }
        rounds = rounds.wrapping_add(1);
        if rounds.is_multiple_of(STATISTICS_EVERY) {
            match engine.inner.store.refresh_statistics().await {
                Ok(t) if !t.is_empty() => {
                    tracing::debug!(tables = ?t, "planner statistics refreshed")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not refresh the planner statistics"),
            }
        }
        let minute = now_ms() / crate::store::counters::MINUTE_MS;
        if minute != sampled {
            match engine.inner.store.sample_queues(now_ms()).await {
                Ok(_) => sampled = minute,
                Err(e) => tracing::warn!(error = %e, "could not sample the queues"),
            }
        }
        if rounds % PRUNE_EVERY == 1 {
            if let Err(e) = engine.inner.store.prune_counters(now_ms()).await {
                tracing::warn!(error = %e, "could not prune the counters");
            }
        }
    }
}

/// Purges what retention no longer keeps: a round over every shop, again at once (after a
/// breath for the writer) while rounds come back full, else every ten seconds. Each statement
/// removes at most a small batch, so the purge keeps up with the delivery rate without ever
/// holding the writer long.
pub(super) async fn purger(engine: Engine) {
    let mut shutdown = engine.inner.shutdown.subscribe();
    let override_ms = engine
        .inner
        .config
        .retention_override
        .map(|d| d.as_millis() as i64);
    // Several nodes purge one database: the node holding the lock does, the others wait
    // their turn (it passes on when the holder dies).
    let mut turn: Option<crate::store::cluster::Singleton> = None;
    loop {
        if let Some(held) = &mut turn {
            if !held.still_held().await {
                turn = None;
            }
        }
        if turn.is_none() {
            turn = engine
                .inner
                .store
                .try_singleton("retention")
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "could not ask for the retention turn");
                    None
                });
        }
        if turn.is_none() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(10)) => continue,
                _ = shutdown.changed() => return,
            }
        }
        let pause = match engine
            .inner
            .store
            .purge_expired(now_ms(), override_ms)
            .await
        {
            Ok(p) => {
                if p.total() > 0 {
                    tracing::debug!(
                        deliveries = p.deliveries,
                        attempts = p.attempts,
                        events = p.events,
                        alerts = p.alerts,
                        "retention purge"
                    );
                    engine.inner.metrics.purged.inc_by(p.total());
                }
                if p.more {
                    Duration::from_millis(5)
                } else {
                    Duration::from_secs(10)
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "retention purge failed");
                Duration::from_secs(10)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
    }
}
