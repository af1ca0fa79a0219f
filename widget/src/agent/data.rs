//! What the console reads from and writes to the REST API, as plain data: the knowledge base,
//! learned entries waiting for approval, canned responses, the handoff summary, analytics, and
//! the settings form's checks. Read with the same [`Json`] reader as the frames (no serde, for
//! size), so `cargo test` checks it natively against `serde_json` values.

use nexus_shared::{HandoffReason, Source};
use uuid::Uuid;

use crate::wire::{Json, int, list, reason, string, uint, uuid};

/// A knowledge-base entry (`GET /api/v1/kb`), or a canned response (`body`, no examples).
#[derive(Debug, Clone, PartialEq)]
pub struct KbItem {
    pub id: String,
    pub title: String,
    pub answer: String,
    pub examples: Vec<String>,
}

pub fn kb_item<J: Json>(v: &J) -> Option<KbItem> {
    Some(KbItem {
        id: string(v, "id")?,
        title: string(v, "title")?,
        answer: string(v, "answer").or_else(|| string(v, "body"))?,
        examples: list(v, "examples", J::string).unwrap_or_default(),
    })
}

/// A knowledge source (`GET /api/v1/sources`): articles from a URL, a sitemap, a file, a
/// paste or the site's own page.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceItem {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub url: Option<String>,
    pub passages: u64,
    pub last_error: Option<String>,
    pub fetched_at: Option<i64>,
}

pub fn source_item<J: Json>(v: &J) -> Option<SourceItem> {
    Some(SourceItem {
        id: string(v, "id")?,
        kind: string(v, "kind")?,
        title: string(v, "title")?,
        url: string(v, "url"),
        passages: uint(v, "passages").unwrap_or_default(),
        last_error: string(v, "last_error"),
        fetched_at: int(v, "fetched_at"),
    })
}

impl SourceItem {
    /// URLs and sitemaps are fetched again; files and pastes are added again instead.
    pub fn refreshable(&self) -> bool {
        matches!(self.kind.as_str(), "url" | "sitemap" | "page")
    }

    /// "12 passages · sitemap".
    pub fn summary(&self) -> String {
        let kind = match self.kind.as_str() {
            "url" => "web page",
            "sitemap" => "sitemap",
            "file" => "uploaded file",
            "paste" => "pasted text",
            "page" => "this site's page",
            other => other,
        };
        let n = self.passages;
        format!("{n} passage{} · {kind}", if n == 1 { "" } else { "s" })
    }
}

/// What an import changed, in words (`{"added", "updated", "unchanged", "removed"}`).
pub fn changes_text<J: Json>(v: &J) -> String {
    let n = |k| {
        v.get("changes")
            .and_then(|c| uint(&c, k))
            .unwrap_or_default()
    };
    format!(
        "{} added, {} updated, {} unchanged, {} removed.",
        n("added"),
        n("updated"),
        n("unchanged"),
        n("removed")
    )
}

/// A passage of a source (`GET /api/v1/sources/{id}/passages`): title and text.
pub fn passage<J: Json>(v: &J) -> Option<(String, String)> {
    Some((string(v, "title")?, string(v, "body")?))
}

/// A numeric id as text. Through `i64`: formatting an `f64` would link the float printing
/// code (some 8 KB gzip) for ids that are whole numbers anyway.
fn id_text(n: f64) -> String {
    (n as i64).to_string()
}

/// A learned entry waiting for an owner (`GET /api/v1/kb/pending`).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingItem {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// The existing entry it would extend.
    pub entry_id: Option<String>,
    pub conversation_id: Option<Uuid>,
    pub origin: String,
    pub created_at: i64,
}

pub fn pending_item<J: Json>(v: &J) -> Option<PendingItem> {
    Some(PendingItem {
        id: v
            .get("id")
            .and_then(|i| i.string().or(i.number().map(id_text)))?,
        question: string(v, "question")?,
        answer: string(v, "answer")?,
        entry_id: string(v, "entry_id"),
        conversation_id: uuid(v, "conversation_id"),
        origin: string(v, "origin").unwrap_or_default(),
        created_at: int(v, "created_at").unwrap_or_default(),
    })
}

/// Where a learned entry came from, in words.
pub fn origin_text(origin: &str) -> &'static str {
    match origin {
        "teach" => "Taught by an agent on resolve",
        "draft_edit" => "An agent edited an AI draft",
        "thumbs_down" => "After a thumbs down",
        _ => "Learned",
    }
}

