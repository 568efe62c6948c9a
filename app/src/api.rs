//! Server functions: the panel's calls into the server. Each one resolves the signed-in
//! principal and asks the [`crate::backend::Backend`], which checks the principal's rights.

use crate::model::*;
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use crate::backend::{backend, fail, principal};

/// The signed-in person, or `None` for an anonymous visitor.
#[server]
pub async fn whoami() -> Result<Option<Principal>, ServerFnError> {
    Ok(principal().ok())
}

#[server]
pub async fn list_shops() -> Result<Vec<ShopSummary>, ServerFnError> {
    let who = principal()?;
    backend()?.list_shops(&who).await.map_err(fail)
}

#[server]
pub async fn get_shop(shop_id: String) -> Result<ShopSummary, ServerFnError> {
    let who = principal()?;
    backend()?.shop(&who, &shop_id).await.map_err(fail)
}

#[server]
pub async fn create_shop(
    name: String,
    enable_webhooks: Option<String>,
) -> Result<(), ServerFnError> {
    let who = principal()?;
    backend()?
        .create_shop(&who, &name, enable_webhooks.is_some())
        .await
        .map(|_| ())
        .map_err(fail)
}

#[server]
pub async fn set_webhooks(shop_id: String, enabled: bool) -> Result<(), ServerFnError> {
    let who = principal()?;
    backend()?
        .set_webhooks_enabled(&who, &shop_id, enabled)
        .await
        .map_err(fail)
}

#[server]
pub async fn list_nodes() -> Result<NodesOverview, ServerFnError> {
    let who = principal()?;
    backend()?.list_nodes(&who).await.map_err(fail)
}

#[server]
pub async fn list_users() -> Result<Vec<UserSummary>, ServerFnError> {
    let who = principal()?;
    backend()?.list_users(&who).await.map_err(fail)
}

#[server]
pub async fn create_user(
    email: String,
    password: String,
    role: String,
    shop_id: Option<String>,
) -> Result<(), ServerFnError> {
    let who = principal()?;
    let shop_id = shop_id.filter(|s| !s.is_empty());
    backend()?
        .create_user(&who, &email, &password, &role, shop_id.as_deref())
        .await
        .map(|_| ())
        .map_err(fail)
}

#[server]
pub async fn reset_password(user_id: String, password: String) -> Result<(), ServerFnError> {
    let who = principal()?;
    backend()?
        .reset_password(&who, &user_id, &password)
        .await
        .map_err(fail)
}

#[server]
pub async fn list_members(shop_id: String) -> Result<Vec<Member>, ServerFnError> {
    let who = principal()?;
    backend()?.list_members(&who, &shop_id).await.map_err(fail)
}

#[server]
pub async fn add_member(
    shop_id: String,
    email: String,
    password: Option<String>,
    role: String,
) -> Result<(), ServerFnError> {
    let who = principal()?;
    let role = ShopRole::parse(&role)
        .ok_or_else(|| fail(ServiceError::invalid("role", "must be owner or viewer")))?;
    let password = password.filter(|p| !p.is_empty());
    backend()?
        .add_member(&who, &shop_id, &email, password.as_deref(), role)
        .await
        .map_err(fail)
}

#[server]
pub async fn remove_member(shop_id: String, user_id: String) -> Result<(), ServerFnError> {
    let who = principal()?;
    backend()?
        .remove_member(&who, &shop_id, &user_id)
        .await
        .map_err(fail)
}

/// The message of a server-function error, without the framework's prefix.
pub fn error_text(err: &ServerFnError) -> String {
    match err {
        ServerFnError::ServerError(m) => m.clone(),
        other => other.to_string(),
    }
}

// ---- Panel: endpoints, catalog, queue, logs, alerts, settings, dashboard ----

use crate::dto::*;

/// Splits "a, b c" into ["a", "b", "c"].
pub fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

#[server]
pub async fn list_endpoints(shop_id: String) -> Result<Vec<EndpointView>, ServerFnError> {
    backend()?
        .list_endpoints(&principal()?, &shop_id)
        .await
        .map_err(fail)
}

#[server]
pub async fn get_endpoint(shop_id: String, id: String) -> Result<EndpointView, ServerFnError> {
    backend()?
        .get_endpoint(&principal()?, &shop_id, &id)
        .await
        .map_err(fail)
}

pub use crate::endpoint_form::EndpointFormData;

/// Creates (no id) or updates an endpoint from the endpoint form; on creation the result
/// carries the signing secret (shown once).
#[server]
pub async fn save_endpoint(form: EndpointFormData) -> Result<EndpointView, ServerFnError> {
    let who = principal()?;
    let input = form
        .to_input()
        .map_err(|(field, message)| fail(ServiceError::invalid(&field, &message)))?;
    backend()?
        .save_endpoint(
            &who,
            &form.shop_id,
            form.id.as_deref().filter(|i| !i.is_empty()),
            input,
        )
        .await
        .map_err(fail)
}

