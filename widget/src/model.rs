//! What the visitor sees, as plain data: the timeline, the conversation's state and the
//! messages still on their way.
//!
//! [`Chat`] knows nothing about the DOM or the socket. The connection feeds it
//! [`ServerFrame`]s and sends the [`ClientFrame`]s it asks for; the view renders it. That keeps
//! the rules (deduplication, acks, state changes) testable natively with `cargo test`.

use nexus_shared::{
    AgentRef, Author, Choice, ClientFrame, ConversationState, ConversationSummary,
    ConversationView, ErrorBody, HandoffReason, Message, Millis, ServerFrame, SiteInfo, Transition,
    Welcome,
};
use uuid::Uuid;

use crate::i18n;

/// Where a message the visitor wrote stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Shown, not yet stored by the server (sent, or waiting for the connection).
    Pending,
    /// Stored by the server.
    Sent,
    /// The server refused it; the visitor may retry.
    Failed,
}

/// What a pending visitor entry sends when (re)delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Text,
    /// A choice of a clarifying question: the question's message id and the choice id.
    Choice {
        message_id: Uuid,
        choice_id: String,
    },
}

/// One bubble of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Stable key for the view: the client message id when there is one, else the message id.
    pub key: String,
    pub id: Option<Uuid>,
    pub seq: Option<u64>,
    pub client_msg_id: Option<String>,
    pub author: Author,
    pub body: String,
    pub created_at: Millis,
    /// The title of the knowledge-base entry an AI answer comes from.
    pub source: Option<String>,
    /// Its link: http(s) or a path on the site only (never `javascript:` and the like).
    pub link: Option<String>,
    pub choices: Vec<Choice>,
    /// The visitor's own messages only.
    pub delivery: Delivery,
    pub outgoing: Outgoing,
}

impl Entry {
    fn from_message(m: Message) -> Self {
        let key = m
            .client_msg_id
            .clone()
            .unwrap_or_else(|| crate::wire::uuid_string(&m.id));
        Self {
            key,
            id: Some(m.id),
            seq: Some(m.seq),
            client_msg_id: m.client_msg_id,
            author: m.author,
            body: m.body,
            created_at: m.created_at,
            link: m.sources.first().and_then(|s| s.url.clone()).filter(|u| {
                u.starts_with("https://")
                    || u.starts_with("http://")
                    || (u.starts_with('/') && !u.starts_with("//"))
            }),
            source: m.sources.into_iter().next().map(|s| s.title),
            choices: m.choices,
            delivery: Delivery::Sent,
            outgoing: Outgoing::Text,
        }
    }
}

/// An error or notice shown above the composer, in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
}

/// The visitor's side of one conversation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chat {
    pub conversation_id: Option<Uuid>,
    /// Highest sequence number received in a timeline entry; `resume` continues after it.
    pub last_seq: u64,
    pub state: Option<ConversationState>,
    pub assignee: Option<AgentRef>,
    pub reason: Option<HandoffReason>,
    pub queue_position: Option<u32>,
    pub site: Option<SiteInfo>,
    pub entries: Vec<Entry>,
    pub notice: Option<Notice>,
    /// "We'll be back at 9:00"-style message from an `offline` frame.
    pub offline_note: Option<String>,
    /// The address the visitor left after an `offline` frame, once sent.
    pub email_left: Option<String>,
    /// The AI's reply as produced so far (`streaming` frames), until its message arrives.
    pub streaming: Option<String>,
    /// The history list, while it is on screen (empty until the server answers).
    pub history: Option<Vec<ConversationSummary>>,
    /// Someone other than the visitor is typing.
    pub typing: Option<Author>,
    /// Decided on the first `welcome`: the conversation was empty, so the greeting is shown.
    pub show_greeting: Option<bool>,
    /// The visitor asked for a person before a conversation existed: ask once the first
    /// message is acknowledged.
    pub human_requested: bool,
    /// The sequence number the current `state` is known to be valid at: state changes recorded
    /// in older timeline entries (replayed by `resume`) must not undo it.
    state_seq: u64,
}

