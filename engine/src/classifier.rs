//! A classifier over sentence embeddings with confidences calibrated on the knowledge base
//! itself: a nearest-neighbour score, a discriminative head (softmax regression) and lexical
//! coverage, read together.
//!
//! Every text of an entry (example questions, or a passage's title and pieces of its text) is
//! a unit vector labelled with its class (a KB entry) or as out of scope (examples of questions
//! the site does not answer). For a question, three scores per class:
//! - **similarity**: the cosine to the class's centroid (`CENTROID_WEIGHT`) mixed with the
//!   nearest examples (`MAX_WEIGHT` of the nearest, the rest from the mean of the `TOP_K`
//!   nearest). The out-of-scope examples are scored the same way, as one class;
//! - **head**: the probability of a softmax regression over the embeddings, fitted per site on
//!   the load thread (warm-started from the class centroids, a few epochs of Adam, its work
//!   bounded by `HEAD_BUDGET`; the out-of-scope examples are one more class);
//! - **coverage**: the share of the question's content words (IDF-weighted, stemmed; see
//!   [`super::lexical::content_terms`]) that the class's texts contain. A question about a
//!   topic the site lacks usually has words no text of its nearest entry uses.
//!
//! Candidates are the `POOL` most similar classes and the head's `HEAD_POOL` best, ordered by
//! `(1 - HEAD_WEIGHT) · similarity + HEAD_WEIGHT · head + COVERAGE_WEIGHT · coverage`.
//!
//! Two probabilities come out of a ranking, each a logistic function of its features:
//! - `confidence`: the best class is the right one (and the question is in scope);
//! - `cover`: the right class is among the best [`MAX_CHOICES`] (for a clarifying question).
//!
//! Both are fitted on held-out examples of the knowledge base itself, never on visitors'
//! questions: each probe example is ranked against all the others (leave-one-out for the
//! similarity and the coverage; for the head, the head of a 2-fold cross-fit that did not see
//! it), and whether its own class came first (or among the first few) is the label.
//! Out-of-scope examples are always negatives, weighted so they make up [`OOS_SHARE`] of the
//! fit. Each in-scope probe is also ranked once more with its whole class left out, as a
//! question about a topic the knowledge base lacks: those rankings are negatives too
//! ([`UNKNOWN_SHARE`] of the fit, off by default), so that "near a neighbouring entry" is not
//! mistaken for "answered by it". Rankings whose best class is sparse (a passage or a plain FAQ
//! entry: few texts) are fitted apart from the others when the knowledge base has enough of
//! them (`MIN_KIND_POSITIVES`), so that many-example entries do not set what a passage's
//! similarity means.

use std::collections::HashMap;

use nexus_embed::linalg::{self, Packed};

/// Class similarity: this much from the nearest example's similarity, the rest from the mean
/// of the class's `TOP_K` nearest (all of them when it has fewer).
const MAX_WEIGHT: f32 = 0.5;
const TOP_K: usize = 3;
/// A class's similarity: this much from the cosine similarity to the class's centroid (the
/// mean of its examples), the rest from its nearest examples. Chosen on CLINC150 (validation
/// top-1 accuracy: nearest examples alone 90.0 %, centroid alone 91.8 %, this mix 92.7 %).
const CENTROID_WEIGHT: f32 = 0.6;
/// The most candidates a clarifying question offers.
pub const MAX_CHOICES: usize = 3;
/// Out-of-scope examples' share of the calibration's weight (when there are any).
pub const OOS_SHARE: f64 = 0.25;
/// Unknown-topic negatives' share of the calibration's weight: every in-scope probe ranked
/// with its own class removed (the knowledge base without that entry). Off by default: at
/// 0.25 Banking77 with 15 intents left out hands over 0.85 of the unknown topics at 4.4 %
/// wrong (answer threshold 0.7; 0 of them at 0), but on the demo's templated knowledge base
/// every paraphrase then looks like an unknown topic ("I'd like to call off the purchase I made
/// yesterday": confidence 0.04, handed over) and an article passage on a topic the Q&A entries
/// lack is never answered (README, "Answer engine quality").
pub const UNKNOWN_SHARE: f64 = 0.0;
/// Calibration ranks at most this many examples (sampled evenly), and at most
/// `CALIBRATION_PAIRS` example pairs in all, to bound the work on big KBs.
const MAX_CALIBRATION: usize = 20_000;
const CALIBRATION_PAIRS: usize = 300_000_000;
/// A class with fewer texts than this is sparse (see `Classifier::sparse`).
const SPARSE_TEXTS: usize = 8;
/// A kind of class gets a calibration of its own from this many right answers among its
/// held-out points on.
const MIN_KIND_POSITIVES: usize = 10;
/// Candidates: the most similar classes, and the head's best.
const POOL: usize = 8;
const HEAD_POOL: usize = 4;
/// The order of the candidates (see the module docs).
pub const HEAD_WEIGHT: f32 = 0.3;
pub const COVERAGE_WEIGHT: f32 = 0.1;
/// The head: initial weights are the class centroids times this (a centroid classifier).
const HEAD_SCALE: f32 = 16.0;
const HEAD_LR: f32 = 0.005;
const HEAD_L2: f32 = 1e-4;
const HEAD_BATCH: usize = 128;
/// Epochs of each cross-fit half, then of the whole (warm-started from the halves' mean).
const FOLD_EPOCHS: usize = 6;
const FINAL_EPOCHS: usize = 3;
/// At most this many multiply-adds for the head's whole training (about 2-4 s on 2 cores);
/// a bigger knowledge base trains fewer epochs, and one too big for one epoch has no head
/// (its similarity and coverage still rank it).
const HEAD_BUDGET: f64 = 3e10;

/// A class (KB entry) index, or out of scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    Class(u32),
    OutOfScope,
}

