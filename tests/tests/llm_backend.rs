//! The optional LLM backend against a small OpenAI-compatible server started here on
//! 127.0.0.1 (axum, server-sent events): a good streamed answer reaches the visitor after
//! `streaming` frames and is grounded on the retrieved entry; a timeout, an HTTP error and a
//! malformed reply hand the conversation over (`engine_error`, the visitor told, nothing
//! lost); a takeover in the middle of a stream stops it (no AI message after the takeover);
//! the policy still decides before the LLM runs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use nexus_server::engine::llm::{LlmClient, LlmConfig};
use nexus_server::{AppState, Config, build_state, serve};
use nexus_shared::{Author, ClientFrame, ConversationState, HandoffReason, Role, ServerFrame};
use nexus_tests::WsClient;
use serde_json::{Value, json};
use tokio::sync::watch;

const QUESTION: &str = "how can I cancel my order";
const PIECES: [&str; 5] = [
    "To cancel, ",
    "open Order History, ",
    "pick the order ",
    "and press Cancel. ",
    "Anything else?",
];

/// What the fake LLM server saw and did.
#[derive(Default)]
struct Fake {
    /// Request bodies, in order.
    requests: Mutex<Vec<Value>>,
    /// Set when a streamed reply ended: sent completely, or dropped by the client.
    stream_over: AtomicBool,
}

/// Sets `stream_over` when the response body is finished or dropped.
struct OverGuard(Arc<Fake>);

impl Drop for OverGuard {
    fn drop(&mut self) {
        self.0.stream_over.store(true, Ordering::SeqCst);
    }
}

fn chunk(content: &str) -> Bytes {
    let event = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "fake",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
    });
    Bytes::from(format!("data: {event}\n\n"))
}

/// A streamed reply: the pieces `pause` apart, then `[DONE]`.
fn sse(fake: Arc<Fake>, pieces: Vec<String>, pause: Duration) -> Response {
    let stream = futures_util::stream::unfold((0usize, OverGuard(fake)), move |(i, guard)| {
        let pieces = pieces.clone();
        async move {
            if i > pieces.len() {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(pause).await;
            }
            let bytes = match pieces.get(i) {
                Some(piece) => chunk(piece),
                None => Bytes::from_static(b"data: [DONE]\n\n"),
            };
            Some((Ok::<_, Infallible>(bytes), (i + 1, guard)))
        }
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// `POST /v1/chat/completions`; the model name picks the behaviour.
async fn completions(State(fake): State<Arc<Fake>>, body: axum::Json<Value>) -> Response {
    let body = body.0;
    fake.requests.lock().unwrap().push(body.clone());
    let pieces: Vec<String> = PIECES.iter().map(|p| (*p).to_owned()).collect();
    match body["model"].as_str().unwrap_or("") {
        "good" if body["stream"] == true => sse(fake, pieces, Duration::from_millis(120)),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            sse(fake, pieces, Duration::ZERO)
        }
        "stalls" => {
            let mut stalled = vec![pieces[0].clone()];
            stalled.push(String::new());
            sse(fake, stalled, Duration::from_secs(30))
        }
        "malformed" => (
            [(header::CONTENT_TYPE, "text/event-stream")],
            "data: {\"choices\": [{\"delta\": {\"content\": \"To can\n\ndata: [DONE]\n\n",
        )
            .into_response(),
        "takeover" => {
            let many: Vec<String> = (0..60).map(|i| format!("word{i} ")).collect();
            sse(fake, many, Duration::from_millis(100))
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "model not loaded").into_response(),
    }
}

async fn start_fake() -> (SocketAddr, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(completions))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, fake)
}

