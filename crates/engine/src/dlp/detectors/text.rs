//! Byte-level helpers of the detectors: digit search, windows around
//! interesting clusters, whitespace-run handling, and the separator view.
//!
//! Job: find digits eight bytes at a time; widen and merge the windows where the
//! alphanumeric regexes run; read a run of whitespace as one unit for distances
//! and as one space in a window ([`WindowView`]); and build the separator view
//! ([`separator_spans`], [`rewrite_separators`]): around candidate clusters, every run of at most
//! [`MAX_SEPARATOR_RUN`] separators (whitespace, `-`, `.`, `/`, `\`, `_`, `+`,
//! `,`, `|`) between two letters or digits becomes one space, and four or more
//! one-character groups in a row are glued (`J G 1 0 3 7 8 2 B` to
//! `JG103782B`).
//!
//! Limits: ASCII only (normalised text: Unicode dashes are already `-`); the
//! separator view covers [`SEPARATOR_CONTEXT`] bytes each side of a candidate
//! (widened to whitespace), not the whole text, so its cost follows the number
//! of candidates. Callers: `detectors/mod.rs`.

use super::*;

pub(super) const WINDOW_PAD: usize = 48;

/// A separator between the groups of an identifier in the separator view:
/// ASCII whitespace, `-` (Unicode dashes are `-` once normalised), `.`, `/`,
/// `\`, `_`, `+`, `,`, `|`.
#[inline(always)]
pub(super) fn is_group_separator(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & GROUP_SEPARATOR != 0
}

/// Class bits of [`BYTE_CLASS`]: ASCII whitespace ([`is_space`]).
const SPACE: u8 = 1;
/// Class bits of [`BYTE_CLASS`]: a separator of the separator view ([`is_group_separator`]).
const GROUP_SEPARATOR: u8 = 2;

/// One byte of class bits per byte value, so each test on the hot paths of
/// the digit pass is one load and one mask (a `matches!` over several bytes
/// compiles to a jump table or a chain of compares that runs per byte).
static BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        let space = matches!(byte, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r');
        if space {
            table[b] |= SPACE | GROUP_SEPARATOR;
        }
        if matches!(byte, b'-' | b'.' | b'/' | b'\\' | b'_' | b'+' | b',' | b'|') {
            table[b] |= GROUP_SEPARATOR;
        }
        b += 1;
    }
    table
};

/// The longest separator run read as one separator in the separator view.
pub(super) const MAX_SEPARATOR_RUN: usize = 5;

/// Whether a digit cluster may be one group of an identifier written with
/// other separators than the digit pass reads (`JG.10.37.82.B`,
/// `943/476/5919`, `4111 - 1111`, `J G 1 0 3 7 8 2 B`): four single-digit
/// groups, three dotted groups, or a separator run that the cluster pass
/// stopped at between the cluster and a letter or digit; and then the chain of
/// tokens the cluster belongs to ([`Chain`]) must be shaped like an identifier:
/// nine digits or more (cards, NHS numbers, passports, IBANs), six with letters
/// beside them (NI numbers), or three pairs of digits (sort codes). So prose
/// (`Route 42. The`, `1,200 people`), dates and references cost no view.
pub(super) fn is_separator_candidate(bytes: &[u8], groups: &[Group], shape: ClusterShape) -> bool {
    let first = groups[0].start;
    let last = groups[groups.len() - 1].end;
    let trigger = shape.singles >= 4
        || (groups.len() >= 3 && shape.dotted)
        || separator_after(bytes, last)
        || separator_before(bytes, first);
    trigger && Chain::of(bytes, groups, shape.digits).looks_like_identifier()
}

/// What the digit pass counted while it read one cluster's groups.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClusterShape {
    /// Digits in all the groups.
    pub(super) digits: usize,
    /// Groups of one digit.
    pub(super) singles: usize,
    /// Some separator between two groups is a dot.
    pub(super) dotted: bool,
}

