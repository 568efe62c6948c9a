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
    view! {
        <div class="copy-block">
            <CopyButton text=text.clone() label/>
            <pre tabindex="0">{text}</pre>
        </div>
    }
}

/// The text of the last submission's error, for [`error_for`].
pub fn last_error<T, S>(value: S) -> Signal<Option<String>>
where
    T: Clone + Send + Sync + 'static,
    S: Get<Value = Option<Result<T, ServerFnError>>> + Send + Sync + 'static,
{
    Signal::derive(move || match value.get() {
        Some(Err(e)) => Some(error_text(&e)),
        _ => None,
    })
}

/// The message of `error` when it concerns `field` ("field: message"), next to that field.
pub fn error_for(error: Signal<Option<String>>, field: impl Into<String>) -> impl IntoView {
    let field = field.into();
    move || {
        error.get().and_then(|text| {
            text.strip_prefix(&format!("{field}: "))
                .map(|m| view! { <span class="field-error" role="alert">{m.to_string()}</span> })
        })
    }
}

/// The retry presets the panel offers, loaded once per page.
pub type RetryPresets = Resource<Result<Vec<crate::dto::RetryPresetView>, ServerFnError>>;

/// Loads [`RetryPresets`].
pub fn load_retry_presets() -> RetryPresets {
    Resource::new(|| (), |_| crate::api::retry_presets())
}

/// A retry policy's fields: the policy, and the parameters of the chosen one (the others are
/// hidden, and keep what was typed). `prefix` names the form's field (`form[retry]`), `id`
/// prefixes the inputs' ids. A preset fills the fields; they stay editable.
#[component]
pub fn RetryPolicyFields(
    prefix: &'static str,
    id: &'static str,
    initial: crate::endpoint_form::RetryFields,
    error: Signal<Option<String>>,
    /// From [`load_retry_presets`], made by the caller and not after an await in a `Suspend` (one made
    /// inside one after an await would not meet its server-rendered value when hydrating).
    presets: RetryPresets,
) -> impl IntoView {
    use crate::endpoint_form::{RetryFields, RETRY_POLICIES};
    let fields = RwSignal::new(initial.clone());
    let init = initial.clone();
    let name = move |f: &str| format!("{prefix}[{f}]");
    let policy = Memo::new(move |_| fields.with(|f| f.policy.clone()));
    // One text input bound to one parameter of the fields.
    let input = move |key: &'static str,
                      label: &'static str,
                      shown_for: &'static [&'static str],
                      get: fn(&RetryFields) -> String,
                      set: fn(&mut RetryFields, String)| {
        let input_id = format!("{id}-{key}");
        let initial_value = get(&init);
        view! {
            <label for=input_id.clone() hidden=move || !shown_for.contains(&policy.get().as_str())>{label}</label>
            <div hidden=move || !shown_for.contains(&policy.get().as_str())>
                <input id=input_id name=name(key) inputmode="numeric" value=initial_value
                    prop:value=move || fields.with(get)
                    on:input=move |ev| fields.update(|f| set(f, event_target_value(&ev)))/>
                {error_for(error, format!("retry.{key}"))}
            </div>
        }
    };
    let select_id = format!("{id}-policy");
    let preset_id = format!("{id}-preset");
    let slow_id = format!("{id}-slow-lane");
    view! {
        <label for=select_id.clone()>"Retry policy"</label>
        <div>
            <select id=select_id name=name("policy") prop:value=move || policy.get()
                on:change=move |ev| fields.update(|f| f.policy = event_target_value(&ev))>
                {RETRY_POLICIES.iter().map(|(value, label)| {
                    let selected = initial.policy == *value;
                    view! { <option value=*value selected=selected>{*label}</option> }
                }).collect_view()}
            </select>
            {error_for(error, "retry.policy")}
            {error_for(error, "retry")}
        </div>
        <label for=preset_id.clone()>"Fill from a preset"</label>
        // The whole select inside the Suspense (a Suspense's markers inside a <select> do not
        // survive the HTML parser, and hydration would not find them).
        <Suspense fallback=|| ()>{move || {
            let preset_id = preset_id.clone();
            Suspend::new(async move {
                let list = presets.await.unwrap_or_default();
                let options = list.clone();
                view! {
                    <select id=preset_id on:change=move |ev| {
                        let chosen = event_target_value(&ev);
                        if let Some(p) = list.iter().find(|p| p.id == chosen) {
                            fields.set(RetryFields::of(&p.policy));
                        }
                    }>
                        <option value="" selected=true>"Choose a preset (needs JavaScript)"</option>
                        {options.into_iter().map(|p| view! { <option value=p.id.clone()>{p.label}</option> }).collect_view()}
                    </select>
                }
            })
        }}</Suspense>
        {input("interval_s", "Interval (seconds)", &["fixed"], |f| f.interval_s.clone(), |f, v| f.interval_s = v)}
        {input("step_s", "Step (seconds)", &["linear"], |f| f.step_s.clone(), |f, v| f.step_s = v)}
        {input("initial_s", "First interval (seconds)", &["exponential"], |f| f.initial_s.clone(), |f, v| f.initial_s = v)}
        {input("max_interval_s", "Longest interval (seconds)", &["exponential"], |f| f.max_interval_s.clone(), |f, v| f.max_interval_s = v)}
        {input("max_retries", "How many retries", &["fixed", "linear", "exponential"], |f| f.max_retries.clone(), |f, v| f.max_retries = v)}
        {input("delays_s", "Delays (seconds, in order)", &["schedule"], |f| f.delays_s.clone(), |f, v| f.delays_s = v)}
        <span hidden=move || policy.get() != "exponential"></span>
        <label class="check" hidden=move || policy.get() != "exponential">
            <input type="checkbox" id=slow_id name=name("slow_lane") value="on" checked=initial.slow_lane.is_some()
                prop:checked=move || fields.with(|f| f.slow_lane.is_some())
                on:change=move |ev| fields.update(|f| f.slow_lane = event_target_checked(&ev).then(|| "on".into()))/>
            "Then retry twice a day until the message expires (slow lane)"
        </label>
    }
}

