//! The proxy layer: all network I/O. It identifies the client, feeds the pure
//! policy and DLP engines with facts, and turns their verdict into a forwarded
//! request, a tunnel or a response made by `respond`.

pub mod connect;
pub mod forward;
pub mod headers;
pub mod intercept;
pub mod respond;
pub mod server;
pub mod upstream;
pub mod warn;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

use crate::identity::{AuthFailure, IdentityResolver, Principal};
use crate::policy::Policy;
use crate::settings::Settings;
use upstream::Dialer;

/// The boxed error of bodies passing through the proxy.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the proxy sends: forwarded or made by the gateway.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Shared state of a running gateway.
pub struct Gateway {
    pub settings: Settings,
    policy: RwLock<Arc<Policy>>,
    pub identity: IdentityResolver,
    pub dialer: Dialer,
    pub issuer: Arc<crate::tls::LeafIssuer>,
    /// rustls client settings for upstream TLS: system roots plus `extra_roots`.
    pub upstream_tls: Arc<rustls::ClientConfig>,
    pub warn: warn::WarnGate,
    references: References,
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
    ) -> Result<Gateway, String> {
        let upstream_tls = Arc::new(upstream::client_tls_config(&settings.upstream.extra_roots)?);
        let identity = IdentityResolver::new(settings.identity.clone())?;
        let dialer = Dialer {
            guard: crate::net_guard::DestinationGuard {
                allow: settings.upstream.allow_destinations.clone(),
                allowed_ports: settings.upstream.allowed_ports.clone(),
                own,
            },
            resolve: settings.upstream.resolve.clone(),
            connect_timeout: settings.upstream.connect_timeout,
        };
        Ok(Gateway {
            settings,
            policy: RwLock::new(Arc::new(policy)),
            identity,
            dialer,
            issuer,
            upstream_tls,
            warn: warn::WarnGate::new(),
            references: References::new(),
        })
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
        let new = Arc::new(policy);
        match self.policy.write() {
            Ok(mut p) => *p = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// A fresh reference id for an audit record and the response that names it.
    pub fn reference(&self) -> String {
        self.references.next()
    }

    /// Identifies the client, or returns the response that refuses it.
    pub async fn admit(
        &self,
        peer: IpAddr,
        headers: &http::HeaderMap,
        reference: &str,
    ) -> Result<Principal, http::Response<ProxyBody>> {
        match self.identity.identify(peer, headers).await {
            Ok(p) => Ok(p),
            Err(failure) => {
                if !matches!(failure, AuthFailure::Missing) {
                    tracing::info!(reason = failure.label(), %peer, "proxy authentication failed");
                }
                Err(self.refuse_identity(reference))
            }
        }
    }

    /// 407 when a sign-in is offered, else 403.
    pub fn refuse_identity(&self, reference: &str) -> http::Response<ProxyBody> {
        match self.identity.basic_realm() {
            Some(realm) => respond::auth_required(realm, reference),
            None => respond::unknown_client(reference),
        }
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
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{:06x}", self.prefix, n)
    }
}
