//! The owner's Playground and Knowledge gaps pages in a real headless Chromium: typed
//! questions show an answer with its source and a handover with the rule that decided, and an
//! entry fixed in place (a question added, an answer edited) answers on the next try, and a replay shows the visitor's question
//! that went to a person answered now; the gaps page shows the questions that went
//! to people with the team's replies, and drafting the group lands it in the knowledge base's
//! approval queue.

use nexus_shared::Role;
use nexus_tests::browser::{Browser, WAIT, click, console_server, log_in, page, testid, type_into};
use serde_json::json;

use super::playground::{GIFT, GIFT_AGAIN, WRAPPED, ask, gift_entry, handed_over};

/// Every `data-testid=id` text under each playground result (or gap group), as JS.
fn texts(list: &str, id: &str) -> String {
    format!(
        "const items = Array.from(document.querySelectorAll('[data-testid=\"{list}\"]'));
         return items.length ? items.map(i => {{
             const e = i.querySelector('[data-testid=\"{id}\"]');
             return e ? e.innerText : '';
         }}) : null;"
    )
}

#[tokio::test]
async fn the_playground_shows_an_answer_and_a_handover_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let server = console_server(dir.path(), &[("olga@demo.test", "Olga", Role::Owner)]).await;
    let owner = Browser::start(1280, 1100).await;
    // An entry the gift question is added to below (the page lists the entries it opens with).
    let token = server.login("demo", "olga@demo.test").await;
    // A visitor asked the gift question before the site had any entry on gift wrapping: it
    // went to a person (the replay below finds it answered now).
    let (_, then) = ask(&server, GIFT).await;
    assert!(
        then.is_none(),
        "the gift question goes to a person at first"
    );
    let gift = gift_entry(&server, &token).await;
    log_in(&owner, &server, "olga@demo.test").await;
    click(&owner, "nav-playground").await;
    owner
        .wait_for("the playground", WAIT, &page(&testid("playground"), "true"))
        .await;
    type_into(
        &owner,
        "playground-questions",
        "how can I cancel my order\nI want to talk to a human",
    )
    .await;
    click(&owner, "playground-try").await;
    let outcomes = owner
        .wait_for(
            "two results",
            WAIT,
            "const r = Array.from(document.querySelectorAll('[data-testid=\"playground-result\"]'));
             return r.length === 2 ? r.map(e => e.getAttribute('data-outcome')) : null;",
        )
        .await;
    assert_eq!(outcomes, json!(["answer", "escalate"]));
    let decisions = owner
        .js(&texts("playground-result", "playground-decision"), vec![])
        .await;
    assert!(
        decisions[0]
            .as_str()
            .unwrap()
            .starts_with("Answers · confidence "),
        "{decisions}"
    );
    assert_eq!(decisions[1], "Hands over to a person");
    let why = owner
        .js(&texts("playground-result", "playground-why"), vec![])
        .await;
    assert!(
        why[0]
            .as_str()
            .unwrap()
            .starts_with("Answer engine: Confidence"),
        "{why}"
    );
    assert_eq!(
        why[1],
        "Policy, before the engine: The visitor asks for a person."
    );
    let store = server.state.store.as_ref();
    let site = server.site("demo").await;
    let cancel = store
        .kb_entries(site.id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.id == "cancel_order")
        .unwrap();
    let source = owner
        .js(&texts("playground-result", "playground-source"), vec![])
        .await;
    let source = source[0].as_str().unwrap();
    assert!(source.contains(&cancel.title), "{source}");
    let passage_start: String = cancel.answer.chars().take(30).collect();
    assert!(
        source.contains(passage_start.trim()),
        "the passage: {source}"
    );

    // Fix in place: the gift question is added to the gift entry, and then answered from it.
    type_into(&owner, "playground-questions", GIFT).await;
    click(&owner, "playground-try").await;
    owner
        .wait_for(
            "the gift question tried",
            WAIT,
            "const r = document.querySelectorAll('[data-testid=\"playground-result\"]');
             return r.length === 1 && r[0].innerText.includes('gift wrapping') ? true : null;",
        )
        .await;
    let picked = owner
        .js(
            "const s = document.querySelector('[data-testid=\"playground-entry\"]');
             s.value = arguments[0];
             s.dispatchEvent(new Event('change'));
             return s.value;",
            vec![json!(gift)],
        )
        .await;
    assert_eq!(picked, json!(gift), "the new entry is offered");
    click(&owner, "playground-add-example").await;
    // Results are drawn once per try: the third try is the one after the fix.
    let after_try = |round: u32| {
        format!(
            "const l = document.querySelector('[data-testid=\"playground-results\"][data-round=\"{round}\"]');
             const r = l ? l.querySelectorAll('[data-testid=\"playground-result\"]') : [];
             return r.length === 1 && r[0].getAttribute('data-outcome') === 'answer'
                 ? r[0].querySelector('[data-testid=\"playground-answer\"]').innerText : null;"
        )
    };
    let answered = owner
        .wait_for(
            "the same question answered from the entry",
            WAIT,
            &after_try(3),
        )
        .await;
    assert_eq!(answered, WRAPPED);
    let status = owner
        .wait_for(
            "the fix's note",
            WAIT,
            &page(&testid("playground-status"), "e.innerText"),
        )
        .await;
    assert!(status.as_str().unwrap().starts_with("Saved"), "{status}");
    let entry = store
        .kb_entries(site.id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.id == gift)
        .unwrap();
    assert!(entry.examples.iter().any(|q| q == GIFT), "{entry:?}");

    // Edit the answer in place: saved to the entry, and the next try answers with it.
    let edited = "Yes: every order can be gift wrapped for 3 EUR, with a card.";
    type_into(&owner, "playground-edit-answer", edited).await;
    click(&owner, "playground-save-answer").await;
    let answered = owner
        .wait_for("the edited answer", WAIT, &after_try(4))
        .await;
    assert_eq!(answered, edited);
    let entry = store
        .kb_entries(site.id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.id == gift)
        .unwrap();
    assert_eq!(entry.answer, edited, "the entry keeps the edited answer");

    // Replay: the visitor's gift question, handed over then, is answered now.
    click(&owner, "playground-replay").await;
    let summary = owner
        .wait_for(
            "the replay's summary",
            WAIT,
            &page(&testid("replay-summary"), "e.innerText"),
        )
        .await;
    let summary = summary.as_str().unwrap_or_default();
    assert!(summary.starts_with("Questions replayed: 1."), "{summary}");
    assert!(
        summary.contains("Then: 0 answered, 0 clarified, 1 handed over.")
            && summary.contains("Now: 1 answered, 0 clarified, 0 handed over.")
            && summary.ends_with("Changed: 1."),
        "{summary}"
    );
    let change = owner
        .js(
            "const c = document.querySelector('[data-testid=\"replay-change\"]');
             return c ? [c.getAttribute('data-outcome'), c.innerText] : null;",
            vec![],
        )
        .await;
    assert_eq!(change[0], "answer", "{change}");
    let text = change[1].as_str().unwrap_or_default();
    assert!(text.contains(GIFT), "{text}");
    assert!(
        text.contains("Then: Hands over to a person \u{2192} now: Answers"),
        "{text}"
    );
    owner.screenshot("console-playground").await;
    owner.close().await;
    server.stop().await;
}

