//! Contact detectors: UK phone numbers (e-mail addresses are matched in
//! `detectors/mod.rs` from each `@`).
//!
//! Job: the national form of a UK number whose length is valid for its prefix.
//!
//! Limits: UK numbers only (`+44` or a leading `0`). Callers: `detectors/mod.rs`.

/// The national form (leading 0) of a UK number if its length is valid.
pub(super) fn uk_phone(candidate: &str) -> Option<String> {
    let digits: String = candidate.chars().filter(char::is_ascii_digit).collect();
    let national = match digits.strip_prefix("44") {
        Some(rest) if candidate.starts_with('+') => {
            if rest.starts_with('0') {
                rest.to_string()
            } else {
                format!("0{rest}")
            }
        }
        _ => digits,
    };
    let second = national.as_bytes().get(1).copied()?;
    let ok = match national.len() {
        11 => matches!(second, b'1' | b'2' | b'3' | b'5' | b'7' | b'8' | b'9'),
        10 => national.starts_with("01") || national.starts_with("0800"),
        _ => false,
    };
    ok.then_some(national)
}
