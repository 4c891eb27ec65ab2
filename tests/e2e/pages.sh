#!/usr/bin/env bash
# Browser test of the pages people see: real headless Chromium (driven through
# chromedriver's WebDriver API) browses through a real `socialgate run` to local
# HTTPS test sites, trusting the gateway's CA only through an NSS database made
# for the run. It checks:
#   - the deferred notice: a page whose script POSTs with fetch() and is denied;
#     a reload shows the gateway's notice once; the next reload shows the page;
#   - the block, warn, DLP and notice pages in English and in Welsh (the
#     browser's Accept-Language): their wording, one h1, <html lang>, no
#     horizontal scrolling at 320 px and at 640 px (1280 px at 200 % zoom);
#   - an automated accessibility check: axe-core (from npm, installed into the
#     work directory, never committed) injected into the same Chromium: no
#     serious or critical violation of WCAG 2.0/2.1/2.2 A and AA rules;
# and saves screenshots of each page at 1280 px and 375 px, in both languages,
# to target/page-screenshots/ for a person to look at.
#
# Needs: chromium, chromedriver (Debian chromium-driver), certutil
# (libnss3-tools), openssl, curl, python3, npm (Debian npm) with access to the
# npm registry, cargo (and fonts-liberation for faithful screenshots). It
# installs nothing system-wide. Everything listens on 127.0.0.1 only.
#
# Environment: E2E_KEEP=1 keeps the work directory; E2E_NO_BUILD=1 uses the
# debug binary already built; AXE_VERSION (default below) picks axe-core.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/target/page-screenshots
AXE_VERSION=${AXE_VERSION:-4.10.3}

