#!/usr/bin/env python3
"""Socialgate's CPU per request through a parent Squid against direct upstream:
W1 (plain HTTP GET, keep-alive, to the upstream's IP literal) and W3 (HTTPS GET to
the intercepted site `localhost`, keep-alive), as in docs/benchmarks.md.

Job: start examples/bench_upstream and a Squid parent (plain forward port, no
cache, no access log), then socialgate twice per round, once direct and once
with `upstream.proxy` naming the Squid, and drive each with a small asyncio load
generator (this file; kept-alive connections, one request in flight on each).
Socialgate is pinned to core 1; the upstream, Squid and the load to core 0.
Socialgate's CPU (user + system, from /proc) divided by the requests answered
is the figure; the median over `--rounds` rounds is printed for each workload,
with the rise through the parent (the goal: at most 15 %).

Limits: the load generator is Python, so the request rates are far below
oha's in scripts/bench/run.sh; only socialgate's CPU per request is compared,
and only between the two runs here. Squid's own CPU is not counted. Needs a
release build of socialgate and of the bench_upstream example, and squid; all
traffic stays on 127.0.0.1.

    cargo build --release --locked --bin socialgate --example bench_upstream
    python3 scripts/bench/parent_proxy.py [--target-dir DIR] [--seconds 10] [--rounds 3] [--rate N]
"""
import argparse
import asyncio
import os
import signal
import socket
import ssl
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start(argv, cpu, log, **kw):
    return subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, **kw)


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def worker(kind, gw_port, up_port, ca, deadline, counts, interval):
    reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
    if kind == "W1":
        req = (f"GET http://127.0.0.1:{up_port}/ HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{up_port}\r\n\r\n").encode()
    else:
        writer.write(f"CONNECT localhost:{up_port} HTTP/1.1\r\nHost: localhost:{up_port}\r\n\r\n"
                     .encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        ctx = ssl.create_default_context(cafile=ca)
        ctx.set_alpn_protocols(["http/1.1"])
        await writer.start_tls(ctx, server_hostname="localhost")
        req = f"GET / HTTP/1.1\r\nHost: localhost:{up_port}\r\n\r\n".encode()
    due = time.time()
    while time.time() < deadline:
        if interval:
            due += interval
            pause = due - time.time()
            if pause > 0:
                await asyncio.sleep(pause)
        writer.write(req)
        await writer.drain()
        status = await read_response(reader)
        counts[status] = counts.get(status, 0) + 1
    writer.close()


async def load(kind, gw_port, up_port, ca, seconds, conns, rate=0):
    counts = {}
    deadline = time.time() + seconds
    interval = conns / rate if rate else 0
    await asyncio.gather(*[worker(kind, gw_port, up_port, ca, deadline, counts, interval)
                           for _ in range(conns)])
    return counts


def run_load(kind, gw_port, up_port, ca, seconds, conns, rate=0):
    """Runs the load in a child process pinned to core 0 (at `rate` requests per
    second in all when not 0, else as fast as answers come); returns status counts."""
    code = ("import asyncio,json,sys;sys.path.insert(0,%r);import parent_proxy as p;"
            "print(json.dumps(asyncio.run(p.load(%r,%d,%d,%r,%f,%d,%d))))"
            % (HERE, kind, gw_port, up_port, ca, seconds, conns, rate))
    out = subprocess.run(["taskset", "-c", "0", "python3", "-c", code], capture_output=True,
                         text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    import json
    return {int(k): v for k, v in json.loads(out.stdout).items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR",
                                                           os.path.join(ROOT, "target")))
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--rate", type=int, default=0,
                    help="requests/s in all (0: as fast as possible). CPU per request falls as\n"
                         "the rate rises (more work per wake-up), and Squid on the load's core\n"
                         "caps the parent runs' rate: compare at a rate both reach")
    args = ap.parse_args()
    sg = os.path.join(args.target_dir, "release", "socialgate")
    up_bin = os.path.join(args.target_dir, "release", "examples", "bench_upstream")
    d = tempfile.mkdtemp(prefix="socialgate-parent-bench-")
    os.chmod(d, 0o777)
    log = open(os.path.join(d, "run.log"), "ab")
    up_ca = os.path.join(d, "upstream-ca.pem")
    http_port, https_port = free_port(), free_port()
    procs = []
    try:
        up = start([up_bin, "--http-port", str(http_port), "--https-port", str(https_port),
                    "--ca-out", up_ca], "0", log)
        procs.append(up)
        wait_port(http_port, up)
        wait_port(https_port, up)
        os.chmod(up_ca, 0o644)
        squid_port = free_port()
        with open(os.path.join(d, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n")
        with open(os.path.join(d, "squid.conf"), "w") as f:
            f.write(f"""http_port 127.0.0.1:{squid_port}
acl clients src 127.0.0.0/8
http_access allow clients
http_access deny all
cache deny all
cache_mem 0 MB
access_log none
cache_store_log none
cache_log {d}/cache.log
pid_filename {d}/squid.pid
coredump_dir {d}
workers 1
max_filedescriptors 65536
hosts_file {d}/hosts
dns_nameservers 127.0.0.1
pinger_enable off
icp_port 0
htcp_port 0
via off
forwarded_for delete
shutdown_lifetime 0 seconds
client_idle_pconn_timeout 10 minutes
""")
        squid = start(["squid", "-N", "-f", os.path.join(d, "squid.conf")], "0", log)
        procs.append(squid)
        wait_port(squid_port, squid)

        def gateway(parent):
            name = "parent" if parent else "direct"
            gd = os.path.join(d, name)
            os.makedirs(gd, exist_ok=True)
            port = free_port()
            proxy = f"  proxy: http://127.0.0.1:{squid_port}\n" if parent else ""
            with open(os.path.join(gd, "socialgate.yaml"), "w") as f:
                f.write(f"""listen: 127.0.0.1:{port}
policy: {os.path.join(HERE, "policy.yaml")}
ca: {{ cert: {gd}/ca.crt, key: {gd}/ca.key }}
identity:
  networks:
    - {{ cidr: 127.0.0.0/8, user: bob, groups: [all-staff] }}
upstream:
  extra_roots: [{up_ca}]
  resolve: {{ localhost: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allow_ip_literals: [127.0.0.1/32]
  allowed_ports: [{http_port}, {https_port}]
{proxy}limits:
  max_connections: 30000
audit: {{ path: {gd}/audit.jsonl }}
""")
            p = start([sg, "run", "--config", os.path.join(gd, "socialgate.yaml")], "1", log,
                      cwd=gd, env=dict(os.environ, RUST_LOG="warn"))
            wait_port(port, p)
            return p, port, os.path.join(gd, "ca.crt")

        results = {}
        for r in range(args.rounds):
            for kind in ["W1", "W3"]:
                for parent in [False, True]:
                    p, port, ca = gateway(parent)
                    try:
                        upp = http_port if kind == "W1" else https_port
                        run_load(kind, port, upp, ca, args.warmup, args.conns, args.rate)
                        c0 = cpu_seconds(p.pid)
                        t0 = time.time()
                        counts = run_load(kind, port, upp, ca, args.seconds, args.conns,
                                          args.rate)
                        wall = time.time() - t0
                        c1 = cpu_seconds(p.pid)
                    finally:
                        stop(p)
                    ok = counts.get(200, 0)
                    bad = sum(v for k, v in counts.items() if k != 200)
                    us = (c1 - c0) / ok * 1e6 if ok else float("nan")
                    name = "parent" if parent else "direct"
                    print(f"round {r + 1} {kind} {name}: {ok} ok, {bad} not 200, "
                          f"{ok / wall:.0f} req/s, socialgate {us:.1f} us CPU/request", flush=True)
                    results.setdefault((kind, name), []).append(us)
        print()
        for kind in ["W1", "W3"]:
            direct = statistics.median(results[(kind, "direct")])
            parent = statistics.median(results[(kind, "parent")])
            rise = (parent / direct - 1) * 100
            verdict = "ok" if rise <= 15 else "MISSED"
            print(f"{kind}: direct {direct:.1f} us, through Squid {parent:.1f} us per request "
                  f"(median of {args.rounds}): {rise:+.1f} % ({verdict}, goal <= +15 %)")
    finally:
        for p in reversed(procs):
            stop(p)


if __name__ == "__main__":
    main()
