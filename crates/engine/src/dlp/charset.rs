//! Text decoding for the scanner: from bytes and a declared charset to the
//! readings of the text that get scanned, failing closed; and the magic-byte
//! test that alone decides a multipart part is binary.
//!
//! Job: [`readings`] turns bytes into one or more UTF-8 readings. A byte order
//! mark wins over any label (as browsers do): UTF-8, UTF-16LE/BE and
//! UTF-32LE/BE. Without one, a label of the UTF-16 or UTF-32 family is decoded
//! as such (endianness from the content when the label does not say); an
//! ASCII-compatible or absent label is checked for the RFC 8259/4627 null-byte
//! pattern of the first four bytes (`00 00 00 xx` UTF-32BE, `00 xx 00 xx`
//! UTF-16BE, `xx 00 00 00` UTF-32LE, `xx 00 xx 00` UTF-16LE) and for NULs
//! falling mostly on one parity (UTF-16 without a BOM); any other label known to
//! the WHATWG Encoding Standard (encoding_rs) is decoded strictly. Where a
//! server could read the bytes another way (a label that lies: an ASCII body
//! labelled UTF-16, a BOM before ASCII, ASCII text with a NUL in it that decodes
//! as UTF-16), the UTF-8 reading is scanned as well: every UTF-16/32 reading
//! comes with it.
//! [`is_known_binary`] recognises image, audio, video, document and archive
//! formats by their magic bytes.
//!
//! Limits: refused (`ScanError::Undecodable`) are labels that are unknown or
//! that encoding_rs maps to its "replacement" encoding (ISO-2022-KR,
//! ISO-2022-CN, HZ-GB-2312: 7-bit encodings where ASCII reads as itself, so the
//! site may get a post in clear that the scanner cannot read), UTF-16/32 that is
//! declared, marked by a BOM, or (in JSON) shown by the null-byte pattern, but
//! malformed (odd length, lone surrogates, code points past U+10FFFF) unless the bytes are NUL-free valid UTF-8 (then that is what
//! a server stores), and bytes malformed in their declared legacy encoding.
//! UTF-16 recognised only by the parity of its NULs, or by the null-byte
//! pattern outside JSON, is decoded leniently when malformed (it is a guess;
//! the UTF-8 reading is scanned too). Unlabelled bytes that are not
//! UTF-8 are read as UTF-8 with replacement characters, which keeps every ASCII
//! character (what the detectors look for) in place. Callers: `extract.rs`.

use std::borrow::Cow;

use super::ScanError;

/// How far into a body the UTF-16 parity guess looks.
const SNIFF_WINDOW: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wide {
    Utf16Le,
    Utf16Be,
    Utf32Le,
    Utf32Be,
}

impl Wide {
    fn name(self) -> &'static str {
        match self {
            Wide::Utf16Le => "UTF-16LE",
            Wide::Utf16Be => "UTF-16BE",
            Wide::Utf32Le => "UTF-32LE",
            Wide::Utf32Be => "UTF-32BE",
        }
    }
}

