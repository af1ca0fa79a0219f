//! The few dense kernels the embedded engine needs, in safe Rust with runtime SIMD dispatch
//! (`pulp`: AVX-512 or AVX2 + FMA where the CPU has them, plain scalar code elsewhere; capped
//! by `NEXUS_SIMD`, see [`crate::simd`]).
//!
//! - [`Packed`] + [`Packed::matmul`]: `y = x · Wᵀ + b` for a PyTorch-layout weight `W`
//!   (`[out, in]`, row-major), packed once into panels of `2 × lanes` outputs so that the
//!   kernel streams each panel once per block of up to [`MR`] input rows (twice as many with
//!   AVX-512), keeping `rows × 2` vector accumulators in registers;
//! - [`dots`]: one vector against every row of a row-major matrix (the classifier's ranking);
//! - [`gelu`], [`add_layer_norm`], [`softmax`]: element-wise work, written so the compiler
//!   vectorises it inside the dispatched code.
//!
//! Every function here is single-threaded: callers decide how to use the cores.

use pulp::{Simd, WithSimd};

use crate::simd::arch;

/// Input rows per register block of the matrix kernel: `MR × 2` vector accumulators, which
/// fit the 16 registers of AVX2; with AVX-512's 32 registers, blocks are twice as tall.
pub const MR: usize = 6;
const MR_WIDE: usize = 2 * MR;

/// The f32 lanes of the best SIMD the CPU offers (what [`Packed`] panels are sized for).
fn lanes() -> usize {
    struct Lanes;
    impl WithSimd for Lanes {
        type Output = usize;
        #[inline(always)]
        fn with_simd<S: Simd>(self, _simd: S) -> usize {
            S::F32_LANES
        }
    }
    arch().dispatch(Lanes)
}

/// A linear layer's weight, packed for [`Packed::matmul`], and its bias.
#[derive(Clone)]
pub struct Packed {
    /// Outputs (rows of the original weight).
    n: usize,
    /// Inputs (columns of the original weight).
    k: usize,
    /// Outputs per panel: two SIMD vectors.
    nr: usize,
    /// `ceil(n / nr)` panels, each `k × nr` floats, input-major (outputs past `n` are zero).
    data: Vec<f32>,
    /// `ceil(n / nr) × nr` floats (zero past `n`).
    bias: Vec<f32>,
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("n", &self.n)
            .field("k", &self.k)
            .finish_non_exhaustive()
    }
}

impl Packed {
    /// Packs `weight` (`n` rows of `k` floats) and `bias` (`n` floats, or none).
    pub fn new(weight: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> Self {
        assert_eq!(weight.len(), n * k, "weight is n × k");
        let nr = 2 * lanes();
        let panels = n.div_ceil(nr);
        let mut data = vec![0f32; panels * k * nr];
        for (p, panel) in data.chunks_exact_mut(k * nr).enumerate() {
            for j in 0..nr {
                let o = p * nr + j;
                if o >= n {
                    break;
                }
                let row = &weight[o * k..(o + 1) * k];
                for (kk, &w) in row.iter().enumerate() {
                    panel[kk * nr + j] = w;
                }
            }
        }
        let mut padded_bias = vec![0f32; panels * nr];
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "one bias per output");
            padded_bias[..n].copy_from_slice(b);
        }
        Self {
            n,
            k,
            nr,
            data,
            bias: padded_bias,
        }
    }

    pub fn outputs(&self) -> usize {
        self.n
    }

    pub fn inputs(&self) -> usize {
        self.k
    }

    /// `out[m × n] = x[m × k] · Wᵀ + b`.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(x.len(), m * self.k, "x is m × k");
        assert_eq!(out.len(), m * self.n, "out is m × n");
        if m == 0 {
            return;
        }
        arch().dispatch(MatMul { w: self, x, m, out });
    }
}

struct MatMul<'a> {
    w: &'a Packed,
    x: &'a [f32],
    m: usize,
    out: &'a mut [f32],
}

