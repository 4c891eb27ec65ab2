//! Interception of CONNECT tunnels to sites with `intercept: true`.
//!
//! The client's TLS is terminated with a leaf minted for the CONNECT host (ALPN h2
//! and http/1.1); each inner request is decided on its own (activity, DLP, warn) and
//! allowed ones are re-serialised by hyper to the real site over verified TLS, in
//! the client's protocol: HTTP/2 when the client and the site both speak it,
//! HTTP/1.1 for an HTTP/1.1 client (no HTTP/2 framing to pay for a client that
//! sends one request at a time). The server side speaks the protocol ALPN
//! chose (HTTP/2 for `h2`, else HTTP/1.1; never sniffed). A tunnel with no
//! traffic for `limits.idle_timeout` is closed (after the handshake, between
//! requests, a stalled body), and an HTTP/1.1 request head must arrive within
//! `limits.header_read_timeout`. The SNI and every inner Host / `:authority` must
//! equal the CONNECT host, else 421. A CONNECT inside the tunnel is 405 (it would
//! open a tunnel the gateway never sees); the site's `Alt-Svc` is removed with
//! the hop-by-hop headers (`headers`). When `connect` attributed an unlisted
//! name to a site by its address, inner requests are decided as that site.
//! Upstream connections belong to this tunnel, hence to one user: never shared
//! with another tunnel; an HTTP/2 tunnel's concurrent streams share the one
//! dial its first stream makes, and both legs of an HTTP/2 tunnel write
//! through `coalesce` (fewer, larger writes while several requests are in
//! flight).
//! WebSocket upgrades are decided like any request, then relayed by `websocket`:
//! byte for byte, or message by message with each client message scanned under
//! a `dlp` rule.
//! Each inner request goes through the shared pipeline (this tunnel is its
//! [`Leg`]): it is decided first, and only an allowed one resolves the name and
//! dials, through the destination guard. Called by `connect`, and by
//! `transparent` for redirected TLS ([`serve_to`]: the site is dialled at the
//! connection's original destination only).

use std::sync::Arc;

use http::{header, HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::Mutex;

use super::body::ProxyBody;
use super::coalesce::{Coalesced, InFlight};
use super::context::{Exchange, RequestCtx};
use super::gateway::Gateway;
use super::idle;
use super::observe;
use super::pipeline::{self, Allowed, Leg};
use super::respond::{render, Refusal};
use super::upstream::UpstreamFailure;
use super::websocket;
use crate::identity::Principal;
use crate::policy::{normalize_host, NormalHost};

/// One intercepted tunnel: who opened it, to where, and its upstream connections.
pub struct Tunnel {
    gw: Arc<Gateway>,
    principal: Arc<Principal>,
    peer_ip: std::net::IpAddr,
    host: NormalHost,
    /// `host` as an authority writes it (no port): the form most inner
    /// requests' Host / `:authority` carry byte for byte.
    authority: String,
    port: u16,
    /// The site's host the inner requests are decided as, when `connect`
    /// attributed this name to a site by its address.
    decide_as: Option<NormalHost>,
    /// A transparent connection's original destination: the only address
    /// dialled (`original::agreeing`).
    pinned: Option<std::net::SocketAddr>,
    /// Did the ClientHello name the CONNECT host?
    sni_matches: bool,
    /// Did the client negotiate HTTP/2? Then the site is offered it too.
    client_h2: bool,
    upstream: Mutex<UpstreamPool>,
    /// Held by the one request dialling the site for an HTTP/2 client, so that
    /// the streams a browser opens at once share the HTTP/2 connection that
    /// dial makes rather than each making its own (one TLS handshake, one
    /// connection seen by the site).
    dialling: Mutex<()>,
    /// Requests of this tunnel being handled: an HTTP/2 connection's writes
    /// wait a turn while others are (`coalesce`).
    in_flight: InFlight,
}

#[derive(Default)]
struct UpstreamPool {
    h2: Option<http2::SendRequest<ProxyBody>>,
    h1_idle: Vec<http1::SendRequest<ProxyBody>>,
    /// Dials finished on this tunnel (a waiter tells by it that the dial it
    /// waited for is over).
    dials: u64,
    /// The site answered a dial with HTTP/1.1: nothing to share, requests
    /// dial side by side.
    site_h1: bool,
}

enum Sender {
    H1(http1::SendRequest<ProxyBody>),
    H2(http2::SendRequest<ProxyBody>),
}

/// Terminates the client's TLS on `io` and serves the inner requests.
pub async fn serve<I>(
    gw: Arc<Gateway>,
    principal: Arc<Principal>,
    peer_ip: std::net::IpAddr,
    host: NormalHost,
    port: u16,
    decide_as: Option<NormalHost>,
    io: I,
) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    serve_to(gw, principal, peer_ip, host, port, decide_as, None, io).await
}

