//! The queue: deliveries are claimed with a lease, listed newest first with keyset
//! pagination, and retried or cancelled by hand.

use super::{Result, Store};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct DeliveryRow {
    pub id: String,
    pub shop_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub channels: String,
    pub status: String,
    pub priority: i64,
    pub attempt_count: i64,
    pub next_attempt_at: Option<i64>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, shop_id, event_id, endpoint_id, event_type, channels, status, priority,
    attempt_count, next_attempt_at, last_status_code, last_error, created_at, updated_at";

/// What the queue page and `GET /deliveries` filter by. Every field is optional.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<String>,
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    pub channel: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// A claimed delivery, leased to this process.
#[derive(sqlx::FromRow, Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub shop_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub attempt_count: i64,
    pub created_at: i64,
}

fn push_filter<'a>(qb: &mut QueryBuilder<'a, Sqlite>, f: &'a DeliveryFilter) {
    if let Some(s) = &f.status {
        qb.push(" AND status = ").push_bind(s);
    }
    if let Some(e) = &f.endpoint_id {
        qb.push(" AND endpoint_id = ").push_bind(e);
    }
    if let Some(t) = &f.event_type {
        qb.push(" AND event_type = ").push_bind(t);
    }
    if let Some(c) = &f.channel {
        qb.push(" AND EXISTS (SELECT 1 FROM json_each(deliveries.channels) WHERE value = ")
            .push_bind(c)
            .push(")");
    }
    if let Some(s) = f.since {
        qb.push(" AND created_at >= ").push_bind(s);
    }
    if let Some(u) = f.until {
        qb.push(" AND created_at < ").push_bind(u);
    }
}

/// Holds an endpoint's waiting deliveries (it was disabled).
pub async fn hold_waiting(conn: &mut SqliteConnection, endpoint_id: &str, now: i64) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE deliveries SET status = 'held', updated_at = ?
         WHERE endpoint_id = ? AND status IN ('pending', 'retrying')",
    )
    .bind(now)
    .bind(endpoint_id)
    .execute(conn)
    .await?
    .rows_affected())
}

