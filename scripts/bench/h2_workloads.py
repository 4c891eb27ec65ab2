"""Benchmark workloads W8 and W9 of docs/benchmarks.md: HTTP/2 through interception.

Job: drive h2load (Debian nghttp2-client) through a proxy and measure the proxy.
h2load has no proxy support, so each connection goes through
examples/connect_shim.rs, which opens a CONNECT tunnel per connection; h2load's
`--connect-to` sends it there, so SNI and :authority stay the real site's name.

- W8, real posting load: socialgate under the default policy (policies/default.yaml),
  user alice in `communications` (role press-office, rule press-office-posts, DLP
  profile `official`), h2load POSTing a 2 KB clean LinkedIn share as JSON over HTTP/2
  (10 streams per connection) to www.linkedin.com, resolved to a bench upstream of its
  own. The audit log is read afterwards: every post must be `allow` by
  press-office-posts with activity `post` and no DLP finding, else the figures are
  rejected. socialgate only (Squid has no policy or DLP to compare).
- W9, HTTP/2 multiplexing: `h2load -c 8 -m 100` GET https://localhost/ through
  socialgate with the bench policy (as W3), beside Squid's ssl-bump port, which speaks
  only HTTP/1.1 to clients: measured pipelined (`-c 8 -m 100 --h1`) and with the same
  concurrency in connections (`-c 100 -m 1 --h1`); its better one makes the ratio.
- `--perf`: perf profiles of socialgate under W8 and W9 (scripts/bench/profile.sh
  runs just that), read into shares by component (TLS, HTTP, classification, DLP,
  audit, allocation, kernel).

Limits: the proxy runs on core 1 and everything else (h2load, the shim, the upstream)
on core 0, so a proxy core busy well under 100 % means the load side was the limit.
h2load prints no latency percentiles, only min/max/mean/sd, which are kept.

Called by scripts/bench/bench.py: `run(bench, bench_module, workloads, peers)` from its
main() for W8/W9, `section(results)` from write_doc, and `run_perf(...)` for --perf.
Standalone, the profiles only (scripts/bench/profile.sh): `python3
scripts/bench/h2_workloads.py [--seconds N] [--warmup N] [--out FILE.md]`.
"""
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

W8_PATH = "/voyager/api/contentcreation/normShares"
W8_HOST = "www.linkedin.com"
W8_STREAMS = 10
W8_CONNS = 16
W9_CONNS, W9_STREAMS = 8, 100
# The audit line of a stream the client reset before its body was in (no decision).
ABORTED = "aborted by the client (no decision, status 400)"
W9_SQUID_CONC = 100  # Squid's other run: -c 100 -m 1 --h1, one request in flight per connection

# A clean share, as LinkedIn's web app posts it (the legacy normShares body): dates,
# room numbers, prices, times, but nothing any detector of the `official` profile
# finds (no card, NI, NHS or account number, IBAN, marking or secret).
COMMENTARY = (
    "Bin collections for Monday 12 March will take place as normal. Please put your bins "
    "out by 7am. Garden waste subscriptions for 2026/27 are now open: it costs £45 for the "
    "year, or £40 if you sign up before 31 March. The Central Library will be closed on "
    "Saturday 16 March for essential maintenance. Join us for the opening of the new play "
    "area in Victoria Park on Friday 22 March at 11am, all welcome. Our consultation on the "
    "draft Local Plan closes at 5pm on 30 April: drop in to Room 2.14 at the Civic Centre "
    "(Tuesdays, 10am to 4pm) or Room G07 at the Town Hall. Swimming lessons at the Leisure "
    "Centre are £6.50 per session for under 16s. Parking charges at Market Street car park "
    "will rise from £1.20 to £1.50 per hour from 1 June. Over 1,200 residents took part in "
    "our parks survey, thank you! Council meeting tonight at 6:30pm in the Council Chamber; "
    "you can watch live on our channel. Potholes: we fixed 2,431 in February. Report one "
    "online and we aim to repair it within 28 days. Adult education courses for autumn are "
    "online now, from £25. "
)


def post_body(size=2048):
    """The W8 body: JSON of exactly `size` bytes (the commentary padded or cut)."""
    def build(text):
        return json.dumps({
            "visibleToConnectionsOnly": False,
            "externalAudienceProviders": [],
            "commentaryV2": {"text": text, "attributes": []},
            "origin": "FEED",
            "allowedCommentersScope": "ALL",
            "postState": "PUBLISHED",
            "media": [],
            "visibility": "PUBLIC",
        }, ensure_ascii=False).encode()
    text = COMMENTARY
    while len(build(text)) < size:
        text += "More on our website. "
    while len(build(text)) > size:
        text = text[:-1]
    body = build(text)
    return body + b" " * (size - len(body))


# ---------------------------------------------------------------- h2load

