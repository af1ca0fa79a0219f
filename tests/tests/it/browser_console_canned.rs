//! Canned responses managed in the owner console (the knowledge-base page's list and form,
//! switched to canned responses) in a real headless Chromium: the owner adds one (after a
//! field error from the server), edits it, an agent picks it with `/` in the composer and the
//! visitor receives its text. With that conversation still open, the owner edits it, then
//! deletes it and adds another: each time the agent's picker offers exactly the owner's
//! latest list, without reloading or reopening anything.

use fantoccini::key::Key;
use nexus_shared::Role;
use nexus_tests::browser::{
    Browser, WAIT, click, console_server, element, log_in, page, probe, testid, type_into,
    wait_conversation_state,
};

/// JS: the owner's canned responses as `title: body` lines, once the list shows `expect`
/// rows.
fn rows(expect: usize) -> String {
    format!(
        "const rows = Array.from(document.querySelectorAll('[data-testid=\"kb-item\"]'));
         return rows.length === {expect} ? rows.map(r => r.querySelector('[data-testid=\"kb-title\"]').innerText + ': ' + r.querySelector('[data-testid=\"kb-answer\"]').innerText) : null;"
    )
}

/// JS: what the composer's picker offers (title and text), once it is open.
fn picker_items() -> String {
    page(
        &testid("canned-picker"),
        "Array.from(e.querySelectorAll('[data-testid=\"canned-item\"]')).map(i => i.innerText)",
    )
}

/// JS: true once the picker offers exactly `items` (title and text, in order).
fn picker_offers(items: &[&str]) -> String {
    format!(
        "const got = (() => {{ {} }})();
         return JSON.stringify(got) === {:?};",
        picker_items(),
        serde_json::to_string(items).unwrap()
    )
}

/// Opens the first conversation of the agent's inbox.
async fn open_conversation(agent: &Browser, css: &str) {
    agent
        .wait_for("the conversation in the inbox", WAIT, &page(css, "true"))
        .await;
    element(agent, css).await.click().await.unwrap();
}

