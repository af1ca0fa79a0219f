//! The REST API under `/api/v1`.

pub mod analytics;
pub mod assets;
pub mod auth;
pub mod canned;
pub mod cors;
pub mod error;
pub mod gaps;
pub mod kb;
pub mod kb_import;
pub mod learn;
pub mod metrics;
pub mod openapi;
pub mod playground;
pub mod privacy;
pub mod sites;
pub mod sources;
pub mod summary;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use nexus_shared::{ErrorCode, Health, Message, PROTOCOL_VERSION, Role, limits};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::http::error::{ApiJson, ApiPath, ApiQuery, AppError};
use crate::model::SiteSettings;
use crate::model::webhook::{keep_secrets, validate};
use auth::Agent;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(kb::routes())
        .merge(canned::routes())
        .merge(privacy::routes())
        .merge(kb_import::routes())
        .merge(sources::routes())
        .merge(analytics::routes())
        .merge(playground::routes())
        .merge(gaps::routes())
        .merge(summary::routes())
        .merge(sites::routes())
        .merge(openapi::routes())
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/conversations/{id}/messages", get(messages))
        .route("/auth/login", axum::routing::post(auth::login))
        .route("/auth/logout", axum::routing::post(auth::logout))
        .route("/me", get(auth::me))
        .route("/site", get(site).patch(update_site_settings))
        // Last, so that it wraps every route above: agent mode on a site's pages.
        .layer(axum::middleware::from_fn(cors::agent_cors))
}

/// `GET /api/v1/health`: the process is up; says which engine and database serve.
async fn health(State(state): State<AppState>) -> ApiJson<Health> {
    ApiJson(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol_version: PROTOCOL_VERSION,
        engine: state.engine.name().into(),
        engine_reason: state.engine.fallback_reason(),
        database: state.store.backend().into(),
    })
}