/// A canned response (`GET /api/v1/canned`).
#[derive(Debug, Clone, PartialEq)]
pub struct Canned {
    pub id: String,
    pub title: String,
    pub body: String,
}

pub fn canned<J: Json>(v: &J) -> Option<Canned> {
    Some(Canned {
        id: v
            .get("id")
            .and_then(|i| i.string().or(i.number().map(id_text)))?,
        title: string(v, "title")?,
        body: string(v, "body")?,
    })
}

/// The canned responses matching what follows `/` in the composer (title or body, any case).
pub fn canned_matches<'a>(all: &'a [Canned], filter: &str) -> Vec<&'a Canned> {
    let needle = filter.trim().to_ascii_lowercase();
    all.iter()
        .filter(|c| {
            needle.is_empty()
                || c.title.to_ascii_lowercase().contains(&needle)
                || c.body.to_ascii_lowercase().contains(&needle)
        })
        .collect()
}

/// The handoff summary written for the agent (`GET /api/v1/conversations/{id}/summary`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HandoffSummary {
    pub wants: String,
    pub ai_answered: Vec<String>,
    pub reason: Option<HandoffReason>,
    pub suggested_reply: Option<String>,
    pub suggested_source: Option<Source>,
}

pub fn handoff_summary<J: Json>(v: &J) -> Option<HandoffSummary> {
    Some(HandoffSummary {
        wants: string(v, "wants").unwrap_or_default(),
        ai_answered: list(v, "ai_answered", J::string)?,
        reason: v.get("reason").as_ref().and_then(reason),
        suggested_reply: string(v, "suggested_reply").filter(|s| !s.trim().is_empty()),
        suggested_source: v.get("suggested_source").and_then(|s| {
            Some(Source {
                entry_id: string(&s, "entry_id")?,
                title: string(&s, "title")?,
                url: string(&s, "url"),
            })
        }),
    })
}

/// `p50` and `p90` of a duration, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Percentiles {
    pub p50: Option<u64>,
    pub p90: Option<u64>,
}

/// One day of the learning curve.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Day {
    pub day: String,
    pub conversations: u64,
    pub automated: u64,
    pub escalated: u64,
    pub taught: u64,
    pub automation_rate: f64,
}

/// `GET /api/v1/analytics?from=&to=`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Analytics {
    pub conversations: u64,
    pub automated: u64,
    pub automation_rate: f64,
    /// `(reason code, count)`, largest first.
    pub escalations: Vec<(String, u64)>,
    pub csat_average: Option<f64>,
    pub csat_count: u64,
    /// Ratings 1 to 5.
    pub csat: [u64; 5],
    pub first_response: Percentiles,
    pub handle_time: Percentiles,
    pub daily: Vec<Day>,
}

fn percentiles<J: Json>(v: &J, key: &str) -> Percentiles {
    let p = v.get(key);
    Percentiles {
        p50: p.as_ref().and_then(|p| uint(p, "p50")),
        p90: p.as_ref().and_then(|p| uint(p, "p90")),
    }
}

