//! The landing page after sign-in: the shops this person can open.

use crate::api::{error_text, list_shops};
use crate::components::{webhooks_label, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn HomePage() -> impl IntoView {
    let shops = Resource::new(|| (), |_| list_shops());
    view! {
        <Title text="Shops · Herald"/>
        <h1>"Your shops"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match shops.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty">"You are not a member of any shop yet. Ask an operator to add you to one."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <ul class="cards">
                            {list.into_iter().map(|s| view! {
                                <li class="card">
                                    <a href=format!("/shops/{}", s.id)>{s.name.clone()}</a>
                                    <span class="muted">"Webhooks: " {webhooks_label(&s)}</span>
                                </li>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
