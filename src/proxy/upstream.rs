//! Reaching the real site: resolve the name (static `upstream.resolve` answers
//! first, then the cached resolver in `dns`), pass every address through the
//! destination guard, and dial exactly an address that was checked, never the name
//! again. Addresses are tried Happy-Eyeballs style (IPv6 and IPv4 alternating, a
//! new attempt every 250 ms while earlier ones are pending, the first to connect
//! wins), within `connect_timeout` in all. Also the kinds of upstream failure
//! (labels of `socialgate_upstream_errors_total`). Called by the legs (`forward`,
//! `intercept`) and `connect`, only once a request is decided.
//!
//! Addresses resolved for a listed site's domain are learned (`dns::LearnedAddrs`,
//! one hour); [`Dialer::sites_at`] says which sites an address belongs to (their
//! `networks:` or learned), so that `connect` and `forward` decide an IP literal
//! or another name pointing there as the site.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::net_guard::{canonical, DestinationDenied, DestinationGuard};
use crate::policy::{NormalHost, Policy, Site};

/// Kinds of upstream failure; labels of `socialgate_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    Dns,
    Refused,
    Timeout,
    Tls,
    Protocol,
}

impl UpstreamFailure {
    pub fn label(self) -> &'static str {
        match self {
            UpstreamFailure::Dns => "dns",
            UpstreamFailure::Refused => "connect",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Tls => "tls",
            UpstreamFailure::Protocol => "protocol",
        }
    }
}

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
    pub names: super::dns::NameCache,
    /// Addresses resolved for listed sites' domains in the last hour.
    pub learned: super::dns::LearnedAddrs,
}

/// Delay before the next address is tried while earlier attempts are pending.
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

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
                match tokio::time::timeout(self.connect_timeout, self.names.lookup(d)).await {
                    Err(_) => Err(DialError::Failed(
                        UpstreamFailure::Timeout,
                        format!("looking up {d} took too long"),
                    )),
                    Ok(Err(why)) => Err(DialError::Failed(UpstreamFailure::Dns, why)),
                    Ok(Ok(ips)) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
                }
            }
        }
    }

    /// [`Dialer::resolve`], learning the addresses when `site` names the listed
    /// site whose domain `host` is.
    pub async fn resolve_learning(
        &self,
        host: &NormalHost,
        port: u16,
        site: Option<&str>,
    ) -> Result<Vec<SocketAddr>, DialError> {
        let addrs = self.resolve(host, port).await?;
        if let (Some(site), NormalHost::Domain(_)) = (site, host) {
            self.learned
                .learn(site, addrs.iter().map(|a| canonical(a.ip())));
        }
        Ok(addrs)
    }

    /// The sites `ip` belongs to: those whose `networks:` hold it, and those it
    /// was resolved for in the last hour (sites since removed from the policy
    /// are left out). Policy order, no repeats.
    pub fn sites_at<'p>(&self, policy: &'p Policy, ip: std::net::IpAddr) -> Vec<&'p Site> {
        let ip = canonical(ip);
        let mut sites = policy.sites_for_address(ip);
        for name in self.learned.sites_of(ip) {
            if let Some(site) = policy.site_named(&name) {
                if !sites.iter().any(|s| std::ptr::eq(*s, site)) {
                    sites.push(site);
                }
            }
        }
        sites
    }

    /// Resolves, checks every address, and connects to the first allowed one that
    /// answers. If the guard refuses all addresses, the first refusal is returned.
    /// `site`: the listed site whose domain `host` is (its addresses are learned).
    pub async fn dial(
        &self,
        host: &NormalHost,
        port: u16,
        site: Option<&str>,
    ) -> Result<(TcpStream, SocketAddr), DialError> {
        self.guard.check_port(port).map_err(DialError::Denied)?;
        let addrs = self.resolve_learning(host, port, site).await?;
        self.dial_addrs(host, port, addrs).await
    }

    /// [`Dialer::dial`] to addresses already resolved for `host` (never resolved
    /// again, so what was judged is what is dialled).
    pub async fn dial_addrs(
        &self,
        host: &NormalHost,
        port: u16,
        addrs: Vec<SocketAddr>,
    ) -> Result<(TcpStream, SocketAddr), DialError> {
        self.guard.check_port(port).map_err(DialError::Denied)?;
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
        let ordered = super::dns::interleave(&allowed);
        let attempt = async move {
            let mut pending = tokio::task::JoinSet::new();
            let mut next = ordered.into_iter();
            let mut last = String::from("no address answered");
            loop {
                if let Some(a) = next.next() {
                    pending.spawn(async move { (a, TcpStream::connect(a).await) });
                }
                let more = next.len() > 0;
                let joined = if more {
                    match tokio::time::timeout(ATTEMPT_DELAY, pending.join_next()).await {
                        Ok(j) => j,
                        Err(_) => continue, // start the next address alongside
                    }
                } else {
                    pending.join_next().await
                };
                match joined {
                    Some(Ok((a, Ok(s)))) => {
                        let _ = s.set_nodelay(true);
                        return Ok((s, a));
                    }
                    Some(Ok((a, Err(e)))) => last = format!("{a}: {e}"),
                    Some(Err(_)) => {}
                    None if !more => {
                        return Err(DialError::Failed(
                            UpstreamFailure::Refused,
                            format!("{host}: {last}"),
                        ))
                    }
                    None => {}
                }
            }
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
