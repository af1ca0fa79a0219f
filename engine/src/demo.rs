//! The demo site's knowledge base, built from the Bitext customer-support data by
//! `engine/data/build_demo_kb.py` (see `engine/data/ATTRIBUTION.md`).

use super::KbEntry;

const DEMO_KB_JSON: &str = include_str!("../data/demo_kb.json");

/// The demo knowledge base: one entry per Bitext intent.
pub fn demo_kb() -> Vec<KbEntry> {
    // The file is part of the build and checked by the tests; an unreadable file is a
    // build defect, reported as an empty knowledge base plus a log line rather than a crash.
    serde_json::from_str(DEMO_KB_JSON).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the embedded demo knowledge base does not parse");
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_kb_parses_and_has_every_intent() {
        let kb = super::demo_kb();
        assert_eq!(kb.len(), 27);
        assert!(
            kb.iter()
                .all(|e| !e.examples.is_empty() && !e.answer.is_empty())
        );
    }
}
