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

/// Password checks (argon2id, 19 MiB each) running at once, at most, by default.
pub const MAX_CONCURRENT_CHECKS: usize = 4;
/// How long a login waits for a free check slot before it is told the server is busy.
pub const CHECK_WAIT: Duration = Duration::from_secs(5);

/// Counts logins per key (account, address) in a sliding window, and caps the password checks
/// running at once.
///
/// An attempt is counted *before* its password is checked ([`LoginThrottle::begin`]): a key
/// is locked when its failures plus the attempts still being checked reach [`MAX_FAILURES`],
/// so attempts sent all at once are throttled like attempts sent one after the other.
pub struct LoginThrottle {
    counts: Mutex<HashMap<String, Count>>,
    checks: std::sync::Arc<tokio::sync::Semaphore>,
    check_wait: Mutex<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    in_flight: u32,
    since: Instant,
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
            counts: Mutex::default(),
            checks: std::sync::Arc::new(tokio::sync::Semaphore::new(checks.max(1))),
            check_wait: Mutex::new(check_wait),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Count>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn is_locked(&self, key: &str) -> bool {
        self.counts()
            .get(key)
            .is_some_and(|c| Self::live(c).failures + c.in_flight >= MAX_FAILURES)
    }

    /// `c` with failures older than the window forgotten.
    fn live(c: &Count) -> Count {
        if c.since.elapsed() < THROTTLE_WINDOW {
            *c
        } else {
            Count { failures: 0, ..*c }
        }
    }

    /// Reserves an attempt on every key, or `None` when one of them is locked. The attempt
    /// counts as a failure unless [`Attempt::succeeded`] or [`Attempt::not_checked`] is called.
    pub fn begin(self: &std::sync::Arc<Self>, keys: [String; 2]) -> Option<Attempt> {
        let mut map = self.counts();
        map.retain(|_, c| c.in_flight > 0 || c.since.elapsed() < THROTTLE_WINDOW);
        let locked = keys.iter().any(|k| {
            map.get(k)
                .is_some_and(|c| Self::live(c).failures + c.in_flight >= MAX_FAILURES)
        });
        if locked {
            return None;
        }
        for key in &keys {
            let c = map.entry(key.clone()).or_insert(Count {
                failures: 0,
                in_flight: 0,
                since: Instant::now(),
            });
            *c = Self::live(c);
            if c.failures == 0 && c.in_flight == 0 {
                c.since = Instant::now();
            }
            c.in_flight += 1;
        }
        drop(map);
        Some(Attempt {
            throttle: self.clone(),
            keys,
            outcome: Outcome::Failed,
        })
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

    fn finish(&self, keys: &[String; 2], outcome: Outcome) {
        let mut map = self.counts();
        for (i, key) in keys.iter().enumerate() {
            let Some(c) = map.get_mut(key) else { continue };
            *c = Self::live(c);
            c.in_flight = c.in_flight.saturating_sub(1);
            match outcome {
                Outcome::Failed => c.failures += 1,
                // A success clears the account's finished failures (not the address's).
                Outcome::Succeeded if i == 0 => c.failures = 0,
                Outcome::Succeeded | Outcome::NotChecked => {}
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Failed,
    Succeeded,
    NotChecked,
}

/// One login attempt reserved on its keys (the account first, then the address). Dropped, it
/// counts as a failure: a login abandoned half-way is not free.
pub struct Attempt {
    throttle: std::sync::Arc<LoginThrottle>,
    keys: [String; 2],
    outcome: Outcome,
}

impl Attempt {
    /// The password was right: the account's failures are cleared.
    pub fn succeeded(mut self) {
        self.outcome = Outcome::Succeeded;
    }

    /// No password was checked (the server was busy): nothing is counted.
    pub fn not_checked(mut self) {
        self.outcome = Outcome::NotChecked;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.throttle.finish(&self.keys, self.outcome);
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

    fn keys(account: &str) -> [String; 2] {
        [account.to_owned(), "ip".to_owned()]
    }

    #[tokio::test]
    async fn throttle_locks_after_repeated_failures() {
        let throttle = std::sync::Arc::new(LoginThrottle::default());
        for _ in 0..MAX_FAILURES {
            assert!(!throttle.is_locked("a"));
            drop(throttle.begin(keys("a")).expect("not locked yet"));
        }
        assert!(throttle.is_locked("a"));
        assert!(throttle.begin(keys("a")).is_none());
        // The address is locked too, for every account.
        assert!(throttle.begin(keys("b")).is_none());
    }

    #[tokio::test]
    async fn attempts_in_flight_count_before_their_check() {
        let throttle = std::sync::Arc::new(LoginThrottle::default());
        let held: Vec<Attempt> = (0..MAX_FAILURES)
            .map(|_| throttle.begin(keys("a")).expect("a slot"))
            .collect();
        assert!(
            throttle.begin(keys("a")).is_none(),
            "attempts still being checked count"
        );
        // Those that turn out right give their slot back and clear the account's failures.
        for attempt in held {
            attempt.succeeded();
        }
        assert!(!throttle.is_locked("a"));
        throttle.begin(keys("a")).unwrap().not_checked();
        assert!(!throttle.is_locked("a") && !throttle.is_locked("ip"));
    }
}
