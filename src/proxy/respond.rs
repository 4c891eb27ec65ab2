//! The one place that turns a decision or an error into a response the gateway
//! makes itself: every refusal is a typed [`Refusal`], and [`render`] alone makes
//! its answer (page or JSON, status, audit fields, metrics), the same on every
//! path: plain HTTP, CONNECT, inside tunnels, HTTP/1.1 and HTTP/2. Besides
//! refusals it makes the acknowledgement's redirect ([`see_other`]) and lends
//! its page style to the admin listener.
//!
//! Every such response carries `X-Socialgate-Reference` (the audit record id), a
//! strict `Content-Security-Policy` and `Cache-Control: no-store`. Pages never echo
//! request headers, credentials or matched values: only names from the policy
//! (site title, activity, rule and its description, kinds of data), the
//! organisation and the support contact. Their wording and HTML are made by
//! `crate::pages`, in the language `Accept-Language` chooses; JSON answers
//! keep their fields.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::body::ProxyBody;
use super::context::RequestCtx;
use super::headers::REFERENCE;
use super::observe::{self, GatewayMade};
use super::upstream::UpstreamFailure;
use crate::identity::AuthFailure;
use crate::net_guard::DestinationDenied;
use crate::pages::{render as pages, Look, Stopped};

/// Why the gateway refuses a request. Rendered by [`render`] only.
#[derive(Debug)]
pub enum Refusal {
    /// No identity (`Some`: why, counted and audited), or a denial for a client
    /// whose network identity asks for a sign-in instead (`None`): 407, or 403
    /// where no sign-in is offered.
    Identity(Option<AuthFailure>),
    /// A client no identity source knows, where no sign-in can be offered (a
    /// transparent connection: the client does not know it talks to a proxy):
    /// always the 403 "not known" answer, never a 407. Counted and audited.
    NotKnown,
    /// Denied by policy or DLP: 403 `blocked`.
    Blocked(Box<Denial>),
    /// A `warn` rule not yet acknowledged: 403 `acknowledgement_required`.
    Warn(Box<Warning>),
    /// The destination guard: 403 `destination-guard`. `what` is the port or host
    /// the client is told is not allowed; the reason (address class) is counted
    /// and logged, never shown.
    DestinationGuard {
        reason: DestinationDenied,
        what: String,
    },
    /// 400 with the reason.
    BadRequest(Cow<'static, str>),
    /// 431.
    HeadTooLarge,
    /// 405 (TRACE).
    MethodNotAllowed,
    /// 421: another host than the tunnel's.
    Misdirected,
    /// 413: larger than the gateway may scan.
    BodyTooLarge,
    /// 403: a body that cannot be decoded for a scan.
    Undecodable,
    /// 503: `limits.max_buffered_bytes`, or the user's share of it
    /// (`limits.max_buffered_bytes_per_client`), is used up.
    Budget,
    /// 408: a body the gateway reads whole did not arrive within
    /// `limits.body_read_timeout` or `limits.min_body_rate`; the connection is
    /// closed.
    BodyTooSlow,
    /// 503: the audit queue is full and the request is under a `dlp` rule.
    AuditBusy,
    /// 503: `limits.max_tunnels`.
    TooManyTunnels,
    /// 502 / 504: the site could not be reached; `detail` is shown.
    Upstream {
        kind: UpstreamFailure,
        detail: String,
    },
    /// 400: the client's body broke mid-way.
    MalformedBody,
    /// 403: a warn acknowledgement that does not hold, and why.
    Acknowledgement(&'static str),
}

/// What a denial names: policy names only, never request content.
#[derive(Debug, Clone)]
pub struct Denial {
    pub rule: String,
    pub site: String,
    /// The site's `title:`.
    pub title: Option<String>,
    pub activity: String,
    /// The rule's `description:`.
    pub description: Option<String>,
    /// DLP detectors that blocked the post (empty for a policy denial).
    pub detectors: Vec<String>,
}

/// A warn rule's interstitial.
#[derive(Debug)]
pub struct Warning {
    pub denial: Denial,
    pub message: Option<String>,
    pub remember_for: Option<Duration>,
    /// The Continue button's token, for a page navigation; JSON otherwise.
    pub token: Option<String>,
}

impl Denial {
    fn info<'a>(&'a self, support_contact: &'a str) -> BlockInfo<'a> {
        BlockInfo {
            rule: &self.rule,
            site: &self.site,
            activity: &self.activity,
            detectors: &self.detectors,
            support_contact,
        }
    }

    /// What its page names, with `reference`.
    pub fn stopped<'a>(&'a self, reference: &'a str) -> Stopped<'a> {
        Stopped {
            site: &self.site,
            title: self.title.as_deref(),
            activity: &self.activity,
            rule: &self.rule,
            description: self.description.as_deref(),
            detectors: &self.detectors,
            reference,
        }
    }
}

/// The look and the catalogue for this request's page.
fn look(ctx: &RequestCtx) -> (&Look, &crate::pages::Catalogue) {
    let look = &ctx.gw.settings.pages.look;
    (look, look.catalogue(ctx.accept_language.as_deref()))
}

/// The response for `refusal`, with its audit fields and metrics.
pub(crate) fn render(ctx: &RequestCtx, refusal: Refusal) -> Response<ProxyBody> {
    let (gw, reference) = (&ctx.gw, ctx.reference.as_str());
    let text = |status: StatusCode, text: &str| plain(status, text, reference);
    match refusal {
        Refusal::Identity(failure) => {
            let throttled_for = failure.as_ref().and_then(AuthFailure::retry_after);
            if let Some(failure) = failure {
                gw.metrics
                    .auth_failures
                    .with_label_values(&[failure.label()])
                    .inc();
                match &failure {
                    // A 407 challenge (every browser's first request) is only
                    // counted; a 403 to a client no identity source knows is
                    // audited, so its reference is in the log.
                    AuthFailure::Missing if gw.identity.basic_realm().is_none() && !gw.identity.offers_negotiate() => {
                        observe::refused(&ctx.log, "authentication");
                    }
                    AuthFailure::Missing => observe::not_audited(&ctx.log),
                    other => {
                        tracing::info!(reason = other.label(), peer = %ctx.peer, "proxy authentication failed");
                        let known = match other {
                            AuthFailure::BadCredentials { known_user } => known_user.as_deref(),
                            _ => None,
                        };
                        observe::bad_credentials(&ctx.log, known);
                    }
                }
            }
            if let Some(wait) = throttled_for {
                return signin_throttled(wait, reference);
            }
            let negotiate = gw.identity.offers_negotiate();
            match gw.identity.basic_realm() {
                None if !negotiate => unknown_client(ctx),
                realm => auth_required(negotiate, realm, reference),
            }
        }
        Refusal::NotKnown => {
            gw.metrics
                .auth_failures
                .with_label_values(&[AuthFailure::Missing.label()])
                .inc();
            observe::refused(&ctx.log, "authentication");
            unknown_client(ctx)
        }
        Refusal::Blocked(denial) => blocked(ctx, &denial),
        Refusal::Warn(w) => interstitial(ctx, &w),
        Refusal::DestinationGuard { reason, what } => {
            tracing::info!(destination = %what, reason = reason.label(), peer = %ctx.peer, "the destination guard refused a destination");
            gw.metrics
                .destination_denied
                .with_label_values(&[reason.label()])
                .inc();
            observe::refused(&ctx.log, "destination-guard");
            destination_denied(ctx, &format!("{what} is not allowed"))
        }
        Refusal::BadRequest(why) => text(StatusCode::BAD_REQUEST, &why),
        Refusal::HeadTooLarge => text(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "The request head is larger than the gateway accepts.",
        ),
        Refusal::MethodNotAllowed => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "TRACE, and CONNECT inside a tunnel, are not allowed through the gateway.",
        ),
        Refusal::Misdirected => text(
            StatusCode::MISDIRECTED_REQUEST,
            "This request names another host than the one the connection was opened for.",
        ),
        Refusal::BodyTooLarge => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is larger than the gateway may check, so it was not sent.",
        ),
        Refusal::Undecodable => text(
            StatusCode::FORBIDDEN,
            "The request body could not be checked (unknown or broken encoding), so it was not sent.",
        ),
        Refusal::Budget => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway is checking too many posts at once. Nothing was sent; try again shortly.",
        ),
        Refusal::BodyTooSlow => {
            let mut resp = text(
                StatusCode::REQUEST_TIMEOUT,
                "The request body arrived too slowly for the gateway to check it, so nothing was sent. Check the connection and try again.",
            );
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
        Refusal::AuditBusy => {
            gw.metrics.audit_dropped.inc();
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The gateway cannot record this request right now, and requests that are checked for sensitive data are never passed unrecorded. Try again shortly.",
            )
        }
        Refusal::TooManyTunnels => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway has too many open tunnels (limits.max_tunnels). Try again shortly.",
        ),
        Refusal::Upstream { kind, detail } => {
            gw.metrics
                .upstream_errors
                .with_label_values(&[kind.label()])
                .inc();
            upstream_failed(ctx, kind, &detail)
        }
        Refusal::MalformedBody => text(
            StatusCode::BAD_REQUEST,
            "The request body was malformed or cut off; nothing complete was sent.",
        ),
        Refusal::Acknowledgement(why) => text(StatusCode::FORBIDDEN, why),
    }
}

