//! A site's escalation policy: when the AI hands a conversation to a person instead of
//! answering. Owners edit it through `PATCH /api/v1/site` (`policy`, `learning`).
//!
//! `conversation::visitor::respond` in the server applies it around the answer engine:
//!
//! 1. [`before_engine`] — before any answer is looked for: the visitor asks for a person (the
//!    site's `human_phrases` in any language, plus the built-in recogniser
//!    [`asks_for_human`](super::lexical::asks_for_human)) → `visitor_asked`; a sensitive
//!    category's example phrase matches → `sensitive(category)`; frustration (insults, all
//!    caps, the same question again after an AI answer) → `frustration`.
//! 2. the engine decides with the site's thresholds ([`Policy::thresholds`]: `answer_threshold`,
//!    `clarify_margin`, `out_of_scope_threshold`; 0 keeps the engine's calibrated default);
//! 3. [`after_engine`] — on the engine's decision: an answer below the answer threshold →
//!    `low_confidence` (`out_of_scope` below the out-of-scope one), also for engines that
//!    ignore per-site thresholds; a second clarifying question in a row →
//!    `repeated_failure` ([`REPEATED_FAILURE_TURNS`]); after `max_ai_turns` AI replies every further
//!    reply carries a "Talk to a person" choice ([`PERSON_CHOICE`]). An offer rather than a
//!    forced handoff: a visitor whose questions are being answered keeps getting answers, and
//!    one who wants a person is one click away.
//!
//! A thumbs-down on an AI answer is a frustration signal too (see
//! `learn::feedback` in the server).

use std::collections::BTreeMap;

use nexus_shared::{Author, Choice, ConversationState, HandoffReason, Message};
use serde::{Deserialize, Serialize};

use super::{Decision, Thresholds};

/// The choice id of the "Talk to a person" offer (never a knowledge-base entry id).
pub const PERSON_CHOICE: &str = "nexus:talk_to_person";
/// This many clarifying questions in a row hand the conversation over (`repeated_failure`).
pub const REPEATED_FAILURE_TURNS: usize = 2;
/// With an engine that embeds, a message this similar (cosine) to a sensitive example phrase
/// belongs to its category.
pub const SENSITIVE_SIMILARITY: f32 = 0.75;

const MAX_CATEGORIES: usize = 32;
const MAX_PHRASES: usize = 200;
const MAX_PHRASE_CHARS: usize = 200;
const MAX_LANGUAGES: usize = 32;
const MAX_AI_TURNS_CAP: u32 = 1_000;

/// Whether taught knowledge goes live at once or waits for an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Learning {
    /// A teach or an edited draft becomes knowledge immediately.
    #[default]
    Auto,
    /// Everything learned waits in `/api/v1/kb/pending` for an owner's approval.
    Approve,
}

/// A sensitive category and example phrases of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensitiveCategory {
    pub category: String,
    pub phrases: Vec<String>,
}

/// Which frustration signals hand a conversation over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Frustration {
    /// The same question again right after the AI answered it.
    pub repeat_question: bool,
    /// A thumbs-down on an AI answer.
    pub thumbs_down: bool,
    /// Insults or swearing (English, German, French, Spanish).
    pub insults: bool,
    /// A message written in capitals (shouting).
    pub all_caps: bool,
}

impl Default for Frustration {
    fn default() -> Self {
        Self {
            repeat_question: true,
            thumbs_down: true,
            insults: true,
            all_caps: true,
        }
    }
}

/// The escalation policy of a site (`settings.policy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, try_from = "PolicyUnchecked")]
pub struct Policy {
    /// Answers with a lower confidence are handed over (`low_confidence`). 0 = the engine's
    /// calibrated default.
    pub answer_threshold: f32,
    /// When the runner-up is this close to the best entry, the visitor is asked which one they
    /// mean. 0 = the engine's calibrated default.
    pub clarify_margin: f32,
    /// Below this confidence a question is `out_of_scope`. 0 = the engine's calibrated
    /// default.
    pub out_of_scope_threshold: f32,
    pub sensitive: Vec<SensitiveCategory>,
    /// "Talk to a human" phrases per language code.
    pub human_phrases: BTreeMap<String, Vec<String>>,
    pub frustration: Frustration,
    /// After this many AI replies, replies offer a person. 0 = no cap.
    pub max_ai_turns: u32,
}

