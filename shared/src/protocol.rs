//! The Nexus Flow wire protocol, version [`PROTOCOL_VERSION`].
//!
//! Every WebSocket frame is one JSON object `{"type": "...", "data": {...}}`: a
//! [`ClientFrame`] from the widget (visitor or agent mode) or a [`ServerFrame`] from the server.
//! New optional fields are added as `#[serde(default)]`, so older peers keep working; a change
//! that older peers cannot ignore bumps [`PROTOCOL_VERSION`]. The exact JSON is pinned by the
//! tests in `shared/tests/wire.rs`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::{ConversationState, Transition};

/// Sent in `hello` and `welcome`; the server refuses versions it does not speak.
pub const PROTOCOL_VERSION: u32 = 1;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// An agent (or owner) as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentRef {
    pub id: Uuid,
    pub name: String,
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Author {
    Visitor,
    Ai,
    Agent(AgentRef),
    /// Notices from the system itself: state changes, "agent joined", …
    System,
}

impl Author {
    /// `"visitor"`, `"ai"`, `"agent"` or `"system"`: stable, used in the database and as the
    /// widget's `data-author` test hook.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Visitor => "visitor",
            Self::Ai => "ai",
            Self::Agent(_) => "agent",
            Self::System => "system",
        }
    }
}

/// Why a conversation was handed to a person.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HandoffReason {
    /// The engine was not confident enough to answer.
    LowConfidence,
    /// The question is outside what the knowledge base covers.
    OutOfScope,
    /// The visitor asked for a person.
    VisitorAsked,
    /// A sensitive topic (legal threat, account security, complaint, …).
    Sensitive { category: String },
    /// Signs of frustration: the same question again, insults, shouting, thumbs down.
    Frustration,
    /// The AI failed several times in a row.
    RepeatedFailure,
    /// The answer engine failed; the visitor is told and nothing is lost.
    EngineError,
    /// An agent took over on their own initiative.
    AgentTakeover,
    /// The site's AI is switched off: every conversation goes to people.
    AutonomyOff,
}

impl HandoffReason {
    /// The stable snake_case code (`"low_confidence"`, `"sensitive"`, …).
    pub const fn code(&self) -> &'static str {
        match self {
            Self::LowConfidence => "low_confidence",
            Self::OutOfScope => "out_of_scope",
            Self::VisitorAsked => "visitor_asked",
            Self::Sensitive { .. } => "sensitive",
            Self::Frustration => "frustration",
            Self::RepeatedFailure => "repeated_failure",
            Self::EngineError => "engine_error",
            Self::AgentTakeover => "agent_takeover",
            Self::AutonomyOff => "autonomy_off",
        }
    }
}

/// The knowledge-base entry an AI answer comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub entry_id: String,
    pub title: String,
}

/// One option of a clarifying question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub id: String,
    pub label: String,
}

/// One entry of a conversation's timeline. Sequence numbers start at 1 and have no gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub seq: u64,
    /// The id the sender chose, so a retry is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    pub author: Author,
    pub body: String,
    pub created_at: Millis,
    /// For AI answers: where the answer comes from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// For AI answers: the engine's confidence, 0.0 to 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// For clarifying questions: the choices offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
    /// For system messages that record a change of state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<StateChange>,
}

/// A change of conversation state, recorded in the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub from: ConversationState,
    pub to: ConversationState,
    pub cause: Transition,
}

/// The site's choice of how autonomous the AI is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Autonomy {
    /// The AI answers visitors directly.
    #[default]
    Auto,
    /// The AI drafts; an agent approves, edits or rejects before the visitor sees anything.
    Review,
    /// People only.
    Off,
}

impl Autonomy {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Review => "review",
            Self::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "auto" => Self::Auto,
            "review" => Self::Review,
            "off" => Self::Off,
            _ => return None,
        })
    }
}

/// What a visitor's widget needs to know about the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    pub name: String,
    pub assistant_name: String,
    pub greeting: String,
    pub color: String,
    pub autonomy: Autonomy,
    pub agents_online: u32,
}

/// A conversation with (a page of) its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationView {
    pub id: Uuid,
    pub state: ConversationState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<AgentRef>,
    pub last_seq: u64,
    pub messages: Vec<Message>,
}

