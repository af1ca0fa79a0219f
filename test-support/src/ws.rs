//! A protocol client over a real WebSocket: what every test that talks to a server (in this
//! process or another) uses.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nexus_shared::{Auth, ClientFrame, ServerFrame, Welcome};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::{FRAME_TIMEOUT, WAIT, frames};

/// A WebSocket connection speaking the shared protocol. It keeps every frame it received
/// ([`WsClient::seen`]), so that a test can look back and a failure can show the last ones.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every frame received, in order.
    pub seen: Vec<ServerFrame>,
}

impl WsClient {
    pub async fn connect(url: &str) -> Self {
        Self::connect_with(url, &[]).await
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
        Self {
            socket,
            seen: Vec::new(),
        }
    }

    /// Connects and says hello with `auth`; returns the client and `welcome`.
    pub async fn hello(url: &str, auth: Auth) -> (Self, Welcome) {
        let mut client = Self::connect(url).await;
        client.send(&frames::hello(auth)).await;
        match client.try_recv(WAIT).await {
            Some(ServerFrame::Welcome(welcome)) => (client, welcome),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Connects and says hello as a visitor of `site_key` ([`frames::visitor`]).
    pub async fn visitor(url: &str, site_key: &str, token: Option<String>) -> (Self, Welcome) {
        Self::hello(url, frames::visitor(site_key, token)).await
    }

    /// Connects and says hello as an agent with a session token.
    pub async fn agent(url: &str, session_token: &str) -> (Self, Welcome) {
        Self::hello(url, frames::agent(session_token)).await
    }

    /// Says hello as a visitor with these details; returns the server's answer (`welcome` or
    /// an error).
    pub async fn hello_visitor(
        &mut self,
        site_key: &str,
        token: Option<String>,
        identity: Option<nexus_shared::Identity>,
    ) -> ServerFrame {
        self.send(&frames::hello(frames::bare_visitor(
            site_key, token, None, identity,
        )))
        .await;
        self.recv().await
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        assert!(self.try_send(frame).await, "websocket send");
    }

    /// Sends `frame`; false when the connection is gone (a test that kills servers).
    pub async fn try_send(&mut self, frame: &ClientFrame) -> bool {
        let json = serde_json::to_string(frame).expect("frame encodes");
        self.socket.send(WsMessage::Text(json.into())).await.is_ok()
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
                    let frame: ServerFrame = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("server sent an undecodable frame {text}: {e}"));
                    self.seen.push(frame.clone());
                    return Some(frame);
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

    /// Frames until `pick` returns something; panics after [`WAIT`] (or when the connection
    /// ends) with `what` and the last frames seen.
    pub async fn until<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&ServerFrame) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv(left).await {
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
    pub async fn recv_ack(&mut self) -> Uuid {
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

    /// The AI's next answer, or the state the conversation moved to instead (a handoff).
    pub async fn recv_answer(&mut self) -> Result<String, nexus_shared::ConversationState> {
        use nexus_shared::{Author, ConversationState};
        self.recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::Ai => Some(Ok(m.body.clone())),
            ServerFrame::State { state, .. } if *state != ConversationState::Ai => {
                Some(Err(*state))
            }
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

    /// Sends a message and waits for its ack: (conversation, seq).
    pub async fn say(
        &mut self,
        conversation_id: Option<Uuid>,
        id: &str,
        body: &str,
    ) -> (Uuid, u64) {
        self.send(&frames::send(conversation_id, id, body)).await;
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

    /// Sends a ping and waits for the pong: every frame sent before is handled.
    pub async fn sync(&mut self) {
        self.send(&ClientFrame::Ping).await;
        self.recv_until(|f| matches!(f, ServerFrame::Pong).then_some(()))
            .await;
    }

    /// Reads frames until none comes for `wait` (to collect what is still in flight).
    pub async fn drain(&mut self, wait: Duration) {
        while self.try_recv(wait).await.is_some() {}
    }

    /// Sequence numbers of the entries of `conversation` received (live or as history), in
    /// arrival order.
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

    /// Reads frames until the server closes the connection; returns them. Panics if it stays
    /// open for [`WAIT`].
    pub async fn until_closed(&mut self) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        let closed = tokio::time::timeout(WAIT, async {
            while let Some(frame) = self.try_recv(WAIT * 2).await {
                frames.push(frame);
            }
        })
        .await;
        assert!(closed.is_ok(), "the server kept the connection open");
        frames
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
