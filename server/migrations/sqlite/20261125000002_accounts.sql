-- Agent and owner accounts, their sessions, and agents' internal notes.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    site_id       TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    email         TEXT NOT NULL,            -- lower-cased
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,            -- owner | agent
    password_hash TEXT NOT NULL,            -- argon2id PHC string
    created_at    INTEGER NOT NULL,
    UNIQUE (site_id, email)
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY NOT NULL,  -- sha256 of the bearer token; the token is never stored
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE notes (
    id              TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    agent_id        TEXT NOT NULL,
    agent_name      TEXT NOT NULL,
    client_msg_id   TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (conversation_id, client_msg_id)
);
