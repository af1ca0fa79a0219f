//! The PostgreSQL backend, for several server instances sharing one database. Same tables
//! and the same semantics as the SQLite backend; [`Store::commit`] takes a row lock on the
//! conversation (`SELECT … FOR UPDATE`), so takeover exclusivity, the AI's silence after a
//! takeover and gap-free sequence numbers hold across instances.
//!
//! After a commit the store sends a small `NOTIFY` (see [`crate::live::fanout`]) on the channel of its
//! schema; other instances listening there deliver the change to their subscribers.
//!
//! Commits go through a group commit: one task takes every [`Store::commit`] waiting (at most
//! [`MAX_BATCH`]) and runs them in one transaction, with one `NOTIFY` for the batch, so a busy
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

use nexus_shared::{
    AgentRef, Author, ConversationState, Draft, HandoffReason, Message, Millis, Note, Role,
    Snapshot, VisitorInfo,
};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use tokio::sync::{mpsc, oneshot};
use tracing::instrument;
use uuid::Uuid;

use super::{
    Committed, Conversation, ConversationFacts, Guard, Op, PasswordHash, Site, SiteSettings, Store,
    StoreError, StoreResult, User, Visitor, agent_from_columns, conversation_facts, csat_score,
    now_ms, plan_in_batch,
};
use crate::model::remote::Event;
use nexus_engine::KbEntry;

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

/// One caller's commit, waiting for the group-commit task.
struct CommitRequest {
    conversation_id: Uuid,
    guard: Guard,
    op: Op,
    reply: oneshot::Sender<StoreResult<Committed>>,
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

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("vt_{}", hex::encode(bytes))
}

fn uuid_col(row: &PgRow, col: &str) -> StoreResult<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn json_col<T: serde::de::DeserializeOwned>(row: &PgRow, col: &str) -> StoreResult<Option<T>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))))
        .transpose()
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn site_from_row(row: &PgRow) -> StoreResult<Site> {
    Ok(Site {
        id: uuid_col(row, "id")?,
        key: row.try_get("key")?,
        name: row.try_get("name")?,
        settings: json_col::<SiteSettings>(row, "settings")?.unwrap_or_default(),
        created_at: row.try_get("created_at")?,
    })
}

fn conversation_from_row(row: &PgRow) -> StoreResult<Conversation> {
    let state: String = row.try_get("state")?;
    let state = ConversationState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("state {state:?}")))?;
    let assignee = agent_from_columns(row.try_get("assignee_id")?, row.try_get("assignee_name")?);
    let last_seq: i64 = row.try_get("last_seq")?;
    Ok(Conversation {
        id: uuid_col(row, "id")?,
        site_id: uuid_col(row, "site_id")?,
        visitor_id: uuid_col(row, "visitor_id")?,
        snapshot: Snapshot { state, assignee },
        handoff_reason: json_col::<HandoffReason>(row, "handoff_reason")?,
        last_seq: u64::try_from(last_seq).unwrap_or(0),
        page_url: row.try_get("page_url")?,
        locale: row.try_get("locale")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        waiting_since: row.try_get("waiting_since")?,
    })
}

fn message_from_row(row: &PgRow) -> StoreResult<Message> {
    let kind: String = row.try_get("author_kind")?;
    let author = match kind.as_str() {
        "visitor" => Author::Visitor,
        "ai" => Author::Ai,
        "system" => Author::System,
        "agent" => Author::Agent(
            agent_from_columns(row.try_get("author_id")?, row.try_get("author_name")?)
                .ok_or_else(|| StoreError::Corrupt("agent author without id".into()))?,
        ),
        other => return Err(StoreError::Corrupt(format!("author {other:?}"))),
    };
    let seq: i64 = row.try_get("seq")?;
    Ok(Message {
        id: uuid_col(row, "id")?,
        conversation_id: uuid_col(row, "conversation_id")?,
        seq: u64::try_from(seq).unwrap_or(0),
        client_msg_id: row.try_get("client_msg_id")?,
        author,
        body: row.try_get("body")?,
        created_at: row.try_get("created_at")?,
        sources: json_col(row, "sources")?.unwrap_or_default(),
        confidence: row
            .try_get::<Option<f64>, _>("confidence")?
            .map(|c| c as f32),
        choices: json_col(row, "choices")?.unwrap_or_default(),
        event: json_col(row, "event")?,
    })
}

