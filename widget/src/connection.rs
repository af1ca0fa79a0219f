//! The WebSocket to the server: `hello`, `welcome`, then frames both ways; reconnects with
//! exponential backoff and jitter, resumes after the last sequence number seen, and re-sends
//! unacknowledged messages under their original client message id (the server stores them
//! once).

use std::sync::Arc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;
use futures_util::future::{self, Either};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use nexus_shared::{
    Auth, Author, ClientFrame, ErrorBody, ErrorCode, Hello, Identity, PROTOCOL_VERSION,
    ServerFrame, validate_body,
};
use uuid::Uuid;

use crate::browser;
use crate::config::Config;
use crate::i18n;
use crate::model::{Chat, Notice};
use crate::wire;

/// Give up on a connection attempt (socket open and `welcome`) after this long.
const CONNECT_TIMEOUT_MS: f64 = 15_000.0;
/// Send `ping` when nothing was sent for this long…
const PING_EVERY_MS: f64 = 25_000.0;
/// …and call the connection dead when nothing was heard for this long.
const DEAD_AFTER_MS: f64 = 70_000.0;
/// How often the connection checks the two above.
const TICK_MS: u32 = 5_000;
/// A typing indicator nobody turned off goes after this long (checked every tick or frame).
const TYPING_FOR_MS: f64 = 10_000.0;
/// Backoff: first retry after 0.25–0.5 s, doubling up to 15–30 s.
const BACKOFF_BASE_MS: u32 = 500;
const BACKOFF_MAX_MS: u32 = 30_000;

/// The connection indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Online,
    /// Lost; a reconnect is scheduled.
    Offline,
    /// The server refused this site or this widget version: no point retrying.
    Unavailable,
}

impl Status {
    pub fn text(self) -> &'static str {
        match self {
            Self::Connecting => i18n::t().status_connecting,
            Self::Online => i18n::t().status_online,
            Self::Offline => i18n::t().status_offline,
            Self::Unavailable => i18n::t().status_unavailable,
        }
    }

    /// Stable value for the `data-status` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Unavailable => "unavailable",
        }
    }
}

/// What the view asks of the connection task.
#[derive(Debug)]
pub enum Command {
    /// The panel was opened: connect (once).
    Start,
    /// Deliver the pending entry with this client message id.
    Deliver(String),
    /// Send this frame once connected.
    Frame(ClientFrame),
    /// `NexusFlow.identify()`: say hello again as this person (`None`: as a guest).
    Identify(Option<Identity>),
}

/// The view's handle on the conversation: reactive state plus a way to reach the socket.
#[derive(Clone)]
pub struct Client {
    pub chat: RwSignal<Chat>,
    pub status: RwSignal<Status>,
    pub open: RwSignal<bool>,
    /// Messages from the assistant or an agent that arrived while the panel was closed.
    pub unread: RwSignal<u32>,
    pub config: Arc<Config>,
    tx: UnboundedSender<Command>,
}

impl Client {
    pub fn new(config: Arc<Config>) -> (Self, UnboundedReceiver<Command>) {
        let (tx, rx) = futures_channel::mpsc::unbounded();
        let client = Self {
            chat: RwSignal::new(Chat::default()),
            status: RwSignal::new(Status::Connecting),
            open: RwSignal::new(false),
            unread: RwSignal::new(0),
            config,
            tx,
        };
        (client, rx)
    }

    fn command(&self, cmd: Command) {
        // Fails only when the task is gone, which happens only on a refused site.
        let _ = self.tx.unbounded_send(cmd);
    }

    /// Connects, unless already connected or connecting.
    pub fn start(&self) {
        self.command(Command::Start);
    }

