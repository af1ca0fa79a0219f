//! [`SemanticEngine`]: the embedded answer engine. all-MiniLM-L6-v2 sentence embeddings
//! ([`super::embed`]) of every example question (and of an article passage's title and text),
//! and a [`Classifier`] (similarity, a softmax head and lexical coverage) with confidences
//! calibrated on the knowledge base itself ([`super::classifier`]).
//!
//! Decisions, in this order (confidences are calibrated probabilities, see [`Thresholds`]):
//! 1. a visitor who plainly asks for a person is handed over as `visitor_asked`;
//! 2. when the best entry hands over (`escalate`) and the confidence reaches `answer`, it is
//!    handed over with that entry's reason;
//! 3. when the question is closer to the knowledge base's out-of-scope examples than to any
//!    entry, it is handed over as `out_of_scope`;
//! 4. from `answer` on, the best entry's answer is given — articles first: when the knowledge
//!    base has articles beside Q&A entries and the best entry is a Q&A entry, a passage among
//!    the candidates nearly as similar ([`PASSAGE_MARGIN`]) whose text holds most of the
//!    question's words ([`PASSAGE_COVERAGE`]) is given instead, with its link;
//! 5. when the probability that the right entry is among the best two or three
//!    (`max_choices`) reaches `answer - clarify_margin`, the visitor is asked which one they
//!    mean (for this engine `clarify_margin` is a margin of probability, not of score);
//! 6. otherwise below `out_of_scope` it is handed over as `out_of_scope`, else as
//!    `low_confidence`.
//!
//! Loading a knowledge base (embedding new examples, fitting the head, calibrating) runs on a
//! thread of its own: [`AnswerEngine::load_site`] returns at once and [`AnswerEngine::decide`]
//! waits for the newest load of its site, so a question asked right after a KB change sees
//! the change.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use nexus_shared::{Choice, HandoffReason, Source};
use tokio::sync::watch;
use uuid::Uuid;

use super::classifier::{Classifier, Label, MAX_CHOICES, Ranking};
use super::embed::{DIM, Embedder, QueryBatcher};
use super::{AnswerEngine, Decision, EngineError, KbEntry, Query, Thresholds};

/// At most this many characters of a question are embedded.
const MAX_QUERY_CHARS: usize = 1_000;

/// The defaults, chosen on our own split of CLINC150's training data (`clinc_kb` →
/// `clinc_dev` of `engine/data/dev/build_dev_sets.py`; never on CLINC150 `val` or `test`), with
/// the confidences calibrated on the knowledge base alone: there, direct right answers 0.895
/// of in-scope questions, clarifying questions 5.2 %, wrong answers 1.16 %, out-of-scope
/// recall 1.0 (README, "Answer engine quality"). A higher `answer` trades direct answers for
/// fewer wrong ones (0.85: 0.85 direct, 0.66 % wrong there). `out_of_scope` only tells the two
/// handover reasons apart.
pub const DEFAULT_THRESHOLDS: Thresholds = Thresholds {
    out_of_scope: 0.2,
    answer: 0.75,
    clarify_margin: 0.1,
    max_choices: MAX_CHOICES,
};

/// With the default thresholds, a knowledge base of this many examples per entry or fewer asks
/// "do you mean …?" only when more sure: its clarify margin is halved. Its calibration
/// (leave-one-out over a handful of examples a class) is the least reliable, and a clarifying
/// question without the right choice is a wrong answer. From [`FULL_MARGIN_EXAMPLES`] on the
/// margin is whole, linear in between. Measured on CLINC150 learning from 5 examples per intent
/// (`nexus-flow eval --stream`, three seeds): the wrong rate of the last windows falls from
/// 0.02–0.04 to 0.006–0.02 while automation stays near 0.9.
pub const SMALL_KB_EXAMPLES: f32 = 10.0;
/// See [`SMALL_KB_EXAMPLES`].
pub const FULL_MARGIN_EXAMPLES: f32 = 40.0;

/// `t` with its clarify margin scaled for a knowledge base of `examples_per_entry` (see
/// [`SMALL_KB_EXAMPLES`]).
pub fn size_aware(t: Thresholds, examples_per_entry: f32) -> Thresholds {
    let span = FULL_MARGIN_EXAMPLES - SMALL_KB_EXAMPLES;
    let share = ((examples_per_entry - SMALL_KB_EXAMPLES) / span).clamp(0.0, 1.0);
    Thresholds {
        clarify_margin: t.clarify_margin * (0.5 + 0.5 * share),
        ..t
    }
}

