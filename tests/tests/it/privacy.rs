//! Privacy requests through the real server and SQLite file: an owner exports everything kept
//! about one visitor, then deletes it; other visitors and other sites are untouched.

use nexus_shared::{ClientFrame, Role, Session};
use nexus_tests::frames;
use nexus_tests::http::authed;
use nexus_tests::{TestServer, WsClient, agent_login};
use reqwest::{Client, Method};
use serde_json::Value;
use uuid::Uuid;

/// A visitor who writes `question`; returns the client, their token and the conversation.
async fn visitor_says(server: &TestServer, question: &str) -> (WsClient, String, Uuid) {
    let (mut visitor, welcome) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    let Session::Visitor { visitor_token } = welcome.session else {
        panic!("a visitor session");
    };
    visitor.send(&frames::send(None, "q1", question)).await;
    let conversation = visitor.recv_ack().await;
    (visitor, visitor_token, conversation)
}

#[tokio::test]
async fn owners_export_then_delete_one_visitors_data() {
    let dir = tempfile::tempdir().unwrap();
    export_then_delete(TestServer::start(&dir.path().join("nexus.db")).await).await;
}

#[tokio::test]
async fn owners_export_then_delete_one_visitors_data_on_postgres() {
    let schema = nexus_tests::pg::TestSchema::create().await;
    export_then_delete(TestServer::start_url(&schema.url, &nexus_tests::widget_dir()).await).await;
}

