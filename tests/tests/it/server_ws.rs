//! The server end to end over a real WebSocket on 127.0.0.1 and a real SQLite file: send,
//! ack, AI answer, handoff, persistence across a restart, resume, and bad input.

use std::time::Duration;

use nexus_shared::{
    Author, ClientFrame, ConversationState, ErrorCode, HandoffReason, Message, ServerFrame, limits,
};
use nexus_tests::frames;
use nexus_tests::{TestServer, WsClient};

/// Waits for the AI (or system) message following the visitor's message.
async fn next_message(client: &mut WsClient, author: &str) -> Message {
    client
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author.kind() == author => Some(m.clone()),
            _ => None,
        })
        .await
        .0
}

#[tokio::test]
async fn visitor_conversation_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nexus.db");
    let server = TestServer::start(&db).await;

    let (mut visitor, welcome) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    assert!(
        welcome.conversation.is_none(),
        "a new visitor has no conversation"
    );
    let site = welcome.site.clone().expect("site info in welcome");
    assert_eq!(site.name, "Nexus Demo Shop");
    let token = frames::visitor_token(&welcome);

    visitor
        .send(&frames::send(None, "c-1", "how can I cancel my order"))
        .await;
    let (ack, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::Ack {
                client_msg_id,
                conversation_id,
                seq,
                duplicate,
                ..
            } => Some((client_msg_id.clone(), *conversation_id, *seq, *duplicate)),
            _ => None,
        })
        .await;
    assert_eq!(ack.0, "c-1");
    assert_eq!(ack.2, 1, "the first message has sequence number 1");
    assert!(!ack.3);
    let conversation_id = ack.1;

    let answer = next_message(&mut visitor, "ai").await;
    assert_eq!(answer.seq, 2);
    assert_eq!(answer.sources[0].entry_id, "cancel_order", "{answer:?}");
    assert!(
        answer.body.to_lowercase().contains("cancel"),
        "{}",
        answer.body
    );
    assert!(
        !answer.body.contains("{{"),
        "placeholders are filled: {}",
        answer.body
    );
    assert!(answer.confidence.is_some());

    // A retry of the same client message id is stored once.
    visitor
        .send(&frames::send(None, "c-1", "how can I cancel my order"))
        .await;
    let (dup, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::Ack { seq, duplicate, .. } => Some((*seq, *duplicate)),
            _ => None,
        })
        .await;
    assert_eq!(dup, (1, true));

    visitor
        .send(&frames::send(None, "c-2", "I want to talk to a human"))
        .await;
    let (state, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::State { state, reason, .. } => Some((*state, reason.clone())),
            _ => None,
        })
        .await;
    assert_eq!(
        state,
        (
            ConversationState::Waiting,
            Some(HandoffReason::VisitorAsked)
        )
    );
    // The AI stays silent while waiting.
    visitor
        .send(&frames::send(None, "c-3", "hello? anyone?"))
        .await;
    let silent = visitor.try_recv(Duration::from_millis(800)).await;
    let mut after_wait = vec![];
    if let Some(f) = silent {
        after_wait.push(f);
    }
    while let Some(f) = visitor.try_recv(Duration::from_millis(300)).await {
        after_wait.push(f);
    }
    assert!(
        !after_wait
            .iter()
            .any(|f| matches!(f, ServerFrame::Message(m) if m.author == Author::Ai)),
        "no AI message while waiting: {after_wait:?}"
    );
    visitor.close().await;
    server.stop().await;

    // Same database, new server process state: everything is still there.
    let server = TestServer::start(&db).await;
    let (mut visitor, welcome) =
        WsClient::visitor(&server.ws_url(), "demo", Some(token.clone())).await;
    assert_eq!(
        frames::visitor_token(&welcome),
        token,
        "the visitor keeps their token"
    );
    let view = welcome.conversation.expect("the conversation is resumed");
    assert_eq!(view.id, conversation_id);
    assert_eq!(view.state, ConversationState::Waiting);
    let seqs: Vec<u64> = view.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=view.last_seq).collect::<Vec<_>>(), "gap-free");
    let bodies: Vec<(&str, &str)> = view
        .messages
        .iter()
        .map(|m| (m.author.kind(), m.body.as_str()))
        .collect();
    assert_eq!(bodies[0], ("visitor", "how can I cancel my order"));
    assert_eq!(bodies[1].0, "ai");
    assert_eq!(bodies[2], ("visitor", "I want to talk to a human"));
    assert_eq!(bodies[3].0, "system");
    assert_eq!(bodies.last().copied(), Some(("visitor", "hello? anyone?")));
    assert_eq!(
        bodies.iter().filter(|(a, _)| *a == "visitor").count(),
        3,
        "the retried message is stored once"
    );

    // Resume from a sequence number returns exactly what came after it.
    visitor
        .send(&ClientFrame::Resume {
            conversation_id,
            after_seq: 2,
        })
        .await;
    let (history, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::History { messages, .. } => Some(messages.clone()),
            _ => None,
        })
        .await;
    assert_eq!(history.first().map(|m| m.seq), Some(3));
    assert_eq!(history.last().map(|m| m.seq), Some(view.last_seq));

    // Another visitor cannot open this conversation.
    let (mut other, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    other
        .send(&ClientFrame::Resume {
            conversation_id,
            after_seq: 0,
        })
        .await;
    match other.recv().await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::NotFound),
        f => panic!("expected an error, got {f:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn history_over_rest_needs_the_visitors_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let (mut visitor, welcome) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor
        .send(&frames::send(None, "r-1", "how can I cancel my order"))
        .await;
    let conversation_id = visitor.recv_ack().await;
    next_message(&mut visitor, "ai").await;

    let url = server.url(&format!(
        "/api/v1/conversations/{conversation_id}/messages?after=0"
    ));
    let page = http_get(&url, Some(&frames::visitor_token(&welcome))).await;
    assert_eq!(page.0, 200);
    let messages = page.1["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["body"], "how can I cancel my order");
    assert_eq!(messages[1]["author"]["kind"], "ai");

    let (status, body) = http_get(&url, Some("vt_wrong")).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
    let (status, _) = http_get(&url, None).await;
    assert_eq!(status, 401);
    let (status, body) = http_get(
        &server.url(&format!(
            "/api/v1/conversations/{conversation_id}/messages?limit=100000"
        )),
        Some(&frames::visitor_token(&welcome)),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "validation");

    let (status, health) = http_get(&server.url("/api/v1/health"), None).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"], "sqlite");
    let (status, ready) = http_get(&server.url("/api/v1/ready"), None).await;
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")));
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;

    // Unknown site.
    let mut client = WsClient::connect(&server.ws_url()).await;
    client
        .send_raw(r#"{"type":"hello","data":{"protocol_version":1,"auth":{"role":"visitor","site_key":"nope"}}}"#)
        .await;
    match client.recv().await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::UnknownSite),
        f => panic!("expected unknown_site, got {f:?}"),
    }

    // Anything but hello first.
    let mut client = WsClient::connect(&server.ws_url()).await;
    client.send(&ClientFrame::Ping).await;
    match client.recv().await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::HelloRequired),
        f => panic!("expected hello_required, got {f:?}"),
    }

    // Wrong protocol version.
    let mut client = WsClient::connect(&server.ws_url()).await;
    client
        .send_raw(r#"{"type":"hello","data":{"protocol_version":99,"auth":{"role":"visitor","site_key":"demo"}}}"#)
        .await;
    match client.recv().await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::UnsupportedVersion),
        f => panic!("expected unsupported_version, got {f:?}"),
    }

    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send_raw("this is not json").await;
    match visitor.recv().await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::BadFrame),
        f => panic!("expected bad_frame, got {f:?}"),
    }
    visitor
        .send_raw(r#"{"type":"launch_missiles","data":{}}"#)
        .await;
    match visitor.recv().await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::BadFrame),
        f => panic!("expected bad_frame, got {f:?}"),
    }
    let long = "x".repeat(limits::MAX_BODY_CHARS + 1);
    visitor.send(&frames::send(None, "too-long", &long)).await;
    match visitor.recv().await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, ErrorCode::MessageTooLong);
            assert_eq!(e.client_msg_id.as_deref(), Some("too-long"));
        }
        f => panic!("expected message_too_long, got {f:?}"),
    }
    visitor.send(&frames::send(None, "empty", "   ")).await;
    match visitor.recv().await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::EmptyMessage),
        f => panic!("expected empty_message, got {f:?}"),
    }
    // Visitors cannot use agent actions.
    visitor
        .send(&ClientFrame::TakeOver {
            conversation_id: uuid::Uuid::new_v4(),
        })
        .await;
    match visitor.recv().await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::Forbidden),
        f => panic!("expected forbidden, got {f:?}"),
    }
    // After all that, the connection still works.
    visitor.send(&ClientFrame::Ping).await;
    assert_eq!(visitor.recv().await, ServerFrame::Pong);
    visitor
        .send(&frames::send(None, "xss", "<img src=x onerror=alert(1)>"))
        .await;
    let (echo, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::Visitor => Some(m.body.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        echo, "<img src=x onerror=alert(1)>",
        "stored verbatim, never altered"
    );

    // An oversized frame closes only that connection; the server goes on.
    let (mut big, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    big.send_raw("x".repeat(limits::MAX_FRAME_BYTES * 4)).await;
    while big.try_recv(Duration::from_secs(2)).await.is_some() {}
    visitor.send(&ClientFrame::Ping).await;
    visitor
        .recv_until(|f| (*f == ServerFrame::Pong).then_some(()))
        .await;
    server.stop().await;
}

async fn http_get(url: &str, bearer: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("http request");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn a_visitor_can_leave_an_email_for_the_team() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let (mut visitor, welcome) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor
        .send(&frames::send(None, "e-1", "I want to talk to a human"))
        .await;
    let conversation_id = visitor.recv_ack().await;

    visitor
        .send(&ClientFrame::LeaveEmail {
            conversation_id,
            email: "not an email".into(),
        })
        .await;
    let code = visitor.recv_error().await;
    assert_eq!(code, ErrorCode::Validation);

    visitor
        .send(&ClientFrame::LeaveEmail {
            conversation_id,
            email: "ana@example.com".into(),
        })
        .await;
    let notice = next_message(&mut visitor, "system").await;
    let notice = if notice.body.contains("ana@example.com") {
        notice
    } else {
        // The escalation notice may come first.
        next_message(&mut visitor, "system").await
    };
    assert!(notice.body.contains("ana@example.com"), "{}", notice.body);

    let store = server.state.store.as_ref();
    let site = store.site_by_key("demo").await.unwrap().unwrap();
    let stored = store
        .visitor_by_token(site.id, &frames::visitor_token(&welcome))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.info.email.as_deref(), Some("ana@example.com"));
    server.stop().await;
}

