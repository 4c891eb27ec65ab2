//! Interception of CONNECT tunnels to sites with `intercept: true`.
//!
//! The client's TLS is terminated with a leaf minted for the CONNECT host (ALPN h2
//! and http/1.1); each inner request is decided on its own (activity, DLP, warn) and
//! allowed ones are re-serialised by hyper to the real site over verified TLS, in
//! the client's protocol: HTTP/2 when the client and the site both speak it,
//! HTTP/1.1 for an HTTP/1.1 client (no HTTP/2 framing to pay for a client that
//! sends one request at a time). The SNI and every inner Host / `:authority` must
//! equal the CONNECT host, else 421.
//! Upstream connections belong to this tunnel, hence to one user: never shared.
//! WebSocket upgrades are decided like any request, then relayed byte for byte.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Mutex;

use super::forward::{acknowledge, decide_request, respond_to_verdict, Decided};
use super::headers::{clean_request_headers, strip_hop_by_hop};
use super::respond::{self, UpstreamFailure};
use super::upstream::DialError;
use super::{observe, warn, BoxError, Gateway, ProxyBody};
use crate::identity::Principal;
use crate::policy::{normalize_host, NormalHost};

/// One intercepted tunnel: who opened it, to where, and its upstream connections.
pub struct Tunnel {
    gw: Arc<Gateway>,
    principal: Principal,
    peer_ip: std::net::IpAddr,
    host: NormalHost,
    port: u16,
    /// Did the ClientHello name the CONNECT host?
    sni_matches: bool,
    /// Did the client negotiate HTTP/2? Then the site is offered it too.
    client_h2: bool,
    upstream: Mutex<UpstreamPool>,
}

#[derive(Default)]
struct UpstreamPool {
    h2: Option<http2::SendRequest<ProxyBody>>,
    h1_idle: Vec<http1::SendRequest<ProxyBody>>,
}

/// Why sending to the site failed.
enum SendFailure {
    /// The site (or the way to it) failed: 502/504.
    Upstream(UpstreamFailure, String),
    /// The client's own body broke mid-way (a malformed chunk, a reset): 400.
    ClientBody,
}

impl From<(UpstreamFailure, String)> for SendFailure {
    fn from((kind, detail): (UpstreamFailure, String)) -> SendFailure {
        SendFailure::Upstream(kind, detail)
    }
}

enum Sender {
    H1(http1::SendRequest<ProxyBody>),
    H2(http2::SendRequest<ProxyBody>),
}

