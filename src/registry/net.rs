//! Outbound address checks: which addresses a registry lookup may connect to.
//!
//! Every `host:port` in a pod's image, every token realm a registry names in a
//! `401` challenge and every redirect target becomes a connection from inside the
//! cluster. By default imagegate refuses to connect to:
//!
//! - loopback (`127.0.0.0/8`, `::1`): imagegate's own pod, not the node's registry;
//! - link-local (`169.254.0.0/16`, `fe80::/10`): cloud metadata services live there;
//! - unspecified (`0.0.0.0/8`, `::`): Linux connects `0.0.0.0` to the local host;
//!
//! and the IPv4-mapped IPv6 forms of all of them (`::ffff:127.0.0.1`). The
//! configuration adds networks to refuse (`denyNetworks`) or to allow
//! (`allowNetworks`); an explicit deny beats an explicit allow, and both beat the
//! defaults. A registry named in `registries[]` (exactly, `host[:port]`) is trusted
//! whatever it resolves to, and so are its token realm and redirects while they
//! stay on its host (on any port: a token service often listens beside the
//! registry). The trust is per registry: `127.0.0.1:5000` configured does not let
//! a pod's `127.0.0.1:22/x` through, nor another registry's redirect to it.
//!
//! The checks sit in three places, because a connection can start from three:
//! - [`Resolver`], reqwest's DNS resolver, for every host name (so a DNS name that
//!   points at `127.0.0.1` is caught after resolution, on the address actually
//!   connected to: no second lookup that could answer differently);
//! - [`AddressPolicy::check_url`] before a request to a URL whose host is an IP
//!   literal (reqwest does not resolve those);
//! - the redirect policy, which calls `check_url` on every hop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} is {what}, which imagegate does not connect to")]
pub struct AddressRefused {
    /// The host as written (a name or an IP literal).
    pub host: String,
    /// "a loopback address", "a link-local address", ... or "in the denied network
    /// 10.0.0.0/8".
    pub what: String,
}

/// Which addresses lookups may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Networks let through even when a default would refuse them.
    pub allow: Vec<IpNet>,
    /// Networks refused besides the defaults (beats `allow`).
    pub deny: Vec<IpNet>,
    /// Host names (no port) let through whatever they resolve to: the host of the
    /// configured registry this policy is for.
    pub trusted_hosts: Vec<String>,
}

/// The lower-case host of `host[:port]` or `[v6]:port`, without the port.
pub fn host_without_port(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match host_port.rsplit_once(':') {
        // `host:port`; a bare IPv6 address has more than one colon.
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    }
}

/// Whether `host` (no port) names the local machine without any lookup:
/// `localhost`, `*.localhost` (RFC 6761), or a loopback or unspecified literal.
pub fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => {
            let ip = canonical(ip);
            ip.is_loopback() || ip.is_unspecified()
        }
        Err(_) => false,
    }
}

/// An IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`, deprecated
/// but still routed by some stacks) IPv6 address as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
                // ::a.b.c.d, but not :: and ::1, which are IPv6's own.
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// The default refusal for an address, if any.
fn default_refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_link_local() {
                Some("a link-local address (169.254.0.0/16, where cloud metadata services answer)")
            } else if v4.octets()[0] == 0 {
                Some("an unspecified address (0.0.0.0/8 reaches the local host)")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some("a link-local address (fe80::/10)")
            } else {
                None
            }
        }
    }
}

impl AddressPolicy {
    /// Whether `host` (no port) is the host of a configured registry.
    pub fn is_trusted(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.trusted_hosts
            .iter()
            .any(|t| t.eq_ignore_ascii_case(host))
    }

