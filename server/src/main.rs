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
    /// Add or list sites (tenants).
    #[command(subcommand)]
    Site(SiteCommand),
    /// Measure the answer engine on labelled questions (see README, "Answer engine quality").
    Eval(EvalArgs),
    /// Fill a site with finished conversations (a lived-in database for benchmarks).
    Fill(FillArgs),
    /// Load the embedding model and embed the demo knowledge base into its cache.
    ModelCheck {
        #[command(flatten)]
        model: ModelArgs,
    },
}

#[derive(Debug, clap::Args)]
struct ModelArgs {
    /// Directory of the embedding model. Default: the model `--model` names in the cache that
    /// `cargo xtask setup` fills.
    #[arg(long, env = "NEXUS_FLOW_MODEL_DIR")]
    model_dir: Option<PathBuf>,
    /// The embedding model, by name: `all-MiniLM-L6-v2` (English) or `multilingual-e5-small`
    /// (questions in about 100 languages against the same knowledge base). Default: the
    /// engine's default model. `--model-dir` wins when both are given.
    #[arg(long, env = "NEXUS_FLOW_MODEL")]
    model: Option<String>,
}

#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// Knowledge base: JSONL of `{"text", "intent"}`; `"intent": null` = out-of-scope example.
    #[arg(long, required_unless_present = "docs", conflicts_with = "docs")]
    kb: Option<PathBuf>,
    /// Knowledge base of articles instead: JSONL of `{"id", "title", "body", "url"?}`; the
    /// queries are then `{"text", "doc"}` (`"doc": null` = no article answers it).
    #[arg(long)]
    docs: Option<PathBuf>,
    /// Queries: JSONL of `{"text", "intent"}`; `"intent": null` = should be handed over.
    #[arg(long)]
    queries: PathBuf,
    /// Leave this many intents (or articles), drawn with `--seed`, out of the knowledge base;
    /// their queries then count as out of scope.
    #[arg(long, default_value_t = 0)]
    leave_out: usize,
    /// Learning loop: start from `--seed-per-intent` examples per intent; an oracle agent
    /// teaches every handed-over query.
    #[arg(long)]
    stream: bool,
    #[arg(long, default_value_t = 5)]
    seed_per_intent: usize,
    /// Random seed (which seed examples, the order of the queries).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Draw the learning curve (with `--stream`) into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Override the engine's thresholds: answer confidence, out-of-scope confidence, clarify
    /// margin (e.g. `0.5,0.2,0.05`).
    #[arg(long, value_delimiter = ',', num_args = 3)]
    thresholds: Option<Vec<f32>>,
    /// Print the outcome for a grid of answer thresholds and clarify margins instead.
    #[arg(long)]
    sweep: bool,
    #[command(flatten)]
    model: ModelArgs,
}

impl ModelArgs {
    fn dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.model_dir {
            return Ok(dir.clone());
        }
        if let Some(name) = &self.model {
            return nexus_engine::embed::named_model_dir(name);
        }
        nexus_engine::embed::default_model_dir()
            .ok_or_else(|| anyhow::anyhow!("no model directory: pass --model-dir"))
    }

    /// The server's model directory: as [`ModelArgs::dir`], but an unknown `--model` name is
    /// an error and no directory at all is left to the engine (which then serves lexically).
    fn server_dir(&self) -> anyhow::Result<Option<PathBuf>> {
        match (&self.model_dir, &self.model) {
            (Some(dir), _) => Ok(Some(dir.clone())),
            (None, Some(name)) => nexus_engine::embed::named_model_dir(name).map(Some),
            (None, None) => Ok(None),
        }
    }
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

#[derive(Debug, Subcommand)]
enum SiteCommand {
    /// Create an empty site (default settings, no knowledge base); with `--owner-email`,
    /// also its first owner (password read from the terminal or one line of stdin).
    Add {
        #[command(flatten)]
        db: DbArgs,
        /// The key the embed snippet names (`data-site="…"`): lower-case letters, digits, dashes.
        #[arg(long)]
        key: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner_email: Option<String>,
        #[arg(long)]
        owner_name: Option<String>,
    },
    /// List every site: key, name, id, creation time (UTC).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
}

