//! The visitor's chat: launcher, panel, timeline and composer.
//!
//! Message text is only ever rendered as text nodes (`{body}` in `view!`), never as HTML.
//! The `data-testid` attributes are a public contract used by the end-to-end tests.
//!
//! The view is kept deliberately flat (static elements shown and hidden with the `hidden`
//! attribute, CSS for what CSS can do): every reactive branch costs wasm bytes, and the whole
//! app must stay under its size budget.

use std::cell::Cell;
use std::rc::Rc;

use leptos::ev::{KeyboardEvent, MouseEvent};
use leptos::html;
use leptos::prelude::*;
use nexus_shared::{Author, Choice, ConversationState};

use crate::browser;
use crate::config::safe_color;
use crate::connection::Client;
use crate::i18n;
use crate::link::Status;
use crate::model::{Chat, Delivery, Entry};

/// A click handler, boxed on purpose: tachys then attaches every click handler with one copy
/// of its code instead of one per closure.
fn click(f: impl FnMut(MouseEvent) + 'static) -> Box<dyn FnMut(MouseEvent)> {
    Box::new(f)
}

/// The whole widget. `host` receives the events for the loader.
#[component]
pub fn App(client: Client, host: web_sys::EventTarget) -> impl IntoView {
    let open = client.open;
    let chat = client.chat;
    let unread = client.unread;
    let launcher: NodeRef<html::Button> = NodeRef::new();
    let input: NodeRef<html::Textarea> = NodeRef::new();

    // Opening connects (the first time), clears the unread badge and focuses the input;
    // closing gives the focus back to the launcher. The loader hears of both.
    let panel_host = host.clone();
    Effect::new({
        let client = client.clone();
        move |was_open: Option<bool>| {
            let now_open = open.get();
            // Focus after the panel is shown (or hidden) on screen.
            if now_open {
                client.start();
                client.unread.set(0);
                request_animation_frame(move || {
                    if let Some(el) = input.get_untracked() {
                        let _ = el.focus();
                    }
                });
            } else if was_open == Some(true) {
                request_animation_frame(move || {
                    if let Some(el) = launcher.get_untracked() {
                        let _ = el.focus();
                    }
                });
            }
            if was_open.unwrap_or(false) != now_open {
                browser::emit(&host, if now_open { "open" } else { "close" }, None);
            }
            now_open
        }
    });

    let config = client.config.clone();
    let color = move || {
        let site = chat.with(|c| c.site.as_ref().map(|s| s.color.clone()));
        config
            .color
            .as_deref()
            .and_then(safe_color)
            .or_else(|| site.as_deref().and_then(safe_color))
            .map(|c| format!("--nf-color:{c}"))
            .unwrap_or_default()
    };
    let root_class = if client.config.on_left() {
        "nf-root nf-left"
    } else {
        "nf-root"
    };

    view! {
        <div class=root_class class:nf-open=move || open.get() style=color>
            <Panel client=client input=input host=panel_host />
            <button
                class="nf-launcher"
                data-testid="launcher"
                node_ref=launcher
                aria-label=move || if open.get() { i18n::t().close_chat } else { i18n::t().open_chat }
                aria-expanded=move || if open.get() { "true" } else { "false" }
                on:click=click(move |_| open.update(|o| *o = !*o))
            >
                <svg class="nf-icon-chat" viewBox="0 0 24 24" aria-hidden="true">
                    <path d="M4 5h16v11H9l-5 4z" />
                </svg>
                <svg class="nf-icon-close" viewBox="0 0 24 24" aria-hidden="true">
                    <path d="M6 6l12 12M18 6L6 18" />
                </svg>
                <span
                    class="nf-badge"
                    aria-hidden="true"
                    hidden=move || unread.get() == 0 || open.get()
                >
                    {move || unread.get()}
                </span>
            </button>
        </div>
    }
}

