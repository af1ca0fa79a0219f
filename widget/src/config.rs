//! What the loader (`widget.js`) passes to [`crate::mount`]: the script tag's `data-*`
//! attributes, as a plain object.

use nexus_shared::Identity;

use crate::wire::{Json, flag, string};

/// The widget's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The site key (`data-site`). Required.
    pub site: String,
    /// The server's origin (`data-server`, else the loader script's origin), e.g.
    /// `https://chat.example.com`.
    pub server: String,
    /// The launcher and header colour (`data-color`); overrides the site's colour.
    pub color: Option<String>,
    /// `"left"` or `"right"` (default) bottom corner (`data-position`).
    pub position: Option<String>,
    /// Overrides the site's greeting (`data-greeting`).
    pub greeting: Option<String>,
    /// The visitor's language (`data-locale`, else the browser's).
    pub locale: Option<String>,
    /// Open the panel as soon as the app is mounted.
    pub open: bool,
    /// Who the visitor is (`NexusFlow.identify()` before the app loaded).
    pub identity: Option<Identity>,
}

impl Config {
    /// Reads the loader's object; `site` must be set.
    pub fn read<J: Json>(v: &J) -> Result<Self, String> {
        let nonempty = |key| string(v, key).filter(|s: &String| !s.trim().is_empty());
        Ok(Self {
            site: nonempty("site").ok_or("data-site is required")?,
            server: string(v, "server").unwrap_or_default(),
            color: nonempty("color"),
            position: nonempty("position"),
            greeting: nonempty("greeting"),
            locale: nonempty("locale"),
            open: flag(v, "open").unwrap_or(false),
            identity: v.get("identity").as_ref().and_then(identity),
        })
    }

    /// The WebSocket URL: `{server}/ws`, `ws://` for `http://` and `wss://` for `https://`.
    pub fn ws_url(&self) -> String {
        ws_url(&self.server)
    }

    pub fn on_left(&self) -> bool {
        self.position.as_deref() == Some("left")
    }

    /// The `localStorage` key holding this site's visitor token.
    pub fn token_key(&self) -> String {
        format!("nexus-flow:{}:visitor", self.site)
    }
}

/// `{id, name?, email?, hash?}`, as `NexusFlow.identify()` takes it.
pub fn identity<J: Json>(v: &J) -> Option<Identity> {
    Some(Identity {
        id: string(v, "id").filter(|id| !id.is_empty())?,
        name: string(v, "name"),
        email: string(v, "email"),
        hash: string(v, "hash"),
    })
}

/// See [`Config::ws_url`].
pub fn ws_url(server: &str) -> String {
    let server = server.trim().trim_end_matches('/');
    let rest = if let Some(rest) = server.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = server.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if server.starts_with("ws://") || server.starts_with("wss://") {
        server.to_owned()
    } else {
        format!("wss://{server}")
    };
    format!("{rest}/ws")
}

/// A colour safe to put in a `style` attribute (`#4f46e5`, `rgb(1 2 3)`, `teal`), or `None`.
pub fn safe_color(color: &str) -> Option<&str> {
    let color = color.trim();
    let ok = !color.is_empty()
        && color.len() <= 64
        && color
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " #(),.%/-".contains(c));
    ok.then_some(color)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn websocket_url_follows_the_scheme() {
        assert_eq!(ws_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
        assert_eq!(
            ws_url("https://chat.example.com/"),
            "wss://chat.example.com/ws"
        );
        assert_eq!(ws_url("chat.example.com"), "wss://chat.example.com/ws");
    }

    #[test]
    fn config_needs_a_site() {
        assert!(Config::read(&json!({"server": "http://x"})).is_err());
        assert!(Config::read(&json!({"site": " ", "server": "http://x"})).is_err());
        let c = Config::read(
            &json!({"site": "demo", "server": "http://x", "position": "left",
            "open": true, "color": null, "greeting": ""}),
        )
        .unwrap();
        assert!(c.on_left() && c.open);
        assert_eq!((&c.color, &c.greeting), (&None, &None));
        assert_eq!(c.token_key(), "nexus-flow:demo:visitor");
    }

    #[test]
    fn only_plain_colours_reach_the_style_attribute() {
        assert_eq!(safe_color(" #4f46e5 "), Some("#4f46e5"));
        assert_eq!(safe_color("rgb(10, 20, 30)"), Some("rgb(10, 20, 30)"));
        assert_eq!(safe_color("red;background:url(x)"), None);
        assert_eq!(safe_color(""), None);
    }
}
