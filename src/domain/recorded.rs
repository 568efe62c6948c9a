//! An attempt's request and response headers as they are stored: what differs per attempt,
//! not the event again.
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
//! Attempts written since times were made relative keep the timestamp as seconds from the
//! attempt's own time (`0` or so instead of ten digits), and leave out an empty rest (a
//! packed row without the rest reads as one with `{}`, whenever it was written).
//!
//! A response's headers are packed the same way when they hold the three every HTTP server
//! sends (`date`, as seconds from the attempt's time, `content-length` and `content-type`):
//! about 70 of a typical response's 100 bytes are those names and the date. Packed headers
//! start with the date's offset, JSON with `{`, so each row says which it is.

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

/// Added to a packed form's stored value when its timestamp is seconds from the attempt's
/// time.
const RELATIVE: i64 = 8;

/// The headers a packed request keeps one per line, in this order.
const PACKED_HEADERS: [&str; 3] = ["user-agent", "webhook-timestamp", "webhook-signature"];

/// What the derived parts of a request are made of.
pub struct Origin<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub delivery_id: &'a str,
    pub number: i64,
    /// The attempt's time (ms): packed timestamps are stored as seconds from it.
    pub at: i64,
}

/// Seconds since the epoch of an attempt's time in ms, the base of relative times.
fn seconds_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(1000)
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
    /// The packed timestamp is relative to the attempt's time (packed forms only).
    pub relative: bool,
    pub headers: String,
    pub body: String,
}

impl Stored {
    /// A request kept exactly as sent.
    pub fn as_sent(headers: Map<String, Value>, body: &str) -> Stored {
        Stored {
            form: RequestForm::AsSent,
            packed: false,
            relative: false,
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
        let packed = form != RequestForm::AsSent && stored_form & PACKED != 0;
        Stored {
            packed,
            relative: packed && stored_form & RELATIVE != 0,
            form,
            headers,
            body,
        }
    }

    /// The value of `attempts.request_form`: 0 as sent; 1 and 2 the compact forms, their kept
    /// headers JSON; 5 and 6 the same, packed; 13 and 14 packed with a relative timestamp.
    /// Rows written before packing are 0 to 2, before relative times 0 to 6.
    pub fn stored_form(&self) -> i64 {
        self.form as i64
            + if self.packed { PACKED } else { 0 }
            + if self.relative { RELATIVE } else { 0 }
    }
}

/// The values of `names` in `headers`, when each is there and has no line break (HTTP header
/// values have none).
fn line_values(headers: &Map<String, Value>, names: &[&str]) -> Option<Vec<String>> {
    names
        .iter()
        .map(|name| headers.get(*name).and_then(Value::as_str))
        .map(|v| v.filter(|v| !v.contains('\n')).map(str::to_owned))
        .collect()
}

/// `lines` one per line, then the rest of the headers as JSON unless there is none.
fn lines_then_rest(lines: &[String], rest: Map<String, Value>) -> String {
    let mut text = lines.join("\n");
    if !rest.is_empty() {
        text.push('\n');
        text.push_str(&Value::Object(rest).to_string());
    }
    text
}

/// `text` as the decimal it spells, if it spells one exactly (no sign, zeros or spaces more).
fn exact_integer(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|n| n.to_string() == text)
}

/// The kept headers, packed when they hold the three signing headers; then, when the
/// timestamp is a plain number of seconds, relative to the attempt's time. Returns (packed,
/// relative, text).
fn pack(mut headers: Map<String, Value>, at: i64) -> (bool, bool, String) {
    let Some(mut values) = line_values(&headers, &PACKED_HEADERS) else {
        return (false, false, Value::Object(headers).to_string());
    };
    for name in PACKED_HEADERS {
        headers.remove(name);
    }
    let relative = match exact_integer(&values[1]) {
        Some(timestamp) => {
            values[1] = (timestamp - seconds_of(at)).to_string();
            true
        }
        None => false,
    };
    (true, relative, lines_then_rest(&values, headers))
}

