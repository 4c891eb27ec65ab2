//! Who is asking: the trusted header, then Negotiate (Kerberos) or Basic proxy
//! credentials, then the source network. A client with no identity never reaches
//! the policy.
//!
//! - The trusted header is honoured only from `from` peers; from anyone else it is
//!   removed (the caller strips it before forwarding in every case).
//! - Negotiate (`kerberos.rs`) is connection-bound: once a client connection has
//!   signed in, its later requests are that user until the ticket expires, and
//!   the handshake does not run again on that connection (a token the client
//!   resends there is not re-checked).
//! - Basic credentials are checked against an htpasswd file of bcrypt hashes
//!   (`htpasswd -B`) or, with `ldap.verify_basic_passwords`, by binding to the
//!   directory as the user. Successful checks are cached for five minutes under a
//!   SHA-256 of the password, compared in constant time. Wrong credentials are a
//!   407 even when a network would also match.
//! - Sign-in abuse (`passwords.rs`, `throttle.rs`): an unknown name runs one
//!   bcrypt check at a cost drawn from the file's own costs, so it costs what a
//!   wrong password costs; bcrypt runs on a bounded pool (half the cores) that
//!   a cached sign-in never waits for; failures are counted per client address
//!   and per name, and past a few the attempt is refused before any check as
//!   [`AuthFailure::Throttled`] (metric `socialgate_signin_throttled_total`).
//!   The limits are the documented constants of those two modules (window 15
//!   min, 20 failures per address and 5 per name before a backoff of 2 s
//!   doubling to 60 s, half the cores for bcrypt, 32 waiting per worker); they
//!   are not settings yet.
//! - Groups are the union of the source's own groups, `group_members` and, with
//!   `ldap`, the user's directory groups (`ldap.rs`).

pub mod kerberos;
pub mod ldap;
pub mod passwords;
pub mod throttle;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::HeaderMap;

use crate::metrics::Metrics;
use crate::net_guard::canonical;
use crate::settings::IdentitySettings;
use kerberos::{KerberosAcceptor, KerberosFailure};
use ldap::{Directory, PasswordCheck};
pub use passwords::{BcryptPool, Htpasswd};
use passwords::{Busy, Passwords};
use throttle::SignInThrottle;
pub use throttle::ThrottleReason;

/// An identified user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub groups: Vec<String>,
    /// Which source identified the user (`trusted_header`, `kerberos`, `basic`,
    /// `network`).
    pub source: &'static str,
    /// A network identity with `challenge: true`: a denial is answered with 407.
    pub challenge_on_deny: bool,
}

/// Why no identity was established; labels of `socialgate_auth_failures_total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials and no matching network.
    Missing,
    /// A `Proxy-Authorization` header that is not valid Basic.
    Malformed,
    /// Unknown user or wrong password. `known_user` is the name only when such a
    /// user exists (people type passwords into the user field).
    BadCredentials { known_user: Option<String> },
    /// A scheme we do not offer (e.g. NTLM).
    UnsupportedScheme,
    /// A Negotiate token that was refused, and why.
    Kerberos(KerberosFailure),
    /// Basic credentials that only the directory could check, while it is down.
    DirectoryUnavailable,
    /// Basic credentials refused before any check: too many failures from this
    /// address or for this name, or the bcrypt pool is full. The client should
    /// wait `retry_after` (the proxy's answer: 429 with `Retry-After`, no
    /// `Proxy-Authenticate`, so browsers do not prompt again).
    Throttled {
        reason: ThrottleReason,
        retry_after: Duration,
    },
}

impl AuthFailure {
    pub fn label(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::BadCredentials { .. } => "bad_credentials",
            AuthFailure::UnsupportedScheme => "unsupported_scheme",
            AuthFailure::Kerberos(KerberosFailure::Malformed) => "malformed",
            AuthFailure::Kerberos(KerberosFailure::Ntlm) => "unsupported_scheme",
            AuthFailure::Kerberos(_) => "bad_credentials",
            AuthFailure::DirectoryUnavailable => "directory_unavailable",
            AuthFailure::Throttled { .. } => "throttled",
        }
    }

    /// How long the client should wait before trying again (`Retry-After`),
    /// for a throttled sign-in.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthFailure::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

