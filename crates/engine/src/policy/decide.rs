//! The pure decision: facts in, a decision with its reason out.
//!
//! Rules are tried in order; the first that matches decides. A rule with
//! `enforce: false` never decides: it is recorded as a dry run and evaluation goes
//! on. A request that no rule matches is denied by the implicit rule
//! `default-deny`. A rule with `dlp:` never allows what cannot be scanned: a
//! `connect` tunnel. (A WebSocket upgrade under it may be allowed: the gateway
//! scans each message the client sends.) A rule with `accounts:` matches only
//! requests made as such a social account: [`Policy::account_of`] places the
//! account the site's `account:` reads (or the caller gives) in the policy's
//! sets (see `policy::accounts`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::accounts::{AccountClass, AccountFact, AccountSeen};
use super::activity::{classify_matched, Classified, MatcherRef};
use super::{Action, ActivityId, Policy, Rule, ACTIVITY_CONNECT, ACTIVITY_READ, ACTIVITY_WRITE};
use crate::view::RequestView;

/// The implicit last rule.
pub use super::raw::DEFAULT_DENY;

/// Everything `decide` reads. The clock is a fact too: `None` makes every `when`
/// false (as in a policy test without `at:`).
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub request: RequestView<'a>,
    pub at: Option<DateTime<Utc>>,
    /// The social account, when the caller knows it; by default it is read
    /// from the request by the site's `account:`.
    pub account: AccountFact<'a>,
}

/// A dry-run rule that matched: "would <action> by <rule>".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DryRun {
    pub rule: String,
    pub action: &'static str,
}

/// The outcome of `decide`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub rule: String,
    /// The site's name, or `unlisted`.
    pub site: String,
    pub activity: String,
    pub reason: String,
    pub dry_run: Vec<DryRun>,
    /// The user's roles, in policy order.
    pub roles: Vec<String>,
    /// The DLP profile of the deciding rule.
    pub dlp: Option<String>,
    /// For `warn`: how long an acknowledgement lasts, and the rule's message.
    pub warn_for: Option<Duration>,
    pub message: Option<String>,
    /// Which catalogue matcher named the activity (audit `matched`, drift metrics).
    pub matched: Matched,
    /// The social account the request is made as (set members only by id).
    pub account: AccountSeen,
}

/// Which matcher of a listed site named a request's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matched {
    /// Not classified on a listed site: an unlisted host, a tunnel, a request
    /// refused before classification, or one decided before its body was read
    /// (its activity could not be told). Counted by no drift metric.
    #[default]
    Unclassified,
    /// Site `site` (its index in [`Policy::sites`]) named it by no matcher: the
    /// fallback `read` or `write`.
    Fallback { site: u32 },
    /// Named by this matcher of site `site`.
    Matcher { site: u32, by: MatcherRef },
}

impl Decision {
    /// The first role, for metric labels (`none` when the user holds none).
    pub fn first_role(&self) -> &str {
        self.roles.first().map(String::as_str).unwrap_or("none")
    }
}

impl Policy {
    /// Decides `facts`, with the `reason` worded. Pure.
    pub fn decide(&self, facts: &Facts<'_>) -> Decision {
        self.decide_worded(facts, true)
    }

    /// [`Policy::decide`] without wording the `reason`, which only `explain` and
    /// policy tests show: the proxy's per-request path (one formatted string less
    /// per request). Everything else is identical.
    pub fn decide_unworded(&self, facts: &Facts<'_>) -> Decision {
        self.decide_worded(facts, false)
    }

