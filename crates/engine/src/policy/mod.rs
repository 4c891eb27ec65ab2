//! The policy: who may do which activity on which site, and when.
//!
//! `raw` mirrors the YAML, `compile` builds matchers once (collecting every error
//! with `file:line:col`), `activity` names a request's activity, `accounts` reads
//! and places the social account it is made as, `decide` picks the first matching
//! rule, `replay` re-decides a request an audit record describes. Deciding is pure: no I/O, no clock, no globals; the caller
//! supplies the time. `selftest` compiles the policy's own `tests:` (the verdict
//! runs them). [`RequestView::build`] is defined here: the site of the host says
//! which query parameters override the method.

pub mod accounts;
pub mod activity;
pub mod api_paths;
pub mod compile;
pub mod decide;
pub mod raw;
pub mod replay;
pub mod selftest;
pub mod sources;
pub mod when;

use std::time::Duration;

use regex::Regex;
use rustc_hash::FxHashMap;

pub use crate::host;
pub use crate::host::{normalize_host, DomainPattern, HostTable, IpNetwork, NormalHost};
pub use crate::view::RequestView;
pub use accounts::{AccountFact, AccountSeen};
pub use compile::load_policy;
pub use decide::{Decision, DryRun, Facts, Matched};
pub use raw::{Action, OnFinding};

/// Index of an activity name in [`Policy::activity_names`].
pub type ActivityId = u16;

/// `read` is always id 0, `write` id 1, `connect` id 2.
pub const ACTIVITY_READ: ActivityId = 0;
pub const ACTIVITY_WRITE: ActivityId = 1;
pub const ACTIVITY_CONNECT: ActivityId = 2;

/// Activity names every policy knows, whatever its sites define.
pub const BUILTIN_ACTIVITIES: &[&str] = &[
    "read", "write", "connect", "post", "comment", "message", "upload", "react", "login",
];

/// A compiled, validated policy.
#[derive(Debug)]
pub struct Policy {
    /// The main file's path as given (for messages).
    pub source: String,
    /// Short hash over the policy and its included files.
    pub version: String,
    pub timezone: chrono_tz::Tz,
    /// Role names in definition order (bit i of a role mask is `roles[i]`).
    pub roles: Vec<String>,
    /// Built from the policy alone, read per request: FxHash (a request's
    /// group names only look up, never insert, so no input can crowd a bucket).
    pub(crate) role_by_group: FxHashMap<String, u128>,
    pub(crate) role_by_user: FxHashMap<String, u128>,
    pub sites: Vec<Site>,
    pub(crate) hosts: HostTable,
    pub activity_names: Vec<String>,
    pub rules: Vec<Rule>,
    /// `accounts:`: the named sets of social accounts, in policy order.
    pub account_sets: Vec<accounts::AccountSet>,
    pub dlp: DlpSettings,
    pub tests: Vec<selftest::PolicyTest>,
    /// Every file read to build this policy (the main file first), for the watcher.
    pub files: Vec<String>,
    /// Things that load but are almost certainly mistakes (a regex holding a
    /// control character), each at its `FILE:LINE:COL`; `check` prints them.
    pub warnings: Vec<crate::yaml_source::ConfigError>,
    /// The `include` patterns as resolved against the policy file, so the
    /// watcher can notice a file that a pattern matches from now on.
    pub include_patterns: Vec<String>,
    /// `api_path_sites:`: sites (indices) recognised by their `api_paths` on
    /// hosts of no site, in the order given.
    pub api_path_sites: Vec<u32>,
}

/// A site: its activities in file order.
#[derive(Debug)]
pub struct Site {
    pub name: String,
    /// `title:`: the name people know ("X (Twitter)"); `None`: pages use the name.
    pub title: Option<String>,
    pub domains: Vec<DomainPattern>,
    /// `networks:`: the address ranges the site publishes as its own.
    pub networks: Vec<IpNetwork>,
    pub intercept: bool,
    pub activities: Vec<(ActivityId, Vec<Matcher>)>,
    /// True when some matcher reads the body (`form` or `json`).
    pub needs_body: bool,
    /// Query parameters that name the method the request counts as
    /// (`method_override: { query: [...] }`).
    pub method_override_query: Vec<String>,
    /// `api_paths:`: the site's API paths, for hosts of no site (`api_paths`).
    pub api_paths: Vec<PathMatch>,
    /// `account:`: how the signed-in account is read, tried in order (none:
    /// always `unknown`).
    pub account: Vec<accounts::AccountReader>,
}

