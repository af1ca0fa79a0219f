//! Headless Chromium over WebDriver (Debian's `chromium` and `chromium-driver`).
//!
//! Missing browser bits are a failure with instructions, never a silent skip: `cargo xtask
//! test` (and `.ci/run`) install them first.

use std::cell::RefCell;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Weak};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::sync::{Semaphore, SemaphorePermit};

/// JS that finds the widget element with `data-testid` = `testid` inside the widget's shadow
/// root as `e` and returns `expr` (or null while there is no such element).
pub fn probe(testid: &str, expr: &str) -> String {
    probe_css(&format!("[data-testid=\"{testid}\"]"), expr)
}

/// Like [`probe`], with any CSS selector.
pub fn probe_css(selector: &str, expr: &str) -> String {
    format!(
        "const r = document.querySelector('#nexus-flow-root');
         const e = r && r.shadowRoot && r.shadowRoot.querySelector('{selector}');
         return e ? ({expr}) : null;"
    )
}

/// A chromedriver process and a browser session; both end when this is dropped or closed.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _slot: Arc<SemaphorePermit<'static>>,
}

/// How many tests drive Chromium at the same time. All browser tests share one test binary
/// (and its test threads) with the rest of the suite, so this bounds the Chromium processes
/// alive at once however many threads the harness runs: a headless Chromium and its
/// chromedriver take hundreds of MB and most of a core while they start.
pub const BROWSER_TESTS_AT_ONCE: usize = 2;

static SLOTS: Semaphore = Semaphore::const_new(BROWSER_TESTS_AT_ONCE);

thread_local! {
    /// The slot of the test running on this thread, while one of its browsers is open: a test
    /// holds one slot for all its browsers (the visitor's and the agent's), so it never waits
    /// for a slot it holds itself. Every test runs on a thread of its own, and the browser
    /// tests start their browsers from the test's body, on that thread.
    static SLOT: RefCell<Weak<SemaphorePermit<'static>>> = const { RefCell::new(Weak::new()) };
}

/// This test's browser slot: the one it holds, or a new one once another test gives its up.
async fn slot() -> Arc<SemaphorePermit<'static>> {
    if let Some(held) = SLOT.with(|s| s.borrow().upgrade()) {
        return held;
    }
    let permit = SLOTS
        .acquire()
        .await
        .expect("the browser slots are never closed");
    // Browsers started together (`tokio::join!`) may both have waited for a slot: the first
    // to get one keeps it for both.
    if let Some(held) = SLOT.with(|s| s.borrow().upgrade()) {
        return held;
    }
    let held = Arc::new(permit);
    SLOT.with(|s| *s.borrow_mut() = Arc::downgrade(&held));
    held
}

fn find(candidates: &[&str], env: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Self {
        let slot = slot().await;
        let driver_path = find(
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            "CHROMEDRIVER",
        )
        .expect(
            "chromedriver not found: run `cargo xtask setup` (installs Debian's chromium and \
             chromium-driver) or set CHROMEDRIVER",
        );
        let chrome_path = find(
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
            "CHROME",
        )
        .expect("chromium not found: run `cargo xtask setup` or set CHROME");
        // chromedriver and the Chromium it starts share a process group of their own, so that
        // dropping the browser (also when a test panics) kills them all, not only the driver.
        let spawn = || {
            let port = crate::free_port();
            let driver = Command::new(&driver_path)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver starts");
            (driver, format!("http://127.0.0.1:{port}"))
        };
        let (mut driver, mut url) = spawn();
        let profile = tempfile::tempdir().expect("temp profile dir");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome_path,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-breakpad",
                    "--disable-crash-reporter",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("capabilities are an object"),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut last_error = None;
        // Up to 90 s: chromedriver starts slowly on a loaded 2-core machine. A driver that
        // exited (its port was taken between `free_port` and its start) is started again on
        // another port.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(_)) = driver.try_wait() {
                (driver, url) = spawn();
            }
            match ClientBuilder::new(connector.clone())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Self {
                        client,
                        driver,
                        _profile: profile,
                        _slot: slot,
                    };
                }
                Err(e) => {
                    last_error = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        kill_group(&mut driver);
        panic!("could not start a WebDriver session: {last_error:?}");
    }

    /// Runs `script` (a function body; `arguments` available) and returns its result.
    pub async fn js(&self, script: &str, args: Vec<serde_json::Value>) -> serde_json::Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns a truthy value; returns it. Panics with `what` after
    /// `timeout`.
    pub async fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let value = self.js(script, vec![]).await;
            let truthy = match &value {
                serde_json::Value::Null | serde_json::Value::Bool(false) => false,
                serde_json::Value::String(s) => !s.is_empty(),
                serde_json::Value::Array(a) => !a.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                let dom = self
                    .js(
                        "const r = document.querySelector('#nexus-flow-root');
                         return (r && r.shadowRoot ? r.shadowRoot.innerHTML : document.body.innerHTML).slice(0, 4000);",
                        vec![],
                    )
                    .await;
                panic!("timed out waiting for {what}; widget DOM: {dom}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An element inside the widget's shadow root, by `data-testid`.
    pub async fn widget_element(&self, testid: &str) -> fantoccini::elements::Element {
        let host = self
            .client
            .find(Locator::Css("#nexus-flow-root"))
            .await
            .expect("the widget host element exists");
        let root = host
            .shadow_root()
            .await
            .expect("the widget has a shadow root");
        root.find(Locator::Css(&format!("[data-testid=\"{testid}\"]")))
            .await
            .unwrap_or_else(|e| panic!("no [data-testid={testid}] in the widget: {e}"))
    }

    pub async fn screenshot(&self, name: &str) {
        let dir = crate::workspace_root().join("target").join("screenshots");
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{name}.png")), png);
        }
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop kills what is left of the process group.
    }
}

