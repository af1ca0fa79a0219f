//! The owner console's Playground: type a question (or paste several, one a line) and see what
//! the AI would do for a new visitor now (`POST /api/v1/playground`): the decision, its
//! confidence, the answer and its sources with their passage, the close entries and the rule
//! that decided. Fix in place (add the question to an entry, edit the entry's answer, both
//! through `PUT /api/v1/kb/{id}`) and the questions are tried again. Replay runs the site's
//! last conversations' first questions (`POST /api/v1/playground/replay`). Text from the
//! server is only ever rendered as text nodes.

use leptos::prelude::*;
use wasm_bindgen::JsValue;

use super::App;
use super::api::{self, JsObj};
use super::data::{KbItem, kb_item};
use crate::wire::{Json, flag, list, string, uint};

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

/// The replay's counts, as a line: `answered / clarified / handed over (/ no reply)`.
fn counts_text<J: Json>(v: &J, key: &str) -> String {
    let c = v.get(key);
    let n = |k| c.as_ref().and_then(|c| uint(c, k)).unwrap_or(0);
    let mut out = format!(
        "{} answered, {} clarified, {} handed over",
        n("answered"),
        n("clarified"),
        n("handed_over")
    );
    if n("none") > 0 {
        out.push_str(&format!(", {} without a reply", n("none")));
    }
    out
}

