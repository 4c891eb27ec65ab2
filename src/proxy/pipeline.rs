//! The steps every request takes, whichever way it came: admit the client,
//! build the request view and decide, scan under a `dlp` rule (the verdict),
//! answer a warn acknowledgement, and make the upstream request that a leg
//! (plain HTTP in `forward`, TLS in `intercept`) sends. [`run`] strings them
//! together; every refusal is a [`Refusal`] rendered by `respond`, so a request
//! gets the same answer on every path. Names are resolved only by a leg, after
//! the decision: a request that policy denies never causes a lookup or a dial.
//! Called by `forward`, `intercept` and `connect`; it calls none of them.

use std::future::Future;
use std::sync::Arc;

use http::{header, HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::body::{self, HeldBody, ProxyBody, ReadFailure};
use super::context::{Exchange, RequestCtx};
use super::deferred::{self, Notice};
use super::gateway::Gateway;
use super::headers::{clean_request_headers, clean_response_headers};
use super::observe;
use super::respond::{self, render, see_other, Denial, Refusal, Warning};
use super::upstream::{DialError, UpstreamFailure};
use super::warn;
use crate::identity::{ConnIdentity, Principal};
use crate::net_guard::DestinationDenied;
use crate::policy::{Action, Decision, Facts, NormalHost, Policy};
use crate::verdict::{apply_dlp, Content, ScanRefusal, Verdict};
use crate::view::{RawRequest, RequestView};

/// Identifies the client (on its connection when it has one: a Negotiate
/// sign-in binds the connection).
pub(crate) async fn admit(
    ctx: &RequestCtx,
    conn: Option<&ConnIdentity>,
    headers: &http::HeaderMap,
) -> Result<Arc<Principal>, Refusal> {
    match ctx.gw.identity.identify_on(ctx.peer, headers, conn).await {
        Ok(p) => {
            observe::identified(&ctx.log, &p);
            Ok(Arc::new(p))
        }
        Err(failure) => Err(Refusal::Identity(Some(failure))),
    }
}

/// TRACE is never passed on.
pub(crate) fn check_method(method: &http::Method) -> Result<(), Refusal> {
    if *method == http::Method::TRACE {
        return Err(Refusal::MethodNotAllowed);
    }
    Ok(())
}

/// May a request or CONNECT name this port at all?
pub(crate) fn check_port(gw: &Gateway, port: u16) -> Result<(), Refusal> {
    gw.dialer
        .guard
        .check_port(port)
        .map_err(|reason| Refusal::DestinationGuard {
            reason,
            what: format!("port {port}"),
        })
}

/// The refusal for a failed dial: the guard's 403, or an upstream error.
pub(crate) fn dial_refusal(e: DialError, host: &NormalHost, port: u16) -> Refusal {
    match e {
        DialError::Denied(reason @ DestinationDenied::Port) => Refusal::DestinationGuard {
            reason,
            what: format!("port {port}"),
        },
        DialError::Denied(reason) => Refusal::DestinationGuard {
            reason,
            what: format!("the destination {host}"),
        },
        DialError::Failed(kind, detail) => Refusal::Upstream { kind, detail },
    }
}

/// The site did not answer within `upstream.response_timeout`.
pub(crate) fn timed_out(ex: &Exchange<'_>) -> Refusal {
    Refusal::Upstream {
        kind: UpstreamFailure::Timeout,
        detail: format!(
            "{} did not answer within {}s",
            ex.host,
            ex.ctx.gw.settings.upstream.response_timeout.as_secs()
        ),
    }
}

/// A failed `send_request`: the client's body when hyper says the error came
/// from the request side (a malformed chunk, a reset: 400), else the site.
pub(crate) fn send_failed(ex: &Exchange<'_>, e: &hyper::Error) -> Refusal {
    if e.is_user() {
        return Refusal::MalformedBody;
    }
    Refusal::Upstream {
        kind: UpstreamFailure::Protocol,
        detail: format!("{} closed the connection before answering ({e})", ex.host),
    }
}

/// A site that broke the protocol while the connection was set up.
pub(crate) fn protocol_error(host: &NormalHost, e: impl std::fmt::Display) -> Refusal {
    Refusal::Upstream {
        kind: UpstreamFailure::Protocol,
        detail: format!("{host}: {e}"),
    }
}

/// The site's response for the client: hop-by-hop headers and any
/// `X-Socialgate-Reference` of its own removed.
pub(crate) fn from_upstream(resp: Response<Incoming>) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    clean_response_headers(&mut parts.headers);
    Response::from_parts(parts, body::boxed_incoming(body))
}