    /// Headers first: for a request to a site whose activities look into the
    /// body, decided before the body is read. `facts.request` is the view
    /// without the body. Returns the (unworded) decision when it cannot depend on
    /// the body: every activity the body could give this request on its site
    /// (the site's activities, and the `read` / `write` fallbacks) is denied for
    /// this user at this time (by an enforced rule or `default-deny`); `None`
    /// when some could be allowed or warned: then the body must be read. Pure.
    pub fn decide_before_body(&self, facts: &Facts<'_>) -> Option<Decision> {
        let req = &facts.request;
        if req.connect {
            return None;
        }
        let site_index = req.host.as_domain().and_then(|d| self.hosts.lookup(d))?;
        let site = self.sites.get(site_index as usize)?;
        let mask = self.role_mask(facts.user, facts.groups);
        let (account, _) = self.account_of(Some(site_index), facts.account, req.headers);
        let candidates = [ACTIVITY_READ, ACTIVITY_WRITE]
            .into_iter()
            .chain(site.activities.iter().map(|(id, _)| *id));
        for activity in candidates {
            let deciding = self.rules.iter().find(|rule| {
                rule.enforce
                    && self.rule_matches(rule, mask, Some(site_index), activity, account, facts.at)
            });
            if deciding.is_some_and(|rule| rule.action != Action::Deny) {
                return None;
            }
        }
        // Classified without the body: which matcher named it is not known.
        let mut decision = self.decide_unworded(facts);
        decision.matched = Matched::Unclassified;
        Some(decision)
    }

    /// Decides `facts` as the activity `activity` (already named, e.g. taken
    /// from an audit record by `replay`), without classifying the request again
    /// (`matched` is then unclassified). Everything else as [`Policy::decide`].
    /// Pure.
    pub fn decide_activity(&self, facts: &Facts<'_>, activity: ActivityId, word: bool) -> Decision {
        self.decide_as(facts, word, Some(activity))
    }

    fn decide_worded(&self, facts: &Facts<'_>, word: bool) -> Decision {
        self.decide_as(facts, word, None)
    }

    /// [`Policy::decide`], classifying the request unless `activity` is given.
    fn decide_as(&self, facts: &Facts<'_>, word: bool, activity: Option<ActivityId>) -> Decision {
        let req = &facts.request;
        let site_index = req.host.as_domain().and_then(|d| self.hosts.lookup(d));
        let decision = self.decide_on(facts, site_index, word, activity);
        if site_index.is_some() || req.connect || decision.action == Action::Deny {
            return decision;
        }
        // A host of no site, on the API paths of a site the policy opted in
        // (`api_path_sites`): that site's denial applies too; nothing else of
        // it does, so recognition never allows more (see `policy::api_paths`).
        let Some(api_site) = self.api_site_for(&req.path) else {
            return decision;
        };
        let mut as_site = self.decide_on(facts, Some(api_site), word, activity);
        if as_site.action != Action::Deny {
            return decision;
        }
        if word {
            as_site.reason = format!(
                "{} (recognised as site `{}` by its API path `{}` on {}, a host of no site: that site's denial applies)",
                as_site.reason,
                as_site.site,
                req.path,
                req.host.as_domain().unwrap_or("an address")
            );
        }
        as_site
    }

