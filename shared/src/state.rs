//! The conversation state machine.
//!
//! ```text
//!             escalate(reason)            take_over(agent)
//!   ┌────┐ ───────────────────▶ ┌─────────┐ ───────────────▶ ┌───────┐
//!   │ ai │                      │ waiting │                  │ human │ ◀─┐ transfer(agent)
//!   └────┘ ◀──────────────────────────────────── hand_back ── └───────┘ ──┘
//!     │  ▲          take_over(agent) from `ai` goes straight to `human`
//!     │  └──── reopen (the visitor writes again) ────┐
//!     └──────── resolve (from ai, waiting, human) ──▶ resolved
//! ```
//!
//! Every change goes through [`Snapshot::apply`]; every post goes through
//! [`Snapshot::check_post`]. Both are pure and never panic: what is not allowed is a
//! [`StateError`]. The server runs them inside the same database transaction that stores the
//! result, so two racing actors (an agent taking over while the AI is answering) are ordered by
//! the store, and whichever comes second is checked against the state the first one left.

use serde::{Deserialize, Serialize};

use crate::protocol::{AgentRef, Author, HandoffReason};

string_enum! {
    /// Who is answering the visitor right now. Its name (`"ai"`, `"waiting"`, …) is also the
    /// database value.
    pub enum ConversationState {
        /// The AI answers.
        Ai => "ai",
        /// Escalated and queued for a person; the AI is silent.
        Waiting => "waiting",
        /// An agent owns the conversation; the AI is silent.
        Human => "human",
        /// Closed. A new visitor message reopens it.
        Resolved => "resolved",
    }
}

impl ConversationState {
    /// May the AI post a message in this state?
    pub const fn ai_may_post(self) -> bool {
        matches!(self, Self::Ai)
    }
}

tagged_enum! {
    /// A change of state, with its cause. Carried on the wire inside system messages.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "kind")]
    #[non_exhaustive]
    pub enum Transition / TransitionTag {
        /// `ai` → `waiting`: the conversation needs a person.
        Escalated { reason: HandoffReason } => "escalated",
        /// `ai` or `waiting` → `human`: an agent took the conversation.
        TakenOver { agent: AgentRef } => "taken_over",
        /// `human` → `human`: the owning agent passed it to another agent.
        Transferred { from: AgentRef, to: AgentRef } => "transferred",
        /// `human` → `ai`: the agent handed the conversation back to the AI.
        HandedBack { agent: AgentRef } => "handed_back",
        /// any open state → `resolved`.
        Resolved { by: Option<AgentRef> } => "resolved",
        /// `resolved` → `ai` (or `waiting` when the site's AI is off): the visitor wrote again.
        Reopened { to: ConversationState } => "reopened",
    }
}

/// Why an action was refused by the state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("the AI may not post while the conversation is {0:?}")]
    AiSilenced(ConversationState),
    #[error("the conversation is resolved")]
    Resolved,
    #[error("the conversation is already waiting for a person")]
    AlreadyWaiting,
    #[error("the conversation is owned by {owner}")]
    OwnedByOther { owner: String },
    #[error("only the agent who owns the conversation can do this")]
    NotAssignee,
    #[error("cannot go from {from:?} with {transition}")]
    Illegal {
        from: ConversationState,
        transition: &'static str,
    },
}

/// The part of a conversation the state machine needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub state: ConversationState,
    /// The agent owning the conversation; `Some` exactly when `state` is `human`.
    pub assignee: Option<AgentRef>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self::new()
    }
}

impl Snapshot {
    /// A new conversation: the AI answers.
    pub const fn new() -> Self {
        Self {
            state: ConversationState::Ai,
            assignee: None,
        }
    }

    /// Applies a transition, returning the new snapshot, or why it is not allowed.
    pub fn apply(&self, transition: &Transition) -> Result<Self, StateError> {
        use ConversationState as S;
        let illegal = |name| StateError::Illegal {
            from: self.state,
            transition: name,
        };
        match (self.state, transition) {
            (S::Ai, Transition::Escalated { .. }) => Ok(Self {
                state: S::Waiting,
                assignee: None,
            }),
            (S::Waiting, Transition::Escalated { .. }) => Err(StateError::AlreadyWaiting),
            (S::Resolved, _) if !matches!(transition, Transition::Reopened { .. }) => {
                Err(StateError::Resolved)
            }
            (_, Transition::Escalated { .. }) => Err(illegal("escalated")),

            (S::Ai | S::Waiting, Transition::TakenOver { agent }) => Ok(Self {
                state: S::Human,
                assignee: Some(agent.clone()),
            }),
            (S::Human, Transition::TakenOver { agent }) => {
                let owner = self.assignee.as_ref();
                if owner.is_some_and(|o| o.id == agent.id) {
                    Ok(self.clone())
                } else {
                    Err(StateError::OwnedByOther {
                        owner: owner.map(|o| o.name.clone()).unwrap_or_default(),
                    })
                }
            }
            (_, Transition::TakenOver { .. }) => Err(illegal("taken_over")),

            (S::Human, Transition::Transferred { from, to }) => {
                self.require_owner(from)?;
                Ok(Self {
                    state: S::Human,
                    assignee: Some(to.clone()),
                })
            }
            (_, Transition::Transferred { .. }) => Err(illegal("transferred")),

            (S::Human, Transition::HandedBack { agent }) => {
                self.require_owner(agent)?;
                Ok(Self::new())
            }
            (_, Transition::HandedBack { .. }) => Err(illegal("handed_back")),

            (S::Human, Transition::Resolved { by }) => {
                match by {
                    Some(agent) => self.require_owner(agent)?,
                    None => return Err(StateError::NotAssignee),
                }
                Ok(Self::resolved())
            }
            (S::Ai | S::Waiting, Transition::Resolved { .. }) => Ok(Self::resolved()),
            (S::Resolved, Transition::Reopened { to }) => match to {
                S::Ai | S::Waiting => Ok(Self {
                    state: *to,
                    assignee: None,
                }),
                _ => Err(illegal("reopened")),
            },
            (_, Transition::Reopened { .. }) => Err(illegal("reopened")),
            (_, Transition::Resolved { .. }) => Err(illegal("resolved")),
        }
    }

