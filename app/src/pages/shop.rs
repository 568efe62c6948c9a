//! A shop's dashboard: attempts and success rate over 24 hours and 7 days, queue depth and lag
//! over the last hour (server-rendered SVG, values on hover), the slowest and most failing
//! endpoints, failing and disabled endpoints, recent alerts; every figure links to the queue
//! filtered to it.

use crate::api::{error_text, get_dashboard, get_shop};
use crate::components::*;
use crate::dto::{Bucket, EndpointFigure};
use crate::model::datetime_local_utc;
use leptos::prelude::*;
use leptos_meta::Title;

/// The queue page of a shop, filtered by `query` (`status=failed&endpoint_id=…`).
fn queue_link(shop: &str, query: &str) -> String {
    if query.is_empty() {
        format!("/shops/{shop}/queue")
    } else {
        format!("/shops/{shop}/queue?{query}")
    }
}

/// "97.5 % of 1200", or "no attempts".
fn success_rate(ok: i64, total: i64) -> String {
    if total == 0 {
        "no attempts".to_string()
    } else {
        format!(
            "{:.1} % succeeded of {total}",
            ok as f64 * 100.0 / total as f64
        )
    }
}

/// A stacked bar chart of succeeded (bottom) and failed (top) attempts per bucket. Each bar
/// names its figures on hover and links to the queue of that time.
#[component]
fn BarChart(title: String, shop: String, buckets: Vec<Bucket>) -> impl IntoView {
    let max = buckets
        .iter()
        .map(|b| b.succeeded + b.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = buckets.len().max(1) as f64;
    let total: i64 = buckets.iter().map(|b| b.succeeded + b.failed).sum();
    let ok: i64 = buckets.iter().map(|b| b.succeeded).sum();
    let rate = success_rate(ok, total);
    let w = 100.0 / n;
    view! {
        <figure class="chart">
            <figcaption>{format!("{title}: {rate}")}</figcaption>
            <svg viewBox="0 0 100 40" preserveAspectRatio="none" role="group" aria-label=format!("{title}, one link per bar")>
                {buckets.iter().enumerate().map(|(i, b)| {
                    let x = i as f64 * w;
                    let hs = b.succeeded as f64 / max * 38.0;
                    let hf = b.failed as f64 / max * 38.0;
                    let figures = format!("{}: {} succeeded, {} failed, {}", b.label, b.succeeded, b.failed, success_rate(b.succeeded, b.succeeded + b.failed));
                    let href = queue_link(&shop, &format!("since={}&until={}", datetime_local_utc(b.from_ms), datetime_local_utc(b.to_ms)));
                    let label = figures.clone();
                    // In a <g>, so that rendered in the browser the link is SVG's <a>.
                    view! {
                        <g><a href=href aria-label=label>
                            <title>{figures}</title>
                            <rect class="hit" x=format!("{:.2}", x) y="0" width=format!("{:.2}", w) height="40"/>
                            <rect class="ok" x=format!("{:.2}", x + w * 0.1) y=format!("{:.2}", 40.0 - hs) width=format!("{:.2}", w * 0.8) height=format!("{:.2}", hs)/>
                            <rect class="failed" x=format!("{:.2}", x + w * 0.1) y=format!("{:.2}", 40.0 - hs - hf) width=format!("{:.2}", w * 0.8) height=format!("{:.2}", hf)/>
                        </a></g>
                    }
                }).collect_view()}
            </svg>
            <div class="chart-axis"><span>{buckets.first().map(|b| b.label.clone())}</span><span>{buckets.last().map(|b| b.label.clone())}</span></div>
        </figure>
    }
}

/// A line over the last hour, one point a minute, each naming its value on hover; the chart
/// links to the queue.
#[component]
fn MinuteChart(
    title: String,
    href: String,
    points: Vec<(String, f64)>,
    unit: &'static str,
) -> impl IntoView {
    let max = points.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1.0);
    let n = (points.len().max(2) - 1) as f64;
    let xy = |i: usize, v: f64| (i as f64 * 100.0 / n, 38.0 - v / max * 36.0);
    let line = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            let (x, y) = xy(i, *v);
            format!("{x:.2},{y:.2}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let now = points.last().map(|(_, v)| *v).unwrap_or(0.0);
    let peak = points.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let caption = format!(
        "{title}: now {}, at most {} in the last hour",
        fmt_value(now, unit),
        fmt_value(peak, unit)
    );
    view! {
        <figure class="chart">
            <figcaption><a href=href>{caption.clone()}</a></figcaption>
            <svg viewBox="0 0 100 40" preserveAspectRatio="none" role="img" aria-label=caption>
                <polyline class="line" points=line fill="none" vector-effect="non-scaling-stroke"/>
                {points.iter().enumerate().map(|(i, (label, v))| {
                    let (x, _) = xy(i, *v);
                    let w = 100.0 / n;
                    view! {
                        <rect class="hit" x=format!("{:.2}", (x - w / 2.0).max(0.0)) y="0" width=format!("{w:.2}") height="40">
                            <title>{format!("{label}: {}", fmt_value(*v, unit))}</title>
                        </rect>
                    }
                }).collect_view()}
            </svg>
            <div class="chart-axis"><span>{points.first().map(|(l, _)| l.clone())}</span><span>{points.last().map(|(l, _)| l.clone())}</span></div>
        </figure>
    }
}

/// A chart value with its unit: "120 deliveries", "3.5 s".
fn fmt_value(v: f64, unit: &str) -> String {
    if unit == "s" {
        format!("{v:.1} s")
    } else {
        format!("{v:.0} {unit}")
    }
}

/// Endpoints ranked by one figure, each linking to its deliveries in the queue.
#[component]
fn EndpointRanking(
    title: &'static str,
    empty: &'static str,
    shop: String,
    figures: Vec<EndpointFigure>,
    failures: bool,
) -> impl IntoView {
    view! {
        <section class="panel">
            <h2>{title}</h2>
            {if figures.is_empty() {
                view! { <p class="muted">{empty}</p> }.into_any()
            } else {
                view! {
                    <table class="stacking">
                        <thead><tr>
                            <th scope="col">"Endpoint"</th>
                            <th scope="col">{if failures { "Failed attempts" } else { "Mean time" }}</th>
                            <th scope="col">"Attempts (24 h)"</th>
                        </tr></thead>
                        <tbody>{figures.into_iter().map(|f| {
                            let query = if failures { format!("endpoint_id={}&status=retrying", f.id) } else { format!("endpoint_id={}", f.id) };
                            view! {
                                <tr>
                                    <td data-label="Endpoint"><a href=queue_link(&shop, &query) class="name">{f.name.clone()}</a></td>
                                    <td data-label=if failures { "Failed attempts" } else { "Mean time" }>{if failures {
                                        format!("{} ({:.0} %)", f.failed, f.failed as f64 * 100.0 / f.attempts.max(1) as f64)
                                    } else {
                                        format!("{} ms", f.mean_ms)
                                    }}</td>
                                    <td data-label="Attempts (24 h)">{f.attempts}</td>
                                </tr>
                            }
                        }).collect_view()}</tbody>
                    </table>
                }.into_any()
            }}
        </section>
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
                                    <a class="card" href=queue_link(&s.id, "")><span class="muted">"Queue depth"</span><strong>{depth}</strong></a>
                                    <a class="card" href=queue_link(&s.id, "status=pending")><span class="muted">"Queue lag"</span><strong>{format!("{:.1} s", d.lag_seconds)}</strong></a>
                                    <a class="card" href=queue_link(&s.id, "status=failed")><span class="muted">"Failed"</span><strong>{count("failed")}</strong></a>
                                    <a class="card" href=queue_link(&s.id, "status=held")><span class="muted">"Held"</span><strong>{count("held")}</strong></a>
                                </div>
                                <div class="charts">
                                    <BarChart title="Attempts, last 24 hours".to_string() shop=s.id.clone() buckets=d.last_24h.clone()/>
                                    <BarChart title="Attempts, last 7 days".to_string() shop=s.id.clone() buckets=d.last_7d.clone()/>
                                    <MinuteChart title="Queue depth".to_string() href=queue_link(&s.id, "") unit="deliveries"
                                        points=d.queue_last_hour.iter().map(|q| (q.label.clone(), q.depth as f64)).collect()/>
                                    <MinuteChart title="Queue lag".to_string() href=queue_link(&s.id, "status=pending") unit="s"
                                        points=d.queue_last_hour.iter().map(|q| (q.label.clone(), q.lag_seconds)).collect()/>
                                </div>
                                <div class="two-col">
                                    <EndpointRanking title="Slowest endpoints" empty="No attempts in the last day." shop=s.id.clone() figures=d.slowest_endpoints.clone() failures=false/>
                                    <EndpointRanking title="Most failing endpoints" empty="No failed attempts in the last day." shop=s.id.clone() figures=d.most_failing_endpoints.clone() failures=true/>
                                </div>
                                <section class="panel">
                                    <h2>"Failing and disabled endpoints"</h2>
                                    {if d.failing_endpoints.is_empty() && d.disabled_endpoints.is_empty() {
                                        view! { <p class="muted">"Every endpoint is healthy."</p> }.into_any()
                                    } else {
                                        view! { <ul>
                                            {d.failing_endpoints.iter().map(|e| view! { <li><a href=format!("/shops/{}/endpoints/{}", s.id, e.id)>{e.name().to_string()}</a>" — failing since "{e.failing_since.clone().map(|t| view! { <When at=t/> })}</li> }).collect_view()}
                                            {d.disabled_endpoints.iter().map(|e| view! { <li><a href=format!("/shops/{}/endpoints/{}", s.id, e.id)>{e.name().to_string()}</a>" — disabled: "{e.disabled_reason.clone()}</li> }).collect_view()}
                                        </ul> }.into_any()
                                    }}
                                </section>
                                <section class="panel">
                                    <h2>"Recent alerts"</h2>
                                    {if d.recent_alerts.is_empty() {
                                        view! { <p class="muted">"No alerts."</p> }.into_any()
                                    } else {
                                        view! { <ul>{d.recent_alerts.iter().map(|a| view! { <li><When at=a.created_at.clone()/>": "{a.message.clone()}</li> }).collect_view()}</ul> }.into_any()
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