/// The readings of `bytes` to scan, given the declared `charset` label (if any).
/// See the module header for the rules; an error when no faithful reading exists.
pub(crate) fn readings<'b>(
    bytes: &'b [u8],
    charset: Option<&str>,
    json: bool,
) -> Result<Vec<Cow<'b, str>>, ScanError> {
    if let Some((wide, bom)) = bom_wide(bytes) {
        return wide_strict(&bytes[bom..], wide, "byte order mark");
    }
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return Ok(vec![lossy(rest)]);
    }
    let label = charset
        .map(|c| {
            c.trim()
                .trim_matches(['"', '\''])
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|c| !c.is_empty());
    let Some(label) = label else {
        return unlabelled(bytes, json);
    };
    if let Some(wide) = wide_label(&label, bytes) {
        return wide_strict(bytes, wide, &format!("charset={label}"));
    }
    if matches!(label.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
        return unlabelled(bytes, json);
    }
    let Some(enc) = encoding_rs::Encoding::for_label(label.as_bytes()) else {
        return Err(ScanError::Undecodable(format!(
            "unknown charset {label:?}: the text cannot be decoded faithfully"
        )));
    };
    if enc == encoding_rs::REPLACEMENT {
        return Err(ScanError::Undecodable(format!(
            "charset {label:?} cannot be decoded faithfully (ISO-2022-KR/CN and HZ are refused)"
        )));
    }
    if enc == encoding_rs::UTF_8 {
        return unlabelled(bytes, json);
    }
    if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
        // Aliases such as "unicodefffe" or "ucs-2" that `wide_label` did not name.
        let wide = if enc == encoding_rs::UTF_16BE {
            Wide::Utf16Be
        } else {
            Wide::Utf16Le
        };
        return wide_strict(bytes, wide, &format!("charset={label}"));
    }
    let Some(text) = enc.decode_without_bom_handling_and_without_replacement(bytes) else {
        return Err(ScanError::Undecodable(format!(
            "text malformed in its declared charset {label:?}"
        )));
    };
    let mut out = vec![text];
    // The label may be ignored by the site: scan what UTF-8 makes of it too.
    if let Ok(utf8) = simdutf8::basic::from_utf8(bytes) {
        if out[0] != utf8 {
            out.push(Cow::Borrowed(utf8));
        }
    }
    Ok(out)
}

/// No label, or an ASCII-compatible one: the null-byte pattern (strict for
/// JSON, where RFC 8259/4627 define it; for other text a guess, read leniently
/// with the UTF-8 reading too), the NUL parity guess (lenient), else UTF-8
/// (with replacement characters).
fn unlabelled(bytes: &[u8], json: bool) -> Result<Vec<Cow<'_, str>>, ScanError> {
    if let Some(wide) = null_pattern(bytes) {
        if json {
            return wide_strict(bytes, wide, "null-byte pattern");
        }
        if let Some(text) = decode_wide(bytes, wide, false) {
            return Ok(vec![Cow::Owned(text), lossy(bytes)]);
        }
        return Ok(vec![
            Cow::Owned(decode_wide(bytes, wide, true).unwrap_or_default()),
            lossy(bytes),
        ]);
    }
    if let Some(wide) = parity_guess(bytes) {
        return Ok(vec![
            Cow::Owned(decode_wide(bytes, wide, true).unwrap_or_default()),
            lossy(bytes),
        ]);
    }
    Ok(vec![lossy(bytes)])
}

/// Strict UTF-16/32; on failure, NUL-free valid UTF-8 is read as UTF-8 (the
/// label lied), anything else is refused. Decoded bytes also get a UTF-8 reading
/// (with replacement characters): a site that ignores the label reads them so,
/// and one NUL anywhere must not hide ASCII text from the scanner (found by
/// fuzzing: an ASCII post with `\x02\x00` in it, labelled UTF-16, decodes
/// cleanly as UTF-16 and read as nothing but CJK).
fn wide_strict<'b>(bytes: &'b [u8], wide: Wide, why: &str) -> Result<Vec<Cow<'b, str>>, ScanError> {
    if let Some(text) = decode_wide(bytes, wide, false) {
        return Ok(vec![Cow::Owned(text), lossy(bytes)]);
    }
    match simdutf8::basic::from_utf8(bytes) {
        Ok(s) if memchr::memchr(0, bytes).is_none() => Ok(vec![Cow::Borrowed(s)]),
        _ => Err(ScanError::Undecodable(format!(
            "malformed {} text ({why})",
            wide.name()
        ))),
    }
}

