//! The agent's desk as plain data: the inbox, the conversation on screen, its drafts and
//! notes. The connection feeds it [`ServerFrame`]s; the view renders it; `cargo test` checks
//! the rules natively.
//!
//! The inbox is the server's views: on every connection the desk asks for the first page of
//! the waiting, live AI and mine tabs ([`Desk::inbox_requests`]) and "load more" asks for the
//! next ([`Desk::load_more`]); the server then sends only what changes in those views, and the
//! counts of each tab. Resolved is the desk's own: lines that left a view resolved while the
//! page was open. A server that sends no views (an older one) sends every line, and the tabs
//! are then filtered here.

use std::collections::HashMap;

use nexus_shared::{
    AgentRef, Author, ClientFrame, ConversationState, ConversationSummary, Draft, ErrorBody,
    ErrorCode, HandoffReason, INBOX_PAGE, InboxCounts, InboxFilter, Message, Millis, Note,
    Presence, Role, ServerFrame, Session,
};
use uuid::Uuid;

/// No input for this long sets an online agent away.
pub const IDLE_AFTER_MS: Millis = 5 * 60_000;

/// The inbox tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tab {
    /// Escalated, oldest first.
    Waiting,
    /// The AI is answering.
    Live,
    /// Taken over by this agent.
    Mine,
    /// Resolved while this page was open, newest first.
    Resolved,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Waiting, Tab::Live, Tab::Mine, Tab::Resolved];

    pub fn label(self) -> &'static str {
        match self {
            Self::Waiting => "Waiting",
            Self::Live => "Live AI",
            Self::Mine => "Mine",
            Self::Resolved => "Resolved",
        }
    }

    /// Stable value for `data-testid="tab-…"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Live => "live",
            Self::Mine => "mine",
            Self::Resolved => "resolved",
        }
    }

    /// The server's inbox filter behind the tab (`None`: the desk's own).
    pub fn filter(self) -> Option<InboxFilter> {
        match self {
            Self::Waiting => Some(InboxFilter::Waiting),
            Self::Live => Some(InboxFilter::Live),
            Self::Mine => Some(InboxFilter::Mine),
            Self::Resolved => None,
        }
    }

    fn of(filter: InboxFilter) -> Option<Self> {
        match filter {
            InboxFilter::Waiting => Some(Self::Waiting),
            InboxFilter::Live => Some(Self::Live),
            InboxFilter::Mine => Some(Self::Mine),
            InboxFilter::Open => None,
        }
    }
}

/// What the server's view of a tab holds.
#[derive(Debug, Clone, Default)]
pub struct TabView {
    pub ids: Vec<Uuid>,
    /// More lines follow in the filter ("load more").
    pub has_more: bool,
}

/// Everything the agent's screen shows.
#[derive(Debug, Clone, Default)]
pub struct Desk {
    pub me: Option<AgentRef>,
    /// Owners also see the console (settings, knowledge base, analytics).
    pub role: Option<Role>,
    pub presence: Option<Presence>,
    /// The agent went away by being idle (not by choice): activity brings them back.
    pub auto_away: bool,
    /// Every line the desk knows (the views' lines, and the resolved ones).
    pub inbox: Vec<ConversationSummary>,
    /// The server's views, per tab (empty until the server answers `inbox`).
    pub views: HashMap<Tab, TabView>,
    /// The server's count of each filter.
    pub counts: Option<InboxCounts>,
    /// The highest sequence number the agent has seen, per conversation.
    seen: HashMap<Uuid, u64>,
    /// The conversation on screen.
    pub open: Option<Uuid>,
    pub state: Option<ConversationState>,
    pub assignee: Option<AgentRef>,
    pub messages: Vec<Message>,
    pub notes: Vec<Note>,
    pub drafts: Vec<Draft>,
    /// An error in plain words.
    pub notice: Option<String>,
    /// When the current connection was welcomed: escalations older than that are not news.
    pub welcomed_at: Millis,
}

impl Desk {
    /// The conversations of `tab`, in the order to show them.
    pub fn tab(&self, tab: Tab) -> Vec<ConversationSummary> {
        let me = self.me.as_ref().map(|a| a.id);
        let view = self.views.get(&tab);
        let mut items: Vec<_> = self
            .inbox
            .iter()
            .filter(|s| view.is_none_or(|v| v.ids.contains(&s.id)))
            .filter(|s| match tab {
                Tab::Waiting => s.state == ConversationState::Waiting,
                Tab::Live => s.state == ConversationState::Ai,
                Tab::Mine => {
                    s.state == ConversationState::Human && s.assignee.as_ref().map(|a| a.id) == me
                }
                Tab::Resolved => s.state == ConversationState::Resolved,
            })
            .cloned()
            .collect();
        match tab {
            Tab::Waiting => items.sort_by_key(|s| s.waiting_since.unwrap_or(s.updated_at)),
            _ => items.sort_by_key(|s| std::cmp::Reverse(s.updated_at)),
        }
        items
    }

