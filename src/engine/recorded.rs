//! An attempt's request as it is stored: what differs per attempt, not the event again.
//!
//! Every attempt of a delivery repeats the same event id, event type, delivery id and (for
//! Herald's own envelope) content type and body; only the timestamp, the signature, the
//! attempt number and the endpoint's own headers change. Those repeated parts are left out
//! when the attempt is written and rebuilt from the delivery and its event when it is read,
//! so the panel and `GET /deliveries/{id}` still show each attempt's exact request while the
//! disk holds a few dozen bytes of it. A part is left out only when rebuilding it gives back
//! exactly what was sent; anything else is stored as it was.
//!
//! What is kept of a compact request's headers is packed when it holds the three headers
//! every attempt signs with: their values one per line (user agent, timestamp, signature),
//! then the other kept headers as JSON, so their names are not stored again with every
//! attempt (about 60 bytes of each). The stored form says which (see [`Stored::stored_form`]).

use serde_json::{Map, Value};

/// How a stored request is to be read (the `attempts.request_form` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestForm {
    /// Headers and body as sent (attempts written before compact forms, or anything that
    /// does not rebuild exactly).
    AsSent = 0,
    /// The derived headers (`Origin::derived`) are left out; the body is as sent.
    Compact = 1,
    /// As `Compact`, and the body is the event's default envelope with its JSON content type,
    /// both left out.
    CompactEnvelope = 2,
}

/// Added to a compact form's stored value when its kept headers are packed.
const PACKED: i64 = 4;

/// The headers a packed request keeps one per line, in this order.
const PACKED_HEADERS: [&str; 3] = ["user-agent", "webhook-timestamp", "webhook-signature"];

/// What the derived parts of a request are made of.
pub struct Origin<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub delivery_id: &'a str,
    pub number: i64,
}

impl Origin<'_> {
    /// The headers every attempt's request carries that the delivery names by itself.
    fn derived(&self) -> [(&'static str, String); 4] {
        [
            ("webhook-id", self.event_id.to_string()),
            ("x-herald-event-type", self.event_type.to_string()),
            ("x-herald-delivery", self.delivery_id.to_string()),
            ("x-herald-attempt", self.number.to_string()),
        ]
    }
}

/// A request as stored: its form, the headers kept (JSON, or packed) and the body kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub form: RequestForm,
    /// The kept headers are packed (compact forms only).
    pub packed: bool,
    pub headers: String,
    pub body: String,
}

impl Stored {
    /// A request kept exactly as sent.
    pub fn as_sent(headers: Map<String, Value>, body: &str) -> Stored {
        Stored {
            form: RequestForm::AsSent,
            packed: false,
            headers: Value::Object(headers).to_string(),
            body: body.to_string(),
        }
    }

    /// A request as read from `attempts.request_form`, `request_headers` and `request_body`.
    pub fn read(stored_form: i64, headers: String, body: String) -> Stored {
        let form = match stored_form % PACKED {
            1 => RequestForm::Compact,
            2 => RequestForm::CompactEnvelope,
            _ => RequestForm::AsSent,
        };
        Stored {
            packed: form != RequestForm::AsSent && stored_form >= PACKED,
            form,
            headers,
            body,
        }
    }

    /// The value of `attempts.request_form`: 0 as sent; 1 and 2 the compact forms, their kept
    /// headers JSON; 5 and 6 the same, packed. Rows written before packing are 0 to 2.
    pub fn stored_form(&self) -> i64 {
        self.form as i64 + if self.packed { PACKED } else { 0 }
    }
}

/// The kept headers, packed when they hold the three signing headers (values without line
/// breaks, as HTTP header values are); otherwise JSON.
fn pack(mut headers: Map<String, Value>) -> (bool, String) {
    let values: Vec<String> = PACKED_HEADERS
        .iter()
        .filter_map(|name| headers.get(*name).and_then(Value::as_str))
        .filter(|v| !v.contains('\n'))
        .map(str::to_owned)
        .collect();
    if values.len() < PACKED_HEADERS.len() {
        return (false, Value::Object(headers).to_string());
    }
    for name in PACKED_HEADERS {
        headers.remove(name);
    }
    (
        true,
        format!("{}\n{}", values.join("\n"), Value::Object(headers)),
    )
}

/// The kept headers of a stored request, packed or JSON; unreadable ones read as none.
fn unpack(stored: &Stored) -> Map<String, Value> {
    let json = |text: &str| match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if !stored.packed {
        return json(&stored.headers);
    }
    let mut lines = stored.headers.splitn(PACKED_HEADERS.len() + 1, '\n');
    let values: Vec<&str> = lines.by_ref().take(PACKED_HEADERS.len()).collect();
    let mut headers = json(lines.next().unwrap_or("{}"));
    for (name, value) in PACKED_HEADERS.iter().zip(values) {
        headers.insert(name.to_string(), Value::String(value.to_string()));
    }
    headers
}

/// The stored form of a request whose headers (already masked) and body were sent;
/// `envelope` is the event's default envelope when the body was built as one, so it is
/// left out only when it is exactly that.
pub fn compact(
    mut headers: Map<String, Value>,
    body: &str,
    envelope: Option<&str>,
    origin: &Origin,
) -> Stored {
    let derived = origin.derived();
    let rebuilds = derived
        .iter()
        .all(|(name, value)| headers.get(*name).and_then(Value::as_str) == Some(value));
    if !rebuilds {
        return Stored::as_sent(headers, body);
    }
    for (name, _) in &derived {
        headers.remove(*name);
    }
    let json = super::template::ContentType::Json.mime();
    let is_envelope =
        envelope == Some(body) && headers.get("content-type").and_then(Value::as_str) == Some(json);
    let (form, body) = if is_envelope {
        headers.remove("content-type");
        (RequestForm::CompactEnvelope, String::new())
    } else {
        (RequestForm::Compact, body.to_string())
    };
    let (packed, headers) = pack(headers);
    Stored {
        form,
        packed,
        headers,
        body,
    }
}

