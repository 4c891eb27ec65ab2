//! Data-loss prevention: a pure scanner over request bodies and query strings.
//!
//! Job: turn the bytes of an outgoing request into findings `{detector, count,
//! sample}` with a masked sample ("DLP version 2", described for readers in
//! `docs/dlp.md`): decode the Content-Encoding ([`extract`]), decode the text
//! faithfully or refuse (`charset`), split the container into text fields
//! ([`extract`]), normalise each field ([`normalize`]), and run the built-in and
//! custom detectors ([`detectors`]) over each field, over all fields joined, and
//! over the fold view (look-alikes and combining marks undone) and the
//! separator view (any separators between the groups of an identifier)
//! ([`scan`]).
//!
//! Limits: no I/O, no clock, no globals. The caller buffers the whole body
//! (transport limits are the proxy's job); decompression is capped by
//! [`ScanLimits::max_decoded_bytes`]. Raw matched values live only on the stack
//! of one scan call; findings carry a masked sample and the set of distinct
//! values is kept as hashes. Custom keywords are matched ASCII-case-insensitively
//! (non-ASCII keywords match their exact, lower- and upper-case forms).

mod charset;
pub mod detectors;
pub mod extract;
pub mod normalize;
pub mod scan;

pub use detectors::{CustomDetectorSpec, BUILTIN_DETECTORS};
pub use extract::{Field, ScanInput, ScanLimits};
pub use scan::{Finding, ScanReport, Scanner};

use thiserror::Error;

/// Why a DLP profile could not be compiled (a policy load error).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DlpError {
    /// A profile names a detector that is neither built in nor defined.
    #[error("unknown DLP detector {0:?}")]
    UnknownDetector(String),
    /// A custom detector reuses a built-in id or another custom name.
    #[error("DLP detector {0:?} is defined twice (or shadows a built-in)")]
    DuplicateDetector(String),
    /// A custom detector has neither keywords nor a pattern, or an empty keyword.
    #[error("custom DLP detector {0:?} needs non-empty `keywords` or a `pattern`")]
    EmptyDetector(String),
    /// A custom detector's `pattern` is not a valid regular expression.
    #[error("custom DLP detector {detector:?}: bad pattern: {error}")]
    BadPattern { detector: String, error: String },
    /// The keyword automaton could not be built (too many or too long keywords).
    #[error("DLP keywords could not be compiled: {0}")]
    Keywords(String),
}

/// Why a request body could not be scanned. The proxy fails closed on each:
/// `TooLarge` is a 413, the others a 403.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScanError {
    /// The body, or its decompressed form, exceeds `max_decoded_bytes`.
    #[error("body exceeds the DLP scan limit once decoded")]
    TooLarge,
    /// A Content-Encoding the scanner cannot decode.
    #[error("unknown content-encoding {0:?}")]
    UnknownEncoding(String),
    /// A known encoding whose data is corrupt (bad gzip, truncated brotli, ...).
    #[error("undecodable body: {0}")]
    Undecodable(String),
}
