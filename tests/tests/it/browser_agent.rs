//! Agent mode in a real headless Chromium, next to a visitor in a second one: the visitor asks
//! for a person; the agent logs in on `/agent`, sees the escalation arrive in the inbox live,
//! opens it, takes over and replies; the visitor sees the reply under the agent's name; the
//! agent resolves and teaches the AI.

use fantoccini::Locator;
use nexus_shared::Role;
use nexus_tests::browser::{Browser, click, page, probe, type_into, wait_conversation_state};
use nexus_tests::{PASSWORD, WAIT};
use nexus_tests::{TestServer, widget_dir};

/// JS returning `[author, text]` of the messages; `root` is `document` or the widget's
/// shadow root.
fn messages(root: &str) -> String {
    format!(
        "const root = {root};
         if (!root) return [];
         return Array.from(root.querySelectorAll('[data-testid=\"message\"]'))
             .map(m => [m.getAttribute('data-author'), m.innerText]);"
    )
}

const WIDGET_ROOT: &str = "(document.querySelector('#nexus-flow-root') || {}).shadowRoot";

#[tokio::test]
async fn agent_sees_the_escalation_takes_over_replies_and_resolves() {
    assert!(
        widget_dir().join("agent.js").exists(),
        "the agent app is not built at {}: run `cargo xtask widget` (`cargo xtask test` does)",
        widget_dir().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    // A plain agent's teach goes live only when the site allows it (`agent_learning`).
    server
        .configure(|s| s.agent_learning = nexus_engine::policy::Learning::Auto)
        .await;
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
    let (agent, visitor) = tokio::join!(Browser::start(1280, 860), Browser::start(420, 760));

    // The agent logs in; a wrong password is refused in plain words first.
    agent.client.goto(&server.url("/agent")).await.unwrap();
    agent
        .wait_for(
            "the login form",
            WAIT,
            &page("[data-testid=agent-login]", "true"),
        )
        .await;
    let site_key = agent
        .js(&page("[data-testid=agent-site]", "e.value"), vec![])
        .await;
    assert_eq!(site_key, "demo", "the site key is prefilled");
    type_into(&agent, "agent-email", "ana@demo.test").await;
    type_into(&agent, "agent-password", "not the password").await;
    click(&agent, "agent-submit").await;
    let refused = agent
        .wait_for(
            "the login error",
            WAIT,
            &page("[data-testid=login-error]", "e.innerText"),
        )
        .await;
    assert_eq!(refused, "Wrong email or password.");
    type_into(&agent, "agent-password", PASSWORD).await;
    click(&agent, "agent-submit").await;
    agent
        .wait_for(
            "the agent's connection to be online",
            WAIT,
            &page(
                "[data-testid=connection-status]",
                "e.getAttribute('data-status') === 'online'",
            ),
        )
        .await;
    let name = agent
        .js(&page("[data-testid=agent-name]", "e.innerText"), vec![])
        .await;
    assert_eq!(name, "Ana");
    let token_kept = agent
        .js(
            "return Object.keys(sessionStorage).some(k => k.endsWith(':agent'));",
            vec![],
        )
        .await;
    assert_eq!(token_kept, true, "the session token is in sessionStorage");

    // The visitor asks for a person.
    visitor.client.goto(&server.url("/")).await.unwrap();
    visitor
        .wait_for("the launcher", WAIT, &probe("launcher", "true"))
        .await;
    visitor
        .widget_element("launcher")
        .await
        .click()
        .await
        .unwrap();
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
    visitor.send_message("I want to talk to a human").await;
    visitor
        .wait_for(
            "the handoff banner",
            WAIT,
            &probe("handoff-banner", "e.offsetParent !== null"),
        )
        .await;

    // It appears in the agent's Waiting tab, live, with the reason in words.
    let line = agent
        .wait_for(
            "the escalation in the inbox",
            WAIT,
            &page(
                "[data-testid=inbox] [data-testid=inbox-item][data-state=waiting]",
                "e.innerText",
            ),
        )
        .await;
    let line = line.as_str().unwrap_or_default().to_owned();
    assert!(
        line.contains("Visitor asked for a person") && line.contains("waiting"),
        "the inbox line says why and how long: {line}"
    );
    let unread = agent
        .js(
            &page(
                "[data-testid=tab-waiting] [data-testid=tab-unread]",
                "e.innerText",
            ),
            vec![],
        )
        .await;
    assert_eq!(
        unread, "1",
        "the Waiting tab counts the unread conversation"
    );
    agent.screenshot("agent-inbox").await;

    // The agent opens it, reads the history, takes over and replies.
    agent
        .client
        .find(Locator::Css("[data-testid=inbox-item][data-state=waiting]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    agent
        .wait_for(
            "the visitor's message in the agent's view",
            WAIT,
            &format!(
                "const all = (function() {{ {} }})();
                 return all.some(m => m[0] === 'visitor' && m[1].includes('talk to a human'));",
                messages("document")
            ),
        )
        .await;
    click(&agent, "take-over").await;
    wait_conversation_state(&agent, "human").await;
    type_into(&agent, "agent-input", "Hi, this is Ana").await;
    click(&agent, "agent-send").await;
    agent
        .wait_for(
            "the reply in the agent's view",
            WAIT,
            &format!(
                "const all = (function() {{ {} }})();
                 return all.some(m => m[0] === 'agent' && m[1].includes('Hi, this is Ana'));",
                messages("document")
            ),
        )
        .await;

    // The visitor sees the reply, under the agent's name, and who joined.
    let reply = visitor
        .wait_for(
            "the agent's reply in the widget",
            WAIT,
            &format!(
                "const all = (function() {{ {} }})();
                 const a = all.filter(m => m[0] === 'agent');
                 return a.length ? a[a.length - 1][1] : null;",
                messages(WIDGET_ROOT)
            ),
        )
        .await;
    let reply = reply.as_str().unwrap_or_default().to_owned();
    assert!(
        reply.contains("Ana") && reply.contains("Hi, this is Ana"),
        "the reply shows with the agent's name: {reply}"
    );
    let banner = visitor
        .wait_for(
            "the joined banner",
            WAIT,
            &probe(
                "handoff-banner",
                "e.innerText.includes('Ana joined') ? e.innerText : null",
            ),
        )
        .await;
    assert!(banner.as_str().is_some_and(|b| b.contains("Ana joined")));
    visitor.screenshot("agent-visitor-sees-reply").await;

    // An internal note stays with the agents.
    type_into(&agent, "note-input", "Customer seems in a hurry").await;
    click(&agent, "note-send").await;
    agent
        .wait_for(
            "the note",
            WAIT,
            &page("[data-testid=note]", "e.innerText.includes('in a hurry')"),
        )
        .await;

    // Resolve, teaching the AI: the form is prefilled with the visitor's last question and
    // the agent's last reply.
    let question = agent
        .js(&page("[data-testid=teach-question]", "e.value"), vec![])
        .await;
    let answer = agent
        .js(&page("[data-testid=teach-answer]", "e.value"), vec![])
        .await;
    assert_eq!(question, "I want to talk to a human");
    assert_eq!(answer, "Hi, this is Ana");
    type_into(&agent, "teach-question", "Who answers the chat?").await;
    type_into(&agent, "teach-answer", "Our support team, Ana among them.").await;
    agent.screenshot("agent-conversation").await;
    click(&agent, "resolve").await;
    agent
        .wait_for(
            "the conversation to be resolved",
            WAIT,
            &page(
                "[data-testid=conversation-state]",
                "e.getAttribute('data-state') === 'resolved'",
            ),
        )
        .await;
    click(&agent, "tab-resolved").await;
    agent
        .wait_for(
            "the conversation under Resolved",
            WAIT,
            &page("[data-testid=inbox-item][data-state=resolved]", "true"),
        )
        .await;
    agent.screenshot("agent-resolved").await;
    visitor
        .wait_for(
            "the visitor to see the conversation closed",
            WAIT,
            &probe("panel", "e.innerText.includes('Conversation closed')"),
        )
        .await;
    let notes_leaked = visitor
        .js(
            &probe("panel", "e.innerText.includes('in a hurry')"),
            vec![],
        )
        .await;
    assert_eq!(notes_leaked, false, "the visitor never sees internal notes");

    // The AI learned: the taught answer is in the knowledge base.
    let entries = store.kb_entries(site.id).await.expect("knowledge base");
    assert!(
        entries
            .iter()
            .any(|e| e.answer == "Our support team, Ana among them."
                && e.examples.iter().any(|q| q == "Who answers the chat?")),
        "the taught answer reached the knowledge base"
    );

    agent.close().await;
    visitor.close().await;
    server.stop().await;
}
