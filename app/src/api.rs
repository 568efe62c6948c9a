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
