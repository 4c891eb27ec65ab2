//! Extraction: from a raw request body to the text fields that get scanned.
//!
//! Job: undo the Content-Encoding (gzip, x-gzip, deflate, br, zstd, identity; a
//! list is undone in reverse order) with the decompressed size capped, decode
//! the text into its readings ([`super::charset::readings`]: byte order marks,
//! UTF-16/32 labels and null-byte patterns, legacy charsets strictly, a second
//! reading where a server could read the bytes another way), then split the
//! container named by Content-Type into text fields: form-urlencoded keys and
//! values; multipart/form-data parts (nested multipart, base64 and
//! quoted-printable parts scanned decoded and raw, per-part charset, parts
//! skipped as binary only by magic bytes and counted); JSON object keys, string
//! values and numbers, in document order; anything else as text. When the type
//! is missing or wrong, the body is sniffed and scanned every plausible way
//! (scanning too much beats scanning too little).
//!
//! Limits: the caller holds the whole body; decompression stops at
//! `max_decoded_bytes` (`TooLarge`); what cannot be decoded faithfully is an
//! error (`Undecodable`: an unknown or "replacement" charset, malformed
//! UTF-16/32, text malformed in its legacy charset, an unknown or broken
//! Content-Transfer-Encoding), never scanned as lossy text; unlabelled bytes
//! that are not UTF-8 are read with replacement characters (every ASCII
//! character stays). JSON nested deeper than serde_json's recursion limit (128)
//! is scanned as text with its `\u` escapes decoded; parts whose bytes open
//! with a known binary format's magic number are not scanned (images, audio,
//! video, PDF, Office, archives), whatever their declared type.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::charset::{self, lossy, lossy_owned};
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
    /// The same field, owning its text.
    pub fn into_owned(self) -> Field<'static> {
        Field {
            text: Cow::Owned(self.text.into_owned()),
            is_key: self.is_key,
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

/// Splits a decoded body into text fields by its Content-Type, then adds the
/// query. An error when a text cannot be decoded faithfully (an unknown or
/// "replacement" charset, malformed UTF-16/32, a broken Content-Transfer-Encoding).
pub fn extract<'b>(
    body: &'b [u8],
    content_type: Option<&str>,
    query: Option<&'b str>,
) -> Result<Extracted<'b>, ScanError> {
    let mut out = Extracted::default();
    if !body.is_empty() {
        let parsed = content_type.map(mailparse::parse_content_type);
        match parsed {
            Some(ct) if ct.mimetype.starts_with("multipart/") => {
                if !extract_multipart(body, content_type.unwrap_or_default(), &mut out)? {
                    extract_container(body, None, None, &mut out.fields)?;
                }
            }
            Some(ct) => extract_container(
                body,
                Some(ct.mimetype.as_str()),
                ct.params.get("charset").map(String::as_str),
                &mut out.fields,
            )?,
            None => extract_container(body, None, None, &mut out.fields)?,
        }
    }
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        extract_form(query.as_bytes(), &mut out.fields);
    }
    Ok(out)
}

fn is_json_type(mime: &str) -> bool {
    mime.ends_with("/json") || mime.ends_with("+json") || mime.ends_with("-json")
}

/// A non-multipart body (or part): decoded into its readings
/// ([`charset::readings`]), then each reading split by type: JSON, form, or
/// text; sniffed when `mime` is `None`.
fn extract_container<'b>(
    body: &'b [u8],
    mime: Option<&str>,
    charset: Option<&str>,
    fields: &mut Vec<Field<'b>>,
) -> Result<(), ScanError> {
    for reading in charset::readings(body, charset, mime.is_some_and(is_json_type))? {
        match reading {
            Cow::Borrowed(text) => split_text(text, mime, fields),
            Cow::Owned(text) => {
                let mut owned: Vec<Field<'_>> = Vec::new();
                split_text(&text, mime, &mut owned);
                fields.extend(owned.into_iter().map(|f| Field {
                    text: Cow::Owned(f.text.into_owned()),
                    is_key: f.is_key,
                }));
            }
        }
    }
    Ok(())
}

fn split_text<'b>(text: &'b str, mime: Option<&str>, fields: &mut Vec<Field<'b>>) {
    let body = text.as_bytes();
    match mime {
        Some(mime) if is_json_type(mime) => {
            if !extract_json(text, fields) {
                extract_text_with_escapes(text, fields);
            }
        }
        Some("application/x-www-form-urlencoded") => {
            extract_form(body, fields);
            if looks_like_json(body) {
                extract_json(text, fields);
            }
        }
        Some(_) => {
            if !(looks_like_json(body) && extract_json(text, fields)) {
                extract_text_with_escapes(text, fields);
            }
        }
        None => {
            if looks_like_json(body) && extract_json(text, fields) {
                return;
            }
            if looks_like_form(body) {
                extract_form(body, fields);
            }
            extract_text_with_escapes(text, fields);
        }
    }
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

