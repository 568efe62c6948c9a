//! REST handlers: parse, call the service, answer.

use super::{parse_json, ApiAuth, ApiError, ApiJson, ApiResult, PublishAuth};
use crate::service::endpoints::EndpointInput;
use crate::service::events::{EventInput, EventTypeFields};
use crate::store::deliveries::DeliveryFilter;
use crate::store::events::Published;
use crate::web::AppState;
use app::model::ServiceError;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

/// A list that fits on one page, in the API's list shape.
fn whole_list<T: serde::Serialize>(items: Vec<T>) -> Response {
    Json(app::dto::Page {
        items,
        next_cursor: None,
    })
    .into_response()
}

fn published_json(p: &Published) -> serde_json::Value {
    json!({ "id": p.id, "deliveries": p.deliveries })
}

pub async fn publish_one(
    State(s): State<AppState>,
    PublishAuth(auth): PublishAuth,
    ApiJson(ev): ApiJson<EventInput>,
) -> ApiResult<Response> {
    let out = s
        .service
        .publish(&auth.principal, &auth.shop_id, vec![ev], false)
        .await?;
    let p = out
        .into_iter()
        .next()
        .ok_or(ApiError(ServiceError::Internal))?;
    let status = if p.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(published_json(&p))).into_response())
}

pub async fn publish_batch(
    State(s): State<AppState>,
    PublishAuth(auth): PublishAuth,
    ApiJson(evs): ApiJson<Vec<EventInput>>,
) -> ApiResult<Response> {
    if evs.len() > 1000 {
        return Err(ServiceError::invalid("body", "a batch holds at most 1000 events").into());
    }
    let out = s
        .service
        .publish(&auth.principal, &auth.shop_id, evs, true)
        .await?;
    let items: Vec<_> = out.iter().map(published_json).collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "items": items }))).into_response())
}

pub async fn get_event(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(
        s.service
            .get_event(&auth.principal, &auth.shop_id, &id)
            .await?,
    )
    .into_response())
}

pub async fn list_event_types(State(s): State<AppState>, auth: ApiAuth) -> ApiResult<Response> {
    let items = s
        .service
        .event_types(&auth.principal, &auth.shop_id)
        .await?;
    Ok(whole_list(items))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTypeInput {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    sample: Option<serde_json::Value>,
    #[serde(default)]
    schema: Option<serde_json::Value>,
}

pub async fn create_event_type(
    State(s): State<AppState>,
    auth: ApiAuth,
    ApiJson(input): ApiJson<EventTypeInput>,
) -> ApiResult<Response> {
    let name = input
        .name
        .ok_or_else(|| ServiceError::invalid("name", "is required"))?;
    let t = s
        .service
        .save_event_type(
            &auth.principal,
            &auth.shop_id,
            &name,
            EventTypeFields {
                description: input.description,
                sample: input.sample,
                schema: input.schema,
            },
            true,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

pub async fn get_event_type(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(
        s.service
            .event_type(&auth.principal, &auth.shop_id, &name)
            .await?,
    )
    .into_response())
}

pub async fn put_event_type(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<EventTypeInput>,
) -> ApiResult<Response> {
    if input.name.as_deref().is_some_and(|n| n != name) {
        return Err(ServiceError::invalid("name", "cannot be changed").into());
    }
    let t = s
        .service
        .save_event_type(
            &auth.principal,
            &auth.shop_id,
            &name,
            EventTypeFields {
                description: input.description,
                sample: input.sample,
                schema: input.schema,
            },
            false,
        )
        .await?;
    Ok(Json(t).into_response())
}

pub async fn list_endpoints(State(s): State<AppState>, auth: ApiAuth) -> ApiResult<Response> {
    let items = s
        .service
        .list_endpoints(&auth.principal, &auth.shop_id)
        .await?;
    Ok(whole_list(items))
}

pub async fn create_endpoint(
    State(s): State<AppState>,
    auth: ApiAuth,
    ApiJson(input): ApiJson<EndpointInput>,
) -> ApiResult<Response> {
    let ep = s
        .service
        .create_endpoint(&auth.principal, &auth.shop_id, input)
        .await?;
    Ok((StatusCode::CREATED, Json(ep)).into_response())
}

pub async fn get_endpoint(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(
        s.service
            .get_endpoint(&auth.principal, &auth.shop_id, &id)
            .await?,
    )
    .into_response())
}

pub async fn patch_endpoint(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<EndpointInput>,
) -> ApiResult<Response> {
    Ok(Json(
        s.service
            .update_endpoint(&auth.principal, &auth.shop_id, &id, input)
            .await?,
    )
    .into_response())
}

pub async fn delete_endpoint(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    s.service
        .delete_endpoint(&auth.principal, &auth.shop_id, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn get_secret(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let secret = s
        .service
        .endpoint_secret(&auth.principal, &auth.shop_id, &id)
        .await?;
    Ok(Json(json!({ "secret": secret })).into_response())
}

pub async fn rotate_secret(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let secret = s
        .service
        .rotate_secret(&auth.principal, &auth.shop_id, &id)
        .await?;
    Ok(Json(json!({ "secret": secret })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    #[serde(default)]
    event_type: Option<String>,
}

pub async fn send_test(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let input: TestInput = if body.iter().all(u8::is_ascii_whitespace) {
        TestInput::default()
    } else {
        parse_json(&body)?
    };
    let (event_id, delivery_id) = s
        .service
        .send_test(&auth.principal, &auth.shop_id, &id, input.event_type)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "event_id": event_id, "delivery_id": delivery_id })),
    )
        .into_response())
}

