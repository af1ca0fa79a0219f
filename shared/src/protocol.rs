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

tagged_enum! {
    /// Who wrote a message.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "kind")]
    pub enum Author / AuthorTag {
        Visitor => "visitor",
        Ai => "ai",
        Agent(AgentRef) => "agent",
        /// Notices from the system itself: state changes, "agent joined", …
        System => "system",
    }
}

impl Author {
    /// `"visitor"`, `"ai"`, `"agent"` or `"system"`: stable, used in the database and as the
    /// widget's `data-author` test hook.
    pub const fn kind(&self) -> &'static str {
        self.tag().as_str()
    }
}

tagged_enum! {
    /// Why a conversation was handed to a person.
    ///
    /// Exhaustive (not `#[non_exhaustive]`): a new reason must be handled wherever reasons are
    /// matched, the widget's texts included. Peers still tolerate a newer server's reason: the
    /// light codec skips what it cannot read.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(tag = "reason")]
    pub enum HandoffReason / HandoffReasonTag {
        /// The engine was not confident enough to answer.
        LowConfidence => "low_confidence",
        /// The question is outside what the knowledge base covers.
        OutOfScope => "out_of_scope",
        /// The visitor asked for a person.
        VisitorAsked => "visitor_asked",
        /// A sensitive topic (legal threat, account security, complaint, …).
        Sensitive { category: String } => "sensitive",
        /// Signs of frustration: the same question again, insults, shouting, thumbs down.
        Frustration => "frustration",
        /// The AI failed several times in a row.
        RepeatedFailure => "repeated_failure",
        /// The answer engine failed; the visitor is told and nothing is lost.
        EngineError => "engine_error",
        /// The AI is busy (more questions than it answers in time): a person answers instead;
        /// the visitor is told and nothing is lost.
        EngineBusy => "engine_busy",
        /// An agent took over on their own initiative.
        AgentTakeover => "agent_takeover",
        /// The site's AI is switched off: every conversation goes to people.
        AutonomyOff => "autonomy_off",
    }
}

impl HandoffReason {
    /// The stable snake_case code (`"low_confidence"`, `"sensitive"`, …).
    pub const fn code(&self) -> &'static str {
        self.tag().as_str()
    }
}

/// The knowledge-base entry an AI answer comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub entry_id: String,
    pub title: String,
    /// Where the visitor can read the whole source (an article's page), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
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

string_enum! {
    /// The site's choice of how autonomous the AI is.
    #[derive(Default)]
    pub enum Autonomy {
        /// The AI answers visitors directly.
        #[default]
        Auto => "auto",
        /// The AI drafts; an agent approves, edits or rejects before the visitor sees anything.
        Review => "review",
        /// People only.
        Off => "off",
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

string_enum! {
    /// Which of a site's open conversations an agent's inbox view shows (`inbox` frames), and
    /// in which order.
    pub enum InboxFilter {
        /// Every open conversation (`ai`, `waiting`, `human`), most recently active first.
        Open => "open",
        /// Waiting for a person, longest waiting first.
        Waiting => "waiting",
        /// The AI is answering, most recently active first.
        Live => "live",
        /// Taken over by this agent, most recently active first.
        Mine => "mine",
    }
}

/// Lines of an inbox page when `inbox` gives no `limit`.
pub const INBOX_PAGE: u32 = 50;

/// How many open conversations each inbox filter holds (`mine`: the agent's own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxCounts {
    pub open: u32,
    pub waiting: u32,
    pub live: u32,
    pub mine: u32,
}

/// A page of an agent's inbox view: the answer to `inbox`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxPage {
    pub filter: InboxFilter,
    /// The `after` of the request: absent for a first page (it replaces the view's lines),
    /// else the page follows the line with this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Uuid>,
    pub lines: Vec<ConversationSummary>,
    /// More lines follow this page in the filter.
    pub has_more: bool,
    pub counts: InboxCounts,
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

tagged_enum! {
    /// How a connection says who it is, in `hello`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "role")]
    pub enum Auth / AuthTag {
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
        } => "visitor",
        Agent { session_token: String } => "agent",
    }
}

/// The first frame of every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    pub auth: Auth,
}

