//! The parent proxy (`upstream.proxy`): which destinations go through it (all
//! but `upstream.no_proxy`), TLS to an `https://` parent, the `CONNECT
//! host:port` handshake with its `Proxy-Authorization: Basic` from
//! `upstream.proxy_auth_file`, and the byte stream the gateway then speaks to
//! the site over ([`UpstreamStream`], also the plain TCP stream of a direct
//! connection).
//!
//! Limits: only HTTP parents (`http://`, `https://`), Basic credentials or
//! none; the parent's answer head is at most 16 KiB. The parent's own address
//! is the operator's and is not put through the destination guard; nor is what
//! the parent resolves (the gateway never sees it). This module does not dial
//! (the TCP connection to the parent comes from `upstream::Dialer`) and knows
//! nothing of the guard. Called by `upstream` (the dialer), and by `forward`
//! for the absolute-form request and header it sends to an HTTP parent.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::{Buf, Bytes};
use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::policy::NormalHost;
use crate::settings::{NoProxy, ParentProxy};

/// The largest answer head accepted from the parent for a CONNECT.
const MAX_HEAD: usize = 16 * 1024;

/// The configured parent, ready to use.
pub struct Parent {
    pub settings: ParentProxy,
    /// `Proxy-Authorization` for every request and CONNECT, when configured.
    pub authorization: Option<HeaderValue>,
    no_proxy: Vec<NoProxy>,
    /// TLS to an `https://` parent: the client settings and the name verified.
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl std::fmt::Debug for Parent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parent")
            .field("url", &self.settings.url())
            .finish_non_exhaustive()
    }
}

/// Why the parent gave no usable connection (the dialer maps these to the
/// kinds of upstream failure).
#[derive(Debug)]
pub enum ParentFailure {
    /// TLS with an `https://` parent failed.
    Tls(String),
    /// The parent refused: 407 or another non-2xx answer to CONNECT.
    Refused(String),
    /// The parent broke the protocol or closed the connection.
    Broken(String),
}

impl Parent {
    /// The parent of `upstream` settings, if any; `extra_roots` are trusted for
    /// an `https://` parent besides the system's roots.
    pub fn from_settings(
        proxy: Option<&ParentProxy>,
        no_proxy: &[NoProxy],
        extra_roots: &[std::path::PathBuf],
    ) -> Result<Option<Parent>, String> {
        let Some(p) = proxy else {
            return Ok(None);
        };
        let tls = if p.tls {
            let mut config = crate::tls::client_tls_config(extra_roots)?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = rustls::pki_types::ServerName::try_from(p.host.clone()).map_err(|_| {
                format!(
                    "upstream.proxy: {} is not a name a TLS certificate can be checked for",
                    p.host
                )
            })?;
            Some((Arc::new(config), name))
        } else {
            None
        };
        let authorization = match &p.credentials {
            Some(c) => {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", c.user, c.password));
                let mut v = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
                    "upstream.proxy_auth_file: the credentials cannot be sent in a header"
                        .to_string()
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Some(Parent {
            settings: p.clone(),
            authorization,
            no_proxy: no_proxy.to_vec(),
            tls,
        }))
    }

    /// The parent, as `http://host:port`, for messages.
    pub fn url(&self) -> String {
        self.settings.url()
    }

    /// Does `host` go through the parent (it is not in `no_proxy`)?
    pub fn applies_to(&self, host: &NormalHost) -> bool {
        !self.no_proxy.iter().any(|n| match (n, host) {
            (NoProxy::Net(net), NormalHost::Ip(ip)) => {
                net.contains(&crate::net_guard::canonical(*ip))
            }
            (NoProxy::Domain(pattern), NormalHost::Domain(d)) => pattern.matches(d.as_str()),
            _ => false,
        })
    }

    /// Sets up TLS with an `https://` parent over `tcp` (nothing for `http://`).
    pub async fn over(&self, tcp: TcpStream) -> Result<UpstreamStream, ParentFailure> {
        let Some((config, name)) = &self.tls else {
            return Ok(UpstreamStream::tcp(tcp));
        };
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| {
                ParentFailure::Tls(format!(
                    "the secure connection to the parent proxy {} failed: {e}",
                    self.url()
                ))
            })?;
        Ok(UpstreamStream {
            io: Io::Tls(Box::new(tls)),
            early: Bytes::new(),
        })
    }

