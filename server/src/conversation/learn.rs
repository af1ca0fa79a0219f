//! Learning from people. A teach (an agent resolves with the visitor's question and their
//! answer), an edited AI draft in review mode, and a visitor's thumbs-down on an AI answer
//! become knowledge-base entries.
//!
//! With the site's `learning` setting `auto`, an owner's teach or edit goes live at once (a
//! plain agent's too when `agent_learning` is `auto`; by default it waits for an owner): the
//! entry is stored and the engine reloads the site ([`AnswerEngine::load_site`]), so the very
//! next question is answered from it, without a restart. With `approve`, it waits in
//! `/api/v1/kb/pending` until an owner approves it (optionally edited) or rejects it. A
//! thumbs-down always waits: the disliked answer and the question it answered are kept for the
//! owner to correct.
//!
//! The visitor's words are never copied as they are: personal data in a question (emails,
//! phone, card and order numbers) is masked before it is stored, titles are written from the
//! answer, and deleting the visitor takes their question out of what was learned
//! (`Store::delete_visitor`).
//!
//! The owner's review of pending knowledge is REST, in [`crate::http::learn`].
//!
//! [`AnswerEngine::load_site`]: nexus_engine::AnswerEngine::load_site

use nexus_shared::{
    Author, ConversationState, ErrorBody, ErrorCode, HandoffReason, Role, Teach, validate_body,
};
use uuid::Uuid;

use crate::AppState;
use crate::model::{Origin, PendingEntry, mask_like, mask_personal, title_from_answer};
use crate::model::{Site, now_ms};
use crate::store::store_error_body;
use nexus_engine::KbEntry;
use nexus_engine::policy::Learning;

/// What became of learned knowledge.
#[derive(Debug, Clone, PartialEq)]
pub enum Learned {
    /// It is in the knowledge base and the engine answers from it.
    Live(KbEntry),
    /// It waits for an owner.
    Pending(PendingEntry),
}

/// Learns from a teach or an edited draft: live at once or pending, per the site's settings.
/// An owner's teach follows `learning`; a plain agent's waits for an owner unless the site's
/// `agent_learning` is `auto` too. The question is the visitor's: the personal data in it is
/// masked first ([`mask_personal`]), and the same pieces in the answer.
pub async fn teach(
    state: &AppState,
    site_id: Uuid,
    by: Role,
    teach: Teach,
    origin: Origin,
    conversation_id: Option<Uuid>,
) -> Result<Learned, ErrorBody> {
    let masked = mask_personal(validate_body(&teach.question)?);
    let question = validate_body(&masked.text)?.to_owned();
    let answer = mask_like(validate_body(&teach.answer)?, &masked);
    let site = state
        .store
        .site(site_id)
        .await
        .map_err(|e| store_error_body(&e))?
        .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, "This site does not exist."))?;
    let live = site.settings.learning == Learning::Auto
        && (by == Role::Owner || site.settings.agent_learning == Learning::Auto);
    let entry = PendingEntry {
        id: Uuid::new_v4(),
        question,
        answer,
        entry_id: teach.entry_id,
        conversation_id,
        origin,
        created_at: now_ms(),
    };
    if !live {
        state
            .store
            .add_pending_entry(site_id, &entry)
            .await
            .map_err(|e| store_error_body(&e))?;
        tracing::info!(origin = origin.as_str(), "learned entry waits for approval");
        return Ok(Learned::Pending(entry));
    }
    apply(state, site_id, &entry, "live")
        .await
        .map(Learned::Live)
}

