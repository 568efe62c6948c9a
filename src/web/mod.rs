//! The HTTP surface: the router, sign-in handlers, the access gate and security headers.

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
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
