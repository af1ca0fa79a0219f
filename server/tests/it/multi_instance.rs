//! Three real `nexus-flow` processes on different 127.0.0.1 ports share one PostgreSQL schema
//! and nothing else. A visitor on instance 1, an agent on instance 2 and an observing owner on
//! instance 3: escalation, takeover, replies, typing, hand back and resolve all flow between
//! them; a knowledge-base entry taught and a setting changed through instance 3 take effect
//! on instance 1.
//! Then instance 2 is killed (SIGKILL); the agent reconnects to instance 3 with the same
//! session and goes on; at the end nothing is lost: every instance serves the same gap-free
//! timeline, and the visitor saw every entry of it live, in order.
//!
//! A logout on one instance and a password change with the CLI close the agent sockets of
//! those sessions on every instance at once; password guesses spread over two instances are
//! throttled as one count.
//!
//! `cargo test -p nexus-server --test it -- multi_instance::` (PostgreSQL at 127.0.0.1:5432, database
//! `test`; see `nexus_test_support::pg::base_url`).

use std::time::Duration;

use nexus_shared::{
    Author, ClientFrame, ConversationState, HandoffReason, ServerFrame, Session, Teach,
};
use nexus_test_support::WsClient;
use nexus_test_support::pg::{self, TestSchema};

use crate::support::{self, Instance};
use nexus_test_support::frames;
use uuid::Uuid;

fn state_is(conversation: Uuid, want: ConversationState) -> impl FnMut(&ServerFrame) -> Option<()> {
    move |f| match f {
        ServerFrame::State {
            conversation_id,
            state,
            ..
        } if *conversation_id == conversation && *state == want => Some(()),
        _ => None,
    }
}

