//! A visitor's session: `hello` with the site key, the visitor token and an optional signed
//! identity; then sending, choosing, escalating, feedback and email, each through
//! [`crate::conversation::visitor`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use axum::extract::ws::Message as WsMessage;
use futures_util::{Sink, Stream};
use nexus_shared::{
    ClientFrame, ConversationView, ErrorBody, ErrorCode, Identity, Message, PROTOCOL_VERSION,
    ServerFrame, Session, SiteInfo, Welcome, limits,
};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::AppState;
use crate::conversation::visitor;
use crate::live::hub::Frame;
use crate::model::{Site, Visitor};
use crate::store::store_error_body;
use crate::ws::driver::{Connection, End, Follower, drive, state_frame};

/// History sent with `welcome`.
const WELCOME_HISTORY: u32 = limits::DEFAULT_HISTORY_PAGE;

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

pub(crate) struct VisitorSession {
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
    pub(crate) async fn open(
        state: &AppState,
        site: Arc<Site>,
        token: Option<String>,
        conversation_id: Option<Uuid>,
        identity: Option<Identity>,
        page_url: Option<String>,
        locale: Option<String>,
    ) -> Result<(Self, Welcome), ErrorBody> {
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
            Some(id) => Some(visitor::visitor_conversation(state, &visitor, id).await?),
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
        Ok((session, welcome))
    }

    pub(crate) fn follow(&mut self, state: &AppState, conversation_id: Uuid) {
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
    pub(crate) async fn run<Tx, Rx, E>(
        mut self: Box<Self>,
        state: &AppState,
        tx: &mut Tx,
        rx: &mut Rx,
    ) -> End
    where
        Tx: Sink<WsMessage> + Unpin,
        Rx: Stream<Item = Result<WsMessage, E>> + Unpin,
        E: std::fmt::Display,
    {
        drive(&mut *self, state, tx, rx).await
    }

    pub(crate) async fn catch_up(&mut self, state: &AppState) -> Vec<ServerFrame> {
        match self.conversation {
            Some(id) => self.follower.catch_up(state, id).await,
            None => vec![],
        }
    }

    pub(crate) async fn handle_frame(
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
                let sent = visitor::visitor_send(
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
                let sent = visitor::visitor_choose(
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
                visitor::visitor_conversation(state, &self.visitor, conversation_id).await?;
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
                    visitor::visitor_conversation(state, &self.visitor, conversation_id).await?;
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
                    visitor::visitor_conversation(state, &self.visitor, conversation_id).await?;
                self.follow(state, conversation.id);
                let conversation = match visitor::escalate(
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
                visitor::visitor_conversation(state, &self.visitor, conversation_id).await?;
                crate::conversation::learn::feedback(
                    state,
                    &self.site,
                    conversation_id,
                    message_id,
                    helpful,
                )
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
                visitor::visitor_conversation(state, &self.visitor, conversation_id).await?;
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
                visitor::leave_email(state, &self.visitor, conversation_id, &email).await?;
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
    pub(crate) async fn after_post(
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

/// How many of a visitor's conversations `list_conversations` returns.
const VISITOR_CONVERSATIONS: u32 = 20;
/// Characters of the last message shown as a conversation's preview.
const PREVIEW_CHARS: usize = 140;

/// The `conversations` frame: the visitor's own conversations, newest first, each with its
/// last message as the preview.
pub(crate) async fn visitor_conversations(
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
