//! Re-deciding a request the audit log recorded, under another policy (the
//! engine half of `socialgate replay`).
//!
//! Job: [`Policy::replay`] takes what an audit record holds ([`Recorded`]:
//! user, groups, method, host, path, time, the site and activity named then,
//! the DLP findings then) and returns the decision this policy would make, with
//! the reasons it can only be approximate ([`Approximation`]).
//!
//! The audit does not hold the query string, the headers or the body, so:
//!
//! - **Activity.** When this policy puts the host in the site the record names
//!   and knows the recorded activity, the recorded activity is used (it was
//!   named from the whole request). When a matcher of this policy that looks
//!   only at method and path names the request differently, that name is used
//!   and the record is [`Approximation::Activity`] (the catalogue changed, or
//!   the request overrode its method in a header). When the recorded activity
//!   cannot be used, the request is classified from method and path alone, and
//!   is approximate if a matcher that needs more (query, form, json, header,
//!   websocket, a method-override parameter) could have named it.
//! - **DLP.** Content cannot be scanned again. Under a deciding rule with a
//!   `dlp:` profile, the recorded findings are judged by this policy's profile
//!   (a recorded detector the profile blocks on denies); a record that had
//!   findings or a body is [`Approximation::Dlp`].
//! - **Groups.** A record without `groups` (written before the field existed)
//!   derives roles from the user alone: the caller marks it
//!   [`Approximation::Groups`].
//! - **Accounts.** A recorded `SET:ID` gives the id, placed in this policy's
//!   sets again; `other` stays `other` (a personal id is never recorded, so a set
//!   that gains it cannot be seen); a record without `account` is `unknown`
//!   ([`Approximation::Account`] where rules look at accounts).
//!
//! Limits: pure (no I/O, no clock: the record's time is the time). Records the
//! policy never decided (guard refusals, sign-in failures, acknowledgements)
//! are the caller's to skip. Callers: `socialgate replay` (`src/cli/replay.rs`).

use chrono::{DateTime, Utc};

use super::activity::classify;
use super::{
    AccountFact, Action, ActivityId, Decision, Facts, Policy, Site, ACTIVITY_CONNECT,
    ACTIVITY_READ, ACTIVITY_WRITE,
};
use crate::host::NormalHost;
use crate::view::{RawRequest, RequestView};

/// What an audit record says about a request that the policy decided.
#[derive(Debug, Clone)]
pub struct Recorded<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub method: &'a str,
    /// The host as recorded (normalised, no port).
    pub host: &'a str,
    /// The path as the policy saw it (no query).
    pub path: &'a str,
    /// The site and activity the record names.
    pub site: &'a str,
    pub activity: &'a str,
    /// When the request arrived (`ts`).
    pub at: Option<DateTime<Utc>>,
    /// The detectors that found something then.
    pub dlp_detectors: &'a [String],
    /// The request carried a body (`bytes_up` > 0).
    pub had_body: bool,
    /// The account the record names (`SET:ID`: the id; `other`; `unknown`).
    pub account: AccountFact<'a>,
}

/// Why a replayed decision may differ from what the live gateway would decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Approximation {
    /// The activity could not be named from the record alone.
    Activity,
    /// The content was not scanned again.
    Dlp,
    /// The record holds no groups: roles from the user alone.
    Groups,
    /// The record holds no `account` (written before the field existed).
    Account,
}

impl Approximation {
    /// A short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Approximation::Activity => "activity",
            Approximation::Dlp => "dlp",
            Approximation::Groups => "groups",
            Approximation::Account => "account",
        }
    }
}

/// A replayed decision.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub decision: Decision,
    /// Empty when the decision is exact (as far as the record can tell).
    pub approximate: Vec<Approximation>,
}

/// Why a record cannot be re-decided at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReplayable {
    /// The host is not a host name or address (`host` field).
    Host,
    /// The recorded path is not one the request view accepts.
    Path,
}

