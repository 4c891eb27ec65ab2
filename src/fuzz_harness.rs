//! Fuzz entry points: each takes arbitrary bytes, runs one untrusted-input path
//! of the gateway, and must never panic, whatever the bytes.
//!
//! Job: give the cargo-fuzz targets in `fuzz/` and the corpus replay in
//! `tests/fuzz_corpus.rs` one shared driver per path, so a fuzzer finding is a
//! plain `cargo test` regression: [`policy_loader`] (policy YAML through the
//! loader and the policy's own tests), [`settings_loader`] (gateway settings
//! YAML), [`request_decision`] (an HTTP/1.1 request head and body, decided by
//! the built-in policy the way the proxy and `explain` decide it),
//! [`dlp_extract`] (decoding, extraction and scanning of a body),
//! [`dlp_normalize`] (the field normaliser and the detectors behind it) and
//! [`dlp_charset`] (charset and transfer-encoding decoding through the verdict
//! the proxy applies, with an oracle).
//!
//! Limits: results are mostly thrown away; the property checked is "no panic,
//! no hang, bounded memory", and [`dlp_charset`] also asserts that DLP fails
//! closed (a refusal is never an allow; a planted identifier is found or the
//! body refused). Nothing here touches the disk, the network or the
//! clock: policy files are served from memory (the built-in catalogue plus the
//! input), and the request's time is fixed unless the input names one. Input
//! formats are documented on each function and in `fuzz/README.md`. Compiled
//! only with the `fuzzing` feature (`fuzz/Cargo.toml` and every test build
//! turn it on), so the gateway's own build carries none of it.

use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};

use crate::dlp::normalize::{decimal_digit, is_invisible, normalize};
use crate::dlp::{ScanInput, ScanLimits, Scanner};
use crate::policy::selftest::TestRequest;
use crate::policy::sources::{EmbeddedFiles, PolicyFiles, BUILTIN_POLICY};
use crate::policy::{load_policy, normalize_host, Decision, Facts, NormalHost, Policy};
use crate::settings::Settings;
use crate::verdict::run_tests;
use crate::verdict::{apply_dlp, evaluate_test_request, Content};
use crate::view::{RawRequest, RequestView};

/// Decompression and scan cap used by the harnesses (the proxy default is 10 MiB;
/// 1 MiB keeps fuzzing fast while still exercising the cap).
const SCAN_LIMIT: usize = 1 << 20;

/// Where the fuzzed policy lives, next to the built-in one, so that its
/// `include: [sites/*.yaml]` finds the built-in catalogue.
const FUZZ_POLICY: &str = "policies/fuzz.yaml";

/// Separates the main policy from extra include files in a `policy_loader` input.
const FILE_SEPARATOR: u8 = 0;

/// Identities every request is decided for: one per role of the built-in policy,
/// a named user, and nobody in particular.
const IDENTITIES: &[(&str, &[&str])] = &[
    ("press", &["communications"]),
    ("staff", &["all-staff"]),
    ("contractor", &["contractors"]),
    ("eve", &[]),
    ("", &[]),
];

/// Policy files held in memory: the fuzzed main file, extra fuzzed files under
/// `policies/fuzz/N.yaml`, and the built-in catalogue behind them.
struct MemFiles {
    files: Vec<(String, String)>,
}

impl MemFiles {
    fn new(data: &[u8]) -> MemFiles {
        let mut files = Vec::new();
        for (i, chunk) in data.split(|b| *b == FILE_SEPARATOR).enumerate() {
            let name = if i == 0 {
                FUZZ_POLICY.to_string()
            } else {
                format!("policies/fuzz/{i}.yaml")
            };
            files.push((name, String::from_utf8_lossy(chunk).into_owned()));
        }
        MemFiles { files }
    }
}

