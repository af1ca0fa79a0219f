//! The visitor's connection: what its `hello` says, resuming after the last sequence number
//! seen, and re-sending unacknowledged messages under their original client message id (the
//! server stores them once). The socket, reconnects and the dead-peer check are
//! [`crate::link`]'s.

use std::sync::Arc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;
use leptos::prelude::*;
use nexus_shared::{
    Auth, Author, ClientFrame, ErrorBody, ErrorCode, Hello, Identity, PROTOCOL_VERSION,
    ServerFrame, Welcome, validate_body,
};
use uuid::Uuid;

use crate::browser;
use crate::config::Config;
use crate::i18n;
use crate::link::{self, End, Status};
use crate::model::{Chat, Notice};
use crate::wire;

/// A typing indicator nobody turned off goes after this long (checked every tick or frame).
const TYPING_FOR_MS: f64 = 10_000.0;

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
    let status = client.status;
    let visitor = Visitor {
        token_key: client.config.token_key(),
        client,
        host,
        identity,
        had_token: false,
        known_conversation: None,
        resume_after: 0,
        sent: Vec::new(),
        typing_at: 0.0,
    };
    link::run(visitor, status, rx, early).await;
    // The server will never accept this widget here (or the widget is gone).
    status.set(Status::Unavailable);
}

/// The visitor's side of the connection: who says hello, and per connection what to resume
/// and what was already delivered.
struct Visitor {
    client: Client,
    host: web_sys::EventTarget,
    /// Who the next `hello` says the visitor is (`None`: a guest).
    identity: Option<Identity>,
    token_key: String,
    had_token: bool,
    /// The conversation and last sequence number known before this connection.
    known_conversation: Option<Uuid>,
    resume_after: u64,
    /// Client message ids delivered on this connection, so a message is not sent twice.
    sent: Vec<String>,
    /// When the last `typing` frame arrived (0: none showing).
    typing_at: f64,
}

impl Visitor {
    /// The next connection says hello as `who` (`None`: as a guest).
    fn reidentify(&mut self, who: Option<Identity>) {
        if who != self.identity {
            // Whoever the server finds may have other conversations: start clean.
            if who.is_some() {
                self.client.chat.update(Chat::reset);
            }
            self.identity = who;
        }
    }

    /// Sends the pending entry `id` unless this connection already did.
    fn deliver(&mut self, id: String, out: &mut Vec<ClientFrame>) {
        if self.sent.contains(&id) {
            return;
        }
        if let Some(frame) = self.client.chat.with_untracked(|c| c.frame_for(&id)) {
            out.push(frame);
            self.sent.push(id);
        }
    }

    /// After (re)connecting: the entries missed while away, then everything not yet
    /// acknowledged. (What the visitor did before the connection was up follows, from the
    /// loop.)
    fn catch_up(&mut self, out: &mut Vec<ClientFrame>) {
        let conversation = self.client.chat.with_untracked(|c| c.conversation_id);
        if let Some(conversation_id) = self.known_conversation
            && conversation == self.known_conversation
            && self.resume_after > 0
        {
            out.push(ClientFrame::Resume {
                conversation_id,
                after_seq: self.resume_after,
            });
        }
        for id in self.client.chat.with_untracked(Chat::unacked) {
            self.deliver(id, out);
        }
    }
}

impl link::Peer for Visitor {
    type Command = Command;

    fn url(&self) -> String {
        self.client.config.ws_url()
    }

    fn parse(text: &str) -> Option<ServerFrame> {
        wire::parse(text)
    }

    fn encode(frame: &ClientFrame) -> Option<String> {
        wire::encode(frame)
    }

    fn hello(&mut self) -> ClientFrame {
        let token = browser::load(&self.token_key);
        let (known_conversation, resume_after) = self
            .client
            .chat
            .with_untracked(|c| (c.conversation_id, c.last_seq));
        self.had_token = token.is_some();
        self.known_conversation = known_conversation;
        self.resume_after = resume_after;
        self.sent.clear();
        self.typing_at = 0.0;
        let config = &self.client.config;
        ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            auth: Auth::Visitor {
                site_key: config.site.clone(),
                visitor_token: token,
                conversation_id: known_conversation,
                identity: self.identity.clone(),
                page_url: browser::page_url(),
                locale: config.locale.clone().or_else(browser::browser_locale),
            },
        })
    }

    fn welcome(&mut self, welcome: Welcome, out: &mut Vec<ClientFrame>) {
        let mut keep = None;
        self.client.chat.update(|c| keep = c.welcome(welcome));
        if let Some(token) = keep {
            browser::store(&self.token_key, &token);
        }
        self.catch_up(out);
    }

    fn refused(&mut self, err: ErrorBody) -> End {
        let fatal = matches!(
            err.code,
            ErrorCode::UnknownSite | ErrorCode::OriginNotAllowed | ErrorCode::UnsupportedVersion
        );
        let refused_identity = err.code == ErrorCode::IdentityInvalid;
        if !fatal && self.had_token && err.code == ErrorCode::Unauthorized {
            // A token from another server, or an expired one: start afresh.
            browser::forget(&self.token_key);
        } else {
            self.client.chat.update(|c| {
                c.apply(ServerFrame::Error(err));
            });
        }
        if refused_identity {
            // Said and shown; carry on as a guest (nothing to reset for one).
            self.identity = None;
            return End::Restart;
        }
        if fatal { End::Stop } else { End::Dropped }
    }

    fn frame(&mut self, frame: ServerFrame, out: &mut Vec<ClientFrame>) {
        let chat = self.client.chat;
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
                browser::emit(&self.host, "message", Some(m.author.kind()));
                if !self.client.open.get_untracked() {
                    self.client.unread.update(|n| *n += 1);
                }
            }
            _ => {}
        }
        chat.update(|c| out.extend(c.apply(frame)));
    }

    fn command(&mut self, cmd: Command, out: &mut Vec<ClientFrame>) {
        match cmd {
            Command::Start | Command::Identify(_) => {}
            Command::Deliver(id) => self.deliver(id, out),
            Command::Frame(frame) => out.push(frame),
        }
    }

    /// `identify` connects again at once, as that person.
    fn screen(&mut self, cmd: Command) -> Result<Command, End> {
        match cmd {
            Command::Identify(who) => {
                self.reidentify(who);
                Err(End::Restart)
            }
            cmd => Ok(cmd),
        }
    }

    fn wake(&mut self, now: f64) {
        if self.typing_at > 0.0 && now - self.typing_at > TYPING_FOR_MS {
            self.typing_at = 0.0;
            self.client.chat.update(|c| c.typing = None);
        }
    }
}