    /// Checks one address that `host` resolved to (or is).
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), AddressRefused> {
        if self.is_trusted(host) {
            return Ok(());
        }
        let forms = [ip, canonical(ip)];
        let refused = |what: String| AddressRefused {
            host: host.to_string(),
            what,
        };
        for net in &self.deny {
            if forms.iter().any(|ip| net.contains(ip)) {
                return Err(refused(format!("in the denied network {net}")));
            }
        }
        if self
            .allow
            .iter()
            .any(|net| forms.iter().any(|ip| net.contains(ip)))
        {
            return Ok(());
        }
        match forms.iter().find_map(|ip| default_refusal(*ip)) {
            Some(what) => Err(refused(what.to_string())),
            None => Ok(()),
        }
    }

    /// Checks a URL before a request: its host, when that is an IP literal. A name
    /// is checked by the resolver when it is resolved.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), AddressRefused> {
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
        match host.parse::<IpAddr>() {
            Ok(ip) => self.check_ip(host, ip),
            Err(_) => Ok(()),
        }
    }
}

/// reqwest's DNS resolver: the system resolver (`getaddrinfo` on a blocking
/// thread), then [`AddressPolicy::check_ip`] on every address. A name is refused
/// when any of its addresses is: connecting to "the others" would let a name with
/// one public and one loopback address through on a retry.
#[derive(Clone)]
pub struct Resolver {
    policy: Arc<AddressPolicy>,
    /// Names answered without asking the system (like `/etc/hosts` entries), and
    /// still checked: [`RegistryConfig::static_hosts`](super::RegistryConfig).
    static_hosts: Arc<Vec<(String, IpAddr)>>,
}

