//! Protective-marking detectors: OFFICIAL-SENSITIVE, SECRET, TOP SECRET,
//! UK EYES ONLY, and RESTRICTED / CONFIDENTIAL / PROTECT on a line of their own.
//!
//! Job: from a literal found by the shared automaton ([`MARKING_LITERALS`]),
//! check the marking is whole: in capitals, a whole word, its words joined by
//! any short run of separators (whitespace, `-`, `_`, `.`, `/`, `|`, `+`, `,`;
//! em dashes are `-` once normalised) or any run of whitespace.
//!
//! Limits: capitals only (`official sensitive` in prose is not a marking);
//! look-alike letters and accents are undone by the fold view before.
//! Callers: `detectors/mod.rs`.

use super::*;

pub(super) const MARKING_LITERALS: &[(&str, Literal)] = &[
    ("OFFICIAL", Literal::Official),
    ("SECRET", Literal::Secret),
    // "UK EYES ONLY" with any whitespace between the words: checked around EYES.
    ("EYES", Literal::UkEyesOnly),
    ("RESTRICTED", Literal::LineMarking),
    ("CONFIDENTIAL", Literal::LineMarking),
    ("PROTECT", Literal::LineMarking),
];

/// A protective marking at `[s, e)` in capitals as a whole word; the marking's canonical name.
pub(super) fn marking_at(bytes: &[u8], s: usize, e: usize, kind: Literal) -> Option<&'static str> {
    if is_alnum_at(bytes, s.wrapping_sub(1)) {
        return None;
    }
    match kind {
        Literal::Official => {
            // Any short run of separators: `OFFICIAL-SENSITIVE`, `OFFICIAL
            // SENSITIVE`, `OFFICIAL - SENSITIVE`, `OFFICIAL-\nSENSITIVE`,
            // `OFFICIAL / SENSITIVE` (a longer run of whitespace too).
            let sep = run_len(bytes, e, is_group_separator);
            let short = (1..=MAX_SEPARATOR_RUN + 3).contains(&sep);
            if !(short || sep > 0 && bytes[e..e + sep].iter().all(|&b| is_space(b))) {
                return None;
            }
            let word = e + sep;
            (bytes.get(word..word + 9)? == b"SENSITIVE" && !is_alnum_at(bytes, word + 9))
                .then_some("OFFICIAL-SENSITIVE")
        }
        Literal::Secret => {
            if is_alnum_at(bytes, e) {
                return None;
            }
            let top = word_before(bytes, s) == Some(b"TOP".as_slice());
            Some(if top { "TOP SECRET" } else { "SECRET" })
        }
        Literal::UkEyesOnly => {
            let gap = marking_gap(bytes, e, run_len(bytes, e, is_group_separator));
            let only = e + gap;
            let whole = word_before(bytes, s) == Some(b"UK".as_slice())
                && gap > 0
                && bytes.get(only..only + 4) == Some(b"ONLY".as_slice())
                && !is_alnum_at(bytes, only + 4);
            whole.then_some("UK EYES ONLY")
        }
        Literal::LineMarking => {
            if is_alnum_at(bytes, e) {
                return None;
            }
            let line_start = only_punctuation(bytes[..s].iter().rev());
            let line_end = only_punctuation(bytes[e..].iter());
            if !(line_start || line_end) {
                return None;
            }
            match &bytes[s..e] {
                b"RESTRICTED" => Some("RESTRICTED"),
                b"CONFIDENTIAL" => Some("CONFIDENTIAL"),
                _ => Some("PROTECT"),
            }
        }
        _ => None,
    }
}

/// The word (letters and digits) before the separator run that ends at `s`
/// (see [`marking_gap`]), if there is such a run.
#[inline]
pub(super) fn word_before(bytes: &[u8], s: usize) -> Option<&[u8]> {
    let gap = marking_gap(
        bytes,
        s - run_len_back(bytes, s, is_group_separator),
        run_len_back(bytes, s, is_group_separator),
    );
    if gap == 0 {
        return None;
    }
    let end = s - gap;
    let len = run_len_back(bytes, end, |b| b.is_ascii_alphanumeric());
    bytes.get(end - len..end)
}

/// The length of a separator run of `len` bytes from `at` between two words of a
/// marking, or 0 when it is too long to join them: any short run of
/// separators, or any run of whitespace.
fn marking_gap(bytes: &[u8], at: usize, len: usize) -> usize {
    let short = len <= MAX_SEPARATOR_RUN + 3;
    if short || bytes[at..at + len].iter().all(|&b| is_space(b)) {
        len
    } else {
        0
    }
}

/// Whether the bytes up to the next line break (or the end of the text, within
/// 200 bytes) hold no letter or digit.
#[inline]
pub(super) fn only_punctuation<'a>(mut bytes: impl Iterator<Item = &'a u8>) -> bool {
    for _ in 0..200 {
        match bytes.next() {
            None | Some(b'\n' | b'\r') => return true,
            Some(b) if b.is_ascii_alphanumeric() => return false,
            Some(_) => {}
        }
    }
    false
}