/// [`serve`], for a transparent connection when `pinned` is its original
/// destination: the site is dialled there, once the name is seen to lead
/// there (`original::agreeing`), never at a fresh answer.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve_to<I>(
    gw: Arc<Gateway>,
    principal: Arc<Principal>,
    peer_ip: std::net::IpAddr,
    host: NormalHost,
    port: u16,
    decide_as: Option<NormalHost>,
    pinned: Option<std::net::SocketAddr>,
    io: I,
) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(domain) = host.as_domain().map(str::to_string) else {
        return Err("an IP address cannot be intercepted".into());
    };
    let activity = idle::LastActivity::new();
    let io = idle::Watched::new(io, activity.clone());
    let idle_timeout = gw.settings.limits.idle_timeout;
    let header_read_timeout = gw.settings.limits.header_read_timeout;
    let handshake = async {
        let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io)
            .await
            .map_err(|e| format!("reading the ClientHello: {e}"))?;
        let sni = start.client_hello().server_name().and_then(normalize_host);
        let sni_matches = sni.as_ref() == Some(&host);
        let leaf = gw
            .issuer
            .leaf_for(&domain)
            .await
            .map_err(|e| e.to_string())?;
        let config = gw
            .issuer
            .resumable_server_config(leaf, &[b"h2", b"http/1.1"])
            .map_err(|e| e.to_string())?;
        let tls = start
            .into_stream(config)
            .await
            .map_err(|e| format!("TLS handshake with the client: {e}"))?;
        Ok::<_, String>((tls, sni_matches))
    };
    let (tls, sni_matches) =
        tokio::time::timeout(gw.settings.limits.tls_handshake_timeout, handshake)
            .await
            .map_err(|_| "the client's TLS handshake took too long".to_string())??;
    let max_streams = gw.settings.limits.max_h2_streams;
    let client_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let gw_for_stop = gw.clone();
    let tunnel = Arc::new(Tunnel {
        gw,
        principal,
        peer_ip,
        authority: host.to_authority_host(),
        host,
        port,
        decide_as,
        pinned,
        sni_matches,
        client_h2,
        upstream: Mutex::new(UpstreamPool::default()),
        dialling: Mutex::new(()),
        in_flight: InFlight::default(),
    });
    let in_flight = tunnel.in_flight.clone();
    let handle = move |req: Request<Incoming>| {
        let t = tunnel.clone();
        async move { Ok::<_, std::convert::Infallible>(t.handle(req).await) }
    };
    // The protocol is the one ALPN chose, not sniffed from the first bytes: a
    // client that negotiated h2 and sends anything but the HTTP/2 preface gets
    // SETTINGS and GOAWAY(PROTOCOL_ERROR) (RFC 9113 3.4), never an HTTP/1.1
    // answer. (h2 itself would close without a GOAWAY.)
    // Counted until the connection ends, so that a stop waits for the request
    // in flight here as for one on a client connection.
    let _counted = gw_for_stop.intercepted_slot();
    let stopped = gw_for_stop.stopped();
    // No traffic either way for `limits.idle_timeout` (after the handshake,
    // between requests, a stalled request body or response) closes the tunnel.
    // On stop (SIGTERM) the connection finishes the request in flight and closes:
    // HTTP/1.1 after the current answer, HTTP/2 with GOAWAY.
    let idle = idle::watchdog(activity, idle_timeout);
    macro_rules! drive {
        ($conn:expr) => {{
            let conn = $conn;
            tokio::pin!(conn);
            tokio::pin!(idle);
            tokio::pin!(stopped);
            let mut draining = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => break r.map_err(|e| e.to_string()),
                    () = idle.as_mut() => {
                        tracing::debug!(timeout_secs = idle_timeout.as_secs_f64(), "an intercepted tunnel had no traffic for limits.idle_timeout; closed");
                        break Err("no traffic for limits.idle_timeout".to_string());
                    }
                    () = stopped.as_mut(), if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }};
    }
    if client_h2 {
        let mut tls = tls;
        let preface = tokio::time::timeout(header_read_timeout, read_h2_preface(&mut tls)).await;
        match preface {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                use tokio::io::AsyncWriteExt;
                let _ = tls.write_all(&H2_BAD_PREFACE_ANSWER).await;
                let _ = tls.shutdown().await;
                return Err("the client negotiated h2 but sent another preface".into());
            }
            Ok(Err(e)) => return Err(format!("reading the HTTP/2 preface: {e}")),
            Err(_) => return Err("no HTTP/2 preface within limits.header_read_timeout".into()),
        }
        // Answers to the client: the stream answered is no longer counted.
        let io = TokioIo::new(Coalesced::new(
            Prefixed {
                prefix: bytes::Bytes::from_static(H2_PREFACE),
                inner: tls,
            },
            in_flight,
            1,
        ));
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder.max_concurrent_streams(max_streams);
        // Boxed: hyper spawns a task per stream and moves the request's future
        // (kilobytes) through each layer of the spawn; boxed, it is copied once
        // and the rest move a pointer. (HTTP/1.1 keeps it inline: it is polled
        // in place by the connection.)
        let service = hyper::service::service_fn(move |req| Box::pin(handle(req)));
        drive!(builder.serve_connection(io, service))
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        drive!(builder
            .serve_connection(TokioIo::new(tls), hyper::service::service_fn(handle))
            .with_upgrades())
    }
}

