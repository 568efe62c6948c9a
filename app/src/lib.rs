//! Herald's admin panel: pages, components and the server functions behind them.
//! Rendered on the server (works before the WebAssembly loads) and hydrated in the browser.

pub mod api;
#[cfg(feature = "ssr")]
pub mod backend;
pub mod components;
pub mod dto;
pub mod endpoint_form;
pub mod model;
pub mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{ParentRoute, Route, Router, Routes},
    path, SsrMode,
};

/// The Content-Security-Policy of Herald's responses. Inline scripts run only with the
/// page's nonce (the hydration script and the serialized resources carry it; leptos makes one
/// per request); responses that are not pages get none, so no inline script runs at all.
pub fn content_security_policy(nonce: Option<&str>) -> String {
    let inline = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{inline} 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'"
    )
}

/// Marks the document once the panel is live (`<html data-hydrated>`): the browser tests wait
/// for it before using what needs the WebAssembly (live previews, fields shown by a choice).
#[cfg(feature = "hydrate")]
pub fn mark_hydrated() {
    if let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = root.set_attribute("data-hydrated", "");
    }
}

/// Names this page's nonce in its Content-Security-Policy header (server side only).
fn send_page_policy() {
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(res)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) {
        if let Ok(value) = http::HeaderValue::from_str(&content_security_policy(Some(&nonce))) {
            res.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
        }
    }
}

/// The HTML document around the app; the server renders it for every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    send_page_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Every route renders completely on the server before it is sent (SsrMode::Async), so each
    // page works with JavaScript disabled; hydration then makes it interactive.
    view! {
        <Stylesheet id="leptos" href="/pkg/herald.css"/>
        <Title text="Herald"/>
        <Router>
            <Routes fallback=|| view! { <pages::NotFound/> }>
                <Route path=path!("/login") view=pages::login::LoginPage ssr=SsrMode::Async/>
                <ParentRoute path=path!("") view=components::Layout ssr=SsrMode::Async>
                    <Route path=path!("") view=pages::home::HomePage/>
                    <Route path=path!("/account") view=pages::account::AccountPage/>
                    <Route path=path!("/admin/shops") view=pages::admin::ShopsPage/>
                    <Route path=path!("/admin/users") view=pages::admin::UsersPage/>
                    <Route path=path!("/admin/nodes") view=pages::admin::NodesPage/>
                    <Route path=path!("/shops/:shop") view=pages::shop::DashboardPage/>
                    <Route path=path!("/shops/:shop/members") view=pages::members::MembersPage/>
                    <Route path=path!("/shops/:shop/endpoints") view=pages::endpoints::EndpointsPage/>
                    <Route path=path!("/shops/:shop/endpoints/:id") view=pages::endpoints::EndpointPage/>
                    <Route path=path!("/shops/:shop/channels") view=pages::channels::ChannelsPage/>
                    <Route path=path!("/shops/:shop/catalog") view=pages::catalog::CatalogPage/>
                    <Route path=path!("/shops/:shop/queue") view=pages::queue::QueuePage/>
                    <Route path=path!("/shops/:shop/queue/:id") view=pages::queue::DeliveryPage/>
                    <Route path=path!("/shops/:shop/logs") view=pages::logs::LogsPage/>
                    <Route path=path!("/shops/:shop/logs/:id") view=pages::logs::AttemptPage/>
                    <Route path=path!("/shops/:shop/activity") view=pages::activity::ActivityPage/>
                    <Route path=path!("/shops/:shop/alerts") view=pages::alerts::AlertsPage/>
                    <Route path=path!("/shops/:shop/settings") view=pages::settings::SettingsPage/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}
