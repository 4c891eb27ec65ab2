//! The `warn` action: an interstitial, then a signed acknowledgement.
//!
//! The interstitial is served on the social site's own host, so its Continue button
//! POSTs a token (HMAC over user, site, rule, path and expiry, with a key made at
//! start-up) to `/.socialgate/continue` on that host. The gateway answers that
//! itself: the token must verify, be unexpired, and name the signed-in user and
//! this host's site; then the acknowledgement is remembered for the rule's
//! `warn_for` and the browser is redirected to the original path on the same host
//! only. A GET (an `<img>` on another page) can never acknowledge.
//!
//! The redirect also sets a cookie on the site's origin (`__sg_ack_<id>`:
//! HttpOnly, SameSite=Lax, Secure on intercepted sites, for `warn_for`) holding
//! a signed acknowledgement (user, site, rule, expiry). A gateway whose key
//! verifies it honours it: with `warn.key_file` shared by replicas, an
//! acknowledgement made through one replica holds on all and after a restart;
//! without it the key is made at start-up and only this process honours it.
//! The cookies are removed from every request before it goes to a site
//! (`headers`). A continue token is never accepted as a cookie, nor a cookie as
//! a token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The path the Continue button posts to.
pub const CONTINUE_PATH: &str = "/.socialgate/continue";

/// How long an interstitial's token stays valid.
const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Acknowledgement {
    #[serde(rename = "u")]
    pub user: String,
    #[serde(rename = "s")]
    pub site: String,
    #[serde(rename = "r")]
    pub rule: String,
    #[serde(rename = "p")]
    pub path: String,
    #[serde(rename = "e")]
    pub expires: u64,
    /// `ack` in a cookie's acknowledgement; empty in a continue token.
    #[serde(rename = "k", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

const ACK_KIND: &str = "ack";

/// Signs tokens and remembers acknowledgements.
pub struct WarnGate {
    key: ring::hmac::Key,
    acks: Mutex<HashMap<(String, String, String), Instant>>,
}

impl std::fmt::Debug for WarnGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WarnGate { key: <redacted> }")
    }
}

impl Default for WarnGate {
    fn default() -> Self {
        WarnGate::new()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl WarnGate {
    /// A gate signing with `key` (the bytes of `warn.key_file`, shared by
    /// replicas), or with a key made now when there is none.
    pub fn with_key(key: Option<&[u8]>) -> WarnGate {
        match key {
            Some(bytes) => WarnGate {
                key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes),
                acks: Mutex::new(HashMap::new()),
            },
            None => WarnGate::new(),
        }
    }

    pub fn new() -> WarnGate {
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &now_secs().to_be_bytes())
        });
        WarnGate {
            key,
            acks: Mutex::new(HashMap::new()),
        }
    }

    /// Has `user` acknowledged `rule` on `site` (and is it still in force)?
    pub fn acknowledged(&self, user: &str, site: &str, rule: &str) -> bool {
        let Ok(acks) = self.acks.lock() else {
            return false;
        };
        acks.get(&(user.to_string(), site.to_string(), rule.to_string()))
            .is_some_and(|until| *until > Instant::now())
    }

    /// Records an acknowledgement for `duration`.
    pub fn record(&self, user: &str, site: &str, rule: &str, duration: Duration) {
        if let Ok(mut acks) = self.acks.lock() {
            let now = Instant::now();
            if acks.len() > 100_000 {
                acks.retain(|_, until| *until > now);
            }
            acks.insert(
                (user.to_string(), site.to_string(), rule.to_string()),
                now + duration,
            );
        }
    }

    /// A token for the interstitial's Continue button.
    pub fn token(&self, user: &str, site: &str, rule: &str, path: &str) -> String {
        let ack = Acknowledgement {
            user: user.into(),
            site: site.into(),
            rule: rule.into(),
            path: safe_path(path).into(),
            expires: now_secs() + TOKEN_LIFETIME.as_secs(),
            kind: String::new(),
        };
        self.sign(&ack)
    }

    fn sign(&self, ack: &Acknowledgement) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(ack).unwrap_or_default());
        let tag = ring::hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Verifies a signature and expiry (either kind).
    fn verify_any(&self, token: &str) -> Option<Acknowledgement> {
        let (payload, tag) = token.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        ring::hmac::verify(&self.key, payload.as_bytes(), &tag).ok()?;
        let ack: Acknowledgement =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (ack.expires >= now_secs()).then_some(ack)
    }

    /// Verifies a continue token's signature and expiry.
    pub fn verify(&self, token: &str) -> Option<Acknowledgement> {
        self.verify_any(token).filter(|a| a.kind.is_empty())
    }

    /// The `Set-Cookie` value that carries `user`'s acknowledgement of `rule`
    /// on `site` for `duration` (`secure`: the site is reached over TLS).
    pub fn ack_cookie(
        &self,
        user: &str,
        site: &str,
        rule: &str,
        duration: Duration,
        secure: bool,
    ) -> String {
        let ack = Acknowledgement {
            user: user.into(),
            site: site.into(),
            rule: rule.into(),
            path: String::new(),
            expires: now_secs() + duration.as_secs(),
            kind: ACK_KIND.into(),
        };
        format!(
            "{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
            cookie_name(site, rule),
            self.sign(&ack),
            duration.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }

    /// Does a cookie of `headers` carry a valid acknowledgement by `user` of
    /// `rule` on `site`? Then it is remembered here too.
    pub fn acknowledged_by_cookie(
        &self,
        headers: &http::HeaderMap,
        user: &str,
        site: &str,
        rule: &str,
    ) -> bool {
        let name = cookie_name(site, rule);
        let found = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, value)| self.verify_any(value))
            .find(|a| a.kind == ACK_KIND && a.user == user && a.site == site && a.rule == rule);
        match found {
            Some(a) => {
                let left = a.expires.saturating_sub(now_secs());
                self.record(user, site, rule, Duration::from_secs(left));
                true
            }
            None => false,
        }
    }
}

