//! W6: DLP throughput on 1 MiB of ordinary English text through a scanner with
//! every built-in detector plus 1,000 custom keywords (goal ≥ 400 MB/s per core);
//! W8: the cost of one 2,048-byte JSON LinkedIn share through the scanner of the
//! `official` profile of `policies/default.yaml`, as the proxy scans each post.
//!
//! Limits: the text is generated deterministically from a word list with the
//! occasional number, date, time, price and capitalised word, the way council
//! posts read; the keywords are made-up codenames (two in the text). The W8 body
//! is the one `scripts/bench/h2_workloads.py` (`post_body`) sends. Criterion
//! runs in one thread, so MB/s here is per core. Run with
//! `cargo bench --bench dlp_scan` (add `-- --quick` for a fast look). For an
//! instruction count (callgrind), `DLP_SCAN_REPEAT=w8:1000` (or `w6:10`,
//! `w6-request:10` for `scan_request_text_plain`) runs
//! that case that many times without criterion and exits; the count of one run
//! is the difference from a run of `w8:0`, divided by the repeats.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box as keep;
use std::time::Duration;

use criterion::{black_box, criterion_group, Criterion, Throughput};
use socialgate::dlp::{CustomDetectorSpec, ScanInput, ScanLimits, Scanner, BUILTIN_DETECTORS};

const MIB: usize = 1024 * 1024;

const WORDS: &[&str] = &[
    "the",
    "council",
    "will",
    "be",
    "closed",
    "on",
    "for",
    "and",
    "to",
    "of",
    "a",
    "in",
    "residents",
    "please",
    "bins",
    "collection",
    "road",
    "works",
    "library",
    "park",
    "open",
    "from",
    "with",
    "our",
    "new",
    "we",
    "have",
    "is",
    "are",
    "this",
    "week",
    "thank",
    "you",
    "all",
    "event",
    "free",
    "consultation",
    "plan",
    "services",
    "community",
    "centre",
    "people",
    "local",
    "their",
    "at",
    "by",
    "your",
    "can",
    "more",
    "information",
    "recycling",
    "waste",
    "school",
    "children",
    "families",
    "support",
    "help",
    "housing",
    "planning",
    "application",
    "meeting",
    "public",
    "street",
    "town",
    "market",
    "traffic",
    "bus",
    "route",
    "diversion",
    "closure",
    "summer",
    "winter",
    "festival",
    "volunteers",
    "thanks",
    "everyone",
    "who",
    "came",
    "along",
    "morning",
    "evening",
    "weekend",
    "tickets",
    "available",
    "online",
    "book",
    "early",
    "space",
    "limited",
    "garden",
    "trees",
    "planting",
    "river",
    "flood",
    "warning",
    "gritting",
    "crews",
    "out",
    "tonight",
    "survey",
    "results",
    "published",
    "report",
    "budget",
    "tax",
    "bill",
    "payment",
    "office",
    "hours",
    "opening",
    "official",
    "secret",
    "recipe",
    "officers",
    "safety",
    "health",
    "care",
    "adult",
    "social",
];

const NUMBERS: &[&str] = &[
    "12 March",
    "Route 42",
    "£2.50",
    "A38",
    "2024",
    "10:30am",
    "5pm",
    "3 weeks",
    "1,200",
    "7 days",
    "£45",
    "Junction 4",
    "21 June",
    "15%",
    "2nd",
    "ref 23/01234/FUL",
    "0300 123 4567",
    "B4100",
    "SW1A 1AA",
];

