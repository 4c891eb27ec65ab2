//! `socialgate run`: loads the settings (`--config`, else `./socialgate.yaml`,
//! else the built-in defaults) and serves until stopped.
//!
//! Limits: a settings error stops before anything is bound (exit 1); logging
//! (`log.format`, colour only on a terminal without `NO_COLOR`) is set up once
//! the settings are read; start-up checks and serving are
//! `crate::runtime::run`'s. Called by `cli::main`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::settings::{LogFormat, Settings};

#[derive(Args, Debug)]
pub(super) struct RunArgs {
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Logs to stderr, `info` unless `RUST_LOG` says otherwise, in `format`.
/// Text is coloured only when stderr is a terminal and `NO_COLOR` is unset
/// (a log redirected to a file or a journal carries no escape codes); JSON is
/// one object per line (`timestamp`, `level`, `fields.message`, the event's
/// other fields, `target`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
        LogFormat::Text => builder.with_ansi(use_colour()).try_init(),
    };
}

/// Colour only for a person at a terminal who has not asked for none.
fn use_colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub(super) fn run(a: RunArgs) -> ExitCode {
    let (settings, loaded_from) = match a.config.or_else(|| {
        let p = PathBuf::from("socialgate.yaml");
        p.exists().then_some(p)
    }) {
        Some(path) => match Settings::load(&path) {
            Ok(s) => (s, Some(path)),
            Err(e) => {
                eprintln!("{e}");
                eprintln!("socialgate: the settings have errors; nothing was started.");
                return ExitCode::from(1);
            }
        },
        None => (Settings::default(), None),
    };
    init_logging(settings.log_format);
    match &loaded_from {
        Some(path) => tracing::info!(settings = %path.display(), "settings loaded"),
        None => tracing::info!("no socialgate.yaml: running on built-in defaults (proxy 127.0.0.1:3128, clients from 127.0.0.0/8 are user `local` in group `all-staff`)"),
    }
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