    /// Shows `body` as the visitor's message and delivers it. Returns false (and says why)
    /// when the server would refuse it anyway.
    pub fn send_text(&self, body: &str) -> bool {
        let body = match validate_body(body) {
            Ok(body) => body.to_owned(),
            Err(err) => {
                if err.code != ErrorCode::EmptyMessage {
                    self.chat.update(|c| {
                        c.notice = Some(Notice {
                            text: i18n::error_text(&err).to_owned(),
                        });
                    });
                }
                return false;
            }
        };
        let id = browser::new_client_msg_id();
        self.chat
            .update(|c| c.compose(id.clone(), body, browser::now()));
        self.command(Command::Deliver(id));
        true
    }

    /// The visitor picks a choice of a clarifying question.
    pub fn choose(&self, message_id: Uuid, choice_id: &str) {
        let id = browser::new_client_msg_id();
        let mut shown = false;
        self.chat
            .update(|c| shown = c.choose(id.clone(), message_id, choice_id, browser::now()));
        if shown {
            self.command(Command::Deliver(id));
        }
    }

    pub fn retry(&self, client_msg_id: &str) {
        let mut again = false;
        self.chat.update(|c| again = c.retry(client_msg_id));
        if again {
            self.command(Command::Deliver(client_msg_id.to_owned()));
        }
    }

    /// Sends the frame `make` builds for the current conversation; nothing without one.
    fn to_conversation(&self, make: impl FnOnce(Uuid) -> ClientFrame) {
        if let Some(id) = self.chat.with_untracked(|c| c.conversation_id) {
            self.command(Command::Frame(make(id)));
        }
    }

    /// Thumbs up or down on an AI answer.
    pub fn feedback(&self, message_id: Uuid, helpful: bool) {
        self.to_conversation(|conversation_id| ClientFrame::Feedback {
            conversation_id,
            message_id,
            helpful,
        });
    }

    /// The satisfaction score (1 to 5) after resolution, with an optional comment.
    pub fn csat(&self, score: u8, comment: Option<String>) {
        self.to_conversation(|conversation_id| ClientFrame::Csat {
            conversation_id,
            score,
            comment,
        });
    }

    /// `NexusFlow.identify()`: the chat continues as this person once the server checks the
    /// claim.
    pub fn identify(&self, identity: Option<Identity>) {
        self.command(Command::Identify(identity));
    }

    /// Shows the history list and asks the server for it.
    pub fn show_history(&self) {
        self.chat.update(|c| c.history = Some(Vec::new()));
        self.command(Command::Frame(ClientFrame::ListConversations));
    }

    /// Opens conversation `id` from the history list, or a new one (`None`).
    pub fn switch_to(&self, id: Option<Uuid>) {
        let mut frame = None;
        self.chat.update(|c| frame = Some(c.switch_to(id)));
        if let Some(frame) = frame {
            self.command(Command::Frame(frame));
        }
    }

    /// Leaves an email for the team (nobody online).
    pub fn leave_email(&self, email: &str) {
        let mut frame = None;
        self.chat.update(|c| frame = c.leave_email(email));
        if let Some(frame) = frame {
            self.command(Command::Frame(frame));
        }
    }

    /// Tells the other side whether the visitor is typing.
    pub fn typing(&self, typing: bool) {
        self.to_conversation(|conversation_id| ClientFrame::Typing {
            conversation_id,
            typing,
        });
    }

    /// "Talk to a person". Without a conversation yet, a first message starts one and the
    /// request follows its acknowledgement.
    pub fn request_human(&self) {
        let mut frame = None;
        self.chat.update(|c| frame = c.request_human());
        match frame {
            Some(frame) => self.command(Command::Frame(frame)),
            None => {
                self.send_text(i18n::t().talk_to_human_body);
            }
        }
    }
}

/// Milliseconds to wait before reconnect attempt number `attempt` (0-based): exponential,
/// capped, with "equal jitter" (half fixed, half random) so that a server restart is not
/// met by every widget at the same instant. `random` is in `[0, 1)`.
pub fn backoff_ms(attempt: u32, random: f64) -> u32 {
    let cap = BACKOFF_BASE_MS
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX_MS);
    let half = cap / 2;
    half + (f64::from(half) * random.clamp(0.0, 1.0)) as u32
}

