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
    let names = endpoint_names(shop);
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
                let names = names.await;
                match page.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(p) if p.items.is_empty() => view! { <p class="empty">"No attempts yet. Every HTTP request Herald makes will be listed here."</p> }.into_any(),
                    Ok(p) => {
                        let next = p.next_cursor.clone();
                        view! {
                            <TableWrap label="Attempts"><table class="stacking">
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
                                        let ok = a.status_code.is_some_and(|c| (200..300).contains(&c));
                                        view! {
                                            <tr>
                                                <td data-label="Time"><a href=format!("/shops/{}/logs/{}", shop.get_untracked(), a.id)><When at=a.at.clone()/></a></td>
                                                <td data-label="Event type">{a.event_type.clone()}</td>
                                                <td data-label="Endpoint">{endpoint_ref(&shop.get_untracked(), &a.endpoint_id, &names)}</td>
                                                <td data-label="Attempt">{a.number}</td>
                                                <td data-label="Result"><span class=if ok { "status status-succeeded" } else { "status status-failed" }>{format!("{} {result}", if ok { "OK" } else { "Failed" })}</span></td>
                                                <td data-label="Duration">{format!("{} ms", a.duration_ms)}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table></TableWrap>
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
    let names = endpoint_names(shop);
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
                let names = names.await;
                match attempt.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok((log, a)) => view! {
                        <h1>{format!("{} to {}", log.event_type, names.get(&log.endpoint_id).cloned().unwrap_or_else(|| log.endpoint_id.clone()))}</h1>
                        <dl class="facts">
                            <dt>"Endpoint"</dt><dd>{endpoint_ref(&shop.get_untracked(), &log.endpoint_id, &names)}</dd>
                            <dt>"Delivery"</dt><dd><a href=format!("/shops/{}/queue/{}", shop.get_untracked(), log.delivery_id)>{log.delivery_id.clone()}</a></dd>
                        </dl>
                        <AttemptDetail attempt=a/>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