fn message_from(
    conversation: Uuid,
    pick: impl Fn(&Author) -> bool,
) -> impl FnMut(&ServerFrame) -> Option<nexus_shared::Message> {
    move |f| match f {
        ServerFrame::Message(m) if m.conversation_id == conversation && pick(&m.author) => {
            Some(m.clone())
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_database_nothing_lost() {
    let schema = TestSchema::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let widget = dir.path().join("widget");
    // The first instance migrates and creates the demo site; the others join it.
    let one = Instance::start(&schema.url, &widget).await;
    let two = Instance::start(&schema.url, &widget).await;
    let three = Instance::start(&schema.url, &widget).await;
    support::add_user(&schema.url, "ana@demo.test", "agent").await;
    support::add_user(&schema.url, "olga@demo.test", "owner").await;
    // Ana is a plain agent: her teach goes live only where the site lets agents teach.
    let db = sqlx::PgPool::connect(&schema.url).await.expect("connect");
    sqlx::query(
        "UPDATE sites SET settings = (settings::jsonb || '{\"agent_learning\": \"auto\"}'::jsonb)::text
         WHERE key = 'demo'",
    )
    .execute(&db)
    .await
    .expect("let agents teach");
    db.close().await;
    let ana_token = support::login(two.port, "ana@demo.test").await;
    let olga_token = support::login(three.port, "olga@demo.test").await;

    let (mut agent, welcome) = WsClient::agent(&two.ws_url(), &ana_token).await;
    let Session::Agent { agent: ana, .. } = welcome.session else {
        panic!("an agent session");
    };
    let (mut observer, _) = WsClient::agent(&three.ws_url(), &olga_token).await;
    let (mut visitor, welcome) = WsClient::visitor(&one.ws_url(), "demo", None).await;
    let Session::Visitor { visitor_token } = welcome.session else {
        panic!("a visitor session");
    };

    // Escalation on instance 1 reaches the inboxes on instances 2 and 3.
    let (c, _) = visitor.say(None, "v-1", "I want to talk to a human").await;
    visitor
        .until("waiting", state_is(c, ConversationState::Waiting))
        .await;
    for inbox in [&mut agent, &mut observer] {
        let reason = inbox
            .until("the escalation in the inbox", |f| match f {
                ServerFrame::Conversation(s)
                    if s.id == c && s.state == ConversationState::Waiting =>
                {
                    Some(s.handoff_reason.clone())
                }
                _ => None,
            })
            .await;
        assert_eq!(reason, Some(HandoffReason::VisitorAsked));
    }
    observer
        .send(&ClientFrame::Watch { conversation_id: c })
        .await;
    observer
        .until("the observer's history", |f| {
            matches!(f, ServerFrame::History { conversation_id, .. } if *conversation_id == c)
                .then_some(())
        })
        .await;

    // Takeover on instance 2: the visitor on 1 learns who joined; the observer on 3 sees it.
    agent
        .send(&ClientFrame::TakeOver { conversation_id: c })
        .await;
    let assignee = visitor
        .until("the takeover", |f| match f {
            ServerFrame::State {
                conversation_id,
                state: ConversationState::Human,
                assignee,
                ..
            } if *conversation_id == c => Some(assignee.clone()),
            _ => None,
        })
        .await;
    assert_eq!(assignee.map(|a| a.id), Some(ana.id));
    observer
        .until("human on 3", state_is(c, ConversationState::Human))
        .await;

    // Replies both ways, and typing, across instances.
    agent
        .say(Some(c), "a-1", "Hi, Ana here. What is the order number?")
        .await;
    let reply = visitor
        .until(
            "the agent's reply",
            message_from(c, |a| matches!(a, Author::Agent(_))),
        )
        .await;
    assert_eq!(reply.body, "Hi, Ana here. What is the order number?");
    observer
        .until(
            "the reply on 3",
            message_from(c, |a| matches!(a, Author::Agent(_))),
        )
        .await;
    visitor
        .send(&ClientFrame::Typing {
            conversation_id: c,
            typing: true,
        })
        .await;
    agent
        .until("the visitor typing", |f| match f {
            ServerFrame::Typing {
                conversation_id,
                author: Author::Visitor,
                typing: true,
            } if *conversation_id == c => Some(()),
            _ => None,
        })
        .await;
    visitor.say(Some(c), "v-2", "It is 4711").await;
    let got = agent
        .until(
            "the visitor's answer",
            message_from(c, |a| *a == Author::Visitor),
        )
        .await;
    assert_eq!(got.body, "It is 4711");

    // Figures (printed, not asserted): agent on 2 → visitor on 1, through PostgreSQL.
    let mut took = Vec::new();
    for i in 0..20 {
        let body = format!("latency probe {i}");
        let start = std::time::Instant::now();
        agent.say(Some(c), &format!("p-{i}"), &body).await;
        visitor
            .until("the probe", |f| match f {
                ServerFrame::Message(m) if m.body == body => Some(()),
                _ => None,
            })
            .await;
        took.push(start.elapsed());
    }
    took.sort_unstable();
    println!(
        "cross-instance delivery (agent on 2 -> visitor on 1, 20 messages): p50 {:?}, p90 {:?}, max {:?}",
        took[10], took[18], took[19]
    );

    // The AI stays silent while Ana owns the conversation, even on a question it knows.
    visitor
        .say(Some(c), "v-3", "how can I cancel my order")
        .await;
    agent
        .until(
            "the question on 2",
            message_from(c, |a| *a == Author::Visitor),
        )
        .await;

    // Hand back on 2: the AI on 1 answers again.
    agent
        .send(&ClientFrame::HandBack { conversation_id: c })
        .await;
    visitor
        .until("back to the AI", state_is(c, ConversationState::Ai))
        .await;
    visitor
        .say(Some(c), "v-4", "how can I cancel my order")
        .await;
    let answer = visitor
        .until("the AI's answer", message_from(c, |a| *a == Author::Ai))
        .await;
    assert!(
        !answer.sources.is_empty(),
        "answered from the knowledge base"
    );
    observer
        .until(
            "the AI's answer on 3",
            message_from(c, |a| *a == Author::Ai),
        )
        .await;

    // Escalate again, then instance 2 dies.
    visitor
        .say(Some(c), "v-5", "one more question about 4711")
        .await;
    visitor
        .send(&ClientFrame::RequestHuman { conversation_id: c })
        .await;
    visitor
        .until("waiting again", state_is(c, ConversationState::Waiting))
        .await;
    agent.drain(Duration::from_millis(300)).await;
    assert!(
        agent
            .seen
            .iter()
            .any(|f| matches!(f, ServerFrame::Conversation(s) if s.id == c && s.state == ConversationState::Waiting)),
        "instance 2 saw the second escalation before its death"
    );
    two.kill().await;

    // The agent reconnects to instance 3 with the same session and goes on.
    let (mut agent, _) = WsClient::agent(&three.ws_url(), &ana_token).await;
    agent
        .send(&ClientFrame::TakeOver { conversation_id: c })
        .await;
    visitor
        .until("taken over via 3", state_is(c, ConversationState::Human))
        .await;
    agent
        .say(Some(c), "a-2", "Back again, cancelling 4711 for you.")
        .await;
    let reply = visitor
        .until(
            "the reply via 3",
            message_from(c, |a| matches!(a, Author::Agent(_))),
        )
        .await;
    assert_eq!(reply.body, "Back again, cancelling 4711 for you.");

    // Resolve with a teach through instance 3; the AI on instance 1 knows it at once.
    let question = "Do you offer gift wrapping for birthday presents?";
    let taught = "Yes! Gift wrapping costs $4 and you can add a card.";
    agent
        .send(&ClientFrame::Resolve {
            conversation_id: c,
            teach: Some(Teach {
                question: question.into(),
                answer: taught.into(),
                entry_id: None,
            }),
        })
        .await;
    visitor
        .until("resolved", state_is(c, ConversationState::Resolved))
        .await;
    observer
        .until("resolved on 3", state_is(c, ConversationState::Resolved))
        .await;
    visitor.drain(Duration::from_millis(500)).await;

    let mut answered = None;
    for attempt in 0..20 {
        // A new visitor each time: a fresh conversation with the AI.
        let (mut second, _) = WsClient::visitor(&one.ws_url(), "demo", None).await;
        let (c2, _) = second.say(None, &format!("g-{attempt}"), question).await;
        let ai = second
            .until("an answer or a handoff", |f| match f {
                ServerFrame::Message(m) if m.conversation_id == c2 && m.author == Author::Ai => {
                    Some(Some(m.body.clone()))
                }
                ServerFrame::State {
                    conversation_id,
                    state: ConversationState::Waiting,
                    ..
                } if *conversation_id == c2 => Some(None),
                _ => None,
            })
            .await;
        second.close().await;
        if ai.as_deref() == Some(taught) {
            answered = ai;
            break;
        }
        // The reload is asynchronous; it normally lands before the first attempt.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        answered.as_deref(),
        Some(taught),
        "instance 1 learned what instance 3 was taught"
    );

    // Settings changed through instance 3 apply on instance 1 at once.
    let (status, body) = support::http_as(
        three.port,
        "PATCH",
        "/api/v1/site",
        Some(&serde_json::json!({"greeting": "Moin! Changed on instance 3."})),
        Some(&olga_token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (fresh, welcome) = WsClient::visitor(&one.ws_url(), "demo", None).await;
    assert_eq!(
        welcome.site.map(|s| s.greeting).as_deref(),
        Some("Moin! Changed on instance 3.")
    );
    fresh.close().await;

    // Nothing lost: every instance serves the same gap-free timeline, which the visitor saw
    // live, in order.
    let mut timelines = Vec::new();
    for instance in [&one, &three] {
        let (mut v, _) =
            WsClient::visitor(&instance.ws_url(), "demo", Some(visitor_token.clone())).await;
        v.send(&ClientFrame::Resume {
            conversation_id: c,
            after_seq: 0,
        })
        .await;
        let history = v
            .until("the history", |f| match f {
                ServerFrame::History {
                    conversation_id,
                    messages,
                    ..
                } if *conversation_id == c => Some(messages.clone()),
                _ => None,
            })
            .await;
        v.close().await;
        timelines.push(history);
    }
    let history = &timelines[0];
    assert_eq!(
        timelines[0], timelines[1],
        "instances 1 and 3 serve the same timeline"
    );
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=history.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    for id in ["v-1", "v-2", "v-3", "v-4", "v-5", "a-1", "a-2"] {
        assert_eq!(
            history
                .iter()
                .filter(|m| m.client_msg_id.as_deref() == Some(id))
                .count(),
            1,
            "{id} stored exactly once"
        );
    }
    assert!(
        !history
            .iter()
            .any(|m| m.author == Author::Ai && m.body.contains("cancel") && m.seq < answer.seq),
        "the AI stayed silent while Ana owned the conversation"
    );
    let mut seen = visitor.seqs(c);
    seen.dedup();
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, seqs, "the visitor saw every entry live");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");

    // Metrics moved on the instances that did the work.
    let (status, metrics) = support::http(one.port, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(
        metric(&metrics, "nexus_messages_total{author=\"visitor\"}") >= 5.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "nexus_escalations_total{reason=\"visitor_asked\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "nexus_ai_reply_seconds_count") >= 1.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "nexus_fanout_notifications_total{direction=\"received\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "nexus_db_pool_connections{backend=\"postgres\",state=\"open\"}"
        ) >= 1.0,
        "{metrics}"
    );
    let (_, metrics) = support::http(three.port, "GET", "/metrics", None).await;
    assert!(
        metric(&metrics, "nexus_messages_total{author=\"agent\"}") >= 1.0,
        "{metrics}"
    );

    agent.close().await;
    observer.close().await;
    visitor.close().await;
    one.kill().await;
    three.kill().await;
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

/// Agents online anywhere count everywhere: an agent on instance 2 is announced to instance 1,
/// whose visitors are told someone is online and get no offline notice on escalation. Once
/// instance 2 is killed and its announcement expires, instance 1 counts nobody and a visitor
/// who asks for a human gets the offline notice. (Short presence intervals via
/// `NEXUS_FLOW_PRESENCE_REFRESH_MS` / `NEXUS_FLOW_PRESENCE_EXPIRY_MS`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_online_on_another_instance_count_until_it_dies() {
    let schema = TestSchema::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let widget = dir.path().join("widget");
    let env = [
        ("NEXUS_FLOW_PRESENCE_REFRESH_MS", "200"),
        ("NEXUS_FLOW_PRESENCE_EXPIRY_MS", "1500"),
    ];
    let one = Instance::start_env(&schema.url, &widget, &env).await;
    let two = Instance::start_env(&schema.url, &widget, &env).await;
    support::add_user(&schema.url, "ana@demo.test", "agent").await;
    let ana_token = support::login(two.port, "ana@demo.test").await;
    let (mut agent, _) = WsClient::agent(&two.ws_url(), &ana_token).await;

    // The announcement travels through PostgreSQL: poll instance 1 until it counts the agent.
    let visitor_sees = |expect_online: bool| {
        let url = one.ws_url();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let (visitor, welcome) = WsClient::visitor(&url, "demo", None).await;
                let online = welcome.site.expect("site info").agents_online;
                if (online >= 1) == expect_online {
                    return (visitor, online);
                }
                visitor.close().await;
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "instance 1 kept counting {online} agents online"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let (mut visitor, online) = visitor_sees(true).await;
    assert_eq!(online, 1, "one agent on instance 2");
    let (c, _) = visitor.say(None, "v-1", "I want to talk to a human").await;
    visitor
        .until("waiting", state_is(c, ConversationState::Waiting))
        .await;
    visitor.drain(Duration::from_millis(1_500)).await;
    assert!(
        !visitor
            .seen
            .iter()
            .any(|f| matches!(f, ServerFrame::Offline { .. })),
        "no offline notice while an agent is online on instance 2: {:#?}",
        visitor.seen
    );
    // The agent on instance 2 sees the escalation from instance 1.
    agent
        .until("the escalation in the inbox", |f| match f {
            ServerFrame::Conversation(s) if s.id == c => Some(()),
            _ => None,
        })
        .await;

    // Instance 2 dies without a word: its agent drops out once the announcement expires.
    two.kill().await;
    let (mut late, online) = visitor_sees(false).await;
    assert_eq!(online, 0);
    let (c2, _) = late.say(None, "v-2", "I want to talk to a human").await;
    late.until("waiting", state_is(c2, ConversationState::Waiting))
        .await;
    late.until("the offline notice", |f| match f {
        ServerFrame::Offline {
            conversation_id, ..
        } if *conversation_id == c2 => Some(()),
        _ => None,
    })
    .await;

    visitor.close().await;
    late.close().await;
    one.kill().await;
}

/// Many conversations writing at once on instance 1, each of its group commits announced in
/// one notification: an agent on instance 2 watching all of them receives every entry of
/// every conversation live, in order, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_across_many_conversations_reaches_another_instance_in_order() {
    const VISITORS: usize = 24;
    const MESSAGES: usize = 15;
    let schema = TestSchema::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let widget = dir.path().join("widget");
    let one = Instance::start(&schema.url, &widget).await;
    let two = Instance::start(&schema.url, &widget).await;
    support::add_user(&schema.url, "ana@demo.test", "agent").await;
    let ana_token = support::login(two.port, "ana@demo.test").await;
    let (mut agent, _) = WsClient::agent(&two.ws_url(), &ana_token).await;

    let mut visitors = Vec::new();
    for i in 0..VISITORS {
        let (mut visitor, _) = WsClient::visitor(&one.ws_url(), "demo", None).await;
        let (c, _) = visitor
            .say(None, &format!("v{i}-0"), "I want to talk to a human")
            .await;
        visitor
            .until("waiting", state_is(c, ConversationState::Waiting))
            .await;
        agent.send(&ClientFrame::Watch { conversation_id: c }).await;
        agent
            .until("the history", |f| {
                matches!(f, ServerFrame::History { conversation_id, .. } if *conversation_id == c)
                    .then_some(())
            })
            .await;
        visitors.push((visitor, c));
    }

    // Every visitor sends all its messages without waiting for an ack, all at once.
    let sent = visitors
        .into_iter()
        .enumerate()
        .map(|(i, (mut visitor, c))| {
            tokio::spawn(async move {
                for n in 1..=MESSAGES {
                    visitor
                        .send(&frames::send(
                            Some(c),
                            format!("v{i}-{n}"),
                            format!("message {n} of visitor {i}"),
                        ))
                        .await;
                }
                let last = format!("v{i}-{MESSAGES}");
                let seq = visitor
                    .until("the last ack", |f| match f {
                        ServerFrame::Ack {
                            client_msg_id, seq, ..
                        } if *client_msg_id == last => Some(*seq),
                        ServerFrame::Error(e) => panic!("refused: {e:?}"),
                        _ => None,
                    })
                    .await;
                visitor.close().await;
                (c, seq)
            })
        });
    let mut last_seqs = Vec::new();
    for task in sent {
        last_seqs.push(task.await.expect("a visitor task"));
    }

    for (c, last) in &last_seqs {
        let (c, last) = (*c, *last);
        if !agent.seqs(c).contains(&last) {
            agent
                .until("the conversation's last entry", |f| match f {
                    ServerFrame::Message(m) if m.conversation_id == c && m.seq == last => Some(()),
                    _ => None,
                })
                .await;
        }
    }
    agent.drain(Duration::from_millis(300)).await;
    for (c, last) in last_seqs {
        let seqs = agent.seqs(c);
        let first = seqs.first().copied().unwrap_or(1);
        assert_eq!(
            seqs,
            (first..=last).collect::<Vec<_>>(),
            "conversation {c}: every entry once, in order"
        );
        let bodies: Vec<String> = agent
            .seen
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Message(m)
                    if m.conversation_id == c && m.author == Author::Visitor =>
                {
                    Some(m.body.clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(bodies.len(), MESSAGES, "conversation {c}: {bodies:?}");
    }
    agent.close().await;
    one.kill().await;
    two.kill().await;
}

/// Three instances started at the same moment on an empty schema, as a deployment's first
/// start does: all of them come up, the demo site exists once with its whole knowledge base,
/// and each instance answers the demo questions from it (none loaded it half-made).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_share_one_whole_demo_site() {
    let schema = TestSchema::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let widget = dir.path().join("widget");
    let (one, two, three) = tokio::join!(
        Instance::start(&schema.url, &widget),
        Instance::start(&schema.url, &widget),
        Instance::start(&schema.url, &widget),
    );

    let mut db = pg::connect(&schema.url).await;
    let sites: Vec<String> = sqlx::query_scalar("SELECT id FROM sites WHERE key = 'demo'")
        .fetch_all(&mut db)
        .await
        .expect("the demo site");
    assert_eq!(sites.len(), 1, "one demo site");
    let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kb_entries WHERE site_id = $1")
        .bind(&sites[0])
        .fetch_one(&mut db)
        .await
        .expect("its knowledge base");
    assert_eq!(
        entries as usize,
        nexus_engine::demo::demo_kb().len(),
        "the whole demo knowledge base"
    );

    for (n, instance) in [&one, &two, &three].into_iter().enumerate() {
        let (mut visitor, _) = WsClient::visitor(&instance.ws_url(), "demo", None).await;
        let (c, asked) = visitor
            .say(None, "q-1", "I want help seeing your payment methods")
            .await;
        let answer = visitor
            .until("the answer or a handoff", |f| match f {
                ServerFrame::Message(m) if m.conversation_id == c && m.seq > asked => {
                    Some(m.author.clone())
                }
                _ => None,
            })
            .await;
        assert_eq!(answer, Author::Ai, "instance {}: the AI answers", n + 1);
    }
}

/// Waits for `unauthorized` on an agent socket, then for the server to close it.
async fn ends_with_unauthorized(ws: &mut WsClient, what: &str) {
    ws.until(what, |f| {
        matches!(f, ServerFrame::Error(e) if e.code == nexus_shared::ErrorCode::Unauthorized)
            .then_some(())
    })
    .await;
    ws.until_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_on_one_instance_closes_its_sockets_on_every_instance() {
    let schema = TestSchema::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let widget = dir.path().join("widget");
    let one = Instance::start(&schema.url, &widget).await;
    let two = Instance::start(&schema.url, &widget).await;
    support::add_user(&schema.url, "ana@demo.test", "agent").await;
    let first = support::login(one.port, "ana@demo.test").await;
    let second = support::login(one.port, "ana@demo.test").await;
    let (mut first_on_one, _) = WsClient::agent(&one.ws_url(), &first).await;
    let (mut first_on_two, _) = WsClient::agent(&two.ws_url(), &first).await;
    let (mut second_on_two, _) = WsClient::agent(&two.ws_url(), &second).await;

    // Logout through instance 1 closes that session's sockets on 1 and on 2.
    let (status, _) =
        support::http_as(one.port, "POST", "/api/v1/auth/logout", None, Some(&first)).await;
    assert_eq!(status, 204);
    ends_with_unauthorized(&mut first_on_two, "the logout, on the other instance").await;
    ends_with_unauthorized(&mut first_on_one, "the logout, on its own instance").await;
    // The other session goes on.
    second_on_two.sync().await;

    // A password changed with the CLI (a process of its own) ends the account's sessions on
    // every instance.
    support::passwd(&schema.url, "ana@demo.test", "another long password").await;
    ends_with_unauthorized(&mut second_on_two, "the password change").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guesses_spread_over_two_instances_are_throttled_as_one_count() {
    let schema = TestSchema::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let widget = dir.path().join("widget");
    let one = Instance::start(&schema.url, &widget).await;
    let two = Instance::start(&schema.url, &widget).await;
    support::add_user(&schema.url, "ana@demo.test", "agent").await;

    // Twenty wrong passwords at once, alternating between the instances.
    let guesses = (0..20).map(|i| {
        let port = if i % 2 == 0 { one.port } else { two.port };
        async move {
            let body = serde_json::json!({
                "site_key": "demo",
                "email": "ana@demo.test",
                "password": format!("wrong guess {i:04}"),
            });
            support::http(port, "POST", "/api/v1/auth/login", Some(&body)).await
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|(s, b)| *s == 401 && b.contains("invalid_credentials"))
        .count();
    let throttled = answers
        .iter()
        .filter(|(s, b)| *s == 429 && b.contains("login_throttled"))
        .count();
    assert_eq!(checked + throttled, 20, "{answers:?}");
    let max = nexus_server::access::accounts::MAX_FAILURES as usize;
    assert!(
        checked <= max,
        "two instances checked {checked} guesses, at most {max} may be"
    );
    // The right password is refused on both while the account is locked.
    for port in [one.port, two.port] {
        let body = serde_json::json!({
            "site_key": "demo",
            "email": "ana@demo.test",
            "password": nexus_test_support::PASSWORD,
        });
        let (status, text) = support::http(port, "POST", "/api/v1/auth/login", Some(&body)).await;
        assert_eq!(status, 429, "{text}");
    }
}

#[test]
fn setting_nexus_skip_pg_fails_a_postgresql_test_instead_of_passing_it() {
    // This test binary, running one PostgreSQL test with the old skip variable set.
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "multi_instance::instances_starting_together_share_one_whole_demo_site",
            "--exact",
            "--test-threads=1",
        ])
        .env("NEXUS_SKIP_PG", "1")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a skipped PostgreSQL test must not pass: {stdout}"
    );
    assert!(stdout.contains("1 failed"), "{stdout}");
    assert!(
        stdout.contains("NEXUS_SKIP_PG no longer skips"),
        "the failure says why: {stdout}"
    );
}
