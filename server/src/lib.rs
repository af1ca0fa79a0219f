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
        let entries = store.kb_entries(site.id).await?;
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
        )),
        inbox: Arc::default(),
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
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let router = app(state);
    // Live frames are small writes, one after the other: without TCP_NODELAY a frame written
    // while the peer has not yet acknowledged the previous one waits for that
    // acknowledgement, which a peer that is only reading delays by up to 40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: closing live connections");
        let _ = shutdown_tx.send(true);
    })
    .await
}