/// [`Policy`] as sent, before [`Policy::validate`].
#[derive(Deserialize)]
#[serde(default)]
struct PolicyUnchecked {
    answer_threshold: f32,
    clarify_margin: f32,
    out_of_scope_threshold: f32,
    sensitive: Vec<SensitiveCategory>,
    human_phrases: BTreeMap<String, Vec<String>>,
    frustration: Frustration,
    max_ai_turns: u32,
}

impl Default for PolicyUnchecked {
    fn default() -> Self {
        let p = Policy::default();
        Self {
            answer_threshold: p.answer_threshold,
            clarify_margin: p.clarify_margin,
            out_of_scope_threshold: p.out_of_scope_threshold,
            sensitive: p.sensitive,
            human_phrases: p.human_phrases,
            frustration: p.frustration,
            max_ai_turns: p.max_ai_turns,
        }
    }
}

impl TryFrom<PolicyUnchecked> for Policy {
    type Error = String;

    fn try_from(p: PolicyUnchecked) -> Result<Self, String> {
        let policy = Self {
            answer_threshold: p.answer_threshold,
            clarify_margin: p.clarify_margin,
            out_of_scope_threshold: p.out_of_scope_threshold,
            sensitive: p.sensitive,
            human_phrases: p.human_phrases,
            frustration: p.frustration,
            max_ai_turns: p.max_ai_turns,
        };
        policy.validate()?;
        Ok(policy)
    }
}

