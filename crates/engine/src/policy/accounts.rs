//! Accounts: which social account a request is made as, not only who is signed
//! in to the gateway.
//!
//! Job: compile the policy's `accounts:` sets (per site lists of account ids),
//! a catalogue site's `account:` reader (`{ cookie: NAME, pattern: REGEX }`,
//! `{ header: NAME, jwt_claim: CLAIM }`, `{ header: NAME, pattern: ... }`, a
//! cookie holding a JWT; or a list of them, the first that reads an id wins)
//! and a rule's `accounts:` selector (set names, `other`,
//! `unknown`); and, per request, read the account ([`AccountReader::read`]) and
//! place it (`Policy::account_of`, in `decide`): a member of one or more sets, `other`
//! (read, in no set) or `unknown` (the site has no reader, or the request does
//! not carry exactly one readable value).
//!
//! Limits: pure. The id is what the browser sends to identify the session (a
//! cookie such as X's `twid`, an unverified JWT's claim): it is not the site's
//! authentication and a person can change it in their own browser, so a rule
//! that allows *because of* an account only narrows what a role may already do
//! (see docs/catalogue.md). A value given twice is `unknown` (fail closed).
//! The personal id of `other` is never kept in the decision: only set members'
//! ids are. At most 64 sets. Callers: `policy::compile`, `policy::decide`.

use std::collections::HashMap;

use base64::Engine as _;
use regex::Regex;
use serde::Deserialize;
use serde_yaml::Value;

use crate::yaml_source::{child, index, suggest, ConfigError, YamlDoc};

/// The most sets a policy may define (a rule's selector is a bit mask).
pub const MAX_SETS: usize = 64;

/// The longest id taken from a request; a longer value is `unknown`.
const MAX_ID_LEN: usize = 256;

/// `account:` in a site file, as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub cookie: Option<String>,
    pub header: Option<String>,
    /// A regex searched in the value; its first group (else the whole match) is the id.
    pub pattern: Option<String>,
    /// The value is a JWT (optionally after `Bearer `): this claim of its payload.
    pub jwt_claim: Option<String>,
}

/// Where the account is read.
#[derive(Debug, Clone)]
pub enum AccountSource {
    Cookie(String),
    Header(http::HeaderName),
}

/// How the id is taken from the value.
#[derive(Debug, Clone)]
pub enum Extract {
    Whole,
    Pattern(Regex),
    JwtClaim(String),
}

/// A site's compiled `account:`.
#[derive(Debug, Clone)]
pub struct AccountReader {
    pub source: AccountSource,
    pub extract: Extract,
}

/// One named set: the ids it holds, by site index.
#[derive(Debug, Clone)]
pub struct AccountSet {
    pub name: String,
    pub by_site: HashMap<u32, Vec<String>>,
}

/// A rule's `accounts:`.
#[derive(Debug, Clone, Default)]
pub struct AccountSelector {
    /// Bit i: set i of [`Policy::account_sets`].
    pub sets: u64,
    pub other: bool,
    pub unknown: bool,
}

/// The account as the caller knows it, instead of reading the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AccountFact<'a> {
    /// Read it from the request with the site's `account:` (the live gateway).
    #[default]
    FromRequest,
    /// This id (a policy test's `account:`, `explain --account`).
    Id(&'a str),
    /// Identified and in no set (a replayed `other`).
    Other,
    /// Not readable.
    Unknown,
}

/// Where a request's account falls, for rule matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountClass {
    Unknown,
    Other,
    /// Bit i: member of set i.
    Member(u64),
}

/// The account as the audit and the metrics see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccountSeen {
    #[default]
    Unknown,
    /// Identified, in no set: the id is not kept.
    Other,
    /// In a set: its first set (policy order) and the id.
    Member { set: String, id: String },
}

impl AccountSeen {
    /// The audit value: `SET:ID`, `other` or `unknown`.
    pub fn audit(&self) -> String {
        match self {
            AccountSeen::Unknown => "unknown".into(),
            AccountSeen::Other => "other".into(),
            AccountSeen::Member { set, id } => format!("{set}:{id}"),
        }
    }

    /// The metric label: the set name, `other` or `unknown`.
    pub fn label(&self) -> &str {
        match self {
            AccountSeen::Unknown => "unknown",
            AccountSeen::Other => "other",
            AccountSeen::Member { set, .. } => set,
        }
    }
}

impl AccountSelector {
    /// Does an account of this class match?
    pub fn matches(&self, class: AccountClass) -> bool {
        match class {
            AccountClass::Unknown => self.unknown,
            AccountClass::Other => self.other,
            AccountClass::Member(m) => m & self.sets != 0,
        }
    }
}

