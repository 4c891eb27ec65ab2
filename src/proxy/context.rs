//! The context a request carries through the pipeline: the gateway, the client's
//! address, the reference id, the audit record in progress and the page-or-JSON
//! preference ([`RequestCtx`]); once admitted, also who asks and for which host
//! and port ([`Exchange`]). And the state of one client connection
//! ([`ClientConn`]). Made by `server` (and by `intercept` for each inner
//! request); read by the pipeline, the handlers and `respond`.

use std::net::IpAddr;
use std::sync::Arc;

use hyper::client::conn::http1::SendRequest;

use super::body::ProxyBody;
use super::gateway::Gateway;
use super::headers::wants_html;
use super::observe::{self, SharedLog};
use crate::identity::Principal;
use crate::policy::NormalHost;

/// Per client connection: its idle upstream HTTP/1.1 connections by the user
/// they were opened for, host and port (a change of user on one client
/// connection never reuses another user's upstream connection), and its
/// identity state (a Negotiate sign-in is bound to the connection).
#[derive(Default)]
pub struct ClientConn {
    pub upstreams: tokio::sync::Mutex<IdleUpstreams>,
    pub identity: crate::identity::ConnIdentity,
}

/// Whose and where an upstream connection is: user, host, port.
pub type UpstreamKey = (String, String, u16);

/// A client connection's idle upstream connections, most recently used last.
/// A list searched in order: a client connection uses one or a few, so that
/// costs less than hashing its key twice per request; at most
/// [`IdleUpstreams::MAX`] are kept (the oldest goes, and closes).
#[derive(Default)]
pub struct IdleUpstreams {
    idle: Vec<(UpstreamKey, SendRequest<ProxyBody>)>,
}

impl IdleUpstreams {
    /// Idle upstream connections kept per client connection.
    pub const MAX: usize = 32;

    /// Takes the idle connection opened for `user` to `host:port`, with its key.
    pub fn take(
        &mut self,
        user: &str,
        host: &str,
        port: u16,
    ) -> Option<(UpstreamKey, SendRequest<ProxyBody>)> {
        let at = self
            .idle
            .iter()
            .rposition(|((u, h, p), _)| *p == port && h == host && u == user)?;
        Some(self.idle.remove(at))
    }

    /// Gives back an idle connection (after a response).
    pub fn put(&mut self, key: UpstreamKey, sender: SendRequest<ProxyBody>) {
        if self.idle.len() >= Self::MAX {
            self.idle.remove(0);
        }
        self.idle.push((key, sender));
    }
}

/// One request, before anything is known of who sends it.
pub(crate) struct RequestCtx {
    pub gw: Arc<Gateway>,
    pub peer: IpAddr,
    /// The audit record's id, named in every response the gateway makes.
    pub reference: String,
    pub log: SharedLog,
    /// The client wants a page rather than JSON.
    pub html: bool,
    /// The client's `Accept-Language` (the language of its pages).
    pub accept_language: Option<String>,
    /// The host of the request target, normalised once by `server` for the
    /// audit record and reused by `forward`; `None` when no caller set it.
    pub target_host: Option<NormalHost>,
    /// When the request head arrived: the audit record's `ts` and the time
    /// the policy's `hours:` are decided at (one clock read for both).
    pub arrived: chrono::DateTime<chrono::Utc>,
}

impl RequestCtx {
    /// A fresh reference and audit record for `req`, sent for `host`.
    pub fn new<B>(gw: &Arc<Gateway>, peer: IpAddr, req: &http::Request<B>, host: String) -> Self {
        let reference = gw.reference();
        let arrived = chrono::Utc::now();
        let log = observe::RequestLog::new(
            &reference,
            arrived,
            peer,
            req.method(),
            host,
            req.uri().path(),
        );
        RequestCtx {
            gw: gw.clone(),
            peer,
            reference,
            log,
            html: wants_html(req.headers()),
            accept_language: req
                .headers()
                .get(http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(1024).collect()),
            target_host: None,
            arrived,
        }
    }
}

/// An admitted request: its context, who sends it and where it goes.
pub(crate) struct Exchange<'a> {
    pub ctx: &'a RequestCtx,
    pub principal: Arc<Principal>,
    pub host: NormalHost,
    pub port: u16,
    /// A host of the site this destination is decided as, when the gateway
    /// attributed it to the site by its address (an IP literal or another name
    /// pointing into the site's `networks:` or learned addresses); `None`: the
    /// host decides for itself.
    pub decide_as: Option<NormalHost>,
}

impl Exchange<'_> {
    /// The host the policy decides: [`Exchange::decide_as`], else the host.
    pub fn policy_host(&self) -> &NormalHost {
        self.decide_as.as_ref().unwrap_or(&self.host)
    }

    /// `host[:port]` as the site is told it (the default port left out).
    pub fn authority(&self, default_port: u16) -> String {
        let mut authority = self.host.to_authority_host();
        if self.port != default_port {
            // itoa rather than format!: this runs for every request.
            authority.push(':');
            authority.push_str(itoa::Buffer::new().format(self.port));
        }
        authority
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sender() -> SendRequest<ProxyBody> {
        let (io, _peer) = tokio::io::duplex(64);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        sender
    }

    fn key(user: &str, host: &str, port: u16) -> UpstreamKey {
        (user.to_string(), host.to_string(), port)
    }

    #[tokio::test]
    async fn idle_upstreams_are_taken_by_user_host_and_port_and_capped() {
        let mut pool = IdleUpstreams::default();
        pool.put(key("alice", "a.test", 80), sender().await);
        // Another user, host or port never gets it.
        assert!(pool.take("bob", "a.test", 80).is_none());
        assert!(pool.take("alice", "b.test", 80).is_none());
        assert!(pool.take("alice", "a.test", 8080).is_none());
        let (k, s) = pool.take("alice", "a.test", 80).unwrap();
        assert_eq!(k, key("alice", "a.test", 80));
        assert!(pool.take("alice", "a.test", 80).is_none());
        pool.put(k, s);
        // One more than the cap: the oldest goes.
        for i in 0..IdleUpstreams::MAX {
            pool.put(key("alice", &format!("h{i}.test"), 80), sender().await);
        }
        assert_eq!(pool.idle.len(), IdleUpstreams::MAX);
        assert!(pool.take("alice", "a.test", 80).is_none());
        assert!(pool.take("alice", "h0.test", 80).is_some());
    }
}
