//! Transparent mode (`listen_transparent`): connections a router or firewall
//! redirected to the gateway (nftables/iptables `redirect`, or `tproxy`), from
//! devices that have no proxy setting. The client believes it talks to the
//! site, so nothing here ever answers 407.
//!
//! - Who: `identity.networks`, and the trusted header on plain HTTP from its
//!   `from` peers; never credentials (a client that sends
//!   `Proxy-Authorization` here is not signing in to us). A client no source
//!   knows gets the 403 "not known" answer ([`Refusal::NotKnown`]); a network's
//!   `challenge: true` is ignored (a denial is the block page).
//! - Where: the original destination (`original::destination`). A connection
//!   whose original destination is the gateway itself is refused (a loop),
//!   and the destination guard judges the original destination like any
//!   resolved address.
//! - HTTP (the `http` port): the request is origin-form; the Host header names
//!   the site and must lead to the original destination (checked when the
//!   request is allowed and about to be sent: `original::open_http`); the
//!   request is then decided, scanned and sent exactly as an absolute-form
//!   request on the proxy port (`forward::PlainLeg`), to the original
//!   destination's address.
//! - HTTPS (the `https` port): the ClientHello is read and kept (then replayed
//!   to whoever takes the connection); its SNI is the CONNECT host the client
//!   would have sent (`connect::tunnel_destination`): an intercepted site is
//!   decrypted by `intercept` (each inner request decided, block pages shown),
//!   anything else is decided as a tunnel (`pipeline::decide_tunnel`) and
//!   relayed to the original destination once the SNI is seen to lead there.
//!   No SNI: decided as the original destination's IP literal (refused unless
//!   `upstream.allow_ip_literals` holds it or it is a non-intercepted site's
//!   address).
//!
//! Limits: a refusal on the HTTPS port before interception can only close the
//! connection (the client expects a TLS server): it is audited and counted as
//! on the proxy port. Linux only (`SO_ORIGINAL_DST`). Called by `runtime`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Method, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::body::ProxyBody;
use super::connect::{self, FirstFlight, TunnelDestination};
use super::context::{ClientConn, Exchange, RequestCtx};
use super::forward::PlainLeg;
use super::gateway::Gateway;
use super::intercept::{self, Prefixed};
use super::respond::{render, Refusal};
use super::{observe, original, pipeline, relay, route};
use crate::identity::Principal;
use crate::net_guard::canonical;
use crate::policy::{normalize_host, NormalHost};
use crate::settings::TransparentSettings;

/// Which traffic a transparent listener takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Redirected port 80: plain HTTP, the site from the Host header.
    Http,
    /// Redirected port 443: TLS, the site from the ClientHello's SNI.
    Https,
}

/// Binds the transparent listeners (`IP_TRANSPARENT` set under `tproxy`).
pub fn bind(settings: &TransparentSettings) -> Result<Vec<(TcpListener, Kind)>, String> {
    let mut out = Vec::new();
    for (addr, kind, key) in [
        (settings.http, Kind::Http, "http"),
        (settings.https, Kind::Https, "https"),
    ] {
        let Some(addr) = addr else { continue };
        let l = bind_one(addr, settings.tproxy).map_err(|e| {
            format!(
                "cannot listen on {addr} for transparent {key}: {e} (change `listen_transparent.{key}`{})",
                if settings.tproxy {
                    "; `tproxy: true` needs CAP_NET_ADMIN"
                } else {
                    ""
                }
            )
        })?;
        out.push((l, kind));
    }
    Ok(out)
}

fn bind_one(addr: SocketAddr, tproxy: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if tproxy {
        if addr.is_ipv4() {
            socket.set_ip_transparent_v4(true)?;
        } else {
            socket.set_ip_transparent_v6(true)?;
        }
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Serves one transparent listener until `shutdown` turns true.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    kind: Kind,
    mut shutdown: watch::Receiver<bool>,
) {
    let admission = super::server::Admission::new(&gw);
    while let Some((stream, peer, admitted)) = admission.accept(&listener, &mut shutdown).await {
        let orig = match original::destination(&stream, gw.settings.listen_transparent.tproxy) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "no original destination; closed");
                continue;
            }
        };
        let gw = gw.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            match kind {
                Kind::Http => serve_http(gw.clone(), stream, peer, orig, stop).await,
                Kind::Https => serve_tls(gw.clone(), stream, peer, orig).await,
            }
            drop(admitted);
        });
    }
}

