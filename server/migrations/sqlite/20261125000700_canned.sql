-- Canned responses: reply templates agents insert in the console.

CREATE TABLE canned_responses (
    id          TEXT PRIMARY KEY NOT NULL,
    site_id     TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX canned_responses_site ON canned_responses (site_id, title);
CREATE INDEX conversations_site_created ON conversations (site_id, created_at);
