//! The SQLite backend: the zero-setup default. WAL mode; one writer connection (SQLite allows
//! one writer at a time, and a single writer connection avoids busy errors on lock upgrades)
//! and a pool of readers.
//!
//! Conversation commits go through a group commit: one task takes every [`Store::commit`]
//! waiting (at most [`MAX_BATCH`]), plans them in memory and writes them in one transaction
//! (an op the state machine refuses writes nothing and gets its own error; when the write
//! fails, the batch runs again with a savepoint per op, so a failing op rolls back alone),
//! commits once (one fsync with `synchronous = FULL` for the whole batch), and only
//! then answers each caller. A commit is therefore durable before its caller hears of it, as
//! before; a lone commit waits for no timer, and commits arriving while a batch is being
//! written form the next batch.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use nexus_shared::{
    AgentRef, Author, ConversationState, Draft, HandoffReason, Message, Millis, Note, Role,
    Snapshot, VisitorInfo,
};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::instrument;
use uuid::Uuid;

use super::{
    Committed, Conversation, ConversationFacts, Guard, Op, PasswordHash, Rows, Site, SiteSettings,
    Store, StoreError, StoreResult, User, Visitor, agent_from_columns, conversation_facts,
    csat_score, now_ms, plan, plan_in_batch,
};
use nexus_engine::KbEntry;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// At most this many commits share one transaction.
pub const MAX_BATCH: usize = 256;
/// Pages the write-ahead log holds before a commit copies them into the database file
/// (SQLite's default is 1,000), and the log starts again from its beginning. That checkpoint
/// runs inside the commit that reaches it and holds up that batch, so most of the copying is
/// done before, by the [`checkpointer`] on a connection of its own: the commit's checkpoint
/// then only copies what was written since the checkpointer's last pass.
const WAL_CHECKPOINT_PAGES: u32 = 8_000;
/// How long after a commit the [`checkpointer`] copies the log into the database file: its
/// passes are short (each one's `fsync` of the database file delays the commits' `fsync` of
/// the log less) and the writer's own checkpoint finds little left to copy. 20 ms gave
/// visitor→agent p99 17–35 ms at 5,000 msg/s over 60 s, 50 ms 26–47 ms (BENCHMARKS.md).
const CHECKPOINT_DELAY: Duration = Duration::from_millis(20);
/// Commits waiting for the writer; a caller beyond this waits to be queued.
const QUEUE: usize = 8_192;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    commits: mpsc::Sender<CommitRequest>,
}

/// One caller's commit, waiting for the group-commit task.
struct CommitRequest {
    conversation_id: Uuid,
    guard: Guard,
    op: Op,
    reply: oneshot::Sender<StoreResult<Committed>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or `sqlite::memory:`)
    /// and runs the migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a message is on disk before it is acknowledged.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string())
            // A batch's multi-row statements keep a statement journal (the pages they change,
            // to undo the statement alone); in memory instead of a temporary file created,
            // written and deleted for every batch.
            .pragma("temp_store", "memory");
        if let Some(parent) = std::path::Path::new(options.get_filename()).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Database(sqlx::Error::Configuration(
                    format!("cannot create {}: {e}", parent.display()).into(),
                ))
            })?;
        }
        // No test before a connection is handed out: it is a call to the connection's worker
        // thread, and a SQLite connection cannot go stale.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            // A batch's read returns up to two rows per commit in one call.
            .connect_with(options.clone().row_buffer_size(2 * MAX_BATCH))
            .await?;
        MIGRATOR.run(&writer).await?;
        let checkpoint_conn = SqliteConnection::connect_with(&options).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            // A history page in one call to the worker thread.
            .connect_with(
                options
                    .read_only(true)
                    .row_buffer_size(nexus_shared::limits::MAX_HISTORY_PAGE as usize + 1),
            )
            .await?;
        let (commits, requests) = mpsc::channel(QUEUE);
        let (committed, commit_seen) = watch::channel(());
        tokio::spawn(group_commit(writer.clone(), requests, committed));
        tokio::spawn(checkpointer(checkpoint_conn, commit_seen));
        Ok(Self {
            writer,
            reader,
            commits,
        })
    }

    /// Closes both pools (waits for connections to be returned).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("vt_{}", hex::encode(bytes))
}

fn uuid_col(row: &SqliteRow, col: &str) -> StoreResult<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn json_col<T: serde::de::DeserializeOwned>(row: &SqliteRow, col: &str) -> StoreResult<Option<T>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))))
        .transpose()
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn site_from_row(row: &SqliteRow) -> StoreResult<Site> {
    Ok(Site {
        id: uuid_col(row, "id")?,
        key: row.try_get("key")?,
        name: row.try_get("name")?,
        settings: json_col::<SiteSettings>(row, "settings")?.unwrap_or_default(),
        created_at: row.try_get("created_at")?,
    })
}

