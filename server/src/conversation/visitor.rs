//! What happens when visitors write: store the message, let the AI answer or hand over to a
//! person, and publish every change to whoever is watching. Transport-independent: the
//! WebSocket session and the REST API both call these functions.

use nexus_shared::{
    Author, Autonomy, Choice, ConversationState, ErrorBody, ErrorCode, HandoffReason, Message,
    ServerFrame, Source, StateError, Streaming, Transition, limits, validate_body,
};
use tracing::{instrument, warn};
use uuid::Uuid;

use crate::AppState;
use crate::conversation::effects::publish;
use crate::conversation::notices::NOTICES;
use crate::model::{Committed, Conversation, Guard, NewMessage, Op, Site, Visitor};
use crate::store::StoreError;
use crate::store::store_error_body;
use nexus_engine::llm::{ChatMessage as LlmMessage, LlmError};
use nexus_engine::{Decision, KbEntry, Query, placeholders, policy};

/// Checks a client message id: non-empty, at most 64 bytes.
pub fn validate_client_msg_id(id: &str) -> Result<(), ErrorBody> {
    if id.is_empty() || id.len() > limits::MAX_CLIENT_MSG_ID_BYTES {
        return Err(ErrorBody::new(
            ErrorCode::Validation,
            format!(
                "client_msg_id must be 1 to {} bytes.",
                limits::MAX_CLIENT_MSG_ID_BYTES
            ),
        ));
    }
    Ok(())
}

/// The state a resolved conversation reopens into when the visitor writes again.
fn reopen_state(site: &Site) -> ConversationState {
    match site.settings.autonomy {
        Autonomy::Off => ConversationState::Waiting,
        Autonomy::Auto | Autonomy::Review => ConversationState::Ai,
    }
}

/// The outcome of a visitor's `send`.
#[derive(Debug)]
pub struct Sent {
    pub conversation: Conversation,
    pub message: Message,
    pub duplicate: bool,
    /// Every entry this send stored, in sequence order (a reopening notice, then the
    /// message); empty when nothing was stored or when not known.
    pub stored: Vec<Message>,
}

/// Stores a visitor message (once per `client_msg_id`), publishes it, and starts the AI's
/// answer in the background. `conversation_id` `None` means the visitor's latest
/// conversation, or a new one.
#[instrument(skip_all, fields(site = %site.key))]
pub async fn visitor_send(
    state: &AppState,
    site: &Site,
    visitor: &Visitor,
    conversation_id: Option<Uuid>,
    client_msg_id: &str,
    body: &str,
    context: (Option<&str>, Option<&str>),
) -> Result<Sent, ErrorBody> {
    validate_client_msg_id(client_msg_id).map_err(|e| e.for_message(client_msg_id))?;
    let body = validate_body(body).map_err(|e| e.for_message(client_msg_id))?;
    let store = state.store.as_ref();
    let fail = |e: StoreError| store_error_body(&e).for_message(client_msg_id);

    let conversation_id = match conversation_id {
        Some(id) => id,
        // The conversation it goes to is the latest one (or a new one); a retry of the same
        // `client_msg_id` is a duplicate only there, as it is with a `conversation_id` (the
        // commit detects it), so an id reused after `new_conversation` is a new message.
        None => match store.latest_conversation(visitor.id).await.map_err(fail)? {
            Some(c) => c.id,
            None => {
                store
                    .create_conversation(site.id, visitor.id, context.0, context.1)
                    .await
                    .map_err(fail)?
                    .id
            }
        },
    };

    // No read before the post: the store checks that the conversation is the visitor's. A
    // resolved conversation reopens with the settings as they are now (they may have changed
    // since the visitor connected), so that post is refused first and made again with them
    // (the settings are not read for every message).
    let post = |reopen_to| Op::Post {
        message: NewMessage {
            client_msg_id: Some(client_msg_id.to_owned()),
            ..NewMessage::new(Author::Visitor, body)
        },
        reopen_to,
        notices: NOTICES,
    };
    let guard = |reopen| Guard::Visitor {
        id: visitor.id,
        reopen,
    };
    let committed = match store
        .commit_guarded(guard(false), conversation_id, post(reopen_state(site)))
        .await
    {
        Err(StoreError::State(StateError::Resolved)) => {
            let site = fresh_site(state, site).await.map_err(fail)?;
            store
                .commit_guarded(guard(true), conversation_id, post(reopen_state(&site)))
                .await
        }
        other => other,
    }
    .map_err(|e| match e {
        StoreError::NotFound => not_found().for_message(client_msg_id),
        e => fail(e),
    })?;
    if let Some(earlier) = committed.duplicate {
        return Ok(Sent {
            conversation: committed.conversation,
            message: earlier,
            duplicate: true,
            stored: Vec::new(),
        });
    }
    publish(state, &committed);
    let message = committed
        .messages
        .last()
        .cloned()
        .ok_or_else(|| ErrorBody::new(ErrorCode::Internal, "The message was not stored."))?;

    let Committed {
        conversation,
        messages: stored,
        ..
    } = committed;
    if conversation.snapshot.state == ConversationState::Ai {
        spawn_ai_turn(state, site, &conversation, message.body.clone());
    }
    Ok(Sent {
        conversation,
        message,
        duplicate: false,
        stored,
    })
}

