//! The counters behind `GET /metrics` ([`crate::http::metrics`]), rendered in the text exposition format (version 0.0.4).
//!
//! Counted where frames are published (see [`crate::live::hub`]), so every code path that delivers
//! a message is counted once, on the instance that produced it: timeline entries by author,
//! escalations by reason, the time from a visitor's message to the AI's reply (a histogram of
//! the engine's latency as visitors feel it), questions handed over because the AI was busy
//! and its queue's slots, live subscriptions, the cross-instance fan-out, and the database
//! pool.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nexus_shared::{Author, Message, Transition};
use uuid::Uuid;

/// Upper bounds (seconds) of the reply latency histogram.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Visitor messages still waiting for an AI reply are forgotten after this many entries
/// (conversations handed to people never get one).
const MAX_PENDING: usize = 10_000;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Default)]
pub struct Metrics {
    messages: Mutex<BTreeMap<&'static str, u64>>,
    escalations: Mutex<BTreeMap<String, u64>>,
    reply_latency: Mutex<Histogram>,
    pending: Mutex<HashMap<Uuid, Instant>>,
    fanout_sent: AtomicU64,
    fanout_received: AtomicU64,
    fanout_reconnects: AtomicU64,
    fanout_catch_up: AtomicU64,
    ai_busy_queue_full: AtomicU64,
    ai_busy_deadline: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// Counts a timeline entry produced on this instance.
    pub fn message(&self, message: &Message) {
        *lock(&self.messages)
            .entry(message.author.kind())
            .or_default() += 1;
        if let Some(change) = &message.event
            && let Transition::Escalated { reason } = &change.cause
        {
            *lock(&self.escalations)
                .entry(reason.code().to_owned())
                .or_default() += 1;
        }
        match &message.author {
            Author::Visitor => {
                let mut pending = lock(&self.pending);
                if pending.len() >= MAX_PENDING {
                    pending.clear();
                }
                pending.insert(message.conversation_id, Instant::now());
            }
            Author::Ai => {
                if let Some(since) = lock(&self.pending).remove(&message.conversation_id) {
                    lock(&self.reply_latency).observe(since.elapsed().as_secs_f64());
                }
            }
            _ => {}
        }
    }

