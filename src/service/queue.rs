//! The webhook queue as people see it: deliveries with filters and keyset pagination, one
//! delivery with its attempts, manual and bulk retry, cancel; channels and alerts.

use super::endpoints::priority_name;
use super::{iso, iso_opt, require_manage, require_read, Service};
use crate::engine::catalog;
use crate::ids::{new_id, now_ms};
use crate::ids::{AlertId, DeliveryId, EndpointId, EventId, ShopId};
use crate::store::attempts::AttemptRow;
use crate::store::deliveries::{DeliveryFilter, DeliveryRow};
use crate::store::events::{GroupOutcome, NewEvent, PublishRequest, Target};
use app::backend::ServiceResult;
use app::dto::{
    AlertView, AttemptView, BulkChangeView, ChannelView, DeliveryView, HttpMessage, Page,
};
use app::model::{Principal, ServiceError};

use app::model::DeliveryStatus;

pub fn delivery_view(d: &DeliveryRow, attempts: Option<Vec<AttemptView>>) -> DeliveryView {
    DeliveryView {
        id: d.id.to_string(),
        event_id: d.event_id.to_string(),
        endpoint_id: d.endpoint_id.to_string(),
        event_type: d.event_type.clone(),
        channels: d.channels.0.clone(),
        status: d.status.clone(),
        attempt_count: d.attempt_count,
        next_attempt_at: iso_opt(
            d.next_attempt_at
                .filter(|_| matches!(d.status.as_str(), "pending" | "retrying")),
        ),
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        priority: priority_name(d.priority).into(),
        created_at: iso(d.created_at),
        updated_at: iso(d.updated_at),
        attempts,
    }
}

pub fn attempt_view(a: &AttemptRow) -> AttemptView {
    let json = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
    AttemptView {
        number: a.number,
        status_code: a.status_code,
        error_kind: a.error_kind.clone(),
        error_message: a.error_message.clone(),
        duration_ms: a.duration_ms,
        request: HttpMessage {
            headers: json(&a.request_headers),
            body: a.request_body.clone(),
        },
        response: a.response_headers.as_deref().map(|h| HttpMessage {
            headers: json(h),
            body: a.response_body.clone().unwrap_or_default(),
        }),
        at: iso(a.at),
    }
}

/// Keyset pagination: the store was asked for `limit + 1` rows; keep `limit` and, when there
/// were more, the last kept row's id is the cursor for the next page.
pub(crate) fn split_page<R>(
    mut rows: Vec<R>,
    limit: i64,
    id: impl Fn(&R) -> String,
) -> (Vec<R>, Option<String>) {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        let cursor = rows.last().map(id);
        (rows, cursor)
    } else {
        (rows, None)
    }
}

/// Checks a filter's values; the error names the query parameter.
pub fn check_filter(f: &DeliveryFilter) -> ServiceResult<()> {
    if let Some(s) = &f.status {
        if DeliveryStatus::parse(s).is_none() {
            let names: Vec<_> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
            return Err(ServiceError::invalid(
                "status",
                format!("must be one of {}", names.join(", ")),
            ));
        }
    }
    Ok(())
}

impl Service {
    /// A delivery id from outside (a URL, a cursor), as the store finds it: the ids of
    /// deliveries made before keys still find them.
    pub(super) async fn delivery_id(&self, id: &str) -> ServiceResult<DeliveryId> {
        if id.len() > 64 {
            return Ok(DeliveryId::from(""));
        }
        Ok(self
            .store
            .canonical_delivery_id(&DeliveryId::from(id))
            .await?)
    }

