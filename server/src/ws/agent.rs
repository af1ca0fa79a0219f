//! The WebSocket session of an agent (or owner): the site's inbox live, any conversation
//! watched live (including those the AI is handling), and the agent's actions.
//!
//! The inbox is the connection's views of [`crate::live::inbox`]: on connect the legacy view
//! (the first 200 open conversations as `conversation` frames, for clients that never ask
//! for one); an `inbox` frame asks for a filter's first or next page, and from then on only
//! that view's changes arrive (`inbox_line`, `inbox_leave`, `inbox_counts`), taken from the
//! inbox when it wakes the connection and written together with the other live frames.

use std::collections::HashMap;

use axum::extract::ws::Message as WsMessage;
use futures_util::{Sink, SinkExt, Stream};
use nexus_shared::{
    ClientFrame, ErrorBody, ErrorCode, PROTOCOL_VERSION, Presence, ServerFrame, Session, SiteInfo,
    Welcome, limits,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::AppState;
use crate::conversation::agent;
use crate::live::hub::Frame;
use crate::live::inbox::InboxSession;
use crate::live::presence;
use crate::model::remote::SessionEnd;
use crate::model::{Committed, User, now_ms};
use crate::store::store_error_body;
use crate::ws::driver::{Connection, End, Follower, drive, encode, error_frame, state_frame};

/// What the forwarding tasks hand to the session.
enum Live {
    Frame(Frame),
    /// The session fell behind on this conversation (or on the site feed, `None`).
    Lagged(Option<Uuid>),
    /// A reply stored by the session's writer (or why it was not).
    Replied(Box<Replied>),
}

/// A reply's conversation, client id and what storing it gave.
struct Replied(Uuid, String, Result<Committed, ErrorBody>);

/// A reply waiting for the session's writer.
struct Reply {
    conversation_id: Uuid,
    client_msg_id: String,
    body: String,
}

/// Replies waiting for the writer, at most (the frame rate limit keeps it far lower).
const REPLY_QUEUE: usize = 64;

/// Bounded: a slow agent connection cannot grow server memory; its forwarders wait, then lag.
const LIVE_QUEUE: usize = 256;
/// Queued live events turned into frames and written together, at most.
const LIVE_BATCH: usize = 64;

/// How often an open agent connection re-checks its session in the store (an expired
/// session, or one ended by a process that cannot tell this one, e.g. `nexus-flow user passwd`
/// on SQLite). Logouts and password changes on any instance arrive at once through the hub.
const SESSION_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) struct AgentSession {
    user: User,
    /// The SHA-256 of the session token the connection said hello with.
    token_hash: String,
    ended: broadcast::Receiver<std::sync::Arc<SessionEnd>>,
    recheck: tokio::time::Interval,
    /// The session ended: every frame is refused and the connection closes.
    closing: bool,
    live_tx: mpsc::Sender<Live>,
    live_rx: mpsc::Receiver<Live>,
    site_feed: JoinHandle<()>,
    /// The connection's inbox views.
    inbox: InboxSession,
    /// The legacy view's lines, sent right after `welcome`.
    first: Vec<ServerFrame>,
    watches: HashMap<Uuid, JoinHandle<()>>,
    follower: Follower,
    replies: mpsc::Sender<Reply>,
    writer: JoinHandle<()>,
}

/// Stores the session's replies one after the other, in the order they were sent, while the
/// session goes on delivering live frames: waiting for a commit does not hold up what the
/// agent receives.
fn writer(
    state: AppState,
    user: User,
    mut replies: mpsc::Receiver<Reply>,
    tx: mpsc::Sender<Live>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(reply) = replies.recv().await {
            let result = agent::reply(
                &state,
                &user,
                reply.conversation_id,
                &reply.client_msg_id,
                &reply.body,
            )
            .await;
            let done = Live::Replied(Box::new(Replied(
                reply.conversation_id,
                reply.client_msg_id,
                result,
            )));
            if tx.send(done).await.is_err() {
                return;
            }
        }
    })
}

fn forward(
    mut rx: tokio::sync::broadcast::Receiver<Frame>,
    tx: mpsc::Sender<Live>,
    conversation: Option<Uuid>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let live = match rx.recv().await {
                Ok(frame) => Live::Frame(frame),
                Err(RecvError::Lagged(_)) => Live::Lagged(conversation),
                Err(RecvError::Closed) => return,
            };
            if tx.send(live).await.is_err() {
                return;
            }
        }
    })
}