/// One candidate class of a question, with its scores.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Candidate {
    pub class: u32,
    /// The combined score the candidates are ordered by.
    pub score: f32,
    pub similarity: f32,
    pub head: f32,
    pub coverage: f32,
    /// The similarity of the class's nearest example (a near-duplicate question says more
    /// than a near centroid).
    pub nearest: f32,
}

/// A question's classes, best first.
#[derive(Debug, Clone)]
pub struct Ranking {
    /// In-scope classes with their combined scores, best first.
    pub classes: Vec<(u32, f32)>,
    /// The same classes with each score (empty when built by hand).
    pub candidates: Vec<Candidate>,
    /// The out-of-scope examples' similarity (`None` when the KB has none).
    pub oos: Option<f32>,
    /// Calibrated probability that `classes[0]` is right.
    pub confidence: f32,
    /// Calibrated probability that the right class is among `classes[..MAX_CHOICES]`.
    pub cover: f32,
}

impl Ranking {
    /// The best class's similarity (what the out-of-scope similarity is compared with).
    pub fn best_similarity(&self) -> Option<f32> {
        match self.candidates.first() {
            Some(c) => Some(c.similarity),
            None => self.classes.first().map(|c| c.1),
        }
    }

    /// The best class's lexical coverage of the question (0 without candidates).
    pub fn best_coverage(&self) -> f32 {
        self.candidates.first().map_or(0.0, |c| c.coverage)
    }
}

/// A fitted logistic function of a ranking's features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Logistic {
    pub weights: [f64; FEATURES],
    pub bias: f64,
}

pub const FEATURES: usize = 9;

impl Logistic {
    pub fn prob(&self, x: &[f64; FEATURES]) -> f32 {
        let z = self.bias + self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>();
        (1.0 / (1.0 + (-z).exp())) as f32
    }

