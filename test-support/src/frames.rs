//! The client frames tests build, written once.

use nexus_shared::{Auth, ClientFrame, Hello, PROTOCOL_VERSION};
use uuid::Uuid;

/// A visitor's (or agent's) message `body` under the client message id `id`, in
/// `conversation_id` (`None`: the visitor's current conversation, or a new one).
pub fn send(
    conversation_id: Option<Uuid>,
    id: impl Into<String>,
    body: impl Into<String>,
) -> ClientFrame {
    ClientFrame::Send {
        conversation_id,
        client_msg_id: id.into(),
        body: body.into(),
    }
}

/// `hello` with `auth` at the current protocol version.
pub fn hello(auth: Auth) -> ClientFrame {
    ClientFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        auth,
    })
}

/// A visitor of `site_key` with `token` (if any), on a test page in English.
pub fn visitor(site_key: &str, token: Option<String>) -> Auth {
    Auth::Visitor {
        site_key: site_key.into(),
        visitor_token: token,
        conversation_id: None,
        identity: None,
        page_url: Some("http://127.0.0.1/test".into()),
        locale: Some("en".into()),
    }
}

/// A visitor of `site_key` saying nothing of its page or language, resuming `conversation_id`
/// when given.
pub fn bare_visitor(
    site_key: &str,
    token: Option<String>,
    conversation_id: Option<Uuid>,
    identity: Option<nexus_shared::Identity>,
) -> Auth {
    Auth::Visitor {
        site_key: site_key.into(),
        visitor_token: token,
        conversation_id,
        identity,
        page_url: None,
        locale: None,
    }
}

/// An agent with the session token of a login.
pub fn agent(session_token: &str) -> Auth {
    Auth::Agent {
        session_token: session_token.into(),
    }
}

/// The visitor token a `welcome` gives; panics when the session is not a visitor's.
pub fn visitor_token(welcome: &nexus_shared::Welcome) -> String {
    match &welcome.session {
        nexus_shared::Session::Visitor { visitor_token } => visitor_token.clone(),
        other => panic!("expected a visitor session, got {other:?}"),
    }
}
