//! The optional LLM backend against a small OpenAI-compatible server on 127.0.0.1
//! (`nexus_tests::llm`: axum, server-sent events): a good streamed answer reaches the visitor after
//! `streaming` frames and is grounded on the retrieved entry; a timeout, an HTTP error and a
//! malformed reply hand the conversation over (`engine_error`, the visitor told, nothing
//! lost); a takeover in the middle of a stream stops it (no AI message after the takeover);
//! the policy still decides before the LLM runs.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nexus_shared::{Author, ClientFrame, ConversationState, HandoffReason, Role, ServerFrame};
use nexus_tests::frames;
use nexus_tests::llm::{FakeLlm, Seen, sse};
use nexus_tests::{TestServer, WsClient, agent_login};
use serde_json::Value;

const QUESTION: &str = "how can I cancel my order";
const PIECES: [&str; 5] = [
    "To cancel, ",
    "open Order History, ",
    "pick the order ",
    "and press Cancel. ",
    "Anything else?",
];

/// `POST /v1/chat/completions`; the model name picks the behaviour.
async fn completions(seen: Arc<Seen>, body: Value) -> Response {
    let pieces: Vec<String> = PIECES.iter().map(|p| (*p).to_owned()).collect();
    match body["model"].as_str().unwrap_or("") {
        "good" if body["stream"] == true => sse(seen, pieces, Duration::from_millis(120)),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            sse(seen, pieces, Duration::ZERO)
        }
        "stalls" => {
            let mut stalled = vec![pieces[0].clone()];
            stalled.push(String::new());
            sse(seen, stalled, Duration::from_secs(30))
        }
        "malformed" => (
            [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
            "data: {\"choices\": [{\"delta\": {\"content\": \"To can\n\ndata: [DONE]\n\n",
        )
            .into_response(),
        "takeover" => {
            let many: Vec<String> = (0..60).map(|i| format!("word{i} ")).collect();
            sse(seen, many, Duration::from_millis(100))
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "model not loaded").into_response(),
    }
}

async fn start_fake() -> FakeLlm {
    FakeLlm::start(|seen, body| Box::pin(completions(seen, body))).await
}

/// A Nexus Flow server on a temp SQLite file with the LLM backend pointed at the fake,
/// asking for `model`.
struct LlmServer {
    server: TestServer,
    _dir: tempfile::TempDir,
}

impl LlmServer {
    async fn start(llm: &FakeLlm, model: &str, timeout: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start_with_llm(
            &dir.path().join("nexus.db"),
            &nexus_tests::widget_dir(),
            llm.config(model, timeout),
        )
        .await;
        Self { server, _dir: dir }
    }

    fn ws_url(&self) -> String {
        self.server.ws_url()
    }

    /// Creates an agent account on the demo site and logs it in; returns the session token.
    async fn agent_token(&self, email: &str) -> String {
        agent_login(&self.server, "demo", email, Role::Agent).await
    }
}

impl std::ops::Deref for LlmServer {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

#[tokio::test]
async fn a_good_streamed_answer_reaches_the_visitor_after_streaming_frames() {
    let fake = start_fake().await;
    let server = LlmServer::start(&fake, "good", Duration::from_secs(20)).await;
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&frames::send(None, "q1", QUESTION)).await;
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
    let requests = fake.requests();
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
    let fake = start_fake().await;
    let server = LlmServer::start(&fake, model, timeout).await;
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&frames::send(None, "q1", QUESTION)).await;
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
    let fake = start_fake().await;
    let server = LlmServer::start(&fake, "takeover", Duration::from_secs(60)).await;
    let token = server.agent_token("ana@demo.test").await;
    let (mut agent, _) = WsClient::agent(&server.ws_url(), &token).await;
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&frames::send(None, "q1", QUESTION)).await;
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
        if fake.seen.stream_over() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fake.seen.stream_over(), "the stream was stopped");
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
    let fake = start_fake().await;
    let server = LlmServer::start(&fake, "good", Duration::from_secs(20)).await;
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
        visitor.send(&frames::send(None, "q1", question)).await;
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
    assert!(fake.requests().is_empty(), "the LLM was never asked");
}