fn phrases(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for Policy {
    /// The thresholds are 0: each engine's calibrated defaults apply until the owner sets
    /// their own. The phrases cover English, German, French and Spanish.
    fn default() -> Self {
        let category = |name: &str, list: &[&str]| SensitiveCategory {
            category: name.to_owned(),
            phrases: phrases(list),
        };
        Self {
            answer_threshold: 0.0,
            clarify_margin: 0.0,
            out_of_scope_threshold: 0.0,
            sensitive: vec![
                category(
                    "legal_threat",
                    &[
                        "lawyer",
                        "attorney",
                        "I will sue you",
                        "legal action",
                        "take you to court",
                        "Anwalt",
                        "verklagen",
                        "rechtliche Schritte",
                        "avocat",
                        "poursuivre en justice",
                        "action en justice",
                        "abogado",
                        "demandar",
                        "acciones legales",
                    ],
                ),
                category(
                    "account_security",
                    &[
                        "my account was hacked",
                        "logged into my account",
                        "stolen password",
                        "unauthorized charge",
                        "fraud",
                        "Konto gehackt",
                        "Betrug",
                        "compte piraté",
                        "fraude",
                        "cuenta hackeada",
                    ],
                ),
                category(
                    "complaint",
                    &[
                        "I want to make a complaint",
                        "file a complaint",
                        "complain",
                        "Beschwerde",
                        "beschweren",
                        "porter plainte",
                        "réclamation",
                        "queja",
                        "reclamación",
                    ],
                ),
                category(
                    "refund_over_limit",
                    &[
                        "chargeback",
                        "dispute the charge",
                        "large refund",
                        "refund of over",
                        "Rückbuchung",
                        "rétrofacturation",
                        "contracargo",
                    ],
                ),
                category(
                    "health_safety",
                    &[
                        "allergic reaction",
                        "injured",
                        "caught fire",
                        "food poisoning",
                        "allergische Reaktion",
                        "verletzt",
                        "Lebensmittelvergiftung",
                        "réaction allergique",
                        "blessé",
                        "intoxication alimentaire",
                        "reacción alérgica",
                        "herido",
                        "intoxicación alimentaria",
                    ],
                ),
            ],
            human_phrases: BTreeMap::from([
                (
                    "en".to_owned(),
                    phrases(&[
                        "talk to a human",
                        "speak to a person",
                        "real person",
                        "human agent",
                        "customer service representative",
                        "talk to someone",
                    ]),
                ),
                (
                    "de".to_owned(),
                    phrases(&[
                        "mit einem Menschen sprechen",
                        "echte Person",
                        "mit einem Mitarbeiter sprechen",
                        "mit jemandem sprechen",
                    ]),
                ),
                (
                    "fr".to_owned(),
                    phrases(&[
                        "parler à un humain",
                        "parler à une personne",
                        "parler à un conseiller",
                        "vraie personne",
                    ]),
                ),
                (
                    "es".to_owned(),
                    phrases(&[
                        "hablar con una persona",
                        "hablar con un humano",
                        "agente humano",
                        "persona real",
                    ]),
                ),
            ]),
            frustration: Frustration::default(),
            max_ai_turns: 8,
        }
    }
}

impl Policy {
    /// The thresholds to decide with: the site's where set, the engine's defaults elsewhere.
    /// `None` when the site sets none (the engine decides as it would by default).
    pub fn thresholds(&self, engine: Thresholds) -> Option<Thresholds> {
        if self.answer_threshold == 0.0
            && self.clarify_margin == 0.0
            && self.out_of_scope_threshold == 0.0
        {
            return None;
        }
        let or = |site: f32, default: f32| if site > 0.0 { site } else { default };
        let answer = or(self.answer_threshold, engine.answer);
        Some(Thresholds {
            answer,
            clarify_margin: or(self.clarify_margin, engine.clarify_margin),
            out_of_scope: or(self.out_of_scope_threshold, engine.out_of_scope).min(answer),
            max_choices: engine.max_choices,
        })
    }

    /// Does any sensitive example need the engine's similarity (a sentence, not a key phrase)?
    pub fn uses_similarity(&self) -> bool {
        self.sensitive
            .iter()
            .flat_map(|c| &c.phrases)
            .any(|p| content_words(p) >= SENTENCE_WORDS)
    }

    /// Checks the policy an owner sends; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("answer_threshold", self.answer_threshold),
            ("clarify_margin", self.clarify_margin),
            ("out_of_scope_threshold", self.out_of_scope_threshold),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("policy.{name} must be between 0 and 1."));
            }
        }
        if self.answer_threshold > 0.0 && self.out_of_scope_threshold > self.answer_threshold {
            return Err(
                "policy.out_of_scope_threshold must not be above policy.answer_threshold.".into(),
            );
        }
        if self.sensitive.len() > MAX_CATEGORIES {
            return Err(format!(
                "policy.sensitive may have at most {MAX_CATEGORIES} categories."
            ));
        }
        for c in &self.sensitive {
            let name_ok = !c.category.is_empty()
                && c.category.len() <= 64
                && c.category
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
            if !name_ok {
                return Err(format!(
                    "policy.sensitive: the category {:?} must be 1 to 64 characters of a-z, 0-9 \
                     and _.",
                    c.category
                ));
            }
            check_phrases(&format!("policy.sensitive {:?}", c.category), &c.phrases)?;
        }
        if self.human_phrases.len() > MAX_LANGUAGES {
            return Err(format!(
                "policy.human_phrases may have at most {MAX_LANGUAGES} languages."
            ));
        }
        for (language, list) in &self.human_phrases {
            let code_ok = (2..=8).contains(&language.len())
                && language
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch == '-');
            if !code_ok {
                return Err(format!(
                    "policy.human_phrases: {language:?} is not a language code like \"en\"."
                ));
            }
            check_phrases(&format!("policy.human_phrases {language:?}"), list)?;
        }
        if self.max_ai_turns > MAX_AI_TURNS_CAP {
            return Err(format!(
                "policy.max_ai_turns must be at most {MAX_AI_TURNS_CAP} (0 = no cap)."
            ));
        }
        Ok(())
    }
}

fn check_phrases(what: &str, list: &[String]) -> Result<(), String> {
    if list.is_empty() || list.len() > MAX_PHRASES {
        return Err(format!("{what} needs 1 to {MAX_PHRASES} phrases."));
    }
    for phrase in list {
        let n = phrase.trim().chars().count();
        if n == 0 || n > MAX_PHRASE_CHARS || normalise(phrase).is_empty() {
            return Err(format!(
                "{what}: every phrase needs 1 to {MAX_PHRASE_CHARS} characters with a word in \
                 it."
            ));
        }
    }
    Ok(())
}

/// How a message is compared with an example phrase. The default is lexical
/// ([`phrase_matches`]); an engine that embeds passes its similarity (cosine, 0..1) and a
/// sentence-like example ([`SENTENCE_WORDS`]) at least [`SENSITIVE_SIMILARITY`] alike matches
/// as well.
pub type Similarity<'a> = &'a (dyn Fn(&str, &str) -> Option<f32> + Sync);

