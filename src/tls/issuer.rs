//! Per-host leaf certificates for intercepted tunnels: mint, cache, single-flight.
//!
//! A leaf is ECDSA P-256, `CA:FALSE` (a critical basicConstraints holding an
//! empty SEQUENCE: DER omits a DEFAULT value, so `cA FALSE` is never written out;
//! see [`not_a_ca_extensions`]), a subject key identifier, key usage `digitalSignature`, EKU
//! `serverAuth` only, SAN = exactly one DNS name (the normalised CONNECT host),
//! CN = that host (omitted when longer than 64 characters), a random positive
//! 16-byte serial (126 random bits), valid from 5 minutes ago for 7 days but never past the CA. The chain
//! presented is `[leaf, CA]`.
//!
//! Minting (~40 µs of CPU, `benches/leaf_mint.rs`) runs inline on the calling task, not on tokio's
//! blocking pool: it is shorter than the TLS handshake that follows it on the same
//! worker, it happens once per host per week thanks to the cache, and a burst of
//! first contacts would otherwise grow the blocking pool by hundreds of threads on
//! a 2-core machine and add a thread hand-off to every mint.
//!
//! Every `ServerConfig` from [`LeafIssuer::resumable_server_config`] shares one
//! session cache ([`super::sessions::ServerSessions`]), so reconnecting clients
//! resume (W4); [`LeafIssuer::server_config`] builds a stand-alone one.
//!
//! Limits: the cache holds at most `capacity` hosts; when full, the least recently
//! used eighth is dropped in one pass (amortised O(1) per insert). Entries are
//! re-minted a day before they expire. A failed mint is not cached: the next
//! caller tries again. IP literals and anything that is not a DNS name are refused.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    Ia5String, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{DnsName, PrivatePkcs8KeyDer};
use rustls::server::StoresServerSessions;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::ServerConfig;
use tokio::sync::OnceCell;

use super::ca::{random_serial, ring_provider, whole_seconds, CertificateAuthority};
use super::TlsError;

/// Default number of hosts whose leaves are kept.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Longest validity of a leaf.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);
/// A leaf starts this long before it is minted, for clients whose clock lags.
pub const LEAF_BACKDATE: Duration = Duration::from_secs(5 * 60);
/// A cached leaf is replaced this long before its notAfter.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// Sessions kept for resumption by [`LeafIssuer::resumable_server_config`].
pub const RESUMPTION_CACHE_SIZE: usize = 4096;

/// X.520 upper bound for a common name.
const MAX_COMMON_NAME: usize = 64;

/// Mints leaves signed by the CA and keeps them per host. `Send + Sync`; share it
/// in an `Arc`.
pub struct LeafIssuer {
    ca: Arc<CertificateAuthority>,
    capacity: usize,
    sessions: Arc<dyn StoresServerSessions>,
    cache: Mutex<Cache>,
    minted: AtomicU64,
    hits: AtomicU64,
}

#[derive(Default)]
struct Cache {
    slots: HashMap<String, Slot>,
    /// Logical clock: bumped on every lookup, so `last_used` values are unique.
    tick: u64,
}

struct Slot {
    cell: Arc<OnceCell<Leaf>>,
    last_used: u64,
}

struct Leaf {
    key: Arc<CertifiedKey>,
    refresh_at: Instant,
}

impl fmt::Debug for LeafIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafIssuer")
            .field("ca", &self.ca)
            .field("capacity", &self.capacity)
            .field("cached", &self.cached_len())
            .field("minted_total", &self.minted_total())
            .field("cache_hits_total", &self.cache_hits_total())
            .finish()
    }
}

