-- Knowledge learned from agents and visitors (a teach, an edited AI draft, a thumbs-down),
-- kept for the owner's review when the site's `learning` setting is `approve`.

CREATE TABLE learned_entries (
    id              TEXT PRIMARY KEY NOT NULL,
    site_id         TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    question        TEXT NOT NULL,
    answer          TEXT NOT NULL,
    entry_id        TEXT,                   -- the existing KB entry it would extend, or NULL
    conversation_id TEXT,                   -- where it was learned, or NULL
    origin          TEXT NOT NULL,          -- teach | draft_edit | thumbs_down
    status          TEXT NOT NULL,          -- pending | approved | rejected
    created_at      INTEGER NOT NULL,
    reviewed_by     TEXT,
    reviewed_at     INTEGER
);
CREATE INDEX learned_entries_site ON learned_entries (site_id, status, created_at);