impl Chat {
    /// The conversation state as the visitor sees it (a conversation not started yet is the
    /// AI's).
    pub fn state(&self) -> ConversationState {
        self.state.unwrap_or(ConversationState::Ai)
    }

    /// What the panel shows besides the timeline, as the panel's `data-flags` tokens: the
    /// stylesheet shows and hides the parts with them (one reactive attribute instead of
    /// one per part).
    pub fn flags(&self) -> String {
        let on = [
            (self.show_greeting == Some(true), "greeting"),
            (self.streaming.is_some(), "streaming"),
            (self.offline_note.is_some(), "offline"),
            (
                self.offline_note.is_some() && self.email_left.is_none(),
                "ask-email",
            ),
            (self.email_left.is_some(), "email-left"),
            (self.typing.is_some(), "typing"),
            (self.state() == ConversationState::Resolved, "resolved"),
            (self.notice.is_some(), "notice"),
            (self.history.is_some(), "history"),
        ];
        let mut flags = String::new();
        for (_, name) in on.iter().filter(|(set, _)| *set) {
            flags.push_str(name);
            flags.push(' ');
        }
        flags
    }

    /// The assistant's name, as the site calls it.
    pub fn assistant_name(&self) -> &str {
        self.site
            .as_ref()
            .map_or(i18n::t().default_assistant, |s| s.assistant_name.as_str())
    }

    /// The greeting: the page's (`data-greeting`), else the site's.
    pub fn greeting<'a>(&'a self, page: Option<&'a str>) -> &'a str {
        page.or(self.site.as_ref().map(|s| s.greeting.as_str()))
            .unwrap_or(i18n::t().default_greeting)
    }

    /// Applies `welcome`. Returns the visitor token to keep.
    pub fn welcome(&mut self, welcome: Welcome) -> Option<String> {
        let nexus_shared::Session::Visitor { visitor_token } = welcome.session else {
            return None;
        };
        if let Some(site) = welcome.site {
            self.site = Some(site);
        }
        match welcome.conversation {
            Some(view) => self.open_view(view),
            None => {
                if self.show_greeting.is_none() {
                    self.show_greeting = Some(self.entries.is_empty());
                }
            }
        }
        Some(visitor_token)
    }

    fn open_view(&mut self, view: ConversationView) {
        if self.conversation_id.is_some_and(|id| id != view.id) {
            // Another conversation than the one on screen: keep only what is still unsent.
            self.entries.retain(|e| e.seq.is_none());
            self.last_seq = 0;
            self.state_seq = 0;
        }
        self.conversation_id = Some(view.id);
        if self.show_greeting.is_none() {
            self.show_greeting = Some(view.messages.is_empty() && self.entries.is_empty());
        }
        for m in view.messages {
            self.upsert(m);
        }
        self.state = Some(view.state);
        self.assignee = view.assignee;
        self.state_seq = self.state_seq.max(view.last_seq);
        if view.state != ConversationState::Waiting {
            self.queue_position = None;
            self.reason = None;
        }
    }

    /// Forgets the conversation on screen (another person signed in), keeping the site, the
    /// notice and what is still unsent.
    pub fn reset(&mut self) {
        self.entries.retain(|e| e.seq.is_none());
        self.conversation_id = None;
        self.last_seq = 0;
        self.state_seq = 0;
        self.state = None;
        self.assignee = None;
        self.reason = None;
        self.queue_position = None;
        self.offline_note = None;
        self.email_left = None;
        self.streaming = None;
        self.typing = None;
        self.show_greeting = None;
        self.human_requested = false;
    }

    /// Leaves the history list for the conversation `id` (`None`: a new one, once the server
    /// made it). Returns the frame that fetches it.
    pub fn switch_to(&mut self, id: Option<Uuid>) -> ClientFrame {
        self.reset();
        self.history = None;
        self.show_greeting = Some(id.is_none());
        self.conversation_id = id;
        match id {
            Some(conversation_id) => ClientFrame::Resume {
                conversation_id,
                after_seq: 0,
            },
            None => ClientFrame::NewConversation,
        }
    }

