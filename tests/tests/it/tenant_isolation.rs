//! Tenant isolation, table-driven: every `/api/v1` route and every WebSocket client action
//! aimed at site B, called with site A's owner, agent and visitor credentials (and none), is
//! refused (401/403/404 with a stable code, or an `error` frame), leaks none of B's data, and
//! leaves B's data exactly as it was. B's own agent, watching B's conversations throughout,
//! sees nothing caused by A.
//!
//! Both sites are made as customers make them (`POST /api/v1/sites` by an owner, then REST
//! for settings and knowledge). Adding a route is one line in [`ROUTES`]; every operation in
//! `/api/v1/openapi.json` must have a row, so the table cannot drift, and every error answer
//! must be a `{code, message}` body.

use std::collections::BTreeSet;
use std::time::Duration;

use nexus_server::model::Site;
use nexus_shared::{
    Autonomy, ClientFrame, DraftDecision, ErrorCode, Role, ServerFrame, Session, Teach,
};
use nexus_tests::{TestServer, WsClient, agent_login};
use uuid::Uuid;

/// What site A's credentials must get from a route.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// The route names one of B's objects: 401, 403 or 404 with a stable code.
    Refused,
    /// The route is scoped to the caller's own site (lists, create, settings): any answer,
    /// but none of B's data in it, and B unchanged afterwards.
    OwnSite,
}

/// One row: method, path under `/api/v1` (placeholders are B's ids), body, expectation.
struct Route {
    method: &'static str,
    path: &'static str,
    body: Body,
    expect: Expect,
}

