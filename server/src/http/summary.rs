//! `GET /api/v1/conversations/{id}/summary`: the handoff summary
//! ([`crate::conversation::summary`]) of a conversation of the agent's site.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use uuid::Uuid;

use crate::AppState;
use crate::conversation::summary::{HandoffSummary, build};
use crate::http::auth::Agent;
use crate::http::error::{ApiJson, ApiPath, AppError};

pub fn routes() -> Router<AppState> {
    Router::new().route("/conversations/{id}/summary", get(summary))
}

/// `GET /api/v1/conversations/{id}/summary` (agents of the conversation's site)
async fn summary(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<HandoffSummary>, AppError> {
    let conversation = crate::conversation::agent::site_conversation(&state, &user, id).await?;
    Ok(ApiJson(build(&state, &conversation).await?))
}
