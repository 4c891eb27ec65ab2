//! Quiet interiors: the middle of a long field that the digit pass over a
//! joined view may skip, because the pass over the field alone has already
//! read it and nothing the joined view adds can reach it.
//!
//! Job: while the digit pass reads one text on its own, note each cluster and
//! whether it does anything ("active": six digits or more, touching a capital,
//! or a separator-view candidate; every other cluster reports nothing, opens no
//! window and starts no view), and from that find the first and the last quiet
//! point of the text. A point is quiet when no active cluster lies within
//! [`QUIET_REACH`] units of it, no cluster at all within [`CLUSTER_MARGIN`]
//! bytes, and it is [`QUIET_REACH`] units or more inside the text. Between the
//! first and the last quiet point is the quiet interior.
//!
//! Why skipping it is exact: everything the digit pass does starts at an active
//! cluster and reads at most [`MAX_CLUSTER_REACH`] units from it (a window's
//! pad and widening, a keyword looked for nearby, a sort code's account, a
//! separator-view span). So across a quiet point no window merges, no span
//! merges, no sort code pairs, and no cluster runs: the pass over a text is the
//! union of the passes over its pieces cut at quiet points. The one read with
//! no bound in units, the chain of short tokens that decides whether a cluster
//! is a separator-view candidate, stops at the first word (three letters or
//! more); clusters before the text's first word or after its last, or within
//! [`CLUSTER_MARGIN`] bytes of its ends, may read outside it, so they are
//! counted active and the interior never holds one: it starts after the last
//! such cluster of the text's head and ends before the first of its tail. Hence, in a joined view holding the text, the clusters between
//! its two quiet points report exactly what they report in the text alone,
//! which the scanner has already tallied; the joined pass jumps from the first
//! quiet point to the last one, and every other cluster of the view runs as
//! before, in the same order (so even the sample each finding keeps is the
//! same). The property test in `scan.rs` checks this against the whole pass.
//!
//! The literal and e-mail detectors skip a part of the same interior in the
//! two space-joined views, and the literal detectors in the values
//! concatenated without a separator ([`literal_interior`]): the part that
//! starts at a whitespace and ends after one. No literal or address holds
//! whitespace, so a match skipped lies inside its field and no match crosses
//! an end of the part (the automaton, restarted after it, finds what a whole
//! pass finds). What checks a match reads either a run of one class of bytes
//! without whitespace (a token's tail, a JWT's parts, an address, the word
//! before a marking), which stops at the part's last whitespace at the latest,
//! or a few units around it (a separator run of eight bytes at most or of
//! whitespace, a marking's next word, an AWS key's 16 characters), which from
//! [`QUIET_REACH`] units inside the field never reaches its ends. The line
//! test of `RESTRICTED`, `CONFIDENTIAL` and `PROTECT` (only punctuation to
//! the line's end, within 200 bytes) can only fail where a view goes on past
//! the field's end, so a view finds no such marking its field did not. The
//! one read that runs past both, a private key block (up to 16 KiB, to its
//! `-----END`), would be another value in a view: the part ends before the
//! field's first private key header. So the matches skipped give in a view
//! exactly what they gave in the field alone, which the scanner has tallied.
//!
//! Limits: one interior per text (the stretch from the first quiet point to the
//! last, whatever lies between). A text shorter than twice [`QUIET_REACH`]
//! bytes has none. Callers: the digit pass (`detectors/mod.rs`); the scanner
//! for [`literal_interior`].

use super::text::{has_space_run, is_space, run_len, run_len_back, walk_back, walk_forward};

/// Units (a byte, or a run of whitespace) kept clear of active clusters on each
/// side of a quiet point. Above [`MAX_CLUSTER_REACH`], with room to spare.
pub(crate) const QUIET_REACH: usize = 128;

/// The farthest the digit pass reads from an active cluster, in units: a
/// window's pad (48 units), widened up to 64 bytes to whitespace and 3 to a
/// character boundary (115); a passport's keyword (100 units and the word, from
/// the number or from the letter before it: 109); a separator-view span (64
/// bytes, 16 of widening, 3 to a boundary: 83); a sort code's keyword and
/// account (50 and the words: 59).
pub(crate) const MAX_CLUSTER_REACH: usize = 115;

/// Bytes kept clear of any cluster around a quiet point, and from a text's
/// ends (a cluster reads a few bytes beside it to tell a capital or a
/// separator; the longest such read is a separator run of five and a byte).
pub(crate) const CLUSTER_MARGIN: usize = 16;

