//! Alerts: what an owner must see (retries exhausted, an endpoint deactivated).

use super::{on_reader, on_writer, Result, Store};
use crate::ids::{AlertId, EndpointId, ShopId};

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct AlertRow {
    pub id: AlertId,
    pub kind: String,
    pub endpoint_id: Option<EndpointId>,
    /// The delivery's id as text, as it was when the alert was raised (an alert from before
    /// delivery keys names the old id, which still finds the delivery).
    pub delivery_id: Option<String>,
    pub message: String,
    pub created_at: i64,
    pub acknowledged_at: Option<i64>,
}

impl Store {
    /// Newest first, keyset-paginated on the id (ids sort by creation time).
    pub async fn alerts_of_shop(
        &self,
        shop_id: &ShopId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AlertRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(
                "SELECT id, kind, endpoint_id, delivery_id, message, created_at, acknowledged_at
             FROM alerts WHERE shop_id = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
            ))
            .bind(shop_id)
            .bind(before)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Acknowledges an alert (again is a no-op); false when the shop has no such alert.
    pub async fn acknowledge_alert(
        &self,
        shop_id: &ShopId,
        id: &AlertId,
        now: i64,
    ) -> Result<bool> {
        on_writer!(self, |pool, d| {
            let done = sqlx::query(&d.sql(
                "UPDATE alerts SET acknowledged_at = COALESCE(acknowledged_at, ?)
             WHERE shop_id = ? AND id = ?",
            ))
            .bind(now)
            .bind(shop_id)
            .bind(id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}