enum Outcome {
    /// The connection ended; `welcomed` says whether it got as far as `welcome`.
    Dropped { welcomed: bool },
    /// The server will never accept this widget here (or the widget is gone): stop.
    Fatal,
    /// Connect again at once, as this person (`None`: as a guest).
    Identify(Option<Identity>),
}

/// Runs the connection for the life of the page. Waits for [`Command::Start`] first.
pub async fn run(client: Client, mut rx: UnboundedReceiver<Command>, host: web_sys::EventTarget) {
    let mut early = Vec::new();
    let mut identity = client.config.identity.clone();
    loop {
        match rx.next().await {
            Some(Command::Start) => break,
            Some(Command::Identify(who)) => identity = who,
            Some(cmd) => early.push(cmd),
            None => return,
        }
    }
    let mut attempt = 0;
    loop {
        client.status.set(Status::Connecting);
        match session(&client, &mut rx, &host, &mut early, identity.clone()).await {
            Outcome::Fatal => {
                client.status.set(Status::Unavailable);
                return;
            }
            Outcome::Dropped { welcomed } => {
                if welcomed {
                    attempt = 0;
                }
            }
            Outcome::Identify(who) => {
                if who != identity {
                    // Whoever the server finds may have other conversations: start clean.
                    if who.is_some() {
                        client.chat.update(Chat::reset);
                    }
                    identity = who;
                }
                attempt = 0;
                continue;
            }
        }
        client.status.set(Status::Offline);
        TimeoutFuture::new(backoff_ms(attempt, browser::random_unit())).await;
        attempt = attempt.saturating_add(1);
    }
}

enum Event {
    /// A text frame, or `None` when the socket closed or failed.
    In(Option<String>),
    Cmd(Option<Command>),
    Tick,
}

/// One connection, from opening the socket to losing it. Everything but the socket itself is
/// synchronous: handlers queue frames in `out`, and the loop writes them.
async fn session(
    client: &Client,
    rx: &mut UnboundedReceiver<Command>,
    host: &web_sys::EventTarget,
    early: &mut Vec<Command>,
    identity: Option<Identity>,
) -> Outcome {
    let dropped = Outcome::Dropped { welcomed: false };
    let Some(mut ws) = Socket::open(&client.config.ws_url()) else {
        return dropped;
    };
    // Writing waits for the socket to open; wait here instead, bounded, so that a server that
    // never answers cannot hang us.
    let started = browser::now() as f64;
    while ws.state() == Socket::CONNECTING {
        if browser::now() as f64 - started > CONNECT_TIMEOUT_MS {
            return dropped;
        }
        TimeoutFuture::new(50).await;
    }
    if ws.state() != Socket::OPEN {
        return dropped;
    }

    let token_key = client.config.token_key();
    let token = browser::load(&token_key);
    let (known_conversation, resume_after) = client
        .chat
        .with_untracked(|c| (c.conversation_id, c.last_seq));
    let hello = ClientFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        auth: Auth::Visitor {
            site_key: client.config.site.clone(),
            visitor_token: token.clone(),
            conversation_id: known_conversation,
            identity,
            page_url: browser::page_url(),
            locale: client
                .config
                .locale
                .clone()
                .or_else(browser::browser_locale),
        },
    });
    let mut s = Session {
        client,
        host,
        token_key,
        had_token: token.is_some(),
        known_conversation,
        resume_after,
        welcomed: false,
        sent: Vec::new(),
        out: vec![hello],
        typing_at: 0.0,
    };
    let (mut last_heard, mut last_sent) = (started, started);
    loop {
        for frame in std::mem::take(&mut s.out) {
            if let Some(text) = wire::encode(&frame) {
                if !ws.send(&text) {
                    return s.dropped();
                }
                last_sent = browser::now() as f64;
            }
        }
        let next = future::select(ws.incoming.next(), rx.next());
        let event = match future::select(next, TimeoutFuture::new(TICK_MS)).await {
            Either::Left((Either::Left((incoming, _)), _)) => Event::In(incoming.flatten()),
            Either::Left((Either::Right((cmd, _)), _)) => Event::Cmd(cmd),
            Either::Right(_) => Event::Tick,
        };
        let now = browser::now() as f64;
        if s.typing_at > 0.0 && now - s.typing_at > TYPING_FOR_MS {
            s.typing_at = 0.0;
            client.chat.update(|c| c.typing = None);
        }
        match event {
            Event::In(Some(text)) => {
                last_heard = now;
                // Frames this widget does not know (a newer server's) are skipped.
                if let Some(frame) = wire::parse(&text)
                    && let Some(outcome) = s.on_frame(frame, early)
                {
                    return outcome;
                }
            }
            Event::In(_) => return s.dropped(),
            Event::Cmd(Some(Command::Identify(who))) => return Outcome::Identify(who),
            Event::Cmd(Some(cmd)) if s.welcomed => s.command(cmd),
            Event::Cmd(Some(cmd)) => early.push(cmd),
            Event::Cmd(None) => return Outcome::Fatal,
            Event::Tick => {
                let waited_too_long = if s.welcomed {
                    now - last_heard > DEAD_AFTER_MS
                } else {
                    now - started > CONNECT_TIMEOUT_MS
                };
                if waited_too_long {
                    return s.dropped();
                }
                if s.welcomed && now - last_sent > PING_EVERY_MS {
                    s.out.push(ClientFrame::Ping);
                }
            }
        }
    }
}

