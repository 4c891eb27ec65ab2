//! `socialgate run`: loads the settings (`--config`, else `./socialgate.yaml`,
//! else the built-in defaults) and serves until stopped.
//!
//! Limits: a settings error stops before anything is bound (exit 1); start-up
//! and serving are `crate::runtime::run`'s. Called by `cli::main`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::settings::Settings;

#[derive(Args, Debug)]
pub(super) struct RunArgs {
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Logs to stderr, `info` unless `RUST_LOG` says otherwise.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub(super) fn run(a: RunArgs) -> ExitCode {
    init_logging();
    let settings = match a.config.or_else(|| {
        let p = PathBuf::from("socialgate.yaml");
        p.exists().then_some(p)
    }) {
        Some(path) => match Settings::load(&path) {
            Ok(s) => {
                tracing::info!(settings = %path.display(), "settings loaded");
                s
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("socialgate: the settings have errors; nothing was started.");
                return ExitCode::from(1);
            }
        },
        None => {
            tracing::info!("no socialgate.yaml: running on built-in defaults (proxy 127.0.0.1:3128, clients from 127.0.0.0/8 are user `local` in group `all-staff`)");
            Settings::default()
        }
    };
    // MIT Kerberos finds the keytab through the environment, which must be set
    // before the runtime starts threads.
    if let Some(k) = &settings.identity.kerberos {
        crate::identity::kerberos::prepare_environment(&k.keytab);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("socialgate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(crate::runtime::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("socialgate: {e}");
            ExitCode::from(1)
        }
    }
}
