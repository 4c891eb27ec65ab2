//! Custom detectors: the policy's own keywords and patterns.
//!
//! Job: compile every custom detector of a profile once: keywords into one
//! ASCII-case-insensitive, anchored Aho-Corasick automaton (whole words) with a
//! table of the keywords' first two bytes ([`WordStarts`]), patterns into
//! regexes, each with optional context words (`near`) within a distance; then
//! report each match as `(slot, value)`. A keyword counts only as a whole word,
//! so the automaton runs only where a word may start (the byte before is not
//! an ASCII letter or digit) and the two bytes there begin some keyword: one
//! cheap byte loop over the text, and a short anchored search at a few places,
//! instead of the automaton over every byte.
//!
//! Limits: non-ASCII keywords match their exact, lower- and upper-case forms;
//! keywords match their own spacing only (the fold view makes look-alike letters
//! and accents match). At each word start the longest keyword there is taken;
//! keywords are tried at every word start, also inside a longer match (both
//! `Operation Kestrel` and `Kestrel` count when both are keywords). Callers:
//! `scan.rs` through `detectors/mod.rs`.

use aho_corasick::{
    AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Anchored, Input, MatchKind, StartKind,
};
use regex::Regex;

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
    /// The keywords, anchored (searched only at candidate word starts).
    pub(super) keywords: Option<(AhoCorasick, WordStarts)>,
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
            let builder = |kind: Option<AhoCorasickKind>| {
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .start_kind(StartKind::Anchored)
                    .kind(kind)
                    .prefilter(false)
                    .build(&patterns)
            };
            let ac = builder(Some(AhoCorasickKind::DFA))
                .or_else(|_| builder(None))
                .map_err(|e| DlpError::Keywords(e.to_string()))?;
            Some((ac, WordStarts::new(&patterns)))
        };
        Ok(CustomDetectors {
            keywords,
            owners,
            detectors,
        })
    }

    pub(crate) fn detect(&self, text: &str, sink: &mut Sink<'_>) {
        if let Some((ac, starts)) = &self.keywords {
            starts.for_each(text.as_bytes(), |s| {
                let input = Input::new(text).span(s..text.len()).anchored(Anchored::Yes);
                let Some(m) = ac.find(input) else { return };
                let e = m.end();
                if !is_word_edge(text, s, e) {
                    return;
                }
                let Some(owners) = self.owners.get(m.pattern().as_usize()) else {
                    return;
                };
                for &owner in owners {
                    if let Some(d) = self.detectors.get(owner) {
                        if d.near_ok(text, s, e) {
                            sink(d.slot, &text[s..e].to_lowercase());
                        }
                    }
                }
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

/// The first two bytes of the keywords, ASCII letters folded to lower case:
/// where a keyword may start.
#[derive(Debug)]
pub(super) struct WordStarts {
    /// Bit `lower(a) * 256 + lower(b)` is set when some keyword starts with
    /// the bytes `a b` (a one-byte keyword `a` sets every `b`).
    pairs: Box<[u64; 1024]>,
    /// Some keyword starts with this (folded) byte.
    first: [bool; 256],
}

impl WordStarts {
    fn new(patterns: &[String]) -> WordStarts {
        let mut starts = WordStarts {
            pairs: Box::new([0; 1024]),
            first: [false; 256],
        };
        for p in patterns {
            let b = p.as_bytes();
            let Some(&a) = b.first() else { continue };
            let a = a.to_ascii_lowercase();
            starts.first[usize::from(a)] = true;
            match b.get(1) {
                Some(&second) => starts.set(a, second.to_ascii_lowercase()),
                None => (0..=255u8).for_each(|second| starts.set(a, second.to_ascii_lowercase())),
            }
        }
        starts
    }

    fn set(&mut self, a: u8, b: u8) {
        let bit = usize::from(a) << 8 | usize::from(b);
        self.pairs[bit >> 6] |= 1 << (bit & 63);
    }

    fn has(&self, a: u8, b: u8) -> bool {
        let bit = usize::from(a) << 8 | usize::from(b);
        self.pairs[bit >> 6] & (1 << (bit & 63)) != 0
    }

    /// Calls `f` at every offset where a keyword may start as a whole word: the
    /// byte before (if any) is not an ASCII letter or digit (a non-ASCII byte
    /// may end a letter or not: `is_word_edge` decides) and the two bytes there
    /// (the last byte of the text alone) begin some keyword.
    fn for_each(&self, bytes: &[u8], mut f: impl FnMut(usize)) {
        let mut prev_alnum = false;
        for (s, &b) in bytes.iter().enumerate() {
            let after_edge = !prev_alnum;
            prev_alnum = b.is_ascii_alphanumeric();
            let a = b.to_ascii_lowercase();
            if !after_edge || !self.first[usize::from(a)] {
                continue;
            }
            let hit = match bytes.get(s + 1) {
                Some(&next) => self.has(a, next.to_ascii_lowercase()),
                None => true,
            };
            if hit {
                f(s);
            }
        }
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

    /// The keyword pass as it was before the word-start table: one unanchored
    /// leftmost-longest automaton over every byte, matches filtered by
    /// `is_word_edge`.
    fn reference(keywords: &[&str], text: &str) -> Vec<String> {
        let mut patterns: Vec<String> = Vec::new();
        for k in keywords {
            let normal = normalize(k.trim()).into_owned();
            for v in [normal.to_lowercase(), normal.to_uppercase(), normal] {
                if !patterns.iter().any(|p| p.eq_ignore_ascii_case(&v)) {
                    patterns.push(v);
                }
            }
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .unwrap();
        ac.find_iter(text)
            .filter(|m| is_word_edge(text, m.start(), m.end()))
            .map(|m| text[m.start()..m.end()].to_lowercase())
            .collect()
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
        // A word start inside a rejected longer match is still tried.
        let d = detectors(&["ab", "abc de"]);
        assert_eq!(found(&d, "abc dex ab"), ["ab"]);
        let d = detectors(&["foo", "foo-b", "bar"]);
        assert_eq!(found(&d, "foo-bar"), ["bar"]);
    }

    #[test]
    fn keyword_pass_finds_all_the_full_automaton_finds() {
        let keywords = [
            "Nightjar",
            "Operation Kestrel",
            "kest",
            "a",
            "ab-c",
            "b c",
            "\u{c9}cole",
            "zz9",
            "9zz",
            "Kestrel",
        ];
        let d = detectors(&keywords);
        let pieces = [
            "night",
            "jar",
            "NIGHTJAR",
            "operation",
            "Operation ",
            "kestrel",
            "KEST",
            "a",
            "A",
            "b",
            "c",
            "-",
            " ",
            "  ",
            ".",
            "\n",
            "\u{e9}",
            "\u{c9}cole",
            "\u{e9}cole",
            "zz9",
            "9",
            "ZZ",
            "x",
            "\u{a3}",
            "ab-c",
            "b c",
        ];
        let mut seed: u64 = 0x1234_5678_9abc_def1;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut total = 0;
        for _ in 0..20_000 {
            let n = (next() % 8) as usize + 1;
            let text: String = (0..n)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            let new = found(&d, &text);
            let old = reference(&keywords, &text);
            for v in &old {
                assert!(new.contains(v), "{text:?}: {old:?} but {new:?}");
            }
            total += old.len();
        }
        assert!(total > 3_000, "{total}");
    }
}
