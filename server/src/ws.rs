//! The `/ws` endpoint: one WebSocket per widget, visitor or agent.
//!
//! The session logic ([`run`]) is generic over any `Stream` of incoming and `Sink` of outgoing
//! WebSocket messages, so it runs the same over a real socket and over channels in tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use nexus_shared::{
    Auth, ClientFrame, ConversationView, ErrorBody, ErrorCode, Hello, Identity, Message,
    PROTOCOL_VERSION, ServerFrame, Session, SiteInfo, Welcome, limits,
};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, instrument};
use uuid::Uuid;

use crate::AppState;
use crate::chat;
use crate::connections::Slot;
use crate::error::store_error_body;
use crate::hub::Frame;
use crate::store::{Site, SiteSettings, Visitor};

/// How long a client has to say `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server pings; a connection silent for three intervals is closed.
pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Frames a client may send per second, sustained, and in a burst.
const FRAMES_PER_SECOND: f64 = 10.0;
const FRAME_BURST: f64 = 30.0;
/// History sent with `welcome`.
const WELCOME_HISTORY: u32 = limits::DEFAULT_HISTORY_PAGE;
/// Longest identity id, name and email accepted in `hello`.
const MAX_IDENTITY_FIELD_BYTES: usize = 320;

/// What tungstenite allocates (and touches) for each connection's read buffer up front; it
/// is resident for the connection's life, so it is most of an idle connection's cost. A frame
/// larger than this still arrives whole: the buffer grows to the frame's length, read by read.
const READ_BUFFER_BYTES: usize = 1024;
/// Frames written before a flush are gathered up to this size, then written out.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// `GET /ws`: upgrades with small buffers (1 KiB read buffer per idle connection, not
/// 128 KiB) and the frame size limit. Frames ready together are written together: they
/// wait in the write buffer (up to [`WRITE_BUFFER_BYTES`]) for the flush that follows them in
/// `drive`, never longer. The `Origin` header goes to the session, which checks it against
/// the site's allowed origins once `hello` names the site.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Behind a trusted reverse proxy, the visitor's address rather than the proxy's.
    let peer = SocketAddr::new(
        state.connections.client_ip(peer.ip(), &headers),
        peer.port(),
    );
    ws.read_buffer_size(READ_BUFFER_BYTES)
        // Frames written together wait for the flush after them (`drive`) up to this size,
        // so they leave in one write.
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(limits::MAX_FRAME_BYTES)
        .max_frame_size(limits::MAX_FRAME_BYTES)
        .on_upgrade(move |socket: WebSocket| async move {
            let (sink, stream) = socket.split();
            run(state, peer, origin, sink, stream).await;
        })
}

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

/// The error sent when a cap on open connections is reached.
fn too_many_connections(what: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::TooManyConnections,
        format!("Too many open connections {what}; close one and try again."),
    )
}

