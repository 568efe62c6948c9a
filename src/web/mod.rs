//! The HTTP surface: the router, sign-in handlers, the access gate and security headers.

pub mod activity;
pub mod gate;
pub mod login;
pub mod router;
pub mod serve;

use crate::auth::throttle::SignInThrottle;
use crate::service::Service;
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

/// Everything a handler may need, shared: axum clones the state for every extractor and
/// middleware of every request, so a clone is one reference count.
#[derive(Clone)]
pub struct AppState(std::sync::Arc<AppStateInner>);

impl AppState {
    pub fn new(inner: AppStateInner) -> Self {
        AppState(std::sync::Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

pub struct AppStateInner {
    pub leptos_options: LeptosOptions,
    pub service: Service,
    /// Throttles sign-in attempts per client address and per email at it.
    pub signin_throttle: SignInThrottle,
    /// `HERALD_METRICS_TOKEN`: opens the per-endpoint series of `/metrics`.
    pub metrics_token: Option<String>,
    /// `HERALD_TRUSTED_PROXIES`: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: std::sync::Arc<Vec<ipnet::IpNet>>,
    /// `HERALD_PUBLIC_URL`'s origin (`https://herald.example.com`), when it is set: forms must
    /// come from it.
    pub public_origin: Option<String>,
    /// Whether cookies are `Secure` (`HERALD_PUBLIC_URL` is https): the session's and the
    /// shop switcher's alike.
    pub secure_cookies: bool,
}

/// The client's address: the connection's peer, or, when the peer is a trusted proxy, the
/// nearest address in `X-Forwarded-For` that is not one (proxies append on the right).
pub fn client_ip(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// The origin (`scheme://host[:port]`) of a URL, lowercased; `None` if it has none.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin
        .is_tuple()
        .then(|| origin.ascii_serialization().to_ascii_lowercase())
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// Percent-encodes a value for a query string, keeping `/` readable (the values are paths).
pub fn encode_query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_comes_from_forwarded_for_only_behind_a_trusted_proxy() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.0.0.2".parse().unwrap(),
        );
        let proxy: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: std::net::IpAddr = "198.51.100.9".parse().unwrap();
        assert_eq!(client_ip(proxy, &h, &trusted).to_string(), "203.0.113.7");
        assert_eq!(
            client_ip(stranger, &h, &trusted),
            stranger,
            "a forged header from anyone else"
        );
        assert_eq!(
            client_ip(proxy, &h, &[]),
            proxy,
            "no proxy trusted: the peer"
        );
        assert_eq!(
            client_ip(proxy, &axum::http::HeaderMap::new(), &trusted),
            proxy
        );
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://Herald.example.com/x?y").as_deref(),
            Some("https://herald.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:3000").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(origin_of("not a url"), None);
    }
}
