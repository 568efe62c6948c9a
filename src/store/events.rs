//! Publishing: an event and its deliveries are written in one transaction, so an accepted
//! event always has its deliveries queued, and a repeated event id queues nothing new.

use super::{Result, Store};
use crate::ids::new_id;
use sqlx::{QueryBuilder, Sqlite};

/// Where one event goes: one delivery per target endpoint.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint_id: String,
    pub priority: i64,
    pub unique_pending: bool,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event_type: String,
    pub channels: String,
    pub data: String,
    pub entity_key: Option<String>,
    pub priority: Option<i64>,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub id: String,
    pub deliveries: Vec<String>,
    /// The id was seen before: nothing new was queued.
    pub duplicate: bool,
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct EventRow {
    pub id: String,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub channels: String,
    pub data: String,
    pub entity_key: Option<String>,
    pub deliveries: String,
    pub created_at: i64,
}

/// Rows per multi-row INSERT (SQLite allows 32,766 bound parameters per statement).
const CHUNK: usize = 200;

/// The first result of an event id published before: its deliveries, nothing new.
async fn already_published(
    tx: &mut sqlx::SqliteConnection,
    shop_id: &str,
    id: &str,
) -> Result<Published> {
    let existing: String =
        sqlx::query_scalar("SELECT deliveries FROM events WHERE shop_id = ? AND id = ?")
            .bind(shop_id)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    Ok(Published {
        id: id.to_string(),
        deliveries: serde_json::from_str(&existing).unwrap_or_default(),
        duplicate: true,
    })
}

/// The common case, in a few multi-row statements: events with their delivery ids, then the
/// deliveries of the events that were new.
///
/// Which events were new is told by the count of rows written: when it is all of them, as it
/// nearly always is, nothing more is asked (a row per event through the driver, as `RETURNING`
/// gives, costs more than writing the event). Otherwise the new ones are those with a rowid
/// from this call's first insert on: SQLite gives a new row a rowid above every existing one.
async fn insert_bulk(
    tx: &mut sqlx::SqliteConnection,
    shop_id: &str,
    events: &[NewEvent],
    now: i64,
) -> Result<Vec<Published>> {
    let ids: Vec<Vec<String>> = events
        .iter()
        .map(|e| e.targets.iter().map(|_| new_id("dlv")).collect())
        .collect();
    let delivery_lists: Vec<String> = ids
        .iter()
        .map(|l| serde_json::to_string(l).unwrap_or_else(|_| "[]".into()))
        .collect();
    let indexed: Vec<(usize, &NewEvent)> = events.iter().enumerate().collect();
    let mut written = 0;
    let mut first_rowid = None;
    for chunk in indexed.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (shop_id, id, type, channels, data, entity_key, priority, deliveries, created_at) ",
        );
        qb.push_values(chunk, |mut b, (i, ev)| {
            b.push_bind(shop_id)
                .push_bind(&ev.id)
                .push_bind(&ev.event_type)
                .push_bind(&ev.channels)
                .push_bind(&ev.data)
                .push_bind(&ev.entity_key)
                .push_bind(ev.priority)
                .push_bind(&delivery_lists[*i])
                .push_bind(now);
        });
        qb.push(" ON CONFLICT (shop_id, id) DO NOTHING");
        let done = qb.build().execute(&mut *tx).await?;
        if first_rowid.is_none() && done.rows_affected() > 0 {
            first_rowid = Some(done.last_insert_rowid() - done.rows_affected() as i64 + 1);
        }
        written += done.rows_affected();
    }
    let distinct: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let inserted: std::collections::HashSet<String> = match first_rowid {
        _ if written as usize == distinct.len() => {
            distinct.iter().map(|id| id.to_string()).collect()
        }
        None => Default::default(),
        Some(first) => {
            let new: String = sqlx::query_scalar(
                "SELECT json_group_array(id) FROM events
                 WHERE shop_id = ? AND id IN (SELECT value FROM json_each(?)) AND rowid >= ?",
            )
            .bind(shop_id)
            .bind(serde_json::to_string(&distinct).unwrap_or_else(|_| "[]".into()))
            .bind(first)
            .fetch_one(&mut *tx)
            .await?;
            serde_json::from_str(&new)?
        }
    };
    // An id seen twice in one batch is new only the first time.
    let mut first_seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    for (i, ev) in events.iter().enumerate() {
        if inserted.contains(&ev.id) && first_seen.insert(ev.id.as_str()) {
            for (t, id) in ev.targets.iter().zip(&ids[i]) {
                rows.push((id, ev, t));
            }
            out.push(Published {
                id: ev.id.clone(),
                deliveries: ids[i].clone(),
                duplicate: false,
            });
        } else {
            out.push(already_published(tx, shop_id, &ev.id).await?);
        }
    }
    let mut queued = 0;
    for chunk in rows.chunks(CHUNK) {
        // Held or pending is read from the endpoint inside this write, not from what the
        // caller saw before it: a disable racing the publish cannot leave a pending delivery
        // to a disabled endpoint. An endpoint deleted meanwhile gets no delivery (and the
        // publish no foreign-key failure).
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO deliveries (id, shop_id, event_id, endpoint_id, event_type, channels,
             entity_key, status, priority, next_attempt_at, created_at, updated_at)
             SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7,
             CASE WHEN e.enabled THEN 'pending' ELSE 'held' END, v.column8, v.column9,
             v.column9, v.column9 FROM (",
        );
        qb.push_values(chunk, |mut b, (id, ev, t)| {
            b.push_bind(*id)
                .push_bind(shop_id)
                .push_bind(&ev.id)
                .push_bind(&t.endpoint_id)
                .push_bind(&ev.event_type)
                .push_bind(&ev.channels)
                .push_bind(&ev.entity_key)
                .push_bind(ev.priority.unwrap_or(t.priority))
                .push_bind(now);
        });
        qb.push(") AS v JOIN endpoints e ON e.id = v.column4");
        queued += qb.build().execute(&mut *tx).await?.rows_affected() as usize;
    }
    if queued < rows.len() {
        forget_unqueued(tx, shop_id, &mut out).await?;
    }
    Ok(out)
}

