//! Certificates a strict client checks: the CA (created and loaded from its files)
//! and every kind of leaf the issuer mints must be valid DER, not merely BER that
//! lenient parsers accept. Three checks: a DER walker here (definite minimal
//! lengths, minimal INTEGERs, BOOLEANs 00/FF and never an explicit FALSE, since
//! every BOOLEAN in a certificate is `DEFAULT FALSE`), x509-parser with deep
//! extension parsing, and, when Python 3 has the `cryptography` package, its
//! `load_der_x509_certificate` (skipped cleanly otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::SystemTime;

use socialgate::tls::{CertificateAuthority, LeafIssuer};
use x509_parser::certificate::X509CertificateParser;
use x509_parser::nom::Parser as _;

/// A basicConstraints value of `SEQUENCE { BOOLEAN FALSE }`: not DER.
const EXPLICIT_CA_FALSE: [u8; 5] = [0x30, 0x03, 0x01, 0x01, 0x00];
const BASIC_CONSTRAINTS: &str = "2.5.29.19";

/// Walks DER TLVs in `der`, which must be consumed exactly. Errors name the
/// offset and the rule broken.
fn check_der(der: &[u8], at: usize) -> Result<(), String> {
    let mut i = 0;
    while i < der.len() {
        let tag = der[i];
        if tag & 0x1f == 0x1f {
            return Err(format!(
                "offset {}: high tag numbers are not used in X.509",
                at + i
            ));
        }
        let (len, header) = length(&der[i + 1..]).map_err(|e| format!("offset {}: {e}", at + i))?;
        let start = i + 1 + header;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= der.len())
            .ok_or_else(|| format!("offset {}: length past the end", at + i))?;
        let body = &der[start..end];
        match tag {
            0x01 => match body {
                [0xff] => {}
                [0x00] => {
                    return Err(format!(
                        "offset {}: explicit BOOLEAN FALSE (a DEFAULT value DER omits)",
                        at + i
                    ))
                }
                _ => return Err(format!("offset {}: BOOLEAN not 00/FF", at + i)),
            },
            0x02 => {
                let redundant = body.is_empty()
                    || (body.len() > 1
                        && ((body[0] == 0 && body[1] & 0x80 == 0)
                            || (body[0] == 0xff && body[1] & 0x80 != 0)));
                if redundant {
                    return Err(format!("offset {}: INTEGER not minimal", at + i));
                }
            }
            t if t & 0x20 != 0 => check_der(body, at + start)?,
            _ => {}
        }
        i = end;
    }
    Ok(())
}

/// A DER length: (value, bytes used). Definite and minimal only.
fn length(b: &[u8]) -> Result<(usize, usize), String> {
    let first = *b.first().ok_or("missing length")?;
    if first < 0x80 {
        return Ok((usize::from(first), 1));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 {
        return Err("indefinite length".into());
    }
    if n > 4 || b.len() < 1 + n {
        return Err("length too long".into());
    }
    if b[1] == 0 {
        return Err("length with a leading zero byte".into());
    }
    let len = b[1..=n]
        .iter()
        .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
    if len < 0x80 {
        return Err("long-form length below 128".into());
    }
    Ok((len, 1 + n))
}

/// Every check of one certificate; `what` names it in failures.
fn assert_strict(what: &str, der: &[u8]) {
    check_der(der, 0).unwrap_or_else(|e| panic!("{what}: not DER: {e}"));
    let (rest, cert) = X509CertificateParser::new()
        .with_deep_parse_extensions(true)
        .parse(der)
        .unwrap_or_else(|e| panic!("{what}: x509-parser refuses it: {e}"));
    assert!(rest.is_empty(), "{what}: bytes after the certificate");
    for ext in cert.extensions() {
        // Extension values are DER of their own (inside the OCTET STRING).
        check_der(ext.value, 0)
            .unwrap_or_else(|e| panic!("{what}: extension {} not DER: {e}", ext.oid));
        if ext.oid.to_id_string() == BASIC_CONSTRAINTS {
            assert_ne!(ext.value, EXPLICIT_CA_FALSE, "{what}: explicit cA FALSE");
        }
    }
}

/// Python's `cryptography` (rust-asn1, strict DER): loads each file or fails.
/// Returns false when Python 3 or the package is missing.
fn python_loads(files: &[(String, std::path::PathBuf)]) -> bool {
    let has = std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!("python3 with `cryptography` not installed: that check is skipped");
        return false;
    }
    let script = "import sys\nfrom cryptography import x509\nfor p in sys.argv[1:]:\n    c = x509.load_der_x509_certificate(open(p, 'rb').read())\n    list(c.extensions)\n    c.subject\n";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(files.iter().map(|(_, p)| p))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cryptography refuses one of {:?}: {}",
        files.iter().map(|(w, _)| w).collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

#[tokio::test]
async fn every_minted_certificate_is_strict_der() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("ca.crt"), dir.path().join("ca.key"));
    let (created, _) = CertificateAuthority::load_or_create(&cert_path, &key_path).unwrap();
    let loaded = Arc::new(CertificateAuthority::load(&cert_path, &key_path).unwrap());
    let generated = Arc::new(CertificateAuthority::generate("strict DER test CA").unwrap());

    let mut certs: Vec<(String, Vec<u8>)> = vec![
        ("created CA".into(), created.cert_der().to_vec()),
        ("generated CA".into(), generated.cert_der().to_vec()),
    ];
    let long_host = format!("{}.example", "a".repeat(60));
    for (ca_name, ca) in [("generated", generated), ("loaded", loaded)] {
        let issuer = LeafIssuer::new(ca, 10);
        for host in [
            "www.social.test",
            "xn--bcher-kva.example",
            long_host.as_str(),
        ] {
            let leaf = issuer.mint_leaf(host, SystemTime::now()).unwrap();
            certs.push((
                format!("leaf {host} by {ca_name} CA"),
                leaf.cert[0].to_vec(),
            ));
        }
        let cached = issuer.leaf_for("cached.social.test").await.unwrap();
        certs.push((
            format!("cached leaf by {ca_name} CA"),
            cached.cert[0].to_vec(),
        ));
    }

    let mut files = Vec::new();
    for (i, (what, der)) in certs.iter().enumerate() {
        assert_strict(what, der);
        let path = dir.path().join(format!("{i}.der"));
        std::fs::write(&path, der).unwrap();
        files.push((what.clone(), path));
    }
    python_loads(&files);
}

#[test]
fn the_der_walker_refuses_what_strict_clients_refuse() {
    // rcgen 0.13's IsCa::ExplicitNoCa: what the old leaves carried.
    assert!(check_der(&EXPLICIT_CA_FALSE, 0)
        .unwrap_err()
        .contains("BOOLEAN FALSE"));
    assert!(check_der(&[0x30, 0x00], 0).is_ok());
    assert!(check_der(&[0x30, 0x03, 0x01, 0x01, 0xff], 0).is_ok());
    assert!(check_der(&[0x02, 0x02, 0x00, 0x01], 0)
        .unwrap_err()
        .contains("INTEGER"));
    assert!(check_der(&[0x04, 0x81, 0x01, 0x00], 0)
        .unwrap_err()
        .contains("below 128"));
    assert!(check_der(&[0x30, 0x80, 0x00, 0x00], 0)
        .unwrap_err()
        .contains("indefinite"));
    assert!(check_der(&[0x30, 0x05, 0x01], 0)
        .unwrap_err()
        .contains("past the end"));
}