#[component]
fn Panel(
    client: Client,
    input: NodeRef<html::Textarea>,
    host: web_sys::EventTarget,
) -> impl IntoView {
    let open = client.open;
    let chat = client.chat;
    let status = client.status;
    let assistant = move || chat.with(|c| c.assistant_name().to_owned());
    // How many of the team are online (known from `welcome`, then `presence`).
    let team = move || chat.with(|c| c.site.as_ref().map(|s| s.agents_online));
    let notice = move || chat.with(|c| c.notice.as_ref().map(|n| n.text.clone()));
    let on_keydown = move |ev: KeyboardEvent| {
        if ev.key() == "Escape" {
            ev.prevent_default();
            open.set(false);
        }
    };
    let ask_human = {
        let client = client.clone();
        move |_| client.request_human()
    };
    let history = {
        let client = client.clone();
        click(move |_| client.show_history())
    };

    view! {
        <section
            class="nf-panel"
            data-flags=move || chat.with(Chat::flags)
            data-testid="panel"
            role="dialog"
            aria-label=move || i18n::fill(i18n::t().chat_with, &assistant())
            hidden=move || !open.get()
            on:keydown=on_keydown
        >
            <header class="nf-header">
                <div class="nf-avatar" aria-hidden="true">
                    {move || assistant().chars().next().unwrap_or('?').to_string()}
                </div>
                <div class="nf-titles">
                    <h2 class="nf-title">{assistant}</h2>
                    <p class="nf-subtitle">
                        {move || {
                            chat.with(|c| {
                                i18n::subtitle(c.state(), c.assignee.as_ref().map(|a| a.name.as_str()))
                            })
                        }}
                    </p>
                </div>
                <span
                    class="nf-status"
                    data-testid="connection-status"
                    data-status=move || status.get().code()
                    data-team=move || team().map(|n| if n == 0 { "away" } else { "online" })
                    role="status"
                >
                    <span class="nf-dot" aria-hidden="true"></span>
                    {move || match (status.get(), team()) {
                        (Status::Online, Some(0)) => i18n::t().status_away,
                        (Status::Online, Some(_)) => i18n::t().status_team,
                        (s, _) => s.text(),
                    }}
                </span>
                <button class="nf-close" data-testid="history" aria-label=i18n::t().history on:click=history>
                    <svg viewBox="0 0 24 24" aria-hidden="true">
                        <path d="M4 6h16M4 12h16M4 18h10" />
                    </svg>
                </button>
                <button class="nf-close" aria-label=i18n::t().close_chat on:click=click(move |_| open.set(false))>
                    <svg viewBox="0 0 24 24" aria-hidden="true">
                        <path d="M6 6l12 12M18 6L6 18" />
                    </svg>
                </button>
            </header>
            <History client=client.clone() host=host />
            <Banner client=client.clone() />
            <Timeline client=client.clone() />
            <Csat client=client.clone() />
            <EmailForm client=client.clone() />
            <div class="nf-notice" role="alert">
                <span>{move || notice().unwrap_or_default()}</span>
                <button
                    class="nf-dismiss"
                    aria-label=i18n::t().dismiss
                    on:click=click(move |_| chat.update(|c| c.notice = None))
                >
                    "×"
                </button>
            </div>
            <div class="nf-actions">
                <button
                    class="nf-human"
                    data-testid="talk-to-human"
                    aria-label=i18n::t().talk_to_human
                    disabled=move || {
                        chat.with(|c| {
                            matches!(c.state(), ConversationState::Waiting | ConversationState::Human)
                        })
                    }
                    on:click=click(ask_human)
                >
                    {i18n::t().talk_to_human}
                </button>
            </div>
            <Composer client=client input=input />
        </section>
    }
}

/// "Waiting for a person — …" and the queue position, or "Sam joined". Present only while
/// a person is involved.
#[component]
fn Banner(client: Client) -> impl IntoView {
    let chat = client.chat;
    move || {
        chat.with(|c| {
            let state = c.state();
            let (text, queue) = match state {
                ConversationState::Waiting => (
                    i18n::waiting_banner(c.reason.as_ref()),
                    c.queue_position.map(|p| i18n::fill(i18n::t().queue, &p.to_string())),
                ),
                ConversationState::Human => (
                    i18n::fill(i18n::t().joined, c.assignee.as_ref().map_or(i18n::t().a_person, |a| a.name.as_str())),
                    None,
                ),
                ConversationState::Ai | ConversationState::Resolved => return None,
            };
            Some(view! {
                <div class="nf-banner" data-testid="handoff-banner" data-state=state.as_str() role="status">
                    <p>{text}</p>
                    {queue.map(|q| view! { <p class="nf-queue">{q}</p> })}
                </div>
            })
        })
    }
}

