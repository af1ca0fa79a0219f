//! Pins the exact JSON of the wire protocol. A failing test here means a wire change: bump
//! `PROTOCOL_VERSION` or make the change backwards compatible, and update `shared/PROTOCOL.md`.

use nexus_shared::*;
use serde_json::{Value, json};
use uuid::Uuid;

const CONV: Uuid = Uuid::from_u128(0x11);
const MSG: Uuid = Uuid::from_u128(0x22);
const AGENT: Uuid = Uuid::from_u128(0x33);

fn agent() -> AgentRef {
    AgentRef {
        id: AGENT,
        name: "Ana".into(),
    }
}

/// Serializes `value`, compares with `expected`, and parses `expected` back into an equal value.
#[track_caller]
fn pin<T>(value: &T, expected: Value)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(serde_json::to_value(value).unwrap(), expected);
    let back: T = serde_json::from_value(expected).unwrap();
    assert_eq!(&back, value);
}

#[test]
fn hello_visitor() {
    pin(
        &ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            auth: Auth::Visitor {
                site_key: "demo".into(),
                visitor_token: Some("vt_abc".into()),
                conversation_id: None,
                identity: None,
                page_url: Some("http://127.0.0.1/".into()),
                locale: Some("en".into()),
            },
        }),
        json!({"type": "hello", "data": {"protocol_version": 1, "auth": {
            "role": "visitor", "site_key": "demo", "visitor_token": "vt_abc",
            "page_url": "http://127.0.0.1/", "locale": "en"}}}),
    );
}

#[test]
fn hello_agent() {
    pin(
        &ClientFrame::Hello(Hello {
            protocol_version: 1,
            auth: Auth::Agent {
                session_token: "st".into(),
            },
        }),
        json!({"type": "hello", "data": {"protocol_version": 1,
            "auth": {"role": "agent", "session_token": "st"}}}),
    );
}

#[test]
fn send_and_ack() {
    pin(
        &ClientFrame::Send {
            conversation_id: Some(CONV),
            client_msg_id: "c1".into(),
            body: "how can I cancel my order".into(),
        },
        json!({"type": "send", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000011",
            "client_msg_id": "c1", "body": "how can I cancel my order"}}),
    );
    pin(
        &ServerFrame::Ack {
            client_msg_id: "c1".into(),
            conversation_id: CONV,
            message_id: MSG,
            seq: 7,
            duplicate: false,
        },
        json!({"type": "ack", "data": {"client_msg_id": "c1",
            "conversation_id": "00000000-0000-0000-0000-000000000011",
            "message_id": "00000000-0000-0000-0000-000000000022", "seq": 7, "duplicate": false}}),
    );
}

#[test]
fn unit_frames() {
    pin(&ClientFrame::Ping, json!({"type": "ping"}));
    pin(&ServerFrame::Pong, json!({"type": "pong"}));
    pin(
        &ClientFrame::NewConversation,
        json!({"type": "new_conversation"}),
    );
}

#[test]
fn ai_answer_with_source_and_confidence() {
    pin(
        &ServerFrame::Message(Message {
            id: MSG,
            conversation_id: CONV,
            seq: 2,
            client_msg_id: None,
            author: Author::Ai,
            body: "Go to Orders and press Cancel.".into(),
            created_at: 1_700_000_000_000,
            sources: vec![Source {
                entry_id: "cancel_order".into(),
                title: "Cancel an order".into(),
            }],
            confidence: Some(0.5),
            choices: vec![],
            event: None,
        }),
        json!({"type": "message", "data": {
            "id": "00000000-0000-0000-0000-000000000022",
            "conversation_id": "00000000-0000-0000-0000-000000000011",
            "seq": 2, "author": {"kind": "ai"}, "body": "Go to Orders and press Cancel.",
            "created_at": 1_700_000_000_000_i64,
            "sources": [{"entry_id": "cancel_order", "title": "Cancel an order"}],
            "confidence": 0.5}}),
    );
}

#[test]
fn clarify_choices() {
    let m = Message {
        id: MSG,
        conversation_id: CONV,
        seq: 3,
        client_msg_id: None,
        author: Author::Ai,
        body: "Which one do you mean?".into(),
        created_at: 5,
        sources: vec![],
        confidence: None,
        choices: vec![
            Choice {
                id: "track_order".into(),
                label: "Track an order".into(),
            },
            Choice {
                id: "track_refund".into(),
                label: "Track a refund".into(),
            },
        ],
        event: None,
    };
    pin(
        &m,
        json!({"id": "00000000-0000-0000-0000-000000000022",
            "conversation_id": "00000000-0000-0000-0000-000000000011", "seq": 3,
            "author": {"kind": "ai"}, "body": "Which one do you mean?", "created_at": 5,
            "choices": [{"id": "track_order", "label": "Track an order"},
                        {"id": "track_refund", "label": "Track a refund"}]}),
    );
}