/// 303 to `location` on the same host (a warn acknowledged).
pub(crate) fn see_other(location: &str, reference: &str) -> Response<ProxyBody> {
    let mut resp = plain(StatusCode::SEE_OTHER, "Continuing.", reference);
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The CSP on every page the gateway makes.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

/// The CSP of a page that shows `pages.logo` (inlined as a `data:` URI).
pub const CSP_WITH_LOGO: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'";

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    pages::escape(s)
}

fn finish(
    status: StatusCode,
    content_type: &'static str,
    body: String,
    reference: &str,
) -> Response<ProxyBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(reference) {
        h.insert(REFERENCE, v);
    }
    resp.extensions_mut().insert(GatewayMade);
    resp
}

fn json(status: StatusCode, value: serde_json::Value, reference: &str) -> Response<ProxyBody> {
    finish(status, "application/json", value.to_string(), reference)
}

/// A page in the gateway's style (the admin listener's pages, in English).
pub fn page(
    title: &str,
    lead: &str,
    details: &[(&str, String)],
    footer: &str,
    extra_html: &str,
) -> String {
    pages::admin_page(title, lead, details, footer, extra_html)
}

/// An HTML page of the gateway's for this request: the logo's CSP when the
/// page shows one.
fn html_page(ctx: &RequestCtx, status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut resp = finish(status, "text/html; charset=utf-8", body, &ctx.reference);
    if ctx.gw.settings.pages.look.logo.is_some() {
        resp.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP_WITH_LOGO),
        );
    }
    resp
}

