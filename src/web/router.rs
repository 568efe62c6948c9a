//! Assembles the axum router: panel pages and server functions (Leptos), sign-in handlers,
//! health, sessions, the access gate and security headers.

use super::{gate, login, AppState};
use app::backend::SharedBackend;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// `GET /healthz`: this node and its database — 200 when the database answers (with how long
/// it took), 503 otherwise. For load balancers and the operator's checks.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let store = &state.service.store;
    let started = std::time::Instant::now();
    let ok = store.ping().await;
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "database unavailable" },
        "node": state.service.engine.node_id(),
        "database": {
            "store": store.dialect().id(),
            "ok": ok,
            "latency_ms": (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0,
        },
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body))
}

/// Headers that keep the panel out of frames, stop MIME sniffing and limit what pages load.
/// Pages set their own Content-Security-Policy, naming their nonce (`app::shell`); every other
/// response gets the policy without one.
fn security_headers(router: Router) -> Router {
    let headers = [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&app::content_security_policy(None))
                .expect("the policy is a valid header value"),
        ),
    ];
    headers.into_iter().fold(router, |r, (name, value)| {
        r.layer(SetResponseHeaderLayer::if_not_present(name, value))
    })
}

pub async fn build(state: AppState, config: &crate::config::Config) -> anyhow::Result<Router> {
    let secure_cookies = state.secure_cookies;
    let session_store = state.service.store.sessions().await?;
    {
        use tower_sessions::ExpiredDeletion;
        let store = session_store.clone();
        tokio::spawn(store.continuously_delete_expired(std::time::Duration::from_secs(3600)));
    }
    let sessions = SessionManagerLayer::new(session_store)
        .with_name("herald_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure_cookies)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::days(7),
        ));

    let backend: SharedBackend = Arc::new(state.service.clone());
    let context = move || provide_context(backend.clone());
    let options = state.leptos_options.clone();
    let routes = generate_route_list(app::App);

    // The API, health and metrics answer without sessions or the page gate: a producer's
    // request carries its key, not a cookie, and is the hot path.
    let open = Router::new()
        .nest(
            "/api/v1",
            crate::api::router(state.clone(), config.max_body_bytes),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(crate::api::metrics));
    let router = Router::new()
        .route("/login", post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route("/account/password", post(login::change_password))
        .route("/switch", get(login::switch_shop))
        .route(
            "/shops/{shop}/activity/stream",
            get(super::activity::stream),
        )
        .leptos_routes_with_context(&state, routes, context, move || app::shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::gate,
        ))
        .layer(sessions)
        .merge(open)
        .with_state(state);
    let limit = std::time::Duration::from_secs(config.request_timeout_seconds);
    Ok(
        security_headers(router).layer(axum::middleware::from_fn(move |req, next| {
            super::serve::request_timeout(limit, req, next)
        })),
    )
}
