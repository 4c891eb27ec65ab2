//! Test support for socialgate, shared by the integration tests (`tests/`), the
//! example servers (`examples/`) and their scripts: everything runs on loopback.
//!
//! - `ca`: a throwaway test CA and leaf certificates (rcgen), rustls server configs.
//! - `upstream`: recording HTTP and TLS upstreams, a WebSocket echo.
//! - `canary`: loopback listeners that must receive nothing.
//! - `gateway`: a fixture directory, an in-process gateway from settings and
//!   policy YAML, clients through it, its metrics.
//! - `directory`: a real MIT Kerberos KDC and OpenLDAP server on 127.0.0.1.
//! - `script`: hand-off files and arguments of the example servers.
//!
//! Limits: for tests and local tools, never for production: it panics on any
//! failure (a failed test says where), and no helper sends traffic beyond
//! 127.0.0.0/8 or [::1] unless its caller points it there.
//!
//! Callers: `tests/support/mod.rs` and `tests/support_directory/mod.rs` re-export
//! it for the tests that `mod support;`; `tests/kerberos.rs`, `tests/ldap.rs`,
//! `tests/kerberos_bench.rs`, `examples/bench_upstream.rs` and
//! `examples/e2e_upstream.rs` use it directly. The root package dev-depends on it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod ca;
pub mod canary;
pub mod directory;
pub mod gateway;
pub mod script;
pub mod upstream;
