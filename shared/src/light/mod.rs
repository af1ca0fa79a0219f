//! The light codec (feature `light`): the frames read and written without serde, for the
//! widget.
//!
//! Deriving the protocol types' serde code into the wasm costs more than the rest of the widget
//! together (the adjacently and internally tagged enums are buffered through serde's `Content`,
//! for every type, twice). The budget of the product issue (120 KB gzip for the whole app) does
//! not allow that, so the browser parses the JSON (`JSON.parse`) and this module reads the
//! parsed value through the small [`Json`] trait; it writes the frames the widget sends by hand.
//!
//! The names it reads and writes come from the tables of [`crate::table`], and its `match`es
//! over the protocol's enums are exhaustive, so a new variant does not compile until the codec
//! handles it. `shared/tests/wire.rs` pins it to the same JSON as serde.
//!
//! * [`decode`] and [`encode`]: what the visitor widget reads and writes.
//! * [`agent::decode`] and [`agent::encode`]: the agent app's, on top of those.

use uuid::Uuid;

use crate::protocol::{
    AgentRef, Auth, Author, AuthorTag, Choice, ClientFrame, ClientFrameTag, ConversationSummary,
    ConversationView, ErrorBody, HandoffReason, HandoffReasonTag, Message, ServerFrame,
    ServerFrameTag, Session, SessionTag, SiteInfo, Source, StateChange, VisitorInfo, Welcome,
};
use crate::state::{ConversationState, Transition, TransitionTag};
use crate::table::StringEnum;

pub mod agent;

/// A parsed JSON value: a browser `JsValue` in the widget, `serde_json::Value` in tests
/// (feature `serde_json`).
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

#[cfg(feature = "serde_json")]
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

// ----- reading -----

pub fn string<J: Json>(v: &J, key: &str) -> Option<String> {
    v.get(key)?.string()
}

pub fn uint<J: Json>(v: &J, key: &str) -> Option<u64> {
    let n = v.get(key)?.number()?;
    (n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_992.0).then_some(n as u64)
}

pub fn int<J: Json>(v: &J, key: &str) -> Option<i64> {
    let n = v.get(key)?.number()?;
    (n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_992.0).then_some(n as i64)
}

pub fn flag<J: Json>(v: &J, key: &str) -> Option<bool> {
    v.get(key)?.boolean()
}

pub fn uuid<J: Json>(v: &J, key: &str) -> Option<Uuid> {
    parse_uuid(&string(v, key)?)
}

