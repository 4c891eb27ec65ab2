//! Connects the policy's DLP profiles to the scanner: maps the request's content
//! to a scan, the scanner's findings to verdict findings, and what cannot be
//! scanned to a refusal (fail closed).

use crate::dlp::{ScanError, ScanInput, ScanLimits};
use crate::policy::{DlpProfile, Policy};
use crate::verdict::{Content, DlpFinding, ScanRefusal};

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
