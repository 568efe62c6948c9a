//! Users and their memberships in shops.

use super::{on_reader, on_writer, Result, Store};
use crate::ids::now_ms;
use crate::ids::{ShopId, UserId};

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    /// The argon2id PHC string; never leaves the server.
    pub password_hash: String,
    pub is_operator: bool,
    pub created_at: i64,
    /// Bumped on every password change; a session signed in under another version is over.
    pub session_version: i64,
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct MembershipRow {
    pub shop_id: ShopId,
    pub shop_name: String,
    pub user_id: UserId,
    pub email: String,
    pub role: String,
    pub created_at: i64,
}

const MEMBERSHIP_SELECT: &str = "SELECT m.shop_id, s.name AS shop_name, m.user_id, u.email,
    m.role, m.created_at FROM memberships m JOIN shops s ON s.id = m.shop_id
    JOIN users u ON u.id = m.user_id";

impl Store {
    pub async fn count_users(&self) -> Result<i64> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_scalar(&d.sql("SELECT COUNT(*) FROM users"))
                .fetch_one(pool)
                .await?)
        })
    }

    /// Creates a user and, when `membership` is given, their role in that shop, in one
    /// transaction: either both exist afterwards or neither.
    pub async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        is_operator: bool,
        membership: Option<(&str, &str)>,
    ) -> Result<UserId> {
        on_writer!(self, |pool, d| {
            let id = UserId::generate();
            let now = now_ms();
            let mut tx = pool.begin().await?;
            sqlx::query(&d.sql(
                "INSERT INTO users (id, email, password_hash, is_operator, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?)",
            ))
            .bind(&id)
            .bind(email)
            .bind(password_hash)
            .bind(is_operator)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some((shop_id, role)) = membership {
                sqlx::query(&d.sql("INSERT INTO memberships (shop_id, user_id, role, created_at) VALUES (?, ?, ?, ?)"))
            .bind(shop_id)
            .bind(&id)
            .bind(role)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            }
            tx.commit().await?;
            Ok(id)
        })
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>> {
        on_reader!(self, |pool, d| {
            // SQLite's column compares without case (NOCASE); PostgreSQL's unique index is on
            // lower(email).
            let sql = d.pick(
            "SELECT id, email, password_hash, is_operator, created_at, session_version FROM users WHERE email = ?",
            "SELECT id, email, password_hash, is_operator, created_at, session_version FROM users WHERE lower(email) = lower($1)",
        );
            Ok(sqlx::query_as(sql).bind(email).fetch_optional(pool).await?)
        })
    }

    pub async fn user(&self, user_id: &UserId) -> Result<Option<UserRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql("SELECT id, email, password_hash, is_operator, created_at, session_version FROM users WHERE id = ?"))
        .bind(user_id)
        .fetch_optional(pool)
        .await?)
        })
    }

    pub async fn all_users(&self) -> Result<Vec<UserRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql("SELECT id, email, password_hash, is_operator, created_at, session_version FROM users ORDER BY lower(email)"))
        .fetch_all(pool)
        .await?)
        })
    }

    /// Sets a user's password hash and bumps their session version, so every session signed
    /// in before ends; the new version, or `None` when there is no such user.
    pub async fn set_password(&self, user_id: &UserId, password_hash: &str) -> Result<Option<i64>> {
        on_writer!(self, |pool, d| {
            Ok(sqlx::query_scalar(&d.sql(
                "UPDATE users SET password_hash = ?, session_version = session_version + 1,
             updated_at = ? WHERE id = ? RETURNING session_version",
            ))
            .bind(password_hash)
            .bind(now_ms())
            .bind(user_id)
            .fetch_optional(pool)
            .await?)
        })
    }

    pub async fn memberships_of_user(&self, user_id: &UserId) -> Result<Vec<MembershipRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(&format!(
                "{MEMBERSHIP_SELECT} WHERE m.user_id = ? ORDER BY lower(s.name)"
            )))
            .bind(user_id)
            .fetch_all(pool)
            .await?)
        })
    }

    pub async fn all_memberships(&self) -> Result<Vec<MembershipRow>> {
        on_reader!(self, |pool, d| {
            Ok(
                sqlx::query_as(&d.sql(&format!("{MEMBERSHIP_SELECT} ORDER BY lower(s.name)")))
                    .fetch_all(pool)
                    .await?,
            )
        })
    }

    pub async fn members_of_shop(&self, shop_id: &ShopId) -> Result<Vec<MembershipRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(&format!(
                "{MEMBERSHIP_SELECT} WHERE m.shop_id = ? ORDER BY u.email"
            )))
            .bind(shop_id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Adds the user to the shop, or changes their role there.
    pub async fn upsert_membership(
        &self,
        shop_id: &ShopId,
        user_id: &UserId,
        role: &str,
    ) -> Result<()> {
        on_writer!(self, |pool, d| {
            sqlx::query(&d.sql(
                "INSERT INTO memberships (shop_id, user_id, role, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (shop_id, user_id) DO UPDATE SET role = excluded.role",
            ))
            .bind(shop_id)
            .bind(user_id)
            .bind(role)
            .bind(now_ms())
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Returns false when the user was not a member of the shop.
    pub async fn delete_membership(&self, shop_id: &ShopId, user_id: &UserId) -> Result<bool> {
        on_writer!(self, |pool, d| {
            let done =
                sqlx::query(&d.sql("DELETE FROM memberships WHERE shop_id = ? AND user_id = ?"))
                    .bind(shop_id)
                    .bind(user_id)
                    .execute(pool)
                    .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}
