//! The store test suite, run against both backends: every case is one generic function over
//! `&dyn Store`, instantiated for SQLite on a temporary file (`sqlite::…`) and for PostgreSQL
//! in a fresh schema of the test database (`postgres::…`). PostgreSQL being unreachable fails
//! the `postgres::…` tests with a clear message (see `nexus_tests::pg`).
//!
//! At the end, PostgreSQL-only cases: commits through two separate stores (two instances'
//! pools) on one schema stay exclusive and gap-free; and the end-to-end WebSocket flow on two
//! in-process servers sharing one schema (visitor on one, agent on the other).

use std::sync::Arc;

use nexus_engine::KbEntry;
use nexus_server::model::{
    Guard, KnowledgeSource, NewMessage, Op, Passage, PassageChanges, PasswordHash, Site,
    SiteSettings, User, now_ms,
};
use nexus_server::store::{Store, StoreError};
use nexus_shared::{
    AgentRef, Author, ConversationState, Draft, HandoffReason, Note, Role, SourceKind, StateError,
    Transition, VisitorInfo,
};
use nexus_tests::frames;
use uuid::Uuid;

async fn new_site(store: &dyn Store, key: &str) -> Site {
    let site = Site {
        id: Uuid::new_v4(),
        key: key.into(),
        name: format!("Site {key}"),
        settings: SiteSettings::default(),
        created_at: now_ms(),
    };
    store.create_site(&site).await.expect("create site");
    site
}

fn agent(name: &str) -> AgentRef {
    AgentRef {
        id: Uuid::new_v4(),
        name: name.into(),
    }
}

fn post(author: Author, body: &str, client_msg_id: Option<&str>) -> Op {
    Op::Post {
        message: NewMessage {
            client_msg_id: client_msg_id.map(str::to_owned),
            ..NewMessage::new(author, body)
        },
        reopen_to: ConversationState::Ai,
        notices: nexus_server::conversation::notices::NOTICES,
    }
}

fn transition(transition: Transition) -> Op {
    Op::Transition {
        notice: None,
        transition,
        notices: nexus_server::conversation::notices::NOTICES,
    }
}

fn kb(id: &str, answer: &str) -> KbEntry {
    KbEntry {
        url: None,
        id: id.into(),
        title: format!("Title {id}"),
        answer: answer.into(),
        examples: vec![format!("how about {id}?")],
        escalate: None,
    }
}

async fn sites_and_settings(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let a = new_site(store, "alpha").await;
    let b = new_site(store, "beta").await;
    assert_eq!(store.site_by_key("alpha").await.unwrap(), Some(a.clone()));
    assert_eq!(store.site(b.id).await.unwrap(), Some(b.clone()));
    assert_eq!(store.site_by_key("nope").await.unwrap(), None);
    let keys: Vec<String> = store
        .sites()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect();
    assert!(keys.contains(&"alpha".into()) && keys.contains(&"beta".into()));

    let settings = SiteSettings {
        greeting: "Grüß dich 👋".into(),
        identity_secret: Some("s3cret".into()),
        require_identity: true,
        allowed_origins: vec!["https://shop.example".into()],
        ..SiteSettings::default()
    };
    store.update_site_settings(a.id, &settings).await.unwrap();
    assert_eq!(store.site(a.id).await.unwrap().unwrap().settings, settings);
    assert_eq!(
        store.site(b.id).await.unwrap().unwrap().settings,
        SiteSettings::default(),
        "the other site is untouched"
    );
    assert!(matches!(
        store.update_site_settings(Uuid::new_v4(), &settings).await,
        Err(StoreError::NotFound)
    ));
    // The same key twice is refused.
    assert!(
        store
            .create_site(&Site {
                id: Uuid::new_v4(),
                ..a
            })
            .await
            .is_err()
    );
}

async fn knowledge_base(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let site = new_site(store, "kb").await;
    let other = new_site(store, "kb-other").await;
    store
        .upsert_kb_entry(site.id, &kb("refunds", "Within 30 days."))
        .await
        .unwrap();
    store
        .upsert_kb_entry(site.id, &kb("shipping", "3 days."))
        .await
        .unwrap();
    let mut changed = kb("refunds", "Within 60 days.");
    changed.escalate = Some(HandoffReason::Sensitive {
        category: "legal".into(),
    });
    store.upsert_kb_entry(site.id, &changed).await.unwrap();
    let entries = store.kb_entries(site.id).await.unwrap();
    assert_eq!(entries.len(), 2);
    let refunds = entries.iter().find(|e| e.id == "refunds").unwrap();
    assert_eq!(refunds, &changed);
    assert!(store.kb_entries(other.id).await.unwrap().is_empty());

    store.delete_kb_entry(site.id, "shipping").await.unwrap();
    assert!(matches!(
        store.delete_kb_entry(site.id, "shipping").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_kb_entry(other.id, "refunds").await,
        Err(StoreError::NotFound)
    ));
    store
        .import_kb_entries(site.id, &[kb("a", "A"), kb("refunds", "Imported.")])
        .await
        .unwrap();
    let entries = store.kb_entries(site.id).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries.iter().find(|e| e.id == "refunds").unwrap().answer,
        "Imported."
    );

    // A site and its knowledge base in one go; the same key again creates nothing and leaves
    // the first one as it was.
    let whole = Site {
        id: Uuid::new_v4(),
        key: "kb-whole".into(),
        name: "Whole".into(),
        settings: SiteSettings::default(),
        created_at: now_ms(),
    };
    assert!(
        store
            .create_site_with_kb(&whole, &[kb("x", "X"), kb("y", "Y")])
            .await
            .unwrap()
    );
    let again = Site {
        id: Uuid::new_v4(),
        name: "Again".into(),
        ..whole.clone()
    };
    assert!(
        !store
            .create_site_with_kb(&again, &[kb("z", "Z")])
            .await
            .unwrap()
    );
    assert_eq!(
        store.site_by_key("kb-whole").await.unwrap(),
        Some(whole.clone())
    );
    let ids: Vec<String> = store
        .kb_entries(whole.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["x", "y"]);
    assert!(store.kb_entries(again.id).await.unwrap().is_empty());
}