/// The request exactly as sent, from its stored form: `envelope` builds the event's default
/// envelope (called only for `CompactEnvelope`). Returns (headers as JSON, body).
pub fn expand(
    stored: Stored,
    origin: &Origin,
    envelope: impl FnOnce() -> String,
) -> (String, String) {
    if stored.form == RequestForm::AsSent {
        return (stored.headers, stored.body);
    }
    let mut headers = unpack(&stored);
    for (name, value) in origin.derived() {
        headers.insert(name.to_string(), Value::String(value));
    }
    let body = if stored.form == RequestForm::CompactEnvelope {
        headers.insert(
            "content-type".into(),
            Value::String(super::template::ContentType::Json.mime().into()),
        );
        envelope()
    } else {
        stored.body
    };
    (Value::Object(headers).to_string(), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origin() -> Origin<'static> {
        Origin {
            event_id: "evt_1",
            event_type: "order.created",
            delivery_id: "dlv_1",
            number: 2,
        }
    }

    fn sent(content_type: &str) -> Map<String, Value> {
        let v = json!({
            "content-type": content_type, "user-agent": "Herald/1", "webhook-id": "evt_1",
            "webhook-timestamp": "1700000000", "webhook-signature": "v1,abc",
            "x-herald-event-type": "order.created", "x-herald-delivery": "dlv_1",
            "x-herald-attempt": "2", "x-extra": "••••••",
        });
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_envelope_request_keeps_only_what_differs_per_attempt_and_reads_back_exactly() {
        let envelope = r#"{"id":"evt_1"}"#;
        let stored = compact(
            sent("application/json"),
            envelope,
            Some(envelope),
            &origin(),
        );
        assert_eq!(stored.form, RequestForm::CompactEnvelope);
        assert_eq!(stored.body, "");
        assert_eq!(
            stored.headers, "Herald/1\n1700000000\nv1,abc\n{\"x-extra\":\"••••••\"}",
            "the signing headers' values one per line, the rest as JSON"
        );
        assert_eq!(stored.stored_form(), 6);
        let stored = Stored::read(6, stored.headers, stored.body);
        let (headers, body) = expand(stored, &origin(), || envelope.to_string());
        assert_eq!(body, envelope);
        assert_eq!(
            serde_json::from_str::<Value>(&headers).unwrap(),
            Value::Object(sent("application/json"))
        );
    }

    #[test]
    fn a_templated_body_is_kept_and_its_content_type_too() {
        let stored = compact(sent("text/plain"), "Order 7", None, &origin());
        assert_eq!(stored.form, RequestForm::Compact);
        assert_eq!(stored.body, "Order 7");
        let (headers, body) = expand(stored, &origin(), || unreachable!());
        assert_eq!(body, "Order 7");
        assert_eq!(
            serde_json::from_str::<Value>(&headers).unwrap(),
            Value::Object(sent("text/plain"))
        );
    }

    #[test]
    fn kept_headers_without_all_three_signing_headers_stay_json_and_old_rows_still_read() {
        let mut headers = sent("text/plain");
        headers.remove("webhook-signature");
        let stored = compact(headers.clone(), "Order 7", None, &origin());
        assert_eq!((stored.stored_form(), stored.packed), (1, false));
        let kept: Value = serde_json::from_str(&stored.headers).unwrap();
        assert_eq!(
            kept,
            json!({"user-agent": "Herald/1", "webhook-timestamp": "1700000000",
                   "content-type": "text/plain", "x-extra": "••••••"})
        );
        let (read, _) = expand(
            Stored::read(1, stored.headers, stored.body),
            &origin(),
            || unreachable!(),
        );
        assert_eq!(
            serde_json::from_str::<Value>(&read).unwrap(),
            Value::Object(headers)
        );
        // A row written before packing: form 2, its kept headers JSON.
        let old = Stored::read(
            2,
            json!({"user-agent": "Herald/1", "webhook-timestamp": "1700000000",
                   "webhook-signature": "v1,abc", "x-extra": "••••••"})
            .to_string(),
            String::new(),
        );
        assert!(!old.packed);
        let (read, body) = expand(old, &origin(), || "{}".into());
        assert_eq!(body, "{}");
        assert_eq!(
            serde_json::from_str::<Value>(&read).unwrap(),
            Value::Object(sent("application/json"))
        );
        assert_eq!(
            Stored::read(4, "{}".into(), String::new()).form,
            RequestForm::AsSent
        );
    }

    #[test]
    fn a_request_that_would_not_rebuild_exactly_is_stored_as_sent() {
        let mut headers = sent("application/json");
        headers.insert("x-herald-attempt".into(), json!("3"));
        let stored = compact(headers.clone(), "{}", Some("{}"), &origin());
        assert_eq!(stored.form, RequestForm::AsSent);
        assert_eq!(stored.body, "{}");
        let (read, body) = expand(stored, &origin(), || unreachable!());
        assert_eq!(
            serde_json::from_str::<Value>(&read).unwrap(),
            Value::Object(headers)
        );
        assert_eq!(body, "{}");
        // An envelope that differs from the event's (it changed?) is kept as sent.
        let stored = compact(sent("application/json"), "{\"a\":1}", Some("{}"), &origin());
        assert_eq!(stored.form, RequestForm::Compact);
        assert_eq!(stored.body, "{\"a\":1}");
    }
}