/// `GET /api/v1/ready`: the database answers; 503 `unavailable` otherwise (for load
/// balancers).
async fn ready(State(state): State<AppState>) -> Result<ApiJson<serde_json::Value>, AppError> {
    match state.store.ping().await {
        Ok(()) => Ok(ApiJson(serde_json::json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(AppError::new(
                ErrorCode::Unavailable,
                "The database is not reachable.",
            ))
        }
    }
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
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(page): ApiQuery<Page>,
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
    // The token first: without a valid one, a missing and an existing conversation get the
    // same 401, so ids are not confirmed to strangers.
    let token = auth::bearer(&headers).ok_or_else(unauthorized)?;
    let visitor = state
        .store
        .visitor_by_any_token(token)
        .await?
        .ok_or_else(unauthorized)?;
    let conversation = state
        .store
        .conversation(id)
        .await?
        // Same answer as a missing conversation: ids of others' conversations are not confirmed.
        .filter(|c| c.visitor_id == visitor.id && c.site_id == visitor.site_id)
        .ok_or_else(|| AppError::not_found("Conversation"))?;
    visitor_checks(&state, &headers, &conversation, &visitor).await?;
    let mut messages = state
        .store
        .messages_after(id, page.after, limit + 1)
        .await?;
    let has_more = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    Ok(ApiJson(MessagePage { messages, has_more }))
}

/// The checks the WebSocket's `hello` makes, for a visitor's REST call: the page's `Origin`
/// must be one of the site's allowed origins, and when the site verifies identities the call
/// carries the claim (`X-Nexus-Identity-Id`, `X-Nexus-Identity-Hash`: hex HMAC-SHA256 of the
/// id) and it must hold for this visitor. An unverified claim is refused, not ignored.
async fn visitor_checks(
    state: &AppState,
    headers: &HeaderMap,
    conversation: &crate::model::Conversation,
    visitor: &crate::model::Visitor,
) -> Result<(), AppError> {
    let site = state
        .store
        .site(conversation.site_id)
        .await?
        .ok_or_else(|| AppError::not_found("Site"))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !crate::access::identity::origin_allowed(&site.settings.allowed_origins, header("origin")) {
        return Err(AppError::new(
            ErrorCode::OriginNotAllowed,
            "This site does not allow the chat on this page.",
        ));
    }
    let claim = header("x-nexus-identity-id").map(|id| nexus_shared::Identity {
        id: id.to_owned(),
        name: None,
        email: None,
        hash: header("x-nexus-identity-hash").map(str::to_owned),
    });
    if let Some(identity) = crate::access::identity::verify_identity(&site.settings, claim)?
        && !state
            .store
            .set_visitor_identity(visitor.id, &identity.id, None, None)
            .await?
    {
        return Err(AppError::new(
            ErrorCode::IdentityInvalid,
            "This conversation belongs to another identity.",
        ));
    }
    Ok(())
}

/// `GET /api/v1/site`: the agent's site and its settings.
async fn site(
    State(state): State<AppState>,
    Agent(user): Agent,
) -> Result<ApiJson<serde_json::Value>, AppError> {
    let site = state
        .store
        .site(user.site_id)
        .await?
        .ok_or_else(|| AppError::not_found("Site"))?;
    Ok(ApiJson(serde_json::json!({
        "id": site.id,
        "key": site.key,
        "name": site.name,
        "settings": site.settings.redacted(),
    })))
}

/// `PATCH /api/v1/site`: owners change settings; the body holds only what changes, e.g.
/// `{"autonomy": "review"}`.
async fn update_site_settings(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiJson(patch): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<ApiJson<SiteSettings>, AppError> {
    if user.role != Role::Owner {
        return Err(AppError::new(
            ErrorCode::Forbidden,
            "Only the site's owners can change its settings.",
        ));
    }
    let site = state
        .store
        .site(user.site_id)
        .await?
        .ok_or_else(|| AppError::not_found("Site"))?;
    let mut merged = match serde_json::to_value(&site.settings) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    for (key, value) in patch {
        // `GET /site` shows the secret as `***`; sending that back keeps the secret.
        if key == "identity_secret" && value.as_str() == Some("***") {
            continue;
        }
        if !merged.contains_key(&key) {
            return Err(AppError::new(
                ErrorCode::Validation,
                format!("Unknown setting {key:?}."),
            ));
        }
        merged.insert(key, value);
    }
    let settings: SiteSettings = serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| AppError::new(ErrorCode::Validation, format!("Invalid settings: {e}")))?;
    let settings = checked_settings(settings, &site.settings, &state.egress)?;
    state.store.update_site_settings(site.id, &settings).await?;
    Ok(ApiJson(settings.redacted()))
}

/// Checks the business-hours and webhook settings of a settings change, keeping the stored
/// webhook secrets where `***` was sent back. A webhook URL whose host is an internal address
/// literal is refused here; a host name is checked by `egress` on every delivery.
pub fn checked_settings(
    mut new: SiteSettings,
    old: &SiteSettings,
    egress: &crate::egress::Egress,
) -> Result<SiteSettings, AppError> {
    let invalid = |m: String| AppError::new(nexus_shared::ErrorCode::Validation, m);
    keep_secrets(&mut new.webhooks, &old.webhooks).map_err(invalid)?;
    validate(&new.webhooks).map_err(invalid)?;
    for hook in &new.webhooks {
        egress.check_url(hook.url.trim()).map_err(|refused| {
            invalid(format!(
                "Webhook URL {:?} is refused: {refused}. Webhooks may only reach public addresses.",
                hook.url.trim()
            ))
        })?;
    }
    if !is_css_color(&new.color) {
        return Err(invalid(format!(
            "The color {:?} must be a hex color such as #4f46e5 or #fff.",
            new.color
        )));
    }
    if let Some(hours) = &new.business_hours {
        hours.validate().map_err(invalid)?;
    }
    if new.offline_message.chars().count() > 1000 {
        return Err(invalid(
            "The offline message may have at most 1000 characters.".into(),
        ));
    }
    Ok(new)
}

/// `#rgb` or `#rrggbb`: the only colors the widget's style takes.
fn is_css_color(color: &str) -> bool {
    color
        .strip_prefix('#')
        .is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}
