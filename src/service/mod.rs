//! The service layer: every rule of what a principal may do, shared by the panel (through
//! [`app::backend::Backend`]), the REST API and the command line.

pub mod endpoints;
pub mod events;
pub mod group_commit;
pub mod panel;
pub(crate) mod publish_cache;
pub mod queue;

use crate::auth::{api_key, password};
use crate::engine::Engine;
use crate::ids::{ShopId, UserId};
use crate::store::Store;
use app::backend::{Backend, ServiceResult};
use app::dto::*;
use app::model::*;

/// Why a shop may not publish, retry or test: its operator's switch is off (seed 004).
pub const WEBHOOKS_OFF: &str =
    "Webhooks are not enabled for this shop: an operator must enable them first; until then nothing is sent.";

/// Size limits applied at the edge.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_event_bytes: usize,
}

impl Limits {
    /// The largest body a template may render to (the engine's limit too).
    pub fn max_body_bytes(&self) -> usize {
        crate::domain::template::body_limit(self.max_event_bytes)
    }
}

#[derive(Clone)]
pub struct Service {
    pub store: Store,
    pub engine: Engine,
    pub limits: Limits,
    /// The URL people reach this installation at (`HERALD_PUBLIC_URL`, or the bound address).
    pub public_url: String,
    /// Where publishes are committed, many at once.
    group: group_commit::GroupCommit,
    publish_cache: std::sync::Arc<publish_cache::PublishCache>,
}

/// RFC 3339 with milliseconds, UTC: how the API writes times (the panel's formatter, so both
/// write the same).
pub use app::model::iso_ms as iso;

pub fn iso_opt(ms: Option<i64>) -> Option<String> {
    ms.map(iso)
}

/// A store failure as the caller sees it: a conflict says what is taken (409); anything else
/// is logged with its cause and hidden (500).
impl From<crate::store::Error> for ServiceError {
    fn from(err: crate::store::Error) -> Self {
        match err {
            crate::store::Error::Conflict(message) => ServiceError::Conflict(message),
            other => {
                tracing::error!(error = %other, "store error");
                ServiceError::Internal
            }
        }
    }
}

/// The API key a principal is, if it is one (its user id is the key's id).
pub(crate) fn api_key_of(who: &Principal) -> Option<&str> {
    who.user_id
        .strip_prefix(crate::ids::ApiKeyId::PREFIX)
        .filter(|rest| rest.starts_with('_'))
        .map(|_| who.user_id.as_str())
}

pub(crate) fn require_operator(who: &Principal) -> ServiceResult<()> {
    if who.operator {
        Ok(())
    } else {
        Err(ServiceError::forbidden())
    }
}

pub(crate) fn require_manage(who: &Principal, shop_id: &str) -> ServiceResult<()> {
    if who.can_manage(shop_id) {
        Ok(())
    } else {
        Err(ServiceError::forbidden())
    }
}

pub(crate) fn require_read(who: &Principal, shop_id: &str) -> ServiceResult<()> {
    if who.can_read(shop_id) {
        Ok(())
    } else {
        Err(ServiceError::forbidden())
    }
}

/// A trimmed, non-empty name of at most `max` characters.
fn parse_name(field: &str, value: &str, max: usize) -> ServiceResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ServiceError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(ServiceError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(v.to_string())
}

/// A plausible email address, trimmed.
fn parse_email(value: &str) -> ServiceResult<String> {
    let v = value.trim();
    let valid = v.len() <= 254
        && v.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !v.contains(char::is_whitespace)
        });
    if valid {
        Ok(v.to_string())
    } else {
        Err(ServiceError::invalid(
            "email",
            "must be an email address like name@example.com",
        ))
    }
}

fn check_password(field: &str, value: &str) -> ServiceResult<()> {
    if value.chars().count() < password::MIN_LENGTH {
        return Err(ServiceError::invalid(
            field,
            format!("must be at least {} characters", password::MIN_LENGTH),
        ));
    }
    Ok(())
}

fn shop_summary(row: crate::store::shops::ShopRow) -> ShopSummary {
    ShopSummary {
        id: row.id.into(),
        name: row.name,
        webhooks_enabled: row.webhooks_enabled,
        require_https: row.require_https,
        members: row.members,
        created_at: row.created_at,
        events_24h: 0,
    }
}

