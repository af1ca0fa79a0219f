//! The SQLite backend: the zero-setup default. WAL mode; one writer connection (SQLite allows
//! one writer at a time, and a single writer connection avoids busy errors on lock upgrades)
//! and a pool of readers. The queries both backends accept are in [`super::common`]; this
//! module holds the pools, the group commit and the checkpointer.
//!
//! Conversation commits go through a group commit: one task takes every
//! [`Store::commit`](super::Store::commit) waiting (at most [`MAX_BATCH`]), plans them in
//! memory and writes them in one transaction
//! (an op the state machine refuses writes nothing and gets its own error; when the write
//! fails, the batch runs again with a savepoint per op, so a failing op rolls back alone),
//! commits once (one fsync with `synchronous = FULL` for the whole batch), and only
//! then answers each caller. A commit is therefore durable before its caller hears of it, as
//! before; a lone commit waits for no timer, and commits arriving while a batch is being
//! written form the next batch.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use nexus_shared::{Author, Message};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, watch};
use tracing::instrument;
use uuid::Uuid;

use super::common::{
    Backend, CommitRequest, conversation_from_row, message_from_row, seq_i64, to_json,
};
use super::{
    Committed, Conversation, Guard, Op, Rows, StoreError, StoreResult, now_ms, plan, plan_in_batch,
};

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
            // Deleted rows are overwritten with zeros, not only unlinked: a privacy deletion
            // leaves no readable copy in the database file (see `clear_deleted` for the log).
            .pragma("secure_delete", "ON")
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

impl Backend for SqliteStore {
    type Db = sqlx::Sqlite;
    const NAME: &'static str = "sqlite";
    const NUMBERED: char = '?';

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn connections(&self) -> (u32, usize) {
        (
            self.writer.size() + self.reader.size(),
            self.writer.num_idle() + self.reader.num_idle(),
        )
    }

    fn commits(&self) -> &mpsc::Sender<CommitRequest> {
        &self.commits
    }

    /// `secure_delete` (set on every connection) has zeroed the deleted rows in the pages the
    /// transaction wrote, but the log still holds the pages as they were before: a truncating
    /// checkpoint copies the zeroed pages into the database file and empties the log. It
    /// waits for readers (they are short); after 20 busy tries it gives up with an error.
    async fn clear_deleted(&self) -> StoreResult<()> {
        for _ in 0..20 {
            let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.writer)
                .await?;
            let busy: i64 = sqlx::Row::try_get(&row, 0)?;
            if busy == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(StoreError::Database(sqlx::Error::Protocol(
            "the log could not be truncated after a privacy deletion (readers kept it busy)".into(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use nexus_shared::{AgentRef, ConversationState, StateError, VisitorInfo};

    use super::*;
    use crate::model::{NewMessage, Site, SiteSettings};
    use crate::store::Store;

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