impl PolicyFiles for MemFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        let want = crate::policy::sources::clean(path);
        match self.files.iter().find(|(p, _)| *p == want) {
            Some((_, text)) => Ok(text.clone()),
            None => EmbeddedFiles.read(path),
        }
    }

    fn expand(&self, pattern: &str) -> Result<Vec<String>, String> {
        let mut out = EmbeddedFiles.expand(pattern)?;
        let pat = glob::Pattern::new(&crate::policy::sources::clean(pattern))
            .map_err(|e| e.to_string())?;
        for (p, _) in &self.files {
            if pat.matches(p) && !out.contains(p) {
                out.push(p.clone());
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Policy loader: the input is a policy YAML file; NUL bytes split off extra
/// files `policies/fuzz/1.yaml`, `2.yaml`, ... that it may `include`. The
/// built-in site catalogue is reachable too (`include: [sites/*.yaml]`). A
/// policy that loads has its own `tests:` run.
pub fn policy_loader(data: &[u8]) {
    let files = MemFiles::new(data);
    if let Ok(policy) = load_policy(FUZZ_POLICY, &files) {
        let _ = run_tests(&policy);
        decide_samples(&policy);
    }
}

/// Decides a few fixed requests against a freshly loaded policy.
fn decide_samples(policy: &Policy) {
    const SAMPLES: &[&str] = &[
        "GET https://www.linkedin.com/feed/",
        "POST https://x.com/i/api/graphql/abc/CreateTweet?q=1",
        "CONNECT www.facebook.com:443",
    ];
    for line in SAMPLES {
        let body = Some(b"{\"text\":\"hello 4111 1111 1111 1111\"}".to_vec());
        let headers = [("content-type".to_string(), "application/json".to_string())];
        if let Ok(req) = TestRequest::parse(line, &headers, body) {
            for (user, groups) in IDENTITIES {
                let groups: Vec<String> = groups.iter().map(|g| (*g).to_string()).collect();
                let _ = evaluate_test_request(policy, user, &groups, &req, Some(fixed_time()));
            }
        }
    }
}

/// Settings loader: the input is a `socialgate.yaml`.
pub fn settings_loader(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = Settings::from_yaml("fuzz-settings.yaml", &text);
}

/// The built-in policy, loaded once (`None` if it does not load, which the
/// policy tests of the crate would catch; the harness then only parses).
fn builtin_policy() -> Option<&'static Policy> {
    static POLICY: OnceLock<Option<Policy>> = OnceLock::new();
    POLICY
        .get_or_init(|| load_policy(BUILTIN_POLICY, &EmbeddedFiles).ok())
        .as_ref()
}

/// A weekday morning in term time: most `when:` windows are open.
fn fixed_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, 9, 30, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// One request head, split the way an HTTP/1.1 server would see it.
struct Head<'a> {
    method: &'a str,
    target: &'a str,
    headers: Vec<(&'a [u8], &'a [u8])>,
    body: &'a [u8],
}

/// Splits `data` into request line, header lines and body (after the first
/// empty line). Lenient like a fuzz driver should be: LF or CRLF line ends,
/// header lines without a colon skipped.
fn split_head(data: &[u8]) -> Option<Head<'_>> {
    let (head, body) = match find(data, b"\r\n\r\n") {
        Some(i) => (&data[..i], &data[i + 4..]),
        None => match find(data, b"\n\n") {
            Some(i) => (&data[..i], &data[i + 2..]),
            None => (data, &[][..]),
        },
    };
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = std::str::from_utf8(lines.next()?).ok()?;
    let mut parts = request_line.split(' ').filter(|p| !p.is_empty());
    let method = parts.next()?;
    let target = parts.next()?;
    let headers = lines
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            Some((trim(&line[..colon]), trim(&line[colon + 1..])))
        })
        .collect();
    Some(Head {
        method,
        target,
        headers,
        body,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    bytes.get(start..end).unwrap_or(&[])
}

/// Request head → decision. The input is an HTTP/1.1 request (`METHOD target
/// HTTP/1.1`, header lines, an empty line, the body), decided by the built-in
/// policy for several identities in two ways: as the proxy does (the head
/// through `http`'s parsers, `decide`, then `apply_dlp` with a scan cap) and as
/// `explain` / policy tests do (`TestRequest::parse`, `evaluate_test_request`).
/// An `x-fuzz-at: <RFC 3339>` header sets the clock.
pub fn request_decision(data: &[u8]) {
    let Some(head) = split_head(data) else {
        return;
    };
    let Some(policy) = builtin_policy() else {
        return;
    };
    let mut map = http::HeaderMap::new();
    let mut text_headers: Vec<(String, String)> = Vec::new();
    for (name, value) in &head.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
        text_headers.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    let at = map
        .get("x-fuzz-at")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map_or_else(fixed_time, |t| t.with_timezone(&Utc));
    let host_header = map.get(http::header::HOST).and_then(|v| v.to_str().ok());

    // The proxy's view: hyper has parsed the target into a `Uri`.
    let connect = head.method.eq_ignore_ascii_case("CONNECT");
    if let Ok(uri) = head.target.parse::<http::Uri>() {
        let host_str = match uri.authority() {
            Some(a) => Some(a.host()),
            None => host_header.map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h)),
        };
        if let Some(host) = host_str.and_then(normalize_host) {
            let (path, query) = if connect {
                ("", None)
            } else {
                (uri.path(), uri.query())
            };
            decide_proxy(policy, &head, &map, &host, path, query, connect, at);
        }
    }

    // The `explain` / policy-test view: `METHOD URL` with headers and body.
    let url = if connect || head.target.contains("://") {
        head.target.to_string()
    } else {
        format!("http://{}{}", host_header.unwrap_or(""), head.target)
    };
    let line = format!("{} {}", head.method, url);
    let body = (!head.body.is_empty()).then(|| head.body.to_vec());
    if let Ok(req) = TestRequest::parse(&line, &text_headers, body) {
        let _ = req.websocket();
        // `evaluate_test_request` scans without a size cap (its callers hold the
        // body already): only drive it where decoding cannot expand the body.
        if !req.headers.contains_key(http::header::CONTENT_ENCODING) {
            for (user, groups) in IDENTITIES {
                let groups: Vec<String> = groups.iter().map(|g| (*g).to_string()).collect();
                let _ = evaluate_test_request(policy, user, &groups, &req, Some(at));
            }
        }
    }
}

