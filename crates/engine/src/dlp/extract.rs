//! Extraction: from a raw request body to the text fields that get scanned.
//!
//! Job: undo the Content-Encoding (gzip, x-gzip, deflate, br, zstd, identity; a
//! list is undone in reverse order) with the decompressed size capped, then split
//! the container named by Content-Type into text fields: form-urlencoded keys and
//! values; multipart/form-data parts (nested multipart, base64 and
//! quoted-printable parts, per-part charset, binary parts skipped and counted);
//! JSON object keys, string values and numbers, in document order; anything else
//! as text. When the type is missing or wrong, the body is sniffed and scanned
//! every plausible way (scanning too much beats scanning too little).
//!
//! Limits: the caller holds the whole body; decompression stops at
//! `max_decoded_bytes` (`TooLarge`); JSON nested deeper than serde_json's
//! recursion limit (128) is scanned as text with its `\u` escapes decoded;
//! binary-looking parts of a non-text type are not scanned (images, archives).

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::ScanError;

/// One request as the scanner sees it: headers it needs, the body, the query.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanInput<'a> {
    /// The `Content-Type` header value, if any.
    pub content_type: Option<&'a str>,
    /// The `Content-Encoding` header value, if any (e.g. `"gzip"`, `"gzip, br"`).
    pub content_encoding: Option<&'a str>,
    /// The whole body as received (still content-encoded).
    pub body: &'a [u8],
    /// The raw query string without `?`; scanned as one more form-encoded input.
    pub query: Option<&'a str>,
}

/// Resource limits for one scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Cap on the body and on its decompressed size; beyond it the scan is `TooLarge`.
    pub max_decoded_bytes: usize,
}

impl Default for ScanLimits {
    /// 10 MiB, the policy default for `limits.max_scan_bytes`.
    fn default() -> Self {
        ScanLimits {
            max_decoded_bytes: 10 * 1024 * 1024,
        }
    }
}

/// One text field: a value, or a key (form key, JSON object key, part name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'b> {
    /// The text, not yet normalised.
    pub text: Cow<'b, str>,
    /// True for keys: they are scanned, but left out of the values-only join.
    pub is_key: bool,
}

impl<'b> Field<'b> {
    fn value(text: impl Into<Cow<'b, str>>) -> Field<'b> {
        Field {
            text: text.into(),
            is_key: false,
        }
    }
    fn key(text: impl Into<Cow<'b, str>>) -> Field<'b> {
        Field {
            text: text.into(),
            is_key: true,
        }
    }
}

/// The text fields of one request, in order, and what was skipped.
#[derive(Debug, Default)]
pub struct Extracted<'b> {
    /// Text fields in document order.
    pub fields: Vec<Field<'b>>,
    /// Multipart parts skipped as binary.
    pub binary_parts_skipped: usize,
    /// A multipart body nested more deeply than [`MAX_MULTIPART_NESTING`]: not
    /// parsed (the parser recurses per level), and refused by the scanner.
    pub too_deeply_nested: bool,
}

/// How many `multipart/` types one body may name. The multipart parser recurses
/// once per nesting level; a body nested thousands deep would overflow the stack
/// (found by fuzzing), so deeper bodies are refused instead (fail closed).
pub const MAX_MULTIPART_NESTING: usize = 32;

/// How many RFC 2047 encoded words (`=?charset?B?...?=`, `?Q?`) one multipart
/// body may carry: the parser decodes them in part headers, so a nested
/// `Content-Type` can hide `multipart/` inside one.
pub const MAX_ENCODED_WORDS: usize = 256;

/// Could this body nest deeper than the parser can safely recurse? Counts
/// `multipart/` and encoded-word markers (any case), stopping past the limits.
fn multipart_types_exceed_limit(data: &[u8]) -> bool {
    let Ok(finder) = aho_corasick::AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(["multipart/", "?b?", "?q?"])
    else {
        return true;
    };
    let (mut types, mut words) = (0usize, 0usize);
    for m in finder.find_overlapping_iter(data) {
        if m.pattern().as_usize() == 0 {
            types += 1;
        } else {
            words += 1;
        }
        if types > MAX_MULTIPART_NESTING || words > MAX_ENCODED_WORDS {
            return true;
        }
    }
    false
}

/// Undoes the Content-Encoding list, capping the output at `limits.max_decoded_bytes`.
pub fn decode_content<'b>(
    body: &'b [u8],
    content_encoding: Option<&str>,
    limits: &ScanLimits,
) -> Result<Cow<'b, [u8]>, ScanError> {
    let cap = limits.max_decoded_bytes;
    if body.len() > cap {
        return Err(ScanError::TooLarge);
    }
    let Some(header) = content_encoding else {
        return Ok(Cow::Borrowed(body));
    };
    let codings: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(unknown) = codings.iter().find(|c| {
        !matches!(
            c.as_str(),
            "identity" | "gzip" | "x-gzip" | "deflate" | "br" | "zstd"
        )
    }) {
        return Err(ScanError::UnknownEncoding(unknown.clone()));
    }
    let mut data = Cow::Borrowed(body);
    for coding in codings.iter().rev() {
        if data.is_empty() {
            break;
        }
        data = match coding.as_str() {
            "gzip" | "x-gzip" => Cow::Owned(read_capped(
                flate2::read::MultiGzDecoder::new(&data[..]),
                cap,
            )?),
            "deflate" => Cow::Owned(inflate(&data, cap)?),
            "br" => Cow::Owned(read_capped(
                brotli_decompressor::Decompressor::new(&data[..], 4096),
                cap,
            )?),
            "zstd" => Cow::Owned(unzstd(&data, cap)?),
            _ => data,
        };
    }
    Ok(data)
}