WORK=""
PIDS=()
PGIDS=()
say() { printf 'pages-e2e: %s\n' "$*"; }
die() {
  printf '\npages-e2e: FAILED: %s\n' "$*" >&2
  exit 1
}
cleanup() {
  local rc=$?
  trap - EXIT
  local p
  for p in "${PGIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PGIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$rc" != 0 ] && [ -n "$WORK" ]; then
    for f in gateway.log upstream.log chromedriver.log; do
      if [ -f "$WORK/$f" ]; then
        printf '\n---- %s (last 40 lines) ----\n' "$f" >&2
        tail -n 40 "$WORK/$f" >&2 || true
      fi
    done
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
need chromedriver chromium-driver
need certutil libnss3-tools
need openssl openssl
need curl curl
need python3 python3
need npm npm
need cargo "rustup/cargo"
need timeout coreutils
need setsid util-linux
if [ ${#missing[@]} -gt 0 ]; then
  printf 'pages-e2e: missing: %s\n' "${missing[@]}" >&2
  die "install them first, e.g. apt-get install -y --no-install-recommends chromium chromium-driver libnss3-tools openssl curl npm fonts-liberation"
fi

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "${E2E_NO_BUILD:-}" = 1 ]; then
  say "E2E_NO_BUILD=1: using $TARGET_DIR/debug/socialgate"
else
  say "building the gateway"
  cargo build --locked --bin socialgate
fi
BIN=$TARGET_DIR/debug/socialgate
[ -x "$BIN" ] || die "$BIN was not built"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/socialgate-pages-e2e.XXXXXX")
mkdir -p "$OUT"
rm -f "$OUT"/*.png "$OUT"/*.html "$OUT"/axe-*.json

free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
wait_for() {
  local what=$1 pid=$2 seconds=$3
  shift 3
  for _ in $(seq 1 $((seconds * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { say "$what exited before it was ready" >&2; return 1; }
    sleep 0.25
  done
  say "$what was not ready after ${seconds}s" >&2
  return 1
}

# ---------------------------------------------------------------------------
say "installing axe-core@$AXE_VERSION from npm into the work directory"
if ! timeout 300 npm install --silent --no-audit --no-fund --no-save --prefix "$WORK/npm" "axe-core@$AXE_VERSION" >"$WORK/npm.log" 2>&1; then
  cat "$WORK/npm.log" >&2
  die "npm could not install axe-core@$AXE_VERSION (the check needs the npm registry)"
fi
AXE_JS=$WORK/npm/node_modules/axe-core/axe.min.js
[ -s "$AXE_JS" ] || die "axe-core has no axe.min.js"
AXE_INSTALLED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$WORK/npm/node_modules/axe-core/package.json")
say "axe-core $AXE_INSTALLED"

# ---------------------------------------------------------------------------
say "making the test sites' certificates"
NAMES=(www.social.test www.careful.test www.blocked.test)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=socialgate pages e2e upstream CA" \
  -keyout "$WORK/up-ca.key" -out "$WORK/up-ca.pem" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=www.social.test" -keyout "$WORK/up.key" -out "$WORK/up.csr" >/dev/null 2>&1
san=$(printf 'DNS:%s,' "${NAMES[@]}")
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "${san%,}" >"$WORK/up.ext"
openssl x509 -req -in "$WORK/up.csr" -CA "$WORK/up-ca.pem" -CAkey "$WORK/up-ca.key" -CAcreateserial \
  -days 2 -extfile "$WORK/up.ext" -out "$WORK/up.pem" >/dev/null 2>&1

cat >"$WORK/upstream.py" <<'PY'
"""The test sites: HTTPS on 127.0.0.1, one certificate for every name."""
import http.server, ssl, sys

cert, key, port_file = sys.argv[1], sys.argv[2], sys.argv[3]
APP = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Social test app</title></head>
<body><h1>Social test app</h1><p id="status">loading</p><script>
const s = document.getElementById('status');
if (sessionStorage.getItem('posted')) { s.textContent = 'app ready (posted before)'; }
else {
  sessionStorage.setItem('posted', '1');
  fetch('/api/posts', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({text: 'hello'})})
    .then(r => { s.textContent = 'post answered ' + r.status; })
    .catch(e => { s.textContent = 'post failed ' + e; });
}
</script></body></html>"""
COMPOSE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Compose</title></head>
<body><h1>Compose</h1><form method="post" action="/api/comments">
<label for="t">Comment</label><textarea id="t" name="text">My NI number is JG 10 37 82 B</textarea>
<button id="send" type="submit">Send</button></form></body></html>"""


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, body):
        data = body.encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/app":
            self.answer(APP)
        elif path == "/compose":
            self.answer(COMPOSE)
        elif path == "/inaccessible":
            # The checker's control: no lang, no title, an image without alt, faint text.
            self.answer('<!doctype html><html><body><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
                        '<p style="color:#eee;background:#fff">faint text</p></body></html>')
        else:
            self.answer(f"<!doctype html><html lang=\"en\"><head><title>t</title></head><body><h1>Social test site: {path}</h1></body></html>")

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        self.rfile.read(n)
        self.answer("<!doctype html><html lang=\"en\"><body><h1>posted</h1></body></html>")

    def log_message(self, fmt, *args):
        sys.stderr.write("upstream: %s %s\n" % (self.headers.get("host"), fmt % args))


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(port_file, "w").write(str(srv.server_address[1]))
srv.serve_forever()
PY
python3 "$WORK/upstream.py" "$WORK/up.pem" "$WORK/up.key" "$WORK/upstream.port" >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
wait_for "the test sites" "$UP_PID" 20 test -s "$WORK/upstream.port" || die "the test sites did not start"
UP_PORT=$(cat "$WORK/upstream.port")

cat >"$WORK/policy.yaml" <<'YAML'
version: 1
roles: { staff: { groups: [all-staff] } }
sites:
  social:
    title: Social Test
    domains: [www.social.test]
    activities:
      post: [{ method: POST, path: /api/posts }]
      comment: [{ method: POST, path: /api/comments }]
  careful: { title: Careful Test, domains: [www.careful.test] }
  blocked: { title: Blocked Test, domains: [www.blocked.test] }
dlp:
  profiles:
    official: { detectors: [uk-nino, payment-card, protective-marking], on_finding: block }
rules:
  - { name: staff-social-read, roles: [staff], sites: [social], activities: [read], action: allow }
  - name: staff-social-comments
    roles: [staff]
    sites: [social]
    activities: [comment]
    action: allow
    dlp: official
    description: "Staff may comment on Social Test. Comments are checked for personal and protected information before they are sent."
  - name: staff-no-posting
    roles: [staff]
    sites: [social]
    activities: [post]
    action: deny
    description: "Posts on Social Test are made by the press office only."
  - { name: staff-careful, roles: [staff], sites: [careful], activities: [read], action: warn, warn_for: 8h, message: "Posts here are public and kept. Follow the council's social media guidance." }
  - name: staff-no-blocked
    roles: [staff]
    sites: [blocked]
    action: deny
    description: "Blocked Test is not used for council work."
  - { name: everyone-else, action: deny }
YAML
# The shipped Welsh, plus the policy's own texts in Welsh for two rules (the
# others are shown as the policy says them, marked lang="en").
cp deploy/pages/cy.yaml "$WORK/cy.yaml"
cat >>"$WORK/cy.yaml" <<'YAML'
support_contact: "desg gwasanaeth TG (est. 4000)"
descriptions:
  staff-no-blocked: "Ni ddefnyddir Blocked Test ar gyfer gwaith y cyngor."
messages:
  staff-careful: "Mae postiadau yma yn gyhoeddus ac yn cael eu cadw. Dilynwch ganllawiau cyfryngau cymdeithasol y cyngor."
YAML
cat >"$WORK/logo.svg" <<'SVG'
<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40" viewBox="0 0 120 40"><rect width="120" height="40" fill="#ffffff"/><circle cx="20" cy="20" r="14" fill="#00703c"/><text x="40" y="26" font-family="Arial" font-size="16" fill="#0b0c0c">Council</text></svg>
SVG

for attempt in 1 2 3; do
  GW_PORT=$(free_port)
  cat >"$WORK/socialgate.yaml" <<YAML
listen: 127.0.0.1:$GW_PORT
policy: $WORK/policy.yaml
ca: { cert: $WORK/ca.crt, key: $WORK/ca.key, create_if_missing: true }
support_contact: "the IT service desk (ext. 4000)"
identity:
  networks:
    - { cidr: 127.0.0.0/8, user: kiosk, groups: [all-staff] }
upstream:
  extra_roots: [$WORK/up-ca.pem]
  resolve: { www.social.test: 127.0.0.1, www.careful.test: 127.0.0.1, www.blocked.test: 127.0.0.1 }
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [$UP_PORT]
audit: { path: $WORK/audit.jsonl }
pages:
  organisation: "Example Council"
  logo: $WORK/logo.svg
  strings: [$WORK/cy.yaml]
  deferred_notice: 10m
YAML
  say "starting the gateway on 127.0.0.1:$GW_PORT (attempt $attempt)"
  NO_COLOR=1 RUST_LOG=${RUST_LOG:-info} "$BIN" run --config "$WORK/socialgate.yaml" >"$WORK/gateway.log" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  if wait_for "the gateway" "$GW_PID" 60 bash -c "curl -s -o /dev/null --max-time 2 http://127.0.0.1:$GW_PORT/ && test -s '$WORK/ca.crt'"; then
    break
  fi
  [ "$attempt" = 3 ] && die "the gateway did not start"
  grep -qi "address.*in use\|cannot listen" "$WORK/gateway.log" || die "the gateway did not start"
done

HOME_DIR=$WORK/home
mkdir -p "$HOME_DIR/.pki/nssdb" "$HOME_DIR/.config" "$HOME_DIR/.cache"
certutil -d "sql:$HOME_DIR/.pki/nssdb" -N --empty-password
certutil -d "sql:$HOME_DIR/.pki/nssdb" -A -t "C,," -n socialgate -i "$WORK/ca.crt"

for attempt in 1 2 3; do
  CD_PORT=$(free_port)
  HOME=$HOME_DIR XDG_CONFIG_HOME=$HOME_DIR/.config XDG_CACHE_HOME=$HOME_DIR/.cache \
    setsid chromedriver --port="$CD_PORT" --log-path="$WORK/chromedriver.log" >"$WORK/chromedriver.out" 2>&1 &
  CD_PID=$!
  PGIDS+=("$CD_PID")
  if wait_for "chromedriver" "$CD_PID" 30 curl -sf --max-time 2 "http://127.0.0.1:$CD_PORT/status"; then break; fi
  [ "$attempt" = 3 ] && die "chromedriver did not start"
done

CHROME_FLAGS=(
  --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --hide-scrollbars --proxy-server="http://127.0.0.1:$GW_PORT" --window-size=1280,900
)

cat >"$WORK/drive.py" <<'PY'
"""Drives Chromium through chromedriver's W3C WebDriver API (stdlib only)."""
import base64, json, os, sys, time, urllib.error, urllib.request

base, port, out, axe_path, work, flags = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], json.loads(sys.argv[6])
AXE = open(axe_path).read()
results = []


def check(cond, what):
    results.append(bool(cond))
    print(("  ok    " if cond else "  FAIL  ") + what, flush=True)


def call(method, path, body=None, timeout=90):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r).get("value")
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"webdriver {method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')[:300]}")


def url(host, path):
    return f"https://{host}:{port}{path}"


class Session:
    def __init__(self, lang):
        profile = os.path.join(work, "profile-" + lang)
        os.makedirs(profile, exist_ok=True)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "acceptInsecureCerts": False, "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": 60000, "script": 60000, "implicit": 0},
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": flags + ["--user-data-dir=" + profile]},
        }}}
        self.s = "/session/" + call("POST", "/session", caps, timeout=120)["sessionId"]
        self.lang = lang
        self.cdp("Network.enable", {})
        self.cdp("Network.setExtraHTTPHeaders", {"headers": {"Accept-Language": "cy" if lang == "cy" else "en-GB,en;q=0.9"}})
        # axe-core is injected by WebDriver into pages whose CSP forbids scripts.
        self.cdp("Page.setBypassCSP", {"enabled": True})
        self.width(1280)

    def cdp(self, cmd, params):
        return call("POST", self.s + "/goog/cdp/execute", {"cmd": cmd, "params": params})

    def width(self, w, height=900):
        self.cdp("Emulation.setDeviceMetricsOverride", {"width": w, "height": height, "deviceScaleFactor": 1, "mobile": w < 600})

    def go(self, u):
        call("POST", self.s + "/url", {"url": u})

    def refresh(self):
        call("POST", self.s + "/refresh", {})

    def js(self, script, *args):
        return call("POST", self.s + "/execute/sync", {"script": script, "args": list(args)})

    def source(self):
        return call("GET", self.s + "/source")

    def text(self):
        return self.js("return document.body ? document.body.innerText : ''")

    def wait_text(self, needle, seconds=20):
        deadline = time.monotonic() + seconds
        t = ""
        while time.monotonic() < deadline:
            try:
                t = self.text()
            except RuntimeError:
                t = ""
            if needle in t:
                return t
            time.sleep(0.25)
        return t

    def click(self, css):
        el = call("POST", self.s + "/element", {"using": "css selector", "value": css})
        call("POST", self.s + f"/element/{next(iter(el.values()))}/click", {})

    def shot(self, name):
        for w in (1280, 375):
            self.width(w)
            h = self.js("return Math.ceil(document.documentElement.scrollHeight)")
            self.width(w, max(int(h), 600))
            png = self.cdp("Page.captureScreenshot", {"format": "png"})["data"]
            path = os.path.join(out, f"{name}-{self.lang}-{w}.png")
            with open(path, "wb") as f:
                f.write(base64.b64decode(png))
            check(os.path.getsize(path) > 1000, f"{name} ({self.lang}): screenshot at {w} px saved to {os.path.relpath(path)}")
        self.width(1280)

    def page_checks(self, name):
        src = self.source()
        with open(os.path.join(out, f"{name}-{self.lang}.html"), "w") as f:
            f.write(src)
        lang = self.js("return document.documentElement.lang")
        check(lang == self.lang, f"{name} ({self.lang}): <html lang=\"{lang}\">")
        h1 = self.js("return document.querySelectorAll('h1').length")
        check(h1 == 1, f"{name} ({self.lang}): one h1 ({h1})")
        check(self.js("return !!document.querySelector('meta[name=viewport]')"), f"{name} ({self.lang}): a viewport meta")
        for w in (320, 640):
            self.width(w)
            sw, iw = self.js("return [document.documentElement.scrollWidth, window.innerWidth]")
            check(sw <= iw, f"{name} ({self.lang}): no horizontal scrolling at {w} px (content {sw} px)")
        self.width(1280)
        self.axe(name)

    def axe(self, name, control=False):
        self.js(AXE + "\nreturn true;")
        raw = call("POST", self.s + "/execute/async", {"script": """
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})
  .then(r => done(JSON.stringify({v: r.violations.map(x => ({id: x.id, impact: x.impact, nodes: x.nodes.length, help: x.help})), passes: r.passes.length})))
  .catch(e => done(JSON.stringify({error: String(e)})));
""", "args": []}, timeout=120)
        res = json.loads(raw)
        with open(os.path.join(out, f"axe-{name}-{self.lang}.json"), "w") as f:
            json.dump(res, f, indent=1)
        if "error" in res:
            check(False, f"{name} ({self.lang}): axe-core ran ({res['error']})")
            return
        bad = [v for v in res["v"] if v["impact"] in ("serious", "critical")]
        if control:
            check(len(bad) > 0, f"control: axe-core finds serious or critical violations on a bad page ({', '.join(v['id'] for v in bad)})")
            return
        other = [f"{v['id']} ({v['impact']})" for v in res["v"] if v not in bad]
        check(not bad, f"{name} ({self.lang}): axe-core: no serious or critical violation "
              f"({res['passes']} rules passed{'; minor/moderate: ' + ', '.join(other) if other else ''})"
              + ("" if not bad else f": {bad}"))

    def close(self):
        try:
            call("DELETE", self.s, timeout=30)
        except Exception:  # noqa: BLE001
            pass


WORDS = {
    "en": {"blocked": "Reading Blocked Test is not allowed", "warn": "Before you continue",
           "dlp": "It appears to contain a National Insurance number",
           "notice": "Something on this page was stopped", "continue": "Continue to the page",
           "org": "Example Council web gateway", "why": "Blocked Test is not used for council work.",
           "message": "Posts here are public and kept.", "contact": "the IT service desk (ext. 4000)"},
    "cy": {"blocked": "Ni chaniateir darllen Blocked Test", "warn": "Cyn i chi barhau",
           "dlp": "rhif Yswiriant Gwladol",
           "notice": "Cafodd rhywbeth ar y dudalen hon ei atal", "continue": "Ymlaen i'r dudalen",
           "org": "Porth gwe Example Council", "why": "Ni ddefnyddir Blocked Test ar gyfer gwaith y cyngor.",
           "message": "Mae postiadau yma yn gyhoeddus ac yn cael eu cadw.", "contact": "desg gwasanaeth TG (est. 4000)"},
}

for lang in ("en", "cy"):
    w = WORDS[lang]
    s = None
    try:
        s = Session(lang)
        if lang == "en":
            s.go(url("www.social.test", "/inaccessible"))
            s.axe("control", control=True)
        # Block page.
        s.go(url("www.blocked.test", "/news"))
        t = s.text()
        check(w["blocked"] in t and w["org"] in t and w["why"] in t, f"block ({lang}): says {w['blocked']!r}, names the organisation and the rule's description")
        check(w["contact"] in t, f"block ({lang}): names whom to ask ({w['contact']!r})")
        s.page_checks("block")
        s.shot("block")
        # Warn interstitial.
        s.go(url("www.careful.test", "/feed"))
        t = s.text()
        check(w["warn"] in t and w["message"] in t, f"warn ({lang}): the interstitial with the rule's message in {lang}")
        s.page_checks("warn")
        s.shot("warn")
        # DLP: a form posting a National Insurance number.
        s.go(url("www.social.test", "/compose"))
        s.click("#send")
        t = s.wait_text(w["dlp"])
        check(w["dlp"] in t, f"dlp ({lang}): names the kind of data in words")
        check("JG 10 37 82 B" not in s.source() and "JG103782B" not in s.source(), f"dlp ({lang}): never shows the value")
        s.page_checks("dlp")
        s.shot("dlp")
        # The deferred notice: the app's fetch() POST is denied in the background.
        s.go(url("www.social.test", "/app"))
        t = s.wait_text("post answered")
        check("post answered 403" in t, f"notice ({lang}): the app's fetch() POST was denied ({t.strip()!r})")
        s.refresh()
        t = s.text()
        check(w["notice"] in t, f"notice ({lang}): the reload shows the gateway's notice")
        check("posting on Social Test" in t or "postio ar Social Test" in t, f"notice ({lang}): it says what was stopped")
        check("Posts on Social Test are made by the press office only." in t, f"notice ({lang}): and why")
        if lang != "en":
            marked = s.js("var d = document.querySelector('main div[lang]'); return d ? d.lang : ''")
            check(marked == "en", f"notice ({lang}): the untranslated description is marked lang=\"{marked}\"")
        href = s.js("var a = document.querySelector('a.button'); return a ? a.getAttribute('href') : ''")
        check(href == "/app", f"notice ({lang}): its link goes on to the same page only ({href!r})")
        s.page_checks("notice")
        s.shot("notice")
        s.refresh()
        t = s.wait_text("app ready")
        check("Social test app" in t and w["notice"] not in t, f"notice ({lang}): the next reload shows the page itself, once")
    except Exception as e:  # noqa: BLE001
        check(False, f"{lang}: {e}")
    finally:
        if s:
            s.close()

sys.exit(0 if results and all(results) else 1)
PY

say "driving Chromium (English, then Welsh)"
flags=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${CHROME_FLAGS[@]}")
set +e
timeout -k 5 600 python3 "$WORK/drive.py" "http://127.0.0.1:$CD_PORT" "$UP_PORT" "$OUT" "$AXE_JS" "$WORK" "$flags" | tee "$WORK/drive.out"
rc=${PIPESTATUS[0]}
set -e
n_ok=$(grep -c '^  ok ' "$WORK/drive.out" || true)
n_bad=$(grep -c '^  FAIL ' "$WORK/drive.out" || true)
say "axe-core $AXE_INSTALLED; screenshots, DOM and axe results in target/page-screenshots/"
printf 'pages-e2e: %d passed, %d failed\n' "$n_ok" "$n_bad"
[ "$rc" = 0 ] && [ "$n_bad" = 0 ] && [ "$n_ok" -gt 0 ]
