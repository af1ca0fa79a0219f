//! The one connection loop both apps run, the visitor widget ([`crate::connection`]) and the
//! agent app (`agent::net`): open the WebSocket, say `hello`, wait for `welcome`, then frames
//! both ways until the peer is lost, and again after a backoff.
//!
//! The loop owns what the two apps share:
//!
//! * the socket itself (`Socket`, closed when a connection ends);
//! * the connection [`Status`] (connecting, online, offline; `unavailable` is the app's call);
//! * the timings: a connection attempt (socket open and `welcome`) is given up after 15 s;
//!   once welcomed, `ping` goes out when nothing was sent for 25 s and the peer is called dead
//!   when nothing was heard for 70 s, both checked every 5 s;
//! * reconnecting with exponential backoff and jitter (`backoff_ms`), back to the first
//!   step once a connection got as far as `welcome`;
//! * the app's commands that arrive before `welcome`: held, across reconnects, and handed to
//!   the app in order right after the next `welcome`.
//!
//! What a frame or a command means is the app's, through [`Peer`]: the `hello` it sends, what
//! `welcome` and a refusal do, what later frames change, what a command writes.

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::StreamExt;
use futures_util::future::{self, Either};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use nexus_shared::{ClientFrame, ErrorBody, ServerFrame, Welcome};

use crate::browser;
use crate::i18n;

/// Give up on a connection attempt (socket open and `welcome`) after this long.
const CONNECT_TIMEOUT_MS: f64 = 15_000.0;
/// Send `ping` when nothing was sent for this long…
const PING_EVERY_MS: f64 = 25_000.0;
/// …and call the connection dead when nothing was heard for this long.
const DEAD_AFTER_MS: f64 = 70_000.0;
/// How often the connection checks the two above.
const TICK_MS: u32 = 5_000;
/// Backoff: first retry after 0.25–0.5 s, doubling up to 15–30 s.
const BACKOFF_BASE_MS: u32 = 500;
const BACKOFF_MAX_MS: u32 = 30_000;

/// The connection indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Online,
    /// Lost; a reconnect is scheduled.
    Offline,
    /// The server refused this site or this widget version: no point retrying.
    Unavailable,
}

impl Status {
    pub fn text(self) -> &'static str {
        match self {
            Self::Connecting => i18n::t().status_connecting,
            Self::Online => i18n::t().status_online,
            Self::Offline => i18n::t().status_offline,
            Self::Unavailable => i18n::t().status_unavailable,
        }
    }

    /// Stable value for the `data-status` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Unavailable => "unavailable",
        }
    }
}

/// How a connection ends, as the app decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Lost or refused for now: connect again after the backoff.
    Dropped,
    /// Connect again at once, from the first backoff step (the visitor's `identify`).
    Restart,
    /// Stop for good: [`run`] returns.
    Stop,
}

/// One app's side of the connection. The loop calls it; everything here is synchronous, and
/// frames to send are pushed on `out`, which the loop writes next.
pub trait Peer {
    /// What the app asks of the connection, on the loop's channel.
    type Command;

    /// The WebSocket URL, read for every connection.
    fn url(&self) -> String;

    /// Reads a text frame; `None` skips it (a frame this app does not know).
    fn parse(text: &str) -> Option<ServerFrame>;

    /// Writes a frame; `None` skips it.
    fn encode(frame: &ClientFrame) -> Option<String>;

    /// The `hello` of a new connection, asked once its socket is open: also where the app
    /// starts the connection's own bookkeeping.
    fn hello(&mut self) -> ClientFrame;

    /// The server said `welcome` (the status is already online). The commands held until
    /// now follow, through [`Peer::command`].
    fn welcome(&mut self, welcome: Welcome, out: &mut Vec<ClientFrame>);

    /// The server answered `hello` with an error.
    fn refused(&mut self, error: ErrorBody) -> End;

    /// A frame after `welcome`. (Before it, the server sends nothing else.)
    fn frame(&mut self, frame: ServerFrame, out: &mut Vec<ClientFrame>);

    /// A command, once welcomed.
    fn command(&mut self, cmd: Self::Command, out: &mut Vec<ClientFrame>);

    /// Sees every command first, welcomed or not: `Err` ends the connection at once (and the
    /// command is gone); `Ok` gives it back to be held or handled.
    fn screen(&mut self, cmd: Self::Command) -> Result<Self::Command, End> {
        Ok(cmd)
    }

    /// The loop woke up (a frame, a command or the tick) at `now`, before it handles why:
    /// for the app's own timers.
    fn wake(&mut self, _now: f64) {}
}

