//! The first slice in a real headless Chromium against the real server: open the demo page,
//! open the widget, ask how to cancel an order, read the AI's answer, ask for a person, see
//! that the conversation waits for one.

use nexus_tests::TestServer;
use nexus_tests::WAIT;
use nexus_tests::browser::assert_widget_built;
use nexus_tests::browser::{Browser, probe};

fn q(testid: &str) -> String {
    probe(testid, "true")
}

/// JS returning `[author, text]` of every message bubble.
const MESSAGES: &str = "const r = document.querySelector('#nexus-flow-root');
    if (!r || !r.shadowRoot) return [];
    return Array.from(r.shadowRoot.querySelectorAll('[data-testid=\"message\"]'))
        .map(m => [m.getAttribute('data-author'), m.innerText]);";

#[tokio::test]
async fn visitor_asks_gets_an_ai_answer_then_asks_for_a_person() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let browser = Browser::start(1280, 900).await;

    browser.client.goto(&server.url("/")).await.unwrap();
    browser.wait_for("the launcher", WAIT, &q("launcher")).await;
    let wasm_before: bool = browser
        .js(
            "return performance.getEntriesByType('resource').some(e => e.name.endsWith('.wasm'));",
            vec![],
        )
        .await
        .as_bool()
        .unwrap_or(true);
    assert!(
        !wasm_before,
        "the wasm app is not fetched before the visitor opens the chat"
    );
    browser.screenshot("visitor-closed-desktop").await;

    browser
        .widget_element("launcher")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("the panel", WAIT, &q("panel")).await;
    browser.wait_status("online", WAIT).await;

    browser.send_message("how can I cancel my order").await;

    let answer = browser
        .wait_for(
            "an AI answer",
            WAIT,
            &format!(
                "const all = (function() {{ {MESSAGES} }})();
                 const ai = all.filter(m => m[0] === 'ai');
                 return ai.length ? ai[ai.length - 1][1] : null;"
            ),
        )
        .await;
    let answer = answer.as_str().unwrap_or_default().to_lowercase();
    assert!(
        answer.contains("cancel"),
        "the AI answers about cancelling: {answer}"
    );
    assert!(!answer.contains("{{"), "no raw placeholders: {answer}");
    browser.screenshot("visitor-open-desktop").await;

    let messages = browser.js(MESSAGES, vec![]).await;
    let visitor_lines: Vec<String> = messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m[0] == "visitor")
        .map(|m| m[1].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        visitor_lines
            .iter()
            .any(|t| t.contains("how can I cancel my order")),
        "the visitor's own message is shown: {messages}"
    );

    browser.send_message("I want to talk to a human").await;
    let banner = browser
        .wait_for(
            "the handoff banner",
            WAIT,
            &probe(
                "handoff-banner",
                "e.offsetParent !== null ? e.innerText : null",
            ),
        )
        .await;
    let banner = banner.as_str().unwrap_or_default().to_lowercase();
    assert!(
        banner.contains("person") || banner.contains("waiting"),
        "the visitor sees that a person is coming: {banner}"
    );
    browser.screenshot("visitor-handoff-desktop").await;

    // Message text is never HTML: a hostile message shows as text and runs nothing.
    let input = browser.widget_element("input").await;
    input
        .send_keys("<img src=x onerror=\"window.__pwned=1\">")
        .await
        .unwrap();
    browser.widget_element("send").await.click().await.unwrap();
    browser
        .wait_for(
            "the hostile message as text",
            WAIT,
            &format!(
                "const all = (function() {{ {MESSAGES} }})();
                 return all.some(m => m[0] === 'visitor' && m[1].includes('<img src=x'));"
            ),
        )
        .await;
    let injected = browser
        .js(
            "const r = document.querySelector('#nexus-flow-root');
             return window.__pwned === 1 || r.shadowRoot.querySelectorAll('[data-testid=\"message\"] img').length > 0;",
            vec![],
        )
        .await;
    assert_eq!(
        injected,
        serde_json::Value::Bool(false),
        "no HTML was injected"
    );

    browser.close().await;
    server.stop().await;
}
