//! Kerberos single sign-on: `Proxy-Authorization: Negotiate <token>` (SPNEGO,
//! RFC 4559) accepted against a service keytab through MIT Kerberos' GSSAPI
//! (the `libgssapi` crate).
//!
//! - One round trip: the client's first token must complete the context, as a
//!   Kerberos AP-REQ (wrapped in SPNEGO or not) does. Multi-leg exchanges (NTLM,
//!   NegoEx) are refused, and NTLM is never accepted.
//! - The keytab is named to MIT Kerberos through `KRB5_KTNAME`, which the
//!   process must have before it starts threads (`socialgate run` sets it; see
//!   [`prepare_environment`]). The acceptor credential is acquired once; keys are
//!   read from the keytab at each handshake, so a rotated keytab takes effect
//!   without a restart.
//! - Only clients of the service's own realm are accepted; the user is the
//!   principal's name without the realm, lowercased (`Alice@COUNCIL.EXAMPLE` is
//!   `alice`), as Active Directory names are case-insensitive.
//! - MIT's replay cache refuses a token seen before.

use std::path::Path;
use std::time::Duration;

use crate::settings::KerberosSettings;

/// A completed handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The user name: the principal without its realm, lowercased.
    pub user: String,
    pub realm: String,
    /// How long the client's ticket stays valid.
    pub lifetime: Duration,
}

/// Why a Negotiate token was refused; labels of `socialgate_kerberos_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KerberosFailure {
    /// Not base64, or empty.
    Malformed,
    /// An NTLM token (not supported).
    Ntlm,
    /// SPNEGO offering no mechanism we accept.
    UnsupportedMechanism,
    /// The client wanted more than one round trip.
    ContinueNeeded,
    /// A token that is not a valid Kerberos / SPNEGO token.
    BadToken,
    /// The ticket or authenticator failed its integrity check (forged, or made
    /// for another key).
    Integrity,
    /// The ticket has expired.
    Expired,
    /// The client's clock differs from ours by more than the allowed skew.
    ClockSkew,
    /// A token seen before.
    Replay,
    /// The ticket is for a service principal or key version the keytab lacks.
    WrongPrincipal,
    /// A client from another realm.
    ForeignRealm,
    /// The keytab could not be used.
    Keytab,
    Other,
}

impl KerberosFailure {
    pub fn label(&self) -> &'static str {
        match self {
            KerberosFailure::Malformed => "malformed",
            KerberosFailure::Ntlm => "ntlm",
            KerberosFailure::UnsupportedMechanism => "unsupported_mechanism",
            KerberosFailure::ContinueNeeded => "continue_needed",
            KerberosFailure::BadToken => "bad_token",
            KerberosFailure::Integrity => "integrity",
            KerberosFailure::Expired => "expired",
            KerberosFailure::ClockSkew => "clock_skew",
            KerberosFailure::Replay => "replay",
            KerberosFailure::WrongPrincipal => "wrong_principal",
            KerberosFailure::ForeignRealm => "foreign_realm",
            KerberosFailure::Keytab => "keytab",
            KerberosFailure::Other => "other",
        }
    }

    /// Every label, for tests and dashboards.
    pub const ALL: [KerberosFailure; 13] = [
        KerberosFailure::Malformed,
        KerberosFailure::Ntlm,
        KerberosFailure::UnsupportedMechanism,
        KerberosFailure::ContinueNeeded,
        KerberosFailure::BadToken,
        KerberosFailure::Integrity,
        KerberosFailure::Expired,
        KerberosFailure::ClockSkew,
        KerberosFailure::Replay,
        KerberosFailure::WrongPrincipal,
        KerberosFailure::ForeignRealm,
        KerberosFailure::Keytab,
        KerberosFailure::Other,
    ];
}

/// Quick checks on a decoded token before it reaches GSSAPI.
pub fn precheck(token: &[u8]) -> Result<(), KerberosFailure> {
    if token.is_empty() {
        return Err(KerberosFailure::Malformed);
    }
    if token.starts_with(b"NTLMSSP\0") {
        return Err(KerberosFailure::Ntlm);
    }
    Ok(())
}

/// The keytab path in the form `KRB5_KTNAME` takes.
pub fn ktname(keytab: &Path) -> String {
    let abs = std::path::absolute(keytab).unwrap_or_else(|_| keytab.to_path_buf());
    format!("FILE:{}", abs.display())
}

