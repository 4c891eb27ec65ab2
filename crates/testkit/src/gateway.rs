//! An in-process gateway for a test, and the clients that talk to it.
//!
//! Job: a temporary fixture directory (`Fixture`) holding the settings' files;
//! `gateway` starts `socialgate::runtime::start` on 127.0.0.1:0 from settings
//! and policy YAML; clients through it: reqwest (`client`,
//! `client_trusting_gateway`), raw bytes (`raw`), a CONNECT tunnel
//! (`open_tunnel`), a kept-alive hyper HTTP/1.1 connection (`connection`,
//! `send`); and its metrics (`admin_metrics`, `metric`). `IDENTITY_POLICY` is
//! the policy the sign-in tests share.
//!
//! Limits: the gateway listens on 127.0.0.1 only; its admin listener only when
//! the settings name one. The settings YAML must not send traffic off loopback
//! (use `upstream.resolve` and `allow_destinations: [127.0.0.1/32]`).
//!
//! Callers: tests/ through `tests/support/mod.rs`; `tests/kerberos.rs`,
//! `tests/ldap.rs` and `tests/kerberos_bench.rs` directly.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use socialgate::policy::load_policy;
use socialgate::policy::sources::FsFiles;
use socialgate::runtime::{start, RunningGateway};
use socialgate::settings::Settings;

/// The policy of the sign-in tests (Kerberos, LDAP): the press office
/// (`communications`) may post, staff (`all-staff`) may read the social site and
/// open tunnels to other websites, everyone else is denied.
pub const IDENTITY_POLICY: &str = include_str!("../policies/identity.yaml");

/// A temporary directory holding a policy and settings for one gateway.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
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
        settings.ca_create_if_missing = true;
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

/// The gateway as a reqwest proxy, optionally with Basic credentials.
fn proxy(gw: &RunningGateway, creds: Option<(&str, &str)>) -> reqwest::Proxy {
    let proxy = reqwest::Proxy::all(format!("http://{}", gw.proxy_addr())).unwrap();
    match creds {
        Some((u, p)) => proxy.basic_auth(u, p),
        None => proxy,
    }
}

/// A reqwest client using the gateway as its proxy, optionally with Basic credentials.
pub fn client(gw: &RunningGateway, creds: Option<(&str, &str)>) -> reqwest::Client {
    reqwest::Client::builder()
        .proxy(proxy(gw, creds))
        .build()
        .unwrap()
}

/// A reqwest client through the gateway that trusts only the gateway's CA.
pub fn client_trusting_gateway(
    gw: &RunningGateway,
    fx: &Fixture,
    creds: Option<(&str, &str)>,
) -> reqwest::Client {
    let ca = std::fs::read(fx.dir.path().join("ca.crt")).unwrap();
    reqwest::Client::builder()
        .proxy(proxy(gw, creds))
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
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

/// A kept-alive HTTP/1.1 connection to the gateway (TCP_NODELAY set).
pub async fn connection(gw: &RunningGateway) -> SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(gw.proxy_addr())
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// Sends one request for the absolute `url` on `conn` (`Host` from the URL, a
/// `hello` body for POST), with `authorization` as Proxy-Authorization; returns
/// the status, the Proxy-Authenticate values in order, and the body.
pub async fn send(
    conn: &mut SendRequest<Full<Bytes>>,
    method: &str,
    url: &str,
    authorization: Option<&str>,
) -> (u16, Vec<String>, String) {
    conn.ready().await.unwrap();
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("host", url.split('/').nth(2).unwrap());
    if let Some(a) = authorization {
        req = req.header("proxy-authorization", a);
    }
    let body = if method == "POST" { "hello" } else { "" };
    let resp = conn
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let challenges = resp
        .headers()
        .get_all("proxy-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        challenges,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The value of the first metric line of the gateway starting with `line_start`
/// (a name with its labels), or 0 when there is none.
pub fn metric(gw: &RunningGateway, line_start: &str) -> f64 {
    let text = gw.gateway.metrics.render();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
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

/// TLS with the gateway over an opened tunnel (`open_tunnel`), trusting only the
/// CA certificate in `ca_pem` (the gateway's `ca.crt`), naming `sni` and offering
/// `alpn`: what a browser that was given the gateway's CA does.
pub async fn tls_with_gateway(
    tunnel: tokio::net::TcpStream,
    ca_pem: &std::path::Path,
    sni: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(ca_pem).unwrap();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap(),
            tunnel,
        )
        .await
        .unwrap()
}

/// Reads one HTTP/1.1 response head (and its Content-Length body, if any) from a
/// raw stream; stops at 5 s without data or when the peer closes.
pub async fn read_response<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n =
            match tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => break,
            };
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end].to_ascii_lowercase().lines().find_map(|l| {
                l.strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            });
            if len.is_none_or(|n| out.len() >= end + 4 + n) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_policy_loads() {
        let fx = Fixture::new();
        let path = fx.write("policy.yaml", IDENTITY_POLICY);
        load_policy(&path.display().to_string(), &FsFiles).unwrap_or_else(|e| panic!("{e}"));
    }
}