impl LeafIssuer {
    /// An issuer signing with `ca`, caching at most `capacity` hosts (at least 1;
    /// [`DEFAULT_CAPACITY`] is the usual value).
    pub fn new(ca: Arc<CertificateAuthority>, capacity: usize) -> Self {
        Self {
            ca,
            capacity: capacity.max(1),
            sessions: Arc::new(super::sessions::ServerSessions::new(RESUMPTION_CACHE_SIZE)),
            cache: Mutex::new(Cache::default()),
            minted: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    /// The CA this issuer signs with.
    pub fn ca(&self) -> &Arc<CertificateAuthority> {
        &self.ca
    }

    /// Mint a new leaf for `host` as of `now`, bypassing the cache. The chain is
    /// `[leaf, CA]`. Errors for IP literals, invalid names and an expired CA.
    pub fn mint_leaf(&self, host: &str, now: SystemTime) -> Result<Arc<CertifiedKey>, TlsError> {
        let host = normalize_host(host)?;
        self.mint(&host, now).map(|(key, _)| key)
    }

    /// The leaf for `host`, from the cache or freshly minted. Concurrent first
    /// calls for one host share a single mint; a failed mint is not cached.
    pub async fn leaf_for(&self, host: &str) -> Result<Arc<CertifiedKey>, TlsError> {
        let host = normalize_host(host)?;
        let cell = self.cell_for(&host);
        if let Some(leaf) = cell.get() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(leaf.key.clone());
        }
        let mut minted_here = false;
        let result = cell
            .get_or_try_init(|| {
                minted_here = true;
                // Synchronous: the whole mint happens in this one poll, so the
                // init future cannot be cancelled half-way.
                let leaf = self
                    .mint(&host, SystemTime::now())
                    .map(|(key, not_after)| Leaf {
                        key,
                        refresh_at: refresh_instant(not_after),
                    });
                std::future::ready(leaf)
            })
            .await;
        match result {
            Ok(leaf) => {
                if !minted_here {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                }
                Ok(leaf.key.clone())
            }
            Err(e) => {
                // Drop the empty cell so it does not occupy the cache; callers
                // already waiting on it retry the mint themselves.
                let mut cache = self.lock();
                if cache
                    .slots
                    .get(&host)
                    .is_some_and(|s| Arc::ptr_eq(&s.cell, &cell) && s.cell.get().is_none())
                {
                    cache.slots.remove(&host);
                }
                Err(e)
            }
        }
    }

    /// Leaves minted since start (metric `socialgate_certs_minted_total`).
    pub fn minted_total(&self) -> u64 {
        self.minted.load(Ordering::Relaxed)
    }

    /// `leaf_for` calls answered without minting, including callers that waited
    /// for another caller's mint (metric `socialgate_cert_cache_hits_total`).
    pub fn cache_hits_total(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Hosts currently in the cache (minted or being minted).
    pub fn cached_len(&self) -> usize {
        self.lock().slots.len()
    }

    /// A rustls `ServerConfig` presenting `key`: TLS 1.3 and 1.2, ring provider,
    /// no client authentication, ALPN protocols in preference order (e.g.
    /// `[b"h2", b"http/1.1"]`).
    pub fn server_config(
        key: Arc<CertifiedKey>,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        build_server_config(key, alpn).map(Arc::new)
    }

    /// Like [`server_config`](Self::server_config), but every config made here
    /// shares one session cache ([`RESUMPTION_CACHE_SIZE`] entries), so a client
    /// that reconnects to the same host resumes instead of doing a full handshake
    /// (a fresh `ServerConfig` per connection otherwise never resumes). rustls
    /// refuses to resume a session under a different SNI.
    pub fn resumable_server_config(
        &self,
        key: Arc<CertifiedKey>,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = build_server_config(key, alpn)?;
        config.session_storage = self.sessions.clone();
        Ok(Arc::new(config))
    }

    /// The cell for `host`: the cached one if still fresh, else a new empty one
    /// (replacing a stale entry, evicting when full).
    fn cell_for(&self, host: &str) -> Arc<OnceCell<Leaf>> {
        let now = Instant::now();
        let mut cache = self.lock();
        cache.tick += 1;
        let tick = cache.tick;
        if let Some(slot) = cache.slots.get_mut(host) {
            slot.last_used = tick;
            let stale = slot.cell.get().is_some_and(|leaf| leaf.refresh_at <= now);
            if stale {
                slot.cell = Arc::new(OnceCell::new());
            }
            return slot.cell.clone();
        }
        if cache.slots.len() >= self.capacity {
            cache.evict_least_recently_used(self.capacity.div_ceil(8));
        }
        let cell = Arc::new(OnceCell::new());
        cache.slots.insert(
            host.to_owned(),
            Slot {
                cell: cell.clone(),
                last_used: tick,
            },
        );
        cell
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // Nothing panics while the lock is held; if something ever did, the map
        // is still consistent, so keep serving.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Mint for an already normalised host; returns the key and its notAfter.
    fn mint(
        &self,
        host: &str,
        now: SystemTime,
    ) -> Result<(Arc<CertifiedKey>, SystemTime), TlsError> {
        let ca_not_after = self.ca.not_after();
        if ca_not_after <= now {
            return Err(TlsError::CaExpired {
                not_after: ca_not_after,
            });
        }
        let not_before = whole_seconds(now.checked_sub(LEAF_BACKDATE).unwrap_or(now));
        let not_after = whole_seconds(now + LEAF_VALIDITY).min(ca_not_after);
        let mint_err = |source| TlsError::Mint {
            host: host.to_owned(),
            source,
        };

        let mut params = CertificateParams::default();
        params.not_before = time::OffsetDateTime::from(not_before);
        params.not_after = time::OffsetDateTime::from(not_after);
        params.serial_number = Some(random_serial()?);
        let san = Ia5String::try_from(host).map_err(mint_err)?;
        params.subject_alt_names = vec![SanType::DnsName(san)];
        let mut dn = DistinguishedName::new();
        if host.len() <= MAX_COMMON_NAME {
            dn.push(DnType::CommonName, host);
        }
        params.distinguished_name = dn;
        // Not `IsCa::ExplicitNoCa`: rcgen 0.13 writes `cA FALSE` explicitly there,
        // which DER forbids and strict clients (Python's `cryptography`) refuse.
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;

        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(mint_err)?;
        params.custom_extensions = not_a_ca_extensions(&key);
        let cert = self.ca.sign(params, &key).map_err(mint_err)?;
        let signing_key = ring_provider()
            .key_provider
            .load_private_key(PrivatePkcs8KeyDer::from(key.serialize_der()).into())?;
        let certified = CertifiedKey::new(
            vec![cert.der().clone(), self.ca.cert_der().clone()],
            signing_key,
        );
        self.minted.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(host, "minted leaf certificate");
        Ok((Arc::new(certified), not_after))
    }
}

/// The extensions rcgen's `IsCa::ExplicitNoCa` meant to write, in DER: the
/// subject key identifier (the first 20 bytes of SHA-256 over the key's
/// SubjectPublicKeyInfo, rcgen's own method, so the CA's AKI scheme matches) and a
/// critical basicConstraints that is an empty SEQUENCE (`cA` DEFAULT FALSE omitted,
/// X.690 11.5). rcgen 0.14 writes the same; this goes when the crate is upgraded.
fn not_a_ca_extensions(key: &KeyPair) -> Vec<CustomExtension> {
    let spki_hash = ring::digest::digest(&ring::digest::SHA256, &key.public_key_der());
    let mut ski = vec![0x04, 20];
    ski.extend_from_slice(&spki_hash.as_ref()[..20]);
    let mut basic_constraints =
        CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![0x30, 0x00]);
    basic_constraints.set_criticality(true);
    vec![
        CustomExtension::from_oid_content(&[2, 5, 29, 14], ski),
        basic_constraints,
    ]
}

fn build_server_config(key: Arc<CertifiedKey>, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.ignore_client_order = true;
    Ok(config)
}

impl Cache {
    /// Drop the `count` least recently used entries. `last_used` values are
    /// unique, so exactly `count` go (or all, if fewer).
    fn evict_least_recently_used(&mut self, count: usize) {
        if count >= self.slots.len() {
            self.slots.clear();
            return;
        }
        let mut ticks: Vec<u64> = self.slots.values().map(|s| s.last_used).collect();
        let (_, &mut threshold, _) = ticks.select_nth_unstable(count - 1);
        self.slots.retain(|_, s| s.last_used > threshold);
    }
}

/// When a leaf expiring at `not_after` should be replaced: [`REFRESH_MARGIN`]
/// before, or half-way through its remaining life when that is shorter (a CA
/// close to expiry), so a leaf is never served in its last moments nor re-minted
/// on every call.
fn refresh_instant(not_after: SystemTime) -> Instant {
    let left = not_after
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    let margin = REFRESH_MARGIN.min(left / 2);
    Instant::now() + (left - margin)
}

/// The form of `host` a leaf is minted for: ASCII lower case, one trailing dot
/// removed. Refuses IP literals (bracketed or not) and anything that is not a
/// valid DNS name (wildcards, empty labels, non-ASCII: IDNs must arrive as
/// punycode, numeric last labels such as `127.1` or `0x7f000001`).
pub fn normalize_host(host: &str) -> Result<String, TlsError> {
    let invalid = |reason| TlsError::InvalidHost {
        host: host.to_owned(),
        reason,
    };
    let bare = host.strip_suffix('.').unwrap_or(host);
    let unbracketed = bare
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(bare);
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Err(invalid("an IP address gets no certificate"));
    }
    let lower = bare.to_ascii_lowercase();
    if DnsName::try_from(lower.as_str()).is_err() {
        return Err(invalid("not a valid DNS name"));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::*;

    fn shared_ca() -> Arc<CertificateAuthority> {
        static CA: OnceLock<Arc<CertificateAuthority>> = OnceLock::new();
        CA.get_or_init(|| Arc::new(CertificateAuthority::generate("issuer test CA").unwrap()))
            .clone()
    }

    fn issuer() -> LeafIssuer {
        LeafIssuer::new(shared_ca(), DEFAULT_CAPACITY)
    }

    fn secs(t: SystemTime) -> i64 {
        i64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()).unwrap()
    }

    #[test]
    fn normalize_host_accepts_dns_names_and_refuses_the_rest() {
        assert_eq!(
            normalize_host("WWW.Example.COM.").unwrap(),
            "www.example.com"
        );
        assert_eq!(normalize_host("localhost").unwrap(), "localhost");
        assert_eq!(
            normalize_host("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "127.0.0.1",
            "127.1",
            "2130706434",
            "0x7f000002",
            "::1",
            "[::1]",
            "[::ffff:127.0.0.2]",
            "",
            ".",
            "*.example.com",
            "a..example",
            "-a.example",
            "a-.example",
            "bücher.example",
            "a b.example",
            "a.example:443",
            "a.example\r\nX: y",
            &"a".repeat(64),
            &format!("{}.example", ["abc"; 70].join(".")),
        ] {
            let err = normalize_host(bad).unwrap_err();
            assert!(
                matches!(err, TlsError::InvalidHost { .. }),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn minted_leaf_has_the_leaf_profile() {
        let issuer = issuer();
        let now = SystemTime::now();
        let leaf = issuer.mint_leaf("Www.Social.Test", now).unwrap();
        assert_eq!(leaf.cert.len(), 2);
        assert_eq!(&leaf.cert[1], shared_ca().cert_der());
        leaf.keys_match().unwrap();

        let (_, cert) = parse_x509_certificate(&leaf.cert[0]).unwrap();
        let ca_arc = shared_ca();
        let (_, ca) = parse_x509_certificate(ca_arc.cert_der()).unwrap();

        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(
            san.general_names,
            vec![GeneralName::DNSName("www.social.test")]
        );
        let cn: Vec<_> = cert.subject().iter_common_name().collect();
        assert_eq!(cn.len(), 1);
        assert_eq!(cn[0].as_str().unwrap(), "www.social.test");

        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth);
        assert!(
            !eku.any
                && !eku.client_auth
                && !eku.code_signing
                && !eku.email_protection
                && !eku.time_stamping
                && !eku.ocsp_signing
                && eku.other.is_empty()
        );
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && !bc.value.ca && bc.value.path_len_constraint.is_none());
        let ski = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
                _ => None,
            });
        assert_eq!(ski.map(<[u8]>::len), Some(20), "subject key identifier");
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());

        assert_eq!(cert.issuer(), ca.subject());
        assert_eq!(
            cert.public_key()
                .algorithm
                .parameters
                .as_ref()
                .unwrap()
                .as_oid()
                .unwrap()
                .to_id_string(),
            "1.2.840.10045.3.1.7",
            "P-256"
        );
        let v = cert.validity();
        assert!(v.not_before.timestamp() < secs(now), "starts in the past");
        assert!(v.not_before.timestamp() >= secs(now) - 5 * 60 - 1);
        assert!(v.not_after.timestamp() - v.not_before.timestamp() <= 7 * 86400 + 5 * 60);
        assert!(v.not_after.timestamp() <= secs(now) + 7 * 86400);
        assert!(cert.raw_serial().len() >= 16 && cert.raw_serial()[0] & 0x80 == 0);
    }

