//! Custom detectors: the policy's own keywords and patterns.
//!
//! Job: compile every custom detector of a profile once: keywords into one
//! ASCII-case-insensitive whole-word matcher (`keywords.rs`: at each word
//! start the longest keyword that ends at a word edge), patterns into regexes,
//! each with optional context words (`near`) within a distance; then report
//! each match as `(slot, value)` (a keyword value equal to the one just
//! reported to every owner is not reported again: the sink counts distinct
//! values).
//!
//! Limits: non-ASCII keywords match their exact, lower- and upper-case forms;
//! keywords match their own spacing only (the fold view makes look-alike letters
//! and accents match). Callers: `scan.rs` through `detectors/mod.rs`.

use regex::Regex;

use super::keywords::Keywords;
use super::*;

/// A custom detector as written in the policy's `dlp.detectors` map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomDetectorSpec {
    /// The detector's name (the key in the policy map); must not be a built-in id.
    pub name: String,
    /// Whole words or phrases, matched case-insensitively.
    pub keywords: Vec<String>,
    /// A regular expression (Rust `regex` syntax).
    pub pattern: Option<String>,
    /// Context words: a match counts only with one of them within `within` chars.
    pub near: Vec<String>,
    /// Distance for `near`, in characters (bytes of normalised text); default 100.
    pub within: Option<usize>,
}

/// Default `within` for custom `near` words.
pub const DEFAULT_NEAR_WITHIN: usize = 100;

/// The custom detectors of one profile, compiled.
#[derive(Debug)]
pub(crate) struct CustomDetectors {
    pub(super) keywords: Option<Keywords>,
    /// For each keyword pattern: the custom detectors that own it.
    pub(super) owners: Vec<Vec<usize>>,
    pub(super) detectors: Vec<CompiledCustom>,
}

#[derive(Debug)]
pub(super) struct CompiledCustom {
    pub(super) slot: usize,
    pub(super) pattern: Option<Regex>,
    pub(super) near: Vec<String>,
    pub(super) within: usize,
}

impl CustomDetectors {
    /// Compiles `specs`, `slots[i]` being the output slot of `specs[i]`.
    pub(crate) fn new(specs: &[(&CustomDetectorSpec, usize)]) -> Result<CustomDetectors, DlpError> {
        let mut patterns: Vec<String> = Vec::new();
        let mut owners: Vec<Vec<usize>> = Vec::new();
        let mut detectors = Vec::new();
        for (index, (spec, slot)) in specs.iter().enumerate() {
            let pattern = match &spec.pattern {
                Some(p) => Some(
                    regex::RegexBuilder::new(p)
                        .size_limit(10 * 1024 * 1024)
                        .build()
                        .map_err(|e| DlpError::BadPattern {
                            detector: spec.name.clone(),
                            error: e.to_string(),
                        })?,
                ),
                None => None,
            };
            if pattern.is_none() && spec.keywords.is_empty() {
                return Err(DlpError::EmptyDetector(spec.name.clone()));
            }
            for keyword in &spec.keywords {
                let normal = normalize(keyword.trim()).into_owned();
                if normal.is_empty() {
                    return Err(DlpError::EmptyDetector(spec.name.clone()));
                }
                let variants = [normal.to_lowercase(), normal.to_uppercase(), normal];
                for v in variants {
                    match patterns.iter().position(|p| p.eq_ignore_ascii_case(&v)) {
                        Some(existing) => {
                            if !owners[existing].contains(&index) {
                                owners[existing].push(index);
                            }
                        }
                        None => {
                            patterns.push(v);
                            owners.push(vec![index]);
                        }
                    }
                }
            }
            detectors.push(CompiledCustom {
                slot: *slot,
                pattern,
                near: spec
                    .near
                    .iter()
                    .map(|w| normalize(w.trim()).to_lowercase())
                    .filter(|w| !w.is_empty())
                    .collect(),
                within: spec.within.unwrap_or(DEFAULT_NEAR_WITHIN),
            });
        }
        let keywords = if patterns.is_empty() {
            None
        } else {
            Some(Keywords::new(&patterns))
        };
        Ok(CustomDetectors {
            keywords,
            owners,
            detectors,
        })
    }

