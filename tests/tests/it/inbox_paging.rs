//! The agents' paged and filtered inbox through the real server: an agent sees a conversation
//! appear, move (waiting → mine on take over) and leave (resolved) exactly once in the right
//! view; "load more" pages give every waiting conversation exactly once while conversations
//! change between the pages; an agent's view gets nothing about conversations outside it.

use std::collections::HashMap;
use std::time::Duration;

use nexus_shared::{
    ClientFrame, ConversationState, ConversationSummary, InboxCounts, InboxFilter, Role,
    ServerFrame,
};
use nexus_tests::{TestServer, WsClient, agent_login, frames};
use uuid::Uuid;

/// A line's place in a filter, as the agent app orders them.
fn order(filter: InboxFilter, s: &ConversationSummary) -> (i64, Uuid) {
    match filter {
        InboxFilter::Waiting => (s.waiting_since.unwrap_or(s.updated_at), s.id),
        InboxFilter::Open | InboxFilter::Live | InboxFilter::Mine => (-s.updated_at, s.id),
    }
}

/// What an agent client holds of its views, built only from the frames it got, and what
/// happened to each line: every appearance and every leave, per filter.
#[derive(Default)]
struct Views {
    lines: HashMap<InboxFilter, Vec<ConversationSummary>>,
    counts: Option<InboxCounts>,
    appeared: HashMap<(InboxFilter, Uuid), usize>,
    left: HashMap<(InboxFilter, Uuid), usize>,
    /// Every conversation any inbox frame named.
    named: Vec<Uuid>,
}

impl Views {
    fn shows(&self, filter: InboxFilter, id: Uuid) -> bool {
        self.lines
            .get(&filter)
            .is_some_and(|l| l.iter().any(|s| s.id == id))
    }

    fn ids(&self, filter: InboxFilter) -> Vec<Uuid> {
        self.lines
            .get(&filter)
            .map(|l| l.iter().map(|s| s.id).collect())
            .unwrap_or_default()
    }

    fn add(&mut self, filter: InboxFilter, line: ConversationSummary) {
        if !self.shows(filter, line.id) {
            *self.appeared.entry((filter, line.id)).or_default() += 1;
        }
        let lines = self.lines.entry(filter).or_default();
        lines.retain(|s| s.id != line.id);
        lines.push(line);
        lines.sort_by_key(|s| order(filter, s));
    }

    fn apply(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::InboxPage(page) => {
                if page.after.is_none() {
                    self.lines.insert(page.filter, vec![]);
                }
                for line in &page.lines {
                    assert!(
                        !self.shows(page.filter, line.id),
                        "a page repeats a line the agent already has: {line:?}"
                    );
                    self.named.push(line.id);
                    self.add(page.filter, line.clone());
                }
                self.counts = Some(page.counts);
            }
            ServerFrame::InboxLine { filter, line } => {
                self.named.push(line.id);
                self.add(*filter, line.clone());
            }
            ServerFrame::InboxLeave {
                filter,
                conversation_id,
                ..
            } => {
                self.named.push(*conversation_id);
                assert!(
                    self.shows(*filter, *conversation_id),
                    "a leave for a line the agent does not have in {filter:?}"
                );
                *self.left.entry((*filter, *conversation_id)).or_default() += 1;
                if let Some(lines) = self.lines.get_mut(filter) {
                    lines.retain(|s| s.id != *conversation_id);
                }
            }
            ServerFrame::InboxCounts(counts) => self.counts = Some(*counts),
            ServerFrame::Conversation(s) => self.named.push(s.id),
            _ => {}
        }
    }
}

/// An agent connection and its views.
struct Agent {
    ws: WsClient,
    views: Views,
}

impl Agent {
    async fn connect(server: &TestServer, email: &str) -> Self {
        let token = agent_login(server, "demo", email, Role::Agent).await;
        let (ws, _) = WsClient::agent(&server.ws_url(), &token).await;
        Self {
            ws,
            views: Views::default(),
        }
    }

    /// Asks for a page and waits for it (and applies what came before it).
    async fn page(&mut self, filter: InboxFilter, limit: u32, after: Option<Uuid>) {
        self.ws
            .send(&ClientFrame::Inbox {
                filter,
                limit: Some(limit),
                after,
            })
            .await;
        let views = &mut self.views;
        self.ws
            .until("the inbox page", |f| {
                views.apply(f);
                matches!(f, ServerFrame::InboxPage(p) if p.filter == filter).then_some(())
            })
            .await;
    }

