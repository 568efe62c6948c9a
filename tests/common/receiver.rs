//! A real HTTP receiver on 127.0.0.1:0 that records every request and answers with a
//! scripted response.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    /// When it arrived.
    pub at: std::time::Instant,
}

/// What to answer to request number n (0-based): status, extra headers, body, delay.
pub type Script =
    Arc<dyn Fn(usize) -> (u16, Vec<(&'static str, String)>, String, Duration) + Send + Sync>;

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub script: Arc<Mutex<Script>>,
}

async fn handle(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let n = {
        let mut got = r.got.lock().unwrap();
        got.push(Received {
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: std::time::Instant::now(),
        });
        got.len() - 1
    };
    let script = r.script.lock().unwrap().clone();
    let (status, headers, body, delay) = script(n);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (k, v) in headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

impl Receiver {
    pub async fn start(
        script: impl Fn(usize) -> (u16, Vec<(&'static str, String)>, String, Duration)
            + Send
            + Sync
            + 'static,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            addr: listener.local_addr().unwrap(),
            got: Arc::default(),
            script: Arc::new(Mutex::new(Arc::new(script))),
        };
        let app = axum::Router::new().fallback(handle).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    /// Answers 200 to everything.
    pub async fn ok() -> Receiver {
        Self::start(|_| (200, vec![], "ok".into(), Duration::ZERO)).await
    }

    pub fn set(
        &self,
        script: impl Fn(usize) -> (u16, Vec<(&'static str, String)>, String, Duration)
            + Send
            + Sync
            + 'static,
    ) {
        *self.script.lock().unwrap() = Arc::new(script);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (up to `secs` seconds).
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while self.count() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} requests, got {}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.requests()
    }
}
