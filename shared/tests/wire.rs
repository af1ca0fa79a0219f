//! Pins the exact JSON of the wire protocol. A failing test here means a wire change: bump
//! `PROTOCOL_VERSION` or make the change backwards compatible, and update `shared/PROTOCOL.md`.
//!
//! Every pin checks both codecs on the same JSON: serde (the server's) and, for what the widget
//! reads or writes, the light codec (`nexus_shared::light`, the widget's). The second half of the
//! file checks the light codec further: every frame a visitor or an agent gets or sends, random
//! frames (proptest), and what it must skip.

use nexus_shared::light;
use nexus_shared::*;
use proptest::prelude::*;
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

/// Serde: serializes `value`, compares with `expected`, and parses `expected` back into an equal
/// value.
#[track_caller]
fn pin<T>(value: &T, expected: Value)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(serde_json::to_value(value).unwrap(), expected);
    let back: T = serde_json::from_value(expected).unwrap();
    assert_eq!(&back, value);
}

/// Both codecs on a value the widget reads: [`pin`], and the light reader `read` gives the same
/// value from `expected`.
#[track_caller]
fn pin_read<T>(value: &T, expected: Value, read: fn(&Value) -> Option<T>)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(read(&expected).as_ref(), Some(value), "light: {expected}");
    pin(value, expected);
}

/// Is `frame` one the visitor's reader reads (the agent app's reader reads all)?
fn visitor_gets(frame: &ServerFrame) -> bool {
    use ServerFrameTag as T;
    match frame.tag() {
        T::Welcome => matches!(
            frame,
            ServerFrame::Welcome(Welcome {
                session: Session::Visitor { .. },
                ..
            })
        ),
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
        | T::Pong => true,
        T::Conversation
        | T::Draft
        | T::DraftReviewed
        | T::Note
        | T::InboxPage
        | T::InboxLine
        | T::InboxLeave
        | T::InboxCounts => false,
    }
}

/// Is `frame` one the visitor's writer writes (the agent app's writes all but `transfer`)?
fn visitor_sends(frame: &ClientFrame) -> bool {
    use ClientFrameTag as T;
    match frame.tag() {
        T::Hello => matches!(
            frame,
            ClientFrame::Hello(Hello {
                auth: Auth::Visitor { .. },
                ..
            })
        ),
        T::Send
        | T::Resume
        | T::Typing
        | T::RequestHuman
        | T::Choose
        | T::Feedback
        | T::Csat
        | T::NewConversation
        | T::LeaveEmail
        | T::ListConversations
        | T::Ping => true,
        T::Watch
        | T::Unwatch
        | T::TakeOver
        | T::HandBack
        | T::Transfer
        | T::Resolve
        | T::Note
        | T::ReviewDraft
        | T::SetPresence
        | T::Inbox => false,
    }
}

/// The light codec reads `json` into `frame`: the agent app's reader always, the visitor's
/// for the frames it reads (and skips the others).
#[track_caller]
fn light_reads(frame: &ServerFrame, json: &Value) {
    assert_eq!(
        light::agent::decode(json).as_ref(),
        Some(frame),
        "agent: {json}"
    );
    let visitor = light::decode(json);
    if visitor_gets(frame) {
        assert_eq!(visitor.as_ref(), Some(frame), "visitor: {json}");
    } else {
        assert_eq!(visitor, None, "visitor: {json}");
    }
}