/// The HTTP/2 client connection preface (RFC 9113 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The answer to a bad preface: an empty SETTINGS frame (the server's preface),
/// then GOAWAY with last stream 0 and PROTOCOL_ERROR (0x1).
const H2_BAD_PREFACE_ANSWER: [u8; 26] = [
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, empty
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, 8 bytes, stream 0
    0, 0, 0, 0, // last stream id 0
    0, 0, 0, 1, // PROTOCOL_ERROR
];

/// Reads the client's first bytes: `true` when they are the HTTP/2 preface,
/// `false` as soon as they differ from it (or the client closes first).
async fn read_h2_preface<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> std::io::Result<bool> {
    use tokio::io::AsyncReadExt;
    let mut got = [0u8; 24];
    let mut n = 0;
    while n < H2_PREFACE.len() {
        let read = r.read(&mut got[n..]).await?;
        if read == 0 {
            return Ok(false);
        }
        if got[n..n + read] != H2_PREFACE[n..n + read] {
            return Ok(false);
        }
        n += read;
    }
    Ok(true)
}

/// An IO whose first reads return `prefix` (bytes already read from `inner`).
pub(crate) struct Prefixed<I> {
    pub prefix: bytes::Bytes,
    pub inner: I,
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Tunnel {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ProxyBody> {
        let _handling = self.in_flight.enter();
        let version = req.version();
        let ctx = RequestCtx::new(&self.gw, self.peer_ip, &req, self.authority.clone());
        observe::identified(&ctx.log, &self.principal);
        let mut resp = match self.handle_inner(&ctx, req).await {
            Ok(resp) => resp,
            Err(refusal) => render(&ctx, refusal),
        };
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            *resp.version_mut() = version;
        }
        observe::respond(&self.gw, ctx.log, resp)
    }

