//! Absolute-form HTTP requests (`GET http://host/path`): identify, decide, scan
//! under a `dlp` rule, then re-serialise the request through hyper to the site.
//! The body is buffered only where a matcher or a scan needs it; otherwise it
//! streams. Nothing is retried once sent (a retried POST could post twice).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::TokioIo;

use super::headers::{clean_request_headers, strip_hop_by_hop};
use super::respond::{self, BlockInfo, UpstreamFailure};
use super::server::ClientConn;
use super::{observe, warn, Gateway, ProxyBody};
use crate::identity::Principal;
use crate::policy::{normalize_host, Action, Facts, NormalHost};
use crate::verdict::{apply_dlp, Content, ScanRefusal, Verdict};
use crate::view::{RawRequest, RequestView};

/// A body as the proxy holds it: still streaming, or read whole for a scan.
pub enum HeldBody {
    Streaming(Incoming),
    /// The bytes and their share of `limits.max_buffered_bytes`, released when the
    /// forwarded body is dropped.
    Buffered(Bytes, Option<Arc<tokio::sync::OwnedSemaphorePermit>>),
}

impl HeldBody {
    pub fn into_proxy_body(self) -> ProxyBody {
        match self {
            HeldBody::Streaming(b) => b.map_err(|e| Box::new(e) as super::BoxError).boxed(),
            HeldBody::Buffered(b, permit) => HeldBytes {
                data: Some(b),
                _permit: permit,
            }
            .boxed(),
        }
    }
}

/// A buffered body that keeps its exact length (so it is forwarded with the same
/// framing) and its share of the buffering budget until it is dropped.
struct HeldBytes {
    data: Option<Bytes>,
    _permit: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
}

