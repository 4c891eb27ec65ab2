//! The scanner: one compiled DLP profile, and the pure scan of a request.
//!
//! Job: compile a profile's detector list (built-in ids and custom specs) once;
//! then, per request, decode and extract the body ([`super::extract`]), normalise
//! every field ([`super::normalize`]), run the detectors over each field and over
//! all fields joined by a space (a value split across two fields is still one
//! value), over the values alone joined (keys would sit between the halves), for
//! the literal detectors (secrets, markings) over the values concatenated with no
//! separator, and over the glued views (`glued_views`) where a value cut inside
//! a group is whole again: the values with every digit-digit junction glued
//! (`943 47` + `6 5919`) for the digit detectors, and each two neighbouring values
//! that meet without whitespace glued on their own (`J` + `G 10 37 82 B`,
//! `OFFICIAL-` + `SENSITIVE` with other fields around); count distinct values
//! per detector and mask one sample. Each text a detector pass reads is also
//! read in its fold view (`normalize::fold_view`: combining marks dropped,
//! TR39 look-alikes mapped to Latin), computed only when the text holds such a
//! character; the separator view is the detectors' own (`detectors/text.rs`).
//! The digit pass over the two space-joined views jumps over each field's
//! quiet interior (`detectors/quiet.rs`): the middle of a long field, which
//! that field's own pass has read and which nothing in a neighbour can reach,
//! so skipping it finds exactly what reading it would (`scan/interior_tests.rs`).
//! The literal and e-mail detectors jump over the part of it between two
//! whitespaces and before any private key header, in those views and (the
//! literal ones) in the concatenation. A joined view's fold view is made only
//! when some field had one.
//!
//! Limits: findings hold only a masked sample (first two and last one characters
//! at most, fewer for short values); distinct values are remembered as 64-bit
//! hashes for the duration of one call. With several fields the detectors run
//! up to four times over the text (each field, all joined, values joined, values
//! glued), plus up to about 512 bytes per junction of two values, so many-field
//! bodies cost up to four or five times more (less where long fields have quiet
//! interiors: the custom detectors still read the joined views whole, since a
//! custom pattern has no bound in length); a single text field is scanned once. A value that is a number on its own (a JSON number, `12345`) is never
//! glued to a neighbour's digit, so two numeric fields are not read as one
//! number (a bare digit run split into two numeric fields is found only where
//! the space-joined view finds it: cards, not NHS numbers). A value found both
//! whole and cut short in a pair view (a private key block, a sort code without
//! its account) may count twice.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use super::detectors::{
    literal_interior, Builtin, BuiltinDetectors, CustomDetectorSpec, CustomDetectors, Scratch,
    BUILTIN_DETECTORS,
};
use super::extract::{decode_content, extract, Field, ScanInput, ScanLimits};
use super::normalize::{fold_view, normalize};
use super::{DlpError, ScanError};

/// What one detector found in one request. `sample` is masked (e.g. `JG******B`),
/// so the derived `Debug` is safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Detector id: a built-in id or a custom detector's name.
    pub detector: String,
    /// Number of distinct values found.
    pub count: usize,
    /// The first value found, masked; never the raw value.
    pub sample: String,
}

/// Findings plus what could not be scanned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanReport {
    /// Sorted by detector id, one entry per detector that found something.
    pub findings: Vec<Finding>,
    /// Multipart parts skipped as binary (images, archives).
    pub binary_parts_skipped: usize,
}

/// A compiled DLP profile. `Send + Sync`; share it in an `Arc`.
#[derive(Debug)]
pub struct Scanner {
    /// Output slot → detector id.
    names: Vec<String>,
    builtins: Option<BuiltinDetectors>,
    custom: Option<CustomDetectors>,
}

impl Scanner {
    /// Compiles a profile. `detectors` names built-ins and/or entries of `custom`
    /// (custom specs not named are not enabled). An unknown name, a custom name
    /// reused or shadowing a built-in, an empty custom detector or a bad pattern is
    /// an error naming the detector.
    pub fn new(detectors: &[String], custom: &[CustomDetectorSpec]) -> Result<Scanner, DlpError> {
        for (i, spec) in custom.iter().enumerate() {
            if Builtin::from_id(&spec.name).is_some()
                || custom[..i].iter().any(|c| c.name == spec.name)
            {
                return Err(DlpError::DuplicateDetector(spec.name.clone()));
            }
        }
        let mut names: Vec<String> = Vec::new();
        let mut builtin_slots = [None; 12];
        let mut custom_slots: Vec<(&CustomDetectorSpec, usize)> = Vec::new();
        for name in detectors {
            if names.contains(name) {
                continue;
            }
            let slot = names.len();
            if let Some(b) = Builtin::from_id(name) {
                builtin_slots[b as usize] = Some(slot);
            } else if let Some(spec) = custom.iter().find(|c| &c.name == name) {
                custom_slots.push((spec, slot));
            } else {
                return Err(DlpError::UnknownDetector(name.clone()));
            }
            names.push(name.clone());
        }
        let builtins = if builtin_slots.iter().any(Option::is_some) {
            Some(BuiltinDetectors::new(builtin_slots)?)
        } else {
            None
        };
        let custom = if custom_slots.is_empty() {
            None
        } else {
            Some(CustomDetectors::new(&custom_slots)?)
        };
        Ok(Scanner {
            names,
            builtins,
            custom,
        })
    }

