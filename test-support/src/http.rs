//! REST helpers: one authenticated request, one authenticated JSON read, one login, one
//! request that gives back the status and the body as text.

use reqwest::{Client, Method, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::PASSWORD;

/// Sends `method url` with `token` as the bearer session and `body`, if any, as JSON; panics
/// only when the request cannot be sent at all (the status is the caller's to check).
pub async fn authed(
    http: &Client,
    method: Method,
    url: String,
    token: &str,
    body: Option<&Value>,
) -> Response {
    let request = http.request(method, url).bearer_auth(token);
    let request = match body {
        Some(body) => request.json(body),
        None => request,
    };
    request.send().await.expect("request sent")
}

/// GETs `url` with `token` as the bearer session and decodes the JSON reply.
pub async fn get_json<T: DeserializeOwned>(http: &Client, url: String, token: &str) -> T {
    authed(http, Method::GET, url, token, None)
        .await
        .json()
        .await
        .expect("JSON reply")
}

/// Sends `method url` (with `bearer` and a JSON `body` when given); returns the status and
/// the body as text.
pub async fn call(
    method: Method,
    url: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
) -> (u16, String) {
    let mut request = Client::new().request(method, url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = tokio::time::timeout(crate::WAIT, request.send())
        .await
        .expect("response in time")
        .expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("response read");
    (status, text)
}

/// Logs `email` (password [`PASSWORD`]) in on `site_key` over the REST API of the server at
/// `base` (`http://127.0.0.1:port`); returns the session token. A refused login fails the
/// test.
pub async fn login(base: &str, site_key: &str, email: &str) -> String {
    let body = serde_json::json!({"site_key": site_key, "email": email, "password": PASSWORD});
    let (status, text) = call(
        Method::POST,
        &format!("{base}/api/v1/auth/login"),
        Some(&body),
        None,
    )
    .await;
    assert_eq!(status, 200, "login of {email} succeeds: {text}");
    let body: Value = serde_json::from_str(&text).expect("login json");
    body["token"].as_str().expect("a session token").to_owned()
}
