//! Canaries: loopback listeners that must receive nothing.
//!
//! Job: count the connections made to an address the gateway must never reach
//! (a blocked destination, a port not allowed); a test asserts the count stays
//! at zero. Each connection is closed at once, unanswered.
//!
//! Limits: binds port 0 on the address given (keep it on 127.0.0.0/8 or
//! [::1]); counts TCP connections only.
//!
//! Callers: tests/ through `tests/support/mod.rs` (`canary`, `Canary`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::upstream::spawn_accept_loop;

/// A listener that counts connections; a test asserts it stays at zero.
pub struct Canary {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl Canary {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Starts a canary on `ip:0`.
pub async fn canary(ip: &str) -> Canary {
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    spawn_accept_loop(listener, move |s| {
        h.fetch_add(1, Ordering::SeqCst);
        drop(s);
        async {}
    });
    Canary { addr, hits }
}