#[component]
fn Timeline(client: Client) -> impl IntoView {
    let chat = client.chat;
    let scroller: NodeRef<html::Div> = NodeRef::new();
    let config = client.config.clone();

    // Keep the newest message in view.
    Effect::new(move |_| {
        chat.with(|c| {
            (
                c.entries.len(),
                c.typing.is_some(),
                c.offline_note.is_some(),
                c.streaming.as_ref().map(String::len),
            )
        });
        if let Some(el) = scroller.get_untracked() {
            el.set_scroll_top(el.scroll_height());
        }
    });

    let rows = move || {
        chat.with(|c| {
            c.entries
                .iter()
                .map(|e| (e.clone(), e.delivery))
                .collect::<Vec<_>>()
        })
    };
    let offline = move || chat.with(|c| c.offline_note.clone());
    let typing = move || {
        chat.with(|c| {
            c.typing.as_ref().map(|author| match author {
                Author::Agent(agent) => i18n::fill(i18n::t().typing, &agent.name),
                Author::Visitor | Author::Ai | Author::System => {
                    i18n::fill(i18n::t().typing, c.assistant_name())
                }
            })
        })
    };

    view! {
        <div class="nf-scroll" node_ref=scroller>
            <ol class="nf-messages" aria-live="polite" aria-label=i18n::t().messages>
                <li class="nf-msg nf-ai nf-greeting" data-testid="greeting" data-author="ai">
                    <div class="nf-meta">
                        <span class="nf-author">{move || chat.with(|c| c.assistant_name().to_owned())}</span>
                    </div>
                    <div class="nf-bubble">
                        {move || chat.with(|c| c.greeting(config.greeting.as_deref()).to_owned())}
                    </div>
                </li>
                <For
                    each=rows
                    key=|(e, delivery)| (e.key.clone(), *delivery)
                    children=move |(entry, _)| view! { <Row client=client.clone() entry=entry /> }
                />
            </ol>
            <p class="nf-msg nf-ai nf-streaming" data-testid="streaming" data-author="ai">
                <span class="nf-bubble">{move || chat.with(|c| c.streaming.clone())}</span>
            </p>
            <p class="nf-offline">
                {move || offline().unwrap_or_default()}
            </p>
            <p class="nf-typing">
                <span class="nf-dots" aria-hidden="true">
                    <i></i>
                    <i></i>
                    <i></i>
                </span>
                {move || typing().unwrap_or_default()}
            </p>
        </div>
    }
}

