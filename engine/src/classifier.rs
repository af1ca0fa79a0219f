//! A nearest-neighbour classifier over sentence embeddings, with confidences calibrated on the
//! knowledge base itself.
//!
//! Every example question is a unit vector labelled with its class (a KB entry) or as out of
//! scope (examples of questions the site does not answer). A question's score for a class mixes
//! its cosine similarity to the class's centroid (`CENTROID_WEIGHT`) with a nearest-neighbour
//! score: `MAX_WEIGHT` of the similarity to the class's nearest example plus the rest from the
//! mean of its `TOP_K` nearest. The out-of-scope examples are scored the same way, as one class.
//! Adding or removing an example changes only sums: learning is online, no training run.
//!
//! Two probabilities come out of a ranking, each a logistic function of the ranking's features
//! (best score, gap to the second, gap to the out-of-scope score):
//! - `confidence`: the best class is the right one (and the question is in scope);
//! - `cover`: the right class is among the best [`MAX_CHOICES`] (for a clarifying question).
//!
//! Both are fitted by leave-one-out over the knowledge base's own examples: each example is
//! ranked against all the others, and whether its own class came first (or among the first
//! few) is the label; out-of-scope examples are always negatives, weighted so they make up
//! [`OOS_SHARE`] of the fit. Each in-scope example is also ranked once more with its whole
//! class left out, as a question about a topic the knowledge base lacks: those rankings are
//! negatives too ([`UNKNOWN_SHARE`] of the fit), so that "near a neighbouring entry" is not
//! mistaken for "answered by it". No question a visitor asks is used for calibration.

use nexus_embed::linalg::{self, Packed};

/// Class score: this much from the nearest example's similarity, the rest from the mean of the
/// class's `TOP_K` nearest (all of them when it has fewer).
const MAX_WEIGHT: f32 = 0.5;
const TOP_K: usize = 3;
/// A class's score: this much from the cosine similarity to the class's centroid (the mean of
/// its examples), the rest from its nearest examples. Chosen on CLINC150 (validation top-1
/// accuracy: nearest examples alone 90.0 %, centroid alone 91.8 %, this mix 92.7 %).
const CENTROID_WEIGHT: f32 = 0.6;
/// The most candidates a clarifying question offers.
pub const MAX_CHOICES: usize = 3;
/// Out-of-scope examples' share of the calibration's weight (when there are any).
const OOS_SHARE: f64 = 0.25;
/// Unknown-topic negatives' share of the calibration's weight: every in-scope example ranked
/// with its own class removed (the knowledge base without that entry). Without them, a
/// question whose topic is missing but whose neighbour exists is answered with the neighbour's
/// answer (the calibration only ever saw questions whose entry exists). Off (0) for now: at
/// 0.25 the demo's paraphrases fell below every answer threshold tried (README, engine v2).
const UNKNOWN_SHARE: f64 = 0.0;
/// Calibration uses at most this many examples (sampled evenly) to bound the work on big KBs.
const MAX_CALIBRATION: usize = 20_000;

/// A class (KB entry) index, or out of scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    Class(u32),
    OutOfScope,
}

/// A question's classes, best first.
#[derive(Debug, Clone)]
pub struct Ranking {
    /// In-scope classes with their scores, best first (at most [`MAX_CHOICES`] + 1).
    pub classes: Vec<(u32, f32)>,
    /// The out-of-scope examples' score (`None` when the KB has none).
    pub oos: Option<f32>,
    /// Calibrated probability that `classes[0]` is right.
    pub confidence: f32,
    /// Calibrated probability that the right class is among `classes[..MAX_CHOICES]`.
    pub cover: f32,
}

/// A fitted logistic function of a ranking's features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Logistic {
    pub weights: [f64; FEATURES],
    pub bias: f64,
}

pub const FEATURES: usize = 3;

impl Logistic {
    pub fn prob(&self, x: &[f64; FEATURES]) -> f32 {
        let z = self.bias + self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>();
        (1.0 / (1.0 + (-z).exp())) as f32
    }