/// A name from one of the tables of [`crate::table`], read as serde reads it
/// ([`StringEnum::read`]: an unknown error code is `ErrorCode::Unknown`).
pub fn name<J: Json, T: StringEnum>(v: &J, key: &str) -> Option<T> {
    T::read(&string(v, key)?)
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
pub fn list<J: Json, T>(v: &J, key: &str, item: impl Fn(&J) -> Option<T>) -> Option<Vec<T>> {
    match v.get(key) {
        None => Some(Vec::new()),
        Some(items) => items.items()?.iter().map(item).collect(),
    }
}

pub fn state<J: Json>(v: &J, key: &str) -> Option<ConversationState> {
    name(v, key)
}

pub fn agent<J: Json>(v: &J) -> Option<AgentRef> {
    Some(AgentRef {
        id: uuid(v, "id")?,
        name: string(v, "name")?,
    })
}

pub fn author<J: Json>(v: &J) -> Option<Author> {
    Some(match name(v, "kind")? {
        AuthorTag::Visitor => Author::Visitor,
        AuthorTag::Ai => Author::Ai,
        AuthorTag::System => Author::System,
        AuthorTag::Agent => Author::Agent(agent(v)?),
    })
}

pub fn reason<J: Json>(v: &J) -> Option<HandoffReason> {
    Some(match name(v, "reason")? {
        HandoffReasonTag::LowConfidence => HandoffReason::LowConfidence,
        HandoffReasonTag::OutOfScope => HandoffReason::OutOfScope,
        HandoffReasonTag::VisitorAsked => HandoffReason::VisitorAsked,
        HandoffReasonTag::Sensitive => HandoffReason::Sensitive {
            category: string(v, "category")?,
        },
        HandoffReasonTag::Frustration => HandoffReason::Frustration,
        HandoffReasonTag::RepeatedFailure => HandoffReason::RepeatedFailure,
        HandoffReasonTag::EngineError => HandoffReason::EngineError,
        HandoffReasonTag::EngineBusy => HandoffReason::EngineBusy,
        HandoffReasonTag::AgentTakeover => HandoffReason::AgentTakeover,
        HandoffReasonTag::AutonomyOff => HandoffReason::AutonomyOff,
    })
}

pub fn transition<J: Json>(v: &J) -> Option<Transition> {
    let with_agent = |key| v.get(key).as_ref().and_then(agent);
    Some(match name(v, "kind")? {
        TransitionTag::Escalated => Transition::Escalated {
            reason: reason(&v.get("reason")?)?,
        },
        TransitionTag::TakenOver => Transition::TakenOver {
            agent: with_agent("agent")?,
        },
        TransitionTag::Transferred => Transition::Transferred {
            from: with_agent("from")?,
            to: with_agent("to")?,
        },
        TransitionTag::HandedBack => Transition::HandedBack {
            agent: with_agent("agent")?,
        },
        TransitionTag::Resolved => Transition::Resolved {
            by: with_agent("by"),
        },
        TransitionTag::Reopened => Transition::Reopened {
            to: state(v, "to")?,
        },
    })
}

pub fn state_change<J: Json>(v: &J) -> Option<StateChange> {
    Some(StateChange {
        from: state(v, "from")?,
        to: state(v, "to")?,
        cause: transition(&v.get("cause")?)?,
    })
}

fn sources<J: Json>(v: &J) -> Option<Vec<Source>> {
    list(v, "sources", |s| {
        Some(Source {
            entry_id: string(s, "entry_id")?,
            title: string(s, "title")?,
            url: string(s, "url"),
        })
    })
}

fn confidence<J: Json>(v: &J) -> Option<f32> {
    v.get("confidence")
        .and_then(|c| c.number())
        .map(|c| c as f32)
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
        sources: sources(v)?,
        confidence: confidence(v),
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

pub fn site<J: Json>(v: &J) -> Option<SiteInfo> {
    Some(SiteInfo {
        name: string(v, "name")?,
        assistant_name: string(v, "assistant_name")?,
        greeting: string(v, "greeting")?,
        color: string(v, "color")?,
        autonomy: name(v, "autonomy")?,
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
    let session = match name(&session, "kind")? {
        SessionTag::Visitor => Session::Visitor {
            visitor_token: string(&session, "visitor_token")?,
        },
        // The agent app reads its own welcome (`agent::decode`).
        SessionTag::Agent => return None,
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
        visitor: VisitorInfo::default(),
    })
}

/// Reads a server frame. `None` for what the visitor widget does not understand (a frame type
/// of a newer server) or has no use for (the agent-only frames): those are skipped.
pub fn decode<J: Json>(v: &J) -> Option<ServerFrame> {
    use ServerFrameTag as T;
    let tag: ServerFrameTag = name(v, "type")?;
    let Some(d) = v.get("data") else {
        return (tag == T::Pong).then_some(ServerFrame::Pong);
    };
    let d = &d;
    Some(match tag {
        T::Welcome => ServerFrame::Welcome(welcome(d)?),
        T::Message => ServerFrame::Message(message(d)?),
        T::Ack => ServerFrame::Ack {
            client_msg_id: string(d, "client_msg_id")?,
            conversation_id: uuid(d, "conversation_id")?,
            message_id: uuid(d, "message_id")?,
            seq: uint(d, "seq")?,
            duplicate: flag(d, "duplicate").unwrap_or(false),
        },
        T::History => ServerFrame::History {
            conversation_id: uuid(d, "conversation_id")?,
            messages: list(d, "messages", message)?,
            has_more: flag(d, "has_more")?,
        },
        T::State => ServerFrame::State {
            conversation_id: uuid(d, "conversation_id")?,
            state: state(d, "state")?,
            assignee: d.get("assignee").as_ref().and_then(agent),
            reason: d.get("reason").as_ref().and_then(reason),
        },
        T::Typing => ServerFrame::Typing {
            conversation_id: uuid(d, "conversation_id")?,
            author: author(&d.get("author")?)?,
            typing: flag(d, "typing")?,
        },
        T::Queue => ServerFrame::Queue {
            conversation_id: uuid(d, "conversation_id")?,
            position: u32::try_from(uint(d, "position")?).ok()?,
        },
        T::Presence => ServerFrame::Presence {
            agent: d.get("agent").as_ref().and_then(agent),
            status: name(d, "status"),
            agents_online: u32::try_from(uint(d, "agents_online")?).ok()?,
        },
        T::Streaming => ServerFrame::Streaming(crate::protocol::Streaming {
            conversation_id: uuid(d, "conversation_id")?,
            text: string(d, "text")?,
        }),
        T::Conversations => ServerFrame::Conversations {
            conversations: list(d, "conversations", summary)?,
        },
        T::Offline => ServerFrame::Offline {
            conversation_id: uuid(d, "conversation_id")?,
            message: string(d, "message")?,
        },
        T::Error => ServerFrame::Error(ErrorBody {
            code: name(d, "code")?,
            message: string(d, "message").unwrap_or_default(),
            client_msg_id: string(d, "client_msg_id"),
        }),
        T::Pong => ServerFrame::Pong,
        // The agent app's (`agent::decode`).
        T::Conversation
        | T::Draft
        | T::DraftReviewed
        | T::Note
        | T::InboxPage
        | T::InboxLine
        | T::InboxLeave
        | T::InboxCounts => return None,
    })
}

// ----- writing -----

/// A JSON object under construction.
#[derive(Debug)]
pub struct Obj(String);

impl Default for Obj {
    fn default() -> Self {
        Self::new()
    }
}

impl Obj {
    pub fn new() -> Self {
        Self(String::from("{"))
    }

    pub fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_str(&mut self.0, key);
        self.0.push(':');
    }

    #[must_use]
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_str(&mut self.0, value);
        self
    }

    #[must_use]
    pub fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    #[must_use]
    pub fn num(mut self, key: &str, value: u64) -> Self {
        self.key(key);
        self.0.push_str(&value.to_string());
        self
    }

    /// `json` as it is: an object written with another [`Obj`], or a literal.
    #[must_use]
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.0.push_str(json);
        self
    }

    pub fn done(mut self) -> String {
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

/// `{"type": kind, "data": data}`, without `data` when it is `None`.
pub fn frame(kind: ClientFrameTag, data: Option<String>) -> String {
    let f = Obj::new().str("type", kind.as_str());
    match data {
        Some(data) => f.raw("data", &data).done(),
        None => f.done(),
    }
}

/// Writes a client frame. Only the frames a visitor sends are supported; `None` for others.
pub fn encode(f: &ClientFrame) -> Option<String> {
    let id = uuid_string;
    let tag = f.tag();
    let data = match f {
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
                .str("role", hello.auth.tag().as_str())
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
            Obj::new()
                .num("protocol_version", u64::from(hello.protocol_version))
                .raw("auth", &auth)
        }
        ClientFrame::Send {
            conversation_id,
            client_msg_id,
            body,
        } => Obj::new()
            .opt_str(
                "conversation_id",
                conversation_id.as_ref().map(id).as_deref(),
            )
            .str("client_msg_id", client_msg_id)
            .str("body", body),
        ClientFrame::Resume {
            conversation_id,
            after_seq,
        } => Obj::new()
            .str("conversation_id", &id(conversation_id))
            .num("after_seq", *after_seq),
        ClientFrame::RequestHuman { conversation_id } => {
            Obj::new().str("conversation_id", &id(conversation_id))
        }
        ClientFrame::Choose {
            conversation_id,
            message_id,
            choice_id,
            client_msg_id,
        } => Obj::new()
            .str("conversation_id", &id(conversation_id))
            .str("message_id", &id(message_id))
            .str("choice_id", choice_id)
            .str("client_msg_id", client_msg_id),
        ClientFrame::Typing {
            conversation_id,
            typing,
        } => Obj::new()
            .str("conversation_id", &id(conversation_id))
            .raw("typing", if *typing { "true" } else { "false" }),
        ClientFrame::Feedback {
            conversation_id,
            message_id,
            helpful,
        } => Obj::new()
            .str("conversation_id", &id(conversation_id))
            .str("message_id", &id(message_id))
            .raw("helpful", if *helpful { "true" } else { "false" }),
        ClientFrame::Csat {
            conversation_id,
            score,
            comment,
        } => Obj::new()
            .str("conversation_id", &id(conversation_id))
            .num("score", u64::from(*score))
            .opt_str("comment", comment.as_deref()),
        ClientFrame::LeaveEmail {
            conversation_id,
            email,
        } => Obj::new()
            .str("conversation_id", &id(conversation_id))
            .str("email", email),
        ClientFrame::Ping | ClientFrame::NewConversation | ClientFrame::ListConversations => {
            return Some(frame(tag, None));
        }
        // The agent app's (`agent::encode`); nobody sends `transfer` through this codec.
        ClientFrame::Watch { .. }
        | ClientFrame::Unwatch { .. }
        | ClientFrame::TakeOver { .. }
        | ClientFrame::HandBack { .. }
        | ClientFrame::Transfer { .. }
        | ClientFrame::Resolve { .. }
        | ClientFrame::Note { .. }
        | ClientFrame::ReviewDraft { .. }
        | ClientFrame::SetPresence { .. }
        | ClientFrame::Inbox { .. } => return None,
    };
    Some(frame(tag, Some(data.done())))
}
