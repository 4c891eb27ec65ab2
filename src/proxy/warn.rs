//! The `warn` action: an interstitial, then a signed acknowledgement.
//!
//! The interstitial is served on the social site's own host, so its Continue button
//! POSTs a token (HMAC over user, site, rule, path and expiry, with a key made at
//! start-up) to `/.socialgate/continue` on that host. The gateway answers that
//! itself: the token must verify, be unexpired, and name the signed-in user and
//! this host's site; then the acknowledgement is remembered for the rule's
//! `warn_for` and the browser is redirected to the original path on the same host
//! only. A GET (an `<img>` on another page) can never acknowledge. Acknowledgements
//! live in this process: each gateway instance keeps its own.

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
}

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
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&ack).unwrap_or_default());
        let tag = ring::hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Verifies a token's signature and expiry.
    pub fn verify(&self, token: &str) -> Option<Acknowledgement> {
        let (payload, tag) = token.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        ring::hmac::verify(&self.key, payload.as_bytes(), &tag).ok()?;
        let ack: Acknowledgement =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (ack.expires >= now_secs()).then_some(ack)
    }
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
