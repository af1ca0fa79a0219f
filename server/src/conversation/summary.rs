//! The handoff summary an agent reads before answering (`GET
//! /api/v1/conversations/{id}/summary`, [`crate::http::summary`]): what the visitor wants, what the AI answered, why
//! it escalated, and a suggested reply from the knowledge base (placeholders filled) that the
//! agent can insert and edit.

use nexus_shared::{Author, ErrorBody, ErrorCode, HandoffReason, Message, Source, Transition};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::model::Conversation;
use crate::store::store_error_body;
use nexus_engine::{Decision, Query, placeholders};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffSummary {
    /// The visitor's question that led to the handoff (or their first question).
    pub wants: String,
    /// The AI's answers in this conversation, oldest first.
    pub ai_answered: Vec<String>,
    pub reason: Option<HandoffReason>,
    /// The knowledge base's best answer to the visitor's question, placeholders filled.
    pub suggested_reply: Option<String>,
    pub suggested_source: Option<Source>,
    /// The visitor, for privacy requests (`/api/v1/visitors/{visitor_id}/…`).
    pub visitor_id: Uuid,
}

/// The visitor's questions, most relevant first: the one right before the first escalation
/// (or, when the visitor only asked for a person there, the ones before it), then the others.
pub fn questions(messages: &[Message], reason: Option<&HandoffReason>) -> Vec<String> {
    let escalation = messages.iter().position(|m| {
        m.event
            .as_ref()
            .is_some_and(|e| matches!(e.cause, Transition::Escalated { .. }))
    });
    let visitor = |m: &&Message| m.author == Author::Visitor && !m.body.trim().is_empty();
    let (before, after) = messages.split_at(escalation.unwrap_or(messages.len()));
    let mut ordered: Vec<String> = if escalation.is_some() {
        let mut before: Vec<String> = before
            .iter()
            .filter(visitor)
            .rev()
            .map(|m| m.body.clone())
            .collect();
        if matches!(reason, Some(HandoffReason::VisitorAsked)) && before.len() > 1 {
            // "Talk to a person" says who, not what: the question before it says what.
            let ask = before.remove(0);
            before.push(ask);
        }
        before
    } else {
        before
            .iter()
            .filter(visitor)
            .map(|m| m.body.clone())
            .collect()
    };
    ordered.extend(after.iter().filter(visitor).map(|m| m.body.clone()));
    ordered
}

/// Builds the summary of a conversation.
pub async fn build(
    state: &AppState,
    conversation: &Conversation,
) -> Result<HandoffSummary, ErrorBody> {
    let messages = state
        .store
        .messages_after(conversation.id, 0, u32::MAX)
        .await
        .map_err(|e| store_error_body(&e))?;
    let site = state
        .store
        .site(conversation.site_id)
        .await
        .map_err(|e| store_error_body(&e))?
        .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, "Site not found."))?;
    let questions = questions(&messages, conversation.handoff_reason.as_ref());
    let ai_answered = messages
        .iter()
        .filter(|m| m.author == Author::Ai)
        .map(|m| m.body.clone())
        .collect();
    let mut suggestion = None;
    for question in questions.iter().take(5) {
        let decision = state
            .engine
            .decide(Query {
                site_id: site.id,
                text: question,
                locale: conversation.locale.as_deref(),
            })
            .await;
        let found = match decision {
            Ok(Decision::Answer { body, source, .. }) => Some((body, source)),
            Ok(Decision::Clarify { choices, .. }) => choices
                .first()
                .and_then(|c| state.engine.entry(site.id, &c.id))
                .filter(|e| e.escalate.is_none())
                .map(|e| {
                    (
                        e.answer,
                        Source {
                            entry_id: e.id,
                            title: e.title,
                            url: e.url,
                        },
                    )
                }),
            _ => None,
        };
        if let Some((body, source)) = found {
            suggestion = Some((
                placeholders::fill(&body, &site.settings.placeholders),
                source,
            ));
            break;
        }
    }
    let (suggested_reply, suggested_source) = suggestion.unzip();
    Ok(HandoffSummary {
        wants: questions.into_iter().next().unwrap_or_default(),
        ai_answered,
        reason: conversation.handoff_reason.clone(),
        suggested_reply,
        suggested_source,
        visitor_id: conversation.visitor_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_shared::{ConversationState, StateChange};

    fn msg(author: Author, body: &str, escalation: Option<HandoffReason>) -> Message {
        Message {
            id: Uuid::new_v4(),
            conversation_id: Uuid::nil(),
            seq: 0,
            client_msg_id: None,
            author,
            body: body.into(),
            created_at: 0,
            sources: vec![],
            confidence: None,
            choices: vec![],
            event: escalation.map(|reason| StateChange {
                from: ConversationState::Ai,
                to: ConversationState::Waiting,
                cause: Transition::Escalated { reason },
            }),
        }
    }

    #[test]
    fn the_question_before_the_escalation_comes_first() {
        let timeline = vec![
            msg(Author::Visitor, "hi", None),
            msg(Author::Ai, "Hello!", None),
            msg(Author::Visitor, "my parcel is lost", None),
            msg(Author::System, "", Some(HandoffReason::LowConfidence)),
            msg(Author::Visitor, "hello?", None),
        ];
        assert_eq!(
            questions(&timeline, Some(&HandoffReason::LowConfidence)),
            vec!["my parcel is lost", "hi", "hello?"]
        );
        let asked = vec![
            msg(Author::Visitor, "can I change my address", None),
            msg(Author::Visitor, "talk to a human", None),
            msg(Author::System, "", Some(HandoffReason::VisitorAsked)),
        ];
        assert_eq!(
            questions(&asked, Some(&HandoffReason::VisitorAsked))[0],
            "can I change my address"
        );
    }
}