impl Store {
    /// Newest first; `before` is the last id of the previous page.
    pub async fn list_deliveries(
        &self,
        shop_id: &str,
        filter: &DeliveryFilter,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {COLUMNS} FROM deliveries WHERE shop_id = "
        ));
        qb.push_bind(shop_id);
        push_filter(&mut qb, filter);
        if let Some(b) = before {
            qb.push(" AND id < ").push_bind(b);
        }
        qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        qb.build_query_as().fetch_all(&self.pool).await
    }

    pub async fn count_deliveries(&self, shop_id: &str, filter: &DeliveryFilter) -> Result<i64> {
        let mut qb =
            QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM deliveries WHERE shop_id = ");
        qb.push_bind(shop_id);
        push_filter(&mut qb, filter);
        qb.build_query_scalar().fetch_one(&self.pool).await
    }

    pub async fn delivery(&self, shop_id: &str, id: &str) -> Result<Option<DeliveryRow>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM deliveries WHERE shop_id = ? AND id = ?"
        ))
        .bind(shop_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn deliveries_of_event(
        &self,
        shop_id: &str,
        event_id: &str,
    ) -> Result<Vec<DeliveryRow>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM deliveries WHERE shop_id = ? AND event_id = ? ORDER BY id"
        ))
        .bind(shop_id)
        .bind(event_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Queues a delivery again now. Allowed from any final state (succeeded, failed,
    /// cancelled) and for one waiting to retry; `None` when there is no such delivery,
    /// `Some(false)` when its state does not allow it.
    pub async fn retry_delivery(&self, shop_id: &str, id: &str, now: i64) -> Result<Option<bool>> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?
             WHERE shop_id = ? AND id = ? AND status IN ('succeeded', 'failed', 'cancelled', 'retrying')
             AND endpoint_id IN (SELECT id FROM endpoints WHERE enabled = 1)",
        )
        .bind(now)
        .bind(now)
        .bind(shop_id)
        .bind(id)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Some(true));
        }
        Ok(self.delivery(shop_id, id).await?.map(|_| false))
    }

    /// Cancels a delivery that has not finished; same answers as [`Store::retry_delivery`].
    pub async fn cancel_delivery(&self, shop_id: &str, id: &str, now: i64) -> Result<Option<bool>> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, updated_at = ?
             WHERE shop_id = ? AND id = ? AND status IN ('pending', 'retrying', 'held')",
        )
        .bind(now)
        .bind(shop_id)
        .bind(id)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Some(true));
        }
        Ok(self.delivery(shop_id, id).await?.map(|_| false))
    }

    /// Queues again every delivery matching the filter (its status defaults to `failed`) whose
    /// endpoint is enabled; returns how many.
    pub async fn bulk_retry(
        &self,
        shop_id: &str,
        filter: &DeliveryFilter,
        now: i64,
    ) -> Result<u64> {
        let mut f = filter.clone();
        if f.status.is_none() {
            f.status = Some("failed".into());
        }
        let mut qb = QueryBuilder::<Sqlite>::new(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ",
        );
        qb.push_bind(now)
            .push(", updated_at = ")
            .push_bind(now)
            .push(" WHERE shop_id = ")
            .push_bind(shop_id)
            .push(" AND status IN ('succeeded', 'failed', 'cancelled')")
            .push(" AND endpoint_id IN (SELECT id FROM endpoints WHERE enabled = 1)");
        push_filter(&mut qb, &f);
        Ok(qb.build().execute(&self.writer).await?.rows_affected())
    }

    /// Leases up to `limit` due deliveries, highest priority and oldest due first, skipping
    /// endpoints in `skip` (already at their concurrency limit) and taking at most
    /// `per_endpoint(endpoint)` from each endpoint.
    pub async fn claim_due(
        &self,
        now: i64,
        lease_ms: i64,
        limit: usize,
        skip: &[String],
        mut room_for: impl FnMut(&str) -> usize,
    ) -> Result<Vec<Claimed>> {
        if limit == 0 {
            return Ok(vec![]);
        }
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT id, endpoint_id FROM deliveries WHERE status IN ('pending', 'retrying')
             AND next_attempt_at <= ",
        );
        qb.push_bind(now);
        if !skip.is_empty() {
            qb.push(" AND endpoint_id NOT IN (");
            let mut sep = qb.separated(", ");
            for s in skip {
                sep.push_bind(s);
            }
            sep.push_unseparated(")");
        }
        // Candidates beyond what can be taken cost a row each through the driver; a modest
        // surplus leaves room for endpoints that are at their limit.
        qb.push(" ORDER BY priority, next_attempt_at LIMIT ")
            .push_bind((limit * 2).min(256) as i64);
        let candidates: Vec<(String, String)> = qb.build_query_as().fetch_all(&self.pool).await?;
        let mut taken: std::collections::HashMap<String, usize> = Default::default();
        let mut chosen = Vec::new();
        for (id, endpoint) in candidates {
            if chosen.len() >= limit {
                break;
            }
            let n = taken.entry(endpoint.clone()).or_insert(0);
            if *n < room_for(&endpoint) {
                *n += 1;
                chosen.push(id);
            }
        }
        if chosen.is_empty() {
            return Ok(vec![]);
        }
        let mut qb = QueryBuilder::<Sqlite>::new(
            "UPDATE deliveries SET status = 'delivering', lease_until = ",
        );
        qb.push_bind(now + lease_ms)
            .push(", updated_at = ")
            .push_bind(now)
            .push(" WHERE status IN ('pending', 'retrying') AND id IN (");
        let mut sep = qb.separated(", ");
        for id in &chosen {
            sep.push_bind(id);
        }
        sep.push_unseparated(")");
        qb.push(" RETURNING id, shop_id, event_id, endpoint_id, attempt_count, created_at");
        qb.build_query_as().fetch_all(&self.writer).await
    }

    /// Makes deliveries whose lease ran out (their process died) claimable again.
    pub async fn release_expired_leases(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE deliveries SET status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END,
             next_attempt_at = ?, lease_until = NULL, updated_at = ?
             WHERE status = 'delivering' AND lease_until <= ?",
        )
        .bind(now)
        .bind(now)
        .bind(now)
        .execute(&self.writer)
        .await?
        .rows_affected())
    }

    /// Gives back leased deliveries without an attempt (on shutdown).
    pub async fn release(&self, ids: &[String], now: i64) -> Result<()> {
        for id in ids {
            sqlx::query(
                "UPDATE deliveries SET status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END,
                 next_attempt_at = ?, lease_until = NULL WHERE id = ? AND status = 'delivering'",
            )
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
        }
        Ok(())
    }

    /// When the next waiting delivery falls due, and when the next lease runs out.
    pub async fn next_wakeup(&self) -> Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT MIN(t) FROM (
               SELECT MIN(next_attempt_at) AS t FROM deliveries WHERE status IN ('pending', 'retrying')
               UNION ALL
               SELECT MIN(lease_until) AS t FROM deliveries WHERE status = 'delivering')",
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Deliveries per channel label in a shop.
    pub async fn channel_counts(&self, shop_id: &str) -> Result<Vec<(String, i64)>> {
        sqlx::query_as(
            "SELECT j.value, COUNT(*) FROM deliveries d, json_each(d.channels) j
             WHERE d.shop_id = ? GROUP BY j.value",
        )
        .bind(shop_id)
        .fetch_all(&self.pool)
        .await
    }

    /// A shop's queue by status, and the age of its oldest due delivery in ms.
    pub async fn shop_queue(
        &self,
        shop_id: &str,
        now: i64,
    ) -> Result<(Vec<(String, i64)>, Option<i64>)> {
        let counts = sqlx::query_as(
            "SELECT status, COUNT(*) FROM deliveries WHERE shop_id = ? GROUP BY status",
        )
        .bind(shop_id)
        .fetch_all(&self.pool)
        .await?;
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE shop_id = ?
             AND status IN ('pending', 'retrying') AND next_attempt_at <= ?",
        )
        .bind(shop_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok((counts, oldest.map(|t| now - t)))
    }

    /// Queue depth by status across every shop, for metrics.
    pub async fn queue_counts(&self) -> Result<Vec<(String, i64)>> {
        sqlx::query_as("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
            .fetch_all(&self.pool)
            .await
    }

    /// The oldest due time among waiting deliveries (for the lag metric).
    pub async fn oldest_due(&self, now: i64) -> Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE status IN ('pending', 'retrying') AND next_attempt_at <= ?",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
    }
}
