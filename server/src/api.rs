//! The REST API under `/api/v1`.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use nexus_shared::{ErrorCode, Health, Message, PROTOCOL_VERSION, limits};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiJson, AppError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/conversations/{id}/messages", get(messages))
        .route("/auth/login", axum::routing::post(crate::auth::login))
        .route("/auth/logout", axum::routing::post(crate::auth::logout))
        .route("/me", get(crate::auth::me))
}

/// `GET /api/v1/health`: the process is up; says which engine and database serve.
async fn health(State(state): State<AppState>) -> ApiJson<Health> {
    ApiJson(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol_version: PROTOCOL_VERSION,
        engine: state.engine.name().into(),
        database: state.store.backend().into(),
    })
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
struct MessagePage {
    messages: Vec<Message>,
    has_more: bool,
}

/// `GET /api/v1/conversations/{id}/messages?after=SEQ&limit=N`: a page of a conversation's
/// timeline, for the visitor who owns it (`Authorization: Bearer <visitor token>`).
async fn messages(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Result<ApiJson<MessagePage>, AppError> {
    let limit = page.limit.unwrap_or(limits::DEFAULT_HISTORY_PAGE);
    if limit == 0 || limit > limits::MAX_HISTORY_PAGE {
        return Err(AppError::new(
            ErrorCode::Validation,
            format!("limit must be 1 to {}.", limits::MAX_HISTORY_PAGE),
        ));
    }
    let unauthorized = || AppError::new(ErrorCode::Unauthorized, "A visitor token is required.");
    let token = crate::auth::bearer(&headers).ok_or_else(unauthorized)?;
    let conversation = state
        .store
        .conversation(id)
        .await?
        .ok_or_else(|| AppError::not_found("Conversation"))?;
    let visitor = state
        .store
        .visitor_by_token(conversation.site_id, token)
        .await?
        .ok_or_else(unauthorized)?;
    if visitor.id != conversation.visitor_id {
        // Same answer as a missing conversation: ids of others' conversations are not confirmed.
        return Err(AppError::not_found("Conversation"));
    }
    let mut messages = state
        .store
        .messages_after(id, page.after, limit + 1)
        .await?;
    let has_more = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    Ok(ApiJson(MessagePage { messages, has_more }))
}
