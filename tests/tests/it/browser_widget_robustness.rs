//! The visitor widget under conditions a real website brings, in a real headless Chromium
//! against the real server: hostile host-page CSS, a reload, the network going away and coming
//! back, a phone-sized viewport operated from the keyboard. Saves the mobile screenshots under
//! `target/screenshots/`.

use nexus_tests::WAIT;
use nexus_tests::browser::{Browser, HostPage, MESSAGES, assert_widget_built, probe};
use nexus_tests::{TestServer, widget_dir};
use serde_json::{Value, json};

const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

async fn type_message(browser: &Browser, text: &str) {
    let input = browser.widget_element("input").await;
    input.send_keys(text).await.unwrap();
    input.send_keys(ENTER).await.unwrap();
}

async fn wait_sent(browser: &Browser, text: &str) {
    browser
        .wait_for(
            &format!("{text:?} to be stored"),
            WAIT,
            &format!(
                "const all = (function() {{ {MESSAGES} }})();
                 return all.some(m => m[0] === 'visitor' && m[1] === 'sent' && m[2].includes({}));",
                Value::from(text)
            ),
        )
        .await;
}

/// Sizes, distances from the viewport's right and bottom edges (the host page may or may not
/// have a scrollbar) and key styles of the widget's main parts; null while an animation or
/// transition runs.
const MEASURE: &str = "const r = document.querySelector('#nexus-flow-root').shadowRoot;
    if (r.getAnimations().length > 0) return null;
    const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
    const pick = s => {
        const e = r.querySelector(s);
        if (!e) return null;
        const b = e.getBoundingClientRect();
        const cs = getComputedStyle(e);
        return [Math.round(vw - b.right), Math.round(vh - b.bottom), Math.round(b.width),
                Math.round(b.height), cs.fontSize, cs.display, cs.visibility, cs.opacity];
    };
    return ['launcher', 'panel', 'input', 'send', 'talk-to-human', 'connection-status']
        .map(t => pick('[data-testid=\"' + t + '\"]'));";

#[tokio::test]
async fn hostile_host_css_does_not_change_the_widget() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let browser = Browser::start(1280, 900).await;

    let plain = HostPage::embed(&server.url(""), "", "").await;
    browser.client.goto(&plain.url).await.unwrap();
    browser.click_launcher(WAIT).await;
    let expected = browser.wait_for("the settled widget", WAIT, MEASURE).await;

    let hostile = HostPage::embed(
        &server.url(""),
        "",
        "<style>
           * { all: unset !important; font-size: 40px !important; line-height: 3 !important;
               box-sizing: content-box !important; }
           div, section, button, textarea, form, ol, li, p, span, svg { display: none !important; }
           html, body, main, h1 { display: block !important; }
           [data-testid] { display: none !important; visibility: hidden !important; }
           #nexus-flow-root, nexus-flow-widget { display: none !important;
               transform: scale(0.5) !important; filter: blur(4px) !important;
               opacity: 0.2 !important; position: absolute !important; }
           button, textarea { width: 300px !important; color: transparent !important; }
         </style>",
    )
    .await;
    browser.client.goto(&hostile.url).await.unwrap();
    browser.click_launcher(WAIT).await;
    let got = browser.wait_for("the settled widget", WAIT, MEASURE).await;
    assert_eq!(
        got, expected,
        "the host page's CSS changed the widget (right, bottom, width, height, font-size, display, visibility, opacity)"
    );
    let launcher = &expected[0];
    assert!(
        launcher[2].as_i64().unwrap_or(0) > 0 && launcher[5] != "none",
        "the launcher is on screen: {launcher}"
    );
    browser.screenshot("visitor-hostile-css-desktop").await;

    browser.close().await;
    server.stop().await;
}

#[tokio::test]
async fn reload_resumes_the_conversation() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let page = HostPage::embed(&server.url(""), "", "").await;
    let browser = Browser::start(1280, 900).await;
    browser.client.goto(&page.url).await.unwrap();
    browser.click_launcher(WAIT).await;
    type_message(&browser, "how can I cancel my order").await;
    wait_sent(&browser, "how can I cancel my order").await;
    browser
        .wait_for(
            "the AI's answer",
            WAIT,
            &format!("return (function() {{ {MESSAGES} }})().some(m => m[0] === 'ai');"),
        )
        .await;
    let before = browser.js(MESSAGES, vec![]).await;

    browser.client.refresh().await.unwrap();
    browser.click_launcher(WAIT).await;
    let after = browser
        .wait_for(
            "the same conversation after the reload",
            WAIT,
            &format!(
                "const all = (function() {{ {MESSAGES} }})();
                 return all.length >= {} ? all : null;",
                before.as_array().map_or(0, Vec::len)
            ),
        )
        .await;
    assert_eq!(after, before, "the reload shows the same timeline, once");

    browser.close().await;
    server.stop().await;
}

