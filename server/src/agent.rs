//! What agents do to conversations: take over, reply, hand back, transfer, resolve and teach,
//! leave internal notes. Transport-independent; every action is checked against the agent's
//! site and committed through the state machine in the store.

use std::collections::HashMap;
use std::sync::Mutex;

use nexus_shared::DraftDecision;
use nexus_shared::{
    AgentRef, Author, ConversationState, ErrorBody, ErrorCode, Note, Presence, ServerFrame, Teach,
    Transition, limits, validate_body,
};
use uuid::Uuid;

use crate::AppState;
use crate::chat::{publish, validate_client_msg_id};
use crate::engine::KbEntry;
use crate::error::store_error_body;
use crate::store::{Committed, Conversation, NewMessage, Op, User, notice_for, now_ms};

/// Loads a conversation of the agent's own site. Conversations of other sites are reported
/// as missing, not as forbidden, so their ids are not confirmed.
pub async fn site_conversation(
    state: &AppState,
    user: &User,
    id: Uuid,
) -> Result<Conversation, ErrorBody> {
    crate::chat::conversation_if(state, id, |c| c.site_id == user.site_id).await
}

async fn transition(
    state: &AppState,
    conversation_id: Uuid,
    transition: Transition,
) -> Result<Committed, ErrorBody> {
    let notice = notice_for(&transition);
    let committed = state
        .store
        .commit(conversation_id, Op::Transition { transition, notice })
        .await
        .map_err(|e| store_error_body(&e))?;
    publish(state, &committed);
    Ok(committed)
}

/// The agent takes the conversation: from this commit on, the AI's posts are refused.
pub async fn take_over(state: &AppState, user: &User, id: Uuid) -> Result<Committed, ErrorBody> {
    let conversation = site_conversation(state, user, id).await?;
    transition(
        state,
        conversation.id,
        Transition::TakenOver {
            agent: user.agent_ref(),
        },
    )
    .await
}

pub async fn hand_back(state: &AppState, user: &User, id: Uuid) -> Result<Committed, ErrorBody> {
    let conversation = site_conversation(state, user, id).await?;
    transition(
        state,
        conversation.id,
        Transition::HandedBack {
            agent: user.agent_ref(),
        },
    )
    .await
}

pub async fn transfer(
    state: &AppState,
    user: &User,
    id: Uuid,
    to: Uuid,
) -> Result<Committed, ErrorBody> {
    let conversation = site_conversation(state, user, id).await?;
    let target = match state.store.user(to).await {
        Ok(Some(target)) if target.site_id == user.site_id => target,
        Ok(_) => {
            return Err(ErrorBody::new(
                ErrorCode::NotFound,
                "There is no such agent on this site.",
            ));
        }
        Err(e) => return Err(store_error_body(&e)),
    };
    transition(
        state,
        conversation.id,
        Transition::Transferred {
            from: user.agent_ref(),
            to: target.agent_ref(),
        },
    )
    .await
}

/// Resolves the conversation; with `teach`, the visitor's question and the agent's answer
/// become knowledge the AI uses from the next question on.
pub async fn resolve(
    state: &AppState,
    user: &User,
    id: Uuid,
    teach: Option<Teach>,
) -> Result<Committed, ErrorBody> {
    let conversation = site_conversation(state, user, id).await?;
    let committed = transition(
        state,
        conversation.id,
        Transition::Resolved {
            by: Some(user.agent_ref()),
        },
    )
    .await?;
    if let Some(teach) = teach {
        learn(state, user.site_id, teach).await?;
    }
    Ok(committed)
}

