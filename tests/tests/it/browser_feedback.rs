//! Feedback in a real headless Chromium against the real server: thumbs up on an AI answer,
//! then an agent resolves the conversation and the visitor rates it 5 of 5.

use nexus_shared::{ClientFrame, Role, ServerFrame};
use nexus_tests::WAIT;
use nexus_tests::browser::assert_widget_built;
use nexus_tests::browser::{Browser, probe, probe_css};
use nexus_tests::{TestServer, WsClient, agent_login};

/// The thumbs of the first AI answer (other rows carry them hidden).
const UP: &str = "[data-author=\"ai\"] [data-testid=\"feedback-up\"]";
const DOWN: &str = "[data-author=\"ai\"] [data-testid=\"feedback-down\"]";

/// `expr` once the element is on screen (not hidden), else null.
fn visible(testid: &str, expr: &str) -> String {
    probe(
        testid,
        &format!("e.offsetParent !== null ? ({expr}) : null"),
    )
}

#[tokio::test]
async fn visitor_rates_an_answer_and_the_resolved_conversation() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let (mut agent, _) = WsClient::agent(&server.ws_url(), &token).await;
    let browser = Browser::start(1280, 900).await;

    browser.client.goto(&server.url("/")).await.unwrap();
    browser.click_launcher(WAIT).await;
    browser.send_message("how can I cancel my order").await;

    // Thumbs up on the AI's answer shows as pressed; thumbs down stays unpressed.
    browser
        .wait_for(
            "thumbs on the AI answer",
            WAIT,
            &probe_css(UP, "e.offsetParent !== null"),
        )
        .await;
    browser
        .js(&probe_css(UP, "e.click() || true"), vec![])
        .await;
    browser
        .wait_for(
            "thumbs up pressed",
            WAIT,
            &probe_css(UP, "e.getAttribute('aria-pressed') === 'true'"),
        )
        .await;
    assert_eq!(
        browser
            .js(&probe_css(DOWN, "e.getAttribute('aria-pressed')"), vec![])
            .await,
        "false"
    );

    // The agent resolves the conversation; the visitor is asked to rate it.
    let (conversation_id, _) = agent
        .recv_until(|f| match f {
            ServerFrame::Conversation(c) => Some(c.id),
            _ => None,
        })
        .await;
    browser
        .wait_for(
            "no rating while the conversation is open",
            WAIT,
            &probe("csat", "e.offsetParent === null"),
        )
        .await;
    agent
        .send(&ClientFrame::Resolve {
            conversation_id,
            teach: None,
        })
        .await;
    browser
        .wait_for("the rating", WAIT, &visible("csat", "true"))
        .await;
    browser
        .js(
            &probe(
                "csat",
                "e.querySelector('[data-score=\"5\"]').click() || true",
            ),
            vec![],
        )
        .await;
    browser
        .widget_element("csat-send")
        .await
        .click()
        .await
        .unwrap();
    let thanks = browser
        .wait_for(
            "the thank-you line",
            WAIT,
            &visible("csat-thanks", "e.innerText"),
        )
        .await;
    assert!(
        thanks.as_str().unwrap_or_default().contains("Thank you"),
        "the visitor is thanked: {thanks}"
    );
    browser.screenshot("visitor-csat-desktop").await;

    agent.close().await;
    browser.close().await;
    server.stop().await;
}