    /// How many conversations the tab holds: the server's count, or what the desk has.
    pub fn count(&self, tab: Tab) -> usize {
        match (tab, self.counts.filter(|_| !self.views.is_empty())) {
            (Tab::Waiting, Some(c)) => c.waiting as usize,
            (Tab::Live, Some(c)) => c.live as usize,
            (Tab::Mine, Some(c)) => c.mine as usize,
            _ => self.tab(tab).len(),
        }
    }

    /// Whether the server has more lines of the tab to load.
    pub fn has_more(&self, tab: Tab) -> bool {
        self.views.get(&tab).is_some_and(|v| v.has_more)
    }

    /// The first page of each of the server's tabs: asked for on every connection.
    pub fn inbox_requests(&self) -> Vec<ClientFrame> {
        Tab::ALL
            .iter()
            .filter_map(|t| t.filter())
            .map(|filter| ClientFrame::Inbox {
                filter,
                limit: Some(INBOX_PAGE),
                after: None,
            })
            .collect()
    }

    /// "Load more": the tab's next page.
    pub fn load_more(&self, tab: Tab) -> Option<ClientFrame> {
        let filter = tab.filter()?;
        let after = self.tab(tab).last().map(|s| s.id);
        self.has_more(tab).then_some(ClientFrame::Inbox {
            filter,
            limit: Some(INBOX_PAGE),
            after,
        })
    }

    /// Keeps `s` (a newer copy replaces the one held).
    fn keep(&mut self, s: ConversationSummary) {
        if self.open == Some(s.id) {
            self.state = Some(s.state);
            self.assignee = s.assignee.clone();
        }
        match self.inbox.iter_mut().find(|p| p.id == s.id) {
            Some(p) => *p = s,
            None => self.inbox.push(s),
        }
    }

    /// Is `s` a new escalation (to announce)? Not one that was already waiting, nor one
    /// waiting since before this connection.
    fn is_news(&self, s: &ConversationSummary, now: Millis) -> bool {
        let before = self.summary(s.id).map(|p| p.state);
        s.state == ConversationState::Waiting
            && before != Some(ConversationState::Waiting)
            && (before.is_some() || s.waiting_since.unwrap_or(now) + 10_000 >= self.welcomed_at)
    }

    /// Timeline entries the agent has not seen yet in conversation `s`.
    pub fn unread(&self, s: &ConversationSummary) -> u64 {
        if self.open == Some(s.id) {
            return 0;
        }
        s.last_seq
            .saturating_sub(self.seen.get(&s.id).copied().unwrap_or(0))
    }

    /// The conversations of `tab` with something unseen.
    pub fn tab_unread(&self, tab: Tab) -> usize {
        self.tab(tab).iter().filter(|s| self.unread(s) > 0).count()
    }

    pub fn summary(&self, id: Uuid) -> Option<&ConversationSummary> {
        self.inbox.iter().find(|s| s.id == id)
    }

    pub fn is_owner(&self) -> bool {
        self.role == Some(Role::Owner)
    }

    /// Automatic presence after `idle_ms` without input: online agents go away after
    /// [`IDLE_AFTER_MS`]; those it sent away come back with the next input. Returns the
    /// status to send, if it changes. A presence the agent chose is left alone.
    pub fn idle(&mut self, idle_ms: Millis) -> Option<Presence> {
        let now_idle = idle_ms >= IDLE_AFTER_MS;
        match self.presence {
            Some(Presence::Online) if now_idle => {
                self.auto_away = true;
                self.presence = Some(Presence::Away);
            }
            Some(Presence::Away) if self.auto_away && !now_idle => {
                self.auto_away = false;
                self.presence = Some(Presence::Online);
            }
            Some(Presence::Online | Presence::Away | Presence::Offline) | None => return None,
        }
        self.presence
    }

    /// The agent picks a presence: no automatic change undoes it.
    pub fn choose_presence(&mut self, status: Presence) {
        self.presence = Some(status);
        self.auto_away = false;
    }

