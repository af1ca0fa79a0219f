//! Analytics for owners: `GET /api/v1/analytics?from=<ms>&to=<ms>` (default: the last 30
//! days). Computed from the store: the conversations created in `[from, to)`, their timelines
//! (state changes, who wrote what and when), their CSAT answers, and the entries agents taught.
//!
//! Definitions:
//! - *automated*: the AI answered at least once and no person was involved (no escalation, no
//!   takeover, no agent message).
//! - *escalated*: the conversation was handed to a person (an escalation or a takeover).
//! - *escalations_by_reason*: every escalation by its reason code; a takeover of a conversation
//!   the AI was handling counts as `agent_takeover`.
//! - *first_response_ms*: from a conversation's first escalation to the first agent message.
//! - *handle_time_ms*: from the first agent joining to the conversation being resolved.
//! - *daily*: per UTC day (by conversation creation); `taught` counts entries agents taught
//!   that day. Days without conversations are included for periods up to 366 days.
//! - *weekly*: the learning curve, per ISO week (`week` is its Monday, UTC): the automation
//!   rate of the conversations created that week, `new_entries` (entries agents taught, as in
//!   `daily`), `taught` (questions taught live on resolve) and `approved` (learned questions an
//!   owner approved, counted at the approval). Weeks are listed like days.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use nexus_shared::{Author, ConversationState, ErrorCode, Message, Millis, Role, Transition};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::http::auth::Agent;
use crate::http::error::{ApiJson, ApiQuery, AppError};
use crate::model::now_ms;

const DAY_MS: Millis = 86_400_000;
/// Longest period with every day listed in `daily`.
const MAX_FILLED_DAYS: i64 = 366;

pub fn routes() -> Router<AppState> {
    Router::new().route("/analytics", get(analytics))
}

#[derive(Debug, Deserialize)]
struct Period {
    from: Option<Millis>,
    to: Option<Millis>,
}

