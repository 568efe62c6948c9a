//! The endpoint form's fields and how they become the API's endpoint input.
//!
//! Every setting of an endpoint has a field, filled from the endpoint as it is, so a save sends
//! back exactly what the user left alone: custom retry policies are shown as their parameters,
//! status lists as typed, and write-only secrets (the basic-auth password, the client
//! certificate) are sent only when something was typed, so an empty field keeps them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

use crate::api::split_list;

/// The form as the browser sends it (`form[url]`, `form[types][order.created]`, …).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointFormData {
    pub shop_id: String,
    pub id: Option<String>,
    pub url: String,
    pub description: String,
    /// Present when the endpoint takes every event type; the checkboxes are then ignored.
    pub all_types: Option<String>,
    /// The catalog's checkboxes that are ticked: type name → "on".
    pub types: BTreeMap<String, String>,
    /// Type names the catalog does not list, separated by commas or spaces.
    pub other_types: String,
    /// The endpoint's types as they were, in their order (the first one picks the sample a
    /// template is checked against): types still chosen keep their places.
    pub previous_types: String,
    pub channels: String,
    /// `form[retry][policy]`, `form[retry][interval_s]`, …
    pub retry: RetryFields,
    pub content_type: String,
    pub template: String,
    pub basic_auth_username: String,
    /// Empty keeps the password that is set.
    pub basic_auth_password: String,
    pub headers: String,
    pub timeout_ms: String,
    pub priority: String,
    pub unique_pending: Option<String>,
    /// Status codes that disable the endpoint, separated by commas; empty for none.
    pub disable_on_status: String,
    pub unsubscribe_phrase: String,
    pub unsubscribe_action: String,
    /// Days of continuous failure before the endpoint is disabled; empty for never.
    pub disable_after_days: String,
    /// PEM certificate and key; empty keeps the one that is set.
    pub client_certificate: String,
    pub remove_client_certificate: Option<String>,
    pub rate_limit_per_second: String,
}

/// A retry policy as form fields: the policy's name and every parameter any policy has, so
/// switching between policies in the form keeps what was typed for each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryFields {
    /// standard, fixed, linear, exponential or schedule.
    pub policy: String,
    pub interval_s: String,
    pub step_s: String,
    pub initial_s: String,
    pub max_interval_s: String,
    pub max_retries: String,
    pub slow_lane: Option<String>,
    /// Seconds before each retry, separated by commas.
    pub delays_s: String,
}

/// The policies the form offers, as (name, label).
pub const RETRY_POLICIES: &[(&str, &str)] = &[
    (
        "standard",
        "Standard: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h",
    ),
    ("fixed", "Fixed interval"),
    ("linear", "Linear (growing by a step)"),
    ("exponential", "Exponential (doubling)"),
    ("schedule", "Explicit schedule"),
];

/// The strict deactivation preset, as the form writes it.
pub const STRICT_STATUSES: &str = "400, 401, 403, 404, 405, 406, 410, 411";

impl Default for RetryFields {
    /// What the parameters of the policies not chosen start as: the presets' values.
    fn default() -> Self {
        Self {
            policy: "standard".into(),
            interval_s: "300".into(),
            step_s: "60".into(),
            initial_s: "5".into(),
            max_interval_s: "480".into(),
            max_retries: "5".into(),
            slow_lane: None,
            delays_s: "5, 60, 300".into(),
        }
    }
}

impl RetryFields {
    /// The fields of a stored policy (`{"policy": "fixed", "interval_s": 300, …}`).
    pub fn of(policy: &Value) -> Self {
        let mut f = Self::default();
        let num = |k: &str| policy.get(k).and_then(Value::as_u64).map(|n| n.to_string());
        let name = policy
            .get("policy")
            .and_then(Value::as_str)
            .unwrap_or("standard");
        f.policy = name.to_string();
        let set = |slot: &mut String, key: &str| {
            if let Some(v) = num(key) {
                *slot = v;
            }
        };
        set(&mut f.interval_s, "interval_s");
        set(&mut f.step_s, "step_s");
        set(&mut f.initial_s, "initial_s");
        set(&mut f.max_interval_s, "max_interval_s");
        set(&mut f.max_retries, "max_retries");
        if policy.get("slow_lane").and_then(Value::as_bool) == Some(true) {
            f.slow_lane = Some("on".into());
        }
        if let Some(delays) = policy.get("delays_s").and_then(Value::as_array) {
            f.delays_s = delays
                .iter()
                .filter_map(Value::as_u64)
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ");
        }
        f
    }

