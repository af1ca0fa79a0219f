//! The frames the visitor widget exchanges, read and written without serde.
//!
//! The protocol types come from `nexus_shared`, but deriving their serde code into the wasm
//! costs more than the rest of the widget together (the adjacently and internally tagged enums
//! are buffered through serde's `Content`, for every type, twice). The budget of the product
//! issue (120 KB gzip for the whole app) does not allow that, so the browser parses the JSON
//! (`JSON.parse`) and this module reads the parsed value through the small [`Json`] trait; it
//! writes the few frames the widget sends by hand.
//!
//! The tests pin both directions to the shared crate's serde format: every frame is encoded by
//! `serde_json` and decoded here (and the other way round), so a change of the wire format
//! breaks them, not the widget in production.

use nexus_shared::{
    AgentRef, Auth, Author, Autonomy, Choice, ClientFrame, ConversationState, ConversationSummary,
    ConversationView, ErrorBody, ErrorCode, HandoffReason, Message, Presence, ServerFrame, Session,
    SiteInfo, Source, StateChange, Transition, Welcome,
};
use uuid::Uuid;

/// A parsed JSON value: a browser `JsValue` in the widget, `serde_json::Value` in tests.
pub trait Json: Sized {
    /// The member `key` of an object; `None` when absent or `null` (or not an object).
    fn get(&self, key: &str) -> Option<Self>;
    fn string(&self) -> Option<String>;
    fn number(&self) -> Option<f64>;
    fn boolean(&self) -> Option<bool>;
    fn items(&self) -> Option<Vec<Self>>;
}

impl Json for wasm_bindgen::JsValue {
    fn get(&self, key: &str) -> Option<Self> {
        if !self.is_object() {
            return None;
        }
        js_sys::Reflect::get(self, &Self::from_str(key))
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_null())
    }

    fn string(&self) -> Option<String> {
        self.as_string()
    }

    fn number(&self) -> Option<f64> {
        self.as_f64()
    }

    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }

    fn items(&self) -> Option<Vec<Self>> {
        js_sys::Array::is_array(self).then(|| js_sys::Array::from(self).iter().collect())
    }
}

#[cfg(test)]
impl Json for serde_json::Value {
    fn get(&self, key: &str) -> Option<Self> {
        self.as_object()?.get(key).filter(|v| !v.is_null()).cloned()
    }

    fn string(&self) -> Option<String> {
        self.as_str().map(str::to_owned)
    }

    fn number(&self) -> Option<f64> {
        self.as_f64()
    }

    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }

    fn items(&self) -> Option<Vec<Self>> {
        self.as_array().cloned()
    }
}

/// Parses a frame's text with the browser's `JSON.parse`. `None` for what this widget does not
/// understand (a frame type of a newer server, an agent-only frame): those are skipped.
pub fn parse(text: &str) -> Option<ServerFrame> {
    decode(&js_sys::JSON::parse(text).ok()?)
}

// ----- reading -----

pub(crate) fn string<J: Json>(v: &J, key: &str) -> Option<String> {
    v.get(key)?.string()
}

pub(crate) fn uint<J: Json>(v: &J, key: &str) -> Option<u64> {
    let n = v.get(key)?.number()?;
    (n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_992.0).then_some(n as u64)
}

pub(crate) fn int<J: Json>(v: &J, key: &str) -> Option<i64> {
    let n = v.get(key)?.number()?;
    (n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_992.0).then_some(n as i64)
}

pub(crate) fn flag<J: Json>(v: &J, key: &str) -> Option<bool> {
    v.get(key)?.boolean()
}

pub(crate) fn uuid<J: Json>(v: &J, key: &str) -> Option<Uuid> {
    parse_uuid(&string(v, key)?)
}

/// Parses the hyphenated form serde writes (`uuid`'s own parser accepts every form there is,
/// and weighs ten times more).
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    let mut n = 0u128;
    for (i, c) in s.chars().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != '-' {
                return None;
            }
        } else {
            n = n << 4 | u128::from(c.to_digit(16)?);
        }
    }
    Some(Uuid::from_u128(n))
}