/// A Nexus Flow server with the LLM backend pointed at the fake, asking for `model`.
struct LlmServer {
    addr: SocketAddr,
    state: AppState,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl LlmServer {
    async fn start(llm: SocketAddr, model: &str, timeout: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}", dir.path().join("nexus.db").display()),
            widget_dir: nexus_tests::widget_dir(),
            model_dir: None,
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut state = build_state(&config, shutdown_rx).await.unwrap();
        state.llm = Some(Arc::new(LlmClient::new(LlmConfig {
            url: format!("http://{llm}/v1"),
            model: model.into(),
            api_key: Some(nexus_server::engine::llm::ApiKey("test-key".into())),
            timeout,
        })));
        let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            let _ = serve(listener, served, shutdown_tx, async move {
                let _ = stopped.await;
            })
            .await;
        });
        Self {
            addr,
            state,
            _stop: stop,
            _dir: dir,
        }
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Creates an agent account on the demo site and logs it in; returns the session token.
    async fn agent_token(&self, email: &str) -> String {
        let store = self.state.store.as_ref();
        let site = store.site_by_key("demo").await.unwrap().unwrap();
        nexus_server::auth::add_user(
            store,
            site.id,
            email,
            "Ana",
            Role::Agent,
            "a long test password",
        )
        .await
        .unwrap();
        let response = reqwest::Client::new()
            .post(format!("http://{}/api/v1/auth/login", self.addr))
            .json(&json!({"site_key": "demo", "email": email, "password": "a long test password"}))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }
}

fn send(body: &str) -> ClientFrame {
    ClientFrame::Send {
        conversation_id: None,
        client_msg_id: "q1".into(),
        body: body.into(),
    }
}

#[tokio::test]
async fn a_good_streamed_answer_reaches_the_visitor_after_streaming_frames() {
    let (llm, fake) = start_fake().await;
    let server = LlmServer::start(llm, "good", Duration::from_secs(20)).await;
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&send(QUESTION)).await;
    let conversation_id = visitor.recv_ack().await;
    let (answer, before) = visitor
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::Ai => Some(m.clone()),
            ServerFrame::State {
                state: ConversationState::Waiting,
                reason,
                ..
            } => panic!("handed over ({reason:?}) instead of answering"),
            _ => None,
        })
        .await;
    let full: String = PIECES.concat();
    assert_eq!(answer.body, full);
    assert_eq!(answer.sources[0].entry_id, "cancel_order");
    let streamed: Vec<&str> = before
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Streaming(s) => {
                assert_eq!(s.conversation_id, conversation_id);
                Some(s.text.as_str())
            }
            _ => None,
        })
        .collect();
    assert!(
        !streamed.is_empty(),
        "streaming frames come first: {before:?}"
    );
    for text in &streamed {
        assert!(full.starts_with(text), "{text:?} is the reply so far");
    }
    assert!(
        streamed.windows(2).all(|w| w[0].len() < w[1].len()),
        "each frame carries more: {streamed:?}"
    );

    // Grounded: the system prompt names the assistant and holds the retrieved entry, its
    // placeholders filled; the question is the user message.
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request["stream"], true);
    let system = request["messages"][0]["content"].as_str().unwrap();
    assert_eq!(request["messages"][0]["role"], "system");
    assert!(system.contains("Nexus Assistant"), "{system}");
    assert!(system.contains("Cancel an order"), "{system}");
    assert!(!system.contains("{{"), "placeholders are filled: {system}");
    assert_eq!(request["messages"][1]["role"], "user");
    assert_eq!(request["messages"][1]["content"], QUESTION);
}

/// The visitor's question is handed over with `engine_error`; the visitor is told and their
/// question is kept.
async fn assert_engine_error(model: &str, timeout: Duration) {
    let (llm, _fake) = start_fake().await;
    let server = LlmServer::start(llm, model, timeout).await;
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&send(QUESTION)).await;
    let conversation_id = visitor.recv_ack().await;
    let ((reason, notice), skipped) = {
        let mut notice = None;
        visitor
            .recv_until(|f| match f {
                ServerFrame::Message(m) if m.author == Author::Ai => {
                    panic!("{model}: the AI answered {:?}", m.body)
                }
                ServerFrame::Message(m) if m.author == Author::System => {
                    notice = Some(m.body.clone());
                    None
                }
                ServerFrame::State {
                    state: ConversationState::Waiting,
                    reason,
                    ..
                } => Some((reason.clone(), notice.clone())),
                _ => None,
            })
            .await
    };
    assert_eq!(
        reason,
        Some(HandoffReason::EngineError),
        "{model}: {skipped:?}"
    );
    let notice = notice.unwrap_or_default();
    assert!(
        notice.contains("nothing you wrote is lost"),
        "{model}: {notice:?}"
    );
    let timeline = server
        .state
        .store
        .last_messages(conversation_id, 50)
        .await
        .unwrap();
    assert!(
        timeline
            .iter()
            .any(|m| m.author == Author::Visitor && m.body == QUESTION),
        "{model}: the question is kept"
    );
    assert!(!timeline.iter().any(|m| m.author == Author::Ai), "{model}");
}