/// Some endpoints went while publishing: the events' records and answers list only the
/// deliveries that were queued.
async fn forget_unqueued(
    tx: &mut sqlx::SqliteConnection,
    shop_id: &str,
    out: &mut [Published],
) -> Result<()> {
    let all: Vec<&String> = out
        .iter()
        .filter(|p| !p.duplicate)
        .flat_map(|p| &p.deliveries)
        .collect();
    let existing: String = sqlx::query_scalar(
        "SELECT json_group_array(id) FROM deliveries WHERE id IN (SELECT value FROM json_each(?))",
    )
    .bind(serde_json::to_string(&all).unwrap_or_else(|_| "[]".into()))
    .fetch_one(&mut *tx)
    .await?;
    let existing: std::collections::HashSet<String> = serde_json::from_str(&existing)?;
    for p in out.iter_mut().filter(|p| !p.duplicate) {
        let before = p.deliveries.len();
        p.deliveries.retain(|d| existing.contains(d));
        if p.deliveries.len() < before {
            sqlx::query("UPDATE events SET deliveries = ? WHERE shop_id = ? AND id = ?")
                .bind(serde_json::to_string(&p.deliveries).unwrap_or_else(|_| "[]".into()))
                .bind(shop_id)
                .bind(&p.id)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

/// Replaces an unsent delivery (queued, retrying or held) of the same entity at this endpoint
/// with the new event; returns its id. The event it carried before no longer lists it.
async fn replace_unsent(
    tx: &mut sqlx::SqliteConnection,
    shop_id: &str,
    ev: &NewEvent,
    key: &str,
    t: &Target,
    priority: i64,
    now: i64,
) -> Result<Option<String>> {
    let found: Option<(String, String)> = sqlx::query_as(
        "SELECT id, event_id FROM deliveries INDEXED BY deliveries_entity
         WHERE endpoint_id = ? AND entity_key = ? AND entity_key IS NOT NULL
         AND status IN ('pending', 'retrying', 'held') LIMIT 1",
    )
    .bind(&t.endpoint_id)
    .bind(key)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, old_event)) = found else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE deliveries SET event_id = ?, event_type = ?, channels = ?, priority = ?,
         updated_at = ? WHERE id = ?",
    )
    .bind(&ev.id)
    .bind(&ev.event_type)
    .bind(&ev.channels)
    .bind(priority)
    .bind(now)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE events SET deliveries = (SELECT json_group_array(value) FROM json_each(events.deliveries)
         WHERE value != ?) WHERE shop_id = ? AND id = ?",
    )
    .bind(&id)
    .bind(shop_id)
    .bind(&old_event)
    .execute(&mut *tx)
    .await?;
    Ok(Some(id))
}

