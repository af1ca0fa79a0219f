//! Taking over while the AI is still answering, in two real headless Chromiums (a visitor's
//! widget and the agent console) against a server whose LLM backend is a small
//! OpenAI-compatible server on 127.0.0.1 that streams its answer a word at a time and only
//! finishes it when the test says so. The agent watches the conversation in the "Live AI" tab
//! and takes it over while the words are still arriving; the test then lets the LLM finish its
//! answer. What the visitor must see: after "Ana joined the conversation." no AI message and
//! no further growth of the streamed answer, then the agent's reply; the stored history has no
//! AI message after the takeover either. The same checks then flag the AI's answer after a
//! hand back, so they would flag an AI message that slipped through after the takeover.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use nexus_shared::{Message, Role};
use nexus_tests::TestServer;
use nexus_tests::browser::{
    Browser, WAIT, add_accounts, click, log_in, open_from_inbox, page, probe, type_into,
    wait_conversation_state, widget_snapshot,
};
use nexus_tests::llm::{FakeLlm, Seen, held, sse};
use serde_json::Value;

/// In the demo knowledge base: the engine lets the LLM phrase the answer.
const QUESTION: &str = "how can I cancel my order";
/// The end of the held answer, sent only once the test releases it (after the takeover).
const LATE: &str = "LATE-AI-ENDING: and that is how you cancel.";
/// The AI's answer after the hand back.
const AFTER_HAND_BACK: &str = "To cancel, open Order History and press Cancel.";
const REPLY: &str = "Hi, Ana here. I have cancelled the order for you.";

/// The first question gets an answer that is still being written until released; any later
/// one a short streamed answer.
async fn completions(seen: Arc<Seen>, _body: Value) -> Response {
    let asked = seen.requests.lock().unwrap().len();
    if asked == 1 {
        held(seen, LATE.to_owned(), Duration::from_millis(250))
    } else {
        let pieces = AFTER_HAND_BACK
            .split_inclusive(' ')
            .map(str::to_owned)
            .collect();
        sse(seen, pieces, Duration::from_millis(50))
    }
}

/// JS returning the widget's timeline as `[author, text]` pairs, in order.
const TIMELINE: &str = "const r = document.querySelector('#nexus-flow-root');
    if (!r || !r.shadowRoot) return [];
    return Array.from(r.shadowRoot.querySelectorAll('[data-testid=\"message\"]'))
        .map(m => [m.getAttribute('data-author'), m.querySelector('.nf-bubble').innerText]);";

/// JS returning the streamed answer the widget shows right now ('' when none shows).
const STREAMED: &str = "const r = document.querySelector('#nexus-flow-root');
    const s = r && r.shadowRoot && r.shadowRoot.querySelector('[data-testid=\"streaming\"]');
    return s && s.offsetParent !== null ? s.innerText : '';";

async fn timeline(visitor: &Browser) -> Vec<(String, String)> {
    let value = visitor.js(TIMELINE, vec![]).await;
    serde_json::from_value(value).expect("the timeline as [author, text] pairs")
}

async fn streamed(visitor: &Browser) -> String {
    let value = visitor.js(STREAMED, vec![]).await;
    value.as_str().unwrap_or_default().to_owned()
}

/// The AI's messages after the first "… joined the conversation." notice of `timeline`
/// (`(author, text)` pairs in order); `None` when nobody joined.
fn ai_after_joined(timeline: &[(String, String)]) -> Option<Vec<String>> {
    let joined = timeline.iter().position(|(author, text)| {
        author == "system" && text.contains("joined the conversation")
    })?;
    Some(
        timeline[joined + 1..]
            .iter()
            .filter(|(author, _)| author == "ai")
            .map(|(_, text)| text.clone())
            .collect(),
    )
}

/// The conversation's stored history, read as the visitor's page would (the history API
/// with the visitor's token), as `(author, text)` pairs.
async fn stored_history(server: &TestServer, visitor: &Browser, id: &str) -> Vec<(String, String)> {
    let token = visitor
        .js(
            "return localStorage.getItem('nexus-flow:demo:visitor');",
            vec![],
        )
        .await;
    let token = token.as_str().expect("the visitor's token").to_owned();
    let response = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/conversations/{id}/messages?limit=200")))
        .bearer_auth(token)
        .send()
        .await
        .expect("history request");
    assert_eq!(response.status(), 200, "the visitor reads their history");
    let page: Value = response.json().await.expect("history body");
    let messages: Vec<Message> =
        serde_json::from_value(page["messages"].clone()).expect("history messages");
    messages
        .into_iter()
        .map(|m| (m.author.kind().to_owned(), m.body))
        .collect()
}