    /// The policy these fields describe, as the API writes it; the error names the field.
    pub fn to_policy(&self) -> Result<Value, (String, String)> {
        let seconds = |field: &str, v: &str| -> Result<u64, (String, String)> {
            v.trim().parse::<u64>().map_err(|_| {
                (
                    format!("retry.{field}"),
                    "must be a whole number of seconds".to_string(),
                )
            })
        };
        let retries = || -> Result<u64, (String, String)> {
            self.max_retries.trim().parse::<u64>().map_err(|_| {
                (
                    "retry.max_retries".to_string(),
                    "must be a whole number of retries".to_string(),
                )
            })
        };
        Ok(match self.policy.as_str() {
            "standard" => json!({"policy": "standard"}),
            "fixed" => json!({
                "policy": "fixed",
                "interval_s": seconds("interval_s", &self.interval_s)?,
                "max_retries": retries()?,
            }),
            "linear" => json!({
                "policy": "linear",
                "step_s": seconds("step_s", &self.step_s)?,
                "max_retries": retries()?,
            }),
            "exponential" => json!({
                "policy": "exponential",
                "initial_s": seconds("initial_s", &self.initial_s)?,
                "max_interval_s": seconds("max_interval_s", &self.max_interval_s)?,
                "max_retries": retries()?,
                "slow_lane": self.slow_lane.is_some(),
            }),
            "schedule" => {
                let delays = split_list(&self.delays_s)
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        d.parse::<u64>().map_err(|_| {
                            (
                                "retry.delays_s".to_string(),
                                format!(
                                    "delay {}: \"{d}\" is not a whole number of seconds",
                                    i + 1
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                json!({"policy": "schedule", "delays_s": delays})
            }
            other => {
                return Err((
                    "retry.policy".into(),
                    format!("\"{other}\" is not a retry policy"),
                ))
            }
        })
    }
}

/// Status codes as the form shows them: "410" or "400, 401, …".
pub fn status_list(codes: &[i64]) -> String {
    codes
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl EndpointFormData {
    /// The event types the form names: empty for every type.
    pub fn event_types(&self) -> Result<Vec<String>, (String, String)> {
        if self.all_types.is_some() {
            return Ok(Vec::new());
        }
        let ticked: Vec<String> = self.types.keys().cloned().collect();
        let other = split_list(&self.other_types);
        let mut types: Vec<String> = split_list(&self.previous_types)
            .into_iter()
            .filter(|t| ticked.contains(t) || other.contains(t))
            .collect();
        for t in ticked.into_iter().chain(other) {
            if !types.contains(&t) {
                types.push(t);
            }
        }
        if types.is_empty() {
            return Err((
                "event_types".into(),
                "pick at least one event type, or All event types".into(),
            ));
        }
        Ok(types)
    }

    /// The endpoint input the API takes (`PATCH /endpoints/{id}` or `POST /endpoints`), or the
    /// field whose value cannot be read and why. What the service checks (URL, ranges, header
    /// names, the template) it checks again; this only reads the form's text.
    pub fn to_input(&self) -> Result<Value, (String, String)> {
        let invalid = |f: &str, m: &str| (f.to_string(), m.to_string());
        let headers: Value = if self.headers.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str::<Value>(&self.headers)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| {
                    invalid(
                        "headers",
                        "must be a JSON object of header names and values",
                    )
                })?
        };
        let whole = |field: &str, v: &str| -> Result<Option<i64>, (String, String)> {
            match v.trim() {
                "" => Ok(None),
                n => n
                    .parse()
                    .map(Some)
                    .map_err(|_| invalid(field, "must be a whole number")),
            }
        };
        let timeout = whole("timeout_ms", &self.timeout_ms)?
            .ok_or_else(|| invalid("timeout_ms", "is required"))?;
        let statuses = split_list(&self.disable_on_status)
            .iter()
            .map(|c| {
                c.parse::<i64>().map_err(|_| {
                    invalid(
                        "disable_on_status",
                        &format!("\"{c}\" is not an HTTP status code"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let username = self.basic_auth_username.trim();
        let basic_auth = match (username.is_empty(), self.basic_auth_password.is_empty()) {
            (true, _) => Value::Null,
            (false, true) => json!({"username": username}),
            (false, false) => json!({"username": username, "password": self.basic_auth_password}),
        };
        let template = Some(self.template.clone()).filter(|t| !t.trim().is_empty());
        let mut input = json!({
            "url": self.url.trim(),
            "description": self.description,
            "event_types": self.event_types()?,
            "channels": split_list(&self.channels),
            "basic_auth": basic_auth,
            "headers": headers,
            "payload": {"content_type": self.content_type, "template": template},
            "retry": self.retry.to_policy()?,
            "timeout_ms": timeout,
            "priority": self.priority,
            "unique_pending": self.unique_pending.is_some(),
            "disable_on_status": statuses,
            "unsubscribe_phrase": Some(self.unsubscribe_phrase.trim()).filter(|p| !p.is_empty()),
            "unsubscribe_action": self.unsubscribe_action,
            "disable_after_days": whole("disable_after_days", &self.disable_after_days)?,
            "rate_limit_per_second": whole("rate_limit_per_second", &self.rate_limit_per_second)?,
        });
        if self.remove_client_certificate.is_some() {
            input["client_certificate"] = Value::Null;
        } else if !self.client_certificate.trim().is_empty() {
            input["client_certificate"] = json!(self.client_certificate);
        }
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> EndpointFormData {
        EndpointFormData {
            url: "https://example.com/hook".into(),
            all_types: Some("on".into()),
            content_type: "application/json".into(),
            timeout_ms: "5000".into(),
            priority: "normal".into(),
            disable_on_status: "410".into(),
            unsubscribe_phrase: "please unsubscribe me".into(),
            unsubscribe_action: "disable".into(),
            disable_after_days: "5".into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_policy_reads_back_as_the_same_fields() {
        for policy in [
            json!({"policy": "standard"}),
            json!({"policy": "fixed", "interval_s": 7, "max_retries": 3}),
            json!({"policy": "linear", "step_s": 90, "max_retries": 4}),
            json!({"policy": "exponential", "initial_s": 2, "max_interval_s": 77, "max_retries": 9, "slow_lane": true}),
            json!({"policy": "exponential", "initial_s": 2, "max_interval_s": 77, "max_retries": 9, "slow_lane": false}),
            json!({"policy": "schedule", "delays_s": [1, 1, 30, 600]}),
            json!({"policy": "schedule", "delays_s": []}),
        ] {
            assert_eq!(RetryFields::of(&policy).to_policy(), Ok(policy.clone()));
        }
    }

    #[test]
    fn a_bad_retry_parameter_names_its_field() {
        let mut f = RetryFields::of(&json!({"policy": "fixed", "interval_s": 7, "max_retries": 3}));
        f.interval_s = "soon".into();
        assert_eq!(f.to_policy().unwrap_err().0, "retry.interval_s");
        f.policy = "schedule".into();
        f.delays_s = "5, x".into();
        let (field, message) = f.to_policy().unwrap_err();
        assert_eq!(field, "retry.delays_s");
        assert!(message.contains("delay 2"), "{message}");
    }

    #[test]
    fn the_form_sends_every_setting_as_shown() {
        let mut f = form();
        f.all_types = None;
        f.types.insert("order.created".into(), "on".into());
        f.other_types = "legacy.thing, order.created".into();
        f.disable_on_status = "400, 404 410".into();
        f.unsubscribe_action = "delete".into();
        f.disable_after_days = "".into();
        f.rate_limit_per_second = "12".into();
        let input = f.to_input().unwrap();
        assert_eq!(
            input["event_types"],
            json!(["order.created", "legacy.thing"])
        );
        assert_eq!(input["disable_on_status"], json!([400, 404, 410]));
        assert_eq!(input["unsubscribe_action"], "delete");
        assert_eq!(input["disable_after_days"], Value::Null);
        assert_eq!(input["rate_limit_per_second"], 12);
        assert_eq!(input["retry"], json!({"policy": "standard"}));
        // Write-only fields left empty are not sent, so what is set stays.
        assert!(input.get("client_certificate").is_none());
        assert_eq!(input["basic_auth"], Value::Null);
    }

    #[test]
    fn chosen_types_keep_their_order_and_new_ones_follow() {
        let mut f = form();
        f.all_types = None;
        for t in ["order.created", "ticket.updated", "shop.created"] {
            f.types.insert(t.into(), "on".into());
        }
        f.previous_types = "ticket.updated, legacy.thing, order.created, order.paid".into();
        f.other_types = "legacy.thing".into();
        assert_eq!(
            f.event_types().unwrap(),
            [
                "ticket.updated",
                "legacy.thing",
                "order.created",
                "shop.created"
            ]
        );
    }

    #[test]
    fn write_only_fields_are_kept_unless_typed_or_removed() {
        let mut f = form();
        f.basic_auth_username = "shop".into();
        assert_eq!(
            f.to_input().unwrap()["basic_auth"],
            json!({"username": "shop"})
        );
        f.basic_auth_password = "pw".into();
        assert_eq!(
            f.to_input().unwrap()["basic_auth"],
            json!({"username": "shop", "password": "pw"})
        );
        f.client_certificate = "-----BEGIN CERTIFICATE-----".into();
        assert_eq!(
            f.to_input().unwrap()["client_certificate"],
            "-----BEGIN CERTIFICATE-----"
        );
        f.remove_client_certificate = Some("on".into());
        assert_eq!(f.to_input().unwrap()["client_certificate"], Value::Null);
    }

    #[test]
    fn unreadable_fields_are_named() {
        let mut f = form();
        f.all_types = None;
        assert_eq!(f.to_input().unwrap_err().0, "event_types");
        let mut f = form();
        f.disable_on_status = "410, gone".into();
        assert_eq!(f.to_input().unwrap_err().0, "disable_on_status");
        let mut f = form();
        f.headers = "[1]".into();
        assert_eq!(f.to_input().unwrap_err().0, "headers");
        let mut f = form();
        f.disable_after_days = "five".into();
        assert_eq!(f.to_input().unwrap_err().0, "disable_after_days");
    }
}