/// The AI's turn, with the site's current settings, after the ack: in a slot of the AI's work
/// queue ([`AiQueue`](crate::conversation::ai_queue::AiQueue)), or, when every slot is taken, a handover to a person at once
/// ([`HandoffReason::EngineBusy`]).
fn spawn_ai_turn(state: &AppState, site: &Site, conversation: &Conversation, question: String) {
    let (state, site, conversation) = (state.clone(), site.clone(), conversation.clone());
    let Some(turn) = state.ai.try_admit() else {
        state.hub.metrics().ai_busy(false);
        tokio::spawn(async move {
            escalate(&state, conversation.id, HandoffReason::EngineBusy).await;
        });
        return;
    };
    tokio::spawn(async move {
        match fresh_site(&state, &site).await {
            Ok(site) => respond(&state, &site, &conversation, &question, turn.deadline).await,
            Err(e) => warn!(error = %e, "cannot load the site settings; no AI answer"),
        }
        drop(turn);
    });
}

/// The engine missed a question's deadline: the work is dropped and a person answers.
async fn too_late(state: &AppState, conversation_id: Uuid) {
    state.hub.metrics().ai_busy(true);
    escalate(state, conversation_id, HandoffReason::EngineBusy).await;
}

/// The site as stored now (settings may have changed since the visitor connected); the
/// connection's copy when the site is gone.
async fn fresh_site(state: &AppState, site: &Site) -> Result<Site, StoreError> {
    Ok(state
        .store
        .site(site.id)
        .await?
        .unwrap_or_else(|| site.clone()))
}

/// What a caller hears of a conversation it may not see, exactly as of one that does not
/// exist.
fn not_found() -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, "This conversation does not exist.")
}

/// Loads a conversation and checks it belongs to this visitor.
pub async fn visitor_conversation(
    state: &AppState,
    visitor: &Visitor,
    id: Uuid,
) -> Result<Conversation, ErrorBody> {
    conversation_if(state, id, |c| c.visitor_id == visitor.id).await
}

/// Loads a conversation the caller may see. One the caller may not see is reported exactly
/// like a missing one, so ids of others' conversations are never confirmed.
pub async fn conversation_if(
    state: &AppState,
    id: Uuid,
    visible: impl FnOnce(&Conversation) -> bool,
) -> Result<Conversation, ErrorBody> {
    match state.store.conversation(id).await {
        Ok(Some(c)) if visible(&c) => Ok(c),
        Ok(_) => Err(not_found()),
        Err(e) => Err(store_error_body(&e)),
    }
}

/// The conversation before the visitor's latest message (the one being answered), oldest
/// first: what the escalation policy looks at.
async fn history_before_question(state: &AppState, conversation_id: Uuid) -> Vec<Message> {
    let mut messages = state
        .store
        .last_messages(conversation_id, HISTORY_FOR_POLICY)
        .await
        .unwrap_or_default();
    if let Some(last_visitor) = messages.iter().rposition(|m| m.author == Author::Visitor) {
        messages.truncate(last_visitor);
    }
    messages
}

/// How many recent timeline entries the escalation policy looks at.
const HISTORY_FOR_POLICY: u32 = 60;