fn conversation_from_row(row: &SqliteRow) -> StoreResult<Conversation> {
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

fn message_from_row(row: &SqliteRow) -> StoreResult<Message> {
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

fn kb_from_row(row: &SqliteRow) -> StoreResult<KbEntry> {
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
    conn: &mut SqliteConnection,
    site_id: Uuid,
    entries: &[KbEntry],
    now: Millis,
) -> sqlx::Result<()> {
    for entry in entries {
        sqlx::query(
            "INSERT INTO kb_entries (site_id, id, title, answer, examples, escalate, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
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
    pool: &SqlitePool,
    select_from: &str,
    then: &str,
    site_id: Uuid,
    from: Millis,
    to: Millis,
) -> StoreResult<Vec<SqliteRow>> {
    Ok(sqlx::query(&format!(
        "{select_from} JOIN conversations c ON c.id = x.conversation_id
         WHERE c.site_id = ? AND c.created_at >= ? AND c.created_at < ? {then}"
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

/// The group-commit task: takes every commit waiting (at most [`MAX_BATCH`]) and writes them
/// in one transaction, until the store is dropped.
async fn group_commit(
    pool: SqlitePool,
    mut requests: mpsc::Receiver<CommitRequest>,
    committed: watch::Sender<()>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let batch = std::mem::take(&mut batch);
        match pool.acquire().await {
            Ok(mut conn) => {
                commit_batch(&mut conn, batch).await;
                // Wakes the checkpointer (the value carries nothing).
                committed.send_replace(());
            }
            Err(e) => {
                for request in batch {
                    let _ = request.reply.send(Err(copy_error(&e)));
                }
            }
        }
    }
}

/// Copies the write-ahead log into the database file a moment after commits, on its own
/// connection (and so its own thread), while the writer goes on: a `PASSIVE` checkpoint never
/// waits for the writer or holds it up. It cannot start the log again while the writer keeps
/// appending to it (that needs every frame copied when a write transaction begins), so the
/// writer's own checkpoint at [`WAL_CHECKPOINT_PAGES`] still does, copying only what was
/// written since this pass. Ends when the group commit ends (the store was dropped).
async fn checkpointer(mut conn: SqliteConnection, mut commits: watch::Receiver<()>) {
    while commits.changed().await.is_ok() {
        tokio::time::sleep(CHECKPOINT_DELAY).await;
        // The commits made while this task slept are covered by the pass below.
        commits.mark_unchanged();
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            tracing::warn!(error = %e, "background checkpoint failed");
        }
    }
    if let Err(e) = conn.close().await {
        tracing::debug!(error = %e, "closing the checkpoint connection");
    }
}

/// Writes a batch in one transaction and answers every caller once it committed.
///
/// First the planned path ([`plan_batch`]): the transaction's start with one read of all the
/// batch's conversations and of the stored messages carrying its client ids, the state
/// machine run in memory op after op (each op sees what the ops before it in the batch left),
/// then one write of every new entry and every changed conversation followed by the commit:
/// two calls to the connection's worker thread for the whole batch (each call is a hand-off
/// between threads, which costs more than the statements). A refused op, an unknown
/// conversation or a repeated client id writes nothing there, so it needs no savepoint. When
/// the reads or the write fail, the transaction is rolled back and the batch runs again op by
/// op, each in a savepoint of its own ([`commit_each`]), so the failing op rolls back alone
/// and gets its own error. A failed commit is not run again: every caller gets the error.
#[instrument(skip_all, fields(batch = batch.len()))]
async fn commit_batch(conn: &mut SqliteConnection, batch: Vec<CommitRequest>) {
    let failed = match plan_batch(conn, &batch).await {
        Ok(results) => {
            for (request, result) in batch.into_iter().zip(results) {
                let _ = request.reply.send(result);
            }
            return;
        }
        Err(e) => e,
    };
    // A failing statement stops its call: the write failed inside the transaction, which is
    // still open; when nothing is left to roll back, the commit itself failed (SQLite ended
    // the transaction) and nothing of the batch is kept.
    let (PlanFailed::Read(e) | PlanFailed::Write(e)) = &failed;
    if rollback(conn).await || matches!(failed, PlanFailed::Read(_)) {
        tracing::debug!(error = %e, "a planned batch failed; writing it op by op");
        commit_each(conn, batch).await;
    } else {
        tracing::warn!(error = %e, "a group commit failed; none of its commits is kept");
        for request in batch {
            let _ = request.reply.send(Err(copy_error(e)));
        }
    }
}

/// Why the planned path of a batch failed.
enum PlanFailed {
    /// Starting the transaction or its reads: nothing was written.
    Read(sqlx::Error),
    /// The write or the commit.
    Write(sqlx::Error),
}

/// Ends what a failed call left open; whether a transaction was open.
async fn rollback(conn: &mut SqliteConnection) -> bool {
    match sqlx::query("ROLLBACK").execute(&mut *conn).await {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(error = %e, "nothing to roll back");
            false
        }
    }
}

/// The planned path of [`commit_batch`], commit included: the result of each op, in order;
/// an error when the batch's reads, its write or its commit failed (the caller then rolls
/// back what is still open).
async fn plan_batch(
    conn: &mut SqliteConnection,
    batch: &[CommitRequest],
) -> Result<Vec<StoreResult<Committed>>, PlanFailed> {
    let (mut conversations, mut duplicates) =
        read_batch(conn, batch).await.map_err(PlanFailed::Read)?;
    // As read: a conversation whose state columns the batch leaves as they are gets the
    // narrow update (see `write_and_commit`).
    let stored = conversations.clone();
    let now = now_ms();
    let mut results = Vec::with_capacity(batch.len());
    let mut written = Vec::new();
    // Conversations to update, in the order of their first change.
    let mut changed: Vec<Uuid> = Vec::new();
    for request in batch {
        let result = plan_in_batch(
            &mut conversations,
            &mut duplicates,
            request.conversation_id,
            request.guard,
            &request.op,
            now,
        );
        if let Ok(committed) = &result
            && committed.duplicate.is_none()
        {
            written.extend(committed.messages.iter().cloned());
            if !changed.contains(&request.conversation_id) {
                changed.push(request.conversation_id);
            }
        }
        results.push(result);
    }
    let (moved, advanced): (Vec<&Conversation>, Vec<&Conversation>) = changed
        .iter()
        .filter_map(|id| conversations.get(id))
        .partition(|c| {
            stored.get(&c.id).is_none_or(|s| {
                s.snapshot != c.snapshot
                    || s.handoff_reason != c.handoff_reason
                    || s.waiting_since != c.waiting_since
            })
        });
    write_and_commit(conn, &written, &moved, &advanced)
        .await
        .map_err(PlanFailed::Write)?;
    Ok(results)
}

/// Starts the batch's transaction and reads its conversations, by id, and the stored messages
/// carrying the client ids its posts name, by conversation and client id: three statements in
/// one call. `BEGIN IMMEDIATE` takes the write lock before the reads, so what they read cannot
/// change before the write (another process, such as `nexus-flow user add`, waits for it).
async fn read_batch(
    conn: &mut SqliteConnection,
    batch: &[CommitRequest],
) -> Result<
    (
        HashMap<Uuid, Conversation>,
        HashMap<(Uuid, String), Message>,
    ),
    sqlx::Error,
> {
    let mut ids: Vec<String> = batch
        .iter()
        .map(|r| r.conversation_id.to_string())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let wanted: Vec<(String, &str)> = batch
        .iter()
        .filter_map(|r| match &r.op {
            Op::Post { message, .. } => message
                .client_msg_id
                .as_deref()
                .map(|c| (r.conversation_id.to_string(), c)),
            Op::Transition { .. } => None,
        })
        .collect();
    let mut sql = format!(
        "BEGIN IMMEDIATE;
         SELECT 'conversation' AS batch_row, * FROM conversations WHERE id IN ({});",
        placeholders(ids.len(), "?")
    );
    if !wanted.is_empty() {
        sql.push_str(&format!(
            "WITH wanted (conversation_id, client_msg_id) AS (VALUES {})
             SELECT 'message' AS batch_row, m.* FROM wanted JOIN messages m
                ON m.conversation_id = wanted.conversation_id
               AND m.client_msg_id = wanted.client_msg_id",
            placeholders(wanted.len(), "(?, ?)")
        ));
    }
    let mut query = sqlx::query(&sql).persistent(false);
    for id in &ids {
        query = query.bind(id);
    }
    for (conversation_id, client_msg_id) in wanted {
        query = query.bind(conversation_id).bind(client_msg_id);
    }
    let mut conversations = HashMap::with_capacity(ids.len());
    let mut duplicates = HashMap::new();
    // The rows of both statements, each named by its `batch_row` column.
    for row in query.fetch_all(&mut *conn).await? {
        if row.try_get::<&str, _>("batch_row")? == "conversation" {
            let c = conversation_from_row(&row).map_err(corrupt)?;
            conversations.insert(c.id, c);
        } else {
            let m = message_from_row(&row).map_err(corrupt)?;
            if let Some(c) = m.client_msg_id.clone() {
                duplicates.insert((m.conversation_id, c), m);
            }
        }
    }
    Ok((conversations, duplicates))
}

/// Rows per `INSERT`: 13 arguments each stays far below SQLite's 32,766.
const INSERT_ROWS: usize = 500;

/// Every new entry of a batch and the new columns of each conversation it changed, then the
/// commit, in one call: multi-row `INSERT`s, an `UPDATE … FROM (VALUES …)` of the
/// conversations whose state changed (`moved`) and one of only the sequence and time of those
/// that just got new entries (`advanced`, most of a busy batch), `COMMIT`. A column an
/// `UPDATE` sets rewrites the entries of every index on it, even when the value stays the
/// same, so leaving the state columns out leaves `conversations_site_state` untouched (fewer
/// pages written per message). Only the commit when the batch changed nothing; a failing
/// statement stops the call before the commit.
async fn write_and_commit(
    conn: &mut SqliteConnection,
    messages: &[Message],
    moved: &[&Conversation],
    advanced: &[&Conversation],
) -> Result<(), sqlx::Error> {
    if moved.is_empty() && advanced.is_empty() {
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        return Ok(());
    }
    let mut sql = String::new();
    for chunk in messages.chunks(INSERT_ROWS) {
        sql.push_str(
            "INSERT INTO messages (id, conversation_id, seq, client_msg_id, author_kind,
                author_id, author_name, body, created_at, sources, confidence, choices, event)
             VALUES ",
        );
        sql.push_str(&placeholders(
            chunk.len(),
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ));
        sql.push_str(";\n");
    }
    if !moved.is_empty() {
        sql.push_str(&format!(
            "UPDATE conversations SET state = v.column2, assignee_id = v.column3,
                assignee_name = v.column4, handoff_reason = v.column5, last_seq = v.column6,
                updated_at = v.column7, waiting_since = v.column8
             FROM (VALUES {}) AS v WHERE conversations.id = v.column1;\n",
            placeholders(moved.len(), "(?, ?, ?, ?, ?, ?, ?, ?)")
        ));
    }
    if !advanced.is_empty() {
        sql.push_str(&format!(
            "UPDATE conversations SET last_seq = v.column2, updated_at = v.column3
             FROM (VALUES {}) AS v WHERE conversations.id = v.column1;\n",
            placeholders(advanced.len(), "(?, ?, ?)")
        ));
    }
    sql.push_str("COMMIT");
    let mut query = sqlx::query(&sql).persistent(false);
    for message in messages {
        let agent = match &message.author {
            Author::Agent(a) => Some(a),
            _ => None,
        };
        query = query
            .bind(message.id.to_string())
            .bind(message.conversation_id.to_string())
            .bind(seq_i64(message.seq))
            .bind(message.client_msg_id.clone())
            .bind(message.author.kind())
            .bind(agent.map(|a| a.id.to_string()))
            .bind(agent.map(|a| a.name.clone()))
            .bind(message.body.clone())
            .bind(message.created_at)
            .bind((!message.sources.is_empty()).then(|| to_json(&message.sources)))
            .bind(message.confidence.map(f64::from))
            .bind((!message.choices.is_empty()).then(|| to_json(&message.choices)))
            .bind(message.event.as_ref().map(to_json));
    }
    for c in moved {
        query = query
            .bind(c.id.to_string())
            .bind(c.snapshot.state.as_str())
            .bind(c.snapshot.assignee.as_ref().map(|a| a.id.to_string()))
            .bind(c.snapshot.assignee.as_ref().map(|a| a.name.clone()))
            .bind(c.handoff_reason.as_ref().map(to_json))
            .bind(seq_i64(c.last_seq))
            .bind(c.updated_at)
            .bind(c.waiting_since);
    }
    for c in advanced {
        query = query
            .bind(c.id.to_string())
            .bind(seq_i64(c.last_seq))
            .bind(c.updated_at);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// `n` copies of `one`, comma separated.
fn placeholders(n: usize, one: &str) -> String {
    let mut s = String::with_capacity(n * (one.len() + 2));
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(one);
    }
    s
}

/// A row the planned path cannot read: the batch fails (and runs again op by op, where the
/// op it belongs to gets the error).
fn corrupt(e: StoreError) -> sqlx::Error {
    sqlx::Error::Decode(e.to_string().into())
}

/// The op-by-op path of [`commit_batch`]: each request in a savepoint of one transaction,
/// commits it, then answers every caller: its own result when the transaction committed, an
/// error for all when it did not.
async fn commit_each(conn: &mut SqliteConnection, batch: Vec<CommitRequest>) {
    let mut tx = match conn.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            for request in batch {
                let _ = request.reply.send(Err(copy_error(&e)));
            }
            return;
        }
    };
    let mut done = Vec::with_capacity(batch.len());
    let mut requests = batch.into_iter();
    // A savepoint that cannot be rolled back leaves the transaction in doubt: then nothing
    // of the batch is kept.
    let mut broken = None;
    for request in requests.by_ref() {
        match apply(&mut tx, request.conversation_id, request.guard, request.op).await {
            Ok(committed) => done.push((request.reply, Ok(committed))),
            Err(Failed::Op(e)) => done.push((request.reply, Err(e))),
            Err(Failed::Batch(e)) => {
                done.push((request.reply, Err(copy_error(&e))));
                broken = Some(e);
                break;
            }
        }
    }
    let outcome = match broken {
        Some(e) => Err(e),
        None => tx.commit().await,
    };
    match outcome {
        Ok(()) => {
            for (reply, result) in done {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "a group commit failed; none of its commits is kept");
            for (reply, _) in done {
                let _ = reply.send(Err(copy_error(&e)));
            }
            for request in requests {
                let _ = request.reply.send(Err(copy_error(&e)));
            }
        }
    }
}

/// Why one commit of a batch failed.
enum Failed {
    /// This commit only: refused, not found, or rolled back to its savepoint.
    Op(StoreError),
    /// Its savepoint could not be rolled back: the whole batch is in doubt.
    Batch(sqlx::Error),
}

/// A copy of a database error for each caller of a failed batch (`sqlx::Error` is not
/// `Clone`), keeping what [`StoreError::is_transient`] looks at.
fn copy_error(e: &sqlx::Error) -> StoreError {
    StoreError::Database(match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(other.to_string()),
    })
}

/// One commit inside the batch's transaction, in its own savepoint and in two calls to the
/// connection's worker thread (each is a hand-off between threads, which costs more than the
/// statements themselves): the savepoint and the read of the conversation (with, in the same
/// statement, whether the posted `client_msg_id` is stored already); then the new entries,
/// the conversation's update and the savepoint's release. A refused op or a duplicate writes
/// nothing (its empty savepoint stays open until the batch commits); a failed write is rolled
/// back to the savepoint.
async fn apply(
    conn: &mut SqliteConnection,
    conversation_id: Uuid,
    guard: Guard,
    op: Op,
) -> Result<Committed, Failed> {
    match write(conn, conversation_id, guard, op).await {
        Ok(committed) => Ok(committed),
        Err((e, false)) => Err(Failed::Op(e)),
        Err((e, true)) => match sqlx::query("ROLLBACK TO op; RELEASE op")
            .execute(&mut *conn)
            .await
        {
            Ok(_) => Err(Failed::Op(e)),
            Err(rollback) => Err(Failed::Batch(rollback)),
        },
    }
}

/// [`apply`] without the rollback: the error, and whether something may have been written.
async fn write(
    conn: &mut SqliteConnection,
    conversation_id: Uuid,
    guard: Guard,
    op: Op,
) -> Result<Committed, (StoreError, bool)> {
    let id = conversation_id.to_string();
    let client_msg_id = match &op {
        Op::Post { message, .. } => message.client_msg_id.as_deref(),
        Op::Transition { .. } => None,
    };
    let read = |e: StoreError| (e, false);
    let row = sqlx::query(
        "SAVEPOINT op;
         SELECT c.*, (SELECT m.id FROM messages m
                      WHERE m.conversation_id = c.id AND m.client_msg_id = ?) AS duplicate_id
         FROM conversations c WHERE c.id = ?",
    )
    .bind(client_msg_id)
    .bind(&id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| read(e.into()))?
    .ok_or(read(StoreError::NotFound))?;
    let before = conversation_from_row(&row).map_err(read)?;
    guard.check(&before, &op).map_err(read)?;
    let duplicate_id: Option<String> = row.try_get("duplicate_id").map_err(|e| read(e.into()))?;
    if let Some(duplicate_id) = duplicate_id {
        let duplicate = sqlx::query("SELECT * FROM messages WHERE id = ?")
            .bind(duplicate_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| read(e.into()))?;
        return Ok(Committed {
            before: before.snapshot.clone(),
            conversation: before,
            messages: Vec::new(),
            duplicate: Some(message_from_row(&duplicate).map_err(read)?),
        });
    }

    let plan = plan(&before.snapshot, op, before.locale.as_deref()).map_err(|e| read(e.into()))?;
    let now = now_ms();
    let Rows {
        messages: stored,
        after,
        handoff_reason,
        waiting_since,
        last_seq: seq,
    } = plan.rows(&before, now);
    // One call: every entry, the conversation, and the savepoint's release (the statements
    // take their `?` arguments in order).
    let mut sql = String::new();
    for _ in &stored {
        sql.push_str(
            "INSERT INTO messages (id, conversation_id, seq, client_msg_id, author_kind,
                author_id, author_name, body, created_at, sources, confidence, choices, event)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);\n",
        );
    }
    sql.push_str(
        "UPDATE conversations SET state = ?, assignee_id = ?, assignee_name = ?,
            handoff_reason = ?, last_seq = ?, updated_at = ?, waiting_since = ?
         WHERE id = ?;
         RELEASE op",
    );
    let mut query = sqlx::query(&sql);
    for message in &stored {
        let agent = match &message.author {
            Author::Agent(a) => Some(a),
            _ => None,
        };
        query = query
            .bind(message.id.to_string())
            .bind(&id)
            .bind(seq_i64(message.seq))
            .bind(message.client_msg_id.clone())
            .bind(message.author.kind())
            .bind(agent.map(|a| a.id.to_string()))
            .bind(agent.map(|a| a.name.clone()))
            .bind(message.body.clone())
            .bind(now)
            .bind((!message.sources.is_empty()).then(|| to_json(&message.sources)))
            .bind(message.confidence.map(f64::from))
            .bind((!message.choices.is_empty()).then(|| to_json(&message.choices)))
            .bind(message.event.as_ref().map(to_json));
    }
    query
        .bind(after.state.as_str())
        .bind(after.assignee.as_ref().map(|a| a.id.to_string()))
        .bind(after.assignee.as_ref().map(|a| a.name.clone()))
        .bind(handoff_reason.as_ref().map(to_json))
        .bind(seq_i64(seq))
        .bind(now)
        .bind(waiting_since)
        .bind(&id)
        .execute(&mut *conn)
        .await
        .map_err(|e| (e.into(), true))?;

    Ok(Committed {
        conversation: Conversation {
            snapshot: after,
            handoff_reason,
            last_seq: seq,
            updated_at: now,
            waiting_since,
            ..before.clone()
        },
        before: before.snapshot,
        messages: stored,
        duplicate: None,
    })
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn pool_stats(&self) -> Option<(u32, usize)> {
        Some((
            self.writer.size() + self.reader.size(),
            self.writer.num_idle() + self.reader.num_idle(),
        ))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    #[instrument(skip_all, fields(site = %site.key))]
    async fn create_site(&self, site: &Site) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sites (id, key, name, settings, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(site.id.to_string())
        .bind(&site.key)
        .bind(&site.name)
        .bind(to_json(&site.settings))
        .bind(site.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn create_site_with_kb(&self, site: &Site, entries: &[KbEntry]) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let created = sqlx::query(
            "INSERT INTO sites (id, key, name, settings, created_at) VALUES (?, ?, ?, ?, ?)
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
        Ok(true)
    }

    async fn site_by_key(&self, key: &str) -> StoreResult<Option<Site>> {
        sqlx::query("SELECT * FROM sites WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(site_from_row)
            .transpose()
    }

    async fn site(&self, id: Uuid) -> StoreResult<Option<Site>> {
        sqlx::query("SELECT * FROM sites WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(site_from_row)
            .transpose()
    }

    async fn sites(&self) -> StoreResult<Vec<Site>> {
        sqlx::query("SELECT * FROM sites ORDER BY created_at")
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(site_from_row)
            .collect()
    }

    async fn kb_entries(&self, site_id: Uuid) -> StoreResult<Vec<KbEntry>> {
        sqlx::query("SELECT * FROM kb_entries WHERE site_id = ? ORDER BY created_at, id")
            .bind(site_id.to_string())
            .fetch_all(&self.reader)
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
        let result = sqlx::query("DELETE FROM kb_entries WHERE site_id = ? AND id = ?")
            .bind(site_id.to_string())
            .bind(id)
            .execute(&self.writer)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
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
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(site_id.to_string())
        .bind(hash_token(&token))
        .bind(&info.name)
        .bind(&info.email)
        .bind(now)
        .bind(now)
        .execute(&self.writer)
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
        let row = sqlx::query("SELECT * FROM visitors WHERE token_hash = ? AND site_id = ?")
            .bind(hash_token(token))
            .bind(site_id.to_string())
            .fetch_optional(&self.reader)
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
        let result = sqlx::query("UPDATE visitors SET email = ? WHERE id = ?")
            .bind(email)
            .bind(visitor_id.to_string())
            .execute(&self.writer)
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
            "UPDATE visitors SET external_id = ?, name = COALESCE(?, name), email = COALESCE(?, email)
             WHERE id = ? AND (external_id IS NULL OR external_id = ?)",
        )
        .bind(external_id)
        .bind(name)
        .bind(email)
        .bind(visitor_id.to_string())
        .bind(external_id)
        .execute(&self.writer)
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
                created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)",
        )
        .bind(conversation.id.to_string())
        .bind(site_id.to_string())
        .bind(visitor_id.to_string())
        .bind(conversation.snapshot.state.as_str())
        .bind(page_url)
        .bind(locale)
        .bind(now)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(conversation)
    }

    async fn conversation(&self, id: Uuid) -> StoreResult<Option<Conversation>> {
        sqlx::query("SELECT * FROM conversations WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(conversation_from_row)
            .transpose()
    }

    async fn latest_conversation(&self, visitor_id: Uuid) -> StoreResult<Option<Conversation>> {
        sqlx::query(
            "SELECT * FROM conversations WHERE visitor_id = ? ORDER BY updated_at DESC LIMIT 1",
        )
        .bind(visitor_id.to_string())
        .fetch_optional(&self.reader)
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
            "SELECT * FROM conversations WHERE visitor_id = ? ORDER BY updated_at DESC LIMIT ?",
        )
        .bind(visitor_id.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
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
            "SELECT * FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(conversation_id.to_string())
        .bind(seq_i64(after_seq))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(message_from_row)
        .collect()
    }

    async fn last_messages(&self, conversation_id: Uuid, limit: u32) -> StoreResult<Vec<Message>> {
        let mut messages = sqlx::query(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(conversation_id.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(message_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        messages.reverse();
        Ok(messages)
    }

    async fn message(&self, conversation_id: Uuid, id: Uuid) -> StoreResult<Option<Message>> {
        sqlx::query("SELECT * FROM messages WHERE conversation_id = ? AND id = ?")
            .bind(conversation_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.reader)
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
             WHERE c.visitor_id = ? AND m.client_msg_id = ? AND m.author_kind = 'visitor'
             LIMIT 1",
        )
        .bind(visitor_id.to_string())
        .bind(client_msg_id)
        .fetch_optional(&self.reader)
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
            "SELECT COUNT(*) FROM conversations WHERE site_id = ? AND state = 'waiting'
             AND (waiting_since < ? OR (waiting_since = ? AND id < ?))",
        )
        .bind(conversation.site_id.to_string())
        .bind(since)
        .bind(since)
        .bind(conversation.id.to_string())
        .fetch_one(&self.reader)
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
        // The writer task ends only when the store is dropped or its pool closed.
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
            "SELECT * FROM conversations WHERE site_id = ? AND state IN ('ai', 'waiting', 'human')
             ORDER BY updated_at DESC LIMIT ?",
        )
        .bind(site_id.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(conversation_from_row)
        .collect()
    }

    async fn create_user(&self, user: &User, password: &PasswordHash) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (id, site_id, email, name, role, password_hash, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(user.site_id.to_string())
        .bind(&user.email)
        .bind(&user.name)
        .bind(role_str(user.role))
        .bind(&password.0)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
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
        let row = sqlx::query("SELECT * FROM users WHERE site_id = ? AND email = ?")
            .bind(site_id.to_string())
            .bind(email.to_lowercase())
            .fetch_optional(&self.reader)
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
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(&password.0)
            .bind(user_id.to_string())
            .execute(&self.writer)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(user_id.to_string())
            .execute(&self.writer)
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
        sqlx::query("DELETE FROM sessions WHERE expires_at < ?")
            .bind(now)
            .execute(&self.writer)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(user_id.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn session_user(&self, token_hash: &str, now: Millis) -> StoreResult<Option<User>> {
        sqlx::query(
            "SELECT u.* FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn update_site_settings(
        &self,
        site_id: Uuid,
        settings: &SiteSettings,
    ) -> StoreResult<()> {
        let result = sqlx::query("UPDATE sites SET settings = ? WHERE id = ?")
            .bind(to_json(settings))
            .bind(site_id.to_string())
            .execute(&self.writer)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn create_draft(&self, draft: &Draft, question: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO drafts (id, conversation_id, reply_to_seq, question, body, sources,
                confidence, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
        )
        .bind(draft.id.to_string())
        .bind(draft.conversation_id.to_string())
        .bind(seq_i64(draft.reply_to_seq))
        .bind(question)
        .bind(&draft.body)
        .bind((!draft.sources.is_empty()).then(|| to_json(&draft.sources)))
        .bind(draft.confidence.map(f64::from))
        .bind(draft.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn draft(&self, id: Uuid) -> StoreResult<Option<(Draft, String)>> {
        let row = sqlx::query("SELECT * FROM drafts WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.writer)
            .await?;
        row.map(|row| Ok((draft_from_row(&row)?, row.try_get("question")?)))
            .transpose()
    }

    async fn pending_drafts(&self, conversation_id: Uuid) -> StoreResult<Vec<Draft>> {
        sqlx::query(
            "SELECT * FROM drafts WHERE conversation_id = ? AND status = 'pending' ORDER BY created_at",
        )
        .bind(conversation_id.to_string())
        .fetch_all(&self.reader)
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
            "UPDATE drafts SET status = ?, reviewed_by = ?, reviewed_at = ?
             WHERE id = ? AND status = ?",
        )
        .bind(to)
        .bind(reviewer.map(|r| r.to_string()))
        .bind(now_ms())
        .bind(id.to_string())
        .bind(from)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn add_note(&self, note: &Note) -> StoreResult<(Note, bool)> {
        let inserted = sqlx::query(
            "INSERT INTO notes (id, conversation_id, agent_id, agent_name, client_msg_id, body, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (conversation_id, client_msg_id) DO NOTHING",
        )
        .bind(note.id.to_string())
        .bind(note.conversation_id.to_string())
        .bind(note.agent.id.to_string())
        .bind(&note.agent.name)
        .bind(&note.client_msg_id)
        .bind(&note.body)
        .bind(note.created_at)
        .execute(&self.writer)
        .await?
        .rows_affected();
        let row =
            sqlx::query("SELECT * FROM notes WHERE conversation_id = ? AND client_msg_id = ?")
                .bind(note.conversation_id.to_string())
                .bind(&note.client_msg_id)
                .fetch_one(&self.writer)
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
             SELECT id, conversation_id, ?, ? FROM messages
             WHERE id = ? AND conversation_id = ? AND author_kind = 'ai'
             ON CONFLICT (message_id) DO UPDATE SET helpful = excluded.helpful",
        )
        .bind(helpful)
        .bind(now_ms())
        .bind(message_id.to_string())
        .bind(conversation_id.to_string())
        .execute(&self.writer)
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
            "INSERT INTO csat (conversation_id, score, comment, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (conversation_id) DO UPDATE SET score = excluded.score,
                comment = excluded.comment, created_at = excluded.created_at",
        )
        .bind(conversation_id.to_string())
        .bind(i64::from(score))
        .bind(comment)
        .bind(now_ms())
        .execute(&self.writer)
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
                origin, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
        )
        .bind(entry.id.to_string())
        .bind(site_id.to_string())
        .bind(&entry.question)
        .bind(&entry.answer)
        .bind(entry.entry_id.as_deref())
        .bind(entry.conversation_id.map(|c| c.to_string()))
        .bind(entry.origin.as_str())
        .bind(entry.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn pending_entries(&self, site_id: Uuid) -> StoreResult<Vec<crate::model::PendingEntry>> {
        sqlx::query(
            "SELECT * FROM learned_entries WHERE site_id = ? AND status = 'pending'
             ORDER BY created_at, id",
        )
        .bind(site_id.to_string())
        .fetch_all(&self.writer)
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
            "UPDATE learned_entries SET status = ?, reviewed_by = ?, reviewed_at = ?
             WHERE id = ? AND site_id = ? AND status = 'pending'",
        )
        .bind(status)
        .bind(reviewer.to_string())
        .bind(now_ms())
        .bind(id.to_string())
        .bind(site_id.to_string())
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn canned_responses(&self, site_id: Uuid) -> StoreResult<Vec<crate::model::Canned>> {
        sqlx::query(
            "SELECT id, title, body FROM canned_responses WHERE site_id = ? ORDER BY title, id",
        )
        .bind(site_id.to_string())
        .fetch_all(&self.reader)
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
             VALUES (?, ?, ?, ?, ?, ?)
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
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn delete_canned(&self, site_id: Uuid, id: Uuid) -> StoreResult<()> {
        let result = sqlx::query("DELETE FROM canned_responses WHERE site_id = ? AND id = ?")
            .bind(site_id.to_string())
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn import_kb_entries(&self, site_id: Uuid, entries: &[KbEntry]) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        write_kb_entries(&mut tx, site_id, entries, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn conversations_created_between(
        &self,
        site_id: Uuid,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<Conversation>> {
        sqlx::query(
            "SELECT * FROM conversations WHERE site_id = ? AND created_at >= ? AND created_at < ?
             ORDER BY created_at, id",
        )
        .bind(site_id.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(&self.reader)
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
            &self.reader,
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
            &self.reader,
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
            "SELECT created_at FROM kb_entries WHERE site_id = ? AND id LIKE 'learned-%'
             AND created_at >= ? AND created_at < ? ORDER BY created_at",
        )
        .bind(site_id.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<i64, _>("created_at")?))
            .collect()
    }

    async fn csat(&self, conversation_id: Uuid) -> StoreResult<Option<crate::model::Csat>> {
        let row =
            sqlx::query("SELECT score, comment, created_at FROM csat WHERE conversation_id = ?")
                .bind(conversation_id.to_string())
                .fetch_optional(&self.reader)
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
             WHERE site_id = ? AND id = ?",
        )
        .bind(site_id.to_string())
        .bind(visitor_id.to_string())
        .fetch_optional(&self.reader)
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
        let result = sqlx::query("DELETE FROM visitors WHERE site_id = ? AND id = ?")
            .bind(site_id.to_string())
            .bind(visitor_id.to_string())
            .execute(&self.writer)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
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

fn note_from_row(row: &SqliteRow) -> StoreResult<Note> {
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

fn draft_from_row(row: &SqliteRow) -> StoreResult<Draft> {
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

fn pending_from_row(row: &SqliteRow) -> StoreResult<crate::model::PendingEntry> {
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
    use nexus_shared::{ConversationState, StateError};

    use super::*;
    use crate::model::NewMessage;

    fn post(body: &str, client_msg_id: &str) -> Op {
        Op::Post {
            message: NewMessage {
                client_msg_id: Some(client_msg_id.to_owned()),
                ..NewMessage::new(Author::Visitor, body)
            },
            reopen_to: ConversationState::Ai,
            notices: crate::conversation::notices::NOTICES,
        }
    }

    /// A new store at `path` with a site, a visitor and one conversation of theirs.
    async fn store_with_conversation(path: &std::path::Path) -> (SqliteStore, Conversation) {
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let site = Site {
            id: Uuid::new_v4(),
            key: "batch".into(),
            name: "Batch".into(),
            settings: SiteSettings::default(),
            created_at: now_ms(),
        };
        store.create_site(&site).await.unwrap();
        let (visitor, _) = store
            .create_visitor(site.id, &VisitorInfo::default())
            .await
            .unwrap();
        let conversation = store
            .create_conversation(site.id, visitor.id, None, None)
            .await
            .unwrap();
        (store, conversation)
    }

    /// A batch whose one write fails (a trigger refuses one body) runs again op by op: that
    /// op alone gets an error, the others commit, in order, and a refusal, a repeated client
    /// id and an unknown conversation in the same batch each get their own answer.
    #[tokio::test]
    async fn a_failing_write_fails_its_op_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, conversation) = store_with_conversation(&dir.path().join("batch.db")).await;
        sqlx::query(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON messages WHEN NEW.body = 'boom'
             BEGIN SELECT RAISE(ABORT, 'boom refused'); END",
        )
        .execute(&store.writer)
        .await
        .unwrap();

        let ops = [
            post("one", "c1"),
            post("boom", "c2"),
            post("two", "c3"),
            post("one again", "c1"),
            Op::Post {
                message: NewMessage::new(Author::Ai, "silenced?"),
                reopen_to: ConversationState::Ai,
                notices: crate::conversation::notices::NOTICES,
            },
        ];
        let id = conversation.id;
        let (results, unknown) = tokio::join!(
            futures_util::future::join_all(ops.into_iter().map(|op| store.commit(id, op))),
            store.commit(Uuid::new_v4(), post("lost", "c9")),
        );
        assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
        let seq = |i: usize| match &results[i] {
            Ok(c) => c.messages.last().map(|m| m.seq),
            Err(e) => panic!("op {i}: {e}"),
        };
        assert_eq!(seq(0), Some(1));
        assert!(
            results[1].is_err(),
            "the refused write fails: {:?}",
            results[1]
        );
        assert_eq!(seq(2), Some(2));
        let again = results[3].as_ref().unwrap();
        assert_eq!(again.duplicate.as_ref().map(|m| m.seq), Some(1));
        assert_eq!(seq(4), Some(3), "the AI may answer in the AI state");

        let bodies: Vec<String> = store
            .messages_after(id, 0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(bodies, ["one", "two", "silenced?"]);
        assert_eq!(store.conversation(id).await.unwrap().unwrap().last_seq, 3);

        // Without the trigger, the same mix goes through the planned path, with the same
        // answers: a refusal and a repeated client id write nothing.
        sqlx::query("DROP TRIGGER refuse_boom")
            .execute(&store.writer)
            .await
            .unwrap();
        let taken = store
            .commit(
                id,
                Op::Transition {
                    transition: nexus_shared::Transition::TakenOver {
                        agent: AgentRef {
                            id: Uuid::new_v4(),
                            name: "Ana".into(),
                        },
                    },
                    notice: None,
                    notices: crate::conversation::notices::NOTICES,
                },
            )
            .await
            .unwrap();
        assert_eq!(taken.conversation.last_seq, 4);
        let ops = [
            post("three", "c4"),
            Op::Post {
                message: NewMessage::new(Author::Ai, "too late"),
                reopen_to: ConversationState::Ai,
                notices: crate::conversation::notices::NOTICES,
            },
            post("three again", "c4"),
            post("four", "c5"),
        ];
        let results =
            futures_util::future::join_all(ops.into_iter().map(|op| store.commit(id, op))).await;
        assert_eq!(results[0].as_ref().unwrap().messages[0].seq, 5);
        assert!(
            matches!(
                results[1],
                Err(StoreError::State(StateError::AiSilenced(_)))
            ),
            "{:?}",
            results[1]
        );
        let again = results[2].as_ref().unwrap();
        assert_eq!(again.duplicate.as_ref().map(|m| m.seq), Some(5));
        assert_eq!(results[3].as_ref().unwrap().messages[0].seq, 6);
        let c = store.conversation(id).await.unwrap().unwrap();
        assert_eq!(
            (c.last_seq, c.snapshot.state),
            (6, ConversationState::Human)
        );
        assert_eq!(store.messages_after(id, 4, 10).await.unwrap().len(), 2);
    }

    /// The log is copied into the database file in the background soon after commits, long
    /// before the writer's own checkpoint at [`WAL_CHECKPOINT_PAGES`] would: the database file
    /// itself grows with what was committed, while the log is far from that size.
    #[tokio::test]
    async fn commits_reach_the_database_file_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.db");
        let (store, conversation) = store_with_conversation(&path).await;
        // Whatever earlier writes left in the log is copied first, so that the file's size
        // below is what this test's commits add.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&store.writer)
            .await
            .unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let body = "a message long enough to fill pages quickly ".repeat(20);
        for i in 0..200 {
            store
                .commit(conversation.id, post(&body, &format!("c{i}")))
                .await
                .unwrap();
        }
        let log_pages = std::fs::metadata(dir.path().join("ckpt.db-wal"))
            .unwrap()
            .len()
            / 4096;
        assert!(
            log_pages < u64::from(WAL_CHECKPOINT_PAGES) / 2,
            "the writer's checkpoint is not what copies here ({log_pages} pages in the log)"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = std::fs::metadata(&path).unwrap().len();
            // 200 messages of 900 bytes: at least 150 KB of rows.
            if now >= before + 150_000 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the database file did not grow: {before} -> {now} bytes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stored = store.messages_after(conversation.id, 0, 500).await.unwrap();
        assert_eq!(stored.len(), 200);
    }
}
