//! Checks that skipping the quiet interiors in the joined views
//! (`detectors/quiet.rs`: the digit pass's, and the literal and e-mail
//! detectors' part of them) finds exactly what the whole pass finds: the same
//! detectors, counts and samples, over many generated bodies whose fields are
//! long prose with numbers, secrets, markings and addresses, identifiers cut
//! across fields, values a little way into a field whose keyword ends the
//! field before, chains of short tokens and runs of whitespace; and over
//! each literal value placed at every point of a long field.

use std::borrow::Cow;

use super::super::detectors::{Scratch, BUILTIN_DETECTORS};
use super::super::extract::Field;
use super::super::normalize::normalize;
use super::Scanner;

/// Tokens with digits: values of every detector, halves of them, and the
/// numbers of ordinary prose.
const NUMBERS: &[&str] = &[
    "4111 1111 1111 1111",
    "4111111111111111",
    "4111",
    "1111 1111",
    "5500-0000-0000-0004",
    "4111.1111.1111.1111",
    "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
    "943 476 5919",
    "9434765919",
    "943",
    "476 5919",
    "943/476/5919",
    "12-34-56",
    "12 34 56",
    "12345678",
    "sort code 12-34-56 account 12345678",
    "123456789",
    "A12345678",
    "AB 12 34 56 C",
    "JG103782B",
    "J G 1 0 3 7 8 2 B",
    "JG.10.37.82.B",
    "GB82 WEST 1234 5698 7654 32",
    "GB82WEST12345698765432",
    "020 7946 0018",
    "07700 900123",
    "+44 7700 900123",
    "SW1A 1AA",
    "M1 1AE",
    "G07",
    "MORGA753116SM9IJ",
    "1.2.3.4",
    "S.W.1.A 1.A.A",
    "2026/27",
    "1,200",
    "£6.50",
    "7am",
    "6:30pm",
    "31 March",
    "Room 2.14",
    "12",
    "1",
    "56",
    "0018",
];

/// Words, context words, short tokens (which chain) and other literals.
const WORDS: &[&str] = &[
    "the",
    "council",
    "More",
    "on",
    "our",
    "website.",
    "Bin",
    "collections",
    "Monday",
    "PUBLIC",
    "FEED",
    "passport",
    "passport number",
    "sort code",
    "account",
    "a",
    "x",
    "ab",
    "b2",
    "Q",
    "-",
    ".",
    "/",
    ",",
    "OFFICIAL-SENSITIVE",
    "OFFICIAL",
    "SENSITIVE",
    "AKIAIOSFODNN7EXAMPLE",
    "name@example.org",
    "name@",
    "@example.org",
    "ghp_a1B2c3D4e5a1B2c3D4e5a1B2c3D4e5a1B2c3D4e5",
    "ghp_a1B2c3D4e5",
    "xoxb-123456789012-abcdefghijkl",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA",
    "-----END RSA PRIVATE KEY-----",
    "UK",
    "EYES",
    "ONLY",
    "TOP",
    "SECRET",
    "RESTRICTED",
    "\nPROTECT\n",
    "Café",
    "ｗｅｂ",
    "to",
    "of",
];

const SEPARATORS: &[&str] = &[
    " ", " ", " ", " ", "", "\n", "-", ". ", "  ", "\n\n", "\t", "   \n  ",
];

/// A small deterministic generator (xorshift64*), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// One field: a few tokens, or long prose with a number now and then, or a
/// long chain of short tokens; it may start or end with a piece of a number.
fn field(rng: &mut Rng) -> String {
    let kind = rng.below(8);
    if kind == 7 {
        // A value a little way into a long field, where only context in the
        // field before (a keyword, a sort code) makes it a finding.
        let mut out = String::new();
        for _ in 0..4 + rng.below(22) {
            out.push_str(rng.pick(&["More ", "on ", "our ", "website. "]));
        }
        out.push_str(rng.pick(&["123456789", "12345678", "A12345678", "12-34-56"]));
        for _ in 0..60 + rng.below(40) {
            out.push_str(rng.pick(&[" the", " council", " More", " website."]));
        }
        return out;
    }
    let (tokens, digit_share) = match kind {
        0 | 1 => (1 + rng.below(3), 50),
        2 => (40 + rng.below(120), 2),
        3 => (40 + rng.below(120), 8),
        4 => (60 + rng.below(60), 0),
        5 => (30 + rng.below(60), 20),
        _ => (100 + rng.below(100), 1),
    };
    // Short tokens only, which chain a cluster to its neighbours.
    let chain = kind == 6 || rng.below(8) == 0;
    let mut out = String::new();
    if rng.below(3) == 0 {
        out.push_str(rng.pick(NUMBERS));
        out.push_str(rng.pick(SEPARATORS));
    }
    for k in 0..tokens {
        if k > 0 {
            out.push_str(if chain { " " } else { rng.pick(SEPARATORS) });
        }
        let token = if rng.below(100) < digit_share {
            rng.pick(NUMBERS)
        } else if chain {
            rng.pick(&["a", "x", "ab", "cd", "ab", "b2", "Q", "-", "1"])
        } else {
            rng.pick(WORDS)
        };
        out.push_str(token);
    }
    if rng.below(3) == 0 {
        out.push_str(rng.pick(SEPARATORS));
        out.push_str(rng.pick(NUMBERS));
    } else if rng.below(3) == 0 {
        out.push_str(rng.pick(&[" passport", " sort code 12-34-56", " account 12345678"]));
    }
    out
}

