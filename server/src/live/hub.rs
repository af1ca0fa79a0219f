//! In-process fan-out of live frames to the connections that want them.
//!
//! Every conversation has a broadcast channel (created on first subscribe, dropped when the
//! last subscriber leaves); every site has one for what all its agents get (notes, drafts,
//! presence, typing). A site's inbox lines (`conversation` frames) do not go on that channel:
//! they update the site's [`Inbox`], which sends each agent only what its views show.
//! Channels are bounded: a subscriber that falls behind gets `Lagged` and catches up from the
//! store, so a slow consumer never grows server memory.
//!
//! With PostgreSQL, several instances share the database: [`Hub::connect_remote`] hands the
//! hub a queue to [`crate::live::fanout`], which sends every frame published here (except timeline
//! entries, which the store announces itself when it commits them) to the other instances,
//! and delivers theirs here with the `*_local` methods. With SQLite the hub stays in-process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use nexus_shared::{ConversationState, ServerFrame};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::live::inbox::Inbox;
use crate::model::remote::SessionEnd;

/// Frames are shared between subscribers, not copied.
pub type Frame = Arc<ServerFrame>;

const CHANNEL_CAPACITY: usize = 64;
/// A site's feed carries what every agent of the site gets (notes, drafts, presence, typing);
/// an agent that lags gets its inbox views whole again.
const SITE_CHANNEL_CAPACITY: usize = 4_096;

#[derive(Default)]
pub struct Hub {
    conversations: Mutex<HashMap<Uuid, ConversationChannel>>,
    sites: Mutex<HashMap<Uuid, broadcast::Sender<Frame>>>,
    inbox: Inbox,
    remote: OnceLock<mpsc::Sender<Remote>>,
    metrics: crate::live::metrics::Metrics,
    /// Sessions that ended (logout, password change), for the agent connections on this
    /// instance; created on first subscribe.
    ended: Mutex<Option<broadcast::Sender<Arc<SessionEnd>>>>,
}

/// A conversation's channel, and its state as the last `state` frame sent on it said.
///
/// The state gates the AI's streamed text: a takeover's `state` frame and a streamed chunk are
/// sent under the same lock, so once the visitor has been told a person has the conversation,
/// no chunk of an answer still being produced follows it, however the two race.
struct ConversationChannel {
    tx: broadcast::Sender<Frame>,
    state: Option<ConversationState>,
}