    /// The decision of `facts` as a request to the site `site_index` (`None`:
    /// a host of no site), as the activity `forced` when given.
    fn decide_on(
        &self,
        facts: &Facts<'_>,
        site_index: Option<u32>,
        word: bool,
        forced: Option<ActivityId>,
    ) -> Decision {
        let req = &facts.request;
        let site = site_index.and_then(|i| self.sites.get(i as usize));
        let (activity, matched) = if req.connect {
            (ACTIVITY_CONNECT, Matched::Unclassified)
        } else if let Some(activity) = forced {
            (activity, Matched::Unclassified)
        } else {
            let Classified { activity, matcher } = classify_matched(site, req);
            let matched = match (site_index, matcher) {
                (Some(site), Some(by)) => Matched::Matcher { site, by },
                (Some(site), None) => Matched::Fallback { site },
                (None, _) => Matched::Unclassified,
            };
            (activity, matched)
        };
        let mask = self.role_mask(facts.user, facts.groups);
        let (account, account_seen) = self.account_of(site_index, facts.account, req.headers);
        let roles = self.role_names(mask);
        let site_name = site
            .map(|s| s.name.clone())
            .unwrap_or_else(|| "unlisted".into());
        let activity_name = self.activity_name(activity).to_string();

        let mut dry_run = Vec::new();
        for rule in &self.rules {
            if !self.rule_matches(rule, mask, site_index, activity, account, facts.at) {
                continue;
            }
            if !rule.enforce {
                dry_run.push(DryRun {
                    rule: rule.name.clone(),
                    action: rule.action.as_str(),
                });
                continue;
            }
            let unscannable =
                rule.dlp.is_some() && rule.action != Action::Deny && activity == ACTIVITY_CONNECT;
            let (action, reason) = if !word {
                (
                    if unscannable {
                        Action::Deny
                    } else {
                        rule.action
                    },
                    String::new(),
                )
            } else if unscannable {
                (
                    Action::Deny,
                    format!(
                        "rule `{}` scans content (dlp: {}), and a tunnel cannot be scanned",
                        rule.name,
                        rule.dlp.as_deref().unwrap_or(""),
                    ),
                )
            } else {
                (
                    rule.action,
                    format!(
                        "rule `{}` matched: {} {} on {} by {}",
                        rule.name,
                        rule.action.as_str(),
                        activity_name,
                        site_name,
                        describe_who(facts.user, &roles)
                    ),
                )
            };
            return Decision {
                action,
                rule: rule.name.clone(),
                site: site_name,
                activity: activity_name,
                reason,
                dry_run,
                roles,
                dlp: rule.dlp.clone(),
                warn_for: (action == Action::Warn).then_some(rule.warn_for),
                message: rule.message.clone(),
                matched,
                account: account_seen,
            };
        }
        let reason = if word {
            format!(
                "no rule allows {} on {} for {}, so it is denied",
                activity_name,
                site_name,
                describe_who(facts.user, &roles)
            )
        } else {
            String::new()
        };
        Decision {
            action: Action::Deny,
            rule: DEFAULT_DENY.into(),
            site: site_name,
            activity: activity_name,
            reason,
            dry_run,
            roles,
            dlp: None,
            warn_for: None,
            message: None,
            matched,
            account: account_seen,
        }
    }

    /// The audit field `matched`: `site/activity#N` (N the matcher's 0-based
    /// index in file order within that activity of that site), empty otherwise.
    pub fn matched_label(&self, matched: Matched) -> String {
        let Matched::Matcher { site, by } = matched else {
            return String::new();
        };
        let Some(site) = self.sites.get(site as usize) else {
            return String::new();
        };
        let Some((activity, _)) = site.activities.get(by.slot as usize) else {
            return String::new();
        };
        format!(
            "{}/{}#{}",
            site.name,
            self.activity_name(*activity),
            by.index
        )
    }

    fn rule_matches(
        &self,
        rule: &Rule,
        mask: u128,
        site: Option<u32>,
        activity: ActivityId,
        account: AccountClass,
        at: Option<DateTime<Utc>>,
    ) -> bool {
        if let Some(roles) = rule.roles {
            if roles & mask == 0 {
                return false;
            }
        }
        let s = &rule.sites;
        let site_ok = s.any
            || match site {
                Some(id) => s.listed || s.ids.contains(&id),
                None => s.unlisted,
            };
        if !site_ok {
            return false;
        }
        let a = &rule.activities;
        let activity_ok = a.any
            || a.ids.contains(&activity)
            || (activity == ACTIVITY_READ && a.read_kind)
            || (activity != ACTIVITY_READ && activity != ACTIVITY_CONNECT && a.write_kind);
        if !activity_ok {
            return false;
        }
        if let Some(sel) = &rule.accounts {
            if !sel.matches(account) {
                return false;
            }
        }
        if let Some(w) = &rule.when {
            match at {
                Some(at) if w.contains(at, self.timezone) => {}
                _ => return false,
            }
        }
        true
    }
}

