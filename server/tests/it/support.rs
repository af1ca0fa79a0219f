//! What the tests driving the real `nexus-flow` executable share: starting it, creating
//! accounts with its CLI, and plain HTTP to it. Everything else (the WebSocket client, frames,
//! login, PostgreSQL schemas and clusters, the waits) is `nexus-test-support`'s.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nexus_test_support::{PASSWORD, WAIT, free_port};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// `command` (the `nexus-flow` executable) set to serve on 127.0.0.1:`port` from
/// `database_url` and `widget_dir`, logging only errors.
pub(crate) fn serve_args<'a>(
    command: &'a mut Command,
    port: u16,
    database_url: &str,
    widget_dir: &Path,
) -> &'a mut Command {
    command
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .arg("--database")
        .arg(database_url)
        .arg("--widget-dir")
        .arg(widget_dir)
        .env("NEXUS_FLOW_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
}

/// Starts `command` and waits until something listens on `port`: the server binds it only
/// after its store is open and migrated.
pub(crate) async fn spawn_listening(command: &mut Command, port: u16) -> Child {
    let child = command.spawn().expect("the server starts");
    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not listen in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// One `nexus-flow serve` process.
pub(crate) struct Instance {
    pub(crate) port: u16,
    child: Child,
}

impl Instance {
    /// Starts the binary on a free port and waits until it listens (after its migrations).
    pub(crate) async fn start(database_url: &str, widget_dir: &Path) -> Self {
        Self::start_env(database_url, widget_dir, &[]).await
    }

    pub(crate) async fn start_env(
        database_url: &str,
        widget_dir: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_nexus-flow"));
        command.envs(env.iter().copied());
        serve_args(&mut command, port, database_url, widget_dir)
            .env("NEXUS_FLOW_MODEL_DIR", widget_dir.join("no-model"));
        let child = spawn_listening(&mut command, port).await;
        Self { port, child }
    }

    pub(crate) fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// SIGKILL: no graceful shutdown, connections just drop.
    pub(crate) async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Creates an account with the CLI (`nexus-flow user add`), password on stdin.
pub(crate) async fn add_user(database_url: &str, email: &str, role: &str) {
    user_cli(
        &[
            "user", "add", "--site", "demo", "--email", email, "--role", role,
        ],
        database_url,
        PASSWORD,
    )
    .await;
}

/// Changes an account's password with the CLI (`nexus-flow user passwd`), password on stdin.
pub(crate) async fn passwd(database_url: &str, email: &str, password: &str) {
    user_cli(
        &["user", "passwd", "--site", "demo", "--email", email],
        database_url,
        password,
    )
    .await;
}

/// Runs `nexus-flow <args> --database <url>` with `password` on stdin; it must succeed.
async fn user_cli(args: &[&str], database_url: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nexus-flow"))
        .args(args)
        .arg("--database")
        .arg(database_url)
        .env("NEXUS_FLOW_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the user command runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .expect("password written");
    drop(stdin);
    let status = child.wait().await.expect("the user command ends");
    assert!(status.success(), "nexus-flow {} succeeds", args.join(" "));
}

/// A request to the instance on `port`; returns the status and the body.
pub(crate) async fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, String) {
    http_as(port, method, path, body, None).await
}

/// [`http`] with a bearer token.
pub(crate) async fn http_as(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    bearer: Option<&str>,
) -> (u16, String) {
    let method = method.parse().expect("an HTTP method");
    let url = format!("http://127.0.0.1:{port}{path}");
    nexus_test_support::http::call(method, &url, body, bearer).await
}

/// Logs in on the demo site of the instance on `port`; returns the bearer token.
pub(crate) async fn login(port: u16, email: &str) -> String {
    nexus_test_support::login(&format!("http://127.0.0.1:{port}"), "demo", email).await
}
