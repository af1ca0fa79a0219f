//! Knowledge sources besides Q&A entries: an owner's articles, uploaded, pasted, or fetched
//! from a URL or a sitemap (only through [`crate::egress`]), and the site's own page. Each
//! article is split into passages by its headings ([`parse`]); each passage is stored
//! ([`Store::save_source`], one transaction per import) and reaches the engine as an entry
//! without example questions, with its link.
//!
//! A re-import of the same source (the same URL, file name or pasted title, or a refresh)
//! updates it in place: passage ids are `doc:<source slug>#<heading slug>`, so an unchanged
//! section keeps its row, a changed one is updated and a removed one deleted.
//!
//! This room does not reload the engine: the caller does, with [`Store::knowledge`].

pub mod fetch;
pub mod parse;

use std::collections::HashSet;

use nexus_shared::{SourceKind, validate_body};
use serde::Serialize;
use uuid::Uuid;

use crate::egress::Egress;
use crate::model::{KnowledgeSource, MAX_PASSAGES, MAX_SOURCES, Passage, PassageChanges, now_ms};
use crate::store::{Store, StoreError};
use fetch::MAX_ARTICLE_BYTES;
use parse::{Format, Sitemap};

/// Most pages one sitemap import fetches (nested sitemaps included).
pub const MAX_SITEMAP_PAGES: usize = 50;
/// Most nested sitemaps a `<sitemapindex>` import reads.
pub const MAX_NESTED_SITEMAPS: usize = 10;

/// What an owner asks to import.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: SourceKind,
    /// The page or sitemap to fetch (`url`, `sitemap`); for a file or a paste, the optional
    /// public link of the article (shown with its answers).
    pub url: Option<String>,
    /// The file name (`file`) or the title (`paste`).
    pub title: Option<String>,
    /// The article itself (`file`, `paste`, `page`).
    pub content: Option<String>,
    /// `html`, `markdown` or `text`; for a file, its name's extension decides when unset;
    /// for a paste, plain text.
    pub format: Option<String>,
}

/// A page of a sitemap that could not be imported (the others were).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub url: String,
    pub message: String,
}

/// The result of an import or a refresh.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub source: KnowledgeSource,
    pub changes: PassageChanges,
    /// Whether the source is new (else an existing one was updated).
    pub created: bool,
    pub skipped: Vec<Skipped>,
}

/// Why an import failed; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Bad input or an unreachable or refused URL, in words for the owner.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(message: impl Into<String>) -> ImportError {
    ImportError::Invalid(message.into())
}

/// One article, read.
#[derive(Debug, Clone)]
pub struct Page {
    /// Its link (passages add their heading's anchor).
    pub url: Option<String>,
    pub format: Format,
    pub text: String,
}

/// Splits `pages` into the passages of the source `slug`. With several pages (a sitemap)
/// each page's passages carry its slug too. Returns the first page's title (if any).
pub fn passages(
    slug: &str,
    pages: &[Page],
    fallback_title: &str,
) -> (Option<String>, Vec<Passage>) {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    let mut first_title = None;
    for page in pages {
        let article = parse::article(page.format, &page.text);
        let title = article
            .title
            .clone()
            .unwrap_or_else(|| fallback_title.to_owned());
        first_title.get_or_insert_with(|| title.clone());
        let prefix = if pages.len() > 1 {
            let page_slug = page
                .url
                .as_deref()
                .map(url_slug)
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| parse::slug(&title));
            format!("doc:{slug}/{page_slug}")
        } else {
            format!("doc:{slug}")
        };
        for section in article.sections {
            let heading = section.heading.as_deref();
            let anchor = heading.map(parse::slug).filter(|s| !s.is_empty());
            let base = format!("{prefix}#{}", anchor.as_deref().unwrap_or("intro"));
            let mut id = base.clone();
            let mut n = 2;
            while !ids.insert(id.clone()) {
                id = format!("{base}-{n}");
                n += 1;
            }
            let title = match heading {
                Some(h) if !h.eq_ignore_ascii_case(&title) => {
                    truncate(&format!("{title} › {h}"), 200)
                }
                _ => truncate(&title, 200),
            };
            let url = page.url.as_deref().map(|u| match &section.anchor {
                Some(a) => format!("{}#{a}", u.split('#').next().unwrap_or(u)),
                None => u.to_owned(),
            });
            out.push(Passage {
                id,
                title,
                body: section.text,
                url,
            });
        }
    }
    (first_title, out)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut t: String = text.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// A URL's host and path as a slug (`https://shop.test/help/returns` → `shop-test-help-returns`).
