//! The agent-only frames, read and written like the visitor's (see [`super`]); everything the
//! two share is read and written there. A module of its own so that the visitor's bundle does
//! not carry it.

use crate::protocol::{
    Auth, ClientFrame, ConversationSummary, Draft, DraftDecision, InboxCounts, InboxPage, Note,
    ServerFrame, ServerFrameTag, Session, SessionTag, VisitorInfo, Welcome,
};

use super::{
    Json, Obj, agent, confidence, flag, frame, int, list, name, reason, site, sources, state,
    string, uint, uuid, uuid_string,
};

fn summary<J: Json>(v: &J) -> Option<ConversationSummary> {
    let visitor = v.get("visitor");
    let info = |key| visitor.as_ref().and_then(|i| string(i, key));
    Some(ConversationSummary {
        id: uuid(v, "id")?,
        state: state(v, "state")?,
        assignee: v.get("assignee").as_ref().and_then(agent),
        handoff_reason: v.get("handoff_reason").as_ref().and_then(reason),
        last_seq: uint(v, "last_seq")?,
        preview: string(v, "preview").unwrap_or_default(),
        created_at: int(v, "created_at")?,
        updated_at: int(v, "updated_at")?,
        waiting_since: int(v, "waiting_since"),
        visitor: VisitorInfo {
            name: info("name"),
            email: info("email"),
            page_url: info("page_url"),
            locale: info("locale"),
        },
    })
}

fn counts<J: Json>(v: &J) -> Option<InboxCounts> {
    let count = |key| u32::try_from(uint(v, key)?).ok();
    Some(InboxCounts {
        open: count("open")?,
        waiting: count("waiting")?,
        live: count("live")?,
        mine: count("mine")?,
    })
}

fn decision<J: Json>(v: &J) -> Option<DraftDecision> {
    use crate::protocol::DraftDecisionTag as T;
    Some(match name(v, "decision")? {
        T::Approve => DraftDecision::Approve,
        T::Edit => DraftDecision::Edit {
            body: string(v, "body")?,
        },
        T::Reject => DraftDecision::Reject,
    })
}

/// Reads a server frame: the agent-only ones here, the rest with the visitor's reader.
pub fn decode<J: Json>(v: &J) -> Option<ServerFrame> {
    use ServerFrameTag as T;
    let tag: ServerFrameTag = name(v, "type")?;
    let Some(d) = v.get("data") else {
        return super::decode(v);
    };
    let d = &d;
    Some(match tag {
        T::Welcome => {
            let session = d.get("session")?;
            match name(&session, "kind")? {
                SessionTag::Agent => ServerFrame::Welcome(Welcome {
                    protocol_version: u32::try_from(uint(d, "protocol_version")?).ok()?,
                    session: Session::Agent {
                        agent: agent(&session.get("agent")?)?,
                        role: name(&session, "role")?,
                    },
                    site: match d.get("site") {
                        Some(s) => Some(site(&s)?),
                        None => None,
                    },
                    conversation: None,
                }),
                SessionTag::Visitor => return super::decode(v),
            }
        }
        T::Conversation => ServerFrame::Conversation(summary(d)?),
        T::Draft => ServerFrame::Draft(Draft {
            id: uuid(d, "id")?,
            conversation_id: uuid(d, "conversation_id")?,
            reply_to_seq: uint(d, "reply_to_seq")?,
            body: string(d, "body")?,
            sources: sources(d)?,
            confidence: confidence(d),
            created_at: int(d, "created_at")?,
        }),
        T::DraftReviewed => ServerFrame::DraftReviewed {
            conversation_id: uuid(d, "conversation_id")?,
            draft_id: uuid(d, "draft_id")?,
            decision: decision(d)?,
        },
        T::Note => ServerFrame::Note(Note {
            id: uuid(d, "id")?,
            conversation_id: uuid(d, "conversation_id")?,
            client_msg_id: string(d, "client_msg_id")?,
            agent: agent(&d.get("agent")?)?,
            body: string(d, "body")?,
            created_at: int(d, "created_at")?,
        }),
        T::InboxPage => ServerFrame::InboxPage(InboxPage {
            filter: name(d, "filter")?,
            after: uuid(d, "after"),
            lines: list(d, "lines", summary)?,
            has_more: flag(d, "has_more")?,
            counts: counts(&d.get("counts")?)?,
        }),
        T::InboxLine => ServerFrame::InboxLine {
            filter: name(d, "filter")?,
            line: summary(&d.get("line")?)?,
        },
        T::InboxLeave => ServerFrame::InboxLeave {
            filter: name(d, "filter")?,
            conversation_id: uuid(d, "conversation_id")?,
            state: state(d, "state")?,
        },
        T::InboxCounts => ServerFrame::InboxCounts(counts(d)?),
        T::Message
        | T::Ack
        | T::History
        | T::State
        | T::Typing
        | T::Queue
        | T::Presence
        | T::Streaming
        | T::Conversations
        | T::Offline
        | T::Error
        | T::Pong => return super::decode(v),
    })
}