/// Kills chromedriver's process group: the driver and every Chromium process it started.
fn kill_group(driver: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", driver.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = driver.kill();
    let _ = driver.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// A host page on its own origin (127.0.0.1, another port than the server's), as a customer's
/// website embedding the widget: every request gets `html`. Stops when dropped.
pub struct HostPage {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl HostPage {
    pub async fn serve(html: String) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let url = format!("http://{}/", listener.local_addr().expect("local addr"));
        let html = std::sync::Arc::new(html);
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let html = html.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 2048];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                         content-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
                        html.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(html.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { url, task }
    }

    /// A page with `body` (any hostile markup or CSS) and the embed snippet of `server` with
    /// these extra `data-*` attributes (e.g. `data-locale="de"`).
    pub async fn embed(server: &str, attributes: &str, head: &str) -> Self {
        Self::serve(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Host page</title>{head}</head><body><main><h1>A customer's website</h1>\
             <p>Some text.</p></main>\
             <script src=\"{server}/widget.js\" data-site=\"demo\" {attributes} async></script>\
             </body></html>"
        ))
        .await
    }
}

impl Drop for HostPage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Browser {
    /// Did the page fetch the widget's wasm yet?
    pub async fn wasm_requested(&self) -> bool {
        self.js(
            "return performance.getEntriesByType('resource').some(e => e.name.endsWith('.wasm'));",
            vec![],
        )
        .await
        .as_bool()
        .unwrap_or(false)
    }

    /// A Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: serde_json::Value) -> serde_json::Value {
        use fantoccini::wd::WebDriverCompatibleCommand;

        #[derive(Debug)]
        struct Cdp(serde_json::Value);
        impl WebDriverCompatibleCommand for Cdp {
            fn endpoint(
                &self,
                base_url: &url::Url,
                session_id: Option<&str>,
            ) -> Result<url::Url, url::ParseError> {
                base_url.join(&format!(
                    "session/{}/goog/cdp/execute",
                    session_id.unwrap_or_default()
                ))
            }
            fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
                (http::Method::POST, Some(self.0.to_string()))
            }
        }
        self.client
            .issue_cmd(Cdp(json!({"cmd": cmd, "params": params})))
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd} failed: {e}"))
    }
}

/// Asserts that the widget is built (the browser tests load it from `target/widget`).
pub fn assert_widget_built() {
    assert!(
        crate::widget_dir().join("manifest.json").exists(),
        "the widget is not built at {}: run `cargo xtask widget` (`cargo xtask test` does)",
        crate::widget_dir().display()
    );
}

/// JS returning `[author, delivery, text]` of every message bubble in the widget.
pub const MESSAGES: &str = "const r = document.querySelector('#nexus-flow-root');
    if (!r || !r.shadowRoot) return [];
    return Array.from(r.shadowRoot.querySelectorAll('[data-testid=\"message\"]'))
        .map(m => [m.getAttribute('data-author'), m.getAttribute('data-delivery'), m.innerText]);";