def parse_h2load(text):
    """The figures of h2load's summary (None where a line is missing)."""
    out = {}
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", text)
    if m:
        secs = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
        out["secs"], out["h2load_rps"] = secs, float(m.group(3))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    if m:
        for k, v in zip(["total", "started", "done", "succeeded", "failed", "errored",
                         "timeout"], m.groups()):
            out[k] = int(v)
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        for k, v in zip(["s2xx", "s3xx", "s4xx", "s5xx"], m.groups()):
            out[k] = int(v)
    m = re.search(r"Application protocol: (\S+)", text)
    if m:
        out["protocol"] = m.group(1)

    def dur(s):
        m = re.fullmatch(r"([\d.]+)(us|ms|s)", s)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)] if m else None
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if m:
        out["lat_min"], out["lat_max"], out["lat_mean"], out["lat_sd"] = (
            dur(x) for x in m.groups())
    return out


def h2load(argv, timeout):
    """Runs h2load pinned to the load core: (parsed summary with its CPU seconds, stdout)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        raise RuntimeError(f"h2load did not finish in {timeout}s: {out[-800:]}")
    if p.returncode != 0:
        raise RuntimeError(f"h2load exited {p.returncode}: {out[-800:]}")
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = parse_h2load(out)
    res["cpu_s"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return res, out


# ---------------------------------------------------------------- the runner

class H2:
    def __init__(self, bench, bm):
        self.b, self.bm = bench, bm
        self.rounds = max(1, int(getattr(bench.args, "rounds", 1) or 1))
        rel = os.path.dirname(bench.sg)
        tdir = os.environ.get("CARGO_TARGET_DIR")
        if not os.path.exists(bench.sg) and tdir:
            rel = os.path.join(tdir, "release")
        self.release = rel
        self.sg = os.path.join(rel, "socialgate")
        self.upstream_bin = os.path.join(rel, "examples", "bench_upstream")
        self.shim_bin = os.path.join(rel, "examples", "connect_shim")
        self.h2load_bin = shutil.which("h2load")

    def ready(self):
        """None, or why W8/W9 cannot run."""
        if not self.h2load_bin:
            return "h2load is not installed (Debian nghttp2-client)"
        if not os.path.exists(self.shim_bin):
            self.bm.log("building examples/connect_shim (release)")
            r = subprocess.run(["cargo", "build", "--release", "--locked", "--example",
                                "connect_shim"], cwd=ROOT, capture_output=True, text=True)
            if r.returncode != 0 or not os.path.exists(self.shim_bin):
                return "examples/connect_shim could not be built: " + r.stderr[-300:]
        return None

    # -- processes

    def start_linkedin_upstream(self):
        """A bench upstream of its own whose certificate names www.linkedin.com."""
        d = os.path.join(self.b.dir, "w8")
        os.makedirs(d, exist_ok=True)
        self.w8_ca = os.path.join(d, "upstream-ca.pem")
        self.w8_http, self.w8_https = self.bm.free_port(), self.bm.free_port()
        p = self.b.start("upstream-w8", [
            self.upstream_bin, "--http-port", str(self.w8_http),
            "--https-port", str(self.w8_https), "--ca-out", self.w8_ca,
            "--names", f"{W8_HOST},linkedin.com,localhost"], self.bm.LOAD_CPU)
        self.bm.wait_port(self.w8_https, proc=p)
        return p

    def start_socialgate_w8(self):
        """socialgate under the default policy, alice (press office) from the network."""
        d = os.path.join(self.b.dir, "socialgate-w8")
        os.makedirs(d, exist_ok=True)
        port, admin = self.bm.free_port(), self.bm.free_port()
        self.w8_audit = os.path.join(d, "audit.jsonl")
        if os.path.exists(self.w8_audit):
            os.remove(self.w8_audit)
        settings = f"""listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin}
policy: {os.path.join(ROOT, "policies", "default.yaml")}
ca: {{ cert: {d}/ca.crt, key: {d}/ca.key, create_if_missing: true }}
identity:
  networks:
    - {{ cidr: 127.0.0.0/8, user: alice, groups: [communications] }}