fn all_builtins() -> Scanner {
    let ids: Vec<String> = BUILTIN_DETECTORS.iter().map(|s| s.to_string()).collect();
    Scanner::new(&ids, &[]).unwrap()
}

/// Value fields (not keys) of `texts`, in order.
fn values_of<'a>(texts: &[&'a str]) -> Vec<Field<'a>> {
    texts
        .iter()
        .map(|t| Field {
            text: Cow::Borrowed(t),
            is_key: false,
        })
        .collect()
}

/// Whether the pass over `text` alone leaves a quiet interior.
fn has_interior(scanner: &Scanner, text: &str) -> bool {
    let mut scratch = Scratch::default();
    scratch.track_quiet = true;
    let builtins = scanner.builtins.as_ref().unwrap();
    builtins.detect_skipping(&normalize(text), &[], &[], &mut scratch, &mut |_, _| {});
    scratch.quiet.is_some()
}

#[test]
fn skipping_quiet_interiors_finds_what_the_whole_pass_finds() {
    let scanner = all_builtins();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut skipped, mut found) = (0, 0);
    for case in 0..1500 {
        let n = 2 + rng.below(5);
        let texts: Vec<(String, bool)> = (0..n)
            .map(|_| (field(&mut rng), rng.below(4) == 0))
            .collect();
        let fields: Vec<Field<'_>> = texts
            .iter()
            .map(|(t, key)| Field {
                text: Cow::Borrowed(t.as_str()),
                is_key: *key,
            })
            .collect();
        let quick = scanner.scan_fields_with(&fields, true);
        let whole = scanner.scan_fields_with(&fields, false);
        assert_eq!(quick, whole, "case {case}: {texts:?}");
        skipped += usize::from(texts.iter().any(|(t, _)| has_interior(&scanner, t)));
        found += usize::from(!whole.is_empty());
    }
    // The cases must exercise the skip, with findings to lose.
    assert!(skipped > 500, "only {skipped} cases had a quiet interior");
    assert!(found > 1000, "only {found} cases found something");
}

#[test]
fn values_cut_across_long_fields_are_found() {
    let scanner = all_builtins();
    let prose = "More on our website. ".repeat(40);
    let cases: &[(&str, &str, &str)] = &[
        ("payment-card", "4111 1111", "1111 1111"),
        ("nhs-number", "943 476", "5919"),
        ("uk-bank-account", "sort code 12-34-56", "account 12345678"),
        ("uk-passport", "passport", "123456789"),
        // The keyword in the field before, the number 85 units into this one:
        // past a quiet point that ignored the reach, so lost if it were skipped.
        (
            "uk-passport",
            "passport",
            "More on our website. More on our website. More on our website. \
             More on our website. 123456789",
        ),
    ];
    for &(id, head, tail) in cases {
        let first = format!("{prose}{head}");
        let second = format!("{tail} {prose}");
        assert!(has_interior(&scanner, &first) && has_interior(&scanner, &second));
        let fields = values_of(&[&first, &second]);
        let findings = scanner.scan_fields_with(&fields, true);
        assert!(
            findings.iter().any(|f| f.detector == id),
            "{id} cut as {head:?} + {tail:?}: {findings:?}"
        );
    }
}