/// 50th and 90th percentiles (nearest rank); `null` without samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Percentiles {
    pub p50: Option<i64>,
    pub p90: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CsatStats {
    pub average: Option<f64>,
    pub count: u64,
    /// How many answered 1, 2, 3, 4 and 5.
    pub distribution: [u64; 5],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Day {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub conversations: u64,
    pub automated: u64,
    pub escalated: u64,
    pub taught: u64,
    pub automation_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Week {
    /// The Monday the ISO week starts on, `YYYY-MM-DD` (UTC).
    pub week: String,
    pub conversations: u64,
    pub automated: u64,
    pub automation_rate: f64,
    pub new_entries: u64,
    pub taught: u64,
    pub approved: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analytics {
    pub from: Millis,
    pub to: Millis,
    pub conversations: u64,
    pub automated: u64,
    pub automation_rate: f64,
    pub escalations_by_reason: BTreeMap<String, u64>,
    pub csat: CsatStats,
    pub first_response_ms: Percentiles,
    pub handle_time_ms: Percentiles,
    pub daily: Vec<Day>,
    #[serde(default)]
    pub weekly: Vec<Week>,
}

/// One conversation with what analytics needs of it.
pub type Facts = crate::model::ConversationFacts;

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn percentiles(mut samples: Vec<i64>) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_unstable();
    let rank = |p: f64| {
        let n = samples.len();
        let index = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        samples[index]
    };
    Percentiles {
        p50: Some(rank(0.5)),
        p90: Some(rank(0.9)),
    }
}

/// `YYYY-MM-DD` of a UTC time.
pub fn day_of(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
        .unwrap_or_default()
}

/// The Monday (`YYYY-MM-DD`, UTC) of the ISO week of a time.
pub fn week_of(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .and_then(|t| {
            let date = t.to_zoned(jiff::tz::TimeZone::UTC).date();
            let back = i64::from(date.weekday().to_monday_zero_offset());
            date.checked_sub(jiff::Span::new().days(back)).ok()
        })
        .map(|d| d.to_string())
        .unwrap_or_default()
}

/// What happened in one conversation.
#[derive(Debug, Default)]
struct Outcome {
    automated: bool,
    escalated: bool,
    reasons: Vec<String>,
    first_response: Option<i64>,
    handle_time: Option<i64>,
}

fn outcome(messages: &[Message], ai_answered: bool) -> Outcome {
    let mut out = Outcome::default();
    let mut ai_spoke = ai_answered;
    let mut agent_spoke = false;
    let mut escalated_at: Option<Millis> = None;
    let mut joined_at: Option<Millis> = None;
    for m in messages {
        match &m.author {
            Author::Ai => ai_spoke = true,
            Author::Agent(_) => {
                agent_spoke = true;
                if let Some(at) = escalated_at
                    && out.first_response.is_none()
                {
                    out.first_response = Some(m.created_at - at);
                }
                joined_at.get_or_insert(m.created_at);
            }
            _ => {}
        }
        let Some(event) = &m.event else { continue };
        match &event.cause {
            Transition::Escalated { reason } => {
                out.escalated = true;
                out.reasons.push(reason.code().to_owned());
                escalated_at.get_or_insert(m.created_at);
            }
            Transition::TakenOver { .. } => {
                out.escalated = true;
                if event.from == ConversationState::Ai {
                    out.reasons.push("agent_takeover".to_owned());
                }
                joined_at.get_or_insert(m.created_at);
            }
            Transition::Resolved { .. } => {
                if let Some(joined) = joined_at
                    && out.handle_time.is_none()
                {
                    out.handle_time = Some(m.created_at - joined);
                }
            }
            _ => {}
        }
    }
    out.automated = ai_spoke && !out.escalated && !agent_spoke;
    out
}

/// Computes the figures of a period from its conversations, the times entries were taught
/// (`learned`) and the times learned questions went live (`lessons`: `true` for an approval).
pub fn compute(
    from: Millis,
    to: Millis,
    facts: &[Facts],
    learned: &[Millis],
    lessons: &[(Millis, bool)],
) -> Analytics {
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    let blank = |day: String| Day {
        day,
        conversations: 0,
        automated: 0,
        escalated: 0,
        taught: 0,
        automation_rate: 0.0,
    };
    let mut weeks: BTreeMap<String, Week> = BTreeMap::new();
    let blank_week = |week: String| Week {
        week,
        conversations: 0,
        automated: 0,
        automation_rate: 0.0,
        new_entries: 0,
        taught: 0,
        approved: 0,
    };
    if (to - from) / DAY_MS <= MAX_FILLED_DAYS {
        let mut t = from;
        while t < to {
            let d = day_of(t);
            days.entry(d.clone()).or_insert_with(|| blank(d));
            let w = week_of(t);
            weeks.entry(w.clone()).or_insert_with(|| blank_week(w));
            t += DAY_MS;
        }
        let last = day_of(to - 1);
        days.entry(last.clone()).or_insert_with(|| blank(last));
        let w = week_of(to - 1);
        weeks.entry(w.clone()).or_insert_with(|| blank_week(w));
    }

    let mut by_reason = BTreeMap::new();
    let mut csat = CsatStats::default();
    let mut first_responses = Vec::new();
    let mut handle_times = Vec::new();
    let mut automated = 0;
    for f in facts {
        let o = outcome(&f.messages, f.ai_answered);
        let d = day_of(f.conversation.created_at);
        let day = days.entry(d.clone()).or_insert_with(|| blank(d));
        day.conversations += 1;
        let w = week_of(f.conversation.created_at);
        let week = weeks.entry(w.clone()).or_insert_with(|| blank_week(w));
        week.conversations += 1;
        if o.automated {
            automated += 1;
            day.automated += 1;
            week.automated += 1;
        }
        if o.escalated {
            day.escalated += 1;
        }
        for reason in o.reasons {
            *by_reason.entry(reason).or_insert(0) += 1;
        }
        first_responses.extend(o.first_response);
        handle_times.extend(o.handle_time);
        if let Some(score) = f.csat.filter(|s| (1..=5).contains(s)) {
            csat.count += 1;
            csat.distribution[usize::from(score - 1)] += 1;
        }
    }
    for at in learned {
        let d = day_of(*at);
        days.entry(d.clone()).or_insert_with(|| blank(d)).taught += 1;
        let w = week_of(*at);
        weeks
            .entry(w.clone())
            .or_insert_with(|| blank_week(w))
            .new_entries += 1;
    }
    for &(at, approved) in lessons {
        let w = week_of(at);
        let week = weeks.entry(w.clone()).or_insert_with(|| blank_week(w));
        if approved {
            week.approved += 1;
        } else {
            week.taught += 1;
        }
    }
    if csat.count > 0 {
        let total: u64 = csat
            .distribution
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u64 + 1) * n)
            .sum();
        csat.average = Some(total as f64 / csat.count as f64);
    }
    let conversations = facts.len() as u64;
    Analytics {
        from,
        to,
        conversations,
        automated,
        automation_rate: rate(automated, conversations),
        escalations_by_reason: by_reason,
        csat,
        first_response_ms: percentiles(first_responses),
        handle_time_ms: percentiles(handle_times),
        daily: days
            .into_values()
            .map(|mut d| {
                d.automation_rate = rate(d.automated, d.conversations);
                d
            })
            .collect(),
        weekly: weeks
            .into_values()
            .map(|mut w| {
                w.automation_rate = rate(w.automated, w.conversations);
                w
            })
            .collect(),
    }
}

/// Loads the facts of a site's period from the store and computes its analytics.
pub async fn site_analytics(
    state: &AppState,
    site_id: Uuid,
    from: Millis,
    to: Millis,
) -> Result<Analytics, AppError> {
    let facts = state
        .store
        .conversation_facts_between(site_id, from, to)
        .await?;
    let learned = state.store.learned_entry_times(site_id, from, to).await?;
    let lessons = state.store.learned_times(site_id, from, to).await?;
    Ok(compute(from, to, &facts, &learned, &lessons))
}