impl WithSimd for MatMul<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self { w, x, m, out } = self;
        let (k, n, nr) = (w.k, w.n, w.nr);
        if nr != 2 * S::F32_LANES {
            // Packed for another instruction set (cannot happen within one process).
            return scalar_matmul(w, x, m, out);
        }
        let mr = if S::REGISTER_COUNT >= 32 { MR_WIDE } else { MR };
        let mut tile = vec![0f32; mr * nr];
        for (p, panel) in w.data.chunks_exact(k * nr).enumerate() {
            let (panel, _) = S::as_simd_f32s(panel);
            let (bias, _) = S::as_simd_f32s(&w.bias[p * nr..(p + 1) * nr]);
            let (b0, b1) = (bias[0], bias[1]);
            let col0 = p * nr;
            let cols = nr.min(n - col0);
            let mut r0 = 0;
            while r0 < m {
                let rows = (m - r0).min(mr);
                let xs = &x[r0 * k..(r0 + rows) * k];
                match rows {
                    12 => block::<S, 12>(simd, xs, k, panel, b0, b1, &mut tile),
                    11 => block::<S, 11>(simd, xs, k, panel, b0, b1, &mut tile),
                    10 => block::<S, 10>(simd, xs, k, panel, b0, b1, &mut tile),
                    9 => block::<S, 9>(simd, xs, k, panel, b0, b1, &mut tile),
                    8 => block::<S, 8>(simd, xs, k, panel, b0, b1, &mut tile),
                    7 => block::<S, 7>(simd, xs, k, panel, b0, b1, &mut tile),
                    6 => block::<S, 6>(simd, xs, k, panel, b0, b1, &mut tile),
                    5 => block::<S, 5>(simd, xs, k, panel, b0, b1, &mut tile),
                    4 => block::<S, 4>(simd, xs, k, panel, b0, b1, &mut tile),
                    3 => block::<S, 3>(simd, xs, k, panel, b0, b1, &mut tile),
                    2 => block::<S, 2>(simd, xs, k, panel, b0, b1, &mut tile),
                    _ => block::<S, 1>(simd, xs, k, panel, b0, b1, &mut tile),
                }
                for r in 0..rows {
                    let dst = &mut out[(r0 + r) * n + col0..(r0 + r) * n + col0 + cols];
                    dst.copy_from_slice(&tile[r * nr..r * nr + cols]);
                }
                r0 += rows;
            }
        }
    }
}

/// One register block: `M` rows of `x` (each `k` floats) times one panel, plus the bias, into
/// `tile` (`M` rows of `2 × lanes` floats).
#[inline(always)]
fn block<S: Simd, const M: usize>(
    simd: S,
    xs: &[f32],
    k: usize,
    panel: &[S::f32s],
    b0: S::f32s,
    b1: S::f32s,
    tile: &mut [f32],
) {
    // Slices of exactly `k` (and `2k`) let the compiler drop the bounds checks below.
    let rows: [&[f32]; M] = std::array::from_fn(|r| &xs[r * k..][..k]);
    let panel = &panel[..2 * k];
    let mut acc = [[b0, b1]; M];
    for kk in 0..k {
        let (w0, w1) = (panel[2 * kk], panel[2 * kk + 1]);
        for r in 0..M {
            let a = simd.splat_f32s(rows[r][kk]);
            acc[r][0] = simd.mul_add_e_f32s(a, w0, acc[r][0]);
            acc[r][1] = simd.mul_add_e_f32s(a, w1, acc[r][1]);
        }
    }
    let (tile, _) = S::as_mut_simd_f32s(tile);
    for r in 0..M {
        tile[2 * r] = acc[r][0];
        tile[2 * r + 1] = acc[r][1];
    }
}

/// The same product without SIMD (only reached if a panel was packed for other lanes).
fn scalar_matmul(w: &Packed, x: &[f32], m: usize, out: &mut [f32]) {
    let (k, n, nr) = (w.k, w.n, w.nr);
    for i in 0..m {
        for o in 0..n {
            let (p, j) = (o / nr, o % nr);
            let panel = &w.data[p * k * nr..(p + 1) * k * nr];
            let mut s = w.bias[o];
            for kk in 0..k {
                s += x[i * k + kk] * panel[kk * nr + j];
            }
            out[i * n + o] = s;
        }
    }
}

