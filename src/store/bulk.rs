//! Changes to many deliveries at once — a bulk retry, resuming or holding an endpoint's
//! queue, cancelling it, purging a deleted endpoint's deliveries — made in slices of
//! [`SLICE`] rows, each its own short transaction, so the writer is never held for long and
//! deliveries keep flowing meanwhile.
//!
//! The first slice is made in the transaction that asks for the change, so a small change is
//! complete when its request answers. What remains is written down in `bulk_changes` (in the
//! same transaction: a change asked for is never lost) and the engine works through it
//! ([`Store::next_bulk_slice`]); the panel shows its progress. A slice walks the
//! `(shop, status, id)` index upward from where the last one ended, up to the last key
//! that existed when the change was asked for, and re-checks the endpoint's state, so a
//! change overtaken by a later one (enabled again before the hold finished) does nothing more.

use super::deliveries::{push_filter, sendable, DeliveryFilter};
use super::{in_tx, on_reader, Result, Store, Tx, SHOP_NUM_OPEN};
use crate::ids::{DeliveryId, EndpointId, ShopId};
use sqlx::QueryBuilder;

/// Rows per slice: a slice holds SQLite's writer for a few milliseconds. A 1,000-row slice
/// held it for up to 73 ms while the engine drained beside it on two cores (each row moves
/// between the status and queue indexes); 250 rows stayed under 30 ms.
pub const SLICE: i64 = 250;

/// What a bulk change does to each delivery it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkKind {
    /// Queue again now (a bulk retry); only at enabled endpoints.
    Retry,
    /// Held → waiting again (the endpoint was enabled, or the shop's webhooks turned on).
    Resume,
    /// Waiting → held (the endpoint was disabled, or the shop's webhooks turned off).
    Hold,
    /// Unsent → cancelled (the endpoint asked to be unsubscribed and was deleted).
    Cancel,
    /// Removed with their attempts (the endpoint was deleted); the endpoint row goes last.
    Purge,
}

impl BulkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BulkKind::Retry => "retry",
            BulkKind::Resume => "resume",
            BulkKind::Hold => "hold",
            BulkKind::Cancel => "cancel",
            BulkKind::Purge => "purge",
        }
    }

    fn parse(s: &str) -> Option<BulkKind> {
        Some(match s {
            "retry" => BulkKind::Retry,
            "resume" => BulkKind::Resume,
            "hold" => BulkKind::Hold,
            "cancel" => BulkKind::Cancel,
            "purge" => BulkKind::Purge,
            _ => return None,
        })
    }

    /// Pushes the change to a reached delivery (`SET …`), at `now`.
    fn push_set<DB: sqlx::Database>(self, qb: &mut QueryBuilder<'_, DB>, now: i64)
    where
        i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        match self {
            // Held when the endpoint was disabled after the retry was asked for: a later
            // resume sends it.
            BulkKind::Retry => {
                qb.push(concat!(
                    "status = CASE WHEN ",
                    sendable!(),
                    " THEN 'pending' ELSE 'held' END, next_attempt_at = "
                ))
                .push_bind(now);
            }
            BulkKind::Resume => {
                qb.push(
                    "status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END,
                     next_attempt_at = ",
                )
                .push_bind(now);
            }
            BulkKind::Hold => {
                qb.push("status = 'held'");
            }
            BulkKind::Cancel | BulkKind::Purge => {
                qb.push("status = 'cancelled', next_attempt_at = NULL");
            }
        }
        qb.push(", updated_at = ").push_bind(now);
    }

    /// What the delivery's endpoint must be for the change to still apply (a retry reaches
    /// the endpoints enabled when it was asked for: [`BulkChange::endpoints`]).
    fn endpoint_condition(self) -> &'static str {
        match self {
            BulkKind::Retry => "",
            BulkKind::Resume => concat!(" AND ", sendable!()),
            BulkKind::Hold => concat!(" AND NOT ", sendable!()),
            BulkKind::Cancel | BulkKind::Purge => "",
        }
    }
}

/// A bulk change over one status of one shop's deliveries.
#[derive(Debug, Clone)]
pub struct BulkChange {
    pub shop_id: ShopId,
    pub kind: BulkKind,
    /// The status walked (a change over several statuses is one change per status).
    pub status: String,
    /// The filter's other fields (its status is `status`); the endpoint for an endpoint's
    /// changes.
    pub filter: DeliveryFilter,
    /// Only the deliveries of these endpoints, when given (a retry: those enabled when it was
    /// asked for).
    pub endpoints: Option<Vec<EndpointId>>,
}

