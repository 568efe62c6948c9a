//! The Activity page's live feed: the shop's activity as server-sent events, for a signed-in
//! member (the access gate has checked the shop), and the SSE framing the REST API shares.

use super::AppState;
use crate::engine::activity::Activity;
use app::model::{Principal, ServiceError};
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;

/// Activity as server-sent events named by kind, with keep-alives. The stream ends when
/// `until` completes (Herald shutting down), so an open Activity page cannot hold up a stop.
pub fn sse(
    stream: impl futures::Stream<Item = Activity> + Send + 'static,
    until: impl std::future::Future<Output = ()> + Send + 'static,
) -> Response {
    use futures::StreamExt;
    let events = stream.take_until(until).map(|a| {
        Ok::<_, std::convert::Infallible>(
            Event::default()
                .event(a.kind.clone())
                .json_data(&a)
                .unwrap_or_default(),
        )
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A shop's activity for `who` as server-sent events, or 429 when `who` holds as many live
/// streams as it may (each costs a connection and a task for as long as it is open).
pub fn shop_stream(engine: &crate::engine::Engine, who: &Principal, shop: String) -> Response {
    match engine.activity().stream(&who.user_id, shop) {
        Ok(stream) => sse(stream, engine.stopping()),
        Err(too_many) => crate::api::error_response(ServiceError::TooMany(too_many.to_string())),
    }
}

/// `GET /shops/{shop}/activity/stream`.
pub async fn stream(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(shop): Path<String>,
) -> Response {
    shop_stream(&state.service.engine, &who, shop)
}
