//! The Nexus Flow server: answers visitors with the AI, hands conversations to people,
//! persists every message, and delivers everything live over WebSockets.
//!
//! [`app`] builds the whole HTTP application without binding a port; [`serve`] runs it on a
//! listener until the shutdown future completes. `main.rs` only parses flags and calls them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub mod access;
#[cfg(test)]
mod architecture;
pub mod conversation;
pub mod demo;
pub mod egress;
pub mod http;
pub mod live;
pub mod model;
pub mod sources;
pub mod store;
pub mod ws;

use live::hub::Hub;
use nexus_engine::AnswerEngine;
use store::Store;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Arc<dyn AnswerEngine>,
    pub hub: Arc<Hub>,
    pub assets: Arc<http::assets::Assets>,
    pub throttle: Arc<access::accounts::LoginThrottle>,
    pub presence: Arc<live::presence::PresenceBoard>,
    /// Open WebSocket connections per IP address and per site, and their caps.
    pub connections: Arc<live::connections::ConnectionLimits>,
    /// The site records visitor connections share (one copy per site, not per connection).
    pub sites: Arc<ws::SharedSites>,
    /// Flips to `true` when the server shuts down; live connections close politely.
    pub shutdown: watch::Receiver<bool>,
    /// The optional LLM backend (`--llm-url`): phrases the answers the engine lets through.
    pub llm: Option<Arc<nexus_engine::llm::LlmClient>>,
    /// The outgoing webhook queue (see [`conversation::webhooks`]).
    pub webhooks: Arc<conversation::webhooks::Dispatcher>,
    /// Conversation lines for the agents' inbox, throttled (see [`conversation::effects::InboxFeed`]).
    pub inbox: Arc<conversation::effects::InboxFeed>,
    /// Where requests made on an owner's behalf may go (article fetches and webhooks):
    /// public addresses plus the `--egress-allow` networks.
    pub egress: egress::Egress,
    /// The AI's bounded work queue with a deadline per question (see
    /// [`conversation::ai_queue`]).
    pub ai: Arc<conversation::ai_queue::AiQueue>,
}

/// Server configuration (defaults, then `NEXUS_FLOW_*` variables, then flags).
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    pub widget_dir: PathBuf,
    /// Directory of the embedding model (`None`: the cache `cargo xtask setup` fills). When
    /// the model cannot be loaded, the lexical engine serves.
    pub model_dir: Option<PathBuf>,
    /// Outgoing requests on an owner's behalf (`--egress-allow`): public addresses only,
    /// plus the networks listed.
    pub egress: egress::Egress,
}

