//! The OpenAPI 3.1 document of the REST API, served at `GET /api/v1/openapi.json`.
//!
//! [`OPERATIONS`] lists every `/api/v1` route; a test reads the route registrations in the
//! server's sources and fails when one is missing here (or listed here but not registered), so
//! the document cannot drift from the router.

use axum::Router;
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::http::error::ApiJson;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// The visitor's token (`Bearer vt_…`).
    Visitor,
    /// Any agent or owner session of the site.
    Agent,
    /// Owners only; agents get 403 `forbidden`.
    Owner,
}

/// One operation of the API.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    /// Under `/api/v1`, with `{param}` segments as in the router.
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub query: &'static [&'static str],
    /// Schema name of the JSON body (`"text"` for a raw text body).
    pub request: Option<&'static str>,
    /// Success status and schema name of the answer (`None`: no body).
    pub response: (u16, Option<&'static str>),
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
) -> Operation {
    Operation {
        method,
        path,
        summary,
        access,
        query: &[],
        request: None,
        response: (200, Some("Object")),
    }
}

const fn with(
    mut o: Operation,
    query: &'static [&'static str],
    request: Option<&'static str>,
    response: (u16, Option<&'static str>),
) -> Operation {
    o.query = query;
    o.request = request;
    o.response = response;
    o
}

use Access::{Agent, Owner, Public, Visitor};

