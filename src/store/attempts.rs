//! Attempts: every HTTP request of a delivery, recorded together with the delivery's new
//! state, the endpoint's health and any alert, in batched transactions.

use super::{in_tx, on_reader, Result, Store, SHOP_NUM};
use crate::domain::recorded::{self, Origin, Stored};
use crate::domain::template::envelope_of;
use crate::ids::{AlertId, DeliveryId, EndpointId, EventId, ShopId};
use app::model::DeliveryStatus;
use sqlx::types::Json;
use sqlx::QueryBuilder;

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
    pub shop_id: ShopId,
    pub delivery_id: DeliveryId,
    pub endpoint_id: EndpointId,
    /// The token of the lease the attempt was sent under: its outcome is written only while
    /// that lease is still the delivery's.
    pub lease_owner: String,
    pub number: i64,
    pub status_code: Option<i64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: i64,
    /// How the request is stored (`domain::recorded::Stored::stored_form`): its derived parts
    /// are left out of `request_headers` and `request_body` and rebuilt when read.
    pub request_form: i64,
    pub request_headers: String,
    pub request_body: String,
    pub response_headers: Option<String>,
    pub response_body: Option<String>,
    pub at: i64,
    /// The delivery's status afterwards: succeeded, retrying or failed.
    pub new_status: DeliveryStatus,
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

/// Adds a batch's attempts to the hourly counters: succeeded (2xx) and failed per endpoint,
/// and the milliseconds they took (`ms:<endpoint>`, for the dashboard's slowest endpoints).
async fn add_hourly_counts(tx: &mut super::Tx, batch: &[AttemptRecord]) -> Result<()> {
    let mut counts: std::collections::BTreeMap<(&ShopId, String), i64> = Default::default();
    for r in batch {
        let ok = r.status_code.is_some_and(|c| (200..300).contains(&c));
        let what = format!("{}:{}", if ok { "ok" } else { "fail" }, r.endpoint_id);
        *counts
            .entry((&r.shop_id, super::counters::hourly(r.at, &what)))
            .or_default() += 1;
        let took = format!("ms:{}", r.endpoint_id);
        *counts
            .entry((&r.shop_id, super::counters::hourly(r.at, &took)))
            .or_default() += r.duration_ms.max(0);
    }
    let counts: Vec<_> = counts
        .into_iter()
        .map(|((s, name), n)| (s, name, n))
        .collect();
    for chunk in counts.chunks(500) {
        super::counters::add(tx, chunk).await?;
    }
    Ok(())
}

/// An attempt with its request exactly as sent.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub id: i64,
    pub delivery_id: DeliveryId,
    pub endpoint_id: EndpointId,
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

/// An attempt as stored, beside what rebuilding its request takes: its delivery's event,
/// whose fields are read only for an attempt that left out the envelope.
#[derive(sqlx::FromRow)]
struct StoredAttempt {
    id: i64,
    delivery_id: DeliveryId,
    endpoint_id: EndpointId,
    number: i64,
    status_code: Option<i64>,
    error_kind: Option<String>,
    error_message: Option<String>,
    duration_ms: i64,
    request_form: i64,
    request_headers: String,
    request_body: String,
    response_headers: Option<String>,
    response_body: Option<String>,
    at: i64,
    event_id: EventId,
    event_type: String,
    event_channels: Option<Json<Vec<String>>>,
    event_data: Option<String>,
    event_created_at: Option<i64>,
}

/// The columns of a `StoredAttempt`: attempts `a` joined to their deliveries `d`.
const STORED_ATTEMPT: &str = "SELECT a.id, a.delivery_id,
    (SELECT x.id FROM endpoints x WHERE x.num = d.endpoint) AS endpoint_id, a.number, a.status_code,
    a.error_kind, a.error_message, a.duration_ms, a.request_form, a.request_headers,
    a.request_body, a.response_headers, a.response_body, a.at, d.event_id, d.event_type,
    e.channels AS event_channels, e.data AS event_data, e.created_at AS event_created_at
    FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
    -- Forms 2, 6 and 14 (domain::recorded::Stored::stored_form) left the envelope out.
    LEFT JOIN events e ON a.request_form % 4 = 2 AND e.shop = a.shop AND e.id = d.event_id";

