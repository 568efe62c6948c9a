//! The Account page: any signed-in user changes their own password. The form posts to the
//! server's `/account/password` handler (a plain HTML form, like sign-in), which moves this
//! session to the new session version; every other session of the user ends.

use crate::api::whoami;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// What the handler's redirect says happened, as (is an error, message).
fn outcome(changed: Option<String>, error: Option<String>) -> Option<(bool, &'static str)> {
    match error.as_deref() {
        Some("current_password") => Some((true, "The current password is not right.")),
        Some("new_password") => {
            Some((true, "The new password must be at least 8 characters long."))
        }
        Some(_) => Some((true, "The password could not be changed. Please try again.")),
        None => changed.map(|_| {
            (
                false,
                "Your password was changed. Your other sessions have been signed out.",
            )
        }),
    }
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    let query = use_query_map();
    let message = move || query.with(|q| outcome(q.get("changed"), q.get("error")));
    view! {
        <Title text="Account · Herald"/>
        <h1>"Account"</h1>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                me.await.ok().flatten().map(|p| view! {
                    <p>"Signed in as " <strong>{p.email}</strong></p>
                })
            })}
        </Suspense>
        <section class="panel">
            <h2>"Change password"</h2>
            {move || message().map(|(error, text)| view! {
                <p class=if error { "error" } else { "notice" } role=if error { "alert" } else { "status" }>{text}</p>
            })}
            <form method="post" action="/account/password" class="stack">
                <label for="current-password">"Current password"</label>
                <input id="current-password" name="current_password" type="password" autocomplete="current-password" required/>
                <label for="new-password">"New password"</label>
                <input id="new-password" name="new_password" type="password" autocomplete="new-password" minlength="8" required/>
                <button type="submit">"Change password"</button>
            </form>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_names_what_went_wrong() {
        assert_eq!(outcome(None, None), None);
        assert!(!outcome(Some("1".into()), None).unwrap().0);
        let (error, text) = outcome(None, Some("current_password".into())).unwrap();
        assert!(error && text.contains("current password"));
        assert!(outcome(None, Some("anything".into())).unwrap().0);
    }
}
