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
    /// The endpoint is disabled: the delivery waits as `held` until it is re-enabled.
    pub held: bool,
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
            serde_json::from_str(&new).map_err(|e| sqlx::Error::Decode(Box::new(e)))?
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
    for chunk in rows.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO deliveries (id, shop_id, event_id, endpoint_id, event_type, channels,
             entity_key, status, priority, next_attempt_at, created_at, updated_at) ",
        );
        qb.push_values(chunk, |mut b, (id, ev, t)| {
            b.push_bind(*id)
                .push_bind(shop_id)
                .push_bind(&ev.id)
                .push_bind(&t.endpoint_id)
                .push_bind(&ev.event_type)
                .push_bind(&ev.channels)
                .push_bind(&ev.entity_key)
                .push_bind(if t.held { "held" } else { "pending" })
                .push_bind(ev.priority.unwrap_or(t.priority))
                .push_bind(now)
                .push_bind(now)
                .push_bind(now);
        });
        qb.build().execute(&mut *tx).await?;
    }
    Ok(out)
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
                if t.unique_pending {
                    if let Some(key) = &ev.entity_key {
                        // Replace a delivery of the same entity that has not been sent yet
                        // (queued, or held while its endpoint is disabled).
                        let replaced: Option<String> = sqlx::query_scalar(
                            "UPDATE deliveries SET event_id = ?, event_type = ?, channels = ?,
                             priority = ?, updated_at = ?
                             WHERE id = (SELECT id FROM deliveries WHERE endpoint_id = ?
                               AND entity_key = ? AND status IN ('pending', 'held') LIMIT 1)
                             RETURNING id",
                        )
                        .bind(&ev.id)
                        .bind(&ev.event_type)
                        .bind(&ev.channels)
                        .bind(priority)
                        .bind(now)
                        .bind(&t.endpoint_id)
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if let Some(id) = replaced {
                            ids.push(id);
                            continue;
                        }
                    }
                }
                let id = new_id("dlv");
                sqlx::query(
                    "INSERT INTO deliveries (id, shop_id, event_id, endpoint_id, event_type, channels,
                     entity_key, status, priority, next_attempt_at, created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&id)
                .bind(shop_id)
                .bind(&ev.id)
                .bind(&t.endpoint_id)
                .bind(&ev.event_type)
                .bind(&ev.channels)
                .bind(&ev.entity_key)
                .bind(if t.held { "held" } else { "pending" })
                .bind(priority)
                .bind(now)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
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
        sqlx::query_as(
            "SELECT shop_id, COUNT(*) FROM events WHERE created_at >= ? GROUP BY shop_id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn event(&self, shop_id: &str, id: &str) -> Result<Option<EventRow>> {
        sqlx::query_as(
            "SELECT id, type, channels, data, entity_key, deliveries, created_at
             FROM events WHERE shop_id = ? AND id = ?",
        )
        .bind(shop_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
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
