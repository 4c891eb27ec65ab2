//! Reaching the real site: resolve the name (static `upstream.resolve` answers
//! first), pass every address through the destination guard, and dial exactly an
//! address that was checked, never the name again. Addresses are tried in the
//! resolver's order (IPv6 and IPv4 alike) within `connect_timeout` in all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::respond::UpstreamFailure;
use crate::net_guard::{DestinationDenied, DestinationGuard};
use crate::policy::NormalHost;

/// Why no connection was made.
#[derive(Debug)]
pub enum DialError {
    /// The guard refused every address.
    Denied(DestinationDenied),
    Failed(UpstreamFailure, String),
}

/// Resolves and dials upstream hosts through the guard.
#[derive(Debug)]
pub struct Dialer {
    pub guard: DestinationGuard,
    pub resolve: std::collections::HashMap<String, std::net::IpAddr>,
    pub connect_timeout: Duration,
}

impl Dialer {
    /// Resolves `host` to socket addresses (no guard yet).
    pub async fn resolve(
        &self,
        host: &NormalHost,
        port: u16,
    ) -> Result<Vec<SocketAddr>, DialError> {
        match host {
            NormalHost::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
            NormalHost::Domain(d) => {
                if let Some(ip) = self.resolve.get(d.as_str()) {
                    return Ok(vec![SocketAddr::new(*ip, port)]);
                }
                let lookup = tokio::net::lookup_host((d.as_str(), port));
                match tokio::time::timeout(self.connect_timeout, lookup).await {
                    Err(_) => Err(DialError::Failed(
                        UpstreamFailure::Timeout,
                        format!("looking up {d} took too long"),
                    )),
                    Ok(Err(_)) => Err(DialError::Failed(
                        UpstreamFailure::Dns,
                        format!("the name {d} could not be resolved"),
                    )),
                    Ok(Ok(addrs)) => {
                        let mut v: Vec<SocketAddr> = addrs.collect();
                        v.dedup();
                        if v.is_empty() {
                            Err(DialError::Failed(
                                UpstreamFailure::Dns,
                                format!("the name {d} has no address"),
                            ))
                        } else {
                            Ok(v)
                        }
                    }
                }
            }
        }
    }

    /// Resolves, checks every address, and connects to the first allowed one that
    /// answers. If the guard refuses all addresses, the first refusal is returned.
    pub async fn dial(
        &self,
        host: &NormalHost,
        port: u16,
    ) -> Result<(TcpStream, SocketAddr), DialError> {
        self.guard.check_port(port).map_err(DialError::Denied)?;
        let addrs = self.resolve(host, port).await?;
        let mut allowed = Vec::new();
        let mut first_denial = None;
        for a in addrs {
            match self.guard.check(a) {
                Ok(()) => allowed.push(a),
                Err(d) => {
                    first_denial.get_or_insert(d);
                }
            }
        }
        if allowed.is_empty() {
            return Err(DialError::Denied(
                first_denial.unwrap_or(DestinationDenied::Port),
            ));
        }
        let attempt = async {
            let mut last = String::new();
            for a in &allowed {
                match TcpStream::connect(a).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        return Ok((s, *a));
                    }
                    Err(e) => last = format!("{host}: {e}"),
                }
            }
            Err(DialError::Failed(UpstreamFailure::Refused, last))
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(DialError::Failed(
                UpstreamFailure::Timeout,
                format!("connecting to {host} took too long"),
            )),
        }
    }
}

/// Shared handle.
pub type SharedDialer = Arc<Dialer>;

/// The TLS client settings for upstream connections: the system's roots plus the
/// PEM files in `extra_roots`, TLS 1.2 and 1.3 only, ALPN h2 then http/1.1.
pub fn client_tls_config(
    extra_roots: &[std::path::PathBuf],
) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    for path in extra_roots {
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("upstream.extra_roots: cannot read {}: {e}", path.display()))?;
        let mut n = 0;
        for c in certs {
            let c = c.map_err(|e| format!("upstream.extra_roots: {}: {e}", path.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("upstream.extra_roots: {}: {e}", path.display()))?;
            n += 1;
        }
        if n == 0 {
            return Err(format!(
                "upstream.extra_roots: {} holds no certificate",
                path.display()
            ));
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
