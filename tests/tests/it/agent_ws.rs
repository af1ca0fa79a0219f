//! Agents and visitors together over real WebSockets: an escalation reaches the agent's inbox
//! live; take over silences the AI; replies reach the visitor; hand back brings the AI back;
//! resolve with teach makes the AI answer the next visitor; accounts and sites are isolated.

use std::time::Duration;

use nexus_shared::{
    Author, ClientFrame, ConversationState, ErrorCode, HandoffReason, Role, ServerFrame, Session,
    Teach,
};
use nexus_tests::frames;
use nexus_tests::{TestServer, WsClient, agent_login};
use uuid::Uuid;

async fn state_of(client: &mut WsClient) -> ConversationState {
    client
        .recv_until(|f| match f {
            ServerFrame::State { state, .. } => Some(*state),
            _ => None,
        })
        .await
        .0
}

/// Waits until the client hears that its conversation is in `state`.
async fn wait_for_state(client: &mut WsClient, state: ConversationState) {
    client
        .recv_until(|f| match f {
            ServerFrame::State { state: s, .. } if *s == state => Some(()),
            _ => None,
        })
        .await;
}

/// Collects frames for `wait` and returns the messages among them.
async fn drain_messages(client: &mut WsClient, wait: Duration) -> Vec<nexus_shared::Message> {
    let mut out = vec![];
    while let Some(frame) = client.try_recv(wait).await {
        if let ServerFrame::Message(m) = frame {
            out.push(m);
        }
    }
    out
}

