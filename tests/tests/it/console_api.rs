//! The console's REST API through the real server and a real SQLite file: canned responses,
//! knowledge-base import, analytics, the handoff summary, business hours with the offline
//! notice, and the OpenAPI document.

use nexus_shared::{ClientFrame, ConversationState, Role, ServerFrame, Teach};
use nexus_tests::frames;
use nexus_tests::http::{authed, get_json};
use nexus_tests::{TestServer, WsClient, agent_login};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

async fn other_site(server: &TestServer, key: &str) {
    let site = nexus_server::model::Site {
        id: Uuid::new_v4(),
        key: key.into(),
        name: format!("Site {key}"),
        settings: Default::default(),
        created_at: 0,
    };
    server.add_site(&site, &[]).await;
}

/// A new visitor sends `question`; returns the client, the conversation and the AI's answer
/// (or the state the conversation moved to instead).
async fn ask(
    server: &TestServer,
    question: &str,
) -> (WsClient, Uuid, Result<String, ConversationState>) {
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&frames::send(None, "q1", question)).await;
    let conversation = visitor.recv_ack().await;
    let answer = visitor.recv_answer().await;
    (visitor, conversation, answer)
}

async fn request_human(visitor: &mut WsClient, conversation_id: Uuid) {
    visitor
        .send(&ClientFrame::RequestHuman { conversation_id })
        .await;
    visitor.recv_state(ConversationState::Waiting).await;
}

