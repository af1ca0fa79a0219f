//! Who may open a visitor connection: the site's allowed origins, and the visitor identity a
//! site signs with its identity secret (HMAC-SHA256). Which pages may use an agent's session
//! (the server's own, and for agent mode in the widget the site's listed origins).

use nexus_shared::{ErrorBody, ErrorCode, Identity};

use crate::model::SiteSettings;

/// Longest identity id, name and email accepted in `hello`.
pub const MAX_IDENTITY_FIELD_BYTES: usize = 320;

/// Is `origin` allowed to open a visitor connection? An empty list allows every origin (and
/// connections without one); otherwise the origin must be on the list (scheme, host and port,
/// compared without case and trailing slash), and a connection without an `Origin` header is
/// refused: browsers always send one, so only a non-browser client lacks it.
pub fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(origin) = origin else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/');
    allowed
        .iter()
        .any(|a| a.trim().trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// Is `origin` the server's own (scheme aside, the same host and port as the request's
/// `Host`)? That is the `/agent` page. No `Origin` at all counts as the server's own too:
/// browsers always send one on a WebSocket and on a cross-origin request, so only a
/// non-browser client (a script, `nexus-load`) lacks it, and it holds its token itself.
pub fn own_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let authority = origin
        .trim()
        .trim_end_matches('/')
        .split_once("://")
        .map_or("", |(_, rest)| rest);
    host.is_some_and(|h| h.trim().eq_ignore_ascii_case(authority))
}

/// May a page at `origin` use an agent's session (log in, the agent WebSocket, the REST
/// calls of agent mode)? The server's own origin always may ([`own_origin`]); any other only
/// when it is on the site's allowed origins. Unlike for visitors, an empty list allows no
/// other origin: an agent's session reaches every conversation of the site, so agent mode on
/// a site's pages is opt-in by listing them.
pub fn agent_origin_allowed(allowed: &[String], origin: Option<&str>, host: Option<&str>) -> bool {
    own_origin(origin, host) || (!allowed.is_empty() && origin_allowed(allowed, origin))
}

/// Why an agent session from a page that may not use one is refused.
pub const AGENT_ORIGIN_REFUSED: &str =
    "Agent mode is not allowed on this page: add its origin to the site's allowed origins.";

/// The refusal of an agent session from a page that may not use one.
pub fn agent_origin_refused() -> ErrorBody {
    ErrorBody::new(ErrorCode::OriginNotAllowed, AGENT_ORIGIN_REFUSED)
}

/// The hex HMAC-SHA256 of `id` under `secret`: what a site puts in `identity.hash`.
pub fn identity_hash(secret: &str, id: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a visitor's identity claim against the site's settings. Returns the identity when it
/// is verified; `None` when there is nothing to verify (no claim, or no secret to check it
/// with — an unverifiable claim is not stored). A claim with a wrong hash is refused, and so is
/// a missing (or unverifiable) claim when the site requires identity.
pub fn verify_identity(
    settings: &SiteSettings,
    identity: Option<Identity>,
) -> Result<Option<Identity>, ErrorBody> {
    use hmac::Mac;
    let refused = |message: &str| ErrorBody::new(ErrorCode::IdentityInvalid, message);
    match (settings.identity_secret(), identity) {
        (Some(secret), Some(identity)) => {
            let too_long = [
                Some(&identity.id),
                identity.name.as_ref(),
                identity.email.as_ref(),
            ]
            .into_iter()
            .flatten()
            .any(|f| f.len() > MAX_IDENTITY_FIELD_BYTES);
            if identity.id.is_empty() || too_long {
                return Err(refused("The identity's id, name or email is malformed."));
            }
            let verified = identity
                .hash
                .as_deref()
                .and_then(|h| hex::decode(h.trim()).ok())
                .is_some_and(|expected| {
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
                        .map(|mac| mac.chain_update(identity.id.as_bytes()))
                        .is_ok_and(|mac| mac.verify_slice(&expected).is_ok())
                });
            if verified {
                Ok(Some(identity))
            } else {
                Err(refused("The visitor's identity could not be verified."))
            }
        }
        (None, Some(_)) if settings.require_identity => Err(refused(
            "This site requires a verified identity but has no identity secret set.",
        )),
        (_, None) if settings.require_identity => {
            Err(refused("This site requires a verified identity."))
        }
        (_, _) => Ok(None),
    }
}