    /// Weighted logistic regression by Newton's method (a few features, many points).
    pub fn fit(xs: &[[f64; FEATURES]], ys: &[bool], ws: &[f64]) -> Self {
        const D: usize = FEATURES + 1;
        let mut beta = [0f64; D];
        let l2 = 1e-3;
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

/// The features a confidence is computed from.
fn features(classes: &[(u32, f32)], oos: Option<f32>) -> [f64; FEATURES] {
    let s1 = classes.first().map_or(0.0, |c| c.1);
    let s2 = classes.get(1).map_or(0.0, |c| c.1);
    let o = oos.unwrap_or(0.0);
    [f64::from(s1), f64::from(s1 - s2), f64::from(s1 - o)]
}

/// Features for `cover`: best score, gap between the last offered candidate and the next one,
/// gap to out of scope.
fn cover_features(classes: &[(u32, f32)], oos: Option<f32>) -> [f64; FEATURES] {
    let s1 = classes.first().map_or(0.0, |c| c.1);
    let last = classes
        .get(MAX_CHOICES - 1)
        .or(classes.last())
        .map_or(0.0, |c| c.1);
    let next = classes.get(MAX_CHOICES).map_or(0.0, |c| c.1);
    let o = oos.unwrap_or(0.0);
    [f64::from(s1), f64::from(last - next), f64::from(s1 - o)]
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

    /// Classes best first (at most `MAX_CHOICES + 1`) and the out-of-scope score.
    /// `norms[slot]`: the length of the slot's vector sum (without the left-out example in
    /// leave-one-out: `left_out` is its slot and the sum's squared length then).
    fn finish(
        self,
        has_oos: bool,
        norms: &[f32],
        left_out: Option<(usize, f32)>,
    ) -> (Vec<(u32, f32)>, Option<f32>) {
        let score = |slot: usize| -> Option<f32> {
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
        };
        let n = self.best.len() - 1;
        let oos = if has_oos { score(n) } else { None };
        let mut classes: Vec<(u32, f32)> = (0..n)
            .filter_map(|c| score(c).map(|v| (c as u32, v)))
            .collect();
        let keep = (MAX_CHOICES + 1).min(classes.len());
        if keep > 0 && keep < classes.len() {
            classes
                .select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            classes.truncate(keep);
        }
        classes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        (classes, oos)
    }
}

/// One example ranked against all the others: `(example, classes best first, oos score)`,
/// and, for an in-scope example, ranked with its whole class left out.
type LeftOut = (
    usize,
    Vec<(u32, f32)>,
    Option<f32>,
    Option<(Vec<(u32, f32)>, Option<f32>)>,
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
    confidence: Logistic,
    cover: Logistic,
    /// Counted once here: the decisions read it on every question.
    examples_per_class: f32,
    /// Per example: whether calibration ranks it as a question (an example question or an
    /// entry's title; not a piece of a passage's text, which reads nothing like a question).
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
    /// Builds the classifier and calibrates it by leave-one-out over `labels`.
    pub fn new(dim: usize, vectors: Vec<f32>, labels: Vec<Label>) -> Self {
        let probes = vec![true; labels.len()];
        Self::with_probes(dim, vectors, labels, probes)
    }

    /// Like [`Classifier::new`], calibrating only on the examples whose `probes` is true (the
    /// others are still matched against).
    pub fn with_probes(
        dim: usize,
        vectors: Vec<f32>,
        labels: Vec<Label>,
        probes: Vec<bool>,
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
        let mut c = Self {
            norms,
            dim,
            vectors,
            examples_per_class: examples_per_class(&labels),
            probes,
            labels,
            slots,
            n_classes,
            has_oos,
            confidence: Logistic {
                weights: [20.0, 10.0, 0.0],
                bias: -12.0,
            },
            cover: Logistic {
                weights: [20.0, 0.0, 0.0],
                bias: -10.0,
            },
        };
        c.calibrate();
        c
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

    pub fn calibration(&self) -> (Logistic, Logistic) {
        (self.confidence, self.cover)
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Ranks the classes for a unit vector `q`: one pass of dot products over the contiguous
    /// example matrix, then one pass over the similarities.
    pub fn rank(&self, q: &[f32]) -> Ranking {
        let mut sims = vec![0f32; self.labels.len()];
        if q.len() == self.dim {
            linalg::dots(&self.vectors, q, &mut sims);
        }
        let mut top = TopK::new(self.n_classes + 1);
        for (&slot, &sim) in self.slots.iter().zip(&sims) {
            top.push(slot, sim);
        }
        let (classes, oos) = top.finish(self.has_oos, &self.norms, None);
        let confidence = self.confidence.prob(&features(&classes, oos));
        let cover = self.cover.prob(&cover_features(&classes, oos));
        Ranking {
            classes,
            oos,
            confidence,
            cover,
        }
    }

    /// Leave-one-out rankings of (a sample of) the examples: `(example, classes, oos)`. The
    /// similarities are one matrix product per block of examples, blocks shared among the
    /// cores.
    fn leave_one_out(&self) -> Vec<LeftOut> {
        let n = self.labels.len();
        let step = n.div_ceil(MAX_CALIBRATION).max(1);
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
        let mut out: Vec<LeftOut> = std::thread::scope(|scope| {
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
                            for (&i, row) in block.iter().zip(sims.chunks_exact(n)) {
                                done.push(self.left_out(i, row));
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

    /// Example `i` ranked against all the others, from its similarities to every example.
    fn left_out(&self, i: usize, sims: &[f32]) -> LeftOut {
        let mut top = TopK::new(self.n_classes + 1);
        let mut unknown = TopK::new(self.n_classes + 1);
        let own = self.slots[i];
        let in_scope = self.labels[i] != Label::OutOfScope;
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
        let (classes, oos) = top.finish(self.has_oos, &self.norms, Some((own, sq)));
        let unknown = in_scope.then(|| unknown.finish(self.has_oos, &self.norms, None));
        (i, classes, oos, unknown)
    }

    fn calibrate(&mut self) {
        let loo = self.leave_one_out();
        let oos_count = loo
            .iter()
            .filter(|(i, ..)| self.labels[*i] == Label::OutOfScope)
            .count();
        let in_count = loo.len() - oos_count;
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
        let mut xs = Vec::with_capacity(loo.len());
        let mut cx = Vec::with_capacity(loo.len());
        let mut ys = Vec::with_capacity(loo.len());
        let mut cy = Vec::with_capacity(loo.len());
        let mut ws = Vec::with_capacity(loo.len());
        for (i, classes, oos, unknown) in &loo {
            let truth = self.labels[*i];
            let (first, among) = match truth {
                Label::OutOfScope => (false, false),
                Label::Class(c) => (
                    classes.first().is_some_and(|x| x.0 == c),
                    classes.iter().take(MAX_CHOICES).any(|x| x.0 == c),
                ),
            };
            xs.push(features(classes, *oos));
            cx.push(cover_features(classes, *oos));
            ys.push(first);
            cy.push(among);
            ws.push(if truth == Label::OutOfScope {
                w_oos
            } else {
                w_in
            });
            if let Some((classes, oos)) = unknown
                && w_unknown > 0.0
            {
                xs.push(features(classes, *oos));
                cx.push(cover_features(classes, *oos));
                ys.push(false);
                cy.push(false);
                ws.push(w_unknown);
            }
        }
        // Both outcomes must occur, or the fit runs away.
        if ys.iter().any(|&y| y) && ys.iter().any(|&y| !y) {
            self.confidence = Logistic::fit(&xs, &ys, &ws);
        }
        if cy.iter().any(|&y| y) && cy.iter().any(|&y| !y) {
            self.cover = Logistic::fit(&cx, &cy, &ws);
        }
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
            xs.push([x, 0.0, 0.0]);
            ys.push((x > 0.5) != flip);
        }
        let ws = vec![1.0; xs.len()];
        let f = Logistic::fit(&xs, &ys, &ws);
        assert!(f.prob(&[0.9, 0.0, 0.0]) > 0.9);
        assert!(f.prob(&[0.1, 0.0, 0.0]) < 0.1);
        assert!((f.prob(&[0.5, 0.0, 0.0]) - 0.5).abs() < 0.2);
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
        let best = r.classes[0].1;
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
        assert!(
            close.confidence > far.confidence + 0.1,
            "{} vs {}",
            close.confidence,
            far.confidence
        );
    }
}
