//! Sentence embeddings of all-MiniLM-L6-v2, run on the CPU with candle.
//!
//! The model is a 6-layer BERT (hidden size 384, 12 heads). A sentence's embedding is the mean
//! of its tokens' last hidden states (padding masked out), L2-normalised, as in
//! sentence-transformers. The model directory holds `model.safetensors`, `tokenizer.json` and
//! `config.json` (`cargo xtask setup` puts them in the user's cache; see [`default_model_dir`]).
//!
//! Embedding is the slow part (a few milliseconds a sentence), so [`Embedder`] keeps every
//! sentence it has embedded in memory and on disk ([`DiskCache`], next to the model, keyed by
//! the model and the text): a knowledge base is embedded once per machine, and learning a new
//! example embeds only that example.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use sha2::{Digest, Sha256};

/// The embedding's length.
pub const DIM: usize = 384;
/// Sentences are cut to this many tokens (a question is short; the model knows 512).
const MAX_TOKENS: usize = 128;
/// Sentences embedded in one forward pass.
const BATCH: usize = 32;
/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// Where the model is unless a directory is given: `NEXUS_FLOW_MODEL_DIR`, else where
/// `cargo xtask setup` puts it, `$XDG_CACHE_HOME/nexus-flow/models/all-MiniLM-L6-v2` (or
/// `~/.cache/...`). `None` when none of these variables is set.
pub fn default_model_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("NEXUS_FLOW_MODEL_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(cache.join("nexus-flow/models/all-MiniLM-L6-v2"))
}

#[derive(Debug, serde::Deserialize)]
struct BertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    type_vocab_size: usize,
    layer_norm_eps: f64,
    #[serde(default)]
    hidden_act: Option<String>,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    out: Linear,
    out_norm: LayerNorm,
}

/// BERT's encoder (no pooler): token ids in, last hidden states out.
struct Bert {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
}

impl Bert {
    fn load(vb: VarBuilder<'_>, c: &BertConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let e = vb.pp("embeddings");
        let words = candle_nn::embedding(c.vocab_size, h, e.pp("word_embeddings"))?;
        let positions =
            candle_nn::embedding(c.max_position_embeddings, h, e.pp("position_embeddings"))?;
        let token_types =
            candle_nn::embedding(c.type_vocab_size, h, e.pp("token_type_embeddings"))?;
        let norm = candle_nn::layer_norm(h, c.layer_norm_eps, e.pp("LayerNorm"))?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            layers.push(Layer {
                query: candle_nn::linear(h, h, a.pp("self.query"))?,
                key: candle_nn::linear(h, h, a.pp("self.key"))?,
                value: candle_nn::linear(h, h, a.pp("self.value"))?,
                attn_out: candle_nn::linear(h, h, a.pp("output.dense"))?,
                attn_norm: candle_nn::layer_norm(h, c.layer_norm_eps, a.pp("output.LayerNorm"))?,
                intermediate: candle_nn::linear(
                    h,
                    c.intermediate_size,
                    l.pp("intermediate.dense"),
                )?,
                out: candle_nn::linear(c.intermediate_size, h, l.pp("output.dense"))?,
                out_norm: candle_nn::layer_norm(h, c.layer_norm_eps, l.pp("output.LayerNorm"))?,
            });
        }
        Ok(Self {
            words,
            positions,
            token_types,
            norm,
            layers,
            heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
        })
    }

    /// `ids`: `[batch, tokens]` u32; `mask`: `[batch, tokens]` f32 (1 = token, 0 = padding).
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let dev = ids.device();
        let pos = Tensor::arange(0u32, t as u32, dev)?;
        let types = ids.zeros_like()?;
        let x = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.forward(&pos)?)?
            .add(&self.token_types.forward(&types)?)?;
        let mut x = self.norm.forward(&x)?;
        // 0 where attended, a large negative number on padding: [b, 1, 1, t].
        let bias = ((mask.ones_like()? - mask)? * -1e4)?.reshape((b, 1, 1, t))?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        for l in &self.layers {
            let split = |y: Tensor| -> candle_core::Result<Tensor> {
                y.reshape((b, t, self.heads, self.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = split(l.query.forward(&x)?)?;
            let k = split(l.key.forward(&x)?)?;
            let v = split(l.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx =
                probs
                    .matmul(&v)?
                    .transpose(1, 2)?
                    .reshape((b, t, self.heads * self.head_dim))?;
            x = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + &x)?)?;
            let hidden = l.intermediate.forward(&x)?.gelu_erf()?;
            x = l.out_norm.forward(&(l.out.forward(&hidden)? + &x)?)?;
        }
        Ok(x)
    }
}

