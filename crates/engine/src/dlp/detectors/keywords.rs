//! Whole-word keyword search for the custom detectors.
//!
//! Job: find, left to right and without overlap, every place where a keyword
//! matches as a whole word (ASCII case ignored): at each position where a word
//! may start, the longest keyword that ends where the word ends. Only such
//! positions are tried. When every keyword is [`MIN_SKIP_LEN`] bytes or longer,
//! a Wu–Manber skip over the text finds them: for the pair of bytes ending a
//! window as long as the shortest keyword, a table gives how far the window
//! may move before some keyword's first bytes could fill it, so ordinary text
//! is read about one pair in every few bytes and only windows whose last pair
//! ends a keyword's first bytes are tried. Otherwise (a short keyword), the
//! block scan: eight bytes at a time (SWAR), the bytes that follow a byte that
//! is not an ASCII letter. Either way, a two-byte gate (a bit per pair of
//! first bytes of the keywords) drops almost all of the positions, a hashed
//! three-byte gate and the character before (no letter or digit) most of the
//! rest; the survivors walk a trie of the folded keywords, keeping the longest
//! match that ends at a word edge, so a shorter keyword inside a longer one
//! cut short by the next letter (`ab` in `ab cdex` with keywords `ab`,
//! `ab cde`) still counts. The gates and the skip only drop positions where no
//! keyword can start, so both scans report the same matches.
//!
//! Limits: ASCII letters are folded, other bytes must match exactly (the caller
//! adds the lower- and upper-case forms of non-ASCII keywords). A word edge is
//! a character that is not alphanumeric (Unicode), or either end of the text.
//! Memory is a 256-entry root, 24 KiB of gates, a 64 KiB skip table (when the
//! keywords are long enough) and about nine bytes per keyword byte. Text made
//! of keywords' first bytes over and over reads every pair (no faster than the
//! block scan). Callers: `custom.rs`.

use std::collections::BTreeMap;

/// No node: the end of a walk.
const NONE: u32 = u32::MAX;

/// Bytes of text whose candidate positions are gathered at once.
const BLOCK: usize = 256;

/// The shortest keyword length for which the skip scan is used: below it the
/// windows are too short to skip much.
const MIN_SKIP_LEN: usize = 4;

/// Interleaved scans of the skip scan.
const LANES: usize = 4;

/// Window ends each lane of the skip scan covers at most per round (and so
/// keeps at most).
const LANE_SPAN: usize = 512;

/// The longest window of the skip scan (a shift must fit the table's bytes,
/// and longer windows skip no more in practice).
const MAX_SKIP_WINDOW: usize = 32;

/// The Wu–Manber table of the skip scan over windows of `window` bytes.
#[derive(Debug)]
struct Skip {
    /// The length of the window: the shortest keyword, at most [`MAX_SKIP_WINDOW`].
    window: usize,
    /// For the two text bytes `[a, b]` ending a window, at index
    /// `u16::from_le_bytes([a, b])`: how far the window may move on before its
    /// end could be in a keyword's first `window` bytes (0: try the window).
    shift: Box<[u8; 65536]>,
}

impl Skip {
    /// The table for `patterns`, `None` when some pattern is shorter than [`MIN_SKIP_LEN`].
    fn new(patterns: &[String]) -> Option<Skip> {
        let shortest = patterns.iter().map(String::len).min()?;
        if shortest < MIN_SKIP_LEN {
            return None;
        }
        let window = shortest.min(MAX_SKIP_WINDOW);
        let mut shift = Box::new([(window - 1) as u8; 65536]);
        for pattern in patterns {
            let prefix = &pattern.as_bytes()[..window];
            for j in 1..window {
                let distance = (window - 1 - j) as u8;
                for &a in &cases(prefix[j - 1]) {
                    for &b in &cases(prefix[j]) {
                        let slot = &mut shift[usize::from(u16::from_le_bytes([a, b]))];
                        *slot = (*slot).min(distance);
                    }
                }
            }
        }
        Some(Skip { window, shift })
    }
}

/// The text bytes that fold to the same byte as `b` (both cases of a letter).
fn cases(b: u8) -> [u8; 2] {
    [b.to_ascii_lowercase(), b.to_ascii_uppercase()]
}

