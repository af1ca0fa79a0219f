//! One decision of the embedded answer engine over a knowledge base of 10,000 article
//! passages (each found by its title and 4 pieces of its text: 50,000 vectors). Prints
//! figures; asserts nothing about time.
//!
//! `cargo bench -p nexus-engine --bench engine`. The model comes from `NEXUS_FLOW_MODEL_DIR`
//! or the cache `cargo xtask setup` fills; without it only the classifier is measured.
//!
//! - `rank_and_decide`: the classifier (similarities, coverage of the question's words) and
//!   the decision for an already embedded question;
//! - `embed_question`: embedding one question with all-MiniLM-L6-v2;
//! - `embed_batch/N`: one forward pass over N different questions on one thread (throughput:
//!   questions/s at N = 1, 8, 32);
//! - `decide_end_to_end`: `AnswerEngine::decide` as the server calls it (embedding through the
//!   batching threads, ranking, deciding);
//!   Before it, 1,000 decisions one at a time are timed each and their p50 / p99 / max printed
//!   (the target is stated on the p99);
//! - `decide_concurrent/N`: N decisions at once, as N conversations asking together (the
//!   batcher shares forward passes among them; throughput: decisions/s).
//!
//! The vectors are random unit vectors and the texts random words of a 5,000-word vocabulary
//! (the time does not depend on what they say), so the bench needs no data set. Building the
//! model (calibration included) is timed and printed too.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nexus_engine::classifier::Label;
use nexus_engine::embed::{DIM, Embedder, default_model_dir, normalize};
use nexus_engine::semantic::{DEFAULT_THRESHOLDS, SemanticEngine, SiteModel};
use nexus_engine::{AnswerEngine, KbEntry, Query};

const PASSAGES: usize = 10_000;
/// Texts a passage is found by: its title and 4 pieces of its text.
const TEXTS_PER_PASSAGE: usize = 5;

fn random_unit(seed: &mut u64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        })
        .collect();
    normalize(&mut v);
    v
}

fn random_words(seed: &mut u64, n: usize) -> String {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            format!("word{}", (*seed >> 33) % 5_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn site_model() -> SiteModel {
    let mut seed = 42;
    let mut owned = Vec::with_capacity(PASSAGES * TEXTS_PER_PASSAGE);
    let mut vectors = Vec::with_capacity(PASSAGES * TEXTS_PER_PASSAGE);
    for i in 0..PASSAGES {
        for t in 0..TEXTS_PER_PASSAGE {
            let words = if t == 0 { 4 } else { 45 };
            owned.push((random_words(&mut seed, words), Label::Class(i as u32), true));
            vectors.push(random_unit(&mut seed));
        }
    }
    let entries = (0..PASSAGES)
        .map(|i| KbEntry {
            url: Some(format!("https://shop.example/help/{i}")),
            id: format!("doc:help#{i}"),
            title: format!("Help › Passage {i}"),
            answer: format!("Passage {i}"),
            examples: Vec::new(),
            escalate: None,
        })
        .collect();
    SiteModel::from_vectors(entries, &owned, vectors)
}

/// This thread's time on a CPU and waiting for one so far, in ns (Linux's
/// `/proc/thread-self/schedstat`; `None` elsewhere).
fn sched_ns() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut f = s.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some((f.next()??, f.next()??))
}

/// Runs `f` `n` times on this thread and prints the mean wall time, time on a CPU and time
/// waiting for a core per call (on a shared machine the CPU time is the figure that does not
/// depend on the other processes).
fn cpu_figure(label: &str, n: u32, per_call: u32, mut f: impl FnMut()) {
    f();
    let wall = std::time::Instant::now();
    let before = sched_ns();
    for _ in 0..n {
        f();
    }
    let after = sched_ns();
    let calls = f64::from(n * per_call);
    let wall_ms = wall.elapsed().as_secs_f64() * 1e3 / calls;
    match before.zip(after) {
        Some(((c0, w0), (c1, w1))) => println!(
            "{label}: {wall_ms:.3} ms wall, {:.3} ms on a CPU, {:.3} ms waiting for a core (mean of {calls})",
            (c1 - c0) as f64 / 1e6 / calls,
            (w1 - w0) as f64 / 1e6 / calls
        ),
        None => println!("{label}: {wall_ms:.3} ms wall (mean of {calls})"),
    }
}

fn model_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("NEXUS_FLOW_MODEL_DIR")
        .map(Into::into)
        .or_else(default_model_dir)
}

