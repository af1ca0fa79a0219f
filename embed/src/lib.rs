//! Sentence embeddings with a BERT encoder (all-MiniLM-L6-v2 and its kind), as a plain forward
//! pass over `f32` weights read from a `safetensors` file: no tensor library, no `unsafe`.
//!
//! [`Bert::embed`] takes token ids (from the model's WordPiece tokenizer, with `[CLS]` and
//! `[SEP]`) and returns each sentence's mean-pooled, L2-normalised last hidden state, as
//! sentence-transformers does. Several sentences are one forward pass: their tokens are packed
//! one after the other (no padding), the linear layers run over every token at once and
//! attention over each sentence's own tokens. A pass runs on the calling thread; callers spread
//! batches over the cores. The matrix kernels are in [`linalg`] (runtime SIMD dispatch).
//!
//! This is a crate of its own so that the test profile can optimise it (like the libraries it
//! replaced) without optimising the whole server.

pub mod linalg;
pub mod quant;
pub mod simd;

use linalg::Packed;
use quant::{Kernel, QPacked, QScratch};

/// The arithmetic of the linear layers (the bulk of a forward pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `f32` weights and products.
    F32,
    /// `i8` weights per output and `i16` inputs per row, multiplied in integers (see
    /// [`quant`]): about twice as fast, a quarter of the weights' memory.
    Int8,
}

impl Precision {
    /// [`Precision::Int8`] where the CPU runs one of its SIMD kernels (AVX2 or AVX-512 VNNI,
    /// [`QPacked::available`]; `NEXUS_SIMD` caps which), else [`Precision::F32`].
    pub fn best() -> Self {
        if QPacked::available() {
            Self::Int8
        } else {
            Self::F32
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Int8 => "int8",
        }
    }
}

/// A linear layer in one of the two precisions.
enum Linear {
    F32(Packed),
    Int8(QPacked),
}

impl Linear {
    fn new(weight: &[f32], n: usize, k: usize, bias: Option<&[f32]>, p: Precision) -> Self {
        match p {
            Precision::Int8 => match QPacked::new(weight, n, k, bias) {
                Some(q) => Self::Int8(q),
                None => Self::F32(Packed::new(weight, n, k, bias)),
            },
            Precision::F32 => Self::F32(Packed::new(weight, n, k, bias)),
        }
    }

    fn outputs(&self) -> usize {
        match self {
            Self::F32(p) => p.outputs(),
            Self::Int8(q) => q.outputs(),
        }
    }

    fn matmul(&self, x: &[f32], m: usize, out: &mut [f32], s: &mut QScratch, kernel: Kernel) {
        match self {
            Self::F32(p) => p.matmul(x, m, out),
            Self::Int8(q) => q.matmul_on(kernel, x, m, out, s),
        }
    }
}

/// A deterministic pseudo-random number in -1..1 (the kernels' tests' inputs).
#[cfg(test)]
fn noise(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
}

/// Normalises `v` to unit length in place (leaves a zero vector alone).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The fields of a BERT `config.json` the forward pass uses.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub hidden_act: Option<String>,
}

/// A layer norm's scale and shift.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// Query, key and value projections in one: `[3 × hidden, hidden]`.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    intermediate: Linear,
    out: Linear,
    out_norm: Norm,
}

/// BERT's encoder (no pooler) as a plain forward pass over `f32` weights: token ids in, mean-
/// pooled last hidden states out. Sentences of a batch are packed one after the other (no
/// padding): the linear layers run over every token of the batch at once, attention over each
/// sentence's own tokens.
pub struct Bert {
    /// `[vocab, hidden]`.
    words: Vec<f32>,
    /// `[max_positions, hidden]`, with the token-type-0 embedding already added (BERT's token
    /// types are all 0 for one sentence).
    positions: Vec<f32>,
    norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    head_dim: usize,
    vocab: usize,
    max_positions: usize,
    eps: f32,
    precision: Precision,
    /// The 8-bit kernel (when `precision` is `Int8`).
    kernel: Kernel,
}

impl std::fmt::Debug for Bert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bert")
            .field("hidden", &self.hidden)
            .field("layers", &self.layers.len())
            .field("heads", &self.heads)
            .field("precision", &self.precision)
            .field("kernel", &self.kernel)
            .finish_non_exhaustive()
    }
}

/// The tensors of a safetensors file, as `f32`.
struct Weights<'a>(safetensors::SafeTensors<'a>);

