//! The seam between the UI and the server: server functions reach Herald's service layer
//! through the [`Backend`] trait, which the `herald` crate implements and provides as context.
//! The UI crate never depends on the server crate.

use crate::dto::*;
use crate::model::*;
use leptos::prelude::*;
use std::sync::Arc;

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Everything the panel asks of the server. Every method checks the principal's rights itself.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn list_shops(&self, who: &Principal) -> ServiceResult<Vec<ShopSummary>>;
    async fn shop(&self, who: &Principal, shop_id: &str) -> ServiceResult<ShopSummary>;
    async fn create_shop(
        &self,
        who: &Principal,
        name: &str,
        enable_webhooks: bool,
    ) -> ServiceResult<ShopSummary>;
    async fn set_webhooks_enabled(
        &self,
        who: &Principal,
        shop_id: &str,
        enabled: bool,
    ) -> ServiceResult<()>;
    async fn list_users(&self, who: &Principal) -> ServiceResult<Vec<UserSummary>>;
    /// Every node sharing the database (operators).
    async fn list_nodes(&self, who: &Principal) -> ServiceResult<NodesOverview>;
    async fn create_user(
        &self,
        who: &Principal,
        email: &str,
        password: &str,
        role: &str,
        shop_id: Option<&str>,
    ) -> ServiceResult<String>;
    /// An operator sets another user's password; that user's sessions end.
    async fn reset_password(
        &self,
        who: &Principal,
        user_id: &str,
        password: &str,
    ) -> ServiceResult<()>;
    async fn list_members(&self, who: &Principal, shop_id: &str) -> ServiceResult<Vec<Member>>;
    /// Adds an existing user by email, or creates the user when a password is given.
    async fn add_member(
        &self,
        who: &Principal,
        shop_id: &str,
        email: &str,
        password: Option<&str>,
        role: ShopRole,
    ) -> ServiceResult<()>;
    async fn remove_member(
        &self,
        who: &Principal,
        shop_id: &str,
        user_id: &str,
    ) -> ServiceResult<()>;

    // Endpoints. `input` is the REST API's endpoint body, so both share one validation.
    async fn list_endpoints(&self, who: &Principal, shop: &str)
        -> ServiceResult<Vec<EndpointView>>;
    async fn get_endpoint(
        &self,
        who: &Principal,
        shop: &str,
        id: &str,
    ) -> ServiceResult<EndpointView>;
    async fn save_endpoint(
        &self,
        who: &Principal,
        shop: &str,
        id: Option<&str>,
        input: serde_json::Value,
    ) -> ServiceResult<EndpointView>;
    async fn delete_endpoint(&self, who: &Principal, shop: &str, id: &str) -> ServiceResult<()>;
    async fn endpoint_secret(&self, who: &Principal, shop: &str, id: &str)
        -> ServiceResult<String>;
    async fn rotate_secret(&self, who: &Principal, shop: &str, id: &str) -> ServiceResult<String>;
    async fn send_test(
        &self,
        who: &Principal,
        shop: &str,
        id: &str,
        event_type: Option<String>,
    ) -> ServiceResult<(String, String)>;
    async fn preview_template(
        &self,
        who: &Principal,
        shop: &str,
        event_type: &str,
        content_type: &str,
        template: &str,
    ) -> ServiceResult<PreviewView>;
    fn retry_presets(&self) -> Vec<RetryPresetView>;

    // Catalog, channels, alerts.
    async fn event_types(&self, who: &Principal, shop: &str) -> ServiceResult<Vec<EventTypeView>>;
    async fn save_event_type(
        &self,
        who: &Principal,
        shop: &str,
        name: &str,
        description: &str,
        sample: &str,
        create: bool,
    ) -> ServiceResult<EventTypeView>;
    async fn channels(&self, who: &Principal, shop: &str) -> ServiceResult<Vec<ChannelView>>;
    async fn alerts(
        &self,
        who: &Principal,
        shop: &str,
        cursor: Option<String>,
    ) -> ServiceResult<Page<AlertView>>;
    async fn acknowledge_alert(&self, who: &Principal, shop: &str, id: &str) -> ServiceResult<()>;

    // The queue and the logs.
    async fn list_deliveries(
        &self,
        who: &Principal,
        shop: &str,
        q: &DeliveryQuery,
        cursor: Option<String>,
        limit: i64,
    ) -> ServiceResult<Page<DeliveryView>>;
    async fn count_deliveries(
        &self,
        who: &Principal,
        shop: &str,
        q: &DeliveryQuery,
    ) -> ServiceResult<i64>;
    /// Bulk changes still being worked through (and those just finished).
    async fn bulk_changes(&self, who: &Principal, shop: &str)
        -> ServiceResult<Vec<BulkChangeView>>;
    async fn get_delivery(
        &self,
        who: &Principal,
        shop: &str,
        id: &str,
    ) -> ServiceResult<DeliveryView>;
    /// Retries (or cancels) each delivery that allows it; returns how many changed.
    async fn act_on_deliveries(
        &self,
        who: &Principal,
        shop: &str,
        ids: &[String],
        cancel: bool,
    ) -> ServiceResult<u64>;
    async fn bulk_retry(
        &self,
        who: &Principal,
        shop: &str,
        q: &DeliveryQuery,
    ) -> ServiceResult<u64>;
    async fn list_attempts(
        &self,
        who: &Principal,
        shop: &str,
        cursor: Option<i64>,
        limit: i64,
    ) -> ServiceResult<Page<AttemptLogView>>;
    /// One attempt with its request and response.
    async fn get_attempt(
        &self,
        who: &Principal,
        shop: &str,
        id: i64,
    ) -> ServiceResult<(AttemptLogView, AttemptView)>;

    // Settings and the dashboard.
    async fn settings(&self, who: &Principal, shop: &str) -> ServiceResult<ShopSettings>;
    async fn save_settings(
        &self,
        who: &Principal,
        shop: &str,
        settings: ShopSettings,
    ) -> ServiceResult<()>;
    async fn api_keys(&self, who: &Principal, shop: &str) -> ServiceResult<Vec<ApiKeyView>>;
    /// A new API key, shown once.
    async fn create_api_key(
        &self,
        who: &Principal,
        shop: &str,
        name: &str,
    ) -> ServiceResult<String>;
    async fn revoke_api_key(&self, who: &Principal, shop: &str, id: &str) -> ServiceResult<()>;
    async fn dashboard(&self, who: &Principal, shop: &str) -> ServiceResult<DashboardView>;
    /// Per endpoint: (id, succeeded, attempts) over the last 7 days.
    async fn endpoint_success(
        &self,
        who: &Principal,
        shop: &str,
    ) -> ServiceResult<Vec<(String, i64, i64)>>;
}

pub type SharedBackend = Arc<dyn Backend>;

/// The backend the server put in context.
pub fn backend() -> Result<SharedBackend, ServerFnError> {
    use_context::<SharedBackend>().ok_or_else(|| ServerFnError::new("the backend is not available"))
}

/// The signed-in principal the server's session layer attached to this request.
pub fn principal() -> Result<Principal, ServerFnError> {
    use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>().cloned())
        .ok_or_else(|| fail(ServiceError::Unauthorized))
}

/// Turns a service error into a server-function error, with the matching HTTP status.
pub fn fail(err: ServiceError) -> ServerFnError {
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(status) = http::StatusCode::from_u16(err.status()) {
            resp.set_status(status);
        }
    }
    ServerFnError::new(err.to_string())
}
