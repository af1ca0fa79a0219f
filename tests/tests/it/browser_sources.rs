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
