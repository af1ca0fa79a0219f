//! Learned knowledge waiting for an owner (`learning: approve`, and every thumbs-down), over
//! REST; merged into `/api/v1` by [`crate::http::kb::routes`]. Owners only, agents get 403:
//! `GET /kb/pending`, `POST /kb/pending/{id}/approve` with an optional body
//! `{"question", "answer"}`, `POST /kb/pending/{id}/reject`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use nexus_shared::{ErrorCode, Role, validate_body};
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::conversation::learn::apply;
use crate::http::auth::Agent;
use crate::http::error::{ApiBytes, ApiJson, ApiPath, AppError};
use crate::model::PendingEntry;
use nexus_engine::KbEntry;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/kb/pending", get(list))
        .route("/kb/pending/{id}/approve", post(approve))
        .route("/kb/pending/{id}/reject", post(reject))
}

fn owner_only(role: Role) -> Result<(), AppError> {
    if role == Role::Owner {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorCode::Forbidden,
            "Only the site's owners can review learned knowledge.",
        ))
    }
}

/// `GET /api/v1/kb/pending` (owners): learned entries waiting for review, oldest first.
async fn list(
    State(state): State<AppState>,
    Agent(user): Agent,
) -> Result<ApiJson<Vec<PendingEntry>>, AppError> {
    owner_only(user.role)?;
    Ok(ApiJson(state.store.pending_entries(user.site_id).await?))
}

/// An owner's correction before approving.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Edit {
    question: Option<String>,
    answer: Option<String>,
}

async fn find(state: &AppState, site_id: Uuid, id: Uuid) -> Result<PendingEntry, AppError> {
    state
        .store
        .pending_entries(site_id)
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| AppError::not_found("Pending entry"))
}

/// `POST /api/v1/kb/pending/{id}/approve` (owners), optional body `{"question", "answer"}`:
/// the entry goes live; answers the knowledge-base entry.
async fn approve(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiPath(id): ApiPath<Uuid>,
    ApiBytes(body): ApiBytes,
) -> Result<ApiJson<KbEntry>, AppError> {
    owner_only(user.role)?;
    let edit: Edit = if body.iter().all(u8::is_ascii_whitespace) {
        Edit::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            AppError::new(
                ErrorCode::Validation,
                format!("Expected {{\"question\", \"answer\"}}: {e}"),
            )
        })?
    };
    let pending = find(&state, user.site_id, id).await?;
    let question = validate_body(edit.question.as_deref().unwrap_or(&pending.question))?.to_owned();
    let answer = validate_body(edit.answer.as_deref().unwrap_or(&pending.answer))?.to_owned();
    if !state
        .store
        .close_pending_entry(user.site_id, id, "approved", user.id)
        .await?
    {
        return Err(AppError::not_found("Pending entry"));
    }
    let approved = PendingEntry {
        question,
        answer,
        ..pending
    };
    let entry = apply(&state, user.site_id, &approved, "approved").await?;
    Ok(ApiJson(entry))
}

/// `POST /api/v1/kb/pending/{id}/reject` (owners).
async fn reject(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    owner_only(user.role)?;
    if state
        .store
        .close_pending_entry(user.site_id, id, "rejected", user.id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::not_found("Pending entry"))
    }
}
