//! Operator pages: every shop (create, enable or disable webhooks), every user, every node.

use crate::api::*;
use crate::components::{action_error, webhooks_label, when_ms, ErrorNote};
use crate::model::format_ms;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn ShopsPage() -> impl IntoView {
    let create = ServerAction::<CreateShop>::new();
    let toggle = ServerAction::<SetWebhooks>::new();
    let shops = Resource::new(
        move || (create.version().get(), toggle.version().get()),
        |_| list_shops(),
    );

    view! {
        <Title text="Shops · Herald"/>
        <h1>"Shops"</h1>
        <section class="panel">
            <h2>"Create a shop"</h2>
            <ActionForm action=create attr:class="inline-form">
                <label for="shop-name">"Shop name"</label>
                <input id="shop-name" name="name" required maxlength="100"/>
                <label class="check">
                    <input type="checkbox" name="enable_webhooks" value="on"/>
                    "Enable webhooks"
                </label>
                <button type="submit">"Create shop"</button>
            </ActionForm>
            {action_error(create.value())}
        </section>
        {action_error(toggle.value())}
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match shops.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty">"No shops yet. Create the first one above, then enable webhooks for it."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <table class="stacking">
                            <thead><tr>
                                <th scope="col">"Name"</th>
                                <th scope="col">"ID"</th>
                                <th scope="col">"Webhooks"</th>
                                <th scope="col">"Members"</th>
                                <th scope="col">"Events (24 h)"</th>
                                <th scope="col">"Created"</th>
                                <th scope="col">"Actions"</th>
                            </tr></thead>
                            <tbody>
                                {list.into_iter().map(|s| {
                                    let enable = !s.webhooks_enabled;
                                    let label = if enable { "Enable webhooks" } else { "Disable webhooks" };
                                    view! {
                                        <tr>
                                            <td data-label="Name"><a href=format!("/shops/{}", s.id)>{s.name.clone()}</a></td>
                                            <td data-label="ID"><code>{s.id.clone()}</code></td>
                                            <td data-label="Webhooks">{webhooks_label(&s)}</td>
                                            <td data-label="Members">{s.members}</td>
                                            <td data-label="Events (24 h)">{s.events_24h}</td>
                                            <td data-label="Created">{when_ms(s.created_at)}</td>
                                            <td data-label="Actions">
                                                <ActionForm action=toggle>
                                                    <input type="hidden" name="shop_id" value=s.id.clone()/>
                                                    <input type="hidden" name="enabled" value=enable.to_string()/>
                                                    <button type="submit" aria-label=format!("{label} for {}", s.name)>{label}</button>
                                                </ActionForm>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let create = ServerAction::<CreateUser>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let users = Resource::new(move || create.version().get(), |_| list_users());
    let me = Resource::new(|| (), |_| whoami());
    let shops = Resource::new(|| (), |_| list_shops());

    view! {
        <Title text="Users · Herald"/>
        <h1>"Users"</h1>
        <section class="panel">
            <h2>"Create a user"</h2>
            <ActionForm action=create attr:class="grid-form">
                <label for="user-email">"Email"</label>
                <input id="user-email" name="email" type="email" required/>
                <label for="user-password">"Password"</label>
                <input id="user-password" name="password" type="password" minlength="8" required/>
                <label for="user-role">"Role"</label>
                <select id="user-role" name="role">
                    <option value="owner">"Owner"</option>
                    <option value="viewer">"Viewer"</option>
                    <option value="operator">"Operator"</option>
                </select>
                <label for="user-shop">"Shop"</label>
                <select id="user-shop" name="shop_id">
                    <option value="">"None (operators only)"</option>
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            shops.await.unwrap_or_default().into_iter().map(|s| view! {
                                <option value=s.id.clone()>{s.name}</option>
                            }).collect_view()
                        })}
                    </Suspense>
                </select>
                <button type="submit">"Create user"</button>
            </ActionForm>
            {action_error(create.value())}
        </section>
        {action_error(reset.value())}
        {move || matches!(reset.value().get(), Some(Ok(()))).then(|| view! {
            <p class="notice" role="status">"Password reset. That user's sessions have been signed out."</p>
        })}
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let my_id = me.await.ok().flatten().map(|p| p.user_id).unwrap_or_default();
                match users.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(list) => view! {
                        <table class="stacking">
                            <thead><tr>
                                <th scope="col">"Email"</th>
                                <th scope="col">"Role"</th>
                                <th scope="col">"Shops"</th>
                                <th scope="col">"Created"</th>
                                <th scope="col">"Password"</th>
                            </tr></thead>
                            <tbody>
                                {list.into_iter().map(|u| {
                                    let shops = u.shops.iter()
                                        .map(|m| format!("{} ({})", m.shop_name, m.role.as_str()))
                                        .collect::<Vec<_>>().join(", ");
                                    view! {
                                        <tr>
                                            <td data-label="Email">{u.email.clone()}</td>
                                            <td data-label="Role">{if u.operator { "operator" } else { "member" }}</td>
                                            <td data-label="Shops">{shops}</td>
                                            <td data-label="Created">{when_ms(u.created_at)}</td>
                                            <td data-label="Password">{if u.id == my_id {
                                                view! { <a href="/account">"Change on the Account page"</a> }.into_any()
                                            } else {
                                                let field = format!("reset-{}", u.id);
                                                view! {
                                                    <ActionForm action=reset attr:class="inline-form">
                                                        <input type="hidden" name="user_id" value=u.id.clone()/>
                                                        <label for=field.clone()>{format!("New password for {}", u.email)}</label>
                                                        <input id=field name="password" type="password" autocomplete="new-password" minlength="8" required/>
                                                        <button type="submit" aria-label=format!("Reset password for {}", u.email)>"Reset password"</button>
                                                    </ActionForm>
                                                }.into_any()
                                            }}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// How long ago, in words: "4 s ago", "3 min ago", "2 h ago", "5 d ago".
fn ago(now: i64, then: i64) -> String {
    let s = ((now - then).max(0)) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

#[component]
pub fn NodesPage() -> impl IntoView {
    let nodes = Resource::new(|| (), |_| list_nodes());
    view! {
        <Title text="Nodes · Herald"/>
        <h1>"Nodes"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match nodes.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(o) => {
                        let now = o.now;
                        let intro = if o.store == "SQLite" {
                            "Herald runs on SQLite: one node. Point several nodes at one PostgreSQL database to share the queue.".to_string()
                        } else {
                            format!("Every node sharing this {} database. A node not heard from for 15 s is taken for dead: its deliveries go to the others when their leases run out.", o.store)
                        };
                        view! {
                            <p>{intro}</p>
                            <table class="stacking">
                                <thead><tr>
                                    <th scope="col">"Node"</th>
                                    <th scope="col">"State"</th>
                                    <th scope="col">"Last heartbeat"</th>
                                    <th scope="col">"Holding"</th>
                                    <th scope="col">"Version"</th>
                                    <th scope="col">"Started"</th>
                                </tr></thead>
                                <tbody>
                                    {o.nodes.into_iter().map(|n| {
                                        let state = match (n.alive, n.stopped_at) {
                                            (true, _) => "alive",
                                            (false, Some(_)) => "stopped",
                                            (false, None) => "not heard from",
                                        };
                                        let name = if n.this_node {
                                            format!("{} (this node)", n.id)
                                        } else {
                                            n.id.clone()
                                        };
                                        view! {
                                            <tr>
                                                <td data-label="Node"><code>{name}</code></td>
                                                <td data-label="State"><span class=format!("status node-{}", state.replace(' ', "-"))>{state}</span></td>
                                                <td data-label="Last heartbeat" title=format_ms(n.heartbeat_at)>{ago(now, n.heartbeat_at)}</td>
                                                <td data-label="Holding">{format!("{} deliveries", n.holding)}</td>
                                                <td data-label="Version">{n.version}</td>
                                                <td data-label="Started">{when_ms(n.started_at)}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
