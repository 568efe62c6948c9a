//! Channels: the labels in use, the endpoints that listen on each, and assigning a channel to
//! an endpoint.

use crate::api::*;
use crate::components::*;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn ChannelsPage() -> impl IntoView {
    let shop = shop_id();
    let manage = can_manage(shop);
    let assign = ServerAction::<AssignChannel>::new();
    let channels = Resource::new(
        move || (shop.get(), assign.version().get()),
        |(s, _)| list_channels(s),
    );
    let endpoints = Resource::new(
        move || (shop.get(), assign.version().get()),
        |(s, _)| list_endpoints(s),
    );
    view! {
        <Title text="Channels · Herald"/>
        <h1>"Channels"</h1>
        <p class="muted">
            "A channel targets events at some endpoints only. Name them " <code>"client_<id>"</code>
            " for one customer and " <code>"agent_<id>"</code> " for one agent. An endpoint without channels receives every event; "
            "an endpoint with channels receives only events that carry one of them."
        </p>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let names: EndpointNames = endpoints.await.unwrap_or_default().into_iter()
                    .map(|e| (e.id.clone(), e.name().to_string()))
                    .collect();
                match channels.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p class="empty">"No channels in use yet. Publish events with \"channels\" or assign one to an endpoint below."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="stacking">
                            <thead><tr><th scope="col">"Channel"</th><th scope="col">"Endpoints"</th><th scope="col">"Deliveries"</th></tr></thead>
                            <tbody>{list.into_iter().map(|c| view! {
                                <tr><td data-label="Channel"><code>{c.name.clone()}</code></td><td data-label="Endpoints">{c.endpoints.iter().map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone())).collect::<Vec<_>>().join(", ")}</td><td data-label="Deliveries">{c.deliveries}</td></tr>
                            }).collect_view()}</tbody>
                        </table>
                    }.into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=|| ()>{move || Suspend::new(async move {
            let eps = endpoints.await.unwrap_or_default();
            (manage.await && !eps.is_empty()).then(|| view! {
                <section class="panel">
                    <h2>"Assign a channel to an endpoint"</h2>
                    <ActionForm action=assign attr:class="inline-form">
                        <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                        <label for="ch-endpoint">"Endpoint"</label>
                        <select id="ch-endpoint" name="endpoint_id">
                            {eps.into_iter().map(|e| view! { <option value=e.id.clone()>{e.url.clone()}</option> }).collect_view()}
                        </select>
                        <label for="ch-name">"Channel"</label>
                        <input id="ch-name" name="channel" required placeholder="client_42"/>
                        <button type="submit">"Assign channel"</button>
                    </ActionForm>
                    {action_error(assign.value())}
                </section>
            })
        })}</Suspense>
    }
}
