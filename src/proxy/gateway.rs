//! Shared state of a running gateway: settings, the policy in force, identity,
//! the dialer, TLS issuers, metrics, audit, budgets and reference ids. It makes
//! no decision and sends nothing; everything in `proxy` reads it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::{deferred, dns, upstream, warn};
use crate::identity::IdentityResolver;
use crate::policy::Policy;
use crate::settings::Settings;
use upstream::Dialer;

/// Shared state of a running gateway.
pub struct Gateway {
    pub settings: Settings,
    policy: RwLock<Arc<Policy>>,
    pub identity: IdentityResolver,
    pub dialer: Dialer,
    pub issuer: Arc<crate::tls::LeafIssuer>,
    /// rustls client settings for upstream TLS: system roots plus `extra_roots`,
    /// ALPN h2 then http/1.1.
    pub upstream_tls: Arc<rustls::ClientConfig>,
    /// The same, offering http/1.1 only (WebSockets, and HTTP/1.1 clients); it
    /// shares the session cache, so either resumes the other's sessions.
    pub upstream_tls_h1: Arc<rustls::ClientConfig>,
    pub warn: warn::WarnGate,
    /// Denied background requests waiting to be explained (`pages.deferred_notice`).
    pub deferred: deferred::DeferredNotices,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The drift counters of the policy in force (`crate::drift`).
    drift: RwLock<Arc<crate::drift::DriftSeries>>,
    pub audit: crate::audit::AuditLog,
    /// When the policy in force was loaded (for the status page).
    pub policy_loaded_at: RwLock<chrono::DateTime<chrono::Utc>>,
    /// The policy files' refusal since the last accepted load, if any (for
    /// the status page; `runtime::reload` keeps it).
    pub reload_failure: RwLock<Option<ReloadFailure>>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The proxy listeners' bound addresses.
    proxy_addrs: RwLock<Vec<std::net::SocketAddr>>,
    /// `limits.max_buffered_bytes` and each user's share of it
    /// (`limits.max_buffered_bytes_per_client`): bodies held for scanning.
    pub buffer_budget: Arc<super::body::BufferBudget>,
    /// `limits.max_tunnels`.
    pub tunnel_slots: Arc<tokio::sync::Semaphore>,
    references: References,
    /// Turns true when the gateway is stopping (SIGTERM): intercepted tunnels
    /// finish the request in flight and close (`intercept`).
    stopping: tokio::sync::watch::Sender<bool>,
    /// Intercepted tunnels being served: a stop waits for them as for client
    /// connections (their requests are in flight after the CONNECT upgrade).
    intercepted_open: Arc<std::sync::atomic::AtomicUsize>,
}

/// One intercepted tunnel counted in [`Gateway::intercepted_open`]; uncounted
/// when dropped.
pub struct InterceptedSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for InterceptedSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Why the policy files on disk are refused, and since when.
#[derive(Debug, Clone)]
pub struct ReloadFailure {
    /// The first refused load since the last accepted one.
    pub since: chrono::DateTime<chrono::Utc>,
    /// The latest refused load's errors, one per line.
    pub error: String,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the gateway state. `own` are the addresses its listeners bound.
    pub fn new(
        settings: Settings,
        policy: Policy,
        own: Vec<std::net::SocketAddr>,
        issuer: Arc<crate::tls::LeafIssuer>,
        audit: crate::audit::AuditLog,
    ) -> Result<Gateway, String> {
        let metrics =
            Arc::new(crate::metrics::Metrics::new().map_err(|e| format!("metrics: {e}"))?);
        metrics.set_policy_version(&policy.version);
        let drift = RwLock::new(Arc::new(crate::drift::DriftSeries::build(
            &metrics, &policy,
        )));
        let settings_limits = settings.limits.clone();
        let warn = warn::WarnGate::with_key(settings.warn_key.as_ref().map(|k| k.bytes()));
        let upstream_config = crate::tls::client_tls_config(&settings.upstream.extra_roots)?;
        let mut h1_config = upstream_config.clone();
        h1_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let upstream_tls = Arc::new(upstream_config);
        let upstream_tls_h1 = Arc::new(h1_config);
        let identity = IdentityResolver::build(
            settings.identity.clone(),
            &settings.upstream.extra_roots,
            Some(metrics.clone()),
        )?;
        let dialer = Dialer {
            guard: crate::net_guard::DestinationGuard {
                allow: settings.upstream.allow_destinations.clone(),
                allowed_ports: settings.upstream.allowed_ports.clone(),
                own,
                ip_literals: settings.upstream.allow_ip_literals.clone(),
            },
            resolve: settings.upstream.resolve.clone(),
            connect_timeout: settings.upstream.connect_timeout,
            names: dns::NameCache::new(dns::system_lookup()),
            learned: dns::LearnedAddrs::default(),
            parent: super::parent::Parent::from_settings(
                settings.upstream.proxy.as_ref(),
                &settings.upstream.no_proxy,
                &settings.upstream.extra_roots,
            )?,
        };
        Ok(Gateway {
            settings,
            policy: RwLock::new(Arc::new(policy)),
            identity,
            dialer,
            issuer,
            upstream_tls,
            upstream_tls_h1,
            warn,
            deferred: deferred::DeferredNotices::default(),
            metrics,
            drift,
            audit,
            policy_loaded_at: RwLock::new(chrono::Utc::now()),
            reload_failure: RwLock::new(None),
            started_at: chrono::Utc::now(),
            proxy_addrs: RwLock::new(Vec::new()),
            buffer_budget: Arc::new(super::body::BufferBudget::new(
                settings_limits.max_buffered_bytes,
                settings_limits.buffered_share(),
            )),
            tunnel_slots: Arc::new(tokio::sync::Semaphore::new(
                settings_limits.max_tunnels.max(1),
            )),
            references: References::new(),
            stopping: tokio::sync::watch::channel(false).0,
            intercepted_open: Arc::default(),
        })
    }

