//! Failed Basic sign-ins, counted per client address and per user name, with
//! exponential backoff: what stops password guessing and keeps a flood of wrong
//! passwords from costing bcrypt time.
//!
//! - Each key (a client address, IPv6 by its /64; a user name as typed, known
//!   or not, so the throttle never tells which names exist) counts its failures.
//!   The count is forgotten [`WINDOW`] after the key's last failure.
//! - A key with `free` failures or more is in backoff until its last failure
//!   plus [`FIRST_BACKOFF`] doubled for each failure past `free`, at most
//!   [`MAX_BACKOFF`]. Addresses get [`CLIENT_FREE_FAILURES`] (terminal servers
//!   and NAT put many people behind one), names [`USER_FREE_FAILURES`].
//! - While in backoff, sign-ins are refused before any password check (no bcrypt
//!   runs). A refused attempt counts as a failure too, so a client that keeps
//!   hammering stays refused; a person who waits the `Retry-After` gets a check.
//! - A user name in backoff refuses only clients that have failed themselves
//!   within the window: an attacker guessing alice's password from elsewhere
//!   cannot lock alice out of her own desk, while each of the attacker's
//!   addresses gets at most one guess at alice once she is in backoff.
//! - The caller lets a cached sign-in (the exact password that already
//!   succeeded) through unless both its address and its name are in backoff, so
//!   colleagues behind a throttled address keep working, while an attacker
//!   testing passwords against the cache from there puts the name in backoff
//!   within a few tries.
//!
//! Limits: at most [`MAX_TRACKED`] keys of each kind; when full, forgotten keys go
//! first, then the least recently failed eighth. An attacker with many source
//! addresses (a loopback user can bind any of 127/8) is bounded by the per-name
//! count and the bcrypt pool, not by the per-address one. Counts live in memory
//! and start again at zero after a restart.
//! Callers: `IdentityResolver::basic` (`mod.rs`).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a key's failures are remembered after its last one.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures from one client address before backoff starts.
pub const CLIENT_FREE_FAILURES: u32 = 20;
/// Failures for one user name before backoff starts.
pub const USER_FREE_FAILURES: u32 = 5;
/// The first backoff; it doubles with each further failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// The longest backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Keys tracked of each kind.
pub const MAX_TRACKED: usize = 100_000;

/// Why a sign-in was refused without a check: the `reason` label of
/// `socialgate_signin_throttled_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReason {
    /// The client address is in backoff.
    Client,
    /// The user name is in backoff (and this client has failed too).
    User,
    /// The bcrypt pool's queue is full.
    Busy,
}

impl ThrottleReason {
    pub const ALL: [ThrottleReason; 3] = [
        ThrottleReason::Client,
        ThrottleReason::User,
        ThrottleReason::Busy,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ThrottleReason::Client => "client",
            ThrottleReason::User => "user",
            ThrottleReason::Busy => "busy",
        }
    }
}

#[derive(Clone, Copy)]
struct Count {
    failures: u32,
    last: Instant,
}

impl Count {
    /// How long this key must still wait at `now`, if it is in backoff.
    fn wait(&self, free: u32, now: Instant) -> Option<Duration> {
        if self.failures < free {
            return None;
        }
        let doublings = (self.failures - free).min(16);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF);
        (self.last + backoff)
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
    }

    fn forgotten(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= WINDOW
    }
}

/// Counts of one kind of key.
struct Counts<K> {
    map: HashMap<K, Count>,
    free: u32,
}

impl<K: Hash + Eq + Clone> Counts<K> {
    fn new(free: u32) -> Self {
        Counts {
            map: HashMap::new(),
            free,
        }
    }

    fn current(&self, key: &K, now: Instant) -> Option<Count> {
        self.map.get(key).copied().filter(|c| !c.forgotten(now))
    }

    /// Adds a failure; true when this one started the key's backoff.
    fn fail(&mut self, key: &K, now: Instant) -> bool {
        if !self.map.contains_key(key) && self.map.len() >= MAX_TRACKED {
            self.make_room(now);
        }
        let failures = self.current(key, now).map_or(0, |c| c.failures) + 1;
        self.map.insert(
            key.clone(),
            Count {
                failures,
                last: now,
            },
        );
        failures == self.free
    }

    fn make_room(&mut self, now: Instant) {
        self.map.retain(|_, c| !c.forgotten(now));
        if self.map.len() < MAX_TRACKED {
            return;
        }
        let mut lasts: Vec<Instant> = self.map.values().map(|c| c.last).collect();
        let n = (MAX_TRACKED / 8).max(1).min(lasts.len()) - 1;
        let (_, &mut oldest_kept, _) = lasts.select_nth_unstable(n);
        self.map.retain(|_, c| c.last > oldest_kept);
    }
}

/// What the throttle says about one attempt, before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    pub client_wait: Option<Duration>,
    pub user_wait: Option<Duration>,
    /// The client has failed within the window.
    pub client_failed: bool,
}

impl Gate {
    /// The refusal for an attempt that is not a cache hit.
    pub fn refusal(&self) -> Option<(ThrottleReason, Duration)> {
        if let Some(w) = self.client_wait {
            return Some((ThrottleReason::Client, w));
        }
        match self.user_wait {
            Some(w) if self.client_failed => Some((ThrottleReason::User, w)),
            _ => None,
        }
    }

    /// The refusal for a cache hit: only when both keys are in backoff.
    pub fn refusal_of_cached(&self) -> Option<(ThrottleReason, Duration)> {
        match (self.client_wait, self.user_wait) {
            (Some(c), Some(u)) => Some((ThrottleReason::Client, c.max(u))),
            _ => None,
        }
    }
}

