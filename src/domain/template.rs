//! Payload bodies: the default envelope and endpoint templates with `{tag}` merge fields.
//!
//! Receivers differ in what they accept, so an endpoint may replace Herald's envelope with its
//! own body. Templates are plain text with `{tag}` merge fields; substituted values are escaped
//! for the endpoint's content type so that a template which is valid on its own stays valid
//! whatever the event data contains.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest template accepted, so a stored template cannot make every delivery expensive.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// The largest body a template may render to, for an installation whose events are at most
/// `max_event_bytes`: one event's worth of data plus one template's worth of text. A template
/// that carries the event once always fits; one that repeats it (`{data}{data}…`) does not.
pub fn body_limit(max_event_bytes: usize) -> usize {
    max_event_bytes.saturating_add(MAX_TEMPLATE_BYTES)
}

/// A template whose body would pass its limit: rendering stopped there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub limit: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "renders to more than {} bytes, the most a body may have (the event size limit \
             plus {MAX_TEMPLATE_BYTES} bytes)",
            self.limit
        )
    }
}

/// Refuses a template longer than [`MAX_TEMPLATE_BYTES`]; checked before anything renders.
pub fn check_length(template: &str) -> Result<(), String> {
    if template.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "is too long ({} bytes; the limit is {MAX_TEMPLATE_BYTES})",
            template.len()
        ));
    }
    Ok(())
}

/// Tags that Herald fills from the event itself rather than from its data, in the order the
/// panel lists them.
const BUILTIN_TAGS: [&str; 8] = [
    "event_id",
    "event_type",
    "family",
    "action",
    "timestamp",
    "timestamp_unix",
    "channel",
    "channels",
];

/// The body format of an endpoint, which decides how merge fields are escaped.
///
/// Stored and exchanged as the MIME type itself so the value can go straight into the
/// `Content-Type` header and reads naturally in the database and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ContentType {
    /// `application/json`; the default because the envelope is JSON.
    #[default]
    #[serde(rename = "application/json")]
    Json,
    /// `application/xml`.
    #[serde(rename = "application/xml")]
    Xml,
    /// `text/plain`, for receivers that take free text (chat hooks, SMS gateways).
    #[serde(rename = "text/plain")]
    Text,
}

impl ContentType {
    /// The MIME type to send in the `Content-Type` header.
    pub fn mime(self) -> &'static str {
        match self {
            ContentType::Json => "application/json",
            ContentType::Xml => "application/xml",
            ContentType::Text => "text/plain",
        }
    }

    /// Reads a content type from a form or the CLI, where people type either the MIME type or
    /// the short name. Parameters such as `; charset=utf-8` are ignored because Herald always
    /// sends UTF-8.
    pub fn parse(s: &str) -> Option<Self> {
        let essence = s.split(';').next().unwrap_or(s).trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "json" => Some(ContentType::Json),
            "application/xml" | "xml" => Some(ContentType::Xml),
            "text/plain" | "text" => Some(ContentType::Text),
            _ => None,
        }
    }
}

/// Everything a body can be built from, borrowed so rendering one event for many endpoints
/// copies nothing up front.
#[derive(Clone, Copy, Debug)]
pub struct EventContext<'a> {
    pub event_id: &'a str,
    /// Dotted type such as `order.created`.
    pub event_type: &'a str,
    /// Unix seconds of the event.
    pub timestamp: i64,
    pub channels: &'a [String],
    pub data: &'a Value,
}

impl EventContext<'_> {
    /// The part of the type before the first dot (`order` for `order.created`), so receivers
    /// can route on the kind of object without parsing the type themselves.
    pub fn family(&self) -> &str {
        self.event_type
            .split_once('.')
            .map_or(self.event_type, |(family, _)| family)
    }
}

/// The envelope's field order is part of Herald's wire format, so it is fixed by a struct
/// rather than left to the map ordering serde_json happens to be built with.
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    family: &'a str,
    action: &'a str,
    timestamp: String,
    channels: &'a [String],
    data: &'a Value,
}

