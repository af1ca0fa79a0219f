//! Knowledge-base import: `POST /api/v1/kb/import?format=jsonl|csv|md` (owners) with the file
//! as the raw request body. Answers `{"imported": n, "updated": n, "errors": [{"line", "message"}]}`.
//!
//! Formats:
//! - `jsonl`: one JSON object a line, either an entry `{"id"?, "title", "answer", "examples":
//!   [...]}` or the eval format `{"text", "intent"}` (each line one example question, grouped by
//!   intent into the entry whose id or title is the intent; a line may carry an `"answer"` to
//!   create that entry).
//! - `csv`: header `title,answer,examples` (examples separated by `|`) or `question,answer`
//!   (rows with the same answer become one entry).
//! - `md`: a FAQ. Each `## Question` heading starts an entry; the text below it is the answer;
//!   an `Also asked:` line followed by `- ` bullets lists more ways to ask the question. Text
//!   before the first `##` heading is ignored.
//!
//! An entry whose id (or, without an id, whose title) matches an existing entry updates it. A
//! line with an error is skipped and reported; everything else is stored in one transaction, so
//! an import is never half stored. A body that cannot be read at all (unknown format, a CSV
//! without a known header, too many entries) is refused with nothing stored.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use nexus_shared::{ErrorCode, Role, validate_body};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::http::auth::Agent;
use crate::http::error::{ApiJson, ApiQuery, ApiText, AppError};
use crate::http::kb::MAX_EXAMPLES;
use nexus_engine::KbEntry;

/// Most entries one import may create or update.
pub const MAX_IMPORT_ENTRIES: usize = 5000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/kb/import", post(import))
}

#[derive(Debug, Deserialize)]
struct Format {
    format: String,
}

/// A problem with one line of the imported file (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// The result of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub imported: usize,
    pub updated: usize,
    pub errors: Vec<LineError>,
}

/// One parsed item before merging with the knowledge base.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A whole entry (title, answer, examples), optionally with the id to write.
    Entry {
        line: usize,
        id: Option<String>,
        title: String,
        answer: String,
        examples: Vec<String>,
    },
    /// An example question for the entry named `intent` (eval format); `answer` creates the
    /// entry when there is none.
    Example {
        line: usize,
        intent: String,
        text: String,
        answer: Option<String>,
    },
}

fn line_error(line: usize, message: impl Into<String>) -> LineError {
    LineError {
        line,
        message: message.into(),
    }
}

/// Parses a JSONL file.
pub fn parse_jsonl(text: &str) -> (Vec<Item>, Vec<LineError>) {
    #[derive(Deserialize)]
    struct Line {
        id: Option<String>,
        title: Option<String>,
        answer: Option<String>,
        examples: Option<Vec<String>>,
        text: Option<String>,
        intent: Option<String>,
    }
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let parsed: Line = match serde_json::from_str(raw) {
            Ok(l) => l,
            Err(e) => {
                errors.push(line_error(line, format!("Not a JSON object: {e}.")));
                continue;
            }
        };
        match parsed {
            Line {
                text: Some(text),
                intent: Some(intent),
                answer,
                ..
            } => items.push(Item::Example {
                line,
                intent,
                text,
                answer,
            }),
            Line {
                id,
                title: Some(title),
                answer: Some(answer),
                examples,
                ..
            } => items.push(Item::Entry {
                line,
                id,
                title,
                answer,
                examples: examples.unwrap_or_default(),
            }),
            _ => errors.push(line_error(
                line,
                "Expected {\"title\", \"answer\", \"examples\"} or {\"text\", \"intent\"}.",
            )),
        }
    }
    (items, errors)
}

