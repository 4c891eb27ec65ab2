//! The scalar value syntaxes that several sections of `socialgate.yaml` share:
//! durations (`10s`, `5m`), CIDRs (`10.20.0.0/16` or a bare address) and
//! listen addresses (`127.0.0.1:3128`).
//!
//! Limits: each parser checks one value and returns a message for people
//! (without the key: the caller prefixes `` `key`: ``); positions are the
//! caller's business. Called by the section parsers of `settings/`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

/// Parses a duration such as `10s`, `5m` or `1h`.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|_| format!("`{s}` is not a duration such as 10s, 5m or 1h"))
}

/// Parses a listen address: `127.0.0.1:3128`, `[::1]:3128`.
pub(super) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not an address:port such as 127.0.0.1:3128 or [::1]:3128"))
}

/// Parses a CIDR (host bits cleared) or a single address (a /32 or /128).
pub(super) fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is not a CIDR such as 10.20.0.0/16"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_addresses() {
        assert_eq!(
            parse_cidr("10.20.3.4/16").map(|n| n.to_string()),
            Ok("10.20.0.0/16".to_string())
        );
        assert_eq!(
            parse_cidr("::1").map(|n| n.to_string()),
            Ok("::1/128".to_string())
        );
        assert!(parse_cidr("10.20/16x").is_err());
        assert!(parse_listen("[::1]:3128").is_ok());
        assert!(parse_listen("localhost").is_err());
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    }
}
