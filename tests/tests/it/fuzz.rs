//! Property tests for hostile input: frame decoding never panics, whatever the bytes, and the
//! conversation state machine keeps its promises over any sequence of actions.
//!
//! The normal run uses a modest case count. The `#[ignore]`d variant runs 250,000 cases for
//! each of the four properties, 1,000,000 inputs in all (see RELIABILITY.md):
//! `cargo test -p nexus-tests --test it -- --ignored --nocapture fuzz::`.
//! `PROPTEST_CASES=N` overrides the normal run's count.

use nexus_shared::{
    AgentRef, Auth, Author, ClientFrame, ConversationState, DraftDecision, HandoffReason, Hello,
    Identity, PROTOCOL_VERSION, ServerFrame, Snapshot, Transition,
};
use nexus_tests::frames;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use uuid::Uuid;

/// Cases per property in the normal run.
const CASES: u32 = 2_000;
/// Cases per property in the long run: 4 × 250,000 = 1,000,000 inputs.
const LONG_CASES: u32 = 250_000;

/// One of each kind of frame a client sends, as JSON: the seeds the mutations start from.
fn seeds() -> Vec<String> {
    let id = Uuid::from_u128(0x1234);
    let frames = [
        ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            auth: Auth::Visitor {
                site_key: "demo".into(),
                visitor_token: Some("vt_abc".into()),
                conversation_id: Some(id),
                identity: Some(Identity {
                    id: "user-1".into(),
                    name: Some("Ada".into()),
                    email: None,
                    hash: Some("00ff".into()),
                }),
                page_url: Some("https://shop.example/p".into()),
                locale: Some("en".into()),
            },
        }),
        ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            auth: Auth::Agent {
                session_token: "st_x".into(),
            },
        }),
        frames::send(Some(id), "m-1", "where is my order?"),
        ClientFrame::Resume {
            conversation_id: id,
            after_seq: 7,
        },
        ClientFrame::Csat {
            conversation_id: id,
            score: 5,
            comment: Some("great".into()),
        },
        ClientFrame::ReviewDraft {
            conversation_id: id,
            draft_id: id,
            decision: DraftDecision::Edit { body: "x".into() },
        },
        ClientFrame::TakeOver {
            conversation_id: id,
        },
        ClientFrame::Ping,
    ];
    frames
        .iter()
        .map(|f| serde_json::to_string(f).expect("encodes"))
        .collect()
}

/// Decodes like the server does; a frame that decodes must encode again.
fn decode(text: &str) {
    if let Ok(frame) = serde_json::from_str::<ClientFrame>(text) {
        let again = serde_json::to_string(&frame).expect("a decoded frame encodes");
        let back: ClientFrame = serde_json::from_str(&again).expect("and decodes again");
        assert_eq!(back, frame);
    }
    let _ = serde_json::from_str::<ServerFrame>(text);
}

/// Edits of a seed: insert, delete or replace a character at a position.
fn mutated() -> impl Strategy<Value = String> {
    let seeds = seeds();
    let n = seeds.len();
    (
        0..n,
        prop::collection::vec((any::<usize>(), 0u8..3, any::<char>()), 1..6),
    )
        .prop_map(move |(seed, edits)| {
            let mut chars: Vec<char> = seeds[seed].chars().collect();
            for (at, kind, c) in edits {
                let at = at % (chars.len() + 1);
                match kind {
                    0 => chars.insert(at, c),
                    1 if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ if at < chars.len() => chars[at] = c,
                    _ => chars.push(c),
                }
            }
            chars.into_iter().collect()
        })
}