/// The AI's turn after a visitor message. Runs in the background: the visitor already has
/// their ack. If a person takes over meanwhile, the store refuses the AI's post and the answer
/// is dropped.
///
/// The site's escalation policy runs first ([`policy::before_engine`]: a request for a person,
/// sensitive topics, frustration), then the engine decides with the site's thresholds, then
/// [`policy::after_engine`] checks its decision (confidence, repeated failure). After the
/// site's `max_ai_turns`, replies carry a "Talk to a person" choice. With the LLM backend on,
/// an answer the engine lets through is phrased by the LLM from the retrieved entries and
/// streamed ([`ServerFrame::Streaming`]).
///
/// The policy's and the engine's work must be done by `deadline`; past it, the work is dropped
/// and the conversation goes to a person as [`HandoffReason::EngineBusy`].
#[instrument(skip_all, fields(conversation = %conversation.id))]
pub async fn respond(
    state: &AppState,
    site: &Site,
    conversation: &Conversation,
    question: &str,
    deadline: tokio::time::Instant,
) {
    if conversation.snapshot.state != ConversationState::Ai {
        return;
    }
    if site.settings.autonomy == Autonomy::Off {
        escalate(state, conversation.id, HandoffReason::AutonomyOff).await;
        return;
    }
    let policy = &site.settings.policy;
    let history = history_before_question(state, conversation.id).await;
    let before = if policy.uses_similarity() {
        // Sentence-like examples are compared by the engine's embeddings: CPU work.
        let (engine, policy, text) = (state.engine.clone(), policy.clone(), question.to_owned());
        let history = history.clone();
        let work = tokio::task::spawn_blocking(move || {
            let similarity = move |a: &str, b: &str| engine.similarity(a, b);
            policy::before_engine(&policy, &text, &history, &similarity)
        });
        match tokio::time::timeout_at(deadline, work).await {
            Ok(before) => before.unwrap_or(None),
            Err(_) => {
                too_late(state, conversation.id).await;
                return;
            }
        }
    } else {
        policy::before_engine(policy, question, &history, &policy::no_similarity)
    };
    if let Some(reason) = before {
        escalate(state, conversation.id, reason).await;
        return;
    }
    let typing = |on: bool| {
        state.hub.publish_conversation(
            conversation.id,
            ServerFrame::Typing {
                conversation_id: conversation.id,
                author: Author::Ai,
                typing: on,
            },
        );
    };
    typing(true);
    let engine_thresholds = state.engine.default_thresholds();
    let site_thresholds = policy.thresholds(engine_thresholds);
    let decision = state.engine.decide_with(
        Query {
            site_id: site.id,
            text: question,
            locale: conversation.locale.as_deref(),
        },
        site_thresholds,
    );
    let Ok(decision) = tokio::time::timeout_at(deadline, decision).await else {
        typing(false);
        too_late(state, conversation.id).await;
        return;
    };
    let decision = match decision {
        Ok(d) => policy::after_engine(d, &site_thresholds.unwrap_or(engine_thresholds), &history),
        Err(e) => {
            typing(false);
            warn!(error = %e, "answer engine failed; escalating");
            escalate(state, conversation.id, HandoffReason::EngineError).await;
            return;
        }
    };
    let offer: Vec<Choice> = if policy::offer_person(policy, &history) {
        vec![policy::person_choice(conversation.locale.as_deref())]
    } else {
        vec![]
    };
    if let (Some(llm), Decision::Answer { .. }) = (&state.llm, &decision) {
        llm_respond(state, llm, site, conversation, question, decision, offer).await;
        return;
    }
    typing(false);
    // Review mode: nothing the AI writes reaches the visitor unreviewed. A clarifying question
    // becomes a draft of its most likely answer, which the agent approves, edits or rejects.
    let decision = match decision {
        Decision::Clarify {
            choices,
            confidence,
            ..
        } if site.settings.autonomy == Autonomy::Review => {
            match choices
                .first()
                .and_then(|choice| state.engine.entry(site.id, &choice.id))
            {
                Some(entry) => Decision::Answer {
                    source: Source {
                        entry_id: entry.id,
                        title: entry.title,
                        url: entry.url,
                    },
                    body: entry.answer,
                    confidence,
                },
                None => Decision::Escalate {
                    reason: HandoffReason::LowConfidence,
                    confidence: Some(confidence),
                },
            }
        }
        other => other,
    };
    if site.settings.autonomy == Autonomy::Review
        && let Decision::Answer {
            body,
            source,
            confidence,
        } = decision
    {
        let body = placeholders::fill(&body, &site.settings.placeholders);
        draft(
            state,
            site,
            conversation,
            question,
            body,
            vec![source],
            confidence,
        )
        .await;
        return;
    }
    match decision {
        Decision::Answer {
            body,
            source,
            confidence,
        } => {
            let body = placeholders::fill(&body, &site.settings.placeholders);
            let _ = ai_post(
                state,
                conversation.id,
                body,
                vec![source],
                Some(confidence),
                offer,
            )
            .await;
        }
        Decision::Clarify {
            body,
            mut choices,
            confidence,
        } => {
            choices.extend(offer);
            let _ = ai_post(
                state,
                conversation.id,
                body,
                vec![],
                Some(confidence),
                choices,
            )
            .await;
        }
        Decision::Escalate { reason, .. } => {
            escalate(state, conversation.id, reason).await;
        }
    }
}

