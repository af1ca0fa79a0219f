//! The visitor widget's features in a real headless Chromium against the real server, on a host
//! page of its own origin (as a customer's website): the language table chosen by
//! `data-locale`, `NexusFlow.identify()` (verified and refused), `data-preload`, the email form
//! when nobody is online, and the history list.

use std::time::Duration;

use nexus_tests::TestServer;
use nexus_tests::WAIT;
use nexus_tests::browser::{Browser, HostPage, MESSAGES, assert_widget_built, probe};

async fn send(browser: &Browser, text: &str) {
    browser.send_message(text).await;
    browser
        .wait_for(
            "the message to be stored",
            WAIT,
            &format!(
                "const all = (function() {{ {MESSAGES} }})();
                 return all.some(m => m[0] === 'visitor' && m[1] === 'sent' && m[2].includes({}));",
                serde_json::Value::from(text)
            ),
        )
        .await;
}

/// The visitor's token as the widget keeps it.
async fn token(browser: &Browser) -> String {
    browser
        .js(
            "return localStorage.getItem('nexus-flow:demo:visitor');",
            vec![],
        )
        .await
        .as_str()
        .expect("the widget keeps a visitor token")
        .to_owned()
}

#[tokio::test]
async fn german_ui_then_a_refused_and_a_verified_identity() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let store = server.state.store.clone();
    let mut site = store.site_by_key("demo").await.unwrap().unwrap();
    site.settings.identity_secret = Some("s3cret identity key".into());
    store
        .update_site_settings(site.id, &site.settings)
        .await
        .unwrap();
    let page = HostPage::embed(&server.url(""), "data-locale=\"de\"", "").await;
    let browser = Browser::start(1280, 900).await;
    browser.client.goto(&page.url).await.unwrap();
    browser.click_launcher(WAIT).await;

    let placeholder = browser
        .js(&probe("input", "e.getAttribute('placeholder')"), vec![])
        .await;
    assert_eq!(placeholder, "Nachricht schreiben…", "German placeholder");
    let human = browser
        .js(&probe("talk-to-human", "e.innerText"), vec![])
        .await;
    assert_eq!(human, "Mit einem Menschen sprechen", "German button");
    send(&browser, "Hallo").await;
    let guest_token = token(&browser).await;

    // A claim the site did not sign: refused, said so, and the chat carries on as a guest.
    browser
        .js(
            "NexusFlow.identify({id: 'u-1', name: 'Mallory', hash: '00ff'});",
            vec![],
        )
        .await;
    let notice = browser
        .wait_for(
            "the refusal notice",
            WAIT,
            &probe_notice("e.offsetParent === null ? null : e.innerText"),
        )
        .await;
    assert!(
        notice.as_str().unwrap_or_default().contains("Gast"),
        "the visitor reads that they were not verified: {notice}"
    );
    browser.wait_status("online", WAIT).await;
    let guest = store
        .visitor_by_token(site.id, &guest_token)
        .await
        .unwrap()
        .expect("the guest visitor");
    assert_eq!(guest.info.name, None, "the refused name is not kept");

    // A signed claim: the chat continues as Ada, and the server knows her.
    let hash = nexus_server::access::identity::identity_hash("s3cret identity key", "u-1");
    browser
        .js(
            "NexusFlow.identify({id: 'u-1', name: 'Ada', email: 'ada@example.com', hash: arguments[0]});",
            vec![hash.into()],
        )
        .await;
    browser
        .wait_for(
            "the reconnect as Ada",
            WAIT,
            &probe(
                "connection-status",
                "e.getAttribute('data-status') !== 'online'",
            ),
        )
        .await;
    browser.wait_status("online", WAIT).await;
    send(&browser, "Ich bin Ada").await;
    let ada = store
        .visitor_by_token(site.id, &token(&browser).await)
        .await
        .unwrap()
        .expect("the identified visitor");
    assert_eq!(ada.info.name.as_deref(), Some("Ada"));
    assert_eq!(ada.info.email.as_deref(), Some("ada@example.com"));

    browser.close().await;
    server.stop().await;
}

fn probe_notice(expr: &str) -> String {
    nexus_tests::browser::probe_css(".nf-notice", expr)
}