/// JSON-ish text: mostly the characters frames are made of.
fn jsonish() -> impl Strategy<Value = String> {
    prop::string::string_regex(r#"[{}\[\]":,a-z_0-9 .\-\\u]{0,120}"#).expect("regex")
}

#[derive(Debug, Clone)]
enum Action {
    Transition(Transition),
    Post(Author),
}

fn agent(n: u8) -> AgentRef {
    AgentRef {
        id: Uuid::from_u128(u128::from(n)),
        name: format!("Agent {n}"),
    }
}

fn action() -> impl Strategy<Value = Action> {
    let a = || (1u8..4).prop_map(agent);
    prop_oneof![
        Just(Action::Transition(Transition::Escalated {
            reason: HandoffReason::VisitorAsked
        })),
        a().prop_map(|agent| Action::Transition(Transition::TakenOver { agent })),
        (a(), a()).prop_map(|(from, to)| Action::Transition(Transition::Transferred { from, to })),
        a().prop_map(|agent| Action::Transition(Transition::HandedBack { agent })),
        prop::option::of(a()).prop_map(|by| Action::Transition(Transition::Resolved { by })),
        prop_oneof![
            Just(ConversationState::Ai),
            Just(ConversationState::Waiting),
            Just(ConversationState::Human),
            Just(ConversationState::Resolved)
        ]
        .prop_map(|to| Action::Transition(Transition::Reopened { to })),
        Just(Action::Post(Author::Ai)),
        Just(Action::Post(Author::Visitor)),
        a().prop_map(|agent| Action::Post(Author::Agent(agent))),
    ]
}

/// Runs a sequence of actions the way the store's planner does, checking after every step:
/// the assignee is set exactly while a person has the conversation, the AI may post only in
/// `ai`, and after any takeover the AI is silent until the conversation is handed back.
fn run_machine(actions: &[Action]) -> Result<(), TestCaseError> {
    let mut snapshot = Snapshot::new();
    for action in actions {
        let next = match action {
            Action::Transition(t) => snapshot.apply(t).ok(),
            Action::Post(author) => match snapshot.check_post(author) {
                Ok(Some(implied)) => Some(snapshot.apply(&implied).map_err(|e| {
                    TestCaseError::fail(format!("an implied transition failed: {e}"))
                })?),
                Ok(None) => {
                    prop_assert!(
                        *author != Author::Ai || snapshot.state == ConversationState::Ai,
                        "the AI posted in {:?}",
                        snapshot.state
                    );
                    None
                }
                Err(_) => None,
            },
        };
        if let Some(next) = next {
            let taken = matches!(action, Action::Transition(Transition::TakenOver { .. }))
                || matches!(action, Action::Post(Author::Agent(_)));
            if taken {
                prop_assert_eq!(next.state, ConversationState::Human);
                prop_assert!(next.check_post(&Author::Ai).is_err());
            }
            snapshot = next;
        }
        prop_assert_eq!(
            snapshot.assignee.is_some(),
            snapshot.state == ConversationState::Human
        );
        prop_assert_eq!(
            snapshot.check_post(&Author::Ai).is_ok(),
            snapshot.state == ConversationState::Ai
        );
    }
    Ok(())
}

/// Runs all properties at `cases` each; returns the inputs tried.
fn run_all(cases: u32) -> u64 {
    let config = || Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut total = 0u64;
    let mut runner = TestRunner::new(config());
    runner
        .run(&any::<String>(), |s| {
            decode(&s);
            Ok(())
        })
        .expect("arbitrary text never panics the decoder");
    total += u64::from(cases);
    let mut runner = TestRunner::new(config());
    runner
        .run(&jsonish(), |s| {
            decode(&s);
            Ok(())
        })
        .expect("JSON-like text never panics the decoder");
    total += u64::from(cases);
    let mut runner = TestRunner::new(config());
    runner
        .run(&mutated(), |s| {
            decode(&s);
            Ok(())
        })
        .expect("mutated frames never panic the decoder");
    total += u64::from(cases);
    let mut runner = TestRunner::new(config());
    runner
        .run(&prop::collection::vec(action(), 0..24), |actions| {
            run_machine(&actions)
        })
        .expect("the state machine keeps its invariants");
    total += u64::from(cases);
    total
}

#[test]
fn seeds_decode() {
    for seed in seeds() {
        serde_json::from_str::<ClientFrame>(&seed).expect("a seed decodes");
    }
}

#[test]
fn hostile_input_never_breaks_decoding_or_the_state_machine() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    let total = run_all(cases);
    eprintln!("fuzz: {total} inputs ({cases} per property, 4 properties)");
}

#[test]
#[ignore = "long: 1,000,000 inputs; run once and record the figure"]
fn hostile_input_long_run() {
    let total = run_all(LONG_CASES);
    eprintln!("fuzz (long run): {total} inputs ({LONG_CASES} per property, 4 properties)");
}
