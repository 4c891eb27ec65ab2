//! The site catalogue against recorded client traffic: every request of the labelled
//! corpus in `tests/fixtures/recorded/` (built by `build_corpus.py` there from the
//! VCR cassettes of praw, asyncpraw, Mastodon.py, tweepy and bskyr, labels taken from each
//! platform's API documentation) is named by the built-in default policy the way
//! `socialgate explain` and `tests/catalogue.rs` name a request, and the figures
//! the catalogue must reach are asserted:
//!
//! - no true write (any label but `read`) is named `read`;
//! - at least 99 % of the requests land on the source's site;
//! - at least 95 % get exactly the labelled activity;
//! - at least 85 % of the posts, comments, messages, uploads, reactions and
//!   sign-ins are named exactly (not the generic fallback `write`).
//!
//! Each line of the corpus is one distinct request (its `count` says how often the
//! cassettes hold it); the figures are over distinct requests. The per-source
//! confusion table (label down, activity named across) is printed on stderr:
//! `cargo test --locked --test catalogue_recorded -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use serde_json::Value;
use socialgate::policy::load_policy;
use socialgate::policy::selftest::TestRequest;
use socialgate::policy::sources::FsFiles;
use socialgate::policy::Policy;
use socialgate::verdict::evaluate_test_request;

/// (corpus file, the site its requests go to).
const SOURCES: &[(&str, &str)] = &[
    ("praw", "reddit"),
    ("asyncpraw", "reddit"),
    ("mastodon", "mastodon"),
    ("tweepy", "twitter"),
    ("bskyr", "bluesky"),
];

/// Labels that name what a person does (the "named exactly" set).
const NAMED: &[&str] = &["post", "comment", "message", "upload", "react", "login"];

const BOUNDARY: &str = "corpusBoundary7MA4YWxkTrZu0gW";

/// One corpus line, evaluated.
struct Outcome {
    line: String,
    label: String,
    site: String,
    activity: String,
}

fn policy() -> Policy {
    load_policy("policies/default.yaml", &FsFiles).unwrap_or_else(|e| panic!("{e}"))
}

/// Percent-encodes a form name or value.
fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn field_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The headers and body a corpus line's `body` stands for.
fn body_of(body: Option<&Value>) -> (Vec<(String, String)>, Option<Vec<u8>>) {
    let Some(Value::Object(shape)) = body else {
        return (Vec::new(), None);
    };
    let (kind, fields) = shape.iter().next().expect("a body has one kind");
    match kind.as_str() {
        "json" => (
            vec![("content-type".into(), "application/json".into())],
            Some(serde_json::to_vec(fields).unwrap()),
        ),
        "form" => {
            let map = fields.as_object().expect("form fields are a map");
            let text = map
                .iter()
                .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(&field_text(v))))
                .collect::<Vec<_>>()
                .join("&");
            (
                vec![(
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                )],
                Some(text.into_bytes()),
            )
        }
        "multipart" => {
            let map = fields.as_object().expect("multipart fields are a map");
            let mut text = String::new();
            for (k, v) in map {
                let v = field_text(v);
                if v == "<file>" {
                    text.push_str(&format!(
                        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"f.bin\"\r\nContent-Type: application/octet-stream\r\n\r\nBYTES\r\n"
                    ));
                } else {
                    text.push_str(&format!(
                        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                    ));
                }
            }
            text.push_str(&format!("--{BOUNDARY}--\r\n"));
            (
                vec![(
                    "content-type".into(),
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )],
                Some(text.into_bytes()),
            )
        }
        "raw" => (
            vec![("content-type".into(), field_text(fields))],
            Some(b"BYTES".to_vec()),
        ),
        other => panic!("unknown body kind `{other}`"),
    }
}

/// The URL with the header's `host_map` applied (a recording made against a local
/// test server is replayed on the catalogue host it stands for, over https).
fn mapped_url(url: &str, host_map: &serde_json::Map<String, Value>) -> String {
    for (from, to) in host_map {
        for scheme in ["http", "https"] {
            let prefix = format!("{scheme}://{from}");
            if let Some(rest) = url.strip_prefix(&prefix) {
                if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') {
                    return format!("https://{}{rest}", to.as_str().unwrap());
                }
            }
        }
    }
    url.to_string()
}

