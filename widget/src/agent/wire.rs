//! The agent-only frames, read and written without serde like the visitor's (see
//! [`crate::wire`]); everything the two share is read and written there.

use nexus_shared::{
    Auth, ClientFrame, ConversationSummary, Draft, DraftDecision, Note, Presence, Role,
    ServerFrame, Session, Source, VisitorInfo, Welcome,
};

use crate::wire::{
    self, Json, Obj, agent, frame, int, list, reason, site, state, string, uint, uuid, uuid_string,
};

/// Parses a frame for the agent app with the browser's `JSON.parse`.
pub fn parse(text: &str) -> Option<ServerFrame> {
    decode(&js_sys::JSON::parse(text).ok()?)
}

fn sources<J: Json>(v: &J) -> Option<Vec<Source>> {
    list(v, "sources", |s| {
        Some(Source {
            entry_id: string(s, "entry_id")?,
            title: string(s, "title")?,
        })
    })
}

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

fn decision<J: Json>(v: &J) -> Option<DraftDecision> {
    Some(match string(v, "decision")?.as_str() {
        "approve" => DraftDecision::Approve,
        "edit" => DraftDecision::Edit {
            body: string(v, "body")?,
        },
        "reject" => DraftDecision::Reject,
        _ => return None,
    })
}

fn role(s: &str) -> Option<Role> {
    Some(match s {
        "owner" => Role::Owner,
        "agent" => Role::Agent,
        _ => return None,
    })
}

/// Reads a server frame: the agent-only ones here, the rest with the visitor's reader.
pub fn decode<J: Json>(v: &J) -> Option<ServerFrame> {
    let kind = string(v, "type")?;
    let data = v.get("data");
    let d = match (&data, kind.as_str()) {
        (Some(d), "welcome" | "conversation" | "draft" | "draft_reviewed" | "note") => d,
        _ => return wire::decode(v),
    };
    Some(match kind.as_str() {
        "welcome" => {
            let session = d.get("session")?;
            if string(&session, "kind")? != "agent" {
                return wire::decode(v);
            }
            ServerFrame::Welcome(Welcome {
                protocol_version: u32::try_from(uint(d, "protocol_version")?).ok()?,
                session: Session::Agent {
                    agent: agent(&session.get("agent")?)?,
                    role: role(&string(&session, "role")?)?,
                },
                site: match d.get("site") {
                    Some(s) => Some(site(&s)?),
                    None => None,
                },
                conversation: None,
            })
        }
        "conversation" => ServerFrame::Conversation(summary(d)?),
        "draft" => ServerFrame::Draft(Draft {
            id: uuid(d, "id")?,
            conversation_id: uuid(d, "conversation_id")?,
            reply_to_seq: uint(d, "reply_to_seq")?,
            body: string(d, "body")?,
            sources: sources(d)?,
            confidence: d
                .get("confidence")
                .and_then(|c| c.number())
                .map(|c| c as f32),
            created_at: int(d, "created_at")?,
        }),
        "draft_reviewed" => ServerFrame::DraftReviewed {
            conversation_id: uuid(d, "conversation_id")?,
            draft_id: uuid(d, "draft_id")?,
            decision: decision(d)?,
        },
        _ => ServerFrame::Note(Note {
            id: uuid(d, "id")?,
            conversation_id: uuid(d, "conversation_id")?,
            client_msg_id: string(d, "client_msg_id")?,
            agent: agent(&d.get("agent")?)?,
            body: string(d, "body")?,
            created_at: int(d, "created_at")?,
        }),
    })
}

fn presence_str(p: Presence) -> &'static str {
    match p {
        Presence::Online => "online",
        Presence::Away => "away",
        Presence::Offline => "offline",
    }
}

/// Writes a client frame: the agent's ones here, the rest with the visitor's writer.
pub fn encode(f: &ClientFrame) -> Option<String> {
    let id = uuid_string;
    let conv = |kind: &str, c| frame(kind, Some(Obj::new().str("conversation_id", &id(c)).done()));
    Some(match f {
        ClientFrame::Hello(hello) => {
            let Auth::Agent { session_token } = &hello.auth else {
                return wire::encode(f);
            };
            let auth = Obj::new()
                .str("role", "agent")
                .str("session_token", session_token)
                .done();
            let data = Obj::new()
                .num("protocol_version", u64::from(hello.protocol_version))
                .raw("auth", &auth)
                .done();
            frame("hello", Some(data))
        }
        ClientFrame::Watch { conversation_id } => conv("watch", conversation_id),
        ClientFrame::Unwatch { conversation_id } => conv("unwatch", conversation_id),
        ClientFrame::TakeOver { conversation_id } => conv("take_over", conversation_id),
        ClientFrame::HandBack { conversation_id } => conv("hand_back", conversation_id),
        ClientFrame::Resolve {
            conversation_id,
            teach,
        } => {
            let mut data = Obj::new().str("conversation_id", &id(conversation_id));
            if let Some(t) = teach {
                let teach = Obj::new()
                    .str("question", &t.question)
                    .str("answer", &t.answer)
                    .opt_str("entry_id", t.entry_id.as_deref())
                    .done();
                data = data.raw("teach", &teach);
            }
            frame("resolve", Some(data.done()))
        }
        ClientFrame::Note {
            conversation_id,
            client_msg_id,
            body,
        } => {
            let data = Obj::new()
                .str("conversation_id", &id(conversation_id))
                .str("client_msg_id", client_msg_id)
                .str("body", body)
                .done();
            frame("note", Some(data))
        }
        ClientFrame::ReviewDraft {
            conversation_id,
            draft_id,
            decision,
        } => {
            let data = Obj::new()
                .str("conversation_id", &id(conversation_id))
                .str("draft_id", &id(draft_id));
            let data = match decision {
                DraftDecision::Approve => data.str("decision", "approve"),
                DraftDecision::Edit { body } => data.str("decision", "edit").str("body", body),
                DraftDecision::Reject => data.str("decision", "reject"),
            };
            frame("review_draft", Some(data.done()))
        }
        ClientFrame::SetPresence { status } => frame(
            "set_presence",
            Some(Obj::new().str("status", presence_str(*status)).done()),
        ),
        other => return wire::encode(other),
    })
}

