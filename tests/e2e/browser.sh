#!/usr/bin/env bash
# Browser end-to-end test: real headless Chromium (Debian's `chromium`) browses
# through a real `socialgate run` to a local HTTPS test site, trusting the gateway's
# CA only through an NSS database made for the run. It checks the rendered DOM of
# the block page and of the warn interstitial, clicks Continue (via chromedriver),
# and saves screenshots to target/e2e/ for a person to look at.
#
# Needs: chromium, chromedriver (Debian chromium-driver), certutil (libnss3-tools),
# curl, python3, cargo (and fonts-liberation for faithful screenshots). It installs
# nothing. Everything listens on 127.0.0.1 only.
# See tests/e2e/README.md.
#
# Environment: E2E_KEEP=1 keeps the work directory (its path is printed);
# E2E_NO_BUILD=1 skips the cargo build and uses the debug binaries already built;
# E2E_CHROME_TIMEOUT (default 90) bounds each browser run, in seconds.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/target/e2e
CHROME_TIMEOUT=${E2E_CHROME_TIMEOUT:-90}

passed=0
failed=0
PIDS=()     # processes to stop on exit
PGIDS=()    # process groups to stop on exit (chromedriver and its browsers)
WORK=""
GW_LOG=""
LOGS_SHOWN=0

say() { printf 'e2e: %s\n' "$*"; }
ok() {
  passed=$((passed + 1))
  printf '  ok    %s\n' "$*"
}
bad() {
  failed=$((failed + 1))
  printf '  FAIL  %s\n' "$*"
}
die() {
  printf '\ne2e: FAILED: %s\n' "$*" >&2
  exit 1
}

show_logs() {
  [ -n "$WORK" ] || return 0
  if [ -n "$GW_LOG" ] && [ -f "$GW_LOG" ]; then
    printf '\n---- gateway log (last 80 lines of %s) ----\n' "$GW_LOG" >&2
    tail -n 80 "$GW_LOG" >&2 || true
  fi
  if [ -n "$WORK" ] && [ -f "$WORK/upstream.log" ]; then
    printf '\n---- upstream log (last 20 lines) ----\n' >&2
    tail -n 20 "$WORK/upstream.log" >&2 || true
  fi
  if [ -n "$WORK" ] && [ -f "$WORK/chromedriver.log" ]; then
    printf '\n---- chromedriver log (last 20 lines) ----\n' >&2
    tail -n 20 "$WORK/chromedriver.log" >&2 || true
  fi
  printf -- '----\n' >&2
}