/// How often the text of a streamed LLM reply is sent to the visitor.
pub const STREAM_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// How many knowledge-base entries ground an LLM reply.
const GROUNDING_ENTRIES: usize = 3;

/// The system prompt of an LLM reply: the assistant's name and the retrieved entries (answers
/// with their placeholders filled).
pub fn llm_system_prompt(site: &Site, entries: &[KbEntry]) -> String {
    let settings = &site.settings;
    let mut prompt = format!(
        "You are {name}, the customer-support assistant of {site}. Answer the visitor's \
         question using only the knowledge below; do not invent policies, prices or dates. \
         Be brief and friendly, and answer in the visitor's language. If the knowledge does \
         not answer the question, say that a person from the team will help.\n\nKnowledge:\n",
        name = settings.assistant_name,
        site = site.name,
    );
    for (i, entry) in entries.iter().enumerate() {
        let answer = placeholders::fill(&entry.answer, &settings.placeholders);
        let asked = entry.examples.first().map(String::as_str).unwrap_or("");
        prompt.push_str(&format!(
            "\n[{n}] {title}\nAsked as: {asked}\nAnswer: {answer}\n",
            n = i + 1,
            title = entry.title,
        ));
    }
    prompt
}

/// An answer the engine let through, phrased by the LLM from the retrieved entries and
/// streamed to the visitor; then posted through [`ai_post`] (refused, and the stream stopped,
/// once a person has the conversation). Any failure of the LLM hands the conversation to a
/// person (`engine_error`); the visitor is told and nothing is lost.
async fn llm_respond(
    state: &AppState,
    llm: &nexus_engine::llm::LlmClient,
    site: &Site,
    conversation: &Conversation,
    question: &str,
    decision: Decision,
    offer: Vec<Choice>,
) {
    let Decision::Answer {
        source, confidence, ..
    } = decision
    else {
        return;
    };
    let mut entries: Vec<KbEntry> = state
        .engine
        .retrieve(site.id, question, GROUNDING_ENTRIES)
        .into_iter()
        .map(|(entry, _)| entry)
        .collect();
    if !entries.iter().any(|e| e.id == source.entry_id) {
        if let Some(entry) = state.engine.entry(site.id, &source.entry_id) {
            entries.insert(0, entry);
        }
        entries.truncate(GROUNDING_ENTRIES);
    }
    let messages = [
        LlmMessage {
            role: "system",
            content: llm_system_prompt(site, &entries),
        },
        LlmMessage {
            role: "user",
            content: question.to_owned(),
        },
    ];
    let review = site.settings.autonomy == Autonomy::Review;
    let conversation_id = conversation.id;
    let result = llm
        .stream_chat(&messages, STREAM_EVERY, |text| async move {
            // Stop as soon as a person has the conversation: nothing more reaches the visitor.
            let ai_has_it = matches!(
                state.store.conversation(conversation_id).await,
                Ok(Some(c)) if c.snapshot.state == ConversationState::Ai
            );
            if ai_has_it && !review {
                state.hub.publish_conversation(
                    conversation_id,
                    ServerFrame::Streaming(Streaming {
                        conversation_id,
                        text,
                    }),
                );
            }
            ai_has_it
        })
        .await;
    // Clears the streamed text when no message follows.
    state.hub.publish_conversation(
        conversation_id,
        ServerFrame::Typing {
            conversation_id,
            author: Author::Ai,
            typing: false,
        },
    );
    match result {
        Ok(text) if review => {
            draft(
                state,
                site,
                conversation,
                question,
                text,
                vec![source],
                confidence,
            )
            .await;
        }
        Ok(text) => {
            let _ = ai_post(
                state,
                conversation_id,
                text,
                vec![source],
                Some(confidence),
                offer,
            )
            .await;
        }
        Err(LlmError::Stopped) => {
            tracing::info!("LLM reply stopped: a person has the conversation");
        }
        Err(e) => {
            warn!(error = %e, "LLM backend failed; escalating");
            escalate(state, conversation_id, HandoffReason::EngineError).await;
        }
    }
}

