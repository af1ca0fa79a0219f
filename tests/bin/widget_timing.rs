//! `widget-timing`: how soon the widget shows and opens, measured in headless Chromium with the
//! Performance API. A measuring tool, not a test: it prints figures and asserts nothing.
//!
//! ```sh
//! cargo run --release -p nexus-tests --bin widget-timing -- --runs 10 [--cpu-throttle 4]
//! ```
//!
//! It starts the server in this process (the `nexus-server` library, built in the same profile
//! as this binary) on 127.0.0.1 over a fresh SQLite file, serves a host page on another port
//! embedding the widget's `<script>` tag (a customer's website), and for each run starts a
//! headless Chromium with a fresh profile (a cold HTTP cache), then loads the page again in
//! the same browser (a warm cache, a returning visitor). Inside the page, a script injected
//! before any other (`Page.addScriptToEvaluateOnNewDocument`) checks the widget on every
//! animation frame and records `performance.now()` (time since navigation start) at the start
//! of the frame after the one in which a state first holds, by which time that frame has been
//! painted:
//!
//! - launcher painted: the launcher button is in the page and has a size (its stylesheet is in);
//! - click → panel usable: after a click on the launcher (the click event's `timeStamp`), the
//!   panel and the message input are shown, the input is enabled and has the focus;
//! - click → online: the connection status says `online` (the WebSocket `welcome` arrived);
//! - click → wasm fetched: `responseEnd` of the wasm's resource timing entry;
//! - agent console (`/agent`): navigation → login form usable (form shown, email input enabled).
//!
//! Transfer sizes come from `performance.getEntriesByType('resource')` on the server's own
//! pages (`/` and `/agent`): the server sends no `Timing-Allow-Origin`, so a host page on
//! another origin reads 0 for every size of the widget's files.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fantoccini::Locator;
use nexus_tests::browser::{Browser, HostPage, widget_snapshot};
use nexus_tests::{TestServer, widget_dir};
use serde_json::{Value, json};

const USAGE: &str = "\
widget-timing: the widget's paint timings in headless Chromium (Performance API)

usage: cargo run --release -p nexus-tests --bin widget-timing -- [options]

  --runs N            cold-cache runs, each in a fresh browser profile (default 10)
  --cpu-throttle R    slow the browser's CPU R times (CDP Emulation.setCPUThrottlingRate;
                      4 is a mid-range phone; default 1 = off)
  --slow-4g           emulate Lighthouse's slow 4G network (562.5 ms request latency,
                      1,474.56 kbit/s down, 675 kbit/s up; CDP Network.emulateNetworkConditions)
  --no-warm           skip the warm-cache visit after each cold one
  --no-agent          skip the agent console (/agent)
  --width W --height H  the browser window (default 1280 x 900)
  --timeout S         seconds one visit may take before the run fails (default 60)
  --widget-dir DIR    the widget build (default: target/widget of this workspace)

Needs the widget build (`cargo xtask widget`) and Debian's chromium + chromium-driver
(`cargo xtask setup`; or set CHROME and CHROMEDRIVER).
Prints a table (min / median / p95 / max, p95 by nearest rank) and, as its last line, the
same figures as one JSON object.";