/// The tokens linked to a cluster by short separator runs, up to a word (a
/// token of three letters or more) either way.
#[derive(Debug, Default)]
struct Chain {
    digits: usize,
    letters: usize,
    /// Every token of digits has two of them (a sort code's shape).
    pairs: bool,
}

impl Chain {
    /// Enough digits for every identifier the view reads.
    const ENOUGH: usize = 9;

    fn of(bytes: &[u8], groups: &[Group], digits: usize) -> Chain {
        let mut chain = Chain {
            digits,
            letters: 0,
            pairs: groups.iter().all(|g| g.len() == 2),
        };
        let is_alnum = |b: u8| b.is_ascii_alphanumeric();
        let mut i = groups[groups.len() - 1].end;
        while chain.digits < Self::ENOUGH {
            let run = run_len_max(bytes, i, MAX_SEPARATOR_RUN + 1, is_group_separator);
            let token = run_len(bytes, i + run, is_alnum);
            if token == 0 || run > MAX_SEPARATOR_RUN || !chain.add(&bytes[i + run..i + run + token])
            {
                break;
            }
            i += run + token;
        }
        let mut i = groups[0].start;
        while chain.digits < Self::ENOUGH {
            let run = run_len_back_max(bytes, i, MAX_SEPARATOR_RUN + 1, is_group_separator);
            if run > MAX_SEPARATOR_RUN || run >= i {
                break;
            }
            let token = run_len_back(bytes, i - run, is_alnum);
            if token == 0 || !chain.add(&bytes[i - run - token..i - run]) {
                break;
            }
            i -= run + token;
        }
        chain
    }

    /// Adds a token; false (not added) for a word.
    fn add(&mut self, token: &[u8]) -> bool {
        let letters = token.iter().filter(|b| b.is_ascii_alphabetic()).count();
        if letters >= 3 {
            return false;
        }
        let digits = token.len() - letters;
        self.letters += letters;
        self.digits += digits;
        self.pairs &= digits == 0 || (digits == 2 && letters == 0);
        true
    }

    fn looks_like_identifier(&self) -> bool {
        self.digits >= Self::ENOUGH
            || (self.digits >= 6 && self.letters >= 2)
            || (self.digits == 6 && self.pairs)
    }
}

/// A separator run after the cluster that the digit pass does not read, then a
/// letter or digit.
fn separator_after(bytes: &[u8], last: usize) -> bool {
    // Prose's usual case first: a word or one space then a word (a run that
    // is all whitespace is read by the digit pass, so never a trigger).
    match bytes.get(last) {
        Some(&b) if is_group_separator(b) => {
            if is_space(b) && !bytes.get(last + 1).is_some_and(|&c| is_group_separator(c)) {
                return false;
            }
        }
        _ => return false,
    }
    separator_after_by_rule(bytes, last)
}

/// [`separator_after`] without its shortcut: the rule itself.
fn separator_after_by_rule(bytes: &[u8], last: usize) -> bool {
    let run = run_len_max(bytes, last, MAX_SEPARATOR_RUN + 1, is_group_separator);
    if run == 0 || run > MAX_SEPARATOR_RUN || !is_alnum_at(bytes, last + run) {
        return false;
    }
    let sep = &bytes[last..last + run];
    let blank = sep.iter().all(|&b| is_space(b));
    let read =
        blank || (run == 1 && matches!(sep[0], b'-' | b'.') && bytes[last + 1].is_ascii_digit());
    !read || (bytes[last + run].is_ascii_alphabetic() && !blank)
}

/// A separator run other than whitespace before the cluster, after a letter or digit.
fn separator_before(bytes: &[u8], first: usize) -> bool {
    // As in `separator_after`: no separator, or one space, is no trigger.
    match first.checked_sub(1).map(|i| bytes[i]) {
        Some(b) if is_group_separator(b) => {
            if is_space(b) && !(first >= 2 && is_group_separator(bytes[first - 2])) {
                return false;
            }
        }
        _ => return false,
    }
    separator_before_by_rule(bytes, first)
}

