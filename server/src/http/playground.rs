//! The owner's playground: what the AI would do now with a question from a new visitor, and a
//! replay of the site's past questions against the current knowledge base. Owners only;
//! nothing is written, no conversation is created.
//!
//! - `POST /api/v1/playground` `{"question"}` or `{"questions": [...]}` (at most
//!   [`MAX_QUESTIONS`]): for each, the decision (`answer`, `clarify`, `escalate`), its
//!   confidence, the answer with its placeholders filled, the sources with their passage, the
//!   closest entries, and which step decided and why ([`DecisionStage`], `why`). The steps are
//!   those of `conversation::visitor::respond` for a conversation without history: autonomy
//!   `off`, `policy::before_engine`, the engine's `decide_with` with the site's thresholds,
//!   `policy::after_engine`. Review mode is reported as `draft`.
//! - `POST /api/v1/playground/replay` `{"last": N}` (1 to [`MAX_REPLAY`]): the *first visitor
//!   message* of each of the site's last N conversations, replayed as a new visitor's question;
//!   counts of answered, clarified and handed over then (what the timeline shows after that
//!   message) and now, and every question whose outcome or answer changed.
//!
//! Fixing in place uses the knowledge base's own routes (`PUT /api/v1/kb/{id}`); the engine
//! reloads the site on every change, and its `decide` waits for the newest load, so the next
//! try sees the fix.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use nexus_shared::{
    AiOutcome, Author, Autonomy, Candidate, DecisionStage, ErrorCode, HandoffReason, Message,
    OutcomeCounts, PlaygroundRequest, PlaygroundResult, PlaygroundSource, ReplayChange,
    ReplayReport, ReplayRequest, Role, Transition, validate_body,
};

use crate::AppState;
use crate::http::auth::Agent;
use crate::http::error::{ApiJson, AppError};
use crate::model::Site;
use nexus_engine::{Decision, Query, Thresholds, placeholders, policy};

/// Most questions one playground call tries.
pub const MAX_QUESTIONS: usize = 50;
/// Most conversations one replay reads.
pub const MAX_REPLAY: u32 = 200;
/// How many close entries a result lists.
const CANDIDATES: usize = 3;
/// Timeline entries read per replayed conversation (the first question and what followed).
const REPLAY_ENTRIES: u32 = 30;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/playground", post(playground))
        .route("/playground/replay", post(replay))
}

/// Owners only: the playground shows the knowledge base's inner workings.
pub(crate) fn owner_only(role: Role, what: &str) -> Result<(), AppError> {
    if role == Role::Owner {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorCode::Forbidden,
            format!("Only the site's owners can use {what}."),
        ))
    }
}

pub(crate) async fn owner_site(state: &AppState, site_id: uuid::Uuid) -> Result<Site, AppError> {
    state
        .store
        .site(site_id)
        .await?
        .ok_or_else(|| AppError::not_found("Site"))
}

