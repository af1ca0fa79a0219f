//! Limits both sides know about, so the widget can refuse early what the server would refuse.

/// Largest WebSocket frame the server accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Longest message body, in characters (Unicode scalar values).
pub const MAX_BODY_CHARS: usize = 4_000;
/// Longest client message id, in bytes.
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 64;
/// Largest history page a client may ask for.
pub const MAX_HISTORY_PAGE: u32 = 200;
/// Default history page.
pub const DEFAULT_HISTORY_PAGE: u32 = 100;
/// Longest CSAT comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 1_000;