/// `out[i] = rows[i] · q` for the `out.len()` rows of `rows` (row-major, `q.len()` columns).
pub fn dots(rows: &[f32], q: &[f32], out: &mut [f32]) {
    assert_eq!(rows.len(), q.len() * out.len(), "one row per output");
    if q.is_empty() {
        out.fill(0.0);
        return;
    }
    arch().dispatch(Dots { rows, q, out });
}

struct Dots<'a> {
    rows: &'a [f32],
    q: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for Dots<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self { rows, q, out } = self;
        let dim = q.len();
        let (qv, q_tail) = S::as_simd_f32s(q);
        // Four rows at a time share the loads of `q`.
        let mut quads = out.chunks_exact_mut(4);
        let mut row_blocks = rows.chunks_exact(4 * dim);
        for (o, block) in (&mut quads).zip(&mut row_blocks) {
            let r: [(&[S::f32s], &[f32]); 4] =
                std::array::from_fn(|i| S::as_simd_f32s(&block[i * dim..(i + 1) * dim]));
            let mut acc = [simd.splat_f32s(0.0); 4];
            for (j, &qj) in qv.iter().enumerate() {
                for i in 0..4 {
                    acc[i] = simd.mul_add_e_f32s(r[i].0[j], qj, acc[i]);
                }
            }
            for i in 0..4 {
                let tail: f32 = r[i].1.iter().zip(q_tail).map(|(a, b)| a * b).sum();
                o[i] = simd.reduce_sum_f32s(acc[i]) + tail;
            }
        }
        for (o, row) in quads
            .into_remainder()
            .iter_mut()
            .zip(row_blocks.remainder().chunks_exact(dim))
        {
            let (rv, r_tail) = S::as_simd_f32s(row);
            let mut acc = simd.splat_f32s(0.0);
            for (&a, &b) in rv.iter().zip(qv) {
                acc = simd.mul_add_e_f32s(a, b, acc);
            }
            let tail: f32 = r_tail.iter().zip(q_tail).map(|(a, b)| a * b).sum();
            *o = simd.reduce_sum_f32s(acc) + tail;
        }
    }
}

/// The dot product of two vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut out = [0f32];
    dots(
        &a[..a.len().min(b.len())],
        &b[..a.len().min(b.len())],
        &mut out,
    );
    out[0]
}

/// Runs `f` inside the dispatched SIMD context, so plain loops in it (inlined) are vectorised
/// for the CPU's instruction set. Pass an `#[inline(always)] move` closure that moves a `&mut`
/// capture (so it is `FnOnce` itself): an `Fn` or `FnMut` closure is reached through a
/// `call_once` shim that LLVM may leave out of line, compiled without the instruction sets.
#[inline(always)]
fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    struct Op<F>(F);
    impl<R, F: FnOnce() -> R> WithSimd for Op<F> {
        type Output = R;
        #[inline(always)]
        fn with_simd<S: Simd>(self, _simd: S) -> R {
            (self.0)()
        }
    }
    arch().dispatch(Op(f))
}

/// `e^x` for `x <= 0` (to about 2 ulp; `-inf` and very negative inputs give 0), branch-free so
/// that loops over it vectorise.
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let tiny = x < -87.0;
    let x = x.max(-87.0);
    let n = (x * LOG2E).round_ties_even();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // e^r on [-ln2/2, ln2/2]: degree-6 Taylor polynomial (error < 2e-8).
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if tiny { 0.0 } else { p * scale }
}

/// The error function, to about 1.5e-7 absolute (Abramowitz & Stegun 7.1.26), branch-free.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
    let y = 1.0 - poly * exp_neg(-a * a);
    y.copysign(x)
}

