//! Records: the plain data every layer above passes around (sites and their settings,
//! accounts, visitors, conversations and what changes them, canned responses, learned
//! knowledge, knowledge sources and their passages, webhooks, business hours, the events that cross instances) and the clock.
//!
//! The bottom of the server: it imports nothing of the server above it, only `shared` and the
//! engine's records. The store reads and writes these; services and transports use them.

mod canned;
mod conversation;
pub mod hours;
mod learning;
mod privacy;
pub mod remote;
mod site;
mod source;
pub mod webhook;

pub use canned::{Canned, MAX_CANNED};
pub use conversation::{
    Committed, Conversation, ConversationFacts, Guard, NewMessage, Notices, Op, now_ms,
};
pub use hours::BusinessHours;
pub use learning::{Masked, Origin, PendingEntry, mask_like, mask_personal, title_from_answer};
pub use privacy::{
    Csat, DraftRecord, FeedbackRecord, LearnedRecord, VisitorProfile, VisitorRecords,
};
pub use site::{PasswordHash, Site, SiteSettings, User, Visitor};
pub use source::{KnowledgeSource, MAX_PASSAGES, MAX_SOURCES, Passage, PassageChanges};
pub use webhook::Webhook;