#[tokio::test]
async fn preload_fetches_the_app_when_idle_and_only_then() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let browser = Browser::start(1280, 900).await;

    let lazy = HostPage::embed(&server.url(""), "", "").await;
    browser.client.goto(&lazy.url).await.unwrap();
    browser
        .wait_for("the launcher", WAIT, &probe("launcher", "true"))
        .await;
    // Longer than the loader's idle fallback and timeout: a preload would have started.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !browser.wasm_requested().await,
        "without data-preload the wasm waits for the first click"
    );

    let eager = HostPage::embed(&server.url(""), "data-preload", "").await;
    browser.client.goto(&eager.url).await.unwrap();
    browser
        .wait_for(
            "the wasm to be fetched without a click",
            WAIT,
            "return performance.getEntriesByType('resource').some(e => e.name.endsWith('.wasm'));",
        )
        .await;
    // The app is mounted (its launcher has the unread badge) but stays closed.
    browser
        .wait_for(
            "the app's launcher",
            WAIT,
            &nexus_tests::browser::probe_css(".nf-badge", "true"),
        )
        .await;
    let open = browser
        .js(&probe("panel", "e.getClientRects().length > 0"), vec![])
        .await;
    assert_eq!(open, false, "preloading does not open the panel");

    browser.close().await;
    server.stop().await;
}

#[tokio::test]
async fn nobody_online_the_visitor_leaves_an_email() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let page = HostPage::embed(&server.url(""), "", "").await;
    let browser = Browser::start(1280, 900).await;
    browser.client.goto(&page.url).await.unwrap();
    browser.click_launcher(WAIT).await;
    send(&browser, "Where is my parcel?").await;

    // No agent is online: asking for a person brings the email form and the offline note.
    browser
        .widget_element("talk-to-human")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for(
            "the email form",
            WAIT,
            &probe("offline-email", "e.offsetParent !== null"),
        )
        .await;
    let note = browser
        .js(
            &nexus_tests::browser::probe_css(
                ".nf-offline",
                "e.offsetParent === null ? '' : e.innerText",
            ),
            vec![],
        )
        .await;
    assert!(
        !note.as_str().unwrap_or_default().is_empty(),
        "the visitor is told when to expect an answer"
    );
    browser.screenshot("visitor-offline-desktop").await;

    // A typo is caught in the widget; a real address is sent and confirmed.
    let field = browser.widget_element("email-input").await;
    field.send_keys("ada at example").await.unwrap();
    browser
        .widget_element("email-send")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for(
            "the invalid-address notice",
            WAIT,
            &probe_notice("e.offsetParent === null ? null : e.innerText"),
        )
        .await;
    field.clear().await.unwrap();
    field.send_keys("ada@example.com").await.unwrap();
    browser
        .widget_element("email-send")
        .await
        .click()
        .await
        .unwrap();
    let thanks = browser
        .wait_for(
            "the confirmation",
            WAIT,
            &probe(
                "email-thanks",
                "e.offsetParent === null ? null : e.innerText",
            ),
        )
        .await;
    assert!(
        thanks
            .as_str()
            .unwrap_or_default()
            .contains("ada@example.com"),
        "the confirmation names the address: {thanks}"
    );
    let hidden = browser
        .js(&probe("offline-email", "e.offsetParent === null"), vec![])
        .await;
    assert_eq!(hidden, true, "the form is gone once sent");

    // The server kept it for the team.
    let store = server.state.store.clone();
    let site = store.site_by_key("demo").await.unwrap().unwrap();
    let mut kept = None;
    for _ in 0..100 {
        let visitor = store
            .visitor_by_token(site.id, &token(&browser).await)
            .await
            .unwrap()
            .expect("the visitor");
        kept = visitor.info.email;
        if kept.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kept.as_deref(), Some("ada@example.com"));

    browser.close().await;
    server.stop().await;
}