/// An allowed request, ready for a leg: method, cleaned headers and the counted
/// body are set; the leg sets the URI and `Host` for its protocol.
pub(crate) struct Allowed {
    pub req: Request<ProxyBody>,
    /// The request target the site receives (the path as the view normalised it).
    pub target: String,
    /// A WebSocket upgrade (only on a leg that relays upgrades).
    pub websocket: bool,
    /// For a WebSocket under a `dlp` rule: the decision whose profile scans
    /// each client message.
    pub scan_messages: Option<MessagePolicy>,
}

/// The decision of a WebSocket upgrade under a `dlp` rule and the policy it was
/// made on: its messages are scanned by that profile even if a reload drops it.
pub(crate) struct MessagePolicy {
    pub policy: Arc<Policy>,
    pub decision: Decision,
}

/// The way to the site for an allowed request.
pub(crate) trait Leg {
    /// Are WebSocket upgrades relayed (their `Upgrade` header kept)?
    const UPGRADES: bool;

    /// Sends `allowed` (dialling, through the destination guard, only now) and
    /// returns the response for the client.
    fn send(
        &self,
        ex: &Exchange<'_>,
        allowed: Allowed,
        client_upgrade: Option<OnUpgrade>,
    ) -> impl Future<Output = Result<Response<ProxyBody>, Refusal>> + Send;
}