async fn import(server: &TestServer, token: &str, format: &str, body: &str) -> (StatusCode, Value) {
    let response = Client::new()
        .post(server.url(&format!("/api/v1/kb/import?format={format}")))
        .bearer_auth(token)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn kb_len(server: &TestServer, token: &str) -> usize {
    let list: Vec<Value> = get_json(&Client::new(), server.url("/api/v1/kb"), token).await;
    list.len()
}

const ROASTING: &str = "Do you roast the coffee beans yourselves?";

#[tokio::test]
async fn canned_responses_agents_read_owners_write_sites_are_apart() {
    let dir = tempfile::tempdir().unwrap();
    canned_script(TestServer::start(&dir.path().join("nexus.db")).await).await;
}

#[tokio::test]
async fn canned_responses_on_postgres() {
    let schema = nexus_tests::pg::TestSchema::create().await;
    canned_script(TestServer::start_url(&schema.url, &nexus_tests::widget_dir()).await).await;
}

async fn canned_script(server: TestServer) {
    other_site(&server, "other").await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let stranger = agent_login(&server, "other", "sam@other.test", Role::Owner).await;
    let http = Client::new();
    let canned = json!({"title": "Refunds", "body": "Refunds take 5 days <b>not bold</b>."});

    let r = authed(
        &http,
        Method::POST,
        server.url("/api/v1/canned"),
        &agent,
        Some(&canned),
    )
    .await;
    assert_eq!(r.status(), 403, "agents cannot write canned responses");
    let r = authed(
        &http,
        Method::POST,
        server.url("/api/v1/canned"),
        &owner,
        Some(&json!({"title": " ", "body": "x"})),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = authed(
        &http,
        Method::POST,
        server.url("/api/v1/canned"),
        &owner,
        Some(&canned),
    )
    .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["body"], "Refunds take 5 days <b>not bold</b>.");

    let list: Vec<Value> = get_json(&http, server.url("/api/v1/canned"), &agent).await;
    assert_eq!(list.len(), 1, "agents read them");
    assert_eq!(list[0]["title"], "Refunds");

    let r = authed(
        &http,
        Method::PUT,
        server.url(&format!("/api/v1/canned/{id}")),
        &owner,
        Some(&json!({"title": "Refunds", "body": "Refunds take 3 days."})),
    )
    .await;
    assert_eq!(r.status(), 200);

    // Another site sees nothing and changes nothing.
    let theirs: Vec<Value> = get_json(&http, server.url("/api/v1/canned"), &stranger).await;
    assert!(theirs.is_empty());
    let r = authed(
        &http,
        Method::PUT,
        server.url(&format!("/api/v1/canned/{id}")),
        &stranger,
        Some(&json!({"title": "Mine", "body": "stolen"})),
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = authed(
        &http,
        Method::DELETE,
        server.url(&format!("/api/v1/canned/{id}")),
        &stranger,
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = authed(
        &http,
        Method::DELETE,
        server.url(&format!("/api/v1/canned/{id}")),
        &agent,
        None,
    )
    .await;
    assert_eq!(r.status(), 403);

    let list: Vec<Value> = get_json(&http, server.url("/api/v1/canned"), &agent).await;
    assert_eq!(list[0]["body"], "Refunds take 3 days.");
    let r = authed(
        &http,
        Method::DELETE,
        server.url(&format!("/api/v1/canned/{id}")),
        &owner,
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    let list: Vec<Value> = get_json(&http, server.url("/api/v1/canned"), &owner).await;
    assert!(list.is_empty());
    let r = http.get(server.url("/api/v1/canned")).send().await.unwrap();
    assert_eq!(r.status(), 401, "a session is required");
}

#[tokio::test]
async fn kb_import_markdown_csv_jsonl_with_line_errors_and_the_ai_answers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let before = kb_len(&server, &owner).await;

    let (_, _, answer) = ask(&server, ROASTING).await;
    assert!(answer.is_err(), "not covered before the import: {answer:?}");

    let md = format!(
        "# Coffee FAQ\n\n## {ROASTING}\nYes, we roast every bean in small batches in our own roastery.\n\nAlso asked:\n- who roasts your coffee\n- is the coffee roasted in house\n\n## Empty one\n\n## Do you ship the grinder abroad?\nYes, to every EU country.\n"
    );
    let (status, _) = import(&server, &agent, "md", &md).await;
    assert_eq!(status, 403, "agents cannot import");
    let (status, report) = import(&server, &owner, "md", &md).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], 2, "{report}");
    assert_eq!(report["updated"], 0);
    assert_eq!(
        report["errors"].as_array().unwrap().len(),
        1,
        "the empty answer: {report}"
    );
    assert_eq!(report["errors"][0]["line"], 10);
    assert_eq!(kb_len(&server, &owner).await, before + 2);

    let (_, _, answer) = ask(&server, ROASTING).await;
    assert_eq!(
        answer.as_deref(),
        Ok("Yes, we roast every bean in small batches in our own roastery."),
        "the engine answers from the import at once"
    );

    // CSV: the same title updates; a broken row is reported by line.
    let csv = format!(
        "title,answer,examples\n\"{ROASTING}\",\"We roast in house, every Monday.\",roasting day|when do you roast\nDecaf,,do you have decaf\n"
    );
    let (status, report) = import(&server, &owner, "csv", &csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["imported"].as_u64(), report["updated"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(report["errors"][0]["line"], 3, "{report}");
    let (_, _, answer) = ask(&server, ROASTING).await;
    assert_eq!(answer.as_deref(), Ok("We roast in house, every Monday."));

    // JSONL: an entry with an id, an eval line for it, a broken line.
    let jsonl = "{\"id\":\"beans-origin\",\"title\":\"Bean origin\",\"answer\":\"Our beans come from Ethiopia and Peru.\",\"examples\":[\"where do your beans come from\"]}\n{\"text\":\"what country are the beans from\",\"intent\":\"beans-origin\"}\n{oops\n";
    let (status, report) = import(&server, &owner, "jsonl", jsonl).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], 1);
    assert_eq!(report["errors"][0]["line"], 3);
    let entry: Value = get_json(
        &Client::new(),
        server.url("/api/v1/kb/beans-origin"),
        &agent,
    )
    .await;
    assert_eq!(entry["examples"].as_array().unwrap().len(), 2);

    // A file that cannot be read at all stores nothing.
    let count = kb_len(&server, &owner).await;
    let (status, body) = import(&server, &owner, "csv", "name,text\nx,y\n").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "validation");
    let (status, _) = import(&server, &owner, "xlsx", "whatever").await;
    assert_eq!(status, 400);
    assert_eq!(kb_len(&server, &owner).await, count);
}

#[tokio::test]
async fn analytics_of_a_scripted_set_of_conversations() {
    let dir = tempfile::tempdir().unwrap();
    analytics_script(TestServer::start(&dir.path().join("nexus.db")).await).await;
}

#[tokio::test]
async fn analytics_of_a_scripted_set_of_conversations_on_postgres() {
    let schema = nexus_tests::pg::TestSchema::create().await;
    analytics_script(TestServer::start_url(&schema.url, &nexus_tests::widget_dir()).await).await;
}