const _: () = assert!(QUIET_REACH > MAX_CLUSTER_REACH);

/// Follows the clusters of one pass over one text, in order.
#[derive(Debug)]
pub(super) struct QuietTracker {
    /// Clusters starting before this may read before the text's start.
    lead_edge: usize,
    /// Clusters ending after this may read after the text's end.
    trail_edge: usize,
    /// The earliest point the clusters seen so far leave quiet.
    from: usize,
    first: Option<usize>,
    last: Option<usize>,
    /// A cluster that may read after the text's end was seen: the interior
    /// ends before it.
    closed: bool,
}

impl QuietTracker {
    /// `None` when `bytes` is too short to have a quiet interior.
    pub(super) fn new(bytes: &[u8]) -> Option<QuietTracker> {
        if bytes.len() <= 2 * QUIET_REACH {
            return None;
        }
        let lead = run_len(bytes, 0, is_space);
        let trail = run_len_back(bytes, bytes.len(), is_space);
        let (first_word_end, last_word_start) = words(bytes);
        Some(QuietTracker {
            lead_edge: first_word_end.max(lead + CLUSTER_MARGIN),
            trail_edge: last_word_start.min(bytes.len().saturating_sub(trail + CLUSTER_MARGIN)),
            from: reach_forward(bytes, 0),
            first: None,
            last: None,
            closed: false,
        })
    }

    /// One cluster, `[first, last)` from its first digit to past its last.
    /// Out of line: the plain pass's loop stays as small as it was.
    #[inline(never)]
    pub(super) fn cluster(&mut self, bytes: &[u8], first: usize, last: usize, active: bool) {
        let (lead, trail) = (first < self.lead_edge, last > self.trail_edge);
        let active = active || lead || trail;
        let (clear_before, clear_after) = if active {
            (reach_back(bytes, first), reach_forward(bytes, last))
        } else {
            (first.saturating_sub(CLUSTER_MARGIN), last + CLUSTER_MARGIN)
        };
        self.gap(clear_before);
        // A cluster that may read outside the text stays out of the interior:
        // the interior starts after it, or ends before it.
        if lead {
            self.first = None;
            self.last = None;
        }
        self.closed |= trail;
        self.from = self.from.max(clear_after);
    }

    /// The quiet interior `[first quiet point, last quiet point)`, if any.
    pub(super) fn finish(mut self, bytes: &[u8]) -> Option<(usize, usize)> {
        self.gap(reach_back(bytes, bytes.len()));
        match (self.first, self.last) {
            (Some(first), Some(last)) if first < last => Some((first, last)),
            _ => None,
        }
    }

    /// Every point of `[self.from, until]` is quiet, when that is not empty.
    fn gap(&mut self, until: usize) {
        if self.from <= until && !self.closed {
            self.first.get_or_insert(self.from);
            self.last = Some(until);
        }
    }
}

/// The part of a text's quiet interior `(first, last)` that the literal and
/// e-mail detectors may skip in the views that join it (see the module header):
/// it ends before the text's first private key header (`key_header`, where
/// the literal pass over the text alone matched `-----BEGIN`), starts at a
/// whitespace and ends after one, so no literal or address crosses its ends.
/// `None` when no such part is left.
pub(crate) fn literal_interior(
    bytes: &[u8],
    (first, last): (usize, usize),
    key_header: Option<usize>,
) -> Option<(usize, usize)> {
    let last = key_header.map_or(last, |key| key.min(last));
    let start = first + bytes.get(first..last)?.iter().position(|&b| is_space(b))?;
    let end = start + 1 + bytes[start..last].iter().rposition(|&b| is_space(b))?;
    (start + 1 < end).then_some((start, end))
}

/// [`QUIET_REACH`] units back from `from`: as many bytes when they hold no
/// run of whitespace (the usual case, read a word at a time), else walked.
/// Where the walk would stop inside a run of whitespace, the shortcut may stop
/// later in that run: the same unit, so still past every cluster's reach.
fn reach_back(bytes: &[u8], from: usize) -> usize {
    match from.checked_sub(QUIET_REACH) {
        Some(start) if !has_space_run(&bytes[start..from]) => start,
        _ => walk_back(bytes, from, QUIET_REACH, 0),
    }
}

/// [`QUIET_REACH`] units on from `from`, as [`reach_back`].
fn reach_forward(bytes: &[u8], from: usize) -> usize {
    match bytes.get(from..from + QUIET_REACH) {
        Some(ahead) if !has_space_run(ahead) => from + QUIET_REACH,
        _ => walk_forward(bytes, from, QUIET_REACH),
    }
}