/// The whole per-request pipeline for an admitted request: acknowledgement,
/// decision, verdict, then the leg.
pub(crate) async fn run<L: Leg>(
    ex: &Exchange<'_>,
    mut req: Request<Incoming>,
    leg: &L,
) -> Response<ProxyBody> {
    let client_upgrade = L::UPGRADES.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    if parts.method == http::Method::POST && parts.uri.path() == warn::CONTINUE_PATH {
        // Over TLS (an intercepted site) the acknowledgement cookie is Secure.
        let secure = parts.uri.scheme_str() != Some("http");
        return Box::pin(acknowledge(ex, body, secure))
            .await
            .unwrap_or_else(|r| render(ex.ctx, r));
    }
    let mut held = HeldBody::Streaming(body);
    let judged = async {
        let decided = decide(ex, &parts, &mut held).await?;
        observe::decided(&ex.ctx.gw, &ex.ctx.log, &decided.verdict);
        observe::matched(&ex.ctx.gw, &ex.ctx.log, &decided.policy, &decided.verdict);
        judge(ex, &decided.verdict, &parts)?;
        let mut decision = decided.verdict.decision;
        let scanning = decision.dlp.is_some();
        // The site's name outlives the decision; moved out unless the
        // decision is kept for the WebSocket message scans.
        let site = match scanning {
            true => decision.site.clone(),
            false => std::mem::take(&mut decision.site),
        };
        let scan = scanning.then_some(MessagePolicy {
            policy: decided.policy,
            decision,
        });
        Ok::<_, Refusal>((decided.target, scan, site))
    };
    let (target, scanning, site) = match judged.await {
        Ok(t) => t,
        Err(refusal) => {
            remember_background_denial(ex, &parts, &refusal);
            let resp = render(ex.ctx, refusal);
            // HTTP/2: the answer must go out before the unread body is let go.
            return match parts.version {
                Version::HTTP_2 => body::linger(resp, held),
                _ => resp,
            };
        }
    };
    if let Some(resp) = deferred_notice(ex, &parts, &site) {
        return match parts.version {
            Version::HTTP_2 => body::linger(resp, held),
            _ => resp,
        };
    }
    let websocket = L::UPGRADES && crate::view::is_websocket_upgrade(&parts.headers);
    let mut headers = std::mem::take(&mut parts.headers);
    let upgrade = websocket
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    clean_request_headers(&mut headers, &ex.ctx.gw.identity.identity_headers());
    if let Some(upgrade) = upgrade {
        headers.insert(header::UPGRADE, upgrade);
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    }
    // Messages under a `dlp` rule are scanned, and the codec cannot undo
    // permessage-deflate: no extension is offered, so neither side compresses.
    let scan_messages = scanning.filter(|_| websocket);
    if scan_messages.is_some() {
        headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
    // A body that has ended has no bytes to count.
    let up_body = held.into_proxy_body();
    let mut up = Request::new(match http_body::Body::is_end_stream(&up_body) {
        true => up_body,
        false => observe::count_up(up_body, ex.ctx.log.clone()),
    });
    *up.method_mut() = parts.method;
    *up.headers_mut() = headers;
    let allowed = Allowed {
        req: up,
        target,
        websocket,
        scan_messages,
    };
    leg.send(ex, allowed, client_upgrade)
        .await
        .unwrap_or_else(|r| render(ex.ctx, r))
}

/// A denial the person did not see as a page (a background request: not a
/// page navigation) is remembered for the deferred notice.
fn remember_background_denial(ex: &Exchange<'_>, parts: &http::request::Parts, refusal: &Refusal) {
    let keep = ex.ctx.gw.settings.pages.deferred_notice;
    let Refusal::Blocked(d) = refusal else {
        return;
    };
    if keep.is_zero()
        || deferred::is_navigation(&parts.headers)
        || !deferred::from_the_site_itself(&parts.headers)
    {
        return;
    }
    let who = deferred::who(&ex.principal.user, ex.principal.source, ex.ctx.peer);
    let notice = Notice {
        rule: d.rule.clone(),
        site: d.site.clone(),
        title: d.title.clone(),
        activity: d.activity.clone(),
        description: d.description.clone(),
        detectors: d.detectors.clone(),
        reference: ex.ctx.reference.clone(),
    };
    ex.ctx.gw.deferred.record(&who, notice, keep);
}

/// For an allowed page navigation (a GET the browser shows as the page) to a
/// site where a background request of this person's was denied: the notice
/// page, once, with a link on to the same address on this host.
fn deferred_notice(
    ex: &Exchange<'_>,
    parts: &http::request::Parts,
    site: &str,
) -> Option<Response<ProxyBody>> {
    let gw = &ex.ctx.gw;
    if gw.settings.pages.deferred_notice.is_zero()
        || parts.method != http::Method::GET
        || gw.deferred.is_empty()
        || !deferred::is_navigation(&parts.headers)
    {
        return None;
    }
    let who = deferred::who(&ex.principal.user, ex.principal.source, ex.ctx.peer);
    let n = gw.deferred.take(&who, site)?;
    gw.metrics.deferred_notices.with_label_values(&[site]).inc();
    tracing::info!(user = %ex.principal.user, site, denied = %n.reference, "deferred notice shown");
    let denial = Denial {
        rule: n.rule,
        site: n.site,
        title: n.title,
        activity: n.activity,
        description: n.description,
        detectors: n.detectors,
    };
    let continue_to = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    Some(respond::notice(ex.ctx, &denial, &n.reference, continue_to))
}

/// A request decided: the verdict and the request target the site receives.
struct Decided {
    verdict: Verdict,
    target: String,
    /// The policy it was decided on (a WebSocket's messages are scanned on it).
    policy: Arc<Policy>,
}

/// Identifies the activity (buffering the body if a matcher needs it), decides,
/// and scans under a `dlp` rule. The body stays with the caller.
///
/// Headers first: a body is read only when the decision needs it. For a site
/// whose activities look into the body, the engine is asked first whether any
/// activity the body could give this request is allowed for this user now
/// ([`Policy::decide_before_body`]); when none is, the request is refused
/// without reading a byte of it.
async fn decide(
    ex: &Exchange<'_>,
    parts: &http::request::Parts,
    held: &mut HeldBody,
) -> Result<Decided, Refusal> {
    let gw = &ex.ctx.gw;
    let policy = gw.policy();
    let max = gw.settings.limits.max_scan_bytes;
    let has_body = held.is_open();
    // A host of no site on an opted-in site's API paths is classified by that
    // site's matchers too (`policy::api_paths`), so they get the body as well.
    let site = policy.site_for(ex.policy_host()).or_else(|| {
        policy
            .api_site_for(parts.uri.path())
            .and_then(|i| policy.sites.get(i as usize))
    });
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let facts = |view| Facts {
        user: &ex.principal.user,
        groups: &ex.principal.groups,
        request: view,
        at: Some(ex.ctx.arrived),
        account: Default::default(),
    };
    if has_body && site.is_some_and(|s| s.needs_body) {
        let view = view_of(ex, &policy, parts, target, None)?;
        let forward_target = view.forward_target();
        let path = view.path.clone();
        if let Some(decision) = policy.decide_before_body(&facts(view)) {
            observe::set_path(&ex.ctx.log, &path);
            return Ok(Decided {
                verdict: Verdict {
                    decision,
                    findings: Vec::new(),
                    refusal: None,
                },
                target: forward_target,
                policy: policy.clone(),
            });
        }
        buffer(ex, held, max, declared).await?;
    }
    let view = view_of(ex, &policy, parts, target, held.buffered())?;
    // The audit names the path the site receives, as the policy saw it.
    observe::set_path(&ex.ctx.log, &view.path);
    let forward_target = view.forward_target();
    let decision = policy.decide_unworded(&facts(view));
    if decision.dlp.is_some() && decision.action != Action::Deny && has_body {
        // Fail closed: what cannot be scanned whole is not sent.
        buffer(ex, held, max, declared).await?;
    }
    // Every line of a header counts: `Content-Encoding: identity` then
    // `Content-Encoding: gzip` is `identity, gzip` to the site, so to the scanner too.
    let joined = |name: header::HeaderName| -> Option<String> {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    let content_type = joined(header::CONTENT_TYPE);
    let content_encoding = joined(header::CONTENT_ENCODING);
    let content = Content {
        content_type: content_type.as_deref(),
        content_encoding: content_encoding.as_deref(),
        body: held.buffered().unwrap_or(&[]),
        query: parts.uri.query(),
    };
    Ok(Decided {
        verdict: apply_dlp(&policy, decision, Some(content), max),
        target: forward_target,
        policy: policy.clone(),
    })
}

/// The request view of `parts` (with `body` when it was read). A request the
/// view refuses is audited like a decision (rule `request-refused`, the site,
/// the user's roles) and answered 400: it is never forwarded as something else.
fn view_of<'a>(
    ex: &'a Exchange<'_>,
    policy: &'a Policy,
    parts: &'a http::request::Parts,
    target: &'a str,
    body: Option<&'a [u8]>,
) -> Result<RequestView<'a>, Refusal> {
    let raw = RawRequest {
        method: parts.method.as_str(),
        host: ex.policy_host(),
        target,
        headers: &parts.headers,
        body,
        connect: false,
    };
    RequestView::build(policy, &raw).map_err(|refusal| {
        let why = format!("{refusal}; nothing was sent.");
        let refused = Verdict::refused_view(
            policy,
            &ex.principal.user,
            &ex.principal.groups,
            ex.policy_host(),
            refusal,
        );
        observe::decided(&ex.ctx.gw, &ex.ctx.log, &refused);
        Refusal::BadRequest(why.into())
    })
}