async fn analytics_script(server: TestServer) {
    // The agent's teach below goes live (by default it would wait for an owner).
    server
        .configure(|s| s.agent_learning = nexus_engine::policy::Learning::Auto)
        .await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent_token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let start = nexus_server::model::now_ms();
    let md = format!("## {ROASTING}\nYes, in our own roastery.\n");
    assert_eq!(import(&server, &owner, "md", &md).await.0, 200);

    // 1: answered by the AI; rated 5.
    let (mut v1, c1, answer) = ask(&server, ROASTING).await;
    assert!(answer.is_ok(), "{answer:?}");
    v1.send(&ClientFrame::Csat {
        conversation_id: c1,
        score: 5,
        comment: None,
    })
    .await;
    v1.sync().await;

    // 2: the visitor asks for a person; an agent takes over, replies, resolves and teaches;
    // rated 3.
    let (mut v2, c2, _) = ask(&server, ROASTING).await;
    request_human(&mut v2, c2).await;
    let (mut agent, _) = WsClient::agent(&server.ws_url(), &agent_token).await;
    agent
        .send(&ClientFrame::TakeOver {
            conversation_id: c2,
        })
        .await;
    agent.recv_state(ConversationState::Human).await;
    agent
        .send(&frames::send(Some(c2), "a1", "Happy to help!"))
        .await;
    agent.recv_ack().await;
    agent
        .send(&ClientFrame::Resolve {
            conversation_id: c2,
            teach: Some(Teach {
                question: "Can I visit the roastery on Saturdays?".into(),
                answer: "Yes, tours run every Saturday at 11:00.".into(),
                entry_id: None,
            }),
        })
        .await;
    agent.recv_state(ConversationState::Resolved).await;
    v2.send(&ClientFrame::Csat {
        conversation_id: c2,
        score: 3,
        comment: None,
    })
    .await;
    v2.sync().await;

    // 3: escalated, nobody answers.
    let (mut v3, c3, answer) = ask(&server, "Which tram do I take to the harbour museum?").await;
    if answer != Err(ConversationState::Waiting) {
        request_human(&mut v3, c3).await;
    }

    let http = Client::new();
    let url = |from: i64, to: i64| server.url(&format!("/api/v1/analytics?from={from}&to={to}"));
    let now = nexus_server::model::now_ms();
    let r = authed(
        &http,
        Method::GET,
        url(start - 1, now + 1),
        &agent_token,
        None,
    )
    .await;
    assert_eq!(r.status(), 403, "owners only");
    let r = authed(&http, Method::GET, url(now, start), &owner, None).await;
    assert_eq!(r.status(), 400);

    let a: Value = get_json(&http, url(start - 1, now + 1), &owner).await;
    assert_eq!(a["conversations"], 3, "{a}");
    assert_eq!(a["automated"], 1, "{a}");
    assert!((a["automation_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let reasons = a["escalations_by_reason"].as_object().unwrap();
    assert_eq!(
        reasons.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        2,
        "{a}"
    );
    assert!(reasons["visitor_asked"].as_u64().unwrap() >= 1, "{a}");
    assert_eq!(a["csat"]["count"], 2);
    assert_eq!(a["csat"]["average"], 4.0);
    assert_eq!(a["csat"]["distribution"], json!([0, 0, 1, 0, 1]));
    assert!(a["first_response_ms"]["p50"].as_i64().unwrap() >= 0, "{a}");
    assert!(a["handle_time_ms"]["p90"].as_i64().unwrap() >= 0, "{a}");
    let daily = a["daily"].as_array().unwrap();
    let sum = |key: &str| daily.iter().map(|d| d[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("conversations"), 3);
    assert_eq!(sum("automated"), 1);
    assert_eq!(sum("escalated"), 2);
    assert_eq!(sum("taught"), 1, "the teach on resolve: {a}");

    // A period before any of it is empty.
    let empty: Value = get_json(&http, url(start - 10_000_000, start - 5_000_000), &owner).await;
    assert_eq!(empty["conversations"], 0);
    assert_eq!(empty["csat"]["average"], Value::Null);
    assert_eq!(empty["first_response_ms"]["p50"], Value::Null);
}

#[tokio::test]
async fn handoff_summary_says_what_the_visitor_wants_and_suggests_a_filled_reply() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    other_site(&server, "other").await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let stranger = agent_login(&server, "other", "sam@other.test", Role::Agent).await;
    let http = Client::new();
    let r = authed(
        &http,
        Method::PATCH,
        server.url("/api/v1/site"),
        &owner,
        Some(&json!({"placeholders": {"City": "Hamburg"}})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let md = format!("## {ROASTING}\nYes, we roast every bean in {{{{City}}}}.\n");
    assert_eq!(import(&server, &owner, "md", &md).await.0, 200);

    let (mut visitor, conversation, answer) = ask(&server, ROASTING).await;
    assert_eq!(
        answer.as_deref(),
        Ok("Yes, we roast every bean in Hamburg.")
    );
    request_human(&mut visitor, conversation).await;

    let path = format!("/api/v1/conversations/{conversation}/summary");
    let r = authed(&http, Method::GET, server.url(&path), &stranger, None).await;
    assert_eq!(r.status(), 404, "other sites do not see it");
    let summary: Value = get_json(&http, server.url(&path), &agent).await;
    assert_eq!(summary["wants"], ROASTING, "{summary}");
    assert_eq!(
        summary["ai_answered"],
        json!(["Yes, we roast every bean in Hamburg."])
    );
    assert_eq!(summary["reason"]["reason"], "visitor_asked");
    assert_eq!(
        summary["suggested_reply"],
        "Yes, we roast every bean in Hamburg."
    );
    assert!(
        summary["suggested_source"]["entry_id"].is_string(),
        "{summary}"
    );
    let visitor_id = server
        .state
        .store
        .conversation(conversation)
        .await
        .unwrap()
        .unwrap()
        .visitor_id;
    assert_eq!(summary["visitor_id"], visitor_id.to_string());
}

fn weekday_in(days: i64) -> &'static str {
    // 1970-01-01 was a Thursday.
    const NAMES: [&str; 7] = ["thu", "fri", "sat", "sun", "mon", "tue", "wed"];
    let today = nexus_server::model::now_ms() / 86_400_000;
    NAMES[((today + days) % 7) as usize]
}

#[tokio::test]
async fn outside_business_hours_the_visitor_is_told_when_the_team_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent_token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let http = Client::new();
    let patch = |body: Value| {
        http.patch(server.url("/api/v1/site"))
            .bearer_auth(&owner)
            .json(&body)
            .send()
    };
    let r = patch(json!({"business_hours": {"timezone": "Mars/Olympus", "days": []}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "unknown time zones are refused");
    let r = patch(json!({"business_hours": {"timezone": "UTC", "days": [{"day": "mon", "open": "17:00", "close": "09:00"}]}})).await.unwrap();
    assert_eq!(r.status(), 400);

    // Open only the day after tomorrow, so it is closed now whenever the test runs.
    let day = weekday_in(2);
    let full = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ][["thu", "fri", "sat", "sun", "mon", "tue", "wed"]
        .iter()
        .position(|d| *d == day)
        .unwrap()];
    let r = patch(json!({
        "business_hours": {"timezone": "UTC", "days": [{"day": day, "open": "09:00", "close": "17:00"}]},
        "offline_message": "We're closed right now."
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);

    // An agent is online, but it is outside business hours.
    let (_agent, _) = WsClient::agent(&server.ws_url(), &agent_token).await;
    let (mut visitor, conversation, _) = ask(&server, "Which tram goes to the harbour?").await;
    visitor
        .send(&ClientFrame::RequestHuman {
            conversation_id: conversation,
        })
        .await;
    let (message, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::Offline { message, .. } => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        message,
        format!("We're closed right now. We're back on {full} at 09:00 (UTC).")
    );

    // Always open, nobody online: the offline message alone.
    let r = patch(json!({"business_hours": null})).await.unwrap();
    assert_eq!(r.status(), 200);
    drop(_agent);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.state.presence.online(
        server
            .state
            .store
            .site_by_key("demo")
            .await
            .unwrap()
            .unwrap()
            .id,
    ) > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent goes offline"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (mut visitor, conversation, _) = ask(&server, "Which ferry goes to the island?").await;
    visitor
        .send(&ClientFrame::RequestHuman {
            conversation_id: conversation,
        })
        .await;
    let (message, _) = visitor
        .recv_until(|f| match f {
            ServerFrame::Offline { message, .. } => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(message, "We're closed right now.");
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_each_one_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let http = Client::new();
    let r = http
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "public");
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            let concrete = path
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        Uuid::new_v4().to_string()
                    } else {
                        s.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let response = http
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    server.url(&concrete),
                )
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert_ne!(status, 405, "{method} {path} is routed");
            let body = response.text().await.unwrap();
            if status == 404 {
                // A handler's 404 carries the error shape; the router's own 404 has no body.
                assert!(body.contains("\"code\""), "{method} {path} is routed");
            }
        }
    }
    for route in [
        "/api/v1/canned",
        "/api/v1/kb/import",
        "/api/v1/analytics",
        "/api/v1/visitors/{visitor_id}/export",
    ] {
        assert!(paths.contains_key(route), "{route}");
    }
}