    /// May `author` post a message now? `Ok(Some(t))` means the post is allowed but first
    /// implies transition `t` (an agent replying to an unowned conversation takes it over).
    /// A visitor writing in a resolved conversation is allowed; the caller reopens it with
    /// [`Transition::Reopened`], choosing `ai` or `waiting` from the site's autonomy.
    pub fn check_post(&self, author: &Author) -> Result<Option<Transition>, StateError> {
        use ConversationState as S;
        match author {
            Author::Visitor | Author::System => Ok(None),
            Author::Ai if self.state.ai_may_post() => Ok(None),
            Author::Ai => Err(StateError::AiSilenced(self.state)),
            Author::Agent(agent) => match self.state {
                S::Ai | S::Waiting => Ok(Some(Transition::TakenOver {
                    agent: agent.clone(),
                })),
                S::Human => self.require_owner(agent).map(|()| None),
                S::Resolved => Err(StateError::Resolved),
            },
        }
    }

    fn resolved() -> Self {
        Self {
            state: ConversationState::Resolved,
            assignee: None,
        }
    }

    fn require_owner(&self, agent: &AgentRef) -> Result<(), StateError> {
        match &self.assignee {
            Some(owner) if owner.id == agent.id => Ok(()),
            _ => Err(StateError::NotAssignee),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn agent(n: u128) -> AgentRef {
        AgentRef {
            id: Uuid::from_u128(n),
            name: format!("Agent {n}"),
        }
    }

    #[test]
    fn escalate_then_take_over_then_hand_back() {
        let s = Snapshot::new();
        let s = s
            .apply(&Transition::Escalated {
                reason: HandoffReason::VisitorAsked,
            })
            .unwrap();
        assert_eq!(s.state, ConversationState::Waiting);
        assert_eq!(
            s.check_post(&Author::Ai),
            Err(StateError::AiSilenced(ConversationState::Waiting))
        );
        let s = s.apply(&Transition::TakenOver { agent: agent(1) }).unwrap();
        assert_eq!(s.state, ConversationState::Human);
        assert_eq!(s.assignee, Some(agent(1)));
        assert_eq!(
            s.apply(&Transition::HandedBack { agent: agent(2) }),
            Err(StateError::NotAssignee)
        );
        let s = s
            .apply(&Transition::HandedBack { agent: agent(1) })
            .unwrap();
        assert_eq!(s, Snapshot::new());
    }

    #[test]
    fn second_agent_cannot_steal_a_conversation() {
        let s = Snapshot::new()
            .apply(&Transition::TakenOver { agent: agent(1) })
            .unwrap();
        assert!(matches!(
            s.apply(&Transition::TakenOver { agent: agent(2) }),
            Err(StateError::OwnedByOther { .. })
        ));
        assert_eq!(
            s.check_post(&Author::Agent(agent(2))),
            Err(StateError::NotAssignee)
        );
    }

    #[test]
    fn agent_reply_implies_takeover() {
        let s = Snapshot::new();
        assert_eq!(
            s.check_post(&Author::Agent(agent(1))),
            Ok(Some(Transition::TakenOver { agent: agent(1) }))
        );
    }

    #[test]
    fn resolved_is_terminal_until_reopened() {
        let s = Snapshot::new()
            .apply(&Transition::Resolved { by: None })
            .unwrap();
        assert_eq!(s.check_post(&Author::Visitor), Ok(None));
        assert_eq!(
            s.apply(&Transition::Escalated {
                reason: HandoffReason::VisitorAsked
            }),
            Err(StateError::Resolved)
        );
        let s = s
            .apply(&Transition::Reopened {
                to: ConversationState::Ai,
            })
            .unwrap();
        assert_eq!(s.state, ConversationState::Ai);
    }

    #[test]
    fn state_names_round_trip() {
        for &s in ConversationState::ALL {
            assert_eq!(ConversationState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ConversationState::parse("bogus"), None);
    }
}
