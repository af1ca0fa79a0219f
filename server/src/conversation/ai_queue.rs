//! The AI's work queue: bounded, and every question has a deadline.
//!
//! A visitor's question in an `ai` conversation takes one of [`AiQueue::capacity`] slots for
//! its whole AI turn (policy, engine, posting). When every slot is taken, the question is not
//! queued behind the others: the conversation goes to a person at once with
//! [`HandoffReason::EngineBusy`](nexus_shared::HandoffReason::EngineBusy) ("it's busy, a person
//! will answer"). An admitted question whose engine work has not finished by its deadline
//! ([`AiQueue::deadline`] after the question was stored) is handed over the same way and its
//! work is dropped: the engine's embedding threads skip questions nobody waits for, so the
//! backlog ends with the load. Either way the visitor's message is already stored and acked;
//! nothing is lost. `/metrics` counts both (`nexus_ai_busy_total{cause}`) and shows the slots
//! in use (`nexus_ai_in_flight`).
//!
//! The engine's CPU work runs on its own threads (the embedding model's batcher in
//! `nexus-engine`, at most two), never on the tokio workers that serve the sockets, so human
//! traffic keeps its latency while the AI is saturated.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// AI turns in flight at once, by default: about half a second of work for the embedded
/// engine on two cores, so an admitted question is answered well within its deadline.
pub const DEFAULT_CAPACITY: usize = 256;
/// How long an admitted question may wait for the engine, by default.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(2_000);

/// Why a question was handed over as busy (the `cause` label of `nexus_ai_busy_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Every slot was taken when the question arrived.
    QueueFull,
    /// The engine had not decided by the question's deadline.
    Deadline,
}

impl Busy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Deadline => "deadline",
        }
    }
}

/// The slots of AI turns (see the module docs).
#[derive(Debug)]
pub struct AiQueue {
    slots: Arc<Semaphore>,
    capacity: usize,
    deadline: Duration,
}

/// One admitted AI turn: holds its slot until dropped.
#[derive(Debug)]
pub struct Turn {
    _slot: OwnedSemaphorePermit,
    /// When the engine's answer is no longer worth waiting for.
    pub deadline: tokio::time::Instant,
}

impl Default for AiQueue {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_DEADLINE)
    }
}

impl AiQueue {
    /// `capacity` turns at once (at least one), each with `deadline` for the engine.
    pub fn new(capacity: usize, deadline: Duration) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            deadline,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Turns in flight now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.slots.available_permits().min(self.capacity)
    }

    /// A slot for a question stored now, or `None` when every slot is taken.
    pub fn try_admit(&self) -> Option<Turn> {
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        Some(Turn {
            _slot: slot,
            deadline: tokio::time::Instant::now() + self.deadline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_are_bounded_and_come_back_when_a_turn_ends() {
        let queue = AiQueue::new(2, Duration::from_secs(1));
        let a = queue.try_admit().expect("first slot");
        let _b = queue.try_admit().expect("second slot");
        assert!(queue.try_admit().is_none(), "a third question is refused");
        assert_eq!(queue.in_flight(), 2);
        drop(a);
        assert_eq!(queue.in_flight(), 1);
        assert!(queue.try_admit().is_some(), "a freed slot is used again");
    }
}
