//! Attacks on accounts through the real server: password guesses sent all at once are
//! throttled like guesses sent one after the other, password checks run a few at a time with
//! an honest busy error past that, and a session that ends (logout, password change, expiry)
//! ends its open agent WebSockets at once.

use std::time::Duration;

use futures_util::future::join_all;
use nexus_shared::{ClientFrame, ConversationState, ErrorCode, Role, ServerFrame};
use nexus_tests::{PASSWORD, TestServer, WsClient, agent_login, frames};
use serde_json::{Value, json};

/// `POST /auth/login`; the status and the JSON body.
async fn login(
    http: &reqwest::Client,
    server: &TestServer,
    email: &str,
    password: &str,
    forwarded_for: Option<String>,
) -> (u16, Value) {
    let mut request = http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"site_key": "demo", "email": email, "password": password}));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    let response = request.send().await.expect("login sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn guesses_sent_at_once_are_throttled_and_the_right_password_then_gets_no_token() {
    let (server, _dir) = TestServer::scratch().await;
    let _ = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let http = reqwest::Client::new();

    let guesses = (0..30).map(|i| {
        let http = http.clone();
        let server = &server;
        async move {
            login(
                &http,
                server,
                "ana@demo.test",
                &format!("guess {i:04}"),
                None,
            )
            .await
        }
    });
    let answers = join_all(guesses).await;
    let wrong = answers
        .iter()
        .filter(|(s, b)| *s == 401 && b["code"] == "invalid_credentials")
        .count();
    let throttled = answers
        .iter()
        .filter(|(s, b)| *s == 429 && b["code"] == "login_throttled")
        .count();
    println!("30 simultaneous guesses: {wrong} checked, {throttled} throttled");
    assert_eq!(
        wrong + throttled,
        30,
        "every answer is one of the two: {answers:?}"
    );
    assert!(
        wrong <= nexus_server::access::accounts::MAX_FAILURES as usize,
        "at most {} guesses are checked, {wrong} were",
        nexus_server::access::accounts::MAX_FAILURES
    );
    // The right password, sent last, is refused while the account is locked.
    let (status, body) = login(&http, &server, "ana@demo.test", PASSWORD, None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "login_throttled");
    assert!(body.get("token").is_none());
}

#[tokio::test]
async fn password_checks_past_the_cap_get_an_honest_busy_error() {
    let (server, _dir) = TestServer::scratch().await;
    // Each request names its own address through a trusted proxy, so no address is throttled:
    // only the cap on concurrent checks can refuse them.
    server
        .state
        .connections
        .set_trusted_proxies(vec!["127.0.0.1/32".parse().unwrap()]);
    server.state.throttle.set_check_wait(Duration::ZERO);
    let _ = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let http = reqwest::Client::new();

    let attempts = (0..40).map(|i| {
        let http = http.clone();
        let server = &server;
        async move {
            let email = format!("nobody{i}@demo.test");
            let ip = Some(format!("203.0.113.{}", i + 1));
            login(&http, server, &email, "a wrong password", ip).await
        }
    });
    let answers = join_all(attempts).await;
    let checked = answers
        .iter()
        .filter(|(s, b)| *s == 401 && b["code"] == "invalid_credentials")
        .count();
    let busy: Vec<&Value> = answers
        .iter()
        .filter(|(s, b)| *s == 503 && b["code"] == "unavailable")
        .map(|(_, b)| b)
        .collect();
    println!(
        "40 simultaneous logins: {checked} checked, {} busy",
        busy.len()
    );
    assert_eq!(checked + busy.len(), 40, "{answers:?}");
    assert!(
        !busy.is_empty(),
        "past the cap some logins are told the server is busy"
    );
    assert!(busy[0]["message"].as_str().unwrap().contains("busy"));
    // A busy answer is not a failed login: the right password from the next address works.
    let (status, body) = login(
        &http,
        &server,
        "ana@demo.test",
        PASSWORD,
        Some("203.0.113.200".into()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].as_str().unwrap().starts_with("st_"));
}

/// Waits for `unauthorized` on an agent socket, then for the server to close it.
async fn ends_with_unauthorized(ws: &mut WsClient, what: &str) {
    ws.until(what, |f| {
        matches!(f, ServerFrame::Error(e) if e.code == ErrorCode::Unauthorized).then_some(())
    })
    .await;
    ws.until_closed().await;
}

/// A conversation waiting for a person.
async fn escalated(server: &TestServer) -> (WsClient, uuid::Uuid) {
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor
        .send(&frames::send(None, "q1", "Where is my parcel?"))
        .await;
    let conversation_id = visitor.recv_ack().await;
    visitor
        .send(&ClientFrame::RequestHuman { conversation_id })
        .await;
    visitor.recv_state(ConversationState::Waiting).await;
    (visitor, conversation_id)
}

#[tokio::test]
async fn logout_and_a_password_change_end_the_open_agent_sockets() {
    let (server, _dir) = TestServer::scratch().await;
    let first = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let second = server.login("demo", "ana@demo.test").await;
    let (_visitor, conversation_id) = escalated(&server).await;
    let (mut a1, _) = WsClient::agent(&server.ws_url(), &first).await;
    let (mut a2, _) = WsClient::agent(&server.ws_url(), &first).await;
    let (mut b, _) = WsClient::agent(&server.ws_url(), &second).await;

    // Logout ends that session's sockets at once, and only that session's.
    let http = reqwest::Client::new();
    let r = http
        .post(server.url("/api/v1/auth/logout"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let me = http
        .get(server.url("/api/v1/me"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    ends_with_unauthorized(&mut a1, "the end of the logged-out session").await;
    ends_with_unauthorized(&mut a2, "the end of the logged-out session").await;
    b.send(&ClientFrame::TakeOver { conversation_id }).await;
    b.until("the other session's takeover", |f| {
        matches!(
            f,
            ServerFrame::State {
                state: ConversationState::Human,
                ..
            }
        )
        .then_some(())
    })
    .await;

    // A password changed as `nexus-flow user passwd` does it (in the store, from another
    // process that cannot reach this one's sockets): the next action is refused, nothing is
    // posted, and the socket closes.
    let site = server.site("demo").await;
    let (user, _) = server
        .state
        .store
        .user_by_email(site.id, "ana@demo.test")
        .await
        .unwrap()
        .unwrap();
    let hash = nexus_server::access::accounts::hash_password("a brand new password").unwrap();
    server
        .state
        .store
        .set_password(user.id, &hash)
        .await
        .unwrap();
    b.send(&frames::send(
        Some(conversation_id),
        "r-after-passwd",
        "Posted under an ended session",
    ))
    .await;
    ends_with_unauthorized(&mut b, "the refusal after the password change").await;
    let stored = server
        .state
        .store
        .messages_after(conversation_id, 0, 200)
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .all(|m| m.body != "Posted under an ended session"),
        "nothing is posted under an ended session"
    );
}
