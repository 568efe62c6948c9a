//! The queue: deliveries are claimed with a lease, listed newest first with keyset
//! pagination, and retried or cancelled by hand.

use super::{on_reader, on_writer, Db, Dialect, Result, Store, Tx, SHOP_NUM, SHOP_NUM_OPEN};
use crate::ids::{DeliveryId, EndpointId, EventId, ShopId};
use app::model::DeliveryStatus;
use sqlx::{PgPool, QueryBuilder, SqlitePool};

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub shop_id: ShopId,
    pub event_id: EventId,
    pub endpoint_id: EndpointId,
    pub event_type: String,
    pub channels: sqlx::types::Json<Vec<String>>,
    pub status: String,
    pub priority: i64,
    pub attempt_count: i64,
    pub next_attempt_at: Option<i64>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A delivery names its shop and its endpoint by number (`shop`, `endpoint`); rows read back
/// carry their ids.
macro_rules! shop_id_of_row {
    () => {
        "(SELECT s.id FROM shops s WHERE s.num = deliveries.shop) AS shop_id"
    };
}
macro_rules! endpoint_id_of_row {
    () => {
        "(SELECT e.id FROM endpoints e WHERE e.num = deliveries.endpoint) AS endpoint_id"
    };
}

const COLUMNS: &str = concat!(
    "id, ",
    shop_id_of_row!(),
    ", event_id, ",
    endpoint_id_of_row!(),
    ", event_type, channels, status, priority,
    attempt_count, next_attempt_at, last_status_code, last_error, created_at, updated_at"
);

/// What the queue page and `GET /deliveries` filter by. Every field is optional.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<String>,
    pub endpoint_id: Option<EndpointId>,
    pub event_type: Option<String>,
    pub channel: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl DeliveryFilter {
    /// Whether it names at most a status and an endpoint: what the counters can answer.
    pub fn counted(&self) -> bool {
        self.event_type.is_none()
            && self.channel.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }
}

/// Whether a delivery may be sent now (SQL, over a `deliveries` row): its endpoint is enabled
/// and its shop's webhooks are on (the operator's switch). A delivery that may not is held,
/// and every statement that makes a delivery wait again asks this, so the two switches hold
/// and resume the same way.
/// (A macro, so that statements built with `concat!` can hold it.)
macro_rules! sendable {
    () => {
        "(EXISTS (SELECT 1 FROM endpoints e WHERE e.num = deliveries.endpoint AND e.enabled)
         AND EXISTS (SELECT 1 FROM shops s WHERE s.num = deliveries.shop AND s.webhooks_enabled))"
    };
}
pub(super) use sendable;
pub(super) const SENDABLE: &str = sendable!();

/// The state a leased delivery returns to unsent: held when it may not be sent
/// ([`SENDABLE`]), else waiting as before.
const RELEASED_STATUS: &str = concat!(
    "CASE WHEN NOT ",
    sendable!(),
    " THEN 'held' WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END"
);

/// A shop's oldest due time among waiting deliveries: a seek per endpoint and priority in
/// the per-endpoint queue index, however many are waiting.
const SHOP_OLDEST_DUE: &str = "SELECT MIN((SELECT MIN(x.next_attempt_at) FROM deliveries x
    INDEXED BY deliveries_endpoint_due WHERE x.endpoint = e.num AND x.priority = p.p
    AND x.status IN ('pending', 'retrying')))
    FROM endpoints e, (SELECT 0 AS p UNION ALL SELECT 1 UNION ALL SELECT 2) p WHERE e.shop_id = ?";

/// (status, endpoint, n) counts summed by status, in status order.
fn by_status(counts: Vec<(String, String, i64)>) -> Vec<(String, i64)> {
    let mut sums: std::collections::BTreeMap<String, i64> = Default::default();
    for (status, _, n) in counts {
        *sums.entry(status).or_default() += n;
    }
    sums.into_iter().collect()
}

/// When the next lease runs out: a seek in the partial index of leased deliveries.
const NEXT_LEASE_END: &str = "SELECT MIN(lease_until) FROM deliveries INDEXED BY deliveries_leased
    WHERE status = 'delivering'";

/// The oldest due time among waiting deliveries: a seek in the partial index of waiting ones.
const OLDEST_DUE: &str = "SELECT MIN(next_attempt_at) FROM deliveries INDEXED BY deliveries_waiting
    WHERE status IN ('pending', 'retrying') AND next_attempt_at <= ?";

