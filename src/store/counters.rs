//! Counters that pages and scrapes read instead of counting deliveries, events or attempts
//! (see `migrations/sqlite/0010_counters_and_bulk_changes.sql` for the names). Triggers keep the delivery
//! counts; publishing and recording attempts add their hourly counts in their own
//! transactions. On PostgreSQL every addition is a row appended to `count_deltas`, folded into
//! `counters` every second ([`Store::fold_counters`]); readers add up both tables.

use super::{in_tx, on_reader, on_writer, Dialect, Result, Store, Tx};
use crate::ids::ShopId;
use sqlx::QueryBuilder;

/// One hour, the unit of the hourly counters.
pub const HOUR_MS: i64 = 3_600_000;

/// How long hourly counters are kept: the dashboard shows the last seven days.
const HOURLY_KEPT_MS: i64 = 8 * 24 * HOUR_MS;

/// The name of an hourly counter: `h:<hour>:<what>`, the hour zero-padded so names sort by it.
pub fn hourly(at_ms: i64, what: &str) -> String {
    format!("h:{:08}:{what}", at_ms / HOUR_MS)
}

/// The hour an hourly counter's name is for, and what it counts.
fn parse_hourly(name: &str) -> Option<(i64, &str)> {
    let rest = name.strip_prefix("h:")?;
    let (hour, what) = rest.split_once(':')?;
    Some((hour.parse().ok()?, what))
}

/// One minute, the unit of the queue samples.
pub const MINUTE_MS: i64 = 60_000;

/// How long queue samples are kept: the dashboard shows the last hour.
const SAMPLES_KEPT_MS: i64 = 24 * HOUR_MS;

/// The name of a queue sample: `m:<minute>:<what>` (`depth`, or `lag` in ms), the minute
/// zero-padded so names sort by it.
pub fn per_minute(at_ms: i64, what: &str) -> String {
    format!("m:{:010}:{what}", at_ms / MINUTE_MS)
}

/// The minute a queue sample's name is for, and what it measures.
fn parse_per_minute(name: &str) -> Option<(i64, &str)> {
    let rest = name.strip_prefix("m:")?;
    let (minute, what) = rest.split_once(':')?;
    Some((minute.parse().ok()?, what))
}

/// Each shop's deliveries waiting or in flight, from the delivery counters; shops with none
/// left out.
const SHOP_DEPTHS: &str = "SELECT shop_id, CAST(SUM(n) AS BIGINT) FROM (
    SELECT shop_id, name, n FROM counters WHERE name >= 'q:' AND name < 'q;'
    UNION ALL
    SELECT shop_id, name, n FROM count_deltas WHERE name >= 'q:' AND name < 'q;') x
  WHERE name LIKE 'q:pending:%' OR name LIKE 'q:retrying:%' OR name LIKE 'q:delivering:%'
  GROUP BY shop_id HAVING SUM(n) > 0";

/// Adds `n` to each `(shop, name, n)` counter, in the caller's transaction.
pub async fn add(tx: &mut Tx, counts: &[(&ShopId, String, i64)]) -> Result<()> {
    if counts.is_empty() {
        return Ok(());
    }
    in_tx!(tx, |c, d| {
        let mut qb = QueryBuilder::new(d.pick(
            "INSERT INTO counters (shop_id, name, n) ",
            "INSERT INTO count_deltas (shop_id, name, n) ",
        ));
        qb.push_values(counts, |mut b, (shop_id, name, n)| {
            b.push_bind(*shop_id).push_bind(name).push_bind(*n);
        });
        if d == Dialect::Sqlite {
            qb.push(" ON CONFLICT (shop_id, name) DO UPDATE SET n = n + excluded.n");
        }
        qb.build().execute(c).await?;
    });
    Ok(())
}

/// A shop's counters whose names start with `prefix`, at `(name, n)`, sorted by name; names
/// between `from` and `to` (exclusive) when given instead.
#[derive(Debug, Clone, Copy)]
pub(super) enum Names<'a> {
    Prefix(&'a str),
    Range(&'a str, &'a str),
}

impl Names<'_> {
    fn bounds(&self) -> (String, String) {
        match self {
            // Every name with the prefix sorts before the prefix followed by U+FFFF.
            Names::Prefix(p) => (p.to_string(), format!("{p}\u{ffff}")),
            Names::Range(from, to) => (from.to_string(), to.to_string()),
        }
    }
}

