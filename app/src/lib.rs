//! Herald's admin panel: pages, components and the server functions behind them.
//! Rendered on the server (works before the WebAssembly loads) and hydrated in the browser.

pub mod api;
#[cfg(feature = "ssr")]
pub mod backend;
pub mod components;
pub mod dto;
pub mod model;
pub mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{ParentRoute, Route, Router, Routes},
    path, SsrMode,
};

/// The HTML document around the app; the server renders it for every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
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