/// Review mode: the AI's answer waits for an agent; the visitor sees nothing until approval.
async fn draft(
    state: &AppState,
    site: &Site,
    conversation: &Conversation,
    question: &str,
    body: String,
    sources: Vec<Source>,
    confidence: f32,
) {
    let draft = nexus_shared::Draft {
        id: Uuid::new_v4(),
        conversation_id: conversation.id,
        reply_to_seq: conversation.last_seq,
        body,
        sources,
        confidence: Some(confidence),
        created_at: crate::model::now_ms(),
    };
    match state.store.create_draft(&draft, question).await {
        Ok(()) => state.hub.publish_site(site.id, ServerFrame::Draft(draft)),
        Err(e) => {
            warn!(error = %e, "could not store the AI draft; escalating");
            escalate(state, conversation.id, HandoffReason::EngineError).await;
        }
    }
}

/// Posts an AI answer. Refused by the store's state machine (and dropped) when a person has
/// the conversation. Returns the commit when the answer was posted.
pub async fn ai_post(
    state: &AppState,
    conversation_id: Uuid,
    body: String,
    sources: Vec<Source>,
    confidence: Option<f32>,
    choices: Vec<Choice>,
) -> Result<Committed, StoreError> {
    let message = NewMessage {
        sources,
        confidence,
        choices,
        ..NewMessage::new(Author::Ai, body)
    };
    let op = Op::Post {
        message,
        reopen_to: ConversationState::Ai,
        notices: NOTICES,
    };
    match state.store.commit(conversation_id, op).await {
        Ok(committed) => {
            publish(state, &committed);
            Ok(committed)
        }
        Err(e @ StoreError::State(StateError::AiSilenced(_))) => {
            tracing::info!("AI answer dropped: a person has the conversation");
            Err(e)
        }
        Err(e) => {
            warn!(error = %e, "could not store the AI answer");
            Err(e)
        }
    }
}

/// Hands a conversation to a person. Asking twice is not an error: the second time nothing
/// changes.
pub async fn escalate(
    state: &AppState,
    conversation_id: Uuid,
    reason: HandoffReason,
) -> Option<Committed> {
    let op = Op::Transition {
        notice: None,
        transition: Transition::Escalated { reason },
        notices: NOTICES,
    };
    match state.store.commit(conversation_id, op).await {
        Ok(committed) => {
            publish(state, &committed);
            publish_queue_position(state, &committed.conversation).await;
            Some(committed)
        }
        Err(StoreError::State(e)) => {
            tracing::debug!(error = %e, "escalation not applied");
            None
        }
        Err(e) => {
            warn!(error = %e, "could not escalate");
            None
        }
    }
}

/// Tells the conversation's subscribers where it stands in the queue.
pub async fn publish_queue_position(state: &AppState, conversation: &Conversation) {
    if let Ok(Some(position)) = state.store.queue_position(conversation).await {
        state.hub.publish_conversation(
            conversation.id,
            ServerFrame::Queue {
                conversation_id: conversation.id,
                position,
            },
        );
    }
}

