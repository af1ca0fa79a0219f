//! Canned responses: texts an agent inserts into a reply.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most canned responses one site may have.
pub const MAX_CANNED: usize = 1000;

/// One canned response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canned {
    pub id: Uuid,
    /// Short name shown in the picker ("Refund policy").
    pub title: String,
    /// The text inserted into the reply box.
    pub body: String,
}