#[tokio::test]
async fn escalate_take_over_reply_hand_back_resolve_and_teach() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    // A plain agent's teach goes live only when the site allows it (`agent_learning`).
    server
        .configure(|s| s.agent_learning = nexus_engine::policy::Learning::Auto)
        .await;
    let token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let (mut agent, welcome) = WsClient::agent(&server.ws_url(), &token).await;
    let me = match welcome.session {
        Session::Agent { agent, role } => {
            assert_eq!(role, Role::Agent);
            agent
        }
        other => panic!("expected an agent session, got {other:?}"),
    };

    // A visitor asks for a person: the agent's inbox shows it live, with the reason.
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor
        .send(&frames::send(None, "v-1", "I want to talk to a human"))
        .await;
    let conversation_id = visitor.recv_ack().await;
    let (summary, _) = agent
        .recv_until(|f| match f {
            ServerFrame::Conversation(s)
                if s.id == conversation_id && s.state == ConversationState::Waiting =>
            {
                Some(s.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(summary.handoff_reason, Some(HandoffReason::VisitorAsked));
    assert!(summary.waiting_since.is_some());
    assert_eq!(state_of(&mut visitor).await, ConversationState::Waiting);

    // Take over: the visitor learns who joined.
    agent.send(&ClientFrame::TakeOver { conversation_id }).await;
    let (joined, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::State {
                state: ConversationState::Human,
                assignee,
                ..
            } => Some(assignee.clone()),
            _ => None,
        })
        .await;
    assert_eq!(joined.map(|a| a.name), Some("ana".to_owned()));

    // The agent's reply reaches the visitor, marked as the agent's.
    agent
        .send(&frames::send(
            Some(conversation_id),
            "a-1",
            "Hi, I'm Ana. How can I help?",
        ))
        .await;
    agent.recv_ack().await;
    let (reply, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::Message(m) if matches!(m.author, Author::Agent(_)) => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(reply.body, "Hi, I'm Ana. How can I help?");
    assert_eq!(reply.author, Author::Agent(me.clone()));

    // While a person has the conversation, the AI stays silent even on a question it knows.
    visitor
        .send(&frames::send(
            Some(conversation_id),
            "v-2",
            "how can I cancel my order",
        ))
        .await;
    visitor.recv_ack().await;
    let seen = drain_messages(&mut visitor, Duration::from_millis(1500)).await;
    assert!(
        !seen.iter().any(|m| m.author == Author::Ai),
        "no AI message while an agent owns the conversation: {seen:?}"
    );

    // An internal note never reaches the visitor.
    agent
        .send(&ClientFrame::Note {
            conversation_id,
            client_msg_id: "n-1".into(),
            body: "Customer seems in a hurry".into(),
        })
        .await;
    let (note, _) = agent
        .recv_until(|f| match f {
            ServerFrame::Note(n) => Some(n.body.clone()),
            _ => None,
        })
        .await;
    assert_eq!(note, "Customer seems in a hurry");

    // Hand back: the AI answers again.
    agent.send(&ClientFrame::HandBack { conversation_id }).await;
    assert_eq!(state_of(&mut visitor).await, ConversationState::Ai);
    visitor
        .send(&frames::send(
            Some(conversation_id),
            "v-3",
            "how can I cancel my order",
        ))
        .await;
    let (answer, skipped) = visitor
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::Ai => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(answer.sources[0].entry_id, "cancel_order");
    assert!(
        !skipped.iter().any(|f| matches!(f, ServerFrame::Note(_))),
        "visitors never see notes"
    );
    visitor.close().await;

    // A question the knowledge base does not cover goes to a person ...
    let question = "Do you offer gift wrapping for birthday presents?";
    let (mut first, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    first.send(&frames::send(None, "g-1", question)).await;
    let gift_conversation = first.recv_ack().await;
    assert_eq!(state_of(&mut first).await, ConversationState::Waiting);
    // ... who answers, resolves and teaches.
    agent
        .send(&ClientFrame::TakeOver {
            conversation_id: gift_conversation,
        })
        .await;
    let answer_text = "Yes! Gift wrapping costs $4 and you can add a card with your own message.";
    agent
        .send(&frames::send(Some(gift_conversation), "a-2", answer_text))
        .await;
    agent.recv_ack().await;
    agent
        .send(&ClientFrame::Resolve {
            conversation_id: gift_conversation,
            teach: Some(Teach {
                question: question.into(),
                answer: answer_text.into(),
                entry_id: None,
            }),
        })
        .await;
    wait_for_state(&mut first, ConversationState::Resolved).await;

    // The next visitors asking the same, or a paraphrase, get the taught answer from the AI.
    for (i, ask) in [question, "can you gift wrap a birthday present?"]
        .iter()
        .enumerate()
    {
        let (mut next, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
        next.send(&frames::send(None, format!("t-{i}"), *ask)).await;
        let (reply, _) = next
            .recv_until(|f| match f {
                ServerFrame::Message(m) if m.author == Author::Ai => Some(m.clone()),
                ServerFrame::State {
                    state: ConversationState::Waiting,
                    ..
                } => panic!("{ask:?} was escalated instead of answered from what the agent taught"),
                _ => None,
            })
            .await;
        assert_eq!(reply.body, answer_text, "answer to {ask:?}");
        assert!(reply.sources[0].entry_id.starts_with("learned-"));
    }
    server.stop().await;
}

#[tokio::test]
async fn accounts_are_checked_and_sites_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let http = reqwest::Client::new();
    let login = |email: &str, password: &str, site: &str| {
        http.post(server.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"site_key": site, "email": email, "password": password}))
            .send()
    };

    // A second site with its own agent.
    let store = server.state.store.as_ref();
    let other = nexus_server::model::Site {
        id: Uuid::new_v4(),
        key: "other".into(),
        name: "Other Shop".into(),
        settings: Default::default(),
        created_at: 0,
    };
    store.create_site(&other).await.unwrap();
    let demo_token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let other_token = agent_login(&server, "other", "bob@other.test", Role::Agent).await;

    // Wrong password, unknown account, wrong site: the same refusal; then throttling.
    for (email, password, site) in [
        ("ana@demo.test", "not the password", "demo"),
        ("nobody@demo.test", "a long test password", "demo"),
        ("ana@demo.test", "a long test password", "other"),
    ] {
        let response = login(email, password, site).await.unwrap();
        assert_eq!(response.status(), 401);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "invalid_credentials");
    }
    for _ in 0..5 {
        let _ = login("ana@demo.test", "still wrong", "demo").await.unwrap();
    }
    let response = login("ana@demo.test", "a long test password", "demo")
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "throttled after repeated failures");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "login_throttled");

    // A bad session token cannot open an agent connection.
    let mut bad = WsClient::connect(&server.ws_url()).await;
    bad.send_raw(r#"{"type":"hello","data":{"protocol_version":1,"auth":{"role":"agent","session_token":"st_forged"}}}"#)
        .await;
    match bad.recv().await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::Unauthorized),
        f => panic!("expected unauthorized, got {f:?}"),
    }

    // A conversation on the demo site ...
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor
        .send(&frames::send(None, "v-1", "I want to talk to a human"))
        .await;
    let conversation_id = visitor.recv_ack().await;

    // ... is invisible to the other site's agent: inbox, watch, take over, reply, note,
    // resolve all refuse, and nothing changes.
    let (mut intruder, _) = WsClient::agent(&server.ws_url(), &other_token).await;
    let inbox = drain_frames(&mut intruder, Duration::from_millis(500)).await;
    assert!(
        !inbox
            .iter()
            .any(|f| matches!(f, ServerFrame::Conversation(s) if s.id == conversation_id)),
        "another site's conversation is not in the inbox"
    );
    for frame in [
        ClientFrame::Watch { conversation_id },
        ClientFrame::TakeOver { conversation_id },
        ClientFrame::HandBack { conversation_id },
        ClientFrame::Resolve {
            conversation_id,
            teach: None,
        },
        frames::send(Some(conversation_id), "x-1", "hello from elsewhere"),
        ClientFrame::Note {
            conversation_id,
            client_msg_id: "x-2".into(),
            body: "peek".into(),
        },
    ] {
        intruder.send(&frame).await;
        let error = intruder.recv_error().await;
        assert_eq!(error, ErrorCode::NotFound, "{frame:?} is refused");
    }
    let (mut owner_agent, _) = WsClient::agent(&server.ws_url(), &demo_token).await;
    owner_agent
        .send(&ClientFrame::Watch { conversation_id })
        .await;
    let (state, _) = owner_agent
        .recv_until(|f| match f {
            ServerFrame::State { state, .. } => Some(*state),
            _ => None,
        })
        .await;
    assert_eq!(
        state,
        ConversationState::Waiting,
        "untouched by the intruder"
    );

    // The REST history of the conversation is not readable with an agent token of another site.
    let response = http
        .get(server.url(&format!("/api/v1/conversations/{conversation_id}/messages")))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    server.stop().await;
}

