//! What several commands look up the way `socialgate run` would: the settings
//! of this directory, the policy to decide with, and a user's configured
//! groups.
//!
//! Limits: problems are printed on stderr (failing policy tests too, without
//! stopping the command); a settings file with errors falls
//! back to the built-in defaults (only to find the policy), a directory that
//! cannot be reached leaves the user in no directory group. Called by
//! `cli::check`, `cli::explain` and `cli::scan`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::policy::Policy;
use crate::runtime::{load_unchecked_policy, PolicySource};
use crate::settings::Settings;
use crate::verdict::run_tests;

/// The settings `run` would use from this directory (`./socialgate.yaml`), so
/// `explain` and `scan` decide with the same policy; the built-in defaults when
/// there is none or it does not load.
pub(super) fn local_settings() -> Settings {
    let path = PathBuf::from("socialgate.yaml");
    if !path.exists() {
        return Settings::default();
    }
    match Settings::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}\nsocialgate: ./socialgate.yaml has errors; using the built-in defaults to find the policy");
            Settings::default()
        }
    }
}

/// The policy `--policy` names, else the one `run` would choose with
/// `settings` (only called then), loaded and compiled; its errors are printed
/// on stderr and come back as exit code 1. Its own `tests:` are run too, but a
/// failing test does not stop `explain` or `scan` (that is when one needs
/// them): each failure is printed on stderr and their number comes back.
pub(super) fn load_policy_for(
    policy: Option<PathBuf>,
    settings: impl FnOnce() -> Settings,
) -> Result<(Policy, usize), ExitCode> {
    let source = match policy {
        Some(p) => PolicySource::File(p),
        None => PolicySource::for_settings(&settings()),
    };
    let policy = load_unchecked_policy(&source).map_err(|errs| {
        for e in errs {
            eprintln!("{e}");
        }
        ExitCode::from(1)
    })?;
    let failures = run_tests(&policy);
    for f in &failures {
        eprintln!("{f}");
    }
    if !failures.is_empty() {
        eprintln!(
            "socialgate: warning: {} of the policy's {} own tests fail (above); `run` would refuse this policy. Deciding with it anyway.",
            failures.len(),
            policy.tests.len()
        );
    }
    Ok((policy, failures.len()))
}

/// The groups `user` gets from `group_members` and, when configured and
/// reachable, the directory (a directory outage is reported on stderr and the
/// user is then in no directory group, as the gateway would treat them).
pub(super) fn configured_groups(settings: &Settings, user: &str) -> Vec<String> {
    let mut identity = settings.identity.clone();
    identity.kerberos = None;
    identity.basic = None;
    let resolver = match crate::identity::IdentityResolver::build(
        identity,
        &settings.upstream.extra_roots,
        None,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("socialgate: {e}");
            return Vec::new();
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("socialgate: cannot start the runtime: {e}");
            return Vec::new();
        }
    };
    rt.block_on(async {
        if let Some(d) = resolver.directory() {
            if let Err(e) = d.lookup(user).await {
                eprintln!("socialgate: {e}; `{user}` is taken to be in no directory group");
            }
        }
        resolver.groups_for(user).await
    })
}