    async fn handle_inner(
        &self,
        ctx: &RequestCtx,
        req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Refusal> {
        if !self.sni_matches {
            return Err(Refusal::Misdirected);
        }
        // A CONNECT inside the tunnel would open a tunnel the gateway never sees,
        // whatever it names. Only an HTTP/2 extended CONNECT for a WebSocket
        // (RFC 8441, when enabled) is a request like others: `connect-udp` and
        // every other protocol is a tunnel too.
        if req.method() == http::Method::CONNECT
            && req
                .extensions()
                .get::<hyper::ext::Protocol>()
                .is_none_or(|p| !p.as_str().eq_ignore_ascii_case("websocket"))
        {
            return Err(Refusal::MethodNotAllowed);
        }
        // The Host header (HTTP/1.1) or :authority (HTTP/2) must be the CONNECT host.
        let authority = match req.uri().authority() {
            Some(a) => a.as_str(),
            None => req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .ok_or(Refusal::Misdirected)?,
        };
        if !names_tunnel(authority, &self.host, &self.authority, self.port) {
            return Err(Refusal::Misdirected);
        }
        pipeline::check_method(req.method())?;
        let ex = Exchange {
            ctx,
            principal: self.principal.clone(),
            host: self.host.clone(),
            port: self.port,
            decide_as: self.decide_as.clone(),
        };
        Ok(pipeline::run(&ex, req, self).await)
    }

    /// Sends over this tunnel's upstream connection (HTTP/2 when the client speaks
    /// it and the site offers it; a WebSocket always gets its own HTTP/1.1
    /// connection).
    async fn send_over(
        &self,
        ex: &Exchange<'_>,
        mut req: Request<ProxyBody>,
        path: &str,
        websocket: bool,
    ) -> Result<Response<Incoming>, Refusal> {
        let mut sender = None;
        if !websocket {
            let mut pool = self.upstream.lock().await;
            if let Some(h2) = pool.h2.as_ref().filter(|s| !s.is_closed()) {
                sender = Some(Sender::H2(h2.clone()));
            } else {
                pool.h2 = None;
                while let Some(mut h1) = pool.h1_idle.pop() {
                    if !h1.is_closed() && h1.ready().await.is_ok() {
                        sender = Some(Sender::H1(h1));
                        break;
                    }
                }
            }
        }
        let sender = match sender {
            Some(s) => s,
            // Boxed: a dial's state (DNS, TCP, TLS, HTTP handshakes) is most of
            // this future's size, and is needed only on a new connection; hyper
            // moves each request's future (spawned per HTTP/2 stream) whole.
            None => Box::pin(self.dial(websocket)).await?,
        };
        let authority = ex.authority(443);
        let bad_path = || Refusal::Upstream {
            kind: UpstreamFailure::Protocol,
            detail: "bad request path".to_string(),
        };
        let timeout = self.gw.settings.upstream.response_timeout;
        match sender {
            Sender::H2(mut s) => {
                *req.version_mut() = Version::HTTP_2;
                *req.uri_mut() = format!("https://{authority}{path}")
                    .parse()
                    .map_err(|_| bad_path())?;
                req.headers_mut().remove(header::HOST);
                tokio::time::timeout(timeout, s.send_request(req))
                    .await
                    .map_err(|_| pipeline::timed_out(ex))?
                    .map_err(|e| pipeline::send_failed(ex, &e))
            }
            Sender::H1(mut s) => {
                *req.version_mut() = Version::HTTP_11;
                *req.uri_mut() = path.parse().map_err(|_| bad_path())?;
                if let Ok(v) = HeaderValue::from_str(&authority) {
                    req.headers_mut().insert(header::HOST, v);
                }
                let resp = tokio::time::timeout(timeout, s.send_request(req))
                    .await
                    .map_err(|_| pipeline::timed_out(ex))?
                    .map_err(|e| pipeline::send_failed(ex, &e))?;
                if !websocket {
                    self.upstream.lock().await.h1_idle.push(s);
                }
                Ok(resp)
            }
        }
    }

    /// A new connection to the site for one request. For an HTTP/2 client
    /// (not a WebSocket) the dials are one at a time: a request that waited
    /// while another dialled takes the HTTP/2 connection that dial made. When
    /// that dial failed, or the site speaks only HTTP/1.1, it dials on its own
    /// without waiting again.
    async fn dial(&self, websocket: bool) -> Result<Sender, Refusal> {
        if websocket || !self.client_h2 {
            return self.connect(websocket).await;
        }
        let seen = {
            let pool = self.upstream.lock().await;
            if pool.site_h1 {
                drop(pool);
                return self.connect(false).await;
            }
            pool.dials
        };
        let gate = self.dialling.lock().await;
        {
            let pool = self.upstream.lock().await;
            if pool.dials != seen {
                if let Some(h2) = pool.h2.as_ref().filter(|s| !s.is_closed()) {
                    return Ok(Sender::H2(h2.clone()));
                }
                drop(pool);
                drop(gate);
                return self.connect(false).await;
            }
        }
        let dialled = self.connect(false).await;
        let mut pool = self.upstream.lock().await;
        pool.dials += 1;
        if matches!(dialled, Ok(Sender::H1(_))) {
            pool.site_h1 = true;
        }
        dialled
    }

    /// Dials the site (through the destination guard: a refusal there is the same
    /// 403 as on plain HTTP), or opens a tunnel to it through the parent proxy,
    /// and sets up TLS (verified against the site's name) and HTTP.
    async fn connect(&self, websocket: bool) -> Result<Sender, Refusal> {
        let policy = self.gw.policy();
        let site = policy.site_for(&self.host).map(|s| s.name.as_str());
        let resolved = match self.pinned {
            Some(orig) => Some(Ok(super::original::agreeing(
                &self.gw, &self.host, orig, site,
            )
            .await?)),
            None => None,
        };
        let tcp = self
            .gw
            .dialer
            .open(&self.host, self.port, site, resolved)
            .await
            .map_err(|e| pipeline::dial_refusal(e, &self.host, self.port))?;
        let config = if websocket || !self.client_h2 {
            self.gw.upstream_tls_h1.clone()
        } else {
            self.gw.upstream_tls.clone()
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls_failure = |detail: String| Refusal::Upstream {
            kind: UpstreamFailure::Tls,
            detail,
        };
        let name = rustls::pki_types::ServerName::try_from(self.host.to_string())
            .map_err(|_| tls_failure(format!("{} is not a valid server name", self.host)))?;
        let tls =
            tokio::time::timeout(self.gw.dialer.connect_timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| Refusal::Upstream {
                    kind: UpstreamFailure::Timeout,
                    detail: format!("the TLS handshake with {} took too long", self.host),
                })?
                .map_err(|e| tls_failure(describe_tls_error(&self.host, &e)))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        if h2 {
            // Requests to the site: the one being written is counted. Boxed:
            // hyper spawns a task per request whose future has the size of
            // its connection task, the I/O inline (a TLS session is
            // kilobytes), and each spawn copies it whole.
            let io = TokioIo::new(Box::new(Coalesced::new(tls, self.in_flight.clone(), 2)));
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| pipeline::protocol_error(&self.host, e))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.upstream.lock().await.h2 = Some(sender.clone());
            Ok(Sender::H2(sender))
        } else {
            let (sender, conn) = http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| pipeline::protocol_error(&self.host, e))?;
            tokio::spawn(async move {
                let _ = conn.with_upgrades().await;
            });
            Ok(Sender::H1(sender))
        }
    }
}

