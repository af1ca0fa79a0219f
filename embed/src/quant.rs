//! Linear layers over 8-bit weights: `y = x · Wᵀ + b` with `W` quantised per output (symmetric,
//! `i8`) and each input row quantised on the fly to `i16` (symmetric, per row), multiplied in
//! integers and scaled back to `f32`.
//!
//! On x86-64 CPUs with AVX-512 VNNI the products run as `vpdpwssd` (32 multiply-adds an
//! instruction, twice the `f32` FMA rate) over weights a quarter of the `f32` size, which a
//! lone question's forward pass streams from memory once per layer. The kernel is written
//! with pulp's safe AVX-512BW wrappers (`madd` then `add`, which LLVM fuses into `vpdpwssd`
//! where VNNI is enabled) inside a token that enables VNNI; elsewhere [`QPacked::available`]
//! is false and callers keep the `f32` kernel.
//!
//! Exactness: a row's integers are bounded so that no `i32` sum can overflow
//! (`|x| ≤ ⌊(2³¹ − 1) / (127 · k)⌋`, at most 32,767), so the only error is rounding: about
//! `2⁻⁸` of each output's largest weight and `2⁻¹⁴` of each row's largest input.

/// Output columns a packed panel holds (two vectors of 16 `i32`).
#[cfg(target_arch = "x86_64")]
const NR: usize = 32;
/// Input rows per register block (`2 × MR` accumulators of the 32 AVX-512 registers).
#[cfg(target_arch = "x86_64")]
const MR: usize = 12;

#[cfg(target_arch = "x86_64")]
pulp::simd_type!({
    /// AVX-512 (F, BW, VL) with VNNI: the instruction sets the 8-bit kernel needs.
    pub struct V4Vnni {
        pub sse: f!("sse"),
        pub sse2: f!("sse2"),
        pub sse3: f!("sse3"),
        pub ssse3: f!("ssse3"),
        pub sse4_1: f!("sse4.1"),
        pub sse4_2: f!("sse4.2"),
        pub popcnt: f!("popcnt"),
        pub avx: f!("avx"),
        pub avx2: f!("avx2"),
        pub fma: f!("fma"),
        pub avx512f: f!("avx512f"),
        pub avx512bw: f!("avx512bw"),
        pub avx512vl: f!("avx512vl"),
        pub avx512vnni: f!("avx512vnni"),
    }
});

/// A linear layer's weight quantised to `i8` per output, packed for [`QPacked::matmul`], with
/// its `f32` bias.
#[derive(Clone)]
pub struct QPacked {
    n: usize,
    k: usize,
    /// The largest input magnitude a row is quantised to (bounds every `i32` sum).
    x_max: f32,
    /// Per panel of 32 outputs, per pair of inputs, two vectors of 32 bytes: outputs 0–15 then
    /// 16–31, each output's two weights side by side (`i16` pairs once sign-extended).
    #[cfg(target_arch = "x86_64")]
    data: Vec<core::arch::x86_64::__m256i>,
    /// Per output: its weights' scale (zero past `n`, padded to whole panels).
    scale: Vec<f32>,
    /// Per output (padded like `scale`).
    bias: Vec<f32>,
}

impl std::fmt::Debug for QPacked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QPacked")
            .field("n", &self.n)
            .field("k", &self.k)
            .finish_non_exhaustive()
    }
}

/// Scratch space of [`QPacked::matmul`]: the quantised rows and their scales.
#[derive(Default)]
pub struct QScratch {
    /// Per block of [`MR`] rows, per pair `j` of inputs, the block's rows side by side
    /// (`MR` values, zero past the last row): inputs `2j` (low half) and `2j + 1` (high half)
    /// as `i16`. One base pointer then reaches every row's value at a fixed offset.
    pairs: Vec<i32>,
    /// One row's pairs, before they are spread into `pairs`.
    row: Vec<i32>,
    scales: Vec<f32>,
}

