//! The `upstream:` section: how the gateway reaches sites (extra trusted roots,
//! pinned addresses, destinations allowed despite the private-address guard,
//! IP literals a client may name, ports, time-outs, a parent proxy to chain
//! through and the destinations reached without it), with its defaults.
//!
//! Limits: root files are only named here and read at start-up; the parent
//! proxy's credentials file (`proxy_auth_file`) is read here, once, when the
//! settings are parsed (a reload of the policy does not re-read it). Only
//! `http://` and `https://` parents, named `scheme://host:port`. Called by
//! [`super::Settings::from_yaml`]; the proxy and `check --settings` read
//! [`UpstreamSettings`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use ipnet::IpNet;
use serde::Deserialize;

use super::problems::Problems;
use super::values::{parse_cidr, parse_duration};
use crate::policy::DomainPattern;
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
    proxy_auth_file: Option<String>,
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
    /// The parent proxy every upstream connection goes through (`upstream.proxy`),
    /// except to `no_proxy` destinations.
    pub proxy: Option<ParentProxy>,
    /// Destinations reached directly despite `proxy` (`upstream.no_proxy`).
    pub no_proxy: Vec<NoProxy>,
}

/// A parent proxy: `http://host:port` or `https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentProxy {
    /// `https://`: the gateway speaks TLS to the parent (verified like a site).
    pub tls: bool,
    /// The parent's host name or IP address, as configured (no brackets).
    pub host: String,
    pub port: u16,
    /// Sent as `Proxy-Authorization: Basic` to the parent, when configured.
    pub credentials: Option<ParentCredentials>,
}

impl ParentProxy {
    /// `http://host:port` as configured, to name the parent in messages.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// The parent's credentials (`user:password` from `upstream.proxy_auth_file`).
/// Debug output never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ParentCredentials {
    pub user: String,
    pub password: String,
    /// The file they were read from, for messages.
    pub file: PathBuf,
}

impl std::fmt::Debug for ParentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentCredentials")
            .field("user", &self.user)
            .field("password", &"(hidden)")
            .field("file", &self.file)
            .finish()
    }
}

/// A `no_proxy` entry: a CIDR (matches IP-literal destinations) or a domain
/// pattern (`example.org` exactly, `*.example.org` any name below it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoProxy {
    Net(IpNet),
    Domain(DomainPattern),
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
            proxy: None,
            no_proxy: Vec::new(),
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
    apply_parent(&u.proxy, &u.proxy_auth_file, &u.no_proxy, up, problems);
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

/// `proxy`, `proxy_auth_file` and `no_proxy`.
fn apply_parent(
    proxy: &Option<String>,
    auth_file: &Option<String>,
    no_proxy: &[String],
    up: &mut UpstreamSettings,
    problems: &mut Problems<'_>,
) {
    let Some(url) = proxy else {
        if auth_file.is_some() {
            problems.at(
                "upstream.proxy_auth_file",
                "`upstream.proxy_auth_file` is set but `upstream.proxy` is not: name the parent proxy or remove the key".into(),
            );
        }
        if !no_proxy.is_empty() {
            problems.at(
                "upstream.no_proxy",
                "`upstream.no_proxy` is set but `upstream.proxy` is not: name the parent proxy or remove the key".into(),
            );
        }
        return;
    };
    let mut parent = match parse_parent_url(url) {
        Ok(p) => p,
        Err(e) => {
            problems.at("upstream.proxy", format!("`upstream.proxy`: {e}"));
            return;
        }
    };
    if let Some(file) = auth_file {
        match read_credentials(std::path::Path::new(file)) {
            Ok(c) => parent.credentials = Some(c),
            Err(e) => problems.at(
                "upstream.proxy_auth_file",
                format!("`upstream.proxy_auth_file`: {e}"),
            ),
        }
    }
    for (i, entry) in no_proxy.iter().enumerate() {
        match parse_no_proxy(entry) {
            Ok(n) => up.no_proxy.push(n),
            Err(e) => problems.at(
                &index("upstream.no_proxy", i),
                format!("`upstream.no_proxy`: {e}"),
            ),
        }
    }
    up.proxy = Some(parent);
}

