#!/usr/bin/env bash
# Instructions per request of the socialgate proxy, counted by callgrind: a
# figure that does not move with the machine's load, for before/after
# comparisons of a change (the timed workloads of run.sh swing by 10-15 %
# between rounds on a shared VM; this does not).
#
# Job: start the bench upstream (examples/bench_upstream) and socialgate under
# `valgrind --tool=callgrind --instr-atstart=no` on loopback, warm up (leaves
# minted, connections open), then count two runs of the load with
# instrumentation on: N requests, then 2N. Per request = (I(2N) - I(N)) / N, so
# what each run pays once (its connections, TLS handshakes) cancels out.
# Counted: user-space instructions of every thread of the proxy (the audit
# writer too), not the kernel's. valgrind counts each iteration of `rep movs`
# as one instruction, so large memcpys weigh more here than in time.
#
# Workloads, as in docs/benchmarks.md: W1 (plain HTTP GET), W3 (intercepted
# HTTPS GET over HTTP/1.1), T3 (HTTPS through a plain CONNECT tunnel), W9
# (h2load -c 8 -m 100 through interception, via examples/connect_shim), W8
# (the 2 KB LinkedIn share POSTed over HTTP/2 under policies/default.yaml as
# the press office, DLP profile `official`).
#
#     scripts/bench/instructions.sh [BINARY] [WORKLOADS] [N]
#     scripts/bench/instructions.sh target/release/socialgate W1,W3,W9 4000
#
# Needs valgrind, oha (target/bench/bin/oha, installed by run.sh) and h2load
# (Debian nghttp2-client) for W8/W9; builds the release binary and the
# examples when BINARY is not given. Callgrind output and logs stay in a
# temporary directory named on each result line. Limits: the proxy runs about
# 50x slower under valgrind, so timeouts and batching differ from a real run
# (fewer requests per audit write, per read); compare binaries with it, not
# proxies.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${1:-}
WORKLOADS=${2:-W1,W3,T3,W9,W8}
N=${3:-4000}
OHA=$ROOT/target/bench/bin/oha
EX=$TARGET/release/examples
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release --locked --bin socialgate \
        --example bench_upstream --example connect_shim)
    BIN=$TARGET/release/socialgate
fi
[ -x "$OHA" ] || { echo "no oha at $OHA: run scripts/bench/run.sh once" >&2; exit 2; }

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# One workload: prints "WL: I(N) I(2N) per-request".
count() {
    local wl=$1 d up_pid vg_pid shim_pid="" hp sp port admin
    d=$(mktemp -d /tmp/socialgate-instr.XXXX)
    hp=$(free_port); sp=$(free_port); port=$(free_port); admin=$(free_port)
    local names="localhost" policy=$ROOT/scripts/bench/policy.yaml
    local who="{ cidr: 127.0.0.0/8, user: bob, groups: [all-staff] }"
    local resolve="localhost: 127.0.0.1"
    if [ "$wl" = W8 ]; then
        names="www.linkedin.com,linkedin.com,localhost"
        policy=$ROOT/policies/default.yaml
        who="{ cidr: 127.0.0.0/8, user: alice, groups: [communications] }"
        resolve="www.linkedin.com: 127.0.0.1"
        python3 -c "import sys; sys.path.insert(0, '$ROOT/scripts/bench'); \
import h2_workloads; sys.stdout.buffer.write(h2_workloads.post_body())" >"$d/post.json"
    fi
    "$EX/bench_upstream" --http-port "$hp" --https-port "$sp" --ca-out "$d/up.pem" \
        --names "$names" --port-file "$d/ports" >"$d/upstream.log" 2>&1 &
    up_pid=$!
    while [ ! -s "$d/ports" ]; do sleep 0.1; done
    cat >"$d/socialgate.yaml" <<YAML
listen: 127.0.0.1:$port
admin_listen: 127.0.0.1:$admin
policy: $policy
ca: { cert: $d/ca.crt, key: $d/ca.key, create_if_missing: true }
identity:
  networks:
    - $who
upstream:
  extra_roots: [$d/up.pem]
  resolve: { $resolve }
  allow_destinations: [127.0.0.1/32]
  allow_ip_literals: [127.0.0.1/32]
  allowed_ports: [$hp, $sp]
limits:
  max_connections: 30000
  idle_timeout: 600s
audit: { path: $d/audit.jsonl }
YAML
    RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$d/callgrind.out" "$BIN" run --config "$d/socialgate.yaml" \
        >"$d/socialgate.log" 2>&1 &
    vg_pid=$!
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.2; done
    load() {
        case $wl in
            W1) "$OHA" --no-tui -n "$1" -c 8 -x "http://127.0.0.1:$port" "http://127.0.0.1:$hp/" ;;
            W3) "$OHA" --no-tui -n "$1" -c 8 -x "http://127.0.0.1:$port" --cacert "$d/ca.crt" \
                    "https://localhost:$sp/" ;;
            T3) "$OHA" --no-tui -n "$1" -c 8 -x "http://127.0.0.1:$port" --cacert "$d/up.pem" \
                    "https://127.0.0.1:$sp/" ;;
            W8|W9)
                if [ -z "$shim_pid" ]; then
                    local target=localhost:$sp
                    [ "$wl" = W8 ] && target=www.linkedin.com:$sp
                    "$EX/connect_shim" --proxy "127.0.0.1:$port" --target "$target" \
                        --port-file "$d/shim.port" >"$d/shim.log" 2>&1 &
                    shim_pid=$!
                    while [ ! -s "$d/shim.port" ]; do sleep 0.1; done
                fi
                local shim
                shim=$(cat "$d/shim.port")
                if [ "$wl" = W9 ]; then
                    h2load --connect-to "127.0.0.1:$shim" -c 8 -m 100 -n "$1" "https://localhost:$sp/"
                else
                    h2load --connect-to "127.0.0.1:$shim" -c 16 -m 10 -n "$1" -d "$d/post.json" \
                        -H "content-type: application/json" \
                        "https://www.linkedin.com:$sp/voyager/api/contentcreation/normShares"
                fi ;;
        esac
    }
    load 400 >"$d/warm.txt" 2>&1
    callgrind_control -i on "$vg_pid" >/dev/null 2>&1
    load "$N" >"$d/load-n.txt" 2>&1
    callgrind_control -d "$vg_pid" >/dev/null 2>&1
    callgrind_control -z "$vg_pid" >/dev/null 2>&1
    load $((N * 2)) >"$d/load-2n.txt" 2>&1
    callgrind_control -d "$vg_pid" >/dev/null 2>&1
    kill "$vg_pid" "$up_pid" ${shim_pid:+"$shim_pid"} 2>/dev/null || true
    wait "$vg_pid" 2>/dev/null || true
    local parts=() one two
    mapfile -t parts < <(ls -1 "$d"/callgrind.out.* | sort -t. -k3 -n)
    one=$(awk '/^summary:/ {print $2}' "${parts[0]}")
    two=$(awk '/^summary:/ {print $2}' "${parts[1]}")
    local answered
    answered=$(grep -hcE '"status":2[0-9][0-9]' "$d/audit.jsonl" || true)
    # A check that the load was answered: audit lines with a 2xx status (one
    # per request; T3 audits one line per tunnel instead).
    echo "$wl: $(( (two - one) / N )) instructions per request  (N=$N: $one; 2N: $two;" \
        "2xx audit lines $answered for $((400 + 3 * N)) requests; $d)"
}

IFS=, read -r -a list <<<"$WORKLOADS"
for wl in "${list[@]}"; do
    count "$wl"
done
