//! The agents' inbox: a site's open conversations as lines, in memory while agents of the
//! site are connected, and each agent connection's views of them.
//!
//! A view is one filter ([`InboxFilter`]: open, waiting, live AI, mine) in that filter's order,
//! cut after its first `limit` lines: the first page, plus every page "load more" added. A line
//! published on the site (this instance's commits through
//! [`crate::live::hub::Hub::publish_site`], the other instances' through the fan-out) updates
//! the site's lines and then only the views the line was or is in: a view gets the line when it
//! appeared there or changed while shown, a leave when it went (it changed, or newer lines
//! pushed it past the view's end), and the line that moved up into the view's last place.
//! Nothing is sent for conversations a view does not show, and nothing is done per agent for
//! them: a line costs a few ordered-set operations per view it touches, whatever the number of
//! open conversations.
//!
//! The lines of a site are read from the store in one query ([`Store::open_inbox`]) when its
//! first agent connects, and dropped when its last agent leaves; lines published while they are
//! read are applied after, and a line older than the one held (by `last_seq`) is ignored.
//!
//! Each agent connection holds a [`InboxSession`]: its views, and what they have to send. The
//! site's lock queues the deltas and wakes the connection ([`InboxSession::notified`]); the
//! connection takes them ([`InboxSession::take`]) and writes them together. A connection that
//! lets more than [`MAX_PENDING`] pile up gets its views whole again instead.
//!
//! A connection that never asks for a view (an older client) has the legacy view: the first
//! 200 open conversations, most recently active first, as `conversation` frames, then a
//! `conversation` frame for every line that appears or changes in it and for a line that left
//! it because it changed (resolved); no counts, no leaves.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nexus_shared::{
    ConversationState, ConversationSummary, ErrorBody, ErrorCode, INBOX_PAGE, InboxCounts,
    InboxFilter, InboxPage, ServerFrame, VisitorInfo, limits,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::{Store, store_error_body};

type Line = Arc<ConversationSummary>;
/// A line's place in a filter: smaller first; the id breaks ties.
type Key = (i64, Uuid);

/// Lines of a site read from the store, at most.
const MAX_LINES: u32 = 100_000;
/// The legacy view's length: what older clients got on connect.
const LEGACY_LIMIT: usize = limits::MAX_HISTORY_PAGE as usize;
/// The largest page.
const MAX_PAGE: u32 = limits::MAX_HISTORY_PAGE;
/// The largest view (its pages together).
pub const MAX_VIEW: usize = 5_000;
/// Deltas a connection may leave untaken before it gets its views whole instead.
pub const MAX_PENDING: usize = 512;
/// Resolved conversations remembered (so that a late, older line does not bring one back).
const CLOSED_KEPT: usize = 10_000;

/// The ordered set a line belongs to, per filter (the agent's own for `mine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Open,
    Waiting,
    Live,
    Mine(Uuid),
}

impl Target {
    fn of(filter: InboxFilter, agent: Uuid) -> Self {
        match filter {
            InboxFilter::Open => Self::Open,
            InboxFilter::Waiting => Self::Waiting,
            InboxFilter::Live => Self::Live,
            InboxFilter::Mine => Self::Mine(agent),
        }
    }
}

/// The sets `line` is in: none once resolved, else `open` and the one of its state.
fn targets(line: &ConversationSummary) -> Vec<Target> {
    match line.state {
        ConversationState::Resolved => vec![],
        ConversationState::Ai => vec![Target::Open, Target::Live],
        ConversationState::Waiting => vec![Target::Open, Target::Waiting],
        ConversationState::Human => match &line.assignee {
            Some(agent) => vec![Target::Open, Target::Mine(agent.id)],
            None => vec![Target::Open],
        },
    }
}

/// The order of a filter: waiting ones longest waiting first, the others most recently
/// active first (as the agent app shows them).
fn key(target: Target, line: &ConversationSummary) -> Key {
    match target {
        Target::Waiting => (line.waiting_since.unwrap_or(line.updated_at), line.id),
        Target::Open | Target::Live | Target::Mine(_) => {
            (line.updated_at.saturating_neg(), line.id)
        }
    }
}

/// One connection's view of one filter: exactly the first `limit` keys of its target's set
/// (all of them when there are fewer).
struct View {
    session: u64,
    filter: InboxFilter,
    target: Target,
    limit: usize,
    shown: BTreeSet<Key>,
    legacy: bool,
}