#[server]
pub async fn set_endpoint_enabled(
    shop_id: String,
    id: String,
    enabled: bool,
) -> Result<(), ServerFnError> {
    backend()?
        .save_endpoint(
            &principal()?,
            &shop_id,
            Some(&id),
            serde_json::json!({"enabled": enabled}),
        )
        .await
        .map(|_| ())
        .map_err(fail)
}

#[server]
pub async fn delete_endpoint(shop_id: String, id: String) -> Result<(), ServerFnError> {
    backend()?
        .delete_endpoint(&principal()?, &shop_id, &id)
        .await
        .map_err(fail)?;
    leptos_axum::redirect(&format!("/shops/{shop_id}/endpoints"));
    Ok(())
}

#[server]
pub async fn reveal_secret(shop_id: String, id: String) -> Result<String, ServerFnError> {
    backend()?
        .endpoint_secret(&principal()?, &shop_id, &id)
        .await
        .map_err(fail)
}

#[server]
pub async fn rotate_secret(shop_id: String, id: String) -> Result<String, ServerFnError> {
    backend()?
        .rotate_secret(&principal()?, &shop_id, &id)
        .await
        .map_err(fail)
}

/// Sends a sample event to one endpoint; returns the delivery id.
#[server]
pub async fn send_test_event(
    shop_id: String,
    id: String,
    event_type: String,
) -> Result<String, ServerFnError> {
    let event_type = Some(event_type).filter(|t| !t.is_empty());
    backend()?
        .send_test(&principal()?, &shop_id, &id, event_type)
        .await
        .map(|(_, delivery)| delivery)
        .map_err(fail)
}

#[server]
pub async fn preview_template(
    shop_id: String,
    event_type: String,
    content_type: String,
    template: String,
) -> Result<PreviewView, ServerFnError> {
    backend()?
        .preview_template(
            &principal()?,
            &shop_id,
            &event_type,
            &content_type,
            &template,
        )
        .await
        .map_err(fail)
}

#[server]
pub async fn retry_presets() -> Result<Vec<RetryPresetView>, ServerFnError> {
    principal()?;
    Ok(backend()?.retry_presets())
}

#[server]
pub async fn list_event_types(shop_id: String) -> Result<Vec<EventTypeView>, ServerFnError> {
    backend()?
        .event_types(&principal()?, &shop_id)
        .await
        .map_err(fail)
}

#[server]
pub async fn save_event_type(
    shop_id: String,
    name: String,
    description: String,
    sample: String,
    create: bool,
) -> Result<(), ServerFnError> {
    backend()?
        .save_event_type(
            &principal()?,
            &shop_id,
            name.trim(),
            &description,
            &sample,
            create,
        )
        .await
        .map(|_| ())
        .map_err(fail)
}

#[server]
pub async fn list_bulk_changes(shop_id: String) -> Result<Vec<BulkChangeView>, ServerFnError> {
    backend()?
        .bulk_changes(&principal()?, &shop_id)
        .await
        .map_err(fail)
}

#[server]
pub async fn list_channels(shop_id: String) -> Result<Vec<ChannelView>, ServerFnError> {
    backend()?
        .channels(&principal()?, &shop_id)
        .await
        .map_err(fail)
}

/// Adds a channel to an endpoint's channels.
#[server]
pub async fn assign_channel(
    shop_id: String,
    endpoint_id: String,
    channel: String,
) -> Result<(), ServerFnError> {
    let who = principal()?;
    let b = backend()?;
    let ep = b
        .get_endpoint(&who, &shop_id, &endpoint_id)
        .await
        .map_err(fail)?;
    let mut channels = ep.channels;
    let channel = channel.trim().to_string();
    if !channels.contains(&channel) {
        channels.push(channel);
    }
    b.save_endpoint(
        &who,
        &shop_id,
        Some(&endpoint_id),
        serde_json::json!({"channels": channels}),
    )
    .await
    .map(|_| ())
    .map_err(fail)
}

#[server]
pub async fn list_alerts(
    shop_id: String,
    cursor: Option<String>,
) -> Result<Page<AlertView>, ServerFnError> {
    backend()?
        .alerts(&principal()?, &shop_id, cursor)
        .await
        .map_err(fail)
}

#[server]
pub async fn acknowledge_alert(shop_id: String, id: String) -> Result<(), ServerFnError> {
    backend()?
        .acknowledge_alert(&principal()?, &shop_id, &id)
        .await
        .map_err(fail)
}