/// The failure counts of both kinds.
pub struct SignInThrottle {
    clients: Mutex<Counts<IpAddr>>,
    users: Mutex<Counts<[u8; 32]>>,
}

impl std::fmt::Debug for SignInThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignInThrottle")
    }
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle {
            clients: Mutex::new(Counts::new(CLIENT_FREE_FAILURES)),
            users: Mutex::new(Counts::new(USER_FREE_FAILURES)),
        }
    }
}

/// The address a client is counted under: IPv4 as is, IPv6 by its /64 (one
/// host usually holds a whole /64).
fn client_key(peer: IpAddr) -> IpAddr {
    match crate::net_guard::canonical(peer) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// User names are kept as SHA-256 (fixed size, however long the name typed).
fn user_key(user: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, user.as_bytes()).as_ref());
    out
}

/// Which keys a failure just put into backoff (for one log line each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Started {
    pub client: bool,
    pub user: bool,
}

impl SignInThrottle {
    pub fn gate(&self, peer: IpAddr, user: &str, now: Instant) -> Gate {
        let client = self
            .clients
            .lock()
            .ok()
            .and_then(|c| c.current(&client_key(peer), now).map(|n| (n, c.free)));
        let user_wait = self.users.lock().ok().and_then(|u| {
            u.current(&user_key(user), now)
                .and_then(|n| n.wait(u.free, now))
        });
        Gate {
            client_wait: client.and_then(|(n, free)| n.wait(free, now)),
            user_wait,
            client_failed: client.is_some(),
        }
    }

    /// Counts a failed (or refused) attempt against both keys.
    pub fn failed(&self, peer: IpAddr, user: &str, now: Instant) -> Started {
        Started {
            client: self
                .clients
                .lock()
                .is_ok_and(|mut c| c.fail(&client_key(peer), now)),
            user: self
                .users
                .lock()
                .is_ok_and(|mut u| u.fail(&user_key(user), now)),
        }
    }

    /// A checked success: the name's count starts again (the address's does not,
    /// or a valid account would reset the address between guesses at others).
    pub fn succeeded(&self, user: &str) {
        if let Ok(mut u) = self.users.lock() {
            u.map.remove(&user_key(user));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_the_metric_labels() {
        let labels: Vec<&str> = ThrottleReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels, crate::metrics::SIGNIN_THROTTLE_REASONS);
    }

    const A: &str = "192.0.2.1";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_user_name_backs_off_exponentially_then_is_forgotten() {
        let t = SignInThrottle::default();
        let t0 = Instant::now();
        for i in 0..USER_FREE_FAILURES {
            assert_eq!(t.gate(ip(A), "alice", t0).refusal(), None, "failure {i}");
            let started = t.failed(ip(A), "alice", t0);
            assert_eq!(started.user, i + 1 == USER_FREE_FAILURES);
        }
        let gate = t.gate(ip(A), "alice", t0);
        assert_eq!(gate.refusal(), Some((ThrottleReason::User, FIRST_BACKOFF)));
        // Another address that never failed still gets a check of alice.
        assert_eq!(t.gate(ip("192.0.2.2"), "alice", t0).refusal(), None);
        // After the backoff one check; its failure doubles the wait.
        let t1 = t0 + FIRST_BACKOFF;
        assert_eq!(t.gate(ip(A), "alice", t1).refusal(), None);
        t.failed(ip(A), "alice", t1);
        assert_eq!(
            t.gate(ip(A), "alice", t1).refusal(),
            Some((ThrottleReason::User, FIRST_BACKOFF * 2))
        );
        // Never more than MAX_BACKOFF.
        for _ in 0..30 {
            t.failed(ip(A), "alice", t1);
        }
        assert_eq!(t.gate(ip(A), "alice", t1).user_wait, Some(MAX_BACKOFF));
        // Forgotten a window after the last failure.
        assert_eq!(
            t.gate(ip(A), "alice", t1 + WINDOW),
            Gate {
                client_wait: None,
                user_wait: None,
                client_failed: false
            }
        );
        // A success clears the name.
        t.succeeded("alice");
        assert_eq!(t.gate(ip(A), "alice", t1).user_wait, None);
    }

    #[test]
    fn a_client_address_backs_off_whatever_names_it_tries() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        for i in 0..CLIENT_FREE_FAILURES {
            t.failed(ip("2001:db8::1"), &format!("user{i}"), now);
        }
        // The same /64, a fresh name: refused; a cache hit of a calm name is not.
        let gate = t.gate(ip("2001:db8::99"), "fresh", now);
        assert_eq!(
            gate.refusal(),
            Some((ThrottleReason::Client, FIRST_BACKOFF))
        );
        assert_eq!(gate.refusal_of_cached(), None);
        // Another /64 is not concerned.
        assert_eq!(t.gate(ip("2001:db8:0:1::1"), "fresh", now).refusal(), None);
        // Both keys in backoff: even a cache hit is refused.
        for _ in 0..USER_FREE_FAILURES {
            t.failed(ip("2001:db8::1"), "bob", now);
        }
        assert!(t
            .gate(ip("2001:db8::1"), "bob", now)
            .refusal_of_cached()
            .is_some());
    }

    #[test]
    fn the_maps_stay_bounded() {
        let mut c: Counts<u32> = Counts::new(1);
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            c.fail(&i, now + Duration::from_millis(u64::from(i)));
        }
        assert!(c.map.len() <= MAX_TRACKED);
        // The most recent failures are kept.
        assert!(c.map.contains_key(&(MAX_TRACKED as u32 + 9)));
    }
}
