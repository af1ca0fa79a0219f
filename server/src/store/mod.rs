//! Persistence. One [`Store`] trait, one module per backend; the backend is chosen by the
//! database URL (`sqlite://…`).
//!
//! The store is the single place where conversation state changes: [`Store::commit`] reads the
//! conversation, runs the shared state machine against it and writes the resulting timeline
//! entries and the new state in one transaction. Two racing actors are therefore ordered by the
//! database, and the second is checked against the state the first left behind.

use std::collections::HashMap;

use nexus_shared::Draft;
use nexus_shared::{
    AgentRef, Author, ConversationState, HandoffReason, Message, Millis, Note, Snapshot,
    StateChange, StateError, Transition, VisitorInfo,
};
use uuid::Uuid;

use nexus_engine::KbEntry;

use crate::model::{
    Committed, Conversation, ConversationFacts, Guard, KnowledgeSource, NewMessage, Op, Passage,
    PassageChanges, PasswordHash, Site, SiteSettings, User, Visitor, now_ms,
};

mod common;
pub mod fill;
pub mod postgres;
pub mod sqlite;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    State(#[from] StateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?} (expected sqlite://… or postgres://…)")]
    UnsupportedUrl(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// The database is unreachable or restarting (pool timeout, I/O, closed connection, or
    /// a server shutting down): the same request may succeed when retried shortly.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
            ) => true,
            // admin_shutdown, crash_shutdown, cannot_connect_now (PostgreSQL class 57P).
            Self::Database(sqlx::Error::Database(e)) => {
                e.code().is_some_and(|c| c.starts_with("57P"))
            }
            _ => false,
        }
    }
}

/// A stored CSAT score, 1 to 5; anything else is a corrupt row.
pub(crate) fn csat_score(score: i64) -> StoreResult<u8> {
    u8::try_from(score).map_err(|_| StoreError::Corrupt(format!("csat score {score}")))
}

/// Puts each conversation's entries (`messages`, in sequence order within a conversation) and
/// CSAT score beside it, keeping the conversations' order.
pub(crate) fn conversation_facts(
    conversations: Vec<Conversation>,
    messages: Vec<Message>,
    ai_answered: &std::collections::HashSet<Uuid>,
    csat: HashMap<Uuid, u8>,
) -> Vec<ConversationFacts> {
    let mut by_conversation: HashMap<Uuid, Vec<Message>> = HashMap::new();
    for message in messages {
        by_conversation
            .entry(message.conversation_id)
            .or_default()
            .push(message);
    }
    conversations
        .into_iter()
        .map(|conversation| ConversationFacts {
            messages: by_conversation.remove(&conversation.id).unwrap_or_default(),
            ai_answered: ai_answered.contains(&conversation.id),
            csat: csat.get(&conversation.id).copied(),
            conversation,
        })
        .collect()
}

/// The guard is checked inside the commit, against the conversation as the transaction reads
/// it (the check is the store's; the record is in [`crate::model`]).
impl Guard {
    pub(crate) fn check(self, conversation: &Conversation, op: &Op) -> StoreResult<()> {
        match self {
            Self::None => Ok(()),
            Self::Visitor { id, .. } if conversation.visitor_id != id => Err(StoreError::NotFound),
            Self::Visitor { reopen: false, .. }
                if matches!(op, Op::Post { .. })
                    && conversation.snapshot.state == ConversationState::Resolved =>
            {
                Err(StateError::Resolved.into())
            }
            Self::Visitor { .. } => Ok(()),
        }
    }
}

/// What the planner decided: entries to append and the conversation's new snapshot.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) messages: Vec<NewMessage>,
    pub(crate) after: Snapshot,
    pub(crate) escalation: Option<HandoffReason>,
}

/// What a planned op writes, shared by every backend: its entries, numbered after the
/// conversation's last one and stamped `now`, and the conversation's new columns.
pub(crate) struct Rows {
    pub(crate) messages: Vec<Message>,
    pub(crate) after: Snapshot,
    pub(crate) handoff_reason: Option<HandoffReason>,
    pub(crate) waiting_since: Option<Millis>,
    pub(crate) last_seq: u64,
}

