//! The command line: `run`, `check`, `explain`, `scan`, `ca init`,
//! `hash-password`, `catalogue check`, `catalogue report`, `replay`, one file each.
//! Exit codes: 0 all well; 1 a problem (printed as `FILE:LINE:COL: message` where
//! it concerns a file); 2 bad usage (clap); `scan` 3 when it found something;
//! `replay --fail-on-change` 4 when something would change.
//!
//! Job: parse the arguments (clap) and dispatch to the command's file; what
//! several commands look up (settings, policy, a user's groups) is
//! `context.rs`. Called by the `socialgate` binary (`src/main.rs`) only.

mod ca;
mod catalogue;
mod catalogue_report;
mod check;
mod context;
mod explain;
mod hash_password;
mod replay;
mod run;
mod scan;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "socialgate",
    version = crate::build_info::LONG_VERSION,
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
    /// Read a password (prompted without echo on a terminal, else one line of
    /// stdin) and print its bcrypt hash, or `user:hash` with --user, for the htpasswd file.
    HashPassword(hash_password::HashPasswordArgs),
    /// Check the site catalogue against recorded traffic (`catalogue check FILE.har`).
    Catalogue {
        #[command(subcommand)]
        command: catalogue::CatalogueCommand,
    },
    /// Re-decide the requests of audit logs (plain, gzip or `-`) under a draft
    /// policy and show what would change. Exit 4 with --fail-on-change when
    /// something would; 1 on an unreadable file or a line that is not an audit record.
    Replay(replay::ReplayArgs),
}

/// The exit status of a command whose reader went away (`socialgate scan |
/// head`): 141, as a shell reports a process ended by SIGPIPE, so a pipeline
/// under `set -o pipefail` notices the output was cut short, yet nothing is
/// printed (0 would make a cut-short `scan` look clean).
pub const BROKEN_PIPE_EXIT: i32 = 141;

/// Makes a closed stdout end the process quietly. Rust ignores SIGPIPE, so
/// `println!` to a closed pipe panics ("failed printing to stdout: Broken
/// pipe"); this hook turns exactly that panic into a quiet exit with
/// [`BROKEN_PIPE_EXIT`] and leaves every other panic to the default hook.
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(BROKEN_PIPE_EXIT);
        }
        default(info);
    }));
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    exit_quietly_on_broken_pipe();
    match Cli::parse().command {
        Command::Run(a) => run::run(a),
        Command::Check(a) => check::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Scan(a) => scan::run(a),
        Command::Ca { command } => ca::run(command),
        Command::HashPassword(a) => hash_password::run(a),
        Command::Catalogue { command } => catalogue::run(command),
        Command::Replay(a) => replay::run(a),
    }
}