upstream:
  extra_roots: [{self.w8_ca}]
  resolve: {{ {W8_HOST}: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [{self.w8_https}]
limits:
  max_connections: 30000
  idle_timeout: 600s
audit: {{ path: {self.w8_audit} }}
"""
        self.w8_settings = settings
        conf = os.path.join(d, "socialgate.yaml")
        with open(conf, "w") as f:
            f.write(settings)
        env = dict(os.environ, RUST_LOG="warn")
        p = self.b.start("socialgate-w8", [self.sg, "run", "--config", conf],
                         self.bm.PROXY_CPU, cwd=d, env=env)
        self.bm.wait_port(port, proc=p)
        return p, port

    def start_shim(self, name, proxy_port, target):
        pf = os.path.join(self.b.dir, f"{name}.port")
        if os.path.exists(pf):
            os.remove(pf)
        p = self.b.start(name, [self.shim_bin, "--proxy", f"127.0.0.1:{proxy_port}",
                                "--target", target, "--port-file", pf], self.bm.LOAD_CPU)
        end = time.time() + 20
        while not os.path.exists(pf):
            if p.poll() is not None or time.time() > end:
                raise RuntimeError(f"connect_shim did not start (see {name}.log)")
            time.sleep(0.05)
        with open(pf) as f:
            return p, int(f.read().strip())

    # -- one measurement

    def h2load_argv(self, shim_port, url, conns, streams, seconds, h1=False, body=None,
                    headers=()):
        argv = ["taskset", "-c", self.bm.LOAD_CPU, self.h2load_bin,
                "--connect-to", f"127.0.0.1:{shim_port}", "-c", str(conns), "-m", str(streams),
                "-D", str(seconds)]
        if h1:
            argv.append("--h1")
        if body:
            argv += ["-d", body]
        for h in headers:
            argv += ["-H", h]
        argv.append(url)
        return argv

    def measure(self, proc, shim, argv, warm_argv, upstream):
        """Warm-up run, then the measured run with the proxy's CPU around it."""
        bm = self.bm
        h2load(warm_argv, timeout=120)
        u0, k0 = bm.cpu_split(proc.pid)
        s0 = bm.cpu_seconds(shim.pid) + bm.cpu_seconds(upstream.pid)
        cs0 = bm.context_switches(proc.pid)
        t0 = time.time()
        res, text = h2load(argv, timeout=int(argv[argv.index("-D") + 1]) + 120)
        wall = time.time() - t0
        with open(os.path.join(self.b.dir, f"h2load-{proc.bench_name}.txt"), "a") as f:
            f.write(text + "\n")
        u1, k1 = bm.cpu_split(proc.pid)
        s1 = bm.cpu_seconds(shim.pid) + bm.cpu_seconds(upstream.pid)
        cs1 = bm.context_switches(proc.pid)
        # With -D, a request whose head came in before the deadline but whose body did
        # not counts in "status codes" and not in "succeeded": take the smaller.
        ok = min(res.get("s2xx", 0), res.get("succeeded", 0))
        cpu = (u1 - u0) + (k1 - k0)
        secs = res.get("secs") or wall
        row = {
            "ok": ok,
            "non2xx": res.get("s3xx", 0) + res.get("s4xx", 0) + res.get("s5xx", 0),
            "failed": res.get("failed", 0) + res.get("errored", 0) + res.get("timeout", 0),
            "rps": ok / secs if secs else 0.0,
            "lat_mean": res.get("lat_mean"),
            "lat_sd": res.get("lat_sd"),
            "lat_max": res.get("lat_max"),
            "cpu_us": cpu / ok * 1e6 if ok else None,
            "user_us": (u1 - u0) / ok * 1e6 if ok else None,
            "kernel_us": (k1 - k0) / ok * 1e6 if ok else None,
            "busy": cpu / wall * 100,
            "per_core": ok / cpu if cpu > 0 else None,
            # The load core: h2load, the shim and the upstream.
            "load_busy": (s1 - s0 + res.get("cpu_s", 0)) / wall * 100,
            "cs_per": (cs1 - cs0) / ok if ok else None,
            "hwm_mib": bm.status_kib(proc.pid, "VmHWM") / 1024,
            "protocol": res.get("protocol"),
        }
        return row, text

    def rounds_of(self, label, once):
        """`once()` per round -> (median row, per-round rows); failures noted."""
        rows = []
        for i in range(self.rounds):
            try:
                row = once()
            except Exception as e:  # noqa: BLE001 - report and go on
                self.bm.log(f"{label} round {i + 1}: FAILED: {e}")
                self.b.notes.append(f"{label}: round {i + 1} failed: {str(e)[:300]}")
                continue
            rows.append(row)
            self.bm.log(f"{label} round {i + 1}: {row['rps']:.0f} req/s, cpu/req "
                        f"{self.bm.fmt(row['cpu_us'], 1)} us, busy {row['busy']:.0f} %, "
                        f"per core {self.bm.fmt(row['per_core'], 0)}/s, load core busy "
                        f"{row['load_busy']:.0f} %, non-2xx {row['non2xx']}, failed "
                        f"{row['failed']}, {row.get('protocol')}")
        if not rows:
            return None
        med = self.bm.median_rows(rows)
        med["rounds"] = [{k: r[k] for k in ("rps", "cpu_us", "busy", "per_core", "ok")}
                         for r in rows]
        for k in ("audit", "audit_ok", "audit_sample"):
            if k in rows[-1]:
                med[k] = rows[-1][k]
        return med

    # -- W8

    def w8_once(self, seconds=None, perf=None):
        a = self.b.args
        seconds = seconds or a.duration
        up = self.start_linkedin_upstream()
        proc = shim = None
        try:
            proc, port = self.start_socialgate_w8()
            shim, sp = self.start_shim("shim-w8", port, f"{W8_HOST}:{self.w8_https}")
            body = os.path.join(self.b.dir, "w8-post.json")
            with open(body, "wb") as f:
                f.write(post_body())
            url = f"https://{W8_HOST}:{self.w8_https}{W8_PATH}"
            hdr = ["content-type: application/json"]
            argv = self.h2load_argv(sp, url, W8_CONNS, W8_STREAMS, seconds, body=body,
                                    headers=hdr)
            warm = self.h2load_argv(sp, url, W8_CONNS, W8_STREAMS, a.warmup, body=body,
                                    headers=hdr)
            self.w8_cmd = argv
            if perf:
                return self.profile(proc, warm, argv, perf)
            row, text = self.measure(proc, shim, argv, warm, up)
        finally:
            for p in (shim, proc, up):
                if p:
                    self.b.stop(p)
        row["audit"], row["audit_sample"] = self.read_audit(self.w8_audit)
        good = row["audit"].get("allow press-office-posts post", 0)
        # h2load resets the streams in flight when its time is up (warm-up and measured
        # run): the gateway audits each as a request with no decision, status 400.
        aborted = row["audit"].get(ABORTED, 0)
        others = sum(v for k, v in row["audit"].items()
                     if k not in ("allow press-office-posts post", ABORTED))
        row["audit_ok"] = (row["ok"] > 0 and row["non2xx"] == 0 and good >= row["ok"]
                           and others == 0 and aborted <= 2 * W8_CONNS * W8_STREAMS)
        if not row["audit_ok"]:
            self.b.notes.append(
                "W8: the check failed (every response 2xx and every audit line `allow` by "
                f"press-office-posts, activity post): {row['ok']} 2xx, {row['non2xx']} "
                f"other, audit {row['audit']}")
        return row

    @staticmethod
    def read_audit(path):
        """({"action rule activity[ dlp:...]" or ABORTED: count}, two sample lines)."""
        counts, sample = {}, []
        try:
            with open(path) as f:
                for line in f:
                    try:
                        r = json.loads(line)
                    except ValueError:
                        counts["unparsable"] = counts.get("unparsable", 0) + 1
                        continue
                    k = f"{r.get('action')} {r.get('rule')} {r.get('activity')}"
                    if not r.get("action"):
                        k = (ABORTED if r.get("status") == 400 and not r.get("bytes_up")
                             else f"no decision, status {r.get('status')}")
                    if r.get("dlp"):
                        k += " dlp:" + ",".join(str(d.get("detector")) for d in r["dlp"])
                    counts[k] = counts.get(k, 0) + 1
                    if len(sample) < 2:
                        sample.append(line.strip())
        except OSError as e:
            counts[f"unreadable: {e}"] = 1
        return counts, sample

    def run_w8(self):
        res = self.rounds_of("W8 socialgate", self.w8_once)
        out = {"rows": {}, "commands": [], "streams": W8_STREAMS, "conns": W8_CONNS,
               "body_bytes": len(post_body())}
        if res:
            out["rows"]["socialgate"] = res
            out["settings"] = self.w8_settings
            out["commands"].append(self.clean(self.w8_cmd))
        self.b.results["W8"] = out

    # -- W9

    def w9_cases(self, peers):
        cases = [("socialgate", W9_CONNS, W9_STREAMS, False)]
        if "squid" in peers:
            cases += [("squid h1 pipelined", W9_CONNS, W9_STREAMS, True),
                      ("squid h1 100 conns", W9_SQUID_CONC, 1, True)]
        # socialgate the way Squid is driven, for reference.
        cases.append(("socialgate h1 100 conns", W9_SQUID_CONC, 1, True))
        return cases

    def w9_once(self, name, conns, streams, h1, seconds=None, perf=None):
        a = self.b.args
        seconds = seconds or a.duration
        proxy = "squid" if name.startswith("squid") else "socialgate"
        proc, ports, _ca = self.b.start_proxy(proxy)
        shim = None
        try:
            shim, sp = self.start_shim("shim-w9", ports["bump"], f"localhost:{self.b.https_port}")
            url = f"https://localhost:{self.b.https_port}/"
            argv = self.h2load_argv(sp, url, conns, streams, seconds, h1=h1)
            warm = self.h2load_argv(sp, url, conns, streams, a.warmup, h1=h1)
            self.w9_cmds[name] = argv
            if perf:
                return self.profile(proc, warm, argv, perf)
            row, _ = self.measure(proc, shim, argv, warm, self.b.upstream)
            return row
        finally:
            for p in (shim, proc):
                if p:
                    self.b.stop(p)

    def run_w9(self, peers):
        self.w9_cmds = {}
        out = {"rows": {}, "commands": []}
        for name, c, m, h1 in self.w9_cases(peers):
            res = self.rounds_of(f"W9 {name}", lambda: self.w9_once(name, c, m, h1))
            if res:
                res.update({"conns": c, "streams": m, "h1": h1})
                out["rows"][name] = res
        out["commands"] = [f"{k}: {self.clean(v)}" for k, v in self.w9_cmds.items()]
        self.b.results["W9"] = out

    def clean(self, argv):
        c = self.bm.shell_join(argv)
        c = re.sub(r"--connect-to 127\.0\.0\.1:\d+", "--connect-to 127.0.0.1:SHIM", c)
        c = re.sub(r"(https://[a-z.]+):\d+/", r"\1:UPSTREAM/", c)
        c = re.sub(r"/tmp/socialgate-bench-[^/ ]+", "$BENCH_DIR", c)
        return c.replace(self.release + "/", "target/release/").replace(ROOT + "/", "")

    # -- perf

    def profile(self, proc, warm_argv, argv, spec):
        """perf record of the proxy during `argv`; returns the parsed report."""
        name, seconds = spec
        h2load(warm_argv, timeout=120)
        data = os.path.join(self.b.dir, f"perf-{name}.data")
        rec_argv = ["perf", "record", "-e", "cpu-clock", "-F", "999", "-g",
                    "--call-graph", PERF_CALLGRAPH, "-o", data]
        rec_argv += (["-C", self.bm.PROXY_CPU] if PERF_TARGET == "cpu" else ["-p", str(proc.pid)])
        rec = subprocess.Popen(rec_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            res, _ = h2load(argv, timeout=seconds + 120)
        finally:
            rec.send_signal(signal.SIGINT)
            rec.wait(timeout=120)
        rep = read_profile(data, os.path.join(self.b.dir, f"perf-{name}"), proc.pid)
        rep["record"] = self.clean(rec_argv)
        rep["load"] = self.clean(argv)
        rep["ok"] = res.get("s2xx", 0)
        return rep

    def run_perf(self, peers, seconds=10):
        if not shutil.which("perf"):
            self.b.notes.append("perf is not installed: no W8/W9 profile")
            return
        self.w9_cmds = {}
        prof = self.b.results.setdefault("h2perf", {})
        for wl, fn in [("W8", lambda: self.w8_once(seconds=seconds, perf=("W8", seconds))),
                       ("W9", lambda: self.w9_once("socialgate", W9_CONNS, W9_STREAMS, False,
                                                   seconds=seconds, perf=("W9", seconds)))]:
            try:
                prof[wl] = fn()
                self.bm.log(f"perf {wl}: {prof[wl]['categories']}")
            except Exception as e:  # noqa: BLE001
                self.bm.log(f"perf {wl}: FAILED: {e}")
                self.b.notes.append(f"perf {wl}: failed: {str(e)[:300]}")


# ---------------------------------------------------------------- perf reading

# dwarf unwinding from .eh_frame works on the release binary (it has symbols but no
# debug info and no frame pointers); 16 KiB of stack per sample is enough for tokio.
PERF_CALLGRAPH = os.environ.get("BENCH_PERF_CALLGRAPH", "dwarf,16384")
PERF_TARGET = os.environ.get("BENCH_PERF_TARGET", "pid")

# Where a sample's own function belongs. First match wins; order matters
# (socialgate_engine before socialgate, the DLP before the rest of the engine).
CATEGORIES = [
    ("kernel/syscalls", [r"^\[kernel", r"\[k\]"]),
    ("DLP (engine dlp)", [r"socialgate_engine::dlp", r"socialgate_engine::verdict::apply_dlp",
                          r"aho_corasick", r"memchr::", r"unicode_normalization"]),
    ("classification (engine policy/catalogue)", [r"socialgate_engine::", r"regex_automata",
                                                  r"regex::", r"glob::", r"idna::"]),
    ("TLS/crypto (rustls, ring)", [r"rustls::", r"ring::", r"ring_core_", r"aes_", r"gcm_",
                                   r"chacha", r"ecp_nistz256", r"sha256_block", r"x25519",
                                   r"^fe4?_", r"\bfe4?_"]),
    ("HTTP (hyper, h2, http)", [r"hyper::", r"hyper_util::", r"\bh2::", r"\bhttp::",
                                r"httparse", r"hpack", r"slab::", r"indexmap::",
                                r"\bbytes::", r"tokio_util::codec"]),
    ("audit (serde_json, write)", [r"serde_json", r"serde::", r"serde_core::",
                                   r"socialgate::audit", r"chrono"]),
    ("metrics (prometheus)", [r"prometheus::"]),
    ("allocation (mimalloc, malloc)", [r"\bmi_", r"_mi_", r"mimalloc", r"malloc", r"\bfree\b",
                                       r"realloc", r"cfree"]),
    ("memcpy/memmove (libc)", [r"__mem(cpy|move|set|cmp)", r"\bmem(cpy|move|set|cmp)"]),
    ("tokio runtime", [r"tokio::", r"mio::", r"parking_lot", r"futures_"]),
    ("socialgate proxy code", [r"socialgate::"]),
]

# Components a sample is charged to by its call chain (any frame of it), for the
# inclusive view: the DLP scan with the copies and allocations it makes, and so on.
OWNERS = [
    ("DLP (under socialgate_engine::dlp, apply_dlp)",
     r"socialgate_engine::(dlp|verdict::apply_dlp|dlp_bridge)"),
    ("classification (the rest of socialgate_engine)", r"socialgate_engine::"),
    ("audit (under socialgate::audit)", r"socialgate::audit"),
    ("TLS (under rustls / tokio_rustls)", r"rustls::"),
    ("HTTP (under hyper / h2)", r"hyper::|\bh2::"),
    ("metrics (under prometheus)", r"prometheus::"),
]


def categorize(sym, dso):
    s = f"{dso} {sym}"
    for name, pats in CATEGORIES:
        if any(re.search(p, s) for p in pats):
            return name
    return "other"


def read_profile(data, prefix, pid):
    """Flat self-time report (dso, symbol) and the shares by component; the caller
    view of the engine's entry points when call graphs were recorded."""
    rep = subprocess.run(["perf", "report", "-i", data, "--pid", str(pid), "--stdio", "--no-children",
                          "--sort", "dso,sym", "-g", "none", "--percent-limit", "0.05"],
                         capture_output=True, text=True, timeout=900)
    with open(prefix + "-flat.txt", "w") as f:
        f.write(rep.stdout)
    cats, top = {}, []
    for ln in rep.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", ln)
        if not m:
            continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        c = categorize(sym + (" [k]" if kind == "k" else ""), dso)
        cats[c] = cats.get(c, 0.0) + pct
        if len(top) < 30:
            top.append(f"{pct:6.2f}%  {dso:18.18s} {sym[:110]}")
    out = {"categories": {k: round(v, 1) for k, v in sorted(cats.items(), key=lambda x: -x[1])},
           "top": top}
    # Inclusive (children) view of the engine's work, where the call graph allows it.
    ch = subprocess.run(["perf", "report", "-i", data, "--pid", str(pid), "--stdio", "--children", "--sort", "sym",
                         "-g", "none", "--percent-limit", "0.3"],
                        capture_output=True, text=True, timeout=900)
    with open(prefix + "-children.txt", "w") as f:
        f.write(ch.stdout)
    incl = []
    for ln in ch.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+([\d.]+)%\s+\[(.)\]\s+(.*)$", ln)
        if m and re.search(r"socialgate_engine|socialgate::(audit|proxy|intercept)|rustls::|"
                           r"h2::|hyper::", m.group(4)):
            incl.append(f"{float(m.group(1)):6.2f}% incl {float(m.group(2)):6.2f}% self  "
                        f"{m.group(4)[:110]}")
    out["inclusive"] = incl[:40]
    if PERF_CALLGRAPH != "none":
        out.update(chain_shares(data, pid, prefix))
    return out


def chain_shares(data, pid, prefix):
    """Shares of samples by what their call chain passes through (perf script)."""
    r = subprocess.run(["perf", "script", "-i", data, "--pid", str(pid), "-F", "ip,sym,dso"],
                       capture_output=True, text=True, timeout=1800)
    n, hits, engine, by_owner = 0, {}, 0, {}
    for block in r.stdout.split("\n\n"):
        frames = [ln.strip() for ln in block.splitlines() if ln.strip()]
        if not frames:
            continue
        n += 1
        owners = [next((name for name, pat in OWNERS if re.search(pat, f)), None)
                  for f in frames]
        seen = {o for o in owners if o}
        for name in seen:
            hits[name] = hits.get(name, 0) + 1
        if any(x.startswith(("DLP", "classification")) for x in seen):
            engine += 1
        # Charged to the innermost owner frame (the leaf's nearest component).
        owner = next((o for o in owners if o),
                     "none of these (runtime, proxy code, kernel outside them)")
        by_owner[owner] = by_owner.get(owner, 0) + 1
    if not n:
        return {}
    with open(prefix + "-chains.txt", "w") as f:
        f.write(r.stdout)
    pct = lambda d: {k: round(100.0 * v / n, 1) for k, v in sorted(d.items(), key=lambda x: -x[1])}
    return {"chain_samples": n, "chain_any": pct(hits), "chain_innermost": pct(by_owner),
            "engine_share": round(100.0 * engine / n, 1)}


# ---------------------------------------------------------------- entry points

def run(bench, bm, workloads, peers):
    """W8 and/or W9 (as named in `workloads`) into bench.results."""
    if not ({"W8", "W9"} & set(workloads)):
        return
    h = H2(bench, bm)
    why = h.ready()
    if why:
        bench.skipped["W8/W9"] = why
        return
    if "W8" in workloads:
        h.run_w8()
    if "W9" in workloads:
        h.run_w9(peers)
    if getattr(bench.args, "perf", False):
        h.run_perf(peers)


def fmt(v, d=0):
    if v is None:
        return "–"
    return f"{v:,.{d}f}"


COLUMNS = (
    "\"req/s per proxy core\" = successful requests ÷ proxy CPU seconds (the rate at a "
    "fully busy core; requests/s ÷ busy fraction). \"Proxy core busy\" is the proxy's CPU "
    "over the wall time, \"load core busy\" that of h2load, the shim and the upstream "
    "together: a proxy under 100 % with the load core near 100 % was held back by the load "
    "side (or by other work on the machine), so its per-core rate is the figure to read. "
    "Latency is h2load's time per request (mean / max; it prints no percentiles).")


def row_table(rows):
    L = ["| run | conns × streams | requests/s | proxy CPU µs/req (user + kernel) | "
         "req/s per proxy core | proxy core busy | load core busy | latency mean / max ms | "
         "ctx sw/req | peak RSS MiB | non-2xx / failed | rounds req/s |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in rows.items():
        cs = f"{r.get('conns', W8_CONNS)} × {r.get('streams', W8_STREAMS)}" + (
            " h1" if r.get("h1") else " h2")
        L.append(f"| {name} | {cs} | {fmt(r['rps'])} | {fmt(r['cpu_us'], 1)} "
                 f"({fmt(r['user_us'], 1)} + {fmt(r['kernel_us'], 1)}) | {fmt(r['per_core'])} | "
                 f"{fmt(r['busy'])} % | {fmt(r.get('load_busy'))} % | {fmt(r['lat_mean'], 2)} / "
                 f"{fmt(r['lat_max'], 1)} | {fmt(r['cs_per'], 2)} | {fmt(r['hwm_mib'], 1)} | "
                 f"{fmt(r['non2xx'])} / {fmt(r['failed'])} | "
                 + ", ".join(fmt(x["rps"]) for x in r.get("rounds", [])) + " |")
    return "\n".join(L)


def goal_lines(results):
    out = []
    w8 = (results.get("W8") or {}).get("rows", {}).get("socialgate")
    if w8:
        ok = w8.get("audit_ok")
        pc = w8.get("per_core") or 0
        out.append(("- W8 ≥ 5,000 posts/s per proxy core: "
                    + ("met" if pc >= 5000 and ok else "**missed**")
                    + f" — {pc:,.0f} posts/s per core ({fmt(w8['rps'])} posts/s at "
                    f"{fmt(w8['busy'])} % of the core, {fmt(w8['cpu_us'], 1)} µs CPU per post)")
                   + ("" if ok else "; **the audit check failed, so the figure does not count**"))
    perf = (results.get("h2perf") or {}).get("W8")
    if perf:
        c = perf["categories"]
        flat = sum(v for k, v in c.items() if k.startswith(("DLP", "classification")))
        share = perf.get("engine_share", flat)
        how = ("samples whose call chain passes through socialgate_engine, with the copies "
               f"and allocations it makes; self time of its own symbols: {flat:.1f} %"
               if "engine_share" in perf else
               "self time of engine, aho-corasick, regex, memchr symbols")
        out.append("- W8 DLP + classification ≤ 20 % of socialgate's CPU: "
                   + ("met" if share <= 20 else "**missed**") + f" — {share:.1f} % ({how})")
    w9 = (results.get("W9") or {}).get("rows", {})
    sg = w9.get("socialgate")
    sq = [(k, v) for k, v in w9.items() if k.startswith("squid")]
    if sg and sq:
        k, best = max(sq, key=lambda kv: kv[1]["rps"])
        rr = sg["rps"] / best["rps"] if best["rps"] else None
        cr = sg["cpu_us"] / best["cpu_us"] if best.get("cpu_us") and sg.get("cpu_us") else None
        out.append(f"- W9 requests/s ≥ 2× Squid (its better run, `{k}`): "
                   + ("met" if rr and rr >= 2 else "**missed**") + f" — ×{fmt(rr, 2)} "
                   f"({fmt(sg['rps'])} vs {fmt(best['rps'])}); per proxy core ×"
                   f"{fmt((sg['per_core'] or 0) / best['per_core'], 2) if best.get('per_core') else '–'}")
        out.append(f"- W9 CPU per request ≤ 0.3× Squid's (`{k}`): "
                   + ("met" if cr is not None and cr <= 0.3 else "**missed**")
                   + f" — ×{fmt(cr, 2)} ({fmt(sg['cpu_us'], 1)} vs {fmt(best['cpu_us'], 1)} µs)")
        for k2, other in sq:
            if k2 != k and other.get("rps") and other.get("cpu_us") and sg.get("cpu_us"):
                out.append(f"  - against `{k2}` instead: requests/s ×{sg['rps'] / other['rps']:.2f}, "
                           f"CPU per request ×{sg['cpu_us'] / other['cpu_us']:.2f} "
                           f"({fmt(other['cpu_us'], 1)} µs)")
    return out


def section(results):
    """Markdown for docs/benchmarks.md: W8, W9 and their profiles."""
    L = []
    w8 = results.get("W8")
    L.append("## W8 — posting through interception and DLP (HTTP/2)\n")
    L.append(
        "socialgate with the built-in policy (`policies/default.yaml`), the client "
        "identified as `alice` in `communications` by the `127.0.0.0/8` network entry "
        "(role press-office: rule `press-office-posts`, `dlp: official`), "
        f"`upstream.resolve` mapping {W8_HOST} to a bench upstream of its own whose "
        f"certificate names {W8_HOST}, and the audit log written to a file. h2load "
        f"(HTTP/2, {W8_STREAMS} streams per connection, {W8_CONNS} connections) POSTs a "
        f"{w8.get('body_bytes', 2048) if w8 else 2048}-byte clean LinkedIn share "
        f"(`{W8_PATH}`, `content-type: application/json`) through "
        "`examples/connect_shim.rs` (one CONNECT per connection, since h2load has no "
        "proxy support; the shim runs on the load core). Each post is classified "
        "(site linkedin, activity post), its body buffered and scanned by the `official` "
        "profile (payment cards, NI and NHS numbers, bank accounts, IBANs, protective "
        "markings, secrets), sent upstream, and audited. The run counts only if every "
        "response is 2xx and every audit line is `allow` by press-office-posts with "
        "activity post and no finding (streams h2load resets when its time is up are "
        "audited with no decision and status 400: up to the streams in flight of the "
        "warm-up and the measured run are let through). Squid has no such policy or DLP: socialgate "
        "only. Goal: ≥ 5,000 posts/s per proxy core.\n")
    if not w8 or not w8.get("rows"):
        L.append("_Not run._\n")
    else:
        r = w8["rows"]["socialgate"]
        L.append(row_table(w8["rows"]))
        L.append("")
        L.append(COLUMNS + " Audit lines by action, rule and activity: "
                 + ", ".join(f"`{k}` ×{v}" for k, v in r.get("audit", {}).items())
                 + (" — check passed." if r.get("audit_ok") else " — **check failed**."))
        if r.get("audit_sample"):
            L.append("\n```json\n" + r["audit_sample"][0][:600] + "\n```\n")
        L.append("```\n" + "\n".join(w8["commands"]) + "\n```\n")
        if w8.get("settings"):
            L.append("socialgate's settings for W8:\n")
            L.append("```yaml\n" + re.sub(r"/tmp/socialgate-bench-[^/]+", "$BENCH_DIR",
                                           w8["settings"]).replace(ROOT + "/", "").strip()
                     + "\n```\n")
    w9 = results.get("W9")
    L.append("## W9 — HTTP/2 multiplexing through interception\n")
    L.append(
        "GET `https://localhost:UPSTREAM/` (1 KiB) through interception with the bench "
        "policy, as W3, by h2load through the CONNECT shim. socialgate: "
        f"`-c {W9_CONNS} -m {W9_STREAMS}` over HTTP/2. Squid's ssl-bump port talks "
        "only HTTP/1.1 to clients, so it is measured twice: pipelined "
        f"(`-c {W9_CONNS} -m {W9_STREAMS} --h1`) and with the same concurrency in "
        f"connections (`-c {W9_SQUID_CONC} -m 1 --h1`); the better of the two makes the "
        "ratio. `socialgate h1 100 conns` is socialgate driven the way Squid is, for "
        "reference. Goal: ≥ 2× Squid's requests/s at ≤ 0.3× its CPU per request.\n")
    if not w9 or not w9.get("rows"):
        L.append("_Not run._\n")
    else:
        L.append(row_table(w9["rows"]))
        L.append("")
        L.append(COLUMNS + "\n")
        L.append("```\n" + "\n".join(w9["commands"]) + "\n```\n")
    gl = goal_lines(results)
    if gl:
        L.append("### W8/W9 goals against this run\n")
        L.extend(gl)
        L.append("")
    perf = results.get("h2perf")
    if perf:
        L.append("### Where socialgate's CPU goes in W8 and W9\n")
        L.append("`perf record -e cpu-clock -F 999 -g --call-graph "
                 f"{PERF_CALLGRAPH}` of socialgate for the measured run (after a warm-up); "
                 "shares are self time by component, from `perf report --no-children --sort "
                 "dso,sym` (symbols mapped by crate: rustls/ring → TLS, hyper/h2 → HTTP, "
                 "socialgate_engine::dlp, aho-corasick, memchr → DLP, the rest of the engine "
                 "and regex → classification, serde_json → audit, mimalloc → allocation). "
                 "Reproduce with `scripts/bench/profile.sh`.\n")
        for wl, p in perf.items():
            L.append(f"**{wl}** ({p.get('ok', 0):,} requests in the profiled run)\n")
            L.append("| component (self time of its symbols) | share of CPU |\n|---|---:|")
            for k, v in p["categories"].items():
                L.append(f"| {k} | {v:.1f} % |")
            L.append("")
            if p.get("chain_samples"):
                L.append(f"By call chain ({p['chain_samples']:,} samples; `perf script`): "
                         "\"charged\" puts each sample on the innermost component its "
                         "stack passes through (a memcpy in the DLP scan is DLP's, a "
                         "writev under rustls is TLS's); \"anywhere\" counts every component "
                         "on the stack, so those overlap (everything runs under hyper).\n")
                L.append("| component | charged | anywhere on the stack |\n|---|---:|---:|")
                anyw = p.get("chain_any", {})
                for k, v in p["chain_innermost"].items():
                    L.append(f"| {k} | {v:.1f} % | {fmt(anyw.get(k), 1)}"
                             f"{' %' if k in anyw else ''} |")
                L.append("")
            L.append("```\n" + "\n".join(p["top"][:20]) + "\n```\n")
    return "\n".join(L)


def main():
    """Standalone: the W8/W9 profiles only (scripts/bench/profile.sh)."""
    import argparse
    sys.path.insert(0, HERE)
    import bench as bm
    ap = argparse.ArgumentParser(description="perf profiles of socialgate under W8 and W9")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default="/tmp/socialgate-h2-profile.md")
    ap.add_argument("--nice", type=int, default=-10,
                    help="nice for the gateway, the load and their sessions (as bench.py)")
    a = ap.parse_args()
    if a.nice:
        try:
            os.nice(a.nice)
            bm.set_autogroup_nice(os.getpid(), a.nice)
        except OSError:
            a.nice = 0
    args = argparse.Namespace(duration=a.seconds, warmup=a.warmup, nice=a.nice, rounds=1,
                              oha=None, mitmdump=None, perf=True, conns=32)
    b = bm.Bench(args)
    h = H2(b, bm)
    why = h.ready()
    if why:
        sys.exit(why)
    for attr in ("sg", "upstream_bin"):
        setattr(b, attr, getattr(h, attr))
    try:
        b.start_upstream()
        h.run_perf([], seconds=a.seconds)
    finally:
        b.stop_all()
    with open(a.out, "w") as f:
        f.write(section({"h2perf": b.results.get("h2perf", {})}))
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(b.results, f, indent=1)
    bm.log(f"wrote {a.out}; perf data and reports in {b.dir}")


if __name__ == "__main__":
    main()
