//! The owner console: site settings with the embed snippet, and the knowledge base with its
//! import and the learned entries waiting for approval (its list and form also manage the
//! canned responses). Only owners get here (the server refuses agents anyway). Entry text is
//! only ever rendered as text nodes.

use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use uuid::Uuid;
use wasm_bindgen::JsValue;

use super::App;
use super::api::{self, JsObj};
use super::data::{
    self, DAYS, KbItem, PendingItem, import_format, kb_item, origin_text, pending_item, snippet,
};
use crate::wire::{Json, list, string};

/// The screens of the agent app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Inbox,
    Settings,
    Knowledge,
    /// Articles: knowledge sources besides Q&A entries ([`super::sources`]).
    Sources,
    Analytics,
    /// Try questions, fix in place, replay ([`super::playground`]).
    Playground,
    /// Questions that went to people ([`super::gaps`]).
    Gaps,
}

/// The settings form's text fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
    Name,
    Color,
    Greeting,
    Autonomy,
    Answer,
    Clarify,
    OutOfScope,
    Sensitive,
    Learning,
    Timezone,
    Offline,
    Origins,
    Secret,
}

impl F {
    /// The settings key the field belongs to (for errors and `data-testid="setting-…"`).
    fn key(self) -> &'static str {
        match self {
            Self::Name => "assistant_name",
            Self::Color => "color",
            Self::Greeting => "greeting",
            Self::Autonomy => "autonomy",
            Self::Answer => "answer_threshold",
            Self::Clarify => "clarify_margin",
            Self::OutOfScope => "out_of_scope_threshold",
            Self::Sensitive => "sensitive",
            Self::Learning => "learning",
            Self::Timezone => "timezone",
            Self::Offline => "offline_message",
            Self::Origins => "allowed_origins",
            Self::Secret => "identity_secret",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Form {
    text: [String; 13],
    hours: [(String, String); 7],
    always_open: bool,
    secret_set: bool,
}

impl Form {
    fn get(&self, f: F) -> &String {
        &self.text[f as usize]
    }

    fn set(&mut self, f: F, value: String) {
        self.text[f as usize] = value;
    }

    fn read<J: Json>(s: &J) -> Self {
        let mut form = Self::default();
        let text = |k| string(s, k).unwrap_or_default();
        form.set(F::Name, text("assistant_name"));
        form.set(F::Color, text("color"));
        form.set(F::Greeting, text("greeting"));
        form.set(F::Autonomy, text("autonomy"));
        form.set(F::Learning, text("learning"));
        form.set(F::Offline, text("offline_message"));
        form.set(
            F::Origins,
            list(s, "allowed_origins", J::string)
                .unwrap_or_default()
                .join("\n"),
        );
        form.secret_set = string(s, "identity_secret").is_some_and(|x| !x.is_empty());
        if let Some(p) = s.get("policy") {
            let num = |k| {
                p.get(k)
                    .and_then(|n| n.number())
                    .map(data::number_text)
                    .unwrap_or_default()
            };
            form.set(F::Answer, num("answer_threshold"));
            form.set(F::Clarify, num("clarify_margin"));
            form.set(F::OutOfScope, num("out_of_scope_threshold"));
            form.set(F::Sensitive, data::sensitive_text(&p));
        }
        match s.get("business_hours") {
            Some(h) => {
                form.set(F::Timezone, string(&h, "timezone").unwrap_or_default());
                for d in h.get("days").and_then(|d| d.items()).unwrap_or_default() {
                    let day = string(&d, "day").unwrap_or_default();
                    if let Some(i) = DAYS.iter().position(|x| x.0 == day) {
                        form.hours[i] = (
                            string(&d, "open").unwrap_or_default(),
                            string(&d, "close").unwrap_or_default(),
                        );
                    }
                }
            }
            None => {
                form.always_open = true;
                form.set(F::Timezone, "UTC".into());
            }
        }
        form
    }

    /// The field errors; `has` tells which settings this server has.
    fn check(&self, has: impl Fn(&str) -> bool) -> Vec<(F, String)> {
        let mut errors = Vec::new();
        let mut fail = |f: F, e: String| errors.push((f, e));
        if self.get(F::Name).trim().is_empty() {
            fail(F::Name, "Give the assistant a name.".into());
        }
        if !data::valid_color(self.get(F::Color).trim()) {
            fail(F::Color, "Use a colour like #4f46e5.".into());
        }
        let greeting = self.get(F::Greeting).trim().chars().count();
        if greeting == 0 || greeting > 500 {
            fail(
                F::Greeting,
                "Write a greeting of 1 to 500 characters.".into(),
            );
        }
        if has("policy") {
            for f in [F::Answer, F::Clarify, F::OutOfScope] {
                if let Err(e) = data::threshold(self.get(f)) {
                    fail(f, e);
                }
            }
            if let Err(e) = data::sensitive(self.get(F::Sensitive)) {
                fail(F::Sensitive, e);
            }
        }
        if has("business_hours") && !self.always_open {
            if self.get(F::Timezone).trim().is_empty() {
                fail(F::Timezone, "Name a time zone, e.g. Europe/Berlin.".into());
            }
            for (i, (open, close)) in self.hours.iter().enumerate() {
                if let Err(e) = data::day_hours(open, close) {
                    fail(F::Timezone, format!("{}: {e}", DAYS[i].1));
                }
            }
        }
        if let Err(e) = data::origins(self.get(F::Origins)) {
            fail(F::Origins, e);
        }
        errors
    }

    /// The `PATCH /api/v1/site` body: every setting the form shows that this server has.
    /// The policy keeps what the form does not show.
    fn patch(&self, base: &JsValue, has: impl Fn(&str) -> bool) -> JsValue {
        let t = |f| JsValue::from_str(self.get(f).trim());
        let mut p = JsObj::new()
            .set("assistant_name", t(F::Name))
            .set("color", t(F::Color))
            .set("greeting", t(F::Greeting))
            .set("autonomy", t(F::Autonomy))
            .set(
                "allowed_origins",
                api::strings(&data::origins(self.get(F::Origins)).unwrap_or_default()),
            );
        let secret = self.get(F::Secret).trim();
        if !secret.is_empty() {
            p = p.set("identity_secret", secret);
        }
        if has("policy") {
            let policy = base
                .get("policy")
                .map(|v| api::clone_json(&v))
                .filter(JsValue::is_object)
                .unwrap_or_else(|| JsObj::new().value());
            let num = |f| data::threshold(self.get(f)).unwrap_or_default();
            let sensitive: js_sys::Array = data::sensitive(self.get(F::Sensitive))
                .unwrap_or_default()
                .iter()
                .map(|(c, phrases)| {
                    JsObj::new()
                        .set("category", c.as_str())
                        .set("phrases", api::strings(phrases))
                        .value()
                })
                .collect();
            let policy = JsObj(policy.into())
                .set("answer_threshold", num(F::Answer))
                .set("clarify_margin", num(F::Clarify))
                .set("out_of_scope_threshold", num(F::OutOfScope))
                .set("sensitive", sensitive);
            p = p.set("policy", policy.value());
        }
        if has("learning") {
            p = p.set("learning", t(F::Learning));
        }
        if has("offline_message") {
            p = p.set("offline_message", t(F::Offline));
        }
        if has("business_hours") {
            let hours = if self.always_open {
                JsValue::NULL
            } else {
                let days: js_sys::Array = self
                    .hours
                    .iter()
                    .zip(DAYS)
                    .filter(|((o, c), _)| !o.is_empty() || !c.is_empty())
                    .map(|((o, c), (day, _))| {
                        JsObj::new()
                            .set("day", day)
                            .set("open", o.as_str())
                            .set("close", c.as_str())
                            .value()
                    })
                    .collect();
                JsObj::new()
                    .set("timezone", t(F::Timezone))
                    .set("days", days)
                    .value()
            };
            p = p.set("business_hours", hours);
        }
        p.value()
    }
}

/// A server refusal pinned to the field it names, if any.
fn field_of(message: &str) -> Option<F> {
    [
        F::Answer,
        F::Clarify,
        F::OutOfScope,
        F::Sensitive,
        F::Learning,
        F::Offline,
        F::Origins,
        F::Secret,
        F::Timezone,
        F::Autonomy,
        F::Greeting,
        F::Color,
        F::Name,
    ]
    .into_iter()
    .find(|f| message.contains(f.key()))
    .or_else(|| message.contains("business_hours").then_some(F::Timezone))
    .or_else(|| message.contains("policy").then_some(F::Answer))
}

fn field_error(errors: RwSignal<Vec<(F, String)>>, f: F) -> impl IntoView {
    let msg = move || errors.with(|e| e.iter().find(|x| x.0 == f).map(|x| x.1.clone()));
    view! {
        <p class="na-field-error" role="alert" data-testid=format!("error-{}", f.key()) hidden=move || msg().is_none()>
            {move || msg().unwrap_or_default()}
        </p>
    }
}

fn text_input(form: RwSignal<Form>, f: F) -> impl IntoView {
    view! {
        <input
            data-testid=format!("setting-{}", f.key())
            prop:value=move || form.with(|x| x.get(f).clone())
            on:input=move |ev| form.update(|x| x.set(f, event_target_value(&ev)))
        />
    }
}

fn text_area(form: RwSignal<Form>, f: F, placeholder: &'static str) -> impl IntoView {
    view! {
        <textarea
            data-testid=format!("setting-{}", f.key())
            placeholder=placeholder
            prop:value=move || form.with(|x| x.get(f).clone())
            on:input=move |ev| form.update(|x| x.set(f, event_target_value(&ev)))
        ></textarea>
    }
}

fn select(
    form: RwSignal<Form>,
    f: F,
    options: &'static [(&'static str, &'static str)],
) -> impl IntoView {
    let options = options
        .iter()
        .map(|(value, label)| {
            view! {
                <option value=*value selected=move || form.with(|x| x.get(f) == value)>{*label}</option>
            }
        })
        .collect_view();
    view! {
        <select
            data-testid=format!("setting-{}", f.key())
            on:change=move |ev| form.update(|x| x.set(f, event_target_value(&ev)))
        >
            {options}
        </select>
    }
}

#[component]
pub fn SettingsPage(app: App) -> impl IntoView {
    let form = RwSignal::new(Form::default());
    // The settings as last read, as JSON text.
    let base = StoredValue::new(String::from("{}"));
    let keys: RwSignal<Vec<String>> = RwSignal::new(Vec::new());
    let site_key = RwSignal::new(String::new());
    let loaded: RwSignal<Option<Result<(), String>>> = RwSignal::new(None);
    let errors: RwSignal<Vec<(F, String)>> = RwSignal::new(Vec::new());
    let status: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let keep = move |settings: &JsValue| {
        base.set_value(
            js_sys::JSON::stringify(settings)
                .ok()
                .and_then(|s| s.as_string())
                .unwrap_or_else(|| "{}".into()),
        );
        keys.set(api::keys(settings));
        form.set(Form::read(settings));
    };
    {
        let app = app.clone();
        leptos::task::spawn_local(async move {
            match api::call(&app, "GET", "/site", None).await {
                Ok(v) => {
                    keep(&v.get("settings").unwrap_or(JsValue::NULL));
                    site_key.set(string(&v, "key").unwrap_or_default());
                    loaded.set(Some(Ok(())));
                }
                Err(e) => loaded.set(Some(Err(e.message))),
            }
        });
    }
    let has = move |k: &str| keys.with(|ks| ks.iter().any(|x| x == k));
    let save = {
        let app = app.clone();
        move |ev: SubmitEvent| {
            ev.prevent_default();
            let f = form.get_untracked();
            let has_now = |k: &str| keys.with_untracked(|ks| ks.iter().any(|x| x == k));
            let found = f.check(has_now);
            let ok = found.is_empty();
            errors.set(found);
            if !ok {
                status.set(Some(Err("Please correct the marked fields.".into())));
                return;
            }
            let current = js_sys::JSON::parse(&base.get_value()).unwrap_or(JsValue::NULL);
            let body = api::json(&f.patch(&current, has_now));
            busy.set(true);
            status.set(None);
            let app = app.clone();
            leptos::task::spawn_local(async move {
                match api::call(&app, "PATCH", "/site", body).await {
                    Ok(v) => {
                        keep(&v);
                        status.set(Some(Ok(
                            "Saved. Visitors get the new settings on their next visit.".into(),
                        )));
                    }
                    Err(e) => {
                        if let Some(field) = field_of(&e.message) {
                            errors.set(vec![(field, e.message.clone())]);
                        }
                        status.set(Some(Err(e.message)));
                    }
                }
                busy.set(false);
            });
        }
    };

    // The embed snippet and its copy button.
    let code: NodeRef<html::Textarea> = NodeRef::new();
    let copied: RwSignal<Option<&'static str>> = RwSignal::new(None);
    let origin = app.server.clone();
    let snippet_text = move || snippet(&origin, &site_key.get());
    let copy = {
        let snippet_text = snippet_text.clone();
        move |_| {
            let text = snippet_text();
            api::copy(&text, move |ok| {
                if ok {
                    copied.set(Some("Copied to the clipboard."));
                } else {
                    if let Some(el) = code.get_untracked() {
                        let _ = el.focus();
                        el.select();
                    }
                    copied.set(Some("Selected: press Ctrl+C (⌘C on a Mac) to copy."));
                }
            });
        }
    };
    let hours = DAYS
        .iter()
        .enumerate()
        .map(|(i, (day, label))| {
            view! {
                <div class="na-hours-row">
                    <span>{*label}</span>
                    <input
                        type="time"
                        data-testid=format!("hours-{day}-open")
                        aria-label=format!("{label} opens")
                        prop:value=move || form.with(|x| x.hours[i].0.clone())
                        on:input=move |ev| form.update(|x| x.hours[i].0 = event_target_value(&ev))
                    />
                    <input
                        type="time"
                        data-testid=format!("hours-{day}-close")
                        aria-label=format!("{label} closes")
                        prop:value=move || form.with(|x| x.hours[i].1.clone())
                        on:input=move |ev| form.update(|x| x.hours[i].1 = event_target_value(&ev))
                    />
                </div>
            }
        })
        .collect_view();
    let error_text = move || loaded.with(|l| l.as_ref().and_then(|r| r.clone().err()));

    view! {
        <section class="na-console" data-testid="settings">
            <header class="na-console-head"><h2>"Site settings"</h2></header>
            <p class="na-error" role="alert" hidden=move || error_text().is_none()>{move || error_text().unwrap_or_default()}</p>
            <div class="na-card" data-testid="snippet">
                <h3>"Embed the widget"</h3>
                <p class="na-muted">"Paste this before </body> on every page of your site."</p>
                <textarea class="na-code" readonly data-testid="snippet-code" node_ref=code prop:value=snippet_text></textarea>
                <div class="na-actions">
                    <button type="button" data-testid="snippet-copy" on:click=copy>"Copy"</button>
                    <span class="na-muted" role="status" data-testid="snippet-status">{move || copied.get().unwrap_or_default()}</span>
                </div>
            </div>
            <form class="na-card na-form" data-testid="settings-form" on:submit=save hidden=move || loaded.with(|l| !matches!(l, Some(Ok(()))))>
                <h3>"Appearance"</h3>
                <label>"Assistant name" {text_input(form, F::Name)}</label>
                {field_error(errors, F::Name)}
                <label>"Colour" {text_input(form, F::Color)}</label>
                {field_error(errors, F::Color)}
                <label>"Greeting" {text_area(form, F::Greeting, "Hi! How can we help?")}</label>
                {field_error(errors, F::Greeting)}
                <h3>"The AI"</h3>
                <label>
                    "Autonomy"
                    {select(form, F::Autonomy, &[
                        ("auto", "Automatic: the AI answers visitors directly"),
                        ("review", "Review: AI answers wait for an agent's approval"),
                        ("off", "Off: people answer everything"),
                    ])}
                </label>
                {field_error(errors, F::Autonomy)}
                <div class="na-group" hidden=move || !has("policy")>
                    <label>"Answer when confidence is at least (0–1; 0 = the engine's default)" {text_input(form, F::Answer)}</label>
                    {field_error(errors, F::Answer)}
                    <label>"Ask which one is meant when the top answers are this close (0–1; 0 = default)" {text_input(form, F::Clarify)}</label>
                    {field_error(errors, F::Clarify)}
                    <label>"Out of scope below this confidence (0–1; 0 = default)" {text_input(form, F::OutOfScope)}</label>
                    {field_error(errors, F::OutOfScope)}
                    <label>
                        "Sensitive categories (one a line: category: phrase, phrase)"
                        {text_area(form, F::Sensitive, "legal: lawyer, sue")}
                    </label>
                    {field_error(errors, F::Sensitive)}
                </div>
                <div class="na-group" hidden=move || !has("learning")>
                    <label>
                        "Learning from agents"
                        {select(form, F::Learning, &[
                            ("auto", "Taught answers go live at once"),
                            ("approve", "Taught answers wait for an owner's approval"),
                        ])}
                    </label>
                    {field_error(errors, F::Learning)}
                </div>
                <div class="na-group" hidden=move || !has("business_hours")>
                    <h3>"Business hours"</h3>
                    <label class="na-check">
                        <input
                            type="checkbox"
                            data-testid="setting-always-open"
                            prop:checked=move || form.with(|x| x.always_open)
                            on:change=move |ev| form.update(|x| x.always_open = event_target_checked(&ev))
                        />
                        "Always open"
                    </label>
                    <div hidden=move || form.with(|x| x.always_open)>
                        <label>"Time zone" {text_input(form, F::Timezone)}</label>
                        <p class="na-muted">"Leave both times empty on closed days."</p>
                        {hours}
                    </div>
                    {field_error(errors, F::Timezone)}
                </div>
                <div class="na-group" hidden=move || !has("offline_message")>
                    <label>"Offline message" {text_area(form, F::Offline, "We are away right now; leave your email and we will answer.")}</label>
                    {field_error(errors, F::Offline)}
                </div>
                <h3>"Security"</h3>
                <label>"Allowed origins (one a line; empty: any site may embed)" {text_area(form, F::Origins, "https://shop.example")}</label>
                {field_error(errors, F::Origins)}
                <label>
                    {move || if form.with(|x| x.secret_set) { "Identity secret (set; type a new one to replace it)" } else { "Identity secret (not set)" }}
                    <input
                        type="password"
                        autocomplete="new-password"
                        data-testid="setting-identity_secret"
                        prop:value=move || form.with(|x| x.get(F::Secret).clone())
                        on:input=move |ev| form.update(|x| x.set(F::Secret, event_target_value(&ev)))
                    />
                </label>
                {field_error(errors, F::Secret)}
                <div class="na-actions">
                    <button type="submit" data-testid="settings-save" disabled=move || busy.get()>"Save settings"</button>
                </div>
                <p
                    role="status"
                    data-testid="settings-status"
                    data-ok=move || status.with(|s| matches!(s, Some(Ok(_))).to_string())
                    class=move || if status.with(|s| matches!(s, Some(Err(_)))) { "na-error" } else { "na-ok" }
                    hidden=move || status.with(Option::is_none)
                >
                    {move || status.get().map(|s| s.unwrap_or_else(|e| e)).unwrap_or_default()}
                </p>
            </form>
        </section>
    }
}

#[component]
pub fn KnowledgePage(app: App, page: RwSignal<Page>) -> impl IntoView {
    let items: RwSignal<Option<Result<Vec<KbItem>, String>>> = RwSignal::new(None);
    let query = RwSignal::new(String::new());
    let pending: RwSignal<Option<Vec<PendingItem>>> = RwSignal::new(None);
    let pending_note: RwSignal<Option<String>> = RwSignal::new(None);
    // The same list and form serve the canned responses agents pick in the composer.
    let canned = RwSignal::new(false);
    let base = move || {
        if canned.get_untracked() {
            "/canned"
        } else {
            "/kb"
        }
    };
    let load_items = {
        let app = app.clone();
        move || {
            let app = app.clone();
            let (q, mode) = (query.get_untracked(), canned.get_untracked());
            leptos::task::spawn_local(async move {
                let path = format!("{}?q={}", base(), api::segment(q.trim()));
                let result = api::call(&app, "GET", &path, None)
                    .await
                    .map(|v| api::items(&v, kb_item))
                    .map_err(|e| e.message);
                if query.get_untracked() == q && canned.get_untracked() == mode {
                    items.set(Some(result));
                }
            });
        }
    };
    let load_pending = {
        let app = app.clone();
        move || {
            let app = app.clone();
            leptos::task::spawn_local(async move {
                match api::call(&app, "GET", "/kb/pending", None).await {
                    Ok(v) => pending.set(Some(api::items(&v, pending_item))),
                    Err(e) if e.missing() => pending.set(None),
                    Err(e) => pending_note.set(Some(e.message)),
                }
            });
        }
    };
    load_items();
    load_pending();

    // The add / edit form.
    let editing: RwSignal<Option<String>> = RwSignal::new(None);
    let form_open = RwSignal::new(false);
    let title = RwSignal::new(String::new());
    let answer = RwSignal::new(String::new());
    let examples = RwSignal::new(String::new());
    let form_error: RwSignal<Option<String>> = RwSignal::new(None);
    let confirming: RwSignal<Option<String>> = RwSignal::new(None);
    let notice: RwSignal<Option<String>> = RwSignal::new(None);
    let start_edit = move |item: Option<KbItem>| {
        let item = item.unwrap_or(KbItem {
            id: String::new(),
            title: String::new(),
            answer: String::new(),
            examples: Vec::new(),
        });
        editing.set((!item.id.is_empty()).then_some(item.id));
        title.set(item.title);
        answer.set(item.answer);
        examples.set(item.examples.join("\n"));
        form_error.set(None);
        form_open.set(true);
    };
    let submit = {
        let app = app.clone();
        let load_items = load_items.clone();
        move |ev: SubmitEvent| {
            ev.prevent_default();
            let (t, a) = (title.get_untracked(), answer.get_untracked());
            let ex: Vec<String> = examples
                .get_untracked()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            let problem = if t.trim().is_empty() {
                Some("Give the entry a title.")
            } else if a.trim().is_empty() {
                Some("Write the answer.")
            } else if ex.is_empty() && !canned.get_untracked() {
                Some("Add at least one example question (one a line).")
            } else {
                None
            };
            if let Some(p) = problem {
                form_error.set(Some(p.into()));
                return;
            }
            let body = JsObj::new()
                .set("title", t.trim())
                .set("answer", a.trim())
                .set("body", a.trim())
                .set("examples", api::strings(&ex))
                .value();
            let (method, path) = match editing.get_untracked() {
                Some(id) => ("PUT", format!("{}/{}", base(), api::segment(&id))),
                None => ("POST", base().to_owned()),
            };
            let app = app.clone();
            let load_items = load_items.clone();
            leptos::task::spawn_local(async move {
                match api::call(&app, method, &path, api::json(&body)).await {
                    Ok(_) => {
                        form_open.set(false);
                        notice.set(Some(
                            if method == "PUT" {
                                "Entry saved."
                            } else {
                                "Entry added."
                            }
                            .into(),
                        ));
                        load_items();
                    }
                    Err(e) => form_error.set(Some(e.message)),
                }
            });
        }
    };
    let remove = {
        let app = app.clone();
        let load_items = load_items.clone();
        move |id: String| {
            if confirming.get_untracked().as_deref() != Some(id.as_str()) {
                confirming.set(Some(id));
                return;
            }
            confirming.set(None);
            let app = app.clone();
            let load_items = load_items.clone();
            leptos::task::spawn_local(async move {
                match api::call(
                    &app,
                    "DELETE",
                    &format!("{}/{}", base(), api::segment(&id)),
                    None,
                )
                .await
                {
                    Ok(_) => {
                        notice.set(Some("Entry deleted.".into()));
                        load_items();
                    }
                    Err(e) => notice.set(Some(e.message)),
                }
            });
        }
    };

    // Import.
    let import_result: RwSignal<Option<(String, Vec<String>)>> = RwSignal::new(None);
    let import = {
        let app = app.clone();
        let load_items = load_items.clone();
        move |ev: leptos::ev::Event| {
            let Some(input) = ev.target() else { return };
            let input: JsValue = input.into();
            let app = app.clone();
            let load_items = load_items.clone();
            let input_again = input.clone();
            import_result.set(Some(("Reading the file…".into(), vec![])));
            let picked = api::read_picked(&input, move |name, text| {
                let _ = js_sys::Reflect::set(&input_again, &"value".into(), &"".into());
                let Some(format) = import_format(&name) else {
                    import_result.set(Some((
                        format!("{name}: pick a .jsonl, .csv or .md file."),
                        vec![],
                    )));
                    return;
                };
                let Some(text) = text else {
                    import_result.set(Some((format!("{name} could not be read."), vec![])));
                    return;
                };
                leptos::task::spawn_local(async move {
                    let path = format!("/kb/import?format={format}");
                    match api::call(&app, "POST", &path, Some((text, "text/plain"))).await {
                        Ok(v) => {
                            let n = |k| crate::wire::uint(&v, k).unwrap_or_default();
                            let errors = list(&v, "errors", |e| {
                                Some(format!(
                                    "Line {}: {}",
                                    crate::wire::uint(e, "line").unwrap_or_default(),
                                    string(e, "message").unwrap_or_default()
                                ))
                            })
                            .unwrap_or_default();
                            import_result.set(Some((
                                format!(
                                    "{name}: {} imported, {} updated, {} with errors.",
                                    n("imported"),
                                    n("updated"),
                                    errors.len()
                                ),
                                errors,
                            )));
                            load_items();
                        }
                        Err(e) if e.missing() => import_result.set(Some((
                            "This server does not offer importing yet.".into(),
                            vec![],
                        ))),
                        Err(e) => {
                            import_result.set(Some((format!("{name}: {}", e.message), vec![])))
                        }
                    }
                });
            });
            if !picked {
                import_result.set(None);
            }
        }
    };

    let search = {
        let load_items = load_items.clone();
        move |ev| {
            query.set(event_target_value(&ev));
            load_items();
        }
    };
    let list_view = {
        let remove = remove.clone();
        move || match items.get() {
            Some(Ok(v)) if v.is_empty() => {
                view! { <p class="na-muted" data-testid="kb-empty">"No entries match."</p> }
                    .into_any()
            }
            None | Some(Err(_)) => {
                let e = items.with(|i| i.as_ref().and_then(|r| r.as_ref().err().cloned()));
                view! { <p class="na-muted" role="status">{e.unwrap_or_else(|| "Loading…".into())}</p> }
                    .into_any()
            }
            Some(Ok(v)) => {
                let count = v.len();
                let rows = v
                    .into_iter()
                    .map(|item| {
                        let remove = remove.clone();
                        let id = item.id.clone();
                        let id_for_label = item.id.clone();
                        let edit_item = item.clone();
                        let n = item.examples.len();
                        view! {
                            <li class="na-kb-item" data-testid="kb-item" data-id=item.id.clone()>
                                <div>
                                    <strong data-testid="kb-title">{item.title}</strong>
                                    <p class="na-body" data-testid="kb-answer">{item.answer}</p>
                                    <span class="na-muted" hidden=canned.get_untracked()>{format!("{n} example question{}", if n == 1 { "" } else { "s" })}</span>
                                </div>
                                <div class="na-actions">
                                    <button type="button" class="na-plain" data-testid="kb-edit" on:click=move |_| start_edit(Some(edit_item.clone()))>"Edit"</button>
                                    <button type="button" class="na-danger" data-testid="kb-delete" on:click=move |_| remove(id.clone())>
                                        {move || if confirming.get().as_deref() == Some(id_for_label.as_str()) { "Confirm delete" } else { "Delete" }}
                                    </button>
                                </div>
                            </li>
                        }
                    })
                    .collect_view();
                view! {
                    <p class="na-muted" data-testid="kb-count">{format!("{count} entries")}</p>
                    <ul class="na-kb">{rows}</ul>
                }
                .into_any()
            }
        }
    };

    let pending_view = {
        let app = app.clone();
        let load_items = load_items.clone();
        let load_pending = load_pending.clone();
        move || {
            let Some(list) = pending.get() else {
                return ().into_any();
            };
            let rows = list
                .into_iter()
                .map(|p| {
                    let q: NodeRef<html::Textarea> = NodeRef::new();
                    let a: NodeRef<html::Textarea> = NodeRef::new();
                    let (orig_q, orig_a) = (p.question.clone(), p.answer.clone());
                    let id = p.id.clone();
                    let decide = {
                        let app = app.clone();
                        let load_items = load_items.clone();
                        let load_pending = load_pending.clone();
                        move |approve: bool| {
                            let value = |r: NodeRef<html::Textarea>| r.get_untracked().map(|e| e.value()).unwrap_or_default();
                            let (nq, na) = (value(q), value(a));
                            let body = (approve && (nq != orig_q || na != orig_a)).then(|| {
                                JsObj::new().set("question", nq.trim()).set("answer", na.trim()).value()
                            });
                            let path = format!(
                                "/kb/pending/{}/{}",
                                api::segment(&id),
                                if approve { "approve" } else { "reject" }
                            );
                            let app = app.clone();
                            let load_items = load_items.clone();
                            let load_pending = load_pending.clone();
                            leptos::task::spawn_local(async move {
                                let body = body.as_ref().and_then(api::json);
                                match api::call(&app, "POST", &path, body).await {
                                    Ok(_) => {
                                        pending_note.set(Some(if approve { "Approved: the AI answers with it now." } else { "Rejected." }.into()));
                                        load_pending();
                                        load_items();
                                    }
                                    Err(e) => pending_note.set(Some(e.message)),
                                }
                            });
                        }
                    };
                    let reject = decide.clone();
                    let conversation = p.conversation_id;
                    let app_open = app.clone();
                    let extends = p.entry_id.clone().map(|e| format!(" · extends entry {e}")).unwrap_or_default();
                    view! {
                        <li class="na-card na-pending-item" data-testid="pending-item" data-id=p.id.clone()>
                            <span class="na-muted">{format!("{}{extends}", origin_text(&p.origin))}</span>
                            <label>"Question"<textarea data-testid="pending-question" node_ref=q prop:value=p.question.clone()></textarea></label>
                            <label>"Answer"<textarea data-testid="pending-answer" node_ref=a prop:value=p.answer.clone()></textarea></label>
                            <div class="na-actions">
                                <button type="button" data-testid="pending-approve" on:click=move |_| decide(true)>"Approve"</button>
                                <button type="button" class="na-danger" data-testid="pending-reject" on:click=move |_| reject(false)>"Reject"</button>
                                <button
                                    type="button"
                                    class="na-plain"
                                    data-testid="pending-conversation"
                                    hidden=conversation.is_none()
                                    on:click=move |_| open_conversation(&app_open, page, conversation)
                                >
                                    "Open the conversation"
                                </button>
                            </div>
                        </li>
                    }
                })
                .collect_view();
            view! {
                <div class="na-card" data-testid="pending">
                    <h3>"Learned answers waiting for approval"</h3>
                    <ul class="na-kb">{rows}</ul>
                    <p class="na-muted" data-testid="pending-empty" hidden=move || pending.with(|p| p.as_ref().is_some_and(|v| !v.is_empty()))>
                        "Nothing waits for approval."
                    </p>
                </div>
            }
            .into_any()
        }
    };

    view! {
        <section class="na-console" data-testid="knowledge">
            <header class="na-console-head">
                <h2>"Knowledge base"</h2>
                <button type="button" class="na-plain" data-testid="kb-canned-toggle" aria-pressed=move || canned.get().to_string() on:click={
                    let load_items = load_items.clone();
                    move |_| {
                        canned.update(|c| *c = !*c);
                        form_open.set(false);
                        load_items();
                    }
                }>{move || if canned.get() { "Show entries" } else { "Canned responses" }}</button>
                <input type="search" class="na-search" data-testid="kb-search" hidden=canned placeholder="Search titles, answers, questions…" aria-label="Search the knowledge base" on:input=search />
                <button type="button" data-testid="kb-add" on:click=move |_| start_edit(None)>"Add entry"</button>
            </header>
            <p class="na-ok" role="status" data-testid="pending-note" hidden=move || canned.get() || pending_note.with(Option::is_none)>{move || pending_note.get().unwrap_or_default()}</p>
            <div hidden=canned>{pending_view}</div>
            <form class="na-card na-form" data-testid="kb-form" on:submit=submit hidden=move || !form_open.get()>
                <h3>{move || if editing.with(Option::is_some) { "Edit entry" } else { "New entry" }}</h3>
                <label>"Title"<input data-testid="kb-form-title" prop:value=move || title.get() on:input=move |ev| title.set(event_target_value(&ev)) /></label>
                <label>"Answer"<textarea data-testid="kb-form-answer" prop:value=move || answer.get() on:input=move |ev| answer.set(event_target_value(&ev))></textarea></label>
                <label hidden=canned>"Example questions (one a line)"<textarea data-testid="kb-form-examples" prop:value=move || examples.get() on:input=move |ev| examples.set(event_target_value(&ev))></textarea></label>
                <p class="na-field-error" role="alert" data-testid="kb-form-error" hidden=move || form_error.with(Option::is_none)>{move || form_error.get().unwrap_or_default()}</p>
                <div class="na-actions">
                    <button type="submit" data-testid="kb-form-save">"Save entry"</button>
                    <button type="button" class="na-plain" on:click=move |_| form_open.set(false)>"Cancel"</button>
                </div>
            </form>
            <div class="na-card" hidden=canned>
                <h3>"Import"</h3>
                <p class="na-muted">"JSON Lines ({\"title\", \"answer\", \"examples\"} a line), CSV (header title,answer,examples or question,answer) or a Markdown FAQ (## Question, then the answer)."</p>
                <input type="file" accept=".jsonl,.ndjson,.csv,.md,.markdown" data-testid="kb-import-file" aria-label="Import a file" on:change=import />
                <p role="status" data-testid="kb-import-result" hidden=move || import_result.with(Option::is_none)>
                    {move || import_result.get().map(|r| r.0).unwrap_or_default()}
                </p>
                <p class="na-field-error na-lines" data-testid="kb-import-errors" hidden=move || import_result.with(|r| r.as_ref().is_none_or(|r| r.1.is_empty()))>
                    {move || import_result.get().map(|r| r.1.join("\n")).unwrap_or_default()}
                </p>
            </div>
            <p class="na-ok" role="status" data-testid="kb-notice" hidden=move || notice.with(Option::is_none)>{move || notice.get().unwrap_or_default()}</p>
            {list_view}
        </section>
    }
}

/// Shows the conversation a learned entry came from in the inbox view.
fn open_conversation(app: &App, page: RwSignal<Page>, id: Option<Uuid>) {
    if let Some(id) = id {
        page.set(Page::Inbox);
        app.open(id);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_form_reads_and_checks_the_settings() {
        let s = json!({"assistant_name": "Nova", "color": "#4f46e5", "greeting": "Hi",
            "autonomy": "auto", "allowed_origins": ["https://a.example"], "identity_secret": "***",
            "learning": "approve",
            "policy": {"answer_threshold": 0.550000011920929, "clarify_margin": 0.05,
                "out_of_scope_threshold": 0.2, "sensitive": [{"category": "legal", "phrases": ["sue"]}]},
            "business_hours": {"timezone": "Europe/Berlin", "days": [{"day": "tue", "open": "09:00", "close": "17:00"}]}});
        let mut f = Form::read(&s);
        assert_eq!(f.get(F::Answer), "0.55");
        assert_eq!(f.get(F::Sensitive), "legal: sue");
        assert_eq!(f.get(F::Origins), "https://a.example");
        assert_eq!(f.hours[1], ("09:00".to_owned(), "17:00".to_owned()));
        assert!(f.secret_set && !f.always_open);
        let all = |_: &str| true;
        assert!(f.check(all).is_empty());
        f.set(F::Color, "blue".into());
        f.set(F::Answer, "2".into());
        f.hours[0] = ("18:00".into(), "08:00".into());
        let bad: Vec<F> = f.check(all).into_iter().map(|e| e.0).collect();
        assert_eq!(bad, [F::Color, F::Answer, F::Timezone]);
        // Settings this server does not have are not checked.
        assert_eq!(f.check(|k| k != "policy" && k != "business_hours").len(), 1);
        let none = Form::read(&json!({"greeting": "Hi"}));
        assert!(none.always_open);
        assert_eq!(
            field_of("Invalid settings: policy.answer_threshold"),
            Some(F::Answer)
        );
        assert_eq!(field_of("something else"), None);
    }
}

/// The visitor of `conversation`, found by the server (`GET /visitors?conversation_id=`).
async fn visitor_of(app: &App, conversation: Uuid) -> Result<String, String> {
    let path = format!("/visitors?conversation_id={conversation}");
    let found = api::call(app, "GET", &path, None)
        .await
        .map_err(|e| e.message)?;
    api::items(&found, |v| string(v, "id"))
        .into_iter()
        .next()
        .ok_or_else(|| "This conversation's visitor is no longer kept.".to_owned())
}

/// Owners, in an open conversation: the privacy requests of its visitor. Export shows
/// everything kept about them as JSON (as text); delete, asked twice, removes it all.
#[component]
pub fn VisitorPrivacy(app: App) -> impl IntoView {
    let desk = app.desk;
    let status = RwSignal::new(String::new());
    let exported = RwSignal::new(String::new());
    let confirm = RwSignal::new(false);
    Effect::new(move |_| {
        desk.with(|d| d.open);
        status.set(String::new());
        exported.set(String::new());
        confirm.set(false);
    });
    let export = {
        let app = app.clone();
        move |_| {
            let Some(conversation) = app.desk.with_untracked(|d| d.open) else {
                return;
            };
            let app = app.clone();
            leptos::task::spawn_local(async move {
                let result = match visitor_of(&app, conversation).await {
                    Ok(id) => api::call(&app, "GET", &format!("/visitors/{id}/export"), None)
                        .await
                        .map_err(|e| e.message),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(v) => {
                        let text = js_sys::JSON::stringify_with_replacer_and_space(
                            &v,
                            &JsValue::NULL,
                            &JsValue::from(2),
                        )
                        .ok()
                        .and_then(|s| s.as_string())
                        .unwrap_or_default();
                        exported.set(text);
                        status.set("Everything kept about this visitor:".into());
                    }
                    Err(e) => status.set(e),
                }
            });
        }
    };
    let delete = {
        let app = app.clone();
        move |_| {
            let Some(conversation) = app.desk.with_untracked(|d| d.open) else {
                return;
            };
            if !confirm.get_untracked() {
                confirm.set(true);
                status.set(
                    "Delete this visitor's conversations, messages, email, ratings and notes, \
                     and their words in what the AI learned? Click \"Delete\" again to confirm."
                        .into(),
                );
                return;
            }
            confirm.set(false);
            exported.set(String::new());
            let app = app.clone();
            leptos::task::spawn_local(async move {
                let result = match visitor_of(&app, conversation).await {
                    Ok(id) => api::call(&app, "DELETE", &format!("/visitors/{id}"), None)
                        .await
                        .map_err(|e| e.message),
                    Err(e) => Err(e),
                };
                status.set(match result {
                    Ok(_) => "The visitor's data was deleted.".into(),
                    Err(e) => e,
                });
            });
        }
    };
    view! {
        <fieldset class="na-privacy" data-testid="visitor-privacy">
            <legend>"Visitor data (privacy requests)"</legend>
            <button type="button" data-testid="visitor-export" on:click=export>"Export"</button>
            <button type="button" data-testid="visitor-delete" on:click=delete>"Delete"</button>
            <p class="na-muted" data-testid="visitor-privacy-status" role="status">{move || status.get()}</p>
            <pre data-testid="visitor-export-json" hidden=move || exported.with(String::is_empty)>{move || exported.get()}</pre>
        </fieldset>
    }
}