/// The similarity of an engine that cannot embed.
pub fn no_similarity(_: &str, _: &str) -> Option<f32> {
    None
}

/// Example phrases with at least this many content words are sentences, compared by the
/// engine's similarity as well; shorter ones are key phrases, matched lexically only.
/// Sentence embeddings of a key phrase separate poorly (measured with all-MiniLM-L6-v2:
/// "Can I get a refund?" is 0.64 alike "refund of several hundred", "I will take legal steps"
/// 0.65 alike "legal action"), and every comparison embeds the message once more.
pub const SENTENCE_WORDS: usize = 4;

fn content_words(phrase: &str) -> usize {
    normalise(phrase)
        .split(' ')
        .filter(|w| !w.is_empty() && !STOP_WORDS.contains(w))
        .count()
}

/// Is `text` an instance of the example `phrase`?
pub fn matches(text: &str, phrase: &str, similarity: Similarity<'_>) -> bool {
    phrase_matches(text, phrase)
        || (content_words(phrase) >= SENTENCE_WORDS
            && similarity(text, phrase).is_some_and(|s| s >= SENSITIVE_SIMILARITY))
}

/// Lexical match: every content word of the phrase occurs in the text, compared after lower
/// casing and accent folding; a long word also matches its other forms (`lawyer` ↔
/// `lawyers`, `hacked` ↔ `hacking`).
pub fn phrase_matches(text: &str, phrase: &str) -> bool {
    let text = normalise(text);
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    let phrase = normalise(phrase);
    let mut wanted = phrase
        .split(' ')
        .filter(|w| !w.is_empty() && !STOP_WORDS.contains(w))
        .peekable();
    if wanted.peek().is_none() {
        return false;
    }
    wanted.all(|want| words.iter().any(|have| same_word(have, want)))
}

fn same_word(have: &str, want: &str) -> bool {
    if have == want {
        return true;
    }
    let n = want.chars().count();
    if n < 5 || have.chars().count() < 5 {
        return false;
    }
    let stem: String = want.chars().take(n.saturating_sub(2).max(4)).collect();
    have.starts_with(&stem)
}

/// Words that carry no meaning of their own in a phrase ("I want to make a complaint" needs
/// only "make" and "complaint").
const STOP_WORDS: &[&str] = &[
    "i", "a", "an", "the", "to", "my", "me", "you", "your", "it", "is", "was", "of", "for", "and",
    "want", "will", "ein", "eine", "einen", "einem", "mit", "ich", "mein", "meine", "mich", "der",
    "die", "das", "un", "une", "le", "la", "les", "de", "mon", "ma", "je", "el", "los", "las",
    "una", "mi", "yo", "con",
];

/// Lower case, accents folded, anything but letters and digits a single space.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars().take(2_000) {
        if matches!(c, '\'' | '’') {
            continue;
        }
        if c.is_alphanumeric() {
            for lower in c.to_lowercase() {
                match fold(lower) {
                    Some(folded) => out.push_str(folded),
                    None => out.push(lower),
                }
            }
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
        'ç' => "c",
        'è' | 'é' | 'ê' | 'ë' => "e",
        'ì' | 'í' | 'î' | 'ï' => "i",
        'ñ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' => "o",
        'ù' | 'ú' | 'û' | 'ü' => "u",
        'ß' => "ss",
        'œ' => "oe",
        'æ' => "ae",
        _ => return None,
    })
}

/// Insults and swearing in English, German, French and Spanish (accent-folded).
const INSULTS: &[&str] = &[
    "idiot",
    "idiots",
    "stupid",
    "useless",
    "moron",
    "dumb",
    "crap",
    "shit",
    "bullshit",
    "wtf",
    "pathetic",
    "incompetent",
    "dumm",
    "blod",
    "bloder",
    "scheisse",
    "scheiss",
    "nutzlos",
    "unfahig",
    "verdammt",
    "stupide",
    "merde",
    "debile",
    "connard",
    "idiota",
    "estupido",
    "estupida",
    "mierda",
    "imbecil",
    "tonto",
];

/// Insults or swearing in the message?
pub fn insults(text: &str) -> bool {
    normalise(text)
        .split(' ')
        .any(|w| INSULTS.contains(&w) || w.starts_with("fuck") || w.starts_with("asshole"))
}