/// The deferred notice (200): what was stopped in the background (`denial`,
/// with its own reference), and a link on to `continue_to` on this host.
pub(crate) fn notice(
    ctx: &RequestCtx,
    denial: &Denial,
    denied_reference: &str,
    continue_to: &str,
) -> Response<ProxyBody> {
    let (look, c) = look(ctx);
    let body = pages::notice(
        look,
        c,
        &denial.stopped(denied_reference),
        &ctx.gw.settings.support_contact,
        super::warn::safe_path(continue_to),
    );
    html_page(ctx, StatusCode::OK, body)
}

/// What a denial names.
struct BlockInfo<'a> {
    pub rule: &'a str,
    pub site: &'a str,
    pub activity: &'a str,
    pub detectors: &'a [String],
    pub support_contact: &'a str,
}

/// 403: denied by policy or DLP. HTML for page loads, JSON otherwise.
fn blocked(ctx: &RequestCtx, denial: &Denial) -> Response<ProxyBody> {
    let reference = ctx.reference.as_str();
    let info = denial.info(&ctx.gw.settings.support_contact);
    if !ctx.html {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({
                "error": "blocked",
                "rule": info.rule,
                "site": info.site,
                "activity": info.activity,
                "detectors": info.detectors,
                "reference": reference,
            }),
            reference,
        );
    }
    let (look, c) = look(ctx);
    let body = pages::blocked(look, c, &denial.stopped(reference), info.support_contact);
    html_page(ctx, StatusCode::FORBIDDEN, body)
}

/// 407: credentials needed or wrong. Offers `Negotiate` (Kerberos single sign-on)
/// first when `negotiate`, then `Basic` when a realm is given.
fn auth_required(
    negotiate: bool,
    basic_realm: Option<&str>,
    reference: &str,
) -> Response<ProxyBody> {
    let mut resp = finish(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        "text/plain; charset=utf-8",
        "Sign in to the web gateway to continue.\n".into(),
        reference,
    );
    if negotiate {
        resp.headers_mut().append(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static("Negotiate"),
        );
    }
    if let Some(realm) = basic_realm {
        let realm = realm.replace(['"', '\\'], "");
        if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
        {
            resp.headers_mut().append(header::PROXY_AUTHENTICATE, v);
        }
    }
    resp
}

