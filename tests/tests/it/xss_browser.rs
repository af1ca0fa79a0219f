//! The XSS corpus in real headless Chromium: script tags, event handlers, `javascript:` links,
//! SVG onload, `<iframe srcdoc>`, markdown links, mXSS, and unicode tricks (RTL override,
//! zero-width characters, homoglyphs, a very long word), sent as visitor text and as agent
//! text, rendered in the visitor widget and in the agent console. Each shows as literal text;
//! no element is created from it; no script runs (a `window.__xss` hook the payloads would
//! call, and `alert`, count calls); no `javascript:` href exists.

use std::time::Duration;

use fantoccini::Locator;
use nexus_shared::{ClientFrame, Role, ServerFrame};
use nexus_tests::browser::{Browser, probe};
use nexus_tests::frames;
use nexus_tests::{PASSWORD, WAIT};
use nexus_tests::{TestServer, WsClient, agent_login, widget_dir};

/// The corpus. Every payload that could run calls `__xss(<name>)`.
fn corpus() -> Vec<String> {
    let mut corpus: Vec<String> = [
        "<script>window.__xss('script')</script>",
        "<img src=x onerror=\"window.__xss('img')\">",
        "<a href=\"javascript:window.__xss('link')\">click me</a>",
        "javascript:window.__xss('bare')",
        "<svg onload=\"window.__xss('svg')\"><circle r=\"5\"></circle></svg>",
        "<iframe srcdoc=\"<script>parent.__xss('iframe')</script>\"></iframe>",
        "<div onmouseover=\"window.__xss('hover')\" style=\"position:fixed;inset:0\">x</div>",
        "[click](javascript:window.__xss('markdown'))",
        "\"><script>window.__xss('attribute')</script>",
        "<math><mtext><table><mglyph><style><img src=x onerror=__xss('mxss')>",
        "<style>*{display:none!important}</style>",
        "<body onload=__xss('body')><details open ontoggle=__xss('details')>",
        "{{constructor.constructor('window.__xss(\"template\")')()}}",
        "\u{202E}gnp.exe\u{202C} invoice (RTL override)",
        "pay\u{200B}pal\u{200D}.com zero\u{FEFF}width",
        "\u{0430}pple.com homoglyph \u{0440}ay\u{0440}al.com",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    corpus.push(format!("longword {}", "W".repeat(3_000)));
    corpus
}

/// Installs the hook the payloads would call, and traps `alert`/`confirm`/`prompt`.
const HOOK: &str = "
    window.__xss_hits = window.__xss_hits || [];
    window.__xss = (what) => window.__xss_hits.push(String(what));
    window.alert = (m) => window.__xss_hits.push('alert:' + m);
    window.confirm = window.alert;
    window.prompt = window.alert;
    return true;";

/// JS: in `root`, is every payload (argument 0) the literal text of some message, and what
/// elements or attributes could come from them? Returns
/// `{missing: [...], elements: n, handlers: n, js_links: n, hits: [...]}`.
fn audit(root: &str) -> String {
    format!(
        "const root = {root};
         const payloads = arguments[0];
         if (!root) return null;
         const msgs = Array.from(root.querySelectorAll('[data-testid=\"message\"]'));
         const texts = msgs.map(m => m.textContent);
         const missing = payloads.filter(p => !texts.some(t => t.includes(p)));
         let elements = 0, handlers = 0;
         for (const m of msgs) {{
           elements += m.querySelectorAll('script,iframe,img[src=\"x\"],circle,math,mglyph,table,details,style,body,object,embed,div[style],a[href^=\"javascript\" i]').length;
           for (const e of m.querySelectorAll('*')) {{
             for (const a of e.attributes) if (a.name.toLowerCase().startsWith('on')) handlers++;
           }}
         }}
         const scope = root.querySelectorAll ? root : document;
         const js_links = Array.from(scope.querySelectorAll('[href],[src],[srcdoc]'))
           .filter(e => /^\\s*javascript:/i.test(e.getAttribute('href') || e.getAttribute('src') || '') || e.hasAttribute('srcdoc'))
           .length
           + Array.from(document.querySelectorAll('a[href]')).filter(a => /^\\s*javascript:/i.test(a.getAttribute('href'))).length;
         return {{ missing, elements, handlers, js_links, hits: window.__xss_hits || ['no hook'],
                   shown: msgs.length, overflow: msgs.some(m => m.scrollWidth > m.clientWidth + 2) }};"
    )
}

const WIDGET_ROOT: &str = "(document.querySelector('#nexus-flow-root') || {}).shadowRoot";

async fn wait_rendered(browser: &Browser, what: &str, root: &str, payloads: &[String]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let report = browser
            .js(&audit(root), vec![serde_json::json!(payloads)])
            .await;
        if report["missing"].as_array().is_some_and(Vec::is_empty) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: not every payload shows as literal text: {report}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn check_inert(browser: &Browser, what: &str, root: &str, payloads: &[String]) {
    // Give anything that would run (onload, onerror, timers) a moment to do so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = browser
        .js(&audit(root), vec![serde_json::json!(payloads)])
        .await;
    assert_eq!(report["missing"], serde_json::json!([]), "{what}: {report}");
    assert_eq!(
        report["elements"], 0,
        "{what}: elements created from text: {report}"
    );
    assert_eq!(
        report["handlers"], 0,
        "{what}: event handlers from text: {report}"
    );
    assert_eq!(report["js_links"], 0, "{what}: javascript: links: {report}");
    assert_eq!(
        report["hits"],
        serde_json::json!([]),
        "{what}: a payload ran: {report}"
    );
    eprintln!(
        "xss {what}: {} payloads literal, {} messages shown, 0 elements, 0 handlers, \
         0 javascript: links, 0 script runs; a message wider than its box: {}",
        payloads.len(),
        report["shown"],
        report["overflow"]
    );
}

#[tokio::test]
async fn the_xss_corpus_renders_inert_in_the_widget_and_the_console() {
    assert!(
        widget_dir().join("agent.js").exists(),
        "the widget is not built at {}: run `cargo xtask widget` (`cargo xtask test` does)",
        widget_dir().display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    // People only: every visitor message waits for an agent, no AI answers in between.
    server
        .configure(|s| s.autonomy = nexus_shared::Autonomy::Off)
        .await;
    let store = server.state.store.as_ref();
    let site = server.site("demo").await;
    let ana_token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let (agent, visitor) = tokio::join!(Browser::start(1280, 900), Browser::start(420, 760));
    let payloads = corpus();

    // The visitor opens the widget and writes once; the conversation waits for a person.
    visitor.client.goto(&server.url("/")).await.expect("page");
    visitor.js(HOOK, vec![]).await;
    visitor
        .wait_for("the launcher", WAIT, &probe("launcher", "true"))
        .await;
    visitor
        .widget_element("launcher")
        .await
        .click()
        .await
        .expect("launcher click");
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
    // One payload typed for real, through the input.
    visitor
        .widget_element("input")
        .await
        .send_keys(&payloads[0])
        .await
        .expect("typing");
    visitor
        .widget_element("send")
        .await
        .click()
        .await
        .expect("send click");
    wait_rendered(&visitor, "the typed payload", WIDGET_ROOT, &payloads[..1]).await;

    // The rest as the same visitor (the widget's token) over the protocol.
    let token = visitor
        .js(
            "return localStorage.getItem('nexus-flow:demo:visitor');",
            vec![],
        )
        .await;
    let token = token.as_str().expect("the widget keeps a visitor token");
    let token = serde_json::from_str::<String>(token).unwrap_or_else(|_| token.to_owned());
    // The typed payload is stored (not only shown as pending) before the rest follow.
    let visitor_row = store
        .visitor_by_token(site.id, &token)
        .await
        .expect("store")
        .expect("the widget's visitor");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stored = match store
            .latest_conversation(visitor_row.id)
            .await
            .expect("store")
        {
            Some(c) => store
                .messages_after(c.id, 0, 100)
                .await
                .expect("messages")
                .iter()
                .any(|m| m.body == payloads[0]),
            None => false,
        };
        if stored {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the payload typed into the widget was never stored"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut ws_visitor, _) = WsClient::visitor(&server.ws_url(), "demo", Some(token)).await;
    let mut conversation = None;
    for (i, payload) in payloads.iter().enumerate().skip(1) {
        ws_visitor
            .send(&frames::send(None, format!("xss-v-{i}"), payload))
            .await;
        conversation = Some(ws_visitor.recv_ack().await);
    }
    let conversation = conversation.expect("a conversation");

    // The agent console: Ana logs in and opens the waiting conversation.
    agent
        .client
        .goto(&server.url("/agent"))
        .await
        .expect("page");
    agent.js(HOOK, vec![]).await;
    agent
        .wait_for(
            "the login form",
            WAIT,
            "return document.querySelector('[data-testid=agent-login]') !== null;",
        )
        .await;
    for (testid, text) in [
        ("agent-email", "ana@demo.test"),
        ("agent-password", PASSWORD),
    ] {
        agent
            .client
            .find(Locator::Css(&format!("[data-testid=\"{testid}\"]")))
            .await
            .expect("login field")
            .send_keys(text)
            .await
            .expect("typing");
    }
    agent
        .client
        .find(Locator::Css("[data-testid=\"agent-submit\"]"))
        .await
        .expect("submit")
        .click()
        .await
        .expect("submit click");
    agent
        .wait_for(
            "the waiting conversation in the inbox",
            WAIT,
            "return document.querySelector('[data-testid=inbox-item][data-state=waiting]') !== null;",
        )
        .await;
    agent
        .client
        .find(Locator::Css("[data-testid=inbox-item][data-state=waiting]"))
        .await
        .expect("inbox item")
        .click()
        .await
        .expect("open conversation");
    wait_rendered(&agent, "visitor text in the console", "document", &payloads).await;

    // Ana (a second session of hers, over the protocol) takes over and sends the corpus.
    let (mut ws_agent, _) = WsClient::agent(&server.ws_url(), &ana_token).await;
    ws_agent
        .send(&ClientFrame::TakeOver {
            conversation_id: conversation,
        })
        .await;
    ws_agent
        .recv_until(|f| match f {
            ServerFrame::State {
                assignee: Some(_), ..
            } => Some(()),
            ServerFrame::Error(e) => panic!("takeover refused: {e:?}"),
            _ => None,
        })
        .await;
    let agent_payloads: Vec<String> = payloads.iter().map(|p| format!("Ana: {p}")).collect();
    for (i, payload) in agent_payloads.iter().enumerate() {
        // Two frames a second at most would be slow; stay under the 10/s rate instead.
        tokio::time::sleep(Duration::from_millis(120)).await;
        ws_agent
            .send(&frames::send(
                Some(conversation),
                format!("xss-a-{i}"),
                payload.clone(),
            ))
            .await;
        ws_agent.recv_ack().await;
    }

    let everything: Vec<String> = payloads.iter().chain(&agent_payloads).cloned().collect();
    wait_rendered(&visitor, "the widget", WIDGET_ROOT, &everything).await;
    wait_rendered(&agent, "the console", "document", &everything).await;
    visitor.screenshot("xss-widget").await;
    agent.screenshot("xss-console").await;
    check_inert(&visitor, "visitor widget", WIDGET_ROOT, &everything).await;
    check_inert(&agent, "agent console", "document", &everything).await;

    // A reload renders the same history from the server, still inert.
    visitor.client.refresh().await.expect("reload");
    visitor.js(HOOK, vec![]).await;
    visitor
        .wait_for("the launcher", WAIT, &probe("launcher", "true"))
        .await;
    let open = visitor
        .js(&probe("panel", "e.offsetParent !== null"), vec![])
        .await;
    if open != serde_json::json!(true) {
        visitor
            .widget_element("launcher")
            .await
            .click()
            .await
            .expect("launcher click");
    }
    wait_rendered(
        &visitor,
        "the widget after a reload",
        WIDGET_ROOT,
        &everything,
    )
    .await;
    check_inert(
        &visitor,
        "visitor widget after reload",
        WIDGET_ROOT,
        &everything,
    )
    .await;

    ws_visitor.close().await;
    ws_agent.close().await;
    agent.close().await;
    visitor.close().await;
    server.stop().await;
}
