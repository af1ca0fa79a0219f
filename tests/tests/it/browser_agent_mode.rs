//! Agent mode inside the embedded widget, in two real headless Chromiums on the demo page: a
//! visitor, and a team member who signs in from the widget's menu on the same page. The
//! visitor's page never fetches the agents' app; the thumbs are drawn as SVG; the header
//! badge says whether the team is there. The agent sees the escalation arrive with the
//! visitor's page, takes over, replies (the visitor sees a person's reply), hands back, keeps
//! agent mode on the next page load, and signs out back to the visitor widget.

use fantoccini::Locator;
use nexus_shared::Role;
use nexus_tests::browser::{Browser, assert_widget_built, probe, probe_css, widget_snapshot};
use nexus_tests::{PASSWORD, TestServer, WAIT};

/// A selector inside the agent-mode panel (the visitor app's hidden elements share test ids).
fn agent(testid: &str) -> String {
    format!(".na-embed [data-testid=\"{testid}\"]")
}

/// Polls until the agent-mode element `testid` makes `expr` truthy.
async fn wait_agent(browser: &Browser, what: &str, testid: &str, expr: &str) -> serde_json::Value {
    browser
        .wait_for(what, WAIT, &probe_css(&agent(testid), expr))
        .await
}

async fn agent_element(browser: &Browser, testid: &str) -> fantoccini::elements::Element {
    let host = browser
        .client
        .find(Locator::Css("#nexus-flow-root"))
        .await
        .expect("the widget host element exists");
    let root = host.shadow_root().await.expect("a shadow root");
    root.find(Locator::Css(&agent(testid)))
        .await
        .unwrap_or_else(|e| panic!("no {testid} in agent mode: {e}"))
}

async fn agent_click(browser: &Browser, testid: &str) {
    wait_agent(
        browser,
        &format!("{testid} on screen"),
        testid,
        "e.offsetParent !== null",
    )
    .await;
    agent_element(browser, testid).await.click().await.unwrap();
}

/// The resources the page fetched whose names start with the agents' bundle prefix.
const AGENT_ASSETS: &str = "return performance.getEntriesByType('resource')
    .map(e => e.name).filter(n => n.includes('/nexus-agent-'));";

/// The visitor's header badge: `[data-team, text]`.
const BADGE: &str = "const r = document.querySelector('#nexus-flow-root');
    const e = r && r.shadowRoot && r.shadowRoot.querySelector('[data-testid=\"connection-status\"]');
    return e ? [e.getAttribute('data-team'), e.innerText.trim()] : null;";

