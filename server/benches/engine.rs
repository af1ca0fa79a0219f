//! One decision of the embedded answer engine over a 10,000-example knowledge base (150
//! entries). Prints figures; asserts nothing about time.
//!
//! `cargo bench -p nexus-server --bench engine`. The model comes from `NEXUS_FLOW_MODEL_DIR`
//! or the cache `cargo xtask setup` fills; without it only the classifier is measured.
//!
//! - `rank_and_decide`: the classifier and the decision for an already embedded question;
//! - `embed_question`: embedding one question with all-MiniLM-L6-v2;
//! - `decide_end_to_end`: `AnswerEngine::decide` as the server calls it (embedding, ranking,
//!   deciding, the hop to the blocking pool).
//!
//! The example vectors are random unit vectors (the time does not depend on what they say),
//! so the bench needs no data set.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use nexus_server::engine::classifier::{Classifier, Label};
use nexus_server::engine::embed::{DIM, Embedder, default_model_dir, normalize};
use nexus_server::engine::semantic::{DEFAULT_THRESHOLDS, SemanticEngine, SiteModel};
use nexus_server::engine::{AnswerEngine, KbEntry, Query};

const EXAMPLES: usize = 10_000;
const ENTRIES: usize = 150;

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

fn site_model() -> SiteModel {
    let mut seed = 42;
    let mut vectors = Vec::with_capacity(EXAMPLES * DIM);
    let mut labels = Vec::with_capacity(EXAMPLES);
    for i in 0..EXAMPLES {
        vectors.extend(random_unit(&mut seed));
        labels.push(Label::Class((i % ENTRIES) as u32));
    }
    let entries = (0..ENTRIES)
        .map(|i| KbEntry {
            id: format!("intent_{i}"),
            title: format!("Intent {i}"),
            answer: format!("Answer {i}"),
            examples: Vec::new(),
            escalate: None,
        })
        .collect();
    SiteModel {
        entries,
        classifier: Classifier::new(DIM, vectors, labels),
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
        "built and calibrated a {EXAMPLES}-example classifier in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let mut seed = 7;
    let q = random_unit(&mut seed);
    c.bench_function("rank_and_decide (10,000 examples)", |b| {
        b.iter(|| {
            let r = model.classifier.rank(black_box(&q));
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
    let embedder = Arc::new(embedder);
    let question = "I ordered a jacket last week and it still has not arrived, where is it?";
    c.bench_function("embed_question", |b| {
        b.iter(|| black_box(embedder.embed_transient(black_box(question))))
    });

    let engine = SemanticEngine::with_embedder(embedder);
    let site = uuid::Uuid::new_v4();
    engine.install_model(site, site_model());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    c.bench_function("decide_end_to_end (10,000 examples)", |b| {
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