/// How a matcher tests the path.
#[derive(Debug)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

/// One compiled activity matcher; every part given must match.
#[derive(Debug, Default)]
pub struct Matcher {
    pub methods: Vec<String>,
    pub host: Option<DomainPattern>,
    pub path: Option<PathMatch>,
    pub path_regex: Option<Regex>,
    pub query: Vec<(String, Regex)>,
    pub form: Vec<(String, Regex)>,
    pub json: Vec<(Vec<String>, Regex)>,
    pub header: Vec<(http::HeaderName, Regex)>,
    pub websocket: Option<bool>,
}

/// Which sites a rule covers.
#[derive(Debug, Clone, Default)]
pub struct SiteSelector {
    pub any: bool,
    pub listed: bool,
    pub unlisted: bool,
    pub ids: Vec<u32>,
}

/// Which activities a rule covers.
#[derive(Debug, Clone, Default)]
pub struct ActivitySelector {
    /// `any`: every activity and `connect`.
    pub any: bool,
    /// `read`: every activity of kind read.
    pub read_kind: bool,
    /// `write`: every activity of kind write.
    pub write_kind: bool,
    pub ids: Vec<ActivityId>,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    /// `None`: any role (or none at all).
    pub roles: Option<u128>,
    pub sites: SiteSelector,
    pub activities: ActivitySelector,
    pub when: Option<when::TimeWindow>,
    pub action: Action,
    pub warn_for: Duration,
    pub message: Option<String>,
    /// `description:`: why the rule exists, shown on the block page.
    pub description: Option<String>,
    pub dlp: Option<String>,
    pub enforce: bool,
    /// `accounts:`: `None` matches every account.
    pub accounts: Option<accounts::AccountSelector>,
}

/// The `dlp:` section, compiled.
#[derive(Debug, Default)]
pub struct DlpSettings {
    pub profiles: indexmap::IndexMap<String, DlpProfile>,
    pub custom: Vec<CustomDetector>,
}

/// A custom detector as the policy defines it.
#[derive(Debug, Clone)]
pub struct CustomDetector {
    pub name: String,
    pub keywords: Vec<String>,
    pub pattern: Option<String>,
    pub near: Vec<String>,
    pub within: Option<usize>,
}

/// A DLP profile.
#[derive(Debug)]
pub struct DlpProfile {
    pub name: String,
    pub detectors: Vec<String>,
    pub on_finding: OnFinding,
    /// The compiled scanner (absent only in a policy that failed to load).
    pub scanner: Option<std::sync::Arc<crate::dlp::Scanner>>,
}

impl<'a> RequestView<'a> {
    /// Builds the view of `raw` as the `policy` will see it (see
    /// [`RequestView::from_raw`]): the site of the host gives the query
    /// parameters that override the method.
    pub fn build(
        policy: &Policy,
        raw: &crate::view::RawRequest<'a>,
    ) -> Result<RequestView<'a>, crate::view::ViewRefusal> {
        let names = policy
            .site_for(raw.host)
            .map_or(&[][..], |s| s.method_override_query.as_slice());
        RequestView::from_raw(raw, names)
    }
}

impl Policy {
    /// The name of an activity id.
    pub fn activity_name(&self, id: ActivityId) -> &str {
        self.activity_names
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("write")
    }

    /// The site a normalised host belongs to, if any.
    pub fn site_for(&self, host: &NormalHost) -> Option<&Site> {
        let domain = host.as_domain()?;
        self.hosts
            .lookup(domain)
            .and_then(|i| self.sites.get(i as usize))
    }

