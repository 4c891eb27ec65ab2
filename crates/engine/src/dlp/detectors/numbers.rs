//! Number detectors: payment cards, NI numbers, NHS numbers, UK bank details
//! (sort code and account) and IBANs.
//!
//! Job: the validators that keep precision: issuer prefix and Luhn for cards
//! (and how cards are printed, for unusual separators), modulus 11 for NHS
//! numbers, issued prefixes and an A–D suffix for NI numbers, the country
//! length and modulus 97 for IBANs, and the pairing of a sort code with an
//! 8-digit account within [`BANK_PAIR_WITHIN`] units.
//!
//! Limits: digits up to 19 kept on the stack ([`DigitBuf`]); the IBAN table is
//! Europe complete plus common others. Callers: `detectors/mod.rs` (the digit
//! pass and the NI/IBAN window regexes).

use super::*;

pub(super) const BANK_PAIR_WITHIN: usize = 50;

/// IBAN length per country (ISO 13616 registry, Europe complete plus common others).
pub(super) const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// A group of ASCII digits inside a cluster.
#[derive(Debug, Clone, Copy)]
pub(super) struct Group {
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Group {
    #[inline]
    pub(super) fn len(self) -> usize {
        self.end - self.start
    }
}

/// Up to 19 ASCII digits on the stack.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DigitBuf {
    pub(super) buf: [u8; 19],
    pub(super) len: usize,
}

impl DigitBuf {
    #[inline]
    pub(super) fn push(&mut self, digits: &[u8]) -> bool {
        let Some(dest) = self.buf.get_mut(self.len..self.len + digits.len()) else {
            return false;
        };
        dest.copy_from_slice(digits);
        self.len += digits.len();
        true
    }
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }
    #[inline]
    pub(super) fn digits(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    #[inline]
    pub(super) fn as_str(&self) -> &str {
        std::str::from_utf8(self.digits()).unwrap_or_default()
    }
}

/// How cards are printed: groups of four (the last one to four digits), or the
/// 4-6-5 / 4-6-4 of American Express and Diners.
#[inline]
pub(super) fn card_grouping(groups: &[Group]) -> bool {
    let Some((last, head)) = groups.split_last() else {
        return false;
    };
    let fours = head.iter().all(|g| g.len() == 4) && (1..=4).contains(&last.len());
    let amex =
        matches!(groups, [a, b, c] if a.len() == 4 && b.len() == 6 && matches!(c.len(), 4 | 5));
    fours || amex
}

/// Issuer prefix (4, 51–55, 2221–2720, 34/37, 6011/65, 35) and Luhn over 13–19 digits.
#[inline]
pub(crate) fn is_card(d: &[u8]) -> bool {
    if !(13..=19).contains(&d.len()) || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let prefix = |n: usize| -> u32 {
        d[..n]
            .iter()
            .fold(0, |acc, &b| acc * 10 + u32::from(b - b'0'))
    };
    let issuer = d[0] == b'4'
        || (51..=55).contains(&prefix(2))
        || (2221..=2720).contains(&prefix(4))
        || matches!(prefix(2), 34 | 37 | 65 | 35)
        || prefix(4) == 6011;
    issuer && luhn(d)
}

#[inline]
pub(crate) fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &b)| {
            let v = u32::from(b - b'0');
            if i % 2 == 1 {
                let dbl = v * 2;
                if dbl > 9 {
                    dbl - 9
                } else {
                    dbl
                }
            } else {
                v
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Mod-11 over ten digits; all-same-digit dummies (0000000000, 1111111111) excluded.
#[inline]
pub(crate) fn is_nhs_number(d: &[u8]) -> bool {
    if d.len() != 10 || !d.iter().all(u8::is_ascii_digit) || d.iter().all(|&b| b == d[0]) {
        return false;
    }
    let sum: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, &b)| u32::from(b - b'0') * (10 - i as u32))
        .sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    check == u32::from(d[9] - b'0')
}

/// Nine upper-case chars, separators stripped: prefix rules, six digits, suffix A–D.
pub(crate) fn is_nino(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 9 {
        return false;
    }
    let (first, second) = (b[0], b[1]);
    first.is_ascii_uppercase()
        && second.is_ascii_uppercase()
        && !b"DFIQUV".contains(&first)
        && !b"DFIOQUV".contains(&second)
        && !matches!(
            &b[..2],
            b"BG" | b"GB" | b"KN" | b"NK" | b"NT" | b"TN" | b"ZZ"
        )
        && b[2..8].iter().all(u8::is_ascii_digit)
        && (b'A'..=b'D').contains(&b[8])
}

/// The validated IBAN at the start of a regex candidate and how many bytes of the
/// candidate it used: country length from the table, then mod-97 = 1.
pub(super) fn iban_prefix(candidate: &str) -> Option<(String, usize)> {
    let upper = candidate.to_ascii_uppercase();
    let country = upper.get(..2)?;
    let length = IBAN_LENGTHS.iter().find(|(c, _)| *c == country)?.1;
    let mut value = String::with_capacity(length);
    let mut used = 0;
    for (i, c) in upper.char_indices() {
        if value.len() == length {
            break;
        }
        used = i + c.len_utf8();
        if c.is_ascii_alphanumeric() {
            value.push(c);
        }
    }
    // The IBAN must end at a word boundary, or where a separator starts the next group.
    let next = candidate.as_bytes().get(used).copied();
    let tail_ok = !next.is_some_and(|b| b.is_ascii_alphanumeric());
    (value.len() == length && tail_ok && is_iban(&value)).then_some((value, used))
}

pub(crate) fn is_iban(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() < 15
        || !b[..2].iter().all(u8::is_ascii_uppercase)
        || !b[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Sort codes and 8-digit accounts of one text, paired once all clusters are seen.
#[derive(Debug, Default)]
pub(super) struct BankCandidates {
    /// `(start, end, dashed)`: `NN-NN-NN` or `NN NN NN`.
    pub(super) sort_codes: Vec<(usize, usize, bool)>,
    pub(super) accounts: Vec<(usize, usize)>,
}

impl BankCandidates {
    #[inline]
    pub(super) fn report(&self, text: &str, slot: usize, sink: &mut Sink<'_>) {
        for &(ss, se, dashed) in &self.sort_codes {
            let sort_code: String = text[ss..se]
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(char::from)
                .collect();
            // Accounts are in text order: the nearest one before, else after.
            let bytes = text.as_bytes();
            let next = self.accounts.partition_point(|&(a_s, _)| a_s < se);
            let before = self.accounts[..next]
                .iter()
                .rev()
                .find(|&&(_, a_e)| a_e <= ss)
                .filter(|&&(_, a_e)| within_units(bytes, a_e, ss, BANK_PAIR_WITHIN));
            let after = self
                .accounts
                .get(next)
                .filter(|&&(a_s, _)| within_units(bytes, se, a_s, BANK_PAIR_WITHIN));
            let paired = before.or(after);
            if let Some(&(a_s, a_e)) = paired {
                if dashed || keyword_near(text, ss, se, "sort code", BANK_PAIR_WITHIN) {
                    sink(slot, &format!("{sort_code}{}", &text[a_s..a_e]));
                    continue;
                }
            }
            let keyword = keyword_near(text, ss, se, "sort code", BANK_PAIR_WITHIN)
                || (dashed && keyword_near(text, ss, se, "account", BANK_PAIR_WITHIN));
            if keyword {
                sink(slot, &sort_code);
            }
        }
    }
}