fn run_source(policy: &Policy, name: &str) -> Vec<Outcome> {
    let path = format!("tests/fixtures/recorded/{name}.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().expect("a header line")).unwrap();
    for key in ["source", "path", "commit"] {
        assert!(
            header[key].as_str().is_some_and(|s| !s.is_empty()),
            "{path}: the header names no `{key}`"
        );
    }
    let empty = serde_json::Map::new();
    let host_map = header["host_map"].as_object().unwrap_or(&empty);
    let mut out = Vec::new();
    for (i, l) in lines.enumerate() {
        let row: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 2));
        let method = row["method"].as_str().unwrap();
        let mut url = mapped_url(row["url"].as_str().unwrap(), host_map);
        let label = row["label"].as_str().unwrap().to_string();
        let (mut headers, body) = body_of(row.get("body"));
        // A recorded WebSocket (`wss://`) is replayed as the upgrade request it was.
        if let Some(rest) = url.strip_prefix("wss://") {
            url = format!("https://{rest}");
            for (k, v) in [
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ] {
                headers.push((k.to_string(), v.to_string()));
            }
        }
        let line = format!("{method} {url}");
        let req = TestRequest::parse(&line, &headers, body)
            .unwrap_or_else(|e| panic!("{path}:{}: `{line}` does not parse: {e}", i + 2));
        let v = evaluate_test_request(policy, "alice", &["communications".to_string()], &req, None);
        out.push(Outcome {
            line: format!("{path}:{} {line}", i + 2),
            label,
            site: v.decision.site,
            activity: v.decision.activity,
        });
    }
    out
}

/// Figures over a set of outcomes.
#[derive(Default)]
struct Figures {
    total: usize,
    on_site: usize,
    exact: usize,
    writes_as_read: Vec<String>,
    named_total: usize,
    named_exact: usize,
}

impl Figures {
    fn add(&mut self, o: &Outcome, site: &str) {
        self.total += 1;
        let on_site = o.site == site;
        self.on_site += usize::from(on_site);
        let exact = on_site && o.activity == o.label;
        self.exact += usize::from(exact);
        if o.label != "read" && o.activity == "read" {
            self.writes_as_read.push(format!(
                "{}: labelled {}, named {}/{}",
                o.line, o.label, o.site, o.activity
            ));
        }
        if NAMED.contains(&o.label.as_str()) {
            self.named_total += 1;
            self.named_exact += usize::from(exact);
        }
    }

    fn pct(n: usize, d: usize) -> f64 {
        if d == 0 {
            100.0
        } else {
            100.0 * n as f64 / d as f64
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} requests: on site {}/{} ({:.1} %), exact activity {}/{} ({:.1} %), named exactly {}/{} ({:.1} %), true writes named read {}",
            self.total,
            self.on_site,
            self.total,
            Self::pct(self.on_site, self.total),
            self.exact,
            self.total,
            Self::pct(self.exact, self.total),
            self.named_exact,
            self.named_total,
            Self::pct(self.named_exact, self.named_total),
            self.writes_as_read.len()
        )
    }
}

/// Label down, named activity across (`other-site/activity` when off the site).
fn confusion(outcomes: &[Outcome], site: &str) -> String {
    let mut cols: Vec<String> = Vec::new();
    let mut cells: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut labels: Vec<String> = Vec::new();
    for o in outcomes {
        let col = if o.site == site {
            o.activity.clone()
        } else {
            format!("{}/{}", o.site, o.activity)
        };
        if !cols.contains(&col) {
            cols.push(col.clone());
        }
        if !labels.contains(&o.label) {
            labels.push(o.label.clone());
        }
        *cells.entry((o.label.clone(), col)).or_default() += 1;
    }
    let order = |s: &String| {
        [
            "read", "post", "comment", "message", "upload", "react", "login", "write",
        ]
        .iter()
        .position(|x| x == s)
        .unwrap_or(99)
    };
    cols.sort_by_key(|c| (order(c), c.clone()));
    labels.sort_by_key(|c| (order(c), c.clone()));
    let w = cols.iter().map(|c| c.len().max(5)).collect::<Vec<_>>();
    let mut out = format!("{:<10}", "label\\got");
    for (c, w) in cols.iter().zip(&w) {
        out.push_str(&format!(" {c:>w$}"));
    }
    out.push('\n');
    for l in &labels {
        out.push_str(&format!("{l:<10}"));
        for (c, w) in cols.iter().zip(&w) {
            let n = cells.get(&(l.clone(), c.clone())).copied().unwrap_or(0);
            let cell = if n == 0 {
                ".".to_string()
            } else {
                n.to_string()
            };
            out.push_str(&format!(" {cell:>w$}"));
        }
        out.push('\n');
    }
    out
}