tagged_enum! {
    /// What the agent decides about an AI draft in review mode.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "decision")]
    pub enum DraftDecision / DraftDecisionTag {
        Approve => "approve",
        /// Send this text instead; the edit teaches the AI.
        Edit { body: String } => "edit",
        Reject => "reject",
    }
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

string_enum! {
    /// An agent's availability.
    pub enum Presence {
        Online => "online",
        Away => "away",
        Offline => "offline",
    }
}

tagged_enum! {
    /// Frames from a client (visitor or agent) to the server.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    #[non_exhaustive]
    pub enum ClientFrame / ClientFrameTag {
        /// Must be the first frame; answered by `welcome` or `error`.
        Hello(Hello) => "hello",
        /// Post a message. Visitors may omit `conversation_id`: the server uses their open
        /// conversation or starts one. Answered by `ack` (also for a retried `client_msg_id`).
        Send {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            conversation_id: Option<Uuid>,
            client_msg_id: String,
            body: String,
        } => "send",
        /// Send every timeline entry after `after_seq`; answered by `history`.
        Resume {
            conversation_id: Uuid,
            after_seq: u64,
        } => "resume",
        Typing {
            conversation_id: Uuid,
            typing: bool,
        } => "typing",
        /// The visitor asks for a person.
        RequestHuman {
            conversation_id: Uuid,
        } => "request_human",
        /// The visitor picks one of a clarifying question's choices.
        Choose {
            conversation_id: Uuid,
            message_id: Uuid,
            choice_id: String,
            client_msg_id: String,
        } => "choose",
        /// Thumbs up or down on an AI answer.
        Feedback {
            conversation_id: Uuid,
            message_id: Uuid,
            helpful: bool,
        } => "feedback",
        /// Customer satisfaction after resolution, 1 to 5.
        Csat {
            conversation_id: Uuid,
            score: u8,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            comment: Option<String>,
        } => "csat",
        /// The visitor starts a fresh conversation.
        NewConversation => "new_conversation",
        /// Leave an email for the team to answer when nobody is online.
        LeaveEmail {
            conversation_id: Uuid,
            email: String,
        } => "leave_email",
        /// The visitor's conversations, newest first; answered by `conversations`.
        ListConversations => "list_conversations",
        // ----- agents only -----
        /// Receive live frames of a conversation (watch the AI at work).
        Watch {
            conversation_id: Uuid,
        } => "watch",
        Unwatch {
            conversation_id: Uuid,
        } => "unwatch",
        TakeOver {
            conversation_id: Uuid,
        } => "take_over",
        HandBack {
            conversation_id: Uuid,
        } => "hand_back",
        Transfer {
            conversation_id: Uuid,
            to_agent: Uuid,
        } => "transfer",
        Resolve {
            conversation_id: Uuid,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            teach: Option<Teach>,
        } => "resolve",
        /// An internal note: agents see it, the visitor never does.
        Note {
            conversation_id: Uuid,
            client_msg_id: String,
            body: String,
        } => "note",
        ReviewDraft {
            conversation_id: Uuid,
            draft_id: Uuid,
            #[serde(flatten)]
            decision: DraftDecision,
        } => "review_draft",
        SetPresence {
            status: Presence,
        } => "set_presence",
        /// Show this filter of the inbox: its first `limit` lines (default [`INBOX_PAGE`], at
        /// most 200), or with `after` the `limit` lines after that line (load more; the view
        /// grows). Answered by `inbox_page`; from then on the view's changes arrive as
        /// `inbox_line`, `inbox_leave` and `inbox_counts`.
        Inbox {
            filter: InboxFilter,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            limit: Option<u32>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            after: Option<Uuid>,
        } => "inbox",
        Ping => "ping",
    }
}

tagged_enum! {
    /// Frames from the server to a client.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    #[non_exhaustive]
    pub enum ServerFrame / ServerFrameTag {
        Welcome(Welcome) => "welcome",
        /// A new timeline entry (visitor, AI, agent or system).
        Message(Message) => "message",
        /// A sent message is stored (durably) under `seq`.
        Ack {
            client_msg_id: String,
            conversation_id: Uuid,
            message_id: Uuid,
            seq: u64,
            /// True when this `client_msg_id` had been stored before: the retry was not stored again.
            #[serde(default)]
            duplicate: bool,
        } => "ack",
        /// Answer to `resume`: the entries after the asked sequence number, in order.
        History {
            conversation_id: Uuid,
            messages: Vec<Message>,
            has_more: bool,
        } => "history",
        /// The conversation's state, sent after a change and on open.
        State {
            conversation_id: Uuid,
            state: ConversationState,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            assignee: Option<AgentRef>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            reason: Option<HandoffReason>,
        } => "state",
        Typing {
            conversation_id: Uuid,
            author: Author,
            typing: bool,
        } => "typing",
        /// Place in the queue of conversations waiting for a person (1 = next).
        Queue {
            conversation_id: Uuid,
            position: u32,
        } => "queue",
        /// Agent presence (to agents), or the number of agents online (to visitors).
        Presence {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            agent: Option<AgentRef>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            status: Option<Presence>,
            agents_online: u32,
        } => "presence",
        /// Agents only: a conversation in the inbox changed.
        Conversation(ConversationSummary) => "conversation",
        /// Agents only: an AI answer awaiting review.
        Draft(Draft) => "draft",
        /// Agents only: a draft was approved, edited or rejected.
        DraftReviewed {
            conversation_id: Uuid,
            draft_id: Uuid,
            #[serde(flatten)]
            decision: DraftDecision,
        } => "draft_reviewed",
        /// Agents only: an internal note.
        Note(Note) => "note",
        /// Agents only: a page of an inbox view (the answer to `inbox`).
        InboxPage(InboxPage) => "inbox_page",
        /// Agents only: this line is now in the view of `filter` (it appeared there, or
        /// changed while shown); its place follows from the filter's order.
        InboxLine {
            filter: InboxFilter,
            line: ConversationSummary,
        } => "inbox_line",
        /// Agents only: the conversation is no longer in the view of `filter` (it changed,
        /// or newer lines pushed it past the view's end); `state` is its state now.
        InboxLeave {
            filter: InboxFilter,
            conversation_id: Uuid,
            state: ConversationState,
        } => "inbox_leave",
        /// Agents only: the counts of every filter changed.
        InboxCounts(InboxCounts) => "inbox_counts",
        /// The AI's reply as produced so far (LLM backend): replaced by the final `message`;
        /// a `typing` false from the AI without a message clears it.
        Streaming(Streaming) => "streaming",
        /// Visitors: their own conversations, newest first (answer to `list_conversations`).
        Conversations {
            conversations: Vec<ConversationSummary>,
        } => "conversations",
        /// The visitor is told when to expect an answer (no agent online, outside hours).
        Offline {
            conversation_id: Uuid,
            message: String,
        } => "offline",
        Error(ErrorBody) => "error",
        Pong => "pong",
    }
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

tagged_enum! {
    /// Who the server thinks this connection is.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "kind")]
    pub enum Session / SessionTag {
        /// Keep `visitor_token` (the widget stores it in localStorage) to come back later.
        Visitor { visitor_token: String } => "visitor",
        Agent { agent: AgentRef, role: Role } => "agent",
    }
}

string_enum! {
    /// Where a knowledge source's articles come from (REST `/api/v1/sources`).
    pub enum SourceKind {
        /// One page fetched from the owner's URL (re-fetched on refresh).
        Url => "url",
        /// The pages a sitemap lists (`<urlset>` or `<sitemapindex>`), fetched together.
        Sitemap => "sitemap",
        /// An uploaded file (HTML, Markdown or plain text).
        File => "file",
        /// Text pasted into the console.
        Paste => "paste",
        /// The site's own page, read at first start (the demo shop).
        Page => "page",
    }
}

string_enum! {
    /// An account's role on a site.
    pub enum Role {
        Owner => "owner",
        Agent => "agent",
    }
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

error_codes! {
    /// Stable error codes, on the wire (WebSocket `error` frames) and in HTTP error bodies, each
    /// with the HTTP status of a response that carries it.
    ///
    /// Exhaustive (not `#[non_exhaustive]`): a new code must be given its status here and be
    /// handled wherever codes are matched. A newer server's code still reaches an older client:
    /// it reads as [`ErrorCode::Unknown`] (the table's `fallback`).
    pub enum ErrorCode {
        /// Not valid JSON, or not a frame this protocol knows.
        BadFrame => "bad_frame", 400,
        FrameTooLarge => "frame_too_large", 413,
        MessageTooLong => "message_too_long", 400,
        EmptyMessage => "empty_message", 400,
        RateLimited => "rate_limited", 429,
        UnsupportedVersion => "unsupported_version", 400,
        /// The first frame must be `hello`.
        HelloRequired => "hello_required", 400,
        UnknownSite => "unknown_site", 404,
        OriginNotAllowed => "origin_not_allowed", 403,
        IdentityInvalid => "identity_invalid", 401,
        Unauthorized => "unauthorized", 401,
        Forbidden => "forbidden", 403,
        NotFound => "not_found", 404,
        /// The state machine refused (e.g. resolving a resolved conversation).
        InvalidTransition => "invalid_transition", 409,
        /// Someone else owns the conversation.
        NotAssignee => "not_assignee", 409,
        ConversationResolved => "conversation_resolved", 409,
        TooManyConnections => "too_many_connections", 429,
        InvalidCredentials => "invalid_credentials", 401,
        LoginThrottled => "login_throttled", 429,
        Validation => "validation", 400,
        /// A request's body did not arrive within the body timeout (slow or stalled client).
        RequestTimeout => "request_timeout", 408,
        /// The server is shutting down or overloaded; retry later.
        Unavailable => "unavailable", 503,
        Internal => "internal", 500,
        /// A code this client does not know yet (newer server). The server never sends it.
        Unknown => "unknown", 500,
    }
    fallback Unknown;
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

string_enum! {
    /// What the AI would do with a question (`POST /api/v1/playground`), or did with it.
    pub enum AiOutcome {
        /// Answered from the knowledge base.
        Answer => "answer",
        /// Asked which of two or three close entries the visitor means.
        Clarify => "clarify",
        /// Handed the conversation to a person.
        Escalate => "escalate",
        /// Nothing yet (replay: no reply followed the question).
        NoReply => "none",
    }
}

string_enum! {
    /// Which step of the AI's turn made the decision (`conversation::visitor::respond`).
    pub enum DecisionStage {
        /// The site's autonomy setting (`off`: people only).
        Autonomy => "autonomy",
        /// The policy before the engine: a request for a person, a sensitive topic, frustration.
        BeforeEngine => "before_engine",
        /// The answer engine itself (its thresholds, or an entry that always hands over).
        Engine => "engine",
        /// The policy after the engine: low confidence, out of scope, repeated failure.
        AfterEngine => "after_engine",
    }
}

/// `POST /api/v1/playground`: one question (`question`) or several (`questions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaygroundRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub questions: Vec<String>,
}

/// An entry an answer comes from, with the passage the visitor would read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaygroundSource {
    pub entry_id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The entry's answer text as stored (placeholders not filled).
    pub passage: String,
}

/// A close entry and the confidence an answer from it would have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub entry_id: String,
    pub title: String,
    pub confidence: f32,
}

/// What the AI would do now with one question from a new visitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaygroundResult {
    pub question: String,
    pub outcome: AiOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// The answer (placeholders filled) or the clarifying question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<PlaygroundSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
    /// The closest entries, best first.
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Why it goes to a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<HandoffReason>,
    pub stage: DecisionStage,
    /// The rule that decided, in plain words.
    pub why: String,
    /// Review mode: an answer becomes a draft for an agent instead of reaching the visitor.
    #[serde(default)]
    pub draft: bool,
}