/// Parses a CSV file; `Err` when the header is not one of the known ones.
pub fn parse_csv(text: &str) -> Result<(Vec<Item>, Vec<LineError>), String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("Cannot read the CSV header: {e}."))?
        .iter()
        .map(str::to_lowercase)
        .collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    enum Layout {
        Entries {
            title: usize,
            answer: usize,
            examples: Option<usize>,
        },
        Pairs {
            question: usize,
            answer: usize,
        },
    }
    let layout = match (column("title"), column("question"), column("answer")) {
        (Some(title), _, Some(answer)) => Layout::Entries {
            title,
            answer,
            examples: column("examples"),
        },
        (None, Some(question), Some(answer)) => Layout::Pairs { question, answer },
        _ => {
            return Err(
                "The CSV header must be `title,answer,examples` or `question,answer`.".into(),
            );
        }
    };
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut by_answer: HashMap<String, usize> = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(i + 2, |p| p.line() as usize);
                errors.push(line_error(line, format!("Unreadable CSV row: {e}.")));
                continue;
            }
        };
        let line = record.position().map_or(i + 2, |p| p.line() as usize);
        let field = |n: usize| record.get(n).unwrap_or("").to_owned();
        match layout {
            Layout::Entries {
                title,
                answer,
                examples,
            } => {
                let examples = examples
                    .map(|n| {
                        field(n)
                            .split('|')
                            .map(|q| q.trim().to_owned())
                            .filter(|q| !q.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                items.push(Item::Entry {
                    line,
                    id: None,
                    title: field(title),
                    answer: field(answer),
                    examples,
                });
            }
            Layout::Pairs { question, answer } => {
                let (question, answer) = (field(question), field(answer));
                if question.is_empty() {
                    errors.push(line_error(line, "The question is empty."));
                    continue;
                }
                match by_answer.get(&answer) {
                    Some(&index) => {
                        if let Some(Item::Entry { examples, .. }) = items.get_mut(index) {
                            examples.push(question);
                        }
                    }
                    None => {
                        by_answer.insert(answer.clone(), items.len());
                        items.push(Item::Entry {
                            line,
                            id: None,
                            title: question.clone(),
                            answer,
                            examples: vec![question],
                        });
                    }
                }
            }
        }
    }
    Ok((items, errors))
}

/// Parses a Markdown FAQ (see the module documentation).
pub fn parse_markdown(text: &str) -> (Vec<Item>, Vec<LineError>) {
    struct Open {
        line: usize,
        title: String,
        answer: Vec<String>,
        examples: Vec<String>,
        in_also_asked: bool,
    }
    fn close(open: Open, items: &mut Vec<Item>) {
        let answer = open.answer.join("\n").trim().to_owned();
        let mut examples = vec![open.title.clone()];
        examples.extend(open.examples);
        items.push(Item::Entry {
            line: open.line,
            id: None,
            title: open.title,
            answer,
            examples,
        });
    }
    let mut items = Vec::new();
    let mut current: Option<Open> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if let Some(heading) = trimmed.strip_prefix("## ") {
            if let Some(open) = current.take() {
                close(open, &mut items);
            }
            current = Some(Open {
                line,
                title: heading.trim().trim_end_matches('#').trim().to_owned(),
                answer: Vec::new(),
                examples: Vec::new(),
                in_also_asked: false,
            });
            continue;
        }
        let Some(open) = current.as_mut() else {
            continue;
        };
        if trimmed.eq_ignore_ascii_case("also asked:") {
            open.in_also_asked = true;
            continue;
        }
        if open.in_also_asked {
            if let Some(question) = trimmed
                .strip_prefix("- ")
                .or_else(|| trimmed.strip_prefix("* "))
            {
                open.examples.push(question.trim().to_owned());
                continue;
            }
            if trimmed.is_empty() {
                continue;
            }
            // Text after the bullets belongs to the answer again.
            open.in_also_asked = false;
        }
        open.answer.push(raw.trim_end().to_owned());
    }
    if let Some(open) = current.take() {
        close(open, &mut items);
    }
    (items, Vec::new())
}

fn new_id() -> String {
    format!("kb-{}", &Uuid::new_v4().simple().to_string()[..12])
}

fn validate_entry(entry: &KbEntry) -> Result<(), String> {
    let title = entry.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err("The title must have 1 to 200 characters.".into());
    }
    if entry.id.trim().is_empty() || entry.id.len() > 200 {
        return Err("The id must have 1 to 200 characters.".into());
    }
    validate_body(&entry.answer).map_err(|e| format!("Answer: {}", e.message))?;
    if entry.examples.is_empty() || entry.examples.len() > MAX_EXAMPLES {
        return Err(format!(
            "An entry needs 1 to {MAX_EXAMPLES} example questions."
        ));
    }
    for q in &entry.examples {
        validate_body(q).map_err(|e| format!("Example {q:?}: {}", e.message))?;
    }
    Ok(())
}

