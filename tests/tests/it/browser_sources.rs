//! Answers that cite, in a real Chromium against the real server: a visitor's answer from an
//! article shows its source's title as a link under the AI message (new tab, no opener, no
//! referrer), to the article's page and section.

use nexus_shared::Role;
use nexus_tests::browser::{Browser, assert_widget_built, probe};
use nexus_tests::http::authed;
use nexus_tests::{TestServer, WAIT, agent_login};
use reqwest::Method;
use serde_json::json;

/// JS returning `{text, title, href, target, rel}` of the last AI message's source link, or
/// `null` while there is none.
const LAST_AI_SOURCE: &str = "const r = document.querySelector('#nexus-flow-root');
    if (!r || !r.shadowRoot) return null;
    const ai = Array.from(r.shadowRoot.querySelectorAll('[data-testid=\"message\"][data-author=\"ai\"]'));
    if (!ai.length) return null;
    const last = ai[ai.length - 1];
    const a = last.querySelector('.nf-source a');
    const source = last.querySelector('.nf-source');
    if (!a || source.hidden) return null;
    return {text: last.querySelector('.nf-bubble').innerText, title: a.innerText,
        href: a.getAttribute('href'), target: a.getAttribute('target'), rel: a.getAttribute('rel'),
        html: a.innerHTML};";

async fn ask_in_widget(
    browser: &Browser,
    server: &TestServer,
    question: &str,
) -> serde_json::Value {
    browser.client.goto(&server.url("/")).await.unwrap();
    browser
        .wait_for("the launcher", WAIT, &probe("launcher", "true"))
        .await;
    browser
        .widget_element("launcher")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for("the panel", WAIT, &probe("panel", "true"))
        .await;
    browser.wait_status("online", WAIT).await;
    browser.send_message(question).await;
    browser
        .wait_for("an AI answer with its source link", WAIT, LAST_AI_SOURCE)
        .await
}

/// The demo shop answers from its own page's help text, linked to the section.
#[tokio::test]
async fn the_demo_shop_answers_shipping_from_its_page_with_the_link() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let browser = Browser::start(1280, 900).await;
    let source = ask_in_widget(&browser, &server, "How long does shipping take?").await;
    assert!(
        source["text"]
            .as_str()
            .unwrap()
            .contains("2–3 business days"),
        "{source}"
    );
    assert_eq!(source["title"], "Nexus Demo Shop › Shipping");
    assert_eq!(source["href"], "/#shipping");
    assert_eq!(source["target"], "_blank");
    assert_eq!(source["rel"], "noopener noreferrer");
    browser.screenshot("visitor-answer-with-source-link").await;
    browser.close().await;
    server.stop().await;
}

/// An owner's pasted article with a hostile title: the link shows the title as text, and its
/// URL is the one the owner gave.
#[tokio::test]
async fn a_pasted_article_answers_with_its_title_as_text_and_its_link() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let title = "Tasting <b>evenings</b>";
    let response = authed(
        &reqwest::Client::new(),
        Method::POST,
        server.url("/api/v1/sources"),
        &owner,
        Some(&json!({
            "kind": "paste",
            "title": title,
            "format": "markdown",
            "url": "https://roastery.test/events",
            "content": "## Are dogs welcome at the tasting evening\nDogs on a lead are welcome at every tasting evening.\n"
        })),
    )
    .await;
    assert_eq!(response.status(), 201);
    let browser = Browser::start(1280, 900).await;
    let source = ask_in_widget(
        &browser,
        &server,
        "Are dogs welcome at the tasting evening?",
    )
    .await;
    assert!(
        source["text"].as_str().unwrap().contains("Dogs on a lead"),
        "{source}"
    );
    assert_eq!(
        source["title"],
        "Tasting <b>evenings</b> › Are dogs welcome at the tasting evening"
    );
    assert!(
        !source["html"].as_str().unwrap().contains("<b>"),
        "the title is text, never HTML: {source}"
    );
    assert_eq!(source["href"], "https://roastery.test/events");
    assert_eq!(source["target"], "_blank");
    assert_eq!(source["rel"], "noopener noreferrer");
    browser.close().await;
    server.stop().await;
}

