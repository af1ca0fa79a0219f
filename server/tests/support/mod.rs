//! Shared by the multi-process PostgreSQL tests (`multi_instance.rs`, `pg_restart.rs`): real
//! `nexus-flow` processes, a fresh PostgreSQL schema per test, a small WebSocket client and a
//! small HTTP client (nothing leaves 127.0.0.1).
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nexus_shared::{Auth, ClientFrame, Hello, PROTOCOL_VERSION, ServerFrame, Welcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(20);
pub const PASSWORD: &str = "a long test password";

/// The test database (as on this machine and CI) unless `NEXUS_TEST_POSTGRES_URL` says
/// otherwise.
pub fn base_url() -> String {
    std::env::var("NEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// True (loudly) when `NEXUS_SKIP_PG=1`: only for a laptop without PostgreSQL, never CI.
pub fn skipped() -> bool {
    let skip = std::env::var("NEXUS_SKIP_PG").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("NEXUS_SKIP_PG=1: skipping a PostgreSQL test (CI must not set this)");
    }
    skip
}

pub async fn pg_connect(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let redacted = nexus_server::store::redact_url(url);
    match tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "PostgreSQL is required for this test and is not reachable at {redacted}: {e}. \
             Start it (CI and the dev machine run it at 127.0.0.1:5432, trust auth, database \
             `test`), point NEXUS_TEST_POSTGRES_URL elsewhere, or set NEXUS_SKIP_PG=1 to skip \
             locally (never on CI)."
        ),
        Err(_) => panic!("PostgreSQL at {redacted} did not answer within 10 s"),
    }
}

/// A fresh schema in the database at `base`, dropped on drop.
pub struct Schema {
    pub url: String,
    base: String,
    name: String,
}