/// Writes the hyphenated lowercase form, as serde does.
pub fn uuid_string(id: &Uuid) -> String {
    let n = id.as_u128();
    let mut s = String::with_capacity(36);
    for i in 0..32u32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            s.push('-');
        }
        let digit = (n >> (124 - 4 * i)) as u32 & 15;
        s.push(char::from_digit(digit, 16).unwrap_or('0'));
    }
    s
}

/// A list that serde skips when empty: absent means empty.
pub(crate) fn list<J: Json, T>(v: &J, key: &str, item: impl Fn(&J) -> Option<T>) -> Option<Vec<T>> {
    match v.get(key) {
        None => Some(Vec::new()),
        Some(items) => items.items()?.iter().map(item).collect(),
    }
}

pub(crate) fn state<J: Json>(v: &J, key: &str) -> Option<ConversationState> {
    ConversationState::parse(&string(v, key)?)
}

pub(crate) fn agent<J: Json>(v: &J) -> Option<AgentRef> {
    Some(AgentRef {
        id: uuid(v, "id")?,
        name: string(v, "name")?,
    })
}

fn author<J: Json>(v: &J) -> Option<Author> {
    Some(match string(v, "kind")?.as_str() {
        "visitor" => Author::Visitor,
        "ai" => Author::Ai,
        "system" => Author::System,
        "agent" => Author::Agent(agent(v)?),
        _ => return None,
    })
}

pub(crate) fn reason<J: Json>(v: &J) -> Option<HandoffReason> {
    Some(match string(v, "reason")?.as_str() {
        "low_confidence" => HandoffReason::LowConfidence,
        "out_of_scope" => HandoffReason::OutOfScope,
        "visitor_asked" => HandoffReason::VisitorAsked,
        "sensitive" => HandoffReason::Sensitive {
            category: string(v, "category")?,
        },
        "frustration" => HandoffReason::Frustration,
        "repeated_failure" => HandoffReason::RepeatedFailure,
        "engine_error" => HandoffReason::EngineError,
        "agent_takeover" => HandoffReason::AgentTakeover,
        "autonomy_off" => HandoffReason::AutonomyOff,
        _ => return None,
    })
}

fn transition<J: Json>(v: &J) -> Option<Transition> {
    let with_agent = |key| v.get(key).as_ref().and_then(agent);
    Some(match string(v, "kind")?.as_str() {
        "escalated" => Transition::Escalated {
            reason: reason(&v.get("reason")?)?,
        },
        "taken_over" => Transition::TakenOver {
            agent: with_agent("agent")?,
        },
        "transferred" => Transition::Transferred {
            from: with_agent("from")?,
            to: with_agent("to")?,
        },
        "handed_back" => Transition::HandedBack {
            agent: with_agent("agent")?,
        },
        "resolved" => Transition::Resolved {
            by: with_agent("by"),
        },
        "reopened" => Transition::Reopened {
            to: state(v, "to")?,
        },
        _ => return None,
    })
}

fn state_change<J: Json>(v: &J) -> Option<StateChange> {
    Some(StateChange {
        from: state(v, "from")?,
        to: state(v, "to")?,
        cause: transition(&v.get("cause")?)?,
    })
}

/// A timeline entry.
pub fn message<J: Json>(v: &J) -> Option<Message> {
    Some(Message {
        id: uuid(v, "id")?,
        conversation_id: uuid(v, "conversation_id")?,
        seq: uint(v, "seq")?,
        client_msg_id: string(v, "client_msg_id"),
        author: author(&v.get("author")?)?,
        body: string(v, "body")?,
        created_at: int(v, "created_at")?,
        sources: list(v, "sources", |s| {
            Some(Source {
                entry_id: string(s, "entry_id")?,
                title: string(s, "title")?,
            })
        })?,
        confidence: v
            .get("confidence")
            .and_then(|c| c.number())
            .map(|c| c as f32),
        choices: list(v, "choices", |c| {
            Some(Choice {
                id: string(c, "id")?,
                label: string(c, "label")?,
            })
        })?,
        // A state change this widget cannot read (a newer server) still shows the message.
        event: v.get("event").as_ref().and_then(state_change),
    })
}

pub(crate) fn site<J: Json>(v: &J) -> Option<SiteInfo> {
    Some(SiteInfo {
        name: string(v, "name")?,
        assistant_name: string(v, "assistant_name")?,
        greeting: string(v, "greeting")?,
        color: string(v, "color")?,
        autonomy: Autonomy::parse(&string(v, "autonomy")?)?,
        agents_online: u32::try_from(uint(v, "agents_online")?).ok()?,
    })
}

