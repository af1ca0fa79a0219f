//! The answer engine: given a visitor's question and the site's knowledge base, decide whether
//! to answer, ask a clarifying question, or hand the conversation to a person.
//!
//! Engines sit behind [`AnswerEngine`]; the server never knows which one runs. The first
//! implementation is [`lexical::LexicalEngine`] (TF-IDF over the knowledge base's example
//! questions, with a confidence threshold that escalates).

use nexus_shared::{Choice, HandoffReason, Source};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod classifier;
pub mod demo;
pub mod embed;
pub mod eval;
pub mod lexical;
pub mod llm;
pub mod placeholders;
pub mod semantic;

/// When an engine answers, asks, or hands over (confidences in 0..1). Each engine has its own
/// defaults ([`AnswerEngine::default_thresholds`]); a site's policy may override them per
/// question ([`AnswerEngine::decide_with`]).
pub use lexical::Thresholds;
pub mod policy;

/// One knowledge-base entry: an answer and the questions it answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KbEntry {
    /// Stable id, unique within a site (for the demo KB: the Bitext intent, e.g. `cancel_order`).
    pub id: String,
    /// Short human title, shown as the answer's source ("Cancel an order").
    pub title: String,
    /// The answer text; may contain `{{Placeholder}}`s filled from the site's settings.
    pub answer: String,
    /// Example questions this entry answers.
    pub examples: Vec<String>,
    /// When set, a question matching this entry is handed to a person with this reason
    /// instead of being answered (e.g. `contact_human_agent` → visitor_asked,
    /// `complaint` → sensitive/complaint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate: Option<HandoffReason>,
    /// Where the visitor can read the whole source (the page an article passage comes from);
    /// shown with the answer as its link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What the engine decided about one question.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Answer with `body` (placeholders not yet filled), citing `source`.
    Answer {
        body: String,
        source: Source,
        confidence: f32,
    },
    /// Two or three close candidates: ask the visitor which one they mean.
    Clarify {
        body: String,
        choices: Vec<Choice>,
        confidence: f32,
    },
    /// Hand the conversation to a person.
    Escalate {
        reason: HandoffReason,
        confidence: Option<f32>,
    },
}

/// The question and its context.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub site_id: Uuid,
    pub text: &'a str,
    /// BCP-47-ish locale of the visitor, e.g. `en`, `de-DE`, when known.
    pub locale: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no knowledge base is loaded for site {0}")]
    UnknownSite(Uuid),
    #[error("engine failure: {0}")]
    Failed(String),
}

/// An answer engine. Implementations are cheap to share (`Arc<dyn AnswerEngine>`).
#[async_trait::async_trait]
pub trait AnswerEngine: Send + Sync + 'static {
    /// A short name for logs and `/api/v1/health` (e.g. `"lexical"`).
    fn name(&self) -> &str;

    /// Replaces the knowledge base of a site (called at start and after KB changes).
    fn load_site(&self, site_id: Uuid, entries: Vec<KbEntry>);

    /// Looks up an entry of a site by id (for the `choose` frame of clarify choices).
    fn entry(&self, site_id: Uuid, entry_id: &str) -> Option<KbEntry>;

    /// Decides what to do with one visitor question.
    async fn decide(&self, query: Query<'_>) -> Result<Decision, EngineError>;

    /// The `k` entries closest to a question, best first, with the confidence an answer from
    /// each would have (for the escalation policy's near-tie check and for grounding an LLM).
    /// Engines that cannot rank return nothing.
    fn retrieve(&self, _site_id: Uuid, _text: &str, _k: usize) -> Vec<(KbEntry, f32)> {
        Vec::new()
    }

    /// Semantic similarity (cosine, 0..1) of two texts, for engines that embed; `None` when
    /// the engine cannot tell (the escalation policy then matches phrases lexically).
    fn similarity(&self, _a: &str, _b: &str) -> Option<f32> {
        None
    }

    /// Like [`AnswerEngine::decide`], with the site's thresholds instead of the engine's
    /// defaults. Engines without tunable thresholds ignore them.
    async fn decide_with(
        &self,
        query: Query<'_>,
        thresholds: Option<Thresholds>,
    ) -> Result<Decision, EngineError> {
        let _ = thresholds;
        self.decide(query).await
    }

    /// The thresholds [`AnswerEngine::decide`] uses; what a site's policy starts from.
    fn default_thresholds(&self) -> Thresholds {
        Thresholds::default()
    }

    /// Why this engine serves instead of the preferred one (e.g. the model could not be
    /// loaded), for logs and `/api/v1/health`; `None` when it is the preferred engine.
    fn fallback_reason(&self) -> Option<String> {
        None
    }
}