/// [`separator_before`] without its shortcut: the rule itself.
fn separator_before_by_rule(bytes: &[u8], first: usize) -> bool {
    let run = run_len_back_max(bytes, first, MAX_SEPARATOR_RUN + 1, is_group_separator);
    run > 0
        && run <= MAX_SEPARATOR_RUN
        && first > run
        && is_alnum_at(bytes, first - run - 1)
        && !bytes[first - run..first].iter().all(|&b| is_space(b))
}

/// Context kept on each side of a separator-view candidate.
pub(super) const SEPARATOR_CONTEXT: usize = 64;

/// The windows around the candidates, each rewritten so that every separator
/// run of at most [`MAX_SEPARATOR_RUN`] bytes between two alphanumerics is one
/// space, and a run of four or more one-character groups is glued into one
/// group (`J G 1 0 3 7 8 2 B` to `JG103782B`).
pub(super) fn separator_spans(text: &str, candidates: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for &(first, last) in candidates {
        let mut start = first.saturating_sub(SEPARATOR_CONTEXT);
        let mut end = (last + SEPARATOR_CONTEXT).min(bytes.len());
        for _ in 0..16 {
            if start == 0 || is_space(bytes[start - 1]) {
                break;
            }
            start -= 1;
        }
        for _ in 0..16 {
            if end >= bytes.len() || is_space(bytes[end]) {
                break;
            }
            end += 1;
        }
        let (start, end) = char_window(text, start, end);
        match spans.last_mut() {
            Some(prev) if start <= prev.1 => prev.1 = prev.1.max(end),
            _ => spans.push((start, end)),
        }
    }
    spans
}

/// Appends the separator view of `window` to `out`.
pub(super) fn rewrite_separators(window: &str, out: &mut String) {
    let bytes = window.as_bytes();
    // Tokens: (start, end) of alphanumeric runs, and whether the gap before
    // each one is a short separator run after another alphanumeric token.
    out.reserve(window.len());
    let mut i = 0;
    // Pending one-character groups, glued when four or more.
    let mut singles: Vec<u8> = Vec::new();
    let flush = |out: &mut String, singles: &mut Vec<u8>| {
        if singles.len() >= 4 {
            out.extend(singles.iter().map(|&b| b as char));
        } else {
            for (k, &b) in singles.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                out.push(b as char);
            }
        }
        singles.clear();
    };
    let mut prev_alnum = false;
    while i < bytes.len() {
        let alnum = run_len(bytes, i, |b| b.is_ascii_alphanumeric());
        if alnum > 0 {
            if alnum == 1 {
                singles.push(bytes[i]);
            } else {
                if !singles.is_empty() {
                    flush(out, &mut singles);
                    out.push(' ');
                }
                out.push_str(&window[i..i + alnum]);
            }
            i += alnum;
            prev_alnum = true;
            continue;
        }
        let sep = run_len(bytes, i, is_group_separator);
        if sep > 0 && sep <= MAX_SEPARATOR_RUN && prev_alnum && is_alnum_at(bytes, i + sep) {
            if singles.is_empty() {
                out.push(' ');
            }
            i += sep;
            continue;
        }
        flush(out, &mut singles);
        prev_alnum = false;
        // Copy one character (or the whole separator run) as it is.
        let n = if sep > 0 {
            sep
        } else {
            window[i..].chars().next().map_or(1, char::len_utf8)
        };
        out.push_str(&window[i..i + n]);
        i += n;
    }
    flush(out, &mut singles);
}

