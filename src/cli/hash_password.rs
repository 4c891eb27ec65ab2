//! `socialgate hash-password`: reads a password on stdin and prints its bcrypt
//! hash for an htpasswd file (`user:HASH`).
//!
//! Limits: one password, without its final newline; an empty one is refused
//! (exit 1). Called by `cli::main`.

use std::io::Read;
use std::process::ExitCode;

use clap::Args;

#[derive(Args, Debug)]
pub(super) struct HashPasswordArgs {
    #[arg(long, default_value_t = 10)]
    cost: u32,
}

pub(super) fn run(a: HashPasswordArgs) -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("socialgate: cannot read the password from stdin: {e}");
        return ExitCode::from(1);
    }
    let password = input.strip_suffix('\n').unwrap_or(&input);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("socialgate: the password is empty");
        return ExitCode::from(1);
    }
    match bcrypt::hash(password, a.cost) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("socialgate: {e}");
            ExitCode::from(1)
        }
    }
}
