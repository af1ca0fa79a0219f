//! Accounts of owners and agents: argon2id password hashes, expiring bearer sessions, and
//! login throttling.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash as PhcHash};
use nexus_shared::{ErrorBody, ErrorCode, Role};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::{PasswordHash, User, now_ms};
use crate::store::{Store, StoreError};

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

pub(crate) fn new_session_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("st_{}", hex::encode(bytes))
}

/// Counts failed logins per key (account, address) in a sliding window.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    pub fn is_locked(&self, key: &str) -> bool {
        let map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < THROTTLE_WINDOW)
    }

    pub fn fail(&self, key: &str) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (_, since)| since.elapsed() < THROTTLE_WINDOW);
        let entry = map.entry(key.to_owned()).or_insert((0, Instant::now()));
        entry.0 += 1;
    }

    pub fn clear(&self, key: &str) {
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
        Err(e) => Err(crate::store::store_error_body(&e)),
    }
}

/// The user of a session token, if the session is valid.
pub async fn session_user(store: &dyn Store, token: &str) -> Result<Option<User>, ErrorBody> {
    store
        .session_user(&hash_token(token), now_ms())
        .await
        .map_err(|e| crate::store::store_error_body(&e))
}

/// An argon2id hash of a random password, verified against when the account does not exist.
pub(crate) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3GXcBcXQ1YxMU3ihFpqt0Ot2QAOlnTqE1cMQa1pP8Rc";

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
