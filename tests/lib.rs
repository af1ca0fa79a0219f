//! Test harness for Nexus Flow's cross-crate tests: a real server on 127.0.0.1:0 over a real
//! SQLite file (or a PostgreSQL schema), a fake LLM backend, and a headless Chromium driven
//! over WebDriver. The WebSocket client, frame builders, REST login, PostgreSQL schemas and
//! the common waits come from `nexus-test-support` and are re-exported here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nexus_server::egress::Egress;
use nexus_server::{Config, build_state, serve};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub mod browser;
pub mod llm;

// What the server's own integration tests use too lives in the test-support crate.
pub use nexus_test_support::{
    DEMO_SITE, FRAME_TIMEOUT, PASSWORD, WAIT, WsClient, frames, free_port, http, login, pg,
};

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where `cargo xtask widget` writes the widget build.
pub fn widget_dir() -> PathBuf {
    workspace_root().join("target").join("widget")
}

/// A server running in this process on an ephemeral port.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The server's state, for setting up accounts and sites directly.
    pub state: nexus_server::AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on the SQLite database at `db` (created if missing).
    pub async fn start(db: &Path) -> Self {
        Self::start_with(db, &widget_dir()).await
    }

    pub async fn start_with(db: &Path, widget_dir: &Path) -> Self {
        Self::start_url(&format!("sqlite://{}", db.display()), widget_dir).await
    }

    /// A server on a fresh SQLite file in a temp dir of its own (dropped with it), serving an
    /// empty widget directory: for the tests that speak only HTTP and WebSocket.
    pub async fn scratch() -> (Self, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let widget = dir.path().join("widget");
        std::fs::create_dir_all(&widget).expect("widget dir");
        let server = Self::start_with(&dir.path().join("nexus.db"), &widget).await;
        (server, dir)
    }

    /// Starts a server on the database at `database_url` (`sqlite://…` or `postgres://…`).
    pub async fn start_url(database_url: &str, widget_dir: &Path) -> Self {
        let any_port = "127.0.0.1:0".parse().expect("address");
        Self::start_url_at(database_url, widget_dir, any_port).await
    }

    /// Like [`TestServer::start_url`], listening on `addr` (a restart on the same port).
    pub async fn start_url_at(database_url: &str, widget_dir: &Path, addr: SocketAddr) -> Self {
        Self::launch(
            database_url,
            widget_dir,
            addr,
            None,
            Egress::default(),
            |_| {},
        )
        .await
    }

    /// Like [`TestServer::start`], letting webhooks reach the networks of `egress` (as
    /// `--egress-allow` does): for receivers the test runs on 127.0.0.1.
    pub async fn start_with_egress(db: &Path, egress: Egress) -> Self {
        let any_port = "127.0.0.1:0".parse().expect("address");
        let url = format!("sqlite://{}", db.display());
        Self::launch(&url, &widget_dir(), any_port, None, egress, |_| {}).await
    }

    /// Like [`TestServer::start_url`], with outgoing requests (article fetches) let through
    /// to `allowed` networks too (`--egress-allow`), e.g. a local HTTP server's loopback.
    pub async fn start_allowing(
        database_url: &str,
        widget_dir: &Path,
        allowed: Vec<ipnet::IpNet>,
    ) -> Self {
        let any_port = "127.0.0.1:0".parse().expect("address");
        Self::launch(
            database_url,
            widget_dir,
            any_port,
            None,
            Egress::new(allowed),
            |_| {},
        )
        .await
    }

    /// A server on the SQLite database at `db`, its state changed by `adjust` before it
    /// serves (another engine, the AI queue's limits, …).
    pub async fn start_adjusted(
        db: &Path,
        widget_dir: &Path,
        adjust: impl FnOnce(&mut nexus_server::AppState),
    ) -> Self {
        let any_port = "127.0.0.1:0".parse().expect("address");
        let url = format!("sqlite://{}", db.display());
        Self::launch(&url, widget_dir, any_port, None, Egress::default(), adjust).await
    }

    /// Like [`TestServer::start_with`], with the LLM backend (`--llm-url` …) set to `llm`.
    pub async fn start_with_llm(
        db: &Path,
        widget_dir: &Path,
        llm: nexus_engine::llm::LlmConfig,
    ) -> Self {
        let any_port = "127.0.0.1:0".parse().expect("address");
        let url = format!("sqlite://{}", db.display());
        Self::launch(
            &url,
            widget_dir,
            any_port,
            Some(llm),
            Egress::default(),
            |_| {},
        )
        .await
    }

    async fn launch(
        database_url: &str,
        widget_dir: &Path,
        addr: SocketAddr,
        llm: Option<nexus_engine::llm::LlmConfig>,
        egress: Egress,
        adjust: impl FnOnce(&mut nexus_server::AppState),
    ) -> Self {
        let config = Config {
            addr,
            database_url: database_url.to_owned(),
            widget_dir: widget_dir.to_owned(),
            model_dir: None,
            egress,
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut state = build_state(&config, shutdown_rx)
            .await
            .expect("server state builds");
        state.llm = llm.map(|c| std::sync::Arc::new(nexus_engine::llm::LlmClient::new(c)));
        adjust(&mut state);
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .expect("bind the test server's address");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let app_state = state.clone();
        let task = tokio::spawn(async move {
            serve(listener, state, shutdown_tx, async move {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            addr,
            state: app_state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The site `key`, read from the store; panics if there is none.
    pub async fn site(&self, key: &str) -> nexus_server::model::Site {
        self.state
            .store
            .site_by_key(key)
            .await
            .expect("store")
            .unwrap_or_else(|| panic!("no site {key}"))
    }

    /// Creates `site` in the store with these knowledge-base entries and loads them into the
    /// engine, as a new customer's site.
    pub async fn add_site(
        &self,
        site: &nexus_server::model::Site,
        entries: &[nexus_engine::KbEntry],
    ) {
        let store = self.state.store.as_ref();
        store.create_site(site).await.expect("site created");
        for entry in entries {
            store
                .upsert_kb_entry(site.id, entry)
                .await
                .expect("entry stored");
        }
        let entries = store.knowledge(site.id).await.expect("entries");
        self.state.engine.load_site(site.id, entries);
    }

    /// Changes the demo site's settings directly in the store.
    pub async fn configure(&self, change: impl FnOnce(&mut nexus_server::model::SiteSettings)) {
        let site = self.site(DEMO_SITE).await;
        let mut settings = site.settings.clone();
        change(&mut settings);
        self.state
            .store
            .update_site_settings(site.id, &settings)
            .await
            .expect("settings saved");
    }

    /// Logs an existing account (password [`PASSWORD`]) in over the REST API; returns the
    /// session token.
    pub async fn login(&self, site_key: &str, email: &str) -> String {
        login(&self.url(""), site_key, email).await
    }

    /// Graceful shutdown; waits until the server has stopped.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Creates an account on `site_key` and logs it in over the REST API; returns the session
/// token.
pub async fn agent_login(
    server: &TestServer,
    site_key: &str,
    email: &str,
    role: nexus_shared::Role,
) -> String {
    let store = server.state.store.as_ref();
    let site = server.site(site_key).await;
    let name = email.split('@').next().unwrap_or("Agent");
    nexus_server::access::accounts::add_user(store, site.id, email, name, role, PASSWORD)
        .await
        .expect("account created");
    server.login(site_key, email).await
}
