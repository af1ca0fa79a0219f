//! What agents do to conversations: take over, reply, hand back, transfer, resolve and teach,
//! leave internal notes. (The inbox they see is [`crate::live::inbox`], read from the store in
//! one query, `Store::open_inbox`.) Transport-independent; every action is checked against the agent's
//! site and committed through the state machine in the store.

use nexus_shared::DraftDecision;
use nexus_shared::{
    Author, ConversationState, ErrorBody, ErrorCode, Note, ServerFrame, Teach, Transition,
    validate_body,
};
use uuid::Uuid;

use crate::AppState;
use crate::conversation::effects::{publish, transition};
use crate::conversation::notices::NOTICES;
use crate::conversation::visitor::validate_client_msg_id;
use crate::model::{Committed, Conversation, NewMessage, Op, User, now_ms};
use crate::store::store_error_body;

/// Loads a conversation of the agent's own site. Conversations of other sites are reported
/// as missing, not as forbidden, so their ids are not confirmed.
pub async fn site_conversation(
    state: &AppState,
    user: &User,
    id: Uuid,
) -> Result<Conversation, ErrorBody> {
    crate::conversation::visitor::conversation_if(state, id, |c| c.site_id == user.site_id).await
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
        crate::conversation::learn::teach(
            state,
            user.site_id,
            user.role,
            teach,
            crate::model::Origin::Teach,
            Some(conversation.id),
        )
        .await?;
    }
    Ok(committed)
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
                notices: NOTICES,
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
    let committed = match crate::conversation::visitor::ai_post(
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
        crate::conversation::learn::teach(
            state,
            user.site_id,
            user.role,
            Teach {
                question,
                answer: body,
                entry_id: None,
            },
            crate::model::Origin::DraftEdit,
            Some(conversation.id),
        )
        .await?;
    }
    Ok(Some(committed))
}