/// The body sent to endpoints without a template: compact JSON with the fields
/// `id`, `type`, `family`, `action`, `timestamp`, `channels` and `data`, in that order.
pub fn default_envelope(ctx: &EventContext) -> String {
    let envelope = Envelope {
        id: ctx.event_id,
        kind: ctx.event_type,
        family: ctx.family(),
        action: ctx.event_type,
        timestamp: rfc3339(ctx.timestamp),
        channels: ctx.channels,
        data: ctx.data,
    };
    // Only string-keyed maps, strings and JSON values are serialized, none of which can fail.
    serde_json::to_string(&envelope).expect("the envelope always serializes")
}

/// An event's default envelope from its stored fields: sending builds it this way, and so
/// does reading back an attempt that stored it as the envelope.
pub fn envelope_of(
    id: &str,
    event_type: &str,
    created_at_ms: i64,
    channels: &[String],
    data: &str,
) -> String {
    with_event(
        id,
        event_type,
        created_at_ms,
        channels,
        data,
        default_envelope,
    )
}

/// Runs `f` on an event's context, its data parsed from the stored JSON.
pub fn with_event<T>(
    id: &str,
    event_type: &str,
    created_at_ms: i64,
    channels: &[String],
    data: &str,
    f: impl FnOnce(&EventContext) -> T,
) -> T {
    let data: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
    f(&EventContext {
        event_id: id,
        event_type,
        timestamp: created_at_ms / 1000,
        channels,
        data: &data,
    })
}

/// Formats unix seconds as an RFC 3339 UTC timestamp (`2021-02-25T15:02:10Z`), the form most
/// receivers parse without configuration. Done by hand to avoid a date crate for one format.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day), using Howard
/// Hinnant's `civil_from_days`, which is exact for every representable day.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// Renders a template for one event, replacing every `{tag}` merge field.
///
/// A tag is one or more `[A-Za-z0-9_]` segments joined by single dots; anything else between
/// braces (JSON objects, `{ x }`, `{}`) is copied unchanged, so templates need no escaping of
/// their own braces. Built-in tags (`event_id`, `event_type`, `family`, `action`,
/// `timestamp`, `timestamp_unix`, `channel`, `channels`) come from the event; any other tag
/// is a path into the data (`order.customer.email`, `items.0.sku`), optionally written with a
/// leading `data.`, which also reaches data keys that share a built-in's name.
///
/// Values are escaped for the content type. For JSON the template is scanned for string
/// literals: inside one, the value's text is string-escaped; outside, the value is inserted as
/// a JSON value (`null` when missing). A valid JSON template therefore always renders valid
/// JSON.
///
/// A template may name the whole data many times (`{data}{data}…`): rendering stops with
/// [`TooLarge`] once the body passes `max_bytes`, so no template can make one event cost
/// more memory than that ([`body_limit`]).
pub fn render(
    template: &str,
    content_type: ContentType,
    ctx: &EventContext,
    max_bytes: usize,
) -> Result<String, TooLarge> {
    let too_large = TooLarge { limit: max_bytes };
    let bytes = template.as_bytes();
    let mut out = String::with_capacity(template.len() + 64);
    let mut json = JsonScan::default();
    let mut literal_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // A brace right after a backslash inside a JSON string is the escaped character, not
        // the start of a tag; substituting there would change the meaning of the escape.
        let escaped = content_type == ContentType::Json && json.escaped;
        if bytes[i] == b'{' && !escaped {
            if let Some(len) = tag_len(&bytes[i + 1..]) {
                out.push_str(&template[literal_start..i]);
                let tag = &template[i + 1..i + 1 + len];
                push_value(
                    &mut out,
                    content_type,
                    json.in_string,
                    lookup(tag, ctx).as_deref(),
                );
                // Checked after every value: one value is at most an event's data (escaped),
                // so the body never grows far past the limit before rendering stops.
                if out.len() > max_bytes {
                    return Err(too_large);
                }
                i += len + 2;
                literal_start = i;
                continue;
            }
        }
        json.step(bytes[i]);
        i += 1;
    }
    out.push_str(&template[literal_start..]);
    if out.len() > max_bytes {
        return Err(too_large);
    }
    Ok(out)
}