/// A claimed delivery, leased to this process.
#[derive(sqlx::FromRow, Debug, Clone)]
pub struct Claimed {
    pub id: DeliveryId,
    pub shop_id: ShopId,
    pub event_id: EventId,
    pub endpoint_id: EndpointId,
    pub attempt_count: i64,
    pub created_at: i64,
    /// 0 high, 1 normal, 2 low: the ready queue sends higher priorities first.
    pub priority: i64,
    /// The token this claim wrote; every later write for the delivery must name it.
    pub lease_owner: String,
    /// When the lease runs out: the claim's lease plus the endpoint's timeout, so an attempt
    /// started within the lease always finishes within it.
    pub lease_until: i64,
}

/// A lease to end: (delivery id, the token its claim wrote).
pub type LeaseRef = (DeliveryId, String);

/// Leases as one JSON array of `[key, token]` pairs, bound to one statement whatever their
/// number.
fn leases_json(leases: &[LeaseRef]) -> String {
    let pairs: Vec<(i64, &str)> = leases
        .iter()
        .map(|(id, owner)| (id.bound_key(), owner.as_str()))
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

impl Claimed {
    pub fn lease(&self) -> LeaseRef {
        (self.id.clone(), self.lease_owner.clone())
    }
}

pub(super) fn push_filter<'a, DB: sqlx::Database>(
    qb: &mut QueryBuilder<'a, DB>,
    f: &'a DeliveryFilter,
    d: Dialect,
) where
    &'a String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a EndpointId: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    if let Some(s) = &f.status {
        qb.push(" AND status = ").push_bind(s);
    }
    if let Some(e) = &f.endpoint_id {
        qb.push(" AND endpoint = (SELECT num FROM endpoints WHERE id = ")
            .push_bind(e)
            .push(")");
    }
    if let Some(t) = &f.event_type {
        qb.push(" AND event_type = ").push_bind(t);
    }
    if let Some(c) = &f.channel {
        qb.push(d.pick(
            " AND EXISTS (SELECT 1 FROM json_each(deliveries.channels) WHERE value = ",
            " AND deliveries.channels @> jsonb_build_array(",
        ))
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

/// Changes every delivery of a shop (or of one of its endpoints) in `statuses` as `kind`
/// says: the first slice of each status at once, the rest by the engine in slices (see
/// [`super::bulk`]). Returns how many were changed at once and whether the engine has more to
/// do.
pub async fn change_deliveries(
    tx: &mut Tx,
    shop_id: &ShopId,
    endpoint_id: Option<&EndpointId>,
    kind: super::bulk::BulkKind,
    statuses: &[&str],
    now: i64,
) -> Result<(u64, bool)> {
    let mut done = (0, false);
    for status in statuses {
        let change = super::bulk::BulkChange {
            shop_id: shop_id.clone(),
            kind,
            status: status.to_string(),
            filter: DeliveryFilter {
                endpoint_id: endpoint_id.cloned(),
                ..Default::default()
            },
            endpoints: None,
        };
        let total = super::bulk::count_reached(tx, &change).await?;
        let (changed, more) = super::bulk::start(tx, &change, total, now).await?;
        done = (done.0 + changed, done.1 || more);
    }
    Ok(done)
}

/// Holds the waiting deliveries of an endpoint (it was disabled) or of a whole shop (its
/// webhooks were turned off).
pub async fn hold_waiting(
    tx: &mut Tx,
    shop_id: &ShopId,
    endpoint_id: Option<&EndpointId>,
    now: i64,
) -> Result<(u64, bool)> {
    use super::bulk::BulkKind;
    change_deliveries(
        tx,
        shop_id,
        endpoint_id,
        BulkKind::Hold,
        &["pending", "retrying"],
        now,
    )
    .await
}

/// `AND` the shop (or `endpoint`) has deliveries of the branch's status, by the counters.
/// Uncorrelated, so each store computes it once.
fn push_status_held<'a, DB: sqlx::Database>(
    qb: &mut QueryBuilder<'a, DB>,
    shop_id: &'a ShopId,
    branch: &DeliveryFilter,
    endpoint: Option<&EndpointId>,
) where
    &'a ShopId: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let status = branch.status.as_deref().unwrap_or_default();
    let prefix = match endpoint {
        Some(e) => format!("q:{status}:{e}"),
        None => format!("q:{status}:"),
    };
    qb.push(" AND (SELECT COALESCE(SUM(n), 0) FROM (");
    super::counters::push_counter_rows(qb, Some(shop_id), super::counters::Names::Prefix(&prefix));
    qb.push(") AS held) > 0");
}