    pub(crate) fn detect(&self, text: &str, sink: &mut Sink<'_>) {
        if let Some(keywords) = &self.keywords {
            // The last value reported to every owner: the same again is skipped
            // (the sink counts distinct values).
            let mut last: Option<(usize, String)> = None;
            let mut lower = String::new();
            keywords.for_each_match(text, |s, e, pattern| {
                let (Some(owners), Some(value)) = (self.owners.get(pattern), text.get(s..e)) else {
                    return;
                };
                // `str::to_lowercase` (final sigma and all), without allocating for ASCII.
                lower.clear();
                if value.is_ascii() {
                    lower.push_str(value);
                    lower.make_ascii_lowercase();
                } else {
                    lower.push_str(&value.to_lowercase());
                }
                if last
                    .as_ref()
                    .is_some_and(|(p, v)| *p == pattern && *v == lower)
                {
                    return;
                }
                let mut every = true;
                for &owner in owners {
                    if let Some(d) = self.detectors.get(owner) {
                        if d.near_ok(text, s, e) {
                            sink(d.slot, &lower);
                        } else {
                            every = false;
                        }
                    }
                }
                last = every.then(|| (pattern, lower.clone()));
            });
        }
        for d in &self.detectors {
            if let Some(re) = &d.pattern {
                for m in re.find_iter(text) {
                    if !m.is_empty() && d.near_ok(text, m.start(), m.end()) {
                        sink(d.slot, m.as_str());
                    }
                }
            }
        }
    }
}

impl CompiledCustom {
    pub(super) fn near_ok(&self, text: &str, s: usize, e: usize) -> bool {
        if self.near.is_empty() {
            return true;
        }
        let (ws, we) = char_window(text, s.saturating_sub(self.within), e + self.within);
        let hay = text[ws..we].to_lowercase();
        self.near.iter().any(|word| {
            hay.match_indices(word.as_str())
                .any(|(i, w)| is_word_edge(&hay, i, i + w.len()))
        })
    }
}

/// No letter or digit right before `s` nor right after `e`.
pub(super) fn is_word_edge(text: &str, s: usize, e: usize) -> bool {
    let before = text.get(..s).and_then(|t| t.chars().next_back());
    let after = text.get(e..).and_then(|t| t.chars().next());
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn detectors(keywords: &[&str]) -> CustomDetectors {
        let spec = CustomDetectorSpec {
            name: "k".into(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            ..Default::default()
        };
        CustomDetectors::new(&[(&spec, 0)]).unwrap()
    }

    fn found(d: &CustomDetectors, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        d.detect(text, &mut |_, v| out.push(v.to_string()));
        out
    }

    #[test]
    fn keywords_at_the_edges_of_the_text_and_of_words() {
        let d = detectors(&["Nightjar", "Operation Kestrel", "x", "\u{c9}clair", "#tag"]);
        // At the very start and the very end of the text, and alone.
        assert_eq!(found(&d, "nightjar"), ["nightjar"]);
        assert_eq!(found(&d, "NIGHTJAR went"), ["nightjar"]);
        assert_eq!(found(&d, "went nIgHtJaR"), ["nightjar"]);
        assert_eq!(found(&d, "x"), ["x"]);
        assert_eq!(found(&d, "a x"), ["x"]);
        assert_eq!(found(&d, "x a"), ["x"]);
        // After punctuation, a line break, a digit-free non-ASCII character.
        assert_eq!(found(&d, "(Nightjar)"), ["nightjar"]);
        assert_eq!(found(&d, "\nnightjar."), ["nightjar"]);
        assert_eq!(found(&d, "\u{a3}nightjar"), ["nightjar"]);
        assert_eq!(found(&d, "\u{2014}nightjar\u{2014}"), ["nightjar"]);
        // After a non-ASCII letter it is not a whole word.
        assert!(found(&d, "\u{e9}nightjar").is_empty());
        assert!(found(&d, "xnightjar nightjarx nightjar1 1nightjar").is_empty());
        // A case change inside the phrase; non-ASCII keywords in their cases.
        assert_eq!(found(&d, "OPERATION kestrel"), ["operation kestrel"]);
        assert_eq!(found(&d, "an \u{e9}clair"), ["\u{e9}clair"]);
        assert_eq!(found(&d, "AN \u{c9}CLAIR"), ["\u{e9}clair"]);
        assert_eq!(found(&d, "see #tag"), ["#tag"]);
        assert!(found(&d, "see a#tag").is_empty());
        // After a longer match that is not a whole word.
        let d = detectors(&["ab", "abc de"]);
        assert_eq!(found(&d, "abc dex ab"), ["ab"]);
    }

    #[test]
    fn a_shorter_keyword_inside_a_longer_match_that_is_not_a_whole_word() {
        // The longest match `ab cde` is cut by the `x`: the whole word `ab` at
        // the same place still counts, and so does a keyword the cut one overlaps.
        let d = detectors(&["ab", "ab cde"]);
        assert_eq!(found(&d, "ab cdex"), ["ab"]);
        assert_eq!(found(&d, "AB CDE"), ["ab cde"]);
        let d = detectors(&["ab", "ab cde", "cdex"]);
        assert_eq!(found(&d, "ab cdex"), ["ab", "cdex"]);
        let d = detectors(&["ab cd", "cd ef"]);
        assert_eq!(found(&d, "ab cdx cd ef"), ["cd ef"]);
    }
}
