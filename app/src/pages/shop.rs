//! A shop's dashboard: deliveries and success rate over 24 hours and 7 days (server-rendered
//! SVG), queue depth and lag, failing and disabled endpoints, recent alerts.

use crate::api::{error_text, get_dashboard, get_shop};
use crate::components::*;
use crate::dto::Bucket;
use leptos::prelude::*;
use leptos_meta::Title;

/// A stacked bar chart of succeeded (bottom) and failed (top) attempts per bucket.
#[component]
fn BarChart(title: String, buckets: Vec<Bucket>) -> impl IntoView {
    let max = buckets
        .iter()
        .map(|b| b.succeeded + b.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = buckets.len().max(1) as f64;
    let total: i64 = buckets.iter().map(|b| b.succeeded + b.failed).sum();
    let ok: i64 = buckets.iter().map(|b| b.succeeded).sum();
    let rate = if total == 0 {
        "no attempts".to_string()
    } else {
        format!(
            "{:.1} % succeeded of {total}",
            ok as f64 * 100.0 / total as f64
        )
    };
    let w = 100.0 / n;
    view! {
        <figure class="chart">
            <figcaption>{format!("{title}: {rate}")}</figcaption>
            <svg viewBox="0 0 100 40" preserveAspectRatio="none" role="img" aria-label=format!("{title}: {rate}")>
                {buckets.iter().enumerate().map(|(i, b)| {
                    let x = i as f64 * w;
                    let hs = b.succeeded as f64 / max * 38.0;
                    let hf = b.failed as f64 / max * 38.0;
                    view! {
                        <rect class="ok" x=format!("{:.2}", x + w * 0.1) y=format!("{:.2}", 40.0 - hs) width=format!("{:.2}", w * 0.8) height=format!("{:.2}", hs)>
                            <title>{format!("{}: {} succeeded, {} failed", b.label, b.succeeded, b.failed)}</title>
                        </rect>
                        <rect class="failed" x=format!("{:.2}", x + w * 0.1) y=format!("{:.2}", 40.0 - hs - hf) width=format!("{:.2}", w * 0.8) height=format!("{:.2}", hf)/>
                    }
                }).collect_view()}
            </svg>
            <div class="chart-axis"><span>{buckets.first().map(|b| b.label.clone())}</span><span>{buckets.last().map(|b| b.label.clone())}</span></div>
        </figure>
    }
}

/// The `curl` line that publishes a first event to this installation.
fn publish_command(public_url: &str) -> String {
    format!(
        "curl -X POST {public_url}/api/v1/events \\\n  -H \"Authorization: Bearer $HERALD_API_KEY\" \\\n  \
         -H 'content-type: application/json' \\\n  \
         -d '{{\"type\": \"order.created\", \"data\": {{\"order_id\": 42}}}}'"
    )
}

/// A shop without endpoints: what to do next, in order.
#[component]
fn FirstSteps(shop_id: String, public_url: String, webhooks_enabled: bool) -> impl IntoView {
    let endpoints = format!("/shops/{shop_id}/endpoints");
    let keys = format!("/shops/{shop_id}/settings#api-keys");
    view! {
        <section class="panel first-steps" aria-labelledby="first-steps-title">
            <h2 id="first-steps-title">"Next steps"</h2>
            <ol>
                <li>
                    <a href=endpoints.clone()>"Add an endpoint"</a>
                    ": the URL that should receive this shop's events, and the event types it wants."
                </li>
                <li>
                    "Send a test event: open the endpoint on the "
                    <a href=endpoints>"Endpoints"</a>
                    " page and choose “Send test event”; the Logs show the request and the answer."
                </li>
                <li>
                    "Publish from a terminal with an API key ("
                    <a href=keys>"create an API key"</a>
                    "):"
                    <pre class="code"><code>{publish_command(&public_url)}</code></pre>
                </li>
            </ol>
            {(!webhooks_enabled).then(|| view! {
                <p class="muted">"Events are accepted once webhooks are enabled for this shop (operators: the Shops page)."</p>
            })}
        </section>
    }
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let shop_id = shop_id();
    let shop = Resource::new(move || shop_id.get(), get_shop);
    let dash = Resource::new(move || shop_id.get(), get_dashboard);
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let s = match shop.await {
                    Err(e) => return view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(s) => s,
                };
                let d = dash.await;
                view! {
                    <Title text=format!("{} · Dashboard · Herald", s.name)/>
                    <h1>{s.name.clone()}</h1>
                    {(!s.webhooks_enabled).then(|| view! {
                        <p class="error" role="alert">"Webhooks are disabled for this shop: an operator must enable them before events are accepted."</p>
                    })}
                    {match d {
                        Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                        Ok(d) => {
                            let count = |st: &str| d.queue.iter().find(|(s, _)| s == st).map(|(_, n)| *n).unwrap_or(0);
                            let depth = count("pending") + count("retrying") + count("delivering");
                            view! {
                                {(d.endpoint_count == 0).then(|| view! {
                                    <FirstSteps shop_id=s.id.clone() public_url=d.public_url.clone() webhooks_enabled=s.webhooks_enabled/>
                                })}
                                <div class="cards stats">
                                    <div class="card"><span class="muted">"Queue depth"</span><strong>{depth}</strong></div>
                                    <div class="card"><span class="muted">"Queue lag"</span><strong>{format!("{:.1} s", d.lag_seconds)}</strong></div>
                                    <div class="card"><span class="muted">"Failed"</span><strong>{count("failed")}</strong></div>
                                    <div class="card"><span class="muted">"Held"</span><strong>{count("held")}</strong></div>
                                </div>
                                <div class="charts">
                                    <BarChart title="Last 24 hours".to_string() buckets=d.last_24h.clone()/>
                                    <BarChart title="Last 7 days".to_string() buckets=d.last_7d.clone()/>
                                </div>
                                <section class="panel">
                                    <h2>"Failing endpoints"</h2>
                                    {if d.failing_endpoints.is_empty() && d.disabled_endpoints.is_empty() {
                                        view! { <p class="muted">"Every endpoint is healthy."</p> }.into_any()
                                    } else {
                                        view! { <ul>
                                            {d.failing_endpoints.iter().map(|e| view! { <li><a href=format!("/shops/{}/endpoints/{}", s.id, e.id)>{e.url.clone()}</a>" — failing since "{e.failing_since.clone()}</li> }).collect_view()}
                                            {d.disabled_endpoints.iter().map(|e| view! { <li><a href=format!("/shops/{}/endpoints/{}", s.id, e.id)>{e.url.clone()}</a>" — disabled: "{e.disabled_reason.clone()}</li> }).collect_view()}
                                        </ul> }.into_any()
                                    }}
                                </section>
                                <section class="panel">
                                    <h2>"Recent alerts"</h2>
                                    {if d.recent_alerts.is_empty() {
                                        view! { <p class="muted">"No alerts."</p> }.into_any()
                                    } else {
                                        view! { <ul>{d.recent_alerts.iter().map(|a| view! { <li>{a.created_at.clone()}": "{a.message.clone()}</li> }).collect_view()}</ul> }.into_any()
                                    }}
                                </section>
                            }.into_any()
                        }
                    }}
                }.into_any()
            })}
        </Suspense>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publish_command_names_this_installation() {
        let cmd = publish_command("https://herald.example.com");
        assert!(cmd.starts_with("curl -X POST https://herald.example.com/api/v1/events"));
        assert!(cmd.contains("Authorization: Bearer $HERALD_API_KEY"));
        assert!(cmd.contains(r#"-d '{"type": "order.created", "data": {"order_id": 42}}'"#));
    }
}
