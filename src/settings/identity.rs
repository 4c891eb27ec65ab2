//! The `identity:` section: who a client is (Basic passwords, source networks,
//! a trusted header from an authenticating proxy, Kerberos) and which groups
//! they are in (`group_members`, and the directory of `identity.ldap`, parsed
//! in `settings/ldap.rs`).
//!
//! Limits: only the text is checked (CIDRs, header names, a keytab path and a
//! service principal's shape); files and services are checked by `socialgate
//! check --settings`. A present `identity:` replaces the built-in identity
//! (loopback clients as `local`) entirely. Called by
//! [`super::Settings::from_yaml`]; `identity::IdentityResolver` reads
//! [`IdentitySettings`].

use std::collections::HashMap;
use std::path::PathBuf;

use indexmap::IndexMap;
use ipnet::IpNet;
use serde::Deserialize;

use super::ldap::{parse_ldap, LdapSettings, RawLdap};
use super::problems::Problems;
use super::values::parse_cidr;
use crate::yaml_source::{child, index};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
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

/// Parses `identity:`, reporting into `problems`.
pub(super) fn parse(id: RawIdentity, problems: &mut Problems<'_>) -> IdentitySettings {
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
            Err(e) => problems.at(&child(&p, "cidr"), format!("`cidr`: {e}")),
        }
    }
    if let Some(t) = id.trusted_header {
        identity.trusted_header = parse_trusted_header(t, problems);
    }
    if let Some(k) = id.kerberos {
        identity.kerberos = Some(parse_kerberos(k, problems));
    }
    if let Some(l) = id.ldap {
        match parse_ldap(l) {
            Ok(l) => identity.ldap = Some(l),
            Err(found) => {
                for (key, msg) in found {
                    problems.at(&child("identity.ldap", key), msg);
                }
            }
        }
    }
    identity
}

fn parse_trusted_header(
    t: RawTrustedHeader,
    problems: &mut Problems<'_>,
) -> Option<TrustedHeaderSettings> {
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
            Err(e) => problems.at(&index(&child(p, "from"), i), format!("`from`: {e}")),
        }
    }
    if from.is_empty() {
        problems.at(&child(p, "from"), "`from` must list the peers allowed to set the header; an empty list would trust no one".into());
    }
    match (user, groups) {
        (Ok(user), None) => Some(TrustedHeaderSettings {
            user,
            groups: None,
            from,
        }),
        (Ok(user), Some(Ok(g))) => Some(TrustedHeaderSettings {
            user,
            groups: Some(g),
            from,
        }),
        _ => {
            problems.at(
                p,
                "`trusted_header`: `user` and `groups` must be header names".into(),
            );
            None
        }
    }
}

fn parse_kerberos(k: RawKerberos, problems: &mut Problems<'_>) -> KerberosSettings {
    let p = "identity.kerberos";
    if k.keytab.trim().is_empty() {
        problems.at(
            &child(p, "keytab"),
            "`keytab`: give the path of the service keytab (made with `ktpass` or `kadmin ktadd`)"
                .into(),
        );
    }
    match k.principal.as_deref().map(str::trim) {
        Some("") => problems.at(
            &child(p, "principal"),
            "`principal` is empty; remove it to accept any service key in the keytab".into(),
        ),
        Some(pr) if !pr.contains('/') => problems.at(
            &child(p, "principal"),
            format!(
                "`principal`: `{pr}` is not a service principal such as HTTP/proxy.council.example"
            ),
        ),
        _ => {}
    }
    KerberosSettings {
        keytab: k.keytab.into(),
        principal: k.principal.map(|p| p.trim().to_string()),
    }
}
