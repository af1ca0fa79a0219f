//! Connection caps, allowed origins, identity verification and security headers, over a real
//! WebSocket and real HTTP.

use std::time::Duration;

use nexus_server::access::identity::identity_hash;
use nexus_shared::{ClientFrame, ErrorCode, Identity, Role, ServerFrame, Session};
use nexus_tests::{TestServer, WsClient, agent_login};

fn error_code(frame: &ServerFrame) -> Option<ErrorCode> {
    match frame {
        ServerFrame::Error(e) => Some(e.code),
        _ => None,
    }
}

async fn still_works(client: &mut WsClient) {
    client.send(&ClientFrame::Ping).await;
    let (_, _) = client
        .recv_until(|f| matches!(f, ServerFrame::Pong).then_some(()))
        .await;
}

#[tokio::test]
async fn connections_over_the_per_ip_cap_are_refused_and_others_keep_working() {
    let (server, _dir) = TestServer::scratch().await;
    server.state.connections.set_per_ip(3);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(WsClient::visitor(&server.ws_url(), "demo", None).await.0);
    }
    let mut fourth = WsClient::connect(&server.ws_url()).await;
    assert_eq!(
        error_code(&fourth.recv().await),
        Some(ErrorCode::TooManyConnections)
    );
    assert!(
        fourth.try_recv(Duration::from_secs(2)).await.is_none(),
        "the refused connection is closed"
    );
    for client in &mut open {
        still_works(client).await;
    }

    // Closing one frees its slot.
    open.pop().expect("a client").close().await;
    let ip = "127.0.0.1".parse().expect("ip");
    for _ in 0..100 {
        if server.state.connections.open_from(ip) < 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut again, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    still_works(&mut again).await;
}

/// Behind a trusted reverse proxy, each visitor counts under their own address (from
/// `X-Forwarded-For`), not the proxy's; without the proxy trusted, the header changes nothing.
#[tokio::test]
async fn behind_a_trusted_proxy_the_per_ip_cap_counts_each_visitor() {
    let (server, _dir) = TestServer::scratch().await;
    server.state.connections.set_per_ip(2);
    let from = |client: &'static str| {
        let url = server.ws_url();
        async move {
            let mut ws = WsClient::connect_with(&url, &[("x-forwarded-for", client)]).await;
            let answer = ws.hello_visitor("demo", None, None).await;
            (ws, answer)
        }
    };

    // Not trusted (the default): the header is ignored, everyone is 127.0.0.1.
    let (a, answer) = from("203.0.113.1").await;
    assert!(matches!(answer, ServerFrame::Welcome(_)), "{answer:?}");
    let (b, answer) = from("203.0.113.2").await;
    assert!(matches!(answer, ServerFrame::Welcome(_)), "{answer:?}");
    let mut third =
        WsClient::connect_with(&server.ws_url(), &[("x-forwarded-for", "203.0.113.3")]).await;
    assert_eq!(
        error_code(&third.recv().await),
        Some(ErrorCode::TooManyConnections),
        "an untrusted X-Forwarded-For does not get past the cap"
    );
    drop((a, b));

    // The proxy on 127.0.0.1 trusted: two visitors behind it each have their own cap.
    server
        .state
        .connections
        .set_trusted_proxies(vec!["127.0.0.1/32".parse().expect("a network")]);
    let ip = "127.0.0.1".parse().expect("ip");
    for _ in 0..100 {
        if server.state.connections.open_from(ip) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut open = Vec::new();
    for client in ["203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.2"] {
        let (ws, answer) = from(client).await;
        assert!(
            matches!(answer, ServerFrame::Welcome(_)),
            "{client}: {answer:?}"
        );
        open.push(ws);
    }
    let mut over = WsClient::connect_with(
        &server.ws_url(),
        // A client's own header before the proxy's entry does not help it.
        &[("x-forwarded-for", "198.51.100.7, 203.0.113.1")],
    )
    .await;
    assert_eq!(
        error_code(&over.recv().await),
        Some(ErrorCode::TooManyConnections),
        "203.0.113.1's third connection is over its cap"
    );
    assert_eq!(
        server
            .state
            .connections
            .open_from("203.0.113.1".parse().expect("ip")),
        2
    );
    for client in &mut open {
        still_works(client).await;
    }
}