/// A browser `WebSocket` whose text frames arrive on a channel (`None` once it closed or
/// failed). Closed when dropped. Written against `web_sys` directly: a general-purpose
/// wrapper (binary frames, `Sink`/`Stream` impls, error types) costs the bundle kilobytes.
struct Socket {
    ws: web_sys::WebSocket,
    incoming: UnboundedReceiver<Option<String>>,
    _handlers: [wasm_bindgen::closure::Closure<dyn FnMut(wasm_bindgen::JsValue)>; 2],
}

impl Socket {
    const CONNECTING: u16 = 0;
    const OPEN: u16 = 1;

    fn open(url: &str) -> Option<Self> {
        use wasm_bindgen::JsCast;
        use wasm_bindgen::closure::Closure;

        let ws = web_sys::WebSocket::new(url).ok()?;
        let (tx, incoming) = futures_channel::mpsc::unbounded();
        let on_message = {
            let tx = tx.clone();
            Closure::<dyn FnMut(wasm_bindgen::JsValue)>::new(move |event: wasm_bindgen::JsValue| {
                if let Some(text) = js_sys::Reflect::get(&event, &"data".into())
                    .ok()
                    .and_then(|d| d.as_string())
                {
                    let _ = tx.unbounded_send(Some(text));
                }
            })
        };
        let on_end = Closure::<dyn FnMut(wasm_bindgen::JsValue)>::new(move |_| {
            let _ = tx.unbounded_send(None);
        });
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_end.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_end.as_ref().unchecked_ref()));
        Some(Self {
            ws,
            incoming,
            _handlers: [on_message, on_end],
        })
    }

    fn state(&self) -> u16 {
        self.ws.ready_state()
    }

    /// Queues a text frame; false when the socket is not open.
    fn send(&self, text: &str) -> bool {
        self.state() == Self::OPEN && self.ws.send_with_str(text).is_ok()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close();
    }
}

/// One connection's bookkeeping.
struct Session<'a> {
    client: &'a Client,
    host: &'a web_sys::EventTarget,
    token_key: String,
    had_token: bool,
    /// The conversation and last sequence number known before this connection.
    known_conversation: Option<Uuid>,
    resume_after: u64,
    welcomed: bool,
    /// Client message ids delivered on this connection, so a message is not sent twice.
    sent: Vec<String>,
    /// Frames to write next.
    out: Vec<ClientFrame>,
    /// When the last `typing` frame arrived (0: none showing).
    typing_at: f64,
}

