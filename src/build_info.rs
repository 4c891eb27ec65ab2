//! What this binary is: its version, the commit and the day it was built from
//! (recorded by the crate's build script). Shown by `socialgate --version`, the
//! admin status page and the `socialgate_build_info` metric, so an operator can
//! tell which build each replica runs. No I/O.

/// The crate version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from, or `unknown`.
pub const COMMIT: &str = env!("SOCIALGATE_COMMIT");
/// The day (UTC) it was built.
pub const BUILT: &str = env!("SOCIALGATE_BUILT");
/// `X.Y.Z (commit C, built D)`: what `socialgate --version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SOCIALGATE_COMMIT"),
    ", built ",
    env!("SOCIALGATE_BUILT"),
    ")"
);
