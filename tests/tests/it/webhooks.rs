//! Webhooks through the real server: escalated, agent_joined and resolved reach a receiver the
//! test runs on 127.0.0.1 (let through with `--egress-allow`), signed with HMAC-SHA256 of the
//! body; a failed delivery is retried. Without the allow list no webhook reaches loopback, in
//! any spelling or through a name.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use nexus_server::egress::Egress;
use nexus_shared::{Author, ClientFrame, ConversationState, Role, ServerFrame};
use nexus_tests::frames;
use nexus_tests::http::{authed, get_json};
use nexus_tests::{TestServer, WsClient, agent_login};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

const SECRET: &str = "whsec-test-4f1d";

/// `--egress-allow 127.0.0.0/8`: the receivers of these tests run on loopback.
fn loopback() -> Egress {
    Egress::new(vec!["127.0.0.0/8".parse().unwrap()])
}

/// One request the receiver got: when, its headers and body, and what it answered.
struct Received {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
    answered: StatusCode,
}

/// Starts a receiver on 127.0.0.1 that fails the first request with 500 and accepts the rest.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    receiver_on("127.0.0.1").await
}

async fn receiver_on(ip: &str) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let count = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            let count = count.clone();
            async move {
                let answered = if count.fetch_add(1, Ordering::SeqCst) == 0 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                };
                let _ = tx.send(Received {
                    at: Instant::now(),
                    headers,
                    body,
                    answered,
                });
                answered
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/hook"), rx)
}

fn verify(received: &Received) -> Value {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&received.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let header = received.headers["x-nexus-signature"].to_str().unwrap();
    assert_eq!(header, expected, "the signature verifies");
    let timestamp: i64 = received.headers["x-nexus-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(
        body["at"], timestamp,
        "the timestamp header is the event's time"
    );
    assert_eq!(
        received.headers["x-nexus-event"],
        body["event"].as_str().unwrap()
    );
    body
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a webhook request arrives")
        .expect("receiver runs")
}

#[tokio::test]
async fn signed_webhooks_for_escalation_join_and_resolve_with_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_egress(&dir.path().join("nexus.db"), loopback()).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent_token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let (url, mut rx) = receiver().await;
    let http = reqwest::Client::new();

    let r = authed(
        &http,
        Method::PATCH,
        server.url("/api/v1/site"),
        &owner,
        Some(&json!({"webhooks": [{"url": "ftp://nope", "secret": "x"}]})),
    )
    .await;
    assert_eq!(r.status(), 400, "only http(s) URLs");
    let r = authed(
        &http,
        Method::PATCH,
        server.url("/api/v1/site"),
        &agent_token,
        Some(&json!({"webhooks": [{"url": url, "secret": SECRET}]})),
    )
    .await;
    assert_eq!(r.status(), 403, "agents cannot set webhooks");
    let r = authed(&http, Method::PATCH, server.url("/api/v1/site"), &owner, Some(&json!({"webhooks": [{"url": url, "secret": SECRET, "events": ["escalated", "agent_joined", "resolved"]}]}))).await;
    assert_eq!(r.status(), 200);
    let site: Value = get_json(&http, server.url("/api/v1/site"), &owner).await;
    let hooks = site["settings"]["webhooks"].clone();
    assert_eq!(hooks[0]["secret"], "***", "the secret is not shown");
    assert!(!site.to_string().contains(SECRET));
    // Sending the redacted list back keeps the secret (the signatures below verify with it).
    let r = authed(
        &http,
        Method::PATCH,
        server.url("/api/v1/site"),
        &owner,
        Some(&json!({"webhooks": hooks, "greeting": "Hello!"})),
    )
    .await;
    assert_eq!(r.status(), 200);

    // Escalation.
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor
        .send(&frames::send(
            None,
            "q1",
            "Can someone help me with my order?",
        ))
        .await;
    let conversation = visitor.recv_ack().await;
    visitor
        .send(&ClientFrame::RequestHuman {
            conversation_id: conversation,
        })
        .await;
    visitor.recv_state(ConversationState::Waiting).await;
    let first = next(&mut rx).await;
    assert_eq!(first.answered, 500, "the receiver fails the first attempt");
    let retry = next(&mut rx).await;
    assert_eq!(retry.answered, 200);
    assert_eq!(retry.body, first.body, "the retry sends the same event");
    assert_eq!(retry.headers["x-nexus-attempt"], "2");
    println!("webhook retry after {:?}", retry.at - first.at);
    let body = verify(&retry);
    assert_eq!(body["event"], "escalated");
    assert_eq!(body["conversation_id"], conversation.to_string());
    assert!(body["reason"]["reason"].is_string(), "{body}");

    // An agent joins, then resolves.
    let (mut agent, _) = WsClient::agent(&server.ws_url(), &agent_token).await;
    agent
        .send(&ClientFrame::TakeOver {
            conversation_id: conversation,
        })
        .await;
    let joined = verify(&next(&mut rx).await);
    assert_eq!(joined["event"], "agent_joined");
    assert_eq!(joined["agent"]["name"], "ana");
    // The visitor sees who joined.
    let (name, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::System && m.body.contains("joined") => {
                Some(m.body.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(name, "ana joined the conversation.");
    agent
        .send(&ClientFrame::Resolve {
            conversation_id: conversation,
            teach: None,
        })
        .await;
    let resolved = verify(&next(&mut rx).await);
    assert_eq!(resolved["event"], "resolved");
    assert_eq!(resolved["conversation_id"], conversation.to_string());
}

#[tokio::test]
async fn a_dead_receiver_never_blocks_the_chat() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_egress(&dir.path().join("nexus.db"), loopback()).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    // A port nobody listens on: every attempt fails at once.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let r = authed(
        &reqwest::Client::new(),
        Method::PATCH,
        server.url("/api/v1/site"),
        &owner,
        Some(&json!({"webhooks": [{"url": format!("http://{closed}/hook"), "secret": SECRET}]})),
    )
    .await;
    assert_eq!(r.status(), 200);
    for i in 0..5 {
        let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
        visitor
            .send(&frames::send(
                None,
                format!("q{i}"),
                "I need a person please",
            ))
            .await;
        let conversation = visitor.recv_ack().await;
        visitor
            .send(&ClientFrame::RequestHuman {
                conversation_id: conversation,
            })
            .await;
        // Waiting arrives (from the policy or the request) while deliveries keep failing.
        visitor.recv_state(ConversationState::Waiting).await;
    }
}

