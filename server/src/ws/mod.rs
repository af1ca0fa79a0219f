//! The `/ws` endpoint: one WebSocket per widget, visitor or agent.
//!
//! The session logic ([`run`]) is generic over any `Stream` of incoming and `Sink` of outgoing
//! WebSocket messages, so it runs the same over a real socket and over channels in tests.

mod agent;
mod driver;
mod visitor;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use nexus_shared::{
    Auth, ClientFrame, ErrorBody, ErrorCode, Hello, PROTOCOL_VERSION, ServerFrame, Welcome, limits,
};
use tracing::{debug, instrument};

use crate::AppState;
use crate::access::identity::{
    agent_origin_allowed, agent_origin_refused, origin_allowed, verify_identity,
};
use crate::live::connections::Slot;
use crate::store::store_error_body;
use driver::{Decoded, End, decode, encode, error_frame};
use visitor::VisitorSession;

pub use visitor::SharedSites;

/// How long a client has to say `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

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
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let origin = Origin {
        origin: text(header::ORIGIN),
        host: text(header::HOST),
    };
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
        // Frames up to the hard cap are read whole, so that one over the protocol's 16 KiB
        // gets a `frame_too_large` error and the connection stays open (`driver::decode`);
        // beyond the cap the socket is closed (1009) without buffering more.
        .max_message_size(HARD_FRAME_BYTES)
        .max_frame_size(HARD_FRAME_BYTES)
        .on_upgrade(move |socket: WebSocket| async move {
            let (sink, stream) = socket.split();
            run(state, peer, origin, sink, stream).await;
        })
}

/// The largest frame read at all: four times the protocol's limit
/// ([`limits::MAX_FRAME_BYTES`]). Bigger ones close the connection.
pub const HARD_FRAME_BYTES: usize = 4 * limits::MAX_FRAME_BYTES;

/// The upgrade request's `Origin` and `Host` headers: visitors are checked against the site's
/// allowed origins, agents also against the server's own origin.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub origin: Option<String>,
    pub host: Option<String>,
}

/// The error sent when a cap on open connections is reached.
fn too_many_connections(what: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::TooManyConnections,
        format!("Too many open connections {what}; close one and try again."),
    )
}

/// Runs one connection to its end. `origin` holds the upgrade request's `Origin` and `Host`.
#[instrument(skip_all, fields(%peer))]
pub async fn run<Tx, Rx, E>(
    state: AppState,
    peer: SocketAddr,
    origin: Origin,
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
    origin: Origin,
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

/// A connection that said hello successfully.
enum Peer {
    Visitor(Box<VisitorSession>),
    Agent(Box<crate::ws::agent::AgentSession>),
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

async fn accept(
    state: &AppState,
    hello: Hello,
    origin: Origin,
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
            if !origin_allowed(&site.settings.allowed_origins, origin.origin.as_deref()) {
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
            let (session, welcome) = VisitorSession::open(
                state,
                site,
                visitor_token,
                conversation_id,
                identity,
                page_url,
                locale,
            )
            .await?;
            Ok((Peer::Visitor(Box::new(session)), welcome, slot))
        }
        Auth::Agent { session_token } => {
            // Subscribed before the check: a logout right after it still reaches this socket.
            let ended = state.hub.subscribe_session_ends();
            let user = crate::access::accounts::session_user(state.store.as_ref(), &session_token)
                .await?
                .ok_or_else(|| {
                    ErrorBody::new(
                        ErrorCode::Unauthorized,
                        "This agent session is not valid; please log in again.",
                    )
                })?;
            let (page, host) = (origin.origin.as_deref(), origin.host.as_deref());
            if !crate::access::identity::own_origin(page, host) {
                let site = state
                    .store
                    .site(user.site_id)
                    .await
                    .map_err(|e| store_error_body(&e))?;
                let allowed = site
                    .as_ref()
                    .map_or(&[][..], |s| &s.settings.allowed_origins);
                if !agent_origin_allowed(allowed, page, host) {
                    return Err(agent_origin_refused());
                }
            }
            let slot = state
                .connections
                .open_site(user.site_id)
                .ok_or_else(|| too_many_connections("to this site"))?;
            let token_hash = crate::access::accounts::hash_token(&session_token);
            let (session, welcome) =
                crate::ws::agent::AgentSession::open(state, user, token_hash, ended).await?;
            Ok((Peer::Agent(Box::new(session)), welcome, slot))
        }
    }
}
