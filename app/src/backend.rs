//! The seam between the UI and the server: server functions reach Herald's service layer
//! through the [`Backend`] trait, which the `herald` crate implements and provides as context.
//! The UI crate never depends on the server crate.

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
    async fn create_user(
        &self,
        who: &Principal,
        email: &str,
        password: &str,
        role: &str,
        shop_id: Option<&str>,
    ) -> ServiceResult<String>;
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
