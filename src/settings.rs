//! Gateway settings (`socialgate.yaml`): listeners, CA, identity sources, upstream,
//! limits, audit. Every key is optional and has a safe default; unknown keys are
//! errors with their position. `Settings::default()` is the built-in configuration
//! `socialgate run` uses when no file is given.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use ipnet::IpNet;
use serde::Deserialize;
use serde_yaml::Value;

use crate::policy::raw::OneOrMany;
use crate::yaml_source::{child, index, ConfigError, ConfigErrors, YamlDoc};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    listen: Option<OneOrMany<String>>,
    admin_listen: Option<String>,
    policy: Option<String>,
    ca: Option<RawCa>,
    support_contact: Option<String>,
    identity: Option<RawIdentity>,
    upstream: Option<RawUpstream>,
    limits: Option<RawLimits>,
    audit: Option<RawAudit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCa {
    cert: String,
    key: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    basic: Option<RawBasic>,
    #[serde(default)]
    group_members: IndexMap<String, Vec<String>>,
    #[serde(default)]
    networks: Vec<RawNetwork>,
    trusted_header: Option<RawTrustedHeader>,
    kerberos: Option<RawKerberos>,
    ldap: Option<RawLdap>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasic {
    realm: Option<String>,
    htpasswd: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    cidr: String,
    user: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    challenge: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrustedHeader {
    user: String,
    groups: Option<String>,
    from: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKerberos {
    keytab: String,
    principal: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLdap {
    url: String,
    bind_dn: Option<String>,
    bind_password_file: Option<String>,
    user_base: String,
    user_filter: Option<String>,
    groups_from: Option<String>,
    group_filter: Option<String>,
    group_name: Option<String>,
    cache_for: Option<String>,
    verify_basic_passwords: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    #[serde(default)]
    extra_roots: Vec<String>,
    #[serde(default)]
    resolve: IndexMap<String, String>,
    #[serde(default)]
    allow_destinations: Vec<String>,
    allowed_ports: Option<Vec<u16>>,
    proxy: Option<String>,
    #[serde(default)]
    no_proxy: Vec<String>,
    connect_timeout: Option<String>,
    response_timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_header_bytes: Option<Value>,
    max_scan_bytes: Option<Value>,
    max_buffered_bytes: Option<Value>,
    idle_timeout: Option<String>,
    header_read_timeout: Option<String>,
    tls_handshake_timeout: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    max_tunnels: Option<usize>,
    max_h2_streams: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    path: String,
}

/// Basic proxy authentication.
#[derive(Debug, Clone)]
pub struct BasicSettings {
    pub realm: String,
    pub htpasswd: PathBuf,
}

/// An identity by source network.
#[derive(Debug, Clone)]
pub struct NetworkIdentity {
    pub cidr: IpNet,
    pub user: String,
    pub groups: Vec<String>,
    /// Answer a denial with 407, so a person with more rights can sign in.
    pub challenge: bool,
}

/// Identity from a header set by an authenticating proxy in front.
#[derive(Debug, Clone)]
pub struct TrustedHeaderSettings {
    pub user: http::HeaderName,
    pub groups: Option<http::HeaderName>,
    pub from: Vec<IpNet>,
}

/// Kerberos single sign-on (`Proxy-Authorization: Negotiate`).
#[derive(Debug, Clone)]
pub struct KerberosSettings {
    /// The service keytab holding `HTTP/<proxy host>@REALM`.
    pub keytab: PathBuf,
    /// Accept only this service principal (`HTTP/proxy.example` or with `@REALM`);
    /// `None`: any service key in the keytab.
    pub principal: Option<String>,
}

/// Where a user's directory groups come from.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// `ldaps://host[:port]`, or `ldap://` to a loopback address only.
    pub url: String,
    /// Service account; `None`: an anonymous bind.
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<PathBuf>,
    pub user_base: String,
    /// Finds the user; `{user}` is replaced by the escaped user name.
    pub user_filter: String,
    /// An attribute on the user entry naming its groups by DN (`memberOf`).
    pub groups_from: Option<String>,
    /// A search for the user's groups under `user_base`; `{dn}` and `{user}` are
    /// replaced by the escaped user DN and name.
    pub group_filter: Option<String>,
    /// The attribute that names a group (`cn`).
    pub group_name: String,
    pub cache_for: Duration,
    /// Check Basic passwords by binding to the directory as the user.
    pub verify_basic_passwords: bool,
}

/// Identity sources.
#[derive(Debug, Clone, Default)]
pub struct IdentitySettings {
    pub basic: Option<BasicSettings>,
    pub group_members: HashMap<String, Vec<String>>,
    pub networks: Vec<NetworkIdentity>,
    pub trusted_header: Option<TrustedHeaderSettings>,
    pub kerberos: Option<KerberosSettings>,
    pub ldap: Option<LdapSettings>,
}

/// Upstream connections.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub extra_roots: Vec<PathBuf>,
    pub resolve: HashMap<String, IpAddr>,
    pub allow_destinations: Vec<IpNet>,
    pub allowed_ports: Vec<u16>,
    pub connect_timeout: Duration,
    /// How long the site may take to start answering (then 504).
    pub response_timeout: Duration,
}

/// `limits.max_scan_bytes` when the settings do not say (10 MiB); also the limit
/// for scans made by `explain` and policy tests, which have no settings.
pub use crate::verdict::DEFAULT_MAX_SCAN_BYTES;

/// Resource limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_scan_bytes: usize,
    pub max_buffered_bytes: usize,
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

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: Vec<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// `None`: the built-in policy (or `policies/default.yaml` when present).
    pub policy: Option<PathBuf>,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub support_contact: String,
    pub identity: IdentitySettings,
    pub upstream: UpstreamSettings,
    pub limits: Limits,
    /// Audit log path; `-` for stdout.
    pub audit_path: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 3128))],
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9128))),
            policy: None,
            ca_cert: PathBuf::from("certs/ca.crt"),
            ca_key: PathBuf::from("certs/ca.key"),
            support_contact: "your IT service desk".into(),
            identity: IdentitySettings {
                networks: vec![NetworkIdentity {
                    cidr: IpNet::from(IpAddr::from([127, 0, 0, 0])).supernet_for(8),
                    user: "local".into(),
                    groups: vec!["all-staff".into()],
                    challenge: false,
                }],
                ..Default::default()
            },
            upstream: UpstreamSettings {
                extra_roots: Vec::new(),
                resolve: HashMap::new(),
                allow_destinations: Vec::new(),
                allowed_ports: vec![80, 443],
                connect_timeout: Duration::from_secs(10),
                response_timeout: Duration::from_secs(60),
            },
            limits: Limits {
                max_header_bytes: 65536,
                max_scan_bytes: DEFAULT_MAX_SCAN_BYTES,
                max_buffered_bytes: 256 << 20,
                idle_timeout: Duration::from_secs(60),
                header_read_timeout: Duration::from_secs(15),
                tls_handshake_timeout: Duration::from_secs(10),
                max_connections: 10_000,
                max_connections_per_client: 512,
                max_tunnels: 10_000,
                max_h2_streams: 100,
            },
            audit_path: "audit.jsonl".into(),
        }
    }
}

