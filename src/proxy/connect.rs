//! CONNECT: tunnels decided at the host level (activity `connect`).
//!
//! Identity, port, policy and destination are checked before the `200`; the
//! upstream is dialled first so that a failure is a 502 rather than a dead tunnel.
//! Then the gateway reads the client's TLS ClientHello (up to 16 KiB, 10 s) and
//! closes the tunnel when its SNI differs from the CONNECT host or names an
//! intercepted site, or when traffic to port 443 is not TLS. Only then are bytes
//! copied both ways (`relay`). A CONNECT to an intercepted site is handed to
//! `intercept` after identity and port only: its name is not looked up until an
//! inner request is allowed.
//!
//! The destination is attributed first: an IP literal is refused (`ip-literal`)
//! unless it is a site's address (`networks:` or learned, see
//! `upstream::Dialer::sites_at`; then decided as that site, and refused if the
//! site is intercepted: no leaf for an address would be accepted) or inside
//! `upstream.allow_ip_literals` (then unlisted). An unlisted name is resolved
//! before the decision, and a name at a site's address is decided as that site
//! (intercepted when the site is); exactly the addresses judged are dialled.
//! Addresses of more than one site are refused (`ambiguous-site`). Behind a
//! parent proxy the tunnel is a CONNECT through it (`upstream::Dialer::open`),
//! with the same checks before the 200. Called by
//! `route`; [`ip_literal_site`] also by `forward`, and [`tunnel_destination`],
//! [`read_first_flight`] and [`tunnel_slot`] by `transparent` (the SNI as the
//! CONNECT host).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::body::{self, ProxyBody};
use super::context::{ClientConn, Exchange, RequestCtx};
use super::gateway::Gateway;
use super::observe;
use super::pipeline;
use super::respond::Refusal;
use super::upstream::DialError;
use crate::net_guard::DestinationDenied;
use crate::policy::{normalize_host, NormalHost, Policy, Site};

/// What the first bytes of a tunnel showed.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstFlight {
    /// A TLS ClientHello, with its SNI if any.
    Tls(Option<String>),
    NotTls,
}