    /// Applies frames until `done` holds.
    async fn until(&mut self, what: &str, done: impl Fn(&Views) -> bool) {
        if done(&self.views) {
            return;
        }
        let views = &mut self.views;
        self.ws
            .until(what, |f| {
                views.apply(f);
                done(views).then_some(())
            })
            .await;
    }

    /// Applies whatever else arrives within `wait` (throttled lines come within a second).
    async fn settle(&mut self, wait: Duration) {
        while let Some(f) = self.ws.try_recv(wait).await {
            self.views.apply(&f);
        }
    }
}

/// A visitor asks for a person; returns the visitor and the waiting conversation.
async fn waiting_visitor(server: &TestServer, n: usize) -> (WsClient, Uuid) {
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    let (conversation, _) = visitor
        .say(None, &format!("v{n}"), "I want to talk to a human")
        .await;
    visitor.recv_state(ConversationState::Waiting).await;
    (visitor, conversation)
}

/// Takes the conversation over (what arrives meanwhile goes to the agent's views).
async fn take_over(agent: &mut Agent, conversation_id: Uuid) {
    agent
        .ws
        .send(&ClientFrame::TakeOver { conversation_id })
        .await;
    let views = &mut agent.views;
    agent
        .ws
        .until("the take-over", |f| match f {
            ServerFrame::State {
                conversation_id: c,
                state: ConversationState::Human,
                ..
            } if *c == conversation_id => Some(()),
            ServerFrame::Error(e) => panic!("take over refused: {e:?}"),
            other => {
                views.apply(other);
                None
            }
        })
        .await;
}

#[tokio::test]
async fn a_conversation_appears_moves_and_leaves_exactly_once_in_the_right_view() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let mut ana = Agent::connect(&server, "ana@demo.test").await;
    ana.page(InboxFilter::Waiting, 50, None).await;
    ana.page(InboxFilter::Mine, 50, None).await;
    assert_eq!(ana.views.ids(InboxFilter::Waiting), Vec::<Uuid>::new());

    // Appear: in waiting.
    let (mut visitor, c) = waiting_visitor(&server, 1).await;
    ana.until("the waiting line", |v| v.shows(InboxFilter::Waiting, c))
        .await;
    assert!(!ana.views.shows(InboxFilter::Mine, c));
    ana.until("one waiting in the counts", |v| {
        v.counts.is_some_and(|n| n.waiting == 1 && n.mine == 0)
    })
    .await;

    // Move: out of waiting, into mine.
    take_over(&mut ana, c).await;
    ana.until("the line in mine", |v| {
        v.shows(InboxFilter::Mine, c) && !v.shows(InboxFilter::Waiting, c)
    })
    .await;
    let line = ana.views.lines[&InboxFilter::Mine][0].clone();
    assert_eq!(line.state, ConversationState::Human);
    assert_eq!(line.assignee.map(|a| a.name), Some("ana".to_owned()));

    // The visitor writes: the line changes in place, it does not appear again.
    visitor.say(Some(c), "v1-2", "Are you there?").await;
    ana.until("the new preview", |v| {
        v.lines[&InboxFilter::Mine]
            .iter()
            .any(|s| s.id == c && s.preview == "Are you there?")
    })
    .await;

    // Leave: resolved.
    ana.ws
        .send(&ClientFrame::Resolve {
            conversation_id: c,
            teach: None,
        })
        .await;
    ana.until("the line gone from mine", |v| {
        !v.shows(InboxFilter::Mine, c)
    })
    .await;
    ana.until("nothing in the counts", |v| {
        v.counts
            .is_some_and(|n| n.open == 0 && n.waiting == 0 && n.mine == 0)
    })
    .await;
    ana.settle(Duration::from_millis(1_500)).await;

    for filter in [InboxFilter::Waiting, InboxFilter::Mine] {
        assert_eq!(
            ana.views.appeared.get(&(filter, c)),
            Some(&1),
            "appeared once in {filter:?}"
        );
        assert_eq!(
            ana.views.left.get(&(filter, c)),
            Some(&1),
            "left once in {filter:?}"
        );
    }
    assert!(ana.views.lines.values().all(Vec::is_empty));
}

