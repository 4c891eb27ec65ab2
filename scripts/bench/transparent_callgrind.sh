#!/usr/bin/env bash
# Transparent mode against proxy mode, in instructions per request: W1 (plain
# HTTP, 1 KiB, keep-alive) and W3 (intercepted HTTPS, 1 KiB, keep-alive), one
# client connection each, counted by valgrind's callgrind on the gateway
# (docs/transparent.md, "What it costs").
#
#     scripts/bench/transparent_callgrind.sh            # N=1000 requests per workload
#     N=300 BIN=target/release/socialgate scripts/bench/transparent_callgrind.sh
#
# It makes three network namespaces (client, gateway, upstream; addresses in
# 10.250.0.0/16 that exist only there, deleted at the end), an nftables
# `redirect` in the gateway's, a keep-alive Python upstream with a throwaway CA
# (openssl), and runs the gateway under callgrind. After a warm-up (leaf minted,
# connections open) the counters are zeroed, then each workload runs N requests
# with curl and is dumped on its own: the printed instructions per request
# include that workload's own connection setup (CONNECT or the ClientHello
# read, the TLS handshake), spread over N. Needs root, iproute2, nftables,
# valgrind, curl, openssl, python3. Default binary: target/debug/socialgate.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
N=${N:-1000}
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/socialgate}
for tool in ip nft valgrind callgrind_control curl openssl python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool (Debian: iproute2 nftables valgrind curl openssl python3)" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "no gateway binary at $BIN (cargo build, or set BIN)" >&2; exit 1; }
D=$(mktemp -d)
T=sgb$$
C=${T}c G=${T}g U=${T}u
cleanup() {
    [ -n "${GWPID:-}" ] && kill "$GWPID" 2>/dev/null
    [ -n "${UPPID:-}" ] && kill "$UPPID" 2>/dev/null
    sleep 1
    for n in $C $G $U; do ip netns del "$n" 2>/dev/null || true; done
    rm -rf "$D"
}
trap cleanup EXIT

# The upstream's CA and certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$D/ca.key" -out "$D/ca.crt" -days 2 -subj "/CN=bench upstream CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$D/up.key" -out "$D/up.csr" -subj "/CN=www.bench.test" 2>/dev/null
printf "subjectAltName=DNS:www.bench.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" >"$D/ext.cnf"
openssl x509 -req -in "$D/up.csr" -CA "$D/ca.crt" -CAkey "$D/ca.key" -CAcreateserial -out "$D/up.crt" -days 2 -extfile "$D/ext.cnf" 2>/dev/null
cat >"$D/upstream.py" <<'PY'
# Keep-alive HTTP/1.1, 1 KiB answers: plain on :18080, TLS on :18443.
import http.server, socketserver, ssl, sys, threading
BODY = b"x" * 1024
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
plain, tls = S(("0.0.0.0", 18080), H), S(("0.0.0.0", 18443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=plain.serve_forever, daemon=True).start()
tls.serve_forever()
PY

# client ── gateway (redirects 18080/18443 to its transparent ports) ── upstream
for n in $C $G $U; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add name c0 netns "$C" type veth peer name g0 netns "$G"
ip link add name g1 netns "$G" type veth peer name u0 netns "$U"
ip -n "$C" addr add 10.250.1.2/24 dev c0; ip -n "$C" link set c0 up
ip -n "$G" addr add 10.250.1.1/24 dev g0; ip -n "$G" link set g0 up
ip -n "$G" addr add 10.250.2.1/24 dev g1; ip -n "$G" link set g1 up
ip -n "$U" addr add 10.250.2.2/24 dev u0; ip -n "$U" link set u0 up
ip -n "$C" route add 10.250.2.0/24 via 10.250.1.1
cat >"$D/rules.nft" <<R
table ip sgb {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "g0" tcp dport 18080 redirect to :3180
    iifname "g0" tcp dport 18443 redirect to :3443
  }
}
R
ip netns exec "$G" nft -f "$D/rules.nft"
ip netns exec "$U" python3 "$D/upstream.py" "$D/up.crt" "$D/up.key" & UPPID=$!

cat >"$D/policy.yaml" <<P
version: 1
roles: { staff: { groups: [staff] } }
sites: { bench: { domains: [www.bench.test] } }
rules:
  - { name: staff-bench, roles: [staff], sites: [bench], activities: [any], action: allow }
  - { name: everyone-else, action: deny }
P
cat >"$D/socialgate.yaml" <<S
listen: 10.250.1.1:3128
admin_listen: 127.0.0.1:9128
listen_transparent: { http: 0.0.0.0:3180, https: 0.0.0.0:3443 }
policy: $D/policy.yaml
ca: { cert: $D/gw-ca.crt, key: $D/gw-ca.key, create_if_missing: true }
audit: { path: $D/audit.jsonl }
identity:
  networks: [{ cidr: 10.250.1.0/24, user: bench, groups: [staff] }]
upstream:
  extra_roots: ["$D/ca.crt"]
  resolve: { www.bench.test: 10.250.2.2 }
  allow_destinations: [10.250.2.0/24]
  allowed_ports: [18080, 18443]
S
RUST_LOG=warn ip netns exec "$G" valgrind --tool=callgrind --callgrind-out-file="$D/cg.out" "$BIN" run --config "$D/socialgate.yaml" 2>"$D/gateway.log" & GWPID=$!
for _ in $(seq 1 600); do
    ip netns exec "$G" curl -sf -o /dev/null http://127.0.0.1:9128/readyz && break
    sleep 0.5
done
VGPID=$(ps -eo pid,args | awk -v out="$D/cg.out" 'index($0, "--callgrind-out-file=" out) && !/awk/ && !/ip netns/ {print $1; exit}')
[ -n "$VGPID" ] || { echo "the gateway did not start under callgrind:" >&2; cat "$D/gateway.log" >&2; exit 1; }

curl_as() { ip netns exec "$C" curl --http1.1 -s -o /dev/null -w '%{http_code}\n' "$@" | sort | uniq -c | tr '\n' ' '; }
w1_proxy() { curl_as -x http://10.250.1.1:3128 "http://www.bench.test:18080/p[1-$1]"; }
w1_transparent() { curl_as --resolve www.bench.test:18080:10.250.2.2 "http://www.bench.test:18080/t[1-$1]"; }
w3_proxy() { curl_as --cacert "$D/gw-ca.crt" -x http://10.250.1.1:3128 "https://www.bench.test:18443/p[1-$1]"; }
w3_transparent() { curl_as --cacert "$D/gw-ca.crt" --resolve www.bench.test:18443:10.250.2.2 "https://www.bench.test:18443/t[1-$1]"; }
for w in w1_proxy w1_transparent w3_proxy w3_transparent; do "$w" 20 >/dev/null; done
callgrind_control -z "$VGPID" >/dev/null 2>&1
for w in w1_proxy w1_transparent w3_proxy w3_transparent; do
    echo "$w: status counts: $("$w" "$N")"
    callgrind_control -d "$w" "$VGPID" >/dev/null 2>&1
done
sleep 1
echo "instructions per request (callgrind Ir, $N requests each, $BIN):"
for f in "$D"/cg.out.*; do
    part=$(grep -m1 '^desc: Trigger' "$f" | sed 's/.*dump //')
    total=$(grep -m1 -E '^(summary|totals):' "$f" | awk '{print $2}')
    printf '  %-16s %10d\n' "$part" $((total / N))
done
