//! socialgate: an HTTPS forward proxy that opens social media safely.
//!
//! This crate is the gateway: listeners, identity, TLS, settings, the CLI, the
//! admin listener, audit and metrics. The pure core (the request view, policy,
//! DLP and the verdict) is the `socialgate-engine` crate, re-exported here under
//! its own module names; everything that touches the network lives in `proxy`.
//! `docs/architecture.md` shows how a request passes through both.

pub mod admin;
pub mod audit;
pub mod build_info;
pub mod cli;
pub mod drift;
/// Fuzz entry points, only with the `fuzzing` feature: for the cargo-fuzz
/// targets in `fuzz/` and `tests/fuzz_corpus.rs` (every test build has it).
#[cfg(feature = "fuzzing")]
pub mod fuzz_harness;
pub mod identity;
pub mod metrics;
pub mod net_guard;
pub mod pages;
pub mod proxy;
pub mod runtime;
pub mod settings;
pub mod syslog;
pub mod tls;

pub use socialgate_engine::{dlp, dlp_bridge, policy, verdict, view, yaml_source};