/// What changed in a view when one line's key went from `old` to `new` (`None`: not in the
/// set), the set already updated.
struct Repair {
    /// The line was shown before, and is shown after.
    before: bool,
    after: bool,
    /// Other lines that came into the view, and that left it.
    entered: Vec<Key>,
    left: Vec<Key>,
}

impl View {
    fn new(session: u64, filter: InboxFilter, target: Target, limit: usize, legacy: bool) -> Self {
        Self {
            session,
            filter,
            target,
            limit,
            shown: BTreeSet::new(),
            legacy,
        }
    }

    /// Fills the view from `set` up to its limit; returns the keys that came in.
    fn fill(&mut self, set: &BTreeSet<Key>) -> Vec<Key> {
        let mut entered = Vec::new();
        while self.shown.len() < self.limit {
            let next = match self.shown.last() {
                Some(last) => set.range((Bound::Excluded(*last), Bound::Unbounded)).next(),
                None => set.iter().next(),
            };
            let Some(&k) = next else { break };
            self.shown.insert(k);
            entered.push(k);
        }
        entered
    }

    fn repair(&mut self, set: &BTreeSet<Key>, old: Option<Key>, new: Option<Key>) -> Repair {
        // A view short of its limit held the whole set; a full one ends at its last key.
        let full = self.shown.len() >= self.limit;
        let end = self.shown.last().copied();
        let before = old.is_some_and(|k| self.shown.remove(&k));
        if let Some(k) = new
            && (!full || end.is_some_and(|end| k < end))
        {
            self.shown.insert(k);
        }
        let mut left = Vec::new();
        while self.shown.len() > self.limit {
            if let Some(k) = self.shown.pop_last() {
                left.push(k);
            }
        }
        let mut entered = self.fill(set);
        let after = new.is_some_and(|k| self.shown.contains(&k));
        let own = |k: &Key| new.is_none_or(|n| *k != n);
        entered.retain(own);
        left.retain(own);
        Repair {
            before,
            after,
            entered,
            left,
        }
    }
}

/// A delta waiting for its connection.
enum Delta {
    Line(InboxFilter, Line),
    Leave(InboxFilter, Uuid, ConversationState),
    /// A `conversation` frame (the legacy view).
    Legacy(Line),
}

/// A connection's state at its site.
struct Session {
    agent: Uuid,
    notify: Arc<Notify>,
    views: HashMap<InboxFilter, u64>,
    pending: Vec<Delta>,
    /// The counts changed since they were last taken.
    counts: bool,
    /// Too much was pending: the views go whole.
    resync: bool,
}

impl Session {
    fn push(&mut self, delta: Delta) {
        if self.resync {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.clear();
            self.resync = true;
        } else {
            self.pending.push(delta);
        }
    }

    /// Has a view that is not the legacy one (and so gets counts)?
    fn counted(&self, views: &HashMap<u64, View>) -> bool {
        self.views
            .values()
            .any(|v| views.get(v).is_some_and(|v| !v.legacy))
    }
}

#[derive(Default)]
struct SiteInbox {
    /// The lines are read and kept up to date.
    ready: bool,
    /// Lines published while the lines are read from the store (`Some` while reading).
    buffer: Option<Vec<Line>>,
    lines: HashMap<Uuid, Line>,
    sets: HashMap<Target, BTreeSet<Key>>,
    /// Resolved conversations with their last sequence number.
    closed: HashMap<Uuid, u64>,
    views: HashMap<u64, View>,
    by_target: HashMap<Target, Vec<u64>>,
    sessions: HashMap<u64, Session>,
    next_view: u64,
}

/// The line with the visitor details of `old` when it has none of its own (a commit's line
/// carries none; the store's does).
fn with_visitor(line: Line, old: Option<&ConversationSummary>) -> Line {
    match old {
        Some(old) if line.visitor == VisitorInfo::default() && old.visitor != line.visitor => {
            let mut merged = (*line).clone();
            merged.visitor = old.visitor.clone();
            Arc::new(merged)
        }
        _ => line,
    }
}

