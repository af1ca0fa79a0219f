//! Knowledge sources over REST: `/api/v1/sources`. Agents read them; owners add, refresh and
//! delete them. Every change reloads the engine's copy of the site's knowledge (Q&A entries
//! and passages), so the AI answers from it at once. See [`crate::sources`].

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use nexus_shared::{ErrorCode, Role, SourceKind};
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::http::auth::Agent;
use crate::http::error::{ApiJson, AppError};
use crate::model::{KnowledgeSource, Passage, User};
use crate::sources::{self, ImportError, Imported, Request};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sources", get(list).post(add))
        .route("/sources/{id}", axum::routing::delete(remove))
        .route("/sources/{id}/refresh", post(refresh))
        .route("/sources/{id}/passages", get(passages))
        // An article of up to 1 MB, escaped as JSON.
        .layer(DefaultBodyLimit::max(4 * 1024 * 1024))
}

/// What an owner sends to add a source (see [`Request`]).
#[derive(Debug, Deserialize)]
struct AddInput {
    kind: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

fn owner_only(user: &User) -> Result<(), AppError> {
    if user.role == Role::Owner {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorCode::Forbidden,
            "Only the site's owners can change the knowledge sources.",
        ))
    }
}

impl From<ImportError> for AppError {
    fn from(err: ImportError) -> Self {
        match err {
            ImportError::Invalid(message) => AppError::new(ErrorCode::Validation, message),
            ImportError::Store(e) => e.into(),
        }
    }
}

async fn reload(state: &AppState, site_id: Uuid) -> Result<(), AppError> {
    let entries = state.store.knowledge(site_id).await?;
    state.engine.load_site(site_id, entries);
    Ok(())
}

fn id_of(id: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| AppError::not_found("Source"))
}

/// `GET /api/v1/sources`
async fn list(
    State(state): State<AppState>,
    Agent(user): Agent,
) -> Result<ApiJson<Vec<KnowledgeSource>>, AppError> {
    Ok(ApiJson(state.store.sources(user.site_id).await?))
}

/// `POST /api/v1/sources` (owners): 201 for a new source, 200 when the same URL (or file
/// name, or pasted title) was imported before and is updated in place.
async fn add(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiJson(input): ApiJson<AddInput>,
) -> Result<(StatusCode, ApiJson<Imported>), AppError> {
    owner_only(&user)?;
    let kind = match SourceKind::parse(&input.kind) {
        Some(SourceKind::Page) | None => {
            return Err(AppError::new(
                ErrorCode::Validation,
                format!(
                    "Unknown kind {:?}: use url, sitemap, file or paste.",
                    input.kind
                ),
            ));
        }
        Some(kind) => kind,
    };
    let request = Request {
        kind,
        url: input.url,
        title: input.title,
        content: input.content,
        format: input.format,
    };
    let imported =
        sources::import(state.store.as_ref(), &state.egress, user.site_id, request).await?;
    reload(&state, user.site_id).await?;
    let status = if imported.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, ApiJson(imported)))
}

/// `POST /api/v1/sources/{id}/refresh` (owners): fetches a URL or a sitemap again.
async fn refresh(
    State(state): State<AppState>,
    Agent(user): Agent,
    Path(id): Path<String>,
) -> Result<ApiJson<Imported>, AppError> {
    owner_only(&user)?;
    let id = id_of(&id)?;
    let own_page = (user.site_id
        == state
            .store
            .site_by_key(crate::demo::DEMO_SITE_KEY)
            .await?
            .map_or(Uuid::nil(), |s| s.id))
    .then_some(crate::demo::DEMO_PAGE);
    let imported = sources::refresh(
        state.store.as_ref(),
        &state.egress,
        user.site_id,
        id,
        own_page,
    )
    .await
    .map_err(|e| match e {
        ImportError::Store(crate::store::StoreError::NotFound) => AppError::not_found("Source"),
        other => other.into(),
    })?;
    reload(&state, user.site_id).await?;
    Ok(ApiJson(imported))
}

/// `DELETE /api/v1/sources/{id}` (owners)
async fn remove(
    State(state): State<AppState>,
    Agent(user): Agent,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    owner_only(&user)?;
    let id = id_of(&id)?;
    state
        .store
        .delete_source(user.site_id, id)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => AppError::not_found("Source"),
            other => other.into(),
        })?;
    reload(&state, user.site_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/sources/{id}/passages`
async fn passages(
    State(state): State<AppState>,
    Agent(user): Agent,
    Path(id): Path<String>,
) -> Result<ApiJson<Vec<Passage>>, AppError> {
    let id = id_of(&id)?;
    if state.store.source(user.site_id, id).await?.is_none() {
        return Err(AppError::not_found("Source"));
    }
    Ok(ApiJson(
        state.store.source_passages(user.site_id, id).await?,
    ))
}