/// Adds taught knowledge to the site's knowledge base and reloads the engine's copy.
pub async fn learn(state: &AppState, site_id: Uuid, teach: Teach) -> Result<KbEntry, ErrorBody> {
    let question = validate_body(&teach.question)?.to_owned();
    let answer = validate_body(&teach.answer)?.to_owned();
    let entries = state
        .store
        .kb_entries(site_id)
        .await
        .map_err(|e| store_error_body(&e))?;
    let entry = match teach
        .entry_id
        .as_deref()
        .and_then(|id| entries.iter().find(|e| e.id == id))
    {
        Some(existing) => {
            let mut entry = existing.clone();
            if !entry
                .examples
                .iter()
                .any(|q| q.eq_ignore_ascii_case(&question))
            {
                entry.examples.push(question);
            }
            entry
        }
        None => KbEntry {
            id: format!("learned-{}", &Uuid::new_v4().simple().to_string()[..12]),
            title: question.chars().take(60).collect(),
            answer,
            examples: vec![question],
            escalate: None,
        },
    };
    state
        .store
        .upsert_kb_entry(site_id, &entry)
        .await
        .map_err(|e| store_error_body(&e))?;
    let entries = state
        .store
        .kb_entries(site_id)
        .await
        .map_err(|e| store_error_body(&e))?;
    state.engine.load_site(site_id, entries);
    tracing::info!(entry = %entry.id, "learned from an agent");
    Ok(entry)
}

/// An agent's reply to the visitor. Replying to a conversation nobody owns takes it over.
pub async fn reply(
    state: &AppState,
    user: &User,
    id: Uuid,
    client_msg_id: &str,
    body: &str,
) -> Result<Committed, ErrorBody> {
    validate_client_msg_id(client_msg_id).map_err(|e| e.for_message(client_msg_id))?;
    let body = validate_body(body).map_err(|e| e.for_message(client_msg_id))?;
    let conversation = site_conversation(state, user, id)
        .await
        .map_err(|e| e.for_message(client_msg_id))?;
    let message = NewMessage {
        client_msg_id: Some(client_msg_id.to_owned()),
        ..NewMessage::new(Author::Agent(user.agent_ref()), body)
    };
    let committed = state
        .store
        .commit(
            conversation.id,
            Op::Post {
                message,
                reopen_to: ConversationState::Ai,
            },
        )
        .await
        .map_err(|e| store_error_body(&e).for_message(client_msg_id))?;
    publish(state, &committed);
    Ok(committed)
}

/// An internal note: stored and shown to the site's agents, never to the visitor.
pub async fn note(
    state: &AppState,
    user: &User,
    id: Uuid,
    client_msg_id: &str,
    body: &str,
) -> Result<Note, ErrorBody> {
    validate_client_msg_id(client_msg_id)?;
    let body = validate_body(body).map_err(|e| e.for_message(client_msg_id))?;
    let conversation = site_conversation(state, user, id).await?;
    let note = Note {
        id: Uuid::new_v4(),
        conversation_id: conversation.id,
        client_msg_id: client_msg_id.to_owned(),
        agent: user.agent_ref(),
        body: body.to_owned(),
        created_at: now_ms(),
    };
    let (note, existed) = state
        .store
        .add_note(&note)
        .await
        .map_err(|e| store_error_body(&e))?;
    if !existed {
        state
            .hub
            .publish_site(user.site_id, ServerFrame::Note(note.clone()));
    }
    Ok(note)
}

/// Review mode: an agent approves, edits or rejects an AI draft. Only approved (or edited)
/// text reaches the visitor, and only while the AI may still speak; an edit teaches the AI.
pub async fn review_draft(
    state: &AppState,
    user: &User,
    conversation_id: Uuid,
    draft_id: Uuid,
    decision: DraftDecision,
) -> Result<Option<Committed>, ErrorBody> {
    let conversation = site_conversation(state, user, conversation_id).await?;
    let fail = |e: crate::store::StoreError| store_error_body(&e);
    let (draft, question) = state
        .store
        .draft(draft_id)
        .await
        .map_err(fail)?
        .filter(|(d, _)| d.conversation_id == conversation.id)
        .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, "There is no such draft."))?;
    let (status, body) = match &decision {
        DraftDecision::Approve => ("approved", draft.body.clone()),
        DraftDecision::Edit { body } => ("edited", validate_body(body)?.to_owned()),
        DraftDecision::Reject => ("rejected", String::new()),
    };
    let claimed = state
        .store
        .move_draft(draft.id, "pending", status, Some(user.id))
        .await
        .map_err(fail)?;
    if !claimed {
        return Err(ErrorBody::new(
            ErrorCode::InvalidTransition,
            "This draft was already reviewed.",
        ));
    }
    let reviewed = ServerFrame::DraftReviewed {
        conversation_id: conversation.id,
        draft_id: draft.id,
        decision: decision.clone(),
    };
    if status == "rejected" {
        state.hub.publish_site(user.site_id, reviewed);
        return Ok(None);
    }
    let committed = match crate::chat::ai_post(
        state,
        conversation.id,
        body.clone(),
        draft.sources.clone(),
        draft.confidence,
        vec![],
    )
    .await
    {
        Ok(committed) => committed,
        Err(e) => {
            let _ = state
                .store
                .move_draft(draft.id, status, "expired", Some(user.id))
                .await;
            return Err(match e {
                crate::store::StoreError::State(_) => ErrorBody::new(
                    ErrorCode::InvalidTransition,
                    "A person has this conversation now; the draft was not sent.",
                ),
                other => store_error_body(&other),
            });
        }
    };
    state.hub.publish_site(user.site_id, reviewed);
    if status == "edited" {
        learn(
            state,
            user.site_id,
            Teach {
                question,
                answer: body,
                entry_id: None,
            },
        )
        .await?;
    }
    Ok(Some(committed))
}