#[tokio::test]
async fn owner_manages_canned_responses_that_agents_pick_in_the_composer() {
    let dir = tempfile::tempdir().unwrap();
    let server = console_server(
        dir.path(),
        &[
            ("olga@demo.test", "Olga", Role::Owner),
            ("ana@demo.test", "Ana", Role::Agent),
        ],
    )
    .await;
    let (owner, agent, visitor) = tokio::join!(
        Browser::start(1280, 1000),
        Browser::start(1280, 1000),
        Browser::start(420, 760)
    );

    // The owner opens the canned responses next to the knowledge base; a title that is too
    // long is refused with the server's words.
    log_in(&owner, &server, "olga@demo.test").await;
    click(&owner, "nav-knowledge").await;
    owner
        .wait_for(
            "the canned responses button",
            WAIT,
            &page(&testid("kb-canned-toggle"), "true"),
        )
        .await;
    click(&owner, "kb-canned-toggle").await;
    owner
        .wait_for(
            "no canned responses yet",
            WAIT,
            &page(&testid("kb-empty"), "true"),
        )
        .await;
    click(&owner, "kb-add").await;
    type_into(&owner, "kb-form-title", &"x".repeat(201)).await;
    type_into(&owner, "kb-form-answer", "We ship in 2 days.").await;
    click(&owner, "kb-form-save").await;
    let error = owner
        .wait_for(
            "the field error",
            WAIT,
            &page(&testid("kb-form-error"), "e.innerText"),
        )
        .await;
    assert_eq!(error, "The title must have 1 to 200 characters.");

    // Added, then edited.
    type_into(&owner, "kb-form-title", "Shipping times").await;
    click(&owner, "kb-form-save").await;
    let listed = owner.wait_for("the added response", WAIT, &rows(1)).await;
    assert_eq!(
        listed,
        serde_json::json!(["Shipping times: We ship in 2 days."])
    );
    assert!(
        owner
            .js(&page(&testid("kb-form"), "true"), vec![])
            .await
            .is_null(),
        "the form closes after saving"
    );
    click(&owner, "kb-edit").await;
    type_into(&owner, "kb-form-answer", "We ship within 3 days.").await;
    click(&owner, "kb-form-save").await;
    owner
        .wait_for(
            "the edited response",
            WAIT,
            &format!(
                "const r = ({})(); return r && r[0] === 'Shipping times: We ship within 3 days.' ? r : null;",
                format_args!("() => {{ {} }}", rows(1))
            ),
        )
        .await;

    // A visitor asks for a person; the agent takes over and picks the response with `/`.
    visitor.client.goto(&server.url("/")).await.unwrap();
    visitor.open_widget(WAIT).await;
    visitor.send_message("I want to talk to a human").await;
    visitor
        .wait_for(
            "the handoff banner",
            WAIT,
            &probe("handoff-banner", "e.offsetParent !== null"),
        )
        .await;
    log_in(&agent, &server, "ana@demo.test").await;
    open_conversation(&agent, "[data-testid=inbox-item][data-state=waiting]").await;
    click(&agent, "take-over").await;
    wait_conversation_state(&agent, "human").await;
    type_into(&agent, "agent-input", "/shipping").await;
    let offered = agent
        .wait_for("the canned responses picker", WAIT, &picker_items())
        .await;
    assert_eq!(
        offered,
        serde_json::json!(["Shipping times\nWe ship within 3 days."])
    );
    element(&agent, &testid("agent-input"))
        .await
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    agent
        .wait_for(
            "the edited text in the composer",
            WAIT,
            &page(
                &testid("agent-input"),
                "e.value === 'We ship within 3 days.'",
            ),
        )
        .await;
    click(&agent, "agent-send").await;
    let seen = visitor
        .wait_for(
            "the canned text in the widget",
            WAIT,
            "const r = document.querySelector('#nexus-flow-root');
             const all = r && r.shadowRoot ? r.shadowRoot.querySelectorAll('[data-testid=\"message\"][data-author=\"agent\"]') : [];
             return all.length ? all[all.length - 1].innerText : null;",
        )
        .await;
    assert!(
        seen.as_str()
            .unwrap_or_default()
            .contains("We ship within 3 days."),
        "the visitor receives the canned text: {seen}"
    );

    // From here on the agent's conversation stays open: no reload, no reopening. The page
    // keeps a mark that a reload would lose.
    agent
        .js("window.nexusStillOpen = true; return true;", vec![])
        .await;

    // The owner edits the response again; the agent's next `/` offers the new text.
    click(&owner, "kb-edit").await;
    type_into(&owner, "kb-form-answer", "We ship the same day.").await;
    click(&owner, "kb-form-save").await;
    owner
        .wait_for(
            "the edited response",
            WAIT,
            &format!(
                "const r = ({})(); return r && r[0] === 'Shipping times: We ship the same day.' ? r : null;",
                format_args!("() => {{ {} }}", rows(1))
            ),
        )
        .await;
    type_into(&agent, "agent-input", "/ship").await;
    agent
        .wait_for(
            "the owner's edit in the agent's picker",
            WAIT,
            &picker_offers(&["Shipping times\nWe ship the same day."]),
        )
        .await;
    element(&agent, &testid("agent-input"))
        .await
        .send_keys(&char::from(Key::Escape).to_string())
        .await
        .unwrap();
    agent
        .wait_for(
            "the picker to close",
            WAIT,
            &format!(
                "return document.querySelector({:?}).hidden;",
                testid("canned-picker")
            ),
        )
        .await;
    element(&agent, &testid("agent-input"))
        .await
        .clear()
        .await
        .unwrap();

    // The owner deletes it (after confirming) and adds another; the agent's picker, opened
    // with its button in the same conversation, offers the new one and not the deleted one.
    click(&owner, "kb-delete").await;
    let label = owner
        .js(&page(&testid("kb-delete"), "e.innerText"), vec![])
        .await;
    assert_eq!(label, "Confirm delete", "the first click asks to confirm");
    assert_eq!(
        owner.js(&rows(1), vec![]).await.as_array().map(Vec::len),
        Some(1)
    );
    click(&owner, "kb-delete").await;
    owner
        .wait_for(
            "the deleted response",
            WAIT,
            &page(&testid("kb-empty"), "true"),
        )
        .await;
    click(&owner, "kb-add").await;
    type_into(&owner, "kb-form-title", "Opening hours").await;
    type_into(&owner, "kb-form-answer", "We are open from 9 to 5.").await;
    click(&owner, "kb-form-save").await;
    let listed = owner.wait_for("the other response", WAIT, &rows(1)).await;
    assert_eq!(
        listed,
        serde_json::json!(["Opening hours: We are open from 9 to 5."])
    );

    click(&agent, "canned-open").await;
    agent
        .wait_for(
            "the new response, and not the deleted one, in the agent's picker",
            WAIT,
            &picker_offers(&["Opening hours\nWe are open from 9 to 5."]),
        )
        .await;
    wait_conversation_state(&agent, "human").await;
    assert_eq!(
        agent
            .js("return window.nexusStillOpen === true;", vec![])
            .await,
        true,
        "the agent's page was not reloaded"
    );

    owner.close().await;
    agent.close().await;
    visitor.close().await;
    server.stop().await;
}
