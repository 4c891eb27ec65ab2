//! socialgate: an HTTPS forward proxy that opens social media safely.
//!
//! The policy (`policy`) and the verdict (`verdict`) are pure; everything that
//! touches the network lives in `proxy`. See DESIGN.md in the project docs for the
//! contracts: CLI verbs, YAML keys, status codes, metric names.

pub mod admin;
pub mod audit;
pub mod cli;
pub mod dlp;
pub mod dlp_bridge;
pub mod fuzz_harness;
pub mod identity;
pub mod metrics;
pub mod net_guard;
pub mod policy;
pub mod proxy;
pub mod runtime;
pub mod settings;
pub mod tls;
pub mod verdict;
pub mod yaml_source;