/// JSON-encoded: a URL-encoded body cannot carry a filter whose fields are all empty.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn list_deliveries(
    shop_id: String,
    query: DeliveryQuery,
    cursor: Option<String>,
) -> Result<Page<DeliveryView>, ServerFnError> {
    backend()?
        .list_deliveries(&principal()?, &shop_id, &query, cursor, 50)
        .await
        .map_err(fail)
}

/// JSON-encoded: a URL-encoded body cannot carry a filter whose fields are all empty.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn count_deliveries(shop_id: String, query: DeliveryQuery) -> Result<i64, ServerFnError> {
    backend()?
        .count_deliveries(&principal()?, &shop_id, &query)
        .await
        .map_err(fail)
}

#[server]
pub async fn get_delivery(shop_id: String, id: String) -> Result<DeliveryView, ServerFnError> {
    backend()?
        .get_delivery(&principal()?, &shop_id, &id)
        .await
        .map_err(fail)
}

/// Retries or cancels the given deliveries (`ids` separated by commas); returns how many.
#[server]
pub async fn act_on_deliveries(
    shop_id: String,
    ids: String,
    cancel: bool,
) -> Result<u64, ServerFnError> {
    let ids = split_list(&ids);
    if ids.is_empty() {
        return Err(fail(ServiceError::invalid(
            "ids",
            "select at least one delivery",
        )));
    }
    backend()?
        .act_on_deliveries(&principal()?, &shop_id, &ids, cancel)
        .await
        .map_err(fail)
}

/// JSON-encoded: a URL-encoded body cannot carry a filter whose fields are all empty.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn retry_all_failed(shop_id: String, query: DeliveryQuery) -> Result<u64, ServerFnError> {
    let mut query = query;
    query.status = Some("failed".into());
    backend()?
        .bulk_retry(&principal()?, &shop_id, &query)
        .await
        .map_err(fail)
}

#[server]
pub async fn list_attempts(
    shop_id: String,
    cursor: Option<i64>,
) -> Result<Page<AttemptLogView>, ServerFnError> {
    backend()?
        .list_attempts(&principal()?, &shop_id, cursor, 50)
        .await
        .map_err(fail)
}

#[server]
pub async fn get_attempt(
    shop_id: String,
    id: i64,
) -> Result<(AttemptLogView, AttemptView), ServerFnError> {
    backend()?
        .get_attempt(&principal()?, &shop_id, id)
        .await
        .map_err(fail)
}

#[server]
pub async fn get_settings(shop_id: String) -> Result<ShopSettings, ServerFnError> {
    backend()?
        .settings(&principal()?, &shop_id)
        .await
        .map_err(fail)
}

/// Saves a shop's settings; the default retry policy comes as its fields, like an endpoint's.
#[server]
pub async fn save_settings(
    shop_id: String,
    failed_retention_hours: i64,
    log_retention_days: i64,
    require_https: Option<String>,
    retry: crate::endpoint_form::RetryFields,
) -> Result<(), ServerFnError> {
    let retry = retry
        .to_policy()
        .map_err(|(field, message)| fail(ServiceError::invalid(&field, &message)))?;
    let settings = ShopSettings {
        failed_retention_hours,
        log_retention_days,
        require_https: require_https.is_some(),
        default_retry: retry,
    };
    backend()?
        .save_settings(&principal()?, &shop_id, settings)
        .await
        .map_err(fail)
}

#[server]
pub async fn list_api_keys(shop_id: String) -> Result<Vec<ApiKeyView>, ServerFnError> {
    backend()?
        .api_keys(&principal()?, &shop_id)
        .await
        .map_err(fail)
}

#[server]
pub async fn create_api_key(shop_id: String, name: String) -> Result<String, ServerFnError> {
    backend()?
        .create_api_key(&principal()?, &shop_id, &name)
        .await
        .map_err(fail)
}

#[server]
pub async fn revoke_api_key(shop_id: String, id: String) -> Result<(), ServerFnError> {
    backend()?
        .revoke_api_key(&principal()?, &shop_id, &id)
        .await
        .map_err(fail)
}

#[server]
pub async fn get_dashboard(shop_id: String) -> Result<DashboardView, ServerFnError> {
    backend()?
        .dashboard(&principal()?, &shop_id)
        .await
        .map_err(fail)
}

/// Per endpoint: (id, succeeded, attempts) over the last 7 days.
#[server]
pub async fn endpoint_success(shop_id: String) -> Result<Vec<(String, i64, i64)>, ServerFnError> {
    backend()?
        .endpoint_success(&principal()?, &shop_id)
        .await
        .map_err(fail)
}
