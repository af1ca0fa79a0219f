//! Agent mode inside the embedded widget: on a page carrying `widget.js`, a team member
//! signs in from the widget's menu (or `NexusFlow.agentMode()`), and the same corner of the
//! page becomes their desk: the live inbox, a conversation with the visitor's page, take
//! over, reply, note, hand back, resolve and teach, drafts. The loader fetches this bundle
//! only when agent mode is entered, and hides the visitor panel while it is on screen: the
//! two never share a panel.
//!
//! The session token is kept in `localStorage` under the site's key
//! ([`token_key`]), so that it follows the agent from page to page of the site (the loader
//! enters agent mode by itself when it finds it); signing out removes it and gives the
//! corner back to the visitor widget. The inbox, conversation and connection are the
//! `/agent` app's own ([`super::App`], [`super::view::Conversation`]).

use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use nexus_shared::ConversationState;
use wasm_bindgen::JsValue;

use super::App;
use super::model::{Tab, reason_text, state_text};
use super::net;
use super::view::{Conversation, LoadMore};
use crate::browser;

/// The `localStorage` key of the agent-mode token on `site` (`widget/loader.js` reads it).
pub fn token_key(site: &str) -> String {
    format!("nexus-flow:{site}:agent-mode")
}

/// Mounts agent mode into `root` (the loader's element next to the visitor widget).
/// `open`: show the panel at once (entered by the agent) rather than the launcher only
/// (entered again on another page of the site).
pub fn mount(root: web_sys::HtmlElement, site: String, server: String, open: bool, left: bool) {
    let app = App::new(site, server);
    let host: web_sys::EventTarget = root.clone().into();
    let view_app = app.clone();
    let saved = browser::load(&token_key(&app.site));
    // Mounting also sets up the executor that `spawn_local` needs.
    leptos::mount::mount_to(root, move || {
        view! { <Embedded app=view_app host=host open=open left=left /> }
    })
    .forget();
    if let Some(token) = saved {
        app.start(token);
    }
}

/// Leaves agent mode: the loader shows the visitor widget again.
fn leave(host: &web_sys::EventTarget) {
    browser::emit(host, "visitor-mode", None);
}

#[component]
fn Embedded(app: App, host: web_sys::EventTarget, open: bool, left: bool) -> impl IntoView {
    let open = RwSignal::new(open);
    let desk = app.desk;
    let logged_in = app.logged_in;
    // The token follows the session: kept once signed in, removed when it ends (signing out,
    // or the server refusing it).
    {
        let site = app.site.clone();
        Effect::new(move |was: Option<bool>| {
            let now = logged_in.get();
            if now {
                if let Some(token) = net::saved_token(&site) {
                    browser::store(&token_key(&site), &token);
                }
            } else if was == Some(true) {
                browser::forget(&token_key(&site));
            }
            now
        });
    }
    let waiting = Memo::new(move |_| desk.with(|d| d.count(Tab::Waiting)));
    let me = move || desk.with(|d| d.me.as_ref().map(|a| a.name.clone()).unwrap_or_default());
    let sign_out = {
        let (app, host) = (app.clone(), host.clone());
        move |_| {
            app.logged_out(None);
            browser::forget(&token_key(&app.site));
            leave(&host);
        }
    };
    let status = app.status;
    let body = {
        let (app, host) = (app.clone(), host.clone());
        move || {
            if logged_in.get() {
                view! { <Inbox app=app.clone() /> }.into_any()
            } else {
                view! { <SignIn app=app.clone() host=host.clone() /> }.into_any()
            }
        }
    };
    view! {
        <div class="na-embed" class:na-embed-left=left>
            <section class="na-embed-panel" data-testid="agent-panel" aria-label="Team" hidden=move || !open.get()>
                <header class="na-embed-top">
                    <strong>"Team"</strong>
                    <span class="na-me" data-testid="agent-name">{me}</span>
                    <span class="na-status" data-testid="agent-connection" data-status=move || status.get().code() hidden=move || !logged_in.get()>
                        {move || status.get().text()}
                    </span>
                    <button class="na-plain" data-testid="agent-sign-out" hidden=move || !logged_in.get() on:click=sign_out>
                        "Sign out"
                    </button>
                    <button class="na-plain" aria-label="Minimise" on:click=move |_| open.set(false)>"–"</button>
                </header>
                {body}
            </section>
            <button
                class="na-embed-launcher"
                data-testid="agent-launcher"
                aria-label="Team inbox"
                aria-expanded=move || open.get().to_string()
                on:click=move |_| open.update(|o| *o = !*o)
            >
                "Team"
                <span class="na-unread" data-testid="agent-waiting-badge" hidden=move || waiting.get() == 0>
                    {move || waiting.get()}
                </span>
            </button>
            <p class="na-embed-news" role="status" data-testid="agent-news" hidden=move || open.get() || waiting.get() == 0>
                {move || match waiting.get() {
                    1 => "1 conversation waiting for a person".to_owned(),
                    n => format!("{n} conversations waiting for a person"),
                }}
            </p>
        </div>
    }
}