impl Policy {
    /// Re-decides a recorded request under this policy. Pure.
    pub fn replay(&self, r: &Recorded<'_>) -> Result<Replayed, NotReplayable> {
        let host = crate::host::normalize_host(r.host).ok_or(NotReplayable::Host)?;
        // A destination the gateway attributed to a site by its address (an IP
        // literal) is decided as that site, as it was live. (A host name of no
        // site stays one: the API-path recognition decides it as live.)
        let host = match self.site_for(&host) {
            None if r.site != "unlisted" && matches!(host, NormalHost::Ip(_)) => self
                .site_named(r.site)
                .and_then(|s| self.host_of_site(s))
                .unwrap_or(host),
            _ => host,
        };
        let headers = http::HeaderMap::new();
        let connect = r.method.eq_ignore_ascii_case("CONNECT") && r.activity == "connect";
        let view = if connect {
            RequestView::tunnel(&host, &headers)
        } else {
            let raw = RawRequest {
                method: r.method,
                host: &host,
                target: r.path,
                headers: &headers,
                body: None,
                connect: false,
            };
            RequestView::from_raw(&raw, &[]).map_err(|_| NotReplayable::Path)?
        };
        let mut approximate = Vec::new();
        let activity = if connect {
            ACTIVITY_CONNECT
        } else {
            let site = self.site_for(&host);
            let (id, exact) = self.replayed_activity(site, &view, r);
            if !exact {
                approximate.push(Approximation::Activity);
            }
            id
        };
        let facts = Facts {
            user: r.user,
            groups: r.groups,
            request: view,
            at: r.at,
            account: r.account,
        };
        let mut decision = self.decide_activity(&facts, activity, true);
        if let Some(profile) = decision
            .dlp
            .as_ref()
            .and_then(|name| self.dlp.profiles.get(name))
        {
            if decision.action != Action::Deny && (r.had_body || !r.dlp_detectors.is_empty()) {
                approximate.push(Approximation::Dlp);
                let blocks = profile.on_finding == super::OnFinding::Block
                    && r.dlp_detectors
                        .iter()
                        .any(|d| profile.detectors.iter().any(|p| p == d));
                if blocks {
                    decision.action = Action::Deny;
                    decision.reason = format!(
                        "rule `{}` applies DLP profile `{}`, which blocks on a detector that found something then: {}",
                        decision.rule,
                        profile.name,
                        r.dlp_detectors.join(", ")
                    );
                }
            }
        }
        Ok(Replayed {
            decision,
            approximate,
        })
    }

    /// The activity of a recorded request on `site` under this policy, and
    /// whether it is exact. See the module header.
    fn replayed_activity(
        &self,
        site: Option<&Site>,
        view: &RequestView<'_>,
        r: &Recorded<'_>,
    ) -> (ActivityId, bool) {
        let by_path = classify(site, view);
        let unsure = site.is_some_and(|s| needs_more_than_the_record(s, view));
        let recorded = site
            .filter(|s| s.name == r.site)
            .and_then(|s| self.known_activity(s, r.activity));
        match recorded {
            Some(id) if id == by_path || unsure => (id, true),
            // A matcher that reads only method and path names it otherwise.
            Some(_) => (by_path, false),
            None => (by_path, !unsure),
        }
    }

    /// The id of `name` when `site` can name a request so (or it is a fallback).
    fn known_activity(&self, site: &Site, name: &str) -> Option<ActivityId> {
        let id = self.activity_names.iter().position(|n| n == name)? as ActivityId;
        let ok = id == ACTIVITY_READ
            || id == ACTIVITY_WRITE
            || site.activities.iter().any(|(a, _)| *a == id);
        ok.then_some(id)
    }
}

