//! The owner console's Knowledge gaps: the questions that went to people (`GET
//! /api/v1/gaps?days=N`), grouped by meaning, largest groups first, with the agents' replies
//! beside each question. "Draft an entry" puts the group into the approval queue (`POST
//! /api/v1/gaps/draft`) with the agents' most common reply as its answer, editable first.
//! Text from the server is only ever rendered as text nodes.

use uuid::Uuid;
use web_sys::Element;

use super::App;
use super::api::{self, JsObj};
use super::playground::{button, el, lines, on_action, request, set_status, set_value, value};
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

/// The page's elements that change, and the groups it shows.
struct Ui {
    status: Element,
    list: Element,
    groups: Vec<Gap>,
    /// Each group's answer field.
    answers: Vec<Element>,
}

type Shared = std::rc::Rc<std::cell::RefCell<Ui>>;

fn show(ui: &mut Ui) {
    ui.list.set_text_content(None);
    ui.answers.clear();
    if ui.groups.is_empty() {
        el(
            &ui.list,
            "p",
            "gaps-empty",
            "na-muted",
            Some("No questions went to people in the last 30 days."),
        );
    }
    for (i, g) in ui.groups.iter().enumerate() {
        let li = el(&ui.list, "li", "gap-group", "na-card", None);
        let n = g.questions.len();
        let mut rows = vec![(
            "gap-count",
            "",
            format!(
                "{n} question{} went to people",
                if n == 1 { "" } else { "s" }
            ),
        )];
        for (_, question, replies) in &g.questions {
            rows.push(("gap-question", "", format!("Visitor: {question}")));
            let replies = if replies.is_empty() {
                "No reply from the team yet.".to_owned()
            } else {
                format!("Team: {}", replies.join("\nTeam: "))
            };
            rows.push(("gap-replies", "na-body na-muted", replies));
        }
        lines(&li, rows);
        let label = el(&li, "label", "", "", Some("Answer of the new entry"));
        let answer = el(&label, "textarea", "gap-answer", "", None);
        set_value(&answer, g.best_reply.as_deref().unwrap_or_default());
        ui.answers.push(answer);
        button(
            &li,
            "gap-draft",
            "",
            "Draft an entry for approval",
            "draft",
            i,
        );
    }
}

fn load(app: &App, ui: &Shared) {
    let ui = ui.clone();
    request(
        app,
        "GET",
        "/gaps?days=30".into(),
        None,
        Box::new(move |result| {
            let mut u = ui.borrow_mut();
            match result {
                Ok(v) => {
                    u.groups = api::items(&v, gap);
                    show(&mut u);
                }
                Err(e) => set_status(&u.status, Some(Err(e.message))),
            }
        }),
    );
}

fn draft(app: &App, ui: &Shared, i: usize) {
    let u = ui.borrow();
    let Some(group) = u.groups.get(i) else {
        return;
    };
    let ids: Vec<String> = group.questions.iter().map(|q| q.0.to_string()).collect();
    let answer = u.answers.get(i).map(value).unwrap_or_default();
    drop(u);
    let body = JsObj::new()
        .set("conversation_ids", api::strings(&ids))
        .set("answer", answer.as_str())
        .value();
    let (app2, ui) = (app.clone(), ui.clone());
    request(
        app,
        "POST",
        "/gaps/draft".into(),
        Some(body),
        Box::new(move |result| {
            let status = result
                .map(|v| {
                    format!(
                        "Drafted: {} questions wait for approval in the knowledge base.",
                        uint(&v, "pending").unwrap_or(0)
                    )
                })
                .map_err(|e| e.message);
            let ok = status.is_ok();
            set_status(&ui.borrow().status, Some(status));
            if ok {
                load(&app2, &ui);
            }
        }),
    );
}

/// Builds the Knowledge gaps page in `root`.
pub fn gaps(root: Element, app: App) {
    el(&root, "h2", "", "", Some("Knowledge gaps"));
    el(
        &root,
        "p",
        "",
        "na-muted",
        Some(
            "Questions the AI handed to people in the last 30 days, alike ones grouped, with what the team answered. Draft an entry and approve it in the knowledge base: the AI answers the next such question.",
        ),
    );
    let status = el(&root, "p", "gaps-status", "", None);
    let _ = status.set_attribute("role", "status");
    set_status(&status, None);
    let list = el(&root, "ul", "gap-groups", "na-kb", None);
    let ui: Shared = std::rc::Rc::new(std::cell::RefCell::new(Ui {
        status,
        list,
        groups: Vec::new(),
        answers: Vec::new(),
    }));
    load(&app, &ui);
    on_action(&root, move |action, i| {
        if action == "draft" {
            draft(&app, &ui, i);
        }
    });
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