trait Supernet {
    fn supernet_for(self, prefix: u8) -> IpNet;
}

impl Supernet for IpNet {
    fn supernet_for(self, prefix: u8) -> IpNet {
        IpNet::new(self.addr(), prefix)
            .map(|n| n.trunc())
            .unwrap_or(self)
    }
}

/// Parses `10MiB`, `64KiB`, `1GiB`, `500kB`, `65536`.
pub fn parse_size(v: &Value) -> Result<usize, String> {
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

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|_| format!("`{s}` is not a duration such as 10s, 5m or 1h"))
}

/// Parses a listen address: `127.0.0.1:3128`, `[::1]:3128`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not an address:port such as 127.0.0.1:3128 or [::1]:3128"))
}

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is not a CIDR such as 10.20.0.0/16"))
}

/// Checks the `ldap` section; problems come back as (key, message).
fn parse_ldap(l: RawLdap) -> Result<LdapSettings, Vec<(&'static str, String)>> {
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    if let Err(e) = check_ldap_url(&l.url) {
        problems.push(("url", format!("`url`: {e}")));
    }
    match (&l.bind_dn, &l.bind_password_file) {
        (Some(_), None) => problems.push((
            "bind_password_file",
            "`bind_dn` is set but `bind_password_file` is not: give the file holding the service account's password".into(),
        )),
        (None, Some(_)) => problems.push((
            "bind_dn",
            "`bind_password_file` is set but `bind_dn` is not: give the service account's DN".into(),
        )),
        _ => {}
    }
    if l.user_base.trim().is_empty() {
        problems.push(("user_base", "`user_base` is empty: give the DN to search for users under, e.g. DC=council,DC=example".into()));
    }
    let user_filter = l
        .user_filter
        .unwrap_or_else(|| "(sAMAccountName={user})".to_string());
    if !user_filter.contains("{user}") {
        problems.push(("user_filter", format!("`user_filter`: `{user_filter}` does not contain {{user}}, so it cannot find a particular user")));
    } else if !(user_filter.starts_with('(') && user_filter.ends_with(')')) {
        problems.push(("user_filter", format!("`user_filter`: `{user_filter}` is not an LDAP filter in parentheses, such as (sAMAccountName={{user}})")));
    }
    if let Some(g) = &l.group_filter {
        if !(g.contains("{dn}") || g.contains("{user}")) {
            problems.push(("group_filter", format!("`group_filter`: `{g}` contains neither {{dn}} nor {{user}}, so it would give every user the same groups")));
        } else if !(g.starts_with('(') && g.ends_with(')')) {
            problems.push(("group_filter", format!("`group_filter`: `{g}` is not an LDAP filter in parentheses, such as (member={{dn}})")));
        }
    }
    let groups_from = match (l.groups_from, &l.group_filter) {
        (Some(a), _) if a.trim().is_empty() => {
            problems.push((
                "groups_from",
                "`groups_from` is empty: name the attribute, e.g. memberOf".into(),
            ));
            None
        }
        (Some(a), _) => Some(a.trim().to_string()),
        (None, Some(_)) => None,
        (None, None) => Some("memberOf".to_string()),
    };
    let group_name = l.group_name.unwrap_or_else(|| "cn".to_string());
    let cache_for = match l.cache_for {
        None => Duration::from_secs(300),
        Some(t) => match parse_duration(&t) {
            Ok(d) => d,
            Err(e) => {
                problems.push(("cache_for", format!("`cache_for`: {e}")));
                Duration::from_secs(300)
            }
        },
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(LdapSettings {
        url: l.url.trim().to_string(),
        bind_dn: l.bind_dn,
        bind_password_file: l.bind_password_file.map(PathBuf::from),
        user_base: l.user_base,
        user_filter,
        groups_from,
        group_filter: l.group_filter,
        group_name,
        cache_for,
        verify_basic_passwords: l.verify_basic_passwords.unwrap_or(false),
    })
}

/// `ldaps://` anywhere; plain `ldap://` only to a loopback address, since it
/// would carry the service password (and with `verify_basic_passwords`, users'
/// passwords) in the clear.
pub fn check_ldap_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url.trim())
        .map_err(|_| format!("`{url}` is not a URL such as ldaps://dc1.council.example"))?;
    let host = match parsed.host() {
        Some(h) => h,
        None => return Err(format!("`{url}` names no host")),
    };
    if !parsed.path().is_empty() && parsed.path() != "/" {
        return Err(format!(
            "`{url}`: give the base DN as `user_base`, not in the URL"
        ));
    }
    match parsed.scheme() {
        "ldaps" => Ok(()),
        "ldap" => {
            let loopback = match host {
                // `ldap:` is not a special scheme: the url crate leaves IPv4
                // addresses as names.
                url::Host::Domain(d) => {
                    d.eq_ignore_ascii_case("localhost")
                        || d.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
                }
                url::Host::Ipv4(ip) => ip.is_loopback(),
                url::Host::Ipv6(ip) => ip.is_loopback(),
            };
            if loopback {
                Ok(())
            } else {
                Err(format!("`{url}`: plain ldap:// would send passwords in the clear; use ldaps:// (port 636). ldap:// is allowed only to a loopback address"))
            }
        }
        other => Err(format!(
            "`{url}`: the scheme `{other}` is not supported; use ldaps://"
        )),
    }
}