/// GELU (the exact, erf-based one BERT uses), in place.
pub fn gelu(xs: &mut [f32]) {
    vectorized(
        #[inline(always)]
        move || {
            let xs = xs;
            for x in xs.iter_mut() {
                let v = *x;
                *x = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
            }
        },
    );
}

/// A sum of `xs` with eight independent partial sums (so that it vectorises).
#[inline(always)]
fn sum8(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Row by row (`gamma.len()` columns): `x = LayerNorm(x + y)` with the given scale, shift and
/// epsilon (`y` may be empty: then plain `LayerNorm(x)`).
pub fn add_layer_norm(x: &mut [f32], y: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let h = gamma.len();
    assert!(y.is_empty() || y.len() == x.len());
    vectorized(
        #[inline(always)]
        move || {
            let x = x;
            for (i, row) in x.chunks_exact_mut(h).enumerate() {
                if !y.is_empty() {
                    for (a, b) in row.iter_mut().zip(&y[i * h..(i + 1) * h]) {
                        *a += b;
                    }
                }
                let mean = sum8(row) / h as f32;
                let mut sq = [0f32; 8];
                let mut chunks = row.chunks_exact(8);
                for c in &mut chunks {
                    for k in 0..8 {
                        let d = c[k] - mean;
                        sq[k] += d * d;
                    }
                }
                let tail: f32 = chunks
                    .remainder()
                    .iter()
                    .map(|v| (v - mean) * (v - mean))
                    .sum();
                let var = (sq.iter().sum::<f32>() + tail) / h as f32;
                let inv = 1.0 / (var + eps).sqrt();
                for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                    *v = (*v - mean) * inv * g + b;
                }
            }
        },
    );
}

/// Softmax of `xs`, in place.
pub fn softmax(xs: &mut [f32]) {
    vectorized(
        #[inline(always)]
        move || {
            let xs = xs;
            softmax_inline(xs)
        },
    );
}

#[inline(always)]
fn softmax_inline(xs: &mut [f32]) {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in xs.iter_mut() {
        *v = exp_neg(*v - max);
    }
    let inv = 1.0 / sum8(xs);
    for v in xs.iter_mut() {
        *v *= inv;
    }
}

/// Multi-head self-attention of one sentence of `t` tokens. `qkv` holds each token's query,
/// key and value (`3 × hidden` floats a row, heads side by side in each); each head's output
/// goes to its columns of `ctx` (`t` rows of `hidden`). `scratch` is reused space.
///
/// Heads of 32 or 64 dimensions (MiniLM's is 32) take a path with the head's vectors as
/// fixed-size arrays: each score and each output row is summed in registers. Other sizes
/// take a general path.
pub fn attention(
    qkv: &[f32],
    t: usize,
    heads: usize,
    scale: f32,
    scratch: &mut Vec<f32>,
    ctx: &mut [f32],
) {
    let h = ctx.len() / t.max(1);
    assert_eq!(qkv.len(), t * 3 * h, "qkv is t × 3·hidden");
    assert_eq!(ctx.len(), t * h, "ctx is t × hidden");
    let d = h / heads.max(1);
    match d {
        32 => attention_fixed::<32>(qkv, t, heads, scale, scratch, ctx),
        64 => attention_fixed::<64>(qkv, t, heads, scale, scratch, ctx),
        _ => attention_any(qkv, t, heads, d, scale, scratch, ctx),
    }
}

/// The sum of 16 floats as a tree (so that it vectorises).
#[inline(always)]
fn sum16(a: [f32; 16]) -> f32 {
    let b: [f32; 8] = std::array::from_fn(|i| a[i] + a[i + 8]);
    let c: [f32; 4] = std::array::from_fn(|i| b[i] + b[i + 4]);
    (c[0] + c[2]) + (c[1] + c[3])
}

