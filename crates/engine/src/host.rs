//! Host names and domain patterns.
//!
//! Hosts are compared lowercased, without a trailing dot, IDNs as punycode. A pattern
//! is an exact host or `*.suffix`, which matches any subdomain of `suffix` but never
//! `suffix` itself nor `badsuffix`. When a host matches patterns of two sites, the
//! more specific one wins: exact beats any wildcard, a longer wildcard suffix beats a
//! shorter one. An IP literal never matches a site.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

/// A request's host after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NormalHost {
    /// A DNS name: lowercase ASCII (punycode), no trailing dot.
    Domain(String),
    /// An IP literal in any of its spellings (`127.1`, `0x7f000001`, `[::1]`).
    Ip(IpAddr),
}

impl NormalHost {
    pub fn as_domain(&self) -> Option<&str> {
        match self {
            NormalHost::Domain(d) => Some(d),
            NormalHost::Ip(_) => None,
        }
    }

    /// The host as it is written in a URL authority (IPv6 in brackets).
    pub fn to_authority_host(&self) -> String {
        match self {
            NormalHost::Domain(d) => d.clone(),
            NormalHost::Ip(IpAddr::V4(v4)) => dotted_quad(*v4),
            NormalHost::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
        }
    }
}

impl std::fmt::Display for NormalHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NormalHost::Domain(d) => f.write_str(d),
            other => f.write_str(&other.to_authority_host()),
        }
    }
}

/// Normalises a host as a URL parser does (WHATWG host parsing: numeric IPv4 forms,
/// IDNA to punycode, lowercase), then drops one trailing dot. `None` for hosts
/// that no URL could carry.
pub fn normalize_host(raw: &str) -> Option<NormalHost> {
    if raw.is_empty() || raw.len() > 253 + 2 {
        return None;
    }
    let trimmed = raw.strip_suffix('.').unwrap_or(raw);
    if trimmed.is_empty() {
        return None;
    }
    if is_plain_domain(trimmed) {
        return Some(NormalHost::Domain(trimmed.to_string()));
    }
    if let Some(v4) = plain_dotted_quad(trimmed) {
        return Some(NormalHost::Ip(IpAddr::V4(v4)));
    }
    parse_with_url(trimmed)
}

/// `a.b.c.d` with four decimal octets of 0-255 and no leading zeros: the form
/// the WHATWG parser would give back unchanged (a leading zero is octal there,
/// so those go to the parser). Requests that address a host by its plain IPv4
/// address skip the parser.
fn plain_dotted_quad(host: &str) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    // Split on bytes: `str::split` searches with memchr, which costs more
    // than it saves on parts of at most three bytes.
    let mut parts = host.as_bytes().split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty()
            || part.len() > 3
            || (part.len() > 1 && part[0] == b'0')
            || !part.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let value = part.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        *octet = u8::try_from(value).ok()?;
    }
    parts.next().is_none().then(|| octets.into())
}

/// An IPv4 address as `a.b.c.d`, without the formatting machinery
/// (`Ipv4Addr`'s `Display` supports padding and costs several times more; the
/// proxy formats an address or two for every request).
pub fn dotted_quad(ip: std::net::Ipv4Addr) -> String {
    // Into a fixed buffer, then one copy: `String::push` checks capacity and
    // encodes a char for every digit.
    let mut buf = [0u8; 15];
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            buf[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            buf[len] = b'0' + (octet / 10) % 10;
            len += 1;
        }
        buf[len] = b'0' + octet % 10;
        len += 1;
    }
    std::str::from_utf8(&buf[..len])
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The WHATWG host parser (IDNA, numeric IPv4 forms, IPv6) and our character rules.
fn parse_with_url(trimmed: &str) -> Option<NormalHost> {
    match url::Host::parse(trimmed).ok()? {
        url::Host::Domain(d) => {
            let d = d.strip_suffix('.').unwrap_or(&d).to_string();
            if d.is_empty()
                || d.starts_with('.')
                || d.contains("..")
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            {
                return None;
            }
            Some(NormalHost::Domain(d))
        }
        url::Host::Ipv4(v4) => Some(NormalHost::Ip(IpAddr::V4(v4))),
        url::Host::Ipv6(v6) => Some(NormalHost::Ip(IpAddr::V6(v6))),
    }
}