/// The `(name, n)` rows of a shop's (or every shop's) counters named as `names` say, from
/// both tables: a counter's value is their sum.
pub(super) fn push_counter_rows<'a, DB: sqlx::Database>(
    qb: &mut QueryBuilder<'a, DB>,
    shop_id: Option<&'a ShopId>,
    names: Names<'_>,
) where
    &'a ShopId: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let (from, to) = names.bounds();
    for (i, table) in ["counters", "count_deltas"].iter().enumerate() {
        if i > 0 {
            qb.push(" UNION ALL ");
        }
        qb.push(format!("SELECT name, n FROM {table} WHERE "));
        if let Some(shop) = shop_id {
            qb.push("shop_id = ").push_bind(shop).push(" AND ");
        }
        qb.push("name >= ")
            .push_bind(from.clone())
            .push(" AND name < ")
            .push_bind(to.clone());
    }
}

impl Store {
    /// A shop's counters named as `names` say, summed over both tables; zeros left out.
    async fn counters(
        &self,
        shop_id: Option<&ShopId>,
        names: Names<'_>,
    ) -> Result<Vec<(String, i64)>> {
        on_reader!(self, |pool, _d| {
            let mut qb = QueryBuilder::new("SELECT name, CAST(SUM(n) AS BIGINT) FROM (");
            push_counter_rows(&mut qb, shop_id, names);
            qb.push(") x GROUP BY name HAVING SUM(n) <> 0 ORDER BY name");
            Ok(qb.build_query_as().fetch_all(pool).await?)
        })
    }

    /// Deliveries per channel label in a shop.
    pub async fn channel_counts(&self, shop_id: &ShopId) -> Result<Vec<(String, i64)>> {
        Ok(self
            .counters(Some(shop_id), Names::Prefix("c:"))
            .await?
            .into_iter()
            .map(|(name, n)| (name["c:".len()..].to_string(), n))
            .collect())
    }

    /// Deliveries by (status, endpoint id) in a shop, or in every shop.
    pub async fn status_counts(
        &self,
        shop_id: Option<&ShopId>,
    ) -> Result<Vec<(String, String, i64)>> {
        Ok(self
            .counters(shop_id, Names::Prefix("q:"))
            .await?
            .into_iter()
            .filter_map(|(name, n)| {
                let (status, endpoint) = name["q:".len()..].split_once(':')?;
                Some((status.to_string(), endpoint.to_string(), n))
            })
            .collect())
    }

    /// A shop's hourly counters from `since` on: (hour start in ms, what, n).
    pub async fn hourly_counts(
        &self,
        shop_id: Option<&ShopId>,
        since: i64,
    ) -> Result<Vec<(i64, String, i64)>> {
        let from = hourly(since, "");
        Ok(self
            .counters(shop_id, Names::Range(&from, "h;"))
            .await?
            .into_iter()
            .filter_map(|(name, n)| {
                let (hour, what) = parse_hourly(&name)?;
                Some((hour * HOUR_MS, what.to_string(), n))
            })
            .collect())
    }