    /// The sites whose `networks:` hold `ip` (IPv4-mapped forms compared as
    /// IPv4), in policy order. More than one when sites share ranges (one
    /// company's several sites): the caller must treat that as ambiguous.
    pub fn sites_for_address(&self, ip: std::net::IpAddr) -> Vec<&Site> {
        self.sites
            .iter()
            .filter(|s| s.networks.iter().any(|n| n.contains(ip)))
            .collect()
    }

    /// The site called `name`.
    pub fn site_named(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.name == name)
    }

    /// A host that this policy places in `site`, for deciding a destination the
    /// gateway attributed to the site by its address: the first exact domain that
    /// belongs to the site, else a name under its first wildcard that does.
    /// `None` when no such name exists (then the caller refuses).
    pub fn host_of_site(&self, site: &Site) -> Option<NormalHost> {
        let index = self.sites.iter().position(|s| std::ptr::eq(s, site))? as u32;
        let candidates = site.domains.iter().map(|d| match d {
            DomainPattern::Exact(d) => d.clone(),
            DomainPattern::Wildcard(s) => format!("socialgate-by-address.{s}"),
        });
        for c in candidates {
            if self.hosts.lookup(&c) == Some(index) {
                return Some(NormalHost::Domain(c));
            }
        }
        None
    }

    /// The role mask of a user with these groups.
    pub fn role_mask(&self, user: &str, groups: &[String]) -> u128 {
        let mut mask = self.role_by_user.get(user).copied().unwrap_or(0);
        for g in groups {
            mask |= self.role_by_group.get(g).copied().unwrap_or(0);
        }
        mask
    }

    /// Role names for a mask, in the order the policy defines them.
    pub fn role_names(&self, mask: u128) -> Vec<String> {
        self.roles
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 128 && mask & (1u128 << i) != 0)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Domains of every site, for the PAC file.
    pub fn all_domains(&self) -> Vec<&DomainPattern> {
        self.sites.iter().flat_map(|s| s.domains.iter()).collect()
    }
}

/// Policies held in memory, for unit tests across the engine.
#[cfg(test)]
pub(crate) mod test_support {
    use super::sources::PolicyFiles;

    /// One policy file held in memory, for unit tests.
    pub(crate) struct OneFile(pub &'static str);

    impl PolicyFiles for OneFile {
        fn read(&self, _path: &str) -> Result<String, String> {
            Ok(self.0.to_string())
        }

        fn expand(&self, _pattern: &str) -> Result<Vec<String>, String> {
            Ok(Vec::new())
        }
    }

    /// Compiles a one-file policy for a unit test.
    #[allow(clippy::panic)]
    pub(crate) fn test_policy(yaml: &'static str) -> super::Policy {
        super::load_policy("test.yaml", &OneFile(yaml)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_view_applies_the_site_overrides_and_normalises() {
        use crate::view::{RawRequest, RequestView};
        let policy = test_policy(
            r#"
version: 1
sites:
  graph:
    domains: [graph.demo.test]
    method_override: { query: [method] }
    activities:
      post: [{ method: POST, path: /me/feed }]
rules:
  - { name: all, action: allow }
"#,
        );
        let host = super::normalize_host("graph.demo.test").unwrap();
        let other = super::normalize_host("other.test").unwrap();
        let h = http::HeaderMap::new();
        let raw = |host, target| RawRequest {
            method: "GET",
            host,
            target,
            headers: &h,
            body: None,
            connect: false,
        };
        let v = RequestView::build(&policy, &raw(&host, "/x/../me/feed?method=post")).unwrap();
        assert_eq!(v.method, "POST");
        assert_eq!(v.path, "/me/feed");
        assert_eq!(v.forward_target(), "/me/feed?method=post");
        let v = RequestView::build(&policy, &raw(&other, "/me/feed?method=post")).unwrap();
        assert_eq!(v.method, "GET");
        // Unlisted hosts are normalised and refused the same way (fail closed).
        assert!(RequestView::build(&policy, &raw(&other, "/a/..%2f")).is_err());
        assert!(RequestView::build(&policy, &raw(&host, "/a/..%2f")).is_err());
    }
}
