//! The owner console's Playground: type a question (or paste several, one a line) and see what
//! the AI would do for a new visitor now (`POST /api/v1/playground`): the decision, its
//! confidence, the answer and its sources with their passage, the close entries and the rule
//! that decided. Fix in place: add a question to the chosen entry (`PUT /api/v1/kb/{id}`) and
//! the questions are tried again; or edit the answer of the entry a result answered from, and
//! try again.
//! Replay (`POST /api/v1/playground/replay`): the site's last 50 visitors' first questions
//! against the knowledge base as it is now, with the counts then and now and every question
//! whose outcome or answer changed. Text from the server is only ever set as text nodes.
//!
//! The page is built with a few DOM calls (also used by [`super::gaps`]) instead of `view!`:
//! the same pages as components cost the agent bundle about 27 KB gzipped, beyond its budget.

use leptos::prelude::*;
use wasm_bindgen::JsValue;

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::Element;

use super::App;
use super::api::{self, JsObj};
use super::data::kb_item;
use crate::wire::{Json, flag, list, string};

/// One tried question, as the page shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tried {
    pub question: String,
    pub outcome: String,
    pub confidence: Option<f64>,
    pub answer: Option<String>,
    /// `(entry id, title, url, passage)`.
    pub sources: Vec<(String, String, Option<String>, String)>,
    /// `(title, confidence)`.
    pub candidates: Vec<(String, f64)>,
    pub stage: String,
    pub why: String,
    pub draft: bool,
}

pub fn tried<J: Json>(v: &J) -> Option<Tried> {
    Some(Tried {
        question: string(v, "question")?,
        outcome: string(v, "outcome")?,
        confidence: v.get("confidence").and_then(|c| c.number()),
        answer: string(v, "answer"),
        sources: list(v, "sources", |s| {
            Some((
                string(s, "entry_id")?,
                string(s, "title")?,
                string(s, "url"),
                string(s, "passage").unwrap_or_default(),
            ))
        })
        .unwrap_or_default(),
        candidates: list(v, "candidates", |c| {
            Some((string(c, "title")?, c.get("confidence")?.number()?))
        })
        .unwrap_or_default(),
        stage: string(v, "stage").unwrap_or_default(),
        why: string(v, "why").unwrap_or_default(),
        draft: flag(v, "draft").unwrap_or(false),
    })
}

/// The decision in words.
pub fn outcome_text(outcome: &str) -> &'static str {
    match outcome {
        "answer" => "Answers",
        "clarify" => "Asks which one is meant",
        "escalate" => "Hands over to a person",
        _ => "No reply",
    }
}

/// The step that decided, in words.
pub fn stage_text(stage: &str) -> &'static str {
    match stage {
        "autonomy" => "Autonomy setting",
        "before_engine" => "Policy, before the engine",
        "after_engine" => "Policy, after the engine",
        _ => "Answer engine",
    }
}

/// A confidence as two decimals, without float formatting in the bundle.
fn hundredths(c: f64) -> String {
    let n = (c.clamp(0.0, 1.0) * 100.0).round() as u32;
    format!("{}.{:02}", n / 100, n % 100)
}

// ----- a few DOM calls, shared with the gaps page -----
//
// Text is only ever set with `textContent` (a text node), never as HTML; one delegated click
// listener per page serves every button (`data-action`, `data-i`), and is dropped with the
// page.

/// Appends a `tag` element to `parent`, with a class, a `data-testid` and its text (as a
/// text node) when given.
pub fn el(parent: &Element, tag: &str, testid: &str, class: &str, text: Option<&str>) -> Element {
    let Some(e) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element(tag).ok())
    else {
        return parent.clone();
    };
    if !class.is_empty() {
        e.set_class_name(class);
    }
    if !testid.is_empty() {
        let _ = e.set_attribute("data-testid", testid);
    }
    if text.is_some() {
        e.set_text_content(text);
    }
    let _ = parent.append_child(&e);
    e
}

/// A button that runs `action` (with its index `i`) through the page's click listener.
pub fn button(parent: &Element, testid: &str, class: &str, label: &str, action: &str, i: usize) {
    let b = el(parent, "button", testid, class, Some(label));
    let _ = b.set_attribute("type", "button");
    let _ = b.set_attribute("data-action", action);
    let _ = b.set_attribute("data-i", &i.to_string());
}

/// The `value` of a form field.
pub fn value(e: &Element) -> String {
    string(&JsValue::from(e.clone()), "value").unwrap_or_default()
}

pub fn set_value(e: &Element, v: &str) {
    let _ = js_sys::Reflect::set(e, &"value".into(), &v.into());
}

