//! The knowledge base over REST: `/api/v1/kb`. Agents read it; owners change it. Every change
//! reloads the engine's copy of the site's knowledge base, so the AI answers from it at once.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use nexus_shared::{ErrorCode, Role, limits, validate_body};
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::http::auth::Agent;
use crate::http::error::{ApiJson, ApiPath, ApiQuery, AppError};
use crate::model::User;
use nexus_engine::KbEntry;

/// Most example questions one entry may have.
pub const MAX_EXAMPLES: usize = 500;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/kb", get(list).post(create))
        .route("/kb/{id}", get(read).put(replace).delete(remove))
        .merge(crate::http::learn::routes())
}

#[derive(Debug, Deserialize)]
struct Search {
    /// Case-insensitive text to find in titles, answers and examples.
    #[serde(default)]
    q: Option<String>,
}

/// What an owner sends to create or replace an entry.
#[derive(Debug, Deserialize)]
struct EntryInput {
    title: String,
    answer: String,
    examples: Vec<String>,
}

fn owner_only(user: &User) -> Result<(), AppError> {
    if user.role == Role::Owner {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorCode::Forbidden,
            "Only the site's owners can change the knowledge base.",
        ))
    }
}

fn validated(id: String, input: EntryInput) -> Result<KbEntry, AppError> {
    let title = input.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(AppError::new(
            ErrorCode::Validation,
            "The title must have 1 to 200 characters.",
        ));
    }
    let answer = validate_body(&input.answer)?.to_owned();
    if input.examples.is_empty() || input.examples.len() > MAX_EXAMPLES {
        return Err(AppError::new(
            ErrorCode::Validation,
            format!("An entry needs 1 to {MAX_EXAMPLES} example questions."),
        ));
    }
    let examples = input
        .examples
        .iter()
        .map(|q| validate_body(q).map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KbEntry {
        url: None,
        id,
        title: title.to_owned(),
        answer,
        examples,
        escalate: None,
    })
}

async fn reload(state: &AppState, site_id: Uuid) -> Result<(), AppError> {
    let entries = state.store.knowledge(site_id).await?;
    state.engine.load_site(site_id, entries);
    Ok(())
}

/// `GET /api/v1/kb?q=…`
async fn list(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiQuery(search): ApiQuery<Search>,
) -> Result<ApiJson<Vec<KbEntry>>, AppError> {
    let needle = search.q.unwrap_or_default().to_lowercase();
    let entries = state
        .store
        .kb_entries(user.site_id)
        .await?
        .into_iter()
        .filter(|e| {
            needle.is_empty()
                || e.title.to_lowercase().contains(&needle)
                || e.answer.to_lowercase().contains(&needle)
                || e.examples
                    .iter()
                    .any(|q| q.to_lowercase().contains(&needle))
        })
        .take(limits::MAX_HISTORY_PAGE as usize)
        .collect();
    Ok(ApiJson(entries))
}

async fn find(state: &AppState, user: &User, id: &str) -> Result<KbEntry, AppError> {
    state
        .store
        .kb_entries(user.site_id)
        .await?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| AppError::not_found("Knowledge-base entry"))
}

/// `GET /api/v1/kb/{id}`
async fn read(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<KbEntry>, AppError> {
    find(&state, &user, &id).await.map(ApiJson)
}

/// `POST /api/v1/kb` (owners)
async fn create(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiJson(input): ApiJson<EntryInput>,
) -> Result<(StatusCode, ApiJson<KbEntry>), AppError> {
    owner_only(&user)?;
    let id = format!("kb-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let entry = validated(id, input)?;
    state.store.upsert_kb_entry(user.site_id, &entry).await?;
    reload(&state, user.site_id).await?;
    Ok((StatusCode::CREATED, ApiJson(entry)))
}

/// `PUT /api/v1/kb/{id}` (owners). The entry's escalation setting is kept.
async fn replace(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<EntryInput>,
) -> Result<ApiJson<KbEntry>, AppError> {
    owner_only(&user)?;
    let existing = find(&state, &user, &id).await?;
    let entry = KbEntry {
        url: None,
        escalate: existing.escalate,
        ..validated(id, input)?
    };
    state.store.upsert_kb_entry(user.site_id, &entry).await?;
    reload(&state, user.site_id).await?;
    Ok(ApiJson(entry))
}

/// `DELETE /api/v1/kb/{id}` (owners)
async fn remove(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, AppError> {
    owner_only(&user)?;
    // An id that is not this site's (another site's, or none) is a 404, never a silent 204.
    find(&state, &user, &id).await?;
    state.store.delete_kb_entry(user.site_id, &id).await?;
    reload(&state, user.site_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