async fn export_then_delete(server: TestServer) {
    let other = nexus_server::model::Site {
        id: Uuid::new_v4(),
        key: "other".into(),
        name: "Other".into(),
        settings: Default::default(),
        created_at: 0,
    };
    server.state.store.create_site(&other).await.unwrap();
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let stranger = agent_login(&server, "other", "sam@other.test", Role::Owner).await;
    let http = Client::new();

    let (mut alice, alice_token, conversation) =
        visitor_says(&server, "My name is Alice, please delete my data later").await;
    alice
        .send(&ClientFrame::LeaveEmail {
            conversation_id: conversation,
            email: "alice@example.org".into(),
        })
        .await;
    alice
        .send(&ClientFrame::Csat {
            conversation_id: conversation,
            score: 4,
            comment: Some("quick".into()),
        })
        .await;
    alice.sync().await;
    let (_bob, _, bob_conversation) = visitor_says(&server, "Bob here, keep my data").await;

    let store = server.state.store.as_ref();
    let alice_id = store
        .conversation(conversation)
        .await
        .unwrap()
        .unwrap()
        .visitor_id;
    let export = format!("/api/v1/visitors/{alice_id}/export");
    let delete = format!("/api/v1/visitors/{alice_id}");

    let r = authed(&http, Method::GET, server.url(&export), &agent, None).await;
    assert_eq!(r.status(), 403, "agents cannot export");
    let r = authed(&http, Method::GET, server.url(&export), &stranger, None).await;
    assert_eq!(r.status(), 404, "another site's owner finds nothing");
    let r = authed(
        &http,
        Method::GET,
        server.url(&format!("/api/v1/visitors/{}/export", Uuid::new_v4())),
        &owner,
        None,
    )
    .await;
    assert_eq!(r.status(), 404);

    let r = authed(&http, Method::GET, server.url(&export), &owner, None).await;
    assert_eq!(r.status(), 200);
    let data: Value = r.json().await.unwrap();
    assert_eq!(data["visitor"]["id"], alice_id.to_string());
    assert_eq!(data["visitor"]["email"], "alice@example.org");
    let conversations = data["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 1);
    assert_eq!(conversations[0]["id"], conversation.to_string());
    assert_eq!(conversations[0]["csat"]["score"], 4);
    assert_eq!(conversations[0]["csat"]["comment"], "quick");
    let bodies: Vec<&str> = conversations[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert!(bodies.contains(&"My name is Alice, please delete my data later"));
    assert!(!data.to_string().contains("Bob here"), "only this visitor");
    assert!(!data.to_string().contains(&alice_token), "never the token");

    let r = authed(&http, Method::DELETE, server.url(&delete), &agent, None).await;
    assert_eq!(r.status(), 403);
    let r = authed(&http, Method::DELETE, server.url(&delete), &stranger, None).await;
    assert_eq!(r.status(), 404);
    let r = authed(&http, Method::DELETE, server.url(&delete), &owner, None).await;
    assert_eq!(r.status(), 204);

    // Gone: the export, the conversation, the token.
    let r = authed(&http, Method::GET, server.url(&export), &owner, None).await;
    assert_eq!(r.status(), 404);
    let r = authed(&http, Method::DELETE, server.url(&delete), &owner, None).await;
    assert_eq!(r.status(), 404);
    assert!(store.conversation(conversation).await.unwrap().is_none());
    assert!(store.csat(conversation).await.unwrap().is_none());
    let r = authed(
        &http,
        Method::GET,
        server.url(&format!("/api/v1/conversations/{conversation}/messages")),
        &alice_token,
        None,
    )
    .await;
    assert!(r.status() == 401 || r.status() == 404, "{}", r.status());
    // Bob's conversation is still there.
    assert!(
        store
            .conversation(bob_conversation)
            .await
            .unwrap()
            .is_some()
    );
}

const EMAIL: &str = "carol.quokka@example.org";
/// One of the demo knowledge base's examples, so that the AI answers it (and the visitor can
/// dislike the answer); being in the knowledge base, it is not one of the raw-file needles.
const ASKED: &str = "help me to see when will my product arrive";
const ORDER_QUESTION: &str = "how can I cancel my order pmark7731 my phone is +49 170 5550199";
const ORDER_ANSWER: &str = "You can cancel an order in your account under Orders. It is free.";
const CARD_QUESTION: &str = "please refund card 4111 1111 1111 1111 to Carol Wombatson";
const CARD_ANSWER: &str = "Refunds go back to the card you paid with within 5 days.";
const NOTE: &str = "carol sounded upset about the platypus parcel";
const COMMENT: &str = "the echidna courier was late";

async fn json(
    http: &Client,
    method: Method,
    server: &TestServer,
    token: &str,
    path: &str,
) -> (u16, Value) {
    let r = authed(http, method, server.url(path), token, None).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A visitor's words reach the knowledge base (a teach by the owner, live; a plain agent's
/// teach and a thumbs-down, pending) masked, and leave it when the owner deletes the visitor:
/// the learned entries keep the agent's answer, and neither the database file nor its log
/// holds any of the visitor's distinctive strings afterwards.
#[tokio::test]
async fn a_deleted_visitors_words_leave_the_knowledge_base_and_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nexus.db");
    let server = TestServer::start(&db).await;
    forget_the_visitor(&server).await;
    let needles = [
        EMAIL,
        "pmark7731",
        "5550199",
        "4111 1111",
        "Wombatson",
        "order [order number] my phone",
        NOTE,
        COMMENT,
    ];
    let mut files = Vec::new();
    for name in ["nexus.db", "nexus.db-wal"] {
        let path = dir.path().join(name);
        if let Ok(bytes) = std::fs::read(&path) {
            files.push((name, bytes));
        }
    }
    assert!(
        files
            .iter()
            .any(|(name, bytes)| *name == "nexus.db" && bytes.len() > 10_000),
        "the database file was read"
    );
    for (name, bytes) in &files {
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} is still in {name} ({} bytes) after the deletion",
                bytes.len()
            );
        }
    }
    // The agent's answers are still there: the raw check above can see text at all.
    let main = &files.iter().find(|(n, _)| *n == "nexus.db").unwrap().1;
    let wal = files
        .iter()
        .find(|(n, _)| *n == "nexus.db-wal")
        .map(|f| &f.1);
    let kept = "Refunds go back to the card you paid with";
    assert!(
        main.windows(kept.len()).any(|w| w == kept.as_bytes())
            || wal.is_some_and(|b| b.windows(kept.len()).any(|w| w == kept.as_bytes())),
        "the agent's answer is kept"
    );
}

#[tokio::test]
async fn a_deleted_visitors_words_leave_the_knowledge_base_on_postgres() {
    let schema = nexus_tests::pg::TestSchema::create().await;
    forget_the_visitor(&TestServer::start_url(&schema.url, &nexus_tests::widget_dir()).await).await;
}

