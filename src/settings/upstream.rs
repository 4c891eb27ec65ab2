//! The `upstream:` section: how the gateway reaches sites (extra trusted roots,
//! pinned addresses, destinations allowed despite the private-address guard,
//! IP literals a client may name, ports, time-outs), with its defaults.
//!
//! Limits: parent-proxy chaining (`proxy`, `no_proxy`) is recognised but
//! refused, as it is not implemented; root files are only named here and read
//! at start-up. Called by [`super::Settings::from_yaml`]; the proxy and
//! `check --settings` read [`UpstreamSettings`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use ipnet::IpNet;
use serde::Deserialize;

use super::problems::Problems;
use super::values::{parse_cidr, parse_duration};
use crate::yaml_source::{child, index};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    #[serde(default)]
    extra_roots: Vec<String>,
    #[serde(default)]
    resolve: IndexMap<String, String>,
    #[serde(default)]
    allow_destinations: Vec<String>,
    #[serde(default)]
    allow_ip_literals: Vec<String>,
    allowed_ports: Option<Vec<u16>>,
    proxy: Option<String>,
    #[serde(default)]
    no_proxy: Vec<String>,
    connect_timeout: Option<String>,
    response_timeout: Option<String>,
}

/// Upstream connections.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub extra_roots: Vec<PathBuf>,
    pub resolve: HashMap<String, IpAddr>,
    pub allow_destinations: Vec<IpNet>,
    /// Addresses a client may name as an IP literal (CONNECT or `http://`):
    /// then an unlisted destination. Any other IP literal is refused
    /// (`ip-literal`) unless it is a site's address.
    pub allow_ip_literals: Vec<IpNet>,
    pub allowed_ports: Vec<u16>,
    pub connect_timeout: Duration,
    /// How long the site may take to start answering (then 504).
    pub response_timeout: Duration,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            extra_roots: Vec::new(),
            resolve: HashMap::new(),
            allow_destinations: Vec::new(),
            allow_ip_literals: Vec::new(),
            allowed_ports: vec![80, 443],
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(60),
        }
    }
}

/// Applies `upstream:` over `up` (the defaults), reporting into `problems`.
pub(super) fn apply(u: RawUpstream, up: &mut UpstreamSettings, problems: &mut Problems<'_>) {
    up.extra_roots = u.extra_roots.into_iter().map(PathBuf::from).collect();
    for (host, ip) in u.resolve {
        match ip.parse::<IpAddr>() {
            Ok(ip) => {
                up.resolve
                    .insert(host.trim_end_matches('.').to_ascii_lowercase(), ip);
            }
            Err(_) => problems.at(
                &child("upstream.resolve", &host),
                format!("`resolve`: `{ip}` is not an IP address"),
            ),
        }
    }
    for (i, d) in u.allow_destinations.iter().enumerate() {
        match parse_cidr(d) {
            Ok(n) => up.allow_destinations.push(n),
            Err(e) => problems.at(
                &index("upstream.allow_destinations", i),
                format!("`allow_destinations`: {e}"),
            ),
        }
    }
    for (i, d) in u.allow_ip_literals.iter().enumerate() {
        match parse_cidr(d) {
            Ok(n) => up.allow_ip_literals.push(n),
            Err(e) => problems.at(
                &index("upstream.allow_ip_literals", i),
                format!("`allow_ip_literals`: {e}"),
            ),
        }
    }
    if let Some(p) = u.allowed_ports {
        if p.is_empty() {
            problems.at(
                "upstream.allowed_ports",
                "`allowed_ports` is empty: nothing could be reached".into(),
            );
        }
        up.allowed_ports = p;
    }
    if u.proxy.is_some() || !u.no_proxy.is_empty() {
        problems.at("upstream.proxy", "`proxy`: chaining through a parent proxy is not available in this version yet; remove the key".into());
    }
    for (key, value, target) in [
        (
            "connect_timeout",
            u.connect_timeout,
            &mut up.connect_timeout,
        ),
        (
            "response_timeout",
            u.response_timeout,
            &mut up.response_timeout,
        ),
    ] {
        if let Some(t) = value {
            match parse_duration(&t) {
                Ok(d) => *target = d,
                Err(e) => problems.at(&child("upstream", key), format!("`{key}`: {e}")),
            }
        }
    }
}