    /// Every built-in detector (what `socialgate scan` uses with no profile).
    #[allow(clippy::expect_used)] // Constant patterns, compiled by every test of this module.
    pub fn all_builtins() -> Scanner {
        let ids: Vec<String> = BUILTIN_DETECTORS
            .iter()
            .map(|id| (*id).to_string())
            .collect();
        Scanner::new(&ids, &[]).expect("built-in DLP patterns compile")
    }

    /// The enabled detector ids, in profile order.
    pub fn detector_ids(&self) -> &[String] {
        &self.names
    }

    /// Decodes the Content-Encoding, extracts fields by Content-Type (and the
    /// query string), normalises and detects. Pure: no I/O, no clock.
    pub fn scan_request(
        &self,
        req: &ScanInput<'_>,
        limits: &ScanLimits,
    ) -> Result<Vec<Finding>, ScanError> {
        self.scan_request_report(req, limits).map(|r| r.findings)
    }

    /// As [`Scanner::scan_request`], also counting skipped binary parts.
    pub fn scan_request_report(
        &self,
        req: &ScanInput<'_>,
        limits: &ScanLimits,
    ) -> Result<ScanReport, ScanError> {
        let decoded = decode_content(req.body, req.content_encoding, limits)?;
        let extracted = extract(&decoded, req.content_type, req.query)?;
        if extracted.too_deeply_nested {
            return Err(ScanError::Undecodable(format!(
                "multipart nested more than {} levels deep",
                super::extract::MAX_MULTIPART_NESTING
            )));
        }
        Ok(ScanReport {
            findings: self.scan_fields(&extracted.fields),
            binary_parts_skipped: extracted.binary_parts_skipped,
        })
    }

    /// Scans one plain text.
    pub fn scan_text(&self, text: &str) -> Vec<Finding> {
        self.scan_fields(&[Field {
            text: Cow::Borrowed(text),
            is_key: false,
        }])
    }

