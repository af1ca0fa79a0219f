//! Outgoing requests the server makes on a site owner's behalf (webhook deliveries, fetching
//! articles from the owner's URLs and sitemaps): they may only reach the public internet.
//!
//! An owner could otherwise point a webhook or an article URL at the server's own routes, at
//! a database beside it or at a cloud metadata service (server-side request forgery). The
//! guard refuses loopback, private, link-local, shared (CGNAT), multicast, reserved and
//! metadata addresses, in every spelling the URL parser accepts (`2130706433`, `0x7f000001`,
//! `[::ffff:127.0.0.1]`, …), and checks the addresses a name resolves to on every connection:
//! the HTTP client connects only to the addresses the guard let through, so a name that
//! resolves to a public address when it is checked and to a private one when it is used
//! (DNS rebinding) still cannot reach the private one. Proxies from the environment are not
//! used, and every redirect is checked like the first URL.
//!
//! Networks an operator lists with `--egress-allow` (a hook receiver on the same host, a
//! test's local HTTP server) are let through.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

/// Which destinations outgoing requests may reach.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    /// Networks let through although they are not public.
    allowed: Arc<[IpNet]>,
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the address is not a valid http or https URL")]
    NotHttp,
    #[error("{0} is a loopback, private, link-local or otherwise internal address")]
    Internal(IpAddr),
    #[error("{host} resolves only to internal addresses ({first})")]
    ResolvesInternal { host: String, first: IpAddr },
    #[error("{0} could not be resolved")]
    Unresolved(String),
}

impl Egress {
    /// Public destinations only, plus `allowed` networks.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self {
            allowed: allowed.into(),
        }
    }

    /// May a connection go to `ip`?
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        is_public(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// Checks a URL's scheme and, when its host is an address literal, the address (a host
    /// name is checked when it is resolved, on every connection).
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, Refused> {
        let parsed = reqwest::Url::parse(url).map_err(|_| Refused::NotHttp)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Refused::NotHttp);
        }
        match parsed.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(url::Host::Domain(_)) => {}
            None => return Err(Refused::NotHttp),
        }
        Ok(parsed)
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.permits(ip) {
            Ok(())
        } else {
            Err(Refused::Internal(ip))
        }
    }

    /// An HTTP client that only connects where this guard permits: names are resolved by the
    /// guard, redirects (at most `max_redirects`, 0 for none) are checked like the first URL,
    /// and proxies from the environment are ignored.
    pub fn client(
        &self,
        timeout: Duration,
        max_redirects: usize,
    ) -> reqwest::Result<reqwest::Client> {
        let guard = self.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= max_redirects {
                attempt.stop()
            } else if let Err(refused) = guard.check_url(attempt.url().as_str()) {
                attempt.error(refused)
            } else {
                attempt.follow()
            }
        });
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(redirect)
            .no_proxy()
            .dns_resolver(Arc::new(self.clone()))
            .build()
    }

    /// The addresses of `host` this guard permits (an error when there are none).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| Refused::Unresolved(host.to_owned()))?
            .collect();
        let Some(first) = found.first() else {
            return Err(Refused::Unresolved(host.to_owned()));
        };
        let first = first.ip();
        let permitted: Vec<SocketAddr> =
            found.into_iter().filter(|a| self.permits(a.ip())).collect();
        if permitted.is_empty() {
            return Err(Refused::ResolvesInternal {
                host: host.to_owned(),
                first,
            });
        }
        Ok(permitted)
    }
}

impl reqwest::dns::Resolve for Egress {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let addrs = guard.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An IPv4 address carried in an IPv6 one (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`,
/// 6to4 `2002::/16`, the old compatible `::a.b.c.d`) is judged as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return IpAddr::V4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return IpAddr::V4(embedded_v4(s[1], s[2]));
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return IpAddr::V4(embedded_v4(s[6], s[7]));
    }
    ip
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// Globally reachable unicast (a conservative reading of the IANA special-purpose registries).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_unspecified()
                || a == 0 // "this network"
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local() // 169.254/16, cloud metadata
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 192 && b == 0 && c == 2) // documentation
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || (a == 198 && b == 51 && c == 100) // documentation
                || (a == 203 && b == 0 && c == 113) // documentation
                || v4.is_multicast()
                || a >= 240) // reserved and broadcast
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])) // discard-only
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        Egress::default().check_url(url).is_err()
    }

    #[test]
    fn internal_addresses_are_refused_in_every_spelling() {
        for url in [
            "http://127.0.0.1:8080/api/v1/kb/import",
            "http://2130706433:8080/",
            "http://0x7f000001:8080/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://localhost.:80/", // a name: checked at resolution, see below
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:c0a8:0101::1]/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "ftp://example.com/",
            "file:///etc/passwd",
            "not a url",
        ] {
            if url.contains("localhost") {
                continue;
            }
            assert!(refused(url), "{url} must be refused");
        }
        for url in [
            "https://example.com/hook",
            "http://93.184.216.34/",
            "http://[2606:4700::1111]/",
            "http://8.8.8.8:8080/",
        ] {
            assert!(!refused(url), "{url} must be let through");
        }
    }

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_refused() {
        let guard = Egress::default();
        let err = guard.resolve("localhost", 80).await.unwrap_err();
        assert!(
            matches!(err, Refused::ResolvesInternal { .. }),
            "localhost must be refused, got {err:?}"
        );
    }

    #[test]
    fn listed_networks_are_let_through() {
        let guard = Egress::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(guard.check_url("http://127.0.0.1:9/").is_ok());
        assert!(guard.check_url("http://[::ffff:127.0.0.1]:9/").is_ok());
        assert!(guard.check_url("http://10.0.0.1/").is_err());
    }

    #[tokio::test]
    async fn the_client_does_not_connect_to_a_refused_address() {
        // A real listener on loopback: without the guard the request would arrive.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(500), listener.accept())
                .await
                .is_ok()
        });
        let client = Egress::default().client(Duration::from_secs(2), 0).unwrap();
        let sent = client.get(format!("http://localhost:{port}/")).send().await;
        assert!(sent.is_err(), "the request must fail");
        assert!(
            !accepted.await.unwrap(),
            "no connection may reach the listener"
        );

        // Listed, the same request goes through.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
        let client = Egress::new(vec!["127.0.0.0/8".parse().unwrap()])
            .client(Duration::from_millis(300), 0)
            .unwrap();
        let _ = client.get(format!("http://localhost:{port}/")).send().await;
        assert!(accepted.await.unwrap(), "a listed network is reachable");
    }
}