    #[test]
    fn two_mints_have_different_serials_and_keys() {
        let issuer = issuer();
        let now = SystemTime::now();
        let a = issuer.mint_leaf("a.example", now).unwrap();
        let b = issuer.mint_leaf("a.example", now).unwrap();
        let (_, ca) = parse_x509_certificate(&a.cert[0]).unwrap();
        let (_, cb) = parse_x509_certificate(&b.cert[0]).unwrap();
        assert_ne!(ca.raw_serial(), cb.raw_serial());
        assert_ne!(ca.public_key().raw, cb.public_key().raw);
        assert_eq!(issuer.minted_total(), 2);
    }

    #[test]
    fn leaf_never_outlives_the_ca() {
        let ca = Arc::new(
            CertificateAuthority::generate_with_validity(
                "short CA",
                Duration::from_secs(2 * 86400),
            )
            .unwrap(),
        );
        let issuer = LeafIssuer::new(ca.clone(), 10);
        let leaf = issuer.mint_leaf("a.example", SystemTime::now()).unwrap();
        let (_, cert) = parse_x509_certificate(&leaf.cert[0]).unwrap();
        assert_eq!(cert.validity().not_after.timestamp(), secs(ca.not_after()));

        // Minting at a time past the CA's end is refused.
        let later = ca.not_after() + Duration::from_secs(1);
        let err = issuer.mint_leaf("a.example", later).unwrap_err();
        assert!(matches!(err, TlsError::CaExpired { .. }), "{err}");
    }

