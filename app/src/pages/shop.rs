//! A shop's pages. The dashboard shows the shop's status; the delivery pages are not built yet
//! and say so honestly (their data is served by the REST API).

use crate::api::{error_text, get_shop};
use crate::components::{ErrorNote, SECTIONS};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

fn shop_param() -> Memo<String> {
    let params = use_params_map();
    Memo::new(move |_| params.with(|p| p.get("shop").unwrap_or_default()))
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let shop_id = shop_param();
    let shop = Resource::new(move || shop_id.get(), get_shop);
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match shop.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(s) => view! {
                        <Title text=format!("{} · Dashboard · Herald", s.name)/>
                        <h1>{s.name.clone()}</h1>
                        <dl class="facts">
                            <dt>"Shop ID"</dt><dd><code>{s.id.clone()}</code></dd>
                            <dt>"Webhooks"</dt>
                            <dd>{if s.webhooks_enabled { "Enabled" } else { "Disabled — an operator must enable webhooks for this shop before events are accepted." }}</dd>
                            <dt>"Members"</dt><dd>{s.members}</dd>
                            <dt>"Requires https endpoints"</dt><dd>{if s.require_https { "Yes" } else { "No" }}</dd>
                        </dl>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn SectionPage() -> impl IntoView {
    let params = use_params_map();
    let section = move || params.with(|p| p.get("section").unwrap_or_default());
    let label = move || {
        let s = section();
        SECTIONS
            .iter()
            .find(|(seg, _)| *seg == s)
            .map(|(_, label)| label.to_string())
    };
    view! {
        {move || match label() {
            Some(label) => view! {
                <Title text=format!("{label} · Herald")/>
                <h1>{label.clone()}</h1>
                <p class="empty">{format!("The {label} page is not available yet. Everything it will show is already served by the REST API under /api/v1.")}</p>
            }.into_any(),
            None => view! { <super::NotFound/> }.into_any(),
        }}
    }
}