const CACHE_FOR: Duration = Duration::from_secs(300);
/// `Retry-After` when the bcrypt pool's queue is full.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest a connection keeps a Negotiate identity, whatever the ticket says.
const MAX_BOUND: Duration = Duration::from_secs(10 * 3600);

/// The identity state of one client connection: a Negotiate sign-in binds the
/// connection to its user until the ticket expires.
#[derive(Debug, Default)]
pub struct ConnIdentity {
    bound: Mutex<Option<(String, Instant)>>,
}

impl ConnIdentity {
    /// The user this connection signed in as, while the sign-in is valid.
    pub fn current(&self) -> Option<String> {
        let now = Instant::now();
        self.bound.lock().ok().and_then(|b| {
            b.as_ref()
                .filter(|(_, until)| *until > now)
                .map(|(u, _)| u.clone())
        })
    }

    fn bind(&self, user: &str, lifetime: Duration) {
        if let Ok(mut b) = self.bound.lock() {
            *b = Some((user.to_string(), Instant::now() + lifetime.min(MAX_BOUND)));
        }
    }
}

/// Identifies clients.
pub struct IdentityResolver {
    settings: IdentitySettings,
    kerberos: Option<Arc<KerberosAcceptor>>,
    directory: Option<Arc<Directory>>,
    metrics: Option<Arc<Metrics>>,
    passwords: std::sync::RwLock<Arc<Passwords>>,
    /// user → (SHA-256 of the password, when the check expires).
    cache: Mutex<HashMap<String, ([u8; 32], Instant)>>,
    pool: BcryptPool,
    throttle: SignInThrottle,
}

impl std::fmt::Debug for IdentityResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityResolver").finish_non_exhaustive()
    }
}

impl IdentityResolver {
    /// Builds the resolver, loading the htpasswd file when Basic is configured.
    pub fn new(settings: IdentitySettings) -> Result<IdentityResolver, String> {
        IdentityResolver::build(settings, &[], None)
    }

    /// Builds the resolver with what Kerberos and the directory need: the keytab
    /// is checked and named to MIT Kerberos, the directory's TLS trusts the system
    /// roots plus `extra_roots`, and both report to `metrics`.
    pub fn build(
        settings: IdentitySettings,
        extra_roots: &[std::path::PathBuf],
        metrics: Option<Arc<Metrics>>,
    ) -> Result<IdentityResolver, String> {
        let kerberos = match &settings.kerberos {
            None => None,
            Some(k) => {
                check_keytab(&k.keytab, k.principal.as_deref())?;
                kerberos::prepare_environment(&k.keytab);
                let acceptor = KerberosAcceptor::new(k.principal.as_deref())
                    .map_err(|e| format!("identity.kerberos: {e}"))?;
                Some(Arc::new(acceptor))
            }
        };
        let directory = match &settings.ldap {
            None => None,
            Some(l) => Some(Arc::new(Directory::new(
                l.clone(),
                extra_roots,
                metrics.clone(),
            )?)),
        };
        let passwords = match &settings.basic {
            Some(b) => Passwords::new(Htpasswd::load(&b.htpasswd)?, None)?,
            None => Passwords::none(),
        };
        Ok(IdentityResolver {
            settings,
            kerberos,
            directory,
            metrics,
            passwords: std::sync::RwLock::new(Arc::new(passwords)),
            cache: Mutex::new(HashMap::new()),
            pool: BcryptPool::new(passwords::bcrypt_workers()),
            throttle: SignInThrottle::default(),
        })
    }

    /// Re-reads the htpasswd file (SIGHUP). On error the old file stays in force.
    pub fn reload_htpasswd(&self) -> Result<(), String> {
        if let Some(b) = &self.settings.basic {
            let previous = self.passwords.read().map(|p| p.clone()).ok();
            let fresh = Passwords::new(Htpasswd::load(&b.htpasswd)?, previous.as_deref())?;
            if let Ok(mut h) = self.passwords.write() {
                *h = Arc::new(fresh);
            }
            if let Ok(mut c) = self.cache.lock() {
                c.clear();
            }
        }
        Ok(())
    }

