//! The owner console in a real headless Chromium: site settings (with field errors, the embed
//! snippet, and a change the visitor's widget shows), the knowledge base (add, search, delete,
//! import, approving a learned entry), analytics drawn as SVG after some traffic, a visitor's
//! data exported and deleted from their conversation (privacy requests); and an agent who sees
//! none of it and whose settings change the server refuses.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::key::Key;
use nexus_server::conversation::learn;
use nexus_server::model::Origin;
use nexus_shared::{Role, ServerFrame, Teach};
use nexus_tests::browser::{
    Browser, WAIT, click, console_server, element, log_in, page, probe, testid, type_into,
};
use nexus_tests::frames;
use nexus_tests::{TestServer, WsClient};
use serde_json::{Value, json};

async fn text_of(browser: &Browser, what: &str, id: &str) -> String {
    browser
        .wait_for(what, WAIT, &page(&testid(id), "e.innerText"))
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A server with the demo site, an owner (Olga) and an agent (Ana).
async fn server(dir: &tempfile::TempDir) -> (TestServer, uuid::Uuid) {
    let server = console_server(
        dir.path(),
        &[
            ("olga@demo.test", "Olga", Role::Owner),
            ("ana@demo.test", "Ana", Role::Agent),
        ],
    )
    .await;
    let site = server
        .state
        .store
        .site_by_key("demo")
        .await
        .unwrap()
        .expect("demo site");
    (server, site.id)
}

#[tokio::test]
async fn owner_changes_settings_the_visitor_sees_them_and_agents_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let (server, site_id) = server(&dir).await;
    let (owner, visitor) = tokio::join!(Browser::start(1280, 1000), Browser::start(420, 760));
    log_in(&owner, &server, "olga@demo.test").await;
    click(&owner, "nav-settings").await;
    owner
        .wait_for(
            "the settings form",
            WAIT,
            &page(&testid("settings-form"), "true"),
        )
        .await;

    // The embed snippet names this server and the site key, and copies.
    let code = owner
        .js(&page(&testid("snippet-code"), "e.value"), vec![])
        .await;
    assert_eq!(
        code,
        format!(
            "<script src=\"{}/widget.js\" data-site=\"demo\" async></script>",
            server.url("")
        )
    );
    click(&owner, "snippet-copy").await;
    let copied = text_of(&owner, "the copy result", "snippet-status").await;
    let selected = owner
        .js(
            &page(
                &testid("snippet-code"),
                "e.selectionStart === 0 && e.selectionEnd === e.value.length",
            ),
            vec![],
        )
        .await;
    assert!(
        copied.contains("Copied") || (copied.contains("Ctrl+C") && selected == true),
        "the snippet is copied, or selected for Ctrl+C: {copied}"
    );

    // A bad colour and a bad origin are refused next to their fields; nothing is saved.
    type_into(&owner, "setting-color", "blue").await;
    type_into(&owner, "setting-allowed_origins", "shop.example/path").await;
    click(&owner, "settings-save").await;
    let color_error = text_of(&owner, "the colour's error", "error-color").await;
    assert_eq!(color_error, "Use a colour like #4f46e5.");
    let origin_error = text_of(&owner, "the origins' error", "error-allowed_origins").await;
    assert!(origin_error.contains("not an origin"), "{origin_error}");
    let store = server.state.store.as_ref();
    assert_eq!(
        store.site(site_id).await.unwrap().unwrap().settings.color,
        "#4f46e5",
        "an invalid form saves nothing"
    );

    // Corrected, with a new greeting: saved.
    type_into(&owner, "setting-color", "#0f766e").await;
    // Emptied with keys, as a person would (a WebDriver clear sends no input event).
    element(&owner, &testid("setting-allowed_origins"))
        .await
        .send_keys(&format!(
            "{}a{}{}",
            char::from(Key::Control),
            char::from(Key::Null),
            char::from(Key::Backspace)
        ))
        .await
        .unwrap();
    type_into(
        &owner,
        "setting-greeting",
        "Welcome to the console test shop!",
    )
    .await;
    click(&owner, "settings-save").await;
    owner
        .wait_for(
            "the settings to be saved",
            WAIT,
            &page(
                &testid("settings-status"),
                "e.getAttribute('data-ok') === 'true'",
            ),
        )
        .await;
    assert!(
        owner
            .js(&page(&testid("error-color"), "true"), vec![])
            .await
            .is_null(),
        "the colour's error is gone"
    );
    let settings = store.site(site_id).await.unwrap().unwrap().settings;
    assert_eq!(settings.greeting, "Welcome to the console test shop!");
    assert_eq!(settings.color, "#0f766e");
    owner
        .js(
            "document.querySelector('[data-testid=\"settings\"]').scrollTop = 0; return true;",
            vec![],
        )
        .await;
    owner.screenshot("console-settings").await;

    // The visitor's widget greets with the new text.
    visitor.client.goto(&server.url("/")).await.unwrap();
    visitor.open_widget(WAIT).await;
    visitor
        .wait_for(
            "the new greeting in the widget",
            WAIT,
            &probe(
                "panel",
                "e.innerText.includes('Welcome to the console test shop!')",
            ),
        )
        .await;

    // Autonomy off: the visitor's question goes to people, not the AI.
    owner
        .client
        .find(Locator::Css(
            "[data-testid=\"setting-autonomy\"] option[value=\"off\"]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&owner, "settings-save").await;
    owner
        .wait_for(
            "autonomy off to be saved",
            WAIT,
            &page(
                &testid("settings-status"),
                "e.getAttribute('data-ok') === 'true'",
            ),
        )
        .await;
    let mut saved = false;
    for _ in 0..100 {
        let s = store.site(site_id).await.unwrap().unwrap().settings;
        if s.autonomy == nexus_shared::Autonomy::Off {
            saved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saved, "autonomy off reached the database");
    visitor
        .wait_for(
            "the visitor to be online",
            WAIT,
            &probe(
                "connection-status",
                "e.getAttribute('data-status') === 'online'",
            ),
        )
        .await;
    visitor.send_message("How do I cancel my order?").await;
    visitor
        .wait_for(
            "the handoff banner (autonomy off)",
            WAIT,
            &probe("handoff-banner", "e.offsetParent !== null"),
        )
        .await;
    let ai_answered = visitor
        .js(
            "const r = document.querySelector('#nexus-flow-root').shadowRoot;
             return r.querySelectorAll('[data-testid=\"message\"][data-author=\"ai\"]').length;",
            vec![],
        )
        .await;
    assert_eq!(ai_answered, 0, "with autonomy off the AI does not answer");

    // An agent sees no console, and the server refuses their settings change.
    let agent = Browser::start(1280, 860).await;
    log_in(&agent, &server, "ana@demo.test").await;
    let console_links = agent
        .js(
            "return document.querySelectorAll('[data-testid=\"nav-settings\"], [data-testid=\"nav-knowledge\"], [data-testid=\"nav-analytics\"]').length;",
            vec![],
        )
        .await;
    assert_eq!(console_links, 0, "agents do not see the owner console");
    assert!(
        agent
            .js(
                "return document.querySelector('[data-testid=\"nav-inbox\"]') !== null;",
                vec![]
            )
            .await
            == true
    );
    let token = server.login("demo", "ana@demo.test").await;
    let refused = reqwest::Client::new()
        .patch(server.url("/api/v1/site"))
        .bearer_auth(&token)
        .json(&json!({"greeting": "Agents rule"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "forbidden");
    assert_eq!(
        store
            .site(site_id)
            .await
            .unwrap()
            .unwrap()
            .settings
            .greeting,
        "Welcome to the console test shop!"
    );

    agent.close().await;
    owner.close().await;
    visitor.close().await;
    server.stop().await;
}

#[tokio::test]
async fn owner_manages_the_knowledge_base_and_approves_learned_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (server, site_id) = server(&dir).await;
    let store = server.state.store.as_ref();
    // Learned answers wait for approval; one waits already.
    let owner_token = server.login("demo", "olga@demo.test").await;
    let patched = reqwest::Client::new()
        .patch(server.url("/api/v1/site"))
        .bearer_auth(&owner_token)
        .json(&json!({"learning": "approve"}))
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success(), "{}", patched.status());
    learn::teach(
        &server.state,
        site_id,
        nexus_shared::Role::Agent,
        Teach {
            question: "Do you ship to Iceland?".into(),
            answer: "Yes, in 5 days.".into(),
            entry_id: None,
        },
        Origin::Teach,
        None,
    )
    .await
    .expect("a pending entry");

    let owner = Browser::start(1280, 1000).await;
    log_in(&owner, &server, "olga@demo.test").await;
    click(&owner, "nav-knowledge").await;
    owner
        .wait_for("the entry count", WAIT, &page(&testid("kb-count"), "true"))
        .await;

    // Add an entry.
    click(&owner, "kb-add").await;
    type_into(&owner, "kb-form-title", "Console gift wrapping").await;
    type_into(&owner, "kb-form-answer", "We wrap gifts for $4.").await;
    type_into(
        &owner,
        "kb-form-examples",
        "Do you gift wrap?\nCan you wrap my present?",
    )
    .await;
    click(&owner, "kb-form-save").await;
    let notice = text_of(&owner, "the added notice", "kb-notice").await;
    assert_eq!(notice, "Entry added.");
    let entries = store.kb_entries(site_id).await.unwrap();
    let added = entries
        .iter()
        .find(|e| e.title == "Console gift wrapping")
        .expect("the entry is stored");
    assert_eq!(added.examples.len(), 2);

    // Search finds it and only it; a search for nothing says so.
    type_into(&owner, "kb-search", "console gift").await;
    let found = owner
        .wait_for(
            "the search result",
            WAIT,
            "const items = Array.from(document.querySelectorAll('[data-testid=\"kb-item\"] [data-testid=\"kb-title\"]')).map(e => e.innerText);
             return items.length === 1 ? items : null;",
        )
        .await;
    assert_eq!(found, json!(["Console gift wrapping"]));
    type_into(&owner, "kb-search", "zzzz nothing like this").await;
    owner
        .wait_for("the empty search", WAIT, &page(&testid("kb-empty"), "true"))
        .await;

    // The learned answer waits; edited, then approved, it becomes knowledge.
    let question = owner
        .wait_for(
            "the pending entry",
            WAIT,
            &page(&testid("pending-question"), "e.value"),
        )
        .await;
    assert_eq!(question, "Do you ship to Iceland?");
    type_into(&owner, "pending-answer", "Yes: Iceland in 5 working days.").await;
    owner.screenshot("console-kb").await;
    click(&owner, "pending-approve").await;
    let approved = text_of(&owner, "the approval note", "pending-note").await;
    assert!(approved.starts_with("Approved"), "{approved}");
    owner
        .wait_for(
            "nothing left to approve",
            WAIT,
            &page(&testid("pending-empty"), "true"),
        )
        .await;
    let entries = store.kb_entries(site_id).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.answer == "Yes: Iceland in 5 working days."
                && e.examples.iter().any(|q| q == "Do you ship to Iceland?")),
        "the edited answer is in the knowledge base"
    );

    // Import a JSON Lines file: one good line, one broken.
    let file = dir.path().join("faq.jsonl");
    std::fs::write(
        &file,
        "{\"title\": \"Console loyalty points\", \"answer\": \"One point per euro.\", \"examples\": [\"How do loyalty points work?\"]}\nnot json at all\n",
    )
    .unwrap();
    element(&owner, &testid("kb-import-file"))
        .await
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    let result = owner
        .wait_for(
            "the import result",
            WAIT,
            &page(
                &testid("kb-import-result"),
                "e.innerText.includes('imported') ? e.innerText : null",
            ),
        )
        .await;
    let result = result.as_str().unwrap_or_default().to_owned();
    assert!(
        result.contains("1 imported") && result.contains("1 with errors"),
        "{result}"
    );
    let entries = store.kb_entries(site_id).await.unwrap();
    assert!(entries.iter().any(|e| e.title == "Console loyalty points"));

    // Delete asks once more, then removes the entry.
    type_into(&owner, "kb-search", "console gift").await;
    owner
        .wait_for(
            "the entry to delete",
            WAIT,
            "const items = document.querySelectorAll('[data-testid=\"kb-item\"]');
             return items.length === 1;",
        )
        .await;
    click(&owner, "kb-delete").await;
    let label = text_of(&owner, "the confirmation", "kb-delete").await;
    assert_eq!(label, "Confirm delete");
    assert!(
        store
            .kb_entries(site_id)
            .await
            .unwrap()
            .iter()
            .any(|e| e.title == "Console gift wrapping"),
        "one click does not delete"
    );
    click(&owner, "kb-delete").await;
    owner
        .wait_for(
            "the list without it",
            WAIT,
            &page(&testid("kb-empty"), "true"),
        )
        .await;
    assert!(
        !store
            .kb_entries(site_id)
            .await
            .unwrap()
            .iter()
            .any(|e| e.title == "Console gift wrapping"),
        "the entry is deleted"
    );

    owner.close().await;
    server.stop().await;
}

/// A visitor over the protocol asks `question`; returns once the AI answered or a person was
/// called.
async fn visit(server: &TestServer, question: &str) {
    let (mut client, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    client.send(&frames::send(None, "q-1", question)).await;
    client
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author.kind() == "ai" => Some(()),
            ServerFrame::State { state, .. }
                if *state == nexus_shared::ConversationState::Waiting =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
}

#[tokio::test]
async fn analytics_draws_the_traffic_as_charts_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = server(&dir).await;
    for q in [
        "How do I cancel my order?",
        "How can I track my order?",
        "I want to talk to a human",
    ] {
        visit(&server, q).await;
    }
    let owner_token = server.login("demo", "olga@demo.test").await;
    let owner = Browser::start(1280, 1100).await;
    log_in(&owner, &server, "olga@demo.test").await;
    click(&owner, "nav-analytics").await;
    let conversations = owner
        .wait_for(
            "the analytics numbers",
            WAIT,
            &page(
                &testid("stat-conversations"),
                "e.querySelector('strong').innerText",
            ),
        )
        .await;
    // The page shows what the API counts for the same period.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let api: Value = reqwest::Client::new()
        .get(server.url(&format!(
            "/api/v1/analytics?from={}&to={}",
            now - 30 * 86_400_000,
            now + 60_000
        )))
        .bearer_auth(&owner_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(conversations, api["conversations"].to_string());
    assert_eq!(conversations, "3", "three visitors wrote: {api}");
    let escalations = text_of(&owner, "the escalations chart", "chart-escalations").await;
    assert!(
        escalations.contains("Visitor asked for a person: 1"),
        "the escalation is counted by reason: {escalations}"
    );
    let automation = text_of(&owner, "the automation chart", "chart-automation").await;
    let rate = format!(
        "{}%",
        (api["automation_rate"].as_f64().unwrap() * 100.0).round() as u32
    );
    assert!(automation.contains(&rate), "{automation} shows {rate}");
    // Every chart is drawn: an SVG with shapes and its numbers as text.
    for chart in [
        "chart-automation",
        "chart-escalations",
        "chart-csat",
        "chart-first-response",
        "chart-handle-time",
        "chart-learning",
    ] {
        let shapes = owner
            .js(
                &page(
                    &testid(chart),
                    "e.querySelectorAll('svg rect, svg polyline').length",
                ),
                vec![],
            )
            .await;
        assert!(shapes.as_u64().unwrap_or(0) > 0, "{chart} draws shapes");
        let caption = owner
            .js(
                &page(&testid(chart), "e.querySelector('figcaption').innerText"),
                vec![],
            )
            .await;
        assert!(!caption.as_str().unwrap_or_default().is_empty());
    }
    let bars = owner
        .js(
            &page(
                &testid("chart-escalations"),
                "Array.from(e.querySelectorAll('rect')).map(r => parseFloat(r.getAttribute('width')))",
            ),
            vec![],
        )
        .await;
    assert_eq!(
        bars.as_array().map(Vec::len),
        Some(1),
        "one bar for the one reason: {bars}"
    );
    owner.screenshot("console-analytics").await;

    owner.close().await;
    server.stop().await;
}

#[tokio::test]
async fn owner_exports_then_deletes_a_visitors_data_from_their_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let (server, site_id) = server(&dir).await;
    // A visitor leaves their phone number and asks for a person.
    let (mut client, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    client
        .send(&frames::send(
            None,
            "q-1",
            "I want to talk to a human, my phone is +49 170 5550199",
        ))
        .await;
    let (conversation_id, _) = client
        .recv_until(|f| match f {
            ServerFrame::State {
                state,
                conversation_id,
                ..
            } if *state == nexus_shared::ConversationState::Waiting => Some(*conversation_id),
            _ => None,
        })
        .await;
    let store = server.state.store.as_ref();
    let visitor_id = store
        .conversation(conversation_id)
        .await
        .unwrap()
        .expect("the conversation")
        .visitor_id;

    let owner = Browser::start(1280, 1000).await;
    log_in(&owner, &server, "olga@demo.test").await;
    owner
        .wait_for(
            "the waiting conversation in the inbox",
            WAIT,
            &page("[data-testid=inbox-item][data-state=waiting]", "true"),
        )
        .await;
    element(&owner, "[data-testid=inbox-item][data-state=waiting]")
        .await
        .click()
        .await
        .unwrap();

    // Export shows everything kept about the visitor, their words included.
    click(&owner, "visitor-export").await;
    let exported = owner
        .wait_for(
            "the exported data",
            WAIT,
            &page(
                &testid("visitor-export-json"),
                "!e.hidden && e.innerText.includes('5550199') && e.innerText",
            ),
        )
        .await;
    let exported = exported.as_str().unwrap_or_default();
    assert!(exported.contains(&visitor_id.to_string()), "{exported}");

    // Delete asks first; only the second click deletes.
    click(&owner, "visitor-delete").await;
    let asked = text_of(&owner, "the confirmation", "visitor-privacy-status").await;
    assert!(asked.contains("again to confirm"), "{asked}");
    assert!(
        store
            .visitor_profile(site_id, visitor_id)
            .await
            .unwrap()
            .is_some(),
        "nothing is deleted before the confirmation"
    );
    click(&owner, "visitor-delete").await;
    owner
        .wait_for(
            "the deletion's result",
            WAIT,
            &page(
                &testid("visitor-privacy-status"),
                "e.innerText.includes('was deleted')",
            ),
        )
        .await;
    assert!(
        store
            .visitor_profile(site_id, visitor_id)
            .await
            .unwrap()
            .is_none(),
        "the visitor is gone from the store"
    );
    let owner_token = server.login("demo", "olga@demo.test").await;
    let found: Value = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/visitors/{visitor_id}/export")))
        .bearer_auth(&owner_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["code"], "not_found", "{found}");

    owner.close().await;
    server.stop().await;
}