/// Keys for `n` new deliveries created at `now`, in the order they are made (see
/// [`DeliveryId`]).
///
/// On SQLite, inside the one writer's transaction: past the highest key there is, and at
/// least the first key of `now`. On PostgreSQL, where nodes write at once, the low bits come
/// from the `delivery_keys` sequence: two nodes in the same millisecond draw different ones.
pub(super) async fn new_keys(tx: &mut Tx, n: usize, now: i64) -> Result<Vec<DeliveryId>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let first = DeliveryId::first_key_at(now);
    let keys: Vec<i64> = match tx {
        Tx::Sqlite(t, _) => {
            let highest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM deliveries")
                .fetch_one(&mut **t)
                .await?;
            let start = highest.map_or(first, |h| first.max(h + 1));
            (start..start + n as i64).collect()
        }
        Tx::Postgres(t) => {
            sqlx::query_scalar(
                "SELECT $1::bigint | (nextval('delivery_keys') & $2::bigint)
                 FROM generate_series(1, $3::bigint)",
            )
            .bind(first)
            .bind((1_i64 << DeliveryId::TIME_SHIFT) - 1)
            .bind(n as i64)
            .fetch_all(&mut **t)
            .await?
        }
    };
    Ok(keys.into_iter().map(DeliveryId::from_key).collect())
}