/// Terminates the client's TLS on `io` and serves the inner requests.
pub async fn serve<I>(
    gw: Arc<Gateway>,
    principal: Principal,
    peer_ip: std::net::IpAddr,
    host: NormalHost,
    port: u16,
    io: I,
) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(domain) = host.as_domain().map(str::to_string) else {
        return Err("an IP address cannot be intercepted".into());
    };
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
    let tunnel = Arc::new(Tunnel {
        gw,
        principal,
        peer_ip,
        host,
        port,
        sni_matches,
        client_h2,
        upstream: Mutex::new(UpstreamPool::default()),
    });
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let t = tunnel.clone();
        async move { Ok::<_, std::convert::Infallible>(t.handle(req).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(max_streams);
    builder
        .serve_connection_with_upgrades(TokioIo::new(tls), service)
        .await
        .map_err(|e| e.to_string())
}

impl Tunnel {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ProxyBody> {
        let reference = self.gw.reference();
        let version = req.version();
        let log = observe::RequestLog::new(
            &reference,
            self.peer_ip,
            req.method().as_str(),
            &self.host.to_string(),
            req.uri().path(),
        );
        observe::identified(&log, &self.principal);
        let mut resp = self.handle_inner(req, &reference, &log).await;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            *resp.version_mut() = version;
        }
        observe::respond(&self.gw, log, resp)
    }

    async fn handle_inner(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        reference: &str,
        log: &observe::SharedLog,
    ) -> Response<ProxyBody> {
        let gw = &self.gw;
        let misdirected = || {
            respond::plain(
                StatusCode::MISDIRECTED_REQUEST,
                "This request names another host than the one the connection was opened for.",
                reference,
            )
        };
        if !self.sni_matches {
            return misdirected();
        }
        // The Host header (HTTP/1.1) or :authority (HTTP/2) must be the CONNECT host.
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            });
        let Some(authority) = authority else {
            return misdirected();
        };
        let Ok(parsed) = authority.parse::<http::uri::Authority>() else {
            return misdirected();
        };
        if normalize_host(parsed.host()).as_ref() != Some(&self.host)
            || parsed.port_u16().unwrap_or(443) != self.port
        {
            return misdirected();
        }
        if req.method() == http::Method::TRACE {
            return respond::plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "TRACE is not allowed through the gateway.",
                reference,
            );
        }
        let html = respond::wants_html(req.headers());
        let client_upgrade = hyper::upgrade::on(&mut req);
        let (parts, body) = req.into_parts();
        if parts.method == http::Method::POST && parts.uri.path() == warn::CONTINUE_PATH {
            return acknowledge(gw, &self.principal, &self.host, body, reference).await;
        }
        let Decided {
            verdict,
            body: held,
            target,
        } = match decide_request(gw, &self.principal, &parts, &self.host, body, reference).await {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        observe::decided(gw, log, &verdict);
        if let Some(resp) =
            respond_to_verdict(gw, &self.principal, &verdict, &parts, html, reference, log)
        {
            return resp;
        }
        let websocket = crate::view::is_websocket_upgrade(&parts.headers);
        let mut up_req = Request::new(observe::count_up(held.into_proxy_body(), log.clone()));
        *up_req.method_mut() = parts.method.clone();
        let mut headers = parts.headers.clone();
        let upgrade_headers = websocket.then(|| {
            (
                headers.get(header::UPGRADE).cloned(),
                HeaderValue::from_static("Upgrade"),
            )
        });
        clean_request_headers(&mut headers, &gw.identity.identity_headers());
        let authority = if self.port == 443 {
            self.host.to_authority_host()
        } else {
            format!("{}:{}", self.host.to_authority_host(), self.port)
        };
        *up_req.headers_mut() = headers;
        if let Some((Some(upgrade), connection)) = upgrade_headers {
            up_req.headers_mut().insert(header::UPGRADE, upgrade);
            up_req.headers_mut().insert(header::CONNECTION, connection);
        }
        let result = self.send(up_req, &authority, &target, websocket).await;
        let upstream_resp = match result {
            Ok(r) => r,
            Err(SendFailure::Upstream(kind, detail)) => {
                return gw.upstream_error(kind, &detail, html, reference)
            }
            Err(SendFailure::ClientBody) => return respond::malformed_body(reference),
        };
        if websocket && upstream_resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            return relay_websocket(client_upgrade, upstream_resp);
        }
        let (mut rparts, rbody) = upstream_resp.into_parts();
        strip_hop_by_hop(&mut rparts.headers);
        Response::from_parts(rparts, rbody.map_err(|e| Box::new(e) as BoxError).boxed())
    }

    /// Sends over this tunnel's upstream connection (HTTP/2 when the client speaks
    /// it and the site offers it; a WebSocket always gets its own HTTP/1.1
    /// connection).
    async fn send(
        &self,
        mut req: Request<ProxyBody>,
        authority: &str,
        path: &str,
        websocket: bool,
    ) -> Result<Response<Incoming>, SendFailure> {
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
            None => self.connect(websocket).await?,
        };
        match sender {
            Sender::H2(mut s) => {
                *req.version_mut() = Version::HTTP_2;
                *req.uri_mut() = format!("https://{authority}{path}")
                    .parse()
                    .map_err(|_| (UpstreamFailure::Protocol, "bad request path".to_string()))?;
                req.headers_mut().remove(header::HOST);
                tokio::time::timeout(
                    self.gw.settings.upstream.response_timeout,
                    s.send_request(req),
                )
                .await
                .map_err(|_| self.timed_out())?
                .map_err(|e| self.send_failure(&e, format!("{}: {e}", self.host)))
            }
            Sender::H1(mut s) => {
                *req.version_mut() = Version::HTTP_11;
                *req.uri_mut() = path
                    .parse()
                    .map_err(|_| (UpstreamFailure::Protocol, "bad request path".to_string()))?;
                if let Ok(v) = HeaderValue::from_str(authority) {
                    req.headers_mut().insert(header::HOST, v);
                }
                let resp = tokio::time::timeout(
                    self.gw.settings.upstream.response_timeout,
                    s.send_request(req),
                )
                .await
                .map_err(|_| self.timed_out())?
                .map_err(|e| {
                    let detail =
                        format!("{} closed the connection before answering ({e})", self.host);
                    self.send_failure(&e, detail)
                })?;
                if !websocket {
                    self.upstream.lock().await.h1_idle.push(s);
                }
                Ok(resp)
            }
        }
    }

    /// A failed `send_request`: the client's body when hyper says the error came
    /// from the request side, else the site.
    fn send_failure(&self, e: &hyper::Error, detail: String) -> SendFailure {
        if e.is_user() {
            SendFailure::ClientBody
        } else {
            SendFailure::Upstream(UpstreamFailure::Protocol, detail)
        }
    }

    fn timed_out(&self) -> (UpstreamFailure, String) {
        (
            UpstreamFailure::Timeout,
            format!(
                "{} did not answer within {}s",
                self.host,
                self.gw.settings.upstream.response_timeout.as_secs()
            ),
        )
    }

    async fn connect(&self, websocket: bool) -> Result<Sender, (UpstreamFailure, String)> {
        let (tcp, _) = self
            .gw
            .dialer
            .dial(&self.host, self.port)
            .await
            .map_err(|e| match e {
                DialError::Denied(d) => (
                    UpstreamFailure::Refused,
                    format!(
                        "the destination guard refused {} ({})",
                        self.host,
                        d.label()
                    ),
                ),
                DialError::Failed(kind, detail) => (kind, detail),
            })?;
        let config = if websocket || !self.client_h2 {
            self.gw.upstream_tls_h1.clone()
        } else {
            self.gw.upstream_tls.clone()
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let name =
            rustls::pki_types::ServerName::try_from(self.host.to_string()).map_err(|_| {
                (
                    UpstreamFailure::Tls,
                    format!("{} is not a valid server name", self.host),
                )
            })?;
        let tls =
            tokio::time::timeout(self.gw.dialer.connect_timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| {
                    (
                        UpstreamFailure::Timeout,
                        format!("the TLS handshake with {} took too long", self.host),
                    )
                })?
                .map_err(|e| (UpstreamFailure::Tls, describe_tls_error(&self.host, &e)))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| (UpstreamFailure::Protocol, format!("{}: {e}", self.host)))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.upstream.lock().await.h2 = Some(sender.clone());
            Ok(Sender::H2(sender))
        } else {
            let (sender, conn) = http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| (UpstreamFailure::Protocol, format!("{}: {e}", self.host)))?;
            tokio::spawn(async move {
                let _ = conn.with_upgrades().await;
            });
            Ok(Sender::H1(sender))
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