/// Checks a template before it is saved, so a broken body is caught in the panel rather than
/// by the receiver: its length first (before anything is rendered), then what it renders to
/// against the sample, at most `max_bytes` of it. `Err` holds a sentence fragment describing
/// the problem, meant to follow "template ...".
pub fn validate(
    template: &str,
    content_type: ContentType,
    sample: &EventContext,
    max_bytes: usize,
) -> Result<(), String> {
    check_length(template)?;
    let rendered = render(template, content_type, sample, max_bytes)
        .map_err(|e| format!("{e} with the sample event"))?;
    match content_type {
        ContentType::Json => serde_json::from_str::<Value>(&rendered)
            .map(drop)
            .map_err(|err| format!("does not render to valid JSON: {err}")),
        ContentType::Xml => {
            let trimmed = template.trim();
            if trimmed.is_empty() {
                Err("is empty; an XML body needs a root element".to_owned())
            } else if !trimmed.starts_with('<') {
                Err("does not start with `<`, so it cannot be an XML document".to_owned())
            } else {
                Ok(())
            }
        }
        ContentType::Text => Ok(()),
    }
}

/// What the panel's preview shows for a template against a sample: the body (pretty when it
/// is JSON) and the problem, if any. The length is checked before anything renders, and the
/// render stops at `max_bytes`, so a preview costs at most that whatever is posted.
pub fn preview(
    template: &str,
    content_type: ContentType,
    sample: &EventContext,
    max_bytes: usize,
) -> (String, Option<String>) {
    if let Err(error) = check_length(template) {
        return (String::new(), Some(error));
    }
    let body = match render(template, content_type, sample, max_bytes) {
        Ok(body) => body,
        Err(e) => return (String::new(), Some(format!("{e} with the sample event"))),
    };
    let error = validate(template, content_type, sample, max_bytes).err();
    let body = match (content_type, &error) {
        (ContentType::Json, None) => serde_json::from_str::<Value>(&body)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or(body),
        _ => body,
    };
    (body, error)
}

/// The merge fields the panel offers for an event: the built-in tags, then every leaf path of
/// the sample data in dot notation. Arrays are shown by their first element (`items.0.sku`)
/// to keep the list short; keys that cannot be written as a tag are left out.
pub fn merge_fields(data: &Value) -> Vec<String> {
    let mut fields: Vec<String> = BUILTIN_TAGS.iter().map(|tag| (*tag).to_owned()).collect();
    if let Value::Object(map) = data {
        for (key, value) in map {
            if !is_segment(key) {
                continue;
            }
            // A built-in shadows a top-level key of the same name; the `data.` spelling still
            // reaches the key.
            let path = if BUILTIN_TAGS.contains(&key.as_str()) {
                format!("data.{key}")
            } else {
                key.clone()
            };
            collect_leaves(value, path, &mut fields);
        }
    }
    fields
}

fn collect_leaves(value: &Value, path: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                if is_segment(key) {
                    collect_leaves(child, format!("{path}.{key}"), out);
                }
            }
        }
        Value::Array(items) => match items.first() {
            Some(first) => collect_leaves(first, format!("{path}.0"), out),
            None => out.push(path),
        },
        _ => out.push(path),
    }
}

/// Whether `key` can appear as one segment of a tag.
fn is_segment(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Length of the tag starting at `rest` (just after a `{`), if `rest` holds a well-formed tag
/// closed by `}`. Stops at the first byte that cannot belong to a tag, which keeps the whole
/// render linear in the template length.
fn tag_len(rest: &[u8]) -> Option<usize> {
    let mut segment_empty = true;
    for (len, &b) in rest.iter().enumerate() {
        match b {
            b'}' => return (!segment_empty).then_some(len),
            b'.' if !segment_empty => segment_empty = true,
            b if b.is_ascii_alphanumeric() || b == b'_' => segment_empty = false,
            _ => return None,
        }
    }
    None
}

/// Tracks whether the scan is inside a JSON string literal. Works on bytes because the
/// characters that matter are ASCII and never occur inside multi-byte UTF-8 sequences.
#[derive(Default)]
struct JsonScan {
    in_string: bool,
    escaped: bool,
}

impl JsonScan {
    fn step(&mut self, b: u8) {
        if !self.in_string {
            self.in_string = b == b'"';
        } else if self.escaped {
            self.escaped = false;
        } else if b == b'\\' {
            self.escaped = true;
        } else if b == b'"' {
            self.in_string = false;
        }
    }
}

/// Resolves a tag: built-ins first, then the data path as written, then the path without a
/// leading `data.` (and `data` alone for the whole data).
fn lookup<'v>(tag: &str, ctx: &EventContext<'v>) -> Option<Cow<'v, Value>> {
    if let Some(value) = builtin(tag, ctx) {
        return Some(Cow::Owned(value));
    }
    if let Some(value) = data_path(ctx.data, tag) {
        return Some(Cow::Borrowed(value));
    }
    if tag == "data" {
        return Some(Cow::Borrowed(ctx.data));
    }
    tag.strip_prefix("data.")
        .and_then(|path| data_path(ctx.data, path))
        .map(Cow::Borrowed)
}

