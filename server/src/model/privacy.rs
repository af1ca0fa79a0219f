//! What is kept about a visitor: their profile and their satisfaction answers.

use nexus_shared::Millis;
use serde::Serialize;
use uuid::Uuid;

/// What the store keeps about a visitor (besides their token's hash, never exported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisitorProfile {
    pub id: Uuid,
    /// The id the site gave this visitor in a verified identity.
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub created_at: Millis,
    pub last_seen_at: Millis,
}

/// A visitor's satisfaction answer for one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Csat {
    /// 1 to 5.
    pub score: u8,
    pub comment: Option<String>,
    pub created_at: Millis,
}

/// A visitor's thumbs up or down on one answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedbackRecord {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub helpful: bool,
    pub created_at: Millis,
}

/// An AI draft written for one of the visitor's questions (review mode), with that question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DraftRecord {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub question: String,
    pub body: String,
    /// pending, approved, edited, rejected or expired.
    pub status: String,
    pub created_at: Millis,
}

/// Knowledge learned from one of the visitor's conversations (a teach, an edited draft, a
/// thumbs-down), whatever became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearnedRecord {
    #[serde(flatten)]
    pub entry: super::PendingEntry,
    /// pending, approved, rejected or live (taught straight into the knowledge base).
    pub status: String,
    /// The knowledge-base entry the question went into, if it did.
    pub kb_entry_id: Option<String>,
}

/// Everything kept about a visitor besides their profile, conversations and CSAT answers:
/// agents' notes, feedback, drafts and learned knowledge.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VisitorRecords {
    pub notes: Vec<nexus_shared::Note>,
    pub feedback: Vec<FeedbackRecord>,
    pub drafts: Vec<DraftRecord>,
    pub learned: Vec<LearnedRecord>,
}
