//! What follows a commit: its entries and state go to the conversation's subscribers, its
//! inbox line to the site's agents (throttled, [`InboxFeed`]), its events to the site's
//! webhooks, and after an escalation the auto-assignment or the offline notice.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nexus_shared::{ConversationState, ErrorBody, ErrorCode, ServerFrame, Transition, VisitorInfo};
use uuid::Uuid;

use crate::AppState;
use crate::conversation::notices::NOTICES;
use crate::live::hub::Hub;
use crate::model::{Committed, Conversation, Op};
use crate::store::store_error_body;

/// Commits `transition` to a conversation and publishes the result.
pub async fn transition(
    state: &AppState,
    conversation_id: Uuid,
    transition: Transition,
) -> Result<Committed, ErrorBody> {
    let committed = state
        .store
        .commit(
            conversation_id,
            Op::Transition {
                transition,
                notice: None,
                notices: NOTICES,
            },
        )
        .await
        .map_err(|e| store_error_body(&e))?;
    publish(state, &committed);
    Ok(committed)
}

/// Publishes the result of a commit: every new timeline entry to the conversation's
/// subscribers, the new state when it changed, and the inbox line to the site's agents.
pub fn publish(state: &AppState, committed: &Committed) {
    let conversation = &committed.conversation;
    for message in &committed.messages {
        state
            .hub
            .publish_conversation(conversation.id, ServerFrame::Message(message.clone()));
    }
    if committed.state_changed() {
        state.hub.publish_conversation(
            conversation.id,
            ServerFrame::State {
                conversation_id: conversation.id,
                state: conversation.snapshot.state,
                assignee: conversation.snapshot.assignee.clone(),
                reason: (conversation.snapshot.state == ConversationState::Waiting)
                    .then(|| conversation.handoff_reason.clone())
                    .flatten(),
            },
        );
    }
    if !committed.messages.is_empty() {
        let preview = committed
            .messages
            .last()
            .map(|m| m.body.chars().take(140).collect())
            .unwrap_or_default();
        state.inbox.publish(
            &state.hub,
            conversation.site_id,
            conversation.id,
            ServerFrame::Conversation(conversation.summary(preview, VisitorInfo::default())),
            committed.state_changed(),
        );
    }
    after_commit(state, committed);
}

/// How often, at most, a conversation's inbox line goes to the site's agents while only its
/// preview changes (a new message, no change of state or assignee).
pub const INBOX_EVERY: Duration = Duration::from_secs(1);

/// The agents' inbox feed. A conversation's line ([`ServerFrame::Conversation`]) goes to the
/// site's agents at once when its state or assignee changed; when a new message only changed
/// its preview, at most every [`INBOX_EVERY`], and the latest line always follows. Every line
/// goes to every agent of the site: at thousands of messages a second, a line per message
/// would be most of the server's work (and of each agent's).
#[derive(Default)]
pub struct InboxFeed {
    lines: Arc<Mutex<Lines>>,
}

#[derive(Default)]
struct Lines {
    by_conversation: HashMap<Uuid, Line>,
    /// Size at which lines of quiet conversations are dropped.
    sweep_at: usize,
}

struct Line {
    sent_at: Instant,
    /// A newer line waiting for its turn (a send is scheduled).
    pending: Option<(Uuid, ServerFrame)>,
}

fn lock_lines(lines: &Mutex<Lines>) -> std::sync::MutexGuard<'_, Lines> {
    // Only inserts, removes and field updates happen under the lock: a poisoned lock is
    // still consistent.
    lines
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl InboxFeed {
    /// Publishes (now or shortly) the line `frame` of `conversation` to the agents of `site`;
    /// `urgent` when the conversation's state or assignee changed.
    pub fn publish(
        &self,
        hub: &Arc<Hub>,
        site: Uuid,
        conversation: Uuid,
        frame: ServerFrame,
        urgent: bool,
    ) {
        let now = Instant::now();
        let mut lines = lock_lines(&self.lines);
        if lines.by_conversation.len() >= lines.sweep_at.max(1_024) {
            lines
                .by_conversation
                .retain(|_, l| l.pending.is_some() || now - l.sent_at < INBOX_EVERY);
            lines.sweep_at = 2 * lines.by_conversation.len();
        }
        // Published under the lock, so two commits' lines of one conversation go out in the
        // order they were published.
        let line = match lines.by_conversation.entry(conversation) {
            Entry::Vacant(slot) => {
                slot.insert(Line {
                    sent_at: now,
                    pending: None,
                });
                hub.publish_site(site, frame);
                return;
            }
            Entry::Occupied(slot) => slot.into_mut(),
        };
        if urgent || (line.pending.is_none() && now - line.sent_at >= INBOX_EVERY) {
            // A scheduled older line, if any, is superseded.
            line.pending = None;
            line.sent_at = now;
            hub.publish_site(site, frame);
            return;
        }
        let scheduled = line.pending.replace((site, frame)).is_some();
        if scheduled {
            return;
        }
        let due = line.sent_at + INBOX_EVERY;
        let (lines, hub) = (self.lines.clone(), hub.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            let mut lines = lock_lines(&lines);
            if let Some(line) = lines.by_conversation.get_mut(&conversation)
                && let Some((site, frame)) = line.pending.take()
            {
                line.sent_at = Instant::now();
                hub.publish_site(site, frame);
            }
        });
    }
}

/// Hooks run after every published commit: webhooks for its events, and after an escalation
/// the auto-assignment or the offline notice. Never blocks the caller.
fn after_commit(state: &AppState, committed: &Committed) {
    let events = crate::conversation::webhooks::events_of(committed);
    if events.is_empty() {
        return;
    }
    let state = state.clone();
    let conversation = committed.conversation.clone();
    tokio::spawn(async move {
        let site = match state.store.site(conversation.site_id).await {
            Ok(Some(site)) => site,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load the site for commit hooks");
                return;
            }
        };
        state.webhooks.enqueue(&site.settings, &events);
        if events.iter().any(|e| e.event == "escalated")
            && conversation.snapshot.state == ConversationState::Waiting
        {
            after_escalation(&state, &site, &conversation).await;
        }
    });
}

/// A conversation now waits for a person: give it to the next online agent (setting
/// `auto_assign`), or tell the visitor when to expect an answer when nobody can answer now.
async fn after_escalation(
    state: &AppState,
    site: &crate::model::Site,
    conversation: &Conversation,
) {
    if site.settings.auto_assign
        && let Some(agent) = state.presence.next_online(site.id)
    {
        match transition(state, conversation.id, Transition::TakenOver { agent }).await {
            Ok(_) => return,
            // Someone claimed it first: that claim stands.
            Err(e)
                if e.code == ErrorCode::InvalidTransition || e.code == ErrorCode::NotAssignee =>
            {
                return;
            }
            Err(e) => tracing::warn!(error = %e.message, "auto-assignment failed"),
        }
    }
    let notice = crate::model::hours::offline_notice(
        site.settings.business_hours.as_ref(),
        &site.settings.offline_message,
        state.presence.online(site.id),
        jiff::Timestamp::now(),
    );
    if let Some(message) = notice {
        state.hub.publish_conversation(
            conversation.id,
            ServerFrame::Offline {
                conversation_id: conversation.id,
                message,
            },
        );
    }
}
