//! The `socialgate` binary: see `cli/` (one file per command). Its allocator is
//! mimalloc: the proxy allocates and frees small buffers on every request, and
//! mimalloc does that with less CPU than glibc's malloc (see docs/benchmarks.md).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    socialgate::cli::main()
}
