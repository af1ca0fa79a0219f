//! In-process fan-out of live frames to the connections that want them.
//!
//! Every conversation has a broadcast channel (created on first subscribe, dropped when the
//! last subscriber leaves); every site has one for its agents' inbox. Channels are bounded: a
//! subscriber that falls behind gets `Lagged` and catches up from the store, so a slow
//! consumer never grows server memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use nexus_shared::ServerFrame;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Frames are shared between subscribers, not copied.
pub type Frame = Arc<ServerFrame>;

const CHANNEL_CAPACITY: usize = 64;

#[derive(Default)]
pub struct Hub {
    conversations: Mutex<HashMap<Uuid, broadcast::Sender<Frame>>>,
    sites: Mutex<HashMap<Uuid, broadcast::Sender<Frame>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent (single inserts and
    // removes), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn subscribe(
    map: &Mutex<HashMap<Uuid, broadcast::Sender<Frame>>>,
    id: Uuid,
) -> broadcast::Receiver<Frame> {
    lock(map)
        .entry(id)
        .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
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
        subscribe(&self.conversations, id)
    }

    pub fn publish_conversation(&self, id: Uuid, frame: ServerFrame) {
        publish(&self.conversations, id, Arc::new(frame));
    }

    pub fn subscribe_site(&self, id: Uuid) -> broadcast::Receiver<Frame> {
        subscribe(&self.sites, id)
    }

    pub fn publish_site(&self, id: Uuid, frame: ServerFrame) {
        publish(&self.sites, id, Arc::new(frame));
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
