//! Shops: the tenants.

use super::{in_tx, on_reader, on_writer, Result, Store};
use crate::ids::now_ms;
use crate::ids::{ShopId, UserId};
use sqlx::types::Json;

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct ShopRow {
    pub id: ShopId,
    pub name: String,
    pub webhooks_enabled: bool,
    pub require_https: bool,
    pub members: i64,
    pub created_at: i64,
    pub failed_retention_hours: i64,
    pub log_retention_days: i64,
    pub default_retry: Json<crate::domain::retry::RetryPolicy>,
}

const SELECT: &str = "SELECT s.id, s.name, s.webhooks_enabled, s.require_https, s.created_at,
    s.failed_retention_hours, s.log_retention_days, s.default_retry,
    (SELECT COUNT(*) FROM memberships m WHERE m.shop_id = s.id) AS members FROM shops s";

impl Store {
    pub async fn create_shop(&self, name: &str, webhooks_enabled: bool) -> Result<ShopRow> {
        on_writer!(self, |pool, d| {
            let id = ShopId::generate();
            let now = now_ms();
            sqlx::query(&d.sql(
                "INSERT INTO shops (id, name, webhooks_enabled, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?)",
            ))
            .bind(&id)
            .bind(name)
            .bind(webhooks_enabled)
            .bind(now)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(ShopRow {
                id,
                name: name.to_string(),
                webhooks_enabled,
                require_https: false,
                members: 0,
                created_at: now,
                failed_retention_hours: 168,
                log_retention_days: 30,
                default_retry: Json(Default::default()),
            })
        })
    }

    pub async fn shop(&self, shop_id: &ShopId) -> Result<Option<ShopRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(&format!("{SELECT} WHERE s.id = ?")))
                .bind(shop_id)
                .fetch_optional(pool)
                .await?)
        })
    }

    pub async fn all_shops(&self) -> Result<Vec<ShopRow>> {
        on_reader!(self, |pool, d| {
            Ok(
                sqlx::query_as(&d.sql(&format!("{SELECT} ORDER BY lower(s.name), s.id")))
                    .fetch_all(pool)
                    .await?,
            )
        })
    }

    pub async fn shops_of_user(&self, user_id: &UserId) -> Result<Vec<ShopRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(&format!(
                "{SELECT} WHERE s.id IN (SELECT shop_id FROM memberships WHERE user_id = ?)
             ORDER BY lower(s.name), s.id"
            )))
            .bind(user_id)
            .fetch_all(pool)
            .await?)
        })
    }

    pub async fn update_shop_settings(
        &self,
        shop_id: &ShopId,
        failed_retention_hours: i64,
        log_retention_days: i64,
        require_https: bool,
        default_retry: &crate::domain::retry::RetryPolicy,
    ) -> Result<bool> {
        on_writer!(self, |pool, d| {
            let done = sqlx::query(&d.sql("UPDATE shops SET failed_retention_hours = ?, log_retention_days = ?, require_https = ?,
             default_retry = ?, updated_at = ? WHERE id = ?"))
        .bind(failed_retention_hours)
        .bind(log_retention_days)
        .bind(require_https)
        .bind(Json(default_retry))
        .bind(now_ms())
        .bind(shop_id)
        .execute(pool)
        .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Turns a shop's webhooks on or off (the operator's switch) and moves its waiting
    /// deliveries with it, in one transaction: off holds every pending and retrying delivery,
    /// on resumes the held ones whose endpoint is enabled; the first slice of each at once,
    /// the rest by the engine. Returns false when no such shop exists.
    pub async fn set_webhooks_enabled(&self, shop_id: &ShopId, enabled: bool) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let found = in_tx!(&mut tx, |c, d| sqlx::query(
            &d.sql("UPDATE shops SET webhooks_enabled = ?, updated_at = ? WHERE id = ?")
        )
        .bind(enabled)
        .bind(now)
        .bind(shop_id)
        .execute(c)
        .await?
        .rows_affected());
        if found == 0 {
            return Ok(false);
        }
        let (_, more) = if enabled {
            let resume = super::bulk::BulkKind::Resume;
            super::deliveries::change_deliveries(&mut tx, shop_id, None, resume, &["held"], now)
                .await?
        } else {
            super::deliveries::hold_waiting(&mut tx, shop_id, None, now).await?
        };
        tx.commit().await?;
        if more {
            self.signal_bulk();
        }
        Ok(true)
    }
}
