//! Agent console flows in a real headless Chromium, next to visitors in other ones: handing a
//! conversation back to the AI (which then answers again), resolving with "teach the AI" (a
//! new visitor then gets the taught answer for the question and a paraphrase), and review mode
//! (the visitor sees nothing until the agent edits and approves the AI's draft, then exactly
//! the edited text).

use nexus_shared::Role;
use nexus_tests::browser::{
    Browser, WAIT, bodies, click, console_server, log_in, open_from_inbox, page, probe, testid,
    type_into, wait_conversation_state, wait_new_body,
};
use nexus_tests::http::authed;
use nexus_tests::{TestServer, agent_login};
use serde_json::json;

/// A server on a temp SQLite file (and its own copy of the widget build) with an agent, Ana.
async fn server_with_agent(dir: &std::path::Path) -> TestServer {
    console_server(dir, &[("ana@demo.test", "Ana", Role::Agent)]).await
}

/// Ana logs in on `/agent` and waits until her console is online.
async fn agent_logs_in(agent: &Browser, server: &TestServer) {
    log_in(agent, server, "ana@demo.test").await;
}

/// Opens the visitor's widget on the demo page.
async fn visitor_opens(visitor: &Browser, server: &TestServer) {
    visitor.client.goto(&server.url("/")).await.unwrap();
    visitor.open_widget(WAIT).await;
}

async fn wait_handoff_banner(visitor: &Browser) {
    visitor
        .wait_for(
            "the handoff banner",
            WAIT,
            &probe("handoff-banner", "e.offsetParent !== null"),
        )
        .await;
}

/// Takes over the open conversation, replies with `text`, and waits until the visitor sees it.
async fn take_over_and_reply(agent: &Browser, visitor: &Browser, text: &str) {
    click(agent, "take-over").await;
    wait_conversation_state(agent, "human").await;
    let before = bodies(visitor, "agent").await.len();
    type_into(agent, "agent-input", text).await;
    click(agent, "agent-send").await;
    let seen = wait_new_body(visitor, "agent", before, "the agent's reply in the widget").await;
    assert_eq!(seen, text, "the visitor sees the agent's reply");
}

#[tokio::test]
async fn after_hand_back_the_ai_answers_the_visitor_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_agent(dir.path()).await;
    let (agent, visitor) = tokio::join!(Browser::start(1280, 1000), Browser::start(420, 760));
    agent_logs_in(&agent, &server).await;

    visitor_opens(&visitor, &server).await;
    visitor.send_message("I want to talk to a human").await;
    wait_handoff_banner(&visitor).await;

    open_from_inbox(&agent, "waiting", "waiting").await;
    take_over_and_reply(&agent, &visitor, "Hi, this is Ana. How can I help?").await;

    click(&agent, "hand-back").await;
    wait_conversation_state(&agent, "ai").await;
    assert!(
        agent
            .js(&page(&testid("hand-back"), "true"), vec![])
            .await
            .is_null(),
        "hand back is gone once the AI has the conversation"
    );

    let ai_before = bodies(&visitor, "ai").await.len();
    let agent_before = bodies(&visitor, "agent").await.len();
    visitor.send_message("how can I cancel my order").await;
    let answer = wait_new_body(&visitor, "ai", ai_before, "the AI's answer after hand back").await;
    assert!(
        answer.to_lowercase().contains("cancel"),
        "the AI answers the question: {answer}"
    );
    assert_eq!(
        bodies(&visitor, "agent").await.len(),
        agent_before,
        "no person answered"
    );
    visitor.screenshot("console-flows-hand-back").await;

    agent.close().await;
    visitor.close().await;
    server.stop().await;
}

const QUESTION: &str = "Do you offer gift wrapping for birthday presents?";
const PARAPHRASE: &str = "can you gift wrap a birthday present?";
const TAUGHT: &str = "Yes! Gift wrapping costs $4 and you can add a card with your own message.";