fn bench(c: &mut Criterion) {
    let started = std::time::Instant::now();
    let model = site_model();
    println!(
        "built and calibrated a {PASSAGES}-passage classifier ({} vectors) in {:.2} s",
        model.classifier.len(),
        started.elapsed().as_secs_f64()
    );
    let mut seed = 7;
    let q = random_unit(&mut seed);
    cpu_figure("rank_and_decide (10,000 passages)", 2000, 1, || {
        let r = model.rank(black_box(&q), "where is my parcel word17 word4000");
        black_box(SemanticEngine::decide_ranked(
            &model,
            &r,
            &DEFAULT_THRESHOLDS,
            "where is my parcel",
        ));
    });
    c.bench_function("rank_and_decide (10,000 passages)", |b| {
        b.iter(|| {
            let r = model.rank(black_box(&q), "where is my parcel word17 word4000");
            black_box(SemanticEngine::decide_ranked(
                &model,
                &r,
                &DEFAULT_THRESHOLDS,
                "where is my parcel",
            ))
        })
    });

    let Some(embedder) = model_dir().and_then(|d| Embedder::load(&d).ok()) else {
        println!("no embedding model (run `cargo xtask setup`): embedding not measured");
        return;
    };
    println!(
        "embedding model: linear layers in {} (NEXUS_FLOW_EMBED_PRECISION=f32 or int8 picks)",
        embedder.precision().as_str()
    );
    let embedder = Arc::new(embedder);
    let question = "I ordered a jacket last week and it still has not arrived, where is it?";
    c.bench_function("embed_question", |b| {
        b.iter(|| black_box(embedder.embed_transient(black_box(question))))
    });

    // Different questions of typical length (a cached one would skip the model).
    let questions: Vec<String> = (0..32)
        .map(|i| format!("{question} (order number {})", 1000 + 37 * i))
        .collect();
    cpu_figure("embed_question", 300, 1, || {
        black_box(embedder.embed_transient(black_box(question)).ok());
    });
    for n in [1usize, 8, 32] {
        let texts: Vec<&str> = questions[..n].iter().map(String::as_str).collect();
        cpu_figure(
            &format!("embed_batch/{n} (per question)"),
            40,
            n as u32,
            || {
                black_box(embedder.embed_transient_batch(black_box(&texts)).ok());
            },
        );
    }
    let mut group = c.benchmark_group("embed_batch");
    for n in [1usize, 8, 32] {
        let texts: Vec<&str> = questions[..n].iter().map(String::as_str).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &texts, |b, texts| {
            b.iter(|| black_box(embedder.embed_transient_batch(black_box(texts))))
        });
    }
    group.finish();

    let engine = SemanticEngine::with_embedder(embedder);
    let site = uuid::Uuid::new_v4();
    engine.install_model(site, site_model());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The distribution of one decision at a time (the target is on its p99), each timed alone.
    let mut times: Vec<f64> = rt.block_on(async {
        let mut times = Vec::with_capacity(1000);
        for i in 0..1000 {
            let t = std::time::Instant::now();
            black_box(
                engine
                    .decide(Query {
                        site_id: site,
                        text: &questions[i % questions.len()],
                        locale: None,
                    })
                    .await
                    .ok(),
            );
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times
    });
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "decide one at a time (10,000 passages, 1,000 questions of about 20 tokens): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms wall",
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    );
    c.bench_function("decide_end_to_end (10,000 passages)", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                engine
                    .decide(Query {
                        site_id: site,
                        text: question,
                        locale: None,
                    })
                    .await,
            )
        })
    });
    let mut group = c.benchmark_group("decide_concurrent");
    for n in [8usize, 32] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.to_async(&rt).iter(|| {
                let engine = &engine;
                let questions = &questions;
                async move {
                    let decisions = (0..n).map(|i| {
                        engine.decide(Query {
                            site_id: site,
                            text: &questions[i % questions.len()],
                            locale: None,
                        })
                    });
                    black_box(futures_util::future::join_all(decisions).await)
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