/// Points MIT Kerberos at the keytab (`KRB5_KTNAME`). Call it before the process
/// starts threads: the environment is shared with C code that reads it without
/// Rust's lock. Does nothing when the variable already names this keytab.
pub fn prepare_environment(keytab: &Path) {
    let want = ktname(keytab);
    if std::env::var("KRB5_KTNAME").ok().as_deref() != Some(want.as_str()) {
        std::env::set_var("KRB5_KTNAME", want);
    }
}

/// Splits `name@REALM` at its last unescaped `@`.
pub fn split_principal(name: &str) -> (&str, &str) {
    let bytes = name.as_bytes();
    let mut at = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'@' => at = Some(i),
            _ => {}
        }
        i += 1;
    }
    match at {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (name, ""),
    }
}

/// The user name for a client principal: realm stripped, lowercased.
pub fn user_of(principal: &str) -> String {
    split_principal(principal).0.to_lowercase()
}

/// Classifies a GSSAPI failure by its routine error and, for the generic
/// `GSS_S_FAILURE`, by MIT's message (minor codes are remapped by the mechglue
/// and cannot be compared with krb5 error codes).
pub fn classify(major: u32, message: &str) -> KerberosFailure {
    let routine = (major >> 16) & 0xff;
    let m = message.to_ascii_lowercase();
    let by_message = || {
        if m.contains("replay") {
            KerberosFailure::Replay
        } else if m.contains("expired") {
            KerberosFailure::Expired
        } else if m.contains("clock skew") {
            KerberosFailure::ClockSkew
        } else if m.contains("integrity") || m.contains("modified") || m.contains("checksum") {
            KerberosFailure::Integrity
        } else if m.contains("wrong principal")
            || m.contains("key version")
            || m.contains("kvno")
            || m.contains("no key table entry")
            || m.contains("key table entry not found")
            || m.contains("cannot find key")
            || m.contains("server not found")
        {
            KerberosFailure::WrongPrincipal
        } else if m.contains("key table") || m.contains("keytab") {
            KerberosFailure::Keytab
        } else if m.contains("asn.1") || m.contains("defective") || m.contains("format") {
            KerberosFailure::BadToken
        } else {
            KerberosFailure::Other
        }
    };
    match routine {
        1 => KerberosFailure::UnsupportedMechanism,
        6 => KerberosFailure::Integrity,
        7 => KerberosFailure::Keytab,
        9 | 10 => match by_message() {
            KerberosFailure::Other => KerberosFailure::BadToken,
            other => other,
        },
        11 | 12 => KerberosFailure::Expired,
        _ => by_message(),
    }
}

#[cfg(feature = "kerberos")]
mod gss {
    use super::*;
    use libgssapi::context::{SecurityContext, ServerCtx};
    use libgssapi::credential::{Cred, CredUsage};
    use libgssapi::name::Name;
    use libgssapi::oid::{
        OidSet, GSS_MECH_KRB5, GSS_MECH_SPNEGO, GSS_NT_HOSTBASED_SERVICE, GSS_NT_KRB5_PRINCIPAL,
    };

    /// Accepts Negotiate tokens with the keys of one keytab.
    pub struct KerberosAcceptor {
        cred: Cred,
    }