#[tokio::test]
async fn a_timeout_hands_over_with_engine_error() {
    assert_engine_error("slow", Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_stalled_stream_hands_over_with_engine_error() {
    assert_engine_error("stalls", Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_malformed_reply_hands_over_with_engine_error() {
    assert_engine_error("malformed", Duration::from_secs(10)).await;
}

#[tokio::test]
async fn an_http_error_hands_over_with_engine_error() {
    assert_engine_error("missing-model", Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_takeover_in_the_middle_of_a_stream_stops_it() {
    let (llm, fake) = start_fake().await;
    let server = LlmServer::start(llm, "takeover", Duration::from_secs(60)).await;
    let token = server.agent_token("ana@demo.test").await;
    let (mut agent, _) = WsClient::agent(&server.ws_url(), &token).await;
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&send(QUESTION)).await;
    let conversation_id = visitor.recv_ack().await;
    visitor
        .recv_until(|f| match f {
            ServerFrame::Streaming(s) if !s.text.is_empty() => Some(()),
            ServerFrame::Message(m) if m.author == Author::Ai => {
                panic!("answered before the takeover")
            }
            _ => None,
        })
        .await;
    agent.send(&ClientFrame::TakeOver { conversation_id }).await;
    visitor.recv_state(ConversationState::Human).await;
    // The server drops the LLM's stream; wait until the fake sees it end.
    for _ in 0..200 {
        if fake.stream_over.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        fake.stream_over.load(Ordering::SeqCst),
        "the stream was stopped"
    );
    // Whatever is still in flight: no AI message and no more streamed text.
    let mut after = Vec::new();
    while let Some(frame) = visitor.try_recv(Duration::from_millis(500)).await {
        after.push(frame);
    }
    assert!(
        !after.iter().any(|f| matches!(f, ServerFrame::Streaming(_))
            || matches!(f, ServerFrame::Message(m) if m.author == Author::Ai)),
        "{after:?}"
    );
    let timeline = server
        .state
        .store
        .last_messages(conversation_id, 50)
        .await
        .unwrap();
    assert!(
        !timeline.iter().any(|m| m.author == Author::Ai),
        "{timeline:?}"
    );
}

#[tokio::test]
async fn the_policy_decides_before_the_llm_runs() {
    let (llm, fake) = start_fake().await;
    let server = LlmServer::start(llm, "good", Duration::from_secs(20)).await;
    for (question, expected) in [
        ("I want to talk to a human", HandoffReason::VisitorAsked),
        (
            "Ich werde Sie verklagen",
            HandoffReason::Sensitive {
                category: "legal_threat".into(),
            },
        ),
        (
            "What is the airspeed velocity of an unladen swallow?",
            HandoffReason::OutOfScope,
        ),
    ] {
        let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
        visitor.send(&send(question)).await;
        visitor.recv_ack().await;
        let (reason, _) = visitor
            .recv_until(|f| match f {
                ServerFrame::Message(m) if m.author == Author::Ai => {
                    panic!("{question}: answered {:?}", m.body)
                }
                ServerFrame::State {
                    state: ConversationState::Waiting,
                    reason,
                    ..
                } => Some(reason.clone()),
                _ => None,
            })
            .await;
        let reason = reason.unwrap();
        if expected == HandoffReason::OutOfScope {
            assert!(
                matches!(
                    reason,
                    HandoffReason::OutOfScope | HandoffReason::LowConfidence
                ),
                "{question}: {reason:?}"
            );
        } else {
            assert_eq!(reason, expected, "{question}");
        }
    }
    assert!(
        fake.requests.lock().unwrap().is_empty(),
        "the LLM was never asked"
    );
}