/// The text, plus a copy with JSON `\uXXXX` escapes decoded when it has any (a
/// JSON body that failed to parse).
fn extract_text_with_escapes<'b>(text: &'b str, fields: &mut Vec<Field<'b>>) {
    let unescaped = if memchr::memmem::find(text.as_bytes(), b"\\u").is_some() {
        Some(json_unescape(text))
    } else {
        None
    };
    fields.push(Field::value(text));
    if let Some(u) = unescaped {
        fields.push(Field::value(u));
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
/// Strings without escapes are borrowed from the text (read as `str`, so
/// serde_json does not validate its UTF-8 again).
fn extract_json<'b>(text: &'b str, fields: &mut Vec<Field<'b>>) -> bool {
    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let ok = CollectStrings(&mut found, false)
        .deserialize(&mut de)
        .is_ok()
        && de.end().is_ok();
    if ok {
        fields.append(&mut found);
    }
    ok
}

/// A serde visitor that walks any JSON value and keeps its text in order
/// (`true`: the value is an object key).
struct CollectStrings<'v, 'b>(&'v mut Vec<Field<'b>>, bool);

impl CollectStrings<'_, '_> {
    fn push(self, text: String) {
        self.0.push(Field {
            text: Cow::Owned(text),
            is_key: self.1,
        });
    }
}

