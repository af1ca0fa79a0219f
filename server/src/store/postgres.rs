//! The PostgreSQL backend, for several server instances sharing one database. Same tables
//! and the same semantics as the SQLite backend, and the same queries where both accept them
//! ([`super::common`]); [`Store::commit`](super::Store::commit) takes a row lock on the
//! conversation (`SELECT … FOR UPDATE`), so takeover exclusivity, the AI's silence after a
//! takeover and gap-free sequence numbers hold across instances.
//!
//! After a commit the store sends a small `NOTIFY` (see [`crate::live::fanout`]) on the channel of its
//! schema; other instances listening there deliver the change to their subscribers.
//!
//! Commits go through a group commit: one task takes every
//! [`Store::commit`](super::Store::commit) waiting (at most [`MAX_BATCH`]) and runs them in one transaction, with one `NOTIFY` for the batch, so a busy
//! instance pays one WAL flush (and one hold of PostgreSQL's notification lock, which
//! serialises committing transactions that notify) per batch instead of per message. A batch
//! costs three statements whatever its size: one locking read of all its conversations, one
//! read of the messages its `client_msg_id`s already name, and one write of all its entries
//! and conversations (with the notification); the state machine runs in memory in between,
//! each commit after the previous ones (a stable sort by conversation keeps each
//! conversation's commits in order). The batch locks its conversations in id order, so
//! batches of several instances cannot deadlock. An op the state machine refuses writes nothing and is
//! answered with its error; a database error rolls the batch back and each of its commits is
//! then run alone, so only the failing one fails. No caller hears of its commit before the
//! transaction committed.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use nexus_shared::{Author, Message};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use tokio::sync::mpsc;
use tracing::instrument;
use uuid::Uuid;

use super::common::{
    Backend, CommitRequest, conversation_from_row, message_from_row, seq_i64, to_json,
};
use super::{Committed, Conversation, Op, StoreError, StoreResult, now_ms, plan_in_batch};
use crate::model::remote::{Event, SessionEnd};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Default size of the connection pool (`NEXUS_FLOW_DB_MAX_CONNECTIONS` overrides it).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// Default acquire timeout (`NEXUS_FLOW_DB_ACQUIRE_TIMEOUT_MS` overrides it).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many commits share one transaction.
pub const MAX_BATCH: usize = 256;
/// Commits waiting for the group-commit task; a caller beyond this waits to be queued.
const QUEUE: usize = 8_192;

pub struct PgStore {
    pool: PgPool,
    options: PgConnectOptions,
    channel: String,
    /// This process's id in notifications, so it can skip its own.
    instance: Uuid,
    commits: mpsc::Sender<CommitRequest>,
}

