//! What the two backends share: every query both accept, written once (with `$1…`
//! parameters, which sqlx binds by number on SQLite too), and the mapping of rows to records.
//! Both schemas give a column the same kind of type (ids, enums and JSON are text, times and
//! counters 64-bit integers, confidences doubles; only `feedback.helpful` is a BOOLEAN in
//! PostgreSQL and an INTEGER in SQLite, and sqlx binds a `bool` to either), so a row reads the
//! same from both.
//!
//! [`Store`] is implemented here once, for every [`Backend`]. A backend brings what really
//! differs: its pools, its group commit (which [`Store::commit`] queues on), and what it tells
//! other instances after a change; its dialect's statements stay in its own module.

use std::collections::HashMap;

use nexus_shared::{
    AgentRef, Author, ConversationState, Draft, HandoffReason, Message, Millis, Note, Role,
    Snapshot, VisitorInfo,
};
use sha2::{Digest, Sha256};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use tokio::sync::{mpsc, oneshot};
use tracing::instrument;
use uuid::Uuid;

use super::{
    Committed, Conversation, ConversationFacts, Guard, KnowledgeSource, Op, Passage,
    PassageChanges, PasswordHash, Site, SiteSettings, Store, StoreError, StoreResult, User,
    Visitor, agent_from_columns, conversation_facts, csat_score, now_ms,
};
use crate::model::remote::SessionEnd;
use nexus_engine::KbEntry;

/// A database the shared queries run on: SQLite or PostgreSQL.
pub(crate) trait Driver: Database<QueryResult: RowsAffected, Row: Columns> {}

impl Driver for sqlx::Sqlite {}
impl Driver for sqlx::Postgres {}

/// What a backend brings to the shared [`Store`] implementation.
pub(crate) trait Backend: Send + Sync + 'static {
    type Db: Driver;
    /// `"sqlite"` or `"postgres"`.
    const NAME: &'static str;
    /// How a numbered parameter starts in a long statement: `$` for PostgreSQL; `?` for
    /// SQLite, where `$1` is a *named* parameter and each new name is looked up among all
    /// earlier ones (a statement of thousands of them costs seconds to prepare).
    const NUMBERED: char = '$';

    /// The pool reads go to.
    fn reader(&self) -> &Pool<Self::Db>;
    /// The pool writes go to (and the reads that must see them at once).
    fn writer(&self) -> &Pool<Self::Db>;
    /// Open and idle connections of the pools.
    fn connections(&self) -> (u32, usize);
    /// The queue of the backend's group-commit task.
    fn commits(&self) -> &mpsc::Sender<CommitRequest>;

    /// Called after a site's knowledge base changed (PostgreSQL tells the other instances;
    /// SQLite has none).
    fn kb_changed(&self, _site: Uuid) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
    /// Called after a privacy deletion has committed: clears the deleted rows' bytes from the
    /// database files (SQLite truncates its log; PostgreSQL vacuums the tables).
    fn clear_deleted(&self) -> impl Future<Output = StoreResult<()>> + Send;
    /// Called after a site's settings changed, as [`Backend::kb_changed`].
    fn settings_changed(&self, _site: Uuid) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
    /// Called after sessions were deleted, as [`Backend::kb_changed`]: every instance closes
    /// their agent connections (the caller's own instance is told by the caller).
    fn sessions_ended(&self, _ended: SessionEnd) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

/// One caller's commit, waiting for the group-commit task.
pub(crate) struct CommitRequest {
    pub(crate) conversation_id: Uuid,
    pub(crate) guard: Guard,
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<StoreResult<Committed>>,
}

/// A value both drivers bind and read as the same Rust type.
pub(crate) trait Value<DB: Database>:
    for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send
{
}

impl<DB: Database, T> Value<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send
{
}

/// The rows a statement changed (each driver's result has it, under no common trait).
pub(crate) trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// A row of either driver, read by column name as the schemas store it.
pub(crate) trait Columns {
    fn text(&self, col: &str) -> sqlx::Result<String>;
    fn opt_text(&self, col: &str) -> sqlx::Result<Option<String>>;
    fn int(&self, col: &str) -> sqlx::Result<i64>;
    fn opt_int(&self, col: &str) -> sqlx::Result<Option<i64>>;
    fn opt_real(&self, col: &str) -> sqlx::Result<Option<f64>>;
}

impl<R: Row> Columns for R
where
    for<'a> &'a str: ColumnIndex<R>,
    String: Value<R::Database>,
    i64: Value<R::Database>,
    f64: Value<R::Database>,
{
    fn text(&self, col: &str) -> sqlx::Result<String> {
        self.try_get(col)
    }

    fn opt_text(&self, col: &str) -> sqlx::Result<Option<String>> {
        self.try_get(col)
    }

    fn int(&self, col: &str) -> sqlx::Result<i64> {
        self.try_get(col)
    }

    fn opt_int(&self, col: &str) -> sqlx::Result<Option<i64>> {
        self.try_get(col)
    }

    fn opt_real(&self, col: &str) -> sqlx::Result<Option<f64>> {
        self.try_get(col)
    }
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("vt_{}", hex::encode(bytes))
}