/// Who the client is, from its address (and the trusted header, when it comes
/// from a `from` peer); never credentials, never a 407.
async fn admit(ctx: &RequestCtx, headers: &HeaderMap) -> Result<Arc<Principal>, Refusal> {
    let mut only = HeaderMap::new();
    for name in ctx.gw.identity.identity_headers() {
        for v in headers.get_all(&name) {
            only.append(name.clone(), v.clone());
        }
    }
    match ctx.gw.identity.identify_on(ctx.peer, &only, None).await {
        Ok(mut p) => {
            // No sign-in can be offered to a client that does not know us.
            p.challenge_on_deny = false;
            observe::identified(&ctx.log, &p);
            Ok(Arc::new(p))
        }
        Err(_) => Err(Refusal::NotKnown),
    }
}

/// Plain HTTP on a redirected connection to `orig`.
async fn serve_http(
    gw: Arc<Gateway>,
    stream: TcpStream,
    peer: SocketAddr,
    orig: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let conn = Arc::new(ClientConn::default());
    let service = {
        let gw = gw.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let gw = gw.clone();
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(handle_http(gw, peer, orig, conn, req).await) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(gw.settings.limits.header_read_timeout)
        .max_buf_size(gw.settings.limits.max_header_bytes.max(8192))
        // As the forward port: one `send` of a flattened buffer, not `writev`.
        .writev(false)
        .keep_alive(true);
    let activity = super::idle::LastActivity::new();
    let stream = super::idle::Watched::new(stream, activity.clone());
    let idle = super::idle::watchdog(activity, gw.settings.limits.idle_timeout);
    let served = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    tokio::pin!(idle);
    let result = tokio::select! {
        r = served.as_mut() => r,
        () = idle.as_mut() => return,
        _ = stop.changed() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "transparent client connection ended with an error");
    }
}

async fn handle_http(
    gw: Arc<Gateway>,
    peer: SocketAddr,
    orig: SocketAddr,
    conn: Arc<ClientConn>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let named = named_authority(&req);
    let host = named
        .as_ref()
        .and_then(|a| normalize_host(a.host()))
        .unwrap_or(NormalHost::Ip(orig.ip()));
    let ctx = RequestCtx::new(&gw, peer.ip(), &req, host.to_string());
    let resp = plain(&ctx, &conn, orig, named, req)
        .await
        .unwrap_or_else(|refusal| render(&ctx, refusal));
    observe::respond(&gw, ctx.log, resp)
}

/// The site the request names: its absolute URL, else its Host header.
fn named_authority<B>(req: &Request<B>) -> Option<http::uri::Authority> {
    if let Some(a) = req.uri().authority() {
        return Some(a.clone());
    }
    req.headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse().ok())
}

async fn plain(
    ctx: &RequestCtx,
    conn: &ClientConn,
    orig: SocketAddr,
    named: Option<http::uri::Authority>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Refusal> {
    route::check_head(ctx, &req)?;
    pipeline::check_method(req.method())?;
    if req.method() == Method::CONNECT {
        return Err(Refusal::MethodNotAllowed);
    }
    if original::is_gateway_itself(&ctx.gw, orig) {
        return Err(original::loop_refusal(orig));
    }
    let principal = admit(ctx, req.headers()).await?;
    // No Host (HTTP/1.0): the destination is the address itself.
    let (host, port) = match &named {
        Some(a) => (
            normalize_host(a.host()).ok_or(Refusal::BadRequest(
                "The Host header names no valid host.".into(),
            ))?,
            a.port_u16().unwrap_or(80),
        ),
        None => (NormalHost::Ip(orig.ip()), orig.port()),
    };
    // The name's own port and address must be the connection's; whether the
    // name leads there is checked once the request is allowed (no lookup for
    // a request the policy denies).
    let literal_elsewhere =
        matches!(&host, NormalHost::Ip(ip) if canonical(*ip) != canonical(orig.ip()));
    if port != orig.port() || literal_elsewhere {
        return Err(original::mismatch(&host, orig));
    }
    pipeline::check_port(&ctx.gw, port)?;
    // Decided as the proxy port decides `http://host/`.
    let policy = ctx.gw.policy();
    let decide_as = match &host {
        NormalHost::Ip(ip) => connect::ip_literal_site(&ctx.gw, *ip)?.map(|s| s.host),
        NormalHost::Domain(_) if policy.site_for(&host).is_some() => None,
        NormalHost::Domain(_) => connect::unlisted_name_site(&ctx.gw, &policy, &host, port)
            .await?
            .0
            .map(|s| s.host),
    };
    // The request as the proxy port would have received it: absolute form.
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let authority = if port == 80 {
        host.to_authority_host()
    } else {
        format!("{}:{port}", host.to_authority_host())
    };
    *req.uri_mut() = format!("http://{authority}{target}")
        .parse()
        .map_err(|_| Refusal::BadRequest("The request path is not valid.".into()))?;
    let ex = Exchange {
        ctx,
        principal,
        host,
        port,
        decide_as,
    };
    let leg = PlainLeg {
        conn,
        pinned: Some(orig),
    };
    Ok(pipeline::run(&ex, req, &leg).await)
}

/// TLS on a redirected connection to `orig`: decided from the ClientHello.
async fn serve_tls(gw: Arc<Gateway>, mut stream: TcpStream, peer: SocketAddr, orig: SocketAddr) {
    let read = tokio::time::timeout(
        gw.settings.limits.tls_handshake_timeout,
        connect::read_first_flight(&mut stream),
    )
    .await;
    let (first, buffered) = match read {
        Ok(Ok(got)) => got,
        Ok(Err(why)) => {
            tracing::debug!(%peer, reason = %why, "transparent TLS connection closed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no ClientHello in time on a transparent TLS connection; closed");
            return;
        }
    };
    let sni = match &first {
        FirstFlight::Tls(sni) => sni.as_deref().and_then(normalize_host),
        FirstFlight::NotTls => None,
    };
    let host = sni.unwrap_or(NormalHost::Ip(orig.ip()));
    // Audited as the CONNECT the client would have sent.
    let connect = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("{}:{}", host.to_authority_host(), orig.port()))
        .body(())
        .unwrap_or_default();
    let ctx = RequestCtx::new(&gw, peer.ip(), &connect, host.to_string());
    let io = Prefixed {
        prefix: bytes::Bytes::from(buffered),
        inner: stream,
    };
    if let Err(refusal) = tls(&ctx, io, &first, host, orig).await {
        // The client expects a TLS server: the answer is recorded, the
        // connection closed.
        let resp = render(&ctx, refusal);
        drop(observe::respond(&gw, ctx.log.clone(), resp));
    }
}

