//! The agent app's components. Message text is only ever rendered as text nodes, never as
//! HTML. The `data-testid` attributes are a contract with the end-to-end tests.

use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use nexus_shared::{Author, ClientFrame, ConversationState, DraftDecision, Presence, Teach};
use uuid::Uuid;

use super::App;
use super::api;
use super::charts::AnalyticsPage;
use super::console::{KnowledgePage, Page, SettingsPage, VisitorPrivacy};
use super::data::{Canned, HandoffSummary, canned, canned_matches, handoff_summary};
use super::model::{Tab, reason_text, state_text, waited};
use super::net;
use super::sources::SourcesPage;
use crate::browser;

/// The address's fragment that names the conversation on screen, before its id.
const HASH: &str = "#conversation/";

#[component]
pub fn AgentApp(app: App) -> impl IntoView {
    let logged_in = app.logged_in;
    move || {
        if logged_in.get() {
            view! { <Desk app=app.clone() /> }.into_any()
        } else {
            view! { <Login app=app.clone() /> }.into_any()
        }
    }
}

#[component]
fn Login(app: App) -> impl IntoView {
    let site: NodeRef<html::Input> = NodeRef::new();
    let email: NodeRef<html::Input> = NodeRef::new();
    let password: NodeRef<html::Input> = NodeRef::new();
    let error = RwSignal::new(app.login_note.get_untracked());
    let busy = RwSignal::new(false);
    let default_site = app.site.clone();
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let value =
            |r: NodeRef<html::Input>| r.get_untracked().map(|e| e.value()).unwrap_or_default();
        let (site_key, email, password) = (value(site), value(email), value(password));
        if email.trim().is_empty() || password.is_empty() {
            error.set(Some("Please enter your email and password.".into()));
            return;
        }
        net::ask_permission();
        busy.set(true);
        error.set(None);
        let app = app.clone();
        leptos::task::spawn_local(async move {
            match net::login(&app.server, site_key.trim(), email.trim(), &password).await {
                Ok(login) => app.start(login.token),
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <main class="na-login-page">
            <form class="na-login" data-testid="agent-login" on:submit=submit>
                <h1>"Nexus Flow — agent login"</h1>
                <label>
                    "Site key"
                    <input data-testid="agent-site" node_ref=site value=default_site autocomplete="off" />
                </label>
                <label>
                    "Email"
                    <input type="email" data-testid="agent-email" node_ref=email autocomplete="username" />
                </label>
                <label>
                    "Password"
                    <input
                        type="password"
                        data-testid="agent-password"
                        node_ref=password
                        autocomplete="current-password"
                    />
                </label>
                <p class="na-error" role="alert" data-testid="login-error" hidden=move || error.with(Option::is_none)>
                    {move || error.get().unwrap_or_default()}
                </p>
                <button type="submit" data-testid="agent-submit" disabled=move || busy.get()>
                    {move || if busy.get() { "Logging in…" } else { "Log in" }}
                </button>
            </form>
        </main>
    }
}

#[component]
fn Desk(app: App) -> impl IntoView {
    let desk = app.desk;
    let status = app.status;
    let tab = RwSignal::new(Tab::Waiting);
    let now = RwSignal::new(browser::now());
    // Presence follows activity: no input for a while sets the agent away, input brings
    // them back (see `Desk::idle`).
    let last_input = StoredValue::new(browser::now());
    let idle_check = {
        let app = app.clone();
        move || {
            let idle = browser::now() - last_input.get_value();
            let mut change = None;
            desk.update(|d| change = d.idle(idle));
            if let Some(status) = change {
                app.send(ClientFrame::SetPresence { status });
            }
        }
    };
    let ticker = {
        let idle_check = idle_check.clone();
        set_interval_with_handle(
            move || {
                now.set(browser::now());
                idle_check();
            },
            std::time::Duration::from_secs(15),
        )
    };
    let listeners: Vec<_> = ["keydown", "pointerdown", "pointermove", "wheel"]
        .into_iter()
        .map(|kind| {
            let idle_check = idle_check.clone();
            window_event_listener_untyped(kind, move |_| {
                last_input.set_value(browser::now());
                if desk.with_untracked(|d| d.auto_away) {
                    idle_check();
                }
            })
        })
        .collect();
    let page = RwSignal::new(Page::Inbox);
    // `#conversation/<id>` in the address (a link, a bookmark) opens that conversation, now
    // and whenever the address changes; opening one from the inbox writes it there.
    let from_hash = {
        let app = app.clone();
        move || {
            let hash = window().location().hash().unwrap_or_default();
            if let Some(id) = hash.strip_prefix(HASH).and_then(crate::wire::parse_uuid) {
                page.set(Page::Inbox);
                app.open(id);
            }
        }
    };
    from_hash();
    let hash_listener = window_event_listener_untyped("hashchange", move |_| from_hash());
    on_cleanup(move || {
        if let Ok(t) = ticker {
            t.clear();
        }
        for l in listeners {
            l.remove();
        }
        hash_listener.remove();
    });
    let owner = Memo::new(move |_| desk.with(|d| d.is_owner()));
    let ask = RwSignal::new(net::permission_pending());
    let me = move || desk.with(|d| d.me.as_ref().map(|a| a.name.clone()).unwrap_or_default());
    let presence = move || desk.with(|d| d.presence.unwrap_or(Presence::Online));
    let toggle = {
        let app = app.clone();
        move |_| {
            let status = if presence() == Presence::Online {
                Presence::Away
            } else {
                Presence::Online
            };
            desk.update(|d| d.choose_presence(status));
            app.send(ClientFrame::SetPresence { status });
        }
    };
    let logout = {
        let app = app.clone();
        move |_| app.logged_out(None)
    };
    let tabs = Tab::ALL
        .into_iter()
        .map(|t| {
            let count = move || desk.with(|d| d.count(t));
            let unread = move || desk.with(|d| d.tab_unread(t));
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
                    <span class="na-unread" data-testid="tab-unread" hidden=move || unread() == 0>
                        {unread}
                    </span>
                </button>
            }
        })
        .collect_view();
    let items = move || desk.with(|d| d.tab(tab.get()));
    let open_app = app.clone();
    let more_app = app.clone();
    let nav = move |p: Page, label: &'static str, testid: &'static str| {
        view! {
            <button
                class="na-nav-item"
                data-testid=testid
                aria-current=move || (page.get() == p).then_some("page")
                on:click=move |_| page.set(p)
            >
                {label}
            </button>
        }
    };
    let console_app = app.clone();
    let console = move || match page.get() {
        Page::Settings if owner.get() => {
            view! { <SettingsPage app=console_app.clone() /> }.into_any()
        }
        Page::Knowledge if owner.get() => {
            view! { <KnowledgePage app=console_app.clone() page=page /> }.into_any()
        }
        Page::Sources if owner.get() => {
            view! { <SourcesPage app=console_app.clone() /> }.into_any()
        }
        Page::Analytics if owner.get() => {
            view! { <AnalyticsPage app=console_app.clone() /> }.into_any()
        }
        Page::Playground if owner.get() => {
            use super::playground::{page, playground};
            page("playground", console_app.clone(), playground).into_any()
        }
        Page::Gaps if owner.get() => {
            use super::{gaps::gaps, playground::page};
            page("gaps", console_app.clone(), gaps).into_any()
        }
        _ => ().into_any(),
    };
    view! {
        <div class="na-desk">
            <header class="na-top">
                <strong class="na-brand">"Nexus Flow"</strong>
                <nav class="na-nav" aria-label="Sections">
                    {nav(Page::Inbox, "Inbox", "nav-inbox")}
                    {move || owner.get().then(|| view! {
                        {nav(Page::Settings, "Settings", "nav-settings")}
                        {nav(Page::Knowledge, "Knowledge base", "nav-knowledge")}
                        {nav(Page::Sources, "Articles", "nav-sources")}
                        {nav(Page::Analytics, "Analytics", "nav-analytics")}
                        {nav(Page::Playground, "Playground", "nav-playground")}
                        {nav(Page::Gaps, "Gaps", "nav-gaps")}
                    })}
                </nav>
                <button
                    class="na-plain-dark"
                    data-testid="enable-notifications"
                    hidden=move || !ask.get()
                    on:click=move |_| {
                        net::ask_permission();
                        ask.set(false);
                    }
                >
                    "Enable notifications"
                </button>
                <span class="na-me" data-testid="agent-name">{me}</span>
                <span class="na-status" data-testid="connection-status" data-status=move || status.get().code()>
                    {move || status.get().text()}
                </span>
                <button
                    class="na-presence"
                    data-testid="presence"
                    data-presence=move || if presence() == Presence::Online { "online" } else { "away" }
                    on:click=toggle
                >
                    {move || if presence() == Presence::Online { "● Online" } else { "○ Away" }}
                </button>
                <button class="na-logout" on:click=logout>"Log out"</button>
            </header>
            <div class="na-inbox-view" hidden=move || page.get() != Page::Inbox>
            <nav class="na-side">
                <div class="na-tabs" role="tablist">{tabs}</div>
                <ul class="na-inbox" data-testid="inbox">
                    <For
                        each=items
                        key=|s| (s.id, s.state, s.last_seq, s.updated_at)
                        children=move |s| {
                            let app = open_app.clone();
                            let id = s.id;
                            let unread = move || desk.with(|d| d.summary(id).map_or(0, |s| d.unread(s)));
                            let sub = move || {
                                let n = now.get();
                                desk.with(|d| {
                                    let Some(s) = d.summary(id) else { return String::new() };
                                    match (s.state, &s.handoff_reason, s.waiting_since) {
                                        (ConversationState::Waiting, reason, since) => format!(
                                            "{} · {}",
                                            reason.as_ref().map_or("Needs a person".into(), reason_text),
                                            waited(since.unwrap_or(s.updated_at), n)
                                        ),
                                        (ConversationState::Human, _, _) => format!(
                                            "with {}",
                                            s.assignee.as_ref().map_or("an agent", |a| a.name.as_str())
                                        ),
                                        (state, _, _) => state_text(state).to_owned(),
                                    }
                                })
                            };
                            let preview = if s.preview.is_empty() { "(no messages yet)".to_owned() } else { s.preview.clone() };
                            view! {
                                <li>
                                    <button
                                        class="na-item"
                                        data-testid="inbox-item"
                                        data-state=s.state.as_str()
                                        data-id=crate::wire::uuid_string(&id)
                                        class:na-active=move || desk.with(|d| d.open == Some(id))
                                        on:click=move |_| {
                                            let _ = window().location().set_hash(&format!("{HASH}{}", crate::wire::uuid_string(&id)));
                                            app.open(id);
                                        }
                                    >
                                        <span class="na-preview">{preview}</span>
                                        <span class="na-sub">{sub}</span>
                                        <span class="na-unread" hidden=move || unread() == 0>{unread}</span>
                                    </button>
                                </li>
                            }
                        }
                    />
                </ul>
                <p class="na-empty" hidden=move || !items().is_empty()>"Nothing here right now."</p>
                <LoadMore app=more_app tab=tab />
            </nav>
            <Conversation app=app />
            </div>
            {console}
        </div>
    }
}

/// "Load more" under an inbox list: the tab's next page, while the server has more.
#[component]
pub fn LoadMore(app: App, tab: RwSignal<Tab>) -> impl IntoView {
    let desk = app.desk;
    let more = move || desk.with(|d| d.has_more(tab.get()));
    view! {
        <button
            class="na-plain na-more"
            data-testid="inbox-more"
            hidden=move || !more()
            on:click=move |_| {
                if let Some(frame) = desk.with_untracked(|d| d.load_more(tab.get_untracked())) {
                    app.send(frame);
                }
            }
        >
            "Load more"
        </button>
    }
}

fn author_label(author: &Author, me: Option<Uuid>) -> String {
    match author {
        Author::Visitor => "Visitor".into(),
        Author::Ai => "AI".into(),
        Author::System => "System".into(),
        Author::Agent(a) if Some(a.id) == me => format!("{} (you)", a.name),
        Author::Agent(a) => a.name.clone(),
    }
}

#[component]
pub(crate) fn Conversation(app: App) -> impl IntoView {
    let desk = app.desk;
    let open = move || desk.with(|d| d.open);
    let state = move || desk.with(|d| d.state);
    let mine = move || desk.with(|d| d.is_mine());
    let frame_for = |make: fn(Uuid) -> ClientFrame| {
        let app = app.clone();
        move |_| {
            if let Some(id) = app.desk.with_untracked(|d| d.open) {
                app.send(make(id));
            }
        }
    };
    let privacy_app = app.clone();
    let take_over = frame_for(|conversation_id| ClientFrame::TakeOver { conversation_id });
    let hand_back = frame_for(|conversation_id| ClientFrame::HandBack { conversation_id });

    // The "teach the AI" form follows the conversation until the agent edits it.
    let teach_q = RwSignal::new(String::new());
    let teach_a = RwSignal::new(String::new());
    let teach_on = RwSignal::new(true);
    let last = Memo::new(move |_| desk.with(|d| (d.last_question(), d.last_reply())));
    Effect::new(move |_| {
        let (q, a) = last.get();
        teach_q.set(q);
        teach_a.set(a);
    });
    let resolve = {
        let app = app.clone();
        move |_| {
            let Some(conversation_id) = app.desk.with_untracked(|d| d.open) else {
                return;
            };
            let (question, answer) = (teach_q.get_untracked(), teach_a.get_untracked());
            let teach = (teach_on.get_untracked()
                && !question.trim().is_empty()
                && !answer.trim().is_empty())
            .then(|| Teach {
                question: question.trim().to_owned(),
                answer: answer.trim().to_owned(),
                entry_id: None,
            });
            app.send(ClientFrame::Resolve {
                conversation_id,
                teach,
            });
        }
    };

    let reply: NodeRef<html::Textarea> = NodeRef::new();
    let note: NodeRef<html::Textarea> = NodeRef::new();
    let post = move |input: NodeRef<html::Textarea>, app: &App, as_note: bool| {
        let (Some(el), Some(conversation_id)) =
            (input.get_untracked(), app.desk.with_untracked(|d| d.open))
        else {
            return;
        };
        let body = el.value();
        if body.trim().is_empty() {
            return;
        }
        let client_msg_id = browser::new_client_msg_id();
        app.send(if as_note {
            ClientFrame::Note {
                conversation_id,
                client_msg_id,
                body,
            }
        } else {
            ClientFrame::Send {
                conversation_id: Some(conversation_id),
                client_msg_id,
                body,
            }
        });
        el.set_value("");
    };
    let send_reply = {
        let app = app.clone();
        move |ev: SubmitEvent| {
            ev.prevent_default();
            post(reply, &app, false);
        }
    };
    let send_note = {
        let app = app.clone();
        move |ev: SubmitEvent| {
            ev.prevent_default();
            post(note, &app, true);
        }
    };

    let messages = move || desk.with(|d| d.messages.clone());
    let notes = move || {
        desk.with(|d| {
            d.notes
                .iter()
                .filter(|n| Some(n.conversation_id) == d.open)
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let drafts = move || {
        desk.with(|d| {
            d.drafts
                .iter()
                .filter(|x| Some(x.conversation_id) == d.open)
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let notice = move || desk.with(|d| d.notice.clone());
    let visitor = move || {
        desk.with(|d| {
            let s = d.open.and_then(|id| d.summary(id))?;
            let v = &s.visitor;
            let user = match (&v.name, &v.email) {
                (Some(n), Some(e)) => Some(format!("{n} <{e}>")),
                (n, e) => n.clone().or_else(|| e.clone()),
            };
            let parts: Vec<String> = [
                user.map(|u| format!("User: {u}")),
                v.page_url.clone().map(|p| format!("Page: {p}")),
                v.locale.clone().map(|l| format!("Locale: {l}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            Some(if parts.is_empty() {
                "Anonymous visitor".to_owned()
            } else {
                parts.join(" · ")
            })
        })
    };
    let draft_app = app.clone();

    // The handoff summary of a conversation that waits for or is with a person.
    let summary: RwSignal<Option<HandoffSummary>> = RwSignal::new(None);
    let summary_key = Memo::new(move |_| desk.with(|d| (d.open, d.state)));
    {
        let app = app.clone();
        Effect::new(move |_| {
            let (open, state) = summary_key.get();
            let Some(id) = open.filter(|_| {
                matches!(
                    state,
                    Some(ConversationState::Waiting | ConversationState::Human)
                )
            }) else {
                summary.set(None);
                return;
            };
            let app = app.clone();
            leptos::task::spawn_local(async move {
                let path = format!("/conversations/{}/summary", crate::wire::uuid_string(&id));
                let got = api::call(&app, "GET", &path, None)
                    .await
                    .ok()
                    .and_then(|v| handoff_summary(&v));
                if app.desk.with_untracked(|d| d.open) == Some(id) {
                    summary.set(got);
                }
            });
        });
    }
    let insert_suggested = move |_| {
        let text = summary.with_untracked(|s| s.as_ref().and_then(|s| s.suggested_reply.clone()));
        if let (Some(text), Some(el)) = (text, reply.get_untracked()) {
            el.set_value(&text);
            let _ = el.focus();
        }
    };

    // Canned responses: the picker opens with its button or with `/` in the composer.
    // The list is fetched each time the picker opens, so that an owner's edit or delete
    // shows without reopening the conversation.
    let canned_all: RwSignal<Vec<Canned>> = RwSignal::new(Vec::new());
    let picker: RwSignal<Option<String>> = RwSignal::new(None);
    {
        let app = app.clone();
        let picker_open = Memo::new(move |_| picker.with(Option::is_some));
        Effect::new(move |_| {
            if picker_open.get() {
                let app = app.clone();
                leptos::task::spawn_local(async move {
                    if let Ok(v) = api::call(&app, "GET", "/canned", None).await {
                        canned_all.set(api::items(&v, canned));
                    }
                });
            }
        });
    }
    let matches = move || {
        picker.with(|f| {
            f.as_ref().map(|f| {
                canned_all.with(|all| {
                    canned_matches(all, f)
                        .into_iter()
                        .take(8)
                        .cloned()
                        .collect::<Vec<_>>()
                })
            })
        })
    };
    let pick = move |c: &Canned| {
        if let Some(el) = reply.get_untracked() {
            el.set_value(&c.body);
            let _ = el.focus();
        }
        picker.set(None);
    };
    let on_compose = move |_| {
        let value = reply.get_untracked().map(|e| e.value()).unwrap_or_default();
        match value.strip_prefix('/') {
            Some(filter) if !filter.contains('\n') => picker.set(Some(filter.to_owned())),
            _ => {
                if picker.with_untracked(|p| p.as_deref().is_some_and(|f| !f.is_empty())) {
                    picker.set(None);
                }
            }
        }
    };
    let on_compose_key = move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
        "Escape" if picker.with_untracked(Option::is_some) => picker.set(None),
        "Enter" => {
            if let Some(first) = matches().and_then(|m| m.into_iter().next()) {
                ev.prevent_default();
                pick(&first);
            }
        }
        _ => {}
    };

    view! {
        <main class="na-main" hidden=move || open().is_none()>
            <header class="na-conv-head">
                <h2 data-testid="conversation-state" data-state=move || state().map_or("", |s| s.as_str())>
                    {move || state().map_or("", state_text)}
                    {move || desk.with(|d| match (&d.state, &d.assignee) {
                        (Some(ConversationState::Human), Some(a)) => format!(" — {}", a.name),
                        _ => String::new(),
                    })}
                </h2>
                <p class="na-visitor" data-testid="visitor-info">{move || visitor().unwrap_or_default()}</p>
                <div class="na-actions">
                    <button
                        data-testid="take-over"
                        hidden=move || !matches!(state(), Some(ConversationState::Ai | ConversationState::Waiting))
                        on:click=take_over
                    >
                        "Take over"
                    </button>
                    <button data-testid="hand-back" hidden=move || !mine() on:click=hand_back>
                        "Hand back to AI"
                    </button>
                </div>
            </header>
            {move || summary.get().map(|s| {
                let reason = s.reason.as_ref().map(reason_text).unwrap_or_else(|| "—".into());
                let answered = if s.ai_answered.is_empty() {
                    "Nothing yet.".to_owned()
                } else {
                    s.ai_answered.join("\n\n")
                };
                let source = s.suggested_source.map(|src| format!("From the knowledge base: {}", src.title));
                let has_reply = s.suggested_reply.is_some();
                view! {
                    <section class="na-summary" data-testid="handoff-summary" aria-label="Handoff summary">
                        <h3>"Handoff summary"</h3>
                        <dl>
                            <dt>"The visitor wants"</dt>
                            <dd data-testid="summary-wants">{s.wants}</dd>
                            <dt>"Why a person"</dt>
                            <dd data-testid="summary-reason">{reason}</dd>
                            <dt>"The AI answered"</dt>
                            <dd class="na-lines" data-testid="summary-answered">{answered}</dd>
                        </dl>
                        <div class="na-suggested" hidden=!has_reply>
                            <span class="na-author">"Suggested reply"</span>
                            <p class="na-body" data-testid="summary-suggested">{s.suggested_reply.unwrap_or_default()}</p>
                            <span class="na-muted">{source}</span>
                            <div class="na-actions">
                                <button type="button" data-testid="insert-suggested" on:click=insert_suggested>
                                    "Insert suggested reply"
                                </button>
                            </div>
                        </div>
                    </section>
                }
            })}
            <p class="na-error" role="alert" data-testid="agent-notice" hidden=move || notice().is_none()>
                {move || notice().unwrap_or_default()}
            </p>
            <ol class="na-timeline" data-testid="timeline">
                <For
                    each=messages
                    key=|m| m.id
                    children=move |m| {
                        let me = desk.with_untracked(|d| d.me.as_ref().map(|a| a.id));
                        let label = author_label(&m.author, me);
                        view! {
                            <li class=format!("na-msg na-{}", m.author.kind()) data-testid="message" data-author=m.author.kind()>
                                <span class="na-author">{label}</span>
                                <p class="na-body">{m.body}</p>
                            </li>
                        }
                    }
                />
            </ol>
            <ul class="na-notes">
                <For
                    each=notes
                    key=|n| n.id
                    children=move |n| view! {
                        <li class="na-note" data-testid="note">
                            <span class="na-author">{format!("Internal note — {}", n.agent.name)}</span>
                            <p class="na-body">{n.body}</p>
                        </li>
                    }
                />
            </ul>
            <div class="na-drafts">
                <For
                    each=drafts
                    key=|x| x.id
                    children=move |x| {
                        let app = draft_app.clone();
                        let body: NodeRef<html::Textarea> = NodeRef::new();
                        let (conversation_id, draft_id) = (x.conversation_id, x.id);
                        let decide = move |decision: DraftDecision| {
                            app.send(ClientFrame::ReviewDraft { conversation_id, draft_id, decision });
                        };
                        let (approve, edit, reject) = (decide.clone(), decide.clone(), decide);
                        view! {
                            <div class="na-draft" data-testid="draft">
                                <span class="na-author">"AI draft — the visitor sees nothing until you approve"</span>
                                <textarea data-testid="draft-body" node_ref=body prop:value=x.body.clone()></textarea>
                                <div class="na-actions">
                                    <button data-testid="draft-approve" on:click=move |_| approve(DraftDecision::Approve)>"Approve"</button>
                                    <button
                                        data-testid="draft-edit"
                                        on:click=move |_| {
                                            let text = body.get_untracked().map(|e| e.value()).unwrap_or_default();
                                            if !text.trim().is_empty() {
                                                edit(DraftDecision::Edit { body: text });
                                            }
                                        }
                                    >
                                        "Send edited"
                                    </button>
                                    <button data-testid="draft-reject" on:click=move |_| reject(DraftDecision::Reject)>"Reject"</button>
                                </div>
                            </div>
                        }
                    }
                />
            </div>
            <ul class="na-canned" data-testid="canned-picker" role="listbox" hidden=move || picker.with(Option::is_none)>
                {move || match matches() {
                    Some(m) if !m.is_empty() => m.into_iter().map(|c| {
                        let chosen = c.clone();
                        view! {
                            <li>
                                <button type="button" class="na-canned-item" data-testid="canned-item" on:click=move |_| pick(&chosen)>
                                    <strong>{c.title}</strong>
                                    <span class="na-muted">{c.body}</span>
                                </button>
                            </li>
                        }
                    }).collect_view().into_any(),
                    _ => view! { <li class="na-muted">"No canned response matches."</li> }.into_any(),
                }}
            </ul>
            <form class="na-composer" on:submit=send_reply hidden=move || state().is_none()>
                <textarea
                    data-testid="agent-input"
                    node_ref=reply
                    placeholder="Reply to the visitor… (type / for canned responses)"
                    aria-label="Reply"
                    on:input=on_compose
                    on:keydown=on_compose_key
                ></textarea>
                <button
                    type="button"
                    class="na-plain"
                    data-testid="canned-open"
                    title="Canned responses"
                    on:click=move |_| picker.update(|p| *p = if p.is_some() { None } else { Some(String::new()) })
                >
                    "Canned"
                </button>
                <button type="submit" data-testid="agent-send">"Send"</button>
            </form>
            <form class="na-composer na-note-form" on:submit=send_note hidden=move || state().is_none()>
                <textarea data-testid="note-input" node_ref=note placeholder="Internal note (never shown to the visitor)…" aria-label="Internal note"></textarea>
                <button type="submit" data-testid="note-send">"Add note"</button>
            </form>
            <fieldset class="na-resolve" hidden=move || matches!(state(), Some(ConversationState::Resolved) | None)>
                <legend>"Resolve"</legend>
                <label class="na-check">
                    <input
                        type="checkbox"
                        data-testid="teach-enabled"
                        prop:checked=move || teach_on.get()
                        on:change=move |ev| teach_on.set(event_target_checked(&ev))
                    />
                    "Teach the AI this answer"
                </label>
                <label>
                    "Question"
                    <textarea
                        data-testid="teach-question"
                        prop:value=move || teach_q.get()
                        on:input=move |ev| teach_q.set(event_target_value(&ev))
                    ></textarea>
                </label>
                <label>
                    "Answer"
                    <textarea
                        data-testid="teach-answer"
                        prop:value=move || teach_a.get()
                        on:input=move |ev| teach_a.set(event_target_value(&ev))
                    ></textarea>
                </label>
                <button data-testid="resolve" on:click=resolve>"Resolve"</button>
            </fieldset>
            {move || desk.with(|d| d.is_owner()).then(|| view! { <VisitorPrivacy app=privacy_app.clone()/> })}
        </main>
        <main class="na-main na-placeholder" hidden=move || open().is_some()>
            <p>"Pick a conversation from the inbox."</p>
        </main>
    }
}
