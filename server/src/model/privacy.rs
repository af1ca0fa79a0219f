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
