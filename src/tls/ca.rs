//! The gateway's certificate authority: create it once per installation, store it,
//! load it at start-up, and sign leaves with it.
//!
//! A created CA is ECDSA P-256, `CA:TRUE, pathlen:0`, key usage `keyCertSign` and
//! `cRLSign` only, valid 10 years, with a critical name constraint that excludes
//! every IPv4 and IPv6 address (it can vouch for DNS names only). A DNS permitted
//! subtree is not set: sites are configurable, so the CA must sign any DNS name.
//!
//! Limits: the certificate file must hold the CA itself (first `CERTIFICATE` block;
//! intermediate chains are not supported). A loaded CA may use any key type rcgen
//! can sign with; it must be a CA, not expired, and match its key. Files are written
//! with `create_new` (never overwritten); the key file is created with mode 0600 in
//! the same `open(2)` call on Unix. Key bytes are not zeroised in memory.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType, GeneralSubtree,
    IsCa, KeyPair, KeyUsagePurpose, NameConstraints, PublicKeyData, SerialNumber,
};
use ring::rand::SecureRandom;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use super::TlsError;

/// Common name given to a CA created by [`CertificateAuthority::load_or_create`]
/// (followed by the creation date, so installations can be told apart).
pub const DEFAULT_CA_COMMON_NAME: &str = "socialgate interception CA";

/// Validity of a created CA.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A created CA starts this long before its creation, for clients whose clock lags.
const CA_BACKDATE: Duration = Duration::from_secs(3600);