async fn visitors(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let site = new_site(store, "v").await;
    let other = new_site(store, "v-other").await;
    let (visitor, token) = store
        .create_visitor(site.id, &VisitorInfo::default())
        .await
        .unwrap();
    assert_eq!(
        store
            .visitor_by_token(site.id, &token)
            .await
            .unwrap()
            .unwrap()
            .id,
        visitor.id
    );
    assert_eq!(
        store.visitor_by_token(other.id, &token).await.unwrap(),
        None
    );
    assert_eq!(
        store.visitor_by_token(site.id, "vt_wrong").await.unwrap(),
        None
    );

    store
        .set_visitor_email(visitor.id, "eve@example.com")
        .await
        .unwrap();
    assert!(matches!(
        store
            .set_visitor_email(Uuid::new_v4(), "x@example.com")
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .set_visitor_identity(visitor.id, "ext-1", Some("Eve"), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_visitor_identity(visitor.id, "ext-2", Some("Mallory"), None)
            .await
            .unwrap(),
        "a different identity is refused"
    );
    let found = store
        .visitor_by_token(site.id, &token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.info.name.as_deref(), Some("Eve"));
    assert_eq!(found.info.email.as_deref(), Some("eve@example.com"));

    let profile = store
        .visitor_profile(site.id, visitor.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(profile.external_id.as_deref(), Some("ext-1"));
    let c = store
        .create_conversation(site.id, visitor.id, Some("https://shop/x"), Some("de"))
        .await
        .unwrap();
    store
        .commit(c.id, post(Author::Visitor, "hello", Some("m1")))
        .await
        .unwrap();
    assert_eq!(
        store
            .visitor_conversations(visitor.id, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        store.delete_visitor(other.id, visitor.id).await,
        Err(StoreError::NotFound)
    ));
    store.delete_visitor(site.id, visitor.id).await.unwrap();
    assert_eq!(store.visitor_by_token(site.id, &token).await.unwrap(), None);
    assert_eq!(
        store.conversation(c.id).await.unwrap(),
        None,
        "erased with the visitor"
    );
    assert!(store.messages_after(c.id, 0, 10).await.unwrap().is_empty());
}

async fn conversation_lifecycle(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let site = new_site(store, "life").await;
    let (visitor, _) = store
        .create_visitor(site.id, &VisitorInfo::default())
        .await
        .unwrap();
    let c = store
        .create_conversation(site.id, visitor.id, Some("https://shop/cart"), Some("en"))
        .await
        .unwrap();
    assert_eq!(c.snapshot.state, ConversationState::Ai);
    assert_eq!(store.conversation(c.id).await.unwrap().unwrap(), c);
    assert_eq!(
        store
            .latest_conversation(visitor.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        c.id
    );

    let first = store
        .commit(
            c.id,
            post(Author::Visitor, "where is my order?", Some("v1")),
        )
        .await
        .unwrap();
    assert_eq!(first.messages.len(), 1);
    assert_eq!(first.messages[0].seq, 1);
    assert_eq!(first.conversation.last_seq, 1);
    // A retry with the same client id is not stored twice.
    let again = store
        .commit(
            c.id,
            post(Author::Visitor, "where is my order?", Some("v1")),
        )
        .await
        .unwrap();
    assert!(again.messages.is_empty());
    assert_eq!(again.duplicate.as_ref().unwrap().id, first.messages[0].id);
    assert_eq!(
        store
            .visitor_message_by_client_id(visitor.id, "v1")
            .await
            .unwrap()
            .unwrap()
            .id,
        first.messages[0].id
    );

    let mut ai = NewMessage::new(Author::Ai, "It ships tomorrow.");
    ai.confidence = Some(0.75);
    let answered = store
        .commit(
            c.id,
            Op::Post {
                message: ai,
                reopen_to: ConversationState::Ai,
                notices: nexus_server::conversation::notices::NOTICES,
            },
        )
        .await
        .unwrap();
    assert_eq!(answered.messages[0].seq, 2);
    assert_eq!(answered.messages[0].confidence, Some(0.75));

    // Escalation: waiting, queued, with its reason.
    let escalated = store
        .commit(
            c.id,
            transition(Transition::Escalated {
                reason: HandoffReason::VisitorAsked,
            }),
        )
        .await
        .unwrap();
    assert!(escalated.state_changed());
    let waiting = escalated.conversation;
    assert_eq!(waiting.snapshot.state, ConversationState::Waiting);
    assert_eq!(waiting.handoff_reason, Some(HandoffReason::VisitorAsked));
    assert!(waiting.waiting_since.is_some());
    assert_eq!(store.queue_position(&waiting).await.unwrap(), Some(1));
    let (v2, _) = store
        .create_visitor(site.id, &VisitorInfo::default())
        .await
        .unwrap();
    let c2 = store
        .create_conversation(site.id, v2.id, None, None)
        .await
        .unwrap();
    let c2 = store
        .commit(
            c2.id,
            transition(Transition::Escalated {
                reason: HandoffReason::LowConfidence,
            }),
        )
        .await
        .unwrap()
        .conversation;
    assert_eq!(store.queue_position(&c2).await.unwrap(), Some(2));
    assert_eq!(
        store.open_conversations(site.id, 10).await.unwrap().len(),
        2
    );

    // Takeover silences the AI; an agent reply is stored with its author.
    let ana = agent("Ana");
    let taken = store
        .commit(
            c.id,
            transition(Transition::TakenOver { agent: ana.clone() }),
        )
        .await
        .unwrap();
    assert_eq!(taken.conversation.snapshot.assignee, Some(ana.clone()));
    assert_eq!(taken.conversation.waiting_since, None);
    assert_eq!(
        store.queue_position(&c2).await.unwrap(),
        Some(1),
        "the queue moved"
    );
    let silenced = store.commit(c.id, post(Author::Ai, "too late", None)).await;
    assert!(matches!(
        silenced,
        Err(StoreError::State(StateError::AiSilenced(
            ConversationState::Human
        )))
    ));
    let bob = agent("Bob");
    assert!(matches!(
        store
            .commit(c.id, transition(Transition::TakenOver { agent: bob }))
            .await,
        Err(StoreError::State(_))
    ));
    let reply = store
        .commit(
            c.id,
            post(Author::Agent(ana.clone()), "Hi, Ana here.", Some("a1")),
        )
        .await
        .unwrap();
    assert_eq!(reply.messages[0].author, Author::Agent(ana.clone()));

    store
        .commit(
            c.id,
            transition(Transition::HandedBack { agent: ana.clone() }),
        )
        .await
        .unwrap();
    store
        .commit(c.id, post(Author::Ai, "Anything else?", None))
        .await
        .expect("the AI answers again after hand back");
    let resolved = store
        .commit(
            c.id,
            transition(Transition::Resolved {
                by: Some(ana.clone()),
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        resolved.conversation.snapshot.state,
        ConversationState::Resolved
    );
    assert_eq!(
        store.open_conversations(site.id, 10).await.unwrap().len(),
        1
    );

    // The visitor writes again: reopened, and the timeline is gap-free.
    let reopened = store
        .commit(c.id, post(Author::Visitor, "one more thing", Some("v2")))
        .await
        .unwrap();
    assert_eq!(reopened.messages.len(), 2, "a notice and the message");
    assert_eq!(reopened.conversation.snapshot.state, ConversationState::Ai);
    let all = store.messages_after(c.id, 0, 100).await.unwrap();
    let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>());
    assert!(
        all.iter().any(|m| m.event.is_some()),
        "state changes are in the timeline"
    );
    assert_eq!(store.messages_after(c.id, 3, 2).await.unwrap()[0].seq, 4);
    let last = store.last_messages(c.id, 2).await.unwrap();
    assert_eq!(last.last().unwrap().body, "one more thing");
    assert_eq!(last[0].seq + 1, last[1].seq);
    assert_eq!(
        store.message(c.id, all[0].id).await.unwrap().unwrap().body,
        "where is my order?"
    );
    assert_eq!(store.message(c2.id, all[0].id).await.unwrap(), None);
}

async fn concurrent_commits(store: Arc<dyn Store>) {
    let site = new_site(store.as_ref(), "race").await;
    let (visitor, _) = store
        .create_visitor(site.id, &VisitorInfo::default())
        .await
        .unwrap();
    let c = store
        .create_conversation(site.id, visitor.id, None, None)
        .await
        .unwrap();
    store
        .commit(
            c.id,
            transition(Transition::Escalated {
                reason: HandoffReason::VisitorAsked,
            }),
        )
        .await
        .unwrap();
    // Ten agents take over at once: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .commit(
                    c.id,
                    transition(Transition::TakenOver {
                        agent: agent(&format!("A{i}")),
                    }),
                )
                .await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => winners += 1,
            Err(StoreError::State(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(winners, 1, "takeover is exclusive");
    // Twenty visitor messages at once: twenty distinct, gap-free sequence numbers.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .commit(
                    c.id,
                    post(Author::Visitor, &format!("m{i}"), Some(&format!("c{i}"))),
                )
                .await
                .unwrap()
                .messages[0]
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    let first = seqs[0];
    assert_eq!(seqs, (first..first + 20).collect::<Vec<_>>());
    let conversation = store.conversation(c.id).await.unwrap().unwrap();
    assert_eq!(conversation.last_seq, first + 19);
}

/// Many commits at once, as a busy site makes them: on different conversations and on the same
/// one, with refused ops and a repeated `client_msg_id` among them. Every accepted message
/// lands exactly once, each writer's messages keep its order, sequence numbers stay gap-free,
/// and what the state machine refuses changes nothing and disturbs no other commit (with
/// SQLite's group commit, these share transactions).
async fn many_commits_at_once(store: Arc<dyn Store>) {
    const CONVERSATIONS: usize = 8;
    const WRITERS: usize = 3;
    const EACH: usize = 10;
    let site = new_site(store.as_ref(), "busy").await;
    let (visitor, _) = store
        .create_visitor(site.id, &VisitorInfo::default())
        .await
        .unwrap();
    let mut conversations = Vec::new();
    for _ in 0..CONVERSATIONS {
        let c = store
            .create_conversation(site.id, visitor.id, None, None)
            .await
            .unwrap();
        conversations.push(c.id);
    }
    // One conversation a person owns.
    let owned = store
        .create_conversation(site.id, visitor.id, None, None)
        .await
        .unwrap()
        .id;
    let ana = agent("Ana");
    for t in [
        Transition::Escalated {
            reason: HandoffReason::VisitorAsked,
        },
        Transition::TakenOver { agent: ana.clone() },
    ] {
        store.commit(owned, transition(t)).await.unwrap();
    }
    let owned_before = store.conversation(owned).await.unwrap().unwrap().last_seq;

    // Each writer posts its messages one after another; all writers run at once.
    let mut writers = Vec::new();
    for (k, &id) in conversations.iter().enumerate() {
        for w in 0..WRITERS {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..EACH {
                    let op = post(
                        Author::Visitor,
                        &format!("w{w}-{i}"),
                        Some(&format!("c{k}-{w}-{i}")),
                    );
                    let committed = store.commit(id, op).await.expect("visitor post");
                    assert_eq!(committed.messages.len(), 1);
                    seqs.push(committed.messages[0].seq);
                }
                seqs
            }));
        }
    }
    // Meanwhile, on the owned conversation, in one go: visitor posts with an AI answer (the
    // AI is silenced) and a second takeover (Ana owns it) between them, and one client id
    // sent twice.
    let ops = vec![
        post(Author::Visitor, "v0", Some("o-0")),
        post(Author::Ai, "too late", None),
        post(Author::Visitor, "v1", Some("o-1")),
        transition(Transition::TakenOver { agent: agent("Bo") }),
        post(Author::Visitor, "again", Some("o-2")),
        post(Author::Visitor, "again", Some("o-2")),
        post(Author::Visitor, "v2", Some("o-3")),
    ];
    let results =
        futures_util::future::join_all(ops.into_iter().map(|op| store.commit(owned, op))).await;
    assert!(
        matches!(
            results[1],
            Err(StoreError::State(StateError::AiSilenced(_)))
        ),
        "the AI is refused: {:?}",
        results[1]
    );
    assert!(
        matches!(results[3], Err(StoreError::State(_))),
        "the second takeover is refused: {:?}",
        results[3]
    );
    let stored: Vec<_> = [0, 2, 6]
        .iter()
        .map(|&i| results[i].as_ref().expect("visitor post").messages[0].seq)
        .collect();
    let again: Vec<_> = [4, 5]
        .iter()
        .map(|&i| results[i].as_ref().expect("repeated post"))
        .collect();
    assert_eq!(
        again.iter().filter(|c| c.duplicate.is_some()).count(),
        1,
        "a client id sent twice is stored once"
    );

    for (n, writer) in writers.into_iter().enumerate() {
        let seqs = writer.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "writer {n}: its messages keep their order: {seqs:?}"
        );
    }
    for (k, &id) in conversations.iter().enumerate() {
        let messages = store.messages_after(id, 0, 1_000).await.unwrap();
        assert_eq!(
            messages.len(),
            WRITERS * EACH,
            "conversation {k}: all landed"
        );
        let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=(WRITERS * EACH) as u64).collect::<Vec<_>>());
        for w in 0..WRITERS {
            let bodies: Vec<&str> = messages
                .iter()
                .map(|m| m.body.as_str())
                .filter(|b| b.starts_with(&format!("w{w}-")))
                .collect();
            let expected: Vec<String> = (0..EACH).map(|i| format!("w{w}-{i}")).collect();
            assert_eq!(
                bodies, expected,
                "conversation {k}, writer {w}: in order, once each"
            );
        }
        assert_eq!(
            store.conversation(id).await.unwrap().unwrap().last_seq,
            (WRITERS * EACH) as u64
        );
    }
    let owned_now = store.conversation(owned).await.unwrap().unwrap();
    assert_eq!(owned_now.snapshot.state, ConversationState::Human);
    assert_eq!(owned_now.snapshot.assignee, Some(ana), "Ana still owns it");
    assert_eq!(owned_now.last_seq, owned_before + 4);
    let added = store
        .messages_after(owned, owned_before, 100)
        .await
        .unwrap();
    let mut bodies: Vec<&str> = added.iter().map(|m| m.body.as_str()).collect();
    bodies.sort_unstable();
    assert_eq!(
        bodies,
        ["again", "v0", "v1", "v2"],
        "nothing refused was stored"
    );
    let mut seqs = stored.clone();
    seqs.extend(
        again
            .iter()
            .filter(|c| c.duplicate.is_none())
            .map(|c| c.messages[0].seq),
    );
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (owned_before + 1..=owned_before + 4).collect::<Vec<_>>()
    );
}

