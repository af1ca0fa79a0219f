//! Times the forward pass alone (no tokenizer): `cargo run --release -p nexus-embed --example
//! speed -- MODEL_DIR [TOKENS]`. Prints, per sentence of TOKENS tokens (default 12, a typical
//! visitor question) and for batches of 1, 8 and 32 such sentences, the mean wall time and the
//! time on a CPU (Linux's `/proc/thread-self/schedstat`, which does not count waiting for a
//! core on a busy machine). `NEXUS_FLOW_EMBED_PRECISION=f32` (or `int8`) picks the linear
//! layers' arithmetic; the default is the best the CPU runs.

use std::path::PathBuf;
use std::time::Instant;

use nexus_embed::{Bert, BertConfig, Precision};

fn sched_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: speed MODEL_DIR [TOKENS]"))?,
    );
    let tokens: usize = args.next().map_or(Ok(12), |t| t.parse())?;
    let config: BertConfig = serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
    let precision = match std::env::var("NEXUS_FLOW_EMBED_PRECISION").ok().as_deref() {
        Some("f32") => Precision::F32,
        Some("int8") => Precision::Int8,
        _ => Precision::best(),
    };
    let bert = Bert::load_with(
        &std::fs::read(dir.join("model.safetensors"))?,
        &config,
        precision,
    )?;
    println!(
        "linear layers in {}{} (SIMD level {}; NEXUS_SIMD caps it)",
        bert.precision().as_str(),
        bert.kernel()
            .map_or(String::new(), |k| format!(" on the {} kernel", k.as_str())),
        nexus_embed::simd::Level::current().as_str()
    );
    // Ids of ordinary word pieces; [CLS] … [SEP].
    let sentence = |seed: usize| -> Vec<u32> {
        let mut ids = vec![101u32];
        ids.extend((1..tokens - 1).map(|i| 2000 + ((seed * 7919 + i * 104_729) % 20_000) as u32));
        ids.push(102);
        ids
    };
    for batch in [1usize, 8, 32] {
        let sentences: Vec<Vec<u32>> = (0..batch).map(sentence).collect();
        let refs: Vec<&[u32]> = sentences.iter().map(Vec::as_slice).collect();
        bert.embed(&refs);
        let rounds = (240 / batch).max(8);
        let cpu0 = sched_ns();
        let t0 = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(bert.embed(std::hint::black_box(&refs)));
        }
        let n = (rounds * batch) as f64;
        let wall = t0.elapsed().as_secs_f64() * 1e3 / n;
        let cpu = sched_ns().zip(cpu0).map(|(b, a)| (b - a) as f64 / 1e6 / n);
        println!(
            "batch {batch:>2} × {tokens} tokens: {wall:.3} ms wall, {} ms on a CPU per sentence → {:.0} sentences/s per core",
            cpu.map_or("?".into(), |c| format!("{c:.3}")),
            1e3 / cpu.unwrap_or(wall)
        );
    }
    Ok(())
}