cleanup() {
  local rc=$?
  trap - EXIT
  local p
  for p in "${PGIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  # Bounded wait for them to go, then make sure.
  for _ in $(seq 1 50); do
    local alive=0
    for p in "${PIDS[@]}" "${PGIDS[@]}"; do
      if kill -0 "$p" 2>/dev/null; then alive=1; fi
    done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PGIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$rc" != 0 ] && [ "$LOGS_SHOWN" = 0 ]; then
    show_logs
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${E2E_KEEP:-}" = 1 ]; then
      say "kept the work directory $WORK" >&2
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# What this needs (installs nothing).
missing=()
need() {
  command -v "$1" >/dev/null 2>&1 || missing+=("$1 (Debian package $2)")
}
need chromium chromium
need chromedriver chromium-driver
need certutil libnss3-tools
need curl curl
need python3 python3
need cargo "rustup/cargo"
need timeout coreutils
need setsid util-linux
if [ ${#missing[@]} -gt 0 ]; then
  printf 'e2e: missing: %s\n' "${missing[@]}" >&2
  die "install them first, e.g. apt-get install -y --no-install-recommends chromium chromium-driver libnss3-tools curl fonts-liberation"
fi

# ---------------------------------------------------------------------------
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

WORK=$(mktemp -d "${TMPDIR:-/tmp}/socialgate-e2e.XXXXXX")
GW_LOG=$WORK/gateway.log
mkdir -p "$OUT"
rm -f "$OUT"/*.png "$OUT"/*.html

free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Waits (bounded) until "$@" succeeds; fails early when process $pid has exited.
wait_for() {
  local what=$1 pid=$2 seconds=$3
  shift 3
  local tries=$((seconds * 4))
  for _ in $(seq 1 "$tries"); do
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
  die "the test upstream did not start (log: $(cat "$WORK/upstream.log"))"
UP_PORT=$(tr -d '[:space:]' <"$WORK/upstream.port")
[ -s "$WORK/upstream-ca.pem" ] || die "the test upstream wrote no CA"

cat >"$WORK/policy.yaml" <<'YAML'
version: 1
roles: { staff: { groups: [all-staff] } }
sites:
  social: { domains: [www.social.test] }
  careful: { domains: [www.careful.test] }
rules:
  - { name: staff-no-social, roles: [staff], sites: [social], action: deny }
  - { name: staff-careful, roles: [staff], sites: [careful], activities: [read], action: warn, message: "Posts here are public and kept. Follow the council's social media guidance." }
  - { name: everyone-else, action: deny }
YAML

# The gateway's ports are picked free just before start; if another process takes
# one in between, the gateway exits at once and we try again with new ports.
GW_PORT=""
for attempt in 1 2 3; do
  GW_PORT=$(free_port)
  ADMIN_PORT=$(free_port)
  while [ "$ADMIN_PORT" = "$GW_PORT" ]; do ADMIN_PORT=$(free_port); done
  cat >"$WORK/socialgate.yaml" <<YAML
listen: 127.0.0.1:$GW_PORT
admin_listen: 127.0.0.1:$ADMIN_PORT
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
  say "starting the gateway on 127.0.0.1:$GW_PORT (attempt $attempt)"
  NO_COLOR=1 RUST_LOG=${RUST_LOG:-info} "$BIN" run --config "$WORK/socialgate.yaml" >"$GW_LOG" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  # Ready when the proxy port answers HTTP (any status) and the CA exists.
  if wait_for "the gateway" "$GW_PID" 60 \
    bash -c "curl -s -o /dev/null --max-time 2 http://127.0.0.1:$GW_PORT/ && test -s '$WORK/ca.crt'"; then
    break
  fi
  if [ "$attempt" = 3 ] || ! grep -qi "address.*in use\|cannot listen" "$GW_LOG"; then
    die "the gateway did not start"
  fi
done

# ---------------------------------------------------------------------------
# The browser's home: an NSS database that trusts the gateway's CA, and nothing
# else added. A second home with an empty database shows that trust comes only
# from there.
make_home() {
  local home=$1 trust=$2
  mkdir -p "$home/.pki/nssdb" "$home/.config" "$home/.cache"
  certutil -d "sql:$home/.pki/nssdb" -N --empty-password
  if [ "$trust" = yes ]; then
    certutil -d "sql:$home/.pki/nssdb" -A -t "C,," -n socialgate -i "$WORK/ca.crt"
  fi
}
make_home "$WORK/home" yes
make_home "$WORK/home-untrusting" no
certutil -d "sql:$WORK/home/.pki/nssdb" -L -n socialgate >/dev/null ||
  die "the gateway CA is not in the NSS database"

CHROME_FLAGS=(
  --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --disable-default-apps --disable-extensions --hide-scrollbars
  --proxy-server="http://127.0.0.1:$GW_PORT" --window-size=1100,800
)

# chrome HOME LOGNAME ARGS...: one headless Chromium run, fresh profile, bounded.
chrome() {
  local home=$1 name=$2
  shift 2
  local profile
  profile=$(mktemp -d "$WORK/profile-$name.XXXXXX")
  HOME=$home XDG_CONFIG_HOME=$home/.config XDG_CACHE_HOME=$home/.cache \
    timeout -k 5 "$CHROME_TIMEOUT" chromium "${CHROME_FLAGS[@]}" \
    --user-data-dir="$profile" "$@" 2>>"$WORK/chromium-$name.log"
}

# dump NAME URL [HOME]: the rendered DOM of URL, saved to target/e2e/NAME.html.
dump() {
  local name=$1 url=$2 home=${3:-$WORK/home}
  local dom
  if ! dom=$(chrome "$home" "$name" --dump-dom "$url"); then
    bad "$name: chromium --dump-dom $url failed (log: $WORK/chromium-$name.log)"
    tail -n 20 "$WORK/chromium-$name.log" >&2 || true
    return 1
  fi
  printf '%s\n' "$dom" >"$OUT/$name.html"
}

# shot NAME URL: a screenshot of URL to target/e2e/NAME.png.
shot() {
  local name=$1 url=$2
  rm -f "$OUT/$name.png"
  if ! chrome "$WORK/home" "$name-shot" --screenshot="$OUT/$name.png" "$url" >/dev/null; then
    bad "$name: chromium --screenshot $url failed"
    return 0
  fi
  if [ -s "$OUT/$name.png" ] && [ "$(head -c 8 "$OUT/$name.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
    ok "$name: screenshot saved to target/e2e/$name.png ($(wc -c <"$OUT/$name.png") bytes)"
  else
    bad "$name: no PNG screenshot at target/e2e/$name.png"
  fi
}

has() { # has NAME TEXT: the saved DOM contains TEXT
  if grep -qF -- "$2" "$OUT/$1.html"; then ok "$1: page shows \"$2\""; else bad "$1: page does not show \"$2\""; fi
}
hasnt() {
  if grep -qF -- "$2" "$OUT/$1.html"; then bad "$1: page shows \"$2\" but must not"; else ok "$1: page does not show \"$2\""; fi
}

SOCIAL=https://www.social.test:$UP_PORT/feed
CAREFUL=https://www.careful.test:$UP_PORT/feed
UPSTREAM_TEXT="Social test site"

# ---------------------------------------------------------------------------
say "denied page: $SOCIAL"
if dump denied "$SOCIAL"; then
  has denied "Blocked by the web gateway"
  has denied "staff-no-social"
  has denied "IT service desk, ext. 4000"
  hasnt denied "$UPSTREAM_TEXT"
  # The reference on the page is the id of an audit record.
  ref=$(python3 -c 'import re,sys
m = re.search(r"<th>Reference</th><td>([^<]+)</td>", open(sys.argv[1]).read())
print(m.group(1) if m else "")' "$OUT/denied.html")
  if [ -z "$ref" ]; then
    bad "denied: page shows no reference"
  else
    found=no
    for _ in $(seq 1 40); do
      if grep -qF -- "$ref" "$WORK/audit.jsonl" 2>/dev/null; then found=yes; break; fi
      sleep 0.25
    done
    if [ "$found" = yes ]; then ok "denied: reference $ref is in the audit log"; else bad "denied: reference $ref is not in the audit log"; fi
  fi
fi
shot denied "$SOCIAL"

# ---------------------------------------------------------------------------
say "warn interstitial: $CAREFUL"
if dump warn "$CAREFUL"; then
  has warn "Before you continue"
  has warn "staff-careful"
  has warn "Posts here are public and kept. Follow the council's social media guidance."
  if grep -qE '<button[^>]*>Continue</button>' "$OUT/warn.html"; then ok "warn: page has a Continue button"; else bad "warn: page has no Continue button"; fi
  if grep -qF 'action="/.socialgate/continue"' "$OUT/warn.html"; then ok "warn: Continue posts to /.socialgate/continue"; else bad "warn: no form posting to /.socialgate/continue"; fi
  hasnt warn "$UPSTREAM_TEXT"
fi
shot warn "$CAREFUL"

# ---------------------------------------------------------------------------
say "a browser without the CA in its NSS database refuses the gateway's certificate"
if dump untrusted "$SOCIAL" "$WORK/home-untrusting"; then
  if grep -qF "Blocked by the web gateway" "$OUT/untrusted.html" || grep -qF "$UPSTREAM_TEXT" "$OUT/untrusted.html"; then
    bad "untrusted: a browser without the CA still rendered the page (trust is not coming from the NSS database alone)"
  else
    # Chromium logs why on stderr; shown for the reader, not asserted on.
    why=$(grep -o 'net::ERR_CERT[A-Z_]*' "$WORK/chromium-untrusted.log" | head -n 1 || true)
    ok "untrusted: no page is rendered without the CA in the NSS database${why:+ (chromium: $why)}"
  fi
fi

# ---------------------------------------------------------------------------
say "clicking Continue on the interstitial (chromedriver)"
# chromedriver runs in a session of its own, so that it and the browsers it starts
# can be stopped as one process group. Its port is picked like the gateway's.
for attempt in 1 2 3; do
  CD_PORT=$(free_port)
  HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home/.config XDG_CACHE_HOME=$WORK/home/.cache \
    setsid chromedriver --port="$CD_PORT" --log-path="$WORK/chromedriver.log" \
    >"$WORK/chromedriver.out" 2>&1 &
  CD_PID=$!
  PGIDS+=("$CD_PID")
  if wait_for "chromedriver" "$CD_PID" 30 curl -sf --max-time 2 "http://127.0.0.1:$CD_PORT/status"; then
    break
  fi
  [ "$attempt" = 3 ] && die "chromedriver did not start ($(cat "$WORK/chromedriver.out"))"
done

cat >"$WORK/click.py" <<'PY'
"""Drives Chromium through chromedriver's W3C WebDriver HTTP API (stdlib only)."""
import base64
import json
import sys
import time
import urllib.error
import urllib.request

base, url, shot, profile, flags = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
results = []


def check(cond, what):
    results.append(cond)
    print(("  ok    " if cond else "  FAIL  ") + what, flush=True)


def call(method, path, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r).get("value")
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"webdriver {method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')[:400]}")


caps = {"capabilities": {"alwaysMatch": {
    "browserName": "chrome",
    "acceptInsecureCerts": False,
    "pageLoadStrategy": "normal",
    "timeouts": {"pageLoad": 60000, "script": 30000, "implicit": 0},
    "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": flags + ["--user-data-dir=" + profile]},
}}}
try:
    sid = call("POST", "/session", caps, timeout=120)["sessionId"]
except Exception as e:  # noqa: BLE001
    check(False, f"click: could not start a WebDriver session: {e}")
    sys.exit(1)
s = f"/session/{sid}"
try:
    call("POST", s + "/url", {"url": url})
    src = call("GET", s + "/source")
    check("Before you continue" in src, "click: the interstitial is shown first")
    button = call("POST", s + "/element",
                  {"using": "css selector", "value": 'form[action="/.socialgate/continue"] button[type="submit"]'})
    element_id = next(iter(button.values()))  # {"element-6066-...": id}
    call("POST", s + f"/element/{element_id}/click", {})
    src, cur = "", ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            cur = call("GET", s + "/url")
            src = call("GET", s + "/source")
        except RuntimeError:
            pass  # mid-navigation
        if "Social test site: /feed" in src:
            break
        time.sleep(0.25)
    check("Social test site: /feed" in src, "click: after Continue the site's own page loads")
    check(cur == url, f"click: redirected back to the original address ({cur})")
    with open(shot, "wb") as f:
        f.write(base64.b64decode(call("GET", s + "/screenshot")))
    # The acknowledgement holds: the next visit goes straight to the site.
    call("POST", s + "/url", {"url": url})
    src = call("GET", s + "/source")
    check("Social test site: /feed" in src and "Before you continue" not in src,
          "click: the next visit goes straight to the site (acknowledged)")
except Exception as e:  # noqa: BLE001
    check(False, f"click: {e}")
finally:
    try:
        call("DELETE", s, timeout=30)
    except Exception:  # noqa: BLE001
        pass
sys.exit(0 if all(results) else 1)
PY

click_flags=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${CHROME_FLAGS[@]}")
click_profile=$(mktemp -d "$WORK/profile-click.XXXXXX")
rm -f "$OUT/after-continue.png"
click_out=$(timeout -k 5 180 python3 "$WORK/click.py" "http://127.0.0.1:$CD_PORT" "$CAREFUL" \
  "$OUT/after-continue.png" "$click_profile" "$click_flags") || true
printf '%s\n' "$click_out"
n_ok=$(printf '%s\n' "$click_out" | grep -c '^  ok ' || true)
n_bad=$(printf '%s\n' "$click_out" | grep -c '^  FAIL ' || true)
passed=$((passed + n_ok))
failed=$((failed + n_bad))
if [ "$n_ok" = 0 ] && [ "$n_bad" = 0 ]; then bad "click: the WebDriver script reported nothing"; fi
kill -TERM -- "-$CD_PID" 2>/dev/null || true

# ---------------------------------------------------------------------------
say "screenshots and DOM dumps are in target/e2e/"
if [ "$failed" != 0 ]; then
  show_logs
  LOGS_SHOWN=1
fi
printf 'e2e: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" = 0 ]