/// Decides like `proxy::forward` / `proxy::connect`: `decide`, then `apply_dlp`.
#[allow(clippy::too_many_arguments)]
fn decide_proxy(
    policy: &Policy,
    head: &Head<'_>,
    headers: &http::HeaderMap,
    host: &NormalHost,
    path: &str,
    query: Option<&str>,
    connect: bool,
    at: DateTime<Utc>,
) {
    let header = |name: http::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let body = (!connect).then_some(head.body);
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let raw = RawRequest {
        method: if connect { "CONNECT" } else { head.method },
        host,
        target: if connect { "" } else { &target },
        headers,
        body,
        connect,
    };
    let Ok(view) = RequestView::build(policy, &raw) else {
        return;
    };
    for (user, groups) in IDENTITIES {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_string()).collect();
        let facts = Facts {
            user,
            groups: &groups,
            request: view.clone(),
            at: Some(at),
            account: Default::default(),
        };
        let decision = policy.decide(&facts);
        // The proxy's unworded decision is the same decision, reason aside.
        let unworded = policy.decide_unworded(&facts);
        assert_eq!(
            Decision {
                reason: String::new(),
                ..decision.clone()
            },
            unworded,
            "decide and decide_unworded disagree"
        );
        let _ = policy.site_for(host);
        if connect {
            continue;
        }
        let content = Content {
            content_type: header(http::header::CONTENT_TYPE),
            content_encoding: header(http::header::CONTENT_ENCODING),
            body: head.body,
            query,
        };
        let _ = apply_dlp(policy, decision, Some(content), SCAN_LIMIT);
    }
}

/// Every built-in detector, compiled once.
fn scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(Scanner::all_builtins)
}

/// DLP extraction: the input is three header lines and a body —
/// `Content-Type\nContent-Encoding\nquery\nbody...`; an empty line is an absent
/// header (or query). Runs decoding, extraction, normalisation and detection
/// with a 1 MiB decoded-size cap.
pub fn dlp_extract(data: &[u8]) {
    let mut rest = data;
    let mut line = || -> Option<String> {
        let (l, r) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        rest = r;
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        (!l.is_empty()).then(|| String::from_utf8_lossy(l).into_owned())
    };
    let content_type = line();
    let content_encoding = line();
    let query = line();
    let input = ScanInput {
        content_type: content_type.as_deref(),
        content_encoding: content_encoding.as_deref(),
        body: rest,
        query: query.as_deref(),
    };
    let limits = ScanLimits {
        max_decoded_bytes: SCAN_LIMIT,
    };
    let _ = scanner().scan_request_report(&input, &limits);
}

