//! The escalation policy through the real server and store: the owner edits it (validated),
//! and each trigger hands the conversation to a person with its reason — a request for a
//! person, sensitive topics, insults, shouting, the same question again, the cap on AI turns —
//! in several languages, plus the Bitext `contact_human_agent` and `complaint` questions.

use nexus_shared::{
    Author, ClientFrame, ConversationState, HandoffReason, Message, Role, ServerFrame,
};
use nexus_tests::frames;
use nexus_tests::{TestServer, WsClient, agent_login};
use serde_json::{Value, json};

/// What the visitor saw after a message: the AI's reply, or a handoff with its reason.
#[derive(Debug)]
enum Outcome {
    Answer(Box<Message>),
    HandedOver(Option<HandoffReason>),
}

async fn next_outcome(visitor: &mut WsClient) -> Outcome {
    visitor
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::Ai => {
                Some(Outcome::Answer(Box::new(m.clone())))
            }
            ServerFrame::State { state, reason, .. } if *state == ConversationState::Waiting => {
                Some(Outcome::HandedOver(reason.clone()))
            }
            _ => None,
        })
        .await
        .0
}

/// A new visitor asks one question.
async fn ask(server: &TestServer, question: &str) -> Outcome {
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&frames::send(None, "q1", question)).await;
    visitor.recv_ack().await;
    let outcome = next_outcome(&mut visitor).await;
    visitor.close().await;
    outcome
}

async fn patch_site(server: &TestServer, token: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .patch(server.url("/api/v1/site"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("PATCH /site");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn sensitive(category: &str) -> Option<HandoffReason> {
    Some(HandoffReason::Sensitive {
        category: category.into(),
    })
}

#[tokio::test]
async fn owners_edit_the_policy_and_invalid_policies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;

    let site: Value = reqwest::Client::new()
        .get(server.url("/api/v1/site"))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let policy = &site["settings"]["policy"];
    assert_eq!(policy["max_ai_turns"], 8);
    assert_eq!(site["settings"]["learning"], "auto");
    for language in ["en", "de", "fr", "es"] {
        assert!(
            policy["human_phrases"][language]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "human phrases in {language}"
        );
    }
    let categories: Vec<&str> = policy["sensitive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(
        categories,
        [
            "legal_threat",
            "account_security",
            "complaint",
            "refund_over_limit",
            "health_safety"
        ]
    );

    let custom = json!({"policy": {"human_phrases": {"nl": ["met een medewerker"]}}});
    let (status, _) = patch_site(&server, &agent, custom.clone()).await;
    assert_eq!(status, 403, "agents cannot change the policy");
    for (bad, field) in [
        (
            json!({"policy": {"answer_threshold": 1.5}}),
            "answer_threshold",
        ),
        (
            json!({"policy": {"sensitive": [{"category": "legal_threat", "phrases": []}]}}),
            "phrases",
        ),
        (json!({"policy": {"human_phrases": {"en": [""]}}}), "phrase"),
        (json!({"learning": "sometimes"}), "approve"),
    ] {
        let (status, body) = patch_site(&server, &owner, bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["code"], "validation", "{bad}: {body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains(field),
            "{bad}: {body}"
        );
    }
    assert!(
        matches!(
            ask(&server, "Kan ik met een medewerker praten?").await,
            Outcome::Answer(_)
                | Outcome::HandedOver(Some(HandoffReason::OutOfScope))
                | Outcome::HandedOver(Some(HandoffReason::LowConfidence))
        ),
        "Dutch is not in the default phrases"
    );
    let (status, saved) = patch_site(&server, &owner, custom).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(
        saved["policy"]["human_phrases"]["nl"][0], "met een medewerker",
        "{saved}"
    );
    match ask(&server, "Kan ik met een medewerker praten?").await {
        Outcome::HandedOver(reason) => assert_eq!(reason, Some(HandoffReason::VisitorAsked)),
        other => panic!("the site's own phrase hands over: {other:?}"),
    }
}

#[tokio::test]
async fn each_trigger_hands_over_with_its_reason_in_several_languages() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let cases = [
        (
            "Je voudrais parler à un conseiller",
            Some(HandoffReason::VisitorAsked),
        ),
        (
            "Quiero hablar con una persona",
            Some(HandoffReason::VisitorAsked),
        ),
        (
            "My lawyer will contact you about this order",
            sensitive("legal_threat"),
        ),
        ("Ich werde Sie verklagen", sensitive("legal_threat")),
        (
            "My account was hacked, what now?",
            sensitive("account_security"),
        ),
        ("Mi cuenta fue hackeada", sensitive("account_security")),
        (
            "I'll file a chargeback with my bank",
            sensitive("refund_over_limit"),
        ),
        (
            "My son had an allergic reaction to your cookies",
            sensitive("health_safety"),
        ),
        ("Mein Sohn ist verletzt worden", sensitive("health_safety")),
        ("this chat is useless", Some(HandoffReason::Frustration)),
        (
            "c'est vraiment de la merde",
            Some(HandoffReason::Frustration),
        ),
        ("WHERE IS MY PACKAGE", Some(HandoffReason::Frustration)),
        ("WO IST MEIN PAKET", Some(HandoffReason::Frustration)),
    ];
    for (question, expected) in cases {
        match ask(&server, question).await {
            Outcome::HandedOver(reason) => assert_eq!(reason, expected, "{question}"),
            Outcome::Answer(m) => panic!("{question}: answered {:?}", m.body),
        }
    }
}

#[tokio::test]
async fn bitext_escalation_intents_are_handed_over() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    // Questions of the Bitext customer-support set's escalation intents.
    let contact_human_agent = [
        "need assistance speaking to a live agent",
        "i want assistance speaking with an agent",
        "I want assistance talking to someone",
        "you aren't being helpful, I want help talking with someone",
        "I want help  talking with an agent",
        "can you help me to speak  to a live agent?",
    ];
    let complaint = [
        "help lodging a customer complaint against your business",
        "my experience with your brand was bad, file a damn complaint",
        "where doI lodge a consumer claim against your organization?",
        "help making a customer complaint against your business",
    ];
    for question in contact_human_agent {
        match ask(&server, question).await {
            Outcome::HandedOver(reason) => {
                assert_eq!(reason, Some(HandoffReason::VisitorAsked), "{question}")
            }
            Outcome::Answer(m) => panic!("{question}: answered {:?}", m.body),
        }
    }
    for question in complaint {
        match ask(&server, question).await {
            // "damn" is no insult on the list; the complaint is what counts.
            Outcome::HandedOver(reason) => {
                assert_eq!(reason, sensitive("complaint"), "{question}")
            }
            Outcome::Answer(m) => panic!("{question}: answered {:?}", m.body),
        }
    }
}

