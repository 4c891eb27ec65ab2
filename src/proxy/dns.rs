//! Name lookups for upstream connections: answers are cached (60 s, within the
//! 10–300 s range the gateway documents; the system resolver does not expose TTLs, so a
//! fixed lifetime is used), failures for 10 s, and concurrent lookups of one name
//! share a single query. Bounded: at most 10,000 names are kept.

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
