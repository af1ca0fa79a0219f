//! The frames the visitor widget exchanges, read and written without serde: the light codec of
//! `nexus_shared::light` (it says why), over the browser's `JSON.parse`. Its pins to the serde
//! format are in `shared/tests/wire.rs`.

#[cfg(feature = "agent")]
use nexus_shared::ErrorCode;
use nexus_shared::ServerFrame;

pub use nexus_shared::light::{
    Json, Obj, decode, encode, flag, int, list, parse_uuid, reason, string, uint, uuid, uuid_string,
};

/// Parses a frame's text with the browser's `JSON.parse`. `None` for what this widget does not
/// understand (a frame type of a newer server, an agent-only frame): those are skipped.
pub fn parse(text: &str) -> Option<ServerFrame> {
    decode(&js_sys::JSON::parse(text).ok()?)
}

/// An error code as the server wrote it; a newer server's code is [`ErrorCode::Unknown`].
#[cfg(feature = "agent")]
pub(crate) fn error_code(code: &str) -> ErrorCode {
    ErrorCode::from_wire(code)
}