async fn accounts_and_sessions(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let site = new_site(store, "acc").await;
    let user = User {
        id: Uuid::new_v4(),
        site_id: site.id,
        email: "ana@example.com".into(),
        name: "Ana".into(),
        role: Role::Owner,
    };
    store
        .create_user(&user, &PasswordHash("hash-1".into()))
        .await
        .unwrap();
    assert!(
        store
            .create_user(
                &User {
                    id: Uuid::new_v4(),
                    ..user.clone()
                },
                &PasswordHash("x".into())
            )
            .await
            .is_err()
    );
    let (found, hash) = store
        .user_by_email(site.id, "ANA@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, user);
    assert_eq!(hash, PasswordHash("hash-1".into()));
    assert_eq!(store.user(user.id).await.unwrap(), Some(user.clone()));

    let now = now_ms();
    store
        .create_session(user.id, "tok-live", now + 60_000)
        .await
        .unwrap();
    store
        .create_session(user.id, "tok-old", now - 1)
        .await
        .unwrap();
    assert_eq!(
        store.session_user("tok-live", now).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(store.session_user("tok-old", now).await.unwrap(), None);
    store.delete_session("tok-live").await.unwrap();
    assert_eq!(store.session_user("tok-live", now).await.unwrap(), None);

    store
        .create_session(user.id, "tok-2", now + 60_000)
        .await
        .unwrap();
    store
        .set_password(user.id, &PasswordHash("hash-2".into()))
        .await
        .unwrap();
    assert_eq!(
        store.session_user("tok-2", now).await.unwrap(),
        None,
        "sessions end"
    );
    assert_eq!(
        store
            .user_by_email(site.id, "ana@example.com")
            .await
            .unwrap()
            .unwrap()
            .1,
        PasswordHash("hash-2".into())
    );
}

async fn drafts_notes_feedback(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let site = new_site(store, "rev").await;
    let (visitor, _) = store
        .create_visitor(site.id, &VisitorInfo::default())
        .await
        .unwrap();
    let c = store
        .create_conversation(site.id, visitor.id, None, None)
        .await
        .unwrap();
    let question = store
        .commit(c.id, post(Author::Visitor, "refund?", Some("q")))
        .await
        .unwrap();
    let draft = Draft {
        id: Uuid::new_v4(),
        conversation_id: c.id,
        reply_to_seq: question.messages[0].seq,
        body: "Within 30 days.".into(),
        sources: vec![],
        confidence: Some(0.5),
        created_at: now_ms(),
    };
    store.create_draft(&draft, "refund?").await.unwrap();
    assert_eq!(
        store.draft(draft.id).await.unwrap(),
        Some((draft.clone(), "refund?".into()))
    );
    assert_eq!(
        store.pending_drafts(c.id).await.unwrap(),
        vec![draft.clone()]
    );
    let ana = agent("Ana");
    assert!(
        store
            .move_draft(draft.id, "pending", "approved", Some(ana.id))
            .await
            .unwrap()
    );
    assert!(
        !store
            .move_draft(draft.id, "pending", "rejected", None)
            .await
            .unwrap(),
        "reviewed once"
    );
    assert!(store.pending_drafts(c.id).await.unwrap().is_empty());

    let note = Note {
        id: Uuid::new_v4(),
        conversation_id: c.id,
        client_msg_id: "n1".into(),
        agent: ana,
        body: "VIP customer".into(),
        created_at: now_ms(),
    };
    let (stored, existed) = store.add_note(&note).await.unwrap();
    assert_eq!((stored.clone(), existed), (note.clone(), false));
    let (again, existed) = store
        .add_note(&Note {
            id: Uuid::new_v4(),
            ..note.clone()
        })
        .await
        .unwrap();
    assert!(existed);
    assert_eq!(again.id, note.id);

    let answer = store
        .commit(c.id, post(Author::Ai, "Within 30 days.", None))
        .await
        .unwrap();
    store
        .record_feedback(c.id, answer.messages[0].id, false)
        .await
        .unwrap();
    store
        .record_feedback(c.id, answer.messages[0].id, true)
        .await
        .unwrap();
    assert!(
        matches!(
            store
                .record_feedback(c.id, question.messages[0].id, true)
                .await,
            Err(StoreError::NotFound)
        ),
        "only AI answers take feedback"
    );
    store.record_csat(c.id, 4, Some("quick")).await.unwrap();
    store.record_csat(c.id, 5, None).await.unwrap();
    let csat = store.csat(c.id).await.unwrap().unwrap();
    assert_eq!((csat.score, csat.comment), (5, None));

    let between = store
        .conversations_created_between(site.id, c.created_at, c.created_at + 1)
        .await
        .unwrap();
    assert_eq!(between.len(), 1);
}

async fn canned_responses(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let site = new_site(store, "canned").await;
    let other = new_site(store, "canned-other").await;
    let mut canned = nexus_server::model::Canned {
        id: Uuid::new_v4(),
        title: "Refunds".into(),
        body: "Within 30 days.".into(),
    };
    store.upsert_canned(site.id, &canned).await.unwrap();
    canned.body = "Within 60 days.".into();
    store.upsert_canned(site.id, &canned).await.unwrap();
    let list = store.canned_responses(site.id).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].body, "Within 60 days.");
    assert!(store.canned_responses(other.id).await.unwrap().is_empty());
    assert!(matches!(
        store.delete_canned(other.id, canned.id).await,
        Err(StoreError::NotFound)
    ));
    store.delete_canned(site.id, canned.id).await.unwrap();
    assert!(store.canned_responses(site.id).await.unwrap().is_empty());
}