fn builtin(tag: &str, ctx: &EventContext) -> Option<Value> {
    let value = match tag {
        "event_id" => Value::from(ctx.event_id),
        "event_type" | "action" => Value::from(ctx.event_type),
        "family" => Value::from(ctx.family()),
        "timestamp" => Value::from(rfc3339(ctx.timestamp)),
        "timestamp_unix" => Value::from(ctx.timestamp),
        "channel" => Value::from(ctx.channels.first().map_or("", String::as_str)),
        "channels" => Value::from(ctx.channels.join(",")),
        _ => return None,
    };
    Some(value)
}

/// Follows a dotted path through objects, with numeric segments indexing arrays.
fn data_path<'v>(data: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(data, |node, segment| match node {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The value as plain text: strings without quotes, `null` and missing as nothing, and
/// objects or arrays as compact JSON.
fn value_text(value: Option<&Value>) -> Cow<'_, str> {
    match value {
        None | Some(Value::Null) => Cow::Borrowed(""),
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(other) => Cow::Owned(other.to_string()),
    }
}

fn push_value(out: &mut String, content_type: ContentType, in_string: bool, value: Option<&Value>) {
    match content_type {
        ContentType::Json if in_string => push_json_escaped(out, &value_text(value)),
        ContentType::Json => match value {
            Some(value) => {
                let _ = write!(out, "{value}");
            }
            None => out.push_str("null"),
        },
        ContentType::Xml => push_xml_escaped(out, &value_text(value)),
        ContentType::Text => out.push_str(&value_text(value)),
    }
}

