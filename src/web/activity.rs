//! The Activity page's live feed: the shop's activity as server-sent events, for a signed-in
//! member (the access gate has checked the shop), and the SSE framing the REST API shares.

use super::AppState;
use crate::engine::activity::Activity;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

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

/// `GET /shops/{shop}/activity/stream`.
pub async fn stream(State(state): State<AppState>, Path(shop): Path<String>) -> Response {
    let engine = &state.service.engine;
    sse(engine.activity().stream(shop), engine.stopping())
}
