//! The deferred notice: a denied background request (a `fetch()` or XHR, not a
//! page navigation) is remembered per (who, site) for `pages.deferred_notice`,
//! so the next page navigation to that site by the same person can show one
//! notice page explaining it. Taking a notice forgets it: it is shown once.
//!
//! Who: the signed-in user; for an identity by network (`identity.networks`,
//! where one name covers many computers) the user and the client's address,
//! so one computer's notice never shows on another. `unlisted` is never
//! remembered (it is every other website, not one site).
//!
//! Only requests the site's own page made are remembered (`Sec-Fetch-Site`
//! same-origin or same-site, or not sent): another website cannot plant one.
//!
//! Limits: at most [`MAX_NOTICES`] are held; when full the oldest is dropped.
//! Per process: replicas do not share notices. Only policy names and the
//! reference are kept, never request content. Called by `pipeline` (record on
//! a denial, take on a navigation); the gateway holds one.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most notices held at once.
pub const MAX_NOTICES: usize = 10_000;

/// What a notice shows: what the denial named, and its reference.
#[derive(Debug, Clone)]
pub struct Notice {
    pub rule: String,
    pub site: String,
    pub title: Option<String>,
    pub activity: String,
    pub description: Option<String>,
    pub detectors: Vec<String>,
    pub reference: String,
}

type Key = (String, String);

#[derive(Debug, Default)]
struct Inner {
    by_key: HashMap<Key, (Notice, Instant, u64)>,
    /// Keys in the order recorded, with the generation that put them there
    /// (a key recorded again is moved to the back).
    order: VecDeque<(Key, u64)>,
    generation: u64,
}

/// The notices waiting, bounded.
#[derive(Debug)]
pub struct DeferredNotices {
    inner: Mutex<Inner>,
    max: usize,
}

impl Default for DeferredNotices {
    fn default() -> Self {
        DeferredNotices::with_capacity(MAX_NOTICES)
    }
}

/// Who a notice is for: the user, plus the address for an identity by network.
pub fn who(user: &str, source: &str, peer: std::net::IpAddr) -> String {
    if source == "network" {
        format!("{user}@{peer}")
    } else {
        user.to_string()
    }
}

/// Is this request one the browser shows as the page (a navigation of the
/// top document)? With Fetch Metadata: `Sec-Fetch-Mode: navigate` and
/// `Sec-Fetch-Dest: document` (when sent); without it: `Accept` names
/// `text/html`. Everything else (fetch, XHR, images, frames) is background.
pub fn is_navigation(headers: &http::HeaderMap) -> bool {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
    };
    match (get("sec-fetch-mode"), get("sec-fetch-dest")) {
        (Some(mode), dest) => mode == "navigate" && dest.is_none_or(|d| d == "document"),
        (None, Some(dest)) => dest == "document",
        (None, None) => get("accept").is_some_and(|a| a.contains("text/html")),
    }
}

/// Did the site's own page make this request? `Sec-Fetch-Site` absent (an
/// older browser, or no browser), `same-origin` or `same-site`. A request
/// another website's page made (`cross-site`) is never remembered: no other
/// site can plant a notice on this one.
pub fn from_the_site_itself(headers: &http::HeaderMap) -> bool {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => {
            let v = v.trim();
            v.eq_ignore_ascii_case("same-origin") || v.eq_ignore_ascii_case("same-site")
        }
    }
}

impl DeferredNotices {
    /// A store holding at most `max` notices.
    pub fn with_capacity(max: usize) -> DeferredNotices {
        DeferredNotices {
            inner: Mutex::new(Inner::default()),
            max: max.max(1),
        }
    }

