-- Knowledge sources besides Q&A entries: articles uploaded, pasted, fetched from a URL or a
-- sitemap, or the site's own page; and the passages (sections under a heading) they are
-- split into. The engine reads each passage as an entry without example questions.

CREATE TABLE knowledge_sources (
    id          TEXT PRIMARY KEY NOT NULL,
    site_id     TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,              -- SourceKind: url, sitemap, file, paste, page
    slug        TEXT NOT NULL,              -- first part of its passages' ids
    title       TEXT NOT NULL,
    url         TEXT,
    format      TEXT NOT NULL,              -- html, markdown, text
    last_error  TEXT,
    fetched_at  INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (site_id, slug)
);

CREATE TABLE source_passages (
    site_id     TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,              -- doc:<source slug>#<heading slug>
    source_id   TEXT NOT NULL REFERENCES knowledge_sources(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    url         TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (site_id, id)
);
CREATE INDEX source_passages_by_source ON source_passages (source_id, position);
