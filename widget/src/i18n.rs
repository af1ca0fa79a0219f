//! The words the visitor reads. English only in this first slice; every visible string lives
//! here so that translations are one module away.

use nexus_shared::{ConversationState, ErrorBody, ErrorCode, HandoffReason};

pub const OPEN_CHAT: &str = "Open chat";
pub const CLOSE_CHAT: &str = "Close chat";
pub const MESSAGES: &str = "Messages";
pub const INPUT_LABEL: &str = "Your message";
pub const PLACEHOLDER: &str = "Write a message…";
pub const SEND: &str = "Send message";
pub const TALK_TO_HUMAN: &str = "Talk to a person";
pub const TALK_TO_HUMAN_BODY: &str = "I'd like to talk to a person.";
pub const RETRY: &str = "Retry";
pub const NOT_SENT: &str = "Not sent";
pub const SENDING: &str = "Sending…";
pub const DISMISS: &str = "Dismiss";
pub const DEFAULT_ASSISTANT: &str = "Assistant";
pub const DEFAULT_GREETING: &str = "Hi! How can I help you today?";
pub const TYPING: &str = "typing…";
pub const SOURCE: &str = "Source:";
pub const HELPFUL: &str = "Helpful";
pub const NOT_HELPFUL: &str = "Not helpful";
pub const CSAT_QUESTION: &str = "How did we do?";
pub const CSAT_COMMENT: &str = "Anything to add? (optional)";
pub const CSAT_SEND: &str = "Send rating";
/// The labels of the 1 to 5 rating buttons.
pub const STARS: [&str; 5] = [
    "1 of 5, poor",
    "2 of 5",
    "3 of 5",
    "4 of 5",
    "5 of 5, great",
];
pub const CSAT_THANKS: &str = "Thank you for your feedback!";

pub const STATUS_CONNECTING: &str = "connecting";
pub const STATUS_ONLINE: &str = "online";
pub const STATUS_OFFLINE: &str = "offline - reconnecting";

/// The label above a bubble of the visitor or the system (the assistant and agents are
/// labelled with their names).
pub fn author_label(kind: &str) -> &'static str {
    match kind {
        "visitor" => "You",
        "system" => "Notice",
        _ => "Support",
    }
}

/// The header's subtitle: who answers right now.
pub fn subtitle(state: ConversationState, agent: Option<&str>) -> String {
    match (state, agent) {
        (ConversationState::Human, Some(name)) => format!("{name} is answering"),
        (ConversationState::Human, None) => "A person is answering".to_owned(),
        (ConversationState::Waiting, _) => "Waiting for a person".to_owned(),
        (ConversationState::Resolved, _) => "Conversation closed. Write to reopen it.".to_owned(),
        (ConversationState::Ai, _) => "AI assistant".to_owned(),
    }
}

/// Why the conversation is waiting for a person, in plain words.
pub fn reason_text(reason: &HandoffReason) -> &'static str {
    match reason {
        HandoffReason::VisitorAsked => "you asked for a person",
        HandoffReason::LowConfidence => "the assistant wasn't sure",
        HandoffReason::OutOfScope => "the assistant can't answer this one",
        HandoffReason::Sensitive { .. } => "this needs a person's attention",
        HandoffReason::Frustration => "we want to get this right for you",
        HandoffReason::RepeatedFailure => "the assistant couldn't help",
        HandoffReason::EngineError => "the assistant is having trouble",
        HandoffReason::AgentTakeover => "a person is stepping in",
        HandoffReason::AutonomyOff => "a person answers every question here",
        _ => "a person will help you",
    }
}

/// The handoff banner's text.
pub fn waiting_banner(reason: Option<&HandoffReason>) -> String {
    match reason {
        Some(r) => format!("Waiting for a person — {}", reason_text(r)),
        None => "Waiting for a person".to_owned(),
    }
}

pub fn joined_banner(agent: &str) -> String {
    format!("{agent} joined")
}

pub fn queue_text(position: u32) -> String {
    format!("You're number {position} in the queue")
}

/// An error frame in plain words. The server's own message is for people too, but the code
/// is what we can promise to word well.
pub fn error_text(err: &ErrorBody) -> &'static str {
    match err.code {
        ErrorCode::MessageTooLong => "That message is too long. Please shorten it and retry.",
        ErrorCode::EmptyMessage => "That message is empty.",
        ErrorCode::RateLimited => "You're sending messages too fast. Wait a moment and retry.",
        ErrorCode::FrameTooLarge => "That message is too large to send.",
        ErrorCode::UnknownSite | ErrorCode::OriginNotAllowed => {
            "Chat isn't available on this website right now."
        }
        ErrorCode::UnsupportedVersion => "This chat needs a page reload to keep working.",
        ErrorCode::ConversationResolved => "This conversation is closed. Write again to reopen it.",
        ErrorCode::Unavailable | ErrorCode::TooManyConnections => {
            "Chat is busy right now. We'll keep trying."
        }
        ErrorCode::InvalidTransition => "That isn't possible right now.",
        _ => "Something went wrong. Please try again.",
    }
}