impl SiteInbox {
    /// Applies one published line: the sets, then the views it was or is in.
    fn apply(&mut self, line: Line) {
        if let Some(buffer) = &mut self.buffer {
            buffer.push(line);
            return;
        }
        if !self.ready {
            return;
        }
        let id = line.id;
        let old = self.lines.get(&id).cloned();
        match &old {
            Some(old) if line.last_seq < old.last_seq => return,
            None if self
                .closed
                .get(&id)
                .is_some_and(|&seq| line.last_seq <= seq) =>
            {
                return;
            }
            _ => {}
        }
        let line = with_visitor(line, old.as_deref());
        if line.state == ConversationState::Resolved {
            self.lines.remove(&id);
            if self.closed.len() >= CLOSED_KEPT {
                self.closed.clear();
            }
            self.closed.insert(id, line.last_seq);
        } else {
            self.lines.insert(id, line.clone());
            self.closed.remove(&id);
        }
        let was = old.as_deref().map(targets).unwrap_or_default();
        let now = targets(&line);
        let mut touched = was.clone();
        touched.extend(now.iter().filter(|t| !was.contains(t)));
        let Self {
            lines,
            sets,
            views,
            by_target,
            sessions,
            ..
        } = self;
        for &target in &touched {
            let old_key = old
                .as_deref()
                .filter(|_| was.contains(&target))
                .map(|o| key(target, o));
            let new_key = now.contains(&target).then(|| key(target, &line));
            let set = sets.entry(target).or_default();
            if let Some(k) = old_key {
                set.remove(&k);
            }
            if let Some(k) = new_key {
                set.insert(k);
            }
            for view_id in by_target.get(&target).into_iter().flatten() {
                let Some(view) = views.get_mut(view_id) else {
                    continue;
                };
                let Some(session) = sessions.get_mut(&view.session) else {
                    continue;
                };
                let repair = view.repair(set, old_key, new_key);
                let mut woke = false;
                let mut push = |delta| {
                    session.push(delta);
                    woke = true;
                };
                if repair.after {
                    push(if view.legacy {
                        Delta::Legacy(line.clone())
                    } else {
                        Delta::Line(view.filter, line.clone())
                    });
                } else if repair.before {
                    if !view.legacy {
                        push(Delta::Leave(view.filter, id, line.state));
                    } else if new_key.is_none() {
                        push(Delta::Legacy(line.clone()));
                    }
                }
                for (_, other) in repair.entered {
                    if let Some(l) = lines.get(&other) {
                        push(if view.legacy {
                            Delta::Legacy(l.clone())
                        } else {
                            Delta::Line(view.filter, l.clone())
                        });
                    }
                }
                if !view.legacy {
                    for (_, other) in repair.left {
                        let state = lines
                            .get(&other)
                            .map_or(ConversationState::Resolved, |l| l.state);
                        push(Delta::Leave(view.filter, other, state));
                    }
                }
                if woke {
                    session.notify.notify_one();
                }
            }
            if set.is_empty() {
                sets.remove(&target);
            }
        }
        // Counts: every counted connection when open, waiting or live changed; the agent's
        // own when their `mine` did.
        let changed: Vec<Target> = was
            .iter()
            .filter(|t| !now.contains(t))
            .chain(now.iter().filter(|t| !was.contains(t)))
            .copied()
            .collect();
        if changed.is_empty() {
            return;
        }
        let site_wide = changed.iter().any(|t| !matches!(t, Target::Mine(_)));
        for session in sessions.values_mut() {
            let concerned = site_wide || changed.contains(&Target::Mine(session.agent));
            if concerned && !session.counts && session.counted(views) {
                session.counts = true;
                session.notify.notify_one();
            }
        }
    }

    /// Replaces the lines with those read from the store, then applies what was published
    /// meanwhile.
    fn load(&mut self, rows: Vec<Line>) {
        self.lines.clear();
        self.sets.clear();
        for line in rows {
            if line.state == ConversationState::Resolved {
                continue;
            }
            for target in targets(&line) {
                self.sets
                    .entry(target)
                    .or_default()
                    .insert(key(target, &line));
            }
            self.lines.insert(line.id, line);
        }
        self.ready = true;
        for line in self.buffer.take().unwrap_or_default() {
            self.apply(line);
        }
    }

    /// Forgets the lines (the site's last connection left).
    fn unload(&mut self) {
        self.ready = false;
        self.lines = HashMap::new();
        self.sets = HashMap::new();
        self.closed = HashMap::new();
    }