/// Unix milliseconds now: the server's clock while rendering, the browser's once hydrated.
pub fn now_ms() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A time shown relative to now ("3 min ago"), the exact UTC time on hover and in the
/// accessible text.
pub fn when_ms(ms: i64) -> impl IntoView {
    let exact = format_ms(ms);
    view! {
        <time datetime=iso_ms(ms) title=exact.clone()>
            {relative(ms, now_ms())}
            <span class="visually-hidden">{format!(" ({exact})")}</span>
        </time>
    }
}

/// An RFC 3339 time from the API, shown as [`when_ms`] does (as it is when it does not parse).
#[component]
pub fn When(#[prop(into)] at: String) -> impl IntoView {
    match parse_iso_ms(&at) {
        Some(ms) => when_ms(ms).into_any(),
        None => view! { <span>{at}</span> }.into_any(),
    }
}

/// The shop's endpoints by id: what lists show instead of the id (its description, or its
/// URL when it has none).
pub type EndpointNames = std::collections::HashMap<String, String>;

/// Loads [`EndpointNames`] for the shop of the page.
pub fn endpoint_names(shop: Memo<String>) -> Resource<EndpointNames> {
    Resource::new(
        move || shop.get(),
        |shop| async move {
            crate::api::list_endpoints(shop)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.id.clone(), e.name().to_string()))
                .collect()
        },
    )
}

/// An endpoint named for people: a link to it by name, its id secondary. An id without a
/// name is shown as it is.
pub fn endpoint_ref(shop: &str, id: &str, names: &EndpointNames) -> impl IntoView {
    let href = format!("/shops/{shop}/endpoints/{id}");
    match names.get(id) {
        Some(name) => view! {
            <a href=href class="name">{name.clone()}</a>
            <div class="muted id"><code>{id.to_string()}</code></div>
        }
        .into_any(),
        // Deleted, created since the names were read, or the names could not be read.
        None => view! { <a href=href class="id"><code>{id.to_string()}</code></a> }.into_any(),
    }
}

/// A button that copies `text` (an id, a key, a payload) to the clipboard once hydrated.
#[component]
pub fn CopyButton(text: String, label: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    view! {
        <button type="button" class="secondary small copy" aria-label=format!("Copy {label}")
            on:click=move |_| {
                #[cfg(feature = "hydrate")]
                {
                    if let Some(w) = web_sys::window() {
                        let _ = w.navigator().clipboard().write_text(&text);
                    }
                }
                #[cfg(not(feature = "hydrate"))]
                let _ = &text;
                copied.set(true);
            }>
            {move || if copied.get() { "Copied" } else { "Copy" }}
        </button>
    }
}

/// A wide table's box: it scrolls sideways by itself when it must, and since it may scroll it
/// is a named region the keyboard can reach.
#[component]
pub fn TableWrap(label: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="table-wrap" role="region" aria-label=label tabindex="0">{children()}</div>
    }
}

/// A submit button behind a question that names what it removes: a disclosure (works without
/// JavaScript, reachable by keyboard) whose summary is the action and whose body asks first.
#[component]
pub fn ConfirmSubmit(
    /// The action, on the summary: "Revoke".
    action: &'static str,
    /// What the summary does, for screen readers: "Revoke the API key ci".
    summary_label: String,
    /// The question: "Revoke the API key “ci”? Products using it can no longer publish."
    question: String,
    /// The submit button's text: "Revoke ci".
    confirm: String,
) -> impl IntoView {
    view! {
        <details class="confirm-submit">
            <summary class="button small danger" aria-label=summary_label>{action}</summary>
            <div class="confirm">
                <p>{question}</p>
                <button type="submit" class="small danger">{confirm}</button>
            </div>
        </details>
    }
}