/// Writes a client frame: the agent's ones here, the rest with the visitor's writer.
pub fn encode(f: &ClientFrame) -> Option<String> {
    let id = uuid_string;
    let tag = f.tag();
    let conv = |c| Obj::new().str("conversation_id", &id(c));
    let data = match f {
        ClientFrame::Hello(hello) => {
            let Auth::Agent { session_token } = &hello.auth else {
                return super::encode(f);
            };
            let auth = Obj::new()
                .str("role", hello.auth.tag().as_str())
                .str("session_token", session_token)
                .done();
            Obj::new()
                .num("protocol_version", u64::from(hello.protocol_version))
                .raw("auth", &auth)
        }
        ClientFrame::Watch { conversation_id }
        | ClientFrame::Unwatch { conversation_id }
        | ClientFrame::TakeOver { conversation_id }
        | ClientFrame::HandBack { conversation_id } => conv(conversation_id),
        ClientFrame::Resolve {
            conversation_id,
            teach,
        } => {
            let data = conv(conversation_id);
            match teach {
                Some(t) => {
                    let teach = Obj::new()
                        .str("question", &t.question)
                        .str("answer", &t.answer)
                        .opt_str("entry_id", t.entry_id.as_deref())
                        .done();
                    data.raw("teach", &teach)
                }
                None => data,
            }
        }
        ClientFrame::Note {
            conversation_id,
            client_msg_id,
            body,
        } => conv(conversation_id)
            .str("client_msg_id", client_msg_id)
            .str("body", body),
        ClientFrame::ReviewDraft {
            conversation_id,
            draft_id,
            decision,
        } => {
            let data = conv(conversation_id)
                .str("draft_id", &id(draft_id))
                .str("decision", decision.tag().as_str());
            match decision {
                DraftDecision::Approve | DraftDecision::Reject => data,
                DraftDecision::Edit { body } => data.str("body", body),
            }
        }
        ClientFrame::SetPresence { status } => Obj::new().str("status", status.as_str()),
        ClientFrame::Inbox {
            filter,
            limit,
            after,
        } => {
            let data = Obj::new().str("filter", filter.as_str());
            let data = match limit {
                Some(n) => data.num("limit", u64::from(*n)),
                None => data,
            };
            match after {
                Some(a) => data.str("after", &id(a)),
                None => data,
            }
        }
        ClientFrame::Send { .. }
        | ClientFrame::Resume { .. }
        | ClientFrame::Typing { .. }
        | ClientFrame::RequestHuman { .. }
        | ClientFrame::Choose { .. }
        | ClientFrame::Feedback { .. }
        | ClientFrame::Csat { .. }
        | ClientFrame::NewConversation
        | ClientFrame::LeaveEmail { .. }
        | ClientFrame::ListConversations
        | ClientFrame::Transfer { .. }
        | ClientFrame::Ping => return super::encode(f),
    };
    Some(frame(tag, Some(data.done())))
}
