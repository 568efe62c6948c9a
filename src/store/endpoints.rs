//! Endpoints: where a shop's deliveries go. Secret columns hold sealed values (see
//! `crate::crypto`); this module never sees plaintext secrets.

use super::{in_tx, on_reader, on_writer, Result, Store, Tx};
use crate::ids::{EndpointId, ShopId};
use sqlx::types::Json;

/// An endpoint's extra headers: name → sealed value.
pub type Headers = Json<serde_json::Map<String, serde_json::Value>>;

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct EndpointRow {
    pub id: EndpointId,
    pub shop_id: ShopId,
    pub url: String,
    pub description: String,
    pub enabled: bool,
    /// JSON columns are typed: a corrupt value fails the read loudly instead of reading as
    /// empty (no event types would mean every type).
    pub event_types: Json<Vec<String>>,
    pub channels: Json<Vec<String>>,
    pub basic_auth_username: Option<String>,
    pub basic_auth_password_enc: Option<String>,
    /// Header name → value; values sealed (see `crypto::SecretBox`).
    pub headers: Json<serde_json::Map<String, serde_json::Value>>,
    pub content_type: String,
    pub template: Option<String>,
    pub retry: Json<crate::domain::retry::RetryPolicy>,
    pub timeout_ms: i64,
    pub priority: i64,
    pub unique_pending: bool,
    pub disable_on_status: Json<Vec<i64>>,
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
    /// Inserts a new endpoint (the service builds the whole row; changes go through
    /// [`Store::modify_endpoint`]).
    pub async fn insert_endpoint(&self, e: &EndpointRow) -> Result<()> {
        on_writer!(self, |pool, d| {
            sqlx::query(&d.sql(&format!(
            "INSERT INTO endpoints ({COLUMNS}) VALUES
             (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
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
        .execute(pool)
        .await?;
            Ok(())
        })
    }

    pub async fn endpoint(&self, shop_id: &ShopId, id: &EndpointId) -> Result<Option<EndpointRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(&format!(
            "SELECT {COLUMNS} FROM endpoints WHERE shop_id = ? AND id = ? AND deleted_at IS NULL"
        )))
            .bind(shop_id)
            .bind(id)
            .fetch_optional(pool)
            .await?)
        })
    }

    pub async fn endpoints_of_shop(&self, shop_id: &ShopId) -> Result<Vec<EndpointRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(&format!(
            "SELECT {COLUMNS} FROM endpoints WHERE shop_id = ? AND deleted_at IS NULL ORDER BY created_at"
        )))
        .bind(shop_id)
        .fetch_all(pool)
        .await?)
        })
    }

    /// Endpoints by id for the delivery engine, which works across shops by design.
    pub async fn endpoints_by_ids(&self, ids: &[EndpointId]) -> Result<Vec<EndpointRow>> {
        on_reader!(self, |pool, d| {
            if ids.is_empty() {
                return Ok(vec![]);
            }
            let marks = vec!["?"; ids.len()].join(",");
            let sql = format!("SELECT {COLUMNS} FROM endpoints WHERE id IN ({marks})");
            let sql = d.sql(&sql);
            let mut q = sqlx::query_as(&sql);
            for id in ids {
                q = q.bind(id);
            }
            Ok(q.fetch_all(pool).await?)
        })
    }

    /// Reads an endpoint and writes back what `change` makes of its settings, in one
    /// transaction on the one writer: a change the engine made meanwhile (a disable) is not
    /// overwritten, and a delete meanwhile is not undone (`None`: there is no such endpoint).
    /// Only the settings are written, and `enabled` when `change` altered it, its waiting
    /// deliveries held or resumed in the same transaction. `change` may refuse (`Some(Err)`),
    /// and then nothing is written.
    pub async fn modify_endpoint<E>(
        &self,
        shop_id: &ShopId,
        id: &EndpointId,
        now: i64,
        change: impl FnOnce(&mut EndpointRow) -> std::result::Result<(), E>,
    ) -> Result<Option<std::result::Result<EndpointRow, E>>> {
        let mut tx = self.begin().await?;
        let found: Option<EndpointRow> = in_tx!(&mut tx, |c, d| sqlx::query_as(&d.sql(&format!(
            "SELECT {COLUMNS} FROM endpoints WHERE shop_id = ? AND id = ? AND deleted_at IS NULL"
        )))
        .bind(shop_id)
        .bind(id)
        .fetch_optional(c)
        .await?);
        let Some(mut row) = found else {
            return Ok(None);
        };
        let was_enabled = row.enabled;
        if let Err(e) = change(&mut row) {
            return Ok(Some(Err(e)));
        }
        row.updated_at = now;
        in_tx!(&mut tx, |c, d| sqlx::query(&d.sql(
            "UPDATE endpoints SET url = ?, description = ?, event_types = ?, channels = ?,
             basic_auth_username = ?, basic_auth_password_enc = ?, headers = ?, content_type = ?,
             template = ?, retry = ?, timeout_ms = ?, priority = ?, unique_pending = ?,
             disable_on_status = ?, unsubscribe_phrase = ?, unsubscribe_action = ?,
             disable_after_days = ?, client_certificate_enc = ?, rate_limit_per_second = ?,
             secret_enc = ?, previous_secret_enc = ?, previous_secret_until = ?, updated_at = ?
             WHERE id = ?",
        ))
        .bind(&row.url)
        .bind(&row.description)
        .bind(&row.event_types)
        .bind(&row.channels)
        .bind(&row.basic_auth_username)
        .bind(&row.basic_auth_password_enc)
        .bind(&row.headers)
        .bind(&row.content_type)
        .bind(&row.template)
        .bind(&row.retry)
        .bind(row.timeout_ms)
        .bind(row.priority)
        .bind(row.unique_pending)
        .bind(&row.disable_on_status)
        .bind(&row.unsubscribe_phrase)
        .bind(&row.unsubscribe_action)
        .bind(row.disable_after_days)
        .bind(&row.client_certificate_enc)
        .bind(row.rate_limit_per_second)
        .bind(&row.secret_enc)
        .bind(&row.previous_secret_enc)
        .bind(row.previous_secret_until)
        .bind(now)
        .bind(id)
        .execute(c)
        .await?
        .rows_affected());
        let mut more = false;
        if row.enabled != was_enabled {
            let reason = row.disabled_reason.clone();
            more = set_enabled(&mut tx, shop_id, id, row.enabled, reason.as_deref(), now).await?;
            if row.enabled {
                row.disabled_reason = None;
                row.failing_since = None;
            }
        }
        tx.commit().await?;
        if more {
            self.signal_bulk();
        }
        Ok(Some(Ok(row)))
    }

    /// Every endpoint that has extra headers, as stored: (id, headers, updated at).
    pub async fn all_endpoint_headers(&self) -> Result<Vec<(EndpointId, Headers, i64)>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(
                &d.sql("SELECT id, headers, updated_at FROM endpoints WHERE headers != '{}'"),
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// Replaces an endpoint's stored extra headers, if it did not change since `updated_at`.
    pub async fn replace_endpoint_headers(
        &self,
        id: &EndpointId,
        updated_at: i64,
        headers: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        on_writer!(self, |pool, d| {
            sqlx::query(&d.sql("UPDATE endpoints SET headers = ? WHERE id = ? AND updated_at = ?"))
                .bind(Json(headers))
                .bind(id)
                .bind(updated_at)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// One stored signing secret (sealed), to check at start that the key opens them.
    pub async fn any_sealed_secret(&self) -> Result<Option<String>> {
        on_reader!(self, |pool, d| {
            Ok(
                sqlx::query_scalar(&d.sql("SELECT secret_enc FROM endpoints LIMIT 1"))
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    /// Deletes an endpoint with its deliveries and their attempts. It is gone for the shop at
    /// once (marked deleted and disabled); its deliveries are removed in slices, the first at
    /// once and the rest by the engine, and the endpoint row goes with the last of them.
    pub async fn delete_endpoint(&self, shop_id: &ShopId, id: &EndpointId) -> Result<bool> {
        let now = crate::ids::now_ms();
        let mut tx = self.begin().await?;
        let found = in_tx!(&mut tx, |c, d| sqlx::query(&d.sql(
            "UPDATE endpoints SET enabled = FALSE, deleted_at = COALESCE(deleted_at, ?),
             updated_at = ? WHERE shop_id = ? AND id = ?"
        ))
        .bind(now)
        .bind(now)
        .bind(shop_id)
        .bind(id)
        .execute(c)
        .await?
        .rows_affected());
        if found == 0 {
            return Ok(false);
        }
        let (_, more) = super::deliveries::change_deliveries(
            &mut tx,
            shop_id,
            Some(id),
            super::bulk::BulkKind::Purge,
            &[
                "pending",
                "delivering",
                "retrying",
                "held",
                "succeeded",
                "failed",
                "cancelled",
            ],
            now,
        )
        .await?;
        if !more {
            in_tx!(&mut tx, |c, d| sqlx::query(
                &d.sql("DELETE FROM endpoints WHERE shop_id = ? AND id = ?")
            )
            .bind(shop_id)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        }
        tx.commit().await?;
        if more {
            self.signal_bulk();
        }
        Ok(true)
    }

    /// Enables or disables an endpoint and moves its waiting deliveries accordingly, in one
    /// transaction: disabling holds them, enabling resumes them at once.
    pub async fn set_endpoint_enabled(
        &self,
        shop_id: &ShopId,
        id: &EndpointId,
        enabled: bool,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let exists: Option<String> = in_tx!(&mut tx, |c, d| sqlx::query_scalar(
            &d.sql("SELECT id FROM endpoints WHERE shop_id = ? AND id = ? AND deleted_at IS NULL",)
        )
        .bind(shop_id)
        .bind(id)
        .fetch_optional(c)
        .await?);
        if exists.is_none() {
            return Ok(false);
        }
        let more = set_enabled(&mut tx, shop_id, id, enabled, reason, now).await?;
        tx.commit().await?;
        if more {
            self.signal_bulk();
        }
        Ok(true)
    }
}

/// Enables or disables an endpoint and moves its waiting deliveries with it: disabling holds
/// them, enabling resumes them, the first slice at once and the rest in slices by the engine
/// (true: a bulk change was written down). Every path that enables an endpoint comes here.
async fn set_enabled(
    tx: &mut Tx,
    shop_id: &ShopId,
    id: &EndpointId,
    enabled: bool,
    reason: Option<&str>,
    now: i64,
) -> Result<bool> {
    in_tx!(tx, |c, d| sqlx::query(&d.sql(
        "UPDATE endpoints SET enabled = ?, disabled_reason = ?, failing_since = NULL,
         updated_at = ? WHERE id = ?",
    ))
    .bind(enabled)
    .bind(if enabled { None } else { reason })
    .bind(now)
    .bind(id)
    .execute(c)
    .await?
    .rows_affected());
    let (_, more) = if enabled {
        super::deliveries::change_deliveries(
            tx,
            shop_id,
            Some(id),
            super::bulk::BulkKind::Resume,
            &["held"],
            now,
        )
        .await?
    } else {
        super::deliveries::hold_waiting(tx, shop_id, Some(id), now).await?
    };
    Ok(more)
}

impl Store {
    /// Reserves `n` send slots on an endpoint's shared rate schedule and returns when each may
    /// be sent, in ms. The schedule is GCRA in µs (`rate_slots.next_at` is the theoretical
    /// arrival time): after a pause a second's worth goes at once, then one per `1/rate` s.
    /// Every node reserves from the same row, so together they keep to the limit.
    pub async fn reserve_rate_slots(
        &self,
        endpoint_id: &EndpointId,
        n: usize,
        rate_per_second: i64,
        now_ms: i64,
    ) -> Result<Vec<i64>> {
        let interval = 1_000_000 / rate_per_second.max(1);
        let now = now_ms * 1000;
        let span = interval * n as i64;
        let tat: i64 = on_writer!(self, |pool, d| sqlx::query_scalar(&d.sql(
            "INSERT INTO rate_slots (endpoint_id, next_at) VALUES (?1, ?2 + ?3)
             ON CONFLICT (endpoint_id) DO UPDATE SET next_at =
               CASE WHEN rate_slots.next_at > ?2 THEN rate_slots.next_at ELSE ?2 END + ?3
             RETURNING next_at",
        ))
        .bind(endpoint_id)
        .bind(now)
        .bind(span)
        .fetch_one(pool)
        .await?);
        Ok(rate_schedule(tat - span, n, interval, rate_per_second, now))
    }
}

/// When each of `n` slots reserved from `base` (µs) may be sent, in ms: GCRA with a burst of
/// one second's worth (`rate` slots) allowed ahead of the schedule.
pub fn rate_schedule(base: i64, n: usize, interval: i64, rate: i64, now: i64) -> Vec<i64> {
    let tolerance = (rate.max(1) - 1) * interval;
    (0..n as i64)
        .map(|k| (base + k * interval - tolerance).max(now) / 1000)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::rate_schedule;

    #[test]
    fn a_rate_schedule_allows_a_seconds_burst_then_spaces_sends_by_the_rate() {
        // 4/s: 250 ms apart; after a pause, 4 at once.
        let now = 10_000_000; // µs
        let slots = rate_schedule(now, 6, 250_000, 4, now);
        assert_eq!(slots, vec![10_000, 10_000, 10_000, 10_000, 10_250, 10_500]);
        // Reserved behind a busy schedule: no burst left, one per interval.
        let slots = rate_schedule(now + 2_000_000, 2, 250_000, 4, now);
        assert_eq!(slots, vec![11_250, 11_500]);
    }
}