    pub fn is_mine(&self) -> bool {
        self.state == Some(ConversationState::Human)
            && self.assignee.as_ref().map(|a| a.id) == self.me.as_ref().map(|a| a.id)
    }

    /// Opens conversation `id`: the frames to send (stop following the previous one, follow
    /// this one).
    pub fn open(&mut self, id: Uuid) -> Vec<ClientFrame> {
        if self.open == Some(id) {
            return vec![];
        }
        let mut out = Vec::new();
        if let Some(previous) = self.open.take() {
            out.push(ClientFrame::Unwatch {
                conversation_id: previous,
            });
        }
        self.open = Some(id);
        let (state, assignee) = self
            .summary(id)
            .map_or((None, None), |s| (Some(s.state), s.assignee.clone()));
        self.state = state;
        self.assignee = assignee;
        self.messages.clear();
        self.notice = None;
        out.push(ClientFrame::Watch {
            conversation_id: id,
        });
        out
    }

    /// The visitor's last message in the open conversation: the question to teach.
    pub fn last_question(&self) -> String {
        self.last_by(|a| *a == Author::Visitor)
    }

    /// The last agent reply in the open conversation: the answer to teach.
    pub fn last_reply(&self) -> String {
        self.last_by(|a| matches!(a, Author::Agent(_)))
    }

    fn last_by(&self, pick: impl Fn(&Author) -> bool) -> String {
        self.messages
            .iter()
            .rev()
            .find(|m| pick(&m.author))
            .map(|m| m.body.clone())
            .unwrap_or_default()
    }

    fn add_message(&mut self, m: Message) {
        let seen = self.seen.entry(m.conversation_id).or_default();
        *seen = (*seen).max(m.seq);
        if let Err(at) = self.messages.binary_search_by_key(&m.seq, |x| x.seq) {
            self.messages.insert(at, m);
        }
    }

    /// Applies a frame. Returns the summary of a new escalation (to announce).
    pub fn apply(&mut self, frame: ServerFrame, now: Millis) -> Option<ConversationSummary> {
        match frame {
            ServerFrame::Welcome(welcome) => {
                if let Session::Agent { agent, role } = welcome.session {
                    self.me = Some(agent);
                    self.role = Some(role);
                }
                self.presence.get_or_insert(Presence::Online);
                self.welcomed_at = now;
            }
            ServerFrame::Conversation(s) => {
                let announce = self.is_news(&s, now).then(|| s.clone());
                self.keep(s);
                return announce;
            }
            ServerFrame::InboxPage(page) => {
                self.counts = Some(page.counts);
                let tab = Tab::of(page.filter)?;
                let view = self.views.entry(tab).or_default();
                if page.after.is_none() {
                    view.ids.clear();
                }
                view.has_more = page.has_more;
                for s in &page.lines {
                    if !view.ids.contains(&s.id) {
                        view.ids.push(s.id);
                    }
                }
                for s in page.lines {
                    self.keep(s);
                }
            }
            ServerFrame::InboxLine { filter, line } => {
                let tab = Tab::of(filter)?;
                let announce = self.is_news(&line, now).then(|| line.clone());
                let view = self.views.entry(tab).or_default();
                if !view.ids.contains(&line.id) {
                    view.ids.push(line.id);
                }
                self.keep(line);
                return announce;
            }
            ServerFrame::InboxLeave {
                filter,
                conversation_id,
                state,
            } => {
                if let Some(view) = Tab::of(filter).and_then(|t| self.views.get_mut(&t)) {
                    view.ids.retain(|id| *id != conversation_id);
                }
                let shown = self
                    .views
                    .values()
                    .any(|v| v.ids.contains(&conversation_id));
                if state == ConversationState::Resolved {
                    if let Some(s) = self.inbox.iter_mut().find(|s| s.id == conversation_id) {
                        s.state = state;
                    }
                    if self.open == Some(conversation_id) {
                        self.state = Some(state);
                    }
                } else if !shown && self.open != Some(conversation_id) {
                    self.inbox.retain(|s| s.id != conversation_id);
                }
            }
            ServerFrame::InboxCounts(counts) => self.counts = Some(counts),
            ServerFrame::History {
                conversation_id,
                messages,
                ..
            } if self.open == Some(conversation_id) => {
                for m in messages {
                    self.add_message(m);
                }
            }
            ServerFrame::Message(m) if self.open == Some(m.conversation_id) => {
                self.add_message(m);
            }
            ServerFrame::State {
                conversation_id,
                state,
                assignee,
                reason,
            } => {
                if self.open == Some(conversation_id) {
                    self.state = Some(state);
                    self.assignee = assignee.clone();
                }
                if let Some(s) = self.inbox.iter_mut().find(|s| s.id == conversation_id) {
                    s.state = state;
                    s.assignee = assignee;
                    if reason.is_some() {
                        s.handoff_reason = reason;
                    }
                }
            }
            ServerFrame::Draft(d) if !self.drafts.iter().any(|x| x.id == d.id) => {
                self.drafts.push(d);
            }
            ServerFrame::DraftReviewed { draft_id, .. } => {
                self.drafts.retain(|d| d.id != draft_id);
            }
            ServerFrame::Note(n) if !self.notes.iter().any(|x| x.id == n.id) => {
                self.notes.push(n);
            }
            ServerFrame::Presence {
                agent: Some(agent),
                status,
                ..
            } if Some(agent.id) == self.me.as_ref().map(|a| a.id) => {
                self.presence = status;
            }
            ServerFrame::Error(e) => {
                // The conversation asked for (by its address) never loaded: the server knows
                // none with that id on this agent's site.
                let never_loaded = matches!(e.code, ErrorCode::NotFound | ErrorCode::Forbidden)
                    && self.open.is_some()
                    && self.state.is_none();
                self.notice = Some(
                    if never_loaded {
                        NOT_FOUND
                    } else {
                        error_text(&e)
                    }
                    .to_owned(),
                );
            }
            _ => {}
        }
        None
    }
}