    /// Shows a message the visitor just wrote as pending. `id` is its client message id.
    pub fn compose(&mut self, id: String, body: String, now: Millis) {
        self.notice = None;
        self.entries.push(Entry {
            key: id.clone(),
            id: None,
            seq: None,
            client_msg_id: Some(id),
            author: Author::Visitor,
            body,
            created_at: now,
            source: None,
            link: None,
            choices: Vec::new(),
            delivery: Delivery::Pending,
            outgoing: Outgoing::Text,
        });
    }

    /// Shows the visitor's pick of a clarifying question's choice as pending. Returns false
    /// when there is no such choice.
    pub fn choose(&mut self, id: String, message_id: Uuid, choice_id: &str, now: Millis) -> bool {
        let Some(label) = self
            .entries
            .iter()
            .find(|e| e.id == Some(message_id))
            .and_then(|e| e.choices.iter().find(|c| c.id == choice_id))
            .map(|c| c.label.clone())
        else {
            return false;
        };
        self.compose(id, label, now);
        if let Some(last) = self.entries.last_mut() {
            last.outgoing = Outgoing::Choice {
                message_id,
                choice_id: choice_id.to_owned(),
            };
        }
        true
    }

    /// Marks a failed message pending again; the caller delivers it.
    pub fn retry(&mut self, client_msg_id: &str) -> bool {
        match self.entry_mut(client_msg_id) {
            Some(e) if e.delivery == Delivery::Failed => {
                e.delivery = Delivery::Pending;
                self.notice = None;
                true
            }
            _ => false,
        }
    }

    /// The frame that delivers the pending visitor entry `client_msg_id`, if it is still
    /// pending.
    pub fn frame_for(&self, client_msg_id: &str) -> Option<ClientFrame> {
        let e = self
            .entries
            .iter()
            .find(|e| e.client_msg_id.as_deref() == Some(client_msg_id))?;
        if e.delivery != Delivery::Pending || e.author != Author::Visitor {
            return None;
        }
        Some(match &e.outgoing {
            Outgoing::Text => ClientFrame::Send {
                conversation_id: self.conversation_id,
                client_msg_id: client_msg_id.to_owned(),
                body: e.body.clone(),
            },
            Outgoing::Choice {
                message_id,
                choice_id,
            } => ClientFrame::Choose {
                conversation_id: self.conversation_id?,
                message_id: *message_id,
                choice_id: choice_id.clone(),
                client_msg_id: client_msg_id.to_owned(),
            },
        })
    }