fn parse_time(field: &str, v: &str) -> Result<i64, ServiceError> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| ServiceError::invalid(field, "must be an RFC 3339 time or unix milliseconds"))
}

/// The delivery filter from query parameters (or a JSON body for bulk retry). A value that
/// cannot be read is a 400 naming its parameter.
fn filter_from(q: &HashMap<String, String>) -> Result<DeliveryFilter, ServiceError> {
    let filter = filter_values(q).map_err(ServiceError::into_bad_request)?;
    crate::service::queue::check_filter(&filter).map_err(ServiceError::into_bad_request)?;
    Ok(filter)
}

fn filter_values(q: &HashMap<String, String>) -> Result<DeliveryFilter, ServiceError> {
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(DeliveryFilter {
        status: get("status"),
        endpoint_id: get("endpoint_id").map(Into::into),
        event_type: get("event_type"),
        channel: get("channel"),
        since: get("since").map(|v| parse_time("since", &v)).transpose()?,
        until: get("until").map(|v| parse_time("until", &v)).transpose()?,
    })
}

pub async fn list_deliveries(
    State(s): State<AppState>,
    auth: ApiAuth,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let filter = filter_from(&q)?;
    let limit = q
        .get("limit")
        .map(|l| {
            l.parse::<i64>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ServiceError::bad_request("limit", "must be a number from 1 to 1000")
                })
        })
        .transpose()?;
    let page = s
        .service
        .list_deliveries(
            &auth.principal,
            &auth.shop_id,
            &filter,
            q.get("cursor")
                .map(String::as_str)
                .filter(|c| !c.is_empty()),
            limit,
        )
        .await?;
    Ok(Json(page).into_response())
}

pub async fn get_delivery(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(
        s.service
            .get_delivery(&auth.principal, &auth.shop_id, &id)
            .await?,
    )
    .into_response())
}

pub async fn retry_delivery(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok((
        StatusCode::ACCEPTED,
        Json(
            s.service
                .retry_delivery(&auth.principal, &auth.shop_id, &id)
                .await?,
        ),
    )
        .into_response())
}

pub async fn cancel_delivery(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(
        s.service
            .cancel_delivery(&auth.principal, &auth.shop_id, &id)
            .await?,
    )
    .into_response())
}

pub async fn bulk_retry(
    State(s): State<AppState>,
    auth: ApiAuth,
    Query(mut q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<Response> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        q.extend(parse_json::<HashMap<String, String>>(&body)?);
    }
    let filter = filter_from(&q)?;
    let n = s
        .service
        .bulk_retry(&auth.principal, &auth.shop_id, &filter)
        .await?;
    Ok(Json(json!({ "retried": n })).into_response())
}

pub async fn list_channels(State(s): State<AppState>, auth: ApiAuth) -> ApiResult<Response> {
    let items = s.service.channels(&auth.principal, &auth.shop_id).await?;
    Ok(whole_list(items))
}

pub async fn list_alerts(
    State(s): State<AppState>,
    auth: ApiAuth,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let page = s
        .service
        .alerts(
            &auth.principal,
            &auth.shop_id,
            q.get("cursor").map(String::as_str),
            100,
        )
        .await?;
    Ok(Json(page).into_response())
}

pub async fn acknowledge_alert(
    State(s): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    s.service
        .acknowledge_alert(&auth.principal, &auth.shop_id, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /activity`: server-sent events, one per published event, attempt and state change.
pub async fn activity(State(s): State<AppState>, auth: ApiAuth) -> Response {
    crate::web::activity::shop_stream(&s.service.engine, &auth.principal, auth.shop_id)
}
