//! Properties of the conversation state machine, over random sequences of actions.

use nexus_shared::*;
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Action {
    Post(Author),
    Do(Transition),
}

fn agent(n: u8) -> AgentRef {
    AgentRef {
        id: Uuid::from_u128(u128::from(n) + 1),
        name: format!("Agent {n}"),
    }
}

fn reason() -> impl Strategy<Value = HandoffReason> {
    prop_oneof![
        Just(HandoffReason::LowConfidence),
        Just(HandoffReason::VisitorAsked),
        Just(HandoffReason::Frustration),
        "[a-z]{1,8}".prop_map(|category| HandoffReason::Sensitive { category }),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let a = (0u8..3).prop_map(agent);
    prop_oneof![
        Just(Action::Post(Author::Visitor)),
        Just(Action::Post(Author::Ai)),
        Just(Action::Post(Author::System)),
        a.clone().prop_map(|a| Action::Post(Author::Agent(a))),
        reason().prop_map(|reason| Action::Do(Transition::Escalated { reason })),
        a.clone()
            .prop_map(|agent| Action::Do(Transition::TakenOver { agent })),
        (a.clone(), a.clone())
            .prop_map(|(from, to)| Action::Do(Transition::Transferred { from, to })),
        a.clone()
            .prop_map(|agent| Action::Do(Transition::HandedBack { agent })),
        proptest::option::of(a).prop_map(|by| Action::Do(Transition::Resolved { by })),
        Just(Action::Do(Transition::Reopened {
            to: ConversationState::Ai
        })),
    ]
}

/// Runs actions the way the server does: a post is checked, its implied transition applied;
/// a visitor post in a resolved conversation reopens it. Returns the accepted steps.
fn run(actions: &[Action]) -> Vec<(Snapshot, Action, Snapshot)> {
    let mut s = Snapshot::new();
    let mut accepted = vec![];
    for a in actions {
        let next = match a {
            Action::Post(author) => {
                if s.state == ConversationState::Resolved && *author == Author::Visitor {
                    s.apply(&Transition::Reopened {
                        to: ConversationState::Ai,
                    })
                } else {
                    s.check_post(author).and_then(|implied| match implied {
                        Some(t) => s.apply(&t),
                        None => Ok(s.clone()),
                    })
                }
            }
            Action::Do(t) => s.apply(t),
        };
        if let Ok(next) = next {
            accepted.push((s.clone(), a.clone(), next.clone()));
            s = next;
        }
    }
    accepted
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The AI may post only while the conversation is in `ai`.
    #[test]
    fn ai_posts_only_in_ai(actions in prop::collection::vec(action(), 0..40)) {
        for (before, action, _) in run(&actions) {
            if matches!(action, Action::Post(Author::Ai)) {
                prop_assert_eq!(before.state, ConversationState::Ai);
            }
        }
    }

    /// Once an agent has taken over, no AI post is accepted until the conversation is handed
    /// back or resolved and reopened: a takeover racing an AI reply always wins, whichever
    /// the store orders first (if the AI's reply came first it was posted while `ai`; if the
    /// takeover came first the AI's reply is refused).
    #[test]
    fn takeover_silences_the_ai(actions in prop::collection::vec(action(), 0..40)) {
        let mut silenced = false;
        for (_, action, after) in run(&actions) {
            match &action {
                Action::Do(Transition::TakenOver { .. }) => silenced = true,
                Action::Post(Author::Agent(_)) if after.state == ConversationState::Human => silenced = true,
                Action::Do(Transition::HandedBack { .. } | Transition::Reopened { .. }) => silenced = false,
                Action::Post(Author::Visitor) if after.state == ConversationState::Ai => silenced = false,
                Action::Post(Author::Ai) => prop_assert!(!silenced, "AI posted after a takeover"),
                _ => {}
            }
        }
    }

    /// The racing pair, directly: from any reachable state, "take over then AI reply" never
    /// lets the AI reply through.
    #[test]
    fn takeover_then_ai_reply_is_refused(actions in prop::collection::vec(action(), 0..30), n in 0u8..3) {
        let s = run(&actions).last().map(|(_, _, s)| s.clone()).unwrap_or_default();
        if let Ok(taken) = s.apply(&Transition::TakenOver { agent: agent(n) }) {
            prop_assert!(taken.check_post(&Author::Ai).is_err());
            prop_assert_eq!(taken.state, ConversationState::Human);
        }
    }

    /// A resolved conversation reopens on a new visitor message; nothing else but a reopen
    /// takes it out of `resolved`.
    #[test]
    fn resolved_reopens_on_visitor_message(actions in prop::collection::vec(action(), 0..40)) {
        for (before, action, after) in run(&actions) {
            if before.state == ConversationState::Resolved && after.state != ConversationState::Resolved {
                prop_assert!(matches!(action, Action::Post(Author::Visitor) | Action::Do(Transition::Reopened { .. })), "left resolved by {:?}", action);
            }
        }
        let s = run(&actions).last().map(|(_, _, s)| s.clone()).unwrap_or_default();
        if s.state == ConversationState::Resolved {
            prop_assert_eq!(s.check_post(&Author::Visitor), Ok(None));
            let reopened = s.apply(&Transition::Reopened { to: ConversationState::Ai }).unwrap();
            prop_assert_eq!(reopened.state, ConversationState::Ai);
        }
    }

    /// `human` always has an owner, and no other state has one.
    #[test]
    fn assignee_iff_human(actions in prop::collection::vec(action(), 0..40)) {
        for (_, _, after) in run(&actions) {
            prop_assert_eq!(after.assignee.is_some(), after.state == ConversationState::Human);
        }
    }
}
