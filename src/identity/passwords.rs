//! Basic passwords: the htpasswd file, the stand-in hash an unknown name is checked
//! against, and the bounded pool bcrypt runs on.
//!
//! - Every Basic check that misses the cache runs exactly one bcrypt verification:
//!   against the user's own hash, or, for a name not in the file, against a
//!   stand-in hash. A wrong name therefore costs what a wrong password costs.
//! - Which cost the stand-in has. Real files mix costs (`htpasswd -B` writes 5,
//!   `socialgate hash-password` 10), and the time of a failure reveals the cost it
//!   ran at. A single stand-in cannot hide unknown names: at the file's highest
//!   cost, every name faster than that exists; at its lowest, every slower one
//!   does; at one entry's cost (what this code did before, from whichever entry
//!   the hash map yielded first), it depends on luck. Checking against one
//!   stand-in of *each* cost is slower than any real user. So each unknown name
//!   gets one stand-in cost drawn from the file's own distribution of costs (a
//!   name falls on cost c with the share of entries that have cost c), chosen
//!   deterministically: the same name costs the same every time, as a real user
//!   does, so repeating a probe reveals nothing. The draw is keyed with a SHA-256
//!   of the file's hashes (their salts are secret to an attacker), so nobody can
//!   compute which cost a name should fall on and compare. An attacker timing a
//!   name sees a cost that real users have, in the proportion real users have it.
//!   Residual: when the file's hashes change (a user added, a password reset),
//!   the key changes and unknown names may fall on another cost; a patient
//!   attacker who times the same name across such a change learns little, since
//!   known users whose passwords were rehashed move too, and every probe counts
//!   against them in the throttle (`throttle.rs`).
//! - bcrypt runs on tokio's blocking pool, but at most [`bcrypt_workers`] checks
//!   at once (half the cores, at least one: the other half keeps proxying and
//!   serving cached sign-ins while a flood of wrong passwords is checked), and at
//!   most [`QUEUE_PER_WORKER`] per worker wait; past that a check is refused at
//!   once as busy (the caller answers "try again shortly") instead of queueing
//!   without bound. A check whose request is dropped still finishes and frees
//!   its permit, so the pool never runs more than its size. Concurrent checks of
//!   the same name and password share one run (a browser opening many
//!   connections at its first sign-in costs one check, not one per connection).
//!
//! Limits: bcrypt costs 4 to 31 (`$2a$`, `$2b$`, `$2y$`); other hash kinds are
//! refused at load. With no entries the stand-in has cost [`DEFAULT_COST`].
//! Callers: `IdentityResolver` (`mod.rs`), which loads, reloads and checks;
//! `socialgate check` loads the file to report it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OnceCell, Semaphore};

/// The cost of the stand-in when the file has no entries (what `socialgate
/// hash-password` writes by default).
pub const DEFAULT_COST: u32 = 10;
/// Checks that may wait for a bcrypt worker, per worker, before more are refused.
pub const QUEUE_PER_WORKER: usize = 32;
/// The stand-in password (never accepted: unknown names fail whatever it is).
const STAND_IN_PASSWORD: &str = "socialgate-no-such-user";

/// An htpasswd file: user → bcrypt hash.
#[derive(Default)]
pub struct Htpasswd {
    entries: HashMap<String, (String, u32)>,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Htpasswd({} users, hashes redacted)", self.entries.len())
    }
}

