//! Knowledge sources besides Q&A entries: articles (uploaded, pasted, fetched from a URL or
//! a sitemap, or the site's own page) and the passages they are split into. Each passage
//! reaches the engine as one [`KbEntry`] without example questions, with its link.

use nexus_shared::{Millis, SourceKind};
use serde::Serialize;
use uuid::Uuid;

use nexus_engine::KbEntry;

/// Most sources one site may have.
pub const MAX_SOURCES: usize = 500;
/// Most passages one source may hold.
pub const MAX_PASSAGES: usize = 2000;

/// One knowledge source of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnowledgeSource {
    pub id: Uuid,
    pub kind: SourceKind,
    /// Unique within the site; the first part of its passages' ids (`doc:<slug>#…`).
    pub slug: String,
    pub title: String,
    /// The page or sitemap fetched (`url`, `sitemap`, `page`); `None` for files and pastes.
    pub url: Option<String>,
    /// `html`, `markdown` or `text` (of the last import; `html` for a sitemap).
    pub format: String,
    /// How many passages it holds (read with it).
    pub passages: u32,
    /// Why the last refresh failed, if it did (the passages of the import before stay).
    pub last_error: Option<String>,
    /// When its content was last read (fetched, uploaded or pasted).
    pub fetched_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// One passage: a section of an article under its heading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Passage {
    /// `doc:<source slug>#<heading slug>` (a sitemap's pages add `/<page slug>`): stable
    /// across re-imports, so a re-import updates the passage in place.
    pub id: String,
    /// "Article title › Heading", or the article's title for its introduction.
    pub title: String,
    pub body: String,
    /// Where the visitor reads the whole article (with the heading's anchor when it has one).
    pub url: Option<String>,
}

impl Passage {
    /// The passage as the engine reads it: no example questions, its text as the answer.
    pub fn entry(&self) -> KbEntry {
        KbEntry {
            id: self.id.clone(),
            title: self.title.clone(),
            answer: self.body.clone(),
            examples: Vec::new(),
            escalate: None,
            url: self.url.clone(),
        }
    }
}

/// What an import changed in a source's passages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PassageChanges {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
}
