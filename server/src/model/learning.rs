//! Learned knowledge waiting for an owner's review, and where it came from.

use nexus_shared::Millis;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where learned knowledge came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// An agent resolved a conversation and taught its answer.
    Teach,
    /// An agent edited an AI draft in review mode.
    DraftEdit,
    /// A visitor gave an AI answer a thumbs-down.
    ThumbsDown,
}

impl Origin {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Teach => "teach",
            Self::DraftEdit => "draft_edit",
            Self::ThumbsDown => "thumbs_down",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "teach" => Some(Self::Teach),
            "draft_edit" => Some(Self::DraftEdit),
            "thumbs_down" => Some(Self::ThumbsDown),
            _ => None,
        }
    }
}

/// Learned knowledge waiting for an owner's review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingEntry {
    pub id: Uuid,
    pub question: String,
    pub answer: String,
    /// The existing entry it would extend (the question becomes one of its examples).
    pub entry_id: Option<String>,
    pub conversation_id: Option<Uuid>,
    pub origin: Origin,
    pub created_at: Millis,
}