    /// Events published since `since`, per shop, from the hourly counters (the hour `since`
    /// falls in counts whole).
    pub async fn events_since_by_shop(&self, since: i64) -> Result<Vec<(String, i64)>> {
        let from = hourly(since, "");
        let rows: Vec<(String, i64)> = on_reader!(self, |pool, d| {
            sqlx::query_as(&d.sql(
                "SELECT shop_id, CAST(SUM(n) AS BIGINT) FROM (
                   SELECT shop_id, name, n FROM counters WHERE name >= ?1 AND name < 'h;'
                   UNION ALL
                   SELECT shop_id, name, n FROM count_deltas WHERE name >= ?1 AND name < 'h;') x
                 WHERE name LIKE '%:events' GROUP BY shop_id",
            ))
            .bind(&from)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Samples each shop's queue for the minute of `now`: its depth (deliveries waiting or in
    /// flight) and its lag (how long the oldest due one has waited, ms), for the dashboard's
    /// last hour. Shops with nothing waiting write nothing (read as zero). A minute already
    /// sampled, by this node or another, is kept as it is, so any node may sample.
    pub async fn sample_queues(&self, now: i64) -> Result<usize> {
        let depths: Vec<(String, i64)> = on_reader!(self, |pool, d| {
            sqlx::query_as(&d.sql(SHOP_DEPTHS)).fetch_all(pool).await?
        });
        let mut samples = Vec::with_capacity(depths.len() * 2);
        for (shop, depth) in depths {
            let shop_id = ShopId::from(shop.as_str());
            let lag = self.shop_lag(&shop_id, now).await?.unwrap_or(0);
            samples.push((shop_id.clone(), per_minute(now, "depth"), depth));
            samples.push((shop_id, per_minute(now, "lag"), lag));
        }
        // In key order, so that two nodes sampling the same minute take the rows' locks in
        // the same order (PostgreSQL) and neither waits on the other.
        samples.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        for chunk in samples.chunks(500) {
            on_writer!(self, |pool, _d| {
                let mut qb = QueryBuilder::new("INSERT INTO counters (shop_id, name, n) ");
                qb.push_values(chunk, |mut b, (shop_id, name, n)| {
                    b.push_bind(shop_id).push_bind(name).push_bind(*n);
                });
                qb.push(" ON CONFLICT (shop_id, name) DO NOTHING");
                qb.build().execute(pool).await?;
            });
        }
        Ok(samples.len() / 2)
    }

    /// A shop's queue samples from `since` on: (minute start in ms, depth, lag in ms), minutes
    /// without a sample left out.
    pub async fn queue_samples(
        &self,
        shop_id: &ShopId,
        since: i64,
    ) -> Result<Vec<(i64, i64, i64)>> {
        let from = per_minute(since, "");
        let mut per: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
        for (name, n) in self
            .counters(Some(shop_id), Names::Range(&from, "m;"))
            .await?
        {
            match parse_per_minute(&name) {
                Some((minute, "depth")) => per.entry(minute * MINUTE_MS).or_default().0 = n,
                Some((minute, "lag")) => per.entry(minute * MINUTE_MS).or_default().1 = n,
                _ => {}
            }
        }
        Ok(per
            .into_iter()
            .map(|(m, (depth, lag))| (m, depth, lag))
            .collect())
    }

    /// Moves what `count_deltas` holds into `counters`, one node at a time (PostgreSQL; on
    /// SQLite triggers write `counters` directly and there is nothing to fold). Deltas of a
    /// shop deleted meanwhile are dropped.
    pub async fn fold_counters(&self) -> Result<u64> {
        let super::Db::Postgres { pool } = &self.db else {
            return Ok(0);
        };
        {
            let mut tx = pool.begin().await?;
            if !super::cluster::try_job_lock(&mut tx, "fold-counters").await? {
                return Ok(0);
            }
            // In name order: folds never run at once (the lock), but a reader's view and
            // this stay simple to reason about.
            let moved = sqlx::query(
                "WITH moved AS (DELETE FROM count_deltas RETURNING shop_id, name, n)
                 INSERT INTO counters (shop_id, name, n)
                 SELECT shop_id, name, SUM(n) FROM moved
                 WHERE EXISTS (SELECT 1 FROM shops s WHERE s.id = moved.shop_id)
                 GROUP BY shop_id, name ORDER BY shop_id, name
                 ON CONFLICT (shop_id, name) DO UPDATE SET n = counters.n + EXCLUDED.n",
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(moved)
        }
    }

    /// Drops hourly counters older than the dashboard shows, and counters at zero that name
    /// an endpoint or a channel no longer in use.
    pub async fn prune_counters(&self, now: i64) -> Result<u64> {
        let cutoff = hourly(now - HOURLY_KEPT_MS, "");
        on_writer!(self, |pool, d| {
            let old = sqlx::query(&d.sql("DELETE FROM counters WHERE name >= 'h:' AND name < ?"))
                .bind(&cutoff)
                .execute(pool)
                .await?
                .rows_affected();
            let samples =
                sqlx::query(&d.sql("DELETE FROM counters WHERE name >= 'm:' AND name < ?"))
                    .bind(per_minute(now - SAMPLES_KEPT_MS, ""))
                    .execute(pool)
                    .await?
                    .rows_affected();
            let zero = sqlx::query(
                "DELETE FROM counters WHERE n = 0 AND (name < 'h:' OR name >= 'h;') \
                 AND (name < 'm:' OR name >= 'm;')",
            )
            .execute(pool)
            .await?
            .rows_affected();
            Ok(old + samples + zero)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_names_sort_by_hour_and_read_back() {
        let a = hourly(5 * HOUR_MS + 1, "events");
        let b = hourly(40 * HOUR_MS, "ok:ep_1");
        assert_eq!(a, "h:00000005:events");
        assert!(a < b && b.as_str() < "h;");
        assert_eq!(parse_hourly(&b), Some((40, "ok:ep_1")));
        assert_eq!(parse_hourly("q:held:ep_1"), None);
    }

    #[test]
    fn sample_names_sort_by_minute_after_the_hourly_ones() {
        let a = per_minute(3 * MINUTE_MS + 5, "depth");
        let b = per_minute(1_000 * MINUTE_MS, "lag");
        assert_eq!(a, "m:0000000003:depth");
        assert!(hourly(i64::MAX / 2, "events").as_str() < a.as_str());
        assert!(a < b && b.as_str() < "m;" && b.as_str() < "q:");
        assert_eq!(parse_per_minute(&b), Some((1_000, "lag")));
        assert_eq!(parse_per_minute("h:00000001:events"), None);
    }
}