/// Every route under `/api/v1`.
pub const OPERATIONS: &[Operation] = &[
    op(
        "get",
        "/health",
        "The process is up; which engine and database serve",
        Public,
    ),
    op(
        "get",
        "/ready",
        "The database answers (503 `unavailable` otherwise)",
        Public,
    ),
    op("get", "/openapi.json", "This document", Public),
    with(
        op(
            "get",
            "/conversations/{id}/messages",
            "A page of a conversation's timeline, for its visitor",
            Visitor,
        ),
        &["after", "limit"],
        None,
        (200, Some("MessagePage")),
    ),
    with(
        op(
            "post",
            "/auth/login",
            "Log in as an agent or owner; throttled after repeated failures",
            Public,
        ),
        &[],
        Some("Login"),
        (200, Some("Session")),
    ),
    with(
        op("post", "/auth/logout", "End the session", Agent),
        &[],
        None,
        (204, None),
    ),
    op("get", "/me", "Who is logged in", Agent),
    with(
        op(
            "get",
            "/site",
            "The site and its settings (secrets shown as ***)",
            Agent,
        ),
        &[],
        None,
        (200, Some("Site")),
    ),
    with(
        op(
            "patch",
            "/site",
            "Change settings: send only what changes",
            Owner,
        ),
        &[],
        Some("SiteSettings"),
        (200, Some("SiteSettings")),
    ),
    with(
        op("get", "/kb", "Search the knowledge base", Agent),
        &["q"],
        None,
        (200, Some("KbEntryList")),
    ),
    with(
        op(
            "post",
            "/kb",
            "Add an entry; the AI answers from it at once",
            Owner,
        ),
        &[],
        Some("KbEntryInput"),
        (201, Some("KbEntry")),
    ),
    with(
        op("get", "/kb/{id}", "One knowledge-base entry", Agent),
        &[],
        None,
        (200, Some("KbEntry")),
    ),
    with(
        op("put", "/kb/{id}", "Replace an entry", Owner),
        &[],
        Some("KbEntryInput"),
        (200, Some("KbEntry")),
    ),
    with(
        op("delete", "/kb/{id}", "Delete an entry", Owner),
        &[],
        None,
        (204, None),
    ),
    with(
        op(
            "post",
            "/kb/import",
            "Import entries from JSONL, CSV or a Markdown FAQ (raw text body)",
            Owner,
        ),
        &["format"],
        Some("text"),
        (200, Some("ImportReport")),
    ),
    op(
        "get",
        "/kb/pending",
        "Learned entries waiting for approval",
        Owner,
    ),
    op(
        "post",
        "/kb/pending/{id}/approve",
        "Approve a learned entry (optionally edited)",
        Owner,
    ),
    with(
        op(
            "post",
            "/kb/pending/{id}/reject",
            "Reject a learned entry",
            Owner,
        ),
        &[],
        None,
        (204, None),
    ),
    with(
        op(
            "get",
            "/sources",
            "Knowledge sources (articles) with passage counts and last fetch",
            Agent,
        ),
        &[],
        None,
        (200, Some("SourceList")),
    ),
    with(
        op(
            "post",
            "/sources",
            "Add articles by URL, sitemap, upload or paste (200 when the same source is updated in place)",
            Owner,
        ),
        &[],
        Some("SourceInput"),
        (201, Some("SourceImport")),
    ),
    with(
        op(
            "post",
            "/sources/{id}/refresh",
            "Fetch a URL or sitemap source again and update its passages",
            Owner,
        ),
        &[],
        None,
        (200, Some("SourceImport")),
    ),
    with(
        op(
            "delete",
            "/sources/{id}",
            "Delete a source and its passages",
            Owner,
        ),
        &[],
        None,
        (204, None),
    ),
    with(
        op(
            "get",
            "/sources/{id}/passages",
            "A source's passages, in article order",
            Agent,
        ),
        &[],
        None,
        (200, Some("PassageList")),
    ),
    with(
        op("get", "/canned", "The site's canned responses", Agent),
        &[],
        None,
        (200, Some("CannedList")),
    ),
    with(
        op("post", "/canned", "Add a canned response", Owner),
        &[],
        Some("CannedInput"),
        (201, Some("Canned")),
    ),
    with(
        op("put", "/canned/{id}", "Replace a canned response", Owner),
        &[],
        Some("CannedInput"),
        (200, Some("Canned")),
    ),
    with(
        op("delete", "/canned/{id}", "Delete a canned response", Owner),
        &[],
        None,
        (204, None),
    ),
    with(
        op(
            "get",
            "/analytics",
            "Automation, escalations, CSAT, response and handle times over a period",
            Owner,
        ),
        &["from", "to"],
        None,
        (200, Some("Analytics")),
    ),
    with(
        op(
            "post",
            "/playground",
            "What the AI would do now with one or more questions from a new visitor: decision, confidence, sources, close entries and the rule that decided (nothing is written)",
            Owner,
        ),
        &[],
        Some("PlaygroundRequest"),
        (200, Some("PlaygroundResults")),
    ),
    with(
        op(
            "post",
            "/playground/replay",
            "Replay the first visitor question of the site's last N conversations against the current knowledge base: outcomes then and now, and what changed",
            Owner,
        ),
        &[],
        Some("ReplayRequest"),
        (200, Some("ReplayReport")),
    ),
    with(
        op(
            "get",
            "/gaps",
            "Questions that went to people, grouped by meaning, largest groups first, with the agents' replies",
            Owner,
        ),
        &["days"],
        None,
        (200, Some("GapGroups")),
    ),
    with(
        op(
            "post",
            "/gaps/draft",
            "Draft an entry from a group of questions into the approval queue (one pending entry per question)",
            Owner,
        ),
        &[],
        Some("GapDraftRequest"),
        (200, Some("GapDraft")),
    ),
    with(
        op(
            "get",
            "/conversations/{id}/summary",
            "Handoff summary and suggested reply for the agent",
            Agent,
        ),
        &[],
        None,
        (200, Some("HandoffSummary")),
    ),
    with(
        op(
            "post",
            "/sites",
            "Create a new, empty site that the calling owner owns (their account is copied into it)",
            Owner,
        ),
        &[],
        Some("NewSite"),
        (201, Some("Object")),
    ),
    with(
        op(
            "get",
            "/visitors",
            "Find the visitor a privacy request is about: by email, identified user id or conversation",
            Owner,
        ),
        &["email", "user_id", "conversation_id"],
        None,
        (200, Some("VisitorProfiles")),
    ),
    with(
        op(
            "get",
            "/visitors/{visitor_id}/export",
            "Everything kept about one visitor (privacy request)",
            Owner,
        ),
        &[],
        None,
        (200, Some("VisitorExport")),
    ),
    with(
        op(
            "delete",
            "/visitors/{visitor_id}",
            "Delete one visitor and all their data",
            Owner,
        ),
        &[],
        None,
        (204, None),
    ),
];