/// DLP normalisation: the input (lossily UTF-8) is one text field; it is
/// normalised, its characters classified, and it is scanned as plain text.
pub fn dlp_normalize(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let normal = normalize(&text);
    for c in normal.chars() {
        let _ = is_invisible(c);
        let _ = decimal_digit(c);
    }
    let _ = scanner().scan_text(&text);
}

/// Content types [`dlp_charset`] picks from (its first input byte).
const CHARSET_MIMES: &[&str] = &[
    "text/plain",
    "application/json",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
    "text/csv",
    "application/vnd.api+json",
    "text/html",
    "",
    "multipart/form-data; boundary=B0undary",
];

/// Charset labels [`dlp_charset`] picks from (its second input byte); past the
/// end of the table the label is the body's first line.
const CHARSET_LABELS: &[&str] = &[
    "",
    "utf-8",
    "utf-16",
    "utf-16le",
    "utf-16be",
    "utf-32",
    "utf-32le",
    "utf-32be",
    "ucs-2",
    "unicode",
    "unicodefffe",
    "iso-8859-1",
    "windows-1252",
    "shift_jis",
    "euc-jp",
    "iso-2022-jp",
    "euc-kr",
    "gb18030",
    "gbk",
    "big5",
    "koi8-r",
    "x-user-defined",
    "iso-2022-kr",
    "hz-gb-2312",
    "iso-2022-cn",
    "x-no-such-charset",
    "\"UTF-16\"",
    "us-ascii",
];

/// Content-Transfer-Encodings [`dlp_charset`] picks from (its third input byte).
const CHARSET_CTES: &[&str] = &[
    "",
    "base64",
    "quoted-printable",
    "7bit",
    "8bit",
    "binary",
    "x-uuencode",
    "BASE64",
];

/// Identifiers [`dlp_charset`] plants in ASCII; each is one the built-in
/// `official` profile blocks when it reads the bytes as ASCII.
const CHARSET_CANARIES: &[&str] = &["JG 10 37 82 B", "OFFICIAL-SENSITIVE", "4111 1111 1111 1111"];

/// The multipart boundary of [`dlp_charset`]'s wrapped bodies.
const CHARSET_BOUNDARY: &str = "B0undary";

/// The profile of the built-in policy that [`dlp_charset`] applies.
const CHARSET_PROFILE: &str = "official";