impl QPacked {
    /// Whether this CPU runs the 8-bit kernel (x86-64 with AVX-512 F, BW, VL and VNNI).
    pub fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            V4Vnni::is_available()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Quantises and packs `weight` (`n` rows of `k` floats, `k` even) and `bias`; `None` when
    /// the kernel is not [available](QPacked::available) or `k` is odd.
    pub fn new(weight: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> Option<Self> {
        assert_eq!(weight.len(), n * k, "weight is n × k");
        if !Self::available() || !k.is_multiple_of(2) || k == 0 {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let panels = n.div_ceil(NR);
            let mut scale = vec![0f32; panels * NR];
            let mut q = vec![0i8; panels * NR * k];
            for o in 0..n {
                let row = &weight[o * k..(o + 1) * k];
                let max = row.iter().fold(0f32, |m, w| m.max(w.abs()));
                if max == 0.0 {
                    continue;
                }
                scale[o] = max / 127.0;
                let inv = 127.0 / max;
                for (d, &w) in q[o * k..(o + 1) * k].iter_mut().zip(row) {
                    *d = (w * inv).round().clamp(-127.0, 127.0) as i8;
                }
            }
            let mut data = Vec::with_capacity(panels * k);
            for p in 0..panels {
                for j in (0..k).step_by(2) {
                    for half in 0..2 {
                        let mut bytes = [0i8; 32];
                        for lane in 0..16 {
                            let o = p * NR + half * 16 + lane;
                            bytes[2 * lane] = q[o * k + j];
                            bytes[2 * lane + 1] = q[o * k + j + 1];
                        }
                        data.push(bytemuck::cast(bytes));
                    }
                }
            }
            let mut padded_bias = vec![0f32; panels * NR];
            if let Some(b) = bias {
                assert_eq!(b.len(), n, "one bias per output");
                padded_bias[..n].copy_from_slice(b);
            }
            let x_max = ((i32::MAX as f64 / (127.0 * k as f64)).floor()).min(32_767.0) as f32;
            Some(Self {
                n,
                k,
                x_max,
                data,
                scale,
                bias: padded_bias,
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = bias;
            None
        }
    }

    pub fn outputs(&self) -> usize {
        self.n
    }

    pub fn inputs(&self) -> usize {
        self.k
    }

    /// `out[m × n] = x[m × k] · Wᵀ + b`, `s` holding scratch space between calls.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32], s: &mut QScratch) {
        assert_eq!(x.len(), m * self.k, "x is m × k");
        assert_eq!(out.len(), m * self.n, "out is m × n");
        if m == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = V4Vnni::try_new() {
            self.quantize_rows(simd, x, m, s);
            let (pairs, scales) = (&s.pairs, &s.scales);
            // A closure that moves `out` is `FnOnce` itself, so it is inlined into the
            // vectorised context (an `Fn` or `FnMut` closure is reached through a `call_once`
            // shim that LLVM may leave out of line, outside the enabled instruction sets).
            simd.vectorize(
                #[inline(always)]
                move || {
                    let out = out;
                    self.kernel(simd, pairs, scales, m, out)
                },
            );
        }
    }

    /// Each row of `x` as `i16` pairs (in `s.pairs`, laid out by blocks of rows) and its scale
    /// (in `s.scales`).
    #[cfg(target_arch = "x86_64")]
    fn quantize_rows(&self, simd: V4Vnni, x: &[f32], m: usize, s: &mut QScratch) {
        let (k, kp) = (self.k, self.k / 2);
        s.pairs.clear();
        s.pairs.resize(m.div_ceil(MR) * kp * MR, 0);
        s.scales.resize(m, 0.0);
        s.row.resize(kp, 0);
        let x_max = self.x_max;
        let QScratch {
            pairs,
            row: packed,
            scales,
        } = s;
        let (pairs, packed, scales) = (&mut pairs[..], &mut packed[..], &mut scales[..]);
        // Moving the `&mut` captures makes the closure `FnOnce`, inlined into the vectorised
        // context (see `matmul`).
        simd.vectorize(
            #[inline(always)]
            move || {
                let (pairs, packed, scales) = (pairs, packed, scales);
                for (i, (row, scale)) in x.chunks_exact(k).zip(scales.iter_mut()).enumerate() {
                    let max = max_abs(row);
                    let inv = if max > 0.0 { x_max / max } else { 0.0 };
                    *scale = max / x_max;
                    for (p, xs) in packed.iter_mut().zip(row.chunks_exact(2)) {
                        *p = (round_small(xs[0] * inv) & 0xffff) | (round_small(xs[1] * inv) << 16);
                    }
                    let (block, r) = (i / MR, i % MR);
                    let dst = &mut pairs[block * kp * MR..][..kp * MR];
                    for (j, &p) in packed.iter().enumerate() {
                        dst[j * MR + r] = p;
                    }
                }
            },
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn kernel(&self, simd: V4Vnni, pairs: &[i32], scales: &[f32], m: usize, out: &mut [f32]) {
        let (n, kp) = (self.n, self.k / 2);
        for (p, panel) in self.data.chunks_exact(2 * kp).enumerate() {
            let col0 = p * NR;
            let cols = NR.min(n - col0);
            let mut r0 = 0;
            while r0 < m {
                let rows = (m - r0).min(MR);
                let xs = &pairs[r0 * kp..(r0 + MR) * kp];
                let acc = match rows {
                    12 => block::<12>(simd, xs, kp, panel),
                    11 => block::<11>(simd, xs, kp, panel),
                    10 => block::<10>(simd, xs, kp, panel),
                    9 => block::<9>(simd, xs, kp, panel),
                    8 => block::<8>(simd, xs, kp, panel),
                    7 => block::<7>(simd, xs, kp, panel),
                    6 => block::<6>(simd, xs, kp, panel),
                    5 => block::<5>(simd, xs, kp, panel),
                    4 => block::<4>(simd, xs, kp, panel),
                    3 => block::<3>(simd, xs, kp, panel),
                    2 => block::<2>(simd, xs, kp, panel),
                    _ => block::<1>(simd, xs, kp, panel),
                };
                let f = simd.avx512f;
                let (s0, s1): (core::arch::x86_64::__m512, core::arch::x86_64::__m512) = (
                    bytemuck::cast::<[f32; 16], _>(self.scale[col0..col0 + 16].try_into().unwrap()),
                    bytemuck::cast::<[f32; 16], _>(
                        self.scale[col0 + 16..col0 + 32].try_into().unwrap(),
                    ),
                );
                let (b0, b1): (core::arch::x86_64::__m512, core::arch::x86_64::__m512) = (
                    bytemuck::cast::<[f32; 16], _>(self.bias[col0..col0 + 16].try_into().unwrap()),
                    bytemuck::cast::<[f32; 16], _>(
                        self.bias[col0 + 16..col0 + 32].try_into().unwrap(),
                    ),
                );
                for (r, acc) in acc.iter().enumerate().take(rows) {
                    let rs = f._mm512_set1_ps(scales[r0 + r]);
                    let y0 = f._mm512_fmadd_ps(
                        f._mm512_cvtepi32_ps(acc[0]),
                        f._mm512_mul_ps(rs, s0),
                        b0,
                    );
                    let y1 = f._mm512_fmadd_ps(
                        f._mm512_cvtepi32_ps(acc[1]),
                        f._mm512_mul_ps(rs, s1),
                        b1,
                    );
                    let tile: [f32; 32] = bytemuck::cast([y0, y1]);
                    let dst = &mut out[(r0 + r) * n + col0..][..cols];
                    dst.copy_from_slice(&tile[..cols]);
                }
                r0 += rows;
            }
        }
    }
}

/// The largest magnitude in `xs`, with 16 independent maxima (so that it vectorises).
#[inline(always)]
fn max_abs(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = xs.chunks_exact(16);
    for c in &mut chunks {
        for k in 0..16 {
            let v = c[k].abs();
            acc[k] = if v > acc[k] { v } else { acc[k] };
        }
    }
    let tail = chunks.remainder().iter().fold(0f32, |m, v| m.max(v.abs()));
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// `v` rounded to the nearest integer (ties to even), for `|v| < 2²²`: adding 1.5 · 2²³ leaves
/// the integer in the low mantissa bits. Plain float arithmetic and integer bits, so that it
/// vectorises (a saturating `as` conversion does not).
#[inline(always)]
fn round_small(v: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

/// `M` quantised rows (`kp` pairs each, laid out `[pair][MR]`) times one panel: each output's `i32` sum, as two
/// vectors of 16 outputs a row (`MR` rows returned; rows past `M` are zero).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block<const M: usize>(
    simd: V4Vnni,
    xs: &[i32],
    kp: usize,
    panel: &[core::arch::x86_64::__m256i],
) -> [[core::arch::x86_64::__m512i; 2]; MR] {
    let (f, bw) = (simd.avx512f, simd.avx512bw);
    let xs = &xs[..kp * MR];
    let panel = &panel[..2 * kp];
    let zero = f._mm512_setzero_si512();
    let mut acc = [[zero; 2]; M];
    for (j, x) in xs.chunks_exact(MR).enumerate() {
        let w0 = bw._mm512_cvtepi8_epi16(panel[2 * j]);
        let w1 = bw._mm512_cvtepi8_epi16(panel[2 * j + 1]);
        for r in 0..M {
            let a = f._mm512_set1_epi32(x[r]);
            // add(madd(a, w), acc): one `vpdpwssd` with VNNI enabled.
            acc[r][0] = f._mm512_add_epi32(acc[r][0], bw._mm512_madd_epi16(a, w0));
            acc[r][1] = f._mm512_add_epi32(acc[r][1], bw._mm512_madd_epi16(a, w1));
        }
    }
    let mut all = [[zero; 2]; MR];
    all[..M].copy_from_slice(&acc);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise;

    /// The product as the kernel defines it, in scalar code: the same rounding of weights and
    /// inputs, summed exactly.
    fn reference(x: &[f32], w: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let x_max = ((i32::MAX as f64 / (127.0 * k as f64)).floor()).min(32_767.0);
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            let row = &x[i * k..(i + 1) * k];
            let xm = row.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
            let xq: Vec<i64> = row
                .iter()
                .map(|&v| (v * (x_max / xm) as f32).round_ties_even() as i64)
                .collect();
            for o in 0..n {
                let wr = &w[o * k..(o + 1) * k];
                let wm = wr.iter().fold(0f32, |a, v| a.max(v.abs()));
                let wq: Vec<i64> = wr
                    .iter()
                    .map(|&v| (v * (127.0 / wm)).round() as i64)
                    .collect();
                let sum: i64 = xq.iter().zip(&wq).map(|(a, b)| a * b).sum();
                out[i * n + o] =
                    (sum as f64 * (xm / x_max) as f32 as f64 * (wm / 127.0) as f64) as f32 + b[o];
            }
        }
        out
    }

    #[test]
    fn quantised_matmul_is_the_rounded_product_and_close_to_the_exact_one() {
        if !QPacked::available() {
            eprintln!("no AVX-512 VNNI here: the 8-bit kernel is not used, nothing to check");
            return;
        }
        let mut seed = 3;
        let mut s = QScratch::default();
        for (m, n, k) in [
            (1, 32, 2),
            (7, 33, 6),
            (13, 48, 384),
            (25, 1536, 384),
            (3, 384, 1536),
        ] {
            let x: Vec<f32> = (0..m * k).map(|_| noise(&mut seed)).collect();
            let w: Vec<f32> = (0..n * k).map(|_| noise(&mut seed)).collect();
            let b: Vec<f32> = (0..n).map(|_| noise(&mut seed)).collect();
            let mut out = vec![0f32; m * n];
            QPacked::new(&w, n, k, Some(&b))
                .expect("kernel available")
                .matmul(&x, m, &mut out, &mut s);
            let rounded = reference(&x, &w, &b, m, n, k);
            let (mut err, mut norm) = (0f64, 0f64);
            for i in 0..m * n {
                assert!(
                    (out[i] - rounded[i]).abs() <= 1e-4 * (1.0 + rounded[i].abs()),
                    "{m}×{n}×{k} [{i}]: {} vs {}",
                    out[i],
                    rounded[i]
                );
                let (r, o) = (i / n, i % n);
                let exact: f32 = b[o] + (0..k).map(|kk| x[r * k + kk] * w[o * k + kk]).sum::<f32>();
                err += f64::from(out[i] - exact).powi(2);
                norm += f64::from(exact).powi(2);
            }
            let relative = (err / norm).sqrt();
            assert!(relative < 0.01, "{m}×{n}×{k}: relative error {relative}");
        }
    }

    #[test]
    fn the_largest_inputs_do_not_overflow() {
        if !QPacked::available() {
            return;
        }
        // Every weight and input at its row's maximum, all of one sign: the extreme sum.
        let (m, n, k) = (2, 32, 1536);
        let x = vec![3.0f32; m * k];
        let w = vec![-0.5f32; n * k];
        let mut out = vec![0f32; m * n];
        QPacked::new(&w, n, k, None)
            .expect("kernel available")
            .matmul(&x, m, &mut out, &mut QScratch::default());
        for v in out {
            assert!((v - (-1.5 * k as f32)).abs() < 1.0, "{v}");
        }
    }
}