    /// Client message ids of everything not yet acknowledged, oldest first.
    pub fn unacked(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.delivery == Delivery::Pending)
            .filter_map(|e| e.client_msg_id.clone())
            .collect()
    }

    /// The visitor asks for a person. Returns the frame to send, or `None` when there is no
    /// conversation yet: the caller then sends a first message, and the request follows its
    /// acknowledgement.
    pub fn request_human(&mut self) -> Option<ClientFrame> {
        self.notice = None;
        match self.conversation_id {
            Some(conversation_id) => Some(ClientFrame::RequestHuman { conversation_id }),
            None => {
                self.human_requested = true;
                None
            }
        }
    }

    /// Applies a frame received after `welcome`; returns frames to send in response.
    pub fn apply(&mut self, frame: ServerFrame) -> Vec<ClientFrame> {
        let mut out = Vec::new();
        match frame {
            ServerFrame::Welcome(w) => {
                self.welcome(w);
            }
            ServerFrame::Message(m) => {
                if self.is_other_conversation(m.conversation_id) {
                    return out;
                }
                self.conversation_id.get_or_insert(m.conversation_id);
                if self.typing.as_ref() == Some(&m.author) {
                    self.typing = None;
                }
                if m.author == Author::Ai {
                    self.streaming = None;
                }
                self.upsert(m);
            }
            ServerFrame::History {
                conversation_id,
                messages,
                has_more,
            } => {
                if self.is_other_conversation(conversation_id) {
                    return out;
                }
                let before = self.last_seq;
                for m in messages {
                    self.upsert(m);
                }
                if has_more && self.last_seq > before {
                    out.push(ClientFrame::Resume {
                        conversation_id,
                        after_seq: self.last_seq,
                    });
                }
            }
            ServerFrame::Ack {
                client_msg_id,
                conversation_id,
                message_id,
                seq,
                ..
            } => {
                self.conversation_id.get_or_insert(conversation_id);
                if let Some(e) = self.entry_mut(&client_msg_id) {
                    e.delivery = Delivery::Sent;
                    e.id = Some(message_id);
                    e.seq = Some(seq);
                }
                if self.human_requested {
                    self.human_requested = false;
                    out.push(ClientFrame::RequestHuman { conversation_id });
                }
            }
            ServerFrame::State {
                conversation_id,
                state,
                assignee,
                reason,
            } => {
                if self.is_other_conversation(conversation_id) {
                    return out;
                }
                self.conversation_id.get_or_insert(conversation_id);
                self.set_state(state, assignee, reason);
                self.state_seq = self.state_seq.max(self.last_seq);
            }
            ServerFrame::Queue {
                conversation_id,
                position,
            } if !self.is_other_conversation(conversation_id) => {
                self.queue_position = Some(position);
            }
            ServerFrame::Presence { agents_online, .. } => {
                if let Some(site) = &mut self.site {
                    site.agents_online = agents_online;
                }
            }
            ServerFrame::Typing { author, typing, .. } if author != Author::Visitor => {
                if !typing && author == Author::Ai {
                    self.streaming = None;
                }
                self.typing = typing.then_some(author);
            }
            ServerFrame::Streaming(s) if !self.is_other_conversation(s.conversation_id) => {
                self.streaming = Some(s.text);
            }
            ServerFrame::Offline { message, .. } => self.offline_note = Some(message),
            ServerFrame::Conversations { conversations } if self.history.is_some() => {
                self.history = Some(conversations);
            }
            ServerFrame::Error(err) => self.error(err),
            _ => {}
        }
        out
    }

    fn is_other_conversation(&self, id: Uuid) -> bool {
        self.conversation_id.is_some_and(|c| c != id)
    }

    /// The visitor leaves an email while nobody is online. Returns the frame to send, or
    /// `None` (with a notice) when the address is not plausible or there is no conversation.
    pub fn leave_email(&mut self, email: &str) -> Option<ClientFrame> {
        // A first check for typos; the server checks the address properly.
        let email = email.trim();
        let plausible = email.len() <= 254
            && !email.contains(char::is_whitespace)
            && email
                .find('@')
                .is_some_and(|at| at > 0 && email[at..].contains('.'));
        if !plausible {
            self.notice = Some(Notice {
                text: i18n::t().email_invalid.to_owned(),
            });
            return None;
        }
        let conversation_id = self.conversation_id?;
        self.notice = None;
        self.email_left = Some(email.to_owned());
        Some(ClientFrame::LeaveEmail {
            conversation_id,
            email: email.to_owned(),
        })
    }

    fn error(&mut self, err: ErrorBody) {
        if err.code == nexus_shared::ErrorCode::Validation {
            // The server refused the address: ask again.
            self.email_left = None;
        }
        if let Some(id) = &err.client_msg_id
            && let Some(e) = self.entry_mut(id)
        {
            e.delivery = Delivery::Failed;
        }
        self.notice = Some(Notice {
            text: i18n::error_text(&err).to_owned(),
        });
    }

    fn set_state(
        &mut self,
        state: ConversationState,
        assignee: Option<AgentRef>,
        reason: Option<HandoffReason>,
    ) {
        self.state = Some(state);
        self.assignee = if state == ConversationState::Human {
            assignee
        } else {
            None
        };
        if state == ConversationState::Waiting {
            if reason.is_some() {
                self.reason = reason;
            }
        } else {
            self.reason = None;
            self.queue_position = None;
        }
    }

    fn entry_mut(&mut self, client_msg_id: &str) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .find(|e| e.client_msg_id.as_deref() == Some(client_msg_id))
    }

    /// Adds a timeline entry once: by message id, then by the visitor's client message id
    /// (their own message comes back as a `message` frame too).
    fn upsert(&mut self, m: Message) {
        self.last_seq = self.last_seq.max(m.seq);
        if let Some(event) = &m.event
            && m.seq > self.state_seq
        {
            let (assignee, reason) = match &event.cause {
                Transition::TakenOver { agent } => (Some(agent.clone()), None),
                Transition::Transferred { to, .. } => (Some(to.clone()), None),
                Transition::Escalated { reason } => (None, Some(reason.clone())),
                _ => (None, None),
            };
            self.set_state(event.to, assignee, reason);
            self.state_seq = m.seq;
        }
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == Some(m.id)) {
            e.seq = Some(m.seq);
            e.delivery = Delivery::Sent;
            return;
        }
        if let Some(cid) = &m.client_msg_id
            && let Some(e) = self
                .entries
                .iter_mut()
                .find(|e| e.client_msg_id.as_ref() == Some(cid))
        {
            e.id = Some(m.id);
            e.seq = Some(m.seq);
            e.created_at = m.created_at;
            e.delivery = Delivery::Sent;
            return;
        }
        let at = self
            .entries
            .iter()
            .position(|e| e.seq.is_none_or(|s| s > m.seq))
            .unwrap_or(self.entries.len());
        self.entries.insert(at, Entry::from_message(m));
    }
}

