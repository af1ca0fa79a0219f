//! The answer engine: given a visitor's question and the site's knowledge base, decide whether
//! to answer, ask a clarifying question, or hand the conversation to a person.
//!
//! Engines sit behind [`AnswerEngine`]; the server never knows which one runs. The first
//! implementation is [`lexical::LexicalEngine`] (TF-IDF over the knowledge base's example
//! questions, with a confidence threshold that escalates).

use nexus_shared::{Choice, HandoffReason, Source};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod demo;
pub mod lexical;
pub mod placeholders;

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
}