/// Appends the position of each lane set in `starts` (chunk at `base`) to
/// `out[n..]`; the first four are written unconditionally (most chunks have
/// fewer, and a loop on their number would mispredict), and only the set ones
/// counted. Returns the new length.
#[inline(always)]
fn push_lanes(out: &mut [usize; BLOCK + 8], n: usize, base: usize, mut starts: u64) -> usize {
    // Lanes hold bit 7 only: move each to bit 0 and sum the bytes into the top
    // one with a multiply (`count_ones` is a long bit-twiddling sequence on a
    // target without POPCNT, the x86-64 baseline).
    let count = (((starts >> 7) & LO).wrapping_mul(LO) >> 56) as usize;
    // One bounds check for the eight slots a chunk may fill.
    let Some(slots) = out
        .get_mut(n..n + 8)
        .and_then(|s| <&mut [usize; 8]>::try_from(s).ok())
    else {
        return n;
    };
    for slot in &mut slots[..4] {
        *slot = base + (starts.trailing_zeros() >> 3) as usize;
        starts &= starts.wrapping_sub(1);
    }
    for slot in &mut slots[4..] {
        if starts == 0 {
            break;
        }
        *slot = base + (starts.trailing_zeros() >> 3) as usize;
        starts &= starts.wrapping_sub(1);
    }
    n + count
}

/// The keywords of one profile, compiled.
#[derive(Debug)]
pub(super) struct Keywords {
    /// Bit `(a << 8) | b` is set when some keyword starts with the bytes `a`,
    /// `b` in some ASCII case (for a one-byte keyword, with `a` and any byte).
    gate: Box<[u64; 1024]>,
    /// Bit `(a << 8) | b` for the folded first bytes of a keyword of one or two
    /// bytes (for one byte, with any `b`): no third byte to check.
    short: Box<[u64; 1024]>,
    /// Bit [`triple`] of the folded first three bytes of each longer keyword.
    third: Box<[u64; 1024]>,
    /// Every keyword starts with an ASCII letter: only letters are tried.
    letters_only: bool,
    /// The node after the first folded byte, `NONE` when no keyword starts so.
    root: [u32; 256],
    nodes: Vec<Node>,
    /// Edges of every node, sorted by folded byte within a node.
    edge_bytes: Vec<u8>,
    edge_nodes: Vec<u32>,
    /// The skip scan's table, `None` when a keyword is too short for it.
    skip: Option<Skip>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    first_edge: u32,
    edges: u32,
    /// The keyword ending here, `NONE` when none.
    pattern: u32,
}

impl Keywords {
    /// Compiles `patterns` (non-empty, distinct ignoring ASCII case); a match
    /// reports the index of its pattern.
    pub(super) fn new(patterns: &[String]) -> Keywords {
        // A trie of maps first, then flattened.
        let mut children: Vec<BTreeMap<u8, u32>> = vec![BTreeMap::new()];
        let mut ends: Vec<u32> = vec![NONE];
        let mut gate = Box::new([0u64; 1024]);
        let mut short = Box::new([0u64; 1024]);
        let mut third = Box::new([0u64; 1024]);
        let mut letters_only = true;
        for (index, pattern) in patterns.iter().enumerate() {
            let bytes = pattern.as_bytes();
            let Some(&first) = bytes.first() else {
                continue;
            };
            let a = fold(first);
            letters_only &= a.is_ascii_alphabetic();
            let seconds: Vec<u8> = match bytes.get(1) {
                Some(&b) => vec![b.to_ascii_lowercase(), b.to_ascii_uppercase()],
                None => (0..=255).collect(),
            };
            for a in [a, a.to_ascii_uppercase()] {
                for &b in &seconds {
                    set_bit(&mut gate[..], pair(a, b));
                }
            }
            match bytes {
                [_] | [_, _] => seconds
                    .iter()
                    .for_each(|&b| set_bit(&mut short[..], pair(a, fold(b)))),
                [_, b, c, ..] => set_bit(&mut third[..], triple(a, fold(*b), fold(*c))),
                [] => {}
            }
            let mut node = 0usize;
            for &byte in bytes {
                let next = children.len() as u32;
                let child = *children[node].entry(fold(byte)).or_insert(next);
                if child == next {
                    children.push(BTreeMap::new());
                    ends.push(NONE);
                }
                node = child as usize;
            }
            if ends[node] == NONE {
                ends[node] = index as u32;
            }
        }
        let mut root = [NONE; 256];
        for (&byte, &child) in &children[0] {
            root[byte as usize] = child;
        }
        // Unfolded capitals share their lower-case entry.
        for upper in b'A'..=b'Z' {
            root[upper as usize] = root[upper.to_ascii_lowercase() as usize];
        }
        let mut nodes = Vec::with_capacity(children.len());
        let mut edge_bytes = Vec::new();
        let mut edge_nodes = Vec::new();
        for (map, &pattern) in children.iter().zip(&ends) {
            nodes.push(Node {
                first_edge: edge_bytes.len() as u32,
                edges: map.len() as u32,
                pattern,
            });
            for (&byte, &child) in map {
                edge_bytes.push(byte);
                edge_nodes.push(child);
            }
        }
        Keywords {
            gate,
            short,
            third,
            letters_only,
            root,
            nodes,
            edge_bytes,
            edge_nodes,
            skip: Skip::new(patterns),
        }
    }

