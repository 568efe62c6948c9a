//! What only the panel asks for: template previews, the Logs list, settings, API keys and the
//! dashboard. Same rules as everything else: each method checks the principal first.

use super::queue::attempt_view;
use super::{iso, iso_opt, require_manage, require_read, Service};
use crate::domain::retry::RetryPolicy;
use crate::domain::template::{self, ContentType, EventContext};
use crate::ids::now_ms;
use crate::ids::{ApiKeyId, EndpointId, ShopId};
use crate::store::attempts::AttemptLogRow;
use crate::store::deliveries::DeliveryFilter;
use app::backend::ServiceResult;
use app::dto::*;
use app::model::{Principal, ServiceError};

/// The queue's filters from the panel, checked like the API's query parameters.
pub fn filter_from_query(q: &DeliveryQuery) -> ServiceResult<DeliveryFilter> {
    let time = |field: &str, v: &Option<String>| -> ServiceResult<Option<i64>> {
        let Some(v) = v.as_deref().filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if let Ok(ms) = v.parse::<i64>() {
            return Ok(Some(ms));
        }
        // The browser's datetime-local input has no zone: read it as UTC.
        let text = if v.len() == 16 {
            format!("{v}:00Z")
        } else {
            v.to_string()
        };
        time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map(|t| Some((t.unix_timestamp_nanos() / 1_000_000) as i64))
            .map_err(|_| ServiceError::invalid(field, "must be a date and time"))
    };
    let text = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    Ok(DeliveryFilter {
        status: text(&q.status),
        endpoint_id: text(&q.endpoint_id).map(EndpointId::from),
        event_type: text(&q.event_type),
        channel: text(&q.channel),
        since: time("since", &q.since)?,
        until: time("until", &q.until)?,
    })
}

fn log_view(r: &AttemptLogRow) -> AttemptLogView {
    AttemptLogView {
        id: r.attempt.id,
        delivery_id: r.attempt.delivery_id.to_string(),
        endpoint_id: r.attempt.endpoint_id.to_string(),
        event_type: r.event_type.clone(),
        number: r.attempt.number,
        status_code: r.attempt.status_code,
        error_kind: r.attempt.error_kind.clone(),
        duration_ms: r.attempt.duration_ms,
        at: iso(r.attempt.at),
    }
}

/// Most deliveries one selection action (retry or cancel the selected) may name: each is a
/// statement on the writer, and the Queue page selects at most a page of them.
pub const MAX_SELECTED: usize = 500;