/// Shows `Ok(text)` or `Err(text)` in a status line; `None` hides it.
pub fn set_status(e: &Element, status: Option<Result<String, String>>) {
    let (class, text) = match &status {
        Some(Ok(t)) => ("na-lines na-ok", t.as_str()),
        Some(Err(t)) => ("na-lines na-field-error", t.as_str()),
        None => ("na-lines", ""),
    };
    e.set_class_name(class);
    e.set_text_content(Some(text));
    let _ = e.toggle_attribute_with_force("hidden", status.is_none());
}

/// Calls `act(action, i)` for every click on a `[data-action]` button inside `root`, for as
/// long as the component that calls this lives.
pub fn on_action(root: &Element, act: impl Fn(String, usize) + 'static) {
    let listener = Closure::<dyn Fn(web_sys::Event)>::new(move |ev: web_sys::Event| {
        let Some(target) = ev
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .and_then(|t| t.closest("[data-action]").ok().flatten())
        else {
            return;
        };
        let i = target
            .get_attribute("data-i")
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        act(target.get_attribute("data-action").unwrap_or_default(), i);
    });
    let _ = root.add_event_listener_with_callback("click", listener.as_ref().unchecked_ref());
    StoredValue::new_local(listener);
}

/// What a REST call answered.
pub type Answer = Result<JsValue, api::ApiError>;

/// `method path` with an optional JSON body; `done` gets the answer. One future for every call
/// of both pages.
pub fn request(
    app: &App,
    method: &'static str,
    path: String,
    body: Option<JsValue>,
    done: Box<dyn FnOnce(Answer)>,
) {
    let app = app.clone();
    leptos::task::spawn_local(async move {
        let body = body.as_ref().and_then(api::json);
        done(api::call(&app, method, &path, body).await);
    });
}

/// A console page built by `build` with DOM calls once its `<section>` is on the page (right
/// after this render).
pub fn page(testid: &'static str, app: App, build: fn(Element, App)) -> impl IntoView {
    leptos::task::spawn_local(async move {
        let root = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| {
                d.query_selector(&format!("[data-testid=\"{testid}\"]"))
                    .ok()
            })
            .flatten();
        if let Some(root) = root {
            build(root, app);
        }
    });
    view! { <section class="na-console" data-testid=testid></section> }
}

/// One line of text per `(testid, class, text)`.
pub fn lines(parent: &Element, lines: Vec<(&'static str, &'static str, String)>) {
    for (testid, class, text) in lines {
        el(parent, "p", testid, class, Some(&text));
    }
}

/// A result's lines: the question, the decision, why, the answer, the sources and the close
/// entries.
fn result_lines(r: &Tried) -> Vec<(&'static str, &'static str, String)> {
    let confidence = r
        .confidence
        .map(|c| format!(" · confidence {}", hundredths(c)))
        .unwrap_or_default();
    let draft = if r.draft { " (as a draft)" } else { "" };
    let mut lines = vec![
        ("playground-question", "", r.question.clone()),
        (
            "playground-decision",
            "",
            format!("{}{confidence}{draft}", outcome_text(&r.outcome)),
        ),
        (
            "playground-why",
            "na-muted",
            format!("{}: {}", stage_text(&r.stage), r.why),
        ),
    ];
    if let Some(answer) = &r.answer {
        lines.push(("playground-answer", "na-body", answer.clone()));
    }
    for (_, title, url, passage) in &r.sources {
        let link = url.as_ref().map(|u| format!(" ({u})")).unwrap_or_default();
        lines.push((
            "playground-source",
            "na-body",
            format!("Source: {title}{link}\n{passage}"),
        ));
    }
    if !r.candidates.is_empty() {
        let close: Vec<String> = r
            .candidates
            .iter()
            .map(|(t, c)| format!("{t} ({})", hundredths(*c)))
            .collect();
        lines.push((
            "playground-candidates",
            "na-muted",
            format!("Close entries: {}", close.join(" · ")),
        ));
    }
    lines
}

/// The page's elements that change, and what it tried last.
struct Ui {
    questions: Element,
    entry: Element,
    status: Element,
    results: Element,
    replay: Element,
    /// Each result's answer field, for a result answered from a Q&A entry.
    answers: Vec<Option<Element>>,
    /// How many times results were shown (`data-round` on the list: a test waits for the
    /// round after a fix rather than for text an earlier round may show too).
    round: u32,
    asked: Vec<String>,
    tried: Vec<Tried>,
}

type Shared = std::rc::Rc<std::cell::RefCell<Ui>>;