/// One timeline entry, rendered once; re-rendered when its delivery changes. The choices of
/// a clarifying question are hidden by CSS once anything follows it.
#[component]
fn Row(client: Client, entry: Entry) -> impl IntoView {
    let kind = entry.author.kind();
    let label = match &entry.author {
        Author::Agent(agent) => agent.name.clone(),
        Author::Ai => client
            .chat
            .with_untracked(|c| c.assistant_name().to_owned()),
        other => i18n::author_label(other.kind()).to_owned(),
    };
    let time = browser::format_time(entry.created_at, client.config.locale.as_deref());
    let (delivery, note) = match entry.delivery {
        Delivery::Pending => ("pending", i18n::t().sending),
        Delivery::Sent => ("sent", ""),
        Delivery::Failed => ("failed", i18n::t().not_sent),
    };
    let retry = {
        let id = entry.client_msg_id.clone().unwrap_or_default();
        let client = client.clone();
        move |_| client.retry(&id)
    };
    let message_id = entry.id.unwrap_or_default();
    // Thumbs up or down on an AI answer; down also offers a person right there.
    // 0: not rated, 1: up, 2: down (a `u32` signal: the app has that type already, and each
    // new signal type costs bytes).
    let helpful = RwSignal::new(0u32);
    let rate = |up: bool| {
        let client = client.clone();
        click(move |_| {
            helpful.set(if up { 1 } else { 2 });
            client.feedback(message_id, up);
        })
    };
    let pressed = move |n: u32| move || if helpful.get() == n { "true" } else { "false" };
    let ask_human = {
        let client = client.clone();
        click(move |_| client.request_human())
    };
    let no_source = entry.source.is_none();
    let no_choices = entry.choices.is_empty();
    let choices = entry
        .choices
        .into_iter()
        .map(|Choice { id, label }| {
            let client = client.clone();
            view! {
                <button class="nf-choice" on:click=click(move |_| client.choose(message_id, &id))>
                    {label}
                </button>
            }
        })
        .collect_view();
    // Optional parts are there but hidden: one shape for every row is less code than many.
    view! {
        <li
            class=format!("nf-msg nf-{kind}")
            data-testid="message"
            data-author=kind
            data-delivery=delivery
        >
            <div class="nf-meta">
                <span class="nf-author">{label}</span>
                <time class="nf-time">{time}</time>
            </div>
            <div class="nf-bubble">{entry.body}</div>
            <p class="nf-source" hidden=no_source>
                {i18n::t().source}
                " "
                <a href=entry.link target="_blank" rel="noopener noreferrer">
                    {entry.source.unwrap_or_default()}
                </a>
            </p>
            <div class="nf-feedback" role="group" hidden=kind != "ai" || entry.id.is_none()>
                <button
                    class="nf-thumb"
                    data-testid="feedback-up"
                    aria-label=i18n::t().helpful
                    aria-pressed=pressed(1)
                    on:click=rate(true)
                >
                    <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M7 11v9H4v-9zm0 0l4-8c2 0 3 1 2 4l-1 3h6l-2 10H7" /></svg>
                </button>
                <button
                    class="nf-thumb"
                    data-testid="feedback-down"
                    aria-label=i18n::t().not_helpful
                    aria-pressed=pressed(2)
                    on:click=rate(false)
                >
                    <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M7 13V4H4v9zm0 0l4 8c2 0 3-1 2-4l-1-3h6L16 4H7" /></svg>
                </button>
                <button class="nf-human" hidden=move || helpful.get() != 2 on:click=ask_human>
                    {i18n::t().talk_to_human}
                </button>
            </div>
            <div class="nf-choices" role="group" hidden=no_choices>
                {choices}
            </div>
            <p class="nf-delivery" hidden=note.is_empty()>
                {note}
                <button class="nf-retry" hidden=delivery != "failed" on:click=click(retry)>
                    {i18n::t().retry}
                </button>
            </p>
        </li>
    }
}

/// Once the conversation is resolved: a 1–5 rating with an optional comment, then thanks.
/// Writing again reopens the conversation and hides it.
#[component]
fn Csat(client: Client) -> impl IntoView {
    let score = RwSignal::new(0u32);
    let sent = RwSignal::new(false);
    let comment: NodeRef<html::Textarea> = NodeRef::new();
    let stars = ["1", "2", "3", "4", "5"]
        .into_iter()
        .zip(1u32..)
        .map(|(text, n)| {
            view! {
                <button
                    class="nf-star"
                    data-score=text
                    aria-label=i18n::fill(i18n::t().star, text)
                    aria-pressed=move || if score.get() == n { "true" } else { "false" }
                    on:click=click(move |_| score.set(n))
                >
                    {text}
                </button>
            }
        })
        .collect_view();
    let send = click(move |_| {
        let text = comment
            .get_untracked()
            .map(|el| el.value().trim().to_owned())
            .filter(|t| !t.is_empty());
        client.csat(score.get_untracked() as u8, text);
        sent.set(true);
    });
    view! {
        <div
            class="nf-csat"
            data-testid="csat"
            role="group"
            aria-label=i18n::t().csat_question
        >
            <div hidden=move || sent.get()>
                <p>{i18n::t().csat_question}</p>
                <div class="nf-stars">{stars}</div>
                <textarea
                    class="nf-input"
                    node_ref=comment
                    rows="1"
                    aria-label=i18n::t().csat_comment
                    placeholder=i18n::t().csat_comment
                ></textarea>
                <button
                    class="nf-human"
                    data-testid="csat-send"
                    disabled=move || score.get() == 0
                    on:click=send
                >
                    {i18n::t().csat_send}
                </button>
            </div>
            <p data-testid="csat-thanks" hidden=move || !sent.get()>
                {i18n::t().csat_thanks}
            </p>
        </div>
    }
}

