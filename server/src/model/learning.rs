//! Learned knowledge waiting for an owner's review, and where it came from.

use nexus_shared::Millis;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where learned knowledge came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// An agent resolved a conversation and taught its answer.
    Teach,
    /// An agent edited an AI draft in review mode.
    DraftEdit,
    /// A visitor gave an AI answer a thumbs-down.
    ThumbsDown,
    /// Drafted from a knowledge gap: questions that went to people and the agents' reply.
    Gap,
}

impl Origin {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Teach => "teach",
            Self::DraftEdit => "draft_edit",
            Self::ThumbsDown => "thumbs_down",
            Self::Gap => "gap",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "teach" => Some(Self::Teach),
            "draft_edit" => Some(Self::DraftEdit),
            "thumbs_down" => Some(Self::ThumbsDown),
            "gap" => Some(Self::Gap),
            _ => None,
        }
    }
}

/// Learned knowledge waiting for an owner's review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingEntry {
    pub id: Uuid,
    pub question: String,
    pub answer: String,
    /// The existing entry it would extend (the question becomes one of its examples).
    pub entry_id: Option<String>,
    pub conversation_id: Option<Uuid>,
    pub origin: Origin,
    pub created_at: Millis,
}

/// A visitor's question with the personal data in it replaced, and what was replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    pub text: String,
    /// Each replaced piece and the placeholder it became, e.g. `("pmark7731", "[order number]")`.
    pub replaced: Vec<(String, &'static str)>,
}

/// Words after which the next word with a digit in it is an order (or ticket, invoice …) id.
const ORDER_WORDS: [&str; 12] = [
    "order",
    "orders",
    "bestellung",
    "commande",
    "pedido",
    "invoice",
    "ticket",
    "booking",
    "reservation",
    "tracking",
    "rechnung",
    "factura",
];
/// Words that may stand between an order word and its id ("order number 123", "order #123").
const ORDER_FILLERS: [&str; 8] = ["number", "no", "no.", "nr", "nr.", "#", "id", "is"];

/// Replaces the personal data in a visitor's question before it can become knowledge shown to
/// other visitors: email addresses (`[email]`), phone numbers (`[phone]`: seven digits or
/// more, in groups), card numbers (`[card number]`: 13 to 19 digits), the id after an order
/// word (`[order number]`, as in "order pmark7731") and any other word with four digits or
/// more (`[number]`). Whitespace becomes single spaces. It errs on the side of masking: a
/// year in a question becomes `[number]`.
pub fn mask_personal(text: &str) -> Masked {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut replaced = Vec::new();
    let mut after_order = false;
    let mut i = 0;
    while i < words.len() {
        let (lead, core, trail) = split_punctuation(words[i]);
        let lower = core.to_lowercase();
        let mut mask = |piece: String, placeholder: &'static str, trail: &str| {
            out.push(format!("{lead}{placeholder}{trail}"));
            replaced.push((piece, placeholder));
        };
        if is_email(core) {
            mask(core.to_owned(), "[email]", trail);
            after_order = false;
            i += 1;
            continue;
        }
        // A run of digit groups: "+49 170 5550199", "4111 1111 1111 1111", "(030) 123-456".
        let mut j = i;
        let mut digits = 0;
        let mut plus = false;
        while j < words.len() {
            let (_, c, _) = split_punctuation(words[j]);
            let number_like = !c.is_empty()
                && c.chars().any(|ch| ch.is_ascii_digit())
                && c.chars()
                    .all(|ch| ch.is_ascii_digit() || "+()-./".contains(ch));
            if !number_like || (j > i && c.starts_with('+')) {
                break;
            }
            plus |= c.starts_with('+');
            digits += c.chars().filter(char::is_ascii_digit).count();
            j += 1;
            // Punctuation after a group ends the run ("123, 456" are two numbers).
            if !split_punctuation(words[j - 1]).2.is_empty() {
                break;
            }
        }
        if digits >= 7 {
            let placeholder = if !plus && (13..=19).contains(&digits) {
                "[card number]"
            } else {
                "[phone]"
            };
            let piece = words[i..j].join(" ");
            let (_, _, last_trail) = split_punctuation(words[j - 1]);
            mask(piece, placeholder, last_trail);
            after_order = false;
            i = j;
            continue;
        }
        let has_digit = core.chars().any(|ch| ch.is_ascii_digit());
        if after_order && has_digit {
            mask(core.to_owned(), "[order number]", trail);
            after_order = false;
        } else if core.chars().filter(char::is_ascii_digit).count() >= 4 {
            mask(core.to_owned(), "[number]", trail);
            after_order = false;
        } else {
            out.push(words[i].to_owned());
            after_order = ORDER_WORDS.contains(&lower.as_str())
                || (after_order && ORDER_FILLERS.contains(&lower.as_str()))
                || (after_order && core.is_empty());
        }
        i += 1;
    }
    Masked {
        text: out.join(" "),
        replaced,
    }
}

