//! The outbound guard: keeps deliveries away from internal addresses.
//!
//! Anyone who can register an endpoint could otherwise make Herald POST to the loopback
//! interface, the private network or a cloud metadata service. The check runs on the address
//! a name actually resolves to, inside the HTTP client's resolver, so a public name that
//! resolves (or later re-resolves) to an internal address cannot get through. URLs with an IP
//! literal never reach the resolver, which is why [`check_literal`] exists as well.
//! Operators who deliver to their own network opt out with `HERALD_ALLOW_PRIVATE_TARGETS=1`.

use std::collections::BTreeSet;
use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The error type reqwest expects from a resolver.
type BoxError = Box<dyn StdError + Send + Sync>;

/// IPv4 networks Herald will not deliver to, as (network, prefix length).
const BLOCKED_V4: [([u8; 4], u32); 13] = [
    ([0, 0, 0, 0], 8),          // "this network", including 0.0.0.0
    ([127, 0, 0, 0], 8),        // loopback
    ([10, 0, 0, 0], 8),         // private
    ([172, 16, 0, 0], 12),      // private
    ([192, 168, 0, 0], 16),     // private
    ([169, 254, 0, 0], 16),     // link-local, home of cloud metadata services
    ([100, 64, 0, 0], 10),      // carrier-grade NAT, internal to the provider
    ([224, 0, 0, 0], 4),        // multicast
    ([240, 0, 0, 0], 4),        // reserved
    ([255, 255, 255, 255], 32), // limited broadcast (also inside 240/4; listed for clarity)
    ([198, 18, 0, 0], 15),      // benchmarking
    ([192, 0, 0, 0], 24),       // IETF protocol assignments
    ([0, 0, 0, 0], 32),         // unspecified (also inside 0/8; listed for clarity)
];

/// Whether Herald refuses to deliver to `ip` (unless private targets are allowed).
///
/// IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, translated
/// `::ffff:0:a.b.c.d`, the deprecated compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and
/// 6to4 `2002:aabb:ccdd::`) are judged by that IPv4 address, because they reach it. Only
/// stable `std` methods are used, so this does not rely on `is_global`.
pub fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_blocked_v4(v4),
        IpAddr::V6(v6) => is_blocked_v6(v6),
    }
}

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let ip = u32::from(ip);
    BLOCKED_V4.iter().any(|&(network, prefix)| {
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        (ip & mask) == u32::from_be_bytes(network)
    })
}

fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return true;
    }
    if let Some(v4) = embedded_v4(ip) {
        return is_blocked_v4(v4);
    }
    let s = ip.segments();
    (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // deprecated site-local fec0::/10, still routed internally
        || (s[0] & 0xff00) == 0xff00 // multicast ff00::/8
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48
        || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32: tunnels to an IPv4 it hides
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation 2001:db8::/32
        || s[..4] == [0x100, 0, 0, 0] // discard-only 100::/64
}

/// The IPv4 address an IPv6 address delivers to, for the forms that embed one: in the last
/// 32 bits IPv4-mapped `::ffff:0:0/96`, IPv4-translated `::ffff:0:0:0/96`, IPv4-compatible
/// `::/96` and NAT64 `64:ff9b::/96`; in bits 16–48 6to4 `2002::/16`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let o = ip.octets();
    let s = ip.segments();
    match &s[..6] {
        [0, 0, 0, 0, 0, 0] | [0x64, 0xff9b, 0, 0, 0, 0] | [0, 0, 0, 0, 0xffff, 0] => {
            Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
        }
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// A delivery refused because its target is internal.
///
/// The resolver returns it inside reqwest's error; the sender finds it with
/// [`error_is_blocked`] to report the attempt as "blocked" rather than as a network failure,
/// since retrying cannot help.
#[derive(Debug, thiserror::Error)]
#[error("blocked: {host} resolves only to internal addresses ({addrs})")]
pub struct Blocked {
    pub host: String,
    /// The refused addresses, comma-separated, for the delivery log.
    pub addrs: String,
}

/// Whether `err` or anything in its `source()` chain is a [`Blocked`].
///
/// `std::io::Error` hides a wrapped error from `source()` (it reports the inner error's source
/// instead), so such wrappers are opened explicitly.
pub fn error_is_blocked(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<Blocked>() {
            return true;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if error_is_blocked(inner) {
                return true;
            }
        }
        current = err.source();
    }
    false
}

/// A reqwest resolver that drops internal addresses from every answer.
///
/// Filtering (rather than refusing whenever any address is internal) lets a name with both
/// public and internal records still be delivered to, over its public addresses only; the
/// connection can only ever go to an address this resolver returned.
#[derive(Clone, Debug, Default)]
pub struct GuardedResolver {
    /// Skip filtering, for deployments that deliver inside their own network.
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            resolve_guarded(&host, allow_private)
                .await
                .map(|addrs| Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Resolves `host` with the system resolver and keeps the addresses Herald may deliver to.
/// The port is left at 0, which reqwest replaces with the URL's port or the scheme's default.
async fn resolve_guarded(host: &str, allow_private: bool) -> Result<Vec<SocketAddr>, BoxError> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0_u16)).await?.collect();
    if resolved.is_empty() {
        let msg = format!("{host} resolved to no addresses");
        return Err(Box::new(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            msg,
        )));
    }
    if allow_private {
        return Ok(resolved);
    }
    let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
        .into_iter()
        .partition(|addr| !is_blocked(addr.ip()));
    if allowed.is_empty() {
        return Err(Box::new(Blocked {
            host: host.to_owned(),
            addrs: join_ips(refused.iter().map(SocketAddr::ip)),
        }));
    }
    Ok(allowed)
}

