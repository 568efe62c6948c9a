//! Publishing: an event and its deliveries are written in one transaction, so an accepted
//! event always has its deliveries queued, and a repeated event id queues nothing new.

use super::{in_tx, on_reader, Result, Store, Tx, Unsynced, SHOP_NUM};
use crate::ids::{DeliveryId, EndpointId, EventId, ShopId};
use sqlx::types::Json;
use sqlx::QueryBuilder;
use std::collections::HashSet;

/// Where one event goes: one delivery per target endpoint.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint_id: EndpointId,
    pub priority: i64,
    pub unique_pending: bool,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub event_type: String,
    pub channels: Json<Vec<String>>,
    /// The payload as received, byte for byte.
    pub data: String,
    pub entity_key: Option<String>,
    pub priority: Option<i64>,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub id: EventId,
    pub deliveries: Vec<DeliveryId>,
    /// The id was seen before: nothing new was queued.
    pub duplicate: bool,
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct EventRow {
    pub id: EventId,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub channels: Json<Vec<String>>,
    pub data: String,
    pub entity_key: Option<String>,
    pub deliveries: String,
    pub created_at: i64,
}

/// Rows per multi-row INSERT (SQLite allows 32,766 bound parameters per statement).
const CHUNK: usize = 200;

/// The delivery ids an event lists (its `deliveries` column: a JSON array of their keys).
pub(super) fn listed_deliveries(json: &str, event: &EventId) -> Result<Vec<DeliveryId>> {
    let keys: Vec<i64> = serde_json::from_str(json)
        .map_err(|e| super::Error::Corrupt(format!("deliveries of event {event}: {e}")))?;
    Ok(keys.into_iter().map(DeliveryId::from_key).collect())
}

/// A shop's number (events and deliveries name their shop by it), read in the publishing
/// transaction.
async fn shop_number(tx: &mut Tx, id: &ShopId) -> Result<i64> {
    let num: i64 = in_tx!(tx, |c, d| sqlx::query_scalar(
        &d.sql("SELECT num FROM shops WHERE id = ?")
    )
    .bind(id)
    .fetch_one(c)
    .await?);
    Ok(num)
}

/// The first result of an event id published before: its deliveries, nothing new.
async fn already_published(tx: &mut Tx, shop: i64, id: &EventId) -> Result<Published> {
    let existing: String = in_tx!(tx, |c, d| sqlx::query_scalar(
        &d.sql("SELECT deliveries FROM events WHERE shop = ? AND id = ?")
    )
    .bind(shop)
    .bind(id)
    .fetch_one(c)
    .await?);
    Ok(Published {
        id: id.clone(),
        deliveries: listed_deliveries(&existing, id)?,
        duplicate: true,
    })
}

