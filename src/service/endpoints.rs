//! Endpoints: validation of every field at the edge, secrets sealed before they are stored,
//! and the endpoint as the API shows it.

use super::{iso, iso_opt, require_manage, require_read, Service};
use crate::domain::retry::RetryPolicy;
use crate::domain::template::{self, ContentType, EventContext};
use crate::engine::attempt::RESERVED_HEADERS;
use crate::engine::{catalog, signing};
use crate::ids::now_ms;
use crate::ids::{EndpointId, ShopId};
use crate::store::endpoints::EndpointRow;
use app::backend::ServiceResult;
use app::dto::{BasicAuthView, EndpointView, Payload};
use app::model::{Principal, ServiceError};
use serde::Deserialize;
use sqlx::types::Json;

/// Deserializes a field that may be absent (keep), null (clear) or a value (set).
fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Deserialize)]
pub struct BasicAuthInput {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PayloadInput {
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub template: Option<Option<String>>,
}

/// A create or a partial update of an endpoint: absent fields keep their value (or default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    pub url: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub basic_auth: Option<Option<BasicAuthInput>>,
    pub headers: Option<serde_json::Map<String, serde_json::Value>>,
    pub payload: Option<PayloadInput>,
    pub retry: Option<serde_json::Value>,
    pub timeout_ms: Option<i64>,
    pub priority: Option<String>,
    pub unique_pending: Option<bool>,
    pub disable_on_status: Option<Vec<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    pub unsubscribe_phrase: Option<Option<String>>,
    pub unsubscribe_action: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub disable_after_days: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    pub client_certificate: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub rate_limit_per_second: Option<Option<i64>>,
}

/// The strict deactivation preset: the status codes that mean "this endpoint is gone".
pub const STRICT_DISABLE_ON_STATUS: &[i64] = &[400, 401, 403, 404, 405, 406, 410, 411];

pub fn priority_name(p: i64) -> &'static str {
    match p {
        0 => "high",
        2 => "low",
        _ => "normal",
    }
}

pub fn parse_priority(field: &str, s: &str) -> ServiceResult<i64> {
    match s {
        "high" => Ok(0),
        "normal" => Ok(1),
        "low" => Ok(2),
        _ => Err(ServiceError::invalid(field, "must be high, normal or low")),
    }
}

/// A channel label: 1–128 characters of letters, digits, `_`, `-`, `.`, `:`.
pub fn valid_channel(c: &str) -> bool {
    (1..=128).contains(&c.len())
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.' | ':'))
}