/// The visitor's conversations: open an older one (a closed one reopens when written to) or
/// start a new one. While it is shown, CSS hides the rest of the panel but the header.
///
/// The entries are plain DOM written by one effect, with one click handler on the list that
/// reads the entry's `data-id`: a reactive list per entry would cost the bundle kilobytes.
#[component]
fn History(client: Client, host: web_sys::EventTarget) -> impl IntoView {
    let chat = client.chat;
    let t = i18n::t();
    let list: NodeRef<html::Ol> = NodeRef::new();
    let locale = client.config.locale.clone();
    Effect::new(move |_| {
        let Some(ol) = list.get() else {
            return;
        };
        chat.with(|c| {
            let entries = c.history.as_deref().unwrap_or_default();
            let lines = entries.iter().filter(|s| s.last_seq > 0).map(|s| {
                (
                    crate::wire::uuid_string(&s.id),
                    browser::format_date(s.updated_at, locale.as_deref())
                        + " · "
                        + i18n::state_label(s.state),
                    s.preview.as_str(),
                )
            });
            browser::fill_list(&ol, lines);
        });
    });
    let start = {
        let client = client.clone();
        click(move |_| client.switch_to(None))
    };
    let pick = click(move |ev| {
        if let Some(id) = browser::clicked_id(&ev)
            .as_deref()
            .and_then(crate::wire::parse_uuid)
        {
            client.switch_to(Some(id));
        }
    });
    view! {
        <div class="nf-history" data-testid="history-list">
            <h3>{t.history}</h3>
            <ol node_ref=list on:click=pick></ol>
            <button class="nf-human" data-testid="new-conversation" on:click=start>
                {t.new_conversation}
            </button>
            <button class="nf-team" data-testid="team-sign-in" on:click=move |_| browser::emit(&host, "agent-mode", None)>
                {t.team_sign_in}
            </button>
        </div>
    }
}

/// Nobody online: the visitor may leave an email; then a confirmation. The `offline` note
/// above says when to expect the answer.
#[component]
fn EmailForm(client: Client) -> impl IntoView {
    let chat = client.chat;
    let field: NodeRef<html::Input> = NodeRef::new();
    let t = i18n::t();
    view! {
        <form
            class="nf-email"
            data-testid="offline-email"
            novalidate="novalidate"
            on:submit=move |ev| {
                ev.prevent_default();
                if let Some(el) = field.get_untracked() {
                    client.leave_email(&el.value());
                }
            }
        >
            <label>
                {t.email_ask}
                <input
                    class="nf-input"
                    type="email"
                    data-testid="email-input"
                    autocomplete="email"
                    placeholder=t.email_label
                    node_ref=field
                />
            </label>
            <button class="nf-human" type="submit" data-testid="email-send">
                {t.email_send}
            </button>
        </form>
        <p class="nf-email" data-testid="email-thanks" role="status">
            {move || chat.with(|c| c.email_left.as_deref().map(|e| i18n::fill(t.email_thanks, e)))}
        </p>
    }
}

#[component]
fn Composer(client: Client, input: NodeRef<html::Textarea>) -> impl IntoView {
    // When the visitor last said "typing" (0: not typing); at most one every 2 s.
    let typed_at = Rc::new(Cell::new(0.0f64));
    let on_input = {
        let client = client.clone();
        let typed_at = typed_at.clone();
        move |_| {
            let now = browser::now() as f64;
            if now - typed_at.get() >= 2_000.0 {
                typed_at.set(now);
                client.typing(true);
            }
        }
    };
    // The textarea keeps its own value: read on submit, cleared once sent.
    let submit = move || {
        let Some(el) = input.get_untracked() else {
            return;
        };
        if client.send_text(&el.value()) {
            el.set_value("");
            if typed_at.get() > 0.0 {
                typed_at.set(0.0);
                client.typing(false);
            }
        }
        let _ = el.focus();
    };
    let on_keydown = {
        let submit = submit.clone();
        move |ev: KeyboardEvent| {
            if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                ev.prevent_default();
                submit();
            }
        }
    };
    view! {
        <form
            class="nf-composer"
            on:submit=move |ev| {
                ev.prevent_default();
                submit();
            }
        >
            <textarea
                class="nf-input"
                data-testid="input"
                node_ref=input
                rows="1"
                aria-label=i18n::t().input_label
                placeholder=i18n::t().placeholder
                on:keydown=on_keydown
                on:input=on_input
            ></textarea>
            <button class="nf-send" type="submit" data-testid="send" aria-label=i18n::t().send>
                <svg viewBox="0 0 24 24" aria-hidden="true">
                    <path d="M4 12l16-8-6 16-2-7z" />
                </svg>
            </button>
        </form>
    }
}
