//! Headless Chromium over WebDriver (Debian's `chromium` and `chromium-driver`).
//!
//! Missing browser bits are a failure with instructions, never a silent skip: `cargo xtask
//! test` (and `.ci/run`) install them first.

use std::net::TcpListener;
use std::path::PathBuf;
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
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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
        for _ in 0..100 {
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

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