/// The knowledge sources' schemas (a `json!` of their own: one would exceed the macro's
/// recursion limit).
fn source_schemas() -> Value {
    let string = json!({"type": "string"});
    let int = json!({"type": "integer"});
    let nullable = |t: &str| json!({"type": [t, "null"]});
    json!({
        "SourceInput": {
            "type": "object",
            "required": ["kind"],
            "description": "`url` and `sitemap` are fetched from `url` (public addresses only, unless the server runs with `--egress-allow`); `file` needs `title` (the file name) and `content`; `paste` needs `title` and `content` and may give `url`, the article's public link.",
            "properties": {
                "kind": {"enum": ["url", "sitemap", "file", "paste"]},
                "url": string, "title": string, "content": string,
                "format": {"enum": ["html", "markdown", "text"]}
            }
        },
        "Source": {
            "type": "object",
            "properties": {
                "id": string, "kind": {"enum": ["url", "sitemap", "file", "paste", "page"]},
                "slug": string, "title": string, "url": nullable("string"), "format": string,
                "passages": int, "last_error": nullable("string"), "fetched_at": nullable("integer"),
                "created_at": int, "updated_at": int
            }
        },
        "SourceList": {"type": "array", "items": {"$ref": "#/components/schemas/Source"}},
        "SourceImport": {
            "type": "object",
            "properties": {
                "source": {"$ref": "#/components/schemas/Source"},
                "changes": {"type": "object", "properties": {"added": int, "updated": int, "unchanged": int, "removed": int}},
                "created": {"type": "boolean"},
                "skipped": {"type": "array", "items": {"type": "object", "properties": {"url": string, "message": string}}}
            }
        },
        "Passage": {"type": "object", "properties": {"id": string, "title": string, "body": string, "url": nullable("string")}},
        "PassageList": {"type": "array", "items": {"$ref": "#/components/schemas/Passage"}}
    })
}

fn schemas() -> Value {
    let mut all = core_schemas();
    if let Some(all) = all.as_object_mut() {
        for more in [source_schemas(), playground_schemas()] {
            if let Value::Object(more) = more {
                all.extend(more);
            }
        }
    }
    all
}

