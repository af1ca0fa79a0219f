//! Learning from people through the real server and store: with `learning: approve` a teach
//! waits in `/api/v1/kb/pending` until the owner approves (optionally edited) or rejects it;
//! approved knowledge answers the same question and a paraphrase at once and survives a
//! restart; a thumbs-down and an edited draft are kept for review; the pending routes are the
//! owner's and their site's only.

use std::time::Duration;

use nexus_shared::{
    Author, ClientFrame, ConversationState, DraftDecision, HandoffReason, Role, ServerFrame, Teach,
};
use nexus_tests::frames;
use nexus_tests::{TestServer, WsClient, agent_login};
use serde_json::{Value, json};
use uuid::Uuid;

const QUESTION: &str = "Do you offer gift wrapping for birthday presents?";
const PARAPHRASE: &str = "can you gift wrap a birthday present?";
const TAUGHT: &str = "Yes! Gift wrapping costs $4 and you can add a card with your own message.";

/// A new visitor asks; `Ok(answer)` or `Err(reason)` when handed over.
async fn ask(server: &TestServer, question: &str) -> Result<nexus_shared::Message, HandoffReason> {
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&frames::send(None, "q", question)).await;
    visitor.recv_ack().await;
    let (outcome, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::Ai => Some(Ok(m.clone())),
            ServerFrame::State {
                state: ConversationState::Waiting,
                reason,
                ..
            } => Some(Err(reason.clone().expect("a handoff has a reason"))),
            _ => None,
        })
        .await;
    visitor.close().await;
    outcome
}

async fn request(
    method: reqwest::Method,
    server: &TestServer,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn pending(server: &TestServer, token: &str) -> Vec<Value> {
    let (status, body) = request(
        reqwest::Method::GET,
        server,
        token,
        "/api/v1/kb/pending",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().expect("a list")
}

/// The visitor's question goes to a person, the agent answers and resolves with teach.
async fn escalate_and_teach(server: &TestServer, agent_token: &str, question: &str) -> Uuid {
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&frames::send(None, "v-1", question)).await;
    let conversation_id = visitor.recv_ack().await;
    let (mut agent, _) = WsClient::agent(&server.ws_url(), agent_token).await;
    agent.send(&ClientFrame::TakeOver { conversation_id }).await;
    agent
        .send(&frames::send(Some(conversation_id), "a-1", TAUGHT))
        .await;
    agent.recv_ack().await;
    agent
        .send(&ClientFrame::Resolve {
            conversation_id,
            teach: Some(Teach {
                question: question.into(),
                answer: TAUGHT.into(),
                entry_id: None,
            }),
        })
        .await;
    visitor.recv_state(ConversationState::Resolved).await;
    // The teach is handled right after the resolve commit; give it a moment to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.close().await;
    visitor.close().await;
    conversation_id
}

#[tokio::test]
async fn with_approval_taught_answers_wait_for_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nexus.db");
    let server = TestServer::start(&db).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let (status, body) = request(
        reqwest::Method::PATCH,
        &server,
        &owner,
        "/api/v1/site",
        Some(json!({"learning": "approve"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["learning"], "approve");

    assert!(ask(&server, QUESTION).await.is_err(), "not covered yet");
    let conversation_id = escalate_and_teach(&server, &agent, QUESTION).await;
    assert!(
        ask(&server, QUESTION).await.is_err(),
        "a teach waiting for approval is not used"
    );

    let waiting = pending(&server, &owner).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let item = &waiting[0];
    assert_eq!(item["question"], QUESTION);
    assert_eq!(item["answer"], TAUGHT);
    assert_eq!(item["origin"], "teach");
    assert_eq!(item["entry_id"], Value::Null);
    assert_eq!(item["conversation_id"], conversation_id.to_string());
    assert!(item["created_at"].as_i64().is_some_and(|t| t > 0));
    let id = item["id"].as_str().unwrap().to_owned();

    // Agents may not review; owners of another site do not see or touch it.
    let (status, _) = request(
        reqwest::Method::GET,
        &server,
        &agent,
        "/api/v1/kb/pending",
        None,
    )
    .await;
    assert_eq!(status, 403);
    let approve_path = format!("/api/v1/kb/pending/{id}/approve");
    let (status, body) = request(reqwest::Method::POST, &server, &agent, &approve_path, None).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "forbidden");
    let store = server.state.store.as_ref();
    store
        .create_site(&nexus_server::model::Site {
            id: Uuid::new_v4(),
            key: "other".into(),
            name: "Other Shop".into(),
            settings: Default::default(),
            created_at: 0,
        })
        .await
        .unwrap();
    let other_owner = agent_login(&server, "other", "otto@other.test", Role::Owner).await;
    assert!(pending(&server, &other_owner).await.is_empty());
    for action in ["approve", "reject"] {
        let (status, body) = request(
            reqwest::Method::POST,
            &server,
            &other_owner,
            &format!("/api/v1/kb/pending/{id}/{action}"),
            None,
        )
        .await;
        assert_eq!(status, 404, "{action}: {body}");
    }

    // The owner corrects the answer while approving; it is live at once.
    let corrected = "Yes: gift wrapping costs $4, and a card with your message is free.";
    let (status, entry) = request(
        reqwest::Method::POST,
        &server,
        &owner,
        &approve_path,
        Some(json!({"answer": corrected})),
    )
    .await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["answer"], corrected);
    assert!(pending(&server, &owner).await.is_empty());
    let (status, _) = request(reqwest::Method::POST, &server, &owner, &approve_path, None).await;
    assert_eq!(status, 404, "approved once");
    for question in [QUESTION, PARAPHRASE] {
        let answer = ask(&server, question)
            .await
            .unwrap_or_else(|r| panic!("{question:?} handed over ({r:?}) after approval"));
        assert_eq!(answer.body, corrected, "{question}");
    }

    // A rejected teach never goes live.
    let other_question = "Is your warehouse open for visitors on Sundays?";
    escalate_and_teach(&server, &agent, other_question).await;
    let waiting = pending(&server, &owner).await;
    assert_eq!(waiting.len(), 1);
    let reject_path = format!(
        "/api/v1/kb/pending/{}/reject",
        waiting[0]["id"].as_str().unwrap()
    );
    let (status, _) = request(reqwest::Method::POST, &server, &owner, &reject_path, None).await;
    assert_eq!(status, 204);
    assert!(pending(&server, &owner).await.is_empty());
    assert!(ask(&server, other_question).await.is_err());

    // What was approved persists: a restarted server answers from it.
    server.stop().await;
    let server = TestServer::start(&db).await;
    let answer = ask(&server, PARAPHRASE)
        .await
        .expect("answered after a restart");
    assert_eq!(answer.body, corrected);
    server.stop().await;
}

#[tokio::test]
async fn a_thumbs_down_is_kept_for_review_and_hands_over() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    let question = "how can I cancel my order";
    visitor.send(&frames::send(None, "q1", question)).await;
    let conversation_id = visitor.recv_ack().await;
    let (answer, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::Ai => Some(m.clone()),
            _ => None,
        })
        .await;
    visitor
        .send(&ClientFrame::Feedback {
            conversation_id,
            message_id: answer.id,
            helpful: false,
        })
        .await;
    let (reason, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::State {
                state: ConversationState::Waiting,
                reason,
                ..
            } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert_eq!(reason, Some(HandoffReason::Frustration));
    let waiting = pending(&server, &owner).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["origin"], "thumbs_down");
    assert_eq!(waiting[0]["question"], question);
    assert_eq!(waiting[0]["answer"], answer.body.as_str());
    assert_eq!(waiting[0]["conversation_id"], conversation_id.to_string());
}

