//! One attempt, start to finish: build the request (body, headers, signatures), send it, and
//! decide what the outcome means for the delivery and its endpoint.

use super::sender::{Outcome, Prepared};
use super::signing;
use crate::domain::recorded::{self, Origin, Stored};
use crate::domain::retry::{next_delay, parse_retry_after, RetryPolicy};
use crate::domain::template::{envelope_of, render, with_event, ContentType};
use crate::store::attempts::{AttemptRecord, EndpointEffect};
use crate::store::deliveries::Claimed;
use crate::store::endpoints::EndpointRow;
use crate::store::events::EventRow;
use app::model::DeliveryStatus;
use std::time::Duration;

/// Headers an endpoint's extra headers may never replace.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "authorization",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-herald-event-type",
    "x-herald-delivery",
    "x-herald-attempt",
    "transfer-encoding",
    "connection",
];

pub const USER_AGENT: &str = concat!("Herald/", env!("CARGO_PKG_VERSION"));

/// An endpoint's plaintext secrets, opened for one attempt (none: an attempt that sends
/// nothing).
#[derive(Default)]
pub struct Secrets {
    /// The current signing key, and the previous one while it still signs after a rotation.
    pub signing_keys: Vec<Vec<u8>>,
    pub basic_auth: Option<(String, String)>,
    /// The client certificate and key (PEM), when the endpoint has one.
    pub client_certificate: Option<String>,
    /// The endpoint's extra headers, values opened: (lowercase name, value).
    pub headers: Vec<(String, String)>,
}

/// A request body and how it was made.
pub struct Body {
    pub content_type: ContentType,
    pub text: String,
    /// The event's default envelope (no template): rebuilt from the event when read back.
    pub envelope: bool,
}

/// The error kind of an attempt whose template could not be rendered: nothing was sent, and
/// nothing would change if it were tried again.
pub const TEMPLATE_ERROR: &str = "template";

/// The request body for an event at an endpoint: its template rendered (at most `max_bytes`),
/// or the default envelope. `Err` says why the template could not make a body.
pub fn body_for(
    endpoint: &EndpointRow,
    event: &EventRow,
    max_bytes: usize,
) -> Result<Body, String> {
    Ok(
        match endpoint
            .template
            .as_deref()
            .filter(|t| !t.trim().is_empty())
        {
            Some(t) => {
                let ct = ContentType::parse(&endpoint.content_type).unwrap_or_default();
                let text = with_event(
                    &event.id,
                    &event.event_type,
                    event.created_at,
                    &event.channels,
                    &event.data,
                    |ctx| render(t, ct, ctx, max_bytes),
                )
                .map_err(|e| format!("the endpoint's template {e}"))?;
                Body {
                    content_type: ct,
                    text,
                    envelope: false,
                }
            }
            None => Body {
                content_type: ContentType::Json,
                text: envelope_of(
                    &event.id,
                    &event.event_type,
                    event.created_at,
                    &event.channels,
                    &event.data,
                ),
                envelope: true,
            },
        },
    )
}

/// The body of an attempt that sends nothing (its template failed): empty, as recorded.
pub fn no_body(endpoint: &EndpointRow) -> Body {
    Body {
        content_type: ContentType::parse(&endpoint.content_type).unwrap_or_default(),
        text: String::new(),
        envelope: false,
    }
}

/// The request of one attempt: `body` with Herald's headers, its signatures and the
/// endpoint's credentials.
pub fn prepare(
    endpoint: &EndpointRow,
    event: &EventRow,
    delivery: &Claimed,
    number: i64,
    secrets: &Secrets,
    body: Body,
    now_ms: i64,
) -> Prepared {
    use base64::Engine as _;
    let Body {
        content_type,
        text: body,
        envelope,
    } = body;
    let ts = now_ms / 1000;
    let mut headers = vec![
        ("content-type".to_string(), content_type.mime().to_string()),
        ("user-agent".to_string(), USER_AGENT.to_string()),
        ("webhook-id".to_string(), event.id.to_string()),
        ("webhook-timestamp".to_string(), ts.to_string()),
        (
            "webhook-signature".to_string(),
            signing::signature_header(&secrets.signing_keys, &event.id, ts, body.as_bytes()),
        ),
        ("x-herald-event-type".to_string(), event.event_type.clone()),
        ("x-herald-delivery".to_string(), delivery.id.to_string()),
        ("x-herald-attempt".to_string(), number.to_string()),
    ];
    if let Some((user, pass)) = &secrets.basic_auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        headers.push(("authorization".to_string(), format!("Basic {token}")));
    }
    let mut secret_headers = Vec::new();
    for (name, value) in &secrets.headers {
        if RESERVED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        headers.push((name.clone(), value.clone()));
        secret_headers.push(name.clone());
    }
    Prepared {
        url: endpoint.url.clone(),
        headers,
        secret_headers,
        body,
        envelope,
        timeout: Duration::from_millis(endpoint.timeout_ms.clamp(100, 60_000) as u64),
    }
}

