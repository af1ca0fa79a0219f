//! `nexus-flow eval`: measures the embedded answer engine on labelled questions.
//!
//! The knowledge base is a JSONL file of `{"text", "intent"}` lines: every line is an example
//! question of its intent (the intent's name stands in for the answer); `"intent": null` lines
//! are out-of-scope examples. The queries file has the same format; an out-of-scope query's
//! right outcome is a handover.
//!
//! Outcomes: an answer with the true intent is `answered_correct`, with another intent (or any
//! answer to an out-of-scope query) `answered_wrong`; a clarifying question whose choices hold
//! the true intent is `clarified` (the visitor picks it), otherwise `answered_wrong`; a
//! handover is `escalated_in_scope` or `escalated_out_of_scope`. `p99_ms` is the latency of
//! the engine's whole decision (embedding the question included).
//!
//! With `--docs` the knowledge base is a JSONL file of articles, `{"id", "title", "body",
//! "url"?}`: each is one entry without example questions, found by what its body says, and the
//! queries are `{"text", "doc"}` (`"doc": null` for a question no article answers).
//!
//! With `--leave-out K`, `K` intents (or articles), drawn with `--seed`, are removed from the
//! knowledge base and their queries count as out of scope: a topic the site lacks must go to
//! a person, not to its neighbour's answer.
//!
//! Besides `automation` (right answers plus clarifying questions with the right choice), the
//! last JSON line has `answered_correct_direct` (right answers without a clarifying question,
//! of the in-scope queries) and `clarify_rate` (clarifying questions, of the in-scope queries).
//!
//! With `--stream` the knowledge base starts with `K` examples per intent (and `K` of its
//! out-of-scope examples), the queries come in a shuffled order, and every handed-over query is
//! taught by an oracle agent: its text becomes an example of its true intent (or an
//! out-of-scope example), and the site is reloaded, as the server does after a teach.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Deserialize;
use uuid::Uuid;

use crate::embed::Embedder;
use crate::semantic::SemanticEngine;
use crate::{AnswerEngine, Decision, KbEntry, Query, Thresholds};

/// One labelled question.
#[derive(Debug, Clone, Deserialize)]
pub struct Labelled {
    pub text: String,
    /// The intent, or with `--docs` the article's id (`doc`).
    #[serde(alias = "doc")]
    pub intent: Option<String>,
}

/// One article of a `--docs` file.
#[derive(Debug, Clone, Deserialize)]
pub struct Doc {
    pub id: String,
    #[serde(default)]
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub url: Option<String>,
}

/// What `nexus-flow eval` was asked to do.
#[derive(Debug, Clone)]
pub struct EvalArgs {
    /// Labelled example questions (`--kb`), or articles when `docs` is set.
    pub kb: PathBuf,
    /// `kb` is a file of articles (`--docs`).
    pub docs: bool,
    /// This many intents or articles are left out of the knowledge base (`--leave-out`).
    pub leave_out: usize,
    pub queries: PathBuf,
    pub model_dir: PathBuf,
    pub stream: bool,
    pub seed_per_intent: usize,
    pub seed: u64,
    pub plot: Option<PathBuf>,
    pub thresholds: Option<Thresholds>,
    /// Draw the progress bar (on standard error).
    pub progress: bool,
    /// Also print the outcome for a grid of thresholds (questions embedded once, in batches).
    pub sweep: bool,
}

/// Counts of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub queries: usize,
    pub in_scope: usize,
    pub out_of_scope: usize,
    pub answered_correct: usize,
    pub answered_wrong: usize,
    pub escalated_in_scope: usize,
    pub escalated_out_of_scope: usize,
    pub clarified: usize,
    /// Clarifying questions asked about in-scope queries (with the right choice or not).
    pub clarify_in_scope: usize,
}