fn url_slug(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => parse::slug(&format!("{} {}", u.host_str().unwrap_or(""), u.path())),
        Err(_) => parse::slug(url),
    }
}

/// A link given with a file or a paste: http(s), or a path on the site (`/help#returns`).
fn valid_link(url: &str) -> bool {
    let url = url.trim();
    (url.starts_with('/') && !url.starts_with("//"))
        || reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

fn check_size(text: &str) -> Result<(), ImportError> {
    if text.len() > MAX_ARTICLE_BYTES {
        return Err(invalid(format!(
            "The article is larger than {} KB.",
            MAX_ARTICLE_BYTES / 1024
        )));
    }
    Ok(())
}

/// Fetches one page as an article; a body that is not HTML, Markdown or text is refused.
async fn fetch_page(egress: &Egress, url: &str) -> Result<Page, ImportError> {
    let fetched = fetch::get(egress, url)
        .await
        .map_err(|e| ImportError::Invalid(e.0))?;
    let format = Format::of_content_type(&fetched.content_type)
        .map(|f| {
            // Servers often send Markdown as text/plain.
            if f == Format::Text && Format::of_file_name(&fetched.url) == Some(Format::Markdown) {
                Format::Markdown
            } else {
                f
            }
        })
        .ok_or_else(|| {
            invalid(format!(
                "{url} is {}, not an HTML, Markdown or text article.",
                fetched.content_type
            ))
        })?;
    if fetched.body.contains('\0') {
        return Err(invalid(format!("{url} is not a text article.")));
    }
    Ok(Page {
        url: Some(url.to_owned()),
        format,
        text: fetched.body,
    })
}

/// Fetches a sitemap's pages (through a `<sitemapindex>`'s sitemaps too), at most
/// [`MAX_SITEMAP_PAGES`]. Pages that fail are skipped and reported.
async fn fetch_sitemap(
    egress: &Egress,
    url: &str,
) -> Result<(Vec<Page>, Vec<Skipped>), ImportError> {
    let read = |body: &str, url: &str| {
        parse::sitemap(body).ok_or_else(|| {
            invalid(format!(
                "{url} is not a sitemap (<urlset> or <sitemapindex>)."
            ))
        })
    };
    let root = fetch::get(egress, url)
        .await
        .map_err(|e| ImportError::Invalid(e.0))?;
    let mut page_urls = Vec::new();
    let mut skipped = Vec::new();
    match read(&root.body, url)? {
        Sitemap::Pages(urls) => page_urls = urls,
        Sitemap::Index(sitemaps) => {
            for nested in sitemaps.into_iter().take(MAX_NESTED_SITEMAPS) {
                let listed = match fetch::get(egress, &nested).await {
                    Ok(f) => read(&f.body, &nested).map_err(|e| e.to_string()),
                    Err(e) => Err(e.0),
                };
                match listed {
                    Ok(Sitemap::Pages(urls)) => page_urls.extend(urls),
                    Ok(Sitemap::Index(_)) => skipped.push(Skipped {
                        url: nested,
                        message: "A sitemap index inside a sitemap index is not read.".into(),
                    }),
                    Err(message) => skipped.push(Skipped {
                        url: nested,
                        message,
                    }),
                }
                if page_urls.len() >= MAX_SITEMAP_PAGES {
                    break;
                }
            }
        }
    }
    if page_urls.len() > MAX_SITEMAP_PAGES {
        for extra in page_urls.split_off(MAX_SITEMAP_PAGES) {
            skipped.push(Skipped {
                url: extra,
                message: format!("Only the first {MAX_SITEMAP_PAGES} pages of a sitemap are read."),
            });
        }
    }
    let mut pages = Vec::new();
    for page_url in page_urls {
        match fetch_page(egress, &page_url).await {
            Ok(page) => pages.push(page),
            Err(e) => skipped.push(Skipped {
                url: page_url,
                message: e.to_string(),
            }),
        }
    }
    if pages.is_empty() {
        return Err(invalid(match skipped.first() {
            Some(s) => format!("No page of the sitemap could be read: {}", s.message),
            None => format!("{url} lists no pages."),
        }));
    }
    Ok((pages, skipped))
}

/// The article(s) of `request`, its title and the key an earlier import of the same source
/// is found by (its URL, or its title for a file or a paste).
async fn read(
    egress: &Egress,
    request: &Request,
) -> Result<(Vec<Page>, Vec<Skipped>, String), ImportError> {
    let content = || -> Result<&str, ImportError> {
        let text = request.content.as_deref().unwrap_or("");
        if text.trim().is_empty() {
            return Err(invalid("The article is empty."));
        }
        check_size(text)?;
        if text.contains('\0') {
            return Err(invalid(
                "The file is not a text article (HTML, Markdown or text).",
            ));
        }
        Ok(text)
    };
    let link = match request
        .url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    {
        Some(u) if !valid_link(u) => {
            return Err(invalid(format!(
                "{u:?} is not an http(s) link or a path on the site."
            )));
        }
        other => other.map(str::to_owned),
    };
    let named_format = match request.format.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(name) => Some(Format::parse(name).ok_or_else(|| {
            invalid(format!(
                "Unknown format {name:?}: use html, markdown or text."
            ))
        })?),
        None => None,
    };
    let title = request
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match request.kind {
        SourceKind::Url | SourceKind::Sitemap => {
            let url = link.ok_or_else(|| invalid("Give the URL to fetch."))?;
            if !reqwest::Url::parse(&url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                return Err(invalid(format!("{url:?} is not an http or https URL.")));
            }
            if request.kind == SourceKind::Url {
                Ok((vec![fetch_page(egress, &url).await?], Vec::new(), url))
            } else {
                let (pages, skipped) = fetch_sitemap(egress, &url).await?;
                Ok((pages, skipped, url))
            }
        }
        SourceKind::File => {
            let name = title.ok_or_else(|| invalid("Give the file's name."))?;
            let format = named_format
                .or_else(|| Format::of_file_name(name))
                .ok_or_else(|| {
                    invalid(format!(
                        "{name:?} is not an HTML, Markdown or text file (.html, .md, .txt)."
                    ))
                })?;
            let page = Page {
                url: link,
                format,
                text: content()?.to_owned(),
            };
            Ok((vec![page], Vec::new(), name.to_owned()))
        }
        SourceKind::Paste | SourceKind::Page => {
            let name = title.ok_or_else(|| invalid("Give the article a title."))?;
            let page = Page {
                url: link,
                format: named_format.unwrap_or(if request.kind == SourceKind::Page {
                    Format::Html
                } else {
                    Format::Text
                }),
                text: content()?.to_owned(),
            };
            Ok((vec![page], Vec::new(), name.to_owned()))
        }
    }
}