#[test]
fn recorded_client_traffic_is_named_as_the_api_documentation_says() {
    let policy = policy();
    let mut all = Figures::default();
    let mut misses = Vec::new();
    for (name, site) in SOURCES {
        let outcomes = run_source(&policy, name);
        assert!(!outcomes.is_empty(), "{name}: empty corpus");
        let mut f = Figures::default();
        for o in &outcomes {
            f.add(o, site);
            all.add(o, site);
            if o.site != *site || o.activity != o.label {
                misses.push(format!(
                    "{}: labelled {}, named {}/{}",
                    o.line, o.label, o.site, o.activity
                ));
            }
        }
        eprintln!("== {name} (site {site}): {}", f.summary());
        eprintln!("{}", confusion(&outcomes, site));
    }
    eprintln!("== all sources: {}", all.summary());
    eprintln!("-- requests not named as labelled ({}):", misses.len());
    for m in &misses {
        eprintln!("   {m}");
    }
    assert!(
        all.writes_as_read.is_empty(),
        "true writes named `read`:\n  {}",
        all.writes_as_read.join("\n  ")
    );
    let on_site = Figures::pct(all.on_site, all.total);
    let exact = Figures::pct(all.exact, all.total);
    let named = Figures::pct(all.named_exact, all.named_total);
    assert!(on_site >= 99.0, "on a known site: {on_site:.1} % < 99 %");
    assert!(exact >= 95.0, "exact activity: {exact:.1} % < 95 %");
    assert!(
        named >= 85.0,
        "posts, comments, messages, uploads, reactions and sign-ins named exactly: {named:.1} % < 85 %"
    );
}

/// `socialgate catalogue check` on a HAR written by hand from the corpus: the table
/// names each request's site and activity, the fallback summary lists the endpoints
/// no matcher named, and `--json` parses with the same figures.
#[test]
fn catalogue_check_decides_every_request_of_a_har() {
    let har = "tests/fixtures/recorded/corpus-sample.har";
    let bin = env!("CARGO_BIN_EXE_socialgate");
    let out = std::process::Command::new(bin)
        .args(["catalogue", "check", "--policy", "policies/default.yaml"])
        .args(["--user", "alice", "--group", "communications", har])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}: {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "www.reddit.com",
        "reddit-uploaded-media.s3-accelerate.amazonaws.com",
        "named by no catalogue matcher (fallback), by endpoint:",
        "POST oauth.reddit.com/api/hide",
        "POST api.twitter.com/2/users/{id}/following",
        "15 request(s)",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` missing from:\n{text}"
        );
    }
    let line = |n: usize| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{n} ")))
            .unwrap_or_else(|| panic!("no row {n} in:\n{text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // # METHOD HOST SITE ACTIVITY ...
    assert_eq!(line(1)[3..5], ["reddit".to_string(), "login".to_string()]);
    assert_eq!(line(3)[3..5], ["reddit".to_string(), "read".to_string()]);
    assert_eq!(line(7)[3..5], ["reddit".to_string(), "upload".to_string()]);
    assert_eq!(
        line(8)[3..5],
        ["twitter".to_string(), "comment".to_string()]
    );
    assert_eq!(
        line(11)[3..5],
        ["twitter".to_string(), "message".to_string()]
    );
    assert_eq!(
        line(13)[3..5],
        ["mastodon".to_string(), "message".to_string()]
    );
    assert_eq!(line(15)[3..5], ["unlisted".to_string(), "read".to_string()]);

    let out = std::process::Command::new(bin)
        .args([
            "catalogue",
            "check",
            "--json",
            "--policy",
            "policies/default.yaml",
            har,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let requests = v["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 15);
    assert_eq!(requests[1]["activity"], "post");
    assert_eq!(requests[3]["fallback"], "write");
    assert_eq!(requests[14]["site"], "unlisted");
    let fallback = v["fallback"].as_array().unwrap();
    assert!(fallback
        .iter()
        .any(|f| f["template"] == "/api/hide" && f["count"] == 2 && f["kind"] == "write"));
    assert_eq!(fallback.len(), 3, "{fallback:?}");
}

/// A file that is not a HAR is refused with its name and exit 1.
#[test]
fn catalogue_check_refuses_a_file_that_is_not_a_har() {
    let bin = env!("CARGO_BIN_EXE_socialgate");
    let out = std::process::Command::new(bin)
        .args(["catalogue", "check", "--policy", "policies/default.yaml"])
        .arg("tests/fixtures/recorded/praw.jsonl")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tests/fixtures/recorded/praw.jsonl") && err.contains("HAR"),
        "{err}"
    );
}
