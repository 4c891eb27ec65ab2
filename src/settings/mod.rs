//! Gateway settings (`socialgate.yaml`): listeners, CA, identity sources, upstream,
//! limits, audit. Every key is optional and has a safe default; unknown keys are
//! errors with their position. `Settings::default()` is the built-in configuration
//! `socialgate run` uses when no file is given.
//!
//! Job: [`Settings::from_yaml`] deserialises the whole file into raw structs
//! through `crate::yaml_source` (so a wrong type or an unknown key is reported
//! at its `FILE:LINE:COL`, with "did you mean" for a misspelt key), then hands
//! each section to its own parser: `listen.rs` (`listen`, `admin_listen`),
//! `listen_tls.rs` (the HTTPS proxy port), `transparent.rs` (`listen_transparent`),
//! `identity.rs` (with `ldap.rs` for `identity.ldap`), `upstream.rs`,
//! `limits.rs`, `audit.rs`, `ca.rs`, `log.rs`, `pages.rs`; `values.rs` holds the value syntaxes they share and
//! `problems.rs` the list they report into.
//! Every section's problems are collected in file-section order before the
//! load fails, each at its key.
//!
//! Limits: a serde-level error (wrong type, unknown or missing key) stops the
//! load before the section parsers run, so it is reported alone. Called by
//! `socialgate run`, `check --settings`, `explain` and `scan` (the CLI), the
//! fuzz harness and the tests; the runtime and proxy read the result.

mod audit;
mod ca;
mod identity;
mod ldap;
mod limits;
mod listen;
mod listen_tls;
mod log;
mod pac;
mod pages;
mod problems;
mod transparent;
mod upstream;
mod values;
mod warn;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

use crate::policy::raw::OneOrMany;
use crate::yaml_source::{ConfigError, ConfigErrors, YamlDoc};
use problems::Problems;

pub use ca::{DEFAULT_CA_CERT, DEFAULT_CA_KEY};
pub use identity::{
    BasicSettings, IdentitySettings, KerberosSettings, NetworkIdentity, TrustedHeaderSettings,
};
pub use ldap::LdapSettings;
pub use limits::{Limits, DEFAULT_MAX_SCAN_BYTES};
pub use listen_tls::ListenTls;
pub use log::LogFormat;
pub use pages::PagesSettings;
pub use transparent::TransparentSettings;
pub use upstream::{NoProxy, ParentCredentials, ParentProxy, UpstreamSettings};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    listen: Option<OneOrMany<String>>,
    admin_listen: Option<String>,
    listen_tls: Option<listen_tls::RawListenTls>,
    policy: Option<String>,
    ca: Option<ca::RawCa>,
    log: Option<log::RawLog>,
    support_contact: Option<String>,
    instance: Option<String>,
    pac: Option<pac::RawPac>,
    listen_transparent: Option<transparent::RawTransparent>,
    warn: Option<warn::RawWarn>,
    identity: Option<identity::RawIdentity>,
    upstream: Option<upstream::RawUpstream>,
    limits: Option<limits::RawLimits>,
    audit: Option<audit::RawAudit>,
    pages: Option<pages::RawPages>,
}

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: Vec<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// `listen_tls`: the HTTPS proxy port, its certificate and key loaded.
    pub listen_tls: Option<ListenTls>,
    /// `listen_transparent`: ports for redirected connections (none by default).
    pub listen_transparent: TransparentSettings,
    /// `None`: the built-in policy (or `policies/default.yaml` when present).
    pub policy: Option<PathBuf>,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// Create the CA when both of its files are missing (`ca.create_if_missing`;
    /// true only on the built-in defaults). Otherwise missing files stop the start.
    pub ca_create_if_missing: bool,
    /// `log.format`: `text` (default) or `json`.
    pub log_format: LogFormat,
    pub support_contact: String,
    /// `instance`: this replica's name in the audit log and on the status page
    /// (default: the host name).
    pub instance: String,
    /// `pac.proxies`: the gateways the PAC file names, in order (`host:port`);
    /// empty: the first proxy listener.
    pub pac_proxies: Vec<String>,
    /// `warn.key_file`'s key: replicas sharing it honour each other's warn
    /// acknowledgements; `None`: a key made at start-up.
    pub warn_key: Option<warn::WarnKey>,
    pub identity: IdentitySettings,
    pub upstream: UpstreamSettings,
    pub limits: Limits,
    /// Audit log path; `-` for stdout.
    pub audit_path: String,
    /// `audit.syslog.url`: a receiver that gets every record as RFC 5424.
    pub audit_syslog: Option<crate::syslog::SyslogTarget>,
    /// `pages`: organisation, logo, wording and languages, the deferred notice.
    pub pages: PagesSettings,
}

impl Default for Settings {
    fn default() -> Self {
        let loopback = IpAddr::from([127, 0, 0, 0]);
        Settings {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 3128))],
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9128))),
            listen_tls: None,
            listen_transparent: TransparentSettings::default(),
            policy: None,
            ca_cert: PathBuf::from(DEFAULT_CA_CERT),
            ca_key: PathBuf::from(DEFAULT_CA_KEY),
            ca_create_if_missing: true,
            log_format: LogFormat::Text,
            support_contact: "your IT service desk".into(),
            instance: host_name(),
            pac_proxies: Vec::new(),
            warn_key: None,
            identity: IdentitySettings {
                networks: vec![NetworkIdentity {
                    cidr: IpNet::new(loopback, 8).unwrap_or(IpNet::from(loopback)),
                    user: "local".into(),
                    groups: vec!["all-staff".into()],
                    challenge: false,
                }],
                ..Default::default()
            },
            upstream: UpstreamSettings::default(),
            limits: Limits::default(),
            audit_path: "audit.jsonl".into(),
            audit_syslog: None,
            pages: PagesSettings::default(),
        }
    }
}