/// Distinct addresses, comma-separated, for a readable error message.
fn join_ips(ips: impl Iterator<Item = IpAddr>) -> String {
    let distinct: BTreeSet<IpAddr> = ips.collect();
    distinct
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks the parts of a URL the resolver never sees: IP-literal hosts, which reqwest connects
/// to directly, and `localhost` names, which many systems answer without DNS. Call it before
/// sending; names are otherwise left to [`GuardedResolver`].
pub fn check_literal(url: &reqwest::Url, allow_private: bool) -> Result<(), Blocked> {
    if allow_private {
        return Ok(());
    }
    let refused = match url.host() {
        None => None,
        Some(url::Host::Ipv4(ip)) => is_blocked(ip.into()).then(|| ip.to_string()),
        Some(url::Host::Ipv6(ip)) => is_blocked(ip.into()).then(|| ip.to_string()),
        Some(url::Host::Domain(domain)) => {
            let name = domain.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                Some("loopback".to_owned())
            } else {
                // Hosts of non-http schemes are opaque to the URL parser, so an address can
                // arrive here as a "domain".
                name.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .ok()
                    .filter(|ip| is_blocked(*ip))
                    .map(|ip| ip.to_string())
            }
        }
    };
    match refused {
        Some(addrs) => Err(Blocked {
            host: url.host_str().unwrap_or_default().to_owned(),
            addrs,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn parse_url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn public_addresses_are_allowed() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "192.0.1.1",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_blocked(ip(addr)), "{addr} should be allowed");
        }
    }

    #[test]
    fn ipv6_forms_that_embed_an_internal_ipv4_are_blocked() {
        for ip in [
            "2002:7f00:1::",       // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::1",   // 6to4 of 169.254.169.254
            "::ffff:0:7f00:1",     // IPv4-translated 127.0.0.1
            "64:ff9b::a00:1",      // NAT64 of 10.0.0.1
            "64:ff9b:1::8.8.8.8",  // local-use NAT64, whatever it embeds
            "2001:0:4136:e378::1", // Teredo
            "2001:db8::1",         // documentation
            "100::1",              // discard-only
        ] {
            assert!(is_blocked(ip.parse().unwrap()), "{ip} must be blocked");
        }
        for ip in ["2002:808:808::1", "64:ff9b::808:808", "2606:4700::1111"] {
            assert!(!is_blocked(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn internal_addresses_are_blocked() {
        for addr in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.8",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_blocked(ip(addr)), "{addr} should be blocked");
        }
    }

    #[test]
    fn check_literal_blocks_internal_ip_hosts_unless_allowed() {
        let target = parse_url("http://127.0.0.1:8080/x");
        let err = check_literal(&target, false).unwrap_err();
        assert_eq!(err.host, "127.0.0.1");
        assert_eq!(err.addrs, "127.0.0.1");
        assert!(check_literal(&target, true).is_ok());
        assert!(check_literal(&parse_url("http://[::1]/"), false).is_err());
        assert!(check_literal(&parse_url("http://[::ffff:10.0.0.1]/"), false).is_err());
        assert!(check_literal(&parse_url("http://2130706433/"), false).is_err());
    }

    #[test]
    fn check_literal_blocks_localhost_names_unless_allowed() {
        assert!(check_literal(&parse_url("http://localhost"), false).is_err());
        assert!(check_literal(&parse_url("http://LOCALHOST.:3000/"), false).is_err());
        assert!(check_literal(&parse_url("http://app.localhost/hook"), false).is_err());
        assert!(check_literal(&parse_url("http://localhost"), true).is_ok());
        assert!(check_literal(&parse_url("http://notlocalhost.example/"), false).is_ok());
    }

    #[test]
    fn check_literal_allows_public_ip_hosts_and_ordinary_names() {
        assert!(check_literal(&parse_url("https://93.184.216.34"), false).is_ok());
        assert!(check_literal(&parse_url("https://[2606:4700::1111]/"), false).is_ok());
        assert!(check_literal(&parse_url("https://hooks.example.com/in"), false).is_ok());
    }

    #[test]
    fn blocked_message_names_the_host_and_addresses() {
        let err = Blocked {
            host: "evil.example".to_owned(),
            addrs: "127.0.0.1, ::1".to_owned(),
        };
        assert_eq!(
            err.to_string(),
            "blocked: evil.example resolves only to internal addresses (127.0.0.1, ::1)"
        );
    }

    #[test]
    fn error_is_blocked_looks_through_the_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("request failed")]
        struct Outer(#[source] BoxError);

        let blocked = || Blocked {
            host: "h".to_owned(),
            addrs: "10.0.0.1".to_owned(),
        };
        assert!(error_is_blocked(&blocked()));
        assert!(error_is_blocked(&Outer(Box::new(blocked()))));
        let io = std::io::Error::other(blocked());
        assert!(error_is_blocked(&Outer(Box::new(io))));
        let plain = std::io::Error::other("timed out");
        assert!(!error_is_blocked(&Outer(Box::new(plain))));
    }

    #[tokio::test]
    async fn resolver_refuses_localhost_unless_private_targets_are_allowed() {
        let guarded = GuardedResolver {
            allow_private: false,
        };
        let name: Name = "localhost".parse().unwrap();
        let err = match guarded.resolve(name).await {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err,
        };
        assert!(err.is::<Blocked>(), "unexpected error: {err}");
        assert!(error_is_blocked(&*err));

        let open = GuardedResolver {
            allow_private: true,
        };
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = open.resolve(name).await.unwrap().collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|addr| addr.ip().is_loopback()));
    }
}
