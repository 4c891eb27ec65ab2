//! The command line: `run`, `check`, `explain`, `scan`, `ca init`,
//! `hash-password`, one file each.
//! Exit codes: 0 all well; 1 a problem (printed as `FILE:LINE:COL: message` where
//! it concerns a file); 2 bad usage (clap); `scan` 3 when it found something.
//!
//! Job: parse the arguments (clap) and dispatch; this file also holds what
//! several commands share: the settings `run` would use from this directory,
//! the policy a command decides with, and a user's configured groups.
//! Called by the `socialgate` binary (`src/main.rs`) only.

mod ca;
mod check;
mod explain;
mod hash_password;
mod run;
mod scan;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::policy::Policy;
use crate::runtime::{load_checked_policy, PolicySource};
use crate::settings::Settings;

#[derive(Parser, Debug)]
#[command(
    name = "socialgate",
    version,
    about = "An HTTPS forward proxy that opens social media safely."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve. Without --config, uses ./socialgate.yaml if present, else built-in defaults.
    Run(run::RunArgs),
    /// Parse and compile a policy and run its `tests:`; with --settings, check the
    /// gateway settings, the Kerberos keytab and the directory. Exit 0 only when all is well.
    Check(check::CheckArgs),
    /// Show how a request would be decided, and why.
    Explain(explain::ExplainArgs),
    /// Run DLP detectors over a text or a raw request body. Exit 0 when clean, 3 when something was found.
    Scan(scan::ScanArgs),
    /// Manage the interception CA.
    Ca {
        #[command(subcommand)]
        command: ca::CaCommand,
    },
    /// Read a password on stdin and print a bcrypt hash for the htpasswd file.
    HashPassword(hash_password::HashPasswordArgs),
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(a) => run::run(a),
        Command::Check(a) => check::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Scan(a) => scan::run(a),
        Command::Ca { command } => ca::run(command),
        Command::HashPassword(a) => hash_password::run(a),
    }
}

/// The settings `run` would use from this directory (`./socialgate.yaml`), so
/// `explain` and `scan` decide with the same policy; the built-in defaults when
/// there is none or it does not load.
fn local_settings() -> Settings {
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
/// `settings` (only called then), loaded with its tests run; its errors are
/// printed on stderr and come back as exit code 1.
fn load_policy_for(
    policy: Option<PathBuf>,
    settings: impl FnOnce() -> Settings,
) -> Result<Policy, ExitCode> {
    let source = match policy {
        Some(p) => PolicySource::File(p),
        None => PolicySource::for_settings(&settings()),
    };
    load_checked_policy(&source).map_err(|errs| {
        for e in errs {
            eprintln!("{e}");
        }
        ExitCode::from(1)
    })
}

/// The groups `user` gets from `group_members` and, when configured and
/// reachable, the directory (a directory outage is reported on stderr and the
/// user is then in no directory group, as the gateway would treat them).
fn configured_groups(settings: &Settings, user: &str) -> Vec<String> {
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

/// `a, b, c`, or `(none)` for an empty list.
fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}