impl Service {
    /// Renders a template against an event type's sample, as the endpoint would send it.
    pub async fn preview_template(
        &self,
        who: &Principal,
        shop_id: &str,
        event_type: &str,
        content_type: &str,
        tpl: &str,
    ) -> ServiceResult<PreviewView> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        let sample = self
            .event_type(who, shop_id, event_type)
            .await
            .map(|t| t.sample)
            .unwrap_or_else(|_| serde_json::json!({}));
        let ct = ContentType::parse(content_type).unwrap_or_default();
        let channels = vec!["client_42".to_string()];
        let ctx = EventContext {
            event_id: "evt_preview",
            event_type,
            timestamp: now_ms() / 1000,
            channels: &channels,
            data: &sample,
        };
        let merge_fields = template::merge_fields(&sample);
        if tpl.trim().is_empty() {
            let envelope = template::default_envelope(&ctx);
            return Ok(PreviewView {
                body: serde_json::from_str::<serde_json::Value>(&envelope)
                    .and_then(|v| serde_json::to_string_pretty(&v))
                    .unwrap_or(envelope),
                error: None,
                merge_fields,
            });
        }
        let (body, error) = template::preview(tpl, ct, &ctx, self.limits.max_body_bytes());
        Ok(PreviewView {
            body,
            error,
            merge_fields,
        })
    }

    pub async fn list_attempts(
        &self,
        who: &Principal,
        shop_id: &str,
        cursor: Option<i64>,
        limit: i64,
    ) -> ServiceResult<Page<AttemptLogView>> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        let rows = self
            .store
            .attempts_of_shop(shop_id, cursor, limit + 1)
            .await?;
        let (rows, next_cursor) =
            super::queue::split_page(rows, limit, |r| r.attempt.id.to_string());
        Ok(Page {
            items: rows.iter().map(log_view).collect(),
            next_cursor,
        })
    }

    pub async fn get_attempt(
        &self,
        who: &Principal,
        shop_id: &str,
        id: i64,
    ) -> ServiceResult<(AttemptLogView, AttemptView)> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        let row = self
            .store
            .attempt(shop_id, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("No attempt with id {id}.")))?;
        Ok((log_view(&row), attempt_view(&row.attempt)))
    }

    pub async fn settings(&self, who: &Principal, shop_id: &str) -> ServiceResult<ShopSettings> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        let s = self.existing_shop(shop_id).await?;
        Ok(ShopSettings {
            failed_retention_hours: s.failed_retention_hours,
            log_retention_days: s.log_retention_days,
            require_https: s.require_https,
            default_retry: serde_json::to_value(&*s.default_retry).unwrap_or_default(),
        })
    }

    pub async fn save_settings(
        &self,
        who: &Principal,
        shop_id: &str,
        s: ShopSettings,
    ) -> ServiceResult<()> {
        let shop_id = &ShopId::from(shop_id);
        require_manage(who, shop_id)?;
        if !(1..=24 * 365).contains(&s.failed_retention_hours) {
            return Err(ServiceError::invalid(
                "failed_retention_hours",
                "must be between 1 and 8760",
            ));
        }
        if !(1..=3650).contains(&s.log_retention_days) {
            return Err(ServiceError::invalid(
                "log_retention_days",
                "must be between 1 and 3650",
            ));
        }
        let policy: RetryPolicy = serde_json::from_value(s.default_retry).map_err(|e| {
            ServiceError::invalid("default_retry", format!("is not a retry policy ({e})"))
        })?;
        policy
            .validate()
            .map_err(|(f, m)| ServiceError::invalid(&f, m))?;
        self.store
            .update_shop_settings(
                shop_id,
                s.failed_retention_hours,
                s.log_retention_days,
                s.require_https,
                &policy,
            )
            .await?;
        Ok(())
    }

    pub async fn api_keys(&self, who: &Principal, shop_id: &str) -> ServiceResult<Vec<ApiKeyView>> {
        let shop_id = &ShopId::from(shop_id);
        require_manage(who, shop_id)?;
        let rows = self.store.api_keys_of_shop(shop_id).await?;
        Ok(rows
            .into_iter()
            .map(|k| ApiKeyView {
                id: k.id.into(),
                name: k.name,
                prefix: k.key_prefix,
                created_at: iso(k.created_at),
                last_used_at: iso_opt(k.last_used_at),
                revoked: k.revoked_at.is_some(),
            })
            .collect())
    }

    pub async fn revoke_api_key(
        &self,
        who: &Principal,
        shop_id: &str,
        id: &str,
    ) -> ServiceResult<()> {
        let shop_id = &ShopId::from(shop_id);
        let id = &ApiKeyId::from(id);
        require_manage(who, shop_id)?;
        if self.store.revoke_api_key(shop_id, id).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound(
                "No active API key with that id.".into(),
            ))
        }
    }

    /// Retries or cancels each of the given deliveries that allows it.
    pub async fn act_on_deliveries(
        &self,
        who: &Principal,
        shop_id: &str,
        ids: &[String],
        cancel: bool,
    ) -> ServiceResult<u64> {
        let shop_id = &ShopId::from(shop_id);
        require_manage(who, shop_id)?;
        if ids.len() > MAX_SELECTED {
            return Err(ServiceError::invalid(
                "ids",
                format!(
                    "{} deliveries were selected; at most {MAX_SELECTED} may be acted on at once \
                     (retry a whole filter with Retry all failed)",
                    ids.len()
                ),
            ));
        }
        if !cancel {
            self.require_webhooks_on(shop_id).await?;
        }
        let now = now_ms();
        let mut changed = 0;
        for id in ids {
            let id = &self.delivery_id(id).await?;
            let done = if cancel {
                self.store.cancel_delivery(shop_id, id, now).await
            } else {
                self.store.retry_delivery(shop_id, id, now).await
            }?;
            changed += u64::from(done == Some(true));
        }
        self.engine.announce();
        Ok(changed)
    }

    pub async fn dashboard(&self, who: &Principal, shop_id: &str) -> ServiceResult<DashboardView> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        let now = now_ms();
        let hour = 3_600_000;
        let day = 24 * hour;
        let buckets =
            |rows: Vec<(i64, i64, i64)>, size: i64, count: i64, fmt: &dyn Fn(i64) -> String| {
                let first = now / size - (count - 1);
                (0..count)
                    .map(|i| {
                        let b = first + i;
                        let (ok, failed) = rows
                            .iter()
                            .find(|(k, _, _)| *k == b)
                            .map(|(_, o, f)| (*o, *f))
                            .unwrap_or((0, 0));
                        Bucket {
                            label: fmt(b * size),
                            succeeded: ok,
                            failed,
                            from_ms: b * size,
                            to_ms: (b + 1) * size,
                        }
                    })
                    .collect::<Vec<_>>()
            };
        let hourly = self.store.attempt_buckets(shop_id, now - day, hour).await?;
        let daily = self
            .store
            .attempt_buckets(shop_id, now - 7 * day, day)
            .await?;
        let last_24h = buckets(hourly, hour, 24, &|ms| iso(ms)[11..16].to_string());
        let last_7d = buckets(daily, day, 7, &|ms| iso(ms)[5..10].to_string());
        let (queue, lag) = self.store.shop_queue(shop_id, now).await?;
        let endpoints = self.list_endpoints(who, shop_id).await?;
        let endpoint_count = endpoints.len() as i64;
        let names: std::collections::HashMap<String, String> = endpoints
            .iter()
            .map(|e| (e.id.clone(), e.name().to_string()))
            .collect();
        let (disabled, enabled): (Vec<_>, Vec<_>) = endpoints.into_iter().partition(|e| !e.enabled);
        let failing = enabled
            .into_iter()
            .filter(|e| e.failing_since.is_some())
            .collect();
        let alerts = self.alerts(who, shop_id, None, 5).await?.items;
        let queue_last_hour = self.queue_last_hour(shop_id, now).await?;
        let (slowest, most_failing) = self.endpoint_rankings(shop_id, now - day, &names).await?;
        Ok(DashboardView {
            last_24h,
            last_7d,
            queue,
            lag_seconds: lag.map(|l| l as f64 / 1000.0).unwrap_or(0.0),
            failing_endpoints: failing,
            disabled_endpoints: disabled,
            recent_alerts: alerts,
            queue_last_hour,
            slowest_endpoints: slowest,
            most_failing_endpoints: most_failing,
            endpoint_count,
            public_url: self.public_url.clone(),
        })
    }

    /// The shop's queue minute by minute over the hour up to `now`: minutes without a sample
    /// had nothing waiting.
    async fn queue_last_hour(&self, shop_id: &ShopId, now: i64) -> ServiceResult<Vec<QueueSample>> {
        const MINUTE: i64 = crate::store::counters::MINUTE_MS;
        let first = now / MINUTE - 59;
        let samples = self.store.queue_samples(shop_id, first * MINUTE).await?;
        Ok((first..=now / MINUTE)
            .map(|m| {
                let (depth, lag) = samples
                    .iter()
                    .find(|(at, _, _)| *at == m * MINUTE)
                    .map(|(_, d, l)| (*d, *l))
                    .unwrap_or((0, 0));
                QueueSample {
                    label: iso(m * MINUTE)[11..16].to_string(),
                    depth,
                    lag_seconds: lag as f64 / 1000.0,
                }
            })
            .collect())
    }

    /// The five slowest endpoints (mean attempt time) and the five with most failed attempts
    /// since `since`, of those the shop still has.
    async fn endpoint_rankings(
        &self,
        shop_id: &ShopId,
        since: i64,
        names: &std::collections::HashMap<String, String>,
    ) -> ServiceResult<(Vec<EndpointFigure>, Vec<EndpointFigure>)> {
        let figures: Vec<EndpointFigure> = self
            .store
            .endpoint_figures(shop_id, since)
            .await?
            .into_iter()
            .filter_map(|(id, attempts, failed, ms)| {
                Some(EndpointFigure {
                    name: names.get(&id)?.clone(),
                    id,
                    attempts,
                    failed,
                    mean_ms: ms / attempts.max(1),
                })
            })
            .collect();
        let mut slowest = figures.clone();
        slowest.sort_by(|a, b| b.mean_ms.cmp(&a.mean_ms).then(a.name.cmp(&b.name)));
        slowest.truncate(5);
        let mut failing: Vec<_> = figures.into_iter().filter(|f| f.failed > 0).collect();
        failing.sort_by(|a, b| b.failed.cmp(&a.failed).then(a.name.cmp(&b.name)));
        failing.truncate(5);
        Ok((slowest, failing))
    }
}
