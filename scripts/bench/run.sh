#!/usr/bin/env bash
# Side-by-side benchmarks of socialgate against Squid, tinyproxy, mitmproxy and
# g3proxy (the workloads of docs/benchmarks.md). One command:
#
#     G3_SRC=/path/to/g3 scripts/bench/run.sh   # everything, ~20-25 min on 2 cores
#     scripts/bench/run.sh              # the same without g3proxy (skipped, said so)
#     scripts/bench/run.sh --perf       # and profile socialgate with perf (linux-perf)
#     scripts/bench/run.sh --help       # options (duration, rounds, workloads, peers)
#
# It installs what it needs (Debian squid-openssl, tinyproxy, curl, capnproto;
# mitmproxy from PyPI into target/bench/venv; oha from crates.io into
# target/bench/bin), builds g3proxy from the g3 checkout named by G3_SRC into
# target/bench/g3 (nothing of it is copied into this repository), builds socialgate
# and examples/bench_upstream in release (into $CARGO_TARGET_DIR if set), runs
# workloads W1-W4, T3 and M1 (--rounds of each oha workload, medians reported)
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
command -v h2load >/dev/null || need+=(nghttp2-client)   # W8, W9
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
# ssl-bump (W3, W4) needs Squid built with OpenSSL: Debian's `squid` is the GnuTLS
# build; `squid-openssl` replaces it (same binary name and paths).
if command -v squid >/dev/null && ! squid -v 2>/dev/null | grep -q -- '--with-openssl'; then
    say "this squid has no OpenSSL (no ssl-bump): installing squid-openssl in its place"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    { $SUDO apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq squid-openssl; } \
        >>"$BENCH/apt.log" 2>&1 ||
        say "squid-openssl could not be installed (see $BENCH/apt.log); Squid's W3/W4 rows will fail"
    squid -v 2>/dev/null | grep -q -- '--with-openssl' ||
        say "warning: squid still has no OpenSSL (ssl-bump)"
fi
# Debian starts these as services on install where an init system runs: the bench
# starts its own instances on free ports, so stopped services are not needed.

# --- g3proxy from a g3 checkout (G3_SRC) -------------------------------------
G3_BIN="$BENCH/g3/release/g3proxy"
extra=()
if [ -n "${G3_SRC:-}" ] && [ -f "$G3_SRC/g3proxy/Cargo.toml" ]; then
    if ! command -v capnp >/dev/null; then
        say "installing capnproto (g3proxy's build needs capnp)"
        if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
        { $SUDO apt-get update -qq &&
          DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq capnproto; } \
            >>"$BENCH/apt.log" 2>&1 || say "capnproto could not be installed (see $BENCH/apt.log)"
    fi
    say "building g3proxy from $G3_SRC into target/bench/g3 (10+ minutes the first time)"
    if (cd "$G3_SRC" && CARGO_TARGET_DIR="$BENCH/g3" cargo build --release --locked \
            -p g3proxy --no-default-features --features rustls-ring) \
            >"$BENCH/g3-build.log" 2>&1; then
        extra+=(--g3proxy "$G3_BIN")
    else
        say "g3proxy did not build (see $BENCH/g3-build.log); it is left out"
        export G3_SKIP_REASON="its build from G3_SRC failed (target/bench/g3-build.log)"
    fi
elif [ -n "${G3_SRC:-}" ]; then
    say "G3_SRC=$G3_SRC is not a g3 checkout (no g3proxy/Cargo.toml): g3proxy is left out"
    export G3_SKIP_REASON="G3_SRC=$G3_SRC is not a g3 checkout"
else
    say "G3_SRC is not set: g3proxy is left out (G3_SRC=/path/to/g3 $0 to include it)"
fi

# --- mitmproxy into a venv (needs Python >= 3.12 for current releases) --------
if [ ! -x "$BENCH/venv/bin/mitmdump" ]; then
    PY=""
    # The first interpreter that runs and is 3.12 or newer (a pyenv shim can be
    # on PATH for a version that is not installed, so each one is asked).
    for c in python3.13 python3.12 "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 python3; do
        if "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
            PY="$c"; break
        fi
    done
    [ -n "$PY" ] || PY=python3
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
cargo build --release --locked --bin socialgate --example bench_upstream --example connect_shim
case " $* " in
    *" --no-criterion "*) ;;
    *) say "building the criterion benches (W5-W7)"
       cargo bench --locked --no-run --bench leaf_mint --bench dlp_scan --bench decide ;;
esac

# --- run -----------------------------------------------------------------------
exec python3 "$ROOT/scripts/bench/bench.py" ${extra[@]+"${extra[@]}"} "$@"
