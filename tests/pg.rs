//! PostgreSQL for tests: every test works in a fresh schema of the database at
//! `NEXUS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`, as on this
//! machine and CI), dropped when the test ends, so parallel tests and reruns never collide.
//!
//! PostgreSQL being unreachable FAILS the test with a clear message. Only an explicit
//! `NEXUS_SKIP_PG=1` (for a laptop without PostgreSQL; CI never sets it) skips, loudly.

use std::time::Duration;

/// The database the tests use unless `NEXUS_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn base_url() -> String {
    std::env::var("NEXUS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// True (with a message on stderr) when the PostgreSQL tests are to be skipped.
pub fn skipped() -> bool {
    let skip = std::env::var("NEXUS_SKIP_PG").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("NEXUS_SKIP_PG=1: skipping a PostgreSQL test (CI must not set this)");
    }
    skip
}

/// `url` with `search_path` set to `schema` (through the libpq `options` parameter, which
/// sqlx honours for every connection of a pool).
pub fn url_with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// A fresh schema, dropped (with everything in it) on drop.
pub struct TestSchema {
    pub name: String,
    /// The database URL with this schema as its search path.
    pub url: String,
    base: String,
}

impl TestSchema {
    /// Creates the schema; `None` only when `NEXUS_SKIP_PG=1`. Panics with a clear message
    /// when PostgreSQL cannot be reached.
    pub async fn create() -> Option<Self> {
        if skipped() {
            return None;
        }
        let base = base_url();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = connect(&base).await;
        sqlx::query(&format!("CREATE SCHEMA \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("create a test schema");
        let url = url_with_schema(&base, &name);
        Some(Self { name, url, base })
    }
}

/// One connection to `url`, or a panic that says what is wrong.
pub async fn connect(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let redacted = nexus_server::store::redact_url(url);
    match tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "PostgreSQL is required for this test and is not reachable at {redacted}: {e}. \
             Start it (CI and the dev machine run it at 127.0.0.1:5432, trust auth, database \
             `test`), point NEXUS_TEST_POSTGRES_URL at another one, or set NEXUS_SKIP_PG=1 to \
             skip the PostgreSQL tests locally (never on CI)."
        ),
        Err(_) => panic!("PostgreSQL at {redacted} did not answer within 10 s"),
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime: clean up on a thread of our own.
        let base = self.base.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
