//! Normalisation of one extracted text field before detection.
//!
//! Job: undo the cheap evasions so that detectors see one canonical spelling:
//! strip every character that renders as nothing ([`is_invisible`]: the
//! Default_Ignorable_Code_Point set, which holds the zero-width characters,
//! U+FEFF, U+00AD, bidirectional marks, embeddings and isolates, U+034F, U+180E,
//! the invisible operators U+2061–U+2064, variation selectors and tag characters,
//! plus the other format (Cf) characters that are not visible prepended marks),
//! apply Unicode NFKC (full-width letters and digits, ligatures, non-breaking and
//! other Unicode spaces), map the Unicode whitespace NFKC keeps to ASCII (U+1680
//! to a space; U+0085, U+2028, U+2029 to a line feed, so line boundaries stay),
//! map every Unicode decimal digit of any script to ASCII, map Unicode dashes to
//! `-`, then decode percent-escapes and HTML entities that survived extraction,
//! re-normalising after each round. [`fold_view`] gives the detectors a second
//! reading with combining marks dropped (NFKD, category M) and non-ASCII
//! look-alike letters mapped to their Latin skeleton (Unicode TR39, through
//! the `unicode-security` crate).
//!
//! Limits: at most two decoding rounds (a triple-encoded value stays encoded);
//! named HTML entities are the common ones only (see [`named_entity`]); case is
//! not folded (detectors decide); runs of ASCII whitespace are kept as they are
//! (the detectors read any run between two groups as one separator, and the
//! line-based ones need the line breaks). ASCII control characters other than
//! whitespace are kept. ASCII text without `%` or `&` is returned borrowed, so
//! the common case costs one pass of `is_ascii`; text that already is
//! canonical with a few other characters (`£`) costs a pass over 64-byte ASCII
//! blocks and a look at each of those characters.

use std::borrow::Cow;

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// How many times residual percent-escapes / HTML entities are decoded.
const DECODE_ROUNDS: usize = 2;

/// Code points of the digit zero of every Unicode decimal-digit (Nd) block; each
/// block holds ten consecutive digits 0–9. Unicode 16.
const DECIMAL_ZEROS: &[u32] = &[
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x10D40, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0,
    0x11650, 0x116C0, 0x116D0, 0x116DA, 0x11730, 0x118E0, 0x11950, 0x11BF0, 0x11C50, 0x11D50,
    0x11DA0, 0x11F50, 0x16130, 0x16A60, 0x16AC0, 0x16B50, 0x16D70, 0x1CCF0, 0x1D7CE, 0x1D7D8,
    0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E5F1, 0x1E950, 0x1FBF0,
];

/// Normalises one text field (see the module header). Borrowed when nothing changed.
pub fn normalize(text: &str) -> Cow<'_, str> {
    let mut current = unicode_pass(text);
    for _ in 0..DECODE_ROUNDS {
        match decode_escapes(&current) {
            Some(decoded) => current = Cow::Owned(unicode_pass(&decoded).into_owned()),
            None => break,
        }
    }
    current
}

/// True for the characters that render as nothing, which an evader can insert
/// anywhere: Unicode's Default_Ignorable_Code_Point set (Unicode 16: soft
/// hyphen, combining grapheme joiner, Arabic letter mark, Hangul fillers, Khmer
/// inherent vowels, Mongolian variation selectors and vowel separator,
/// zero-width space/joiners, LRM/RLM, bidi embeddings, overrides and isolates,
/// word joiner and invisible operators, deprecated format characters,
/// variation selectors, BOM, shorthand format controls, musical format
/// characters, tags and their reserved planes) and the other general-category
/// Cf characters that are not visible prepended concatenation marks
/// (interlinear annotation controls, Egyptian hieroglyph format controls).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// The ASCII whitespace for a Unicode whitespace character that NFKC leaves
/// alone: U+1680 (Ogham space mark) is a space; U+0085 (next line), U+2028 (line
/// separator) and U+2029 (paragraph separator) end a line. The other Unicode
/// spaces (U+00A0, U+2000–U+200A, U+202F, U+205F, U+3000) are NFKC spaces.
pub fn ascii_whitespace(c: char) -> Option<char> {
    match c {
        '\u{1680}' => Some(' '),
        '\u{0085}' | '\u{2028}' | '\u{2029}' => Some('\n'),
        _ => None,
    }
}