/// The common case, in a few multi-row statements: events with their delivery ids, then the
/// deliveries of the events that were new.
async fn insert_bulk(
    tx: &mut Tx,
    shop: i64,
    events: &[NewEvent],
    now: i64,
) -> Result<Vec<Published>> {
    let wanted = events.iter().map(|e| e.targets.len()).sum();
    let mut keys = super::deliveries::new_keys(tx, wanted, now)
        .await?
        .into_iter();
    let ids: Vec<Vec<DeliveryId>> = events
        .iter()
        .map(|e| keys.by_ref().take(e.targets.len()).collect())
        .collect();
    let delivery_lists: Vec<String> = ids.iter().map(super::deliveries::keys_json).collect();
    let event_rows: Vec<(&NewEvent, &String)> = events.iter().zip(&delivery_lists).collect();
    let inserted = match tx {
        Tx::Sqlite(t, _) => insert_events_sqlite(t, shop, &event_rows, now).await?,
        Tx::Postgres(t) => insert_events_postgres(t, shop, &event_rows, now).await?,
    };
    // An id seen twice in one batch is new only the first time.
    let mut first_seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    for (i, ev) in events.iter().enumerate() {
        if inserted.contains(ev.id.as_str()) && first_seen.insert(ev.id.as_str()) {
            for (t, id) in ev.targets.iter().zip(&ids[i]) {
                rows.push((id, ev, t));
            }
            out.push(Published {
                id: ev.id.clone(),
                deliveries: ids[i].clone(),
                duplicate: false,
            });
        } else {
            out.push(already_published(tx, shop, &ev.id).await?);
        }
    }
    let mut queued = 0;
    for chunk in rows.chunks(CHUNK) {
        // Held or pending is read from the endpoint inside this write, not from what the
        // caller saw before it: a disable racing the publish cannot leave a pending delivery
        // to a disabled endpoint. An endpoint deleted meanwhile gets no delivery (and the
        // publish no foreign-key failure).
        let sql = "INSERT INTO deliveries (id, shop, event_id, endpoint, event_type, channels,
             entity_key, status, priority, next_attempt_at, created_at, updated_at)
             SELECT v.column1, v.column2, v.column3, e.num, v.column5, v.column6, v.column7,
             CASE WHEN e.enabled THEN 'pending' ELSE 'held' END, v.column8, v.column9,
             v.column9, v.column9 FROM (";
        queued += in_tx!(&mut *tx, |c, _d| {
            let mut qb = QueryBuilder::new(sql);
            qb.push_values(chunk, |mut b, (id, ev, t)| {
                b.push_bind(*id)
                    .push_bind(shop)
                    .push_bind(&ev.id)
                    .push_bind(&t.endpoint_id)
                    .push_bind(&ev.event_type)
                    .push_bind(&ev.channels)
                    .push_bind(&ev.entity_key)
                    .push_bind(ev.priority.unwrap_or(t.priority))
                    .push_bind(now);
            });
            qb.push(") AS v JOIN endpoints e ON e.id = v.column4");
            qb.build().execute(c).await?.rows_affected() as usize
        });
    }
    if queued < rows.len() {
        forget_unqueued(tx, shop, &mut out).await?;
    }
    Ok(out)
}

/// Writes events (with their delivery ids) that are not there yet; returns the ids written.
///
/// Which were new is told by the count of rows written: when it is all of them, as it nearly
/// always is, nothing more is asked (a row per event through the driver, as `RETURNING`
/// gives, costs more than writing the event). Otherwise the new ones are those with a rowid
/// from this call's first insert on: SQLite gives a new row a rowid above every existing one.
async fn insert_events_sqlite(
    conn: &mut sqlx::SqliteConnection,
    shop: i64,
    rows: &[(&NewEvent, &String)],
    now: i64,
) -> Result<HashSet<String>> {
    let mut written = 0;
    let mut first_rowid = None;
    for chunk in rows.chunks(CHUNK) {
        let mut qb = QueryBuilder::<sqlx::Sqlite>::new(INSERT_EVENTS);
        push_event_values(&mut qb, shop, chunk, now);
        qb.push(" ON CONFLICT (shop, id) DO NOTHING");
        let done = qb.build().execute(&mut *conn).await?;
        if first_rowid.is_none() && done.rows_affected() > 0 {
            first_rowid = Some(done.last_insert_rowid() - done.rows_affected() as i64 + 1);
        }
        written += done.rows_affected();
    }
    let distinct: HashSet<&str> = rows.iter().map(|(e, _)| e.id.as_str()).collect();
    Ok(match first_rowid {
        _ if written as usize == distinct.len() => {
            distinct.iter().map(|id| id.to_string()).collect()
        }
        None => Default::default(),
        Some(first) => sqlx::query_scalar::<_, String>(
            "SELECT id FROM events
             WHERE shop = ? AND id IN (SELECT value FROM json_each(?)) AND rowid >= ?",
        )
        .bind(shop)
        .bind(serde_json::to_string(&distinct).unwrap_or_else(|_| "[]".into()))
        .bind(first)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect(),
    })
}

/// PostgreSQL's [`insert_events_sqlite`]: the rows written are told by `RETURNING` (each is
/// cheap next to the round trip the statement costs anyway).
async fn insert_events_postgres(
    conn: &mut sqlx::PgConnection,
    shop: i64,
    rows: &[(&NewEvent, &String)],
    now: i64,
) -> Result<HashSet<String>> {
    let mut inserted = HashSet::new();
    for chunk in rows.chunks(CHUNK) {
        let mut qb = QueryBuilder::<sqlx::Postgres>::new(INSERT_EVENTS);
        push_event_values(&mut qb, shop, chunk, now);
        qb.push(" ON CONFLICT (shop, id) DO NOTHING RETURNING id");
        let ids: Vec<String> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
        inserted.extend(ids);
    }
    Ok(inserted)
}

