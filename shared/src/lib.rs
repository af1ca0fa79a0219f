//! The parts of Nexus Flow that both sides of the wire must agree on.
//!
//! * [`protocol`]: every frame exchanged over the `/ws` WebSocket and the JSON bodies of the
//!   `/api/v1` REST API. See `shared/PROTOCOL.md` for the prose version.
//! * [`state`]: the conversation state machine (`ai` → `waiting` → `human` → `resolved`). The
//!   server uses it to decide what is allowed; the widget uses it to render what is going on.
//!
//! The crate has no runtime dependencies beyond serde, so it compiles for
//! `wasm32-unknown-unknown` and natively.

pub mod limits;
pub mod protocol;
pub mod state;

pub use protocol::*;
pub use state::{ConversationState, Snapshot, StateError, Transition};
