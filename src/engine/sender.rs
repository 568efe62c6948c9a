//! The HTTP sender: one pooled reqwest client (rustls, no redirects, the outbound guard as
//! its resolver), a client per endpoint with a client certificate, bodies capped at 64 KiB,
//! and errors classified into the kinds the API reports.

use super::guard::{self, GuardedResolver};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Response bodies are kept up to this size.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Names of the headers whose values are secret (masked when the attempt is recorded).
    pub secret_headers: Vec<String>,
    pub body: String,
    /// The body is the event's default envelope (recorded attempts leave it out).
    pub envelope: bool,
    pub timeout: Duration,
}

/// What came back, or why nothing did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub duration: Duration,
    /// timeout, connect, tls, dns or blocked.
    pub error_kind: Option<&'static str>,
    pub error_message: Option<String>,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Sender {
    allow_private: bool,
    client: reqwest::Client,
    /// Clients with a client certificate, by endpoint id and the endpoint's updated_at.
    with_cert: Mutex<HashMap<String, (i64, reqwest::Client)>>,
}

/// The delivery client. It ignores `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY`: through a
/// proxy the connection would go to the proxy, and the guarded resolver would never see (and
/// so never check) the target's address.
fn builder(allow_private: bool) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
}

/// Finds the most specific kind for a transport error.
/// A transport error as an attempt records it: the endpoint's URL in it without its query
/// string (tokens live there) or credentials, as viewers and alerts are shown it.
fn error_text(err: reqwest::Error, url: &str) -> String {
    if err.url().is_none() {
        return err.to_string();
    }
    format!(
        "{} for url ({})",
        err.without_url(),
        super::attempt::display_url(url)
    )
}

fn classify(err: &reqwest::Error) -> &'static str {
    if guard::error_is_blocked(err) {
        return "blocked";
    }
    let mut text = err.to_string().to_lowercase();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(" | ");
        text.push_str(&s.to_string().to_lowercase());
        source = s.source();
    }
    if err.is_timeout() || text.contains("timed out") {
        "timeout"
    } else if text.contains("dns error")
        || text.contains("failed to lookup")
        || text.contains("name or service")
    {
        "dns"
    } else if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        "tls"
    } else {
        "connect"
    }
}

impl Sender {
    /// Drops the client kept for an endpoint's client certificate (the endpoint is gone).
    pub fn forget_endpoint(&self, endpoint_id: &str) {
        self.with_cert
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(endpoint_id);
    }

    pub fn new(allow_private: bool) -> Self {
        Sender {
            allow_private,
            client: builder(allow_private)
                .build()
                .expect("the HTTP client builds"),
            with_cert: Mutex::new(HashMap::new()),
        }
    }

    /// The client for an endpoint: the shared one, or one presenting its certificate.
    fn client_for(&self, cert: Option<(&str, i64, &str)>) -> Result<reqwest::Client, String> {
        let Some((endpoint_id, version, pem)) = cert else {
            return Ok(self.client.clone());
        };
        let mut cache = self.with_cert.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((v, c)) = cache.get(endpoint_id) {
            if *v == version {
                return Ok(c.clone());
            }
        }
        let identity = reqwest::Identity::from_pem(pem.as_bytes())
            .map_err(|e| format!("client certificate: {e}"))?;
        let client = builder(self.allow_private)
            .identity(identity)
            .build()
            .map_err(|e| format!("client certificate: {e}"))?;
        cache.insert(endpoint_id.to_string(), (version, client.clone()));
        Ok(client)
    }

    /// Sends one request. Never panics and never follows a redirect.
    pub async fn send(&self, req: &Prepared, cert: Option<(&str, i64, &str)>) -> Outcome {
        let start = Instant::now();
        let fail = |kind: &'static str, msg: String| Outcome {
            duration: start.elapsed(),
            error_kind: Some(kind),
            error_message: Some(msg),
            ..Default::default()
        };
        let url = match reqwest::Url::parse(&req.url) {
            Ok(u) => u,
            Err(e) => return fail("connect", format!("invalid url: {e}")),
        };
        if let Err(blocked) = guard::check_literal(&url, self.allow_private) {
            return fail("blocked", blocked.to_string());
        }
        let client = match self.client_for(cert) {
            Ok(c) => c,
            Err(e) => return fail("tls", e),
        };
        let mut builder = client.post(url).timeout(req.timeout).body(req.body.clone());
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let resp = match builder.send().await {
            Ok(r) => r,
            Err(e) => return fail(classify(&e), error_text(e, &req.url)),
        };
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut resp = resp;
        let mut body = Vec::new();
        let mut error = None;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_RESPONSE_BYTES - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= MAX_RESPONSE_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let mut out = Outcome {
            status: Some(status),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            duration: start.elapsed(),
            ..Default::default()
        };
        // A response that did not finish within the timeout is a timeout, whatever its status.
        if let Some(e) = error {
            if e.is_timeout() {
                out.error_kind = Some("timeout");
                out.error_message = Some(error_text(e, &req.url));
            }
        }
        out
    }
}
