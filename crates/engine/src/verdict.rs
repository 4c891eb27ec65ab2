//! The whole verdict on a request: the policy's decision, then (under a rule with
//! a `dlp:` profile) the DLP scan of its body and query. Pure, like both halves:
//! `explain`, policy tests and the proxy all come through here.

use chrono::{DateTime, Utc};

use crate::policy::selftest::TestRequest;
use crate::policy::{Action, Decision, Facts, Policy};
use crate::view::{RawRequest, RequestView, ViewRefusal};

/// One DLP finding: detector, number of distinct values, a masked sample.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DlpFinding {
    pub detector: String,
    pub count: usize,
    pub sample: String,
    /// `block` or `log`.
    pub on_finding: &'static str,
}

/// Why content could not be scanned (the request is refused: fail closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanRefusal {
    /// Larger than `limits.max_scan_bytes` (413).
    TooLarge,
    /// Unknown encoding or undecodable body (403).
    Undecodable(String),
}

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
                activity: String::new(),
                reason: refusal.to_string(),
                dry_run: Vec::new(),
                roles,
                dlp: None,
                warn_for: None,
                message: None,
            },
            findings: Vec::new(),
            refusal: None,
        }
    }
}

/// The rule named by a verdict on a request that has no single reading.
pub const REQUEST_REFUSED: &str = "request-refused";

/// What the scanner sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub body: &'a [u8],
    pub query: Option<&'a str>,
}

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
    mut decision: Decision,
    content: Option<Content<'_>>,
    max_scan_bytes: usize,
) -> Verdict {
    let mut verdict = Verdict {
        decision: decision.clone(),
        findings: Vec::new(),
        refusal: None,
    };
    let (Some(profile_name), Some(content)) = (decision.dlp.clone(), content) else {
        return verdict;
    };
    if decision.action == Action::Deny {
        return verdict;
    }
    let has_query = content.query.is_some_and(|q| !q.is_empty());
    if content.body.is_empty() && !has_query {
        return verdict;
    }
    let Some(profile) = policy.dlp.profiles.get(&profile_name) else {
        return verdict;
    };
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
    verdict.decision = decision;
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
