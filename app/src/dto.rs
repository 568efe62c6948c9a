//! The shapes of Herald's resources as the REST API and the panel exchange them. Secrets are
//! never part of these, except the signing secret returned once on creation or when asked for.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BasicAuthView {
    pub username: String,
    pub password_set: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub content_type: String,
    pub template: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub description: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub event_types: Vec<String>,
    pub channels: Vec<String>,
    pub basic_auth: Option<BasicAuthView>,
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub payload: Payload,
    pub retry: serde_json::Value,
    pub timeout_ms: i64,
    pub priority: String,
    pub unique_pending: bool,
    pub disable_on_status: Vec<i64>,
    pub unsubscribe_phrase: Option<String>,
    pub unsubscribe_action: String,
    pub disable_after_days: Option<i64>,
    pub client_certificate_set: bool,
    pub rate_limit_per_second: Option<i64>,
    pub failing_since: Option<String>,
    pub last_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Only on creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl EndpointView {
    /// What people call the endpoint: its description, or its URL when it has none.
    pub fn name(&self) -> &str {
        if self.description.is_empty() {
            &self.url
        } else {
            &self.description
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptView {
    pub number: i64,
    pub status_code: Option<i64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: i64,
    pub request: HttpMessage,
    pub response: Option<HttpMessage>,
    pub at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpMessage {
    pub headers: serde_json::Value,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub channels: Vec<String>,
    pub status: String,
    pub attempt_count: i64,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub priority: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub channels: Vec<String>,
    pub data: serde_json::Value,
    pub entity_key: Option<String>,
    pub created_at: String,
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventTypeView {
    pub name: String,
    pub family: String,
    pub description: String,
    pub sample: serde_json::Value,
    pub schema: Option<serde_json::Value>,
    /// builtin, custom, discovered or edited.
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    pub id: String,
    pub kind: String,
    pub endpoint_id: Option<String>,
    pub delivery_id: Option<String>,
    pub message: String,
    pub created_at: String,
    pub acknowledged: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelView {
    pub name: String,
    pub endpoints: Vec<String>,
    pub deliveries: i64,
}

/// A change to many deliveries being worked through in slices (a bulk retry, an endpoint's
/// queue held, resumed, cancelled or removed), or finished in the last minute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BulkChangeView {
    pub id: String,
    /// retry, resume, hold, cancel or purge.
    pub kind: String,
    /// The status of the deliveries it walks.
    pub status: String,
    pub endpoint_id: Option<String>,
    pub total: i64,
    pub done: i64,
    pub finished: bool,
    pub created_at: String,
}

/// A page of a list: `next_cursor` is null on the last page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// How far a filtered count goes: a count past it answers `COUNT_CAP + 1`, shown as "more
/// than" (counting a million matching rows per page view would take seconds).
pub const COUNT_CAP: i64 = 10_000;

/// The queue's filters as the panel sends them; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryQuery {
    pub status: Option<String>,
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    pub channel: Option<String>,
    /// RFC 3339 or unix milliseconds.
    pub since: Option<String>,
    pub until: Option<String>,
}

/// One attempt in the Logs list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptLogView {
    pub id: i64,
    pub delivery_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub number: i64,
    pub status_code: Option<i64>,
    pub error_kind: Option<String>,
    pub duration_ms: i64,
    pub at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShopSettings {
    pub failed_retention_hours: i64,
    pub log_retention_days: i64,
    pub require_https: bool,
    pub default_retry: serde_json::Value,
}

/// Deliveries finished in one time bucket of a dashboard chart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub label: String,
    pub succeeded: i64,
    pub failed: i64,
    /// Where the bucket starts and ends (unix ms): its link opens the queue between them.
    pub from_ms: i64,
    pub to_ms: i64,
}

/// One minute of a shop's queue on the dashboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueSample {
    /// The minute, `HH:MM` UTC.
    pub label: String,
    /// Deliveries waiting or in flight.
    pub depth: i64,
    /// How long the oldest due delivery had waited.
    pub lag_seconds: f64,
}

/// An endpoint's attempts over the dashboard's last day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointFigure {
    pub id: String,
    /// Its description, or its URL when it has none.
    pub name: String,
    pub attempts: i64,
    pub failed: i64,
    /// The mean time an attempt took.
    pub mean_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DashboardView {
    pub last_24h: Vec<Bucket>,
    pub last_7d: Vec<Bucket>,
    /// (status, count) for every delivery status.
    pub queue: Vec<(String, i64)>,
    pub lag_seconds: f64,
    pub failing_endpoints: Vec<EndpointView>,
    pub disabled_endpoints: Vec<EndpointView>,
    pub recent_alerts: Vec<AlertView>,
    /// Queue depth and lag, minute by minute over the last hour (oldest first).
    pub queue_last_hour: Vec<QueueSample>,
    /// The endpoints whose attempts took longest on average over the last day, slowest first.
    pub slowest_endpoints: Vec<EndpointFigure>,
    /// The endpoints with the most failed attempts over the last day, most first.
    pub most_failing_endpoints: Vec<EndpointFigure>,
    /// How many endpoints the shop has: with none, the dashboard shows the first steps.
    pub endpoint_count: i64,
    /// Where this installation is reached, for the `curl` line of the first steps.
    pub public_url: String,
}

/// A retry policy preset: (id, label, policy JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPresetView {
    pub id: String,
    pub label: String,
    pub policy: serde_json::Value,
}

/// What the template editor shows: the rendered body or why it does not render.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreviewView {
    pub body: String,
    pub error: Option<String>,
    pub merge_fields: Vec<String>,
}
