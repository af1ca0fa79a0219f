//! Agent mode: the `/agent` page's app (login, inbox, conversation, takeover, reply, notes,
//! hand back, resolve and teach, draft review, presence). Compiled only with the `agent`
//! feature, into a bundle of its own, so that the visitor widget does not carry it.
//!
//! * [`model`]: the desk as plain data (unit-tested natively).
//! * [`wire`]: the agent-only frames.
//! * [`net`]: login, the agent's side of the connection, notifications.
//! * [`view`]: the components.
//! * [`data`]: the console's REST payloads and form checks, as plain data.
//! * [`api`]: the console's REST calls.
//! * [`charts`]: the analytics page's SVG charts.
//! * [`sources`]: the Articles page (knowledge sources).
//! * [`playground`]: the Playground page (try questions, fix in place, replay).
//! * [`gaps`]: the Knowledge gaps page (questions that went to people, drafted into entries).
//! * [`embedded`]: agent mode inside the embedded widget, on the site's own pages.

pub mod api;
pub mod charts;
pub mod console;
pub mod data;
pub mod embedded;
pub mod gaps;
pub mod model;
pub mod net;
pub mod playground;
pub mod sources;
pub mod view;
pub mod wire;

use futures_channel::mpsc::UnboundedSender;
use leptos::prelude::*;
use nexus_shared::ClientFrame;

use crate::link::Status;
use model::Desk;

/// The app's state and its way to the socket.
#[derive(Clone)]
pub struct App {
    pub site: String,
    pub server: String,
    pub desk: RwSignal<Desk>,
    pub status: RwSignal<Status>,
    pub logged_in: RwSignal<bool>,
    /// Why the agent is looking at the login form again.
    pub login_note: RwSignal<Option<String>>,
    tx: StoredValue<Option<UnboundedSender<ClientFrame>>>,
}

impl App {
    pub fn new(site: String, server: String) -> Self {
        Self {
            site,
            server,
            desk: RwSignal::new(Desk::default()),
            status: RwSignal::new(Status::Connecting),
            logged_in: RwSignal::new(false),
            login_note: RwSignal::new(None),
            tx: StoredValue::new(None),
        }
    }

    /// Starts the session with `token` (from the login form or `sessionStorage`).
    pub fn start(&self, token: String) {
        net::save_token(&self.site, Some(&token));
        let (tx, rx) = futures_channel::mpsc::unbounded();
        self.tx.set_value(Some(tx));
        self.desk.set(Desk::default());
        self.login_note.set(None);
        self.logged_in.set(true);
        leptos::task::spawn_local(net::run(self.clone(), token, rx));
    }

    /// Ends the session: the connection closes once its sender is gone.
    pub fn logged_out(&self, note: Option<String>) {
        net::save_token(&self.site, None);
        self.tx.set_value(None);
        self.logged_in.set(false);
        self.login_note.set(note);
    }

    pub fn send(&self, frame: ClientFrame) {
        self.tx.with_value(|tx| {
            if let Some(tx) = tx {
                let _ = tx.unbounded_send(frame);
            }
        });
    }

    /// Opens a conversation on screen.
    pub fn open(&self, id: uuid::Uuid) {
        let mut frames = Vec::new();
        self.desk.update(|d| frames = d.open(id));
        for f in frames {
            self.send(f);
        }
    }
}

/// Mounts the agent app into `root`.
pub fn mount(root: web_sys::HtmlElement, site: String, server: String) {
    let app = App::new(site, server);
    let view_app = app.clone();
    // Mounting also sets up the executor that `spawn_local` needs.
    leptos::mount::mount_to(root, move || view! { <view::AgentApp app=view_app /> }).forget();
    if let Some(token) = net::saved_token(&app.site) {
        app.start(token);
    }
}
