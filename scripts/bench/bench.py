#!/usr/bin/env python3
"""Side-by-side benchmarks of socialgate, Squid, tinyproxy, mitmproxy and g3proxy
(the workloads and goals of docs/benchmarks.md). Started by scripts/bench/run.sh, which installs and builds what
this needs; see that file for the one command to run.

Every proxy runs pinned to core 1; the load generator (oha, curl, the idle-tunnel
client) and the upstream run on core 0. Each proxy is started afresh for each
workload and each round, so its peak RSS belongs to that run. The oha workloads run
--rounds times (rounds interleaved across the peers, so slow drifts of the shared
machine hit every peer alike) and report the median of each figure; other workload
modules can use median_rows() and Bench.measure_rounds() the same way.
All traffic goes to 127.0.0.1. Binaries come from $CARGO_TARGET_DIR (default target/).
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import h2_workloads  # W8, W9: HTTP/2 through interception, with h2load

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BENCH = os.path.join(ROOT, "target", "bench")
# Where cargo put socialgate and the examples: $CARGO_TARGET_DIR as cargo reads it
# (relative to the directory cargo ran in, which run.sh makes the repository root).
TARGET = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"))
TICK = os.sysconf("SC_CLK_TCK")
PROXY_CPU = "1"
LOAD_CPU = "0"

CORE_PEERS = ["socialgate", "socialgate-noaudit", "squid", "tinyproxy", "mitmproxy", "g3proxy"]
# Peers that only forward (no TLS interception): absent from W3/W4.
NO_INTERCEPT = {"tinyproxy", "g3proxy"}
# Peers measured in W1 and T3 only (run.sh builds g3proxy for the comparison of the
# plain relay paths).
RELAY_ONLY = {"g3proxy"}
# T3 (the relay floor: W3's TLS requests through a plain CONNECT tunnel): every peer
# that can tunnel.
TUNNEL_PEERS = ["socialgate", "squid", "tinyproxy", "mitmproxy", "g3proxy"]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30.0, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# ---------------------------------------------------------------- /proc readings

def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    # The command name may hold spaces; everything after the last ')' is fixed.
    return data[data.rindex(")") + 2:].split()


def process_tree(root):
    """root and all its descendants (helpers such as Squid's certgen)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(entry)[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_split(root):
    """(user, kernel) CPU seconds of the tree, reaped children included."""
    user = kernel = 0
    for pid in process_tree(root):
        try:
            f = _stat_fields(pid)
        except OSError:
            continue
        # fields 14..17 of stat: utime stime cutime cstime (index 11.. after pid/comm)
        user += int(f[11]) + int(f[13])
        kernel += int(f[12]) + int(f[14])
    return user / TICK, kernel / TICK


def cpu_seconds(root):
    """utime + stime (and reaped children's) of the tree, in seconds."""
    return sum(cpu_split(root))


def status_kib(root, key):
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def context_switches(root):
    """Voluntary + involuntary context switches of every live thread of the tree."""
    total = 0
    for pid in process_tree(root):
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{pid}/task/{t}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                            total += int(line.split()[1])
            except OSError:
                continue
    return total


def threads(root):
    n = 0
    for pid in process_tree(root):
        try:
            n += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return n


def shell_join(argv):
    import shlex
    return " ".join(shlex.quote(a) for a in argv)


def set_autogroup_nice(pid, nice):
    """With autogroup scheduling, nice only ranks threads within one session: give the
    session itself the same nice, so the bench competes with other sessions on equal
    terms whatever else runs on the machine."""
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
        return True
    except OSError:
        return False


def cpu_busy(seconds=2.0):
    """Share of all CPUs busy over `seconds` (from /proc/stat), in per cent."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + (v[4] if len(v) > 4 else 0)
    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return 100.0 * (1 - (i1 - i0) / max(1, t1 - t0))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# Per-round figures kept beside the medians (results JSON "runs"; the doc's last column).
ROUND_KEYS = ("rps", "cpu_us", "p50", "p99")


def median_rows(rows):
    """One row from the rows of several rounds of the same measurement: the median of
    every numeric field (None where no round has a number), the first round's value of
    any other field, and under "runs" the per-round values of ROUND_KEYS (None for a
    round without that figure). Rows that are None (failed rounds) are left out;
    returns None if no round succeeded. Used by every oha workload here and by other
    workload modules (h2_workloads.py)."""
    rows = [r for r in rows if r]
    if not rows:
        return None
    out = {}
    for key in rows[0]:
        if key == "runs":
            continue
        vals = [r.get(key) for r in rows]
        nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if nums:
            m = statistics.median(nums)
            out[key] = int(round(m)) if all(isinstance(v, int) for v in nums) else m
        elif all(v is None for v in vals):
            out[key] = None
        else:
            out[key] = vals[0]
    out["runs"] = {k: [r.get(k) for r in rows] for k in ROUND_KEYS if k in rows[0]}
    out["rounds"] = len(rows)
    return out


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="socialgate-bench-")
        os.chmod(self.dir, 0o755)
        self.procs = []
        self.started_once = set()
        self.results = {}  # workload -> {proxy: row}
        self.notes = []
        self.commands = []
        self.skipped = {}  # proxy -> reason
        self.oha_bin = args.oha
        self.mitmdump = args.mitmdump
        self.g3proxy = getattr(args, "g3proxy", None)
        self.sg = os.path.join(TARGET, "release", "socialgate")
        self.upstream_bin = os.path.join(TARGET, "release", "examples", "bench_upstream")
        self.up_ca = os.path.join(self.dir, "upstream-ca.pem")
        self.http_port = free_port()
        self.https_port = free_port()

    # -- processes

    def start(self, name, argv, cpu, **kw):
        logf = open(os.path.join(self.dir, f"{name}.log"), "ab")
        full = ["taskset", "-c", cpu] + argv
        if self.args.nice:
            full = ["nice", "-n", str(self.args.nice)] + full
        p = subprocess.Popen(full, stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        p.bench_name = name
        self.procs.append(p)
        if name not in self.started_once:
            self.started_once.add(name)
            self.commands.append(f"{name}: " + shell_join(full))
        if self.args.nice:
            set_autogroup_nice(p.pid, self.args.nice)
        return p

    def stop(self, p):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p)

    # -- upstream

    def start_upstream(self):
        pf = os.path.join(self.dir, "upstream.ports")
        self.upstream = self.start("upstream", [
            self.upstream_bin, "--http-port", str(self.http_port),
            "--https-port", str(self.https_port), "--ca-out", self.up_ca,
            "--port-file", pf], LOAD_CPU)
        wait_port(self.http_port, proc=self.upstream)
        wait_port(self.https_port, proc=self.upstream)

    # -- proxies: each returns (process, ports, ca) where ports = {"plain":..,"bump":..}

    def start_socialgate(self, audit=True):
        name = "socialgate" if audit else "socialgate-noaudit"
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        port, admin = free_port(), free_port()
        audit_path = os.path.join(d, "audit.jsonl") if audit else "/dev/null"
        settings = f"""listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin}
policy: {os.path.join(HERE, "policy.yaml")}
ca: {{ cert: {d}/ca.crt, key: {d}/ca.key, create_if_missing: true }}
identity:
  networks:
    - {{ cidr: 127.0.0.0/8, user: bob, groups: [all-staff] }}