/// Could a matcher of `site` that reads more than the audit holds name this
/// request? (Its method, host and path parts match; it also needs a query,
/// form, json or header field, or a websocket upgrade; or the site names
/// method-override query parameters.)
fn needs_more_than_the_record(site: &Site, view: &RequestView<'_>) -> bool {
    if !site.method_override_query.is_empty() {
        return true;
    }
    site.activities.iter().flat_map(|(_, ms)| ms).any(|m| {
        let needs_more = !m.query.is_empty()
            || !m.form.is_empty()
            || !m.json.is_empty()
            || !m.header.is_empty()
            || m.websocket == Some(true);
        if !needs_more {
            return false;
        }
        let method_ok = m.methods.is_empty()
            || m.methods
                .iter()
                .any(|x| x.eq_ignore_ascii_case(&view.method));
        let host_ok = match (&m.host, view.host) {
            (None, _) => true,
            (Some(p), NormalHost::Domain(d)) => p.matches(d),
            _ => false,
        };
        let path_ok = match &m.path {
            Some(super::PathMatch::Exact(p)) => *view.path == **p,
            Some(super::PathMatch::Prefix(p)) => view.path.starts_with(p.as_str()),
            None => true,
        };
        let regex_ok = m
            .path_regex
            .as_ref()
            .is_none_or(|re| re.is_match(&view.path));
        method_ok && host_ok && path_ok && regex_ok
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::test_support::test_policy;

    const POLICY: &str = r#"
version: 1
roles:
  press: { groups: [communications] }
  staff: { groups: [all-staff] }
sites:
  social:
    domains: [social.test]
    activities:
      post:
        - { method: POST, path: /api/graphql, json: { operationName: "^CreateTweet$" } }
        - { method: POST, path: /post }
dlp:
  profiles:
    official: { detectors: [uk-nino], on_finding: block }
rules:
  - { name: press-posts, roles: [press], sites: [social], activities: [post], action: allow, dlp: official }
  - { name: staff-read, roles: [staff], sites: [social], activities: [read], action: allow,
      when: { days: weekdays, between: ["09:00", "17:00"] } }
  - { name: everyone-else, action: deny }
"#;

    fn record<'a>(
        groups: &'a [String],
        method: &'a str,
        path: &'a str,
        activity: &'a str,
    ) -> Recorded<'a> {
        Recorded {
            user: "alice",
            groups,
            method,
            host: "social.test",
            path,
            site: "social",
            activity,
            at: Some("2026-07-01T10:00:00Z".parse().unwrap()),
            dlp_detectors: &[],
            had_body: false,
            account: AccountFact::Unknown,
        }
    }

    #[test]
    fn the_recorded_activity_is_used_when_the_body_named_it() {
        let policy = test_policy(POLICY);
        let press = vec!["communications".to_string()];
        let r = record(&press, "POST", "/api/graphql", "post");
        let out = policy.replay(&r).unwrap();
        assert_eq!(out.decision.activity, "post");
        assert_eq!(out.decision.rule, "press-posts");
        assert!(out.approximate.is_empty(), "{:?}", out.approximate);
    }

    #[test]
    fn an_activity_the_record_cannot_give_is_classified_from_the_path_and_flagged() {
        let policy = test_policy(POLICY);
        let press = vec!["communications".to_string()];
        // `message` is not an activity of the site in this policy.
        let r = record(&press, "POST", "/api/graphql", "message");
        let out = policy.replay(&r).unwrap();
        assert_eq!(out.decision.activity, "write");
        assert_eq!(out.approximate, vec![Approximation::Activity]);
        // A path-only matcher names it exactly.
        let r = record(&press, "POST", "/post", "message");
        let out = policy.replay(&r).unwrap();
        assert_eq!(out.decision.activity, "post");
        assert!(out.approximate.is_empty());
    }

    #[test]
    fn the_recorded_time_decides_time_windows() {
        let policy = test_policy(POLICY);
        let staff = vec!["all-staff".to_string()];
        let mut r = record(&staff, "GET", "/feed", "read");
        assert_eq!(policy.replay(&r).unwrap().decision.rule, "staff-read");
        r.at = Some("2026-07-04T10:00:00Z".parse().unwrap()); // a Saturday
        assert_eq!(policy.replay(&r).unwrap().decision.rule, "everyone-else");
    }

    #[test]
    fn recorded_findings_are_judged_by_the_profile_and_flagged() {
        let policy = test_policy(POLICY);
        let press = vec!["communications".to_string()];
        let found = vec!["uk-nino".to_string()];
        let mut r = record(&press, "POST", "/post", "post");
        r.dlp_detectors = &found;
        r.had_body = true;
        let out = policy.replay(&r).unwrap();
        assert_eq!(out.decision.action, Action::Deny);
        assert_eq!(out.decision.rule, "press-posts");
        assert_eq!(out.approximate, vec![Approximation::Dlp]);
    }
}
