//! Raw policy types: serde mirrors of the YAML, version 1. No meaning is checked
//! here beyond shape; `compile.rs` turns these into matchers and reports every
//! semantic error with its position. Unknown keys are rejected everywhere.

use indexmap::IndexMap;

/// The name of the implicit last rule, which a policy may not reuse.
pub const DEFAULT_DENY: &str = "default-deny";
use serde::Deserialize;

/// A value given either as one item or as a list (`method: POST` or `[POST, PUT]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `roles.<name>`: a role is granted to groups and/or users.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
}

/// `sites.<name>`: domains, interception and named activities.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// The name people know the site by ("X (Twitter)"), shown on pages.
    pub title: Option<String>,
    pub domains: Vec<String>,
    /// Address ranges (CIDRs) the site publishes as its own: a tunnel to an
    /// address in them, by IP literal or by another name, is the site's.
    #[serde(default)]
    pub networks: Vec<String>,
    pub intercept: Option<bool>,
    #[serde(default)]
    pub activities: IndexMap<String, Vec<RawMatcher>>,
    /// Request signals the site reads as "count as this method".
    pub method_override: Option<RawMethodOverride>,
    /// Paths that are this site's API on any host (see `policy::api_paths`).
    #[serde(default)]
    pub api_paths: Vec<String>,
    /// How the signed-in account is read from a request.
    /// One reader, or a list tried in order (the first that reads an id wins).
    pub account: Option<OneOrMany<super::accounts::RawAccount>>,
}

/// `sites.<name>.method_override`: query parameters that, like the
/// `X-HTTP-Method-Override` header, make a request count as the method they name
/// (the Graph API's `GET /me/feed?method=post`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMethodOverride {
    #[serde(default)]
    pub query: Vec<String>,
}

/// One activity matcher: every key given must match.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMatcher {
    pub method: Option<OneOrMany<String>>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub path_regex: Option<String>,
    pub query: Option<IndexMap<String, String>>,
    pub form: Option<IndexMap<String, String>>,
    pub json: Option<IndexMap<String, String>>,
    pub header: Option<IndexMap<String, String>>,
    pub websocket: Option<bool>,
}

/// The `dlp:` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDlp {
    #[serde(default)]
    pub detectors: IndexMap<String, RawDetector>,
    #[serde(default)]
    pub profiles: IndexMap<String, RawProfile>,
}

/// A custom detector: keywords and/or a pattern, optionally near context words.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDetector {
    #[serde(default)]
    pub keywords: Vec<String>,
    pub pattern: Option<String>,
    #[serde(default)]
    pub near: Vec<String>,
    pub within: Option<usize>,
}

/// What a profile does with a finding.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnFinding {
    Block,
    Log,
}

impl OnFinding {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFinding::Block => "block",
            OnFinding::Log => "log",
        }
    }
}

/// A DLP profile: which detectors, and what a finding does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub detectors: Vec<String>,
    pub on_finding: OnFinding,
}

/// A rule's action.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
    Warn,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Warn => "warn",
        }
    }
}

/// `when:` on a rule.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    pub days: Option<OneOrMany<String>>,
    pub between: Option<Vec<String>>,
}

/// One rule of `rules:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: String,
    pub roles: Option<Vec<String>>,
    pub sites: Option<Vec<String>>,
    pub activities: Option<Vec<String>>,
    pub when: Option<RawWhen>,
    pub action: Action,
    pub warn_for: Option<String>,
    pub message: Option<String>,
    /// Why the rule exists, in words for the people it stops (the block page).
    pub description: Option<String>,
    pub dlp: Option<String>,
    pub enforce: Option<bool>,
    /// Account set names, `other`, `unknown`.
    pub accounts: Option<Vec<String>>,
}

/// What a policy test expects: an action, or a map of fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawExpect {
    Action(Action),
    Detailed(RawExpectDetailed),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpectDetailed {
    pub action: Action,
    pub rule: Option<String>,
    pub site: Option<String>,
    pub activity: Option<String>,
    pub dlp: Option<OneOrMany<String>>,
}

/// One test of `tests:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    pub name: String,
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub at: Option<String>,
    pub request: String,
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    pub body: Option<String>,
    /// The signed-in social account's id (`unknown`: none readable); without
    /// it, read from the test's headers by the site's `account:`.
    pub account: Option<String>,
    pub expect: RawExpect,
}