#[tokio::test]
async fn a_team_member_answers_a_visitor_from_the_widget_on_the_same_page() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let widget = widget_snapshot(dir.path());
    let server = TestServer::start_with(&dir.path().join("nexus.db"), &widget).await;
    let store = server.state.store.as_ref();
    let site = store.site_by_key("demo").await.unwrap().expect("demo site");
    nexus_server::access::accounts::add_user(
        store,
        site.id,
        "ana@demo.test",
        "Ana",
        Role::Agent,
        PASSWORD,
    )
    .await
    .expect("agent account");
    let (agent_b, visitor) = tokio::join!(Browser::start(1100, 900), Browser::start(420, 820));

    // The visitor: nobody of the team is signed in, and the badge says so (not "online").
    visitor.client.goto(&server.url("/")).await.unwrap();
    visitor.open_widget(WAIT).await;
    let badge = visitor
        .wait_for(
            "the badge to say the team is away",
            WAIT,
            &format!("const b = (function() {{ {BADGE} }})(); return b && b[0] ? b : null;"),
        )
        .await;
    assert_eq!(badge, serde_json::json!(["away", "team away"]));

    // An answer from the AI: its thumbs are SVG icons with a size, no emoji text.
    visitor.send_message("how can I cancel my order").await;
    let thumbs = visitor
        .wait_for(
            "the thumbs under the AI's answer",
            WAIT,
            &probe_css(
                ".nf-feedback:not([hidden]) [data-testid=\"feedback-up\"]",
                "e.offsetParent === null ? null : (() => {
                     const up = e.querySelector('svg'), down = e.parentNode.querySelector('[data-testid=\"feedback-down\"] svg');
                     return [up ? up.getBoundingClientRect().width : 0, down ? down.getBoundingClientRect().width : 0, e.innerText.trim()];
                 })()",
            ),
        )
        .await;
    assert!(
        thumbs[0].as_f64().unwrap_or(0.0) >= 12.0 && thumbs[1].as_f64().unwrap_or(0.0) >= 12.0,
        "both thumbs are drawn as SVG icons: {thumbs}"
    );
    assert_eq!(thumbs[2], "", "no emoji text in the thumbs: {thumbs}");

    // The team member opens the same demo page and signs in from the widget's menu.
    agent_b.client.goto(&server.url("/")).await.unwrap();
    agent_b.open_widget(WAIT).await;
    agent_b
        .widget_element("history")
        .await
        .click()
        .await
        .unwrap();
    agent_b
        .wait_for(
            "the menu's Team sign-in",
            WAIT,
            &probe(
                "team-sign-in",
                "e.offsetParent !== null ? e.innerText : null",
            ),
        )
        .await;
    agent_b
        .widget_element("team-sign-in")
        .await
        .click()
        .await
        .unwrap();
    wait_agent(
        &agent_b,
        "the sign-in form",
        "agent-login",
        "e.offsetParent !== null",
    )
    .await;
    let visitor_panel = agent_b
        .js(&probe("panel", "e.offsetParent !== null"), vec![])
        .await;
    assert_eq!(
        visitor_panel, false,
        "agent mode replaces the visitor panel"
    );
    agent_element(&agent_b, "agent-email")
        .await
        .send_keys("ana@demo.test")
        .await
        .unwrap();
    agent_element(&agent_b, "agent-password")
        .await
        .send_keys(PASSWORD)
        .await
        .unwrap();
    agent_click(&agent_b, "agent-submit").await;
    wait_agent(
        &agent_b,
        "agent mode to be online",
        "agent-connection",
        "e.getAttribute('data-status') === 'online'",
    )
    .await;
    let kept = agent_b
        .js(
            "return !!localStorage.getItem('nexus-flow:demo:agent-mode');",
            vec![],
        )
        .await;
    assert_eq!(kept, true, "the token is kept for the site");

    // On the visitor's next page the badge says the team is there (the count comes with
    // `welcome`); the visitor fetched no agent asset.
    visitor.client.refresh().await.unwrap();
    visitor.open_widget(WAIT).await;
    let badge = visitor
        .wait_for(
            "the badge to say the team is online",
            WAIT,
            &format!(
                "const b = (function() {{ {BADGE} }})(); return b && b[0] === 'online' ? b : null;"
            ),
        )
        .await;
    assert_eq!(badge, serde_json::json!(["online", "team online"]));
    let fetched = visitor.js(AGENT_ASSETS, vec![]).await;
    assert_eq!(
        fetched,
        serde_json::json!([]),
        "a visitor downloads nothing of agent mode"
    );
    let agent_fetched = agent_b.js(AGENT_ASSETS, vec![]).await;
    assert!(
        agent_fetched.as_array().is_some_and(|a| a.len() >= 2),
        "agent mode loaded the agents' bundle: {agent_fetched}"
    );

    // The visitor asks for a person: the agent's launcher counts it, the inbox shows it.
    visitor.send_message("I want to talk to a human").await;
    wait_agent(
        &agent_b,
        "the waiting badge",
        "agent-waiting-badge",
        "!e.hidden && e.innerText.trim() === '1'",
    )
    .await;
    let line = wait_agent(
        &agent_b,
        "the waiting conversation in the inbox",
        "inbox-item",
        "e.offsetParent !== null && e.getAttribute('data-state') === 'waiting' ? e.innerText : null",
    )
    .await;
    let line = line.as_str().unwrap_or_default().to_owned();
    assert!(
        line.contains("Visitor asked for a person"),
        "the inbox line says why the visitor waits: {line}"
    );
    agent_click(&agent_b, "inbox-item").await;
    wait_agent(
        &agent_b,
        "the conversation on screen",
        "conversation-state",
        "e.getAttribute('data-state') === 'waiting'",
    )
    .await;

    // Take over and reply: the visitor sees it under the agent's name, as a person.
    agent_click(&agent_b, "take-over").await;
    wait_agent(
        &agent_b,
        "the conversation to be the agent's",
        "conversation-state",
        "e.getAttribute('data-state') === 'human'",
    )
    .await;
    agent_element(&agent_b, "agent-input")
        .await
        .send_keys("Hi, Ana here from the shop.")
        .await
        .unwrap();
    agent_click(&agent_b, "agent-send").await;
    let reply = visitor
        .wait_for(
            "the agent's reply in the widget",
            WAIT,
            "const r = document.querySelector('#nexus-flow-root').shadowRoot;
             const m = Array.from(r.querySelectorAll('[data-testid=\"message\"][data-author=\"agent\"]'))
                 .find(m => m.innerText.includes('Ana here'));
             return m ? [m.querySelector('.nf-author').innerText, m.querySelector('.nf-bubble').innerText] : null;",
        )
        .await;
    assert_eq!(
        reply,
        serde_json::json!(["Ana", "Hi, Ana here from the shop."]),
        "the reply is marked as the person's"
    );
    let banner = visitor
        .wait_for(
            "the joined banner",
            WAIT,
            &probe(
                "handoff-banner",
                "e.getAttribute('data-state') === 'human' ? e.innerText : null",
            ),
        )
        .await;
    assert!(
        banner.as_str().is_some_and(|b| b.contains("Ana")),
        "{banner}"
    );

    // Hand back: the conversation is the AI's again on both sides.
    agent_click(&agent_b, "hand-back").await;
    wait_agent(
        &agent_b,
        "the conversation to be the AI's",
        "conversation-state",
        "e.getAttribute('data-state') === 'ai'",
    )
    .await;
    visitor
        .wait_for(
            "the banner to go",
            WAIT,
            "const r = document.querySelector('#nexus-flow-root').shadowRoot;
             return !r.querySelector('[data-testid=\"handoff-banner\"]');",
        )
        .await;

    // The next page of the site: agent mode is back by itself, launcher only, still signed in.
    agent_b.client.refresh().await.unwrap();
    wait_agent(
        &agent_b,
        "agent mode after the reload",
        "agent-connection",
        "e.getAttribute('data-status') === 'online'",
    )
    .await;
    let panel = agent_b
        .js(&probe_css(&agent("agent-panel"), "e.hidden"), vec![])
        .await;
    assert_eq!(panel, true, "on another page only the team launcher shows");

    // Sign out: the token is gone and the corner is the visitor widget's again.
    agent_click(&agent_b, "agent-launcher").await;
    agent_click(&agent_b, "agent-sign-out").await;
    agent_b
        .wait_for(
            "the visitor launcher back",
            WAIT,
            &probe("launcher", "e.offsetParent !== null"),
        )
        .await;
    let kept = agent_b
        .js(
            "return localStorage.getItem('nexus-flow:demo:agent-mode');",
            vec![],
        )
        .await;
    assert_eq!(kept, serde_json::Value::Null, "sign-out clears the token");
    let agent_hidden = agent_b
        .js(&probe_css(".na-embed", "e.parentNode.hidden"), vec![])
        .await;
    assert_eq!(agent_hidden, true, "agent mode is gone from the page");
}
