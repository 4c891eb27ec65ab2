//! The labelled set of DLP version 2: at least 300 positives (valid identifiers,
//! markings and secrets in disguised forms: dots, slashes, underscores, plus
//! signs, spaced dashes, em dashes, minus signs, line breaks, one character per
//! group, combining marks, Cyrillic and Greek look-alikes, full-width forms)
//! and at least 300 hard negatives (the same disguises over values that fail
//! their validator, plus dates, room numbers, versions, prices, references,
//! times and percentages), generated deterministically here; the test prints
//! precision and recall and holds them above a floor.
//!
//! Run: `cargo test -p socialgate-engine --test dlp_labelled -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use socialgate_engine::dlp::Scanner;

/// The detectors of the evasion suite's blocking profile.
const PROFILE: &[&str] = &[
    "payment-card",
    "uk-nino",
    "nhs-number",
    "protective-marking",
    "secrets",
    "iban",
    "uk-bank-account",
];

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

fn luhn_check_digit(body: &str) -> char {
    let mut sum = 0;
    for (i, c) in body.bytes().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    char::from_digit((10 - sum % 10) % 10, 10).unwrap()
}

/// A Visa-like 16-digit number; `valid` false gives a wrong check digit.
fn card(rng: &mut Rng, valid: bool) -> String {
    let body = format!("4{}", rng.digits(14));
    let check = luhn_check_digit(&body);
    let check = if valid {
        check
    } else {
        char::from_digit(
            (check.to_digit(10).unwrap() + 1 + rng.below(8) as u32) % 10,
            10,
        )
        .unwrap()
    };
    format!("{body}{check}")
}

/// A 10-digit NHS number (modulus 11); `valid` false gives a wrong check digit.
fn nhs(rng: &mut Rng, valid: bool) -> String {
    loop {
        let body = rng.digits(9);
        let sum: u32 = body
            .bytes()
            .enumerate()
            .map(|(i, c)| u32::from(c - b'0') * (10 - i as u32))
            .sum();
        let check = (11 - sum % 11) % 11;
        if check == 10 {
            continue;
        }
        let digit = if valid {
            check
        } else {
            (check + 1 + rng.below(8) as u32) % 10
        };
        if !valid && (digit == check) {
            continue;
        }
        return format!("{body}{digit}");
    }
}

/// An NI number with an allowed prefix (`valid`), or a prefix that is never
/// issued (`QQ`, `BG`, `GB`, `NK`, `KN`, `TN`, `NT`, `ZZ`, or a D/F/I/Q/U/V letter).
fn nino(rng: &mut Rng, valid: bool) -> String {
    const GOOD: &[&str] = &["JG", "AB", "SC", "WP", "CE", "HR", "NE", "TY", "PL", "MX"];
    const BAD: &[&str] = &[
        "QQ", "BG", "GB", "NK", "KN", "TN", "NT", "ZZ", "DA", "FE", "UA",
    ];
    let prefix = if valid {
        GOOD[rng.below(GOOD.len() as u64) as usize]
    } else {
        BAD[rng.below(BAD.len() as u64) as usize]
    };
    let suffix = ["A", "B", "C", "D"][rng.below(4) as usize];
    format!("{prefix}{}{suffix}", rng.digits(6))
}

/// Groups of a compact value, as it is printed.
fn grouped(value: &str, sizes: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    for &n in sizes {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a.to_string());
        rest = b;
    }
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// The disguises: groups joined by a separator, or the whole text transformed.
fn disguise(groups: &[String], k: usize) -> String {
    let join = |sep: &str| groups.join(sep);
    match k {
        0 => join("."),
        1 => join("/"),
        2 => join("_"),
        3 => join("+"),
        4 => join(" - "),
        5 => join("\u{2014}"),
        6 => join(" \u{2212} "),
        7 => join("-\n"),
        8 => join(" | "),
        9 => groups
            .concat()
            .chars()
            .map(String::from)
            .collect::<Vec<_>>()
            .join(" "),
        10 => join(" ")
            .chars()
            .flat_map(|c| {
                if c.is_ascii_alphanumeric() {
                    vec![c, '\u{0301}']
                } else {
                    vec![c]
                }
            })
            .collect(),
        11 => lookalikes(&join(" ")),
        12 => join(" ")
            .chars()
            .map(|c| match c {
                '!'..='~' => char::from_u32(0xFF01 + (c as u32 - 0x21)).unwrap(),
                other => other,
            })
            .collect(),
        13 => groups
            .concat()
            .chars()
            .map(String::from)
            .collect::<Vec<_>>()
            .join("."),
        _ => join(", "),
    }
}