    /// Remembers `notice` for `who` on its site for `keep` (replacing an
    /// earlier one for the same pair). Nothing for `unlisted` or `keep` zero.
    pub fn record(&self, who: &str, notice: Notice, keep: Duration) {
        if keep.is_zero() || notice.site == "unlisted" {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let key = (who.to_string(), notice.site.clone());
        inner.generation += 1;
        let generation = inner.generation;
        inner
            .by_key
            .insert(key.clone(), (notice, Instant::now() + keep, generation));
        inner.order.push_back((key, generation));
        // Stale order entries (a key recorded again, or taken) are skipped.
        while inner.by_key.len() > self.max || inner.order.len() > 2 * self.max {
            let Some((old, g)) = inner.order.pop_front() else {
                break;
            };
            if inner
                .by_key
                .get(&old)
                .is_some_and(|(_, _, current)| *current == g)
            {
                inner.by_key.remove(&old);
            }
        }
    }

    /// The notice waiting for `who` on `site`, if one is in force; it is
    /// forgotten.
    pub fn take(&self, who: &str, site: &str) -> Option<Notice> {
        let mut inner = self.inner.lock().ok()?;
        if inner.by_key.is_empty() {
            return None;
        }
        let (notice, until, _) = inner.by_key.remove(&(who.to_string(), site.to_string()))?;
        (until > Instant::now()).then_some(notice)
    }

    /// How many notices are held.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.by_key.len()).unwrap_or(0)
    }

    /// No notice is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(site: &str, reference: &str) -> Notice {
        Notice {
            rule: "r".into(),
            site: site.into(),
            title: None,
            activity: "post".into(),
            description: None,
            detectors: Vec::new(),
            reference: reference.into(),
        }
    }

    #[test]
    fn a_notice_is_taken_once_by_its_owner_only() {
        let d = DeferredNotices::default();
        let keep = Duration::from_secs(600);
        d.record("bob", notice("social", "a"), keep);
        assert!(d.take("alice", "social").is_none());
        assert!(d.take("bob", "other").is_none());
        assert_eq!(d.take("bob", "social").unwrap().reference, "a");
        assert!(d.take("bob", "social").is_none(), "shown once");
        d.record("bob", notice("unlisted", "u"), keep);
        d.record("bob", notice("social", "z"), Duration::ZERO);
        assert!(d.is_empty());
        d.record("bob", notice("social", "old"), Duration::from_nanos(1));
        std::thread::sleep(Duration::from_millis(2));
        assert!(d.take("bob", "social").is_none(), "expired");
        let ip: std::net::IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(who("kiosk", "network", ip), "kiosk@10.0.0.7");
        assert_eq!(who("bob", "basic", ip), "bob");
    }

    #[test]
    fn navigations_are_told_from_background_requests() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = http::HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, http::HeaderValue::from_static(v));
            }
            is_navigation(&m)
        };
        assert!(h(&[
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document")
        ]));
        assert!(h(&[("accept", "text/html,application/xhtml+xml")]));
        assert!(!h(&[
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-dest", "empty"),
            ("accept", "text/html")
        ]));
        assert!(!h(&[
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "iframe")
        ]));
        assert!(!h(&[("accept", "application/json")]));
        assert!(!h(&[]));
        let site = |v: &'static str| {
            let mut m = http::HeaderMap::new();
            m.insert("sec-fetch-site", http::HeaderValue::from_static(v));
            from_the_site_itself(&m)
        };
        assert!(site("same-origin") && site("same-site"));
        assert!(!site("cross-site") && !site("none"));
        assert!(from_the_site_itself(&http::HeaderMap::new()));
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_goes() {
        let d = DeferredNotices::with_capacity(3);
        let keep = Duration::from_secs(600);
        for i in 0..5 {
            d.record(&format!("u{i}"), notice("s", &i.to_string()), keep);
        }
        assert_eq!(d.len(), 3);
        assert!(d.take("u0", "s").is_none() && d.take("u1", "s").is_none());
        // Recording one again makes it the newest.
        d.record("u2", notice("s", "2b"), keep);
        d.record("u5", notice("s", "5"), keep);
        assert!(d.take("u3", "s").is_none(), "u3 was the oldest");
        assert_eq!(d.take("u2", "s").unwrap().reference, "2b");
        for i in 0..100 {
            d.record("same", notice("s", &i.to_string()), keep);
        }
        assert!(d.len() <= 3);
        assert_eq!(d.take("same", "s").unwrap().reference, "99");
    }
}
