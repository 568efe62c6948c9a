//! Sign-in, sign-out and the shop switcher: plain form handlers, so they work without
//! JavaScript.

use super::AppState;
use crate::auth::session;
use app::backend::Backend;
use app::model::{Principal, ServiceError};
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use axum::Form;
use serde::Deserialize;
use std::net::SocketAddr;
use tower_sessions::cookie::{Cookie, SameSite};
use tower_sessions::Session;

#[derive(Deserialize)]
pub struct SignInForm {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub next: String,
}

/// Only same-site paths are followed after sign-in, never another host.
///
/// Browsers drop tabs and newlines from URLs and read `\\` as `/`, so `/\t/evil.example` and
/// `/\\evil.example` mean `//evil.example`: another host. Such characters, and their
/// percent-encoded forms (`/%09/evil.example`, `/%2F/evil.example`), are refused outright;
/// what remains is a path on this host.
fn safe_next(next: &str) -> &str {
    let decoded = percent_decode(next);
    let suspicious = |s: &str| s.chars().any(|c| c.is_control() || c == '\\');
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !suspicious(next)
        && !suspicious(&decoded)
        && !decoded.starts_with("//");
    if local {
        next
    } else {
        "/"
    }
}

/// `%XX` sequences decoded (once, lossily), for judging what a browser would make of a URL.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn back_to_login(error: &str, next: &str) -> Response {
    let mut url = format!("/login?error={error}");
    if next != "/" {
        url.push_str("&next=");
        url.push_str(&super::encode_query_value(next));
    }
    Redirect::to(&url).into_response()
}

pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    session: Session,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = safe_next(&form.next).to_string();
    let email = form.email.trim().to_lowercase();
    let ip = super::client_ip(peer.ip(), &headers, &state.trusted_proxies);
    if !state.signin_throttle.attempt(&email, ip) {
        tracing::warn!(%ip, "sign-in throttled");
        return back_to_login("throttled", &next);
    }
    match state.service.authenticate(&email, &form.password).await {
        Ok(Some((user_id, version))) => {
            // A fresh session id on sign-in, so a planted id cannot be reused (fixation).
            if session.cycle_id().await.is_err()
                || session::sign_in(&session, &user_id, version).await.is_err()
            {
                return back_to_login("expired", &next);
            }
            tracing::info!(%user_id, "signed in");
            if next == "/" {
                let remembered = remembered_shop(&headers);
                return Redirect::to(&landing(&state, &user_id, version, remembered).await)
                    .into_response();
            }
            Redirect::to(&next).into_response()
        }
        Ok(None) => back_to_login("invalid", &next),
        Err(_) => back_to_login("expired", &next),
    }
}

pub async fn sign_out(session: Session) -> Response {
    let _ = session.flush().await;
    Redirect::to("/login").into_response()
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub current_password: String,
    #[serde(default)]
    pub new_password: String,
}

/// The Account page's form: changes the signed-in user's password. This session moves to the
/// new session version (a fresh id, too); every other session of the user ends.
pub async fn change_password(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    session: Session,
    Form(form): Form<PasswordForm>,
) -> Response {
    let result = state
        .service
        .change_own_password(&who, &form.current_password, &form.new_password)
        .await;
    match result {
        Ok(version) => {
            if session.cycle_id().await.is_err()
                || session::sign_in(&session, &who.user_id, version)
                    .await
                    .is_err()
            {
                return Redirect::to("/login").into_response();
            }
            Redirect::to("/account?changed=1").into_response()
        }
        Err(ServiceError::Invalid { field, .. }) => {
            Redirect::to(&format!("/account?error={field}")).into_response()
        }
        Err(_) => Redirect::to("/account?error=internal").into_response(),
    }
}

#[derive(Deserialize)]
pub struct SwitchQuery {
    #[serde(default)]
    pub shop: String,
}

/// The cookie naming the shop last chosen in the switcher: where the next sign-in lands. Only
/// an id, checked against the user's rights when it is used.
const LAST_SHOP_COOKIE: &str = "herald_shop";

/// A shop id as it may appear in a path or a cookie: letters, digits and `_`.
fn clean_shop_id(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The shop the switcher last chose in this browser, if its cookie is there.
fn remembered_shop(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == LAST_SHOP_COOKIE)
        .map(|c| clean_shop_id(c.value()))
        .filter(|id| !id.is_empty())
}

/// Where a sign-in without a `next` lands: the shop the switcher last chose, if the user may
/// still open it; else the user's only shop; else the list of shops.
async fn landing(
    state: &AppState,
    user_id: &str,
    version: i64,
    remembered: Option<String>,
) -> String {
    let Ok(Some(who)) = session::load_principal(&state.service.store, user_id, version).await
    else {
        return "/".into();
    };
    if let Some(id) = remembered {
        if state.service.shop(&who, &id).await.is_ok() {
            return format!("/shops/{id}");
        }
    }
    match who.memberships.as_slice() {
        [only] if !who.operator => format!("/shops/{}", only.shop_id),
        _ => "/".into(),
    }
}

/// The shop switcher's target: the chosen shop's dashboard, remembered for the next sign-in
/// (choosing "All shops" forgets it).
pub async fn switch_shop(State(state): State<AppState>, Query(q): Query<SwitchQuery>) -> Response {
    let id = clean_shop_id(&q.shop);
    let target = if id.is_empty() {
        "/".to_string()
    } else {
        format!("/shops/{id}")
    };
    let mut cookie = Cookie::build((LAST_SHOP_COOKIE, id.clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies)
        .build();
    if id.is_empty() {
        cookie.make_removal();
    } else {
        cookie.set_max_age(tower_sessions::cookie::time::Duration::days(365));
    }
    (
        [(axum::http::header::SET_COOKIE, cookie.to_string())],
        Redirect::to(&target),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_remembered_shop_is_read_from_its_cookie_only() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(super::remembered_shop(&headers), None);
        headers.insert(
            axum::http::header::COOKIE,
            "id=abc; herald_shop=shp_01x\"<b>; other=1".parse().unwrap(),
        );
        assert_eq!(
            super::remembered_shop(&headers).as_deref(),
            Some("shp_01xb")
        );
        headers.insert(axum::http::header::COOKIE, "herald_shop=".parse().unwrap());
        assert_eq!(super::remembered_shop(&headers), None);
    }

    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/shops/shp_1"), "/shops/shp_1");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next(""), "/");
        assert_eq!(
            safe_next("/shops/shp_1/queue?status=failed"),
            "/shops/shp_1/queue?status=failed"
        );
    }

    #[test]
    fn next_tricks_that_browsers_read_as_another_host_end_on_this_one() {
        for next in [
            "/%09/evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "\\\\evil.example",
            "/%5Cevil.example",
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "%2F%2Fevil.example",
            "/%0a/evil.example",
            "https:/evil.example",
        ] {
            assert_eq!(safe_next(next), "/", "{next:?}");
        }
    }
}