/// `GET /api/v1/analytics?from=<ms>&to=<ms>` (owners)
async fn analytics(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiQuery(period): ApiQuery<Period>,
) -> Result<ApiJson<Analytics>, AppError> {
    if user.role != Role::Owner {
        return Err(AppError::new(
            ErrorCode::Forbidden,
            "Only the site's owners can see analytics.",
        ));
    }
    let to = period.to.unwrap_or_else(|| now_ms() + 1);
    let from = period.from.unwrap_or(to - 30 * DAY_MS);
    if from >= to || from < 0 {
        return Err(AppError::new(
            ErrorCode::Validation,
            "`from` must be before `to` (milliseconds since 1970).",
        ));
    }
    site_analytics(&state, user.site_id, from, to)
        .await
        .map(ApiJson)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Conversation;
    use nexus_shared::{AgentRef, HandoffReason, Snapshot, StateChange};

    fn conversation(created_at: Millis) -> Conversation {
        Conversation {
            id: Uuid::new_v4(),
            site_id: Uuid::nil(),
            visitor_id: Uuid::nil(),
            snapshot: Snapshot::new(),
            handoff_reason: None,
            last_seq: 0,
            page_url: None,
            locale: None,
            created_at,
            updated_at: created_at,
            waiting_since: None,
        }
    }

    fn message(
        at: Millis,
        author: Author,
        event: Option<(ConversationState, Transition)>,
    ) -> Message {
        Message {
            id: Uuid::new_v4(),
            conversation_id: Uuid::nil(),
            seq: 0,
            client_msg_id: None,
            author,
            body: String::new(),
            created_at: at,
            sources: vec![],
            confidence: None,
            choices: vec![],
            event: event.map(|(from, cause)| StateChange {
                from,
                to: ConversationState::Waiting,
                cause,
            }),
        }
    }

    #[test]
    fn figures_of_a_scripted_period() {
        let ana = AgentRef {
            id: Uuid::from_u128(7),
            name: "Ana".into(),
        };
        let day1 = 1_764_028_800_000; // 2025-11-25T00:00:00Z
        let automated = Facts {
            conversation: conversation(day1 + 1000),
            messages: vec![
                message(day1 + 1000, Author::Visitor, None),
                message(day1 + 1100, Author::Ai, None),
            ],
            ai_answered: false,
            csat: Some(5),
        };
        let escalated = Facts {
            conversation: conversation(day1 + DAY_MS + 10),
            messages: vec![
                message(day1 + DAY_MS + 10, Author::Visitor, None),
                message(
                    day1 + DAY_MS + 20,
                    Author::System,
                    Some((
                        ConversationState::Ai,
                        Transition::Escalated {
                            reason: HandoffReason::LowConfidence,
                        },
                    )),
                ),
                message(
                    day1 + DAY_MS + 5020,
                    Author::System,
                    Some((
                        ConversationState::Waiting,
                        Transition::TakenOver { agent: ana.clone() },
                    )),
                ),
                message(day1 + DAY_MS + 8020, Author::Agent(ana.clone()), None),
                message(
                    day1 + DAY_MS + 65020,
                    Author::System,
                    Some((
                        ConversationState::Human,
                        Transition::Resolved { by: Some(ana) },
                    )),
                ),
            ],
            ai_answered: true,
            csat: Some(2),
        };
        let a = compute(
            day1,
            day1 + 2 * DAY_MS,
            &[automated, escalated],
            &[day1 + DAY_MS + 70_000],
            &[(day1 + DAY_MS + 70_000, false), (day1 + 9 * DAY_MS, true)],
        );
        assert_eq!(a.conversations, 2);
        assert_eq!(a.automated, 1);
        assert_eq!(a.automation_rate, 0.5);
        assert_eq!(a.escalations_by_reason.get("low_confidence"), Some(&1));
        assert_eq!(a.csat.count, 2);
        assert_eq!(a.csat.average, Some(3.5));
        assert_eq!(a.csat.distribution, [0, 1, 0, 0, 1]);
        assert_eq!(a.first_response_ms.p50, Some(8000));
        assert_eq!(a.handle_time_ms.p50, Some(60_000));
        assert_eq!(a.daily.len(), 2);
        assert_eq!(a.daily[0].day, "2025-11-25");
        assert_eq!(a.daily[0].automation_rate, 1.0);
        assert_eq!(a.daily[1].escalated, 1);
        assert_eq!(a.daily[1].taught, 1);
        // 2025-11-25 is a Tuesday: its week starts on Monday the 24th; the approval nine
        // days later falls in the next week, outside the period's conversations.
        assert_eq!(a.weekly[0].week, "2025-11-24");
        assert_eq!(a.weekly[0].conversations, 2);
        assert_eq!(a.weekly[0].automation_rate, 0.5);
        assert_eq!((a.weekly[0].new_entries, a.weekly[0].taught), (1, 1));
        let later = a.weekly.iter().find(|w| w.week == "2025-12-01").unwrap();
        assert_eq!((later.approved, later.conversations), (1, 0));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let p = percentiles((1..=10).collect());
        assert_eq!((p.p50, p.p90), (Some(5), Some(9)));
        assert_eq!(percentiles(vec![]), Percentiles::default());
    }
}