    impl std::fmt::Debug for KerberosAcceptor {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("KerberosAcceptor")
        }
    }

    impl KerberosAcceptor {
        /// Acquires the acceptor credential. `KRB5_KTNAME` must already name the
        /// keytab ([`prepare_environment`]).
        pub fn new(principal: Option<&str>) -> Result<KerberosAcceptor, String> {
            let name = match principal {
                None => None,
                Some(p) => Some(import_service_name(p)?),
            };
            let mut mechs = OidSet::new();
            mechs
                .add(GSS_MECH_KRB5)
                .and_then(|_| mechs.add(GSS_MECH_SPNEGO))
                .map_err(|e| format!("GSSAPI: {e}"))?;
            let cred = Cred::acquire(name.as_ref(), None, CredUsage::Accept, Some(&mechs))
                .map_err(|e| {
                    format!(
                        "cannot use the keytab for Kerberos sign-in{}: {e}",
                        principal.map(|p| format!(" as {p}")).unwrap_or_default()
                    )
                })?;
            Ok(KerberosAcceptor { cred })
        }

        /// Runs the acceptor over one client token (blocking: it reads the keytab
        /// and writes the replay cache; call it on the blocking pool).
        pub fn accept(&self, token: &[u8]) -> Result<Accepted, (KerberosFailure, String)> {
            precheck(token).map_err(|f| (f, f.label().to_string()))?;
            let mut ctx = ServerCtx::new(Some(self.cred.clone()));
            match ctx.step(token, None) {
                Ok(_) if ctx.is_complete() => {}
                Ok(_) => {
                    return Err((
                        KerberosFailure::ContinueNeeded,
                        "the client asked for a second round trip, which is not supported (NTLM or NegoEx?)".into(),
                    ))
                }
                Err(e) => {
                    let message = e.to_string();
                    return Err((classify(e.major.bits(), &message), message));
                }
            }
            let info = ctx
                .info()
                .map_err(|e| (KerberosFailure::Other, e.to_string()))?;
            let client = display(&info.source_name)?;
            let service = display(&info.target_name)?;
            let (_, client_realm) = split_principal(&client);
            let (_, service_realm) = split_principal(&service);
            if client_realm.is_empty() || !client_realm.eq_ignore_ascii_case(service_realm) {
                return Err((
                    KerberosFailure::ForeignRealm,
                    format!("a client of realm {client_realm} signed in to {service}; only clients of {service_realm} are accepted"),
                ));
            }
            let user = user_of(&client);
            if user.is_empty() {
                return Err((KerberosFailure::Other, "an empty client name".into()));
            }
            Ok(Accepted {
                user,
                realm: client_realm.to_string(),
                lifetime: info.lifetime,
            })
        }
    }

    fn display(name: &Name) -> Result<String, (KerberosFailure, String)> {
        name.display_name()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| (KerberosFailure::Other, e.to_string()))
    }

    /// `HTTP/host@REALM` as a Kerberos principal; `HTTP/host` as a host-based
    /// service (`HTTP@host`), which matches that key in any realm of the keytab.
    fn import_service_name(p: &str) -> Result<Name, String> {
        let bad = |e: libgssapi::error::Error| format!("kerberos.principal `{p}`: {e}");
        if p.contains('@') {
            Name::new(p.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL)).map_err(bad)
        } else {
            let hostbased = p.replacen('/', "@", 1);
            Name::new(hostbased.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE)).map_err(bad)
        }
    }
}

#[cfg(feature = "kerberos")]
pub use gss::KerberosAcceptor;

/// A build without the `kerberos` feature: configuring Kerberos is an error.
#[cfg(not(feature = "kerberos"))]
#[derive(Debug)]
pub struct KerberosAcceptor;

#[cfg(not(feature = "kerberos"))]
impl KerberosAcceptor {
    pub fn new(_principal: Option<&str>) -> Result<KerberosAcceptor, String> {
        Err("this build of socialgate has no Kerberos support (it was built without the `kerberos` feature); remove identity.kerberos or use a build with it".into())
    }

    pub fn accept(&self, _token: &[u8]) -> Result<Accepted, (KerberosFailure, String)> {
        Err((KerberosFailure::Other, "no Kerberos support".into()))
    }
}

/// One key in a keytab file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeytabEntry {
    /// `HTTP/proxy.council.example@COUNCIL.EXAMPLE`
    pub principal: String,
    pub kvno: u32,
    pub enctype: i32,
}

impl KeytabEntry {
    /// The encryption type's name, as `klist -e` prints it.
    pub fn enctype_name(&self) -> String {
        match self.enctype {
            1 => "des-cbc-crc (weak)".into(),
            3 => "des-cbc-md5 (weak)".into(),
            16 => "des3-cbc-sha1 (weak)".into(),
            17 => "aes128-cts-hmac-sha1-96".into(),
            18 => "aes256-cts-hmac-sha1-96".into(),
            19 => "aes128-cts-hmac-sha256-128".into(),
            20 => "aes256-cts-hmac-sha384-192".into(),
            23 => "rc4-hmac (weak)".into(),
            24 => "rc4-hmac-exp (weak)".into(),
            n => format!("enctype {n}"),
        }
    }

    /// Is this an AES key (what current Active Directory issues tickets with)?
    pub fn is_aes(&self) -> bool {
        (17..=20).contains(&self.enctype)
    }
}

