//! Session tickets for upstream TLS. rustls' memory cache keeps 8 TLS 1.3 tickets
//! per site: fewer than a gateway needs when many tunnels to one site open at
//! once (each new connection spends a ticket, and the two it gets back arrive only
//! after its handshake), so bursts fall back to full handshakes with certificate
//! verification. [`TicketStore`] keeps up to [`TICKETS_PER_SITE`] for each of up to
//! [`SITES`] sites (oldest site forgotten first) and leaves the rest (key-exchange
//! hints, TLS 1.2 sessions) to rustls' cache. Tickets are the gateway's own client
//! state: no user's credentials are in them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rustls::client::{ClientSessionMemoryCache, ClientSessionStore};
use rustls::client::{Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;

/// TLS 1.3 tickets kept per site.
pub const TICKETS_PER_SITE: usize = 64;
/// Sites remembered.
pub const SITES: usize = 1024;

#[derive(Default)]
struct Tickets {
    by_site: HashMap<ServerName<'static>, VecDeque<Tls13ClientSessionValue>>,
    /// Sites in the order they were first seen, for eviction.
    order: VecDeque<ServerName<'static>>,
}

/// A [`ClientSessionStore`] with room for many TLS 1.3 tickets per site.
pub struct TicketStore {
    tickets: Mutex<Tickets>,
    others: ClientSessionMemoryCache,
}

impl std::fmt::Debug for TicketStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketStore").finish_non_exhaustive()
    }
}

impl Default for TicketStore {
    fn default() -> Self {
        TicketStore {
            tickets: Mutex::new(Tickets::default()),
            others: ClientSessionMemoryCache::new(SITES),
        }
    }
}

impl TicketStore {
    fn with<R>(&self, f: impl FnOnce(&mut Tickets) -> R) -> R {
        match self.tickets.lock() {
            Ok(mut t) => f(&mut t),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.others.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.others.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.others.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.others.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.others.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.with(|t| {
            if !t.by_site.contains_key(&server_name) {
                if t.order.len() >= SITES {
                    if let Some(oldest) = t.order.pop_front() {
                        t.by_site.remove(&oldest);
                    }
                }
                t.order.push_back(server_name.clone());
            }
            let queue = t.by_site.entry(server_name).or_default();
            if queue.len() >= TICKETS_PER_SITE {
                queue.pop_front();
            }
            queue.push_back(value);
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        // Newest first: it has the most lifetime left.
        self.with(|t| t.by_site.get_mut(server_name)?.pop_back())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rustls::client::Resumption;
    use rustls::pki_types::pem::PemObject;
    use rustls::{ClientConnection, HandshakeKind, ServerConnection};
    use std::sync::Arc;

    fn configs(
        store: Option<Arc<TicketStore>>,
    ) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["site.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = crate::tls::ca::ring_provider();
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
                    .unwrap(),
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        if let Some(store) = store {
            client.resumption = Resumption::store(store);
        }
        (Arc::new(server), Arc::new(client))
    }

    /// Moves bytes both ways until neither side has anything to send.
    fn pump(c: &mut ClientConnection, s: &mut ServerConnection) {
        loop {
            let mut moved = false;
            while c.wants_write() {
                let mut buf = Vec::new();
                c.write_tls(&mut buf).unwrap();
                s.read_tls(&mut &buf[..]).unwrap();
                s.process_new_packets().unwrap();
                moved = true;
            }
            while s.wants_write() {
                let mut buf = Vec::new();
                s.write_tls(&mut buf).unwrap();
                c.read_tls(&mut &buf[..]).unwrap();
                c.process_new_packets().unwrap();
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    /// Warms the store with `warm` sequential connections, then opens `burst` at
    /// once (each ClientHello takes its ticket before any handshake completes) and
    /// counts how many of those resumed.
    fn resumed_in_burst(store: Option<Arc<TicketStore>>, warm: usize, burst: usize) -> usize {
        let (server, client) = configs(store);
        let name = ServerName::try_from("site.test").unwrap();
        for _ in 0..warm {
            let mut c = ClientConnection::new(client.clone(), name.clone()).unwrap();
            let mut s = ServerConnection::new(server.clone()).unwrap();
            pump(&mut c, &mut s);
            assert!(!c.is_handshaking());
        }
        let mut pairs: Vec<_> = (0..burst)
            .map(|_| {
                (
                    ClientConnection::new(client.clone(), name.clone()).unwrap(),
                    ServerConnection::new(server.clone()).unwrap(),
                )
            })
            .collect();
        pairs
            .iter_mut()
            .map(|(c, s)| {
                pump(c, s);
                c.handshake_kind()
            })
            .filter(|k| *k == Some(HandshakeKind::Resumed))
            .count()
    }

    #[test]
    fn a_burst_of_connections_to_one_site_resumes() {
        // rustls' own cache: at most 8 of the 30 resume.
        assert!(resumed_in_burst(None, 40, 30) <= 8);
        // This store: every one of them.
        assert_eq!(
            resumed_in_burst(Some(Arc::new(TicketStore::default())), 40, 30),
            30
        );
    }

    #[test]
    fn tickets_are_bounded_per_site() {
        let store = Arc::new(TicketStore::default());
        resumed_in_burst(Some(store.clone()), 100, 0);
        let n = store.with(|t| t.by_site.values().map(VecDeque::len).sum::<usize>());
        assert_eq!(n, TICKETS_PER_SITE);
    }
}