#[tokio::test]
async fn the_same_question_after_an_answer_hands_over_as_frustration() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor
        .send(&frames::send(None, "q1", "how can I cancel my order"))
        .await;
    let conversation = visitor.recv_ack().await;
    match next_outcome(&mut visitor).await {
        Outcome::Answer(m) => assert_eq!(m.sources[0].entry_id, "cancel_order"),
        other => panic!("the first question is answered: {other:?}"),
    }
    visitor
        .send(&frames::send(
            Some(conversation),
            "q2",
            "How can I cancel my order??",
        ))
        .await;
    visitor.recv_ack().await;
    match next_outcome(&mut visitor).await {
        Outcome::HandedOver(reason) => assert_eq!(reason, Some(HandoffReason::Frustration)),
        other => panic!("asking again hands over: {other:?}"),
    }
}

#[tokio::test]
async fn after_the_cap_on_ai_turns_replies_offer_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let (status, body) = patch_site(&server, &owner, json!({"policy": {"max_ai_turns": 1}})).await;
    assert_eq!(status, 200, "{body}");

    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor
        .send(&frames::send(None, "q1", "how can I cancel my order"))
        .await;
    let conversation = visitor.recv_ack().await;
    match next_outcome(&mut visitor).await {
        Outcome::Answer(m) => assert!(m.choices.is_empty(), "no offer yet: {m:?}"),
        other => panic!("answered: {other:?}"),
    }
    visitor
        .send(&frames::send(
            Some(conversation),
            "q2",
            "which payment methods do you accept",
        ))
        .await;
    visitor.recv_ack().await;
    let answer = match next_outcome(&mut visitor).await {
        Outcome::Answer(m) => m,
        other => panic!("answered: {other:?}"),
    };
    assert!(!answer.sources.is_empty(), "still an answer: {answer:?}");
    let offer = answer
        .choices
        .iter()
        .find(|c| c.label == "Talk to a person")
        .unwrap_or_else(|| panic!("the answer offers a person: {answer:?}"));
    visitor
        .send(&ClientFrame::Choose {
            conversation_id: conversation,
            message_id: answer.id,
            choice_id: offer.id.clone(),
            client_msg_id: "pick".into(),
        })
        .await;
    match next_outcome(&mut visitor).await {
        Outcome::HandedOver(reason) => assert_eq!(reason, Some(HandoffReason::VisitorAsked)),
        other => panic!("picking the offer hands over: {other:?}"),
    }
}
