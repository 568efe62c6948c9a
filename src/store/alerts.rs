//! Alerts: what an owner must see (retries exhausted, an endpoint deactivated).

use super::{Result, Store};

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct AlertRow {
    pub id: String,
    pub kind: String,
    pub endpoint_id: Option<String>,
    pub delivery_id: Option<String>,
    pub message: String,
    pub created_at: i64,
    pub acknowledged_at: Option<i64>,
}

impl Store {
    /// Newest first, keyset-paginated on the id (ids sort by creation time).
    pub async fn alerts_of_shop(
        &self,
        shop_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AlertRow>> {
        Ok(sqlx::query_as(
            "SELECT id, kind, endpoint_id, delivery_id, message, created_at, acknowledged_at
             FROM alerts WHERE shop_id = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(shop_id)
        .bind(before)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Acknowledges an alert (again is a no-op); false when the shop has no such alert.
    pub async fn acknowledge_alert(&self, shop_id: &str, id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE alerts SET acknowledged_at = COALESCE(acknowledged_at, ?)
             WHERE shop_id = ? AND id = ?",
        )
        .bind(now)
        .bind(shop_id)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
