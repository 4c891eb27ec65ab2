//! `audit.syslog`: a copy of every audit record sent to a syslog receiver (a
//! SIEM) as an RFC 5424 message, over UDP (one message per datagram), TCP or
//! TLS (newline-delimited).
//!
//! Job: parse the `udp://`, `tcp://` or `tls://` address ([`SyslogTarget`]),
//! format a record as `<110>1 TIMESTAMP HOST socialgate PID audit - JSON`
//! (facility 13 "log audit", severity 6 "informational"; the message is the
//! audit record's JSON line), and send from a task of its own behind a
//! bounded queue ([`SyslogSender`]), reconnecting TCP and TLS with a backoff.
//! TLS trusts the system roots plus `upstream.extra_roots`.
//!
//! Limits: the audit file stays the record of truth: a record that finds the
//! queue full (the receiver is down or slow) is dropped for syslog only and
//! counted in a warning; nothing here ever slows a request. A datagram larger
//! than 64 KiB cannot be sent over UDP and is dropped. Called by
//! `audit::AuditLog` (the writer hands each serialised record over), started
//! by `runtime`; the settings parse the address with [`SyslogTarget::parse`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// How many messages may wait for the receiver.
pub const SYSLOG_QUEUE: usize = 8192;

/// How messages reach the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTransport {
    Udp,
    Tcp,
    Tls,
}

/// Where audit records are sent: `udp://host:514`, `tcp://host:514`,
/// `tls://host:6514`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    pub transport: SyslogTransport,
    pub host: String,
    pub port: u16,
}

impl SyslogTarget {
    /// Parses `udp://`, `tcp://` or `tls://` `host[:port]` (default port 514,
    /// 6514 for TLS); anything else is an error for people.
    pub fn parse(text: &str) -> Result<SyslogTarget, String> {
        let url = url::Url::parse(text).map_err(|e| {
            format!("`{text}` is not an address such as tcp://siem.example:514 ({e})")
        })?;
        let (transport, default_port) = match url.scheme() {
            "udp" => (SyslogTransport::Udp, 514),
            "tcp" => (SyslogTransport::Tcp, 514),
            "tls" => (SyslogTransport::Tls, 6514),
            other => {
                return Err(format!(
                    "`{other}://` is not a syslog transport: use udp://, tcp:// or tls://"
                ))
            }
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(format!("`{text}` names no host")),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() || !url.username().is_empty() {
            return Err(format!("`{text}`: only a host and a port may be given"));
        }
        Ok(SyslogTarget {
            transport,
            host,
            port: url.port().unwrap_or(default_port),
        })
    }
}

impl std::fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.transport {
            SyslogTransport::Udp => "udp",
            SyslogTransport::Tcp => "tcp",
            SyslogTransport::Tls => "tls",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// This machine's name for the HOSTNAME field (`-` when unknown).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "-".into())
}

/// One RFC 5424 message: `<110>1 TIMESTAMP HOSTNAME socialgate PROCID audit -
/// MSG`, MSG the record's JSON (one line: serde escapes every control
/// character).
pub fn format_message(timestamp: &str, hostname: &str, pid: u32, json: &str) -> String {
    format!("<110>1 {timestamp} {hostname} socialgate {pid} audit - {json}")
}

/// The sending side, shared by the audit writer.
#[derive(Debug, Clone)]
pub struct SyslogSender {
    tx: mpsc::Sender<String>,
    hostname: Arc<str>,
    pid: u32,
    dropped: Arc<AtomicU64>,
    target: Arc<str>,
}

impl SyslogSender {
    /// Starts the sending task (on the current tokio runtime). Fails only on
    /// TLS settings that cannot be built (an unreadable extra root).
    pub fn start(
        target: SyslogTarget,
        extra_roots: &[std::path::PathBuf],
    ) -> Result<SyslogSender, String> {
        let tls = match target.transport {
            SyslogTransport::Tls => {
                let mut config = crate::tls::client_tls_config(extra_roots)?;
                config.alpn_protocols.clear();
                Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
            }
            _ => None,
        };
        let (tx, rx) = mpsc::channel(SYSLOG_QUEUE);
        let name = target.to_string();
        tokio::spawn(send_loop(target, tls, rx));
        Ok(SyslogSender {
            tx,
            hostname: hostname().into(),
            pid: std::process::id(),
            dropped: Arc::new(AtomicU64::new(0)),
            target: name.into(),
        })
    }

