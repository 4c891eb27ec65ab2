//! The original destination of a redirected (transparent) connection, and the
//! checks on it: where the client really sent its packets, whether that is the
//! gateway itself (a loop), and whether the name the client gave (Host, SNI)
//! leads there.
//!
//! - [`destination`]: `SO_ORIGINAL_DST` (IPv4) or `IP6T_SO_ORIGINAL_DST`
//!   (IPv6) under REDIRECT; the socket's local address under TPROXY, or when
//!   conntrack knows nothing of the connection (then it usually is the
//!   gateway's own address, refused as a loop).
//! - [`is_gateway_itself`]: one of the gateway's listeners, or any address of
//!   this host (probed by binding a UDP socket to it: no address list to keep
//!   in step; with `net.ipv4.ip_nonlocal_bind=1` every address looks local and
//!   every connection is refused: closed, not open).
//! - [`agreeing`]: the name resolved through the gateway's own resolver and the
//!   destination guard must have the original destination's address among its
//!   answers; then exactly that address is dialled, never a fresh answer.
//!
//! Limits: Linux only (the socket options). Called by `transparent` (the
//! listeners) and by the legs (`forward`, `intercept`) when a connection came
//! in transparently.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use super::gateway::Gateway;
use super::parent::UpstreamStream;
use super::respond::Refusal;
use super::upstream::DialError;
use crate::net_guard::{canonical, DestinationDenied};
use crate::policy::NormalHost;

/// Where the client sent this connection before it was redirected to us.
pub(crate) fn destination(stream: &TcpStream, tproxy: bool) -> std::io::Result<SocketAddr> {
    let local = stream.local_addr()?;
    if tproxy {
        return Ok(local);
    }
    let sock = socket2::SockRef::from(stream);
    let v4 = canonical(local.ip()).is_ipv4();
    let got = if v4 {
        sock.original_dst_v4()
    } else {
        sock.original_dst_v6()
    };
    Ok(match got.ok().and_then(|a| a.as_socket()) {
        Some(a) => SocketAddr::new(canonical(a.ip()), a.port()),
        // No conntrack entry: not redirected; the loop check refuses it.
        None => SocketAddr::new(canonical(local.ip()), local.port()),
    })
}

/// Is `orig` the gateway itself: one of its listeners, or an address of this
/// host (on any port)?
pub(crate) fn is_gateway_itself(gw: &Gateway, orig: SocketAddr) -> bool {
    if gw.dialer.guard.check(orig) == Err(DestinationDenied::Gateway) {
        return true;
    }
    is_local_address(orig.ip())
}

/// Can this host bind `ip`? Then it is one of its own addresses.
fn is_local_address(ip: IpAddr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return true;
    }
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The refusal for a connection whose original destination is the gateway.
pub(crate) fn loop_refusal(orig: SocketAddr) -> Refusal {
    Refusal::DestinationGuard {
        reason: DestinationDenied::Gateway,
        what: format!("A redirected connection to the gateway itself ({orig})"),
    }
}

/// The addresses to dial for `host` when the client sent its packets to
/// `orig`: `[orig]`, once `host` (an IP literal, or a name resolved by the
/// gateway, learned for `site`) is seen to lead there. Otherwise refused
/// (`host-mismatch`): the client named one site and sent its packets to
/// another address.
pub(crate) async fn agreeing(
    gw: &Gateway,
    host: &NormalHost,
    orig: SocketAddr,
    site: Option<&str>,
) -> Result<Vec<SocketAddr>, Refusal> {
    let want = canonical(orig.ip());
    let agrees = match host {
        NormalHost::Ip(ip) => canonical(*ip) == want,
        NormalHost::Domain(_) => gw
            .dialer
            .resolve_learning(host, orig.port(), site)
            .await
            .map_err(|e| super::pipeline::dial_refusal(e, host, orig.port()))?
            .iter()
            .any(|a| canonical(a.ip()) == want),
    };
    if !agrees {
        return Err(mismatch(host, orig));
    }
    Ok(vec![orig])
}

/// The refusal for a name that does not lead to the original destination.
pub(crate) fn mismatch(host: &NormalHost, orig: SocketAddr) -> Refusal {
    Refusal::DestinationGuard {
        reason: DestinationDenied::HostMismatch,
        what: format!(
            "A request for {host} sent to {}, which is not an address of {host},",
            orig.ip()
        ),
    }
}

/// A connection for plain HTTP to `host` that came in for `orig`: to `orig`
/// itself once [`agreeing`] holds (through the guard), or through the parent
/// proxy by name (the name was checked to lead to `orig`).
pub(crate) async fn open_http(
    gw: &Gateway,
    host: &NormalHost,
    port: u16,
    site: Option<&str>,
    orig: SocketAddr,
) -> Result<UpstreamStream, Refusal> {
    let addrs = agreeing(gw, host, orig, site).await?;
    let dialled = match gw.dialer.parent_for(host) {
        None => gw
            .dialer
            .dial_addrs(host, port, addrs)
            .await
            .map(|(tcp, _)| UpstreamStream::tcp(tcp)),
        Some(_) => gw
            .dialer
            .open_http(host, port, site)
            .await
            .map(|(stream, _)| stream),
    };
    dialled.map_err(|e: DialError| super::pipeline::dial_refusal(e, host, port))
}