    /// Weighted logistic regression by Newton's method (a few features, many points).
    pub fn fit(xs: &[[f64; FEATURES]], ys: &[bool], ws: &[f64]) -> Self {
        const D: usize = FEATURES + 1;
        let mut beta = [0f64; D];
        let total: f64 = ws.iter().sum::<f64>().max(1e-12);
        let l2 = 1e-3 * total;
        for _ in 0..50 {
            let mut grad = [0f64; D];
            let mut hess = [[0f64; D]; D];
            for ((x, &y), &w) in xs.iter().zip(ys).zip(ws) {
                let mut row = [1f64; D];
                row[1..].copy_from_slice(x);
                let z: f64 = row.iter().zip(&beta).map(|(a, b)| a * b).sum();
                let p = 1.0 / (1.0 + (-z).exp());
                let r = p - f64::from(u8::from(y));
                for i in 0..D {
                    grad[i] += w * r * row[i];
                    for j in 0..D {
                        hess[i][j] += w * p * (1.0 - p) * row[i] * row[j];
                    }
                }
            }
            for i in 0..D {
                grad[i] += l2 * beta[i];
                hess[i][i] += l2;
            }
            let Some(step) = solve(hess, grad) else { break };
            let mut moved = 0f64;
            for i in 0..D {
                beta[i] -= step[i];
                moved = moved.max(step[i].abs());
            }
            if moved < 1e-8 {
                break;
            }
        }
        let mut weights = [0f64; FEATURES];
        weights.copy_from_slice(&beta[1..]);
        Self {
            weights,
            bias: beta[0],
        }
    }
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting.
#[allow(clippy::needless_range_loop)] // index arithmetic over two rows reads best as loops
fn solve<const D: usize>(mut a: [[f64; D]; D], mut b: [f64; D]) -> Option<[f64; D]> {
    for col in 0..D {
        let pivot = (col..D).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..D {
            let f = a[row][col] / a[col][col];
            for k in col..D {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0f64; D];
    for row in (0..D).rev() {
        let s: f64 = (row + 1..D).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// The features `confidence` is computed from: the best candidate's similarity, its gap to
/// the second's and to out of scope, its head probability and gap, the head's out-of-scope
/// probability, its coverage, and the gap in combined score.
fn features(c: &[Candidate], oos: Option<f32>, head_oos: f32) -> [f64; FEATURES] {
    let a = c.first().copied().unwrap_or_default();
    let b = c.get(1).copied().unwrap_or_default();
    let o = oos.unwrap_or(0.0);
    [
        a.similarity,
        a.similarity - b.similarity,
        a.similarity - o,
        a.head,
        a.head - b.head,
        head_oos,
        a.coverage,
        a.score - b.score,
        a.nearest,
    ]
    .map(f64::from)
}

/// Features for `cover`: the best similarity, the gaps between the last offered candidate and
/// the next one, the gap to out of scope, the head's mass on the offered ones, its
/// out-of-scope probability, and the best coverage among the offered.
fn cover_features(c: &[Candidate], oos: Option<f32>, head_oos: f32) -> [f64; FEATURES] {
    let a = c.first().copied().unwrap_or_default();
    let k = MAX_CHOICES.min(c.len()).max(1);
    let last = c.get(k - 1).copied().unwrap_or_default();
    let next = c.get(k).copied().unwrap_or_default();
    let offered = &c[..c.len().min(k)];
    let mass: f32 = offered.iter().map(|x| x.head).sum();
    let coverage = offered.iter().map(|x| x.coverage).fold(0.0, f32::max);
    let o = oos.unwrap_or(0.0);
    [
        a.similarity,
        last.similarity - next.similarity,
        a.similarity - o,
        mass,
        head_oos,
        coverage,
        last.score - next.score,
        a.score,
        offered.iter().map(|x| x.nearest).fold(0.0, f32::max),
    ]
    .map(f64::from)
}

/// Per-class top-k similarity accumulator; slot `n_classes` holds the out-of-scope examples.
struct TopK {
    best: Vec<[f32; TOP_K]>,
    /// Sum of the similarities per slot (the dot product with the class's vector sum).
    sums: Vec<f32>,
}

impl TopK {
    fn new(slots: usize) -> Self {
        Self {
            best: vec![[f32::NEG_INFINITY; TOP_K]; slots],
            sums: vec![0.0; slots],
        }
    }

    #[inline]
    fn push(&mut self, slot: u32, sim: f32) {
        self.sums[slot as usize] += sim;
        let slot = &mut self.best[slot as usize];
        if sim > slot[TOP_K - 1] {
            let mut i = TOP_K - 1;
            while i > 0 && slot[i - 1] < sim {
                slot[i] = slot[i - 1];
                i -= 1;
            }
            slot[i] = sim;
        }
    }

    /// The similarity of `slot` (`None` when it has no example). `norms[slot]`: the length of
    /// the slot's vector sum (without the left-out example in leave-one-out: `left_out` is
    /// its slot and the sum's squared length then).
    fn score(&self, slot: usize, norms: &[f32], left_out: Option<(usize, f32)>) -> Option<f32> {
        let s = &self.best[slot];
        if !s[0].is_finite() {
            return None;
        }
        let finite = s.iter().take_while(|v| v.is_finite()).count();
        let mean = s[..finite].iter().sum::<f32>() / finite as f32;
        let knn = MAX_WEIGHT * s[0] + (1.0 - MAX_WEIGHT) * mean;
        let norm = match left_out {
            Some((l, sq)) if l == slot => (sq - 2.0 * self.sums[slot] - 1.0).max(1e-6).sqrt(),
            _ => norms[slot],
        };
        let centroid = self.sums[slot] / norm.max(1e-6);
        Some((1.0 - CENTROID_WEIGHT) * knn + CENTROID_WEIGHT * centroid)
    }

    /// The similarity of the slot's nearest example (0 without one).
    fn nearest(&self, slot: usize) -> f32 {
        let s = self.best[slot][0];
        if s.is_finite() { s } else { 0.0 }
    }

    /// The `keep` most similar in-scope classes, best first.
    fn best(
        &self,
        n_classes: usize,
        norms: &[f32],
        left_out: Option<(usize, f32)>,
        keep: usize,
    ) -> Vec<(u32, f32)> {
        let mut classes: Vec<(u32, f32)> = (0..n_classes)
            .filter_map(|c| self.score(c, norms, left_out).map(|v| (c as u32, v)))
            .collect();
        let keep = keep.min(classes.len());
        if keep > 0 && keep < classes.len() {
            classes
                .select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            classes.truncate(keep);
        }
        classes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        classes
    }
}

/// The content words of the knowledge base: per example its terms, per class how many of its
/// examples hold each, and each term's IDF over the classes.
#[derive(Debug, Clone, Default)]
struct Lexicon {
    ids: HashMap<String, u32>,
    idf: Vec<f32>,
    unseen_idf: f32,
    /// Per example: its term ids, sorted.
    example_terms: Vec<Vec<u32>>,
    /// Per slot: (term id, examples holding it), sorted by term.
    class_terms: Vec<Vec<(u32, u32)>>,
}

/// A question's terms: `(id, idf)`, `None` for a word the knowledge base never uses.
type QueryTerms = Vec<(Option<u32>, f32)>;

impl Lexicon {
    fn build(texts: &[&str], slots: &[u32], n_slots: usize, n_classes: usize) -> Self {
        if texts.len() != slots.len() {
            return Self::default();
        }
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut example_terms = Vec::with_capacity(texts.len());
        let mut counts: Vec<HashMap<u32, u32>> = vec![HashMap::new(); n_slots];
        for (text, &slot) in texts.iter().zip(slots) {
            let mut terms: Vec<u32> = super::lexical::content_terms(text)
                .into_iter()
                .map(|t| {
                    let next = ids.len() as u32;
                    *ids.entry(t).or_insert(next)
                })
                .collect();
            terms.sort_unstable();
            terms.dedup();
            for &t in &terms {
                *counts[slot as usize].entry(t).or_insert(0) += 1;
            }
            example_terms.push(terms);
        }
        let mut df = vec![0u32; ids.len()];
        for class in counts.iter().take(n_classes) {
            for &t in class.keys() {
                df[t as usize] += 1;
            }
        }
        let n = n_classes as f32 + 1.0;
        let idf = df
            .iter()
            .map(|&d| (1.0 + n / (d as f32 + 0.5)).ln())
            .collect();
        let class_terms = counts
            .into_iter()
            .map(|m| {
                let mut v: Vec<(u32, u32)> = m.into_iter().collect();
                v.sort_unstable();
                v
            })
            .collect();
        Self {
            ids,
            idf,
            unseen_idf: (1.0 + n / 0.5).ln(),
            example_terms,
            class_terms,
        }
    }

    fn is_empty(&self) -> bool {
        self.class_terms.is_empty()
    }

    fn query(&self, text: &str) -> QueryTerms {
        if self.is_empty() || text.is_empty() {
            return Vec::new();
        }
        super::lexical::content_terms(text)
            .into_iter()
            .map(|t| match self.ids.get(&t) {
                Some(&id) => (Some(id), self.idf[id as usize]),
                None => (None, self.unseen_idf),
            })
            .collect()
    }

    /// The terms of example `i` as a question's terms.
    fn example_query(&self, i: usize) -> QueryTerms {
        self.example_terms.get(i).map_or_else(Vec::new, |terms| {
            terms
                .iter()
                .map(|&t| (Some(t), self.idf[t as usize]))
                .collect()
        })
    }

    /// The IDF-weighted share of `q` that the texts of `slot` contain; `minus`: the terms of an
    /// example of `slot` left out.
    fn coverage(&self, q: &QueryTerms, slot: usize, minus: Option<&[u32]>) -> f32 {
        let total: f32 = q.iter().map(|t| t.1).sum();
        if total <= 0.0 {
            return 0.0;
        }
        let Some(class) = self.class_terms.get(slot) else {
            return 0.0;
        };
        let covered: f32 = q
            .iter()
            .filter_map(|&(id, idf)| {
                let id = id?;
                let i = class.binary_search_by_key(&id, |x| x.0).ok()?;
                let own = minus.is_some_and(|m| m.binary_search(&id).is_ok());
                (class[i].1 > u32::from(own)).then_some(idf)
            })
            .sum();
        covered / total
    }
}

/// A softmax regression over the embeddings (one output per slot).
#[derive(Debug, Clone)]
struct Head {
    slots: usize,
    packed: Packed,
}

impl Head {
    fn new(w: &[f32], b: &[f32], slots: usize, dim: usize) -> Self {
        Self {
            slots,
            packed: Packed::new(w, slots, dim, Some(b)),
        }
    }

    /// The probabilities of `m` rows of `x`, `m × slots`.
    fn probs(&self, x: &[f32], m: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * self.slots];
        self.packed.matmul(x, m, &mut out);
        for row in out.chunks_exact_mut(self.slots) {
            linalg::softmax(row);
        }
        out
    }
}

/// A deterministic shuffle (the fit must not depend on the run).
fn shuffle(v: &mut [usize], seed: &mut u64) {
    for i in (1..v.len()).rev() {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = ((*seed >> 33) as usize) % (i + 1);
        v.swap(i, j);
    }
}

/// Centroids of the slots over `rows`, unit length times [`HEAD_SCALE`] (zero for a slot
/// without rows): a centroid classifier as the head's starting point.
fn centroid_weights(
    dim: usize,
    vectors: &[f32],
    slots: &[u32],
    rows: &[usize],
    n: usize,
) -> Vec<f32> {
    let mut w = vec![0f32; n * dim];
    for &i in rows {
        let s = slots[i] as usize;
        for (acc, x) in w[s * dim..(s + 1) * dim]
            .iter_mut()
            .zip(&vectors[i * dim..(i + 1) * dim])
        {
            *acc += x;
        }
    }
    for row in w.chunks_exact_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|x| *x *= HEAD_SCALE / norm);
        }
    }
    w
}

/// One Adam step on `p` with gradient `g`.
#[allow(clippy::too_many_arguments)]
fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], l2: f32, c1: f32, c2: f32) {
    const B1: f32 = 0.9;
    const B2: f32 = 0.999;
    for i in 0..p.len() {
        let gi = g[i] + l2 * p[i];
        m[i] = B1 * m[i] + (1.0 - B1) * gi;
        v[i] = B2 * v[i] + (1.0 - B2) * gi * gi;
        p[i] -= HEAD_LR * (m[i] / c1) / ((v[i] / c2).sqrt() + 1e-8);
    }
}