    /// Queues the record `json` (written at `timestamp`); never waits.
    pub fn send(&self, timestamp: &str, json: &str) {
        let message = format_message(timestamp, &self.hostname, self.pid, json);
        if self.tx.try_send(message).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(1000) {
                tracing::warn!(target_address = %self.target, dropped = n, "the syslog receiver does not keep up: audit records are being left out of syslog (the audit file has them all). Check the receiver and the network");
            }
        }
    }
}

/// A connected stream to a TCP or TLS receiver.
enum Stream {
    Tcp(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

impl Stream {
    async fn write_line(&mut self, message: &str) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(message.len() + 1);
        line.extend_from_slice(message.as_bytes());
        line.push(b'\n');
        match self {
            Stream::Tcp(s) => s.write_all(&line).await,
            Stream::Tls(s) => {
                s.write_all(&line).await?;
                s.flush().await
            }
        }
    }
}

async fn connect(
    target: &SyslogTarget,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Result<Stream, String> {
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| "connecting timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok(Stream::Tcp(tcp));
    };
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| format!("`{}` cannot be a TLS server name: {e}", target.host))?;
    let stream = tokio::time::timeout(Duration::from_secs(10), tls.connect(name, tcp))
        .await
        .map_err(|_| "the TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS: {e}"))?;
    Ok(Stream::Tls(Box::new(stream)))
}

/// Sends queued messages until every sender is gone.
async fn send_loop(
    target: SyslogTarget,
    tls: Option<tokio_rustls::TlsConnector>,
    mut rx: mpsc::Receiver<String>,
) {
    if target.transport == SyslogTransport::Udp {
        let mut socket: Option<tokio::net::UdpSocket> = None;
        while let Some(message) = rx.recv().await {
            if socket.is_none() {
                socket = udp_socket(&target).await;
            }
            if let Some(s) = &socket {
                if let Err(e) = s.send(message.as_bytes()).await {
                    tracing::warn!(error = %e, target_address = %target, "cannot send an audit record to syslog");
                    socket = None;
                }
            }
        }
        return;
    }
    let mut stream: Option<Stream> = None;
    let mut backoff = Duration::from_secs(1);
    let mut pending: Option<String> = None;
    loop {
        let message = match pending.take() {
            Some(m) => m,
            None => match rx.recv().await {
                Some(m) => m,
                None => return,
            },
        };
        if stream.is_none() {
            match connect(&target, tls.as_ref()).await {
                Ok(s) => {
                    tracing::info!(target_address = %target, "connected to the syslog receiver");
                    stream = Some(s);
                    backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    tracing::warn!(error = %e, target_address = %target, retry_in_s = backoff.as_secs(), "cannot reach the syslog receiver; audit records wait in a queue (the audit file has them all)");
                    pending = Some(message);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
        }
        if let Some(s) = &mut stream {
            if let Err(e) = s.write_line(&message).await {
                tracing::warn!(error = %e, target_address = %target, "the syslog connection failed; reconnecting");
                stream = None;
                pending = Some(message);
            }
        }
    }
}

async fn udp_socket(target: &SyslogTarget) -> Option<tokio::net::UdpSocket> {
    let addr = match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
        Ok(mut addrs) => addrs.next()?,
        Err(e) => {
            tracing::warn!(error = %e, target_address = %target, "cannot resolve the syslog receiver");
            return None;
        }
    };
    let local: std::net::SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await.ok()?;
    socket.connect(addr).await.ok()?;
    Some(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let t = SyslogTarget::parse("tcp://siem.council.example:1514").unwrap();
        assert_eq!(
            (t.transport, t.host.as_str(), t.port),
            (SyslogTransport::Tcp, "siem.council.example", 1514)
        );
        assert_eq!(SyslogTarget::parse("udp://10.0.0.9").unwrap().port, 514);
        assert_eq!(SyslogTarget::parse("tls://siem").unwrap().port, 6514);
        assert_eq!(
            SyslogTarget::parse("udp://[::1]:514").unwrap().to_string(),
            "udp://[::1]:514"
        );
        for bad in [
            "http://siem:514",
            "siem:514",
            "tcp://siem:514/path",
            "tcp://",
        ] {
            assert!(SyslogTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_rfc_5424_message() {
        assert_eq!(
            format_message("2026-11-25T21:37:00.123Z", "gw1", 42, "{\"a\":1}"),
            "<110>1 2026-11-25T21:37:00.123Z gw1 socialgate 42 audit - {\"a\":1}"
        );
    }
}
