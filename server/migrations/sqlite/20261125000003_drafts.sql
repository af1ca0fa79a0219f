-- AI answers awaiting an agent's review (site autonomy `review`).

CREATE TABLE drafts (
    id              TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    reply_to_seq    INTEGER NOT NULL,
    question        TEXT NOT NULL,
    body            TEXT NOT NULL,
    sources         TEXT,                   -- JSON array of Source, or NULL
    confidence      REAL,
    status          TEXT NOT NULL,          -- pending | approved | edited | rejected | expired
    created_at      INTEGER NOT NULL,
    reviewed_by     TEXT,
    reviewed_at     INTEGER
);
CREATE INDEX drafts_conversation ON drafts (conversation_id, status);
