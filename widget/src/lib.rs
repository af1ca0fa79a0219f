//! The Nexus Flow visitor widget: a Leptos app rendered in the browser, talking to the
//! server over one WebSocket.
//!
//! The page loads only the tiny `widget.js` loader; on the first click on its launcher the
//! loader imports this module (built by `cargo xtask widget`), initialises the wasm and calls
//! [`mount`], which takes over the launcher and opens the panel.
//!
//! * [`model`]: the timeline and conversation state as plain data (unit-tested natively).
//! * [`link`]: the connection loop both apps run: the socket, `hello`, ping, dead peer,
//!   reconnects with backoff.
//! * [`connection`]: the visitor's side of it: resume and re-sends.
//! * [`wire`]: reading and writing the frames (without serde, for size).
//! * [`app`]: the components.
//! * `agent` (feature `agent`, a bundle of its own): the agents' app, see [`mount_agent`].

#[cfg(feature = "agent")]
pub mod agent;
pub mod app;
pub mod browser;
pub mod config;
pub mod connection;
pub mod i18n;
pub mod link;
pub mod model;
pub mod wire;

use wasm_bindgen::prelude::*;

/// Mounts the widget into `root` (an element inside the loader's shadow root).
///
/// `config` is a plain object: `{site, server, color?, position?, greeting?, locale?, open?}`.
/// Loader commands (`open`, `close`, `toggle`) arrive as `nexus-flow:command` events on `root`;
/// the widget reports `ready`, `open`, `close` and `message` as `nexus-flow:event` events there.
#[cfg(not(feature = "agent"))]
#[wasm_bindgen]
pub fn mount(root: web_sys::HtmlElement, config: JsValue) -> Result<(), JsValue> {
    use std::sync::Arc;

    use leptos::prelude::{Set, Update};

    use crate::config::Config;
    use crate::connection::Client;

    let config = Arc::new(Config::read(&config).map_err(|e| JsValue::from_str(&e))?);
    let open_now = config.open;
    i18n::set_locale(
        config
            .locale
            .clone()
            .or_else(browser::browser_locale)
            .as_deref(),
    );

    let (client, commands) = Client::new(config);
    let host: web_sys::EventTarget = root.clone().into();

    let open = client.open;
    browser::on_command(&host, move |cmd| match cmd {
        "open" => open.set(true),
        "close" => open.set(false),
        "toggle" => open.update(|o| *o = !*o),
        _ => {}
    });

    let identify = client.clone();
    browser::on_event(&host, browser::IDENTIFY, move |detail| {
        identify.identify(config::identity(&detail));
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

/// Mounts the agent app (the `/agent` page) into `root`. Only in the agent bundle.
///
/// `config` is a plain object: `{site?, server}` (the site key prefilled in the login form,
/// `"demo"` when absent, and the server's origin).
#[cfg(feature = "agent")]
#[wasm_bindgen]
pub fn mount_agent(root: web_sys::HtmlElement, config: JsValue) -> Result<(), JsValue> {
    console_error_panic_hook::set_once();
    let site = wire::string(&config, "site").unwrap_or_else(|| "demo".to_owned());
    let server = wire::string(&config, "server").unwrap_or_default();
    agent::mount(root, site, server);
    Ok(())
}

/// Mounts agent mode into `root`, an element the loader puts next to the visitor widget in
/// its shadow root (see [`agent::embedded`]). Only in the agent bundle.
///
/// `config` is a plain object: `{site, server, open?, position?}`.
#[cfg(feature = "agent")]
#[wasm_bindgen]
pub fn mount_agent_embedded(root: web_sys::HtmlElement, config: JsValue) -> Result<(), JsValue> {
    console_error_panic_hook::set_once();
    let (site, server, open, left) = agent::embedded::config(&config);
    agent::embedded::mount(root, site, server, open, left);
    Ok(())
}