/// Reads the body whole, within `max`, `limits.body_read_timeout` and
/// `limits.min_body_rate`, and within the buffering budget and the user's share
/// of it (reserved up front: the declared length, or `max` when none is
/// declared). A body too slow is refused 408 and its reservation given back at
/// once.
async fn buffer(
    ex: &Exchange<'_>,
    held: &mut HeldBody,
    max: usize,
    declared: Option<usize>,
) -> Result<(), Refusal> {
    let gw = &ex.ctx.gw;
    if held.buffered().is_some() {
        return Ok(());
    }
    if declared.is_some_and(|n| n > max) {
        // Read (and drop) what the client is sending, so it sees the 413
        // instead of a broken pipe; beyond the drain cap, or after
        // `limits.body_read_timeout`, the connection closes.
        if let HeldBody::Streaming(b) = take(held) {
            let _ =
                tokio::time::timeout(gw.settings.limits.body_read_timeout, body::drain(b)).await;
        }
        return Err(Refusal::BodyTooLarge);
    }
    let reservation = gw
        .buffer_budget
        .reserve(&ex.principal.user, declared.unwrap_or(max))
        .ok_or(Refusal::Budget)?;
    let HeldBody::Streaming(streaming) = held else {
        return Ok(());
    };
    let pace = body::BodyPace {
        timeout: gw.settings.limits.body_read_timeout,
        min_rate: gw.settings.limits.min_body_rate,
    };
    let bytes = match body::read_paced(streaming, max, pace).await {
        Ok(bytes) => bytes,
        Err(ReadFailure::TooLarge) => return Err(Refusal::BodyTooLarge),
        Err(ReadFailure::Broken) => return Err(Refusal::MalformedBody),
        Err(ReadFailure::TooSlow) => {
            tracing::info!(user = %ex.principal.user, peer = %ex.ctx.peer, "a request body arrived too slowly (limits.body_read_timeout / limits.min_body_rate); refused 408 and the connection closed");
            return Err(Refusal::BodyTooSlow);
        }
    };
    *held = HeldBody::Buffered(bytes, Some(Arc::new(reservation)));
    Ok(())
}

