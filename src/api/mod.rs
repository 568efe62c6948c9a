//! The REST API (`/api/v1`): authenticated by shop API keys, JSON in and out, errors in one
//! shape that names the field. Every handler is a thin translation to the service layer.

mod handlers;

use crate::auth::api_key;
use crate::web::AppState;
use app::model::{Principal, ServiceError};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

/// A service error as an HTTP response: `{"error": {"code", "message", "field"?}}`.
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

/// An error as the API answers it: its status and `{"error": {"code", "message", "field"}}`.
pub fn error_response(e: ServiceError) -> Response {
    ApiError(e).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &e {
            ServiceError::Invalid { message, .. } | ServiceError::BadRequest { message, .. } => {
                message.clone()
            }
            other => other.to_string(),
        };
        let mut body = serde_json::json!({ "error": { "code": e.code(), "message": message } });
        if let Some(field) = e.field() {
            body["error"]["field"] = serde_json::Value::String(field.to_string());
        }
        (status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The shop an API key belongs to, and the principal it acts as.
pub struct ApiAuth {
    pub shop_id: String,
    pub principal: Principal,
}

/// How precisely an API key's last use is kept, in ms.
const KEY_USE_PRECISION_MS: i64 = 60_000;

/// The API key a request carries (`Authorization: Bearer hk_…`).
fn bearer_key(parts: &Parts) -> Result<&str, ApiError> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| k.starts_with(api_key::PREFIX))
        .ok_or(ApiError(ServiceError::Unauthorized))
}

/// Writes when a key was last used, at most once a minute, off the request's path: when a
/// key was last used is worth a write a minute, not a wait on the writer per call.
fn note_key_use(state: &AppState, key_id: &str, last_used_at: Option<i64>) -> Option<i64> {
    let now = crate::ids::now_ms();
    if last_used_at.is_some_and(|t| t > now - KEY_USE_PRECISION_MS) {
        return None;
    }
    let store = state.service.store.clone();
    let id = crate::ids::ApiKeyId::from(key_id);
    tokio::spawn(async move {
        if let Err(e) = store.touch_api_key(&id, now, KEY_USE_PRECISION_MS).await {
            tracing::warn!(error = %e, "could not note an API key's use");
        }
    });
    Some(now)
}

impl FromRequestParts<AppState> for ApiAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer_key(parts)?;
        let row = state
            .service
            .store
            .api_key_by_hash(&api_key::hash(key))
            .await
            .map_err(|e| ApiError(e.into()))?
            .ok_or(ApiError(ServiceError::Unauthorized))?;
        note_key_use(state, &row.id, row.last_used_at);
        let shop = state.service.existing_shop(&row.shop_id).await?;
        if !shop.webhooks_enabled {
            return Err(ApiError(ServiceError::Forbidden(
                crate::service::WEBHOOKS_OFF.into(),
            )));
        }
        Ok(ApiAuth {
            principal: crate::service::Service::api_principal(&row.id, &row.shop_id),
            shop_id: row.shop_id.into(),
        })
    }
}

/// The key of a publish (`POST /events`, `/events/batch`): taken from the service's cache,
/// read nothing on the hot path. Whether the key is still live and webhooks are enabled is
/// checked by the publish itself, against the shop's configuration at the version its
/// transaction sees.
pub struct PublishAuth(pub ApiAuth);

impl FromRequestParts<AppState> for PublishAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let hash = api_key::hash(bearer_key(parts)?);
        let key = state
            .service
            .publishing_key(&hash)
            .await?
            .ok_or(ApiError(ServiceError::Unauthorized))?;
        if let Some(at) = note_key_use(state, &key.id, key.last_used_at) {
            state.service.publishing_key_used(&hash, at);
        }
        Ok(PublishAuth(ApiAuth {
            principal: crate::service::Service::api_principal(&key.id, &key.shop_id),
            shop_id: key.shop_id.into(),
        }))
    }
}

/// A JSON body: too large → 413, malformed → 400, wrong shape → 422 naming the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError(ServiceError::TooLarge(
                    "The request body is too large.".into(),
                ))
            } else {
                ApiError(ServiceError::bad_request("body", e.body_text()))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, naming the field that does not fit.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let root = path == "." || path.is_empty();
        // serde reports a missing field at its parent; name the field itself.
        let text = inner.to_string();
        let missing = text
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(|f| {
                if root {
                    f.to_string()
                } else {
                    format!("{path}.{f}")
                }
            });
        let field = missing.unwrap_or_else(|| if root { "body".to_string() } else { path });
        if inner.is_syntax() || inner.is_eof() {
            // Not JSON at all: a malformed request (400), not a wrong value (422).
            return ApiError(ServiceError::bad_request(
                "body",
                format!("is not valid JSON ({inner})"),
            ));
        }
        ApiError(ServiceError::invalid(&field, inner.to_string()))
    })
}

async fn not_found() -> ApiError {
    ApiError(ServiceError::NotFound("No such API route.".into()))
}

pub fn router(state: AppState, max_body_bytes: usize) -> Router<AppState> {
    use handlers::*;
    Router::new()
        .route("/events", post(publish_one))
        .route("/events/batch", post(publish_batch))
        .route("/events/{id}", get(get_event))
        .route(
            "/event-types",
            get(list_event_types).post(create_event_type),
        )
        .route(
            "/event-types/{name}",
            get(get_event_type).put(put_event_type),
        )
        .route("/endpoints", get(list_endpoints).post(create_endpoint))
        .route(
            "/endpoints/{id}",
            get(get_endpoint)
                .patch(patch_endpoint)
                .delete(delete_endpoint),
        )
        .route("/endpoints/{id}/secret", get(get_secret))
        .route("/endpoints/{id}/secret/rotate", post(rotate_secret))
        .route("/endpoints/{id}/test", post(send_test))
        .route("/deliveries", get(list_deliveries))
        .route("/deliveries/retry", post(bulk_retry))
        .route("/deliveries/{id}", get(get_delivery))
        .route("/deliveries/{id}/retry", post(retry_delivery))
        .route("/deliveries/{id}/cancel", post(cancel_delivery))
        .route("/channels", get(list_channels))
        .route("/alerts", get(list_alerts))
        .route("/alerts/{id}/acknowledge", post(acknowledge_alert))
        .route("/activity", get(activity))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// `GET /metrics`: Prometheus text format. Anyone gets the installation-wide series; the
/// per-endpoint ones (they name every shop's endpoints) need `Authorization: Bearer` with
/// `HERALD_METRICS_TOKEN`. A wrong token is refused rather than quietly given less.
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let with_endpoints = match (presented, state.metrics_token.as_deref()) {
        (None, _) => false,
        (Some(p), Some(t)) if same_secret(p, t) => true,
        (Some(_), _) => {
            return ApiError(ServiceError::Unauthorized).into_response();
        }
    };
    crate::engine::refresh_queue_metrics(&state.service.engine).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.service.engine.metrics().encode(with_endpoints),
    )
        .into_response()
}

/// Compares two secrets by their SHA-256, so the time taken says nothing about the token.
fn same_secret(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}
