#!/usr/bin/env bash
# Load and abuse run (not part of cargo test): starts a release socialgate with
# generous limits on 127.0.0.1, then runs abuse.py against it: idle tunnels,
# slowloris heads, slow POST bodies, a sign-in flood (wrong Basic passwords from
# 127.0.0.2 and up, for a real user and for unknown names), stalled scanned
# posts (a second user, `mallory`, holding intercepted POSTs that declare 9 MB
# and trickle a byte every 2 s), and a normal client signed in with Basic (cost
# 10, served from the sign-in cache) measuring success and latency throughout:
# plain GETs, and JSON posts to an intercepted site under a `dlp` rule (a TLS
# upstream with a CA made here by openssl). Prints a JSON report. Usage:
#   scripts/abuse/run.sh [TUNNELS] [SLOWLORIS] [SLOWPOSTS] [DURATION_S] [SIGNIN_FLOODERS] [STALLED]
# e.g. the sign-in flood and stalled posts alone: scripts/abuse/run.sh 0 0 0 30 80 40
set -euo pipefail
cd "$(dirname "$0")/../.."
TUNNELS=${1:-9000}; SLOWLORIS=${2:-1000}; SLOWPOSTS=${3:-1000}; DURATION=${4:-60}; FLOODERS=${5:-80}; STALLED=${6:-40}
# Each idle tunnel holds two descriptors in the gateway; the hard limit here
# (ulimit -Hn) bounds how many tunnels one run can hold.
ulimit -n "$(ulimit -Hn)"
# SKIP_BUILD=1 runs the release binary already built (e.g. by `cargo bench`).
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked --bin socialgate >/dev/null
BIN="${CARGO_TARGET_DIR:-target}/release/socialgate"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PROXY_PORT=$(free_port); UP_PORT=$(free_port); ADMIN_PORT=$(free_port); TLS_PORT=$(free_port)
# The intercepted site's TLS upstream: a CA of its own, trusted via extra_roots.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=abuse-upstream-ca \
  -keyout "$work/up-ca.key" -out "$work/up-ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=social.test -keyout "$work/up.key" \
  -out "$work/up.csr" 2>/dev/null
printf 'subjectAltName=DNS:social.test\nbasicConstraints=CA:FALSE\n' > "$work/up.ext"
openssl x509 -req -in "$work/up.csr" -CA "$work/up-ca.crt" -CAkey "$work/up-ca.key" \
  -CAcreateserial -days 2 -extfile "$work/up.ext" -out "$work/up.crt" 2>/dev/null
cat > "$work/policy.yaml" <<YAML
version: 1
roles: { press-office: { groups: [communications] }, staff: { groups: [all-staff] } }
sites:
  social:
    domains: [social.test]
    activities:
      post: [{ method: POST, path: /api/graphql, json: { operationName: "^CreateTweet\$" } }]
dlp:
  profiles: { official: { detectors: [uk-nino, payment-card], on_finding: block } }
rules:
  - { name: social-posts, roles: [press-office, staff], sites: [social], activities: [any], action: allow, dlp: official }
  - { name: other-websites, sites: [unlisted], action: allow }
  - { name: everyone-else, action: deny }
YAML
cat > "$work/socialgate.yaml" <<YAML
listen: 127.0.0.1:$PROXY_PORT
admin_listen: 127.0.0.1:$ADMIN_PORT
policy: $work/policy.yaml
ca: { cert: $work/ca.crt, key: $work/ca.key, create_if_missing: true }
identity:
  basic: { realm: abuse, htpasswd: $work/users.htpasswd }
  group_members: { all-staff: [normal, victim, mallory], communications: [normal] }
  networks: [ { cidr: 127.0.0.0/8, user: loadtest, groups: [all-staff] } ]
upstream:
  resolve: { normal.test: 127.0.0.1, tunnel.test: 127.0.0.1, social.test: 127.0.0.1 }
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [$UP_PORT, $TLS_PORT]
  extra_roots: [$work/up-ca.crt]
limits:
  max_connections: 30000
  max_connections_per_client: 30000
  max_tunnels: 20000
  idle_timeout: 10m
audit: { path: $work/audit.jsonl }
YAML
# The real users, at the cost `socialgate hash-password` writes by default (10).
for u in normal victim mallory; do
  echo "$u:$(echo "$u-pass" | "$BIN" hash-password --cost 10)"
done > "$work/users.htpasswd"
python3 scripts/abuse/abuse.py sink "$UP_PORT" "$TLS_PORT" "$work/up.crt" "$work/up.key" &
RUST_LOG=warn "$BIN" run --config "$work/socialgate.yaml" 2>"$work/gateway.log" &
GW_PID=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $PROXY_PORT), 1)" 2>/dev/null && break
  sleep 0.1
done
python3 scripts/abuse/abuse.py --proxy "127.0.0.1:$PROXY_PORT" --pid "$GW_PID" --upstream-port "$UP_PORT" \
  --tunnels "$TUNNELS" --slowloris "$SLOWLORIS" --slowposts "$SLOWPOSTS" --duration "$DURATION" \
  --signin-flood "$FLOODERS" --victim victim --normal-auth normal:normal-pass \
  --site "social.test:$TLS_PORT" --gateway-ca "$work/ca.crt" --stalled "$STALLED" --stalled-auth mallory:mallory-pass
metrics_text() { python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$ADMIN_PORT/metrics').read().decode())"; }
metrics_text | grep -E '^socialgate_(signin_throttled|auth_failures)_total' || true