fn conversation<J: Json>(v: &J) -> Option<ConversationView> {
    Some(ConversationView {
        id: uuid(v, "id")?,
        state: state(v, "state")?,
        assignee: v.get("assignee").as_ref().and_then(agent),
        last_seq: uint(v, "last_seq")?,
        messages: list(v, "messages", message)?,
    })
}

fn welcome<J: Json>(v: &J) -> Option<Welcome> {
    let session = v.get("session")?;
    let session = match string(&session, "kind")?.as_str() {
        "visitor" => Session::Visitor {
            visitor_token: string(&session, "visitor_token")?,
        },
        _ => return None,
    };
    Some(Welcome {
        protocol_version: u32::try_from(uint(v, "protocol_version")?).ok()?,
        session,
        site: match v.get("site") {
            Some(s) => Some(site(&s)?),
            None => None,
        },
        conversation: match v.get("conversation") {
            Some(c) => Some(conversation(&c)?),
            None => None,
        },
    })
}

/// An entry of the visitor's history list (only what the list shows).
fn summary<J: Json>(v: &J) -> Option<ConversationSummary> {
    Some(ConversationSummary {
        id: uuid(v, "id")?,
        state: state(v, "state")?,
        assignee: None,
        handoff_reason: None,
        last_seq: uint(v, "last_seq")?,
        preview: string(v, "preview").unwrap_or_default(),
        created_at: int(v, "created_at")?,
        updated_at: int(v, "updated_at")?,
        waiting_since: None,
        visitor: nexus_shared::VisitorInfo::default(),
    })
}

pub(crate) fn error_code(code: &str) -> ErrorCode {
    match code {
        "bad_frame" => ErrorCode::BadFrame,
        "frame_too_large" => ErrorCode::FrameTooLarge,
        "message_too_long" => ErrorCode::MessageTooLong,
        "empty_message" => ErrorCode::EmptyMessage,
        "rate_limited" => ErrorCode::RateLimited,
        "unsupported_version" => ErrorCode::UnsupportedVersion,
        "hello_required" => ErrorCode::HelloRequired,
        "unknown_site" => ErrorCode::UnknownSite,
        "origin_not_allowed" => ErrorCode::OriginNotAllowed,
        "identity_invalid" => ErrorCode::IdentityInvalid,
        "unauthorized" => ErrorCode::Unauthorized,
        "forbidden" => ErrorCode::Forbidden,
        "not_found" => ErrorCode::NotFound,
        "invalid_transition" => ErrorCode::InvalidTransition,
        "not_assignee" => ErrorCode::NotAssignee,
        "conversation_resolved" => ErrorCode::ConversationResolved,
        "too_many_connections" => ErrorCode::TooManyConnections,
        "invalid_credentials" => ErrorCode::InvalidCredentials,
        "login_throttled" => ErrorCode::LoginThrottled,
        "validation" => ErrorCode::Validation,
        "unavailable" => ErrorCode::Unavailable,
        "internal" => ErrorCode::Internal,
        _ => ErrorCode::Unknown,
    }
}

pub(crate) fn presence(status: &str) -> Option<Presence> {
    Some(match status {
        "online" => Presence::Online,
        "away" => Presence::Away,
        "offline" => Presence::Offline,
        _ => return None,
    })
}