#[tokio::test]
async fn connections_over_the_per_site_cap_are_refused() {
    let (server, _dir) = TestServer::scratch().await;
    server.state.connections.set_per_site(2);
    let (mut first, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    let (_second, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    let mut third = WsClient::connect(&server.ws_url()).await;
    let answer = third.hello_visitor("demo", None, None).await;
    assert_eq!(error_code(&answer), Some(ErrorCode::TooManyConnections));
    still_works(&mut first).await;
}

#[tokio::test]
async fn only_allowed_origins_may_open_the_widget() {
    let (server, _dir) = TestServer::scratch().await;
    server
        .configure(|s| {
            s.allowed_origins = vec!["https://shop.example".into()];
        })
        .await;

    let mut allowed = WsClient::connect_from(&server.ws_url(), "https://shop.example").await;
    let answer = allowed.hello_visitor("demo", None, None).await;
    assert!(matches!(answer, ServerFrame::Welcome(_)), "{answer:?}");

    let mut other = WsClient::connect_from(&server.ws_url(), "https://evil.example").await;
    let answer = other.hello_visitor("demo", None, None).await;
    assert_eq!(error_code(&answer), Some(ErrorCode::OriginNotAllowed));

    let mut none = WsClient::connect(&server.ws_url()).await;
    let answer = none.hello_visitor("demo", None, None).await;
    assert_eq!(
        error_code(&answer),
        Some(ErrorCode::OriginNotAllowed),
        "without an Origin header a restricted site refuses"
    );
    still_works(&mut allowed).await;
}

fn identity(id: &str, hash: Option<String>) -> Identity {
    Identity {
        id: id.into(),
        name: Some("Grace Hopper".into()),
        email: Some("grace@example.com".into()),
        hash,
    }
}

#[tokio::test]
async fn identity_claims_are_verified_when_the_site_has_a_secret() {
    let (server, _dir) = TestServer::scratch().await;
    let secret = "a site secret of some length";
    server
        .configure(|s| s.identity_secret = Some(secret.into()))
        .await;
    let url = server.ws_url();

    // A correct hash: accepted, and the name and email are kept on the visitor.
    let hash = identity_hash(secret, "user-42");
    let mut client = WsClient::connect(&url).await;
    let ServerFrame::Welcome(welcome) = client
        .hello_visitor("demo", None, Some(identity("user-42", Some(hash))))
        .await
    else {
        panic!("a verified identity is welcome");
    };
    let Session::Visitor { visitor_token } = welcome.session else {
        panic!("a visitor session");
    };
    let store = server.state.store.as_ref();
    let site = store.site_by_key("demo").await.unwrap().unwrap();
    let visitor = store
        .visitor_by_token(site.id, &visitor_token)
        .await
        .unwrap()
        .expect("visitor stored");
    assert_eq!(visitor.info.name.as_deref(), Some("Grace Hopper"));
    assert_eq!(visitor.info.email.as_deref(), Some("grace@example.com"));

    // A wrong hash, a hash for another id, or none at all: refused, not ignored.
    for hash in [
        Some("00".repeat(32)),
        Some(identity_hash(secret, "user-43")),
        Some(identity_hash("another secret", "user-42")),
        Some("not hex".into()),
        None,
    ] {
        let mut client = WsClient::connect(&url).await;
        let answer = client
            .hello_visitor("demo", None, Some(identity("user-42", hash.clone())))
            .await;
        assert_eq!(
            error_code(&answer),
            Some(ErrorCode::IdentityInvalid),
            "hash {hash:?}"
        );
    }

    // Another verified user on the same browser (same token) does not get the first one's
    // visitor.
    let hash = identity_hash(secret, "user-43");
    let mut client = WsClient::connect(&url).await;
    let ServerFrame::Welcome(other) = client
        .hello_visitor(
            "demo",
            Some(visitor_token.clone()),
            Some(identity("user-43", Some(hash))),
        )
        .await
    else {
        panic!("a verified identity is welcome");
    };
    let Session::Visitor {
        visitor_token: other_token,
    } = other.session
    else {
        panic!("a visitor session");
    };
    assert_ne!(other_token, visitor_token);

    // Anonymous visitors are still welcome while identity is optional...
    let mut anonymous = WsClient::connect(&url).await;
    let answer = anonymous.hello_visitor("demo", None, None).await;
    assert!(matches!(answer, ServerFrame::Welcome(_)), "{answer:?}");

    // ...and refused once the site requires it.
    server.configure(|s| s.require_identity = true).await;
    let mut anonymous = WsClient::connect(&url).await;
    let answer = anonymous.hello_visitor("demo", None, None).await;
    assert_eq!(error_code(&answer), Some(ErrorCode::IdentityInvalid));
}

#[tokio::test]
async fn api_responses_carry_security_headers_and_hide_the_identity_secret() {
    let (server, _dir) = TestServer::scratch().await;
    server
        .configure(|s| {
            s.identity_secret = Some("never shown".into());
        })
        .await;
    let http = reqwest::Client::new();
    let routes = ["/api/v1/health", "/api/v1/me", "/api/v1/site", "/"];
    for route in routes {
        let response = http.get(server.url(route)).send().await.expect("request");
        let headers = response.headers();
        assert_eq!(headers["x-frame-options"], "DENY", "{route}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{route}");
        assert!(headers.contains_key("referrer-policy"), "{route}");
    }
    eprintln!("security headers: {} routes checked", routes.len());

    let token = agent_login(&server, "demo", "owner@example.com", Role::Owner).await;
    let body: serde_json::Value = http
        .get(server.url("/api/v1/site"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(body["settings"]["identity_secret"], "***");
    assert!(!body.to_string().contains("never shown"));
}

/// Agent mode in a site's widget: an agent's session from a page other than the server's own
/// works only from the site's allowed origins (an empty list allows none), over the
/// WebSocket and the REST API, and such a page gets the CORS headers it needs to read the
/// answers (the refusal included).
#[tokio::test]
async fn agent_sessions_from_a_site_page_need_an_allowed_origin() {
    let (server, _dir) = TestServer::scratch().await;
    let token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let http = reqwest::Client::new();
    let login = |origin: &'static str| {
        let body = serde_json::json!({
            "site_key": "demo", "email": "ana@demo.test", "password": nexus_tests::PASSWORD
        });
        http.post(server.url("/api/v1/auth/login"))
            .header("origin", origin)
            .json(&body)
            .send()
    };
    let me = |origin: &'static str| {
        http.get(server.url("/api/v1/me"))
            .header("origin", origin)
            .bearer_auth(&token)
            .send()
    };

    // No origin is listed: a shop's page may not use an agent session.
    let refused = login("https://shop.example").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.headers()["access-control-allow-origin"],
        "https://shop.example",
        "the page can read why"
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "origin_not_allowed", "{body}");
    assert_eq!(me("https://shop.example").await.unwrap().status(), 403);
    let mut ws = WsClient::connect_from(&server.ws_url(), "https://shop.example").await;
    ws.send(&nexus_tests::frames::hello(nexus_tests::frames::agent(
        &token,
    )))
    .await;
    assert_eq!(
        error_code(&ws.recv().await),
        Some(ErrorCode::OriginNotAllowed)
    );

    // The server's own page (the `/agent` console) always may.
    let own = server.url("");
    let own = own.trim_end_matches('/').to_owned();
    let mut console = WsClient::connect_from(&server.ws_url(), &own).await;
    console
        .send(&nexus_tests::frames::hello(nexus_tests::frames::agent(
            &token,
        )))
        .await;
    assert!(matches!(console.recv().await, ServerFrame::Welcome(_)));

    // Listed, the shop's page may: preflight, login, REST and the WebSocket.
    server
        .configure(|s| s.allowed_origins = vec!["https://shop.example".into()])
        .await;
    let preflight = http
        .request(reqwest::Method::OPTIONS, server.url("/api/v1/me"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert!(
        preflight
            .headers()
            .get("access-control-allow-credentials")
            .is_none(),
        "no cookies, ever"
    );
    let ok = login("https://shop.example").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(me("https://shop.example").await.unwrap().status(), 200);
    assert_eq!(me("https://evil.example").await.unwrap().status(), 403);
    let mut shop = WsClient::connect_from(&server.ws_url(), "https://shop.example").await;
    shop.send(&nexus_tests::frames::hello(nexus_tests::frames::agent(
        &token,
    )))
    .await;
    assert!(matches!(shop.recv().await, ServerFrame::Welcome(_)));
    let mut evil = WsClient::connect_from(&server.ws_url(), "https://evil.example").await;
    evil.send(&nexus_tests::frames::hello(nexus_tests::frames::agent(
        &token,
    )))
    .await;
    assert_eq!(
        error_code(&evil.recv().await),
        Some(ErrorCode::OriginNotAllowed)
    );
}
