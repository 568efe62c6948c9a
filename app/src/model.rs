//! Types shared by the server and the browser: what the panel shows and the role rules that
//! decide what each person may do. The server enforces these rules; the UI only mirrors them.

use serde::{Deserialize, Serialize};

/// A delivery's state (the `deliveries.status` check), written as its lowercase name in the
/// database, the API and the panel. What each state allows is said here once: the queue
/// page's filter, the API's validation, the engine's outcomes and the store's statements all
/// ask this type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// Leased by a node: being sent, or read ahead to be sent.
    Delivering,
    /// Failed at least once, waiting for its next attempt.
    Retrying,
    Succeeded,
    /// Retries exhausted, or nothing a retry could change.
    Failed,
    Cancelled,
    /// Not sent while its endpoint is disabled or its shop's webhooks are off.
    Held,
}

impl DeliveryStatus {
    /// Every status, in the order the panel lists them.
    pub const ALL: [DeliveryStatus; 7] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivering,
        DeliveryStatus::Retrying,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
        DeliveryStatus::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivering => "delivering",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
            DeliveryStatus::Held => "held",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Waiting to be claimed when it falls due.
    pub fn is_waiting(self) -> bool {
        matches!(self, DeliveryStatus::Pending | DeliveryStatus::Retrying)
    }

    /// Done: nothing more happens to it unless someone retries it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Succeeded | DeliveryStatus::Failed | DeliveryStatus::Cancelled
        )
    }

    /// May be queued again now by hand: a final one, or one waiting to retry (sooner).
    pub fn can_retry(self) -> bool {
        self.is_final() || self == DeliveryStatus::Retrying
    }

    /// May be cancelled: not yet sent and not being sent.
    pub fn can_cancel(self) -> bool {
        self.is_waiting() || self == DeliveryStatus::Held
    }

    /// The statuses that satisfy `rule`, as an SQL list (`'pending', 'retrying'`): statements
    /// take their lists from the rules above instead of writing them out again.
    pub fn sql_list(rule: fn(DeliveryStatus) -> bool) -> String {
        Self::ALL
            .into_iter()
            .filter(|s| rule(*s))
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person's role within one shop. Operators are not a shop role: see [`Principal::operator`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShopRole {
    Owner,
    Viewer,
}

impl ShopRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ShopRole::Owner => "owner",
            ShopRole::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(ShopRole::Owner),
            "viewer" => Some(ShopRole::Viewer),
            _ => None,
        }
    }
}

/// One shop the signed-in person belongs to, with their role there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub shop_id: String,
    pub shop_name: String,
    pub role: ShopRole,
}

/// The signed-in person, resolved from the session on every request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub user_id: String,
    pub email: String,
    pub operator: bool,
    pub memberships: Vec<Membership>,
}

/// What a principal may do in a shop, from least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    None,
    Read,
    Manage,
}

impl Principal {
    /// Operators manage every shop; owners manage theirs; viewers read theirs; others nothing.
    pub fn access(&self, shop_id: &str) -> Access {
        if self.operator {
            return Access::Manage;
        }
        match self.role_in(shop_id) {
            Some(ShopRole::Owner) => Access::Manage,
            Some(ShopRole::Viewer) => Access::Read,
            None => Access::None,
        }
    }

    pub fn role_in(&self, shop_id: &str) -> Option<ShopRole> {
        self.memberships
            .iter()
            .find(|m| m.shop_id == shop_id)
            .map(|m| m.role)
    }

    pub fn can_read(&self, shop_id: &str) -> bool {
        self.access(shop_id) >= Access::Read
    }

