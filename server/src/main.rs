//! `nexus-flow`: the Nexus Flow server and its tools.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nexus_server::{Config, build_state, serve, store::redact_url};
use nexus_shared::Role;
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
    /// Manage owner and agent accounts.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from stdin (or prompted on a terminal).
    Add {
        #[command(flatten)]
        db: DbArgs,
        /// The site key (e.g. `demo`).
        #[arg(long)]
        site: String,
        #[arg(long)]
        email: String,
        /// Display name shown to visitors; defaults to the part of the email before `@`.
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = ["owner", "agent"], default_value = "agent")]
        role: String,
    },
    /// Change an account's password (ends its sessions).
    Passwd {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        site: String,
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, clap::Args)]
struct DbArgs {
    /// Database URL. Default: `sqlite://<data-dir>/nexus-flow.db`.
    #[arg(long = "database", env = "NEXUS_FLOW_DATABASE_URL")]
    database: Option<String>,
    #[arg(long, env = "NEXUS_FLOW_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
}

impl DbArgs {
    fn url(&self) -> String {
        self.database.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.data_dir.join("nexus-flow.db").display())
        })
    }
}

fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == second, "the passwords differ");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

async fn user_command(command: UserCommand) -> anyhow::Result<()> {
    use nexus_server::{auth, store};
    match command {
        UserCommand::Add {
            db,
            site,
            email,
            name,
            role,
        } => {
            let store = store::connect(&db.url()).await?;
            nexus_server::demo::ensure_demo_site(store.as_ref()).await?;
            let site = store
                .site_by_key(&site)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no site with key {site:?}"))?;
            let name =
                name.unwrap_or_else(|| email.split('@').next().unwrap_or("Agent").to_owned());
            let role = if role == "owner" {
                Role::Owner
            } else {
                Role::Agent
            };
            let password = read_password()?;
            let user = auth::add_user(store.as_ref(), site.id, &email, &name, role, &password)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            println!(
                "created {:?} account {} on site {}",
                user.role, user.email, site.key
            );
        }
        UserCommand::Passwd { db, site, email } => {
            let store = store::connect(&db.url()).await?;
            let site = store
                .site_by_key(&site)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no site with key {site:?}"))?;
            let (user, _) = store
                .user_by_email(site.id, &email)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no account {email} on site {}", site.key))?;
            let password = read_password()?;
            let hash = auth::hash_password(&password).map_err(|e| anyhow::anyhow!(e.message))?;
            store.set_password(user.id, &hash).await?;
            println!(
                "password changed for {}; its sessions are closed",
                user.email
            );
        }
    }
    Ok(())
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
        Command::User(command) => user_command(command).await,
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