impl http_body::Body for HeldBytes {
    type Data = Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, super::BoxError>>> {
        std::task::Poll::Ready(
            self.data
                .take()
                .filter(|d| !d.is_empty())
                .map(|d| Ok(http_body::Frame::data(d))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.as_ref().is_none_or(|d| d.is_empty())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// Why a body could not be held for a scan.
enum BufferError {
    /// Larger than `limits.max_scan_bytes` (413).
    TooLarge,
    /// `limits.max_buffered_bytes` is used up by other requests (503).
    Budget,
}

/// How much of an oversized body is read and dropped so that the client can read
/// the 413 (a larger one is cut off: the connection closes).
const DRAIN_CAP: usize = 16 << 20;

/// Reads a whole body up to `max` bytes; a larger one is drained (up to
/// [`DRAIN_CAP`]) and refused.
async fn read_limited_draining(mut body: Incoming, max: usize) -> Result<Bytes, ()> {
    let mut out = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Err(()) };
        if let Some(data) = frame.data_ref() {
            total += data.len();
            if total <= max {
                out.extend_from_slice(data);
            } else if total > DRAIN_CAP {
                return Err(());
            }
        }
    }
    if total > max {
        Err(())
    } else {
        Ok(out.freeze())
    }
}

/// Reads a whole body up to `max` bytes. `Err(true)` when it is larger.
pub async fn read_limited(body: Incoming, max: usize) -> Result<Bytes, bool> {
    match Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(e
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()),
    }
}

pub async fn handle(
    gw: Arc<Gateway>,
    peer: SocketAddr,
    conn: Arc<ClientConn>,
    req: Request<Incoming>,
    reference: String,
    log: &observe::SharedLog,
) -> Response<ProxyBody> {
    let html = respond::wants_html(req.headers());
    let principal = match gw
        .admit_on(
            peer.ip(),
            Some(&conn.identity),
            req.headers(),
            &reference,
            log,
        )
        .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let uri = req.uri().clone();
    if uri.scheme_str() != Some("http") {
        return respond::plain(
            StatusCode::BAD_REQUEST,
            "Only http:// URLs are forwarded; https goes through CONNECT.",
            &reference,
        );
    }
    let Some(host) = uri.host().and_then(normalize_host) else {
        return respond::plain(
            StatusCode::BAD_REQUEST,
            "The request names no valid host.",
            &reference,
        );
    };
    let port = uri.port_u16().unwrap_or(80);
    if let Err(d) = gw.dialer.guard.check_port(port) {
        gw.destination_refused(log, d.label());
        return respond::destination_denied(
            &format!("port {port} is not allowed ({})", d.label()),
            html,
            &gw.settings.support_contact,
            &reference,
        );
    }
    let (parts, body) = req.into_parts();
    if parts.method == http::Method::POST && parts.uri.path() == warn::CONTINUE_PATH {
        return acknowledge(&gw, &principal, &host, body, &reference).await;
    }
    let outcome = decide_request(&gw, &principal, &parts, &host, body, &reference).await;
    let Decided {
        verdict,
        body,
        target: path,
    } = match outcome {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    observe::decided(&gw, log, &verdict);
    if let Some(resp) = respond_to_verdict(&gw, &principal, &verdict, &parts, html, &reference, log)
    {
        return resp;
    }
    let authority = if port == 80 {
        host.to_authority_host()
    } else {
        format!("{}:{port}", host.to_authority_host())
    };
    let mut headers = parts.headers;
    clean_request_headers(&mut headers, &gw.identity.identity_headers());
    if let Ok(v) = HeaderValue::from_str(&authority) {
        headers.insert(header::HOST, v);
    }
    let mut up = Request::new(observe::count_up(body.into_proxy_body(), log.clone()));
    *up.method_mut() = parts.method;
    *up.uri_mut() = match path.parse() {
        Ok(u) => u,
        Err(_) => {
            return respond::plain(
                StatusCode::BAD_REQUEST,
                "The request path is not valid.",
                &reference,
            )
        }
    };
    *up.headers_mut() = headers;
    let answer = Answer {
        html,
        reference: &reference,
        log,
    };
    send_upstream(&gw, &conn, &host, port, up, answer).await
}

/// A request decided: the verdict, the body to forward and the request target
/// the site receives (the path as the view normalised it).
pub struct Decided {
    pub verdict: Verdict,
    pub body: HeldBody,
    pub target: String,
}

/// Identifies the activity (buffering the body if a matcher needs it), decides,
/// and scans under a `dlp` rule.
pub async fn decide_request(
    gw: &Gateway,
    principal: &Principal,
    parts: &http::request::Parts,
    host: &NormalHost,
    body: Incoming,
    reference: &str,
) -> Result<Decided, Response<ProxyBody>> {
    let policy = gw.policy();
    let max = gw.settings.limits.max_scan_bytes;
    let has_body = !body.is_end_stream();
    let site = policy.site_for(host);
    let forward_target;
    let mut held = HeldBody::Streaming(body);
    let refuse = |e: BufferError| match e {
        BufferError::TooLarge => respond::plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is larger than the gateway may check, so it was not sent.",
            reference,
        ),
        BufferError::Budget => respond::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway is checking too many posts at once. Nothing was sent; try again shortly.",
            reference,
        ),
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if has_body && site.is_some_and(|s| s.needs_body) {
        held = buffer(gw, held, max, declared).await.map_err(refuse)?;
    }
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let decision = {
        let buffered = match &held {
            HeldBody::Buffered(b, _) => Some(b.as_ref()),
            HeldBody::Streaming(_) => None,
        };
        let raw = RawRequest {
            method: parts.method.as_str(),
            host,
            target,
            headers: &parts.headers,
            body: buffered,
            connect: false,
        };
        let view = match RequestView::build(&policy, &raw) {
            Ok(v) => v,
            Err(refusal) => {
                return Err(respond::plain(
                    StatusCode::BAD_REQUEST,
                    &format!("{refusal}; nothing was sent."),
                    reference,
                ))
            }
        };
        forward_target = view.forward_target();
        let facts = Facts {
            user: &principal.user,
            groups: &principal.groups,
            request: view,
            at: Some(Utc::now()),
        };
        policy.decide_unworded(&facts)
    };
    if decision.dlp.is_some() && decision.action != Action::Deny && has_body {
        // Fail closed: what cannot be scanned whole is not sent.
        held = buffer(gw, held, max, declared).await.map_err(refuse)?;
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
    let body_bytes: &[u8] = match &held {
        HeldBody::Buffered(b, _) => b,
        HeldBody::Streaming(_) => &[],
    };
    let content = Content {
        content_type: content_type.as_deref(),
        content_encoding: content_encoding.as_deref(),
        body: body_bytes,
        query: parts.uri.query(),
    };
    let verdict = apply_dlp(&policy, decision, Some(content), max);
    Ok(Decided {
        verdict,
        body: held,
        target: forward_target,
    })
}

/// Reads the body whole, within `max` and the gateway-wide buffering budget
/// (reserved up front: the declared length, or `max` when none is declared).
async fn buffer(
    gw: &Gateway,
    held: HeldBody,
    max: usize,
    declared: Option<usize>,
) -> Result<HeldBody, BufferError> {
    match held {
        HeldBody::Buffered(b, p) => Ok(HeldBody::Buffered(b, p)),
        HeldBody::Streaming(body) => {
            if declared.is_some_and(|n| n > max) {
                // Read (and drop) what the client is sending, so it sees the 413
                // instead of a broken pipe; beyond the drain cap the connection closes.
                let _ = read_limited_draining(body, 0).await;
                return Err(BufferError::TooLarge);
            }
            let kib = declared.unwrap_or(max).div_ceil(1024).max(1);
            let permit = gw
                .buffer_budget
                .clone()
                .try_acquire_many_owned(u32::try_from(kib).unwrap_or(u32::MAX))
                .map_err(|_| BufferError::Budget)?;
            let bytes = read_limited(body, max)
                .await
                .map_err(|_| BufferError::TooLarge)?;
            Ok(HeldBody::Buffered(bytes, Some(Arc::new(permit))))
        }
    }
}

/// The response for anything but an allow (deny, warn not yet acknowledged,
/// refusal); `None` when the request goes on.
pub fn respond_to_verdict(
    gw: &Gateway,
    principal: &Principal,
    verdict: &Verdict,
    parts: &http::request::Parts,
    html: bool,
    reference: &str,
    log: &observe::SharedLog,
) -> Option<Response<ProxyBody>> {
    let d = &verdict.decision;
    if d.dlp.is_some() && d.action != Action::Deny && !gw.audit.has_room() {
        gw.metrics.audit_dropped.inc();
        return Some(respond::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway cannot record this request right now, and requests that are checked for sensitive data are never passed unrecorded. Try again shortly.",
            reference,
        ));
    }
    let detectors: Vec<String> = verdict
        .findings
        .iter()
        .filter(|f| f.on_finding == "block")
        .map(|f| f.detector.clone())
        .collect();
    let info = BlockInfo {
        rule: &d.rule,
        site: &d.site,
        activity: &d.activity,
        detectors: &detectors,
        support_contact: &gw.settings.support_contact,
    };
    match d.action {
        Action::Allow => None,
        Action::Deny => {
            match &verdict.refusal {
                Some(ScanRefusal::TooLarge) => {
                    return Some(respond::plain(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "The request body is larger than the gateway may check, so it was not sent.",
                        reference,
                    ))
                }
                Some(ScanRefusal::Undecodable(_)) => {
                    return Some(respond::plain(
                        StatusCode::FORBIDDEN,
                        "The request body could not be checked (unknown or broken encoding), so it was not sent.",
                        reference,
                    ))
                }
                None => {}
            }
            if principal.challenge_on_deny && detectors.is_empty() {
                return Some(gw.refuse_identity(reference));
            }
            Some(respond::blocked(&info, html, reference))
        }
        Action::Warn => {
            if gw.warn.acknowledged(&principal.user, &d.site, &d.rule) {
                observe::set_action(log, Action::Allow);
                return None;
            }
            if warn::is_navigation(&parts.method, &parts.headers) {
                let path = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let token = gw.warn.token(&principal.user, &d.site, &d.rule, path);
                Some(respond::interstitial(
                    &info,
                    d.message.as_deref(),
                    d.warn_for,
                    &token,
                    true,
                    reference,
                ))
            } else {
                Some(respond::interstitial(
                    &info,
                    d.message.as_deref(),
                    d.warn_for,
                    "",
                    false,
                    reference,
                ))
            }
        }
    }
}

/// `POST /.socialgate/continue` on a site's host: verify the signed token, record
/// the acknowledgement, redirect to the original path on the same host.
pub async fn acknowledge(
    gw: &Gateway,
    principal: &Principal,
    host: &NormalHost,
    body: Incoming,
    reference: &str,
) -> Response<ProxyBody> {
    let refuse = |why: &str| respond::plain(StatusCode::FORBIDDEN, why, reference);
    let Ok(body) = read_limited(body, 8192).await else {
        return refuse("The acknowledgement could not be read.");
    };
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let Some(ack) = gw.warn.verify(&token) else {
        return refuse(
            "This acknowledgement is not valid or has expired. Go back and load the page again.",
        );
    };
    let policy = gw.policy();
    let site = policy
        .site_for(host)
        .map(|s| s.name.as_str())
        .unwrap_or("unlisted");
    if ack.user != principal.user || ack.site != site {
        return refuse("This acknowledgement was made for another user or site.");
    }
    let Some(rule) = policy.rules.iter().find(|r| r.name == ack.rule) else {
        return refuse(
            "The rule that asked for this acknowledgement no longer exists. Load the page again.",
        );
    };
    gw.warn
        .record(&principal.user, site, &rule.name, rule.warn_for);
    tracing::info!(user = %principal.user, site, rule = %rule.name, "warning acknowledged");
    let mut resp = respond::plain(StatusCode::SEE_OTHER, "Continuing.", reference);
    if let Ok(v) = HeaderValue::from_str(warn::safe_path(&ack.path)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// How to answer and record a request the gateway may have to refuse.
#[derive(Clone, Copy)]
pub struct Answer<'a> {
    /// The client wants a page rather than JSON.
    pub html: bool,
    pub reference: &'a str,
    pub log: &'a observe::SharedLog,
}

/// Sends `req` over this client's own connection to `host:port`, dialling one
/// through the destination guard when there is none.
pub async fn send_upstream(
    gw: &Gateway,
    conn: &ClientConn,
    host: &NormalHost,
    port: u16,
    req: Request<ProxyBody>,
    answer: Answer<'_>,
) -> Response<ProxyBody> {
    let Answer {
        html,
        reference,
        log,
    } = answer;
    let key = (host.to_authority_host(), port);
    let mut pooled = conn.upstreams.lock().await.remove(&key);
    if let Some(s) = pooled.as_mut() {
        if s.is_closed() || s.ready().await.is_err() {
            pooled = None;
        }
    }
    let mut sender = match pooled {
        Some(s) => s,
        None => match gw.dialer.dial(host, port).await {
            Ok((tcp, _addr)) => {
                match hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await {
                    Ok((sender, connection)) => {
                        tokio::spawn(async move {
                            let _ = connection.await;
                        });
                        sender
                    }
                    Err(e) => {
                        return gw.upstream_error(
                            UpstreamFailure::Protocol,
                            &format!("{host}: {e}"),
                            html,
                            reference,
                        )
                    }
                }
            }
            Err(e) => return gw.dial_error(e, host, html, reference, log),
        },
    };
    let waited = tokio::time::timeout(
        gw.settings.upstream.response_timeout,
        sender.send_request(req),
    )
    .await;
    let Ok(sent) = waited else {
        return gw.upstream_error(
            UpstreamFailure::Timeout,
            &format!(
                "{host} did not answer within {}s",
                gw.settings.upstream.response_timeout.as_secs()
            ),
            html,
            reference,
        );
    };
    match sent {
        Ok(resp) => {
            conn.upstreams.lock().await.insert(key, sender);
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(
                parts,
                body.map_err(|e| Box::new(e) as super::BoxError).boxed(),
            )
        }
        // The client's own body broke (a malformed chunk, a reset): its fault, 400.
        Err(e) if e.is_user() => respond::malformed_body(reference),
        Err(e) => gw.upstream_error(
            UpstreamFailure::Protocol,
            &format!("{host} closed the connection before answering ({e})"),
            html,
            reference,
        ),
    }
}