impl Plan {
    pub(crate) fn rows(self, before: &Conversation, now: Millis) -> Rows {
        let mut last_seq = before.last_seq;
        let messages = self
            .messages
            .into_iter()
            .map(|new| {
                last_seq += 1;
                Message {
                    // Time-ordered: a new entry's id goes at the end of the id index, one
                    // page for a whole batch instead of one random page per entry.
                    id: Uuid::now_v7(),
                    conversation_id: before.id,
                    seq: last_seq,
                    client_msg_id: new.client_msg_id.clone(),
                    author: new.author(),
                    body: new.body,
                    created_at: now,
                    sources: new.sources,
                    confidence: new.confidence,
                    choices: new.choices,
                    event: new.event,
                }
            })
            .collect();
        // Waiting since the first escalation; a re-escalation while waiting keeps the place.
        let waiting_since = match self.after.state {
            ConversationState::Waiting if before.snapshot.state == ConversationState::Waiting => {
                before.waiting_since
            }
            ConversationState::Waiting => Some(now),
            _ => None,
        };
        Rows {
            messages,
            handoff_reason: self.escalation.or_else(|| before.handoff_reason.clone()),
            after: self.after,
            waiting_since,
            last_seq,
        }
    }
}

/// Plans one commit of a group-committed batch, in memory, against the state the batch's
/// earlier commits left: `conversations` (read once for the batch, updated here) and `earlier`
/// (the stored messages carrying the batch's client ids, keyed by conversation and client id;
/// the new ones are added). A client id already stored, in the database or earlier in the
/// batch, is a duplicate and writes nothing.
pub(crate) fn plan_in_batch(
    conversations: &mut HashMap<Uuid, Conversation>,
    earlier: &mut HashMap<(Uuid, String), Message>,
    id: Uuid,
    guard: Guard,
    op: &Op,
    now: Millis,
) -> StoreResult<Committed> {
    let before = conversations.get(&id).ok_or(StoreError::NotFound)?.clone();
    guard.check(&before, op)?;
    if let Op::Post { message, .. } = op
        && let Some(client_id) = &message.client_msg_id
        && let Some(duplicate) = earlier.get(&(id, client_id.clone()))
    {
        return Ok(Committed {
            before: before.snapshot.clone(),
            conversation: before,
            messages: Vec::new(),
            duplicate: Some(duplicate.clone()),
        });
    }
    let plan = plan(&before.snapshot, op.clone(), before.locale.as_deref())?;
    let Rows {
        messages,
        after,
        handoff_reason,
        waiting_since,
        last_seq,
    } = plan.rows(&before, now);
    for message in &messages {
        if let Some(client_id) = &message.client_msg_id {
            earlier.insert((id, client_id.clone()), message.clone());
        }
    }
    let conversation = Conversation {
        snapshot: after,
        handoff_reason,
        last_seq,
        updated_at: now,
        waiting_since,
        ..before.clone()
    };
    conversations.insert(id, conversation.clone());
    Ok(Committed {
        conversation,
        before: before.snapshot,
        messages,
        duplicate: None,
    })
}