/// An entry with fewer example questions than this is also found by its title and the text of
/// its answer (a passage of an article has none; a plain FAQ has one).
pub const FEW_EXAMPLES: usize = 3;
/// The most pieces of an answer's text that are embedded per entry (bounds the vectors a
/// question is compared with: 10,000 passages give at most 10,000 × (1 + this)).
pub const MAX_CHUNKS: usize = 4;
/// A piece of an answer's text is about this many characters (whole sentences, so a piece of
/// a long sentence may be longer).
pub const CHUNK_CHARS: usize = 300;

/// The texts an entry is found by: its example questions and, with fewer than
/// [`FEW_EXAMPLES`] of them, its title and up to [`MAX_CHUNKS`] pieces of its answer (whole
/// sentences, about [`CHUNK_CHARS`] each) — a passage is found by what it says.
pub fn entry_texts(e: &KbEntry) -> Vec<String> {
    let mut out: Vec<String> = e.examples.clone();
    if e.examples.len() >= FEW_EXAMPLES {
        return out;
    }
    let title = e.title.trim();
    if !title.is_empty() && !out.iter().any(|x| x.trim().eq_ignore_ascii_case(title)) {
        out.push(title.to_owned());
    }
    if e.answer.trim() != title {
        out.extend(chunks(&e.answer).into_iter().take(MAX_CHUNKS));
    }
    if out.is_empty() {
        out.push(e.id.clone());
    }
    out
}

