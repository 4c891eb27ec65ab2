//! The gateway's TLS client settings for everything it dials over TLS: the
//! social sites behind intercepted tunnels (`proxy`), and LDAPS directories
//! (`identity::ldap`).
//!
//! Limits: real certificate verification only (the system's roots plus
//! `upstream.extra_roots`), TLS 1.2 and 1.3; no client certificates. Callers:
//! `proxy::gateway` (upstream configs) and `identity::ldap`.

use std::sync::Arc;

/// The TLS client settings for upstream connections: the system's roots plus the
/// PEM files in `extra_roots`, TLS 1.2 and 1.3 only, AES-128-GCM suites first,
/// ALPN h2 then http/1.1.
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
    // The gateway's ring provider: AES-128-GCM suites offered first, as browsers
    // do (a site that follows the client's order then avoids SHA-384).
    let mut config = rustls::ClientConfig::builder_with_provider(super::ca::ring_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.resumption =
        rustls::client::Resumption::store(Arc::new(super::tickets::TicketStore::default()));
    Ok(config)
}
