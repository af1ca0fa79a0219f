//! The agent app's links to the outside: the login request, the session token in
//! `sessionStorage`, the agent's side of the connection (its `hello`, and what it follows
//! again after a reconnect; the loop itself is [`crate::link`], shared with the visitor
//! widget), and the desktop notification and sound of a new escalation.

use futures_channel::mpsc::UnboundedReceiver;
use js_sys::Reflect;
use leptos::prelude::*;
use nexus_shared::{
    Auth, ClientFrame, ErrorBody, ErrorCode, Hello, PROTOCOL_VERSION, ServerFrame, Welcome,
};
use wasm_bindgen::JsValue;

use super::App;
use super::wire;
use crate::browser;
use crate::config::ws_url;
use crate::link::{self, End};
use crate::wire::{Obj, string};

/// A logged-in agent's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub token: String,
}

fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

fn token_key(site: &str) -> String {
    format!("nexus-flow:{site}:agent")
}

pub fn saved_token(site: &str) -> Option<String> {
    session_storage()?
        .get_item(&token_key(site))
        .ok()
        .flatten()
        .filter(|t| !t.is_empty())
}

pub fn save_token(site: &str, token: Option<&str>) {
    if let Some(s) = session_storage() {
        let _ = match token {
            Some(t) => s.set_item(&token_key(site), t),
            None => s.remove_item(&token_key(site)),
        };
    }
}

/// `POST /api/v1/auth/login`. The error is in plain words.
pub async fn login(server: &str, site: &str, email: &str, password: &str) -> Result<Login, String> {
    let body = Obj::new()
        .str("site_key", site)
        .str("email", email)
        .str("password", password)
        .done();
    let unreachable = || "Could not reach the server. Check your connection and retry.".to_owned();
    let response = gloo_net::http::Request::post(&format!("{server}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(body)
        .map_err(|_| unreachable())?
        .send()
        .await
        .map_err(|_| unreachable())?;
    let text = response.text().await.map_err(|_| unreachable())?;
    let json = js_sys::JSON::parse(&text).unwrap_or(JsValue::NULL);
    if response.ok() {
        return string(&json, "token")
            .map(|token| Login { token })
            .ok_or_else(unreachable);
    }
    let code = string(&json, "code").unwrap_or_default();
    Err(match crate::wire::error_code(&code) {
        ErrorCode::InvalidCredentials => "Wrong email or password.".to_owned(),
        ErrorCode::LoginThrottled => {
            "Too many failed attempts. Wait 15 minutes, then try again.".to_owned()
        }
        ErrorCode::Validation => "Please fill in the site key, email and password.".to_owned(),
        _ => string(&json, "message").unwrap_or_else(unreachable),
    })
}

/// Runs the agent's connection until the app drops its sender (log out) or the server
/// refuses the session.
pub async fn run(app: App, token: String, rx: UnboundedReceiver<ClientFrame>) {
    let status = app.status;
    link::run(Agent { app, token }, status, rx, Vec::new()).await;
}

/// The agent's side of the connection: commands are frames, sent as they are once welcomed.
struct Agent {
    app: App,
    token: String,
}

impl link::Peer for Agent {
    type Command = ClientFrame;

    fn url(&self) -> String {
        ws_url(&self.app.server)
    }

    fn parse(text: &str) -> Option<ServerFrame> {
        wire::parse(text)
    }

    fn encode(frame: &ClientFrame) -> Option<String> {
        wire::encode(frame)
    }

    fn hello(&mut self) -> ClientFrame {
        ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            auth: Auth::Agent {
                session_token: self.token.clone(),
            },
        })
    }

    /// Follows the conversation on screen again (what waited follows, from the loop).
    fn welcome(&mut self, welcome: Welcome, out: &mut Vec<ClientFrame>) {
        let desk = self.app.desk;
        if let Some(conversation_id) = desk.with_untracked(|d| d.open) {
            out.push(ClientFrame::Watch { conversation_id });
        }
        if let Some(status) = desk.with_untracked(|d| d.presence) {
            out.push(ClientFrame::SetPresence { status });
        }
        out.extend(desk.with_untracked(|d| d.inbox_requests()));
        self.frame(ServerFrame::Welcome(welcome), out);
    }

    fn refused(&mut self, error: ErrorBody) -> End {
        if matches!(error.code, ErrorCode::Unauthorized | ErrorCode::Forbidden) {
            self.app.logged_out(Some(
                "Your session has ended. Please log in again.".to_owned(),
            ));
            return End::Stop;
        }
        End::Dropped
    }

    fn frame(&mut self, frame: ServerFrame, _out: &mut Vec<ClientFrame>) {
        let mut news = None;
        self.app
            .desk
            .update(|d| news = d.apply(frame, browser::now()));
        if let Some(s) = news {
            announce(&s.preview);
        }
    }

    fn command(&mut self, frame: ClientFrame, out: &mut Vec<ClientFrame>) {
        out.push(frame);
    }
}

/// Whether this browser has the Notification API at all (some headless and embedded ones
/// do not; calling it there would throw).
fn has_notifications() -> bool {
    web_sys::window().is_some_and(|w| Reflect::has(&w, &"Notification".into()).unwrap_or(false))
}

/// Whether the browser has not been asked yet whether this page may notify.
pub fn permission_pending() -> bool {
    has_notifications()
        && web_sys::Notification::permission() == web_sys::NotificationPermission::Default
}

/// Asks for permission to show desktop notifications (call from a click).
pub fn ask_permission() {
    if has_notifications()
        && web_sys::Notification::permission() == web_sys::NotificationPermission::Default
    {
        let _ = web_sys::Notification::request_permission();
    }
}

/// A short beep and, with the browser's permission, a desktop notification.
pub fn announce(preview: &str) {
    if let Ok(ctx) = web_sys::AudioContext::new()
        && let Ok(osc) = ctx.create_oscillator()
    {
        osc.frequency().set_value(880.0);
        let _ = osc.connect_with_audio_node(&ctx.destination());
        let _ = osc.start();
        let _ = osc.stop_with_when(ctx.current_time() + 0.15);
    }
    if has_notifications()
        && web_sys::Notification::permission() == web_sys::NotificationPermission::Granted
    {
        let options = web_sys::NotificationOptions::new();
        options.set_body(preview);
        let _ = web_sys::Notification::new_with_options("New conversation waiting", &options);
    }
}