/// Reads the entries of an MIT keytab file (format version 0x502), without the
/// keys themselves: for `socialgate check` and start-up errors for people.
pub fn read_keytab(path: &Path) -> Result<Vec<KeytabEntry>, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read the keytab {}: {e}{}",
            path.display(),
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                " (the gateway's user must be able to read it; keep it mode 0600 owned by that user)"
            } else {
                ""
            }
        )
    })?;
    parse_keytab(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses keytab bytes (see [`read_keytab`]).
pub fn parse_keytab(bytes: &[u8]) -> Result<Vec<KeytabEntry>, String> {
    struct R<'a> {
        b: &'a [u8],
        at: usize,
    }
    impl R<'_> {
        fn take(&mut self, n: usize) -> Result<&[u8], String> {
            let end = self.at.checked_add(n).ok_or("a truncated keytab")?;
            let s = self.b.get(self.at..end).ok_or("a truncated keytab")?;
            self.at = end;
            Ok(s)
        }
        fn u16(&mut self) -> Result<u16, String> {
            let s = self.take(2)?;
            Ok(u16::from_be_bytes([s[0], s[1]]))
        }
        fn u32(&mut self) -> Result<u32, String> {
            let s = self.take(4)?;
            Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        }
        fn string(&mut self) -> Result<String, String> {
            let n = self.u16()? as usize;
            Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
        }
    }
    match bytes.get(..2) {
        Some([5, 2]) => {}
        Some([5, 1]) => {
            return Err("an old (version 1) keytab; make a new one with ktpass or kadmin".into())
        }
        _ => return Err("not a keytab file (it does not start with 0x0502)".into()),
    }
    let mut r = R { b: bytes, at: 2 };
    let mut out = Vec::new();
    while r.at < bytes.len() {
        let size = r.u32()? as i32;
        if size < 0 {
            r.take(size.unsigned_abs() as usize)?;
            continue;
        }
        if size == 0 {
            break;
        }
        let record = r.take(size as usize)?;
        let mut e = R { b: record, at: 0 };
        let components = e.u16()?;
        let realm = e.string()?;
        let mut names = Vec::new();
        for _ in 0..components {
            names.push(e.string()?);
        }
        let _name_type = e.u32()?;
        let _timestamp = e.u32()?;
        let vno8 = e.take(1)?[0] as u32;
        let enctype = e.u16()? as i16 as i32;
        let keylen = e.u16()? as usize;
        e.take(keylen)?;
        let kvno = if record.len() - e.at >= 4 {
            match e.u32()? {
                0 => vno8,
                v => v,
            }
        } else {
            vno8
        };
        out.push(KeytabEntry {
            principal: format!("{}@{realm}", names.join("/")),
            kvno,
            enctype,
        });
    }
    Ok(out)
}

/// Does a keytab entry serve the configured `principal` (`HTTP/host` or
/// `HTTP/host@REALM`; service and host compared case-insensitively)?
pub fn entry_matches(entry: &KeytabEntry, principal: &str) -> bool {
    let (want_name, want_realm) = split_principal(principal);
    let (name, realm) = split_principal(&entry.principal);
    name.eq_ignore_ascii_case(want_name) && (want_realm.is_empty() || realm == want_realm)
}

