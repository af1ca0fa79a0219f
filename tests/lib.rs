//! Test harness for Nexus Flow's cross-crate tests: a real server on 127.0.0.1:0 over a real
//! SQLite file, a WebSocket client speaking the shared protocol, and a headless Chromium
//! driven over WebDriver.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nexus_server::{Config, build_state, serve};
use nexus_shared::{Auth, ClientFrame, Hello, PROTOCOL_VERSION, ServerFrame};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod browser;
pub mod http;
pub mod llm;
pub mod pg;

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

    /// Starts a server on the database at `database_url` (`sqlite://…` or `postgres://…`).
    pub async fn start_url(database_url: &str, widget_dir: &Path) -> Self {
        let any_port = "127.0.0.1:0".parse().expect("address");
        Self::start_url_at(database_url, widget_dir, any_port).await
    }

    /// Like [`TestServer::start_url`], listening on `addr` (a restart on the same port).
    pub async fn start_url_at(database_url: &str, widget_dir: &Path, addr: SocketAddr) -> Self {
        Self::launch(database_url, widget_dir, addr, None).await
    }

    /// Like [`TestServer::start_with`], with the LLM backend (`--llm-url` …) set to `llm`.
    pub async fn start_with_llm(
        db: &Path,
        widget_dir: &Path,
        llm: nexus_engine::llm::LlmConfig,
    ) -> Self {
        let any_port = "127.0.0.1:0".parse().expect("address");
        let url = format!("sqlite://{}", db.display());
        Self::launch(&url, widget_dir, any_port, Some(llm)).await
    }

    async fn launch(
        database_url: &str,
        widget_dir: &Path,
        addr: SocketAddr,
        llm: Option<nexus_engine::llm::LlmConfig>,
    ) -> Self {
        let config = Config {
            addr,
            database_url: database_url.to_owned(),
            widget_dir: widget_dir.to_owned(),
            model_dir: None,
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut state = build_state(&config, shutdown_rx)
            .await
            .expect("server state builds");
        state.llm = llm.map(|c| std::sync::Arc::new(nexus_engine::llm::LlmClient::new(c)));
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

/// A protocol client over a real WebSocket.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How long a test waits for an expected frame.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

impl WsClient {
    pub async fn connect(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Self { socket }
    }

    /// Connects with an `Origin` header, as a browser on that origin would.
    pub async fn connect_from(url: &str, origin: &str) -> Self {
        Self::connect_with(url, &[("origin", origin)]).await
    }

    /// Connects with these request headers (an `X-Forwarded-For` a proxy would add, say).
    pub async fn connect_with(url: &str, headers: &[(&'static str, &str)]) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().expect("a websocket URL");
        for (name, value) in headers {
            request
                .headers_mut()
                .append(*name, value.parse().expect("a header value"));
        }
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket connects");
        Self { socket }
    }

    /// Says hello as a visitor with these details; returns the server's answer (`welcome` or
    /// an error).
    pub async fn hello_visitor(
        &mut self,
        site_key: &str,
        token: Option<String>,
        identity: Option<nexus_shared::Identity>,
    ) -> ServerFrame {
        self.send(&ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            auth: Auth::Visitor {
                site_key: site_key.into(),
                visitor_token: token,
                conversation_id: None,
                identity,
                page_url: None,
                locale: None,
            },
        }))
        .await;
        self.recv().await
    }

    /// Connects and says hello as a visitor of `site_key`; returns the client and `welcome`.
    pub async fn visitor(
        url: &str,
        site_key: &str,
        token: Option<String>,
    ) -> (Self, nexus_shared::Welcome) {
        let mut client = Self::connect(url).await;
        client
            .send(&ClientFrame::Hello(Hello {
                protocol_version: PROTOCOL_VERSION,
                auth: Auth::Visitor {
                    site_key: site_key.into(),
                    visitor_token: token,
                    conversation_id: None,
                    identity: None,
                    page_url: Some("http://127.0.0.1/test".into()),
                    locale: Some("en".into()),
                },
            }))
            .await;
        match client.recv().await {
            ServerFrame::Welcome(welcome) => (client, welcome),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Connects and says hello as an agent with a session token.
    pub async fn agent(url: &str, session_token: &str) -> (Self, nexus_shared::Welcome) {
        let mut client = Self::connect(url).await;
        client
            .send(&ClientFrame::Hello(Hello {
                protocol_version: PROTOCOL_VERSION,
                auth: Auth::Agent {
                    session_token: session_token.into(),
                },
            }))
            .await;
        match client.recv().await {
            ServerFrame::Welcome(welcome) => (client, welcome),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        let json = serde_json::to_string(frame).expect("frame encodes");
        self.send_raw(json).await;
    }

    pub async fn send_raw(&mut self, text: impl Into<String>) {
        self.socket
            .send(WsMessage::Text(text.into().into()))
            .await
            .expect("websocket send");
    }

    /// The next protocol frame (pings are skipped); panics after [`FRAME_TIMEOUT`].
    pub async fn recv(&mut self) -> ServerFrame {
        self.try_recv(FRAME_TIMEOUT)
            .await
            .expect("a frame arrives in time")
    }

    /// The next protocol frame, or `None` if none arrives within `wait` or the socket closes.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<ServerFrame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??;
            match next {
                Ok(WsMessage::Text(text)) => {
                    return Some(serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                        panic!("server sent an undecodable frame {text}: {e}")
                    }));
                }
                Ok(WsMessage::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Receives frames until `pick` returns `Some`, returning it and the frames skipped.
    pub async fn recv_until<T>(
        &mut self,
        mut pick: impl FnMut(&ServerFrame) -> Option<T>,
    ) -> (T, Vec<ServerFrame>) {
        let mut skipped = Vec::new();
        loop {
            let frame = self.recv().await;
            if let Some(found) = pick(&frame) {
                return (found, skipped);
            }
            skipped.push(frame);
        }
    }

    /// Receives frames until the conversation's state becomes `state`.
    pub async fn recv_state(&mut self, state: nexus_shared::ConversationState) {
        self.recv_until(|f| match f {
            ServerFrame::State { state: s, .. } if *s == state => Some(()),
            _ => None,
        })
        .await;
    }

    /// Waits for the next `ack` and returns its conversation id; an `error` first is a
    /// test failure.
    pub async fn recv_ack(&mut self) -> uuid::Uuid {
        self.recv_until(|f| match f {
            ServerFrame::Ack {
                conversation_id, ..
            } => Some(*conversation_id),
            ServerFrame::Error(e) => panic!("expected an ack, got {e:?}"),
            _ => None,
        })
        .await
        .0
    }

    /// Waits for the next `error` frame and returns its code.
    pub async fn recv_error(&mut self) -> nexus_shared::ErrorCode {
        self.recv_until(|f| match f {
            ServerFrame::Error(e) => Some(e.code),
            _ => None,
        })
        .await
        .0
    }

    /// Sends a ping and waits for the pong: every frame sent before is handled.
    pub async fn sync(&mut self) {
        self.send(&ClientFrame::Ping).await;
        self.recv_until(|f| matches!(f, ServerFrame::Pong).then_some(()))
            .await;
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
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
    let site = store
        .site_by_key(site_key)
        .await
        .expect("store")
        .expect("site exists");
    let name = email.split('@').next().unwrap_or("Agent");
    nexus_server::access::accounts::add_user(
        store,
        site.id,
        email,
        name,
        role,
        "a long test password",
    )
    .await
    .expect("account created");
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/auth/login"))
        .json(&serde_json::json!({
            "site_key": site_key, "email": email, "password": "a long test password"
        }))
        .send()
        .await
        .expect("login request");
    assert_eq!(response.status(), 200, "login succeeds");
    let body: serde_json::Value = response.json().await.expect("login body");
    body["token"].as_str().expect("token").to_owned()
}
