//! Caps on concurrent WebSocket connections: per client IP address and per site.
//!
//! A connection takes a [`Slot`] for its IP address before `hello` and one for its site after;
//! dropping the slot gives it back. A connection over a cap is told `too_many_connections` and
//! closed; the connections already open are not touched.
//!
//! The IP address is the TCP peer's: behind a reverse proxy every visitor shares the proxy's
//! address, so raise the per-IP cap there (or put the cap in the proxy).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

/// Connections one IP address may hold open at once.
pub const MAX_CONNECTIONS_PER_IP: u32 = 50;
/// Connections (visitors and agents) one site may hold open at once.
pub const MAX_CONNECTIONS_PER_SITE: u32 = 10_000;

/// Counts of open connections, and the caps they are checked against.
pub struct ConnectionLimits {
    per_ip: AtomicU32,
    per_site: AtomicU32,
    ips: Mutex<HashMap<IpAddr, u32>>,
    sites: Mutex<HashMap<Uuid, u32>>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::new(MAX_CONNECTIONS_PER_IP, MAX_CONNECTIONS_PER_SITE)
    }
}

enum Key {
    Ip(IpAddr),
    Site(Uuid),
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
            ips: Mutex::default(),
            sites: Mutex::default(),
        }
    }

    /// Changes the per-IP cap; connections already open stay open.
    pub fn set_per_ip(&self, cap: u32) {
        self.per_ip.store(cap, Ordering::Relaxed);
    }

    /// Changes the per-site cap; connections already open stay open.
    pub fn set_per_site(&self, cap: u32) {
        self.per_site.store(cap, Ordering::Relaxed);
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
