//! The command line: `run`, `check`, `explain`, `scan`, `ca init`,
//! `hash-password`, `catalogue check`, one file each.
//! Exit codes: 0 all well; 1 a problem (printed as `FILE:LINE:COL: message` where
//! it concerns a file); 2 bad usage (clap); `scan` 3 when it found something.
//!
//! Job: parse the arguments (clap) and dispatch to the command's file; what
//! several commands look up (settings, policy, a user's groups) is
//! `context.rs`. Called by the `socialgate` binary (`src/main.rs`) only.

mod ca;
mod catalogue;
mod check;
mod context;
mod explain;
mod hash_password;
mod run;
mod scan;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Check the site catalogue against recorded traffic (`catalogue check FILE.har`).
    Catalogue {
        #[command(subcommand)]
        command: catalogue::CatalogueCommand,
    },
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
        Command::Catalogue { command } => catalogue::run(command),
    }
}
