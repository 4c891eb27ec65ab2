//! `socialgate ca init`: creates the interception CA (ECDSA P-256,
//! name-constrained; key file mode 0600) and prints its fingerprint.
//!
//! Limits: refuses to overwrite an existing `ca.crt` or `ca.key` (every client
//! would have to trust the new one); the CA itself is `crate::tls`'s. Called by
//! `cli::main`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub(super) enum CaCommand {
    /// Create a CA (ECDSA P-256, name-constrained; key file mode 0600). Refuses to overwrite.
    Init {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
    },
}

pub(super) fn run(command: CaCommand) -> ExitCode {
    match command {
        CaCommand::Init { dir } => init(&dir),
    }
}

fn init(dir: &Path) -> ExitCode {
    let cert = dir.join("ca.crt");
    let key = dir.join("ca.key");
    if cert.exists() || key.exists() {
        eprintln!(
            "socialgate: {} or {} already exists; remove both first if you really want a new CA (every client must then trust the new one)",
            cert.display(),
            key.display()
        );
        return ExitCode::from(1);
    }
    match crate::tls::CertificateAuthority::load_or_create(&cert, &key) {
        Ok((ca, _)) => {
            println!(
                "created {} and {} (key mode 0600)",
                cert.display(),
                key.display()
            );
            println!("SHA-256 fingerprint: {}", ca.sha256_fingerprint());
            println!(
                "Distribute {} to staff browsers as a trusted root; see docs/operations.md.",
                cert.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("socialgate: {e}");
            ExitCode::from(1)
        }
    }
}