/// `text` cut into pieces of whole sentences (lines are sentence ends too) of about
/// [`CHUNK_CHARS`] characters; Markdown heading marks, bullets and placeholders' braces are
/// dropped.
pub fn chunks(text: &str) -> Vec<String> {
    let mut sentences: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line
            .trim()
            .trim_start_matches(['#', '-', '*', '>', ' '])
            .replace("{{", "")
            .replace("}}", "");
        let mut start = 0;
        let bytes = line.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let end = matches!(b, b'.' | b'!' | b'?')
                && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
            if end {
                let s = line[start..=i].trim();
                if !s.is_empty() {
                    sentences.push(s.to_owned());
                }
                start = i + 1;
            }
        }
        let rest = line[start..].trim();
        if !rest.is_empty() {
            sentences.push(rest.to_owned());
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for s in sentences {
        if !cur.is_empty() && cur.len() + s.len() > CHUNK_CHARS {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&s);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One site's loaded knowledge base.
#[derive(Debug)]
pub struct SiteModel {
    pub entries: Vec<KbEntry>,
    pub classifier: Classifier,
    /// Whether the knowledge base mixes Q&A entries with articles (entries without example
    /// questions): then a passage that answers the question goes before a Q&A entry.
    pub mixed: bool,
}

/// Articles first: when the best entry is a Q&A entry answered with confidence, a passage among
/// the candidates whose similarity is within this of the best one's, and whose text holds at
/// least [`PASSAGE_COVERAGE`] of the question's content words (IDF-weighted), is the answer
/// instead: the owner's article on the same topic, with its link.
pub const PASSAGE_MARGIN: f32 = 0.2;
/// See [`PASSAGE_MARGIN`].
pub const PASSAGE_COVERAGE: f32 = 0.4;

impl SiteModel {
    /// A model from embedded texts: `owned[i]` (text, label, probe) is embedded by
    /// `vectors[i]`.
    pub fn from_vectors(
        entries: Vec<KbEntry>,
        owned: &[(String, Label, bool)],
        vectors: Vec<Vec<f32>>,
    ) -> Self {
        let texts: Vec<&str> = owned.iter().map(|(t, ..)| t.as_str()).collect();
        let labels: Vec<Label> = owned.iter().map(|(_, l, _)| *l).collect();
        let probes: Vec<bool> = owned.iter().map(|(.., p)| *p).collect();
        let flat: Vec<f32> = vectors.into_iter().flatten().collect();
        let classifier = Classifier::with_texts(DIM, flat, labels, probes, &texts);
        let mut model = Self::new(entries, classifier);
        model.mixed = model.entries.iter().any(|e| e.examples.is_empty())
            && model.entries.iter().any(|e| !e.examples.is_empty());
        model
    }

    /// A model of hand-made vectors (for tests and benches).
    pub fn new(entries: Vec<KbEntry>, classifier: Classifier) -> Self {
        Self {
            entries,
            classifier,
            mixed: false,
        }
    }

    /// Ranks the entries for the embedding `q` of the question `text`.
    pub fn rank(&self, q: &[f32], text: &str) -> Ranking {
        self.classifier.rank_text(q, text)
    }

    /// The passage that answers instead of the best entry (see [`PASSAGE_MARGIN`]), if any.
    fn article_first(&self, ranking: &Ranking) -> Option<&KbEntry> {
        if !self.mixed {
            return None;
        }
        let best = ranking.candidates.first()?;
        if self.entries.get(best.class as usize)?.examples.is_empty() {
            return None;
        }
        ranking
            .candidates
            .iter()
            .skip(1)
            .filter(|c| {
                c.similarity >= best.similarity - PASSAGE_MARGIN
                    && c.coverage >= PASSAGE_COVERAGE
                    && self
                        .entries
                        .get(c.class as usize)
                        .is_some_and(|e| e.examples.is_empty())
            })
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .and_then(|c| self.entries.get(c.class as usize))
    }
}

struct Slot {
    /// The entries of the newest `load_site` (for [`AnswerEngine::entry`], at once).
    entries: Arc<Vec<KbEntry>>,
    /// The newest load requested, and the model of the newest one finished.
    requested: u64,
    model: Option<(u64, Arc<SiteModel>)>,
    /// The generation of the newest finished load (waiters watch it).
    ready: watch::Sender<u64>,
}

/// The embedded engine. Cheap to share; see the module docs.
pub struct SemanticEngine {
    embedder: Arc<Embedder>,
    /// Embeds visitors' questions, several conversations' in one forward pass.
    batcher: QueryBatcher,
    thresholds: Thresholds,
    /// Whether the default thresholds' clarify margin follows the knowledge base's size
    /// ([`size_aware`]); thresholds set with [`SemanticEngine::with_thresholds`] are used as
    /// they are.
    size_aware: bool,
    /// Out-of-scope example questions added to every site's classifier (may be empty).
    oos_examples: Vec<String>,
    sites: Arc<RwLock<HashMap<Uuid, Slot>>>,
}

impl std::fmt::Debug for SemanticEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticEngine")
            .field("embedder", &self.embedder)
            .field("thresholds", &self.thresholds)
            .finish_non_exhaustive()
    }
}

impl SemanticEngine {
    /// Loads the model from `model_dir` (slow: reads ~90 MB; call off the async workers).
    pub fn load(model_dir: &Path) -> anyhow::Result<Self> {
        Ok(Self::with_embedder(Arc::new(Embedder::load(model_dir)?)))
    }

    pub fn with_embedder(embedder: Arc<Embedder>) -> Self {
        Self {
            batcher: QueryBatcher::new(embedder.clone()),
            embedder,
            thresholds: DEFAULT_THRESHOLDS,
            size_aware: true,
            oos_examples: Vec::new(),
            sites: Arc::default(),
        }
    }

    /// Decides with `thresholds` as given (not [`size_aware`]) unless a site sets its own.
    pub fn with_thresholds(mut self, thresholds: Thresholds) -> Self {
        self.thresholds = thresholds;
        self.size_aware = false;
        self
    }

    /// The thresholds a site without its own decides with.
    pub fn thresholds_for(&self, model: &SiteModel) -> Thresholds {
        if self.size_aware {
            size_aware(self.thresholds, model.classifier.examples_per_class())
        } else {
            self.thresholds
        }
    }

    /// Questions no site answers; each site's classifier learns them as out of scope.
    pub fn with_out_of_scope_examples(mut self, examples: Vec<String>) -> Self {
        self.oos_examples = examples;
        self
    }

    pub fn embedder(&self) -> &Arc<Embedder> {
        &self.embedder
    }