    /// Calls `found(start, end, pattern)` for each whole-word match, left to
    /// right, without overlap.
    pub(super) fn for_each_match(&self, text: &str, found: impl FnMut(usize, usize, usize)) {
        match &self.skip {
            Some(skip) => self.skip_scan(skip, text, found),
            None => self.block_scan(text, found),
        }
    }

    /// The skip scan (Wu–Manber over windows of `skip.window` bytes): only the
    /// windows whose last two bytes may end some keyword's first bytes are
    /// tried, at the window's start. Each step waits for the one before (the
    /// next pair to read depends on the shift), so [`LANES`] scans over
    /// neighbouring stretches of window ends run interleaved, each keeping its
    /// windows to try; then those are tried in text order.
    fn skip_scan(&self, skip: &Skip, text: &str, mut found: impl FnMut(usize, usize, usize)) {
        let bytes = text.as_bytes();
        let window = skip.window;
        let shift = &skip.shift;
        let mut resume = 0usize;
        // The window ends (the last byte of a window) each lane has kept, from
        // the lane's first.
        let mut kept = [[0u16; LANE_SPAN]; LANES];
        let mut from = window - 1;
        while from < bytes.len() {
            let span = (bytes.len() - from).div_ceil(LANES).min(LANE_SPAN);
            let mut ends = [0usize; LANES];
            let mut limits = [0usize; LANES];
            for k in 0..LANES {
                ends[k] = (from + k * span).min(bytes.len());
                limits[k] = (from + (k + 1) * span).min(bytes.len());
            }
            let firsts = ends;
            let mut counts = [0usize; LANES];
            // One step of lane `k`: keep the window end, counted only when the
            // shift is 0 (then move on by one). `end >= window - 1 >= 1`.
            let mut step = |k: usize, ends: &mut [usize; LANES]| {
                let end = ends[k];
                let (Some(&a), Some(&b)) = (bytes.get(end - 1), bytes.get(end)) else {
                    ends[k] = usize::MAX;
                    return;
                };
                let by = usize::from(shift[usize::from(u16::from_le_bytes([a, b]))]);
                let hit = usize::from(by == 0);
                if let Some(slot) = kept[k].get_mut(counts[k]) {
                    // Below `LANE_SPAN` while the lane runs.
                    *slot = (end - firsts[k]) as u16;
                }
                counts[k] += hit;
                ends[k] = end + by + hit;
            };
            while (0..LANES).all(|k| ends[k] < limits[k]) {
                for k in 0..LANES {
                    step(k, &mut ends);
                }
            }
            for k in 0..LANES {
                while ends[k] < limits[k] {
                    step(k, &mut ends);
                }
            }
            for ((lane, &count), &first) in kept.iter().zip(&counts).zip(&firsts) {
                for &offset in &lane[..count.min(LANE_SPAN)] {
                    let s = first + usize::from(offset) + 1 - window;
                    if s < resume || !self.starts_at(bytes, s) || !self.may_start(text, s) {
                        continue;
                    }
                    if let Some((stop, pattern)) = self.longest_at(text, s) {
                        found(s, stop, pattern);
                        resume = stop;
                    }
                }
            }
            from += LANES * span;
        }
    }

