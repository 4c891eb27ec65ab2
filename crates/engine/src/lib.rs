//! socialgate's engine: the pure core of the gateway.
//!
//! Job: turn one request into the facts the policy and the scanner see, decide it
//! (`policy`), scan its content (`dlp`) and give the whole verdict (`verdict`).
//! `explain`, the policy's own `tests:`, the fuzz targets and the live proxy all
//! call the same functions here, so they agree by construction.
//!
//! Limits: no network, no async runtime, no clock reads on the decision path
//! (the caller supplies the time), no globals. Loading a policy reads its files
//! through [`policy::sources`]; nothing else does I/O. Callers: the `socialgate`
//! gateway crate (proxy, CLI), benches and the fuzz targets.

pub mod dlp;
pub mod dlp_bridge;
pub mod host;
pub mod policy;
pub mod verdict;
pub mod view;
pub mod yaml_source;
