//! The knowledge base over REST: owners add, edit and delete entries and the AI answers from
//! the change at once; agents may read but not change; other sites see nothing.

use nexus_shared::{ConversationState, Role};
use nexus_tests::frames;
use nexus_tests::http::{authed, get_json};
use nexus_tests::{TestServer, WsClient, agent_login};
use reqwest::Method;
use serde_json::json;

async fn ask(server: &TestServer, question: &str) -> Result<String, ConversationState> {
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&frames::send(None, "q", question)).await;
    visitor.recv_answer().await
}

#[tokio::test]
async fn owners_edit_the_knowledge_base_and_the_ai_answers_from_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let http = reqwest::Client::new();
    let question = "Do you roast the coffee beans yourselves?";

    assert_eq!(
        ask(&server, question).await,
        Err(ConversationState::Waiting),
        "not covered yet: handed to a person"
    );

    let entry = json!({
        "title": "Roasting",
        "answer": "Yes, we roast every bean in small batches in our own roastery.",
        "examples": [question, "who roasts your coffee", "is the coffee roasted in house"]
    });
    let response = authed(
        &http,
        Method::POST,
        server.url("/api/v1/kb"),
        &agent,
        Some(&entry),
    )
    .await;
    assert_eq!(
        response.status(),
        403,
        "agents cannot change the knowledge base"
    );
    let response = authed(
        &http,
        Method::POST,
        server.url("/api/v1/kb"),
        &owner,
        Some(&json!({"title": "", "answer": "x", "examples": []})),
    )
    .await;
    assert_eq!(response.status(), 400, "invalid entries are refused");
    let response = authed(
        &http,
        Method::POST,
        server.url("/api/v1/kb"),
        &owner,
        Some(&entry),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    assert_eq!(
        ask(&server, "who roasts your coffee beans?").await,
        Ok("Yes, we roast every bean in small batches in our own roastery.".to_owned())
    );

    // Agents can search it.
    let found: serde_json::Value =
        get_json(&http, server.url("/api/v1/kb?q=roastery"), &agent).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["id"], id.as_str());

    // An edit is answered at once.
    let mut edited = entry.clone();
    edited["answer"] = json!("Yes: we roast twice a week, in our own roastery in Leipzig.");
    let response = authed(
        &http,
        Method::PUT,
        server.url(&format!("/api/v1/kb/{id}")),
        &owner,
        Some(&edited),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        ask(&server, question).await,
        Ok("Yes: we roast twice a week, in our own roastery in Leipzig.".to_owned())
    );

    // Another site's owner sees none of it.
    let other = nexus_server::model::Site {
        id: uuid::Uuid::new_v4(),
        key: "other".into(),
        name: "Other".into(),
        settings: Default::default(),
        created_at: 0,
    };
    server.state.store.create_site(&other).await.unwrap();
    let stranger = agent_login(&server, "other", "eve@other.test", Role::Owner).await;
    for (method, path) in [
        (reqwest::Method::GET, format!("/api/v1/kb/{id}")),
        (reqwest::Method::PUT, format!("/api/v1/kb/{id}")),
        (reqwest::Method::DELETE, format!("/api/v1/kb/{id}")),
    ] {
        let response = authed(
            &http,
            method.clone(),
            server.url(&path),
            &stranger,
            Some(&edited),
        )
        .await;
        assert_eq!(response.status(), 404, "{method} {path} from another site");
    }
    let listed: serde_json::Value =
        get_json(&http, server.url("/api/v1/kb?q=roast"), &stranger).await;
    assert_eq!(listed.as_array().unwrap().len(), 0);

    // Deleted: the question goes to a person again.
    let response = authed(
        &http,
        Method::DELETE,
        server.url(&format!("/api/v1/kb/{id}")),
        &owner,
        None,
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        ask(&server, question).await,
        Err(ConversationState::Waiting)
    );

    // Without a session, nothing.
    let response = http.get(server.url("/api/v1/kb")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    server.stop().await;
}