/// Counts every request (any method, any path) to a receiver bound at `ip`.
async fn counting_receiver(ip: &str) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, count)
}

#[tokio::test]
async fn webhooks_never_reach_loopback_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // Only 127.0.0.2 is allowed: the control receiver there gets every event, the "internal"
    // one on 127.0.0.1 must get nothing.
    let allowed = Egress::new(vec!["127.0.0.2/32".parse().unwrap()]);
    let server = TestServer::start_with_egress(&dir.path().join("nexus.db"), allowed).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let (internal, hits) = counting_receiver("127.0.0.1").await;
    let port = internal.port();
    let (control, mut control_rx) = receiver_on("127.0.0.2").await;
    let http = reqwest::Client::new();

    // Address literals are refused when saved, with a clear error, in every spelling.
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f000001:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://169.254.169.254:{port}/latest/meta-data/"),
    ] {
        let r = authed(
            &http,
            Method::PATCH,
            server.url("/api/v1/site"),
            &owner,
            Some(&json!({"webhooks": [{"url": url, "secret": SECRET}]})),
        )
        .await;
        assert_eq!(r.status(), 400, "{url} must be refused");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "validation", "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("public addresses"),
            "{body}"
        );
    }
    // A name is accepted when saved (it may resolve anywhere later) and checked at delivery.
    let by_name = format!("http://localhost:{port}/hook");
    let r = authed(
        &http,
        Method::PATCH,
        server.url("/api/v1/site"),
        &owner,
        Some(&json!({"webhooks": [{"url": by_name, "secret": SECRET}, {"url": control, "secret": SECRET}]})),
    )
    .await;
    assert_eq!(r.status(), 200);
    // Literals already stored (written before the guard existed) are refused at delivery.
    server
        .configure(|settings| {
            for host in ["127.0.0.1", "2130706433", "0x7f000001"] {
                settings.webhooks.push(nexus_server::model::Webhook {
                    url: format!("http://{host}:{port}/hook"),
                    secret: SECRET.into(),
                    events: vec![],
                });
            }
        })
        .await;

    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor
        .send(&frames::send(
            None,
            "q1",
            "Can someone help me with my order?",
        ))
        .await;
    let conversation = visitor.recv_ack().await;
    visitor
        .send(&ClientFrame::RequestHuman {
            conversation_id: conversation,
        })
        .await;
    visitor.recv_state(ConversationState::Waiting).await;
    // The control receiver fails the first attempt and gets the retry a second later; the
    // refused deliveries were queued with it and are refused before any connection.
    let first = next(&mut control_rx).await;
    assert_eq!(verify(&first)["event"], "escalated");
    let retry = next(&mut control_rx).await;
    assert_eq!(retry.answered, 200);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "no webhook request may reach 127.0.0.1"
    );
}

/// `***` stands for "keep the stored secret"; on a URL with no stored webhook it must not
/// become the secret (anyone reading the settings sees `***`, so anyone could sign as the
/// server). The owner gets a clear error and nothing is stored.
#[tokio::test]
async fn a_new_webhook_with_the_redacted_secret_is_refused() {
    let (server, _dir) = TestServer::scratch().await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let http = reqwest::Client::new();
    let r = authed(
        &http,
        Method::PATCH,
        server.url("/api/v1/site"),
        &owner,
        Some(&json!({"webhooks": [{"url": "https://hooks.example.invalid/new", "secret": "***"}]})),
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "validation");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("secret of its own"),
        "{body}"
    );
    let site = server.site("demo").await;
    assert!(site.settings.webhooks.is_empty(), "nothing was stored");
}

/// The widget puts the site's colour into its style: anything but a hex colour is refused by
/// the server itself, not only by the console's form.
#[tokio::test]
async fn a_site_color_that_is_not_a_hex_color_is_refused() {
    let (server, _dir) = TestServer::scratch().await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let http = reqwest::Client::new();
    for bad in ["blue", "#12345", "#4f46e5; background: url(x)", "#ggg", ""] {
        let r = authed(
            &http,
            Method::PATCH,
            server.url("/api/v1/site"),
            &owner,
            Some(&json!({"color": bad})),
        )
        .await;
        assert_eq!(r.status(), 400, "{bad:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "validation", "{bad:?}");
    }
    for good in ["#0f766e", "#FFF"] {
        let r = authed(
            &http,
            Method::PATCH,
            server.url("/api/v1/site"),
            &owner,
            Some(&json!({"color": good})),
        )
        .await;
        assert_eq!(r.status(), 200, "{good:?}");
    }
    assert_eq!(server.site("demo").await.settings.color, "#FFF");
}
