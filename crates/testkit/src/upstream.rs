//! Upstream servers for the gateway to reach, on loopback, recording what they see.
//!
//! Job: a plain HTTP/1.1 upstream (`upstream_http`, answers `hello from
//! upstream`), a minimal TLS one with its own CA (`upstream_tls`, answers `hello
//! over tls`), and a recording TLS one (`tls_upstream`) speaking HTTP/1.1 and
//! HTTP/2 by ALPN with a choice of good or bad certificates (`CertKind`), a
//! WebSocket byte echo on `/ws` and a WebSocket message echo on `/ws-messages`
//! that records every data message it receives (`TlsUpstream::ws_messages`).
//!
//! Limits: each binds port 0 on the address given (TLS ones on 127.0.0.1,
//! unless `tls_upstream_at` names another, e.g. inside a network namespace) and
//! serves until the runtime stops; requests are kept in memory, bodies whole.
//! Only for tests: nothing here is hardened.
//!
//! Callers: tests/ through `tests/support/mod.rs`, `tests/kerberos.rs`,
//! `tests/ldap.rs`, `tests/kerberos_bench.rs`; `accept_forever` by the example
//! servers `examples/bench_upstream.rs` and `examples/connect_shim.rs`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::ca::{self, Leaf, TestCa};

/// Serves every connection `listener` accepts with `serve`, each on a task of its
/// own, until accepting fails.
pub fn spawn_accept_loop<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(stream));
        }
    });
}

/// Accepts on `listener` for ever, serving each connection (TCP_NODELAY on) with
/// `serve` on a task of its own; a failed accept (out of descriptors, most
/// likely) waits 10 ms for some connections to close. For the example servers
/// that run until killed (`bench_upstream`, `connect_shim`).
pub async fn accept_forever<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream));
    }
}

/// The whole body of a request, or nothing when reading it fails.
async fn whole_body(body: Incoming) -> Bytes {
    body.collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A recording upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Starts an HTTP/1.1 upstream on `ip:0` answering `200 hello from upstream`.
pub async fn upstream_http(ip: &str) -> Upstream {
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (s, c) = (seen.clone(), connections.clone());
    spawn_accept_loop(listener, move |stream| {
        c.fetch_add(1, Ordering::SeqCst);
        let s = s.clone();
        async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let s = s.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = whole_body(body).await;
                    s.lock().unwrap().push(Seen {
                        method: parts.method.to_string(),
                        uri: parts.uri.to_string(),
                        headers: parts.headers,
                        body,
                    });
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"hello from upstream",
                    ))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        }
    });
    Upstream {
        addr,
        seen,
        connections,
    }
}

/// A TLS listener on `ip:0` presenting `leaf` (alone) with `alpn`: its
/// address, and the handshaken streams through `serve`.
async fn tls_listener<F, Fut>(ip: &str, leaf: &Leaf, alpn: &[&[u8]], serve: F) -> SocketAddr
where
    F: Fn(tokio_rustls::server::TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let acceptor = ca::acceptor(vec![leaf.der()], leaf, alpn);
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = Arc::new(serve);
    spawn_accept_loop(listener, move |stream| {
        let acceptor = acceptor.clone();
        let serve = serve.clone();
        async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                serve(tls).await;
            }
        }
    });
    addr
}

/// The common name of the CA each TLS upstream makes for itself.
const UPSTREAM_CA: &str = "socialgate test upstream CA";

/// A TLS upstream for `host` on 127.0.0.1:0 with its own CA made now; answers
/// `hello over tls`. Returns its address, the CA certificate (PEM) and the count
/// of requests.
pub async fn upstream_tls(host: &str) -> (SocketAddr, String, Arc<AtomicUsize>) {
    let ca = TestCa::new(UPSTREAM_CA);
    let leaf = ca.leaf(&[host.to_string()]);
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let addr = tls_listener("127.0.0.1", &leaf, ca::ALPN_HTTP1, move |tls| {
        let h = h.clone();
        async move {
            let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                h.fetch_add(1, Ordering::SeqCst);
                async move {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"hello over tls",
                    ))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        }
    })
    .await;
    (addr, ca.pem(), hits)
}

/// How a test TLS upstream presents itself.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CertKind {
    /// Signed by the test CA for the right name.
    Good,
    /// Signed by the test CA, for another name.
    WrongName,
    /// Signed by the test CA, expired yesterday.
    Expired,
    /// Self-signed, not by the test CA.
    SelfSigned,
}

