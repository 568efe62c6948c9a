//! Logs: every attempt, newest first; one attempt's request and response.

use super::queue::AttemptDetail;
use crate::api::*;
use crate::components::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn LogsPage() -> impl IntoView {
    let shop = shop_id();
    let q = use_query_map();
    let cursor =
        Memo::new(move |_| q.with(|q| q.get("cursor").and_then(|c| c.parse::<i64>().ok())));
    let page = Resource::new(
        move || (shop.get(), cursor.get()),
        |(s, c)| list_attempts(s, c),
    );
    view! {
        <Title text="Logs · Herald"/>
        <h1>"Logs"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(p) if p.items.is_empty() => view! { <p class="empty">"No attempts yet. Every HTTP request Herald makes will be listed here."</p> }.into_any(),
                    Ok(p) => {
                        let next = p.next_cursor.clone();
                        view! {
                            <div class="table-wrap"><table>
                                <thead><tr>
                                    <th scope="col">"Time"</th>
                                    <th scope="col">"Event type"</th>
                                    <th scope="col">"Endpoint"</th>
                                    <th scope="col">"Attempt"</th>
                                    <th scope="col">"Result"</th>
                                    <th scope="col">"Duration"</th>
                                </tr></thead>
                                <tbody>
                                    {p.items.into_iter().map(|a| {
                                        let result = a.status_code.map(|c| c.to_string()).or(a.error_kind.clone()).unwrap_or_default();
                                        view! {
                                            <tr>
                                                <td><a href=format!("/shops/{}/logs/{}", shop.get_untracked(), a.id)>{a.at.clone()}</a></td>
                                                <td>{a.event_type.clone()}</td>
                                                <td><code>{a.endpoint_id.clone()}</code></td>
                                                <td>{a.number}</td>
                                                <td>{result}</td>
                                                <td>{format!("{} ms", a.duration_ms)}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table></div>
                            {next.map(|c| view! { <p><a href=format!("?cursor={c}")>"Older attempts →"</a></p> })}
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn AttemptPage() -> impl IntoView {
    let shop = shop_id();
    let params = use_params_map();
    let id = Memo::new(move |_| {
        params.with(|p| p.get("id").and_then(|i| i.parse::<i64>().ok()).unwrap_or(0))
    });
    let attempt = Resource::new(move || (shop.get(), id.get()), |(s, i)| get_attempt(s, i));
    view! {
        <Title text="Attempt · Herald"/>
        <p><a href=move || format!("/shops/{}/logs", shop.get())>"← Logs"</a></p>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match attempt.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok((log, a)) => view! {
                        <h1>{format!("{} to {}", log.event_type, log.endpoint_id)}</h1>
                        <p>"Delivery " <a href=format!("/shops/{}/queue/{}", shop.get_untracked(), log.delivery_id)>{log.delivery_id.clone()}</a></p>
                        <AttemptDetail attempt=a/>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
