//! The Event Catalog: every event type by family, searchable, with its description, its sample
//! payload (copyable) and the endpoints that receive it; owners add and edit types.

use crate::api::*;
use crate::components::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn CatalogPage() -> impl IntoView {
    let shop = shop_id();
    let manage = can_manage(shop);
    let q = use_query_map();
    let search = Memo::new(move |_| q.with(|q| q.get("q").unwrap_or_default().to_lowercase()));
    let save = ServerAction::<SaveEventType>::new();
    let types = Resource::new(
        move || (shop.get(), save.version().get()),
        |(s, _)| list_event_types(s),
    );
    let endpoints = Resource::new(move || shop.get(), list_endpoints);
    view! {
        <Title text="Event Catalog · Herald"/>
        <h1>"Event Catalog"</h1>
        <form method="get" class="inline-form">
            <label for="catalog-search">"Search"</label>
            <input id="catalog-search" name="q" type="search" value=move || search.get()/>
            <button type="submit">"Search"</button>
        </form>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let eps = endpoints.await.unwrap_or_default();
                let needle = search.get();
                match types.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(list) => {
                        let list: Vec<_> = list.into_iter().filter(|t| needle.is_empty() || t.name.contains(&needle) || t.description.to_lowercase().contains(&needle)).collect();
                        let mut families: Vec<String> = list.iter().map(|t| t.family.clone()).collect();
                        families.dedup();
                        if list.is_empty() {
                            return view! { <p class="empty">"No event type matches your search."</p> }.into_any();
                        }
                        families.into_iter().map(|f| {
                            let in_family: Vec<_> = list.iter().filter(|t| t.family == f).cloned().collect();
                            let eps = eps.clone();
                            view! {
                                <section class="family">
                                    <h2>{f.clone()}</h2>
                                    {in_family.into_iter().map(|t| {
                                        let receivers: Vec<String> = eps.iter()
                                            .filter(|e| e.event_types.is_empty() || e.event_types.contains(&t.name))
                                            .map(|e| e.url.clone()).collect();
                                        view! {
                                            <details class="event-type">
                                                <summary><code>{t.name.clone()}</code> " — " {t.description.clone()}</summary>
                                                <p class="muted">{format!("Source: {}", t.source)}</p>
                                                <CopyBlock text=serde_json::to_string_pretty(&t.sample).unwrap_or_default() label=format!("{} sample", t.name)/>
                                                {t.schema.clone().map(|s| view! { <h4>"Schema"</h4><pre>{serde_json::to_string_pretty(&s).unwrap_or_default()}</pre> })}
                                                <p>{if receivers.is_empty() { "No endpoint receives it yet.".to_string() } else { format!("Received by: {}", receivers.join(", ")) }}</p>
                                            </details>
                                        }
                                    }).collect_view()}
                                </section>
                            }
                        }).collect_view().into_any()
                    }
                }
            })}
        </Suspense>
        <Suspense fallback=|| ()>{move || Suspend::new(async move {
            manage.await.then(|| view! {
                <section class="panel">
                    <h2>"Add or edit an event type"</h2>
                    <ActionForm action=save attr:class="grid-form">
                        <input type="hidden" name="shop_id" value=shop.get_untracked()/>
                        <label for="et-name">"Name"</label>
                        <input id="et-name" name="name" required placeholder="invoice.overdue"/>
                        <label for="et-description">"Description"</label>
                        <input id="et-description" name="description"/>
                        <label for="et-sample">"Sample payload (JSON)"</label>
                        <textarea id="et-sample" name="sample" rows="4">"{}"</textarea>
                        <label for="et-create">"Action"</label>
                        <select id="et-create" name="create">
                            <option value="true">"Add a new type"</option>
                            <option value="false">"Edit an existing type"</option>
                        </select>
                        <button type="submit">"Save event type"</button>
                    </ActionForm>
                    {action_error(save.value())}
                </section>
            })
        })}</Suspense>
    }
}