async fn learned_entries(store: Arc<dyn Store>) {
    use nexus_server::model::{Origin, PendingEntry};
    let store = store.as_ref();
    let site = new_site(store, "learn").await;
    let other = new_site(store, "learn-other").await;
    let entry = |q: &str, origin| PendingEntry {
        id: Uuid::new_v4(),
        question: q.into(),
        answer: format!("answer to {q}"),
        entry_id: None,
        conversation_id: None,
        origin,
        created_at: now_ms(),
    };
    let first = entry("gift wrap?", Origin::Teach);
    let second = PendingEntry {
        entry_id: Some("refunds".into()),
        created_at: first.created_at + 1,
        ..entry("refund after 40 days?", Origin::ThumbsDown)
    };
    store.add_pending_entry(site.id, &first).await.unwrap();
    store.add_pending_entry(site.id, &second).await.unwrap();
    assert_eq!(
        store.pending_entries(site.id).await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert!(store.pending_entries(other.id).await.unwrap().is_empty());
    let owner = Uuid::new_v4();
    assert!(
        !store
            .close_pending_entry(other.id, first.id, "approved", owner)
            .await
            .unwrap(),
        "another site cannot review it"
    );
    assert!(
        store
            .close_pending_entry(site.id, first.id, "approved", owner)
            .await
            .unwrap()
    );
    assert!(
        !store
            .close_pending_entry(site.id, first.id, "rejected", owner)
            .await
            .unwrap(),
        "reviewed once"
    );
    assert_eq!(store.pending_entries(site.id).await.unwrap(), vec![second]);
}

/// Declares each case once per backend.
/// A visitor's post is checked inside the commit: another visitor's conversation is refused
/// as not found and keeps nothing (also when both arrive in one batch); a resolved
/// conversation is refused unless the guard allows reopening, and then reopens.
async fn guarded_commits(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let site = new_site(store, "guard").await;
    let info = VisitorInfo::default();
    let (owner, _) = store.create_visitor(site.id, &info).await.unwrap();
    let (stranger, _) = store.create_visitor(site.id, &info).await.unwrap();
    let conversation = store
        .create_conversation(site.id, owner.id, None, None)
        .await
        .unwrap();
    let as_visitor = |id| Guard::Visitor { id, reopen: false };

    let (mine, theirs) = tokio::join!(
        store.commit_guarded(
            as_visitor(owner.id),
            conversation.id,
            post(Author::Visitor, "mine", Some("c-1")),
        ),
        store.commit_guarded(
            as_visitor(stranger.id),
            conversation.id,
            post(Author::Visitor, "not mine", Some("c-2")),
        ),
    );
    assert_eq!(mine.unwrap().messages.len(), 1);
    assert!(matches!(theirs, Err(StoreError::NotFound)), "{theirs:?}");
    let bodies: Vec<String> = store
        .messages_after(conversation.id, 0, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["mine"]);

    store
        .commit(
            conversation.id,
            transition(Transition::Resolved { by: None }),
        )
        .await
        .unwrap();
    let refused = store
        .commit_guarded(
            as_visitor(owner.id),
            conversation.id,
            post(Author::Visitor, "again", Some("c-3")),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::State(StateError::Resolved))),
        "{refused:?}"
    );
    let reopened = store
        .commit_guarded(
            Guard::Visitor {
                id: owner.id,
                reopen: true,
            },
            conversation.id,
            Op::Post {
                message: NewMessage {
                    client_msg_id: Some("c-3".into()),
                    ..NewMessage::new(Author::Visitor, "again")
                },
                reopen_to: ConversationState::Waiting,
                notices: nexus_server::conversation::notices::NOTICES,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        reopened.conversation.snapshot.state,
        ConversationState::Waiting
    );
    assert_eq!(reopened.messages.last().unwrap().body, "again");
    // The stranger still cannot write there, reopening or not.
    let theirs = store
        .commit_guarded(
            Guard::Visitor {
                id: stranger.id,
                reopen: true,
            },
            conversation.id,
            post(Author::Visitor, "not mine", Some("c-4")),
        )
        .await;
    assert!(matches!(theirs, Err(StoreError::NotFound)), "{theirs:?}");
}