    pub fn can_manage(&self, shop_id: &str) -> bool {
        self.access(shop_id) >= Access::Manage
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopSummary {
    pub id: String,
    pub name: String,
    pub webhooks_enabled: bool,
    pub require_https: bool,
    pub members: i64,
    pub created_at: i64,
    /// Events published in the last 24 hours.
    #[serde(default)]
    pub events_24h: i64,
}

/// One `herald serve` process sharing the database, for the operator's Nodes page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub id: String,
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// When it stopped cleanly (giving back what it held).
    pub stopped_at: Option<i64>,
    /// Heard from within the last 15 s and not stopped.
    pub alive: bool,
    /// Deliveries leased to it (in flight or read ahead).
    pub holding: i64,
    /// The node serving this page.
    pub this_node: bool,
}

/// The Nodes page: the store and every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodesOverview {
    /// "SQLite" or "PostgreSQL".
    pub store: String,
    pub now: i64,
    pub nodes: Vec<NodeSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: String,
    pub email: String,
    pub operator: bool,
    /// "Shop name (role)" for each membership, for display.
    pub shops: Vec<Membership>,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub role: ShopRole,
    pub created_at: i64,
}

/// Formats unix milliseconds as `2026-11-23 10:55:28 UTC` for tables.
pub fn format_ms(ms: i64) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// Unix milliseconds as a `datetime-local` value in UTC (`2026-12-06T04:00`), which the
/// queue's Since and Until filters read as UTC.
pub fn datetime_local_utc(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// RFC 3339 with milliseconds, UTC: how the API writes times (and `<time datetime>`).
pub fn iso_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Unix milliseconds of an RFC 3339 time, as the API writes them.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// How long ago `ms` was, seen at `now` (both unix milliseconds): "just now", "42 s ago",
/// "3 min ago", "5 h ago", "2 days ago", or "in 4 min" for what is still to come; past a month,
/// the date.
pub fn relative(ms: i64, now: i64) -> String {
    let seconds = (now - ms) / 1000;
    let (n, ahead) = (seconds.abs(), seconds < 0);
    let amount = match n {
        0..=9 if !ahead => return "just now".into(),
        0..=59 => format!("{n} s"),
        60..=3_599 => format!("{} min", n / 60),
        3_600..=86_399 => format!("{} h", n / 3_600),
        86_400..=2_591_999 => match n / 86_400 {
            1 => "1 day".to_string(),
            d => format!("{d} days"),
        },
        _ => return format_ms(ms).chars().take(10).collect(),
    };
    if ahead {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_statuses_read_back_from_their_names() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(DeliveryStatus::parse("Pending"), None);
    }

    #[test]
    fn what_each_delivery_status_allows() {
        use DeliveryStatus::*;
        let retryable: Vec<_> = DeliveryStatus::ALL
            .into_iter()
            .filter(|s| s.can_retry())
            .collect();
        assert_eq!(retryable, [Retrying, Succeeded, Failed, Cancelled]);
        let cancellable: Vec<_> = DeliveryStatus::ALL
            .into_iter()
            .filter(|s| s.can_cancel())
            .collect();
        assert_eq!(cancellable, [Pending, Retrying, Held]);
        assert!(!Delivering.can_retry() && !Delivering.can_cancel());
        assert_eq!(
            DeliveryStatus::sql_list(DeliveryStatus::is_waiting),
            "'pending', 'retrying'"
        );
    }

    #[test]
    fn times_read_relative_to_now() {
        let now = parse_iso_ms("2026-12-06T10:00:00Z").unwrap();
        let at = |s: &str| relative(parse_iso_ms(s).unwrap(), now);
        assert_eq!(at("2026-12-06T09:59:58.500Z"), "just now");
        assert_eq!(at("2026-12-06T09:59:18Z"), "42 s ago");
        assert_eq!(at("2026-12-06T09:57:00Z"), "3 min ago");
        assert_eq!(at("2026-12-06T05:00:00Z"), "5 h ago");
        assert_eq!(at("2026-12-05T09:00:00Z"), "1 day ago");
        assert_eq!(at("2026-12-03T10:00:00Z"), "3 days ago");
        assert_eq!(at("2026-12-06T10:04:00Z"), "in 4 min");
        assert_eq!(at("2026-10-01T10:00:00Z"), "2026-10-01");
        assert_eq!(parse_iso_ms("yesterday"), None);
        assert_eq!(datetime_local_utc(now), "2026-12-06T10:00");
        assert_eq!(parse_iso_ms(&iso_ms(now + 7)), Some(now + 7));
    }

    fn member_of(shop: &str, role: ShopRole) -> Principal {
        Principal {
            user_id: "usr_1".into(),
            email: "a@example.com".into(),
            operator: false,
            memberships: vec![Membership {
                shop_id: shop.into(),
                shop_name: "Shop".into(),
                role,
            }],
        }
    }

    #[test]
    fn an_owner_manages_their_shop_and_nothing_else() {
        let p = member_of("shp_a", ShopRole::Owner);
        assert!(p.can_manage("shp_a"));
        assert!(!p.can_read("shp_b"));
    }

    #[test]
    fn a_viewer_reads_but_never_manages() {
        let p = member_of("shp_a", ShopRole::Viewer);
        assert!(p.can_read("shp_a"));
        assert!(!p.can_manage("shp_a"));
        assert_eq!(p.access("shp_b"), Access::None);
    }

    #[test]
    fn an_operator_manages_every_shop() {
        let mut p = member_of("shp_a", ShopRole::Viewer);
        p.operator = true;
        assert!(p.can_manage("shp_a"));
        assert!(p.can_manage("shp_zzz"));
    }

    #[test]
    fn timestamps_format_in_utc() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00 UTC");
    }
}