#[tokio::test]
async fn resolving_with_teach_makes_the_ai_answer_a_new_visitor() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_agent(dir.path()).await;
    // A plain agent's teach goes live only when the site allows it (`agent_learning`).
    server
        .configure(|s| s.agent_learning = nexus_engine::policy::Learning::Auto)
        .await;
    let (agent, visitor) = tokio::join!(Browser::start(1280, 1000), Browser::start(420, 760));
    agent_logs_in(&agent, &server).await;

    // The demo knowledge base does not know: the question is handed to a person.
    visitor_opens(&visitor, &server).await;
    visitor.send_message(QUESTION).await;
    wait_handoff_banner(&visitor).await;
    assert!(
        bodies(&visitor, "ai").await.is_empty(),
        "the AI did not answer an unknown question"
    );

    open_from_inbox(&agent, "waiting", "waiting").await;
    take_over_and_reply(&agent, &visitor, TAUGHT).await;
    let checked = agent
        .js(&page(&testid("teach-enabled"), "e.checked"), vec![])
        .await;
    if checked != true {
        click(&agent, "teach-enabled").await;
    }
    type_into(&agent, "teach-question", QUESTION).await;
    type_into(&agent, "teach-answer", TAUGHT).await;
    click(&agent, "resolve").await;
    wait_conversation_state(&agent, "resolved").await;
    visitor.close().await;

    // A new visitor, in a fresh browser profile, asks the same and then in other words.
    let newcomer = Browser::start(420, 760).await;
    visitor_opens(&newcomer, &server).await;
    for (asked, question) in [QUESTION, PARAPHRASE].into_iter().enumerate() {
        newcomer.send_message(question).await;
        let answer = wait_new_body(&newcomer, "ai", asked, "the AI's taught answer").await;
        assert_eq!(answer, TAUGHT, "{question}");
    }
    let banner = newcomer
        .js(&probe("handoff-banner", "e.offsetParent !== null"), vec![])
        .await;
    assert_ne!(banner, true, "the new visitor was not handed over");
    newcomer.screenshot("console-flows-taught").await;

    agent.close().await;
    newcomer.close().await;
    server.stop().await;
}

#[tokio::test]
async fn in_review_mode_the_visitor_sees_exactly_the_edited_draft() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_agent(dir.path()).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let http = reqwest::Client::new();
    let response = authed(
        &http,
        reqwest::Method::PATCH,
        server.url("/api/v1/site"),
        &owner,
        Some(&json!({"autonomy": "review"})),
    )
    .await;
    assert_eq!(response.status(), 200, "the owner switches to review");

    let (agent, visitor) = tokio::join!(Browser::start(1280, 1000), Browser::start(420, 760));
    agent_logs_in(&agent, &server).await;
    visitor_opens(&visitor, &server).await;
    visitor.send_message("how can I cancel my order").await;

    open_from_inbox(&agent, "live", "ai").await;
    let draft = agent
        .wait_for(
            "the AI's draft in the console",
            WAIT,
            &page(&testid("draft-body"), "e.value"),
        )
        .await;
    let draft = draft.as_str().unwrap_or_default().to_owned();
    assert!(!draft.trim().is_empty(), "the draft has text");
    assert!(
        bodies(&visitor, "ai").await.is_empty(),
        "the visitor sees no AI message while the draft waits"
    );

    let edited = "You can cancel any order within 24 hours under Orders, then Cancel. Ana";
    type_into(&agent, "draft-body", edited).await;
    click(&agent, "draft-edit").await;
    agent
        .wait_for(
            "the draft to leave the console",
            WAIT,
            &format!(
                "return document.querySelector({:?}) === null;",
                testid("draft")
            ),
        )
        .await;
    let seen = wait_new_body(&visitor, "ai", 0, "the approved answer in the widget").await;
    assert_eq!(seen, edited, "the visitor sees exactly the edited text");
    assert_eq!(
        bodies(&visitor, "ai").await,
        vec![edited.to_owned()],
        "only the edited text reached the visitor"
    );
    visitor.screenshot("console-flows-review").await;

    agent.close().await;
    visitor.close().await;
    server.stop().await;
}
