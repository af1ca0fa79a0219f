//! The widget's files as a host page's browser gets them: compressed as asked (brotli, gzip or
//! not at all) and decoding to exactly the built file, cacheable (an unchanged file answers 304;
//! hashed files are immutable, the loader is revalidated), and readable and measurable from any
//! origin (CORS and `Timing-Allow-Origin`, so a site's own performance monitoring sees sizes).

use std::io::Read;

use nexus_tests::TestServer;
use nexus_tests::browser::widget_snapshot;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE,
    ETAG, IF_NONE_MATCH,
};

fn header(response: &reqwest::Response, name: impl reqwest::header::AsHeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn get(server: &TestServer, path: &str, encoding: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(server.url(path))
        .header(ACCEPT_ENCODING, encoding)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn widget_files_are_compressed_cacheable_and_measurable_from_any_origin() {
    let dir = tempfile::tempdir().unwrap();
    let widget = widget_snapshot(dir.path());
    let server = TestServer::start_with(&dir.path().join("nexus.db"), &widget).await;

    // The wasm of the visitor app, by its hashed name (as the loader imports it).
    let wasm = std::fs::read_dir(&widget)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("nexus-widget-") && n.ends_with("_bg.wasm"))
        .expect("the built widget has a hashed wasm file");
    let raw = std::fs::read(widget.join(&wasm)).unwrap();
    let path = format!("/widget/{wasm}");

    let br = get(&server, &path, "gzip, deflate, br").await;
    assert_eq!(br.status(), StatusCode::OK);
    assert_eq!(header(&br, CONTENT_ENCODING), "br");
    assert_eq!(header(&br, CONTENT_TYPE), "application/wasm");
    assert_eq!(header(&br, ACCESS_CONTROL_ALLOW_ORIGIN), "*");
    assert_eq!(header(&br, "timing-allow-origin"), "*");
    assert!(header(&br, CACHE_CONTROL).contains("immutable"));
    let etag = header(&br, ETAG);
    assert!(!etag.is_empty(), "an ETag for revalidation");
    let body = br.bytes().await.unwrap();
    assert!(body.len() < raw.len() / 2, "brotli shrinks the wasm");
    let mut decoded = Vec::new();
    brotli::Decompressor::new(&body[..], 4096)
        .read_to_end(&mut decoded)
        .unwrap();
    assert!(decoded == raw, "the brotli body decodes to the built file");

    let gz = get(&server, &path, "gzip").await;
    assert_eq!(header(&gz, CONTENT_ENCODING), "gzip");
    let body = gz.bytes().await.unwrap();
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert!(decoded == raw, "the gzip body decodes to the built file");

    let plain = get(&server, &path, "identity").await;
    assert_eq!(header(&plain, CONTENT_ENCODING), "");
    assert!(plain.bytes().await.unwrap() == raw);

    // Unchanged: 304 with no body.
    let again = reqwest::Client::new()
        .get(server.url(&path))
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());

    // The loader the snippet names is revalidated on every page load, so a new release is
    // picked up at once; it is measurable from other origins too.
    let loader = get(&server, "/widget.js", "br").await;
    assert_eq!(loader.status(), StatusCode::OK);
    assert_eq!(header(&loader, CACHE_CONTROL), "no-cache");
    assert_eq!(header(&loader, "timing-allow-origin"), "*");
    assert!(header(&loader, CONTENT_TYPE).contains("javascript"));

    // A file that is not part of the build.
    let missing = get(&server, "/widget/nexus-widget-00000000.js", "br").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    server.stop().await;
}
