//! A small OpenAI-compatible chat-completions server on 127.0.0.1 (axum, server-sent events),
//! for the tests of the optional LLM backend: the test decides what each request gets,
//! typically a reply streamed in pieces with pauses between them.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use nexus_engine::llm::{ApiKey, LlmConfig};
use serde_json::{Value, json};

/// What the fake LLM server saw and did.
#[derive(Default)]
pub struct Seen {
    /// Request bodies, in order.
    pub requests: Mutex<Vec<Value>>,
    /// Set when a streamed reply ended: sent completely, or dropped by the client.
    pub stream_over: AtomicBool,
    /// How many pieces of streamed replies went out.
    pub pieces_sent: AtomicUsize,
    /// Set by the test ([`Seen::release`]): a [`held`] reply sends its last piece and ends.
    released: AtomicBool,
}

impl Seen {
    pub fn stream_over(&self) -> bool {
        self.stream_over.load(Ordering::SeqCst)
    }

    pub fn pieces_sent(&self) -> usize {
        self.pieces_sent.load(Ordering::SeqCst)
    }

    /// Lets a [`held`] reply finish: the end of the answer arrives after this.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }
}

/// Sets `stream_over` when the response body is finished or dropped.
struct OverGuard(Arc<Seen>);

impl Drop for OverGuard {
    fn drop(&mut self) {
        self.0.stream_over.store(true, Ordering::SeqCst);
    }
}

/// One server-sent event carrying `content` as a chat-completion chunk.
pub fn chunk(content: &str) -> Bytes {
    let event = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "fake",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
    });
    Bytes::from(format!("data: {event}\n\n"))
}

/// A streamed reply: the pieces `pause` apart, then `[DONE]`.
pub fn sse(seen: Arc<Seen>, pieces: Vec<String>, pause: Duration) -> Response {
    let stream = futures_util::stream::unfold((0usize, OverGuard(seen)), move |(i, guard)| {
        let pieces = pieces.clone();
        async move {
            if i > pieces.len() {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(pause).await;
            }
            let bytes = match pieces.get(i) {
                Some(piece) => {
                    guard.0.pieces_sent.fetch_add(1, Ordering::SeqCst);
                    chunk(piece)
                }
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

/// A reply that is still being written until the test calls [`Seen::release`]: a word every
/// `pause` (`word1 `, `word2 `, …, at most 2,000), then, once released, `last` and `[DONE]`.
pub fn held(seen: Arc<Seen>, last: String, pause: Duration) -> Response {
    let stream = futures_util::stream::unfold(
        (1usize, false, OverGuard(seen)),
        move |(i, ended, guard)| {
            let last = last.clone();
            async move {
                if ended || i > 2_000 {
                    return None;
                }
                tokio::time::sleep(pause).await;
                let seen = &guard.0;
                if seen.released.load(Ordering::SeqCst) {
                    seen.pieces_sent.fetch_add(1, Ordering::SeqCst);
                    let end = [chunk(&last), Bytes::from_static(b"data: [DONE]\n\n")].concat();
                    return Some((Ok::<_, Infallible>(Bytes::from(end)), (i, true, guard)));
                }
                seen.pieces_sent.fetch_add(1, Ordering::SeqCst);
                Some((Ok(chunk(&format!("word{i} "))), (i + 1, false, guard)))
            }
        },
    );
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// What the fake answers to a request body (its requests are recorded before).
pub type Reply = fn(Arc<Seen>, Value) -> Pin<Box<dyn Future<Output = Response> + Send + 'static>>;

/// A fake LLM server on 127.0.0.1; it stops with the test's runtime.
pub struct FakeLlm {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
}

impl FakeLlm {
    /// Serves `POST /v1/chat/completions` with `reply`.
    pub async fn start(reply: Reply) -> Self {
        let seen = Arc::new(Seen::default());
        let app = axum::Router::new()
            .route(
                "/v1/chat/completions",
                axum::routing::post(
                    move |State(seen): State<Arc<Seen>>, body: axum::Json<Value>| async move {
                        seen.requests.lock().unwrap().push(body.0.clone());
                        reply(seen, body.0).await
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake LLM serves");
        });
        Self { addr, seen }
    }

    /// The server's LLM backend settings for this fake, asking for `model`.
    pub fn config(&self, model: &str, timeout: Duration) -> LlmConfig {
        LlmConfig {
            url: format!("http://{}/v1", self.addr),
            model: model.into(),
            api_key: Some(ApiKey("test-key".into())),
            timeout,
        }
    }

    /// The recorded request bodies.
    pub fn requests(&self) -> Vec<Value> {
        self.seen.requests.lock().unwrap().clone()
    }
}