fn read_capped<R: Read>(reader: R, cap: usize) -> Result<Vec<u8>, ScanError> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| ScanError::Undecodable(e.to_string()))?;
    if out.len() > cap {
        return Err(ScanError::TooLarge);
    }
    Ok(out)
}

/// HTTP `deflate` is zlib-wrapped, but some clients send raw deflate: accept both.
fn inflate(data: &[u8], cap: usize) -> Result<Vec<u8>, ScanError> {
    match read_capped(flate2::read::ZlibDecoder::new(data), cap) {
        Err(ScanError::Undecodable(_)) => read_capped(flate2::read::DeflateDecoder::new(data), cap),
        other => other,
    }
}

/// Decodes every zstd frame in `data` (concatenated frames are legal).
fn unzstd(data: &[u8], cap: usize) -> Result<Vec<u8>, ScanError> {
    let mut input = data;
    let mut out = Vec::new();
    while !input.is_empty() {
        let decoder = ruzstd::decoding::StreamingDecoder::new(&mut input)
            .map_err(|e| ScanError::Undecodable(format!("zstd: {e}")))?;
        let room = cap.saturating_sub(out.len());
        let frame = read_capped(decoder, room)?;
        if frame.is_empty() && out.is_empty() && input.len() == data.len() {
            break;
        }
        out.extend_from_slice(&frame);
    }
    Ok(out)
}

/// Splits a decoded body into text fields by its Content-Type, then adds the query.
pub fn extract<'b>(
    body: &'b [u8],
    content_type: Option<&str>,
    query: Option<&'b str>,
) -> Extracted<'b> {
    let mut out = Extracted::default();
    if !body.is_empty() {
        let parsed = content_type.map(mailparse::parse_content_type);
        match parsed {
            Some(ct) => extract_typed(body, &ct, content_type.unwrap_or_default(), &mut out),
            None => extract_sniffed(body, &mut out),
        }
    }
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        extract_form(query.as_bytes(), &mut out.fields);
    }
    out
}

fn is_json_type(mime: &str) -> bool {
    mime.ends_with("/json") || mime.ends_with("+json") || mime.ends_with("-json")
}

