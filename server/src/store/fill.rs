//! A database that has lived: `nexus-flow fill` writes N conversations with M timeline
//! entries in all into a site, so benchmarks can run against a store the size of a real one.
//!
//! Every timeline is produced by the store's own planner ([`plan`] and [`Plan::rows`]) from
//! the ops a real conversation would commit (visitor questions, AI answers, escalations,
//! takeovers, agent replies, resolution), so its entries, seqs, events and conversation
//! columns are what the commit path would have written. Only the writing differs: the rows go
//! in with [`Store::insert_lived`], multi-row inserts in one transaction per batch, through
//! the migrated schema. Times are spread over the last `days` days, oldest first.
//!
//! [`Plan::rows`]: super::Plan::rows

use std::time::Instant;

use nexus_shared::{
    AgentRef, Author, ConversationState, HandoffReason, Message, Millis, Snapshot, Transition,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::{Store, StoreResult, plan};
use crate::model::{Conversation, NewMessage, Notices, Op, now_ms};

/// Rows written in one transaction.
#[derive(Debug, Default)]
pub struct LivedBatch {
    /// Visitors (id, created at); each conversation has its own.
    pub visitors: Vec<(Uuid, Millis)>,
    pub conversations: Vec<Conversation>,
    pub messages: Vec<Message>,
    /// CSAT answers: conversation, score 1–5, when.
    pub csat: Vec<(Uuid, u8, Millis)>,
}

/// What to fill.
#[derive(Debug, Clone)]
pub struct FillOptions {
    pub site_id: Uuid,
    pub conversations: u64,
    /// Timeline entries in all (visitor, AI, agent and system entries).
    pub messages: u64,
    /// The conversations start over this many days before now.
    pub days: u32,
    /// Conversations per transaction.
    pub batch: usize,
    /// Agents the escalated conversations are spread over.
    pub agents: Vec<AgentRef>,
    pub seed: u64,
}

/// What a fill wrote and how long it took.
#[derive(Debug, Default, Clone, Copy)]
pub struct Filled {
    pub conversations: u64,
    pub messages: u64,
    pub seconds: f64,
}

const QUESTIONS: &[&str] = &[
    "How long does shipping take to Germany?",
    "Can I return a pair of shoes I wore once?",
    "Where is my order? It was due yesterday.",
    "Do you ship to Canada, and what does it cost?",
    "How do I change the address on my order?",
    "Is the blue jacket available in size M?",
];
const ANSWERS: &[&str] = &[
    "Standard shipping within the EU takes 3 to 5 business days.",
    "Unworn items can be returned within 30 days; worn shoes cannot, sorry.",
    "You can follow your order from the link in your confirmation email.",
    "Yes, we ship to Canada; the cost is shown at checkout.",
];
const REPLIES: &[&str] = &[
    "Hi, I'm looking at your order now.",
    "Thanks for waiting, it left our warehouse this morning.",
    "I've changed it for you; you'll get a confirmation shortly.",
];

/// Builds one conversation's timeline by committing `ops` through the planner, in memory.
struct Timeline<'a> {
    conversation: Conversation,
    messages: Vec<Message>,
    notices: Notices,
    at: Millis,
    rng: &'a mut StdRng,
}

impl Timeline<'_> {
    fn apply(&mut self, op: Op) -> bool {
        let Ok(plan) = plan(&self.conversation.snapshot, op, None) else {
            return false;
        };
        self.at += self.rng.random_range(2_000..90_000);
        let rows = plan.rows(&self.conversation, self.at);
        self.conversation.snapshot = rows.after;
        self.conversation.handoff_reason = rows.handoff_reason;
        self.conversation.waiting_since = rows.waiting_since;
        self.conversation.last_seq = rows.last_seq;
        self.conversation.updated_at = self.at;
        self.messages.extend(rows.messages);
        true
    }

    fn post(&mut self, author: Author, body: &str) -> bool {
        self.apply(Op::Post {
            message: NewMessage::new(author, body),
            reopen_to: ConversationState::Ai,
            notices: self.notices,
        })
    }

    fn transition(&mut self, transition: Transition) -> bool {
        self.apply(Op::Transition {
            transition,
            notice: None,
            notices: self.notices,
        })
    }
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

