-- Nexus Flow schema (SQLite). Timestamps are milliseconds since the Unix epoch (UTC).

CREATE TABLE sites (
    id          TEXT PRIMARY KEY NOT NULL,
    key         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL,              -- JSON, see SiteSettings
    created_at  INTEGER NOT NULL
);

CREATE TABLE kb_entries (
    site_id     TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    title       TEXT NOT NULL,
    answer      TEXT NOT NULL,
    examples    TEXT NOT NULL,              -- JSON array of strings
    escalate    TEXT,                       -- JSON HandoffReason, or NULL
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (site_id, id)
);

CREATE TABLE visitors (
    id           TEXT PRIMARY KEY NOT NULL,
    site_id      TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,      -- sha256 of the visitor token; the token is never stored
    external_id  TEXT,
    name         TEXT,
    email        TEXT,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);

CREATE TABLE conversations (
    id             TEXT PRIMARY KEY NOT NULL,
    site_id        TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    visitor_id     TEXT NOT NULL REFERENCES visitors(id) ON DELETE CASCADE,
    state          TEXT NOT NULL,           -- ai | waiting | human | resolved
    assignee_id    TEXT,
    assignee_name  TEXT,
    handoff_reason TEXT,                    -- JSON HandoffReason of the last escalation
    last_seq       INTEGER NOT NULL DEFAULT 0,
    page_url       TEXT,
    locale         TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    waiting_since  INTEGER
);
CREATE INDEX conversations_visitor ON conversations (visitor_id, updated_at);
CREATE INDEX conversations_site_state ON conversations (site_id, state, updated_at);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    client_msg_id   TEXT,
    author_kind     TEXT NOT NULL,          -- visitor | ai | agent | system
    author_id       TEXT,
    author_name     TEXT,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    sources         TEXT,                   -- JSON array of Source, or NULL
    confidence      REAL,
    choices         TEXT,                   -- JSON array of Choice, or NULL
    event           TEXT,                   -- JSON StateChange, or NULL
    UNIQUE (conversation_id, seq),
    UNIQUE (conversation_id, client_msg_id)
);

CREATE TABLE feedback (
    message_id      TEXT PRIMARY KEY NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    helpful         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE TABLE csat (
    conversation_id TEXT PRIMARY KEY NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    score           INTEGER NOT NULL,
    comment         TEXT,
    created_at      INTEGER NOT NULL
);
