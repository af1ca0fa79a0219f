//! PostgreSQL for tests: every test works in a fresh schema of the database at
//! `NEXUS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`, as on this
//! machine and CI), dropped when the test ends, so parallel tests and reruns never collide.
//!
//! PostgreSQL being unreachable FAILS the test with a clear message; no test skips itself and
//! reports `ok`. To leave the PostgreSQL tests out on a machine without it, filter them by
//! name, so the count of filtered-out tests shows it: [`SKIP_HINT`].
//!
//! A test that restarts PostgreSQL runs a [`Cluster`] of its own instead.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// The database the tests use unless `NEXUS_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn base_url() -> String {
    std::env::var("NEXUS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// How to leave the PostgreSQL tests out visibly: their names hold `postgres`, or they live in
/// `multi_instance` and `pg_restart`.
pub const SKIP_HINT: &str = "cargo test -- --skip postgres --skip multi_instance --skip pg_restart";

/// Fails a PostgreSQL test at once when `NEXUS_SKIP_PG` is set: it once made these tests
/// return early and pass, and is not honoured any more.
pub fn refuse_skip_variable() {
    if std::env::var_os("NEXUS_SKIP_PG").is_some() {
        panic!(
            "NEXUS_SKIP_PG no longer skips PostgreSQL tests (a skipped test must not pass): \
             unset it, and leave them out by name instead: `{SKIP_HINT}`"
        );
    }
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
    /// Creates the schema. Panics with a clear message when PostgreSQL cannot be reached.
    pub async fn create() -> Self {
        Self::create_in(&base_url()).await
    }

    /// Creates the schema in the database at `base` (a [`Cluster`] of the test's own, say).
    pub async fn create_in(base: &str) -> Self {
        refuse_skip_variable();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = connect(base).await;
        sqlx::query(&format!("CREATE SCHEMA \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("create a test schema");
        let url = url_with_schema(base, &name);
        Self {
            name,
            url,
            base: base.to_owned(),
        }
    }
}

/// One connection to `url`, or a panic that says what is wrong.
pub async fn connect(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    // Where, without the credentials.
    let redacted = url.rsplit_once('@').map_or(url, |(_, host)| host);
    match tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "PostgreSQL is required for this test and is not reachable at {redacted}: {e}. \
             Start it (CI and the dev machine run it at 127.0.0.1:5432, trust auth, database \
             `test`), point NEXUS_TEST_POSTGRES_URL at another one, or leave the PostgreSQL \
             tests out by name (they then count as filtered out): `{SKIP_HINT}`."
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

/// A throwaway PostgreSQL server of this test's own (initdb + pg_ctl in a temp dir, on a free
/// 127.0.0.1 port), so restarting it disturbs no one else. Stopped on drop.
pub struct Cluster {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

impl Cluster {
    /// Finds the PostgreSQL server binaries (`pg_config --bindir`, else the newest
    /// `/usr/lib/postgresql/*/bin`) and starts a fresh cluster. Panics with a clear message
    /// when they are missing.
    pub async fn start() -> Self {
        refuse_skip_variable();
        let bin = pg_bindir().unwrap_or_else(|| {
            panic!(
                "this test runs its own PostgreSQL and needs its server binaries (initdb, \
                 pg_ctl): install the postgresql package, or leave the PostgreSQL tests out by \
                 name: `{SKIP_HINT}`"
            )
        });
        // initdb refuses to run as root: run the server as the `postgres` user then.
        let as_postgres = std::env::var("USER").is_ok_and(|u| u == "root")
            || std::process::Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let dir = tempfile::tempdir().expect("tempdir");
        if as_postgres {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown the cluster dir to postgres");
        }
        let cluster = Self {
            port: crate::free_port(),
            dir,
            bin,
            as_postgres,
        };
        let data = cluster.dir.path().join("data");
        let ok = cluster
            .run(
                "initdb",
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-N",
                ],
            )
            .await;
        assert!(ok, "initdb succeeds");
        cluster.pg_ctl_start().await;
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn run(&self, tool: &str, args: &[&str]) -> bool {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    pub async fn pg_ctl_start(&self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let ok = self
            .run(
                "pg_ctl",
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-o",
                    &options,
                    "-l",
                    &log.to_string_lossy(),
                    "-w",
                    "start",
                ],
            )
            .await;
        assert!(ok, "PostgreSQL starts");
    }

    /// Fast shutdown: open connections are terminated.
    pub async fn pg_ctl_stop(&self) {
        let data = self.dir.path().join("data");
        let ok = self
            .run(
                "pg_ctl",
                &["-D", &data.to_string_lossy(), "-m", "fast", "-w", "stop"],
            )
            .await;
        assert!(ok, "PostgreSQL stops");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn pg_bindir() -> Option<PathBuf> {
    let from_config = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.join("initdb").exists());
    from_config.or_else(|| {
        let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        dirs.sort_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
        dirs.pop()
    })
}