pub(crate) async fn handle(
    ctx: &RequestCtx,
    conn: Arc<ClientConn>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Refusal> {
    let principal = pipeline::admit(ctx, Some(&conn.identity), req.headers()).await?;
    let authority = req
        .uri()
        .authority()
        .cloned()
        .ok_or(Refusal::BadRequest("CONNECT needs host:port.".into()))?;
    let (Some(host), Some(port)) = (normalize_host(authority.host()), authority.port_u16()) else {
        return Err(Refusal::BadRequest(
            "CONNECT needs a valid host:port.".into(),
        ));
    };
    let gw = ctx.gw.clone();
    pipeline::check_port(&gw, port)?;
    let policy = gw.policy();
    let learn_as = policy.site_for(&host).map(|s| s.name.clone());
    let TunnelDestination {
        decide_as,
        intercept,
        resolved,
    } = tunnel_destination(&gw, &policy, &host, port).await?;
    if intercept && host.as_domain().is_some() {
        // Accepted once identity and port pass, without looking the name up: each
        // inner request is decided (and audited) on its own, and only an allowed
        // one resolves and dials.
        let slot = tunnel_slot(&gw)?;
        observe::not_audited(&ctx.log);
        let peer = ctx.peer;
        let gw2 = gw.clone();
        let serve = move |upgraded| async move {
            let served = super::intercept::serve(
                gw2,
                principal,
                peer,
                host.clone(),
                port,
                decide_as,
                upgraded,
            )
            .await;
            if let Err(why) = served {
                tracing::debug!(host = %host, reason = %why, "intercepted tunnel ended");
            }
        };
        return open_tunnel(&gw, slot, req, serve, || ());
    }
    let ex = Exchange {
        ctx,
        principal,
        host,
        port,
        decide_as,
    };
    pipeline::decide_tunnel(&ex, req.headers())?;
    let Exchange { host, .. } = ex;
    // Taken before the dial, so that a gateway at its limit dials nothing.
    let slot = tunnel_slot(&gw)?;
    // Dialled before the 200, so that a failure is a 502 rather than a dead tunnel.
    // Directly, or through the parent proxy (`upstream::Dialer::open`).
    let upstream = gw
        .dialer
        .open(&host, port, learn_as.as_deref(), resolved)
        .await
        .map_err(|e| pipeline::dial_refusal(e, &host, port))?;
    let idle = gw.settings.limits.idle_timeout;
    // The tunnel's audit record is written when it closes, with its byte counts.
    observe::defer(&ctx.log);
    let (log, failed_log) = (ctx.log.clone(), ctx.log.clone());
    let (gw2, gw3) = (gw.clone(), gw.clone());
    let serve = move |upgraded: TokioIo<Upgraded>| async move {
        // The client's own socket when hyper hands it back (it always does for
        // the proxy listener), so that bulk data can be spliced.
        // (The listener watches it for idleness: `idle::Watched`; the tunnel has
        // its own idle timeout, so the socket is taken out of the wrapper.)
        let result = match upgraded
            .into_inner()
            .downcast::<TokioIo<super::idle::Watched<TcpStream>>>()
        {
            Ok(parts) => {
                let early = parts.read_buf;
                let client = parts.io.into_inner().into_inner();
                match upstream.into_tcp() {
                    Ok(up) => run_tcp_tunnel(client, early, up, &host, port, &policy, idle).await,
                    // TLS to an https:// parent: copied, not spliced.
                    Err(up) => run_tunnel(client, early, up, &host, port, &policy, idle).await,
                }
            }
            Err(upgraded) => {
                let client = TokioIo::new(upgraded);
                run_tunnel(
                    client,
                    bytes::Bytes::new(),
                    upstream,
                    &host,
                    port,
                    &policy,
                    idle,
                )
                .await
            }
        };
        match result {
            Ok((up, down)) => {
                observe::add_bytes_up(&log, up);
                observe::finish(&gw2, &log, 200, down);
            }
            Err(why) => {
                tracing::info!(host = %host, reason = %why, "tunnel closed");
                observe::finish(&gw2, &log, 200, 0);
            }
        }
    };
    open_tunnel(&gw, slot, req, serve, move || {
        observe::finish(&gw3, &failed_log, 200, 0)
    })
}

/// Where a tunnel to `host:port` goes, as the gateway decides it.
pub(crate) struct TunnelDestination {
    /// The site's host it is decided as (see [`Exchange::decide_as`]).
    pub decide_as: Option<NormalHost>,
    /// Is it an intercepted site?
    pub intercept: bool,
    /// For an unlisted name: the addresses judged, which are the ones dialled.
    pub resolved: Option<Result<Vec<SocketAddr>, DialError>>,
}

/// Which site a tunnel to `host:port` is decided as, and whether it is
/// intercepted: an IP literal by [`ip_literal_site`] (an inspected site's
/// address is refused), a listed name as itself, an unlisted name by its
/// addresses. Also used by `transparent` for the ClientHello's name.
pub(crate) async fn tunnel_destination(
    gw: &Gateway,
    policy: &Policy,
    host: &NormalHost,
    port: u16,
) -> Result<TunnelDestination, Refusal> {
    let mut resolved = None;
    let (decide_as, intercept) = match (host, policy.site_for(host)) {
        (NormalHost::Ip(ip), _) => match ip_literal_site(gw, *ip)? {
            // No leaf for an address would be accepted for the site's name, and a
            // leaf for the name would teach clients to click through: refused.
            Some(site) if site.intercept => {
                return Err(Refusal::DestinationGuard {
                    reason: DestinationDenied::IpLiteral,
                    what: format!(
                    "Naming the inspected site `{}` by its address ({host}) rather than its name",
                    site.name
                ),
                })
            }
            Some(site) => (Some(site.host), false),
            None => (None, false),
        },
        (NormalHost::Domain(_), Some(site)) => (None, site.intercept),
        (NormalHost::Domain(_), None) => {
            // An unlisted name: its addresses say whether it is a site's.
            let (attributed, addrs) = unlisted_name_site(gw, policy, host, port).await?;
            resolved = Some(addrs);
            match attributed {
                Some(site) => (Some(site.host), site.intercept),
                None => (None, false),
            }
        }
    };
    Ok(TunnelDestination {
        decide_as,
        intercept,
        resolved,
    })
}

/// The site an address belongs to, as the gateway decides it.
pub(crate) struct SiteAt {
    pub name: String,
    /// The host the policy decides (one of the site's own).
    pub host: NormalHost,
    pub intercept: bool,
}

/// The site the addresses `ips` belong to (its `networks:`, or learned for its
/// domains in the last hour), if any. Addresses of more than one site are
/// refused (`ambiguous-site`): the destination cannot be decided as one of them.
fn site_at(
    gw: &Gateway,
    policy: &Policy,
    ips: impl Iterator<Item = IpAddr>,
    what: &dyn std::fmt::Display,
) -> Result<Option<SiteAt>, Refusal> {
    let mut sites: Vec<&Site> = Vec::new();
    for ip in ips {
        for site in gw.dialer.sites_at(policy, ip) {
            if !sites.iter().any(|s| std::ptr::eq(*s, site)) {
                sites.push(site);
            }
        }
    }
    let ambiguous = |names: String| Refusal::DestinationGuard {
        reason: DestinationDenied::AmbiguousSite,
        what: format!("{what}, whose addresses belong to {names},"),
    };
    match sites.as_slice() {
        [] => Ok(None),
        [site] => {
            let host = policy.host_of_site(site).ok_or_else(|| {
                ambiguous(format!(
                    "the site `{}` (which has no name of its own)",
                    site.name
                ))
            })?;
            Ok(Some(SiteAt {
                name: site.name.clone(),
                host,
                intercept: site.intercept,
            }))
        }
        many => Err(ambiguous(format!(
            "the sites {}",
            many.iter()
                .map(|s| format!("`{}`", s.name))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// An unlisted name, resolved: the site its addresses belong to, if any, and the
/// addresses (or why there are none: that is reported only if the request is
/// allowed, as a dial failure would be).
pub(crate) async fn unlisted_name_site(
    gw: &Gateway,
    policy: &Policy,
    host: &NormalHost,
    port: u16,
) -> Result<(Option<SiteAt>, Result<Vec<SocketAddr>, DialError>), Refusal> {
    let addrs = gw.dialer.resolve(host, port).await;
    let attributed = match &addrs {
        Ok(addrs) => site_at(gw, policy, addrs.iter().map(|a| a.ip()), host)?,
        Err(_) => None,
    };
    Ok((attributed, addrs))
}

/// An IP literal (CONNECT or `http://`): the site whose address it is (then it
/// is decided as that site), or `None` when `upstream.allow_ip_literals` holds
/// it (an unlisted destination). Any other IP literal is refused
/// (`ip-literal`): a client that names an address instead of a name must not
/// reach a listed site as an unlisted one.
pub(crate) fn ip_literal_site(gw: &Gateway, ip: IpAddr) -> Result<Option<SiteAt>, Refusal> {
    let policy = gw.policy();
    let literal = NormalHost::Ip(ip);
    // Formatted only for a refusal.
    struct TheAddress<'a>(&'a NormalHost);
    impl std::fmt::Display for TheAddress<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "the IP address {}", self.0)
        }
    }
    if let Some(site) = site_at(gw, &policy, std::iter::once(ip), &TheAddress(&literal))? {
        return Ok(Some(site));
    }
    if gw.dialer.guard.ip_literal_allowed(ip) {
        return Ok(None);
    }
    Err(Refusal::DestinationGuard {
        reason: DestinationDenied::IpLiteral,
        what: format!("A destination named by its IP address ({literal}) rather than a name"),
    })
}

/// A `limits.max_tunnels` slot, held while the tunnel is open.
pub(crate) fn tunnel_slot(gw: &Gateway) -> Result<OwnedSemaphorePermit, Refusal> {
    gw.tunnel_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| Refusal::TooManyTunnels)
}

/// Answers the CONNECT with its 200 and, once the client's connection is handed
/// over, runs `serve` on it (counted in `tunnels_active`, holding `slot`);
/// `on_fail` when the hand-over fails.
fn open_tunnel<F, Fut>(
    gw: &Gateway,
    slot: OwnedSemaphorePermit,
    req: Request<Incoming>,
    serve: F,
    on_fail: impl FnOnce() + Send + 'static,
) -> Result<Response<ProxyBody>, Refusal>
where
    F: FnOnce(TokioIo<Upgraded>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let metrics = gw.metrics.clone();
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                metrics.tunnels_active.inc();
                serve(TokioIo::new(upgraded)).await;
                metrics.tunnels_active.dec();
            }
            Err(e) => {
                tracing::debug!(error = %e, "CONNECT upgrade failed");
                on_fail();
            }
        }
        drop(slot);
    });
    Ok(Response::new(body::empty()))
}

