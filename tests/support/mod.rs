//! Shared test support: a real upstream HTTP server on 127.0.0.1 that records what
//! it receives, a canary listener that must receive nothing, and an in-process
//! gateway on port 0. Everything stays on loopback.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use socialgate::policy::load_policy;
use socialgate::policy::sources::FsFiles;
use socialgate::runtime::{start, RunningGateway};
use socialgate::settings::Settings;

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
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let s = s.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
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
            });
        }
    });
    Upstream {
        addr,
        seen,
        connections,
    }
}

/// A listener that counts connections; a test asserts it stays at zero.
pub struct Canary {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl Canary {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

pub async fn canary(ip: &str) -> Canary {
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            h.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    Canary { addr, hits }
}

/// A temporary directory holding a policy and settings for one gateway.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// Starts a gateway on 127.0.0.1:0 with settings YAML (paths inside it may use
/// `{dir}` for the fixture directory) and a policy YAML.
pub async fn gateway(fx: &Fixture, settings_yaml: &str, policy_yaml: &str) -> RunningGateway {
    let policy_path = fx.write("policy.yaml", policy_yaml);
    let text = settings_yaml.replace("{dir}", &fx.dir.path().display().to_string());
    let mut settings =
        Settings::from_yaml("settings.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    settings.listen = vec!["127.0.0.1:0".parse().unwrap()];
    if !text.contains("admin_listen") {
        settings.admin_listen = None;
    }
    settings.policy = Some(policy_path.clone());
    if !text.contains("\naudit:") {
        settings.audit_path = fx.dir.path().join("audit.jsonl").display().to_string();
    }
    if !text.contains("\nca:") {
        settings.ca_cert = fx.dir.path().join("ca.crt");
        settings.ca_key = fx.dir.path().join("ca.key");
    }
    let policy =
        load_policy(&policy_path.display().to_string(), &FsFiles).unwrap_or_else(|e| panic!("{e}"));
    start(settings, policy).await.unwrap()
}

/// Writes an htpasswd file with bcrypt hashes (cost 4, fast for tests).
pub fn htpasswd(fx: &Fixture, users: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for (u, p) in users {
        text.push_str(&format!("{u}:{}\n", bcrypt::hash(p, 4).unwrap()));
    }
    fx.write("users.htpasswd", &text).display().to_string()
}

/// A reqwest client using the gateway as its proxy, optionally with Basic credentials.
pub fn client(gw: &RunningGateway, creds: Option<(&str, &str)>) -> reqwest::Client {
    let mut proxy = reqwest::Proxy::all(format!("http://{}", gw.proxy_addr())).unwrap();
    if let Some((u, p)) = creds {
        proxy = proxy.basic_auth(u, p);
    }
    reqwest::Client::builder().proxy(proxy).build().unwrap()
}

/// Has a whole response (head and a Content-Length body) arrived?
fn response_complete(out: &[u8]) -> bool {
    let text = String::from_utf8_lossy(out);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let head = text[..end].to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match len {
        Some(n) => out.len() >= end + 4 + n,
        None => head.starts_with("http/1.1 200"),
    }
}

/// Sends raw bytes to the gateway and returns what it answers: one whole response,
/// or everything until it closes (or 2 s of silence).
pub async fn raw(gw: &RunningGateway, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.proxy_addr())
        .await
        .unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
        if response_complete(&out) {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens a CONNECT tunnel to `target` (`host:port`) with `headers` (each line
/// ending in CRLF), asserts the gateway's 200 and returns the socket after its
/// head, ready for the tunnelled bytes.
pub async fn open_tunnel(
    gw: &RunningGateway,
    target: &str,
    headers: &str,
) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.proxy_addr())
        .await
        .unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{headers}\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// A TLS upstream for `host` on 127.0.0.1:0 with its own CA made now; answers
/// `hello over tls`. Returns its address and the CA certificate (PEM).
pub async fn upstream_tls(host: &str) -> (SocketAddr, String, Arc<AtomicUsize>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "socialgate test upstream CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let h = h.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
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
            });
        }
    });
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
/// bytes after a 101 on `/ws`.
pub struct TlsUpstream {
    pub addr: SocketAddr,
    /// PEM of the CA that signs its certificate (trust it via `extra_roots`).
    pub ca_pem: String,
    pub seen: Arc<Mutex<Vec<SeenTls>>>,
}

impl TlsUpstream {
    pub fn requests(&self) -> Vec<SeenTls> {
        self.seen.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

pub async fn tls_upstream(host: &str, kind: CertKind) -> TlsUpstream {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "socialgate test upstream CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    // Good certificates also cover www.careful.test, a second site in some tests.
    let names = if kind == CertKind::WrongName {
        vec!["another.test".to_string()]
    } else {
        vec![host.to_string(), "www.careful.test".to_string()]
    };
    let mut params = CertificateParams::new(names).unwrap();
    if kind == CertKind::Expired {
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
        params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    }
    let leaf = if kind == CertKind::SelfSigned {
        params.self_signed(&leaf_key).unwrap()
    } else {
        params.signed_by(&leaf_key, &ca, &ca_key).unwrap()
    };
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = s2.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        if req.uri().path() == "/ws" {
                            let key = req.headers().get("sec-websocket-key").cloned();
                            let on = hyper::upgrade::on(&mut req);
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
                            let resp = Response::builder()
                                .status(101)
                                .header("upgrade", "websocket")
                                .header("connection", "Upgrade")
                                .header("sec-websocket-accept", accept)
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            return Ok::<_, Infallible>(resp);
                        }
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        seen.lock().unwrap().push(SeenTls {
                            version: parts.version,
                            method: parts.method.to_string(),
                            uri: parts.uri.to_string(),
                            headers: parts.headers,
                            body,
                        });
                        Ok(Response::new(Full::new(Bytes::from_static(
                            b"hello from the social site",
                        ))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    TlsUpstream {
        addr,
        ca_pem: ca.pem(),
        seen,
    }
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455).
pub fn websocket_accept(key: &[u8]) -> String {
    use base64::Engine as _;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC11B0B");
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

/// A reqwest client through the gateway that trusts only the gateway's CA.
pub fn client_trusting_gateway(
    gw: &RunningGateway,
    fx: &Fixture,
    creds: Option<(&str, &str)>,
) -> reqwest::Client {
    let mut proxy = reqwest::Proxy::all(format!("http://{}", gw.proxy_addr())).unwrap();
    if let Some((u, p)) = creds {
        proxy = proxy.basic_auth(u, p);
    }
    let ca = std::fs::read(fx.dir.path().join("ca.crt")).unwrap();
    reqwest::Client::builder()
        .proxy(proxy)
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The Prometheus text from the gateway's admin `/metrics` (the settings must set
/// `admin_listen`, e.g. `127.0.0.1:0`).
pub async fn admin_metrics(gw: &RunningGateway) -> String {
    let url = format!("http://{}/metrics", gw.admin_addr.unwrap());
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