    fn counts(&self, agent: Uuid) -> InboxCounts {
        let len = |t| {
            self.sets
                .get(&t)
                .map_or(0, |s| u32::try_from(s.len()).unwrap_or(u32::MAX))
        };
        InboxCounts {
            open: len(Target::Open),
            waiting: len(Target::Waiting),
            live: len(Target::Live),
            mine: len(Target::Mine(agent)),
        }
    }

    fn line(&self, k: &Key) -> Option<ConversationSummary> {
        self.lines.get(&k.1).map(|l| (**l).clone())
    }

    /// Adds a view (of its session); returns its id.
    fn add_view(&mut self, view: View) -> u64 {
        self.next_view += 1;
        let id = self.next_view;
        let target = view.target;
        self.views.insert(id, view);
        self.by_target.entry(target).or_default().push(id);
        id
    }

    fn remove_view(&mut self, id: u64) {
        if let Some(view) = self.views.remove(&id)
            && let Some(ids) = self.by_target.get_mut(&view.target)
        {
            ids.retain(|v| *v != id);
            if ids.is_empty() {
                self.by_target.remove(&view.target);
            }
        }
    }

    /// The whole of a view as frames: a first page, or `conversation` frames (legacy).
    fn whole(&self, agent: Uuid, view_id: u64) -> Vec<ServerFrame> {
        let Some(view) = self.views.get(&view_id) else {
            return vec![];
        };
        let lines = view.shown.iter().filter_map(|k| self.line(k));
        if view.legacy {
            return lines.map(ServerFrame::Conversation).collect();
        }
        let total = self.sets.get(&view.target).map_or(0, BTreeSet::len);
        vec![ServerFrame::InboxPage(InboxPage {
            filter: view.filter,
            after: None,
            lines: lines.collect(),
            has_more: total > view.shown.len(),
            counts: self.counts(agent),
        })]
    }

    /// What a session has to send, taken.
    fn take(&mut self, session_id: u64) -> Vec<ServerFrame> {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return vec![];
        };
        let agent = session.agent;
        if std::mem::take(&mut session.resync) {
            session.pending.clear();
            session.counts = false;
            let mut ids: Vec<u64> = session.views.values().copied().collect();
            ids.sort_unstable();
            return ids
                .into_iter()
                .flat_map(|id| self.whole(agent, id))
                .collect();
        }
        let counts = std::mem::take(&mut session.counts);
        let mut out: Vec<ServerFrame> = session
            .pending
            .drain(..)
            .map(|delta| match delta {
                Delta::Line(filter, line) => ServerFrame::InboxLine {
                    filter,
                    line: (*line).clone(),
                },
                Delta::Leave(filter, conversation_id, state) => ServerFrame::InboxLeave {
                    filter,
                    conversation_id,
                    state,
                },
                Delta::Legacy(line) => ServerFrame::Conversation((*line).clone()),
            })
            .collect();
        if counts {
            out.push(ServerFrame::InboxCounts(self.counts(agent)));
        }
        out
    }

    /// A page of `filter` for a session: the first (the view starts again) or the next.
    fn page(
        &mut self,
        session_id: u64,
        filter: InboxFilter,
        limit: Option<u32>,
        after: Option<Uuid>,
    ) -> Result<Vec<ServerFrame>, ErrorBody> {
        let limit = limit.unwrap_or(INBOX_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ErrorBody::new(
                ErrorCode::Validation,
                format!("An inbox page has 1 to {MAX_PAGE} lines."),
            ));
        }
        let limit = limit as usize;
        // What is pending goes first: the page is right as of after it.
        let mut out = self.take(session_id);
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return Ok(out);
        };
        let agent = session.agent;
        let target = Target::of(filter, agent);
        // Asking for a view ends the legacy one.
        let legacy = session
            .views
            .get(&InboxFilter::Open)
            .copied()
            .filter(|id| self.views.get(id).is_some_and(|v| v.legacy));
        if let Some(id) = legacy {
            session.views.remove(&InboxFilter::Open);
            self.remove_view(id);
        }
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return Ok(out);
        };
        let existing = session.views.get(&filter).copied();
        let empty = BTreeSet::new();
        let lines = match (after, existing) {
            (None, _) => {
                if let Some(id) = existing {
                    session.views.remove(&filter);
                    self.remove_view(id);
                }
                let mut view = View::new(session_id, filter, target, limit, false);
                let entered = view.fill(self.sets.get(&target).unwrap_or(&empty));
                let id = self.add_view(view);
                if let Some(session) = self.sessions.get_mut(&session_id) {
                    session.views.insert(filter, id);
                }
                entered
            }
            (Some(_), None) => {
                return Err(ErrorBody::new(
                    ErrorCode::Validation,
                    "Ask for the first page of this inbox filter before the next one.",
                ));
            }
            (Some(_), Some(id)) => {
                let set = self.sets.get(&target).unwrap_or(&empty);
                let Some(view) = self.views.get_mut(&id) else {
                    return Ok(out);
                };
                if view.limit + limit > MAX_VIEW {
                    return Err(ErrorBody::new(
                        ErrorCode::Validation,
                        format!("An inbox view shows at most {MAX_VIEW} lines."),
                    ));
                }
                view.limit += limit;
                view.fill(set)
            }
        };
        let shown = self
            .sessions
            .get(&session_id)
            .and_then(|s| s.views.get(&filter))
            .and_then(|id| self.views.get(id))
            .map_or(0, |v| v.shown.len());
        let total = self.sets.get(&target).map_or(0, BTreeSet::len);
        out.push(ServerFrame::InboxPage(InboxPage {
            filter,
            after,
            lines: lines.iter().filter_map(|k| self.line(k)).collect(),
            has_more: total > shown,
            counts: self.counts(agent),
        }));
        Ok(out)
    }
}

