//! The embedded answer engine as the server runs it: the model is found (or the lexical engine
//! serves and says why), questions are answered from the demo knowledge base, a KB change is
//! seen by the next question, and `nexus-flow eval` prints its report.
//!
//! These tests need the model that `cargo xtask setup` caches (the README's test command runs
//! it); `NEXUS_FLOW_MODEL_DIR` points elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::Body;
use axum::http::Request;
use nexus_engine::embed::{Embedder, Kernel, Precision};
use nexus_engine::{Decision, KbEntry, Query};
use nexus_server::{AppState, Config, build_state};
use tower::ServiceExt;

fn model_dir() -> PathBuf {
    let dir = std::env::var_os("NEXUS_FLOW_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(nexus_engine::embed::default_model_dir)
        .expect("a model directory (HOME or NEXUS_FLOW_MODEL_DIR)");
    assert!(
        dir.join("model.safetensors").is_file(),
        "the embedding model is not in {}: run `cargo xtask setup`",
        dir.display()
    );
    dir
}

async fn state(db_dir: &Path, model_dir: Option<PathBuf>) -> AppState {
    let config = Config {
        addr: "127.0.0.1:0".parse().expect("address"),
        database_url: format!("sqlite://{}", db_dir.join("nexus.db").display()),
        widget_dir: db_dir.join("no-widget"),
        model_dir,
        egress: Default::default(),
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    build_state(&config, rx).await.expect("state builds")
}

async fn health(state: &AppState) -> serde_json::Value {
    let response = nexus_server::app(state.clone())
        .oneshot(
            Request::get("/api/v1/health")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    serde_json::from_slice(&body).expect("json")
}

async fn demo_site(state: &AppState) -> uuid::Uuid {
    state
        .store
        .site_by_key("demo")
        .await
        .expect("store")
        .expect("demo site")
        .id
}

async fn decide(state: &AppState, site_id: uuid::Uuid, text: &str) -> Decision {
    state
        .engine
        .decide(Query {
            site_id,
            text,
            locale: Some("en"),
        })
        .await
        .expect("decision")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_model_the_lexical_engine_serves_and_health_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(dir.path(), Some(dir.path().join("no-model-here"))).await;
    let h = health(&state).await;
    assert_eq!(h["engine"], "lexical");
    let reason = h["engine_reason"].as_str().expect("a reason");
    assert!(reason.contains("could not be loaded"), "{reason}");
    assert!(reason.contains("model.safetensors"), "{reason}");
    // And it still answers the demo shop's routine questions.
    let site = demo_site(&state).await;
    assert!(matches!(
        decide(&state, site, "How do I cancel my order?").await,
        Decision::Answer { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_model_demo_questions_are_answered_and_kb_changes_apply_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(dir.path(), Some(model_dir())).await;
    let h = health(&state).await;
    assert_eq!(h["engine"], "minilm");
    assert!(h.get("engine_reason").is_none(), "{h}");
    let site = demo_site(&state).await;

    // Paraphrases that share few words with the examples.
    for (question, entry) in [
        (
            "I'd like to call off the purchase I made yesterday",
            "cancel_order",
        ),
        (
            "could you look up how far along my order 12345 is?",
            "track_order",
        ),
        ("I can't remember my login password", "recover_password"),
    ] {
        match decide(&state, site, question).await {
            Decision::Answer { source, .. } => assert_eq!(source.entry_id, entry, "{question}"),
            Decision::Clarify { choices, .. } => assert!(
                choices.iter().any(|c| c.id == entry),
                "{question}: {choices:?}"
            ),
            other => panic!("{question}: {other:?}"),
        }
    }
    assert!(matches!(
        decide(&state, site, "I want to speak to a real person").await,
        Decision::Escalate { .. }
    ));

    // A new entry is used by the very next question (no restart, no wait).
    let mut entries = state.store.kb_entries(site).await.expect("kb");
    assert!(!entries.iter().any(|e| e.id == "gift_wrapping"));
    entries.push(KbEntry {
        url: None,
        id: "gift_wrapping".into(),
        title: "Gift wrapping".into(),
        answer: "Yes: tick \"gift wrap\" at checkout.".into(),
        examples: vec![
            "do you offer gift wrapping".into(),
            "can you wrap my order as a present".into(),
            "is gift wrap available".into(),
        ],
        escalate: None,
    });
    state.engine.load_site(site, entries);
    match decide(&state, site, "could you gift-wrap the present for me?").await {
        Decision::Answer { source, .. } => assert_eq!(source.entry_id, "gift_wrapping"),
        Decision::Clarify { choices, .. } => {
            assert!(
                choices.iter().any(|c| c.id == "gift_wrapping"),
                "{choices:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(state.engine.entry(site, "gift_wrapping").is_some());
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn eval(args: &[&str]) -> (String, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_nexus-flow"))
        .arg("eval")
        .arg("--kb")
        .arg(fixture("eval_kb.jsonl"))
        .arg("--queries")
        .arg(fixture("eval_queries.jsonl"))
        .arg("--model-dir")
        .arg(model_dir())
        .args(args)
        .output()
        .expect("nexus-flow runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "eval failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("output").to_owned();
    let json: serde_json::Value = serde_json::from_str(&last).expect("the last line is JSON");
    (stdout, json)
}

#[test]
fn eval_prints_a_table_then_one_json_line_with_the_named_keys() {
    let (stdout, j) = eval(&[]);
    assert!(stdout.contains("automation"), "{stdout}");
    for key in [
        "queries",
        "answered_correct",
        "answered_wrong",
        "escalated_in_scope",
        "escalated_out_of_scope",
        "clarified",
        "automation",
        "wrong_rate",
        "oos_recall",
        "p99_ms",
    ] {
        assert!(j.get(key).is_some(), "{key} missing in {j}");
    }
    assert!(j.get("windows").is_none());
    let n = |k: &str| j[k].as_u64().expect(k);
    assert_eq!(n("queries"), 23);
    assert_eq!(
        n("answered_correct")
            + n("answered_wrong")
            + n("escalated_in_scope")
            + n("escalated_out_of_scope")
            + n("clarified"),
        23
    );
    // Easy questions: most are automated, few are wrong, out-of-scope ones mostly handed over.
    let f = |k: &str| j[k].as_f64().expect(k);
    assert!(f("automation") >= 0.7, "{j}");
    assert!(f("wrong_rate") <= 0.15, "{j}");
    assert!(f("oos_recall") >= 0.6, "{j}");
    assert!(f("p99_ms") > 0.0, "{j}");
    let automated = (n("answered_correct") + n("clarified")) as f64 / 18.0;
    assert!((f("automation") - automated).abs() < 1e-3, "{j}");
}

#[test]
fn eval_stream_reports_windows_and_draws_the_learning_curve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("curve.svg");
    let (_, j) = eval(&[
        "--stream",
        "--seed-per-intent",
        "2",
        "--seed",
        "3",
        "--plot",
        svg.to_str().expect("utf-8 path"),
    ]);
    let windows = j["windows"].as_array().expect("windows");
    // 23 queries: one (short) window.
    assert_eq!(windows.len(), 1, "{j}");
    assert!(windows[0]["automation"].as_f64().is_some());
    assert!(windows[0]["wrong_rate"].as_f64().is_some());
    let drawing = std::fs::read_to_string(&svg).expect("the SVG is written");
    assert!(drawing.starts_with("<svg") && drawing.contains("polyline"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_topic_questions_are_handed_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(dir.path(), Some(model_dir())).await;
    let site = demo_site(&state).await;
    for question in [
        "Do you offer gift wrapping for birthday presents?",
        "who is going to win the world cup?",
    ] {
        assert!(
            matches!(
                decide(&state, site, question).await,
                Decision::Escalate { .. }
            ),
            "{question}"
        );
    }
}

/// The reference embeddings in `tests/data/minilm_reference.jsonl` were computed once with the
/// previous implementation (candle 0.11's BERT, f32, one sentence a pass) on sentences of every
/// kind: short, long (cut at 128 tokens), empty, non-English, emoji. The forward pass the
/// server runs now must give the same vectors, up to float rounding.
fn reference() -> Vec<(String, Vec<f32>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/minilm_reference.jsonl");
    std::fs::read_to_string(path)
        .expect("reference file")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            let text = v["text"].as_str().expect("text").to_owned();
            let embedding = v["embedding"]
                .as_array()
                .expect("embedding")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect();
            (text, embedding)
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// The least cosine similarity of an 8-bit embedding to the `f32` reference (the worst of the
/// reference sentences measured 0.9965, the empty one; most are above 0.9995).
const INT8_MIN_COSINE: f32 = 0.995;

/// Checks `embedder` against the reference: every sentence alone, all in one batch (in another
/// order) and through the knowledge-base path, each within `min_cosine` of the reference
/// vector; a batch gives what the sentence alone gives.
fn check_against_reference(embedder: &Embedder, min_cosine: f32, max_component_error: f32) {
    let reference = reference();
    assert!(reference.len() >= 16);
    let texts: Vec<&str> = reference.iter().map(|(t, _)| t.as_str()).collect();
    let label = match embedder.kernel() {
        Some(k) => format!("int8 on {}", k.as_str()),
        None => embedder.precision().as_str().to_owned(),
    };
    // One at a time (as a question alone is embedded) ...
    let mut alone = Vec::new();
    for (text, want) in &reference {
        let got = embedder.embed_transient(text).expect("embedding");
        assert_eq!(got.len(), want.len());
        let c = cosine(&got, want);
        assert!(c >= min_cosine, "{label} {text:?}: cosine {c}");
        let worst = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < max_component_error,
            "{label} {text:?}: a component is off by {worst}"
        );
        alone.push(got);
    }
    // ... and all in one forward pass (as concurrent questions are), in any order.
    let mut shuffled: Vec<usize> = (0..texts.len()).rev().collect();
    shuffled.rotate_left(5);
    let batch: Vec<&str> = shuffled.iter().map(|&i| texts[i]).collect();
    let got = embedder.embed_transient_batch(&batch).expect("batch");
    for (v, &i) in got.iter().zip(&shuffled) {
        let c = cosine(v, &reference[i].1);
        assert!(
            c >= min_cosine,
            "{label} {:?} in a batch: cosine {c}",
            texts[i]
        );
        assert!(
            cosine(v, &alone[i]) >= 0.99999,
            "{label} {:?}: a batch changes the vector",
            texts[i]
        );
    }
    // The knowledge-base path (on every core, cached) gives the same too.
    let kb = embedder.embed(&texts).expect("kb embedding");
    for (v, (text, want)) in kb.iter().zip(&reference) {
        assert!(
            cosine(v, want) >= min_cosine,
            "{label} {text:?} via embed()"
        );
    }
}

#[test]
fn embeddings_agree_with_the_reference_implementation_alone_and_in_batches() {
    let embedder = Embedder::load_with(&model_dir(), Precision::F32).expect("model");
    assert_eq!(embedder.precision(), Precision::F32);
    check_against_reference(&embedder, 0.9999, 1e-3);
}

/// The 8-bit linear layers stay within rounding of the `f32` model on every kind of sentence,
/// on every kernel: the portable one always, AVX2 and AVX-512 VNNI where the CPU has them
/// (those two are also tested alone in `nexus-embed`, ignored with the reason where the CPU
/// lacks them).
#[test]
fn int8_embeddings_stay_close_to_the_reference_on_every_kernel() {
    let kernels: Vec<Kernel> = Kernel::ALL
        .into_iter()
        .filter(|k| *k == Kernel::Portable || k.runs_here())
        .collect();
    eprintln!(
        "int8 kernels checked: {:?}",
        kernels.iter().map(|k| k.as_str()).collect::<Vec<_>>()
    );
    for kernel in kernels {
        let embedder = Embedder::load_int8_on(&model_dir(), kernel).expect("model");
        assert_eq!(embedder.precision(), Precision::Int8);
        assert_eq!(embedder.kernel(), Some(kernel));
        check_against_reference(&embedder, INT8_MIN_COSINE, 0.03);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_questions_each_get_their_own_decision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(dir.path(), Some(model_dir())).await;
    let site = demo_site(&state).await;
    // 40 conversations ask at once (more than one forward pass takes): every one gets the
    // decision it gets when asked alone.
    let questions = [
        "I'd like to call off the purchase I made yesterday",
        "could you look up how far along my order 12345 is?",
        "I can't remember my login password",
        "who is going to win the world cup?",
    ];
    let mut alone = Vec::new();
    for q in questions {
        alone.push(format!("{:?}", decide(&state, site, q).await));
    }
    let together = futures_util::future::join_all(
        (0..40).map(|i| decide(&state, site, questions[i % questions.len()])),
    )
    .await;
    for (i, d) in together.iter().enumerate() {
        assert_eq!(
            format!("{d:?}"),
            alone[i % questions.len()],
            "{}",
            questions[i % questions.len()]
        );
    }
}