fn build(root: &Element) -> Ui {
    el(root, "h2", "", "", Some("Playground"));
    el(
        root,
        "p",
        "",
        "na-muted",
        Some("What the AI would do now for a new visitor. Nothing is sent to anyone."),
    );
    let form = el(root, "div", "", "na-card na-form", None);
    let label = el(&form, "label", "", "", Some("Questions (one a line)"));
    let questions = el(&label, "textarea", "playground-questions", "", None);
    let label = el(&form, "label", "", "", Some("Entry to add a question to"));
    let entry = el(&label, "select", "playground-entry", "", None);
    let actions = el(&form, "div", "", "na-actions", None);
    button(&actions, "playground-try", "", "Try", "try", 0);
    button(
        &actions,
        "playground-replay",
        "",
        "Replay the last 50 visitor questions",
        "replay",
        0,
    );
    let status = el(root, "p", "playground-status", "", None);
    let _ = status.set_attribute("role", "status");
    set_status(&status, None);
    let results = el(root, "ul", "playground-results", "na-kb", None);
    let replay = el(root, "div", "playground-replay-report", "", None);
    Ui {
        questions,
        entry,
        status,
        results,
        replay,
        answers: Vec::new(),
        round: 0,
        asked: Vec::new(),
        tried: Vec::new(),
    }
}

fn show_results(ui: &mut Ui) {
    ui.results.set_text_content(None);
    ui.answers.clear();
    ui.round += 1;
    let _ = ui
        .results
        .set_attribute("data-round", &ui.round.to_string());
    for (i, r) in ui.tried.iter().enumerate() {
        let li = el(&ui.results, "li", "playground-result", "na-card", None);
        let _ = li.set_attribute("data-outcome", &r.outcome);
        lines(&li, result_lines(r));
        let actions = el(&li, "div", "", "na-actions", None);
        button(
            &actions,
            "playground-add-example",
            "",
            "Add this question to the chosen entry",
            "add",
            i,
        );
        // A Q&A entry's answer can be edited here; an article's passage is its source's.
        let entry = r
            .sources
            .first()
            .filter(|(_, _, url, _)| url.is_none() && r.outcome == "answer");
        let answer = entry.map(|(_, title, _, passage)| {
            let label = el(
                &li,
                "label",
                "",
                "",
                Some(&format!("Answer of \u{201c}{title}\u{201d}")),
            );
            let field = el(&label, "textarea", "playground-edit-answer", "", None);
            set_value(&field, passage);
            button(
                &li,
                "playground-save-answer",
                "",
                "Save this answer",
                "answer",
                i,
            );
            field
        });
        ui.answers.push(answer);
    }
}

/// Tries `questions`, shows the results.
fn run(app: &App, ui: &Shared, questions: Vec<String>) {
    let body = JsObj::new()
        .set("questions", api::strings(&questions))
        .value();
    ui.borrow_mut().asked = questions;
    let ui = ui.clone();
    request(
        app,
        "POST",
        "/playground".into(),
        Some(body),
        Box::new(move |result| {
            let mut u = ui.borrow_mut();
            match result {
                Ok(v) => {
                    u.tried = api::items(&v, tried);
                    show_results(&mut u);
                }
                Err(e) => set_status(&u.status, Some(Err(e.message))),
            }
        }),
    );
}

/// A fix made in place: a question added to an entry, or its answer replaced.
enum Fix {
    Example(Option<String>),
    Answer(String),
}

/// Changes one entry, then tries again.
fn fix(app: &App, ui: &Shared, id: String, change: Fix) {
    let path = format!("/kb/{}", api::segment(&id));
    let (app2, ui2) = (app.clone(), ui.clone());
    let failed = |ui: &Shared, message: String| set_status(&ui.borrow().status, Some(Err(message)));
    request(
        app,
        "GET",
        path.clone(),
        None,
        Box::new(move |read| {
            let Some(mut entry) = read.ok().as_ref().and_then(kb_item) else {
                failed(&ui2, "The entry could not be read.".into());
                return;
            };
            match change {
                Fix::Example(example) => entry.examples.extend(example),
                Fix::Answer(answer) => entry.answer = answer,
            }
            let body = JsObj::new()
                .set("title", entry.title.as_str())
                .set("answer", entry.answer.as_str())
                .set("examples", api::strings(&entry.examples))
                .value();
            let (app, ui) = (app2.clone(), ui2.clone());
            request(
                &app2,
                "PUT",
                path,
                Some(body),
                Box::new(move |saved| {
                    if let Err(e) = saved {
                        failed(&ui, e.message);
                        return;
                    }
                    let asked = {
                        let u = ui.borrow_mut();
                        set_status(
                            &u.status,
                            Some(Ok(format!(
                                "Saved \u{201c}{}\u{201d}; tried again.",
                                entry.title
                            ))),
                        );
                        u.asked.clone()
                    };
                    run(&app, &ui, asked);
                }),
            );
        }),
    );
}