/// The light codec writes `frame` as `Some(text)` that serde reads back (`None`: the writer does
/// not write this frame).
#[track_caller]
fn light_writes(frame: &ClientFrame) -> Value {
    let text = light::agent::encode(frame).expect("the agent app's writer writes it");
    if visitor_sends(frame) {
        assert_eq!(light::encode(frame).as_deref(), Some(text.as_str()));
    } else {
        assert_eq!(light::encode(frame), None, "{text}");
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Both codecs on a server frame: [`pin`], and the light readers read `expected`.
#[track_caller]
fn pin_server(frame: &ServerFrame, expected: Value) {
    light_reads(frame, &expected);
    pin(frame, expected);
}

/// Both codecs on a client frame: [`pin`], and the light writers write exactly `expected`.
#[track_caller]
fn pin_client(frame: &ClientFrame, expected: Value) {
    assert_eq!(light_writes(frame), expected, "light");
    pin(frame, expected);
}

#[test]
fn hello_visitor() {
    pin_client(
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
    pin_client(
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
    pin_client(
        &ClientFrame::Send {
            conversation_id: Some(CONV),
            client_msg_id: "c1".into(),
            body: "how can I cancel my order".into(),
        },
        json!({"type": "send", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000011",
            "client_msg_id": "c1", "body": "how can I cancel my order"}}),
    );
    pin_server(
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
    pin_client(&ClientFrame::Ping, json!({"type": "ping"}));
    pin_server(&ServerFrame::Pong, json!({"type": "pong"}));
    pin_client(
        &ClientFrame::NewConversation,
        json!({"type": "new_conversation"}),
    );
}

#[test]
fn ai_answer_with_source_and_confidence() {
    pin_server(
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
                url: None,
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
    pin_read(
        &m,
        json!({"id": "00000000-0000-0000-0000-000000000022",
            "conversation_id": "00000000-0000-0000-0000-000000000011", "seq": 3,
            "author": {"kind": "ai"}, "body": "Which one do you mean?", "created_at": 5,
            "choices": [{"id": "track_order", "label": "Track an order"},
                        {"id": "track_refund", "label": "Track a refund"}]}),
        light::message,
    );
}

#[test]
fn agent_author_and_state_change() {
    pin_read(
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
        light::message,
    );
    pin_read(
        &Author::Agent(agent()),
        json!({"kind": "agent", "id": "00000000-0000-0000-0000-000000000033", "name": "Ana"}),
        light::author,
    );
}

#[test]
fn handoff_reasons() {
    pin_read(
        &Transition::Escalated {
            reason: HandoffReason::Sensitive {
                category: "legal_threat".into(),
            },
        },
        json!({"kind": "escalated", "reason": {"reason": "sensitive", "category": "legal_threat"}}),
        light::transition,
    );
    for &tag in HandoffReasonTag::ALL {
        let (reason, code) = reason_of(tag);
        assert_eq!(reason.tag(), tag);
        assert_eq!(reason.code(), code);
        let mut expected = json!({ "reason": code });
        if let HandoffReason::Sensitive { category } = &reason {
            expected["category"] = json!(category);
        }
        pin_read(&reason, expected, light::reason);
    }
}

/// A reason of each tag (the match fails to compile when a reason is added), with its pinned
/// code.
fn reason_of(tag: HandoffReasonTag) -> (HandoffReason, &'static str) {
    use HandoffReasonTag as T;
    match tag {
        T::LowConfidence => (HandoffReason::LowConfidence, "low_confidence"),
        T::OutOfScope => (HandoffReason::OutOfScope, "out_of_scope"),
        T::VisitorAsked => (HandoffReason::VisitorAsked, "visitor_asked"),
        T::Sensitive => (
            HandoffReason::Sensitive {
                category: "account_security".into(),
            },
            "sensitive",
        ),
        T::Frustration => (HandoffReason::Frustration, "frustration"),
        T::RepeatedFailure => (HandoffReason::RepeatedFailure, "repeated_failure"),
        T::EngineError => (HandoffReason::EngineError, "engine_error"),
        T::EngineBusy => (HandoffReason::EngineBusy, "engine_busy"),
        T::AgentTakeover => (HandoffReason::AgentTakeover, "agent_takeover"),
        T::AutonomyOff => (HandoffReason::AutonomyOff, "autonomy_off"),
    }
}

#[test]
fn state_frame() {
    pin_server(
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
    pin_client(
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
    pin_client(
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
    pin_client(
        &ClientFrame::Feedback {
            conversation_id: CONV,
            message_id: MSG,
            helpful: false,
        },
        json!({"type": "feedback", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000011",
            "message_id": "00000000-0000-0000-0000-000000000022", "helpful": false}}),
    );
    pin_client(
        &ClientFrame::Csat {
            conversation_id: CONV,
            score: 5,
            comment: Some("great".into()),
        },
        json!({"type": "csat", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000011", "score": 5,
            "comment": "great"}}),
    );
    pin_server(
        &ServerFrame::Typing {
            conversation_id: CONV,
            author: Author::Ai,
            typing: true,
        },
        json!({"type": "typing", "data": {
            "conversation_id": "00000000-0000-0000-0000-000000000011",
            "author": {"kind": "ai"}, "typing": true}}),
    );
    pin_server(
        &ServerFrame::Presence {
            agent: Some(agent()),
            status: Some(Presence::Away),
            agents_online: 0,
        },
        json!({"type": "presence", "data": {
            "agent": {"id": "00000000-0000-0000-0000-000000000033", "name": "Ana"},
            "status": "away", "agents_online": 0}}),
    );
    pin_client(
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

fn inbox_line() -> ConversationSummary {
    ConversationSummary {
        id: CONV,
        state: ConversationState::Waiting,
        assignee: None,
        handoff_reason: Some(HandoffReason::VisitorAsked),
        last_seq: 4,
        preview: "a person please".into(),
        created_at: 1,
        updated_at: 2,
        waiting_since: Some(3),
        visitor: VisitorInfo::default(),
    }
}

fn inbox_line_json() -> Value {
    json!({"id": "00000000-0000-0000-0000-000000000011", "state": "waiting",
        "handoff_reason": {"reason": "visitor_asked"}, "last_seq": 4,
        "preview": "a person please", "created_at": 1, "updated_at": 2, "waiting_since": 3,
        "visitor": {}})
}

#[test]
fn inbox_views_pages_and_deltas() {
    pin_client(
        &ClientFrame::Inbox {
            filter: InboxFilter::Waiting,
            limit: None,
            after: None,
        },
        json!({"type": "inbox", "data": {"filter": "waiting"}}),
    );
    pin_client(
        &ClientFrame::Inbox {
            filter: InboxFilter::Mine,
            limit: Some(50),
            after: Some(CONV),
        },
        json!({"type": "inbox", "data": {"filter": "mine", "limit": 50,
            "after": "00000000-0000-0000-0000-000000000011"}}),
    );
    let counts = InboxCounts {
        open: 7,
        waiting: 3,
        live: 2,
        mine: 1,
    };
    let counts_json = json!({"open": 7, "waiting": 3, "live": 2, "mine": 1});
    pin_server(
        &ServerFrame::InboxPage(InboxPage {
            filter: InboxFilter::Waiting,
            after: None,
            lines: vec![inbox_line()],
            has_more: true,
            counts,
        }),
        json!({"type": "inbox_page", "data": {"filter": "waiting",
            "lines": [inbox_line_json()], "has_more": true, "counts": counts_json}}),
    );
    pin_server(
        &ServerFrame::InboxPage(InboxPage {
            filter: InboxFilter::Live,
            after: Some(CONV),
            lines: vec![],
            has_more: false,
            counts,
        }),
        json!({"type": "inbox_page", "data": {"filter": "live",
            "after": "00000000-0000-0000-0000-000000000011", "lines": [], "has_more": false,
            "counts": counts_json}}),
    );
    pin_server(
        &ServerFrame::InboxLine {
            filter: InboxFilter::Waiting,
            line: inbox_line(),
        },
        json!({"type": "inbox_line", "data": {"filter": "waiting", "line": inbox_line_json()}}),
    );
    pin_server(
        &ServerFrame::InboxLeave {
            filter: InboxFilter::Open,
            conversation_id: CONV,
            state: ConversationState::Resolved,
        },
        json!({"type": "inbox_leave", "data": {"filter": "open",
            "conversation_id": "00000000-0000-0000-0000-000000000011", "state": "resolved"}}),
    );
    pin_server(
        &ServerFrame::InboxCounts(counts),
        json!({"type": "inbox_counts", "data": counts_json}),
    );
}

#[test]
fn errors_have_stable_codes() {
    pin_server(
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
    assert_eq!(
        light::decode(
            &json!({"type": "error", "data": {"code": "brand_new_code", "message": "x"}})
        ),
        Some(ServerFrame::Error(ErrorBody::new(ErrorCode::Unknown, "x")))
    );
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
    pin_server(
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
    pin_client(
        &ClientFrame::ListConversations,
        json!({"type": "list_conversations"}),
    );
    pin_server(
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

// ----- the tables -----

#[test]
fn every_error_code_has_a_status_and_round_trips_through_its_name() {
    assert_eq!(ErrorCode::ALL.len(), ErrorCode::NAMES.len());
    for (&code, &name) in ErrorCode::ALL.iter().zip(ErrorCode::NAMES) {
        assert_eq!(code.as_str(), name);
        assert!(
            (400..=599).contains(&code.http_status()),
            "{code:?}: {}",
            code.http_status()
        );
        assert_eq!(ErrorCode::parse(name), Some(code));
        assert_eq!(name.parse::<ErrorCode>(), Ok(code));
        pin_server(
            &ServerFrame::Error(ErrorBody::new(code, "x")),
            json!({"type": "error", "data": {"code": name, "message": "x"}}),
        );
    }
    // Only the fallback is a server error without being `internal`.
    assert_eq!(ErrorCode::Internal.http_status(), 500);
    assert_eq!(ErrorCode::Unknown.http_status(), 500);
    assert_eq!(ErrorCode::parse("brand_new_code"), None);
    assert!("brand_new_code".parse::<ErrorCode>().is_err());
}

/// The table of `T`: names unique, each one parsed back, serialized as a JSON string and read
/// back by serde; a name not in the table is refused.
fn table_round_trips<T>()
where
    T: StringEnum + std::str::FromStr + serde::Serialize + serde::de::DeserializeOwned,
    <T as std::str::FromStr>::Err: std::fmt::Debug,
{
    assert_eq!(T::ALL.len(), T::NAMES.len());
    for (i, (&v, &name)) in T::ALL.iter().zip(T::NAMES).enumerate() {
        assert_eq!(v.name(), name);
        assert!(!T::NAMES[..i].contains(&name), "{name} twice");
        assert_eq!(T::from_name(name), Some(v));
        assert_eq!(name.parse::<T>().ok(), Some(v));
        assert_eq!(serde_json::to_value(v).unwrap(), json!(name));
        assert_eq!(serde_json::from_value::<T>(json!(name)).unwrap(), v);
    }
    assert_eq!(T::from_name("no_such_name"), None);
    assert!("no_such_name".parse::<T>().is_err());
}

#[test]
fn every_table_round_trips() {
    table_round_trips::<ErrorCode>();
    table_round_trips::<ConversationState>();
    table_round_trips::<Autonomy>();
    table_round_trips::<Presence>();
    table_round_trips::<Role>();
    table_round_trips::<SourceKind>();
    table_round_trips::<AuthorTag>();
    table_round_trips::<HandoffReasonTag>();
    table_round_trips::<TransitionTag>();
    table_round_trips::<AuthTag>();
    table_round_trips::<DraftDecisionTag>();
    table_round_trips::<SessionTag>();
    table_round_trips::<ClientFrameTag>();
    table_round_trips::<ServerFrameTag>();
    table_round_trips::<InboxFilter>();
}

#[test]
fn unknown_names_are_refused_except_error_codes() {
    // A state, presence, autonomy or role a peer does not know is an error, as before.
    for bad in [
        json!({"from": "bogus", "to": "human", "cause": {"kind": "resolved", "by": null}}),
        json!("bogus"),
        json!(5),
    ] {
        assert!(
            serde_json::from_value::<StateChange>(bad.clone()).is_err(),
            "{bad}"
        );
    }
    assert!(serde_json::from_value::<ConversationState>(json!("bogus")).is_err());
    assert!(serde_json::from_value::<Presence>(json!("busy")).is_err());
    assert!(serde_json::from_value::<Autonomy>(json!(null)).is_err());
    assert!(serde_json::from_value::<Role>(json!("admin")).is_err());
    // Error codes are the one deliberate fallback.
    assert_eq!(
        serde_json::from_value::<ErrorCode>(json!("brand_new_code")).unwrap(),
        ErrorCode::Unknown
    );
}

// ----- the light codec: every frame the widget gets or sends -----

const DRAFT: Uuid = Uuid::from_u128(0x44);

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
            url: None,
        }],
        confidence: Some(0.5),
        choices: vec![Choice {
            id: "a".into(),
            label: "Track an order".into(),
        }],
        event: None,
    }
}

/// serde (the server's writer) → the light readers give the same frame back.
#[track_caller]
fn light_round_trip(frame: ServerFrame) {
    light_reads(&frame, &serde_json::to_value(&frame).unwrap());
}

/// The light writers → serde (the server's reader) gives the same frame back.
#[track_caller]
fn server_reads(frame: ClientFrame) {
    let back: ClientFrame = serde_json::from_value(light_writes(&frame)).unwrap();
    assert_eq!(back, frame);
}

/// A transition of each tag (the match fails to compile when one is added).
fn transitions_of(tag: TransitionTag) -> Vec<Transition> {
    use TransitionTag as T;
    match tag {
        T::Escalated => vec![Transition::Escalated {
            reason: HandoffReason::Sensitive {
                category: "legal_threat".into(),
            },
        }],
        T::TakenOver => vec![Transition::TakenOver { agent: agent() }],
        T::Transferred => vec![Transition::Transferred {
            from: agent(),
            to: agent(),
        }],
        T::HandedBack => vec![Transition::HandedBack { agent: agent() }],
        T::Resolved => vec![
            Transition::Resolved { by: None },
            Transition::Resolved { by: Some(agent()) },
        ],
        T::Reopened => ConversationState::ALL
            .iter()
            .map(|&to| Transition::Reopened { to })
            .collect(),
    }
}

/// An author of each kind (the match fails to compile when one is added).
fn author_of(tag: AuthorTag) -> Author {
    match tag {
        AuthorTag::Visitor => Author::Visitor,
        AuthorTag::Ai => Author::Ai,
        AuthorTag::Agent => Author::Agent(agent()),
        AuthorTag::System => Author::System,
    }
}

#[test]
fn light_reads_every_frame_a_visitor_gets() {
    for &tag in TransitionTag::ALL {
        for cause in transitions_of(tag) {
            light_round_trip(ServerFrame::Message(Message {
                event: Some(StateChange {
                    from: ConversationState::Waiting,
                    to: ConversationState::Human,
                    cause,
                }),
                ..msg(Author::System)
            }));
        }
    }
    for &tag in AuthorTag::ALL {
        let author = author_of(tag);
        light_round_trip(ServerFrame::Message(msg(author.clone())));
        light_round_trip(ServerFrame::Typing {
            conversation_id: CONV,
            author,
            typing: true,
        });
    }
    light_round_trip(ServerFrame::Message(Message {
        client_msg_id: None,
        sources: vec![],
        confidence: None,
        choices: vec![],
        ..msg(Author::Ai)
    }));
    for &autonomy in Autonomy::ALL {
        light_round_trip(ServerFrame::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            session: Session::Visitor {
                visitor_token: "tok".into(),
            },
            site: Some(SiteInfo {
                name: "Demo".into(),
                assistant_name: "Nexus".into(),
                greeting: "Hi!".into(),
                color: "#4f46e5".into(),
                autonomy,
                agents_online: 2,
            }),
            conversation: Some(ConversationView {
                id: CONV,
                state: ConversationState::Human,
                assignee: Some(agent()),
                last_seq: 2,
                messages: vec![msg(Author::Visitor), msg(Author::Ai)],
            }),
        }));
    }
    light_round_trip(ServerFrame::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        session: Session::Visitor {
            visitor_token: "tok".into(),
        },
        site: None,
        conversation: None,
    }));
    for duplicate in [false, true] {
        light_round_trip(ServerFrame::Ack {
            client_msg_id: "c-1".into(),
            conversation_id: CONV,
            message_id: MSG,
            seq: 7,
            duplicate,
        });
    }
    light_round_trip(ServerFrame::History {
        conversation_id: CONV,
        messages: vec![msg(Author::Ai)],
        has_more: true,
    });
    for &tag in HandoffReasonTag::ALL {
        light_round_trip(ServerFrame::State {
            conversation_id: CONV,
            state: ConversationState::Waiting,
            assignee: None,
            reason: Some(reason_of(tag).0),
        });
    }
    for &state in ConversationState::ALL {
        light_round_trip(ServerFrame::State {
            conversation_id: CONV,
            state,
            assignee: Some(agent()),
            reason: None,
        });
    }
    light_round_trip(ServerFrame::Queue {
        conversation_id: CONV,
        position: 3,
    });
    for &status in Presence::ALL {
        light_round_trip(ServerFrame::Presence {
            agent: Some(agent()),
            status: Some(status),
            agents_online: 1,
        });
    }
    light_round_trip(ServerFrame::Offline {
        conversation_id: CONV,
        message: "Back at 9:00.".into(),
    });
    light_round_trip(ServerFrame::Conversations {
        conversations: vec![ConversationSummary {
            id: CONV,
            state: ConversationState::Resolved,
            assignee: None,
            handoff_reason: None,
            last_seq: 4,
            preview: "Thanks!".into(),
            created_at: 1,
            updated_at: 2,
            waiting_since: None,
            visitor: VisitorInfo::default(),
        }],
    });
    light_round_trip(ServerFrame::Streaming(Streaming {
        conversation_id: CONV,
        text: "You can \"return\"".into(),
    }));
    light_round_trip(ServerFrame::Pong);
}

#[test]
fn light_reads_every_error_code() {
    for &code in ErrorCode::ALL {
        light_round_trip(ServerFrame::Error(ErrorBody::new(code, "x")));
    }
    light_round_trip(ServerFrame::Error(
        ErrorBody::new(ErrorCode::RateLimited, "slow").for_message("c-1"),
    ));
    let newer = json!({"type": "error", "data": {"code": "brand_new", "message": "x"}});
    for read in [light::decode::<Value>, light::agent::decode::<Value>] {
        assert_eq!(
            read(&newer),
            Some(ServerFrame::Error(ErrorBody::new(ErrorCode::Unknown, "x")))
        );
    }
}

#[test]
fn light_reads_every_frame_an_agent_gets() {
    for &role in Role::ALL {
        light_round_trip(ServerFrame::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            session: Session::Agent {
                agent: agent(),
                role,
            },
            site: None,
            conversation: None,
        }));
    }
    light_round_trip(ServerFrame::Conversation(ConversationSummary {
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
    light_round_trip(ServerFrame::Conversation(ConversationSummary {
        id: CONV,
        state: ConversationState::Human,
        assignee: Some(agent()),
        handoff_reason: None,
        last_seq: 4,
        preview: String::new(),
        created_at: 1,
        updated_at: 2,
        waiting_since: None,
        visitor: VisitorInfo::default(),
    }));
    light_round_trip(ServerFrame::Draft(Draft {
        id: DRAFT,
        conversation_id: CONV,
        reply_to_seq: 3,
        body: "You can cancel in Orders.".into(),
        sources: vec![Source {
            entry_id: "cancel_order".into(),
            title: "Cancel".into(),
            url: None,
        }],
        confidence: Some(0.5),
        created_at: 9,
    }));
    for &tag in DraftDecisionTag::ALL {
        light_round_trip(ServerFrame::DraftReviewed {
            conversation_id: CONV,
            draft_id: DRAFT,
            decision: decision_of(tag),
        });
    }
    light_round_trip(ServerFrame::Note(Note {
        id: DRAFT,
        conversation_id: CONV,
        client_msg_id: "n-1".into(),
        agent: agent(),
        body: "in a hurry".into(),
        created_at: 5,
    }));
    for &filter in InboxFilter::ALL {
        light_round_trip(ServerFrame::InboxLine {
            filter,
            line: inbox_line(),
        });
        light_round_trip(ServerFrame::InboxLeave {
            filter,
            conversation_id: CONV,
            state: ConversationState::Human,
        });
        light_round_trip(ServerFrame::InboxPage(InboxPage {
            filter,
            after: Some(CONV),
            lines: vec![inbox_line(), inbox_line()],
            has_more: false,
            counts: InboxCounts::default(),
        }));
    }
    light_round_trip(ServerFrame::InboxCounts(InboxCounts {
        open: 1,
        waiting: 2,
        live: 3,
        mine: 4,
    }));
    // The visitor's frames still read.
    light_round_trip(ServerFrame::Pong);
}

/// A decision of each tag (the match fails to compile when one is added).
fn decision_of(tag: DraftDecisionTag) -> DraftDecision {
    match tag {
        DraftDecisionTag::Approve => DraftDecision::Approve,
        DraftDecisionTag::Edit => DraftDecision::Edit {
            body: "edited \"text\"".into(),
        },
        DraftDecisionTag::Reject => DraftDecision::Reject,
    }
}

#[test]
fn light_uuids_read_and_write_like_the_uuid_crate() {
    for id in [
        Uuid::nil(),
        CONV,
        Uuid::from_u128(u128::MAX),
        Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
    ] {
        assert_eq!(light::uuid_string(&id), id.to_string());
        assert_eq!(light::parse_uuid(&id.to_string()), Some(id));
        assert_eq!(light::parse_uuid(&id.to_string().to_uppercase()), Some(id));
    }
    for bad in [
        "",
        "0123",
        "00000000-0000-0000-0000-00000000000g",
        "00000000_0000-0000-0000-000000000000",
    ] {
        assert_eq!(light::parse_uuid(bad), None, "{bad}");
    }
}

#[test]
fn light_skips_what_it_cannot_read() {
    for value in [
        json!({"type": "brand_new_frame", "data": {}}),
        json!({"type": "message", "data": {"id": "not-a-uuid"}}),
        json!({"type": "message"}),
        json!("just a string"),
        json!({"type": "welcome", "data": {"protocol_version": 1,
            "session": {"kind": "agent", "agent": {"id": CONV, "name": "A"}, "role": "agent"}}}),
    ] {
        assert_eq!(light::decode(&value), None, "{value}");
    }
    for value in [
        json!({"type": "brand_new_frame", "data": {}}),
        json!({"type": "draft", "data": {"id": "not-a-uuid"}}),
        json!({"type": "welcome", "data": {"protocol_version": 1,
            "session": {"kind": "agent", "agent": {"id": CONV, "name": "A"}, "role": "admin"}}}),
        json!({"type": "welcome", "data": {"protocol_version": 1,
            "session": {"kind": "robot"}}}),
    ] {
        assert_eq!(light::agent::decode(&value), None, "{value}");
    }
    // A state change of a newer server still shows its message, without the change.
    let mut newer = serde_json::to_value(ServerFrame::Message(msg(Author::System))).unwrap();
    newer["data"]["event"] = json!({"from": "ai", "to": "waiting", "cause": {"kind": "new"}});
    assert_eq!(
        light::decode(&newer),
        Some(ServerFrame::Message(msg(Author::System)))
    );
}

#[test]
fn light_writes_every_frame_a_visitor_sends() {
    let ada = Identity {
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
            body: "quote \" backslash \\ newline \n tab \t bell \u{7} emoji 🎉 <img src=x>".into(),
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
        light::encode(&ClientFrame::Watch {
            conversation_id: CONV
        }),
        None
    );
}

#[test]
fn light_writes_every_frame_an_agent_sends() {
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
    for &tag in DraftDecisionTag::ALL {
        server_reads(ClientFrame::ReviewDraft {
            conversation_id,
            draft_id: DRAFT,
            decision: decision_of(tag),
        });
    }
    for &status in Presence::ALL {
        server_reads(ClientFrame::SetPresence { status });
    }
    for &filter in InboxFilter::ALL {
        server_reads(ClientFrame::Inbox {
            filter,
            limit: Some(200),
            after: Some(CONV),
        });
        server_reads(ClientFrame::Inbox {
            filter,
            limit: None,
            after: None,
        });
    }
    server_reads(ClientFrame::Send {
        conversation_id: Some(CONV),
        client_msg_id: "a-1".into(),
        body: "Hi, this is Ana".into(),
    });
    // Nobody sends `transfer` through the light codec (the agent app uses the REST API).
    let transfer = ClientFrame::Transfer {
        conversation_id,
        to_agent: AGENT,
    };
    assert_eq!(light::agent::encode(&transfer), None);
}

// ----- the light codec: random frames -----

fn text() -> impl Strategy<Value = String> {
    // Any text: quotes, backslashes, control characters, emoji.
    any::<String>()
}

fn id() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Numbers the light codec reads exactly (JSON numbers in a browser are `f64`).
fn seq() -> impl Strategy<Value = u64> {
    0..=(1u64 << 53)
}

fn millis() -> impl Strategy<Value = Millis> {
    -(1i64 << 53)..=(1i64 << 53)
}

fn agent_ref() -> impl Strategy<Value = AgentRef> {
    (id(), text()).prop_map(|(id, name)| AgentRef { id, name })
}

fn state() -> impl Strategy<Value = ConversationState> {
    proptest::sample::select(ConversationState::ALL)
}

fn reason() -> impl Strategy<Value = HandoffReason> {
    (proptest::sample::select(HandoffReasonTag::ALL), text()).prop_map(|(tag, category)| {
        match reason_of(tag).0 {
            HandoffReason::Sensitive { .. } => HandoffReason::Sensitive { category },
            other => other,
        }
    })
}

fn author() -> impl Strategy<Value = Author> {
    (proptest::sample::select(AuthorTag::ALL), agent_ref()).prop_map(|(tag, a)| match tag {
        AuthorTag::Agent => Author::Agent(a),
        other => author_of(other),
    })
}

fn transition() -> impl Strategy<Value = Transition> {
    prop_oneof![
        reason().prop_map(|reason| Transition::Escalated { reason }),
        agent_ref().prop_map(|agent| Transition::TakenOver { agent }),
        (agent_ref(), agent_ref()).prop_map(|(from, to)| Transition::Transferred { from, to }),
        agent_ref().prop_map(|agent| Transition::HandedBack { agent }),
        proptest::option::of(agent_ref()).prop_map(|by| Transition::Resolved { by }),
        state().prop_map(|to| Transition::Reopened { to }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let source =
        (text(), text(), proptest::option::of(text())).prop_map(|(entry_id, title, url)| Source {
            entry_id,
            title,
            url,
        });
    let choice = (text(), text()).prop_map(|(id, label)| Choice { id, label });
    let event = (state(), state(), transition()).prop_map(|(from, to, cause)| StateChange {
        from,
        to,
        cause,
    });
    (
        (id(), id(), seq(), proptest::option::of(text()), author()),
        (text(), millis(), proptest::collection::vec(source, 0..3)),
        (
            proptest::option::of((0u32..=1000).prop_map(|n| n as f32 / 1000.0)),
            proptest::collection::vec(choice, 0..3),
            proptest::option::of(event),
        ),
    )
        .prop_map(
            |(
                (id, conversation_id, seq, client_msg_id, author),
                (body, created_at, sources),
                (confidence, choices, event),
            )| Message {
                id,
                conversation_id,
                seq,
                client_msg_id,
                author,
                body,
                created_at,
                sources,
                confidence,
                choices,
                event,
            },
        )
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        message().prop_map(ServerFrame::Message),
        (
            id(),
            proptest::collection::vec(message(), 0..3),
            any::<bool>()
        )
            .prop_map(
                |(conversation_id, messages, has_more)| ServerFrame::History {
                    conversation_id,
                    messages,
                    has_more,
                }
            ),
        (
            id(),
            state(),
            proptest::option::of(agent_ref()),
            proptest::option::of(reason())
        )
            .prop_map(
                |(conversation_id, state, assignee, reason)| ServerFrame::State {
                    conversation_id,
                    state,
                    assignee,
                    reason,
                }
            ),
        (
            proptest::option::of(agent_ref()),
            proptest::option::of(proptest::sample::select(Presence::ALL)),
            any::<u32>()
        )
            .prop_map(|(agent, status, agents_online)| ServerFrame::Presence {
                agent,
                status,
                agents_online,
            }),
        (
            proptest::sample::select(ErrorCode::ALL),
            text(),
            proptest::option::of(text())
        )
            .prop_map(|(code, message, client_msg_id)| {
                ServerFrame::Error(ErrorBody {
                    code,
                    message,
                    client_msg_id,
                })
            }),
        (
            id(),
            id(),
            proptest::sample::select(DraftDecisionTag::ALL),
            text()
        )
            .prop_map(|(conversation_id, draft_id, tag, body)| {
                ServerFrame::DraftReviewed {
                    conversation_id,
                    draft_id,
                    decision: match decision_of(tag) {
                        DraftDecision::Edit { .. } => DraftDecision::Edit { body },
                        other => other,
                    },
                }
            }),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (proptest::option::of(id()), text(), text()).prop_map(
            |(conversation_id, client_msg_id, body)| ClientFrame::Send {
                conversation_id,
                client_msg_id,
                body,
            }
        ),
        (
            text(),
            proptest::option::of(text()),
            proptest::option::of(id()),
            proptest::option::of(text())
        )
            .prop_map(|(site_key, visitor_token, conversation_id, locale)| {
                ClientFrame::Hello(Hello {
                    protocol_version: PROTOCOL_VERSION,
                    auth: Auth::Visitor {
                        site_key,
                        visitor_token,
                        conversation_id,
                        identity: None,
                        page_url: None,
                        locale,
                    },
                })
            }),
        (id(), any::<u8>(), proptest::option::of(text())).prop_map(
            |(conversation_id, score, comment)| ClientFrame::Csat {
                conversation_id,
                score,
                comment,
            }
        ),
        (id(), text(), text()).prop_map(|(conversation_id, client_msg_id, body)| {
            ClientFrame::Note {
                conversation_id,
                client_msg_id,
                body,
            }
        }),
        proptest::sample::select(Presence::ALL)
            .prop_map(|status| ClientFrame::SetPresence { status }),
    ]
}

proptest! {
    /// serde → light reader, and light writer → serde: the same frame.
    #[test]
    fn light_codec_round_trips(server in server_frame(), client in client_frame()) {
        light_round_trip(server);
        server_reads(client);
    }
}

// ----- the light reader under arbitrary input -----
//
// The widget reads every frame from the server with the hand-written light reader. Whatever
// arrives (a newer server, a proxy mangling bytes, a hostile endpoint), it must never panic,
// and where serde also accepts a value, both must read the same frame.

/// Any JSON value, nested a few levels, with the frame vocabulary among its keys and strings
/// so that the reader gets past its first checks often.
fn any_json() -> impl Strategy<Value = Value> {
    let words = prop_oneof![
        Just("type".to_owned()),
        Just("data".to_owned()),
        Just("message".to_owned()),
        Just("welcome".to_owned()),
        Just("state".to_owned()),
        Just("kind".to_owned()),
        Just("agent".to_owned()),
        Just("error".to_owned()),
        Just("conversation_id".to_owned()),
        Just("seq".to_owned()),
        "[a-z_]{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![Just(-1.0), Just(0.5), Just(9.1e15), Just(1e300)].prop_map(Value::from),
        words.clone().prop_map(Value::from),
        id().prop_map(|u| Value::from(u.to_string())),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((words.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// `v` with the member or item at `path` (indices taken modulo the lengths) replaced by
/// `with`, or removed when `with` is `None`.
fn mutate(v: &mut Value, path: &[usize], with: Option<Value>) {
    let Some((&first, rest)) = path.split_first() else {
        *v = with.unwrap_or(Value::Null);
        return;
    };
    match v {
        Value::Object(map) if !map.is_empty() => {
            let key = map
                .keys()
                .nth(first % map.len())
                .cloned()
                .unwrap_or_default();
            if rest.is_empty() && with.is_none() {
                map.remove(&key);
            } else if let Some(child) = map.get_mut(&key) {
                mutate(child, rest, with);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let at = first % items.len();
            if rest.is_empty() && with.is_none() {
                items.remove(at);
            } else {
                mutate(&mut items[at], rest, with);
            }
        }
        _ => *v = with.unwrap_or(Value::Null),
    }
}

/// Both readers on `v`: no panic; where serde reads a frame too, the same frame.
fn readers_agree(v: &Value) {
    let visitor = light::decode(v);
    let agent = light::agent::decode(v);
    if let Ok(by_serde) = serde_json::from_value::<ServerFrame>(v.clone()) {
        for read in [&visitor, &agent].into_iter().flatten() {
            assert_eq!(read, &by_serde, "light and serde read {v} differently");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary values: never a panic.
    #[test]
    fn the_light_reader_survives_any_json_value(v in any_json()) {
        readers_agree(&v);
        readers_agree(&json!({"type": "message", "data": v.clone()}));
        readers_agree(&json!({"type": "welcome", "data": v}));
    }

    /// Real frames with one part replaced by anything, or removed: never a panic, and the
    /// same frame as serde's whenever serde accepts it.
    #[test]
    fn the_light_reader_agrees_with_serde_on_mangled_frames(
        frame in server_frame(),
        path in prop::collection::vec(any::<usize>(), 1..5),
        with in prop::option::of(any_json()),
    ) {
        let mut v = serde_json::to_value(&frame).unwrap();
        mutate(&mut v, &path, with);
        readers_agree(&v);
    }

    /// Real frames' bytes flipped, cut or extended, then parsed as the browser would: no
    /// panic on whatever still parses.
    #[test]
    fn the_light_reader_survives_mangled_bytes(
        frame in server_frame(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = serde_json::to_vec(&frame).unwrap();
        for (at, byte, op) in edits {
            let at = at % (bytes.len() + 1);
            match op {
                0 if at < bytes.len() => bytes[at] = byte,
                1 if at < bytes.len() => { bytes.remove(at); }
                _ => bytes.insert(at, byte),
            }
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            readers_agree(&v);
        }
    }
}