/// Delivery ids as a JSON array of their keys: how an event lists its deliveries, and how a
/// list of them is bound to one statement.
pub(super) fn keys_json<'a>(ids: impl IntoIterator<Item = &'a DeliveryId>) -> String {
    let keys: Vec<i64> = ids.into_iter().map(DeliveryId::bound_key).collect();
    serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// Newest first; `before` is the last id of the previous page.
    ///
    /// Without a status, the newest of each status are merged in one statement: every
    /// branch walks the `(shop, status, id)` index from the top, so a page reads at most
    /// `limit` rows per status however large the queue (an index on `(shop, id)` alone
    /// would cost an entry per delivery to answer this one list). A branch runs only when the
    /// counters, read in the same statement, say the shop (or the filter's endpoint) has
    /// deliveries of its status: an empty status's branch would still walk its index entries,
    /// and on PostgreSQL, until a vacuum, those of every row that left the status (a million
    /// after a drain).
    pub async fn list_deliveries(
        &self,
        shop_id: &ShopId,
        filter: &DeliveryFilter,
        before: Option<&DeliveryId>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let branches: Vec<DeliveryFilter> = match &filter.status {
            Some(_) => vec![filter.clone()],
            None => app::model::DeliveryStatus::ALL
                .iter()
                .map(|s| DeliveryFilter {
                    status: Some(s.as_str().to_string()),
                    ..filter.clone()
                })
                .collect(),
        };
        on_reader!(self, |pool, d| {
            let mut qb = QueryBuilder::new("SELECT * FROM (");
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    qb.push(" UNION ALL ");
                }
                qb.push(format!(
                    "SELECT * FROM (SELECT {COLUMNS} FROM deliveries WHERE shop = "
                ))
                .push(SHOP_NUM_OPEN)
                .push_bind(shop_id)
                .push(")");
                push_filter(&mut qb, branch, d);
                if filter.status.is_none() {
                    push_status_held(&mut qb, shop_id, branch, filter.endpoint_id.as_ref());
                }
                if let Some(b) = before {
                    qb.push(" AND id < ").push_bind(b);
                }
                qb.push(" ORDER BY id DESC LIMIT ")
                    .push_bind(limit)
                    .push(format!(") AS s{i}"));
            }
            qb.push(") AS merged ORDER BY id DESC LIMIT ")
                .push_bind(limit);
            Ok(qb.build_query_as().fetch_all(pool).await?)
        })
    }

    /// How many deliveries match the filter: exact from the counters when it names at most
    /// a status and an endpoint; otherwise counted, but no further than `cap + 1` (a caller
    /// shows "more than `cap`").
    pub async fn count_deliveries(
        &self,
        shop_id: &ShopId,
        filter: &DeliveryFilter,
        cap: i64,
    ) -> Result<i64> {
        if filter.counted() {
            return Ok(self
                .status_counts(Some(shop_id))
                .await?
                .into_iter()
                .filter(|(status, endpoint, _)| {
                    filter.status.as_ref().is_none_or(|s| s == status)
                        && filter.endpoint_id.as_ref().is_none_or(|e| e == endpoint)
                })
                .map(|(_, _, n)| n)
                .sum());
        }
        on_reader!(self, |pool, d| {
            let mut qb =
                QueryBuilder::new("SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE shop = ");
            qb.push(SHOP_NUM_OPEN).push_bind(shop_id).push(")");
            push_filter(&mut qb, filter, d);
            qb.push(" LIMIT ").push_bind(cap + 1).push(") AS matched");
            Ok(qb.build_query_scalar().fetch_one(pool).await?)
        })
    }

    /// The id that finds a delivery: itself when it spells a key; for the id of a delivery
    /// made before keys, the id its key spells now (an unknown id comes back as it is, and
    /// finds nothing).
    pub async fn canonical_delivery_id(&self, id: &DeliveryId) -> Result<DeliveryId> {
        if id.key().is_some() {
            return Ok(id.clone());
        }
        let key: Option<i64> = on_reader!(self, |pool, d| {
            sqlx::query_scalar(&d.sql("SELECT id FROM delivery_legacy_ids WHERE legacy_id = ?"))
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(key.map_or_else(|| id.clone(), DeliveryId::from_key))
    }

    pub async fn delivery(&self, shop_id: &ShopId, id: &DeliveryId) -> Result<Option<DeliveryRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(&format!(
                "SELECT {COLUMNS} FROM deliveries WHERE shop = {SHOP_NUM} AND id = ?"
            )))
            .bind(shop_id)
            .bind(id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// The deliveries an event lists (it keeps the list up to date, so no index leads from
    /// an event to its deliveries).
    pub async fn deliveries_of_event(
        &self,
        shop_id: &ShopId,
        event: &super::events::EventRow,
    ) -> Result<Vec<DeliveryRow>> {
        let ids = super::events::listed_deliveries(&event.deliveries, &event.id)?;
        let mut rows: Vec<DeliveryRow> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            on_reader!(self, |pool, _d| {
                let mut qb =
                    QueryBuilder::new(format!("SELECT {COLUMNS} FROM deliveries WHERE shop = "));
                qb.push(SHOP_NUM_OPEN)
                    .push_bind(shop_id)
                    .push(") AND id IN (");
                let mut list = qb.separated(", ");
                for id in chunk {
                    list.push_bind(id);
                }
                qb.push(")");
                rows.extend(qb.build_query_as().fetch_all(pool).await?);
            })
        }
        rows.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        Ok(rows)
    }

    /// Queues a delivery again now. Allowed from any final state (succeeded, failed,
    /// cancelled) and for one waiting to retry; `None` when there is no such delivery,
    /// `Some(false)` when its state does not allow it.
    pub async fn retry_delivery(
        &self,
        shop_id: &ShopId,
        id: &DeliveryId,
        now: i64,
    ) -> Result<Option<bool>> {
        on_writer!(self, |pool, d| {
            let done = sqlx::query(&d.sql(&format!(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?
             WHERE shop = {SHOP_NUM} AND id = ?
             AND status IN ({}) AND {SENDABLE}",
                DeliveryStatus::sql_list(DeliveryStatus::can_retry)
            )))
            .bind(now)
            .bind(now)
            .bind(shop_id)
            .bind(id)
            .execute(pool)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(Some(true));
            }
            Ok(self.delivery(shop_id, id).await?.map(|_| false))
        })
    }

    /// The token of a delivery's lease, if it is leased.
    pub async fn lease_owner(&self, shop_id: &ShopId, id: &DeliveryId) -> Result<Option<String>> {
        on_reader!(self, |pool, d| Ok(sqlx::query_scalar(&d.sql(&format!(
            "SELECT lease_owner FROM deliveries WHERE shop = {SHOP_NUM} AND id = ?"
        )))
        .bind(shop_id)
        .bind(id)
        .fetch_optional(pool)
        .await?
        .flatten()))
    }

    /// Cancels a delivery that has not finished; same answers as [`Store::retry_delivery`].
    pub async fn cancel_delivery(
        &self,
        shop_id: &ShopId,
        id: &DeliveryId,
        now: i64,
    ) -> Result<Option<bool>> {
        on_writer!(self, |pool, d| {
            let done = sqlx::query(&d.sql(&format!(
                "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, updated_at = ?
             WHERE shop = {SHOP_NUM} AND id = ? AND status IN ({})",
                DeliveryStatus::sql_list(DeliveryStatus::can_cancel)
            )))
            .bind(now)
            .bind(shop_id)
            .bind(id)
            .execute(pool)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(Some(true));
            }
            Ok(self.delivery(shop_id, id).await?.map(|_| false))
        })
    }

    /// Queues again every delivery matching the filter (its status defaults to `failed`) whose
    /// endpoint is enabled; returns how many. The first slice is queued at once, the rest by
    /// the engine in slices (see [`super::bulk`]).
    pub async fn bulk_retry(
        &self,
        shop_id: &ShopId,
        filter: &DeliveryFilter,
        now: i64,
    ) -> Result<u64> {
        let status = filter.status.clone().unwrap_or_else(|| "failed".into());
        if !DeliveryStatus::parse(&status).is_some_and(DeliveryStatus::is_final) {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        // The endpoints enabled now: the retry reaches theirs, also in the slices made after
        // one of them is disabled (held then, sent when it is enabled again).
        let enabled: Vec<EndpointId> = super::in_tx!(&mut tx, |c, d| sqlx::query_scalar(
            &d.sql("SELECT id FROM endpoints WHERE shop_id = ? AND enabled AND deleted_at IS NULL")
        )
        .bind(shop_id)
        .fetch_all(c)
        .await?);
        let change = super::bulk::BulkChange {
            shop_id: shop_id.clone(),
            kind: super::bulk::BulkKind::Retry,
            status,
            filter: DeliveryFilter {
                status: None,
                ..filter.clone()
            },
            endpoints: Some(enabled),
        };
        let total = super::bulk::count_reached(&mut tx, &change).await?;
        let (done, more) = super::bulk::start(&mut tx, &change, total, now).await?;
        tx.commit().await?;
        if more {
            self.signal_bulk();
            return Ok(total.max(done as i64) as u64);
        }
        Ok(done)
    }

    /// Endpoints with deliveries due now.
    ///
    /// Steps from one endpoint to the next through the per-endpoint queue index (a seek per
    /// endpoint), so its cost follows the number of endpoints, not the size of a backlog.
    pub async fn endpoints_with_due(&self, now: i64) -> Result<Vec<EndpointId>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_scalar(&d.sql("WITH RECURSIVE e(num) AS (
               SELECT (SELECT MIN(endpoint) FROM deliveries INDEXED BY deliveries_endpoint_due
                       WHERE status IN ('pending', 'retrying'))
               UNION ALL
               SELECT (SELECT MIN(endpoint) FROM deliveries INDEXED BY deliveries_endpoint_due
                       WHERE status IN ('pending', 'retrying') AND endpoint > e.num)
               FROM e WHERE e.num IS NOT NULL)
             SELECT (SELECT x.id FROM endpoints x WHERE x.num = e.num) FROM e
             WHERE num IS NOT NULL AND EXISTS (SELECT 1
               FROM deliveries d INDEXED BY deliveries_endpoint_due WHERE d.endpoint = e.num AND d.status IN ('pending', 'retrying')
               AND d.next_attempt_at <= ?)"))
        .bind(now)
        .fetch_all(pool)
        .await?)
        })
    }

    /// Leases, for each `(endpoint, n)` of `targets`, up to `n` of its due deliveries, highest
    /// priority and oldest due first.
    ///
    /// Each endpoint is a seek of its own in the per-endpoint queue index: a large backlog at
    /// one endpoint neither slows the claim nor keeps another endpoint's deliveries out of it.
    ///
    /// The claim writes `owner` as the lease's token. The lease runs `lease_ms` plus the
    /// endpoint's timeout: a job sent while `lease_ms` has not run out finishes within it.
    pub async fn claim_due(
        &self,
        now: i64,
        lease_ms: i64,
        owner: &str,
        targets: &[(EndpointId, usize)],
    ) -> Result<Vec<Claimed>> {
        match &self.db {
            Db::Sqlite { writer, .. } => claim_sqlite(writer, now, lease_ms, owner, targets).await,
            Db::Postgres { pool } => claim_postgres(pool, now, lease_ms, owner, targets).await,
        }
    }

    /// Makes deliveries whose lease ran out (their process died) claimable again.
    pub async fn release_expired_leases(&self, now: i64) -> Result<u64> {
        on_writer!(self, |pool, d| {
            // On PostgreSQL one node at a time: while one releases, the others skip the round.
            let (turn, from_turn, mine) = d.pick(
                ("", "", ""),
                (
                    "WITH turn AS (SELECT pg_try_advisory_xact_lock(?2) AS mine)",
                    "FROM turn",
                    "turn.mine AND",
                ),
            );
            let sql = format!(
                "{turn} UPDATE deliveries SET status = {RELEASED_STATUS},
                 next_attempt_at = ?1, lease_until = NULL, lease_owner = NULL, updated_at = ?1
                 {from_turn} WHERE {mine} status = 'delivering' AND lease_until <= ?1"
            );
            let sql = d.sql(&sql);
            let mut query = sqlx::query(&sql).bind(now);
            if d == Dialect::Postgres {
                query = query.bind(super::cluster::lock_key("release-expired-leases"));
            }
            Ok(query.execute(pool).await?.rows_affected())
        })
    }

    /// Gives back leased deliveries without an attempt (on shutdown, or when their endpoint
    /// changed before they were sent).
    pub async fn release(&self, leases: &[LeaseRef], now: i64) -> Result<()> {
        self.end_leases(
            &format!("status = {RELEASED_STATUS}, next_attempt_at = ?1, updated_at = ?1"),
            leases,
            now,
        )
        .await
    }

    /// Cancels leased deliveries that cannot be sent (their event is gone).
    pub async fn cancel_leased(&self, leases: &[LeaseRef], now: i64) -> Result<()> {
        self.end_leases(
            "status = 'cancelled', next_attempt_at = NULL, updated_at = ?1",
            leases,
            now,
        )
        .await
    }

    /// Ends the leases still held under the given tokens, applying `set` (where `?1` is
    /// `now`). A lease that ran out and was claimed again is the new holder's: untouched.
    async fn end_leases(&self, set: &str, leases: &[LeaseRef], now: i64) -> Result<()> {
        on_writer!(self, |pool, d| {
            // The (id, owner) pairs go as one JSON array, whatever their number.
            let (pairs, key) = d.pick(
                ("json_each(?2)", "value ->> 0"),
                (
                    "jsonb_array_elements(CAST(?2 AS jsonb))",
                    "CAST(value ->> 0 AS bigint)",
                ),
            );
            let sql = format!(
                "UPDATE deliveries SET {set}, lease_until = NULL, lease_owner = NULL
             FROM (SELECT {key} AS id, value ->> 1 AS owner FROM {pairs}) AS l
             WHERE deliveries.id = l.id AND deliveries.status = 'delivering'
             AND deliveries.lease_owner = l.owner"
            );
            sqlx::query(&d.sql(&sql))
                .bind(now)
                .bind(leases_json(leases))
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// When the next waiting delivery falls due after `now`, and when the next lease runs out
    /// (perhaps already: a lease not yet released).
    pub async fn next_wakeup(&self, now: i64) -> Result<(Option<i64>, Option<i64>)> {
        on_reader!(self, |pool, d| {
            // One statement for both: each is a message to and from SQLite's worker thread, and
            // this runs after every claim.
            Ok(sqlx::query_as(&d.sql(&format!(
                "SELECT (SELECT MIN(next_attempt_at) FROM deliveries
               WHERE status IN ('pending', 'retrying') AND next_attempt_at > ?),
             ({NEXT_LEASE_END})"
            )))
            .bind(now)
            .fetch_one(pool)
            .await?)
        })
    }

    /// A shop's queue by status (from the counters), and the age of its oldest due delivery
    /// in ms (a seek per endpoint and priority in the per-endpoint queue index).
    pub async fn shop_queue(
        &self,
        shop_id: &ShopId,
        now: i64,
    ) -> Result<(Vec<(String, i64)>, Option<i64>)> {
        let counts = by_status(self.status_counts(Some(shop_id)).await?);
        Ok((counts, self.shop_lag(shop_id, now).await?))
    }

    /// How long a shop's oldest due delivery has waited at `now` (ms), if one is due: a seek
    /// per endpoint and priority.
    pub async fn shop_lag(&self, shop_id: &ShopId, now: i64) -> Result<Option<i64>> {
        let oldest: Option<i64> = on_reader!(self, |pool, d| {
            sqlx::query_scalar(&d.sql(SHOP_OLDEST_DUE))
                .bind(shop_id)
                .fetch_one(pool)
                .await?
        });
        Ok(oldest.filter(|t| *t <= now).map(|t| now - t))
    }

    /// Open deliveries (waiting, leased, held) by status across every shop, for metrics,
    /// from the counters.
    pub async fn queue_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(by_status(self.status_counts(None).await?)
            .into_iter()
            .filter(|(s, _)| matches!(s.as_str(), "pending" | "delivering" | "retrying" | "held"))
            .collect())
    }

    /// The oldest due time among waiting deliveries (for the lag metric): a seek.
    pub async fn oldest_due(&self, now: i64) -> Result<Option<i64>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_scalar(&d.sql(OLDEST_DUE))
                .bind(now)
                .fetch_one(pool)
                .await?)
        })
    }
}

