//! `POST /api/v1/sites` (owners): a new, empty site that the caller owns (see
//! [`crate::access::sites`] for who may and why). Answers 201 with `{id, key, name}`; the caller
//! signs in to it with the same email and password.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;

use crate::AppState;
use crate::access::sites::create_owned_site;
use crate::http::auth::Agent;
use crate::http::error::{ApiJson, AppError};

pub fn routes() -> Router<AppState> {
    Router::new().route("/sites", post(create))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSite {
    key: String,
    name: String,
}

async fn create(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiJson(new): ApiJson<NewSite>,
) -> Result<(StatusCode, ApiJson<serde_json::Value>), AppError> {
    let site = create_owned_site(state.store.as_ref(), &user, &new.key, &new.name).await?;
    state.engine.load_site(site.id, Vec::new());
    Ok((
        StatusCode::CREATED,
        ApiJson(serde_json::json!({"id": site.id, "key": site.key, "name": site.name})),
    ))
}
