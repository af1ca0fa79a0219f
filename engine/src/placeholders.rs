//! Fills the `{{Placeholder}}`s of knowledge-base answers with a site's details.
//!
//! Answers from the Bitext data set name the site's details as placeholders: values such as
//! `{{Customer Support Phone Number}}` or `{{Website Name}}`, and labels of the site's pages and
//! buttons such as `{{Order History}}`. [`fill`] replaces each with the site's value; a
//! placeholder the site has no value for gets a generic phrase, so the visitor never sees
//! braces: the label itself for page and button names ("Order History"), a description for
//! values ("our support phone number", "during business hours", "your order number").
//!
//! A site's values are looked up by the placeholder's name (ignoring case and spacing), then
//! by its kind: a value for `Customer Support Phone Number` also fills
//! `{{Customer Service Phone Number}}`, `{{Support Phone Number}}`, … (see [`canonical_name`]).

use std::collections::HashMap;

/// The longest placeholder name looked at; longer `{{…}}` runs are copied as they are.
const MAX_NAME_LEN: usize = 100;

/// The details of the demo site, "Nexus Demo Shop", by canonical placeholder name.
pub fn demo_values() -> HashMap<String, String> {
    [
        ("Website Name", "Nexus Demo Shop"),
        ("Company Name", "Nexus Demo Shop"),
        ("Website URL", "https://shop.nexus-demo.example"),
        ("Customer Support Phone Number", "+1 555 0100"),
        ("Customer Support Email", "support@nexus-demo.example"),
        (
            "Customer Support Availability",
            "Monday to Friday, 9 am to 6 pm (UTC)",
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// Replaces every `{{Name}}` of `text` with the value of `Name` in `values`, or with a generic
/// phrase when `values` has none.
///
/// A placeholder is `{{`, at most 100 characters without braces or line breaks, `}}`; anything
/// else (a lone `{{`, say) is copied unchanged.
pub fn fill(text: &str, values: &HashMap<String, String>) -> String {
    let by_key: HashMap<String, &str> = values
        .iter()
        .map(|(name, value)| (key(name), value.as_str()))
        .collect();
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match placeholder_name(after) {
            Some(name) => {
                insert(&mut out, name, &by_key);
                rest = &after[name.len() + 2..];
            }
            None => {
                // Not a placeholder here; one may start at the second brace ("{{{Name}}").
                out.push('{');
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The name of the placeholder that `after` (the text after a `{{`) starts with, if any.
fn placeholder_name(after: &str) -> Option<&str> {
    // Only the next few bytes are searched, so a text full of `{{` stays linear.
    let window = &after.as_bytes()[..after.len().min(MAX_NAME_LEN + 2)];
    let close = window.windows(2).position(|pair| pair == b"}}")?;
    // `}` is ASCII, so `close` is a character boundary.
    let name = after.get(..close)?;
    (!name.contains(['{', '}', '\n', '\r'])).then_some(name)
}

/// Appends the value (or the generic phrase) of placeholder `name` to `out`.
fn insert(out: &mut String, name: &str, by_key: &HashMap<String, &str>) {
    let canonical = canonical_name(name);
    let site_value = by_key
        .get(&key(name))
        .or_else(|| canonical.and_then(|c| by_key.get(&key(c))))
        .filter(|value| !value.trim().is_empty());
    match site_value {
        Some(value) => out.push_str(value.trim()),
        None => {
            let phrase = generic_phrase(name, last_word(out));
            push_joined(out, &phrase);
        }
    }
}

/// What a placeholder stands for, as far as filling it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Phone,
    Email,
    Hours,
    WebsiteUrl,
    WebsiteName,
    CompanyName,
    PersonName,
    /// A number of the visitor's own (order, invoice, tracking number, …).
    VisitorNumber,
    /// A value of the source data that leaked into a placeholder (`{{732201349959}}`).
    RawValue,
    /// Some other detail of the visitor's own (`{{Purchase Date Anonymized}}`).
    VisitorDetail,
    /// A page, section or button of the site (`{{Order History}}`, `{{Cancel}}`).
    Label,
}

fn kind(name: &str) -> Kind {
    let lower = key(name);
    let anonymized = lower.contains("anonymized") || lower.contains("anonymised");
    let lower = lower
        .replace("anonymized", "")
        .replace("anonymised", "")
        .trim()
        .to_owned();
    let has = |word: &str| lower.contains(word);
    let own_thing = [
        "order", "purchase", "invoice", "bill", "tracking", "refund", "claim",
    ]
    .iter()
    .any(|w| lower.contains(w));
    let numberish = has("number") || lower.ends_with(" id") || has(" id ") || has(" code");
    let raw_value = lower.len() >= 6
        && lower.contains(|c: char| c.is_ascii_digit())
        && lower.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if raw_value {
        Kind::RawValue
    } else if numberish && own_thing {
        Kind::VisitorNumber
    } else if has("phone") {
        Kind::Phone
    } else if has("email") || has("e-mail") {
        Kind::Email
    } else if has("availability") || (has("hours") && !has("time")) {
        Kind::Hours
    } else if has("url") {
        Kind::WebsiteUrl
    } else if has("company name") {
        Kind::CompanyName
    } else if has("website") || lower == "app name" || has("site name") {
        Kind::WebsiteName
    } else if has("name field") || has("customer name") || has("person name") || lower == "name" {
        Kind::PersonName
    } else if anonymized {
        Kind::VisitorDetail
    } else {
        Kind::Label
    }
}

/// The name under which a site stores the value for placeholders of `name`'s kind
/// (`Customer Support Phone Number` for all the phone numbers), if it is a site detail.
pub fn canonical_name(name: &str) -> Option<&'static str> {
    Some(match kind(name) {
        Kind::Phone => "Customer Support Phone Number",
        Kind::Email => "Customer Support Email",
        Kind::Hours => "Customer Support Availability",
        Kind::WebsiteUrl => "Website URL",
        Kind::WebsiteName => "Website Name",
        Kind::CompanyName => "Company Name",
        Kind::PersonName
        | Kind::VisitorNumber
        | Kind::RawValue
        | Kind::VisitorDetail
        | Kind::Label => {
            return None;
        }
    })
}

/// The phrase for a placeholder without a value; `before` is the word just before it.
fn generic_phrase(name: &str, before: &str) -> String {
    let readable = readable_name(name);
    match kind(name) {
        Kind::Phone => "our support phone number".to_owned(),
        Kind::Email => "our support email address".to_owned(),
        Kind::Hours => "during business hours".to_owned(),
        Kind::WebsiteUrl => "our website".to_owned(),
        Kind::WebsiteName => "website".to_owned(),
        Kind::CompanyName => "our company".to_owned(),
        Kind::PersonName => "valued customer".to_owned(),
        // "the order with the number {{Order Number}}": the number is already said.
        Kind::VisitorNumber | Kind::RawValue if matches!(before, "number" | "id" | "no") => {
            "you were given".to_owned()
        }
        Kind::RawValue => "your reference number".to_owned(),
        Kind::VisitorNumber | Kind::VisitorDetail => format!("your {}", lowercase_words(&readable)),
        Kind::Label => readable,
    }
}

/// Appends `phrase`, dropping its first word when the text already ends with it or with
/// another determiner ("at our {{Phone}}" → "at our support phone number", not "at our our …").
fn push_joined(out: &mut String, phrase: &str) {
    const DETERMINERS: [&str; 5] = ["our", "the", "your", "a", "an"];
    let before = last_word(out);
    let (first, rest) = phrase.split_once(' ').unwrap_or((phrase, ""));
    let repeats = !rest.is_empty()
        && (before == first || (DETERMINERS.contains(&before) && DETERMINERS.contains(&first)));
    out.push_str(if repeats { rest } else { phrase });
}

/// The last word of `text` if it is one of the few words [`generic_phrase`] and
/// [`push_joined`] look at (lower-cased), else `""`.
fn last_word(text: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "number", "id", "no", "our", "the", "your", "a", "an", "during",
    ];
    // Only the tail is looked at, so filling stays linear in the text's length.
    let text = text.trim_end();
    let tail_start = (text.len().saturating_sub(16)..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let tail = &text[tail_start..];
    let word = match tail.rsplit_once(char::is_whitespace) {
        Some((_, word)) => word,
        None if tail_start == 0 => tail,
        // The last word is longer than the tail: none of the known words.
        None => return "",
    };
    let word = word.trim_end_matches([':', '.', ',']);
    KNOWN
        .iter()
        .find(|known| known.eq_ignore_ascii_case(word))
        .copied()
        .unwrap_or("")
}

/// The name without an `Anonymized` marker and extra spaces.
fn readable_name(name: &str) -> String {
    name.split_whitespace()
        .filter(|w| !w.eq_ignore_ascii_case("anonymized") && !w.eq_ignore_ascii_case("anonymised"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Lower-cases words but keeps acronyms ("Order ID" → "order ID").
fn lowercase_words(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let acronym = w.chars().count() > 1 && w.chars().all(|c| c.is_uppercase());
            if acronym {
                w.to_owned()
            } else {
                w.to_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How names are compared: lower-cased, single spaces.
fn key(name: &str) -> String {
    name.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KbEntry;

    fn demo_kb() -> Vec<KbEntry> {
        serde_json::from_str(include_str!("../data/demo_kb.json")).expect("demo KB parses")
    }

    fn none() -> HashMap<String, String> {
        HashMap::new()
    }

    #[test]
    fn no_braces_remain_in_any_filled_demo_answer() {
        for values in [demo_values(), none()] {
            for entry in demo_kb() {
                let filled = fill(&entry.answer, &values);
                assert!(
                    !filled.contains("{{") && !filled.contains("}}"),
                    "{}: {filled}",
                    entry.id
                );
            }
        }
    }

    #[test]
    fn demo_answers_read_well() {
        let kb = demo_kb();
        let answer = |id: &str| {
            let entry = kb.iter().find(|e| e.id == id).expect("entry exists");
            fill(&entry.answer, &demo_values())
        };
        let cancel = answer("cancel_order");
        assert!(cancel.contains("on our Nexus Demo Shop."), "{cancel}");
        assert!(
            cancel.contains("Order History or Purchases section"),
            "{cancel}"
        );
        assert!(cancel.contains("by phone at +1 555 0100"), "{cancel}");
        let change = answer("change_order");
        assert!(change.contains("the number you were given."), "{change}");
    }

    #[test]
    fn site_values_win_over_defaults() {
        let mut values = demo_values();
        values.insert("Website Name".into(), "Acme".into());
        values.insert("Order History".into(), "My purchases".into());
        let text = "Visit {{Website Name}}, open {{Order History}}, call {{Customer Support Phone Number}}.";
        assert_eq!(
            fill(text, &values),
            "Visit Acme, open My purchases, call +1 555 0100."
        );
    }

    #[test]
    fn a_site_value_fills_every_placeholder_of_its_kind() {
        let mut values = HashMap::new();
        values.insert("customer support phone number".into(), "+49 30 1234".into());
        for name in [
            "Customer Service Phone Number",
            "Support Phone Number",
            "Customer Support Phone Number Anonymized",
            "customer  support phone number",
        ] {
            assert_eq!(
                fill(&format!("{{{{{name}}}}}"), &values),
                "+49 30 1234",
                "{name}"
            );
        }
    }

    #[test]
    fn placeholders_without_a_value_read_as_plain_words() {
        let cases = [
            (
                "Reach us at {{Customer Support Phone Number}}.",
                "Reach us at our support phone number.",
            ),
            (
                "Call at our {{Customer Support Phone Number}} now.",
                "Call at our support phone number now.",
            ),
            (
                "We are available {{Customer Support Availability}}.",
                "We are available during business hours.",
            ),
            (
                "We are available during {{Customer Support Availability}}.",
                "We are available during business hours.",
            ),
            ("Log in on our {{Website Name}}.", "Log in on our website."),
            (
                "Open the {{Order History}} section.",
                "Open the Order History section.",
            ),
            (
                "About order {{Order Number}}:",
                "About order your order number:",
            ),
            (
                "The order with the number {{Order Number Anonymized}}.",
                "The order with the number you were given.",
            ),
            (
                "Paid on {{Purchase Date Anonymized}}.",
                "Paid on your purchase date.",
            ),
            (
                "Your {{Order ID Anonymized}} is safe.",
                "Your order ID is safe.",
            ),
            ("Order {{732201349959}}.", "Order your reference number."),
            (
                "Mail {{Customer Support Email}}.",
                "Mail our support email address.",
            ),
            ("At {{Company Name}}, we care.", "At our company, we care."),
        ];
        for (text, want) in cases {
            assert_eq!(fill(text, &none()), want, "{text}");
        }
    }

    #[test]
    fn malformed_braces_are_copied_and_never_panic() {
        let values = demo_values();
        assert_eq!(fill("", &values), "");
        assert_eq!(fill("{{", &values), "{{");
        assert_eq!(fill("}}", &values), "}}");
        assert_eq!(fill("a {{b", &values), "a {{b");
        assert_eq!(fill("{{}}", &values), "");
        assert_eq!(fill("{{{Website Name}}}", &values), "{Nexus Demo Shop}");
        assert_eq!(fill("x{{Website Name}}y", &values), "xNexus Demo Shopy");
        assert_eq!(fill("😀{{Website Name}}😀", &values), "😀Nexus Demo Shop😀");
        assert_eq!(fill("{{Add}} or {{Cafe}}", &none()), "Add or Cafe");
        let long = format!("{{{{{}}}}}", "x".repeat(500));
        assert_eq!(fill(&long, &values), long);
        let many = "{{Website Name}}".repeat(1000);
        assert_eq!(fill(&many, &values), "Nexus Demo Shop".repeat(1000));
        let _ = fill(&"{{é😀}}{{".repeat(3000), &values);
    }
}
