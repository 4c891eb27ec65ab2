//! Document detectors: UK passport numbers and UK driving licence numbers.
//!
//! Job: a passport is nine digits (or a letter and eight digits) with the word
//! "passport" within [`PASSPORT_KEYWORD_WITHIN`] units; a driving licence is the
//! DVLA's 16 characters with a birth date that exists ([`is_driving_licence`]).
//!
//! Limits: no other country's documents. Callers: `detectors/mod.rs`.

pub(super) const PASSPORT_KEYWORD_WITHIN: usize = 100;

/// 16 chars: surname (letters, padded with 9), decade, month (+50), day, year
/// digit, initials, a digit, two check chars; the birth date must exist.
pub(crate) fn is_driving_licence(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 16 {
        return false;
    }
    let surname = &b[..5];
    let pad = surname.iter().position(|&c| c == b'9').unwrap_or(5);
    if pad == 0
        || !surname[..pad].iter().all(u8::is_ascii_uppercase)
        || !surname[pad..].iter().all(|&c| c == b'9')
    {
        return false;
    }
    if !b[5..11].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num =
        |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'));
    let decade = num(5..6);
    let mut month = num(6..8);
    if month > 50 {
        month -= 50;
    }
    let day = num(8..10);
    let year = decade * 10 + num(10..11);
    if !(1..=12).contains(&month) || day == 0 {
        return false;
    }
    let leap = |y: u32| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let max_day = match month {
        2 if leap(1900 + year) || leap(2000 + year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    day <= max_day
}