/// What an agent reads when the conversation they asked for is not theirs to see.
pub const NOT_FOUND: &str = "Conversation not found: there is none with this id on your site.";

/// An error frame in plain words, for an agent.
pub fn error_text(e: &ErrorBody) -> &str {
    let other = if e.message.is_empty() {
        "Something went wrong. Please try again."
    } else {
        &e.message
    };
    match e.code {
        ErrorCode::NotAssignee => "Another agent has this conversation.",
        ErrorCode::InvalidTransition => "That is not possible in the conversation's current state.",
        ErrorCode::ConversationResolved => "This conversation is resolved.",
        ErrorCode::RateLimited => "Too many actions at once. Wait a moment and retry.",
        ErrorCode::MessageTooLong => "That message is too long.",
        ErrorCode::EmptyMessage => "That message is empty.",
        ErrorCode::Unauthorized => "Your session has ended. Please log in again.",
        ErrorCode::Forbidden => "You are not allowed to do that.",
        ErrorCode::NotFound => "That conversation no longer exists.",
        ErrorCode::BadFrame
        | ErrorCode::FrameTooLarge
        | ErrorCode::UnsupportedVersion
        | ErrorCode::HelloRequired
        | ErrorCode::UnknownSite
        | ErrorCode::OriginNotAllowed
        | ErrorCode::IdentityInvalid
        | ErrorCode::TooManyConnections
        | ErrorCode::InvalidCredentials
        | ErrorCode::LoginThrottled
        | ErrorCode::Validation
        | ErrorCode::RequestTimeout
        | ErrorCode::Unavailable
        | ErrorCode::Internal
        | ErrorCode::Unknown => other,
    }
}

/// Why a conversation waits for a person, in words for agents.
pub fn reason_text(reason: &HandoffReason) -> String {
    match reason {
        HandoffReason::VisitorAsked => "Visitor asked for a person".into(),
        HandoffReason::LowConfidence => "AI was not confident".into(),
        HandoffReason::OutOfScope => "Not covered by the knowledge base".into(),
        HandoffReason::Sensitive { category } => {
            format!("Sensitive topic: {}", category.replace('_', " "))
        }
        HandoffReason::Frustration => "Visitor seems frustrated".into(),
        HandoffReason::RepeatedFailure => "AI failed repeatedly".into(),
        HandoffReason::EngineError => "AI error".into(),
        HandoffReason::EngineBusy => "AI busy".into(),
        HandoffReason::AgentTakeover => "Taken over by an agent".into(),
        HandoffReason::AutonomyOff => "AI answers are off".into(),
    }
}

/// "waiting 3 min", from `since` to `now`.
pub fn waited(since: Millis, now: Millis) -> String {
    let minutes = (now - since).max(0) / 60_000;
    match minutes {
        0 => "waiting < 1 min".to_owned(),
        1..=59 => format!("waiting {minutes} min"),
        _ => format!("waiting {} h {} min", minutes / 60, minutes % 60),
    }
}

