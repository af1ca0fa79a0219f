//! Accounts of owners and agents: argon2id password hashes, expiring bearer sessions, and
//! login throttling.
//!
//! Sessions are bearer tokens (`Authorization: Bearer st_…` for the REST API, `session_token`
//! in the WebSocket `hello`). Nothing is carried in cookies, so cross-site requests cannot act
//! on an agent's behalf (no CSRF surface). Only a SHA-256 of each token is stored.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash as PhcHash};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use nexus_shared::{AgentRef, ErrorBody, ErrorCode, Millis, Role};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiJson, AppError};
use crate::store::{PasswordHash, Store, StoreError, User, now_ms};

/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// Failed logins allowed per account (and per address) within [`THROTTLE_WINDOW`].
pub const MAX_FAILURES: u32 = 5;
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

pub fn hash_password(password: &str) -> Result<PasswordHash, ErrorBody> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ErrorBody::new(
            ErrorCode::Validation,
            format!("Passwords need at least {MIN_PASSWORD_CHARS} characters."),
        ));
    }
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| PasswordHash(h.to_string()))
        .map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))
}

pub fn verify_password(password: &str, hash: &PasswordHash) -> bool {
    PhcHash::new(&hash.0)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_session_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("st_{}", hex::encode(bytes))
}

/// Counts failed logins per key (account, address) in a sliding window.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    fn is_locked(&self, key: &str) -> bool {
        let map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < THROTTLE_WINDOW)
    }

    fn fail(&self, key: &str) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (_, since)| since.elapsed() < THROTTLE_WINDOW);
        let entry = map.entry(key.to_owned()).or_insert((0, Instant::now()));
        entry.0 += 1;
    }

    fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// Creates an account (used by `nexus-flow user add` and the demo start).
pub async fn add_user(
    store: &dyn Store,
    site_id: Uuid,
    email: &str,
    name: &str,
    role: Role,
    password: &str,
) -> Result<User, ErrorBody> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(ErrorBody::new(
            ErrorCode::Validation,
            "That is not an email address.",
        ));
    }
    let hash = hash_password(password)?;
    let user = User {
        id: Uuid::new_v4(),
        site_id,
        email,
        name: name.trim().to_owned(),
        role,
    };
    match store.create_user(&user, &hash).await {
        Ok(()) => Ok(user),
        Err(StoreError::Database(sqlx::Error::Database(e))) if e.is_unique_violation() => {
            Err(ErrorBody::new(
                ErrorCode::Validation,
                "That email already has an account on this site.",
            ))
        }
        Err(e) => Err(crate::error::store_error_body(&e)),
    }
}

/// The user of a session token, if the session is valid.
pub async fn session_user(store: &dyn Store, token: &str) -> Result<Option<User>, ErrorBody> {
    store
        .session_user(&hash_token(token), now_ms())
        .await
        .map_err(|e| crate::error::store_error_body(&e))
}

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
    if state.throttle.is_locked(&account_key) || state.throttle.is_locked(&ip_key) {
        return Err(AppError::new(
            ErrorCode::LoginThrottled,
            "Too many failed logins. Wait 15 minutes and try again.",
        ));
    }
    let invalid = || AppError::new(ErrorCode::InvalidCredentials, "Wrong email or password.");
    let site = state.store.site_by_key(&request.site_key).await?;
    let found = match &site {
        Some(site) => state.store.user_by_email(site.id, &email).await?,
        None => None,
    };
    let password = request.password;
    let verified = match found {
        Some((user, hash)) => {
            tokio::task::spawn_blocking(move || verify_password(&password, &hash).then_some(user))
                .await
                .ok()
                .flatten()
        }
        None => {
            // Spend the same time as a real check, so timing does not reveal accounts.
            let _ = tokio::task::spawn_blocking(move || {
                verify_password(&password, &PasswordHash(DUMMY_HASH.into()))
            })
            .await;
            None
        }
    };
    let Some(user) = verified else {
        state.throttle.fail(&account_key);
        state.throttle.fail(&ip_key);
        return Err(invalid());
    };
    state.throttle.clear(&account_key);
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

/// An argon2id hash of a random password, verified against when the account does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3GXcBcXQ1YxMU3ihFpqt0Ot2QAOlnTqE1cMQa1pP8Rc";

fn ip_key(ip: IpAddr) -> String {
    format!("ip\u{0}{ip}")
}

/// `POST /api/v1/auth/logout`.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> StatusCode {
    if let Some(token) = bearer(&headers) {
        let _ = state.store.delete_session(&hash_token(token)).await;
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
        session_user(state.store.as_ref(), token)
            .await?
            .map(Agent)
            .ok_or_else(unauthorized)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_short_ones_are_refused() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert_eq!(
            hash_password("short").unwrap_err().code,
            ErrorCode::Validation
        );
        assert_eq!(format!("{hash:?}"), "PasswordHash(***)");
        // The dummy hash parses, so unknown accounts cost a real verification.
        assert!(PhcHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn throttle_locks_after_repeated_failures() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES {
            assert!(!throttle.is_locked("a"));
            throttle.fail("a");
        }
        assert!(throttle.is_locked("a"));
        assert!(!throttle.is_locked("b"));
        throttle.clear("a");
        assert!(!throttle.is_locked("a"));
    }
}