impl Counts {
    pub fn answered_correct_direct(&self) -> f64 {
        ratio(self.answered_correct, self.in_scope)
    }
    pub fn clarify_rate(&self) -> f64 {
        ratio(self.clarify_in_scope, self.in_scope)
    }
    pub fn automation(&self) -> f64 {
        ratio(self.answered_correct + self.clarified, self.in_scope)
    }
    pub fn wrong_rate(&self) -> f64 {
        ratio(self.answered_wrong, self.queries)
    }
    pub fn oos_recall(&self) -> f64 {
        ratio(self.escalated_out_of_scope, self.out_of_scope)
    }

    /// Records one outcome; returns whether the query was handed over.
    fn record(&mut self, truth: Option<&str>, decision: &Decision) -> bool {
        self.queries += 1;
        match truth {
            Some(_) => self.in_scope += 1,
            None => self.out_of_scope += 1,
        }
        if truth.is_some() && matches!(decision, Decision::Clarify { .. }) {
            self.clarify_in_scope += 1;
        }
        match (truth, decision) {
            (_, Decision::Escalate { .. }) => {
                if truth.is_some() {
                    self.escalated_in_scope += 1;
                } else {
                    self.escalated_out_of_scope += 1;
                }
                return true;
            }
            (Some(t), Decision::Answer { source, .. }) if source.entry_id == t => {
                self.answered_correct += 1;
            }
            (Some(t), Decision::Clarify { choices, .. }) if choices.iter().any(|c| c.id == t) => {
                self.clarified += 1;
            }
            _ => self.answered_wrong += 1,
        }
        false
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Reads a JSONL file of labelled questions (blank lines skipped).
pub fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Labelled>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let item: Labelled = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}", path.display(), n + 1))?;
        out.push(item);
    }
    Ok(out)
}

/// The knowledge base of a labelled file: one entry per intent (in order of first appearance)
/// and the out-of-scope examples.
pub fn knowledge_base(items: &[Labelled]) -> (Vec<KbEntry>, Vec<String>) {
    let mut entries: Vec<KbEntry> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut oos = Vec::new();
    for item in items {
        match &item.intent {
            None => oos.push(item.text.clone()),
            Some(intent) => {
                let i = *index.entry(intent.clone()).or_insert_with(|| {
                    entries.push(KbEntry {
                        url: None,
                        id: intent.clone(),
                        title: intent.replace('_', " "),
                        answer: intent.clone(),
                        examples: Vec::new(),
                        escalate: None,
                    });
                    entries.len() - 1
                });
                entries[i].examples.push(item.text.clone());
            }
        }
    }
    (entries, oos)
}

/// Reads a JSONL file of articles (blank lines skipped).
pub fn read_docs(path: &Path) -> anyhow::Result<Vec<Doc>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let doc: Doc = serde_json::from_str(line)
            .with_context(|| format!("{} line {}", path.display(), n + 1))?;
        out.push(doc);
    }
    Ok(out)
}

/// The entries of articles: one each, without example questions (as the server gives the
/// engine a passage).
pub fn doc_entries(docs: &[Doc]) -> Vec<KbEntry> {
    docs.iter()
        .map(|d| KbEntry {
            id: d.id.clone(),
            title: if d.title.is_empty() {
                d.id.clone()
            } else {
                d.title.clone()
            },
            answer: d.body.clone(),
            examples: Vec::new(),
            escalate: None,
            url: d.url.clone(),
        })
        .collect()
}

/// `k` of `ids` (distinct, in order of first appearance), drawn with `rng`.
fn draw_left_out(ids: &[&str], k: usize, rng: &mut rand::rngs::StdRng) -> Vec<String> {
    let mut distinct: Vec<&str> = Vec::new();
    for id in ids {
        if !distinct.contains(id) {
            distinct.push(id);
        }
    }
    distinct.shuffle(rng);
    distinct.into_iter().take(k).map(str::to_owned).collect()
}

