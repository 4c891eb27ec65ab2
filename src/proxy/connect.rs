//! CONNECT: tunnels decided at the host level (activity `connect`).
//!
//! Identity, port, policy and destination are checked before the `200`; the
//! upstream is dialled first so that a failure is a 502 rather than a dead tunnel.
//! Then the gateway reads the client's TLS ClientHello (up to 16 KiB, 10 s) and
//! closes the tunnel when its SNI differs from the CONNECT host or names an
//! intercepted site, or when traffic to port 443 is not TLS. Only then are bytes
//! copied both ways.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::respond::{self, BlockInfo};
use super::{observe, Gateway, ProxyBody};
use crate::policy::{normalize_host, Action, Facts, NormalHost, Policy};
use crate::view::RequestView;

/// What the first bytes of a tunnel showed.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstFlight {
    /// A TLS ClientHello, with its SNI if any.
    Tls(Option<String>),
    NotTls,
}

pub async fn handle(
    gw: Arc<Gateway>,
    peer: SocketAddr,
    conn: Arc<super::server::ClientConn>,
    req: Request<Incoming>,
    reference: String,
    log: &observe::SharedLog,
) -> Response<ProxyBody> {
    let html = respond::wants_html(req.headers());
    let principal = match gw
        .admit_on(
            peer.ip(),
            Some(&conn.identity),
            req.headers(),
            &reference,
            log,
        )
        .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(authority) = req.uri().authority().cloned() else {
        return respond::plain(
            StatusCode::BAD_REQUEST,
            "CONNECT needs host:port.",
            &reference,
        );
    };
    let (Some(host), Some(port)) = (normalize_host(authority.host()), authority.port_u16()) else {
        return respond::plain(
            StatusCode::BAD_REQUEST,
            "CONNECT needs a valid host:port.",
            &reference,
        );
    };
    if let Err(d) = gw.dialer.guard.check_port(port) {
        gw.destination_refused(log, d.label());
        return respond::destination_denied(
            &format!("port {port} is not allowed ({})", d.label()),
            html,
            &gw.settings.support_contact,
            &reference,
        );
    }
    let policy = gw.policy();
    if policy.site_for(&host).is_some_and(|s| s.intercept) && host.as_domain().is_some() {
        // Accepted once identity, port and destination pass; each inner request is
        // then decided (and audited) on its own.
        if let Err(e) = super::intercept::check_destination(&gw, &host, port).await {
            return gw.dial_error(e, &host, html, &reference, log);
        }
        let Ok(slot) = gw.tunnel_slots.clone().try_acquire_owned() else {
            return respond::plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "The gateway has too many open tunnels (limits.max_tunnels). Try again shortly.",
                &reference,
            );
        };
        observe::not_audited(log);
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(upgraded) => {
                    gw.metrics.tunnels_active.inc();
                    let metrics = gw.metrics.clone();
                    let served = super::intercept::serve(
                        gw,
                        principal,
                        peer.ip(),
                        host.clone(),
                        port,
                        TokioIo::new(upgraded),
                    )
                    .await;
                    metrics.tunnels_active.dec();
                    if let Err(why) = served {
                        tracing::debug!(host = %host, reason = %why, "intercepted tunnel ended");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
            }
            drop(slot);
        });
        return Response::new(Empty::new().map_err(|never| match never {}).boxed());
    }
    let verdict = crate::verdict::Verdict {
        decision: policy.decide_unworded(&Facts {
            user: &principal.user,
            groups: &principal.groups,
            request: RequestView::tunnel(&host, req.headers()),
            at: Some(Utc::now()),
        }),
        findings: Vec::new(),
        refusal: None,
    };
    observe::decided(&gw, log, &verdict);
    let decision = &verdict.decision;
    if decision.action != Action::Allow {
        tracing::info!(user = %principal.user, site = %decision.site, rule = %decision.rule, "tunnel refused");
        if principal.challenge_on_deny {
            return gw.refuse_identity(&reference);
        }
        let info = BlockInfo {
            rule: &decision.rule,
            site: &decision.site,
            activity: &decision.activity,
            detectors: &[],
            support_contact: &gw.settings.support_contact,
        };
        return respond::blocked(&info, html, &reference);
    }
    let Ok(slot) = gw.tunnel_slots.clone().try_acquire_owned() else {
        return respond::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway has too many open tunnels (limits.max_tunnels). Try again shortly.",
            &reference,
        );
    };
    let upstream = match gw.dialer.dial(&host, port).await {
        Ok((s, _)) => s,
        Err(e) => return gw.dial_error(e, &host, html, &reference, log),
    };
    let idle = gw.settings.limits.idle_timeout;
    // The tunnel's audit record is written when it closes, with its byte counts.
    observe::defer(log);
    let log = log.clone();
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                gw.metrics.tunnels_active.inc();
                // The client's own socket when hyper hands it back (it always does
                // for the proxy listener), so that bulk data can be spliced.
                let result = match upgraded.downcast::<TokioIo<TcpStream>>() {
                    Ok(parts) => {
                        let early = parts.read_buf;
                        let client = parts.io.into_inner();
                        run_tcp_tunnel(client, early, upstream, &host, port, &policy, idle).await
                    }
                    Err(upgraded) => {
                        run_tunnel(TokioIo::new(upgraded), upstream, &host, port, &policy, idle)
                            .await
                    }
                };
                gw.metrics.tunnels_active.dec();
                match result {
                    Ok((up, down)) => {
                        observe::add_bytes_up(&log, up);
                        observe::finish(&gw, &log, 200, down);
                    }
                    Err(why) => {
                        tracing::info!(host = %host, reason = %why, "tunnel closed");
                        observe::finish(&gw, &log, 200, 0);
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "CONNECT upgrade failed");
                observe::finish(&gw, &log, 200, 0);
            }
        }
        drop(slot);
    });
    Response::new(Empty::new().map_err(|never| match never {}).boxed())
}

async fn run_tunnel<C>(
    mut client: C,
    mut upstream: TcpStream,
    host: &NormalHost,
    port: u16,
    policy: &Policy,
    idle: Duration,
) -> Result<(u64, u64), String>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let sent = pass_first_flight(&mut client, &mut upstream, host, port, policy).await?;
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
async fn pass_first_flight<C: tokio::io::AsyncRead + Unpin>(
    client: &mut C,
    upstream: &mut TcpStream,
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
