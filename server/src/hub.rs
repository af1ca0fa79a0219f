//! In-process fan-out of live frames to the connections that want them.
//!
//! Every conversation has a broadcast channel (created on first subscribe, dropped when the
//! last subscriber leaves); every site has one for its agents' inbox. Channels are bounded: a
//! subscriber that falls behind gets `Lagged` and catches up from the store, so a slow
//! consumer never grows server memory.
//!
//! With PostgreSQL, several instances share the database: [`Hub::connect_remote`] hands the
//! hub a queue to [`crate::fanout`], which sends every frame published here (except timeline
//! entries, which the store announces itself when it commits them) to the other instances,
//! and delivers theirs here with the `*_local` methods. With SQLite the hub stays in-process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use nexus_shared::ServerFrame;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// Frames are shared between subscribers, not copied.
pub type Frame = Arc<ServerFrame>;

const CHANNEL_CAPACITY: usize = 64;
/// A site's feed carries every conversation's inbox line to each of its agents: bursts (many
/// conversations escalating at once) are far larger than one conversation's, and an agent
/// that lags reloads its whole inbox from the store.
const SITE_CHANNEL_CAPACITY: usize = 4_096;

#[derive(Default)]
pub struct Hub {
    conversations: Mutex<HashMap<Uuid, broadcast::Sender<Frame>>>,
    sites: Mutex<HashMap<Uuid, broadcast::Sender<Frame>>>,
    remote: OnceLock<mpsc::Sender<Remote>>,
    metrics: crate::metrics::Metrics,
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
        subscribe(&self.conversations, id, CHANNEL_CAPACITY)
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
        publish(&self.conversations, id, frame);
    }

    /// Delivers a frame from another instance to this instance's subscribers only.
    pub fn publish_conversation_local(&self, id: Uuid, frame: Frame) {
        publish(&self.conversations, id, frame);
    }

    pub fn subscribe_site(&self, id: Uuid) -> broadcast::Receiver<Frame> {
        subscribe(&self.sites, id, SITE_CHANNEL_CAPACITY)
    }

    pub fn publish_site(&self, id: Uuid, frame: ServerFrame) {
        let frame = Arc::new(frame);
        self.send_remote(Remote::Site(id, frame.clone()));
        publish(&self.sites, id, frame);
    }

    /// Delivers a frame from another instance to this instance's subscribers only.
    pub fn publish_site_local(&self, id: Uuid, frame: Frame) {
        publish(&self.sites, id, frame);
    }

    /// Sends every frame published from now on to `queue` too (see [`crate::fanout`]).
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
            .is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Conversations someone on this instance follows.
    pub fn followed_conversations(&self) -> Vec<Uuid> {
        lock(&self.conversations)
            .iter()
            .filter(|(_, tx)| tx.receiver_count() > 0)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Live (conversation, site) subscriptions.
    pub fn subscriptions(&self) -> (usize, usize) {
        let count = |map: &Mutex<HashMap<Uuid, broadcast::Sender<Frame>>>| {
            lock(map)
                .values()
                .map(broadcast::Sender::receiver_count)
                .sum()
        };
        (count(&self.conversations), count(&self.sites))
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
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
}
