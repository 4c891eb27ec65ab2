#!/usr/bin/env bash
# Profiles of socialgate under the HTTP/2 workloads W8 (posting through the default
# policy and DLP) and W9 (h2 multiplexing through interception), with perf: what
# docs/benchmarks.md's "Where socialgate's CPU goes in W8 and W9" shows.
#
#     scripts/bench/profile.sh                      # 10 s of each, report in /tmp
#     scripts/bench/profile.sh --seconds 20 --out /tmp/h2-profile.md
#
# It builds socialgate, examples/bench_upstream and examples/connect_shim in release
# (into $CARGO_TARGET_DIR or target/), then runs scripts/bench/h2_workloads.py,
# whose standalone mode takes only the profiles: socialgate pinned to core 1,
# h2load + shim + upstream on core 0,
# `perf record -e cpu-clock -F 999 -g --call-graph dwarf` on the gateway process
# (the VM has no hardware counters; the release binary has symbols but no frame
# pointers, so the stacks are unwound from .eh_frame). The markdown report names the
# perf.data files and the full `perf report` texts it leaves in its temp dir.
# Needs perf (Debian linux-perf), h2load (nghttp2-client), and root or
# kernel.perf_event_paranoid <= 1. All traffic stays on 127.0.0.1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
command -v perf >/dev/null || { echo "profile.sh: perf is not installed (linux-perf)" >&2; exit 1; }
command -v h2load >/dev/null || { echo "profile.sh: h2load is not installed (nghttp2-client)" >&2; exit 1; }
cargo build --release --locked --bin socialgate --example bench_upstream --example connect_shim
exec python3 "$ROOT/scripts/bench/h2_workloads.py" "$@"