fn uuid_col(row: &impl Columns, col: &str) -> StoreResult<Uuid> {
    let s = row.text(col)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn json_col<T: serde::de::DeserializeOwned>(
    row: &impl Columns,
    col: &str,
) -> StoreResult<Option<T>> {
    let s = row.opt_text(col)?;
    s.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))))
        .transpose()
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn site_from_row(row: &impl Columns) -> StoreResult<Site> {
    Ok(Site {
        id: uuid_col(row, "id")?,
        key: row.text("key")?,
        name: row.text("name")?,
        settings: json_col::<SiteSettings>(row, "settings")?.unwrap_or_default(),
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn conversation_from_row(row: &impl Columns) -> StoreResult<Conversation> {
    let state = row.text("state")?;
    let state = ConversationState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("state {state:?}")))?;
    let assignee = agent_from_columns(row.opt_text("assignee_id")?, row.opt_text("assignee_name")?);
    let last_seq = row.int("last_seq")?;
    Ok(Conversation {
        id: uuid_col(row, "id")?,
        site_id: uuid_col(row, "site_id")?,
        visitor_id: uuid_col(row, "visitor_id")?,
        snapshot: Snapshot { state, assignee },
        handoff_reason: json_col::<HandoffReason>(row, "handoff_reason")?,
        last_seq: u64::try_from(last_seq).unwrap_or(0),
        page_url: row.opt_text("page_url")?,
        locale: row.opt_text("locale")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        waiting_since: row.opt_int("waiting_since")?,
    })
}

pub(crate) fn message_from_row(row: &impl Columns) -> StoreResult<Message> {
    let kind = row.text("author_kind")?;
    let author = match kind.as_str() {
        "visitor" => Author::Visitor,
        "ai" => Author::Ai,
        "system" => Author::System,
        "agent" => Author::Agent(
            agent_from_columns(row.opt_text("author_id")?, row.opt_text("author_name")?)
                .ok_or_else(|| StoreError::Corrupt("agent author without id".into()))?,
        ),
        other => return Err(StoreError::Corrupt(format!("author {other:?}"))),
    };
    let seq = row.int("seq")?;
    Ok(Message {
        id: uuid_col(row, "id")?,
        conversation_id: uuid_col(row, "conversation_id")?,
        seq: u64::try_from(seq).unwrap_or(0),
        client_msg_id: row.opt_text("client_msg_id")?,
        author,
        body: row.text("body")?,
        created_at: row.int("created_at")?,
        sources: json_col(row, "sources")?.unwrap_or_default(),
        confidence: row.opt_real("confidence")?.map(|c| c as f32),
        choices: json_col(row, "choices")?.unwrap_or_default(),
        event: json_col(row, "event")?,
    })
}

fn kb_from_row(row: &impl Columns) -> StoreResult<KbEntry> {
    Ok(KbEntry {
        url: None,
        id: row.text("id")?,
        title: row.text("title")?,
        answer: row.text("answer")?,
        examples: json_col(row, "examples")?.unwrap_or_default(),
        escalate: json_col(row, "escalate")?,
    })
}

fn source_from_row(row: &impl Columns) -> StoreResult<KnowledgeSource> {
    let kind = row.text("kind")?;
    Ok(KnowledgeSource {
        id: uuid_col(row, "id")?,
        kind: nexus_shared::SourceKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("source kind {kind:?}")))?,
        slug: row.text("slug")?,
        title: row.text("title")?,
        url: row.opt_text("url")?,
        format: row.text("format")?,
        passages: u32::try_from(row.int("passages")?).unwrap_or(u32::MAX),
        last_error: row.opt_text("last_error")?,
        fetched_at: row.opt_int("fetched_at")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

fn passage_from_row(row: &impl Columns) -> StoreResult<Passage> {
    Ok(Passage {
        id: row.text("id")?,
        title: row.text("title")?,
        body: row.text("body")?,
        url: row.opt_text("url")?,
    })
}

/// A source with its passage count.
const SOURCE_SELECT: &str = "SELECT s.*, (SELECT COUNT(*) FROM source_passages p
    WHERE p.source_id = s.id) AS passages FROM knowledge_sources s";

/// Inserts or replaces `entries` of `site_id`'s knowledge base, inside the caller's
/// transaction.
async fn write_kb_entries<DB>(
    conn: &mut DB::Connection,
    site_id: Uuid,
    entries: &[KbEntry],
    now: Millis,
) -> sqlx::Result<()>
where
    DB: Driver,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    String: Value<DB>,
    Option<String>: Value<DB>,
    i64: Value<DB>,
{
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
async fn period_rows<DB>(
    pool: &Pool<DB>,
    select_from: &str,
    then: &str,
    site_id: Uuid,
    from: Millis,
    to: Millis,
) -> StoreResult<Vec<DB::Row>>
where
    DB: Driver,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    String: Value<DB>,
    i64: Value<DB>,
{
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

/// Rows of `select_from` (a table aliased `x` with a `conversation_id` column) that belong
/// to the visitor's conversations on the site, in `order`.
async fn visitor_rows<DB>(
    pool: &Pool<DB>,
    select_from: &str,
    order: &str,
    site_id: String,
    visitor_id: String,
) -> StoreResult<Vec<DB::Row>>
where
    DB: Driver,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    String: Value<DB>,
{
    Ok(sqlx::query(&format!(
        "{select_from} JOIN conversations c ON c.id = x.conversation_id
         WHERE c.site_id = $1 AND c.visitor_id = $2 ORDER BY {order}"
    ))
    .bind(site_id)
    .bind(visitor_id)
    .fetch_all(pool)
    .await?)
}

/// `insert_into VALUES ($1, …, $columns), (…), …` for `rows` rows: one statement, numbered
/// parameters (`numbered` is [`Backend::NUMBERED`]), row after row.
fn multi_row_insert(numbered: char, insert_into: &str, columns: usize, rows: usize) -> String {
    use std::fmt::Write;
    let mut sql = format!("{insert_into} VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..columns {
            let sep = if col == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}{numbered}{}", row * columns + col + 1);
        }
        sql.push(')');
    }
    sql
}

pub(crate) fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The one implementation of [`Store`]. The bounds name what its queries bind and read;
/// both drivers have them all.
#[async_trait::async_trait]
impl<B, DB> Store for B
where
    B: Backend<Db = DB>,
    DB: Driver,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    String: Value<DB>,
    Option<String>: Value<DB>,
    i64: Value<DB>,
    Option<i64>: Value<DB>,
    Option<f64>: Value<DB>,
    bool: Value<DB>,
{
    fn backend(&self) -> &'static str {
        B::NAME
    }

    fn pool_stats(&self) -> Option<(u32, usize)> {
        Some(self.connections())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(self.reader()).await?;
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
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn create_site_with_kb(&self, site: &Site, entries: &[KbEntry]) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await?;
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
        write_kb_entries::<DB>(&mut tx, site.id, entries, now_ms()).await?;
        tx.commit().await?;
        self.kb_changed(site.id).await;
        Ok(true)
    }

    async fn site_by_key(&self, key: &str) -> StoreResult<Option<Site>> {
        sqlx::query("SELECT * FROM sites WHERE key = $1")
            .bind(key)
            .fetch_optional(self.reader())
            .await?
            .as_ref()
            .map(site_from_row)
            .transpose()
    }

    async fn site(&self, id: Uuid) -> StoreResult<Option<Site>> {
        sqlx::query("SELECT * FROM sites WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.reader())
            .await?
            .as_ref()
            .map(site_from_row)
            .transpose()
    }

    async fn sites(&self) -> StoreResult<Vec<Site>> {
        sqlx::query("SELECT * FROM sites ORDER BY created_at")
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(site_from_row)
            .collect()
    }

    async fn kb_entries(&self, site_id: Uuid) -> StoreResult<Vec<KbEntry>> {
        sqlx::query("SELECT * FROM kb_entries WHERE site_id = $1 ORDER BY created_at, id")
            .bind(site_id.to_string())
            .fetch_all(self.reader())
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
            .execute(self.writer())
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.kb_changed(site_id).await;
        Ok(())
    }

    #[instrument(skip_all)]
    async fn knowledge(&self, site_id: Uuid) -> StoreResult<Vec<KbEntry>> {
        let mut entries = self.kb_entries(site_id).await?;
        let passages = sqlx::query(
            "SELECT p.id, p.title, p.body, p.url FROM source_passages p
             JOIN knowledge_sources s ON s.id = p.source_id
             WHERE p.site_id = $1 ORDER BY s.created_at, s.id, p.position",
        )
        .bind(site_id.to_string())
        .fetch_all(self.reader())
        .await?;
        for row in &passages {
            entries.push(passage_from_row(row)?.entry());
        }
        Ok(entries)
    }

    async fn sources(&self, site_id: Uuid) -> StoreResult<Vec<KnowledgeSource>> {
        sqlx::query(&format!(
            "{SOURCE_SELECT} WHERE s.site_id = $1 ORDER BY s.created_at, s.id"
        ))
        .bind(site_id.to_string())
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(source_from_row)
        .collect()
    }

    async fn source(&self, site_id: Uuid, id: Uuid) -> StoreResult<Option<KnowledgeSource>> {
        sqlx::query(&format!(
            "{SOURCE_SELECT} WHERE s.site_id = $1 AND s.id = $2"
        ))
        .bind(site_id.to_string())
        .bind(id.to_string())
        .fetch_optional(self.writer())
        .await?
        .as_ref()
        .map(source_from_row)
        .transpose()
    }

    async fn source_passages(&self, site_id: Uuid, source_id: Uuid) -> StoreResult<Vec<Passage>> {
        sqlx::query(
            "SELECT id, title, body, url FROM source_passages
             WHERE site_id = $1 AND source_id = $2 ORDER BY position",
        )
        .bind(site_id.to_string())
        .bind(source_id.to_string())
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(passage_from_row)
        .collect()
    }

    #[instrument(skip_all, fields(site = %site_id, source = %source.id, passages = passages.len()))]
    async fn save_source(
        &self,
        site_id: Uuid,
        source: &KnowledgeSource,
        passages: &[Passage],
    ) -> StoreResult<PassageChanges> {
        let now = now_ms();
        let site = site_id.to_string();
        let id = source.id.to_string();
        let mut tx = self.writer().begin().await?;
        let written = sqlx::query(
            "INSERT INTO knowledge_sources (id, site_id, kind, slug, title, url, format,
                last_error, fetched_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, slug = excluded.slug,
                title = excluded.title, url = excluded.url, format = excluded.format,
                last_error = NULL, fetched_at = excluded.fetched_at,
                updated_at = excluded.updated_at
             WHERE knowledge_sources.site_id = excluded.site_id",
        )
        .bind(&id)
        .bind(&site)
        .bind(source.kind.as_str())
        .bind(&source.slug)
        .bind(&source.title)
        .bind(source.url.as_deref())
        .bind(&source.format)
        .bind(source.fetched_at)
        .bind(source.created_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if written.rows_affected() == 0 {
            // Another site's source id.
            return Err(StoreError::NotFound);
        }
        let mut before: HashMap<String, (Passage, i64)> = HashMap::new();
        for row in sqlx::query(
            "SELECT id, title, body, url, position FROM source_passages
             WHERE site_id = $1 AND source_id = $2",
        )
        .bind(&site)
        .bind(&id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        {
            let position = row.int("position")?;
            let passage = passage_from_row(row)?;
            before.insert(passage.id.clone(), (passage, position));
        }
        let mut changes = PassageChanges::default();
        for (position, passage) in passages.iter().enumerate() {
            let position = position as i64;
            match before.remove(&passage.id) {
                Some((old, old_position)) if old == *passage => {
                    changes.unchanged += 1;
                    if old_position != position {
                        sqlx::query(
                            "UPDATE source_passages SET position = $3
                             WHERE site_id = $1 AND id = $2",
                        )
                        .bind(&site)
                        .bind(&passage.id)
                        .bind(position)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Some(_) => {
                    changes.updated += 1;
                    sqlx::query(
                        "UPDATE source_passages SET position = $3, title = $4, body = $5,
                            url = $6, updated_at = $7
                         WHERE site_id = $1 AND id = $2",
                    )
                    .bind(&site)
                    .bind(&passage.id)
                    .bind(position)
                    .bind(&passage.title)
                    .bind(&passage.body)
                    .bind(passage.url.as_deref())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    changes.added += 1;
                    sqlx::query(
                        "INSERT INTO source_passages (site_id, id, source_id, position, title,
                            body, url, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&site)
                    .bind(&passage.id)
                    .bind(&id)
                    .bind(position)
                    .bind(&passage.title)
                    .bind(&passage.body)
                    .bind(passage.url.as_deref())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        for gone in before.keys() {
            changes.removed += 1;
            sqlx::query("DELETE FROM source_passages WHERE site_id = $1 AND id = $2")
                .bind(&site)
                .bind(gone)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.kb_changed(site_id).await;
        Ok(changes)
    }

    async fn record_source_error(&self, site_id: Uuid, id: Uuid, error: &str) -> StoreResult<()> {
        let result = sqlx::query(
            "UPDATE knowledge_sources SET last_error = $3, updated_at = $4
             WHERE site_id = $1 AND id = $2",
        )
        .bind(site_id.to_string())
        .bind(id.to_string())
        .bind(error)
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_source(&self, site_id: Uuid, id: Uuid) -> StoreResult<()> {
        let mut tx = self.writer().begin().await?;
        sqlx::query("DELETE FROM source_passages WHERE site_id = $1 AND source_id = $2")
            .bind(site_id.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let result = sqlx::query("DELETE FROM knowledge_sources WHERE site_id = $1 AND id = $2")
            .bind(site_id.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        self.kb_changed(site_id).await;
        Ok(())
    }

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
        .execute(self.writer())
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
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(visitor_from_row).transpose()
    }

    async fn visitor_by_any_token(&self, token: &str) -> StoreResult<Option<Visitor>> {
        let row = sqlx::query("SELECT * FROM visitors WHERE token_hash = $1")
            .bind(hash_token(token))
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(visitor_from_row).transpose()
    }

    #[instrument(skip_all)]
    async fn set_visitor_email(&self, visitor_id: Uuid, email: &str) -> StoreResult<()> {
        let result = sqlx::query("UPDATE visitors SET email = $1 WHERE id = $2")
            .bind(email)
            .bind(visitor_id.to_string())
            .execute(self.writer())
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
        .execute(self.writer())
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
        .execute(self.writer())
        .await?;
        Ok(conversation)
    }

    async fn conversation(&self, id: Uuid) -> StoreResult<Option<Conversation>> {
        sqlx::query("SELECT * FROM conversations WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.reader())
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
        .fetch_optional(self.reader())
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
        .fetch_all(self.reader())
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
        .fetch_all(self.reader())
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
        .fetch_all(self.reader())
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
            .fetch_optional(self.reader())
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
        .fetch_optional(self.reader())
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
        let ahead = sqlx::query(
            "SELECT COUNT(*) AS ahead FROM conversations WHERE site_id = $1 AND state = 'waiting'
             AND (waiting_since < $2 OR (waiting_since = $3 AND id < $4))",
        )
        .bind(conversation.site_id.to_string())
        .bind(since)
        .bind(since)
        .bind(conversation.id.to_string())
        .fetch_one(self.reader())
        .await?
        .int("ahead")?;
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
        // The group-commit task ends only when the store is dropped or its pool closed.
        let gone = || StoreError::Database(sqlx::Error::PoolClosed);
        self.commits().send(request).await.map_err(|_| gone())?;
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
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(conversation_from_row)
        .collect()
    }

    async fn open_inbox(
        &self,
        site_id: Uuid,
        limit: u32,
    ) -> StoreResult<Vec<(Conversation, String)>> {
        sqlx::query(
            "SELECT c.*, m.body AS preview FROM conversations c
             LEFT JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq
             WHERE c.site_id = $1 AND c.state IN ('ai', 'waiting', 'human')
             ORDER BY c.updated_at DESC LIMIT $2",
        )
        .bind(site_id.to_string())
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|row| {
            let preview = row.opt_text("preview")?.unwrap_or_default();
            Ok((conversation_from_row(row)?, preview))
        })
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
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.reader())
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
            .fetch_optional(self.reader())
            .await?;
        row.map(|row| {
            Ok((
                user_from_row(&row)?,
                PasswordHash(row.text("password_hash")?),
            ))
        })
        .transpose()
    }

    async fn owner_accounts(&self, email: &str) -> StoreResult<u64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM users WHERE email = $1 AND role = 'owner'")
                .bind(email.trim().to_lowercase())
                .fetch_one(self.reader())
                .await?;
        Ok(u64::try_from(row.int("n")?).unwrap_or(0))
    }

    async fn set_password(&self, user_id: Uuid, password: &PasswordHash) -> StoreResult<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(&password.0)
            .bind(user_id.to_string())
            .execute(self.writer())
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(self.writer())
            .await?;
        self.sessions_ended(SessionEnd::User(user_id)).await;
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
            .execute(self.writer())
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(self.writer())
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
        .fetch_optional(self.reader())
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.writer())
            .await?;
        self.sessions_ended(SessionEnd::Token(token_hash.to_owned()))
            .await;
        Ok(())
    }

    async fn count_login_attempt(
        &self,
        key: &str,
        now: Millis,
        window: Millis,
    ) -> StoreResult<u32> {
        let expired = now - window;
        sqlx::query("DELETE FROM login_attempts WHERE window_start <= $1")
            .bind(expired)
            .execute(self.writer())
            .await?;
        let row = sqlx::query(
            "INSERT INTO login_attempts (key, attempts, window_start) VALUES ($1, 1, $2)
             ON CONFLICT (key) DO UPDATE SET
                 attempts = CASE WHEN login_attempts.window_start <= $3 THEN 1
                                 ELSE login_attempts.attempts + 1 END,
                 window_start = CASE WHEN login_attempts.window_start <= $3 THEN $2
                                     ELSE login_attempts.window_start END
             RETURNING attempts",
        )
        .bind(key)
        .bind(now)
        .bind(expired)
        .fetch_one(self.writer())
        .await?;
        Ok(u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX))
    }

    async fn forget_login_attempt(&self, key: &str, clear: bool) -> StoreResult<()> {
        let sql = if clear {
            "DELETE FROM login_attempts WHERE key = $1"
        } else {
            "UPDATE login_attempts SET attempts = attempts - 1 WHERE key = $1 AND attempts > 0"
        };
        sqlx::query(sql).bind(key).execute(self.writer()).await?;
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
            .execute(self.writer())
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.settings_changed(site_id).await;
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
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn draft(&self, id: Uuid) -> StoreResult<Option<(Draft, String)>> {
        let row = sqlx::query("SELECT * FROM drafts WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.writer())
            .await?;
        row.map(|row| Ok((draft_from_row(&row)?, row.text("question")?)))
            .transpose()
    }

    async fn pending_drafts(&self, conversation_id: Uuid) -> StoreResult<Vec<Draft>> {
        sqlx::query(
            "SELECT * FROM drafts WHERE conversation_id = $1 AND status = 'pending' ORDER BY created_at",
        )
        .bind(conversation_id.to_string())
        .fetch_all(self.reader())
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
        .execute(self.writer())
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
        .execute(self.writer())
        .await?
        .rows_affected();
        let row =
            sqlx::query("SELECT * FROM notes WHERE conversation_id = $1 AND client_msg_id = $2")
                .bind(note.conversation_id.to_string())
                .bind(&note.client_msg_id)
                .fetch_one(self.writer())
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
        .execute(self.writer())
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
        .execute(self.writer())
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
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn pending_entries(&self, site_id: Uuid) -> StoreResult<Vec<crate::model::PendingEntry>> {
        sqlx::query(
            "SELECT * FROM learned_entries WHERE site_id = $1 AND status = 'pending'
             ORDER BY created_at, id",
        )
        .bind(site_id.to_string())
        .fetch_all(self.writer())
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
        .execute(self.writer())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn canned_responses(&self, site_id: Uuid) -> StoreResult<Vec<crate::model::Canned>> {
        sqlx::query(
            "SELECT id, title, body FROM canned_responses WHERE site_id = $1 ORDER BY title, id",
        )
        .bind(site_id.to_string())
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|row| {
            Ok(crate::model::Canned {
                id: uuid_col(row, "id")?,
                title: row.text("title")?,
                body: row.text("body")?,
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
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn delete_canned(&self, site_id: Uuid, id: Uuid) -> StoreResult<()> {
        let result = sqlx::query("DELETE FROM canned_responses WHERE site_id = $1 AND id = $2")
            .bind(site_id.to_string())
            .bind(id.to_string())
            .execute(self.writer())
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn import_kb_entries(&self, site_id: Uuid, entries: &[KbEntry]) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.writer().begin().await?;
        write_kb_entries::<DB>(&mut tx, site_id, entries, now).await?;
        tx.commit().await?;
        self.kb_changed(site_id).await;
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
        .fetch_all(self.reader())
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
        // Only what the figures read: a site's timelines are mostly visitors' questions and
        // the AI's answers, and reading them all made a month of a busy site take seconds.
        let messages = period_rows(
            self.reader(),
            "SELECT x.* FROM messages x",
            "AND (x.author_kind = 'agent' OR x.event IS NOT NULL) ORDER BY x.conversation_id, x.seq",
            site_id,
            from,
            to,
        )
        .await?
        .iter()
        .map(message_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        let ai_answered = period_rows(
            self.reader(),
            "SELECT DISTINCT x.conversation_id FROM messages x",
            "AND x.author_kind = 'ai'",
            site_id,
            from,
            to,
        )
        .await?
        .iter()
        .map(|row| uuid_col(row, "conversation_id"))
        .collect::<StoreResult<std::collections::HashSet<_>>>()?;
        let csat = period_rows(
            self.reader(),
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
                csat_score(row.int("score")?)?,
            ))
        })
        .collect::<StoreResult<HashMap<_, _>>>()?;
        Ok(conversation_facts(
            conversations,
            messages,
            &ai_answered,
            csat,
        ))
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
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|row| Ok(row.int("created_at")?)).collect()
    }

    async fn recent_timelines(
        &self,
        site_id: Uuid,
        since: Millis,
        limit: u32,
        entries: u32,
        people: bool,
    ) -> StoreResult<Vec<(Conversation, Vec<Message>)>> {
        // The same conversations for both reads: the newest `limit` of the site since `since`.
        let people = if people {
            "AND (c.handoff_reason IS NOT NULL OR EXISTS (SELECT 1 FROM messages a
                 WHERE a.conversation_id = c.id AND a.author_kind = 'agent'))"
        } else {
            ""
        };
        let chosen = format!(
            "SELECT c.id FROM conversations c WHERE c.site_id = $1 AND c.created_at >= $2 {people}
             ORDER BY c.created_at DESC, c.id DESC LIMIT $3"
        );
        let conversations = sqlx::query(&format!(
            "SELECT * FROM conversations WHERE id IN ({chosen}) ORDER BY created_at DESC, id DESC"
        ))
        .bind(site_id.to_string())
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(conversation_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        let messages = sqlx::query(&format!(
            "SELECT * FROM messages WHERE conversation_id IN ({chosen}) AND seq <= $4
             ORDER BY conversation_id, seq"
        ))
        .bind(site_id.to_string())
        .bind(since)
        .bind(i64::from(limit))
        .bind(i64::from(entries))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(message_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        let mut by_conversation: HashMap<Uuid, Vec<Message>> = HashMap::new();
        for message in messages {
            by_conversation
                .entry(message.conversation_id)
                .or_default()
                .push(message);
        }
        Ok(conversations
            .into_iter()
            .map(|c| {
                let timeline = by_conversation.remove(&c.id).unwrap_or_default();
                (c, timeline)
            })
            .collect())
    }

    async fn learned_times(
        &self,
        site_id: Uuid,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<(Millis, bool)>> {
        let rows = sqlx::query(
            "SELECT status, COALESCE(reviewed_at, created_at) AS at FROM learned_entries
             WHERE site_id = $1 AND status IN ('live', 'approved')
             AND COALESCE(reviewed_at, created_at) >= $2 AND COALESCE(reviewed_at, created_at) < $3
             ORDER BY at",
        )
        .bind(site_id.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| Ok((row.int("at")?, row.text("status")? == "approved")))
            .collect()
    }

    async fn csat(&self, conversation_id: Uuid) -> StoreResult<Option<crate::model::Csat>> {
        let row =
            sqlx::query("SELECT score, comment, created_at FROM csat WHERE conversation_id = $1")
                .bind(conversation_id.to_string())
                .fetch_optional(self.reader())
                .await?;
        row.map(|row| {
            let score = row.int("score")?;
            Ok(crate::model::Csat {
                score: csat_score(score)?,
                comment: row.opt_text("comment")?,
                created_at: row.int("created_at")?,
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
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(profile_from_row).transpose()
    }

    async fn insert_lived(&self, batch: &super::fill::LivedBatch) -> StoreResult<()> {
        let mut tx = self.writer().begin().await?;
        let site = batch
            .conversations
            .first()
            .map(|c| c.site_id.to_string())
            .unwrap_or_default();
        for chunk in batch.visitors.chunks(2_000) {
            let sql = multi_row_insert(
                B::NUMBERED,
                "INSERT INTO visitors (id, site_id, token_hash, created_at, last_seen_at)",
                5,
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for (id, at) in chunk {
                query = query
                    .bind(id.to_string())
                    .bind(site.clone())
                    .bind(hash_token(&new_token()))
                    .bind(*at)
                    .bind(*at);
            }
            query.execute(&mut *tx).await?;
        }
        for chunk in batch.conversations.chunks(1_000) {
            let sql = multi_row_insert(
                B::NUMBERED,
                "INSERT INTO conversations (id, site_id, visitor_id, state, assignee_id,
                    assignee_name, handoff_reason, last_seq, page_url, locale, created_at,
                    updated_at, waiting_since)",
                13,
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for c in chunk {
                let assignee = c.snapshot.assignee.as_ref();
                query = query
                    .bind(c.id.to_string())
                    .bind(c.site_id.to_string())
                    .bind(c.visitor_id.to_string())
                    .bind(c.snapshot.state.as_str())
                    .bind(assignee.map(|a| a.id.to_string()))
                    .bind(assignee.map(|a| a.name.clone()))
                    .bind(c.handoff_reason.as_ref().map(to_json))
                    .bind(seq_i64(c.last_seq))
                    .bind(c.page_url.clone())
                    .bind(c.locale.clone())
                    .bind(c.created_at)
                    .bind(c.updated_at)
                    .bind(c.waiting_since);
            }
            query.execute(&mut *tx).await?;
        }
        for chunk in batch.messages.chunks(1_000) {
            let sql = multi_row_insert(
                B::NUMBERED,
                "INSERT INTO messages (id, conversation_id, seq, client_msg_id, author_kind,
                    author_id, author_name, body, created_at, sources, confidence, choices, event)",
                13,
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for m in chunk {
                let agent = match &m.author {
                    Author::Agent(a) => Some(a),
                    _ => None,
                };
                query = query
                    .bind(m.id.to_string())
                    .bind(m.conversation_id.to_string())
                    .bind(seq_i64(m.seq))
                    .bind(m.client_msg_id.clone())
                    .bind(m.author.kind())
                    .bind(agent.map(|a| a.id.to_string()))
                    .bind(agent.map(|a| a.name.clone()))
                    .bind(m.body.clone())
                    .bind(m.created_at)
                    .bind((!m.sources.is_empty()).then(|| to_json(&m.sources)))
                    .bind(m.confidence.map(f64::from))
                    .bind((!m.choices.is_empty()).then(|| to_json(&m.choices)))
                    .bind(m.event.as_ref().map(to_json));
            }
            query.execute(&mut *tx).await?;
        }
        for chunk in batch.csat.chunks(2_000) {
            let sql = multi_row_insert(
                B::NUMBERED,
                "INSERT INTO csat (conversation_id, score, created_at)",
                3,
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for (id, score, at) in chunk {
                query = query.bind(id.to_string()).bind(i64::from(*score)).bind(*at);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn visitor_records(
        &self,
        site_id: Uuid,
        visitor_id: Uuid,
    ) -> StoreResult<crate::model::VisitorRecords> {
        let (site, visitor) = (site_id.to_string(), visitor_id.to_string());
        let rows = |select: &'static str, order: &'static str| {
            visitor_rows(self.reader(), select, order, site.clone(), visitor.clone())
        };
        let notes = rows("SELECT x.* FROM notes x", "x.created_at, x.id")
            .await?
            .iter()
            .map(note_from_row)
            .collect::<StoreResult<_>>()?;
        let feedback = rows(
            "SELECT x.conversation_id, x.message_id, x.created_at,
                CAST(CASE WHEN x.helpful THEN 1 ELSE 0 END AS BIGINT) AS helpful_n
             FROM feedback x",
            "x.created_at, x.message_id",
        )
        .await?
        .iter()
        .map(|row| {
            Ok(crate::model::FeedbackRecord {
                conversation_id: uuid_col(row, "conversation_id")?,
                message_id: uuid_col(row, "message_id")?,
                helpful: row.int("helpful_n")? == 1,
                created_at: row.int("created_at")?,
            })
        })
        .collect::<StoreResult<_>>()?;
        let drafts = rows(
            "SELECT x.id, x.conversation_id, x.question, x.body, x.status, x.created_at FROM drafts x",
            "x.created_at, x.id",
        )
        .await?
        .iter()
        .map(|row| {
            Ok(crate::model::DraftRecord {
                id: uuid_col(row, "id")?,
                conversation_id: uuid_col(row, "conversation_id")?,
                question: row.text("question")?,
                body: row.text("body")?,
                status: row.text("status")?,
                created_at: row.int("created_at")?,
            })
        })
        .collect::<StoreResult<_>>()?;
        let learned = rows("SELECT x.* FROM learned_entries x", "x.created_at, x.id")
            .await?
            .iter()
            .map(|row| {
                Ok(crate::model::LearnedRecord {
                    entry: pending_from_row(row)?,
                    status: row.text("status")?,
                    kb_entry_id: row.opt_text("kb_entry_id")?,
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok(crate::model::VisitorRecords {
            notes,
            feedback,
            drafts,
            learned,
        })
    }

    async fn find_visitors(
        &self,
        site_id: Uuid,
        email: Option<&str>,
        external_id: Option<&str>,
    ) -> StoreResult<Vec<crate::model::VisitorProfile>> {
        let email = email.map(|e| e.trim().to_lowercase());
        sqlx::query(
            "SELECT id, external_id, name, email, created_at, last_seen_at FROM visitors
             WHERE site_id = $1 AND (LOWER(email) = $2 OR external_id = $3)
             ORDER BY last_seen_at DESC, id LIMIT 50",
        )
        .bind(site_id.to_string())
        .bind(email)
        .bind(external_id)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(profile_from_row)
        .collect()
    }

    #[instrument(skip_all)]
    async fn delete_visitor(&self, site_id: Uuid, visitor_id: Uuid) -> StoreResult<bool> {
        let (site, visitor) = (site_id.to_string(), visitor_id.to_string());
        let mut tx = self.writer().begin().await?;
        let learned = sqlx::query(
            "SELECT l.question, l.kb_entry_id FROM learned_entries l
             JOIN conversations c ON c.id = l.conversation_id
             WHERE c.site_id = $1 AND c.visitor_id = $2 AND l.kb_entry_id IS NOT NULL",
        )
        .bind(site.clone())
        .bind(visitor.clone())
        .fetch_all(&mut *tx)
        .await?;
        let mut changed: Vec<KbEntry> = Vec::new();
        for row in &learned {
            let question = row.text("question")?;
            let Some(kb_id) = row.opt_text("kb_entry_id")? else {
                continue;
            };
            let mut entry = match changed.iter().position(|e| e.id == kb_id) {
                Some(i) => changed.swap_remove(i),
                None => {
                    let row =
                        sqlx::query("SELECT * FROM kb_entries WHERE site_id = $1 AND id = $2")
                            .bind(site.clone())
                            .bind(kb_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    match row {
                        Some(row) => kb_from_row(&row)?,
                        None => continue,
                    }
                }
            };
            entry
                .examples
                .retain(|e| !e.eq_ignore_ascii_case(&question));
            // Before titles were written from the answer, a learned entry's title was the
            // question's first 60 characters.
            if entry.id.starts_with("learned-") {
                entry.title = crate::model::title_from_answer(&entry.answer);
            }
            changed.push(entry);
        }
        write_kb_entries::<DB>(&mut tx, site_id, &changed, now_ms()).await?;
        sqlx::query(
            "UPDATE learned_entries SET question = '', conversation_id = NULL
             WHERE conversation_id IN
                (SELECT id FROM conversations WHERE site_id = $1 AND visitor_id = $2)",
        )
        .bind(site.clone())
        .bind(visitor.clone())
        .execute(&mut *tx)
        .await?;
        let result = sqlx::query("DELETE FROM visitors WHERE site_id = $1 AND id = $2")
            .bind(site)
            .bind(visitor)
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        self.clear_deleted().await?;
        if !changed.is_empty() {
            self.kb_changed(site_id).await;
        }
        Ok(!changed.is_empty())
    }

    async fn learned_into_kb(
        &self,
        site_id: Uuid,
        entry: &crate::model::PendingEntry,
        status: &str,
        kb_entry_id: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO learned_entries (id, site_id, question, answer, entry_id, conversation_id,
                origin, status, created_at, kb_entry_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET question = excluded.question,
                answer = excluded.answer, kb_entry_id = excluded.kb_entry_id",
        )
        .bind(entry.id.to_string())
        .bind(site_id.to_string())
        .bind(&entry.question)
        .bind(&entry.answer)
        .bind(entry.entry_id.as_deref())
        .bind(entry.conversation_id.map(|c| c.to_string()))
        .bind(entry.origin.as_str())
        .bind(status)
        .bind(entry.created_at)
        .bind(kb_entry_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}

fn visitor_from_row(row: &impl Columns) -> StoreResult<Visitor> {
    Ok(Visitor {
        id: uuid_col(row, "id")?,
        site_id: uuid_col(row, "site_id")?,
        info: VisitorInfo {
            name: row.opt_text("name")?,
            email: row.opt_text("email")?,
            page_url: None,
            locale: None,
        },
    })
}

fn profile_from_row(row: &impl Columns) -> StoreResult<crate::model::VisitorProfile> {
    Ok(crate::model::VisitorProfile {
        id: uuid_col(row, "id")?,
        external_id: row.opt_text("external_id")?,
        name: row.opt_text("name")?,
        email: row.opt_text("email")?,
        created_at: row.int("created_at")?,
        last_seen_at: row.int("last_seen_at")?,
    })
}

fn user_from_row(row: &impl Columns) -> StoreResult<User> {
    let role = row.text("role")?;
    Ok(User {
        id: uuid_col(row, "id")?,
        site_id: uuid_col(row, "site_id")?,
        email: row.text("email")?,
        name: row.text("name")?,
        role: match role.as_str() {
            "owner" => Role::Owner,
            "agent" => Role::Agent,
            other => return Err(StoreError::Corrupt(format!("role {other:?}"))),
        },
    })
}

fn note_from_row(row: &impl Columns) -> StoreResult<Note> {
    Ok(Note {
        id: uuid_col(row, "id")?,
        conversation_id: uuid_col(row, "conversation_id")?,
        client_msg_id: row.text("client_msg_id")?,
        agent: AgentRef {
            id: uuid_col(row, "agent_id")?,
            name: row.text("agent_name")?,
        },
        body: row.text("body")?,
        created_at: row.int("created_at")?,
    })
}

fn draft_from_row(row: &impl Columns) -> StoreResult<Draft> {
    let seq = row.int("reply_to_seq")?;
    Ok(Draft {
        id: uuid_col(row, "id")?,
        conversation_id: uuid_col(row, "conversation_id")?,
        reply_to_seq: u64::try_from(seq).unwrap_or(0),
        body: row.text("body")?,
        sources: json_col(row, "sources")?.unwrap_or_default(),
        confidence: row.opt_real("confidence")?.map(|c| c as f32),
        created_at: row.int("created_at")?,
    })
}

pub(crate) const fn role_str(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Agent => "agent",
    }
}

fn pending_from_row(row: &impl Columns) -> StoreResult<crate::model::PendingEntry> {
    let origin = row.text("origin")?;
    let conversation_id = row.opt_text("conversation_id")?;
    Ok(crate::model::PendingEntry {
        id: uuid_col(row, "id")?,
        question: row.text("question")?,
        answer: row.text("answer")?,
        entry_id: row.opt_text("entry_id")?,
        conversation_id: conversation_id
            .map(|c| Uuid::parse_str(&c))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("conversation_id: {e}")))?,
        origin: crate::model::Origin::parse(&origin)
            .ok_or_else(|| StoreError::Corrupt(format!("origin: {origin}")))?,
        created_at: row.int("created_at")?,
    })
}