/// The CA certificate and its private key, ready to sign leaves.
pub struct CertificateAuthority {
    key: KeyPair,
    /// What rcgen needs to sign as this CA (subject, key identifier). For a loaded
    /// CA this is a re-signed copy; it is never presented to anyone.
    signer: rcgen::Certificate,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    not_after: SystemTime,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("sha256", &self.sha256_fingerprint())
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl CertificateAuthority {
    /// Create a new CA valid for 10 years (see the module header for its profile).
    pub fn generate(common_name: &str) -> Result<Self, TlsError> {
        Self::generate_with_validity(common_name, CA_VALIDITY)
    }

    /// Like [`generate`](Self::generate) with a chosen lifetime from now; tests use
    /// it to make a CA that expires soon.
    pub fn generate_with_validity(common_name: &str, validity: Duration) -> Result<Self, TlsError> {
        let now = SystemTime::now();
        let not_before = whole_seconds(now.checked_sub(CA_BACKDATE).unwrap_or(now));
        let not_after = whole_seconds(now + validity);

        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(TlsError::CaGenerate)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "socialgate");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: Vec::new(),
            excluded_subtrees: vec![
                GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])),
                GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])),
            ],
        });
        params.serial_number = Some(random_serial()?);
        params.not_before = time::OffsetDateTime::from(not_before);
        params.not_after = time::OffsetDateTime::from(not_after);

        let signer = params.self_signed(&key).map_err(TlsError::CaGenerate)?;
        let cert_der = signer.der().clone();
        let cert_pem = signer.pem();
        Ok(Self {
            key,
            signer,
            cert_der,
            cert_pem,
            not_after,
        })
    }

    /// Build a CA from PEM text: the certificate (first `CERTIFICATE` block) and
    /// its private key (PKCS#8, SEC1 or PKCS#1 PEM). Checks that the certificate is
    /// a CA allowed to sign certificates, is not expired, and matches the key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TlsError::CaCert(format!("no PEM CERTIFICATE block found ({e})")))?;
        // The error text of a key parser could echo input; keep only its kind.
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| TlsError::CaKey(format!("not a usable PEM private key ({e})")))?;

        let params = CertificateParams::from_ca_cert_der(&cert_der)
            .map_err(|e| TlsError::CaCert(e.to_string()))?;
        if !matches!(params.is_ca, IsCa::Ca(_)) {
            return Err(TlsError::CaCert(
                "basicConstraints does not say CA:TRUE".to_owned(),
            ));
        }
        if !params.key_usages.is_empty()
            && !params.key_usages.contains(&KeyUsagePurpose::KeyCertSign)
        {
            return Err(TlsError::CaCert(
                "key usage does not include keyCertSign".to_owned(),
            ));
        }
        let not_after = SystemTime::from(params.not_after);
        let now = SystemTime::now();
        if not_after <= now {
            return Err(TlsError::CaExpired { not_after });
        }
        if SystemTime::from(params.not_before) > now {
            tracing::warn!("CA certificate is not valid yet; is the clock right?");
        }
        check_key_matches(&cert_der, &key)?;

        // rcgen signs as an issuer described by a `Certificate`; re-signing the
        // parsed parameters gives one with the same subject and key identifier.
        let signer = params
            .self_signed(&key)
            .map_err(|e| TlsError::CaKey(e.to_string()))?;
        let cert_pem = pem_encode_certificate(&cert_der);
        Ok(Self {
            key,
            signer,
            cert_der,
            cert_pem,
            not_after,
        })
    }

    /// Read the CA from its two PEM files. Warns when the key file is readable by
    /// group or others.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let cert_pem = fs::read_to_string(cert_path).map_err(|source| TlsError::Io {
            action: "reading CA certificate",
            path: cert_path.to_path_buf(),
            source,
        })?;
        let key_pem = fs::read_to_string(key_path).map_err(|source| TlsError::Io {
            action: "reading CA private key",
            path: key_path.to_path_buf(),
            source,
        })?;
        warn_if_key_exposed(key_path);
        Self::from_pem(&cert_pem, &key_pem)
    }

    /// Write the certificate and the key as PEM. Creates missing directories.
    /// Refuses when either file exists. The key file is created with mode 0600
    /// (Unix); if the second file cannot be written the first is removed again.
    pub fn write(&self, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
        for path in [cert_path, key_path] {
            if exists(path)? {
                return Err(TlsError::AlreadyExists(path.to_path_buf()));
            }
        }
        for path in [cert_path, key_path] {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(|source| TlsError::Io {
                    action: "creating directory",
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
        }
        let key_pem = self.key.serialize_pem();
        write_new_file(
            key_path,
            key_pem.as_bytes(),
            0o600,
            "writing CA private key",
        )?;
        if let Err(e) = write_new_file(
            cert_path,
            self.cert_pem.as_bytes(),
            0o644,
            "writing CA certificate",
        ) {
            let _ = fs::remove_file(key_path);
            return Err(e);
        }
        Ok(())
    }

    /// Both files missing: create a CA, write it and return `(ca, true)`. Both
    /// present: load them, `(ca, false)`. Exactly one present: an error naming the
    /// missing file (never silently replace half of a CA that clients trust).
    pub fn load_or_create(cert_path: &Path, key_path: &Path) -> Result<(Self, bool), TlsError> {
        match (exists(cert_path)?, exists(key_path)?) {
            (true, true) => Ok((Self::load(cert_path, key_path)?, false)),
            (false, false) => {
                let today = time::OffsetDateTime::now_utc().date();
                let ca = Self::generate(&format!("{DEFAULT_CA_COMMON_NAME} {today}"))?;
                ca.write(cert_path, key_path)?;
                Ok((ca, true))
            }
            (true, false) => Err(TlsError::CaHalfPresent {
                present_what: "certificate",
                present: cert_path.to_path_buf(),
                missing_what: "private key",
                missing: key_path.to_path_buf(),
            }),
            (false, true) => Err(TlsError::CaHalfPresent {
                present_what: "private key",
                present: key_path.to_path_buf(),
                missing_what: "certificate",
                missing: cert_path.to_path_buf(),
            }),
        }
    }

    /// The CA certificate as PEM (what staff install; served at `/ca.crt`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate as DER (the last element of every leaf chain).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// When the CA expires; no leaf outlives it.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// SHA-256 of the certificate DER, as colon-separated upper-case hex (the
    /// form browsers show), for the "how to trust it" log line.
    pub fn sha256_fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.cert_der.as_ref());
        let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        hex.join(":")
    }

    /// Sign a leaf described by `params` for `public_key` as this CA.
    pub(crate) fn sign(
        &self,
        params: CertificateParams,
        public_key: &impl PublicKeyData,
    ) -> Result<rcgen::Certificate, rcgen::Error> {
        params.signed_by(public_key, &self.signer, &self.key)
    }
}

