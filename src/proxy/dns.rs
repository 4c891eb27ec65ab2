//! Name lookups for upstream connections: answers are cached (60 s, within the
//! 10–300 s range the gateway documents; the system resolver does not expose TTLs, so a
//! fixed lifetime is used), failures for 10 s, and concurrent lookups of one name
//! share a single query. Bounded: at most 10,000 names are kept.
//!
//! Also the addresses learned for listed sites ([`LearnedAddrs`]): every address
//! the gateway resolved for a site's domain in the last hour, so that another
//! name pointing there is decided as that site. Bounded too.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// How long an answer is kept.
pub const ANSWER_TTL: Duration = Duration::from_secs(60);
/// How long a failure is kept.
pub const FAILURE_TTL: Duration = Duration::from_secs(10);
const MAX_NAMES: usize = 10_000;

type Answer = Result<Arc<Vec<IpAddr>>, String>;
type LookupFuture = Pin<Box<dyn Future<Output = Answer> + Send>>;
/// The function that really asks (the system resolver, or a test's stand-in).
pub type LookupFn = Arc<dyn Fn(String) -> LookupFuture + Send + Sync>;

struct Entry {
    cell: Arc<OnceCell<(Answer, Instant)>>,
}

/// A caching, single-flight resolver.
pub struct NameCache {
    lookup: LookupFn,
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for NameCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameCache")
    }
}

/// The system resolver (getaddrinfo on tokio's blocking pool).
pub fn system_lookup() -> LookupFn {
    Arc::new(|name: String| {
        Box::pin(async move {
            match tokio::net::lookup_host((name.as_str(), 0)).await {
                Ok(addrs) => {
                    let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                    ips.dedup();
                    if ips.is_empty() {
                        Err(format!("the name {name} has no address"))
                    } else {
                        Ok(Arc::new(ips))
                    }
                }
                Err(_) => Err(format!("the name {name} could not be resolved")),
            }
        }) as LookupFuture
    })
}

