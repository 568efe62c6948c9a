//! One module per page of the panel.

pub mod account;
pub mod activity;
pub mod admin;
pub mod alerts;
pub mod catalog;
pub mod channels;
pub mod endpoints;
pub mod home;
pub mod login;
pub mod logs;
pub mod members;
pub mod queue;
pub mod settings;
pub mod shop;

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="narrow">
            <h1>"Page not found"</h1>
            <p><a href="/">"Back to Herald"</a></p>
        </main>
    }
}
