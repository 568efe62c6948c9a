//! The sign-in page. The form posts to the server's `/login` handler (a plain HTML form), so
//! signing in works with JavaScript disabled.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || query.with(|q| q.get("error"));
    let next = move || query.with(|q| q.get("next")).unwrap_or_default();
    let message = move || match error().as_deref() {
        Some("invalid") => Some("Wrong email or password."),
        Some("throttled") => Some("Too many sign-in attempts. Wait a minute and try again."),
        Some("expired") => Some("The sign-in form expired. Please try again."),
        _ => None,
    };
    #[cfg(feature = "ssr")]
    if error().as_deref() == Some("throttled") {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(http::StatusCode::TOO_MANY_REQUESTS);
        }
    }

    view! {
        <Title text="Sign in · Herald"/>
        <main class="login">
            <h1>"Sign in to Herald"</h1>
            {move || message().map(|m| view! { <p class="error" role="alert">{m}</p> })}
            <form method="post" action="/login" class="stack">
                <input type="hidden" name="next" value=next/>
                <label for="email">"Email"</label>
                <input id="email" name="email" type="email" autocomplete="username" required/>
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="current-password" required/>
                <button type="submit">"Sign in"</button>
            </form>
        </main>
    }
}
