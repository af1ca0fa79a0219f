//! Attacks on accounts through the real server: password guesses sent all at once are
//! throttled like guesses sent one after the other, password checks run a few at a time with
//! an honest busy error past that, and a session that ends (logout, password change, expiry)
//! ends its open agent WebSockets at once.

use std::time::Duration;

use futures_util::future::join_all;
use nexus_shared::Role;
use nexus_tests::{PASSWORD, TestServer, agent_login};
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