/// Opens the store, creates the demo site on first start, loads every site's knowledge base
/// into the engine, and loads the widget build.
pub async fn build_state(
    config: &Config,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<AppState> {
    let (store, postgres) = store::open(&config.database_url).await?;
    let model_dir = config.model_dir.clone();
    let engine: Arc<dyn AnswerEngine> = tokio::task::spawn_blocking(move || {
        nexus_engine::semantic::server_engine(model_dir.as_deref())
    })
    .await?;
    demo::ensure_demo_site(store.as_ref()).await?;
    for site in store.sites().await? {
        let entries = store.knowledge(site.id).await?;
        tracing::info!(site = %site.key, entries = entries.len(), "knowledge base loaded");
        engine.load_site(site.id, entries);
    }
    let hub = Arc::new(Hub::new());
    let presence: Arc<live::presence::PresenceBoard> = Arc::default();
    if let Some(pg) = postgres {
        // Several instances may share this database: fan out through it.
        live::fanout::start(
            pg,
            hub.clone(),
            engine.clone(),
            presence.clone(),
            shutdown.clone(),
        );
    }
    let assets = Arc::new(http::assets::Assets::load(&config.widget_dir));
    Ok(AppState {
        store,
        engine,
        hub,
        assets,
        throttle: Arc::default(),
        presence,
        connections: Arc::default(),
        sites: Arc::default(),
        shutdown,
        llm: None,
        webhooks: Arc::new(conversation::webhooks::Dispatcher::start(
            std::time::Duration::from_secs(1),
            config.egress.clone(),
        )),
        inbox: Arc::default(),
        egress: config.egress.clone(),
        ai: Arc::default(),
    })
}

/// The whole application. Every response carries `nosniff`, `X-Frame-Options: DENY` and a
/// referrer policy (the widget is never framed; pages set a CSP of their own).
pub fn app(state: AppState) -> Router {
    use axum::http::{HeaderValue, header};
    use tower_http::set_header::SetResponseHeaderLayer;
    Router::new()
        .merge(http::assets::routes())
        .route("/ws", axum::routing::get(ws::upgrade))
        .route("/metrics", axum::routing::get(http::metrics::handler))
        .nest("/api/v1", http::routes())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes, then closes live connections.
///
/// Each TCP connection takes a slot for its peer address at accept
/// ([`live::connections::ConnectionLimits::open_tcp`]); past the cap it is answered 429
/// `too_many_connections` and closed. A plain HTTP connection must send each request's
/// headers within the header timeout, and is closed when it waits idle that long for the next
/// one ([`live::connections::ConnectionLimits::header_timeout`]); a request's body must arrive
/// within the body timeout ([`live::connections::ConnectionLimits::body_timeout`]), else it is
/// answered 408 `request_timeout` and the connection closed. A WebSocket keeps its
/// address slot until it closes; its own pings and caps take over after the upgrade.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.connections.clone();
    let router = app(state);
    let (closing_tx, closing_rx) = watch::channel(false);
    // Every connection task holds a clone; when all are dropped the last one has ended.
    let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Live frames are small writes, one after the other: without TCP_NODELAY a frame
        // written while the peer has not yet acknowledged the previous one waits for that
        // acknowledgement, which a peer that is only reading delays by up to 40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let Some(slot) = limits.open_tcp(peer.ip()) else {
            tokio::spawn(refuse(tcp));
            continue;
        };
        let header_timeout = limits.header_timeout();
        let body_timeout = limits.body_timeout();
        let router = router.clone();
        let mut closing = closing_rx.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    use tower::ServiceExt;
                    // A body that trickles in is cut off at the body timeout: the extractor
                    // reading it fails with `request_timeout` (`http::error`).
                    let mut request = request
                        .map(|body| axum::body::Body::new(DeadlineBody::new(body, body_timeout)));
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    router.clone().oneshot(request)
                },
            );
            let io = hyper_util::rt::TokioIo::new(Counted { tcp, _slot: slot });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            let mut conn = std::pin::pin!(builder.serve_connection(io, service).with_upgrades());
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = closing.changed() => conn.as_mut().graceful_shutdown(),
                }
            }
            drop(open);
        });
    }
    tracing::info!("shutting down: closing live connections");
    let _ = shutdown_tx.send(true);
    let _ = closing_tx.send(true);
    drop(listener);
    drop(open_tx);
    let _ = open_rx.recv().await;
    Ok(())
}

/// A request's body that must arrive whole before a deadline (the body timeout, counted from
/// its headers): a body that trickles in a byte at a time is cut off there, whatever the gaps.
struct DeadlineBody {
    body: hyper::body::Incoming,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(body: hyper::body::Incoming, timeout: std::time::Duration) -> Self {
        Self {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

/// The error of a body cut off at the body timeout ([`http::error::body_timed_out`]).
#[derive(Debug, thiserror::Error)]
#[error("the request's body did not arrive within the body timeout")]
pub struct BodyTimedOut;

impl http_body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        let this = &mut *self;
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Answers a connection over its address's cap with 429 `too_many_connections`, then closes it.
async fn refuse(mut tcp: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::to_string(&nexus_shared::ErrorBody::new(
        nexus_shared::ErrorCode::TooManyConnections,
        "Too many connections from your address. Close some and try again.",
    ))
    .unwrap_or_default();
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        tcp.write_all(response.as_bytes()).await?;
        tcp.shutdown().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), write).await;
}

/// A TCP connection holding its address's slot until the socket is dropped (also after a
/// WebSocket upgrade, which keeps the socket).
struct Counted {
    tcp: tokio::net::TcpStream,
    _slot: live::connections::Slot,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