const INSERT_EVENTS: &str = "INSERT INTO events (shop, id, type, channels, data, entity_key,
    priority, deliveries, created_at) ";

fn push_event_values<'a, DB: sqlx::Database>(
    qb: &mut QueryBuilder<'a, DB>,
    shop: i64,
    rows: &'a [(&'a NewEvent, &'a String)],
    now: i64,
) where
    &'a EventId: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a Json<Vec<String>>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    qb.push_values(rows, |mut b, (ev, deliveries)| {
        b.push_bind(shop)
            .push_bind(&ev.id)
            .push_bind(&ev.event_type)
            .push_bind(&ev.channels)
            .push_bind(&ev.data)
            .push_bind(&ev.entity_key)
            .push_bind(ev.priority)
            .push_bind(*deliveries)
            .push_bind(now);
    });
}

/// Sets the delivery ids an event lists.
async fn set_event_deliveries(
    tx: &mut Tx,
    shop: i64,
    id: &EventId,
    deliveries: &[DeliveryId],
) -> Result<()> {
    in_tx!(tx, |c, d| sqlx::query(&d.sql(
        "UPDATE events SET deliveries = ? WHERE shop = ? AND id = ?"
    ))
    .bind(super::deliveries::keys_json(deliveries))
    .bind(shop)
    .bind(id)
    .execute(c)
    .await?
    .rows_affected());
    Ok(())
}

/// Some endpoints went while publishing: the events' records and answers list only the
/// deliveries that were queued.
async fn forget_unqueued(tx: &mut Tx, shop: i64, out: &mut [Published]) -> Result<()> {
    let all: Vec<&DeliveryId> = out
        .iter()
        .filter(|p| !p.duplicate)
        .flat_map(|p| &p.deliveries)
        .collect();
    let existing: Vec<DeliveryId> = in_tx!(&mut *tx, |c, d| sqlx::query_scalar(d.pick(
        "SELECT id FROM deliveries WHERE id IN (SELECT value FROM json_each(?))",
        "SELECT id FROM deliveries WHERE id IN
         (SELECT CAST(jsonb_array_elements(CAST($1 AS jsonb)) AS bigint))",
    ))
    .bind(super::deliveries::keys_json(all))
    .fetch_all(c)
    .await?);
    let existing: HashSet<DeliveryId> = existing.into_iter().collect();
    for p in out.iter_mut().filter(|p| !p.duplicate) {
        let before = p.deliveries.len();
        p.deliveries.retain(|d| existing.contains(d));
        if p.deliveries.len() < before {
            set_event_deliveries(tx, shop, &p.id, &p.deliveries).await?;
        }
    }
    Ok(())
}

/// Replaces an unsent delivery (queued, retrying or held) of the same entity at this endpoint
/// with the new event; returns its id. The event it carried before no longer lists it.
async fn replace_unsent(
    tx: &mut Tx,
    shop: i64,
    ev: &NewEvent,
    key: &str,
    t: &Target,
    priority: i64,
    now: i64,
) -> Result<Option<DeliveryId>> {
    let found: Option<(DeliveryId, EventId)> = in_tx!(&mut *tx, |c, d| sqlx::query_as(&d.sql(
        "SELECT id, event_id FROM deliveries INDEXED BY deliveries_entity
         WHERE endpoint = (SELECT num FROM endpoints WHERE id = ?) AND entity_key = ?
         AND entity_key IS NOT NULL
         AND status IN ('pending', 'retrying', 'held') LIMIT 1",
    ))
    .bind(&t.endpoint_id)
    .bind(key)
    .fetch_optional(c)
    .await?);
    let Some((id, old_event)) = found else {
        return Ok(None);
    };
    in_tx!(&mut *tx, |c, d| sqlx::query(&d.sql(
        "UPDATE deliveries SET event_id = ?, event_type = ?, channels = ?, priority = ?,
         updated_at = ? WHERE id = ?",
    ))
    .bind(&ev.id)
    .bind(&ev.event_type)
    .bind(&ev.channels)
    .bind(priority)
    .bind(now)
    .bind(&id)
    .execute(c)
    .await?
    .rows_affected());
    let old: String = in_tx!(&mut *tx, |c, d| sqlx::query_scalar(
        &d.sql("SELECT deliveries FROM events WHERE shop = ? AND id = ?")
    )
    .bind(shop)
    .bind(&old_event)
    .fetch_one(c)
    .await?);
    let mut kept = listed_deliveries(&old, &old_event)?;
    kept.retain(|d| *d != id);
    set_event_deliveries(tx, shop, &old_event, &kept).await?;
    Ok(Some(id))
}