/// Runs the connection until the app says [`End::Stop`] or drops its command sender.
/// `early` are commands already waiting for the first `welcome`.
pub async fn run<P: Peer>(
    mut peer: P,
    status: RwSignal<Status>,
    mut rx: UnboundedReceiver<P::Command>,
    mut early: Vec<P::Command>,
) {
    let mut attempt = 0;
    loop {
        status.set(Status::Connecting);
        let (end, welcomed) = connect(&mut peer, status, &mut rx, &mut early).await;
        match end {
            End::Stop => return,
            End::Restart => {
                attempt = 0;
                continue;
            }
            End::Dropped => {
                if welcomed {
                    attempt = 0;
                }
            }
        }
        status.set(Status::Offline);
        TimeoutFuture::new(backoff_ms(attempt, browser::random_unit())).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Milliseconds to wait before reconnect attempt number `attempt` (0-based): exponential,
/// capped, with "equal jitter" (half fixed, half random) so that a server restart is not
/// met by every client at the same instant. `random` is in `[0, 1)`.
fn backoff_ms(attempt: u32, random: f64) -> u32 {
    let cap = BACKOFF_BASE_MS
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX_MS);
    let half = cap / 2;
    half + (f64::from(half) * random.clamp(0.0, 1.0)) as u32
}

enum Event<C> {
    /// A text frame, or `None` when the socket closed or failed.
    In(Option<String>),
    Cmd(Option<C>),
    Tick,
}

/// One connection, from opening the socket to losing it: how it ended, and whether it got
/// as far as `welcome`.
async fn connect<P: Peer>(
    peer: &mut P,
    status: RwSignal<Status>,
    rx: &mut UnboundedReceiver<P::Command>,
    early: &mut Vec<P::Command>,
) -> (End, bool) {
    let dropped = (End::Dropped, false);
    let Some(mut ws) = Socket::open(&peer.url()) else {
        return dropped;
    };
    // Writing waits for the socket to open; wait here instead, bounded, so that a server that
    // never answers cannot hang us.
    let started = browser::now() as f64;
    while ws.state() == Socket::CONNECTING {
        if browser::now() as f64 - started > CONNECT_TIMEOUT_MS {
            return dropped;
        }
        TimeoutFuture::new(50).await;
    }
    if ws.state() != Socket::OPEN {
        return dropped;
    }

    let mut out = vec![peer.hello()];
    let mut welcomed = false;
    let (mut last_heard, mut last_sent) = (started, started);
    loop {
        for frame in std::mem::take(&mut out) {
            if let Some(text) = P::encode(&frame) {
                if !ws.send(&text) {
                    return (End::Dropped, welcomed);
                }
                last_sent = browser::now() as f64;
            }
        }
        let next = future::select(ws.incoming.next(), rx.next());
        let event = match future::select(next, TimeoutFuture::new(TICK_MS)).await {
            Either::Left((Either::Left((incoming, _)), _)) => Event::In(incoming.flatten()),
            Either::Left((Either::Right((cmd, _)), _)) => Event::Cmd(cmd),
            Either::Right(_) => Event::Tick,
        };
        let now = browser::now() as f64;
        peer.wake(now);
        match event {
            Event::In(Some(text)) => {
                last_heard = now;
                match P::parse(&text) {
                    None => {}
                    Some(frame) if welcomed => peer.frame(frame, &mut out),
                    Some(ServerFrame::Welcome(welcome)) => {
                        welcomed = true;
                        status.set(Status::Online);
                        peer.welcome(welcome, &mut out);
                        for cmd in std::mem::take(early) {
                            peer.command(cmd, &mut out);
                        }
                    }
                    Some(ServerFrame::Error(error)) => return (peer.refused(error), false),
                    Some(_) => {}
                }
            }
            Event::In(None) => return (End::Dropped, welcomed),
            Event::Cmd(Some(cmd)) => match peer.screen(cmd) {
                Err(end) => return (end, welcomed),
                Ok(cmd) if welcomed => peer.command(cmd, &mut out),
                Ok(cmd) => early.push(cmd),
            },
            Event::Cmd(None) => return (End::Stop, welcomed),
            Event::Tick => {
                let waited_too_long = if welcomed {
                    now - last_heard > DEAD_AFTER_MS
                } else {
                    now - started > CONNECT_TIMEOUT_MS
                };
                if waited_too_long {
                    return (End::Dropped, welcomed);
                }
                if welcomed && now - last_sent > PING_EVERY_MS {
                    out.push(ClientFrame::Ping);
                }
            }
        }
    }
}

/// A browser `WebSocket` whose text frames arrive on a channel (`None` once it closed or
/// failed). Closed when dropped. Written against `web_sys` directly: a general-purpose
/// wrapper (binary frames, `Sink`/`Stream` impls, error types) costs the bundle kilobytes.
struct Socket {
    ws: web_sys::WebSocket,
    incoming: UnboundedReceiver<Option<String>>,
    _handlers: [wasm_bindgen::closure::Closure<dyn FnMut(wasm_bindgen::JsValue)>; 2],
}

impl Socket {
    const CONNECTING: u16 = 0;
    const OPEN: u16 = 1;

    fn open(url: &str) -> Option<Self> {
        use wasm_bindgen::JsCast;
        use wasm_bindgen::closure::Closure;

        let ws = web_sys::WebSocket::new(url).ok()?;
        let (tx, incoming) = futures_channel::mpsc::unbounded();
        let on_message = {
            let tx = tx.clone();
            Closure::<dyn FnMut(wasm_bindgen::JsValue)>::new(move |event: wasm_bindgen::JsValue| {
                if let Some(text) = js_sys::Reflect::get(&event, &"data".into())
                    .ok()
                    .and_then(|d| d.as_string())
                {
                    let _ = tx.unbounded_send(Some(text));
                }
            })
        };
        let on_end = Closure::<dyn FnMut(wasm_bindgen::JsValue)>::new(move |_| {
            let _ = tx.unbounded_send(None);
        });
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_end.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_end.as_ref().unchecked_ref()));
        Some(Self {
            ws,
            incoming,
            _handlers: [on_message, on_end],
        })
    }

    fn state(&self) -> u16 {
        self.ws.ready_state()
    }

    /// Queues a text frame; false when the socket is not open.
    fn send(&self, text: &str) -> bool {
        self.state() == Self::OPEN && self.ws.send_with_str(text).is_ok()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        assert_eq!(backoff_ms(0, 0.0), 250);
        assert_eq!(backoff_ms(0, 0.999_999), 499);
        assert_eq!(backoff_ms(3, 0.0), 2_000);
        assert!((2_000..4_000).contains(&backoff_ms(3, 0.5)));
        assert_eq!(backoff_ms(10, 0.0), 15_000);
        assert!(backoff_ms(u32::MAX, 1.0) <= BACKOFF_MAX_MS);
    }
}