const DISGUISES: usize = 15;

fn lookalikes(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'A' => '\u{0410}',
            'B' => '\u{0392}',
            'C' => '\u{0421}',
            'E' => '\u{0415}',
            'H' => '\u{041D}',
            'I' => '\u{0406}',
            'J' => '\u{0408}',
            'K' => '\u{039A}',
            'M' => '\u{041C}',
            'N' => '\u{039D}',
            'O' => '\u{041E}',
            'P' => '\u{0420}',
            'S' => '\u{0405}',
            'T' => '\u{0422}',
            'X' => '\u{0425}',
            other => other,
        })
        .collect()
}

const FRAMES: &[&str] = &[
    "Please update my record: {} thanks",
    "{}",
    "Ref for the form is {} - can you check?",
    "my details {} (sent from my phone)",
];

fn frame(rng: &mut Rng, value: &str) -> String {
    FRAMES[rng.below(FRAMES.len() as u64) as usize].replace("{}", value)
}

/// `(expected detector or None, text)`.
fn labelled_set() -> Vec<(Option<&'static str>, String)> {
    let mut rng = Rng(0x5eed_0013_d1b2_0002);
    let mut set = Vec::new();
    for k in 0..DISGUISES {
        for _ in 0..6 {
            let c = card(&mut rng, true);
            set.push((
                Some("payment-card"),
                frame(&mut rng, &disguise(&grouped(&c, &[4, 4, 4, 4]), k)),
            ));
            let c = card(&mut rng, false);
            set.push((
                None,
                frame(&mut rng, &disguise(&grouped(&c, &[4, 4, 4, 4]), k)),
            ));
            let n = nhs(&mut rng, true);
            set.push((
                Some("nhs-number"),
                frame(&mut rng, &disguise(&grouped(&n, &[3, 3, 4]), k)),
            ));
            let n = nhs(&mut rng, false);
            set.push((
                None,
                frame(&mut rng, &disguise(&grouped(&n, &[3, 3, 4]), k)),
            ));
            let ni = nino(&mut rng, true);
            set.push((
                Some("uk-nino"),
                frame(&mut rng, &disguise(&grouped(&ni, &[2, 2, 2, 2, 1]), k)),
            ));
            let ni = nino(&mut rng, false);
            set.push((
                None,
                frame(&mut rng, &disguise(&grouped(&ni, &[2, 2, 2, 2, 1]), k)),
            ));
        }
        // Markings: the words joined by the disguise's separator.
        for words in [
            &["OFFICIAL", "SENSITIVE"][..],
            &["TOP", "SECRET"][..],
            &["UK", "EYES", "ONLY"][..],
        ] {
            let w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
            let text = match k {
                // One character per group is not a way to write a marking.
                9 | 13 => w.join("\n"),
                _ => disguise(&w, k),
            };
            set.push((
                Some("protective-marking"),
                format!("Classification: {text}"),
            ));
        }
        // IBANs, valid and with a broken check.
        for (iban, ok) in [
            ("GB82WEST12345698765432", true),
            ("DE89370400440532013000", true),
            ("GB83WEST12345698765432", false),
            ("DE88370400440532013000", false),
        ] {
            let g = grouped(iban, &[4, 4, 4, 4, 4, 4]);
            if k == 9 || k == 13 {
                continue;
            }
            set.push((ok.then_some("iban"), frame(&mut rng, &disguise(&g, k))));
        }
        // A secret in a disguise that keeps it a token.
        if (10..=12).contains(&k) {
            let key = disguise(&["AKIAIOSFODNN7EXAMPLE".to_string()], k);
            set.push((Some("secrets"), format!("key = {key}")));
        }
    }
    // Hard negatives of everyday council text.
    for _ in 0..12 {
        let d = 1 + rng.below(28);
        let m = 1 + rng.below(12);
        let y = 2020 + rng.below(10);
        let room = format!("{}/{}", 1 + rng.below(12), 10 + rng.below(40));
        let ver = format!("v{}.{}.{}", rng.below(10), rng.below(20), rng.below(30));
        let price = format!(
            "£{},{:03}.{:02}",
            1 + rng.below(9),
            rng.below(1000),
            rng.below(100)
        );
        let phone = format!("0300 {} {}", rng.digits(3), rng.digits(4));
        let reference = format!(
            "{}/{}/{}",
            rng.digits(2),
            rng.digits(5),
            ["FUL", "HOU", "LBC"][rng.below(3) as usize]
        );
        for text in [
            format!("Meeting on {d:02}.{m:02}.{y} in Room {room} at {}:{:02}", 9 + rng.below(9), rng.below(60)),
            format!("Dates: {d:02}/{m:02}/{y}, {:02}/{m:02}/{y} and {:02}/{m:02}/{y}", (d % 28) + 1, (d + 3) % 28 + 1),
            format!("App {ver} released {y}-{m:02}-{d:02}; {}% of users updated", rng.below(100)),
            format!("Budget {price} per household, up {}.{}%", rng.below(10), rng.below(10)),
            format!("Call {phone} or {}/{}/{}", rng.digits(4), rng.digits(3), rng.digits(4)),
            format!("Planning ref {reference} and case {}-{}-{}", rng.digits(4), rng.digits(4), rng.digits(4)),
            format!("Rooms {room}, {}.{:02} and {}/{}", rng.below(5), rng.below(40), rng.below(9), rng.below(99)),
            format!("Times {:02}.{:02}-{:02}.{:02}, {d} {m} {y}", 8 + rng.below(3), rng.below(60), 15 + rng.below(5), rng.below(60)),
            "the official opening is sensitive to the weather; top secret recipe; uk eyes only joke".to_string(),
            format!("Scores {} / {} / {} / {} / {}", rng.below(10), rng.below(10), rng.below(10), rng.below(10), rng.below(10)),
        ] {
            set.push((None, text));
        }
    }
    set
}

