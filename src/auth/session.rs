//! The session's principal: who is signed in, resolved from the session on each request.

use crate::store::Store;
use app::model::{Membership, Principal, ShopRole};
use tower_sessions::Session;

/// The session key holding the signed-in user's id.
pub const USER_KEY: &str = "user_id";
/// The session key holding the user's session version when they signed in; a password change
/// bumps the user's version and so ends every session signed in before it.
pub const VERSION_KEY: &str = "session_version";

/// Marks the session as signed in by this user under this session version.
pub async fn sign_in(
    session: &Session,
    user_id: &str,
    version: i64,
) -> Result<(), tower_sessions::session::Error> {
    session.insert(USER_KEY, user_id).await?;
    session.insert(VERSION_KEY, version).await
}

/// The signed-in user's id and session version, when the session has one. Sessions from
/// before versions existed count as version 0, the version every user starts with.
pub async fn signed_in_user(session: &Session) -> Option<(String, i64)> {
    let user_id: String = session.get(USER_KEY).await.ok().flatten()?;
    let version: i64 = session.get(VERSION_KEY).await.ok().flatten().unwrap_or(0);
    Some((user_id, version))
}

/// Loads the principal for a user id from the store; `None` when the user no longer exists
/// or the session was signed in under an older session version (the password changed since).
pub async fn load_principal(
    store: &Store,
    user_id: &str,
    version: i64,
) -> crate::store::Result<Option<Principal>> {
    let user_id = crate::ids::UserId::from(user_id);
    let Some(user) = store.user(&user_id).await? else {
        return Ok(None);
    };
    if user.session_version != version {
        return Ok(None);
    }
    let memberships = store
        .memberships_of_user(&user_id)
        .await?
        .into_iter()
        .filter_map(|m| {
            Some(Membership {
                role: ShopRole::parse(&m.role)?,
                shop_id: m.shop_id.into(),
                shop_name: m.shop_name,
            })
        })
        .collect();
    Ok(Some(Principal {
        user_id: user.id.into(),
        email: user.email,
        operator: user.is_operator,
        memberships,
    }))
}
