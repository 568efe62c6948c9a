//! Settings: retention, the https requirement, the default retry policy, and API keys.

use crate::api::*;
use crate::components::*;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn SettingsPage() -> impl IntoView {
    let shop = shop_id();
    let manage = can_manage(shop);
    let save = ServerAction::<SaveSettings>::new();
    let create_key = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    let presets = crate::components::load_retry_presets();
    let settings = Resource::new(
        move || (shop.get(), save.version().get()),
        |(s, _)| get_settings(s),
    );
    let keys = Resource::new(
        move || {
            (
                shop.get(),
                create_key.version().get(),
                revoke.version().get(),
            )
        },
        |(s, _, _)| list_api_keys(s),
    );
    view! {
        <Title text="Settings · Herald"/>
        <h1>"Settings"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let can = manage.await;
                match settings.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(s) => view! {
                        <section class="panel">
                            <h2>"Delivery"</h2>
                            <ActionForm action=save attr:class="grid-form">
                                <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                                <label for="st-failed">"Keep failed deliveries (hours)"</label>
                                <input id="st-failed" name="failed_retention_hours" type="number" min="1" value=s.failed_retention_hours.to_string()/>
                                <label for="st-logs">"Keep logs (days)"</label>
                                <input id="st-logs" name="log_retention_days" type="number" min="1" value=s.log_retention_days.to_string()/>
                                <span></span>
                                <label class="check"><input type="checkbox" name="require_https" value="on" checked=s.require_https/>"Require https endpoints"</label>
                                <RetryPolicyFields prefix="retry" id="st-retry" initial=crate::endpoint_form::RetryFields::of(&s.default_retry) error=last_error(save.value()) presets/>
                                <button type="submit" disabled=!can>"Save settings"</button>
                            </ActionForm>
                            {action_error(save.value())}
                        </section>
                    }.into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=|| ()>{move || Suspend::new(async move {
            if !manage.await {
                return view! { <p class="muted">"API keys and members are managed by the shop's owners."</p> }.into_any();
            }
            view! {
                <section class="panel" id="api-keys">
                    <h2>"API keys"</h2>
                    <ActionForm action=create_key attr:class="inline-form">
                        <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                        <label for="key-name">"Key name"</label>
                        <input id="key-name" name="name" required/>
                        <button type="submit">"Create API key"</button>
                    </ActionForm>
                    {move || match create_key.value().get() {
                        Some(Ok(k)) => Some(view! {
                            <div class="notice" role="status"><p>"Your new API key, shown only once:"</p><CopyBlock text=k label="API key".to_string()/></div>
                        }.into_any()),
                        Some(Err(e)) => Some(view! { <ErrorNote message=error_text(&e)/> }.into_any()),
                        None => None,
                    }}
                    {match keys.await {
                        Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="empty">"No API keys yet. Create one to publish events through the REST API."</p> }.into_any(),
                        Ok(list) => view! {
                            <table class="stacking">
                                <thead><tr><th scope="col">"Name"</th><th scope="col">"Key"</th><th scope="col">"Created"</th><th scope="col">"Actions"</th></tr></thead>
                                <tbody>{list.into_iter().map(|k| view! {
                                    <tr>
                                        <td data-label="Name">{k.name.clone()}</td>
                                        <td data-label="Key"><code>{format!("{}…", k.prefix)}</code></td>
                                        <td data-label="Created"><When at=k.created_at.clone()/></td>
                                        <td data-label="Actions">{if k.revoked { view! { <span class="muted">"Revoked"</span> }.into_any() } else { view! {
                                            <ActionForm action=revoke>
                                                <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                                                <input type="hidden" name="id" value=k.id.clone()/>
                                                <ConfirmSubmit action="Revoke" summary_label=format!("Revoke the API key {}", k.name)
                                                    question=format!("Revoke the API key “{}” ({}…)? Whatever publishes with it is refused from then on.", k.name, k.prefix)
                                                    confirm=format!("Revoke {}", k.name)/>
                                            </ActionForm>
                                        }.into_any() }}</td>
                                    </tr>
                                }).collect_view()}</tbody>
                            </table>
                        }.into_any(),
                    }}
                    <p><a href=format!("/shops/{}/members", shop.get_untracked())>"Members and their roles →"</a></p>
                </section>
            }.into_any()
        })}</Suspense>
    }
}