/// `socialgate check --settings`: reports on the configured keytab on stdout
/// (its keys, whether the configured principal and an AES key are there, the
/// host names browsers must use, whether GSSAPI accepts it); returns the
/// number of problems. Sets `KRB5_KTNAME`, so call it before any thread starts.
pub(crate) fn check_keytab(k: &KerberosSettings) -> usize {
    let entries = match read_keytab(&k.keytab) {
        Err(e) => {
            println!("kerberos: FAIL {e}");
            return 1;
        }
        Ok(entries) => entries,
    };
    let mut problems = 0;
    println!(
        "kerberos: keytab {} holds {} key(s):",
        k.keytab.display(),
        entries.len()
    );
    for e in &entries {
        println!("  {} (kvno {}, {})", e.principal, e.kvno, e.enctype_name());
    }
    if entries.is_empty() {
        println!("kerberos: FAIL the keytab holds no keys");
        return 1;
    }
    if let Some(p) = &k.principal {
        if !entries.iter().any(|e| entry_matches(e, p)) {
            println!("kerberos: FAIL no key for the configured principal {p}");
            problems += 1;
        }
    }
    if !entries.iter().any(|e| e.is_aes()) {
        println!("kerberos: WARNING no AES key: current Windows clients cannot sign in (ktpass -crypto AES256-SHA1)");
    }
    let mut hosts: Vec<String> = entries
        .iter()
        .filter_map(|e| {
            let (name, _) = split_principal(&e.principal);
            let (service, host) = name.split_once('/')?;
            service
                .eq_ignore_ascii_case("HTTP")
                .then(|| host.to_string())
        })
        .collect();
    hosts.dedup();
    if hosts.is_empty() {
        println!(
            "kerberos: WARNING no HTTP/<host> key: browsers ask for HTTP/<the proxy's DNS name>"
        );
    } else {
        println!(
            "kerberos: browsers must be configured with the proxy as {} (a DNS name, not an IP address or another alias) to sign in",
            hosts.join(" or ")
        );
    }
    // MIT Kerberos reads the keytab's name from the environment; no thread of
    // ours has started yet.
    prepare_environment(&k.keytab);
    match KerberosAcceptor::new(k.principal.as_deref()) {
        Ok(_) => println!("kerberos: OK the keytab is usable by GSSAPI"),
        Err(e) => {
            println!("kerberos: FAIL {e}");
            problems += 1;
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(components: &[&str], realm: &str, kvno: u8, enctype: u16) -> Vec<u8> {
        let mut rec = Vec::new();
        rec.extend_from_slice(&(components.len() as u16).to_be_bytes());
        rec.extend_from_slice(&(realm.len() as u16).to_be_bytes());
        rec.extend_from_slice(realm.as_bytes());
        for c in components {
            rec.extend_from_slice(&(c.len() as u16).to_be_bytes());
            rec.extend_from_slice(c.as_bytes());
        }
        rec.extend_from_slice(&1u32.to_be_bytes());
        rec.extend_from_slice(&0u32.to_be_bytes());
        rec.push(kvno);
        rec.extend_from_slice(&enctype.to_be_bytes());
        rec.extend_from_slice(&32u16.to_be_bytes());
        rec.extend_from_slice(&[7u8; 32]);
        let mut out = (rec.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&rec);
        out
    }

    #[test]
    fn keytab_entries() {
        let mut kt = vec![5u8, 2];
        kt.extend(entry(
            &["HTTP", "proxy.council.example"],
            "COUNCIL.EXAMPLE",
            3,
            18,
        ));
        // A hole left by a removed entry.
        kt.extend_from_slice(&(-4i32).to_be_bytes());
        kt.extend_from_slice(&[0; 4]);
        kt.extend(entry(
            &["HTTP", "proxy.council.example"],
            "COUNCIL.EXAMPLE",
            3,
            23,
        ));
        let entries = parse_keytab(&kt).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].principal,
            "HTTP/proxy.council.example@COUNCIL.EXAMPLE"
        );
        assert_eq!((entries[0].kvno, entries[0].is_aes()), (3, true));
        assert_eq!(entries[1].enctype_name(), "rc4-hmac (weak)");
        assert!(entry_matches(&entries[0], "HTTP/PROXY.council.example"));
        assert!(entry_matches(
            &entries[0],
            "HTTP/proxy.council.example@COUNCIL.EXAMPLE"
        ));
        assert!(!entry_matches(&entries[0], "HTTP/other.council.example"));
        assert!(!entry_matches(
            &entries[0],
            "HTTP/proxy.council.example@OTHER"
        ));
        // Truncated or foreign files are errors, never panics.
        for n in 0..kt.len() {
            let _ = parse_keytab(&kt[..n]);
        }
        assert!(parse_keytab(b"hello").is_err());
    }

    #[test]
    fn names_and_failures() {
        assert_eq!(user_of("Alice@COUNCIL.EXAMPLE"), "alice");
        assert_eq!(split_principal("a\\@b@R"), ("a\\@b", "R"));
        assert_eq!(precheck(b"NTLMSSP\0\x01"), Err(KerberosFailure::Ntlm));
        assert_eq!(precheck(b""), Err(KerberosFailure::Malformed));
        let failure = 13 << 16;
        assert_eq!(
            classify(failure, "Unspecified GSS failure. (Request is a replay)"),
            KerberosFailure::Replay
        );
        assert_eq!(
            classify(failure, "x (Ticket expired)"),
            KerberosFailure::Expired
        );
        assert_eq!(
            classify(failure, "x (Clock skew too great)"),
            KerberosFailure::ClockSkew
        );
        assert_eq!(
            classify(9 << 16, "Invalid token was supplied"),
            KerberosFailure::BadToken
        );
        assert_eq!(
            classify(1 << 16, "bad mech"),
            KerberosFailure::UnsupportedMechanism
        );
        let labels: std::collections::HashSet<_> =
            KerberosFailure::ALL.iter().map(|f| f.label()).collect();
        assert_eq!(labels.len(), KerberosFailure::ALL.len());
    }
}