/// Runs one connection to its end. `origin` is the upgrade request's `Origin` header.
#[instrument(skip_all, fields(%peer))]
pub async fn run<Tx, Rx, E>(
    state: AppState,
    peer: SocketAddr,
    origin: Option<String>,
    mut tx: Tx,
    mut rx: Rx,
) where
    Tx: Sink<WsMessage> + Unpin,
    Rx: Stream<Item = Result<WsMessage, E>> + Unpin,
    E: std::fmt::Display,
{
    let Some(_ip_slot) = state.connections.open_ip(peer.ip()) else {
        debug!("too many connections from this address");
        let refusal = encode(&error_frame(too_many_connections("from your address")));
        let _ = tx.send(refusal).await;
        let _ = tx
            .send(WsMessage::Close(Some(CloseFrame {
                code: 1013,
                reason: Utf8Bytes::from_static("too many connections"),
            })))
            .await;
        return;
    };
    // Boxed: the hello phase (decoding `hello`, `accept`'s store calls, the welcome) is on
    // the heap only while it runs; an idle connection's task holds just the session loop.
    let end = match Box::pin(open(&state, origin, &mut tx, &mut rx)).await {
        Ok((session, _site_slot)) => session.run(&state, &mut tx, &mut rx).await,
        Err(end) => end,
    };
    if let End::Close(code, reason) = end {
        let _ = tx
            .send(WsMessage::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await;
    }
    debug!("connection closed");
}

/// The hello phase: waits for `hello`, accepts it and sends the welcome. Returns the session
/// and its site slot, or how the connection ends.
async fn open<Tx, Rx, E>(
    state: &AppState,
    origin: Option<String>,
    tx: &mut Tx,
    rx: &mut Rx,
) -> Result<(Peer, Slot), End>
where
    Tx: Sink<WsMessage> + Unpin,
    Rx: Stream<Item = Result<WsMessage, E>> + Unpin,
    E: std::fmt::Display,
{
    let refusal = match tokio::time::timeout(HELLO_TIMEOUT, next_frame(rx, tx)).await {
        Err(_) => (
            ErrorBody::new(ErrorCode::HelloRequired, "Say hello first."),
            End::Close(4000, "hello timeout"),
        ),
        Ok(None) => return Err(End::Gone),
        Ok(Some(ClientFrame::Hello(hello))) => match accept(state, hello, origin).await {
            Ok((session, welcome, site_slot)) => {
                let welcome = encode(&ServerFrame::Welcome(welcome));
                return match tx.send(welcome).await {
                    Ok(()) => Ok((session, site_slot)),
                    Err(_) => Err(End::Gone),
                };
            }
            Err(error) => (error, End::Close(4001, "hello refused")),
        },
        Ok(Some(_)) => (
            ErrorBody::new(ErrorCode::HelloRequired, "The first frame must be hello."),
            End::Close(4000, "hello required"),
        ),
    };
    let (error, end) = refusal;
    let _ = tx.send(encode(&error_frame(error))).await;
    Err(end)
}

/// Reads until a decodable client frame arrives (answering bad ones with errors) or the
/// connection ends.
async fn next_frame<Tx, Rx, E>(rx: &mut Rx, tx: &mut Tx) -> Option<ClientFrame>
where
    Tx: Sink<WsMessage> + Unpin,
    Rx: Stream<Item = Result<WsMessage, E>> + Unpin,
    E: std::fmt::Display,
{
    loop {
        match decode(rx.next().await?) {
            Decoded::Frame(frame) => return Some(frame),
            Decoded::Skip => {}
            Decoded::Bad(error) => {
                tx.send(encode(&error_frame(error))).await.ok()?;
            }
            Decoded::End => return None,
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

/// One copy of each site's record for all of its visitor connections, instead of a copy per
/// connection (the settings, with their phrase lists and placeholders, are kilobytes).
///
/// `hello` still reads the site from the store, so a connection sees the settings as they
/// are when it opens; when they differ from the shared copy (an owner changed them), the
/// fresh record becomes the shared one for the connections that open from then on.
/// Connections read the settings that matter for an answer from the store when they post.
#[derive(Default)]
pub struct SharedSites {
    sites: Mutex<HashMap<Uuid, Weak<Site>>>,
}

impl SharedSites {
    /// The shared copy of `site`: the existing one when it is identical, else `site`.
    pub fn share(&self, site: Site) -> Arc<Site> {
        let mut sites = self
            .sites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(shared) = sites.get(&site.id).and_then(Weak::upgrade)
            && *shared == site
        {
            return shared;
        }
        // Forget the sites nobody holds any more (deleted sites do not linger).
        sites.retain(|_, s| s.strong_count() > 0);
        let site = Arc::new(site);
        sites.insert(site.id, Arc::downgrade(&site));
        site
    }
}

/// A connection that said hello successfully.
enum Peer {
    Visitor(Box<VisitorSession>),
    Agent(Box<crate::ws_agent::AgentSession>),
}

impl Peer {
    async fn run<Tx, Rx, E>(self, state: &AppState, tx: &mut Tx, rx: &mut Rx) -> End
    where
        Tx: Sink<WsMessage> + Unpin,
        Rx: Stream<Item = Result<WsMessage, E>> + Unpin,
        E: std::fmt::Display,
    {
        match self {
            Self::Visitor(session) => session.run(state, tx, rx).await,
            // Boxed: an agent session's future (its inbox, its actions) is several times a
            // visitor's; agents are few, and every visitor's task would otherwise be as large.
            Self::Agent(session) => Box::pin(session.run(state, tx, rx)).await,
        }
    }
}

/// Is `origin` allowed to open a visitor connection? An empty list allows every origin (and
/// connections without one); otherwise the origin must be on the list (scheme, host and port,
/// compared without case and trailing slash), and a connection without an `Origin` header is
/// refused: browsers always send one, so only a non-browser client lacks it.
pub fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(origin) = origin else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/');
    allowed
        .iter()
        .any(|a| a.trim().trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// The hex HMAC-SHA256 of `id` under `secret`: what a site puts in `identity.hash`.
pub fn identity_hash(secret: &str, id: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a visitor's identity claim against the site's settings. Returns the identity when it
/// is verified; `None` when there is nothing to verify (no claim, or no secret to check it
/// with — an unverifiable claim is not stored). A claim with a wrong hash is refused, and so is
/// a missing (or unverifiable) claim when the site requires identity.
pub fn verify_identity(
    settings: &SiteSettings,
    identity: Option<Identity>,
) -> Result<Option<Identity>, ErrorBody> {
    use hmac::Mac;
    let refused = |message: &str| ErrorBody::new(ErrorCode::IdentityInvalid, message);
    match (settings.identity_secret(), identity) {
        (Some(secret), Some(identity)) => {
            let too_long = [
                Some(&identity.id),
                identity.name.as_ref(),
                identity.email.as_ref(),
            ]
            .into_iter()
            .flatten()
            .any(|f| f.len() > MAX_IDENTITY_FIELD_BYTES);
            if identity.id.is_empty() || too_long {
                return Err(refused("The identity's id, name or email is malformed."));
            }
            let verified = identity
                .hash
                .as_deref()
                .and_then(|h| hex::decode(h.trim()).ok())
                .is_some_and(|expected| {
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
                        .map(|mac| mac.chain_update(identity.id.as_bytes()))
                        .is_ok_and(|mac| mac.verify_slice(&expected).is_ok())
                });
            if verified {
                Ok(Some(identity))
            } else {
                Err(refused("The visitor's identity could not be verified."))
            }
        }
        (None, Some(_)) if settings.require_identity => Err(refused(
            "This site requires a verified identity but has no identity secret set.",
        )),
        (_, None) if settings.require_identity => {
            Err(refused("This site requires a verified identity."))
        }
        (_, _) => Ok(None),
    }
}

async fn accept(
    state: &AppState,
    hello: Hello,
    origin: Option<String>,
) -> Result<(Peer, Welcome, Slot), ErrorBody> {
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(ErrorBody::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "This server speaks protocol version {PROTOCOL_VERSION}; please reload the page."
            ),
        ));
    }
    match hello.auth {
        Auth::Visitor {
            site_key,
            visitor_token,
            conversation_id,
            identity,
            page_url,
            locale,
        } => {
            let site = state
                .store
                .site_by_key(&site_key)
                .await
                .map_err(|e| store_error_body(&e))?
                .ok_or_else(|| {
                    ErrorBody::new(
                        ErrorCode::UnknownSite,
                        format!("No site is registered with the key {site_key:?}."),
                    )
                })?;
            if !origin_allowed(&site.settings.allowed_origins, origin.as_deref()) {
                return Err(ErrorBody::new(
                    ErrorCode::OriginNotAllowed,
                    "This site does not allow the chat on this page.",
                ));
            }
            let identity = verify_identity(&site.settings, identity)?;
            let site = state.sites.share(site);
            let slot = state
                .connections
                .open_site(site.id)
                .ok_or_else(|| too_many_connections("to this site"))?;
            let (peer, welcome) = VisitorSession::open(
                state,
                site,
                visitor_token,
                conversation_id,
                identity,
                page_url,
                locale,
            )
            .await?;
            Ok((peer, welcome, slot))
        }
        Auth::Agent { session_token } => {
            let user = crate::auth::session_user(state.store.as_ref(), &session_token)
                .await?
                .ok_or_else(|| {
                    ErrorBody::new(
                        ErrorCode::Unauthorized,
                        "This agent session is not valid; please log in again.",
                    )
                })?;
            let slot = state
                .connections
                .open_site(user.site_id)
                .ok_or_else(|| too_many_connections("to this site"))?;
            let (session, welcome) = crate::ws_agent::AgentSession::open(state, user).await?;
            Ok((Peer::Agent(Box::new(session)), welcome, slot))
        }
    }
}

struct VisitorSession {
    /// Shared with the site's other connections (see [`SharedSites`]).
    site: Arc<Site>,
    visitor: Visitor,
    page_url: Option<String>,
    locale: Option<String>,
    /// The conversation this connection follows, once there is one.
    conversation: Option<Uuid>,
    subscription: Option<broadcast::Receiver<Frame>>,
    follower: Follower,
}

impl VisitorSession {
    async fn open(
        state: &AppState,
        site: Arc<Site>,
        token: Option<String>,
        conversation_id: Option<Uuid>,
        identity: Option<Identity>,
        page_url: Option<String>,
        locale: Option<String>,
    ) -> Result<(Peer, Welcome), ErrorBody> {
        let store = state.store.as_ref();
        let fail = |e| store_error_body(&e);
        let known = match &token {
            Some(token) => store.visitor_by_token(site.id, token).await.map_err(fail)?,
            None => None,
        };
        let (mut visitor, mut token) = match (known, token) {
            (Some(v), Some(t)) => (v, t),
            _ => store
                .create_visitor(site.id, &nexus_shared::VisitorInfo::default())
                .await
                .map_err(fail)?,
        };
        if let Some(identity) = &identity {
            let (name, email) = (identity.name.as_deref(), identity.email.as_deref());
            if !store
                .set_visitor_identity(visitor.id, &identity.id, name, email)
                .await
                .map_err(fail)?
            {
                // The token belongs to someone else (another user signed in on this browser):
                // start afresh rather than show them that person's conversations.
                (visitor, token) = store
                    .create_visitor(site.id, &nexus_shared::VisitorInfo::default())
                    .await
                    .map_err(fail)?;
                store
                    .set_visitor_identity(visitor.id, &identity.id, name, email)
                    .await
                    .map_err(fail)?;
            }
            if name.is_some() {
                visitor.info.name = identity.name.clone();
            }
            if email.is_some() {
                visitor.info.email = identity.email.clone();
            }
        }
        let conversation = match conversation_id {
            Some(id) => Some(chat::visitor_conversation(state, &visitor, id).await?),
            None => store.latest_conversation(visitor.id).await.map_err(fail)?,
        };
        let mut session = Self {
            site: Arc::clone(&site),
            visitor,
            page_url,
            locale,
            conversation: None,
            subscription: None,
            follower: Follower::default(),
        };
        let view = match conversation {
            Some(c) => {
                // Subscribe before reading history, so nothing falls between the two.
                session.follow(state, c.id);
                let messages = store
                    .last_messages(c.id, WELCOME_HISTORY)
                    .await
                    .map_err(fail)?;
                session
                    .follower
                    .follow(c.id, messages.last().map_or(0, |m| m.seq));
                Some(ConversationView {
                    id: c.id,
                    state: c.snapshot.state,
                    assignee: c.snapshot.assignee,
                    last_seq: c.last_seq,
                    messages,
                })
            }
            None => None,
        };
        let welcome = Welcome {
            protocol_version: PROTOCOL_VERSION,
            session: Session::Visitor {
                visitor_token: token,
            },
            site: Some(SiteInfo {
                name: site.name.clone(),
                assistant_name: site.settings.assistant_name.clone(),
                greeting: site.settings.greeting.clone(),
                color: site.settings.color.clone(),
                autonomy: site.settings.autonomy,
                agents_online: state.presence.online(site.id),
            }),
            conversation: view,
        };
        Ok((Peer::Visitor(Box::new(session)), welcome))
    }

    fn follow(&mut self, state: &AppState, conversation_id: Uuid) {
        if self.conversation != Some(conversation_id) {
            if let Some(previous) = self.conversation {
                self.follower.unfollow(previous);
            }
            self.subscription = Some(state.hub.subscribe_conversation(conversation_id));
            self.conversation = Some(conversation_id);
            // Nothing of the new conversation has been sent on this connection yet.
            self.follower.follow(conversation_id, 0);
        }
    }

    /// Takes the box: the session stays on the heap, the connection's task holds a pointer.
    async fn run<Tx, Rx, E>(mut self: Box<Self>, state: &AppState, tx: &mut Tx, rx: &mut Rx) -> End
    where
        Tx: Sink<WsMessage> + Unpin,
        Rx: Stream<Item = Result<WsMessage, E>> + Unpin,
        E: std::fmt::Display,
    {
        drive(&mut *self, state, tx, rx).await
    }

    async fn catch_up(&mut self, state: &AppState) -> Vec<ServerFrame> {
        match self.conversation {
            Some(id) => self.follower.catch_up(state, id).await,
            None => vec![],
        }
    }

    async fn handle_frame(
        &mut self,
        state: &AppState,
        frame: ClientFrame,
    ) -> Result<Vec<ServerFrame>, ErrorBody> {
        match frame {
            ClientFrame::Send {
                conversation_id,
                client_msg_id,
                body,
            } => {
                let sent = chat::visitor_send(
                    state,
                    &self.site,
                    &self.visitor,
                    conversation_id.or(self.conversation),
                    &client_msg_id,
                    &body,
                    (self.page_url.as_deref(), self.locale.as_deref()),
                )
                .await?;
                let mut out = self
                    .after_post(state, sent.conversation.id, &sent.stored)
                    .await;
                out.push(ServerFrame::Ack {
                    client_msg_id,
                    conversation_id: sent.conversation.id,
                    message_id: sent.message.id,
                    seq: sent.message.seq,
                    duplicate: sent.duplicate,
                });
                Ok(out)
            }
            ClientFrame::Choose {
                conversation_id,
                message_id,
                choice_id,
                client_msg_id,
            } => {
                let sent = chat::visitor_choose(
                    state,
                    &self.site,
                    &self.visitor,
                    conversation_id,
                    message_id,
                    &choice_id,
                    &client_msg_id,
                )
                .await
                .map_err(|e| e.for_message(client_msg_id.clone()))?;
                let mut out = self
                    .after_post(state, sent.conversation.id, &sent.stored)
                    .await;
                out.push(ServerFrame::Ack {
                    client_msg_id,
                    conversation_id: sent.conversation.id,
                    message_id: sent.message.id,
                    seq: sent.message.seq,
                    duplicate: sent.duplicate,
                });
                Ok(out)
            }
            ClientFrame::Resume {
                conversation_id,
                after_seq,
            } => {
                chat::visitor_conversation(state, &self.visitor, conversation_id).await?;
                self.follow(state, conversation_id);
                let messages = state
                    .store
                    .messages_after(conversation_id, after_seq, limits::MAX_HISTORY_PAGE + 1)
                    .await
                    .map_err(|e| store_error_body(&e))?;
                let has_more = messages.len() > limits::MAX_HISTORY_PAGE as usize;
                let messages: Vec<Message> = messages
                    .into_iter()
                    .take(limits::MAX_HISTORY_PAGE as usize)
                    .collect();
                let sent = messages.last().map_or(after_seq, |m| m.seq);
                self.follower.sent_up_to(conversation_id, sent);
                let conversation =
                    chat::visitor_conversation(state, &self.visitor, conversation_id).await?;
                Ok(vec![
                    ServerFrame::History {
                        conversation_id,
                        messages,
                        has_more,
                    },
                    state_frame(&conversation),
                ])
            }
            ClientFrame::RequestHuman { conversation_id } => {
                let conversation =
                    chat::visitor_conversation(state, &self.visitor, conversation_id).await?;
                self.follow(state, conversation.id);
                let conversation = match chat::escalate(
                    state,
                    conversation.id,
                    nexus_shared::HandoffReason::VisitorAsked,
                )
                .await
                {
                    Some(committed) => committed.conversation,
                    // Already waiting or with a person: tell the client where things stand.
                    None => conversation,
                };
                Ok(vec![state_frame(&conversation)])
            }
            ClientFrame::Typing {
                conversation_id,
                typing,
            } => {
                if self.conversation == Some(conversation_id) {
                    state.hub.publish_site(
                        self.site.id,
                        ServerFrame::Typing {
                            conversation_id,
                            author: nexus_shared::Author::Visitor,
                            typing,
                        },
                    );
                }
                Ok(vec![])
            }
            ClientFrame::Feedback {
                conversation_id,
                message_id,
                helpful,
            } => {
                chat::visitor_conversation(state, &self.visitor, conversation_id).await?;
                crate::learn::feedback(state, &self.site, conversation_id, message_id, helpful)
                    .await?;
                Ok(vec![])
            }
            ClientFrame::Csat {
                conversation_id,
                score,
                comment,
            } => {
                if !(1..=5).contains(&score) {
                    return Err(ErrorBody::new(
                        ErrorCode::Validation,
                        "The rating must be between 1 and 5.",
                    ));
                }
                if comment
                    .as_ref()
                    .is_some_and(|c| c.chars().count() > limits::MAX_COMMENT_CHARS)
                {
                    return Err(ErrorBody::new(
                        ErrorCode::MessageTooLong,
                        format!(
                            "Comments are limited to {} characters.",
                            limits::MAX_COMMENT_CHARS
                        ),
                    ));
                }
                chat::visitor_conversation(state, &self.visitor, conversation_id).await?;
                state
                    .store
                    .record_csat(conversation_id, score, comment.as_deref())
                    .await
                    .map_err(|e| store_error_body(&e))?;
                Ok(vec![])
            }
            ClientFrame::NewConversation => {
                let conversation = state
                    .store
                    .create_conversation(
                        self.site.id,
                        self.visitor.id,
                        self.page_url.as_deref(),
                        self.locale.as_deref(),
                    )
                    .await
                    .map_err(|e| store_error_body(&e))?;
                self.follow(state, conversation.id);
                Ok(vec![state_frame(&conversation)])
            }
            ClientFrame::LeaveEmail {
                conversation_id,
                email,
            } => {
                chat::leave_email(state, &self.visitor, conversation_id, &email).await?;
                Ok(self.after_post(state, conversation_id, &[]).await)
            }
            ClientFrame::ListConversations => {
                Ok(vec![visitor_conversations(state, &self.visitor).await?])
            }
            ClientFrame::Ping => Ok(vec![ServerFrame::Pong]),
            ClientFrame::Hello(_) => Err(ErrorBody::new(
                ErrorCode::BadFrame,
                "Already said hello on this connection.",
            )),
            _ => Err(ErrorBody::new(
                ErrorCode::Forbidden,
                "Visitors cannot do this.",
            )),
        }
    }

    /// After a post: follow the conversation (it may be new) and send whatever of its
    /// timeline this connection has not seen yet, so the client gets its own message and any
    /// system notice in order, before the ack. `stored` (what the post stored) saves the read
    /// from the store when nothing else came in between.
    async fn after_post(
        &mut self,
        state: &AppState,
        conversation_id: Uuid,
        stored: &[Message],
    ) -> Vec<ServerFrame> {
        self.follow(state, conversation_id);
        self.follower
            .after_commit(state, conversation_id, stored)
            .await
    }
}

impl Connection for VisitorSession {
    async fn handle(
        &mut self,
        state: &AppState,
        frame: ClientFrame,
    ) -> Result<Vec<ServerFrame>, ErrorBody> {
        self.handle_frame(state, frame).await
    }

    async fn live(&mut self, state: &AppState) -> Option<Vec<ServerFrame>> {
        let Some(subscription) = &mut self.subscription else {
            return std::future::pending().await;
        };
        // The waiting is inline (it is what an idle connection does); the work on a frame is
        // boxed, so it takes heap only while it runs (see `drive`).
        Some(match subscription.recv().await {
            Ok(frame) => Box::pin(self.follower.forward(state, &frame)).await,
            Err(RecvError::Lagged(_)) => Box::pin(self.catch_up(state)).await,
            Err(RecvError::Closed) => {
                self.subscription = None;
                vec![]
            }
        })
    }
}

pub(crate) fn state_frame(conversation: &crate::store::Conversation) -> ServerFrame {
    ServerFrame::State {
        conversation_id: conversation.id,
        state: conversation.snapshot.state,
        assignee: conversation.snapshot.assignee.clone(),
        reason: (conversation.snapshot.state == nexus_shared::ConversationState::Waiting)
            .then(|| conversation.handoff_reason.clone())
            .flatten(),
    }
}

/// How many of a visitor's conversations `list_conversations` returns.
const VISITOR_CONVERSATIONS: u32 = 20;
/// Characters of the last message shown as a conversation's preview.
const PREVIEW_CHARS: usize = 140;

/// The `conversations` frame: the visitor's own conversations, newest first, each with its
/// last message as the preview.
async fn visitor_conversations(
    state: &AppState,
    visitor: &Visitor,
) -> Result<ServerFrame, ErrorBody> {
    let store = state.store.as_ref();
    let fail = |e| store_error_body(&e);
    let mut conversations = Vec::new();
    for c in store
        .visitor_conversations(visitor.id, VISITOR_CONVERSATIONS)
        .await
        .map_err(fail)?
    {
        let preview = store
            .last_messages(c.id, 1)
            .await
            .map_err(fail)?
            .pop()
            .map(|m| m.body.chars().take(PREVIEW_CHARS).collect())
            .unwrap_or_default();
        conversations.push(c.summary(preview, visitor.info.clone()));
    }
    Ok(ServerFrame::Conversations { conversations })
}
