//! The demo page, the embed loader (`/widget.js`) and the widget build (`/widget/…`).
//!
//! The widget build lives in a directory written by `cargo xtask widget` (content-hashed file
//! names plus `manifest.json`). It is read into memory with gzip and brotli variants made once.
//! When the build on disk changes (its manifest's modification time), it is read again, so a
//! running server never serves a stale widget. Hashed files are cached forever by browsers;
//! `widget.js` (which names the current hashes) is revalidated on every load.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use nexus_shared::ErrorCode;

use crate::AppState;
use crate::http::error::AppError;

/// The demo shop page, with the embed snippet in it (its help text is the demo site's articles).
const INDEX_HTML: &str = crate::demo::DEMO_PAGE;

/// The agents' page: it loads the agent app through `/widget/agent.js` (no inline script, so
/// the page's CSP holds).
const AGENT_HTML: &str = include_str!("../../../agent.html");

/// Files of the build that name the current hashes: revalidated on every load.
const UNHASHED: [&str; 2] = ["manifest.json", "agent.js"];

/// The security policy of the pages this server serves itself.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

struct Asset {
    content_type: &'static str,
    raw: Vec<u8>,
    /// Compressed variants, made on first request (brotli at quality 11 takes a while).
    gzip: OnceLock<Vec<u8>>,
    brotli: OnceLock<Vec<u8>>,
    etag: String,
}

#[derive(Default)]
struct Loaded {
    files: HashMap<String, Arc<Asset>>,
    manifest_mtime: Option<SystemTime>,
}

/// The widget build, in memory.
pub struct Assets {
    dir: PathBuf,
    loaded: RwLock<Loaded>,
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        ..Default::default()
    };
    let _ = brotli::BrotliCompress(&mut &data[..], &mut out, &params);
    out
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Assets {
    /// Reads the build in `dir`. A missing build is not fatal: the widget routes answer 503
    /// with instructions until it appears.
    pub fn load(dir: &Path) -> Self {
        let assets = Self {
            dir: dir.to_owned(),
            loaded: RwLock::new(Loaded::default()),
        };
        assets.refresh();
        if assets.is_empty() {
            tracing::warn!(
                dir = %dir.display(),
                "no widget build found; run `cargo xtask widget` (the README's run command does)"
            );
        }
        assets
    }

    fn is_empty(&self) -> bool {
        self.loaded
            .read()
            .map(|l| l.files.is_empty())
            .unwrap_or(true)
    }

    /// Reloads the build when its manifest changed on disk.
    fn refresh(&self) {
        let manifest = self.dir.join("manifest.json");
        let current = mtime(&manifest);
        let stale = self
            .loaded
            .read()
            .map(|l| l.manifest_mtime != current)
            .unwrap_or(true);
        if !stale {
            return;
        }
        let mut files = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned)
                else {
                    continue;
                };
                if !path.is_file() {
                    continue;
                }
                let Ok(raw) = std::fs::read(&path) else {
                    continue;
                };
                let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&raw))[..16]);
                files.insert(
                    name.clone(),
                    Arc::new(Asset {
                        content_type: content_type(&name),
                        gzip: OnceLock::new(),
                        brotli: OnceLock::new(),
                        raw,
                        etag,
                    }),
                );
            }
        }
        if current.is_some() {
            tracing::info!(files = files.len(), dir = %self.dir.display(), "widget build loaded");
        }
        if let Ok(mut loaded) = self.loaded.write() {
            *loaded = Loaded {
                files,
                manifest_mtime: current,
            };
        }
    }

    fn get(&self, name: &str) -> Option<Arc<Asset>> {
        self.refresh();
        self.loaded.read().ok()?.files.get(name).cloned()
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/agent", get(agent_page))
        .route("/widget.js", get(loader))
        .route("/widget/{file}", get(widget_file))
}

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
}

async fn index() -> Response {
    page(INDEX_HTML)
}

async fn agent_page() -> Response {
    page(AGENT_HTML)
}

fn page(html: &'static str) -> Response {
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    security_headers(headers);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn loader(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve_asset(&state.assets, "widget.js", "no-cache", &headers)
}

async fn widget_file(
    State(state): State<AppState>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let cache = if UNHASHED.contains(&file.as_str()) {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    };
    serve_asset(&state.assets, &file, cache, &headers)
}

fn serve_asset(assets: &Assets, name: &str, cache: &'static str, request: &HeaderMap) -> Response {
    let Some(asset) = assets.get(name) else {
        let error = if assets.is_empty() {
            AppError::new(
                ErrorCode::Unavailable,
                "The widget is not built. Run `cargo xtask widget` (or start with `cargo xtask run`).",
            )
        } else {
            AppError::not_found("Widget file")
        };
        return error.into_response();
    };
    let mut headers = HeaderMap::new();
    security_headers(&mut headers);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // Host pages on other origins import the module and fetch the wasm.
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    // ... and may measure it: resource timing sizes are visible to the host's own monitoring.
    headers.insert(
        HeaderName::from_static("timing-allow-origin"),
        HeaderValue::from_static("*"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        if request.get(header::IF_NONE_MATCH) == Some(&etag) {
            headers.insert(header::ETAG, etag);
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(header::ETAG, etag);
    }
    let accepts = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let accepts = |enc: &str| {
        accepts
            .split(',')
            .any(|part| part.split(';').next().map(str::trim) == Some(enc))
    };
    let body = if accepts("br") {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        asset.brotli.get_or_init(|| brotli(&asset.raw)).clone()
    } else if accepts("gzip") {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        asset.gzip.get_or_init(|| gzip(&asset.raw)).clone()
    } else {
        asset.raw.clone()
    };
    (StatusCode::OK, headers, body).into_response()
}
