//! REST helpers shared by the API tests: one authenticated request, one authenticated JSON read.

use reqwest::{Client, Method, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

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
