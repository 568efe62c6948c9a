//! Publishing events (fan-out to matching endpoints, idempotent on the event id) and the
//! event catalog.

use super::publish_cache::{PublishConfig, Subscriber};
use super::{iso, require_manage, require_read, Service};
use crate::engine::activity::Activity;
use crate::engine::catalog;
use crate::engine::Engine;
use crate::ids::now_ms;
use crate::ids::ApiKeyId;
use crate::ids::{EventId, ShopId};
use crate::store::event_types::EventTypeRow;
use crate::store::events::{EventRow, GroupOutcome, NewEvent, PublishRequest, Published, Target};
use app::backend::ServiceResult;
use app::dto::{EventTypeView, EventView};
use app::model::{Principal, ServiceError};
use serde::Deserialize;
use sqlx::types::Json;
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: serde_json::Value,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub entity_key: Option<String>,
}

use crate::store::event_types::MAX_EVENT_TYPES;

/// Largest sample payload (and schema) an event type may keep, as compact JSON. A type
/// discovered on publish keeps its first payload as its sample only when it fits.
pub const MAX_SAMPLE_BYTES: usize = 64 * 1024;

/// Event ids given by the publisher: 1–200 characters of letters, digits and `_-.:`.
fn valid_event_id(id: &str) -> bool {
    (1..=200).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

/// True when an endpoint wants an event of this type with these channels: its event types are
/// empty (all) or list the type; its channels are empty (all) or share one with the event.
pub fn endpoint_matches(
    event_types: &[String],
    channels: &[String],
    ev_type: &str,
    ev_channels: &[String],
) -> bool {
    let type_ok = event_types.is_empty() || event_types.iter().any(|t| t == ev_type || t == "*");
    let channel_ok = channels.is_empty() || channels.iter().any(|c| ev_channels.contains(c));
    type_ok && channel_ok
}

/// What an owner may set on an event type; absent fields keep their value.
#[derive(Debug, Clone, Default)]
pub struct EventTypeFields {
    pub description: Option<String>,
    pub sample: Option<serde_json::Value>,
    pub schema: Option<serde_json::Value>,
}

/// Each event with one target per subscribing endpoint, and the event types not seen before
/// (with the first payload of each as its sample).
fn fan_out(
    config: &PublishConfig,
    parsed: &[(NewEvent, serde_json::Value)],
) -> (Vec<NewEvent>, Vec<(String, String)>) {
    let mut discovered: Vec<(String, String)> = Vec::new();
    let mut events = Vec::with_capacity(parsed.len());
    for (ev, _) in parsed {
        let mut ev = ev.clone();
        ev.targets = config
            .subscribers
            .iter()
            .filter(|s| endpoint_matches(&s.event_types, &s.channels, &ev.event_type, &ev.channels))
            .map(|s| Target {
                endpoint_id: s.id.clone(),
                priority: s.priority,
                unique_pending: s.unique_pending,
            })
            .collect();
        let is_known = catalog::builtin(&ev.event_type).is_some()
            || config.knows_type(&ev.event_type)
            || discovered.iter().any(|(n, _)| *n == ev.event_type);
        if !is_known {
            let sample = if ev.data.len() <= MAX_SAMPLE_BYTES {
                ev.data.clone()
            } else {
                "{}".to_string()
            };
            discovered.push((ev.event_type.clone(), sample));
        }
        events.push(ev);
    }
    (events, discovered)
}

/// What follows a commit: the engine remembers the events and wakes their endpoints'
/// senders, the metrics count them, the activity feed hears of them.
fn after_publish(
    engine: &Engine,
    config: &PublishConfig,
    shop_id: &ShopId,
    published: &[Published],
    events: &[NewEvent],
    now: i64,
) {
    engine.remember_events(
        shop_id,
        published
            .iter()
            .zip(events)
            .filter(|(p, _)| !p.duplicate && !p.deliveries.is_empty())
            .map(|(p, ev)| EventRow {
                id: ev.id.clone(),
                event_type: ev.event_type.clone(),
                channels: ev.channels.clone(),
                data: ev.data.clone(),
                entity_key: ev.entity_key.clone(),
                deliveries: serde_json::to_string(&p.deliveries).unwrap_or_default(),
                created_at: now,
            }),
    );
    // After the events are remembered, so the claim this wakes finds them. Only enabled
    // endpoints: a disabled one holds what it gets, and waking its sender for nothing
    // costs a claim round per publish.
    engine.wake_endpoints(
        events
            .iter()
            .flat_map(|e| &e.targets)
            .map(|t| t.endpoint_id.as_str())
            .filter(|id| config.is_enabled(id)),
    );
    let fresh = published.iter().filter(|p| !p.duplicate).count();
    engine.metrics().events_published.inc_by(fresh as u64);
    announce(engine, shop_id, published, events, now);
}

/// Tells the activity feed about newly published events.
pub(super) fn announce(
    engine: &Engine,
    shop_id: &str,
    published: &[Published],
    events: &[NewEvent],
    now: i64,
) {
    if engine.activity_wanted() {
        let mut items = Vec::new();
        for (p, ev) in published.iter().zip(events) {
            if p.duplicate {
                continue;
            }
            items.push(Activity {
                shop_id: shop_id.to_string(),
                kind: "event.published".into(),
                at: now,
                event_id: p.id.to_string(),
                event_type: ev.event_type.clone(),
                delivery_id: None,
                endpoint_id: None,
                status: None,
                status_code: None,
                error_kind: None,
                attempt: Some(p.deliveries.len() as i64),
                duration_ms: None,
            });
        }
        engine.publish_activity(items);
    }
}

/// Refuses a publish that would take the shop past [`MAX_EVENT_TYPES`], naming the first
/// event of a new type.
fn check_type_room(
    config: &PublishConfig,
    events: &[NewEvent],
    discovered: &[(String, String)],
    batch: bool,
) -> ServiceResult<()> {
    let Some((first_new, _)) = discovered.first() else {
        return Ok(());
    };
    if config.type_count() + discovered.len() <= MAX_EVENT_TYPES {
        return Ok(());
    }
    let i = events
        .iter()
        .position(|e| &e.event_type == first_new)
        .unwrap_or_default();
    let field = if batch {
        format!("[{i}].type")
    } else {
        "type".to_string()
    };
    Err(ServiceError::invalid(
        &field,
        format!(
            "{first_new} would be a new event type, and the shop already has {} of the \
             {MAX_EVENT_TYPES} it may have: delete unused types in the catalog first",
            config.type_count()
        ),
    ))
}

/// Refuses a sample or schema larger than [`MAX_SAMPLE_BYTES`], naming the field.
fn check_json_size(field: &str, value: &serde_json::Value) -> ServiceResult<()> {
    let len = value.to_string().len();
    if len > MAX_SAMPLE_BYTES {
        return Err(ServiceError::invalid(
            field,
            format!("is {len} bytes as JSON; the most it may have is {MAX_SAMPLE_BYTES}"),
        ));
    }
    Ok(())
}

impl Service {
    /// Validates a batch of events; the error names the field, prefixed with the index in a
    /// batch (`items[3].type`).
    fn parse_events(
        &self,
        inputs: Vec<EventInput>,
        batch: bool,
    ) -> ServiceResult<Vec<(NewEvent, serde_json::Value)>> {
        let mut out = Vec::with_capacity(inputs.len());
        for (i, ev) in inputs.into_iter().enumerate() {
            let field = |f: &str| {
                if batch {
                    format!("[{i}].{f}")
                } else {
                    f.to_string()
                }
            };
            if !catalog::valid_name(&ev.event_type) {
                return Err(ServiceError::invalid(
                    &field("type"),
                    "must be an event type like order.created (lowercase family.action)",
                ));
            }
            if let Some(id) = &ev.id {
                if !valid_event_id(id) {
                    return Err(ServiceError::invalid(
                        &field("id"),
                        "must be 1–200 letters, digits, _ - . or :",
                    ));
                }
            }
            for (j, c) in ev.channels.iter().enumerate() {
                if !super::endpoints::valid_channel(c) {
                    return Err(ServiceError::invalid(
                        &field(&format!("channels[{j}]")),
                        "must be 1–128 letters, digits, _ - . or :",
                    ));
                }
            }
            let priority = ev
                .priority
                .as_deref()
                .map(|p| super::endpoints::parse_priority(&field("priority"), p))
                .transpose()?;
            if ev
                .entity_key
                .as_deref()
                .is_some_and(|k| k.is_empty() || k.len() > 200)
            {
                return Err(ServiceError::invalid(
                    &field("entity_key"),
                    "must be 1–200 characters",
                ));
            }
            let data = serde_json::to_string(&ev.data).unwrap_or_default();
            if data.len() > self.limits.max_event_bytes {
                return Err(ServiceError::TooLarge(format!(
                    "{}: the event data is larger than {} bytes",
                    field("data"),
                    self.limits.max_event_bytes
                )));
            }
            out.push((
                NewEvent {
                    id: ev.id.map_or_else(EventId::generate, EventId::from),
                    event_type: ev.event_type,
                    channels: sqlx::types::Json(ev.channels),
                    data,
                    entity_key: ev.entity_key,
                    priority,
                    targets: vec![],
                },
                ev.data,
            ));
        }
        Ok(out)
    }

    /// Publishes events: each is stored with one delivery per matching endpoint, in one
    /// transaction shared with other publishes that arrive meanwhile (group commit). A
    /// repeated id returns the first result and queues nothing. Nothing is answered before
    /// its commit.
    pub async fn publish(
        &self,
        who: &Principal,
        shop_id: &str,
        inputs: Vec<EventInput>,
        batch: bool,
    ) -> ServiceResult<Vec<Published>> {
        let shop_id = &ShopId::from(shop_id);
        require_manage(who, shop_id)?;
        let mut config = self.publish_config(shop_id, false).await?;
        if self.check_publisher(who, &config).is_err() {
            // A refusal is never taken from a copy: the key or the switch may have come back.
            config = self.publish_config(shop_id, true).await?;
            self.check_publisher(who, &config)?;
        }
        let parsed = self.parse_events(inputs, batch)?;
        // A configuration that changed since it was read is read again; it changes only when
        // someone edits the shop, so a second round is rare and a fifth means something is
        // wrong.
        for round in 0..5 {
            if round > 0 {
                config = self.publish_config(shop_id, true).await?;
                self.check_publisher(who, &config)?;
            }
            let (events, discovered) = fan_out(&config, &parsed);
            check_type_room(&config, &events, &discovered, batch)?;
            // What follows the commit runs in the committer (see `AfterCommit`).
            let after: super::group_commit::AfterCommit = {
                let (engine, config, shop_id) =
                    (self.engine.clone(), config.clone(), shop_id.clone());
                Box::new(move |c| {
                    if let GroupOutcome::Published(published) = &c.outcome {
                        let discovered = c.request.discovered.iter().map(|(n, _)| n.as_str());
                        config.learn_types(discovered);
                        after_publish(
                            &engine,
                            &config,
                            &shop_id,
                            published,
                            &c.request.events,
                            c.at,
                        );
                    }
                })
            };
            let committed = self
                .group
                .submit(
                    PublishRequest {
                        shop_id: shop_id.clone(),
                        config_version: Some(config.version),
                        events,
                        discovered,
                    },
                    after,
                )
                .await?;
            if let GroupOutcome::Published(published) = committed.outcome {
                return Ok(published);
            }
        }
        tracing::error!(shop = %shop_id, "a shop's configuration kept changing during a publish");
        Err(ServiceError::Internal)
    }

    /// The principal may publish with this configuration: an API key still live, and
    /// webhooks enabled for the shop.
    fn check_publisher(&self, who: &Principal, config: &PublishConfig) -> ServiceResult<()> {
        if let Some(key) = super::api_key_of(who) {
            if !config.has_key(key) {
                self.publish_cache.forget_key(&ApiKeyId::from(key));
                return Err(ServiceError::Unauthorized);
            }
        }
        if !config.webhooks_enabled {
            return Err(ServiceError::Forbidden(crate::service::WEBHOOKS_OFF.into()));
        }
        Ok(())
    }

    /// The shop's publish configuration: the cached copy unless `fresh`, else read anew.
    pub(crate) async fn publish_config(
        &self,
        shop_id: &ShopId,
        fresh: bool,
    ) -> ServiceResult<Arc<PublishConfig>> {
        if !fresh {
            if let Some(config) = self.publish_cache.config(shop_id) {
                return Ok(config);
            }
        }
        let not_found = || ServiceError::NotFound(format!("No shop with id {shop_id}."));
        // The version first: whatever is read after it is at least as new.
        let version = self
            .store
            .shop_config_version(shop_id)
            .await?
            .ok_or_else(not_found)?;
        let shop = self.store.shop(shop_id).await?.ok_or_else(not_found)?;
        let endpoints = self.store.endpoints_of_shop(shop_id).await?;
        let known = self.store.event_types_of_shop(shop_id).await?;
        let keys = self.store.api_keys_of_shop(shop_id).await?;
        let config = Arc::new(PublishConfig::new(
            version,
            shop.webhooks_enabled,
            endpoints.iter().map(Subscriber::from).collect(),
            known.into_iter().map(|k| k.name).collect(),
            keys.into_iter()
                .filter(|k| k.revoked_at.is_none())
                .map(|k| k.id)
                .collect(),
        ));
        self.publish_cache.put_config(shop_id, config.clone());
        Ok(config)
    }

    pub async fn get_event(
        &self,
        who: &Principal,
        shop_id: &str,
        id: &str,
    ) -> ServiceResult<EventView> {
        let shop_id = &ShopId::from(shop_id);
        let id = &EventId::from(id);
        require_read(who, shop_id)?;
        let ev = self
            .store
            .event(shop_id, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("No event with id {id}.")))?;
        let deliveries = self.store.deliveries_of_event(shop_id, &ev).await?;
        Ok(EventView {
            id: ev.id.into(),
            event_type: ev.event_type,
            channels: ev.channels.0,
            data: serde_json::from_str(&ev.data).unwrap_or_default(),
            entity_key: ev.entity_key,
            created_at: iso(ev.created_at),
            deliveries: deliveries
                .iter()
                .map(|d| super::queue::delivery_view(d, None))
                .collect(),
        })
    }

    /// The shop's catalog: the shipped types with the shop's edits, then its own types.
    pub async fn event_types(
        &self,
        who: &Principal,
        shop_id: &str,
    ) -> ServiceResult<Vec<EventTypeView>> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        let own = self.store.event_types_of_shop(shop_id).await?;
        let view = |r: &EventTypeRow| EventTypeView {
            name: r.name.clone(),
            family: catalog::family(&r.name).to_string(),
            description: r.description.clone(),
            sample: r.sample.0.clone(),
            schema: r.schema.as_ref().map(|s| s.0.clone()),
            source: r.source.clone(),
        };
        let mut out: Vec<EventTypeView> = catalog::builtins()
            .iter()
            .map(|b| match own.iter().find(|o| o.name == b.name) {
                Some(o) => view(o),
                None => EventTypeView {
                    name: b.name.clone(),
                    family: catalog::family(&b.name).to_string(),
                    description: b.description.clone(),
                    sample: b.sample.clone(),
                    schema: None,
                    source: "builtin".into(),
                },
            })
            .collect();
        for o in own.iter().filter(|o| catalog::builtin(&o.name).is_none()) {
            out.push(view(o));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn event_type(
        &self,
        who: &Principal,
        shop_id: &str,
        name: &str,
    ) -> ServiceResult<EventTypeView> {
        let shop_id = &ShopId::from(shop_id);
        self.event_types(who, shop_id)
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ServiceError::NotFound(format!("No event type named {name}.")))
    }

    /// Adds or edits an event type of the shop (`create` refuses an existing name).
    pub async fn save_event_type(
        &self,
        who: &Principal,
        shop_id: &str,
        name: &str,
        fields: EventTypeFields,
        create: bool,
    ) -> ServiceResult<EventTypeView> {
        let shop_id = &ShopId::from(shop_id);
        require_manage(who, shop_id)?;
        let EventTypeFields {
            description,
            sample,
            schema,
        } = fields;
        if !catalog::valid_name(name) {
            return Err(ServiceError::invalid(
                "name",
                "must be an event type like order.created (lowercase family.action)",
            ));
        }
        let existing = self
            .event_types(who, shop_id)
            .await?
            .into_iter()
            .find(|t| t.name == name);
        if create && existing.is_some() {
            return Err(ServiceError::Conflict(format!(
                "The event type {name} already exists."
            )));
        }
        if !create && existing.is_none() {
            return Err(ServiceError::NotFound(format!(
                "No event type named {name}."
            )));
        }
        if let Some(s) = &sample {
            if !s.is_object() {
                return Err(ServiceError::invalid("sample", "must be a JSON object"));
            }
            check_json_size("sample", s)?;
        }
        if let Some(s) = &schema {
            if !s.is_object() && !s.is_boolean() {
                return Err(ServiceError::invalid(
                    "schema",
                    "must be a JSON Schema object",
                ));
            }
            check_json_size("schema", s)?;
        }
        let own = self.store.event_types_of_shop(shop_id).await?;
        if !own.iter().any(|t| t.name == name) && own.len() >= MAX_EVENT_TYPES {
            return Err(ServiceError::invalid(
                "name",
                format!(
                    "the shop already has {} event types, the most it may have: delete unused \
                     types first",
                    own.len()
                ),
            ));
        }
        if description
            .as_deref()
            .is_some_and(|d| d.chars().count() > 1000)
        {
            return Err(ServiceError::invalid(
                "description",
                "must be at most 1000 characters",
            ));
        }
        let now = now_ms();
        let base = existing.clone();
        let row = EventTypeRow {
            name: name.to_string(),
            description: description
                .or_else(|| base.as_ref().map(|b| b.description.clone()))
                .unwrap_or_default(),
            sample: Json(
                sample
                    .or_else(|| base.as_ref().map(|b| b.sample.clone()))
                    .unwrap_or_else(|| serde_json::json!({})),
            ),
            schema: schema
                .or_else(|| base.as_ref().and_then(|b| b.schema.clone()))
                .map(Json),
            source: if catalog::builtin(name).is_some() {
                "edited".into()
            } else {
                "custom".into()
            },
            created_at: now,
            updated_at: now,
        };
        self.store.upsert_event_type(shop_id, &row).await?;
        self.event_type(who, shop_id, name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn an_endpoint_without_types_or_channels_receives_everything() {
        assert!(endpoint_matches(
            &[],
            &[],
            "order.created",
            &s(&["client_1"])
        ));
    }

    #[test]
    fn event_types_and_channels_narrow_what_an_endpoint_receives() {
        let types = s(&["order.created"]);
        assert!(endpoint_matches(&types, &[], "order.created", &[]));
        assert!(!endpoint_matches(&types, &[], "order.updated", &[]));
        let chans = s(&["client_1"]);
        assert!(endpoint_matches(
            &[],
            &chans,
            "order.created",
            &s(&["client_1", "agent_2"])
        ));
        assert!(!endpoint_matches(
            &[],
            &chans,
            "order.created",
            &s(&["client_2"])
        ));
        assert!(!endpoint_matches(&[], &chans, "order.created", &[]));
    }
}