/// Is `host` already in the form the WHATWG host parser would give: lowercase
/// ASCII letters, digits and hyphens in non-empty labels, no punycode label to
/// validate, and a last label starting with a letter (so it cannot be one of the
/// numeric IPv4 forms)? Most requests name such a host; they skip the parser.
fn is_plain_domain(host: &str) -> bool {
    // One pass: every byte a lowercase letter, digit, `-` or `.`; no empty
    // label (a leading `.`, `..`, a trailing `.`); no label starting `xn--`
    // (punycode goes to the parser); the last label starting with a letter.
    let bytes = host.as_bytes();
    let mut label_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if i == label_start && bytes[i..].starts_with(b"xn--") {
            return false;
        }
        if b == b'.' {
            if i == label_start {
                return false;
            }
            label_start = i + 1;
        } else if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return false;
        }
    }
    bytes.get(label_start).is_some_and(u8::is_ascii_lowercase)
}

/// A CIDR block of a site's `networks:` (`192.0.2.0/24`, `2001:db8::/32`).
/// IPv4-mapped IPv6 blocks are kept as the IPv4 block they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Parses `address/prefix`. Refuses a block with bits set after the prefix
    /// (a typo as often as not), a missing prefix, and blocks wider than /8
    /// (IPv4) or /16 (IPv6), which no single site publishes.
    pub fn parse(raw: &str) -> Result<IpNetwork, String> {
        let Some((a, p)) = raw.trim().split_once('/') else {
            return Err(format!(
                "`{raw}` is not a CIDR block: write address/prefix, e.g. `192.0.2.0/24` (`/32` for one address)"
            ));
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{raw}`: `{a}` is not an IP address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("`{raw}`: `{p}` is not a prefix length"))?;
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() && prefix >= 96 => (
                IpAddr::V4(
                    v6.to_ipv4_mapped()
                        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                ),
                prefix - 96,
            ),
            other => (other, prefix),
        };
        let (bits, min) = match addr {
            IpAddr::V4(_) => (32u8, 8u8),
            IpAddr::V6(_) => (128u8, 16u8),
        };
        if prefix > bits {
            return Err(format!("`{raw}`: the prefix is longer than {bits} bits"));
        }
        if prefix < min {
            return Err(format!(
                "`{raw}` is wider than /{min}: no site publishes a range that large"
            ));
        }
        let net = IpNetwork { addr, prefix };
        if net.masked(addr) != addr {
            return Err(format!(
                "`{raw}` has bits set after the prefix; write `{}/{prefix}`",
                net.masked(addr)
            ));
        }
        Ok(net)
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let m = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & m).into())
            }
            IpAddr::V6(v6) => {
                let m = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & m).into())
            }
        }
    }

    /// Does the block hold `ip` (an IPv4-mapped address compared as IPv4)?
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && self.masked(ip) == self.addr
    }
}

impl std::fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A parsed domain pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainPattern {
    Exact(String),
    /// `*.suffix`: the suffix, without the leading `*.`.
    Wildcard(String),
}

impl DomainPattern {
    /// Parses `example.com` or `*.example.com`; IDNs are converted to punycode.
    pub fn parse(raw: &str) -> Result<DomainPattern, String> {
        let (wild, rest) = match raw.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, raw),
        };
        if rest.contains('*') {
            return Err(format!(
                "`{raw}` is not a domain pattern: `*` is allowed only as a leading `*.`"
            ));
        }
        match normalize_host(rest) {
            Some(NormalHost::Domain(d)) => Ok(if wild {
                DomainPattern::Wildcard(d)
            } else {
                DomainPattern::Exact(d)
            }),
            Some(NormalHost::Ip(_)) => Err(format!(
                "`{raw}` is an IP address: sites are named by domain (an IP literal never matches a site)"
            )),
            None => Err(format!("`{raw}` is not a valid domain")),
        }
    }

    /// Does this pattern match the normalised domain `host`?
    pub fn matches(&self, host: &str) -> bool {
        match self {
            DomainPattern::Exact(d) => d == host,
            DomainPattern::Wildcard(s) => {
                host.len() > s.len() + 1
                    && host.ends_with(s.as_str())
                    && host.as_bytes()[host.len() - s.len() - 1] == b'.'
            }
        }
    }
}

/// Maps hosts to the site (an index) whose most specific pattern matches.
#[derive(Debug, Default, Clone)]
pub struct HostTable {
    // FxHash: filled from the policy only and looked up (several times per
    // request) with the request's host, which never inserts, so no input can
    // crowd a bucket; SipHash was most of a lookup's cost.
    exact: FxHashMap<String, u32>,
    wildcard: FxHashMap<String, u32>,
}

impl HostTable {
    /// Adds a pattern for `site`. Returns the site that already holds the very same
    /// pattern, if any (a tie, which the caller reports).
    pub fn insert(&mut self, pattern: &DomainPattern, site: u32) -> Option<u32> {
        let (map, key) = match pattern {
            DomainPattern::Exact(d) => (&mut self.exact, d),
            DomainPattern::Wildcard(s) => (&mut self.wildcard, s),
        };
        match map.get(key) {
            Some(&other) if other != site => Some(other),
            Some(_) => None,
            None => {
                map.insert(key.clone(), site);
                None
            }
        }
    }

    /// The site for a normalised domain: exact first, then wildcards from the
    /// longest suffix to the shortest.
    pub fn lookup(&self, host: &str) -> Option<u32> {
        if let Some(&s) = self.exact.get(host) {
            return Some(s);
        }
        let mut rest = host;
        while let Some(i) = rest.find('.') {
            rest = &rest[i + 1..];
            if let Some(&s) = self.wildcard.get(rest) {
                return Some(s);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(s: &str) -> String {
        match normalize_host(s) {
            Some(NormalHost::Domain(d)) => d,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_parser() {
        for h in [
            "www.social.test",
            "localhost",
            "a-b.c-d.example",
            "x1.y2.z3",
            "123.example.com",
            "example.c0m",
            "a..b",
            ".a.b",
            "xn--bcher-kva.example",
            "a.xn--bcher-kva",
            "127.0.0.1",
            "0x7f.1",
            "1.2.3.0x4",
            "a.b.0x7f",
            "host.123",
            "WWW.Social.Test",
            "b\u{fc}cher.example",
            "a_b.example",
            "-lead.example",
        ] {
            if is_plain_domain(h) {
                assert_eq!(
                    Some(NormalHost::Domain(h.to_string())),
                    parse_with_url(h),
                    "{h}"
                );
            }
        }
        assert!(is_plain_domain("www.social.test"));
        assert!(!is_plain_domain("127.0.0.1"));
        assert!(!is_plain_domain("a.b.0x7f"));
        assert!(!is_plain_domain("xn--bcher-kva.example"));
        assert!(!is_plain_domain("WWW.social.test"));
    }

    /// The one-pass check is the rule it replaced, spelled out: for every
    /// string of up to six bytes over an alphabet that makes each case.
    #[test]
    fn plain_domain_check_is_the_spelled_out_rule() {
        fn spelled_out(host: &str) -> bool {
            let bytes = host.as_bytes();
            let last = host.rsplit('.').next().unwrap_or("");
            !bytes.is_empty()
                && bytes[0] != b'.'
                && last.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
                && bytes.iter().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.'
                })
                && !host.contains("..")
                && !host.starts_with("xn--")
                && !host.contains(".xn--")
        }
        let alphabet = ['x', 'n', '-', '.', '1', 'A'];
        let mut hosts = vec![String::new()];
        let mut longest = vec![String::new()];
        for _ in 0..6 {
            longest = longest
                .iter()
                .flat_map(|h| alphabet.iter().map(move |c| format!("{h}{c}")))
                .collect();
            hosts.extend(longest.iter().cloned());
        }
        for h in &hosts {
            assert_eq!(is_plain_domain(h), spelled_out(h), "{h:?}");
        }
        assert!(hosts.iter().any(|h| is_plain_domain(h)));
    }

    #[test]
    fn plain_dotted_quads_agree_with_the_parser() {
        for h in [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "10.20.30.40",
            "1.2.3.256",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.00",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            "1.2.3.4a",
            "0x7f.0.0.1",
            "1000.2.3.4",
            "",
        ] {
            if let Some(v4) = plain_dotted_quad(h) {
                assert_eq!(
                    parse_with_url(h),
                    Some(NormalHost::Ip(IpAddr::V4(v4))),
                    "{h}"
                );
                assert_eq!(dotted_quad(v4), h);
            }
        }
        assert!(plain_dotted_quad("127.0.0.1").is_some());
        assert!(plain_dotted_quad("01.2.3.4").is_none());
        assert!(plain_dotted_quad("1.2.3.256").is_none());
        for ip in ["0.0.0.0", "9.99.100.255", "127.0.0.1", "192.168.10.7"] {
            let v4: std::net::Ipv4Addr = ip.parse().unwrap();
            assert_eq!(dotted_quad(v4), v4.to_string());
        }
    }

    #[test]
    fn normalisation() {
        assert_eq!(dom("WWW.LinkedIn.COM."), "www.linkedin.com");
        assert_eq!(dom("bücher.example"), "xn--bcher-kva.example");
        for form in ["2130706434", "0x7f000002", "127.0.0.2", "0177.0.0.2"] {
            assert_eq!(
                normalize_host(form),
                Some(NormalHost::Ip("127.0.0.2".parse().unwrap())),
                "{form}"
            );
        }
        assert_eq!(
            normalize_host("127.1"),
            Some(NormalHost::Ip("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            normalize_host("[::ffff:127.0.0.2]"),
            Some(NormalHost::Ip("::ffff:127.0.0.2".parse().unwrap()))
        );
        assert_eq!(normalize_host(""), None);
        assert_eq!(normalize_host("a b"), None);
        assert_eq!(normalize_host("."), None);
    }

    #[test]
    fn networks() {
        let n = IpNetwork::parse("127.0.0.0/8").unwrap();
        assert!(n.contains("127.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!n.contains("128.0.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let m = IpNetwork::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(m.to_string(), "10.0.0.0/8");
        let v6 = IpNetwork::parse("2a03:2880::/32").unwrap();
        assert!(v6.contains("2a03:2880:f12f::1".parse().unwrap()));
        assert!(!v6.contains("2a03:2881::1".parse().unwrap()));
        for bad in [
            "127.0.0.1",
            "10.0.0.1/8",
            "0.0.0.0/0",
            "10.0.0.0/33",
            "x/8",
            "::/0",
        ] {
            assert!(IpNetwork::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcard_rules() {
        let p = DomainPattern::parse("*.x.com").unwrap();
        assert!(p.matches("api.x.com"));
        assert!(p.matches("a.b.x.com"));
        assert!(!p.matches("x.com"));
        assert!(!p.matches("evilx.com"));
        assert!(!p.matches("api.evilx.com"));
        assert!(DomainPattern::parse("a.*.com").is_err());
        assert!(DomainPattern::parse("10.0.0.1").is_err());
    }

    #[test]
    fn most_specific_wins() {
        let mut t = HostTable::default();
        t.insert(&DomainPattern::parse("*.facebook.com").unwrap(), 0);
        t.insert(&DomainPattern::parse("*.work.facebook.com").unwrap(), 1);
        t.insert(&DomainPattern::parse("www.facebook.com").unwrap(), 2);
        assert_eq!(t.lookup("m.facebook.com"), Some(0));
        assert_eq!(t.lookup("a.work.facebook.com"), Some(1));
        assert_eq!(t.lookup("www.facebook.com"), Some(2));
        assert_eq!(t.lookup("facebook.com"), None);
        assert_eq!(t.lookup("evilfacebook.com"), None);
        assert_eq!(
            t.insert(&DomainPattern::parse("*.facebook.com").unwrap(), 3),
            Some(0)
        );
    }
}