/// What the group-commit task needs of the store.
struct Committer {
    pool: PgPool,
    channel: String,
    instance: Uuid,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the connect options: they hold the password.
        f.debug_struct("PgStore")
            .field("channel", &self.channel)
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`, with an optional
    /// `?options=-c%20search_path%3Dschema`), creates the schema of the search path if it is
    /// missing, and runs the migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let max = std::env::var("NEXUS_FLOW_DB_MAX_CONNECTIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let acquire_timeout = std::env::var("NEXUS_FLOW_DB_ACQUIRE_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(DEFAULT_ACQUIRE_TIMEOUT, Duration::from_millis);
        Self::connect_with(url, max, acquire_timeout).await
    }

    /// Like [`PgStore::connect`] with an explicit pool size and acquire timeout (how long a
    /// query waits for a connection, e.g. while the database restarts, before it fails).
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(acquire_timeout)
            .connect_with(options.clone())
            .await?;
        if let Some(schema) = search_path_schema(url) {
            sqlx::query(&format!(
                "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                schema.replace('"', "")
            ))
            .execute(&pool)
            .await?;
        }
        MIGRATOR.run(&pool).await?;
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await?;
        let channel = crate::model::remote::channel_name(&schema);
        let instance = Uuid::new_v4();
        let (commits, requests) = mpsc::channel(QUEUE);
        // The group commit has a connection of its own: commits never queue behind reads
        // for the shared pool. Its statements find rows by key only, and never by scanning
        // a table: `conversations` is small and changes with every message, so its
        // statistics say a scan is cheaper while its dead row versions pile up, and the
        // plans a connection keeps from its first batches then scan them for every batch
        // (at 5,000 msg/s: visitor→agent p99 43–97 ms with scans, 13 ms without).
        let committer = Committer {
            pool: PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(acquire_timeout)
                .connect_lazy_with(options.clone().options([("enable_seqscan", "off")])),
            channel: channel.clone(),
            instance,
        };
        tokio::spawn(committer.run(requests));
        Ok(Self {
            pool,
            options,
            channel,
            instance,
            commits,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The connect options (for the fan-out listener's own connection). Hold a password:
    /// never log them.
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// The `LISTEN`/`NOTIFY` channel of this store's schema.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// This process's id in the notifications it sends.
    pub fn instance(&self) -> Uuid {
        self.instance
    }

    /// Sends `payload` to every instance listening on this schema's channel.
    pub async fn notify(&self, payload: &str) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Tells the other instances about a change; a failure is logged (the change itself is
    /// stored, and instances re-read the knowledge base when their listener reconnects).
    async fn announce(&self, event: Event) {
        if let Err(e) = self.notify(&event.to_payload()).await {
            tracing::warn!(error = %e, "could not notify the other instances");
        }
    }

    /// The entries `after + 1 ..= seq` of each `(conversation, after, seq)` of `ranges`, at
    /// most `limit` of each, in one query: grouped as `ranges` are, in sequence order.
    pub async fn messages_in(
        &self,
        ranges: &[(Uuid, u64, u64)],
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        sqlx::query(
            "SELECT m.* FROM UNNEST($1::text[], $2::bigint[], $3::bigint[])
                 WITH ORDINALITY AS r(conversation_id, after_seq, seq, i)
             CROSS JOIN LATERAL (SELECT * FROM messages
                 WHERE conversation_id = r.conversation_id AND seq > r.after_seq
                     AND seq <= r.seq
                 ORDER BY seq LIMIT $4) AS m
             ORDER BY r.i, m.seq",
        )
        .bind(ranges.iter().map(|r| r.0.to_string()).collect::<Vec<_>>())
        .bind(ranges.iter().map(|r| seq_i64(r.1)).collect::<Vec<_>>())
        .bind(ranges.iter().map(|r| seq_i64(r.2)).collect::<Vec<_>>())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(message_from_row)
        .collect()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The schema named by a `search_path` in the URL's `options`, if any.
fn search_path_schema(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        let value = percent_decode(value);
        let value = if key == "options" {
            value
                .split_whitespace()
                .filter(|w| *w != "-c")
                .find_map(|w| w.strip_prefix("search_path=").map(str::to_owned))?
        } else if key == "options[search_path]" || key == "options%5Bsearch_path%5D" {
            value
        } else {
            return None;
        };
        let first = value.split(',').next()?.trim().to_owned();
        (!first.is_empty() && first != "public").then_some(first)
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Committer {
    /// Takes every commit waiting (at most [`MAX_BATCH`]) and writes them in one transaction,
    /// until the store is dropped.
    async fn run(self, mut requests: mpsc::Receiver<CommitRequest>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let mut next = std::mem::take(&mut batch);
            // Every batch locks its conversations in the same order, so batches of several
            // instances cannot deadlock; the sort is stable, so each conversation's commits
            // keep their order.
            next.sort_by_key(|r| r.conversation_id);
            self.commit_batch(next).await;
        }
    }

    #[instrument(skip_all, fields(batch = batch.len()))]
    async fn commit_batch(&self, batch: Vec<CommitRequest>) {
        match self.transaction(&batch).await {
            Ok(results) => {
                for (request, result) in batch.into_iter().zip(results) {
                    let _ = request.reply.send(result);
                }
            }
            // Before COMMIT: nothing of the batch is stored. Run each commit alone, so only
            // the one that fails gets the error.
            Err(Failed::Before(e)) if batch.len() > 1 => {
                tracing::debug!(error = %e, "a group commit failed; committing one by one");
                for request in batch {
                    let result = match self.transaction(std::slice::from_ref(&request)).await {
                        Ok(mut results) => results.pop().unwrap_or(Err(StoreError::NotFound)),
                        Err(Failed::Before(e) | Failed::Commit(e)) => Err(e),
                    };
                    let _ = request.reply.send(result);
                }
            }
            // A failed COMMIT may or may not have stored the batch: report, never retry.
            Err(Failed::Before(e) | Failed::Commit(e)) => {
                let mut requests = batch.into_iter();
                if let Some(first) = requests.next() {
                    for request in requests {
                        let _ = request.reply.send(Err(copy_error(&e)));
                    }
                    let _ = first.reply.send(Err(e));
                }
            }
        }
    }

    /// Runs `batch` in one transaction with one notification; the result of each commit, or
    /// why the transaction failed.
    ///
    /// Five round trips whatever the batch's size: `BEGIN`, the locking read of its
    /// conversations, the read of the messages its client ids already name, one write of every
    /// entry and conversation (with the notification), `COMMIT`. The state machine runs in
    /// memory in between, each commit against the state the previous ones left.
    async fn transaction(
        &self,
        batch: &[CommitRequest],
    ) -> Result<Vec<StoreResult<Committed>>, Failed> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| Failed::Commit(e.into()))?;
        let (mut conversations, mut earlier) =
            lock_batch(&mut tx, batch).await.map_err(Failed::Before)?;
        let mut results = Vec::with_capacity(batch.len());
        let mut writes = Writes::default();
        let mut events = Vec::new();
        for request in batch {
            let result = plan_in_batch(
                &mut conversations,
                &mut earlier,
                request.conversation_id,
                request.guard,
                &request.op,
                now_ms(),
            );
            if let Ok(committed) = &result
                && committed.duplicate.is_none()
            {
                if let Some(first) = committed.messages.first() {
                    events.push(Event::Messages {
                        origin: self.instance,
                        conversation: request.conversation_id,
                        after: first.seq - 1,
                        seq: committed.conversation.last_seq,
                    });
                }
                writes.add(committed);
            }
            results.push(result);
        }
        if !writes.is_empty() {
            // The notification is delivered to the listening instances when (and only if)
            // the transaction commits.
            writes
                .execute(&mut tx, &self.channel, &crate::model::remote::pack(&events))
                .await
                .map_err(|e| Failed::Before(e.into()))?;
        }
        tx.commit().await.map_err(|e| Failed::Commit(e.into()))?;
        Ok(results)
    }
}

/// Why a group-commit transaction failed.
enum Failed {
    /// Before COMMIT: nothing is stored.
    Before(StoreError),
    /// At BEGIN or COMMIT.
    Commit(StoreError),
}

/// A copy of an error for each caller of a failed batch (`sqlx::Error` is not `Clone`),
/// keeping what [`StoreError::is_transient`] looks at.
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Database(sqlx::Error::PoolTimedOut) => {
            StoreError::Database(sqlx::Error::PoolTimedOut)
        }
        StoreError::Database(sqlx::Error::PoolClosed) => {
            StoreError::Database(sqlx::Error::PoolClosed)
        }
        StoreError::Database(sqlx::Error::Io(io)) => StoreError::Database(sqlx::Error::Io(
            std::io::Error::new(io.kind(), io.to_string()),
        )),
        other => StoreError::Database(sqlx::Error::Protocol(other.to_string())),
    }
}

/// Locks the conversations of `batch` and reads the messages its posts' client ids already
/// name, keyed by conversation and client id.
///
/// The rows are locked in id order (`COLLATE "C"`, the order of [`Uuid`]'s bytes, as the
/// batch is sorted), so batches of several instances cannot deadlock; a batch that waits for
/// another's lock reads the row as that one left it. The duplicate check is a statement of its
/// own, after the locks: its snapshot sees every message the other batches committed.
async fn lock_batch(
    conn: &mut PgConnection,
    batch: &[CommitRequest],
) -> StoreResult<(
    HashMap<Uuid, Conversation>,
    HashMap<(Uuid, String), Message>,
)> {
    let mut ids: Vec<String> = batch
        .iter()
        .map(|r| r.conversation_id.to_string())
        .collect();
    ids.dedup();
    let conversations = sqlx::query(
        "SELECT * FROM conversations WHERE id = ANY($1) ORDER BY id COLLATE \"C\" FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| conversation_from_row(row).map(|c| (c.id, c)))
    .collect::<StoreResult<HashMap<_, _>>>()?;
    let (posted_in, client_ids): (Vec<String>, Vec<String>) = batch
        .iter()
        .filter_map(|r| match &r.op {
            Op::Post { message, .. } => message
                .client_msg_id
                .clone()
                .map(|id| (r.conversation_id.to_string(), id)),
            Op::Transition { .. } => None,
        })
        .unzip();
    let mut earlier = HashMap::new();
    if !client_ids.is_empty() {
        let rows = sqlx::query(
            // A lateral lookup per client id: the unique index, whatever the table's size.
            "SELECT m.* FROM UNNEST($1::text[], $2::text[]) AS d(conversation_id, client_msg_id)
             CROSS JOIN LATERAL (SELECT * FROM messages
                 WHERE conversation_id = d.conversation_id AND client_msg_id = d.client_msg_id)
                 AS m",
        )
        .bind(&posted_in)
        .bind(&client_ids)
        .fetch_all(&mut *conn)
        .await?;
        for row in &rows {
            let message = message_from_row(row)?;
            if let Some(client_id) = message.client_msg_id.clone() {
                earlier.insert((message.conversation_id, client_id), message);
            }
        }
    }
    Ok((conversations, earlier))
}

/// What a batch writes, as columns: every new entry, and each conversation's columns after
/// its last commit of the batch.
#[derive(Default)]
struct Writes {
    entries: EntryColumns,
    conversations: Vec<Conversation>,
}

#[derive(Default)]
struct EntryColumns {
    id: Vec<String>,
    conversation_id: Vec<String>,
    seq: Vec<i64>,
    client_msg_id: Vec<Option<String>>,
    author_kind: Vec<&'static str>,
    author_id: Vec<Option<String>>,
    author_name: Vec<Option<String>>,
    body: Vec<String>,
    created_at: Vec<i64>,
    sources: Vec<Option<String>>,
    confidence: Vec<Option<f64>>,
    choices: Vec<Option<String>>,
    event: Vec<Option<String>>,
}

impl Writes {
    fn is_empty(&self) -> bool {
        self.conversations.is_empty()
    }

    fn add(&mut self, committed: &Committed) {
        let e = &mut self.entries;
        for message in &committed.messages {
            let agent = match &message.author {
                Author::Agent(a) => Some(a),
                _ => None,
            };
            e.id.push(message.id.to_string());
            e.conversation_id.push(message.conversation_id.to_string());
            e.seq.push(seq_i64(message.seq));
            e.client_msg_id.push(message.client_msg_id.clone());
            e.author_kind.push(message.author.kind());
            e.author_id.push(agent.map(|a| a.id.to_string()));
            e.author_name.push(agent.map(|a| a.name.clone()));
            e.body.push(message.body.clone());
            e.created_at.push(message.created_at);
            e.sources
                .push((!message.sources.is_empty()).then(|| to_json(&message.sources)));
            e.confidence.push(message.confidence.map(f64::from));
            e.choices
                .push((!message.choices.is_empty()).then(|| to_json(&message.choices)));
            e.event.push(message.event.as_ref().map(to_json));
        }
        // The batch is sorted by conversation: a later commit of the same one replaces the
        // columns of the earlier.
        match self.conversations.last_mut() {
            Some(last) if last.id == committed.conversation.id => {
                *last = committed.conversation.clone();
            }
            _ => self.conversations.push(committed.conversation.clone()),
        }
    }

    /// One statement: the entries, the conversations and the batch's notifications.
    async fn execute(
        self,
        conn: &mut PgConnection,
        channel: &str,
        payloads: &[String],
    ) -> sqlx::Result<()> {
        let e = self.entries;
        let c = self.conversations;
        sqlx::query(
            "WITH entries AS (
                INSERT INTO messages (id, conversation_id, seq, client_msg_id, author_kind,
                    author_id, author_name, body, created_at, sources, confidence, choices, event)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[],
                    $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[],
                    $11::float8[], $12::text[], $13::text[])
            ), updated AS (
                UPDATE conversations c SET state = u.state, assignee_id = u.assignee_id,
                    assignee_name = u.assignee_name, handoff_reason = u.handoff_reason,
                    last_seq = u.last_seq, updated_at = u.updated_at,
                    waiting_since = u.waiting_since
                FROM UNNEST($14::text[], $15::text[], $16::text[], $17::text[], $18::text[],
                    $19::bigint[], $20::bigint[], $21::bigint[])
                    AS u(id, state, assignee_id, assignee_name, handoff_reason, last_seq,
                        updated_at, waiting_since)
                WHERE c.id = u.id
            )
            SELECT pg_notify($22, payload) FROM UNNEST($23::text[]) AS payload",
        )
        .bind(e.id)
        .bind(e.conversation_id)
        .bind(e.seq)
        .bind(e.client_msg_id)
        .bind(e.author_kind)
        .bind(e.author_id)
        .bind(e.author_name)
        .bind(e.body)
        .bind(e.created_at)
        .bind(e.sources)
        .bind(e.confidence)
        .bind(e.choices)
        .bind(e.event)
        .bind(c.iter().map(|c| c.id.to_string()).collect::<Vec<_>>())
        .bind(
            c.iter()
                .map(|c| c.snapshot.state.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            c.iter()
                .map(|c| c.snapshot.assignee.as_ref().map(|a| a.id.to_string()))
                .collect::<Vec<_>>(),
        )
        .bind(
            c.iter()
                .map(|c| c.snapshot.assignee.as_ref().map(|a| a.name.clone()))
                .collect::<Vec<_>>(),
        )
        .bind(
            c.iter()
                .map(|c| c.handoff_reason.as_ref().map(to_json))
                .collect::<Vec<_>>(),
        )
        .bind(c.iter().map(|c| seq_i64(c.last_seq)).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.updated_at).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.waiting_since).collect::<Vec<_>>())
        .bind(channel)
        .bind(payloads)
        .execute(conn)
        .await?;
        Ok(())
    }
}

impl Backend for PgStore {
    type Db = sqlx::Postgres;
    const NAME: &'static str = "postgres";

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn connections(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    fn commits(&self) -> &mpsc::Sender<CommitRequest> {
        &self.commits
    }

    async fn kb_changed(&self, site: Uuid) {
        self.announce(Event::Kb {
            origin: self.instance,
            site,
        })
        .await;
    }

    async fn settings_changed(&self, site: Uuid) {
        self.announce(Event::Settings {
            origin: self.instance,
            site,
        })
        .await;
    }

    async fn sessions_ended(&self, ended: SessionEnd) {
        self.announce(Event::SessionsEnded {
            origin: self.instance,
            ended,
        })
        .await;
    }

    /// A deleted row stays in its page as a dead tuple until `VACUUM` marks its space free;
    /// this vacuums every table a privacy deletion touches, so its space is reused by the
    /// next writes. The bytes themselves go only when that space is written again (or with
    /// `VACUUM FULL`, which locks the tables and is left to the operator), and the WAL keeps
    /// them until its segments are recycled: see RELIABILITY.md.
    async fn clear_deleted(&self) -> StoreResult<()> {
        sqlx::query(
            "VACUUM visitors, conversations, messages, feedback, csat, drafts, notes, \
             learned_entries, kb_entries",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_comes_from_the_url_options() {
        let url = "postgres://u:p@h/db?options=-c%20search_path%3Dt_abc";
        assert_eq!(search_path_schema(url).as_deref(), Some("t_abc"));
        assert_eq!(
            search_path_schema("postgres://h/db?sslmode=disable&options[search_path]=x,public")
                .as_deref(),
            Some("x")
        );
        assert_eq!(search_path_schema("postgres://h/db"), None);
        assert_eq!(
            search_path_schema("postgres://h/db?options=-c%20search_path%3Dpublic"),
            None
        );
        assert_eq!(percent_decode("a%20b%3D%zz+"), "a b=%zz ");
    }
}