impl Store {
    /// Writes events, their deliveries and newly seen event types in one transaction.
    pub async fn publish(
        &self,
        shop_id: &str,
        events: &[NewEvent],
        discovered: &[(String, String)],
        now: i64,
    ) -> Result<Vec<Published>> {
        let mut tx = self.writer.begin().await?;
        let replaces = events
            .iter()
            .any(|e| e.entity_key.is_some() && e.targets.iter().any(|t| t.unique_pending));
        let mut out = Vec::with_capacity(events.len());
        if !replaces {
            out = insert_bulk(&mut tx, shop_id, events, now).await?;
        }
        // With unique-pending replacement in play, one event at a time.
        let one_by_one: &[NewEvent] = if replaces { events } else { &[] };
        for ev in one_by_one {
            let inserted = sqlx::query(
                "INSERT INTO events (shop_id, id, type, channels, data, entity_key, priority, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (shop_id, id) DO NOTHING",
            )
            .bind(shop_id)
            .bind(&ev.id)
            .bind(&ev.event_type)
            .bind(&ev.channels)
            .bind(&ev.data)
            .bind(&ev.entity_key)
            .bind(ev.priority)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !inserted {
                out.push(already_published(&mut tx, shop_id, &ev.id).await?);
                continue;
            }
            let mut ids = Vec::with_capacity(ev.targets.len());
            for t in &ev.targets {
                let priority = ev.priority.unwrap_or(t.priority);
                if let Some(key) = ev.entity_key.as_deref().filter(|_| t.unique_pending) {
                    if let Some(id) =
                        replace_unsent(&mut tx, shop_id, ev, key, t, priority, now).await?
                    {
                        ids.push(id);
                        continue;
                    }
                }
                let id = new_id("dlv");
                // Held or pending read inside the write; an endpoint deleted meanwhile gets
                // nothing (see `insert_bulk`).
                let queued = sqlx::query(
                    "INSERT INTO deliveries (id, shop_id, event_id, endpoint_id, event_type, channels,
                     entity_key, status, priority, next_attempt_at, created_at, updated_at)
                     SELECT ?, ?, ?, id, ?, ?, ?, CASE WHEN enabled THEN 'pending' ELSE 'held' END,
                     ?, ?, ?, ? FROM endpoints WHERE id = ?",
                )
                .bind(&id)
                .bind(shop_id)
                .bind(&ev.id)
                .bind(&ev.event_type)
                .bind(&ev.channels)
                .bind(&ev.entity_key)
                .bind(priority)
                .bind(now)
                .bind(now)
                .bind(now)
                .bind(&t.endpoint_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if queued == 0 {
                    continue;
                }
                ids.push(id);
            }
            sqlx::query("UPDATE events SET deliveries = ? WHERE shop_id = ? AND id = ?")
                .bind(serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()))
                .bind(shop_id)
                .bind(&ev.id)
                .execute(&mut *tx)
                .await?;
            out.push(Published {
                id: ev.id.clone(),
                deliveries: ids,
                duplicate: false,
            });
        }
        for (name, sample) in discovered {
            sqlx::query(
                "INSERT INTO event_types (shop_id, name, description, sample, source, created_at, updated_at)
                 VALUES (?, ?, '', ?, 'discovered', ?, ?) ON CONFLICT (shop_id, name) DO NOTHING",
            )
            .bind(shop_id)
            .bind(name)
            .bind(sample)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Events published since `since`, per shop (the operator's volume column).
    pub async fn events_since_by_shop(&self, since: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT shop_id, COUNT(*) FROM events WHERE created_at >= ? GROUP BY shop_id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn event(&self, shop_id: &str, id: &str) -> Result<Option<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT id, type, channels, data, entity_key, deliveries, created_at
             FROM events WHERE shop_id = ? AND id = ?",
        )
        .bind(shop_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Events by (shop, id) pairs, for the engine's claimed deliveries.
    pub async fn events_by_keys(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<(String, EventRow)>> {
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
                 FROM events WHERE shop_id = ? AND id IN ({marks})"
            );
            let mut q = sqlx::query_as::<_, EventRow>(&sql).bind(shop);
            for id in ids {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push((shop.to_string(), row));
            }
        }
        Ok(out)
    }
}