impl Settings {
    /// Loads settings from YAML text (`file` names it in errors), collecting every error.
    pub fn from_yaml(file: &str, text: &str) -> Result<Settings, ConfigErrors> {
        let doc = YamlDoc::parse(file, text)?;
        let mut errors = Vec::new();
        let raw: RawSettings = match doc.typed(&doc.root, "", "the settings", &mut errors) {
            Some(r) => r,
            None => return Err(ConfigErrors(errors)),
        };
        let mut s = Settings::default();
        let mut err = |path: &str, msg: String| errors.push(doc.error_at(path, msg));

        if let Some(listen) = raw.listen {
            s.listen.clear();
            let list = listen.to_vec();
            for (i, l) in list.iter().enumerate() {
                let p = if list.len() == 1 {
                    "listen".to_string()
                } else {
                    index("listen", i)
                };
                match parse_listen(l) {
                    Ok(a) => s.listen.push(a),
                    Err(e) => err(&p, format!("`listen`: {e}")),
                }
            }
        }
        if let Some(a) = raw.admin_listen {
            match parse_listen(&a) {
                Ok(a) => s.admin_listen = Some(a),
                Err(e) => err("admin_listen", format!("`admin_listen`: {e}")),
            }
        }
        s.policy = raw.policy.map(PathBuf::from);
        if let Some(ca) = raw.ca {
            s.ca_cert = ca.cert.into();
            s.ca_key = ca.key.into();
        }
        if let Some(c) = raw.support_contact {
            s.support_contact = c;
        }
        if let Some(id) = raw.identity {
            let mut identity = IdentitySettings::default();
            if let Some(b) = id.basic {
                identity.basic = Some(BasicSettings {
                    realm: b.realm.unwrap_or_else(|| "socialgate".into()),
                    htpasswd: b.htpasswd.into(),
                });
            }
            identity.group_members = id.group_members.into_iter().collect();
            for (i, n) in id.networks.into_iter().enumerate() {
                let p = index("identity.networks", i);
                match parse_cidr(&n.cidr) {
                    Ok(cidr) => identity.networks.push(NetworkIdentity {
                        cidr,
                        user: n.user,
                        groups: n.groups,
                        challenge: n.challenge,
                    }),
                    Err(e) => err(&child(&p, "cidr"), format!("`cidr`: {e}")),
                }
            }
            if let Some(t) = id.trusted_header {
                let p = "identity.trusted_header";
                let user = http::HeaderName::from_bytes(t.user.as_bytes());
                let groups = t
                    .groups
                    .as_ref()
                    .map(|g| http::HeaderName::from_bytes(g.as_bytes()));
                let mut from = Vec::new();
                for (i, f) in t.from.iter().enumerate() {
                    match parse_cidr(f) {
                        Ok(n) => from.push(n),
                        Err(e) => err(&index(&child(p, "from"), i), format!("`from`: {e}")),
                    }
                }
                if from.is_empty() {
                    err(&child(p, "from"), "`from` must list the peers allowed to set the header; an empty list would trust no one".into());
                }
                match (user, groups) {
                    (Ok(user), None) => {
                        identity.trusted_header = Some(TrustedHeaderSettings {
                            user,
                            groups: None,
                            from,
                        })
                    }
                    (Ok(user), Some(Ok(g))) => {
                        identity.trusted_header = Some(TrustedHeaderSettings {
                            user,
                            groups: Some(g),
                            from,
                        })
                    }
                    _ => err(
                        p,
                        "`trusted_header`: `user` and `groups` must be header names".into(),
                    ),
                }
            }
            if let Some(k) = id.kerberos {
                let p = "identity.kerberos";
                if k.keytab.trim().is_empty() {
                    err(&child(p, "keytab"), "`keytab`: give the path of the service keytab (made with `ktpass` or `kadmin ktadd`)".into());
                }
                match k.principal.as_deref().map(str::trim) {
                    Some("") => err(&child(p, "principal"), "`principal` is empty; remove it to accept any service key in the keytab".into()),
                    Some(pr) if !pr.contains('/') => err(
                        &child(p, "principal"),
                        format!("`principal`: `{pr}` is not a service principal such as HTTP/proxy.council.example"),
                    ),
                    _ => {}
                }
                identity.kerberos = Some(KerberosSettings {
                    keytab: k.keytab.into(),
                    principal: k.principal.map(|p| p.trim().to_string()),
                });
            }
            if let Some(l) = id.ldap {
                match parse_ldap(l) {
                    Ok(l) => identity.ldap = Some(l),
                    Err(problems) => {
                        for (key, msg) in problems {
                            err(&child("identity.ldap", key), msg);
                        }
                    }
                }
            }
            s.identity = identity;
        }
        if let Some(u) = raw.upstream {
            s.upstream.extra_roots = u.extra_roots.into_iter().map(PathBuf::from).collect();
            for (host, ip) in u.resolve {
                match ip.parse::<IpAddr>() {
                    Ok(ip) => {
                        s.upstream
                            .resolve
                            .insert(host.trim_end_matches('.').to_ascii_lowercase(), ip);
                    }
                    Err(_) => err(
                        &child("upstream.resolve", &host),
                        format!("`resolve`: `{ip}` is not an IP address"),
                    ),
                }
            }
            for (i, d) in u.allow_destinations.iter().enumerate() {
                match parse_cidr(d) {
                    Ok(n) => s.upstream.allow_destinations.push(n),
                    Err(e) => err(
                        &index("upstream.allow_destinations", i),
                        format!("`allow_destinations`: {e}"),
                    ),
                }
            }
            if let Some(p) = u.allowed_ports {
                if p.is_empty() {
                    err(
                        "upstream.allowed_ports",
                        "`allowed_ports` is empty: nothing could be reached".into(),
                    );
                }
                s.upstream.allowed_ports = p;
            }
            if u.proxy.is_some() || !u.no_proxy.is_empty() {
                err("upstream.proxy", "`proxy`: chaining through a parent proxy is not available in this version yet; remove the key".into());
            }
            if let Some(t) = u.connect_timeout {
                match parse_duration(&t) {
                    Ok(d) => s.upstream.connect_timeout = d,
                    Err(e) => err(
                        "upstream.connect_timeout",
                        format!("`connect_timeout`: {e}"),
                    ),
                }
            }
            if let Some(t) = u.response_timeout {
                match parse_duration(&t) {
                    Ok(d) => s.upstream.response_timeout = d,
                    Err(e) => err(
                        "upstream.response_timeout",
                        format!("`response_timeout`: {e}"),
                    ),
                }
            }
        }
        if let Some(l) = raw.limits {
            let mut size = |v: Option<Value>, key: &str, target: &mut usize| {
                if let Some(v) = v {
                    match parse_size(&v) {
                        Ok(n) => *target = n,
                        Err(e) => err(&child("limits", key), format!("`{key}`: {e}")),
                    }
                }
            };
            size(
                l.max_header_bytes,
                "max_header_bytes",
                &mut s.limits.max_header_bytes,
            );
            size(
                l.max_scan_bytes,
                "max_scan_bytes",
                &mut s.limits.max_scan_bytes,
            );
            size(
                l.max_buffered_bytes,
                "max_buffered_bytes",
                &mut s.limits.max_buffered_bytes,
            );
            if s.limits.max_header_bytes < 8192 {
                err(
                    "limits.max_header_bytes",
                    "`max_header_bytes` must be at least 8192".into(),
                );
            }
            for (key, value, target) in [
                ("idle_timeout", l.idle_timeout, &mut s.limits.idle_timeout),
                (
                    "header_read_timeout",
                    l.header_read_timeout,
                    &mut s.limits.header_read_timeout,
                ),
                (
                    "tls_handshake_timeout",
                    l.tls_handshake_timeout,
                    &mut s.limits.tls_handshake_timeout,
                ),
            ] {
                if let Some(t) = value {
                    match parse_duration(&t) {
                        Ok(d) if !d.is_zero() => *target = d,
                        Ok(_) => err(
                            &child("limits", key),
                            format!("`{key}` must be longer than zero"),
                        ),
                        Err(e) => err(&child("limits", key), format!("`{key}`: {e}")),
                    }
                }
            }
            for (key, value, target) in [
                (
                    "max_connections",
                    l.max_connections,
                    &mut s.limits.max_connections,
                ),
                (
                    "max_connections_per_client",
                    l.max_connections_per_client,
                    &mut s.limits.max_connections_per_client,
                ),
                ("max_tunnels", l.max_tunnels, &mut s.limits.max_tunnels),
            ] {
                match value {
                    Some(0) => err(&child("limits", key), format!("`{key}` must be at least 1")),
                    Some(n) => *target = n,
                    None => {}
                }
            }
            if let Some(n) = l.max_h2_streams {
                s.limits.max_h2_streams = n.max(1);
            }
        }
        if let Some(a) = raw.audit {
            s.audit_path = a.path;
        }
        if errors.is_empty() {
            Ok(s)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Reads and parses a settings file.
    pub fn load(path: &std::path::Path) -> Result<Settings, ConfigErrors> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: name.clone(),
                line: 1,
                col: 1,
                message: format!("cannot read the settings: {e}"),
            }])
        })?;
        Settings::from_yaml(&name, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Settings::from_yaml("s.yaml", "").unwrap();
        assert_eq!(s.listen, vec!["127.0.0.1:3128".parse().unwrap()]);
        assert_eq!(s.limits.max_scan_bytes, 10 << 20);
        assert_eq!(s.identity.networks[0].cidr.to_string(), "127.0.0.0/8");
    }

    #[test]
    fn errors_have_positions() {
        let text = "listen: nowhere\nlimits:\n  max_scan_bytes: 10 parsecs\nupstreem: {}\n";
        let err = Settings::from_yaml("s.yaml", text).unwrap_err().to_string();
        assert!(
            err.contains(
                "s.yaml:4:1: unknown key `upstreem` in the settings; did you mean `upstream`?"
            ),
            "{err}"
        );
        let text = "listen: nowhere\nlimits:\n  max_scan_bytes: 10 parsecs\n";
        let err = Settings::from_yaml("s.yaml", text).unwrap_err().to_string();
        assert!(
            err.contains("s.yaml:1:9: `listen`: `nowhere` is not an address:port"),
            "{err}"
        );
        assert!(
            err.contains("s.yaml:3:19: `max_scan_bytes`: unknown size unit `parsecs`"),
            "{err}"
        );
    }

    #[test]
    fn kerberos_and_ldap() {
        // The example from DESIGN.md parses, with its defaults.
        let text = r#"
identity:
  kerberos:
    keytab: /etc/socialgate/http.keytab
    principal: HTTP/proxy.council.example
  ldap:
    url: ldaps://dc1.council.example
    bind_dn: "CN=svc-socialgate,OU=Service Accounts,DC=council,DC=example"
    bind_password_file: /run/secrets/ldap-password
    user_base: "DC=council,DC=example"
    user_filter: "(sAMAccountName={user})"
    groups_from: memberOf
    group_filter: "(member={dn})"
    group_name: cn
    cache_for: 5m
    verify_basic_passwords: false
"#;
        let s = Settings::from_yaml("s.yaml", text).unwrap();
        let k = s.identity.kerberos.unwrap();
        assert_eq!(k.principal.as_deref(), Some("HTTP/proxy.council.example"));
        let l = s.identity.ldap.unwrap();
        assert_eq!(l.cache_for, Duration::from_secs(300));
        assert_eq!(l.groups_from.as_deref(), Some("memberOf"));
        // Defaults: memberOf, cn, 5 minutes, the AD user filter.
        let s = Settings::from_yaml(
            "s.yaml",
            "identity:\n  ldap: { url: \"ldaps://dc1\", user_base: \"DC=x\" }\n",
        )
        .unwrap();
        let l = s.identity.ldap.unwrap();
        assert_eq!(
            (
                l.user_filter.as_str(),
                l.groups_from.as_deref(),
                l.group_name.as_str()
            ),
            ("(sAMAccountName={user})", Some("memberOf"), "cn")
        );
        assert!(!l.verify_basic_passwords);
        // Errors for people, at their keys.
        let text = "identity:\n  ldap:\n    url: ldaps://dc1\n    user_base: x\n    bind_dn: cn=svc\n    user_filter: (uid=alice)\n    cache_for: soon\n  kerberos: { keytab: k, principal: proxy }\n";
        let err = Settings::from_yaml("s.yaml", text).unwrap_err().to_string();
        assert!(err.contains("`bind_password_file` is not"), "{err}");
        assert!(err.contains("s.yaml:6:18: `user_filter`"), "{err}");
        assert!(err.contains("s.yaml:7:16: `cache_for`"), "{err}");
        assert!(err.contains("is not a service principal"), "{err}");
        // No kerberos or ldap: nothing new.
        let s = Settings::from_yaml("s.yaml", "identity: {}\n").unwrap();
        assert!(s.identity.kerberos.is_none() && s.identity.ldap.is_none());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&Value::from("10MiB")), Ok(10 << 20));
        assert_eq!(parse_size(&Value::from(65536u64)), Ok(65536));
        assert!(parse_size(&Value::from("ten")).is_err());
    }
}