/// Takes the body out, leaving an empty one.
fn take(held: &mut HeldBody) -> HeldBody {
    std::mem::replace(held, HeldBody::Buffered(bytes::Bytes::new(), None))
}

/// The refusal for a denial: a sign-in for a client whose network identity asks
/// for one (unless DLP found something), else the block page.
fn denied(gw: &Gateway, principal: &Principal, d: &Decision, detectors: Vec<String>) -> Refusal {
    if principal.challenge_on_deny && detectors.is_empty() {
        return Refusal::Identity(None);
    }
    Refusal::Blocked(Box::new(denial(gw, d, detectors)))
}

/// What a refusal of decision `d` names: with the site's title and the rule's
/// description from the policy in force.
fn denial(gw: &Gateway, d: &Decision, detectors: Vec<String>) -> Denial {
    let policy = gw.policy();
    Denial {
        rule: d.rule.clone(),
        site: d.site.clone(),
        title: policy.site_named(&d.site).and_then(|s| s.title.clone()),
        activity: d.activity.clone(),
        description: policy
            .rules
            .iter()
            .find(|r| r.name == d.rule)
            .and_then(|r| r.description.clone()),
        detectors,
    }
}

/// Anything but an allow (deny, warn not yet acknowledged, refusal) is refused.
fn judge(
    ex: &Exchange<'_>,
    verdict: &Verdict,
    parts: &http::request::Parts,
) -> Result<(), Refusal> {
    let gw = &ex.ctx.gw;
    let d = &verdict.decision;
    if d.dlp.is_some() && d.action != Action::Deny && !gw.audit.has_room() {
        return Err(Refusal::AuditBusy);
    }
    match d.action {
        Action::Allow => Ok(()),
        Action::Deny => Err(match &verdict.refusal {
            Some(ScanRefusal::TooLarge) => Refusal::BodyTooLarge,
            Some(ScanRefusal::Undecodable(_)) => Refusal::Undecodable,
            None => {
                let detectors = verdict
                    .findings
                    .iter()
                    .filter(|f| f.on_finding == "block")
                    .map(|f| f.detector.clone())
                    .collect();
                denied(gw, &ex.principal, d, detectors)
            }
        }),
        Action::Warn => {
            let user = &ex.principal.user;
            if gw.warn.acknowledged(user, &d.site, &d.rule)
                || gw
                    .warn
                    .acknowledged_by_cookie(&parts.headers, user, &d.site, &d.rule)
            {
                observe::set_action(&ex.ctx.log, Action::Allow);
                return Ok(());
            }
            let token = warn::is_navigation(&parts.method, &parts.headers).then(|| {
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                gw.warn.token(user, &d.site, &d.rule, path)
            });
            Err(Refusal::Warn(Box::new(Warning {
                denial: denial(gw, d, Vec::new()),
                message: d.message.clone(),
                remember_for: d.warn_for,
                token,
            })))
        }
    }
}

