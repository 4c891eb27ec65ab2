//! The whole verdict on a request: the policy's decision, then (under a rule with
//! a `dlp:` profile) the DLP scan of its body and query. Pure, like both halves:
//! `explain`, policy tests ([`run_tests`]) and the proxy all come through here.
//!
//! Limits: the top of the engine's module graph (it depends on `policy`, `view`
//! and `dlp_bridge`; nothing in the engine depends on it). Callers: the gateway's
//! proxy, the CLI, the fuzz harness, the benches.

use chrono::{DateTime, Utc};

use crate::policy::selftest::{TestFailure, TestRequest};
use crate::policy::{Action, Decision, Facts, Policy};
use crate::view::{RawRequest, RequestView, ViewRefusal};

pub use crate::dlp_bridge::{Content, DlpFinding, ScanRefusal};

/// The decision after DLP.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub decision: Decision,
    pub findings: Vec<DlpFinding>,
    pub refusal: Option<ScanRefusal>,
}

impl Verdict {
    /// The verdict on a request whose view could not be built: denied, with the
    /// refusal as its reason (the proxy answers 400).
    pub fn refused_view(
        policy: &Policy,
        user: &str,
        groups: &[String],
        host: &crate::policy::NormalHost,
        refusal: ViewRefusal,
    ) -> Verdict {
        let site = policy
            .site_for(host)
            .map_or_else(|| "unlisted".to_string(), |s| s.name.clone());
        let roles = policy.role_names(policy.role_mask(user, groups));
        Verdict {
            decision: Decision {
                action: Action::Deny,
                rule: REQUEST_REFUSED.into(),
                site,
                // Never classified: counted as the stricter kind.
                activity: "write".into(),
                reason: refusal.to_string(),
                dry_run: Vec::new(),
                roles,
                dlp: None,
                warn_for: None,
                message: None,
                matched: crate::policy::decide::Matched::Unclassified,
                account: Default::default(),
            },
            findings: Vec::new(),
            refusal: None,
        }
    }
}

/// The rule named by a verdict on a request that has no single reading.
pub const REQUEST_REFUSED: &str = "request-refused";

/// `limits.max_scan_bytes` when the settings do not say: the scan limit of
/// policy tests and `explain`, and the gateway's default.
pub const DEFAULT_MAX_SCAN_BYTES: usize = 10 << 20;

/// Decides `facts`, then applies the deciding rule's DLP profile to `content`.
pub fn evaluate(
    policy: &Policy,
    facts: &Facts<'_>,
    content: Option<Content<'_>>,
    max_scan_bytes: usize,
) -> Verdict {
    let decision = policy.decide(facts);
    apply_dlp(policy, decision, content, max_scan_bytes)
}

/// Applies the DLP profile named by `decision` (if any) to `content`.
pub fn apply_dlp(
    policy: &Policy,
    decision: Decision,
    content: Option<Content<'_>>,
    max_scan_bytes: usize,
) -> Verdict {
    // The decision moves into the verdict and is changed there: no copy of
    // its strings for the common case of nothing to scan.
    let mut verdict = Verdict {
        decision,
        findings: Vec::new(),
        refusal: None,
    };
    let (Some(profile_name), Some(content)) = (verdict.decision.dlp.as_deref(), content) else {
        return verdict;
    };
    if verdict.decision.action == Action::Deny {
        return verdict;
    }
    let Some(profile) = policy.dlp.profiles.get(profile_name) else {
        // The policy loader rejects a rule naming an undefined profile, so this
        // is a policy built some other way: fail closed, never allow unscanned.
        let reason = format!(
            "rule `{}` applies DLP profile `{profile_name}`, which the policy does not define: \
             the content cannot be scanned, refused",
            verdict.decision.rule
        );
        verdict.decision.action = Action::Deny;
        verdict.decision.reason = reason;
        return verdict;
    };
    let has_query = content.query.is_some_and(|q| !q.is_empty());
    if content.body.is_empty() && !has_query {
        return verdict;
    }
    let decision = &mut verdict.decision;
    match crate::dlp_bridge::scan(policy, profile, content, max_scan_bytes) {
        Ok(findings) => {
            let on = profile.on_finding.as_str();
            let blocked: Vec<String> = findings.iter().map(|f| f.detector.clone()).collect();
            verdict.findings = findings
                .into_iter()
                .map(|f| DlpFinding {
                    on_finding: on,
                    ..f
                })
                .collect();
            if !blocked.is_empty() && profile.on_finding == crate::policy::OnFinding::Block {
                decision.action = Action::Deny;
                decision.reason = format!(
                    "rule `{}` applies DLP profile `{}`, which found {} in the content: blocked",
                    decision.rule,
                    profile.name,
                    blocked.join(", ")
                );
            }
        }
        Err(refusal) => {
            decision.action = Action::Deny;
            decision.reason = match &refusal {
                ScanRefusal::TooLarge => format!(
                    "rule `{}` scans content, and this body is larger than the scan limit: refused",
                    decision.rule
                ),
                ScanRefusal::Undecodable(why) => format!(
                    "rule `{}` scans content, and this body cannot be decoded ({why}): refused",
                    decision.rule
                ),
            };
            verdict.refusal = Some(refusal);
        }
    }
    verdict
}