/// Posts to some conversations and state changes of others, all at once (so, mostly, in one
/// batch): a conversation that only got entries keeps its state and moves to the top of the
/// open list; one whose state changed has the new state, reason, owner and waiting time; each
/// conversation's `last_seq` is its last entry; entries' ids sort in the order they were stored.
async fn posts_and_moves_at_once(store: Arc<dyn Store>) {
    let site = new_site(store.as_ref(), "mixed").await;
    let (visitor, _) = store
        .create_visitor(site.id, &VisitorInfo::default())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let c = store
            .create_conversation(site.id, visitor.id, None, None)
            .await
            .unwrap();
        ids.push(c.id);
    }
    let [a, b, c, d] = ids[..] else {
        unreachable!()
    };
    let escalated = || {
        transition(Transition::Escalated {
            reason: HandoffReason::VisitorAsked,
        })
    };
    store.commit(d, escalated()).await.unwrap();
    let ana = agent("Ana");
    let ops = vec![
        (a, post(Author::Visitor, "a1", Some("a1"))),
        (b, post(Author::Visitor, "b1", Some("b1"))),
        (c, post(Author::Visitor, "c1", Some("c1"))),
        (c, escalated()),
        (d, transition(Transition::TakenOver { agent: ana.clone() })),
        (d, post(Author::Agent(ana.clone()), "d1", None)),
        (a, post(Author::Visitor, "a2", Some("a2"))),
    ];
    let results =
        futures_util::future::join_all(ops.into_iter().map(|(id, op)| store.commit(id, op))).await;
    for (i, result) in results.iter().enumerate() {
        assert!(result.is_ok(), "op {i}: {result:?}");
    }

    for (id, state) in [
        (a, ConversationState::Ai),
        (b, ConversationState::Ai),
        (c, ConversationState::Waiting),
        (d, ConversationState::Human),
    ] {
        let conversation = store.conversation(id).await.unwrap().unwrap();
        assert_eq!(conversation.snapshot.state, state);
        let messages = store.messages_after(id, 0, 100).await.unwrap();
        assert_eq!(
            conversation.last_seq,
            messages.last().map_or(0, |m| m.seq),
            "{state:?}: last_seq is its last entry"
        );
        let mut by_id = messages.clone();
        by_id.sort_by_key(|m| m.id);
        assert_eq!(
            by_id, messages,
            "{state:?}: ids sort as the entries were stored"
        );
    }
    let a_now = store.conversation(a).await.unwrap().unwrap();
    assert_eq!(a_now.last_seq, 2);
    assert_eq!(
        (
            a_now.snapshot.assignee,
            a_now.handoff_reason,
            a_now.waiting_since
        ),
        (None, None, None)
    );
    let c_now = store.conversation(c).await.unwrap().unwrap();
    assert_eq!(c_now.handoff_reason, Some(HandoffReason::VisitorAsked));
    assert!(
        c_now.waiting_since.is_some(),
        "waiting since the escalation"
    );
    let d_now = store.conversation(d).await.unwrap().unwrap();
    assert_eq!(d_now.snapshot.assignee, Some(ana));
    assert_eq!(
        store
            .messages_after(d, 0, 100)
            .await
            .unwrap()
            .last()
            .map(|m| m.body.as_str()),
        Some("d1")
    );

    // The open list: most recent activity first; a post moves its conversation to the top,
    // a resolved one leaves the list.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .commit(b, post(Author::Visitor, "b2", Some("b2")))
        .await
        .unwrap();
    store
        .commit(a, transition(Transition::Resolved { by: None }))
        .await
        .unwrap();
    let open: Vec<Uuid> = store
        .open_conversations(site.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(open.len(), 3, "{open:?}");
    assert_eq!(open[0], b, "the latest post first");
    assert!(open.contains(&c) && open.contains(&d) && !open.contains(&a));
}

