//! The `audit:` section: where the audit log (one JSON record per decision)
//! is written, and the syslog receiver that gets a copy of each record.
//!
//! Limits: the path is taken as given (`-` is stdout); it is opened at
//! start-up, not here. `syslog.url` is parsed (`udp://`, `tcp://`, `tls://`)
//! but not connected to: a receiver that is down does not stop the start.
//! Called by [`super::Settings::from_yaml`]; the runtime opens
//! [`super::Settings::audit_path`] and starts the sender for
//! [`super::Settings::audit_syslog`].

use serde::Deserialize;

use super::problems::Problems;
use crate::syslog::SyslogTarget;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    path: Option<String>,
    syslog: Option<RawSyslog>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSyslog {
    url: String,
}

/// The audit log path (`None`: the default) and the syslog receiver `audit:`
/// names; a bad `syslog.url` is reported at its key.
pub(super) fn parse(
    a: RawAudit,
    problems: &mut Problems<'_>,
) -> (Option<String>, Option<SyslogTarget>) {
    let syslog = a.syslog.and_then(|s| match SyslogTarget::parse(&s.url) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.at("audit.syslog.url", format!("`audit.syslog.url`: {e}"));
            None
        }
    });
    (a.path, syslog)
}
