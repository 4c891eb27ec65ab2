//! `socialgate hash-password [--user NAME]`: reads a password and prints its
//! bcrypt hash for an htpasswd file, as `NAME:HASH` with `--user` (the line
//! the file needs), else the hash alone.
//!
//! Limits: on a terminal it prompts on stderr and reads without echo (termios
//! through `rustix`), asking twice so a typo is caught; from a pipe it reads
//! one password from stdin without a prompt, without its final newline. An
//! empty password, a mismatch, or a user name that cannot be an htpasswd
//! name (empty, `:` or a control character) is refused (exit 1). Called by
//! `cli::main`.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::Args;

#[derive(Args, Debug)]
pub(super) struct HashPasswordArgs {
    #[arg(long, default_value_t = 10)]
    cost: u32,
    /// Print `NAME:HASH`, the htpasswd line for this user.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
}

/// Strips one final `\n` (and a `\r` before it).
fn without_newline(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// Prompts on stderr and reads one line from the terminal with echo off,
/// restoring the terminal's settings afterwards (also when reading fails).
fn read_hidden(prompt: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    let mut err = std::io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let saved = rustix::termios::tcgetattr(&stdin)
        .map_err(|e| format!("cannot read the terminal's settings: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
    quiet
        .local_modes
        .insert(rustix::termios::LocalModes::ECHONL);
    rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Flush, &quiet)
        .map_err(|e| format!("cannot turn the terminal's echo off: {e}"))?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Flush, &saved);
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(without_newline(&line).to_string())
}

/// The password: prompted for twice on a terminal, else all of stdin.
fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = read_hidden("Password: ")?;
        let again = read_hidden("Password again: ")?;
        if first != again {
            return Err("the two passwords differ; nothing was printed".into());
        }
        return Ok(first);
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    Ok(without_newline(&input).to_string())
}

pub(super) fn run(a: HashPasswordArgs) -> ExitCode {
    if let Some(u) = &a.user {
        if u.is_empty() || u.contains(':') || u.chars().any(char::is_control) {
            eprintln!("socialgate: `{}` cannot be an htpasswd user name (it must be non-empty, without `:` or control characters)", u.escape_debug());
            return ExitCode::from(1);
        }
    }
    let password = match read_password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("socialgate: {e}");
            return ExitCode::from(1);
        }
    };
    if password.is_empty() {
        eprintln!("socialgate: the password is empty");
        return ExitCode::from(1);
    }
    match bcrypt::hash(&password, a.cost) {
        Ok(h) => {
            match &a.user {
                Some(u) => println!("{u}:{h}"),
                None => println!("{h}"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("socialgate: {e}");
            ExitCode::from(1)
        }
    }
}
