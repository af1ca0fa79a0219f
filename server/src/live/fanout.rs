//! Cross-instance fan-out over PostgreSQL `LISTEN`/`NOTIFY`, for several server instances
//! sharing one database (no other service needed).
//!
//! - Timeline entries: [`crate::store::postgres::PgStore::commit`] sends, inside its
//!   transaction, a small [`Event::Messages`] (conversation id and the range of sequence
//!   numbers it stored); a group commit sends the events of all its commits together. A listening instance with subscribers to that conversation reads
//!   those entries from the table and publishes them locally. Nothing depends on NOTIFY's size
//!   limit; and since every connection delivers a timeline in sequence order and reads from
//!   the store when it sees a gap (see `Follower` in `ws/driver.rs`), a missed notification costs a
//!   catch-up read, never a lost message.
//! - Every other frame published on an instance (typing, presence, state, queue, inbox
//!   updates, drafts, notes) travels in the notification itself ([`Event::Conversation`],
//!   [`Event::Site`]); a frame too large for a notification is written to `fanout_payloads`
//!   and announced by row id. The frames waiting to be sent are sent together: a notification
//!   holds either one event or a JSON array of events ([`pack`]), so a busy instance sends
//!   few notifications (each takes PostgreSQL's notification lock and a WAL flush).
//! - Agent presence: every instance keeps the presence of the agents connected elsewhere, so
//!   "agents online" (the visitor's welcome, the offline notice) counts the whole team. A
//!   change travels as the `Presence` frame published to the site's agents; besides, each
//!   instance re-announces all its agents every [`crate::live::presence::PresenceBoard::presence_refresh`]
//!   ([`Event::Presence`]), and an announcement not refreshed within
//!   [`crate::live::presence::PresenceBoard::presence_expiry`] no longer counts (a killed instance's
//!   agents drop out). `NEXUS_FLOW_PRESENCE_REFRESH_MS` and `NEXUS_FLOW_PRESENCE_EXPIRY_MS`
//!   override the defaults (15 s and 45 s).
//! - Knowledge-base changes ([`Event::Kb`]) make every instance reload the site's entries into
//!   its engine; ended sessions ([`Event::SessionsEnded`]) close their agent connections here;
//!   settings changes ([`Event::Settings`]) need no action, as settings are read
//!   from the store on use.
//!
//! The listener holds a dedicated connection and reconnects by itself (with backoff); after a
//! reconnect it reloads every site's knowledge base and re-announces the latest entry and the
//! state of each followed conversation, so connections catch up on what happened meanwhile.

use std::sync::Arc;
use std::time::Duration;

use nexus_shared::ServerFrame;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::live::hub::{Hub, Remote};
use crate::live::presence::PresenceBoard;
use crate::model::remote::{Event, MAX_PAYLOAD, pack, unpack};
use crate::store::Store;
use crate::store::postgres::PgStore;
use nexus_engine::AnswerEngine;

/// Stored large payloads are kept this long (milliseconds).
const PAYLOAD_TTL_MS: i64 = 10 * 60 * 1000;
/// Frames waiting to be sent to the other instances (more are dropped while the database is
/// away).
const QUEUE: usize = 1_024;
/// At most this many entries are read for one notification (connections page the rest).
const MAX_READ: u32 = 200;

