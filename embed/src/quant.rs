//! Linear layers over 8-bit weights: `y = x · Wᵀ + b` with `W` quantised per output (symmetric,
//! `i8`) and each input row quantised on the fly to `i16` (symmetric, per row), multiplied in
//! integers and scaled back to `f32`.
//!
//! Three kernels compute the same integer sums over one packed layout ([`Kernel`]):
//!
//! - **AVX-512 VNNI**: `vpdpwssd` (32 multiply-adds an instruction, twice the `f32` FMA rate),
//!   written with pulp's safe AVX-512BW wrappers (`madd` then `add`, which LLVM fuses into
//!   `vpdpwssd` where VNNI is enabled) inside a token that enables VNNI;
//! - **AVX2**: the weights sign-extended to `i16` (`vpmovsxbw`) and multiplied in pairs with
//!   `vpmaddwd` into `i32` (16 multiply-adds an instruction). With `i8` weights and `i16`
//!   inputs no pair sum saturates (`vpmaddwd` saturates only for two `-32768 × -32768` pairs),
//!   so this is exact where the `u8 × i8` `vpmaddubsw` trick would saturate at `i16`;
//! - **portable**: the same arithmetic in plain Rust, on any CPU (and the reference the tests
//!   hold the others to).
//!
//! A lone question's forward pass streams every weight from memory once per layer, so a
//! quarter of the `f32` weights' bytes is most of the gain on either SIMD kernel.
//! [`Kernel::best`] is the fastest kernel this CPU runs (capped by `NEXUS_SIMD`, see
//! [`crate::simd`]); [`QPacked::available`] says whether that is a SIMD one (the portable
//! kernel is slower than the `f32` SIMD kernels, so callers then keep `f32`).
//!
//! Exactness: a row's integers are bounded so that no `i32` sum can overflow
//! (`|x| ≤ ⌊(2³¹ − 1) / (127 · k)⌋`, at most 32,767), so the only error is rounding: about
//! `2⁻⁸` of each output's largest weight and `2⁻¹⁴` of each row's largest input.

use crate::simd::Level;

/// Output columns a packed panel holds (two groups of 16).
const NR: usize = 32;
/// Input rows per block of the quantised layout (and per register block of the VNNI kernel:
/// `2 × MR` accumulators of the 32 AVX-512 registers).
const MR: usize = 12;
/// Input rows per register block of the AVX2 kernel (`2 × 6` accumulators, two weight vectors
/// and a broadcast: 15 of the 16 AVX2 registers).
#[cfg(target_arch = "x86_64")]
const MR_AVX2: usize = 6;

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

/// One of the three implementations of [`QPacked::matmul`] (same layout, same integer sums).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, on any CPU.
    Portable,
    /// `vpmovsxbw` + `vpmaddwd` + `vpaddd` on 256-bit vectors (x86-64 with AVX2).
    Avx2,
    /// `vpdpwssd` on 512-bit vectors (x86-64 with AVX-512 F, BW, VL and VNNI).
    Avx512Vnni,
}

impl Kernel {
    pub const ALL: [Kernel; 3] = [Kernel::Portable, Kernel::Avx2, Kernel::Avx512Vnni];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::Avx512Vnni => "avx512vnni",
        }
    }

    /// The fastest kernel at the SIMD level in use ([`Level::current`], which `NEXUS_SIMD`
    /// caps).
    pub fn best() -> Self {
        Self::at(Level::current())
    }

    fn at(level: Level) -> Self {
        match level {
            Level::Avx512Vnni => Self::Avx512Vnni,
            Level::Avx2 | Level::Avx512 => Self::Avx2,
            Level::Portable => Self::Portable,
        }
    }

    /// Whether this CPU can run the kernel (whatever `NEXUS_SIMD` says).
    pub fn runs_here(self) -> bool {
        match self {
            Self::Portable => true,
            Self::Avx2 => Level::detected() >= Level::Avx2,
            Self::Avx512Vnni => Level::detected() >= Level::Avx512Vnni,
        }
    }
}