/// Reads the analytics; `reasons` lists the escalation reason codes to look for (the wire
/// object's keys are not enumerable through [`Json`]).
pub fn analytics<J: Json>(v: &J) -> Option<Analytics> {
    let mut escalations: Vec<(String, u64)> = v
        .get("escalations_by_reason")
        .map(|by| {
            REASON_CODES
                .iter()
                .filter_map(|code| Some(((*code).to_owned(), uint(&by, code)?)))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default();
    escalations.sort_by_key(|e| std::cmp::Reverse(e.1));
    let csat = v.get("csat");
    let mut dist = [0u64; 5];
    if let Some(items) = csat
        .as_ref()
        .and_then(|c| c.get("distribution"))
        .and_then(|d| d.items())
    {
        for (slot, n) in dist.iter_mut().zip(items) {
            *slot = n.number().unwrap_or(0.0).max(0.0) as u64;
        }
    }
    Some(Analytics {
        conversations: uint(v, "conversations")?,
        automated: uint(v, "automated").unwrap_or_default(),
        automation_rate: v
            .get("automation_rate")
            .and_then(|r| r.number())
            .unwrap_or(0.0),
        escalations,
        csat_average: csat
            .as_ref()
            .and_then(|c| c.get("average"))
            .and_then(|a| a.number()),
        csat_count: csat
            .as_ref()
            .and_then(|c| uint(c, "count"))
            .unwrap_or_default(),
        csat: dist,
        first_response: percentiles(v, "first_response_ms"),
        handle_time: percentiles(v, "handle_time_ms"),
        daily: list(v, "daily", |d| {
            Some(Day {
                day: string(d, "day")?,
                conversations: uint(d, "conversations").unwrap_or_default(),
                automated: uint(d, "automated").unwrap_or_default(),
                escalated: uint(d, "escalated").unwrap_or_default(),
                taught: uint(d, "taught").unwrap_or_default(),
                automation_rate: d
                    .get("automation_rate")
                    .and_then(|r| r.number())
                    .unwrap_or(0.0),
            })
        })
        .unwrap_or_default(),
    })
}

/// Every handoff reason code, in the order the legend lists them.
pub const REASON_CODES: [&str; 10] = [
    "visitor_asked",
    "low_confidence",
    "out_of_scope",
    "sensitive",
    "frustration",
    "repeated_failure",
    "engine_error",
    "engine_busy",
    "agent_takeover",
    "autonomy_off",
];

/// A reason code in words.
pub fn reason_code_text(code: &str) -> String {
    let reason = match code {
        "visitor_asked" => HandoffReason::VisitorAsked,
        "low_confidence" => HandoffReason::LowConfidence,
        "out_of_scope" => HandoffReason::OutOfScope,
        "sensitive" => return "Sensitive topic".into(),
        "frustration" => HandoffReason::Frustration,
        "repeated_failure" => HandoffReason::RepeatedFailure,
        "engine_error" => HandoffReason::EngineError,
        "engine_busy" => HandoffReason::EngineBusy,
        "agent_takeover" => HandoffReason::AgentTakeover,
        "autonomy_off" => HandoffReason::AutonomyOff,
        other => return other.replace('_', " "),
    };
    super::model::reason_text(&reason)
}

/// A duration for people: "850 ms", "12 s", "4 min", "2 h 5 min"; "—" when unknown.
pub fn duration_text(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "—".into();
    };
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{} s", ms / 1_000),
        60_000..=3_599_999 => format!("{} min", ms / 60_000),
        _ => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// A rate in 0..=1 as a whole percentage.
pub fn percent(rate: f64) -> String {
    format!("{}%", (rate.clamp(0.0, 1.0) * 100.0).round() as u32)
}

// ----- the settings form -----

/// `#rgb` or `#rrggbb`.
pub fn valid_color(c: &str) -> bool {
    let hex = c.strip_prefix('#').unwrap_or("");
    matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// A threshold: a number from 0 to 1 (`0.55`, `.5`, `1`), read by hand to keep float
/// parsing out of the bundle.
pub fn threshold(s: &str) -> Result<f64, String> {
    let bad = || "Enter a number from 0 to 1.".to_owned();
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |d: &str| d.chars().all(|c| c.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) || frac.len() > 6 {
        return Err(bad());
    }
    let whole = if int.is_empty() {
        0
    } else {
        int.parse::<u32>().map_err(|_| bad())?
    };
    let part = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().map_err(|_| bad())?
    };
    let n = f64::from(whole) + f64::from(part) / 10f64.powi(frac.len() as i32);
    if n > 1.0 { Err(bad()) } else { Ok(n) }
}

/// A number in thousandths, trailing zeros dropped: `0.55`, not `0.550000011920929` (and
/// without float formatting in the bundle).
pub fn number_text(n: f64) -> String {
    let milli = (n * 1000.0).round().max(0.0) as u64;
    let frac = format!("{:03}", milli % 1000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        (milli / 1000).to_string()
    } else {
        format!("{}.{frac}", milli / 1000)
    }
}

/// One decimal: `4.5`.
pub fn tenths(n: f64) -> String {
    let t = (n * 10.0).round().max(0.0) as u64;
    format!("{}.{}", t / 10, t % 10)
}

/// `HH:MM`, 00:00 to 23:59; minutes since midnight.
pub fn clock(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.trim().len() == 5).then_some(h * 60 + m)
}

/// One day's opening hours as typed: both empty means closed.
pub fn day_hours(open: &str, close: &str) -> Result<Option<(String, String)>, String> {
    if open.trim().is_empty() && close.trim().is_empty() {
        return Ok(None);
    }
    match (clock(open), clock(close)) {
        (Some(a), Some(b)) if a < b => Ok(Some((open.trim().into(), close.trim().into()))),
        (Some(_), Some(_)) => Err("Closing must be after opening.".into()),
        _ => Err("Use HH:MM, e.g. 09:00 and 17:00.".into()),
    }
}

/// The allowed origins, one a line.
pub fn origins(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let rest = line
            .strip_prefix("https://")
            .or_else(|| line.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains('/') => {
                out.push(line.to_owned());
            }
            _ => {
                return Err(format!(
                    "{line:?} is not an origin: write it like https://shop.example (no path)."
                ));
            }
        }
    }
    Ok(out)
}