    /// The block scan's tests at one position: after a byte that is not an
    /// ASCII letter, at a letter if every keyword starts with one, and past
    /// the two-byte gate.
    #[inline]
    fn starts_at(&self, bytes: &[u8], s: usize) -> bool {
        let letter = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_alphabetic);
        if s > 0 && letter(s - 1) || self.letters_only && !letter(s) {
            return false;
        }
        let a = bytes.get(s).copied().unwrap_or(0);
        let b = bytes.get(s + 1).copied().unwrap_or(0);
        let bit = (usize::from(a) << 8) | usize::from(b);
        (self.gate[bit >> 6] >> (bit & 63)) & 1 != 0
    }

    /// The block scan: every position after a byte that is not an ASCII letter.
    fn block_scan(&self, text: &str, mut found: impl FnMut(usize, usize, usize)) {
        let bytes = text.as_bytes();
        let mut resume = 0usize;
        // Whether the byte before the chunk is an ASCII letter (in bit 7).
        let mut carry = 0u64;
        // A block at a time, in three stages without a data-dependent branch
        // in the first two: the candidate positions, those past the two-byte
        // gate, then the rest of the checks and the walk.
        let mut candidates = [0usize; BLOCK + 8];
        for (index, block) in bytes.chunks(BLOCK).enumerate() {
            let mut n = 0;
            let mut base = index * BLOCK;
            let mut chunks = block.chunks_exact(8);
            for chunk in &mut chunks {
                let x = chunk.try_into().map_or(0, u64::from_le_bytes);
                let starts = starts(x, &mut carry, self.letters_only);
                n = push_lanes(&mut candidates, n, base, starts);
                base += 8;
            }
            let rest = chunks.remainder();
            if !rest.is_empty() {
                let mut chunk = [0u8; 8];
                chunk[..rest.len()].copy_from_slice(rest);
                let x = u64::from_le_bytes(chunk);
                // Only the bytes of the text (padding is not a start).
                let starts =
                    starts(x, &mut carry, self.letters_only) & (HI >> (8 * (8 - rest.len())));
                n = push_lanes(&mut candidates, n, base, starts);
            }
            let mut kept = 0;
            for i in 0..n.min(BLOCK) {
                let s = candidates[i];
                let a = bytes.get(s).copied().unwrap_or(0);
                let b = bytes.get(s + 1).copied().unwrap_or(0);
                let bit = (usize::from(a) << 8) | usize::from(b);
                let pass = (self.gate[bit >> 6] >> (bit & 63)) & 1;
                candidates[kept] = s;
                kept += pass as usize;
            }
            for &s in &candidates[..kept.min(BLOCK)] {
                if s < resume || !self.may_start(text, s) {
                    continue;
                }
                if let Some((end, pattern)) = self.longest_at(text, s) {
                    found(s, end, pattern);
                    resume = end;
                }
            }
        }
    }

    /// Past the two-byte gate: the third byte (or a short keyword), then the
    /// character before `s`.
    #[inline(never)]
    fn may_start(&self, text: &str, s: usize) -> bool {
        let bytes = text.as_bytes();
        let byte = |i: usize| bytes.get(i).map_or(0, |&b| fold(b));
        let (a, b) = (byte(s), byte(s + 1));
        (has_bit(&self.short[..], pair(a, b))
            || has_bit(&self.third[..], triple(a, b, byte(s + 2))))
            && edge_before(text, s)
    }

    /// The longest keyword starting at `s` that ends at a word edge.
    #[inline(never)]
    fn longest_at(&self, text: &str, s: usize) -> Option<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut node = self.root[bytes[s] as usize];
        let mut best = None;
        let mut j = s + 1;
        while node != NONE {
            let n = self.nodes[node as usize];
            if n.pattern != NONE && edge_after(text, j) {
                best = Some((j, n.pattern as usize));
            }
            let Some(&byte) = bytes.get(j) else {
                break;
            };
            let c = fold(byte);
            let from = n.first_edge as usize;
            let edges = &self.edge_bytes[from..from + n.edges as usize];
            node = match edges.iter().position(|&e| e == c) {
                Some(k) => self.edge_nodes[from + k],
                None => NONE,
            };
            j += 1;
        }
        best
    }
}

/// Bit 7 of each byte of chunk `x` where a keyword may start: after a byte
/// that is not an ASCII letter (a superset: the gates check the first bytes,
/// [`edge_before`] the character before), and at a letter if `letters`.
#[inline(always)]
fn starts(x: u64, carry: &mut u64, letters: bool) -> u64 {
    let folded = (x | (LO * 0x20)) & !HI;
    let letter = at_least(folded, b'a') & !at_least(folded, b'z' + 1) & !x;
    let after_other = !((letter << 8) | *carry) & HI;
    *carry = letter >> 56;
    if letters {
        after_other & letter
    } else {
        after_other
    }
}

const HI: u64 = 0x8080_8080_8080_8080;
const LO: u64 = 0x0101_0101_0101_0101;