/// Escapes text for the inside of a JSON string literal (without the quotes).
fn push_json_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// Escapes text for XML character data and attribute values alike.
fn push_xml_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Renders without a size limit (the tests' templates and data are small).
    fn render_all(template: &str, content_type: ContentType, ctx: &EventContext) -> String {
        render(template, content_type, ctx, usize::MAX).expect("no limit")
    }

    fn validate_all(
        template: &str,
        content_type: ContentType,
        ctx: &EventContext,
    ) -> Result<(), String> {
        validate(template, content_type, ctx, usize::MAX)
    }

    fn ctx<'a>(channels: &'a [String], data: &'a Value) -> EventContext<'a> {
        EventContext {
            event_id: "evt_1",
            event_type: "order.created",
            timestamp: 1_614_265_330,
            channels,
            data,
        }
    }

    fn channels() -> [String; 2] {
        ["billing".to_owned(), "ops".to_owned()]
    }

    fn order() -> Value {
        json!({
            "count": 3,
            "items": [{"qty": 2, "sku": "A-1"}, {"qty": 1, "sku": "B-2"}],
            "order": {"customer": {"email": "a@b.c"}, "total": 12.5},
            "ticket_ref": "T-42"
        })
    }

    #[test]
    fn content_type_round_trips_as_its_mime_string() {
        assert_eq!(
            serde_json::to_string(&ContentType::Xml).unwrap(),
            "\"application/xml\""
        );
        let parsed: ContentType = serde_json::from_str("\"text/plain\"").unwrap();
        assert_eq!(parsed, ContentType::Text);
        assert_eq!(ContentType::default().mime(), "application/json");
    }

    #[test]
    fn content_type_parse_accepts_mime_and_short_names_in_any_case() {
        assert_eq!(
            ContentType::parse("Application/JSON"),
            Some(ContentType::Json)
        );
        assert_eq!(ContentType::parse("xml"), Some(ContentType::Xml));
        assert_eq!(ContentType::parse("TEXT"), Some(ContentType::Text));
        assert_eq!(
            ContentType::parse("text/plain; charset=utf-8"),
            Some(ContentType::Text)
        );
        assert_eq!(ContentType::parse("text/html"), None);
    }

    #[test]
    fn family_is_the_part_before_the_first_dot() {
        let (chans, data) = (channels(), order());
        let mut c = ctx(&chans, &data);
        assert_eq!(c.family(), "order");
        c.event_type = "ping";
        assert_eq!(c.family(), "ping");
        c.event_type = "a.b.c";
        assert_eq!(c.family(), "a");
    }

    #[test]
    fn rfc3339_formats_epoch_and_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_614_265_330), "2021-02-25T15:02:10Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn default_envelope_has_the_exact_shape_and_field_order() {
        let chans = ["billing".to_owned()];
        let data = json!({"a": 1});
        let body = default_envelope(&ctx(&chans, &data));
        assert_eq!(
            body,
            concat!(
                r#"{"id":"evt_1","type":"order.created","family":"order","#,
                r#""action":"order.created","timestamp":"2021-02-25T15:02:10Z","#,
                r#""channels":["billing"],"data":{"a":1}}"#,
            )
        );
    }

    #[test]
    fn builtin_tags_come_from_the_event() {
        let (chans, data) = (channels(), order());
        let template = "{event_id}|{event_type}|{family}|{action}|{timestamp}|{timestamp_unix}|\
                        {channel}|{channels}";
        assert_eq!(
            render_all(template, ContentType::Text, &ctx(&chans, &data)),
            "evt_1|order.created|order|order.created|2021-02-25T15:02:10Z|1614265330|billing|\
             billing,ops"
        );
    }

    #[test]
    fn channel_is_empty_when_the_event_has_no_channels() {
        let data = order();
        assert_eq!(
            render_all(
                "[{channel}][{channels}]",
                ContentType::Text,
                &ctx(&[], &data)
            ),
            "[][]"
        );
    }

    #[test]
    fn nested_paths_and_array_indexes_reach_into_data() {
        let (chans, data) = (channels(), order());
        let c = ctx(&chans, &data);
        assert_eq!(render_all("{ticket_ref}", ContentType::Text, &c), "T-42");
        assert_eq!(
            render_all("{order.customer.email}", ContentType::Text, &c),
            "a@b.c"
        );
        assert_eq!(
            render_all("{items.1.sku}/{items.0.qty}", ContentType::Text, &c),
            "B-2/2"
        );
        assert_eq!(
            render_all("{data.order.total}", ContentType::Text, &c),
            "12.5"
        );
        assert_eq!(
            render_all("{items.9.sku}{order.total.x}", ContentType::Text, &c),
            ""
        );
    }

    #[test]
    fn data_prefix_reaches_keys_shadowed_by_builtins() {
        let chans = channels();
        let data = json!({"channel": "from-data"});
        let c = ctx(&chans, &data);
        assert_eq!(
            render_all("{channel} {data.channel}", ContentType::Text, &c),
            "billing from-data"
        );
    }

    #[test]
    fn json_strings_get_quotes_newlines_and_backslashes_escaped() {
        let chans = channels();
        let data = json!({"note": "He said \"hi\"\nC:\\path\u{1}"});
        let body = render_all(
            r#"{"note": "> {note}"}"#,
            ContentType::Json,
            &ctx(&chans, &data),
        );
        assert_eq!(body, r#"{"note": "> He said \"hi\"\nC:\\path\u0001"}"#);
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["note"], "> He said \"hi\"\nC:\\path\u{1}");
    }

    #[test]
    fn json_strings_get_scalars_as_text_and_objects_as_escaped_json() {
        let (chans, data) = (channels(), order());
        let template = r#"{"s": "{count}/{order.total}/{missing}/{order.customer}"}"#;
        let body = render_all(template, ContentType::Json, &ctx(&chans, &data));
        assert_eq!(body, r#"{"s": "3/12.5//{\"email\":\"a@b.c\"}"}"#);
    }

    #[test]
    fn unquoted_json_tags_become_json_values() {
        let (chans, data) = (channels(), order());
        let template =
            r#"{"n": {count}, "c": {order.customer}, "gone": {missing}, "id": {event_id}}"#;
        let body = render_all(template, ContentType::Json, &ctx(&chans, &data));
        assert_eq!(
            body,
            r#"{"n": 3, "c": {"email":"a@b.c"}, "gone": null, "id": "evt_1"}"#
        );
    }

    #[test]
    fn escaped_quotes_in_the_template_do_not_end_the_string() {
        let chans = channels();
        let data = json!({"q": "\""});
        let body = render_all(r#"{"a": "x\"{q}"}"#, ContentType::Json, &ctx(&chans, &data));
        assert_eq!(body, r#"{"a": "x\"\""}"#);
    }

    #[test]
    fn xml_values_are_entity_escaped() {
        let chans = channels();
        let data = json!({"name": "Tom & \"Jerry\" <'cat'>"});
        let body = render_all(
            "<n a='{name}'>{name}{missing}</n>",
            ContentType::Xml,
            &ctx(&chans, &data),
        );
        assert_eq!(
            body,
            "<n a='Tom &amp; &quot;Jerry&quot; &lt;&apos;cat&apos;&gt;'>\
             Tom &amp; &quot;Jerry&quot; &lt;&apos;cat&apos;&gt;</n>"
        );
    }

    #[test]
    fn text_values_are_inserted_raw() {
        let chans = channels();
        let data = json!({"msg": "a \"b\" & <c>\n"});
        let c = ctx(&chans, &data);
        assert_eq!(
            render_all("Note: {msg}{missing}", ContentType::Text, &c),
            "Note: a \"b\" & <c>\n"
        );
    }

    #[test]
    fn braces_that_are_not_tags_are_left_alone() {
        let (chans, data) = (channels(), order());
        let c = ctx(&chans, &data);
        let text = r#"{"a": 1} { x } {} {a..b} {.a} {a.} {a-b} {{ticket_ref}} {ticket_ref"#;
        assert_eq!(
            render_all(text, ContentType::Text, &c),
            r#"{"a": 1} { x } {} {a..b} {.a} {a.} {a-b} {T-42} {ticket_ref"#
        );
        let json_template = r#"{"outer": {"inner": {count}}, "ref": "{ticket_ref}"}"#;
        assert_eq!(
            render_all(json_template, ContentType::Json, &c),
            r#"{"outer": {"inner": 3}, "ref": "T-42"}"#
        );
    }

    #[test]
    fn non_ascii_text_survives_rendering() {
        let chans = channels();
        let data = json!({"city": "Zürich"});
        let body = render_all("«{city}» ✓", ContentType::Text, &ctx(&chans, &data));
        assert_eq!(body, "«Zürich» ✓");
    }

    #[test]
    fn validate_accepts_a_good_json_template() {
        let (chans, data) = (channels(), order());
        let template = r#"{"id": "{event_id}", "total": {order.total}, "who": {order.customer}}"#;
        assert_eq!(
            validate_all(template, ContentType::Json, &ctx(&chans, &data)),
            Ok(())
        );
    }

    #[test]
    fn validate_rejects_a_broken_json_template_and_says_why() {
        let (chans, data) = (channels(), order());
        let err =
            validate_all(r#"{"a": 1 "b": 2}"#, ContentType::Json, &ctx(&chans, &data)).unwrap_err();
        assert!(err.starts_with("does not render to valid JSON: "), "{err}");
        assert!(err.contains("line 1 column"), "{err}");
    }

    #[test]
    fn validate_checks_xml_roughly_and_accepts_any_text() {
        let (chans, data) = (channels(), order());
        let c = ctx(&chans, &data);
        assert_eq!(
            validate_all("  <a>{event_id}</a>", ContentType::Xml, &c),
            Ok(())
        );
        assert!(validate_all("   ", ContentType::Xml, &c).is_err());
        assert!(validate_all("a<b/>", ContentType::Xml, &c).is_err());
        assert_eq!(
            validate_all("anything {at all", ContentType::Text, &c),
            Ok(())
        );
    }

    #[test]
    fn validate_rejects_templates_over_64_kib() {
        let (chans, data) = (channels(), order());
        let c = ctx(&chans, &data);
        let long = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        let err = validate_all(&long, ContentType::Text, &c).unwrap_err();
        assert!(err.contains("too long"), "{err}");
        assert_eq!(validate_all(&long[1..], ContentType::Text, &c), Ok(()));
    }

    #[test]
    fn rendering_stops_once_the_body_passes_its_limit() {
        // 100 KiB of data named by every tag of a 64 KiB template would be a 1 GiB body.
        let chans = channels();
        let data = json!({"blob": "x".repeat(100 * 1024)});
        let c = ctx(&chans, &data);
        let template = "{data}".repeat(MAX_TEMPLATE_BYTES / 6);
        let limit = body_limit(1024 * 1024);
        for ct in [ContentType::Text, ContentType::Json, ContentType::Xml] {
            let err = render(&template, ct, &c, limit).unwrap_err();
            assert_eq!(err, TooLarge { limit });
            assert!(err.to_string().contains("renders to more than"), "{err}");
        }
        // The same event once fits, with the template's own text around it.
        let once = format!("{}{{data}}", " ".repeat(MAX_TEMPLATE_BYTES - 6));
        let body = render(&once, ContentType::Text, &c, limit).unwrap();
        assert!(body.len() > 100 * 1024 && body.len() <= limit);
        // Literal text counts too: a limit below the template alone is passed at the end.
        assert!(render("abcdef", ContentType::Text, &c, 5).is_err());
        assert_eq!(render("abcde", ContentType::Text, &c, 5).unwrap(), "abcde");
    }

    #[test]
    fn validate_checks_the_length_before_rendering_and_bounds_the_render() {
        let chans = channels();
        let data = json!({"blob": "x".repeat(10 * 1024)});
        let c = ctx(&chans, &data);
        // Too long: refused for its length, whatever it would render to.
        let long = "{data}".repeat(MAX_TEMPLATE_BYTES / 6 + 1);
        let err = validate(&long, ContentType::Text, &c, usize::MAX).unwrap_err();
        assert!(err.starts_with("is too long"), "{err}");
        // Short enough, but it renders past the limit against the sample.
        let many = "{data}".repeat(100);
        let err = validate(&many, ContentType::Text, &c, 64 * 1024).unwrap_err();
        assert!(err.contains("renders to more than 65536 bytes"), "{err}");
        assert_eq!(validate("{data}", ContentType::Text, &c, 64 * 1024), Ok(()));
    }

    #[test]
    fn the_preview_refuses_a_long_template_before_rendering_it() {
        let chans = channels();
        let data = json!({"blob": "x".repeat(64 * 1024)});
        let c = ctx(&chans, &data);
        // 2 MiB of `{data}` tags: rendered, 350,000 copies of the sample (22 GiB).
        let huge = "{data}".repeat(2 * 1024 * 1024 / 6);
        let started = std::time::Instant::now();
        let (body, error) = preview(&huge, ContentType::Text, &c, usize::MAX);
        assert!(body.is_empty());
        assert!(error.unwrap().starts_with("is too long"));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Within the length limit, the render stops at its limit.
        let many = "{data}".repeat(1000);
        let (body, error) = preview(&many, ContentType::Text, &c, 1024 * 1024);
        assert!(body.is_empty());
        assert!(error.unwrap().contains("renders to more than"));
        let (body, error) = preview(
            r#"{"a": {count}}"#,
            ContentType::Json,
            &ctx(&chans, &order()),
            1024,
        );
        assert_eq!((body.as_str(), error), ("{\n  \"a\": 3\n}", None));
    }

    #[test]
    fn merge_fields_lists_builtins_then_data_leaves() {
        let data = json!({
            "channel": "x",
            "empty": [],
            "items": [{"qty": 2, "sku": "A-1"}, {"other": true}],
            "order": {"customer": {"email": "a@b.c"}, "total": 12.5},
            "with space": 1
        });
        assert_eq!(
            merge_fields(&data),
            [
                "event_id",
                "event_type",
                "family",
                "action",
                "timestamp",
                "timestamp_unix",
                "channel",
                "channels",
                "data.channel",
                "empty",
                "items.0.qty",
                "items.0.sku",
                "order.customer.email",
                "order.total",
            ]
        );
    }

    #[test]
    fn every_listed_merge_field_resolves_against_its_sample() {
        let chans = channels();
        let data = json!({"channel": "x", "items": [{"sku": "A-1"}], "n": 0});
        let c = ctx(&chans, &data);
        for field in merge_fields(&data) {
            assert!(lookup(&field, &c).is_some(), "{field} does not resolve");
        }
    }
}