/// Headers as stored with an attempt, by name: exactly what was sent, but the authorization
/// value and those of `secret` (the endpoint's extra headers) are masked.
fn masked_headers(
    headers: &[(String, String)],
    secret: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    headers
        .iter()
        .map(|(k, v)| {
            let v = if k.eq_ignore_ascii_case("authorization") {
                "Basic ••••••"
            } else if secret.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                "••••••"
            } else {
                v
            };
            (k.clone(), serde_json::Value::String(v.to_string()))
        })
        .collect()
}

/// An endpoint URL as alerts and logs show it: without its query string (which often carries
/// a token) and without a user or password.
pub fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_string(),
    }
}

/// The request as the attempt stores it, its derived parts named by the delivery as reading
/// it back will name them. An event with an entity key is stored as sent: a newer event with
/// the same key may take over its waiting delivery, and the delivery would then name another
/// event than the one this attempt carried.
fn recorded_request(
    delivery: &Claimed,
    event: &EventRow,
    number: i64,
    req: &Prepared,
    at: i64,
) -> Stored {
    let headers = masked_headers(&req.headers, &req.secret_headers);
    if event.entity_key.is_some() {
        return Stored::as_sent(headers, &req.body);
    }
    let origin = Origin {
        event_id: &delivery.event_id,
        event_type: &event.event_type,
        delivery_id: &delivery.id,
        number,
        at,
    };
    recorded::compact(
        headers,
        &req.body,
        req.envelope.then_some(req.body.as_str()),
        &origin,
    )
}

/// Sets the record's effect to disabling (or deleting) the endpoint, with its alert.
fn deactivate(rec: &mut AttemptRecord, endpoint: &EndpointRow, delete: bool, reason: String) {
    let (kind, done) = if delete {
        ("endpoint_deleted", "deleted")
    } else {
        ("endpoint_disabled", "disabled")
    };
    rec.alert = Some((
        kind.into(),
        format!(
            "Endpoint {} ({}) was {done}: {reason}.",
            endpoint.id,
            display_url(&endpoint.url)
        ),
    ));
    rec.effect = if delete {
        EndpointEffect::Delete(reason)
    } else {
        EndpointEffect::Disable(reason)
    };
}

