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

pub mod agent;
pub mod api;
pub mod assets;
pub mod auth;
pub mod chat;
pub mod connections;
pub mod demo;
pub mod engine;
pub mod error;
pub mod hub;
pub mod kb;
pub mod store;
pub mod ws;
mod ws_agent;

use engine::AnswerEngine;
use hub::Hub;
use store::Store;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Arc<dyn AnswerEngine>,
    pub hub: Arc<Hub>,
    pub assets: Arc<assets::Assets>,
    pub throttle: Arc<auth::LoginThrottle>,
    pub presence: Arc<agent::PresenceBoard>,
    /// Open WebSocket connections per IP address and per site, and their caps.
    pub connections: Arc<connections::ConnectionLimits>,
    /// Flips to `true` when the server shuts down; live connections close politely.
    pub shutdown: watch::Receiver<bool>,
}

/// Server configuration (defaults, then `NEXUS_FLOW_*` variables, then flags).
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    pub widget_dir: PathBuf,
}

/// Opens the store, creates the demo site on first start, loads every site's knowledge base
/// into the engine, and loads the widget build.
pub async fn build_state(
    config: &Config,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<AppState> {
    let store = store::connect(&config.database_url).await?;
    let engine: Arc<dyn AnswerEngine> = Arc::new(engine::lexical::LexicalEngine::new());
    demo::ensure_demo_site(store.as_ref()).await?;
    for site in store.sites().await? {
        let entries = store.kb_entries(site.id).await?;
        tracing::info!(site = %site.key, entries = entries.len(), "knowledge base loaded");
        engine.load_site(site.id, entries);
    }
    let assets = Arc::new(assets::Assets::load(&config.widget_dir));
    Ok(AppState {
        store,
        engine,
        hub: Arc::new(Hub::new()),
        assets,
        throttle: Arc::default(),
        presence: Arc::default(),
        connections: Arc::default(),
        shutdown,
    })
}

/// The whole application. Every response carries `nosniff`, `X-Frame-Options: DENY` and a
/// referrer policy (the widget is never framed; pages set a CSP of their own).
pub fn app(state: AppState) -> Router {
    use axum::http::{HeaderValue, header};
    use tower_http::set_header::SetResponseHeaderLayer;
    Router::new()
        .merge(assets::routes())
        .route("/ws", axum::routing::get(ws::upgrade))
        .nest("/api/v1", api::routes())
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
    let router = app(state);
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
