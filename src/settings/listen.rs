//! The top-level `listen:` and `admin_listen:` keys: the proxy's listening
//! addresses (one or a list) and the admin listener's.
//!
//! Limits: addresses are parsed, not bound (a busy port shows at start-up);
//! a present `listen:` replaces the default `127.0.0.1:3128`. Called by
//! [`super::Settings::from_yaml`].

use std::net::SocketAddr;

use super::problems::Problems;
use super::values::parse_listen;
use crate::policy::raw::OneOrMany;
use crate::yaml_source::index;

/// Parses `listen:` (a single address is reported at `listen`, one of a list
/// at `listen[i]`).
pub(super) fn parse_proxy(
    listen: OneOrMany<String>,
    problems: &mut Problems<'_>,
) -> Vec<SocketAddr> {
    let list = listen.to_vec();
    let mut out = Vec::new();
    for (i, l) in list.iter().enumerate() {
        let p = if list.len() == 1 {
            "listen".to_string()
        } else {
            index("listen", i)
        };
        match parse_listen(l) {
            Ok(a) => out.push(a),
            Err(e) => problems.at(&p, format!("`listen`: {e}")),
        }
    }
    out
}

/// Parses `admin_listen:`; `None` after reporting a problem.
pub(super) fn parse_admin(admin_listen: &str, problems: &mut Problems<'_>) -> Option<SocketAddr> {
    match parse_listen(admin_listen) {
        Ok(a) => Some(a),
        Err(e) => {
            problems.at("admin_listen", format!("`admin_listen`: {e}"));
            None
        }
    }
}
