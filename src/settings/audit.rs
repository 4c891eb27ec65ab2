//! The `audit:` section: where the audit log (one JSON record per decision)
//! is written.
//!
//! Limits: the path is taken as given (`-` is stdout); it is opened at
//! start-up, not here. Called by [`super::Settings::from_yaml`]; the runtime
//! opens [`super::Settings::audit_path`].

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    path: String,
}

/// The audit log path `audit:` names.
pub(super) fn parse(a: RawAudit) -> String {
    a.path
}