/// 403 for a client with no identity where no sign-in is offered.
/// 429 for a sign-in refused while its address or name backs off: no
/// `Proxy-Authenticate` (a browser must not ask again for a password that is not
/// the problem), `Retry-After` in whole seconds.
fn signin_throttled(wait: std::time::Duration, reference: &str) -> Response<ProxyBody> {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut resp = finish(
        StatusCode::TOO_MANY_REQUESTS,
        "text/plain; charset=utf-8",
        format!("Too many failed sign-ins from this computer or for this user name. Wait {secs} seconds and sign in again; if it keeps happening, the password saved in your browser may be wrong: ask your IT service desk (reference {reference}).\n"),
        reference,
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

fn unknown_client(ctx: &RequestCtx) -> Response<ProxyBody> {
    let reference = ctx.reference.as_str();
    if ctx.html {
        let (look, c) = look(ctx);
        let body = pages::unknown_computer(look, c, &ctx.gw.settings.support_contact, reference);
        return html_page(ctx, StatusCode::FORBIDDEN, body);
    }
    finish(
        StatusCode::FORBIDDEN,
        "text/plain; charset=utf-8",
        format!("The web gateway does not know this computer. Ask your IT service desk to set it up (reference {reference}).\n"),
        reference,
    )
}

/// 403 by the destination guard (port, private address, the gateway itself).
fn destination_denied(ctx: &RequestCtx, reason: &str) -> Response<ProxyBody> {
    let reference = ctx.reference.as_str();
    if !ctx.html {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({
                "error": "blocked",
                "rule": "destination-guard",
                "reason": reason,
                "reference": reference,
            }),
            reference,
        );
    }
    let (look, c) = look(ctx);
    let body = pages::guard(look, c, reason, &ctx.gw.settings.support_contact, reference);
    html_page(ctx, StatusCode::FORBIDDEN, body)
}

/// 502 / 504: the site could not be reached; distinct from a policy denial.
fn upstream_failed(ctx: &RequestCtx, kind: UpstreamFailure, detail: &str) -> Response<ProxyBody> {
    let reference = ctx.reference.as_str();
    let status = if kind == UpstreamFailure::Timeout {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    if !ctx.html {
        return json(
            status,
            serde_json::json!({"error": "upstream", "kind": kind.label(), "detail": detail, "reference": reference}),
            reference,
        );
    }
    let key = match kind {
        UpstreamFailure::Dns => "upstream_dns",
        UpstreamFailure::Refused => "upstream_refused",
        UpstreamFailure::Timeout => "upstream_timeout",
        UpstreamFailure::Tls => "upstream_tls",
        UpstreamFailure::Protocol => "upstream_protocol",
    };
    let (look, c) = look(ctx);
    html_page(
        ctx,
        status,
        pages::upstream(look, c, key, detail, reference),
    )
}

/// A plain error status with a short text (400, 405, 413, 421, 431, 503).
fn plain(status: StatusCode, text: &str, reference: &str) -> Response<ProxyBody> {
    finish(
        status,
        "text/plain; charset=utf-8",
        format!("{text}\n"),
        reference,
    )
}

/// The warn interstitial, with a Continue button that POSTs a signed token.
/// JSON for anything but a page navigation (which has a token).
fn interstitial(ctx: &RequestCtx, w: &Warning) -> Response<ProxyBody> {
    let reference = ctx.reference.as_str();
    let info = w.denial.info(&ctx.gw.settings.support_contact);
    let Some(token) = w.token.as_deref() else {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({
                "error": "acknowledgement_required",
                "rule": info.rule,
                "site": info.site,
                "activity": info.activity,
                "message": w.message,
                "reference": reference,
            }),
            reference,
        );
    };
    let (look, c) = look(ctx);
    let form = pages::WarnForm {
        message: w.message.as_deref(),
        remember_for: w.remember_for,
        action: super::warn::CONTINUE_PATH,
        token,
    };
    let body = pages::warn(
        look,
        c,
        &w.denial.stopped(reference),
        form,
        info.support_contact,
    );
    html_page(ctx, StatusCode::FORBIDDEN, body)
}
