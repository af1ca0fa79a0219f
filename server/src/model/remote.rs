//! What one instance tells the others (PostgreSQL `NOTIFY` on the schema's channel): the
//! events, and how they are packed into notification payloads. The store sends them inside
//! its commits; [`crate::live::fanout`] listens and delivers them.

use nexus_shared::{Presence, ServerFrame};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// PostgreSQL's limit on a notification payload is 8000 bytes; stay below it.
pub const MAX_PAYLOAD: usize = 7_000;

/// The channel of a schema: every instance on the same schema listens on the same channel,
/// and tests in separate schemas of one database do not hear each other.
pub fn channel_name(schema: &str) -> String {
    let clean: String = schema
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("nexus_flow_{clean}");
    name.truncate(63);
    name
}

/// What one instance tells the others. Field names are short: payloads stay small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Event {
    /// A commit stored the entries `after + 1 ..= seq` of a conversation.
    #[serde(rename = "m")]
    Messages {
        #[serde(rename = "o")]
        origin: Uuid,
        #[serde(rename = "c")]
        conversation: Uuid,
        #[serde(rename = "a")]
        after: u64,
        #[serde(rename = "s")]
        seq: u64,
    },
    /// A frame for the subscribers of a conversation.
    #[serde(rename = "c")]
    Conversation {
        #[serde(rename = "o")]
        origin: Uuid,
        #[serde(rename = "c")]
        conversation: Uuid,
        #[serde(rename = "f")]
        frame: ServerFrame,
    },
    /// A frame for the agents of a site.
    #[serde(rename = "s")]
    Site {
        #[serde(rename = "o")]
        origin: Uuid,
        #[serde(rename = "s")]
        site: Uuid,
        #[serde(rename = "f")]
        frame: ServerFrame,
    },
    /// An event too large for a notification, in `fanout_payloads`.
    #[serde(rename = "r")]
    Stored {
        #[serde(rename = "o")]
        origin: Uuid,
        id: i64,
    },
    /// A site's knowledge base changed.
    #[serde(rename = "kb")]
    Kb {
        #[serde(rename = "o")]
        origin: Uuid,
        #[serde(rename = "s")]
        site: Uuid,
    },
    /// All the agents of a site connected to the origin instance, with their status
    /// (re-announced periodically; replaces the origin's previous announcement).
    #[serde(rename = "p")]
    Presence {
        #[serde(rename = "o")]
        origin: Uuid,
        #[serde(rename = "s")]
        site: Uuid,
        #[serde(rename = "a")]
        agents: Vec<(Uuid, Presence)>,
    },
    /// A site's settings changed.
    #[serde(rename = "settings")]
    Settings {
        #[serde(rename = "o")]
        origin: Uuid,
        #[serde(rename = "s")]
        site: Uuid,
    },
    /// Sessions ended (a logout, a password change): their open agent connections close.
    #[serde(rename = "end")]
    SessionsEnded {
        #[serde(rename = "o")]
        origin: Uuid,
        #[serde(rename = "e")]
        ended: SessionEnd,
    },
}

/// Which sessions ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionEnd {
    /// One session, by the SHA-256 of its token (a logout).
    #[serde(rename = "t")]
    Token(String),
    /// Every session of an account (its password changed).
    #[serde(rename = "u")]
    User(Uuid),
}

impl SessionEnd {
    /// Does this end the session `token_hash` of `user`?
    pub fn ends(&self, token_hash: &str, user: Uuid) -> bool {
        match self {
            Self::Token(hash) => hash == token_hash,
            Self::User(id) => *id == user,
        }
    }
}

/// Packs events into as few notification payloads as fit: JSON arrays of at most
/// `MAX_PAYLOAD` bytes (an event larger than that alone is a payload by itself).
pub fn pack(events: &[Event]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for event in events {
        let one = event.to_payload();
        if !current.is_empty() && current.len() + 1 + one.len() + 1 > MAX_PAYLOAD {
            current.push(']');
            payloads.push(std::mem::take(&mut current));
        }
        current.push(if current.is_empty() { '[' } else { ',' });
        current.push_str(&one);
    }
    if !current.is_empty() {
        current.push(']');
        payloads.push(current);
    }
    payloads
}

/// The events of a notification: one event, or an array of them.
pub fn unpack(payload: &str) -> Result<Vec<Event>, serde_json::Error> {
    if payload.trim_start().starts_with('[') {
        serde_json::from_str(payload)
    } else {
        serde_json::from_str(payload).map(|event| vec![event])
    }
}

impl Event {
    pub fn to_payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    pub fn origin(&self) -> Uuid {
        match self {
            Self::Messages { origin, .. }
            | Self::Conversation { origin, .. }
            | Self::Site { origin, .. }
            | Self::Stored { origin, .. }
            | Self::Kb { origin, .. }
            | Self::Presence { origin, .. }
            | Self::Settings { origin, .. }
            | Self::SessionsEnded { origin, .. } => *origin,
        }
    }
}
