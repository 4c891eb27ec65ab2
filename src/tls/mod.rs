//! TLS interception material: the gateway's own certificate authority and the
//! per-host leaf certificates it mints for intercepted tunnels.
//!
//! - [`client`]: the TLS client settings for sites and directories the gateway dials.
//! - [`ca`]: load or create the CA (ECDSA P-256, name-constrained so it can never
//!   vouch for an IP address), key file written with mode 0600.
//! - [`issuer`]: mint a leaf for one DNS host (serverAuth only, SAN = that host,
//!   ≤ 7 days, never past the CA), cache it with single-flight, and build the
//!   rustls `ServerConfig` that presents it.
//! - [`sessions`]: the session cache those configs share, so clients resume.
//!
//! Limits: leaves are only ever minted from a name the gateway already decided on
//! (the CONNECT host), never from anything the upstream presents. IP literals are
//! refused. The private keys live in process memory (not zeroised on drop) and are
//! never formatted by `Debug` or written to logs.

pub mod ca;
pub mod client;
pub mod issuer;
pub mod sessions;
pub mod tickets;

pub use ca::CertificateAuthority;
pub use client::client_tls_config;
pub use issuer::{normalize_host, LeafIssuer};

use std::path::PathBuf;
use std::time::SystemTime;

/// Everything that can go wrong in the CA or the leaf issuer.
///
/// Messages never carry key material; host names from clients are printed with
/// `{:?}` so control characters stay escaped.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen could not build or sign the CA certificate.
    #[error("creating the CA certificate failed: {0}")]
    CaGenerate(#[source] rcgen::Error),

    /// The CA private key could not be read or used.
    #[error("CA private key is unusable: {0}")]
    CaKey(String),

    /// The CA certificate could not be parsed or is not fit to be a CA.
    #[error("CA certificate is unusable: {0}")]
    CaCert(String),

    /// The CA certificate and the private key belong to different key pairs.
    #[error("CA certificate and private key do not belong together (different public keys)")]
    CaKeyMismatch,

    /// The CA certificate is past its notAfter: every leaf would be rejected.
    #[error("CA certificate expired at {not_after:?}; create a new CA and redistribute it")]
    CaExpired {
        /// The CA's notAfter.
        not_after: SystemTime,
    },

    /// Only one of the two CA files exists (a start-up error: never guess).
    #[error(
        "CA {present_what} {present} exists but its {missing_what} {missing} is missing; \
         restore the missing file, or remove both to create a new CA"
    )]
    CaHalfPresent {
        /// "certificate" or "private key"
        present_what: &'static str,
        /// The file that exists.
        present: PathBuf,
        /// "certificate" or "private key"
        missing_what: &'static str,
        /// The file that does not.
        missing: PathBuf,
    },

    /// `write` refuses to replace an existing CA file.
    #[error("refusing to overwrite existing file {0}")]
    AlreadyExists(PathBuf),

    /// File system error, with the file and what was being done.
    #[error("{action} {path}: {source}")]
    Io {
        /// e.g. "reading CA certificate"
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The host cannot be given a certificate (IP literal, not a DNS name, …).
    #[error("no certificate for host {host:?}: {reason}")]
    InvalidHost {
        /// The host as received (may be client-supplied).
        host: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// rcgen failed while minting a leaf.
    #[error("minting a certificate for {host:?} failed: {source}")]
    Mint {
        /// The normalised host.
        host: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },

    /// rustls rejected a key or a configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),

    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Random,
}