/// One conversation of about `entries` entries: most are answered by the AI alone; about a
/// third are escalated, taken over by an agent and answered by them; all end resolved, and
/// some get a CSAT answer.
fn conversation(
    options: &FillOptions,
    notices: Notices,
    rng: &mut StdRng,
    created_at: Millis,
    entries: u64,
    batch: &mut LivedBatch,
) {
    let visitor = Uuid::now_v7();
    let conversation = Conversation {
        id: Uuid::now_v7(),
        site_id: options.site_id,
        visitor_id: visitor,
        snapshot: Snapshot::new(),
        handoff_reason: None,
        last_seq: 0,
        page_url: Some("https://shop.example/checkout".into()),
        locale: Some("en".into()),
        created_at,
        updated_at: created_at,
        waiting_since: None,
    };
    let mut t = Timeline {
        conversation,
        messages: Vec::new(),
        notices,
        at: created_at,
        rng,
    };
    let escalate = !options.agents.is_empty() && t.rng.random_bool(0.3);
    // Entries besides the back-and-forth: escalation, takeover and resolution notices.
    let budget = entries.saturating_sub(if escalate { 3 } else { 1 }).max(2);
    let ai_turns = if escalate {
        (budget / 4).max(1)
    } else {
        budget / 2
    };
    for _ in 0..ai_turns {
        let question = pick(t.rng, QUESTIONS);
        let answer = pick(t.rng, ANSWERS);
        t.post(Author::Visitor, question);
        t.post(Author::Ai, answer);
    }
    if escalate {
        let agent = options.agents[t.rng.random_range(0..options.agents.len())].clone();
        let reason = if t.rng.random_bool(0.5) {
            HandoffReason::VisitorAsked
        } else {
            HandoffReason::LowConfidence
        };
        t.transition(Transition::Escalated { reason });
        t.transition(Transition::TakenOver {
            agent: agent.clone(),
        });
        let mut left = budget.saturating_sub(2 * ai_turns);
        while left > 0 {
            let reply = pick(t.rng, REPLIES);
            t.post(Author::Agent(agent.clone()), reply);
            left -= 1;
            if left > 0 {
                let question = pick(t.rng, QUESTIONS);
                t.post(Author::Visitor, question);
                left -= 1;
            }
        }
        t.transition(Transition::Resolved { by: Some(agent) });
    } else {
        if budget % 2 == 1 {
            let question = pick(t.rng, QUESTIONS);
            t.post(Author::Visitor, question);
        }
        t.transition(Transition::Resolved { by: None });
    }
    if t.rng.random_bool(0.2) {
        let score = t.rng.random_range(1..=5);
        batch.csat.push((t.conversation.id, score, t.at));
    }
    batch.visitors.push((visitor, created_at));
    batch.messages.append(&mut t.messages);
    batch.conversations.push(t.conversation);
}

/// Fills the site: `options.conversations` conversations over the last `options.days` days,
/// `options.messages` entries in all, `options.batch` conversations per transaction.
/// `progress` is called after each batch with what is written so far.
pub async fn fill(
    store: &dyn Store,
    options: &FillOptions,
    notices: Notices,
    mut progress: impl FnMut(Filled),
) -> StoreResult<Filled> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let n = options.conversations.max(1);
    let span = Millis::from(options.days.max(1)) * 86_400_000;
    // Leave the last hour for the traffic a benchmark brings.
    let start = now_ms() - span - 3_600_000;
    let mut done = Filled::default();
    let mut batch = LivedBatch::default();
    for i in 0..n {
        // Entries so far should be about i * messages / n.
        let target = (i + 1) * options.messages / n;
        let entries = target.saturating_sub(done.messages + batch.messages.len() as u64);
        let created_at = start + Millis::try_from(i).unwrap_or(0) * span / n as Millis;
        conversation(
            options,
            notices,
            &mut rng,
            created_at,
            entries.max(2),
            &mut batch,
        );
        if batch.conversations.len() >= options.batch.max(1) || i + 1 == n {
            store.insert_lived(&batch).await?;
            done.conversations += batch.conversations.len() as u64;
            done.messages += batch.messages.len() as u64;
            done.seconds = started.elapsed().as_secs_f64();
            progress(done);
            batch = LivedBatch::default();
        }
    }
    Ok(done)
}