/// The owner's Articles page: add a page by URL (from a local site on 127.0.0.1, let through
/// with `--egress-allow`), see its passages, upload a file, see a refused URL's error in
/// words, and delete.
#[tokio::test]
async fn an_owner_adds_lists_and_deletes_articles_in_the_console() {
    use nexus_tests::browser::{add_accounts, click, page, testid, type_into, widget_snapshot};
    assert_widget_built();
    // A local site with one help page.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/help.html",
        axum::routing::get(|| async {
            axum::response::Html(
                "<title>Roastery help</title><p>About us.</p><h2>Roasting days</h2>\
                 <p>We roast on Mondays.</p><h2>Gift cards</h2><p>They never expire.</p>",
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nexus.db").display());
    let server = TestServer::start_allowing(
        &url,
        &widget_snapshot(dir.path()),
        vec!["127.0.0.0/8".parse().unwrap()],
    )
    .await;
    add_accounts(&server, "demo", &[("olga@demo.test", "Olga", Role::Owner)]).await;
    let owner = Browser::start(1280, 1000).await;
    nexus_tests::browser::log_in(&owner, &server, "olga@demo.test").await;
    click(&owner, "nav-sources").await;
    let titles = "return Array.from(document.querySelectorAll('[data-testid=\"source\"]')).map(s => s.innerText);";
    let listed = owner
        .wait_for(
            "the demo page's articles",
            WAIT,
            &format!("const t = (function() {{ {titles} }})(); return t.length ? t : null;"),
        )
        .await;
    assert!(
        listed[0].as_str().unwrap().contains("Nexus Demo Shop"),
        "{listed}"
    );

    // Add a page by URL.
    let help = format!("http://{addr}/help.html");
    type_into(&owner, "source-url-input", &help).await;
    click(&owner, "source-add").await;
    let status = owner
        .wait_for(
            "the import result",
            WAIT,
            &page(
                &testid("source-status"),
                "e.innerText.includes('added') ? e.innerText : null",
            ),
        )
        .await;
    assert!(status.as_str().unwrap().contains("3 added"), "{status}");
    let row = owner
        .wait_for(
            "the new source in the list",
            WAIT,
            &format!(
                "const t = (function() {{ {titles} }})().filter(s => s.includes('Roastery help'));
                 return t.length ? t[0] : null;"
            ),
        )
        .await;
    let row = row.as_str().unwrap();
    assert!(row.contains("3 passages · web page"), "{row}");
    assert!(row.contains(&help), "{row}");
    assert!(row.contains("last read"), "{row}");

    // Its passages.
    owner
        .js(
            "Array.from(document.querySelectorAll('[data-testid=\"source\"]'))
                .find(s => s.innerText.includes('Roastery help'))
                .querySelector('[data-testid=\"source-passages\"]').click();",
            vec![],
        )
        .await;
    let passages = owner
        .wait_for(
            "the passages",
            WAIT,
            "const p = Array.from(document.querySelectorAll('[data-testid=\"passage\"]')).map(p => p.innerText);
             return p.length ? p : null;",
        )
        .await;
    let passages: Vec<&str> = passages
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(passages.len(), 3, "{passages:?}");
    assert!(passages[1].contains("Roastery help › Roasting days"));
    assert!(passages[1].contains("We roast on Mondays."));

    // An upload.
    let file = dir.path().join("returns.md");
    std::fs::write(&file, "# Returns\nFree within 30 days.\n").unwrap();
    owner
        .client
        .find(fantoccini::Locator::Css(&testid("source-file")))
        .await
        .unwrap()
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    owner
        .wait_for(
            "the uploaded file in the list",
            WAIT,
            &format!(
                "const t = (function() {{ {titles} }})().filter(s => s.includes('returns.md'));
                 return t.length ? t[0] : null;"
            ),
        )
        .await;

    // A refused address: the reason in words, nothing added.
    type_into(&owner, "source-url-input", "http://10.0.0.1/wiki").await;
    click(&owner, "source-add").await;
    let error = owner
        .wait_for(
            "the refusal",
            WAIT,
            &page(
                &testid("source-status"),
                "e.classList.contains('na-field-error') ? e.innerText : null",
            ),
        )
        .await;
    assert!(error.as_str().unwrap().contains("refused"), "{error}");

    // Delete the upload (a second click confirms).
    let delete_upload = "Array.from(document.querySelectorAll('[data-testid=\"source\"]'))
        .find(s => s.innerText.includes('returns.md'))
        .querySelector('[data-testid=\"source-delete\"]').click();";
    owner.js(delete_upload, vec![]).await;
    owner.js(delete_upload, vec![]).await;
    owner
        .wait_for(
            "the upload to be gone",
            WAIT,
            &format!(
                "const t = (function() {{ {titles} }})();
                 return t.length === 2 && !t.some(s => s.includes('returns.md')) ? true : null;"
            ),
        )
        .await;
    let stored = server
        .state
        .store
        .sources(server.site("demo").await.id)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "the demo page and the help page remain");
    owner.close().await;
    server.stop().await;
}