/// A site's inbox and the wake-up for those waiting while its lines are read.
#[derive(Default)]
struct Slot {
    inbox: Mutex<SiteInbox>,
    loaded: Notify,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SiteInbox> {
        // Every change under this lock leaves the maps consistent before anything can panic
        // (the ordered-set operations do not), so a poisoned lock is still usable.
        self.inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Every site's inbox on this instance (see the [module](self) documentation).
#[derive(Default)]
pub struct Inbox {
    sites: Mutex<HashMap<Uuid, Arc<Slot>>>,
    next_session: AtomicU64,
}

impl Inbox {
    fn slot(&self, site: Uuid) -> Option<Arc<Slot>> {
        self.sites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&site)
            .cloned()
    }

    /// A line of `site` changed (a commit here, or on another instance).
    pub fn publish(&self, site: Uuid, line: &ConversationSummary) {
        if let Some(slot) = self.slot(site) {
            slot.lock().apply(Arc::new(line.clone()));
        }
    }

    /// Opens an agent connection's inbox at `site`, with the legacy view; returns it and that
    /// view's lines as `conversation` frames. Reads the site's lines first when no other
    /// connection of the site has.
    pub async fn open(
        &self,
        store: Arc<dyn Store>,
        site: Uuid,
        agent: Uuid,
    ) -> Result<(InboxSession, Vec<ServerFrame>), ErrorBody> {
        let slot = self
            .sites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(site)
            .or_default()
            .clone();
        let id = self.next_session.fetch_add(1, Ordering::Relaxed) + 1;
        let notify = Arc::new(Notify::new());
        loop {
            let loaded = slot.loaded.notified();
            tokio::pin!(loaded);
            loaded.as_mut().enable();
            let read = {
                let mut inbox = slot.lock();
                if inbox.ready {
                    inbox.sessions.insert(
                        id,
                        Session {
                            agent,
                            notify: notify.clone(),
                            views: HashMap::new(),
                            pending: Vec::new(),
                            counts: false,
                            resync: false,
                        },
                    );
                    let mut view =
                        View::new(id, InboxFilter::Open, Target::Open, LEGACY_LIMIT, true);
                    view.fill(inbox.sets.get(&Target::Open).unwrap_or(&BTreeSet::new()));
                    let view_id = inbox.add_view(view);
                    if let Some(session) = inbox.sessions.get_mut(&id) {
                        session.views.insert(InboxFilter::Open, view_id);
                    }
                    let frames = inbox.whole(agent, view_id);
                    drop(inbox);
                    return Ok((
                        InboxSession {
                            slot: slot.clone(),
                            id,
                            notify,
                        },
                        frames,
                    ));
                }
                let first = inbox.buffer.is_none();
                if first {
                    inbox.buffer = Some(Vec::new());
                }
                first
            };
            if read {
                // On a task of its own: a connection that goes away meanwhile does not leave
                // the others waiting.
                let (slot, store) = (slot.clone(), store.clone());
                let done = tokio::spawn(async move {
                    let rows = store.open_inbox(site, MAX_LINES).await;
                    let mut inbox = slot.lock();
                    let result = match rows {
                        Ok(rows) => {
                            inbox.load(
                                rows.into_iter()
                                    .map(|(c, preview)| {
                                        Arc::new(c.summary(
                                            preview.chars().take(140).collect(),
                                            VisitorInfo {
                                                page_url: c.page_url.clone(),
                                                locale: c.locale.clone(),
                                                ..Default::default()
                                            },
                                        ))
                                    })
                                    .collect(),
                            );
                            Ok(())
                        }
                        Err(e) => {
                            inbox.buffer = None;
                            Err(store_error_body(&e))
                        }
                    };
                    drop(inbox);
                    slot.loaded.notify_waiters();
                    result
                });
                match done.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return Err(ErrorBody::new(
                            ErrorCode::Internal,
                            "The inbox could not be read.",
                        ));
                    }
                }
            } else {
                loaded.await;
            }
        }
    }

    /// Sites with their lines in memory, and lines held (for metrics and tests).
    pub fn held(&self) -> (usize, usize) {
        let slots: Vec<Arc<Slot>> = self
            .sites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        slots.iter().fold((0, 0), |(sites, lines), slot| {
            let inbox = slot.lock();
            if inbox.ready {
                (sites + 1, lines + inbox.lines.len())
            } else {
                (sites, lines)
            }
        })
    }
}