impl Weights<'_> {
    /// The tensor `name`, checked to have `shape`.
    fn get(&self, name: &str, shape: &[usize]) -> anyhow::Result<Vec<f32>> {
        let t = self
            .0
            .tensor(name)
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        anyhow::ensure!(
            t.dtype() == safetensors::Dtype::F32,
            "{name}: {:?}, not F32",
            t.dtype()
        );
        anyhow::ensure!(
            t.shape() == shape,
            "{name}: shape {:?}, not {shape:?}",
            t.shape()
        );
        Ok(t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn norm(&self, prefix: &str, h: usize) -> anyhow::Result<Norm> {
        Ok(Norm {
            gamma: self.get(&format!("{prefix}.weight"), &[h])?,
            beta: self.get(&format!("{prefix}.bias"), &[h])?,
        })
    }

    fn linear(&self, prefix: &str, out: usize, inp: usize, p: Precision) -> anyhow::Result<Linear> {
        let w = self.get(&format!("{prefix}.weight"), &[out, inp])?;
        let b = self.get(&format!("{prefix}.bias"), &[out])?;
        Ok(Linear::new(&w, out, inp, Some(&b), p))
    }
}

/// Buffers of one forward pass (reused from batch to batch by each thread).
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    proj: Vec<f32>,
    ffn: Vec<f32>,
    scores: Vec<f32>,
    quant: QScratch,
}

/// Scratch buffers larger than this (in floats, the biggest buffer) are freed after a pass.
const KEEP_SCRATCH_FLOATS: usize = 1 << 20;

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

impl Bert {
    /// Reads the weights from the bytes of a `model.safetensors` (F32 tensors named as in
    /// Hugging Face's `BertModel`, without the `bert.` prefix) described by `c`, in the best
    /// [`Precision`] this CPU runs.
    pub fn load(bytes: &[u8], c: &BertConfig) -> anyhow::Result<Self> {
        Self::load_with(bytes, c, Precision::best())
    }

    /// [`Bert::load`] in the given precision ([`Precision::Int8`] falls back to `f32` where
    /// the CPU lacks its kernel: [`Bert::precision`] tells).
    pub fn load_with(bytes: &[u8], c: &BertConfig, precision: Precision) -> anyhow::Result<Self> {
        let precision = if precision == Precision::Int8 && !QPacked::available() {
            Precision::F32
        } else {
            precision
        };
        Self::load_on(bytes, c, precision, Kernel::best())
    }

    /// [`Bert::load`] with 8-bit linear layers on the given kernel (any kernel this CPU runs,
    /// [`Kernel::runs_here`], the portable one included): for tests and measurements of each
    /// path.
    pub fn load_int8_on(bytes: &[u8], c: &BertConfig, kernel: Kernel) -> anyhow::Result<Self> {
        anyhow::ensure!(kernel.runs_here(), "this CPU has no {}", kernel.as_str());
        Self::load_on(bytes, c, Precision::Int8, kernel)
    }

