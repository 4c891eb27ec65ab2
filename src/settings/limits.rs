//! The `limits:` section: sizes, time-outs and connection caps, with their
//! defaults.
//!
//! Limits: values are checked one by one (a size's unit, a time-out longer than
//! zero, a cap of at least 1, `max_header_bytes` of at least 8192); every
//! problem is reported at its key and the default stays in place. Called by
//! [`super::Settings::from_yaml`]; the proxy and runtime read [`Limits`].

use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::problems::Problems;
use super::values::parse_duration;
use crate::yaml_source::child;

/// `limits.max_scan_bytes` when the settings do not say (10 MiB); also the limit
/// for scans made by `explain` and policy tests, which have no settings.
pub use crate::verdict::DEFAULT_MAX_SCAN_BYTES;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    max_header_bytes: Option<Value>,
    max_scan_bytes: Option<Value>,
    max_buffered_bytes: Option<Value>,
    max_buffered_bytes_per_client: Option<Value>,
    body_read_timeout: Option<String>,
    min_body_rate: Option<Value>,
    idle_timeout: Option<String>,
    header_read_timeout: Option<String>,
    tls_handshake_timeout: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    max_tunnels: Option<usize>,
    max_h2_streams: Option<u32>,
}

/// Resource limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_scan_bytes: usize,
    pub max_buffered_bytes: usize,
    /// One signed-in user's share of `max_buffered_bytes`; `None`: the default,
    /// see [`Limits::buffered_share`].
    pub max_buffered_bytes_per_client: Option<usize>,
    /// A body the gateway reads whole (to classify or scan it) must arrive
    /// within this time.
    pub body_read_timeout: Duration,
    /// ...and, after a 10 s grace (the proxy's body reader), at least this many bytes per second
    /// on average (0: no minimum).
    pub min_body_rate: usize,
    /// A connection (either leg, or a tunnel) with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// A request head must arrive within this time (slowloris).
    pub header_read_timeout: Duration,
    /// A client's TLS handshake inside an intercepted tunnel must finish within this.
    pub tls_handshake_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub max_tunnels: usize,
    /// Concurrent HTTP/2 streams per intercepted client connection.
    pub max_h2_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 65536,
            max_scan_bytes: DEFAULT_MAX_SCAN_BYTES,
            max_buffered_bytes: 256 << 20,
            max_buffered_bytes_per_client: None,
            body_read_timeout: Duration::from_secs(60),
            min_body_rate: 1024,
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(15),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_client: 512,
            max_tunnels: 10_000,
            max_h2_streams: 100,
        }
    }
}

impl Limits {
    /// One user's share of `max_buffered_bytes`: `max_buffered_bytes_per_client`,
    /// by default the larger of 2 x `max_scan_bytes` and `max_buffered_bytes` / 8;
    /// never more than `max_buffered_bytes`.
    pub fn buffered_share(&self) -> usize {
        self.max_buffered_bytes_per_client
            .unwrap_or_else(|| (2 * self.max_scan_bytes).max(self.max_buffered_bytes / 8))
            .min(self.max_buffered_bytes)
    }
}

