//! Connects the policy's DLP profiles to the scanner. Until the DLP engine lands
//! (issue 4), a rule with a `dlp:` profile refuses any request carrying content:
//! unscanned content must never pass (fail closed).

use crate::policy::{DlpProfile, Policy};
use crate::verdict::{Content, DlpFinding, ScanRefusal};

/// Scans `content` with `profile`.
pub fn scan(
    _policy: &Policy,
    _profile: &DlpProfile,
    _content: Content<'_>,
    _max_scan_bytes: usize,
) -> Result<Vec<DlpFinding>, ScanRefusal> {
    Err(ScanRefusal::Undecodable(
        "the DLP engine is not built into this version".into(),
    ))
}
