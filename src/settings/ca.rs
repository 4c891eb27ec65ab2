//! The `ca:` section: the interception CA's two PEM files and whether a
//! missing pair may be created at start-up.
//!
//! Limits: `create_if_missing` is true only on the built-in defaults (no
//! settings file); a settings file that does not say `create_if_missing: true`
//! makes missing CA files a start-up error naming `socialgate ca init`, so two
//! replicas never quietly make two different CAs. The files are read at
//! start-up (`runtime::load_ca`), not here. Called by
//! [`super::Settings::from_yaml`].

use std::path::PathBuf;

use serde::Deserialize;

/// `ca.cert`'s default.
pub const DEFAULT_CA_CERT: &str = "certs/ca.crt";
/// `ca.key`'s default.
pub const DEFAULT_CA_KEY: &str = "certs/ca.key";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCa {
    cert: Option<String>,
    key: Option<String>,
    create_if_missing: Option<bool>,
}

/// `(cert, key, create_if_missing)` from `ca:`; absent keys take their
/// defaults (`create_if_missing: false` in a settings file).
pub(super) fn parse(raw: Option<RawCa>) -> (PathBuf, PathBuf, bool) {
    let raw = raw.unwrap_or(RawCa {
        cert: None,
        key: None,
        create_if_missing: None,
    });
    (
        PathBuf::from(raw.cert.as_deref().unwrap_or(DEFAULT_CA_CERT)),
        PathBuf::from(raw.key.as_deref().unwrap_or(DEFAULT_CA_KEY)),
        raw.create_if_missing.unwrap_or(false),
    )
}