/// Parses `10MiB`, `64KiB`, `1GiB`, `500kB`, `65536`.
fn parse_size(v: &Value) -> Result<usize, String> {
    if let Some(n) = v.as_u64() {
        return usize::try_from(n).map_err(|_| "too large".into());
    }
    let s = v.as_str().ok_or("a size such as 10MiB or 65536")?.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size such as 10MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .and_then(|x| usize::try_from(x).ok())
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Applies `limits:` over `limits` (the defaults), reporting into `problems`.
pub(super) fn apply(l: RawLimits, limits: &mut Limits, problems: &mut Problems<'_>) {
    for (key, value, target) in [
        (
            "max_header_bytes",
            l.max_header_bytes,
            &mut limits.max_header_bytes,
        ),
        (
            "max_scan_bytes",
            l.max_scan_bytes,
            &mut limits.max_scan_bytes,
        ),
        (
            "max_buffered_bytes",
            l.max_buffered_bytes,
            &mut limits.max_buffered_bytes,
        ),
    ] {
        if let Some(v) = value {
            match parse_size(&v) {
                Ok(n) => *target = n,
                Err(e) => problems.at(&child("limits", key), format!("`{key}`: {e}")),
            }
        }
    }
    if let Some(v) = l.max_buffered_bytes_per_client {
        match parse_size(&v) {
            Ok(0) => problems.at(
                "limits.max_buffered_bytes_per_client",
                "`max_buffered_bytes_per_client` must be larger than zero".into(),
            ),
            Ok(n) => limits.max_buffered_bytes_per_client = Some(n),
            Err(e) => problems.at(
                "limits.max_buffered_bytes_per_client",
                format!("`max_buffered_bytes_per_client`: {e}"),
            ),
        }
    }
    if let Some(v) = l.min_body_rate {
        // A rate: a size per second (`1KiB` is 1024 bytes per second).
        let text = v
            .as_str()
            .map(|s| s.trim().trim_end_matches("/s").to_string());
        let parsed = match text {
            Some(t) => parse_size(&Value::from(t)),
            None => parse_size(&v),
        };
        match parsed {
            Ok(n) => limits.min_body_rate = n,
            Err(e) => problems.at(
                "limits.min_body_rate",
                format!("`min_body_rate`: {e} (a size per second such as 1KiB, or 0 for none)"),
            ),
        }
    }
    if limits.max_header_bytes < 8192 {
        problems.at(
            "limits.max_header_bytes",
            "`max_header_bytes` must be at least 8192".into(),
        );
    }
    for (key, value, target) in [
        ("idle_timeout", l.idle_timeout, &mut limits.idle_timeout),
        (
            "body_read_timeout",
            l.body_read_timeout,
            &mut limits.body_read_timeout,
        ),
        (
            "header_read_timeout",
            l.header_read_timeout,
            &mut limits.header_read_timeout,
        ),
        (
            "tls_handshake_timeout",
            l.tls_handshake_timeout,
            &mut limits.tls_handshake_timeout,
        ),
    ] {
        if let Some(t) = value {
            match parse_duration(&t) {
                Ok(d) if !d.is_zero() => *target = d,
                Ok(_) => problems.at(
                    &child("limits", key),
                    format!("`{key}` must be longer than zero"),
                ),
                Err(e) => problems.at(&child("limits", key), format!("`{key}`: {e}")),
            }
        }
    }
    for (key, value, target) in [
        (
            "max_connections",
            l.max_connections,
            &mut limits.max_connections,
        ),
        (
            "max_connections_per_client",
            l.max_connections_per_client,
            &mut limits.max_connections_per_client,
        ),
        ("max_tunnels", l.max_tunnels, &mut limits.max_tunnels),
    ] {
        match value {
            Some(0) => problems.at(&child("limits", key), format!("`{key}` must be at least 1")),
            Some(n) => *target = n,
            None => {}
        }
    }
    if let Some(n) = l.max_h2_streams {
        limits.max_h2_streams = n.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&Value::from("10MiB")), Ok(10 << 20));
        assert_eq!(parse_size(&Value::from(65536u64)), Ok(65536));
        assert!(parse_size(&Value::from("ten")).is_err());
    }

    #[test]
    fn the_default_share_is_an_eighth_or_two_scans() {
        let mut l = Limits::default();
        assert_eq!(l.buffered_share(), 32 << 20);
        l.max_buffered_bytes = 16 << 20;
        assert_eq!(
            l.buffered_share(),
            16 << 20,
            "never more than the whole budget"
        );
        l.max_buffered_bytes = 64 << 20;
        assert_eq!(l.buffered_share(), 20 << 20);
        l.max_buffered_bytes_per_client = Some(1 << 20);
        assert_eq!(l.buffered_share(), 1 << 20);
    }
}