#[component]
pub fn PlaygroundPage(app: App) -> impl IntoView {
    let input = RwSignal::new(String::new());
    let asked: RwSignal<Vec<String>> = RwSignal::new(Vec::new());
    let results: RwSignal<Vec<Tried>> = RwSignal::new(Vec::new());
    let entries: RwSignal<Vec<KbItem>> = RwSignal::new(Vec::new());
    let status: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    let busy = RwSignal::new(false);

    let load_entries = {
        let app = app.clone();
        move || {
            let app = app.clone();
            leptos::task::spawn_local(async move {
                if let Ok(v) = api::call(&app, "GET", "/kb", None).await {
                    entries.set(api::items(&v, kb_item));
                }
            });
        }
    };
    load_entries();

    let run = {
        let app = app.clone();
        move |questions: Vec<String>| {
            if questions.is_empty() {
                status.set(Some(Err("Type a question first.".into())));
                return;
            }
            let app = app.clone();
            busy.set(true);
            asked.set(questions.clone());
            leptos::task::spawn_local(async move {
                let body = JsObj::new()
                    .set("questions", api::strings(&questions))
                    .value();
                let result = api::call(&app, "POST", "/playground", api::json(&body)).await;
                busy.set(false);
                match result {
                    Ok(v) => {
                        results.set(api::items(&v, tried));
                        status.set(None);
                    }
                    Err(e) => status.set(Some(Err(e.message))),
                }
            });
        }
    };
    let try_now = {
        let run = run.clone();
        move |_| {
            let questions: Vec<String> = input
                .get_untracked()
                .lines()
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_owned)
                .collect();
            run(questions);
        }
    };

    // Fix in place: change one entry, then try the same questions again.
    let fix = {
        let (app, run, load_entries) = (app.clone(), run.clone(), load_entries.clone());
        move |id: String, example: Option<String>, answer: Option<String>| {
            let (app, run, load_entries) = (app.clone(), run.clone(), load_entries.clone());
            busy.set(true);
            leptos::task::spawn_local(async move {
                let path = format!("/kb/{}", api::segment(&id));
                let saved = match api::call(&app, "GET", &path, None).await {
                    Ok(v) => match kb_item(&v) {
                        Some(mut entry) => {
                            if let Some(q) = example {
                                entry.examples.push(q);
                            }
                            if let Some(a) = answer {
                                entry.answer = a;
                            }
                            let body = JsObj::new()
                                .set("title", entry.title.as_str())
                                .set("answer", entry.answer.as_str())
                                .set("examples", api::strings(&entry.examples))
                                .value();
                            api::call(&app, "PUT", &path, api::json(&body))
                                .await
                                .map(|_| entry.title)
                        }
                        None => Err(api::ApiError {
                            status: 0,
                            code: String::new(),
                            message: "The entry could not be read.".into(),
                        }),
                    },
                    Err(e) => Err(e),
                };
                busy.set(false);
                match saved {
                    Ok(title) => {
                        status.set(Some(Ok(format!("Saved \u{201c}{title}\u{201d}; tried again."))));
                        load_entries();
                        run(asked.get_untracked());
                    }
                    Err(e) if e.status == 404 => status.set(Some(Err(
                        "Only Q&A entries can be changed here; edit an article on the Articles page."
                            .into(),
                    ))),
                    Err(e) => status.set(Some(Err(e.message))),
                }
            });
        }
    };

    let result_view = move |r: Tried| {
        let (fix_add, fix_answer) = (fix.clone(), fix.clone());
        let pick = RwSignal::new(
            entries
                .get_untracked()
                .first()
                .map(|e| e.id.clone())
                .unwrap_or_default(),
        );
        let source_id = r.sources.first().map(|s| s.0.clone());
        let edited = RwSignal::new(r.sources.first().map(|s| s.3.clone()).unwrap_or_default());
        let question = r.question.clone();
        let options = move || {
            entries
                .get()
                .into_iter()
                .map(|e| view! { <option value=e.id.clone()>{e.title}</option> })
                .collect_view()
        };
        let sources = r
            .sources
            .iter()
            .map(|(_, title, url, passage)| {
                view! {
                    <li data-testid="playground-source">
                        <strong>{title.clone()}</strong>
                        <span class="na-muted" hidden=url.is_none()>{format!(" {}", url.clone().unwrap_or_default())}</span>
                        <p class="na-body">{passage.clone()}</p>
                    </li>
                }
            })
            .collect_view();
        let candidates = r
            .candidates
            .iter()
            .map(|(t, c)| format!("{t} ({})", hundredths(*c)))
            .collect::<Vec<_>>()
            .join(" · ");
        let confidence = r
            .confidence
            .map(|c| format!(" · confidence {}", hundredths(c)))
            .unwrap_or_default();
        let has_source = source_id.is_some();
        view! {
            <li class="na-card" data-testid="playground-result" data-outcome=r.outcome.clone()>
                <strong data-testid="playground-question">{r.question.clone()}</strong>
                <p data-testid="playground-decision">{format!("{}{confidence}{}", outcome_text(&r.outcome), if r.draft { " (as a draft)" } else { "" })}</p>
                <p class="na-muted" data-testid="playground-why">{format!("{}: {}", stage_text(&r.stage), r.why)}</p>
                <p class="na-body" data-testid="playground-answer" hidden=r.answer.is_none()>{r.answer.clone().unwrap_or_default()}</p>
                <ul class="na-kb">{sources}</ul>
                <p class="na-muted" data-testid="playground-candidates" hidden=candidates.is_empty()>{format!("Close entries: {candidates}")}</p>
                <div class="na-actions">
                    <label>"Add this question to "
                        <select data-testid="playground-entry" prop:value=move || pick.get() on:change=move |ev| pick.set(event_target_value(&ev))>{options}</select>
                    </label>
                    <button type="button" data-testid="playground-add-example" disabled=busy
                        on:click=move |_| {
                            // Before any change the select shows its first entry.
                            let id = Some(pick.get_untracked())
                                .filter(|id| !id.is_empty())
                                .or_else(|| entries.get_untracked().first().map(|e| e.id.clone()))
                                .unwrap_or_default();
                            fix_add(id, Some(question.clone()), None);
                        }>"Add"</button>
                </div>
                <div class="na-form" hidden=!has_source>
                    <label>"Edit the answer"
                        <textarea data-testid="playground-edit-answer" prop:value=move || edited.get() on:input=move |ev| edited.set(event_target_value(&ev))></textarea>
                    </label>
                    <button type="button" data-testid="playground-save-answer" disabled=busy
                        on:click=move |_| if let Some(id) = source_id.clone() { fix_answer(id, None, Some(edited.get_untracked())) }>"Save answer"</button>
                </div>
            </li>
        }
    };

    // Replay.
    let last = RwSignal::new("50".to_owned());
    let replay: RwSignal<Option<Result<JsValue, String>>> = RwSignal::new(None);
    let run_replay = {
        let app = app.clone();
        move |_| {
            let app = app.clone();
            let n: u32 = last.get_untracked().trim().parse().unwrap_or(0);
            replay.set(None);
            leptos::task::spawn_local(async move {
                let body = JsObj::new().set("last", n).value();
                let result = api::call(&app, "POST", "/playground/replay", api::json(&body))
                    .await
                    .map_err(|e| e.message);
                replay.set(Some(result));
            });
        }
    };
    let replay_view = move || {
        replay.get().map(|r| match r {
            Err(e) => view! { <p class="na-field-error" role="alert">{e}</p> }.into_any(),
            Ok(v) => {
                let changed = v
                    .get("changed")
                    .and_then(|c| c.items())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| {
                        let now = c.get("now").and_then(|n| tried(&n)).unwrap_or_default();
                        let then = string(&c, "then").unwrap_or_default();
                        view! {
                            <li data-testid="replay-change">
                                <strong>{string(&c, "question").unwrap_or_default()}</strong>
                                <p>{format!("Then: {} · now: {}", outcome_text(&then), outcome_text(&now.outcome))}</p>
                                <p class="na-muted">{now.why}</p>
                            </li>
                        }
                    })
                    .collect_view();
                view! {
                    <div data-testid="replay-report">
                        <p data-testid="replay-then">{format!("Then: {}", counts_text(&v, "then"))}</p>
                        <p data-testid="replay-now">{format!("Now: {}", counts_text(&v, "now"))}</p>
                        <p class="na-muted">{format!("{} first questions of conversations replayed.", uint(&v, "replayed").unwrap_or(0))}</p>
                        <ul class="na-kb">{changed}</ul>
                    </div>
                }
                .into_any()
            }
        })
    };

    view! {
        <section class="na-console" data-testid="playground">
            <header class="na-console-head">
                <h2>"Playground"</h2>
            </header>
            <p class="na-muted">"What the AI would do now for a new visitor. Nothing is sent to anyone."</p>
            <div class="na-card na-form">
                <label>"Questions (one a line)"
                    <textarea data-testid="playground-questions" prop:value=move || input.get() on:input=move |ev| input.set(event_target_value(&ev))></textarea>
                </label>
                <div class="na-actions">
                    <button type="button" data-testid="playground-try" disabled=busy on:click=try_now>"Try"</button>
                </div>
            </div>
            <p class="na-lines" role="status" data-testid="playground-status"
                class:na-ok=move || status.with(|s| matches!(s, Some(Ok(_))))
                class:na-field-error=move || status.with(|s| matches!(s, Some(Err(_))))
                hidden=move || status.with(Option::is_none)>
                {move || status.get().map(|s| s.unwrap_or_else(|e| e)).unwrap_or_default()}
            </p>
            <ul class="na-kb" data-testid="playground-results">
                {move || results.get().into_iter().map(result_view.clone()).collect_view()}
            </ul>
            <h3>"Replay"</h3>
            <div class="na-card na-form">
                <label>"The last conversations' first questions: how many"
                    <input type="number" min="1" max="200" data-testid="replay-last" prop:value=move || last.get() on:input=move |ev| last.set(event_target_value(&ev)) />
                </label>
                <div class="na-actions">
                    <button type="button" data-testid="replay-run" on:click=run_replay>"Replay"</button>
                </div>
            </div>
            {replay_view}
        </section>
    }
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
        assert_eq!(
            counts_text(
                &json!({"then": {"answered": 1, "clarified": 0, "handed_over": 2, "none": 1}}),
                "then"
            ),
            "1 answered, 0 clarified, 2 handed over, 1 without a reply"
        );
    }
}