#[tokio::test]
async fn with_approval_an_edited_draft_waits_for_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent_token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let (status, body) = request(
        reqwest::Method::PATCH,
        &server,
        &owner,
        "/api/v1/site",
        Some(json!({"autonomy": "review", "learning": "approve"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (mut agent, _) = WsClient::agent(&server.ws_url(), &agent_token).await;
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    let question = "how can I cancel my order";
    visitor.send(&frames::send(None, "v-1", question)).await;
    let conversation_id = visitor.recv_ack().await;
    let (draft, _) = agent
        .recv_until(|f| match f {
            ServerFrame::Draft(d) if d.conversation_id == conversation_id => Some(d.clone()),
            _ => None,
        })
        .await;
    let edited = "Open Orders, pick the order and press Cancel. Refunds take 3 days.";
    agent
        .send(&ClientFrame::ReviewDraft {
            conversation_id,
            draft_id: draft.id,
            decision: DraftDecision::Edit {
                body: edited.into(),
            },
        })
        .await;
    visitor
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::Ai => Some(()),
            _ => None,
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = pending(&server, &owner).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["origin"], "draft_edit");
    assert_eq!(waiting[0]["question"], question);
    assert_eq!(waiting[0]["answer"], edited);
}

#[tokio::test]
async fn pending_entries_work_the_same_on_postgresql() {
    let schema = nexus_tests::pg::TestSchema::create().await;
    let server = TestServer::start_url(&schema.url, &nexus_tests::widget_dir()).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let (status, body) = request(
        reqwest::Method::PATCH,
        &server,
        &owner,
        "/api/v1/site",
        Some(json!({"learning": "approve"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let conversation_id = escalate_and_teach(&server, &agent, QUESTION).await;
    let waiting = pending(&server, &owner).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["origin"], "teach");
    assert_eq!(waiting[0]["conversation_id"], conversation_id.to_string());
    assert!(ask(&server, QUESTION).await.is_err(), "waits for approval");
    let approve_path = format!(
        "/api/v1/kb/pending/{}/approve",
        waiting[0]["id"].as_str().unwrap()
    );
    let (status, entry) =
        request(reqwest::Method::POST, &server, &owner, &approve_path, None).await;
    assert_eq!(status, 200, "{entry}");
    assert!(pending(&server, &owner).await.is_empty());
    let (status, _) = request(reqwest::Method::POST, &server, &owner, &approve_path, None).await;
    assert_eq!(status, 404, "approved once");
    let answer = ask(&server, PARAPHRASE)
        .await
        .expect("answered after approval");
    assert_eq!(answer.body, TAUGHT);
    server.stop().await;
}
