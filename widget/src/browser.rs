//! The few browser APIs the widget uses, each failing soft: a sandboxed iframe without
//! `localStorage` or an insecure page without `crypto.randomUUID` still gets a working chat.

use js_sys::{Object, Reflect};
use nexus_shared::Millis;
use wasm_bindgen::{JsCast, JsValue};

/// The name of the events the widget emits on its mount element for the loader
/// (`NexusFlow.on(...)`); `detail` is `{type, author?}`.
pub const EVENT: &str = "nexus-flow:event";
/// The name of the events the loader sends the widget; `detail` is `"open"`, `"close"` or
/// `"toggle"`.
pub const COMMAND: &str = "nexus-flow:command";

pub fn now() -> Millis {
    js_sys::Date::now() as Millis
}

/// A fresh client message id: `crypto.randomUUID()`, or a v4 UUID from
/// `crypto.getRandomValues()` where `randomUUID` is missing (insecure contexts).
pub fn new_client_msg_id() -> String {
    let crypto = web_sys::window().and_then(|w| w.crypto().ok());
    if let Some(crypto) = &crypto
        && Reflect::get(crypto, &"randomUUID".into()).is_ok_and(|f| f.is_function())
    {
        return crypto.random_uuid();
    }
    let mut bytes = [0u8; 16];
    let filled = crypto.is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    // Version 4, RFC 4122 variant.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    crate::wire::uuid_string(&uuid::Uuid::from_bytes(bytes))
}

/// `Math.random()`: for backoff jitter.
pub fn random_unit() -> f64 {
    js_sys::Math::random()
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

pub fn load(key: &str) -> Option<String> {
    storage()?
        .get_item(key)
        .ok()
        .flatten()
        .filter(|t| !t.is_empty())
}

pub fn store(key: &str, value: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item(key, value);
    }
}

pub fn forget(key: &str) {
    if let Some(s) = storage() {
        let _ = s.remove_item(key);
    }
}

pub fn page_url() -> Option<String> {
    web_sys::window()?.location().href().ok()
}

pub fn browser_locale() -> Option<String> {
    web_sys::window()?.navigator().language()
}

/// `14:05`, in the visitor's locale.
pub fn format_time(at: Millis, locale: Option<&str>) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
    let options = Object::new();
    let _ = Reflect::set(&options, &"hour".into(), &"2-digit".into());
    let _ = Reflect::set(&options, &"minute".into(), &"2-digit".into());
    locale_string(&date, "toLocaleTimeString", &options, locale)
}

/// A date and time such as `25/11/2026, 14:05`, in the visitor's locale.
pub fn format_date(at: Millis, locale: Option<&str>) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
    let options = Object::new();
    let _ = Reflect::set(&options, &"dateStyle".into(), &"short".into());
    let _ = Reflect::set(&options, &"timeStyle".into(), &"short".into());
    locale_string(&date, "toLocaleString", &options, locale)
}

/// Calls `date.<method>(locale, options)`; the browser's locale when `locale` is invalid.
fn locale_string(
    date: &js_sys::Date,
    method: &str,
    options: &Object,
    locale: Option<&str>,
) -> String {
    // Called through `Function::call2`, which catches: an invalid `data-locale` throws a
    // RangeError, and then the browser's own locale will do.
    let format = |locales: &JsValue| {
        Reflect::get(date, &method.into())
            .ok()?
            .dyn_into::<js_sys::Function>()
            .ok()?
            .call2(date, locales, options)
            .ok()?
            .as_string()
    };
    locale
        .and_then(|l| format(&JsValue::from_str(l)))
        .or_else(|| format(&JsValue::UNDEFINED))
        .unwrap_or_default()
}

/// Replaces the items of `list` with one `<li><button data-id>` per `(id, title, text)`: the
/// history list (see `app::History`). Text only, never HTML.
pub fn fill_list<'a>(
    list: &web_sys::Element,
    items: impl Iterator<Item = (String, String, &'a str)>,
) {
    list.set_text_content(None);
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    for (id, title, text) in items {
        let (Ok(li), Ok(button), Ok(head), Ok(body)) = (
            doc.create_element("li"),
            doc.create_element("button"),
            doc.create_element("span"),
            doc.create_element("span"),
        ) else {
            return;
        };
        let _ = button.set_attribute("class", "nf-choice");
        let _ = button.set_attribute("data-testid", "history-item");
        let _ = button.set_attribute("data-id", &id);
        let _ = head.set_attribute("class", "nf-author");
        head.set_text_content(Some(&title));
        body.set_text_content(Some(text));
        let _ = button.append_child(&head);
        let _ = button.append_child(&body);
        let _ = li.append_child(&button);
        let _ = list.append_child(&li);
    }
}

/// The `data-id` of the element a click landed in (or of its nearest ancestor with one).
pub fn clicked_id(event: &web_sys::MouseEvent) -> Option<String> {
    event
        .target()?
        .dyn_into::<web_sys::Element>()
        .ok()?
        .closest("[data-id]")
        .ok()??
        .get_attribute("data-id")
}

/// Tells the loader something happened (`open`, `close`, `ready`, `message`).
pub fn emit(target: &web_sys::EventTarget, kind: &str, author: Option<&str>) {
    let detail = Object::new();
    let _ = Reflect::set(&detail, &"type".into(), &kind.into());
    if let Some(author) = author {
        let _ = Reflect::set(&detail, &"author".into(), &author.into());
    }
    let init = web_sys::CustomEventInit::new();
    init.set_detail(&detail);
    if let Ok(event) = web_sys::CustomEvent::new_with_event_init_dict(EVENT, &init) {
        let _ = target.dispatch_event(&event);
    }
}

/// The event `NexusFlow.identify()` sends; `detail` is `{id, name, email, hash}` or null.
pub const IDENTIFY: &str = "nexus-flow:identify";

/// Calls `f` with the `detail` string of every loader command sent to `target`, for the life
/// of the page.
pub fn on_command(target: &web_sys::EventTarget, f: impl Fn(&str) + 'static) {
    on_event(target, COMMAND, move |detail| {
        if let Some(cmd) = detail.as_string() {
            f(&cmd);
        }
    });
}

/// Calls `f` with the `detail` of every `name` event sent to `target`, for the life of the
/// page.
pub fn on_event(target: &web_sys::EventTarget, name: &str, f: impl Fn(JsValue) + 'static) {
    let closure = wasm_bindgen::closure::Closure::<dyn Fn(web_sys::Event)>::new(
        move |event: web_sys::Event| {
            if let Some(e) = event.dyn_ref::<web_sys::CustomEvent>() {
                f(e.detail());
            }
        },
    );
    let _ = target.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
    // The widget lives as long as the page.
    closure.forget();
}
