//! Alerts: retries exhausted, endpoints deactivated and why; acknowledge them.

use crate::api::*;
use crate::components::*;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn AlertsPage() -> impl IntoView {
    let shop = shop_id();
    let names = endpoint_names(shop);
    let manage = can_manage(shop);
    let ack = ServerAction::<AcknowledgeAlert>::new();
    let alerts = Resource::new(
        move || (shop.get(), ack.version().get()),
        |(s, _)| list_alerts(s, None),
    );
    view! {
        <Title text="Alerts · Herald"/>
        <h1>"Alerts"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let can = manage.await;
                let names = names.await;
                match alerts.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(p) if p.items.is_empty() => view! { <p class="empty">"No alerts. Herald raises one when a delivery gives up or an endpoint is deactivated."</p> }.into_any(),
                    Ok(p) => view! {
                        <TableWrap label="Alerts"><table class="stacking">
                            <thead><tr>
                                <th scope="col">"Time"</th><th scope="col">"Kind"</th><th scope="col">"Endpoint"</th><th scope="col">"What happened"</th><th scope="col">"Actions"</th>
                            </tr></thead>
                            <tbody>{p.items.into_iter().map(|a| view! {
                                <tr class:acknowledged=a.acknowledged>
                                    <td data-label="Time"><When at=a.created_at.clone()/></td>
                                    <td data-label="Kind">{a.kind.replace('_', " ")}</td>
                                    <td data-label="Endpoint">{a.endpoint_id.as_ref().map(|id| endpoint_ref(&shop.get_untracked(), id, &names))}</td>
                                    <td data-label="What happened">{a.message.clone()}</td>
                                    <td data-label="Actions">{if a.acknowledged {
                                        view! { <span class="muted">"Acknowledged"</span> }.into_any()
                                    } else {
                                        view! {
                                            <ActionForm action=ack>
                                                <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                                                <input type="hidden" name="id" value=a.id.clone()/>
                                                <button type="submit" class="small" disabled=!can aria-label=format!("Acknowledge the {} alert", a.kind.replace('_', " "))>"Acknowledge"</button>
                                            </ActionForm>
                                        }.into_any()
                                    }}</td>
                                </tr>
                            }).collect_view()}</tbody>
                        </table></TableWrap>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