upstream:
  extra_roots: [{self.up_ca}]
  resolve: {{ localhost: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allow_ip_literals: [127.0.0.1/32]     # W1 and the tunnels address the upstream by IP
  allowed_ports: [{self.http_port}, {self.https_port}]
limits:
  max_connections: 30000
  idle_timeout: 600s
audit: {{ path: {audit_path} }}
"""
        conf = os.path.join(d, "socialgate.yaml")
        with open(conf, "w") as f:
            f.write(settings)
        env = dict(os.environ, RUST_LOG="warn")
        p = self.start(name, [self.sg, "run", "--config", conf], PROXY_CPU, cwd=d, env=env)
        wait_port(port, proc=p)
        self.sg_settings = settings
        return p, {"plain": port, "bump": port}, os.path.join(d, "ca.crt")

    def start_squid(self):
        d = os.path.join(self.dir, "squid")
        os.makedirs(d, exist_ok=True)
        cert, key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
        if not os.path.exists(cert):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "30",
                            "-subj", "/CN=squid bench CA"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(d, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost bench.test\n")
        db = os.path.join(d, "ssl_db")
        if os.path.exists(db):
            shutil.rmtree(db)
        subprocess.run(["/usr/lib/squid/security_file_certgen", "-c", "-s", db, "-M", "16MB"],
                       check=True, stdout=subprocess.DEVNULL)
        plain, bump = free_port(), free_port()
        with open(os.path.join(HERE, "squid.conf.in")) as f:
            conf = f.read()
        for k, v in {"PLAIN_PORT": plain, "BUMP_PORT": bump, "CA_CERT": cert, "CA_KEY": key,
                     "DIR": d, "UPSTREAM_CA": self.up_ca}.items():
            conf = conf.replace(f"@{k}@", str(v))
        path = os.path.join(d, "squid.conf")
        with open(path, "w") as f:
            f.write(conf)
        subprocess.run(["chown", "-R", "proxy:proxy", d], check=False)
        os.chmod(self.up_ca, 0o644)
        p = self.start("squid", ["squid", "-N", "-f", path], PROXY_CPU)
        wait_port(plain, proc=p)
        wait_port(bump, proc=p)
        return p, {"plain": plain, "bump": bump}, cert

    def start_tinyproxy(self):
        d = os.path.join(self.dir, "tinyproxy")
        os.makedirs(d, exist_ok=True)
        port = free_port()
        with open(os.path.join(HERE, "tinyproxy.conf.in")) as f:
            conf = f.read().replace("@PORT@", str(port)).replace("@DIR@", d)
        path = os.path.join(d, "tinyproxy.conf")
        with open(path, "w") as f:
            f.write(conf)
        p = self.start("tinyproxy", ["tinyproxy", "-d", "-c", path], PROXY_CPU)
        wait_port(port, proc=p)
        return p, {"plain": port, "bump": None}, None

    def start_mitmproxy(self, tunnel_only=False):
        d = os.path.join(self.dir, "mitmproxy")
        os.makedirs(d, exist_ok=True)
        ca_pem = os.path.join(d, "mitmproxy-ca.pem")
        if not os.path.exists(ca_pem):
            # The same kind of CA as the others: ECDSA P-256 (key + cert in one file).
            key, cert = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "30",
                            "-subj", "/CN=mitmproxy bench CA",
                            "-addext", "basicConstraints=critical,CA:TRUE",
                            "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(ca_pem, "w") as f:
                f.write(open(key).read() + open(cert).read())
        port = free_port()
        argv = [self.mitmdump, "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port),
                "--set", f"confdir={d}", "--set", f"ssl_verify_upstream_trusted_ca={self.up_ca}",
                "--set", "flow_detail=0", "-s", os.path.join(HERE, "mitm_addon.py")]
        if tunnel_only:
            # W2 and M1 measure tunnels: pass 127.0.0.1 through untouched, as
            # socialgate and Squid do for unlisted destinations.
            argv += ["--ignore-hosts", r"^127\.0\.0\.1:"]
        p = self.start("mitmproxy", argv, PROXY_CPU)
        wait_port(port, timeout=60, proc=p)
        return p, {"plain": port, "bump": port}, os.path.join(d, "ca.crt")

    def start_g3proxy(self):
        """g3proxy as a plain forward proxy (http_proxy server, direct escaper): no
        interception, so only W1 and T3. Config from scripts/bench/g3proxy.yaml.in."""
        if not self.g3proxy:
            raise RuntimeError("no g3proxy binary (run.sh builds it when G3_SRC is set)")
        d = os.path.join(self.dir, "g3proxy")
        os.makedirs(os.path.join(d, "control"), exist_ok=True)
        port = free_port()
        with open(os.path.join(HERE, "g3proxy.yaml.in")) as f:
            conf = f.read().replace("@PORT@", str(port))
        path = os.path.join(d, "g3proxy.yaml")
        with open(path, "w") as f:
            f.write(conf)
        p = self.start("g3proxy", [self.g3proxy, "-c", path, "-C", os.path.join(d, "control")],
                       PROXY_CPU)
        wait_port(port, proc=p)
        return p, {"plain": port, "bump": None}, None

    def start_proxy(self, name, tunnel_only=False):
        name = name.removesuffix("-tunnel")
        if name == "g3proxy":
            return self.start_g3proxy()
        if name == "socialgate":
            return self.start_socialgate(True)
        if name == "socialgate-noaudit":
            return self.start_socialgate(False)
        if name == "squid":
            return self.start_squid()
        if name == "tinyproxy":
            return self.start_tinyproxy()
        if name == "mitmproxy":
            return self.start_mitmproxy(tunnel_only)
        raise ValueError(name)

    # -- load

    def oha(self, url, conns, seconds, proxy=None, ca=None, keepalive=True, rate=None):
        argv = [self.oha_bin, "--no-tui", "--output-format", "json", "-z", f"{seconds}s",
                "-c", str(conns)]
        if proxy:
            argv += ["-x", f"http://127.0.0.1:{proxy}"]
        if ca:
            argv += ["--cacert", ca]
        if not keepalive:
            argv += ["--disable-keepalive"]
        if rate:
            argv += ["-q", str(rate), "--latency-correction"]
        argv.append(url)
        cmd = ["taskset", "-c", LOAD_CPU] + argv
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        if r.returncode != 0:
            raise RuntimeError(f"oha failed ({r.returncode}): {r.stderr[-2000:]}")
        return json.loads(r.stdout), cmd

    def measure_rounds(self, workload, jobs, rounds=None):
        """Each job is (key, proxy_name, url, measure_oha keyword arguments), measured
        `rounds` times (default --rounds), round after round across all jobs, the proxy
        started afresh each time. Returns {key: median_rows(its rounds)} for the jobs
        with at least one successful round (a note names partly failed ones)."""
        jobs = [(workload,) + tuple(job) for job in jobs]
        return self.measure_interleaved(jobs, rounds).get(workload, {})

    def measure_interleaved(self, jobs, rounds=None):
        """As measure_rounds, for jobs (workload, key, proxy_name, url, kw) of several
        workloads taken in the order given within each round: W3 and T3 of one peer
        run back to back, so a slow spell of the machine falls on both and their
        difference (W3-own) keeps its meaning round by round. Returns {workload: {key:
        median row}}; each row also keeps "round_cpu", the CPU per request of every
        round in order (None for a failed round), for pairing rounds across
        workloads."""
        n = rounds or self.args.rounds
        per = {(job[0], job[1]): [] for job in jobs}
        for i in range(n):
            for wl, key, name, url, kw in jobs:
                per[(wl, key)].append(self.measure_oha(wl, name, url,
                                                       round_label=f"round {i + 1}/{n}", **kw))
        out = {}
        for (wl, key), rows in per.items():
            m = median_rows(rows)
            if m is None:
                continue
            failed = sum(1 for r in rows if not r)
            if failed:
                self.notes.append(f"{wl} / {key}: {failed} of {n} rounds failed; "
                                  f"the figures are the median of the other {n - failed}")
            m["round_cpu"] = [r.get("cpu_us") if r else None for r in rows]
            out.setdefault(wl, {})[key] = m
            if n > 1:
                log(f"{wl} {key}: median of {m['rounds']}: {m['rps']:.0f} req/s, "
                    f"cpu/req {fmt(m['cpu_us'], 1)} us (runs {runs_text(m)})")
        return out

    def measure_oha(self, workload, proxy_name, url, keepalive=True, rate=None,
                    tunnel_only=False, warm=True, plain_port=False, round_label=None):
        """One round: start the proxy, warm up, measure, stop it; a row or None."""
        a = self.args
        proc, ports, ca = (None, None, None)
        port = None
        try:
            if proxy_name == "direct":
                ca = self.up_ca if url.startswith("https") else None
            else:
                proc, ports, ca = self.start_proxy(proxy_name, tunnel_only)
                port = ports["bump"] if url.startswith("https") else ports["plain"]
                if not url.startswith("https"):
                    ca = None
                if plain_port:
                    # A CONNECT tunnel the proxy only relays (TLS end to end).
                    port, ca = ports["plain"], self.up_ca
                if port is None:
                    return None
            if warm:
                self.oha(url, a.conns, a.warmup, proxy=port, ca=ca, keepalive=keepalive,
                         rate=rate)
            (u0, k0) = cpu_split(proc.pid) if proc else (0.0, 0.0)
            cs0 = context_switches(proc.pid) if proc else 0
            t0 = time.time()
            out, cmd = self.oha(url, a.conns, a.duration, proxy=port, ca=ca,
                                keepalive=keepalive, rate=rate)
            wall = time.time() - t0
            (u1, k1) = cpu_split(proc.pid) if proc else (0.0, 0.0)
            cpu0, cpu1 = u0 + k0, u1 + k1
            cs1 = context_switches(proc.pid) if proc else 0
            nthreads = threads(proc.pid) if proc else 0
            hwm = status_kib(proc.pid, "VmHWM") if proc else 0
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            log(f"{workload} {proxy_name}: FAILED: {e}")
            self.notes.append(f"{workload} / {proxy_name}: failed: {str(e)[:300]}")
            return None
        finally:
            if proc:
                self.stop(proc)
        codes = out.get("statusCodeDistribution", {}) or {}
        ok = int(codes.get("200", 0))
        total = sum(int(v) for v in codes.values())
        edist = {k: int(v) for k, v in (out.get("errorDistribution", {}) or {}).items()
                 if k != "aborted due to deadline"}
        errors = sum(edist.values())
        if errors:
            self.notes.append(f"{workload} / {proxy_name}: {errors} client errors: "
                              + "; ".join(f"{k} ×{v}" for k, v in edist.items())[:400])
        lat = out.get("latencyPercentiles", {}) or {}
        summ = out.get("summary", {})
        row = {
            "ok": ok,
            "non200": total - ok,
            "errors": errors,
            "rps": ok / summ.get("total", a.duration) if summ.get("total") else ok / a.duration,
            "p50": (lat.get("p50") or 0) * 1000,
            "p99": (lat.get("p99") or 0) * 1000,
            "cpu_us": ((cpu1 - cpu0) / ok * 1e6) if (proc and ok) else None,
            "user_us": ((u1 - u0) / ok * 1e6) if (proc and ok) else None,
            "kernel_us": ((k1 - k0) / ok * 1e6) if (proc and ok) else None,
            "busy": ((cpu1 - cpu0) / wall * 100) if proc else None,
            "hwm_mib": hwm / 1024 if proc else None,
            "cs_per": ((cs1 - cs0) / ok) if (proc and ok) else None,
            "threads": nthreads if proc else None,
        }
        label = f"{workload} {proxy_name}: "
        if not any(c.startswith(label) for c in self.commands):
            self.commands.append(label + shell_join(cmd))
        log(f"{workload} {proxy_name}{' (' + round_label + ')' if round_label else ''}: "
            f"{row['rps']:.0f} req/s, p50 {row['p50']:.2f} ms, "
            f"p99 {row['p99']:.2f} ms, cpu/req {fmt(row['cpu_us'], 1)} us, "
            f"busy {fmt(row['busy'], 0)} %, non-200 {row['non200']}, errors {errors}")
        return row

    def run_w1(self, peers):
        url = f"http://127.0.0.1:{self.http_port}/"
        self.results["W1"] = res = self.measure_rounds(
            "W1", [(name, name, url, {}) for name in ["direct"] + peers])
        # Added latency at half load: half socialgate's W1 rate, against direct.
        sg = res.get("socialgate")
        if sg and sg["rps"] > 0:
            rate = int(sg["rps"] / 2)
            names = [n for n in ["direct", "socialgate", "squid"] if n == "direct" or n in peers]
            self.results["W1-half"] = self.measure_rounds(
                "W1-half", [(name, name, url, {"rate": rate}) for name in names])
            self.half_rate = rate

    def w3_jobs(self, peers, keepalive=True):
        wl = "W3" if keepalive else "W4"
        url = f"https://localhost:{self.https_port}/"
        jobs = []
        for name in ["direct"] + [p for p in peers if p not in NO_INTERCEPT]:
            if wl == "W4" and name == "socialgate-noaudit":
                continue
            u = url if name != "direct" else f"https://127.0.0.1:{self.https_port}/"
            jobs.append((wl, name, name, u, {"keepalive": keepalive}))
        return jobs

    def t3_jobs(self, peers):
        """The relay floor: W3's TLS requests through a plain CONNECT tunnel to
        127.0.0.1 (unlisted for socialgate; Squid's non-bump port; mitmproxy with
        --ignore-hosts), so the proxy only moves bytes: the four socket calls per
        request any proxy makes, and nothing else."""
        url = f"https://127.0.0.1:{self.https_port}/"
        return [("T3", name, name, url, {"plain_port": True, "tunnel_only": True})
                for name in TUNNEL_PEERS if name in peers]

    def run_w3(self, peers, keepalive=True):
        wl = "W3" if keepalive else "W4"
        self.results[wl] = self.measure_interleaved(self.w3_jobs(peers, keepalive)).get(wl, {})

    def run_t3(self, peers):
        self.results["T3"] = self.measure_interleaved(self.t3_jobs(peers)).get("T3", {})

    def run_w3_t3(self, peers):
        """W3 and T3 together: within each round, every peer's W3 is followed at
        once by its T3, so W3-own can be taken round by round."""
        t3 = {job[1]: job for job in self.t3_jobs(peers)}
        jobs = []
        for job in self.w3_jobs(peers):
            jobs.append(job)
            if job[1] in t3:
                jobs.append(t3.pop(job[1]))
        jobs.extend(t3.values())
        res = self.measure_interleaved(jobs)
        self.results["W3"] = res.get("W3", {})
        self.results["T3"] = res.get("T3", {})

    def run_w2(self, peers):
        n = self.args.bulk_bytes
        url = f"http://127.0.0.1:{self.http_port}/bulk?bytes={n}"
        res = {}
        for name in ["direct"] + [p for p in peers
                                  if p != "socialgate-noaudit" and p not in RELAY_ONLY]:
            proc = None
            try:
                curl = ["taskset", "-c", LOAD_CPU, "curl", "-s", "-o", "/dev/null",
                        "-w", "%{http_code} %{size_download} %{time_total}"]
                if name != "direct":
                    proc, ports, _ = self.start_proxy(name, tunnel_only=True)
                    curl += ["-p", "-x", f"http://127.0.0.1:{ports['plain']}"]
                curl.append(url)
                rates, cpus = [], []
                for _ in range(self.args.bulk_runs):
                    c0 = cpu_seconds(proc.pid) if proc else 0
                    r = subprocess.run(curl, capture_output=True, text=True, timeout=300)
                    c1 = cpu_seconds(proc.pid) if proc else 0
                    code, size, secs = r.stdout.split()
                    if code != "200" or int(size) != n:
                        raise RuntimeError(f"curl: status {code}, {size} of {n} bytes")
                    rates.append(n / float(secs) / 1e6)
                    cpus.append((c1 - c0) / (n / 2**30))
                hwm = status_kib(proc.pid, "VmHWM") / 1024 if proc else None
                row = {"mbps": statistics.median(rates), "runs": rates,
                       "cpu_s_per_gib": statistics.median(cpus) if proc else None,
                       "hwm_mib": hwm}
                res[name] = row
                self.commands.append("W2 " + name + ": " + shell_join(curl))
                log(f"W2 {name}: {row['mbps']:.0f} MB/s (runs {', '.join(f'{x:.0f}' for x in rates)})")
            except Exception as e:  # noqa: BLE001
                log(f"W2 {name}: FAILED: {e}")
                self.notes.append(f"W2 / {name}: failed: {str(e)[:300]}")
            finally:
                if proc:
                    self.stop(proc)
        self.results["W2"] = res

    def run_m1(self, peers):
        n = self.args.idle
        res = {}
        client = [sys.executable, os.path.join(HERE, "idle_tunnels.py")]
        for name in [p for p in peers if p != "socialgate-noaudit" and p not in RELAY_ONLY]:
            proc = None
            holder = None
            try:
                proc, ports, _ = self.start_proxy(name, tunnel_only=True)
                port = ports["plain"]
                # Warm up: a few tunnels opened and closed, so the baseline includes
                # the runtime's first allocations.
                warm = subprocess.Popen(["taskset", "-c", LOAD_CPU] + client +
                                        [str(port), str(self.http_port), "50"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                warm.stdout.readline()
                warm.communicate("\n", timeout=60)
                time.sleep(1)
                rss0 = status_kib(proc.pid, "VmRSS")
                holder = subprocess.Popen(["taskset", "-c", LOAD_CPU] + client +
                                          [str(port), str(self.http_port), str(n)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          text=True)
                t0 = time.time()
                line = holder.stdout.readline().split()
                took = time.time() - t0
                ok, failed = int(line[1]), int(line[2])
                time.sleep(2)
                rss1 = status_kib(proc.pid, "VmRSS")
                row = {"ok": ok, "failed": failed, "rss0_mib": rss0 / 1024,
                       "rss1_mib": rss1 / 1024,
                       "kib_per": (rss1 - rss0) / ok if ok else None, "open_s": took}
                res[name] = row
                log(f"M1 {name}: {ok} tunnels ({failed} failed) in {took:.1f}s, RSS "
                    f"{rss0/1024:.1f} -> {rss1/1024:.1f} MiB, {fmt(row['kib_per'], 1)} KiB/tunnel")
            except Exception as e:  # noqa: BLE001
                log(f"M1 {name}: FAILED: {e}")
                self.notes.append(f"M1 / {name}: failed: {str(e)[:300]}")
            finally:
                if holder:
                    try:
                        holder.communicate("\n", timeout=60)
                    except subprocess.TimeoutExpired:
                        holder.kill()
                if proc:
                    self.stop(proc)
        self.commands.append(f"M1: taskset -c {LOAD_CPU} python3 scripts/bench/idle_tunnels.py "
                             f"PROXY_PORT {self.http_port} {n}")
        self.results["M1"] = res

    def run_criterion(self):
        res = {}
        benches = ["leaf_mint", "dlp_scan", "decide"]
        # Build first, on both cores; only the measurement is pinned.
        build = ["cargo", "bench", "--locked", "--no-run"] + [f"--bench={x}" for x in benches]
        log("criterion: " + " ".join(build))
        r = subprocess.run(build, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            self.notes.append(f"`{' '.join(build)}` failed; no criterion figures: "
                              + r.stderr[-500:])
            return
        for bench in benches:
            cmd = ["taskset", "-c", PROXY_CPU, "cargo", "bench", "--locked", "--bench", bench]
            self.commands.append(" ".join(cmd))
            log(f"criterion: {' '.join(cmd)}")
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
            with open(os.path.join(self.dir, f"criterion-{bench}.log"), "w") as f:
                f.write(r.stdout + r.stderr)
            if r.returncode != 0:
                self.notes.append(f"cargo bench --bench {bench} failed ({r.returncode}); "
                                  f"see its log: {r.stderr[-500:]}")
                continue
            res.update(parse_criterion(r.stdout))
            log(f"criterion {bench}: done")
        self.results["criterion"] = res

    def run_perf(self):
        """Flat CPU profiles of socialgate under W1, W3 and W4 (software clock)."""
        if not shutil.which("perf"):
            self.notes.append("perf is not installed: no profile taken")
            return
        prof = {}
        for wl, url, keep in [
                ("W1", f"http://127.0.0.1:{self.http_port}/", True),
                ("W3", f"https://localhost:{self.https_port}/", True),
                ("W4", f"https://localhost:{self.https_port}/", False)]:
            proc = None
            try:
                proc, ports, ca = self.start_socialgate(True)
                data = os.path.join(self.dir, f"perf-{wl}.data")
                self.oha(url, self.args.conns, 2, proxy=ports["plain"],
                         ca=ca if url.startswith("https") else None, keepalive=keep)
                rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "999"]
                                       + os.environ.get("BENCH_PERF_ARGS", "").split()
                                       + ["-o", data, "-p", str(proc.pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.oha(url, self.args.conns, 8, proxy=ports["plain"],
                         ca=ca if url.startswith("https") else None, keepalive=keep)
                rec.send_signal(signal.SIGINT)
                rec.wait(timeout=60)
                rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                      "--sort", "dso,symbol", "--percent-limit", "0.7"],
                                     capture_output=True, text=True, timeout=300)
                lines = [clean_perf(ln) for ln in rep.stdout.splitlines()
                         if ln.strip() and not ln.startswith("#")]
                dso = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                      "--sort", "dso", "--percent-limit", "1"],
                                     capture_output=True, text=True, timeout=300)
                dlines = [clean_perf(ln) for ln in dso.stdout.splitlines()
                          if ln.strip() and not ln.startswith("#")]
                prof[wl] = {"dso": dlines[:8], "sym": lines[:30]}
                with open(os.path.join(self.dir, f"perf-{wl}.txt"), "w") as f:
                    f.write(rep.stdout)
                log(f"perf {wl}: profile saved")
            except Exception as e:  # noqa: BLE001
                self.notes.append(f"perf {wl}: failed: {e}")
            finally:
                if proc:
                    self.stop(proc)
        self.results["perf"] = prof


# ---------------------------------------------------------------- report

def parse_criterion(text):
    """{bench id: {"time": [value, unit], "thrpt": [value, unit]}} (the middle estimate)."""
    out, current = {}, None
    for line in text.splitlines():
        if line and not line[0].isspace():
            head = line.split()[0]
            if head not in ("Benchmarking", "Found", "Gnuplot", "Warning:", "Running",
                            "Compiling", "Finished") and not head.endswith(":"):
                current = head
        for key in ("time", "thrpt"):
            m = re.search(key + r":\s+\[([^\]]*)\]", line)
            if m and current:
                parts = m.group(1).split()
                if len(parts) >= 4:
                    out.setdefault(current, {})[key] = parts[2:4]
    return out


def clean_perf(line):
    line = re.sub(r"(\s+-)+\s*$", "", line.rstrip())
    return re.sub(r"\s{3,}", "  ", line)


def fmt(x, digits=1):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def runs_text(r, unit="us"):
    """The per-round req/s and CPU per request of a median row, compactly."""
    runs = r.get("runs") or {}
    rps = " / ".join(fmt(x, 0) for x in runs.get("rps", []))
    cpu = " / ".join(fmt(x, 1) for x in runs.get("cpu_us", []) if x is not None)
    if not rps:
        return "–"
    return rps + (f"; {cpu} {unit}" if cpu else "")


def oha_table(res, peers_order, label=None):
    """One row per proxy (direct first), medians of the rounds, the rounds last."""
    head = ("| proxy | req/s | p50 ms | p99 ms | proxy CPU µs/req (user + kernel) | req/s per proxy core | "
            "proxy core busy | peak RSS MiB | context switches/req (threads) | "
            "non-2xx / errors | runs: req/s; CPU µs/req |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    rows = [head]
    legacy = [k for k in res if k.endswith("-tunnel")]  # results of version 1
    for name in ["direct"] + peers_order + legacy + [k for k in res if k not in peers_order
                                                     and k not in legacy and k != "direct"]:
        r = res.get(name)
        if not r:
            continue
        shown = name + (f" ({label})" if label and name != "direct" else "")
        rows.append(f"| {shown} | {fmt(r['rps'], 0)} | {fmt(r['p50'], 2)} | {fmt(r['p99'], 2)} | "
                    f"{fmt(r['cpu_us'], 1)}{split(r)} | {fmt(capacity(r), 0)} | {fmt(r['busy'], 0)}{' %' if r['busy'] is not None else ''} | "
                    f"{fmt(r['hwm_mib'], 1)} | {fmt(r.get('cs_per'), 2)}"
                    f"{'' if r.get('threads') is None else ' (' + str(r['threads']) + ')'} | "
                    f"{r['non200']} / {r['errors']} | {runs_text(r, 'µs')} |")
    return "\n".join(rows)


def split(r):
    if r.get("user_us") is None:
        return ""
    return f" ({fmt(r['user_us'], 1)} + {fmt(r['kernel_us'], 1)})"


def capacity(r):
    """Requests per second one core would serve at this CPU cost per request."""
    return 1e6 / r["cpu_us"] if r.get("cpu_us") else None


def ratio_lines(res, peers_order):
    sg = res.get("socialgate")
    out = []
    if not sg:
        return out
    for name in peers_order:
        if name == "socialgate" or name not in res:
            continue
        r = res[name]
        out.append(f"- socialgate / {name}: requests/s ×{fmt(ratio(sg['rps'], r['rps']), 2)} "
                   f"(per proxy core ×{fmt(ratio(capacity(sg), capacity(r)), 2)}), "
                   f"CPU per request ×{fmt(ratio(sg['cpu_us'], r['cpu_us']), 2)}")
    return out


def verdict(ok, text):
    return ("met" if ok else "**missed**") + " — " + text


def goal_lines(b):
    R = b.results
    out = []
    w1 = R.get("W1", {})
    sg, sq = w1.get("socialgate"), w1.get("squid")
    if sg and sq:
        rr = ratio(sg["rps"], sq["rps"])
        cr = ratio(sg["cpu_us"], sq["cpu_us"])
        pc = ratio(capacity(sg), capacity(sq))
        out.append("- W1 requests/s ≥ 2× Squid: " + verdict(
            rr >= 2, f"×{rr:.2f}" + ("" if rr >= 2 else f" ({(1 - rr / 2) * 100:.0f} % short)")
            + f"; per proxy core (1 s ÷ CPU per request) ×{pc:.2f}"))
        out.append("- W1 CPU per request ≤ 1/3 of Squid's: " + verdict(
            cr <= 1 / 3, f"×{cr:.2f} ({sg['cpu_us']:.1f} vs {sq['cpu_us']:.1f} µs)"
            + ("" if cr <= 1 / 3 else f", {cr * 3:.1f}× the allowed CPU")))
    half = R.get("W1-half", {})
    if half.get("socialgate") and half.get("direct"):
        added = half["socialgate"]["p99"] - half["direct"]["p99"]
        out.append(f"- W1 p99 added latency ≤ 0.5 ms at half load ({b.half_rate} req/s): "
                   + verdict(added <= 0.5, f"+{added:.2f} ms (p99 {half['socialgate']['p99']:.2f} "
                             f"vs direct {half['direct']['p99']:.2f} ms)"))
    w2 = R.get("W2", {})
    if w2.get("socialgate") and w2.get("direct"):
        rr = w2["socialgate"]["mbps"] / w2["direct"]["mbps"]
        out.append("- W2 tunnel ≥ 0.8× direct throughput: " + verdict(
            rr >= 0.8, f"×{rr:.2f} ({w2['socialgate']['mbps']:.0f} vs "
            f"{w2['direct']['mbps']:.0f} MB/s)"))
    w3 = R.get("W3", {})
    sg, sq = w3.get("socialgate"), w3.get("squid")
    if sg and sq:
        rr = ratio(sg["rps"], sq["rps"])
        cr = ratio(sg["cpu_us"], sq["cpu_us"])
        pc = ratio(capacity(sg), capacity(sq))
        out.append("- W3 requests/s ≥ 1.5× Squid ssl-bump: " + verdict(
            rr >= 1.5, f"×{rr:.2f}" + ("" if rr >= 1.5 else f" ({(1 - rr / 1.5) * 100:.0f} % short)")
            + f"; per proxy core ×{pc:.2f}"))
        out.append("- W3 CPU per request ≤ 0.3× Squid's: " + verdict(
            cr <= 0.3, f"×{cr:.2f} ({sg['cpu_us']:.1f} vs {sq['cpu_us']:.1f} µs)"))
        floor = t3_rows(R).get("socialgate")
        if floor and floor.get("cpu_us") and w1.get("squid"):
            out.append(
                f"  - the relay floor (T3: the same requests through socialgate's plain CONNECT "
                f"tunnel: only the four socket calls per request) costs {floor['cpu_us']:.1f} µs "
                f"({floor['user_us']:.1f} user + {floor['kernel_us']:.1f} kernel), i.e. "
                f"{floor['cpu_us'] / sq['cpu_us']:.2f}× Squid's W3 CPU by itself; "
                f"1/3 of Squid's W1 CPU would be {w1['squid']['cpu_us'] / 3:.1f} µs and "
                f"0.3× its W3 CPU {sq['cpu_us'] * 0.3:.1f} µs")
        if w1.get("squid") and w1.get("socialgate"):
            out.append(f"  - user-space CPU per request against Squid's: W1 ×"
                       f"{ratio(w1['socialgate']['user_us'], w1['squid']['user_us']):.2f} "
                       f"({w1['socialgate']['user_us']:.1f} vs {w1['squid']['user_us']:.1f} µs), "
                       f"W3 ×{ratio(sg['user_us'], sq['user_us']):.2f} "
                       f"({sg['user_us']:.1f} vs {sq['user_us']:.1f} µs)")
    w4 = R.get("W4", {})
    sg, sq = w4.get("socialgate"), w4.get("squid")
    if sg and sq:
        rr = ratio(sg["rps"], sq["rps"])
        pc = ratio(capacity(sg), capacity(sq))
        out.append("- W4 requests/s ≥ 5× Squid ssl-bump: " + verdict(
            rr >= 5, f"×{rr:.2f}" + ("" if rr >= 5 else f" ({(1 - rr / 5) * 100:.0f} % short)")
            + f"; per proxy core ×{pc:.2f}"))
    if sg and sg["cpu_us"]:
        hs = 1e6 / sg["cpu_us"]
        out.append("- W4 ≥ 2,500 handshakes/s per core (1 s / CPU per new connection, each being "
                   "CONNECT + client handshake + upstream handshake + request): " + verdict(
                       hs >= 2500, f"{hs:,.0f}/s ({sg['cpu_us']:.0f} µs CPU each)"))
    m1 = R.get("M1", {})
    if m1.get("socialgate") and m1["socialgate"]["kib_per"] is not None:
        k = m1["socialgate"]["kib_per"]
        out.append("- M1 ≤ 64 KiB RSS per idle tunnel: " + verdict(k <= 64, f"{k:.1f} KiB"))
    crit = R.get("criterion", {})
    for key, goal, unit in [("mint_leaf", 100, "µs"), ("decide/1000-sites-100-rules", 1, "µs")]:
        if key in crit:
            t = crit[key]["time"]
            v = to_us(t)
            if v is not None:
                out.append(f"- {'W5 leaf mint' if key == 'mint_leaf' else 'W7 decision'} "
                           f"≤ {goal} {unit}: " + verdict(v <= goal, f"{t[0]} {t[1]}"))
    out.extend(w6_lines(R, 400))
    return out


def w6_lines(R, goal):
    """W6's verdicts at `goal` MB/s: one per criterion case of the full scanner
    (every built-in and the 1,000 keywords)."""
    out = []
    for key, c in R.get("criterion", {}).items():
        if "thrpt" in c and "all_builtins+1000_keywords" in key:
            v = to_mbs(c["thrpt"])
            if v is not None:
                out.append(f"- W6 DLP ≥ {goal} MB/s per core ({key}): "
                           + verdict(v >= goal, f"{c['thrpt'][0]} {c['thrpt'][1]} = {v:.0f} MB/s"
                                     + ("" if v >= goal else f", {(1 - v / goal) * 100:.0f} % short")))
    return out


def t3_rows(R):
    """T3 rows by peer; results of version 1 kept them in W3 as "<peer>-tunnel"."""
    if R.get("T3"):
        return R["T3"]
    return {k.removesuffix("-tunnel"): v for k, v in R.get("W3", {}).items()
            if k.endswith("-tunnel")}


def paired_own(w3_row, t3_row):
    """W3 − T3 CPU per request round by round, for rounds where both were measured
    (W3 and T3 of a peer run back to back within a round); [] for results without
    per-round figures."""
    a, b = w3_row.get("round_cpu"), t3_row.get("round_cpu")
    if not a or not b or len(a) != len(b):
        return []
    return [x - y for x, y in zip(a, b) if x is not None and y is not None]


def own_costs(R):
    """W3-own per peer with both rows, the interception's own cost above the relay
    floor: {peer: (w3, t3, own, per_round)} in µs, where w3 and t3 are the medians,
    per_round the round-by-round differences, and own the median of per_round when
    there are any (W3 and T3 measured back to back), else w3 − t3."""
    w3, t3 = R.get("W3", {}), t3_rows(R)
    out = {}
    for name, r in w3.items():
        floor = t3.get(name)
        if name.endswith("-tunnel") or not floor:
            continue
        if r.get("cpu_us") is None or floor.get("cpu_us") is None:
            continue
        rounds = paired_own(r, floor)
        own = statistics.median(rounds) if rounds else r["cpu_us"] - floor["cpu_us"]
        out[name] = (r["cpu_us"], floor["cpu_us"], own, rounds)
    return out


def own_lines(R, order):
    own = own_costs(R)
    out = []
    for name in [p for p in order if p in own] + [p for p in own if p not in order]:
        w3, t3, o, rounds = own[name]
        if not w3:
            out.append(f"- {name}: –")
        elif rounds:
            out.append(f"- {name}: **{o:.1f} µs** per request, the median of the rounds' "
                       f"W3 − T3 ({' / '.join(f'{x:.1f}' for x in rounds)}; "
                       f"{o / w3 * 100:.0f} % of its W3 CPU); medians W3 {w3:.1f} − "
                       f"T3 {t3:.1f} = {w3 - t3:.1f}")
        else:
            out.append(f"- {name}: W3 {w3:.1f} − T3 {t3:.1f} = **{o:.1f} µs** per request "
                       f"({o / w3 * 100:.0f} % of its W3 CPU)")
    if "socialgate" in own and "squid" in own and own["squid"][2] > 0:
        out.append(f"- socialgate-own / squid-own: ×{own['socialgate'][2] / own['squid'][2]:.2f} "
                   "(goal ≤ 0.15×)")
    return out


# Figures followed from run to run ("every earlier figure within 10 % of the previous
# run"): (label, workload, peer, field, +1 if more is better / -1 if less is better).
TRACKED = [(f"{wl} {field_label}", wl, "socialgate", field, sign)
           for wl in ["W1", "W3", "T3", "W4"]
           for field, field_label, sign in [("rps", "req/s", 1), ("cpu_us", "CPU µs/req", -1)]]
TRACKED += [("W1-half p99 ms", "W1-half", "socialgate", "p99", -1),
            ("W2 MB/s", "W2", "socialgate", "mbps", 1),
            ("W2 CPU s/GiB", "W2", "socialgate", "cpu_s_per_gib", -1),
            ("M1 KiB/tunnel", "M1", "socialgate", "kib_per", -1)]


def tracked_figures(R):
    """{label: value} of TRACKED (and the criterion medians in µs) present in results R."""
    out = {}
    t3 = t3_rows(R)
    for label, wl, peer, field, _ in TRACKED:
        row = (t3 if wl == "T3" else R.get(wl, {})).get(peer)
        if row and isinstance(row.get(field), (int, float)):
            out[label] = row[field]
    for key, c in (R.get("criterion") or {}).items():
        v = to_us(c.get("time", []))
        if v is not None and v == v:
            out[f"criterion {key} µs"] = v
    return out


def better_sign(label):
    for lab, _, _, _, sign in TRACKED:
        if lab == label:
            return sign
    return -1  # criterion times: less is better


def goal_lines_v2(b):
    """The goals of version 2 of the benchmarks, with verdicts where the data is there."""
    R = b.results
    out = []
    own = own_costs(R)
    if "socialgate" in own and "squid" in own and own["squid"][2] > 0:
        r = own["socialgate"][2] / own["squid"][2]
        out.append("- W3-own (W3 − T3 CPU per request) ≤ 0.15× Squid's: " + verdict(
            r <= 0.15, f"×{r:.2f} ({own['socialgate'][2]:.1f} vs {own['squid'][2]:.1f} µs)"
            + ("" if r <= 0.15 else f", {r / 0.15:.1f}× the allowed CPU")))
    else:
        out.append("- W3-own ≤ 0.15× Squid's: not evaluated (needs W3 and T3 rows of "
                   "socialgate and Squid)")
    for wl, rows in [("W1", R.get("W1", {})), ("T3", t3_rows(R))]:
        sg, g3 = rows.get("socialgate"), rows.get("g3proxy")
        if sg and g3 and sg.get("cpu_us") and g3.get("cpu_us"):
            r = sg["cpu_us"] / g3["cpu_us"]
            out.append(f"- {wl} CPU per request below g3proxy's: " + verdict(
                r < 1, f"×{r:.2f} ({sg['cpu_us']:.1f} vs {g3['cpu_us']:.1f} µs)"))
            # g3proxy runs with `log: discard`; socialgate writes an audit line per
            # request. The row without the audit file is the like-for-like figure,
            # shown beside the verdict (which stays on the audited row).
            na = rows.get("socialgate-noaudit")
            if na and na.get("cpu_us"):
                out.append(f"  - like for like (neither writes a log: socialgate-noaudit, "
                           f"g3proxy `log: discard`): ×{na['cpu_us'] / g3['cpu_us']:.2f} "
                           f"({na['cpu_us']:.1f} vs {g3['cpu_us']:.1f} µs)")
        else:
            out.append(f"- {wl} CPU per request below g3proxy's: not evaluated "
                       f"({'no g3proxy row' if sg else 'no socialgate row'})")
    prev = getattr(b, "previous", None)
    if not prev or not prev.get("figures"):
        out.append("- every earlier figure within 10 % of the previous run: not evaluated "
                   "(no previous results JSON; `--previous PATH` names one)")
    else:
        now = tracked_figures(R)
        worse, better, same = [], [], 0
        for label, old in prev["figures"].items():
            new = now.get(label)
            if new is None or not old:
                continue
            change = (new - old) / old
            text = f"{label} {old:,.2f} → {new:,.2f} ({change * 100:+.0f} %)"
            if abs(change) <= 0.10:
                same += 1
            elif change * better_sign(label) < 0:
                worse.append(text)
            else:
                better.append(text)
        compared = same + len(worse) + len(better)
        out.append(f"- every earlier figure within 10 % of the previous run "
                   f"({prev.get('started', '?')}, {prev.get('work_tree', '?')}; socialgate's "
                   f"figures, a figure counts against the goal only when worse): " + verdict(
                       compared > 0 and not worse,
                       f"{same} of {compared} within 10 %"
                       + (f"; worse: {'; '.join(worse)}" if worse else "")
                       + (f"; better: {'; '.join(better)}" if better else "")))
        here = run_machine(b)
        if prev.get("machine") and prev["machine"] != here:
            out.append(f"  - the previous run was on another machine ({prev['machine']}; this "
                       f"one: {here}): the changes measure the machines as much as the code")
        elif not prev.get("machine"):
            out.append("  - the previous run's results do not name its machine: a change of "
                       "machine cannot be told from a change of code here")
    # W6 of version 2: the scan of version 1's W6 corpus at 600 MB/s rather than 400.
    out.extend(w6_lines(R, 600))
    return out


def to_us(t):
    try:
        v = float(t[0])
    except (ValueError, IndexError):
        return None
    return v * {"ns": 1e-3, "µs": 1, "us": 1, "ms": 1e3, "s": 1e6}.get(t[1], float("nan"))


def to_mbs(t):
    try:
        v = float(t[0])
    except (ValueError, IndexError):
        return None
    return v * {"B/s": 1e-6, "KiB/s": 1024 / 1e6, "MiB/s": 2**20 / 1e6, "GiB/s": 2**30 / 1e6,
                "KB/s": 1e-3, "MB/s": 1, "GB/s": 1e3}.get(t[1], float("nan"))


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with open("/proc/meminfo") as f:
        mem = f.readline().split()[1]
    return (f"{os.cpu_count()} CPUs ({cpu}), {int(mem) // 1024 // 1024} GiB RAM, "
            f"Linux {platform.release()}")


def run_machine(b):
    """The machine the results were measured on: the saved one when the report is
    rewritten from a results JSON, else this one."""
    return getattr(b, "machine", None) or machine()


def versions(b):
    def first(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return {
        "squid": first(["squid", "-v"]),
        "tinyproxy": first(["tinyproxy", "-v"]),
        "mitmproxy": (first([b.mitmdump, "--version"])
                      if b.mitmdump and os.path.exists(b.mitmdump) else "not installed"),
        "g3proxy": (first([b.g3proxy, "--version"])
                    if b.g3proxy and os.path.exists(b.g3proxy) else "not built"),
        "oha": first([b.oha_bin, "--version"]),
        "curl": first(["curl", "--version"]),
        "rustc": first(["rustc", "--version"]),
    }


NOTES_START, NOTES_END = "<!-- notes: kept when run.sh rewrites this file -->", "<!-- /notes -->"


def kept_notes(path):
    """A hand-written block of the previous docs/benchmarks.md, carried over."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    i, j = text.find(NOTES_START), text.find(NOTES_END)
    if i < 0 or j < i:
        return ""
    return text[i:j + len(NOTES_END)]


def work_tree():
    """The commit the work tree is at, and whether it had uncommitted changes."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src",
                                "Cargo.toml", "Cargo.lock"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "commit unknown (no git)"
    return f"commit `{head[:80]}`" + (", with uncommitted changes to the source" if dirty else "")


def previous_summary(path):
    """What the "within 10 %" goal compares with: the tracked figures of the results
    JSON at `path` (None if there is none), with its date and commit."""
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    return {"path": path, "started": saved.get("started"), "work_tree": saved.get("work_tree"),
            "machine": saved.get("machine"),
            "figures": tracked_figures(saved.get("results", {}))}


def write_doc(b, path, started, load_before, load_after, elapsed, peers, busy_before=None):
    R = b.results
    a = b.args
    order = [p for p in CORE_PEERS if p in peers]
    v = getattr(b, "versions", None) or versions(b)
    rounds = getattr(a, "rounds", 1) or 1
    L = []
    L.append("# Benchmarks: socialgate beside Squid, tinyproxy, mitmproxy and g3proxy\n")
    L.append("Generated by `scripts/bench/run.sh` (issue 7): every figure below comes from "
             "one run of that script on the machine described here. Goals are "
             "listed under \"Goals\" at the end. Re-run it to refresh this file.\n")
    L.append("## The run\n")
    total = ""
    if getattr(b, "total_s", None):
        total = (f" ({b.total_s / 60:.1f} min with the installs and release "
                 "builds run.sh does first)")
    L.append(f"- Date: {started} (UTC); the measurements took {elapsed / 60:.1f} min{total}.")
    L.append(f"- Machine: {run_machine(b)}.")
    if busy_before is None:
        busy_text = "CPU use before the run was not sampled. "
        other = float(load_before.split()[0]) > 1.0
    else:
        busy_text = (f"CPUs busy in the 2 s before the first measurement: {busy_before:.0f} %. ")
        other = busy_before > 10
    L.append(f"- Load average (1, 5, 15 min) before: {load_before}; after: {load_after} "
             "(both count the benchmark's own work: the release build run.sh does just "
             "before, and the load it makes). " + busy_text
             + ("**Other work was running on the machine when the run started**, so "
                "requests/s and latencies are noisy (±20 % or worse); CPU time per request "
                "is the figure to compare, and ratios are taken within this one run."
                if other
                else "Nothing else was running when the run started; the machine is a shared "
                     "VM, so treat differences under ~10 % as noise."))
    L.append(f"- Pinning: every proxy `taskset -c {PROXY_CPU}`; load generator and upstream "
             f"`taskset -c {LOAD_CPU}`. Each proxy is started afresh for each workload, "
             f"warmed for {a.warmup} s, then measured for {a.duration} s with {a.conns} "
             f"connections. Every oha figure (W1, W1 at half load, W3, T3, W4) is the "
             f"**median of {rounds} rounds** (each round restarts the proxy; the rounds "
             "run one after the other across all peers, so a slow spell of the shared "
             "machine touches every peer; W3 and T3 share their rounds, each peer's T3 "
             "right after its W3); the last column of each table lists the rounds' "
             "requests/s and CPU per request, so their spread shows the noise.")
    if a.nice:
        L.append(f"- Priority: the proxies, the upstream and the load generator run at nice "
                 f"{a.nice}, and so do their sessions' autogroups (`/proc/<pid>/autogroup`), so "
                 "that other people's compilers on the same cores take less of the measured "
                 "cores; they still take some, which is why \"proxy core busy\" stays under "
                 "100 % even where the proxy is the bottleneck.")
    L.append("- Commit measured: socialgate was built (`cargo build --release`) from the work "
             f"tree at the start of the run: {getattr(b, 'work_tree', None) or work_tree()}.")
    L.append("- Peers: " + "; ".join(f"{k}: `{val}`" for k, val in v.items()) + ".")
    L.append("- Proxy CPU per request = (utime + stime of the proxy process and its "
             "children, from `/proc/<pid>/stat`, after − before the measured run) / "
             "successful responses. \"Proxy core busy\" is that CPU time over the wall time: "
             "near 100 % means the proxy was the bottleneck; well under 100 % means the load "
             "generator on the other core was. Peak RSS is `VmHWM` (summed over the process "
             "and its helpers).")
    L.append("")
    L.append("### Configuration\n")
    L.append("- **socialgate**: release build, policy `scripts/bench/policy.yaml` (4 rules; "
             "`localhost` is an intercepted site with activities; 127.0.0.1 is unlisted, so "
             "W1 is forwarded after a decision and W2/M1 are `connect` tunnels that peek at "
             "the first flight). Identity from the `127.0.0.0/8` network entry. "
             "`socialgate` writes the JSON audit log to a file on the same disk (one line per "
             "request, as in production); `socialgate-noaudit` is the same with "
             "`audit: { path: /dev/null }`, closer to Squid's `access_log none`. "
             "Gateway CA: ECDSA P-256, created at first start in a temp dir. Settings:\n")
    L.append("```yaml\n" + re.sub(r"/tmp/socialgate-bench-[^/]+", "$BENCH_DIR",
                                   getattr(b, "sg_settings", "")).strip() + "\n```\n")
    L.append("- **Squid**: `squid -N` with `scripts/bench/squid.conf.in`: a plain port "
             "(W1, W2, M1) and an `ssl-bump` port (`peek step1`, `bump all`, "
             "`generate-host-certificates=on`, `security_file_certgen`, ECDSA P-256 CA made "
             "with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
             "-nodes ...`; certificate store made with `security_file_certgen -c -s "
             "$BENCH_DIR/squid/ssl_db -M 16MB`), `cache deny all`, `access_log none`, `workers 1`, "
             "`hosts_file` mapping `localhost` to 127.0.0.1 only, upstream CA via "
             "`tls_outgoing_options cafile=`.")
    L.append("- **tinyproxy**: `tinyproxy -d` with `scripts/bench/tinyproxy.conf.in` "
             "(`MaxClients 20000`, no Via, log level Critical). Plain HTTP and CONNECT only: "
             "it has no interception, so it is absent from W3/W4.")
    L.append("- **mitmproxy**: `mitmdump -q` with an ECDSA P-256 CA (made with openssl as "
             "for Squid, key and certificate in `mitmproxy-ca.pem`), upstream CA via "
             "`ssl_verify_upstream_trusted_ca`, addon `scripts/bench/mitm_addon.py` mapping "
             "`localhost` to 127.0.0.1; for W2 and M1 `--ignore-hosts '^127\\.0\\.0\\.1:'` "
             "(and T3) so tunnels to the upstream are passed through, not decrypted.")
    L.append("- **g3proxy** (ByteDance's Rust proxy, built by run.sh from the checkout named by "
             "`G3_SRC` with `cargo build --release --locked -p g3proxy --no-default-features "
             "--features rustls-ring`): `g3proxy -c g3proxy.yaml` with "
             "`scripts/bench/g3proxy.yaml.in`: one `http_proxy` server on 127.0.0.1, a "
             "`direct_fixed` escaper allowed to reach 127.0.0.1 only, a hickory resolver (no "
             "name is resolved: W1 and T3 address the upstream by IP), one tokio worker "
             "thread, event logs discarded, no statsd. A plain forward proxy here (no "
             "interception), so only in W1 and T3.")
    L.append("- **Upstream**: `examples/bench_upstream.rs` (hyper 1, rustls): 1 KiB responses, "
             "`/bulk?bytes=N` for W2; HTTP/1.1 and h2 over TLS; ECDSA P-256 certificate.")
    L.append("")

    def section(title, wl, text):
        res = R.get(wl)
        L.append(f"## {title}\n")
        L.append(text + "\n")
        if not res:
            L.append("_Not run._\n")
            return
        L.append(oha_table(res, order))
        L.append("")
        rl = ratio_lines(res, order)
        if rl:
            L.extend(rl)
            L.append("")

    section("W1 — plain HTTP, 1 KiB, keep-alive, 32 connections", "W1",
            f"`oha -c {a.conns} -z {a.duration}s -x http://127.0.0.1:PROXY "
            "http://127.0.0.1:UPSTREAM/`. Goals: ≥ 2× Squid requests/s and ≤ 1/3 of its CPU "
            "per request; CPU per request below g3proxy's.")
    if R.get("W1-half"):
        section(f"W1 at half load — {b.half_rate} req/s (half socialgate's W1 rate)", "W1-half",
                "`oha -q RATE --latency-correction`, same URL. Goal: p99 added latency "
                "(proxy p99 − direct p99) ≤ 0.5 ms.")
    if R.get("W1", {}).get("tinyproxy"):
        L.append("tinyproxy's client errors in W1 are connections it closed after a response "
                 "(oha reports \"connection closed before message completed\" and reconnects): "
                 "tinyproxy does not keep client connections alive the way the others do, so "
                 "it also pays for a new connection per request or so.\n")
    L.append("## W2 — one CONNECT tunnel, bulk\n")
    L.append(f"`curl -p -x http://127.0.0.1:PROXY http://127.0.0.1:UPSTREAM/bulk?bytes="
             f"{a.bulk_bytes}`: {a.bulk_bytes / 2**30:g} GiB of plain HTTP inside one CONNECT "
             f"tunnel (plain, so the proxy's copy loop rather than TLS is measured), median of "
             f"{a.bulk_runs} runs"
             + (" — smaller than the 1 GiB the workload names, to keep the run short"
                if a.bulk_bytes < 2**30 else "")
             + ". Goal: ≥ 0.8× direct.\n")
    w2 = R.get("W2", {})
    if w2:
        L.append("| proxy | MB/s (median) | runs MB/s | × direct | proxy CPU s per GiB | "
                 "peak RSS MiB |\n|---|---:|---|---:|---:|---:|")
        d = w2.get("direct", {}).get("mbps")
        for name in ["direct"] + order:
            r = w2.get(name)
            if not r:
                continue
            L.append(f"| {name} | {fmt(r['mbps'], 0)} | {', '.join(f'{x:.0f}' for x in r['runs'])} "
                     f"| {fmt(ratio(r['mbps'], d), 2)} | {fmt(r['cpu_s_per_gib'], 2)} | "
                     f"{fmt(r['hwm_mib'], 1)} |")
        L.append("")
    else:
        L.append("_Not run._\n")
    section("W3 — intercepted HTTPS, 1 KiB, keep-alive, 32 connections", "W3",
            f"`oha -c {a.conns} -z {a.duration}s -x http://127.0.0.1:PROXY --cacert PROXY_CA "
            "https://localhost:UPSTREAM/` (direct: `https://127.0.0.1:UPSTREAM/`). Leaves are "
            "cached after the warm-up. Goal: ≥ 1.5× Squid ssl-bump requests/s and ≤ 0.3× its "
            "CPU per request.")
    t3 = t3_rows(R)
    L.append("## T3 — the relay floor: W3's requests through a plain CONNECT tunnel\n")
    L.append(f"`oha -c {a.conns} -z {a.duration}s -x http://127.0.0.1:PROXY --cacert UPSTREAM_CA "
             "https://127.0.0.1:UPSTREAM/`: the same TLS keep-alive requests as W3, but the "
             "proxy only relays the bytes of a CONNECT tunnel (127.0.0.1 is unlisted for "
             "socialgate; Squid's plain port; mitmproxy with `--ignore-hosts`; tinyproxy and "
             "g3proxy tunnel everything). That is the four socket calls per request any proxy "
             "makes, and nothing else; W3 − T3 (\"W3-own\") is what interception itself "
             "costs. Goals: CPU per request below g3proxy's; socialgate's W3-own ≤ 0.15× "
             "Squid's.\n")
    if t3:
        L.append(oha_table(t3, order, label="relay only"))
        L.append("")
        rl = ratio_lines(t3, order)
        if rl:
            L.extend(rl)
            L.append("")
    else:
        L.append("_Not run._\n")
    own = own_lines(R, order)
    if own:
        paired = any(v[3] for v in own_costs(R).values())
        L.append("**W3-own** — W3 CPU per request minus T3 CPU per request, per peer that has "
                 + ("both. Within each round a peer's T3 runs right after its W3, so the "
                    "difference is taken round by round and its median is the figure (a "
                    "slow spell of the shared machine then falls on both terms of one "
                    "difference, not on one median only):\n" if paired else
                    "both (medians):\n"))
        L.extend(own)
        L.append("")
    section("W4 — intercepted HTTPS, a new client connection per request", "W4",
            "As W3 with `--disable-keepalive`: every request is a new TCP connection, "
            "CONNECT, TLS handshake with the proxy, and (for the proxies) a new upstream TLS "
            "connection. Goal: ≥ 5× Squid requests/s; ≥ 2,500 handshakes/s per core.")
    L.append("## M1 — memory per idle tunnel\n")
    L.append(f"`scripts/bench/idle_tunnels.py` opens {a.idle} CONNECT tunnels to the plain "
             "upstream port, makes one keep-alive request in each (so every tunnel is "
             "established end to end), and holds them idle. RSS (`VmRSS`) of the proxy after "
             "minus before (after a 50-tunnel warm-up), divided by the tunnels open. "
             "Goal: ≤ 64 KiB per connection (the workload names 10,000 tunnels; "
             f"{a.idle} are used here).\n")
    m1 = R.get("M1", {})
    if m1:
        L.append("| proxy | tunnels open (failed) | RSS before MiB | RSS with tunnels MiB | "
                 "KiB per tunnel | time to open s |\n|---|---:|---:|---:|---:|---:|")
        for name in order:
            r = m1.get(name)
            if not r:
                continue
            L.append(f"| {name} | {r['ok']} ({r['failed']}) | {fmt(r['rss0_mib'], 1)} | "
                     f"{fmt(r['rss1_mib'], 1)} | {fmt(r['kib_per'], 1)} | {fmt(r['open_s'], 1)} |")
        L.append("")
    else:
        L.append("_Not run._\n")
    if R.get("W8") or R.get("W9") or R.get("h2perf"):
        L.append(h2_workloads.section(R))
    L.append("## W5, W6, W7 — criterion benches\n")
    crit = R.get("criterion")
    if crit:
        L.append(f"`cargo bench --bench leaf_mint`, `--bench dlp_scan`, `--bench decide`, each "
                 f"pinned with `taskset -c {PROXY_CPU}` (one thread; wall time = CPU time). "
                 "Median estimate and its upper bound as criterion prints them.\n")
        L.append("| bench | time (median) | throughput |\n|---|---:|---:|")
        for k, c in crit.items():
            t = " ".join(c.get("time", []))
            th = " ".join(c.get("thrpt", [])) if c.get("thrpt") else "–"
            L.append(f"| `{k}` | {t} | {th} |")
        L.append("")
        L.append("W5's second goal (100 concurrent first requests to one host mint exactly "
                 "one leaf) is a correctness property covered by the test suite, not timed "
                 "here; W5's \"10,000 distinct hosts\" is represented by the per-mint cost.\n")
    else:
        L.append("_Not run (`--no-criterion`)._\n")
    L.append("## Goals against this run\n")
    L.append("### Version 2\n")
    L.extend(goal_lines_v2(b))
    L.append("")
    L.append("### Version 1 (kept)\n")
    gl = goal_lines(b)
    L.extend(gl if gl else ["_No goal could be evaluated._"])
    L.append("")
    notes = kept_notes(path)
    if notes:
        L.append(notes)
        L.append("")
    if R.get("perf"):
        L.append("## Where socialgate spends its CPU\n")
        L.append("`perf record -e cpu-clock -F 999 -p <socialgate>` during 8 s of each "
                 "workload (a flat profile: self time per symbol; this VM has no hardware "
                 "counters). Top entries (`perf report --no-children --sort dso,symbol`):\n")
        L.append("How to read the kernel lines: the VM has no PMU, so samples come from a "
                 "timer; a sample due while interrupts are off is taken where they are turned "
                 "back on. `finish_task_switch` and `_raw_spin_unlock_irqrestore` therefore "
                 "stand for the scheduler (a thread going to sleep and being woken: see "
                 "\"context switches/req\" in the tables) and loopback TCP work done in "
                 "softirq context, not for those functions themselves.\n")
        for wl, p in R["perf"].items():
            L.append(f"**{wl}** — by binary, then by symbol\n")
            L.append("```\n" + "\n".join(p["dso"]) + "\n\n" + "\n".join(p["sym"][:25])
                     + "\n```\n")
    if b.notes or b.skipped:
        L.append("## What could not be run or went wrong\n")
        for k, val in b.skipped.items():
            L.append(f"- {k}: {val}")
        for n in b.notes:
            L.append(f"- {n}")
        L.append("")
    L.append("## Exact commands\n")
    L.append("One command runs everything: `scripts/bench/run.sh` (options: "
             "`scripts/bench/run.sh --help`; `--report-only docs/benchmarks.json` "
             "rewrites this file from the saved figures without measuring). It ran the "
             "following (oha, curl and the idle-tunnel client inherit nice "
             f"{a.nice} from the script; `$BENCH_DIR` is its temp dir):\n")
    L.append("```")
    L.append(" ".join(["scripts/bench/run.sh"] + sys.argv[1:]))
    for c in b.commands:
        c = re.sub(r"/tmp/socialgate-bench-[^/ ]+", "$BENCH_DIR", c)
        if not TARGET.startswith(ROOT + "/"):
            c = c.replace(TARGET + "/", "$CARGO_TARGET_DIR/")
        c = c.replace(ROOT + "/", "")
        L.append(c)
    L.append("```\n")
    with open(path, "w") as f:
        f.write("\n".join(L))


def print_tables(b, peers):
    order = [p for p in CORE_PEERS if p in peers]
    for wl in ["W1", "W1-half", "W3", "T3", "W4"]:
        res = t3_rows(b.results) if wl == "T3" else b.results.get(wl)
        if res:
            print(f"\n== {wl}")
            print(oha_table(res, order))
            for ln in ratio_lines(res, order):
                print(ln)
            if wl == "T3":
                for ln in own_lines(b.results, order):
                    print(ln)
    if b.results.get("W2"):
        print("\n== W2 (MB/s, median)")
        for k, r in b.results["W2"].items():
            print(f"  {k:20s} {r['mbps']:8.0f}  cpu s/GiB {fmt(r['cpu_s_per_gib'], 2)}")
    if b.results.get("M1"):
        print("\n== M1 (KiB RSS per idle tunnel)")
        for k, r in b.results["M1"].items():
            print(f"  {k:20s} {fmt(r['kib_per'], 1)}  ({r['ok']} open, {r['failed']} failed)")
    if b.results.get("criterion"):
        print("\n== criterion")
        for k, c in b.results["criterion"].items():
            print(f"  {k:40s} {' '.join(c.get('time', []))}  {' '.join(c.get('thrpt', []))}")
    print("\n== goals (version 2)")
    for ln in goal_lines_v2(b):
        print(ln)
    print("\n== goals (version 1)")
    for ln in goal_lines(b):
        print(ln)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run")
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--bulk-bytes", type=int, default=1 << 30)
    ap.add_argument("--bulk-runs", type=int, default=3)
    ap.add_argument("--idle", type=int, default=5000, help="M1 idle tunnels")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of every oha workload (W1, W1-half, W3, T3, W4; W8/W9 "
                         "take it too); the tables show the medians")
    ap.add_argument("--workloads", default="W1,W2,W3,T3,W4,M1,W8,W9",
                    help="comma-separated; W3 also runs T3 (its relay floor)")
    ap.add_argument("--peers", default=",".join(CORE_PEERS))
    ap.add_argument("--no-criterion", action="store_true")
    ap.add_argument("--nice", type=int, default=-10,
                    help="nice for the proxies and the load (and their sessions); 0: leave")
    ap.add_argument("--perf", action="store_true", help="also profile socialgate with perf")
    ap.add_argument("--oha", default=os.path.join(BENCH, "bin", "oha"))
    ap.add_argument("--mitmdump", default=os.path.join(BENCH, "venv", "bin", "mitmdump"))
    ap.add_argument("--g3proxy", default=os.environ.get("G3PROXY_BIN", ""),
                    help="g3proxy binary (run.sh passes the one it built from G3_SRC); "
                         "without it g3proxy is skipped")
    ap.add_argument("--previous", metavar="RESULTS_JSON",
                    help="results of an earlier run for the \"within 10 %%\" goal (default: "
                         "the results JSON this run overwrites, if there is one)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--report-only", metavar="RESULTS_JSON",
                    help="measure nothing: rewrite --out from a saved results JSON (docs/benchmarks.json)")
    args = ap.parse_args()

    if args.report_only:
        with open(args.report_only) as f:
            saved = json.load(f)
        out, src, prev = args.out, args.report_only, args.previous
        sys.argv = [sys.argv[0]] + saved["argv"]
        args = ap.parse_args()
        args.out, args.report_only, args.previous = out, src, prev
        b = Bench(args)
        os.rmdir(b.dir)
        b.results, b.notes, b.skipped = saved["results"], saved["notes"], saved["skipped"]
        if "T3" not in b.results and t3_rows(b.results):  # results of version 1
            b.results["T3"] = t3_rows(b.results)
            b.results["W3"] = {k: v for k, v in b.results.get("W3", {}).items()
                               if not k.endswith("-tunnel")}
        b.previous, b.work_tree = saved.get("previous"), saved.get("work_tree")
        b.versions = saved.get("versions")
        b.machine = saved.get("machine")
        if args.previous:
            b.previous = previous_summary(args.previous)
        b.commands, b.sg_settings = saved["commands"], saved["sg_settings"]
        if saved.get("half_rate"):
            b.half_rate = saved["half_rate"]
        b.total_s = saved.get("total_s")
        print_tables(b, saved["peers"])
        write_doc(b, args.out, saved["started"], saved["load_before"], saved["load_after"],
                  saved["elapsed"], saved["peers"], saved.get("busy_before"))
        log(f"rewrote {args.out} from {args.report_only}")
        return

    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 65536
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        pass

    if args.nice:
        try:
            os.nice(args.nice)  # inherited by oha, curl and the idle-tunnel client
            set_autogroup_nice(os.getpid(), args.nice)
        except OSError:
            args.nice = 0
    b = Bench(args)
    peers = [p for p in args.peers.split(",") if p]
    for p, ok in [("squid", shutil.which("squid")), ("tinyproxy", shutil.which("tinyproxy")),
                  ("mitmproxy", args.mitmdump and os.path.exists(args.mitmdump))]:
        if p in peers and not ok:
            peers.remove(p)
            b.skipped[p] = "not installed; left out of every workload"
    if "g3proxy" in peers and not (args.g3proxy and os.access(args.g3proxy, os.X_OK)):
        peers.remove("g3proxy")
        b.skipped["g3proxy"] = (f"no binary at {args.g3proxy}" if args.g3proxy else
                                "not built: " + (os.environ.get("G3_SKIP_REASON") or
                                                 "run.sh builds it only when G3_SRC names a g3 "
                                                 "checkout (G3_SRC=/path/to/g3 "
                                                 "scripts/bench/run.sh)"))
        log(f"g3proxy skipped: {b.skipped['g3proxy']}")
    wls = set(args.workloads.split(","))
    if "W3" in wls:
        wls.add("T3")
    # The results JSON this run writes (and the previous one it reads first).
    default_out = os.path.abspath(args.out) == os.path.join(ROOT, "docs", "benchmarks.md")
    results_path = (os.path.join(ROOT, "docs", "benchmarks.json") if default_out
                    else os.path.splitext(args.out)[0] + ".json")
    b.previous = previous_summary(args.previous or results_path)
    b.work_tree = work_tree()
    b.versions = versions(b)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    t0 = time.time()
    load_before = loadavg()
    busy_before = cpu_busy()
    log(f"working in {b.dir}; load average {load_before}; CPUs {busy_before:.0f} % busy")

    def on_signal(signum, frame):
        b.stop_all()
        sys.exit(130)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        b.start_upstream()
        if "W1" in wls:
            b.run_w1(peers)
        if "W2" in wls:
            b.run_w2(peers)
        if "W3" in wls and "T3" in wls:
            b.run_w3_t3(peers)
        elif "W3" in wls:
            b.run_w3(peers, keepalive=True)
        elif "T3" in wls:
            b.run_t3(peers)
        if "W4" in wls:
            b.run_w3(peers, keepalive=False)
        if "M1" in wls:
            b.run_m1(peers)
        h2_workloads.run(b, sys.modules[__name__], wls, peers)
        if args.perf:
            b.run_perf()
        b.stop_all()
        if not args.no_criterion:
            b.run_criterion()
    finally:
        b.stop_all()
    load_after = loadavg()
    elapsed = time.time() - t0
    t_0 = os.environ.get("BENCH_T0", "")
    b.total_s = (time.time() - int(t_0)) if t_0.isdigit() else None
    save = {"total_s": b.total_s, "results": b.results, "notes": b.notes, "skipped": b.skipped,
            "commands": b.commands, "half_rate": getattr(b, "half_rate", None),
            "sg_settings": getattr(b, "sg_settings", ""), "started": started,
            "load_before": load_before, "load_after": load_after, "elapsed": elapsed,
            "busy_before": busy_before, "peers": peers, "argv": sys.argv[1:],
            "work_tree": b.work_tree, "versions": b.versions, "previous": b.previous,
            "machine": machine()}
    # The figures behind docs/benchmarks.md live in docs/benchmarks.json (committed
    # with it, so that the next run, on any machine, compares with them); a run
    # written elsewhere (--out) keeps its own beside it.
    with open(results_path, "w") as f:
        json.dump(save, f, indent=1)
    print_tables(b, peers)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_doc(b, args.out, started, load_before, load_after, elapsed, peers, busy_before)
    log(f"wrote {args.out}; took {elapsed / 60:.1f} min; logs in {b.dir}")


if __name__ == "__main__":
    main()
