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