/// Who is online, per site. An agent is online while at least one of their connections is
/// open and they have not set themselves away.
#[derive(Default)]
pub struct PresenceBoard {
    sites: Mutex<HashMap<Uuid, SiteAgents>>,
}

/// Per agent of a site: who, their status, and how many connections they have open.
type SiteAgents = HashMap<Uuid, (AgentRef, Presence, u32)>;

impl PresenceBoard {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<Uuid, SiteAgents>) -> R) -> R {
        let mut map = self
            .sites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }

    /// A connection of `agent` opened.
    pub fn connect(&self, site: Uuid, agent: &AgentRef) -> Presence {
        self.with(|sites| {
            let entry = sites.entry(site).or_default().entry(agent.id).or_insert((
                agent.clone(),
                Presence::Online,
                0,
            ));
            entry.2 += 1;
            if entry.2 == 1 {
                entry.1 = Presence::Online;
            }
            entry.1
        })
    }

    /// A connection of `agent` closed; returns the agent's presence after it.
    pub fn disconnect(&self, site: Uuid, agent: Uuid) -> Presence {
        self.with(|sites| {
            let Some(agents) = sites.get_mut(&site) else {
                return Presence::Offline;
            };
            let Some(entry) = agents.get_mut(&agent) else {
                return Presence::Offline;
            };
            entry.2 = entry.2.saturating_sub(1);
            if entry.2 == 0 {
                agents.remove(&agent);
                Presence::Offline
            } else {
                entry.1
            }
        })
    }

    pub fn set(&self, site: Uuid, agent: Uuid, status: Presence) {
        self.with(|sites| {
            if let Some(entry) = sites.get_mut(&site).and_then(|a| a.get_mut(&agent)) {
                entry.1 = status;
            }
        });
    }

    pub fn online(&self, site: Uuid) -> u32 {
        self.with(|sites| {
            sites.get(&site).map_or(0, |agents| {
                let n = agents
                    .values()
                    .filter(|(_, p, _)| *p == Presence::Online)
                    .count();
                u32::try_from(n).unwrap_or(u32::MAX)
            })
        })
    }
}

/// Tells the site's agents about a presence change.
pub fn publish_presence(state: &AppState, site: Uuid, agent: &AgentRef, status: Presence) {
    state.hub.publish_site(
        site,
        ServerFrame::Presence {
            agent: Some(agent.clone()),
            status: Some(status),
            agents_online: state.presence.online(site),
        },
    );
}

/// The inbox sent to an agent on connect: every open conversation of the site.
pub async fn inbox(state: &AppState, user: &User) -> Result<Vec<ServerFrame>, ErrorBody> {
    let conversations = state
        .store
        .open_conversations(user.site_id, limits::MAX_HISTORY_PAGE)
        .await
        .map_err(|e| store_error_body(&e))?;
    let mut frames = Vec::with_capacity(conversations.len());
    for c in conversations {
        let preview = state
            .store
            .last_messages(c.id, 1)
            .await
            .ok()
            .and_then(|m| m.into_iter().next())
            .map(|m| m.body.chars().take(140).collect())
            .unwrap_or_default();
        frames.push(ServerFrame::Conversation(c.summary(
            preview,
            nexus_shared::VisitorInfo {
                page_url: c.page_url.clone(),
                locale: c.locale.clone(),
                ..Default::default()
            },
        )));
    }
    Ok(frames)
}
