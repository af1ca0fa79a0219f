//! What every WebSocket session shares: decoding frames, the rate limit, pings and dead
//! peers, following conversations, and [`drive`], the loop that runs a [`Connection`] (the
//! visitor's or the agent's) until it ends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as WsMessage, Utf8Bytes};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use nexus_shared::{ClientFrame, ErrorBody, ErrorCode, Message, ServerFrame, limits};
use tracing::debug;
use uuid::Uuid;

use crate::AppState;
use crate::store::store_error_body;

/// How often the server pings; a connection silent for three intervals is closed.
pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Frames a client may send per second, sustained, and in a burst.
const FRAMES_PER_SECOND: f64 = 10.0;
const FRAME_BURST: f64 = 30.0;

pub(crate) fn encode(frame: &ServerFrame) -> WsMessage {
    let json = serde_json::to_string(frame).unwrap_or_else(|_| {
        r#"{"type":"error","data":{"code":"internal","message":"encoding failed"}}"#.into()
    });
    WsMessage::Text(Utf8Bytes::from(json))
}

pub(crate) fn error_frame(error: ErrorBody) -> ServerFrame {
    ServerFrame::Error(error)
}

/// Why a session ends.
pub(crate) enum End {
    /// The peer went away or the socket failed.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// A token bucket for incoming frames.
pub(crate) struct RateLimit {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub(crate) fn new() -> Self {
        Self {
            tokens: FRAME_BURST,
            last: Instant::now(),
        }
    }