async fn site_command(command: SiteCommand) -> anyhow::Result<()> {
    use nexus_server::access::{accounts, sites};
    use nexus_server::store;
    match command {
        SiteCommand::Add {
            db,
            key,
            name,
            owner_email,
            owner_name,
        } => {
            let store = store::connect(&db.url()).await?;
            nexus_server::demo::ensure_demo_site(store.as_ref()).await?;
            // The password first: a refused one leaves no half-made site behind.
            let owner = match owner_email {
                Some(email) => Some((email, read_password()?)),
                None => None,
            };
            if let Some((_, password)) = &owner {
                accounts::hash_password(password).map_err(|e| anyhow::anyhow!(e.message))?;
            }
            let site = sites::create_site(store.as_ref(), &key, &name)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            println!("created site {} ({}) id {}", site.key, site.name, site.id);
            if let Some((email, password)) = owner {
                let name = owner_name
                    .unwrap_or_else(|| email.split('@').next().unwrap_or("Owner").to_owned());
                let user = accounts::add_user(
                    store.as_ref(),
                    site.id,
                    &email,
                    &name,
                    Role::Owner,
                    &password,
                )
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
                println!("created Owner account {} on site {}", user.email, site.key);
            }
        }
        SiteCommand::List { db } => {
            let store = store::connect(&db.url()).await?;
            for site in store.sites().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    site.key,
                    site.name,
                    site.id,
                    jiff::Timestamp::from_millisecond(site.created_at)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
struct FillArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The site key.
    #[arg(long, default_value = "demo")]
    site: String,
    /// Conversations to write.
    #[arg(long, default_value_t = 100_000)]
    conversations: u64,
    /// Timeline entries in all.
    #[arg(long, default_value_t = 5_000_000)]
    messages: u64,
    /// The conversations are spread over this many days before now.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Conversations per transaction.
    #[arg(long, default_value_t = 2_000)]
    batch: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
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

async fn fill_command(args: FillArgs) -> anyhow::Result<()> {
    use nexus_server::store::{self, fill};
    let store = store::connect(&args.db.url()).await?;
    nexus_server::demo::ensure_demo_site(store.as_ref()).await?;
    let site = store
        .site_by_key(&args.site)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no site with key {:?}", args.site))?;
    let agents = (1..=20)
        .map(|i| nexus_shared::AgentRef {
            id: uuid::Uuid::from_u128(0x6e65_7875_735f_6669_6c6c_0000_0000_0000 + i),
            name: format!("Agent {i}"),
        })
        .collect();
    let options = fill::FillOptions {
        site_id: site.id,
        conversations: args.conversations,
        messages: args.messages,
        days: args.days,
        batch: args.batch,
        agents,
        seed: args.seed,
    };
    let mut next_report = 0;
    let filled = fill::fill(
        store.as_ref(),
        &options,
        nexus_server::conversation::notices::NOTICES,
        |f| {
            if f.conversations >= next_report {
                eprintln!(
                    "{} conversations, {} entries, {:.1} s",
                    f.conversations, f.messages, f.seconds
                );
                next_report += 10_000;
            }
        },
    )
    .await?;
    println!(
        "filled site {}: {} conversations, {} entries in {:.1} s ({:.0} entries/s)",
        site.key,
        filled.conversations,
        filled.messages,
        filled.seconds,
        filled.messages as f64 / filled.seconds.max(1e-9)
    );
    Ok(())
}

async fn user_command(command: UserCommand) -> anyhow::Result<()> {
    use nexus_server::access::accounts;
    use nexus_server::store;
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
            let user = accounts::add_user(store.as_ref(), site.id, &email, &name, role, &password)
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
            let hash =
                accounts::hash_password(&password).map_err(|e| anyhow::anyhow!(e.message))?;
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
    /// Open WebSocket connections allowed per client IP address (the client's address behind
    /// a `--trusted-proxy`; raise it for the load tool).
    #[arg(long, env = "NEXUS_FLOW_MAX_CONNECTIONS_PER_IP", default_value_t = nexus_server::live::connections::MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: u32,
    /// Open TCP connections (HTTP and WebSocket) allowed per peer address; 0: twice
    /// `--max-connections-per-ip`. Trusted proxies are not capped.
    #[arg(
        long,
        env = "NEXUS_FLOW_MAX_TCP_CONNECTIONS_PER_IP",
        default_value_t = 0
    )]
    max_tcp_connections_per_ip: u32,
    /// Seconds a plain HTTP connection may take to send a request's headers, or wait idle for
    /// its next request, before it is closed (slow or stalled clients).
    #[arg(long, env = "NEXUS_FLOW_HEADER_TIMEOUT", default_value_t = nexus_server::live::connections::HEADER_TIMEOUT.as_secs())]
    header_timeout: u64,
    /// Seconds a request's body may take to arrive; past it the request is answered 408
    /// `request_timeout` and the connection closed (bodies that trickle in).
    #[arg(long, env = "NEXUS_FLOW_BODY_TIMEOUT", default_value_t = nexus_server::live::connections::BODY_TIMEOUT.as_secs())]
    body_timeout: u64,
    /// Open WebSocket connections allowed per site (visitors and agents).
    #[arg(long, env = "NEXUS_FLOW_MAX_CONNECTIONS_PER_SITE", default_value_t = nexus_server::live::connections::MAX_CONNECTIONS_PER_SITE)]
    max_connections_per_site: u32,
    /// Reverse proxies (addresses or networks, comma separated or the flag repeated) whose
    /// `X-Forwarded-For` names the client. The per-IP connection cap and login throttling then
    /// count the client's address instead of the proxy's. Only list proxies you run: a client
    /// reaching the server directly from such an address could name any address.
    #[arg(long = "trusted-proxy", env = "NEXUS_FLOW_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Networks that requests made on an owner's behalf (fetching articles, webhooks) may
    /// reach although they are not public: loopback, private or link-local addresses are
    /// refused otherwise. Repeat the flag or separate with commas (`--egress-allow 10.0.0.0/8`).
    #[arg(long = "egress-allow", env = "NEXUS_FLOW_EGRESS_ALLOW", value_delimiter = ',', value_parser = parse_proxy)]
    egress_allow: Vec<ipnet::IpNet>,
    /// AI turns in flight at once. A question that finds every slot taken goes to a person at
    /// once as `engine_busy` ("it's busy, a person will answer") instead of waiting.
    #[arg(long, env = "NEXUS_FLOW_AI_QUEUE", default_value_t = nexus_server::conversation::ai_queue::DEFAULT_CAPACITY)]
    ai_queue: usize,
    /// Milliseconds the engine may take for a question; past them the question goes to a
    /// person as `engine_busy` and its work is dropped.
    #[arg(long, env = "NEXUS_FLOW_AI_DEADLINE_MS", default_value_t = nexus_server::conversation::ai_queue::DEFAULT_DEADLINE.as_millis() as u64)]
    ai_deadline_ms: u64,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    llm: LlmArgs,
}

/// The optional LLM backend: an OpenAI-compatible chat-completions server.
#[derive(Debug, clap::Args)]
struct LlmArgs {
    /// Base URL of an OpenAI-compatible server (e.g. `http://127.0.0.1:11434/v1` for Ollama).
    /// Unset: the embedded engine answers on its own.
    #[arg(long, env = "NEXUS_FLOW_LLM_URL")]
    llm_url: Option<String>,
    /// The model to ask.
    #[arg(long, env = "NEXUS_FLOW_LLM_MODEL", default_value = "llama3.2")]
    llm_model: String,
    /// Sent as `Authorization: Bearer …`; never logged.
    #[arg(long, env = "NEXUS_FLOW_LLM_API_KEY", hide_env_values = true)]
    llm_api_key: Option<nexus_engine::llm::ApiKey>,
    /// Seconds the whole reply may take before the conversation goes to a person.
    #[arg(long, env = "NEXUS_FLOW_LLM_TIMEOUT", default_value_t = 30)]
    llm_timeout: u64,
}

impl LlmArgs {
    fn client(&self) -> Option<std::sync::Arc<nexus_engine::llm::LlmClient>> {
        use nexus_engine::llm::{LlmClient, LlmConfig};
        let url = self.llm_url.clone().filter(|u| !u.trim().is_empty())?;
        Some(std::sync::Arc::new(LlmClient::new(LlmConfig {
            url,
            model: self.llm_model.clone(),
            api_key: self.llm_api_key.clone(),
            timeout: std::time::Duration::from_secs(self.llm_timeout.max(1)),
        })))
    }
}

/// A network (`10.0.0.0/8`) or one address (`10.0.0.1`): a trusted proxy, an egress exception.
fn parse_proxy(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{s}` is not an IP address or network (such as 10.0.0.0/8)"))
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
        Command::Site(command) => site_command(command).await,
        Command::Eval(args) => eval_command(args).await,
        Command::Fill(args) => fill_command(args).await,
        Command::ModelCheck { model } => model_check(model).await,
    }
}

async fn eval_command(args: EvalArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let thresholds = args.thresholds.as_ref().map(|t| {
        let mut th = nexus_engine::semantic::DEFAULT_THRESHOLDS;
        th.answer = t[0];
        th.out_of_scope = t[1];
        th.clarify_margin = t[2];
        th
    });
    let docs = args.docs.is_some();
    let kb = args
        .docs
        .or(args.kb)
        .ok_or_else(|| anyhow::anyhow!("give --kb or --docs"))?;
    nexus_engine::eval::run(nexus_engine::eval::EvalArgs {
        kb,
        docs,
        leave_out: args.leave_out,
        queries: args.queries,
        model_dir: args.model.dir()?,
        stream: args.stream,
        seed_per_intent: args.seed_per_intent,
        seed: args.seed,
        plot: args.plot,
        thresholds,
        progress: std::io::stderr().is_terminal(),
        sweep: args.sweep,
    })
    .await
}

async fn model_check(model: ModelArgs) -> anyhow::Result<()> {
    use nexus_engine::{AnswerEngine, demo, semantic::SemanticEngine};
    let dir = model.dir()?;
    let started = std::time::Instant::now();
    let engine = tokio::task::spawn_blocking(move || -> anyhow::Result<SemanticEngine> {
        let engine = SemanticEngine::load(&dir)?;
        engine.load_site_blocking(uuid::Uuid::nil(), demo::demo_kb())?;
        Ok(engine)
    })
    .await??;
    println!(
        "model ok: engine {}, demo knowledge base embedded and cached in {:.1} s",
        engine.name(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run_server(args: ServeArgs) -> anyhow::Result<()> {
    let database_url = args
        .database
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("nexus-flow.db").display()));
    let config = Config {
        addr: args.addr,
        database_url,
        widget_dir: args.widget_dir,
        model_dir: args.model.server_dir()?,
        egress: nexus_server::egress::Egress::new(args.egress_allow.clone()),
    };
    if !args.egress_allow.is_empty() {
        tracing::warn!(networks = ?args.egress_allow, "outgoing requests may reach these internal networks");
    }
    tracing::info!(database = %redact_url(&config.database_url), "opening the store");
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut state = build_state(&config, shutdown_rx).await?;
    state.connections.set_per_ip(args.max_connections_per_ip);
    state
        .connections
        .set_per_tcp(args.max_tcp_connections_per_ip);
    state
        .connections
        .set_header_timeout(std::time::Duration::from_secs(args.header_timeout.max(1)));
    state
        .connections
        .set_body_timeout(std::time::Duration::from_secs(args.body_timeout.max(1)));
    state
        .connections
        .set_per_site(args.max_connections_per_site);
    if !args.trusted_proxies.is_empty() {
        tracing::info!(proxies = ?args.trusted_proxies, "X-Forwarded-For is believed from these proxies");
    }
    state.connections.set_trusted_proxies(args.trusted_proxies);
    state.llm = args.llm.client();
    state.ai = std::sync::Arc::new(nexus_server::conversation::ai_queue::AiQueue::new(
        args.ai_queue,
        std::time::Duration::from_millis(args.ai_deadline_ms.max(1)),
    ));
    if let Some(llm) = &state.llm {
        tracing::info!(
            endpoint = %redact_url(&llm.config().endpoint()),
            model = %llm.config().model,
            "LLM backend on: answers are phrased by the LLM and streamed"
        );
    }
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
