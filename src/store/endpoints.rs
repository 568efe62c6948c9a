//! Endpoints: where a shop's deliveries go. Secret columns hold sealed values (see
//! `crate::crypto`); this module never sees plaintext secrets.

use super::{Result, Store};

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct EndpointRow {
    pub id: String,
    pub shop_id: String,
    pub url: String,
    pub description: String,
    pub enabled: bool,
    pub event_types: String,
    pub channels: String,
    pub basic_auth_username: Option<String>,
    pub basic_auth_password_enc: Option<String>,
    pub headers: String,
    pub content_type: String,
    pub template: Option<String>,
    pub retry: String,
    pub timeout_ms: i64,
    pub priority: i64,
    pub unique_pending: bool,
    pub disable_on_status: String,
    pub unsubscribe_phrase: Option<String>,
    pub unsubscribe_action: String,
    pub disable_after_days: Option<i64>,
    pub client_certificate_enc: Option<String>,
    pub rate_limit_per_second: Option<i64>,
    pub secret_enc: String,
    pub previous_secret_enc: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, shop_id, url, description, enabled, event_types, channels,
    basic_auth_username, basic_auth_password_enc, headers, content_type, template, retry,
    timeout_ms, priority, unique_pending, disable_on_status, unsubscribe_phrase,
    unsubscribe_action, disable_after_days, client_certificate_enc, rate_limit_per_second,
    secret_enc, previous_secret_enc, previous_secret_until, disabled_reason, failing_since,
    last_attempt_at, created_at, updated_at";

impl Store {
    /// Inserts an endpoint or updates every column of an existing one (the service builds the
    /// whole row). An update in place: `REPLACE` would delete the row and cascade to its
    /// deliveries.
    pub async fn save_endpoint(&self, e: &EndpointRow) -> Result<()> {
        let updates = COLUMNS
            .split(',')
            .map(str::trim)
            .filter(|c| !matches!(*c, "id" | "shop_id" | "created_at"))
            .map(|c| format!("{c} = excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(&format!(
            "INSERT INTO endpoints ({COLUMNS}) VALUES
             (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET {updates}"
        ))
        .bind(&e.id)
        .bind(&e.shop_id)
        .bind(&e.url)
        .bind(&e.description)
        .bind(e.enabled)
        .bind(&e.event_types)
        .bind(&e.channels)
        .bind(&e.basic_auth_username)
        .bind(&e.basic_auth_password_enc)
        .bind(&e.headers)
        .bind(&e.content_type)
        .bind(&e.template)
        .bind(&e.retry)
        .bind(e.timeout_ms)
        .bind(e.priority)
        .bind(e.unique_pending)
        .bind(&e.disable_on_status)
        .bind(&e.unsubscribe_phrase)
        .bind(&e.unsubscribe_action)
        .bind(e.disable_after_days)
        .bind(&e.client_certificate_enc)
        .bind(e.rate_limit_per_second)
        .bind(&e.secret_enc)
        .bind(&e.previous_secret_enc)
        .bind(e.previous_secret_until)
        .bind(&e.disabled_reason)
        .bind(e.failing_since)
        .bind(e.last_attempt_at)
        .bind(e.created_at)
        .bind(e.updated_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn endpoint(&self, shop_id: &str, id: &str) -> Result<Option<EndpointRow>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM endpoints WHERE shop_id = ? AND id = ?"
        ))
        .bind(shop_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn endpoints_of_shop(&self, shop_id: &str) -> Result<Vec<EndpointRow>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM endpoints WHERE shop_id = ? ORDER BY created_at"
        ))
        .bind(shop_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Endpoints by id for the delivery engine, which works across shops by design.
    pub async fn endpoints_by_ids(&self, ids: &[String]) -> Result<Vec<EndpointRow>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let marks = vec!["?"; ids.len()].join(",");
        let sql = format!("SELECT {COLUMNS} FROM endpoints WHERE id IN ({marks})");
        let mut q = sqlx::query_as(&sql);
        for id in ids {
            q = q.bind(id);
        }
        q.fetch_all(&self.pool).await
    }

    pub async fn delete_endpoint(&self, shop_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM endpoints WHERE shop_id = ? AND id = ?")
            .bind(shop_id)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Enables or disables an endpoint and moves its waiting deliveries accordingly, in one
    /// transaction: disabling holds them, enabling resumes them at once.
    pub async fn set_endpoint_enabled(
        &self,
        shop_id: &str,
        id: &str,
        enabled: bool,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE endpoints SET enabled = ?, disabled_reason = ?, failing_since = NULL,
             updated_at = ? WHERE shop_id = ? AND id = ?",
        )
        .bind(enabled)
        .bind(if enabled { None } else { reason })
        .bind(now)
        .bind(shop_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if enabled {
            sqlx::query(
                "UPDATE deliveries SET status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END,
                 next_attempt_at = ?, updated_at = ? WHERE endpoint_id = ? AND status = 'held'",
            )
            .bind(now)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        } else {
            super::deliveries::hold_waiting(&mut tx, id, now).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
