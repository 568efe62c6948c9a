//! Retention: what a shop's settings no longer keep is removed, in small batches that each
//! hold the one writer for a few milliseconds, through the indexes the queue and the pages
//! already have (no scan of a whole table, no index of its own to slow every write).
//!
//! After the shop's log retention: attempts, succeeded deliveries, alerts, and endpoints
//! deleted by an unsubscribe answer once their deliveries are gone. After its retry
//! retention: failed, cancelled and held deliveries, and those still retrying (the
//! exponential policy's slow lane) — seed 000: "failed items are deleted after 24 hours".
//! Events go once nothing refers to them and they are older than the shorter of the two (a
//! repeated event id is recognised as long as the event is kept). The ages compared are
//! creation times; a delivery's key starts with its creation time (see
//! [`crate::ids::DeliveryId`]), so "created before" is a range of the `(shop, status, id)`
//! index.

use super::{on_reader, on_writer, Result, Store};
use crate::ids::{DeliveryId, ShopId};

/// Most rows one purge statement removes (cascaded attempts aside).
pub const PURGE_BATCH: i64 = 500;

/// How long one shop keeps its logs and its failed deliveries, in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    pub logs_ms: i64,
    pub failed_ms: i64,
}

/// What one round removed; `more` when a batch came back full, so more is already due.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Purged {
    pub deliveries: u64,
    pub attempts: u64,
    pub events: u64,
    pub alerts: u64,
    pub more: bool,
}

impl Purged {
    pub fn total(&self) -> u64 {
        self.deliveries + self.attempts + self.events + self.alerts
    }

    fn add(&mut self, other: Purged) {
        self.deliveries += other.deliveries;
        self.attempts += other.attempts;
        self.events += other.events;
        self.alerts += other.alerts;
        self.more |= other.more;
    }
}

impl Store {
    /// Every shop with its retention settings: (shop id, log days, failed hours).
    pub async fn shop_retentions(&self) -> Result<Vec<(ShopId, i64, i64)>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(
                &d.sql("SELECT id, log_retention_days, failed_retention_hours FROM shops"),
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// One round over every shop. `override_ms` replaces every shop's two retentions (tests
    /// and benchmarks: `HERALD_RETENTION_SECONDS`).
    pub async fn purge_expired(&self, now: i64, override_ms: Option<i64>) -> Result<Purged> {
        let mut total = Purged::default();
        for (shop, days, hours) in self.shop_retentions().await? {
            let retention = match override_ms {
                Some(ms) => Retention {
                    logs_ms: ms,
                    failed_ms: ms,
                },
                None => Retention {
                    logs_ms: days * 86_400_000,
                    failed_ms: hours * 3_600_000,
                },
            };
            total.add(self.purge_shop(&shop, retention, now).await?);
            tokio::task::yield_now().await;
        }
        Ok(total)
    }

    /// One batch of each kind of expired row of one shop; each statement is its own short
    /// transaction, so the engine gets the writer between them.
    pub async fn purge_shop(&self, shop_id: &ShopId, r: Retention, now: i64) -> Result<Purged> {
        on_writer!(self, |pool, d| {
            // A row's own address: SQLite's rowid, PostgreSQL's ctid.
            let rowid = d.pick("rowid", "ctid");
            // The deliveries an event lists (it keeps the list up to date when a newer event
            // takes one over): an event goes only once none of them is left.
            let listed = d.pick(
                "SELECT value FROM json_each(e.deliveries)",
                "SELECT CAST(jsonb_array_elements(e.deliveries::jsonb) AS bigint)",
            );
            let logs_cutoff = now - r.logs_ms;
            let failed_cutoff = now - r.failed_ms;
            let mut out = Purged::default();
            for (status, cutoff) in [
                ("succeeded", logs_cutoff),
                ("failed", failed_cutoff),
                ("cancelled", failed_cutoff),
                ("held", failed_cutoff),
                ("retrying", failed_cutoff),
            ] {
                // Their attempts go with them (ON DELETE CASCADE). `status` is one of the above.
                let sql = format!(
                    "DELETE FROM deliveries WHERE {rowid} IN (SELECT {rowid} FROM deliveries
                 WHERE shop = (SELECT num FROM shops WHERE id = ?1) AND status = '{status}'
                 AND id < ?2 ORDER BY id LIMIT ?3)"
                );
                out.deliveries += self
                    .purge_batch(
                        &sql,
                        shop_id,
                        DeliveryId::first_key_at(cutoff),
                        &mut out.more,
                    )
                    .await?;
            }
            // Attempt ids grow with time: the oldest come first, and the look stops at a batch.
            out.attempts = self
                .purge_batch(
                    "DELETE FROM attempts WHERE id IN (SELECT id FROM (SELECT id, at FROM attempts
                 WHERE shop = (SELECT num FROM shops WHERE id = ?1) ORDER BY id LIMIT ?3) AS oldest
                 WHERE at < ?2)",
                    shop_id,
                    logs_cutoff,
                    &mut out.more,
                )
                .await?;
            out.events = self
                .purge_batch(
                    &format!(
                        "DELETE FROM events WHERE {rowid} IN (SELECT e.{rowid} FROM events e
                     WHERE e.shop = (SELECT num FROM shops WHERE id = ?1) AND e.created_at < ?2
                     AND NOT EXISTS (SELECT 1 FROM deliveries d
                       WHERE d.id IN ({listed}))
                     ORDER BY e.created_at LIMIT ?3)"
                    ),
                    shop_id,
                    now - r.logs_ms.min(r.failed_ms),
                    &mut out.more,
                )
                .await?;
            out.alerts = self
                .purge_batch(
                    &format!(
                        "DELETE FROM alerts WHERE {rowid} IN (SELECT {rowid} FROM alerts
                     WHERE shop_id = ?1 AND created_at < ?2 ORDER BY created_at LIMIT ?3)"
                    ),
                    shop_id,
                    logs_cutoff,
                    &mut out.more,
                )
                .await?;
            sqlx::query(&d.sql(
                "DELETE FROM endpoints WHERE shop_id = ?1 AND deleted_at < ?2
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.endpoint = endpoints.num)",
            ))
            .bind(shop_id)
            .bind(logs_cutoff)
            .execute(pool)
            .await?;
            Ok(out)
        })
    }

    /// Runs one purge statement (`?1` the shop, `?2` the cutoff, `?3` the batch size); sets
    /// `more` when the batch came back full.
    async fn purge_batch<C>(
        &self,
        sql: &str,
        shop_id: &ShopId,
        cutoff: C,
        more: &mut bool,
    ) -> Result<u64>
    where
        C: for<'q> sqlx::Encode<'q, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + for<'q> sqlx::Encode<'q, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>
            + Send,
    {
        on_writer!(self, |pool, d| {
            let n = sqlx::query(&d.sql(sql))
                .bind(shop_id)
                .bind(cutoff)
                .bind(PURGE_BATCH)
                .execute(pool)
                .await?
                .rows_affected();
            *more |= n >= PURGE_BATCH as u64;
            Ok(n)
        })
    }
}
