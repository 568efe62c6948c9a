//! Endpoints: the list, the create/edit form (with the template editor and its live preview),
//! and one endpoint's page (secret, test event, enable/disable, delete).

use crate::api::*;
use crate::components::*;
use crate::dto::*;
use crate::endpoint_form::{status_list, RetryFields, STRICT_STATUSES};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// An endpoint's state as a badge whose text says it (not only its colour).
#[component]
fn EndpointStatus(endpoint: EndpointView) -> impl IntoView {
    let class = match (&endpoint.enabled, &endpoint.failing_since) {
        (false, _) => "status status-failed",
        (true, Some(_)) => "status status-retrying",
        (true, None) => "status status-succeeded",
    };
    view! { <span class=class>{success_label(&endpoint)}</span> }
}

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
                        <TableWrap label="Endpoints"><table class="stacking">
                            <thead><tr>
                                <th scope="col">"Endpoint"</th>
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
                                    let (name, detail) = if e.description.is_empty() { (e.url.clone(), None) } else { (e.description.clone(), Some(e.url.clone())) };
                                    view! {
                                        <tr>
                                            <td data-label="Endpoint"><a href=href class="name">{name}</a>{detail.map(|u| view! { <div class="muted url">{u}</div> })}</td>
                                            <td data-label="Status"><EndpointStatus endpoint=e.clone()/></td>
                                            <td data-label="Event types">{types}</td>
                                            <td data-label="Channels">{chans}</td>
                                            <td data-label="Success (7 days)">{rate}</td>
                                            <td data-label="Last attempt">{match e.last_attempt_at.clone() { Some(t) => view! { <When at=t/> }.into_any(), None => view! { "Never" }.into_any() }}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table></TableWrap>
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

/// The catalog as checkboxes, one per type and grouped by family, with a search box and "All
/// event types"; names the catalog does not list stay in a text field, so none is lost on save.
#[component]
fn EventTypePicker(
    catalog: Vec<EventTypeView>,
    selected: Vec<String>,
    picked: RwSignal<Vec<String>>,
    error: Signal<Option<String>>,
) -> impl IntoView {
    let all = RwSignal::new(selected.is_empty());
    let search = RwSignal::new(String::new());
    let other: Vec<String> = selected
        .iter()
        .filter(|t| !catalog.iter().any(|c| &c.name == *t))
        .cloned()
        .collect();
    let mut families: Vec<(String, Vec<EventTypeView>)> = Vec::new();
    for t in catalog {
        match families.iter_mut().find(|(f, _)| *f == t.family) {
            Some((_, list)) => list.push(t),
            None => families.push((t.family.clone(), vec![t])),
        }
    }
    view! {
        <fieldset class="type-picker">
            <legend>"Event types"</legend>
            <input type="hidden" name="form[previous_types]" value=selected.join(",")/>
            <label class="check">
                <input type="checkbox" name="form[all_types]" value="on" checked=all.get_untracked()
                    on:change=move |ev| all.set(event_target_checked(&ev))/>
                "All event types"
            </label>
            {error_for(error, "event_types")}
            <div class="type-list" hidden=move || all.get()>
                <label for="ep-type-search">"Find a type"</label>
                <input id="ep-type-search" type="search" placeholder="order, ticket.updated…"
                    on:input=move |ev| search.set(event_target_value(&ev).to_lowercase())/>
                {families.into_iter().map(|(family, types)| {
                    let names: Vec<String> = types.iter().map(|t| t.name.clone()).collect();
                    view! {
                        <fieldset class="type-family" hidden=move || { let q = search.get(); !q.is_empty() && !names.iter().any(|n| n.contains(&q)) }>
                            <legend>{family.replace('_', " ")}</legend>
                            {types.into_iter().map(|t| {
                                let name = t.name.clone();
                                let shown = t.name.clone();
                                let on = selected.contains(&t.name);
                                view! {
                                    <label class="check" title=t.description.clone() hidden=move || { let q = search.get(); !q.is_empty() && !shown.contains(&q) }>
                                        <input type="checkbox" name=format!("form[types][{}]", t.name) value="on" checked=on
                                            on:change=move |ev| {
                                                let n = name.clone();
                                                let checked = event_target_checked(&ev);
                                                picked.update(|p| if checked { if !p.contains(&n) { p.push(n) } } else { p.retain(|x| *x != n) });
                                            }/>
                                        {t.name.clone()}
                                    </label>
                                }
                            }).collect_view()}
                        </fieldset>
                    }
                }).collect_view()}
                <label for="ep-other-types">"Other event types"</label>
                <input id="ep-other-types" name="form[other_types]" placeholder="names not in the catalog, separated by commas"
                    value=other.join(", ")/>
                {error_for(error, "event_types[0]")}
            </div>
        </fieldset>
    }
}

/// The endpoint form, for creating (`existing` None) and editing. Every setting of the
/// endpoint has a field filled with its value, so saving changes only what was touched.
#[component]
pub fn EndpointForm(
    action: ServerAction<SaveEndpoint>,
    existing: Option<EndpointView>,
) -> impl IntoView {
    let shop = shop_id();
    let e = existing.clone();
    let types = Resource::new(move || shop.get(), list_event_types);
    let presets = crate::components::load_retry_presets();
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
    let selected = e
        .as_ref()
        .map(|e| e.event_types.clone())
        .unwrap_or_default();
    let picked = RwSignal::new(selected.clone());
    let preview_type = Memo::new(move |_| {
        picked
            .with(|p| p.first().cloned())
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
    let retry = e.as_ref().map(|e| RetryFields::of(&e.retry));
    // A new endpoint starts from the shop's default policy, as one created through the API.
    let defaults = retry
        .is_none()
        .then(|| Resource::new(move || shop.get(), get_settings));
    let id = e.as_ref().map(|e| e.id.clone()).unwrap_or_default();
    let v = action.value();
    let error = last_error(v);
    let statuses = RwSignal::new(
        e.as_ref()
            .map(|e| status_list(&e.disable_on_status))
            .unwrap_or_else(|| "410".into()),
    );
    let cert_set = e.as_ref().is_some_and(|e| e.client_certificate_set);
    let password_set = e
        .as_ref()
        .and_then(|e| e.basic_auth.as_ref())
        .is_some_and(|b| b.password_set);
    let unsubscribe_action = e
        .as_ref()
        .map(|e| e.unsubscribe_action.clone())
        .unwrap_or_else(|| "disable".into());
    view! {
        <ActionForm action=action attr:class="endpoint-form">
            <input type="hidden" name="form[shop_id]" value=move || shop.get()/>
            <input type="hidden" name="form[id]" value=id/>
            <fieldset class="grid-form">
                <legend>"Where"</legend>
                <label for="ep-url">"URL"</label>
                <div><input id="ep-url" name="form[url]" type="url" required placeholder="https://example.com/webhooks" value=e.as_ref().map(|e| e.url.clone())/>{error_for(error, "url")}</div>
                <label for="ep-description">"Description"</label>
                <div><input id="ep-description" name="form[description]" placeholder="shown instead of the URL in lists" value=e.as_ref().map(|e| e.description.clone())/>{error_for(error, "description")}</div>
            </fieldset>
            <Suspense fallback=|| view! { <p>"Loading the catalog…"</p> }>{
                let selected = selected.clone();
                move || {
                    let selected = selected.clone();
                    Suspend::new(async move {
                        let catalog = types.await.unwrap_or_default();
                        view! { <EventTypePicker catalog selected picked error/> }
                    })
                }
            }</Suspense>
            <fieldset class="grid-form">
                <legend>"Routing and delivery"</legend>
                <label for="ep-channels">"Channels"</label>
                <div><input id="ep-channels" name="form[channels]" placeholder="empty = all, or client_42, agent_7" value=e.as_ref().map(|e| e.channels.join(", "))/>{error_for(error, "channels[0]")}</div>
                <label for="ep-timeout">"Timeout (ms)"</label>
                <div><input id="ep-timeout" name="form[timeout_ms]" type="number" min="100" max="60000" value=e.as_ref().map(|e| e.timeout_ms).unwrap_or(5000).to_string()/>{error_for(error, "timeout_ms")}</div>
                <label for="ep-priority">"Priority"</label>
                <select id="ep-priority" name="form[priority]">
                    {["high", "normal", "low"].into_iter().map(|p| {
                        let selected = e.as_ref().map(|e| e.priority == p).unwrap_or(p == "normal");
                        view! { <option value=p selected=selected>{p}</option> }
                    }).collect_view()}
                </select>
                <label for="ep-rate">"Rate limit (per second)"</label>
                <div><input id="ep-rate" name="form[rate_limit_per_second]" type="number" min="1" max="10000" placeholder="none" value=e.as_ref().and_then(|e| e.rate_limit_per_second).map(|r| r.to_string())/>{error_for(error, "rate_limit_per_second")}</div>
                <span></span>
                <label class="check"><input type="checkbox" name="form[unique_pending]" value="on" checked=e.as_ref().map(|e| e.unique_pending).unwrap_or(false)/>"Queue items must be unique (per entity key)"</label>
            </fieldset>
            <fieldset class="grid-form">
                <legend>"When a delivery fails"</legend>
                {match (retry, defaults) {
                    (Some(initial), _) => view! { <RetryPolicyFields prefix="form[retry]" id="ep-retry" initial error presets/> }.into_any(),
                    (None, Some(defaults)) => view! {
                        <Suspense fallback=|| ()>{move || Suspend::new(async move {
                            let initial = defaults.await.map(|s| RetryFields::of(&s.default_retry)).unwrap_or_default();
                            view! { <RetryPolicyFields prefix="form[retry]" id="ep-retry" initial error presets/> }
                        })}</Suspense>
                    }.into_any(),
                    (None, None) => ().into_any(),
                }}
            </fieldset>
            <fieldset class="grid-form">
                <legend>"Payload"</legend>
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
                    {error_for(error, "template")}
                </div>
                <span class="muted">"Preview"</span>
                <div class="preview" aria-live="polite">
                    <Suspense fallback=|| view! { <p>"Rendering…"</p> }>{move || Suspend::new(async move {
                        match preview.await {
                            Ok(p) => view! {
                                {p.error.map(|e| view! { <p class="error">{e}</p> })}
                                <pre data-testid="preview" tabindex="0" aria-label="Payload preview">{p.body}</pre>
                                <details><summary>"Merge fields"</summary>
                                    <ul class="merge-fields">{p.merge_fields.into_iter().map(|f| view! { <li><code>{format!("{{{f}}}")}</code></li> }).collect_view()}</ul>
                                </details>
                            }.into_any(),
                            Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                        }
                    })}</Suspense>
                </div>
                <label for="ep-headers">"Extra headers (JSON)"</label>
                <div>
                    <textarea id="ep-headers" name="form[headers]" rows="2" placeholder="{\"X-Shop\": \"42\"}">{e.as_ref().filter(|e| !e.headers.is_empty()).map(|e| serde_json::to_string(&e.headers).unwrap_or_default())}</textarea>
                    {error_for(error, "headers")}
                </div>
            </fieldset>
            <fieldset class="grid-form">
                <legend>"Authentication"</legend>
                <label for="ep-user">"Basic auth username"</label>
                <div><input id="ep-user" name="form[basic_auth_username]" autocomplete="off" value=e.as_ref().and_then(|e| e.basic_auth.as_ref().map(|b| b.username.clone()))/>{error_for(error, "basic_auth.username")}</div>
                <label for="ep-pass">"Basic auth password"</label>
                <div>
                    <input id="ep-pass" name="form[basic_auth_password]" type="password" autocomplete="new-password" placeholder=if password_set { "set (leave empty to keep it)" } else { "" }/>
                    {password_set.then(|| view! {
                        <p class="muted">"A URL on another host, scheme or port needs the password again: it was set for this one."</p>
                    })}
                </div>
                <label for="ep-cert">"Client certificate and key (PEM)"</label>
                <div>
                    <textarea id="ep-cert" name="form[client_certificate]" rows="3" autocomplete="off" spellcheck="false"
                        placeholder=if cert_set { "set (leave empty to keep it)" } else { "-----BEGIN CERTIFICATE-----, then its PRIVATE KEY" }></textarea>
                    <p class="muted" data-testid="cert-state">{if cert_set { "A client certificate is set: requests use mutual TLS." } else { "No client certificate." }}</p>
                    {cert_set.then(|| view! {
                        <label class="check"><input type="checkbox" name="form[remove_client_certificate]" value="on"/>"Remove the client certificate"</label>
                    })}
                    {error_for(error, "client_certificate")}
                </div>
            </fieldset>
            <fieldset class="grid-form">
                <legend>"Deactivation"</legend>
                <label for="ep-statuses">"Disable on status codes"</label>
                <div>
                    <input id="ep-statuses" name="form[disable_on_status]" placeholder="none" value=statuses.get_untracked()
                        prop:value=move || statuses.get() on:input=move |ev| statuses.set(event_target_value(&ev))/>
                    <div class="inline-form presets">
                        <button type="button" class="secondary small" on:click=move |_| statuses.set("410".into())>"410 Gone only"</button>
                        <button type="button" class="secondary small" on:click=move |_| statuses.set(STRICT_STATUSES.into())>"Strict preset"</button>
                        <button type="button" class="secondary small" on:click=move |_| statuses.set(String::new())>"Never on a status"</button>
                    </div>
                    {error_for(error, "disable_on_status")}
                </div>
                <label for="ep-phrase">"Unsubscribe phrase"</label>
                <div><input id="ep-phrase" name="form[unsubscribe_phrase]" placeholder="none" value=e.as_ref().map(|e| e.unsubscribe_phrase.clone().unwrap_or_default()).unwrap_or_else(|| "please unsubscribe me".into())/>{error_for(error, "unsubscribe_phrase")}</div>
                <label for="ep-unsub-action">"When a response contains it"</label>
                <select id="ep-unsub-action" name="form[unsubscribe_action]">
                    <option value="disable" selected=unsubscribe_action == "disable">"Disable the endpoint"</option>
                    <option value="delete" selected=unsubscribe_action == "delete">"Delete the endpoint"</option>
                </select>
                <label for="ep-days">"Disable after failing for (days)"</label>
                <div><input id="ep-days" name="form[disable_after_days]" type="number" min="1" max="365" placeholder="never" value=e.as_ref().map(|e| e.disable_after_days.map(|d| d.to_string()).unwrap_or_default()).unwrap_or_else(|| "5".into())/>{error_for(error, "disable_after_days")}</div>
            </fieldset>
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
    // Reloaded after a save that succeeded only: a refused one keeps the form as the user
    // left it, with the errors beside their fields.
    let saved = Memo::new(move |before: Option<&Option<String>>| {
        save.value()
            .with(|v| {
                v.as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .map(|e| e.updated_at.clone())
            })
            .or_else(|| before.cloned().flatten())
    });
    let endpoint = Resource::new(
        move || (shop.get(), id.get(), saved.get(), toggle.version().get()),
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
                        let delete_name = ep.url.clone();
                        let ep_json = serde_json::to_string_pretty(&ep).unwrap_or_default();
                        view! {
                            <h1 class="url">{ep.url.clone()}</h1>
                            {(!ep.description.is_empty()).then(|| view! { <p class="muted">{ep.description.clone()}</p> })}
                            <dl class="facts">
                                <dt>"Status"</dt><dd><EndpointStatus endpoint=ep.clone()/></dd>
                                <dt>"ID"</dt><dd><code>{ep.id.clone()}</code>" "<CopyButton text=ep.id.clone() label="endpoint id".to_string()/></dd>
                                <dt>"Retry policy"</dt><dd><code>{ep.retry.to_string()}</code></dd>
                                <dt>"Last attempt"</dt><dd>{match ep.last_attempt_at.clone() { Some(t) => view! { <When at=t/> }.into_any(), None => view! { "Never" }.into_any() }}</dd>
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
                                    <label class="check"><input type="checkbox" name="confirm" required/>{format!("Delete {delete_name} with its queued deliveries and logs")}</label>
                                    <button type="submit" class="danger" disabled=!can>"Delete endpoint"</button>
                                </ActionForm>
                                {move || match delete.value().get() {
                                    Some(Err(e)) => Some(view! { <ErrorNote message=error_text(&e)/> }),
                                    _ => None,
                                }}
                            </section>
                            <section class="panel">
                                <h2>"Settings"</h2>
                                {move || matches!(save.value().get(), Some(Ok(_))).then(|| view! {
                                    <p class="notice" role="status">"Endpoint saved."</p>
                                })}
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