/// [`attention`] for heads of `D` dimensions (`D` a multiple of 16).
fn attention_fixed<const D: usize>(
    qkv: &[f32],
    t: usize,
    heads: usize,
    scale: f32,
    scratch: &mut Vec<f32>,
    ctx: &mut [f32],
) {
    let h = heads * D;
    scratch.resize(t, 0.0);
    let scores = &mut scratch[..];
    vectorized(
        #[inline(always)]
        move || {
            let (scores, ctx) = (scores, ctx);
            let vector = |row: usize, part: usize, head: usize| -> &[f32; D] {
                qkv[row * 3 * h + part * h + head * D..][..D]
                    .try_into()
                    .expect("D floats")
            };
            for head in 0..heads {
                for i in 0..t {
                    let q = vector(i, 0, head);
                    for (j, score) in scores.iter_mut().enumerate() {
                        let k = vector(j, 1, head);
                        let mut acc = [0f32; 16];
                        for c in (0..D).step_by(16) {
                            for l in 0..16 {
                                acc[l] += q[c + l] * k[c + l];
                            }
                        }
                        *score = sum16(acc) * scale;
                    }
                    softmax_inline(scores);
                    let mut out = [0f32; D];
                    for (j, &p) in scores.iter().enumerate() {
                        let v = vector(j, 2, head);
                        for c in 0..D {
                            out[c] += p * v[c];
                        }
                    }
                    ctx[i * h + head * D..][..D].copy_from_slice(&out);
                }
            }
        },
    );
}