/// Trains a head on `rows` from `(w, b)` for `epochs` epochs of mini-batch Adam.
#[allow(clippy::too_many_arguments)]
fn train_head(
    dim: usize,
    vectors: &[f32],
    slots: &[u32],
    rows: &[usize],
    n: usize,
    (mut w, mut b): (Vec<f32>, Vec<f32>),
    epochs: usize,
    mut seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let mut order = rows.to_vec();
    let (mut mw, mut vw) = (vec![0f32; w.len()], vec![0f32; w.len()]);
    let (mut mb, mut vb) = (vec![0f32; b.len()], vec![0f32; b.len()]);
    let mut gw = vec![0f32; w.len()];
    let mut gb = vec![0f32; b.len()];
    let mut x = Vec::with_capacity(HEAD_BATCH * dim);
    let mut logits = Vec::new();
    let mut t = 0i32;
    for _ in 0..epochs {
        shuffle(&mut order, &mut seed);
        for batch in order.chunks(HEAD_BATCH) {
            let m = batch.len();
            x.clear();
            for &i in batch {
                x.extend_from_slice(&vectors[i * dim..(i + 1) * dim]);
            }
            let packed = Packed::new(&w, n, dim, Some(&b));
            logits.resize(m * n, 0.0);
            packed.matmul(&x, m, &mut logits);
            gw.fill(0.0);
            gb.fill(0.0);
            let inv = 1.0 / m as f32;
            for (r, (&i, row)) in batch.iter().zip(logits.chunks_exact_mut(n)).enumerate() {
                linalg::softmax(row);
                row[slots[i] as usize] -= 1.0;
                let xr = &x[r * dim..(r + 1) * dim];
                for (c, &g) in row.iter().enumerate() {
                    if g.abs() < 1e-4 {
                        continue;
                    }
                    let g = g * inv;
                    gb[c] += g;
                    for (acc, &v) in gw[c * dim..(c + 1) * dim].iter_mut().zip(xr) {
                        *acc += g * v;
                    }
                }
            }
            t = t.saturating_add(1);
            let c1 = 1.0 - 0.9f32.powi(t);
            let c2 = 1.0 - 0.999f32.powi(t);
            adam(&mut w, &gw, &mut mw, &mut vw, HEAD_L2, c1, c2);
            adam(&mut b, &gb, &mut mb, &mut vb, 0.0, c1, c2);
        }
    }
    (w, b)
}