/// Injected into every document before its own scripts; see the module documentation.
const INSTRUMENT: &str = r#"(function () {
  if (window.top !== window || window.__nfTiming) { return; }
  var T = window.__nfTiming = {};
  function shown(e) {
    if (!e || !e.isConnected) { return false; }
    var r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
  }
  function widget() {
    var h = document.getElementById('nexus-flow-root');
    return h && h.shadowRoot;
  }
  function inWidget(testid) {
    var r = widget();
    return r ? r.querySelector('[data-testid="' + testid + '"]') : null;
  }
  var checks = {
    launcher: function () { return shown(inWidget('launcher')); },
    panel: function () {
      var r = widget();
      var input = inWidget('input');
      return T.click !== undefined && shown(inWidget('panel')) && shown(input) &&
        !input.disabled && !input.readOnly && r.activeElement === input;
    },
    online: function () {
      var s = inWidget('connection-status');
      return T.click !== undefined && !!s && s.getAttribute('data-status') === 'online';
    },
    login: function () {
      var email = document.querySelector('#nexus-agent [data-testid="agent-email"]');
      return shown(document.querySelector('#nexus-agent [data-testid="agent-login"]')) &&
        shown(email) && !email.disabled;
    }
  };
  addEventListener('click', function (e) {
    if (T.click !== undefined) { return; }
    var path = e.composedPath();
    for (var i = 0; i < path.length; i++) {
      if (path[i].getAttribute && path[i].getAttribute('data-testid') === 'launcher') {
        T.click = e.timeStamp;
        return;
      }
    }
  }, true);
  function frame() {
    var now = performance.now();
    Object.keys(checks).forEach(function (name) {
      if (T[name] !== undefined) { return; }
      if (T[name + 'Seen'] !== undefined) { T[name] = now; } else if (checks[name]()) { T[name + 'Seen'] = now; }
    });
    var done = T.login !== undefined || (T.panel !== undefined && T.online !== undefined);
    if (!done) { requestAnimationFrame(frame); }
  }
  requestAnimationFrame(frame);
})();"#;

/// Reads the page's timings, paint entries and resource entries.
const COLLECT: &str = "return {
  t: window.__nfTiming || null,
  fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
  ready: document.readyState,
  resources: performance.getEntriesByType('resource').map(e => ({
    name: e.name, start: e.startTime, end: e.responseEnd, transfer: e.transferSize,
    encoded: e.encodedBodySize, decoded: e.decodedBodySize
  }))
};";

struct Options {
    runs: usize,
    cpu_throttle: f64,
    slow_4g: bool,
    warm: bool,
    agent: bool,
    width: u32,
    height: u32,
    timeout: Duration,
    widget_dir: PathBuf,
}