/// SQLite's claim: one writer, so no row can be taken twice; each endpoint's due rows are
/// picked by rowid from its queue index.
async fn claim_sqlite(
    writer: &SqlitePool,
    now: i64,
    lease_ms: i64,
    owner: &str,
    targets: &[(EndpointId, usize)],
) -> Result<Vec<Claimed>> {
    let mut claimed = Vec::new();
    for chunk in targets.chunks(100) {
        let mut qb = QueryBuilder::<sqlx::Sqlite>::new(
            "UPDATE deliveries SET status = 'delivering', lease_owner = ",
        );
        qb.push_bind(owner)
            .push(", lease_until = ")
            .push_bind(now + lease_ms)
            .push(
                " + COALESCE((SELECT timeout_ms FROM endpoints e
                       WHERE e.num = deliveries.endpoint), 0), updated_at = ",
            )
            .push_bind(now)
            .push(" WHERE rowid IN (");
        for (i, (endpoint, n)) in chunk.iter().enumerate() {
            if i > 0 {
                qb.push(" UNION ALL ");
            }
            qb.push(
                "SELECT rid FROM (SELECT rowid AS rid FROM deliveries
                 WHERE endpoint = (SELECT num FROM endpoints WHERE id = ",
            )
            .push_bind(endpoint)
            .push(")")
            // A disabled endpoint's deliveries are held, not sent, whatever raced; so are
            // those of a shop whose webhooks were turned off.
            .push(" AND EXISTS (SELECT 1 FROM endpoints e JOIN shops s ON s.id = e.shop_id WHERE e.id = ")
            .push_bind(endpoint)
            .push(" AND e.enabled AND s.webhooks_enabled)")
            .push(" AND status IN ('pending', 'retrying') AND next_attempt_at <= ")
            .push_bind(now)
            .push(" ORDER BY priority, next_attempt_at LIMIT ")
            .push_bind(*n as i64)
            .push(")");
        }
        qb.push(concat!(
            ") RETURNING id, ",
            shop_id_of_row!(),
            ",
                 event_id, ",
            endpoint_id_of_row!(),
            ", attempt_count, created_at,
                 priority, lease_owner, lease_until"
        ));
        claimed.extend(qb.build_query_as().fetch_all(writer).await?);
    }
    Ok(claimed)
}