/// Charset and transfer-encoding decoding, through the verdict the proxy applies
/// (`verdict::apply_dlp` with the built-in policy's `official` profile on an
/// allowing decision, 1 MiB cap). The input: byte 0 picks a content type, byte 1
/// a charset label (past the table: the body's first line is the label), byte 2
/// a Content-Transfer-Encoding, byte 3 flags (bit 0: wrap the body in one
/// `multipart/form-data` part that carries the type, charset and transfer
/// encoding in its headers, else the charset goes on the request's Content-Type
/// and the transfer encoding is unused; bit 1: plant a canary; bits 2-3: which
/// canary), byte 4 where the canary goes (a fraction of the body); the rest is
/// the body.
///
/// Oracle (panics on violation): a refusal is always a deny; and where a canary
/// was planted in ASCII, between line breaks, in bytes the site receives as they
/// are (not a multipart container the fuzzer wrote, not a part skipped as binary
/// by its magic bytes), the verdict is a deny: found, or refused as undecodable.
/// A site that ignores the declared charset reads those bytes as ASCII, so a
/// clean verdict there is a bypass.
pub fn dlp_charset(data: &[u8]) {
    let Some(policy) = builtin_policy() else {
        return;
    };
    let Some(profile) = policy.dlp.profiles.get(CHARSET_PROFILE) else {
        return;
    };
    let Some(scanner) = profile.scanner.as_deref() else {
        return;
    };
    let [mime, label, cte, flags, at, rest @ ..] = data else {
        return;
    };
    let mime = CHARSET_MIMES[usize::from(*mime) % CHARSET_MIMES.len()];
    let mut rest = rest;
    let label = match CHARSET_LABELS.get(usize::from(*label)) {
        Some(l) => (*l).to_string(),
        None => {
            let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            let l: String = String::from_utf8_lossy(&rest[..end])
                .chars()
                .filter(|c| c.is_ascii_graphic() && *c != ';')
                .collect();
            rest = rest.get(end + 1..).unwrap_or(&[]);
            l
        }
    };
    let cte = CHARSET_CTES[usize::from(*cte) % CHARSET_CTES.len()];
    let wrap = flags & 1 != 0;
    let plant = flags & 2 != 0;
    let canary = CHARSET_CANARIES[usize::from(flags >> 2 & 3) % CHARSET_CANARIES.len()];

    // The bytes the site receives for the text, with the canary planted.
    let mut text = rest.to_vec();
    if plant {
        let pos = usize::from(*at) * text.len() / 256;
        let planted = format!("\n{canary}\n");
        text.splice(pos..pos, planted.bytes());
    }
    let typed = |mime: &str| match (mime.is_empty(), label.is_empty()) {
        (true, true) => String::new(),
        (true, false) => format!("text/plain; charset={label}"),
        (false, true) => mime.to_string(),
        (false, false) => format!("{mime}; charset={label}"),
    };
    let (content_type, body, oracle) = if wrap {
        let mut body =
            format!("--{CHARSET_BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"\r\n")
                .into_bytes();
        let part_type = typed(if mime.starts_with("multipart/") {
            ""
        } else {
            mime
        });
        if !part_type.is_empty() {
            body.extend_from_slice(format!("Content-Type: {part_type}\r\n").as_bytes());
        }
        if !cte.is_empty() {
            body.extend_from_slice(format!("Content-Transfer-Encoding: {cte}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&text);
        body.extend_from_slice(format!("\r\n--{CHARSET_BOUNDARY}--\r\n").as_bytes());
        // A boundary in the fuzzed bytes would move the canary out of the part.
        let clean = memchr::memmem::find(&text, CHARSET_BOUNDARY.as_bytes()).is_none();
        (
            format!("multipart/form-data; boundary={CHARSET_BOUNDARY}"),
            body,
            plant && clean,
        )
    } else {
        (typed(mime), text, plant && !mime.starts_with("multipart/"))
    };
    let content = Content {
        content_type: (!content_type.is_empty()).then_some(content_type.as_str()),
        content_encoding: None,
        body: &body,
        query: None,
    };
    let decision = Decision {
        action: crate::policy::Action::Allow,
        rule: "fuzz-dlp".into(),
        site: "fuzz".into(),
        activity: "post".into(),
        reason: String::new(),
        dry_run: Vec::new(),
        roles: Vec::new(),
        dlp: Some(CHARSET_PROFILE.into()),
        warn_for: None,
        message: None,
        matched: Default::default(),
        account: Default::default(),
    };
    let verdict = apply_dlp(policy, decision, Some(content), SCAN_LIMIT);
    let denied = verdict.decision.action == crate::policy::Action::Deny;
    assert!(
        verdict.refusal.is_none() || denied,
        "a DLP refusal was not a deny: {:?}",
        verdict.refusal
    );
    assert!(
        verdict.findings.is_empty() || denied,
        "findings under a blocking profile were not a deny: {:?}",
        verdict.findings
    );
    if oracle && !denied {
        let input = ScanInput {
            content_type: content.content_type,
            content_encoding: None,
            body: &body,
            query: None,
        };
        let limits = ScanLimits {
            max_decoded_bytes: SCAN_LIMIT,
        };
        let skipped = scanner
            .scan_request_report(&input, &limits)
            .map_or(0, |r| r.binary_parts_skipped);
        assert!(
            skipped > 0,
            "canary {canary:?} planted in ASCII was allowed (content-type {content_type:?}, \
             transfer encoding {cte:?})"
        );
    }
}