/// Answers the client's upgrade with the site's 101 and copies bytes both ways.
fn relay_websocket(
    client: hyper::upgrade::OnUpgrade,
    upstream_resp: Response<Incoming>,
) -> Response<ProxyBody> {
    let mut resp = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for name in [
        header::UPGRADE,
        header::CONNECTION,
        header::SEC_WEBSOCKET_ACCEPT,
        header::SEC_WEBSOCKET_PROTOCOL,
        header::SEC_WEBSOCKET_EXTENSIONS,
    ] {
        if let Some(v) = upstream_resp.headers().get(&name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    let server = hyper::upgrade::on(upstream_resp);
    tokio::spawn(async move {
        if let (Ok(c), Ok(s)) = (client.await, server.await) {
            let mut c = TokioIo::new(c);
            let mut s = TokioIo::new(s);
            let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
        }
    });
    resp
}

/// Resolves the CONNECT host and checks its addresses before the tunnel is accepted.
pub async fn check_destination(
    gw: &Gateway,
    host: &NormalHost,
    port: u16,
) -> Result<Vec<SocketAddr>, DialError> {
    let addrs = gw.dialer.resolve(host, port).await?;
    let mut allowed = Vec::new();
    let mut denial = None;
    for a in addrs {
        match gw.dialer.guard.check(a) {
            Ok(()) => allowed.push(a),
            Err(d) => {
                denial.get_or_insert(d);
            }
        }
    }
    match (allowed.is_empty(), denial) {
        (false, _) => Ok(allowed),
        (true, Some(d)) => Err(DialError::Denied(d)),
        (true, None) => Err(DialError::Failed(
            UpstreamFailure::Dns,
            format!("{host} has no address"),
        )),
    }
}