/// The end of the first word and the start of the last one (a word: a run of
/// letters and digits with three letters or more, where a chain of short
/// tokens stops); `(len, 0)` when there is none.
fn words(bytes: &[u8]) -> (usize, usize) {
    let mut i = 0;
    while i < bytes.len() {
        let run = run_len(bytes, i, |b| b.is_ascii_alphanumeric());
        if run == 0 {
            i += 1;
            continue;
        }
        if is_word(&bytes[i..i + run]) {
            // The last word is looked for from the end.
            return (i + run, last_word_start(bytes, i));
        }
        i += run;
    }
    (bytes.len(), 0)
}

/// A run of letters and digits that a chain of short tokens stops at.
fn is_word(token: &[u8]) -> bool {
    token.iter().filter(|b| b.is_ascii_alphabetic()).count() >= 3
}

/// The start of the last word at or after `floor` (which starts a word).
fn last_word_start(bytes: &[u8], floor: usize) -> usize {
    let mut end = bytes.len();
    while end > floor {
        let run = run_len_back(bytes, end, |b| b.is_ascii_alphanumeric());
        if run == 0 {
            end -= 1;
            continue;
        }
        let start = end - run;
        if bytes[start..end]
            .iter()
            .filter(|b| b.is_ascii_alphabetic())
            .count()
            >= 3
        {
            return start;
        }
        end = start;
    }
    floor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interior(text: &str, clusters: &[(usize, usize, bool)]) -> Option<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut q = QuietTracker::new(bytes)?;
        for &(f, l, a) in clusters {
            q.cluster(bytes, f, l, a);
        }
        q.finish(bytes)
    }

    #[test]
    fn short_texts_have_no_interior() {
        assert_eq!(interior(&"word ".repeat(51), &[]), None);
    }

    #[test]
    fn a_text_of_words_keeps_the_reach_at_each_end() {
        let text = "word ".repeat(100);
        let (a, b) = interior(&text, &[]).unwrap();
        assert_eq!(a, 128);
        assert_eq!(b, 500 - 128);
    }

    #[test]
    fn a_run_of_whitespace_is_one_unit() {
        let text = format!("word{}{}", " ".repeat(1000), "word ".repeat(100));
        let (a, _) = interior(&text, &[]).unwrap();
        // "word" (4 units), the blanks (1), then 123 more units.
        assert_eq!(a, 4 + 1000 + 123);
    }

    #[test]
    fn an_active_cluster_pushes_the_quiet_point_past_its_reach() {
        let text = "word ".repeat(200);
        // A harmless cluster keeps the margin only; an active one the reach.
        assert_eq!(interior(&text, &[(300, 302, false)]).unwrap().0, 128);
        assert_eq!(interior(&text, &[(120, 122, false)]).unwrap().0, 138);
        assert_eq!(interior(&text, &[(120, 122, true)]).unwrap().0, 250);
        assert_eq!(interior(&text, &[(900, 902, true)]).unwrap().1, 900 - 128);
    }

    #[test]
    fn clusters_before_the_first_word_count_as_active() {
        let text = format!("1 a 2 b {}", "word ".repeat(100));
        // The cluster at 0 may chain into the field before: it is active.
        assert_eq!(interior(&text, &[(0, 1, false)]).unwrap().0, 129);
        assert_eq!(words(text.as_bytes()).0, 12);
    }

    #[test]
    fn clusters_that_may_read_outside_stay_out_of_the_interior() {
        // No word at all: every cluster may chain to a neighbouring field.
        let text = "ab ".repeat(200);
        assert!(interior(&text, &[]).is_some());
        assert_eq!(interior(&text, &[(300, 301, false)]), None);
        // After the last word: the interior ends before the cluster's reach.
        let text = format!("{}{}", "word ".repeat(100), "ab ".repeat(100));
        let (_, b) = interior(&text, &[(600, 601, false)]).unwrap();
        assert_eq!(b, 600 - 128);
    }

    #[test]
    fn without_a_word_every_cluster_is_active() {
        let text = "1 a ".repeat(100);
        assert_eq!(words(text.as_bytes()), (text.len(), 0));
        let clusters: Vec<(usize, usize, bool)> =
            (0..100).map(|k| (4 * k, 4 * k + 1, false)).collect();
        assert_eq!(interior(&text, &clusters), None);
    }
}
