//! The console's REST calls (`/api/v1`, bearer session token) and the few browser APIs it
//! needs without extra `web-sys` features: the clipboard and reading a picked file.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use wasm_bindgen::closure::Closure;

use super::App;
use super::net;
use crate::wire::{Json, string};

/// A refused or failed call, in plain words.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    fn unreachable() -> Self {
        Self {
            status: 0,
            code: String::new(),
            message: "Could not reach the server. Check your connection and retry.".into(),
        }
    }

    /// The route is not on this server (an older version).
    pub fn missing(&self) -> bool {
        matches!(self.status, 404 | 405) && self.code.is_empty()
    }
}

/// `method` `/api/v1{path}` with an optional `(body, content type)`; the parsed JSON answer
/// (`null` for an empty one). An expired session logs the agent out.
pub async fn call(
    app: &App,
    method: &str,
    path: &str,
    body: Option<(String, &str)>,
) -> Result<JsValue, ApiError> {
    use gloo_net::http::Request;
    let token = net::saved_token(&app.site).unwrap_or_default();
    let url = format!("{}/api/v1{path}", app.server);
    let builder = match method {
        "POST" => Request::post(&url),
        "PUT" => Request::put(&url),
        "PATCH" => Request::patch(&url),
        "DELETE" => Request::delete(&url),
        _ => Request::get(&url),
    }
    .header("authorization", &format!("Bearer {token}"));
    let request = match body {
        Some((text, content_type)) => builder.header("content-type", content_type).body(text),
        None => builder.build(),
    }
    .map_err(|_| ApiError::unreachable())?;
    let response = request.send().await.map_err(|_| ApiError::unreachable())?;
    let text = response.text().await.unwrap_or_default();
    let json = if text.is_empty() {
        JsValue::NULL
    } else {
        js_sys::JSON::parse(&text).unwrap_or(JsValue::NULL)
    };
    if response.ok() {
        return Ok(json);
    }
    let status = response.status();
    if status == 401 {
        app.logged_out(Some("Your session has ended. Please log in again.".into()));
    }
    let message = match status {
        403 => "Only the site's owners can do that.".to_owned(),
        _ => string(&json, "message").unwrap_or_default(),
    };
    Err(ApiError {
        status,
        code: string(&json, "code").unwrap_or_default(),
        message,
    })
}

/// A JSON body for [`call`].
pub fn json(value: &JsValue) -> Option<(String, &'static str)> {
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .map(|s| (s, "application/json"))
}

/// A plain object under construction.
pub struct JsObj(pub js_sys::Object);

impl JsObj {
    pub fn new() -> Self {
        Self(js_sys::Object::new())
    }

    pub fn set(self, key: &str, value: impl Into<JsValue>) -> Self {
        let _ = Reflect::set(&self.0, &key.into(), &value.into());
        self
    }

    pub fn value(self) -> JsValue {
        self.0.into()
    }
}

impl Default for JsObj {
    fn default() -> Self {
        Self::new()
    }
}

/// A JS array of strings.
pub fn strings<S: AsRef<str>>(items: &[S]) -> JsValue {
    items
        .iter()
        .map(|s| JsValue::from_str(s.as_ref()))
        .collect::<js_sys::Array>()
        .into()
}

/// The items of a JSON array answer read with `item` (unreadable ones skipped).
pub fn items<T>(v: &JsValue, item: impl Fn(&JsValue) -> Option<T>) -> Vec<T> {
    v.items()
        .unwrap_or_default()
        .iter()
        .filter_map(item)
        .collect()
}

fn on_settle(promise: &Promise, done: impl FnOnce(Result<JsValue, JsValue>) + 'static) {
    let done = std::rc::Rc::new(std::cell::RefCell::new(Some(done)));
    let ok = {
        let done = done.clone();
        Closure::once_into_js(move |v: JsValue| {
            if let Some(f) = done.borrow_mut().take() {
                f(Ok(v));
            }
        })
    };
    let err = Closure::once_into_js(move |e: JsValue| {
        if let Some(f) = done.borrow_mut().take() {
            f(Err(e));
        }
    });
    if let Some(then) = Reflect::get(promise, &"then".into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
    {
        let _ = then.call2(promise, &ok, &err);
    }
}

/// Copies `text` with `navigator.clipboard.writeText`; `done(false)` where the browser has
/// no clipboard API or refuses (the caller then selects the text for Ctrl+C).
pub fn copy(text: &str, done: impl FnOnce(bool) + 'static) {
    let promise = web_sys::window()
        .and_then(|w| Reflect::get(&w.navigator(), &"clipboard".into()).ok())
        .filter(JsValue::is_object)
        .and_then(|clip| {
            let write: Function = Reflect::get(&clip, &"writeText".into())
                .ok()?
                .dyn_into()
                .ok()?;
            write
                .call1(&clip, &text.into())
                .ok()?
                .dyn_into::<Promise>()
                .ok()
        });
    match promise {
        Some(p) => on_settle(&p, move |r| done(r.is_ok())),
        None => done(false),
    }
}

/// The first file picked in `input` (a file `<input>`): its name and, through `done`, its
/// text.
pub fn read_picked(input: &JsValue, done: impl FnOnce(String, Option<String>) + 'static) -> bool {
    let file = Reflect::get(input, &"files".into())
        .ok()
        .and_then(|files| Reflect::get(&files, &0.into()).ok())
        .filter(JsValue::is_object);
    let Some(file) = file else {
        return false;
    };
    let name = string(&file, "name").unwrap_or_default();
    let promise = Reflect::get(&file, &"text".into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .and_then(|f| f.call0(&file).ok())
        .and_then(|p| p.dyn_into::<Promise>().ok());
    match promise {
        Some(p) => on_settle(&p, move |r| done(name, r.ok().and_then(|t| t.as_string()))),
        None => done(name, None),
    }
    true
}

/// The top-level keys of an object.
pub fn keys(v: &JsValue) -> Vec<String> {
    v.dyn_ref::<js_sys::Object>()
        .map(|o| {
            js_sys::Object::keys(o)
                .iter()
                .filter_map(|k| k.as_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A deep copy of a JSON value.
pub fn clone_json(v: &JsValue) -> JsValue {
    js_sys::JSON::stringify(v)
        .ok()
        .and_then(|s| js_sys::JSON::parse(&String::from(s)).ok())
        .unwrap_or(JsValue::NULL)
}

/// A path segment, percent-encoded.
pub fn segment(s: &str) -> String {
    String::from(js_sys::encode_uri_component(s))
}