/// Imports `request` into the site's sources: a new source, or the existing one with the
/// same URL (or file name, or pasted title) updated in place. Nothing is stored on an error.
pub async fn import(
    store: &dyn Store,
    egress: &Egress,
    site_id: Uuid,
    request: Request,
) -> Result<Imported, ImportError> {
    let (pages, skipped, key) = read(egress, &request).await?;
    let existing = store.sources(site_id).await?;
    let same = existing.iter().find(|s| {
        s.kind == request.kind
            && match request.kind {
                SourceKind::Url | SourceKind::Sitemap => s.url.as_deref() == Some(key.as_str()),
                _ => s.title == key,
            }
    });
    if same.is_none() && existing.len() >= MAX_SOURCES {
        return Err(invalid(format!(
            "A site may have at most {MAX_SOURCES} sources."
        )));
    }
    let slug = match same {
        Some(s) => s.slug.clone(),
        None => {
            let base = match request.kind {
                SourceKind::Url | SourceKind::Sitemap => url_slug(&key),
                SourceKind::File => parse::slug(key.rsplit_once('.').map_or(&*key, |(n, _)| n)),
                _ => parse::slug(&key),
            };
            let base = if base.is_empty() {
                "article".to_owned()
            } else {
                base
            };
            let taken: HashSet<&str> = existing.iter().map(|s| s.slug.as_str()).collect();
            let mut slug = base.clone();
            let mut n = 2;
            while taken.contains(slug.as_str()) {
                slug = format!("{base}-{n}");
                n += 1;
            }
            slug
        }
    };
    let now = now_ms();
    let source = KnowledgeSource {
        id: same.map_or_else(Uuid::new_v4, |s| s.id),
        kind: request.kind,
        slug,
        title: String::new(),
        url: pages
            .first()
            .and_then(|p| p.url.clone())
            .filter(|_| request.kind != SourceKind::Sitemap)
            .or_else(|| (request.kind == SourceKind::Sitemap).then(|| key.clone())),
        format: pages.first().map_or("html", |p| p.format.name()).to_owned(),
        passages: 0,
        last_error: None,
        fetched_at: Some(now),
        created_at: same.map_or(now, |s| s.created_at),
        updated_at: now,
    };
    save(
        store,
        site_id,
        source,
        &pages,
        skipped,
        &key,
        same.is_none(),
    )
    .await
}

