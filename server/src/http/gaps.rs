//! Knowledge gaps: the questions that went to people, grouped by meaning, with the agents'
//! replies beside them, and an entry drafted from a group into the approval queue. Owners only.
//!
//! - `GET /api/v1/gaps?days=30` (1 to 365 days): the site's conversations of the period that
//!   a person was involved in (handed over, or an agent wrote), newest [`MAX_CONVERSATIONS`].
//!   A conversation's question is the visitor's last message before the handover (an
//!   escalation, a takeover or an agent's first message), its replies the agents' messages
//!   after it. Questions are grouped greedily, newest first: each joins the first group with
//!   one of its first three questions at least [`SAME_MEANING`] similar (the engine's
//!   `similarity`; word overlap with an engine that does not embed), else starts one. Largest groups first. Conversations with a
//!   draft already waiting for approval are left out.
//! - `POST /api/v1/gaps/draft` `{"conversation_ids": [...], "answer"?}`: one pending entry per
//!   question (so deleting a visitor takes their question out, as with every learned row),
//!   each masked with `mask_personal`, all naming the same new entry `learned-…`: the first
//!   approval creates it with the answer (the agents' most common reply, the longest among
//!   equals, unless `answer` is given), the others add their question as an example.

use std::collections::{HashMap, HashSet};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use nexus_shared::{
    Author, ErrorCode, GapDraft, GapDraftRequest, GapGroup, GapQuestion, Message, Millis,
    Transition, validate_body,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::http::auth::Agent;
use crate::http::error::{ApiJson, ApiQuery, AppError};
use crate::http::playground::owner_only;
use crate::model::{Origin, PendingEntry, mask_like, mask_personal, now_ms};
use nexus_engine::policy;

/// Most conversations one look at the gaps reads.
pub const MAX_CONVERSATIONS: u32 = 200;
/// Questions at least this similar (cosine of their embeddings) are one group.
pub const SAME_MEANING: f32 = 0.6;
/// With an engine that does not embed: this share of common words.
const SAME_WORDS: f32 = 0.5;
/// Groups a question is compared with; later questions that fit none of them stand alone.
const MAX_LEADERS: usize = 40;
/// Most conversations one draft takes.
const MAX_DRAFT: usize = 50;
/// Timeline entries read per conversation.
const ENTRIES: u32 = 60;
const DAY_MS: Millis = 86_400_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/gaps", get(gaps))
        .route("/gaps/draft", post(draft))
}

#[derive(Debug, Deserialize)]
struct Period {
    days: Option<i64>,
}

/// The question of a conversation that went to people, and the agents' replies to it.
pub fn gap_question(conversation_id: Uuid, timeline: &[Message]) -> Option<GapQuestion> {
    let handover = timeline.iter().position(|m| {
        matches!(m.author, Author::Agent(_))
            || m.event.as_ref().is_some_and(|e| {
                matches!(
                    e.cause,
                    Transition::Escalated { .. } | Transition::TakenOver { .. }
                )
            })
    })?;
    let asked = timeline[..handover]
        .iter()
        .rev()
        .find(|m| m.author == Author::Visitor)
        .or_else(|| {
            timeline[handover..]
                .iter()
                .find(|m| m.author == Author::Visitor)
        })?;
    let replies = timeline[handover..]
        .iter()
        .filter(|m| matches!(m.author, Author::Agent(_)) && m.seq > asked.seq)
        .take(3)
        .map(|m| m.body.clone())
        .collect();
    Some(GapQuestion {
        conversation_id,
        question: asked.body.clone(),
        asked_at: asked.created_at,
        replies,
    })
}

/// Words shared by two questions relative to all their words.
fn word_overlap(a: &str, b: &str) -> f32 {
    let (a, b) = (policy::normalise(a), policy::normalise(b));
    let a: HashSet<&str> = a.split(' ').filter(|w| !w.is_empty()).collect();
    let b: HashSet<&str> = b.split(' ').filter(|w| !w.is_empty()).collect();
    let union = a.union(&b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(&b).count() as f32 / union as f32
}

/// Greedy grouping: each question joins the first group one of whose first three questions
/// `same` accepts.
pub fn group(questions: Vec<GapQuestion>, same: impl Fn(&str, &str) -> bool) -> Vec<GapGroup> {
    let mut groups: Vec<Vec<GapQuestion>> = Vec::new();
    for q in questions {
        let home = groups
            .iter()
            .take(MAX_LEADERS)
            .position(|g| g.iter().take(3).any(|m| same(&m.question, &q.question)));
        match home {
            Some(i) => groups[i].push(q),
            None => groups.push(vec![q]),
        }
    }
    // Largest first; among equals, the most recently asked first (the input is newest first).
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    groups
        .into_iter()
        .map(|questions| GapGroup {
            best_reply: best_reply(&questions),
            questions,
        })
        .collect()
}

/// The agents' most common reply to a group (each conversation's longest reply counts once),
/// the longest among equals.
pub fn best_reply(questions: &[GapQuestion]) -> Option<String> {
    let mut counts: HashMap<String, (usize, String)> = HashMap::new();
    for q in questions {
        let Some(reply) = q.replies.iter().max_by_key(|r| r.chars().count()) else {
            continue;
        };
        let key = policy::normalise(reply);
        let slot = counts.entry(key).or_insert((0, reply.clone()));
        slot.0 += 1;
    }
    counts
        .into_values()
        .max_by_key(|(n, text)| (*n, text.chars().count()))
        .map(|(_, text)| text)
}

/// Conversations with learned knowledge still waiting for review.
async fn drafted(state: &AppState, site_id: Uuid) -> Result<HashSet<Uuid>, AppError> {
    Ok(state
        .store
        .pending_entries(site_id)
        .await?
        .into_iter()
        .filter_map(|p| p.conversation_id)
        .collect())
}

/// `GET /api/v1/gaps?days=30` (owners)
async fn gaps(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiQuery(period): ApiQuery<Period>,
) -> Result<ApiJson<Vec<GapGroup>>, AppError> {
    owner_only(user.role, "the knowledge gaps")?;
    let days = period.days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(AppError::new(
            ErrorCode::Validation,
            "`days` must be 1 to 365.",
        ));
    }
    let since = now_ms() - days * DAY_MS;
    let timelines = state
        .store
        .recent_timelines(user.site_id, since, MAX_CONVERSATIONS, ENTRIES, true)
        .await?;
    let waiting = drafted(&state, user.site_id).await?;
    let questions: Vec<GapQuestion> = timelines
        .iter()
        .filter(|(c, _)| !waiting.contains(&c.id))
        .filter_map(|(c, timeline)| gap_question(c.id, timeline))
        .collect();
    // Comparing questions embeds them: CPU work.
    let engine = state.engine.clone();
    let groups = tokio::task::spawn_blocking(move || {
        group(questions, |a, b| match engine.similarity(a, b) {
            Some(s) => s >= SAME_MEANING,
            None => word_overlap(a, b) >= SAME_WORDS,
        })
    })
    .await
    .map_err(|_| AppError::new(ErrorCode::Internal, "Grouping the questions failed."))?;
    Ok(ApiJson(groups))
}