/// The process-wide ring crypto provider (built once).
pub(crate) fn ring_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            // AES-128-GCM first: as strong as needed, and cheaper than the SHA-384
            // suite on CPUs without SHA-512 instructions (the handshake workload).
            let mut provider = rustls::crypto::ring::default_provider();
            provider.cipher_suites.sort_by_key(|s| {
                let name = format!("{:?}", s.suite());
                !name.contains("AES_128_GCM")
            });
            Arc::new(provider)
        })
        .clone()
}

/// A random positive serial of 16 bytes (RFC 5280: ≤ 20 bytes, positive, and
/// CA/B forum: ≥ 64 bits of entropy). The top bits are fixed to `01` so the DER
/// encoding is always exactly 16 bytes.
pub(crate) fn random_serial() -> Result<SerialNumber, TlsError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TlsError::Random)?;
    bytes[0] = (bytes[0] & 0x3f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// `t` without its sub-second part: certificate times have whole seconds, and the
/// value kept in memory must equal the one in the certificate.
pub(crate) fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

fn check_key_matches(cert_der: &CertificateDer<'static>, key: &KeyPair) -> Result<(), TlsError> {
    let signing_key = ring_provider()
        .key_provider
        .load_private_key(PrivatePkcs8KeyDer::from(key.serialize_der()).into())
        .map_err(|e| TlsError::CaKey(e.to_string()))?;
    rustls::sign::CertifiedKey::new(vec![cert_der.clone()], signing_key)
        .keys_match()
        .map_err(|_| TlsError::CaKeyMismatch)
}

fn exists(path: &Path) -> Result<bool, TlsError> {
    // symlink_metadata: a dangling symlink counts as present (create_new would
    // fail on it anyway, and it should not be followed).
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(TlsError::Io {
            action: "checking",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_new_file(
    path: &Path,
    contents: &[u8],
    mode: u32,
    action: &'static str,
) -> Result<(), TlsError> {
    let io_err = |source| TlsError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            TlsError::AlreadyExists(path.to_path_buf())
        } else {
            io_err(e)
        }
    })?;
    if let Err(e) = file.write_all(contents).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(io_err(e));
    }
    Ok(())
}

