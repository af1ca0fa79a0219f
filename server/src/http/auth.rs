//! Login, logout and `/me` over REST, and the [`Agent`] extractor that resolves a bearer
//! session to its account (the accounts themselves are [`crate::access::accounts`]).
//!
//! Sessions are bearer tokens (`Authorization: Bearer st_…` for the REST API, `session_token`
//! in the WebSocket `hello`). Nothing is carried in cookies, so cross-site requests cannot act
//! on an agent's behalf (no CSRF surface). Only a SHA-256 of each token is stored.
//!
//! Agent mode in a site's widget calls these routes from the site's pages: a request whose
//! `Origin` is not the server's own is refused (`origin_not_allowed`) unless the origin is on
//! the site's allowed origins, at login and on every call of the [`Agent`] extractor; the
//! CORS headers that let such a page read the answers are [`super::cors`]'s.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use nexus_shared::{AgentRef, ErrorCode, Millis, Role};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::access::accounts::{
    DUMMY_HASH, SESSION_TTL, hash_token, new_session_token, session_user, verify_password,
};
use crate::access::identity;
use crate::http::error::{ApiJson, AppError};
use crate::model::remote::SessionEnd;
use crate::model::{PasswordHash, User, now_ms};

#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    pub site_key: String,
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    pub expires_at: Millis,
    pub agent: AgentRef,
    pub role: Role,
    pub site_key: String,
}

/// `POST /api/v1/auth/login`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<(StatusCode, ApiJson<LoginResponse>), AppError> {
    let email = request.email.trim().to_lowercase();
    let account_key = format!("{}\u{0}{email}", request.site_key);
    let ip_key = ip_key(state.connections.client_ip(peer.ip(), &headers));
    // The attempt is counted before the password is checked, so attempts sent at once are
    // throttled like attempts sent one after the other.
    let Some(attempt) = state
        .throttle
        .begin(state.store.clone(), [account_key, ip_key])
        .await?
    else {
        return Err(AppError::new(
            ErrorCode::LoginThrottled,
            "Too many failed logins. Wait 15 minutes and try again.",
        ));
    };
    let invalid = || AppError::new(ErrorCode::InvalidCredentials, "Wrong email or password.");
    let site = state.store.site_by_key(&request.site_key).await?;
    if let Some(site) = &site {
        page_may_use_agents(&headers, &site.settings.allowed_origins)?;
    }
    let found = match &site {
        Some(site) => state.store.user_by_email(site.id, &email).await?,
        None => None,
    };
    // Each check holds 19 MiB: only a few run at once, the rest wait briefly or are told so.
    let Some(slot) = state.throttle.check_slot().await else {
        attempt.not_checked().await?;
        return Err(AppError::new(
            ErrorCode::Unavailable,
            "The server is busy checking other logins. Try again in a moment.",
        ));
    };
    let password = request.password;
    let verified = match found {
        Some((user, hash)) => tokio::task::spawn_blocking(move || {
            let verified = verify_password(&password, &hash).then_some(user);
            drop(slot);
            verified
        })
        .await
        .ok()
        .flatten(),
        None => {
            // Spend the same time as a real check, so timing does not reveal accounts.
            let _ = tokio::task::spawn_blocking(move || {
                verify_password(&password, &PasswordHash(DUMMY_HASH.into()));
                drop(slot);
            })
            .await;
            None
        }
    };
    let Some(user) = verified else {
        drop(attempt); // counted as a failure
        return Err(invalid());
    };
    attempt.succeeded().await?;
    let token = new_session_token();
    let expires_at = now_ms() + i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
    state
        .store
        .create_session(user.id, &hash_token(&token), expires_at)
        .await?;
    Ok((
        StatusCode::OK,
        ApiJson(LoginResponse {
            token,
            expires_at,
            agent: user.agent_ref(),
            role: user.role,
            site_key: request.site_key,
        }),
    ))
}

fn ip_key(ip: IpAddr) -> String {
    format!("ip\u{0}{ip}")
}

/// `POST /api/v1/auth/logout`: ends the session, and closes its open agent WebSockets on
/// this instance at once (the store tells the other instances).
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> StatusCode {
    if let Some(token) = bearer(&headers) {
        let hash = hash_token(token);
        let _ = state.store.delete_session(&hash).await;
        state.hub.end_sessions(SessionEnd::Token(hash));
    }
    StatusCode::NO_CONTENT
}

/// `Authorization: Bearer …`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// An extractor for routes that need a logged-in agent or owner.
#[derive(Debug, Clone)]
pub struct Agent(pub User);

impl FromRequestParts<AppState> for Agent {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let unauthorized = || AppError::new(ErrorCode::Unauthorized, "Please log in.");
        let token = bearer(&parts.headers).ok_or_else(unauthorized)?;
        let user = session_user(state.store.as_ref(), token)
            .await?
            .ok_or_else(unauthorized)?;
        if !own_origin(&parts.headers) {
            let site = state.store.site(user.site_id).await?;
            let allowed = site
                .as_ref()
                .map_or(&[][..], |s| &s.settings.allowed_origins);
            page_may_use_agents(&parts.headers, allowed)?;
        }
        Ok(Agent(user))
    }
}

fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Is the request from the server's own page (or from no page at all)?
fn own_origin(headers: &HeaderMap) -> bool {
    use axum::http::header::{HOST, ORIGIN};
    identity::own_origin(header(headers, ORIGIN), header(headers, HOST))
}

/// Agent mode on a site's page: a page other than the server's own must be one of the
/// site's allowed origins ([`identity::agent_origin_allowed`]).
fn page_may_use_agents(headers: &HeaderMap, allowed: &[String]) -> Result<(), AppError> {
    use axum::http::header::{HOST, ORIGIN};
    if identity::agent_origin_allowed(allowed, header(headers, ORIGIN), header(headers, HOST)) {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorCode::OriginNotAllowed,
            identity::AGENT_ORIGIN_REFUSED,
        ))
    }
}

/// `GET /api/v1/me`.
pub async fn me(Agent(user): Agent) -> ApiJson<serde_json::Value> {
    ApiJson(serde_json::json!({
        "agent": user.agent_ref(),
        "role": user.role,
        "email": user.email,
        "site_id": user.site_id,
    }))
}
