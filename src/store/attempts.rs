//! Attempts: every HTTP request of a delivery, recorded together with the delivery's new
//! state, the endpoint's health and any alert, in batched transactions.

use super::{Result, Store};
use crate::ids::new_id;

/// What an attempt's outcome does to its endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointEffect {
    Succeeded,
    Failed,
    /// Deactivate the endpoint (its waiting deliveries are held) for this reason.
    Disable(String),
    /// Delete the endpoint (it asked to be unsubscribed).
    Delete(String),
}

/// One finished attempt and everything it changes.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub shop_id: String,
    pub delivery_id: String,
    pub endpoint_id: String,
    pub number: i64,
    pub status_code: Option<i64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: i64,
    pub request_headers: String,
    pub request_body: String,
    pub response_headers: Option<String>,
    pub response_body: Option<String>,
    pub at: i64,
    /// The delivery's status afterwards: succeeded, retrying or failed.
    pub new_status: &'static str,
    pub next_attempt_at: Option<i64>,
    pub effect: EndpointEffect,
    /// (kind, message) of an alert to raise.
    pub alert: Option<(String, String)>,
}

/// The time of the first failure of this endpoint in the batch since its last success.
fn first_failure<'a>(
    failures: &mut std::collections::HashMap<&'a str, i64>,
    r: &'a AttemptRecord,
) -> Option<i64> {
    if r.effect == EndpointEffect::Failed {
        Some(*failures.entry(r.endpoint_id.as_str()).or_insert(r.at))
    } else {
        failures.remove(r.endpoint_id.as_str());
        None
    }
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct AttemptRow {
    pub id: i64,
    pub delivery_id: String,
    pub endpoint_id: String,
    pub number: i64,
    pub status_code: Option<i64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: i64,
    pub request_headers: String,
    pub request_body: String,
    pub response_headers: Option<String>,
    pub response_body: Option<String>,
    pub at: i64,
}

const COLUMNS: &str =
    "id, delivery_id, endpoint_id, number, status_code, error_kind, error_message,
    duration_ms, request_headers, request_body, response_headers, response_body, at";

impl Store {
    /// Records a batch of attempts in one transaction (SQLite has one writer: batching is
    /// what keeps it from being the limit).
    pub async fn record_attempts(&self, batch: &[AttemptRecord]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        // endpoint → (failing now, first failure in this batch, last attempt time)
        let mut health: std::collections::HashMap<&str, (bool, Option<i64>, i64)> =
            Default::default();
        let mut failures: std::collections::HashMap<&str, i64> = Default::default();
        for r in batch {
            sqlx::query(
                "INSERT INTO attempts (shop_id, delivery_id, endpoint_id, number, status_code, error_kind,
                 error_message, duration_ms, request_headers, request_body, response_headers, response_body, at)
                 SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = ?)",
            )
            .bind(&r.shop_id)
            .bind(&r.delivery_id)
            .bind(&r.endpoint_id)
            .bind(r.number)
            .bind(r.status_code)
            .bind(&r.error_kind)
            .bind(&r.error_message)
            .bind(r.duration_ms)
            .bind(&r.request_headers)
            .bind(&r.request_body)
            .bind(&r.response_headers)
            .bind(&r.response_body)
            .bind(r.at)
            .bind(&r.delivery_id)
            .execute(&mut *tx)
            .await?;
            // A delivery cancelled while its attempt was in flight stays cancelled.
            sqlx::query(
                "UPDATE deliveries SET status = ?, attempt_count = ?, next_attempt_at = ?, lease_until = NULL,
                 last_status_code = ?, last_error = ?, updated_at = ? WHERE id = ? AND status = 'delivering'",
            )
            .bind(r.new_status)
            .bind(r.number)
            .bind(r.next_attempt_at)
            .bind(r.status_code)
            .bind(&r.error_kind)
            .bind(r.at)
            .bind(&r.delivery_id)
            .execute(&mut *tx)
            .await?;
            match &r.effect {
                // Health is written once per endpoint per batch, below.
                EndpointEffect::Succeeded | EndpointEffect::Failed => {
                    health.insert(
                        r.endpoint_id.as_str(),
                        (
                            r.effect == EndpointEffect::Failed,
                            first_failure(&mut failures, r),
                            r.at,
                        ),
                    );
                }
                EndpointEffect::Disable(reason) => {
                    sqlx::query(
                        "UPDATE endpoints SET enabled = 0, disabled_reason = ?, last_attempt_at = ?, updated_at = ?
                         WHERE id = ?",
                    )
                    .bind(reason)
                    .bind(r.at)
                    .bind(r.at)
                    .bind(&r.endpoint_id)
                    .execute(&mut *tx)
                    .await?;
                    super::deliveries::hold_waiting(&mut tx, &r.endpoint_id, r.at).await?;
                }
                EndpointEffect::Delete(_) => {
                    sqlx::query("DELETE FROM endpoints WHERE id = ?")
                        .bind(&r.endpoint_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if let Some((kind, message)) = &r.alert {
                sqlx::query(
                    "INSERT INTO alerts (id, shop_id, kind, endpoint_id, delivery_id, message, created_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(new_id("alr"))
                .bind(&r.shop_id)
                .bind(kind)
                .bind(&r.endpoint_id)
                .bind(&r.delivery_id)
                .bind(message)
                .bind(r.at)
                .execute(&mut *tx)
                .await?;
            }
        }
        for (endpoint, (failing, first_failure, at)) in health {
            if failing {
                sqlx::query(
                    "UPDATE endpoints SET failing_since = COALESCE(failing_since, ?), last_attempt_at = ?
                     WHERE id = ?",
                )
                .bind(first_failure.unwrap_or(at))
                .bind(at)
                .bind(endpoint)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(
                    "UPDATE endpoints SET failing_since = NULL, last_attempt_at = ? WHERE id = ?",
                )
                .bind(at)
                .bind(endpoint)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await
    }

    pub async fn attempts_of_delivery(
        &self,
        shop_id: &str,
        delivery_id: &str,
    ) -> Result<Vec<AttemptRow>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM attempts WHERE shop_id = ? AND delivery_id = ? ORDER BY number, id"
        ))
        .bind(shop_id)
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Removes what the shops' retention settings no longer keep: attempts older than the log
    /// retention, and failed or cancelled deliveries older than the failed retention.
    pub async fn purge_expired(&self, now: i64) -> Result<(u64, u64)> {
        let attempts = sqlx::query(
            "DELETE FROM attempts WHERE id IN (SELECT a.id FROM attempts a JOIN shops s ON s.id = a.shop_id
             WHERE a.at < ? - s.log_retention_days * 86400000 LIMIT 10000)",
        )
        .bind(now)
        .execute(&self.writer)
        .await?
        .rows_affected();
        let deliveries = sqlx::query(
            "DELETE FROM deliveries WHERE id IN (SELECT d.id FROM deliveries d JOIN shops s ON s.id = d.shop_id
             WHERE d.status IN ('failed', 'cancelled') AND d.updated_at < ? - s.failed_retention_hours * 3600000
             LIMIT 10000)",
        )
        .bind(now)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok((attempts, deliveries))
    }
}