    fn load_on(
        bytes: &[u8],
        c: &BertConfig,
        precision: Precision,
        kernel: Kernel,
    ) -> anyhow::Result<Self> {
        let p = precision;
        if let Some(act) = &c.hidden_act {
            anyhow::ensure!(act == "gelu", "unsupported activation {act:?}");
        }
        let w = Weights(
            safetensors::SafeTensors::deserialize(bytes)
                .map_err(|e| anyhow::anyhow!("model.safetensors: {e}"))?,
        );
        let h = c.hidden_size;
        anyhow::ensure!(
            c.num_attention_heads > 0 && h.is_multiple_of(c.num_attention_heads),
            "hidden size {h} is not a multiple of {} heads",
            c.num_attention_heads
        );
        anyhow::ensure!(c.type_vocab_size >= 1, "no token types");
        let words = w.get("embeddings.word_embeddings.weight", &[c.vocab_size, h])?;
        let mut positions = w.get(
            "embeddings.position_embeddings.weight",
            &[c.max_position_embeddings, h],
        )?;
        let types = w.get(
            "embeddings.token_type_embeddings.weight",
            &[c.type_vocab_size, h],
        )?;
        for row in positions.chunks_exact_mut(h) {
            for (p, t) in row.iter_mut().zip(&types[..h]) {
                *p += t;
            }
        }
        let norm = w.norm("embeddings.LayerNorm", h)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = format!("encoder.layer.{i}");
            let a = format!("{l}.attention");
            let mut qkv_w = Vec::with_capacity(3 * h * h);
            let mut qkv_b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                qkv_w.extend(w.get(&format!("{a}.self.{part}.weight"), &[h, h])?);
                qkv_b.extend(w.get(&format!("{a}.self.{part}.bias"), &[h])?);
            }
            layers.push(Layer {
                qkv: Linear::new(&qkv_w, 3 * h, h, Some(&qkv_b), p),
                attn_out: w.linear(&format!("{a}.output.dense"), h, h, p)?,
                attn_norm: w.norm(&format!("{a}.output.LayerNorm"), h)?,
                intermediate: w.linear(
                    &format!("{l}.intermediate.dense"),
                    c.intermediate_size,
                    h,
                    p,
                )?,
                out: w.linear(&format!("{l}.output.dense"), h, c.intermediate_size, p)?,
                out_norm: w.norm(&format!("{l}.output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            words,
            positions,
            norm,
            layers,
            hidden: h,
            heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
            vocab: c.vocab_size,
            max_positions: c.max_position_embeddings,
            eps: c.layer_norm_eps as f32,
            precision,
            kernel,
        })
    }

    /// The arithmetic the linear layers run in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The 8-bit kernel the linear layers run on; `None` in `f32`.
    pub fn kernel(&self) -> Option<Kernel> {
        (self.precision == Precision::Int8).then_some(self.kernel)
    }

    /// The embedding's length (the hidden size).
    pub fn dim(&self) -> usize {
        self.hidden
    }

    /// The mean-pooled, L2-normalised embeddings of `sentences` (token ids each, at most
    /// `max_position_embeddings` of them used), in order: one forward pass on this thread.
    pub fn embed(&self, sentences: &[&[u32]]) -> Vec<Vec<f32>> {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let out = self.embed_with(sentences, &mut s);
            // Keep the buffers of ordinary batches; give back what a huge one took.
            if s.ffn.capacity() > KEEP_SCRATCH_FLOATS {
                *s = Scratch::default();
            }
            out
        })
    }

    fn embed_with(&self, sentences: &[&[u32]], s: &mut Scratch) -> Vec<Vec<f32>> {
        let h = self.hidden;
        // Sentence i's tokens are rows spans[i].0 .. spans[i].1 of the packed batch.
        let mut spans = Vec::with_capacity(sentences.len());
        let mut rows = 0;
        for ids in sentences {
            let t = ids.len().min(self.max_positions);
            spans.push((rows, rows + t));
            rows += t;
        }
        let inter = self.layers.first().map_or(0, |l| l.intermediate.outputs());
        resize(&mut s.x, rows * h);
        resize(&mut s.qkv, rows * 3 * h);
        resize(&mut s.ctx, rows * h);
        resize(&mut s.proj, rows * h);
        resize(&mut s.ffn, rows * inter);
        // Embeddings: word + position (+ token type 0), then layer norm.
        for (ids, &(start, end)) in sentences.iter().zip(&spans) {
            for (pos, (&id, row)) in ids
                .iter()
                .zip(s.x[start * h..end * h].chunks_exact_mut(h))
                .enumerate()
            {
                let id = (id as usize).min(self.vocab - 1);
                let word = &self.words[id * h..(id + 1) * h];
                let position = &self.positions[pos * h..(pos + 1) * h];
                for ((x, w), p) in row.iter_mut().zip(word).zip(position) {
                    *x = w + p;
                }
            }
        }
        linalg::add_layer_norm(&mut s.x, &[], &self.norm.gamma, &self.norm.beta, self.eps);
        let scale = 1.0 / (self.head_dim as f32).sqrt();
        for l in &self.layers {
            l.qkv
                .matmul(&s.x, rows, &mut s.qkv, &mut s.quant, self.kernel);
            for &(start, end) in &spans {
                linalg::attention(
                    &s.qkv[start * 3 * h..end * 3 * h],
                    end - start,
                    self.heads,
                    scale,
                    &mut s.scores,
                    &mut s.ctx[start * h..end * h],
                );
            }
            l.attn_out
                .matmul(&s.ctx, rows, &mut s.proj, &mut s.quant, self.kernel);
            let n = &l.attn_norm;
            linalg::add_layer_norm(&mut s.x, &s.proj, &n.gamma, &n.beta, self.eps);
            l.intermediate
                .matmul(&s.x, rows, &mut s.ffn, &mut s.quant, self.kernel);
            linalg::gelu(&mut s.ffn);
            l.out
                .matmul(&s.ffn, rows, &mut s.proj, &mut s.quant, self.kernel);
            let n = &l.out_norm;
            linalg::add_layer_norm(&mut s.x, &s.proj, &n.gamma, &n.beta, self.eps);
        }
        spans
            .iter()
            .map(|&(start, end)| {
                let mut v = vec![0f32; h];
                for row in s.x[start * h..end * h].chunks_exact(h) {
                    for (a, b) in v.iter_mut().zip(row) {
                        *a += b;
                    }
                }
                let count = (end - start).max(1) as f32;
                v.iter_mut().for_each(|a| *a /= count);
                normalize(&mut v);
                v
            })
            .collect()
    }
}

/// Sets `v` to `len` floats (contents unspecified: every caller overwrites them).
fn resize(v: &mut Vec<f32>, len: usize) {
    v.resize(len, 0.0);
}