#[cfg(test)]
mod tests {
    use nexus_shared::{
        AgentRef, ConversationState, HandoffReason, Hello, PROTOCOL_VERSION, Teach,
    };
    use uuid::Uuid;

    use super::*;

    const CONV: Uuid = Uuid::from_u128(0x11);
    const DRAFT: Uuid = Uuid::from_u128(0x22);

    fn ana() -> AgentRef {
        AgentRef {
            id: Uuid::from_u128(0x33),
            name: "Ana".into(),
        }
    }

    fn round_trip(frame: ServerFrame) {
        let value = serde_json::to_value(&frame).unwrap();
        assert_eq!(decode(&value), Some(frame), "{value}");
    }

    #[test]
    fn reads_every_frame_an_agent_gets() {
        round_trip(ServerFrame::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            session: Session::Agent {
                agent: ana(),
                role: Role::Owner,
            },
            site: None,
            conversation: None,
        }));
        round_trip(ServerFrame::Conversation(ConversationSummary {
            id: CONV,
            state: ConversationState::Waiting,
            assignee: None,
            handoff_reason: Some(HandoffReason::Sensitive {
                category: "legal".into(),
            }),
            last_seq: 4,
            preview: "I want to talk to a human".into(),
            created_at: 1,
            updated_at: 2,
            waiting_since: Some(3),
            visitor: VisitorInfo {
                name: None,
                email: Some("v@example.com".into()),
                page_url: Some("https://shop.example/".into()),
                locale: Some("en".into()),
            },
        }));
        round_trip(ServerFrame::Conversation(ConversationSummary {
            id: CONV,
            state: ConversationState::Human,
            assignee: Some(ana()),
            handoff_reason: None,
            last_seq: 4,
            preview: String::new(),
            created_at: 1,
            updated_at: 2,
            waiting_since: None,
            visitor: VisitorInfo::default(),
        }));
        round_trip(ServerFrame::Draft(Draft {
            id: DRAFT,
            conversation_id: CONV,
            reply_to_seq: 3,
            body: "You can cancel in Orders.".into(),
            sources: vec![Source {
                entry_id: "cancel_order".into(),
                title: "Cancel".into(),
            }],
            confidence: Some(0.5),
            created_at: 9,
        }));
        for decision in [
            DraftDecision::Approve,
            DraftDecision::Reject,
            DraftDecision::Edit { body: "x".into() },
        ] {
            round_trip(ServerFrame::DraftReviewed {
                conversation_id: CONV,
                draft_id: DRAFT,
                decision,
            });
        }
        round_trip(ServerFrame::Note(Note {
            id: DRAFT,
            conversation_id: CONV,
            client_msg_id: "n-1".into(),
            agent: ana(),
            body: "in a hurry".into(),
            created_at: 5,
        }));
        // The visitor's frames still read.
        round_trip(ServerFrame::Pong);
    }

    fn server_reads(frame: ClientFrame) {
        let text = encode(&frame).expect("an agent frame");
        let back: ClientFrame =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(back, frame, "{text}");
    }

    #[test]
    fn writes_every_frame_an_agent_sends() {
        server_reads(ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            auth: Auth::Agent {
                session_token: "tok\"en".into(),
            },
        }));
        let conversation_id = CONV;
        server_reads(ClientFrame::Watch { conversation_id });
        server_reads(ClientFrame::Unwatch { conversation_id });
        server_reads(ClientFrame::TakeOver { conversation_id });
        server_reads(ClientFrame::HandBack { conversation_id });
        server_reads(ClientFrame::Resolve {
            conversation_id,
            teach: None,
        });
        server_reads(ClientFrame::Resolve {
            conversation_id,
            teach: Some(Teach {
                question: "gift \"wrap\"?".into(),
                answer: "Yes.\nFor $4.".into(),
                entry_id: None,
            }),
        });
        server_reads(ClientFrame::Note {
            conversation_id,
            client_msg_id: "n-1".into(),
            body: "note".into(),
        });
        for decision in [
            DraftDecision::Approve,
            DraftDecision::Reject,
            DraftDecision::Edit {
                body: "edited".into(),
            },
        ] {
            server_reads(ClientFrame::ReviewDraft {
                conversation_id,
                draft_id: DRAFT,
                decision,
            });
        }
        for status in [Presence::Online, Presence::Away] {
            server_reads(ClientFrame::SetPresence { status });
        }
        server_reads(ClientFrame::Send {
            conversation_id: Some(CONV),
            client_msg_id: "a-1".into(),
            body: "Hi, this is Ana".into(),
        });
    }
}