/// Merges parsed items into the existing knowledge base. Returns the entries to write, how
/// many of them are new, and the errors of items that were skipped.
pub fn plan(existing: &[KbEntry], items: Vec<Item>) -> (Vec<KbEntry>, usize, Vec<LineError>) {
    let mut errors = Vec::new();
    // Entries touched by this import, by id, with the line that first touched them.
    let mut touched: Vec<(usize, KbEntry, bool)> = Vec::new();
    let find = |touched: &Vec<(usize, KbEntry, bool)>, id: Option<&str>, title: &str| {
        touched.iter().position(|(_, e, _)| match id {
            Some(id) => e.id == id,
            None => e.title.trim().eq_ignore_ascii_case(title.trim()),
        })
    };
    let lookup = |id: Option<&str>, title: &str| {
        existing
            .iter()
            .find(|e| match id {
                Some(id) => e.id == id,
                None => e.title.trim().eq_ignore_ascii_case(title.trim()),
            })
            .cloned()
    };
    let add_examples = |entry: &mut KbEntry, examples: Vec<String>| {
        for q in examples {
            let q = q.trim().to_owned();
            if !q.is_empty() && !entry.examples.iter().any(|e| e.eq_ignore_ascii_case(&q)) {
                entry.examples.push(q);
            }
        }
    };
    for item in items {
        match item {
            Item::Entry {
                line,
                id,
                title,
                answer,
                examples,
            } => {
                let id = id.map(|i| i.trim().to_owned()).filter(|i| !i.is_empty());
                if let Some(index) = find(&touched, id.as_deref(), &title) {
                    let entry = &mut touched[index].1;
                    entry.title = title.trim().to_owned();
                    entry.answer = answer.trim().to_owned();
                    add_examples(entry, examples);
                    continue;
                }
                let (mut entry, is_new) = match lookup(id.as_deref(), &title) {
                    Some(existing) => (existing, false),
                    None => (
                        KbEntry {
                            url: None,
                            id: id.clone().unwrap_or_else(new_id),
                            title: String::new(),
                            answer: String::new(),
                            examples: Vec::new(),
                            escalate: None,
                        },
                        true,
                    ),
                };
                entry.title = title.trim().to_owned();
                entry.answer = answer.trim().to_owned();
                if is_new && examples.is_empty() {
                    entry.examples.push(entry.title.clone());
                }
                add_examples(&mut entry, examples);
                touched.push((line, entry, is_new));
            }
            Item::Example {
                line,
                intent,
                text,
                answer,
            } => {
                let intent = intent.trim().to_owned();
                let index = find(&touched, Some(&intent), "")
                    .or_else(|| find(&touched, None, &intent))
                    .or_else(|| {
                        let existing =
                            lookup(Some(&intent), "").or_else(|| lookup(None, &intent))?;
                        touched.push((line, existing, false));
                        Some(touched.len() - 1)
                    });
                match (index, answer) {
                    (Some(index), _) => add_examples(&mut touched[index].1, vec![text]),
                    (None, Some(answer)) => touched.push((
                        line,
                        KbEntry {
                            url: None,
                            id: intent.clone(),
                            title: intent.replace('_', " "),
                            answer: answer.trim().to_owned(),
                            examples: vec![text.trim().to_owned()],
                            escalate: None,
                        },
                        true,
                    )),
                    (None, None) => errors.push(line_error(
                        line,
                        format!(
                            "There is no entry for intent {intent:?}; add one first or give an \"answer\"."
                        ),
                    )),
                }
            }
        }
    }
    let mut entries = Vec::new();
    let mut created = 0;
    for (line, entry, is_new) in touched {
        match validate_entry(&entry) {
            Ok(()) => {
                created += usize::from(is_new);
                entries.push(entry);
            }
            Err(message) => errors.push(line_error(line, message)),
        }
    }
    errors.sort_by_key(|e| e.line);
    (entries, created, errors)
}