/// `POST /api/v1/gaps/draft` (owners)
async fn draft(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiJson(request): ApiJson<GapDraftRequest>,
) -> Result<ApiJson<GapDraft>, AppError> {
    owner_only(user.role, "the knowledge gaps")?;
    let mut ids = request.conversation_ids;
    let mut seen = HashSet::new();
    ids.retain(|id| seen.insert(*id));
    if ids.is_empty() || ids.len() > MAX_DRAFT {
        return Err(AppError::new(
            ErrorCode::Validation,
            format!("Send 1 to {MAX_DRAFT} conversation ids."),
        ));
    }
    let mut questions = Vec::new();
    for id in ids {
        let conversation = state
            .store
            .conversation(id)
            .await?
            // Another site's conversation is reported like a missing one.
            .filter(|c| c.site_id == user.site_id)
            .ok_or_else(|| AppError::not_found("Conversation"))?;
        let timeline = state
            .store
            .messages_after(conversation.id, 0, ENTRIES)
            .await?;
        questions.extend(gap_question(conversation.id, &timeline));
    }
    if questions.is_empty() {
        return Err(AppError::new(
            ErrorCode::Validation,
            "None of these conversations has a question that went to people.",
        ));
    }
    let answer = match request.answer.as_deref() {
        Some(answer) => validate_body(answer)?.to_owned(),
        None => best_reply(&questions).ok_or_else(|| {
            AppError::new(
                ErrorCode::Validation,
                "No agent has replied to these questions yet: write the answer.",
            )
        })?,
    };
    let masked: Vec<_> = questions
        .iter()
        .map(|q| (q, mask_personal(&q.question)))
        .collect();
    // The same answer for every question, with what any of them revealed masked.
    let answer = masked
        .iter()
        .fold(answer, |answer, (_, m)| mask_like(&answer, m));
    let answer = validate_body(&answer)?.to_owned();
    let entry_id = format!("learned-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let mut pending = 0;
    let mut stored = HashSet::new();
    for (q, m) in &masked {
        let Ok(question) = validate_body(&m.text) else {
            continue;
        };
        if !stored.insert(question.to_lowercase()) {
            continue;
        }
        let entry = PendingEntry {
            id: Uuid::new_v4(),
            question: question.to_owned(),
            answer: answer.clone(),
            entry_id: Some(entry_id.clone()),
            conversation_id: Some(q.conversation_id),
            origin: Origin::Gap,
            created_at: now_ms(),
        };
        state.store.add_pending_entry(user.site_id, &entry).await?;
        pending += 1;
    }
    tracing::info!(entry = %entry_id, pending, "gap drafted for approval");
    Ok(ApiJson(GapDraft {
        entry_id,
        pending,
        answer,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str, replies: &[&str]) -> GapQuestion {
        GapQuestion {
            conversation_id: Uuid::new_v4(),
            question: text.into(),
            asked_at: 0,
            replies: replies.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn groups_are_largest_first_with_the_most_common_reply() {
        let questions = vec![
            q(
                "gift wrapping?",
                &["Hi!", "Yes, gift wrapping costs 3 euros."],
            ),
            q("do you ship to mars", &["No."]),
            q(
                "gift wrapping possible",
                &["Yes, gift wrapping costs 3 euros."],
            ),
            q("gift wrapping please", &["We wrap gifts for free."]),
        ];
        let groups = group(questions, |a, b| word_overlap(a, b) >= 0.3);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].questions.len(), 3);
        assert_eq!(
            groups[0].best_reply.as_deref(),
            Some("Yes, gift wrapping costs 3 euros.")
        );
        assert_eq!(groups[1].questions[0].question, "do you ship to mars");
    }
}
