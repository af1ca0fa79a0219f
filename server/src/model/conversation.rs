//! A conversation, what changes it ([`Op`], checked by a [`Guard`]) and what a change left
//! ([`Committed`]); the clock the store stamps entries with.

use nexus_shared::{
    Author, Choice, ConversationState, ConversationSummary, HandoffReason, Message, Millis,
    Snapshot, Source, StateChange, Transition, VisitorInfo,
};
use uuid::Uuid;

/// A conversation row.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: Uuid,
    pub site_id: Uuid,
    pub visitor_id: Uuid,
    pub snapshot: Snapshot,
    pub handoff_reason: Option<HandoffReason>,
    pub last_seq: u64,
    pub page_url: Option<String>,
    pub locale: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub waiting_since: Option<Millis>,
}

impl Conversation {
    pub fn summary(&self, preview: String, visitor: VisitorInfo) -> ConversationSummary {
        ConversationSummary {
            id: self.id,
            state: self.snapshot.state,
            assignee: self.snapshot.assignee.clone(),
            handoff_reason: self.handoff_reason.clone(),
            last_seq: self.last_seq,
            preview,
            created_at: self.created_at,
            updated_at: self.updated_at,
            waiting_since: self.waiting_since,
            visitor,
        }
    }
}

/// A timeline entry before the store gives it an id, a sequence number and a time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewMessage {
    pub author: Option<Author>,
    pub body: String,
    pub client_msg_id: Option<String>,
    pub sources: Vec<Source>,
    pub confidence: Option<f32>,
    pub choices: Vec<Choice>,
    pub event: Option<StateChange>,
}

impl NewMessage {
    pub fn new(author: Author, body: impl Into<String>) -> Self {
        Self {
            author: Some(author),
            body: body.into(),
            ..Self::default()
        }
    }

    pub fn author(&self) -> Author {
        self.author.clone().unwrap_or(Author::System)
    }
}

/// What to change in a conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Post a message, checked by the state machine. A visitor writing in a resolved
    /// conversation reopens it to `reopen_to`; an agent replying to an unowned conversation
    /// takes it over first.
    Post {
        message: NewMessage,
        reopen_to: ConversationState,
        notices: Notices,
    },
    /// Change state; the store records a system message with `notice` as its text (`None`:
    /// the default notice for the transition, in the visitor's language).
    Transition {
        transition: Transition,
        notice: Option<String>,
        notices: Notices,
    },
}

/// Writes the system notice of a transition in the visitor's language (`None`: the default
/// language). The text is rendered above the store (`conversation::notices`); an [`Op`]
/// carries the renderer so the store can word the transitions its plan implies (a visitor
/// reopening a resolved conversation, an agent's reply taking it over) inside the commit.
#[derive(Clone, Copy)]
pub struct Notices(pub fn(&Transition, Option<&str>) -> String);

impl Notices {
    pub fn render(self, transition: &Transition, locale: Option<&str>) -> String {
        (self.0)(transition, locale)
    }
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notices")
    }
}

impl PartialEq for Notices {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::fn_addr_eq(self.0, other.0)
    }
}

/// Who commits, checked inside the commit against the conversation as its transaction reads
/// it: a visitor's post needs no read of the conversation before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// No check: the caller checked, or the server acts itself.
    None,
    /// The conversation must be this visitor's, else [`StoreError::NotFound`] (exactly as if it
    /// did not exist). Unless `reopen`, a post to a resolved conversation is refused with
    /// [`StateError::Resolved`] instead of reopening it, so that the caller can reopen it with
    /// the site's current settings.
    Visitor { id: Uuid, reopen: bool },
}

/// The result of a commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The conversation after the commit.
    pub conversation: Conversation,
    /// The stored timeline entries, in sequence order (empty for a duplicate).
    pub messages: Vec<Message>,
    /// Set when the posted `client_msg_id` was stored before: the earlier message.
    pub duplicate: Option<Message>,
    /// The state before the commit.
    pub before: Snapshot,
}

impl Committed {
    pub fn state_changed(&self) -> bool {
        self.before != self.conversation.snapshot
    }
}

/// One conversation with what analytics needs of it.
#[derive(Debug, Clone)]
pub struct ConversationFacts {
    pub conversation: Conversation,
    /// The entries analytics reads, in sequence order: state changes and agents' messages
    /// (visitors' and the AI's messages are not loaded; see `ai_answered`).
    pub messages: Vec<Message>,
    /// The AI posted at least once.
    pub ai_answered: bool,
    pub csat: Option<u8>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