    /// Asks the parent for a tunnel to `host:port` over `stream` (already
    /// connected to the parent, TLS set up) and returns it once the parent
    /// answers 2xx.
    pub async fn tunnel(
        &self,
        mut stream: UpstreamStream,
        host: &NormalHost,
        port: u16,
    ) -> Result<UpstreamStream, ParentFailure> {
        let target = format!("{}:{port}", host.to_authority_host());
        let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = &self.authorization {
            head.push_str("Proxy-Authorization: ");
            head.push_str(auth.to_str().unwrap_or_default());
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let broken = |e: io::Error| {
            ParentFailure::Broken(format!(
                "the parent proxy {} closed the connection: {e}",
                self.url()
            ))
        };
        stream.write_all(head.as_bytes()).await.map_err(broken)?;
        stream.flush().await.map_err(broken)?;
        let mut buf = Vec::with_capacity(512);
        let end = loop {
            let mut chunk = [0u8; 2048];
            let n = stream.read(&mut chunk).await.map_err(broken)?;
            if n == 0 {
                return Err(ParentFailure::Broken(format!(
                    "the parent proxy {} closed the connection without answering CONNECT {target}",
                    self.url()
                )));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if buf.len() > MAX_HEAD {
                return Err(ParentFailure::Broken(format!(
                    "the parent proxy {} sent an answer head larger than 16 KiB",
                    self.url()
                )));
            }
        };
        let status_line = String::from_utf8_lossy(&buf[..end]);
        let status_line = status_line.lines().next().unwrap_or_default();
        let status = parse_status(status_line).ok_or_else(|| {
            ParentFailure::Broken(format!(
                "the parent proxy {} did not answer in HTTP",
                self.url()
            ))
        })?;
        if (200..300).contains(&status) {
            stream.early = Bytes::copy_from_slice(&buf[end..]);
            return Ok(stream);
        }
        if status == 407 {
            return Err(ParentFailure::Refused(self.credentials_refused()));
        }
        let reason = status_line.splitn(3, ' ').nth(2).unwrap_or_default().trim();
        Err(ParentFailure::Refused(format!(
            "the parent proxy {} answered {status} {reason} to CONNECT {target}",
            self.url()
        )))
    }

    /// What a 407 from the parent means, for the gateway's 502.
    pub fn credentials_refused(&self) -> String {
        match &self.settings.credentials {
            None => format!(
                "the parent proxy {} asked for credentials; configure them in upstream.proxy_auth_file",
                self.url()
            ),
            Some(c) => format!(
                "the parent proxy {} refused the credentials of user `{}` from upstream.proxy_auth_file ({})",
                self.url(),
                c.user,
                c.file.display()
            ),
        }
    }
}

/// The status code of an `HTTP/1.x NNN reason` line.
fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// A byte stream to the site: a TCP connection (direct, or to an `http://`
/// parent) or TLS to an `https://` parent, with any bytes the parent sent right
/// behind its CONNECT answer read first.
pub struct UpstreamStream {
    io: Io,
    early: Bytes,
}

enum Io {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl UpstreamStream {
    pub fn tcp(tcp: TcpStream) -> UpstreamStream {
        UpstreamStream {
            io: Io::Tcp(tcp),
            early: Bytes::new(),
        }
    }

    /// The TCP socket itself, when nothing is layered on it (so that a tunnel
    /// can splice); else the stream back.
    pub fn into_tcp(self) -> Result<TcpStream, UpstreamStream> {
        match self.io {
            Io::Tcp(tcp) if self.early.is_empty() => Ok(tcp),
            io => Err(UpstreamStream {
                io,
                early: self.early,
            }),
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.early.is_empty() {
            let n = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early[..n]);
            this.early.advance(n);
            return Poll::Ready(Ok(()));
        }
        match &mut this.io {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Tcp(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status("HTTP/1.1 200 Connection established"),
            Some(200)
        );
        assert_eq!(
            parse_status("HTTP/1.0 407 Proxy Authentication Required"),
            Some(407)
        );
        assert_eq!(parse_status("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status("HTTP/1.1 20 short"), None);
    }
}