pub fn state_text(state: ConversationState) -> &'static str {
    match state {
        ConversationState::Ai => "AI is answering",
        ConversationState::Waiting => "Waiting for a person",
        ConversationState::Human => "Handled by a person",
        ConversationState::Resolved => "Resolved",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Uuid = Uuid::from_u128(1);

    fn me() -> AgentRef {
        AgentRef {
            id: ME,
            name: "Ana".into(),
        }
    }

    fn summary(id: u128, state: ConversationState, at: Millis) -> ConversationSummary {
        ConversationSummary {
            id: Uuid::from_u128(id),
            state,
            assignee: (state == ConversationState::Human).then(me),
            handoff_reason: None,
            last_seq: 2,
            preview: String::new(),
            created_at: at,
            updated_at: at,
            waiting_since: (state == ConversationState::Waiting).then_some(at),
            visitor: Default::default(),
        }
    }

    fn desk() -> Desk {
        Desk {
            me: Some(me()),
            welcomed_at: 100_000,
            ..Desk::default()
        }
    }

    #[test]
    fn tabs_sort_and_announce_only_new_escalations() {
        let mut d = desk();
        // Waiting since before this page connected: listed, not announced.
        let old = summary(1, ConversationState::Waiting, 10_000);
        assert!(d.apply(ServerFrame::Conversation(old), 100_000).is_none());
        let fresh = summary(2, ConversationState::Ai, 100_500);
        assert!(d.apply(ServerFrame::Conversation(fresh), 100_500).is_none());
        let escalated = summary(2, ConversationState::Waiting, 101_000);
        assert!(
            d.apply(ServerFrame::Conversation(escalated.clone()), 101_000)
                .is_some()
        );
        assert!(
            d.apply(ServerFrame::Conversation(escalated), 101_000)
                .is_none()
        );
        let waiting: Vec<_> = d.tab(Tab::Waiting).iter().map(|s| s.id).collect();
        assert_eq!(waiting, [Uuid::from_u128(1), Uuid::from_u128(2)]);
        d.apply(
            ServerFrame::Conversation(summary(3, ConversationState::Human, 5)),
            0,
        );
        assert_eq!(d.tab(Tab::Mine).len(), 1);
        assert_eq!(d.tab_unread(Tab::Waiting), 2);
    }

    #[test]
    fn paged_tabs_show_the_servers_views_and_its_counts() {
        let mut d = desk();
        let asked = d.inbox_requests();
        assert_eq!(asked.len(), 3, "waiting, live and mine: {asked:?}");
        let counts = InboxCounts {
            open: 60,
            waiting: 55,
            live: 4,
            mine: 1,
        };
        let page: Vec<_> = (1..=50)
            .map(|n| summary(n, ConversationState::Waiting, 1_000 + n as Millis))
            .collect();
        d.apply(
            ServerFrame::InboxPage(nexus_shared::InboxPage {
                filter: InboxFilter::Waiting,
                after: None,
                lines: page,
                has_more: true,
                counts,
            }),
            100_000,
        );
        assert_eq!(d.tab(Tab::Waiting).len(), 50);
        assert_eq!(
            d.count(Tab::Waiting),
            55,
            "the server's count, not the page's"
        );
        let more = d.load_more(Tab::Waiting);
        assert_eq!(
            more,
            Some(ClientFrame::Inbox {
                filter: InboxFilter::Waiting,
                limit: Some(INBOX_PAGE),
                after: Some(Uuid::from_u128(50)),
            })
        );
        // A line taken by someone else leaves; one moves up; a new escalation is announced.
        d.apply(
            ServerFrame::InboxLeave {
                filter: InboxFilter::Waiting,
                conversation_id: Uuid::from_u128(3),
                state: ConversationState::Human,
            },
            100_000,
        );
        assert!(d.summary(Uuid::from_u128(3)).is_none());
        let up = summary(51, ConversationState::Waiting, 2_000);
        let announced = d.apply(
            ServerFrame::InboxLine {
                filter: InboxFilter::Waiting,
                line: up,
            },
            100_000,
        );
        assert!(announced.is_none(), "waiting since long before: not news");
        let fresh = summary(99, ConversationState::Waiting, 100_500);
        let announced = d.apply(
            ServerFrame::InboxLine {
                filter: InboxFilter::Waiting,
                line: fresh,
            },
            100_500,
        );
        assert!(announced.is_some());
        assert_eq!(d.tab(Tab::Waiting).len(), 51);
        // Mine: in view, then resolved: it leaves mine and shows under Resolved.
        let mine = summary(7, ConversationState::Human, 3_000);
        d.apply(
            ServerFrame::InboxLine {
                filter: InboxFilter::Mine,
                line: mine,
            },
            100_600,
        );
        assert_eq!(d.tab(Tab::Mine).len(), 1);
        d.apply(
            ServerFrame::InboxLeave {
                filter: InboxFilter::Mine,
                conversation_id: Uuid::from_u128(7),
                state: ConversationState::Resolved,
            },
            100_700,
        );
        assert!(d.tab(Tab::Mine).is_empty());
        assert_eq!(d.tab(Tab::Resolved).len(), 1);
        d.apply(
            ServerFrame::InboxCounts(InboxCounts { mine: 0, ..counts }),
            100_700,
        );
        assert_eq!(d.count(Tab::Mine), 0);
        assert_eq!(d.load_more(Tab::Resolved), None);
    }

    #[test]
    fn opening_watches_and_reads() {
        let mut d = desk();
        d.apply(
            ServerFrame::Conversation(summary(1, ConversationState::Waiting, 1)),
            0,
        );
        let id = Uuid::from_u128(1);
        assert_eq!(
            d.open(id),
            [ClientFrame::Watch {
                conversation_id: id
            }]
        );
        let msg = |seq, author, body: &str| Message {
            id: Uuid::from_u128(100 + seq as u128),
            conversation_id: id,
            seq,
            client_msg_id: None,
            author,
            body: body.into(),
            created_at: 0,
            sources: vec![],
            confidence: None,
            choices: vec![],
            event: None,
        };
        d.apply(
            ServerFrame::History {
                conversation_id: id,
                messages: vec![
                    msg(1, Author::Visitor, "gift wrap?"),
                    msg(2, Author::System, "x"),
                ],
                has_more: false,
            },
            0,
        );
        d.apply(
            ServerFrame::Message(msg(3, Author::Agent(me()), "Yes, $4.")),
            0,
        );
        d.apply(
            ServerFrame::Message(msg(3, Author::Agent(me()), "Yes, $4.")),
            0,
        );
        assert_eq!(d.messages.len(), 3);
        assert_eq!(d.last_question(), "gift wrap?");
        assert_eq!(d.last_reply(), "Yes, $4.");
        let s = d.summary(id).unwrap().clone();
        assert_eq!(d.unread(&s), 0);
        let frames = d.open(Uuid::from_u128(9));
        assert_eq!(frames.len(), 2);
        assert_eq!(d.unread(&s), 0, "what was read stays read");
    }

    #[test]
    fn a_conversation_that_never_loads_is_not_found() {
        let mut d = desk();
        d.open(Uuid::from_u128(7));
        d.apply(
            ServerFrame::Error(ErrorBody::new(ErrorCode::NotFound, "x")),
            0,
        );
        assert_eq!(d.notice.as_deref(), Some(NOT_FOUND));
        assert!(d.messages.is_empty());
        // Once a conversation is on screen, errors keep their own words.
        d.apply(
            ServerFrame::Conversation(summary(1, ConversationState::Waiting, 1)),
            0,
        );
        d.open(Uuid::from_u128(1));
        d.apply(
            ServerFrame::Error(ErrorBody::new(ErrorCode::NotFound, "x")),
            0,
        );
        assert_eq!(
            d.notice.as_deref(),
            Some("That conversation no longer exists.")
        );
    }

    #[test]
    fn idle_agents_go_away_and_come_back() {
        let mut d = desk();
        d.presence = Some(Presence::Online);
        assert_eq!(d.idle(60_000), None);
        assert_eq!(d.idle(IDLE_AFTER_MS), Some(Presence::Away));
        assert_eq!(d.idle(IDLE_AFTER_MS + 1), None, "said once");
        assert_eq!(d.idle(0), Some(Presence::Online), "input brings them back");
        d.choose_presence(Presence::Away);
        assert_eq!(d.idle(0), None, "a chosen away stays");
        d.choose_presence(Presence::Online);
        assert_eq!(d.idle(IDLE_AFTER_MS), Some(Presence::Away));
    }

    #[test]
    fn words_for_waits_and_errors() {
        assert_eq!(waited(0, 59_000), "waiting < 1 min");
        assert_eq!(waited(0, 180_000), "waiting 3 min");
        assert_eq!(waited(0, 3_900_000), "waiting 1 h 5 min");
        let e = ErrorBody::new(ErrorCode::NotAssignee, "x");
        assert_eq!(error_text(&e), "Another agent has this conversation.");
    }
}
