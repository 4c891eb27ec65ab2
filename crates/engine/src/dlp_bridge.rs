//! Connects the policy's DLP profiles to the scanner: maps the request's content
//! to a scan, the scanner's findings to verdict findings, and what cannot be
//! scanned to a refusal (fail closed).
//!
//! Limits: pure; defines the content and finding types the verdict re-exports, so
//! that it depends only on `dlp` and `policy`. Callers: `verdict`.

use crate::dlp::{ScanError, ScanInput, ScanLimits};
use crate::policy::{DlpProfile, Policy};

/// One DLP finding: detector, number of distinct values, a masked sample.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DlpFinding {
    pub detector: String,
    pub count: usize,
    pub sample: String,
    /// `block` or `log`.
    pub on_finding: &'static str,
}

/// Why content could not be scanned (the request is refused: fail closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanRefusal {
    /// Larger than `limits.max_scan_bytes` (413).
    TooLarge,
    /// Unknown encoding or undecodable body (403).
    Undecodable(String),
}

/// What the scanner sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub body: &'a [u8],
    pub query: Option<&'a str>,
}

/// Scans `content` with `profile`. Pure.
pub fn scan(
    _policy: &Policy,
    profile: &DlpProfile,
    content: Content<'_>,
    max_scan_bytes: usize,
) -> Result<Vec<DlpFinding>, ScanRefusal> {
    let Some(scanner) = &profile.scanner else {
        return Err(ScanRefusal::Undecodable(format!(
            "DLP profile `{}` is not usable",
            profile.name
        )));
    };
    if content.body.len() > max_scan_bytes {
        return Err(ScanRefusal::TooLarge);
    }
    let input = ScanInput {
        content_type: content.content_type,
        content_encoding: content.content_encoding,
        body: content.body,
        query: content.query,
    };
    let limits = ScanLimits {
        max_decoded_bytes: max_scan_bytes,
    };
    match scanner.scan_request(&input, &limits) {
        Ok(findings) => Ok(findings
            .into_iter()
            .map(|f| DlpFinding {
                detector: f.detector,
                count: f.count,
                sample: f.sample,
                on_finding: profile.on_finding.as_str(),
            })
            .collect()),
        Err(ScanError::TooLarge) => Err(ScanRefusal::TooLarge),
        Err(ScanError::UnknownEncoding(e)) => Err(ScanRefusal::Undecodable(format!(
            "unknown content encoding {e}"
        ))),
        Err(ScanError::Undecodable(e)) => Err(ScanRefusal::Undecodable(e)),
    }
}