impl Htpasswd {
    /// Parses `user:$2y$...` lines; blank lines and `#` comments are skipped. Entries
    /// that are not bcrypt are refused (MD5 and crypt hashes are too weak).
    pub fn parse(text: &str, file: &str) -> Result<Htpasswd, String> {
        let mut entries = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("{file}:{}: expected `user:hash`", n + 1));
            };
            let cost = bcrypt_cost(hash).ok_or_else(|| {
                format!(
                    "{file}:{}: the entry for `{user}` is not a bcrypt hash; create it with `htpasswd -B` or `socialgate hash-password`",
                    n + 1
                )
            })?;
            entries.insert(user.to_string(), (hash.to_string(), cost));
        }
        Ok(Htpasswd { entries })
    }

    pub fn load(path: &Path) -> Result<Htpasswd, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the htpasswd file {}: {e}", path.display()))?;
        Htpasswd::parse(&text, &path.display().to_string())
    }

    pub fn contains(&self, user: &str) -> bool {
        self.entries.contains_key(user)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The cost of a `$2?$NN$` bcrypt hash, when it is one.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let rest = ["$2y$", "$2b$", "$2a$"]
        .iter()
        .find_map(|p| hash.strip_prefix(p))?;
    let cost: u32 = rest.get(..2)?.parse().ok()?;
    ((4..=31).contains(&cost) && rest.as_bytes().get(2) == Some(&b'$')).then_some(cost)
}

/// The htpasswd file in force with its stand-in hashes.
pub(crate) struct Passwords {
    file: Htpasswd,
    /// One stand-in hash per cost present in the file (or [`DEFAULT_COST`]).
    stand_ins: HashMap<u32, String>,
    /// The cost of every entry, ascending: the distribution a name is drawn from.
    costs: Vec<u32>,
    /// Keys the draw: SHA-256 of the file's hashes.
    key: [u8; 32],
}

/// What one name is checked against.
pub(crate) struct Check {
    pub hash: String,
    pub cost: u32,
    /// Whether the name is in the file (else `hash` is a stand-in).
    pub known: bool,
}

impl Passwords {
    /// Makes the stand-ins: one bcrypt hash per distinct cost, at start-up and on
    /// reload (never per request), reusing those of `previous` (the file a reload
    /// replaces) so a SIGHUP hashes only costs new to the file.
    pub(crate) fn new(file: Htpasswd, previous: Option<&Passwords>) -> Result<Passwords, String> {
        let mut costs: Vec<u32> = file.entries.values().map(|(_, c)| *c).collect();
        costs.sort_unstable();
        let mut hashes: Vec<&str> = file.entries.values().map(|(h, _)| h.as_str()).collect();
        hashes.sort_unstable();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for h in hashes {
            ctx.update(h.as_bytes());
            ctx.update(b"\n");
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        let distinct: BTreeSet<u32> = if costs.is_empty() {
            BTreeSet::from([DEFAULT_COST])
        } else {
            costs.iter().copied().collect()
        };
        let mut stand_ins = HashMap::new();
        for cost in distinct {
            if let Some(old) = previous.and_then(|p| p.stand_ins.get(&cost)) {
                stand_ins.insert(cost, old.clone());
                continue;
            }
            let hash = bcrypt::hash(STAND_IN_PASSWORD, cost)
                .map_err(|e| format!("cannot make a bcrypt stand-in hash of cost {cost}: {e}"))?;
            stand_ins.insert(cost, hash);
        }
        Ok(Passwords {
            file,
            stand_ins,
            costs,
            key,
        })
    }

    /// No file (Basic not configured): no stand-ins are made.
    pub(crate) fn none() -> Passwords {
        Passwords {
            file: Htpasswd::default(),
            stand_ins: HashMap::new(),
            costs: Vec::new(),
            key: [0; 32],
        }
    }

    /// The hash `user` is checked against: their own, or a stand-in of the cost
    /// their name draws (module header).
    pub(crate) fn check_for(&self, user: &str) -> Check {
        if let Some((hash, cost)) = self.file.entries.get(user) {
            return Check {
                hash: hash.clone(),
                cost: *cost,
                known: true,
            };
        }
        let cost = self.stand_in_cost(user);
        Check {
            hash: self.stand_ins.get(&cost).cloned().unwrap_or_default(),
            cost,
            known: false,
        }
    }

    /// The cost an unknown `user` is checked at: the cost of the entry at the
    /// name's keyed position in the sorted costs.
    pub(crate) fn stand_in_cost(&self, user: &str) -> u32 {
        if self.costs.is_empty() {
            return DEFAULT_COST;
        }
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&self.key);
        ctx.update(user.as_bytes());
        let digest = ctx.finish();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        // A fraction of the list: small changes to the file move few names.
        let at = (u128::from(u64::from_be_bytes(first)) * self.costs.len() as u128) >> 64;
        self.costs[usize::try_from(at).unwrap_or(0).min(self.costs.len() - 1)]
    }
}