impl AgentSession {
    /// `ended` was subscribed before the session was checked, so an end between the check
    /// and now is not missed.
    pub(crate) async fn open(
        state: &AppState,
        user: User,
        token_hash: String,
        ended: broadcast::Receiver<std::sync::Arc<SessionEnd>>,
    ) -> Result<(Self, Welcome), ErrorBody> {
        let site = state
            .store
            .site(user.site_id)
            .await
            .map_err(|e| store_error_body(&e))?
            .ok_or_else(|| ErrorBody::new(ErrorCode::UnknownSite, "The site no longer exists."))?;
        let (inbox, first) = state
            .hub
            .inbox()
            .open(state.store.clone(), site.id, user.id)
            .await?;
        let (live_tx, live_rx) = mpsc::channel(LIVE_QUEUE);
        let (replies, queued) = mpsc::channel(REPLY_QUEUE);
        let writer = writer(state.clone(), user.clone(), queued, live_tx.clone());
        let site_feed = forward(state.hub.subscribe_site(site.id), live_tx.clone(), None);
        let status = state.presence.connect(site.id, &user.agent_ref());
        presence::start_idle_sweeper(state);
        presence::publish_presence(state, site.id, &user.agent_ref(), status);
        let welcome = Welcome {
            protocol_version: PROTOCOL_VERSION,
            session: Session::Agent {
                agent: user.agent_ref(),
                role: user.role,
            },
            site: Some(SiteInfo {
                name: site.name.clone(),
                assistant_name: site.settings.assistant_name.clone(),
                greeting: site.settings.greeting.clone(),
                color: site.settings.color.clone(),
                autonomy: site.settings.autonomy,
                agents_online: state.presence.online(site.id),
            }),
            conversation: None,
        };
        let mut recheck = tokio::time::interval_at(
            tokio::time::Instant::now() + SESSION_RECHECK,
            SESSION_RECHECK,
        );
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok((
            Self {
                user,
                token_hash,
                ended,
                recheck,
                closing: false,
                live_tx,
                live_rx,
                site_feed,
                inbox,
                first,
                watches: HashMap::new(),
                follower: Follower::default(),
                replies,
                writer,
            },
            welcome,
        ))
    }

    pub(crate) async fn run<Tx, Rx, E>(mut self, state: &AppState, tx: &mut Tx, rx: &mut Rx) -> End
    where
        Tx: Sink<WsMessage> + Unpin,
        Rx: Stream<Item = Result<WsMessage, E>> + Unpin,
        E: std::fmt::Display,
    {
        let end = self.run_inner(state, tx, rx).await;
        self.site_feed.abort();
        self.writer.abort();
        for (_, task) in self.watches.drain() {
            task.abort();
        }
        let status = state.presence.disconnect(self.user.site_id, self.user.id);
        presence::publish_presence(state, self.user.site_id, &self.user.agent_ref(), status);
        end
    }

    async fn run_inner<Tx, Rx, E>(&mut self, state: &AppState, tx: &mut Tx, rx: &mut Rx) -> End
    where
        Tx: Sink<WsMessage> + Unpin,
        Rx: Stream<Item = Result<WsMessage, E>> + Unpin,
        E: std::fmt::Display,
    {
        for frame in std::mem::take(&mut self.first) {
            if tx.feed(encode(&frame)).await.is_err() {
                return End::Gone;
            }
        }
        if tx.flush().await.is_err() {
            return End::Gone;
        }
        drive(self, state, tx, rx).await
    }

    /// Starts following a conversation live; returns its recent history and state.
    async fn watch(&mut self, state: &AppState, id: Uuid) -> Result<Vec<ServerFrame>, ErrorBody> {
        let conversation = agent::site_conversation(state, &self.user, id).await?;
        if !self.watches.contains_key(&id) {
            let task = forward(
                state.hub.subscribe_conversation(id),
                self.live_tx.clone(),
                Some(id),
            );
            self.watches.insert(id, task);
        }
        let messages = state
            .store
            .last_messages(id, limits::DEFAULT_HISTORY_PAGE)
            .await
            .map_err(|e| store_error_body(&e))?;
        let first = messages
            .first()
            .map_or(conversation.last_seq + 1, |m| m.seq);
        self.follower
            .follow(id, messages.last().map_or(0, |m| m.seq));
        Ok(vec![
            ServerFrame::History {
                conversation_id: id,
                messages,
                has_more: first > 1,
            },
            state_frame(&conversation),
        ])
    }

