//! The access gate in front of every panel page and server function: resolves the session's
//! principal, sends anonymous visitors to the sign-in page, answers 403 to those without the
//! role a path needs, and refuses cross-site form posts.

use super::AppState;
use crate::auth::session::{load_principal, signed_in_user};
use app::model::Principal;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use tower_sessions::Session;

/// Paths anyone may fetch: the sign-in page, health, static assets, and the REST API (which
/// authenticates with API keys instead of sessions).
fn is_public(path: &str) -> bool {
    path == "/login"
        || path == "/healthz"
        || path == "/metrics"
        || path == "/favicon.ico"
        || path.starts_with("/pkg/")
        || path.starts_with("/api/v1/")
        || path == "/api/v1"
}

/// What a path requires of the principal.
#[derive(Debug, PartialEq, Eq)]
pub enum Requirement {
    SignedIn,
    Operator,
    ReadShop(String),
    ManageShop(String),
}

pub fn requirement(path: &str) -> Requirement {
    if path.starts_with("/admin") {
        return Requirement::Operator;
    }
    if let Some(rest) = path.strip_prefix("/shops/") {
        let mut parts = rest.split('/');
        let shop = parts.next().unwrap_or_default().to_string();
        return match parts.next() {
            Some("members") => Requirement::ManageShop(shop),
            _ => Requirement::ReadShop(shop),
        };
    }
    Requirement::SignedIn
}

fn allowed(p: &Principal, req: &Requirement) -> bool {
    match req {
        Requirement::SignedIn => true,
        Requirement::Operator => p.operator,
        Requirement::ReadShop(shop) => p.can_read(shop),
        Requirement::ManageShop(shop) => p.can_manage(shop),
    }
}

/// A state-changing request from another site (a forged form post) is refused. Browsers send
/// `Origin` on cross-origin posts and `Sec-Fetch-Site` on every request.
///
/// With `HERALD_PUBLIC_URL` set, the origin must be that URL's (behind a proxy the `Host`
/// header may be the proxy's idea of the upstream, not what the browser used).
fn is_cross_site(req: &Request, public_origin: Option<&str>) -> bool {
    let headers = req.headers();
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        if let Some(expected) = public_origin {
            return !origin.eq_ignore_ascii_case(expected);
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let origin_host = origin.split("://").nth(1).unwrap_or(origin);
        return origin == "null" || !origin_host.eq_ignore_ascii_case(host);
    }
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
}

pub fn forbidden_page() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Forbidden · Herald</title>\
             <link rel=\"stylesheet\" href=\"/pkg/herald.css\"></head><body><main class=\"narrow\">\
             <h1>Forbidden</h1><p>You do not have access to this page.</p>\
             <p><a href=\"/\">Back to your shops</a></p></main></body></html>",
        ),
    )
        .into_response()
}

/// The session store saves a session only when it changes, and its 7-day expiry moves only
/// on a save: an active session would expire 7 days after sign-in. A session in use is saved
/// again once a day, so only 7 days of inactivity end it.
async fn keep_alive(session: &Session) {
    let now = crate::ids::now_ms();
    let saved: Option<i64> = session.get(SAVED_KEY).await.ok().flatten();
    if due_for_saving(saved, now) {
        let _ = session.insert(SAVED_KEY, now).await;
    }
}

/// Whether a session last saved at `saved` (by [`keep_alive`]) is saved again now.
fn due_for_saving(saved: Option<i64>, now: i64) -> bool {
    const DAY_MS: i64 = 86_400_000;
    saved.is_none_or(|t| now - t >= DAY_MS)
}

/// When the session was last saved by [`keep_alive`], in ms.
const SAVED_KEY: &str = "saved_at";

pub async fn gate(
    State(state): State<AppState>,
    session: Session,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method
        && !path.starts_with("/api/v1")
        && is_cross_site(&req, state.public_origin.as_deref())
    {
        return (
            StatusCode::FORBIDDEN,
            "Cross-site form posts are not accepted.",
        )
            .into_response();
    }

    let principal = match signed_in_user(&session).await {
        Some((id, version)) => {
            let principal = load_principal(&state.service.store, &id, version)
                .await
                .ok()
                .flatten();
            if principal.is_none() {
                // The user is gone or changed their password since: this session is over.
                let _ = session.flush().await;
            }
            principal
        }
        None => None,
    };
    if let Some(p) = &principal {
        req.extensions_mut().insert(p.clone());
        keep_alive(&session).await;
    }
    if is_public(&path) {
        return next.run(req).await;
    }

    let Some(p) = principal else {
        if unsafe_method {
            return (StatusCode::UNAUTHORIZED, "Sign in first.").into_response();
        }
        let target = req
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let login = if target == "/" {
            "/login".to_string()
        } else {
            format!("/login?next={}", super::encode_query_value(&target))
        };
        return Redirect::to(&login).into_response();
    };
    // Server functions check roles themselves; pages are checked here by path.
    if !unsafe_method && !allowed(&p, &requirement(&path)) {
        return forbidden_page();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_in_use_is_saved_once_a_day() {
        let day = 86_400_000;
        assert!(due_for_saving(None, 5));
        assert!(!due_for_saving(Some(1_000), 1_000 + day - 1));
        assert!(due_for_saving(Some(1_000), 1_000 + day));
    }

    #[test]
    fn paths_map_to_the_role_they_need() {
        assert_eq!(requirement("/admin/shops"), Requirement::Operator);
        assert_eq!(
            requirement("/shops/shp_1"),
            Requirement::ReadShop("shp_1".into())
        );
        assert_eq!(
            requirement("/shops/shp_1/queue"),
            Requirement::ReadShop("shp_1".into())
        );
        assert_eq!(
            requirement("/shops/shp_1/members"),
            Requirement::ManageShop("shp_1".into())
        );
        assert_eq!(requirement("/"), Requirement::SignedIn);
    }

    fn post_from(origin: &str, host: &str) -> Request {
        axum::http::Request::builder()
            .method("POST")
            .header(header::ORIGIN, origin)
            .header(header::HOST, host)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn forms_must_come_from_the_public_url_when_it_is_set() {
        let public = Some("https://herald.example.com");
        // Behind a proxy the Host header is the upstream's, not what the browser used.
        let ours = post_from("https://herald.example.com", "127.0.0.1:3000");
        assert!(!is_cross_site(&ours, public));
        let forged = post_from("https://evil.example", "herald.example.com");
        assert!(is_cross_site(&forged, public));
        // Without a public URL, the origin is compared with the Host header.
        assert!(!is_cross_site(
            &post_from("http://127.0.0.1:3000", "127.0.0.1:3000"),
            None
        ));
        assert!(is_cross_site(
            &post_from("http://evil.example", "127.0.0.1:3000"),
            None
        ));
    }

    #[test]
    fn the_api_and_assets_are_public_to_the_gate() {
        assert!(is_public("/api/v1/events"));
        assert!(is_public("/pkg/herald.css"));
        assert!(!is_public("/admin/users"));
        assert!(!is_public("/api/list_shops"));
    }
}