/// Runs the state machine for `op` against `snapshot`. Shared by every backend so they
/// cannot disagree on what is allowed.
pub(crate) fn plan(snapshot: &Snapshot, op: Op, locale: Option<&str>) -> Result<Plan, StateError> {
    let mut messages = Vec::new();
    let mut current = snapshot.clone();
    let mut escalation = None;
    let mut change = |current: &mut Snapshot, transition: Transition, notice: String| {
        let next = current.apply(&transition)?;
        if let Transition::Escalated { reason } = &transition {
            escalation = Some(reason.clone());
        }
        messages.push(NewMessage {
            author: Some(Author::System),
            body: notice,
            event: Some(StateChange {
                from: current.state,
                to: next.state,
                cause: transition,
            }),
            ..NewMessage::default()
        });
        *current = next;
        Ok::<_, StateError>(())
    };
    match op {
        Op::Post {
            message,
            reopen_to,
            notices,
        } => {
            let author = message.author();
            if current.state == ConversationState::Resolved && author == Author::Visitor {
                let reopened = Transition::Reopened { to: reopen_to };
                let notice = notices.render(&reopened, locale);
                change(&mut current, reopened, notice)?;
            } else if let Some(implied) = current.check_post(&author)? {
                let notice = notices.render(&implied, locale);
                change(&mut current, implied, notice)?;
            }
            messages.push(message);
        }
        Op::Transition {
            transition,
            notice,
            notices,
        } => {
            let notice = notice.unwrap_or_else(|| notices.render(&transition, locale));
            change(&mut current, transition, notice)?
        }
    }
    Ok(Plan {
        messages,
        after: current,
        escalation,
    })
}

/// Maps a store error to what a client may see. Database details are logged, not sent.
pub fn store_error_body(err: &StoreError) -> nexus_shared::ErrorBody {
    use nexus_shared::StateError;
    use nexus_shared::{ErrorBody, ErrorCode};
    match err {
        StoreError::NotFound => ErrorBody::new(ErrorCode::NotFound, "Not found."),
        StoreError::State(StateError::Resolved) => ErrorBody::new(
            ErrorCode::ConversationResolved,
            "The conversation is resolved.",
        ),
        StoreError::State(e @ (StateError::NotAssignee | StateError::OwnedByOther { .. })) => {
            ErrorBody::new(ErrorCode::NotAssignee, e.to_string())
        }
        StoreError::State(e) => ErrorBody::new(ErrorCode::InvalidTransition, e.to_string()),
        other if other.is_transient() => {
            tracing::warn!(error = %other, "database unavailable");
            ErrorBody::new(
                ErrorCode::Unavailable,
                "The service is briefly unavailable. Please try again in a moment.",
            )
        }
        other => {
            tracing::error!(error = %other, "store error");
            ErrorBody::new(
                ErrorCode::Internal,
                "Something went wrong on our side. Please try again.",
            )
        }
    }
}