/// The ASCII digit for a Unicode decimal digit of any script, if `c` is one.
pub fn decimal_digit(c: char) -> Option<char> {
    let cp = c as u32;
    let idx = DECIMAL_ZEROS.partition_point(|&zero| zero <= cp);
    let zero = *DECIMAL_ZEROS.get(idx.checked_sub(1)?)?;
    let value = cp - zero;
    if value < 10 {
        char::from_digit(value, 10)
    } else {
        None
    }
}

fn is_unicode_dash(c: char) -> bool {
    matches!(
        c,
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}'
    )
}

/// Strip invisibles, NFKC, digits, dashes and whitespace to ASCII. Borrowed if
/// already canonical.
fn unicode_pass(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    if !needs_unicode_work(text) {
        return Cow::Borrowed(text);
    }
    let out: String = text
        .chars()
        .filter(|&c| !is_invisible(c))
        .nfkc()
        .filter_map(|c| {
            if c.is_ascii() {
                Some(c)
            } else if is_invisible(c) {
                None
            } else if is_unicode_dash(c) {
                Some('-')
            } else if let Some(space) = ascii_whitespace(c) {
                Some(space)
            } else {
                Some(decimal_digit(c).unwrap_or(c))
            }
        })
        .collect();
    Cow::Owned(out)
}

/// Whether any non-ASCII char is invisible, a non-ASCII digit or dash, a
/// combining mark, or not NFKC-stable. Visits only the non-ASCII chars.
fn needs_unicode_work(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    loop {
        // ASCII a block at a time (the common case), then the exact position.
        while bytes.len() - i >= 64 && bytes[i..i + 64].is_ascii() {
            i += 64;
        }
        let Some(offset) = first_non_ascii(&bytes[i..]) else {
            break;
        };
        i += offset;
        let Some(c) = text.get(i..).and_then(|t| t.chars().next()) else {
            return true;
        };
        let needs_work = match latin1_index(c) {
            Some(k) => latin1_needs_work()[k],
            None => char_needs_work(c),
        };
        if needs_work {
            return true;
        }
        i += c.len_utf8();
    }
    false
}

/// Whether one non-ASCII char stops the borrowed fast path of [`unicode_pass`].
fn char_needs_work(c: char) -> bool {
    is_invisible(c)
        || decimal_digit(c).is_some()
        || is_unicode_dash(c)
        || ascii_whitespace(c).is_some()
        || unicode_normalization::char::canonical_combining_class(c) != 0
        || is_nfkc_quick(std::iter::once(c)) != IsNormalized::Yes
}

/// The index of a U+0080–U+00FF char in [`latin1_needs_work`].
fn latin1_index(c: char) -> Option<usize> {
    (c as usize).checked_sub(0x80).filter(|&k| k < 0x80)
}

/// [`char_needs_work`] for U+0080–U+00FF, worked out once: the non-ASCII
/// characters of Western European text (`£`, `é`, `°`) are each a table read
/// instead of six Unicode lookups.
fn latin1_needs_work() -> &'static [bool; 0x80] {
    static TABLE: std::sync::OnceLock<[bool; 0x80]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        std::array::from_fn(|k| char::from_u32(0x80 + k as u32).is_some_and(char_needs_work))
    })
}