/// The kept headers of a stored request, packed or JSON, for an attempt at `at` (ms);
/// unreadable ones read as none.
fn unpack(stored: &Stored, at: i64) -> Map<String, Value> {
    let json = |text: &str| match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if !stored.packed {
        return json(&stored.headers);
    }
    let mut lines = stored.headers.splitn(PACKED_HEADERS.len() + 1, '\n');
    let mut values: Vec<String> = lines
        .by_ref()
        .take(PACKED_HEADERS.len())
        .map(str::to_owned)
        .collect();
    let mut headers = json(lines.next().unwrap_or("{}"));
    if stored.relative {
        if let Some(offset) = values.get(1).and_then(|v| v.parse::<i64>().ok()) {
            values[1] = seconds_of(at).saturating_add(offset).to_string();
        }
    }
    for (name, value) in PACKED_HEADERS.iter().zip(values) {
        headers.insert(name.to_string(), Value::String(value));
    }
    headers
}

/// The response headers every HTTP server sends, packed one per line after the date.
const RESPONSE_LINES: [&str; 2] = ["content-length", "content-type"];

/// A response's headers as stored with its attempt at `at` (ms): packed when they hold a
/// `date` that reads back exactly and the usual two, otherwise JSON.
pub fn pack_response(mut headers: Map<String, Value>, at: i64) -> String {
    let date = headers
        .get("date")
        .and_then(Value::as_str)
        .and_then(date_seconds);
    let (Some(date), Some(values)) = (date, line_values(&headers, &RESPONSE_LINES)) else {
        return Value::Object(headers).to_string();
    };
    for name in ["date"].iter().chain(&RESPONSE_LINES) {
        headers.remove(*name);
    }
    let mut lines = vec![(date - seconds_of(at)).to_string()];
    lines.extend(values);
    lines_then_rest(&lines, headers)
}

/// A response's headers as JSON, from their stored form (JSON as it is; packed rebuilt).
pub fn expand_response(stored: String, at: i64) -> String {
    if stored.starts_with('{') {
        return stored;
    }
    let mut lines = stored.splitn(RESPONSE_LINES.len() + 2, '\n');
    let date = lines
        .next()
        .and_then(|offset| offset.parse::<i64>().ok())
        .and_then(|offset| http_date(seconds_of(at).saturating_add(offset)));
    let values: Vec<&str> = lines.by_ref().take(RESPONSE_LINES.len()).collect();
    let mut headers = match lines.next().map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(m))) => m,
        _ => Map::new(),
    };
    if let Some(date) = date {
        headers.insert("date".into(), Value::String(date));
    }
    for (name, value) in RESPONSE_LINES.iter().zip(values) {
        headers.insert(name.to_string(), Value::String(value.to_string()));
    }
    Value::Object(headers).to_string()
}

