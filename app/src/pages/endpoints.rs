//! Endpoints: the list, the create/edit form (with the template editor and its live preview),
//! and one endpoint's page (secret, test event, enable/disable, delete).

use crate::api::*;
use crate::components::*;
use crate::dto::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

fn success_label(e: &EndpointView) -> String {
    match (&e.enabled, &e.failing_since) {
        (false, _) => format!(
            "Disabled: {}",
            e.disabled_reason.clone().unwrap_or_default()
        ),
        (true, Some(_)) => "Failing".into(),
        (true, None) => "Enabled".into(),
    }
}

#[component]
pub fn EndpointsPage() -> impl IntoView {
    let shop = shop_id();
    let manage = can_manage(shop);
    let save = ServerAction::<SaveEndpoint>::new();
    let endpoints = Resource::new(
        move || (shop.get(), save.version().get()),
        |(s, _)| list_endpoints(s),
    );
    let success = Resource::new(
        move || (shop.get(), save.version().get()),
        |(s, _)| endpoint_success(s),
    );
    view! {
        <Title text="Endpoints · Herald"/>
        <h1>"Endpoints"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let rates = success.await.unwrap_or_default();
                match endpoints.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty">"No endpoints yet. Add one below: Herald will POST every matching event to it."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <div class="table-wrap"><table>
                            <thead><tr>
                                <th scope="col">"URL"</th>
                                <th scope="col">"Status"</th>
                                <th scope="col">"Event types"</th>
                                <th scope="col">"Channels"</th>
                                <th scope="col">"Success (7 days)"</th>
                                <th scope="col">"Last attempt"</th>
                            </tr></thead>
                            <tbody>
                                {list.into_iter().map(|e| {
                                    let href = format!("/shops/{}/endpoints/{}", shop.get_untracked(), e.id);
                                    let types = if e.event_types.is_empty() { "All".to_string() } else { e.event_types.join(", ") };
                                    let chans = if e.channels.is_empty() { "All".to_string() } else { e.channels.join(", ") };
                                    let rate = rates.iter().find(|(id, _, _)| *id == e.id)
                                        .map(|(_, ok, n)| format!("{:.0} % of {n}", *ok as f64 * 100.0 / (*n).max(1) as f64))
                                        .unwrap_or_else(|| "No attempts".into());
                                    view! {
                                        <tr>
                                            <td><a href=href>{e.url.clone()}</a><div class="muted">{e.description.clone()}</div></td>
                                            <td>{success_label(&e)}</td>
                                            <td>{types}</td>
                                            <td>{chans}</td>
                                            <td>{rate}</td>
                                            <td>{e.last_attempt_at.clone().unwrap_or_else(|| "Never".into())}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table></div>
                    }.into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                manage.await.then(|| view! {
                    <section class="panel">
                        <h2>"Add an endpoint"</h2>
                        <EndpointForm action=save existing=None/>
                        {move || match save.value().get() {
                            Some(Ok(ep)) => Some(view! {
                                <div class="notice" role="status">
                                    <p>"Endpoint created. Its signing secret is shown only now (you can reveal it again on the endpoint's page):"</p>
                                    <code class="secret">{ep.secret.clone().unwrap_or_default()}</code>
                                    <p><a href=format!("/shops/{}/endpoints/{}", shop.get_untracked(), ep.id)>"Open the endpoint"</a></p>
                                </div>
                            }),
                            _ => None,
                        }}
                    </section>
                })
            })}
        </Suspense>
    }
}