/// One event, its deliveries replacing unsent ones of the same entity where the endpoint
/// asks for unique pending deliveries.
async fn insert_one(tx: &mut Tx, shop: i64, ev: &NewEvent, now: i64) -> Result<Published> {
    let inserted = in_tx!(&mut *tx, |c, d| {
        sqlx::query(&d.sql(
            "INSERT INTO events (shop, id, type, channels, data, entity_key, priority, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (shop, id) DO NOTHING",
        ))
        .bind(shop)
        .bind(&ev.id)
        .bind(&ev.event_type)
        .bind(&ev.channels)
        .bind(&ev.data)
        .bind(&ev.entity_key)
        .bind(ev.priority)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    }) == 1;
    if !inserted {
        return already_published(tx, shop, &ev.id).await;
    }
    let mut ids = Vec::with_capacity(ev.targets.len());
    for t in &ev.targets {
        let priority = ev.priority.unwrap_or(t.priority);
        if let Some(key) = ev.entity_key.as_deref().filter(|_| t.unique_pending) {
            if let Some(id) = replace_unsent(tx, shop, ev, key, t, priority, now).await? {
                ids.push(id);
                continue;
            }
        }
        let Some(id) = super::deliveries::new_keys(tx, 1, now).await?.pop() else {
            continue;
        };
        // Held or pending read inside the write; an endpoint deleted meanwhile gets nothing
        // (see `insert_bulk`).
        let queued = in_tx!(&mut *tx, |c, d| sqlx::query(&d.sql(
            "INSERT INTO deliveries (id, shop, event_id, endpoint, event_type, channels,
             entity_key, status, priority, next_attempt_at, created_at, updated_at)
             SELECT ?, ?, ?, num, ?, ?, ?, CASE WHEN enabled THEN 'pending' ELSE 'held' END,
             ?, ?, ?, ? FROM endpoints WHERE id = ?",
        ))
        .bind(&id)
        .bind(shop)
        .bind(&ev.id)
        .bind(&ev.event_type)
        .bind(&ev.channels)
        .bind(&ev.entity_key)
        .bind(priority)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(&t.endpoint_id)
        .execute(c)
        .await?
        .rows_affected());
        if queued > 0 {
            ids.push(id);
        }
    }
    set_event_deliveries(tx, shop, &ev.id, &ids).await?;
    Ok(Published {
        id: ev.id.clone(),
        deliveries: ids,
        duplicate: false,
    })
}

/// Writes one shop's events, their deliveries and newly seen event types.
/// `num` is the shop's number when the caller has read it in this transaction already.
async fn write_events(
    tx: &mut Tx,
    shop_id: &ShopId,
    num: Option<i64>,
    events: &[NewEvent],
    discovered: &[(String, String)],
    now: i64,
) -> Result<Vec<Published>> {
    let replaces = events
        .iter()
        .any(|e| e.entity_key.is_some() && e.targets.iter().any(|t| t.unique_pending));
    let shop = match num {
        Some(num) => num,
        None => shop_number(tx, shop_id).await?,
    };
    let mut out = Vec::with_capacity(events.len());
    if !replaces {
        out = insert_bulk(tx, shop, events, now).await?;
    }
    // With unique-pending replacement in play, one event at a time.
    let one_by_one: &[NewEvent] = if replaces { events } else { &[] };
    for ev in one_by_one {
        out.push(insert_one(tx, shop, ev, now).await?);
    }
    let new_events = out.iter().filter(|p| !p.duplicate).count() as i64;
    if new_events > 0 {
        let counts = [(shop_id, super::counters::hourly(now, "events"), new_events)];
        super::counters::add(tx, &counts).await?;
    }
    // The service refuses a publish that would pass the bound; this keeps it when nodes
    // discover types at once from copies of the catalog that did not see each other's.
    use super::event_types::MAX_EVENT_TYPES;
    for (name, sample) in discovered {
        let sample: serde_json::Value = serde_json::from_str(sample)?;
        in_tx!(&mut *tx, |c, d| {
            sqlx::query(&d.sql(
                "INSERT INTO event_types (shop_id, name, description, sample, source, created_at, updated_at)
                 SELECT ?, ?, '', ?, 'discovered', ?, ? WHERE (SELECT COUNT(*) FROM event_types
                   WHERE shop_id = ?) < ? ON CONFLICT (shop_id, name) DO NOTHING",
            ))
            .bind(shop_id)
            .bind(name)
            .bind(Json(&sample))
            .bind(now)
            .bind(now)
            .bind(shop_id)
            .bind(MAX_EVENT_TYPES as i64)
            .execute(c)
            .await?
            .rows_affected()
        });
    }
    Ok(out)
}