async fn tls(
    ctx: &RequestCtx,
    io: Prefixed<TcpStream>,
    first: &FirstFlight,
    host: NormalHost,
    orig: SocketAddr,
) -> Result<(), Refusal> {
    if original::is_gateway_itself(&ctx.gw, orig) {
        return Err(original::loop_refusal(orig));
    }
    if *first == FirstFlight::NotTls {
        return Err(Refusal::BadRequest(
            "Traffic redirected to the HTTPS port is not TLS.".into(),
        ));
    }
    let principal = admit(ctx, &HeaderMap::new()).await?;
    let gw = ctx.gw.clone();
    let port = orig.port();
    pipeline::check_port(&gw, port)?;
    let policy = gw.policy();
    let learn_as = policy.site_for(&host).map(|s| s.name.clone());
    let TunnelDestination {
        decide_as,
        intercept,
        ..
    } = connect::tunnel_destination(&gw, &policy, &host, port).await?;
    if intercept && host.as_domain().is_some() {
        // As an accepted CONNECT to an intercepted site: each inner request is
        // decided and audited on its own.
        let slot = connect::tunnel_slot(&gw)?;
        observe::not_audited(&ctx.log);
        gw.metrics.tunnels_active.inc();
        let served = intercept::serve_to(
            gw.clone(),
            principal,
            ctx.peer,
            host.clone(),
            port,
            decide_as,
            Some(orig),
            io,
        )
        .await;
        gw.metrics.tunnels_active.dec();
        drop(slot);
        if let Err(why) = served {
            tracing::debug!(host = %host, reason = %why, "transparent intercepted connection ended");
        }
        return Ok(());
    }
    let ex = Exchange {
        ctx,
        principal,
        host,
        port,
        decide_as,
    };
    pipeline::decide_tunnel(&ex, &HeaderMap::new())?;
    let Exchange { host, .. } = ex;
    let slot = connect::tunnel_slot(&gw)?;
    let addrs = original::agreeing(&gw, &host, orig, learn_as.as_deref()).await?;
    let upstream = gw
        .dialer
        .open(&host, port, learn_as.as_deref(), Some(Ok(addrs)))
        .await
        .map_err(|e| pipeline::dial_refusal(e, &host, port))?;
    observe::defer(&ctx.log);
    gw.metrics.tunnels_active.inc();
    let idle = gw.settings.limits.idle_timeout;
    let Prefixed {
        prefix,
        inner: client,
    } = io;
    let sent = prefix.len() as u64;
    let result = match upstream.into_tcp() {
        Ok(mut up) => match up.write_all(&prefix).await {
            Ok(()) => relay::relay_tcp(client, up, idle).await,
            Err(e) => Err(e),
        },
        Err(mut up) => match up.write_all(&prefix).await {
            Ok(()) => relay::relay(client, up, idle).await,
            Err(e) => Err(e),
        },
    };
    gw.metrics.tunnels_active.dec();
    drop(slot);
    match result {
        Ok((up, down)) => {
            observe::add_bytes_up(&ctx.log, up + sent);
            observe::finish(&gw, &ctx.log, 200, down);
        }
        Err(why) => {
            tracing::info!(host = %host, reason = %why, "transparent tunnel closed");
            observe::finish(&gw, &ctx.log, 200, 0);
        }
    }
    Ok(())
}