impl Session<'_> {
    fn dropped(&self) -> Outcome {
        Outcome::Dropped {
            welcomed: self.welcomed,
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Start | Command::Identify(_) => {}
            Command::Deliver(id) => self.deliver(id),
            Command::Frame(frame) => self.out.push(frame),
        }
    }

    /// Sends the pending entry `id` unless this connection already did.
    fn deliver(&mut self, id: String) {
        if self.sent.contains(&id) {
            return;
        }
        if let Some(frame) = self.client.chat.with_untracked(|c| c.frame_for(&id)) {
            self.out.push(frame);
            self.sent.push(id);
        }
    }

    /// Handles a frame; `Some` ends the connection.
    fn on_frame(&mut self, frame: ServerFrame, early: &mut Vec<Command>) -> Option<Outcome> {
        let chat = self.client.chat;
        if !self.welcomed {
            match frame {
                ServerFrame::Welcome(welcome) => {
                    let mut keep = None;
                    chat.update(|c| keep = c.welcome(welcome));
                    if let Some(token) = keep {
                        browser::store(&self.token_key, &token);
                    }
                    self.welcomed = true;
                    self.client.status.set(Status::Online);
                    self.catch_up(early);
                }
                ServerFrame::Error(err) => {
                    let fatal = matches!(
                        err.code,
                        ErrorCode::UnknownSite
                            | ErrorCode::OriginNotAllowed
                            | ErrorCode::UnsupportedVersion
                    );
                    let refused_identity = err.code == ErrorCode::IdentityInvalid;
                    if !fatal && self.had_token && err.code == ErrorCode::Unauthorized {
                        // A token from another server, or an expired one: start afresh.
                        browser::forget(&self.token_key);
                    } else {
                        chat.update(|c| {
                            c.apply(ServerFrame::Error(err));
                        });
                    }
                    if refused_identity {
                        // Said and shown; carry on as a guest.
                        return Some(Outcome::Identify(None));
                    }
                    return Some(if fatal {
                        Outcome::Fatal
                    } else {
                        self.dropped()
                    });
                }
                _ => {}
            }
            return None;
        }
        match &frame {
            // A refused message may be retried on this connection.
            ServerFrame::Error(ErrorBody {
                client_msg_id: Some(id),
                ..
            }) => self.sent.retain(|s| s != id),
            ServerFrame::Typing { .. } => self.typing_at = browser::now() as f64,
            // Something new from the assistant or an agent.
            ServerFrame::Message(m)
                if m.author != Author::Visitor && chat.with_untracked(|c| m.seq > c.last_seq) =>
            {
                browser::emit(self.host, "message", Some(m.author.kind()));
                if !self.client.open.get_untracked() {
                    self.client.unread.update(|n| *n += 1);
                }
            }
            _ => {}
        }
        chat.update(|c| self.out.extend(c.apply(frame)));
        None
    }

    /// After (re)connecting: the entries missed while away, then everything not yet
    /// acknowledged, then what the visitor did before the connection was up.
    fn catch_up(&mut self, early: &mut Vec<Command>) {
        let conversation = self.client.chat.with_untracked(|c| c.conversation_id);
        if let Some(conversation_id) = self.known_conversation
            && conversation == self.known_conversation
            && self.resume_after > 0
        {
            self.out.push(ClientFrame::Resume {
                conversation_id,
                after_seq: self.resume_after,
            });
        }
        for id in self.client.chat.with_untracked(Chat::unacked) {
            self.deliver(id);
        }
        for cmd in std::mem::take(early) {
            self.command(cmd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        assert_eq!(backoff_ms(0, 0.0), 250);
        assert_eq!(backoff_ms(0, 0.999_999), 499);
        assert_eq!(backoff_ms(3, 0.0), 2_000);
        assert!((2_000..4_000).contains(&backoff_ms(3, 0.5)));
        assert_eq!(backoff_ms(10, 0.0), 15_000);
        assert!(backoff_ms(u32::MAX, 1.0) <= BACKOFF_MAX_MS);
    }
}
