//! What the integration tests of the workspace share (the `nexus-tests` crate and the server's
//! own `tests/it`): the waits and the test password, a WebSocket client speaking the shared
//! protocol, the frames tests send, REST helpers and login, and PostgreSQL with a fresh schema
//! per test. Nothing here leaves 127.0.0.1.
//!
//! This crate does not depend on `nexus-server`, so the server can dev-depend on it without
//! linking two copies of itself; helpers that need the server's types live in `nexus-tests`.

use std::time::Duration;

pub mod frames;
pub mod http;
pub mod pg;
pub mod ws;

pub use http::login;
pub use ws::WsClient;

/// How long a test waits for what a user would see (a frame after a burst, a page change, a
/// server to listen).
pub const WAIT: Duration = Duration::from_secs(30);

/// How long [`WsClient::recv`] waits for the next frame.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// The password every test account gets.
pub const PASSWORD: &str = "a long test password";

/// The site every fresh server creates.
pub const DEMO_SITE: &str = "demo";

/// A port on 127.0.0.1 that was free a moment ago (for a process that binds it itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}
