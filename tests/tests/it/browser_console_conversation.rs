//! The agent's conversation view in a real headless Chromium, next to a visitor in a second
//! one: the handoff summary (what the visitor wants, why a person, a suggested reply), the
//! suggested reply inserted, edited and sent (the visitor sees the edited text), the canned
//! responses picker opened with `/`, and the visitor's details.

use fantoccini::key::Key;
use nexus_shared::Role;
use nexus_tests::browser::{
    Browser, WAIT, click, console_server, element, log_in, page, probe, testid, type_into,
    wait_conversation_state,
};
use serde_json::json;

async fn input_value(browser: &Browser) -> String {
    browser
        .js(&page(&testid("agent-input"), "e.value"), vec![])
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn visitor_says(visitor: &Browser, text: &str) {
    visitor.send_message(text).await;
}

#[tokio::test]
async fn agent_inserts_edits_and_sends_the_suggested_reply_and_uses_canned_responses() {
    let dir = tempfile::tempdir().unwrap();
    let server = console_server(
        dir.path(),
        &[
            ("olga@demo.test", "Olga", Role::Owner),
            ("ana@demo.test", "Ana", Role::Agent),
        ],
    )
    .await;
    // The owner writes a canned response over the API.
    let http = reqwest::Client::new();
    let owner_token = server.login("demo", "olga@demo.test").await;
    let created = http
        .post(server.url("/api/v1/canned"))
        .bearer_auth(&owner_token)
        .json(&json!({"title": "Thanks for waiting", "body": "Thanks for waiting, I am on it."}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());

    let (agent, visitor) = tokio::join!(Browser::start(1280, 1000), Browser::start(420, 760));

    // The visitor asks something the AI answers, then asks for a person.
    visitor.client.goto(&server.url("/")).await.unwrap();
    visitor.open_widget(WAIT).await;
    visitor_says(&visitor, "How do I cancel my order?").await;
    visitor
        .wait_for("the AI's answer", WAIT, &probe_css_ai())
        .await;
    visitor_says(&visitor, "I want to talk to a human").await;
    visitor
        .wait_for(
            "the handoff banner",
            WAIT,
            &probe("handoff-banner", "e.offsetParent !== null"),
        )
        .await;

    // The agent logs in and opens the waiting conversation.
    log_in(&agent, &server, "ana@demo.test").await;
    agent
        .wait_for(
            "the escalation in the inbox",
            WAIT,
            &page("[data-testid=inbox-item][data-state=waiting]", "true"),
        )
        .await;
    element(&agent, "[data-testid=inbox-item][data-state=waiting]")
        .await
        .click()
        .await
        .unwrap();

    // The summary says what the visitor wants, why a person, and suggests a reply.
    let wants = agent
        .wait_for(
            "the handoff summary",
            WAIT,
            &page(&testid("summary-wants"), "e.innerText"),
        )
        .await;
    assert_eq!(wants, "How do I cancel my order?");
    let reason = agent
        .js(&page(&testid("summary-reason"), "e.innerText"), vec![])
        .await;
    assert_eq!(reason, "Visitor asked for a person");
    let answered = agent
        .js(&page(&testid("summary-answered"), "e.innerText"), vec![])
        .await;
    assert!(
        !answered
            .as_str()
            .unwrap_or_default()
            .contains("Nothing yet"),
        "the AI's earlier answer is listed: {answered}"
    );
    let suggested = agent
        .wait_for(
            "the suggested reply",
            WAIT,
            &page(&testid("summary-suggested"), "e.innerText"),
        )
        .await;
    let suggested = suggested.as_str().unwrap_or_default().to_owned();
    assert!(!suggested.trim().is_empty());
    let info = agent
        .js(&page(&testid("visitor-info"), "e.innerText"), vec![])
        .await;
    assert!(
        info.as_str().unwrap_or_default().contains("Page: "),
        "the visitor's page is shown: {info}"
    );

    click(&agent, "take-over").await;
    wait_conversation_state(&agent, "human").await;

    // `/` opens the canned responses; Enter picks the first match.
    type_into(&agent, "agent-input", "/thanks").await;
    let items = agent
        .wait_for(
            "the canned responses picker",
            WAIT,
            &page(
                &testid("canned-picker"),
                "Array.from(e.querySelectorAll('[data-testid=\"canned-item\"]')).map(i => i.innerText)",
            ),
        )
        .await;
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    element(&agent, &testid("agent-input"))
        .await
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    agent
        .wait_for(
            "the canned response in the composer",
            WAIT,
            &page(
                &testid("agent-input"),
                "e.value === 'Thanks for waiting, I am on it.'",
            ),
        )
        .await;
    assert!(
        agent
            .js(&page(&testid("canned-picker"), "true"), vec![])
            .await
            .is_null(),
        "the picker closes"
    );

    // The suggested reply replaces the draft, is edited, and sent.
    click(&agent, "insert-suggested").await;
    assert_eq!(input_value(&agent).await.trim(), suggested.trim());
    agent
        .js(
            "document.querySelector('[data-testid=\"handoff-summary\"]').scrollIntoView(); return true;",
            vec![],
        )
        .await;
    agent.screenshot("console-conversation-summary").await;
    element(&agent, &testid("agent-input"))
        .await
        .send_keys(" Ana will check it for you.")
        .await
        .unwrap();
    let edited = input_value(&agent).await;
    assert!(
        edited.ends_with(" Ana will check it for you.") && edited.len() > suggested.len(),
        "the inserted reply is editable: {edited}"
    );
    click(&agent, "agent-send").await;
    let seen = visitor
        .wait_for(
            "the edited reply in the widget",
            WAIT,
            &probe_css_last_agent(),
        )
        .await;
    let seen = seen.as_str().unwrap_or_default().to_owned();
    assert!(
        seen.contains("Ana will check it for you.")
            && seen.contains(suggested.lines().next().unwrap_or_default().trim()),
        "the visitor sees the edited reply: {seen}"
    );

    agent.close().await;
    visitor.close().await;
    server.stop().await;
}

/// JS: whether the widget shows an AI message.
fn probe_css_ai() -> String {
    "const r = document.querySelector('#nexus-flow-root');
     return !!(r && r.shadowRoot && r.shadowRoot.querySelector('[data-testid=\"message\"][data-author=\"ai\"]'));"
        .to_owned()
}

/// JS: the text of the widget's last agent message, or null.
fn probe_css_last_agent() -> String {
    "const r = document.querySelector('#nexus-flow-root');
     const all = r && r.shadowRoot ? r.shadowRoot.querySelectorAll('[data-testid=\"message\"][data-author=\"agent\"]') : [];
     return all.length ? all[all.length - 1].innerText : null;"
        .to_owned()
}
