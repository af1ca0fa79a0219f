//! Fetching an owner's page or sitemap, only through the egress guard, with a size and a
//! time limit.

use std::time::Duration;

use crate::egress::{Egress, Refused};

/// Longest a whole fetch (connect, redirects, body) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Most redirects followed (each checked by the guard).
pub const MAX_REDIRECTS: usize = 5;
/// Largest article or sitemap read, fetched or uploaded.
pub const MAX_ARTICLE_BYTES: usize = 1024 * 1024;

/// A fetched body.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Where the body came from, after redirects.
    pub url: String,
    pub content_type: String,
    pub body: String,
}

/// Why a fetch failed, in words for the owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

fn refused(url: &str, why: &Refused) -> FetchError {
    FetchError(format!(
        "{url} was refused: {why}. Only public addresses are fetched."
    ))
}

/// GETs `url` through `egress`: refused addresses, redirects to them and names resolving to
/// them fail; a body over [`MAX_ARTICLE_BYTES`] or an answer other than 2xx fails.
pub async fn get(egress: &Egress, url: &str) -> Result<Fetched, FetchError> {
    let parsed = egress.check_url(url).map_err(|why| refused(url, &why))?;
    let client = egress
        .client(FETCH_TIMEOUT, MAX_REDIRECTS)
        .map_err(|e| FetchError(format!("Cannot fetch {url}: {e}.")))?;
    let mut response = client
        .get(parsed)
        .header(
            reqwest::header::USER_AGENT,
            concat!(
                "NexusFlow/",
                env!("CARGO_PKG_VERSION"),
                " (article fetcher)"
            ),
        )
        .header(
            reqwest::header::ACCEPT,
            "text/html, text/markdown, text/plain, application/xml, text/xml;q=0.9",
        )
        .send()
        .await
        .map_err(|e| send_error(url, &e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError(format!(
            "{url} answered HTTP {}.",
            status.as_u16()
        )));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ARTICLE_BYTES as u64)
    {
        return Err(too_large(url));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let final_url = response.url().to_string();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| send_error(url, &e))? {
        if body.len() + chunk.len() > MAX_ARTICLE_BYTES {
            return Err(too_large(url));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        url: final_url,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn too_large(url: &str) -> FetchError {
    FetchError(format!(
        "{url} is larger than {} KB.",
        MAX_ARTICLE_BYTES / 1024
    ))
}

fn send_error(url: &str, e: &reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(why) = err.downcast_ref::<Refused>() {
            return refused(url, why);
        }
        source = err.source();
    }
    if e.is_timeout() {
        FetchError(format!(
            "{url} did not answer within {} s.",
            FETCH_TIMEOUT.as_secs()
        ))
    } else if e.is_redirect() {
        FetchError(format!("{url} redirects too often."))
    } else {
        FetchError(format!("{url} could not be reached."))
    }
}