impl<'b> DeserializeSeed<'b> for CollectStrings<'_, 'b> {
    type Value = ();
    fn deserialize<D: Deserializer<'b>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'b> Visitor<'b> for CollectStrings<'_, 'b> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.push(v.to_string());
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.push(v.to_string());
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.push(v.to_string());
        Ok(())
    }
    fn visit_borrowed_str<E>(self, v: &'b str) -> Result<(), E> {
        self.0.push(Field {
            text: Cow::Borrowed(v),
            is_key: self.1,
        });
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.push(v.to_owned());
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.push(v);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'b>>(self, mut seq: A) -> Result<(), A::Error> {
        let out = self.0;
        while seq
            .next_element_seed(CollectStrings(&mut *out, false))?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'b>>(self, mut map: A) -> Result<(), A::Error> {
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

/// multipart/*: every text part, recursively. `Ok(false)` if it could not be
/// parsed (then the caller scans it as text).
fn extract_multipart(
    body: &[u8],
    content_type_header: &str,
    out: &mut Extracted<'_>,
) -> Result<bool, ScanError> {
    if multipart_types_exceed_limit(body) {
        out.too_deeply_nested = true;
        return Ok(true);
    }
    let mut message = Vec::with_capacity(body.len() + content_type_header.len() + 20);
    message.extend_from_slice(b"Content-Type: ");
    message.extend_from_slice(content_type_header.replace(['\r', '\n'], " ").as_bytes());
    message.extend_from_slice(b"\r\n\r\n");
    message.extend_from_slice(body);
    let Ok(mail) = mailparse::parse_mail(&message) else {
        return Ok(false);
    };
    if mail.subparts.is_empty() {
        return Ok(false);
    }
    let mut fields = Vec::new();
    for part in &mail.subparts {
        walk_part(part, &mut fields, &mut out.binary_parts_skipped)?;
    }
    out.fields.extend(fields);
    Ok(true)
}

/// One part: its name and filename, then its body. A part is binary (skipped,
/// counted) only when its decoded bytes open with a known binary format's magic
/// number ([`charset::is_known_binary`]), whatever its declared type; anything
/// else is text in its charset (or sniffed), refused when it cannot be decoded.
/// A part with a Content-Transfer-Encoding is scanned decoded and raw (RFC 7578
/// servers ignore the header and store the raw text); an unknown or broken
/// transfer encoding is refused.
fn walk_part(
    part: &mailparse::ParsedMail<'_>,
    fields: &mut Vec<Field<'static>>,
    skipped: &mut usize,
) -> Result<(), ScanError> {
    let disposition = part.get_content_disposition();
    if let Some(name) = disposition.params.get("name") {
        fields.push(Field::key(name.clone()));
    }
    if let Some(filename) = disposition.params.get("filename") {
        fields.push(Field::value(filename.clone()));
    }
    if !part.subparts.is_empty() {
        for sub in &part.subparts {
            walk_part(sub, fields, skipped)?;
        }
        return Ok(());
    }
    let mime = part.ctype.mimetype.to_ascii_lowercase();
    let charset = part.ctype.params.get("charset").map(String::as_str);
    let cte = mailparse::MailHeaderMap::get_first_value(
        part.headers.as_slice(),
        "Content-Transfer-Encoding",
    )
    .map(|v| v.trim().to_ascii_lowercase());
    let raw = match part.get_body_encoded() {
        mailparse::body::Body::Base64(b) | mailparse::body::Body::QuotedPrintable(b) => {
            Some(b.get_raw())
        }
        _ => None,
    };
    match cte.as_deref() {
        None | Some("" | "7bit" | "8bit" | "binary" | "base64" | "quoted-printable") => {}
        Some(other) => {
            return Err(ScanError::Undecodable(format!(
                "unknown content-transfer-encoding {other:?} in a multipart part"
            )))
        }
    }
    let body = part.get_body_raw().map_err(|e| {
        ScanError::Undecodable(format!(
            "broken content-transfer-encoding in a multipart part: {e}"
        ))
    })?;
    let mut part_fields: Vec<Field<'_>> = Vec::new();
    if charset::is_known_binary(&body) {
        *skipped += 1;
    } else {
        extract_container(&body, Some(&mime), charset, &mut part_fields)?;
    }
    if let Some(raw) = raw {
        // What a server that ignores the transfer encoding stores.
        extract_container(raw, Some("text/plain"), None, &mut part_fields)?;
    }
    fields.extend(part_fields.into_iter().map(Field::into_owned));
    Ok(())
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
            .unwrap()
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
        let out = extract(&body, Some("multipart/form-data; boundary=XyZ"), None).unwrap();
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

    fn one_part(headers: &str, body: &[u8]) -> Result<Vec<String>, ScanError> {
        let mut b =
            format!("--B\r\nContent-Disposition: form-data; name=\"f\"\r\n{headers}\r\n\r\n")
                .into_bytes();
        b.extend_from_slice(body);
        b.extend_from_slice(b"\r\n--B--\r\n");
        let out = extract(&b, Some("multipart/form-data; boundary=B"), None)?;
        Ok(out
            .fields
            .into_iter()
            .map(|f| f.text.into_owned())
            .collect())
    }

    #[test]
    fn v2_parts_are_binary_only_by_magic_bytes() {
        // Declared binary, but text (a trailing NUL or 0xFF): scanned.
        let f = one_part(
            "Content-Type: application/octet-stream",
            b"JG 10 37 82 B\x00",
        )
        .unwrap();
        assert!(f.iter().any(|t| t.contains("JG 10 37 82 B")), "{f:?}");
        let f = one_part("Content-Type: image/png", b"JG 10 37 82 B\xff").unwrap();
        assert!(f.iter().any(|t| t.contains("JG 10 37 82 B")), "{f:?}");
        // A real PNG declared as text: skipped.
        let mut b = Vec::new();
        b.extend_from_slice(
            b"--B\r\nContent-Type: text/plain\r\n\r\n\x89PNG\r\n\x1a\n\x00\x00JG 10 37 82 B\r\n--B--\r\n",
        );
        let out = extract(&b, Some("multipart/form-data; boundary=B"), None).unwrap();
        assert_eq!(out.binary_parts_skipped, 1);
    }

    #[test]
    fn v2_transfer_encoded_parts_are_scanned_raw_and_decoded() {
        // The raw text is itself valid base64: both readings are scanned.
        let f = one_part("Content-Transfer-Encoding: base64", b"AKIAIOSFODNN7EXAMPLE").unwrap();
        assert!(f.iter().any(|t| t == "AKIAIOSFODNN7EXAMPLE"), "{f:?}");
        let f = one_part("Content-Transfer-Encoding: base64", b"SkcgMTAgMzcgODIgQg==").unwrap();
        assert!(f.iter().any(|t| t == "JG 10 37 82 B"), "{f:?}");
        // Broken or unknown transfer encodings are refused.
        assert!(one_part("Content-Transfer-Encoding: base64", b"not base64!").is_err());
        assert!(one_part("Content-Transfer-Encoding: x-uuencode", b"abc").is_err());
        // Charsets that cannot be decoded faithfully are refused in a part too.
        assert!(one_part("Content-Type: text/plain; charset=iso-2022-kr", b"abc").is_err());
        // An ASCII body labelled UTF-16 is read as what it is.
        let f = one_part("Content-Type: text/plain; charset=utf-16", b"JG 10 37 82 B").unwrap();
        assert!(f.iter().any(|t| t == "JG 10 37 82 B"), "{f:?}");
    }

    #[test]
    fn v2_wide_json_bodies() {
        let json = r#"{"t":"JG 10 37 82 B"}"#;
        let le: Vec<u8> = json.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be32: Vec<u8> = json
            .chars()
            .flat_map(|c| (c as u32).to_be_bytes())
            .collect();
        for body in [le, be32] {
            let f = fields_of(&body, Some("application/json"));
            assert!(f.contains(&"JG 10 37 82 B".to_string()), "{f:?}");
        }
        assert!(extract(b"abc", Some("text/plain; charset=hz-gb-2312"), None).is_err());
    }

    #[test]
    fn multipart_without_boundary_is_text() {
        let f = fields_of(b"--x\r\n\r\nplain\r\n--x--", Some("multipart/form-data"));
        assert_eq!(f.len(), 1);
        assert!(f[0].contains("plain"));
    }

    #[test]
    fn query_is_one_more_form_input() {
        let out = extract(b"", Some("text/plain"), Some("q=JG+10&x=1")).unwrap();
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