/// PostgreSQL's claim, safe with any number of nodes claiming at once: each endpoint's due
/// rows are locked `FOR UPDATE SKIP LOCKED` (a row another node is claiming is passed over,
/// not waited for) and leased in the same statement.
async fn claim_postgres(
    pool: &PgPool,
    now: i64,
    lease_ms: i64,
    owner: &str,
    targets: &[(EndpointId, usize)],
) -> Result<Vec<Claimed>> {
    let endpoints: Vec<&str> = targets.iter().map(|(e, _)| e.as_str()).collect();
    let counts: Vec<i64> = targets.iter().map(|(_, n)| *n as i64).collect();
    Ok(sqlx::query_as(
        "WITH picked AS (
           SELECT p.id FROM unnest($1::text[], $2::bigint[]) AS t(endpoint_id, n)
           CROSS JOIN LATERAL (
             SELECT d.id FROM deliveries d
             WHERE d.endpoint = (SELECT num FROM endpoints x WHERE x.id = t.endpoint_id)
             AND d.status IN ('pending', 'retrying')
             AND d.next_attempt_at <= $3
             -- A disabled endpoint's deliveries are held, not sent, whatever raced; so are
             -- those of a shop whose webhooks were turned off.
             AND EXISTS (SELECT 1 FROM endpoints e JOIN shops s ON s.id = e.shop_id
               WHERE e.id = t.endpoint_id AND e.enabled AND s.webhooks_enabled)
             ORDER BY d.priority, d.next_attempt_at LIMIT t.n
             FOR UPDATE OF d SKIP LOCKED) p)
         , leased AS (UPDATE deliveries SET status = 'delivering', lease_owner = $4,
           lease_until = $5 + COALESCE((SELECT timeout_ms FROM endpoints e
             WHERE e.num = deliveries.endpoint), 0),
           updated_at = $3
         -- By key, through the primary key: joined to `picked` instead, the planner (which
         -- cannot know how few rows the LIMITs leave) hashed the whole table for every claim.
         WHERE deliveries.id = ANY(ARRAY(SELECT id FROM picked))
         RETURNING deliveries.id, deliveries.shop, deliveries.event_id, deliveries.endpoint,
           deliveries.attempt_count, deliveries.created_at, deliveries.priority,
           deliveries.lease_owner, deliveries.lease_until, deliveries.next_attempt_at)
         -- In queue order, as the engine sends them (RETURNING alone has no order).
         SELECT id, (SELECT s.id FROM shops s WHERE s.num = leased.shop) AS shop_id, event_id,
           (SELECT e.id FROM endpoints e WHERE e.num = leased.endpoint) AS endpoint_id,
           attempt_count, created_at, priority, lease_owner, lease_until
         FROM leased ORDER BY priority, next_attempt_at, id",
    )
    .bind(&endpoints)
    .bind(&counts)
    .bind(now)
    .bind(owner)
    .bind(now + lease_ms)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated SQLite store in a directory of its own (kept while the store is used).
    async fn migrated_sqlite() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }

    /// New keys start at their millisecond's first key, follow the highest key there is
    /// (also when the clock went back), and spell ids that sort as they were made.
    #[tokio::test]
    async fn new_keys_start_at_their_millisecond_and_follow_the_highest() {
        let (_dir, store) = migrated_sqlite().await;
        let at = 1_765_000_000_000;
        let first = DeliveryId::first_key_at(at);
        let mut tx = store.begin().await.unwrap();
        let keys: Vec<i64> = new_keys(&mut tx, 3, at)
            .await
            .unwrap()
            .iter()
            .map(|id| id.key().unwrap())
            .collect();
        assert_eq!(keys, [first, first + 1, first + 2]);
        let Tx::Sqlite(t, _) = &mut tx else {
            unreachable!("a sqlite:// URL opens SQLite")
        };
        for sql in [
            "INSERT INTO shops (id, name, created_at, updated_at) VALUES ('shp_a', 'A', 1, 1)",
            "INSERT INTO endpoints (id, shop_id, url, secret_enc, created_at, updated_at)
             VALUES ('ep_a', 'shp_a', 'http://127.0.0.1:9/', 'x', 1, 1)",
        ] {
            sqlx::query(sql).execute(&mut **t).await.unwrap();
        }
        sqlx::query(
            "INSERT INTO deliveries (id, shop, event_id, endpoint, event_type, status,
             created_at, updated_at) SELECT ?, s.num, 'evt_1', e.num, 't', 'held', 1, 1
             FROM shops s, endpoints e WHERE s.id = 'shp_a' AND e.id = 'ep_a'",
        )
        .bind(first + 5)
        .execute(&mut **t)
        .await
        .unwrap();
        let earlier_clock = new_keys(&mut tx, 2, at - 1_000).await.unwrap();
        let later_clock = new_keys(&mut tx, 1, at + 1).await.unwrap();
        assert_eq!(earlier_clock[0].key(), Some(first + 6), "after the highest");
        assert_eq!(earlier_clock[1].key(), Some(first + 7));
        assert_eq!(later_clock[0].key(), Some(DeliveryId::first_key_at(at + 1)));
        assert!(earlier_clock[1] < later_clock[0], "ids sort as made");
    }

    /// What a metrics scrape runs never scans the deliveries table (a table scan shows in the
    /// plan as `SCAN deliveries` with no index; `SCAN shops` walks the few shops).
    #[tokio::test]
    async fn metrics_queries_seek_indexes_and_scan_no_table_of_deliveries() {
        let (_dir, store) = migrated_sqlite().await;
        for sql in [SHOP_OLDEST_DUE, NEXT_LEASE_END, OLDEST_DUE] {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
            if sql.contains('?') {
                query = query.bind(0_i64);
            }
            let Db::Sqlite { pool, .. } = &store.db else {
                unreachable!("a sqlite:// URL opens SQLite")
            };
            let plan = query.fetch_all(pool).await.unwrap();
            for (_, _, _, step) in &plan {
                let scans_table = step.starts_with("SCAN")
                    && step.contains("deliveries")
                    && !step.contains("INDEX");
                assert!(!scans_table, "{sql}: {step}");
            }
        }
    }
}
