//! The parts of Nexus Flow that both sides of the wire must agree on.
//!
//! * [`protocol`]: every frame exchanged over the `/ws` WebSocket and the JSON bodies of the
//!   `/api/v1` REST API. See `shared/PROTOCOL.md` for the prose version.
//! * [`state`]: the conversation state machine (`ai` → `waiting` → `human` → `resolved`). The
//!   server uses it to decide what is allowed; the widget uses it to render what is going on.
//! * [`table`]: the one table of names per string enum (error codes with their HTTP status,
//!   states, roles, the tags of the frames, …), used by serde, the server and the widget.
//! * `light` (feature `light`): the widget's small codec for the frames, without serde.
//!
//! The crate has no runtime dependencies beyond serde (and, for the light codec, `js-sys`), so it
//! compiles for `wasm32-unknown-unknown` and natively.

// First: the other modules declare their enums with its macros.
#[macro_use]
pub mod table;

#[cfg(feature = "light")]
pub mod light;
pub mod limits;
pub mod protocol;
pub mod state;

pub use protocol::*;
pub use state::{ConversationState, Snapshot, StateError, Transition, TransitionTag};
pub use table::StringEnum;
