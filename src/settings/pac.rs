//! The `pac:` section: which proxies the PAC file (`/proxy.pac`, `/wpad.dat`)
//! names for the listed sites.
//!
//! Limits: each entry is `host:port` (a name or an address, no scheme, no
//! path), checked here; whether the host resolves is not. Without `pac:` the
//! PAC file names the first proxy listener. Called by
//! [`super::Settings::from_yaml`]; `proxy::served` writes the PAC file.

use serde::Deserialize;

use super::problems::Problems;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPac {
    proxies: Vec<String>,
}

/// The PAC file's proxies, in order; reports a bad entry at `pac.proxies`.
pub(super) fn parse(raw: RawPac, problems: &mut Problems<'_>) -> Vec<String> {
    if raw.proxies.is_empty() {
        problems.at(
            "pac.proxies",
            "`pac.proxies`: name at least one gateway as host:port, or leave `pac:` out".into(),
        );
        return Vec::new();
    }
    let mut proxies = Vec::new();
    for (i, entry) in raw.proxies.into_iter().enumerate() {
        let valid = entry
            .parse::<http::uri::Authority>()
            .ok()
            .filter(|a| a.port_u16().is_some_and(|p| p > 0) && a.as_str() == entry)
            .filter(|a| !a.as_str().contains('@') && !a.host().is_empty());
        match valid {
            Some(_) => proxies.push(entry),
            None => problems.at(
                &crate::yaml_source::index("pac.proxies", i),
                format!("`pac.proxies`: `{entry}` is not host:port (e.g. gw1.council.example:3128; no scheme, no path)"),
            ),
        }
    }
    proxies
}