/// The endpoint form, for creating (`existing` None) and editing.
#[component]
pub fn EndpointForm(
    action: ServerAction<SaveEndpoint>,
    existing: Option<EndpointView>,
) -> impl IntoView {
    let shop = shop_id();
    let e = existing.clone();
    let presets = Resource::new(|| (), |_| retry_presets());
    let types = Resource::new(move || shop.get(), list_event_types);
    let template = RwSignal::new(
        e.as_ref()
            .and_then(|e| e.payload.template.clone())
            .unwrap_or_default(),
    );
    let content_type = RwSignal::new(
        e.as_ref()
            .map(|e| e.payload.content_type.clone())
            .unwrap_or_else(|| "application/json".into()),
    );
    let event_types = RwSignal::new(
        e.as_ref()
            .map(|e| e.event_types.join(", "))
            .unwrap_or_default(),
    );
    let preview_type = Memo::new(move |_| {
        split_list(&event_types.get())
            .into_iter()
            .next()
            .unwrap_or_else(|| "order.created".into())
    });
    let preview = Resource::new(
        move || {
            (
                shop.get(),
                preview_type.get(),
                content_type.get(),
                template.get(),
            )
        },
        |(s, t, c, tpl)| preview_template(s, t, c, tpl),
    );
    let current_retry = e.as_ref().map(|e| e.retry.clone());
    let id = e.as_ref().map(|e| e.id.clone()).unwrap_or_default();
    let v = action.value();
    let deactivation = match e.as_ref().map(|e| e.disable_on_status.len()) {
        Some(0) => "none",
        Some(n) if n > 1 => "strict",
        _ => "default",
    };
    view! {
        <ActionForm action=action attr:class="grid-form endpoint-form">
            <input type="hidden" name="form[shop_id]" value=move || shop.get()/>
            <input type="hidden" name="form[id]" value=id/>
            <label for="ep-url">"URL"</label>
            <div><input id="ep-url" name="form[url]" type="url" required placeholder="https://example.com/webhooks" value=e.as_ref().map(|e| e.url.clone())/>{field_error(v, "url")}</div>
            <label for="ep-description">"Description"</label>
            <input id="ep-description" name="form[description]" value=e.as_ref().map(|e| e.description.clone())/>
            <label for="ep-types">"Event types"</label>
            <div>
                <input id="ep-types" name="form[event_types]" list="event-type-list" placeholder="empty = all, or order.created, ticket.updated"
                    prop:value=move || event_types.get() on:input=move |ev| event_types.set(event_target_value(&ev))/>
                <datalist id="event-type-list">
                    <Suspense fallback=|| ()>{move || Suspend::new(async move {
                        types.await.unwrap_or_default().into_iter().map(|t| view! { <option value=t.name.clone()>{t.description}</option> }).collect_view()
                    })}</Suspense>
                </datalist>
                {field_error(v, "event_types[0]")}
            </div>
            <label for="ep-channels">"Channels"</label>
            <input id="ep-channels" name="form[channels]" placeholder="empty = all, or client_42, agent_7" value=e.as_ref().map(|e| e.channels.join(", "))/>
            <label for="ep-retry">"Retry policy"</label>
            <select id="ep-retry" name="form[retry_preset]">
                <Suspense fallback=|| ()>{move || {
                    let current = current_retry.clone();
                    Suspend::new(async move {
                        presets.await.unwrap_or_default().into_iter().map(|p| {
                            let selected = current.as_ref() == Some(&p.policy);
                            view! { <option value=p.id.clone() selected=selected>{p.label}</option> }
                        }).collect_view()
                    })
                }}</Suspense>
            </select>
            <label for="ep-ct">"Payload content type"</label>
            <select id="ep-ct" name="form[content_type]" on:change=move |ev| content_type.set(event_target_value(&ev))>
                {["application/json", "application/xml", "text/plain"].into_iter().map(|c| {
                    let selected = e.as_ref().map(|e| e.payload.content_type == c).unwrap_or(c == "application/json");
                    view! { <option value=c selected=selected>{c}</option> }
                }).collect_view()}
            </select>
            <label for="ep-template">"Payload template"</label>
            <div>
                <textarea id="ep-template" name="form[template]" rows="6" placeholder="Empty: the default envelope. Use {tags}: {\"ticket\": \"{ticket_ref}\"}"
                    prop:value=move || template.get() on:input=move |ev| template.set(event_target_value(&ev))>{template.get_untracked()}</textarea>
                {field_error(v, "template")}
            </div>
            <span class="muted">"Preview"</span>
            <div class="preview" aria-live="polite">
                <Suspense fallback=|| view! { <p>"Rendering…"</p> }>{move || Suspend::new(async move {
                    match preview.await {
                        Ok(p) => view! {
                            {p.error.map(|e| view! { <p class="error">{e}</p> })}
                            <pre data-testid="preview">{p.body}</pre>
                            <details><summary>"Merge fields"</summary>
                                <ul class="merge-fields">{p.merge_fields.into_iter().map(|f| view! { <li><code>{format!("{{{f}}}")}</code></li> }).collect_view()}</ul>
                            </details>
                        }.into_any(),
                        Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    }
                })}</Suspense>
            </div>
            <label for="ep-user">"Basic auth username"</label>
            <input id="ep-user" name="form[basic_auth_username]" autocomplete="off" value=e.as_ref().and_then(|e| e.basic_auth.as_ref().map(|b| b.username.clone()))/>
            <label for="ep-pass">"Basic auth password"</label>
            <input id="ep-pass" name="form[basic_auth_password]" type="password" autocomplete="new-password" placeholder=if e.as_ref().and_then(|e| e.basic_auth.as_ref()).is_some_and(|b| b.password_set) { "(unchanged)" } else { "" }/>
            <label for="ep-headers">"Extra headers (JSON)"</label>
            <div>
                <textarea id="ep-headers" name="form[headers]" rows="2" placeholder="{\"X-Shop\": \"42\"}">{e.as_ref().filter(|e| !e.headers.is_empty()).map(|e| serde_json::to_string(&e.headers).unwrap_or_default())}</textarea>
                {field_error(v, "headers")}
            </div>
            <label for="ep-timeout">"Timeout (ms)"</label>
            <input id="ep-timeout" name="form[timeout_ms]" type="number" min="100" max="60000" value=e.as_ref().map(|e| e.timeout_ms).unwrap_or(5000).to_string()/>
            <label for="ep-priority">"Priority"</label>
            <select id="ep-priority" name="form[priority]">
                {["high", "normal", "low"].into_iter().map(|p| {
                    let selected = e.as_ref().map(|e| e.priority == p).unwrap_or(p == "normal");
                    view! { <option value=p selected=selected>{p}</option> }
                }).collect_view()}
            </select>
            <span></span>
            <label class="check"><input type="checkbox" name="form[unique_pending]" value="on" checked=e.as_ref().map(|e| e.unique_pending).unwrap_or(false)/>"Queue items must be unique (per entity key)"</label>
            <label for="ep-deactivation">"Deactivate on"</label>
            <select id="ep-deactivation" name="form[deactivation]">
                <option value="default" selected=deactivation == "default">"410 Gone (default)"</option>
                <option value="strict" selected=deactivation == "strict">"400, 401, 403, 404, 405, 406, 410, 411 (strict)"</option>
                <option value="none" selected=deactivation == "none">"Never on a status code"</option>
            </select>
            <label for="ep-rate">"Rate limit (per second)"</label>
            <input id="ep-rate" name="form[rate_limit_per_second]" type="number" min="1" placeholder="none" value=e.as_ref().and_then(|e| e.rate_limit_per_second).map(|r| r.to_string())/>
            <button type="submit">{if existing.is_some() { "Save endpoint" } else { "Create endpoint" }}</button>
        </ActionForm>
        {move || match v.get() {
            Some(Err(e)) => Some(view! { <ErrorNote message=error_text(&e)/> }),
            _ => None,
        }}
    }
}

