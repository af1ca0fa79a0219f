//! Who of a site's team is online: connections per agent, idle agents shown as away, the
//! announcements of other instances, round-robin order for auto-assignment.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nexus_shared::{AgentRef, Presence, ServerFrame};
use uuid::Uuid;

use crate::AppState;
use crate::model::User;

/// How long an agent may be idle (no frame, not even a ping) before they show as away.
pub const DEFAULT_IDLE_AWAY: Duration = Duration::from_secs(5 * 60);

/// How often an instance re-announces its agents' presence to the other instances.
pub const DEFAULT_PRESENCE_REFRESH: Duration = Duration::from_secs(15);
/// How long another instance's announcement counts when it is not refreshed (so the agents of
/// a killed instance drop out).
pub const DEFAULT_PRESENCE_EXPIRY: Duration = Duration::from_secs(45);

/// Who is online, per site. An agent is online while at least one of their connections is
/// open and they have not set themselves away; an agent idle for the idle time (see
/// [`PresenceBoard::set_idle_after`]) shows as away until their next activity.
///
/// With several instances on one PostgreSQL database, the board also holds the agents other
/// instances announce (see [`crate::live::fanout`]): [`PresenceBoard::online`] counts an agent online
/// here or in an unexpired announcement, once. Round-robin auto-assignment
/// ([`PresenceBoard::next_online`]) stays among this instance's own agents.
#[derive(Default)]
pub struct PresenceBoard {
    sites: Mutex<HashMap<Uuid, SiteAgents>>,
    /// Agents announced by other instances, per site.
    remote: Mutex<HashMap<Uuid, RemoteAgents>>,
    /// The re-announcement interval in milliseconds; 0 means [`DEFAULT_PRESENCE_REFRESH`].
    refresh_ms: AtomicU64,
    /// The expiry of announcements in milliseconds; 0 means [`DEFAULT_PRESENCE_EXPIRY`].
    expiry_ms: AtomicU64,
    /// The agent who got the last auto-assigned conversation, per site (round robin).
    last_assigned: Mutex<HashMap<Uuid, Uuid>>,
    /// The idle time in milliseconds; 0 means [`DEFAULT_IDLE_AWAY`].
    idle_after_ms: AtomicU64,
    /// Whether the idle sweeper runs.
    sweeper: AtomicBool,
}

/// One agent of a site on the board.
struct AgentPresence {
    agent: AgentRef,
    status: Presence,
    /// Open connections.
    connections: u32,
    last_active: Instant,
    /// Away because idle, not by choice: activity brings them back online.
    idle: bool,
}

type SiteAgents = HashMap<Uuid, AgentPresence>;

/// Agents of a site announced by other instances: (instance, agent) → (status, when heard).
type RemoteAgents = HashMap<(Uuid, Uuid), (Presence, Instant)>;