    /// Builds a site's model (embeds what is not cached, calibrates). Blocking.
    pub fn build(
        embedder: &Embedder,
        entries: Vec<KbEntry>,
        oos_examples: &[String],
    ) -> anyhow::Result<SiteModel> {
        let mut owned: Vec<(String, Label, bool)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let questions = e.examples.len() + 1;
            for (n, text) in entry_texts(e).into_iter().enumerate() {
                // Example questions and the title probe the calibration; so does a passage's
                // text when the entry has no example question at all (an article: its pieces
                // are the only probes it has).
                let probe = n < questions || e.examples.is_empty();
                owned.push((text, Label::Class(i as u32), probe));
            }
        }
        for ex in oos_examples {
            owned.push((ex.clone(), Label::OutOfScope, true));
        }
        let texts: Vec<&str> = owned.iter().map(|(t, ..)| t.as_str()).collect();
        let vectors = embedder.embed(&texts)?;
        Ok(SiteModel::from_vectors(entries, &owned, vectors))
    }

    /// Loads a site synchronously (for tools and tests); `decide` sees it at once.
    pub fn load_site_blocking(&self, site_id: Uuid, entries: Vec<KbEntry>) -> anyhow::Result<()> {
        let generation = self.request(site_id, &entries);
        let model = Self::build(&self.embedder, entries, &self.oos_examples)?;
        install(&self.sites, site_id, generation, model);
        Ok(())
    }

    /// Installs a model built elsewhere (the eval tool builds KBs with out-of-scope examples).
    pub fn install_model(&self, site_id: Uuid, model: SiteModel) {
        let generation = self.request(site_id, &model.entries);
        install(&self.sites, site_id, generation, model);
    }

    /// Records a new load of `site_id`; returns its generation.
    fn request(&self, site_id: Uuid, entries: &[KbEntry]) -> u64 {
        let mut sites = self.sites.write().unwrap_or_else(|e| e.into_inner());
        let slot = sites.entry(site_id).or_insert_with(|| Slot {
            entries: Arc::default(),
            requested: 0,
            model: None,
            ready: watch::channel(0).0,
        });
        slot.requested += 1;
        slot.entries = Arc::new(entries.to_vec());
        slot.requested
    }

    /// The newest model of a site, waiting for a load in progress.
    async fn model(&self, site_id: Uuid) -> Result<Arc<SiteModel>, EngineError> {
        loop {
            let mut ready = {
                let sites = self.sites.read().unwrap_or_else(|e| e.into_inner());
                let slot = sites
                    .get(&site_id)
                    .ok_or(EngineError::UnknownSite(site_id))?;
                match &slot.model {
                    Some((generation, model)) if *generation == slot.requested => {
                        return Ok(model.clone());
                    }
                    _ => slot.ready.subscribe(),
                }
            };
            if ready.changed().await.is_err() {
                return Err(EngineError::Failed(
                    "the knowledge base did not load".into(),
                ));
            }
        }
    }

    /// Embeds one question off the async workers, in a forward pass shared with the other
    /// questions waiting at that moment ([`QueryBatcher`]).
    async fn embed_query(&self, text: &str) -> Result<Vec<f32>, EngineError> {
        let text: String = text.chars().take(MAX_QUERY_CHARS).collect();
        self.batcher
            .embed(text)
            .await
            .map_err(|e| EngineError::Failed(format!("embedding: {e}")))
    }

    /// The decision for a ranked question (no I/O: the core of `decide`).
    pub fn decide_ranked(
        model: &SiteModel,
        ranking: &Ranking,
        t: &Thresholds,
        text: &str,
    ) -> Decision {
        if super::lexical::asks_for_human(text) {
            return Decision::Escalate {
                reason: HandoffReason::VisitorAsked,
                confidence: None,
            };
        }
        let Some(&(best, _)) = ranking.classes.first() else {
            return Decision::Escalate {
                reason: HandoffReason::OutOfScope,
                confidence: Some(0.0),
            };
        };
        let best_similarity = ranking.best_similarity().unwrap_or(0.0);
        let confidence = ranking.confidence;
        let entry = &model.entries[best as usize];
        if let Some(reason) = &entry.escalate
            && confidence >= t.answer
        {
            return Decision::Escalate {
                reason: reason.clone(),
                confidence: Some(confidence),
            };
        }
        if ranking.oos.is_some_and(|o| o >= best_similarity) {
            return Decision::Escalate {
                reason: HandoffReason::OutOfScope,
                confidence: Some(confidence),
            };
        }
        if confidence >= t.answer {
            let entry = model.article_first(ranking).unwrap_or(entry);
            return Decision::Answer {
                body: entry.answer.clone(),
                source: Source {
                    entry_id: entry.id.clone(),
                    title: entry.title.clone(),
                    url: entry.url.clone(),
                },
                confidence,
            };
        }
        let close: Vec<u32> = ranking
            .classes
            .iter()
            .take(t.max_choices.clamp(2, MAX_CHOICES))
            .map(|&(c, _)| c)
            .collect();
        if close.len() >= 2 && ranking.cover >= t.answer - t.clarify_margin {
            return Decision::Clarify {
                body: "Do you mean one of these?".to_owned(),
                choices: close
                    .iter()
                    .map(|&c| {
                        let e = &model.entries[c as usize];
                        Choice {
                            id: e.id.clone(),
                            label: e.title.clone(),
                        }
                    })
                    .collect(),
                confidence,
            };
        }
        Decision::Escalate {
            reason: if confidence < t.out_of_scope {
                HandoffReason::OutOfScope
            } else {
                HandoffReason::LowConfidence
            },
            confidence: Some(confidence),
        }
    }

    fn site_now(&self, site_id: Uuid) -> Option<Arc<SiteModel>> {
        let sites = self.sites.read().unwrap_or_else(|e| e.into_inner());
        sites
            .get(&site_id)
            .and_then(|s| s.model.as_ref().map(|m| m.1.clone()))
    }
}