#[tokio::test]
async fn offline_and_back_sends_typed_messages_exactly_once() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let page = HostPage::embed(&server.url(""), "", "").await;
    let browser = Browser::start(1280, 900).await;
    browser.client.goto(&page.url).await.unwrap();
    browser.click_launcher(WAIT).await;
    type_message(&browser, "first, while online").await;
    wait_sent(&browser, "first, while online").await;

    // The connection dies (the server goes away) and the network is gone too, so reconnect
    // attempts fail until both are back.
    let (db, addr) = (dir.path().join("nexus.db"), server.addr);
    browser.cdp("Network.enable", json!({})).await;
    let conditions = |offline: bool| json!({"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1});
    browser
        .cdp("Network.emulateNetworkConditions", conditions(true))
        .await;
    server.stop().await;
    browser.wait_status("offline", WAIT).await;
    for text in ["typed offline one", "typed offline two"] {
        type_message(&browser, text).await;
    }
    let pending = browser
        .js(
            &format!(
                "return (function() {{ {MESSAGES} }})().filter(m => m[1] === 'pending').length;"
            ),
            vec![],
        )
        .await;
    assert_eq!(pending, 2, "both are shown as pending while offline");
    browser.screenshot("visitor-offline-queue-desktop").await;

    let server =
        TestServer::start_url_at(&format!("sqlite://{}", db.display()), &widget_dir(), addr).await;
    browser
        .cdp("Network.emulateNetworkConditions", conditions(false))
        .await;
    browser.wait_status("online", WAIT).await;
    for text in ["typed offline one", "typed offline two"] {
        wait_sent(&browser, text).await;
    }

    // The server stored each exactly once, in the order typed.
    let store = server.state.store.clone();
    let site = store.site_by_key("demo").await.unwrap().unwrap();
    let token = browser
        .js(
            "return localStorage.getItem('nexus-flow:demo:visitor');",
            vec![],
        )
        .await;
    let visitor = store
        .visitor_by_token(site.id, token.as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let conversation = store
        .latest_conversation(visitor.id)
        .await
        .unwrap()
        .unwrap();
    let bodies: Vec<String> = store
        .last_messages(conversation.id, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.author == nexus_shared::Author::Visitor)
        .map(|m| m.body)
        .collect();
    assert_eq!(
        bodies,
        [
            "first, while online",
            "typed offline one",
            "typed offline two"
        ]
    );
    let shown = browser.js(MESSAGES, vec![]).await;
    let visitor_rows = shown
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m[0] == "visitor")
        .count();
    assert_eq!(visitor_rows, 3, "nothing is shown twice: {shown}");

    browser.close().await;
    server.stop().await;
}

#[tokio::test]
async fn phone_viewport_full_screen_panel_operated_by_keyboard() {
    assert_widget_built();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    // Headless Chromium windows are at least 500 px wide: emulate the phone's screen.
    let browser = Browser::start(500, 900).await;
    browser
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
        )
        .await;
    browser.client.goto(&server.url("/")).await.unwrap();
    browser
        .wait_for("the launcher", WAIT, &probe("launcher", "true"))
        .await;
    browser.screenshot("visitor-closed-mobile").await;

    // Enter on the focused launcher opens the panel and puts the focus in the input.
    browser
        .widget_element("launcher")
        .await
        .send_keys(ENTER)
        .await
        .unwrap();
    browser.wait_status("online", WAIT).await;
    browser
        .wait_for(
            "the focus in the input",
            WAIT,
            "const r = document.querySelector('#nexus-flow-root').shadowRoot;
             return r.activeElement && r.activeElement.getAttribute('data-testid') === 'input';",
        )
        .await;
    // Measured once the opening animation is over.
    let fills = browser
        .wait_for(
            "the settled panel",
            WAIT,
            &probe(
                "panel",
                "e.getRootNode().getAnimations().length > 0 ? null : (() => {
                   const b = e.getBoundingClientRect();
                   return [Math.round(b.left), Math.round(b.top), Math.round(b.width),
                           Math.round(b.height), innerWidth, innerHeight]; })()",
            ),
        )
        .await;
    let f: Vec<i64> = fills
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(
        (f[0], f[1], f[2], f[3]),
        (0, 0, f[4], f[5]),
        "below 480 px the panel fills the screen: {fills}"
    );

    // Typing and Enter sends; the answer arrives.
    type_message(&browser, "how can I cancel my order").await;
    wait_sent(&browser, "how can I cancel my order").await;
    browser
        .wait_for(
            "the AI's answer",
            WAIT,
            &format!("return (function() {{ {MESSAGES} }})().some(m => m[0] === 'ai');"),
        )
        .await;
    browser.screenshot("visitor-open-mobile").await;

    // Enter on "Talk to a person" presses it.
    let human = browser.widget_element("talk-to-human").await;
    human.send_keys(ENTER).await.unwrap();
    browser
        .wait_for(
            "the handoff banner",
            WAIT,
            &probe("handoff-banner", "e.offsetParent !== null"),
        )
        .await;
    browser.screenshot("visitor-handoff-mobile").await;

    // Escape closes the panel and gives the focus back to the launcher.
    browser
        .widget_element("input")
        .await
        .send_keys(ESCAPE)
        .await
        .unwrap();
    browser
        .wait_for(
            "the focus back on the launcher",
            WAIT,
            "const r = document.querySelector('#nexus-flow-root').shadowRoot;
             const p = r.querySelector('[data-testid=\"panel\"]');
             return p.getClientRects().length === 0 && r.activeElement
                 && r.activeElement.getAttribute('data-testid') === 'launcher';",
        )
        .await;

    browser.close().await;
    server.stop().await;
}