/// Polls the visitor's widget until the agent's `reply` shows; returns every streamed text
/// seen longer than `at_join` on the way (the streamed answer growing after the notice).
async fn wait_reply_watching_stream(visitor: &Browser, reply: &str, at_join: &str) -> Vec<String> {
    let shows = format!(
        "const r = document.querySelector('#nexus-flow-root');
         return Array.from(r.shadowRoot.querySelectorAll('[data-testid=\"message\"][data-author=\"agent\"] .nf-bubble'))
             .some(b => b.innerText === {reply:?});"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut growth = Vec::new();
    loop {
        let now = streamed(visitor).await;
        if now.len() > at_join.len() {
            growth.push(now);
        }
        if visitor.js(&shows, vec![]).await == true {
            return growth;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the agent's reply in the widget"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn after_a_takeover_mid_answer_the_visitor_sees_no_more_of_the_ai() {
    let fake = FakeLlm::start(|seen, body| Box::pin(completions(seen, body))).await;
    let dir = tempfile::tempdir().unwrap();
    let widget = widget_snapshot(dir.path());
    let server = TestServer::start_with_llm(
        &dir.path().join("nexus.db"),
        &widget,
        fake.config("held", Duration::from_secs(600)),
    )
    .await;
    add_accounts(&server, "demo", &[("ana@demo.test", "Ana", Role::Agent)]).await;
    let (agent, visitor) = tokio::join!(Browser::start(1280, 1000), Browser::start(420, 760));
    log_in(&agent, &server, "ana@demo.test").await;

    // The visitor asks; the AI's answer starts to appear, word by word.
    visitor.client.goto(&server.url("/")).await.unwrap();
    visitor.open_widget(WAIT).await;
    visitor.send_message(QUESTION).await;
    visitor
        .wait_for(
            "the AI's answer to start streaming",
            WAIT,
            &probe(
                "streaming",
                "e.offsetParent !== null && e.innerText.includes('word')",
            ),
        )
        .await;

    // The agent watches it in "Live AI" and takes over while the words still arrive.
    open_from_inbox(&agent, "live", "ai").await;
    let id = agent
        .js(
            &page(
                "[data-testid=inbox-item].na-active",
                "e.getAttribute('data-id')",
            ),
            vec![],
        )
        .await;
    let id = id.as_str().expect("the open conversation's id").to_owned();
    assert!(
        !fake.seen.stream_over(),
        "the AI is still answering when the agent takes over"
    );
    click(&agent, "take-over").await;
    wait_conversation_state(&agent, "human").await;

    // The visitor is told a person joined.
    visitor
        .wait_for(
            "the agent joined notice",
            WAIT,
            "const r = document.querySelector('#nexus-flow-root');
             return Array.from(r.shadowRoot.querySelectorAll('[data-testid=\"message\"][data-author=\"system\"]'))
                 .some(m => m.innerText.includes('Ana joined the conversation'));",
        )
        .await;
    let streamed_at_join = streamed(&visitor).await;

    // The LLM finishes its answer now: the server must not deliver any of it.
    fake.seen.release();
    let mut over = false;
    for _ in 0..600 {
        over = fake.seen.stream_over();
        if over {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        over,
        "the LLM's stream ended (dropped by the server or finished)"
    );
    let words_sent = fake.seen.pieces_sent();

    // The agent replies; the visitor sees it, and nothing more of the AI before or after.
    type_into(&agent, "agent-input", REPLY).await;
    click(&agent, "agent-send").await;
    let growth = wait_reply_watching_stream(&visitor, REPLY, &streamed_at_join).await;
    // The half-written answer is taken away (the server clears it when it stops the stream).
    visitor
        .wait_for(
            "the streamed answer to go",
            WAIT,
            &probe("streaming", "e.offsetParent === null"),
        )
        .await;
    let seen = timeline(&visitor).await;
    let late = ai_after_joined(&seen).expect("the joined notice is in the widget's timeline");
    assert!(
        late.is_empty(),
        "the visitor saw an AI message after the agent joined: {late:?}\n{seen:?}"
    );
    assert!(
        growth.is_empty(),
        "the streamed AI answer kept growing after the agent joined (at join: {streamed_at_join:?}): {growth:?}"
    );
    assert!(
        !seen.iter().any(|(_, text)| text.contains("LATE-AI-ENDING")),
        "the end of the AI's answer never reached the visitor: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(author, text)| author == "agent" && text == REPLY),
        "the visitor sees the agent's reply: {seen:?}"
    );

    let history = stored_history(&server, &visitor, &id).await;
    let late = ai_after_joined(&history).expect("the takeover is in the stored history");
    assert!(
        late.is_empty(),
        "the history has an AI message after the takeover: {late:?}\n{history:?}"
    );
    assert!(
        !history.iter().any(|(author, _)| author == "ai"),
        "the interrupted answer was not stored: {history:?}"
    );
    visitor.screenshot("console-takeover-mid-answer").await;

    // The checks catch an AI message after the notice: hand back, and the AI's next answer
    // is flagged by both, in the widget and in the history.
    click(&agent, "hand-back").await;
    wait_conversation_state(&agent, "ai").await;
    visitor.send_message(QUESTION).await;
    visitor
        .wait_for(
            "the AI's answer after the hand back",
            WAIT,
            &format!(
                "const r = document.querySelector('#nexus-flow-root');
                 return Array.from(r.shadowRoot.querySelectorAll('[data-testid=\"message\"][data-author=\"ai\"] .nf-bubble'))
                     .some(b => b.innerText === {AFTER_HAND_BACK:?});"
            ),
        )
        .await;
    let flagged = ai_after_joined(&timeline(&visitor).await).unwrap_or_default();
    assert_eq!(
        flagged,
        vec![AFTER_HAND_BACK.to_owned()],
        "the widget check flags an AI message after the notice"
    );
    let flagged =
        ai_after_joined(&stored_history(&server, &visitor, &id).await).unwrap_or_default();
    assert_eq!(
        flagged,
        vec![AFTER_HAND_BACK.to_owned()],
        "the history check flags an AI message after the notice"
    );
    assert!(
        fake.seen.pieces_sent() > words_sent,
        "the second answer came from the LLM"
    );

    agent.close().await;
    visitor.close().await;
    server.stop().await;
}