async fn forget_the_visitor(server: &TestServer) {
    let http = Client::new();
    let owner = agent_login(server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(server, "demo", "ana@demo.test", Role::Agent).await;

    // Carol asks, the AI answers, she dislikes it (pending, thumbs_down) and leaves her email.
    let (mut carol, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    carol.send(&frames::send(None, "c1", ASKED)).await;
    let conversation = carol.recv_ack().await;
    let answer = carol
        .until("the AI's answer", |f| match f {
            nexus_shared::ServerFrame::Message(m) if nexus_engine::policy::is_answer(m) => {
                Some(m.id)
            }
            _ => None,
        })
        .await;
    carol
        .send(&ClientFrame::Feedback {
            conversation_id: conversation,
            message_id: answer,
            helpful: false,
        })
        .await;
    carol
        .send(&ClientFrame::LeaveEmail {
            conversation_id: conversation,
            email: EMAIL.into(),
        })
        .await;
    carol
        .send(&frames::send(Some(conversation), "c2", ORDER_QUESTION))
        .await;
    carol.recv_ack().await;

    // The owner answers, notes and resolves with teach: live at once (`learning: auto`).
    let (mut olga, _) = WsClient::agent(&server.ws_url(), &owner).await;
    olga.send(&ClientFrame::TakeOver {
        conversation_id: conversation,
    })
    .await;
    olga.send(&frames::send(Some(conversation), "o1", ORDER_ANSWER))
        .await;
    olga.recv_ack().await;
    olga.send(&ClientFrame::Note {
        conversation_id: conversation,
        client_msg_id: "n1".into(),
        body: NOTE.into(),
    })
    .await;
    olga.send(&ClientFrame::Resolve {
        conversation_id: conversation,
        teach: Some(nexus_shared::Teach {
            question: ORDER_QUESTION.into(),
            answer: ORDER_ANSWER.into(),
            entry_id: None,
        }),
    })
    .await;
    carol
        .recv_state(nexus_shared::ConversationState::Resolved)
        .await;
    carol
        .send(&ClientFrame::Csat {
            conversation_id: conversation,
            score: 2,
            comment: Some(COMMENT.into()),
        })
        .await;
    carol.sync().await;

    // A second conversation; a plain agent's teach waits for the owner (`agent_learning`).
    carol.send(&ClientFrame::NewConversation).await;
    carol.send(&frames::send(None, "c3", CARD_QUESTION)).await;
    let second = carol.recv_ack().await;
    assert_ne!(second, conversation);
    let (mut ana, _) = WsClient::agent(&server.ws_url(), &agent).await;
    ana.send(&ClientFrame::TakeOver {
        conversation_id: second,
    })
    .await;
    ana.send(&frames::send(Some(second), "a1", CARD_ANSWER))
        .await;
    ana.recv_ack().await;
    ana.send(&ClientFrame::Resolve {
        conversation_id: second,
        teach: Some(nexus_shared::Teach {
            question: CARD_QUESTION.into(),
            answer: CARD_ANSWER.into(),
            entry_id: None,
        }),
    })
    .await;
    carol
        .recv_state(nexus_shared::ConversationState::Resolved)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // What was learned is masked, and titled from the answer.
    let (_, found) = json(&http, Method::GET, server, &owner, "/api/v1/kb?q=pmark7731").await;
    assert_eq!(
        found,
        serde_json::json!([]),
        "the order id never became knowledge"
    );
    let (_, kb) = json(
        &http,
        Method::GET,
        server,
        &owner,
        "/api/v1/kb?q=under%20Orders",
    )
    .await;
    let learned = kb
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["answer"] == ORDER_ANSWER)
        .unwrap_or_else(|| panic!("the owner's teach is live: {kb}"))
        .clone();
    assert_eq!(
        learned["examples"],
        serde_json::json!(["how can I cancel my order [order number] my phone is [phone]"])
    );
    assert_eq!(
        learned["title"],
        "You can cancel an order in your account under Orders."
    );
    let (_, pending) = json(&http, Method::GET, server, &owner, "/api/v1/kb/pending").await;
    let questions: Vec<&str> = pending
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["question"].as_str())
        .collect();
    assert!(
        questions.contains(&"please refund card [card number] to Carol Wombatson"),
        "the agent's teach waits, masked: {pending}"
    );
    assert!(
        questions.contains(&ASKED),
        "the thumbs-down waits: {pending}"
    );

    // The owner finds Carol by her email (any case) and from the conversation.
    let (status, by_email) = json(
        &http,
        Method::GET,
        server,
        &owner,
        &format!("/api/v1/visitors?email={}", EMAIL.to_uppercase()),
    )
    .await;
    assert_eq!(status, 200, "{by_email}");
    assert_eq!(by_email.as_array().unwrap().len(), 1, "{by_email}");
    let carol_id = by_email[0]["id"].as_str().unwrap().to_owned();
    let (_, by_conversation) = json(
        &http,
        Method::GET,
        server,
        &owner,
        &format!("/api/v1/visitors?conversation_id={second}"),
    )
    .await;
    assert_eq!(by_conversation[0]["id"], carol_id.as_str());
    let (status, _) = json(
        &http,
        Method::GET,
        server,
        &agent,
        "/api/v1/visitors?email=x@y.z",
    )
    .await;
    assert_eq!(status, 403, "agents cannot look visitors up");
    let (status, body) = json(&http, Method::GET, server, &owner, "/api/v1/visitors").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("validation")));

    // The export holds every row about her.
    let (status, export) = json(
        &http,
        Method::GET,
        server,
        &owner,
        &format!("/api/v1/visitors/{carol_id}/export"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(export["visitor"]["email"], EMAIL);
    assert_eq!(export["conversations"].as_array().unwrap().len(), 2);
    assert_eq!(export["notes"][0]["body"], NOTE);
    assert_eq!(export["feedback"][0]["message_id"], answer.to_string());
    assert_eq!(export["feedback"][0]["helpful"], false);
    let learned_rows = export["learned"].as_array().unwrap();
    let origins: Vec<(&str, &str)> = learned_rows
        .iter()
        .map(|l| (l["origin"].as_str().unwrap(), l["status"].as_str().unwrap()))
        .collect();
    assert!(origins.contains(&("thumbs_down", "pending")), "{origins:?}");
    assert!(origins.contains(&("teach", "live")), "{origins:?}");
    assert!(origins.contains(&("teach", "pending")), "{origins:?}");
    let text = export.to_string();
    assert!(text.contains(COMMENT) && text.contains("pmark7731"));

    // Deleted: she is gone, and so are her words in what was learned.
    let (status, _) = json(
        &http,
        Method::DELETE,
        server,
        &owner,
        &format!("/api/v1/visitors/{carol_id}"),
    )
    .await;
    assert_eq!(status, 204);
    let (_, kb) = json(&http, Method::GET, server, &owner, "/api/v1/kb").await;
    let entry = kb
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["answer"] == ORDER_ANSWER)
        .expect("the agent's answer stays in the knowledge base");
    assert_eq!(entry["examples"], serde_json::json!([]), "{entry}");
    assert!(!kb.to_string().contains("[order number] my phone"));
    let (_, pending) = json(&http, Method::GET, server, &owner, "/api/v1/kb/pending").await;
    let pending_text = pending.to_string();
    assert!(
        !pending_text.contains("Wombatson") && !pending_text.contains(ASKED),
        "{pending}"
    );
    assert!(
        pending_text.contains(CARD_ANSWER),
        "pending entries keep the agent's answer: {pending}"
    );
    for p in pending.as_array().unwrap() {
        assert_eq!(p["conversation_id"], Value::Null, "unlinked: {p}");
    }
    let (_, by_email) = json(
        &http,
        Method::GET,
        server,
        &owner,
        &format!("/api/v1/visitors?email={EMAIL}"),
    )
    .await;
    assert_eq!(by_email, serde_json::json!([]));
    let (_, by_conversation) = json(
        &http,
        Method::GET,
        server,
        &owner,
        &format!("/api/v1/visitors?conversation_id={conversation}"),
    )
    .await;
    assert_eq!(by_conversation, serde_json::json!([]));
}
