//! `nexus-flow`: the Nexus Flow server and its tools.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nexus_server::{Config, build_state, serve, store::redact_url};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(
    name = "nexus-flow",
    version,
    about = "Nexus Flow: AI support chat with the human in control"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (demo site, widget, API, WebSockets).
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "NEXUS_FLOW_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Database URL: `sqlite://PATH`. Default: `sqlite://<data-dir>/nexus-flow.db`.
    #[arg(long = "database", env = "NEXUS_FLOW_DATABASE_URL")]
    database: Option<String>,
    /// Directory for the default SQLite database.
    #[arg(long, env = "NEXUS_FLOW_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Directory of the widget build (written by `cargo xtask widget`).
    #[arg(long, env = "NEXUS_FLOW_WIDGET_DIR", default_value = "target/widget")]
    widget_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NEXUS_FLOW_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => run_server(args).await,
    }
}

async fn run_server(args: ServeArgs) -> anyhow::Result<()> {
    let database_url = args
        .database
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("nexus-flow.db").display()));
    let config = Config {
        addr: args.addr,
        database_url,
        widget_dir: args.widget_dir,
    };
    tracing::info!(database = %redact_url(&config.database_url), "opening the store");
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = build_state(&config, shutdown_rx).await?;
    let listener = TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "Nexus Flow is listening on http://{addr}/ (demo shop; the chat is in the corner)"
    );
    serve(listener, state, shutdown_tx, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