/// Sensitive categories, one a line: `category: phrase, phrase`.
pub fn sensitive(text: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((category, phrases)) = line.split_once(':') else {
            return Err(format!(
                "{line:?}: write a category, a colon, then its phrases, e.g. legal: lawyer, sue"
            ));
        };
        let phrases: Vec<String> = phrases
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        let category = category.trim();
        if category.is_empty() || phrases.is_empty() {
            return Err(format!("{line:?}: a category needs a name and a phrase."));
        }
        out.push((category.to_owned(), phrases));
    }
    Ok(out)
}

/// The sensitive categories as the form shows them.
pub fn sensitive_text<J: Json>(policy: &J) -> String {
    list(policy, "sensitive", |c| {
        Some(format!(
            "{}: {}",
            string(c, "category")?,
            list(c, "phrases", J::string)?.join(", ")
        ))
    })
    .unwrap_or_default()
    .join("\n")
}

/// The weekdays as the settings use them.
pub const DAYS: [(&str, &str); 7] = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
];

/// The import format of a file, from its name.
pub fn import_format(file_name: &str) -> Option<&'static str> {
    let lower = file_name.to_ascii_lowercase();
    let ext = lower.rsplit('.').next()?;
    Some(match ext {
        "jsonl" | "ndjson" => "jsonl",
        "csv" => "csv",
        "md" | "markdown" => "md",
        _ => return None,
    })
}