/// Decides a tunnel at the host level (activity `connect`): only an allow opens it.
pub(crate) fn decide_tunnel(ex: &Exchange<'_>, headers: &http::HeaderMap) -> Result<(), Refusal> {
    let gw = &ex.ctx.gw;
    let verdict = Verdict {
        decision: gw.policy().decide_unworded(&Facts {
            user: &ex.principal.user,
            groups: &ex.principal.groups,
            request: RequestView::tunnel(ex.policy_host(), headers),
            at: Some(ex.ctx.arrived),
            account: Default::default(),
        }),
        findings: Vec::new(),
        refusal: None,
    };
    observe::decided(gw, &ex.ctx.log, &verdict);
    let d = &verdict.decision;
    if d.action == Action::Allow {
        return Ok(());
    }
    tracing::info!(user = %ex.principal.user, site = %d.site, rule = %d.rule, "tunnel refused");
    Err(denied(gw, &ex.principal, d, Vec::new()))
}

/// `POST /.socialgate/continue` on a site's host: verify the signed token, record
/// the acknowledgement, redirect to the original path on the same host.
async fn acknowledge(
    ex: &Exchange<'_>,
    body: Incoming,
    secure: bool,
) -> Result<Response<ProxyBody>, Refusal> {
    let gw = &ex.ctx.gw;
    let user = &ex.principal.user;
    let Ok(body) = body::read_limited(body, 8192).await else {
        return Err(Refusal::Acknowledgement(
            "The acknowledgement could not be read.",
        ));
    };
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let ack = gw.warn.verify(&token).ok_or(Refusal::Acknowledgement(
        "This acknowledgement is not valid or has expired. Go back and load the page again.",
    ))?;
    let policy = gw.policy();
    let site = policy
        .site_for(ex.policy_host())
        .map(|s| s.name.as_str())
        .unwrap_or("unlisted");
    if ack.user != *user || ack.site != site {
        return Err(Refusal::Acknowledgement(
            "This acknowledgement was made for another user or site.",
        ));
    }
    let rule = policy
        .rules
        .iter()
        .find(|r| r.name == ack.rule)
        .ok_or(Refusal::Acknowledgement(
            "The rule that asked for this acknowledgement no longer exists. Load the page again.",
        ))?;
    gw.warn.record(user, site, &rule.name, rule.warn_for);
    observe::acknowledged(&ex.ctx.log, site, &rule.name);
    tracing::info!(user = %user, site, rule = %rule.name, "warning acknowledged");
    let mut resp = see_other(warn::safe_path(&ack.path), &ex.ctx.reference);
    // The acknowledgement also travels with the browser, signed: any replica
    // sharing `warn.key_file` honours it, also after a restart.
    let cookie = gw
        .warn
        .ack_cookie(user, site, &rule.name, rule.warn_for, secure);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}