/// The sign-in form: the site is the page's own, so only email and password.
#[component]
fn SignIn(app: App, host: web_sys::EventTarget) -> impl IntoView {
    let email: NodeRef<html::Input> = NodeRef::new();
    let password: NodeRef<html::Input> = NodeRef::new();
    let error = RwSignal::new(app.login_note.get_untracked());
    let busy = RwSignal::new(false);
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let value =
            |r: NodeRef<html::Input>| r.get_untracked().map(|e| e.value()).unwrap_or_default();
        let (email, password) = (value(email), value(password));
        if email.trim().is_empty() || password.is_empty() {
            error.set(Some("Please enter your email and password.".into()));
            return;
        }
        net::ask_permission();
        busy.set(true);
        error.set(None);
        let app = app.clone();
        leptos::task::spawn_local(async move {
            match net::login(&app.server, &app.site, email.trim(), &password).await {
                Ok(login) => app.start(login.token),
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="na-login na-embed-login" data-testid="agent-login" on:submit=submit>
            <h1>"Team sign-in"</h1>
            <label>
                "Email"
                <input type="email" data-testid="agent-email" node_ref=email autocomplete="username" />
            </label>
            <label>
                "Password"
                <input type="password" data-testid="agent-password" node_ref=password autocomplete="current-password" />
            </label>
            <p class="na-error" role="alert" data-testid="login-error" hidden=move || error.with(Option::is_none)>
                {move || error.get().unwrap_or_default()}
            </p>
            <button type="submit" data-testid="agent-submit" disabled=move || busy.get()>
                {move || if busy.get() { "Signing in…" } else { "Sign in" }}
            </button>
            <button type="button" class="na-plain" data-testid="agent-cancel" on:click=move |_| leave(&host)>
                "Back to the chat"
            </button>
        </form>
    }
}

/// The inbox tabs and list; a conversation opened from it replaces the list until "Inbox".
#[component]
fn Inbox(app: App) -> impl IntoView {
    let desk = app.desk;
    let tab = RwSignal::new(Tab::Waiting);
    let viewing = RwSignal::new(false);
    let tabs = [Tab::Waiting, Tab::Live, Tab::Mine]
        .into_iter()
        .map(|t| {
            let count = move || desk.with(|d| d.count(t));
            view! {
                <button
                    class="na-tab"
                    role="tab"
                    data-testid=format!("tab-{}", t.code())
                    aria-selected=move || (tab.get() == t).to_string()
                    on:click=move |_| tab.set(t)
                >
                    {t.label()}
                    " "
                    <span class="na-count">{count}</span>
                </button>
            }
        })
        .collect_view();
    let items = move || desk.with(|d| d.tab(tab.get()));
    let open_app = app.clone();
    let more_app = app.clone();
    view! {
        <div class="na-embed-inbox" hidden=move || viewing.get()>
            <div class="na-tabs" role="tablist">{tabs}</div>
            <ul class="na-inbox" data-testid="inbox">
                <For
                    each=items
                    key=|s| (s.id, s.state, s.last_seq, s.updated_at)
                    children=move |s| {
                        let app = open_app.clone();
                        let id = s.id;
                        let sub = match (s.state, &s.handoff_reason) {
                            (ConversationState::Waiting, Some(reason)) => reason_text(reason),
                            (state, _) => state_text(state).to_owned(),
                        };
                        let page = s.visitor.page_url.clone().unwrap_or_default();
                        let preview = if s.preview.is_empty() { "(no messages yet)".to_owned() } else { s.preview.clone() };
                        view! {
                            <li>
                                <button
                                    class="na-item"
                                    data-testid="inbox-item"
                                    data-state=s.state.as_str()
                                    on:click=move |_| {
                                        app.open(id);
                                        viewing.set(true);
                                    }
                                >
                                    <span class="na-preview">{preview}</span>
                                    <span class="na-sub">{sub}</span>
                                    <span class="na-sub na-page">{page}</span>
                                </button>
                            </li>
                        }
                    }
                />
            </ul>
            <p class="na-empty" hidden=move || !items().is_empty()>"Nothing here right now."</p>
            <LoadMore app=more_app tab=tab />
        </div>
        <div class="na-embed-conversation" hidden=move || !viewing.get()>
            <button class="na-plain" data-testid="agent-back" on:click=move |_| viewing.set(false)>
                "← Inbox"
            </button>
            <Conversation app=app />
        </div>
    }
}

/// Reads the loader's `{site, server, open?, position?}`.
pub fn config(config: &JsValue) -> (String, String, bool, bool) {
    let site = crate::wire::string(config, "site").unwrap_or_else(|| "demo".to_owned());
    let server = crate::wire::string(config, "server").unwrap_or_default();
    let open = js_sys::Reflect::get(config, &"open".into())
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let left = crate::wire::string(config, "position").as_deref() == Some("left");
    (site, server, open, left)
}