/// `<script src="ORIGIN/widget.js" data-site="KEY" async></script>`
pub fn snippet(origin: &str, key: &str) -> String {
    format!(
        "<script src=\"{}/widget.js\" data-site=\"{key}\" async></script>",
        origin.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_sources_and_import_results() {
        let v = json!({"id": "s-1", "kind": "sitemap", "slug": "shop", "title": "https://shop.test/sitemap.xml",
            "url": "https://shop.test/sitemap.xml", "format": "html", "passages": 1, "last_error": null,
            "fetched_at": 1700000000000i64, "created_at": 1, "updated_at": 2});
        let s = source_item(&v).unwrap();
        assert_eq!(s.summary(), "1 passage · sitemap");
        assert!(s.refreshable());
        assert_eq!(s.last_error, None);
        assert_eq!(s.fetched_at, Some(1_700_000_000_000));
        let pasted =
            source_item(&json!({"id": "s-2", "kind": "paste", "title": "Hours", "passages": 3}))
                .unwrap();
        assert!(!pasted.refreshable());
        assert_eq!(pasted.summary(), "3 passages · pasted text");
        let r = json!({"changes": {"added": 2, "updated": 1, "unchanged": 0, "removed": 4}});
        assert_eq!(
            changes_text(&r),
            "2 added, 1 updated, 0 unchanged, 4 removed."
        );
        assert_eq!(
            passage(&json!({"id": "doc:a#b", "title": "A › B", "body": "Text."})),
            Some(("A › B".into(), "Text.".into()))
        );
    }

    #[test]
    fn reads_the_console_payloads() {
        let kb = json!({"id": "kb-1", "title": "Gift wrap", "answer": "Yes, $4.", "examples": ["gift wrap?"]});
        assert_eq!(kb_item(&kb).unwrap().examples, ["gift wrap?"]);
        let c = json!({"id": "c-1", "title": "Hello", "body": "Hi there."});
        let c = kb_item(&c).unwrap();
        assert_eq!((c.answer.as_str(), c.examples.len()), ("Hi there.", 0));
        let p = json!({"id": "p1", "question": "q", "answer": "a", "entry_id": null,
            "conversation_id": "00000000-0000-0000-0000-000000000011", "origin": "teach", "created_at": 5});
        let p = pending_item(&p).unwrap();
        assert_eq!(p.conversation_id, Some(Uuid::from_u128(0x11)));
        assert_eq!(p.entry_id, None);
        let s = json!({"wants": "a refund", "ai_answered": ["Refunds take 5 days."],
            "reason": {"reason": "low_confidence"}, "suggested_reply": "Hi! ",
            "suggested_source": {"entry_id": "refund", "title": "Refunds"}});
        let s = handoff_summary(&s).unwrap();
        assert_eq!(s.wants, "a refund");
        assert_eq!(s.suggested_source.unwrap().title, "Refunds");
        let c = json!({"id": "c1", "title": "Hello", "body": "Hi there"});
        let all = vec![canned(&c).unwrap()];
        assert_eq!(canned_matches(&all, "HELL").len(), 1);
        assert!(canned_matches(&all, "bye").is_empty());
        // Numeric ids (some servers send them) read as their whole number.
        let c = json!({"id": 42, "title": "Hello", "body": "Hi there"});
        assert_eq!(canned(&c).unwrap().id, "42");
        let p = json!({"id": 7, "question": "q", "answer": "a"});
        assert_eq!(pending_item(&p).unwrap().id, "7");
    }

    #[test]
    fn reads_analytics() {
        let a = json!({"conversations": 10, "automated": 7, "automation_rate": 0.7,
            "escalations_by_reason": {"low_confidence": 1, "visitor_asked": 2, "sensitive": 0},
            "csat": {"average": 4.5, "count": 2, "distribution": [0, 0, 0, 1, 1]},
            "first_response_ms": {"p50": 1500, "p90": null},
            "handle_time_ms": {"p50": 120000, "p90": 300000},
            "daily": [{"day": "2026-11-25", "conversations": 10, "automated": 7, "escalated": 3,
                "taught": 1, "automation_rate": 0.7}]});
        let a = analytics(&a).unwrap();
        assert_eq!(
            a.escalations,
            [
                ("visitor_asked".to_owned(), 2),
                ("low_confidence".to_owned(), 1)
            ]
        );
        assert_eq!(a.csat, [0, 0, 0, 1, 1]);
        assert_eq!(a.first_response.p90, None);
        assert_eq!(a.daily[0].taught, 1);
        assert_eq!(duration_text(a.first_response.p50), "1 s");
        assert_eq!(duration_text(a.handle_time.p50), "2 min");
        assert_eq!(duration_text(None), "—");
        assert_eq!(percent(a.automation_rate), "70%");
    }

    #[test]
    fn checks_the_settings_form() {
        assert!(valid_color("#4f46e5") && valid_color("#abc"));
        assert!(!valid_color("4f46e5") && !valid_color("#12345g"));
        assert_eq!(threshold(" 0.5 "), Ok(0.5));
        assert!(threshold("1.5").is_err() && threshold("x").is_err());
        assert_eq!(threshold(".25"), Ok(0.25));
        assert_eq!(threshold("1"), Ok(1.0));
        assert!(threshold(".").is_err() && threshold("-0.1").is_err() && threshold("").is_err());
        assert_eq!(number_text(0.550000011920929), "0.55");
        assert_eq!(number_text(1.0), "1");
        assert_eq!(number_text(0.05), "0.05");
        assert_eq!(tenths(4.25), "4.3");
        assert_eq!(tenths(4.0), "4.0");
        assert_eq!(day_hours("", ""), Ok(None));
        assert_eq!(
            day_hours("09:00", "17:30"),
            Ok(Some(("09:00".into(), "17:30".into())))
        );
        assert!(day_hours("17:00", "09:00").is_err());
        assert!(day_hours("9", "17:00").is_err());
        assert_eq!(
            origins("https://shop.example\n\nhttp://127.0.0.1:8080\n").unwrap(),
            ["https://shop.example", "http://127.0.0.1:8080"]
        );
        assert!(origins("shop.example").is_err());
        assert!(origins("https://shop.example/path").is_err());
        assert_eq!(
            sensitive("legal: lawyer, sue\nbilling:chargeback").unwrap(),
            [
                ("legal".into(), vec!["lawyer".into(), "sue".into()]),
                ("billing".into(), vec!["chargeback".into()])
            ]
        );
        assert!(sensitive("legal").is_err() && sensitive("legal:").is_err());
        let policy = json!({"sensitive": [{"category": "legal", "phrases": ["lawyer", "sue"]}]});
        assert_eq!(sensitive_text(&policy), "legal: lawyer, sue");
        assert_eq!(import_format("faq.JSONL"), Some("jsonl"));
        assert_eq!(import_format("faq.md"), Some("md"));
        assert_eq!(import_format("faq.txt"), None);
        assert_eq!(
            snippet("http://127.0.0.1:8080/", "demo"),
            "<script src=\"http://127.0.0.1:8080/widget.js\" data-site=\"demo\" async></script>"
        );
    }
}