/// Bytes as text with invalid sequences replaced: a SIMD validation first
/// (`simdutf8`, several times `str::from_utf8`'s speed on long text; most
/// bodies are valid UTF-8), the slower lossy walk only when it fails. Same
/// result as `String::from_utf8_lossy`.
pub(crate) fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// [`lossy`] for bytes already owned: no copy when they are valid.
pub(crate) fn lossy_owned(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn bom_wide(bytes: &[u8]) -> Option<(Wide, usize)> {
    if bytes.starts_with(b"\xFF\xFE\x00\x00") {
        Some((Wide::Utf32Le, 4))
    } else if bytes.starts_with(b"\x00\x00\xFE\xFF") {
        Some((Wide::Utf32Be, 4))
    } else if bytes.starts_with(b"\xFF\xFE") {
        Some((Wide::Utf16Le, 2))
    } else if bytes.starts_with(b"\xFE\xFF") {
        Some((Wide::Utf16Be, 2))
    } else {
        None
    }
}

/// A label of the UTF-16/UTF-32 family; endianness from the content when unsaid.
fn wide_label(label: &str, bytes: &[u8]) -> Option<Wide> {
    Some(match label {
        "utf-16le" | "utf16le" | "ucs-2le" | "unicodelittleunmarked" => Wide::Utf16Le,
        "utf-16be" | "utf16be" | "ucs-2be" | "unicodebigunmarked" => Wide::Utf16Be,
        "utf-16" | "utf16" | "ucs-2" | "ucs2" | "iso-10646-ucs-2" | "csunicode" | "unicode" => {
            match null_pattern(bytes).or_else(|| parity_guess(bytes)) {
                Some(Wide::Utf16Be | Wide::Utf32Be) => Wide::Utf16Be,
                _ => Wide::Utf16Le,
            }
        }
        "utf-32le" | "utf32le" | "ucs-4le" => Wide::Utf32Le,
        "utf-32be" | "utf32be" | "ucs-4be" => Wide::Utf32Be,
        "utf-32" | "utf32" | "ucs-4" | "ucs4" | "iso-10646-ucs-4" | "csucs4" => {
            match null_pattern(bytes) {
                Some(Wide::Utf32Be | Wide::Utf16Be) => Wide::Utf32Be,
                _ => Wide::Utf32Le,
            }
        }
        _ => return None,
    })
}

/// RFC 4627 section 3: the encoding from the pattern of NULs in the first four bytes.
fn null_pattern(bytes: &[u8]) -> Option<Wide> {
    let head: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    let z = head.map(|b| b == 0);
    match z {
        [true, true, true, false] => Some(Wide::Utf32Be),
        [true, false, true, false] => Some(Wide::Utf16Be),
        [false, true, true, true] => Some(Wide::Utf32Le),
        [false, true, false, true] => Some(Wide::Utf16Le),
        _ => None,
    }
}

/// UTF-16 without a BOM: at least a quarter of the units carry a NUL on one
/// side and almost none on the other.
fn parity_guess(bytes: &[u8]) -> Option<Wide> {
    let head = &bytes[..bytes.len().min(SNIFF_WINDOW)];
    if head.len() < 4 || memchr::memchr(0, head).is_none() {
        return None;
    }
    let (mut even, mut odd) = (0usize, 0usize);
    for pair in head.chunks_exact(2) {
        even += usize::from(pair[0] == 0);
        odd += usize::from(pair[1] == 0);
    }
    let units = head.len() / 2;
    if odd * 4 >= units && even * 20 <= units {
        Some(Wide::Utf16Le)
    } else if even * 4 >= units && odd * 20 <= units {
        Some(Wide::Utf16Be)
    } else {
        None
    }
}

/// UTF-16/32 to UTF-8; `None` on malformed input unless `lenient` (then U+FFFD).
fn decode_wide(bytes: &[u8], wide: Wide, lenient: bool) -> Option<String> {
    match wide {
        Wide::Utf16Le | Wide::Utf16Be => {
            if !bytes.len().is_multiple_of(2) && !lenient {
                return None;
            }
            let units = bytes.chunks_exact(2).map(|p| {
                let p = [p[0], p[1]];
                if wide == Wide::Utf16Le {
                    u16::from_le_bytes(p)
                } else {
                    u16::from_be_bytes(p)
                }
            });
            let mut out = String::with_capacity(bytes.len() / 2);
            for c in char::decode_utf16(units) {
                match c {
                    Ok(c) => out.push(c),
                    Err(_) if lenient => out.push('\u{FFFD}'),
                    Err(_) => return None,
                }
            }
            Some(out)
        }
        Wide::Utf32Le | Wide::Utf32Be => {
            if !bytes.len().is_multiple_of(4) && !lenient {
                return None;
            }
            let mut out = String::with_capacity(bytes.len() / 4);
            for q in bytes.chunks_exact(4) {
                let q = [q[0], q[1], q[2], q[3]];
                let cp = if wide == Wide::Utf32Le {
                    u32::from_le_bytes(q)
                } else {
                    u32::from_be_bytes(q)
                };
                match char::from_u32(cp) {
                    Some(c) => out.push(c),
                    None if lenient => out.push('\u{FFFD}'),
                    None => return None,
                }
            }
            Some(out)
        }
    }
}

/// Whether the bytes open with the magic number of a known binary format:
/// images (PNG, JPEG, GIF, WebP, BMP, TIFF, ICO/CUR, PSD, HEIC/AVIF), audio and
/// video (MP4/MOV/3GP ftyp, WebM/MKV, MP3 with ID3 or a frame sync, OGG, RIFF
/// WAV/AVI, FLAC, MIDI), documents (PDF, OLE2 Office, ZIP and so OOXML/ODF/JAR/
/// EPUB) and archives (gzip, 7z, RAR, bzip2, xz, zstd). Nothing else is binary.
pub(crate) fn is_known_binary(b: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b"\x89PNG\r\n\x1a\n",
        b"\xFF\xD8\xFF",
        b"GIF87a",
        b"GIF89a",
        b"II*\x00",
        b"MM\x00*",
        b"8BPS",
        b"\x1A\x45\xDF\xA3",
        b"OggS",
        b"fLaC",
        b"MThd",
        b"%PDF-",
        b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
        b"PK\x03\x04",
        b"PK\x05\x06",
        b"PK\x07\x08",
        b"\x1F\x8B",
        b"7z\xBC\xAF\x27\x1C",
        b"Rar!\x1A\x07",
        b"\xFD7zXZ\x00",
        b"\x28\xB5\x2F\xFD",
    ];
    if PREFIXES.iter().any(|p| b.starts_with(p)) {
        return true;
    }
    // RIFF containers: WebP, WAV, AVI.
    if b.starts_with(b"RIFF") && matches!(b.get(8..12), Some(b"WEBP" | b"WAVE" | b"AVI " | b"ACON"))
    {
        return true;
    }
    // ISO base media (MP4, MOV, HEIC, AVIF, 3GP): a box size then `ftyp`.
    if b.get(4..8) == Some(b"ftyp") {
        return true;
    }
    // BMP: `BM`, a size, then four reserved zero bytes.
    if b.starts_with(b"BM") && b.get(6..10) == Some(b"\x00\x00\x00\x00") {
        return true;
    }
    // ICO / CUR: reserved 0, type 1 or 2, a non-zero image count.
    if matches!(b.get(..4), Some(b"\x00\x00\x01\x00" | b"\x00\x00\x02\x00"))
        && b.get(4..6).is_some_and(|n| n != b"\x00\x00")
    {
        return true;
    }
    // MP3: an ID3v2 tag (major version 2 to 4) or an MPEG audio frame sync.
    if b.starts_with(b"ID3") && b.get(3).is_some_and(|v| (2..=4).contains(v)) {
        return true;
    }
    if matches!(b.get(..2), Some([0xFF, 0xFB | 0xF3 | 0xF2 | 0xFA])) {
        return true;
    }
    // bzip2: `BZh`, a block size digit, then the block magic.
    if b.starts_with(b"BZh")
        && b.get(3).is_some_and(|d| (b'1'..=b'9').contains(d))
        && b.get(4..10) == Some(b"\x31\x41\x59\x26\x53\x59")
    {
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], cs: Option<&str>) -> Vec<String> {
        readings(bytes, cs, true)
            .unwrap()
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    }

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }
    fn utf16be(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_be_bytes).collect()
    }
    fn utf32le(s: &str) -> Vec<u8> {
        s.chars().flat_map(|c| (c as u32).to_le_bytes()).collect()
    }
    fn utf32be(s: &str) -> Vec<u8> {
        s.chars().flat_map(|c| (c as u32).to_be_bytes()).collect()
    }

    #[test]
    fn wide_encodings_by_bom_pattern_and_label() {
        let t = "{\"t\":\"JG 10 37 82 B\"}";
        for (bytes, cs) in [
            (utf16le(t), None),
            (utf16be(t), None),
            (utf32le(t), None),
            (utf32be(t), None),
            ([b"\xFF\xFE".as_slice(), &utf16le(t)].concat(), None),
            ([b"\xFE\xFF".as_slice(), &utf16be(t)].concat(), None),
            ([b"\xFF\xFE\x00\x00".as_slice(), &utf32le(t)].concat(), None),
            ([b"\x00\x00\xFE\xFF".as_slice(), &utf32be(t)].concat(), None),
            (utf16be(t), Some("utf-16")),
            (utf16le(t), Some("UTF-16")),
            (utf32be(t), Some("utf-32")),
            (utf16le(t), Some("utf-8")),
        ] {
            assert_eq!(read(&bytes, cs)[0], t, "{cs:?} {bytes:?}");
        }
        // Without the pattern (first char non-ASCII), parity still tells UTF-16.
        let s = "é JG 10 37 82 B and more text";
        assert!(read(&utf16le(s), None).contains(&s.to_string()));
        assert!(read(&utf16be(s), None).contains(&s.to_string()));
    }

    #[test]
    fn malformed_wide_text_is_refused_unless_it_is_plain_utf8() {
        // The null-byte pattern, then a code point past U+10FFFF.
        assert!(readings(b"{\x00\x00\x00\x00\x00\x11\x00", None, true).is_err());
        // Outside JSON the pattern is a guess: read leniently.
        assert!(readings(b"{\x00\x00\x00\x00\x00\x11\x00", None, false).is_ok());
        // A lone surrogate after a BOM.
        assert!(readings(b"\xFF\xFEA\x00\x00\xD8", None, false).is_err());
        // Odd length with NULs, declared UTF-16.
        assert!(readings(b"A\x00B\x00C", Some("utf-16le"), false).is_err());
        // UTF-32 past U+10FFFF.
        assert!(readings(b"\xFF\xFE\x00\x00\x00\x00\x11\x00", None, false).is_err());
        // An ASCII body labelled UTF-16: the UTF-8 reading is scanned.
        let r = read(b"JG 10 37 82 B", Some("utf-16"));
        assert!(r.contains(&"JG 10 37 82 B".to_string()), "{r:?}");
        let r = read(b"JG 10 37 82 BB", Some("utf-16"));
        assert!(r.contains(&"JG 10 37 82 BB".to_string()), "{r:?}");
        // A BOM before ASCII (a CSV export): both readings.
        let r = read(b"\xFF\xFEname,ni\nJo,JG103782B\n", None);
        assert!(r.iter().any(|t| t.contains("JG103782B")), "{r:?}");
    }

    #[test]
    fn wide_readings_keep_the_utf8_reading_when_the_bytes_hold_a_nul() {
        // Found by fuzzing (fuzz/regressions/dlp_charset/): ASCII text with one
        // NUL, labelled UTF-16, decodes cleanly as UTF-16; a site that ignores
        // the label reads the ASCII.
        let r = read(b"JG 10 37 82 B \x02\x00", Some("utf-16"));
        assert!(r.iter().any(|t| t.contains("JG 10 37 82 B")), "{r:?}");
        let r = read(b"\xFF\xFEJG 10 37 82 B \x00\x00", None);
        assert!(r.iter().any(|t| t.contains("JG 10 37 82 B")), "{r:?}");
        // The null-byte pattern, in JSON and elsewhere.
        for json in [true, false] {
            let r: Vec<String> = readings(b"a\x00b\x00\nJG 10 37 82 B\n\x00", None, json)
                .unwrap()
                .into_iter()
                .map(Cow::into_owned)
                .collect();
            assert!(
                r.iter().any(|t| t.contains("JG 10 37 82 B")),
                "{json} {r:?}"
            );
        }
    }

    #[test]
    fn the_benign_corpus_stays_clean_in_every_wide_encoding() {
        let ids: Vec<String> = [
            "payment-card",
            "uk-nino",
            "nhs-number",
            "uk-bank-account",
            "iban",
            "protective-marking",
            "secrets",
        ]
        .map(String::from)
        .to_vec();
        let scanner = crate::dlp::Scanner::new(&ids, &[]).unwrap();
        let corpus = include_str!("benign_corpus.txt");
        let limits = crate::dlp::ScanLimits::default();
        for (bytes, ct) in [
            (utf16le(corpus), "text/plain; charset=utf-16le"),
            (utf16be(corpus), "text/plain; charset=utf-16"),
            (utf32le(corpus), "text/plain; charset=utf-32le"),
            (
                [b"\xFF\xFE".as_slice(), &utf16le(corpus)].concat(),
                "text/plain",
            ),
            (utf16le(corpus), "text/plain"),
        ] {
            let input = crate::dlp::ScanInput {
                content_type: Some(ct),
                content_encoding: None,
                body: &bytes,
                query: None,
            };
            let f = scanner.scan_request(&input, &limits).unwrap();
            assert!(f.is_empty(), "{ct}: {f:?}");
        }
    }

    #[test]
    fn replacement_and_unknown_charsets_are_refused() {
        for cs in [
            "iso-2022-kr",
            "ISO-2022-CN",
            "hz-gb-2312",
            "x-made-up",
            "utf-7",
        ] {
            assert!(
                matches!(
                    readings(b"plain ascii", Some(cs), false),
                    Err(ScanError::Undecodable(_))
                ),
                "{cs}"
            );
        }
        assert_eq!(read(b"caf\xe9", Some("iso-8859-1")), vec!["café"]);
        // Malformed Shift_JIS is refused.
        assert!(readings(b"\x81", Some("shift_jis"), false).is_err());
        // ISO-2022-JP is decoded (encoding_rs knows it).
        assert_eq!(read(b"abc", Some("iso-2022-jp")), vec!["abc"]);
        assert_eq!(read(b"abc", Some("\"utf-8\"")), vec!["abc"]);
    }

    #[test]
    fn magic_bytes() {
        for b in [
            &b"\x89PNG\r\n\x1a\n\x00"[..],
            b"\xFF\xD8\xFF\xE0",
            b"GIF89a..",
            b"RIFF\x00\x00\x00\x00WEBPVP8 ",
            b"RIFF\x00\x00\x00\x00WAVEfmt ",
            b"BM\x00\x01\x00\x00\x00\x00\x00\x00",
            b"II*\x00",
            b"\x00\x00\x01\x00\x01\x00",
            b"\x00\x00\x00\x18ftypheic",
            b"\x1A\x45\xDF\xA3",
            b"ID3\x03\x00",
            b"\xFF\xFB\x90",
            b"OggS\x00",
            b"fLaC",
            b"%PDF-1.7",
            b"PK\x03\x04",
            b"\x1F\x8B\x08",
            b"7z\xBC\xAF\x27\x1C",
        ] {
            assert!(is_known_binary(b), "{b:?}");
        }
        for b in [
            &b"BMW owners"[..],
            b"ID3 is a tag",
            b"hello\x00",
            b"text\xff",
            b"\xFF\xFEa\x00",
            b"",
        ] {
            assert!(!is_known_binary(b), "{b:?}");
        }
    }
}