impl Service {
    pub fn new(store: Store, engine: Engine, limits: Limits) -> Self {
        let lanes = store.tuning().publish_lanes;
        Service {
            group: group_commit::GroupCommit::start(store.clone(), engine.clone(), lanes),
            publish_cache: Default::default(),
            store,
            engine,
            limits,
            public_url: String::new(),
        }
    }

    /// The API key a publish comes with, from the cache (the store when it is not there).
    /// The publish transaction checks that the key is still live ([`publish_cache`]).
    pub(crate) async fn publishing_key(
        &self,
        hash: &str,
    ) -> ServiceResult<Option<publish_cache::CachedKey>> {
        if let Some(k) = self.publish_cache.key(hash) {
            return Ok(Some(k));
        }
        let Some(row) = self.store.api_key_by_hash(hash).await? else {
            return Ok(None);
        };
        let key = publish_cache::CachedKey {
            id: row.id,
            shop_id: row.shop_id,
            last_used_at: row.last_used_at,
        };
        self.publish_cache.put_key(hash, key.clone());
        Ok(Some(key))
    }

    /// Notes in the cache that a key's use was written at `at`.
    pub(crate) fn publishing_key_used(&self, hash: &str, at: i64) {
        self.publish_cache.key_used(hash, at);
    }

    /// The principal an API key acts as: an owner of its shop.
    pub fn api_principal(key_id: &str, shop_id: &str) -> Principal {
        Principal {
            user_id: key_id.to_string(),
            email: format!("api key {key_id}"),
            operator: false,
            memberships: vec![Membership {
                shop_id: shop_id.to_string(),
                shop_name: String::new(),
                role: ShopRole::Owner,
            }],
        }
    }

    /// The principal the command line acts as: the installation's operator.
    pub fn system() -> Principal {
        Principal {
            user_id: "system".into(),
            email: "system".into(),
            operator: true,
            memberships: vec![],
        }
    }

    /// Refuses what would send a webhook (a retry, a test event) while the shop's webhooks
    /// are off: nothing goes out until an operator turns them on again.
    pub(crate) async fn require_webhooks_on(&self, shop_id: &ShopId) -> ServiceResult<()> {
        if self.existing_shop(shop_id).await?.webhooks_enabled {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(WEBHOOKS_OFF.into()))
        }
    }

    pub(crate) async fn existing_shop(
        &self,
        shop_id: &str,
    ) -> ServiceResult<crate::store::shops::ShopRow> {
        let shop_id = &ShopId::from(shop_id);
        self.store
            .shop(shop_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("No shop with id {shop_id}.")))
    }

    /// Creates an API key for a shop; returns (key id, key). The key is not stored.
    pub async fn create_api_key(
        &self,
        who: &Principal,
        shop_id: &str,
        name: &str,
    ) -> ServiceResult<(String, String)> {
        let shop_id = &ShopId::from(shop_id);
        require_manage(who, shop_id)?;
        let name = parse_name("name", name, 100)?;
        self.existing_shop(shop_id).await?;
        let key = api_key::generate();
        let id = self
            .store
            .create_api_key(
                shop_id,
                &name,
                &api_key::hash(&key),
                &api_key::display_prefix(&key),
            )
            .await?;
        Ok((id.into(), key))
    }

    /// The first start: with no users at all, creates the operator. Returns the generated
    /// password when none was configured, so the caller can print it once.
    pub async fn ensure_operator(
        &self,
        email: &str,
        configured_password: Option<&str>,
    ) -> anyhow::Result<Option<(String, Option<String>)>> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let generated = configured_password
            .is_none()
            .then(password::random_password);
        let pw = configured_password
            .map(str::to_string)
            .or(generated.clone())
            .unwrap_or_default();
        match self
            .create_user(&Self::system(), email, &pw, "operator", None)
            .await
        {
            Ok(_) => Ok(Some((email.to_string(), generated))),
            // Another node starting beside this one on the same empty database created it
            // first: there is an operator, which is all this asks.
            Err(ServiceError::Conflict(_)) if self.store.count_users().await? > 0 => Ok(None),
            Err(e) => Err(anyhow::anyhow!("could not create the operator: {e}")),
        }
    }

    /// Checks an email and password; the user's id and session version when they match.
    /// Unknown emails cost the same time as wrong passwords, so the answer reveals nothing
    /// about which accounts exist.
    pub async fn authenticate(
        &self,
        email: &str,
        pw: &str,
    ) -> ServiceResult<Option<(String, i64)>> {
        let user = self.store.user_by_email(email.trim()).await?;
        let pw = pw.to_string();
        let (hash, id) = match user {
            Some(u) => (u.password_hash, Some((u.id.into(), u.session_version))),
            None => (password::decoy_hash().to_string(), None),
        };
        let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &hash))
            .await
            .unwrap_or(false);
        Ok(id.filter(|_| ok))
    }
    /// A signed-in user changes their own password, proving the current one. Returns the new
    /// session version: the caller's session is moved to it, every other session ends.
    pub async fn change_own_password(
        &self,
        who: &Principal,
        current: &str,
        new: &str,
    ) -> ServiceResult<i64> {
        let user = self
            .store
            .user(&UserId::from(who.user_id.as_str()))
            .await?
            .ok_or(ServiceError::Unauthorized)?;
        check_password("new_password", new)?;
        let current = current.to_string();
        let ok =
            tokio::task::spawn_blocking(move || password::verify(&current, &user.password_hash))
                .await
                .unwrap_or(false);
        if !ok {
            return Err(ServiceError::invalid(
                "current_password",
                "is not your current password",
            ));
        }
        self.store_password(&who.user_id, new).await
    }

    /// `herald user set-password`: sets the password of the user with this email (a forgotten
    /// operator password), ending their sessions.
    pub async fn set_password_by_email(&self, email: &str, new: &str) -> ServiceResult<()> {
        check_password("password", new)?;
        let user = self
            .store
            .user_by_email(email.trim())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("No user with the email {email}.")))?;
        self.store_password(&user.id, new).await.map(|_| ())
    }

    /// Hashes and stores a new password; returns the user's new session version.
    async fn store_password(&self, user_id: &str, new: &str) -> ServiceResult<i64> {
        let user_id = &UserId::from(user_id);
        let pw = new.to_string();
        let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
            .await
            .map_err(|_| ServiceError::Internal)?;
        let version = self
            .store
            .set_password(user_id, &hash)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("No user with id {user_id}.")))?;
        tracing::info!(%user_id, "password changed; other sessions ended");
        Ok(version)
    }
}