#[cfg(unix)]
fn warn_if_key_exposed(key_path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(key_path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %key_path.display(),
                mode = format_args!("{mode:o}"),
                "CA private key file is readable by group or others; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_key_exposed(_key_path: &Path) {}

fn pem_encode_certificate(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    fn ca() -> CertificateAuthority {
        CertificateAuthority::generate("socialgate test CA").unwrap()
    }

    #[test]
    fn generated_ca_has_the_ca_profile() {
        let ca = ca();
        let (_, cert) = parse_x509_certificate(ca.cert_der()).unwrap();
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert!(!ku.digital_signature());
        let nc = cert.name_constraints().unwrap().unwrap();
        assert!(nc.critical);
        let excluded = nc.value.excluded_subtrees.as_ref().unwrap();
        let ips: Vec<&[u8]> = excluded
            .iter()
            .filter_map(|s| match s.base {
                GeneralName::IPAddress(b) => Some(b),
                _ => None,
            })
            .collect();
        assert!(ips.contains(&&[0u8; 8][..]), "0.0.0.0/0 excluded");
        assert!(ips.contains(&&[0u8; 32][..]), "::/0 excluded");
        // ECDSA P-256 key, signed with ecdsa-with-SHA256
        assert_eq!(
            cert.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.10045.4.3.2"
        );
        let years = (cert.validity().not_after.timestamp()
            - cert.validity().not_before.timestamp())
            / (365 * 86400);
        assert_eq!(years, 10);
        let not_after = UNIX_EPOCH
            + Duration::from_secs(cert.validity().not_after.timestamp().try_into().unwrap());
        assert_eq!(ca.not_after(), not_after);
    }

    #[test]
    fn write_then_load_round_trips_with_key_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("nested/certs/ca.crt");
        let key_path = dir.path().join("nested/certs/ca.key");
        let ca = ca();
        ca.write(&cert_path, &key_path).unwrap();

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let loaded = CertificateAuthority::load(&cert_path, &key_path).unwrap();
        assert_eq!(loaded.cert_der(), ca.cert_der());
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        assert_eq!(loaded.not_after(), ca.not_after());
    }

    #[test]
    fn write_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("ca.crt");
        let key_path = dir.path().join("ca.key");
        ca().write(&cert_path, &key_path).unwrap();
        let before = fs::read(&key_path).unwrap();
        let err = ca().write(&cert_path, &key_path).unwrap_err();
        assert!(matches!(err, TlsError::AlreadyExists(_)), "{err}");
        assert_eq!(fs::read(&key_path).unwrap(), before);

        // Only the key present: still refused, and nothing is written.
        let cert2 = dir.path().join("other.crt");
        let err = ca().write(&cert2, &key_path).unwrap_err();
        assert!(matches!(err, TlsError::AlreadyExists(p) if p == key_path));
        assert!(!cert2.exists());
    }

    #[test]
    fn load_or_create_creates_when_both_missing_then_loads() {
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("certs/ca.crt");
        let key_path = dir.path().join("certs/ca.key");
        let (created, was_created) =
            CertificateAuthority::load_or_create(&cert_path, &key_path).unwrap();
        assert!(was_created);
        let (loaded, was_created) =
            CertificateAuthority::load_or_create(&cert_path, &key_path).unwrap();
        assert!(!was_created);
        assert_eq!(created.cert_der(), loaded.cert_der());
    }

    #[test]
    fn load_or_create_with_one_file_missing_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("ca.crt");
        let key_path = dir.path().join("ca.key");
        ca().write(&cert_path, &key_path).unwrap();

        fs::rename(&key_path, dir.path().join("moved.key")).unwrap();
        let err = CertificateAuthority::load_or_create(&cert_path, &key_path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TlsError::CaHalfPresent { .. }));
        assert!(
            msg.contains("private key") && msg.contains("ca.key is missing"),
            "{msg}"
        );
        assert!(!key_path.exists(), "no new key was created");

        fs::rename(dir.path().join("moved.key"), &key_path).unwrap();
        fs::remove_file(&cert_path).unwrap();
        let msg = CertificateAuthority::load_or_create(&cert_path, &key_path)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("certificate") && msg.contains("ca.crt is missing"),
            "{msg}"
        );
        assert!(!cert_path.exists());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let ca = ca();
        let key_pem = ca.key.serialize_pem();
        let body: String = key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let debug = format!("{ca:?} {ca:#?}");
        assert!(debug.contains("redacted"));
        assert!(!debug.contains("PRIVATE KEY"));
        for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!debug.contains(line));
        }
        assert!(!debug.contains(&body[..20]));
    }

    #[test]
    fn from_pem_rejects_mismatched_key_non_ca_and_garbage() {
        let a = ca();
        let b = ca();
        let err = CertificateAuthority::from_pem(a.cert_pem(), &b.key.serialize_pem()).unwrap_err();
        assert!(matches!(err, TlsError::CaKeyMismatch), "{err}");

        let err = CertificateAuthority::from_pem("not pem", &a.key.serialize_pem()).unwrap_err();
        assert!(matches!(err, TlsError::CaCert(_)), "{err}");
        let err = CertificateAuthority::from_pem(a.cert_pem(), "not pem").unwrap_err();
        assert!(matches!(err, TlsError::CaKey(_)), "{err}");

        // A leaf-style certificate (CA:FALSE) with its own key is refused.
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["x.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let err = CertificateAuthority::from_pem(&leaf.pem(), &key.serialize_pem()).unwrap_err();
        assert!(matches!(err, TlsError::CaCert(_)), "{err}");
    }

    #[test]
    fn pem_encoding_matches_rcgen() {
        let ca = ca();
        assert_eq!(
            pem_encode_certificate(ca.cert_der()),
            ca.cert_pem().replace("\r\n", "\n")
        );
        for len in 0..7 {
            let der: Vec<u8> = (0..len).map(|i| i as u8 * 37).collect();
            let pem = pem_encode_certificate(&der);
            assert_eq!(
                CertificateDer::from_pem_slice(pem.as_bytes())
                    .map(|c| c.to_vec())
                    .unwrap_or_default(),
                der
            );
        }
    }
}