#[tokio::test]
async fn history_list_opens_an_older_conversation_and_starts_a_new_one() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let page = HostPage::embed(&server.url(""), "", "").await;
    let browser = Browser::start(1280, 900).await;
    browser.client.goto(&page.url).await.unwrap();
    browser.click_launcher(WAIT).await;
    send(&browser, "first conversation about returns").await;

    browser
        .widget_element("history")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for(
            "the history list",
            WAIT,
            &probe("history-item", "e.offsetParent !== null"),
        )
        .await;
    browser
        .widget_element("new-conversation")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for(
            "an empty timeline",
            WAIT,
            &format!("return (function() {{ {MESSAGES} }})().length === 0;"),
        )
        .await;
    send(&browser, "second conversation about shipping").await;

    // Both are listed; opening the older one shows its messages, not the newer ones.
    browser
        .widget_element("history")
        .await
        .click()
        .await
        .unwrap();
    let count = browser
        .wait_for(
            "two conversations in the list",
            WAIT,
            "const r = document.querySelector('#nexus-flow-root');
             const items = r.shadowRoot.querySelectorAll('[data-testid=\"history-item\"]');
             return items.length >= 2 ? items.length : null;",
        )
        .await;
    assert_eq!(count, 2);
    browser
        .js(
            "const r = document.querySelector('#nexus-flow-root');
             const items = Array.from(r.shadowRoot.querySelectorAll('[data-testid=\"history-item\"]'));
             items.find(i => i.innerText.includes('returns') || i === items[items.length - 1]).click();",
            vec![],
        )
        .await;
    browser
        .wait_for(
            "the older conversation",
            WAIT,
            &format!(
                "const all = (function() {{ {MESSAGES} }})();
                 return all.some(m => m[2].includes('first conversation about returns'))
                     && !all.some(m => m[2].includes('second conversation'));"
            ),
        )
        .await;
    // Writing there goes to that conversation.
    send(&browser, "back to returns").await;
    let store = server.state.store.clone();
    let site = store.site_by_key("demo").await.unwrap().unwrap();
    let visitor = store
        .visitor_by_token(site.id, &token(&browser).await)
        .await
        .unwrap()
        .unwrap();
    let conversations = store.visitor_conversations(visitor.id, 10).await.unwrap();
    assert_eq!(conversations.len(), 2);
    let mut bodies = Vec::new();
    for c in &conversations {
        let texts: Vec<String> = store
            .last_messages(c.id, 50)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect();
        bodies.push(texts);
    }
    let with_returns = bodies
        .iter()
        .find(|b| b.iter().any(|t| t.contains("first conversation")))
        .expect("the first conversation");
    assert!(
        with_returns.iter().any(|t| t == "back to returns"),
        "the reply went to the reopened conversation: {bodies:?}"
    );

    browser.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_answer_grows_as_text_and_typing_off_clears_it() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let page = HostPage::embed(&server.url(""), "", "").await;
    let browser = Browser::start(1280, 900).await;
    browser.client.goto(&page.url).await.unwrap();
    browser.click_launcher(WAIT).await;
    send(&browser, "Where is my parcel?").await;
    // The AI's own reply comes first: its message ends any stream, so the frames below are
    // published only once it is shown (otherwise it may land after them and clear them).
    browser
        .wait_for(
            "the AI's reply",
            WAIT,
            &format!(
                "const all = (function() {{ {MESSAGES} }})();
                 return all.some(m => m[0] === 'ai');"
            ),
        )
        .await;
    let store = server.state.store.clone();
    let site = store.site_by_key("demo").await.unwrap().unwrap();
    let visitor = store
        .visitor_by_token(site.id, &token(&browser).await)
        .await
        .unwrap()
        .unwrap();
    let conversation = store
        .latest_conversation(visitor.id)
        .await
        .unwrap()
        .unwrap();

    // The frames the LLM backend sends while it writes (published as the server does).
    let streaming = probe("streaming", "e.offsetParent === null ? null : e.innerText");
    for text in ["Your parcel", "Your parcel <b>left</b> our warehouse"] {
        server.state.hub.publish_conversation(
            conversation.id,
            nexus_shared::ServerFrame::Streaming(nexus_shared::Streaming {
                conversation_id: conversation.id,
                text: text.into(),
            }),
        );
        browser
            .wait_for(
                &format!("the streamed text {text:?}"),
                WAIT,
                &format!(
                    "const t = (function() {{ {streaming} }})();
                     return t === {};",
                    serde_json::Value::from(text)
                ),
            )
            .await;
    }
    // An AI `typing` false without a message clears it.
    server.state.hub.publish_conversation(
        conversation.id,
        nexus_shared::ServerFrame::Typing {
            conversation_id: conversation.id,
            author: nexus_shared::Author::Ai,
            typing: false,
        },
    );
    browser
        .wait_for(
            "the streamed bubble to go",
            WAIT,
            &probe("streaming", "e.offsetParent === null"),
        )
        .await;
    let injected = browser
        .js(
            "const r = document.querySelector('#nexus-flow-root');
             return r.shadowRoot.querySelectorAll('[data-testid=\"streaming\"] b').length;",
            vec![],
        )
        .await;
    assert_eq!(injected, 0, "streamed text is text, never HTML");

    browser.close().await;
    server.stop().await;
}
