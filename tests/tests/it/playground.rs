//! The owner's playground, replay and knowledge gaps through the real server: a playground
//! answer comes with its source and passage, a handover with its reason and the step that
//! decided, and nothing is written; a fix through the knowledge base changes the next try;
//! replay counts change after a knowledge-base change; a group of questions that went to
//! people is drafted into the approval queue (masked), approved, and then answers a new
//! visitor over the WebSocket.

use nexus_shared::{Author, ClientFrame, ConversationState, Role, ServerFrame};
use nexus_tests::frames;
use nexus_tests::{TestServer, WsClient, agent_login};
use serde_json::{Value, json};
use uuid::Uuid;

pub(crate) const GIFT: &str = "Do you offer gift wrapping for birthday presents?";
pub(crate) const GIFT_AGAIN: &str = "can you gift wrap a birthday present?";
const GIFT_ORDER: &str = "Could my order pmark7731 be gift wrapped for a birthday?";
const GIFT_NEW: &str = "is gift wrapping possible for a birthday gift?";
pub(crate) const WRAPPED: &str =
    "Yes! Gift wrapping costs $4 and you can add a card with your own message.";

async fn call(
    server: &TestServer,
    method: reqwest::Method,
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

async fn post(server: &TestServer, token: &str, path: &str, body: Value) -> Value {
    let (status, answer) = call(server, reqwest::Method::POST, token, path, Some(body)).await;
    assert_eq!(status, 200, "POST {path}: {answer}");
    answer
}

async fn get(server: &TestServer, token: &str, path: &str) -> Value {
    let (status, answer) = call(server, reqwest::Method::GET, token, path, None).await;
    assert_eq!(status, 200, "GET {path}: {answer}");
    answer
}

/// A new visitor asks; the AI's answer, or `None` when the conversation goes to a person.
pub(crate) async fn ask(
    server: &TestServer,
    question: &str,
) -> (Uuid, Option<nexus_shared::Message>) {
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&frames::send(None, "q", question)).await;
    let conversation = visitor.recv_ack().await;
    let (outcome, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::Ai => Some(Some(m.clone())),
            ServerFrame::State {
                state: ConversationState::Waiting,
                ..
            } => Some(None),
            _ => None,
        })
        .await;
    visitor.close().await;
    (conversation, outcome)
}

/// A new visitor's question goes to a person, who takes over and replies `reply`.
pub(crate) async fn handed_over(
    server: &TestServer,
    agent: &str,
    question: &str,
    reply: &str,
) -> Uuid {
    let (conversation_id, answer) = ask(server, question).await;
    assert!(answer.is_none(), "{question:?} should go to a person");
    let (mut desk, _) = WsClient::agent(&server.ws_url(), agent).await;
    desk.send(&ClientFrame::TakeOver { conversation_id }).await;
    desk.send(&frames::send(Some(conversation_id), "a-1", reply))
        .await;
    desk.recv_ack().await;
    desk.close().await;
    conversation_id
}

