//! The landing page after sign-in: the shops this person can open. The operator of an empty
//! install is offered "Create a shop" right here, with the webhooks feature in the same step.

use crate::api::{error_text, list_shops, whoami, CreateShop};
use crate::components::{action_error, webhooks_label, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;

/// The operator's first step: name a shop and, if they want, enable webhooks for it.
#[component]
fn CreateShopForm(action: ServerAction<CreateShop>) -> impl IntoView {
    view! {
        <section class="panel">
            <h2>"Create a shop"</h2>
            <p class="muted">"A shop is one tenant: its endpoints, event catalog, API keys and members. Webhooks can be enabled now or later on the Shops page."</p>
            <ActionForm action=action attr:class="inline-form">
                <label for="first-shop-name">"Shop name"</label>
                <input id="first-shop-name" name="name" required maxlength="100"/>
                <label class="check">
                    <input type="checkbox" name="enable_webhooks" value="on" checked/>
                    "Enable webhooks"
                </label>
                <button type="submit">"Create a shop"</button>
            </ActionForm>
            {action_error(action.value())}
        </section>
    }
}

#[component]
pub fn HomePage() -> impl IntoView {
    let create = ServerAction::<CreateShop>::new();
    let shops = Resource::new(move || create.version().get(), |_| list_shops());
    let me = Resource::new(|| (), |_| whoami());
    view! {
        <Title text="Shops · Herald"/>
        <h1>"Your shops"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let operator = me.await.ok().flatten().is_some_and(|p| p.operator);
                match shops.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(list) if list.is_empty() && operator => view! {
                        <p>"This installation has no shops yet. Create the first one to add endpoints and publish events."</p>
                        <CreateShopForm action=create/>
                    }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty">"You are not a member of any shop yet. Ask an operator to add you to one."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <ul class="cards">
                            {list.into_iter().map(|s| view! {
                                <li class="card">
                                    <a href=format!("/switch?shop={}", s.id) rel="external">{s.name.clone()}</a>
                                    <span class="muted">"Webhooks: " {webhooks_label(&s)}</span>
                                </li>
                            }).collect_view()}
                        </ul>
                        {operator.then(|| view! {
                            <p><a href="/admin/shops">"Create a shop"</a>" or manage every shop on the Shops page."</p>
                        })}
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