    async fn handle_frame(
        &mut self,
        state: &AppState,
        frame: ClientFrame,
    ) -> Result<Vec<ServerFrame>, ErrorBody> {
        let user = self.user.clone();
        presence::touch(state, &user);
        match frame {
            ClientFrame::Watch { conversation_id } => self.watch(state, conversation_id).await,
            ClientFrame::Unwatch { conversation_id } => {
                if let Some(task) = self.watches.remove(&conversation_id) {
                    task.abort();
                }
                self.follower.unfollow(conversation_id);
                Ok(vec![])
            }
            ClientFrame::TakeOver { conversation_id } => {
                let mut out = self.watch_if_needed(state, conversation_id).await?;
                let committed = agent::take_over(state, &user, conversation_id).await?;
                out.push(state_frame(&committed.conversation));
                Ok(out)
            }
            ClientFrame::HandBack { conversation_id } => {
                let committed = agent::hand_back(state, &user, conversation_id).await?;
                Ok(vec![state_frame(&committed.conversation)])
            }
            ClientFrame::Transfer {
                conversation_id,
                to_agent,
            } => {
                let committed = agent::transfer(state, &user, conversation_id, to_agent).await?;
                Ok(vec![state_frame(&committed.conversation)])
            }
            ClientFrame::Resolve {
                conversation_id,
                teach,
            } => {
                let committed = agent::resolve(state, &user, conversation_id, teach).await?;
                Ok(vec![state_frame(&committed.conversation)])
            }
            ClientFrame::Send {
                conversation_id: Some(conversation_id),
                client_msg_id,
                body,
            } => {
                let out = self.watch_if_needed(state, conversation_id).await?;
                // Stored by the writer; the ack follows when it is (see `Live::Replied`).
                let reply = Reply {
                    conversation_id,
                    client_msg_id: client_msg_id.clone(),
                    body,
                };
                if self.replies.try_send(reply).is_err() {
                    return Err(ErrorBody::new(
                        ErrorCode::RateLimited,
                        "Too many replies waiting; slow down.",
                    )
                    .for_message(client_msg_id));
                }
                Ok(out)
            }
            ClientFrame::Send { client_msg_id, .. } => Err(ErrorBody::new(
                ErrorCode::Validation,
                "Agents must name the conversation they write to.",
            )
            .for_message(client_msg_id)),
            ClientFrame::Note {
                conversation_id,
                client_msg_id,
                body,
            } => {
                agent::note(state, &user, conversation_id, &client_msg_id, &body).await?;
                Ok(vec![])
            }
            ClientFrame::Typing {
                conversation_id,
                typing,
            } => {
                agent::site_conversation(state, &user, conversation_id).await?;
                state.hub.publish_conversation(
                    conversation_id,
                    ServerFrame::Typing {
                        conversation_id,
                        author: nexus_shared::Author::Agent(user.agent_ref()),
                        typing,
                    },
                );
                Ok(vec![])
            }
            ClientFrame::SetPresence { status } => {
                let status = if status == Presence::Offline {
                    Presence::Away
                } else {
                    status
                };
                state.presence.set(user.site_id, user.id, status);
                presence::publish_presence(state, user.site_id, &user.agent_ref(), status);
                Ok(vec![])
            }
            ClientFrame::ReviewDraft {
                conversation_id,
                draft_id,
                decision,
            } => {
                agent::review_draft(state, &user, conversation_id, draft_id, decision).await?;
                Ok(vec![])
            }
            ClientFrame::Inbox {
                filter,
                limit,
                after,
            } => self.inbox.page(filter, limit, after),
            ClientFrame::Ping => Ok(vec![ServerFrame::Pong]),
            ClientFrame::Hello(_) => Err(ErrorBody::new(
                ErrorCode::BadFrame,
                "Already said hello on this connection.",
            )),
            _ => Err(ErrorBody::new(
                ErrorCode::Forbidden,
                "This is a visitor action.",
            )),
        }
    }

