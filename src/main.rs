//! The `socialgate` binary: see `cli.rs` for the commands.

fn main() -> std::process::ExitCode {
    socialgate::cli::main()
}
