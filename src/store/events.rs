//! Publishing: an event and its deliveries are written in one transaction, so an accepted
//! event always has its deliveries queued, and a repeated event id queues nothing new.

use super::{Result, Store};
use crate::ids::new_id;
use sqlx::Row;

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

impl Store {
    /// Writes events, their deliveries and newly seen event types in one transaction.
    pub async fn publish(
        &self,
        shop_id: &str,
        events: &[NewEvent],
        discovered: &[(String, String)],
        now: i64,
    ) -> Result<Vec<Published>> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(events.len());
        for ev in events {
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
                let existing: String = sqlx::query_scalar(
                    "SELECT deliveries FROM events WHERE shop_id = ? AND id = ?",
                )
                .bind(shop_id)
                .bind(&ev.id)
                .fetch_one(&mut *tx)
                .await?;
                out.push(Published {
                    id: ev.id.clone(),
                    deliveries: serde_json::from_str(&existing).unwrap_or_default(),
                    duplicate: true,
                });
                continue;
            }
            let mut ids = Vec::with_capacity(ev.targets.len());
            for t in &ev.targets {
                let priority = ev.priority.unwrap_or(t.priority);
                if t.unique_pending && !t.held {
                    if let Some(key) = &ev.entity_key {
                        // Replace a delivery of the same entity that has not been sent yet.
                        let replaced: Option<String> = sqlx::query_scalar(
                            "UPDATE deliveries SET event_id = ?, event_type = ?, channels = ?,
                             priority = ?, updated_at = ?
                             WHERE id = (SELECT id FROM deliveries WHERE endpoint_id = ?
                               AND entity_key = ? AND status = 'pending' LIMIT 1)
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
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let marks = vec!["(?, ?)"; keys.len()].join(",");
        let sql = format!(
            "SELECT shop_id, id, type, channels, data, entity_key, deliveries, created_at
             FROM events WHERE (shop_id, id) IN (VALUES {marks})"
        );
        let mut q = sqlx::query(&sql);
        for (shop, id) in keys {
            q = q.bind(shop).bind(id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|r| {
                use sqlx::FromRow;
                Ok((r.try_get::<String, _>("shop_id")?, EventRow::from_row(&r)?))
            })
            .collect()
    }
}