    /// Counts a question handed over because the AI was busy: every slot of its queue was
    /// taken (`deadline == false`) or the engine missed the question's deadline.
    pub fn ai_busy(&self, deadline: bool) {
        let counter = if deadline {
            &self.ai_busy_deadline
        } else {
            &self.ai_busy_queue_full
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fanout_sent(&self) {
        self.fanout_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fanout_received(&self) {
        self.fanout_received.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fanout_reconnected(&self) {
        self.fanout_reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fanout_caught_up(&self, conversations: usize) {
        self.fanout_catch_up
            .fetch_add(conversations as u64, Ordering::Relaxed);
    }

    /// The exposition text. `subscriptions` = live (conversation, site) subscriptions;
    /// `pool` = (open, idle) database connections; `ai` = (turns in flight, capacity) of the
    /// AI's work queue.
    pub fn render(
        &self,
        backend: &str,
        subscriptions: (usize, usize),
        pool: Option<(u32, usize)>,
        ai: (usize, usize),
    ) -> String {
        let mut out = String::new();
        let n = family(
            &mut out,
            "nexus_ws_subscriptions",
            "gauge",
            "Live WebSocket subscriptions on this instance (visitor and agent connections).",
        );
        out.push_str(&format!(
            "{n}{{kind=\"conversation\"}} {}\n{n}{{kind=\"site\"}} {}\n",
            subscriptions.0, subscriptions.1
        ));

        let n = family(
            &mut out,
            "nexus_messages_total",
            "counter",
            "Timeline entries stored by this instance, by author.",
        );
        let messages = lock(&self.messages).clone();
        for kind in ["visitor", "ai", "agent", "system"] {
            let value = messages.get(kind).copied().unwrap_or(0);
            out.push_str(&format!("{n}{{author=\"{kind}\"}} {value}\n"));
        }

        let n = family(
            &mut out,
            "nexus_escalations_total",
            "counter",
            "Conversations handed to people by this instance, by reason.",
        );
        for (reason, value) in lock(&self.escalations).iter() {
            out.push_str(&format!("{n}{{reason=\"{}\"}} {value}\n", escape(reason)));
        }

        let n = family(
            &mut out,
            "nexus_ai_reply_seconds",
            "histogram",
            "Time from a visitor's message to the AI's reply (engine latency as felt).",
        );
        {
            let h = lock(&self.reply_latency);
            for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                out.push_str(&format!("{n}_bucket{{le=\"{bound}\"}} {count}\n"));
            }
            out.push_str(&format!("{n}_bucket{{le=\"+Inf\"}} {}\n", h.count));
            out.push_str(&format!("{n}_sum {}\n{n}_count {}\n", h.sum, h.count));
        }

        let n = family(
            &mut out,
            "nexus_ai_busy_total",
            "counter",
            "Questions handed to people because the AI was busy (reason engine_busy), by cause: every slot of its queue taken, or its deadline missed.",
        );
        out.push_str(&format!(
            "{n}{{cause=\"queue_full\"}} {}\n{n}{{cause=\"deadline\"}} {}\n",
            self.ai_busy_queue_full.load(Ordering::Relaxed),
            self.ai_busy_deadline.load(Ordering::Relaxed)
        ));
        let n = family(
            &mut out,
            "nexus_ai_in_flight",
            "gauge",
            "AI turns in flight (each holds a slot of the AI's work queue).",
        );
        out.push_str(&format!("{n} {}\n", ai.0));
        let n = family(
            &mut out,
            "nexus_ai_queue_capacity",
            "gauge",
            "Slots of the AI's work queue: past them, questions go to people as engine_busy.",
        );
        out.push_str(&format!("{n} {}\n", ai.1));

        let n = family(
            &mut out,
            "nexus_fanout_notifications_total",
            "counter",
            "Cross-instance notifications (PostgreSQL LISTEN/NOTIFY), by direction.",
        );
        out.push_str(&format!(
            "{n}{{direction=\"sent\"}} {}\n{n}{{direction=\"received\"}} {}\n",
            self.fanout_sent.load(Ordering::Relaxed),
            self.fanout_received.load(Ordering::Relaxed)
        ));
        let n = family(
            &mut out,
            "nexus_fanout_reconnects_total",
            "counter",
            "Times the fan-out listener reconnected to the database.",
        );
        out.push_str(&format!(
            "{n} {}\n",
            self.fanout_reconnects.load(Ordering::Relaxed)
        ));
        let n = family(
            &mut out,
            "nexus_fanout_catch_up_total",
            "counter",
            "Followed conversations re-announced after the fan-out listener reconnected.",
        );
        out.push_str(&format!(
            "{n} {}\n",
            self.fanout_catch_up.load(Ordering::Relaxed)
        ));

        let n = family(
            &mut out,
            "nexus_db_pool_connections",
            "gauge",
            "Database pool connections, by state.",
        );
        if let Some((size, idle)) = pool {
            let busy = (size as usize).saturating_sub(idle);
            out.push_str(&format!(
                "{n}{{backend=\"{backend}\",state=\"open\"}} {size}\n\
                 {n}{{backend=\"{backend}\",state=\"idle\"}} {idle}\n\
                 {n}{{backend=\"{backend}\",state=\"busy\"}} {busy}\n"
            ));
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) -> String {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name.to_owned()
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::default();
        h.observe(0.007);
        h.observe(3.0);
        assert_eq!(h.counts[0], 0);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[BUCKETS.len() - 2], 2);
        assert_eq!(h.count, 2);
    }
}
