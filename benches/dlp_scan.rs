//! W6: DLP throughput on 1 MiB of ordinary English text through a scanner with
//! every built-in detector plus 1,000 custom keywords (goal ≥ 400 MB/s per core).
//!
//! Limits: the text is generated deterministically from a word list with the
//! occasional number, date, time, price and capitalised word, the way council
//! posts read; the keywords are made-up codenames (two in the text). Criterion
//! runs in one thread, so MB/s here is per core. Run with
//! `cargo bench --bench dlp_scan` (add `-- --quick` for a fast look).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
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

criterion_group!(benches, w6);
criterion_main!(benches);
