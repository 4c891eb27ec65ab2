//! `socialgate check`: a policy file (parse, compile, run its `tests:`, warn
//! about regexes that hold control characters) and/or, with `--settings`, a
//! settings file: its keys, then every start-up check `run` makes (the same
//! function), then the identity sources it names in depth (the Kerberos
//! keytab, the htpasswd file, the directory, and with `--user` that user's
//! groups).
//!
//! Limits: reports on stdout, one line per finding; exit 0 only when all is
//! well, else 1. The identity probes are `identity::kerberos::check_keytab`
//! and `identity::ldap::check_directory`. Called by `cli::main`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::context;
use crate::identity::ldap::list_or_none;
use crate::policy::load_policy;
use crate::policy::sources::FsFiles;
use crate::settings::Settings;
use crate::verdict::run_tests;

#[derive(Args, Debug)]
pub(super) struct CheckArgs {
    #[arg(value_name = "POLICY_FILE", required_unless_present = "settings")]
    policy: Option<PathBuf>,
    /// A settings file (socialgate.yaml) to check: its keys, the keytab, and
    /// whether the directory can be reached with the service account.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// With --settings: show the groups this user has (group_members and the directory).
    #[arg(long, value_name = "U", requires = "settings")]
    user: Option<String>,
}

pub(super) fn run(a: CheckArgs) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    if let Some(s) = &a.settings {
        code = check_settings(s, a.user.as_deref());
    }
    if let Some(p) = &a.policy {
        if a.settings.is_some() {
            println!();
        }
        let c = check_policy(p);
        if c != ExitCode::SUCCESS {
            code = c;
        }
    }
    code
}

fn check_policy(path: &Path) -> ExitCode {
    let name = path.display().to_string();
    let policy = match load_policy(&name, &FsFiles) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            println!(
                "{name}: {} error(s); the policy was not accepted",
                errors.0.len()
            );
            return ExitCode::from(1);
        }
    };
    for w in &policy.warnings {
        println!("{w}");
    }
    let failures = run_tests(&policy);
    for f in &failures {
        println!("{f}");
    }
    let total = policy.tests.len();
    if failures.is_empty() {
        println!(
            "{name}: OK (version {}, {} roles, {} sites, {} rules, {total} tests passed)",
            policy.version,
            policy.roles.len(),
            policy.sites.len(),
            policy.rules.len()
        );
        ExitCode::SUCCESS
    } else {
        println!("{name}: {} of {total} tests failed", failures.len());
        ExitCode::from(1)
    }
}

/// `socialgate check --settings FILE [--user U]`: the settings' keys, then
/// every start-up check `run` makes (`runtime::startup_checks`: the policy,
/// the CA, the audit path, the upstream roots, the identity sources), then the
/// Kerberos keytab, the htpasswd file, the directory, and a user's groups.
fn check_settings(path: &Path, user: Option<&str>) -> ExitCode {
    let name = path.display().to_string();
    let settings = match Settings::load(path) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            println!(
                "{name}: {} error(s); the settings were not accepted",
                errors.0.len()
            );
            return ExitCode::from(1);
        }
    };
    println!("{name}: settings OK");
    let report = crate::runtime::startup_checks(&settings);
    let mut problems = 0;
    for c in &report.checks {
        match &c.outcome {
            Ok(note) => println!("{}: OK {note}", c.what),
            Err(e) => {
                println!("{}: FAIL {e}", c.what);
                problems += 1;
            }
        }
    }
    if let Some(p) = &report.policy {
        for w in &p.warnings {
            println!("{w}");
        }
    }
    let identity = &settings.identity;
    if let Some(k) = &identity.kerberos {
        problems += crate::identity::kerberos::check_keytab(k);
    }
    if let Some(b) = &identity.basic {
        match crate::identity::Htpasswd::load(&b.htpasswd) {
            Ok(h) => println!("basic: OK {} ({} users)", b.htpasswd.display(), h.len()),
            Err(e) => {
                println!("basic: FAIL {e}");
                problems += 1;
            }
        }
    }
    if let Some(l) = &identity.ldap {
        problems += crate::identity::ldap::check_directory(l, &settings.upstream.extra_roots, user);
    }
    if let Some(u) = user {
        let groups = context::configured_groups(&settings, u);
        println!("groups of {u}: {}", list_or_none(&groups));
    }
    if problems == 0 {
        println!("{name}: OK: `socialgate run --config {name}` would start");
        ExitCode::SUCCESS
    } else {
        println!("{name}: {problems} problem(s); `socialgate run` would refuse to start");
        ExitCode::from(1)
    }
}