impl Policy {
    /// Where the account of a request to site `site` falls, and how the audit
    /// names it. Pure.
    pub fn account_of(
        &self,
        site: Option<u32>,
        fact: AccountFact<'_>,
        headers: &http::HeaderMap,
    ) -> (AccountClass, AccountSeen) {
        let Some(site_id) = site else {
            return (AccountClass::Unknown, AccountSeen::Unknown);
        };
        let id = match fact {
            AccountFact::Unknown => return (AccountClass::Unknown, AccountSeen::Unknown),
            AccountFact::Other => return (AccountClass::Other, AccountSeen::Other),
            AccountFact::Id(id) => id.to_string(),
            AccountFact::FromRequest => {
                let readers = self
                    .sites
                    .get(site_id as usize)
                    .map_or(&[][..], |s| s.account.as_slice());
                match readers.iter().find_map(|r| r.read(headers)) {
                    Some(id) => id,
                    None => return (AccountClass::Unknown, AccountSeen::Unknown),
                }
            }
        };
        let mut mask = 0u64;
        let mut first = None;
        for (i, set) in self.account_sets.iter().enumerate() {
            if set
                .by_site
                .get(&site_id)
                .is_some_and(|ids| ids.contains(&id))
            {
                mask |= 1 << i;
                first.get_or_insert(set.name.clone());
            }
        }
        match first {
            Some(set) => (AccountClass::Member(mask), AccountSeen::Member { set, id }),
            None => (AccountClass::Other, AccountSeen::Other),
        }
    }
}