/// Does an inner request's authority (`raw`, from the URI or the Host header)
/// name the tunnel's host and port? `authority` is `host` as an authority
/// writes it; a `raw` equal to it (port 443) or to it with `:port` is the
/// tunnel's by construction, anything else is parsed and normalised (case,
/// IDNA, numeric IPv4 forms, a trailing dot) and compared.
fn names_tunnel(raw: &str, host: &NormalHost, authority: &str, port: u16) -> bool {
    if let Some(rest) = raw.strip_prefix(authority) {
        let exact = match rest.strip_prefix(':') {
            None => rest.is_empty() && port == 443,
            Some(digits) => digits == itoa::Buffer::new().format(port),
        };
        if exact {
            return true;
        }
    }
    let Ok(parsed) = raw.parse::<http::uri::Authority>() else {
        return false;
    };
    normalize_host(parsed.host()).as_ref() == Some(host) && parsed.port_u16().unwrap_or(443) == port
}

impl Leg for Tunnel {
    const UPGRADES: bool = true;

    async fn send(
        &self,
        ex: &Exchange<'_>,
        allowed: Allowed,
        client_upgrade: Option<OnUpgrade>,
    ) -> Result<Response<ProxyBody>, Refusal> {
        let Allowed {
            req,
            target,
            websocket,
            scan_messages,
        } = allowed;
        let resp = self.send_over(ex, req, &target, websocket).await?;
        match client_upgrade {
            Some(client) if websocket && resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
                let Some(scanning) = scan_messages else {
                    return Ok(websocket::relay_bytes(client, resp));
                };
                if websocket::names_extension(&resp) {
                    // Not offered (the pipeline removed the offer): the messages
                    // could not be read, so the socket is not opened.
                    return Err(Refusal::Upstream {
                        kind: UpstreamFailure::Protocol,
                        detail: format!(
                            "{}: the site answered a WebSocket upgrade with an extension that was not offered",
                            self.host
                        ),
                    });
                }
                let scan = websocket::MessageScan {
                    gw: self.gw.clone(),
                    policy: scanning.policy,
                    decision: scanning.decision,
                    log: ex.ctx.log.clone(),
                    user: ex.principal.user.clone(),
                };
                Ok(websocket::relay_scanned(client, resp, scan))
            }
            _ => Ok(pipeline::from_upstream(resp)),
        }
    }
}