impl PresenceBoard {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<Uuid, SiteAgents>) -> R) -> R {
        let mut map = self
            .sites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }

    /// A connection of `agent` opened.
    pub fn connect(&self, site: Uuid, agent: &AgentRef) -> Presence {
        self.with(|sites| {
            let entry = sites
                .entry(site)
                .or_default()
                .entry(agent.id)
                .or_insert(AgentPresence {
                    agent: agent.clone(),
                    status: Presence::Online,
                    connections: 0,
                    last_active: Instant::now(),
                    idle: false,
                });
            entry.connections += 1;
            entry.last_active = Instant::now();
            if entry.connections == 1 || entry.idle {
                entry.status = Presence::Online;
                entry.idle = false;
            }
            entry.status
        })
    }

    /// A connection of `agent` closed; returns the agent's presence after it.
    pub fn disconnect(&self, site: Uuid, agent: Uuid) -> Presence {
        self.with(|sites| {
            let Some(agents) = sites.get_mut(&site) else {
                return Presence::Offline;
            };
            let Some(entry) = agents.get_mut(&agent) else {
                return Presence::Offline;
            };
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections == 0 {
                agents.remove(&agent);
                Presence::Offline
            } else {
                entry.status
            }
        })
    }

    /// The agent chose a status.
    pub fn set(&self, site: Uuid, agent: Uuid, status: Presence) {
        self.with(|sites| {
            if let Some(entry) = sites.get_mut(&site).and_then(|a| a.get_mut(&agent)) {
                entry.status = status;
                entry.idle = false;
                entry.last_active = Instant::now();
            }
        });
    }

    /// Agents of the site online on this instance or, per an unexpired announcement, on
    /// another one; an agent connected to several instances counts once.
    pub fn online(&self, site: Uuid) -> u32 {
        let mut online: std::collections::HashSet<Uuid> = self.with(|sites| {
            sites.get(&site).map_or_else(Default::default, |agents| {
                agents
                    .values()
                    .filter(|a| a.status == Presence::Online)
                    .map(|a| a.agent.id)
                    .collect()
            })
        });
        let expiry = self.presence_expiry();
        let now = Instant::now();
        if let Some(remote) = self.remote_lock().get(&site) {
            online.extend(
                remote
                    .iter()
                    .filter(|(_, (status, heard))| {
                        *status == Presence::Online
                            && now.saturating_duration_since(*heard) < expiry
                    })
                    .map(|((_, agent), _)| *agent),
            );
        }
        u32::try_from(online.len()).unwrap_or(u32::MAX)
    }

    fn remote_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, RemoteAgents>> {
        self.remote
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Another instance announced an agent's presence (`Offline` removes it).
    pub fn remote_set(&self, instance: Uuid, site: Uuid, agent: Uuid, status: Presence) {
        let mut remote = self.remote_lock();
        let agents = remote.entry(site).or_default();
        if status == Presence::Offline {
            agents.remove(&(instance, agent));
        } else {
            agents.insert((instance, agent), (status, Instant::now()));
        }
    }

    /// Another instance re-announced all its agents of a site: they replace what it said
    /// before. Expired entries of every instance are dropped on the way.
    pub fn remote_refresh(&self, instance: Uuid, site: Uuid, agents: &[(Uuid, Presence)]) {
        let expiry = self.presence_expiry();
        let now = Instant::now();
        let mut remote = self.remote_lock();
        let entries = remote.entry(site).or_default();
        entries.retain(|(from, _), (_, heard)| {
            *from != instance && now.saturating_duration_since(*heard) < expiry
        });
        for (agent, status) in agents {
            if *status != Presence::Offline {
                entries.insert((instance, *agent), (*status, now));
            }
        }
        remote.retain(|_, entries| !entries.is_empty());
    }

    /// This instance's agents per site, with their status (what it announces).
    pub fn local_snapshot(&self) -> Vec<(Uuid, Vec<(Uuid, Presence)>)> {
        self.with(|sites| {
            sites
                .iter()
                .filter(|(_, agents)| !agents.is_empty())
                .map(|(site, agents)| {
                    let list = agents.values().map(|a| (a.agent.id, a.status)).collect();
                    (*site, list)
                })
                .collect()
        })
    }

    /// Sets how often this instance re-announces its agents and how long another instance's
    /// announcement counts without a refresh.
    pub fn set_presence_intervals(&self, refresh: Duration, expiry: Duration) {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        self.refresh_ms.store(ms(refresh), Ordering::Relaxed);
        self.expiry_ms.store(ms(expiry), Ordering::Relaxed);
    }

    pub fn presence_refresh(&self) -> Duration {
        match self.refresh_ms.load(Ordering::Relaxed) {
            0 => DEFAULT_PRESENCE_REFRESH,
            ms => Duration::from_millis(ms),
        }
    }

    pub fn presence_expiry(&self) -> Duration {
        match self.expiry_ms.load(Ordering::Relaxed) {
            0 => DEFAULT_PRESENCE_EXPIRY,
            ms => Duration::from_millis(ms),
        }
    }

    /// The agent did something (any frame, a ping included). Returns `Online` when this
    /// brings them back from idle away.
    pub fn touch(&self, site: Uuid, agent: Uuid) -> Option<Presence> {
        self.with(|sites| {
            let entry = sites.get_mut(&site)?.get_mut(&agent)?;
            entry.last_active = Instant::now();
            if entry.idle {
                entry.idle = false;
                entry.status = Presence::Online;
                return Some(Presence::Online);
            }
            None
        })
    }

    /// Sets how long an agent may be idle before they show as away.
    pub fn set_idle_after(&self, idle: Duration) {
        let ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX).max(1);
        self.idle_after_ms.store(ms, Ordering::Relaxed);
    }

    pub fn idle_after(&self) -> Duration {
        match self.idle_after_ms.load(Ordering::Relaxed) {
            0 => DEFAULT_IDLE_AWAY,
            ms => Duration::from_millis(ms),
        }
    }

    /// Marks online agents idle for longer than the idle time as away; returns them.
    pub fn sweep_idle(&self, now: Instant) -> Vec<(Uuid, AgentRef)> {
        let idle_after = self.idle_after();
        self.with(|sites| {
            let mut gone = Vec::new();
            for (site, agents) in sites.iter_mut() {
                for entry in agents.values_mut() {
                    if entry.status == Presence::Online
                        && now.saturating_duration_since(entry.last_active) >= idle_after
                    {
                        entry.status = Presence::Away;
                        entry.idle = true;
                        gone.push((*site, entry.agent.clone()));
                    }
                }
            }
            gone
        })
    }

    /// The next online agent of the site in round-robin order (by id), remembered as the
    /// last one assigned. Only this instance's agents take part: agents connected to other
    /// instances count as online (see [`PresenceBoard::online`]) but are not auto-assigned
    /// from here.
    pub fn next_online(&self, site: Uuid) -> Option<AgentRef> {
        let mut online: Vec<AgentRef> = self.with(|sites| {
            sites.get(&site).map_or_else(Vec::new, |agents| {
                agents
                    .values()
                    .filter(|a| a.status == Presence::Online)
                    .map(|a| a.agent.clone())
                    .collect()
            })
        });
        online.sort_by_key(|a| a.id);
        let mut last = self
            .last_assigned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = match last.get(&site) {
            Some(previous) => online
                .iter()
                .find(|a| a.id > *previous)
                .or_else(|| online.first()),
            None => online.first(),
        }?
        .clone();
        last.insert(site, next.id);
        Some(next)
    }
}