fn extract_typed<'b>(
    body: &'b [u8],
    ct: &mailparse::ParsedContentType,
    header: &str,
    out: &mut Extracted<'b>,
) {
    let mime = ct.mimetype.as_str();
    if is_json_type(mime) {
        if !extract_json(body, &mut out.fields) {
            extract_text_with_escapes(body, None, &mut out.fields);
        }
    } else if mime == "application/x-www-form-urlencoded" {
        extract_form(body, &mut out.fields);
        if looks_like_json(body) {
            extract_json(body, &mut out.fields);
        }
    } else if mime.starts_with("multipart/") {
        if !extract_multipart(body, header, out) {
            extract_text_with_escapes(body, None, &mut out.fields);
        }
    } else if looks_like_json(body) && extract_json(body, &mut out.fields) {
        // A JSON body under another (or a fake) type: scan it as JSON.
    } else {
        extract_text_with_escapes(
            body,
            ct.params.get("charset").map(String::as_str),
            &mut out.fields,
        );
    }
}

fn extract_sniffed<'b>(body: &'b [u8], out: &mut Extracted<'b>) {
    if looks_like_json(body) && extract_json(body, &mut out.fields) {
        return;
    }
    if looks_like_form(body) {
        extract_form(body, &mut out.fields);
    }
    extract_text_with_escapes(body, None, &mut out.fields);
}

fn looks_like_json(body: &[u8]) -> bool {
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[' | b'"')
    )
}

/// `k=v&k2=v2`: has `=`, and no whitespace or control bytes.
fn looks_like_form(body: &[u8]) -> bool {
    memchr::memchr(b'=', body).is_some() && body.iter().all(|&b| b > b' ' && b != 0x7f)
}

/// Text in the declared charset (UTF-8 lossy otherwise), plus a copy with JSON
/// `\uXXXX` escapes decoded when it has any (a JSON body that failed to parse).
fn extract_text_with_escapes<'b>(
    body: &'b [u8],
    charset: Option<&str>,
    fields: &mut Vec<Field<'b>>,
) {
    let text = decode_text(body, charset);
    let unescaped = if memchr::memmem::find(text.as_bytes(), b"\\u").is_some() {
        Some(json_unescape(&text))
    } else {
        None
    };
    fields.push(Field::value(text));
    if let Some(u) = unescaped {
        fields.push(Field::value(u));
    }
}

/// Bytes as text with invalid sequences replaced: `str::from_utf8`'s fast
/// validation first (most bodies are valid UTF-8), the slower lossy walk only when
/// it fails. Same result as `String::from_utf8_lossy`.
pub(crate) fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// [`lossy`] for bytes already owned: no copy when they are valid.
pub(crate) fn lossy_owned(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn decode_text<'b>(bytes: &'b [u8], charset: Option<&str>) -> Cow<'b, str> {
    let label = charset.map(|c| c.trim().to_ascii_lowercase());
    match label.as_deref() {
        None | Some("utf-8" | "utf8" | "us-ascii" | "ascii" | "") => lossy(bytes),
        Some(other) => match encoding_rs::Encoding::for_label(other.as_bytes()) {
            Some(enc) => Cow::Owned(enc.decode(bytes).0.into_owned()),
            None => lossy(bytes),
        },
    }
}

/// Decodes `\uXXXX` (with surrogate pairs) and the short JSON escapes.
fn json_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('u') => {
                chars.next();
                let hex: String = chars.by_ref().take(4).collect();
                let Ok(unit) = u32::from_str_radix(&hex, 16) else {
                    out.push_str("\\u");
                    out.push_str(&hex);
                    continue;
                };
                if (0xD800..0xDC00).contains(&unit) {
                    let mut lookahead = chars.clone();
                    if lookahead.next() == Some('\\') && lookahead.next() == Some('u') {
                        let low_hex: String = lookahead.by_ref().take(4).collect();
                        if let Ok(low) = u32::from_str_radix(&low_hex, 16) {
                            if (0xDC00..0xE000).contains(&low) {
                                let cp = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                                out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                                chars = lookahead;
                                continue;
                            }
                        }
                    }
                }
                out.push(char::from_u32(unit).unwrap_or('\u{FFFD}'));
            }
            Some(e @ ('n' | 't' | 'r' | 'b' | 'f' | '"' | '\\' | '/')) => {
                chars.next();
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'b' | 'f' => ' ',
                    other => other,
                });
            }
            _ => out.push(c),
        }
    }
    out
}