/// Creates an owner's entry on gift wrapping that does not yet list [`GIFT`]; its id.
pub(crate) async fn gift_entry(server: &TestServer, owner: &str) -> String {
    let (status, created) = call(
        server,
        reqwest::Method::POST,
        owner,
        "/api/v1/kb",
        Some(json!({
            "title": "Gift wrapping",
            "answer": WRAPPED,
            "examples": ["do you gift wrap?", "can I get my parcel gift wrapped?"]
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_explains_an_answer_and_a_handover_and_writes_nothing() {
    let (server, _dir) = TestServer::scratch().await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let results = post(
        &server,
        &owner,
        "/api/v1/playground",
        json!({"questions": ["how can I cancel my order", "I want to talk to a human", GIFT]}),
    )
    .await;
    let results = results.as_array().expect("a list");
    assert_eq!(results.len(), 3, "{results:?}");

    let answer = &results[0];
    assert_eq!(answer["outcome"], "answer", "{answer}");
    assert_eq!(answer["stage"], "engine");
    assert_eq!(answer["sources"][0]["entry_id"], "cancel_order");
    let kb = get(&server, &owner, "/api/v1/kb/cancel_order").await;
    assert_eq!(
        answer["sources"][0]["passage"], kb["answer"],
        "the passage is the entry's text"
    );
    assert!(answer["answer"].as_str().is_some_and(|a| !a.is_empty()));
    assert!(
        !answer["answer"].as_str().unwrap().contains("{{"),
        "placeholders filled"
    );
    assert!(answer["confidence"].as_f64().is_some_and(|c| c > 0.0));
    assert_eq!(answer["candidates"][0]["entry_id"], "cancel_order");
    assert!(answer["why"].as_str().unwrap().contains("answer threshold"));

    let person = &results[1];
    assert_eq!(person["outcome"], "escalate", "{person}");
    assert_eq!(person["reason"]["reason"], "visitor_asked");
    assert_eq!(person["stage"], "before_engine");
    assert_eq!(person["why"], "The visitor asks for a person.");

    let unknown = &results[2];
    assert_eq!(unknown["outcome"], "escalate", "{unknown}");
    let reason = unknown["reason"]["reason"].as_str().unwrap();
    assert!(
        matches!(reason, "low_confidence" | "out_of_scope"),
        "{unknown}"
    );
    assert!(unknown["why"].as_str().unwrap().contains("threshold"));

    // Nothing was written: no conversation on the site.
    let site = server.site("demo").await;
    let written = server
        .state
        .store
        .recent_timelines(site.id, 0, 10, 10, false)
        .await
        .unwrap();
    assert!(written.is_empty(), "{written:?}");

    // Fix in place: the question becomes an example of an entry, and the next try answers
    // from it; an edited answer is the next try's answer.
    let gift_id = gift_entry(&server, &owner).await;
    let mut entry = get(&server, &owner, &format!("/api/v1/kb/{gift_id}")).await;
    entry["examples"].as_array_mut().unwrap().push(json!(GIFT));
    let path = format!("/api/v1/kb/{gift_id}");
    let (status, saved) = call(
        &server,
        reqwest::Method::PUT,
        &owner,
        &path,
        Some(entry.clone()),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    let again = post(
        &server,
        &owner,
        "/api/v1/playground",
        json!({"question": GIFT}),
    )
    .await;
    assert_eq!(again[0]["outcome"], "answer", "{again}");
    assert_eq!(again[0]["sources"][0]["entry_id"], gift_id);
    assert_eq!(again[0]["answer"], WRAPPED);
    entry["examples"].as_array_mut().unwrap().push(json!(GIFT));
    entry["answer"] = json!("Gift wrapping is free this month.");
    let (status, saved) = call(&server, reqwest::Method::PUT, &owner, &path, Some(entry)).await;
    assert_eq!(status, 200, "{saved}");
    let edited = post(
        &server,
        &owner,
        "/api/v1/playground",
        json!({"question": GIFT}),
    )
    .await;
    assert_eq!(
        edited[0]["answer"], "Gift wrapping is free this month.",
        "{edited}"
    );

    // Autonomy off: everything goes to people, said so.
    server
        .configure(|s| s.autonomy = nexus_shared::Autonomy::Off)
        .await;
    let off = post(
        &server,
        &owner,
        "/api/v1/playground",
        json!({"question": "how can I cancel my order"}),
    )
    .await;
    assert_eq!(off[0]["stage"], "autonomy", "{off}");
    assert_eq!(off[0]["reason"]["reason"], "autonomy_off");

    // Owners only; bad input is a clear error.
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        &agent,
        "/api/v1/playground",
        Some(json!({"question": "hi"})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        &owner,
        "/api/v1/playground",
        Some(json!({"questions": []})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("validation")));
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        &owner,
        "/api/v1/playground/replay",
        Some(json!({"last": 0})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("validation")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_counts_change_after_a_knowledge_base_change() {
    let (server, _dir) = TestServer::scratch().await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let (_, answered) = ask(&server, "how can I cancel my order").await;
    assert!(answered.is_some());
    let (gift_conversation, gift) = ask(&server, GIFT).await;
    assert!(gift.is_none());

    let before = post(
        &server,
        &owner,
        "/api/v1/playground/replay",
        json!({"last": 10}),
    )
    .await;
    assert_eq!(before["questions"], "first_visitor_message");
    assert_eq!(before["replayed"], 2, "{before}");
    assert_eq!(before["then"]["answered"], 1);
    assert_eq!(before["then"]["handed_over"], 1);
    assert_eq!(before["now"], before["then"], "nothing changed yet");
    assert_eq!(before["changed"], json!([]));

    let (status, created) = call(
        &server,
        reqwest::Method::POST,
        &owner,
        "/api/v1/kb",
        Some(json!({
            "title": "Gift wrapping",
            "answer": WRAPPED,
            "examples": [GIFT, GIFT_AGAIN, "do you gift wrap?"]
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    let after = post(
        &server,
        &owner,
        "/api/v1/playground/replay",
        json!({"last": 10}),
    )
    .await;
    assert_eq!(after["then"], before["then"], "what happened then stays");
    assert_eq!(after["now"]["answered"], 2, "{after}");
    assert_eq!(after["now"]["handed_over"], 0);
    let changed = after["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["conversation_id"], gift_conversation.to_string());
    assert_eq!(changed[0]["question"], GIFT);
    assert_eq!(changed[0]["then"], "escalate");
    assert_eq!(changed[0]["now"]["outcome"], "answer");
    assert_eq!(changed[0]["now"]["sources"][0]["entry_id"], created["id"]);

    // Only the last conversation.
    let one = post(
        &server,
        &owner,
        "/api/v1/playground/replay",
        json!({"last": 1}),
    )
    .await;
    assert_eq!(one["replayed"], 1);
    assert_eq!(one["changed"][0]["question"], GIFT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_group_becomes_an_approved_entry_that_answers_a_new_visitor() {
    let (server, _dir) = TestServer::scratch().await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let (_, none) = ask(&server, GIFT_NEW).await;
    assert!(none.is_none(), "not covered yet");
    let mut gift = Vec::new();
    for (question, reply) in [
        (GIFT, WRAPPED),
        (GIFT_AGAIN, WRAPPED),
        (
            GIFT_ORDER,
            "Sure: order pmark7731 will be wrapped. Gift wrapping costs $4.",
        ),
    ] {
        gift.push(handed_over(&server, &agent, question, reply).await);
    }
    let other = handed_over(
        &server,
        &agent,
        "I want to talk to a human",
        "Hello, how can I help?",
    )
    .await;

    let groups = get(&server, &owner, "/api/v1/gaps?days=30").await;
    let groups = groups.as_array().expect("a list");
    // The gift questions (and the first visitor's, which went to a person without a reply).
    let first = &groups[0];
    let ids: Vec<Uuid> = first["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["conversation_id"].as_str().unwrap().parse().unwrap())
        .collect();
    for id in &gift {
        assert!(ids.contains(id), "{groups:?}");
    }
    assert!(!ids.contains(&other), "a different question: {groups:?}");
    assert_eq!(first["best_reply"], WRAPPED);
    let replies: Vec<&Value> = first["questions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|q| q["replies"].as_array().unwrap())
        .collect();
    assert!(replies.contains(&&json!(WRAPPED)), "{first}");
    assert!(
        groups
            .iter()
            .any(|g| g["questions"][0]["conversation_id"] == other.to_string()),
        "{groups:?}"
    );

    let drafted = post(
        &server,
        &owner,
        "/api/v1/gaps/draft",
        json!({"conversation_ids": gift}),
    )
    .await;
    assert_eq!(drafted["pending"], 3, "{drafted}");
    assert_eq!(drafted["answer"], WRAPPED);
    let entry_id = drafted["entry_id"].as_str().unwrap().to_owned();
    assert!(entry_id.starts_with("learned-"));

    let waiting = get(&server, &owner, "/api/v1/kb/pending").await;
    let waiting = waiting.as_array().unwrap();
    assert_eq!(waiting.len(), 3, "{waiting:?}");
    assert!(
        waiting
            .iter()
            .all(|p| p["origin"] == "gap" && p["entry_id"] == entry_id)
    );
    let questions: Vec<&str> = waiting
        .iter()
        .map(|p| p["question"].as_str().unwrap())
        .collect();
    assert!(
        questions.contains(&"Could my order [order number] be gift wrapped for a birthday?"),
        "masked: {questions:?}"
    );
    assert!(!questions.iter().any(|q| q.contains("pmark7731")));
    // Drafted questions leave the gaps.
    let left = get(&server, &owner, "/api/v1/gaps?days=30").await;
    assert!(!left.to_string().contains(&gift[0].to_string()), "{left}");

    // Still waiting: not used yet.
    let (_, before) = ask(&server, GIFT_NEW).await;
    assert!(before.is_none(), "a draft waiting for approval is not used");
    for p in waiting {
        let id = p["id"].as_str().unwrap();
        let approved = post(
            &server,
            &owner,
            &format!("/api/v1/kb/pending/{id}/approve"),
            json!({}),
        )
        .await;
        assert_eq!(
            approved["id"], entry_id,
            "every question goes into one entry"
        );
    }
    let entry = get(&server, &owner, &format!("/api/v1/kb/{entry_id}")).await;
    assert_eq!(entry["answer"], WRAPPED);
    assert_eq!(entry["examples"].as_array().unwrap().len(), 3, "{entry}");

    let (_, answer) = ask(&server, GIFT_NEW).await;
    let answer = answer.expect("the approved entry answers a new visitor");
    assert_eq!(answer.sources[0].entry_id, entry_id);
    assert_eq!(answer.body, WRAPPED);

    // Owners only; another site's conversation is not found; bad input is a clear error.
    let (status, _) = call(&server, reqwest::Method::GET, &agent, "/api/v1/gaps", None).await;
    assert_eq!(status, 403);
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        &owner,
        "/api/v1/gaps/draft",
        Some(json!({"conversation_ids": [Uuid::new_v4()]})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = call(
        &server,
        reqwest::Method::GET,
        &owner,
        "/api/v1/gaps?days=0",
        None,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("validation")));
}
