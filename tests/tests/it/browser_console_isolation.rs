//! Tenant isolation through the agent console, in a real headless Chromium: site B (created
//! by an owner over `POST /api/v1/sites`, its settings and knowledge over REST) has
//! conversations (one waiting for a person, one the AI answers, one with B's agent), a
//! knowledge base, canned responses, settings and traffic, all carrying a marker text. Site
//! A's agent and A's owner log in to the console and go through every inbox tab, the canned
//! responses picker, and (the owner) the knowledge base, canned responses, analytics and
//! settings pages: they see A's data and nothing of B's, not even in hidden elements or counts.
//! Opening B's conversation by its id in the console's address shows "not found", none of
//! its messages and no action on it, while A's own conversation opens the same way. The agent
//! has no settings page to open.

use std::time::Duration;

use nexus_server::model::Site;
use nexus_shared::{ClientFrame, ConversationState, Role, ServerFrame, Session};
use nexus_tests::browser::{
    Browser, WAIT, add_accounts, click, console_server, element, log_in, page, testid,
};
use nexus_tests::frames;
use nexus_tests::{TestServer, WsClient, agent_login};
use serde_json::{Value, json};
use uuid::Uuid;

/// In every text of site B; must never reach A's console.
const B: &str = "ZNZ-B";

/// Site B, made as a customer makes one: a demo-site owner, B's owner-to-be, creates it over
/// `POST /api/v1/sites`, signs in to it with the same password and sets its greeting and
/// knowledge base over REST. Returns the site and its owner's session.
async fn make_site_b(server: &TestServer) -> (Site, String) {
    let http = reqwest::Client::new();
    let creator = agent_login(server, "demo", "owner@b.test", Role::Owner).await;
    let created = http
        .post(server.url("/api/v1/sites"))
        .bearer_auth(&creator)
        .json(&json!({"key": "site-b", "name": format!("{B} Shop")}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "site B created");
    let owner = server.login("site-b", "owner@b.test").await;
    let patched = http
        .patch(server.url("/api/v1/site"))
        .bearer_auth(&owner)
        .json(&json!({"greeting": format!("Welcome to the {B} shop")}))
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success(), "{}", patched.status());
    let entry = http
        .post(server.url("/api/v1/kb"))
        .bearer_auth(&owner)
        .json(&json!({
            "title": format!("{B} refunds"),
            "answer": format!("{B}: refunds take 14 days, paid by xylophone transfer."),
            "examples": ["how long do refunds take", "when do I get my refund"],
        }))
        .send()
        .await
        .unwrap();
    assert!(entry.status().is_success(), "{}", entry.status());
    (server.site("site-b").await, owner)
}

/// A visitor of `site_key` asks `question`; returns the connection and the conversation.
async fn visitor_asks(server: &TestServer, site_key: &str, question: &str) -> (WsClient, Uuid) {
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), site_key, None).await;
    visitor.send(&frames::send(None, "q1", question)).await;
    let id = visitor.recv_ack().await;
    (visitor, id)
}