#[tokio::test]
async fn pages_give_every_waiting_conversation_exactly_once_while_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let mut visitors = Vec::new();
    let mut waiting = Vec::new();
    for n in 0..12 {
        let (v, c) = waiting_visitor(&server, n).await;
        visitors.push(v);
        waiting.push(c);
    }
    let mut ana = Agent::connect(&server, "ana@demo.test").await;
    let mut ben = Agent::connect(&server, "ben@demo.test").await;

    ana.page(InboxFilter::Waiting, 5, None).await;
    let first = ana.views.ids(InboxFilter::Waiting);
    assert_eq!(first.len(), 5);
    assert_eq!(ana.views.counts.map(|c| c.waiting), Some(12));

    // Between the pages: ben takes one shown line and one not shown yet, a new visitor waits.
    let shown = first[1];
    let beyond = *waiting
        .iter()
        .rfind(|c| !first.contains(c))
        .expect("more waiting than one page");
    take_over(&mut ben, shown).await;
    take_over(&mut ben, beyond).await;
    let (v, newest) = waiting_visitor(&server, 12).await;
    visitors.push(v);
    ana.until("the counts after the changes", |v| {
        v.counts.is_some_and(|c| c.waiting == 11)
    })
    .await;
    assert!(
        !ana.views.shows(InboxFilter::Waiting, shown),
        "the taken line left"
    );
    assert_eq!(
        ana.views.ids(InboxFilter::Waiting).len(),
        5,
        "the next line moved up into the view"
    );

    let last = ana.views.ids(InboxFilter::Waiting).last().copied();
    ana.page(InboxFilter::Waiting, 5, last).await;
    assert_eq!(ana.views.ids(InboxFilter::Waiting).len(), 10);

    // Another change before the last page: a line of the second page is taken.
    let second = ana.views.ids(InboxFilter::Waiting)[7];
    take_over(&mut ben, second).await;
    ana.until("the counts after the take-over", |v| {
        v.counts.is_some_and(|c| c.waiting == 10)
    })
    .await;
    let last = ana.views.ids(InboxFilter::Waiting).last().copied();
    ana.page(InboxFilter::Waiting, 5, last).await;
    let done = ana.views.ids(InboxFilter::Waiting);

    // Exactly the waiting conversations, in order, each once (the pages' own check).
    let site = server.site("demo").await;
    let mut expected: Vec<ConversationSummary> = server
        .state
        .store
        .open_conversations(site.id, 200)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.snapshot.state == ConversationState::Waiting)
        .map(|c| c.summary(String::new(), Default::default()))
        .collect();
    expected.sort_by_key(|s| order(InboxFilter::Waiting, s));
    let expected: Vec<Uuid> = expected.iter().map(|s| s.id).collect();
    assert_eq!(done, expected);
    assert_eq!(done.len(), 10);
    assert!(done.contains(&newest));
    for c in [shown, beyond, second] {
        assert!(!done.contains(&c));
    }
    let last_page = ana.ws.seen.iter().rev().find_map(|f| match f {
        ServerFrame::InboxPage(p) => Some(p.has_more),
        _ => None,
    });
    assert_eq!(last_page, Some(false), "nothing more to load");
}

#[tokio::test]
async fn a_view_gets_nothing_about_conversations_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let mut ana = Agent::connect(&server, "ana@demo.test").await;
    let mut ben = Agent::connect(&server, "ben@demo.test").await;
    ben.page(InboxFilter::Mine, 50, None).await;
    ana.page(InboxFilter::Mine, 50, None).await;

    // Ana's conversation: waiting, taken, written to, resolved; none of it in ben's mine.
    let (mut visitor, c) = waiting_visitor(&server, 1).await;
    take_over(&mut ana, c).await;
    visitor.say(Some(c), "v1-2", "Thanks for taking this").await;
    ana.ws
        .send(&frames::send(Some(c), "a-1", "You're welcome"))
        .await;
    let views = &mut ana.views;
    ana.ws
        .until("the ack of a-1", |f| {
            views.apply(f);
            matches!(f, ServerFrame::Ack { .. }).then_some(())
        })
        .await;
    ana.ws
        .send(&ClientFrame::Resolve {
            conversation_id: c,
            teach: None,
        })
        .await;
    ana.until("ana's line gone", |v| {
        v.appeared.contains_key(&(InboxFilter::Mine, c)) && !v.shows(InboxFilter::Mine, c)
    })
    .await;

    // Ben's own conversation does reach his view.
    let (_visitor, own) = waiting_visitor(&server, 2).await;
    take_over(&mut ben, own).await;
    ben.until("ben's own line", |v| v.shows(InboxFilter::Mine, own))
        .await;
    ben.settle(Duration::from_millis(1_500)).await;
    assert!(
        !ben.views.named.contains(&c),
        "ben's view named a conversation outside it: {:?}",
        ben.ws.seen
    );
    assert!(ben.views.counts.is_some_and(|n| n.mine == 1));
}
