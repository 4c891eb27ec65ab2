//! A throwaway certificate authority for test servers, and rustls server configs.
//!
//! Job: make a CA now (rcgen, a fresh ECDSA P-256 key), sign leaf certificates
//! with it (or make self-signed ones), and turn a leaf into a rustls
//! `ServerConfig` / `TlsAcceptor` with the ring provider.
//!
//! Limits: for tests and local tools only. Keys live in memory, nothing is
//! written anywhere unless the caller writes the PEM; every call makes a new CA,
//! so no two servers share one unless they share the `TestCa`. This is not the
//! gateway's own interception CA (`socialgate::tls::ca`).
//!
//! Callers: `upstream` (TLS upstreams), `directory::tls_for_localhost` (LDAPS),
//! `examples/bench_upstream.rs` and `examples/e2e_upstream.rs`.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA made now, held in memory.
pub struct TestCa {
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl TestCa {
    /// A self-signed, unconstrained CA whose subject is `CN=<common_name>`.
    pub fn new(common_name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.self_signed(&key).unwrap();
        TestCa { key, cert }
    }

    /// The CA certificate, PEM (what a client or `upstream.extra_roots` trusts).
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate, DER (to send after a leaf in a chain).
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// Signs a leaf for `params` with a new key.
    pub fn sign(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf { key, cert }
    }

    /// Signs a leaf for `names` (DNS names or IP addresses), rcgen's defaults
    /// otherwise.
    pub fn leaf(&self, names: &[String]) -> Leaf {
        self.sign(leaf_params(names))
    }
}

/// Leaf parameters for `names`: each one a DNS name, or an IP address SAN when it
/// parses as one.
pub fn leaf_params(names: &[String]) -> CertificateParams {
    CertificateParams::new(names.to_vec()).unwrap()
}

/// Leaf parameters for a site's `names` (as `leaf_params`) whose subject is
/// `CN=<the first name>`, as logs and browsers show it.
pub fn site_params(names: &[String]) -> CertificateParams {
    let mut params = leaf_params(names);
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.clone());
    }
    params
}

/// A leaf certificate and its key.
pub struct Leaf {
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl Leaf {
    /// A self-signed certificate for `params` (signed by no test CA).
    pub fn self_signed(params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Leaf { key, cert }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The private key, PKCS#8 DER, for rustls.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.serialize_der().into())
    }
}

/// A rustls server config (ring, TLS 1.2 and 1.3, no client certificates) that
/// presents `chain` (leaf first) with the leaf's key and offers `alpn` in order.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    leaf: &Leaf,
    alpn: &[&[u8]],
) -> rustls::ServerConfig {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, leaf.key_der())
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// `server_config` as a tokio acceptor.
pub fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    leaf: &Leaf,
    alpn: &[&[u8]],
) -> tokio_rustls::TlsAcceptor {
    tokio_rustls::TlsAcceptor::from(Arc::new(server_config(chain, leaf, alpn)))
}

/// ALPN for a server speaking HTTP/2 and HTTP/1.1.
pub const ALPN_H2_HTTP1: &[&[u8]] = &[b"h2", b"http/1.1"];
/// ALPN for a server speaking HTTP/1.1 only.
pub const ALPN_HTTP1: &[&[u8]] = &[b"http/1.1"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_leaf_is_named_after_its_first_name_and_signed_by_the_ca() {
        let ca = TestCa::new("testkit CA");
        let leaf = ca.sign(site_params(&["a.test".into(), "127.0.0.1".into()]));
        let pem = leaf.pem();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        assert!(leaf.key_pem().contains("PRIVATE KEY"));
        // The CA certificate and the leaf make a config rustls accepts.
        let config = server_config(vec![leaf.der(), ca.der()], &leaf, ALPN_H2_HTTP1);
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