/// Checks the first flight, then copies both ways; `early` holds bytes the
/// client sent right behind its CONNECT.
async fn run_tunnel<C, U>(
    mut client: C,
    early: bytes::Bytes,
    mut upstream: U,
    host: &NormalHost,
    port: u16,
    policy: &Policy,
    idle: Duration,
) -> Result<(u64, u64), String>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut reader = AsyncReadExt::chain(&early[..], &mut client);
    let sent = pass_first_flight(&mut reader, &mut upstream, host, port, policy).await?;
    super::relay::relay(client, upstream, idle)
        .await
        .map(|(up, down)| (up + sent, down))
        .map_err(|e| e.to_string())
}

/// [`run_tunnel`] on the client's TCP socket; `early` holds bytes the client sent
/// right behind its CONNECT (already read by the HTTP layer).
async fn run_tcp_tunnel(
    mut client: TcpStream,
    early: bytes::Bytes,
    mut upstream: TcpStream,
    host: &NormalHost,
    port: u16,
    policy: &Policy,
    idle: Duration,
) -> Result<(u64, u64), String> {
    let mut reader = AsyncReadExt::chain(&early[..], &mut client);
    let sent = pass_first_flight(&mut reader, &mut upstream, host, port, policy).await?;
    super::relay::relay_tcp(client, upstream, idle)
        .await
        .map(|(up, down)| (up + sent, down))
        .map_err(|e| e.to_string())
}