#[cfg(test)]
mod tests {
    use nexus_shared::{ErrorCode, Session, Source, StateChange};

    use super::*;

    const CONV: Uuid = Uuid::from_u128(7);

    fn msg(seq: u64, author: Author, body: &str) -> Message {
        Message {
            id: Uuid::from_u128(1000 + u128::from(seq)),
            conversation_id: CONV,
            seq,
            client_msg_id: None,
            author,
            body: body.into(),
            created_at: 1_700_000_000_000,
            sources: Vec::new(),
            confidence: None,
            choices: Vec::new(),
            event: None,
        }
    }

    fn welcome(messages: Vec<Message>, state: ConversationState) -> Welcome {
        Welcome {
            protocol_version: 1,
            session: Session::Visitor {
                visitor_token: "tok".into(),
            },
            site: None,
            conversation: Some(ConversationView {
                id: CONV,
                state,
                assignee: None,
                last_seq: messages.last().map_or(0, |m| m.seq),
                messages,
            }),
        }
    }

    fn bodies(chat: &Chat) -> Vec<&str> {
        chat.entries.iter().map(|e| e.body.as_str()).collect()
    }

    #[test]
    fn greeting_only_for_an_empty_conversation_and_it_stays() {
        let mut chat = Chat::default();
        assert_eq!(
            chat.welcome(welcome(vec![], ConversationState::Ai)),
            Some("tok".into())
        );
        assert_eq!(chat.show_greeting, Some(true));
        chat.apply(ServerFrame::Message(msg(1, Author::Ai, "hi")));
        chat.welcome(welcome(
            vec![msg(1, Author::Ai, "hi")],
            ConversationState::Ai,
        ));
        assert_eq!(chat.show_greeting, Some(true));

        let mut returning = Chat::default();
        returning.welcome(welcome(
            vec![msg(1, Author::Visitor, "old")],
            ConversationState::Ai,
        ));
        assert_eq!(returning.show_greeting, Some(false));
        assert_eq!(bodies(&returning), ["old"]);
    }