/// Decides what an outcome does: the delivery's next state, the endpoint's, and alerts.
pub fn decide(
    endpoint: &EndpointRow,
    delivery: &Claimed,
    event: &EventRow,
    number: i64,
    req: &Prepared,
    out: &Outcome,
    now_ms: i64,
) -> AttemptRecord {
    let event_type = event.event_type.as_str();
    let request = recorded_request(delivery, event, number, req, now_ms);
    let mut rec = AttemptRecord {
        shop_id: delivery.shop_id.clone(),
        delivery_id: delivery.id.clone(),
        endpoint_id: endpoint.id.clone(),
        lease_owner: delivery.lease_owner.clone(),
        number,
        status_code: out.status.map(i64::from),
        error_kind: out.error_kind.map(str::to_string),
        error_message: out.error_message.clone(),
        duration_ms: out.duration.as_millis() as i64,
        request_form: request.stored_form(),
        request_headers: request.headers,
        request_body: request.body,
        response_headers: out
            .status
            .map(|_| recorded::pack_response(masked_headers(&out.headers, &[]), now_ms)),
        response_body: out.status.map(|_| out.body.clone()),
        at: now_ms,
        new_status: DeliveryStatus::Succeeded,
        next_attempt_at: None,
        effect: EndpointEffect::Succeeded,
        alert: None,
    };
    // The unsubscribe phrase counts in any answer, a 2xx included (seed 003): a success is
    // delivered (not sent again) and then the endpoint's unsubscribe action applies.
    let phrase = endpoint
        .unsubscribe_phrase
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .filter(|_| out.status.is_some())
        .filter(|p| out.body.to_lowercase().contains(&p.to_lowercase()));
    if out.is_success() && out.error_kind.is_none() {
        if let Some(p) = phrase {
            let reason = format!("the response asked to unsubscribe (\"{p}\")");
            deactivate(
                &mut rec,
                endpoint,
                endpoint.unsubscribe_action == "delete",
                reason,
            );
        }
        return rec;
    }
    rec.effect = EndpointEffect::Failed;
    // A body the template cannot make fails the same way every time: no retry.
    if out.error_kind == Some(TEMPLATE_ERROR) {
        rec.new_status = DeliveryStatus::Failed;
        return rec;
    }
    let what = match (out.status, out.error_kind) {
        (_, Some(kind)) => kind.to_string(),
        (Some(code), None) => format!("HTTP {code}"),
        (None, None) => "no response".to_string(),
    };

    // Deactivation rules: status codes, the unsubscribe phrase, days of continuous failure.
    let disable_codes: &[i64] = &endpoint.disable_on_status;
    let failing_days = match (endpoint.failing_since, endpoint.disable_after_days) {
        (Some(since), Some(days)) if days > 0 && now_ms - since >= days * 86_400_000 => Some(days),
        _ => None,
    };
    let deactivation = if let Some(code) = out
        .status
        .map(i64::from)
        .filter(|c| disable_codes.contains(c))
    {
        Some((false, format!("received HTTP {code}")))
    } else if let Some(p) = phrase {
        Some((
            endpoint.unsubscribe_action == "delete",
            format!("the response asked to unsubscribe (\"{p}\")"),
        ))
    } else {
        failing_days.map(|d| (false, format!("failing continuously for {d} days")))
    };
    if let Some((delete, reason)) = deactivation {
        rec.new_status = if delete {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Held
        };
        rec.next_attempt_at = (!delete).then_some(now_ms);
        deactivate(&mut rec, endpoint, delete, reason);
        return rec;
    }

    let policy: &RetryPolicy = &endpoint.retry;
    let retry_after = out
        .status
        .filter(|s| matches!(s, 429 | 502 | 503 | 504))
        .and_then(|_| out.header("retry-after"))
        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
    match next_delay(policy, number as u32, retry_after, &mut rand::thread_rng()) {
        Some(delay) => {
            rec.new_status = DeliveryStatus::Retrying;
            rec.next_attempt_at = Some(now_ms + delay.as_millis() as i64);
        }
        None => {
            rec.new_status = DeliveryStatus::Failed;
            rec.alert = Some((
                "retries_exhausted".into(),
                format!(
                    "Delivery {} of {event_type} to {} failed after {number} attempt{} (last: {what}).",
                    delivery.id,
                    display_url(&endpoint.url),
                    if number == 1 { "" } else { "s" }
                ),
            ));
        }
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_alerts_and_logs_lose_their_query_string() {
        assert_eq!(
            display_url("https://hooks.example.com/in?token=s3cret#x"),
            "https://hooks.example.com/in"
        );
        assert_eq!(
            display_url("https://u:p@example.com/a"),
            "https://example.com/a"
        );
    }

    #[test]
    fn recorded_headers_mask_authorization_and_the_extra_headers() {
        let sent = vec![
            ("authorization".to_string(), "Basic dTpw".to_string()),
            ("x-api-token".to_string(), "s3cret".to_string()),
            ("x-herald-attempt".to_string(), "1".to_string()),
        ];
        let recorded = masked_headers(&sent, &["x-api-token".to_string()]);
        assert_eq!(recorded["authorization"], "Basic ••••••");
        assert_eq!(recorded["x-api-token"], "••••••");
        assert_eq!(recorded["x-herald-attempt"], "1");
    }
}
