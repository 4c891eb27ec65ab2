//! Normalisation of one extracted text field before detection.
//!
//! Job: undo the cheap evasions so that detectors see one canonical spelling:
//! strip invisible characters (U+200B–U+200D, U+2060, U+FEFF, U+00AD, tag
//! characters U+E0000–U+E007F), apply Unicode NFKC (full-width letters and
//! digits, ligatures, non-breaking spaces), map every Unicode decimal digit of any
//! script to ASCII, map Unicode dashes to `-`, then decode percent-escapes and
//! HTML entities that survived extraction, re-normalising after each round.
//!
//! Limits: at most two decoding rounds (a triple-encoded value stays encoded);
//! named HTML entities are the common ones only (see [`named_entity`]); case is
//! not folded (detectors decide). ASCII text without `%` or `&` is returned
//! borrowed, so the common case costs one pass of `is_ascii`.

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

/// True for the zero-width and other invisible characters an evader can insert.
pub fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' | '\u{E0000}'..='\u{E007F}')
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

/// Strip invisibles, NFKC, digits and dashes to ASCII. Borrowed if already canonical.
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
    while let Some(offset) = first_non_ascii(&bytes[i..]) {
        i += offset;
        let Some(c) = text.get(i..).and_then(|t| t.chars().next()) else {
            return true;
        };
        if is_invisible(c)
            || decimal_digit(c).is_some()
            || is_unicode_dash(c)
            || unicode_normalization::char::canonical_combining_class(c) != 0
            || is_nfkc_quick(std::iter::once(c)) != IsNormalized::Yes
        {
            return true;
        }
        i += c.len_utf8();
    }
    false
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
    Some(String::from_utf8_lossy(&out).into_owned())
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
