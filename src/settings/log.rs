//! The `log:` section: how the gateway's own log lines (not the audit log) are
//! written on stderr.
//!
//! Limits: `format` is `text` (the default: one line per event, coloured only
//! when stderr is a terminal and `NO_COLOR` is unset) or `json` (one JSON
//! object per line, for log shippers); the level stays `RUST_LOG`'s. Called by
//! [`super::Settings::from_yaml`]; `cli::run` sets up logging from the result.

use serde::Deserialize;

use super::problems::Problems;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    format: Option<String>,
}

/// Parses `log:`; an unknown format is reported at `log.format`.
pub(super) fn parse(raw: RawLog, problems: &mut Problems<'_>) -> LogFormat {
    match raw.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            problems.at(
                "log.format",
                format!("`log.format`: unknown format `{other}`, expected `text` or `json`"),
            );
            LogFormat::Text
        }
    }
}