impl Resolver {
    pub fn new(policy: Arc<AddressPolicy>, static_hosts: Arc<Vec<(String, IpAddr)>>) -> Self {
        Resolver {
            policy,
            static_hosts,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The resolver found no address.
#[derive(Debug, thiserror::Error)]
#[error("failed to lookup address information: {0}")]
pub struct LookupFailed(String);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        let fixed: Vec<SocketAddr> = self
            .static_hosts
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(&host))
            .map(|(_, ip)| SocketAddr::new(*ip, 0))
            .collect();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = if fixed.is_empty() {
                let lookup = host.clone();
                tokio::task::spawn_blocking(move || {
                    std::net::ToSocketAddrs::to_socket_addrs(&(lookup.as_str(), 0))
                })
                .await
                .map_err(|e| Box::new(LookupFailed(e.to_string())) as BoxError)?
                .map_err(|e| Box::new(LookupFailed(e.to_string())) as BoxError)?
                .collect()
            } else {
                fixed
            };
            if addrs.is_empty() {
                return Err(Box::new(LookupFailed(format!("{host} has no address"))) as _);
            }
            for addr in &addrs {
                policy
                    .check_ip(&host, addr.ip())
                    .map_err(|e| Box::new(e) as BoxError)?;
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str], trusted: &[&str]) -> AddressPolicy {
        AddressPolicy {
            allow: allow.iter().map(|n| n.parse().unwrap()).collect(),
            deny: deny.iter().map(|n| n.parse().unwrap()).collect(),
            trusted_hosts: trusted.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn defaults_refuse_loopback_link_local_and_unspecified_in_every_spelling() {
        let p = AddressPolicy::default();
        // (address, refused)
        let table = [
            ("127.0.0.1", true),
            ("127.1.2.3", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("::127.0.0.1", true),
            ("169.254.169.254", true),
            ("::ffff:169.254.169.254", true),
            ("fe80::1", true),
            ("febf::1", true),
            ("0.0.0.0", true),
            ("0.1.2.3", true),
            ("::", true),
            ("::ffff:0.0.0.0", true),
            ("10.0.0.5", false),
            ("192.168.1.1", false),
            ("8.8.8.8", false),
            ("2001:db8::1", false),
            ("fec0::1", false),
            ("::ffff:8.8.8.8", false),
        ];
        for (ip, refused) in table {
            let r = p.check_ip("h", ip.parse().unwrap());
            assert_eq!(r.is_err(), refused, "{ip}: {r:?}");
        }
    }

    #[test]
    fn configuration_allows_and_denies_networks_and_trusts_configured_hosts() {
        let p = policy(
            &["127.0.0.0/8", "10.0.0.0/8"],
            &["10.1.0.0/16", "192.168.0.0/16"],
            &["myreg.local", "127.0.0.1"],
        );
        // (host, address, refused)
        let table = [
            ("a", "127.0.0.1", false),
            ("a", "::ffff:127.0.0.1", false),
            ("a", "::1", true),
            ("a", "10.2.3.4", false),
            ("a", "10.1.3.4", true),
            ("a", "::ffff:10.1.3.4", true),
            ("a", "192.168.3.4", true),
            ("a", "169.254.169.254", true),
            ("myreg.local", "169.254.1.1", false),
            ("MyReg.Local.", "192.168.1.1", false),
            ("127.0.0.1", "127.0.0.1", false),
        ];
        for (host, ip, refused) in table {
            let r = p.check_ip(host, ip.parse().unwrap());
            assert_eq!(r.is_err(), refused, "{host} {ip}: {r:?}");
        }
        let e = p.check_ip("x", "192.168.1.1".parse().unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x is in the denied network 192.168.0.0/16, which imagegate does not connect to"
        );
    }

    #[test]
    fn urls_with_ip_literals_are_checked_and_names_left_to_the_resolver() {
        let p = policy(&[], &[], &["10.0.0.5"]);
        for (url, refused) in [
            ("http://169.254.169.254/latest/meta-data/", true),
            ("http://[::ffff:a9fe:a9fe]/", true),
            ("https://[fe80::1]:5000/v2/", true),
            ("http://127.0.0.1:5000/token", true),
            ("http://0.0.0.0:80/", true),
            ("https://10.0.0.5:5001/token", false),
            ("https://registry.example.com/v2/", false),
            ("https://localhost/v2/", false),
        ] {
            let r = p.check_url(&url.parse().unwrap());
            assert_eq!(r.is_err(), refused, "{url}: {r:?}");
        }
    }

    #[test]
    fn local_names_and_hosts_without_ports() {
        for (host, local) in [
            ("localhost", true),
            ("LOCALHOST.", true),
            ("reg.localhost", true),
            ("127.0.0.1", true),
            ("::1", true),
            ("0.0.0.0", true),
            ("localhost.example.com", false),
            ("10.0.0.1", false),
        ] {
            assert_eq!(is_local_name(host), local, "{host}");
        }
        for (input, host) in [
            ("localhost:5000", "localhost"),
            ("127.0.0.1", "127.0.0.1"),
            ("[::1]:5000", "::1"),
            ("[::1]", "::1"),
            ("::1", "::1"),
            ("reg.example.com:443", "reg.example.com"),
        ] {
            assert_eq!(host_without_port(input), host, "{input}");
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_point_at_refused_addresses() {
        use reqwest::dns::Resolve;
        let fixed = Arc::new(vec![
            (
                "metadata.test".to_string(),
                "169.254.169.254".parse().unwrap(),
            ),
            (
                "mapped.test".to_string(),
                "::ffff:127.0.0.1".parse().unwrap(),
            ),
        ]);
        let resolver = Resolver::new(Arc::new(AddressPolicy::default()), fixed.clone());
        // (name, what): `localhost` through the system resolver, the others fixed.
        for (name, what) in [
            ("localhost", "a loopback address"),
            (
                "metadata.test",
                "a link-local address (169.254.0.0/16, where cloud metadata services answer)",
            ),
            ("mapped.test", "a loopback address"),
        ] {
            let err = match resolver.resolve(name.parse().unwrap()).await {
                Ok(addrs) => panic!("{name} resolved to {:?}", addrs.collect::<Vec<_>>()),
                Err(e) => e,
            };
            let refused = err
                .downcast_ref::<AddressRefused>()
                .unwrap_or_else(|| panic!("{name}: {err}"));
            assert_eq!(refused.what, what, "{name}");
        }
        // Allowed once the policy trusts the name.
        let trusting = Resolver::new(Arc::new(policy(&[], &[], &["localhost"])), fixed);
        let addrs: Vec<SocketAddr> = trusting
            .resolve("localhost".parse().unwrap())
            .await
            .map_err(|e| e.to_string())
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
