//! The destination guard: which resolved addresses the gateway may dial.
//!
//! Every address a name resolves to (static `upstream.resolve` answers included)
//! is classified; anything but a public unicast address is refused unless
//! `upstream.allow_destinations` lists it. The gateway's own listening addresses
//! are refused always. IPv4-mapped and IPv4-compatible IPv6 forms, NAT64 and 6to4
//! are classified by the IPv4 address they carry. Pure: classification reads no
//! network. Also which IP literals a client may name (`allow_ip_literals`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The kind of an address, for the guard and for metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    /// RFC 1918 and IPv6 unique-local (fc00::/7).
    Private,
    /// Carrier-grade NAT, 100.64.0.0/10.
    SharedCgnat,
    /// 169.254.0.0/16 (cloud metadata lives here) and fe80::/10.
    LinkLocal,
    Multicast,
    /// 0.0.0.0/8, ::, broadcast.
    Unspecified,
    /// Documentation, benchmarking, reserved and other never-routable ranges.
    Reserved,
}

impl AddressClass {
    /// A fixed label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::SharedCgnat => "cgnat",
            AddressClass::LinkLocal => "link_local",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Reserved => "reserved",
        }
    }
}

/// Reduces IPv6 forms that carry an IPv4 address to that address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            // IPv4-compatible ::a.b.c.d (deprecated, but some stacks still route it).
            if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
                return IpAddr::V4(embedded_v4(s[6], s[7]));
            }
            // NAT64 well-known prefix 64:ff9b::/96.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return IpAddr::V4(embedded_v4(s[6], s[7]));
            }
            // 6to4 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
            if s[0] == 0x2002 {
                return IpAddr::V4(embedded_v4(s[1], s[2]));
            }
            ip
        }
    }
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
}

/// Classifies an address (after [`canonical`]).
pub fn classify(ip: IpAddr) -> AddressClass {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let o = ip.octets();
    if o[0] == 0 || ip.is_broadcast() {
        return AddressClass::Unspecified;
    }
    if o[0] == 127 {
        return AddressClass::Loopback;
    }
    if ip.is_private() {
        return AddressClass::Private;
    }
    if o[0] == 100 && (o[1] & 0xc0) == 64 {
        return AddressClass::SharedCgnat;
    }
    if o[0] == 169 && o[1] == 254 {
        return AddressClass::LinkLocal;
    }
    if ip.is_multicast() {
        return AddressClass::Multicast;
    }
    let reserved = (o[0] == 192 && o[1] == 0 && (o[2] == 0 || o[2] == 2)) // IETF assignments, TEST-NET-1
        || (o[0] == 198 && o[1] == 51 && o[2] == 100) // TEST-NET-2
        || (o[0] == 203 && o[1] == 0 && o[2] == 113) // TEST-NET-3
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 6to4 relay anycast
        || o[0] >= 240; // reserved for future use
    if reserved {
        return AddressClass::Reserved;
    }
    AddressClass::Public
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if (s[0] & 0xfe00) == 0xfc00 {
        return AddressClass::Private;
    }
    if (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xffc0) == 0xfec0 {
        return AddressClass::LinkLocal;
    }
    if (s[0] & 0xff00) == 0xff00 {
        return AddressClass::Multicast;
    }
    let reserved = (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments incl. Teredo
        || (s[0] & 0xe000) != 0x2000; // outside global unicast 2000::/3
    if reserved {
        return AddressClass::Reserved;
    }
    AddressClass::Public
}

/// Why a destination was refused; labels of `socialgate_destination_denied_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationDenied {
    Port,
    /// A non-public address class.
    Address(AddressClass),
    /// One of the gateway's own listeners.
    Gateway,
    /// The client named an IP address (not in `upstream.allow_ip_literals`),
    /// or an address of an inspected site, which is reached by name only.
    IpLiteral,
    /// The destination's addresses belong to more than one site: it cannot be
    /// decided as one of them.
    AmbiguousSite,
    /// Transparent mode: the name the client gave (Host, SNI) does not lead to
    /// the address it sent its packets to.
    HostMismatch,
}

impl DestinationDenied {
    pub fn label(self) -> &'static str {
        match self {
            DestinationDenied::Port => "port",
            DestinationDenied::Address(c) => c.as_str(),
            DestinationDenied::Gateway => "gateway",
            DestinationDenied::IpLiteral => "ip-literal",
            DestinationDenied::AmbiguousSite => "ambiguous-site",
            DestinationDenied::HostMismatch => "host-mismatch",
        }
    }
}

/// The guard as configured.
#[derive(Debug, Clone, Default)]
pub struct DestinationGuard {
    pub allow: Vec<IpNet>,
    pub allowed_ports: Vec<u16>,
    /// The gateway's own listening addresses.
    pub own: Vec<SocketAddr>,
    /// `upstream.allow_ip_literals`.
    pub ip_literals: Vec<IpNet>,
}

impl DestinationGuard {
    /// May a request or CONNECT name this port at all?
    pub fn check_port(&self, port: u16) -> Result<(), DestinationDenied> {
        if self.allowed_ports.contains(&port) {
            Ok(())
        } else {
            Err(DestinationDenied::Port)
        }
    }