    /// Is Basic authentication configured (so a 407 can ask for it)? It is with a
    /// `basic` section, or when the directory checks passwords.
    pub fn basic_realm(&self) -> Option<&str> {
        match &self.settings.basic {
            Some(b) => Some(b.realm.as_str()),
            None if self.verifies_with_directory() => Some("socialgate"),
            None => None,
        }
    }

    /// Is Negotiate (Kerberos) configured (so a 407 offers it first)?
    pub fn offers_negotiate(&self) -> bool {
        self.kerberos.is_some()
    }

    /// The directory, when `ldap` is configured.
    pub fn directory(&self) -> Option<&Arc<Directory>> {
        self.directory.as_ref()
    }

    fn verifies_with_directory(&self) -> bool {
        self.directory
            .as_ref()
            .is_some_and(|d| d.settings().verify_basic_passwords)
    }

    /// The names of headers that carry identity and must never be forwarded.
    pub fn identity_headers(&self) -> Vec<http::HeaderName> {
        let mut out = Vec::new();
        if let Some(t) = &self.settings.trusted_header {
            out.push(t.user.clone());
            if let Some(g) = &t.groups {
                out.push(g.clone());
            }
        }
        out
    }

    /// Identifies the client at `peer` from the request headers alone (no
    /// connection: a Negotiate sign-in holds for this request only).
    pub async fn identify(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
    ) -> Result<Principal, AuthFailure> {
        self.identify_on(peer, headers, None).await
    }

    /// Identifies the client at `peer` from the request headers and the state of
    /// its connection.
    pub async fn identify_on(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
        conn: Option<&ConnIdentity>,
    ) -> Result<Principal, AuthFailure> {
        let peer = canonical(peer);
        if let Some(t) = &self.settings.trusted_header {
            if t.from.iter().any(|n| n.contains(&peer)) {
                if let Some(user) = headers.get(&t.user).and_then(|v| v.to_str().ok()) {
                    let user = user.trim();
                    if !user.is_empty() {
                        let groups = t
                            .groups
                            .as_ref()
                            .and_then(|g| headers.get(g))
                            .and_then(|v| v.to_str().ok())
                            .map(|v| {
                                v.split(',')
                                    .map(str::trim)
                                    .filter(|s| !s.is_empty())
                                    .map(str::to_string)
                                    .collect()
                            })
                            .unwrap_or_default();
                        return Ok(self.principal(user, groups, "trusted_header", false).await);
                    }
                }
            }
        }
        if let Some(auth) = headers.get(http::header::PROXY_AUTHORIZATION) {
            let text = std::str::from_utf8(auth.as_bytes()).map_err(|_| AuthFailure::Malformed)?;
            let text = text.trim();
            let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
            if scheme.eq_ignore_ascii_case("negotiate") {
                // Boxed (once per connection: it binds the connection).
                return Box::pin(self.negotiate(rest.trim(), conn)).await;
            }
            return self.basic(peer, scheme, rest).await;
        }
        if let Some(user) = conn.and_then(ConnIdentity::current) {
            return Ok(self.principal(&user, Vec::new(), "kerberos", false).await);
        }
        for n in &self.settings.networks {
            if n.cidr.contains(&peer) {
                return Ok(self
                    .principal(&n.user, n.groups.clone(), "network", n.challenge)
                    .await);
            }
        }
        Err(AuthFailure::Missing)
    }