/// Deterministic "ordinary English" of exactly `len` bytes.
fn english(len: usize) -> String {
    let mut seed: u64 = 0x5eed_1234_abcd_0042;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = String::with_capacity(len + 64);
    let mut sentence_start = true;
    while out.len() < len {
        let r = next();
        let word = if r % 40 == 0 {
            NUMBERS[(r >> 8) as usize % NUMBERS.len()].to_string()
        } else if r % 53 == 1 {
            "Nightjar".to_string()
        } else {
            WORDS[(r >> 8) as usize % WORDS.len()].to_string()
        };
        if sentence_start {
            let mut c = word.chars();
            if let Some(f) = c.next() {
                out.extend(f.to_uppercase());
                out.push_str(c.as_str());
            }
        } else {
            out.push_str(&word);
        }
        sentence_start = false;
        match next() % 16 {
            0 => {
                out.push_str(". ");
                sentence_start = true;
            }
            1 if next() % 8 == 0 => {
                out.push_str(".\n");
                sentence_start = true;
            }
            2 => out.push_str(", "),
            _ => out.push(' '),
        }
    }
    out.truncate(len);
    out
}

/// 1,000 made-up codenames, some two-word.
fn keywords() -> Vec<String> {
    const SYL: &[&str] = &[
        "ka", "zor", "vel", "thi", "mon", "dra", "quel", "bri", "sax", "lun", "fen", "ory",
    ];
    let mut out: Vec<String> = (0..1000)
        .map(|i: usize| {
            let a = SYL[i % 12];
            let b = SYL[(i / 12) % 12];
            let c = SYL[(i / 144) % 12];
            if i.is_multiple_of(10) {
                format!("Operation {a}{b}{c}")
            } else {
                format!("{a}{b}{c}{}", i % 7)
            }
        })
        .collect();
    out[999] = "Nightjar".to_string();
    out
}

fn scanner(builtins: bool, keywords: Option<Vec<String>>) -> Scanner {
    let mut ids: Vec<String> = if builtins {
        BUILTIN_DETECTORS.iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    };
    let mut custom = Vec::new();
    if let Some(k) = keywords {
        ids.push("codenames".into());
        custom.push(CustomDetectorSpec {
            name: "codenames".into(),
            keywords: k,
            ..Default::default()
        });
    }
    Scanner::new(&ids, &custom).unwrap()
}

fn w6(c: &mut Criterion) {
    let text = english(MIB);
    let full = scanner(true, Some(keywords()));
    let found = full.scan_text(&text);
    assert!(found.iter().any(|f| f.detector == "codenames"), "{found:?}");

    let mut group = c.benchmark_group("w6_dlp_1MiB");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("all_builtins+1000_keywords/scan_text", |b| {
        b.iter(|| black_box(full.scan_text(black_box(&text))))
    });
    group.bench_function("all_builtins+1000_keywords/scan_request_text_plain", |b| {
        let req = ScanInput {
            content_type: Some("text/plain; charset=utf-8"),
            content_encoding: None,
            body: text.as_bytes(),
            query: None,
        };
        let limits = ScanLimits::default();
        b.iter(|| black_box(full.scan_request(black_box(&req), &limits).unwrap()))
    });
    let builtins_only = scanner(true, None);
    group.bench_function("all_builtins_only/scan_text", |b| {
        b.iter(|| black_box(builtins_only.scan_text(black_box(&text))))
    });
    let keywords_only = scanner(false, Some(keywords()));
    group.bench_function("1000_keywords_only/scan_text", |b| {
        b.iter(|| black_box(keywords_only.scan_text(black_box(&text))))
    });
    group.finish();
}

/// The profile `official` of `policies/default.yaml`, as the proxy compiles it.
const OFFICIAL: &[&str] = &[
    "payment-card",
    "uk-nino",
    "nhs-number",
    "uk-bank-account",
    "iban",
    "protective-marking",
    "secrets",
];