fn parse_url(s: &str, require_https: bool) -> ServiceResult<String> {
    let s = s.trim();
    if s.len() > 2048 {
        return Err(ServiceError::invalid(
            "url",
            "must be at most 2048 characters",
        ));
    }
    let url = url::Url::parse(s)
        .map_err(|e| ServiceError::invalid("url", format!("is not a valid URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if require_https => {
            return Err(ServiceError::invalid(
                "url",
                "must use https: this shop requires https endpoints",
            ))
        }
        "http" => {}
        _ => return Err(ServiceError::invalid("url", "must be an http or https URL")),
    }
    if url.host_str().is_none_or(|h| h.is_empty()) {
        return Err(ServiceError::invalid("url", "must have a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ServiceError::invalid(
            "url",
            "must not contain credentials: use basic_auth",
        ));
    }
    Ok(url.to_string())
}

/// A URL's origin: scheme, host and port (the default port when none is written).
fn origin(url: &str) -> Option<(String, String, u16)> {
    let u = url::Url::parse(url).ok()?;
    Some((
        u.scheme().to_string(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default()?,
    ))
}

/// Which write-only credentials a change gives again (or removes).
struct CredentialsGiven {
    password: bool,
    headers: bool,
}

impl CredentialsGiven {
    fn of(input: &EndpointInput) -> Self {
        CredentialsGiven {
            password: match &input.basic_auth {
                Some(Some(auth)) => auth.password.is_some(),
                Some(None) => true,
                None => false,
            },
            headers: input.headers.is_some(),
        }
    }

    /// A change of origin keeps no credential it did not give again: the basic-auth password
    /// and the extra headers' values were set for the old host, and would otherwise go to
    /// the new one with its next delivery. Refused (nothing is written), naming `url`.
    fn check_kept(&self, row: &EndpointRow) -> ServiceResult<()> {
        let mut kept = Vec::new();
        if row.basic_auth_password_enc.is_some() && !self.password {
            kept.push("basic_auth (its password)");
        }
        if !row.headers.is_empty() && !self.headers {
            kept.push("headers (their values)");
        }
        if kept.is_empty() {
            return Ok(());
        }
        Err(ServiceError::invalid(
            "url",
            format!(
                "moves the endpoint to another origin (scheme, host or port), and the \
                 credentials set for the old one would go with it: give {} again in the same \
                 change, or remove {}",
                kept.join(" and "),
                if kept.len() == 1 { "it" } else { "them" }
            ),
        ))
    }
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// The sample an endpoint's template is checked against: its first event type's sample.
fn sample_for(event_types: &[String]) -> (String, serde_json::Value) {
    event_types
        .iter()
        .find_map(|t| catalog::builtin(t).map(|b| (b.name.clone(), b.sample.clone())))
        .unwrap_or_else(|| {
            let b = catalog::builtin("order.created").or_else(|| catalog::builtins().first());
            b.map(|b| (b.name.clone(), b.sample.clone()))
                .unwrap_or_else(|| ("order.created".into(), serde_json::json!({})))
        })
}

impl Service {
    fn seal(&self, s: &str) -> String {
        self.engine.secrets().seal(s)
    }

    /// Applies an input to a row (new or existing), validating every field it sets.
    fn apply(
        &self,
        row: &mut EndpointRow,
        input: EndpointInput,
        require_https: bool,
    ) -> ServiceResult<()> {
        let old_origin = (!row.url.is_empty()).then(|| origin(&row.url));
        let credentials_given = CredentialsGiven::of(&input);
        if let Some(url) = input.url {
            row.url = parse_url(&url, require_https)?;
        } else if row.url.is_empty() {
            return Err(ServiceError::invalid("url", "is required"));
        }
        if let Some(d) = input.description {
            if d.chars().count() > 500 {
                return Err(ServiceError::invalid(
                    "description",
                    "must be at most 500 characters",
                ));
            }
            row.description = d.trim().to_string();
        }
        if let Some(e) = input.enabled {
            row.enabled = e;
            if e {
                row.disabled_reason = None;
            } else if row.disabled_reason.is_none() {
                row.disabled_reason = Some("disabled by an owner".into());
            }
        }
        if let Some(types) = input.event_types {
            for (i, t) in types.iter().enumerate() {
                if !catalog::valid_name(t) {
                    return Err(ServiceError::invalid(
                        &format!("event_types[{i}]"),
                        format!("\"{t}\" is not an event type name like order.created"),
                    ));
                }
            }
            row.event_types = Json(types);
        }
        if let Some(chs) = input.channels {
            for (i, c) in chs.iter().enumerate() {
                if !valid_channel(c) {
                    return Err(ServiceError::invalid(
                        &format!("channels[{i}]"),
                        "must be 1–128 letters, digits, _ - . or :, like client_42",
                    ));
                }
            }
            row.channels = Json(chs);
        }
        match input.basic_auth {
            Some(None) => {
                row.basic_auth_username = None;
                row.basic_auth_password_enc = None;
            }
            Some(Some(auth)) => {
                if auth.username.is_empty()
                    || auth.username.contains(':')
                    || auth.username.len() > 200
                {
                    return Err(ServiceError::invalid(
                        "basic_auth.username",
                        "must be 1–200 characters without ':'",
                    ));
                }
                row.basic_auth_username = Some(auth.username);
                if let Some(p) = auth.password {
                    row.basic_auth_password_enc = Some(self.seal(&p));
                }
            }
            None => {}
        }
        if let Some(headers) = input.headers {
            for (name, value) in &headers {
                let field = format!("headers.{name}");
                if !valid_header_name(name) {
                    return Err(ServiceError::invalid(&field, "is not a valid header name"));
                }
                if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    return Err(ServiceError::invalid(
                        &field,
                        "is set by Herald and cannot be overridden",
                    ));
                }
                match value.as_str() {
                    Some(v) if !v.contains(['\r', '\n']) && v.len() <= 4096 => {}
                    _ => {
                        return Err(ServiceError::invalid(
                            &field,
                            "must be a string on one line",
                        ))
                    }
                }
            }
            // Extra headers carry tokens: their values are sealed at rest like the password.
            let sealed: serde_json::Map<String, serde_json::Value> = headers
                .into_iter()
                .map(|(name, value)| {
                    let v = value.as_str().unwrap_or_default();
                    (name, serde_json::Value::String(self.seal(v)))
                })
                .collect();
            row.headers = Json(sealed);
        }
        if let Some(p) = input.payload {
            if let Some(ct) = p.content_type {
                let parsed = ContentType::parse(&ct).ok_or_else(|| {
                    ServiceError::invalid(
                        "payload.content_type",
                        "must be application/json, application/xml or text/plain",
                    )
                })?;
                row.content_type = parsed.mime().to_string();
            }
            if let Some(t) = p.template {
                row.template = t.filter(|t| !t.trim().is_empty());
            }
        }
        if let Some(t) = &row.template {
            let (name, sample) = sample_for(&row.event_types);
            let ctx = EventContext {
                event_id: "evt_sample",
                event_type: &name,
                timestamp: now_ms() / 1000,
                channels: &[],
                data: &sample,
            };
            let ct = ContentType::parse(&row.content_type).unwrap_or_default();
            template::validate(t, ct, &ctx, self.limits.max_body_bytes())
                .map_err(|m| ServiceError::invalid("template", m))?;
        }
        if let Some(r) = input.retry {
            let policy: RetryPolicy = serde_json::from_value(r).map_err(|e| {
                ServiceError::invalid("retry", format!("is not a retry policy ({e})"))
            })?;
            policy
                .validate()
                .map_err(|(f, m)| ServiceError::invalid(&f, m))?;
            row.retry = Json(policy);
        }
        if let Some(t) = input.timeout_ms {
            if !(100..=60_000).contains(&t) {
                return Err(ServiceError::invalid(
                    "timeout_ms",
                    "must be between 100 and 60000",
                ));
            }
            row.timeout_ms = t;
        }
        if let Some(p) = input.priority {
            row.priority = parse_priority("priority", &p)?;
        }
        if let Some(u) = input.unique_pending {
            row.unique_pending = u;
        }
        if let Some(codes) = input.disable_on_status {
            if let Some(i) = codes.iter().position(|c| !(100..=599).contains(c)) {
                return Err(ServiceError::invalid(
                    &format!("disable_on_status[{i}]"),
                    "must be an HTTP status code",
                ));
            }
            row.disable_on_status = Json(codes);
        }
        if let Some(p) = input.unsubscribe_phrase {
            if p.as_deref().is_some_and(|p| p.len() > 200) {
                return Err(ServiceError::invalid(
                    "unsubscribe_phrase",
                    "must be at most 200 characters",
                ));
            }
            row.unsubscribe_phrase = p.filter(|p| !p.trim().is_empty());
        }
        if let Some(a) = input.unsubscribe_action {
            if a != "disable" && a != "delete" {
                return Err(ServiceError::invalid(
                    "unsubscribe_action",
                    "must be disable or delete",
                ));
            }
            row.unsubscribe_action = a;
        }
        if let Some(d) = input.disable_after_days {
            if d.is_some_and(|d| !(1..=365).contains(&d)) {
                return Err(ServiceError::invalid(
                    "disable_after_days",
                    "must be between 1 and 365, or null",
                ));
            }
            row.disable_after_days = d;
        }
        if let Some(c) = input.client_certificate {
            match c.filter(|c| !c.trim().is_empty()) {
                None => row.client_certificate_enc = None,
                Some(pem) => {
                    if !pem.contains("BEGIN CERTIFICATE") || !pem.contains("PRIVATE KEY") {
                        return Err(ServiceError::invalid(
                            "client_certificate",
                            "must be PEM with the certificate and its private key",
                        ));
                    }
                    reqwest::Identity::from_pem(pem.as_bytes()).map_err(|e| {
                        ServiceError::invalid(
                            "client_certificate",
                            format!("could not be read ({e})"),
                        )
                    })?;
                    row.client_certificate_enc = Some(self.seal(&pem));
                }
            }
        }
        if let Some(r) = input.rate_limit_per_second {
            if r.is_some_and(|r| !(1..=10_000).contains(&r)) {
                return Err(ServiceError::invalid(
                    "rate_limit_per_second",
                    "must be between 1 and 10000, or null",
                ));
            }
            row.rate_limit_per_second = r;
        }
        if old_origin.is_some_and(|o| o != origin(&row.url)) {
            credentials_given.check_kept(row)?;
        }
        Ok(())
    }

    /// The endpoint's extra headers with their values opened for those who manage the shop,
    /// masked for everyone else (they carry tokens).
    fn headers_view(
        &self,
        row: &EndpointRow,
        reveal: bool,
    ) -> serde_json::Map<String, serde_json::Value> {
        row.headers
            .iter()
            .map(|(name, value)| {
                let v = value.as_str().unwrap_or_default();
                let shown = if !reveal {
                    "••••••".to_string()
                } else if crate::crypto::SecretBox::is_sealed(v) {
                    self.engine
                        .secrets()
                        .open(v)
                        .unwrap_or_else(|_| "(cannot be opened with this secret key)".into())
                } else {
                    v.to_string()
                };
                (name.clone(), serde_json::Value::String(shown))
            })
            .collect()
    }

    pub fn endpoint_view(&self, row: &EndpointRow, secret: Option<String>) -> EndpointView {
        self.endpoint_view_as(row, secret, true)
    }

    /// The view of an endpoint for a reader who may (`reveal`) or may not see header values
    /// and the URL's query string.
    pub fn endpoint_view_as(
        &self,
        row: &EndpointRow,
        secret: Option<String>,
        reveal: bool,
    ) -> EndpointView {
        EndpointView {
            id: row.id.to_string(),
            // Tokens live in query strings: only those who manage the shop see them.
            url: if reveal {
                row.url.clone()
            } else {
                crate::engine::attempt::display_url(&row.url)
            },
            description: row.description.clone(),
            enabled: row.enabled,
            disabled_reason: row.disabled_reason.clone(),
            event_types: row.event_types.0.clone(),
            channels: row.channels.0.clone(),
            basic_auth: row
                .basic_auth_username
                .clone()
                .map(|username| BasicAuthView {
                    username,
                    password_set: row.basic_auth_password_enc.is_some(),
                }),
            headers: self.headers_view(row, reveal),
            payload: Payload {
                content_type: row.content_type.clone(),
                template: row.template.clone(),
            },
            retry: serde_json::to_value(&*row.retry).unwrap_or_default(),
            timeout_ms: row.timeout_ms,
            priority: priority_name(row.priority).into(),
            unique_pending: row.unique_pending,
            disable_on_status: row.disable_on_status.0.clone(),
            unsubscribe_phrase: row.unsubscribe_phrase.clone(),
            unsubscribe_action: row.unsubscribe_action.clone(),
            disable_after_days: row.disable_after_days,
            client_certificate_set: row.client_certificate_enc.is_some(),
            rate_limit_per_second: row.rate_limit_per_second,
            failing_since: iso_opt(row.failing_since),
            last_attempt_at: iso_opt(row.last_attempt_at),
            created_at: iso(row.created_at),
            updated_at: iso(row.updated_at),
            secret,
        }
    }

    pub(crate) async fn endpoint_row(&self, shop_id: &str, id: &str) -> ServiceResult<EndpointRow> {
        let shop_id = &ShopId::from(shop_id);
        let id = &EndpointId::from(id);
        self.store
            .endpoint(shop_id, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("No endpoint with id {id}.")))
    }

    pub async fn create_endpoint(
        &self,
        who: &Principal,
        shop_id: &str,
        input: EndpointInput,
    ) -> ServiceResult<EndpointView> {
        let shop_id = &ShopId::from(shop_id);
        require_manage(who, shop_id)?;
        let shop = self.existing_shop(shop_id).await?;
        let now = now_ms();
        let secret = signing::generate_secret();
        let mut row = EndpointRow {
            id: EndpointId::generate(),
            shop_id: shop_id.clone(),
            url: String::new(),
            description: String::new(),
            enabled: true,
            event_types: Json(Vec::new()),
            channels: Json(Vec::new()),
            basic_auth_username: None,
            basic_auth_password_enc: None,
            headers: Json(Default::default()),
            content_type: "application/json".into(),
            template: None,
            retry: shop.default_retry.clone(),
            timeout_ms: 5000,
            priority: 1,
            unique_pending: false,
            disable_on_status: Json(vec![410]),
            unsubscribe_phrase: Some("please unsubscribe me".into()),
            unsubscribe_action: "disable".into(),
            disable_after_days: Some(5),
            client_certificate_enc: None,
            rate_limit_per_second: None,
            secret_enc: self.seal(&secret),
            previous_secret_enc: None,
            previous_secret_until: None,
            disabled_reason: None,
            failing_since: None,
            last_attempt_at: None,
            created_at: now,
            updated_at: now,
        };
        self.apply(&mut row, input, shop.require_https)?;
        self.store.insert_endpoint(&row).await?;
        tracing::info!(endpoint_id = %row.id, %shop_id, "endpoint created");
        Ok(self.endpoint_view(&row, Some(secret)))
    }

    pub async fn update_endpoint(
        &self,
        who: &Principal,
        shop_id: &str,
        id: &str,
        input: EndpointInput,
    ) -> ServiceResult<EndpointView> {
        let shop_id = &ShopId::from(shop_id);
        let id = &EndpointId::from(id);
        require_manage(who, shop_id)?;
        let shop = self.existing_shop(shop_id).await?;
        let now = now_ms();
        let mut was_enabled = true;
        let row = self
            .store
            .modify_endpoint(shop_id, id, now, |row| {
                was_enabled = row.enabled;
                self.apply(row, input, shop.require_https)
            })
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("No endpoint with id {id}.")))??;
        if row.enabled && !was_enabled {
            // Its held deliveries were resumed.
            self.engine.announce();
        }
        self.engine.endpoint_changed(id).await;
        Ok(self.endpoint_view(&row, None))
    }

    pub async fn get_endpoint(
        &self,
        who: &Principal,
        shop_id: &str,
        id: &str,
    ) -> ServiceResult<EndpointView> {
        let shop_id = &ShopId::from(shop_id);
        let id = &EndpointId::from(id);
        require_read(who, shop_id)?;
        let row = self.endpoint_row(shop_id, id).await?;
        Ok(self.endpoint_view_as(&row, None, who.can_manage(shop_id)))
    }

    pub async fn list_endpoints(
        &self,
        who: &Principal,
        shop_id: &str,
    ) -> ServiceResult<Vec<EndpointView>> {
        let shop_id = &ShopId::from(shop_id);
        require_read(who, shop_id)?;
        let rows = self.store.endpoints_of_shop(shop_id).await?;
        let reveal = who.can_manage(shop_id);
        Ok(rows
            .iter()
            .map(|r| self.endpoint_view_as(r, None, reveal))
            .collect())
    }

    pub async fn delete_endpoint(
        &self,
        who: &Principal,
        shop_id: &str,
        id: &str,
    ) -> ServiceResult<()> {
        let shop_id = &ShopId::from(shop_id);
        let id = &EndpointId::from(id);
        require_manage(who, shop_id)?;
        if self.store.delete_endpoint(shop_id, id).await? {
            self.engine.endpoint_changed(id).await;
            self.engine.forget_endpoint(id);
            tracing::info!(endpoint_id = %id, %shop_id, "endpoint deleted");
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!("No endpoint with id {id}.")))
        }
    }

    /// The signing secret, for owners who ask for it.
    pub async fn endpoint_secret(
        &self,
        who: &Principal,
        shop_id: &str,
        id: &str,
    ) -> ServiceResult<String> {
        let shop_id = &ShopId::from(shop_id);
        let id = &EndpointId::from(id);
        require_manage(who, shop_id)?;
        let row = self.endpoint_row(shop_id, id).await?;
        self.engine.secrets().open(&row.secret_enc).map_err(|e| {
            tracing::error!(error = %e, "could not open a signing secret");
            ServiceError::Internal
        })
    }

    /// A new signing secret; the old one keeps signing (alongside) for 24 hours.
    pub async fn rotate_secret(
        &self,
        who: &Principal,
        shop_id: &str,
        id: &str,
    ) -> ServiceResult<String> {
        let shop_id = &ShopId::from(shop_id);
        let id = &EndpointId::from(id);
        require_manage(who, shop_id)?;
        let secret = signing::generate_secret();
        let sealed = self.seal(&secret);
        let now = now_ms();
        self.store
            .modify_endpoint(shop_id, id, now, |row| {
                row.previous_secret_enc = Some(std::mem::replace(&mut row.secret_enc, sealed));
                row.previous_secret_until = Some(now + 24 * 3_600_000);
                Ok::<(), ServiceError>(())
            })
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("No endpoint with id {id}.")))??;
        self.engine.endpoint_changed(id).await;
        tracing::info!(endpoint_id = %id, "signing secret rotated");
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host_and_https_when_required() {
        assert!(parse_url("https://example.com/hook", true).is_ok());
        assert!(parse_url("http://example.com/hook", false).is_ok());
        assert_eq!(
            parse_url("http://example.com", true).unwrap_err().field(),
            Some("url")
        );
        assert!(parse_url("ftp://example.com", false).is_err());
        assert!(parse_url("not a url", false).is_err());
        assert!(parse_url("https://user:pw@example.com", false).is_err());
    }

    #[test]
    fn channels_follow_the_label_rules() {
        assert!(valid_channel("client_1bd942c0-4cec-486f-be7a-7b14118ad4ad"));
        assert!(valid_channel("agent_32"));
        assert!(!valid_channel(""));
        assert!(!valid_channel("has space"));
    }
}
