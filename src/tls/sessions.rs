//! The intercepting server's TLS session cache: what lets a browser that
//! reconnects to a site resume its session instead of a full handshake.
//!
//! rustls' own `ServerSessionMemoryCache` finds the entry to forget by walking
//! its insertion order from the oldest, so every resumption compared the
//! client's ticket with up to the whole cache (4,096 entries: about 5 % of the
//! CPU of a new intercepted connection, under one lock). [`ServerSessions`]
//! keeps the same behaviour — stateful, single-use tickets (a resumed ticket is
//! taken out), at most `capacity` entries, the oldest forgotten first — with
//! constant work per call: a hash map for lookups and a queue of
//! `(sequence, key)` for age, whose stale entries (taken or replaced keys) are
//! skipped when they reach the front and swept out when they outnumber the
//! live ones.
//!
//! Keys are presented by clients (TLS 1.2 session ids, TLS 1.3 ticket ids), so
//! the map keeps std's randomly keyed SipHash. A leaf of the module tree: the
//! leaf issuer (`issuer`) shares one of these among its resumable
//! `ServerConfig`s.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rustls::server::StoresServerSessions;

#[derive(Default)]
struct Entries {
    by_key: HashMap<Vec<u8>, (u64, Vec<u8>)>,
    /// Keys in the order they were stored, each with the sequence number it
    /// was stored under; an entry whose number no longer matches `by_key` is
    /// stale.
    order: VecDeque<(u64, Vec<u8>)>,
    next: u64,
}

/// A bounded server session store with constant work per call.
pub struct ServerSessions {
    capacity: usize,
    entries: Mutex<Entries>,
}

impl std::fmt::Debug for ServerSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSessions")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl ServerSessions {
    /// A store keeping at most `capacity` sessions (at least 1).
    pub fn new(capacity: usize) -> Self {
        ServerSessions {
            capacity: capacity.max(1),
            entries: Mutex::new(Entries::default()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Entries) -> R) -> R {
        match self.entries.lock() {
            Ok(mut e) => f(&mut e),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.with(|e| e.by_key.len())
    }

    /// No session held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Is the age-queue entry `(seq, key)` still the one `by_key` holds?
fn is_live(by_key: &HashMap<Vec<u8>, (u64, Vec<u8>)>, seq: u64, key: &[u8]) -> bool {
    by_key.get(key).is_some_and(|(live, _)| *live == seq)
}

impl Entries {
    /// Drops stale entries from the front of the age queue.
    fn skip_stale_front(&mut self) {
        while let Some((seq, key)) = self.order.front() {
            if is_live(&self.by_key, *seq, key) {
                break;
            }
            self.order.pop_front();
        }
    }
}

impl StoresServerSessions for ServerSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let capacity = self.capacity;
        self.with(|e| {
            let seq = e.next;
            e.next += 1;
            e.order.push_back((seq, key.clone()));
            e.by_key.insert(key, (seq, value));
            while e.by_key.len() > capacity {
                e.skip_stale_front();
                match e.order.pop_front() {
                    Some((_, oldest)) => {
                        e.by_key.remove(&oldest);
                    }
                    None => break,
                }
            }
            // Taken and replaced keys leave stale entries behind; sweep them
            // once they outnumber the live ones, so the queue stays within
            // twice the capacity.
            if e.order.len() > 2 * capacity {
                let by_key = &e.by_key;
                e.order.retain(|(seq, key)| is_live(by_key, *seq, key));
            }
            true
        })
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.with(|e| e.by_key.get(key).map(|(_, value)| value.clone()))
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        // The queue entry goes stale and is dropped when it reaches the front
        // or at the next sweep.
        self.with(|e| e.by_key.remove(key).map(|(_, value)| value))
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u32) -> Vec<u8> {
        i.to_be_bytes().to_vec()
    }

    #[test]
    fn a_taken_session_is_gone_and_get_leaves_it() {
        let s = ServerSessions::new(8);
        assert!(s.put(k(1), b"one".to_vec()));
        assert_eq!(s.get(&k(1)).as_deref(), Some(&b"one"[..]));
        assert_eq!(s.get(&k(1)).as_deref(), Some(&b"one"[..]));
        assert_eq!(s.take(&k(1)).as_deref(), Some(&b"one"[..]));
        assert_eq!(s.take(&k(1)), None);
        assert_eq!(s.get(&k(1)), None);
        assert!(s.is_empty());
    }

    #[test]
    fn the_oldest_session_is_forgotten_first_and_the_size_stays_bounded() {
        let s = ServerSessions::new(3);
        for i in 0..3 {
            s.put(k(i), vec![i as u8]);
        }
        s.put(k(3), vec![3]);
        assert_eq!(s.len(), 3);
        assert_eq!(s.get(&k(0)), None, "the oldest went first");
        for i in 1..4 {
            assert_eq!(s.get(&k(i)), Some(vec![i as u8]));
        }
    }

    #[test]
    fn a_replaced_key_counts_from_its_new_age_and_holds_its_new_value() {
        let s = ServerSessions::new(2);
        s.put(k(1), vec![1]);
        s.put(k(2), vec![2]);
        s.put(k(1), vec![11]); // k(1) is now the newest
        s.put(k(3), vec![3]); // so k(2) is the one forgotten
        assert_eq!(s.get(&k(2)), None);
        assert_eq!(s.get(&k(1)), Some(vec![11]));
        assert_eq!(s.get(&k(3)), Some(vec![3]));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn taking_every_session_as_it_comes_keeps_the_age_queue_bounded() {
        // Each connection stores tickets and each resumption takes one: the
        // queue must not grow with the number of connections.
        let s = ServerSessions::new(16);
        for i in 0..10_000 {
            s.put(k(i), vec![0; 8]);
            if i % 3 != 0 {
                assert!(s.take(&k(i)).is_some());
            }
        }
        assert!(s.len() <= 16);
        let queued = s.with(|e| e.order.len());
        assert!(queued <= 2 * 16 + 1, "age queue holds {queued} entries");
        // What is left is the newest of the untaken ones.
        assert!(s.get(&k(9_999)).is_some());
        assert!(s.get(&k(0)).is_none());
    }

    #[test]
    fn it_behaves_like_a_model_over_a_random_sequence() {
        // A plain model (a Vec in age order) against the store, on a fixed
        // pseudo-random sequence of puts, gets and takes over few keys.
        let cap = 5;
        let s = ServerSessions::new(cap);
        let mut model: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = k((x % 9) as u32);
            match (x >> 8) % 3 {
                0 => {
                    let value = step.to_le_bytes().to_vec();
                    model.retain(|(mk, _)| *mk != key);
                    model.push((key.clone(), value.clone()));
                    if model.len() > cap {
                        model.remove(0);
                    }
                    s.put(key, value);
                }
                1 => {
                    let want = model
                        .iter()
                        .find(|(mk, _)| *mk == key)
                        .map(|(_, v)| v.clone());
                    assert_eq!(s.get(&key), want, "get at step {step}");
                }
                _ => {
                    let at = model.iter().position(|(mk, _)| *mk == key);
                    let want = at.map(|i| model.remove(i).1);
                    assert_eq!(s.take(&key), want, "take at step {step}");
                }
            }
            assert_eq!(s.len(), model.len(), "len at step {step}");
        }
    }
}