/// Position of the first ASCII digit, sixteen bytes (two words) at a time,
/// then a word, then byte by byte.
#[inline]
pub(super) fn find_digit(bytes: &[u8]) -> Option<usize> {
    const HI: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // Per 7-bit lane: adding 0x50 sets bit 7 iff b >= 0x30; adding 0x46 iff b >= 0x3A.
    const GE_0: u64 = 0x5050_5050_5050_5050;
    const GE_COLON: u64 = 0x4646_4646_4646_4646;
    let digit_lanes = |word: &[u8]| {
        let x = <[u8; 8]>::try_from(word).map_or(0, u64::from_le_bytes);
        let low = x & LOW7;
        (low + GE_0) & !(low + GE_COLON) & !x & HI
    };
    let mut chunks = bytes.chunks_exact(16);
    let mut base = 0;
    for chunk in &mut chunks {
        let (a, b) = (digit_lanes(&chunk[..8]), digit_lanes(&chunk[8..]));
        if a | b != 0 {
            let lane = if a != 0 {
                a.trailing_zeros() / 8
            } else {
                8 + b.trailing_zeros() / 8
            };
            return Some(base + lane as usize);
        }
        base += 16;
    }
    let mut words = chunks.remainder().chunks_exact(8);
    for word in &mut words {
        let lanes = digit_lanes(word);
        if lanes != 0 {
            return Some(base + (lanes.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    words
        .remainder()
        .iter()
        .position(u8::is_ascii_digit)
        .map(|p| base + p)
}

/// A stretch of text around interesting digit clusters.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) start: usize,
    pub(super) end: usize,
    /// Some cluster inside has six digits or more.
    pub(super) many_digits: bool,
    /// Some cluster inside touches a capital letter.
    pub(super) capital: bool,
    /// The window may hold a run of whitespace.
    pub(super) space_run: bool,
}

/// Adds `[first-PAD, last+PAD]` (a run of whitespace counting as one byte),
/// widened to whitespace and char boundaries, merging overlaps. The walk back
/// stops at the previous window and the walk on starts at its end, so no byte is
/// walked twice however long the whitespace runs are.
pub(super) fn push_window(
    windows: &mut Vec<Window>,
    text: &str,
    first: usize,
    last: usize,
    many_digits: bool,
    capital: bool,
) {
    let bytes = text.as_bytes();
    let widen = |mut start: usize, mut end: usize| {
        for _ in 0..64 {
            if start == 0 || is_space(bytes[start - 1]) {
                break;
            }
            start -= 1;
        }
        for _ in 0..64 {
            if end >= bytes.len() || is_space(bytes[end]) {
                break;
            }
            end += 1;
        }
        char_window(text, start, end)
    };
    // Bytes are units unless the window holds a whitespace run (the rare case).
    let (mut start, mut end) = widen(
        first.saturating_sub(WINDOW_PAD),
        (last + WINDOW_PAD).min(bytes.len()),
    );
    let space_run = has_space_run(&bytes[start..end]);
    if space_run {
        let floor = windows.last().map_or(0, |w| w.end);
        (start, end) = widen(
            walk_back(bytes, first, WINDOW_PAD, floor),
            walk_forward(bytes, last.max(floor), WINDOW_PAD),
        );
    }
    match windows.last_mut() {
        Some(prev) if start <= prev.end => {
            prev.end = prev.end.max(end);
            prev.many_digits |= many_digits;
            prev.capital |= capital;
            prev.space_run |= space_run;
        }
        _ => windows.push(Window {
            start,
            end,
            many_digits,
            capital,
            space_run,
        }),
    }
}

/// ASCII whitespace: space, tab, line feed, vertical tab, form feed, carriage return.
#[inline(always)]
pub(super) fn is_space(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & SPACE != 0
}

/// `from` moved back by `units` units (a byte, or a whole run of whitespace), not below `floor`.
#[inline]
pub(super) fn walk_back(bytes: &[u8], from: usize, units: usize, floor: usize) -> usize {
    let mut i = from.min(bytes.len());
    for _ in 0..units {
        if i <= floor {
            return i;
        }
        i -= 1;
        if is_space(bytes[i]) {
            while i > floor && is_space(bytes[i - 1]) {
                i -= 1;
            }
        }
    }
    i
}

/// `from` moved on by `units` units (a byte, or a whole run of whitespace).
#[inline]
pub(super) fn walk_forward(bytes: &[u8], from: usize, units: usize) -> usize {
    let mut i = from.min(bytes.len());
    for _ in 0..units {
        match bytes.get(i) {
            None => break,
            Some(&b) if is_space(b) => i += run_len(bytes, i, is_space),
            Some(_) => i += 1,
        }
    }
    i
}

/// Whether `[from, to)` spans at most `units` units (a run of whitespace counting as one).
#[inline]
pub(super) fn within_units(bytes: &[u8], from: usize, to: usize, units: usize) -> bool {
    to.saturating_sub(from) <= units || walk_forward(bytes, from, units) >= to
}

/// Whether the bytes may hold a run of two or more whitespace characters (two
/// spaces, CR LF, blank lines): true for those, and for any two ASCII control
/// characters or spaces in a row. Eight bytes at a time.
#[inline]
pub(super) fn has_space_run(bytes: &[u8]) -> bool {
    const HI: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // Per 7-bit lane, adding 0x5F sets bit 7 iff the lane is above 0x20; no
    // carry leaves a lane.
    const ABOVE_SPACE: u64 = 0x5F5F_5F5F_5F5F_5F5F;
    let mut prev = 0u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let blank = !(((x & LOW7) + ABOVE_SPACE) | x) & HI;
        if blank & ((blank << 8) | prev) != 0 {
            return true;
        }
        prev = blank >> 56;
    }
    let mut prev = prev != 0;
    for &b in chunks.remainder() {
        if b <= b' ' && prev {
            return true;
        }
        prev = b <= b' ';
    }
    false
}

/// A window of the text with every run of whitespace read as one space, so the
/// window regexes (which accept one whitespace character between parts) see
/// `JG\t10\n\n37  82 B` as `JG 10 37 82 B`. Borrowed when the window has no run.
pub(super) struct WindowView<'t> {
    pub(super) text: std::borrow::Cow<'t, str>,
    /// Offset of the window in the whole text.
    pub(super) start: usize,
    /// For each byte of a collapsed `text` (and one past its end), the offset
    /// in the whole text; empty when `text` is borrowed.
    pub(super) map: Vec<usize>,
}

impl<'t> WindowView<'t> {
    /// The window `[start, end)`; `space_run` false when it is known to hold
    /// no run of whitespace (then borrowed, without a look).
    #[inline]
    pub(super) fn new(text: &'t str, start: usize, end: usize, space_run: bool) -> WindowView<'t> {
        let raw = &text[start..end];
        let bytes = raw.as_bytes();
        if !space_run || !has_space_run(bytes) {
            return WindowView {
                text: std::borrow::Cow::Borrowed(raw),
                start,
                map: Vec::new(),
            };
        }
        let mut out = String::with_capacity(raw.len());
        let mut map = Vec::with_capacity(raw.len() + 1);
        let mut i = 0;
        while i < bytes.len() {
            let run = run_len(bytes, i, |b| !is_space(b));
            // Whitespace is ASCII: `i` and `i + run` are char boundaries.
            out.push_str(&raw[i..i + run]);
            map.extend(start + i..start + i + run);
            i += run;
            if i < bytes.len() {
                out.push(' ');
                map.push(start + i);
                i += run_len(bytes, i, is_space);
            }
        }
        map.push(end);
        WindowView {
            text: std::borrow::Cow::Owned(out),
            start,
            map,
        }
    }

    /// The offset in the whole text of byte `i` of the view.
    #[inline]
    pub(super) fn original(&self, i: usize) -> usize {
        if self.map.is_empty() {
            self.start + i
        } else {
            self.map.get(i).copied().unwrap_or(self.start + i)
        }
    }
}

/// `[start, end)` clamped to the text and moved outwards to char boundaries.
#[inline]
pub(super) fn char_window(text: &str, mut start: usize, end: usize) -> (usize, usize) {
    let mut end = end.min(text.len());
    while start > 0 && !text.is_char_boundary(start) {
        start -= 1;
    }
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    (start.min(end), end)
}

#[inline]
pub(super) fn is_alnum_at(bytes: &[u8], i: usize) -> bool {
    bytes.get(i).is_some_and(u8::is_ascii_alphanumeric)
}

#[inline]
pub(super) fn run_len(bytes: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> usize {
    bytes
        .get(from..)
        .map_or(0, |rest| rest.iter().take_while(|&&b| pred(b)).count())
}

/// `run_len`, counting at most `max` bytes (a longer run reads as `max`).
#[inline]
pub(super) fn run_len_max(
    bytes: &[u8],
    from: usize,
    max: usize,
    pred: impl Fn(u8) -> bool,
) -> usize {
    bytes.get(from..).map_or(0, |rest| {
        rest.iter().take(max).take_while(|&&b| pred(b)).count()
    })
}

/// `run_len_back`, counting at most `max` bytes (a longer run reads as `max`).
#[inline]
pub(super) fn run_len_back_max(
    bytes: &[u8],
    to: usize,
    max: usize,
    pred: impl Fn(u8) -> bool,
) -> usize {
    bytes.get(..to).map_or(0, |head| {
        head.iter()
            .rev()
            .take(max)
            .take_while(|&&b| pred(b))
            .count()
    })
}

/// How many bytes right before `to` satisfy `pred`.
#[inline]
pub(super) fn run_len_back(bytes: &[u8], to: usize, pred: impl Fn(u8) -> bool) -> usize {
    bytes.get(..to).map_or(0, |head| {
        head.iter().rev().take_while(|&&b| pred(b)).count()
    })
}

pub(super) fn strip_upper(s: &str) -> String {
    s.chars()
        .filter(|&c| !matches!(c, '-' | '.' | ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r'))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Whether `word` (lower-case ASCII, words separated by one space) occurs,
/// case-insensitively, within `within` bytes before `start` or after `end`; a
/// run of whitespace counts as one byte and matches the space in `word`.
pub(super) fn keyword_near(
    text: &str,
    start: usize,
    end: usize,
    word: &str,
    within: usize,
) -> bool {
    let bytes = text.as_bytes();
    let reach = within + word.len();
    let ws = walk_back(bytes, start, reach, 0);
    let we = walk_forward(bytes, end, reach);
    let mut hay: Vec<u8> = Vec::with_capacity(we - ws);
    let mut prev_space = false;
    for &b in &bytes[ws..we] {
        if is_space(b) {
            if !prev_space {
                hay.push(b' ');
            }
            prev_space = true;
        } else {
            hay.push(b.to_ascii_lowercase());
            prev_space = false;
        }
    }
    memchr::memmem::find(&hay, word.as_bytes()).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_classes_are_the_documented_sets() {
        for b in 0..=255u8 {
            let space = matches!(b, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r');
            let separator =
                space || matches!(b, b'-' | b'.' | b'/' | b'\\' | b'_' | b'+' | b',' | b'|');
            assert_eq!(is_space(b), space, "{b:#04x}");
            assert_eq!(is_group_separator(b), separator, "{b:#04x}");
        }
    }

    #[test]
    fn the_prose_shortcut_agrees_with_the_separator_rule() {
        // Every string of up to five bytes over letters, digits, separators
        // and other punctuation, read at every position.
        let alphabet = b"a7 \t-./,:";
        let mut checked = 0;
        for len in 0..=5u32 {
            for n in 0..alphabet.len().pow(len) {
                let mut k = n;
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[k % alphabet.len()];
                        k /= alphabet.len();
                        b
                    })
                    .collect();
                for at in 0..=bytes.len() {
                    let text = String::from_utf8_lossy(&bytes);
                    assert_eq!(
                        separator_after(&bytes, at),
                        separator_after_by_rule(&bytes, at),
                        "after {at} in {text:?}"
                    );
                    assert_eq!(
                        separator_before(&bytes, at),
                        separator_before_by_rule(&bytes, at),
                        "before {at} in {text:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 60_000, "{checked}");
    }
}
