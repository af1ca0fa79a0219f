//! Limits and visitor checks over HTTP, and floods over WebSockets that leave other
//! connections unaffected: the history page size, the history route's origin and identity
//! checks (the same as the WebSocket `hello`), a frames-per-second flood and oversized frames.

use std::time::Duration;

use nexus_server::access::identity::identity_hash;
use nexus_shared::{ClientFrame, ErrorCode, Identity, ServerFrame, limits};
use nexus_tests::frames;
use nexus_tests::{TestServer, WsClient};
use uuid::Uuid;

/// `GET` with a visitor token and extra headers; returns the status and the JSON body.
async fn get(url: &str, bearer: &str, headers: &[(&str, String)]) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().get(url).bearer_auth(bearer);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// A visitor with a conversation of a few messages; returns the client, its token and the
/// conversation id.
async fn visitor_with_history(
    client: &mut WsClient,
    welcome: &nexus_shared::Welcome,
    messages: usize,
) -> (String, Uuid) {
    let mut conversation = Uuid::nil();
    for i in 0..messages {
        client
            .send(&frames::send(
                None,
                format!("h-{i}"),
                format!("question {i}"),
            ))
            .await;
        conversation = client.recv_ack().await;
    }
    (frames::visitor_token(welcome), conversation)
}

#[tokio::test]
async fn a_history_page_over_the_limit_gets_a_clear_error() {
    let (server, _dir) = TestServer::scratch().await;
    let (mut client, welcome) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    let (token, conversation) = visitor_with_history(&mut client, &welcome, 2).await;
    let url = |query: &str| {
        server.url(&format!(
            "/api/v1/conversations/{conversation}/messages?{query}"
        ))
    };
    let max = limits::MAX_HISTORY_PAGE;
    let mut breaches = 0;
    for limit in [max + 1, 10_000, u32::MAX, 0] {
        let (status, body) = get(&url(&format!("limit={limit}")), &token, &[]).await;
        assert_eq!(status, 400, "limit={limit}: {body}");
        assert_eq!(body["code"], "validation", "limit={limit}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or("")
                .contains(&max.to_string()),
            "the message names the limit: {body}"
        );
        breaches += 1;
    }
    let (status, body) = get(&url(&format!("limit={max}")), &token, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["messages"].as_array().is_some_and(|m| m.len() >= 2));
    let (status, body) = get(&url("limit=1"), &token, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["has_more"], true);
    eprintln!("history page size: {breaches} breaches refused with `validation`, max {max}");
    server.stop().await;
}

#[tokio::test]
async fn the_history_route_checks_the_sites_allowed_origins() {
    let (server, _dir) = TestServer::scratch().await;
    let shop = "https://shop.example";
    server
        .configure(|s| s.allowed_origins = vec![shop.into()])
        .await;
    let mut client = WsClient::connect_from(&server.ws_url(), shop).await;
    let ServerFrame::Welcome(welcome) = client.hello_visitor("demo", None, None).await else {
        panic!("the allowed origin is welcome");
    };
    let (token, conversation) = visitor_with_history(&mut client, &welcome, 1).await;
    let url = server.url(&format!("/api/v1/conversations/{conversation}/messages"));

    let (status, body) = get(&url, &token, &[("origin", shop.into())]).await;
    assert_eq!(status, 200, "{body}");
    for origin in [
        Some("https://evil.example"),
        Some("https://shop.example.evil.example"),
        Some("http://shop.example"),
        None,
    ] {
        let headers: Vec<(&str, String)> = origin
            .map(|o| ("origin", o.to_owned()))
            .into_iter()
            .collect();
        let (status, body) = get(&url, &token, &headers).await;
        assert_eq!(status, 403, "origin {origin:?}: {body}");
        assert_eq!(body["code"], "origin_not_allowed", "origin {origin:?}");
    }
    // An empty list allows every origin again.
    server.configure(|s| s.allowed_origins.clear()).await;
    let (status, _) = get(&url, &token, &[("origin", "https://evil.example".into())]).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn the_history_route_refuses_unverified_identity_claims() {
    let (server, _dir) = TestServer::scratch().await;
    let secret = "a site secret of some length";
    server
        .configure(|s| s.identity_secret = Some(secret.into()))
        .await;
    let mut client = WsClient::connect(&server.ws_url()).await;
    let identity = Identity {
        id: "user-42".into(),
        name: None,
        email: None,
        hash: Some(identity_hash(secret, "user-42")),
    };
    let ServerFrame::Welcome(welcome) = client.hello_visitor("demo", None, Some(identity)).await
    else {
        panic!("a verified identity is welcome");
    };
    let (token, conversation) = visitor_with_history(&mut client, &welcome, 1).await;
    let url = server.url(&format!("/api/v1/conversations/{conversation}/messages"));
    let claim = |id: &str, hash: String| {
        vec![
            ("x-nexus-identity-id", id.to_owned()),
            ("x-nexus-identity-hash", hash),
        ]
    };

    let (status, body) = get(
        &url,
        &token,
        &claim("user-42", identity_hash(secret, "user-42")),
    )
    .await;
    assert_eq!(status, 200, "a verified claim reads the history: {body}");
    let mut refused = 0;
    for headers in [
        claim("user-42", "00".repeat(32)),
        claim("user-42", identity_hash(secret, "user-43")),
        claim("user-42", identity_hash("another secret", "user-42")),
        claim("user-42", "not hex".into()),
        vec![("x-nexus-identity-id", "user-42".to_owned())],
        // A valid claim of someone else does not open user-42's conversation.
        claim("user-43", identity_hash(secret, "user-43")),
    ] {
        let (status, body) = get(&url, &token, &headers).await;
        assert_eq!(status, 401, "{headers:?}: {body}");
        assert_eq!(body["code"], "identity_invalid", "{headers:?}");
        refused += 1;
    }
    server.configure(|s| s.require_identity = true).await;
    let (status, body) = get(&url, &token, &[]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("identity_invalid")),
        "a site that requires identity refuses a call without a claim"
    );
    let (status, _) = get(
        &url,
        &token,
        &claim("user-42", identity_hash(secret, "user-42")),
    )
    .await;
    assert_eq!(status, 200);
    eprintln!(
        "history identity: {} bad claims refused with `identity_invalid`",
        refused + 1
    );
    server.stop().await;
}