/// `http://host:port` or `https://host:port` (a trailing `/` is allowed; no
/// path, query, credentials or other scheme).
fn parse_parent_url(url: &str) -> Result<ParentProxy, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "`{url}` is not a URL such as http://webproxy.example:8080"
        ));
    };
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        other => {
            return Err(format!(
                "the scheme `{other}://` is not supported: the parent must be an HTTP proxy, named http://host:port or https://host:port"
            ))
        }
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') || authority.contains('?') || authority.contains('#') {
        return Err(format!(
            "`{url}` has a path, query or fragment: a parent proxy is named scheme://host:port only"
        ));
    }
    if authority.contains('@') {
        return Err(format!(
            "`{url}` holds credentials: put `user:password` in a file named by `upstream.proxy_auth_file` instead"
        ));
    }
    let parsed: http::uri::Authority = authority
        .parse()
        .map_err(|_| format!("`{url}` does not name a valid host:port"))?;
    let Some(port) = parsed.port_u16() else {
        return Err(format!(
            "`{url}` names no port: write the parent's port explicitly, e.g. {scheme}://{authority}:3128"
        ));
    };
    let host = parsed
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.is_empty() || port == 0 {
        return Err(format!("`{url}` does not name a valid host:port"));
    }
    Ok(ParentProxy {
        tls,
        host,
        port,
        credentials: None,
    })
}

/// Reads `user:password` (one line; a trailing newline is ignored).
fn read_credentials(path: &std::path::Path) -> Result<ParentCredentials, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let line = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    let malformed = || {
        format!(
            "{} must hold one line `user:password` (it does not; its content is not shown)",
            path.display()
        )
    };
    let (user, password) = line.split_once(':').ok_or_else(malformed)?;
    if user.is_empty()
        || line.contains('\n')
        || line.contains('\r')
        || line.chars().any(|c| c.is_control())
    {
        return Err(malformed());
    }
    Ok(ParentCredentials {
        user: user.to_string(),
        password: password.to_string(),
        file: path.to_path_buf(),
    })
}

/// A CIDR or single address, or a domain pattern.
fn parse_no_proxy(entry: &str) -> Result<NoProxy, String> {
    if let Ok(net) = parse_cidr(entry) {
        return Ok(NoProxy::Net(net));
    }
    if entry.contains('/') {
        return Err(format!("`{entry}` is not a CIDR such as 10.20.0.0/16"));
    }
    DomainPattern::parse(entry)
        .map(NoProxy::Domain)
        .map_err(|_| format!("`{entry}` is neither a CIDR (10.0.0.0/8) nor a domain pattern (intranet.example, *.council.example)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_urls() {
        let p = parse_parent_url("http://WebProxy.example:8080/").unwrap();
        assert_eq!(
            (p.tls, p.host.as_str(), p.port),
            (false, "webproxy.example", 8080)
        );
        let p = parse_parent_url("https://[::1]:3129").unwrap();
        assert_eq!((p.tls, p.host.as_str(), p.port), (true, "::1", 3129));
        assert_eq!(p.url(), "https://[::1]:3129");
        for (bad, says) in [
            ("http://proxy.example:8080/path", "path"),
            ("socks5://proxy.example:1080", "socks5"),
            ("proxy.example:8080", "not a URL"),
            ("http://proxy.example", "no port"),
            ("http://u:p@proxy.example:8080", "proxy_auth_file"),
            ("http://proxy.example:8080?x=1", "query"),
        ] {
            let e = parse_parent_url(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn no_proxy_entries() {
        assert!(matches!(parse_no_proxy("10.0.0.0/8"), Ok(NoProxy::Net(_))));
        assert!(matches!(parse_no_proxy("192.0.2.1"), Ok(NoProxy::Net(_))));
        assert!(matches!(
            parse_no_proxy("*.council.example"),
            Ok(NoProxy::Domain(DomainPattern::Wildcard(_)))
        ));
        assert!(parse_no_proxy("10.0.0.0/33").is_err());
        assert!(parse_no_proxy("a*b.example").is_err());
    }

    #[test]
    fn credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("parent");
        std::fs::write(&p, "gateway:s3cret:with:colons\n").unwrap();
        let c = read_credentials(&p).unwrap();
        assert_eq!(
            (c.user.as_str(), c.password.as_str()),
            ("gateway", "s3cret:with:colons")
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        std::fs::write(&p, "no-colon-s3cret\n").unwrap();
        let e = read_credentials(&p).unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        std::fs::write(&p, "a:b\nc:d\n").unwrap();
        assert!(read_credentials(&p).is_err());
        assert!(read_credentials(&dir.path().join("missing")).is_err());
    }
}