async fn drain_frames(client: &mut WsClient, wait: Duration) -> Vec<ServerFrame> {
    let mut out = vec![];
    while let Some(frame) = client.try_recv(wait).await {
        out.push(frame);
    }
    out
}

#[tokio::test]
async fn review_mode_sends_only_what_an_agent_approved() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent_token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let http = reqwest::Client::new();
    let patch = |token: &str, body: serde_json::Value| {
        http.patch(server.url("/api/v1/site"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    // An agent cannot change settings; the owner can.
    let response = patch(&agent_token, serde_json::json!({"autonomy": "review"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = patch(&owner, serde_json::json!({"autonomy": "sometimes"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "invalid values are refused");
    let response = patch(&owner, serde_json::json!({"autonomy": "review"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let (mut agent, _) = WsClient::agent(&server.ws_url(), &agent_token).await;
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor
        .send(&frames::send(None, "v-1", "how can I cancel my order"))
        .await;
    let conversation_id = visitor.recv_ack().await;
    let (draft, _) = agent
        .recv_until(|f| match f {
            ServerFrame::Draft(d) if d.conversation_id == conversation_id => Some(d.clone()),
            _ => None,
        })
        .await;
    assert!(draft.body.to_lowercase().contains("cancel"));
    let seen = drain_messages(&mut visitor, Duration::from_millis(800)).await;
    assert!(
        !seen.iter().any(|m| m.author == Author::Ai),
        "the visitor sees nothing before approval: {seen:?}"
    );

    // The agent edits; the visitor gets exactly the edited text, from the assistant.
    let edited = "Open Orders, pick the order and press Cancel. Refunds take 3 days.";
    agent
        .send(&ClientFrame::ReviewDraft {
            conversation_id,
            draft_id: draft.id,
            decision: nexus_shared::DraftDecision::Edit {
                body: edited.into(),
            },
        })
        .await;
    let (answer, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::Ai => Some(m.body.clone()),
            _ => None,
        })
        .await;
    assert_eq!(answer, edited);
    // A second review of the same draft is refused.
    agent
        .send(&ClientFrame::ReviewDraft {
            conversation_id,
            draft_id: draft.id,
            decision: nexus_shared::DraftDecision::Approve,
        })
        .await;
    let code = agent.recv_error().await;
    assert_eq!(code, ErrorCode::InvalidTransition);

    // A draft approved after a takeover never reaches the visitor.
    visitor
        .send(&frames::send(
            Some(conversation_id),
            "v-2",
            "how do I track my refund",
        ))
        .await;
    let (late, _) = agent
        .recv_until(|f| match f {
            ServerFrame::Draft(d) if d.conversation_id == conversation_id => Some(d.clone()),
            _ => None,
        })
        .await;
    agent.send(&ClientFrame::TakeOver { conversation_id }).await;
    agent
        .send(&ClientFrame::ReviewDraft {
            conversation_id,
            draft_id: late.id,
            decision: nexus_shared::DraftDecision::Approve,
        })
        .await;
    let code = agent.recv_error().await;
    assert_eq!(code, ErrorCode::InvalidTransition);
    let seen = drain_messages(&mut visitor, Duration::from_millis(800)).await;
    assert!(
        !seen.iter().any(|m| m.author == Author::Ai),
        "no AI message after the takeover: {seen:?}"
    );
    server.stop().await;
}

/// A visitor connected before the owner turned the AI off writes again in a resolved
/// conversation: it reopens waiting for a person (the settings as they are now), and the AI
/// says nothing.
#[tokio::test]
async fn a_resolved_conversation_reopens_with_the_settings_of_now() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent_token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let (mut agent, _) = WsClient::agent(&server.ws_url(), &agent_token).await;
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor
        .send(&frames::send(None, "v-1", "I want to talk to a human"))
        .await;
    let conversation_id = visitor.recv_ack().await;
    assert_eq!(state_of(&mut visitor).await, ConversationState::Waiting);
    agent
        .send(&ClientFrame::Resolve {
            conversation_id,
            teach: None,
        })
        .await;
    wait_for_state(&mut visitor, ConversationState::Resolved).await;

    let response = reqwest::Client::new()
        .patch(server.url("/api/v1/site"))
        .bearer_auth(&owner)
        .json(&serde_json::json!({"autonomy": "off"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    visitor
        .send(&frames::send(
            Some(conversation_id),
            "v-2",
            "how can I cancel my order",
        ))
        .await;
    assert_eq!(visitor.recv_ack().await, conversation_id);
    assert_eq!(state_of(&mut visitor).await, ConversationState::Waiting);
    let seen = drain_messages(&mut visitor, Duration::from_millis(800)).await;
    assert!(
        !seen.iter().any(|m| m.author == Author::Ai),
        "the AI is off: {seen:?}"
    );
    server.stop().await;
}
