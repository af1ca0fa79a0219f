//! `POST /api/v1/sites`: an owner creates a new, empty site of their own and signs in to it
//! with the same password; agents, strangers and bad input are refused with `{code, message}`.

use nexus_shared::Role;
use nexus_tests::http::authed;
use nexus_tests::{TestServer, agent_login};
use reqwest::{Client, Method};
use serde_json::{Value, json};

async fn create(server: &TestServer, token: Option<&str>, body: Value) -> (u16, Value) {
    let http = Client::new();
    let r = match token {
        Some(token) => {
            authed(
                &http,
                Method::POST,
                server.url("/api/v1/sites"),
                token,
                Some(&body),
            )
            .await
        }
        None => http
            .post(server.url("/api/v1/sites"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    };
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_owner_creates_a_site_of_their_own() {
    let (server, _dir) = TestServer::scratch().await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;

    let (status, body) = create(
        &server,
        Some(&agent),
        json!({"key": "ana-shop", "name": "Ana"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, body) = create(&server, None, json!({"key": "x-shop", "name": "X"})).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    for bad in [
        json!({"key": "Big Shop", "name": "Big"}),
        json!({"key": "demo", "name": "Taken"}),
        json!({"key": "fine-key", "name": ""}),
        json!({"key": "fine-key"}),
        json!({"key": "fine-key", "name": "N", "owner": "someone"}),
    ] {
        let (status, body) = create(&server, Some(&owner), bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["code"], "validation", "{bad}: {body}");
        assert!(body["message"].is_string());
    }

    let (status, site) = create(
        &server,
        Some(&owner),
        json!({"key": "olga-two", "name": "Olga's second shop"}),
    )
    .await;
    assert_eq!(status, 201, "{site}");
    assert_eq!(site["key"], "olga-two");
    // Olga signs in to it with her password; it is empty and hers.
    let token = server.login("olga-two", "olga@demo.test").await;
    let http = Client::new();
    let me: Value = nexus_tests::http::get_json(&http, server.url("/api/v1/me"), &token).await;
    assert_eq!(me["role"], "owner", "{me}");
    let kb: Value = nexus_tests::http::get_json(&http, server.url("/api/v1/kb"), &token).await;
    assert_eq!(kb, json!([]));
    let settings: Value =
        nexus_tests::http::get_json(&http, server.url("/api/v1/site"), &token).await;
    assert_eq!(settings["key"], "olga-two");
    // Ana, an agent of the demo site, has no account there.
    let r = http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"site_key": "olga-two", "email": "ana@demo.test", "password": nexus_tests::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A visitor of the new site is welcomed by it, not by the demo shop.
    let (_, welcome) = nexus_tests::WsClient::visitor(&server.ws_url(), "olga-two", None).await;
    assert_eq!(welcome.site.expect("site info").name, "Olga's second shop");
}