    #[test]
    fn ip_literals_and_invalid_names_are_refused() {
        let issuer = issuer();
        for bad in ["10.0.0.1", "[::1]", "::1", "*.example.com", "bad name", ""] {
            assert!(issuer.mint_leaf(bad, SystemTime::now()).is_err(), "{bad:?}");
        }
        assert_eq!(issuer.minted_total(), 0);
    }

    #[test]
    fn long_host_gets_san_but_no_common_name() {
        let host = format!("{}.example", "a".repeat(60));
        let leaf = issuer().mint_leaf(&host, SystemTime::now()).unwrap();
        let (_, cert) = parse_x509_certificate(&leaf.cert[0]).unwrap();
        assert_eq!(cert.subject().iter_common_name().count(), 0);
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(san.general_names, vec![GeneralName::DNSName(host.as_str())]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_calls_mint_exactly_once() {
        let issuer = Arc::new(issuer());
        let barrier = Arc::new(tokio::sync::Barrier::new(100));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let issuer = issuer.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    issuer.leaf_for("a.example").await.unwrap()
                })
            })
            .collect();
        let mut keys = Vec::new();
        for t in tasks {
            keys.push(t.await.unwrap());
        }
        assert_eq!(issuer.minted_total(), 1);
        assert!(keys.iter().all(|k| Arc::ptr_eq(k, &keys[0])));
        assert_eq!(issuer.cache_hits_total(), 99);

        let again = issuer.leaf_for("A.EXAMPLE.").await.unwrap();
        assert!(Arc::ptr_eq(&again, &keys[0]));
        assert_eq!(issuer.cache_hits_total(), 100);
        assert_eq!(issuer.minted_total(), 1);
    }

    #[tokio::test]
    async fn cache_is_bounded_and_keeps_recent_hosts() {
        let issuer = LeafIssuer::new(shared_ca(), 10);
        for i in 0..50 {
            issuer.leaf_for(&format!("h{i}.example")).await.unwrap();
            // keep h0 hot: it must survive every eviction
            issuer.leaf_for("h0.example").await.unwrap();
            assert!(issuer.cached_len() <= 10);
        }
        assert_eq!(issuer.minted_total(), 50);
        let before = issuer.minted_total();
        issuer.leaf_for("h0.example").await.unwrap();
        issuer.leaf_for("h49.example").await.unwrap();
        assert_eq!(issuer.minted_total(), before, "recent hosts still cached");
        issuer.leaf_for("h1.example").await.unwrap();
        assert_eq!(issuer.minted_total(), before + 1, "old host was evicted");
    }

    #[tokio::test]
    async fn invalid_host_is_not_cached_and_failed_mint_is_retried() {
        let issuer = issuer();
        assert!(issuer.leaf_for("127.0.0.1").await.is_err());
        assert_eq!(issuer.cached_len(), 0);

        // An expired CA makes every mint fail; nothing sticks in the cache.
        let ca = Arc::new(
            CertificateAuthority::generate_with_validity("brief CA", Duration::from_secs(1))
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let issuer = Arc::new(LeafIssuer::new(ca, 10));
        for _ in 0..2 {
            let err = issuer.leaf_for("a.example").await.unwrap_err();
            assert!(matches!(err, TlsError::CaExpired { .. }), "{err}");
            assert_eq!(issuer.cached_len(), 0);
        }
        // Concurrent waiters on a failing mint all get the error; none hangs.
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let issuer = issuer.clone();
                tokio::spawn(async move { issuer.leaf_for("b.example").await })
            })
            .collect();
        for t in tasks {
            let result = tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .unwrap()
                .unwrap();
            assert!(matches!(result, Err(TlsError::CaExpired { .. })));
        }
        assert_eq!(issuer.cached_len(), 0);
        assert_eq!(issuer.minted_total(), 0);
    }

    #[tokio::test]
    async fn stale_entries_are_reminted() {
        let issuer = issuer();
        let first = issuer.leaf_for("a.example").await.unwrap();
        {
            let mut cache = issuer.lock();
            let slot = cache.slots.get_mut("a.example").unwrap();
            let cell = OnceCell::new_with(Some(Leaf {
                key: first.clone(),
                refresh_at: Instant::now(),
            }));
            slot.cell = Arc::new(cell);
        }
        let second = issuer.leaf_for("a.example").await.unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(issuer.minted_total(), 2);
    }

    #[test]
    fn refresh_is_a_day_early_or_half_way() {
        let now = Instant::now();
        let week = refresh_instant(SystemTime::now() + LEAF_VALIDITY);
        let d = week.duration_since(now);
        assert!(d > Duration::from_secs(6 * 86400 - 5) && d < Duration::from_secs(6 * 86400 + 5));
        let hour = refresh_instant(SystemTime::now() + Duration::from_secs(3600));
        let d = hour.duration_since(now);
        assert!(d > Duration::from_secs(1795) && d < Duration::from_secs(1805));
    }

    mod handshake {
        use super::*;
        use rustls::pki_types::ServerName;
        use rustls::{CertificateError, ClientConfig, HandshakeKind, RootCertStore};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::{TlsAcceptor, TlsConnector};

        fn cert_error(err: &std::io::Error) -> Option<&CertificateError> {
            match err.get_ref()?.downcast_ref::<rustls::Error>()? {
                rustls::Error::InvalidCertificate(e) => Some(e),
                _ => None,
            }
        }

        fn client_config(
            ca: &CertificateAuthority,
            version: &'static rustls::SupportedProtocolVersion,
        ) -> Arc<ClientConfig> {
            let mut roots = RootCertStore::empty();
            roots.add(ca.cert_der().clone()).unwrap();
            let mut config = ClientConfig::builder_with_provider(ring_provider())
                .with_protocol_versions(&[version])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Arc::new(config)
        }

        /// Serve one connection with `server`, connect with `client` as `name`,
        /// exchange a few bytes; Ok((ALPN, handshake kind)) or the client's error.
        async fn exchange(
            server: Arc<ServerConfig>,
            client: Arc<ClientConfig>,
            name: &str,
        ) -> Result<(Option<Vec<u8>>, Option<HandshakeKind>), std::io::Error> {
            let acceptor = TlsAcceptor::from(server);
            let (client_io, server_io) = tokio::io::duplex(64 * 1024);
            let server = tokio::spawn(async move {
                let mut tls = acceptor.accept(server_io).await?;
                let mut buf = [0u8; 4];
                tls.read_exact(&mut buf).await?;
                tls.write_all(&buf).await?;
                tls.shutdown().await?;
                Ok::<_, std::io::Error>(())
            });
            let connector = TlsConnector::from(client);
            let server_name = ServerName::try_from(name.to_owned()).unwrap();
            let result = async {
                let mut tls = connector.connect(server_name, client_io).await?;
                tls.write_all(b"ping").await?;
                let mut buf = [0u8; 4];
                tls.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"ping");
                // Read to EOF so TLS 1.3 session tickets are processed.
                let mut rest = Vec::new();
                tls.read_to_end(&mut rest).await?;
                let conn = tls.get_ref().1;
                Ok((
                    conn.alpn_protocol().map(<[u8]>::to_vec),
                    conn.handshake_kind(),
                ))
            }
            .await;
            if result.is_err() {
                server.abort();
            } else {
                server.await.unwrap().unwrap();
            }
            result
        }

        async fn handshake(
            ca: &CertificateAuthority,
            leaf: Arc<CertifiedKey>,
            name: &str,
            version: &'static rustls::SupportedProtocolVersion,
        ) -> Result<Option<Vec<u8>>, std::io::Error> {
            let server = LeafIssuer::server_config(leaf, &[b"h2", b"http/1.1"]).unwrap();
            exchange(server, client_config(ca, version), name)
                .await
                .map(|(alpn, _)| alpn)
        }

        #[tokio::test]
        async fn resumable_configs_share_sessions_per_host() {
            let ca = shared_ca();
            let issuer = LeafIssuer::new(ca.clone(), 10);
            let leaf = issuer.leaf_for("www.social.test").await.unwrap();
            for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
                // Plain configs: each connection is a full handshake.
                let client = client_config(&ca, version);
                for _ in 0..2 {
                    let server = LeafIssuer::server_config(leaf.clone(), &[b"h2"]).unwrap();
                    let (_, kind) = exchange(server, client.clone(), "www.social.test")
                        .await
                        .unwrap();
                    assert_eq!(kind, Some(HandshakeKind::Full));
                }
                // Shared session cache: the second connection resumes.
                let client = client_config(&ca, version);
                let mut kinds = Vec::new();
                for _ in 0..2 {
                    let server = issuer
                        .resumable_server_config(leaf.clone(), &[b"h2"])
                        .unwrap();
                    let (_, kind) = exchange(server, client.clone(), "www.social.test")
                        .await
                        .unwrap();
                    kinds.push(kind);
                }
                assert_eq!(
                    kinds,
                    [Some(HandshakeKind::Full), Some(HandshakeKind::Resumed)],
                    "{version:?}"
                );
            }
        }

        #[tokio::test]
        async fn client_trusting_only_the_ca_accepts_the_host_and_nothing_else() {
            let ca = shared_ca();
            let issuer = LeafIssuer::new(ca.clone(), 10);
            let leaf = issuer.leaf_for("www.social.test").await.unwrap();
            for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
                let alpn = handshake(&ca, leaf.clone(), "www.social.test", version)
                    .await
                    .unwrap();
                assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
                let err = handshake(&ca, leaf.clone(), "evil.social.test", version)
                    .await
                    .unwrap_err();
                assert!(
                    matches!(
                        cert_error(&err),
                        Some(CertificateError::NotValidForName)
                            | Some(CertificateError::NotValidForNameContext { .. })
                    ),
                    "{err}"
                );
            }
        }

        #[tokio::test]
        async fn ca_loaded_from_files_signs_leaves_clients_accept() {
            let dir = tempfile::tempdir().unwrap();
            let (cert_path, key_path) = (dir.path().join("ca.crt"), dir.path().join("ca.key"));
            let (created, _) = CertificateAuthority::load_or_create(&cert_path, &key_path).unwrap();
            let loaded = Arc::new(CertificateAuthority::load(&cert_path, &key_path).unwrap());
            let leaf = LeafIssuer::new(loaded, 10)
                .mint_leaf("a.example", SystemTime::now())
                .unwrap();
            // The client trusts the CA as created (and written), not the reloaded copy.
            handshake(&created, leaf, "a.example", &rustls::version::TLS13)
                .await
                .unwrap();
        }

        #[tokio::test]
        async fn another_ca_is_not_trusted() {
            let other = CertificateAuthority::generate("other CA").unwrap();
            let leaf = issuer().mint_leaf("a.example", SystemTime::now()).unwrap();
            let err = handshake(&other, leaf, "a.example", &rustls::version::TLS13)
                .await
                .unwrap_err();
            assert!(
                matches!(cert_error(&err), Some(CertificateError::UnknownIssuer)),
                "{err}"
            );
        }
    }
}