    pub(crate) fn allow(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * FRAMES_PER_SECOND;
        self.tokens = (self.tokens + refill).min(FRAME_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub(crate) enum Decoded {
    Frame(ClientFrame),
    Skip,
    Bad(ErrorBody),
    End,
}

pub(crate) fn decode<E: std::fmt::Display>(message: Result<WsMessage, E>) -> Decoded {
    match message {
        Ok(WsMessage::Text(text)) => {
            if text.len() > limits::MAX_FRAME_BYTES {
                return Decoded::Bad(ErrorBody::new(
                    ErrorCode::FrameTooLarge,
                    format!("Frames are limited to {} bytes.", limits::MAX_FRAME_BYTES),
                ));
            }
            match serde_json::from_str::<ClientFrame>(text.as_str()) {
                Ok(frame) => Decoded::Frame(frame),
                Err(e) => Decoded::Bad(ErrorBody::new(
                    ErrorCode::BadFrame,
                    format!("Not a valid frame: {e}"),
                )),
            }
        }
        Ok(WsMessage::Binary(_)) => Decoded::Bad(ErrorBody::new(
            ErrorCode::BadFrame,
            "Binary frames are not supported; send JSON text.",
        )),
        Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => Decoded::Skip,
        Ok(WsMessage::Close(_)) => Decoded::End,
        Err(e) => {
            debug!(error = %e, "websocket read failed");
            Decoded::End
        }
    }
}

/// What differs between visitor and agent connections; [`drive`] runs the loop they share.
pub(crate) trait Connection {
    /// Handles one decoded client frame.
    async fn handle(
        &mut self,
        state: &AppState,
        frame: ClientFrame,
    ) -> Result<Vec<ServerFrame>, ErrorBody>;

    /// Waits for the next live event and returns what to send; `None` ends the connection.
    async fn live(&mut self, state: &AppState) -> Option<Vec<ServerFrame>>;

    /// After its frames are sent, close the connection with this code and reason (an agent
    /// whose session ended).
    fn closing(&self) -> Option<(u16, &'static str)> {
        None
    }
}

/// Runs a session's connection: client frames (decoded, rate limited), live frames, pings
/// (a peer silent for three intervals is closed) and the server's shutdown.
pub(crate) async fn drive<S, Tx, Rx, E>(
    session: &mut S,
    state: &AppState,
    tx: &mut Tx,
    rx: &mut Rx,
) -> End
where
    S: Connection,
    Tx: Sink<WsMessage> + Unpin,
    Rx: Stream<Item = Result<WsMessage, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut shutdown = state.shutdown.clone();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut limit = RateLimit::new();
    loop {
        let out: Vec<ServerFrame> = tokio::select! {
            incoming = rx.next() => {
                let Some(incoming) = incoming else { return End::Gone };
                last_heard = Instant::now();
                // Boxed: a frame's handling (store calls, the answer engine) is large; on the
                // heap only while it runs, every idle connection's task stays small.
                match Box::pin(on_incoming(session, state, &mut limit, incoming)).await {
                    Some(out) => out,
                    None => return End::Gone,
                }
            }
            live = session.live(state) => match live {
                Some(frames) => frames,
                None => return End::Gone,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > PING_INTERVAL * 3 {
                    return End::Close(1001, "ping timeout");
                }
                if tx.send(WsMessage::Ping(Default::default())).await.is_err() {
                    return End::Gone;
                }
                continue;
            }
            _ = shutdown.changed() => return End::Close(1012, "server restarting"),
        };
        // One flush for all of them: frames that are ready together leave in one write.
        for frame in &out {
            if tx.feed(encode(frame)).await.is_err() {
                return End::Gone;
            }
        }
        if !out.is_empty() && tx.flush().await.is_err() {
            return End::Gone;
        }
        if let Some((code, reason)) = session.closing() {
            return End::Close(code, reason);
        }
    }
}

/// What to send for one incoming WebSocket message (nothing for pings); `None` ends the
/// connection.
async fn on_incoming<S: Connection, E: std::fmt::Display>(
    session: &mut S,
    state: &AppState,
    limit: &mut RateLimit,
    incoming: Result<WsMessage, E>,
) -> Option<Vec<ServerFrame>> {
    Some(match decode(incoming) {
        Decoded::End => return None,
        Decoded::Skip => vec![],
        Decoded::Bad(e) => vec![error_frame(e)],
        Decoded::Frame(_) if !limit.allow() => vec![error_frame(ErrorBody::new(
            ErrorCode::RateLimited,
            "Too many frames; slow down.",
        ))],
        Decoded::Frame(frame) => session
            .handle(state, frame)
            .await
            .unwrap_or_else(|e| vec![error_frame(e)]),
    })
}

/// Sends the timelines of the conversations a connection follows in sequence order, without
/// gaps or repeats: a gap (a missed or reordered live frame) triggers a read from the store.
#[derive(Default)]
pub(crate) struct Follower {
    last_sent: HashMap<Uuid, u64>,
}

impl Follower {
    /// Starts following `id`, with everything up to `last_sent` already sent.
    pub(crate) fn follow(&mut self, id: Uuid, last_sent: u64) {
        self.last_sent.insert(id, last_sent);
    }

    pub(crate) fn unfollow(&mut self, id: Uuid) {
        self.last_sent.remove(&id);
    }

    /// Records that everything up to `seq` of `id` was sent.
    pub(crate) fn sent_up_to(&mut self, id: Uuid, seq: u64) {
        if let Some(last) = self.last_sent.get_mut(&id) {
            *last = (*last).max(seq);
        }
    }

    /// A live frame: timeline entries of followed conversations in order; others dropped;
    /// every other frame as it comes.
    pub(crate) async fn forward(
        &mut self,
        state: &AppState,
        frame: &ServerFrame,
    ) -> Vec<ServerFrame> {
        match frame {
            ServerFrame::Message(m) => match self.last_sent.get(&m.conversation_id) {
                None => vec![],
                Some(&last) if m.seq <= last => vec![],
                Some(&last) if m.seq == last + 1 => {
                    self.last_sent.insert(m.conversation_id, m.seq);
                    vec![frame.clone()]
                }
                Some(_) => self.catch_up(state, m.conversation_id).await,
            },
            other => vec![other.clone()],
        }
    }

    /// After this connection's own commit to `id` of `stored`: those entries from memory when
    /// they follow on from what was sent (the ones sent live already left out), nothing when
    /// all were sent live, else (a gap, or nothing stored) everything not sent yet, from the
    /// store.
    pub(crate) async fn after_commit(
        &mut self,
        state: &AppState,
        id: Uuid,
        stored: &[Message],
    ) -> Vec<ServerFrame> {
        let Some(&last) = self.last_sent.get(&id) else {
            return vec![];
        };
        let fresh = stored.iter().position(|m| m.seq > last);
        match fresh {
            None if !stored.is_empty() => vec![],
            Some(i) if stored[i].seq == last + 1 => {
                if let Some(m) = stored.last() {
                    self.last_sent.insert(id, m.seq);
                }
                stored[i..]
                    .iter()
                    .cloned()
                    .map(ServerFrame::Message)
                    .collect()
            }
            _ => self.catch_up(state, id).await,
        }
    }

    /// Everything of `id` not sent yet, from the store.
    pub(crate) async fn catch_up(&mut self, state: &AppState, id: Uuid) -> Vec<ServerFrame> {
        let Some(&last) = self.last_sent.get(&id) else {
            return vec![];
        };
        match state
            .store
            .messages_after(id, last, limits::MAX_HISTORY_PAGE)
            .await
        {
            Ok(messages) => {
                if let Some(m) = messages.last() {
                    self.last_sent.insert(id, m.seq);
                }
                messages.into_iter().map(ServerFrame::Message).collect()
            }
            Err(e) => vec![error_frame(store_error_body(&e))],
        }
    }
}

pub(crate) fn state_frame(conversation: &crate::model::Conversation) -> ServerFrame {
    ServerFrame::State {
        conversation_id: conversation.id,
        state: conversation.snapshot.state,
        assignee: conversation.snapshot.assignee.clone(),
        reason: (conversation.snapshot.state == nexus_shared::ConversationState::Waiting)
            .then(|| conversation.handoff_reason.clone())
            .flatten(),
    }
}