/// This machine's host name (the default `instance`), or `socialgate` when the
/// system gives none that is a valid instance name.
pub fn host_name() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().into_owned();
    if valid_instance(&name) {
        name
    } else {
        "socialgate".into()
    }
}

/// 1 to 64 of `[A-Za-z0-9._-]`: safe in a log line, a metric label, a file name.
fn valid_instance(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
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
        let mut problems = Problems::new(&doc);
        let mut s = Settings::default();
        if let Some(l) = raw.listen {
            s.listen = listen::parse_proxy(l, &mut problems);
        }
        if let Some(a) = raw.admin_listen {
            if let Some(a) = listen::parse_admin(&a, &mut problems) {
                s.admin_listen = Some(a);
            }
        }
        if let Some(t) = raw.listen_tls {
            s.listen_tls = listen_tls::parse(t, &mut problems);
        }
        s.policy = raw.policy.map(PathBuf::from);
        (s.ca_cert, s.ca_key, s.ca_create_if_missing) = ca::parse(raw.ca);
        if let Some(l) = raw.log {
            s.log_format = log::parse(l, &mut problems);
        }
        if let Some(c) = raw.support_contact {
            s.support_contact = c;
        }
        if let Some(w) = raw.warn {
            s.warn_key = warn::parse(w, &mut problems);
        }
        if let Some(p) = raw.pac {
            s.pac_proxies = pac::parse(p, &mut problems);
        }
        if let Some(t) = raw.listen_transparent {
            s.listen_transparent = transparent::parse(t, &mut problems);
        }
        if let Some(i) = raw.instance {
            if valid_instance(&i) {
                s.instance = i;
            } else {
                problems.at(
                    "instance",
                    format!("`instance`: `{i}` is not a replica name: use 1 to 64 letters, digits, `.`, `-` or `_` (e.g. gw1)"),
                );
            }
        }
        if let Some(id) = raw.identity {
            s.identity = identity::parse(id, &mut problems);
        }
        if let Some(u) = raw.upstream {
            upstream::apply(u, &mut s.upstream, &mut problems);
        }
        if let Some(l) = raw.limits {
            limits::apply(l, &mut s.limits, &mut problems);
        }
        if let Some(a) = raw.audit {
            let (path, syslog) = audit::parse(a, &mut problems);
            if let Some(p) = path {
                s.audit_path = p;
            }
            s.audit_syslog = syslog;
        }
        if let Some(p) = raw.pages {
            s.pages = pages::parse(p, &mut problems);
        }
        problems.into_result(s)
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
    use std::time::Duration;

    #[test]
    fn defaults() {
        let s = Settings::from_yaml("s.yaml", "").unwrap();
        assert_eq!(s.listen, vec!["127.0.0.1:3128".parse().unwrap()]);
        assert_eq!(s.limits.max_scan_bytes, 10 << 20);
        assert_eq!(s.identity.networks[0].cidr.to_string(), "127.0.0.0/8");
    }

    #[test]
    fn pac_proxies() {
        let s = Settings::from_yaml(
            "s.yaml",
            "pac: { proxies: [\"gw1.council.example:3128\", \"10.0.0.7:3128\"] }\n",
        )
        .unwrap();
        assert_eq!(s.pac_proxies, ["gw1.council.example:3128", "10.0.0.7:3128"]);
        for bad in ["http://gw1:3128", "gw1", "gw1:3128/x", "user@gw1:3128"] {
            let err = Settings::from_yaml(
                "s.yaml",
                &format!("pac:\n  proxies: [\"ok:1\", \"{bad}\"]\n"),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("s.yaml:2:") && err.contains("`pac.proxies`") && err.contains(bad),
                "{bad}: {err}"
            );
        }
        assert!(Settings::from_yaml("s.yaml", "pac: { proxies: [] }\n").is_err());
    }

    #[test]
    fn instance() {
        assert!(!Settings::default().instance.is_empty());
        let s = Settings::from_yaml("s.yaml", "instance: gw-2.a_b\n").unwrap();
        assert_eq!(s.instance, "gw-2.a_b");
        let err = Settings::from_yaml("s.yaml", "instance: \"gw 1\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.yaml:1:") && err.contains("`instance`"),
            "{err}"
        );
    }

    #[test]
    fn ca_and_log() {
        // Only the built-in defaults may create a CA; a file must say so.
        assert!(Settings::default().ca_create_if_missing);
        let s = Settings::from_yaml("s.yaml", "").unwrap();
        assert!(!s.ca_create_if_missing);
        assert_eq!(s.log_format, LogFormat::Text);
        let s = Settings::from_yaml(
            "s.yaml",
            "ca: { create_if_missing: true }\nlog: { format: json }\n",
        )
        .unwrap();
        assert!(s.ca_create_if_missing);
        assert_eq!(s.ca_key, PathBuf::from("certs/ca.key"));
        assert_eq!(s.log_format, LogFormat::Json);
        let err = Settings::from_yaml("s.yaml", "log:\n  format: yaml\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "s.yaml:2:11: `log.format`: unknown format `yaml`, expected `text` or `json`"
            ),
            "{err}"
        );
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
        // The documented example (docs/operations.md) parses, with its defaults.
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
}
