//! Privacy requests over REST (owners): export everything kept about one visitor as JSON, or
//! delete it. `GET /api/v1/visitors/{visitor_id}/export`, `DELETE /api/v1/visitors/{visitor_id}`.
//!
//! Deleting removes the visitor row; the database cascades to their conversations, messages,
//! feedback, CSAT answers, drafts and notes (no tombstones are kept).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use nexus_shared::{ErrorCode, HandoffReason, Message, Millis, Role};
use serde::Serialize;
use uuid::Uuid;

use crate::AppState;
use crate::http::auth::Agent;
use crate::http::error::{ApiJson, AppError};
use crate::model::{Csat, VisitorProfile};
use crate::model::{User, now_ms};

/// One conversation in an export.
#[derive(Debug, Serialize)]
pub struct ExportedConversation {
    pub id: Uuid,
    pub state: nexus_shared::ConversationState,
    pub page_url: Option<String>,
    pub locale: Option<String>,
    pub handoff_reason: Option<HandoffReason>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub messages: Vec<Message>,
    pub csat: Option<Csat>,
}

/// Everything kept about one visitor.
#[derive(Debug, Serialize)]
pub struct VisitorExport {
    pub visitor: VisitorProfile,
    pub conversations: Vec<ExportedConversation>,
    pub exported_at: Millis,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/visitors/{visitor_id}", axum::routing::delete(delete))
        .route("/visitors/{visitor_id}/export", get(export))
}

fn owner_only(user: &User) -> Result<(), AppError> {
    if user.role == Role::Owner {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorCode::Forbidden,
            "Only the site's owners can export or delete visitor data.",
        ))
    }
}

/// Collects a visitor's data; `None` when the site has no such visitor.
pub async fn collect(
    state: &AppState,
    site_id: Uuid,
    visitor_id: Uuid,
) -> Result<Option<VisitorExport>, AppError> {
    let Some(visitor) = state.store.visitor_profile(site_id, visitor_id).await? else {
        return Ok(None);
    };
    let mut conversations = Vec::new();
    let mut all = state
        .store
        .visitor_conversations(visitor_id, u32::MAX)
        .await?;
    all.sort_by_key(|c| (c.created_at, c.id));
    for c in all {
        let messages = state.store.messages_after(c.id, 0, u32::MAX).await?;
        let csat = state.store.csat(c.id).await?;
        conversations.push(ExportedConversation {
            id: c.id,
            state: c.snapshot.state,
            page_url: c.page_url,
            locale: c.locale,
            handoff_reason: c.handoff_reason,
            created_at: c.created_at,
            updated_at: c.updated_at,
            messages,
            csat,
        });
    }
    Ok(Some(VisitorExport {
        visitor,
        conversations,
        exported_at: now_ms(),
    }))
}

/// `GET /api/v1/visitors/{visitor_id}/export` (owners)
async fn export(
    State(state): State<AppState>,
    Agent(user): Agent,
    Path(visitor_id): Path<Uuid>,
) -> Result<ApiJson<VisitorExport>, AppError> {
    owner_only(&user)?;
    collect(&state, user.site_id, visitor_id)
        .await?
        .map(ApiJson)
        .ok_or_else(|| AppError::not_found("Visitor"))
}

/// `DELETE /api/v1/visitors/{visitor_id}` (owners): 204, or 404 when there is no such
/// visitor on the site.
async fn delete(
    State(state): State<AppState>,
    Agent(user): Agent,
    Path(visitor_id): Path<Uuid>,
) -> Result<StatusCode, AppError> {
    owner_only(&user)?;
    state
        .store
        .delete_visitor(user.site_id, visitor_id)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => AppError::not_found("Visitor"),
            other => other.into(),
        })?;
    tracing::info!(visitor = %visitor_id, "visitor data deleted on request");
    Ok(StatusCode::NO_CONTENT)
}