#[test]
fn agent_author_and_state_change() {
    pin(
        &Message {
            id: MSG,
            conversation_id: CONV,
            seq: 4,
            client_msg_id: None,
            author: Author::System,
            body: "Ana joined the conversation.".into(),
            created_at: 9,
            sources: vec![],
            confidence: None,
            choices: vec![],
            event: Some(StateChange {
                from: ConversationState::Waiting,
                to: ConversationState::Human,
                cause: Transition::TakenOver { agent: agent() },
            }),
        },
        json!({"id": "00000000-0000-0000-0000-000000000022",
            "conversation_id": "00000000-0000-0000-0000-000000000011", "seq": 4,
            "author": {"kind": "system"}, "body": "Ana joined the conversation.", "created_at": 9,
            "event": {"from": "waiting", "to": "human", "cause": {"kind": "taken_over",
                "agent": {"id": "00000000-0000-0000-0000-000000000033", "name": "Ana"}}}}),
    );
    pin(
        &Author::Agent(agent()),
        json!({"kind": "agent", "id": "00000000-0000-0000-0000-000000000033", "name": "Ana"}),
    );
}

#[test]
fn handoff_reasons() {
    pin(
        &Transition::Escalated {
            reason: HandoffReason::Sensitive {
                category: "legal_threat".into(),
            },
        },
        json!({"kind": "escalated", "reason": {"reason": "sensitive", "category": "legal_threat"}}),
    );
    for (reason, code) in [
        (HandoffReason::LowConfidence, "low_confidence"),
        (HandoffReason::OutOfScope, "out_of_scope"),
        (HandoffReason::VisitorAsked, "visitor_asked"),
        (HandoffReason::Frustration, "frustration"),
        (HandoffReason::RepeatedFailure, "repeated_failure"),
        (HandoffReason::EngineError, "engine_error"),
        (HandoffReason::AgentTakeover, "agent_takeover"),
        (HandoffReason::AutonomyOff, "autonomy_off"),
    ] {
        assert_eq!(reason.code(), code);
        pin(&reason, json!({ "reason": code }));
    }
}

#[test]
fn state_frame() {
    pin(
        &ServerFrame::State {
            conversation_id: CONV,
            state: ConversationState::Waiting,
            assignee: None,
            reason: Some(HandoffReason::VisitorAsked),
        },
        json!({"type": "state", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000011",
            "state": "waiting", "reason": {"reason": "visitor_asked"}}}),
    );
}

#[test]
fn review_draft_decisions() {
    pin(
        &ClientFrame::ReviewDraft {
            conversation_id: CONV,
            draft_id: MSG,
            decision: DraftDecision::Edit {
                body: "Better text".into(),
            },
        },
        json!({"type": "review_draft", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000011",
            "draft_id": "00000000-0000-0000-0000-000000000022",
            "decision": "edit", "body": "Better text"}}),
    );
    pin(
        &ClientFrame::ReviewDraft {
            conversation_id: CONV,
            draft_id: MSG,
            decision: DraftDecision::Approve,
        },
        json!({"type": "review_draft", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000011",
            "draft_id": "00000000-0000-0000-0000-000000000022", "decision": "approve"}}),
    );
}

#[test]
fn feedback_csat_typing_presence_note() {
    pin(
        &ClientFrame::Feedback {
            conversation_id: CONV,
            message_id: MSG,
            helpful: false,
        },
        json!({"type": "feedback", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000011",
            "message_id": "00000000-0000-0000-0000-000000000022", "helpful": false}}),
    );
    pin(
        &ClientFrame::Csat {
            conversation_id: CONV,
            score: 5,
            comment: Some("great".into()),
        },
        json!({"type": "csat", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000011", "score": 5,
            "comment": "great"}}),
    );
    pin(
        &ServerFrame::Typing {
            conversation_id: CONV,
            author: Author::Ai,
            typing: true,
        },
        json!({"type": "typing", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000011",
            "author": {"kind": "ai"}, "typing": true}}),
    );
    pin(
        &ServerFrame::Presence {
            agent: Some(agent()),
            status: Some(Presence::Away),
            agents_online: 0,
        },
        json!({"type": "presence", "data": {
            "agent": {"id": "00000000-0000-0000-0000-000000000033", "name": "Ana"},
            "status": "away", "agents_online": 0}}),
    );
    pin(
        &ClientFrame::Note {
            conversation_id: CONV,
            client_msg_id: "n1".into(),
            body: "VIP customer".into(),
        },
        json!({"type": "note", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000011",
            "client_msg_id": "n1", "body": "VIP customer"}}),
    );
}