/// Records an agent's activity; an agent back from idle shows as online again.
pub fn touch(state: &AppState, user: &User) {
    if let Some(status) = state.presence.touch(user.site_id, user.id) {
        publish_presence(state, user.site_id, &user.agent_ref(), status);
    }
}

/// Starts (once) the task that turns idle agents away.
pub fn start_idle_sweeper(state: &AppState) {
    if state.presence.sweeper.swap(true, Ordering::SeqCst) {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        loop {
            let tick = (state.presence.idle_after() / 4)
                .clamp(Duration::from_millis(50), Duration::from_secs(5));
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            for (site, agent) in state.presence.sweep_idle(Instant::now()) {
                tracing::debug!(agent = %agent.id, "idle agent shown as away");
                publish_presence(&state, site, &agent, Presence::Away);
            }
        }
    });
}

/// Tells the site's agents about a presence change.
pub fn publish_presence(state: &AppState, site: Uuid, agent: &AgentRef, status: Presence) {
    state.hub.publish_site(
        site,
        ServerFrame::Presence {
            agent: Some(agent.clone()),
            status: Some(status),
            agents_online: state.presence.online(site),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(n: u128, name: &str) -> AgentRef {
        AgentRef {
            id: Uuid::from_u128(n),
            name: name.into(),
        }
    }

    #[test]
    fn round_robin_skips_away_and_disconnected_agents() {
        let board = PresenceBoard::default();
        let site = Uuid::from_u128(100);
        let (a, b, c) = (agent(1, "a"), agent(2, "b"), agent(3, "c"));
        for x in [&c, &a, &b] {
            board.connect(site, x);
        }
        let names = |n: usize| {
            (0..n)
                .map(|_| board.next_online(site).unwrap().name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(4), ["a", "b", "c", "a"]);
        board.set(site, b.id, Presence::Away);
        assert_eq!(names(3), ["c", "a", "c"]);
        board.disconnect(site, c.id);
        assert_eq!(names(2), ["a", "a"]);
        board.set(site, a.id, Presence::Away);
        assert_eq!(board.next_online(site), None);
        assert_eq!(board.next_online(Uuid::from_u128(999)), None, "other sites");
    }

    #[test]
    fn remote_agents_count_once_until_their_announcement_expires() {
        let board = PresenceBoard::default();
        let site = Uuid::from_u128(100);
        let (here, there) = (Uuid::from_u128(7), Uuid::from_u128(8));
        let (a, b) = (agent(1, "a"), agent(2, "b"));
        board.set_presence_intervals(Duration::from_millis(10), Duration::from_millis(200));
        board.connect(site, &a);
        board.remote_set(here, site, a.id, Presence::Online);
        board.remote_set(there, site, a.id, Presence::Online);
        assert_eq!(board.online(site), 1, "one agent on three instances");
        board.remote_set(there, site, b.id, Presence::Away);
        assert_eq!(board.online(site), 1, "away agents do not count");
        board.remote_refresh(there, site, &[(b.id, Presence::Online)]);
        assert_eq!(board.online(site), 2);
        assert_eq!(board.online(Uuid::from_u128(999)), 0, "other sites");
        assert_eq!(
            board.next_online(site),
            Some(a.clone()),
            "assignment stays local"
        );
        board.remote_set(there, site, b.id, Presence::Offline);
        assert_eq!(board.online(site), 1);
        board.remote_set(there, site, b.id, Presence::Online);
        board.disconnect(site, a.id);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(board.online(site), 0, "announcements expired");
    }

    #[test]
    fn idle_agents_go_away_and_come_back_on_activity_but_a_chosen_away_stays() {
        let board = PresenceBoard::default();
        let site = Uuid::from_u128(100);
        let (a, b) = (agent(1, "a"), agent(2, "b"));
        board.connect(site, &a);
        board.connect(site, &b);
        board.set(site, b.id, Presence::Away);
        board.set_idle_after(Duration::from_secs(60));
        let later = Instant::now() + Duration::from_secs(61);
        assert!(board.sweep_idle(Instant::now()).is_empty(), "not idle yet");
        let gone = board.sweep_idle(later);
        assert_eq!(
            gone,
            vec![(site, a.clone())],
            "only the online agent goes away"
        );
        assert_eq!(board.online(site), 0);
        assert!(board.sweep_idle(later).is_empty(), "reported once");
        assert_eq!(board.touch(site, a.id), Some(Presence::Online));
        assert_eq!(board.online(site), 1);
        assert_eq!(board.touch(site, b.id), None, "away by choice stays away");
        assert_eq!(board.online(site), 1);
    }
}