/// A line of an agent's inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: Uuid,
    pub state: ConversationState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<AgentRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_reason: Option<HandoffReason>,
    pub last_seq: u64,
    #[serde(default)]
    pub preview: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<Millis>,
    #[serde(default)]
    pub visitor: VisitorInfo,
}

/// What the agent knows about a visitor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// An identified visitor, verified by the site with `hash` = hex HMAC-SHA256 of `id` under the
/// site's identity secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// How a connection says who it is, in `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Auth {
    Visitor {
        site_key: String,
        /// The token from an earlier `welcome`, kept by the widget; absent on the first visit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visitor_token: Option<String>,
        /// The conversation to open; absent means the visitor's latest open one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<Identity>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locale: Option<String>,
    },
    Agent {
        session_token: String,
    },
}

/// The first frame of every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    pub auth: Auth,
}

/// What the agent decides about an AI draft in review mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum DraftDecision {
    Approve,
    /// Send this text instead; the edit teaches the AI.
    Edit {
        body: String,
    },
    Reject,
}

/// What an agent teaches the AI when resolving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Teach {
    pub question: String,
    pub answer: String,
    /// Add the question as an example of this existing entry instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<String>,
}

/// An agent's availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Away,
    Offline,
}

/// Frames from a client (visitor or agent) to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientFrame {
    /// Must be the first frame; answered by `welcome` or `error`.
    Hello(Hello),
    /// Post a message. Visitors may omit `conversation_id`: the server uses their open
    /// conversation or starts one. Answered by `ack` (also for a retried `client_msg_id`).
    Send {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<Uuid>,
        client_msg_id: String,
        body: String,
    },
    /// Send every timeline entry after `after_seq`; answered by `history`.
    Resume {
        conversation_id: Uuid,
        after_seq: u64,
    },
    Typing {
        conversation_id: Uuid,
        typing: bool,
    },
    /// The visitor asks for a person.
    RequestHuman {
        conversation_id: Uuid,
    },
    /// The visitor picks one of a clarifying question's choices.
    Choose {
        conversation_id: Uuid,
        message_id: Uuid,
        choice_id: String,
        client_msg_id: String,
    },
    /// Thumbs up or down on an AI answer.
    Feedback {
        conversation_id: Uuid,
        message_id: Uuid,
        helpful: bool,
    },
    /// Customer satisfaction after resolution, 1 to 5.
    Csat {
        conversation_id: Uuid,
        score: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// The visitor starts a fresh conversation.
    NewConversation,
    /// Leave an email for the team to answer when nobody is online.
    LeaveEmail {
        conversation_id: Uuid,
        email: String,
    },
    /// The visitor's conversations, newest first; answered by `conversations`.
    ListConversations,
    // ----- agents only -----
    /// Receive live frames of a conversation (watch the AI at work).
    Watch {
        conversation_id: Uuid,
    },
    Unwatch {
        conversation_id: Uuid,
    },
    TakeOver {
        conversation_id: Uuid,
    },
    HandBack {
        conversation_id: Uuid,
    },
    Transfer {
        conversation_id: Uuid,
        to_agent: Uuid,
    },
    Resolve {
        conversation_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        teach: Option<Teach>,
    },
    /// An internal note: agents see it, the visitor never does.
    Note {
        conversation_id: Uuid,
        client_msg_id: String,
        body: String,
    },
    ReviewDraft {
        conversation_id: Uuid,
        draft_id: Uuid,
        #[serde(flatten)]
        decision: DraftDecision,
    },
    SetPresence {
        status: Presence,
    },
    Ping,
}