/// Connects `hub` to the other instances on `pg`'s schema: starts the sender and the
/// listener tasks, and the periodic presence announcement. They stop when `shutdown` flips.
pub fn start(
    pg: Arc<PgStore>,
    hub: Arc<Hub>,
    engine: Arc<dyn AnswerEngine>,
    presence: Arc<PresenceBoard>,
    shutdown: watch::Receiver<bool>,
) {
    let (tx, rx) = mpsc::channel(QUEUE);
    if !hub.connect_remote(tx) {
        tracing::warn!("the hub was already connected to a fan-out");
        return;
    }
    let env_ms = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    };
    presence.set_presence_intervals(
        env_ms("NEXUS_FLOW_PRESENCE_REFRESH_MS").unwrap_or_else(|| presence.presence_refresh()),
        env_ms("NEXUS_FLOW_PRESENCE_EXPIRY_MS").unwrap_or_else(|| presence.presence_expiry()),
    );
    tokio::spawn(send_loop(pg.clone(), hub.clone(), rx));
    tokio::spawn(announce_loop(
        pg.clone(),
        presence.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(listen_loop(pg, hub, engine, presence, shutdown));
}

/// Re-announces this instance's agents, per site, every refresh interval.
async fn announce_loop(
    pg: Arc<PgStore>,
    presence: Arc<PresenceBoard>,
    mut shutdown: watch::Receiver<bool>,
) {
    let origin = pg.instance();
    loop {
        tokio::select! {
            () = tokio::time::sleep(presence.presence_refresh()) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        for (site, agents) in presence.local_snapshot() {
            let event = Event::Presence {
                origin,
                site,
                agents,
            };
            if let Err(e) = send(&pg, &event).await {
                tracing::warn!(error = %e, "fan-out: could not announce agent presence");
                break;
            }
        }
    }
}

/// Frames sent in one go at most.
const SEND_BATCH: usize = 256;

async fn send_loop(pg: Arc<PgStore>, hub: Arc<Hub>, mut rx: mpsc::Receiver<Remote>) {
    let origin = pg.instance();
    let mut batch = Vec::with_capacity(SEND_BATCH);
    while rx.recv_many(&mut batch, SEND_BATCH).await > 0 {
        let mut small = Vec::with_capacity(batch.len());
        for remote in batch.drain(..) {
            let event = match remote {
                Remote::Conversation(conversation, frame) => Event::Conversation {
                    origin,
                    conversation,
                    frame: (*frame).clone(),
                },
                Remote::Site(site, frame) => Event::Site {
                    origin,
                    site,
                    frame: (*frame).clone(),
                },
            };
            if event.to_payload().len() <= MAX_PAYLOAD {
                small.push(event);
            } else if let Err(e) = send(&pg, &event).await {
                tracing::warn!(error = %e, "fan-out: could not notify the other instances");
            } else {
                hub.metrics().fanout_sent();
            }
        }
        if small.is_empty() {
            continue;
        }
        let sent = sqlx::query("SELECT pg_notify($1, payload) FROM UNNEST($2::text[]) AS payload")
            .bind(pg.channel())
            .bind(pack(&small))
            .execute(pg.pool())
            .await;
        match sent {
            Ok(_) => {
                for _ in &small {
                    hub.metrics().fanout_sent();
                }
            }
            // Live frames are best effort across instances while the database is away;
            // timeline entries and state are recovered from the store on reconnect.
            Err(e) => tracing::warn!(error = %e, "fan-out: could not notify the other instances"),
        }
    }
}

async fn send(pg: &PgStore, event: &Event) -> sqlx::Result<()> {
    let payload = event.to_payload();
    let payload = if payload.len() <= MAX_PAYLOAD {
        payload
    } else {
        let now = crate::model::now_ms();
        sqlx::query("DELETE FROM fanout_payloads WHERE created_at < $1")
            .bind(now - PAYLOAD_TTL_MS)
            .execute(pg.pool())
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO fanout_payloads (payload, created_at) VALUES ($1, $2) RETURNING id",
        )
        .bind(&payload)
        .bind(now)
        .fetch_one(pg.pool())
        .await?;
        Event::Stored {
            origin: event.origin(),
            id,
        }
        .to_payload()
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(pg.channel())
        .bind(payload)
        .execute(pg.pool())
        .await?;
    Ok(())
}

async fn listen_loop(
    pg: Arc<PgStore>,
    hub: Arc<Hub>,
    engine: Arc<dyn AnswerEngine>,
    presence: Arc<PresenceBoard>,
    mut shutdown: watch::Receiver<bool>,
) {
    // A pool of one, only for the listener: it never competes with queries for a connection.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(pg.connect_options().clone());
    let mut connected_before = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let listener = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(pg.channel()).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            l = listener => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "fan-out listener cannot connect");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        backoff = Duration::from_millis(100);
        if connected_before {
            tracing::info!("fan-out listener reconnected; catching up");
            hub.metrics().fanout_reconnected();
            catch_up(&pg, &hub, engine.as_ref()).await;
        } else {
            tracing::info!(channel = pg.channel(), "fan-out listener connected");
        }
        connected_before = true;
        loop {
            let next = tokio::select! {
                n = listener.try_recv() => n,
                _ = shutdown.changed() => return,
            };
            match next {
                Ok(Some(notification)) => {
                    handle(
                        &pg,
                        &hub,
                        engine.as_ref(),
                        &presence,
                        notification.payload(),
                    )
                    .await;
                }
                Ok(None) => {
                    tracing::warn!("fan-out listener lost its connection");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fan-out listener error");
                    break;
                }
            }
        }
    }
}

