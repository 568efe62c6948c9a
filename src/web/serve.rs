//! Serving HTTP/1.1 with timers, so a slow or idle client cannot hold a connection for ever.
//!
//! `axum::serve` installs no timer: a connection that sends a header line now and then stays
//! open indefinitely, and so does an idle keep-alive connection. Here each connection is
//! served by hyper with its header read timeout armed (hyper counts it from the connection's
//! start and, between requests, from the last response: one bound for slow headers and idle
//! keep-alive alike), and every request is bounded by [`request_timeout`].

use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt as _;

/// Answers 408 when a request's response has not started within `limit`: its handler (and
/// the body it was reading) is dropped. A streamed response (a live activity stream) starts
/// at once and is not bounded after that.
pub async fn request_timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => timed_out(limit),
    }
}

/// The answer to a request that took too long.
fn timed_out(limit: Duration) -> Response {
    let body = serde_json::json!({"error": {
        "code": "request_timeout",
        "message": format!("The request took longer than {} s and was stopped.", limit.as_secs()),
    }});
    (StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response()
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets each
/// connection finish the request it is in (idle ones close at once), and returns when all
/// are closed. A request's headers must arrive within `header_timeout`, counted from the
/// connection's start or its last response (`HERALD_HEADER_TIMEOUT_SECONDS`).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (closing_tx, closing) = watch::channel(false);
    // Each connection holds a sender; all are gone once every connection has closed.
    let (open_tx, mut all_closed) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            header_timeout,
            closing.clone(),
            open_tx.clone(),
        ));
    }
    let _ = closing_tx.send(true);
    drop(open_tx);
    let _ = all_closed.recv().await;
}

/// Serves one connection until it ends, or until shutdown and its request in flight is done.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    header_timeout: Duration,
    mut closing: watch::Receiver<bool>,
    _open: mpsc::Sender<()>,
) {
    // Handlers read the peer's address as `ConnectInfo`, as with `axum::serve`.
    let service = router.map_request(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let service = hyper_util::service::TowerToHyperService::new(service);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let closed = async move {
        let _ = closing.wait_for(|c| *c).await;
    };
    tokio::select! {
        result = conn.as_mut() => return log_end(result),
        _ = closed => {}
    }
    conn.as_mut().graceful_shutdown();
    log_end(conn.await);
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Timeouts and hang-ups are the client's business; worth a trace, not a warning.
        tracing::debug!(error = %e, "connection ended");
    }
}

/// After a failed accept: a connection error concerns only that connection; anything else
/// (out of file descriptors) is waited out a little, as `axum::serve` does.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "could not accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
