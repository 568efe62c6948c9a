//! The session's principal: who is signed in, resolved from the session on each request.

use crate::store::Store;
use app::model::{Membership, Principal, ShopRole};

/// The session key holding the signed-in user's id.
pub const USER_KEY: &str = "user_id";

/// Loads the principal for a user id from the store; `None` when the user no longer exists.
pub async fn load_principal(store: &Store, user_id: &str) -> sqlx::Result<Option<Principal>> {
    let Some(user) = store.user(user_id).await? else {
        return Ok(None);
    };
    let memberships = store
        .memberships_of_user(user_id)
        .await?
        .into_iter()
        .filter_map(|m| {
            Some(Membership {
                role: ShopRole::parse(&m.role)?,
                shop_id: m.shop_id,
                shop_name: m.shop_name,
            })
        })
        .collect();
    Ok(Some(Principal {
        user_id: user.id,
        email: user.email,
        operator: user.is_operator,
        memberships,
    }))
}