    pub async fn list_deliveries(
        &self,
        who: &Principal,
        shop_id: &str,
        filter: &DeliveryFilter,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> ServiceResult<Page<DeliveryView>> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        check_filter(filter)?;
        let limit = limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ServiceError::invalid("limit", "must be between 1 and 500"));
        }
        let cursor = match cursor {
            Some(c) => Some(self.delivery_id(c).await?),
            None => None,
        };
        if cursor.as_ref().is_some_and(|c| c.key().is_none()) {
            return Err(ServiceError::invalid(
                "cursor",
                "is not a cursor from a previous page",
            ));
        }
        let rows = self
            .store
            .list_deliveries(shop_id, filter, cursor.as_ref(), limit + 1)
            .await?;
        let (rows, next_cursor) = split_page(rows, limit, |r| r.id.to_string());
        Ok(Page {
            items: rows.iter().map(|d| delivery_view(d, None)).collect(),
            next_cursor,
        })
    }

    pub async fn count_deliveries(
        &self,
        who: &Principal,
        shop_id: &str,
        filter: &DeliveryFilter,
    ) -> ServiceResult<i64> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        check_filter(filter)?;
        self.store
            .count_deliveries(shop_id, filter, app::dto::COUNT_CAP)
            .await
            .map_err(ServiceError::from)
    }

    pub async fn get_delivery(
        &self,
        who: &Principal,
        shop_id: &str,
        id: &str,
    ) -> ServiceResult<DeliveryView> {
        let shop_id = &ShopId::from(shop_id);
        let id = &self.delivery_id(id).await?;
        require_read(who, shop_id)?;
        let d = self
            .store
            .delivery(shop_id, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("No delivery with id {id}.")))?;
        let attempts = self.store.attempts_of_delivery(shop_id, id).await?;
        Ok(delivery_view(
            &d,
            Some(attempts.iter().map(attempt_view).collect()),
        ))
    }

    pub async fn retry_delivery(
        &self,
        who: &Principal,
        shop_id: &str,
        id: &str,
    ) -> ServiceResult<DeliveryView> {
        let shop_id = &ShopId::from(shop_id);
        let id = &self.delivery_id(id).await?;
        require_manage(who, shop_id)?;
        self.require_webhooks_on(shop_id).await?;
        match self.store.retry_delivery(shop_id, id, now_ms()).await? {
            None => Err(ServiceError::NotFound(format!("No delivery with id {id}."))),
            Some(false) => Err(ServiceError::Conflict(
                "This delivery cannot be retried now: it is still queued or in flight, its endpoint is disabled, or the shop's webhooks are off.".into(),
            )),
            Some(true) => {
                self.engine.announce();
                self.get_delivery(who, shop_id, id).await
            }
        }
    }

    pub async fn cancel_delivery(
        &self,
        who: &Principal,
        shop_id: &str,
        id: &str,
    ) -> ServiceResult<DeliveryView> {
        let shop_id = &ShopId::from(shop_id);
        let id = &self.delivery_id(id).await?;
        require_manage(who, shop_id)?;
        let now = now_ms();
        // Read ahead but not yet being sent: taken out of its ready queue and cancelled.
        if let Some(lease) = self.engine.take_queued(shop_id, id).await {
            self.store.cancel_leased(&[lease], now).await?;
        } else if self.ask_holder_to_cancel(shop_id, id).await? {
            return self.get_delivery(who, shop_id, id).await;
        }
        match self.store.cancel_delivery(shop_id, id, now).await? {
            None => Err(ServiceError::NotFound(format!("No delivery with id {id}."))),
            Some(true) => self.get_delivery(who, shop_id, id).await,
            Some(false) => {
                let view = self.get_delivery(who, shop_id, id).await?;
                match view.status.as_str() {
                    "cancelled" => Ok(view),
                    "delivering" => Err(ServiceError::Conflict(
                        "This delivery is being sent right now; it can be cancelled once the attempt ends.".into(),
                    )),
                    _ => Err(ServiceError::Conflict(
                        "Only a pending, retrying or held delivery can be cancelled.".into(),
                    )),
                }
            }
        }
    }

    /// A delivery leased by another node: that node is asked to cancel it if it is still
    /// only read ahead there. True when it did (within two seconds).
    async fn ask_holder_to_cancel(&self, shop_id: &ShopId, id: &DeliveryId) -> ServiceResult<bool> {
        let Some(d) = self.store.delivery(shop_id, id).await? else {
            return Ok(false);
        };
        let owner = self.store.lease_owner(shop_id, id).await?;
        let Some(owner) = owner.filter(|o| d.status == "delivering" && !self.engine.holds_lease(o))
        else {
            return Ok(false);
        };
        self.store.notify_cancel(shop_id, id).await?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            match self.store.delivery(shop_id, id).await? {
                Some(d) if d.status == "cancelled" => return Ok(true),
                Some(d) if d.status == "delivering" => {
                    // Still leased under the same token: the holder may still answer.
                    if self.store.lease_owner(shop_id, id).await?.as_deref() != Some(&owner) {
                        return Ok(false);
                    }
                }
                _ => return Ok(false),
            }
        }
        Ok(false)
    }

    /// Retries every delivery matching the filter (failed ones unless a status is given).
    pub async fn bulk_retry(
        &self,
        who: &Principal,
        shop_id: &str,
        filter: &DeliveryFilter,
    ) -> ServiceResult<u64> {
        let shop_id = &ShopId::from(shop_id);
        require_manage(who, shop_id)?;
        check_filter(filter)?;
        self.require_webhooks_on(shop_id).await?;
        if let Some(s) = &filter.status {
            if !DeliveryStatus::parse(s).is_some_and(DeliveryStatus::is_final) {
                return Err(ServiceError::invalid(
                    "status",
                    "bulk retry applies to failed, succeeded or cancelled deliveries",
                ));
            }
        }
        let n = self.store.bulk_retry(shop_id, filter, now_ms()).await?;
        self.engine.announce();
        tracing::info!(%shop_id, retried = n, "bulk retry");
        Ok(n)
    }

    /// Sends a sample event of a type to one endpoint only (the type defaults to the
    /// endpoint's first, or order.created).
    pub async fn send_test(
        &self,
        who: &Principal,
        shop_id: &str,
        endpoint_id: &str,
        event_type: Option<String>,
    ) -> ServiceResult<(String, String)> {
        let shop_id = &ShopId::from(shop_id);
        let endpoint_id = &EndpointId::from(endpoint_id);
        require_manage(who, shop_id)?;
        self.require_webhooks_on(shop_id).await?;
        let ep = self.endpoint_row(shop_id, endpoint_id).await?;
        let types: &[String] = &ep.event_types;
        let name = event_type
            .or_else(|| types.first().cloned())
            .unwrap_or_else(|| "order.created".into());
        if !catalog::valid_name(&name) {
            return Err(ServiceError::invalid(
                "event_type",
                "is not a valid event type",
            ));
        }
        // A type the catalog knows sends its sample; any other valid name sends `{}`.
        let sample = match self.event_type(who, shop_id, &name).await {
            Ok(t) => t.sample,
            Err(_) => serde_json::json!({}),
        };
        let ev = NewEvent {
            id: EventId::from(new_id("evt_test")),
            event_type: name,
            channels: sqlx::types::Json(vec![]),
            data: sample.to_string(),
            entity_key: None,
            priority: Some(0),
            targets: vec![Target {
                endpoint_id: ep.id.clone(),
                priority: 0,
                unique_pending: false,
            }],
        };
        // Through the group committer, as any publish: what follows the commit (waking the
        // engine, the activity feed) runs there, whether or not this request is still waiting.
        let after: super::group_commit::AfterCommit = {
            let engine = self.engine.clone();
            Box::new(move |c| {
                if let GroupOutcome::Published(published) = &c.outcome {
                    engine.announce();
                    super::events::announce(
                        &engine,
                        &c.request.shop_id,
                        published,
                        &c.request.events,
                        c.at,
                    );
                }
            })
        };
        let request = PublishRequest {
            shop_id: shop_id.clone(),
            config_version: None,
            events: vec![ev],
            discovered: Vec::new(),
        };
        let committed = self.group.submit(request, after).await?;
        let GroupOutcome::Published(published) = committed.outcome else {
            return Err(ServiceError::Internal);
        };
        let p = published.into_iter().next().ok_or(ServiceError::Internal)?;
        let delivery = p
            .deliveries
            .into_iter()
            .next()
            .ok_or(ServiceError::Internal)?;
        Ok((p.id.into(), delivery.into()))
    }

    /// A shop's bulk changes being worked through, and those finished in the last minute.
    pub async fn bulk_changes(
        &self,
        who: &Principal,
        shop_id: &str,
    ) -> ServiceResult<Vec<BulkChangeView>> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        let rows = self.store.bulk_changes(shop_id, now_ms()).await?;
        Ok(rows
            .into_iter()
            .map(|b| BulkChangeView {
                finished: b.finished_at.is_some(),
                id: b.id,
                kind: b.kind,
                status: b.status,
                endpoint_id: b.endpoint_id,
                total: b.total,
                done: b.done,
                created_at: iso(b.created_at),
            })
            .collect())
    }

    /// Channels in use: on endpoints or on delivered events, with their endpoints.
    pub async fn channels(
        &self,
        who: &Principal,
        shop_id: &str,
    ) -> ServiceResult<Vec<ChannelView>> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        let endpoints = self.store.endpoints_of_shop(shop_id).await?;
        let counts = self.store.channel_counts(shop_id).await?;
        let mut names: Vec<String> = counts.iter().map(|(n, _)| n.clone()).collect();
        for e in &endpoints {
            names.extend(e.channels.iter().cloned());
        }
        names.sort();
        names.dedup();
        Ok(names
            .into_iter()
            .map(|name| ChannelView {
                endpoints: endpoints
                    .iter()
                    .filter(|e| e.channels.contains(&name))
                    .map(|e| e.id.to_string())
                    .collect(),
                deliveries: counts
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, c)| *c)
                    .unwrap_or(0),
                name,
            })
            .collect())
    }

    pub async fn alerts(
        &self,
        who: &Principal,
        shop_id: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> ServiceResult<Page<AlertView>> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        let rows = self
            .store
            .alerts_of_shop(shop_id, cursor, limit + 1)
            .await?;
        let (rows, next_cursor) = split_page(rows, limit, |r| r.id.to_string());
        Ok(Page {
            items: rows
                .into_iter()
                .map(|a| AlertView {
                    id: a.id.into(),
                    kind: a.kind,
                    endpoint_id: a.endpoint_id.map(String::from),
                    delivery_id: a.delivery_id,
                    message: a.message,
                    created_at: iso(a.created_at),
                    acknowledged: a.acknowledged_at.is_some(),
                })
                .collect(),
            next_cursor,
        })
    }

    pub async fn acknowledge_alert(
        &self,
        who: &Principal,
        shop_id: &str,
        id: &str,
    ) -> ServiceResult<()> {
        let shop_id = &ShopId::from(shop_id);
        let id = &AlertId::from(id);
        require_manage(who, shop_id)?;
        if self.store.acknowledge_alert(shop_id, id, now_ms()).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!("No alert with id {id}.")))
        }
    }
}
