//! CORS for agent mode in a site's widget: the agents' app on a site's page calls the REST
//! API of another origin (the server's), with a bearer token and never a cookie.
//!
//! Only an agent's calls get the headers: login, and requests carrying `Authorization` (and
//! their preflights). The headers alone allow nothing: login and the [`super::auth::Agent`]
//! extractor refuse a page whose origin is not on the site's allowed origins
//! (`origin_not_allowed`, a body the page can read, so that agent mode can say why), and as
//! no cookie is involved (`Access-Control-Allow-Credentials` is never sent), a page holds no
//! session it did not log in to itself. Requests from the server's own pages pass untouched.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, AUTHORIZATION, HOST, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::access::identity::own_origin;

fn text(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Adds the CORS headers to an agent's call from another origin, and answers its preflight.
pub async fn agent_cors(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let origin = headers.get(ORIGIN).cloned();
    let foreign = !own_origin(text(headers, ORIGIN), text(headers, HOST));
    let preflight = request.method() == Method::OPTIONS;
    let agent_call = request.uri().path().ends_with("/auth/login")
        || headers.contains_key(AUTHORIZATION)
        || (preflight
            && text(headers, ACCESS_CONTROL_REQUEST_HEADERS)
                .is_some_and(|h| h.to_ascii_lowercase().contains("authorization")));
    let Some(origin) = origin.filter(|_| foreign && agent_call) else {
        return next.run(request).await;
    };
    let mut response = if preflight {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
        );
        h.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        r
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.append(VARY, HeaderValue::from_static("origin"));
    response
}
