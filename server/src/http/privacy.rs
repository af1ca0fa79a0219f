//! Privacy requests over REST (owners): find the visitor a request is about, export everything
//! kept about them as JSON, or delete it. `GET /api/v1/visitors?email=…|user_id=…|conversation_id=…`,
//! `GET /api/v1/visitors/{visitor_id}/export`, `DELETE /api/v1/visitors/{visitor_id}`.
//!
//! Deleting removes the visitor row; the database cascades to their conversations, messages,
//! feedback, CSAT answers, drafts and notes (no tombstones are kept). Learned knowledge from
//! their conversations keeps the agent's answer and loses the visitor's question, in the same
//! transaction; then the deleted bytes are cleared from the database files
//! ([`crate::store::Store::delete_visitor`]).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use nexus_shared::{ErrorCode, HandoffReason, Message, Millis, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::http::auth::Agent;
use crate::http::error::{ApiJson, ApiPath, ApiQuery, AppError};
use crate::model::{Csat, VisitorProfile, VisitorRecords};
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
    /// Agents' notes, feedback, drafts and learned knowledge from their conversations.
    #[serde(flatten)]
    pub records: VisitorRecords,
    pub exported_at: Millis,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/visitors", get(find))
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

/// What a privacy request names the visitor by: exactly one of these.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lookup {
    email: Option<String>,
    /// The id the site gave the visitor in a verified identity (`X-Nexus-Identity-Id`, the
    /// widget's `identity.id`).
    user_id: Option<String>,
    /// A conversation of the visitor's, as the console shows it.
    conversation_id: Option<Uuid>,
}

/// `GET /api/v1/visitors?email=…`, `?user_id=…` or `?conversation_id=…` (owners): the site's
/// visitors the request is about, newest first (an email may belong to several visitors).
async fn find(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiQuery(lookup): ApiQuery<Lookup>,
) -> Result<ApiJson<Vec<VisitorProfile>>, AppError> {
    owner_only(&user)?;
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|v| v.trim().is_empty());
    let given = usize::from(!blank(&lookup.email))
        + usize::from(!blank(&lookup.user_id))
        + usize::from(lookup.conversation_id.is_some());
    if given != 1 {
        return Err(AppError::new(
            ErrorCode::Validation,
            "Give one of email, user_id or conversation_id.",
        ));
    }
    if let Some(id) = lookup.conversation_id {
        let Some(conversation) = state
            .store
            .conversation(id)
            .await?
            .filter(|c| c.site_id == user.site_id)
        else {
            return Ok(ApiJson(Vec::new()));
        };
        let profile = state
            .store
            .visitor_profile(user.site_id, conversation.visitor_id)
            .await?;
        return Ok(ApiJson(profile.into_iter().collect()));
    }
    let found = state
        .store
        .find_visitors(
            user.site_id,
            lookup.email.as_deref().filter(|e| !e.trim().is_empty()),
            lookup.user_id.as_deref().filter(|e| !e.trim().is_empty()),
        )
        .await?;
    Ok(ApiJson(found))
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
    let records = state.store.visitor_records(site_id, visitor_id).await?;
    Ok(Some(VisitorExport {
        visitor,
        conversations,
        records,
        exported_at: now_ms(),
    }))
}

/// `GET /api/v1/visitors/{visitor_id}/export` (owners)
async fn export(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiPath(visitor_id): ApiPath<Uuid>,
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
    ApiPath(visitor_id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    owner_only(&user)?;
    let kb_changed = state
        .store
        .delete_visitor(user.site_id, visitor_id)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => AppError::not_found("Visitor"),
            other => other.into(),
        })?;
    if kb_changed {
        // The visitor's questions left the knowledge base: the engine forgets them too.
        let entries = state.store.knowledge(user.site_id).await?;
        state.engine.load_site(user.site_id, entries);
    }
    tracing::info!(visitor = %visitor_id, "visitor data deleted on request");
    Ok(StatusCode::NO_CONTENT)
}