/// A linear layer's weight quantised to `i8` per output, packed for [`QPacked::matmul`], with
/// its `f32` bias.
#[derive(Clone)]
pub struct QPacked {
    n: usize,
    k: usize,
    /// The largest input magnitude a row is quantised to (bounds every `i32` sum).
    x_max: f32,
    /// Per panel of 32 outputs, per pair of inputs, two groups of 32 bytes: outputs 0–15 then
    /// 16–31, each output's two weights side by side (`i16` pairs once sign-extended).
    data: Vec<[i8; 32]>,
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
    /// Whether the 8-bit layers run on a SIMD kernel here ([`Kernel::best`] is AVX2 or
    /// AVX-512 VNNI): only then are they faster than the `f32` ones.
    pub fn available() -> bool {
        Kernel::best() != Kernel::Portable
    }

    /// Quantises and packs `weight` (`n` rows of `k` floats, `k` even) and `bias`; `None` when
    /// `k` is odd or zero. Any [`Kernel`] multiplies the result.
    pub fn new(weight: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> Option<Self> {
        assert_eq!(weight.len(), n * k, "weight is n × k");
        if !k.is_multiple_of(2) || k == 0 {
            return None;
        }
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
                    data.push(bytes);
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

    pub fn outputs(&self) -> usize {
        self.n
    }

    pub fn inputs(&self) -> usize {
        self.k
    }

    /// `out[m × n] = x[m × k] · Wᵀ + b` on [`Kernel::best`], `s` holding scratch space between
    /// calls.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32], s: &mut QScratch) {
        self.matmul_on(Kernel::best(), x, m, out, s);
    }

    /// [`QPacked::matmul`] on the given kernel.
    ///
    /// # Panics
    /// When this CPU cannot run `kernel` ([`Kernel::runs_here`]).
    pub fn matmul_on(
        &self,
        kernel: Kernel,
        x: &[f32],
        m: usize,
        out: &mut [f32],
        s: &mut QScratch,
    ) {
        assert_eq!(x.len(), m * self.k, "x is m × k");
        assert_eq!(out.len(), m * self.n, "out is m × n");
        if m == 0 {
            return;
        }
        match kernel {
            Kernel::Portable => {
                self.quantize_rows(x, m, s);
                self.kernel_portable(&s.pairs, &s.scales, m, out);
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni => {
                let simd = V4Vnni::try_new().expect("this CPU has no AVX-512 VNNI");
                // A closure that moves `out` is `FnOnce` itself, so it is inlined into the
                // vectorised context (an `Fn` or `FnMut` closure is reached through a
                // `call_once` shim that LLVM may leave out of line, outside the enabled
                // instruction sets).
                simd.vectorize(
                    #[inline(always)]
                    move || {
                        let out = out;
                        self.quantize_rows(x, m, s);
                        self.kernel_vnni(simd, &s.pairs, &s.scales, m, out)
                    },
                );
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                let simd = pulp::x86::V3::try_new().expect("this CPU has no AVX2");
                simd.vectorize(
                    #[inline(always)]
                    move || {
                        let out = out;
                        self.quantize_rows(x, m, s);
                        self.kernel_avx2(simd, &s.pairs, &s.scales, m, out)
                    },
                );
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 | Kernel::Avx512Vnni => {
                panic!("this CPU has no {}", kernel.as_str())
            }
        }
    }

    /// Each row of `x` as `i16` pairs (in `s.pairs`, laid out by blocks of rows) and its scale
    /// (in `s.scales`). Plain loops, inlined into the caller's SIMD context.
    #[inline(always)]
    fn quantize_rows(&self, x: &[f32], m: usize, s: &mut QScratch) {
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
    }

    /// Row `r`'s sums of outputs `col0 + c0 ..` (`sums.len()` of them, cut at `n`), scaled and
    /// biased into `out`.
    #[inline(always)]
    fn finish(&self, sums: &[i32], row_scale: f32, r: usize, c0: usize, out: &mut [f32]) {
        let n = self.n;
        if c0 >= n {
            return;
        }
        let cols = sums.len().min(n - c0);
        let dst = &mut out[r * n + c0..][..cols];
        let (scale, bias) = (&self.scale[c0..][..cols], &self.bias[c0..][..cols]);
        for (((d, &s), &w), &b) in dst.iter_mut().zip(sums).zip(scale).zip(bias) {
            *d = (s as f32).mul_add(row_scale * w, b);
        }
    }

    /// The kernel in plain Rust.
    fn kernel_portable(&self, pairs: &[i32], scales: &[f32], m: usize, out: &mut [f32]) {
        let kp = self.k / 2;
        for (p, panel) in self.data.chunks_exact(2 * kp).enumerate() {
            for (r, &row_scale) in scales.iter().enumerate().take(m) {
                let (block, rr) = (r / MR, r % MR);
                let xs = &pairs[block * kp * MR..][..kp * MR];
                let mut acc = [0i32; NR];
                for (j, w) in panel.chunks_exact(2).enumerate() {
                    let x = xs[j * MR + rr];
                    let (lo, hi) = (i32::from(x as i16), x >> 16);
                    for (half, w) in w.iter().enumerate() {
                        for lane in 0..16 {
                            acc[half * 16 + lane] +=
                                lo * i32::from(w[2 * lane]) + hi * i32::from(w[2 * lane + 1]);
                        }
                    }
                }
                self.finish(&acc, row_scale, r, p * NR, out);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn kernel_avx2(
        &self,
        simd: pulp::x86::V3,
        pairs: &[i32],
        scales: &[f32],
        m: usize,
        out: &mut [f32],
    ) {
        let kp = self.k / 2;
        for (p, panel) in self.data.chunks_exact(2 * kp).enumerate() {
            let mut r0 = 0;
            while r0 < m {
                let in_block = (m - r0).min(MR);
                let xs = &pairs[r0 * kp..(r0 + MR) * kp];
                for half in 0..2 {
                    let mut sub = 0;
                    while sub < in_block {
                        let rows = (in_block - sub).min(MR_AVX2);
                        let acc = match rows {
                            6 => block_avx2::<6>(simd, xs, sub, kp, panel, half),
                            5 => block_avx2::<5>(simd, xs, sub, kp, panel, half),
                            4 => block_avx2::<4>(simd, xs, sub, kp, panel, half),
                            3 => block_avx2::<3>(simd, xs, sub, kp, panel, half),
                            2 => block_avx2::<2>(simd, xs, sub, kp, panel, half),
                            _ => block_avx2::<1>(simd, xs, sub, kp, panel, half),
                        };
                        for (i, acc) in acc.iter().enumerate().take(rows) {
                            let sums: [i32; 16] = bytemuck::cast(*acc);
                            let r = r0 + sub + i;
                            self.finish(&sums, scales[r], r, p * NR + half * 16, out);
                        }
                        sub += rows;
                    }
                }
                r0 += in_block;
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn kernel_vnni(&self, simd: V4Vnni, pairs: &[i32], scales: &[f32], m: usize, out: &mut [f32]) {
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
    panel: &[[i8; 32]],
) -> [[core::arch::x86_64::__m512i; 2]; MR] {
    let (f, bw) = (simd.avx512f, simd.avx512bw);
    let xs = &xs[..kp * MR];
    let panel = &panel[..2 * kp];
    let zero = f._mm512_setzero_si512();
    let mut acc = [[zero; 2]; M];
    for (j, x) in xs.chunks_exact(MR).enumerate() {
        let w0 = bw._mm512_cvtepi8_epi16(bytemuck::cast(panel[2 * j]));
        let w1 = bw._mm512_cvtepi8_epi16(bytemuck::cast(panel[2 * j + 1]));
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

/// Rows `sub .. sub + M` of a block of quantised rows (`kp` pairs each, laid out `[pair][MR]`)
/// times half `half` of one panel (16 outputs): each output's `i32` sum, as two vectors of 8
/// outputs a row ([`MR_AVX2`] rows returned; rows past `M` are zero).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_avx2<const M: usize>(
    simd: pulp::x86::V3,
    xs: &[i32],
    sub: usize,
    kp: usize,
    panel: &[[i8; 32]],
    half: usize,
) -> [[core::arch::x86_64::__m256i; 2]; MR_AVX2] {
    use core::arch::x86_64::{__m128i, __m256i};
    let (avx, avx2) = (simd.avx, simd.avx2);
    let xs = &xs[..kp * MR];
    let panel = &panel[..2 * kp];
    let zero = avx._mm256_setzero_si256();
    let mut acc = [[zero; 2]; M];
    for (j, x) in xs.chunks_exact(MR).enumerate() {
        let halves: [__m128i; 2] = bytemuck::cast(panel[2 * j + half]);
        let w0: __m256i = avx2._mm256_cvtepi8_epi16(halves[0]);
        let w1: __m256i = avx2._mm256_cvtepi8_epi16(halves[1]);
        let x = &x[sub..sub + M];
        for r in 0..M {
            let a = avx._mm256_set1_epi32(x[r]);
            acc[r][0] = avx2._mm256_add_epi32(acc[r][0], avx2._mm256_madd_epi16(a, w0));
            acc[r][1] = avx2._mm256_add_epi32(acc[r][1], avx2._mm256_madd_epi16(a, w1));
        }
    }
    let mut all = [[zero; 2]; MR_AVX2];
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

    /// Runs `kernel` on several shapes against [`reference`] and the exact product.
    fn check_kernel(kernel: Kernel) {
        assert!(
            kernel.runs_here(),
            "this test binary was built on a CPU with {} and runs on one without: rebuild it",
            kernel.as_str()
        );
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
                .expect("k is even")
                .matmul_on(kernel, &x, m, &mut out, &mut s);
            let rounded = reference(&x, &w, &b, m, n, k);
            let (mut err, mut norm) = (0f64, 0f64);
            for i in 0..m * n {
                assert!(
                    (out[i] - rounded[i]).abs() <= 1e-4 * (1.0 + rounded[i].abs()),
                    "{}: {m}×{n}×{k} [{i}]: {} vs {}",
                    kernel.as_str(),
                    out[i],
                    rounded[i]
                );
                let (r, o) = (i / n, i % n);
                let exact: f32 = b[o] + (0..k).map(|kk| x[r * k + kk] * w[o * k + kk]).sum::<f32>();
                err += f64::from(out[i] - exact).powi(2);
                norm += f64::from(exact).powi(2);
            }
            let relative = (err / norm).sqrt();
            assert!(
                relative < 0.01,
                "{}: {m}×{n}×{k}: relative error {relative}",
                kernel.as_str()
            );
        }
        // Every weight and input at its row's maximum, all of one sign: the extreme sum, which
        // must not overflow (nor saturate an `i16` pair sum on AVX2).
        let (m, n, k) = (2, 32, 1536);
        let x = vec![3.0f32; m * k];
        let w = vec![-0.5f32; n * k];
        let mut out = vec![0f32; m * n];
        QPacked::new(&w, n, k, None).expect("k is even").matmul_on(
            kernel,
            &x,
            m,
            &mut out,
            &mut QScratch::default(),
        );
        for v in out {
            assert!(
                (v - (-1.5 * k as f32)).abs() < 1.0,
                "{}: {v}",
                kernel.as_str()
            );
        }
    }

    #[test]
    fn portable_kernel_is_the_rounded_product_and_close_to_the_exact_one() {
        check_kernel(Kernel::Portable);
    }

    #[test]
    #[cfg_attr(not(nexus_cpu_avx2), ignore = "this CPU has no AVX2")]
    fn avx2_kernel_is_the_rounded_product_and_close_to_the_exact_one() {
        check_kernel(Kernel::Avx2);
    }

    #[test]
    #[cfg_attr(not(nexus_cpu_avx512vnni), ignore = "this CPU has no AVX-512 VNNI")]
    fn avx512_vnni_kernel_is_the_rounded_product_and_close_to_the_exact_one() {
        check_kernel(Kernel::Avx512Vnni);
    }

    /// The three kernels give the same floats (the same integer sums, the same scaling).
    #[test]
    fn every_kernel_this_cpu_runs_agrees_with_the_portable_one() {
        let (m, n, k) = (29, 100, 384);
        let mut seed = 11;
        let x: Vec<f32> = (0..m * k).map(|_| noise(&mut seed)).collect();
        let w: Vec<f32> = (0..n * k).map(|_| noise(&mut seed)).collect();
        let q = QPacked::new(&w, n, k, None).expect("k is even");
        let run = |kernel| {
            let mut out = vec![0f32; m * n];
            q.matmul_on(kernel, &x, m, &mut out, &mut QScratch::default());
            out
        };
        let portable = run(Kernel::Portable);
        let others: Vec<Kernel> = Kernel::ALL[1..]
            .iter()
            .copied()
            .filter(|k| k.runs_here())
            .collect();
        eprintln!(
            "compared with the portable kernel: {:?}",
            others.iter().map(|k| k.as_str()).collect::<Vec<_>>()
        );
        for kernel in others {
            for (a, b) in run(kernel).iter().zip(&portable) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{kernel:?}: {a} vs {b}"
                );
            }
        }
    }
}
