//! The Webhook Queue: every delivery, newest first, filtered and keyset-paginated; retry and
//! cancel per row or for a selection; "Retry all failed" for the filter, count confirmed
//! first. One delivery's page shows its attempts.

use crate::api::*;
use crate::components::*;
use crate::dto::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

/// Bulk changes being worked through, each with its progress; polled every two seconds
/// while one is unfinished.
#[component]
fn BulkProgress(shop: Memo<String>, refresh: Signal<usize>) -> impl IntoView {
    let names = endpoint_names(shop);
    let tick = RwSignal::new(0u32);
    let changes = Resource::new(
        move || (shop.get(), refresh.get(), tick.get()),
        |(s, _, _)| list_bulk_changes(s),
    );
    Effect::new(move |_| {
        let handle = set_interval_with_handle(
            move || {
                let busy = changes
                    .get_untracked()
                    .and_then(|r| r.ok())
                    .is_some_and(|list| list.iter().any(|c| !c.finished));
                if busy {
                    tick.update(|t| *t += 1);
                }
            },
            std::time::Duration::from_secs(2),
        );
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear();
            }
        });
    });
    view! {
        <Transition fallback=|| ()>{move || Suspend::new(async move {
            let list = changes.await.unwrap_or_default();
            let names = names.await;
            (!list.is_empty()).then(|| view! {
                <section aria-labelledby="bulk-title" class="bulk-progress">
                    <h2 id="bulk-title">"Changes in progress"</h2>
                    <ul>
                        {list.into_iter().map(|c| {
                            let what = bulk_label(&c, &names);
                            let label = format!("{what}: {} of {}", c.done, c.total);
                            view! {
                                <li>
                                    <span>{label.clone()}{if c.finished { " — done" } else { "" }}</span>
                                    <progress max=c.total.max(1) value=c.done.min(c.total.max(1)) aria-label=label></progress>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                </section>
            })
        })}</Transition>
    }
}

/// What a bulk change does, in words.
fn bulk_label(c: &BulkChangeView, names: &EndpointNames) -> String {
    let id = c.endpoint_id.as_deref().unwrap_or("");
    let endpoint = names.get(id).map(String::as_str).unwrap_or(id);
    match c.kind.as_str() {
        "retry" => format!("Retrying {} deliveries", c.status),
        "resume" => format!("Resuming held deliveries of {endpoint}"),
        "hold" => format!("Holding {} deliveries of {endpoint}", c.status),
        "cancel" => format!("Cancelling {} deliveries of {endpoint}", c.status),
        "purge" => format!(
            "Removing {} deliveries of deleted endpoint {endpoint}",
            c.status
        ),
        other => format!("{other} {} deliveries", c.status),
    }
}

#[component]
pub fn QueuePage() -> impl IntoView {
    let shop = shop_id();
    let names = endpoint_names(shop);
    let manage = can_manage(shop);
    let q = use_query_map();
    let query = Memo::new(move |_| {
        q.with(|q| {
            let get = |k: &str| q.get(k).filter(|v| !v.is_empty());
            DeliveryQuery {
                status: get("status"),
                endpoint_id: get("endpoint_id"),
                event_type: get("event_type"),
                channel: get("channel"),
                since: get("since"),
                until: get("until"),
            }
        })
    });
    let cursor = Memo::new(move |_| q.with(|q| q.get("cursor").filter(|c| !c.is_empty())));
    let act = ServerAction::<ActOnDeliveries>::new();
    let retry_all = ServerAction::<RetryAllFailed>::new();
    let page = Resource::new(
        move || {
            (
                shop.get(),
                query.get(),
                cursor.get(),
                act.version().get(),
                retry_all.version().get(),
            )
        },
        |(s, q, c, _, _)| list_deliveries(s, q, c),
    );
    let failed_count = Resource::new(
        move || {
            (
                shop.get(),
                query.get(),
                act.version().get(),
                retry_all.version().get(),
            )
        },
        |(s, mut q, _, _)| {
            q.status = Some("failed".into());
            count_deliveries(s, q)
        },
    );
    let selected = RwSignal::new(Vec::<String>::new());
    let confirming = RwSignal::new(false);
    let next_href = move |c: String| {
        let qs = q.with(|q| {
            [
                "status",
                "endpoint_id",
                "event_type",
                "channel",
                "since",
                "until",
            ]
            .iter()
            .filter_map(|k| {
                q.get(k)
                    .filter(|v| !v.is_empty())
                    .map(|v| format!("{k}={v}"))
            })
            .collect::<Vec<_>>()
        });
        let mut parts = qs;
        parts.push(format!("cursor={c}"));
        format!("?{}", parts.join("&"))
    };
    view! {
        <Title text="Webhook Queue · Herald"/>
        <h1>"Webhook Queue"</h1>
        <form method="get" class="filters inline-form">
            <label for="f-status">"Status"</label>
            <select id="f-status" name="status">
                <option value="">"Any"</option>
                {crate::model::DeliveryStatus::ALL.iter().map(|s| {
                    let s = s.as_str();
                    let sel = move || query.get().status.as_deref() == Some(s);
                    view! { <option value=s selected=sel>{s}</option> }
                }).collect_view()}
            </select>
            <label for="f-endpoint">"Endpoint"</label>
            <Suspense fallback=|| view! { <input id="f-endpoint" name="endpoint_id" size="12"/> }>{move || Suspend::new(async move {
                let mut list: Vec<(String, String)> = names.await.into_iter().collect();
                list.sort_by(|a, b| a.1.cmp(&b.1));
                view! {
                    <select id="f-endpoint" name="endpoint_id">
                        <option value="">"Any"</option>
                        {list.into_iter().map(|(id, name)| {
                            let this = id.clone();
                            let sel = move || query.get().endpoint_id.as_deref() == Some(this.as_str());
                            view! { <option value=id selected=sel>{name}</option> }
                        }).collect_view()}
                    </select>
                }
            })}</Suspense>
            <label for="f-type">"Event type"</label>
            <input id="f-type" name="event_type" size="14" value=move || query.get().event_type/>
            <label for="f-channel">"Channel"</label>
            <input id="f-channel" name="channel" size="10" value=move || query.get().channel/>
            <label for="f-since">"Since"</label>
            <input id="f-since" name="since" type="datetime-local" value=move || query.get().since/>
            <label for="f-until">"Until"</label>
            <input id="f-until" name="until" type="datetime-local" value=move || query.get().until/>
            <button type="submit">"Filter"</button>
        </form>
        <Suspense fallback=|| ()>{move || Suspend::new(async move {
            let can = manage.await;
            let failed_n = failed_count.await.unwrap_or(0);
            // Past the cap the count stops: "more than" it, not an exact figure.
            let failed = if failed_n > crate::dto::COUNT_CAP {
                format!("{}+", crate::dto::COUNT_CAP)
            } else {
                failed_n.to_string()
            };
            let failed_label = failed.clone();
            view! {
                <div class="bulk inline-form">
                    <ActionForm action=act>
                        <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                        <input type="hidden" name="ids" value=move || selected.get().join(",")/>
                        <input type="hidden" name="cancel" value="false"/>
                        <button type="submit" disabled=move || !can || selected.get().is_empty()>"Retry selected"</button>
                    </ActionForm>
                    <ActionForm action=act>
                        <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                        <input type="hidden" name="ids" value=move || selected.get().join(",")/>
                        <input type="hidden" name="cancel" value="true"/>
                        <button type="submit" class="secondary" disabled=move || !can || selected.get().is_empty()>"Cancel selected"</button>
                    </ActionForm>
                    <Show when=move || !confirming.get() fallback=move || view! {
                        <span role="alertdialog" aria-label="Confirm retry" class="confirm">
                            {format!("Retry {failed} failed deliveries matching this filter?")}
                            <button type="button" on:click=move |_| {
                                retry_all.dispatch(RetryAllFailed { shop_id: shop.get_untracked(), query: query.get_untracked() });
                                confirming.set(false);
                            }>"Confirm retry"</button>
                            <button type="button" class="secondary" on:click=move |_| confirming.set(false)>"Keep them"</button>
                        </span>
                    }>
                        <button type="button" disabled=!can || failed_n == 0 on:click=move |_| confirming.set(true)>
                            {format!("Retry all failed ({failed_label})")}
                        </button>
                    </Show>
                </div>
            }
        })}</Suspense>
        {move || match act.value().get() {
            Some(Ok(n)) => Some(view! { <p class="notice" role="status">{format!("{n} deliveries updated.")}</p> }.into_any()),
            Some(Err(e)) => Some(view! { <ErrorNote message=error_text(&e)/> }.into_any()),
            None => None,
        }}
        {move || match retry_all.value().get() {
            Some(Ok(n)) => Some(view! { <p class="notice" role="status">{format!("{n} failed deliveries queued again.")}</p> }.into_any()),
            Some(Err(e)) => Some(view! { <ErrorNote message=error_text(&e)/> }.into_any()),
            None => None,
        }}
        <BulkProgress shop=shop refresh=Signal::derive(move || act.version().get() + retry_all.version().get())/>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let can = manage.await;
                let names = names.await;
                match page.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(p) if p.items.is_empty() => view! {
                        <p class="empty">"No deliveries match. Publish an event, or send a test event from an endpoint's page."</p>
                    }.into_any(),
                    Ok(p) => {
                        let next = p.next_cursor.clone();
                        view! {
                            <TableWrap label="Deliveries"><table class="stacking">
                                <thead><tr>
                                    <th scope="col"><span class="visually-hidden">"Select"</span></th>
                                    <th scope="col">"Created"</th>
                                    <th scope="col">"Event"</th>
                                    <th scope="col">"Endpoint"</th>
                                    <th scope="col">"Status"</th>
                                    <th scope="col">"Attempts"</th>
                                    <th scope="col">"Last response"</th>
                                    <th scope="col">"Next attempt"</th>
                                    <th scope="col">"Actions"</th>
                                </tr></thead>
                                <tbody>
                                    {p.items.into_iter().map(|d| {
                                        let id = d.id.clone();
                                        let id2 = d.id.clone();
                                        let href = format!("/shops/{}/queue/{}", shop.get_untracked(), d.id);
                                        let event_type = d.event_type.clone();
                                        view! {
                                            <tr>
                                                <td data-label="Select"><input type="checkbox" aria-label=format!("Select the {} delivery {}", d.event_type, d.id)
                                                    on:change=move |ev| {
                                                        let on = event_target_checked(&ev);
                                                        let id = id.clone();
                                                        selected.update(|s| if on { s.push(id) } else { s.retain(|x| *x != id) });
                                                    }/></td>
                                                <td data-label="Created"><a href=href><When at=d.created_at.clone()/></a></td>
                                                <td data-label="Event">{d.event_type.clone()}<div class="muted id"><code>{d.event_id.clone()}</code></div></td>
                                                <td data-label="Endpoint">{endpoint_ref(&shop.get_untracked(), &d.endpoint_id, &names)}</td>
                                                <td data-label="Status"><StatusBadge status=d.status.clone()/></td>
                                                <td data-label="Attempts">{d.attempt_count}</td>
                                                <td data-label="Last response">{d.last_status_code.map(|c| c.to_string()).or(d.last_error.clone()).unwrap_or_else(|| "—".into())}</td>
                                                <td data-label="Next attempt">{match d.next_attempt_at.clone() { Some(t) => view! { <When at=t/> }.into_any(), None => view! { "—" }.into_any() }}</td>
                                                <td data-label="Actions">
                                                    <ActionForm action=act>
                                                        <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                                                        <input type="hidden" name="ids" value=id2.clone()/>
                                                        <input type="hidden" name="cancel" value="false"/>
                                                        <button type="submit" class="small" disabled=!can aria-label=format!("Retry {event_type} delivery {id2}")>"Retry"</button>
                                                    </ActionForm>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table></TableWrap>
                            {next.map(|c| view! { <p><a href=next_href(c)>"Older deliveries →"</a></p> })}
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn DeliveryPage() -> impl IntoView {
    let shop = shop_id();
    let names = endpoint_names(shop);
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let manage = can_manage(shop);
    let act = ServerAction::<ActOnDeliveries>::new();
    let delivery = Resource::new(
        move || (shop.get(), id.get(), act.version().get()),
        |(s, i, _)| get_delivery(s, i),
    );
    view! {
        <Title text="Delivery · Herald"/>
        <p><a href=move || format!("/shops/{}/queue", shop.get())>"← Webhook Queue"</a></p>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let can = manage.await;
                let names = names.await;
                match delivery.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(d) => view! {
                        <h1>{format!("Delivery of {}", d.event_type)}</h1>
                        <dl class="facts">
                            <dt>"ID"</dt><dd><code>{d.id.clone()}</code>" "<CopyButton text=d.id.clone() label="delivery id".to_string()/></dd>
                            <dt>"Status"</dt><dd><StatusBadge status=d.status.clone()/></dd>
                            <dt>"Event"</dt><dd>{d.event_type.clone()} " · " <code>{d.event_id.clone()}</code>" "<CopyButton text=d.event_id.clone() label="event id".to_string()/></dd>
                            <dt>"Endpoint"</dt><dd>{endpoint_ref(&shop.get_untracked(), &d.endpoint_id, &names)}</dd>
                            <dt>"Created"</dt><dd><When at=d.created_at.clone()/></dd>
                            <dt>"Attempts"</dt><dd>{d.attempt_count}</dd>
                            <dt>"Next attempt"</dt><dd>{match d.next_attempt_at.clone() { Some(t) => view! { <When at=t/> }.into_any(), None => view! { "—" }.into_any() }}</dd>
                        </dl>
                        <ActionForm action=act attr:class="inline-form">
                            <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                            <input type="hidden" name="ids" value=d.id.clone()/>
                            <input type="hidden" name="cancel" value="false"/>
                            <button type="submit" disabled=!can>"Retry"</button>
                        </ActionForm>
                        <h2>"Attempts"</h2>
                        {d.attempts.unwrap_or_default().into_iter().map(|a| view! { <AttemptDetail attempt=a/> }).collect_view()}
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// One attempt: its request and its response, pretty-printed.
#[component]
pub fn AttemptDetail(attempt: AttemptView) -> impl IntoView {
    let outcome = attempt
        .status_code
        .map(|c| format!("HTTP {c}"))
        .or(attempt.error_kind.clone())
        .unwrap_or_default();
    view! {
        <section class="panel attempt">
            <h3>{format!("Attempt {} · {} · {} ms · ", attempt.number, outcome, attempt.duration_ms)}<When at=attempt.at.clone()/></h3>
            {attempt.error_message.clone().map(|m| view! { <p class="error">{m}</p> })}
            <div class="two-col">
                <div>
                    <h4>"Request"</h4>
                    <pre tabindex="0" aria-label="Request headers">{serde_json::to_string_pretty(&attempt.request.headers).unwrap_or_default()}</pre>
                    <CopyBlock text=pretty(&attempt.request.body) label=format!("attempt {} request body", attempt.number)/>
                </div>
                <div>
                    <h4>"Response"</h4>
                    {match attempt.response {
                        Some(r) => view! {
                            <pre tabindex="0" aria-label="Response headers">{serde_json::to_string_pretty(&r.headers).unwrap_or_default()}</pre>
                            <pre tabindex="0" aria-label="Response body">{pretty(&r.body)}</pre>
                        }.into_any(),
                        None => view! { <p class="muted">"No response."</p> }.into_any(),
                    }}
                </div>
            </div>
        </section>
    }
}