fn kb_from_row(row: &PgRow) -> StoreResult<KbEntry> {
    Ok(KbEntry {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        answer: row.try_get("answer")?,
        examples: json_col(row, "examples")?.unwrap_or_default(),
        escalate: json_col(row, "escalate")?,
    })
}

/// Inserts or replaces `entries` of `site_id`'s knowledge base, inside the caller's
/// transaction.
async fn write_kb_entries(
    conn: &mut PgConnection,
    site_id: Uuid,
    entries: &[KbEntry],
    now: Millis,
) -> sqlx::Result<()> {
    for entry in entries {
        sqlx::query(
            "INSERT INTO kb_entries (site_id, id, title, answer, examples, escalate, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (site_id, id) DO UPDATE SET title = excluded.title,
                answer = excluded.answer, examples = excluded.examples,
                escalate = excluded.escalate, updated_at = excluded.updated_at",
        )
        .bind(site_id.to_string())
        .bind(&entry.id)
        .bind(&entry.title)
        .bind(&entry.answer)
        .bind(to_json(&entry.examples))
        .bind(entry.escalate.as_ref().map(to_json))
        .bind(now)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Rows of `select_from` (a table aliased `x` with a `conversation_id` column) that belong
/// to the site's conversations created in `[from, to)`, the period
/// `conversations_created_between` reads; `then` follows the condition (an `ORDER BY`).
async fn period_rows(
    pool: &PgPool,
    select_from: &str,
    then: &str,
    site_id: Uuid,
    from: Millis,
    to: Millis,
) -> StoreResult<Vec<PgRow>> {
    Ok(sqlx::query(&format!(
        "{select_from} JOIN conversations c ON c.id = x.conversation_id
         WHERE c.site_id = $1 AND c.created_at >= $2 AND c.created_at < $3 {then}"
    ))
    .bind(site_id.to_string())
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?)
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
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

#[async_trait::async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn pool_stats(&self) -> Option<(u32, usize)> {
        Some((self.pool.size(), self.pool.num_idle()))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    #[instrument(skip_all, fields(site = %site.key))]
    async fn create_site(&self, site: &Site) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sites (id, key, name, settings, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(site.id.to_string())
        .bind(&site.key)
        .bind(&site.name)
        .bind(to_json(&site.settings))
        .bind(site.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_site_with_kb(&self, site: &Site, entries: &[KbEntry]) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let created = sqlx::query(
            "INSERT INTO sites (id, key, name, settings, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (key) DO NOTHING",
        )
        .bind(site.id.to_string())
        .bind(&site.key)
        .bind(&site.name)
        .bind(to_json(&site.settings))
        .bind(site.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !created {
            return Ok(false);
        }
        write_kb_entries(&mut tx, site.id, entries, now_ms()).await?;
        tx.commit().await?;
        self.announce(Event::Kb {
            origin: self.instance,
            site: site.id,
        })
        .await;
        Ok(true)
    }

    async fn site_by_key(&self, key: &str) -> StoreResult<Option<Site>> {
        sqlx::query("SELECT * FROM sites WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(site_from_row)
            .transpose()
    }

    async fn site(&self, id: Uuid) -> StoreResult<Option<Site>> {
        sqlx::query("SELECT * FROM sites WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(site_from_row)
            .transpose()
    }

    async fn sites(&self) -> StoreResult<Vec<Site>> {
        sqlx::query("SELECT * FROM sites ORDER BY created_at")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(site_from_row)
            .collect()
    }

    async fn kb_entries(&self, site_id: Uuid) -> StoreResult<Vec<KbEntry>> {
        sqlx::query("SELECT * FROM kb_entries WHERE site_id = $1 ORDER BY created_at, id")
            .bind(site_id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(kb_from_row)
            .collect()
    }

    async fn upsert_kb_entry(&self, site_id: Uuid, entry: &KbEntry) -> StoreResult<()> {
        // One entry is an import of one: the same upsert (and, with PostgreSQL, the same
        // notification to the other instances).
        self.import_kb_entries(site_id, std::slice::from_ref(entry))
            .await
    }

    async fn delete_kb_entry(&self, site_id: Uuid, id: &str) -> StoreResult<()> {
        let result = sqlx::query("DELETE FROM kb_entries WHERE site_id = $1 AND id = $2")
            .bind(site_id.to_string())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.announce(Event::Kb {
            origin: self.instance,
            site: site_id,
        })
        .await;
        Ok(())
    }

    #[instrument(skip_all)]
    async fn create_visitor(
        &self,
        site_id: Uuid,
        info: &VisitorInfo,
    ) -> StoreResult<(Visitor, String)> {
        let id = Uuid::new_v4();
        let token = new_token();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO visitors (id, site_id, token_hash, name, email, created_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.to_string())
        .bind(site_id.to_string())
        .bind(hash_token(&token))
        .bind(&info.name)
        .bind(&info.email)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok((
            Visitor {
                id,
                site_id,
                info: info.clone(),
            },
            token,
        ))
    }

    async fn visitor_by_token(&self, site_id: Uuid, token: &str) -> StoreResult<Option<Visitor>> {
        let row = sqlx::query("SELECT * FROM visitors WHERE token_hash = $1 AND site_id = $2")
            .bind(hash_token(token))
            .bind(site_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(Visitor {
                id: uuid_col(&row, "id")?,
                site_id: uuid_col(&row, "site_id")?,
                info: VisitorInfo {
                    name: row.try_get("name")?,
                    email: row.try_get("email")?,
                    page_url: None,
                    locale: None,
                },
            })
        })
        .transpose()
    }

    #[instrument(skip_all)]
    async fn set_visitor_email(&self, visitor_id: Uuid, email: &str) -> StoreResult<()> {
        let result = sqlx::query("UPDATE visitors SET email = $1 WHERE id = $2")
            .bind(email)
            .bind(visitor_id.to_string())
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_visitor_identity(
        &self,
        visitor_id: Uuid,
        external_id: &str,
        name: Option<&str>,
        email: Option<&str>,
    ) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE visitors SET external_id = $1, name = COALESCE($2, name), email = COALESCE($3, email)
             WHERE id = $4 AND (external_id IS NULL OR external_id = $5)",
        )
        .bind(external_id)
        .bind(name)
        .bind(email)
        .bind(visitor_id.to_string())
        .bind(external_id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    #[instrument(skip_all)]
    async fn create_conversation(
        &self,
        site_id: Uuid,
        visitor_id: Uuid,
        page_url: Option<&str>,
        locale: Option<&str>,
    ) -> StoreResult<Conversation> {
        let now = now_ms();
        let conversation = Conversation {
            id: Uuid::new_v4(),
            site_id,
            visitor_id,
            snapshot: Snapshot::new(),
            handoff_reason: None,
            last_seq: 0,
            page_url: page_url.map(str::to_owned),
            locale: locale.map(str::to_owned),
            created_at: now,
            updated_at: now,
            waiting_since: None,
        };
        sqlx::query(
            "INSERT INTO conversations (id, site_id, visitor_id, state, last_seq, page_url, locale,
                created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8)",
        )
        .bind(conversation.id.to_string())
        .bind(site_id.to_string())
        .bind(visitor_id.to_string())
        .bind(conversation.snapshot.state.as_str())
        .bind(page_url)
        .bind(locale)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(conversation)
    }

    async fn conversation(&self, id: Uuid) -> StoreResult<Option<Conversation>> {
        sqlx::query("SELECT * FROM conversations WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(conversation_from_row)
            .transpose()
    }

    async fn latest_conversation(&self, visitor_id: Uuid) -> StoreResult<Option<Conversation>> {
        sqlx::query(
            "SELECT * FROM conversations WHERE visitor_id = $1 ORDER BY updated_at DESC LIMIT 1",
        )
        .bind(visitor_id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(conversation_from_row)
        .transpose()
    }

    async fn visitor_conversations(
        &self,
        visitor_id: Uuid,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>> {
        sqlx::query(
            "SELECT * FROM conversations WHERE visitor_id = $1 ORDER BY updated_at DESC LIMIT $2",
        )
        .bind(visitor_id.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(conversation_from_row)
        .collect()
    }

    async fn messages_after(
        &self,
        conversation_id: Uuid,
        after_seq: u64,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        sqlx::query(
            "SELECT * FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(conversation_id.to_string())
        .bind(seq_i64(after_seq))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(message_from_row)
        .collect()
    }

    async fn last_messages(&self, conversation_id: Uuid, limit: u32) -> StoreResult<Vec<Message>> {
        let mut messages = sqlx::query(
            "SELECT * FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(conversation_id.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(message_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        messages.reverse();
        Ok(messages)
    }

    async fn message(&self, conversation_id: Uuid, id: Uuid) -> StoreResult<Option<Message>> {
        sqlx::query("SELECT * FROM messages WHERE conversation_id = $1 AND id = $2")
            .bind(conversation_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(message_from_row)
            .transpose()
    }

    async fn visitor_message_by_client_id(
        &self,
        visitor_id: Uuid,
        client_msg_id: &str,
    ) -> StoreResult<Option<Message>> {
        sqlx::query(
            "SELECT m.* FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE c.visitor_id = $1 AND m.client_msg_id = $2 AND m.author_kind = 'visitor'
             LIMIT 1",
        )
        .bind(visitor_id.to_string())
        .bind(client_msg_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(message_from_row)
        .transpose()
    }

    async fn queue_position(&self, conversation: &Conversation) -> StoreResult<Option<u32>> {
        let (Some(since), ConversationState::Waiting) =
            (conversation.waiting_since, conversation.snapshot.state)
        else {
            return Ok(None);
        };
        let ahead: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM conversations WHERE site_id = $1 AND state = 'waiting'
             AND (waiting_since < $2 OR (waiting_since = $3 AND id < $4))",
        )
        .bind(conversation.site_id.to_string())
        .bind(since)
        .bind(since)
        .bind(conversation.id.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(Some(
            u32::try_from(ahead).unwrap_or(u32::MAX).saturating_add(1),
        ))
    }

    #[instrument(skip_all, fields(conversation = %conversation_id))]
    async fn commit_guarded(
        &self,
        guard: Guard,
        conversation_id: Uuid,
        op: Op,
    ) -> StoreResult<Committed> {
        let (reply, answer) = oneshot::channel();
        let request = CommitRequest {
            conversation_id,
            guard,
            op,
            reply,
        };
        // The group-commit task ends only when the store is dropped.
        let gone = || StoreError::Database(sqlx::Error::PoolClosed);
        self.commits.send(request).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    async fn open_conversations(
        &self,
        site_id: Uuid,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>> {
        sqlx::query(
            "SELECT * FROM conversations WHERE site_id = $1 AND state IN ('ai', 'waiting', 'human')
             ORDER BY updated_at DESC LIMIT $2",
        )
        .bind(site_id.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(conversation_from_row)
        .collect()
    }

    async fn create_user(&self, user: &User, password: &PasswordHash) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (id, site_id, email, name, role, password_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user.id.to_string())
        .bind(user.site_id.to_string())
        .bind(&user.email)
        .bind(&user.name)
        .bind(role_str(user.role))
        .bind(&password.0)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn user_by_email(
        &self,
        site_id: Uuid,
        email: &str,
    ) -> StoreResult<Option<(User, PasswordHash)>> {
        let row = sqlx::query("SELECT * FROM users WHERE site_id = $1 AND email = $2")
            .bind(site_id.to_string())
            .bind(email.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok((
                user_from_row(&row)?,
                PasswordHash(row.try_get("password_hash")?),
            ))
        })
        .transpose()
    }

    async fn set_password(&self, user_id: Uuid, password: &PasswordHash) -> StoreResult<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(&password.0)
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_session(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: Millis,
    ) -> StoreResult<()> {
        let now = now_ms();
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session_user(&self, token_hash: &str, now: Millis) -> StoreResult<Option<User>> {
        sqlx::query(
            "SELECT u.* FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn update_site_settings(
        &self,
        site_id: Uuid,
        settings: &SiteSettings,
    ) -> StoreResult<()> {
        let result = sqlx::query("UPDATE sites SET settings = $1 WHERE id = $2")
            .bind(to_json(settings))
            .bind(site_id.to_string())
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.announce(Event::Settings {
            origin: self.instance,
            site: site_id,
        })
        .await;
        Ok(())
    }

    async fn create_draft(&self, draft: &Draft, question: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO drafts (id, conversation_id, reply_to_seq, question, body, sources,
                confidence, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8)",
        )
        .bind(draft.id.to_string())
        .bind(draft.conversation_id.to_string())
        .bind(seq_i64(draft.reply_to_seq))
        .bind(question)
        .bind(&draft.body)
        .bind((!draft.sources.is_empty()).then(|| to_json(&draft.sources)))
        .bind(draft.confidence.map(f64::from))
        .bind(draft.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn draft(&self, id: Uuid) -> StoreResult<Option<(Draft, String)>> {
        let row = sqlx::query("SELECT * FROM drafts WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((draft_from_row(&row)?, row.try_get("question")?)))
            .transpose()
    }

    async fn pending_drafts(&self, conversation_id: Uuid) -> StoreResult<Vec<Draft>> {
        sqlx::query(
            "SELECT * FROM drafts WHERE conversation_id = $1 AND status = 'pending' ORDER BY created_at",
        )
        .bind(conversation_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(draft_from_row)
        .collect()
    }

    async fn move_draft(
        &self,
        id: Uuid,
        from: &str,
        to: &str,
        reviewer: Option<Uuid>,
    ) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE drafts SET status = $1, reviewed_by = $2, reviewed_at = $3
             WHERE id = $4 AND status = $5",
        )
        .bind(to)
        .bind(reviewer.map(|r| r.to_string()))
        .bind(now_ms())
        .bind(id.to_string())
        .bind(from)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn add_note(&self, note: &Note) -> StoreResult<(Note, bool)> {
        let inserted = sqlx::query(
            "INSERT INTO notes (id, conversation_id, agent_id, agent_name, client_msg_id, body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (conversation_id, client_msg_id) DO NOTHING",
        )
        .bind(note.id.to_string())
        .bind(note.conversation_id.to_string())
        .bind(note.agent.id.to_string())
        .bind(&note.agent.name)
        .bind(&note.client_msg_id)
        .bind(&note.body)
        .bind(note.created_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let row =
            sqlx::query("SELECT * FROM notes WHERE conversation_id = $1 AND client_msg_id = $2")
                .bind(note.conversation_id.to_string())
                .bind(&note.client_msg_id)
                .fetch_one(&self.pool)
                .await?;
        Ok((note_from_row(&row)?, inserted == 0))
    }

    async fn record_feedback(
        &self,
        conversation_id: Uuid,
        message_id: Uuid,
        helpful: bool,
    ) -> StoreResult<()> {
        let result = sqlx::query(
            "INSERT INTO feedback (message_id, conversation_id, helpful, created_at)
             SELECT id, conversation_id, $1, $2 FROM messages
             WHERE id = $3 AND conversation_id = $4 AND author_kind = 'ai'
             ON CONFLICT (message_id) DO UPDATE SET helpful = excluded.helpful",
        )
        .bind(helpful)
        .bind(now_ms())
        .bind(message_id.to_string())
        .bind(conversation_id.to_string())
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn record_csat(
        &self,
        conversation_id: Uuid,
        score: u8,
        comment: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO csat (conversation_id, score, comment, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (conversation_id) DO UPDATE SET score = excluded.score,
                comment = excluded.comment, created_at = excluded.created_at",
        )
        .bind(conversation_id.to_string())
        .bind(i64::from(score))
        .bind(comment)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn add_pending_entry(
        &self,
        site_id: Uuid,
        entry: &crate::model::PendingEntry,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO learned_entries (id, site_id, question, answer, entry_id, conversation_id,
                origin, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8)",
        )
        .bind(entry.id.to_string())
        .bind(site_id.to_string())
        .bind(&entry.question)
        .bind(&entry.answer)
        .bind(entry.entry_id.as_deref())
        .bind(entry.conversation_id.map(|c| c.to_string()))
        .bind(entry.origin.as_str())
        .bind(entry.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn pending_entries(&self, site_id: Uuid) -> StoreResult<Vec<crate::model::PendingEntry>> {
        sqlx::query(
            "SELECT * FROM learned_entries WHERE site_id = $1 AND status = 'pending'
             ORDER BY created_at, id",
        )
        .bind(site_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(pending_from_row)
        .collect()
    }

    async fn close_pending_entry(
        &self,
        site_id: Uuid,
        id: Uuid,
        status: &str,
        reviewer: Uuid,
    ) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE learned_entries SET status = $1, reviewed_by = $2, reviewed_at = $3
             WHERE id = $4 AND site_id = $5 AND status = 'pending'",
        )
        .bind(status)
        .bind(reviewer.to_string())
        .bind(now_ms())
        .bind(id.to_string())
        .bind(site_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn canned_responses(&self, site_id: Uuid) -> StoreResult<Vec<crate::model::Canned>> {
        sqlx::query(
            "SELECT id, title, body FROM canned_responses WHERE site_id = $1 ORDER BY title, id",
        )
        .bind(site_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(crate::model::Canned {
                id: uuid_col(row, "id")?,
                title: row.try_get("title")?,
                body: row.try_get("body")?,
            })
        })
        .collect()
    }

    async fn upsert_canned(&self, site_id: Uuid, canned: &crate::model::Canned) -> StoreResult<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO canned_responses (id, site_id, title, body, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET title = excluded.title, body = excluded.body,
                updated_at = excluded.updated_at
             WHERE canned_responses.site_id = excluded.site_id",
        )
        .bind(canned.id.to_string())
        .bind(site_id.to_string())
        .bind(&canned.title)
        .bind(&canned.body)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_canned(&self, site_id: Uuid, id: Uuid) -> StoreResult<()> {
        let result = sqlx::query("DELETE FROM canned_responses WHERE site_id = $1 AND id = $2")
            .bind(site_id.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn import_kb_entries(&self, site_id: Uuid, entries: &[KbEntry]) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        write_kb_entries(&mut tx, site_id, entries, now).await?;
        tx.commit().await?;
        self.announce(Event::Kb {
            origin: self.instance,
            site: site_id,
        })
        .await;
        Ok(())
    }

    async fn conversations_created_between(
        &self,
        site_id: Uuid,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<Conversation>> {
        sqlx::query(
            "SELECT * FROM conversations WHERE site_id = $1 AND created_at >= $2 AND created_at < $3
             ORDER BY created_at, id",
        )
        .bind(site_id.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(conversation_from_row)
        .collect()
    }

    async fn conversation_facts_between(
        &self,
        site_id: Uuid,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<ConversationFacts>> {
        let conversations = self
            .conversations_created_between(site_id, from, to)
            .await?;
        let messages = period_rows(
            &self.pool,
            "SELECT x.* FROM messages x",
            "ORDER BY x.conversation_id, x.seq",
            site_id,
            from,
            to,
        )
        .await?
        .iter()
        .map(message_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        let csat = period_rows(
            &self.pool,
            "SELECT x.conversation_id, x.score FROM csat x",
            "",
            site_id,
            from,
            to,
        )
        .await?
        .iter()
        .map(|row| {
            Ok((
                uuid_col(row, "conversation_id")?,
                csat_score(row.try_get("score")?)?,
            ))
        })
        .collect::<StoreResult<HashMap<_, _>>>()?;
        Ok(conversation_facts(conversations, messages, csat))
    }

    async fn learned_entry_times(
        &self,
        site_id: Uuid,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<Millis>> {
        let rows = sqlx::query(
            "SELECT created_at FROM kb_entries WHERE site_id = $1 AND id LIKE 'learned-%'
             AND created_at >= $2 AND created_at < $3 ORDER BY created_at",
        )
        .bind(site_id.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<i64, _>("created_at")?))
            .collect()
    }

    async fn csat(&self, conversation_id: Uuid) -> StoreResult<Option<crate::model::Csat>> {
        let row =
            sqlx::query("SELECT score, comment, created_at FROM csat WHERE conversation_id = $1")
                .bind(conversation_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| {
            let score: i64 = row.try_get("score")?;
            Ok(crate::model::Csat {
                score: csat_score(score)?,
                comment: row.try_get("comment")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn visitor_profile(
        &self,
        site_id: Uuid,
        visitor_id: Uuid,
    ) -> StoreResult<Option<crate::model::VisitorProfile>> {
        let row = sqlx::query(
            "SELECT id, external_id, name, email, created_at, last_seen_at FROM visitors
             WHERE site_id = $1 AND id = $2",
        )
        .bind(site_id.to_string())
        .bind(visitor_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(crate::model::VisitorProfile {
                id: uuid_col(&row, "id")?,
                external_id: row.try_get("external_id")?,
                name: row.try_get("name")?,
                email: row.try_get("email")?,
                created_at: row.try_get("created_at")?,
                last_seen_at: row.try_get("last_seen_at")?,
            })
        })
        .transpose()
    }

    async fn delete_visitor(&self, site_id: Uuid, visitor_id: Uuid) -> StoreResult<()> {
        let result = sqlx::query("DELETE FROM visitors WHERE site_id = $1 AND id = $2")
            .bind(site_id.to_string())
            .bind(visitor_id.to_string())
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

fn user_from_row(row: &PgRow) -> StoreResult<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: uuid_col(row, "id")?,
        site_id: uuid_col(row, "site_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: match role.as_str() {
            "owner" => Role::Owner,
            "agent" => Role::Agent,
            other => return Err(StoreError::Corrupt(format!("role {other:?}"))),
        },
    })
}

fn note_from_row(row: &PgRow) -> StoreResult<Note> {
    Ok(Note {
        id: uuid_col(row, "id")?,
        conversation_id: uuid_col(row, "conversation_id")?,
        client_msg_id: row.try_get("client_msg_id")?,
        agent: AgentRef {
            id: uuid_col(row, "agent_id")?,
            name: row.try_get("agent_name")?,
        },
        body: row.try_get("body")?,
        created_at: row.try_get("created_at")?,
    })
}

fn draft_from_row(row: &PgRow) -> StoreResult<Draft> {
    let seq: i64 = row.try_get("reply_to_seq")?;
    Ok(Draft {
        id: uuid_col(row, "id")?,
        conversation_id: uuid_col(row, "conversation_id")?,
        reply_to_seq: u64::try_from(seq).unwrap_or(0),
        body: row.try_get("body")?,
        sources: json_col(row, "sources")?.unwrap_or_default(),
        confidence: row
            .try_get::<Option<f64>, _>("confidence")?
            .map(|c| c as f32),
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) const fn role_str(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Agent => "agent",
    }
}

fn pending_from_row(row: &PgRow) -> StoreResult<crate::model::PendingEntry> {
    let origin: String = row.try_get("origin")?;
    let conversation_id: Option<String> = row.try_get("conversation_id")?;
    Ok(crate::model::PendingEntry {
        id: uuid_col(row, "id")?,
        question: row.try_get("question")?,
        answer: row.try_get("answer")?,
        entry_id: row.try_get("entry_id")?,
        conversation_id: conversation_id
            .map(|c| Uuid::parse_str(&c))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("conversation_id: {e}")))?,
        origin: crate::model::Origin::parse(&origin)
            .ok_or_else(|| StoreError::Corrupt(format!("origin: {origin}")))?,
        created_at: row.try_get("created_at")?,
    })
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