/// Installs a finished load unless a newer one finished first, and wakes the waiters.
fn install(sites: &RwLock<HashMap<Uuid, Slot>>, site_id: Uuid, generation: u64, model: SiteModel) {
    let mut sites = sites.write().unwrap_or_else(|e| e.into_inner());
    if let Some(slot) = sites.get_mut(&site_id) {
        if slot.model.as_ref().is_none_or(|m| m.0 < generation) {
            slot.model = Some((generation, Arc::new(model)));
        }
        slot.ready.send_replace(generation);
    }
}

#[async_trait::async_trait]
impl AnswerEngine for SemanticEngine {
    fn name(&self) -> &str {
        "minilm"
    }

    fn load_site(&self, site_id: Uuid, entries: Vec<KbEntry>) {
        let generation = self.request(site_id, &entries);
        let embedder = self.embedder.clone();
        let sites = self.sites.clone();
        let oos = self.oos_examples.clone();
        let spawned = std::thread::Builder::new()
            .name("kb-load".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let examples: usize = entries.iter().map(|e| e.examples.len()).sum();
                match Self::build(&embedder, entries, &oos) {
                    Ok(model) => {
                        tracing::info!(
                            site = %site_id,
                            examples,
                            ms = started.elapsed().as_millis() as u64,
                            "knowledge base embedded and calibrated"
                        );
                        install(&sites, site_id, generation, model);
                    }
                    Err(e) => {
                        tracing::error!(site = %site_id, error = %e, "knowledge base failed to load");
                        // Wake the waiters: they keep the previous model, if any.
                        let mut sites = sites.write().unwrap_or_else(|e| e.into_inner());
                        if let Some(slot) = sites.get_mut(&site_id) {
                            if let Some(m) = &mut slot.model {
                                m.0 = generation;
                            }
                            slot.ready.send_replace(generation);
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the knowledge-base loader");
        }
    }

    fn entry(&self, site_id: Uuid, entry_id: &str) -> Option<KbEntry> {
        let sites = self.sites.read().unwrap_or_else(|e| e.into_inner());
        sites
            .get(&site_id)?
            .entries
            .iter()
            .find(|e| e.id == entry_id)
            .cloned()
    }

    async fn decide(&self, query: Query<'_>) -> Result<Decision, EngineError> {
        self.decide_with(query, None).await
    }

    async fn decide_with(
        &self,
        query: Query<'_>,
        thresholds: Option<Thresholds>,
    ) -> Result<Decision, EngineError> {
        let model = self.model(query.site_id).await?;
        let q = self.embed_query(query.text).await?;
        let ranking = model.rank(&q, query.text);
        let t = thresholds.unwrap_or_else(|| self.thresholds_for(&model));
        Ok(Self::decide_ranked(&model, &ranking, &t, query.text))
    }

    fn default_thresholds(&self) -> Thresholds {
        self.thresholds
    }

    fn retrieve(&self, site_id: Uuid, text: &str, k: usize) -> Vec<(KbEntry, f32)> {
        let Some(model) = self.site_now(site_id) else {
            return Vec::new();
        };
        let text: String = text.chars().take(MAX_QUERY_CHARS).collect();
        let Ok(q) = self.embedder.embed_transient(&text) else {
            return Vec::new();
        };
        let ranking = model.rank(&q, &text);
        ranking
            .classes
            .iter()
            .take(k)
            .enumerate()
            .map(|(i, &(c, s))| {
                let confidence = if i == 0 {
                    ranking.confidence
                } else {
                    s.clamp(0.0, 1.0)
                };
                (model.entries[c as usize].clone(), confidence)
            })
            .collect()
    }

    fn similarity(&self, a: &str, b: &str) -> Option<f32> {
        let a: String = a.chars().take(MAX_QUERY_CHARS).collect();
        let b: String = b.chars().take(MAX_QUERY_CHARS).collect();
        // The visitor's text is not kept; the policy's phrases are (they recur).
        let va = self.embedder.embed_transient(&a).ok()?;
        let vb = self.embedder.embed(&[b.as_str()]).ok()?;
        Some(super::classifier::dot(&va, &vb[0]).clamp(0.0, 1.0))
    }
}

/// The lexical engine, serving because the embedded one could not be had.
#[derive(Debug)]
pub struct Fallback {
    inner: super::lexical::LexicalEngine,
    reason: String,
}

impl Fallback {
    pub fn new(reason: String) -> Self {
        Self {
            inner: super::lexical::LexicalEngine::new(),
            reason,
        }
    }
}

#[async_trait::async_trait]
impl AnswerEngine for Fallback {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn load_site(&self, site_id: Uuid, entries: Vec<KbEntry>) {
        self.inner.load_site(site_id, entries);
    }
    fn entry(&self, site_id: Uuid, entry_id: &str) -> Option<KbEntry> {
        self.inner.entry(site_id, entry_id)
    }
    async fn decide(&self, query: Query<'_>) -> Result<Decision, EngineError> {
        self.inner.decide(query).await
    }
    async fn decide_with(
        &self,
        query: Query<'_>,
        thresholds: Option<Thresholds>,
    ) -> Result<Decision, EngineError> {
        self.inner.decide_with(query, thresholds).await
    }
    fn default_thresholds(&self) -> Thresholds {
        self.inner.default_thresholds()
    }
    fn retrieve(&self, site_id: Uuid, text: &str, k: usize) -> Vec<(KbEntry, f32)> {
        self.inner.retrieve(site_id, text, k)
    }
    fn similarity(&self, a: &str, b: &str) -> Option<f32> {
        self.inner.similarity(a, b)
    }
    fn fallback_reason(&self) -> Option<String> {
        Some(self.reason.clone())
    }
}

/// Everyday questions no support site answers (`out_of_scope.txt`, written for this project):
/// every site's classifier learns them as out of scope, so that its calibration sees
/// negatives and off-topic questions are handed over rather than matched to the nearest entry.
pub fn builtin_out_of_scope() -> Vec<String> {
    include_str!("out_of_scope.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Models already loaded in this process, by directory (test servers share one).
static LOADED: std::sync::Mutex<Option<HashMap<std::path::PathBuf, Arc<Embedder>>>> =
    std::sync::Mutex::new(None);

/// Loads the model of `dir` once per process.
pub fn shared_embedder(dir: &Path) -> anyhow::Result<Arc<Embedder>> {
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let map = loaded.get_or_insert_with(HashMap::new);
    if let Some(e) = map.get(dir) {
        return Ok(e.clone());
    }
    let e = Arc::new(Embedder::load(dir)?);
    map.insert(dir.to_owned(), e.clone());
    Ok(e)
}

/// The server's engine: the embedded one with the model in `model_dir` (default:
/// [`super::embed::default_model_dir`]), or the lexical engine when the model cannot be loaded
/// (the reason is logged and reported by `/api/v1/health`). Blocking (reads the model).
pub fn server_engine(model_dir: Option<&Path>) -> Arc<dyn AnswerEngine> {
    let dir = model_dir
        .map(Path::to_path_buf)
        .or_else(super::embed::default_model_dir);
    let result = match &dir {
        Some(dir) => shared_embedder(dir).map_err(|e| format!("{e:#}")),
        None => Err("no model directory (set NEXUS_FLOW_MODEL_DIR or HOME)".to_owned()),
    };
    match result {
        Ok(embedder) => {
            tracing::info!(
                model = %dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default(),
                precision = embedder.precision().as_str(),
                "answer engine: all-MiniLM-L6-v2 embeddings"
            );
            Arc::new(
                SemanticEngine::with_embedder(embedder)
                    .with_out_of_scope_examples(builtin_out_of_scope()),
            )
        }
        Err(reason) => {
            let reason = format!("the embedding model could not be loaded: {reason}");
            tracing::warn!(
                %reason,
                "answer engine: lexical (run `cargo xtask setup` to fetch the model)"
            );
            Arc::new(Fallback::new(reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, escalate: Option<HandoffReason>) -> KbEntry {
        KbEntry {
            url: None,
            id: id.into(),
            title: format!("Title {id}"),
            answer: format!("Answer {id}"),
            examples: vec![format!("question {id}")],
            escalate,
        }
    }

    fn model() -> SiteModel {
        let entries = vec![
            entry("refund", None),
            entry("cancel", None),
            entry("track", None),
            entry(
                "complaint",
                Some(HandoffReason::Sensitive {
                    category: "complaint".into(),
                }),
            ),
        ];
        let dim = 4;
        let mut vectors = Vec::new();
        let mut labels = Vec::new();
        for i in 0..4u32 {
            let mut v = vec![0.0; dim];
            v[i as usize] = 1.0;
            vectors.extend(v);
            labels.push(Label::Class(i));
        }
        SiteModel::new(entries, Classifier::new(dim, vectors, labels))
    }

    fn ranking(classes: &[(u32, f32)], oos: Option<f32>, confidence: f32, cover: f32) -> Ranking {
        Ranking {
            classes: classes.to_vec(),
            candidates: Vec::new(),
            oos,
            confidence,
            cover,
        }
    }

    const T: Thresholds = DEFAULT_THRESHOLDS;

    #[test]
    fn a_passage_is_found_by_its_title_and_its_text_in_whole_sentences() {
        let passage = KbEntry {
            url: Some("https://shop.example/help/shipping".into()),
            id: "shipping#times".into(),
            title: "Shipping › Delivery times".into(),
            answer: "## Delivery times\nOrders ship within 24 hours. Delivery takes 2–3 business \
                     days in Germany.\n- Express: next day for {{Express Fee}}."
                .into(),
            examples: Vec::new(),
            escalate: None,
        };
        let texts = entry_texts(&passage);
        assert_eq!(texts[0], "Shipping › Delivery times");
        let body = texts[1..].join(" ");
        assert!(
            body.contains("Delivery takes 2–3 business days in Germany."),
            "{texts:?}"
        );
        assert!(
            body.contains("Express: next day for Express Fee."),
            "{texts:?}"
        );
        assert!(!body.contains('#') && !body.contains("{{"), "{texts:?}");
        // A long text is cut at sentence ends, into at most MAX_CHUNKS pieces.
        let long = "This sentence is about forty characters. ".repeat(100);
        let pieces = chunks(&long);
        assert!(
            pieces
                .iter()
                .all(|p| p.ends_with('.') && p.len() <= CHUNK_CHARS)
        );
        let many = KbEntry {
            answer: long,
            ..passage
        };
        assert_eq!(entry_texts(&many).len(), 1 + MAX_CHUNKS);
    }

    #[test]
    fn an_entry_with_enough_example_questions_is_found_by_them_alone() {
        let mut e = entry("refund", None);
        e.examples = vec!["a".into(), "b".into(), "c".into()];
        assert_eq!(entry_texts(&e), ["a", "b", "c"]);
        // A plain FAQ (one question) is found by its answer's text too.
        e.examples.truncate(1);
        assert_eq!(entry_texts(&e), ["a", "Title refund", "Answer refund"]);
    }

    #[test]
    fn confident_questions_are_answered_from_the_best_entry() {
        let r = ranking(&[(1, 0.9), (0, 0.5)], Some(0.3), 0.98, 0.99);
        match SemanticEngine::decide_ranked(&model(), &r, &T, "cancel it") {
            Decision::Answer { source, body, .. } => {
                assert_eq!(source.entry_id, "cancel");
                assert_eq!(body, "Answer cancel");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn near_ties_ask_which_one_is_meant() {
        let r = ranking(&[(0, 0.71), (1, 0.70), (2, 0.69), (3, 0.4)], None, 0.4, 0.9);
        match SemanticEngine::decide_ranked(&model(), &r, &T, "money back or cancel?") {
            Decision::Clarify { choices, .. } => {
                let ids: Vec<&str> = choices.iter().map(|c| c.id.as_str()).collect();
                assert_eq!(ids, ["refund", "cancel", "track"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsure_even_among_the_best_three_hands_over() {
        let r = ranking(&[(0, 0.71), (1, 0.50), (2, 0.45)], None, 0.4, 0.6);
        assert!(matches!(
            SemanticEngine::decide_ranked(&model(), &r, &T, "q"),
            Decision::Escalate {
                reason: HandoffReason::LowConfidence,
                ..
            }
        ));
    }

    #[test]
    fn closer_to_out_of_scope_examples_hands_over_as_out_of_scope() {
        let r = ranking(&[(0, 0.5), (1, 0.45)], Some(0.6), 0.9, 0.95);
        assert!(matches!(
            SemanticEngine::decide_ranked(&model(), &r, &T, "what's the weather"),
            Decision::Escalate {
                reason: HandoffReason::OutOfScope,
                ..
            }
        ));
        let r = ranking(&[(0, 0.2), (1, 0.1)], None, 0.05, 0.1);
        assert!(matches!(
            SemanticEngine::decide_ranked(&model(), &r, &T, "quantum chromodynamics"),
            Decision::Escalate {
                reason: HandoffReason::OutOfScope,
                ..
            }
        ));
    }

    #[test]
    fn escalating_entries_hand_over_with_their_reason() {
        let r = ranking(&[(3, 0.9), (0, 0.5)], None, 0.98, 0.99);
        assert!(matches!(
            SemanticEngine::decide_ranked(&model(), &r, &T, "this is unacceptable"),
            Decision::Escalate { reason: HandoffReason::Sensitive { category }, .. } if category == "complaint"
        ));
    }

    #[test]
    fn site_thresholds_change_the_decision() {
        let r = ranking(&[(1, 0.8), (0, 0.5)], None, 0.98, 0.985);
        assert!(matches!(
            SemanticEngine::decide_ranked(&model(), &r, &T, "q"),
            Decision::Answer { .. }
        ));
        let strict = Thresholds {
            answer: 0.99,
            clarify_margin: 0.0,
            ..T
        };
        assert!(matches!(
            SemanticEngine::decide_ranked(&model(), &r, &strict, "q"),
            Decision::Escalate { .. }
        ));
    }

    #[test]
    fn a_small_knowledge_base_clarifies_only_when_more_sure() {
        // The right entry is among the best three with probability 0.68: a big knowledge base
        // asks (0.75 − 0.1 ≤ 0.68), one of 5 examples an entry hands over (0.75 − 0.05 > 0.68).
        let r = ranking(&[(0, 0.71), (1, 0.70), (2, 0.69)], None, 0.5, 0.68);
        let big = size_aware(T, 100.0);
        assert_eq!(big, T);
        assert!(matches!(
            SemanticEngine::decide_ranked(&model(), &r, &big, "q"),
            Decision::Clarify { .. }
        ));
        let small = size_aware(T, 5.0);
        assert!((small.clarify_margin - T.clarify_margin / 2.0).abs() < 1e-6);
        assert!(matches!(
            SemanticEngine::decide_ranked(&model(), &r, &small, "q"),
            Decision::Escalate {
                reason: HandoffReason::LowConfidence,
                ..
            }
        ));
        // In between, the margin grows with the examples.
        let mid = size_aware(T, 25.0).clarify_margin;
        assert!(mid > small.clarify_margin && mid < T.clarify_margin);
    }
}