/// One publish request of a group commit: one shop's events, prepared from the shop's
/// configuration at `config_version` (None: written whatever the version).
#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub shop_id: ShopId,
    pub config_version: Option<i64>,
    pub events: Vec<NewEvent>,
    /// Event types seen for the first time: (name, sample payload).
    pub discovered: Vec<(String, String)>,
}

/// What became of one request of a group.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupOutcome {
    Published(Vec<Published>),
    /// The shop's configuration changed (or the shop went) since the request was prepared:
    /// nothing of it was written; prepare it again.
    Stale,
}

/// The configuration versions of these shops, with their numbers, read inside the
/// transaction that publishes.
async fn config_versions(
    tx: &mut Tx,
    shops: &[&ShopId],
) -> Result<std::collections::HashMap<ShopId, (i64, i64)>> {
    let marks = vec!["?"; shops.len()].join(",");
    let rows: Vec<(ShopId, i64, i64)> = in_tx!(&mut *tx, |c, d| {
        // On PostgreSQL the rows are locked for share: a change to the shop's configuration
        // (its trigger writes this row) then either waits for this publish to commit, so it
        // sees its deliveries, or commits first, and this read sees its new version.
        let sql = format!(
            "SELECT id, config_version, num FROM shops WHERE id IN ({marks}){}",
            d.pick("", " FOR SHARE")
        );
        let sql = d.sql(&sql);
        let mut q = sqlx::query_as(&sql);
        for s in shops {
            q = q.bind(*s);
        }
        q.fetch_all(c).await?
    });
    Ok(rows
        .into_iter()
        .map(|(id, version, num)| (id, (version, num)))
        .collect())
}

impl Store {
    /// Writes many publish requests in one transaction (group commit): one commit, one sync
    /// to disk, for all of them. A request whose shop configuration changed since it was
    /// prepared is left out and answered [`GroupOutcome::Stale`]. The requests of one shop
    /// are written together, in order, so an event id repeated across them is new only the
    /// first time, as within one batch.
    pub async fn publish_group(
        &self,
        requests: &[PublishRequest],
        now: i64,
    ) -> Result<Vec<GroupOutcome>> {
        let (outcomes, unsynced) = self.publish_group_unsynced(requests, now).await?;
        unsynced.synced().await?;
        Ok(outcomes)
    }