/// Says what was wrong with the site's certificate, in words for people.
fn describe_tls_error(host: &NormalHost, e: &std::io::Error) -> String {
    let text = e.to_string();
    let what = if text.contains("Expired") {
        "its certificate has expired"
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        "its certificate is for another name"
    } else if text.contains("UnknownIssuer") {
        "its certificate is not from a trusted authority (self-signed or unknown root)"
    } else if text.contains("certificate") || text.contains("Certificate") {
        "its certificate is not valid"
    } else {
        "the secure connection could not be set up"
    };
    format!("{host}: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parsing way alone: what `names_tunnel` must agree with.
    fn parsed(raw: &str, host: &NormalHost, port: u16) -> bool {
        raw.parse::<http::uri::Authority>().is_ok_and(|a| {
            normalize_host(a.host()).as_ref() == Some(host) && a.port_u16().unwrap_or(443) == port
        })
    }

    #[test]
    fn the_exact_authority_shortcut_agrees_with_parsing() {
        let hosts = [
            "www.example.com",
            "xn--bcher-kva.example",
            "127.0.0.1",
            "[::1]",
            "a.b",
        ];
        let raws = [
            "www.example.com",
            "www.example.com:443",
            "www.example.com:8443",
            "WWW.example.com",
            "www.example.com.",
            "www.example.com:",
            "www.example.com:0443",
            "www.example.com:443x",
            "www.example.com.evil",
            "www.example.comx",
            "www.example.co",
            "user@www.example.com",
            "xn--bcher-kva.example",
            "bücher.example",
            "127.0.0.1",
            "127.0.0.1:443",
            "127.0.0.1:8443",
            "127.1",
            "0x7f.0.0.1",
            "127.0.0.10",
            "[::1]",
            "[::1]:443",
            "[0::1]",
            "[::1]:8443",
            "a.b",
            "a.b:443",
            "",
        ];
        for h in hosts {
            let host = normalize_host(h).unwrap();
            let authority = host.to_authority_host();
            assert!(
                parsed(&authority, &host, 443),
                "{h}: its own authority parses back"
            );
            for port in [443u16, 8443] {
                for raw in raws {
                    assert_eq!(
                        names_tunnel(raw, &host, &authority, port),
                        parsed(raw, &host, port),
                        "{raw:?} against {h}:{port}"
                    );
                }
            }
        }
    }
}