/// The head of the whole knowledge base and, for calibration, the two heads of a 2-fold
/// cross-fit with each example's fold. `None` when the knowledge base is too big for the
/// budget or has fewer than two classes.
fn fit_heads(
    dim: usize,
    vectors: &[f32],
    slots: &[u32],
    n: usize,
) -> Option<(Head, [Head; 2], Vec<u8>)> {
    let rows = slots.len();
    if n < 2 || rows < 4 || dim == 0 {
        return None;
    }
    let cost = 2.0 * rows as f64 * n as f64 * dim as f64 * (FOLD_EPOCHS + FINAL_EPOCHS) as f64;
    let factor = (HEAD_BUDGET / cost).min(1.0);
    let fold_epochs = (FOLD_EPOCHS as f64 * factor).floor() as usize;
    if fold_epochs == 0 {
        return None;
    }
    let final_epochs = ((FINAL_EPOCHS as f64 * factor).floor() as usize).max(1);
    // Each slot's examples alternate between the folds.
    let mut seen = vec![0u32; n];
    let fold: Vec<u8> = slots
        .iter()
        .map(|&s| {
            let f = (seen[s as usize] % 2) as u8;
            seen[s as usize] += 1;
            f
        })
        .collect();
    let halves: Vec<Vec<usize>> = (0..2u8)
        .map(|f| (0..rows).filter(|&i| fold[i] != f).collect())
        .collect();
    let fitted: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = halves
            .iter()
            .enumerate()
            .map(|(f, train)| {
                scope.spawn(move || {
                    let init = (
                        centroid_weights(dim, vectors, slots, train, n),
                        vec![0f32; n],
                    );
                    train_head(
                        dim,
                        vectors,
                        slots,
                        train,
                        n,
                        init,
                        fold_epochs,
                        17 + f as u64,
                    )
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| (vec![0f32; n * dim], vec![0f32; n]))
            })
            .collect()
    });
    let mean = |a: &[f32], b: &[f32]| -> Vec<f32> {
        a.iter().zip(b).map(|(x, y)| 0.5 * (x + y)).collect()
    };
    let init = (
        mean(&fitted[0].0, &fitted[1].0),
        mean(&fitted[0].1, &fitted[1].1),
    );
    let all: Vec<usize> = (0..rows).collect();
    let (w, b) = train_head(dim, vectors, slots, &all, n, init, final_epochs, 29);
    let folds = [
        Head::new(&fitted[0].0, &fitted[0].1, n, dim),
        Head::new(&fitted[1].0, &fitted[1].1, n, dim),
    ];
    Some((Head::new(&w, &b, n, dim), folds, fold))
}

/// One probe's held-out calibration points: features and cover features, whether its class
/// came first and among the offered, and the same with its class left out.
type Probe = (
    usize,
    [f64; FEATURES],
    [f64; FEATURES],
    bool,
    bool,
    Option<([f64; FEATURES], [f64; FEATURES], usize)>,
    usize,
);

/// The classifier of one knowledge base. Immutable once built; rebuilding from cached
/// embeddings is cheap (see [`Classifier::new`]).
#[derive(Debug, Clone)]
pub struct Classifier {
    dim: usize,
    /// `labels.len()` rows of `dim` floats, unit length.
    vectors: Vec<f32>,
    labels: Vec<Label>,
    /// `labels` as accumulator slots (out of scope = `n_classes`).
    slots: Vec<u32>,
    n_classes: usize,
    has_oos: bool,
    /// Per slot: the length of the sum of its vectors.
    norms: Vec<f32>,
    head: Option<Head>,
    lexicon: Lexicon,
    /// Per class: whether it is sparse (fewer than [`SPARSE_TEXTS`] texts: a passage, a plain
    /// FAQ entry). The calibration is fitted apart for rankings whose best class is sparse and
    /// for the others, when both kinds have enough probes.
    sparse: Vec<bool>,
    confidence: [Logistic; 2],
    cover: [Logistic; 2],
    /// Counted once here: the decisions read it on every question.
    examples_per_class: f32,
    /// Per example: whether calibration ranks it as a question.
    probes: Vec<bool>,
}

/// In-scope examples per class present in `labels` (0 without classes).
fn examples_per_class(labels: &[Label]) -> f32 {
    let classes = labels
        .iter()
        .filter_map(|l| match l {
            Label::Class(c) => Some(*c),
            Label::OutOfScope => None,
        })
        .collect::<std::collections::HashSet<_>>()
        .len();
    let examples = labels
        .iter()
        .filter(|l| matches!(l, Label::Class(_)))
        .count();
    if classes == 0 {
        0.0
    } else {
        examples as f32 / classes as f32
    }
}

impl Classifier {
    /// Builds the classifier and calibrates it on `labels` (without texts: no coverage).
    pub fn new(dim: usize, vectors: Vec<f32>, labels: Vec<Label>) -> Self {
        let probes = vec![true; labels.len()];
        Self::with_texts(dim, vectors, labels, probes, &[])
    }

    /// Like [`Classifier::new`], calibrating only on the examples whose `probes` is true (the
    /// others are still matched against).
    pub fn with_probes(
        dim: usize,
        vectors: Vec<f32>,
        labels: Vec<Label>,
        probes: Vec<bool>,
    ) -> Self {
        Self::with_texts(dim, vectors, labels, probes, &[])
    }