/// What a TLS upstream saw of one request.
#[derive(Debug, Clone)]
pub struct SeenTls {
    pub version: http::Version,
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A recording TLS upstream speaking HTTP/1.1 and HTTP/2 (ALPN), echoing WebSocket
/// bytes after a 101 on `/ws`, and WebSocket messages on `/ws-messages`.
pub struct TlsUpstream {
    pub addr: SocketAddr,
    /// PEM of the CA that signs its certificate (trust it via `extra_roots`).
    pub ca_pem: String,
    pub seen: Arc<Mutex<Vec<SeenTls>>>,
    /// The data messages (text or binary, whole) received on `/ws-messages`.
    pub ws_received: Arc<Mutex<Vec<Bytes>>>,
    /// TLS connections accepted (handshake completed).
    pub connections: Arc<AtomicUsize>,
}

impl TlsUpstream {
    /// The data messages received on `/ws-messages` so far.
    pub fn ws_messages(&self) -> Vec<Bytes> {
        self.ws_received.lock().unwrap().clone()
    }
    pub fn requests(&self) -> Vec<SeenTls> {
        self.seen.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    /// TLS connections accepted so far.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// The certificate a `tls_upstream` for `host` presents, by `kind`.
fn upstream_leaf(ca: &TestCa, host: &str, kind: CertKind) -> Leaf {
    // Good certificates also cover www.careful.test, a second site in some tests.
    let names = if kind == CertKind::WrongName {
        vec!["another.test".to_string()]
    } else {
        vec![host.to_string(), "www.careful.test".to_string()]
    };
    let mut params = ca::leaf_params(&names);
    if kind == CertKind::Expired {
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
        params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    }
    if kind == CertKind::SelfSigned {
        Leaf::self_signed(params)
    } else {
        ca.sign(params)
    }
}

/// Answers a WebSocket upgrade with 101 and echoes the bytes that follow.
fn websocket_echo(req: &mut Request<Incoming>) -> Response<Full<Bytes>> {
    let key = req.headers().get("sec-websocket-key").cloned();
    let on = hyper::upgrade::on(req);
    tokio::spawn(async move {
        if let Ok(up) = on.await {
            let mut io = TokioIo::new(up);
            let (mut r, mut w) = tokio::io::split(&mut io);
            let _ = tokio::io::copy(&mut r, &mut w).await;
        }
    });
    let accept = key
        .map(|k| websocket_accept(k.as_bytes()))
        .unwrap_or_default();
    Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Answers a WebSocket upgrade with 101, then (as a real WebSocket server)
/// records each data message and echoes it; a close is answered.
fn websocket_message_echo(
    req: &mut Request<Incoming>,
    received: Arc<Mutex<Vec<Bytes>>>,
) -> Response<Full<Bytes>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;
    let mut resp = websocket_echo_response(req);
    let on = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(up),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            let data = match &msg {
                Message::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
                Message::Binary(b) => b.clone(),
                Message::Close(_) => break,
                _ => continue,
            };
            received.lock().unwrap().push(data);
            if ws.send(msg).await.is_err() {
                break;
            }
        }
        let _ = ws.close(None).await;
    });
    *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    resp
}

/// The 101 for a WebSocket upgrade.
fn websocket_echo_response(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let accept = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| websocket_accept(k.as_bytes()))
        .unwrap_or_default();
    Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Starts a recording TLS upstream for `host` with a CA of its own, presenting a
/// certificate of `kind`; answers `hello from the social site` (with an
/// `Alt-Svc` offer on `/alt-svc`).
pub async fn tls_upstream(host: &str, kind: CertKind) -> TlsUpstream {
    tls_upstream_at("127.0.0.1", host, kind).await
}

/// [`tls_upstream`] listening on `ip` (port 0).
pub async fn tls_upstream_at(ip: &str, host: &str, kind: CertKind) -> TlsUpstream {
    let ca = TestCa::new(UPSTREAM_CA);
    let leaf = upstream_leaf(&ca, host, kind);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ws_received = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    let w2 = ws_received.clone();
    let c2 = connections.clone();
    let addr = tls_listener(ip, &leaf, ca::ALPN_H2_HTTP1, move |tls| {
        let seen = s2.clone();
        let ws = w2.clone();
        c2.fetch_add(1, Ordering::SeqCst);
        async move {
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let seen = seen.clone();
                let ws = ws.clone();
                async move {
                    if req.uri().path() == "/ws" {
                        return Ok::<_, Infallible>(websocket_echo(&mut req));
                    }
                    if req.uri().path() == "/ws-messages" {
                        seen.lock().unwrap().push(SeenTls {
                            version: req.version(),
                            method: req.method().to_string(),
                            uri: req.uri().to_string(),
                            headers: req.headers().clone(),
                            body: Bytes::new(),
                        });
                        return Ok(websocket_message_echo(&mut req, ws));
                    }
                    let (parts, body) = req.into_parts();
                    let body = whole_body(body).await;
                    seen.lock().unwrap().push(SeenTls {
                        version: parts.version,
                        method: parts.method.to_string(),
                        uri: parts.uri.to_string(),
                        headers: parts.headers,
                        body,
                    });
                    let mut resp =
                        Response::new(Full::new(Bytes::from_static(b"hello from the social site")));
                    // `/alt-svc` offers HTTP/3, as large sites do.
                    if parts.uri.path() == "/alt-svc" {
                        resp.headers_mut().insert(
                            "alt-svc",
                            http::HeaderValue::from_static("h3=\":443\"; ma=86400"),
                        );
                    }
                    Ok(resp)
                }
            });
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                    .await;
        }
    })
    .await;
    TlsUpstream {
        addr,
        ca_pem: ca.pem(),
        seen,
        ws_received,
        connections,
    }
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455).
pub fn websocket_accept(key: &[u8]) -> String {
    use base64::Engine as _;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_accept_matches_rfc_6455() {
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