impl NameCache {
    pub fn new(lookup: LookupFn) -> NameCache {
        NameCache {
            lookup,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The addresses of `name`, from the cache or one shared lookup.
    pub async fn lookup(&self, name: &str) -> Answer {
        let cell = {
            let Ok(mut entries) = self.entries.lock() else {
                return (self.lookup)(name.to_string()).await;
            };
            let now = Instant::now();
            let fresh = entries.get(name).is_some_and(|e| match e.cell.get() {
                Some((_, expires)) => *expires > now,
                None => true, // a lookup in flight: share it
            });
            if !fresh {
                if entries.len() >= MAX_NAMES {
                    entries.retain(|_, e| e.cell.get().is_none_or(|(_, exp)| *exp > now));
                    if entries.len() >= MAX_NAMES {
                        entries.clear();
                    }
                }
                entries.insert(
                    name.to_string(),
                    Entry {
                        cell: Arc::new(OnceCell::new()),
                    },
                );
            }
            entries.get(name).map(|e| e.cell.clone())
        };
        let Some(cell) = cell else {
            return (self.lookup)(name.to_string()).await;
        };
        let lookup = self.lookup.clone();
        let owned = name.to_string();
        let (answer, _) = cell
            .get_or_init(|| async move {
                let answer = lookup(owned).await;
                let ttl = if answer.is_ok() {
                    ANSWER_TTL
                } else {
                    FAILURE_TTL
                };
                (answer, Instant::now() + ttl)
            })
            .await;
        answer.clone()
    }
}

/// How long an address learned for a site counts as the site's.
pub const LEARNED_TTL: Duration = Duration::from_secs(3600);
const MAX_LEARNED: usize = 20_000;
/// Sites remembered per address (sites of one company share addresses).
const MAX_SITES_PER_ADDRESS: usize = 8;

/// Addresses the gateway resolved for listed sites' domains: address to the
/// sites (by name) and when each entry expires.
#[derive(Debug, Default)]
pub struct LearnedAddrs {
    entries: Mutex<HashMap<IpAddr, Vec<(String, Instant)>>>,
}

impl LearnedAddrs {
    /// Records that `site`'s domain resolved to `ips` (canonical forms expected).
    pub fn learn(&self, site: &str, ips: impl IntoIterator<Item = IpAddr>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = Instant::now();
        let expires = now + LEARNED_TTL;
        for ip in ips {
            if !entries.contains_key(&ip) && entries.len() >= MAX_LEARNED {
                entries.retain(|_, sites| {
                    sites.retain(|(_, exp)| *exp > now);
                    !sites.is_empty()
                });
                if entries.len() >= MAX_LEARNED {
                    // Still full of live entries: drop those learned longest ago
                    // rather than grow. Forgetting loosens (a name pointing at a
                    // forgotten address is judged by `networks:` only), so the
                    // bound is far above what the listed sites use.
                    let cutoff = now + LEARNED_TTL / 2;
                    entries.retain(|_, sites| sites.iter().any(|(_, exp)| *exp > cutoff));
                }
                if entries.len() >= MAX_LEARNED {
                    continue;
                }
            }
            let sites = entries.entry(ip).or_default();
            sites.retain(|(_, exp)| *exp > now);
            match sites.iter_mut().find(|(s, _)| s == site) {
                Some(entry) => entry.1 = expires,
                None => {
                    if sites.len() >= MAX_SITES_PER_ADDRESS {
                        sites.remove(0);
                    }
                    sites.push((site.to_string(), expires));
                }
            }
        }
    }

    /// The sites `ip` was learned for within the last hour.
    pub fn sites_of(&self, ip: IpAddr) -> Vec<String> {
        let Ok(entries) = self.entries.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        entries
            .get(&ip)
            .map(|sites| {
                sites
                    .iter()
                    .filter(|(_, exp)| *exp > now)
                    .map(|(s, _)| s.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many addresses are held (for tests).
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Orders addresses for Happy Eyeballs (RFC 8305): alternate IPv6 and IPv4,
/// starting with the family of the first answer.
pub fn interleave(addrs: &[std::net::SocketAddr]) -> Vec<std::net::SocketAddr> {
    let first_v6 = addrs.first().is_some_and(|a| a.is_ipv6());
    let (mut a, mut b): (Vec<std::net::SocketAddr>, Vec<std::net::SocketAddr>) =
        addrs.iter().partition(|x| x.is_ipv6() == first_v6);
    a.reverse();
    b.reverse();
    let mut out = Vec::with_capacity(addrs.len());
    loop {
        match (a.pop(), b.pop()) {
            (None, None) => break,
            (x, y) => {
                out.extend(x);
                out.extend(y);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting(answer: Answer) -> (LookupFn, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let f: LookupFn = Arc::new(move |_name| {
            c.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            Box::pin(async move {
                tokio::task::yield_now().await;
                answer
            }) as LookupFuture
        });
        (f, calls)
    }

    #[tokio::test]
    async fn concurrent_lookups_share_one_query_and_answers_are_cached() {
        let (f, calls) = counting(Ok(Arc::new(vec!["192.0.2.7".parse().unwrap()])));
        let cache = Arc::new(NameCache::new(f));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let c = cache.clone();
            tasks.push(tokio::spawn(
                async move { c.lookup("social.example").await },
            ));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().len(), 1);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache.lookup("social.example").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "served from the cache");
        cache.lookup("other.example").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failures_are_cached_too() {
        let (f, calls) = counting(Err("nope".into()));
        let cache = NameCache::new(f);
        assert!(cache.lookup("gone.example").await.is_err());
        assert!(cache.lookup("gone.example").await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn learned_addresses_are_bounded_and_per_site() {
        let l = LearnedAddrs::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        l.learn("x", [a]);
        l.learn("x", [a]);
        l.learn("y", [a]);
        assert_eq!(l.sites_of(a), vec!["x".to_string(), "y".to_string()]);
        assert!(l.sites_of("192.0.2.2".parse().unwrap()).is_empty());
        for i in 0..(MAX_LEARNED as u32 + 10) {
            l.learn("z", [IpAddr::V4((0x0a00_0000 + i).into())]);
        }
        assert!(l.len() <= MAX_LEARNED);
    }

    #[test]
    fn happy_eyeballs_order() {
        let v6: std::net::SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let v6b: std::net::SocketAddr = "[2001:db8::2]:443".parse().unwrap();
        let v4: std::net::SocketAddr = "192.0.2.1:443".parse().unwrap();
        let v4b: std::net::SocketAddr = "192.0.2.2:443".parse().unwrap();
        assert_eq!(interleave(&[v6, v6b, v4, v4b]), vec![v6, v4, v6b, v4b]);
        assert_eq!(interleave(&[v4, v6]), vec![v4, v6]);
        assert_eq!(interleave(&[v4, v4b]), vec![v4, v4b]);
    }
}