#[test]
fn errors_have_stable_codes() {
    pin(
        &ServerFrame::Error(
            ErrorBody::new(ErrorCode::MessageTooLong, "Too long.").for_message("c9"),
        ),
        json!({"type": "error", "data": {"code": "message_too_long", "message": "Too long.",
            "client_msg_id": "c9"}}),
    );
    // A newer server's code does not break an older client.
    let e: ErrorBody =
        serde_json::from_value(json!({"code": "brand_new_code", "message": "x"})).unwrap();
    assert_eq!(e.code, ErrorCode::Unknown);
}

#[test]
fn unknown_fields_are_ignored_and_new_optionals_default() {
    let f: ClientFrame = serde_json::from_value(json!({"type": "send", "data": {
        "client_msg_id": "c1", "body": "hi", "from_the_future": true}}))
    .unwrap();
    assert_eq!(
        f,
        ClientFrame::Send {
            conversation_id: None,
            client_msg_id: "c1".into(),
            body: "hi".into()
        }
    );
}

#[test]
fn malformed_frames_are_errors_not_panics() {
    for bad in [
        "",
        "{",
        "null",
        "[]",
        r#"{"type": "nope"}"#,
        r#"{"type": "send"}"#,
        r#"{"type": "send", "data": {"body": 5}}"#,
        r#"{"type": "csat", "data": {"conversation_id": "x", "score": 900}}"#,
    ] {
        assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
    }
}

#[test]
fn body_validation() {
    assert_eq!(validate_body("  hi  ").unwrap(), "hi");
    assert_eq!(
        validate_body("   ").unwrap_err().code,
        ErrorCode::EmptyMessage
    );
    let long = "é".repeat(limits::MAX_BODY_CHARS + 1);
    assert_eq!(
        validate_body(&long).unwrap_err().code,
        ErrorCode::MessageTooLong
    );
    assert!(validate_body(&"é".repeat(limits::MAX_BODY_CHARS)).is_ok());
}

#[test]
fn streaming_text_so_far() {
    pin(
        &ServerFrame::Streaming(Streaming {
            conversation_id: MSG,
            text: "You can return".into(),
        }),
        json!({"type": "streaming", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000022",
            "text": "You can return"}}),
    );
}

#[test]
fn health_names_the_engine_and_why_it_fell_back() {
    let mut health = Health {
        status: "ok".into(),
        version: "0.1.0".into(),
        protocol_version: 1,
        engine: "minilm".into(),
        engine_reason: None,
        database: "sqlite".into(),
    };
    pin(
        &health,
        json!({"status": "ok", "version": "0.1.0", "protocol_version": 1,
               "engine": "minilm", "database": "sqlite"}),
    );
    health.engine = "lexical".into();
    health.engine_reason = Some("the embedding model could not be loaded".into());
    pin(
        &health,
        json!({"status": "ok", "version": "0.1.0", "protocol_version": 1, "engine": "lexical",
               "engine_reason": "the embedding model could not be loaded",
               "database": "sqlite"}),
    );
}

#[test]
fn visitor_history_list() {
    pin(
        &ClientFrame::ListConversations,
        json!({"type": "list_conversations"}),
    );
    pin(
        &ServerFrame::Conversations {
            conversations: vec![ConversationSummary {
                id: CONV,
                state: ConversationState::Resolved,
                assignee: None,
                handoff_reason: None,
                last_seq: 4,
                preview: "Thanks!".into(),
                created_at: 1_700_000_000_000,
                updated_at: 1_700_000_100_000,
                waiting_since: None,
                visitor: VisitorInfo::default(),
            }],
        },
        json!({"type": "conversations", "data": {"conversations": [{
            "id": "00000000-0000-0000-0000-000000000011", "state": "resolved", "last_seq": 4,
            "preview": "Thanks!", "created_at": 1_700_000_000_000_u64,
            "updated_at": 1_700_000_100_000_u64, "visitor": {}}]}}),
    );
}