/// [`attention`] for heads of any size: per head, the keys are gathered transposed
/// (`d × t`) and the values contiguous (`t × d`), so that both products are runs of
/// `a · x + y` over contiguous floats.
fn attention_any(
    qkv: &[f32],
    t: usize,
    heads: usize,
    d: usize,
    scale: f32,
    scratch: &mut Vec<f32>,
    ctx: &mut [f32],
) {
    let h = heads * d;
    scratch.resize(t + 2 * t * d, 0.0);
    let (scores, rest) = scratch.split_at_mut(t);
    let (keys_t, values) = rest.split_at_mut(t * d);
    vectorized(
        #[inline(always)]
        move || {
            let (scores, keys_t, values, ctx) = (scores, keys_t, values, ctx);
            for head in 0..heads {
                let off = head * d;
                for j in 0..t {
                    let k = &qkv[j * 3 * h + h + off..][..d];
                    for (c, &kc) in k.iter().enumerate() {
                        keys_t[c * t + j] = kc;
                    }
                    values[j * d..(j + 1) * d]
                        .copy_from_slice(&qkv[j * 3 * h + 2 * h + off..][..d]);
                }
                for i in 0..t {
                    let q = &qkv[i * 3 * h + off..][..d];
                    scores.fill(0.0);
                    for (&qc, kt) in q.iter().zip(keys_t.chunks_exact(t)) {
                        let qc = qc * scale;
                        for (s, &k) in scores.iter_mut().zip(kt) {
                            *s += qc * k;
                        }
                    }
                    softmax_inline(scores);
                    let out = &mut ctx[i * h + off..][..d];
                    out.fill(0.0);
                    for (&p, v) in scores.iter().zip(values.chunks_exact(d)) {
                        for (o, &x) in out.iter_mut().zip(v) {
                            *o += p * x;
                        }
                    }
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise;

    #[test]
    fn matmul_matches_the_naive_product_for_every_shape() {
        let mut seed = 1;
        for (m, n, k) in [
            (1, 1, 1),
            (7, 33, 5),
            (13, 48, 384),
            (6, 16, 17),
            (2, 100, 9),
        ] {
            let x: Vec<f32> = (0..m * k).map(|_| noise(&mut seed)).collect();
            let w: Vec<f32> = (0..n * k).map(|_| noise(&mut seed)).collect();
            let b: Vec<f32> = (0..n).map(|_| noise(&mut seed)).collect();
            let mut out = vec![0f32; m * n];
            Packed::new(&w, n, k, Some(&b)).matmul(&x, m, &mut out);
            for i in 0..m {
                for o in 0..n {
                    let want: f32 =
                        b[o] + (0..k).map(|kk| x[i * k + kk] * w[o * k + kk]).sum::<f32>();
                    let got = out[i * n + o];
                    assert!(
                        (want - got).abs() < 1e-4,
                        "{m}×{n}×{k} [{i},{o}]: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn attention_matches_the_definition_for_every_head_size() {
        let mut seed = 4;
        // 32 and 64 take the fixed-size path, 5 and 24 the general one.
        for (t, heads, d) in [(1, 1, 32), (7, 12, 32), (20, 3, 64), (9, 2, 5), (3, 4, 24)] {
            let h = heads * d;
            let qkv: Vec<f32> = (0..t * 3 * h).map(|_| noise(&mut seed)).collect();
            let scale = 1.0 / (d as f32).sqrt();
            let mut ctx = vec![0f32; t * h];
            attention(&qkv, t, heads, scale, &mut Vec::new(), &mut ctx);
            for head in 0..heads {
                for i in 0..t {
                    let at = |row: usize, part: usize, c: usize| {
                        f64::from(qkv[row * 3 * h + part * h + head * d + c])
                    };
                    let logits: Vec<f64> = (0..t)
                        .map(|j| (0..d).map(|c| at(i, 0, c) * at(j, 1, c)).sum::<f64>())
                        .map(|l| l * f64::from(scale))
                        .collect();
                    let max = logits.iter().copied().fold(f64::MIN, f64::max);
                    let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
                    for c in 0..d {
                        let want: f64 = (0..t)
                            .map(|j| (logits[j] - max).exp() / z * at(j, 2, c))
                            .sum();
                        let got = f64::from(ctx[i * h + head * d + c]);
                        assert!(
                            (got - want).abs() < 1e-5,
                            "t {t} heads {heads} d {d} [{i}, {head}, {c}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn dots_match_the_naive_sums() {
        let mut seed = 2;
        for (rows, dim) in [(1, 1), (5, 3), (9, 384), (4, 40), (11, 17)] {
            let m: Vec<f32> = (0..rows * dim).map(|_| noise(&mut seed)).collect();
            let q: Vec<f32> = (0..dim).map(|_| noise(&mut seed)).collect();
            let mut out = vec![0f32; rows];
            dots(&m, &q, &mut out);
            for (i, got) in out.iter().enumerate() {
                let want: f32 = (0..dim).map(|j| m[i * dim + j] * q[j]).sum();
                assert!((want - got).abs() < 1e-4, "{rows}×{dim} [{i}]");
            }
        }
    }

    #[test]
    fn element_wise_functions_match_their_definitions() {
        for i in -400..=400 {
            let x = i as f32 / 50.0;
            let arg = -x * x;
            let want = f64::from(arg).exp();
            let got = f64::from(exp_neg(arg));
            assert!(
                (got - want).abs() <= 1e-6 * want,
                "exp({arg}) = {got} vs {want}"
            );
            let mut g = [x];
            gelu(&mut g);
            // erf via its series is exact enough for |x| <= 8 in f64 at this step size.
            let e = erf_reference(f64::from(x) / std::f64::consts::SQRT_2);
            let want = 0.5 * f64::from(x) * (1.0 + e);
            assert!(
                (f64::from(g[0]) - want).abs() < 2e-6,
                "gelu({x}) = {} vs {want}",
                g[0]
            );
        }
        let mut s = [1.0, 2.0, 3.0, f32::NEG_INFINITY];
        softmax(&mut s);
        let z = 1.0 + (-1f32).exp() + (-2f32).exp();
        assert!((s[2] - 1.0 / z).abs() < 1e-6 && s[3] == 0.0);
        let mut x = [1.0, 2.0, 3.0, 4.0];
        add_layer_norm(&mut x, &[1.0, 1.0, 1.0, 1.0], &[2.0; 4], &[0.5; 4], 0.0);
        let sd = 1.25f32.sqrt();
        assert!((x[0] - (0.5 - 3.0 / sd)).abs() < 1e-5);
    }

    /// erf by its Taylor series, summed in f64 (converges for the small arguments used).
    fn erf_reference(x: f64) -> f64 {
        if x.abs() > 4.0 {
            return x.signum();
        }
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }
}