/// `application/x-www-form-urlencoded`: each key and value, `+` as space.
fn extract_form<'b>(body: &'b [u8], fields: &mut Vec<Field<'b>>) {
    for pair in body.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = match memchr::memchr(b'=', pair) {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[..0]),
        };
        if !key.is_empty() {
            fields.push(Field::key(form_decode(key)));
        }
        if !value.is_empty() {
            fields.push(Field::value(form_decode(value)));
        }
    }
}

fn form_decode(part: &[u8]) -> Cow<'_, str> {
    if !part.iter().any(|&b| b == b'%' || b == b'+') {
        return lossy(part);
    }
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        match part[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = part
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(lossy_owned(out))
}

/// Every JSON string (keys too) and number, in document order. False if not JSON.
fn extract_json(body: &[u8], fields: &mut Vec<Field<'_>>) -> bool {
    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let ok = CollectStrings(&mut found, false)
        .deserialize(&mut de)
        .is_ok()
        && de.end().is_ok();
    if ok {
        fields.extend(found.into_iter().map(|(text, is_key)| Field {
            text: Cow::Owned(text),
            is_key,
        }));
    }
    ok
}

/// A serde visitor that walks any JSON value and keeps its text in order.
struct CollectStrings<'v>(&'v mut Vec<(String, bool)>, bool);

impl<'de> DeserializeSeed<'de> for CollectStrings<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CollectStrings<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push((v.to_string(), self.1));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push((v.to_string(), self.1));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push((v.to_string(), self.1));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push((v.to_owned(), self.1));
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.0.push((v, self.1));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let out = self.0;
        while seq
            .next_element_seed(CollectStrings(&mut *out, false))?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.0;
        while map
            .next_key_seed(CollectStrings(&mut *out, true))?
            .is_some()
        {
            map.next_value_seed(CollectStrings(&mut *out, false))?;
        }
        Ok(())
    }
}

/// multipart/*: every text part, recursively. False if it could not be parsed.
fn extract_multipart<'b>(
    body: &'b [u8],
    content_type_header: &str,
    out: &mut Extracted<'b>,
) -> bool {
    if multipart_types_exceed_limit(body) {
        out.too_deeply_nested = true;
        return true;
    }
    let mut message = Vec::with_capacity(body.len() + content_type_header.len() + 20);
    message.extend_from_slice(b"Content-Type: ");
    message.extend_from_slice(content_type_header.replace(['\r', '\n'], " ").as_bytes());
    message.extend_from_slice(b"\r\n\r\n");
    message.extend_from_slice(body);
    let Ok(mail) = mailparse::parse_mail(&message) else {
        return false;
    };
    if mail.subparts.is_empty() {
        return false;
    }
    let mut fields = Vec::new();
    for part in &mail.subparts {
        walk_part(part, &mut fields, &mut out.binary_parts_skipped);
    }
    out.fields.extend(fields);
    true
}

fn walk_part(
    part: &mailparse::ParsedMail<'_>,
    fields: &mut Vec<Field<'static>>,
    skipped: &mut usize,
) {
    let disposition = part.get_content_disposition();
    if let Some(name) = disposition.params.get("name") {
        fields.push(Field::key(name.clone()));
    }
    if let Some(filename) = disposition.params.get("filename") {
        fields.push(Field::value(filename.clone()));
    }
    if !part.subparts.is_empty() {
        for sub in &part.subparts {
            walk_part(sub, fields, skipped);
        }
        return;
    }
    let mime = part.ctype.mimetype.to_ascii_lowercase();
    let body = match part.get_body_raw() {
        Ok(b) => b,
        Err(_) => part.raw_bytes.to_vec(),
    };
    let textual = mime.starts_with("text/")
        || is_json_type(&mime)
        || mime == "application/x-www-form-urlencoded"
        || part.ctype.params.contains_key("charset");
    if !textual && looks_binary(&body) {
        *skipped += 1;
        return;
    }
    let mut part_fields: Vec<Field<'_>> = Vec::new();
    if is_json_type(&mime) || looks_like_json(&body) {
        if !extract_json(&body, &mut part_fields) {
            extract_text_with_escapes(&body, None, &mut part_fields);
        }
    } else if mime == "application/x-www-form-urlencoded" {
        extract_form(&body, &mut part_fields);
    } else {
        let charset = part.ctype.params.get("charset").map(String::as_str);
        extract_text_with_escapes(&body, charset, &mut part_fields);
    }
    fields.extend(part_fields.into_iter().map(|f| Field {
        text: Cow::Owned(f.text.into_owned()),
        is_key: f.is_key,
    }));
}