/// Written in capitals: at least 10 cased letters in at least two words, 80 % of them upper
/// case ("WHERE IS MY ORDER").
pub fn all_caps(text: &str) -> bool {
    let words = text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphabetic));
    if words.count() < 2 {
        return false;
    }
    let (mut upper, mut cased) = (0usize, 0usize);
    for c in text.chars() {
        if c.is_uppercase() {
            upper += 1;
            cased += 1;
        } else if c.is_lowercase() {
            cased += 1;
        }
    }
    cased >= 10 && upper * 5 >= cased * 4
}

/// Does the visitor ask for a person (the site's phrases in any language, or the built-in
/// recogniser)?
pub fn asks_for_person(policy: &Policy, text: &str) -> bool {
    super::lexical::asks_for_human(text)
        || policy
            .human_phrases
            .values()
            .flatten()
            .any(|phrase| contains_sequence(text, phrase))
}

/// The phrase's words, in order and adjacent, somewhere in the text.
fn contains_sequence(text: &str, phrase: &str) -> bool {
    let text = normalise(text);
    let phrase = normalise(phrase);
    if phrase.is_empty() {
        return false;
    }
    format!(" {text} ").contains(&format!(" {phrase} "))
}

/// The sensitive category the message belongs to, if any.
pub fn sensitive_category(
    policy: &Policy,
    text: &str,
    similarity: Similarity<'_>,
) -> Option<String> {
    policy
        .sensitive
        .iter()
        .find(|c| c.phrases.iter().any(|p| matches(text, p, similarity)))
        .map(|c| c.category.clone())
}