/// A period's analytics facts in one go: the site's conversations created in the period,
/// oldest first, each with all its entries in order and its CSAT score; nothing of other
/// periods or other sites.
async fn period_facts(store: Arc<dyn Store>) {
    let site = new_site(store.as_ref(), "facts").await;
    let other = new_site(store.as_ref(), "facts-other").await;
    let (visitor, _) = store
        .create_visitor(site.id, &VisitorInfo::default())
        .await
        .unwrap();
    let (stranger, _) = store
        .create_visitor(other.id, &VisitorInfo::default())
        .await
        .unwrap();
    let start = now_ms();
    let mut ids = Vec::new();
    for n in 0..3 {
        let c = store
            .create_conversation(site.id, visitor.id, None, None)
            .await
            .unwrap();
        for i in 0..=n {
            store
                .commit(
                    c.id,
                    post(
                        Author::Visitor,
                        &format!("{n}-{i}"),
                        Some(&format!("{n}-{i}")),
                    ),
                )
                .await
                .unwrap();
        }
        if n == 1 {
            store
                .commit(c.id, post(Author::Ai, "1-ai", None))
                .await
                .unwrap();
        }
        if n == 2 {
            let ana = agent("Ana");
            store
                .commit(
                    c.id,
                    transition(Transition::Escalated {
                        reason: HandoffReason::VisitorAsked,
                    }),
                )
                .await
                .unwrap();
            store
                .commit(c.id, post(Author::Agent(ana), "2-agent", None))
                .await
                .unwrap();
        }
        ids.push(c.id);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    store.record_csat(ids[1], 4, Some("ok")).await.unwrap();
    let elsewhere = store
        .create_conversation(other.id, stranger.id, None, None)
        .await
        .unwrap();
    store
        .commit(elsewhere.id, post(Author::Visitor, "theirs", Some("t")))
        .await
        .unwrap();
    store.record_csat(elsewhere.id, 1, None).await.unwrap();
    let end = now_ms() + 1;

    let facts = store
        .conversation_facts_between(site.id, start, end)
        .await
        .unwrap();
    // Visitors' and the AI's messages are not loaded: whether the AI answered is a flag.
    let got: Vec<(Uuid, Vec<String>, bool, Option<u8>)> = facts
        .iter()
        .map(|f| {
            (
                f.conversation.id,
                f.messages
                    .iter()
                    .filter(|m| m.event.is_none())
                    .map(|m| m.body.clone())
                    .collect(),
                f.ai_answered,
                f.csat,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (ids[0], vec![], false, None),
            (ids[1], vec![], true, Some(4)),
            (ids[2], vec!["2-agent".to_owned()], false, None),
        ]
    );
    // The same as reading each conversation on its own and keeping its state changes and
    // agents' messages: the escalation, the takeover the reply implied, the reply.
    for f in &facts {
        let stored: Vec<_> = store
            .messages_after(f.conversation.id, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.event.is_some() || matches!(m.author, Author::Agent(_)))
            .collect();
        assert_eq!(f.messages, stored);
    }
    assert_eq!(facts[2].messages.len(), 3);
    let later = store
        .conversation_facts_between(site.id, end, end + 60_000)
        .await
        .unwrap();
    assert!(later.is_empty(), "nothing created in a later period");
}

fn passage(id: &str, body: &str) -> Passage {
    Passage {
        id: format!("doc:help#{id}"),
        title: format!("Help › {id}"),
        body: body.into(),
        url: Some(format!("https://shop.test/help#{id}")),
    }
}

async fn knowledge_sources(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let site = new_site(store, "articles").await;
    let other = new_site(store, "other").await;
    store
        .upsert_kb_entry(site.id, &kb("hours", "9 to 5."))
        .await
        .unwrap();
    let now = now_ms();
    let source = KnowledgeSource {
        id: Uuid::new_v4(),
        kind: SourceKind::Url,
        slug: "help".into(),
        title: "Help".into(),
        url: Some("https://shop.test/help".into()),
        format: "html".into(),
        passages: 0,
        last_error: None,
        fetched_at: Some(now),
        created_at: now,
        updated_at: now,
    };
    let first = [
        passage("shipping", "Two days."),
        passage("returns", "Free within 30 days."),
        passage("payment", "Cards and PayPal."),
    ];
    let changes = store.save_source(site.id, &source, &first).await.unwrap();
    assert_eq!(
        changes,
        PassageChanges {
            added: 3,
            ..PassageChanges::default()
        }
    );
    let listed = store.sources(site.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].passages, 3);
    assert_eq!(listed[0].kind, SourceKind::Url);
    assert_eq!(listed[0].url.as_deref(), Some("https://shop.test/help"));
    assert!(store.sources(other.id).await.unwrap().is_empty());
    assert!(
        store
            .source_passages(other.id, source.id)
            .await
            .unwrap()
            .is_empty(),
        "another site reads none of its passages"
    );

    // The engine's knowledge: the Q&A entry, then the passages, linked, without examples.
    let knowledge = store.knowledge(site.id).await.unwrap();
    let ids: Vec<&str> = knowledge.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "hours",
            "doc:help#shipping",
            "doc:help#returns",
            "doc:help#payment"
        ]
    );
    assert_eq!(knowledge[1].answer, "Two days.");
    assert!(knowledge[1].examples.is_empty());
    assert_eq!(
        knowledge[1].url.as_deref(),
        Some("https://shop.test/help#shipping")
    );
    assert_eq!(store.knowledge(other.id).await.unwrap(), Vec::new());

    // A re-import: one unchanged, one changed, one removed, one new; order as given.
    let second = [
        passage("returns", "Free within 60 days."),
        passage("shipping", "Two days."),
        passage("warranty", "Two years on grinders."),
    ];
    let changes = store.save_source(site.id, &source, &second).await.unwrap();
    assert_eq!(
        changes,
        PassageChanges {
            added: 1,
            updated: 1,
            unchanged: 1,
            removed: 1,
        }
    );
    assert_eq!(
        store.source_passages(site.id, source.id).await.unwrap(),
        second
    );
    assert_eq!(store.sources(site.id).await.unwrap()[0].passages, 3);

    // Another site cannot overwrite it under the same id.
    assert!(matches!(
        store.save_source(other.id, &source, &first).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.source_passages(site.id, source.id).await.unwrap(),
        second
    );

    // A failed refresh is noted; the passages stay; the next import clears it.
    store
        .record_source_error(
            site.id,
            source.id,
            "https://shop.test/help answered HTTP 500.",
        )
        .await
        .unwrap();
    let noted = store.source(site.id, source.id).await.unwrap().unwrap();
    assert_eq!(
        noted.last_error.as_deref(),
        Some("https://shop.test/help answered HTTP 500.")
    );
    assert_eq!(noted.passages, 3);
    assert!(matches!(
        store.record_source_error(other.id, source.id, "x").await,
        Err(StoreError::NotFound)
    ));
    store.save_source(site.id, &source, &second).await.unwrap();
    assert_eq!(
        store
            .source(site.id, source.id)
            .await
            .unwrap()
            .unwrap()
            .last_error,
        None
    );

    assert!(matches!(
        store.delete_source(other.id, source.id).await,
        Err(StoreError::NotFound)
    ));
    store.delete_source(site.id, source.id).await.unwrap();
    assert!(store.sources(site.id).await.unwrap().is_empty());
    assert_eq!(
        store.knowledge(site.id).await.unwrap().len(),
        1,
        "only the Q&A entry"
    );
    assert!(matches!(
        store.delete_source(site.id, source.id).await,
        Err(StoreError::NotFound)
    ));
}

macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", dir.path().join("store.db").display());
                    let store = nexus_server::store::connect(&url).await.expect("sqlite store");
                    assert_eq!(store.backend(), "sqlite");
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let schema = nexus_tests::pg::TestSchema::create().await;
                    let store = nexus_server::store::connect(&schema.url).await.expect("postgres store");
                    assert_eq!(store.backend(), "postgres");
                    super::$case(store).await;
                }
            )*
        }
    };
}

