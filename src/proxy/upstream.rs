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
//!
//! Behind a parent proxy (`upstream.proxy`, see `parent`), [`Dialer::open`] and
//! [`Dialer::open_http`] connect to the parent instead (its own address is not
//! put through the guard: the operator named it) for every destination not in
//! `upstream.no_proxy`. The guard then checks what the gateway itself knows: the
//! port, an IP literal, and every address of an unlisted name (which the gateway
//! resolves for its own decision; one refused address refuses the name, as the
//! parent picks which one it dials). A listed site's name is not resolved by the
//! gateway: the parent resolves it, out of the guard's sight.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::parent::{Parent, ParentFailure, UpstreamStream};
use crate::net_guard::{canonical, DestinationDenied, DestinationGuard};
use crate::policy::{normalize_host, NormalHost, Policy, Site};

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
    /// The parent proxy (`upstream.proxy`), if any.
    pub parent: Option<Parent>,
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
        self.connect_any(&host.to_string(), allowed).await
    }

    /// Connects to the first of `addrs` that answers (Happy Eyeballs), within
    /// `connect_timeout`; `what` names the destination in errors. No guard here.
    async fn connect_any(
        &self,
        what: &str,
        addrs: Vec<SocketAddr>,
    ) -> Result<(TcpStream, SocketAddr), DialError> {
        let ordered = super::dns::interleave(&addrs);
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
                            format!("{what}: {last}"),
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
                format!("connecting to {what} took too long"),
            )),
        }
    }

    /// The parent that `host` goes through, unless it is in `no_proxy` (or
    /// there is no parent).
    pub fn parent_for(&self, host: &NormalHost) -> Option<&Parent> {
        self.parent.as_ref().filter(|p| p.applies_to(host))
    }

    /// A byte stream to `host:port` for TLS or a tunnel: dialled directly (as
    /// [`Dialer::dial`], or to `resolved`, the addresses already judged for an
    /// unlisted name), or a CONNECT tunnel through the parent.
    pub async fn open(
        &self,
        host: &NormalHost,
        port: u16,
        site: Option<&str>,
        resolved: Option<Result<Vec<SocketAddr>, DialError>>,
    ) -> Result<UpstreamStream, DialError> {
        self.guard.check_port(port).map_err(DialError::Denied)?;
        let Some(parent) = self.parent_for(host) else {
            let addrs = match resolved {
                Some(r) => r?,
                None => self.resolve_learning(host, port, site).await?,
            };
            let (tcp, _) = self.dial_addrs(host, port, addrs).await?;
            return Ok(UpstreamStream::tcp(tcp));
        };
        self.check_behind_parent(host, port, site, resolved).await?;
        let stream = self.reach_parent(parent).await?;
        let tunnel = parent.tunnel(stream, host, port);
        match tokio::time::timeout(self.connect_timeout, tunnel).await {
            Ok(r) => r.map_err(failure),
            Err(_) => Err(DialError::Failed(
                UpstreamFailure::Timeout,
                format!(
                    "the parent proxy {} did not open a tunnel to {host}:{port} within {}s",
                    parent.url(),
                    self.connect_timeout.as_secs()
                ),
            )),
        }
    }

    /// A connection for plain HTTP to `host:port`: dialled directly, or to the
    /// parent (then returned too: the request goes to it in absolute form, with
    /// its `Proxy-Authorization`).
    pub async fn open_http(
        &self,
        host: &NormalHost,
        port: u16,
        site: Option<&str>,
    ) -> Result<(UpstreamStream, Option<&Parent>), DialError> {
        let Some(parent) = self.parent_for(host) else {
            let (tcp, _) = self.dial(host, port, site).await?;
            return Ok((UpstreamStream::tcp(tcp), None));
        };
        self.guard.check_port(port).map_err(DialError::Denied)?;
        self.check_behind_parent(host, port, site, None).await?;
        Ok((self.reach_parent(parent).await?, Some(parent)))
    }

    /// The guard's part for a destination reached through the parent: an IP
    /// literal is checked; an unlisted name's addresses (as the gateway
    /// resolved them for its decision) must all pass; a listed site's name is
    /// the parent's to resolve.
    async fn check_behind_parent(
        &self,
        host: &NormalHost,
        port: u16,
        site: Option<&str>,
        resolved: Option<Result<Vec<SocketAddr>, DialError>>,
    ) -> Result<(), DialError> {
        let addrs = match (host, site) {
            (NormalHost::Ip(ip), _) => vec![SocketAddr::new(*ip, port)],
            (NormalHost::Domain(_), Some(_)) => return Ok(()),
            (NormalHost::Domain(_), None) => match resolved {
                Some(r) => r?,
                None => self.resolve(host, port).await?,
            },
        };
        for a in addrs {
            self.guard.check(a).map_err(DialError::Denied)?;
        }
        Ok(())
    }

    /// A connection to the parent itself (TLS set up for `https://`). Its
    /// address is the operator's: resolved like any name, not guarded.
    async fn reach_parent(&self, parent: &Parent) -> Result<UpstreamStream, DialError> {
        let url = parent.url();
        let Some(name) = normalize_host(&parent.settings.host) else {
            return Err(DialError::Failed(
                UpstreamFailure::Dns,
                format!("the parent proxy {url} is not a valid host"),
            ));
        };
        let addrs = self
            .resolve(&name, parent.settings.port)
            .await
            .map_err(|e| match e {
                DialError::Failed(kind, why) => {
                    DialError::Failed(kind, format!("the parent proxy {url}: {why}"))
                }
                denied => denied,
            })?;
        let (tcp, _) = self
            .connect_any(&format!("the parent proxy {url}"), addrs)
            .await
            .map_err(|e| match e {
                DialError::Failed(UpstreamFailure::Refused, why) => DialError::Failed(
                    UpstreamFailure::Refused,
                    format!("{why} (the parent proxy could not be reached)"),
                ),
                other => other,
            })?;
        match tokio::time::timeout(self.connect_timeout, parent.over(tcp)).await {
            Ok(r) => r.map_err(failure),
            Err(_) => Err(DialError::Failed(
                UpstreamFailure::Timeout,
                format!("the TLS handshake with the parent proxy {url} took too long"),
            )),
        }
    }
}

/// The kind of upstream failure a parent's refusal counts as.
fn failure(f: ParentFailure) -> DialError {
    match f {
        ParentFailure::Tls(why) => DialError::Failed(UpstreamFailure::Tls, why),
        ParentFailure::Refused(why) => DialError::Failed(UpstreamFailure::Refused, why),
        ParentFailure::Broken(why) => DialError::Failed(UpstreamFailure::Protocol, why),
    }
}
