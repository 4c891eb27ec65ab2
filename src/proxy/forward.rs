//! Absolute-form HTTP requests (`GET http://host/path`): admit the client, check
//! the URL and port, then the shared [`pipeline`](super::pipeline) decides; an
//! allowed request is re-serialised through hyper to the site over this client's
//! own HTTP/1.1 connection (one per user, host and port), dialled (through the destination guard) only then.
//! Behind a parent proxy (`upstream.proxy`, unless `upstream.no_proxy` names
//! the host) that connection goes to the parent, and the request is sent to it
//! in absolute form with the parent's `Proxy-Authorization` (a parent such as
//! Squid refuses CONNECT to port 80); the parent's 407 becomes a 502 naming it.
//! The body is buffered only where a matcher or a scan needs it; otherwise it
//! streams. Nothing is retried once sent (a retried POST could post twice).
//! Called by `route`; its leg also by `transparent`, pinned to a redirected
//! connection's original destination (`original::open_http`).

use http::{header, HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::body::ProxyBody;
use super::context::{ClientConn, Exchange, RequestCtx};
use super::pipeline::{self, Allowed, Leg};
use super::respond::Refusal;
use crate::policy::{normalize_host, NormalHost};

pub(crate) async fn handle(
    ctx: &RequestCtx,
    conn: &ClientConn,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Refusal> {
    let principal = pipeline::admit(ctx, Some(&conn.identity), req.headers()).await?;
    let uri = req.uri();
    if uri.scheme_str() != Some("http") {
        return Err(Refusal::BadRequest(
            "Only http:// URLs are forwarded; https goes through CONNECT.".into(),
        ));
    }
    let host = match &ctx.target_host {
        Some(host) => host.clone(),
        None => uri
            .host()
            .and_then(normalize_host)
            .ok_or(Refusal::BadRequest(
                "The request names no valid host.".into(),
            ))?,
    };
    let port = uri.port_u16().unwrap_or(80);
    pipeline::check_port(&ctx.gw, port)?;
    // An IP literal is a site's when it is the site's address, an unlisted
    // destination only inside `upstream.allow_ip_literals`, else refused.
    // An unlisted name at a site's address is decided as that site (the name is
    // resolved before the decision; the leg dials it again, from the cache).
    let policy = ctx.gw.policy();
    let decide_as = match &host {
        NormalHost::Ip(ip) => super::connect::ip_literal_site(&ctx.gw, *ip)?.map(|s| s.host),
        NormalHost::Domain(_) if policy.site_for(&host).is_some() => None,
        NormalHost::Domain(_) => super::connect::unlisted_name_site(&ctx.gw, &policy, &host, port)
            .await?
            .0
            .map(|s| s.host),
    };
    let ex = Exchange {
        ctx,
        principal,
        host,
        port,
        decide_as,
    };
    Ok(pipeline::run(&ex, req, &PlainLeg { conn, pinned: None }).await)
}

/// Plain HTTP to the site over the client's own pooled connection.
pub(crate) struct PlainLeg<'a> {
    pub conn: &'a ClientConn,
    /// A transparent connection's original destination: the only address
    /// dialled, once the Host is seen to lead there (`original::open_http`).
    pub pinned: Option<std::net::SocketAddr>,
}

impl Leg for PlainLeg<'_> {
    const UPGRADES: bool = false;

    async fn send(
        &self,
        ex: &Exchange<'_>,
        allowed: Allowed,
        _client_upgrade: Option<OnUpgrade>,
    ) -> Result<Response<ProxyBody>, Refusal> {
        let Allowed {
            mut req, target, ..
        } = allowed;
        let gw = &ex.ctx.gw;
        let authority = ex.authority(80);
        if let Ok(v) = HeaderValue::from_str(&authority) {
            req.headers_mut().insert(header::HOST, v);
        }
        let parent = gw.dialer.parent_for(&ex.host);
        // Origin-form to the site; absolute-form to a parent, with its own
        // credentials (never the client's).
        let uri = match parent {
            Some(_) => format!("http://{authority}{target}"),
            None => target,
        };
        *req.uri_mut() = uri
            .parse()
            .map_err(|_| Refusal::BadRequest("The request path is not valid.".into()))?;
        req.headers_mut().remove(header::PROXY_AUTHORIZATION);
        if let Some(auth) = parent.and_then(|p| p.authorization.clone()) {
            req.headers_mut().insert(header::PROXY_AUTHORIZATION, auth);
        }
        // Pooled per user: Alice's upstream connection is never Bob's.
        let host = ex.host.to_authority_host();
        let mut pooled = self
            .conn
            .upstreams
            .lock()
            .await
            .take(&ex.principal.user, &host, ex.port);
        if let Some((_, s)) = pooled.as_mut() {
            if s.is_closed() || s.ready().await.is_err() {
                pooled = None;
            }
        }
        let (key, mut sender) = match pooled {
            Some(pooled) => pooled,
            // Boxed: the dial's state is needed only on a new connection, and
            // inline it would size (and be moved with) every request's future.
            None => (
                (ex.principal.user.clone(), host, ex.port),
                Box::pin(self.dial(ex)).await?,
            ),
        };
        let resp = tokio::time::timeout(
            gw.settings.upstream.response_timeout,
            sender.send_request(req),
        )
        .await
        .map_err(|_| pipeline::timed_out(ex))?
        .map_err(|e| pipeline::send_failed(ex, &e))?;
        if let Some(p) = parent {
            if resp.status() == http::StatusCode::PROXY_AUTHENTICATION_REQUIRED {
                // Never passed on: the client would offer its own credentials.
                return Err(Refusal::Upstream {
                    kind: super::upstream::UpstreamFailure::Refused,
                    detail: p.credentials_refused(),
                });
            }
        }
        self.conn.upstreams.lock().await.put(key, sender);
        Ok(pipeline::from_upstream(resp))
    }
}

impl PlainLeg<'_> {
    /// A new HTTP/1.1 connection to the site (through the destination guard;
    /// for a transparent connection, at its original destination only).
    async fn dial(
        &self,
        ex: &Exchange<'_>,
    ) -> Result<hyper::client::conn::http1::SendRequest<ProxyBody>, Refusal> {
        let gw = &ex.ctx.gw;
        let policy = gw.policy();
        let site = policy.site_for(&ex.host).map(|s| s.name.as_str());
        let stream = match self.pinned {
            Some(orig) => super::original::open_http(gw, &ex.host, ex.port, site, orig).await?,
            None => {
                gw.dialer
                    .open_http(&ex.host, ex.port, site)
                    .await
                    .map_err(|e| pipeline::dial_refusal(e, &ex.host, ex.port))?
                    .0
            }
        };
        // Head and body flattened into one `send`, as on the client side.
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| pipeline::protocol_error(&ex.host, e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}
