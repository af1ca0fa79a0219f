//! The owner console's Knowledge gaps: the questions that went to people (`GET
//! /api/v1/gaps?days=N`), grouped by meaning, largest groups first, with the agents' replies
//! beside each question. "Draft an entry" puts the group into the approval queue (`POST
//! /api/v1/gaps/draft`) with the agents' most common reply as its answer, editable first.
//! Text from the server is only ever rendered as text nodes.

use leptos::prelude::*;
use uuid::Uuid;

use super::App;
use super::api::{self, JsObj};
use crate::wire::{Json, list, string, uint, uuid};

/// A group of questions that went to people.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gap {
    /// `(conversation, question, the agents' replies)`.
    pub questions: Vec<(Uuid, String, Vec<String>)>,
    pub best_reply: Option<String>,
}

pub fn gap<J: Json>(v: &J) -> Option<Gap> {
    Some(Gap {
        questions: list(v, "questions", |q| {
            Some((
                uuid(q, "conversation_id")?,
                string(q, "question")?,
                list(q, "replies", J::string).unwrap_or_default(),
            ))
        })?,
        best_reply: string(v, "best_reply"),
    })
}

const PERIODS: [(u32, &str); 3] = [(7, "7 days"), (30, "30 days"), (90, "90 days")];

#[component]
pub fn GapsPage(app: App) -> impl IntoView {
    let days = RwSignal::new(30u32);
    let groups: RwSignal<Option<Result<Vec<Gap>, String>>> = RwSignal::new(None);
    let status: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    let load = {
        let app = app.clone();
        move || {
            let app = app.clone();
            groups.set(None);
            leptos::task::spawn_local(async move {
                let path = format!("/gaps?days={}", days.get_untracked());
                let result = api::call(&app, "GET", &path, None)
                    .await
                    .map(|v| api::items(&v, gap))
                    .map_err(|e| e.message);
                groups.set(Some(result));
            });
        }
    };
    load();
    let draft = {
        let (app, load) = (app.clone(), load.clone());
        move |ids: Vec<Uuid>, answer: String| {
            let (app, load) = (app.clone(), load.clone());
            leptos::task::spawn_local(async move {
                let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
                let body = JsObj::new()
                    .set("conversation_ids", api::strings(&ids))
                    .set("answer", answer.as_str())
                    .value();
                match api::call(&app, "POST", "/gaps/draft", api::json(&body)).await {
                    Ok(v) => {
                        status.set(Some(Ok(format!(
                            "Drafted: {} questions wait for approval in the knowledge base.",
                            uint(&v, "pending").unwrap_or(0)
                        ))));
                        load();
                    }
                    Err(e) => status.set(Some(Err(e.message))),
                }
            });
        }
    };
    let group_view = move |g: Gap| {
        let draft = draft.clone();
        let answer = RwSignal::new(g.best_reply.clone().unwrap_or_default());
        let ids: Vec<Uuid> = g.questions.iter().map(|q| q.0).collect();
        let count = g.questions.len();
        let rows = g
            .questions
            .into_iter()
            .map(|(_, question, replies)| {
                let replies = if replies.is_empty() {
                    "No reply from the team yet.".to_owned()
                } else {
                    replies.join("\n")
                };
                view! {
                    <tr data-testid="gap-question">
                        <td>{question}</td>
                        <td class="na-body" data-testid="gap-replies">{replies}</td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <li class="na-card" data-testid="gap-group">
                <strong data-testid="gap-count">{format!("{count} question{} went to people", if count == 1 { "" } else { "s" })}</strong>
                <table class="na-table">
                    <thead><tr><th>"Visitor asked"</th><th>"The team replied"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
                <label>"Answer of the new entry"
                    <textarea data-testid="gap-answer" prop:value=move || answer.get() on:input=move |ev| answer.set(event_target_value(&ev))></textarea>
                </label>
                <div class="na-actions">
                    <button type="button" data-testid="gap-draft" on:click=move |_| {
                        let text = answer.get_untracked();
                        if text.trim().is_empty() {
                            status.set(Some(Err("Write the answer first.".into())));
                            return;
                        }
                        draft(ids.clone(), text);
                    }>"Draft an entry for approval"</button>
                </div>
            </li>
        }
    };
    let pick = {
        let load = load.clone();
        move |ev| {
            if let Ok(n) = event_target_value(&ev).parse() {
                days.set(n);
                load();
            }
        }
    };
    let options = PERIODS
        .iter()
        .map(|(n, label)| view! { <option value=n.to_string() selected=*n == 30>{*label}</option> })
        .collect_view();
    view! {
        <section class="na-console" data-testid="gaps">
            <header class="na-console-head">
                <h2>"Knowledge gaps"</h2>
                <label class="na-inline">"Last "<select data-testid="gaps-period" on:change=pick>{options}</select></label>
            </header>
            <p class="na-muted">"Questions the AI handed to people, alike ones grouped, with what the team answered. Draft an entry and approve it in the knowledge base: the AI answers the next such question."</p>
            <p class="na-lines" role="status" data-testid="gaps-status"
                class:na-ok=move || status.with(|s| matches!(s, Some(Ok(_))))
                class:na-field-error=move || status.with(|s| matches!(s, Some(Err(_))))
                hidden=move || status.with(Option::is_none)>
                {move || status.get().map(|s| s.unwrap_or_else(|e| e)).unwrap_or_default()}
            </p>
            <ul class="na-kb" data-testid="gap-groups">
                {move || match groups.get() {
                    None => view! { <p class="na-muted" role="status">"Loading…"</p> }.into_any(),
                    Some(Err(e)) => view! { <p class="na-field-error" role="alert">{e}</p> }.into_any(),
                    Some(Ok(g)) if g.is_empty() => view! { <p class="na-muted" data-testid="gaps-empty">"No questions went to people in this period."</p> }.into_any(),
                    Some(Ok(g)) => g.into_iter().map(group_view.clone()).collect_view().into_any(),
                }}
            </ul>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_group_reads_with_its_replies() {
        let v = json!({
            "questions": [{"conversation_id": "00000000-0000-0000-0000-000000000011",
                "question": "gift wrap?", "asked_at": 1, "replies": ["Yes, 3 euros."]}],
            "best_reply": "Yes, 3 euros."
        });
        let g = gap(&v).unwrap();
        assert_eq!(g.questions[0].1, "gift wrap?");
        assert_eq!(g.questions[0].2, vec!["Yes, 3 euros.".to_owned()]);
        assert_eq!(g.best_reply.as_deref(), Some("Yes, 3 euros."));
    }
}