/// The chain of short tokens that makes a cluster a separator-view candidate
/// has no bound in units: here it runs from `S.W.1.A 1.A.A`, across a field of
/// two-letter tokens, to the digits that end the field before. The postcode is
/// found only in the joined view, so the field must have no quiet interior
/// that holds it (it has no word to stop the chain).
#[test]
fn a_chain_of_short_tokens_across_a_field_keeps_its_clusters() {
    let scanner = all_builtins();
    let first = format!("{}123456", "More on our website. ".repeat(12));
    let second = format!("{}S.W.1.A 1.A.A{}", "ab ".repeat(100), " ab".repeat(100));
    let fields = values_of(&[&first, &second]);
    let whole = scanner.scan_fields_with(&fields, false);
    assert!(
        whole.iter().any(|f| f.detector == "uk-postcode"),
        "{whole:?}"
    );
    assert!(scanner.scan_text(&second).is_empty());
    assert_eq!(scanner.scan_fields_with(&fields, true), whole);
}

/// Literal values (secrets, markings, an address), each placed at every
/// point of a long field between two others: what the view skips must be
/// exactly what the field alone found, wherever the value falls against the
/// interior's ends.
#[test]
fn literal_values_anywhere_in_a_long_field_are_counted_as_whole() {
    let scanner = all_builtins();
    let prose = "More on our website. ".repeat(12);
    let values = [
        "ghp_a1B2c3D4e5a1B2c3D4e5a1B2c3D4e5a1B2c3D4e5",
        "AKIAIOSFODNN7EXAMPLE",
        "xoxb-123456789012-abcdefghijkl",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "UK EYES ONLY",
        "TOP SECRET",
        "OFFICIAL-SENSITIVE",
        "\nRESTRICTED\n",
        "name@example.org",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    ];
    let mut skipped = 0;
    for value in values {
        for at in (0..=prose.len()).step_by(3) {
            let cut = prose[..at].rfind(' ').map_or(0, |i| i + 1);
            let middle = format!("{}{prose}{value} {}{prose}", &prose[..cut], &prose[cut..]);
            let fields = values_of(&[&prose, &middle, &prose]);
            let whole = scanner.scan_fields_with(&fields, false);
            assert!(!whole.is_empty(), "{value:?} at {cut}");
            assert_eq!(
                scanner.scan_fields_with(&fields, true),
                whole,
                "{value:?} at {cut}"
            );
            skipped += usize::from(has_interior(&scanner, &middle));
        }
    }
    assert!(skipped > 500, "only {skipped} cases had an interior");
}

/// A private key block runs up to 16 KiB to its `-----END`: read in a view
/// that goes on into the next field, it is another value than in its field
/// alone, so the literal interior must end before the header.
#[test]
fn a_private_key_header_inside_a_long_field_is_read_in_the_views() {
    let scanner = all_builtins();
    let prose = "More on our website. ".repeat(20);
    let first = format!("{prose}-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA {prose}");
    let second = format!("QUJDRA== -----END RSA PRIVATE KEY----- {prose}");
    assert!(has_interior(&scanner, &first));
    let fields = values_of(&[&first, &second]);
    let whole = scanner.scan_fields_with(&fields, false);
    let secrets = whole.iter().find(|f| f.detector == "secrets").unwrap();
    // The block cut at the field's end, and the block to its `-----END`
    // (the same in both views: whitespace is not part of the value).
    assert_eq!(secrets.count, 2, "{whole:?}");
    assert_eq!(scanner.scan_fields_with(&fields, true), whole);
}

/// A token whose tail runs from inside a long field to its end goes on into
/// the next values in the concatenation without separator (through a short
/// one into a third: no pair view holds all three): the literal interior ends
/// at the field's last whitespace, before the token.
#[test]
fn a_token_running_to_the_end_of_a_long_field_is_read_in_the_concatenation() {
    let scanner = all_builtins();
    let prose = "More on our website. ".repeat(20);
    let first = format!("{prose}ghp_{}", "aBcDeFgHiJ".repeat(20));
    let third = format!("XyZ {prose}");
    assert!(has_interior(&scanner, &first));
    let fields = values_of(&[&first, "kLmN", &third]);
    let whole = scanner.scan_fields_with(&fields, false);
    let secrets = whole.iter().find(|f| f.detector == "secrets").unwrap();
    // The token alone, with `kLmN` glued on (the pair view), and with
    // `kLmNXyZ` (the concatenation only).
    assert_eq!(secrets.count, 3, "{whole:?}");
    assert_eq!(scanner.scan_fields_with(&fields, true), whole);
}