/// One agent connection's inbox: its views at its site. Dropping it ends them.
pub struct InboxSession {
    slot: Arc<Slot>,
    id: u64,
    notify: Arc<Notify>,
}

impl InboxSession {
    /// Completes when there is something to take.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// The deltas and counts waiting for this connection, as frames, in order.
    pub fn take(&self) -> Vec<ServerFrame> {
        self.slot.lock().take(self.id)
    }

    /// The answer to `inbox`: what was pending, then the page.
    pub fn page(
        &self,
        filter: InboxFilter,
        limit: Option<u32>,
        after: Option<Uuid>,
    ) -> Result<Vec<ServerFrame>, ErrorBody> {
        self.slot.lock().page(self.id, filter, limit, after)
    }

    /// The connection may have missed something: its views go whole with the next take.
    pub fn resync(&self) {
        if let Some(session) = self.slot.lock().sessions.get_mut(&self.id) {
            session.pending.clear();
            session.resync = true;
        }
        self.notify.notify_one();
    }
}

impl Drop for InboxSession {
    fn drop(&mut self) {
        let mut inbox = self.slot.lock();
        if let Some(session) = inbox.sessions.remove(&self.id) {
            for id in session.views.into_values() {
                inbox.remove_view(id);
            }
        }
        if inbox.sessions.is_empty() && inbox.ready {
            inbox.unload();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use nexus_shared::AgentRef;

    use super::*;

    /// A small deterministic generator (xorshift), so a failure repeats.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn agent(n: u64) -> AgentRef {
        AgentRef {
            id: Uuid::from_u128(1_000 + u128::from(n)),
            name: format!("agent {n}"),
        }
    }

    fn session(agent: Uuid) -> Session {
        Session {
            agent,
            notify: Arc::new(Notify::new()),
            views: HashMap::new(),
            pending: Vec::new(),
            counts: false,
            resync: false,
        }
    }

    /// The view as it must be: the first `limit` lines of its filter, recomputed from scratch.
    fn expected(inbox: &SiteInbox, view: &View) -> Vec<Key> {
        let mut keys: Vec<Key> = inbox
            .lines
            .values()
            .filter(|l| targets(l).contains(&view.target))
            .map(|l| key(view.target, l))
            .collect();
        keys.sort_unstable();
        keys.truncate(view.limit);
        keys
    }

    /// What a client holds, from the frames alone.
    #[derive(Default)]
    struct Client {
        views: HashMap<InboxFilter, HashSet<Uuid>>,
    }

    impl Client {
        fn apply(&mut self, frame: &ServerFrame) {
            match frame {
                ServerFrame::InboxPage(page) => {
                    let view = self.views.entry(page.filter).or_default();
                    if page.after.is_none() {
                        view.clear();
                    }
                    for line in &page.lines {
                        assert!(view.insert(line.id), "a page repeated a line");
                    }
                }
                ServerFrame::InboxLine { filter, line } => {
                    self.views.entry(*filter).or_default().insert(line.id);
                }
                ServerFrame::InboxLeave {
                    filter,
                    conversation_id,
                    ..
                } => {
                    let view = self.views.entry(*filter).or_default();
                    assert!(view.remove(conversation_id), "left a line it did not show");
                }
                _ => {}
            }
        }
    }

    #[test]
    fn views_stay_the_first_lines_of_their_filter_through_random_changes() {
        let mut inbox = SiteInbox::default();
        inbox.load(vec![]);
        let filters = [
            InboxFilter::Open,
            InboxFilter::Waiting,
            InboxFilter::Live,
            InboxFilter::Mine,
        ];
        let sessions: Vec<u64> = (1..=4).collect();
        let mut clients: HashMap<u64, Client> = HashMap::new();
        for &s in &sessions {
            // Session 4 is agent 0's second connection, and a slow one.
            inbox.sessions.insert(s, session(agent((s - 1) % 3).id));
            for &f in &filters {
                let frames = inbox.page(s, f, Some(1 + s as u32), None).unwrap();
                let client = clients.entry(s).or_default();
                frames.iter().for_each(|f| client.apply(f));
            }
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut seqs: HashMap<u128, u64> = HashMap::new();
        for step in 1..4_000i64 {
            let n = u128::from(rng.below(40));
            let seq = seqs.entry(n).or_default();
            *seq += 1;
            let state = match rng.below(4) {
                0 => ConversationState::Ai,
                1 => ConversationState::Waiting,
                2 => ConversationState::Human,
                _ => ConversationState::Resolved,
            };
            let waiting = state == ConversationState::Waiting;
            let line = ConversationSummary {
                id: Uuid::from_u128(n + 1),
                state,
                assignee: (state == ConversationState::Human).then(|| agent(rng.below(3))),
                handoff_reason: None,
                last_seq: *seq,
                preview: format!("step {step}"),
                created_at: 0,
                updated_at: step,
                waiting_since: waiting.then(|| step - rng.below(50) as i64),
                visitor: VisitorInfo::default(),
            };
            inbox.apply(Arc::new(line));
            // An older line (another instance's, late) changes nothing.
            if rng.below(10) == 0 && *seq > 1 {
                let stale = ConversationSummary {
                    id: Uuid::from_u128(n + 1),
                    state: ConversationState::Waiting,
                    assignee: None,
                    handoff_reason: None,
                    last_seq: *seq - 1,
                    preview: String::new(),
                    created_at: 0,
                    updated_at: step,
                    waiting_since: Some(0),
                    visitor: VisitorInfo::default(),
                };
                inbox.apply(Arc::new(stale));
            }
            let s = sessions[rng.below(4) as usize];
            let f = filters[rng.below(4) as usize];
            match rng.below(40) {
                0 => {
                    let frames = inbox.page(s, f, Some(2), Some(Uuid::nil())).unwrap();
                    let client = clients.entry(s).or_default();
                    frames.iter().for_each(|f| client.apply(f));
                }
                1 => {
                    let frames = inbox
                        .page(s, f, Some(1 + rng.below(4) as u32), None)
                        .unwrap();
                    let client = clients.entry(s).or_default();
                    frames.iter().for_each(|f| client.apply(f));
                }
                _ => {}
            }
            for &s in &sessions {
                // The slow connection takes rarely: past the limit it gets its views whole.
                if s == 4 && step % 1_500 != 0 {
                    continue;
                }
                let frames = inbox.take(s);
                let client = clients.entry(s).or_default();
                frames.iter().for_each(|f| client.apply(f));
                for (&filter, id) in &inbox.sessions[&s].views {
                    let view = &inbox.views[id];
                    let want = expected(&inbox, view);
                    let shown: Vec<Key> = view.shown.iter().copied().collect();
                    assert_eq!(shown, want, "step {step}: view {filter:?} of {s}");
                    let held: HashSet<Uuid> = want.iter().map(|k| k.1).collect();
                    assert_eq!(
                        client.views.get(&filter).cloned().unwrap_or_default(),
                        held,
                        "step {step}: what client {s} holds of {filter:?}"
                    );
                }
            }
        }
        let counts = inbox.counts(agent(0).id);
        let open = inbox.lines.len();
        assert_eq!(counts.open as usize, open);
        assert!(open > 0 && counts.waiting + counts.live <= counts.open);
    }
}