/// Frames from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerFrame {
    Welcome(Welcome),
    /// A new timeline entry (visitor, AI, agent or system).
    Message(Message),
    /// A sent message is stored (durably) under `seq`.
    Ack {
        client_msg_id: String,
        conversation_id: Uuid,
        message_id: Uuid,
        seq: u64,
        /// True when this `client_msg_id` had been stored before: the retry was not stored again.
        #[serde(default)]
        duplicate: bool,
    },
    /// Answer to `resume`: the entries after the asked sequence number, in order.
    History {
        conversation_id: Uuid,
        messages: Vec<Message>,
        has_more: bool,
    },
    /// The conversation's state, sent after a change and on open.
    State {
        conversation_id: Uuid,
        state: ConversationState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee: Option<AgentRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<HandoffReason>,
    },
    Typing {
        conversation_id: Uuid,
        author: Author,
        typing: bool,
    },
    /// Place in the queue of conversations waiting for a person (1 = next).
    Queue {
        conversation_id: Uuid,
        position: u32,
    },
    /// Agent presence (to agents), or the number of agents online (to visitors).
    Presence {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<AgentRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<Presence>,
        agents_online: u32,
    },
    /// Agents only: a conversation in the inbox changed.
    Conversation(ConversationSummary),
    /// Agents only: an AI answer awaiting review.
    Draft(Draft),
    /// Agents only: a draft was approved, edited or rejected.
    DraftReviewed {
        conversation_id: Uuid,
        draft_id: Uuid,
        #[serde(flatten)]
        decision: DraftDecision,
    },
    /// Agents only: an internal note.
    Note(Note),
    /// The AI's reply as produced so far (LLM backend): replaced by the final `message`;
    /// a `typing` false from the AI without a message clears it.
    Streaming(Streaming),
    /// Visitors: their own conversations, newest first (answer to `list_conversations`).
    Conversations {
        conversations: Vec<ConversationSummary>,
    },
    /// The visitor is told when to expect an answer (no agent online, outside hours).
    Offline {
        conversation_id: Uuid,
        message: String,
    },
    Error(ErrorBody),
    Pong,
}

/// The text of an AI reply still being produced (`streaming` frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Streaming {
    pub conversation_id: Uuid,
    /// Everything produced so far (not a delta).
    pub text: String,
}

/// The answer to `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol_version: u32,
    pub session: Session,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteInfo>,
    /// Visitors: the open conversation, if any, with its latest messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationView>,
}

/// Who the server thinks this connection is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Session {
    /// Keep `visitor_token` (the widget stores it in localStorage) to come back later.
    Visitor {
        visitor_token: String,
    },
    Agent {
        agent: AgentRef,
        role: Role,
    },
}

/// An account's role on a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Agent,
}

/// An AI answer waiting for an agent's review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// The visitor message it answers.
    pub reply_to_seq: u64,
    pub body: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    pub created_at: Millis,
}

/// An internal note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub client_msg_id: String,
    pub agent: AgentRef,
    pub body: String,
    pub created_at: Millis,
}

/// Stable error codes, on the wire (WebSocket `error` frames) and in HTTP error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not valid JSON, or not a frame this protocol knows.
    BadFrame,
    FrameTooLarge,
    MessageTooLong,
    EmptyMessage,
    RateLimited,
    UnsupportedVersion,
    /// The first frame must be `hello`.
    HelloRequired,
    UnknownSite,
    OriginNotAllowed,
    IdentityInvalid,
    Unauthorized,
    Forbidden,
    NotFound,
    /// The state machine refused (e.g. resolving a resolved conversation).
    InvalidTransition,
    /// Someone else owns the conversation.
    NotAssignee,
    ConversationResolved,
    TooManyConnections,
    InvalidCredentials,
    LoginThrottled,
    Validation,
    /// The server is shutting down or overloaded; retry later.
    Unavailable,
    Internal,
    /// A code this client does not know yet (newer server).
    #[serde(other)]
    Unknown,
}

/// An error: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// The failed `send`'s id, so the client knows which message to retry or mark failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            client_msg_id: None,
        }
    }

    #[must_use]
    pub fn for_message(mut self, client_msg_id: impl Into<String>) -> Self {
        self.client_msg_id = Some(client_msg_id.into());
        self
    }
}

/// `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub protocol_version: u32,
    pub engine: String,
    /// Why `engine` is not the embedded model (e.g. the model could not be loaded); absent when
    /// the preferred engine serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_reason: Option<String>,
    pub database: String,
}

/// Checks a message body the way the server does: trimmed non-empty, at most
/// [`crate::limits::MAX_BODY_CHARS`] characters.
pub fn validate_body(body: &str) -> Result<&str, ErrorBody> {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return Err(ErrorBody::new(
            ErrorCode::EmptyMessage,
            "The message is empty.",
        ));
    }
    let chars = trimmed.chars().count();
    if chars > crate::limits::MAX_BODY_CHARS {
        return Err(ErrorBody::new(
            ErrorCode::MessageTooLong,
            format!(
                "The message has {chars} characters; the limit is {}.",
                crate::limits::MAX_BODY_CHARS
            ),
        ));
    }
    Ok(trimmed)
}
