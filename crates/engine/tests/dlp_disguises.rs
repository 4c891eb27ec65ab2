//! DLP version 2: identifiers and markings in disguised forms (issue 13) are
//! found by `Scanner::all_builtins` (what `socialgate scan` uses).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use socialgate_engine::dlp::Scanner;

/// `(detector, disguised text)`.
const DISGUISED: &[(&str, &str)] = &[
    ("uk-nino", "JG.10.37.82.B"),
    ("uk-nino", "JG/10/37/82/B"),
    ("uk-nino", "JG_10_37_82_B"),
    ("uk-nino", "JG+10+37+82+B"),
    ("uk-nino", "JG - 10 - 37 - 82 - B"),
    ("uk-nino", "JG — 10 — 37 — 82 — B"),
    ("uk-nino", "JG|10|37|82|B"),
    ("uk-nino", "JG,10,37,82,B"),
    ("uk-nino", "J G 1 0 3 7 8 2 B"),
    ("uk-nino", "J.G.1.0.3.7.8.2.B"),
    ("uk-nino", "J\u{0307}G103782B"),
    ("uk-nino", "ni: J\u{0307}G 10 37 82 B\u{0301}"),
    ("nhs-number", "943.476.5919"),
    ("nhs-number", "943/476/5919"),
    ("nhs-number", "943_476_5919"),
    ("nhs-number", "943 - 476 - 5919"),
    ("nhs-number", "9 4 3 4 7 6 5 9 1 9"),
    ("nhs-number", "943\u{2013}476\u{2013}5919"),
    ("payment-card", "4111.1111.1111.1111"),
    ("payment-card", "4111/1111/1111/1111"),
    ("payment-card", "4111_1111_1111_1111"),
    ("payment-card", "4111+1111+1111+1111"),
    ("payment-card", "4111 - 1111 - 1111 - 1111"),
    ("payment-card", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"),
    ("payment-card", "4111\u{2014}1111\u{2014}1111\u{2014}1111"),
    ("protective-marking", "OFFICIAL-SENSITIVE\u{0301}"),
    ("protective-marking", "OFFICIAL-SENSITIV\u{0301}E"),
    ("protective-marking", "\u{041E}FFICIAL-SENSITIVE"),
    ("protective-marking", "OFFICIAL\nSENSITIVE"),
    ("protective-marking", "OFFICIAL\u{2014}SENSITIVE"),
    ("protective-marking", "OFFICIAL \u{2014} SENSITIVE"),
    ("protective-marking", "OFFICIAL-\nSENSITIVE"),
    ("protective-marking", "OFFICIAL / SENSITIVE"),
    ("protective-marking", "OFFICIAL_SENSITIVE"),
    ("protective-marking", "\u{039F}FFICIAL SENSITIVE"),
    ("protective-marking", "OFF\u{0406}CIAL-SENSITIVE"),
    ("iban", "GB82.WEST.1234.5698.7654.32"),
    ("iban", "GB82/WEST/1234/5698/7654/32"),
];

#[test]
fn disguised_identifiers_are_found() {
    let s = Scanner::all_builtins();
    let mut missed = Vec::new();
    for (detector, text) in DISGUISED {
        let f = s.scan_text(text);
        if !f.iter().any(|f| f.detector == *detector) {
            missed.push(format!("{detector}: {text:?} -> {f:?}"));
        }
    }
    assert!(
        missed.is_empty(),
        "missed {}:\n{}",
        missed.len(),
        missed.join("\n")
    );
}