fn parse_args() -> Result<Options> {
    let mut options = Options {
        runs: 10,
        cpu_throttle: 1.0,
        slow_4g: false,
        warm: true,
        agent: true,
        width: 1280,
        height: 900,
        timeout: Duration::from_secs(60),
        widget_dir: widget_dir(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} needs a value (see --help)"))
        };
        match arg.as_str() {
            "--runs" => {
                options.runs = value("--runs")?.parse().context("--runs: a number")?;
            }
            "--cpu-throttle" => {
                options.cpu_throttle = value("--cpu-throttle")?
                    .parse()
                    .context("--cpu-throttle: a number")?;
            }
            "--width" => options.width = value("--width")?.parse().context("--width")?,
            "--height" => options.height = value("--height")?.parse().context("--height")?,
            "--timeout" => {
                let secs: u64 = value("--timeout")?.parse().context("--timeout: seconds")?;
                options.timeout = Duration::from_secs(secs);
            }
            "--widget-dir" => options.widget_dir = PathBuf::from(value("--widget-dir")?),
            "--slow-4g" => options.slow_4g = true,
            "--no-warm" => options.warm = false,
            "--no-agent" => options.agent = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if options.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if options.cpu_throttle < 1.0 {
        bail!("--cpu-throttle must be at least 1 (1 = no throttling)");
    }
    Ok(options)
}

/// Fails with what to do when the widget build or the browser is missing.
fn preflight(options: &Options) -> Result<()> {
    let dir = &options.widget_dir;
    for file in ["manifest.json", "widget.js", "agent.js"] {
        if !dir.join(file).exists() {
            bail!(
                "the widget is not built ({} has no {file}): run `cargo xtask widget`",
                dir.display()
            );
        }
    }
    let found = |env: &str, candidates: &[&str]| {
        std::env::var_os(env).map(PathBuf::from).map_or_else(
            || candidates.iter().any(|p| std::path::Path::new(p).exists()),
            |p| p.exists(),
        )
    };
    if !found(
        "CHROME",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    ) {
        bail!("chromium not found: run `cargo xtask setup` (Debian's chromium) or set CHROME");
    }
    if !found(
        "CHROMEDRIVER",
        &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
    ) {
        bail!(
            "chromedriver not found: run `cargo xtask setup` (Debian's chromium-driver) or set \
             CHROMEDRIVER"
        );
    }
    Ok(())
}

/// One page visit's figures, in milliseconds.
#[derive(Default)]
struct Visit {
    fcp: Option<f64>,
    launcher: Option<f64>,
    panel: Option<f64>,
    online: Option<f64>,
    wasm: Option<f64>,
    login: Option<f64>,
    resources: Vec<Value>,
}

impl Visit {
    fn from_page(page: &Value) -> Self {
        let t = &page["t"];
        let at = |name: &str| t[name].as_f64();
        let click = at("click");
        let since_click = |v: Option<f64>| Some(v? - click?);
        let resources = page["resources"].as_array().cloned().unwrap_or_default();
        let wasm_end = resources
            .iter()
            .find(|r| r["name"].as_str().is_some_and(|n| n.ends_with(".wasm")))
            .and_then(|r| r["end"].as_f64());
        Self {
            fcp: page["fcp"].as_f64(),
            launcher: at("launcher"),
            panel: since_click(at("panel")),
            online: since_click(at("onlineSeen")),
            wasm: since_click(wasm_end),
            login: at("login"),
            resources,
        }
    }
}

/// A fresh headless Chromium (its own profile dir), CPU-throttled if asked, with the
/// instrumentation injected into every document.
async fn start_browser(options: &Options) -> Result<Browser> {
    let (width, height) = (options.width, options.height);
    // chromedriver sometimes does not come up on a loaded machine (`Browser::start` panics
    // then, its message on stderr): try again with another port.
    let mut attempt = 1;
    let browser = loop {
        match tokio::spawn(Browser::start(width, height)).await {
            Ok(browser) => break browser,
            Err(e) if attempt < 3 => {
                eprintln!("the browser did not start ({e}); trying again");
                attempt += 1;
            }
            Err(e) => bail!("the browser did not start, 3 times: {e}"),
        }
    };
    browser
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": INSTRUMENT }),
        )
        .await;
    if options.cpu_throttle > 1.0 {
        browser
            .cdp(
                "Emulation.setCPUThrottlingRate",
                json!({ "rate": options.cpu_throttle }),
            )
            .await;
    }
    if options.slow_4g {
        // Lighthouse's throttling of "slow 4G" as DevTools applies it (kbit/s → bytes/s).
        browser.cdp("Network.enable", json!({})).await;
        browser
            .cdp(
                "Network.emulateNetworkConditions",
                json!({
                    "offline": false,
                    "latency": 562.5,
                    "downloadThroughput": 1474.56 * 1024.0 / 8.0,
                    "uploadThroughput": 675.0 * 1024.0 / 8.0,
                }),
            )
            .await;
    }
    Ok(browser)
}