/// PROTOCOL.md: a frame over 16 KiB gets `frame_too_large` and the connection stays open (the
/// visitor's next message is acked on it); only a frame over the 64 KiB hard cap closes it.
#[tokio::test]
async fn an_oversized_frame_is_refused_and_the_connection_stays_open() {
    let (server, _dir) = TestServer::scratch().await;
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    for size in [limits::MAX_FRAME_BYTES + 1, limits::MAX_FRAME_BYTES * 3] {
        visitor.send_raw("x".repeat(size)).await;
        assert_eq!(
            visitor.recv_error().await,
            nexus_shared::ErrorCode::FrameTooLarge,
            "{size} bytes"
        );
    }
    visitor
        .send(&frames::send(None, "after-big", "still here?"))
        .await;
    visitor.recv_ack().await;

    let (mut huge, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    huge.send_raw("x".repeat(limits::MAX_FRAME_BYTES * 4 + 1))
        .await;
    let mut closed = false;
    for _ in 0..5 {
        if huge.try_recv(Duration::from_secs(2)).await.is_none() {
            closed = true;
            break;
        }
    }
    assert!(closed, "a frame over the hard cap closes the connection");
    server.stop().await;
}

/// A `client_msg_id` is deduplicated within the conversation the message goes to, with or
/// without `conversation_id`. Two tabs of one visitor, opened before they had a conversation:
/// the second writes (conversation X), then starts a new conversation (Y); the first then
/// writes with the same id and no conversation named. It goes to the latest conversation, Y,
/// as a new message; it used to come back as a duplicate of X's message.
#[tokio::test]
async fn a_reused_client_msg_id_after_new_conversation_is_a_new_message() {
    let (server, _dir) = TestServer::scratch().await;
    let (mut first_tab, welcome) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    let token = frames::visitor_token(&welcome);
    let (mut second_tab, _) = WsClient::visitor(&server.ws_url(), "demo", Some(token)).await;
    let ack = |f: &ServerFrame| match f {
        ServerFrame::Ack {
            conversation_id,
            duplicate,
            ..
        } => Some((*conversation_id, *duplicate)),
        ServerFrame::Error(e) => panic!("expected an ack, got {e:?}"),
        _ => None,
    };
    second_tab
        .send(&frames::send(None, "m-1", "how can I cancel my order"))
        .await;
    let (old, duplicate) = second_tab.recv_until(ack).await.0;
    assert!(!duplicate);
    // The AI's turn is over before the new conversation starts (it is the latest then).
    let _ = second_tab.recv_answer().await;
    second_tab.send(&ClientFrame::NewConversation).await;
    let new = second_tab
        .until("the new conversation's state", |f| match f {
            ServerFrame::State {
                conversation_id, ..
            } if *conversation_id != old => Some(*conversation_id),
            _ => None,
        })
        .await;

    first_tab
        .send(&frames::send(None, "m-1", "another question"))
        .await;
    assert_eq!(
        first_tab.recv_until(ack).await.0,
        (new, false),
        "a new message of the new conversation, not a duplicate of the old one's"
    );
    first_tab
        .send(&frames::send(None, "m-1", "another question"))
        .await;
    assert_eq!(
        first_tab.recv_until(ack).await.0,
        (new, true),
        "a retry there"
    );
    let stored = server
        .state
        .store
        .messages_after(new, 0, 100)
        .await
        .unwrap();
    assert_eq!(
        stored
            .iter()
            .filter(|m| m.body == "another question")
            .count(),
        1
    );
    server.stop().await;
}

/// The history route checks the visitor's token before it looks the conversation up: without
/// a valid token, a missing and an existing conversation both get 401, so a stranger learns
/// nothing about which ids exist. Malformed ids and queries get `{code, message}` JSON.
#[tokio::test]
async fn history_checks_the_token_first_and_bad_input_gets_a_json_error() {
    let (server, _dir) = TestServer::scratch().await;
    let (mut visitor, welcome) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    let token = frames::visitor_token(&welcome);
    visitor.send(&frames::send(None, "h-1", "hello")).await;
    let conversation = visitor.recv_ack().await;
    let url =
        |id: &str, query: &str| server.url(&format!("/api/v1/conversations/{id}/messages{query}"));
    let existing = conversation.to_string();
    let missing = uuid::Uuid::new_v4().to_string();
    for id in [&existing, &missing] {
        let (status, body) = http_get(&url(id, ""), None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unauthorized")),
            "{id}"
        );
        let (status, body) = http_get(&url(id, ""), Some("vt_not-a-token")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unauthorized")),
            "{id}"
        );
    }
    let (status, body) = http_get(&url(&missing, ""), Some(&token)).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = http_get(&url(&existing, ""), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    for (id, query) in [("not-a-uuid", ""), (existing.as_str(), "?after=minus-one")] {
        let (status, body) = http_get(&url(id, query), Some(&token)).await;
        assert_eq!(status, 400, "{id}{query}: {body}");
        assert_eq!(body["code"], "validation", "{id}{query}: {body}");
        assert!(body["message"].is_string());
    }
    server.stop().await;
}