impl StoredAttempt {
    /// The attempt with its request exactly as sent.
    fn read(self) -> AttemptLogRow {
        let origin = Origin {
            event_id: &self.event_id,
            event_type: &self.event_type,
            delivery_id: &self.delivery_id,
            number: self.number,
            at: self.at,
        };
        let stored = Stored::read(self.request_form, self.request_headers, self.request_body);
        let (request_headers, request_body) = recorded::expand(stored, &origin, || {
            match (
                &self.event_channels,
                &self.event_data,
                self.event_created_at,
            ) {
                (Some(channels), Some(data), Some(created_at)) => {
                    envelope_of(&self.event_id, &self.event_type, created_at, channels, data)
                }
                // The event outlives its deliveries (retention), so this is not reached.
                _ => String::new(),
            }
        });
        AttemptLogRow {
            attempt: AttemptRow {
                id: self.id,
                delivery_id: self.delivery_id,
                endpoint_id: self.endpoint_id,
                number: self.number,
                status_code: self.status_code,
                error_kind: self.error_kind,
                error_message: self.error_message,
                duration_ms: self.duration_ms,
                request_headers,
                request_body,
                response_headers: self
                    .response_headers
                    .map(|h| recorded::expand_response(h, self.at)),
                response_body: self.response_body,
                at: self.at,
            },
            event_type: self.event_type,
        }
    }
}