fn describe_who(user: &str, roles: &[String]) -> String {
    if roles.is_empty() {
        format!("user `{user}` (no role)")
    } else {
        format!("user `{user}` (roles: {})", roles.join(", "))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::normalize_host;
    use crate::policy::test_support::test_policy;
    use crate::view::RawRequest;

    const POLICY: &str = r#"
version: 1
sites:
  social:
    domains: [social.test]
    activities:
      message: [{ websocket: true, path: /chat }]
dlp:
  profiles:
    official: { detectors: [uk-nino], on_finding: block }
rules:
  - { name: scanned, sites: [social], action: allow, dlp: official }
"#;

    fn decide(policy: &Policy, view: RequestView<'_>) -> Decision {
        policy.decide(&Facts {
            user: "alice",
            groups: &[],
            request: view,
            at: None,
            account: AccountFact::FromRequest,
        })
    }

    #[test]
    fn a_dlp_rule_allows_a_websocket_and_never_a_tunnel() {
        let policy = test_policy(POLICY);
        let host = normalize_host("social.test").unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("upgrade", http::HeaderValue::from_static("websocket"));
        headers.insert("connection", http::HeaderValue::from_static("Upgrade"));
        let raw = RawRequest {
            method: "GET",
            host: &host,
            target: "/chat",
            headers: &headers,
            body: None,
            connect: false,
        };
        let ws = decide(&policy, RequestView::build(&policy, &raw).unwrap());
        assert_eq!(ws.action, Action::Allow, "{}", ws.reason);
        assert_eq!(ws.activity, "message");
        assert_eq!(ws.dlp.as_deref(), Some("official"));

        let none = http::HeaderMap::new();
        let tunnel = decide(&policy, RequestView::tunnel(&host, &none));
        assert_eq!(tunnel.action, Action::Deny);
        assert_eq!(tunnel.rule, "scanned");
        assert!(
            tunnel.reason.contains("a tunnel cannot be scanned"),
            "{}",
            tunnel.reason
        );
    }

    const BODY_POLICY: &str = r#"
version: 1
roles:
  press: { groups: [communications] }
  staff: { groups: [all-staff] }
sites:
  social:
    domains: [social.test]
    activities:
      post: [{ method: POST, path: /api/graphql, json: { "operationName": "^CreateTweet$" } }]
      like: [{ method: POST, path: /api/graphql, json: { "operationName": "^FavoriteTweet$" } }]
rules:
  - { name: press-posts, roles: [press], sites: [social], activities: [post], action: allow }
  - { name: staff-like, roles: [staff], sites: [social], activities: [like], action: warn }
  - { name: night-read, sites: [social], activities: [read], action: allow, when: { between: ["00:00", "00:01"] } }
  - { name: dry, sites: [social], activities: [write], action: allow, enforce: false }
  - { name: everyone-else, action: deny }
"#;

    fn before_body(policy: &Policy, groups: &[String]) -> Option<Decision> {
        let host = normalize_host("social.test").unwrap();
        let headers = http::HeaderMap::new();
        let raw = RawRequest {
            method: "POST",
            host: &host,
            target: "/api/graphql",
            headers: &headers,
            body: None,
            connect: false,
        };
        let view = RequestView::build(policy, &raw).unwrap();
        policy.decide_before_body(&Facts {
            user: "someone",
            groups,
            request: view,
            at: None,
            account: AccountFact::FromRequest,
        })
    }

    #[test]
    fn a_user_with_no_allowed_activity_on_the_site_is_decided_before_the_body() {
        let policy = test_policy(BODY_POLICY);
        let d = before_body(&policy, &["contractors".into()]).expect("decided on headers");
        assert_eq!(d.action, Action::Deny);
        assert_eq!(d.rule, "everyone-else");
        assert_eq!(d.site, "social");
        // A dry-run rule never makes the body worth reading.
        assert_eq!(d.dry_run.len(), 1);
    }

    #[test]
    fn an_activity_the_body_could_give_that_is_allowed_or_warned_needs_the_body() {
        let policy = test_policy(BODY_POLICY);
        assert!(before_body(&policy, &["communications".into()]).is_none());
        assert!(
            before_body(&policy, &["all-staff".into()]).is_none(),
            "a warn is not a denial"
        );
    }

    #[test]
    fn a_rule_outside_its_hours_does_not_need_the_body_and_a_request_elsewhere_is_left_alone() {
        let policy = test_policy(BODY_POLICY);
        // `night-read` matches only with a clock; without one it never allows.
        assert!(before_body(&policy, &[]).is_some());
        let host = normalize_host("elsewhere.test").unwrap();
        let headers = http::HeaderMap::new();
        let raw = RawRequest {
            method: "POST",
            host: &host,
            target: "/",
            headers: &headers,
            body: None,
            connect: false,
        };
        let view = RequestView::build(&policy, &raw).unwrap();
        let facts = Facts {
            user: "someone",
            groups: &[],
            request: view,
            at: None,
            account: AccountFact::FromRequest,
        };
        assert!(
            policy.decide_before_body(&facts).is_none(),
            "unlisted: no body matchers"
        );
    }

    const MATCHED_POLICY: &str = r#"
version: 1
sites:
  social:
    domains: [social.test]
    activities:
      read:
        - { method: POST, path: /api/feed }
      post:
        - { method: POST, path: /api/v1/posts }
        - { method: POST, path: /api/v2/posts }
      comment:
        - { method: POST, path_regex: '/api/v[12]/comments' }
rules:
  - { name: all, action: allow }
"#;

    fn matched(policy: &Policy, method: &str, host: &str, target: &str) -> (String, Matched) {
        let host = normalize_host(host).unwrap();
        let headers = http::HeaderMap::new();
        let raw = RawRequest {
            method,
            host: &host,
            target,
            headers: &headers,
            body: None,
            connect: false,
        };
        let d = decide(policy, RequestView::build(policy, &raw).unwrap());
        (policy.matched_label(d.matched), d.matched)
    }

    #[test]
    fn the_decision_names_the_matcher_by_its_index_within_the_activity() {
        let p = test_policy(MATCHED_POLICY);
        assert_eq!(
            matched(&p, "POST", "social.test", "/api/v2/posts").0,
            "social/post#1"
        );
        assert_eq!(
            matched(&p, "POST", "social.test", "/api/v1/posts").0,
            "social/post#0"
        );
        assert_eq!(
            matched(&p, "POST", "social.test", "/api/v2/comments").0,
            "social/comment#0"
        );
        assert_eq!(
            matched(&p, "POST", "social.test", "/api/feed").0,
            "social/read#0"
        );
        // The fallbacks: named by no matcher.
        let (label, m) = matched(&p, "POST", "social.test", "/api/v3/other");
        assert_eq!((label.as_str(), m), ("", Matched::Fallback { site: 0 }));
        let (label, m) = matched(&p, "GET", "social.test", "/feed");
        assert_eq!((label.as_str(), m), ("", Matched::Fallback { site: 0 }));
        // Unlisted hosts are not the catalogue's.
        let (label, m) = matched(&p, "POST", "other.test", "/api/v1/posts");
        assert_eq!((label.as_str(), m), ("", Matched::Unclassified));
    }
}