/// The playground's and the knowledge gaps' schemas.
fn playground_schemas() -> Value {
    let string = json!({"type": "string"});
    let int = json!({"type": "integer"});
    let number = json!({"type": "number"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let outcome = json!({"enum": ["answer", "clarify", "escalate", "none"]});
    let counts = json!({"type": "object", "properties": {"answered": int, "clarified": int, "handed_over": int, "none": int}});
    json!({
        "PlaygroundRequest": {
            "type": "object",
            "description": "One question, or a list of at most 50.",
            "properties": {"question": string, "questions": strings}
        },
        "PlaygroundResult": {
            "type": "object",
            "properties": {
                "question": string, "outcome": outcome, "confidence": number,
                "answer": string,
                "sources": {"type": "array", "items": {"type": "object", "properties": {"entry_id": string, "title": string, "url": string, "passage": string}}},
                "choices": {"type": "array", "items": {"type": "object", "properties": {"id": string, "label": string}}},
                "candidates": {"type": "array", "items": {"type": "object", "properties": {"entry_id": string, "title": string, "confidence": number}}},
                "reason": {"type": "object", "properties": {"reason": string, "category": string}},
                "stage": {"enum": ["autonomy", "before_engine", "engine", "after_engine"]},
                "why": string, "draft": {"type": "boolean"}
            }
        },
        "PlaygroundResults": {"type": "array", "items": {"$ref": "#/components/schemas/PlaygroundResult"}},
        "ReplayRequest": {"type": "object", "required": ["last"], "properties": {"last": int}},
        "ReplayReport": {
            "type": "object",
            "properties": {
                "questions": {"enum": ["first_visitor_message"]}, "replayed": int,
                "then": counts, "now": counts,
                "changed": {"type": "array", "items": {"type": "object", "properties": {
                    "conversation_id": string, "question": string, "then": outcome,
                    "then_entry": string, "then_answer": string,
                    "now": {"$ref": "#/components/schemas/PlaygroundResult"}
                }}}
            }
        },
        "GapGroups": {"type": "array", "items": {"type": "object", "properties": {
            "questions": {"type": "array", "items": {"type": "object", "properties": {
                "conversation_id": string, "question": string, "asked_at": int, "replies": strings
            }}},
            "best_reply": string
        }}},
        "GapDraftRequest": {
            "type": "object", "required": ["conversation_ids"],
            "properties": {"conversation_ids": strings, "answer": string}
        },
        "GapDraft": {"type": "object", "properties": {"entry_id": string, "pending": int, "answer": string}}
    })
}

fn core_schemas() -> Value {
    let string = json!({"type": "string"});
    let int = json!({"type": "integer"});
    let nullable = |t: &str| json!({"type": [t, "null"]});
    json!({
        "Object": {"type": "object"},
        "Error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": string, "message": string}
        },
        "Login": {
            "type": "object",
            "required": ["site_key", "email", "password"],
            "properties": {"site_key": string, "email": string, "password": string}
        },
        "Session": {"type": "object", "properties": {"token": string, "expires_at": int}},
        "MessagePage": {
            "type": "object",
            "properties": {"messages": {"type": "array", "items": {"type": "object"}}, "has_more": {"type": "boolean"}}
        },
        "Site": {
            "type": "object",
            "properties": {"id": string, "key": string, "name": string, "settings": {"$ref": "#/components/schemas/SiteSettings"}}
        },
        "SiteSettings": {
            "type": "object",
            "description": "Every field is optional in a PATCH. Secrets read as `***`; sending `***` back keeps them.",
            "properties": {
                "assistant_name": string, "greeting": string,
                "color": {"type": "string", "pattern": "^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"},
                "autonomy": {"enum": ["auto", "review", "off"]},
                "placeholders": {"type": "object", "additionalProperties": string},
                "allowed_origins": {"type": "array", "items": string},
                "identity_secret": nullable("string"),
                "require_identity": {"type": "boolean"},
                "policy": {"type": "object"},
                "learning": {"enum": ["auto", "approve"]},
                "agent_learning": {"enum": ["auto", "approve"], "description": "Whether a plain agent's teach may go live (with `learning: auto`) or waits for an owner (`approve`, the default)."},
                "business_hours": {
                    "type": ["object", "null"],
                    "properties": {
                        "timezone": string,
                        "days": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"day": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}, "open": string, "close": string}
                        }}
                    }
                },
                "offline_message": string,
                "webhooks": {"type": "array", "items": {
                    "type": "object",
                    "required": ["url", "secret"],
                    "properties": {"url": string, "secret": string, "events": {"type": "array", "items": {"enum": ["escalated", "agent_joined", "resolved"]}}}
                }},
                "auto_assign": {"type": "boolean"}
            }
        },
        "KbEntryInput": {
            "type": "object",
            "required": ["title", "answer", "examples"],
            "properties": {"title": string, "answer": string, "examples": {"type": "array", "items": string}}
        },
        "KbEntry": {
            "type": "object",
            "properties": {"id": string, "title": string, "answer": string, "examples": {"type": "array", "items": string}, "escalate": {"type": "object"}}
        },
        "KbEntryList": {"type": "array", "items": {"$ref": "#/components/schemas/KbEntry"}},
        "ImportReport": {
            "type": "object",
            "properties": {
                "imported": int, "updated": int,
                "errors": {"type": "array", "items": {"type": "object", "properties": {"line": int, "message": string}}}
            }
        },
        "CannedInput": {"type": "object", "required": ["title", "body"], "properties": {"title": string, "body": string}},
        "Canned": {"type": "object", "properties": {"id": string, "title": string, "body": string}},
        "CannedList": {"type": "array", "items": {"$ref": "#/components/schemas/Canned"}},
        "Percentiles": {"type": "object", "properties": {"p50": nullable("integer"), "p90": nullable("integer")}},
        "Analytics": {
            "type": "object",
            "properties": {
                "from": int, "to": int, "conversations": int, "automated": int,
                "automation_rate": {"type": "number"},
                "escalations_by_reason": {"type": "object", "additionalProperties": int},
                "csat": {"type": "object", "properties": {
                    "average": nullable("number"), "count": int,
                    "distribution": {"type": "array", "items": int, "minItems": 5, "maxItems": 5}
                }},
                "first_response_ms": {"$ref": "#/components/schemas/Percentiles"},
                "handle_time_ms": {"$ref": "#/components/schemas/Percentiles"},
                "daily": {"type": "array", "items": {"type": "object", "properties": {
                    "day": string, "conversations": int, "automated": int, "escalated": int,
                    "taught": int, "automation_rate": {"type": "number"}
                }}},
                "weekly": {"type": "array", "items": {"type": "object", "properties": {
                    "week": string, "conversations": int, "automated": int,
                    "automation_rate": {"type": "number"}, "new_entries": int, "taught": int,
                    "approved": int
                }}}
            }
        },
        "HandoffSummary": {
            "type": "object",
            "properties": {
                "wants": string,
                "ai_answered": {"type": "array", "items": string},
                "reason": {"type": ["object", "null"]},
                "suggested_reply": nullable("string"),
                "suggested_source": {"type": ["object", "null"], "properties": {"entry_id": string, "title": string}},
                "visitor_id": string
            }
        },
        "NewSite": {"type": "object", "required": ["key", "name"], "properties": {
            "key": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,39}$"}, "name": string
        }},
        "VisitorProfile": {"type": "object", "properties": {
            "id": string, "external_id": nullable("string"), "name": nullable("string"),
            "email": nullable("string"), "created_at": int, "last_seen_at": int
        }},
        "VisitorProfiles": {"type": "array", "items": {"$ref": "#/components/schemas/VisitorProfile"}},
        "VisitorExport": {
            "type": "object",
            "properties": {
                "visitor": {"$ref": "#/components/schemas/VisitorProfile"},
                "conversations": {"type": "array", "items": {"type": "object"}},
                "notes": {"type": "array", "items": {"type": "object"}},
                "feedback": {"type": "array", "items": {"type": "object"}},
                "drafts": {"type": "array", "items": {"type": "object"}},
                "learned": {"type": "array", "items": {"type": "object"}},
                "exported_at": int
            }
        }
    })
}