#[async_trait::async_trait]
impl Backend for Service {
    async fn list_shops(&self, who: &Principal) -> ServiceResult<Vec<ShopSummary>> {
        let rows = if who.operator {
            self.store.all_shops().await
        } else {
            self.store
                .shops_of_user(&UserId::from(who.user_id.as_str()))
                .await
        }?;
        let since = crate::ids::now_ms() - 86_400_000;
        let volume = self.store.events_since_by_shop(since).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let events = volume.iter().find(|(id, _)| *id == r.id).map(|(_, n)| *n);
                ShopSummary {
                    events_24h: events.unwrap_or(0),
                    ..shop_summary(r)
                }
            })
            .collect())
    }

    async fn shop(&self, who: &Principal, shop_id: &str) -> ServiceResult<ShopSummary> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        self.existing_shop(shop_id).await.map(shop_summary)
    }

    async fn create_shop(
        &self,
        who: &Principal,
        name: &str,
        enable_webhooks: bool,
    ) -> ServiceResult<ShopSummary> {
        require_operator(who)?;
        let name = parse_name("name", name, 100)?;
        let row = self.store.create_shop(&name, enable_webhooks).await?;
        tracing::info!(shop_id = %row.id, webhooks = enable_webhooks, "shop created");
        Ok(shop_summary(row))
    }

    async fn set_webhooks_enabled(
        &self,
        who: &Principal,
        shop_id: &str,
        enabled: bool,
    ) -> ServiceResult<()> {
        let shop_id = &ShopId::from(shop_id);
        require_operator(who)?;
        if !self.store.set_webhooks_enabled(shop_id, enabled).await? {
            return Err(ServiceError::NotFound(format!(
                "No shop with id {shop_id}."
            )));
        }
        if enabled {
            // Its held deliveries were resumed.
            self.engine.announce();
        } else {
            self.engine.shop_paused(shop_id).await;
        }
        tracing::info!(%shop_id, enabled, "webhooks feature changed");
        Ok(())
    }

    async fn list_nodes(&self, who: &Principal) -> ServiceResult<NodesOverview> {
        require_operator(who)?;
        let now = crate::ids::now_ms();
        let dead_after = crate::engine::cluster::PRESUMED_DEAD.as_millis() as i64;
        let nodes = self.store.nodes().await?;
        Ok(NodesOverview {
            store: self.store.dialect().label().into(),
            now,
            nodes: nodes
                .into_iter()
                .map(|n| NodeSummary {
                    alive: n.stopped_at.is_none() && now - n.heartbeat_at <= dead_after,
                    this_node: n.id == self.engine.node_id(),
                    id: n.id,
                    version: n.version,
                    started_at: n.started_at,
                    heartbeat_at: n.heartbeat_at,
                    stopped_at: n.stopped_at,
                    holding: n.holding,
                })
                .collect(),
        })
    }

    async fn list_users(&self, who: &Principal) -> ServiceResult<Vec<UserSummary>> {
        require_operator(who)?;
        let users = self.store.all_users().await?;
        let memberships = self.store.all_memberships().await?;
        Ok(users
            .into_iter()
            .map(|u| UserSummary {
                shops: memberships
                    .iter()
                    .filter(|m| m.user_id == u.id)
                    .filter_map(|m| {
                        Some(Membership {
                            shop_id: m.shop_id.to_string(),
                            shop_name: m.shop_name.clone(),
                            role: ShopRole::parse(&m.role)?,
                        })
                    })
                    .collect(),
                id: u.id.into(),
                email: u.email,
                operator: u.is_operator,
                created_at: u.created_at,
            })
            .collect())
    }

    async fn create_user(
        &self,
        who: &Principal,
        email: &str,
        pw: &str,
        role: &str,
        shop_id: Option<&str>,
    ) -> ServiceResult<String> {
        require_operator(who)?;
        let email = parse_email(email)?;
        check_password("password", pw)?;
        let membership = match role {
            "operator" => None,
            "owner" | "viewer" => {
                let shop_id = shop_id.filter(|s| !s.is_empty()).ok_or_else(|| {
                    ServiceError::invalid("shop", "an owner or viewer needs a shop")
                })?;
                self.store.shop(&shop_id.into()).await?.ok_or_else(|| {
                    ServiceError::invalid("shop", format!("no shop with id {shop_id}"))
                })?;
                Some((shop_id, role))
            }
            _ => {
                return Err(ServiceError::invalid(
                    "role",
                    "must be operator, owner or viewer",
                ))
            }
        };
        let pw = pw.to_string();
        let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
            .await
            .map_err(|_| ServiceError::Internal)?;
        match self
            .store
            .create_user(&email, &hash, role == "operator", membership)
            .await
        {
            Ok(id) => {
                tracing::info!(user_id = %id, role, "user created");
                Ok(id.into())
            }
            Err(crate::store::Error::Conflict(_)) => Err(ServiceError::Conflict(format!(
                "A user with the email {email} already exists."
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn reset_password(&self, who: &Principal, user_id: &str, pw: &str) -> ServiceResult<()> {
        let user_id = &UserId::from(user_id);
        require_operator(who)?;
        if *user_id == who.user_id {
            return Err(ServiceError::invalid(
                "user",
                "change your own password on the Account page",
            ));
        }
        check_password("password", pw)?;
        self.store_password(user_id, pw).await.map(|_| ())
    }

    async fn list_members(&self, who: &Principal, shop_id: &str) -> ServiceResult<Vec<Member>> {
        let shop_id = &ShopId::from(shop_id);
        require_manage(who, shop_id)?;
        let rows = self.store.members_of_shop(shop_id).await?;
        Ok(rows
            .into_iter()
            .filter_map(|m| {
                Some(Member {
                    role: ShopRole::parse(&m.role)?,
                    user_id: m.user_id.into(),
                    email: m.email,
                    created_at: m.created_at,
                })
            })
            .collect())
    }

    async fn add_member(
        &self,
        who: &Principal,
        shop_id: &str,
        email: &str,
        pw: Option<&str>,
        role: ShopRole,
    ) -> ServiceResult<()> {
        let shop_id = &ShopId::from(shop_id);
        require_manage(who, shop_id)?;
        let email = parse_email(email)?;
        self.existing_shop(shop_id).await?;
        match self.store.user_by_email(&email).await? {
            Some(user) => self
                .store
                .upsert_membership(shop_id, &user.id, role.as_str())
                .await
                .map_err(ServiceError::from),
            None => {
                let pw = pw.ok_or_else(|| {
                    ServiceError::invalid("password", "is required to create a new user")
                })?;
                self.create_user(&Self::system(), &email, pw, role.as_str(), Some(shop_id))
                    .await
                    .map(|_| ())
            }
        }
    }

    async fn remove_member(
        &self,
        who: &Principal,
        shop_id: &str,
        user_id: &str,
    ) -> ServiceResult<()> {
        let shop_id = &ShopId::from(shop_id);
        let user_id = &UserId::from(user_id);
        require_manage(who, shop_id)?;
        if *user_id == who.user_id && !who.operator {
            return Err(ServiceError::invalid(
                "user_id",
                "you cannot remove yourself",
            ));
        }
        if self.store.delete_membership(shop_id, user_id).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound(
                "That user is not a member of this shop.".into(),
            ))
        }
    }

    async fn list_endpoints(
        &self,
        who: &Principal,
        shop: &str,
    ) -> ServiceResult<Vec<EndpointView>> {
        Service::list_endpoints(self, who, shop).await
    }
    async fn get_endpoint(
        &self,
        who: &Principal,
        shop: &str,
        id: &str,
    ) -> ServiceResult<EndpointView> {
        Service::get_endpoint(self, who, shop, id).await
    }
    async fn save_endpoint(
        &self,
        who: &Principal,
        shop: &str,
        id: Option<&str>,
        input: serde_json::Value,
    ) -> ServiceResult<EndpointView> {
        let input: endpoints::EndpointInput = serde_json::from_value(input)
            .map_err(|e| ServiceError::invalid("body", e.to_string()))?;
        match id {
            Some(id) => self.update_endpoint(who, shop, id, input).await,
            None => self.create_endpoint(who, shop, input).await,
        }
    }
    async fn delete_endpoint(&self, who: &Principal, shop: &str, id: &str) -> ServiceResult<()> {
        Service::delete_endpoint(self, who, shop, id).await
    }
    async fn endpoint_secret(
        &self,
        who: &Principal,
        shop: &str,
        id: &str,
    ) -> ServiceResult<String> {
        Service::endpoint_secret(self, who, shop, id).await
    }
    async fn rotate_secret(&self, who: &Principal, shop: &str, id: &str) -> ServiceResult<String> {
        Service::rotate_secret(self, who, shop, id).await
    }
    async fn send_test(
        &self,
        who: &Principal,
        shop: &str,
        id: &str,
        event_type: Option<String>,
    ) -> ServiceResult<(String, String)> {
        Service::send_test(self, who, shop, id, event_type).await
    }
    async fn preview_template(
        &self,
        who: &Principal,
        shop: &str,
        event_type: &str,
        content_type: &str,
        template: &str,
    ) -> ServiceResult<PreviewView> {
        Service::preview_template(self, who, shop, event_type, content_type, template).await
    }
    fn retry_presets(&self) -> Vec<RetryPresetView> {
        crate::domain::retry::presets()
            .into_iter()
            .map(|(id, label, policy)| RetryPresetView {
                id: id.into(),
                label: label.into(),
                policy: serde_json::to_value(policy).unwrap_or_default(),
            })
            .collect()
    }
    async fn event_types(&self, who: &Principal, shop: &str) -> ServiceResult<Vec<EventTypeView>> {
        Service::event_types(self, who, shop).await
    }
    async fn save_event_type(
        &self,
        who: &Principal,
        shop: &str,
        name: &str,
        description: &str,
        sample: &str,
        create: bool,
    ) -> ServiceResult<EventTypeView> {
        let sample =
            if sample.trim().is_empty() {
                None
            } else {
                Some(serde_json::from_str(sample).map_err(|e| {
                    ServiceError::invalid("sample", format!("is not valid JSON ({e})"))
                })?)
            };
        let fields = events::EventTypeFields {
            description: Some(description.to_string()),
            sample,
            schema: None,
        };
        Service::save_event_type(self, who, shop, name, fields, create).await
    }
    async fn channels(&self, who: &Principal, shop: &str) -> ServiceResult<Vec<ChannelView>> {
        Service::channels(self, who, shop).await
    }
    async fn bulk_changes(
        &self,
        who: &Principal,
        shop: &str,
    ) -> ServiceResult<Vec<BulkChangeView>> {
        Service::bulk_changes(self, who, shop).await
    }
    async fn alerts(
        &self,
        who: &Principal,
        shop: &str,
        cursor: Option<String>,
    ) -> ServiceResult<Page<AlertView>> {
        Service::alerts(self, who, shop, cursor.as_deref(), 50).await
    }
    async fn acknowledge_alert(&self, who: &Principal, shop: &str, id: &str) -> ServiceResult<()> {
        Service::acknowledge_alert(self, who, shop, id).await
    }
    async fn list_deliveries(
        &self,
        who: &Principal,
        shop: &str,
        q: &DeliveryQuery,
        cursor: Option<String>,
        limit: i64,
    ) -> ServiceResult<Page<DeliveryView>> {
        let f = panel::filter_from_query(q)?;
        Service::list_deliveries(self, who, shop, &f, cursor.as_deref(), Some(limit)).await
    }
    async fn count_deliveries(
        &self,
        who: &Principal,
        shop: &str,
        q: &DeliveryQuery,
    ) -> ServiceResult<i64> {
        let f = panel::filter_from_query(q)?;
        Service::count_deliveries(self, who, shop, &f).await
    }
    async fn get_delivery(
        &self,
        who: &Principal,
        shop: &str,
        id: &str,
    ) -> ServiceResult<DeliveryView> {
        Service::get_delivery(self, who, shop, id).await
    }
    async fn act_on_deliveries(
        &self,
        who: &Principal,
        shop: &str,
        ids: &[String],
        cancel: bool,
    ) -> ServiceResult<u64> {
        Service::act_on_deliveries(self, who, shop, ids, cancel).await
    }
    async fn bulk_retry(
        &self,
        who: &Principal,
        shop: &str,
        q: &DeliveryQuery,
    ) -> ServiceResult<u64> {
        let f = panel::filter_from_query(q)?;
        Service::bulk_retry(self, who, shop, &f).await
    }
    async fn list_attempts(
        &self,
        who: &Principal,
        shop: &str,
        cursor: Option<i64>,
        limit: i64,
    ) -> ServiceResult<Page<AttemptLogView>> {
        Service::list_attempts(self, who, shop, cursor, limit).await
    }
    async fn get_attempt(
        &self,
        who: &Principal,
        shop: &str,
        id: i64,
    ) -> ServiceResult<(AttemptLogView, AttemptView)> {
        Service::get_attempt(self, who, shop, id).await
    }
    async fn settings(&self, who: &Principal, shop: &str) -> ServiceResult<ShopSettings> {
        Service::settings(self, who, shop).await
    }
    async fn save_settings(
        &self,
        who: &Principal,
        shop: &str,
        settings: ShopSettings,
    ) -> ServiceResult<()> {
        Service::save_settings(self, who, shop, settings).await
    }
    async fn api_keys(&self, who: &Principal, shop: &str) -> ServiceResult<Vec<ApiKeyView>> {
        Service::api_keys(self, who, shop).await
    }
    async fn create_api_key(
        &self,
        who: &Principal,
        shop: &str,
        name: &str,
    ) -> ServiceResult<String> {
        Service::create_api_key(self, who, shop, name)
            .await
            .map(|(_, key)| key)
    }
    async fn revoke_api_key(&self, who: &Principal, shop: &str, id: &str) -> ServiceResult<()> {
        Service::revoke_api_key(self, who, shop, id).await
    }
    async fn dashboard(&self, who: &Principal, shop: &str) -> ServiceResult<DashboardView> {
        Service::dashboard(self, who, shop).await
    }
    async fn endpoint_success(
        &self,
        who: &Principal,
        shop: &str,
    ) -> ServiceResult<Vec<(String, i64, i64)>> {
        require_read(who, shop)?;
        let since = crate::ids::now_ms() - 7 * 86_400_000;
        self.store
            .endpoint_success(&shop.into(), since)
            .await
            .map_err(ServiceError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("name", "  Demo ", 10).unwrap(), "Demo");
        assert_eq!(
            parse_name("name", "   ", 10).unwrap_err().field(),
            Some("name")
        );
        assert!(parse_name("name", "x".repeat(11).as_str(), 10).is_err());
    }

    #[test]
    fn emails_need_an_at_sign_and_no_spaces() {
        assert!(parse_email("a@b.c").is_ok());
        assert!(parse_email("nope").is_err());
        assert!(parse_email("a b@c.d").is_err());
        assert!(parse_email("@c.d").is_err());
    }
}
