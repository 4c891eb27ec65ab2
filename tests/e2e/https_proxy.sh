#!/usr/bin/env bash
# HTTPS proxy port end-to-end test: real headless Chromium (Debian `chromium`)
# is configured by a PAC file whose only line is `HTTPS 127.0.0.1:<port>` (served
# by the gateway itself from `pac.proxies`), so it speaks TLS to the gateway's
# `listen_tls` port, sends its CONNECT inside that TLS, and then the inner TLS of
# an intercepted test site. It checks the rendered DOM: an allowed page of the
# site loads (the site's own text), a denied one shows the block page, and a
# browser that does not trust the proxy port's certificate gets neither.
#
# Needs: chromium, certutil (libnss3-tools), openssl, curl, python3, cargo. It
# installs nothing. Everything listens on 127.0.0.1 only. Prints one `PASS` or
# `FAIL` line per check and `https_proxy: N passed, M failed` last; exits
# non-zero on any failure. Modelled on tests/e2e/browser.sh.
#
# Environment: E2E_KEEP=1 keeps the work directory; E2E_NO_BUILD=1 uses the
# debug binaries already built; E2E_CHROME_TIMEOUT (default 90) bounds each
# browser run, in seconds.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
CHROME_TIMEOUT=${E2E_CHROME_TIMEOUT:-90}

passed=0
failed=0
PIDS=()
WORK=""
GW_LOG=""

