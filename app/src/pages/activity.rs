//! Activity: a live feed of events and attempts as they happen (server-sent events from
//! `/shops/{shop}/activity/stream`), with pause/resume and a running count.

use crate::components::*;
use leptos::prelude::*;
use leptos_meta::Title;

/// One line of the feed, as the server sends it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct FeedItem {
    pub kind: String,
    pub at: i64,
    pub event_id: String,
    pub event_type: String,
    #[serde(default)]
    pub endpoint_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub status_code: Option<i64>,
    #[serde(default)]
    pub error_kind: Option<String>,
}

#[component]
pub fn ActivityPage() -> impl IntoView {
    let shop = shop_id();
    let names = endpoint_names(shop);
    let items = RwSignal::new(Vec::<FeedItem>::new());
    let count = RwSignal::new(0u64);
    let paused = RwSignal::new(false);
    let connected = RwSignal::new(false);

    #[cfg(not(feature = "hydrate"))]
    let _ = (shop, paused, count, items, connected, names);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        use wasm_bindgen::closure::Closure;
        use wasm_bindgen::JsCast;
        let url = format!("/shops/{}/activity/stream", shop.get());
        let Ok(source) = web_sys::EventSource::new(&url) else {
            return;
        };
        let on_message =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
                let Some(text) = ev.data().as_string() else {
                    return;
                };
                let Ok(item) = serde_json::from_str::<FeedItem>(&text) else {
                    return;
                };
                count.try_update(|c| *c += 1);
                if !paused.get_untracked() {
                    items.try_update(|list| {
                        list.insert(0, item);
                        list.truncate(200);
                    });
                }
            });
        for kind in ["event.published", "attempt"] {
            let _ =
                source.add_event_listener_with_callback(kind, on_message.as_ref().unchecked_ref());
        }
        on_message.forget();
        let on_open = Closure::<dyn FnMut()>::new(move || {
            connected.try_set(true);
        });
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        on_open.forget();
        let source = send_wrapper::SendWrapper::new(source);
        on_cleanup(move || source.close());
    });

    view! {
        <Title text="Activity · Herald"/>
        <h1>"Activity"</h1>
        <div class="inline-form">
            <span role="status" aria-live="polite">{move || format!("{} messages received", count.get())}</span>
            <span class="muted">{move || if connected.get() { "Live" } else { "Connecting… (the feed needs JavaScript)" }}</span>
            <button type="button" on:click=move |_| paused.update(|p| *p = !*p)>
                {move || if paused.get() { "Resume" } else { "Pause" }}
            </button>
        </div>
        <TableWrap label="Activity"><table class="stacking">
            <thead><tr>
                <th scope="col">"Time"</th><th scope="col">"What"</th><th scope="col">"Event type"</th>
                <th scope="col">"Event"</th><th scope="col">"Endpoint"</th><th scope="col">"Result"</th>
            </tr></thead>
            <tbody>
                <For each=move || items.get()
                     key=|it| format!("{}-{}-{}-{:?}-{:?}", it.at, it.event_id, it.kind, it.endpoint_id, it.status)
                     children=move |it| {
                        let result = it.status_code.map(|c| c.to_string()).or(it.error_kind.clone()).or(it.status.clone()).unwrap_or_default();
                        let endpoint = it.endpoint_id.clone().map(|id| move || {
                            let known = names.get().unwrap_or_default();
                            endpoint_ref(&shop.get_untracked(), &id, &known).into_any()
                        });
                        view! {
                            <tr>
                                <td data-label="Time">{when_ms(it.at)}</td>
                                <td data-label="What">{it.kind.clone()}</td>
                                <td data-label="Event type">{it.event_type.clone()}</td>
                                <td data-label="Event"><code class="id">{it.event_id.clone()}</code></td>
                                <td data-label="Endpoint">{endpoint}</td>
                                <td data-label="Result">{result}</td>
                            </tr>
                        }
                     }/>
            </tbody>
        </table></TableWrap>
        <Show when=move || items.get().is_empty()>
            <p class="empty">"Waiting for events. Publish one through the API or send a test event from an endpoint, and it appears here."</p>
        </Show>
    }
}