impl BulkChange {
    /// Pushes the conditions on a delivery's endpoint: in `endpoints`, in the state the
    /// change needs.
    fn push_scope<'a, DB: sqlx::Database>(&'a self, qb: &mut QueryBuilder<'a, DB>)
    where
        &'a EndpointId: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    {
        if let Some(endpoints) = &self.endpoints {
            qb.push(" AND endpoint IN (SELECT num FROM endpoints WHERE id IN (");
            let mut list = qb.separated(", ");
            for e in endpoints {
                list.push_bind(e);
            }
            // An empty list reaches nothing (and `IN ()` is not SQL).
            if endpoints.is_empty() {
                list.push("NULL");
            }
            qb.push("))");
        }
        qb.push(self.kind.endpoint_condition());
    }
}

/// A bulk change still being worked through, for the panel.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BulkProgress {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub endpoint_id: Option<String>,
    pub total: i64,
    pub done: i64,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// A stored change's row, as the engine reads it to make the next slice.
#[derive(Debug, Clone, sqlx::FromRow)]
struct PendingRow {
    id: String,
    shop_id: ShopId,
    kind: String,
    status: String,
    filter: String,
    up_to: i64,
    after_id: i64,
}

/// The serialisable part of a filter kept with a stored change.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct StoredFilter {
    endpoint_id: Option<EndpointId>,
    #[serde(default)]
    endpoints: Option<Vec<EndpointId>>,
    event_type: Option<String>,
    channel: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
}

impl StoredFilter {
    fn of(change: &BulkChange) -> Self {
        let f = &change.filter;
        StoredFilter {
            endpoint_id: f.endpoint_id.clone(),
            endpoints: change.endpoints.clone(),
            event_type: f.event_type.clone(),
            channel: f.channel.clone(),
            since: f.since,
            until: f.until,
        }
    }

    fn into_filter(self, status: String) -> DeliveryFilter {
        DeliveryFilter {
            status: Some(status),
            endpoint_id: self.endpoint_id,
            event_type: self.event_type,
            channel: self.channel,
            since: self.since,
            until: self.until,
        }
    }
}

/// Where a change starts: below every delivery's key (keys are never negative).
const BEFORE_EVERY_KEY: i64 = -1;

/// Where one slice reaches: the deliveries after `after` (exclusive) up to `up_to`, at most
/// [`SLICE`] of them; returns the last key reached, `None` when nothing is left.
async fn slice_end(
    tx: &mut Tx,
    change: &BulkChange,
    after: i64,
    up_to: i64,
) -> Result<Option<i64>> {
    let filter = DeliveryFilter {
        status: Some(change.status.clone()),
        ..change.filter.clone()
    };
    in_tx!(tx, |c, d| {
        let mut qb = QueryBuilder::new(d.pick(
            "SELECT MAX(id) FROM (SELECT id FROM deliveries INDEXED BY deliveries_shop_status
             WHERE shop = ",
            "SELECT MAX(id) FROM (SELECT id FROM deliveries WHERE shop = ",
        ));
        qb.push(SHOP_NUM_OPEN).push_bind(&change.shop_id).push(")");
        push_filter(&mut qb, &filter, d);
        qb.push(" AND id > ")
            .push_bind(after)
            .push(" AND id <= ")
            .push_bind(up_to)
            .push(" ORDER BY id LIMIT ")
            .push_bind(SLICE)
            .push(") AS slice");
        Ok(qb.build_query_scalar().fetch_one(c).await?)
    })
}

/// Applies the change to the deliveries after `after` up to `last` (one slice); returns how
/// many it changed.
async fn apply_slice(
    tx: &mut Tx,
    change: &BulkChange,
    after: i64,
    last: i64,
    now: i64,
) -> Result<u64> {
    let filter = DeliveryFilter {
        status: Some(change.status.clone()),
        ..change.filter.clone()
    };
    in_tx!(tx, |c, d| {
        let mut qb = QueryBuilder::new("");
        if change.kind == BulkKind::Purge {
            // Their attempts go with them (ON DELETE CASCADE).
            qb.push("DELETE FROM deliveries");
        } else {
            qb.push("UPDATE deliveries SET ");
            change.kind.push_set(&mut qb, now);
        }
        qb.push(" WHERE shop = ")
            .push(SHOP_NUM_OPEN)
            .push_bind(&change.shop_id)
            .push(")");
        push_filter(&mut qb, &filter, d);
        qb.push(" AND id > ")
            .push_bind(after)
            .push(" AND id <= ")
            .push_bind(last);
        change.push_scope(&mut qb);
        Ok(qb.build().execute(c).await?.rows_affected())
    })
}