impl Store {
    /// Records a batch of attempts in one transaction (SQLite has one writer: batching is
    /// what keeps it from being the limit).
    ///
    /// An attempt whose lease was lost (it ran out and the delivery was claimed again) is
    /// kept as evidence, but changes neither the delivery nor raises its alert: the new
    /// holder's outcome is the delivery's. Returns how many records were stale so.
    pub async fn record_attempts(&self, batch: &[AttemptRecord]) -> Result<usize> {
        let mut tx = self.begin().await?;
        // endpoint → (failing now, first failure in this batch, last attempt time)
        let mut health: std::collections::HashMap<&str, (bool, Option<i64>, i64)> =
            Default::default();
        let mut failures: std::collections::HashMap<&str, i64> = Default::default();
        // An alert belongs to the attempt's outcome: raised only while the lease is still the
        // record's (checked before the outcome below ends it). Alerts are rare: one statement
        // each.
        for r in batch {
            if let Some((kind, message)) = &r.alert {
                in_tx!(&mut tx, |c, d| {
                    sqlx::query(&d.sql("INSERT INTO alerts (id, shop_id, kind, endpoint_id, delivery_id, message, created_at)
                     SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM deliveries
                       WHERE id = ? AND status = 'delivering' AND lease_owner = ?)"))
                .bind(AlertId::generate())
                .bind(&r.shop_id)
                .bind(kind)
                .bind(&r.endpoint_id)
                .bind(r.delivery_id.as_str())
                .bind(message)
                .bind(r.at)
                .bind(&r.delivery_id)
                .bind(&r.lease_owner)
                .execute(c)
                .await?
                .rows_affected()
                });
            }
        }
        // Attempts and the deliveries' new states, a few hundred rows per statement. A
        // delivery deleted meanwhile (its endpoint went) gets no attempt row; one cancelled
        // while in flight stays cancelled. A current record changes exactly one delivery and a
        // stale one none, so the rows changed count the stale ones (no RETURNING: each row
        // returned would be one more message from SQLite's worker thread).
        let mut stale = 0;
        let mut bulk_written = false;
        for chunk in batch.chunks(150) {
            in_tx!(&mut tx, |c, _d| {
                let mut qb = QueryBuilder::new(
                "INSERT INTO attempts (shop, delivery_id, endpoint_id, number, status_code, error_kind,
                 error_message, duration_ms, request_form, request_headers, request_body, response_headers,
                 response_body, at)
                 SELECT (SELECT num FROM shops s WHERE s.id = v.column1), v.column2, v.column3,
                 v.column4, v.column5, v.column6, v.column7, v.column8, v.column9, v.column10,
                 v.column11, v.column12, v.column13, v.column14 FROM (",
            );
                qb.push_values(chunk, |mut b, r| {
                    // The endpoint is the delivery's, read through it: not stored again with
                    // every attempt (~30 bytes each). Rows written before hold it too.
                    b.push_bind(&r.shop_id)
                        .push_bind(&r.delivery_id)
                        .push_bind("")
                        .push_bind(r.number)
                        .push_bind(r.status_code)
                        .push_bind(&r.error_kind)
                        .push_bind(&r.error_message)
                        .push_bind(r.duration_ms)
                        .push_bind(r.request_form)
                        .push_bind(&r.request_headers)
                        .push_bind(&r.request_body)
                        .push_bind(&r.response_headers)
                        .push_bind(&r.response_body)
                        .push_bind(r.at);
                });
                qb.push(") AS v WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = v.column2)");
                qb.build().execute(c).await?.rows_affected()
            });

            let changed = in_tx!(&mut tx, |c, _d| {
                let mut qb = QueryBuilder::new(
                    "WITH v(id, owner, status, attempts, next_at, code, error, at) AS (",
                );
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(&r.delivery_id)
                        .push_bind(&r.lease_owner)
                        .push_bind(r.new_status.as_str())
                        .push_bind(r.number)
                        .push_bind(r.next_attempt_at)
                        .push_bind(r.status_code)
                        .push_bind(&r.error_kind)
                        .push_bind(r.at);
                });
                qb.push(
                    ") UPDATE deliveries SET attempt_count = v.attempts,
                 status = CASE WHEN v.status = 'retrying' AND NOT ",
                );
                qb.push(super::deliveries::SENDABLE);
                qb.push(
                    " THEN 'held' ELSE v.status END,
                 next_attempt_at = v.next_at, lease_until = NULL, lease_owner = NULL,
                 last_status_code = v.code, last_error = v.error, updated_at = v.at
                 FROM v WHERE deliveries.id = v.id AND deliveries.status = 'delivering'
                 AND deliveries.lease_owner = v.owner",
                );
                qb.build().execute(c).await?.rows_affected() as usize
            });
            stale += chunk.len().saturating_sub(changed);
        }
        for r in batch {
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
                    in_tx!(&mut tx, |c, d| {
                        sqlx::query(&d.sql("UPDATE endpoints SET enabled = FALSE, disabled_reason = ?, last_attempt_at = ?, updated_at = ?
                         WHERE id = ?"))
                    .bind(reason)
                    .bind(r.at)
                    .bind(r.at)
                    .bind(&r.endpoint_id)
                    .execute(c)
                    .await?
                    .rows_affected()
                    });
                    let (_, more) = super::deliveries::hold_waiting(
                        &mut tx,
                        &r.shop_id,
                        Some(&r.endpoint_id),
                        r.at,
                    )
                    .await?;
                    bulk_written |= more;
                }
                EndpointEffect::Delete(reason) => {
                    // Marked deleted, not removed: the cascade would take the deliveries and
                    // this very attempt, the owner's only record of what happened.
                    in_tx!(&mut tx, |c, d| sqlx::query(&d.sql(
                        "UPDATE endpoints SET enabled = FALSE, deleted_at = ?, disabled_reason = ?,
                         last_attempt_at = ?, updated_at = ? WHERE id = ?",
                    ))
                    .bind(r.at)
                    .bind(reason)
                    .bind(r.at)
                    .bind(r.at)
                    .bind(&r.endpoint_id)
                    .execute(c)
                    .await?
                    .rows_affected());
                    let (_, more) = super::deliveries::change_deliveries(
                        &mut tx,
                        &r.shop_id,
                        Some(&r.endpoint_id),
                        super::bulk::BulkKind::Cancel,
                        &["pending", "retrying", "held"],
                        r.at,
                    )
                    .await?;
                    bulk_written |= more;
                }
            }
        }
        add_hourly_counts(&mut tx, batch).await?;
        // Every endpoint's health in one statement: a statement per endpoint would be a round
        // trip each to the writer.
        // In endpoint order: nodes recording at once lock the rows they share in the same
        // order (PostgreSQL), so they cannot deadlock on them.
        let mut health: Vec<_> = health.into_iter().collect();
        health.sort_unstable_by_key(|(endpoint, _)| *endpoint);
        for chunk in health.chunks(500) {
            in_tx!(&mut tx, |c, _d| {
                let mut qb = QueryBuilder::new("WITH v(id, failing, first_failure, at) AS (");
                qb.push_values(chunk, |mut b, (endpoint, (failing, first_failure, at))| {
                    b.push_bind(*endpoint)
                        .push_bind(*failing)
                        .push_bind(first_failure.unwrap_or(*at))
                        .push_bind(*at);
                });
                qb.push(
                ") UPDATE endpoints SET last_attempt_at = v.at,
                 failing_since = CASE WHEN v.failing THEN COALESCE(failing_since, v.first_failure) END
                 FROM v WHERE endpoints.id = v.id",
            );
                qb.build().execute(c).await?.rows_affected()
            });
        }
        tx.commit().await?;
        if bulk_written {
            self.signal_bulk();
        }
        Ok(stale)
    }

    pub async fn attempts_of_delivery(
        &self,
        shop_id: &ShopId,
        delivery_id: &DeliveryId,
    ) -> Result<Vec<AttemptRow>> {
        let rows: Vec<StoredAttempt> = on_reader!(self, |pool, d| {
            sqlx::query_as(&d.sql(&format!(
                "{STORED_ATTEMPT} WHERE a.shop = {SHOP_NUM} AND a.delivery_id = ? ORDER BY a.number, a.id"
            )))
            .bind(shop_id)
            .bind(delivery_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|a| a.read().attempt).collect())
    }
}

