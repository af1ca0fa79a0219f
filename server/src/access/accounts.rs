//! Accounts of owners and agents: argon2id password hashes, expiring bearer sessions, and
//! login throttling.

use std::sync::Mutex;
use std::time::Duration;

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

/// Password checks (argon2id, 19 MiB each) running at once, at most, by default.
pub const MAX_CONCURRENT_CHECKS: usize = 4;
/// How long a login waits for a free check slot before it is told the server is busy.
pub const CHECK_WAIT: Duration = Duration::from_secs(5);

/// Counts logins per key (account, address) in the database, and caps the password checks
/// running at once on this instance.
///
/// An attempt is counted *before* its password is checked ([`LoginThrottle::begin`]), as a
/// failure until it is known to be right: a key is locked once it has counted
/// [`MAX_FAILURES`] attempts in the window, so attempts sent all at once are throttled like
/// attempts sent one after the other. The counts live in the store
/// ([`Store::count_login_attempt`]), so every instance on one database counts the same
/// attempts; the cap on concurrent checks is a cap on this process's memory and stays local.
pub struct LoginThrottle {
    checks: std::sync::Arc<tokio::sync::Semaphore>,
    check_wait: Mutex<Duration>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(MAX_CONCURRENT_CHECKS, CHECK_WAIT)
    }
}

impl LoginThrottle {
    /// At most `checks` password checks at once; a login waits `check_wait` for a slot.
    pub fn new(checks: usize, check_wait: Duration) -> Self {
        Self {
            checks: std::sync::Arc::new(tokio::sync::Semaphore::new(checks.max(1))),
            check_wait: Mutex::new(check_wait),
        }
    }

    /// Counts an attempt on every key (the account first, then the address), or `None` when
    /// one of them is locked. The attempt stays counted as a failure unless
    /// [`Attempt::succeeded`] or [`Attempt::not_checked`] takes it back.
    pub async fn begin(
        &self,
        store: std::sync::Arc<dyn Store>,
        keys: [String; 2],
    ) -> Result<Option<Attempt>, StoreError> {
        let now = now_ms();
        let window = THROTTLE_WINDOW.as_millis() as i64;
        // Kept as hashes: the table holds no email or address (and no NUL, which PostgreSQL's
        // text refuses).
        let keys = keys.map(|k| hash_token(&k));
        let mut locked = false;
        for key in &keys {
            let counted = store.count_login_attempt(key, now, window).await?;
            locked |= counted > MAX_FAILURES;
        }
        Ok((!locked).then_some(Attempt { store, keys }))
    }

    /// A slot for one password check: waits at most the configured time, `None` when the
    /// server is busy checking others. Hold it until the check has finished (move it into the
    /// blocking task, so a cancelled request does not free it early).
    pub async fn check_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let wait = *self
            .check_wait
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokio::time::timeout(wait, self.checks.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// How long a login waits for a check slot (tests shorten it).
    pub fn set_check_wait(&self, wait: Duration) {
        *self
            .check_wait
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = wait;
    }
}

/// One login attempt, counted on its keys (the account first, then the address) as a failure.
/// Dropped, it stays one: a login abandoned half-way is not free.
pub struct Attempt {
    store: std::sync::Arc<dyn Store>,
    keys: [String; 2],
}

impl Attempt {
    /// The password was right: the account's attempts are cleared, and the address's count
    /// gives this one back.
    pub async fn succeeded(self) -> Result<(), StoreError> {
        let [account, address] = &self.keys;
        self.store.forget_login_attempt(account, true).await?;
        self.store.forget_login_attempt(address, false).await
    }

    /// No password was checked (the server was busy): the attempt is taken back.
    pub async fn not_checked(self) -> Result<(), StoreError> {
        for key in &self.keys {
            self.store.forget_login_attempt(key, false).await?;
        }
        Ok(())
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
}
