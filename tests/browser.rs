//! Headless Chromium over WebDriver (Debian's `chromium` and `chromium-driver`).
//!
//! Missing browser bits are a failure with instructions, never a silent skip: `cargo xtask
//! test` (and `.ci/run`) install them first.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

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
}

fn find(candidates: &[&str], env: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Self {
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
        let port = free_port();
        // chromedriver and the Chromium it starts share a process group of their own, so that
        // dropping the browser (also when a test panics) kills them all, not only the driver.
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
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
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        // Up to 30 s: chromedriver starts slowly on a loaded 2-core machine.
        for _ in 0..300 {
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
                    };
                }
                Err(e) => {
                    last_error = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
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

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and every Chromium process it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
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
            self.widget_element("launcher").await.click().await.unwrap();
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
