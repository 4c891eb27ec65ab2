//! Secret detectors: AWS access keys, GitHub and Slack tokens, private key
//! blocks and JSON Web Tokens.
//!
//! Job: from a literal prefix found by the shared automaton ([`SECRET_LITERALS`]),
//! check the rest of the token: its alphabet and length, a `-----BEGIN ...
//! PRIVATE KEY-----` block (bounded), or a JWT's three base64url parts with a
//! JSON header that names `alg`.
//!
//! Limits: case-sensitive prefixes; a token must stay one token (look-alike
//! letters are undone by the fold view before). Callers: `detectors/mod.rs`.

use base64::Engine;

use super::*;

pub(super) const SECRET_LITERALS: &[(&str, Literal)] = &[
    ("AKIA", Literal::Aws),
    ("ASIA", Literal::Aws),
    ("ghp_", Literal::GitHub),
    ("gho_", Literal::GitHub),
    ("ghs_", Literal::GitHub),
    ("github_pat_", Literal::GitHubPat),
    ("xoxa-", Literal::Slack),
    ("xoxb-", Literal::Slack),
    ("xoxp-", Literal::Slack),
    ("xoxr-", Literal::Slack),
    ("xoxs-", Literal::Slack),
    ("-----BEGIN", Literal::PrivateKey),
    ("eyJ", Literal::Jwt),
];

/// A `-----BEGIN ... PRIVATE KEY-----` header; the value is the block (bounded).
pub(super) fn private_key_block(text: &str, start: usize, after_begin: usize) -> Option<String> {
    let bytes = text.as_bytes();
    let line_end = after_begin + run_len(bytes, after_begin, |b| b != b'\n').min(80);
    let header = text.get(after_begin..line_end)?;
    let label_end = header.find("PRIVATE KEY-----")?;
    if !header[..label_end]
        .bytes()
        .all(|b| b == b' ' || b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return None;
    }
    let limit = (start + 16 * 1024).min(text.len());
    let (_, limit) = char_window(text, limit, limit);
    let block = &text[start..limit];
    let end = block.find("-----END").map_or(block.len(), |e| e);
    Some(
        block[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    )
}

pub(super) fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// End of a JWT starting at `s` (`eyJ...`): three base64url parts, header JSON with `alg`.
pub(super) fn jwt_end(bytes: &[u8], s: usize) -> Option<usize> {
    if s > 0 && (is_base64url(bytes[s - 1]) || bytes[s - 1] == b'.') {
        return None;
    }
    let header_len = run_len(bytes, s, is_base64url);
    let dot1 = s + header_len;
    if bytes.get(dot1) != Some(&b'.') {
        return None;
    }
    let payload_len = run_len(bytes, dot1 + 1, is_base64url);
    let dot2 = dot1 + 1 + payload_len;
    if payload_len == 0 || bytes.get(dot2) != Some(&b'.') {
        return None;
    }
    let sig_len = run_len(bytes, dot2 + 1, is_base64url);
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&bytes[s..dot1])
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&header).ok()?;
    json.get("alg")?;
    Some(dot2 + 1 + sig_len)
}