#[component]
pub fn EndpointPage() -> impl IntoView {
    let shop = shop_id();
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let manage = can_manage(shop);
    let save = ServerAction::<SaveEndpoint>::new();
    let toggle = ServerAction::<SetEndpointEnabled>::new();
    let reveal = ServerAction::<RevealSecret>::new();
    let rotate = ServerAction::<RotateSecret>::new();
    let test = ServerAction::<SendTestEvent>::new();
    let delete = ServerAction::<DeleteEndpoint>::new();
    let endpoint = Resource::new(
        move || {
            (
                shop.get(),
                id.get(),
                save.version().get(),
                toggle.version().get(),
            )
        },
        |(s, i, _, _)| get_endpoint(s, i),
    );
    view! {
        <Title text="Endpoint · Herald"/>
        <p><a href=move || format!("/shops/{}/endpoints", shop.get())>"← Endpoints"</a></p>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let can = manage.await;
                match endpoint.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(ep) => {
                        let enabled = ep.enabled;
                        let id0 = ep.id.clone();
                        let id1 = ep.id.clone();
                        let id2 = ep.id.clone();
                        let id3 = ep.id.clone();
                        let id4 = ep.id.clone();
                        let test_type = ep.event_types.first().cloned().unwrap_or_else(|| "order.created".into());
                        let ep_form = ep.clone();
                        let ep_json = serde_json::to_string_pretty(&ep).unwrap_or_default();
                        view! {
                            <h1>{ep.url.clone()}</h1>
                            <dl class="facts">
                                <dt>"Status"</dt><dd>{success_label(&ep)}</dd>
                                <dt>"ID"</dt><dd><code>{ep.id.clone()}</code></dd>
                                <dt>"Retry policy"</dt><dd><code>{ep.retry.to_string()}</code></dd>
                            </dl>
                            <section class="panel actions">
                                <h2>"Actions"</h2>
                                <ActionForm action=toggle attr:class="inline-form">
                                    <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                                    <input type="hidden" name="id" value=id0/>
                                    <input type="hidden" name="enabled" value=(!enabled).to_string()/>
                                    <button type="submit" disabled=!can>{if enabled { "Disable endpoint" } else { "Enable endpoint" }}</button>
                                </ActionForm>
                                <ActionForm action=test attr:class="inline-form">
                                    <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                                    <input type="hidden" name="id" value=id1/>
                                    <label for="test-type">"Event type"</label>
                                    <input id="test-type" name="event_type" value=test_type/>
                                    <button type="submit" disabled=!can>"Send test event"</button>
                                </ActionForm>
                                {move || match test.value().get() {
                                    Some(Ok(d)) => Some(view! { <p class="notice" role="status">"Test event queued: " <a href=format!("/shops/{}/queue/{d}", shop.get_untracked())>{d.clone()}</a></p> }.into_any()),
                                    Some(Err(e)) => Some(view! { <ErrorNote message=error_text(&e)/> }.into_any()),
                                    None => None,
                                }}
                                <div class="inline-form">
                                    <ActionForm action=reveal>
                                        <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                                        <input type="hidden" name="id" value=id2/>
                                        <button type="submit" class="secondary" disabled=!can>"Reveal signing secret"</button>
                                    </ActionForm>
                                    <ActionForm action=rotate>
                                        <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                                        <input type="hidden" name="id" value=id3/>
                                        <button type="submit" class="secondary" disabled=!can>"Rotate signing secret"</button>
                                    </ActionForm>
                                </div>
                                {move || {
                                    let shown = rotate.value().get().or_else(|| reveal.value().get());
                                    match shown {
                                        Some(Ok(s)) => Some(view! {
                                            <div class="notice" role="status">
                                                <p>{if rotate.value().get().is_some() { "New signing secret (the old one keeps signing for 24 hours):" } else { "Signing secret:" }}</p>
                                                <CopyBlock text=s label="signing secret".to_string()/>
                                            </div>
                                        }.into_any()),
                                        Some(Err(e)) => Some(view! { <ErrorNote message=error_text(&e)/> }.into_any()),
                                        None => None,
                                    }
                                }}
                                <ActionForm action=delete attr:class="inline-form">
                                    <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                                    <input type="hidden" name="id" value=id4/>
                                    <label class="check"><input type="checkbox" name="confirm" required/>"I understand"</label>
                                    <button type="submit" class="danger" disabled=!can>"Delete endpoint"</button>
                                </ActionForm>
                                {move || match delete.value().get() {
                                    Some(Err(e)) => Some(view! { <ErrorNote message=error_text(&e)/> }),
                                    _ => None,
                                }}
                            </section>
                            <section class="panel">
                                <h2>"Settings"</h2>
                                {if can {
                                    view! { <EndpointForm action=save existing=Some(ep_form)/> }.into_any()
                                } else {
                                    view! { <pre>{ep_json}</pre> }.into_any()
                                }}
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