/// Words shared by two questions, relative to all their words (Jaccard, 0..1).
fn overlap(a: &str, b: &str) -> f32 {
    let a = normalise(a);
    let b = normalise(b);
    let a: std::collections::BTreeSet<&str> = a.split(' ').filter(|w| !w.is_empty()).collect();
    let b: std::collections::BTreeSet<&str> = b.split(' ').filter(|w| !w.is_empty()).collect();
    let union = a.union(&b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(&b).count() as f32 / union as f32
}

/// The entries of the current AI stint: everything after the last time the conversation
/// (re)entered the AI state (a hand-back or a reopen start a fresh count).
fn current_stint(history: &[Message]) -> &[Message] {
    let start = history
        .iter()
        .rposition(|m| {
            m.event
                .as_ref()
                .is_some_and(|e| e.to == ConversationState::Ai && e.from != ConversationState::Ai)
        })
        .map_or(0, |i| i + 1);
    &history[start..]
}

/// Is this visitor message the same question as one the AI already answered? Only the
/// latest three answered questions count.
fn repeats_answered_question(history: &[Message], text: &str) -> bool {
    let stint = current_stint(history);
    let mut answered = 0;
    for (i, m) in stint.iter().enumerate().rev() {
        if m.author != Author::Visitor {
            continue;
        }
        let answer_followed = stint[i + 1..]
            .iter()
            .take_while(|n| n.author != Author::Visitor)
            .any(is_answer);
        if !answer_followed {
            continue;
        }
        if overlap(&m.body, text) >= 0.75 {
            return true;
        }
        answered += 1;
        if answered == 3 {
            break;
        }
    }
    false
}

/// The checks made before the engine looks for an answer. `history` is the conversation
/// before this question, oldest first.
pub fn before_engine(
    policy: &Policy,
    text: &str,
    history: &[Message],
    similarity: Similarity<'_>,
) -> Option<HandoffReason> {
    if asks_for_person(policy, text) {
        return Some(HandoffReason::VisitorAsked);
    }
    if let Some(category) = sensitive_category(policy, text, similarity) {
        return Some(HandoffReason::Sensitive { category });
    }
    let f = &policy.frustration;
    if (f.insults && insults(text))
        || (f.all_caps && all_caps(text))
        || (f.repeat_question && repeats_answered_question(history, text))
    {
        return Some(HandoffReason::Frustration);
    }
    None
}

/// The policy's verdict on the engine's decision, made with `thresholds` (the ones the engine
/// was asked to use: an engine that cannot honour them is held to them here).
pub fn after_engine(decision: Decision, thresholds: &Thresholds, history: &[Message]) -> Decision {
    let below = |confidence: f32| {
        if confidence < thresholds.out_of_scope {
            Some(HandoffReason::OutOfScope)
        } else if confidence < thresholds.answer {
            Some(HandoffReason::LowConfidence)
        } else {
            None
        }
    };
    match &decision {
        // A clarifying question is the engine's call (it may ask below its answer threshold
        // when the close candidates together cover the question).
        Decision::Answer { confidence, .. } => {
            if let Some(reason) = below(*confidence) {
                return Decision::Escalate {
                    reason,
                    confidence: Some(*confidence),
                };
            }
        }
        Decision::Clarify { .. } => {}
        Decision::Escalate { .. } => return decision,
    }
    if matches!(decision, Decision::Clarify { .. }) {
        let clarified_before = current_stint(history)
            .iter()
            .rev()
            .filter(|m| m.author == Author::Ai)
            .take_while(|m| is_clarify(m))
            .count();
        if clarified_before + 1 >= REPEATED_FAILURE_TURNS {
            return Decision::Escalate {
                reason: HandoffReason::RepeatedFailure,
                confidence: None,
            };
        }
    }
    decision
}

/// An AI message that asks which entry the visitor means (the "Talk to a person" offer alone
/// does not count).
pub fn is_clarify(message: &Message) -> bool {
    message.author == Author::Ai && message.choices.iter().any(|c| c.id != PERSON_CHOICE)
}

/// An AI answer from the knowledge base (possibly with the "Talk to a person" offer).
pub fn is_answer(message: &Message) -> bool {
    message.author == Author::Ai && !message.sources.is_empty() && !is_clarify(message)
}

/// Has the AI replied `max_ai_turns` times in this stint, so replies should offer a person?
pub fn offer_person(policy: &Policy, history: &[Message]) -> bool {
    policy.max_ai_turns > 0
        && current_stint(history)
            .iter()
            .filter(|m| m.author == Author::Ai)
            .count()
            >= policy.max_ai_turns as usize
}

/// The "Talk to a person" choice in the visitor's language.
pub fn person_choice(locale: Option<&str>) -> Choice {
    let label = match language(locale) {
        "de" => "Mit einem Menschen sprechen",
        "fr" => "Parler à une personne",
        "es" => "Hablar con una persona",
        _ => "Talk to a person",
    };
    Choice {
        id: PERSON_CHOICE.to_owned(),
        label: label.to_owned(),
    }
}

fn language(locale: Option<&str>) -> &str {
    locale
        .and_then(|l| l.split(['-', '_']).next())
        .unwrap_or("en")
}

#[cfg(test)]
mod tests {
    use nexus_shared::{Source, StateChange, Transition};
    use uuid::Uuid;

    use super::*;

    fn check(text: &str) -> Option<HandoffReason> {
        before_engine(&Policy::default(), text, &[], &no_similarity)
    }

    fn message(seq: u64, author: Author, body: &str) -> Message {
        Message {
            id: Uuid::new_v4(),
            conversation_id: Uuid::nil(),
            seq,
            client_msg_id: None,
            author,
            body: body.into(),
            created_at: 0,
            sources: vec![],
            confidence: None,
            choices: vec![],
            event: None,
        }
    }

    fn answer(seq: u64, body: &str) -> Message {
        Message {
            sources: vec![Source {
                entry_id: "e".into(),
                title: "E".into(),
                url: None,
            }],
            confidence: Some(0.9),
            ..message(seq, Author::Ai, body)
        }
    }

    fn clarify(seq: u64) -> Message {
        Message {
            choices: vec![
                Choice {
                    id: "a".into(),
                    label: "A".into(),
                },
                Choice {
                    id: "b".into(),
                    label: "B".into(),
                },
            ],
            ..message(seq, Author::Ai, "Do you mean one of these?")
        }
    }

    fn answer_decision(confidence: f32) -> Decision {
        Decision::Answer {
            body: "Yes.".into(),
            source: Source {
                entry_id: "a".into(),
                title: "A".into(),
                url: None,
            },
            confidence,
        }
    }

    fn clarify_decision() -> Decision {
        Decision::Clarify {
            body: "Which?".into(),
            choices: vec![],
            confidence: 0.8,
        }
    }

    fn reason(decision: &Decision) -> Option<&HandoffReason> {
        match decision {
            Decision::Escalate { reason, .. } => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn a_request_for_a_person_escalates_in_every_language() {
        for text in [
            "Can I talk to a human please",
            "I need a customer service representative",
            "Ich möchte mit einem Menschen sprechen",
            "Kann ich mit einem Mitarbeiter sprechen?",
            "Je voudrais parler à un conseiller",
            "Puis-je parler à une personne ?",
            "Quiero hablar con una persona",
            "necesito un agente humano",
        ] {
            assert_eq!(check(text), Some(HandoffReason::VisitorAsked), "{text}");
        }
        assert_eq!(check("How do I track my order?"), None);
        assert_eq!(check("Wo ist meine Bestellung?"), None);
    }

    #[test]
    fn the_sites_own_human_phrases_count() {
        let mut policy = Policy::default();
        policy
            .human_phrases
            .insert("nl".into(), vec!["met een medewerker".into()]);
        let asked = before_engine(
            &policy,
            "Kan ik met een medewerker praten?",
            &[],
            &no_similarity,
        );
        assert_eq!(asked, Some(HandoffReason::VisitorAsked));
    }

    #[test]
    fn sensitive_categories_escalate_in_several_languages() {
        let cases = [
            ("My lawyers will hear about this", "legal_threat"),
            ("Ich werde Sie verklagen", "legal_threat"),
            ("Je vais contacter mon avocat", "legal_threat"),
            ("My account was hacked yesterday", "account_security"),
            ("Mein Konto wurde gehackt", "account_security"),
            ("I want to make a complaint about the delivery", "complaint"),
            ("Ich möchte eine Beschwerde einreichen", "complaint"),
            ("Quiero poner una queja", "complaint"),
            ("I'll file a chargeback with my bank", "refund_over_limit"),
            (
                "My son had an allergic reaction to the cookies",
                "health_safety",
            ),
            ("Mi hijo tuvo una reacción alérgica", "health_safety"),
        ];
        for (text, category) in cases {
            assert_eq!(
                check(text),
                Some(HandoffReason::Sensitive {
                    category: category.into()
                }),
                "{text}"
            );
        }
        assert_eq!(check("Can I change my delivery address?"), None);
    }

    #[test]
    fn an_embedding_similarity_plugs_into_sensitive_matching() {
        let similar = |text: &str, phrase: &str| -> Option<f32> {
            (text.contains("solicitor") && phrase == "my lawyer is preparing a letter about this")
                .then_some(0.9)
        };
        let mut policy = Policy::default();
        assert!(!policy.uses_similarity(), "the defaults are key phrases");
        policy.sensitive[0]
            .phrases
            .push("my lawyer is preparing a letter about this".into());
        assert!(policy.uses_similarity());
        let decided = before_engine(&policy, "my solicitor is writing to you", &[], &similar);
        assert_eq!(
            decided,
            Some(HandoffReason::Sensitive {
                category: "legal_threat".into()
            })
        );
    }

    #[test]
    fn insults_and_shouting_are_frustration() {
        for text in [
            "this bot is useless",
            "you stupid machine",
            "Du bist echt dumm",
            "so ein Scheiß",
            "c'est de la merde",
            "eres un idiota",
            "WHERE IS MY ORDER",
            "WO IST MEIN PAKET",
        ] {
            assert_eq!(check(text), Some(HandoffReason::Frustration), "{text}");
        }
        for text in ["Where is my order?", "Is UPS or DHL used?", "OK", "FAQ"] {
            assert_eq!(check(text), None, "{text}");
        }
        let mut policy = Policy::default();
        policy.frustration.all_caps = false;
        policy.frustration.insults = false;
        assert_eq!(
            before_engine(&policy, "WHERE IS MY ORDER", &[], &no_similarity),
            None
        );
        assert_eq!(
            before_engine(&policy, "this bot is useless", &[], &no_similarity),
            None
        );
    }

    #[test]
    fn the_same_question_after_an_answer_is_frustration() {
        for (first, again) in [
            ("How do I cancel my order?", "how do i cancel my order"),
            (
                "Wie kann ich meine Bestellung stornieren?",
                "Wie kann ich meine Bestellung stornieren??",
            ),
        ] {
            let history = vec![
                message(1, Author::Visitor, first),
                answer(2, "Go to your orders."),
            ];
            assert_eq!(
                before_engine(&Policy::default(), again, &history, &no_similarity),
                Some(HandoffReason::Frustration),
                "{again}"
            );
            // Not answered yet (a clarifying question): asking again is no sign of anything.
            let history = vec![message(1, Author::Visitor, first), clarify(2)];
            assert_eq!(
                before_engine(&Policy::default(), again, &history, &no_similarity),
                None
            );
        }
        let history = vec![
            message(1, Author::Visitor, "How do I cancel my order?"),
            answer(2, "Go to your orders."),
        ];
        assert_eq!(
            before_engine(
                &Policy::default(),
                "And how do I change my address?",
                &history,
                &no_similarity
            ),
            None
        );
    }

    #[test]
    fn thresholds_are_the_sites_to_choose() {
        let engine = Thresholds::default();
        let mut policy = Policy::default();
        assert_eq!(
            policy.thresholds(engine),
            None,
            "the engine's own by default"
        );
        let t = engine;
        let decided = after_engine(answer_decision(0.6), &t, &[]);
        assert!(matches!(decided, Decision::Answer { .. }));
        policy.answer_threshold = 0.7;
        let t = policy.thresholds(engine).unwrap();
        assert_eq!(t.answer, 0.7);
        assert_eq!(t.clarify_margin, engine.clarify_margin);
        let decided = after_engine(answer_decision(0.6), &t, &[]);
        assert_eq!(reason(&decided), Some(&HandoffReason::LowConfidence));
        policy.out_of_scope_threshold = 0.65;
        let t = policy.thresholds(engine).unwrap();
        let decided = after_engine(answer_decision(0.6), &t, &[]);
        assert_eq!(reason(&decided), Some(&HandoffReason::OutOfScope));
    }

    #[test]
    fn a_second_clarifying_question_in_a_row_is_repeated_failure() {
        let t = Thresholds::default();
        let history = vec![message(1, Author::Visitor, "hmm"), clarify(2)];
        let decided = after_engine(clarify_decision(), &t, &history);
        assert_eq!(reason(&decided), Some(&HandoffReason::RepeatedFailure));
        let history = vec![
            message(1, Author::Visitor, "hmm"),
            clarify(2),
            message(3, Author::Visitor, "the first"),
            answer(4, "Here."),
        ];
        let decided = after_engine(clarify_decision(), &t, &history);
        assert!(matches!(decided, Decision::Clarify { .. }));
    }

    #[test]
    fn after_the_cap_replies_offer_a_person() {
        let policy = Policy {
            max_ai_turns: 2,
            ..Policy::default()
        };
        let mut history = vec![message(1, Author::Visitor, "q"), answer(2, "a")];
        assert!(!offer_person(&policy, &history));
        history.push(message(3, Author::Visitor, "q2"));
        history.push(answer(4, "a2"));
        assert!(offer_person(&policy, &history));
        assert_eq!(person_choice(Some("fr-FR")).label, "Parler à une personne");
        assert_eq!(person_choice(None).label, "Talk to a person");
        // A hand-back starts a fresh count.
        let mut back = message(5, Author::System, "You're back with the assistant.");
        back.event = Some(StateChange {
            from: ConversationState::Human,
            to: ConversationState::Ai,
            cause: Transition::HandedBack {
                agent: nexus_shared::AgentRef {
                    id: Uuid::nil(),
                    name: "Ana".into(),
                },
            },
        });
        history.push(back);
        assert!(!offer_person(&policy, &history));
        assert!(!offer_person(
            &Policy {
                max_ai_turns: 0,
                ..Policy::default()
            },
            &history[..4]
        ));
    }

    #[test]
    fn invalid_policies_are_refused_with_a_reason() {
        let parse = |json: &str| serde_json::from_str::<Policy>(json);
        assert!(parse("{}").is_ok());
        assert_eq!(parse("{}").unwrap(), Policy::default());
        for bad in [
            r#"{"answer_threshold": 1.5}"#,
            r#"{"clarify_margin": -0.1}"#,
            r#"{"answer_threshold": 0.3, "out_of_scope_threshold": 0.5}"#,
            r#"{"sensitive": [{"category": "legal", "phrases": []}]}"#,
            r#"{"sensitive": [{"category": "Legal Threat", "phrases": ["x"]}]}"#,
            r#"{"human_phrases": {"en": ["  "]}}"#,
            r#"{"human_phrases": {"EN!": ["human"]}}"#,
            r#"{"max_ai_turns": 100000}"#,
        ] {
            let err = parse(bad).expect_err(bad).to_string();
            assert!(err.contains("policy."), "{bad}: {err}");
        }
    }
}