/// Starts a bulk change in the caller's transaction: makes its first slice there and, when
/// more remain, writes down the rest for the engine. Returns how many deliveries the first
/// slice changed and whether the rest was written down.
pub async fn start(tx: &mut Tx, change: &BulkChange, total: i64, now: i64) -> Result<(u64, bool)> {
    // A retry reaches the deliveries that existed when it was asked for (keys sort by
    // creation). A change of an endpoint's state reaches all of them: one published since
    // then was queued in the endpoint's new state or, on PostgreSQL, committed before it and
    // is reached all the same.
    let up_to = match change.kind {
        BulkKind::Retry => DeliveryId::first_key_at(now + 1) - 1,
        _ => i64::MAX,
    };
    let Some(last) = slice_end(tx, change, BEFORE_EVERY_KEY, up_to).await? else {
        return Ok((0, false));
    };
    let done = apply_slice(tx, change, BEFORE_EVERY_KEY, last, now).await?;
    if (done as i64) < SLICE && slice_end(tx, change, last, up_to).await?.is_none() {
        return Ok((done, false));
    }
    let filter = serde_json::to_string(&StoredFilter::of(change))?;
    in_tx!(tx, |c, d| sqlx::query(&d.sql(
        "INSERT INTO bulk_changes (id, shop_id, kind, status, endpoint_id, filter, up_to, after_id,
         total, done, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(crate::ids::new_id("blk"))
    .bind(&change.shop_id)
    .bind(change.kind.as_str())
    .bind(&change.status)
    .bind(&change.filter.endpoint_id)
    .bind(&filter)
    .bind(up_to)
    .bind(last)
    .bind(total.max(done as i64))
    .bind(done as i64)
    .bind(now)
    .bind(now)
    .execute(c)
    .await?
    .rows_affected());
    Ok((done, true))
}

/// What one slice of a stored change did.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceDone {
    pub kind: BulkKind,
    pub shop_id: ShopId,
    pub changed: u64,
    /// The change is complete.
    pub finished: bool,
}

impl Store {
    /// Makes the next slice of the oldest unfinished bulk change, in its own transaction;
    /// `None` when there is none. On PostgreSQL two nodes may pick the same change: the
    /// slice is written only if the change's progress is still what this node read.
    pub async fn next_bulk_slice(&self, now: i64) -> Result<Option<SliceDone>> {
        let mut tx = self.begin().await?;
        let row: Option<PendingRow> = in_tx!(&mut tx, |c, d| sqlx::query_as(&d.sql(&format!(
            "SELECT id, shop_id, kind, status, filter, up_to, after_id FROM bulk_changes
                 WHERE finished_at IS NULL ORDER BY created_at, id LIMIT 1{}",
            // Nodes working at once take different changes.
            d.pick("", " FOR UPDATE SKIP LOCKED")
        )))
        .fetch_optional(c)
        .await?);
        let Some(row) = row else {
            return Ok(None);
        };
        let Some(kind) = BulkKind::parse(&row.kind) else {
            return Err(super::Error::Corrupt(format!(
                "bulk change kind {}",
                row.kind
            )));
        };
        let mut stored: StoredFilter = serde_json::from_str(&row.filter)?;
        let endpoints = stored.endpoints.take();
        let change = BulkChange {
            shop_id: row.shop_id.clone(),
            kind,
            endpoints,
            filter: stored.into_filter(row.status.clone()),
            status: row.status.clone(),
        };
        let last = slice_end(&mut tx, &change, row.after_id, row.up_to).await?;
        let changed = match last {
            Some(last) => apply_slice(&mut tx, &change, row.after_id, last, now).await?,
            None => 0,
        };
        let finished = last.is_none();
        let moved = in_tx!(&mut tx, |c, d| sqlx::query(&d.sql(
            "UPDATE bulk_changes SET after_id = ?, done = done + ?, updated_at = ?,
             finished_at = ? WHERE id = ? AND after_id = ?"
        ))
        .bind(last.unwrap_or(row.after_id))
        .bind(changed as i64)
        .bind(now)
        .bind(finished.then_some(now))
        .bind(&row.id)
        .bind(row.after_id)
        .execute(c)
        .await?
        .rows_affected());
        if moved == 0 {
            // Another node made this slice meanwhile: ours is dropped.
            return Ok(Some(SliceDone {
                kind,
                shop_id: row.shop_id,
                changed: 0,
                finished: false,
            }));
        }
        if finished && kind == BulkKind::Purge {
            self.finish_purge(&mut tx, &change).await?;
        }
        tx.commit().await?;
        Ok(Some(SliceDone {
            kind,
            shop_id: row.shop_id,
            changed,
            finished,
        }))
    }

    /// A deleted endpoint's deliveries are all gone: the endpoint row goes too, unless
    /// another status of the same purge is still being worked through.
    async fn finish_purge(&self, tx: &mut Tx, change: &BulkChange) -> Result<()> {
        let Some(endpoint) = &change.filter.endpoint_id else {
            return Ok(());
        };
        in_tx!(tx, |c, d| sqlx::query(&d.sql(
            "DELETE FROM endpoints WHERE shop_id = ? AND id = ? AND deleted_at IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM bulk_changes b WHERE b.endpoint_id = endpoints.id
               AND b.kind = 'purge' AND b.finished_at IS NULL AND b.status <> ?)"
        ))
        .bind(&change.shop_id)
        .bind(endpoint)
        .bind(&change.status)
        .execute(c)
        .await?
        .rows_affected());
        Ok(())
    }

    /// A shop's bulk changes still being worked through, and those finished in the last
    /// minute, oldest first.
    pub async fn bulk_changes(&self, shop_id: &ShopId, now: i64) -> Result<Vec<BulkProgress>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(
            "SELECT id, kind, status, endpoint_id, total, done, created_at, finished_at FROM bulk_changes
             WHERE shop_id = ? AND (finished_at IS NULL OR finished_at > ?)
             ORDER BY created_at, id LIMIT 50"
        ))
        .bind(shop_id)
        .bind(now - 60_000)
        .fetch_all(pool)
        .await?)
        })
    }

    /// Forgets bulk changes finished more than a day ago.
    pub async fn forget_finished_bulk_changes(&self, now: i64) -> Result<u64> {
        super::on_writer!(self, |pool, d| Ok(sqlx::query(
            &d.sql("DELETE FROM bulk_changes WHERE finished_at < ?")
        )
        .bind(now - 86_400_000)
        .execute(pool)
        .await?
        .rows_affected()))
    }
}