/// Reads the client's first flight (10 s at most), checks it, and sends it on.
/// Returns how many bytes went up.
async fn pass_first_flight<C: tokio::io::AsyncRead + Unpin, U: tokio::io::AsyncWrite + Unpin>(
    client: &mut C,
    upstream: &mut U,
    host: &NormalHost,
    port: u16,
    policy: &Policy,
) -> Result<u64, String> {
    let (first, buffered) =
        tokio::time::timeout(Duration::from_secs(10), read_first_flight(client))
            .await
            .map_err(|_| "the client sent no ClientHello in time".to_string())??;
    check_first_flight(&first, host, port, policy)?;
    upstream
        .write_all(&buffered)
        .await
        .map_err(|e| e.to_string())?;
    Ok(buffered.len() as u64)
}

/// Is this first flight acceptable for a tunnel to `host:port`?
pub fn check_first_flight(
    first: &FirstFlight,
    host: &NormalHost,
    port: u16,
    policy: &Policy,
) -> Result<(), String> {
    match first {
        FirstFlight::NotTls if port == 443 => Err("traffic to port 443 is not TLS".into()),
        FirstFlight::NotTls => Ok(()),
        FirstFlight::Tls(sni) => {
            let sni_host = sni.as_deref().and_then(normalize_host);
            match (&sni_host, host) {
                (None, NormalHost::Ip(_)) => Ok(()),
                (None, NormalHost::Domain(_)) => {
                    Err("the ClientHello names no server (SNI)".into())
                }
                (Some(s), h) if s != h => Err(format!("the ClientHello names {s}, not {h}")),
                (Some(s), _) => match policy.site_for(s) {
                    Some(site) if site.intercept => {
                        Err(format!("{s} is an inspected site and cannot be tunnelled"))
                    }
                    _ => Ok(()),
                },
            }
        }
    }
}

/// Reads until a whole ClientHello has arrived (or it is clearly not TLS).
/// Returns what it saw and every byte read, to be forwarded unchanged.
pub async fn read_first_flight<C: tokio::io::AsyncRead + Unpin>(
    client: &mut C,
) -> Result<(FirstFlight, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut acceptor = rustls::server::Acceptor::default();
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the client closed the tunnel before sending anything".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf[0] != 0x16 {
            return Ok((FirstFlight::NotTls, buf));
        }
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            if acceptor.read_tls(&mut rest).is_err() {
                return Ok((FirstFlight::NotTls, buf));
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let sni = accepted.client_hello().server_name().map(str::to_string);
                return Ok((FirstFlight::Tls(sni), buf));
            }
            Ok(None) => {}
            Err(_) => return Ok((FirstFlight::NotTls, buf)),
        }
        if buf.len() > 16 * 1024 {
            return Err("the ClientHello is larger than 16 KiB".into());
        }
    }
}