/// Evaluates a request written as a policy test (or on the `explain` command line).
pub fn evaluate_test_request(
    policy: &Policy,
    user: &str,
    groups: &[String],
    req: &TestRequest,
    at: Option<DateTime<Utc>>,
) -> Verdict {
    let target = match &req.query {
        Some(q) => format!("{}?{q}", req.path),
        None => req.path.clone(),
    };
    let raw = RawRequest {
        method: &req.method,
        host: &req.host,
        target: &target,
        headers: &req.headers,
        body: req.body.as_deref(),
        connect: req.connect,
    };
    let view = match RequestView::build(policy, &raw) {
        Ok(v) => v,
        Err(refusal) => return Verdict::refused_view(policy, user, groups, &req.host, refusal),
    };
    let facts = Facts {
        user,
        groups,
        request: view,
        at,
        account: match req.account.as_deref() {
            None => crate::policy::AccountFact::FromRequest,
            Some("unknown") => crate::policy::AccountFact::Unknown,
            Some(id) => crate::policy::AccountFact::Id(id),
        },
    };
    let header =
        |name: http::header::HeaderName| req.headers.get(name).and_then(|v| v.to_str().ok());
    let content = Content {
        content_type: header(http::header::CONTENT_TYPE),
        content_encoding: header(http::header::CONTENT_ENCODING),
        body: req.body.as_deref().unwrap_or(&[]),
        query: req.query.as_deref(),
    };
    evaluate(policy, &facts, Some(content), DEFAULT_MAX_SCAN_BYTES)
}

/// Runs every test of the policy; returns the failures.
pub fn run_tests(policy: &Policy) -> Vec<TestFailure> {
    let mut failures = Vec::new();
    for t in &policy.tests {
        let verdict = evaluate_test_request(policy, &t.user, &t.groups, &t.request, t.at);
        let d = &verdict.decision;
        let mut wrong = Vec::new();
        if d.action != t.expect.action {
            wrong.push(format!("action {}", t.expect.action.as_str()));
        }
        if let Some(r) = &t.expect.rule {
            if &d.rule != r {
                wrong.push(format!("rule {r}"));
            }
        }
        if let Some(s) = &t.expect.site {
            if &d.site != s {
                wrong.push(format!("site {s}"));
            }
        }
        if let Some(a) = &t.expect.activity {
            if &d.activity != a {
                wrong.push(format!("activity {a}"));
            }
        }
        for det in &t.expect.dlp {
            if !verdict.findings.iter().any(|f| &f.detector == det) {
                wrong.push(format!("a DLP finding of {det}"));
            }
        }
        if !wrong.is_empty() {
            let found: Vec<&str> = verdict
                .findings
                .iter()
                .map(|f| f.detector.as_str())
                .collect();
            let dlp = if found.is_empty() {
                String::new()
            } else {
                format!(", DLP findings: {}", found.join(", "))
            };
            failures.push(TestFailure {
                file: t.file.clone(),
                line: t.line,
                col: t.col,
                message: format!(
                    "test \"{}\" failed: expected {}; got {} by rule {} (site {}, activity {}{dlp})",
                    t.name,
                    wrong.join(", "),
                    d.action.as_str(),
                    d.rule,
                    d.site,
                    d.activity
                ),
            });
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::test_policy;

    const POLICY: &str = r#"
version: 1
dlp:
  profiles:
    official: { detectors: [uk-nino], on_finding: block }
rules:
  - { name: scanned, action: allow, dlp: official }
"#;

    fn allowed_by(profile: &str) -> Decision {
        Decision {
            action: Action::Allow,
            rule: "scanned".into(),
            site: "social".into(),
            activity: "post".into(),
            reason: "allowed".into(),
            dry_run: Vec::new(),
            roles: Vec::new(),
            dlp: Some(profile.into()),
            warn_for: None,
            message: None,
            matched: Default::default(),
            account: Default::default(),
        }
    }

    fn content(body: &[u8]) -> Content<'_> {
        Content {
            content_type: Some("text/plain"),
            content_encoding: None,
            body,
            query: None,
        }
    }

    #[test]
    fn a_rule_whose_dlp_profile_is_missing_is_denied_not_allowed() {
        let mut policy = test_policy(POLICY);
        // A clean body is allowed while the profile exists...
        let v = apply_dlp(
            &policy,
            allowed_by("official"),
            Some(content(b"hello")),
            1 << 20,
        );
        assert_eq!(v.decision.action, Action::Allow, "{}", v.decision.reason);
        // ...and denied, with the reason naming the profile, once it is gone,
        // with and without a body (nothing is ever allowed unscanned).
        policy.dlp.profiles.clear();
        for body in [&b"hello"[..], b""] {
            let v = apply_dlp(
                &policy,
                allowed_by("official"),
                Some(content(body)),
                1 << 20,
            );
            assert_eq!(v.decision.action, Action::Deny);
            assert!(
                v.decision.reason.contains("`official`")
                    && v.decision.reason.contains("does not define"),
                "{}",
                v.decision.reason
            );
            assert!(v.findings.is_empty());
        }
        // A profile name no policy defines is the same.
        let policy = test_policy(POLICY);
        let v = apply_dlp(
            &policy,
            allowed_by("typo"),
            Some(content(b"hello")),
            1 << 20,
        );
        assert_eq!(v.decision.action, Action::Deny);
        assert!(
            v.decision.reason.contains("`typo`"),
            "{}",
            v.decision.reason
        );
    }
}
