//! Shared test support, for the tests that `mod support; use support::*;`: a real
//! upstream HTTP server on 127.0.0.1 that records what it receives, TLS upstreams
//! with a throwaway CA, a canary listener that must receive nothing, and an
//! in-process gateway on port 0 with clients through it. Everything stays on
//! loopback.
//!
//! The code lives in `crates/testkit` (`socialgate-testkit`), shared with the
//! examples; this file only names what the tests use.
// Each test uses some of these names.
#![allow(unused_imports)]

pub use socialgate_testkit::canary::{canary, Canary};
pub use socialgate_testkit::gateway::{
    admin_metrics, client, client_trusting_gateway, connection, gateway, htpasswd, open_tunnel,
    raw, read_response, send, tls_with_gateway, Fixture,
};
pub use socialgate_testkit::upstream::{
    tls_upstream, upstream_http, upstream_tls, websocket_accept, CertKind, Seen, SeenTls,
    TlsUpstream, Upstream,
};