    fn scan_fields(&self, fields: &[Field<'_>]) -> Vec<Finding> {
        self.scan_fields_with(fields, true)
    }

    /// `skip_interiors`: the digit pass over the joined views jumps over each
    /// field's quiet interior (`detectors/quiet.rs`); false only to check, in
    /// tests, that this finds exactly what the whole pass finds.
    fn scan_fields_with(&self, fields: &[Field<'_>], skip_interiors: bool) -> Vec<Finding> {
        let mut tally = Tally::new(self.names.len());
        // The digit pass's buffers and the joined views, reused by every pass.
        let mut scratch = Scratch::default();
        let normal: Vec<(Cow<'_, str>, bool)> = fields
            .iter()
            .map(|f| (normalize(&f.text), f.is_key))
            .collect();
        // What each field's own pass left: its quiet interior, and whether it
        // had a fold view (a joined view has one only if some field has).
        let mut alone: Vec<Alone> = Vec::with_capacity(normal.len());
        scratch.track_quiet = normal.len() > 1;
        for (text, _) in &normal {
            alone.push(self.detect(text, &mut scratch, &mut tally));
        }
        scratch.track_quiet = false;
        if normal.len() > 1 {
            let all: Vec<(&str, &Alone)> = normal
                .iter()
                .zip(&alone)
                .map(|((t, _), a)| (t.as_ref(), a))
                .collect();
            let values: Vec<(&str, &Alone)> = normal
                .iter()
                .zip(&alone)
                .filter(|((_, key), _)| !key)
                .map(|((t, _), a)| (t.as_ref(), a))
                .collect();
            let mut joined = String::with_capacity(all.iter().map(|(t, _)| t.len() + 1).sum());
            let mut skip = Interiors::default();
            join_with_interiors(&mut joined, &mut skip, &all, " ", skip_interiors);
            self.detect_joined(&joined, &skip, &all, &mut scratch, &mut tally);
            if values.len() > 1 && values.len() < all.len() {
                join_with_interiors(&mut joined, &mut skip, &values, " ", skip_interiors);
                self.detect_joined(&joined, &skip, &values, &mut scratch, &mut tally);
            }
            // With one value or none, the concatenation is that value (already
            // read by every detector) and there is no junction to glue.
            if let (Some(b), true) = (&self.builtins, values.len() > 1) {
                // A token cut mid-way (AKIA… split in two fields) is whole only
                // without a separator; the values' literal interiors, which
                // start at a whitespace and end after one, are still skipped.
                let mut sink = |slot: usize, value: &str| tally.add(slot, value);
                join_with_interiors(&mut joined, &mut skip, &values, "", skip_interiors);
                b.detect_literals_only(&joined, &skip.literals, &mut sink);
                let values: Vec<&str> = values.iter().map(|(t, _)| *t).collect();
                // So is a group of a number (`943 47` + `6 5919`, `J` + `G 10 37 82 B`),
                // and a token cut between two fields that have neighbours.
                let views = glued_views(&values);
                if let Some(digits) = &views.digits {
                    b.detect_numbers_only(digits, &mut scratch, &mut sink);
                }
                for (pair, numbers) in &views.pairs {
                    b.detect_literals_only(pair, &[], &mut sink);
                    if *numbers {
                        b.detect_numbers_only(pair, &mut scratch, &mut sink);
                    }
                }
            }
        }
        tally.into_findings(&self.names)
    }

    /// One text read alone: every detector, then its fold view if it has one.
    fn detect(&self, text: &str, scratch: &mut Scratch, tally: &mut Tally) -> Alone {
        let mut read = Alone::default();
        if text.is_empty() {
            return read;
        }
        self.detect_view(text, &Interiors::default(), scratch, tally);
        read.quiet = scratch.quiet.take();
        read.literal_quiet = read
            .quiet
            .and_then(|q| literal_interior(text.as_bytes(), q, scratch.key_header));
        // Look-alikes and combining marks undone, only when the text has some.
        if let Some(folded) = fold_view(text) {
            read.folds = true;
            self.detect_view(&folded, &Interiors::default(), scratch, tally);
        }
        read
    }

    /// A joined view of texts already read alone (`parts`): as [`Scanner::detect`],
    /// the passes jumping over the parts' interiors (`skip`); the fold view is looked for only
    /// when some part has one (folding reads one character at a time, so the
    /// view's characters are the parts' and the spaces between).
    fn detect_joined(
        &self,
        text: &str,
        skip: &Interiors,
        parts: &[(&str, &Alone)],
        scratch: &mut Scratch,
        tally: &mut Tally,
    ) {
        if text.is_empty() {
            return;
        }
        self.detect_view(text, skip, scratch, tally);
        if parts.iter().any(|(_, a)| a.folds) {
            if let Some(folded) = fold_view(text) {
                self.detect_view(&folded, &Interiors::default(), scratch, tally);
            }
        }
    }

    /// The built-ins (jumping over `skip`) and the custom detectors (which
    /// read it all: a pattern has no bound in length) over one text.
    fn detect_view(&self, text: &str, skip: &Interiors, scratch: &mut Scratch, tally: &mut Tally) {
        let mut sink = |slot: usize, value: &str| tally.add(slot, value);
        if let Some(b) = &self.builtins {
            b.detect_skipping(text, &skip.digits, &skip.literals, scratch, &mut sink);
        }
        if let Some(c) = &self.custom {
            c.detect(text, &mut sink);
        }
    }
}

/// What the pass over one text alone leaves for the joined views.
#[derive(Debug, Default)]
struct Alone {
    /// The text's quiet interior, `[start, end)` in the text.
    quiet: Option<(usize, usize)>,
    /// The part of it the literal and e-mail detectors skip (`literal_interior`).
    literal_quiet: Option<(usize, usize)>,
    /// The text had a fold view.
    folds: bool,
}

/// The ranges of a joined view that the passes over it jump over, sorted and
/// apart: the parts' quiet interiors for the digit pass, their literal
/// interiors for the literal and e-mail detectors.
#[derive(Debug, Default)]
struct Interiors {
    digits: Vec<(usize, usize)>,
    literals: Vec<(usize, usize)>,
}

/// `parts` joined by `sep` into `out`, and in `skip` each part's interiors
/// placed in `out` (none unless `skip_interiors`).
fn join_with_interiors(
    out: &mut String,
    skip: &mut Interiors,
    parts: &[(&str, &Alone)],
    sep: &str,
    skip_interiors: bool,
) {
    out.clear();
    skip.digits.clear();
    skip.literals.clear();
    for (i, (part, alone)) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        if skip_interiors {
            let at = out.len();
            let place = |(start, end): (usize, usize)| (at + start, at + end);
            skip.digits.extend(alone.quiet.map(place));
            skip.literals.extend(alone.literal_quiet.map(place));
        }
        out.push_str(part);
    }
}

/// Context kept on each side of a junction in a pair view (bytes, then back to
/// the nearest whitespace so no token is cut).
const PAIR_CONTEXT: usize = 256;

/// How two consecutive non-empty values meet in the glued views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Junction {
    /// Whitespace at the cut: the values joined by a space already read well.
    Space,
    /// A digit on both sides: glued in the digits view (and a pair view for
    /// the literal detectors).
    Digits,
    /// Something else on both sides: a pair view; `true` when the digit
    /// detectors run on it too (a letter and a letter or digit at the cut,
    /// digits near it).
    Pair(bool),
}

/// A value that is a number on its own (digits, signs, decimal points: a JSON
/// number, an id) is never glued to a digit of a neighbour for the digit detectors.
fn is_number(v: &str) -> bool {
    v.bytes().any(|b| b.is_ascii_digit())
        && v.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.'))
}

fn junction(a: &str, b: &str) -> Junction {
    let (Some(x), Some(y)) = (a.bytes().next_back(), b.bytes().next()) else {
        return Junction::Space;
    };
    if x <= b' ' || y <= b' ' {
        return Junction::Space;
    }
    if x.is_ascii_digit() && y.is_ascii_digit() {
        // Two numbers in fields of their own are not one number.
        return if is_number(a) || is_number(b) {
            Junction::Pair(false)
        } else {
            Junction::Digits
        };
    }
    let alnum = x.is_ascii_alphanumeric() && y.is_ascii_alphanumeric();
    let near = 24;
    let tail = &a.as_bytes()[a.len().saturating_sub(near)..];
    let head = &b.as_bytes()[..b.len().min(near)];
    Junction::Pair(alnum && tail.iter().chain(head).any(u8::is_ascii_digit))
}

/// The views where a value cut in two across fields is whole again.
#[derive(Debug, Default, PartialEq, Eq)]
struct GluedViews {
    /// For the digit detectors: the values with every digit-digit junction
    /// glued and the others spaced (`943 47` + `6 5919`, also cut in three).
    /// `None` when no junction is digit-digit.
    digits: Option<String>,
    /// For each junction without whitespace at the cut, the two values alone
    /// glued (about [`PAIR_CONTEXT`] bytes each side), and whether the digit
    /// detectors run on it (`J` + `G 10 37 82 B`, `A` + `12345678`). Gluing
    /// letters in the whole text would join neighbouring words and break the
    /// word boundaries the detectors need.
    pairs: Vec<(String, bool)>,
}

fn glued_views(values: &[&str]) -> GluedViews {
    let values: Vec<&str> = values.iter().copied().filter(|v| !v.is_empty()).collect();
    let mut views = GluedViews::default();
    let glued = values
        .windows(2)
        .any(|w| junction(w[0], w[1]) == Junction::Digits);
    let mut digits = String::new();
    if glued {
        digits.reserve(values.iter().map(|v| v.len() + 1).sum());
    }
    for (i, &value) in values.iter().enumerate() {
        if i > 0 {
            let j = junction(values[i - 1], value);
            if j != Junction::Space {
                let mut pair = tail(values[i - 1], PAIR_CONTEXT).to_string();
                pair.push_str(head(value, PAIR_CONTEXT));
                views.pairs.push((pair, matches!(j, Junction::Pair(true))));
            }
            if glued && j != Junction::Digits {
                digits.push(' ');
            }
        }
        if glued {
            digits.push_str(value);
        }
    }
    if glued {
        views.digits = Some(digits);
    }
    views
}

/// About the last `n` bytes of `v`, from a whitespace (a char boundary) so no
/// token is cut; all of `v` when it is short or one long token.
fn tail(v: &str, n: usize) -> &str {
    let from = v.len().saturating_sub(n);
    match v.as_bytes()[from..]
        .iter()
        .position(u8::is_ascii_whitespace)
    {
        Some(p) if from > 0 => &v[from + p..],
        _ => v,
    }
}

/// About the first `n` bytes of `v`, up to a whitespace so no token is cut.
fn head(v: &str, n: usize) -> &str {
    if v.len() <= n {
        return v;
    }
    match v.as_bytes()[..n].iter().rposition(u8::is_ascii_whitespace) {
        Some(p) => &v[..p],
        None => v,
    }
}

/// Distinct values per slot, as hashes, and one masked sample each.
struct Tally {
    /// `(slot, value hash)`: already hashed, so the set does not hash again.
    seen: HashSet<(usize, u64), BuildHasherDefault<Prehashed>>,
    slots: Vec<(usize, Option<String>)>,
}

impl Tally {
    fn new(n: usize) -> Tally {
        Tally {
            seen: HashSet::default(),
            slots: vec![(0, None); n],
        }
    }

