//! Knowledge sources over REST, through the real server and store: an owner uploads and
//! pastes articles and has pages and a sitemap fetched from a local HTTP server on 127.0.0.1
//! (let through with `--egress-allow 127.0.0.0/8`); a re-import updates in place; bad input
//! gets a clear `{code, message}` and stores nothing; without the flag a loopback URL is
//! refused and never requested. On SQLite and on PostgreSQL.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use nexus_shared::{ConversationState, Role};
use nexus_tests::http::{authed, get_json};
use nexus_tests::{TestServer, WsClient, agent_login, frames};
use reqwest::Method;
use serde_json::{Value, json};

/// A small web site on 127.0.0.1: path → (content type, body), changeable while it runs, and
/// a count of the requests it got.
#[derive(Clone, Default)]
struct LocalSite {
    pages: Arc<Mutex<HashMap<String, (&'static str, String)>>>,
    hits: Arc<AtomicUsize>,
}

impl LocalSite {
    async fn start() -> (Self, SocketAddr) {
        let site = Self::default();
        async fn page(
            State(site): State<LocalSite>,
            Path(path): Path<String>,
        ) -> axum::response::Response {
            site.hits.fetch_add(1, Ordering::SeqCst);
            match site.pages.lock().unwrap().get(&path).cloned() {
                Some((content_type, body)) => {
                    ([(header::CONTENT_TYPE, content_type)], body).into_response()
                }
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::get(page))
            .with_state(site.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (site, addr)
    }

    fn set(&self, path: &str, content_type: &'static str, body: &str) {
        self.pages
            .lock()
            .unwrap()
            .insert(path.to_owned(), (content_type, body.to_owned()));
    }
}

const HELP_PAGE: &str = r#"<!doctype html><html><head><title>Roastery help</title>
<script>document.title = "<h2>not text</h2>"</script></head><body>
<nav><a href="/">Home</a> <a href="/shop">Shop</a></nav>
<main><p>Everything about our roastery.</p>
<h2 id="roasting">Roasting days</h2><p>We roast on Mondays and Thursdays, in small batches.</p>
<h2 id="subscriptions">Subscriptions</h2><p>A subscription ships a fresh bag every two weeks.</p>
</main><footer>© Roastery</footer></body></html>"#;

async fn post_source(
    http: &reqwest::Client,
    server: &TestServer,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let response = authed(
        http,
        Method::POST,
        server.url("/api/v1/sources"),
        token,
        Some(&body),
    )
    .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn passages(
    http: &reqwest::Client,
    server: &TestServer,
    token: &str,
    id: &str,
) -> Vec<Value> {
    get_json(
        http,
        server.url(&format!("/api/v1/sources/{id}/passages")),
        token,
    )
    .await
}

fn ids(passages: &[Value]) -> Vec<&str> {
    passages.iter().map(|p| p["id"].as_str().unwrap()).collect()
}

async fn owner_imports_articles(database_url: &str) {
    let (local, addr) = LocalSite::start().await;
    let widget = tempfile::tempdir().unwrap();
    let server = TestServer::start_allowing(
        database_url,
        widget.path(),
        vec!["127.0.0.0/8".parse().unwrap()],
    )
    .await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let agent = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let http = reqwest::Client::new();

    // The demo site starts with its own page as articles.
    let sources: Vec<Value> = get_json(&http, server.url("/api/v1/sources"), &agent).await;
    assert_eq!(sources.len(), 1, "{sources:?}");
    assert_eq!(sources[0]["kind"], "page");
    assert!(sources[0]["passages"].as_u64().unwrap() >= 5);

    // An uploaded Markdown file.
    let guide = "# Brewing guide\nStart with fresh water.\n\n## Pour-over\nUse 15 g of coffee for 250 ml.\n\n## French press\nSteep four minutes.\n";
    let file = json!({"kind": "file", "title": "brewing-guide.md", "content": guide});
    let (status, _) = post_source(&http, &server, &agent, file.clone()).await;
    assert_eq!(status, 403, "agents cannot add sources");
    let (status, body) = post_source(&http, &server, &owner, file.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["source"]["kind"], "file");
    assert_eq!(body["source"]["title"], "brewing-guide.md");
    assert_eq!(body["source"]["passages"], 3);
    assert_eq!(body["changes"]["added"], 3);
    let file_id = body["source"]["id"].as_str().unwrap().to_owned();
    let list = passages(&http, &server, &agent, &file_id).await;
    assert_eq!(
        ids(&list),
        [
            "doc:brewing-guide#brewing-guide",
            "doc:brewing-guide#pour-over",
            "doc:brewing-guide#french-press"
        ]
    );
    assert_eq!(list[1]["title"], "Brewing guide › Pour-over");
    assert_eq!(list[1]["body"], "Use 15 g of coffee for 250 ml.");

    // The same file again, changed: updated in place (200, same source).
    let changed = guide.replace("Steep four minutes.", "Steep five minutes.");
    let (status, body) = post_source(
        &http,
        &server,
        &owner,
        json!({"kind": "file", "title": "brewing-guide.md", "content": changed}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"]["id"], file_id.as_str());
    assert_eq!(
        body["changes"],
        json!({"added": 0, "updated": 1, "unchanged": 2, "removed": 0})
    );

    // A page fetched from a URL: its title, headings and anchored links; chrome dropped.
    local.set("help.html", "text/html; charset=utf-8", HELP_PAGE);
    let url = format!("http://{addr}/help.html");
    let (status, body) =
        post_source(&http, &server, &owner, json!({"kind": "url", "url": url})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["source"]["title"], "Roastery help");
    assert_eq!(body["source"]["url"], url.as_str());
    assert!(body["source"]["fetched_at"].as_i64().is_some());
    let url_id = body["source"]["id"].as_str().unwrap().to_owned();
    let list = passages(&http, &server, &owner, &url_id).await;
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(list[1]["title"], "Roastery help › Roasting days");
    assert_eq!(list[1]["url"], format!("{url}#roasting"));
    assert_eq!(
        list[1]["body"],
        "We roast on Mondays and Thursdays, in small batches."
    );
    let text: String = list.iter().map(|p| p["body"].as_str().unwrap()).collect();
    for chrome in ["Home", "not text", "© Roastery"] {
        assert!(!text.contains(chrome), "{chrome:?} must not be a passage");
    }

    // The page changes; a refresh updates the passages in place.
    local.set(
        "help.html",
        "text/html",
        &HELP_PAGE
            .replace("Mondays and Thursdays", "Tuesdays")
            .replace(
                r#"<h2 id="subscriptions">Subscriptions</h2><p>A subscription ships a fresh bag every two weeks.</p>"#,
                r#"<h2 id="gifts">Gift cards</h2><p>Gift cards never expire.</p>"#,
            ),
    );
    let response = authed(
        &http,
        Method::POST,
        server.url(&format!("/api/v1/sources/{url_id}/refresh")),
        &owner,
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["changes"],
        json!({"added": 1, "updated": 1, "unchanged": 1, "removed": 1})
    );
    let list = passages(&http, &server, &owner, &url_id).await;
    assert_eq!(
        ids(&list),
        [
            "doc:127-0-0-1-help-html#intro",
            "doc:127-0-0-1-help-html#roasting-days",
            "doc:127-0-0-1-help-html#gift-cards"
        ]
    );
    assert_eq!(list[1]["body"], "We roast on Tuesdays, in small batches.");

    // A refresh that fails keeps the passages and shows why.
    local.pages.lock().unwrap().remove("help.html");
    let response = authed(
        &http,
        Method::POST,
        server.url(&format!("/api/v1/sources/{url_id}/refresh")),
        &owner,
        None,
    )
    .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "validation");
    assert!(
        error["message"].as_str().unwrap().contains("HTTP 404"),
        "{error}"
    );
    let sources: Vec<Value> = get_json(&http, server.url("/api/v1/sources"), &owner).await;
    let noted = sources.iter().find(|s| s["id"] == url_id.as_str()).unwrap();
    assert!(noted["last_error"].as_str().unwrap().contains("HTTP 404"));
    assert_eq!(noted["passages"], 3);

    // A sitemap: its pages fetched, the one that fails skipped and reported.
    local.set(
        "a.md",
        "text/markdown",
        "# Opening hours\nThe café opens at 8.\n",
    );
    local.set(
        "b.txt",
        "text/plain",
        "Parking\n\nThere are ten spaces behind the shop.\n",
    );
    local.set(
        "sitemap.xml",
        "application/xml",
        &format!(
            "<?xml version=\"1.0\"?><urlset><url><loc>http://{addr}/a.md</loc></url>\
             <url><loc>http://{addr}/b.txt</loc></url><url><loc>http://{addr}/gone.html</loc></url></urlset>"
        ),
    );
    let (status, body) = post_source(
        &http,
        &server,
        &owner,
        json!({"kind": "sitemap", "url": format!("http://{addr}/sitemap.xml")}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["source"]["passages"], 2);
    assert_eq!(body["skipped"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["skipped"][0]["url"],
        format!("http://{addr}/gone.html")
    );
    let sitemap_id = body["source"]["id"].as_str().unwrap().to_owned();
    let list = passages(&http, &server, &owner, &sitemap_id).await;
    assert_eq!(list[0]["title"], "Opening hours");
    assert_eq!(list[0]["url"], format!("http://{addr}/a.md"));
    assert_eq!(
        list[1]["title"],
        format!("http://{addr}/sitemap.xml › Parking")
    );

    // Bad input: a clear error, and nothing stored.
    let before: Vec<Value> = get_json(&http, server.url("/api/v1/sources"), &owner).await;
    local.set("logo.png", "image/png", "\u{89}PNG");
    local.set(
        "empty.html",
        "text/html",
        "<html><body><nav>only chrome</nav></body></html>",
    );
    for (body, needle) in [
        (
            json!({"kind": "file", "title": "report.pdf", "content": "%PDF"}),
            "not an HTML",
        ),
        (
            json!({"kind": "file", "title": "x.md", "content": "  "}),
            "empty",
        ),
        (
            json!({"kind": "paste", "title": "Big", "content": "a".repeat(1_100_000)}),
            "larger",
        ),
        (
            json!({"kind": "url", "url": format!("http://{addr}/logo.png")}),
            "not an HTML",
        ),
        (
            json!({"kind": "url", "url": format!("http://{addr}/empty.html")}),
            "no passages",
        ),
        (
            json!({"kind": "url", "url": format!("http://{addr}/nothing-here")}),
            "HTTP 404",
        ),
        (
            json!({"kind": "url", "url": "http://127.0.0.1:9/"}),
            "could not be reached",
        ),
        (
            json!({"kind": "url", "url": "ftp://example.com/a"}),
            "not an http",
        ),
        (
            json!({"kind": "sitemap", "url": format!("http://{addr}/a.md")}),
            "not a sitemap",
        ),
        (
            json!({"kind": "paste", "title": "Link", "content": "x y z", "url": "javascript:alert(1)"}),
            "not an http",
        ),
        (json!({"kind": "magic"}), "Unknown kind"),
    ] {
        let (status, error) = post_source(&http, &server, &owner, body.clone()).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["code"], "validation", "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{body}: {message:?} should say {needle:?}"
        );
    }
    let after: Vec<Value> = get_json(&http, server.url("/api/v1/sources"), &owner).await;
    assert_eq!(after, before, "a refused import stores nothing");

    // A paste, then deletes.
    let (status, body) = post_source(
        &http,
        &server,
        &owner,
        json!({"kind": "paste", "title": "Holiday hours", "content": "Closed on 24 and 25 December.", "url": "https://roastery.test/holidays"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let paste_id = body["source"]["id"].as_str().unwrap().to_owned();
    let list = passages(&http, &server, &owner, &paste_id).await;
    assert_eq!(list[0]["url"], "https://roastery.test/holidays");
    let delete = |id: String, token: String| {
        let http = http.clone();
        let url = server.url(&format!("/api/v1/sources/{id}"));
        async move {
            authed(&http, Method::DELETE, url, &token, None)
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(delete(paste_id.clone(), agent.clone()).await, 403);
    assert_eq!(delete(paste_id.clone(), owner.clone()).await, 204);
    assert_eq!(delete(paste_id.clone(), owner.clone()).await, 404);
    assert_eq!(delete("not-an-id".into(), owner.clone()).await, 404);
    let response = authed(
        &http,
        Method::GET,
        server.url(&format!("/api/v1/sources/{paste_id}/passages")),
        &owner,
        None,
    )
    .await;
    assert_eq!(response.status(), 404);

    // Another site's owner sees none of it and cannot refresh or delete it.
    let other_site = nexus_server::model::Site {
        id: uuid::Uuid::new_v4(),
        key: "other".into(),
        name: "Other".into(),
        settings: Default::default(),
        created_at: nexus_server::model::now_ms(),
    };
    server.add_site(&other_site, &[]).await;
    let stranger = agent_login(&server, "other", "sam@other.test", Role::Owner).await;
    let theirs: Vec<Value> = get_json(&http, server.url("/api/v1/sources"), &stranger).await;
    assert!(theirs.is_empty());
    assert_eq!(delete(file_id.clone(), stranger.clone()).await, 404);
    let response = authed(
        &http,
        Method::POST,
        server.url(&format!("/api/v1/sources/{url_id}/refresh")),
        &stranger,
        None,
    )
    .await;
    assert_eq!(response.status(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_imports_files_pages_and_sitemaps_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nexus.db").display());
    owner_imports_articles(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_imports_files_pages_and_sitemaps_on_postgres() {
    let schema = nexus_tests::pg::TestSchema::create().await;
    owner_imports_articles(&schema.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_loopback_and_private_urls_are_refused_and_never_requested() {
    let (local, addr) = LocalSite::start().await;
    local.set("help.html", "text/html", HELP_PAGE);
    // A sitemap on a public-looking name is no way around it either: it is not fetched.
    let (server, _dir) = TestServer::scratch().await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let http = reqwest::Client::new();
    let before: Vec<Value> = get_json(&http, server.url("/api/v1/sources"), &owner).await;
    for url in [
        format!("http://{addr}/help.html"),
        format!("http://localhost:{}/help.html", addr.port()),
        format!("http://[::ffff:127.0.0.1]:{}/help.html", addr.port()),
        format!("http://2130706433:{}/help.html", addr.port()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ] {
        for kind in ["url", "sitemap"] {
            let (status, error) =
                post_source(&http, &server, &owner, json!({"kind": kind, "url": url})).await;
            assert_eq!(status, 400, "{url}: {error}");
            assert_eq!(error["code"], "validation");
            let message = error["message"].as_str().unwrap();
            assert!(message.contains("refused"), "{url}: {message}");
        }
    }
    assert_eq!(
        local.hits.load(Ordering::SeqCst),
        0,
        "no request reached the local server"
    );
    let after: Vec<Value> = get_json(&http, server.url("/api/v1/sources"), &owner).await;
    assert_eq!(after, before, "nothing stored");
    server.stop().await;
}

async fn ask(server: &TestServer, question: &str) -> Result<String, ConversationState> {
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor.send(&frames::send(None, "q", question)).await;
    visitor.recv_answer().await
}

/// The demo shop answers from its own page (shipping, returns, the grinder's warranty) rather
/// than with "do you mean …?", and still hands a request for a person and a topic the shop
/// lacks to a person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shop_answers_from_its_page_and_hands_over_what_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    for (question, fact) in [
        ("how long does shipping take?", "2–3"),
        ("what is your return policy", "free within 30 days"),
        ("is there a warranty on the grinder", "two-year warranty"),
    ] {
        let answer = ask(&server, question).await;
        assert!(
            answer.as_deref().is_ok_and(|a| a.contains(fact)),
            "{question}: {answer:?}"
        );
    }
    for question in ["I want to talk to a person", "Do you rent out bicycles?"] {
        assert_eq!(
            ask(&server, question).await,
            Err(ConversationState::Waiting),
            "{question}"
        );
    }
    server.stop().await;
}

/// An imported page's passage answers a visitor's question (the engine finds passages by
/// their text), a topic the page lacks goes to a person, and a re-import changes the answer.
#[ignore = "engine v2 (issue 17) asks \"do you mean …?\" with the roasting passage among the choices instead of answering it directly: in the demo's mixed KB a passage on a topic no Q&A entry has stays below the answer threshold (README, \"Answer engine quality\")"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_is_answered_from_an_imported_article_and_a_reimport_updates_the_answer() {
    let (local, addr) = LocalSite::start().await;
    local.set("help.html", "text/html", HELP_PAGE);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nexus.db").display());
    let server =
        TestServer::start_allowing(&url, dir.path(), vec!["127.0.0.0/8".parse().unwrap()]).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let http = reqwest::Client::new();
    let (status, body) = post_source(
        &http,
        &server,
        &owner,
        json!({"kind": "url", "url": format!("http://{addr}/help.html")}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["source"]["id"].as_str().unwrap().to_owned();

    let answer = ask(&server, "On which days do you roast the coffee?").await;
    assert!(
        answer
            .as_deref()
            .is_ok_and(|a| a.contains("Mondays and Thursdays")),
        "answered from the roasting passage: {answer:?}"
    );
    assert_eq!(
        ask(&server, "Can I bring my dog to the tasting evening?").await,
        Err(ConversationState::Waiting),
        "a topic the articles lack goes to a person"
    );

    local.set(
        "help.html",
        "text/html",
        &HELP_PAGE.replace("Mondays and Thursdays", "Tuesdays"),
    );
    let response = authed(
        &http,
        Method::POST,
        server.url(&format!("/api/v1/sources/{id}/refresh")),
        &owner,
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer = ask(&server, "On which days do you roast the coffee?").await;
    assert!(
        answer.as_deref().is_ok_and(|a| a.contains("Tuesdays")),
        "the re-import changed the answer: {answer:?}"
    );
    server.stop().await;
}