/// The seconds since the epoch an HTTP date names, if formatting them gives it back exactly.
fn date_seconds(text: &str) -> Option<i64> {
    let at = httpdate::parse_http_date(text).ok()?;
    let seconds = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    (http_date(seconds).as_deref() == Some(text)).then_some(seconds)
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) of seconds since the epoch.
fn http_date(seconds: i64) -> Option<String> {
    // Four-digit years only (and no overflow from a damaged row).
    if !(0..253_402_300_800).contains(&seconds) {
        return None;
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(seconds).ok()?);
    Some(httpdate::fmt_http_date(at))
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
    let (packed, relative, headers) = pack(headers, origin.at);
    Stored {
        form,
        packed,
        relative,
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
    let mut headers = unpack(&stored, origin.at);
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
            at: 1_700_000_001_250,
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
            stored.headers, "Herald/1\n-1\nv1,abc\n{\"x-extra\":\"••••••\"}",
            "the signing headers' values one per line (the timestamp a second before the \
             attempt's time), the rest as JSON"
        );
        assert_eq!(stored.stored_form(), 14);
        let stored = Stored::read(14, stored.headers, stored.body);
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

    #[test]
    fn without_other_kept_headers_the_rest_is_left_out_and_an_odd_timestamp_stays_absolute() {
        let mut headers = sent("application/json");
        headers.remove("x-extra");
        let stored = compact(headers.clone(), "{}", Some("{}"), &origin());
        assert_eq!(stored.headers, "Herald/1\n-1\nv1,abc");
        let (read, _) = expand(stored, &origin(), || "{}".into());
        assert_eq!(
            serde_json::from_str::<Value>(&read).unwrap(),
            Value::Object(headers.clone())
        );
        // A timestamp that is not a plain number is kept as it is (packed, not relative).
        headers.insert("webhook-timestamp".into(), json!("01700000000"));
        let stored = compact(headers.clone(), "{}", Some("{}"), &origin());
        assert_eq!((stored.stored_form(), stored.relative), (6, false));
        assert_eq!(stored.headers, "Herald/1\n01700000000\nv1,abc");
        let (read, _) = expand(stored, &origin(), || "{}".into());
        assert_eq!(
            serde_json::from_str::<Value>(&read).unwrap(),
            Value::Object(headers)
        );
    }

    #[test]
    fn a_packed_row_written_before_relative_times_reads_its_timestamp_as_stored() {
        let old = Stored::read(
            6,
            "Herald/1\n1700000000\nv1,abc\n{\"x-extra\":\"••••••\"}".into(),
            String::new(),
        );
        assert!(old.packed && !old.relative);
        let (read, _) = expand(old, &origin(), || "{}".into());
        assert_eq!(
            serde_json::from_str::<Value>(&read).unwrap(),
            Value::Object(sent("application/json"))
        );
    }

    fn response() -> Map<String, Value> {
        json!({"content-length": "2", "content-type": "text/plain; charset=utf-8",
               "date": "Tue, 14 Nov 2023 22:13:20 GMT"})
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn response_headers_keep_the_date_as_seconds_from_the_attempt_and_read_back_exactly() {
        let at = origin().at;
        let stored = pack_response(response(), at);
        assert_eq!(stored, "-1\n2\ntext/plain; charset=utf-8");
        let read: Value = serde_json::from_str(&expand_response(stored, at)).unwrap();
        assert_eq!(read, Value::Object(response()));

        let mut more = response();
        more.insert("x-request-id".into(), json!("r-1"));
        let stored = pack_response(more.clone(), at + 5_000);
        assert_eq!(
            stored,
            "-6\n2\ntext/plain; charset=utf-8\n{\"x-request-id\":\"r-1\"}"
        );
        let read: Value = serde_json::from_str(&expand_response(stored, at + 5_000)).unwrap();
        assert_eq!(read, Value::Object(more));
    }

    #[test]
    fn response_headers_without_a_date_that_reads_back_exactly_stay_json() {
        let at = origin().at;
        let mut no_date = response();
        no_date.remove("date");
        let mut obsolete_date = response();
        obsolete_date.insert("date".into(), json!("Tuesday, 14-Nov-23 22:13:20 GMT"));
        let mut no_type = response();
        no_type.remove("content-type");
        for headers in [no_date, obsolete_date, no_type] {
            let stored = pack_response(headers.clone(), at);
            assert!(stored.starts_with('{'), "{stored}");
            let read: Value = serde_json::from_str(&expand_response(stored, at)).unwrap();
            assert_eq!(read, Value::Object(headers));
        }
        // Rows written before packing are JSON, read as they are.
        let old = Value::Object(response()).to_string();
        assert_eq!(expand_response(old.clone(), at), old);
        // A damaged offset loses the date, not the row.
        let read: Value =
            serde_json::from_str(&expand_response("99999999999999\n2\ntext/plain".into(), at))
                .unwrap();
        assert_eq!(
            read,
            json!({"content-length": "2", "content-type": "text/plain"})
        );
    }
}