/// `K` examples per intent and `K` out-of-scope examples, chosen at random.
fn seed_items(items: &[Labelled], k: usize, rng: &mut rand::rngs::StdRng) -> Vec<Labelled> {
    let mut by_intent: Vec<(Option<String>, Vec<&Labelled>)> = Vec::new();
    for item in items {
        match by_intent.iter_mut().find(|(i, _)| *i == item.intent) {
            Some((_, v)) => v.push(item),
            None => by_intent.push((item.intent.clone(), vec![item])),
        }
    }
    let mut out = Vec::new();
    for (_, mut v) in by_intent {
        v.shuffle(rng);
        out.extend(v.into_iter().take(k).cloned());
    }
    out
}

/// One window of the stream.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub end: usize,
    pub automation: f64,
    pub wrong_rate: f64,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Report {
    pub counts: Counts,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub windows: Option<Vec<Window>>,
    pub kb_examples: usize,
    pub taught: usize,
    pub seconds: f64,
    /// p99 of the two parts of a decision, measured apart on up to 500 queries against the
    /// final knowledge base: embedding the question, and ranking + deciding.
    pub embed_p99_ms: f64,
    pub rank_p99_ms: f64,
}

impl Report {
    /// The last line of the output.
    pub fn json(&self) -> serde_json::Value {
        let c = &self.counts;
        let mut v = serde_json::json!({
            "queries": c.queries,
            "answered_correct": c.answered_correct,
            "answered_wrong": c.answered_wrong,
            "escalated_in_scope": c.escalated_in_scope,
            "escalated_out_of_scope": c.escalated_out_of_scope,
            "clarified": c.clarified,
            "automation": round4(c.automation()),
            "wrong_rate": round4(c.wrong_rate()),
            "oos_recall": round4(c.oos_recall()),
            "answered_correct_direct": round4(c.answered_correct_direct()),
            "clarify_rate": round4(c.clarify_rate()),
            "p99_ms": round4(self.p99_ms),
        });
        if let Some(windows) = &self.windows {
            v["windows"] = windows
                .iter()
                .map(|w| {
                    serde_json::json!({
                        "automation": round4(w.automation),
                        "wrong_rate": round4(w.wrong_rate),
                    })
                })
                .collect();
        }
        v
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let c = &self.counts;
        let pct = |a: usize, b: usize| format!("{:6.2} %", 100.0 * ratio(a, b));
        let mut s = String::new();
        let mut row = |k: &str, v: String| s.push_str(&format!("{k:<26} {v:>12}\n"));
        row("queries", c.queries.to_string());
        row("  in scope", c.in_scope.to_string());
        row("  out of scope", c.out_of_scope.to_string());
        row("answered correct", c.answered_correct.to_string());
        row("clarified (right choice)", c.clarified.to_string());
        row("answered wrong", c.answered_wrong.to_string());
        row("escalated in scope", c.escalated_in_scope.to_string());
        row(
            "escalated out of scope",
            c.escalated_out_of_scope.to_string(),
        );
        row(
            "automation",
            pct(c.answered_correct + c.clarified, c.in_scope),
        );
        row("right answer, direct", pct(c.answered_correct, c.in_scope));
        row("clarify rate", pct(c.clarify_in_scope, c.in_scope));
        row("wrong rate", pct(c.answered_wrong, c.queries));
        row(
            "out-of-scope recall",
            pct(c.escalated_out_of_scope, c.out_of_scope),
        );
        row("decision p50", format!("{:.2} ms", self.p50_ms));
        row("decision p99", format!("{:.2} ms", self.p99_ms));
        row("  embedding p99", format!("{:.2} ms", self.embed_p99_ms));
        row(
            "  ranking + deciding p99",
            format!("{:.3} ms", self.rank_p99_ms),
        );
        row("KB texts embedded at the end", self.kb_examples.to_string());
        if self.windows.is_some() {
            row("taught by the oracle", self.taught.to_string());
        }
        row("run time", format!("{:.1} s", self.seconds));
        if let Some(windows) = &self.windows {
            s.push_str("\nwindow      automation  wrong rate\n");
            for (i, w) in windows.iter().enumerate() {
                s.push_str(&format!(
                    "{:>5}-{:<5} {:>9.2} % {:>9.2} %\n",
                    i * WINDOW + 1,
                    w.end,
                    100.0 * w.automation,
                    100.0 * w.wrong_rate
                ));
            }
        }
        s
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Queries per window of the stream.
pub const WINDOW: usize = 500;

struct Progress {
    enabled: bool,
    total: usize,
    shown: usize,
}

impl Progress {
    fn tick(&mut self, done: usize) {
        if !self.enabled || self.total == 0 {
            return;
        }
        let per_mille = done * 1000 / self.total;
        if per_mille / 10 == self.shown / 10 && done != self.total {
            return;
        }
        self.shown = per_mille;
        let width = 40;
        let filled = done * width / self.total;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r[{}{}] {done}/{} ",
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.total
        );
        if done == self.total {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// The queries, the labelled knowledge base and the articles of a run, with `--leave-out`
/// applied (the left-out intents' queries become out of scope).
type Prepared = (Vec<Labelled>, Vec<Labelled>, Vec<Doc>);

fn prepare(args: &EvalArgs, rng: &mut rand::rngs::StdRng) -> anyhow::Result<Prepared> {
    let mut queries = read_jsonl(&args.queries)?;
    let (kb_items, docs) = if args.docs {
        anyhow::ensure!(
            !args.stream,
            "--stream needs --kb (example questions), not --docs"
        );
        (Vec::new(), read_docs(&args.kb)?)
    } else {
        (read_jsonl(&args.kb)?, Vec::new())
    };
    anyhow::ensure!(
        !kb_items.is_empty() || !docs.is_empty(),
        "{} is empty",
        args.kb.display()
    );
    if args.leave_out == 0 {
        return Ok((queries, kb_items, docs));
    }
    let ids: Vec<&str> = if args.docs {
        docs.iter().map(|d| d.id.as_str()).collect()
    } else {
        kb_items
            .iter()
            .filter_map(|i| i.intent.as_deref())
            .collect()
    };
    let out = draw_left_out(&ids, args.leave_out, rng);
    let kept = |id: Option<&str>| id.is_none_or(|id| !out.iter().any(|o| o == id));
    for q in &mut queries {
        if !kept(q.intent.as_deref()) {
            q.intent = None;
        }
    }
    Ok((
        queries,
        kb_items
            .into_iter()
            .filter(|i| kept(i.intent.as_deref()))
            .collect(),
        docs.into_iter().filter(|d| kept(Some(&d.id))).collect(),
    ))
}

/// Runs the evaluation with an embedder already loaded.
pub async fn run_with(embedder: Arc<Embedder>, args: &EvalArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let (mut queries, kb_items, docs) = prepare(args, &mut rng)?;
    let doc_kb = doc_entries(&docs);
    let mut kb = if args.stream {
        queries.shuffle(&mut rng);
        seed_items(&kb_items, args.seed_per_intent.max(1), &mut rng)
    } else {
        kb_items
    };
    let mut engine = SemanticEngine::with_embedder(embedder.clone());
    if let Some(t) = args.thresholds {
        engine = engine.with_thresholds(t);
    }
    let site = Uuid::new_v4();
    let build = |kb: &[Labelled]| -> (Vec<KbEntry>, Vec<String>) {
        if args.docs {
            (doc_kb.clone(), crate::semantic::builtin_out_of_scope())
        } else {
            knowledge_base(kb)
        }
    };
    let load = |kb: &[Labelled]| -> anyhow::Result<()> {
        let (entries, oos) = build(kb);
        let e = embedder.clone();
        let model = SemanticEngine::build(&e, entries, &oos)?;
        engine.install_model(site, model);
        Ok(())
    };
    if args.progress {
        eprintln!("embedding the knowledge base ({} examples)…", kb.len());
    }
    load(&kb)?;
    let mut progress = Progress {
        enabled: args.progress,
        total: queries.len(),
        shown: usize::MAX,
    };
    let mut counts = Counts::default();
    let mut window = Counts::default();
    let mut windows = Vec::new();
    let mut latencies = Vec::with_capacity(queries.len());
    let mut taught = 0;
    for (n, q) in queries.iter().enumerate() {
        let t0 = Instant::now();
        let decision = engine
            .decide(Query {
                site_id: site,
                text: &q.text,
                locale: None,
            })
            .await?;
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        let escalated = counts.record(q.intent.as_deref(), &decision);
        window.record(q.intent.as_deref(), &decision);
        if args.stream {
            if escalated {
                kb.push(q.clone());
                taught += 1;
                load(&kb)?;
            }
            if window.queries == WINDOW || n + 1 == queries.len() {
                windows.push(Window {
                    end: n + 1,
                    automation: window.automation(),
                    wrong_rate: window.wrong_rate(),
                });
                window = Counts::default();
            }
        }
        progress.tick(n + 1);
    }
    // The two parts of a decision, apart.
    let (entries, oos) = build(&kb);
    let model = SemanticEngine::build(&embedder, entries, &oos)?;
    let mut embed_ms = Vec::new();
    let mut rank_ms = Vec::new();
    let t = args
        .thresholds
        .unwrap_or(crate::semantic::DEFAULT_THRESHOLDS);
    for q in queries.iter().take(500) {
        let t0 = Instant::now();
        let v = embedder.embed_transient(&q.text)?;
        embed_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        let t1 = Instant::now();
        let r = model.rank(&v, &q.text);
        std::hint::black_box(SemanticEngine::decide_ranked(&model, &r, &t, &q.text));
        rank_ms.push(t1.elapsed().as_secs_f64() * 1000.0);
    }
    let report = Report {
        counts,
        p50_ms: percentile(&mut latencies, 0.50),
        p99_ms: percentile(&mut latencies, 0.99),
        windows: args.stream.then_some(windows),
        kb_examples: model.classifier.len(),
        taught,
        seconds: started.elapsed().as_secs_f64(),
        embed_p99_ms: percentile(&mut embed_ms, 0.99),
        rank_p99_ms: percentile(&mut rank_ms, 0.99),
    };
    if let (Some(path), Some(windows)) = (&args.plot, &report.windows) {
        std::fs::write(path, learning_curve_svg(windows, args.seed_per_intent))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(report)
}

/// Prints (instead of the run), for a grid of answer thresholds and clarify margins (of probability), the outcome of the queries
/// against the whole knowledge base (not with `--stream`): for choosing a site's thresholds.
pub fn sweep(embedder: &Embedder, args: &EvalArgs) -> anyhow::Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let (queries, kb_items, docs) = prepare(args, &mut rng)?;
    let (entries, oos) = if args.docs {
        (doc_entries(&docs), crate::semantic::builtin_out_of_scope())
    } else {
        knowledge_base(&kb_items)
    };
    let model = SemanticEngine::build(embedder, entries, &oos)?;
    let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
    let vectors = embedder.embed(&texts)?;
    let rankings: Vec<_> = vectors
        .iter()
        .zip(&queries)
        .map(|(v, q)| model.rank(v, &q.text))
        .collect();
    let base = args
        .thresholds
        .unwrap_or(crate::semantic::DEFAULT_THRESHOLDS);
    let (mut top1, mut top3, mut in_scope) = (0, 0, 0);
    for (q, r) in queries.iter().zip(&rankings) {
        if let Some(intent) = &q.intent {
            in_scope += 1;
            let pos = r
                .classes
                .iter()
                .position(|c| model.entries[c.0 as usize].id == *intent);
            top1 += usize::from(pos == Some(0));
            top3 += usize::from(pos.is_some_and(|p| p < 3));
        }
    }
    println!(
        "in-scope top-1 accuracy {:.4}, top-3 {:.4}",
        ratio(top1, in_scope),
        ratio(top3, in_scope)
    );
    println!("answer  margin  automation  direct  wrong_rate  oos_recall  clarify_rate");
    for answer in [
        0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.97,
    ] {
        for margin in [0.0, 0.02, 0.05, 0.1, 0.2] {
            let t = Thresholds {
                answer,
                clarify_margin: margin,
                ..base
            };
            let mut c = Counts::default();
            for (q, r) in queries.iter().zip(&rankings) {
                let d = SemanticEngine::decide_ranked(&model, r, &t, &q.text);
                c.record(q.intent.as_deref(), &d);
            }
            println!(
                "{answer:6.2}  {margin:6.2}  {:10.4}  {:6.4}  {:10.4}  {:10.4}  {:12.4}",
                c.automation(),
                c.answered_correct_direct(),
                c.wrong_rate(),
                c.oos_recall(),
                c.clarify_rate()
            );
        }
    }
    Ok(())
}

/// The `p` quantile of `values` (sorts them); 0 when empty.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return 0.0;
    }
    let i = ((values.len() as f64 * p).ceil() as usize).clamp(1, values.len()) - 1;
    values[i]
}

/// Loads the model and runs; prints the table and, last, the JSON line.
pub async fn run(args: EvalArgs) -> anyhow::Result<()> {
    let dir = args.model_dir.clone();
    let embedder = tokio::task::spawn_blocking(move || Embedder::load(&dir))
        .await?
        .with_context(|| {
            format!(
                "cannot load the model from {} (run `cargo xtask setup`)",
                args.model_dir.display()
            )
        })?;
    if args.sweep {
        return sweep(&embedder, &args);
    }
    let report = run_with(Arc::new(embedder), &args).await?;
    if args.plot.is_some() && report.windows.is_none() {
        eprintln!("--plot draws the learning curve of --stream; nothing drawn");
    }
    let mut out = std::io::stdout().lock();
    write!(out, "{}", report.table())?;
    writeln!(out, "{}", report.json())?;
    Ok(())
}

/// The learning curve: automation and wrong rate per window of the stream.
pub fn learning_curve_svg(windows: &[Window], k: usize) -> String {
    let (w, h) = (640.0, 360.0);
    let (left, right, top, bottom) = (60.0, 20.0, 40.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let max_x = windows.last().map_or(1, |w| w.end).max(1) as f64;
    let x = |v: f64| left + pw * v / max_x;
    let y = |v: f64| top + ph * (1.0 - v);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"14\">Learning from agents: start with {k} \
         examples per intent, the oracle teaches every handover</text>\n"
    );
    for i in 0..=10 {
        let v = f64::from(i) / 10.0;
        s.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}%</text>\n",
            left + pw,
            left - 6.0,
            y(v) + 4.0,
            i * 10,
            y = y(v)
        ));
    }
    for win in windows {
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            x(win.end as f64),
            top + ph + 16.0,
            win.end
        ));
    }
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">questions seen (windows of {WINDOW})</text>\n",
        left + pw / 2.0,
        h - 10.0
    ));
    let line = |pick: &dyn Fn(&Window) -> f64, colour: &str| {
        let points: Vec<String> = windows
            .iter()
            .map(|win| format!("{:.1},{:.1}", x(win.end as f64), y(pick(win))))
            .collect();
        format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n{}",
            points.join(" "),
            points
                .iter()
                .map(|p| {
                    let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                    format!("<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{colour}\"/>\n")
                })
                .collect::<String>()
        )
    };
    s.push_str(&line(&|w| w.automation, "#1f77b4"));
    s.push_str(&line(&|w| w.wrong_rate, "#d62728"));
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#1f77b4\">automation</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#d62728\">wrong rate</text>\n</svg>\n",
        left + pw - 90.0,
        top + 14.0,
        left + pw - 90.0,
        top + 30.0
    ));
    s
}