impl AccountReader {
    /// The account id `headers` carry, if exactly one readable value is there.
    pub fn read(&self, headers: &http::HeaderMap) -> Option<String> {
        let value = match &self.source {
            AccountSource::Header(name) => {
                let mut values = headers.get_all(name).iter();
                let v = values.next()?.to_str().ok()?.trim().to_string();
                if values.next().is_some() {
                    return None;
                }
                v
            }
            AccountSource::Cookie(name) => one_cookie(headers, name)?,
        };
        let id = match &self.extract {
            Extract::Whole => value,
            Extract::Pattern(re) => {
                let caps = re.captures(&value)?;
                caps.get(1).or_else(|| caps.get(0))?.as_str().to_string()
            }
            Extract::JwtClaim(claim) => jwt_claim(&value, claim)?,
        };
        (!id.is_empty() && id.len() <= MAX_ID_LEN).then_some(id)
    }
}

/// The value of the cookie `name` when the request sends it exactly once.
fn one_cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for header in headers.get_all(http::header::COOKIE) {
        let text = header.to_str().ok()?;
        for pair in text.split(';') {
            let Some((k, v)) = pair.trim().split_once('=') else {
                continue;
            };
            if k.trim() == name {
                if found.is_some() {
                    return None;
                }
                found = Some(v.trim().trim_matches('"').to_string());
            }
        }
    }
    found
}