/// A copy of the widget build for one test: other builds may rewrite `target/widget` while
/// the test runs. Taken when the loaders and the files they name agree.
pub fn widget_snapshot(dir: &Path) -> PathBuf {
    let to = dir.join("widget");
    for _ in 0..100 {
        let _ = std::fs::remove_dir_all(&to);
        std::fs::create_dir_all(&to).unwrap();
        if let Ok(entries) = std::fs::read_dir(crate::widget_dir()) {
            for e in entries.flatten() {
                let _ = std::fs::copy(e.path(), to.join(e.file_name()));
            }
        }
        let whole = ["agent.js", "widget.js"].iter().all(|loader| {
            std::fs::read_to_string(to.join(loader)).is_ok_and(|text| {
                text.split(['\'', '"'])
                    .filter(|t| {
                        t.starts_with("nexus-")
                            && [".js", ".css", ".wasm"].iter().any(|x| t.ends_with(x))
                    })
                    .all(|name| to.join(name).exists())
            })
        });
        if whole {
            return to;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "no complete widget build in {}",
        crate::widget_dir().display()
    );
}

/// The visitor widget's set-up steps the browser tests share.
impl Browser {
    /// Waits until the widget's connection status is `status`.
    pub async fn wait_status(&self, status: &str, wait: Duration) {
        self.wait_for(
            &format!("the connection to be {status}"),
            wait,
            &probe(
                "connection-status",
                &format!("e.getAttribute('data-status') === '{status}'"),
            ),
        )
        .await;
    }

    /// Clicks the widget's launcher once it shows and waits until the connection is online.
    pub async fn click_launcher(&self, wait: Duration) {
        self.wait_for("the launcher", wait, &probe("launcher", "true"))
            .await;
        self.widget_element("launcher").await.click().await.unwrap();
        self.wait_status("online", wait).await;
    }

    /// Types `text` into the widget's input and clicks send.
    pub async fn send_message(&self, text: &str) {
        self.widget_element("input")
            .await
            .send_keys(text)
            .await
            .unwrap();
        self.widget_element("send").await.click().await.unwrap();
    }

    /// Opens the visitor's widget (clicking the launcher again should the first click land
    /// before the app listens) and waits for its connection.
    pub async fn open_widget(&self, wait: Duration) {
        self.wait_for("the launcher", wait, &probe("launcher", "true"))
            .await;
        for _ in 0..20 {
            let open = self
                .js(
                    &probe("launcher", "e.getAttribute('aria-expanded') === 'true'"),
                    vec![],
                )
                .await;
            if open == true {
                break;
            }
            // The app replaces the loader's launcher when it mounts: a click on the element
            // found just before is refused as stale, and the next round finds the new one.
            if let Err(e) = self.widget_element("launcher").await.click().await {
                assert!(
                    matches!(
                        &e,
                        fantoccini::error::CmdError::Standard(w)
                            if w.error == fantoccini::error::ErrorStatus::StaleElementReference
                    ),
                    "clicking the launcher: {e}"
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.wait_for(
            "the visitor to be online",
            wait,
            &probe(
                "connection-status",
                "e.getAttribute('data-status') === 'online'",
            ),
        )
        .await;
    }
}

/// The password every console test account gets, and how long the browser tests wait for
/// what a user would see.
pub use crate::{PASSWORD, WAIT};

/// JS returning `expr` for the page's first element matching `css` (as `e`) when it is
/// visible, or null (the agent console lives in the page, not in a shadow root).
pub fn page(css: &str, expr: &str) -> String {
    format!(
        "const e = document.querySelector({css:?});
         return e && e.offsetParent !== null ? ({expr}) : null;"
    )
}

/// The CSS selector of `data-testid` = `id`.
pub fn testid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

/// The page's first element matching `css`; panics if there is none.
pub async fn element(browser: &Browser, css: &str) -> fantoccini::elements::Element {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
}

/// Clicks the page's element with `data-testid` = `id`.
pub async fn click(browser: &Browser, id: &str) {
    element(browser, &testid(id))
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {id}: {e}"));
}

/// Replaces the text of the page's field with `data-testid` = `id` by `text`.
pub async fn type_into(browser: &Browser, id: &str, text: &str) {
    let el = element(browser, &testid(id)).await;
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

/// Logs in on `server`'s `/agent` page through the form (site key as prefilled, password
/// [`PASSWORD`]) and waits until the console is online.
pub async fn log_in(browser: &Browser, server: &crate::TestServer, email: &str) {
    log_in_to(browser, server, None, email).await;
}

/// Like [`log_in`], typing `site_key` into the form first when given.
pub async fn log_in_to(
    browser: &Browser,
    server: &crate::TestServer,
    site_key: Option<&str>,
    email: &str,
) {
    browser.client.goto(&server.url("/agent")).await.unwrap();
    browser
        .wait_for(
            "the login form",
            WAIT,
            &page(&testid("agent-login"), "true"),
        )
        .await;
    if let Some(site_key) = site_key {
        type_into(browser, "agent-site", site_key).await;
    }
    type_into(browser, "agent-email", email).await;
    type_into(browser, "agent-password", PASSWORD).await;
    click(browser, "agent-submit").await;
    browser
        .wait_for(
            "the console's connection to be online",
            WAIT,
            &page(
                &testid("connection-status"),
                "e.getAttribute('data-status') === 'online'",
            ),
        )
        .await;
}

/// Waits until the conversation on the console's screen is in `state` (`ai`, `human`, …).
pub async fn wait_conversation_state(agent: &Browser, state: &str) {
    agent
        .wait_for(
            &format!("the conversation to be {state}"),
            WAIT,
            &page(
                &testid("conversation-state"),
                &format!("e.getAttribute('data-state') === '{state}'"),
            ),
        )
        .await;
}

/// Clicks the console's inbox tab `tab`, then its first line in `state`, and waits until
/// that conversation is on screen.
pub async fn open_from_inbox(agent: &Browser, tab: &str, state: &str) {
    click(agent, &format!("tab-{tab}")).await;
    let line = format!("[data-testid=inbox-item][data-state={state}]");
    agent
        .wait_for(
            &format!("a {state} conversation in the inbox"),
            WAIT,
            &page(&line, "true"),
        )
        .await;
    element(agent, &line).await.click().await.unwrap();
    wait_conversation_state(agent, state).await;
}

/// JS returning the bubble texts of the widget's messages by `author` (`ai`, `agent`, …).
pub fn widget_bodies(author: &str) -> String {
    format!(
        "const r = document.querySelector('#nexus-flow-root');
         if (!r || !r.shadowRoot) return [];
         return Array.from(r.shadowRoot.querySelectorAll('[data-testid=\"message\"][data-author=\"{author}\"] .nf-bubble'))
             .map(b => b.innerText);"
    )
}

/// The bubble texts of the widget's messages by `author`.
pub async fn bodies(browser: &Browser, author: &str) -> Vec<String> {
    browser
        .js(&widget_bodies(author), vec![])
        .await
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the widget shows more than `before` messages by `author`; returns the newest.
pub async fn wait_new_body(browser: &Browser, author: &str, before: usize, what: &str) -> String {
    let value = browser
        .wait_for(
            what,
            WAIT,
            &format!(
                "const all = (function() {{ {} }})();
                 return all.length > {before} ? all[all.length - 1] : null;",
                widget_bodies(author)
            ),
        )
        .await;
    value.as_str().unwrap_or_default().to_owned()
}

/// A server on a SQLite file in `dir`, serving its own copy of the widget build (with the
/// agent app), with these accounts (`email`, `name`, `role`) on the demo site.
pub async fn console_server(
    dir: &Path,
    accounts: &[(&str, &str, nexus_shared::Role)],
) -> crate::TestServer {
    assert!(
        crate::widget_dir().join("agent.js").exists(),
        "the agent app is not built at {}: run `cargo xtask widget` (`cargo xtask test` does)",
        crate::widget_dir().display()
    );
    let widget = widget_snapshot(dir);
    let server = crate::TestServer::start_with(&dir.join("nexus.db"), &widget).await;
    add_accounts(&server, "demo", accounts).await;
    server
}

/// Creates these accounts (`email`, `name`, `role`, password [`PASSWORD`]) on `site_key`.
pub async fn add_accounts(
    server: &crate::TestServer,
    site_key: &str,
    accounts: &[(&str, &str, nexus_shared::Role)],
) {
    let store = server.state.store.as_ref();
    let site = store
        .site_by_key(site_key)
        .await
        .expect("store")
        .unwrap_or_else(|| panic!("no site {site_key}"));
    for (email, name, role) in accounts {
        nexus_server::access::accounts::add_user(store, site.id, email, name, *role, PASSWORD)
            .await
            .expect("account created");
    }
}