/// Runs `COLLECT` until `done` holds for it; fails with the page's state after `timeout`.
async fn wait_page(
    browser: &Browser,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let page = browser
            .client
            .execute(COLLECT, vec![])
            .await
            .with_context(|| format!("reading the page while waiting for {what}"))?;
        if done(&page) {
            return Ok(page);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "timed out after {timeout:?} waiting for {what}; recorded so far: {}",
                page["t"]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has(page: &Value, name: &str) -> bool {
    page["t"][name].is_number()
}

/// Loads the host page, waits for the launcher, clicks it, waits for the panel and the
/// connection.
async fn visitor_visit(browser: &Browser, url: &str, timeout: Duration) -> Result<Visit> {
    browser
        .client
        .goto(url)
        .await
        .with_context(|| format!("loading {url}"))?;
    wait_page(browser, "the launcher to be painted", timeout, |p| {
        has(p, "launcher") && p["ready"] == "complete"
    })
    .await?;
    // A visitor reads the page a moment before opening the chat: the click is timed on a
    // page that has finished loading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let host = browser
        .client
        .find(Locator::Css("#nexus-flow-root"))
        .await
        .context("the widget's host element")?;
    let launcher = host
        .shadow_root()
        .await
        .context("the widget's shadow root")?
        .find(Locator::Css("[data-testid=\"launcher\"]"))
        .await
        .context("the launcher")?;
    launcher.click().await.context("clicking the launcher")?;
    let page = wait_page(browser, "the panel to be usable and online", timeout, |p| {
        has(p, "panel") && has(p, "onlineSeen")
    })
    .await?;
    Ok(Visit::from_page(&page))
}

/// Loads the agent console and waits for its login form.
async fn agent_visit(browser: &Browser, url: &str, timeout: Duration) -> Result<Visit> {
    browser
        .client
        .goto(url)
        .await
        .with_context(|| format!("loading {url}"))?;
    let page = wait_page(browser, "the agent login form", timeout, |p| {
        has(p, "login") && p["ready"] == "complete"
    })
    .await?;
    Ok(Visit::from_page(&page))
}

/// Every sample of one metric, in milliseconds.
struct Series {
    key: &'static str,
    label: &'static str,
    samples: Vec<f64>,
}

struct Summary {
    n: usize,
    min: f64,
    median: f64,
    p95: f64,
    max: f64,
}

impl Series {
    fn new(key: &'static str, label: &'static str) -> Self {
        Self {
            key,
            label,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, value: Option<f64>) {
        if let Some(v) = value {
            self.samples.push(v);
        }
    }

    fn summary(&self) -> Option<Summary> {
        let mut s = self.samples.clone();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let rank = |q: f64| s[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let median = if n.is_multiple_of(2) {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        } else {
            s[n / 2]
        };
        Some(Summary {
            n,
            min: s[0],
            median,
            p95: rank(0.95),
            max: s[n - 1],
        })
    }
}

/// The size figures of one file of the build, from its resource timing entry.
struct FileSize {
    bundle: &'static str,
    role: &'static str,
    name: String,
    transfer: u64,
    encoded: u64,
    decoded: u64,
}

/// Picks the widget's files out of a page's resource entries.
fn file_sizes(bundle: &'static str, resources: &[Value]) -> Vec<FileSize> {
    let mut sizes = Vec::new();
    for r in resources {
        let Some(url) = r["name"].as_str() else {
            continue;
        };
        let name = url.rsplit('/').next().unwrap_or(url).to_owned();
        let role = if name == "widget.js" || name == "agent.js" {
            "loader"
        } else if name.ends_with(".wasm") {
            "wasm"
        } else if name.ends_with(".js") && name.starts_with("nexus-") {
            "js glue"
        } else if name.ends_with(".css") && name.starts_with("nexus-") {
            "css"
        } else {
            continue;
        };
        let size = |key: &str| r[key].as_u64().unwrap_or(0);
        sizes.push(FileSize {
            bundle,
            role,
            name,
            transfer: size("transfer"),
            encoded: size("encoded"),
            decoded: size("decoded"),
        });
    }
    sizes
}

/// Asks the server for every file of the build once, brotli-compressed as Chromium asks for
/// it: the server compresses each file on its first request, which is not what a visitor
/// of a running site waits for.
async fn warm_server(server: &TestServer, widget: &std::path::Path) -> Result<()> {
    let http = reqwest::Client::new();
    let mut paths = vec!["/widget.js".to_owned()];
    for entry in std::fs::read_dir(widget).context("reading the widget build")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        paths.push(format!("/widget/{name}"));
    }
    for path in paths {
        let response = http
            .get(server.url(&path))
            .header("accept-encoding", "gzip, deflate, br, zstd")
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        response
            .bytes()
            .await
            .with_context(|| format!("GET {path}"))?;
    }
    Ok(())
}

fn ms(v: f64) -> String {
    format!("{v:.1}")
}

async fn measure(options: Options) -> Result<()> {
    preflight(&options)?;
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let snapshot = {
        let source = options.widget_dir.clone();
        let to = dir.path().to_owned();
        // Copy the build: another `cargo xtask widget` may rewrite it while this runs.
        if source == widget_dir() {
            widget_snapshot(&to)
        } else {
            source
        }
    };
    let server = TestServer::start_with(&dir.path().join("timing.db"), &snapshot).await;
    warm_server(&server, &snapshot).await?;
    let base = server.url("");
    let host = HostPage::embed(&base, "", "").await;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "server: in-process nexus-server ({profile} build) at {base}, fresh SQLite file; \
         host page {}; {} run(s)",
        host.url, options.runs
    );

    let mut series = vec![
        Series::new(
            "visitor_cold_fcp_ms",
            "visitor, cold: host page first contentful paint",
        ),
        Series::new(
            "visitor_cold_launcher_ms",
            "visitor, cold: navigation → launcher painted",
        ),
        Series::new(
            "visitor_cold_wasm_ms",
            "visitor, cold: click → wasm fetched",
        ),
        Series::new(
            "visitor_cold_panel_ms",
            "visitor, cold: click → panel usable",
        ),
        Series::new("visitor_cold_online_ms", "visitor, cold: click → online"),
        Series::new(
            "visitor_warm_launcher_ms",
            "visitor, warm: navigation → launcher painted",
        ),
        Series::new(
            "visitor_warm_panel_ms",
            "visitor, warm: click → panel usable",
        ),
        Series::new("visitor_warm_online_ms", "visitor, warm: click → online"),
        Series::new(
            "agent_cold_login_ms",
            "agent, cold: navigation → login form usable",
        ),
        Series::new(
            "agent_warm_login_ms",
            "agent, warm: navigation → login form usable",
        ),
    ];
    let mut record = |key: &str, value: Option<f64>| {
        if let Some(s) = series.iter_mut().find(|s| s.key == key) {
            s.push(value);
        }
    };

    // Sizes, from fresh browsers on the server's own origin (see the module documentation).
    // Not timed: these visits also take the server's and the machine's first-time costs
    // (first WebSocket, first SQLite queries, Chromium's files read from disk) out of run 1.
    let mut sizes = Vec::new();
    {
        let browser = start_browser(&options).await?;
        let visit = visitor_visit(&browser, &server.url("/"), options.timeout).await?;
        sizes.extend(file_sizes("visitor", &visit.resources));
        browser.close().await;
    }
    if options.agent {
        let browser = start_browser(&options).await?;
        let visit = agent_visit(&browser, &server.url("/agent"), options.timeout).await?;
        sizes.extend(file_sizes("agent", &visit.resources));
        browser.close().await;
    }

    for run in 1..=options.runs {
        let browser = start_browser(&options).await?;
        let cold = visitor_visit(&browser, &host.url, options.timeout).await?;
        record("visitor_cold_fcp_ms", cold.fcp);
        record("visitor_cold_launcher_ms", cold.launcher);
        record("visitor_cold_wasm_ms", cold.wasm);
        record("visitor_cold_panel_ms", cold.panel);
        record("visitor_cold_online_ms", cold.online);
        let mut line = format!(
            "run {run}/{}: launcher {} ms, click → panel {} ms, → online {} ms",
            options.runs,
            cold.launcher.map_or("-".into(), ms),
            cold.panel.map_or("-".into(), ms),
            cold.online.map_or("-".into(), ms),
        );
        if options.warm {
            let warm = visitor_visit(&browser, &host.url, options.timeout).await?;
            record("visitor_warm_launcher_ms", warm.launcher);
            record("visitor_warm_panel_ms", warm.panel);
            record("visitor_warm_online_ms", warm.online);
            line += &format!(
                "; warm: launcher {} ms, panel {} ms",
                warm.launcher.map_or("-".into(), ms),
                warm.panel.map_or("-".into(), ms)
            );
        }
        browser.close().await;
        if options.agent {
            let browser = start_browser(&options).await?;
            let agent_url = server.url("/agent");
            let cold = agent_visit(&browser, &agent_url, options.timeout).await?;
            record("agent_cold_login_ms", cold.login);
            line += &format!("; agent login {} ms", cold.login.map_or("-".into(), ms));
            if options.warm {
                let warm = agent_visit(&browser, &agent_url, options.timeout).await?;
                record("agent_warm_login_ms", warm.login);
                line += &format!(" (warm {} ms)", warm.login.map_or("-".into(), ms));
            }
            browser.close().await;
        }
        eprintln!("{line}");
    }

    drop(host);
    server.stop().await;

    report(&options, profile, &series, &sizes);
    Ok(())
}

fn report(options: &Options, profile: &str, series: &[Series], sizes: &[FileSize]) {
    println!();
    println!(
        "Widget timings: {} run(s), each in a fresh browser profile (cold cache){}; CPU \
         throttle {}x; network {}; window {}x{}; server {profile} build; ms since navigation \
         start or since the click on the launcher",
        options.runs,
        if options.warm {
            ", then a second visit in the same browser (warm cache)"
        } else {
            ""
        },
        options.cpu_throttle,
        if options.slow_4g { "slow 4G" } else { "local" },
        options.width,
        options.height
    );
    println!();
    println!(
        "| {:<50} | {:>3} | {:>8} | {:>8} | {:>8} | {:>8} |",
        "metric (ms)", "n", "min", "median", "p95", "max"
    );
    println!(
        "|{:-<52}|{:->5}|{:->10}|{:->10}|{:->10}|{:->10}|",
        "", "", "", "", "", ""
    );
    let mut metrics = serde_json::Map::new();
    for s in series {
        let Some(sum) = s.summary() else {
            continue;
        };
        println!(
            "| {:<50} | {:>3} | {:>8} | {:>8} | {:>8} | {:>8} |",
            s.label,
            sum.n,
            ms(sum.min),
            ms(sum.median),
            ms(sum.p95),
            ms(sum.max)
        );
        let round = |v: f64| (v * 10.0).round() / 10.0;
        metrics.insert(
            s.key.to_owned(),
            json!({
                "n": sum.n, "min": round(sum.min), "median": round(sum.median),
                "p95": round(sum.p95), "max": round(sum.max)
            }),
        );
    }
    println!();
    println!(
        "| {:<8} | {:<8} | {:<32} | {:>9} | {:>9} | {:>9} |",
        "bundle", "file", "name", "transfer", "encoded", "decoded"
    );
    println!(
        "|{:-<10}|{:-<10}|{:-<34}|{:->11}|{:->11}|{:->11}|",
        "", "", "", "", "", ""
    );
    let mut files = Vec::new();
    for f in sizes {
        println!(
            "| {:<8} | {:<8} | {:<32} | {:>9} | {:>9} | {:>9} |",
            f.bundle, f.role, f.name, f.transfer, f.encoded, f.decoded
        );
        files.push(json!({
            "bundle": f.bundle, "file": f.role, "name": f.name,
            "transfer_bytes": f.transfer, "encoded_bytes": f.encoded, "decoded_bytes": f.decoded
        }));
    }
    println!(
        "(bytes: transfer = on the wire with headers, encoded = compressed body, decoded = as \
         used; read on the server's own pages, cold cache)"
    );
    println!(
        "{}",
        json!({
            "tool": "widget-timing",
            "runs": options.runs,
            "cpu_throttle": options.cpu_throttle,
            "slow_4g": options.slow_4g,
            "warm": options.warm,
            "window": [options.width, options.height],
            "server_build": profile,
            "metrics_ms": metrics,
            "sizes": files,
        })
    );
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // On Ctrl-C the measurement is dropped, and with it the browser (its process group is
    // killed) and the server.
    let result = match parse_args() {
        Ok(options) => tokio::select! {
            result = measure(options) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("widget-timing: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