/// The detection view of a normalised text with look-alikes undone: each
/// non-ASCII character decomposed (NFKD) with its combining marks (category M)
/// dropped, and each remaining non-ASCII letter that Unicode TR39 confusables
/// map to an ASCII skeleton replaced by it (Cyrillic `О` to `O`, Greek `Ι` to
/// `I`; a capital whose TR39 prototype is `l` reads as `I`). ASCII is kept as it is (a TR39 skeleton of the whole text would turn
/// `0` into `O` and `1` into `l`). `None` when nothing would change (pure
/// ASCII, or only characters such as `£` that fold to themselves), so ordinary
/// text costs one `is_ascii` pass or a visit of its non-ASCII characters.
pub fn fold_view(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let first = loop {
        // ASCII a block at a time (the common case), then the exact position.
        while bytes.len() - i >= 64 && bytes[i..i + 64].is_ascii() {
            i += 64;
        }
        let offset = first_non_ascii(&bytes[i..])?;
        i += offset;
        // U+0080–U+00BF (`£`, `©`, `°`, NBSP): symbols that never fold.
        if bytes[i] == 0xC2 {
            i += 2;
            continue;
        }
        let c = text.get(i..)?.chars().next()?;
        if folds(c) {
            break i;
        }
        i += c.len_utf8();
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            fold_into(c, &mut out);
        }
    }
    Some(out)
}

fn folds(c: char) -> bool {
    if unicode_normalization::char::is_combining_mark(c) {
        return true;
    }
    let mut decomposed = false;
    unicode_normalization::char::decompose_compatible(c, |d| decomposed |= d != c);
    decomposed || ascii_skeleton(c).is_some()
}

fn fold_into(c: char, out: &mut String) {
    let mut parts: Vec<char> = Vec::with_capacity(4);
    unicode_normalization::char::decompose_compatible(c, |d| parts.push(d));
    for d in parts {
        if d.is_ascii() {
            out.push(d);
        } else if unicode_normalization::char::is_combining_mark(d) {
            continue;
        } else if let Some(skeleton) = ascii_skeleton(d) {
            out.push_str(&skeleton);
        } else {
            out.push(d);
        }
    }
}

/// The TR39 skeleton of one non-ASCII character when it is ASCII letters or digits.
fn ascii_skeleton(c: char) -> Option<String> {
    if c.is_ascii() || !c.is_alphabetic() {
        return None;
    }
    let mut buf = [0u8; 4];
    let skeleton: String =
        unicode_security::confusable_detection::skeleton(c.encode_utf8(&mut buf)).collect();
    if skeleton.is_empty() || !skeleton.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    // TR39's prototype of `I` is `l`: a capital that looks like `I` reads as `I`.
    if skeleton == "l" && c.is_uppercase() {
        return Some("I".to_string());
    }
    Some(skeleton)
}

