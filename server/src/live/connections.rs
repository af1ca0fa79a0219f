//! Caps on concurrent connections: every TCP connection per peer address (taken at accept,
//! see `serve` in `lib.rs`), WebSocket connections per client IP address and per site; and the
//! time a plain HTTP connection may take to send a request's headers or sit idle.
//!
//! A connection takes a [`Slot`] for its IP address before `hello` and one for its site after;
//! dropping the slot gives it back. A connection over a cap is told `too_many_connections` and
//! closed; the connections already open are not touched.
//!
//! Every TCP connection, HTTP or WebSocket, also holds a slot for its peer address from
//! accept to close ([`ConnectionLimits::open_tcp`]): at most [`ConnectionLimits::per_tcp`]
//! (twice the WebSocket cap unless set), so a client cannot hold a thousand half-open
//! requests. Trusted proxies are not capped there (they carry many clients).
//!
//! The IP address is the TCP peer's, unless the peer is a proxy the server was told to trust
//! (`--trusted-proxy`): then it is the address that proxy says it forwarded for
//! (`X-Forwarded-For`, see [`ConnectionLimits::client_ip`]). Login throttling counts by the
//! same address.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::http::HeaderMap;
use ipnet::IpNet;
use uuid::Uuid;

/// Connections one IP address may hold open at once.
pub const MAX_CONNECTIONS_PER_IP: u32 = 50;
/// Connections (visitors and agents) one site may hold open at once.
pub const MAX_CONNECTIONS_PER_SITE: u32 = 10_000;
/// How long a plain HTTP connection may take to send a request's headers, and how long it may
/// wait idle for its next request.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request's body may take to arrive, from its first byte to its last (a 1 MiB
/// knowledge-base import over a slow phone line takes a few seconds).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Counts of open connections, and the caps they are checked against.
pub struct ConnectionLimits {
    per_ip: AtomicU32,
    per_site: AtomicU32,
    /// TCP connections per peer address; 0: twice `per_ip`.
    per_tcp: AtomicU32,
    header_timeout: RwLock<Duration>,
    body_timeout: RwLock<Duration>,
    ips: Mutex<HashMap<IpAddr, u32>>,
    sites: Mutex<HashMap<Uuid, u32>>,
    tcp: Mutex<HashMap<IpAddr, u32>>,
    /// Peers whose `X-Forwarded-For` is believed; none by default.
    trusted_proxies: RwLock<Vec<IpNet>>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::new(MAX_CONNECTIONS_PER_IP, MAX_CONNECTIONS_PER_SITE)
    }
}

enum Key {
    Ip(IpAddr),
    Site(Uuid),
    Tcp(IpAddr),
    /// A trusted proxy's connection: counted nowhere.
    Uncapped,
}

/// One open connection's place under a cap; given back on drop.
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    key: Key,
}

impl Drop for Slot {
    fn drop(&mut self) {
        match self.key {
            Key::Ip(ip) => give_back(&self.limits.ips, &ip),
            Key::Site(site) => give_back(&self.limits.sites, &site),
            Key::Tcp(ip) => give_back(&self.limits.tcp, &ip),
            Key::Uncapped => {}
        }
    }
}

fn take<K: Hash + Eq + Copy>(map: &Mutex<HashMap<K, u32>>, key: K, cap: u32) -> bool {
    let mut map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let open = map.entry(key).or_insert(0);
    if *open >= cap {
        if *open == 0 {
            map.remove(&key);
        }
        false
    } else {
        *open += 1;
        true
    }
}

fn give_back<K: Hash + Eq>(map: &Mutex<HashMap<K, u32>>, key: &K) {
    let mut map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(open) = map.get_mut(key) {
        *open = open.saturating_sub(1);
        if *open == 0 {
            map.remove(key);
        }
    }
}

impl ConnectionLimits {
    pub fn new(per_ip: u32, per_site: u32) -> Self {
        Self {
            per_ip: AtomicU32::new(per_ip),
            per_site: AtomicU32::new(per_site),
            per_tcp: AtomicU32::new(0),
            header_timeout: RwLock::new(HEADER_TIMEOUT),
            body_timeout: RwLock::new(BODY_TIMEOUT),
            ips: Mutex::default(),
            sites: Mutex::default(),
            tcp: Mutex::default(),
            trusted_proxies: RwLock::default(),
        }
    }

    /// The reverse proxies (addresses or networks) whose `X-Forwarded-For` header names the
    /// client; connections already open keep the address they were counted under.
    pub fn set_trusted_proxies(&self, proxies: Vec<IpNet>) {
        *self
            .trusted_proxies
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = proxies;
    }

    /// The client's address for a request from `peer`: the peer's own, unless the peer is a
    /// trusted proxy. Then `X-Forwarded-For` (every such header, in order) is read from the
    /// right, past the trusted proxies that forwarded it: the first address that is not a
    /// trusted proxy is the client's. What stands further left was written by the client
    /// itself and is never believed. A header that is missing, or an entry that is not an
    /// address, leaves the last address known good (the peer's when nothing else is).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        let trusted = self
            .trusted_proxies
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        if !is_trusted(&peer) {
            return peer;
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        let mut client = peer;
        for entry in forwarded.iter().rev() {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip.to_canonical();
            if !is_trusted(&client) {
                break;
            }
        }
        client
    }

    /// Changes the per-IP cap; connections already open stay open.
    pub fn set_per_ip(&self, cap: u32) {
        self.per_ip.store(cap, Ordering::Relaxed);
    }