/// The acknowledgement cookie's name for a site's rule: the prefix the proxy
/// strips, then 12 hex digits of SHA-256 over both (a rule name may hold
/// characters a cookie name may not).
fn cookie_name(site: &str, rule: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{site}\0{rule}").as_bytes());
    let mut name = String::from(super::headers::ACK_COOKIE_PREFIX);
    for b in &digest.as_ref()[..6] {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

/// A redirect target on the same host: a path starting with one `/`, else `/`.
pub fn safe_path(path: &str) -> &str {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.bytes().any(|b| b.is_ascii_control());
    if ok {
        path
    } else {
        "/"
    }
}

/// Is this request a page navigation (which gets the interstitial)?
pub fn is_navigation(method: &http::Method, headers: &http::HeaderMap) -> bool {
    method == http::Method::GET && super::headers::wants_html(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_acknowledgements_between_gates_with_one_key() {
        let key = [7u8; 32];
        let a = WarnGate::with_key(Some(&key));
        let b = WarnGate::with_key(Some(&key));
        let other = WarnGate::with_key(Some(&[8u8; 32]));
        let set = a.ack_cookie(
            "bob",
            "careful",
            "staff-careful",
            Duration::from_secs(3600),
            true,
        );
        assert!(
            set.contains("HttpOnly") && set.contains("Secure") && set.contains("Max-Age=3600"),
            "{set}"
        );
        let pair = set.split(';').next().unwrap().to_string();
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            format!("x=1; {pair}").parse().unwrap(),
        );
        assert!(b.acknowledged_by_cookie(&h, "bob", "careful", "staff-careful"));
        assert!(
            b.acknowledged("bob", "careful", "staff-careful"),
            "remembered"
        );
        assert!(
            !other.acknowledged_by_cookie(&h, "bob", "careful", "staff-careful"),
            "another key"
        );
        assert!(
            !b.acknowledged_by_cookie(&h, "alice", "careful", "staff-careful"),
            "another user"
        );
        assert!(
            !b.acknowledged_by_cookie(&h, "bob", "careful", "other-rule"),
            "another rule"
        );
        // A continue token is no acknowledgement, and a cookie's value no continue token.
        let token = a.token("bob", "careful", "staff-careful", "/");
        let name = pair.split('=').next().unwrap();
        let mut forged = http::HeaderMap::new();
        forged.insert(
            http::header::COOKIE,
            format!("{name}={token}").parse().unwrap(),
        );
        assert!(!WarnGate::with_key(Some(&key)).acknowledged_by_cookie(
            &forged,
            "bob",
            "careful",
            "staff-careful"
        ));
        assert!(a.verify(pair.split_once('=').unwrap().1).is_none());
    }

    #[test]
    fn tokens_verify_and_resist_tampering() {
        let g = WarnGate::new();
        let t = g.token("bob", "linkedin", "staff-linkedin", "/feed/?x=1");
        let ack = g.verify(&t).unwrap();
        assert_eq!(
            (ack.user.as_str(), ack.site.as_str(), ack.path.as_str()),
            ("bob", "linkedin", "/feed/?x=1")
        );
        let (payload, tag) = t.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD
            .encode(br#"{"u":"eve","s":"linkedin","r":"staff-linkedin","p":"/","e":99999999999}"#);
        assert!(g.verify(&format!("{forged}.{tag}")).is_none());
        assert!(g.verify(payload).is_none());
        assert!(
            WarnGate::new().verify(&t).is_none(),
            "another instance's key"
        );
    }

    #[test]
    fn redirects_stay_on_the_host() {
        assert_eq!(safe_path("/feed/"), "/feed/");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "feed",
            "/a\r\nSet-Cookie: x",
        ] {
            assert_eq!(safe_path(bad), "/", "{bad}");
        }
    }

    #[test]
    fn acknowledgements_expire() {
        let g = WarnGate::new();
        assert!(!g.acknowledged("bob", "linkedin", "r"));
        g.record("bob", "linkedin", "r", Duration::from_secs(60));
        assert!(g.acknowledged("bob", "linkedin", "r"));
        assert!(!g.acknowledged("alice", "linkedin", "r"));
        g.record("bob", "x", "r", Duration::from_secs(0));
        assert!(!g.acknowledged("bob", "x", "r"));
    }
}
