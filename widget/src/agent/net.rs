//! The agent app's links to the outside: the login request, the session token in
//! `sessionStorage`, the WebSocket (reconnecting with the visitor widget's backoff), and the
//! desktop notification and sound of a new escalation.

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::future::{self, Either};
use futures_util::{SinkExt, StreamExt};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message as WsMessage, State};
use gloo_timers::future::TimeoutFuture;
use js_sys::Reflect;
use leptos::prelude::*;
use nexus_shared::{Auth, ClientFrame, ErrorCode, Hello, PROTOCOL_VERSION, ServerFrame};
use wasm_bindgen::JsValue;

use super::App;
use super::wire;
use crate::browser;
use crate::config::ws_url;
use crate::link::{Status, backoff_ms};
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

const TICK_MS: u32 = 5_000;
const PING_EVERY_MS: f64 = 25_000.0;
const DEAD_AFTER_MS: f64 = 70_000.0;
const CONNECT_TIMEOUT_MS: f64 = 15_000.0;

/// Runs the agent's connection until the app drops its sender (log out) or the server
/// refuses the session.
pub async fn run(app: App, token: String, mut rx: UnboundedReceiver<ClientFrame>) {
    let mut attempt = 0;
    let mut early: Vec<ClientFrame> = Vec::new();
    loop {
        app.status.set(Status::Connecting);
        match session(&app, &token, &mut rx, &mut early).await {
            Some(true) => attempt = 0,
            Some(false) => {}
            None => return,
        }
        app.status.set(Status::Offline);
        TimeoutFuture::new(backoff_ms(attempt, browser::random_unit())).await;
        attempt += 1;
    }
}

enum Event {
    In(Option<WsMessage>),
    Out(Option<ClientFrame>),
    Tick,
}

/// One connection. `Some(welcomed)` when it dropped, `None` to stop for good.
async fn session(
    app: &App,
    token: &str,
    rx: &mut UnboundedReceiver<ClientFrame>,
    early: &mut Vec<ClientFrame>,
) -> Option<bool> {
    let Ok(mut ws) = WebSocket::open(&ws_url(&app.server)) else {
        return Some(false);
    };
    let started = browser::now() as f64;
    while matches!(ws.state(), State::Connecting) {
        if browser::now() as f64 - started > CONNECT_TIMEOUT_MS {
            return Some(false);
        }
        TimeoutFuture::new(50).await;
    }
    let mut out = vec![ClientFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        auth: Auth::Agent {
            session_token: token.to_owned(),
        },
    })];
    let mut welcomed = false;
    let (mut heard, mut sent) = (started, started);
    loop {
        for frame in std::mem::take(&mut out) {
            if let Some(text) = wire::encode(&frame) {
                if ws.send(WsMessage::Text(text)).await.is_err() {
                    return Some(welcomed);
                }
                sent = browser::now() as f64;
            }
        }
        let next = future::select(ws.next(), rx.next());
        let event = match future::select(next, TimeoutFuture::new(TICK_MS)).await {
            Either::Left((Either::Left((incoming, _)), _)) => {
                Event::In(incoming.and_then(Result::ok))
            }
            Either::Left((Either::Right((cmd, _)), _)) => Event::Out(cmd),
            Either::Right(_) => Event::Tick,
        };
        let now = browser::now() as f64;
        match event {
            Event::In(Some(WsMessage::Text(text))) => {
                heard = now;
                let Some(frame) = wire::parse(&text) else {
                    continue;
                };
                match frame {
                    ServerFrame::Welcome(_) if !welcomed => {
                        welcomed = true;
                        app.status.set(Status::Online);
                        // Follow the conversation on screen again, then what waited.
                        let open = app.desk.with_untracked(|d| d.open);
                        if let Some(conversation_id) = open {
                            out.push(ClientFrame::Watch { conversation_id });
                        }
                        let presence = app.desk.with_untracked(|d| d.presence);
                        if let Some(status) = presence {
                            out.push(ClientFrame::SetPresence { status });
                        }
                        out.append(early);
                    }
                    ServerFrame::Error(e) if !welcomed => {
                        if matches!(e.code, ErrorCode::Unauthorized | ErrorCode::Forbidden) {
                            app.logged_out(Some(
                                "Your session has ended. Please log in again.".to_owned(),
                            ));
                            return None;
                        }
                        return Some(false);
                    }
                    _ => {}
                }
                let mut news = None;
                app.desk.update(|d| news = d.apply(frame, browser::now()));
                if let Some(s) = news {
                    announce(&s.preview);
                }
            }
            Event::In(Some(WsMessage::Bytes(_))) => {}
            Event::In(None) => return Some(welcomed),
            Event::Out(Some(frame)) if welcomed => out.push(frame),
            Event::Out(Some(frame)) => early.push(frame),
            Event::Out(None) => {
                let _ = ws.close(None, None);
                return None;
            }
            Event::Tick => {
                let limit = if welcomed {
                    DEAD_AFTER_MS
                } else {
                    CONNECT_TIMEOUT_MS
                };
                if now - heard > limit {
                    return Some(welcomed);
                }
                if welcomed && now - sent > PING_EVERY_MS {
                    out.push(ClientFrame::Ping);
                }
            }
        }
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
