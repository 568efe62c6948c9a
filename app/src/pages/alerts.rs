//! Alerts: retries exhausted, endpoints deactivated and why; acknowledge them.

use crate::api::*;
use crate::components::*;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn AlertsPage() -> impl IntoView {
    let shop = shop_id();
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
                match alerts.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(p) if p.items.is_empty() => view! { <p class="empty">"No alerts. Herald raises one when a delivery gives up or an endpoint is deactivated."</p> }.into_any(),
                    Ok(p) => view! {
                        <div class="table-wrap"><table>
                            <thead><tr>
                                <th scope="col">"Time"</th><th scope="col">"Kind"</th><th scope="col">"What happened"</th><th scope="col">"Actions"</th>
                            </tr></thead>
                            <tbody>{p.items.into_iter().map(|a| view! {
                                <tr class:acknowledged=a.acknowledged>
                                    <td>{a.created_at.clone()}</td>
                                    <td>{a.kind.replace('_', " ")}</td>
                                    <td>{a.message.clone()}</td>
                                    <td>{if a.acknowledged {
                                        view! { <span class="muted">"Acknowledged"</span> }.into_any()
                                    } else {
                                        view! {
                                            <ActionForm action=ack>
                                                <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                                                <input type="hidden" name="id" value=a.id.clone()/>
                                                <button type="submit" class="small" disabled=!can>"Acknowledge"</button>
                                            </ActionForm>
                                        }.into_any()
                                    }}</td>
                                </tr>
                            }).collect_view()}</tbody>
                        </table></div>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