/// Persistence for everything the server keeps.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// Open and idle connections of the database pool (for `/metrics`), if the backend has one.
    fn pool_stats(&self) -> Option<(u32, usize)> {
        None
    }

    /// Is the database reachable?
    async fn ping(&self) -> StoreResult<()>;

    async fn create_site(&self, site: &Site) -> StoreResult<()>;
    /// Creates `site` and its knowledge base in one transaction, unless a site with its key
    /// exists already; whether it was created. Instances starting together on one database
    /// race to create the same site: one creates it, the others find it whole.
    async fn create_site_with_kb(&self, site: &Site, entries: &[KbEntry]) -> StoreResult<bool>;
    async fn site_by_key(&self, key: &str) -> StoreResult<Option<Site>>;
    async fn site(&self, id: Uuid) -> StoreResult<Option<Site>>;
    async fn sites(&self) -> StoreResult<Vec<Site>>;

    async fn kb_entries(&self, site_id: Uuid) -> StoreResult<Vec<KbEntry>>;
    async fn upsert_kb_entry(&self, site_id: Uuid, entry: &KbEntry) -> StoreResult<()>;
    /// Deletes an entry; `NotFound` when there is none.
    async fn delete_kb_entry(&self, site_id: Uuid, id: &str) -> StoreResult<()>;

    /// What the engine answers from: the Q&A entries, then every source's passages (each an
    /// entry without example questions, with its link), in source and passage order.
    async fn knowledge(&self, site_id: Uuid) -> StoreResult<Vec<KbEntry>>;
    /// A site's knowledge sources, oldest first, each with its passage count.
    async fn sources(&self, site_id: Uuid) -> StoreResult<Vec<KnowledgeSource>>;
    async fn source(&self, site_id: Uuid, id: Uuid) -> StoreResult<Option<KnowledgeSource>>;
    /// A source's passages in article order (empty for another site's source).
    async fn source_passages(&self, site_id: Uuid, source_id: Uuid) -> StoreResult<Vec<Passage>>;
    /// Creates or replaces `source` (by id) with exactly `passages`, in one transaction:
    /// passages with a known id are updated in place (or left alone when unchanged), new ones
    /// added, the others deleted. Clears the source's `last_error`.
    async fn save_source(
        &self,
        site_id: Uuid,
        source: &KnowledgeSource,
        passages: &[Passage],
    ) -> StoreResult<PassageChanges>;
    /// Notes why a refresh failed; the source keeps its passages. `NotFound` when the site
    /// has no such source.
    async fn record_source_error(&self, site_id: Uuid, id: Uuid, error: &str) -> StoreResult<()>;
    /// Deletes a source and its passages; `NotFound` when the site has no such source.
    async fn delete_source(&self, site_id: Uuid, id: Uuid) -> StoreResult<()>;

    /// Creates a visitor; returns it and its secret token (only its hash is stored).
    async fn create_visitor(
        &self,
        site_id: Uuid,
        info: &VisitorInfo,
    ) -> StoreResult<(Visitor, String)>;
    async fn visitor_by_token(&self, site_id: Uuid, token: &str) -> StoreResult<Option<Visitor>>;
    /// The visitor holding `token` on whichever site (tokens are unique across sites).
    async fn visitor_by_any_token(&self, token: &str) -> StoreResult<Option<Visitor>>;
    /// Records a verified identity on a visitor: its external id, name and email. Returns
    /// false (and changes nothing) when the visitor already carries a different external id.
    /// Records the email a visitor left for the team to answer them.
    async fn set_visitor_email(&self, visitor_id: Uuid, email: &str) -> StoreResult<()>;
    async fn set_visitor_identity(
        &self,
        visitor_id: Uuid,
        external_id: &str,
        name: Option<&str>,
        email: Option<&str>,
    ) -> StoreResult<bool>;

    async fn create_conversation(
        &self,
        site_id: Uuid,
        visitor_id: Uuid,
        page_url: Option<&str>,
        locale: Option<&str>,
    ) -> StoreResult<Conversation>;
    async fn conversation(&self, id: Uuid) -> StoreResult<Option<Conversation>>;
    /// The visitor's most recently updated conversation.
    async fn latest_conversation(&self, visitor_id: Uuid) -> StoreResult<Option<Conversation>>;
    /// The visitor's conversations, most recently updated first, at most `limit`.
    async fn visitor_conversations(
        &self,
        visitor_id: Uuid,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>>;

    /// Timeline entries with `seq > after_seq`, oldest first, at most `limit`.
    async fn messages_after(
        &self,
        conversation_id: Uuid,
        after_seq: u64,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    /// The last `limit` timeline entries, oldest first.
    async fn last_messages(&self, conversation_id: Uuid, limit: u32) -> StoreResult<Vec<Message>>;
    /// One timeline entry of a conversation.
    async fn message(&self, conversation_id: Uuid, id: Uuid) -> StoreResult<Option<Message>>;
    /// A visitor's earlier message with this client id, in any of their conversations.
    async fn visitor_message_by_client_id(
        &self,
        visitor_id: Uuid,
        client_msg_id: &str,
    ) -> StoreResult<Option<Message>>;
    /// Position in the site's waiting queue (1 = next), if the conversation is waiting.
    async fn queue_position(&self, conversation: &Conversation) -> StoreResult<Option<u32>>;

    /// Applies `op` to a conversation atomically; see the module documentation.
    async fn commit(&self, conversation_id: Uuid, op: Op) -> StoreResult<Committed> {
        self.commit_guarded(Guard::None, conversation_id, op).await
    }
    /// [`Store::commit`], refused unless `guard` allows it (see [`Guard`]).
    async fn commit_guarded(
        &self,
        guard: Guard,
        conversation_id: Uuid,
        op: Op,
    ) -> StoreResult<Committed>;

    /// Conversations of a site that are not resolved, most recently updated first.
    async fn open_conversations(&self, site_id: Uuid, limit: u32)
    -> StoreResult<Vec<Conversation>>;
    /// The agents' inbox of a site: its open conversations, most recently updated first, at
    /// most `limit`, each with the body of its last timeline entry (empty when it has none).
    /// One query, whatever the number of conversations.
    async fn open_inbox(
        &self,
        site_id: Uuid,
        limit: u32,
    ) -> StoreResult<Vec<(Conversation, String)>>;

    async fn create_user(&self, user: &User, password: &PasswordHash) -> StoreResult<()>;
    async fn user(&self, id: Uuid) -> StoreResult<Option<User>>;
    async fn user_by_email(
        &self,
        site_id: Uuid,
        email: &str,
    ) -> StoreResult<Option<(User, PasswordHash)>>;
    async fn set_password(&self, user_id: Uuid, password: &PasswordHash) -> StoreResult<()>;
    /// How many owner accounts, on all sites, have this (lower-cased) email.
    async fn owner_accounts(&self, email: &str) -> StoreResult<u64>;
    /// Stores a session under the hash of its token.
    async fn create_session(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: Millis,
    ) -> StoreResult<()>;
    /// The user of an unexpired session.
    async fn session_user(&self, token_hash: &str, now: Millis) -> StoreResult<Option<User>>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Counts one login attempt on `key`, in a window that starts with its first attempt and
    /// lasts `window` ms from then (an older window starts again at `now`); the attempts of the
    /// window so far, this one included. One statement, so concurrent attempts on every
    /// instance are each counted once.
    async fn count_login_attempt(&self, key: &str, now: Millis, window: Millis)
    -> StoreResult<u32>;
    /// Takes one counted attempt back from `key` (it was not a failure), or with `clear` all of
    /// them (the account's right password).
    async fn forget_login_attempt(&self, key: &str, clear: bool) -> StoreResult<()>;

    async fn update_site_settings(&self, site_id: Uuid, settings: &SiteSettings)
    -> StoreResult<()>;

    async fn create_draft(&self, draft: &Draft, question: &str) -> StoreResult<()>;
    /// A draft and the visitor question it answers.
    async fn draft(&self, id: Uuid) -> StoreResult<Option<(Draft, String)>>;
    /// Drafts of a conversation still awaiting review.
    async fn pending_drafts(&self, conversation_id: Uuid) -> StoreResult<Vec<Draft>>;
    /// Moves a draft from status `from` to `to`; false when it was not in `from` any more
    /// (someone else reviewed it first).
    async fn move_draft(
        &self,
        id: Uuid,
        from: &str,
        to: &str,
        reviewer: Option<Uuid>,
    ) -> StoreResult<bool>;

    /// Stores an internal note once per `client_msg_id`; returns it and whether it existed.
    async fn add_note(&self, note: &Note) -> StoreResult<(Note, bool)>;

    async fn record_feedback(
        &self,
        conversation_id: Uuid,
        message_id: Uuid,
        helpful: bool,
    ) -> StoreResult<()>;
    async fn record_csat(
        &self,
        conversation_id: Uuid,
        score: u8,
        comment: Option<&str>,
    ) -> StoreResult<()>;

    /// Stores learned knowledge waiting for an owner's review.
    async fn add_pending_entry(
        &self,
        site_id: Uuid,
        entry: &crate::model::PendingEntry,
    ) -> StoreResult<()>;
    /// A site's learned entries still waiting for review, oldest first.
    async fn pending_entries(&self, site_id: Uuid) -> StoreResult<Vec<crate::model::PendingEntry>>;
    /// Closes a pending entry of the site as `approved` or `rejected`; false when the site has
    /// no such entry still pending (someone reviewed it first).
    async fn close_pending_entry(
        &self,
        site_id: Uuid,
        id: Uuid,
        status: &str,
        reviewer: Uuid,
    ) -> StoreResult<bool>;

    /// A site's canned responses, by title.
    async fn canned_responses(&self, site_id: Uuid) -> StoreResult<Vec<crate::model::Canned>>;
    async fn upsert_canned(&self, site_id: Uuid, canned: &crate::model::Canned) -> StoreResult<()>;
    /// Deletes a canned response; `NotFound` when the site has none with this id.
    async fn delete_canned(&self, site_id: Uuid, id: Uuid) -> StoreResult<()>;
    /// Inserts or replaces several knowledge-base entries in one transaction: all or none.
    async fn import_kb_entries(&self, site_id: Uuid, entries: &[KbEntry]) -> StoreResult<()>;
    /// Conversations of a site created in `[from, to)`, oldest first.
    async fn conversations_created_between(
        &self,
        site_id: Uuid,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<Conversation>>;
    /// The site's conversations created in `[from, to)`, oldest first, each with all its
    /// entries and its CSAT score: three reads whatever their number (a period's analytics).
    async fn conversation_facts_between(
        &self,
        site_id: Uuid,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<ConversationFacts>>;
    /// Creation times of the entries agents taught (ids `learned-…`) in `[from, to)`.
    async fn learned_entry_times(
        &self,
        site_id: Uuid,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<Millis>>;
    /// The site's latest `limit` conversations created at or after `since`, newest first, each
    /// with its first `entries` timeline entries in sequence order: two reads whatever their
    /// number (the playground's replay, the knowledge gaps). With `people`, only the
    /// conversations a person was involved in: handed over, or an agent wrote.
    async fn recent_timelines(
        &self,
        site_id: Uuid,
        since: Millis,
        limit: u32,
        entries: u32,
        people: bool,
    ) -> StoreResult<Vec<(Conversation, Vec<Message>)>>;
    /// When learned knowledge went into the knowledge base in `[from, to)`: each live teach
    /// (at its creation) and each approval (at its review), with `true` for an approval.
    async fn learned_times(
        &self,
        site_id: Uuid,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<(Millis, bool)>>;
    /// The visitor's satisfaction answer for a conversation.
    async fn csat(&self, conversation_id: Uuid) -> StoreResult<Option<crate::model::Csat>>;
    /// What is kept about a visitor of a site.
    async fn visitor_profile(
        &self,
        site_id: Uuid,
        visitor_id: Uuid,
    ) -> StoreResult<Option<crate::model::VisitorProfile>>;
    /// Writes a batch of finished timelines in one transaction ([`fill`], the benchmarks'
    /// lived-in database): rows the planner produced, inserted as they are.
    async fn insert_lived(&self, batch: &fill::LivedBatch) -> StoreResult<()>;
    /// Notes, feedback, drafts and learned knowledge from a visitor's conversations.
    async fn visitor_records(
        &self,
        site_id: Uuid,
        visitor_id: Uuid,
    ) -> StoreResult<crate::model::VisitorRecords>;
    /// The site's visitors with this email (any case) or this identified user id, newest
    /// first (at most 50).
    async fn find_visitors(
        &self,
        site_id: Uuid,
        email: Option<&str>,
        external_id: Option<&str>,
    ) -> StoreResult<Vec<crate::model::VisitorProfile>>;
    /// Deletes a visitor of a site and everything of theirs, in one transaction: the visitor,
    /// their conversations, messages, feedback, CSAT answers, drafts and notes; learned
    /// knowledge from their conversations keeps its answer but loses the visitor's question
    /// (taken out of the knowledge-base entry it went into, too) and its link. Then the
    /// deleted bytes are cleared from the database files (SQLite: `secure_delete` and a
    /// truncating WAL checkpoint; PostgreSQL: `VACUUM` of the tables touched). `NotFound` when
    /// there is no such visitor; `true` when a knowledge-base entry changed.
    async fn delete_visitor(&self, site_id: Uuid, visitor_id: Uuid) -> StoreResult<bool>;
    /// Records learned knowledge that went into the knowledge-base entry `kb_entry_id`: a
    /// live teach (`status` live, a new row) or an approved pending entry (its row, with the
    /// question as approved).
    async fn learned_into_kb(
        &self,
        site_id: Uuid,
        entry: &crate::model::PendingEntry,
        status: &str,
        kb_entry_id: &str,
    ) -> StoreResult<()>;
}

/// Opens the store named by `url` and runs its migrations.
pub async fn connect(url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    Ok(open(url).await?.0)
}

/// Like [`connect`]; also returns the PostgreSQL store itself when the URL names one (the
/// cross-instance fan-out needs it).
pub async fn open(
    url: &str,
) -> StoreResult<(
    std::sync::Arc<dyn Store>,
    Option<std::sync::Arc<postgres::PgStore>>,
)> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let pg = std::sync::Arc::new(postgres::PgStore::connect(url).await?);
        return Ok((pg.clone(), Some(pg)));
    }
    Ok((open_other(url).await?, None))
}

async fn open_other(url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(
            sqlite::SqliteStore::connect(url).await?,
        ))
    } else if !url.contains("://") && !url.is_empty() {
        // A plain path names a SQLite file.
        Ok(std::sync::Arc::new(
            sqlite::SqliteStore::connect(&format!("sqlite://{url}")).await?,
        ))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// The URL with any password replaced by `***`, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `agent` as stored in a row's two columns.
pub(crate) fn agent_from_columns(id: Option<String>, name: Option<String>) -> Option<AgentRef> {
    let id = Uuid::parse_str(id.as_deref()?).ok()?;
    Some(AgentRef {
        id,
        name: name.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_secret_is_redacted() {
        let settings = SiteSettings {
            identity_secret: Some("s3cret-value".into()),
            ..SiteSettings::default()
        };
        assert!(!format!("{settings:?}").contains("s3cret-value"));
        assert_eq!(settings.redacted().identity_secret.as_deref(), Some("***"));
        let old: SiteSettings = serde_json::from_str(r#"{"greeting":"Hi"}"#).unwrap();
        assert_eq!(old.identity_secret, None);
        assert!(!old.require_identity);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/nexus"),
            "postgres://app:***@db:5432/nexus"
        );
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
        assert_eq!(
            redact_url("postgres://app@db/nexus"),
            "postgres://app@db/nexus"
        );
    }

    #[test]
    fn visitor_post_reopens_a_resolved_conversation() {
        let resolved = Snapshot {
            state: ConversationState::Resolved,
            assignee: None,
        };
        let plan = plan(
            &resolved,
            Op::Post {
                message: NewMessage::new(Author::Visitor, "one more thing"),
                reopen_to: ConversationState::Ai,
                notices: crate::conversation::notices::NOTICES,
            },
            None,
        )
        .unwrap();
        assert_eq!(plan.after.state, ConversationState::Ai);
        assert_eq!(plan.messages.len(), 2);
        assert_eq!(plan.messages[0].author(), Author::System);
        assert_eq!(plan.messages[1].body, "one more thing");
    }

    #[test]
    fn ai_post_after_takeover_is_refused() {
        let human = Snapshot::new()
            .apply(&Transition::TakenOver {
                agent: AgentRef {
                    id: Uuid::from_u128(1),
                    name: "Ana".into(),
                },
            })
            .unwrap();
        let err = plan(
            &human,
            Op::Post {
                message: NewMessage::new(Author::Ai, "too late"),
                reopen_to: ConversationState::Ai,
                notices: crate::conversation::notices::NOTICES,
            },
            None,
        )
        .unwrap_err();
        assert_eq!(err, StateError::AiSilenced(ConversationState::Human));
    }
}