/// Reads a server frame. `None` for frames the visitor widget has no use for.
pub fn decode<J: Json>(v: &J) -> Option<ServerFrame> {
    let kind = string(v, "type")?;
    if kind == "pong" {
        return Some(ServerFrame::Pong);
    }
    let d = v.get("data")?;
    let d = &d;
    Some(match kind.as_str() {
        "welcome" => ServerFrame::Welcome(welcome(d)?),
        "message" => ServerFrame::Message(message(d)?),
        "ack" => ServerFrame::Ack {
            client_msg_id: string(d, "client_msg_id")?,
            conversation_id: uuid(d, "conversation_id")?,
            message_id: uuid(d, "message_id")?,
            seq: uint(d, "seq")?,
            duplicate: flag(d, "duplicate").unwrap_or(false),
        },
        "history" => ServerFrame::History {
            conversation_id: uuid(d, "conversation_id")?,
            messages: list(d, "messages", message)?,
            has_more: flag(d, "has_more")?,
        },
        "state" => ServerFrame::State {
            conversation_id: uuid(d, "conversation_id")?,
            state: state(d, "state")?,
            assignee: d.get("assignee").as_ref().and_then(agent),
            reason: d.get("reason").as_ref().and_then(reason),
        },
        "typing" => ServerFrame::Typing {
            conversation_id: uuid(d, "conversation_id")?,
            author: author(&d.get("author")?)?,
            typing: flag(d, "typing")?,
        },
        "queue" => ServerFrame::Queue {
            conversation_id: uuid(d, "conversation_id")?,
            position: u32::try_from(uint(d, "position")?).ok()?,
        },
        "presence" => ServerFrame::Presence {
            agent: d.get("agent").as_ref().and_then(agent),
            status: string(d, "status").as_deref().and_then(presence),
            agents_online: u32::try_from(uint(d, "agents_online")?).ok()?,
        },
        "streaming" => ServerFrame::Streaming(nexus_shared::Streaming {
            conversation_id: uuid(d, "conversation_id")?,
            text: string(d, "text")?,
        }),
        "conversations" => ServerFrame::Conversations {
            conversations: list(d, "conversations", summary)?,
        },
        "offline" => ServerFrame::Offline {
            conversation_id: uuid(d, "conversation_id")?,
            message: string(d, "message")?,
        },
        "error" => ServerFrame::Error(ErrorBody {
            code: error_code(&string(d, "code")?),
            message: string(d, "message").unwrap_or_default(),
            client_msg_id: string(d, "client_msg_id"),
        }),
        _ => return None,
    })
}

// ----- writing -----

/// A JSON object under construction.
pub(crate) struct Obj(String);

impl Obj {
    pub(crate) fn new() -> Self {
        Self(String::from("{"))
    }