/// all-MiniLM-L6-v2: text in, unit-length 384-float vector out. Thread-safe; the cache is
/// shared by every caller.
pub struct Embedder {
    bert: Bert,
    tokenizer: tokenizers::Tokenizer,
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
    /// Loads the model from `dir` (see [`MODEL_FILES`]). The on-disk cache goes to
    /// `dir/embeddings`; when that cannot be written, only the memory cache is used.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        for f in MODEL_FILES {
            let p = dir.join(f);
            anyhow::ensure!(p.is_file(), "{} is missing", p.display());
        }
        let config_bytes = std::fs::read(dir.join("config.json"))?;
        let config: BertConfig = serde_json::from_slice(&config_bytes)?;
        if let Some(act) = &config.hidden_act {
            anyhow::ensure!(act == "gelu", "unsupported activation {act:?}");
        }
        anyhow::ensure!(
            config.hidden_size == DIM,
            "the model's hidden size is {}, not {DIM}",
            config.hidden_size
        );
        let tokenizer_bytes = std::fs::read(dir.join("tokenizer.json"))?;
        let mut tokenizer = tokenizers::Tokenizer::from_bytes(&tokenizer_bytes)
            .map_err(|e| anyhow::anyhow!("tokenizer.json: {e}"))?;
        // The shipped tokenizer pads every sentence to 128 tokens; batches pad themselves.
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
        let model_key = hex::encode(&hasher.finalize()[..8]);
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)?;
        let bert = Bert::load(vb, &config)?;
        let disk = DiskCache::open(&dir.join("embeddings").join(&model_key));
        Ok(Self {
            bert,
            tokenizer,
            model_key,
            memory: Mutex::new(HashMap::new()),
            disk,
        })
    }

    /// The embeddings of `texts`, in order. Cached ones come from memory or disk; the rest are
    /// computed in batches of similar length and cached.
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
        let key = text_key(text);
        if let Some(v) = self
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(v.clone());
        }
        self.compute(&[text])?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no embedding"))
    }

    /// Runs the model on `texts` (no cache): sorted by length so batches pad little.
    fn compute(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow::anyhow!("tokenize: {e}"))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let t = chunk
                .iter()
                .map(|&i| encodings[i].get_ids().len())
                .max()
                .unwrap_or(1)
                .max(1);
            let mut ids = vec![0u32; chunk.len() * t];
            let mut mask = vec![0f32; chunk.len() * t];
            for (row, &i) in chunk.iter().enumerate() {
                for (j, &id) in encodings[i].get_ids().iter().enumerate() {
                    ids[row * t + j] = id;
                    mask[row * t + j] = 1.0;
                }
            }
            let ids = Tensor::from_vec(ids, (chunk.len(), t), &Device::Cpu)?;
            let mask = Tensor::from_vec(mask, (chunk.len(), t), &Device::Cpu)?;
            let hidden = self.bert.forward(&ids, &mask)?;
            let summed = hidden.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
            let counts = mask.sum_keepdim(1)?.clamp(1.0, f64::MAX)?;
            let pooled = summed.broadcast_div(&counts)?.to_vec2::<f32>()?;
            for (row, mut v) in pooled.into_iter().enumerate() {
                normalize(&mut v);
                out[chunk[row]] = v;
            }
        }
        Ok(out)
    }
}

/// Scales `v` to unit length (leaves a zero vector alone).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

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
