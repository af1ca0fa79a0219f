//! The Nexus Flow visitor widget: a Leptos app rendered in the browser, talking to the
//! server over one WebSocket.
//!
//! The page loads only the tiny `widget.js` loader; on the first click on its launcher the
//! loader imports this module (built by `cargo xtask widget`), initialises the wasm and calls
//! [`mount`], which takes over the launcher and opens the panel.
//!
//! * [`model`]: the timeline and conversation state as plain data (unit-tested natively).
//! * [`connection`]: the socket, reconnects, resume and re-sends.
//! * [`wire`]: reading and writing the frames (without serde, for size).
//! * [`app`]: the components.

pub mod app;
pub mod browser;
pub mod config;
pub mod connection;
pub mod i18n;
pub mod model;
pub mod wire;

use std::sync::Arc;

use leptos::prelude::{Set, Update};
use wasm_bindgen::prelude::*;

use crate::config::Config;
use crate::connection::Client;

/// Mounts the widget into `root` (an element inside the loader's shadow root).
///
/// `config` is a plain object: `{site, server, color?, position?, greeting?, locale?, open?}`.
/// Loader commands (`open`, `close`, `toggle`) arrive as `nexus-flow:command` events on `root`;
/// the widget reports `ready`, `open`, `close` and `message` as `nexus-flow:event` events there.
#[wasm_bindgen]
pub fn mount(root: web_sys::HtmlElement, config: JsValue) -> Result<(), JsValue> {
    console_error_panic_hook::set_once();
    let config = Arc::new(Config::read(&config).map_err(|e| JsValue::from_str(&e))?);
    let open_now = config.open;

    let (client, commands) = Client::new(config);
    let host: web_sys::EventTarget = root.clone().into();

    let open = client.open;
    browser::on_command(&host, move |cmd| match cmd {
        "open" => open.set(true),
        "close" => open.set(false),
        "toggle" => open.update(|o| *o = !*o),
        _ => {}
    });

    let (app_client, app_host) = (client.clone(), host.clone());
    // Mounting also sets up the executor that `spawn_local` needs.
    leptos::mount::mount_to(root, move || {
        leptos::view! { <app::App client=app_client host=app_host /> }
    })
    .forget();
    leptos::task::spawn_local(connection::run(client, commands, host.clone()));
    if open_now {
        open.set(true);
    }
    browser::emit(&host, "ready", None);
    Ok(())
}
