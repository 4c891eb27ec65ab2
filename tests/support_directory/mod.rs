//! Real directory servers for the identity tests (an MIT Kerberos KDC and an
//! OpenLDAP server on 127.0.0.1), for the tests that `mod support_directory;`.
//!
//! The code lives in `socialgate_testkit::directory` (`crates/testkit`); this
//! file re-exports it.
// Each test uses some of these names.
#![allow(unused_imports)]

pub use socialgate_testkit::directory::*;
