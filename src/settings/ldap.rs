//! The `identity.ldap:` section: where users' directory groups come from, and
//! the checks that keep a directory configuration safe (no plain `ldap://`
//! except to loopback, filters that name the user, a bind DN with its password
//! file).
//!
//! Limits: only the text is checked here; whether the directory answers is
//! `socialgate check --settings` (`identity::ldap::check_directory`). Called by
//! the `identity:` parser (`settings/identity.rs`); `identity::ldap` reads
//! [`LdapSettings`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::parse_duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLdap {
    url: String,
    bind_dn: Option<String>,
    bind_password_file: Option<String>,
    user_base: String,
    group_base: Option<String>,
    user_filter: Option<String>,
    groups_from: Option<String>,
    group_filter: Option<String>,
    group_name: Option<String>,
    cache_for: Option<String>,
    verify_basic_passwords: Option<bool>,
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
    /// Where `group_filter` searches run (`identity.ldap.group_base`; default
    /// `user_base`). OpenLDAP directories keep groups in `ou=groups`, beside
    /// `ou=people` rather than under it.
    pub group_base: String,
    /// Finds the user; `{user}` is replaced by the escaped user name.
    pub user_filter: String,
    /// An attribute on the user entry naming its groups by DN (`memberOf`).
    pub groups_from: Option<String>,
    /// A search for the user's groups under `group_base`; `{dn}` and `{user}` are
    /// replaced by the escaped user DN and name.
    pub group_filter: Option<String>,
    /// The attribute that names a group (`cn`).
    pub group_name: String,
    pub cache_for: Duration,
    /// Check Basic passwords by binding to the directory as the user.
    pub verify_basic_passwords: bool,
}

/// Checks the `ldap` section; problems come back as (key, message).
pub(super) fn parse_ldap(l: RawLdap) -> Result<LdapSettings, Vec<(&'static str, String)>> {
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
    if let Some(g) = &l.group_base {
        if g.trim().is_empty() {
            problems.push(("group_base", "`group_base` is empty: give the DN to search for groups under, e.g. ou=groups,dc=council,dc=example, or leave it out to search under `user_base`".into()));
        } else if l.group_filter.is_none() {
            problems.push(("group_base", "`group_base` is set but `group_filter` is not: only a group search uses it (`groups_from` reads groups from the user entry); add a group_filter such as (member={dn}), or remove group_base".into()));
        }
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
        group_base: l
            .group_base
            .map(|g| g.trim().to_string())
            .unwrap_or_else(|| l.user_base.clone()),
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
fn check_ldap_url(url: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use crate::settings::Settings;

    fn ldap(extra: &str) -> Result<super::LdapSettings, String> {
        let text = format!(
            "identity:\n  ldap:\n    url: ldaps://dc1\n    user_base: \"ou=people,dc=x\"\n{extra}"
        );
        Settings::from_yaml("s.yaml", &text)
            .map(|s| s.identity.ldap.unwrap_or_else(|| unreachable!()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn group_base_defaults_to_user_base_and_is_checked() {
        let l = ldap("    group_filter: \"(member={dn})\"\n").unwrap();
        assert_eq!(l.group_base, "ou=people,dc=x");
        let l = ldap("    group_filter: \"(member={dn})\"\n    group_base: \" ou=groups,dc=x \"\n")
            .unwrap();
        assert_eq!(l.group_base, "ou=groups,dc=x");
        let err = ldap("    group_filter: \"(member={dn})\"\n    group_base: \"\"\n").unwrap_err();
        assert!(err.contains("s.yaml:6:17: `group_base` is empty"), "{err}");
        // Only a group search uses it: alone it would silently do nothing.
        let err = ldap("    group_base: ou=groups,dc=x\n").unwrap_err();
        assert!(
            err.contains("`group_base` is set but `group_filter` is not"),
            "{err}"
        );
    }
}