/// `POST /api/v1/playground` (owners)
async fn playground(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiJson(request): ApiJson<PlaygroundRequest>,
) -> Result<ApiJson<Vec<PlaygroundResult>>, AppError> {
    owner_only(user.role, "the playground")?;
    let questions: Vec<String> = request
        .question
        .into_iter()
        .chain(request.questions)
        .filter(|q| !q.trim().is_empty())
        .collect();
    if questions.is_empty() || questions.len() > MAX_QUESTIONS {
        return Err(AppError::new(
            ErrorCode::Validation,
            format!("Send 1 to {MAX_QUESTIONS} questions (`question` or `questions`)."),
        ));
    }
    let questions = questions
        .iter()
        .map(|q| validate_body(q).map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()?;
    let site = owner_site(&state, user.site_id).await?;
    let mut results = Vec::with_capacity(questions.len());
    for question in &questions {
        results.push(simulate(&state, &site, question).await);
    }
    Ok(ApiJson(results))
}

/// The site's thresholds, as `respond` uses them.
fn thresholds(state: &AppState, site: &Site) -> (Option<Thresholds>, Thresholds) {
    let engine = state.engine.default_thresholds();
    let site_thresholds = site.settings.policy.thresholds(engine);
    (site_thresholds, site_thresholds.unwrap_or(engine))
}

/// Why a handover happened, in plain words.
fn handover_why(reason: &HandoffReason, confidence: Option<f32>, t: &Thresholds) -> String {
    let c = confidence.unwrap_or(0.0);
    match reason {
        HandoffReason::LowConfidence => format!(
            "Confidence {c:.2} is below the answer threshold {:.2}: not sure enough to answer.",
            t.answer
        ),
        HandoffReason::OutOfScope => format!(
            "Confidence {c:.2} is below the out-of-scope threshold {:.2}: nothing in the knowledge base is close.",
            t.out_of_scope
        ),
        HandoffReason::VisitorAsked => "The visitor asks for a person.".into(),
        HandoffReason::Sensitive { category } => {
            format!("A sensitive topic ({category}): such questions always go to a person.")
        }
        HandoffReason::Frustration => {
            "Signs of frustration (insults or shouting): a person takes over.".into()
        }
        HandoffReason::RepeatedFailure => {
            "The AI asked twice in a row which entry is meant: a person takes over.".into()
        }
        HandoffReason::EngineError => "The answer engine failed.".into(),
        HandoffReason::EngineBusy => "The answer engine is busy.".into(),
        HandoffReason::AgentTakeover => "An agent took over.".into(),
        HandoffReason::AutonomyOff => {
            "The site's autonomy is off: every conversation goes to people.".into()
        }
    }
}

fn result(
    question: &str,
    outcome: AiOutcome,
    stage: DecisionStage,
    why: String,
) -> PlaygroundResult {
    PlaygroundResult {
        question: question.to_owned(),
        outcome,
        confidence: None,
        answer: None,
        sources: Vec::new(),
        choices: Vec::new(),
        candidates: Vec::new(),
        reason: None,
        stage,
        why,
        draft: false,
    }
}

/// What the AI would do now with `question` from a new visitor of `site` (no history):
/// the steps of `conversation::visitor::respond`, without posting anything.
pub async fn simulate(state: &AppState, site: &Site, question: &str) -> PlaygroundResult {
    let (site_thresholds, t) = thresholds(state, site);
    if site.settings.autonomy == Autonomy::Off {
        let reason = HandoffReason::AutonomyOff;
        let mut r = result(
            question,
            AiOutcome::Escalate,
            DecisionStage::Autonomy,
            handover_why(&reason, None, &t),
        );
        r.reason = Some(reason);
        return r;
    }
    // The engine's decision first: it waits for the site's newest knowledge base to load, so
    // that the close entries below are read from that one too.
    let decided = state
        .engine
        .decide_with(
            Query {
                site_id: site.id,
                text: question,
                locale: None,
            },
            site_thresholds,
        )
        .await;
    // The policy's phrase matching and the ranking embed the question: CPU work.
    let (engine, policy, text, site_id) = (
        state.engine.clone(),
        site.settings.policy.clone(),
        question.to_owned(),
        site.id,
    );
    let work = tokio::task::spawn_blocking(move || {
        let before = if policy.uses_similarity() {
            let similarity = |a: &str, b: &str| engine.similarity(a, b);
            policy::before_engine(&policy, &text, &[], &similarity)
        } else {
            policy::before_engine(&policy, &text, &[], &policy::no_similarity)
        };
        (before, engine.retrieve(site_id, &text, CANDIDATES))
    })
    .await;
    let (before, close) = work.unwrap_or((None, Vec::new()));
    let candidates: Vec<Candidate> = close
        .into_iter()
        .map(|(entry, confidence)| Candidate {
            entry_id: entry.id,
            title: entry.title,
            confidence,
        })
        .collect();
    if let Some(reason) = before {
        let mut r = result(
            question,
            AiOutcome::Escalate,
            DecisionStage::BeforeEngine,
            handover_why(&reason, None, &t),
        );
        r.reason = Some(reason);
        r.candidates = candidates;
        return r;
    }
    let raw = match decided {
        Ok(d) => d,
        Err(e) => {
            let mut r = result(
                question,
                AiOutcome::Escalate,
                DecisionStage::Engine,
                format!("The answer engine failed: {e}"),
            );
            r.reason = Some(HandoffReason::EngineError);
            return r;
        }
    };
    let engine_escalated = matches!(raw, Decision::Escalate { .. });
    let review = site.settings.autonomy == Autonomy::Review;
    let review_note = if review {
        " In review mode an agent approves the draft before the visitor sees it."
    } else {
        ""
    };
    let mut r = match policy::after_engine(raw, &t, &[]) {
        Decision::Answer {
            body,
            source,
            confidence,
        } => {
            let passage = state
                .engine
                .entry(site.id, &source.entry_id)
                .map(|e| e.answer)
                .unwrap_or_else(|| body.clone());
            let mut r = result(
                question,
                AiOutcome::Answer,
                DecisionStage::Engine,
                format!(
                    "Confidence {confidence:.2} reaches the answer threshold {:.2}: answered from \u{201c}{}\u{201d}.{review_note}",
                    t.answer, source.title
                ),
            );
            r.confidence = Some(confidence);
            r.answer = Some(placeholders::fill(&body, &site.settings.placeholders));
            r.sources = vec![PlaygroundSource {
                entry_id: source.entry_id,
                title: source.title,
                url: source.url,
                passage,
            }];
            r.draft = review;
            r
        }
        Decision::Clarify {
            body,
            choices,
            confidence,
        } => {
            let mut r = result(
                question,
                AiOutcome::Clarify,
                DecisionStage::Engine,
                format!(
                    "{} entries are within the clarify margin {:.2} of each other: the visitor is asked which one they mean.{review_note}",
                    choices.len(),
                    t.clarify_margin
                ),
            );
            r.confidence = Some(confidence);
            r.answer = Some(body);
            r.choices = choices;
            r.draft = review;
            r
        }
        Decision::Escalate { reason, confidence } => {
            let stage = if engine_escalated {
                DecisionStage::Engine
            } else {
                DecisionStage::AfterEngine
            };
            let why = match (&reason, candidates.first()) {
                // An entry that always hands over (e.g. "talk to a person").
                (
                    HandoffReason::VisitorAsked
                    | HandoffReason::Sensitive { .. }
                    | HandoffReason::Frustration,
                    Some(best),
                ) if engine_escalated => format!(
                    "The closest entry \u{201c}{}\u{201d} always goes to a person ({}).",
                    best.title,
                    reason.code()
                ),
                _ => handover_why(&reason, confidence, &t),
            };
            let mut r = result(question, AiOutcome::Escalate, stage, why);
            r.confidence = confidence;
            r.reason = Some(reason);
            r
        }
    };
    r.candidates = candidates;
    r
}

/// What followed a visitor's question in a timeline (up to the visitor's next message): the
/// outcome, and for an answer the entry it came from and its text.
pub fn outcome_then(after: &[Message]) -> (AiOutcome, Option<String>, Option<String>) {
    for m in after.iter().take_while(|m| m.author != Author::Visitor) {
        if let Some(event) = &m.event
            && matches!(
                event.cause,
                Transition::Escalated { .. } | Transition::TakenOver { .. }
            )
        {
            return (AiOutcome::Escalate, None, None);
        }
        if matches!(m.author, Author::Agent(_)) {
            return (AiOutcome::Escalate, None, None);
        }
        if policy::is_clarify(m) {
            return (AiOutcome::Clarify, None, None);
        }
        if policy::is_answer(m) {
            let entry = m.sources.first().map(|s| s.entry_id.clone());
            return (AiOutcome::Answer, entry, Some(m.body.clone()));
        }
    }
    (AiOutcome::NoReply, None, None)
}

fn count(counts: &mut OutcomeCounts, outcome: AiOutcome) {
    match outcome {
        AiOutcome::Answer => counts.answered += 1,
        AiOutcome::Clarify => counts.clarified += 1,
        AiOutcome::Escalate => counts.handed_over += 1,
        AiOutcome::NoReply => counts.none += 1,
    }
}

/// `POST /api/v1/playground/replay` (owners)
async fn replay(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> Result<ApiJson<ReplayReport>, AppError> {
    owner_only(user.role, "the playground")?;
    if request.last == 0 || request.last > MAX_REPLAY {
        return Err(AppError::new(
            ErrorCode::Validation,
            format!("`last` must be 1 to {MAX_REPLAY} conversations."),
        ));
    }
    let site = owner_site(&state, user.site_id).await?;
    let timelines = state
        .store
        .recent_timelines(site.id, 0, request.last, REPLAY_ENTRIES, false)
        .await?;
    let mut report = ReplayReport {
        questions: "first_visitor_message".into(),
        replayed: 0,
        then: OutcomeCounts::default(),
        now: OutcomeCounts::default(),
        changed: Vec::new(),
    };
    for (conversation, timeline) in timelines {
        let Some(at) = timeline.iter().position(|m| m.author == Author::Visitor) else {
            continue;
        };
        let question = timeline[at].body.clone();
        let (then, then_entry, then_answer) = outcome_then(&timeline[at + 1..]);
        let now = simulate(&state, &site, &question).await;
        report.replayed += 1;
        count(&mut report.then, then);
        count(&mut report.now, now.outcome);
        let now_entry = now.sources.first().map(|s| s.entry_id.clone());
        let changed = then != now.outcome
            || (then == AiOutcome::Answer
                && (then_entry != now_entry || then_answer != now.answer));
        if changed {
            report.changed.push(ReplayChange {
                conversation_id: conversation.id,
                question,
                then,
                then_entry,
                then_answer,
                now,
            });
        }
    }
    Ok(ApiJson(report))
}
