-- Nexus Flow schema (PostgreSQL). Mirrors migrations/sqlite: the same tables and columns, so
-- both backends share their row mapping. Ids are UUIDs in text form; timestamps are
-- milliseconds since the Unix epoch (UTC).

CREATE TABLE sites (
    id          TEXT PRIMARY KEY NOT NULL,
    key         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL,              -- JSON, see SiteSettings
    created_at  BIGINT NOT NULL
);

CREATE TABLE kb_entries (
    site_id     TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    title       TEXT NOT NULL,
    answer      TEXT NOT NULL,
    examples    TEXT NOT NULL,              -- JSON array of strings
    escalate    TEXT,                       -- JSON HandoffReason, or NULL
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (site_id, id)
);

CREATE TABLE visitors (
    id           TEXT PRIMARY KEY NOT NULL,
    site_id      TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,      -- sha256 of the visitor token; the token is never stored
    external_id  TEXT,
    name         TEXT,
    email        TEXT,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

CREATE TABLE conversations (
    id             TEXT PRIMARY KEY NOT NULL,
    site_id        TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    visitor_id     TEXT NOT NULL REFERENCES visitors(id) ON DELETE CASCADE,
    state          TEXT NOT NULL,           -- ai | waiting | human | resolved
    assignee_id    TEXT,
    assignee_name  TEXT,
    handoff_reason TEXT,                    -- JSON HandoffReason of the last escalation
    last_seq       BIGINT NOT NULL DEFAULT 0,
    page_url       TEXT,
    locale         TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    waiting_since  BIGINT
);
CREATE INDEX conversations_visitor ON conversations (visitor_id, updated_at);
CREATE INDEX conversations_site_state ON conversations (site_id, state, updated_at);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    client_msg_id   TEXT,
    author_kind     TEXT NOT NULL,          -- visitor | ai | agent | system
    author_id       TEXT,
    author_name     TEXT,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    sources         TEXT,                   -- JSON array of Source, or NULL
    confidence      DOUBLE PRECISION,
    choices         TEXT,                   -- JSON array of Choice, or NULL
    event           TEXT,                   -- JSON StateChange, or NULL
    UNIQUE (conversation_id, seq),
    UNIQUE (conversation_id, client_msg_id)
);

CREATE TABLE feedback (
    message_id      TEXT PRIMARY KEY NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    helpful         BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE csat (
    conversation_id TEXT PRIMARY KEY NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    score           BIGINT NOT NULL,
    comment         TEXT,
    created_at      BIGINT NOT NULL
);

-- Agent and owner accounts, their sessions, and agents' internal notes.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    site_id       TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    email         TEXT NOT NULL,            -- lower-cased
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,            -- owner | agent
    password_hash TEXT NOT NULL,            -- argon2id PHC string
    created_at    BIGINT NOT NULL,
    UNIQUE (site_id, email)
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY NOT NULL,  -- sha256 of the bearer token; the token is never stored
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE notes (
    id              TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    agent_id        TEXT NOT NULL,
    agent_name      TEXT NOT NULL,
    client_msg_id   TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (conversation_id, client_msg_id)
);

-- AI answers awaiting an agent's review (site autonomy `review`).

CREATE TABLE drafts (
    id              TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    reply_to_seq    BIGINT NOT NULL,
    question        TEXT NOT NULL,
    body            TEXT NOT NULL,
    sources         TEXT,                   -- JSON array of Source, or NULL
    confidence      DOUBLE PRECISION,
    status          TEXT NOT NULL,          -- pending | approved | edited | rejected | expired
    created_at      BIGINT NOT NULL,
    reviewed_by     TEXT,
    reviewed_at     BIGINT
);
CREATE INDEX drafts_conversation ON drafts (conversation_id, status);

-- Cross-instance fan-out: frames too large for a NOTIFY payload, announced by id. Short-lived.
CREATE TABLE fanout_payloads (
    id          BIGSERIAL PRIMARY KEY,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX fanout_payloads_created ON fanout_payloads (created_at);