    fn add(&mut self, slot: usize, value: &str) {
        let mut h = DefaultHasher::new();
        value.hash(&mut h);
        if !self.seen.insert((slot, h.finish())) {
            return;
        }
        if let Some((count, sample)) = self.slots.get_mut(slot) {
            *count += 1;
            if sample.is_none() {
                *sample = Some(mask(value));
            }
        }
    }

    fn into_findings(self, names: &[String]) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .slots
            .into_iter()
            .zip(names)
            .filter(|((count, _), _)| *count > 0)
            .map(|((count, sample), name)| Finding {
                detector: name.clone(),
                count,
                sample: sample.unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| a.detector.cmp(&b.detector));
        out
    }
}

/// The hasher of [`Tally::seen`]: its keys are a slot and a 64-bit hash of a
/// value, so mixing the two words is enough.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// Masks a value: separators stripped, then at most the first two and the last
/// character visible (one and one under six characters, none under four), at
/// least one `*`, at most 16.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '.'))
        .collect();
    let n = chars.len();
    let (head, tail) = match n {
        0..=3 => (0, 0),
        4..=5 => (1, 1),
        _ => (2, 1),
    };
    let stars = (n - head - tail).clamp(1, 16);
    let mut out: String = chars[..head].iter().collect();
    out.extend(std::iter::repeat_n('*', stars));
    out.extend(&chars[n - tail..]);
    out
}