impl Schema {
    pub async fn create(base: &str) -> Self {
        let name = format!("t_{}", Uuid::new_v4().simple());
        let mut conn = pg_connect(base).await;
        sqlx::query(&format!("CREATE SCHEMA \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("create a test schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        Self {
            url: format!("{base}{sep}options=-c%20search_path%3D{name}"),
            base: base.to_owned(),
            name,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One `nexus-flow serve` process.
pub struct Instance {
    pub port: u16,
    child: Child,
}

impl Instance {
    /// Starts the binary on a free port and waits until it listens (after its migrations).
    pub async fn start(database_url: &str, widget_dir: &Path) -> Self {
        Self::start_env(database_url, widget_dir, &[]).await
    }

    pub async fn start_env(database_url: &str, widget_dir: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_nexus-flow"))
            .envs(env.iter().copied())
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .arg("--database")
            .arg(database_url)
            .arg("--widget-dir")
            .arg(widget_dir)
            .env("NEXUS_FLOW_LOG", "error")
            .env("NEXUS_FLOW_MODEL_DIR", widget_dir.join("no-model"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the server starts");
        let deadline = tokio::time::Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not listen in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { port, child }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// SIGKILL: no graceful shutdown, connections just drop.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Creates an account with the CLI (`nexus-flow user add`), password on stdin.
pub async fn add_user(database_url: &str, email: &str, role: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nexus-flow"))
        .args([
            "user", "add", "--site", "demo", "--email", email, "--role", role,
        ])
        .arg("--database")
        .arg(database_url)
        .env("NEXUS_FLOW_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("user add runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .await
        .expect("password written");
    drop(stdin);
    let status = child.wait().await.expect("user add ends");
    assert!(status.success(), "user add {email} succeeds");
}

/// A minimal HTTP/1.1 request; returns the status and the body.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, String) {
    http_as(port, method, path, body, None).await
}

/// [`http`] with a bearer token.
pub async fn http_as(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    bearer: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("http connects");
    let body = body.map(ToString::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n")),
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("response read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

/// Logs in on an instance; returns the bearer token.
pub async fn login(port: u16, email: &str) -> String {
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/auth/login",
        Some(&serde_json::json!({"site_key": "demo", "email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "login succeeds: {body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("login json");
    body["token"].as_str().expect("a token").to_owned()
}

pub struct Ws {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every frame received, in order (tests look back at them).
    pub seen: Vec<ServerFrame>,
}

impl Ws {
    pub async fn connect(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Self {
            socket,
            seen: Vec::new(),
        }
    }

    pub async fn hello(url: &str, auth: Auth) -> (Self, Welcome) {
        let mut ws = Self::connect(url).await;
        ws.send(&ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            auth,
        }))
        .await;
        match ws.recv().await {
            Some(ServerFrame::Welcome(w)) => (ws, w),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn visitor(url: &str, token: Option<String>) -> (Self, Welcome) {
        Self::hello(
            url,
            Auth::Visitor {
                site_key: "demo".into(),
                visitor_token: token,
                conversation_id: None,
                identity: None,
                page_url: Some("http://127.0.0.1/shop".into()),
                locale: Some("en".into()),
            },
        )
        .await
    }

    pub async fn agent(url: &str, session_token: &str) -> (Self, Welcome) {
        Self::hello(
            url,
            Auth::Agent {
                session_token: session_token.into(),
            },
        )
        .await
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        let json = serde_json::to_string(frame).expect("frame encodes");
        self.socket
            .send(WsMessage::Text(json.into()))
            .await
            .expect("frame sent");
    }

    /// The next frame, or `None` when the connection is gone or silent for `WAIT`.
    pub async fn recv(&mut self) -> Option<ServerFrame> {
        self.recv_within(WAIT).await
    }

    pub async fn recv_within(&mut self, wait: Duration) -> Option<ServerFrame> {
        loop {
            match tokio::time::timeout(wait, self.socket.next())
                .await
                .ok()??
            {
                Ok(WsMessage::Text(text)) => {
                    let frame: ServerFrame =
                        serde_json::from_str(text.as_str()).expect("a valid frame");
                    self.seen.push(frame.clone());
                    return Some(frame);
                }
                Ok(WsMessage::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Frames until `pick` returns something; panics after `WAIT` with what was seen.
    pub async fn until<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&ServerFrame) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Some(frame) => {
                    if let Some(found) = pick(&frame) {
                        return found;
                    }
                }
                None => panic!(
                    "waited in vain for {what}; the last frames were {:#?}",
                    &self.seen[self.seen.len().saturating_sub(8)..]
                ),
            }
        }
    }

    /// Sends a message and waits for its ack: (conversation, seq).
    pub async fn say(
        &mut self,
        conversation_id: Option<Uuid>,
        id: &str,
        body: &str,
    ) -> (Uuid, u64) {
        self.send(&ClientFrame::Send {
            conversation_id,
            client_msg_id: id.into(),
            body: body.into(),
        })
        .await;
        self.until(&format!("the ack of {id}"), |f| match f {
            ServerFrame::Ack {
                client_msg_id,
                conversation_id,
                seq,
                ..
            } if client_msg_id == id => Some((*conversation_id, *seq)),
            ServerFrame::Error(e) => panic!("{id} refused: {e:?}"),
            _ => None,
        })
        .await
    }

    /// Reads frames for `wait` (to collect what is still in flight).
    pub async fn drain(&mut self, wait: Duration) {
        while self.recv_within(wait).await.is_some() {}
    }

    /// Sequence numbers of the entries of `conversation` received (live or as history),
    /// in arrival order.
    pub fn seqs(&self, conversation: Uuid) -> Vec<u64> {
        self.seen
            .iter()
            .flat_map(|f| match f {
                ServerFrame::Message(m) if m.conversation_id == conversation => vec![m.seq],
                ServerFrame::History {
                    conversation_id,
                    messages,
                    ..
                } if *conversation_id == conversation => messages.iter().map(|m| m.seq).collect(),
                _ => vec![],
            })
            .collect()
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// A throwaway PostgreSQL server of this test's own (initdb + pg_ctl in a temp dir, on a free
/// 127.0.0.1 port), so restarting it disturbs no one else. Stopped on drop.
pub struct Cluster {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    as_postgres: bool,
}

impl Cluster {
    /// Finds the PostgreSQL server binaries (`pg_config --bindir`, else the newest
    /// `/usr/lib/postgresql/*/bin`) and starts a fresh cluster. Panics with a clear message
    /// when they are missing.
    pub async fn start() -> Self {
        let bin = pg_bindir().unwrap_or_else(|| {
            panic!(
                "this test runs its own PostgreSQL and needs its server binaries (initdb, \
                 pg_ctl): install the postgresql package, or set NEXUS_SKIP_PG=1 locally"
            )
        });
        // initdb refuses to run as root: run the server as the `postgres` user then.
        let as_postgres = std::env::var("USER").is_ok_and(|u| u == "root")
            || std::process::Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let dir = tempfile::tempdir().expect("tempdir");
        if as_postgres {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown the cluster dir to postgres");
        }
        let cluster = Self {
            port: free_port(),
            dir,
            bin,
            as_postgres,
        };
        let data = cluster.dir.path().join("data");
        let ok = cluster
            .run(
                "initdb",
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-N",
                ],
            )
            .await;
        assert!(ok, "initdb succeeds");
        cluster.pg_ctl_start().await;
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn run(&self, tool: &str, args: &[&str]) -> bool {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    pub async fn pg_ctl_start(&self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let ok = self
            .run(
                "pg_ctl",
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-o",
                    &options,
                    "-l",
                    &log.to_string_lossy(),
                    "-w",
                    "start",
                ],
            )
            .await;
        assert!(ok, "PostgreSQL starts");
    }

    /// Fast shutdown: open connections are terminated.
    pub async fn pg_ctl_stop(&self) {
        let data = self.dir.path().join("data");
        let ok = self
            .run(
                "pg_ctl",
                &["-D", &data.to_string_lossy(), "-m", "fast", "-w", "stop"],
            )
            .await;
        assert!(ok, "PostgreSQL stops");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn pg_bindir() -> Option<std::path::PathBuf> {
    let from_config = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.join("initdb").exists());
    from_config.or_else(|| {
        let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        dirs.sort_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
        dirs.pop()
    })
}