    #[test]
    fn own_message_is_pending_until_acked_and_shown_once() {
        let mut chat = Chat::default();
        chat.welcome(Welcome {
            conversation: None,
            ..welcome(vec![], ConversationState::Ai)
        });
        chat.compose("c1".into(), "Where is my order?".into(), 5);
        assert_eq!(chat.unacked(), ["c1"]);
        assert_eq!(
            chat.frame_for("c1"),
            Some(ClientFrame::Send {
                conversation_id: None,
                client_msg_id: "c1".into(),
                body: "Where is my order?".into()
            })
        );
        chat.apply(ServerFrame::Ack {
            client_msg_id: "c1".into(),
            conversation_id: CONV,
            message_id: Uuid::from_u128(1001),
            seq: 1,
            duplicate: false,
        });
        assert_eq!(chat.conversation_id, Some(CONV));
        assert_eq!(chat.entries[0].delivery, Delivery::Sent);
        assert!(chat.unacked().is_empty());
        assert_eq!(chat.frame_for("c1"), None);

        let mut echo = msg(1, Author::Visitor, "Where is my order?");
        echo.client_msg_id = Some("c1".into());
        chat.apply(ServerFrame::Message(echo.clone()));
        chat.apply(ServerFrame::Message(echo));
        chat.apply(ServerFrame::Message(msg(2, Author::Ai, "It ships today.")));
        chat.apply(ServerFrame::Message(msg(2, Author::Ai, "It ships today.")));
        assert_eq!(bodies(&chat), ["Where is my order?", "It ships today."]);
        assert_eq!(chat.last_seq, 2);
    }

    #[test]
    fn echo_before_ack_still_dedupes() {
        let mut chat = Chat::default();
        chat.compose("c1".into(), "hello".into(), 5);
        let mut echo = msg(1, Author::Visitor, "hello");
        echo.client_msg_id = Some("c1".into());
        chat.apply(ServerFrame::Message(echo));
        chat.apply(ServerFrame::Ack {
            client_msg_id: "c1".into(),
            conversation_id: CONV,
            message_id: Uuid::from_u128(1001),
            seq: 1,
            duplicate: true,
        });
        assert_eq!(chat.entries.len(), 1);
        assert_eq!(chat.entries[0].delivery, Delivery::Sent);
        assert_eq!(chat.entries[0].key, "c1");
    }

    #[test]
    fn history_fills_the_gap_in_order_before_pending_messages() {
        let mut chat = Chat::default();
        chat.welcome(welcome(
            vec![msg(1, Author::Visitor, "a")],
            ConversationState::Ai,
        ));
        chat.compose("c9".into(), "unsent".into(), 5);
        let out = chat.apply(ServerFrame::History {
            conversation_id: CONV,
            messages: vec![msg(2, Author::Ai, "b"), msg(3, Author::Ai, "c")],
            has_more: true,
        });
        assert_eq!(bodies(&chat), ["a", "b", "c", "unsent"]);
        assert_eq!(
            out,
            [ClientFrame::Resume {
                conversation_id: CONV,
                after_seq: 3
            }]
        );
    }

    #[test]
    fn ai_answer_shows_its_source() {
        let mut chat = Chat::default();
        let mut m = msg(1, Author::Ai, "30 days.");
        m.sources = vec![Source {
            entry_id: "returns".into(),
            title: "Returns policy".into(),
            url: None,
        }];
        chat.apply(ServerFrame::Message(m));
        assert_eq!(chat.entries[0].source.as_deref(), Some("Returns policy"));
        assert_eq!(chat.entries[0].link, None);
    }