#[cfg(test)]
mod interior_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const BLOCK_PROFILE: &[&str] = &[
        "payment-card",
        "uk-nino",
        "nhs-number",
        "protective-marking",
        "secrets",
        "iban",
        "uk-bank-account",
        "uk-passport",
        "uk-driving-licence",
    ];

    /// One canary per block detector, as the evasion suite (tests/dlp_evasion.rs) names them.
    const CANARIES: &[(&str, &str)] = &[
        ("payment-card", "4111 1111 1111 1111"),
        ("uk-nino", "JG 10 37 82 B"),
        ("nhs-number", "943 476 5919"),
        ("protective-marking", "OFFICIAL-SENSITIVE"),
        ("secrets", "AKIAIOSFODNN7EXAMPLE"),
        ("iban", "GB82 WEST 1234 5698 7654 32"),
        ("uk-bank-account", "sort code 12-34-56 account 12345678"),
    ];

    fn block_scanner() -> Scanner {
        let ids: Vec<String> = BLOCK_PROFILE.iter().map(|s| s.to_string()).collect();
        Scanner::new(&ids, &[]).unwrap()
    }

    fn scan(ct: Option<&str>, ce: Option<&str>, body: &[u8], query: Option<&str>) -> Vec<Finding> {
        let req = ScanInput {
            content_type: ct,
            content_encoding: ce,
            body,
            query,
        };
        block_scanner()
            .scan_request(&req, &ScanLimits::default())
            .unwrap()
    }

    fn assert_found(findings: &[Finding], id: &str, how: &str) {
        assert!(
            findings.iter().any(|f| f.detector == id),
            "{id} not found {how}: {findings:?}"
        );
    }

    fn percent_encode_all(s: &str) -> String {
        s.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    fn json_u_escape(s: &str) -> String {
        s.encode_utf16().map(|u| format!("\\u{u:04x}")).collect()
    }

    fn fullwidth_digits(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '0'..='9' => char::from_u32(0xFF10 + (c as u32 - '0' as u32)).unwrap(),
                other => other,
            })
            .collect()
    }

    fn zero_width(s: &str) -> String {
        s.chars().flat_map(|c| [c, '\u{200B}']).collect()
    }

    fn split_half(s: &str) -> (String, String) {
        let mid = s.len() / 2;
        let cut = (mid..s.len())
            .find(|&i| s.as_bytes()[i] == b' ')
            .unwrap_or(mid);
        (s[..cut].to_string(), s[cut..].trim_start().to_string())
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = ::brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        out
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    #[test]
    fn evasion_suite_every_canary_every_way() {
        for &(id, canary) in CANARIES {
            let text = format!("please post this {canary} thanks");
            let form_ct = Some("application/x-www-form-urlencoded");
            let text_ct = Some("text/plain");
            assert_found(&scan(text_ct, None, text.as_bytes(), None), id, "plain");
            assert_found(
                &scan(None, None, text.as_bytes(), None),
                id,
                "plain, no content-type",
            );
            let pct = format!("status={}", percent_encode_all(&text));
            assert_found(
                &scan(form_ct, None, pct.as_bytes(), None),
                id,
                "percent-encoded form",
            );
            assert_found(
                &scan(text_ct, None, percent_encode_all(&text).as_bytes(), None),
                id,
                "percent-encoded text",
            );
            assert_found(
                &scan(Some("text/plain"), None, b"", Some(&pct)),
                id,
                "query string",
            );
            let json = format!(r#"{{"status":"{}"}}"#, json_u_escape(&text));
            assert_found(
                &scan(Some("application/json"), None, json.as_bytes(), None),
                id,
                "JSON \\u",
            );
            let gql = format!(
                r#"{{"query":"mutation P($t:String!){{post(text:$t)}}","variables":{{"t":"{}"}}}}"#,
                json_u_escape(canary)
            );
            assert_found(
                &scan(Some("application/json"), None, gql.as_bytes(), None),
                id,
                "GraphQL variables",
            );
            let (a, b) = split_half(canary);
            let split = format!("a={}&b={}", a.replace(' ', "+"), b.replace(' ', "+"));
            if !b.is_empty() {
                assert_found(
                    &scan(form_ct, None, split.as_bytes(), None),
                    id,
                    "split across form fields",
                );
                let split_json = format!(r#"{{"z":"{a}","a":"{b}"}}"#);
                assert_found(
                    &scan(Some("application/json"), None, split_json.as_bytes(), None),
                    id,
                    "split JSON",
                );
            }
            let multipart = format!(
                "--b0undary\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\n{text}\r\n--b0undary--\r\n"
            );
            let mp_ct = Some("multipart/form-data; boundary=b0undary");
            assert_found(
                &scan(mp_ct, None, multipart.as_bytes(), None),
                id,
                "multipart",
            );
            let b64 =
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, text.as_bytes());
            let multipart64 = format!(
                "--b0undary\r\nContent-Disposition: form-data; name=\"status\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b0undary--\r\n"
            );
            assert_found(
                &scan(mp_ct, None, multipart64.as_bytes(), None),
                id,
                "multipart base64",
            );
            assert_found(
                &scan(text_ct, Some("gzip"), &gzip(text.as_bytes()), None),
                id,
                "gzip",
            );
            assert_found(
                &scan(text_ct, Some("br"), &brotli(text.as_bytes()), None),
                id,
                "br",
            );
            assert_found(
                &scan(text_ct, Some("zstd"), &zstd(text.as_bytes()), None),
                id,
                "zstd",
            );
            assert_found(
                &scan(
                    form_ct,
                    Some("gzip, br"),
                    &brotli(&gzip(pct.as_bytes())),
                    None,
                ),
                id,
                "gzip, br form",
            );
            assert_found(
                &scan(text_ct, None, zero_width(&text).as_bytes(), None),
                id,
                "zero-width",
            );
            let soft = text.replace(' ', " \u{00AD}");
            assert_found(
                &scan(text_ct, None, soft.as_bytes(), None),
                id,
                "soft hyphens",
            );
            assert_found(
                &scan(text_ct, None, fullwidth_digits(&text).as_bytes(), None),
                id,
                "full-width digits",
            );
            let entities: String = text.chars().map(|c| format!("&#{};", c as u32)).collect();
            assert_found(
                &scan(text_ct, None, entities.as_bytes(), None),
                id,
                "HTML entities",
            );
        }
    }

    fn form(fields: &[&str]) -> Vec<Finding> {
        let body: String = fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let v: String = url::form_urlencoded::byte_serialize(f.as_bytes()).collect();
                format!("f{i}={v}&")
            })
            .collect();
        scan(
            Some("application/x-www-form-urlencoded"),
            None,
            body.as_bytes(),
            None,
        )
    }

    /// Splits inside a group, between two non-space characters nearest the middle.
    fn split_mid_group(s: &str) -> (String, String) {
        let chars: Vec<char> = s.chars().collect();
        let middle = chars.len() / 2;
        let at = (1..chars.len())
            .filter(|&i| chars[i - 1] != ' ' && chars[i] != ' ')
            .min_by_key(|i| i.abs_diff(middle))
            .unwrap_or(middle);
        (chars[..at].iter().collect(), chars[at..].iter().collect())
    }

    #[test]
    fn whitespace_evasions_every_canary() {
        let s = block_scanner();
        for &(id, canary) in CANARIES {
            for sep in [
                "  ",
                "\t",
                "\n",
                "\r\n",
                "\u{00A0}",
                "\u{00A0} ",
                "\u{2003}",
                "\u{3000}",
                "\u{1680}",
                "\u{2028}",
                "\u{0085}",
                " \u{200B}\t",
            ] {
                let text = format!("please post this {} thanks", canary.replace(' ', sep));
                assert_found(&s.scan_text(&text), id, &format!("separated by {sep:?}"));
                let pct = format!("status={}", percent_encode_all(&text));
                assert_found(
                    &scan(
                        Some("application/x-www-form-urlencoded"),
                        None,
                        pct.as_bytes(),
                        None,
                    ),
                    id,
                    &format!("form, separated by {sep:?}"),
                );
            }
        }
    }

    #[test]
    fn invisible_format_evasions_every_canary() {
        let s = block_scanner();
        let marks = [
            '\u{200E}',
            '\u{200F}',
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{061C}',
            '\u{034F}',
            '\u{180E}',
            '\u{2061}',
            '\u{2062}',
            '\u{2063}',
            '\u{2064}',
            '\u{FE0F}',
            '\u{E0100}',
        ];
        for &(id, canary) in CANARIES {
            for mark in marks {
                let hidden: String = canary.chars().flat_map(|c| [c, mark]).collect();
                let text = format!("please post this {hidden} thanks");
                assert_found(
                    &s.scan_text(&text),
                    id,
                    &format!("with U+{:04X}", mark as u32),
                );
            }
            // Every mark in turn, as the end-to-end suite sends them.
            let mixed: String = canary
                .chars()
                .zip(marks.iter().cycle())
                .flat_map(|(c, &m)| [c, m])
                .collect();
            assert_found(&s.scan_text(&mixed), id, "with mixed marks");
        }
    }

    #[test]
    fn splits_across_fields_every_canary() {
        for &(id, canary) in CANARIES {
            // Inside a group: `943 47` + `6 5919`, `JG 10 3` + `7 82 B`.
            let (a, b) = split_mid_group(canary);
            assert!(!a.ends_with(' ') && !b.starts_with(' ') && !b.is_empty());
            assert_found(
                &form(&[&a, &b]),
                id,
                &format!("split mid-group {a:?} {b:?}"),
            );
            assert_found(
                &form(&["hello", &a, &b, "public"]),
                id,
                "split mid-group among other fields",
            );
            let json = format!(r#"{{"z":"{a}","a":"{b}"}}"#);
            assert_found(
                &scan(Some("application/json"), None, json.as_bytes(), None),
                id,
                "split mid-group in JSON",
            );
            // At a space kept at the end of the first half: `4111 1111 ` + `1111 1111`.
            if let Some((a, b)) = canary.split_once(' ') {
                let a = format!("{a} ");
                assert_found(&form(&[&a, b]), id, "split keeping the space");
                let b = format!(" {b}");
                assert_found(
                    &form(&[a.trim_end(), &b]),
                    id,
                    "split keeping the space (second half)",
                );
            }
        }
        assert_found(&form(&["JG 10 3", "7 82 B"]), "uk-nino", "NINO split");
        assert_found(&form(&["943 47", "6 5919"]), "nhs-number", "NHS split");
        assert_found(
            &form(&["sort code 12-3", "4-56 account 1234", "5678"]),
            "uk-bank-account",
            "bank split twice",
        );
        assert_found(
            &form(&["hello", "J", "G 10 37 82 B", "public"]),
            "uk-nino",
            "prefix split",
        );
        assert_found(
            &form(&["943 4", "76 59", "19 thanks"]),
            "nhs-number",
            "NHS split in three",
        );
        assert_found(
            &scan(
                Some("application/x-www-form-urlencoded"),
                None,
                b"t=passport+no+A&u=12345678",
                None,
            ),
            "uk-passport",
            "passport letter split",
        );
    }

    #[test]
    fn numeric_fields_are_not_glued() {
        // Separate numbers (ids, counts, JSON numbers) are not one number glued.
        assert!(form(&["401023", "2137"]).is_empty());
        assert!(form(&["page", "401", "0232137"]).is_empty());
        let json =
            r#"{"id":401023,"count":2137,"lat":51.5074,"lng":-0.1278,"n":"943","m":"4765919"}"#;
        assert!(scan(Some("application/json"), None, json.as_bytes(), None).is_empty());
        let views = |v: &[&str]| {
            let g = glued_views(v);
            let pairs: Vec<(&str, bool)> = g.pairs.iter().map(|(p, n)| (p.as_str(), *n)).collect();
            (g.digits.clone(), format!("{pairs:?}"))
        };
        assert_eq!(views(&["a", "12"]), (None, r#"[("a12", true)]"#.into()));
        assert_eq!(views(&["a1", "12"]), (None, r#"[("a112", false)]"#.into()));
        assert_eq!(views(&["a ", "b"]), (None, "[]".into()));
        assert_eq!(
            views(&["hello", "world"]),
            (None, r#"[("helloworld", false)]"#.into())
        );
        assert_eq!(views(&["x1", "-5"]), (None, r#"[("x1-5", false)]"#.into()));
        assert_eq!(
            views(&["hi ", "943 47", "", "6 59", "19", " public"]),
            (
                Some("hi  943 476 59 19  public".into()),
                r#"[("943 476 59", false), ("6 5919", false)]"#.into()
            )
        );
        assert_eq!(
            views(&["hi 1", "2 J", "G 10 37 82 B"]),
            (
                Some("hi 12 J G 10 37 82 B".into()),
                r#"[("hi 12 J", false), ("2 JG 10 37 82 B", true)]"#.into()
            )
        );
        let long = format!("{} ab12", "word ".repeat(100));
        assert_eq!(tail(&long, 8), "  ab12");
        assert_eq!(head(&long, 12), "word word");
        assert_eq!(tail("short", 8), "short");
        assert_eq!(head(&"x".repeat(20), 8).len(), 20);
    }

    #[test]
    fn errors_fail_closed() {
        let s = Scanner::all_builtins();
        let req = |ce, body| ScanInput {
            content_type: Some("text/plain"),
            content_encoding: Some(ce),
            body,
            query: None,
        };
        let limits = ScanLimits::default();
        assert_eq!(
            s.scan_request(&req("compress", b"x"), &limits),
            Err(ScanError::UnknownEncoding("compress".into()))
        );
        assert!(matches!(
            s.scan_request(&req("gzip", b"\x1f\x8b\x08junk"), &limits),
            Err(ScanError::Undecodable(_))
        ));
        let bomb = gzip(&vec![b'a'; 4 * 1024 * 1024]);
        let small = ScanLimits {
            max_decoded_bytes: 1024 * 1024,
        };
        assert_eq!(
            s.scan_request(&req("gzip", &bomb), &small),
            Err(ScanError::TooLarge)
        );
    }

    #[test]
    fn findings_sorted_distinct_and_masked() {
        let s = Scanner::all_builtins();
        let text = "JG 10 37 82 B and again JG103782B, card 4111-1111-1111-1111, AB123456C";
        let f = s.scan_text(text);
        let ids: Vec<&str> = f.iter().map(|f| f.detector.as_str()).collect();
        assert_eq!(ids, vec!["payment-card", "uk-nino"]);
        assert_eq!(f[1].count, 2);
        assert_eq!(f[1].sample, "JG******B");
        assert_eq!(f[0].sample, "41*************1");
    }

    #[test]
    fn masking_never_reveals_a_canary() {
        let s = Scanner::all_builtins();
        for &(id, canary) in CANARIES {
            let f = s.scan_text(canary);
            assert_found(&f, id, "masking");
            let stripped: String = canary
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .collect();
            for finding in &f {
                assert!(
                    !finding.sample.contains(canary) && !finding.sample.contains(&stripped),
                    "{finding:?}"
                );
                assert!(finding.sample.contains('*'));
                let debug = format!("{finding:?}");
                assert!(!debug.contains(canary) && !debug.contains(&stripped));
            }
        }
        assert_eq!(mask("abc"), "***");
        assert_eq!(mask("abcd"), "a**d");
        assert_eq!(mask(&"x".repeat(100)).len(), 19);
    }

    #[test]
    fn profile_errors_name_the_detector() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Scanner::new(&ids(&["nope"]), &[]).unwrap_err(),
            DlpError::UnknownDetector("nope".into())
        );
        let shadow = CustomDetectorSpec {
            name: "iban".into(),
            keywords: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(
            Scanner::new(&ids(&["iban"]), &[shadow]).unwrap_err(),
            DlpError::DuplicateDetector("iban".into())
        );
        let bad = CustomDetectorSpec {
            name: "b".into(),
            pattern: Some("[".into()),
            ..Default::default()
        };
        assert!(
            matches!(Scanner::new(&ids(&["b"]), &[bad]), Err(DlpError::BadPattern { detector, .. }) if detector == "b")
        );
    }

    #[test]
    fn custom_and_builtin_together() {
        let custom = vec![CustomDetectorSpec {
            name: "project-codenames".into(),
            keywords: vec!["Nightjar".into(), "Operation Kestrel".into()],
            ..Default::default()
        }];
        let ids: Vec<String> = ["project-codenames", "uk-nino"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = Scanner::new(&ids, &custom).unwrap();
        let f = s
            .scan_text("News on OPERATION  KESTREL? no: Operation Kestrel and nightjar. JG103782B");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].detector, "project-codenames");
        assert_eq!(f[0].count, 2);
        assert_eq!(s.detector_ids(), &ids[..]);
    }

    #[test]
    fn thousand_keywords_compile_and_match() {
        let keywords: Vec<String> = (0..1000).map(|i| format!("codename{i}x")).collect();
        let custom = vec![CustomDetectorSpec {
            name: "k".into(),
            keywords,
            ..Default::default()
        }];
        let s = Scanner::new(&["k".to_string()], &custom).unwrap();
        let f = s.scan_text("leak: Codename999X and codename5x but not codename5xx");
        assert_eq!(f[0].count, 2);
    }

    #[test]
    fn scanner_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Scanner>();
    }

    #[test]
    fn benign_corpus_is_clean() {
        let corpus = include_str!("benign_corpus.txt");
        let posts: Vec<&str> = corpus.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(posts.len() >= 200, "only {} posts", posts.len());
        let s = block_scanner();
        for post in &posts {
            let f = s.scan_text(post);
            assert!(f.is_empty(), "{post:?} -> {f:?}");
        }
        // And all of them at once, as one body.
        assert!(s.scan_text(corpus).is_empty());
        let form: String = posts
            .iter()
            .enumerate()
            .map(|(i, p)| format!("p{i}={}&", p.replace(' ', "+").replace('&', "%26")))
            .collect();
        let req = ScanInput {
            content_type: Some("application/x-www-form-urlencoded"),
            content_encoding: None,
            body: form.as_bytes(),
            query: None,
        };
        assert!(s
            .scan_request(&req, &ScanLimits::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn benign_corpus_is_clean_however_spaced_or_split() {
        let corpus = include_str!("benign_corpus.txt");
        let posts: Vec<&str> = corpus.lines().filter(|l| !l.trim().is_empty()).collect();
        let s = block_scanner();
        for sep in ["  ", "\t", "\n", "\r\n"] {
            for post in &posts {
                let spaced = post.replace(' ', sep);
                let f = s.scan_text(&spaced);
                assert!(f.is_empty(), "{spaced:?} -> {f:?}");
            }
            let spaced = corpus.replace(' ', sep);
            assert!(s.scan_text(&spaced).is_empty(), "corpus with {sep:?}");
        }
        // Every word a field of its own, and every post cut in two mid-word: the
        // glued views must not make a number of the pieces.
        for post in &posts {
            let words: Vec<&str> = post.split(' ').collect();
            let f = form(&words);
            assert!(f.is_empty(), "{post:?} as words -> {f:?}");
            let (a, b) = split_mid_group(post);
            let f = form(&[&a, &b]);
            assert!(f.is_empty(), "{post:?} cut -> {f:?}");
        }
        let f = form(&posts);
        assert!(f.is_empty(), "{f:?}");
    }
}
