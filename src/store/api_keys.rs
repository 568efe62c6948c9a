//! API keys: stored as a SHA-256 hash, looked up by that hash.

use super::{on_reader, on_writer, Result, Store};
use crate::ids::now_ms;
use crate::ids::{ApiKeyId, ShopId};

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct ApiKeyRow {
    pub id: ApiKeyId,
    pub shop_id: ShopId,
    pub name: String,
    pub key_prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Store {
    pub async fn create_api_key(
        &self,
        shop_id: &ShopId,
        name: &str,
        key_hash: &str,
        key_prefix: &str,
    ) -> Result<ApiKeyId> {
        on_writer!(self, |pool, d| {
            let id = ApiKeyId::generate();
            sqlx::query(&d.sql(
                "INSERT INTO api_keys (id, shop_id, name, key_hash, key_prefix, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
            ))
            .bind(&id)
            .bind(shop_id)
            .bind(name)
            .bind(key_hash)
            .bind(key_prefix)
            .bind(now_ms())
            .execute(pool)
            .await?;
            Ok(id)
        })
    }

    /// The active (not revoked) key with this hash.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(
                "SELECT id, shop_id, name, key_prefix, created_at, last_used_at, revoked_at
             FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
            ))
            .bind(key_hash)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Notes that a key was used, at most once per `every_ms` (an API call should not cost a
    /// write each time).
    pub async fn touch_api_key(&self, key_id: &ApiKeyId, now: i64, every_ms: i64) -> Result<()> {
        on_writer!(self, |pool, d| {
            sqlx::query(&d.sql(
                "UPDATE api_keys SET last_used_at = ?
             WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
            ))
            .bind(now)
            .bind(key_id)
            .bind(now - every_ms)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn api_keys_of_shop(&self, shop_id: &ShopId) -> Result<Vec<ApiKeyRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(
                "SELECT id, shop_id, name, key_prefix, created_at, last_used_at, revoked_at
             FROM api_keys WHERE shop_id = ? ORDER BY created_at DESC",
            ))
            .bind(shop_id)
            .fetch_all(pool)
            .await?)
        })
    }

    pub async fn revoke_api_key(&self, shop_id: &ShopId, key_id: &ApiKeyId) -> Result<bool> {
        on_writer!(self, |pool, d| {
            let done = sqlx::query(&d.sql("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND shop_id = ? AND revoked_at IS NULL"))
        .bind(now_ms())
        .bind(key_id)
        .bind(shop_id)
        .execute(pool)
        .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}