/// Splits and stores; the source's title is the article's when it has one (a sitemap, a
/// file or a paste keep the name they were given).
async fn save(
    store: &dyn Store,
    site_id: Uuid,
    mut source: KnowledgeSource,
    pages: &[Page],
    skipped: Vec<Skipped>,
    key: &str,
    created: bool,
) -> Result<Imported, ImportError> {
    let (title, passages) = passages(&source.slug, pages, key);
    if passages.is_empty() {
        return Err(invalid(
            "The article holds no text to answer from (no passages).",
        ));
    }
    if passages.len() > MAX_PASSAGES {
        return Err(invalid(format!(
            "One source may hold at most {MAX_PASSAGES} passages; this one has {}.",
            passages.len()
        )));
    }
    for p in &passages {
        validate_body(&p.body).map_err(|e| invalid(format!("{}: {}", p.title, e.message)))?;
    }
    source.title = match source.kind {
        SourceKind::Url => title.unwrap_or_else(|| key.to_owned()),
        _ => truncate(key, 200),
    };
    let changes = store.save_source(site_id, &source, &passages).await?;
    let source = store
        .source(site_id, source.id)
        .await?
        .ok_or(StoreError::NotFound)?;
    tracing::info!(
        source = %source.id,
        kind = source.kind.as_str(),
        passages = source.passages,
        ?changes,
        "knowledge source imported"
    );
    Ok(Imported {
        source,
        changes,
        created,
        skipped,
    })
}

/// Reads a source again: a URL or a sitemap is fetched again; the site's own page is read from
/// `own_page`. A failure is noted on the source (its passages stay) and returned.
pub async fn refresh(
    store: &dyn Store,
    egress: &Egress,
    site_id: Uuid,
    id: Uuid,
    own_page: Option<&str>,
) -> Result<Imported, ImportError> {
    let source = store
        .source(site_id, id)
        .await?
        .ok_or(StoreError::NotFound)?;
    let content = match source.kind {
        SourceKind::Url | SourceKind::Sitemap => None,
        SourceKind::Page => Some(
            own_page
                .ok_or_else(|| invalid("This page cannot be read again here."))?
                .to_owned(),
        ),
        SourceKind::File | SourceKind::Paste => {
            return Err(invalid(
                "An uploaded or pasted article is refreshed by adding it again under the same name.",
            ));
        }
    };
    let request = Request {
        kind: source.kind,
        url: source.url.clone(),
        title: Some(source.title.clone()),
        content,
        format: (source.kind == SourceKind::Page).then(|| source.format.clone()),
    };
    let (pages, skipped, key) = match read(egress, &request).await {
        Ok(read) => read,
        Err(ImportError::Invalid(message)) => {
            store.record_source_error(site_id, id, &message).await?;
            return Err(ImportError::Invalid(message));
        }
        Err(e) => return Err(e),
    };
    let key = if source.kind == SourceKind::Page {
        source.title.clone()
    } else {
        key
    };
    let fresh = KnowledgeSource {
        fetched_at: Some(now_ms()),
        ..source
    };
    save(store, site_id, fresh, &pages, skipped, &key, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_have_stable_ids_titles_and_anchored_links() {
        let page = Page {
            url: Some("https://shop.test/help".into()),
            format: Format::Html,
            text: "<title>Help</title><p>Hello.</p><h2 id=\"ship\">Shipping</h2><p>Two days.</p>\
                   <h2>Shipping</h2><p>Again.</p>"
                .into(),
        };
        let (title, passages) = passages("help", &[page], "fallback");
        assert_eq!(title.as_deref(), Some("Help"));
        let view: Vec<(&str, &str, Option<&str>)> = passages
            .iter()
            .map(|p| (p.id.as_str(), p.title.as_str(), p.url.as_deref()))
            .collect();
        assert_eq!(
            view,
            vec![
                ("doc:help#intro", "Help", Some("https://shop.test/help")),
                (
                    "doc:help#shipping",
                    "Help › Shipping",
                    Some("https://shop.test/help#ship")
                ),
                (
                    "doc:help#shipping-2",
                    "Help › Shipping",
                    Some("https://shop.test/help")
                ),
            ]
        );
        assert!(passages.iter().all(|p| p.entry().examples.is_empty()));
    }

    #[test]
    fn links_given_with_files_must_be_http_or_a_site_path() {
        assert!(valid_link("https://shop.test/a"));
        assert!(valid_link("/#shipping"));
        assert!(!valid_link("//evil.test/"));
        assert!(!valid_link("javascript:alert(1)"));
        assert!(!valid_link("data:text/html,x"));
    }
}