/// The visitor picked a clarifying choice: record the pick as their message, then answer
/// from that entry.
pub async fn visitor_choose(
    state: &AppState,
    site: &Site,
    visitor: &Visitor,
    conversation_id: Uuid,
    message_id: Uuid,
    choice_id: &str,
    client_msg_id: &str,
) -> Result<Sent, ErrorBody> {
    validate_client_msg_id(client_msg_id)?;
    let conversation = visitor_conversation(state, visitor, conversation_id).await?;
    let offered = state
        .store
        .message(conversation.id, message_id)
        .await
        .map_err(|e| store_error_body(&e))?
        .and_then(|m| m.choices.into_iter().find(|c| c.id == choice_id));
    let Some(choice) = offered else {
        return Err(ErrorBody::new(
            ErrorCode::NotFound,
            "That choice is not offered in this conversation.",
        ));
    };
    let entry = state.engine.entry(site.id, &choice.id);
    let message = NewMessage {
        client_msg_id: Some(client_msg_id.to_owned()),
        ..NewMessage::new(Author::Visitor, choice.label.clone())
    };
    let committed = state
        .store
        .commit(
            conversation.id,
            Op::Post {
                message,
                reopen_to: reopen_state(site),
                notices: NOTICES,
            },
        )
        .await
        .map_err(|e| store_error_body(&e))?;
    let duplicate = committed.duplicate.is_some();
    if !duplicate {
        publish(state, &committed);
    }
    let message = committed
        .duplicate
        .clone()
        .or_else(|| committed.messages.last().cloned())
        .ok_or_else(|| ErrorBody::new(ErrorCode::Internal, "The message was not stored."))?;
    if !duplicate
        && committed.conversation.snapshot.state == ConversationState::Ai
        && choice.id == policy::PERSON_CHOICE
    {
        escalate(state, conversation.id, HandoffReason::VisitorAsked).await;
    } else if !duplicate && committed.conversation.snapshot.state == ConversationState::Ai {
        match entry {
            Some(entry) if entry.escalate.is_none() => {
                let body = placeholders::fill(&entry.answer, &site.settings.placeholders);
                let source = Source {
                    entry_id: entry.id,
                    title: entry.title,
                    url: entry.url,
                };
                let _ = ai_post(
                    state,
                    conversation.id,
                    body,
                    vec![source],
                    Some(1.0),
                    vec![],
                )
                .await;
            }
            Some(entry) => {
                let reason = entry.escalate.unwrap_or(HandoffReason::VisitorAsked);
                escalate(state, conversation.id, reason).await;
            }
            None => {
                escalate(state, conversation.id, HandoffReason::LowConfidence).await;
            }
        }
    }
    // The AI's answer may follow the choice: what to send is read from the store.
    Ok(Sent {
        conversation: committed.conversation,
        message,
        duplicate,
        stored: Vec::new(),
    })
}

/// Checks an email address enough to catch typos: one `@`, something on both sides, a dot in
/// the domain, no spaces, at most 254 bytes.
pub fn validate_email(email: &str) -> Result<&str, ErrorBody> {
    let email = email.trim();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email)
    } else {
        Err(ErrorBody::new(
            ErrorCode::Validation,
            "That does not look like an email address.",
        ))
    }
}

/// The visitor leaves an email so the team can answer later (nobody online, or they must
/// leave). Kept on the visitor, and noted in the conversation for the agents.
pub async fn leave_email(
    state: &AppState,
    visitor: &Visitor,
    conversation_id: Uuid,
    email: &str,
) -> Result<Committed, ErrorBody> {
    let email = validate_email(email)?;
    let conversation = visitor_conversation(state, visitor, conversation_id).await?;
    state
        .store
        .set_visitor_email(visitor.id, email)
        .await
        .map_err(|e| store_error_body(&e))?;
    let notice = format!("Thanks! If you have to leave, the team will answer you at {email}.");
    let committed = state
        .store
        .commit(
            conversation.id,
            Op::Post {
                message: NewMessage::new(Author::System, notice),
                reopen_to: ConversationState::Ai,
                notices: NOTICES,
            },
        )
        .await
        .map_err(|e| store_error_body(&e))?;
    publish(state, &committed);
    Ok(committed)
}

#[cfg(test)]
mod tests {
    use super::validate_email;

    #[test]
    fn emails_are_checked_for_typos() {
        for good in ["ana@example.com", " ana.b+shop@mail.example.org "] {
            assert!(validate_email(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a na@example.com",
            "ana@@example.com",
            "ana@example.com.",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