#[tokio::test]
async fn the_gaps_page_shows_a_group_and_drafts_it_into_the_approval_queue() {
    let dir = tempfile::tempdir().unwrap();
    let server = console_server(
        dir.path(),
        &[
            ("olga@demo.test", "Olga", Role::Owner),
            ("ana@demo.test", "Ana", Role::Agent),
        ],
    )
    .await;
    let agent = server.login("demo", "ana@demo.test").await;
    handed_over(&server, &agent, GIFT, WRAPPED).await;
    handed_over(&server, &agent, GIFT_AGAIN, WRAPPED).await;

    let owner = Browser::start(1280, 1100).await;
    log_in(&owner, &server, "olga@demo.test").await;
    click(&owner, "nav-gaps").await;
    let counts = owner
        .wait_for("the gap group", WAIT, &texts("gap-group", "gap-count"))
        .await;
    assert_eq!(counts, json!(["2 questions went to people"]));
    let asked = owner
        .js(
            "return Array.from(document.querySelectorAll('[data-testid=\"gap-question\"]')).map(e => e.innerText);",
            vec![],
        )
        .await;
    let asked: Vec<&str> = asked
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_str().unwrap())
        .collect();
    let visitor = |q: &str| format!("Visitor: {q}");
    assert!(
        asked.contains(&visitor(GIFT).as_str()) && asked.contains(&visitor(GIFT_AGAIN).as_str()),
        "{asked:?}"
    );
    let replies = owner
        .js(
            "return Array.from(document.querySelectorAll('[data-testid=\"gap-replies\"]')).map(e => e.innerText);",
            vec![],
        )
        .await;
    let team = format!("Team: {WRAPPED}");
    assert_eq!(replies, json!([team, team]));
    let answer = owner
        .js(&page(&testid("gap-answer"), "e.value"), vec![])
        .await;
    assert_eq!(answer, WRAPPED, "the team's reply is the draft's answer");
    owner.screenshot("console-gaps").await;

    click(&owner, "gap-draft").await;
    let status = owner
        .wait_for(
            "the draft's note",
            WAIT,
            &page(&testid("gaps-status"), "e.innerText"),
        )
        .await;
    assert_eq!(
        status,
        "Drafted: 2 questions wait for approval in the knowledge base."
    );
    owner
        .wait_for(
            "the drafted group to leave the gaps",
            WAIT,
            &page(&testid("gaps-empty"), "true"),
        )
        .await;

    click(&owner, "nav-knowledge").await;
    let pending = owner
        .wait_for(
            "the drafted questions in the approval queue",
            WAIT,
            "const q = Array.from(document.querySelectorAll('[data-testid=\"pending-question\"]')).map(e => e.value);
             return q.length === 2 ? q : null;",
        )
        .await;
    let mut pending: Vec<String> = serde_json::from_value(pending).unwrap();
    pending.sort();
    let mut expected = vec![GIFT.to_owned(), GIFT_AGAIN.to_owned()];
    expected.sort();
    assert_eq!(pending, expected);
    owner.close().await;
    server.stop().await;
}