#[test]
fn precision_and_recall_on_the_labelled_set() {
    let ids: Vec<String> = PROFILE.iter().map(|s| s.to_string()).collect();
    let scanner = Scanner::new(&ids, &[]).unwrap();
    let set = labelled_set();
    let positives = set.iter().filter(|(l, _)| l.is_some()).count();
    let negatives = set.len() - positives;
    assert!(positives >= 300, "{positives} positives");
    assert!(negatives >= 300, "{negatives} negatives");
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    let mut false_alarms = Vec::new();
    for (label, text) in &set {
        let found: Vec<String> = scanner
            .scan_text(text)
            .into_iter()
            .map(|f| f.detector)
            .collect();
        match label {
            Some(want) => {
                if found.iter().any(|d| d == want) {
                    tp += 1;
                } else {
                    fn_ += 1;
                    misses.push(format!("{want}: {text:?}"));
                }
                let others = found.iter().filter(|d| d != want).count();
                fp += others;
                if others > 0 {
                    false_alarms.push(format!("{found:?} in {text:?}"));
                }
            }
            None => {
                fp += found.len();
                if !found.is_empty() {
                    false_alarms.push(format!("{found:?} in {text:?}"));
                }
            }
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fn_).max(1) as f64;
    println!(
        "DLP labelled set: {positives} positives, {negatives} negatives; TP {tp}, FP {fp}, FN {fn_}; precision {precision:.4}, recall {recall:.4}"
    );
    for m in &misses {
        println!("  missed {m}");
    }
    for f in &false_alarms {
        println!("  false alarm {f}");
    }
    assert!(recall >= 0.98, "recall {recall:.4}");
    assert!(precision >= 0.98, "precision {precision:.4}");
}
