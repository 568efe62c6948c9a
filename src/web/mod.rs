//! The HTTP surface: the router, sign-in handlers, the access gate and security headers.

pub mod activity;
pub mod gate;
pub mod login;
pub mod router;

use crate::auth::throttle::SignInThrottle;
use crate::service::Service;
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

/// Everything a handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub service: Service,
    /// Throttles sign-in attempts per email.
    pub email_throttle: SignInThrottle,
    /// Throttles sign-in attempts per client address (looser: people share addresses).
    pub ip_throttle: SignInThrottle,
    /// `HERALD_METRICS_TOKEN`: opens the per-endpoint series of `/metrics`.
    pub metrics_token: Option<String>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// Percent-encodes a value for a query string, keeping `/` readable (the values are paths).
pub fn encode_query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
