//! The `pac:` section: which proxies the PAC file (`/proxy.pac`, `/wpad.dat`)
//! names for the listed sites.
//!
//! Limits: each entry is `host:port` (a name or an address, no scheme, no
//! path), optionally after `HTTPS ` (an HTTPS proxy port) or `PROXY `,
//! checked here; whether the host resolves is not. Without `pac:` the
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
        // `HTTPS host:port` names an HTTPS proxy port (`listen_tls`);
        // `PROXY host:port` and a bare `host:port` a plain one.
        let authority = entry
            .strip_prefix("HTTPS ")
            .or_else(|| entry.strip_prefix("PROXY "))
            .unwrap_or(&entry);
        let valid = authority
            .parse::<http::uri::Authority>()
            .ok()
            .filter(|a| a.port_u16().is_some_and(|p| p > 0) && a.as_str() == authority)
            .filter(|a| !a.as_str().contains('@') && !a.host().is_empty());
        match valid {
            Some(_) => proxies.push(entry),
            None => problems.at(
                &crate::yaml_source::index("pac.proxies", i),
                format!("`pac.proxies`: `{entry}` is not host:port (e.g. gw1.council.example:3128, or `HTTPS gw1.council.example:3129` for an HTTPS proxy port; no scheme, no path)"),
            ),
        }
    }
    proxies
}
