//! Listeners: the accept loop and the HTTP/1.1 connection setup for the proxy
//! ports, plain and HTTPS (`listen_tls`: TLS first, then the same HTTP/1.1 on
//! the decrypted stream, so everything below is shared). Each connection is capped (`limits.max_connections`), gets a header read
//! timeout, an idle timeout (`limits.idle_timeout`, by `idle`) and the
//! `max_header_bytes` limit (hyper answers 431 beyond it), and
//! keeps its own upstream connections, never shared with another client. Each
//! request gets its context (reference, audit record) here and goes to `route`;
//! nothing in the proxy calls back into the listener. Called by `runtime`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::body::ProxyBody;
use super::context::{ClientConn, RequestCtx};
use super::gateway::Gateway;
use super::{observe, route};

/// Open connections per client address, for `limits.max_connections_per_client`.
/// (Also used by the listeners of redirected connections.)
#[derive(Default, Clone)]
struct PerClient {
    counts: Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>,
}

/// One counted connection; uncounted when dropped.
struct PerClientSlot {
    counts: Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>,
    ip: std::net::IpAddr,
}

impl PerClient {
    fn admit(&self, ip: std::net::IpAddr, max: usize) -> Option<PerClientSlot> {
        let mut counts = self.counts.lock().ok()?;
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PerClientSlot {
            counts: self.counts.clone(),
            ip,
        })
    }
}

impl Drop for PerClientSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock() {
            if let Some(n) = counts.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&self.ip);
                }
            }
        }
    }
}

/// A listener's admission: `limits.max_connections` slots and the per-client
/// cap (`limits.max_connections_per_client`). Shared by the proxy ports and the
/// listeners of redirected connections.
pub(super) struct Admission {
    gw: Arc<Gateway>,
    slots: Arc<Semaphore>,
    per_client: PerClient,
}

/// One admitted connection: counted in `socialgate_connections_active`, its
/// slot and its client's count held until dropped.
pub(super) struct Admitted {
    gw: Arc<Gateway>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _per_client: PerClientSlot,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.gw.metrics.connections_active.dec();
    }
}

impl Admission {
    pub(super) fn new(gw: &Arc<Gateway>) -> Admission {
        Admission {
            gw: gw.clone(),
            slots: Arc::new(Semaphore::new(gw.settings.limits.max_connections.max(1))),
            per_client: PerClient::default(),
        }
    }

    /// The next connection within the caps (those beyond them are closed, with
    /// a log line naming the limit), with `TCP_NODELAY` set; `None` once
    /// `shutdown` turns true.
    pub(super) async fn accept(
        &self,
        listener: &TcpListener,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(tokio::net::TcpStream, SocketAddr, Admitted)> {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => return None,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; continuing");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "connection limit reached (limits.max_connections); closing the new connection");
                continue;
            };
            let client = crate::net_guard::canonical(peer.ip());
            let max = self.gw.settings.limits.max_connections_per_client;
            let Some(per_client) = self.per_client.admit(client, max) else {
                tracing::warn!(%peer, "this client has too many connections (limits.max_connections_per_client); closing the new one");
                continue;
            };
            let _ = stream.set_nodelay(true);
            self.gw.metrics.connections_active.inc();
            let admitted = Admitted {
                gw: self.gw.clone(),
                _permit: permit,
                _per_client: per_client,
            };
            return Some((stream, peer, admitted));
        }
    }
}

/// Serves the plain proxy port until `shutdown` turns true.
pub async fn serve_proxy(gw: Arc<Gateway>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    accept_loop(gw, listener, None, shutdown).await;
}

/// Serves the HTTPS proxy port (`listen_tls`) until `shutdown` turns true:
/// each connection first completes a TLS handshake (ALPN `http/1.1` only,
/// within `limits.header_read_timeout`), then is served exactly as a plain one.
pub async fn serve_proxy_tls(
    gw: Arc<Gateway>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    accept_loop(gw, listener, Some(acceptor), shutdown).await;
}

/// The TLS settings of the HTTPS proxy port: its certificate, ALPN `http/1.1`
/// (the proxy port speaks HTTP/1.1 to clients; HTTP/2 is only offered inside
/// intercepted tunnels).
pub fn tls_port_config(
    certified: Arc<rustls::sign::CertifiedKey>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    crate::tls::LeafIssuer::server_config(certified, &[b"http/1.1"])
        .map_err(|e| format!("`listen_tls`: {e}"))
}

/// The accept loop both ports share: connection caps, per-client caps, and
/// (with `tls`) the handshake before HTTP.
async fn accept_loop(
    gw: Arc<Gateway>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let admission = Admission::new(&gw);
    while let Some((stream, peer, admitted)) = admission.accept(&listener, &mut shutdown).await {
        let _ = stream.set_nodelay(true);
        let gw = gw.clone();
        let stop = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(gw.clone(), stream, peer, stop).await,
                Some(acceptor) => {
                    // The handshake counts as the start of the request head: a
                    // client that stalls in it is closed like one that stalls
                    // in its headers. A client that speaks plain HTTP here
                    // fails the handshake and gets nothing.
                    let wait = gw.settings.limits.header_read_timeout;
                    match tokio::time::timeout(wait, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve_connection(gw.clone(), tls_stream, peer, stop).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake on the HTTPS proxy port failed");
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "no TLS handshake on the HTTPS proxy port within limits.header_read_timeout; closed");
                        }
                    }
                }
            }
            drop(admitted);
        });
    }
}

/// Serves HTTP/1.1 on one client connection: a TCP socket (the plain port) or
/// a TLS stream (the HTTPS port). Only a plain socket reaches `connect` as a
/// `TcpStream` that tunnels can splice; anything else is copied.
async fn serve_connection<S>(
    gw: Arc<Gateway>,
    stream: S,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(ClientConn::default());
    let service = {
        let gw = gw.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let gw = gw.clone();
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(handle(gw, peer, conn, req).await) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(gw.settings.limits.header_read_timeout)
        .max_buf_size(gw.settings.limits.max_header_bytes.max(8192))
        // One `send` of a copied buffer rather than a `writev` of head and body:
        // on loopback and LAN the vectored call's VFS path costs more kernel
        // time than copying the (small) head and body into one buffer.
        .writev(false)
        .keep_alive(true);
    // No traffic either way for `limits.idle_timeout` (a stalled body being
    // streamed, a response that stopped coming) closes the connection. After a
    // CONNECT's 200 the tunnel has its own timers.
    let activity = super::idle::LastActivity::new();
    let stream = super::idle::Watched::new(stream, activity.clone());
    let idle = super::idle::watchdog(activity, gw.settings.limits.idle_timeout);
    let served = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(served);
    tokio::pin!(idle);
    // On stop, an idle keep-alive connection closes at once; a request in flight
    // finishes first.
    let result = tokio::select! {
        r = served.as_mut() => r,
        () = idle.as_mut() => {
            tracing::debug!(%peer, "a client connection had no traffic for limits.idle_timeout; closed");
            return;
        }
        _ = stop.changed() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}

async fn handle(
    gw: Arc<Gateway>,
    peer: SocketAddr,
    conn: Arc<ClientConn>,
    req: Request<Incoming>,
) -> http::Response<ProxyBody> {
    let target_host = req.uri().host().and_then(crate::policy::normalize_host);
    let host = target_host
        .as_ref()
        .map(|h| h.to_authority_host())
        .unwrap_or_default();
    let mut ctx = RequestCtx::new(&gw, peer.ip(), &req, host);
    ctx.target_host = target_host;
    let resp = route::route(&ctx, conn, req).await;
    observe::respond(&gw, ctx.log, resp)
}
