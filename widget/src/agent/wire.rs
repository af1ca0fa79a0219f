//! The agent app's frames, read and written without serde like the visitor's (see
//! [`crate::wire`]): `nexus_shared::light::agent`, over the browser's `JSON.parse`.

use nexus_shared::ServerFrame;

pub use nexus_shared::light::agent::{decode, encode};

/// Parses a frame for the agent app with the browser's `JSON.parse`.
pub fn parse(text: &str) -> Option<ServerFrame> {
    decode(&js_sys::JSON::parse(text).ok()?)
}