/// An attempt with its delivery's event type, for the Logs page.
#[derive(Debug, Clone)]
pub struct AttemptLogRow {
    pub attempt: AttemptRow,
    pub event_type: String,
}

impl Store {
    /// A shop's attempts, newest first; `before` is the last id of the previous page.
    pub async fn attempts_of_shop(
        &self,
        shop_id: &ShopId,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AttemptLogRow>> {
        let rows: Vec<StoredAttempt> = on_reader!(self, |pool, d| {
            sqlx::query_as(&d.sql(&format!(
                "{STORED_ATTEMPT} WHERE a.shop = {SHOP_NUM} AND (? IS NULL OR a.id < ?)
                 ORDER BY a.id DESC LIMIT ?"
            )))
            .bind(shop_id)
            .bind(before)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(StoredAttempt::read).collect())
    }

    pub async fn attempt(&self, shop_id: &ShopId, id: i64) -> Result<Option<AttemptLogRow>> {
        let row: Option<StoredAttempt> = on_reader!(self, |pool, d| {
            sqlx::query_as(&d.sql(&format!(
                "{STORED_ATTEMPT} WHERE a.shop = {SHOP_NUM} AND a.id = ?"
            )))
            .bind(shop_id)
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(StoredAttempt::read))
    }

    /// Per endpoint of a shop: attempts since `since` and how many succeeded, from the
    /// hourly counters (the hour `since` falls in counts whole).
    pub async fn endpoint_success(
        &self,
        shop_id: &ShopId,
        since: i64,
    ) -> Result<Vec<(String, i64, i64)>> {
        Ok(self
            .endpoint_figures(shop_id, since)
            .await?
            .into_iter()
            .map(|(e, attempts, failed, _)| (e, attempts - failed, attempts))
            .collect())
    }

    /// Per endpoint of a shop since `since`, from the hourly counters: (endpoint id, attempts,
    /// failed, milliseconds they took in all).
    pub async fn endpoint_figures(
        &self,
        shop_id: &ShopId,
        since: i64,
    ) -> Result<Vec<(String, i64, i64, i64)>> {
        let mut per: std::collections::BTreeMap<String, (i64, i64, i64)> = Default::default();
        for (_, what, n) in self.hourly_counts(Some(shop_id), since).await? {
            let Some((kind, endpoint)) = what.split_once(':') else {
                continue;
            };
            let entry = per.entry(endpoint.to_string()).or_default();
            match kind {
                "ok" => entry.0 += n,
                "fail" => {
                    entry.0 += n;
                    entry.1 += n;
                }
                "ms" => entry.2 += n,
                _ => {}
            }
        }
        Ok(per
            .into_iter()
            .filter(|(_, (attempts, _, _))| *attempts > 0)
            .map(|(e, (attempts, failed, ms))| (e, attempts, failed, ms))
            .collect())
    }

    /// Attempts of a shop since `since`, succeeded and failed, per bucket of `bucket_ms` (a
    /// whole number of hours), from the hourly counters: (bucket number, succeeded, failed).
    pub async fn attempt_buckets(
        &self,
        shop_id: &ShopId,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<(i64, i64, i64)>> {
        let mut per: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
        for (hour, what, n) in self.hourly_counts(Some(shop_id), since).await? {
            let entry = per.entry(hour / bucket_ms).or_default();
            if what.starts_with("ok:") {
                entry.0 += n;
            } else if what.starts_with("fail:") {
                entry.1 += n;
            }
        }
        Ok(per
            .into_iter()
            .map(|(b, (ok, failed))| (b, ok, failed))
            .collect())
    }
}
