#!/usr/bin/env bash
# Side-by-side benchmarks of socialgate against Squid, tinyproxy and mitmproxy
# (the workloads of docs/benchmarks.md). One command:
#
#     scripts/bench/run.sh              # everything, ~10-15 minutes on 2 cores
#     scripts/bench/run.sh --perf       # and profile socialgate with perf (linux-perf)
#     scripts/bench/run.sh --help       # options (duration, workloads, peers, perf)
#
# It installs what it needs (Debian squid-openssl, tinyproxy, curl; mitmproxy from
# PyPI into target/bench/venv; oha from crates.io into target/bench/bin), builds
# socialgate and examples/bench_upstream in release, runs workloads W1-W4 and M1
# against every peer that supports them with each proxy pinned to core 1 and the
# load on core 0, runs the criterion benches for W5-W7, prints one table per
# workload and writes docs/benchmarks.md. All traffic stays on 127.0.0.1.
# Run as root (apt-get; Squid drops to the `proxy` user itself; the proxies and the
# load run at nice -10, `--nice 0` to leave priorities alone).
set -euo pipefail

export BENCH_T0="${BENCH_T0:-$(date +%s)}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH="$ROOT/target/bench"
mkdir -p "$BENCH"
cd "$ROOT"

for a in "$@"; do
    case "$a" in
        --help|-h) exec python3 "$ROOT/scripts/bench/bench.py" --help ;;
        --report-only|--report-only=*) exec python3 "$ROOT/scripts/bench/bench.py" "$@" ;;
    esac
done

say() { printf '[run.sh] %s\n' "$*"; }

# --- Debian packages ---------------------------------------------------------
need=()
command -v squid >/dev/null || need+=(squid-openssl)
command -v tinyproxy >/dev/null || need+=(tinyproxy)
command -v curl >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux)
command -v openssl >/dev/null || need+=(openssl)
case " $* " in *" --perf "*) command -v perf >/dev/null || need+=(linux-perf) ;; esac
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >"$BENCH/apt.log" 2>&1 ||
        say "apt-get install failed (see $BENCH/apt.log); peers that are missing are left out"
fi
if squid -v 2>/dev/null | grep -q -- '--with-openssl'; then :; elif command -v squid >/dev/null; then
    say "warning: this squid has no OpenSSL (ssl-bump); install squid-openssl"
fi
# Debian starts these as services on install where an init system runs: the bench
# starts its own instances on free ports, so stopped services are not needed.

# --- mitmproxy into a venv (needs Python >= 3.12 for current releases) --------
if [ ! -x "$BENCH/venv/bin/mitmdump" ]; then
    PY=""
    for c in python3.13 python3.12 "$HOME/.pyenv/versions/3.12"*/bin/python3 python3; do
        if command -v "$c" >/dev/null 2>&1; then PY="$c"; break; fi
        if [ -x "$c" ]; then PY="$c"; break; fi
    done
    say "installing mitmproxy from PyPI into target/bench/venv (with $PY)"
    { "$PY" -m venv "$BENCH/venv" && "$BENCH/venv/bin/pip" install -q mitmproxy; } \
        >"$BENCH/mitm-install.log" 2>&1 ||
        say "mitmproxy could not be installed (see $BENCH/mitm-install.log); it is left out"
fi

# --- oha ---------------------------------------------------------------------
if [ ! -x "$BENCH/bin/oha" ]; then
    if command -v oha >/dev/null; then
        ln -sf "$(command -v oha)" "$BENCH/bin/oha"
    else
        say "building oha (cargo install oha --locked), a few minutes the first time"
        cargo install oha --locked --root "$BENCH" >"$BENCH/oha-install.log" 2>&1 || {
            say "oha could not be installed (see $BENCH/oha-install.log): no load generator"
            exit 1
        }
    fi
fi

# --- build ---------------------------------------------------------------------
say "building socialgate and the bench upstream (release)"
cargo build --release --locked --bin socialgate --example bench_upstream
case " $* " in
    *" --no-criterion "*) ;;
    *) say "building the criterion benches (W5-W7)"
       cargo bench --locked --no-run --bench leaf_mint --bench dlp_scan --bench decide ;;
esac

# --- run -----------------------------------------------------------------------
exec python3 "$ROOT/scripts/bench/bench.py" "$@"