/// Position of the first byte >= 0x80, eight bytes at a time.
fn first_non_ascii(bytes: &[u8]) -> Option<usize> {
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let high = u64::from_le_bytes(word) & HI;
        if high != 0 {
            return Some(base + (high.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|b| !b.is_ascii())
        .map(|p| base + p)
}

/// Decodes `%XX` escapes and HTML entities once. `None` if there was nothing to decode.
fn decode_escapes(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let first = memchr::memchr2_iter(b'%', b'&', bytes).find(|&i| escape_at(bytes, i).is_some())?;
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut i = first;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' || b == b'&' {
            if let Some((decoded, used)) = escape_at(bytes, i) {
                match decoded {
                    Decoded::Byte(byte) => out.push(byte),
                    Decoded::Char(c) => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
                i += used;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Some(super::charset::lossy_owned(out))
}

enum Decoded {
    Byte(u8),
    Char(char),
}

/// The escape starting at `bytes[i]` (a `%` or `&`) and its length in bytes.
fn escape_at(bytes: &[u8], i: usize) -> Option<(Decoded, usize)> {
    match bytes.get(i)? {
        b'%' => {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            Some((Decoded::Byte(hi * 16 + lo), 3))
        }
        b'&' => html_entity(bytes, i),
        _ => None,
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `&#NNN;`, `&#xHH;` (the `;` optional, as browsers accept) or `&name;`.
fn html_entity(bytes: &[u8], amp: usize) -> Option<(Decoded, usize)> {
    let rest = bytes.get(amp + 1..)?;
    if rest.first() == Some(&b'#') {
        let (radix, digits_start) = match rest.get(1) {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = rest
            .get(digits_start..)?
            .iter()
            .take(8)
            .take_while(|b| {
                if radix == 16 {
                    b.is_ascii_hexdigit()
                } else {
                    b.is_ascii_digit()
                }
            })
            .count();
        if digits == 0 {
            return None;
        }
        let text = std::str::from_utf8(&rest[digits_start..digits_start + digits]).ok()?;
        let value = u32::from_str_radix(text, radix).ok()?;
        let c = char::from_u32(value).unwrap_or('\u{FFFD}');
        let mut used = 1 + digits_start + digits;
        if rest.get(digits_start + digits) == Some(&b';') {
            used += 1;
        }
        return Some((Decoded::Char(c), used));
    }
    let name_len = rest
        .iter()
        .take(10)
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    if name_len == 0 || rest.get(name_len) != Some(&b';') {
        return None;
    }
    let name = std::str::from_utf8(&rest[..name_len]).ok()?;
    let c = named_entity(name)?;
    Some((Decoded::Char(c), name_len + 2))
}

/// The common named HTML entities (those that matter for hiding text or digits).
fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => '\u{A0}',
        "shy" => '\u{AD}',
        "zwj" => '\u{200D}',
        "zwnj" => '\u{200C}',
        "lrm" => '\u{200E}',
        "rlm" => '\u{200F}',
        "NoBreak" => '\u{2060}',
        "ensp" => '\u{2002}',
        "emsp" => '\u{2003}',
        "numsp" => '\u{2007}',
        "puncsp" => '\u{2008}',
        "thinsp" => '\u{2009}',
        "hairsp" => '\u{200A}',
        "ndash" => '-',
        "mdash" => '-',
        "minus" => '-',
        "hyphen" | "dash" => '-',
        "period" => '.',
        "comma" => ',',
        "colon" => ':',
        "sol" => '/',
        "num" => '#',
        "percnt" => '%',
        "plus" => '+',
        "equals" => '=',
        "commat" => '@',
        "lowbar" => '_',
        "pound" => '£',
        "euro" => '€',
        "copy" => '©',
        "hellip" => '…',
        "lsquo" => '\u{2018}',
        "rsquo" => '\u{2019}',
        "ldquo" => '\u{201C}',
        "rdquo" => '\u{201D}',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_view_drops_marks_and_maps_confusables() {
        assert_eq!(fold_view("plain"), None);
        assert_eq!(
            fold_view("£2.50 café? no: £"),
            Some("£2.50 cafe? no: £".into())
        );
        assert_eq!(fold_view("£45"), None);
        assert_eq!(fold_view("J\u{307}G103782B").as_deref(), Some("JG103782B"));
        assert_eq!(fold_view("SENSITIV\u{c9}").as_deref(), Some("SENSITIVE"));
        assert_eq!(
            fold_view("\u{41e}FFICIAL \u{39f}FF\u{406}CIAL").as_deref(),
            Some("OFFICIAL OFFICIAL")
        );
        // ASCII digits stay digits.
        assert_eq!(fold_view("10 \u{41e}").as_deref(), Some("10 O"));
    }

    #[test]
    fn the_block_skip_finds_every_non_ascii_character() {
        // A character to fold or to normalise at every offset across the
        // 64-byte blocks, after a `£` (never folded) or alone, or at the end.
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 200] {
            let ascii = "ab c".repeat(60)[..len].to_string();
            assert_eq!(fold_view(&ascii), None);
            assert!(matches!(normalize(&ascii), Cow::Borrowed(_)));
            for i in 0..=len {
                let (head, tail) = ascii.split_at(i);
                for (odd, folded, normal) in [
                    ("\u{e9}", "e", "\u{e9}"),
                    ("\u{a3}\u{41e}", "\u{a3}O", "\u{a3}\u{41e}"),
                    ("\u{ff11}", "1", "1"),
                ] {
                    let text = format!("{head}{odd}{tail}");
                    let want = format!("{head}{folded}{tail}");
                    if odd == "\u{ff11}" {
                        assert_eq!(normalize(&text), format!("{head}{normal}{tail}"));
                    } else {
                        assert_eq!(fold_view(&text), Some(want), "{i}");
                        assert!(matches!(normalize(&text), Cow::Borrowed(_)), "{i}");
                    }
                    let pound = format!("{head}\u{a3}{tail}");
                    assert_eq!(fold_view(&pound), None);
                    assert!(matches!(normalize(&pound), Cow::Borrowed(_)));
                }
            }
        }
    }

    #[test]
    fn the_latin1_table_agrees_with_the_unicode_lookups() {
        for k in 0..0x80u32 {
            let c = char::from_u32(0x80 + k).unwrap();
            assert_eq!(latin1_index(c), Some(k as usize));
            assert_eq!(latin1_needs_work()[k as usize], char_needs_work(c), "{c:?}");
        }
        assert_eq!(latin1_index('\u{7F}'), None);
        assert_eq!(latin1_index('\u{100}'), None);
        // NBSP (an NFKC space), the soft hyphen (invisible), `²` (NFKC `2`) and
        // NEL (a line end) need work; `£`, `é` and `°` do not.
        for c in ['\u{A0}', '\u{AD}', '²', '\u{85}'] {
            assert!(latin1_needs_work()[latin1_index(c).unwrap()], "{c:?}");
        }
        for c in ['£', 'é', '°'] {
            assert!(!latin1_needs_work()[latin1_index(c).unwrap()], "{c:?}");
        }
        assert_eq!(normalize("x\u{A0}2²"), "x 22");
        assert!(matches!(normalize("£6.50 café"), Cow::Borrowed(_)));
    }

    #[test]
    fn ascii_without_escapes_is_borrowed() {
        let text = "Bins collected on 12 March, Route 42, 50% off.";
        assert!(matches!(normalize(text), Cow::Borrowed(_)));
    }

    #[test]
    fn canonical_unicode_is_borrowed() {
        let text = "Café opening – no, just a café. £2.50";
        // The en dash is mapped, so this one is owned; without it, borrowed.
        assert!(matches!(normalize("Café £2.50 naïve"), Cow::Borrowed(_)));
        assert_eq!(normalize(text), "Café opening - no, just a café. £2.50");
    }

    #[test]
    fn strips_invisible_characters() {
        let text = "4\u{200B}111 \u{FEFF}1111\u{00AD} 1111 \u{2060}11\u{200D}11 \u{E0041}x";
        assert_eq!(normalize(text), "4111 1111 1111 1111 x");
    }

    #[test]
    fn strips_bidi_and_other_format_characters() {
        // LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI, ALM.
        let bidi = "4\u{200E}1\u{200F}1\u{202A}1\u{202B} \u{202C}1\u{202D}1\u{202E}11 \u{2066}1\u{2067}1\u{2068}1\u{2069}1\u{061C}";
        assert_eq!(normalize(bidi), "4111 1111 1111");
        // CGJ, Mongolian vowel separator and variation selectors, invisible
        // operators, deprecated format characters, variation selectors, Hangul
        // fillers, Khmer inherent vowels, interlinear annotation, shorthand and
        // musical format controls, a tag outside the ASCII tags.
        let others = "J\u{034F}G\u{180E}1\u{180B}0\u{2061}3\u{2062}7\u{2063}8\u{2064}2\u{206A}B\u{206F}\u{FE0F}\u{3164}\u{FFA0}\u{115F}\u{17B4}\u{FFF9}\u{1BCA0}\u{1D173}\u{E0100}";
        assert_eq!(normalize(others), "JG103782B");
        for c in [
            '\u{200E}', '\u{202E}', '\u{2069}', '\u{034F}', '\u{180E}', '\u{2061}',
        ] {
            assert!(is_invisible(c), "{:X}", c as u32);
            assert!(needs_unicode_work(&format!("a{c}b")));
        }
        // Visible format characters (prepended number signs) and ordinary text stay.
        assert!(!is_invisible('\u{0600}'));
        assert!(!is_invisible('\u{06DD}'));
        assert!(!is_invisible('a') && !is_invisible('é') && !is_invisible(' '));
        assert_eq!(normalize("\u{0600}12"), "\u{0600}12");
    }

    #[test]
    fn unicode_spaces_become_ascii_whitespace() {
        // NFKC spaces: no-break, en/em/thin/hair, narrow no-break, medium
        // mathematical, ideographic.
        for space in [
            '\u{00A0}', '\u{2002}', '\u{2003}', '\u{2009}', '\u{200A}', '\u{202F}', '\u{205F}',
            '\u{3000}',
        ] {
            assert_eq!(
                normalize(&format!("943{space}476")),
                "943 476",
                "{:X}",
                space as u32
            );
        }
        // What NFKC keeps: Ogham space mark, next line, line and paragraph separators.
        assert_eq!(normalize("943\u{1680}476"), "943 476");
        assert_eq!(normalize("a\u{0085}b\u{2028}c\u{2029}d"), "a\nb\nc\nd");
        // Runs of ASCII whitespace are left to the detectors (lines matter).
        assert!(matches!(normalize("943  476\t5919\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn nfkc_and_fullwidth() {
        assert_eq!(normalize("４１１１ＡＢ"), "4111AB");
        assert_eq!(normalize("ﬁle\u{00A0}x"), "file x");
    }

    #[test]
    fn digits_of_any_script_become_ascii() {
        assert_eq!(normalize("٩٤٣ ४७६ ৫৯১৯"), "943 476 5919");
        assert_eq!(normalize("𝟗𝟒𝟑"), "943");
        assert_eq!(decimal_digit('٣'), Some('3'));
        assert_eq!(decimal_digit('a'), None);
        assert_eq!(decimal_digit('½'), None);
    }

    #[test]
    fn decimal_table_blocks_are_numeric() {
        for &zero in DECIMAL_ZEROS {
            for d in 0..10 {
                let c = char::from_u32(zero + d).expect("valid code point");
                assert!(c.is_numeric(), "{:X} is not numeric", zero + d);
            }
        }
        // Every char that Rust calls numeric and that NFKC folds to one ASCII digit is covered.
        for cp in 0x80..0x20000u32 {
            if let Some(c) = char::from_u32(cp) {
                let folded: String = std::iter::once(c).nfkc().collect();
                if folded.len() == 1 && folded.as_bytes()[0].is_ascii_digit() && c.is_numeric() {
                    let ours = decimal_digit(c);
                    // Superscripts and circled digits are No, not Nd: NFKC handles them.
                    if ours.is_some() {
                        assert_eq!(ours.map(String::from), Some(folded));
                    }
                }
            }
        }
    }

    #[test]
    fn percent_and_entities_two_rounds() {
        assert_eq!(normalize("4111%201111"), "4111 1111");
        assert_eq!(normalize("4111%25201111"), "4111 1111");
        assert_eq!(normalize("&#52;&#x31;11 &amp;"), "4111 &");
        assert_eq!(normalize("JG&nbsp;10"), "JG 10");
        assert_eq!(
            normalize("9&lrm;4&rlm;3&NoBreak;&emsp;476&thinsp;&hairsp;5919"),
            "943 476  5919"
        );
        // Zero-width hidden behind an escape is stripped after decoding.
        assert_eq!(normalize("41%E2%80%8B11"), "4111");
        // Three rounds: stays partly encoded (bounded work).
        assert_eq!(normalize("%25252541"), "%2541");
    }

    #[test]
    fn non_ascii_scan_finds_every_position() {
        for i in 0..20 {
            let mut text = "a".repeat(20);
            text.insert(i, '\u{200B}');
            assert_eq!(first_non_ascii(text.as_bytes()), Some(i));
            assert!(needs_unicode_work(&text));
        }
        // Combining marks force the slow path (ordering and composition).
        assert_eq!(normalize("cafe\u{301}"), "café");
        assert!(!needs_unicode_work("Café £2.50 “quoted”"));
    }

    #[test]
    fn lone_percent_and_ampersand_untouched() {
        assert!(matches!(
            normalize("50% off & more &nope; %zz"),
            Cow::Borrowed(_)
        ));
    }
}