    /// Like [`Classifier::with_probes`], with the texts the vectors embed (one per label), for
    /// the lexical coverage.
    pub fn with_texts(
        dim: usize,
        vectors: Vec<f32>,
        labels: Vec<Label>,
        probes: Vec<bool>,
        texts: &[&str],
    ) -> Self {
        assert_eq!(probes.len(), labels.len(), "one probe flag per label");
        assert_eq!(vectors.len(), dim * labels.len(), "one vector per label");
        let n_classes = labels
            .iter()
            .filter_map(|l| match l {
                Label::Class(c) => Some(*c as usize + 1),
                Label::OutOfScope => None,
            })
            .max()
            .unwrap_or(0);
        let slots: Vec<u32> = labels
            .iter()
            .map(|l| match l {
                Label::Class(c) => *c,
                Label::OutOfScope => n_classes as u32,
            })
            .collect();
        let has_oos = labels.contains(&Label::OutOfScope);
        let mut sums = vec![vec![0f32; dim]; n_classes + 1];
        for (i, &slot) in slots.iter().enumerate() {
            for (acc, x) in sums[slot as usize]
                .iter_mut()
                .zip(&vectors[i * dim..(i + 1) * dim])
            {
                *acc += x;
            }
        }
        let norms = sums
            .iter()
            .map(|v| v.iter().map(|x| x * x).sum::<f32>().sqrt())
            .collect();
        let lexicon = Lexicon::build(texts, &slots, n_classes + 1, n_classes);
        let mut per_class = vec![0usize; n_classes];
        for l in &labels {
            if let Label::Class(k) = l {
                per_class[*k as usize] += 1;
            }
        }
        let sparse = per_class.iter().map(|&n| n < SPARSE_TEXTS).collect();
        let prior_confidence = Logistic {
            weights: [20.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            bias: -12.0,
        };
        let prior_cover = Logistic {
            weights: [20.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            bias: -10.0,
        };
        let mut c = Self {
            sparse,
            norms,
            dim,
            vectors,
            examples_per_class: examples_per_class(&labels),
            probes,
            labels,
            slots,
            n_classes,
            has_oos,
            head: None,
            lexicon,
            confidence: [prior_confidence; 2],
            cover: [prior_cover; 2],
        };
        let heads = fit_heads(c.dim, &c.vectors, &c.slots, c.n_slots());
        c.head = heads.as_ref().map(|h| h.0.clone());
        c.calibrate(heads.as_ref().map(|h| (&h.1, h.2.as_slice())));
        c
    }

    /// Slots of the head: the classes and, with out-of-scope examples, one more.
    fn n_slots(&self) -> usize {
        self.n_classes + usize::from(self.has_oos)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Examples per class (out-of-scope examples left out; 0 without classes).
    pub fn examples_per_class(&self) -> f32 {
        self.examples_per_class
    }

    /// Whether a discriminative head was fitted (not for a knowledge base too big for it).
    pub fn has_head(&self) -> bool {
        self.head.is_some()
    }

    /// The fitted confidence and cover functions, for rankings whose best class is dense
    /// (index 0) and sparse (index 1).
    pub fn calibration(&self) -> ([Logistic; 2], [Logistic; 2]) {
        (self.confidence, self.cover)
    }

    /// 1 when the best candidate is a sparse class, else 0 (which fitted function applies).
    fn kind(&self, c: &[Candidate]) -> usize {
        c.first()
            .and_then(|c| self.sparse.get(c.class as usize))
            .map_or(0, |&s| usize::from(s))
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Ranks the classes for a unit vector `q` without its text (no lexical coverage).
    pub fn rank(&self, q: &[f32]) -> Ranking {
        self.rank_text(q, "")
    }

    /// Ranks the classes for a unit vector `q` of the question `text`: one pass of dot
    /// products over the contiguous example matrix, one over the similarities, the head's
    /// matrix product and the coverage of the candidates.
    pub fn rank_text(&self, q: &[f32], text: &str) -> Ranking {
        let mut sims = vec![0f32; self.labels.len()];
        let ok = q.len() == self.dim;
        if ok {
            linalg::dots(&self.vectors, q, &mut sims);
        }
        let mut top = TopK::new(self.n_classes + 1);
        for (&slot, &sim) in self.slots.iter().zip(&sims) {
            top.push(slot, sim);
        }
        let head = match &self.head {
            Some(h) if ok => h.probs(q, 1),
            _ => Vec::new(),
        };
        let terms = self.lexicon.query(text);
        let (candidates, oos, head_oos) = self.candidates(&top, None, &head, &terms, None, None);
        let kind = self.kind(&candidates);
        let confidence = self.confidence[kind].prob(&features(&candidates, oos, head_oos));
        let cover = self.cover[kind].prob(&cover_features(&candidates, oos, head_oos));
        Ranking {
            classes: candidates.iter().map(|c| (c.class, c.score)).collect(),
            candidates,
            oos,
            confidence,
            cover,
        }
    }

    /// The candidates of a question, best first, its out-of-scope similarity and the head's
    /// out-of-scope probability. `left_out`: leave-one-out of an example (its slot, its
    /// sum's squared length, its terms); `exclude`: a class left out as unknown (its head
    /// probability removed and the rest renormalised).
    fn candidates(
        &self,
        top: &TopK,
        left_out: Option<(usize, f32)>,
        head: &[f32],
        terms: &QueryTerms,
        minus: Option<(usize, &[u32])>,
        exclude: Option<usize>,
    ) -> (Vec<Candidate>, Option<f32>, f32) {
        let n = self.n_classes;
        let oos = if self.has_oos {
            top.score(n, &self.norms, left_out)
        } else {
            None
        };
        let renorm = match exclude {
            Some(e) if !head.is_empty() => 1.0 / (1.0 - head[e]).max(1e-6),
            _ => 1.0,
        };
        let head_of = |c: usize| -> f32 {
            if head.is_empty() || Some(c) == exclude {
                0.0
            } else {
                head[c] * renorm
            }
        };
        let mut pool: Vec<(u32, f32)> = top.best(n, &self.norms, left_out, POOL);
        if !head.is_empty() {
            let mut by_head: Vec<usize> = (0..n).filter(|&c| Some(c) != exclude).collect();
            let keep = HEAD_POOL.min(by_head.len());
            if keep > 0 && keep < by_head.len() {
                by_head.select_nth_unstable_by(keep - 1, |&a, &b| head[b].total_cmp(&head[a]));
                by_head.truncate(keep);
            }
            for c in by_head {
                if !pool.iter().any(|p| p.0 as usize == c)
                    && let Some(s) = top.score(c, &self.norms, left_out)
                {
                    pool.push((c as u32, s));
                }
            }
        }
        let mut out: Vec<Candidate> = pool
            .into_iter()
            .map(|(c, similarity)| {
                let h = head_of(c as usize);
                let own = minus.and_then(|(slot, t)| (slot == c as usize).then_some(t));
                let coverage = self.lexicon.coverage(terms, c as usize, own);
                Candidate {
                    class: c,
                    score: (1.0 - HEAD_WEIGHT) * similarity
                        + HEAD_WEIGHT * h
                        + COVERAGE_WEIGHT * coverage,
                    similarity,
                    head: h,
                    coverage,
                    nearest: top.nearest(c as usize),
                }
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.class.cmp(&b.class)));
        let head_oos = if self.has_oos { head_of(n) } else { 0.0 };
        (out, oos, head_oos)
    }

    /// Held-out calibration points of (a sample of) the probes. The similarities are one
    /// matrix product per block of examples, blocks shared among the cores.
    fn held_out(&self, folds: Option<(&[Head; 2], &[u8])>) -> Vec<Probe> {
        let n = self.labels.len();
        let cap = MAX_CALIBRATION.min((CALIBRATION_PAIRS / n.max(1)).max(200));
        let probes = self.probes.iter().filter(|&&p| p).count();
        let step = probes.div_ceil(cap).max(1);
        let sample: Vec<usize> = (0..n).filter(|&i| self.probes[i]).step_by(step).collect();
        if sample.is_empty() || self.dim == 0 {
            return Vec::new();
        }
        let all = Packed::new(&self.vectors, n, self.dim, None);
        let blocks: Vec<&[usize]> = sample.chunks(128).collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(blocks.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let slots = self.n_slots();
        let mut out: Vec<Probe> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        let mut rows = Vec::new();
                        let mut sims = Vec::new();
                        loop {
                            let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(block) = blocks.get(b) else { break };
                            rows.clear();
                            for &i in *block {
                                rows.extend_from_slice(self.row(i));
                            }
                            sims.resize(block.len() * n, 0.0);
                            all.matmul(&rows, block.len(), &mut sims);
                            let heads: Option<[Vec<f32>; 2]> = folds.map(|(h, _)| {
                                [
                                    h[0].probs(&rows, block.len()),
                                    h[1].probs(&rows, block.len()),
                                ]
                            });
                            for (r, (&i, row)) in block.iter().zip(sims.chunks_exact(n)).enumerate()
                            {
                                let head: &[f32] = match (&heads, folds) {
                                    (Some(h), Some((_, fold))) => {
                                        &h[fold[i] as usize][r * slots..(r + 1) * slots]
                                    }
                                    _ => &[],
                                };
                                done.push(self.probe(i, row, head));
                            }
                        }
                        done
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
        out.sort_by_key(|l| l.0);
        out
    }

    /// Example `i` ranked against all the others, from its similarities to every example and
    /// its held-out head probabilities; and, in scope, with its whole class left out.
    fn probe(&self, i: usize, sims: &[f32], head: &[f32]) -> Probe {
        let mut top = TopK::new(self.n_classes + 1);
        let mut unknown = TopK::new(self.n_classes + 1);
        let own = self.slots[i];
        let truth = self.labels[i];
        let in_scope = truth != Label::OutOfScope;
        for (j, (&slot, &sim)) in self.slots.iter().zip(sims).enumerate() {
            if j != i {
                top.push(slot, sim);
            }
            if in_scope && slot != own {
                unknown.push(slot, sim);
            }
        }
        let own = own as usize;
        let sq = self.norms[own] * self.norms[own];
        let terms = self.lexicon.example_query(i);
        let mine: &[u32] = self.lexicon.example_terms.get(i).map_or(&[], Vec::as_slice);
        let (cands, oos, head_oos) =
            self.candidates(&top, Some((own, sq)), head, &terms, Some((own, mine)), None);
        let (first, among) = match truth {
            Label::OutOfScope => (false, false),
            Label::Class(c) => (
                cands.first().is_some_and(|x| x.class == c),
                cands.iter().take(MAX_CHOICES).any(|x| x.class == c),
            ),
        };
        let unknown = in_scope.then(|| {
            let (c, o, h) = self.candidates(&unknown, None, head, &terms, None, Some(own));
            (features(&c, o, h), cover_features(&c, o, h), self.kind(&c))
        });
        (
            i,
            features(&cands, oos, head_oos),
            cover_features(&cands, oos, head_oos),
            first,
            among,
            unknown,
            self.kind(&cands),
        )
    }

    fn calibrate(&mut self, folds: Option<(&[Head; 2], &[u8])>) {
        let held = self.held_out(folds);
        let oos_count = held
            .iter()
            .filter(|p| self.labels[p.0] == Label::OutOfScope)
            .count();
        let in_count = held.len() - oos_count;
        if in_count < 10 {
            return;
        }
        // Unknown topics need another class to be near: not with a single entry.
        let unknown_share = if self.n_classes >= 2 {
            UNKNOWN_SHARE
        } else {
            0.0
        };
        let oos_share = if oos_count == 0 { 0.0 } else { OOS_SHARE };
        let w_in = (1.0 - oos_share - unknown_share) / in_count as f64;
        let w_oos = if oos_count == 0 {
            0.0
        } else {
            oos_share / oos_count as f64
        };
        let w_unknown = unknown_share / in_count as f64;
        // Points per kind of best class (see `Classifier::sparse`); index 2 holds them all.
        let mut points: [Points; 3] = Default::default();
        for (i, f, c, first, among, unknown, kind) in &held {
            let w = if self.labels[*i] == Label::OutOfScope {
                w_oos
            } else {
                w_in
            };
            for k in [*kind, 2] {
                points[k].push(*f, *c, *first, *among, w);
            }
            if let Some((f, c, kind)) = unknown
                && w_unknown > 0.0
            {
                for k in [*kind, 2] {
                    points[k].push(*f, *c, false, false, w_unknown);
                }
            }
        }
        let all = points[2].fit();
        for (kind, own) in points[..2].iter().enumerate() {
            // A kind with too few right answers among its points takes the fit of all points.
            let fitted = if own.ys.iter().filter(|&&y| y).count() >= MIN_KIND_POSITIVES {
                own.fit()
            } else {
                (None, None)
            };
            if let Some(f) = fitted.0.or(all.0) {
                self.confidence[kind] = f;
            }
            if let Some(f) = fitted.1.or(all.1) {
                self.cover[kind] = f;
            }
        }
    }
}

/// Calibration points: features, labels and weights, for `confidence` and `cover`.
#[derive(Default)]
struct Points {
    xs: Vec<[f64; FEATURES]>,
    cx: Vec<[f64; FEATURES]>,
    ys: Vec<bool>,
    cy: Vec<bool>,
    ws: Vec<f64>,
}

impl Points {
    fn push(&mut self, f: [f64; FEATURES], c: [f64; FEATURES], y: bool, cy: bool, w: f64) {
        self.xs.push(f);
        self.cx.push(c);
        self.ys.push(y);
        self.cy.push(cy);
        self.ws.push(w);
    }

    /// The two fits; `None` for one whose outcomes do not both occur (the fit would run away).
    fn fit(&self) -> (Option<Logistic>, Option<Logistic>) {
        let both = |y: &[bool]| y.iter().any(|&v| v) && y.iter().any(|&v| !v);
        (
            both(&self.ys).then(|| Logistic::fit(&self.xs, &self.ys, &self.ws)),
            both(&self.cy).then(|| Logistic::fit(&self.cx, &self.cy, &self.ws)),
        )
    }
}

/// The dot product of two vectors (SIMD where the CPU has it).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    linalg::dot(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random number in -1..1.
    fn noise(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }

    fn unit(mut v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }

    const DIM: usize = 16;

    /// A point near axis `axis` (classes are axes 0..3, out of scope is axis 8).
    fn near(axis: usize, spread: f32, seed: &mut u64) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIM).map(|_| spread * noise(seed)).collect();
        v[axis] += 1.0;
        unit(v)
    }

    /// Three classes of 20 examples each, and 20 out-of-scope examples.
    fn fixture() -> Classifier {
        let mut seed = 7;
        let mut vectors = Vec::new();
        let mut labels = Vec::new();
        for class in 0..3u32 {
            for _ in 0..20 {
                vectors.extend(near(class as usize, 0.35, &mut seed));
                labels.push(Label::Class(class));
            }
        }
        for _ in 0..20 {
            vectors.extend(near(8, 0.6, &mut seed));
            labels.push(Label::OutOfScope);
        }
        Classifier::new(DIM, vectors, labels)
    }

    #[test]
    fn logistic_fit_recovers_a_threshold() {
        let mut seed = 3;
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..400 {
            let x = f64::from(i) / 400.0;
            // Mostly x > 0.5 is positive, with some label noise near the boundary.
            let flip = (x - 0.5).abs() < 0.05 && noise(&mut seed) > 0.0;
            let mut v = [0.0; FEATURES];
            v[0] = x;
            xs.push(v);
            ys.push((x > 0.5) != flip);
        }
        let ws = vec![1.0; xs.len()];
        let f = Logistic::fit(&xs, &ys, &ws);
        let at = |x: f64| {
            let mut v = [0.0; FEATURES];
            v[0] = x;
            f.prob(&v)
        };
        assert!(at(0.9) > 0.9);
        assert!(at(0.1) < 0.1);
        assert!((at(0.5) - 0.5).abs() < 0.2);
    }

    #[test]
    fn ranks_the_right_class_first_with_high_confidence() {
        let c = fixture();
        let mut seed = 99;
        for class in 0..3u32 {
            let r = c.rank(&near(class as usize, 0.2, &mut seed));
            assert_eq!(r.classes[0].0, class);
            assert!(r.confidence > 0.8, "confidence {}", r.confidence);
            assert!(r.cover > 0.8, "cover {}", r.cover);
        }
    }

    #[test]
    fn out_of_scope_questions_score_closer_to_the_out_of_scope_examples() {
        let c = fixture();
        let mut seed = 5;
        let r = c.rank(&near(8, 0.3, &mut seed));
        let best = r.best_similarity().expect("ranked");
        assert!(r.oos.expect("has out-of-scope examples") > best);
        assert!(r.confidence < 0.5, "confidence {}", r.confidence);
    }

    #[test]
    fn a_question_between_two_classes_is_unsure_but_covered() {
        let c = fixture();
        let mut v = vec![0.0; DIM];
        v[0] = 1.0;
        v[1] = 1.0;
        let r = c.rank(&unit(v));
        let sure = c.rank(&near(0, 0.0, &mut 1));
        assert!(r.confidence < sure.confidence);
        let top2: Vec<u32> = r.classes.iter().take(2).map(|x| x.0).collect();
        assert!(top2.contains(&0) && top2.contains(&1), "{top2:?}");
        assert!(r.cover > r.confidence);
    }

    #[test]
    fn confidence_grows_with_similarity() {
        let c = fixture();
        let far = c.rank(&near(2, 1.5, &mut 11));
        let close = c.rank(&near(2, 0.0, &mut 11));
        // Without unknown-topic negatives (`UNKNOWN_SHARE` 0) this fixture's far point keeps a
        // high confidence (0.91 against 0.999): the order holds, not a wide gap.
        assert!(
            close.confidence > far.confidence,
            "{} vs {}",
            close.confidence,
            far.confidence
        );
    }
}