/// Removes a shared check from the map when its last attempt is done or dropped.
struct InFlight<'a> {
    pool: &'a BcryptPool,
    key: Attempt,
    shared: Option<Shared>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.pool.in_flight.lock() {
            // Our reference goes under the lock, so the last attempt sees only the map's.
            drop(self.shared.take());
            if m.get(&self.key).is_some_and(|s| Arc::strong_count(s) == 1) {
                m.remove(&self.key);
            }
        }
    }
}

/// Half the cores, at least one: how many bcrypt checks run at once.
pub fn bcrypt_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .max(1)
}

/// Why a bcrypt check did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// A check in flight, shared by the attempts with its name and password.
type Shared = Arc<OnceCell<Result<bool, Busy>>>;
/// A name and the SHA-256 of a password.
type Attempt = (String, [u8; 32]);

/// The bounded bcrypt pool, and how many checks it ran at each cost.
pub struct BcryptPool {
    in_flight: Mutex<HashMap<Attempt, Shared>>,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    by_cost: [AtomicU64; 32],
}

impl std::fmt::Debug for BcryptPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BcryptPool")
            .field("free", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl BcryptPool {
    /// A pool running `workers` checks at once.
    pub fn new(workers: usize) -> BcryptPool {
        let workers = workers.max(1);
        BcryptPool {
            in_flight: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(workers)),
            waiting: AtomicUsize::new(0),
            max_waiting: workers * QUEUE_PER_WORKER,
            by_cost: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Checks `password` (whose SHA-256 is `digest`) for `user` against `check`
    /// on the pool, sharing a run with concurrent identical attempts;
    /// `Err(Busy)` when too many checks already wait.
    pub(crate) async fn verify(
        &self,
        user: &str,
        digest: [u8; 32],
        password: &str,
        check: Check,
    ) -> Result<bool, Busy> {
        let key = (user.to_string(), digest);
        let Ok(shared) = self
            .in_flight
            .lock()
            .map(|mut m| m.entry(key.clone()).or_default().clone())
        else {
            return self.run(password, check).await;
        };
        let guard = InFlight {
            pool: self,
            key,
            shared: Some(shared),
        };
        match &guard.shared {
            Some(shared) => *shared.get_or_init(|| self.run(password, check)).await,
            None => Err(Busy),
        }
    }

    async fn run(&self, password: &str, check: Check) -> Result<bool, Busy> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let Ok(permit) = permit else {
            return Err(Busy);
        };
        if let Some(n) = self.by_cost.get(check.cost as usize) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        let password = password.to_string();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            bcrypt::verify(password, &check.hash).unwrap_or(false)
        })
        .await
        .map_err(|_| Busy)
    }

    /// `(cost, checks run)` for every cost checked at least once, ascending.
    pub fn verifications(&self) -> Vec<(u32, u64)> {
        (0u32..)
            .zip(self.by_cost.iter())
            .map(|(c, n)| (c, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The pool's permits: a test holds them all to show that cached sign-ins do
    /// not wait for bcrypt. Not for production code.
    #[doc(hidden)]
    pub fn permits(&self) -> Arc<Semaphore> {
        self.permits.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(costs: &[(u32, usize)]) -> Passwords {
        let mut text = String::new();
        for (cost, count) in costs {
            for i in 0..*count {
                // Fake but well-formed hashes: parsing reads only the prefix.
                text.push_str(&format!("u{cost}-{i}:$2y${cost:02}$fake{i}\n"));
            }
        }
        Passwords::new(Htpasswd::parse(&text, "t").unwrap(), None).unwrap()
    }

    #[test]
    fn costs_are_read_and_checked() {
        assert_eq!(bcrypt_cost("$2y$05$abc"), Some(5));
        assert_eq!(bcrypt_cost("$2b$10$abc"), Some(10));
        for bad in [
            "$2y$5$abc",
            "$2y$03$abc",
            "$2y$32$abc",
            "$2y$1x$abc",
            "$apr1$x",
            "",
        ] {
            assert_eq!(bcrypt_cost(bad), None, "{bad}");
        }
        assert!(Htpasswd::parse("bob:$2y$99$x\n", "h").is_err());
    }

    #[test]
    fn unknown_names_draw_the_file_cost_distribution_deterministically() {
        let p = file(&[(4, 3), (5, 1)]);
        let mut seen = HashMap::new();
        for i in 0..2000 {
            let name = format!("nobody{i}");
            let cost = p.stand_in_cost(&name);
            assert_eq!(cost, p.stand_in_cost(&name), "the same name, the same cost");
            *seen.entry(cost).or_insert(0u32) += 1;
        }
        assert_eq!(
            seen.keys().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([4, 5])
        );
        // Three entries in four have cost 4: about 1500 of 2000 names.
        assert!((1350..1650).contains(&seen[&4]), "{seen:?}");
        // A stand-in of every cost exists, and known users use their own.
        let c = p.check_for("nobody1");
        assert!(!c.known && c.hash.starts_with(&format!("$2b${:02}$", c.cost)));
        let c = p.check_for("u5-0");
        assert!(c.known && c.cost == 5 && c.hash == "$2y$05$fake0");
        // An empty file: the default cost.
        assert_eq!(file(&[]).stand_in_cost("x"), DEFAULT_COST);
        // A reload keeps the stand-ins of the costs it still has.
        let again =
            Passwords::new(Htpasswd::parse("a:$2y$05$x\n", "t").unwrap(), Some(&p)).unwrap();
        assert_eq!(again.stand_ins.get(&5), p.stand_ins.get(&5));
        assert_eq!(again.stand_ins.len(), 1);
    }

    #[tokio::test]
    async fn the_pool_refuses_past_its_queue_and_counts_by_cost() {
        let pool = BcryptPool::new(1);
        let hash = bcrypt::hash("pw", 4).unwrap();
        let check = || Check {
            hash: hash.clone(),
            cost: 4,
            known: true,
        };
        let verify = |password: &'static str| {
            let digest = [password.as_bytes()[0]; 32];
            pool.verify("u", digest, password, check())
        };
        assert_eq!(verify("pw").await, Ok(true));
        assert_eq!(verify("no").await, Ok(false));
        assert_eq!(pool.verifications(), vec![(4, 2)]);
        // Identical attempts at once share one run; nothing stays in flight.
        // The pool's permit is held until all three have asked (the fourth
        // future lets it go on its second turn): otherwise a test thread
        // preempted for a millisecond finds the first check done and removed
        // before the others ask, and they run it again.
        let held = pool.permits().acquire_owned().await.unwrap();
        let release = async move {
            tokio::task::yield_now().await;
            drop(held);
        };
        let (a, b, c, ()) = tokio::join!(verify("pw"), verify("pw"), verify("pw"), release);
        assert_eq!((a, b, c), (Ok(true), Ok(true), Ok(true)));
        assert_eq!(pool.verifications(), vec![(4, 3)]);
        assert!(pool.in_flight.lock().unwrap().is_empty());
        // All permits held and the queue full: the next check is refused at once.
        let held = pool.permits().acquire_owned().await.unwrap();
        pool.waiting.store(pool.max_waiting, Ordering::SeqCst);
        assert_eq!(verify("pw").await, Err(Busy));
        pool.waiting.store(0, Ordering::SeqCst);
        drop(held);
        assert_eq!(verify("pw").await, Ok(true));
        assert!(pool.in_flight.lock().unwrap().is_empty());
    }
}
