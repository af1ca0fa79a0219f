//! axe-core, run in a real headless Chromium on the open visitor widget (with an AI answer, its
//! feedback buttons and the composer on screen): no serious or critical violation. axe-core is
//! installed by `cargo xtask setup` under `target/tools/` and injected from that file.

use nexus_tests::WAIT;
use nexus_tests::browser::{Browser, probe_css};
use nexus_tests::{TestServer, widget_dir, workspace_root};

/// Runs axe on the widget's host element (axe walks into its shadow root); answers
/// `[rule, impact, help, [targets…]]` for each serious or critical violation.
const RUN_AXE: &str = "const done = arguments[arguments.length - 1];
    axe.run(document.querySelector('#nexus-flow-root'), {resultTypes: ['violations']})
      .then(r => done(r.violations
          .filter(v => v.impact === 'serious' || v.impact === 'critical')
          .map(v => [v.id, v.impact, v.help, v.nodes.slice(0, 3).map(n => n.target)])))
      .catch(e => done([['axe failed', String(e)]]));";

#[tokio::test]
async fn axe_finds_no_serious_violation_in_the_open_widget() {
    assert!(
        widget_dir().join("manifest.json").exists(),
        "the widget is not built: run `cargo xtask widget` (`cargo xtask test` does)"
    );
    let axe_file = workspace_root()
        .join("target")
        .join("tools")
        .join("node_modules")
        .join("axe-core")
        .join("axe.min.js");
    let axe = std::fs::read_to_string(&axe_file).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): run `cargo xtask setup`, which installs axe-core",
            axe_file.display()
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let browser = Browser::start(1280, 900).await;
    browser.client.goto(&server.url("/")).await.unwrap();
    browser.click_launcher(WAIT).await;
    browser.send_message("how can I cancel my order").await;
    browser
        .wait_for(
            "an AI answer with its feedback buttons",
            WAIT,
            &probe_css(
                "[data-testid=\"message\"][data-author=\"ai\"] [data-testid=\"feedback-up\"]",
                "e.offsetParent !== null",
            ),
        )
        .await;

    browser
        .js(&format!("{axe}\nreturn typeof axe;"), vec![])
        .await;
    let violations = browser
        .client
        .execute_async(RUN_AXE, vec![])
        .await
        .expect("axe runs");
    assert_eq!(
        violations,
        serde_json::json!([]),
        "axe-core reports serious or critical violations in the open widget"
    );

    browser.close().await;
    server.stop().await;
}