/// Handles one notification.
pub async fn handle(
    pg: &PgStore,
    hub: &Hub,
    engine: &dyn AnswerEngine,
    presence: &PresenceBoard,
    payload: &str,
) {
    let events = match unpack(payload) {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(error = %e, "fan-out: unreadable notification");
            return;
        }
    };
    // The entries announced by consecutive events are read together, in one query: a busy
    // instance announces a whole group commit in one notification, and a read per
    // conversation would make this (serial) listener the bottleneck.
    let mut ranges = Vec::new();
    for event in events {
        match event {
            Event::Messages {
                origin,
                conversation,
                after,
                seq,
            } if origin != pg.instance() => {
                hub.metrics().fanout_received();
                if seq > after && hub.has_conversation_subscribers(conversation) {
                    ranges.push((conversation, after, seq));
                }
            }
            event => {
                deliver_messages(pg, hub, &std::mem::take(&mut ranges)).await;
                handle_event(pg, hub, engine, presence, event).await;
            }
        }
    }
    deliver_messages(pg, hub, &ranges).await;
}

/// Reads the entries `after + 1 ..= seq` of each `(conversation, after, seq)` (at most
/// [`MAX_READ`] of each; connections page the rest) in one query, and publishes them to this
/// instance's subscribers in sequence order.
async fn deliver_messages(pg: &PgStore, hub: &Hub, ranges: &[(Uuid, u64, u64)]) {
    if ranges.is_empty() {
        return;
    }
    match pg.messages_in(ranges, MAX_READ).await {
        Ok(messages) => {
            for message in messages {
                hub.publish_conversation_local(
                    message.conversation_id,
                    Arc::new(ServerFrame::Message(message)),
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "fan-out: cannot read new entries"),
    }
}

async fn handle_event(
    pg: &PgStore,
    hub: &Hub,
    engine: &dyn AnswerEngine,
    presence: &PresenceBoard,
    event: Event,
) {
    if event.origin() == pg.instance() {
        return;
    }
    hub.metrics().fanout_received();
    let event = match event {
        Event::Stored { id, .. } => {
            let payload: Option<String> =
                match sqlx::query_scalar("SELECT payload FROM fanout_payloads WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pg.pool())
                    .await
                {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "fan-out: cannot read a stored payload");
                        return;
                    }
                };
            match payload.and_then(|p| serde_json::from_str::<Event>(&p).ok()) {
                Some(Event::Stored { .. }) | None => return,
                Some(event) => event,
            }
        }
        event => event,
    };
    match event {
        Event::Messages {
            conversation,
            after,
            seq,
            ..
        } => {
            if seq > after && hub.has_conversation_subscribers(conversation) {
                deliver_messages(pg, hub, &[(conversation, after, seq)]).await;
            }
        }
        Event::Conversation {
            conversation,
            frame,
            ..
        } => hub.publish_conversation_local(conversation, Arc::new(frame)),
        Event::Site {
            origin,
            site,
            mut frame,
        } => {
            if let ServerFrame::Presence {
                agent: Some(agent),
                status: Some(status),
                agents_online,
            } = &mut frame
            {
                // Remember the other instance's agent, and tell this instance's agents the
                // count as seen from here.
                presence.remote_set(origin, site, agent.id, *status);
                *agents_online = presence.online(site);
            }
            hub.publish_site_local(site, Arc::new(frame));
        }
        Event::Presence {
            origin,
            site,
            agents,
        } => presence.remote_refresh(origin, site, &agents),
        Event::Kb { site, .. } => reload_kb(pg, engine, site).await,
        Event::Settings { site, .. } => {
            tracing::debug!(%site, "site settings changed on another instance");
        }
        Event::SessionsEnded { ended, .. } => hub.end_sessions(ended),
        Event::Stored { .. } => {}
    }
}

async fn reload_kb(pg: &PgStore, engine: &dyn AnswerEngine, site: Uuid) {
    match pg.knowledge(site).await {
        Ok(entries) => {
            tracing::info!(%site, entries = entries.len(), "knowledge base reloaded (changed on another instance)");
            engine.load_site(site, entries);
        }
        Err(e) => tracing::warn!(error = %e, %site, "fan-out: cannot reload the knowledge base"),
    }
}

/// After the listener was away: reload knowledge bases, and re-announce the latest entry
/// and the state of every followed conversation (connections read what they missed).
async fn catch_up(pg: &PgStore, hub: &Hub, engine: &dyn AnswerEngine) {
    match pg.sites().await {
        Ok(sites) => {
            for site in sites {
                reload_kb(pg, engine, site.id).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "fan-out: cannot list sites"),
    }
    let followed = hub.followed_conversations();
    let mut announced = 0;
    for id in followed {
        let Ok(Some(conversation)) = pg.conversation(id).await else {
            continue;
        };
        if let Ok(mut last) = pg.last_messages(id, 1).await
            && let Some(message) = last.pop()
        {
            announced += 1;
            hub.publish_conversation_local(id, Arc::new(ServerFrame::Message(message)));
        }
        hub.publish_conversation_local(
            id,
            Arc::new(ServerFrame::State {
                conversation_id: id,
                state: conversation.snapshot.state,
                assignee: conversation.snapshot.assignee.clone(),
                reason: conversation.handoff_reason.clone(),
            }),
        );
    }
    hub.metrics().fanout_caught_up(announced);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::remote::{SessionEnd, channel_name};
    use nexus_shared::Presence;

    #[test]
    fn events_are_small_and_round_trip() {
        let event = Event::Messages {
            origin: Uuid::from_u128(1),
            conversation: Uuid::from_u128(2),
            after: 4,
            seq: 6,
        };
        let payload = event.to_payload();
        assert!(payload.len() < 200, "{payload}");
        assert_eq!(serde_json::from_str::<Event>(&payload).unwrap(), event);
    }

    #[test]
    fn ended_sessions_are_pinned_and_round_trip() {
        let token = Event::SessionsEnded {
            origin: Uuid::from_u128(1),
            ended: SessionEnd::Token("ab12".into()),
        };
        assert_eq!(
            token.to_payload(),
            r#"{"k":"end","o":"00000000-0000-0000-0000-000000000001","e":{"t":"ab12"}}"#
        );
        let user = Event::SessionsEnded {
            origin: Uuid::from_u128(1),
            ended: SessionEnd::User(Uuid::from_u128(9)),
        };
        for event in [token, user] {
            let payload = event.to_payload();
            assert_eq!(serde_json::from_str::<Event>(&payload).unwrap(), event);
        }
        assert!(SessionEnd::User(Uuid::from_u128(9)).ends("any", Uuid::from_u128(9)));
        assert!(!SessionEnd::Token("ab12".into()).ends("cd34", Uuid::from_u128(9)));
    }

    #[test]
    fn presence_announcements_round_trip() {
        let event = Event::Presence {
            origin: Uuid::from_u128(1),
            site: Uuid::from_u128(2),
            agents: vec![
                (Uuid::from_u128(3), Presence::Online),
                (Uuid::from_u128(4), Presence::Away),
            ],
        };
        let payload = event.to_payload();
        assert!(payload.len() < 300, "{payload}");
        assert_eq!(serde_json::from_str::<Event>(&payload).unwrap(), event);
    }

    #[test]
    fn packed_events_fit_a_notification_and_unpack_in_order() {
        let events: Vec<Event> = (0..200)
            .map(|i| Event::Messages {
                origin: Uuid::from_u128(1),
                conversation: Uuid::from_u128(i),
                after: 0,
                seq: 1,
            })
            .collect();
        let payloads = pack(&events);
        assert!(payloads.len() > 1, "200 events do not fit one notification");
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let unpacked: Vec<Event> = payloads.iter().flat_map(|p| unpack(p).unwrap()).collect();
        assert_eq!(unpacked, events);
        // A single event, as older instances send it, still reads.
        assert_eq!(
            unpack(&events[0].to_payload()).unwrap(),
            vec![events[0].clone()]
        );
        assert!(pack(&[]).is_empty());
    }

    #[test]
    fn channel_names_are_safe_identifiers() {
        assert_eq!(channel_name("public"), "nexus_flow_public");
        assert_eq!(channel_name("T-1\"x"), "nexus_flow_t_1_x");
        assert!(channel_name(&"s".repeat(100)).len() <= 63);
    }
}