/// The commentary of the W8 share (`COMMENTARY` in `scripts/bench/h2_workloads.py`).
const COMMENTARY: &str =
    "Bin collections for Monday 12 March will take place as normal. Please put your bins \
out by 7am. Garden waste subscriptions for 2026/27 are now open: it costs £45 for the \
year, or £40 if you sign up before 31 March. The Central Library will be closed on \
Saturday 16 March for essential maintenance. Join us for the opening of the new play \
area in Victoria Park on Friday 22 March at 11am, all welcome. Our consultation on the \
draft Local Plan closes at 5pm on 30 April: drop in to Room 2.14 at the Civic Centre \
(Tuesdays, 10am to 4pm) or Room G07 at the Town Hall. Swimming lessons at the Leisure \
Centre are £6.50 per session for under 16s. Parking charges at Market Street car park \
will rise from £1.20 to £1.50 per hour from 1 June. Over 1,200 residents took part in \
our parks survey, thank you! Council meeting tonight at 6:30pm in the Council Chamber; \
you can watch live on our channel. Potholes: we fixed 2,431 in February. Report one \
online and we aim to repair it within 28 days. Adult education courses for autumn are \
online now, from £25. ";

/// The W8 body, byte for byte as `post_body(2048)` builds it: Python's
/// `json.dumps` (`", "` and `": "` separators, no escapes needed), the
/// commentary padded then cut a character at a time, then spaces to the size.
fn w8_body(size: usize) -> Vec<u8> {
    let build = |text: &str| {
        format!(
            r#"{{"visibleToConnectionsOnly": false, "externalAudienceProviders": [], "commentaryV2": {{"text": "{text}", "attributes": []}}, "origin": "FEED", "allowedCommentersScope": "ALL", "postState": "PUBLISHED", "media": [], "visibility": "PUBLIC"}}"#
        )
    };
    let mut text = COMMENTARY.to_string();
    while build(&text).len() < size {
        text.push_str("More on our website. ");
    }
    while build(&text).len() > size {
        text.pop();
    }
    let mut body = build(&text).into_bytes();
    body.resize(size, b' ');
    body
}

fn official_scanner() -> Scanner {
    let ids: Vec<String> = OFFICIAL.iter().map(|s| s.to_string()).collect();
    Scanner::new(&ids, &[]).unwrap()
}

fn w8_input(body: &[u8]) -> ScanInput<'_> {
    ScanInput {
        content_type: Some("application/json"),
        content_encoding: None,
        body,
        query: None,
    }
}

fn w8(c: &mut Criterion) {
    let body = w8_body(2048);
    assert_eq!(body.len(), 2048);
    let scanner = official_scanner();
    let limits = ScanLimits::default();
    let req = w8_input(&body);
    assert!(scanner.scan_request(&req, &limits).unwrap().is_empty());
    let mut group = c.benchmark_group("w8_post");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("w8_post_2KiB", |b| {
        b.iter(|| black_box(scanner.scan_request(black_box(&req), &limits).unwrap()))
    });
    group.finish();
}

/// `DLP_SCAN_REPEAT=case:n`: runs one case `n` times, for callgrind.
fn repeat(spec: &str) {
    let (case, n) = spec.split_once(':').expect("DLP_SCAN_REPEAT=w6:N or w8:N");
    let n: usize = n.parse().expect("a repeat count");
    match case {
        "w8" => {
            let body = w8_body(2048);
            let scanner = official_scanner();
            let limits = ScanLimits::default();
            let req = w8_input(&body);
            for _ in 0..n {
                keep(scanner.scan_request(keep(&req), &limits).unwrap());
            }
        }
        "w6" => {
            let text = english(MIB);
            let full = scanner(true, Some(keywords()));
            for _ in 0..n {
                keep(full.scan_text(keep(&text)));
            }
        }
        "w6-request" => {
            let text = english(MIB);
            let full = scanner(true, Some(keywords()));
            let req = ScanInput {
                content_type: Some("text/plain; charset=utf-8"),
                content_encoding: None,
                body: text.as_bytes(),
                query: None,
            };
            let limits = ScanLimits::default();
            for _ in 0..n {
                keep(full.scan_request(keep(&req), &limits).unwrap());
            }
        }
        other => panic!("unknown case {other:?}"),
    }
}

criterion_group!(benches, w6, w8);

fn main() {
    if let Ok(spec) = std::env::var("DLP_SCAN_REPEAT") {
        repeat(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