/// The named fields of a `multipart/form-data` body, for activity matchers:
/// each top-level part's `name` and its text (transfer encoding and charset
/// undone). File parts (with a `filename`) and nested multiparts are left out.
/// `None` when the body cannot be parsed or nests too deeply.
pub fn form_data_fields(body: &[u8], content_type_header: &str) -> Option<Vec<(String, String)>> {
    if multipart_types_exceed_limit(body) {
        return None;
    }
    let mut message = Vec::with_capacity(body.len() + content_type_header.len() + 20);
    message.extend_from_slice(b"Content-Type: ");
    message.extend_from_slice(content_type_header.replace(['\r', '\n'], " ").as_bytes());
    message.extend_from_slice(b"\r\n\r\n");
    message.extend_from_slice(body);
    let mail = mailparse::parse_mail(&message).ok()?;
    if mail.subparts.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for part in &mail.subparts {
        let disposition = part.get_content_disposition();
        let Some(name) = disposition.params.get("name") else {
            continue;
        };
        if disposition.params.contains_key("filename") || !part.subparts.is_empty() {
            continue;
        }
        out.push((name.clone(), part.get_body().ok()?));
    }
    Some(out)
}

/// A NUL byte or invalid UTF-8 in the first 8 KiB.
fn looks_binary(body: &[u8]) -> bool {
    let head = &body[..body.len().min(8192)];
    if memchr::memchr(0, head).is_some() {
        return true;
    }
    match std::str::from_utf8(head) {
        Ok(_) => false,
        // A multi-byte character cut by the 8 KiB window is not evidence.
        Err(e) => e.error_len().is_some() || head.len() == body.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lossy_text_is_what_the_standard_library_gives() {
        let cases: [&[u8]; 6] = [
            b"plain ascii",
            "caf\u{e9} \u{1f600}".as_bytes(),
            b"bad \xff byte",
            b"cut \xe2\x82",
            b"\xc0\xafover-long",
            b"",
        ];
        for bytes in cases {
            let expected = String::from_utf8_lossy(bytes);
            assert_eq!(lossy(bytes), expected);
            assert_eq!(lossy_owned(bytes.to_vec()), expected);
        }
    }

    fn limits() -> ScanLimits {
        ScanLimits::default()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    pub(crate) fn fields_of(body: &[u8], ct: Option<&str>) -> Vec<String> {
        extract(body, ct, None)
            .fields
            .into_iter()
            .map(|f| f.text.into_owned())
            .collect()
    }

    #[test]
    fn identity_is_borrowed_and_capped() {
        let out = decode_content(b"hello", None, &limits()).unwrap();
        assert!(matches!(out, Cow::Borrowed(_)));
        let small = ScanLimits {
            max_decoded_bytes: 3,
        };
        assert_eq!(
            decode_content(b"hello", Some("identity"), &small),
            Err(ScanError::TooLarge)
        );
    }

    #[test]
    fn gzip_and_list_order() {
        let inner = gzip(b"hello world");
        assert_eq!(
            &*decode_content(&inner, Some("gzip"), &limits()).unwrap(),
            b"hello world"
        );
        assert_eq!(
            &*decode_content(&inner, Some("x-gzip"), &limits()).unwrap(),
            b"hello world"
        );
        // "gzip, br" means gzip first then br: undo br, then gzip.
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(&inner).unwrap();
        }
        let out = decode_content(&br, Some("gzip, br"), &limits()).unwrap();
        assert_eq!(&*out, b"hello world");
    }

    #[test]
    fn deflate_zlib_and_raw() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"zlib body").unwrap();
        let z = z.finish().unwrap();
        assert_eq!(
            &*decode_content(&z, Some("deflate"), &limits()).unwrap(),
            b"zlib body"
        );
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(b"raw body").unwrap();
        let d = d.finish().unwrap();
        assert_eq!(
            &*decode_content(&d, Some("deflate"), &limits()).unwrap(),
            b"raw body"
        );
    }

    #[test]
    fn zstd_single_and_concatenated_frames() {
        let a = ruzstd::encoding::compress_to_vec(
            &b"first "[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let b = ruzstd::encoding::compress_to_vec(
            &b"second"[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(
            &*decode_content(&a, Some("zstd"), &limits()).unwrap(),
            b"first "
        );
        let both = [a, b].concat();
        assert_eq!(
            &*decode_content(&both, Some("zstd"), &limits()).unwrap(),
            b"first second"
        );
    }

    #[test]
    fn unknown_and_corrupt_encodings_fail() {
        assert_eq!(
            decode_content(b"x", Some("gzip, compress"), &limits()),
            Err(ScanError::UnknownEncoding("compress".into()))
        );
        let mut bad = gzip(b"hello world hello world");
        let n = bad.len();
        bad.truncate(n - 10);
        assert!(matches!(
            decode_content(&bad, Some("gzip"), &limits()),
            Err(ScanError::Undecodable(_))
        ));
        assert!(matches!(
            decode_content(b"not gzip at all", Some("gzip"), &limits()),
            Err(ScanError::Undecodable(_))
        ));
        assert!(matches!(
            decode_content(b"\xff\xfe garbage", Some("br"), &limits()),
            Err(ScanError::Undecodable(_))
        ));
        assert!(matches!(
            decode_content(b"garbage!", Some("zstd"), &limits()),
            Err(ScanError::Undecodable(_))
        ));
        assert!(matches!(
            decode_content(b"garbage!", Some("deflate"), &limits()),
            Err(ScanError::Undecodable(_))
        ));
    }

    #[test]
    fn gzip_bomb_is_too_large() {
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 64 * 1024);
        let cap = ScanLimits {
            max_decoded_bytes: 1024 * 1024,
        };
        assert_eq!(
            decode_content(&bomb, Some("gzip"), &cap),
            Err(ScanError::TooLarge)
        );
    }

    #[test]
    fn form_fields_keys_and_values() {
        let f = fields_of(
            b"na%6De=Jo+Bloggs&x=%F0%9F%98%80&flag&=v",
            Some("application/x-www-form-urlencoded"),
        );
        assert_eq!(f, vec!["name", "Jo Bloggs", "x", "😀", "flag", "v"]);
    }

    #[test]
    fn json_keys_strings_numbers_in_order() {
        let body = br#"{"z":"a\u0041","k":[1,{"\ud83d\ude00":true}],"n":4111111111111111,"f":1.5,"q":null}"#;
        let f = fields_of(body, Some("application/json; charset=utf-8"));
        assert_eq!(
            f,
            vec![
                "z",
                "aA",
                "k",
                "1",
                "😀",
                "n",
                "4111111111111111",
                "f",
                "1.5",
                "q"
            ]
        );
    }

    #[test]
    fn graphql_is_json() {
        let body = br#"{"query":"mutation { post(text: $t) }","variables":{"t":"hello"}}"#;
        let f = fields_of(body, Some("application/json"));
        assert!(f.contains(&"mutation { post(text: $t) }".to_string()));
        assert!(f.contains(&"hello".to_string()));
    }

    #[test]
    fn broken_json_is_text_with_escapes_decoded() {
        let f = fields_of(br#"{"a": "\u0034\u0031 oops"#, Some("application/json"));
        assert_eq!(f.len(), 2);
        assert_eq!(f[1], r#"{"a": "41 oops"#);
    }

    #[test]
    fn sniffing_without_content_type() {
        assert_eq!(fields_of(br#"{"a":"b"}"#, None), vec!["a", "b"]);
        assert_eq!(
            fields_of(b"a=b+c&d=e", None),
            vec!["a", "b c", "d", "e", "a=b+c&d=e"]
        );
        assert_eq!(
            fields_of(b"just words = here", None),
            vec!["just words = here"]
        );
    }

    #[test]
    fn json_under_a_wrong_type_is_still_json() {
        let f = fields_of(br#"{"t":"\u0041B"}"#, Some("text/plain"));
        assert_eq!(f, vec!["t", "AB"]);
    }

    #[test]
    fn text_charset() {
        let f = fields_of(b"caf\xe9", Some("text/plain; charset=iso-8859-1"));
        assert_eq!(f, vec!["café"]);
    }

    #[test]
    fn multipart_parts_nested_base64_charset_binary() {
        let body = concat!(
            "--XyZ\r\n",
            "Content-Disposition: form-data; name=\"status\"\r\n\r\n",
            "hello there\r\n",
            "--XyZ\r\n",
            "Content-Disposition: form-data; name=\"b64\"\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "Content-Transfer-Encoding: base64\r\n\r\n",
            "c2VjcmV0IHRleHQ=\r\n",
            "--XyZ\r\n",
            "Content-Disposition: form-data; name=\"latin\"\r\n",
            "Content-Type: text/plain; charset=iso-8859-1\r\n\r\n",
            "caf\u{e9}\r\n",
            "--XyZ\r\n",
            "Content-Type: multipart/mixed; boundary=inner\r\n\r\n",
            "--inner\r\n",
            "Content-Type: text/plain\r\n\r\n",
            "nested words\r\n",
            "--inner--\r\n",
            "--XyZ\r\n",
            "Content-Disposition: form-data; name=\"pic\"; filename=\"a.png\"\r\n",
            "Content-Type: image/png\r\n\r\n",
        )
        .as_bytes()
        .to_vec();
        let mut body = body;
        // Latin-1 byte for é in the latin part: replace the UTF-8 é.
        let pos = body.windows(2).position(|w| w == "é".as_bytes()).unwrap();
        body.splice(pos..pos + 2, [0xE9u8]);
        body.extend_from_slice(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe");
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        let out = extract(&body, Some("multipart/form-data; boundary=XyZ"), None);
        let f: Vec<String> = out
            .fields
            .into_iter()
            .map(|f| f.text.into_owned())
            .collect();
        assert!(f.contains(&"hello there".to_string()), "{f:?}");
        assert!(f.contains(&"secret text".to_string()), "{f:?}");
        assert!(f.contains(&"café".to_string()), "{f:?}");
        assert!(f.contains(&"nested words".to_string()), "{f:?}");
        assert!(f.contains(&"a.png".to_string()), "{f:?}");
        assert_eq!(out.binary_parts_skipped, 1);
    }

    #[test]
    fn multipart_without_boundary_is_text() {
        let f = fields_of(b"--x\r\n\r\nplain\r\n--x--", Some("multipart/form-data"));
        assert_eq!(f.len(), 1);
        assert!(f[0].contains("plain"));
    }

    #[test]
    fn query_is_one_more_form_input() {
        let out = extract(b"", Some("text/plain"), Some("q=JG+10&x=1"));
        let f: Vec<String> = out
            .fields
            .into_iter()
            .map(|f| f.text.into_owned())
            .collect();
        assert_eq!(f, vec!["q", "JG 10", "x", "1"]);
    }

    #[test]
    fn json_unescape_handles_pairs_and_bad_escapes() {
        assert_eq!(
            json_unescape(r"\ud83d\ude00 \u00e9 \n \uZZZZ \\"),
            "😀 é \n \\uZZZZ \\"
        );
    }
}