/// How many deliveries a change will reach (at endpoints in the state it needs), for its
/// answer and its progress: from the counters when the filter names at most an endpoint,
/// else counted.
pub async fn count_reached(tx: &mut Tx, change: &BulkChange) -> Result<i64> {
    let f = &change.filter;
    if !f.counted() {
        let filter = DeliveryFilter {
            status: Some(change.status.clone()),
            ..f.clone()
        };
        return in_tx!(tx, |c, d| {
            let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM deliveries WHERE shop = ");
            qb.push(SHOP_NUM_OPEN).push_bind(&change.shop_id).push(")");
            push_filter(&mut qb, &filter, d);
            change.push_scope(&mut qb);
            Ok(qb.build_query_scalar().fetch_one(c).await?)
        });
    }
    let prefix = format!("q:{}:", change.status);
    let per_endpoint: Vec<(String, i64, Option<bool>)> = in_tx!(tx, |c, d| sqlx::query_as(&d.sql(
        // Sendable: the endpoint is enabled and the shop's webhooks are on.
        "SELECT x.name, CAST(SUM(x.n) AS BIGINT),
           e.enabled AND (SELECT s.webhooks_enabled FROM shops s WHERE s.id = ?1) FROM (
           SELECT name, n FROM counters WHERE shop_id = ?1 AND name >= ?2 AND name < ?3
           UNION ALL
           SELECT name, n FROM count_deltas WHERE shop_id = ?1 AND name >= ?2 AND name < ?3) x
         LEFT JOIN endpoints e ON e.shop_id = ?1 AND e.id = substr(x.name, CAST(?4 AS INTEGER))
         GROUP BY x.name, e.enabled"
    ))
    .bind(&change.shop_id)
    .bind(&prefix)
    .bind(format!("{prefix}\u{ffff}"))
    .bind(prefix.len() as i64 + 1)
    .fetch_all(c)
    .await?);
    Ok(per_endpoint
        .into_iter()
        .filter(|(name, _, sendable)| {
            let endpoint = &name[prefix.len()..];
            let wanted = f.endpoint_id.as_ref().is_none_or(|e| e == endpoint)
                && change
                    .endpoints
                    .as_ref()
                    .is_none_or(|list| list.iter().any(|e| e == endpoint));
            let state = match change.kind {
                BulkKind::Retry => true,
                BulkKind::Resume => *sendable == Some(true),
                BulkKind::Hold => *sendable != Some(true),
                BulkKind::Cancel | BulkKind::Purge => true,
            };
            wanted && state
        })
        .map(|(_, n, _)| n)
        .sum())
}