    /// Tells intercepted tunnels that the gateway is stopping.
    pub fn begin_stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once the gateway is stopping (at once if it already is).
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            // An error means the gateway is gone: stopping too.
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }

    /// Counts an intercepted tunnel until the slot is dropped.
    pub fn intercepted_slot(&self) -> InterceptedSlot {
        self.intercepted_open
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        InterceptedSlot(self.intercepted_open.clone())
    }

    /// Intercepted tunnels being served now.
    pub fn intercepted_open(&self) -> usize {
        self.intercepted_open
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The policy in force; a request keeps the one it started with.
    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a new, already validated policy.
    pub fn set_policy(&self, policy: Policy) {
        self.metrics.set_policy_version(&policy.version);
        if let Ok(mut t) = self.policy_loaded_at.write() {
            *t = chrono::Utc::now();
        }
        let drift = Arc::new(crate::drift::DriftSeries::build(&self.metrics, &policy));
        self.drift().retire(&self.metrics, &drift);
        match self.drift.write() {
            Ok(mut d) => *d = drift,
            Err(poisoned) => *poisoned.into_inner() = drift,
        }
        let new = Arc::new(policy);
        match self.policy.write() {
            Ok(mut p) => *p = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// The drift counters of the policy in force.
    pub fn drift(&self) -> Arc<crate::drift::DriftSeries> {
        match self.drift.read() {
            Ok(d) => d.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The proxy listeners' addresses (set once they are bound).
    pub fn proxy_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.proxy_addrs
            .read()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    pub fn set_proxy_addrs(&self, addrs: Vec<std::net::SocketAddr>) {
        if let Ok(mut a) = self.proxy_addrs.write() {
            *a = addrs;
        }
    }

    /// A fresh reference id for an audit record and the response that names it.
    pub fn reference(&self) -> String {
        self.references.next()
    }
}

/// Reference ids: a random per-process prefix and a counter, e.g. `7f3a91c2-000012`.
struct References {
    prefix: u32,
    counter: AtomicU64,
}

impl References {
    fn new() -> References {
        let mut b = [0u8; 4];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
        References {
            prefix: u32::from_be_bytes(b),
            counter: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        reference_text(self.prefix, self.counter.fetch_add(1, Ordering::Relaxed))
    }
}

/// `format!("{prefix:08x}-{n:06x}")`, digit by digit (one per request: the
/// formatting machinery cost more than the rest of the record's start).
fn reference_text(prefix: u32, n: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let counter_digits = (64 - n.leading_zeros()).div_ceil(4).max(6);
    let mut text = String::with_capacity(9 + counter_digits as usize);
    for i in (0..8).rev() {
        text.push(char::from(HEX[(prefix >> (4 * i)) as usize & 0xf]));
    }
    text.push('-');
    for i in (0..counter_digits).rev() {
        text.push(char::from(HEX[(n >> (4 * i)) as usize & 0xf]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::reference_text;

    #[test]
    fn references_read_as_the_format_they_replace() {
        for prefix in [0, 1, 0x7f3a_91c2, u32::MAX] {
            for n in [
                0,
                1,
                0x12,
                0xff_ffff,
                0x100_0000,
                0xdead_beef_cafe,
                u64::MAX,
            ] {
                assert_eq!(reference_text(prefix, n), format!("{prefix:08x}-{n:06x}"));
            }
        }
    }
}