/// Round trip of a ping, in microseconds.
async fn ping_us(client: &mut WsClient) -> u128 {
    let started = std::time::Instant::now();
    client.send(&ClientFrame::Ping).await;
    client
        .recv_until(|f| matches!(f, ServerFrame::Pong).then_some(()))
        .await;
    started.elapsed().as_micros()
}

#[tokio::test]
async fn floods_are_refused_and_other_connections_are_unaffected() {
    let (server, _dir) = TestServer::scratch().await;
    let url = server.ws_url();
    let (mut bystander, _) = WsClient::visitor(&url, "demo", None).await;
    let quiet_ping = ping_us(&mut bystander).await;

    // Three connections flood: 300 frames each as fast as they can, plus oversized frames
    // on two more.
    const FLOOD: usize = 300;
    let mut flooders = Vec::new();
    for _ in 0..3 {
        flooders.push(WsClient::visitor(&url, "demo", None).await.0);
    }
    let mut floods = Vec::new();
    for mut flooder in flooders {
        floods.push(tokio::spawn(async move {
            for _ in 0..FLOOD {
                flooder.send(&ClientFrame::Ping).await;
            }
            let (mut pongs, mut limited) = (0, 0);
            while pongs + limited < FLOOD {
                match flooder.try_recv(Duration::from_secs(10)).await {
                    Some(ServerFrame::Pong) => pongs += 1,
                    Some(ServerFrame::Error(e)) if e.code == ErrorCode::RateLimited => {
                        limited += 1;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            // After a pause the connection is served again.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            flooder.send(&ClientFrame::Ping).await;
            let recovered = flooder
                .recv_until(|f| match f {
                    ServerFrame::Pong => Some(true),
                    ServerFrame::Error(e) if e.code == ErrorCode::RateLimited => Some(false),
                    _ => None,
                })
                .await
                .0;
            (pongs, limited, recovered)
        }));
    }
    let mut oversized = Vec::new();
    for _ in 0..2 {
        let (mut big, _) = WsClient::visitor(&url, "demo", None).await;
        oversized.push(tokio::spawn(async move {
            big.send_raw("x".repeat(limits::MAX_FRAME_BYTES + 1)).await;
            // The server refuses the frame (error frame or closed socket), never serves it.
            let answer = big.try_recv(Duration::from_secs(5)).await;
            matches!(
                answer,
                None | Some(ServerFrame::Error(nexus_shared::ErrorBody {
                    code: ErrorCode::FrameTooLarge | ErrorCode::BadFrame,
                    ..
                }))
            )
        }));
    }

    // Meanwhile the bystander chats normally: every message acked and answered.
    let mut busy_pings = Vec::new();
    for i in 0..5 {
        bystander
            .send(&frames::send(
                None,
                format!("calm-{i}"),
                "how can I cancel my order",
            ))
            .await;
        bystander.recv_ack().await;
        busy_pings.push(ping_us(&mut bystander).await);
    }
    let (mut pongs, mut limited, mut recovered) = (0, 0, 0);
    for flood in floods {
        let (p, l, r) = flood.await.expect("flood task");
        assert!(l > 0, "a flood of {FLOOD} frames is rate limited");
        assert!(
            p < FLOOD / 2,
            "most of the flood is refused, not served: {p}"
        );
        assert!(r, "the flooder is served again after a pause");
        pongs += p;
        limited += l;
        recovered += 1;
    }
    for big in oversized {
        assert!(
            big.await.expect("oversized task"),
            "oversized frames are refused"
        );
    }
    ping_us(&mut bystander).await;
    let max_busy = busy_pings.iter().max().copied().unwrap_or(0);
    eprintln!(
        "flood: 3 connections x {FLOOD} pings -> {pongs} served, {limited} rate_limited, \
         {recovered}/3 served again after 1.1 s; 2 oversized frames ({} bytes) refused; \
         bystander: 5/5 messages acked, ping {quiet_ping} us quiet, max {max_busy} us during \
         the flood",
        limits::MAX_FRAME_BYTES + 1
    );
    server.stop().await;
}