/// Creates a canned response with an owner's session.
async fn add_canned(server: &TestServer, owner: &str, title: &str, body: &str) {
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/canned"))
        .bearer_auth(owner)
        .json(&json!({"title": title, "body": body}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// The whole page as markup (hidden elements and attributes included) and as text.
async fn whole_page(browser: &Browser) -> String {
    browser
        .js(
            "return document.documentElement.outerHTML + '\\n' + document.body.innerText;",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Asserts that nothing of site B (its marker, its conversations' ids) is on the page.
async fn assert_nothing_of_b(browser: &Browser, who: &str, where_: &str, b_ids: &[Uuid]) {
    let text = whole_page(browser).await;
    assert!(
        !text.contains(B),
        "{who} sees site B's data on {where_}: {}",
        excerpt(&text, B)
    );
    for id in b_ids {
        let id = id.to_string();
        assert!(
            !text.contains(&id),
            "{who} sees site B's conversation {id} on {where_}"
        );
    }
}

fn excerpt(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap_or(0);
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(200)
        .map_or(0, |(i, _)| i);
    text[start..].chars().take(400).collect()
}

/// The number a tab shows.
async fn tab_count(browser: &Browser, tab: &str) -> String {
    browser
        .js(
            &page(
                &testid(&format!("tab-{tab}")),
                "e.querySelector('.na-count').innerText",
            ),
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Goes through the inbox tabs: A's conversation is there, B's are not.
async fn check_inbox(browser: &Browser, who: &str, a_conversation: Uuid, b_ids: &[Uuid]) {
    click(browser, "nav-inbox").await;
    browser
        .wait_for(
            "A's waiting conversation in the inbox",
            WAIT,
            &page(
                &format!("[data-testid=inbox-item][data-id=\"{a_conversation}\"]"),
                "true",
            ),
        )
        .await;
    for tab in ["waiting", "live", "mine", "resolved"] {
        click(browser, &format!("tab-{tab}")).await;
        browser
            .wait_for(
                &format!("the {tab} tab"),
                WAIT,
                &page(
                    &testid(&format!("tab-{tab}")),
                    "e.getAttribute('aria-selected') === 'true'",
                ),
            )
            .await;
        assert_nothing_of_b(browser, who, &format!("the {tab} tab"), b_ids).await;
    }
    // Only A's one conversation is counted.
    assert_eq!(tab_count(browser, "waiting").await, "1", "{who}: waiting");
    for tab in ["live", "mine", "resolved"] {
        assert_eq!(tab_count(browser, tab).await, "0", "{who}: {tab}");
    }
}

/// Opens a conversation by its id in the console's address.
async fn open_by_address(browser: &Browser, server: &TestServer, id: Uuid) {
    browser
        .client
        .goto(&server.url(&format!("/agent#conversation/{id}")))
        .await
        .unwrap();
}

/// A's conversation opens by its address; B's shows "not found" and nothing of B.
async fn check_address(
    browser: &Browser,
    server: &TestServer,
    who: &str,
    a_conversation: Uuid,
    b_ids: &[Uuid],
) {
    open_by_address(browser, server, a_conversation).await;
    browser
        .wait_for(
            "A's conversation opened by its address",
            WAIT,
            &page(
                &testid("conversation-state"),
                "e.getAttribute('data-state') === 'waiting'",
            ),
        )
        .await;
    browser
        .wait_for(
            "A's visitor's question in the timeline",
            WAIT,
            &page(
                &testid("timeline"),
                "e.innerText.includes('Where is my parcel? A-visitor')",
            ),
        )
        .await;
    for b in b_ids {
        open_by_address(browser, server, *b).await;
        let notice = browser
            .wait_for(
                "the not found notice",
                WAIT,
                &page(&testid("agent-notice"), "e.innerText"),
            )
            .await;
        assert_eq!(
            notice, "Conversation not found: there is none with this id on your site.",
            "{who}: {b}"
        );
        // Nothing of B and nothing to act on: no messages, no state, no composer or actions.
        assert_nothing_of_b(browser, who, &format!("B's conversation {b}"), &[]).await;
        let shown = browser
            .js(
                "return {
                    messages: document.querySelectorAll('[data-testid=\"timeline\"] [data-testid=\"message\"]').length,
                    state: document.querySelector('[data-testid=\"conversation-state\"]').getAttribute('data-state'),
                    actions: ['take-over', 'hand-back', 'agent-input', 'note-input', 'resolve']
                        .filter(id => { const e = document.querySelector('[data-testid=\"' + id + '\"]'); return e && e.offsetParent !== null; }),
                };",
                vec![],
            )
            .await;
        assert_eq!(
            shown,
            json!({"messages": 0, "state": "", "actions": []}),
            "{who}: B's conversation {b} shows nothing"
        );
    }
}

#[tokio::test]
async fn site_a_sees_nothing_of_site_b_in_the_console() {
    let dir = tempfile::tempdir().unwrap();
    // Site A is the demo site, with an agent and an owner.
    let server = console_server(
        dir.path(),
        &[
            ("ana@demo.test", "Ana", Role::Agent),
            ("olga@demo.test", "Olga", Role::Owner),
        ],
    )
    .await;
    let a_owner = agent_login(&server, "demo", "otto@demo.test", Role::Owner).await;
    add_canned(&server, &a_owner, "A greeting", "Hello from site A.").await;

    // Site B: its agent and owner, a canned response, and three conversations.
    let (site_b, b_owner) = make_site_b(&server).await;
    let b_agent_name = format!("Zed {B}");
    add_accounts(
        &server,
        "site-b",
        &[("zed@b.test", &b_agent_name, Role::Agent)],
    )
    .await;
    let b_agent = server.login("site-b", "zed@b.test").await;
    add_canned(
        &server,
        &b_owner,
        &format!("{B} canned title"),
        &format!("{B} canned body"),
    )
    .await;
    let (mut b_waiting, b1) = visitor_asks(
        &server,
        "site-b",
        &format!("I want to talk to a human {B}-waiting"),
    )
    .await;
    b_waiting.recv_state(ConversationState::Waiting).await;
    let (mut b_live, b2) = visitor_asks(&server, "site-b", "how long do refunds take").await;
    let (answer, _) = b_live
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == nexus_shared::Author::Ai => Some(m.body.clone()),
            ServerFrame::State {
                state: ConversationState::Waiting,
                ..
            } => panic!("B's AI handed over instead of answering"),
            _ => None,
        })
        .await;
    assert!(answer.contains(B), "B's AI answers from B's KB: {answer}");
    let (mut b_human, b3) = visitor_asks(
        &server,
        "site-b",
        &format!("I need a person please {B}-human"),
    )
    .await;
    let (mut b_agent_ws, welcome) = WsClient::agent(&server.ws_url(), &b_agent).await;
    assert!(matches!(welcome.session, Session::Agent { .. }));
    b_agent_ws
        .send(&ClientFrame::TakeOver {
            conversation_id: b3,
        })
        .await;
    b_human.recv_state(ConversationState::Human).await;
    b_agent_ws
        .send(&frames::send(
            Some(b3),
            "b-reply",
            format!("{B}: an agent of B answers"),
        ))
        .await;
    b_agent_ws.recv_ack().await;
    let b_ids = [b1, b2, b3];

    // Site A: one conversation waiting for a person.
    let (mut a_visitor, a1) = visitor_asks(
        &server,
        "demo",
        "I want to talk to a human. Where is my parcel? A-visitor",
    )
    .await;
    a_visitor.recv_state(ConversationState::Waiting).await;

    let (agent, owner) = tokio::join!(Browser::start(1280, 1000), Browser::start(1280, 1000));

    // A's agent: the inbox, the canned responses picker, no console pages, B's conversation
    // by its address.
    log_in(&agent, &server, "ana@demo.test").await;
    check_inbox(&agent, "A's agent", a1, &b_ids).await;
    let console_pages = agent
        .js(
            "return ['nav-settings', 'nav-knowledge', 'nav-analytics', 'settings', 'settings-form']
                 .filter(id => document.querySelector('[data-testid=\"' + id + '\"]')).length;",
            vec![],
        )
        .await;
    assert_eq!(
        console_pages, 0,
        "an agent has no settings or other console page"
    );
    click(&agent, "tab-waiting").await;
    element(
        &agent,
        &format!("[data-testid=inbox-item][data-id=\"{a1}\"]"),
    )
    .await
    .click()
    .await
    .unwrap();
    click(&agent, "canned-open").await;
    agent
        .wait_for(
            "A's canned response in the picker",
            WAIT,
            &page(
                &testid("canned-picker"),
                "e.innerText.includes('Hello from site A.')",
            ),
        )
        .await;
    assert_nothing_of_b(&agent, "A's agent", "the canned responses picker", &b_ids).await;
    check_address(&agent, &server, "A's agent", a1, &b_ids).await;

    // A's owner: the inbox, then every console page.
    log_in(&owner, &server, "olga@demo.test").await;
    check_inbox(&owner, "A's owner", a1, &b_ids).await;
    click(&owner, "nav-knowledge").await;
    owner
        .wait_for(
            "A's knowledge base",
            WAIT,
            &page(&testid("kb-count"), "e.innerText"),
        )
        .await;
    assert_nothing_of_b(&owner, "A's owner", "the knowledge base", &b_ids).await;
    // A search for a word only B's knowledge base has finds nothing.
    element(&owner, &testid("kb-search"))
        .await
        .send_keys("xylophone")
        .await
        .unwrap();
    owner
        .wait_for(
            "no entry to match",
            WAIT,
            &page(&testid("kb-empty"), "true"),
        )
        .await;
    assert_nothing_of_b(&owner, "A's owner", "a knowledge-base search", &b_ids).await;
    click(&owner, "kb-canned-toggle").await;
    owner
        .wait_for(
            "A's canned responses",
            WAIT,
            &page(
                &testid("kb-item"),
                "e.innerText.includes('Hello from site A.')",
            ),
        )
        .await;
    assert_nothing_of_b(&owner, "A's owner", "the canned responses", &b_ids).await;
    click(&owner, "nav-analytics").await;
    let conversations = owner
        .wait_for(
            "A's analytics",
            WAIT,
            &page(&testid("stat-conversations"), "e.innerText"),
        )
        .await;
    assert_eq!(
        conversations, "1 conversations",
        "A's analytics count only A's conversation"
    );
    assert_nothing_of_b(&owner, "A's owner", "analytics", &b_ids).await;
    click(&owner, "nav-settings").await;
    owner
        .wait_for(
            "A's settings",
            WAIT,
            &page(&testid("settings-form"), "true"),
        )
        .await;
    let key = owner
        .js(&page(&testid("snippet-code"), "e.value"), vec![])
        .await;
    assert!(
        key.as_str()
            .unwrap_or_default()
            .contains("data-site=\"demo\""),
        "the snippet is A's: {key}"
    );
    assert!(
        !key.as_str().unwrap_or_default().contains(&site_b.key),
        "{key}"
    );
    assert_nothing_of_b(&owner, "A's owner", "settings", &b_ids).await;
    check_address(&owner, &server, "A's owner", a1, &b_ids).await;

    // B's data is there all along: B's owner reads B's canned response.
    let listed: Value = reqwest::Client::new()
        .get(server.url("/api/v1/canned"))
        .bearer_auth(&b_owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed.to_string().contains(B), "{listed}");
    let _ = tokio::time::timeout(Duration::from_secs(1), b_agent_ws.close()).await;

    agent.close().await;
    owner.close().await;
    server.stop().await;
}
