//! The services of a conversation: what a visitor does ([`visitor`]), what an agent does
//! ([`agent`]), learning from both ([`learn`]), the summary handed to an agent
//! ([`summary`]), the system notices in the visitor's language ([`notices`]), and what
//! follows a commit: live delivery, the inbox feed, escalation effects and webhooks
//! ([`effects`], [`webhooks`]).
//!
//! Every change goes through [`crate::store::Store::commit`]; these functions decide what to
//! commit and what to do after. They import records, the store and [`crate::live`], never
//! the transports ([`crate::ws`], [`crate::http`]).

pub mod agent;
pub mod ai_queue;
pub mod effects;
pub mod learn;
pub mod notices;
pub mod summary;
pub mod visitor;
pub mod webhooks;