    #[test]
    fn only_http_links_and_site_paths_are_kept_on_a_source() {
        let link = |url: &str| {
            let mut chat = Chat::default();
            let mut m = msg(1, Author::Ai, "Two days.");
            m.sources = vec![Source {
                entry_id: "doc:help#shipping".into(),
                title: "Help › Shipping".into(),
                url: Some(url.into()),
            }];
            chat.apply(ServerFrame::Message(m));
            chat.entries[0].link.clone()
        };
        for kept in [
            "https://shop.test/help#shipping",
            "http://shop.test/",
            "/#shipping",
        ] {
            assert_eq!(link(kept).as_deref(), Some(kept));
        }
        for dropped in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            "data:text/html,<b>x</b>",
            "//evil.test/",
            " https://shop.test/",
        ] {
            assert_eq!(link(dropped), None, "{dropped}");
        }
    }

    #[test]
    fn choosing_sends_choose_with_the_same_id() {
        let mut chat = Chat::default();
        let mut m = msg(1, Author::Ai, "Which order?");
        m.choices = vec![Choice {
            id: "a".into(),
            label: "The blue one".into(),
        }];
        chat.apply(ServerFrame::Message(m));
        assert!(!chat.choose("c2".into(), Uuid::from_u128(1001), "zzz", 1));
        assert!(chat.choose("c2".into(), Uuid::from_u128(1001), "a", 1));
        assert_eq!(chat.entries[1].body, "The blue one");
        assert_eq!(
            chat.frame_for("c2"),
            Some(ClientFrame::Choose {
                conversation_id: CONV,
                message_id: Uuid::from_u128(1001),
                choice_id: "a".into(),
                client_msg_id: "c2".into()
            })
        );
    }

    #[test]
    fn state_frames_and_events_drive_the_handoff() {
        let mut chat = Chat::default();
        chat.welcome(welcome(
            vec![msg(1, Author::Visitor, "x")],
            ConversationState::Ai,
        ));
        assert_eq!(
            chat.request_human(),
            Some(ClientFrame::RequestHuman {
                conversation_id: CONV
            })
        );
        chat.apply(ServerFrame::State {
            conversation_id: CONV,
            state: ConversationState::Waiting,
            assignee: None,
            reason: Some(HandoffReason::VisitorAsked),
        });
        chat.apply(ServerFrame::Queue {
            conversation_id: CONV,
            position: 2,
        });
        assert_eq!(chat.state(), ConversationState::Waiting);
        assert_eq!(chat.reason, Some(HandoffReason::VisitorAsked));
        assert_eq!(chat.queue_position, Some(2));

        let sam = AgentRef {
            id: Uuid::from_u128(3),
            name: "Sam".into(),
        };
        let mut joined = msg(2, Author::System, "Sam joined");
        joined.event = Some(StateChange {
            from: ConversationState::Waiting,
            to: ConversationState::Human,
            cause: Transition::TakenOver { agent: sam.clone() },
        });
        chat.apply(ServerFrame::Message(joined));
        assert_eq!(chat.state(), ConversationState::Human);
        assert_eq!(chat.assignee, Some(sam));
        assert_eq!(chat.queue_position, None);

        // A replayed older event does not undo the newer state.
        let mut old = msg(2, Author::System, "escalated");
        old.id = Uuid::from_u128(99);
        old.event = Some(StateChange {
            from: ConversationState::Ai,
            to: ConversationState::Waiting,
            cause: Transition::Escalated {
                reason: HandoffReason::LowConfidence,
            },
        });
        chat.apply(ServerFrame::Message(old));
        assert_eq!(chat.state(), ConversationState::Human);
    }

    #[test]
    fn asking_for_a_person_before_any_message_waits_for_the_first_ack() {
        let mut chat = Chat::default();
        assert_eq!(chat.request_human(), None);
        assert!(chat.human_requested);
        chat.compose("c1".into(), "I'd like to talk to a person.".into(), 1);
        let out = chat.apply(ServerFrame::Ack {
            client_msg_id: "c1".into(),
            conversation_id: CONV,
            message_id: Uuid::from_u128(1),
            seq: 1,
            duplicate: false,
        });
        assert_eq!(
            out,
            [ClientFrame::RequestHuman {
                conversation_id: CONV
            }]
        );
        assert!(!chat.human_requested);
    }

    #[test]
    fn refused_message_is_failed_with_retry() {
        let mut chat = Chat::default();
        chat.compose("c1".into(), "spam".into(), 1);
        chat.apply(ServerFrame::Error(
            ErrorBody::new(ErrorCode::RateLimited, "slow down").for_message("c1"),
        ));
        assert_eq!(chat.entries[0].delivery, Delivery::Failed);
        assert!(chat.unacked().is_empty());
        let notice = chat.notice.clone().unwrap();
        assert!(notice.text.contains("too fast"), "{notice:?}");
        assert!(chat.retry("c1"));
        assert_eq!(chat.unacked(), ["c1"]);
        assert!(chat.notice.is_none());
        assert!(!chat.retry("c1"));
    }

    #[test]
    fn offline_asks_for_an_email_once() {
        let mut chat = Chat::default();
        chat.welcome(welcome(
            vec![msg(1, Author::Visitor, "x")],
            ConversationState::Ai,
        ));
        chat.apply(ServerFrame::Offline {
            conversation_id: CONV,
            message: "We'll answer by email within a day.".into(),
        });
        assert!(chat.offline_note.is_some());
        assert_eq!(chat.leave_email("not an address"), None);
        assert!(chat.notice.is_some() && chat.email_left.is_none());
        assert_eq!(
            chat.leave_email(" ada@example.com "),
            Some(ClientFrame::LeaveEmail {
                conversation_id: CONV,
                email: "ada@example.com".into()
            })
        );
        assert_eq!(chat.email_left.as_deref(), Some("ada@example.com"));
        assert_eq!(chat.flags(), "offline email-left ");
        chat.apply(ServerFrame::Error(ErrorBody::new(
            ErrorCode::Validation,
            "bad",
        )));
        assert_eq!(chat.email_left, None);
    }

    #[test]
    fn history_opens_an_older_conversation_or_a_new_one() {
        let mut chat = Chat::default();
        chat.welcome(welcome(
            vec![msg(1, Author::Visitor, "now")],
            ConversationState::Ai,
        ));
        chat.history = Some(Vec::new());
        let old = Uuid::from_u128(99);
        assert_eq!(
            chat.switch_to(Some(old)),
            ClientFrame::Resume {
                conversation_id: old,
                after_seq: 0
            }
        );
        assert!(chat.entries.is_empty() && chat.history.is_none());
        let mut m = msg(1, Author::Ai, "older answer");
        m.conversation_id = old;
        chat.apply(ServerFrame::History {
            conversation_id: old,
            messages: vec![m],
            has_more: false,
        });
        assert_eq!(bodies(&chat), ["older answer"]);
        assert_eq!(chat.switch_to(None), ClientFrame::NewConversation);
        assert_eq!(chat.conversation_id, None);
        assert_eq!(chat.show_greeting, Some(true));
    }

    #[test]
    fn streaming_grows_then_the_message_replaces_it() {
        let mut chat = Chat::default();
        chat.welcome(welcome(
            vec![msg(1, Author::Visitor, "q")],
            ConversationState::Ai,
        ));
        for text in ["You can", "You can return it"] {
            chat.apply(ServerFrame::Streaming(nexus_shared::Streaming {
                conversation_id: CONV,
                text: text.into(),
            }));
            assert_eq!(chat.streaming.as_deref(), Some(text));
        }
        chat.apply(ServerFrame::Message(msg(
            2,
            Author::Ai,
            "You can return it within 30 days.",
        )));
        assert_eq!(chat.streaming, None);
        assert_eq!(bodies(&chat), ["q", "You can return it within 30 days."]);
        chat.apply(ServerFrame::Streaming(nexus_shared::Streaming {
            conversation_id: CONV,
            text: "Let me".into(),
        }));
        chat.apply(ServerFrame::Typing {
            conversation_id: CONV,
            author: Author::Ai,
            typing: false,
        });
        assert_eq!(chat.streaming, None);
    }

    #[test]
    fn frames_of_another_conversation_are_ignored() {
        let mut chat = Chat::default();
        chat.welcome(welcome(vec![], ConversationState::Ai));
        let mut m = msg(1, Author::Ai, "elsewhere");
        m.conversation_id = Uuid::from_u128(8);
        chat.apply(ServerFrame::Message(m));
        assert!(chat.entries.is_empty());
    }
}