/// `then` / `now` counts of a replay in words.
fn counts_text<J: Json>(v: &J, key: &str) -> String {
    let n = |k: &str| {
        v.get(key)
            .and_then(|c| c.get(k))
            .and_then(|x| x.number())
            .unwrap_or(0.0) as u32
    };
    format!(
        "{} answered, {} clarified, {} handed over",
        n("answered"),
        n("clarified"),
        n("handed_over")
    )
}

/// Replays the site's last visitors' questions and shows what changed.
fn replay(app: &App, ui: &Shared) {
    let body = JsObj::new().set("last", 50.0).value();
    let ui = ui.clone();
    request(
        app,
        "POST",
        "/playground/replay".into(),
        Some(body),
        Box::new(move |result| {
            let u = ui.borrow();
            u.replay.set_text_content(None);
            let v = match result {
                Ok(v) => v,
                Err(e) => return set_status(&u.status, Some(Err(e.message))),
            };
            let replayed = v.get("replayed").and_then(|x| x.number()).unwrap_or(0.0) as u32;
            let changed = list(&v, "changed", |c| {
                Some((string(c, "then")?, tried(&c.get("now")?)?))
            })
            .unwrap_or_default();
            lines(
                &u.replay,
                vec![(
                    "replay-summary",
                    "",
                    format!(
                        "Questions replayed: {replayed}. Then: {}. Now: {}. Changed: {}.",
                        counts_text(&v, "then"),
                        counts_text(&v, "now"),
                        changed.len()
                    ),
                )],
            );
            let list = el(&u.replay, "ul", "", "na-kb", None);
            for (then, now) in &changed {
                let li = el(&list, "li", "replay-change", "na-card", None);
                let _ = li.set_attribute("data-outcome", &now.outcome);
                lines(
                    &li,
                    vec![
                        ("", "", now.question.clone()),
                        (
                            "",
                            "na-muted",
                            format!(
                                "Then: {} \u{2192} now: {}",
                                outcome_text(then),
                                outcome_text(&now.outcome)
                            ),
                        ),
                    ],
                );
            }
        }),
    );
}

fn act(app: &App, ui: &Shared, action: &str, i: usize) {
    let u = ui.borrow();
    match action {
        "try" => {
            let questions: Vec<String> = value(&u.questions)
                .lines()
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_owned)
                .collect();
            set_status(&u.status, None);
            drop(u);
            run(app, ui, questions);
        }
        "replay" => {
            drop(u);
            replay(app, ui);
        }
        "add" => {
            let (id, question) = (value(&u.entry), u.tried.get(i).map(|r| r.question.clone()));
            drop(u);
            fix(app, ui, id, Fix::Example(question));
        }
        "answer" => {
            let id = u
                .tried
                .get(i)
                .and_then(|r| r.sources.first())
                .map(|s| s.0.clone());
            let answer = u.answers.get(i).and_then(|a| a.as_ref()).map(value);
            drop(u);
            if let Some((id, answer)) = id.zip(answer) {
                fix(app, ui, id, Fix::Answer(answer));
            }
        }
        _ => {}
    }
}

/// Builds the Playground page in `root`.
pub fn playground(root: Element, app: App) {
    let ui: Shared = std::rc::Rc::new(std::cell::RefCell::new(build(&root)));
    // The entries a question can be added to.
    let entries = ui.clone();
    request(
        &app,
        "GET",
        "/kb".into(),
        None,
        Box::new(move |result| {
            let u = entries.borrow();
            for e in api::items(&result.unwrap_or(JsValue::NULL), kb_item) {
                let o = el(&u.entry, "option", "", "", Some(&e.title));
                let _ = o.set_attribute("value", &e.id);
            }
        }),
    );
    on_action(&root, move |action, i| act(&app, &ui, &action, i));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_result_reads_with_its_sources_and_candidates() {
        let v = json!({
            "question": "q", "outcome": "answer", "confidence": 0.834, "answer": "A",
            "sources": [{"entry_id": "e", "title": "T", "passage": "P"}],
            "candidates": [{"entry_id": "e", "title": "T", "confidence": 0.834}],
            "stage": "engine", "why": "because", "draft": false
        });
        let r = tried(&v).unwrap();
        assert_eq!(r.sources, vec![("e".into(), "T".into(), None, "P".into())]);
        assert_eq!(r.candidates.len(), 1);
        assert_eq!(hundredths(r.confidence.unwrap()), "0.83");
        assert_eq!(outcome_text("escalate"), "Hands over to a person");
        assert_eq!(stage_text("before_engine"), "Policy, before the engine");
    }
}