/// Puts learned knowledge into the knowledge base and reloads the engine's copy of the site:
/// the question (masked again: an owner's edit is checked like a teach) becomes an example of
/// `entry_id` when that entry exists, else a new entry titled from the answer. The learned
/// row records which entry it went into (`status`: `live` for a teach, `approved` for an
/// approval), so that deleting the visitor takes the question out again.
pub async fn apply(
    state: &AppState,
    site_id: Uuid,
    learned: &PendingEntry,
    status: &str,
) -> Result<KbEntry, ErrorBody> {
    let fail = |e: crate::store::StoreError| store_error_body(&e);
    let masked = mask_personal(&learned.question);
    let question = validate_body(&masked.text)?.to_owned();
    let answer = mask_like(&learned.answer, &masked);
    let entries = state.store.kb_entries(site_id).await.map_err(fail)?;
    let entry_id = learned.entry_id.as_deref();
    let entry = match entry_id.and_then(|id| entries.iter().find(|e| e.id == id)) {
        Some(existing) => {
            let mut entry = existing.clone();
            if !entry
                .examples
                .iter()
                .any(|q| q.eq_ignore_ascii_case(&question))
            {
                entry.examples.push(question.clone());
            }
            entry
        }
        // A gap draft names its new entry in advance (`learned-…`), so that its questions,
        // approved one by one, go into one entry.
        None => KbEntry {
            url: None,
            id: entry_id
                .filter(|id| id.starts_with("learned-"))
                .map_or_else(
                    || format!("learned-{}", &Uuid::new_v4().simple().to_string()[..12]),
                    str::to_owned,
                ),
            title: title_from_answer(&answer),
            answer: answer.clone(),
            examples: vec![question.clone()],
            escalate: None,
        },
    };
    state
        .store
        .upsert_kb_entry(site_id, &entry)
        .await
        .map_err(fail)?;
    let record = PendingEntry {
        question,
        answer,
        ..learned.clone()
    };
    state
        .store
        .learned_into_kb(site_id, &record, status, &entry.id)
        .await
        .map_err(fail)?;
    let entries = state.store.knowledge(site_id).await.map_err(fail)?;
    state.engine.load_site(site_id, entries);
    tracing::info!(entry = %entry.id, "learned");
    Ok(entry)
}

/// A visitor's thumbs up or down on an AI answer. A thumbs-down keeps the answer and the
/// question it answered for the owner's review, and (when the site's policy counts it as
/// frustration) hands the conversation to a person.
pub async fn feedback(
    state: &AppState,
    site: &Site,
    conversation_id: Uuid,
    message_id: Uuid,
    helpful: bool,
) -> Result<(), ErrorBody> {
    let fail = |e: crate::store::StoreError| store_error_body(&e);
    state
        .store
        .record_feedback(conversation_id, message_id, helpful)
        .await
        .map_err(fail)?;
    if helpful {
        return Ok(());
    }
    let Some(disliked) = state
        .store
        .message(conversation_id, message_id)
        .await
        .map_err(fail)?
        .filter(nexus_engine::policy::is_answer)
    else {
        return Ok(());
    };
    let earlier = state
        .store
        .messages_after(conversation_id, disliked.seq.saturating_sub(30), 30)
        .await
        .map_err(fail)?;
    let question = earlier
        .iter()
        .rev()
        .filter(|m| m.seq < disliked.seq)
        .find(|m| m.author == Author::Visitor)
        .map(|m| mask_personal(&m.body).text);
    if let Some(question) = question {
        let known = state
            .store
            .pending_entries(site.id)
            .await
            .map_err(fail)?
            .iter()
            .any(|p| p.conversation_id == Some(conversation_id) && p.question == question);
        if !known {
            let pending = PendingEntry {
                id: Uuid::new_v4(),
                question,
                answer: disliked.body.clone(),
                entry_id: None,
                conversation_id: Some(conversation_id),
                origin: Origin::ThumbsDown,
                created_at: now_ms(),
            };
            state
                .store
                .add_pending_entry(site.id, &pending)
                .await
                .map_err(fail)?;
        }
    }
    let site = state
        .store
        .site(site.id)
        .await
        .map_err(fail)?
        .unwrap_or_else(|| site.clone());
    if site.settings.policy.frustration.thumbs_down {
        let conversation = state
            .store
            .conversation(conversation_id)
            .await
            .map_err(fail)?;
        if conversation.is_some_and(|c| c.snapshot.state == ConversationState::Ai) {
            crate::conversation::visitor::escalate(
                state,
                conversation_id,
                HandoffReason::Frustration,
            )
            .await;
        }
    }
    Ok(())
}