/// `POST /api/v1/playground/replay`: the site's last `last` conversations' first visitor
/// questions against the current knowledge base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRequest {
    pub last: u32,
}

/// How many questions ended each way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    pub answered: u32,
    pub clarified: u32,
    pub handed_over: u32,
    /// No reply followed (only ever in `then`).
    pub none: u32,
}

/// A replayed question whose outcome or answer changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayChange {
    pub conversation_id: Uuid,
    pub question: String,
    pub then: AiOutcome,
    /// The entry the answer came from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then_entry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then_answer: Option<String>,
    pub now: PlaygroundResult,
}

/// The answer of a replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayReport {
    /// Which questions were replayed: `first_visitor_message` of each conversation.
    pub questions: String,
    pub replayed: u32,
    pub then: OutcomeCounts,
    pub now: OutcomeCounts,
    pub changed: Vec<ReplayChange>,
}

/// One question that went to people, and what the agents answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapQuestion {
    pub conversation_id: Uuid,
    pub question: String,
    pub asked_at: Millis,
    /// The agents' replies after the handover, oldest first (at most three).
    pub replies: Vec<String>,
}

/// Questions that went to people, alike in meaning (`GET /api/v1/gaps`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapGroup {
    pub questions: Vec<GapQuestion>,
    /// The agents' most common reply (the longest among equals): what a drafted entry answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_reply: Option<String>,
}

/// `POST /api/v1/gaps/draft`: an entry drafted from a group's conversations, into the approval
/// queue; `answer` replaces the agents' best reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapDraftRequest {
    pub conversation_ids: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// The answer of a gap draft: the entry id its questions go into on approval, and how many
/// wait in `/api/v1/kb/pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapDraft {
    pub entry_id: String,
    pub pending: u32,
    pub answer: String,
}
