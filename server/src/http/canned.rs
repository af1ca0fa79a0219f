//! Canned responses over REST: `/api/v1/canned`. Reply templates of a site that agents insert
//! (and edit) in the console. Agents read them; owners create, change and delete them.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use nexus_shared::{ErrorCode, Role, validate_body};
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::http::auth::Agent;
use crate::http::error::{ApiJson, ApiPath, AppError};
use crate::model::User;
use crate::model::{Canned, MAX_CANNED};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/canned", get(list).post(create))
        .route("/canned/{id}", put(replace).delete(remove))
}

/// What an owner sends to create or replace a canned response.
#[derive(Debug, Deserialize)]
struct CannedInput {
    title: String,
    body: String,
}

fn owner_only(user: &User) -> Result<(), AppError> {
    if user.role == Role::Owner {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorCode::Forbidden,
            "Only the site's owners can change canned responses.",
        ))
    }
}

fn validated(id: Uuid, input: CannedInput) -> Result<Canned, AppError> {
    let title = input.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(AppError::new(
            ErrorCode::Validation,
            "The title must have 1 to 200 characters.",
        ));
    }
    let body = validate_body(&input.body)?.to_owned();
    Ok(Canned {
        id,
        title: title.to_owned(),
        body,
    })
}

/// `GET /api/v1/canned`: the site's canned responses, by title.
async fn list(
    State(state): State<AppState>,
    Agent(user): Agent,
) -> Result<ApiJson<Vec<Canned>>, AppError> {
    Ok(ApiJson(state.store.canned_responses(user.site_id).await?))
}

/// `POST /api/v1/canned` (owners)
async fn create(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiJson(input): ApiJson<CannedInput>,
) -> Result<(StatusCode, ApiJson<Canned>), AppError> {
    owner_only(&user)?;
    let canned = validated(Uuid::new_v4(), input)?;
    if state.store.canned_responses(user.site_id).await?.len() >= MAX_CANNED {
        return Err(AppError::new(
            ErrorCode::Validation,
            format!("A site may have at most {MAX_CANNED} canned responses."),
        ));
    }
    state.store.upsert_canned(user.site_id, &canned).await?;
    Ok((StatusCode::CREATED, ApiJson(canned)))
}

/// `PUT /api/v1/canned/{id}` (owners)
async fn replace(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<CannedInput>,
) -> Result<ApiJson<Canned>, AppError> {
    owner_only(&user)?;
    let canned = validated(id, input)?;
    if !state
        .store
        .canned_responses(user.site_id)
        .await?
        .iter()
        .any(|c| c.id == id)
    {
        return Err(AppError::not_found("Canned response"));
    }
    state.store.upsert_canned(user.site_id, &canned).await?;
    Ok(ApiJson(canned))
}

/// `DELETE /api/v1/canned/{id}` (owners)
async fn remove(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    owner_only(&user)?;
    state.store.delete_canned(user.site_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