    pub(crate) fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_str(&mut self.0, key);
        self.0.push(':');
    }

    pub(crate) fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_str(&mut self.0, value);
        self
    }

    pub(crate) fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    pub(crate) fn num(mut self, key: &str, value: u64) -> Self {
        self.key(key);
        self.0.push_str(&value.to_string());
        self
    }

    pub(crate) fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.0.push_str(json);
        self
    }

    pub(crate) fn done(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// Appends `s` as a JSON string.
fn push_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let b = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(HEX[b >> 4] as char);
                out.push(HEX[b & 15] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(crate) fn frame(kind: &str, data: Option<String>) -> String {
    let f = Obj::new().str("type", kind);
    match data {
        Some(data) => f.raw("data", &data).done(),
        None => f.done(),
    }
}

/// Writes a client frame. Only the frames a visitor sends are supported; `None` for others.
pub fn encode(f: &ClientFrame) -> Option<String> {
    let id = uuid_string;
    Some(match f {
        ClientFrame::Hello(hello) => {
            let Auth::Visitor {
                site_key,
                visitor_token,
                conversation_id,
                identity,
                page_url,
                locale,
            } = &hello.auth
            else {
                return None;
            };
            let auth = Obj::new()
                .str("role", "visitor")
                .str("site_key", site_key)
                .opt_str("visitor_token", visitor_token.as_deref())
                .opt_str(
                    "conversation_id",
                    conversation_id.as_ref().map(id).as_deref(),
                )
                .opt_str("page_url", page_url.as_deref())
                .opt_str("locale", locale.as_deref());
            let auth = match identity {
                Some(who) => auth.raw(
                    "identity",
                    &Obj::new()
                        .str("id", &who.id)
                        .opt_str("name", who.name.as_deref())
                        .opt_str("email", who.email.as_deref())
                        .opt_str("hash", who.hash.as_deref())
                        .done(),
                ),
                None => auth,
            }
            .done();
            let data = Obj::new()
                .num("protocol_version", u64::from(hello.protocol_version))
                .raw("auth", &auth)
                .done();
            frame("hello", Some(data))
        }
        ClientFrame::Send {
            conversation_id,
            client_msg_id,
            body,
        } => {
            let data = Obj::new()
                .opt_str(
                    "conversation_id",
                    conversation_id.as_ref().map(id).as_deref(),
                )
                .str("client_msg_id", client_msg_id)
                .str("body", body)
                .done();
            frame("send", Some(data))
        }
        ClientFrame::Resume {
            conversation_id,
            after_seq,
        } => {
            let data = Obj::new()
                .str("conversation_id", &id(conversation_id))
                .num("after_seq", *after_seq)
                .done();
            frame("resume", Some(data))
        }
        ClientFrame::RequestHuman { conversation_id } => {
            let data = Obj::new()
                .str("conversation_id", &id(conversation_id))
                .done();
            frame("request_human", Some(data))
        }
        ClientFrame::Choose {
            conversation_id,
            message_id,
            choice_id,
            client_msg_id,
        } => {
            let data = Obj::new()
                .str("conversation_id", &id(conversation_id))
                .str("message_id", &id(message_id))
                .str("choice_id", choice_id)
                .str("client_msg_id", client_msg_id)
                .done();
            frame("choose", Some(data))
        }
        ClientFrame::Typing {
            conversation_id,
            typing,
        } => {
            let data = Obj::new()
                .str("conversation_id", &id(conversation_id))
                .raw("typing", if *typing { "true" } else { "false" })
                .done();
            frame("typing", Some(data))
        }
        ClientFrame::Feedback {
            conversation_id,
            message_id,
            helpful,
        } => {
            let data = Obj::new()
                .str("conversation_id", &id(conversation_id))
                .str("message_id", &id(message_id))
                .raw("helpful", if *helpful { "true" } else { "false" })
                .done();
            frame("feedback", Some(data))
        }
        ClientFrame::Csat {
            conversation_id,
            score,
            comment,
        } => {
            let data = Obj::new()
                .str("conversation_id", &id(conversation_id))
                .num("score", u64::from(*score))
                .opt_str("comment", comment.as_deref())
                .done();
            frame("csat", Some(data))
        }
        ClientFrame::LeaveEmail {
            conversation_id,
            email,
        } => {
            let data = Obj::new()
                .str("conversation_id", &id(conversation_id))
                .str("email", email)
                .done();
            frame("leave_email", Some(data))
        }
        ClientFrame::Ping => frame("ping", None),
        ClientFrame::NewConversation => frame("new_conversation", None),
        ClientFrame::ListConversations => frame("list_conversations", None),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use nexus_shared::{ConversationView, Hello, PROTOCOL_VERSION};
    use serde_json::json;

    use super::*;

    const CONV: Uuid = Uuid::from_u128(0x11);
    const MSG: Uuid = Uuid::from_u128(0x22);

    fn ana() -> AgentRef {
        AgentRef {
            id: Uuid::from_u128(0x33),
            name: "Ana".into(),
        }
    }

    fn msg(author: Author) -> Message {
        Message {
            id: MSG,
            conversation_id: CONV,
            seq: 2,
            client_msg_id: Some("c-1".into()),
            author,
            body: "Go to \"Orders\" and press Cancel.\n<b>bold?</b>".into(),
            created_at: 1_700_000_000_000,
            sources: vec![Source {
                entry_id: "cancel_order".into(),
                title: "Cancel an order".into(),
            }],
            confidence: Some(0.5),
            choices: vec![Choice {
                id: "a".into(),
                label: "Track an order".into(),
            }],
            event: None,
        }
    }

    /// serde (the server's encoder) → this module's decoder gives the same frame back.
    fn round_trip(frame: ServerFrame) {
        let value = serde_json::to_value(&frame).unwrap();
        assert_eq!(decode(&value), Some(frame), "{value}");
    }

    #[test]
    fn reads_every_frame_a_visitor_gets() {
        let transitions = [
            Transition::Escalated {
                reason: HandoffReason::Sensitive {
                    category: "legal_threat".into(),
                },
            },
            Transition::TakenOver { agent: ana() },
            Transition::Transferred {
                from: ana(),
                to: ana(),
            },
            Transition::HandedBack { agent: ana() },
            Transition::Resolved { by: None },
            Transition::Resolved { by: Some(ana()) },
            Transition::Reopened {
                to: ConversationState::Ai,
            },
        ];
        for cause in transitions {
            round_trip(ServerFrame::Message(Message {
                event: Some(StateChange {
                    from: ConversationState::Waiting,
                    to: ConversationState::Human,
                    cause,
                }),
                ..msg(Author::System)
            }));
        }
        for author in [
            Author::Visitor,
            Author::Ai,
            Author::System,
            Author::Agent(ana()),
        ] {
            round_trip(ServerFrame::Message(msg(author.clone())));
            round_trip(ServerFrame::Typing {
                conversation_id: CONV,
                author,
                typing: true,
            });
        }
        round_trip(ServerFrame::Message(Message {
            client_msg_id: None,
            sources: vec![],
            confidence: None,
            choices: vec![],
            ..msg(Author::Ai)
        }));
        round_trip(ServerFrame::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            session: Session::Visitor {
                visitor_token: "tok".into(),
            },
            site: Some(SiteInfo {
                name: "Demo".into(),
                assistant_name: "Nexus".into(),
                greeting: "Hi!".into(),
                color: "#4f46e5".into(),
                autonomy: Autonomy::Review,
                agents_online: 2,
            }),
            conversation: Some(ConversationView {
                id: CONV,
                state: ConversationState::Human,
                assignee: Some(ana()),
                last_seq: 2,
                messages: vec![msg(Author::Visitor), msg(Author::Ai)],
            }),
        }));
        round_trip(ServerFrame::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            session: Session::Visitor {
                visitor_token: "tok".into(),
            },
            site: None,
            conversation: None,
        }));
        for duplicate in [false, true] {
            round_trip(ServerFrame::Ack {
                client_msg_id: "c-1".into(),
                conversation_id: CONV,
                message_id: MSG,
                seq: 7,
                duplicate,
            });
        }
        round_trip(ServerFrame::History {
            conversation_id: CONV,
            messages: vec![msg(Author::Ai)],
            has_more: true,
        });
        for reason in [
            HandoffReason::LowConfidence,
            HandoffReason::OutOfScope,
            HandoffReason::VisitorAsked,
            HandoffReason::Frustration,
            HandoffReason::RepeatedFailure,
            HandoffReason::EngineError,
            HandoffReason::AgentTakeover,
            HandoffReason::AutonomyOff,
            HandoffReason::Sensitive {
                category: "account_security".into(),
            },
        ] {
            round_trip(ServerFrame::State {
                conversation_id: CONV,
                state: ConversationState::Waiting,
                assignee: None,
                reason: Some(reason),
            });
        }
        round_trip(ServerFrame::State {
            conversation_id: CONV,
            state: ConversationState::Human,
            assignee: Some(ana()),
            reason: None,
        });
        round_trip(ServerFrame::Queue {
            conversation_id: CONV,
            position: 3,
        });
        round_trip(ServerFrame::Presence {
            agent: Some(ana()),
            status: Some(Presence::Away),
            agents_online: 1,
        });
        round_trip(ServerFrame::Offline {
            conversation_id: CONV,
            message: "Back at 9:00.".into(),
        });
        round_trip(ServerFrame::Conversations {
            conversations: vec![nexus_shared::ConversationSummary {
                id: CONV,
                state: ConversationState::Resolved,
                assignee: None,
                handoff_reason: None,
                last_seq: 4,
                preview: "Thanks!".into(),
                created_at: 1,
                updated_at: 2,
                waiting_since: None,
                visitor: nexus_shared::VisitorInfo::default(),
            }],
        });
        round_trip(ServerFrame::Streaming(nexus_shared::Streaming {
            conversation_id: CONV,
            text: "You can \"return\"".into(),
        }));
        round_trip(ServerFrame::Pong);
    }

    #[test]
    fn reads_every_error_code() {
        for code in [
            ErrorCode::BadFrame,
            ErrorCode::FrameTooLarge,
            ErrorCode::MessageTooLong,
            ErrorCode::EmptyMessage,
            ErrorCode::RateLimited,
            ErrorCode::UnsupportedVersion,
            ErrorCode::HelloRequired,
            ErrorCode::UnknownSite,
            ErrorCode::OriginNotAllowed,
            ErrorCode::IdentityInvalid,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::InvalidTransition,
            ErrorCode::NotAssignee,
            ErrorCode::ConversationResolved,
            ErrorCode::TooManyConnections,
            ErrorCode::InvalidCredentials,
            ErrorCode::LoginThrottled,
            ErrorCode::Validation,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            round_trip(ServerFrame::Error(ErrorBody::new(code, "x")));
        }
        round_trip(ServerFrame::Error(
            ErrorBody::new(ErrorCode::RateLimited, "slow").for_message("c-1"),
        ));
        let newer = json!({"type": "error", "data": {"code": "brand_new", "message": "x"}});
        assert_eq!(
            decode(&newer),
            Some(ServerFrame::Error(ErrorBody::new(ErrorCode::Unknown, "x")))
        );
    }

    #[test]
    fn uuids_read_and_write_like_the_uuid_crate() {
        for id in [
            Uuid::nil(),
            CONV,
            Uuid::from_u128(u128::MAX),
            Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
        ] {
            assert_eq!(uuid_string(&id), id.to_string());
            assert_eq!(parse_uuid(&id.to_string()), Some(id));
            assert_eq!(parse_uuid(&id.to_string().to_uppercase()), Some(id));
        }
        for bad in [
            "",
            "0123",
            "00000000-0000-0000-0000-00000000000g",
            "00000000_0000-0000-0000-000000000000",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad}");
        }
    }

    #[test]
    fn skips_what_it_cannot_read() {
        for value in [
            json!({"type": "brand_new_frame", "data": {}}),
            json!({"type": "message", "data": {"id": "not-a-uuid"}}),
            json!({"type": "message"}),
            json!("just a string"),
            json!({"type": "welcome", "data": {"protocol_version": 1,
                "session": {"kind": "agent", "agent": {"id": CONV, "name": "A"}, "role": "agent"}}}),
        ] {
            assert_eq!(decode(&value), None, "{value}");
        }
    }

    /// This module's encoder → serde (the server's decoder) gives the same frame back.
    fn server_reads(frame: ClientFrame) {
        let text = encode(&frame).expect("a visitor frame");
        let back: ClientFrame =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(back, frame, "{text}");
    }

    #[test]
    fn writes_every_frame_a_visitor_sends() {
        let ada = nexus_shared::Identity {
            id: "u-1 \"x\"".into(),
            name: Some("Ada".into()),
            email: Some("ada@example.com".into()),
            hash: Some("ab12".into()),
        };
        for (token, conversation, identity) in [
            (None, None, None),
            (Some("tok".to_owned()), Some(CONV), Some(ada)),
        ] {
            server_reads(ClientFrame::Hello(Hello {
                protocol_version: PROTOCOL_VERSION,
                auth: Auth::Visitor {
                    site_key: "demo".into(),
                    visitor_token: token,
                    conversation_id: conversation,
                    identity,
                    page_url: Some("https://shop.example/?q=\"x\"&y=1".into()),
                    locale: Some("de-CH".into()),
                },
            }));
        }
        for conversation_id in [None, Some(CONV)] {
            server_reads(ClientFrame::Send {
                conversation_id,
                client_msg_id: "c-1".into(),
                body: "quote \" backslash \\ newline \n tab \t bell \u{7} emoji 🎉 <img src=x>"
                    .into(),
            });
        }
        server_reads(ClientFrame::Resume {
            conversation_id: CONV,
            after_seq: 41,
        });
        server_reads(ClientFrame::RequestHuman {
            conversation_id: CONV,
        });
        server_reads(ClientFrame::Choose {
            conversation_id: CONV,
            message_id: MSG,
            choice_id: "track_order".into(),
            client_msg_id: "c-2".into(),
        });
        for flag in [false, true] {
            server_reads(ClientFrame::Typing {
                conversation_id: CONV,
                typing: flag,
            });
            server_reads(ClientFrame::Feedback {
                conversation_id: CONV,
                message_id: MSG,
                helpful: flag,
            });
        }
        for comment in [None, Some("Fast \"and\" kind\n👍".to_owned())] {
            server_reads(ClientFrame::Csat {
                conversation_id: CONV,
                score: 5,
                comment,
            });
        }
        server_reads(ClientFrame::LeaveEmail {
            conversation_id: CONV,
            email: "ada@example.com".into(),
        });
        server_reads(ClientFrame::Ping);
        server_reads(ClientFrame::NewConversation);
        server_reads(ClientFrame::ListConversations);
        assert_eq!(
            encode(&ClientFrame::Watch {
                conversation_id: CONV
            }),
            None
        );
    }
}
