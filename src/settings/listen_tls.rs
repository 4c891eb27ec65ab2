//! The `listen_tls:` section: an HTTPS proxy port. Clients speak TLS to the
//! gateway first, then the same HTTP/1.1 proxy requests and CONNECTs as on the
//! plain port, so Basic credentials never cross the network in clear.
//!
//! Limits: `address`, `cert` and `key` are all required. The certificate
//! chain (PEM, the server's certificate first) and its private key (PKCS#8,
//! SEC1 or PKCS#1 PEM) are read and checked against each other when the
//! settings are parsed, so `check --settings` refuses what `run` would; a
//! file replaced later is not read again until a restart. The address is
//! parsed, not bound. The key never appears in `Debug` output or a message.
//! Called by [`super::Settings::from_yaml`]; `proxy::server` serves the port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::Deserialize;

use super::problems::Problems;
use super::values::parse_listen;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListenTls {
    address: String,
    cert: String,
    key: String,
}

/// The HTTPS proxy port's settings, its certificate and key already loaded.
#[derive(Clone)]
pub struct ListenTls {
    pub address: SocketAddr,
    /// Where the certificate chain came from (for messages).
    pub cert: PathBuf,
    /// The certificate chain and the signing key the port presents.
    pub certified: Arc<CertifiedKey>,
}

impl std::fmt::Debug for ListenTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenTls")
            .field("address", &self.address)
            .field("cert", &self.cert)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Parses `listen_tls:`; every problem is reported at its key
/// (`listen_tls.address`, `listen_tls.cert`, `listen_tls.key`).
pub(super) fn parse(raw: RawListenTls, problems: &mut Problems<'_>) -> Option<ListenTls> {
    let address = match parse_listen(&raw.address) {
        Ok(a) => Some(a),
        Err(e) => {
            problems.at("listen_tls.address", format!("`listen_tls.address`: {e}"));
            None
        }
    };
    let chain = match read_chain(&raw.cert) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.at("listen_tls.cert", format!("`listen_tls.cert`: {e}"));
            None
        }
    };
    let key = match read_key(&raw.key) {
        Ok(k) => Some(k),
        Err(e) => {
            problems.at("listen_tls.key", format!("`listen_tls.key`: {e}"));
            None
        }
    };
    let (address, chain, key) = (address?, chain?, key?);
    let certified = CertifiedKey::new(chain, key);
    if certified.keys_match().is_err() {
        problems.at(
            "listen_tls.key",
            format!(
                "`listen_tls.key`: {} is not the private key of the certificate in {}",
                raw.key, raw.cert
            ),
        );
        return None;
    }
    Some(ListenTls {
        address,
        cert: PathBuf::from(raw.cert),
        certified: Arc::new(certified),
    })
}

/// The PEM certificates of `path`, the server's own first.
fn read_chain(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("{path} is not a PEM certificate chain"))?;
    if chain.is_empty() {
        return Err(format!(
            "{path} holds no PEM CERTIFICATE block (the proxy port's certificate, then any intermediates)"
        ));
    }
    Ok(chain)
}

/// The signing key in the PEM file `path`. Parser errors are not echoed: they
/// could quote the key.
fn read_key(path: &str) -> Result<Arc<dyn rustls::sign::SigningKey>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| format!("{path} holds no PEM private key (PKCS#8, SEC1 or PKCS#1)"))?;
    rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|_| format!("{path}: the private key is of a kind TLS cannot use here"))
}

#[cfg(test)]
mod tests {
    use crate::settings::Settings;

    fn pair(dir: &std::path::Path, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let c = dir.join(format!("{name}.crt"));
        let k = dir.join(format!("{name}.key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c.display().to_string(), k.display().to_string())
    }

    #[test]
    fn pac_entries_may_name_the_https_port() {
        let s = Settings::from_yaml(
            "s.yaml",
            "pac: { proxies: [\"HTTPS gw1.council.example:3129\", \"PROXY gw1.council.example:3128\", \"gw2:3128\"] }\n",
        )
        .unwrap();
        assert_eq!(s.pac_proxies.len(), 3);
        for bad in [
            "HTTPS gw1",
            "HTTPS https://gw1:3129",
            "SOCKS gw1:1080",
            "HTTPS  gw1:3129",
        ] {
            let err = Settings::from_yaml("s.yaml", &format!("pac: {{ proxies: [\"{bad}\"] }}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("`pac.proxies`"), "{bad}: {err}");
        }
    }

    #[test]
    fn loads_and_checks_the_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, k1) = pair(dir.path(), "one");
        let (_c2, k2) = pair(dir.path(), "two");
        let ok = format!(
            "listen_tls: {{ address: \"127.0.0.1:3129\", cert: \"{c1}\", key: \"{k1}\" }}\n"
        );
        let s = Settings::from_yaml("s.yaml", &ok).unwrap();
        let t = s.listen_tls.unwrap();
        assert_eq!(t.address.port(), 3129);
        assert!(!format!("{t:?}").contains("PRIVATE"));

        let text = format!(
            "listen_tls:\n  address: \"nowhere\"\n  cert: \"{c1}\"\n  key: \"{dir}/missing.key\"\n",
            dir = dir.path().display()
        );
        let err = Settings::from_yaml("s.yaml", &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.yaml:2:") && err.contains("`listen_tls.address`"),
            "{err}"
        );
        assert!(
            err.contains("s.yaml:4:") && err.contains("`listen_tls.key`: cannot read"),
            "{err}"
        );

        let text = format!(
            "listen_tls:\n  address: \"127.0.0.1:3129\"\n  cert: \"{c1}\"\n  key: \"{k2}\"\n"
        );
        let err = Settings::from_yaml("s.yaml", &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.yaml:4:") && err.contains("is not the private key of the certificate"),
            "{err}"
        );

        let text = format!(
            "listen_tls:\n  address: \"127.0.0.1:3129\"\n  cert: \"{k1}\"\n  key: \"{k1}\"\n"
        );
        let err = Settings::from_yaml("s.yaml", &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.yaml:3:") && err.contains("`listen_tls.cert`"),
            "{err}"
        );
        assert!(!err.contains("PRIVATE KEY-----\n"), "{err}");

        let err = Settings::from_yaml("s.yaml", "listen_tls: { address: \"127.0.0.1:1\" }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cert"), "{err}");
    }
}