/// Why the service refused or failed a request; shared by the panel and the REST API so a rule
/// answers the same way from both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceError {
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    /// Bad input: names the field and says what is wrong with it.
    Invalid {
        field: String,
        message: String,
    },
    /// A request that cannot be read at all (malformed JSON, a bad query or path
    /// parameter): 400, naming the body or the parameter.
    BadRequest {
        field: String,
        message: String,
    },
    Conflict(String),
    /// A body or a value over its size limit.
    TooLarge(String),
    /// More at once than the caller may have (open live streams): 429.
    TooMany(String),
    Internal,
}

impl ServiceError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ServiceError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        ServiceError::BadRequest {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The same complaint about the same field, as a 400: for query and path parameters.
    pub fn into_bad_request(self) -> Self {
        match self {
            ServiceError::Invalid { field, message } => ServiceError::BadRequest { field, message },
            other => other,
        }
    }

    pub fn forbidden() -> Self {
        ServiceError::Forbidden("You do not have permission to do this.".into())
    }

    /// The HTTP status that carries this error.
    pub fn status(&self) -> u16 {
        match self {
            ServiceError::Unauthorized => 401,
            ServiceError::Forbidden(_) => 403,
            ServiceError::NotFound(_) => 404,
            ServiceError::Invalid { .. } => 422,
            ServiceError::BadRequest { .. } => 400,
            ServiceError::Conflict(_) => 409,
            ServiceError::TooLarge(_) => 413,
            ServiceError::TooMany(_) => 429,
            ServiceError::Internal => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Unauthorized => "unauthorized",
            ServiceError::Forbidden(_) => "forbidden",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::Invalid { .. } => "invalid",
            ServiceError::BadRequest { .. } => "bad_request",
            ServiceError::Conflict(_) => "conflict",
            ServiceError::TooLarge(_) => "too_large",
            ServiceError::TooMany(_) => "too_many",
            ServiceError::Internal => "internal",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            ServiceError::Invalid { field, .. } | ServiceError::BadRequest { field, .. } => {
                Some(field)
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Unauthorized => write!(f, "Sign in first."),
            ServiceError::Forbidden(m)
            | ServiceError::NotFound(m)
            | ServiceError::Conflict(m)
            | ServiceError::TooLarge(m)
            | ServiceError::TooMany(m) => {
                write!(f, "{m}")
            }
            ServiceError::Invalid { field, message }
            | ServiceError::BadRequest { field, message } => write!(f, "{field}: {message}"),
            ServiceError::Internal => write!(f, "Something went wrong on the server."),
        }
    }
}

impl std::error::Error for ServiceError {}
