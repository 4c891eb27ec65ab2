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
//! (rule, site, activity, detector ids) and the support contact.

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
#[derive(Debug)]
pub struct Denial {
    pub rule: String,
    pub site: String,
    pub activity: String,
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
}

/// The response for `refusal`, with its audit fields and metrics.
pub(crate) fn render(ctx: &RequestCtx, refusal: Refusal) -> Response<ProxyBody> {
    let (gw, reference, html) = (&ctx.gw, ctx.reference.as_str(), ctx.html);
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
                None if !negotiate => unknown_client(reference),
                realm => auth_required(negotiate, realm, reference),
            }
        }
        Refusal::NotKnown => {
            gw.metrics
                .auth_failures
                .with_label_values(&[AuthFailure::Missing.label()])
                .inc();
            observe::refused(&ctx.log, "authentication");
            unknown_client(reference)
        }
        Refusal::Blocked(denial) => blocked(
            &denial.info(&gw.settings.support_contact),
            html,
            reference,
        ),
        Refusal::Warn(w) => interstitial(
            &w.denial.info(&gw.settings.support_contact),
            w.message.as_deref(),
            w.remember_for,
            w.token.as_deref(),
            reference,
        ),
        Refusal::DestinationGuard { reason, what } => {
            tracing::info!(destination = %what, reason = reason.label(), peer = %ctx.peer, "the destination guard refused a destination");
            gw.metrics
                .destination_denied
                .with_label_values(&[reason.label()])
                .inc();
            observe::refused(&ctx.log, "destination-guard");
            destination_denied(
                &format!("{what} is not allowed"),
                html,
                &gw.settings.support_contact,
                reference,
            )
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
            upstream_failed(kind, &detail, html, reference)
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

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

/// A page in the gateway's style.
pub fn page(
    title: &str,
    lead: &str,
    details: &[(&str, String)],
    footer: &str,
    extra_html: &str,
) -> String {
    let mut rows = String::new();
    for (k, v) in details {
        rows.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>",
            html_escape(k),
            html_escape(v)
        ));
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Arial,sans-serif;background:#f3f2f1;color:#0b0c0c}}
header{{background:#1d3557;color:#fff;padding:14px 24px;font-weight:600;letter-spacing:.02em}}
main{{max-width:640px;margin:40px auto;background:#fff;border-top:6px solid #1d70b8;padding:28px 32px;box-shadow:0 1px 3px rgba(0,0,0,.12)}}
h1{{font-size:1.6rem;margin:0 0 12px}}
p{{line-height:1.5}}
table{{border-collapse:collapse;margin:18px 0;width:100%}}
th{{text-align:left;font-weight:600;padding:6px 24px 6px 0;width:1%;white-space:nowrap;vertical-align:top;color:#505a5f}}
td{{padding:6px 0;font-family:ui-monospace,Consolas,monospace;overflow-wrap:anywhere}}
.foot{{color:#505a5f;font-size:.9rem;border-top:1px solid #b1b4b6;padding-top:12px;margin-top:20px}}
button{{font:inherit;font-weight:600;background:#00703c;color:#fff;border:0;padding:10px 18px;cursor:pointer;box-shadow:0 2px 0 #002d18}}
button:hover{{background:#005a30}}
button:focus-visible{{outline:3px solid #ffdd00;outline-offset:0}}
@media (max-width:640px){{main{{margin:0 0 24px;padding:20px 16px}}}}
</style></head>
<body><header>Web gateway</header><main>
<h1>{title}</h1>
<p>{lead}</p>
<table>{rows}</table>
{extra_html}
<p class="foot">{footer}</p>
</main></body></html>
"#,
        title = html_escape(title),
        lead = html_escape(lead),
    )
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
fn blocked(info: &BlockInfo<'_>, html: bool, reference: &str) -> Response<ProxyBody> {
    if !html {
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
    let lead = if info.detectors.is_empty() {
        format!(
            "{} is not allowed for you under the organisation's social media policy.",
            activity_phrase(info.activity, info.site)
        )
    } else {
        "Your post was stopped because it appears to contain sensitive information. Nothing was sent. Remove it and try again.".to_string()
    };
    let mut details = vec![
        ("Rule", info.rule.to_string()),
        ("Site", info.site.to_string()),
        ("Activity", info.activity.to_string()),
    ];
    if !info.detectors.is_empty() {
        details.push(("Found", info.detectors.join(", ")));
    }
    details.push(("Reference", reference.to_string()));
    let footer = format!(
        "If you need this for your work, contact {} and quote the reference.",
        info.support_contact
    );
    finish(
        StatusCode::FORBIDDEN,
        "text/html; charset=utf-8",
        page("Blocked by the web gateway", &lead, &details, &footer, ""),
        reference,
    )
}

/// "Reading linkedin", "Posting on x", "Connecting to this website".
fn activity_phrase(activity: &str, site: &str) -> String {
    let site = if site == "unlisted" {
        "this website"
    } else {
        site
    };
    match activity {
        "read" => format!("Reading {site}"),
        "connect" => format!("Connecting to {site}"),
        "post" => format!("Posting on {site}"),
        "comment" => format!("Commenting on {site}"),
        "message" => format!("Sending messages on {site}"),
        "upload" => format!("Uploading to {site}"),
        "react" => format!("Reacting to posts on {site}"),
        "login" => format!("Signing in to {site}"),
        "write" => format!("Making changes on {site}"),
        other => format!("The activity \"{other}\" on {site}"),
    }
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

fn unknown_client(reference: &str) -> Response<ProxyBody> {
    finish(
        StatusCode::FORBIDDEN,
        "text/plain; charset=utf-8",
        format!("The web gateway does not know this computer. Ask your IT service desk to set it up (reference {reference}).\n"),
        reference,
    )
}

/// 403 by the destination guard (port, private address, the gateway itself).
fn destination_denied(
    reason: &str,
    html: bool,
    support_contact: &str,
    reference: &str,
) -> Response<ProxyBody> {
    if !html {
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
    let details = [
        ("Rule", "destination-guard".to_string()),
        ("Reason", reason.to_string()),
        ("Reference", reference.to_string()),
    ];
    finish(
        StatusCode::FORBIDDEN,
        "text/html; charset=utf-8",
        page(
            "Blocked by the web gateway",
            "The gateway does not connect to this address or port.",
            &details,
            &format!("If you need this for your work, contact {support_contact} and quote the reference."),
            "",
        ),
        reference,
    )
}

/// 502 / 504: the site could not be reached; distinct from a policy denial.
fn upstream_failed(
    kind: UpstreamFailure,
    detail: &str,
    html: bool,
    reference: &str,
) -> Response<ProxyBody> {
    let status = if kind == UpstreamFailure::Timeout {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    let what = match kind {
        UpstreamFailure::Dns => "The site's name could not be found.",
        UpstreamFailure::Refused => "The site could not be reached.",
        UpstreamFailure::Timeout => "The site took too long to answer.",
        UpstreamFailure::Tls => "The site's security certificate is not valid, so the connection was stopped. There is no way to continue to this site.",
        UpstreamFailure::Protocol => "The site sent an answer the gateway could not understand.",
    };
    if !html {
        return json(
            status,
            serde_json::json!({"error": "upstream", "kind": kind.label(), "detail": detail, "reference": reference}),
            reference,
        );
    }
    let details = [
        ("Problem", detail.to_string()),
        ("Reference", reference.to_string()),
    ];
    finish(
        status,
        "text/html; charset=utf-8",
        page(
            "The site could not be reached",
            what,
            &details,
            "This is not a policy decision. Try again later.",
            "",
        ),
        reference,
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
fn interstitial(
    info: &BlockInfo<'_>,
    message: Option<&str>,
    remember_for: Option<Duration>,
    token: Option<&str>,
    reference: &str,
) -> Response<ProxyBody> {
    let Some(token) = token else {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({
                "error": "acknowledgement_required",
                "rule": info.rule,
                "site": info.site,
                "activity": info.activity,
                "message": message,
                "reference": reference,
            }),
            reference,
        );
    };
    let form = format!(
        r#"<form method="post" action="/.socialgate/continue"><input type="hidden" name="token" value="{}"><button type="submit">Continue</button></form>"#,
        html_escape(token)
    );
    let mut details = vec![
        ("Rule", info.rule.to_string()),
        ("Site", info.site.to_string()),
    ];
    if let Some(d) = remember_for {
        details.push((
            "Asked again after",
            humantime::format_duration(d).to_string(),
        ));
    }
    details.push(("Reference", reference.to_string()));
    finish(
        StatusCode::FORBIDDEN,
        "text/html; charset=utf-8",
        page(
            "Before you continue",
            message.unwrap_or(
                "Use of this site is recorded. Follow the organisation's social media guidance.",
            ),
            &details,
            &format!("Questions: {}.", info.support_contact),
            &form,
        ),
        reference,
    )
}