#[derive(Clone)]
enum Body {
    None,
    Json(&'static str),
    Text(&'static str),
    /// A JSON body made at run time (setup calls).
    Owned(String),
}

const fn row(method: &'static str, path: &'static str, body: Body, expect: Expect) -> Route {
    Route {
        method,
        path,
        body,
        expect,
    }
}

use Body::{Json, None as NoBody, Text};
use Expect::{OwnSite, Refused};
use nexus_tests::frames;

const KB_INPUT: &str = r#"{"title":"A title","answer":"A answer","examples":["an A question"]}"#;
const SOURCE_INPUT: &str = r#"{"kind":"paste","title":"A article","content":"An A article."}"#;
const CANNED_INPUT: &str = r#"{"title":"A canned","body":"A canned body"}"#;

/// Every route. Placeholders: `{conv_b}` (B's conversation), `{entry_b}` (B's knowledge-base
/// entry), `{visitor_b}`, `{canned_b}`, `{pending_b}`, `{source_b}` (B's ids), `{site_b}` (B's
/// site key).
const ROUTES: &[Route] = &[
    row("GET", "/health", NoBody, OwnSite),
    row("GET", "/ready", NoBody, OwnSite),
    row("GET", "/openapi.json", NoBody, OwnSite),
    row(
        "POST",
        "/auth/login",
        Json(r#"{"site_key":"{site_b}","email":"owner@a.test","password":"a long test password"}"#),
        Refused,
    ),
    row("POST", "/auth/logout", NoBody, OwnSite),
    row("GET", "/me", NoBody, OwnSite),
    row("GET", "/site", NoBody, OwnSite),
    row(
        "PATCH",
        "/site",
        Json(r#"{"greeting":"A's greeting"}"#),
        OwnSite,
    ),
    row("GET", "/conversations/{conv_b}/messages", NoBody, Refused),
    row("GET", "/conversations/{conv_b}/summary", NoBody, Refused),
    row("GET", "/kb", NoBody, OwnSite),
    row("POST", "/kb", Json(KB_INPUT), OwnSite),
    row("GET", "/kb/{entry_b}", NoBody, Refused),
    row("PUT", "/kb/{entry_b}", Json(KB_INPUT), Refused),
    row("DELETE", "/kb/{entry_b}", NoBody, Refused),
    row(
        "POST",
        "/kb/import?format=jsonl",
        Text(r#"{"question":"an imported A question","answer":"an imported A answer"}"#),
        OwnSite,
    ),
    row("GET", "/kb/pending", NoBody, OwnSite),
    row(
        "POST",
        "/kb/pending/{pending_b}/approve",
        Json("{}"),
        Refused,
    ),
    row("POST", "/kb/pending/{pending_b}/reject", NoBody, Refused),
    row("GET", "/sources", NoBody, OwnSite),
    row("POST", "/sources", Json(SOURCE_INPUT), OwnSite),
    row("POST", "/sources/{source_b}/refresh", NoBody, Refused),
    row("DELETE", "/sources/{source_b}", NoBody, Refused),
    row("GET", "/sources/{source_b}/passages", NoBody, Refused),
    row("GET", "/canned", NoBody, OwnSite),
    row("POST", "/canned", Json(CANNED_INPUT), OwnSite),
    row("PUT", "/canned/{canned_b}", Json(CANNED_INPUT), Refused),
    row("DELETE", "/canned/{canned_b}", NoBody, Refused),
    row("GET", "/analytics?from=0&to=9999999999999", NoBody, OwnSite),
    row(
        "POST",
        "/playground",
        Json(r#"{"question":"an A question"}"#),
        OwnSite,
    ),
    row(
        "POST",
        "/playground/replay",
        Json(r#"{"last":50}"#),
        OwnSite,
    ),
    row("GET", "/gaps?days=30", NoBody, OwnSite),
    row(
        "POST",
        "/gaps/draft",
        Json(r#"{"conversation_ids":["{conv_b}"]}"#),
        Refused,
    ),
    row(
        "POST",
        "/sites",
        Json(r#"{"key":"site-a-two","name":"A's second site"}"#),
        OwnSite,
    ),
    row("GET", "/visitors?email=owner@b.test", NoBody, OwnSite),
    row("GET", "/visitors?conversation_id={conv_b}", NoBody, OwnSite),
    row("GET", "/visitors/{visitor_b}/export", NoBody, Refused),
    row("DELETE", "/visitors/{visitor_b}", NoBody, Refused),
];

/// Codes a refusal may carry.
const REFUSAL_CODES: &[&str] = &[
    "unauthorized",
    "forbidden",
    "not_found",
    "invalid_credentials",
];

/// B's knowledge-base answer: a marker that must never reach A.
const B_MARKER: &str = "MARK-site-b";

/// A site made as a customer makes one: an owner of the demo site creates it over
/// `POST /api/v1/sites` (their account is copied into it), signs in to it with the same
/// password, sets its autonomy and greeting and adds a knowledge-base entry over REST. Returns
/// the site, its owner's session and the entry's id.
async fn make_site(server: &TestServer, key: &str, autonomy: Autonomy) -> (Site, String, String) {
    let email = format!("owner@{}.test", key.trim_start_matches("site-"));
    let demo_owner = agent_login(server, "demo", &email, Role::Owner).await;
    let created = call(
        server,
        "POST",
        "/sites",
        Body::Owned(format!(r#"{{"key":"{key}","name":"Site {key}"}}"#)),
        Some(&demo_owner),
        &Targets::empty(),
    )
    .await;
    assert_eq!(created.status, 201, "site {key} created: {}", created.text);
    assert_eq!(created.json["key"], key);
    let owner = server.login(key, &email).await;
    let autonomy = serde_json::to_string(&autonomy).expect("autonomy encodes");
    let patched = call(
        server,
        "PATCH",
        "/site",
        Body::Owned(format!(
            r#"{{"autonomy":{autonomy},"greeting":"Welcome to {key}"}}"#
        )),
        Some(&owner),
        &Targets::empty(),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let entry = call(
        server,
        "POST",
        "/kb",
        Body::Owned(format!(
            r#"{{"title":"{key} refunds MARK-{key}","answer":"Refunds for {key} take 14 days. MARK-{key}",
                "examples":["how long do refunds take","when do I get my refund"]}}"#
        )),
        Some(&owner),
        &Targets::empty(),
    )
    .await;
    assert!(
        entry.status == 200 || entry.status == 201,
        "entry added: {}",
        entry.text
    );
    let entry_id = entry.json["id"]
        .as_str()
        .expect("the entry's id")
        .to_owned();
    (server.site(key).await, owner, entry_id)
}

/// B's ids the attacks aim at.
struct Targets {
    site_key: String,
    conversations: Vec<Uuid>,
    entry: String,
    visitor: Uuid,
    visitor_tokens: Vec<String>,
    message: Uuid,
    draft: Uuid,
    canned: String,
    pending: String,
    source: String,
    agent: Uuid,
}

impl Targets {
    fn fill(&self, template: &str) -> String {
        template
            .replace("{conv_b}", &self.conversations[0].to_string())
            .replace("{entry_b}", &self.entry)
            .replace("{visitor_b}", &self.visitor.to_string())
            .replace("{canned_b}", &self.canned)
            .replace("{pending_b}", &self.pending)
            .replace("{source_b}", &self.source)
            .replace("{site_b}", &self.site_key)
    }

    /// Strings that only B's data contains.
    fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![B_MARKER.to_owned(), self.entry.clone()];
        secrets.extend(self.conversations.iter().map(Uuid::to_string));
        secrets.extend(self.visitor_tokens.iter().cloned());
        secrets.push(self.visitor.to_string());
        secrets.push(self.message.to_string());
        secrets.push(self.draft.to_string());
        secrets.push(self.source.clone());
        secrets
    }
}

/// Everything of site B a breach could change.
async fn snapshot(server: &TestServer, site_id: Uuid, targets: &Targets) -> String {
    let store = server.state.store.as_ref();
    let site = store.site(site_id).await.expect("store").expect("site B");
    let mut out = format!(
        "{} {} {}\n",
        site.key,
        site.name,
        serde_json::to_string(&site.settings).expect("settings encode")
    );
    out += &format!("{:?}\n", store.kb_entries(site_id).await.expect("kb"));
    out += &format!("{:?}\n", store.knowledge(site_id).await.expect("knowledge"));
    out += &format!("{:?}\n", store.sources(site_id).await.expect("sources"));
    for id in &targets.conversations {
        out += &format!(
            "{:?}\n",
            store.conversation(*id).await.expect("conversation")
        );
        out += &format!(
            "{:?}\n",
            store.messages_after(*id, 0, 1000).await.expect("messages")
        );
        out += &format!("{:?}\n", store.pending_drafts(*id).await.expect("drafts"));
    }
    for token in &targets.visitor_tokens {
        out += &format!(
            "{:?}\n",
            store
                .visitor_by_token(site_id, token)
                .await
                .expect("visitor")
        );
    }
    out += &format!(
        "{:?}\n",
        store
            .open_conversations(site_id, 1000)
            .await
            .expect("inbox")
    );
    out
}

struct Answer {
    status: u16,
    text: String,
    json: serde_json::Value,
}

async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Body,
    bearer: Option<&str>,
    targets: &Targets,
) -> Answer {
    let client = reqwest::Client::new();
    let url = server.url(&format!("/api/v1{path}"));
    let mut request = client.request(method.parse().expect("an HTTP method"), url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request = match body {
        Body::None => request,
        Body::Json(json) => request
            .header("content-type", "application/json")
            .body(targets.fill(json)),
        Body::Text(text) => request
            .header("content-type", "text/plain")
            .body(text.to_owned()),
        Body::Owned(json) => request
            .header("content-type", "application/json")
            .body(json),
    };
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Answer { status, text, json }
}

/// Frames after an action, up to the `pong` of a ping sent right after it.
/// Paced to stay under the per-connection frame rate (10/s): two frames per action.
async fn frames_after(client: &mut WsClient, action: &ClientFrame) -> Vec<ServerFrame> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.send(action).await;
    client.send(&ClientFrame::Ping).await;
    let mut frames = Vec::new();
    loop {
        match client.try_recv(Duration::from_secs(10)).await {
            Some(ServerFrame::Pong) => return frames,
            Some(frame) => frames.push(frame),
            None => panic!("no pong after {action:?}; frames: {frames:?}"),
        }
    }
}

fn leaks(frames: &[ServerFrame], secrets: &[String]) -> Option<String> {
    frames.iter().find_map(|f| {
        let json = serde_json::to_string(f).expect("frame encodes");
        secrets
            .iter()
            .any(|s| json.contains(s.as_str()))
            .then_some(json)
    })
}

/// Every client action aimed at B (B's conversation, message, draft, agent), for any role.
fn ws_actions(t: &Targets, own_conversation: Uuid, own_agent: Uuid) -> Vec<(String, ClientFrame)> {
    let mut actions = Vec::new();
    for (i, &c) in t.conversations.iter().enumerate() {
        let teach = Teach {
            question: format!("A's question {i}"),
            answer: format!("A's answer {i}"),
            entry_id: Some(t.entry.clone()),
        };
        let rows = vec![
            frames::send(Some(c), format!("iso-send-{i}"), "A writes into B"),
            ClientFrame::Resume {
                conversation_id: c,
                after_seq: 0,
            },
            ClientFrame::Typing {
                conversation_id: c,
                typing: true,
            },
            ClientFrame::RequestHuman { conversation_id: c },
            ClientFrame::Choose {
                conversation_id: c,
                message_id: t.message,
                choice_id: "x".into(),
                client_msg_id: format!("iso-choose-{i}"),
            },
            ClientFrame::Feedback {
                conversation_id: c,
                message_id: t.message,
                helpful: false,
            },
            ClientFrame::Csat {
                conversation_id: c,
                score: 1,
                comment: Some("A rates B".into()),
            },
            ClientFrame::LeaveEmail {
                conversation_id: c,
                email: "a@a.test".into(),
            },
            ClientFrame::Watch { conversation_id: c },
            ClientFrame::Unwatch { conversation_id: c },
            ClientFrame::TakeOver { conversation_id: c },
            ClientFrame::HandBack { conversation_id: c },
            ClientFrame::Transfer {
                conversation_id: c,
                to_agent: own_agent,
            },
            ClientFrame::Resolve {
                conversation_id: c,
                teach: Some(teach),
            },
            ClientFrame::Note {
                conversation_id: c,
                client_msg_id: format!("iso-note-{i}"),
                body: "A's note in B".into(),
            },
            ClientFrame::ReviewDraft {
                conversation_id: c,
                draft_id: t.draft,
                decision: DraftDecision::Approve,
            },
            ClientFrame::ReviewDraft {
                conversation_id: c,
                draft_id: t.draft,
                decision: DraftDecision::Edit {
                    body: "A's edit".into(),
                },
            },
        ];
        actions.extend(rows.into_iter().map(|f| (format!("conversation {i}"), f)));
    }
    // A's own conversation combined with B's objects.
    actions.push((
        "own conversation, B's draft".into(),
        ClientFrame::ReviewDraft {
            conversation_id: own_conversation,
            draft_id: t.draft,
            decision: DraftDecision::Reject,
        },
    ));
    actions.push((
        "own conversation, B's agent".into(),
        ClientFrame::Transfer {
            conversation_id: own_conversation,
            to_agent: t.agent,
        },
    ));
    actions
}

/// Actions that a role may answer with silence instead of an error (they name no object the
/// role could act on and change nothing).
fn silent_ok(role: &str, frame: &ClientFrame) -> bool {
    match frame {
        ClientFrame::Typing { .. } => role == "visitor",
        ClientFrame::Unwatch { .. } => role != "visitor",
        _ => false,
    }
}

fn frame_name(frame: &ClientFrame) -> String {
    let json = serde_json::to_value(frame).expect("frame encodes");
    let mut name = json["type"].as_str().unwrap_or("?").to_owned();
    if let Some(decision) = json["data"]["decision"].as_str() {
        name = format!("{name}/{decision}");
    }
    name
}

fn normalise(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn site_a_credentials_cannot_reach_site_b() {
    let dir = tempfile::tempdir().expect("tempdir");
    let widget = dir.path().join("widget");
    std::fs::create_dir_all(&widget).expect("widget dir");
    let server = TestServer::start_with(&dir.path().join("nexus.db"), &widget).await;
    let ws = server.ws_url();

    let (_, a_owner, _) = make_site(&server, "site-a", Autonomy::Auto).await;
    let (site_b, b_owner, b_entry) = make_site(&server, "site-b", Autonomy::Review).await;
    let a_agent = agent_login(&server, "site-a", "agent@a.test", Role::Agent).await;
    let b_agent = agent_login(&server, "site-b", "agent@b.test", Role::Agent).await;
    let store = server.state.store.as_ref();

    // Site B: one conversation with an AI draft waiting for review, one with B's agent.
    let (mut vb1, wb1) = WsClient::visitor(&ws, "site-b", None).await;
    vb1.send(&frames::send(None, "b-1", "how long do refunds take"))
        .await;
    let conv_b1 = vb1.recv_ack().await;
    let mut draft = None;
    for _ in 0..200 {
        draft = store
            .pending_drafts(conv_b1)
            .await
            .expect("drafts")
            .into_iter()
            .next();
        if draft.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let draft = draft.expect("B's review-mode draft");
    let (mut vb2, wb2) = WsClient::visitor(&ws, "site-b", None).await;
    vb2.send(&frames::send(None, "b-2", "I want a refund for order 42"))
        .await;
    let conv_b2 = vb2.recv_ack().await;
    let (mut b_agent_ws, b_welcome) = WsClient::agent(&ws, &b_agent).await;
    let b_agent_id = match &b_welcome.session {
        Session::Agent { agent, .. } => agent.id,
        other => panic!("expected an agent session, got {other:?}"),
    };
    b_agent_ws
        .send(&ClientFrame::TakeOver {
            conversation_id: conv_b2,
        })
        .await;
    b_agent_ws
        .recv_until(|f| match f {
            ServerFrame::State {
                conversation_id,
                assignee: Some(_),
                ..
            } if *conversation_id == conv_b2 => Some(()),
            ServerFrame::Error(e) => panic!("B's takeover failed: {e:?}"),
            _ => None,
        })
        .await;
    b_agent_ws
        .send(&ClientFrame::Watch {
            conversation_id: conv_b1,
        })
        .await;
    // B's owner creates the objects of the newer routes, where they exist.
    let created = call(
        &server,
        "POST",
        "/canned",
        Json(r#"{"title":"B canned MARK-site-b","body":"B canned body MARK-site-b"}"#),
        Some(&b_owner),
        &Targets::empty(),
    )
    .await;
    assert_eq!(created.status, 201, "B's canned response: {}", created.text);
    let canned = created.json["id"]
        .as_str()
        .expect("B's canned response has an id")
        .to_owned();
    // B's pending entry: a thumbs-down of B's visitor on the AI's answer would need an
    // answer; a plain agent's teach waits for B's owner (`agent_learning: approve`).
    nexus_server::conversation::learn::teach(
        &server.state,
        site_b.id,
        Role::Agent,
        Teach {
            question: "B's taught question MARK-site-b".into(),
            answer: "B's taught answer MARK-site-b".into(),
            entry_id: None,
        },
        nexus_server::model::Origin::Teach,
        Some(conv_b2),
    )
    .await
    .expect("B's teach");
    let source = call(
        &server,
        "POST",
        "/sources",
        Json(r#"{"kind":"paste","title":"B article MARK-site-b","content":"B's article: MARK-site-b ships in two days."}"#),
        Some(&b_owner),
        &Targets::empty(),
    )
    .await;
    assert_eq!(source.status, 201, "B's article: {}", source.text);
    let source = source.json["source"]["id"]
        .as_str()
        .expect("B's article has an id")
        .to_owned();
    let pending = call(
        &server,
        "GET",
        "/kb/pending",
        NoBody,
        Some(&b_owner),
        &Targets::empty(),
    )
    .await;
    let pending = pending.json[0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("B's pending entry: {}", pending.text))
        .to_owned();
    let b_message = store
        .messages_after(conv_b1, 0, 10)
        .await
        .expect("messages")
        .first()
        .expect("B's first message")
        .id;
    let b_visitor = store
        .visitor_by_token(site_b.id, &frames::visitor_token(&wb1))
        .await
        .expect("store")
        .expect("B's visitor")
        .id;
    let targets = Targets {
        site_key: site_b.key.clone(),
        conversations: vec![conv_b1, conv_b2],
        entry: b_entry.clone(),
        visitor: b_visitor,
        visitor_tokens: vec![frames::visitor_token(&wb1), frames::visitor_token(&wb2)],
        message: b_message,
        draft: draft.id,
        canned: canned.clone(),
        pending: pending.clone(),
        source: source.clone(),
        agent: b_agent_id,
    };
    let secrets = targets.secrets();
    // Let B's setup settle, then drain what B's agent got so far.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while b_agent_ws
        .try_recv(Duration::from_millis(200))
        .await
        .is_some()
    {}
    let before = snapshot(&server, site_b.id, &targets).await;

    // Site A: a visitor with a conversation of its own.
    let (mut va, wa) = WsClient::visitor(&ws, "site-a", None).await;
    va.send(&frames::send(None, "a-1", "how long do refunds take"))
        .await;
    let conv_a = va.recv_ack().await;
    let a_visitor = frames::visitor_token(&wa);
    let (mut a_owner_ws, a_owner_welcome) = WsClient::agent(&ws, &a_owner).await;
    let (mut a_agent_ws, _) = WsClient::agent(&ws, &a_agent).await;
    let a_owner_id = match &a_owner_welcome.session {
        Session::Agent { agent, .. } => agent.id,
        other => panic!("expected an agent session, got {other:?}"),
    };

    // ----- HTTP: every route, every credential of A -----
    let credentials: [(&str, Option<&str>); 4] = [
        ("owner", Some(&a_owner)),
        ("agent", Some(&a_agent)),
        ("visitor", Some(&a_visitor)),
        ("anonymous", None),
    ];
    let mut calls = 0;
    for route in ROUTES {
        let path = targets.fill(route.path);
        for (who, bearer) in credentials {
            // Logout would end A's session for the rows after it: use a fresh session.
            let fresh;
            let bearer = if route.path == "/auth/logout" && who != "visitor" && bearer.is_some() {
                fresh = agent_login(
                    &server,
                    "site-a",
                    &format!("{who}-logout-{}@a.test", Uuid::new_v4().simple()),
                    Role::Agent,
                )
                .await;
                Some(fresh.as_str())
            } else {
                bearer
            };
            let answer = call(
                &server,
                route.method,
                &path,
                route.body.clone(),
                bearer,
                &targets,
            )
            .await;
            calls += 1;
            let label = format!("{} {} as A's {who}", route.method, route.path);
            // Every error is `{code, message}`: a 404 or 405 without it is a route that is
            // not mounted (or a rejection that escaped `AppError`), and fails the test.
            assert!(
                answer.status < 400 || answer.json["code"].is_string(),
                "{label} answered {} without a {{code, message}} body: {:?}",
                answer.status,
                answer.text
            );
            assert!(
                !secrets.iter().any(|s| answer.text.contains(s.as_str())),
                "{label} leaked B's data: {} {}",
                answer.status,
                answer.text
            );
            assert!(
                answer.status < 500,
                "{label} failed on the server: {} {}",
                answer.status,
                answer.text
            );
            if route.expect == Refused {
                let code = answer.json["code"].as_str().unwrap_or("");
                assert!(
                    matches!(answer.status, 401 | 403 | 404) && REFUSAL_CODES.contains(&code),
                    "{label} was not refused: {} {}",
                    answer.status,
                    answer.text
                );
            }
        }
    }

    // ----- WebSocket: every action, as A's owner, agent and visitor -----
    let actions = ws_actions(&targets, conv_a, a_owner_id);
    let mut ws_checked = 0;
    let mut kinds = BTreeSet::new();
    for (role, client) in [
        ("owner", &mut a_owner_ws),
        ("agent", &mut a_agent_ws),
        ("visitor", &mut va),
    ] {
        for (what, action) in &actions {
            let frames = frames_after(client, action).await;
            let name = frame_name(action);
            kinds.insert(name.clone());
            if let Some(json) = leaks(&frames, &secrets) {
                panic!("{name} ({what}) as A's {role} leaked B's data: {json}");
            }
            let refused = frames.iter().any(|f| {
                matches!(f, ServerFrame::Error(e) if matches!(
                    e.code,
                    ErrorCode::NotFound | ErrorCode::Forbidden | ErrorCode::Unauthorized
                ))
            });
            assert!(
                refused || silent_ok(role, action),
                "{name} ({what}) as A's {role} was not refused: {frames:?}"
            );
            ws_checked += 1;
        }
    }

    // A visitor hello aimed at B: A's token on B's site starts a stranger, never B's visitor;
    // B's conversation id on A's site (or with A's token on B's site) is refused.
    let mut hellos = 0;
    for (site_key, conversation_id) in [
        ("site-a", Some(conv_b1)),
        ("site-b", Some(conv_b1)),
        ("site-b", Some(conv_b2)),
        ("site-b", None),
    ] {
        let mut client = WsClient::connect(&ws).await;
        client
            .send(&ClientFrame::Hello(nexus_shared::Hello {
                protocol_version: nexus_shared::PROTOCOL_VERSION,
                auth: nexus_shared::Auth::Visitor {
                    site_key: site_key.into(),
                    visitor_token: Some(a_visitor.clone()),
                    conversation_id,
                    identity: None,
                    page_url: None,
                    locale: None,
                },
            }))
            .await;
        let answer = client.recv().await;
        if let Some(json) = leaks(std::slice::from_ref(&answer), &secrets) {
            panic!("hello on {site_key} with {conversation_id:?} leaked: {json}");
        }
        match (&answer, conversation_id) {
            (ServerFrame::Error(e), Some(_)) => assert_eq!(e.code, ErrorCode::NotFound),
            (ServerFrame::Welcome(w), None) => {
                assert!(w.conversation.is_none(), "a stranger has no conversation");
                assert_ne!(
                    frames::visitor_token(w),
                    a_visitor,
                    "A's token is not B's visitor"
                );
            }
            (other, _) => panic!("hello on {site_key} with {conversation_id:?}: {other:?}"),
        }
        hellos += 1;
        client.close().await;
    }

    // B's agent, watching both of B's conversations, saw nothing of all this.
    let mut seen_by_b = Vec::new();
    while let Some(frame) = b_agent_ws.try_recv(Duration::from_millis(500)).await {
        if !matches!(frame, ServerFrame::Presence { .. }) {
            seen_by_b.push(frame);
        }
    }
    assert!(
        seen_by_b.is_empty(),
        "B's agent received frames caused by A: {seen_by_b:?}"
    );
    let after = snapshot(&server, site_b.id, &targets).await;
    assert_eq!(before, after, "site B's data changed");
    // B's canned response and pending entry are still there, unchanged.
    for (path, id) in [("/canned", &canned), ("/kb/pending", &pending)] {
        let list = call(&server, "GET", path, NoBody, Some(&b_owner), &targets).await;
        assert_eq!(list.status, 200, "B's {path}: {}", list.text);
        assert!(
            list.text.contains(id.as_str()) && list.text.contains(B_MARKER),
            "B's {path} {id} survived: {}",
            list.text
        );
    }

    // ----- The table covers every route the server documents -----
    let doc = call(&server, "GET", "/openapi.json", NoBody, None, &targets).await;
    assert_eq!(doc.status, 200, "the OpenAPI document is served");
    let mut documented = 0;
    {
        let rows: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_owned(), normalise(r.path)))
            .collect();
        let paths = doc.json["paths"].as_object().expect("openapi paths");
        let mut uncovered = Vec::new();
        for (path, operations) in paths {
            for method in operations.as_object().into_iter().flat_map(|o| o.keys()) {
                let method = method.to_uppercase();
                if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str())
                    || normalise(path) == "/ws"
                {
                    continue;
                }
                documented += 1;
                if !rows.contains(&(method.clone(), normalise(path))) {
                    uncovered.push(format!("{method} {path}"));
                }
            }
        }
        assert!(
            uncovered.is_empty(),
            "routes in /api/v1/openapi.json without a row in ROUTES: {uncovered:?}"
        );
    }

    eprintln!(
        "tenant isolation: {} route rows, {calls} HTTP calls; {} WebSocket action kinds, {ws_checked} actions; {hellos} visitor hellos; \
         {documented} documented operations covered; violations 0",
        ROUTES.len(),
        kinds.len(),
    );
    vb1.close().await;
    vb2.close().await;
    server.stop().await;
}

impl Targets {
    /// Before B's ids are known (setup calls that need no placeholders).
    fn empty() -> Self {
        Self {
            site_key: String::new(),
            conversations: vec![Uuid::nil()],
            entry: String::new(),
            visitor: Uuid::nil(),
            visitor_tokens: vec![],
            message: Uuid::nil(),
            draft: Uuid::nil(),
            canned: String::new(),
            pending: String::new(),
            source: String::new(),
            agent: Uuid::nil(),
        }
    }
}