/// A frame published on this instance, for the other instances.
#[derive(Debug, Clone)]
pub enum Remote {
    Conversation(Uuid, Frame),
    Site(Uuid, Frame),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent (single inserts and
    // removes), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn subscribe(
    map: &Mutex<HashMap<Uuid, broadcast::Sender<Frame>>>,
    id: Uuid,
    capacity: usize,
) -> broadcast::Receiver<Frame> {
    lock(map)
        .entry(id)
        .or_insert_with(|| broadcast::channel(capacity).0)
        .subscribe()
}

fn publish_in_conversation(
    map: &Mutex<HashMap<Uuid, ConversationChannel>>,
    id: Uuid,
    frame: Frame,
) {
    let mut map = lock(map);
    let Some(channel) = map.get_mut(&id) else {
        return;
    };
    match &*frame {
        ServerFrame::State { state, .. } => channel.state = Some(*state),
        ServerFrame::Streaming(_)
            if channel
                .state
                .is_some_and(|state| state != ConversationState::Ai) =>
        {
            return;
        }
        _ => {}
    }
    if channel.tx.send(frame).is_err() {
        // Nobody listens any more.
        map.remove(&id);
    }
}

fn publish(map: &Mutex<HashMap<Uuid, broadcast::Sender<Frame>>>, id: Uuid, frame: Frame) {
    let mut map = lock(map);
    if let Some(tx) = map.get(&id)
        && tx.send(frame).is_err()
    {
        // Nobody listens any more.
        map.remove(&id);
    }
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn subscribe_conversation(&self, id: Uuid) -> broadcast::Receiver<Frame> {
        lock(&self.conversations)
            .entry(id)
            .or_insert_with(|| ConversationChannel {
                tx: broadcast::channel(CHANNEL_CAPACITY).0,
                state: None,
            })
            .tx
            .subscribe()
    }

    pub fn publish_conversation(&self, id: Uuid, frame: ServerFrame) {
        let frame = Arc::new(frame);
        if let ServerFrame::Message(message) = &*frame {
            // Counted once, here, on the instance that stored it; the store announces it to
            // the other instances when it commits.
            self.metrics.message(message);
        } else {
            self.send_remote(Remote::Conversation(id, frame.clone()));
        }
        publish_in_conversation(&self.conversations, id, frame);
    }

    /// Delivers a frame from another instance to this instance's subscribers only.
    pub fn publish_conversation_local(&self, id: Uuid, frame: Frame) {
        publish_in_conversation(&self.conversations, id, frame);
    }

    pub fn subscribe_site(&self, id: Uuid) -> broadcast::Receiver<Frame> {
        subscribe(&self.sites, id, SITE_CHANNEL_CAPACITY)
    }

    pub fn publish_site(&self, id: Uuid, frame: ServerFrame) {
        let frame = Arc::new(frame);
        self.send_remote(Remote::Site(id, frame.clone()));
        self.deliver_site(id, frame);
    }

    /// Delivers a frame from another instance to this instance's subscribers only.
    pub fn publish_site_local(&self, id: Uuid, frame: Frame) {
        self.deliver_site(id, frame);
    }

    /// An inbox line updates the site's inbox; every other frame goes to all its agents.
    fn deliver_site(&self, id: Uuid, frame: Frame) {
        if let ServerFrame::Conversation(line) = &*frame {
            self.inbox.publish(id, line);
        } else {
            publish(&self.sites, id, frame);
        }
    }

    /// The agents' inbox views, kept up to date by the site lines published here.
    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Tells this instance's agent connections that sessions ended; theirs close at once. The
    /// other instances hear it from the store, which announces every deleted session.
    pub fn end_sessions(&self, ended: SessionEnd) {
        if let Some(tx) = lock(&self.ended).as_ref() {
            let _ = tx.send(Arc::new(ended));
        }
    }

    /// Ended sessions from now on (a receiver that lags must re-check its session).
    pub fn subscribe_session_ends(&self) -> broadcast::Receiver<Arc<SessionEnd>> {
        lock(&self.ended)
            .get_or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Sends every frame published from now on to `queue` too (see [`crate::live::fanout`]).
    /// Returns false when a queue was connected before.
    pub fn connect_remote(&self, queue: mpsc::Sender<Remote>) -> bool {
        self.remote.set(queue).is_ok()
    }

    fn send_remote(&self, remote: Remote) {
        // Bounded: while the database is away, live frames (typing and the like) beyond the
        // queue are dropped; timeline entries and state are recovered from the store.
        if let Some(queue) = self.remote.get()
            && queue.try_send(remote).is_err()
        {
            tracing::debug!("fan-out queue full: a live frame stays on this instance");
        }
    }

    /// Does anyone on this instance follow the conversation?
    pub fn has_conversation_subscribers(&self, id: Uuid) -> bool {
        lock(&self.conversations)
            .get(&id)
            .is_some_and(|c| c.tx.receiver_count() > 0)
    }

    /// Conversations someone on this instance follows.
    pub fn followed_conversations(&self) -> Vec<Uuid> {
        lock(&self.conversations)
            .iter()
            .filter(|(_, c)| c.tx.receiver_count() > 0)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Live (conversation, site) subscriptions.
    pub fn subscriptions(&self) -> (usize, usize) {
        let conversations = lock(&self.conversations)
            .values()
            .map(|c| c.tx.receiver_count())
            .sum();
        let sites = lock(&self.sites)
            .values()
            .map(broadcast::Sender::receiver_count)
            .sum();
        (conversations, sites)
    }

    pub fn metrics(&self) -> &crate::live::metrics::Metrics {
        &self.metrics
    }

    /// Number of conversations with live subscribers (for metrics and tests).
    pub fn live_conversations(&self) -> usize {
        lock(&self.conversations).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_frames_and_empty_channels_are_dropped() {
        let hub = Hub::new();
        let id = Uuid::from_u128(1);
        let mut rx = hub.subscribe_conversation(id);
        hub.publish_conversation(id, ServerFrame::Pong);
        assert_eq!(*rx.recv().await.unwrap(), ServerFrame::Pong);
        drop(rx);
        hub.publish_conversation(id, ServerFrame::Pong);
        assert_eq!(hub.live_conversations(), 0);
    }

    fn state(id: Uuid, state: ConversationState) -> ServerFrame {
        ServerFrame::State {
            conversation_id: id,
            state,
            assignee: None,
            reason: None,
        }
    }

    fn chunk(id: Uuid, text: &str) -> ServerFrame {
        ServerFrame::Streaming(nexus_shared::Streaming {
            conversation_id: id,
            text: text.into(),
        })
    }

    #[tokio::test]
    async fn no_streamed_ai_text_follows_a_takeover() {
        let hub = Hub::new();
        let id = Uuid::from_u128(2);
        let mut rx = hub.subscribe_conversation(id);
        hub.publish_conversation(id, chunk(id, "Our opening"));
        hub.publish_conversation(id, state(id, ConversationState::Human));
        // The answer's producer checked the state before the takeover and sends on.
        hub.publish_conversation(id, chunk(id, "Our opening hours are"));
        hub.publish_conversation_local(id, Arc::new(chunk(id, "Our opening hours are 9")));
        hub.publish_conversation(id, ServerFrame::Pong);
        // Handed back: the AI may speak again.
        hub.publish_conversation(id, state(id, ConversationState::Ai));
        hub.publish_conversation(id, chunk(id, "Hello again"));

        let mut seen = Vec::new();
        while let Ok(frame) = rx.try_recv() {
            seen.push((*frame).clone());
        }
        assert_eq!(
            seen,
            vec![
                chunk(id, "Our opening"),
                state(id, ConversationState::Human),
                ServerFrame::Pong,
                state(id, ConversationState::Ai),
                chunk(id, "Hello again"),
            ]
        );
    }
}