    /// Changes the per-site cap; connections already open stay open.
    pub fn set_per_site(&self, cap: u32) {
        self.per_site.store(cap, Ordering::Relaxed);
    }

    /// Changes the cap on TCP connections per peer address (0: twice the WebSocket cap).
    pub fn set_per_tcp(&self, cap: u32) {
        self.per_tcp.store(cap, Ordering::Relaxed);
    }

    /// TCP connections (HTTP and WebSocket) one peer address may hold open at once.
    pub fn per_tcp(&self) -> u32 {
        match self.per_tcp.load(Ordering::Relaxed) {
            0 => self.per_ip.load(Ordering::Relaxed).saturating_mul(2),
            cap => cap,
        }
    }

    /// How long a plain HTTP connection may take to send a request's headers, or wait idle
    /// for the next request, before it is closed. Applies to connections accepted after.
    pub fn set_header_timeout(&self, timeout: Duration) {
        *self
            .header_timeout
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = timeout;
    }

    pub fn header_timeout(&self) -> Duration {
        *self
            .header_timeout
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long a request's whole body may take to arrive; past it the request is answered
    /// 408 `request_timeout` and its connection closed. Applies to connections accepted after.
    pub fn set_body_timeout(&self, timeout: Duration) {
        *self
            .body_timeout
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = timeout;
    }

    pub fn body_timeout(&self) -> Duration {
        *self
            .body_timeout
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for one more TCP connection from the peer `ip`, or `None` when it holds
    /// [`ConnectionLimits::per_tcp`] already. A trusted proxy is never refused.
    pub fn open_tcp(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let ip = ip.to_canonical();
        let trusted = self
            .trusted_proxies
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|net| net.contains(&ip));
        if trusted {
            return Some(Slot {
                limits: Arc::clone(self),
                key: Key::Uncapped,
            });
        }
        take(&self.tcp, ip, self.per_tcp()).then(|| Slot {
            limits: Arc::clone(self),
            key: Key::Tcp(ip),
        })
    }

    /// A slot for one more connection from `ip`, or `None` when it has too many.
    pub fn open_ip(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        take(&self.ips, ip, self.per_ip.load(Ordering::Relaxed)).then(|| Slot {
            limits: Arc::clone(self),
            key: Key::Ip(ip),
        })
    }

    /// A slot for one more connection to `site`, or `None` when it has too many.
    pub fn open_site(self: &Arc<Self>, site: Uuid) -> Option<Slot> {
        take(&self.sites, site, self.per_site.load(Ordering::Relaxed)).then(|| Slot {
            limits: Arc::clone(self),
            key: Key::Site(site),
        })
    }

    /// Connections open from `ip` right now.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        let map = self
            .ips
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&ip).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_address_is_believed_only_from_trusted_proxies() {
        let limits = ConnectionLimits::default();
        let proxy = ip("10.0.0.5");
        let header = forwarded(&["203.0.113.7"]);
        assert_eq!(
            limits.client_ip(proxy, &header),
            proxy,
            "no proxy is trusted by default: the header is ignored"
        );

        limits.set_trusted_proxies(vec![
            "10.0.0.0/24".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        assert_eq!(limits.client_ip(proxy, &header), ip("203.0.113.7"));
        assert_eq!(
            limits.client_ip(ip("198.51.100.9"), &header),
            ip("198.51.100.9"),
            "an untrusted peer's header is ignored"
        );
        // A client that writes its own header cannot choose its address: the right-most
        // entry not written by a trusted proxy counts, past a chain of trusted ones.
        assert_eq!(
            limits.client_ip(proxy, &forwarded(&["1.1.1.1, 203.0.113.7"])),
            ip("203.0.113.7")
        );
        assert_eq!(
            limits.client_ip(proxy, &forwarded(&["1.1.1.1", "203.0.113.7, 10.0.0.9"])),
            ip("203.0.113.7"),
            "several headers read as one list, trusted hops skipped"
        );
        assert_eq!(limits.client_ip(proxy, &HeaderMap::new()), proxy);
        assert_eq!(
            limits.client_ip(proxy, &forwarded(&["203.0.113.7, not-an-address"])),
            proxy,
            "a malformed entry leaves the last address known good"
        );
        assert_eq!(
            limits.client_ip(ip("::1"), &forwarded(&["2001:db8::2"])),
            ip("2001:db8::2")
        );
        assert_eq!(
            limits.client_ip(ip("::ffff:10.0.0.5"), &forwarded(&["::ffff:203.0.113.7"])),
            ip("203.0.113.7"),
            "IPv4 addresses written as IPv6 count as IPv4"
        );
    }

    #[test]
    fn slots_are_counted_and_given_back() {
        let limits = Arc::new(ConnectionLimits::new(2, 3));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = limits.open_ip(ip).expect("first");
        let b = limits.open_ip(ip).expect("second");
        assert!(limits.open_ip(ip).is_none(), "third is over the cap");
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(
            limits.open_ip(other).is_some(),
            "other addresses are unaffected"
        );
        drop(a);
        assert_eq!(limits.open_from(ip), 1);
        let c = limits.open_ip(ip).expect("a slot was given back");
        drop((b, c));
        assert_eq!(limits.open_from(ip), 0);

        let site = Uuid::from_u128(7);
        let slots: Vec<_> = (0..3).filter_map(|_| limits.open_site(site)).collect();
        assert_eq!(slots.len(), 3);
        assert!(limits.open_site(site).is_none());
    }
}