/// The same pieces masked in `answer` (an agent's answer often repeats the visitor's order
/// number or email): only what [`mask_personal`] found in the question.
pub fn mask_like(answer: &str, masked: &Masked) -> String {
    let mut answer = answer.to_owned();
    for (piece, placeholder) in &masked.replaced {
        if piece.chars().count() >= 4 {
            answer = answer.replace(piece.as_str(), placeholder);
        }
    }
    answer
}

/// A title for learned knowledge, written from the agent's answer (never the visitor's
/// words): its first sentence, at most 60 characters.
pub fn title_from_answer(answer: &str) -> String {
    let first = answer.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let sentence = first
        .find(['.', '!', '?'])
        .map_or(first, |end| &first[..=end])
        .trim();
    if sentence.chars().count() <= 60 {
        return sentence.to_owned();
    }
    let cut: String = sentence.chars().take(59).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{}…", cut.trim_end())
}

fn is_email(word: &str) -> bool {
    word.split_once('@').is_some_and(|(user, host)| {
        !user.is_empty() && host.contains('.') && !host.starts_with('.') && !host.ends_with('.')
    })
}

/// `"(+49"` → `("(", "+49", "")`; `"pmark7731,"` → `("", "pmark7731", ",")`.
fn split_punctuation(word: &str) -> (&str, &str, &str) {
    let lead_end = word
        .char_indices()
        .find(|&(_, c)| c.is_alphanumeric() || c == '+' || c == '#' || c == '(')
        .map_or(word.len(), |(i, _)| i);
    let rest = &word[lead_end..];
    let core_end = rest
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_alphanumeric() || c == ')')
        .map_or(0, |(i, c)| i + c.len_utf8());
    (&word[..lead_end], &rest[..core_end], &rest[core_end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reported_question_loses_its_order_id_and_phone_number() {
        let masked =
            mask_personal("how can I cancel my order pmark7731 my phone is +49 170 5550199");
        assert_eq!(
            masked.text,
            "how can I cancel my order [order number] my phone is [phone]"
        );
        assert_eq!(
            mask_like("Order pmark7731 is cancelled.", &masked),
            "Order [order number] is cancelled."
        );
    }

    #[test]
    fn emails_cards_numbers_and_order_ids_are_masked() {
        let cases = [
            (
                "write to jo.doe@example.com, please",
                "write to [email], please",
            ),
            (
                "card 4111 1111 1111 1111 was charged",
                "card [card number] was charged",
            ),
            ("call (030) 123-4567 today", "call [phone] today"),
            (
                "order number AB12 missing",
                "order number [order number] missing",
            ),
            ("where is order #X9?", "where is order [order number]?"),
            ("my id is 55512 ok", "my id is [number] ok"),
            ("refund for invoice 42", "refund for invoice [order number]"),
        ];
        for (input, want) in cases {
            assert_eq!(mask_personal(input).text, want, "{input}");
        }
        // Nothing personal: unchanged (apart from whitespace).
        let plain = "How do I return  a pair of shoes in size 42?";
        assert_eq!(
            mask_personal(plain).text,
            "How do I return a pair of shoes in size 42?"
        );
        assert!(mask_personal(plain).replaced.is_empty());
    }

    #[test]
    fn titles_come_from_the_answer() {
        assert_eq!(
            title_from_answer("Open Orders and press Cancel. It is free."),
            "Open Orders and press Cancel."
        );
        let long =
            "You can cancel any order within fourteen days of delivery from your account page";
        let title = title_from_answer(long);
        assert!(
            title.chars().count() <= 60 && title.ends_with('…'),
            "{title}"
        );
    }
}