    /// May the gateway dial this resolved address?
    pub fn check(&self, addr: SocketAddr) -> Result<(), DestinationDenied> {
        self.check_port(addr.port())?;
        let ip = canonical(addr.ip());
        if self.is_own(ip, addr.port()) {
            return Err(DestinationDenied::Gateway);
        }
        let class = classify(ip);
        if class == AddressClass::Public {
            return Ok(());
        }
        if self
            .allow
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&addr.ip()))
        {
            return Ok(());
        }
        Err(DestinationDenied::Address(class))
    }

    /// May a client name this address as an IP literal (as an unlisted
    /// destination)? Only inside `upstream.allow_ip_literals`.
    pub fn ip_literal_allowed(&self, ip: IpAddr) -> bool {
        let c = canonical(ip);
        self.ip_literals
            .iter()
            .any(|net| net.contains(&c) || net.contains(&ip))
    }

    fn is_own(&self, ip: IpAddr, port: u16) -> bool {
        self.own.iter().any(|own| {
            own.port() == port
                && (canonical(own.ip()) == ip
                    || (own.ip().is_unspecified() && classify(ip) != AddressClass::Public))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_the_metric_labels() {
        use AddressClass as C;
        use DestinationDenied as D;
        let classes = [
            C::Loopback,
            C::Private,
            C::SharedCgnat,
            C::LinkLocal,
            C::Multicast,
            C::Unspecified,
            C::Reserved,
        ];
        // Exhaustive matches: a new variant fails to compile here until it is
        // listed (and its label added to the metric's fixed set).
        for c in classes {
            match c {
                C::Public
                | C::Loopback
                | C::Private
                | C::SharedCgnat
                | C::LinkLocal
                | C::Multicast
                | C::Unspecified
                | C::Reserved => {}
            }
        }
        let mut all = vec![D::Port, D::Gateway];
        all.extend(classes.map(D::Address));
        all.extend([D::IpLiteral, D::AmbiguousSite, D::HostMismatch]);
        for d in &all {
            match d {
                D::Port
                | D::Gateway
                | D::Address(_)
                | D::IpLiteral
                | D::AmbiguousSite
                | D::HostMismatch => {}
            }
        }
        let labels: Vec<&str> = all.iter().map(|d| d.label()).collect();
        assert_eq!(labels, crate::metrics::DESTINATION_DENIED_REASONS);
        // A public address is never refused as such.
        assert!(!labels.contains(&C::Public.as_str()));
    }

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_refused_range() {
        for (addr, want) in [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.255.254", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("10.0.0.1", AddressClass::Private),
            ("10.255.255.255", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::SharedCgnat),
            ("100.127.255.255", AddressClass::SharedCgnat),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("fc00::1", AddressClass::Private),
            ("fd12:3456::1", AddressClass::Private),
            ("224.0.0.1", AddressClass::Multicast),
            ("239.255.255.250", AddressClass::Multicast),
            ("ff02::1", AddressClass::Multicast),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("255.255.255.255", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("192.0.2.1", AddressClass::Reserved),
            ("198.18.0.1", AddressClass::Reserved),
            ("240.0.0.1", AddressClass::Reserved),
            ("2001:db8::1", AddressClass::Reserved),
            // IPv6 forms carrying IPv4 addresses.
            ("::ffff:127.0.0.2", AddressClass::Loopback),
            ("::ffff:10.1.2.3", AddressClass::Private),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("::127.0.0.2", AddressClass::Loopback),
            ("64:ff9b::10.0.0.1", AddressClass::Private),
            ("2002:7f00:0001::1", AddressClass::Loopback),
            ("2002:c0a8:0101::1", AddressClass::Private),
        ] {
            assert_eq!(class(addr), want, "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2a00:1450:4009::1",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(class(addr), AddressClass::Public, "{addr}");
        }
        // Boundaries just outside the refused ranges.
        assert_eq!(class("100.63.255.255"), AddressClass::Public);
        assert_eq!(class("172.15.255.255"), AddressClass::Public);
        assert_eq!(class("169.253.0.1"), AddressClass::Public);
    }

    #[test]
    fn guard_ports_allowlist_and_self() {
        let guard = DestinationGuard {
            allow: vec!["127.0.0.1/32".parse().unwrap()],
            allowed_ports: vec![80, 443, 8080],
            own: vec!["127.0.0.1:8080".parse().unwrap()],
            ip_literals: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(guard.ip_literal_allowed("127.0.0.9".parse().unwrap()));
        assert!(guard.ip_literal_allowed("::ffff:127.0.0.9".parse().unwrap()));
        assert!(!guard.ip_literal_allowed("10.0.0.1".parse().unwrap()));
        assert_eq!(
            guard.check("8.8.8.8:22".parse().unwrap()),
            Err(DestinationDenied::Port)
        );
        assert_eq!(guard.check("8.8.8.8:443".parse().unwrap()), Ok(()));
        assert_eq!(guard.check("127.0.0.1:443".parse().unwrap()), Ok(()));
        assert_eq!(
            guard.check("127.0.0.2:443".parse().unwrap()),
            Err(DestinationDenied::Address(AddressClass::Loopback))
        );
        assert_eq!(
            guard.check("[::ffff:127.0.0.2]:443".parse().unwrap()),
            Err(DestinationDenied::Address(AddressClass::Loopback))
        );
        // The gateway's own listener stays refused even inside allow_destinations.
        assert_eq!(
            guard.check("127.0.0.1:8080".parse().unwrap()),
            Err(DestinationDenied::Gateway)
        );
        assert_eq!(
            guard.check("[::ffff:127.0.0.1]:8080".parse().unwrap()),
            Err(DestinationDenied::Gateway)
        );
    }
}