/// A filled site reads back as the commit path would have left it: every conversation's
/// timeline is gap-free from 1 to its `last_seq` and ends resolved, the entry count is the one
/// asked for, the period's facts see every conversation, and the store takes new traffic.
async fn lived_in_fill(store: Arc<dyn Store>) {
    use nexus_server::store::fill::{FillOptions, fill};
    let site = new_site(store.as_ref(), "lived").await;
    let options = FillOptions {
        site_id: site.id,
        conversations: 40,
        messages: 800,
        days: 10,
        batch: 15,
        agents: vec![agent("Ana"), agent("Ben")],
        seed: 7,
    };
    let mut batches = 0;
    let filled = fill(
        store.as_ref(),
        &options,
        nexus_server::conversation::notices::NOTICES,
        |_| batches += 1,
    )
    .await
    .unwrap();
    assert_eq!(filled.conversations, 40);
    assert_eq!(batches, 3, "40 conversations in batches of 15");
    let facts = store
        .conversation_facts_between(site.id, 0, now_ms())
        .await
        .unwrap();
    assert_eq!(facts.len(), 40);
    let mut entries = 0;
    let mut escalated = 0;
    for f in &facts {
        let c = &f.conversation;
        assert_eq!(c.snapshot.state, ConversationState::Resolved);
        let all = store.messages_after(c.id, 0, 1_000).await.unwrap();
        let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=c.last_seq).collect::<Vec<_>>(), "gap-free");
        assert!(
            all.windows(2).all(|w| w[0].created_at <= w[1].created_at),
            "in time order"
        );
        assert!(matches!(
            all.last().and_then(|m| m.event.as_ref()).map(|e| &e.cause),
            Some(Transition::Resolved { .. })
        ));
        if all.iter().any(|m| matches!(m.author, Author::Agent(_))) {
            escalated += 1;
        }
        assert_eq!(f.ai_answered, all.iter().any(|m| m.author == Author::Ai));
        entries += all.len() as u64;
    }
    assert_eq!(entries, filled.messages);
    assert!((780..=820).contains(&entries), "{entries} entries for 800");
    assert!(
        escalated > 0 && escalated < 40,
        "{escalated} of 40 escalated"
    );
    // A visitor writing in a filled conversation reopens it, as in any other.
    let c = &facts[0].conversation;
    let committed = store
        .commit(c.id, post(Author::Visitor, "back again", Some("again")))
        .await
        .unwrap();
    assert_eq!(committed.conversation.snapshot.state, ConversationState::Ai);
    assert_eq!(committed.messages.last().unwrap().seq, c.last_seq + 2);
}

/// Login attempts are counted in the database, each once even when they come at once (from
/// every instance), in a window that starts again after it has passed.
async fn login_attempts(store: Arc<dyn Store>) {
    let window = 15 * 60 * 1000;
    let now = now_ms();
    for n in 1..=3 {
        assert_eq!(
            store
                .count_login_attempt("acct", now, window)
                .await
                .unwrap(),
            n
        );
    }
    // Taken back once (a busy server checked nothing), then cleared (the right password).
    store.forget_login_attempt("acct", false).await.unwrap();
    assert_eq!(
        store
            .count_login_attempt("acct", now, window)
            .await
            .unwrap(),
        3
    );
    store.forget_login_attempt("acct", true).await.unwrap();
    assert_eq!(
        store
            .count_login_attempt("acct", now, window)
            .await
            .unwrap(),
        1
    );
    // Once the window has passed, counting starts again.
    assert_eq!(
        store
            .count_login_attempt("acct", now + window + 1, window)
            .await
            .unwrap(),
        1
    );
    // Twenty at once: each is counted once.
    let counted = futures_util::future::join_all((0..20).map(|_| {
        let store = store.clone();
        async move { store.count_login_attempt("burst", now, window).await }
    }))
    .await;
    let mut counted: Vec<u32> = counted.into_iter().map(Result::unwrap).collect();
    counted.sort_unstable();
    assert_eq!(counted, (1..=20).collect::<Vec<u32>>());
    // Other keys are their own.
    assert_eq!(
        store
            .count_login_attempt("other", now, window)
            .await
            .unwrap(),
        1
    );
}

store_suite!(
    sites_and_settings,
    knowledge_base,
    visitors,
    conversation_lifecycle,
    concurrent_commits,
    many_commits_at_once,
    accounts_and_sessions,
    drafts_notes_feedback,
    canned_responses,
    learned_entries,
    guarded_commits,
    posts_and_moves_at_once,
    period_facts,
    knowledge_sources,
    lived_in_fill,
    login_attempts,
    recent_timelines_and_lessons,
);