    /// A reply the writer stored: its entries not sent yet, then the ack (or the error).
    async fn replied(
        &mut self,
        state: &AppState,
        conversation_id: Uuid,
        client_msg_id: String,
        result: Result<Committed, ErrorBody>,
    ) -> Vec<ServerFrame> {
        let committed = match result {
            Ok(committed) => committed,
            Err(e) => return vec![error_frame(e)],
        };
        let (message, duplicate) = match committed.duplicate {
            Some(m) => (m, true),
            None => match committed.messages.last() {
                Some(m) => (m.clone(), false),
                None => {
                    return vec![error_frame(ErrorBody::new(
                        ErrorCode::Internal,
                        "The message was not stored.",
                    ))];
                }
            },
        };
        let mut out = self
            .follower
            .after_commit(state, conversation_id, &committed.messages)
            .await;
        out.push(ServerFrame::Ack {
            client_msg_id,
            conversation_id,
            message_id: message.id,
            seq: message.seq,
            duplicate,
        });
        out
    }

    async fn watch_if_needed(
        &mut self,
        state: &AppState,
        id: Uuid,
    ) -> Result<Vec<ServerFrame>, ErrorBody> {
        if self.watches.contains_key(&id) {
            Ok(vec![])
        } else {
            self.watch(state, id).await
        }
    }
}

fn session_ended() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::Unauthorized,
        "Your session has ended (logged out, expired or password changed); please log in again.",
    )
}

impl Connection for AgentSession {
    async fn handle(
        &mut self,
        state: &AppState,
        frame: ClientFrame,
    ) -> Result<Vec<ServerFrame>, ErrorBody> {
        // Every action checks the session first: nothing is done under one that has ended.
        if self.closing || !self.session_valid(state).await {
            self.closing = true;
            return Err(session_ended());
        }
        self.handle_frame(state, frame).await
    }

    async fn live(&mut self, state: &AppState) -> Option<Vec<ServerFrame>> {
        // The waiting is inline (it is what an idle connection does); the work on the frames
        // is boxed, so it takes heap only while it runs (see `ws::drive`).
        let first = loop {
            tokio::select! {
                first = self.live_rx.recv() => break first?,
                () = self.inbox.notified() => return Some(self.inbox.take()),
                ended = self.ended.recv() => {
                    let ends_this = match ended {
                        Ok(end) => end.ends(&self.token_hash, self.user.id),
                        // Fell behind on the ends: ask the store.
                        Err(RecvError::Lagged(_)) => !self.session_valid(state).await,
                        Err(RecvError::Closed) => false,
                    };
                    if ends_this {
                        return Some(self.end_session());
                    }
                }
                _ = self.recheck.tick() => {
                    if !self.session_valid(state).await {
                        return Some(self.end_session());
                    }
                }
            }
        };
        Some(Box::pin(self.take_live(state, first)).await)
    }

    fn closing(&self) -> Option<(u16, &'static str)> {
        self.closing.then_some((1008, "session ended"))
    }
}

impl AgentSession {
    /// Is the connection's session still in the store and unexpired? A store error keeps the
    /// connection (the database may be away for a moment).
    async fn session_valid(&self, state: &AppState) -> bool {
        match state.store.session_user(&self.token_hash, now_ms()).await {
            Ok(user) => user.is_some_and(|u| u.id == self.user.id),
            Err(e) => {
                tracing::debug!(error = %e, "cannot re-check an agent session");
                true
            }
        }
    }

    /// Marks the session ended; the frame that tells the agent, sent before the close.
    fn end_session(&mut self) -> Vec<ServerFrame> {
        self.closing = true;
        vec![error_frame(session_ended())]
    }

    /// The frames for `first` and for whatever else is already queued (at most
    /// [`LIVE_BATCH`] in all), in order: `ws::drive` writes them with one flush, so a busy
    /// agent's frames go out in a few writes instead of one write each.
    async fn take_live(&mut self, state: &AppState, first: Live) -> Vec<ServerFrame> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(live) = next.take() {
            out.extend(self.on_live(state, live).await);
            taken += 1;
            if taken < LIVE_BATCH {
                next = self.live_rx.try_recv().ok();
            }
        }
        // The inbox's deltas ready by now leave in the same write.
        out.extend(self.inbox.take());
        out
    }

    async fn on_live(&mut self, state: &AppState, live: Live) -> Vec<ServerFrame> {
        match live {
            Live::Frame(frame) => self.follower.forward(state, &frame).await,
            Live::Lagged(Some(id)) => self.follower.catch_up(state, id).await,
            // Missed site frames: the inbox views go whole (with the next take).
            Live::Lagged(None) => {
                self.inbox.resync();
                vec![]
            }
            Live::Replied(replied) => {
                let Replied(conversation_id, client_msg_id, result) = *replied;
                self.replied(state, conversation_id, client_msg_id, result)
                    .await
            }
        }
    }
}
