//! A shop's own event types and its edits of the shipped catalog.

use super::{on_reader, on_writer, Result, Store};
use crate::ids::ShopId;
use sqlx::types::Json;

/// Most event types a shop may have (its own, edited built-ins and those discovered on
/// publish): each is a row and a catalog entry, and the panel lists them all.
pub const MAX_EVENT_TYPES: usize = 1_000;

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct EventTypeRow {
    pub name: String,
    pub description: String,
    pub sample: Json<serde_json::Value>,
    pub schema: Option<Json<serde_json::Value>>,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Store {
    pub async fn event_types_of_shop(&self, shop_id: &ShopId) -> Result<Vec<EventTypeRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(
                "SELECT name, description, sample, schema, source, created_at, updated_at
             FROM event_types WHERE shop_id = ? ORDER BY name",
            ))
            .bind(shop_id)
            .fetch_all(pool)
            .await?)
        })
    }

    pub async fn event_type(&self, shop_id: &ShopId, name: &str) -> Result<Option<EventTypeRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(
                "SELECT name, description, sample, schema, source, created_at, updated_at
             FROM event_types WHERE shop_id = ? AND name = ?",
            ))
            .bind(shop_id)
            .bind(name)
            .fetch_optional(pool)
            .await?)
        })
    }

    pub async fn upsert_event_type(&self, shop_id: &ShopId, row: &EventTypeRow) -> Result<()> {
        on_writer!(self, |pool, d| {
            sqlx::query(&d.sql("INSERT INTO event_types (shop_id, name, description, sample, schema, source, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (shop_id, name) DO UPDATE SET description = excluded.description,
             sample = excluded.sample, schema = excluded.schema, source = excluded.source,
             updated_at = excluded.updated_at"))
        .bind(shop_id)
        .bind(&row.name)
        .bind(&row.description)
        .bind(&row.sample)
        .bind(&row.schema)
        .bind(&row.source)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(pool)
        .await?;
            Ok(())
        })
    }
}