say() { printf 'https_proxy: %s\n' "$*"; }
ok() {
  passed=$((passed + 1))
  printf 'PASS %s\n' "$*"
}
bad() {
  failed=$((failed + 1))
  printf 'FAIL %s\n' "$*"
}
die() {
  printf 'FAIL %s\n' "$*"
  printf 'https_proxy: FAILED: %s\n' "$*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  trap - EXIT
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$rc" != 0 ] && [ -n "$GW_LOG" ] && [ -f "$GW_LOG" ]; then
    printf '\n---- gateway log (last 60 lines) ----\n' >&2
    tail -n 60 "$GW_LOG" >&2 || true
    printf -- '----\n' >&2
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${E2E_KEEP:-}" = 1 ]; then say "kept the work directory $WORK" >&2; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 (Debian package $2)"); }
need chromium chromium
need certutil libnss3-tools
need openssl openssl
need curl curl
need python3 python3
need cargo "rustup/cargo"
need timeout coreutils
if [ ${#missing[@]} -gt 0 ]; then
  printf 'https_proxy: missing: %s\n' "${missing[@]}" >&2
  die "install them first, e.g. apt-get install -y --no-install-recommends chromium libnss3-tools openssl curl"
fi

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "${E2E_NO_BUILD:-}" = 1 ]; then
  say "E2E_NO_BUILD=1: using the binaries already in $TARGET_DIR/debug"
else
  say "building the gateway and the test upstream"
  cargo build --locked --bin socialgate --example e2e_upstream
fi
BIN=$TARGET_DIR/debug/socialgate
UPSTREAM_BIN=$TARGET_DIR/debug/examples/e2e_upstream
[ -x "$BIN" ] || die "$BIN was not built"
[ -x "$UPSTREAM_BIN" ] || die "$UPSTREAM_BIN was not built"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/socialgate-https-proxy.XXXXXX")
GW_LOG=$WORK/gateway.log

free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# wait_for WHAT PID SECONDS CMD...: bounded poll until CMD succeeds.
wait_for() {
  local what=$1 pid=$2 seconds=$3
  shift 3
  for _ in $(seq 1 $((seconds * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      say "$what exited before it was ready" >&2
      return 1
    fi
    sleep 0.25
  done
  say "$what was not ready after ${seconds}s" >&2
  return 1
}

# ---------------------------------------------------------------------------
say "starting the test upstream"
"$UPSTREAM_BIN" --port 0 --ca-out "$WORK/upstream-ca.pem" \
  --names www.social.test,www.careful.test --port-file "$WORK/upstream.port" \
  >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
wait_for "the test upstream" "$UP_PID" 30 test -s "$WORK/upstream.port" ||
  die "the test upstream did not start ($(cat "$WORK/upstream.log"))"
UP_PORT=$(tr -d '[:space:]' <"$WORK/upstream.port")

# The proxy port's certificate: a CA of this run's own signs a leaf for
# 127.0.0.1 (the name in the PAC line) and localhost.
say "making the proxy port's certificate (openssl)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=socialgate e2e proxy-port CA" -keyout "$WORK/proxy-ca.key" \
  -out "$WORK/proxy-ca.crt" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=127.0.0.1" -keyout "$WORK/proxy.key" -out "$WORK/proxy.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >"$WORK/proxy.ext"
openssl x509 -req -in "$WORK/proxy.csr" -CA "$WORK/proxy-ca.crt" -CAkey "$WORK/proxy-ca.key" \
  -CAcreateserial -days 2 -extfile "$WORK/proxy.ext" -out "$WORK/proxy.crt" 2>/dev/null
[ -s "$WORK/proxy.crt" ] || die "openssl made no proxy certificate"

cat >"$WORK/policy.yaml" <<'YAML'
version: 1
roles: { staff: { groups: [all-staff] } }
sites:
  social: { domains: [www.social.test] }
  careful: { domains: [www.careful.test] }
rules:
  - { name: staff-read-social, roles: [staff], sites: [social], activities: [read], action: allow }
  - { name: staff-no-careful, roles: [staff], sites: [careful], action: deny }
  - { name: everyone-else, action: deny }
YAML

for attempt in 1 2 3; do
  GW_PORT=$(free_port)
  TLS_PORT=$(free_port)
  ADMIN_PORT=$(free_port)
  cat >"$WORK/socialgate.yaml" <<YAML
listen: 127.0.0.1:$GW_PORT
listen_tls: { address: "127.0.0.1:$TLS_PORT", cert: $WORK/proxy.crt, key: $WORK/proxy.key }
admin_listen: 127.0.0.1:$ADMIN_PORT
pac: { proxies: ["HTTPS 127.0.0.1:$TLS_PORT"] }
policy: $WORK/policy.yaml
ca: { cert: $WORK/ca.crt, key: $WORK/ca.key, create_if_missing: true }
support_contact: "IT service desk, ext. 4000"
identity:
  networks:
    - { cidr: 127.0.0.0/8, user: kiosk, groups: [all-staff] }
upstream:
  extra_roots: [$WORK/upstream-ca.pem]
  resolve: { www.social.test: 127.0.0.1, www.careful.test: 127.0.0.1 }
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [$UP_PORT]
audit: { path: $WORK/audit.jsonl }
YAML
  say "starting the gateway: plain 127.0.0.1:$GW_PORT, HTTPS 127.0.0.1:$TLS_PORT (attempt $attempt)"
  NO_COLOR=1 RUST_LOG=${RUST_LOG:-info} "$BIN" run --config "$WORK/socialgate.yaml" >"$GW_LOG" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  if wait_for "the gateway" "$GW_PID" 60 \
    bash -c "curl -sf -o /dev/null --max-time 2 http://127.0.0.1:$ADMIN_PORT/readyz && test -s '$WORK/ca.crt'"; then
    break
  fi
  if [ "$attempt" = 3 ] || ! grep -qi "address.*in use\|cannot listen" "$GW_LOG"; then
    die "the gateway did not start"
  fi
done

# ---------------------------------------------------------------------------
PAC_URL=http://127.0.0.1:$ADMIN_PORT/proxy.pac
pac=$(curl -sf --max-time 5 "$PAC_URL" || true)
if grep -qF "var proxy = \"HTTPS 127.0.0.1:$TLS_PORT\";" <<<"$pac"; then
  ok "the gateway's PAC file names only the HTTPS port (HTTPS 127.0.0.1:$TLS_PORT)"
else
  bad "the PAC file does not name HTTPS 127.0.0.1:$TLS_PORT: $pac"
fi

# The browser's homes: one trusts the gateway's CA and the proxy port's CA,
# one only the gateway's.
make_home() {
  local home=$1
  shift
  mkdir -p "$home/.pki/nssdb" "$home/.config" "$home/.cache"
  certutil -d "sql:$home/.pki/nssdb" -N --empty-password
  local n=0 f
  for f in "$@"; do
    n=$((n + 1))
    certutil -d "sql:$home/.pki/nssdb" -A -t "C,," -n "trusted-$n" -i "$f"
  done
}
make_home "$WORK/home" "$WORK/ca.crt" "$WORK/proxy-ca.crt"
make_home "$WORK/home-no-proxy-ca" "$WORK/ca.crt"

CHROME_FLAGS=(
  --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --disable-default-apps --disable-extensions --hide-scrollbars
  --proxy-pac-url="$PAC_URL" --window-size=1100,800
)

# dump NAME URL HOME: the DOM Chromium rendered for URL, into $WORK/NAME.html.
dump() {
  local name=$1 url=$2 home=$3 profile
  profile=$(mktemp -d "$WORK/profile-$name.XXXXXX")
  if HOME=$home XDG_CONFIG_HOME=$home/.config XDG_CACHE_HOME=$home/.cache \
    timeout -k 5 "$CHROME_TIMEOUT" chromium "${CHROME_FLAGS[@]}" \
    --user-data-dir="$profile" --dump-dom "$url" >"$WORK/$name.html" 2>>"$WORK/chromium-$name.log"; then
    return 0
  fi
  bad "$name: chromium --dump-dom $url failed (log: $WORK/chromium-$name.log)"
  tail -n 20 "$WORK/chromium-$name.log" >&2 || true
  return 1
}
has() { if grep -qF -- "$2" "$WORK/$1.html"; then ok "$1: page shows \"$2\""; else bad "$1: page does not show \"$2\""; fi; }
hasnt() { if grep -qF -- "$2" "$WORK/$1.html"; then bad "$1: page shows \"$2\" but must not"; else ok "$1: page does not show \"$2\""; fi; }

SITE_TEXT="Social test site"
ALLOWED=https://www.social.test:$UP_PORT/feed
DENIED=https://www.careful.test:$UP_PORT/feed

say "allowed page through the HTTPS proxy port: $ALLOWED"
if dump allowed "$ALLOWED" "$WORK/home"; then
  has allowed "$SITE_TEXT: /feed"
fi
# The audit log has it, decided by the gateway.
found=no
for _ in $(seq 1 40); do
  if python3 - "$WORK/audit.jsonl" <<'PY' 2>/dev/null; then found=yes; break; fi
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("host") == "www.social.test" and r.get("path") == "/feed" and r.get("action") == "allow":
        sys.exit(0)
sys.exit(1)
PY
  sleep 0.25
done
if [ "$found" = yes ]; then ok "allowed: the audit log records GET www.social.test/feed as allow"; else bad "allowed: no audit record of the allowed page"; fi

say "denied page through the HTTPS proxy port: $DENIED"
if dump denied "$DENIED" "$WORK/home"; then
  has denied "Blocked by the web gateway"
  has denied "staff-no-careful"
  hasnt denied "$SITE_TEXT"
fi

say "a browser that does not trust the proxy port's certificate"
if dump untrusted "$ALLOWED" "$WORK/home-no-proxy-ca"; then
  if grep -qF "$SITE_TEXT" "$WORK/untrusted.html" || grep -qF "Blocked by the web gateway" "$WORK/untrusted.html"; then
    bad "untrusted: the page loaded without trusting the proxy port's certificate"
  else
    why=$(grep -o 'net::ERR_[A-Z_]*' "$WORK/chromium-untrusted.log" | head -n 1 || true)
    ok "untrusted: nothing is rendered without the proxy port's CA${why:+ (chromium: $why)}"
  fi
fi

printf '\nhttps_proxy: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" = 0 ]