    /// [`Store::publish_group`] without waiting for the sync to disk: the outcomes must not
    /// be answered before [`Unsynced::synced`] resolves.
    pub async fn publish_group_unsynced(
        &self,
        requests: &[PublishRequest],
        now: i64,
    ) -> Result<(Vec<GroupOutcome>, Unsynced)> {
        let mut tx = self.begin().await?;
        let checked: Vec<&ShopId> = {
            let mut seen = HashSet::new();
            requests
                .iter()
                .filter(|r| r.config_version.is_some())
                .map(|r| &r.shop_id)
                .filter(|s| seen.insert(s.as_str()))
                .collect()
        };
        let versions = if checked.is_empty() {
            Default::default()
        } else {
            config_versions(&mut tx, &checked).await?
        };
        let fresh = |r: &PublishRequest| {
            r.config_version
                .is_none_or(|v| versions.get(&r.shop_id).map(|(v, _)| *v) == Some(v))
        };
        let mut outcomes = vec![GroupOutcome::Stale; requests.len()];
        // The fresh requests of each shop, shops in the order they first appear.
        let mut by_shop: Vec<(&ShopId, Vec<usize>)> = Vec::new();
        let mut slot: std::collections::HashMap<&ShopId, usize> = Default::default();
        for (i, r) in requests.iter().enumerate().filter(|(_, r)| fresh(r)) {
            let at = *slot.entry(&r.shop_id).or_insert_with(|| {
                by_shop.push((&r.shop_id, Vec::new()));
                by_shop.len() - 1
            });
            by_shop[at].1.push(i);
        }
        let mut any_queued = false;
        for (shop_id, mine) in by_shop {
            let events: Vec<NewEvent> = mine
                .iter()
                .flat_map(|&i| requests[i].events.iter().cloned())
                .collect();
            let mut discovered: Vec<(String, String)> = Vec::new();
            for (name, sample) in mine.iter().flat_map(|&i| &requests[i].discovered) {
                if !discovered.iter().any(|(n, _)| n == name) {
                    discovered.push((name.clone(), sample.clone()));
                }
            }
            let num = versions.get(shop_id).map(|(_, num)| *num);
            let mut published = write_events(&mut tx, shop_id, num, &events, &discovered, now)
                .await?
                .into_iter();
            for &i in &mine {
                let part: Vec<Published> =
                    published.by_ref().take(requests[i].events.len()).collect();
                any_queued |= part
                    .iter()
                    .any(|p| !p.duplicate && !p.deliveries.is_empty());
                outcomes[i] = GroupOutcome::Published(part);
            }
        }
        // Every node hears of the new work when it is committed (PostgreSQL's NOTIFY is
        // delivered at commit, and not at all on a rollback).
        if let Tx::Postgres(t) = &mut tx {
            if any_queued {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(super::cluster::WORK_CHANNEL)
                    .bind(self.work_payload())
                    .execute(&mut **t)
                    .await?;
            }
        }
        Ok((outcomes, tx.commit_unsynced().await?))
    }

    /// The version of a shop's publish configuration (None: no such shop). Read before the
    /// configuration itself, so a copy read meanwhile carries a version that is already
    /// behind, never one ahead of what it holds.
    pub async fn shop_config_version(&self, shop_id: &ShopId) -> Result<Option<i64>> {
        on_reader!(self, |pool, d| {
            Ok(
                sqlx::query_scalar(&d.sql("SELECT config_version FROM shops WHERE id = ?"))
                    .bind(shop_id)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    pub async fn event(&self, shop_id: &ShopId, id: &EventId) -> Result<Option<EventRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(&format!(
                "SELECT id, type, channels, data, entity_key, deliveries, created_at
             FROM events WHERE shop = {SHOP_NUM} AND id = ?"
            )))
            .bind(shop_id)
            .bind(id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Events by (shop, id) pairs, for the engine's claimed deliveries.
    pub async fn events_by_keys(
        &self,
        keys: &[(ShopId, EventId)],
    ) -> Result<Vec<(ShopId, EventRow)>> {
        on_reader!(self, |pool, d| {
            // One `shop_id = ? AND id IN (…)` per shop: it walks the primary key, where a
            // row-value IN over VALUES would scan the table.
            let mut by_shop: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for (shop, id) in keys {
                by_shop.entry(shop.as_str()).or_default().push(id.as_str());
            }
            let mut out = Vec::with_capacity(keys.len());
            for (shop, ids) in by_shop {
                let marks = vec!["?"; ids.len()].join(",");
                let sql = format!(
                    "SELECT id, type, channels, data, entity_key, deliveries, created_at
                 FROM events WHERE shop = {SHOP_NUM} AND id IN ({marks})"
                );
                let sql = d.sql(&sql);
                let mut q = sqlx::query_as::<_, EventRow>(&sql).bind(shop);
                for id in ids {
                    q = q.bind(id);
                }
                for row in q.fetch_all(pool).await? {
                    out.push((ShopId::from(shop), row));
                }
            }
            Ok(out)
        })
    }
}
