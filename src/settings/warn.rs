//! The `warn:` section: the key that signs warn acknowledgements.
//!
//! Limits: `key_file`'s bytes are the key, read when the settings are parsed
//! (so `check --settings` sees a missing file); at least 32 bytes (e.g.
//! `openssl rand -hex 32 > warn.key`). A policy reload does not read it again.
//! Replicas given the same file honour each other's acknowledgements, also
//! after a restart. The key never appears in `Debug` output or in a message.
//! Called by [`super::Settings::from_yaml`]; the gateway builds its
//! `WarnGate` from [`WarnKey`].

use serde::Deserialize;

use super::problems::Problems;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWarn {
    key_file: Option<String>,
}

/// The acknowledgement key's bytes.
#[derive(Clone)]
pub struct WarnKey(Vec<u8>);

impl WarnKey {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for WarnKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WarnKey(<redacted>)")
    }
}

/// The shortest key accepted.
const MIN_KEY_BYTES: usize = 32;

/// Reads `warn.key_file`; a missing, unreadable or short file is reported at the key.
pub(super) fn parse(raw: RawWarn, problems: &mut Problems<'_>) -> Option<WarnKey> {
    let path = raw.key_file?;
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() >= MIN_KEY_BYTES => Some(WarnKey(bytes)),
        Ok(bytes) => {
            problems.at(
                "warn.key_file",
                format!(
                    "`warn.key_file`: {path} holds {} bytes; a key needs at least {MIN_KEY_BYTES} (make one with `openssl rand -hex 32 > {path}`)",
                    bytes.len()
                ),
            );
            None
        }
        Err(e) => {
            problems.at(
                "warn.key_file",
                format!("`warn.key_file`: cannot read {path}: {e}"),
            );
            None
        }
    }
}