/// `POST /api/v1/kb/import?format=jsonl|csv|md` (owners)
async fn import(
    State(state): State<AppState>,
    Agent(user): Agent,
    ApiQuery(format): ApiQuery<Format>,
    ApiText(body): ApiText,
) -> Result<ApiJson<ImportReport>, AppError> {
    if user.role != Role::Owner {
        return Err(AppError::new(
            ErrorCode::Forbidden,
            "Only the site's owners can change the knowledge base.",
        ));
    }
    let (items, mut errors) = match format.format.as_str() {
        "jsonl" => parse_jsonl(&body),
        "csv" => parse_csv(&body).map_err(|m| AppError::new(ErrorCode::Validation, m))?,
        "md" | "markdown" => parse_markdown(&body),
        other => {
            return Err(AppError::new(
                ErrorCode::Validation,
                format!("Unknown format {other:?}: use jsonl, csv or md."),
            ));
        }
    };
    if items.is_empty() && errors.is_empty() {
        return Err(AppError::new(
            ErrorCode::Validation,
            "The file holds no entries.",
        ));
    }
    let existing = state.store.kb_entries(user.site_id).await?;
    let (entries, imported, plan_errors) = plan(&existing, items);
    if entries.len() > MAX_IMPORT_ENTRIES {
        return Err(AppError::new(
            ErrorCode::Validation,
            format!("One import may hold at most {MAX_IMPORT_ENTRIES} entries."),
        ));
    }
    errors.extend(plan_errors);
    errors.sort_by_key(|e| e.line);
    if !entries.is_empty() {
        state
            .store
            .import_kb_entries(user.site_id, &entries)
            .await?;
        let all = state.store.knowledge(user.site_id).await?;
        state.engine.load_site(user.site_id, all);
    }
    tracing::info!(
        entries = entries.len(),
        errors = errors.len(),
        "knowledge base imported"
    );
    Ok(ApiJson(ImportReport {
        imported,
        updated: entries.len() - imported,
        errors,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, title: &str, examples: &[&str]) -> KbEntry {
        KbEntry {
            url: None,
            id: id.into(),
            title: title.into(),
            answer: "An answer.".into(),
            examples: examples.iter().map(|s| (*s).to_owned()).collect(),
            escalate: None,
        }
    }

    #[test]
    fn markdown_faq_headings_answers_and_also_asked() {
        let md = "# Shop FAQ\nintro text\n\n## How long does shipping take?\nUsually 2 to 4 days.\n\nExpress is next day.\n\nAlso asked:\n- when will my order arrive\n- delivery time\n\n## Can I pay by invoice? ##\nYes, for business customers.\n";
        let (items, errors) = parse_markdown(md);
        assert!(errors.is_empty());
        assert_eq!(
            items,
            vec![
                Item::Entry {
                    line: 4,
                    id: None,
                    title: "How long does shipping take?".into(),
                    answer: "Usually 2 to 4 days.\n\nExpress is next day.".into(),
                    examples: vec![
                        "How long does shipping take?".into(),
                        "when will my order arrive".into(),
                        "delivery time".into()
                    ],
                },
                Item::Entry {
                    line: 13,
                    id: None,
                    title: "Can I pay by invoice?".into(),
                    answer: "Yes, for business customers.".into(),
                    examples: vec!["Can I pay by invoice?".into()],
                },
            ]
        );
    }

    #[test]
    fn csv_both_headers_and_quoted_fields() {
        let (items, errors) = parse_csv(
            "title,answer,examples\nReturns,\"Send it back, free.\",how do I return|refund please\n",
        )
        .unwrap();
        assert!(errors.is_empty());
        assert_eq!(
            items,
            vec![Item::Entry {
                line: 2,
                id: None,
                title: "Returns".into(),
                answer: "Send it back, free.".into(),
                examples: vec!["how do I return".into(), "refund please".into()],
            }]
        );
        let (items, _) =
            parse_csv("question,answer\nwhere are you?,Berlin.\nyour address?,Berlin.\n,x\n")
                .unwrap();
        assert_eq!(items.len(), 1, "same answer, one entry");
        assert!(parse_csv("foo,bar\n1,2\n").is_err());
    }

    #[test]
    fn jsonl_entries_eval_lines_and_errors() {
        let text = "{\"title\":\"Hours\",\"answer\":\"9 to 5.\",\"examples\":[\"when are you open\"]}\n\nnot json\n{\"text\":\"cancel my order\",\"intent\":\"cancel_order\"}\n{\"text\":\"track it\",\"intent\":\"track_order\"}\n{\"foo\":1}\n";
        let (items, errors) = parse_jsonl(text);
        assert_eq!(items.len(), 3);
        assert_eq!(
            errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![3, 6]
        );
        let existing = vec![entry("cancel_order", "Cancel an order", &["cancel please"])];
        let (entries, created, errors) = plan(&existing, items);
        assert_eq!(created, 1, "Hours is new");
        assert_eq!(entries.len(), 2, "Hours and cancel_order");
        let cancel = entries.iter().find(|e| e.id == "cancel_order").unwrap();
        assert_eq!(cancel.examples, vec!["cancel please", "cancel my order"]);
        assert_eq!(errors.len(), 1, "track_order has no entry and no answer");
        assert_eq!(errors[0].line, 5);
    }

    #[test]
    fn same_title_updates_and_invalid_entries_are_reported() {
        let existing = vec![entry("kb-1", "Shipping", &["shipping?"])];
        let items = vec![
            Item::Entry {
                line: 1,
                id: None,
                title: "shipping".into(),
                answer: "Two days.".into(),
                examples: vec!["how fast do you ship".into()],
            },
            Item::Entry {
                line: 2,
                id: None,
                title: "No answer".into(),
                answer: "  ".into(),
                examples: vec!["x".into()],
            },
        ];
        let (entries, created, errors) = plan(&existing, items);
        assert_eq!(created, 0);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id, "kb-1");
        assert_eq!(entries[0].answer, "Two days.");
        assert_eq!(entries[0].examples.len(), 2);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 2);
    }
}
