//! The app shell (header, shop switcher, navigation) and small shared pieces.

use crate::api::{error_text, list_shops, whoami};
use crate::model::*;
use leptos::prelude::*;
use leptos_router::{components::Outlet, hooks::use_location};

/// The sections of a shop, in navigation order: (path segment, label).
pub const SECTIONS: &[(&str, &str)] = &[
    ("", "Dashboard"),
    ("endpoints", "Endpoints"),
    ("channels", "Channels"),
    ("catalog", "Event Catalog"),
    ("queue", "Webhook Queue"),
    ("logs", "Logs"),
    ("activity", "Activity"),
    ("alerts", "Alerts"),
    ("settings", "Settings"),
];

/// The shop id in the current path (`/shops/{id}/…`), if any.
fn current_shop(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/shops/")?;
    let id = rest.split('/').next().unwrap_or_default();
    (!id.is_empty()).then(|| id.to_string())
}

/// Header, shop switcher and navigation around every signed-in page.
#[component]
pub fn Layout() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    let shops = Resource::new(|| (), |_| list_shops());
    let location = use_location();
    // On the server the path of a render never changes, and the Suspense blocks below may run
    // on different threads at once: reading one memo from several threads while it computes
    // panics inside reactive_graph (seen as an aborted page). So the server reads the path
    // once, into plain values; in the browser they follow client-side navigation.
    #[cfg(feature = "ssr")]
    let (path, shop) = {
        let path = location.pathname.get_untracked();
        let shop = current_shop(&path);
        (Signal::stored(path), Signal::stored(shop))
    };
    #[cfg(not(feature = "ssr"))]
    let (path, shop) = {
        let path: Signal<String> = location.pathname.into();
        let shop = Signal::derive(move || current_shop(&path.get()));
        (path, shop)
    };

    view! {
        <header class="topbar">
            <a class="brand" href="/">"Herald"</a>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let shops = shops.await.unwrap_or_default();
                    let selected = shop.get();
                    view! {
                        <form class="switcher" method="get" action="/switch">
                            <label for="shop-switcher">"Shop"</label>
                            <select id="shop-switcher" name="shop">
                                <option value="" selected=selected.is_none()>"All shops"</option>
                                {shops.into_iter().map(|s| {
                                    let is_selected = selected.as_deref() == Some(s.id.as_str());
                                    view! { <option value=s.id.clone() selected=is_selected>{s.name}</option> }
                                }).collect_view()}
                            </select>
                            <button type="submit">"Switch"</button>
                        </form>
                    }
                })}
            </Suspense>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match me.await {
                        Ok(Some(p)) => view! {
                            <div class="user">
                                <span class="email">{p.email.clone()}</span>
                                <a href="/account">"Account"</a>
                                {p.operator.then(|| view! { <span class="badge">"operator"</span> })}
                                <form method="post" action="/logout">
                                    <button type="submit">"Sign out"</button>
                                </form>
                            </div>
                        }.into_any(),
                        _ => view! { <a href="/login">"Sign in"</a> }.into_any(),
                    }
                })}
            </Suspense>
        </header>
        <div class="frame">
            <nav class="sidebar" aria-label="Main">
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        let p = me.await.ok().flatten();
                        let operator = p.as_ref().map(|p| p.operator).unwrap_or(false);
                        let current = path.get();
                        let shop_links = shop.get().map(|id| {
                            let manage = p.as_ref().map(|p| p.can_manage(&id)).unwrap_or(false);
                            view! {
                                <ul>
                                    {SECTIONS.iter().map(|(seg, label)| {
                                        let href = if seg.is_empty() { format!("/shops/{id}") } else { format!("/shops/{id}/{seg}") };
                                        let active = current == href;
                                        view! { <li><a href=href.clone() aria-current=active.then_some("page")>{*label}</a></li> }
                                    }).collect_view()}
                                    {manage.then(|| {
                                        let href = format!("/shops/{id}/members");
                                        view! { <li><a href=href>"Members"</a></li> }
                                    })}
                                </ul>
                            }
                        });
                        view! {
                            {shop_links}
                            {operator.then(|| view! {
                                <h2 class="nav-title">"Operator"</h2>
                                <ul>
                                    <li><a href="/admin/shops">"Shops"</a></li>
                                    <li><a href="/admin/users">"Users"</a></li>
                                    <li><a href="/admin/nodes">"Nodes"</a></li>
                                </ul>
                            })}
                        }
                    })}
                </Suspense>
            </nav>
            <main>
                <Outlet/>
            </main>
        </div>
    }
}