/// High bit of each byte of `v` (all below 0x80) that is `>= lo` (`lo <= 0x80`).
#[inline]
fn at_least(v: u64, lo: u8) -> u64 {
    ((v | HI) - LO * u64::from(lo)) & HI
}

/// High bit of each byte of `x` that is an ASCII letter or digit.
#[cfg(test)]
fn alnum_mask(x: u64) -> u64 {
    let ascii = !x & HI;
    let y = x & !HI;
    let digit = at_least(y, b'0') & !at_least(y, b'9' + 1);
    let folded = y | (LO * 0x20);
    let letter = at_least(folded, b'a') & !at_least(folded, b'z' + 1);
    (digit | letter) & ascii
}

#[inline]
fn fold(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

#[inline]
fn pair(a: u8, b: u8) -> usize {
    (usize::from(a) << 8) | usize::from(b)
}

/// A 16-bit hash of three folded bytes (the [`Keywords::third`] gate).
#[inline]
fn triple(a: u8, b: u8, c: u8) -> usize {
    let word = (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
    (word.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

#[inline]
fn has_bit(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

fn set_bit(bits: &mut [u64], i: usize) {
    if let Some(word) = bits.get_mut(i / 64) {
        *word |= 1 << (i % 64);
    }
}

/// No letter or digit (Unicode) right before `s`.
#[inline]
fn edge_before(text: &str, s: usize) -> bool {
    let bytes = text.as_bytes();
    match s.checked_sub(1).map(|i| bytes[i]) {
        None => true,
        Some(b) if b < 0x80 => !b.is_ascii_alphanumeric(),
        Some(_) => !text
            .get(..s)
            .and_then(|t| t.chars().next_back())
            .is_some_and(char::is_alphanumeric),
    }
}

/// No letter or digit (Unicode) right after `e`; false when `e` is inside a character.
#[inline]
fn edge_after(text: &str, e: usize) -> bool {
    match text.as_bytes().get(e) {
        None => true,
        Some(&b) if b < 0x80 => !b.is_ascii_alphanumeric(),
        Some(_) => text
            .get(e..)
            .is_some_and(|t| !t.chars().next().is_some_and(char::is_alphanumeric)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn masks_agree_with_the_byte_tests() {
        for b in 0..=255u8 {
            let x = u64::from(b) << 24 | 0x20;
            let bit = |m: u64| m & (0x80 << 24) != 0;
            assert_eq!(bit(alnum_mask(x)), b.is_ascii_alphanumeric(), "{b:#x}");
            // The byte after `b` (lane 4) may start a keyword unless `b` is a letter.
            let mut carry = 0;
            let after = starts(x << 8, &mut carry, false) & (0x80 << 40) != 0;
            assert_eq!(after, !b.is_ascii_alphabetic(), "{b:#x}");
            let at = starts(x << 8, &mut carry, true) & (0x80 << 32) != 0;
            assert_eq!(at, b.is_ascii_alphabetic(), "{b:#x}");
        }
    }

    fn matches(patterns: &[&str], text: &str) -> Vec<(usize, usize, usize)> {
        let k = Keywords::new(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        let mut out = Vec::new();
        k.for_each_match(text, |s, e, p| out.push((s, e, p)));
        out
    }

    #[test]
    fn whole_words_longest_first_across_chunks() {
        assert_eq!(matches(&["ab", "ab cde"], "ab cdex"), [(0, 2, 0)]);
        assert_eq!(matches(&["ab", "ab cde"], "xx AB CDE"), [(3, 9, 1)]);
        // Every offset against the eight-byte chunks.
        for pad in 0..20 {
            let text = format!("{}Nightjar, nightjarx", " ".repeat(pad));
            assert_eq!(matches(&["nightjar"], &text), [(pad, pad + 8, 0)], "{pad}");
        }
        assert_eq!(
            matches(&["#tag", "x"], "a#tag #tag x"),
            [(6, 10, 0), (11, 12, 1)]
        );
        assert_eq!(matches(&["\u{e9}t\u{e9}"], "\u{e9}t\u{e9}!"), [(0, 5, 0)]);
        assert!(matches(&["t\u{e9}"], "\u{e9}t\u{e9}").is_empty());
        // After a digit, not a whole word; one- and two-byte keywords pass the gates.
        assert!(matches(&["pm"], "5pm").is_empty());
        assert_eq!(matches(&["pm", "x"], "5 pm x"), [(2, 4, 0), (5, 6, 1)]);
        assert_eq!(matches(&["pm", "1x"], "5 pm 1x"), [(2, 4, 0), (5, 7, 1)]);
        assert_eq!(matches(&["pm", "1x"], "pm+1x 11x"), [(0, 2, 0), (3, 5, 1)]);
        assert_eq!(matches(&["the cat"], "then the cat"), [(5, 12, 0)]);
    }

    /// `(start, end, pattern)` of each match, in order.
    type Matches = Vec<(usize, usize, usize)>;

    fn both_scans(k: &Keywords, text: &str) -> (Matches, Matches) {
        let (mut blocks, mut skips) = (Vec::new(), Vec::new());
        k.block_scan(text, |s, e, p| blocks.push((s, e, p)));
        let skip = k.skip.as_ref().expect("keywords long enough to skip");
        k.skip_scan(skip, text, |s, e, p| skips.push((s, e, p)));
        (blocks, skips)
    }

    #[test]
    fn the_skip_scan_is_used_only_for_long_enough_keywords() {
        let k = |p: &[&str]| Keywords::new(&p.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        assert!(k(&["abc", "nightjar"]).skip.is_none());
        assert_eq!(
            k(&["abcd", "nightjar"]).skip.as_ref().map(|s| s.window),
            Some(4)
        );
        let long = "x".repeat(100);
        assert_eq!(
            k(&[&long]).skip.as_ref().map(|s| s.window),
            Some(MAX_SKIP_WINDOW)
        );
    }

    #[test]
    fn the_skip_scan_agrees_with_the_block_scan() {
        let sets: &[&[&str]] = &[
            &[
                "nightjar",
                "Operation Kestrel",
                "kite",
                "kitesurf",
                "kite surf",
                "\u{e9}clair",
                "\u{c9}CLAIR",
            ],
            // Not every keyword starts with a letter; one as long as a block.
            &[
                "#tag1",
                "x-ray",
                "1234",
                "ab12",
                "abcd",
                "bcde",
                "cdef",
                "\u{a3}500",
            ],
            &["thethe", "the cat sat", "hehehe", "eheh"],
        ];
        let pieces = [
            "nightjar",
            "NIGHTJAR",
            "Nightja",
            "ightjar",
            "operation",
            "Operation Kestrel",
            "kestrel",
            "kite",
            "KITE",
            "kitesurf",
            "kites",
            "surf",
            " ",
            "  ",
            "\n",
            ".",
            ",",
            "(",
            ")",
            "-",
            "x",
            "1",
            "9",
            "\u{e9}",
            "\u{e9}clair",
            "\u{c9}CLAIR",
            "\u{a3}",
            "\u{a3}500",
            "#",
            "#tag1",
            "x-ray",
            "1234",
            "ab12",
            "abcd",
            "bcde",
            "cdef",
            "the",
            "cat",
            "sat",
            "thethe",
            "hehehe",
            "eheh",
            "a",
            "b",
            "\u{2014}",
            "z",
        ];
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for set in sets {
            let patterns: Vec<String> = set.iter().map(|p| p.to_string()).collect();
            let k = Keywords::new(&patterns);
            // Every text of up to two pieces, at every length (the end of the
            // text inside a keyword, keywords at offset 0 and at the very end).
            for a in pieces {
                for b in pieces {
                    let text = format!("{a}{b}");
                    let (blocks, skips) = both_scans(&k, &text);
                    assert_eq!(blocks, skips, "{text:?}");
                    for pad in 0..10 {
                        let text = format!("{}{a} {b}", "q".repeat(pad));
                        let (blocks, skips) = both_scans(&k, &text);
                        assert_eq!(blocks, skips, "{text:?}");
                    }
                }
            }
            // Long random texts, across many blocks.
            for i in 0..200 {
                // Some longer than a round of the skip scan's lanes.
                let n = if i % 20 == 0 {
                    3000
                } else {
                    (next() % 400) as usize
                };
                let text: String = (0..n)
                    .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                    .collect();
                let (blocks, skips) = both_scans(&k, &text);
                assert_eq!(blocks, skips, "{text:?}");
            }
        }
        // The matches are found at all.
        let k = Keywords::new(&["nightjar".to_string(), "kite surf".to_string()]);
        let (_, skips) = both_scans(&k, "Nightjar kite surf (NIGHTJAR) nightjarx kite surfer");
        assert_eq!(skips, [(0, 8, 0), (9, 18, 1), (20, 28, 0)]);
        let (blocks, skips) = both_scans(&k, "");
        assert!(blocks.is_empty() && skips.is_empty());
    }
}