/// The claim `claim` of a JWT's payload (not verified: identification only).
fn jwt_claim(value: &str, claim: &str) -> Option<String> {
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or(value)
        .trim();
    let mut parts = token.split('.');
    let (_, Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match doc.get(claim)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Compiles a site's `account:`.
pub(crate) fn compile_reader(
    doc: &YamlDoc,
    path: &str,
    site: &str,
    raw: &RawAccount,
    errors: &mut Vec<ConfigError>,
) -> Option<AccountReader> {
    let what = format!("site `{site}`: `account`");
    let source = match (&raw.cookie, &raw.header) {
        (Some(c), None) if !c.is_empty() && !c.contains([';', '=', ' ']) => {
            AccountSource::Cookie(c.clone())
        }
        (None, Some(h)) => match http::HeaderName::from_bytes(h.as_bytes()) {
            Ok(name) => AccountSource::Header(name),
            Err(_) => {
                errors.push(doc.error_at(
                    &child(path, "header"),
                    format!("{what}: `{h}` is not a header name"),
                ));
                return None;
            }
        },
        (Some(c), None) => {
            errors.push(doc.error_at(
                &child(path, "cookie"),
                format!("{what}: `{c}` is not a cookie name"),
            ));
            return None;
        }
        _ => {
            errors.push(doc.error_at(
                path,
                format!("{what} reads one `cookie: NAME` or one `header: NAME`"),
            ));
            return None;
        }
    };
    let extract = match (&raw.pattern, &raw.jwt_claim) {
        (None, None) => Extract::Whole,
        (Some(p), None) => match Regex::new(p) {
            Ok(re) if re.captures_len() <= 2 => Extract::Pattern(re),
            Ok(_) => {
                errors.push(doc.error_at(
                    &child(path, "pattern"),
                    format!("{what}: `pattern` may have one group `( )`, the id"),
                ));
                return None;
            }
            Err(e) => {
                errors.push(doc.error_at(
                    &child(path, "pattern"),
                    format!("{what}: `pattern` is not a regex: {e}"),
                ));
                return None;
            }
        },
        (None, Some(c)) if !c.is_empty() => Extract::JwtClaim(c.clone()),
        _ => {
            errors.push(doc.error_at(
                path,
                format!("{what}: give `pattern` or `jwt_claim`, not both"),
            ));
            return None;
        }
    };
    Some(AccountReader { source, extract })
}

/// Words a set may not be called: they mean something in a rule's `accounts:`.
const RESERVED: &[&str] = &["other", "unknown", "any"];

/// Compiles the top-level `accounts:` (set → site → ids); ids may be strings
/// or whole numbers. `site_index` names a site's index.
pub(crate) fn compile_sets(
    doc: &YamlDoc,
    value: &Value,
    site_names: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Vec<AccountSet> {
    let mut sets = Vec::new();
    let Value::Mapping(m) = value else {
        if !value.is_null() {
            errors.push(doc.error_at(
                "accounts",
                "`accounts` is a mapping: set name → site → list of account ids",
            ));
        }
        return sets;
    };
    for (k, v) in m {
        let Some(name) = k.as_str() else {
            errors.push(doc.error_at("accounts", "`accounts`: every set needs a name"));
            continue;
        };
        let sp = child("accounts", name);
        if name.is_empty() || name.contains([':', ' ']) {
            errors.push(doc.error_at_key(
                &sp,
                format!("account set `{name}`: a set name has no `:` or space (the audit writes SET:ID)"),
            ));
            continue;
        }
        if RESERVED.contains(&name) {
            errors.push(doc.error_at_key(
                &sp,
                format!(
                    "`{name}` cannot name an account set: it is a keyword of rules' `accounts`"
                ),
            ));
            continue;
        }
        let mut set = AccountSet {
            name: name.to_string(),
            by_site: HashMap::new(),
        };
        let Value::Mapping(by_site) = v else {
            errors.push(doc.error_at(
                &sp,
                format!("account set `{name}`: give site → list of ids, e.g. `twitter: [\"1450000000000000000\"]`"),
            ));
            continue;
        };
        for (site, ids) in by_site {
            let site = site.as_str().unwrap_or("");
            let p = child(&sp, site);
            let Some(site_id) = site_names.iter().position(|s| *s == site) else {
                let hint = suggest(site, site_names.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                errors.push(doc.error_at_key(
                    &p,
                    format!("account set `{name}`: unknown site `{site}`{hint}"),
                ));
                continue;
            };
            let list = match ids {
                Value::Sequence(s) => s.clone(),
                other => vec![other.clone()],
            };
            let mut out = Vec::new();
            for (i, id) in list.iter().enumerate() {
                match id {
                    Value::String(s) if !s.is_empty() && s.len() <= MAX_ID_LEN => {
                        out.push(s.clone())
                    }
                    Value::Number(n) if n.is_u64() || n.is_i64() => out.push(n.to_string()),
                    _ => errors.push(doc.error_at(
                        &index(&p, i),
                        format!("account set `{name}`, site `{site}`: an id is a string (quote long numbers: \"1450000000000000000\")"),
                    )),
                }
            }
            set.by_site.insert(site_id as u32, out);
        }
        sets.push(set);
    }
    if sets.len() > MAX_SETS {
        errors.push(doc.error_at("accounts", format!("`accounts`: at most {MAX_SETS} sets")));
    }
    sets
}

/// Compiles a rule's `accounts:` list.
pub(crate) fn compile_selector(
    doc: &YamlDoc,
    path: &str,
    what: &str,
    list: &[String],
    sets: &[AccountSet],
    errors: &mut Vec<ConfigError>,
) -> AccountSelector {
    let mut sel = AccountSelector::default();
    if list.is_empty() {
        errors.push(doc.error_at(
            path,
            format!("{what}: `accounts` is empty; leave it out to match every account"),
        ));
    }
    for (j, name) in list.iter().enumerate() {
        match name.as_str() {
            "other" => sel.other = true,
            "unknown" => sel.unknown = true,
            other => match sets.iter().position(|s| s.name == other) {
                Some(k) if k < MAX_SETS => sel.sets |= 1 << k,
                Some(_) => {}
                None => {
                    let known: Vec<&str> = sets
                        .iter()
                        .map(|s| s.name.as_str())
                        .chain(["other", "unknown"])
                        .collect();
                    let hint = suggest(other, known.iter().copied())
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    errors.push(doc.error_at(
                        &index(path, j),
                        format!("{what}: unknown account set `{other}`{hint} (a set of `accounts:`, `other` or `unknown`)"),
                    ));
                }
            },
        }
    }
    sel
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn cookie_reader(name: &str, pattern: Option<&str>) -> AccountReader {
        AccountReader {
            source: AccountSource::Cookie(name.into()),
            extract: pattern.map_or(Extract::Whole, |p| Extract::Pattern(Regex::new(p).unwrap())),
        }
    }

    #[test]
    fn a_cookie_is_read_once_and_a_cookie_given_twice_is_unknown() {
        let r = cookie_reader("twid", Some("u%3D([0-9]+)"));
        let h = headers(&[("cookie", "lang=en; twid=u%3D1450000000000000000; ct0=abc")]);
        assert_eq!(r.read(&h).as_deref(), Some("1450000000000000000"));
        // Split over two Cookie headers (as HTTP/2 may send them): still found.
        let h = headers(&[("cookie", "lang=en"), ("cookie", "twid=\"u%3D42\"")]);
        assert_eq!(r.read(&h).as_deref(), Some("42"));
        let h = headers(&[("cookie", "twid=u%3D1; twid=u%3D2")]);
        assert_eq!(r.read(&h), None, "ambiguous");
        let h = headers(&[("cookie", "xtwid=u%3D1")]);
        assert_eq!(r.read(&h), None);
        assert_eq!(r.read(&headers(&[("cookie", "twid=garbage")])), None);
        let whole = cookie_reader("c_user", None);
        assert_eq!(
            whole
                .read(&headers(&[("cookie", "c_user=100064123456789")]))
                .as_deref(),
            Some("100064123456789")
        );
    }

    #[test]
    fn a_jwt_claim_is_read_from_a_bearer_header() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"did:plc:council","n":7}"#);
        let token = format!("eyJhbGciOiJub25lIn0.{payload}.c2ln");
        let r = AccountReader {
            source: AccountSource::Header(http::header::AUTHORIZATION),
            extract: Extract::JwtClaim("sub".into()),
        };
        let h = headers(&[("authorization", &format!("Bearer {token}"))]);
        assert_eq!(r.read(&h).as_deref(), Some("did:plc:council"));
        let n = AccountReader {
            source: AccountSource::Header(http::header::AUTHORIZATION),
            extract: Extract::JwtClaim("n".into()),
        };
        assert_eq!(n.read(&h).as_deref(), Some("7"));
        assert_eq!(
            r.read(&headers(&[("authorization", "Bearer not-a-jwt")])),
            None
        );
        assert_eq!(r.read(&headers(&[])), None);
    }

    #[test]
    fn accounts_are_placed_in_sets_by_site_and_personal_ids_are_not_kept() {
        let policy = crate::policy::test_support::test_policy(
            r#"
version: 1
accounts:
  council-official: { social: ["111", 222] }
  campaigns: { social: ["222"] }
sites:
  social:
    domains: [social.test]
    account: { cookie: uid }
  other-site:
    domains: [other.test]
rules:
  - { name: official, accounts: [council-official], action: allow }
  - { name: all, action: deny }
"#,
        );
        let none = http::HeaderMap::new();
        let (class, seen) = policy.account_of(Some(0), AccountFact::Id("222"), &none);
        assert_eq!(class, AccountClass::Member(0b11));
        assert_eq!(seen.audit(), "council-official:222");
        assert_eq!(seen.label(), "council-official");
        let (class, seen) = policy.account_of(Some(0), AccountFact::Id("999"), &none);
        assert_eq!(class, AccountClass::Other);
        assert_eq!(seen.audit(), "other", "a personal id is never kept");
        // The same id on another site is not the set's.
        let (class, _) = policy.account_of(Some(1), AccountFact::Id("111"), &none);
        assert_eq!(class, AccountClass::Other);
        let h = headers(&[("cookie", "uid=111")]);
        let (class, _) = policy.account_of(Some(0), AccountFact::FromRequest, &h);
        assert_eq!(class, AccountClass::Member(0b01));
        let (class, _) = policy.account_of(Some(1), AccountFact::FromRequest, &h);
        assert_eq!(class, AccountClass::Unknown, "a site without `account:`");
    }

    #[test]
    fn ids_and_rules_a_site_can_never_see_are_warned_about() {
        let policy = crate::policy::test_support::test_policy(
            r#"
version: 1
accounts:
  council: { social: ["1"], forum: ["2"] }
sites:
  social:
    domains: [social.test]
    account: { cookie: uid }
  forum:
    domains: [forum.test]
rules:
  - { name: forum-as-council, sites: [forum], accounts: [council], action: allow }
  - { name: social-as-council, sites: [social], accounts: [council], action: allow }
  - { name: all, action: deny }
"#,
        );
        let w: Vec<String> = policy.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("account set `council`: site `forum` has no `account:` reader"),
            "{w:?}"
        );
        assert!(
            w[1].contains("rule `forum-as-council` names account sets"),
            "{w:?}"
        );
        assert!(
            w.iter()
                .all(|l| l.contains("can tell their account: social")),
            "{w:?}"
        );
    }

    #[test]
    fn mistakes_are_errors_with_their_place() {
        let text = r#"
version: 1
accounts:
  other: { social: ["1"] }
  council: { socail: ["1"] }
sites:
  social:
    domains: [social.test]
    account: { cookie: uid, header: x-uid }
rules:
  - { name: r, accounts: [councl], action: allow }
"#;
        let err =
            crate::policy::load_policy("test.yaml", &crate::policy::test_support::OneFile(text))
                .unwrap_err()
                .to_string();
        assert!(err.contains("`other` cannot name an account set"), "{err}");
        assert!(
            err.contains("unknown site `socail`; did you mean `social`?"),
            "{err}"
        );
        assert!(
            err.contains("reads one `cookie: NAME` or one `header: NAME`"),
            "{err}"
        );
        assert!(
            err.contains("unknown account set `councl`; did you mean `council`?"),
            "{err}"
        );
        assert!(err.contains("test.yaml:"), "{err}");
    }
}