/// The playground's and the gaps' read: the newest conversations of a site since a time, each
/// with its first entries; with `people`, only those a person was involved in. And the times
/// learned questions went live (a teach) or were approved.
async fn recent_timelines_and_lessons(store: Arc<dyn Store>) {
    use nexus_server::model::{Origin, PendingEntry};
    let store = store.as_ref();
    let site = new_site(store, "recent").await;
    let other = new_site(store, "recent-other").await;
    let (visitor, _) = store
        .create_visitor(site.id, &VisitorInfo::default())
        .await
        .unwrap();
    let (stranger, _) = store
        .create_visitor(other.id, &VisitorInfo::default())
        .await
        .unwrap();
    let start = now_ms();
    let mut ids = Vec::new();
    for n in 0..3 {
        let c = store
            .create_conversation(site.id, visitor.id, None, None)
            .await
            .unwrap();
        store
            .commit(c.id, post(Author::Visitor, &format!("q{n}"), Some("v")))
            .await
            .unwrap();
        let op = match n {
            0 => post(Author::Ai, "a0", None),
            1 => transition(Transition::Escalated {
                reason: HandoffReason::LowConfidence,
            }),
            _ => post(Author::Agent(agent("Ana")), "a2", None),
        };
        store.commit(c.id, op).await.unwrap();
        ids.push(c.id);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let theirs = store
        .create_conversation(other.id, stranger.id, None, None)
        .await
        .unwrap();
    store
        .commit(theirs.id, post(Author::Visitor, "theirs", Some("t")))
        .await
        .unwrap();

    let site_id = site.id;
    let read = |since, limit, entries, people| async move {
        store
            .recent_timelines(site_id, since, limit, entries, people)
            .await
            .unwrap()
            .into_iter()
            .map(|(c, timeline)| {
                (
                    c.id,
                    timeline.iter().map(|m| m.seq).collect::<Vec<_>>(),
                    timeline.first().map(|m| m.body.clone()),
                )
            })
            .collect::<Vec<_>>()
    };
    let all = read(start, 10, 50, false).await;
    // Newest first; the agent's reply implied a takeover (a notice before the reply).
    assert_eq!(
        all,
        vec![
            (ids[2], vec![1, 2, 3], Some("q2".to_owned())),
            (ids[1], vec![1, 2], Some("q1".to_owned())),
            (ids[0], vec![1, 2], Some("q0".to_owned())),
        ]
    );
    let ids_of = |rows: Vec<(Uuid, Vec<u64>, Option<String>)>| {
        rows.into_iter().map(|r| r.0).collect::<Vec<_>>()
    };
    assert_eq!(
        ids_of(read(start, 2, 50, false).await),
        vec![ids[2], ids[1]]
    );
    assert_eq!(
        ids_of(read(start, 10, 50, true).await),
        vec![ids[2], ids[1]],
        "handed over, or an agent wrote"
    );
    assert!(
        read(start, 10, 1, false)
            .await
            .iter()
            .all(|(_, seqs, _)| seqs == &[1]),
        "only the first entries"
    );
    assert!(read(now_ms() + 1, 10, 50, false).await.is_empty());

    let lesson = |q: &str| PendingEntry {
        id: Uuid::new_v4(),
        question: q.into(),
        answer: "yes".into(),
        entry_id: None,
        conversation_id: Some(ids[1]),
        origin: Origin::Gap,
        created_at: now_ms(),
    };
    let taught = lesson("taught live");
    store
        .learned_into_kb(site.id, &taught, "live", "learned-1")
        .await
        .unwrap();
    let approved = lesson("approved");
    let rejected = lesson("rejected");
    let waiting = lesson("waiting");
    for p in [&approved, &rejected, &waiting] {
        store.add_pending_entry(site.id, p).await.unwrap();
    }
    let owner = Uuid::new_v4();
    assert!(
        store
            .close_pending_entry(site.id, approved.id, "approved", owner)
            .await
            .unwrap()
    );
    assert!(
        store
            .close_pending_entry(site.id, rejected.id, "rejected", owner)
            .await
            .unwrap()
    );
    assert_eq!(
        store.pending_entries(site.id).await.unwrap()[0].origin,
        Origin::Gap
    );
    let end = now_ms() + 1;
    let mut times = store.learned_times(site.id, start, end).await.unwrap();
    times.sort_by_key(|t| t.1);
    assert_eq!(times.len(), 2, "{times:?}");
    assert_eq!(times[0], (taught.created_at, false));
    assert!(times[1].1 && times[1].0 >= approved.created_at);
    assert!(
        store
            .learned_times(other.id, start, end)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .learned_times(site.id, end, end + 1000)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Two stores on one schema are two instances' pools: takeovers through both at once still
/// have exactly one winner, and sequence numbers stay gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commits_through_two_instances_are_exclusive() {
    let schema = nexus_tests::pg::TestSchema::create().await;
    let one = nexus_server::store::connect(&schema.url).await.unwrap();
    let two = nexus_server::store::connect(&schema.url).await.unwrap();
    let site = new_site(one.as_ref(), "two").await;
    let (visitor, _) = one
        .create_visitor(site.id, &VisitorInfo::default())
        .await
        .unwrap();
    for round in 0..5 {
        let c = one
            .create_conversation(site.id, visitor.id, None, None)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for (i, store) in [one.clone(), two.clone(), one.clone(), two.clone()]
            .into_iter()
            .enumerate()
        {
            tasks.push(tokio::spawn(async move {
                let taken = store
                    .commit(
                        c.id,
                        transition(Transition::TakenOver {
                            agent: agent(&format!("R{round}A{i}")),
                        }),
                    )
                    .await;
                let posted = store
                    .commit(c.id, post(Author::Visitor, "hi", Some(&format!("m{i}"))))
                    .await
                    .unwrap();
                (taken.is_ok(), posted.messages.last().map(|m| m.seq))
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap().0);
        }
        assert_eq!(
            winners, 1,
            "round {round}: one takeover wins across instances"
        );
        let all = two.messages_after(c.id, 0, 100).await.unwrap();
        let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>(), "gap-free");
        assert_eq!(
            all.iter().filter(|m| m.author == Author::Visitor).count(),
            4
        );
        // The AI stays silent, whichever instance asks.
        assert!(matches!(
            two.commit(c.id, post(Author::Ai, "me too", None)).await,
            Err(StoreError::State(StateError::AiSilenced(_)))
        ));
    }
}

#[tokio::test]
async fn a_missing_postgres_fails_with_a_clear_message() {
    // Port 9 on 127.0.0.1 is the discard port: nothing listens there.
    let err = nexus_server::store::connect("postgres://postgres@127.0.0.1:9/test")
        .await
        .err()
        .expect("no PostgreSQL there");
    assert!(matches!(err, StoreError::Database(_)), "{err}");
    let err = nexus_server::store::connect("mysql://root:hunter2@127.0.0.1/x")
        .await
        .err()
        .expect("not a supported backend");
    assert!(err.to_string().contains("postgres://"), "{err}");
    assert!(
        !err.to_string().contains("hunter2"),
        "the password is redacted: {err}"
    );
}

/// End to end over WebSockets on PostgreSQL, two in-process servers sharing one schema and
/// nothing else (each has its own store, hub and engine): the visitor on one, the agent on
/// the other. Escalation, takeover, replies, hand back and the AI's answer all cross over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_end_to_end_across_two_servers() {
    use nexus_shared::{ClientFrame, ServerFrame};
    use nexus_tests::{TestServer, WsClient, agent_login, widget_dir};

    let schema = nexus_tests::pg::TestSchema::create().await;
    let one = TestServer::start_url(&schema.url, &widget_dir()).await;
    let two = TestServer::start_url(&schema.url, &widget_dir()).await;
    assert_eq!(one.state.store.backend(), "postgres");
    let token = agent_login(&two, "demo", "ana@demo.test", Role::Agent).await;
    let (mut agent, _) = WsClient::agent(&two.ws_url(), &token).await;
    let (mut visitor, _) = WsClient::visitor(&one.ws_url(), "demo", None).await;

    visitor
        .send(&frames::send(None, "v-1", "I want to talk to a human"))
        .await;
    let c = visitor.recv_ack().await;
    agent
        .recv_until(|f| match f {
            ServerFrame::Conversation(s) if s.id == c && s.state == ConversationState::Waiting => {
                Some(())
            }
            _ => None,
        })
        .await;
    agent
        .send(&ClientFrame::TakeOver { conversation_id: c })
        .await;
    visitor.recv_state(ConversationState::Human).await;
    agent
        .send(&frames::send(Some(c), "a-1", "Hello from server two"))
        .await;
    let (reply, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::Message(m) if matches!(m.author, Author::Agent(_)) => Some(m.body.clone()),
            _ => None,
        })
        .await;
    assert_eq!(reply, "Hello from server two");
    visitor
        .send(&frames::send(Some(c), "v-2", "how can I cancel my order"))
        .await;
    let (question, _) = agent
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::Visitor && m.seq > 2 => {
                Some(m.body.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(question, "how can I cancel my order");
    agent
        .send(&ClientFrame::HandBack { conversation_id: c })
        .await;
    visitor.recv_state(ConversationState::Ai).await;
    visitor
        .send(&frames::send(Some(c), "v-3", "how can I cancel my order"))
        .await;
    let (answer, _) = agent
        .recv_until(|f| match f {
            ServerFrame::Message(m) if m.author == Author::Ai => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(answer.sources[0].entry_id, "cancel_order");
    visitor.close().await;
    agent.close().await;
    one.stop().await;
    two.stop().await;
}

/// The database password never shows in the store's debug output or in `redact_url`.
#[tokio::test]
async fn postgres_password_is_redacted() {
    let schema = nexus_tests::pg::TestSchema::create().await;
    // Trust auth accepts any password, so one can be put in the URL.
    let (scheme, rest) = schema.url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    let user = user.split(':').next().unwrap();
    let url = format!("{scheme}://{user}:s3cret-pw@{host}");
    let store = nexus_server::store::postgres::PgStore::connect(&url)
        .await
        .unwrap();
    assert!(!format!("{store:?}").contains("s3cret-pw"));
    assert!(!nexus_server::store::redact_url(&url).contains("s3cret-pw"));
    store.close().await;
}
