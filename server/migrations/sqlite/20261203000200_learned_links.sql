-- Learned knowledge is tied to the conversation it came from: deleting a visitor (and so their
-- conversations) unlinks it, and `kb_entry_id` names the knowledge-base entry a teach or an
-- approval put the visitor's question into, so that the deletion can take it out again.
-- SQLite adds a foreign key only by rebuilding the table.
CREATE TABLE learned_entries_new (
    id              TEXT PRIMARY KEY NOT NULL,
    site_id         TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    question        TEXT NOT NULL,
    answer          TEXT NOT NULL,
    entry_id        TEXT,                   -- the existing KB entry it would extend, or NULL
    conversation_id TEXT REFERENCES conversations(id) ON DELETE SET NULL,
    origin          TEXT NOT NULL,          -- teach | draft_edit | thumbs_down
    status          TEXT NOT NULL,          -- pending | approved | rejected | live
    created_at      INTEGER NOT NULL,
    reviewed_by     TEXT,
    reviewed_at     INTEGER,
    kb_entry_id     TEXT                    -- the KB entry its question went into, or NULL
);
INSERT INTO learned_entries_new (id, site_id, question, answer, entry_id, conversation_id, origin,
        status, created_at, reviewed_by, reviewed_at)
    SELECT id, site_id, question, answer, entry_id,
           CASE WHEN conversation_id IN (SELECT id FROM conversations) THEN conversation_id END,
           origin, status, created_at, reviewed_by, reviewed_at
    FROM learned_entries;
DROP TABLE learned_entries;
ALTER TABLE learned_entries_new RENAME TO learned_entries;
CREATE INDEX learned_entries_site ON learned_entries (site_id, status, created_at);
CREATE INDEX learned_entries_conversation ON learned_entries (conversation_id);
