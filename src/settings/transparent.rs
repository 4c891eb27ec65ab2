//! The `listen_transparent:` key: the ports that take connections a router or
//! firewall redirected to the gateway (nftables/iptables `redirect`, or
//! `tproxy`), for devices that cannot be given a proxy setting.
//!
//! ```yaml
//! listen_transparent: { http: 0.0.0.0:3180, https: 0.0.0.0:3443, tproxy: false }
//! ```
//!
//! Limits: addresses are parsed, not bound (a busy port shows at start-up);
//! at least one of `http` and `https` must be given, and they must differ.
//! `tproxy: true` sets `IP_TRANSPARENT` on the listening sockets (needs
//! `CAP_NET_ADMIN`). Called by [`super::Settings::from_yaml`]; bound by
//! `runtime`, served by `proxy::transparent`.

use std::net::SocketAddr;

use serde::Deserialize;

use super::problems::Problems;
use super::values::parse_listen;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransparent {
    http: Option<String>,
    https: Option<String>,
    tproxy: Option<bool>,
}

/// The transparent listeners (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransparentSettings {
    /// Redirected plain HTTP (port 80 traffic): the Host header names the site.
    pub http: Option<SocketAddr>,
    /// Redirected TLS (port 443 traffic): the ClientHello's SNI names the site.
    pub https: Option<SocketAddr>,
    /// Connections arrive by TPROXY (the local address is the original
    /// destination; the sockets get `IP_TRANSPARENT`), not by REDIRECT.
    pub tproxy: bool,
}

impl TransparentSettings {
    /// Is any transparent listener configured?
    pub fn any(&self) -> bool {
        self.http.is_some() || self.https.is_some()
    }
}

/// Parses `listen_transparent:`; problems at `listen_transparent.http` etc.
pub(super) fn parse(raw: RawTransparent, problems: &mut Problems<'_>) -> TransparentSettings {
    let mut out = TransparentSettings {
        tproxy: raw.tproxy.unwrap_or(false),
        ..Default::default()
    };
    let mut one = |key: &str, value: Option<String>| -> Option<SocketAddr> {
        let value = value?;
        match parse_listen(&value) {
            Ok(a) => Some(a),
            Err(e) => {
                problems.at(
                    &format!("listen_transparent.{key}"),
                    format!("`listen_transparent.{key}`: {e}"),
                );
                None
            }
        }
    };
    let (had_http, had_https) = (raw.http.is_some(), raw.https.is_some());
    out.http = one("http", raw.http);
    out.https = one("https", raw.https);
    if !had_http && !had_https {
        problems.at(
            "listen_transparent",
            "`listen_transparent`: give `http`, `https` or both (e.g. { http: 0.0.0.0:3180, https: 0.0.0.0:3443 }), or leave it out".into(),
        );
    }
    if out.http.is_some() && out.http == out.https {
        problems.at(
            "listen_transparent.https",
            "`listen_transparent.https`: the HTTPS port must differ from the HTTP one".into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::settings::Settings;

    #[test]
    fn both_one_or_none() {
        let s = Settings::from_yaml(
            "s.yaml",
            "listen_transparent: { http: 0.0.0.0:3180, https: \"[::]:3443\" }\n",
        )
        .unwrap();
        assert_eq!(
            s.listen_transparent.http,
            Some("0.0.0.0:3180".parse().unwrap())
        );
        assert_eq!(
            s.listen_transparent.https,
            Some("[::]:3443".parse().unwrap())
        );
        assert!(!s.listen_transparent.tproxy);
        let s = Settings::from_yaml(
            "s.yaml",
            "listen_transparent: { https: 127.0.0.1:3443, tproxy: true }\n",
        )
        .unwrap();
        assert_eq!(s.listen_transparent.http, None);
        assert!(s.listen_transparent.tproxy);
        assert!(!Settings::from_yaml("s.yaml", "listen: 127.0.0.1:3128\n")
            .unwrap()
            .listen_transparent
            .any());
    }

    #[test]
    fn problems_name_the_key_and_line() {
        let err = Settings::from_yaml("s.yaml", "listen_transparent: {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.yaml:1:") && err.contains("give `http`, `https`"),
            "{err}"
        );
        let err = Settings::from_yaml(
            "s.yaml",
            "listen_transparent:\n  http: nowhere\n  https: 127.0.0.1:1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("s.yaml:2:") && err.contains("`listen_transparent.http`"),
            "{err}"
        );
        let err = Settings::from_yaml(
            "s.yaml",
            "listen_transparent: { http: 127.0.0.1:1, https: 127.0.0.1:1 }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("must differ"), "{err}");
        let err = Settings::from_yaml("s.yaml", "listen_transparent: { htp: 127.0.0.1:1 }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("htp"), "{err}");
    }
}