fn operation_json(o: &Operation) -> Value {
    let mut parameters: Vec<Value> = o
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    parameters.extend(o.query.iter().map(|name| {
        json!({"name": name, "in": "query", "required": *name == "format", "schema": {"type": "string"}})
    }));
    let mut value = Map::new();
    value.insert("summary".into(), json!(o.summary));
    let id = format!(
        "{}{}",
        o.method,
        o.path
            .split(['/', '.', '{', '}', '_'])
            .filter(|s| !s.is_empty())
            .map(|s| {
                let mut c = s.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<String>()
    );
    value.insert("operationId".into(), json!(id));
    let access = match o.access {
        Access::Public => "Anyone.",
        Access::Visitor => "The visitor who owns the conversation (`Bearer vt_…`).",
        Access::Agent => "Agents and owners of the site (`Bearer` session token).",
        Access::Owner => "Owners of the site; agents get 403 `forbidden`.",
    };
    value.insert("description".into(), json!(access));
    if o.access != Access::Public {
        value.insert("security".into(), json!([{"bearer": []}]));
    }
    if !parameters.is_empty() {
        value.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(request) = o.request {
        let content = if request == "text" {
            json!({"text/plain": {"schema": {"type": "string"}}})
        } else {
            json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{request}")}}})
        };
        value.insert(
            "requestBody".into(),
            json!({"required": true, "content": content}),
        );
    }
    let (status, schema) = o.response;
    let success = match schema {
        Some(s) => json!({
            "description": "Success",
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}}
        }),
        None => json!({"description": "Success"}),
    };
    value.insert(
        "responses".into(),
        json!({
            status.to_string(): success,
            "default": {
                "description": "An error with a stable code",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            }
        }),
    );
    Value::Object(value)
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in OPERATIONS {
        let entry = paths
            .entry(format!("/api/v1{}", o.path))
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = entry {
            item.insert(o.method.to_owned(), operation_json(o));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Nexus Flow API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Support chat: AI answers, people take over. Live traffic uses the WebSocket at /ws (see shared/PROTOCOL.md)."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi))
}

/// `GET /api/v1/openapi.json`
async fn openapi() -> ApiJson<Value> {
    ApiJson(document())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    /// Files whose routes are not under `/api/v1` (pages, the WebSocket, metrics).
    const ROOT_ROUTE_FILES: [&str; 2] = ["lib.rs", "assets.rs"];
    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// `(method, path)` of every `.route("…", …)` in `source`.
    fn registered(source: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = source;
        while let Some(at) = rest.find(".route(\"") {
            rest = &rest[at + 8..];
            let Some(end) = rest.find('"') else { break };
            let path = rest[..end].to_owned();
            // The handler part: up to the parenthesis closing `.route(`.
            let mut depth = 1;
            let mut close = rest.len();
            for (i, c) in rest[end..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            close = end + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let handlers = &rest[end..close];
            for method in METHODS {
                let needle = format!("{method}(");
                let mut from = 0;
                while let Some(i) = handlers[from..].find(&needle) {
                    let start = from + i;
                    let before = handlers[..start].chars().last();
                    if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        out.push((method.to_owned(), path.clone()));
                    }
                    from = start + needle.len();
                }
            }
        }
        out
    }

    #[test]
    fn every_registered_route_is_documented_and_nothing_else() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut routes = BTreeSet::new();
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if ROOT_ROUTE_FILES.contains(&name.as_str()) {
                continue;
            }
            let source = std::fs::read_to_string(&file).unwrap();
            // Test modules do not register routes; skip text after `mod tests`.
            let source = source.split("#[cfg(test)]").next().unwrap_or_default();
            routes.extend(registered(source));
        }
        let documented: BTreeSet<(String, String)> = OPERATIONS
            .iter()
            .map(|o| (o.method.to_owned(), o.path.to_owned()))
            .collect();
        assert!(routes.len() > 20, "found the registrations: {routes:?}");
        let missing: Vec<_> = routes.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes missing from openapi::OPERATIONS: {missing:?}"
        );
        let stale: Vec<_> = documented.difference(&routes).collect();
        assert!(stale.is_empty(), "documented but not registered: {stale:?}");
    }

    #[test]
    fn the_parser_sees_chained_and_qualified_methods() {
        let src = r#"Router::new()
            .route("/a/{id}", get(read).put(replace).delete(remove))
            .route("/b", axum::routing::post(crate::http::auth::login))
            .route("/c", axum::routing::delete(delete))"#;
        assert_eq!(
            registered(src),
            vec![
                ("get".into(), "/a/{id}".into()),
                ("put".into(), "/a/{id}".into()),
                ("delete".into(), "/a/{id}".into()),
                ("post".into(), "/b".into()),
                ("delete".into(), "/c".into()),
            ]
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_operation() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        for o in OPERATIONS {
            let op = &doc["paths"][format!("/api/v1{}", o.path)][o.method];
            assert!(op.is_object(), "{} {}", o.method, o.path);
            if let Some(schema) = o.response.1 {
                assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
            }
        }
    }
}