    /// `Proxy-Authorization: Negotiate <token>`: one round trip against the
    /// keytab; the connection is then bound to the user.
    async fn negotiate(
        &self,
        token: &str,
        conn: Option<&ConnIdentity>,
    ) -> Result<Principal, AuthFailure> {
        let Some(acceptor) = &self.kerberos else {
            return Err(AuthFailure::UnsupportedScheme);
        };
        // Already signed in on this connection: the handshake does not run again.
        if let Some(user) = conn.and_then(ConnIdentity::current) {
            return Ok(self.principal(&user, Vec::new(), "kerberos", false).await);
        }
        let fail = |f: KerberosFailure| {
            if let Some(m) = &self.metrics {
                m.kerberos_failures.with_label_values(&[f.label()]).inc();
            }
            AuthFailure::Kerberos(f)
        };
        let token = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| fail(KerberosFailure::Malformed))?;
        kerberos::precheck(&token).map_err(fail)?;
        let acceptor = acceptor.clone();
        let accepted = tokio::task::spawn_blocking(move || acceptor.accept(&token))
            .await
            .unwrap_or_else(|e| Err((KerberosFailure::Other, e.to_string())));
        if let Some(m) = &self.metrics {
            m.kerberos_handshakes
                .with_label_values(&[if accepted.is_ok() {
                    "accepted"
                } else {
                    "refused"
                }])
                .inc();
        }
        match accepted {
            Ok(a) => {
                if let Some(c) = conn {
                    c.bind(&a.user, a.lifetime);
                }
                Ok(self.principal(&a.user, Vec::new(), "kerberos", false).await)
            }
            Err((f, detail)) => {
                tracing::info!(reason = f.label(), detail = %detail, "Kerberos sign-in refused");
                Err(fail(f))
            }
        }
    }

    async fn basic(
        &self,
        peer: IpAddr,
        scheme: &str,
        rest: &str,
    ) -> Result<Principal, AuthFailure> {
        if self.basic_realm().is_none() {
            return Err(AuthFailure::UnsupportedScheme);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(if rest.is_empty() && !scheme.eq_ignore_ascii_case("ntlm") {
                AuthFailure::Malformed
            } else {
                AuthFailure::UnsupportedScheme
            });
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| AuthFailure::Malformed)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthFailure::Malformed)?;
        let (user, password) = decoded.split_once(':').ok_or(AuthFailure::Malformed)?;
        let digest: [u8; 32] = {
            let d = ring::digest::digest(&ring::digest::SHA256, password.as_bytes());
            let mut out = [0u8; 32];
            out.copy_from_slice(d.as_ref());
            out
        };
        let now = Instant::now();
        let gate = self.throttle.gate(peer, user, now);
        let cached = self.cache.lock().is_ok_and(|cache| {
            cache
                .get(user)
                .is_some_and(|(cached, until)| *until > now && ring_eq(cached, &digest))
        });
        let refusal = if cached {
            gate.refusal_of_cached()
        } else {
            gate.refusal()
        };
        if let Some((reason, wait)) = refusal {
            self.fail(peer, user);
            return Err(self.throttled(reason, wait));
        }
        if cached {
            return Ok(self.principal(user, Vec::new(), "basic", false).await);
        }
        let passwords = self
            .passwords
            .read()
            .map(|h| h.clone())
            .unwrap_or_else(|_| Arc::new(Passwords::none()));
        let check = passwords.check_for(user);
        if !check.known && self.verifies_with_directory() {
            if let Some(d) = &self.directory {
                // Boxed, as the hash check below: cold paths (a cached sign-in
                // skips them) whose state would size every request's future.
                return match Box::pin(d.verify_password(user, password)).await {
                    Ok(PasswordCheck::Good(_)) => self.signed_in(user, digest, now).await,
                    Ok(PasswordCheck::Wrong) => {
                        self.fail(peer, user);
                        Err(AuthFailure::BadCredentials {
                            known_user: Some(user.to_string()),
                        })
                    }
                    Ok(PasswordCheck::UnknownUser) => {
                        self.fail(peer, user);
                        Err(AuthFailure::BadCredentials { known_user: None })
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot check a Basic password: the directory is unavailable");
                        Err(AuthFailure::DirectoryUnavailable)
                    }
                };
            }
        }
        let known = check.known;
        match Box::pin(self.pool.verify(user, digest, password, check)).await {
            Ok(true) if known => self.signed_in(user, digest, now).await,
            Ok(_) => {
                self.fail(peer, user);
                Err(AuthFailure::BadCredentials {
                    known_user: known.then(|| user.to_string()),
                })
            }
            Err(Busy) => Err(self.throttled(ThrottleReason::Busy, BUSY_RETRY_AFTER)),
        }
    }

    /// A checked success: cached, and the name's failure count starts again.
    async fn signed_in(
        &self,
        user: &str,
        digest: [u8; 32],
        now: Instant,
    ) -> Result<Principal, AuthFailure> {
        self.remember(user, digest, now);
        self.throttle.succeeded(user);
        Ok(self.principal(user, Vec::new(), "basic", false).await)
    }

    /// Counts a failed or refused Basic attempt; says once when a key starts
    /// backing off.
    fn fail(&self, peer: IpAddr, user: &str) {
        let started = self.throttle.failed(peer, user, Instant::now());
        if started.client {
            tracing::warn!(%peer, failures = throttle::CLIENT_FREE_FAILURES, "sign-ins from this address are throttled after repeated failures; if it is a shared terminal server or NAT, look for the user whose saved password is wrong (the audit log names the user of each bad_credentials record)");
        }
        if started.user {
            tracing::warn!(%peer, failures = throttle::USER_FREE_FAILURES, "sign-ins for one user name are throttled after repeated failures (from this address last); if it is a real user, reset their password or ask them to clear the one saved in their browser");
        }
    }

    /// A throttled refusal, counted by reason.
    fn throttled(&self, reason: ThrottleReason, retry_after: Duration) -> AuthFailure {
        if let Some(m) = &self.metrics {
            m.signin_throttled
                .with_label_values(&[reason.label()])
                .inc();
        }
        AuthFailure::Throttled {
            reason,
            retry_after,
        }
    }

    /// The bcrypt pool: how many checks ran at each cost (tests, benches), and
    /// its permits.
    pub fn bcrypt_pool(&self) -> &BcryptPool {
        &self.pool
    }

    /// Caches a successful password check.
    fn remember(&self, user: &str, digest: [u8; 32], now: Instant) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 100_000 {
                cache.retain(|_, (_, until)| *until > now);
            }
            cache.insert(user.to_string(), (digest, now + CACHE_FOR));
        }
    }

    /// The groups a user has from configuration and the directory (the source's
    /// own groups aside): for `socialgate check` and `explain`.
    pub async fn groups_for(&self, user: &str) -> Vec<String> {
        self.principal(user, Vec::new(), "check", false)
            .await
            .groups
    }

    async fn principal(
        &self,
        user: &str,
        mut groups: Vec<String>,
        source: &'static str,
        challenge: bool,
    ) -> Principal {
        for (group, members) in &self.settings.group_members {
            if members.iter().any(|m| m == user) && !groups.contains(group) {
                groups.push(group.clone());
            }
        }
        if let Some(d) = &self.directory {
            for g in d.groups(user).await {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
        Principal {
            user: user.to_string(),
            groups,
            source,
            challenge_on_deny: challenge,
        }
    }
}

/// Start-up checks of the keytab, with errors for people.
fn check_keytab(path: &Path, principal: Option<&str>) -> Result<(), String> {
    let entries = kerberos::read_keytab(path).map_err(|e| format!("identity.kerberos: {e}"))?;
    if entries.is_empty() {
        return Err(format!(
            "identity.kerberos: the keytab {} holds no keys",
            path.display()
        ));
    }
    if let Some(p) = principal {
        if !entries.iter().any(|e| kerberos::entry_matches(e, p)) {
            let mut held: Vec<&str> = entries.iter().map(|e| e.principal.as_str()).collect();
            held.dedup();
            return Err(format!(
                "identity.kerberos: the keytab {} holds no key for {p}; it holds {}",
                path.display(),
                held.join(", ")
            ));
        }
    }
    if !entries.iter().any(|e| e.is_aes()) {
        tracing::warn!(keytab = %path.display(), "the keytab holds no AES key; current Windows clients will not be able to sign in (make it with ktpass -crypto AES256-SHA1)");
    }
    Ok(())
}

fn ring_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{BasicSettings, NetworkIdentity, TrustedHeaderSettings};

    fn resolver(htpasswd: &str) -> (IdentityResolver, tempfile::NamedTempFile) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, htpasswd.as_bytes()).unwrap();
        let mut s = IdentitySettings {
            basic: Some(BasicSettings {
                realm: "test".into(),
                htpasswd: f.path().to_path_buf(),
            }),
            ..Default::default()
        };
        s.group_members
            .insert("communications".into(), vec!["alice".into()]);
        s.networks.push(NetworkIdentity {
            cidr: "127.0.0.0/8".parse().unwrap(),
            user: "kiosk".into(),
            groups: vec!["public-kiosk".into()],
            challenge: true,
        });
        s.trusted_header = Some(TrustedHeaderSettings {
            user: http::HeaderName::from_static("x-authenticated-user"),
            groups: Some(http::HeaderName::from_static("x-authenticated-groups")),
            from: vec!["10.0.0.5/32".parse().unwrap()],
        });
        (IdentityResolver::new(s).unwrap(), f)
    }

    fn basic(user: &str, pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        h.insert(
            http::header::PROXY_AUTHORIZATION,
            format!("Basic {v}").parse().unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn sources_in_order() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let (r, _f) = resolver(&format!("alice:{hash}\n"));
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        // Good Basic credentials win over the network, groups from group_members.
        let p = r.identify(local, &basic("alice", "s3cret")).await.unwrap();
        assert_eq!((p.user.as_str(), p.source), ("alice", "basic"));
        assert_eq!(p.groups, vec!["communications".to_string()]);
        // Cached: a second check still succeeds.
        assert!(r.identify(local, &basic("alice", "s3cret")).await.is_ok());
        // Wrong credentials are refused even though the network matches.
        assert_eq!(
            r.identify(local, &basic("alice", "nope")).await,
            Err(AuthFailure::BadCredentials {
                known_user: Some("alice".into())
            })
        );
        assert_eq!(
            r.identify(local, &basic("s3cret", "x")).await,
            Err(AuthFailure::BadCredentials { known_user: None })
        );
        // Broken headers are a clean failure, never a panic.
        for bad in ["Basic", "Basic !!!", "Basic Zm9v", "Bearer abc"] {
            let mut h = HeaderMap::new();
            h.insert(http::header::PROXY_AUTHORIZATION, bad.parse().unwrap());
            assert!(r.identify(local, &h).await.is_err(), "{bad}");
        }
        // No credentials: the network identity, with its challenge flag.
        let p = r.identify(local, &HeaderMap::new()).await.unwrap();
        assert_eq!((p.user.as_str(), p.challenge_on_deny), ("kiosk", true));
        // The trusted header from an untrusted peer is ignored.
        let mut h = HeaderMap::new();
        h.insert("x-authenticated-user", "mallory".parse().unwrap());
        assert_eq!(r.identify(local, &h).await.unwrap().user, "kiosk");
        // From the trusted peer it is honoured, with its groups.
        h.insert("x-authenticated-groups", "a, b".parse().unwrap());
        let p = r.identify("10.0.0.5".parse().unwrap(), &h).await.unwrap();
        assert_eq!(
            (p.user.as_str(), p.groups.clone()),
            ("mallory", vec!["a".to_string(), "b".to_string()])
        );
        // Unknown network, no credentials.
        assert_eq!(
            r.identify("192.0.2.1".parse().unwrap(), &HeaderMap::new())
                .await,
            Err(AuthFailure::Missing)
        );
    }

    const FAR: &str = "192.0.2.1";

    fn far() -> IpAddr {
        FAR.parse().unwrap()
    }

    #[tokio::test]
    async fn unknown_names_cost_one_check_at_a_cost_of_the_file() {
        // One cost: a wrong password and an unknown name both run one check at it.
        let hash = bcrypt::hash("s3cret", 5).unwrap();
        let (r, _f) = resolver(&format!("alice:{hash}\n"));
        let pool = r.bcrypt_pool();
        assert!(r.identify(far(), &basic("alice", "nope")).await.is_err());
        assert_eq!(pool.verifications(), vec![(5, 1)]);
        assert_eq!(
            r.identify(far(), &basic("nobody", "nope")).await,
            Err(AuthFailure::BadCredentials { known_user: None })
        );
        assert_eq!(pool.verifications(), vec![(5, 2)]);

        // Mixed costs: each unknown name runs exactly one check, at the cost its
        // name draws, which is one of the file's.
        let (r, _f) = resolver(&format!(
            "alice:{}\nbob:{}\n",
            bcrypt::hash("a", 4).unwrap(),
            bcrypt::hash("b", 5).unwrap()
        ));
        let mut expected = std::collections::BTreeMap::new();
        for i in 0..8 {
            let name = format!("nobody{i}");
            let cost = r.passwords.read().unwrap().stand_in_cost(&name);
            assert!(cost == 4 || cost == 5);
            *expected.entry(cost).or_insert(0u64) += 1;
            assert!(r.identify(far(), &basic(&name, "x")).await.is_err());
            assert_eq!(
                r.bcrypt_pool().verifications(),
                expected.iter().map(|(c, n)| (*c, *n)).collect::<Vec<_>>()
            );
        }
    }

    #[tokio::test]
    async fn a_cached_sign_in_does_not_wait_for_a_busy_pool() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let (r, _f) = resolver(&format!("alice:{hash}\n"));
        let r = Arc::new(r);
        assert!(r.identify(far(), &basic("alice", "s3cret")).await.is_ok());
        let permits = r.bcrypt_pool().permits();
        let all = u32::try_from(permits.available_permits()).unwrap();
        let held = permits.acquire_many_owned(all).await.unwrap();
        let r2 = r.clone();
        let wrong = tokio::spawn(async move { r2.identify(far(), &basic("alice", "x")).await });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // The pool is full and a check waits for it; the cached sign-in does not.
        let p = r.identify(far(), &basic("alice", "s3cret")).await.unwrap();
        assert_eq!(p.user, "alice");
        assert!(!wrong.is_finished(), "a check ran without a permit");
        drop(held);
        assert!(matches!(
            wrong.await.unwrap(),
            Err(AuthFailure::BadCredentials { .. })
        ));
    }

    #[tokio::test]
    async fn throttled_attempts_run_no_check_and_say_when_to_retry() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let (r, _f) = resolver(&format!("alice:{hash}\n"));
        for _ in 0..throttle::USER_FREE_FAILURES {
            assert!(matches!(
                r.identify(far(), &basic("alice", "x")).await,
                Err(AuthFailure::BadCredentials { .. })
            ));
        }
        let checks = r.bcrypt_pool().verifications();
        // Even the right password is refused unchecked while the name backs off
        // for a client that failed.
        let failure = r
            .identify(far(), &basic("alice", "s3cret"))
            .await
            .unwrap_err();
        assert_eq!(
            failure,
            AuthFailure::Throttled {
                reason: ThrottleReason::User,
                retry_after: failure.retry_after().unwrap()
            }
        );
        assert_eq!(failure.label(), "throttled");
        assert!(failure.retry_after().unwrap() <= throttle::FIRST_BACKOFF);
        assert_eq!(r.bcrypt_pool().verifications(), checks);
        // An address that never failed gets its check, and signs in.
        let desk: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(r.identify(desk, &basic("alice", "s3cret")).await.is_ok());
    }

    #[test]
    fn htpasswd_refuses_weak_hashes() {
        assert!(Htpasswd::parse("bob:$apr1$abc$def\n", "h").is_err());
        assert!(Htpasswd::parse(
            "# c\n\nbob:$2y$05$abcdefghijklmnopqrstuu5hXPLAP7kQFNdLSQzEJ2S6.F5kAmWbu\n",
            "h"
        )
        .is_ok());
    }
}