/// An error from a server function, shown where the data would have been.
#[component]
pub fn ErrorNote(message: String) -> impl IntoView {
    view! { <p class="error" role="alert">{message}</p> }
}

/// The result of the last submission of a form: its error, if it failed.
pub fn action_error<T, S>(value: S) -> impl IntoView
where
    T: Clone + Send + Sync + 'static,
    S: Get<Value = Option<Result<T, ServerFnError>>> + Send + Sync + 'static,
{
    move || match value.get() {
        Some(Err(e)) => Some(view! { <ErrorNote message=error_text(&e)/> }),
        _ => None,
    }
}

/// "Yes"/"No" for a table cell.
pub fn yes_no(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// A shop summary's webhooks status for display.
pub fn webhooks_label(s: &ShopSummary) -> &'static str {
    if s.webhooks_enabled {
        "Enabled"
    } else {
        "Disabled"
    }
}

/// The shop id of the current page (`/shops/:shop/…`).
pub fn shop_id() -> Memo<String> {
    let params = leptos_router::hooks::use_params_map();
    Memo::new(move |_| params.with(|p| p.get("shop").unwrap_or_default()))
}

/// Whether the signed-in person may change things in this shop (owners and operators).
/// Viewers get disabled buttons; the server refuses them anyway.
pub fn can_manage(shop: Memo<String>) -> Resource<bool> {
    Resource::new(
        move || shop.get(),
        |shop| async move {
            crate::api::whoami()
                .await
                .ok()
                .flatten()
                .map(|p| p.can_manage(&shop))
                .unwrap_or(false)
        },
    )
}

/// The error of the last submission if it concerns `field` ("field: message").
pub fn field_error<T, S>(value: S, field: &'static str) -> impl IntoView
where
    T: Clone + Send + Sync + 'static,
    S: Get<Value = Option<Result<T, ServerFnError>>> + Send + Sync + 'static,
{
    move || match value.get() {
        Some(Err(e)) => {
            let text = error_text(&e);
            text.strip_prefix(&format!("{field}: "))
                .map(|m| view! { <span class="field-error" role="alert">{m.to_string()}</span> })
        }
        _ => None,
    }
}

/// A status as a coloured label.
#[component]
pub fn StatusBadge(status: String) -> impl IntoView {
    let class = format!("status status-{status}");
    view! { <span class=class>{status}</span> }
}

/// JSON text pretty-printed, or the text itself when it is not JSON.
pub fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| text.to_string())
}

/// A `<pre>` with a "Copy" button that copies its text (works once the page is hydrated).
#[component]
pub fn CopyBlock(text: String, label: String) -> impl IntoView {
    let copy_text = text.clone();
    let copied = RwSignal::new(false);
    view! {
        <div class="copy-block">
            <button type="button" class="secondary small" aria-label=format!("Copy {label}")
                on:click=move |_| {
                    #[cfg(feature = "hydrate")]
                    {
                        if let Some(w) = web_sys::window() {
                            let _ = w.navigator().clipboard().write_text(&copy_text);
                        }
                    }
                    #[cfg(not(feature = "hydrate"))]
                    let _ = &copy_text;
                    copied.set(true);
                }>
                {move || if copied.get() { "Copied" } else { "Copy" }}
            </button>
            <pre>{text}</pre>
        </div>
    }
}
