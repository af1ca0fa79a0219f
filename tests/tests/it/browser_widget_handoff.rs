//! The visitor's side of a handoff in a real headless Chromium against the real server: clarify
//! choices as buttons, the agent joining (header and banner), the agent's typing indicator, the
//! unread badge on the launcher while the panel is closed, and "back with the assistant" when
//! the agent hands the conversation back.

use nexus_shared::{ClientFrame, Role, ServerFrame};
use nexus_tests::WAIT;
use nexus_tests::browser::assert_widget_built;
use nexus_tests::browser::{Browser, probe, probe_css};
use nexus_tests::frames;
use nexus_tests::{TestServer, WsClient, agent_login};

/// JS: the texts of the timeline's messages by `author` (visitor, ai, agent, system).
fn texts(author: &str) -> String {
    format!(
        "const r = document.querySelector('#nexus-flow-root');
         const s = r && r.shadowRoot;
         return s ? [...s.querySelectorAll('[data-testid=\"message\"][data-author=\"{author}\"]')]
             .map(e => e.innerText) : [];"
    )
}

#[tokio::test]
async fn visitor_picks_a_choice_sees_the_agent_join_type_reply_and_hand_back() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let (mut agent, _) = WsClient::agent(&server.ws_url(), &token).await;
    let browser = Browser::start(1280, 900).await;

    browser.client.goto(&server.url("/")).await.unwrap();
    browser.click_launcher(WAIT).await;

    // A question close to several entries is answered with choices, as buttons.
    browser.send_message("how do I track my refund").await;
    let first = browser
        .wait_for(
            "clarify choices",
            WAIT,
            &probe_css(
                "[data-author=\"ai\"] .nf-choices:not([hidden]) button",
                "e.innerText",
            ),
        )
        .await;
    let first = first.as_str().unwrap_or_default().to_owned();
    assert!(!first.is_empty(), "a choice has a label");
    let answers_before = browser.js(&texts("ai"), vec![]).await;
    let answers_before = answers_before.as_array().map_or(0, Vec::len);
    browser
        .js(
            &probe_css(
                "[data-author=\"ai\"] .nf-choices:not([hidden]) button",
                "e.click() || true",
            ),
            vec![],
        )
        .await;
    browser
        .wait_for(
            "the answer to the chosen entry",
            WAIT,
            &format!(
                "const t = (() => {{ {} }})(); return t.length > {answers_before} ? t : null;",
                texts("ai")
            ),
        )
        .await;

    // The visitor asks for a person; the agent takes over.
    browser
        .widget_element("talk-to-human")
        .await
        .click()
        .await
        .unwrap();
    let (conversation_id, _) = agent
        .recv_until(|f| match f {
            ServerFrame::Conversation(c) if c.state == nexus_shared::ConversationState::Waiting => {
                Some(c.id)
            }
            _ => None,
        })
        .await;
    agent.send(&ClientFrame::Watch { conversation_id }).await;
    agent.send(&ClientFrame::TakeOver { conversation_id }).await;
    let banner = browser
        .wait_for(
            "the agent joined banner",
            WAIT,
            &probe(
                "handoff-banner",
                "e.getAttribute('data-state') === 'human' ? e.innerText : null",
            ),
        )
        .await;
    assert!(
        banner.as_str().unwrap_or_default().contains("joined"),
        "the banner says the agent joined: {banner}"
    );
    let subtitle = browser
        .js(&probe_css(".nf-subtitle", "e.innerText"), vec![])
        .await;
    assert!(
        subtitle
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("ana"),
        "the header names the agent: {subtitle}"
    );

    // The agent types: the visitor sees it.
    agent
        .send(&ClientFrame::Typing {
            conversation_id,
            typing: true,
        })
        .await;
    let typing = browser
        .wait_for(
            "the agent's typing indicator",
            WAIT,
            &probe_css(
                ".nf-typing",
                "e.offsetParent !== null && e.innerText.trim() ? e.innerText : null",
            ),
        )
        .await;
    assert!(
        typing
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("ana"),
        "the indicator names who types: {typing}"
    );

    // The visitor closes the panel; the agent's reply shows as an unread badge.
    browser
        .widget_element("launcher")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for("the panel closed", WAIT, &probe("panel", "e.hidden"))
        .await;
    agent
        .send(&frames::send(
            Some(conversation_id),
            "agent-1",
            "Your refund left us yesterday.",
        ))
        .await;
    let badge = browser
        .wait_for(
            "the unread badge",
            WAIT,
            &probe_css(
                ".nf-badge",
                "e.offsetParent !== null && !e.hidden ? e.innerText : null",
            ),
        )
        .await;
    assert_eq!(badge.as_str().map(str::trim), Some("1"), "one unread reply");
    browser.screenshot("visitor-unread-desktop").await;
    browser
        .widget_element("launcher")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for(
            "the badge cleared on open",
            WAIT,
            &probe_css(".nf-badge", "e.hidden || e.offsetParent === null"),
        )
        .await;
    let replies = browser.js(&texts("agent"), vec![]).await;
    assert!(
        replies
            .to_string()
            .contains("Your refund left us yesterday."),
        "the agent's reply is in the timeline: {replies}"
    );

    // The agent hands back: the visitor is told they are back with the assistant.
    agent.send(&ClientFrame::HandBack { conversation_id }).await;
    let system = browser
        .wait_for(
            "back with the assistant",
            WAIT,
            &format!(
                "const t = (() => {{ {} }})(); return t.some(x => x.includes('back with the assistant')) ? t : null;",
                texts("system")
            ),
        )
        .await;
    assert!(system.is_array());
    let subtitle = browser
        .wait_for(
            "the header back to the assistant",
            WAIT,
            &probe_css(
                ".nf-subtitle",
                "e.innerText.toLowerCase().includes('ana') ? null : e.innerText",
            ),
        )
        .await;
    assert!(subtitle.is_string());

    agent.close().await;
    browser.close().await;
    server.stop().await;
}
