//! Sentence embeddings with a BERT encoder (all-MiniLM-L6-v2, multilingual-e5-small and their
//! kind), as a plain forward pass over `f32` weights read from a `safetensors` file: no tensor
//! library, no `unsafe`. The word-embedding table may also be stored as `f16` (it is most of a
//! multilingual model's size: 250,037 × 384); its rows are widened to `f32` as they are read.
//!
//! [`Bert::embed`] takes token ids (from the model's tokenizer, WordPiece with `[CLS]` and
//! `[SEP]` or SentencePiece with `<s>` and `</s>`) and returns each sentence's mean-pooled, L2-normalised last hidden state, as
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

/// The word-embedding table, `[vocab, hidden]`, in the precision the file stores it in.
enum Words {
    F32(Vec<f32>),
    /// IEEE half-precision bits, widened row by row as tokens are looked up.
    F16(Vec<u16>),
}

impl Words {
    /// Writes row `id` (of `h` values) into `out`, as `f32`.
    fn row(&self, id: usize, h: usize, out: &mut [f32]) {
        match self {
            Self::F32(w) => out.copy_from_slice(&w[id * h..(id + 1) * h]),
            Self::F16(w) => {
                for (o, &b) in out.iter_mut().zip(&w[id * h..(id + 1) * h]) {
                    *o = f16_to_f32(b);
                }
            }
        }
    }
}

/// The `f32` value of the IEEE 754 half-precision number with bits `h` (exact: every `f16`,
/// subnormals, infinities and NaN included, is an `f32`).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: frac × 2^-24, made normal for f32.
            let shift = frac.leading_zeros() - 21;
            let frac = (frac << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (frac << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
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
    words: Words,
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

    /// The word-embedding table `name` of `shape`, kept as stored: `F32` or `F16`.
    fn words(&self, name: &str, shape: &[usize]) -> anyhow::Result<Words> {
        let t = self
            .0
            .tensor(name)
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        anyhow::ensure!(
            t.shape() == shape,
            "{name}: shape {:?}, not {shape:?}",
            t.shape()
        );
        match t.dtype() {
            safetensors::Dtype::F32 => Ok(Words::F32(self.get(name, shape)?)),
            safetensors::Dtype::F16 => Ok(Words::F16(
                t.data()
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .collect(),
            )),
            other => anyhow::bail!("{name}: {other:?}, not F32 or F16"),
        }
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
    /// Reads the weights from the bytes of a `model.safetensors` (F32 tensors, the word table
    /// F32 or F16, named as in Hugging Face's `BertModel`, without the `bert.` prefix)
    /// described by `c`, in the best [`Precision`] this CPU runs.
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
        let words = w.words("embeddings.word_embeddings.weight", &[c.vocab_size, h])?;
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
                self.words.row(id, h, row);
                let position = &self.positions[pos * h..(pos + 1) * h];
                for (x, p) in row.iter_mut().zip(position) {
                    *x += p;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_numbers_widen_exactly() {
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert!(f16_to_f32(0x8000).is_sign_negative() && f16_to_f32(0x8000) == 0.0);
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        // Subnormals: the smallest, and the largest.
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    /// The bits of `x` as `f16`, for values that are exactly `k / 256` with small `k` (what
    /// the test below stores).
    fn to_f16(x: f32) -> u16 {
        (0..=u16::MAX)
            .find(|&h| f16_to_f32(h) == x)
            .expect("exactly representable")
    }

    fn tiny_model(words_f16: bool) -> (Vec<u8>, BertConfig) {
        let (vocab, h, inter, positions) = (12, 8, 16, 10);
        let c = BertConfig {
            vocab_size: vocab,
            hidden_size: h,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            intermediate_size: inter,
            max_position_embeddings: positions,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: Some("gelu".into()),
        };
        let mut seed = 7u64;
        // Multiples of 1/256 in -1..1: exact in f16 and f32.
        let mut values = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| (noise(&mut seed) * 256.0).round() / 256.0)
                .collect()
        };
        let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut f32s = |name: &str, shape: Vec<usize>, v: Vec<f32>| {
            let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            tensors.push((name.to_owned(), safetensors::Dtype::F32, shape, bytes));
        };
        let words = values(vocab * h);
        f32s(
            "embeddings.position_embeddings.weight",
            vec![positions, h],
            values(positions * h),
        );
        f32s(
            "embeddings.token_type_embeddings.weight",
            vec![2, h],
            values(2 * h),
        );
        f32s("embeddings.LayerNorm.weight", vec![h], vec![1.0; h]);
        f32s("embeddings.LayerNorm.bias", vec![h], vec![0.0; h]);
        let l = "encoder.layer.0";
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", inter, h),
            ("output.dense", h, inter),
        ] {
            f32s(
                &format!("{l}.{name}.weight"),
                vec![out, inp],
                values(out * inp),
            );
            f32s(&format!("{l}.{name}.bias"), vec![out], values(out));
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            f32s(&format!("{l}.{name}.weight"), vec![h], vec![1.0; h]);
            f32s(&format!("{l}.{name}.bias"), vec![h], vec![0.0; h]);
        }
        let name = "embeddings.word_embeddings.weight".to_owned();
        if words_f16 {
            let bytes = words
                .iter()
                .flat_map(|&x| to_f16(x).to_le_bytes())
                .collect();
            tensors.push((name, safetensors::Dtype::F16, vec![vocab, h], bytes));
        } else {
            let bytes = words.iter().flat_map(|x| x.to_le_bytes()).collect();
            tensors.push((name, safetensors::Dtype::F32, vec![vocab, h], bytes));
        }
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .map(|(n, d, s, b)| {
                let view = safetensors::tensor::TensorView::new(*d, s.clone(), b).expect("view");
                (n.clone(), view)
            })
            .collect();
        (safetensors::serialize(views, None).expect("serialize"), c)
    }

    #[test]
    fn a_word_table_stored_in_half_precision_gives_the_same_embeddings() {
        let (f32_file, c) = tiny_model(false);
        let (f16_file, _) = tiny_model(true);
        assert!(f16_file.len() < f32_file.len());
        let a = Bert::load_with(&f32_file, &c, Precision::F32).expect("f32 words");
        let b = Bert::load_with(&f16_file, &c, Precision::F32).expect("f16 words");
        let sentences: [&[u32]; 3] = [&[0, 5, 7, 2], &[0, 11, 2], &[0, 1, 3, 4, 6, 8, 2]];
        let (ea, eb) = (a.embed(&sentences), b.embed(&sentences));
        assert_eq!(ea, eb);
        // Different sentences give different vectors (the table is really read).
        assert_ne!(ea[0], ea[1]);
    }
}
