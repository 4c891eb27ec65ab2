#!/usr/bin/env python3
"""Load and abuse run (`abuse.py sink PORT` runs the upstream in its own process) against a socialgate already listening on --proxy.

While a normal client keeps requesting, this opens N idle CONNECT tunnels (each
sends a real TLS ClientHello, then stays silent), M slowloris connections (a
request head trickled one byte every few seconds), K slow POST bodies (one
byte a second), S stalled scanned posts (--stalled: a second signed-in user,
--stalled-auth, opens intercepted tunnels to --site and POSTs declaring a large
Content-Length, then trickles a byte every 2 s; reopened whenever the gateway
answers or closes) and F sign-in flooders (wrong Basic passwords as fast as the
gateway answers, each from its own 127.0.0.x address, for a real user and for
names that do not exist). It reports the normal client's success rate and
latency (signed in with --normal-auth, so served from the sign-in cache): plain
GETs, and with --site also JSON posts inside intercepted tunnels under a `dlp`
rule (a new tunnel and TLS handshake for each post, trusting --gateway-ca);
the flood's and the stalled posts' answers by status, and the gateway's RSS
growth per open connection (read from /proc/<pid>/status).
Everything stays on 127.0.0.1. Python 3 standard library only.
"""
import argparse
import asyncio
import base64
import json
import ssl
import statistics
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def client_hello(sni):
    """The bytes of a real TLS ClientHello naming `sni` (never completed)."""
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def sink_handler(stats):
    """Upstream: answers HTTP requests with 200 after reading the body, and
    otherwise just holds the connection (for tunnels)."""

    async def handle(reader, writer):
        stats["upstream_conns"] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except Exception:
            pass
        finally:
            writer.close()

    return handle


async def sink_server(host, port, stats, ssl_ctx=None):
    return await asyncio.start_server(sink_handler(stats), host, port, limit=1 << 16,
                                      backlog=4096, ssl=ssl_ctx)


async def open_tunnel(proxy, target, hello, hold, results):
    try:
        r, w = await asyncio.open_connection(*proxy)
        w.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        await w.drain()
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
        if not head.startswith(b"HTTP/1.1 200"):
            results["tunnel_refused"] += 1
            w.close()
            return
        w.write(hello)
        await w.drain()
        results["tunnels_open"] += 1
        hold.append(w)
    except Exception:
        results["tunnel_errors"] += 1


async def slowloris(proxy, duration, results):
    try:
        r, w = await asyncio.open_connection(*proxy)
        results["slowloris_open"] += 1
        head = b"GET http://normal.test/ HTTP/1.1\r\nHost: normal.test\r\nX-Slow: "
        end = time.monotonic() + duration
        i = 0
        while time.monotonic() < end:
            w.write(head[i : i + 1] if i < len(head) else b"a")
            await w.drain()
            i += 1
            await asyncio.sleep(5)
            if r.at_eof():
                break
        results["slowloris_closed_by_gateway"] += 1
        w.close()
    except Exception:
        results["slowloris_closed_by_gateway"] += 1


async def slow_post(proxy, upstream_port, duration, results):
    try:
        r, w = await asyncio.open_connection(*proxy)
        results["slowpost_open"] += 1
        w.write(
            f"POST http://normal.test:{upstream_port}/slow HTTP/1.1\r\nHost: normal.test\r\nContent-Length: 100000\r\n\r\n".encode()
        )
        end = time.monotonic() + duration
        while time.monotonic() < end:
            w.write(b"x")
            await w.drain()
            await asyncio.sleep(1)
        w.close()
    except Exception:
        results["slowpost_errors"] += 1


async def tls_tunnel(proxy, site, auth, ca):
    """A CONNECT tunnel to `site` (host:port) as `auth`, then TLS with the
    gateway trusting only its CA `ca`: (reader, writer)."""
    r, w = await asyncio.wait_for(asyncio.open_connection(*proxy), 5)
    w.write(f"CONNECT {site} HTTP/1.1\r\nHost: {site}\r\n{auth}\r\n".encode())
    await w.drain()
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
    if not head.startswith(b"HTTP/1.1 200"):
        w.close()
        raise ConnectionError(head[:12].decode(errors="replace"))
    await w.start_tls(ca, server_hostname=site.rsplit(":", 1)[0])
    return r, w


POST_JSON = b'{"operationName":"CreateTweet","variables":{"text":"press release"}}'


def post_head(site, length):
    return (f"POST /api/graphql HTTP/1.1\r\nHost: {site}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n").encode()


async def stalled_post(proxy, site, auth, ca, duration, results):
    """Holds a scanned post open: declares 9 MB, sends a byte every 2 s; when the
    gateway answers or closes, counts the status and starts again."""
    end = time.monotonic() + duration
    while time.monotonic() < end:
        status = "error"
        try:
            r, w = await tls_tunnel(proxy, site, auth, ca)
            w.write(post_head(site, 9_000_000) + b"\r\n{")
            await w.drain()
            read = asyncio.ensure_future(r.read(12))
            while time.monotonic() < end and not read.done():
                await asyncio.wait([read], timeout=2)
                if not read.done():
                    w.write(b" ")
                    await w.drain()
            if read.done():
                status = read.result()[9:12].decode() or "closed"
            else:
                read.cancel()
                status = "held"
            w.close()
        except Exception:
            pass
        results["stalled_posts"][status] = results["stalled_posts"].get(status, 0) + 1
        await asyncio.sleep(0.5)


async def normal_poster(proxy, site, auth, ca, duration, interval, results):
    """The press office: a JSON post under a `dlp` rule, each on a new tunnel."""
    lat = []
    ok = fail = 0
    statuses = {}
    end = time.monotonic() + duration
    while time.monotonic() < end:
        t = time.monotonic()
        status = "error"
        try:
            r, w = await tls_tunnel(proxy, site, auth, ca)
            w.write(post_head(site, len(POST_JSON)) + b"Connection: close\r\n\r\n" + POST_JSON)
            await w.drain()
            data = await asyncio.wait_for(r.read(), 5)
            w.close()
            status = data[9:12].decode() or "closed"
        except Exception:
            pass
        statuses[status] = statuses.get(status, 0) + 1
        if status == "200":
            ok += 1
            lat.append((time.monotonic() - t) * 1000)
        else:
            fail += 1
        await asyncio.sleep(interval)
    results["post_ok"] = ok
    results["post_failed"] = fail
    results["post_statuses"] = statuses
    total = ok + fail
    results["post_success_rate"] = round(ok / total, 4) if total else 0
    if lat:
        lat.sort()
        results["post_p50_ms"] = round(statistics.median(lat), 2)
        results["post_p99_ms"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2)
        results["post_max_ms"] = round(lat[-1], 2)


def basic(user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Proxy-Authorization: Basic {token}\r\n"


async def signin_flooder(proxy, upstream_port, n, victim, duration, results):
    """Wrong passwords from 127.0.0.<n+2>: every other one for `victim`, the rest
    for names that do not exist. Counts the gateway's answers by status."""
    end = time.monotonic() + duration
    i = 0
    while time.monotonic() < end:
        i += 1
        user = victim if i % 2 else f"nobody{n}-{i}"
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(
                *proxy, local_addr=(f"127.0.0.{2 + n % 250}", 0)), 5)
            w.write((f"GET http://normal.test:{upstream_port}/ HTTP/1.1\r\nHost: normal.test\r\n"
                     + basic(user, f"guess{i}") + "Connection: close\r\n\r\n").encode())
            await w.drain()
            data = await asyncio.wait_for(r.read(), 30)
            w.close()
            status = data[9:12].decode() or "closed"
        except Exception:
            status = "error"
        results["signin_flood"][status] = results["signin_flood"].get(status, 0) + 1


async def normal_client(proxy, upstream_port, duration, interval, results, auth=""):
    lat = []
    ok = fail = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(*proxy), 5)
            w.write(
                (f"GET http://normal.test:{upstream_port}/ HTTP/1.1\r\nHost: normal.test\r\n"
                 + auth + "Connection: close\r\n\r\n").encode()
            )
            await w.drain()
            data = await asyncio.wait_for(r.read(), 5)
            w.close()
            if data.startswith(b"HTTP/1.1 200"):
                ok += 1
                lat.append((time.monotonic() - t) * 1000)
            else:
                fail += 1
        except Exception:
            fail += 1
        await asyncio.sleep(interval)
    results["normal_ok"] = ok
    results["normal_failed"] = fail
    if lat:
        lat.sort()
        results["normal_p50_ms"] = round(statistics.median(lat), 2)
        results["normal_p99_ms"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2)
        results["normal_max_ms"] = round(lat[-1], 2)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--proxy", default="127.0.0.1:13128")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--upstream-port", type=int, required=True)
    p.add_argument("--tunnels", type=int, default=10000)
    p.add_argument("--slowloris", type=int, default=1000)
    p.add_argument("--slowposts", type=int, default=1000)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--signin-flood", type=int, default=0, help="wrong-password flooders")
    p.add_argument("--victim", default="victim", help="the real user the flood guesses at")
    p.add_argument("--normal-auth", default="", help="user:password of the normal client")
    p.add_argument("--site", default="", help="host:port of an intercepted site with a dlp rule")
    p.add_argument("--gateway-ca", default="", help="the gateway's CA certificate (PEM)")
    p.add_argument("--stalled", type=int, default=0, help="stalled scanned posts")
    p.add_argument("--stalled-auth", default="", help="user:password of the stalling user")
    a = p.parse_args()
    host, port = a.proxy.rsplit(":", 1)
    proxy = (host, int(port))
    results = {k: 0 for k in ["tunnels_open", "tunnel_refused", "tunnel_errors", "slowloris_open",
                              "slowloris_closed_by_gateway", "slowpost_open", "slowpost_errors"]}
    results["signin_flood"] = {}
    results["stalled_posts"] = {}
    rss_before = rss_kib(a.pid)
    auth = basic(*a.normal_auth.split(":", 1)) if a.normal_auth else ""
    if auth:
        # Sign in once before the flood: later requests are cache hits.
        await normal_client(proxy, a.upstream_port, 0.01, 0, {}, auth)
    normal = asyncio.create_task(normal_client(proxy, a.upstream_port, a.duration, 0.1, results, auth))
    posting = []
    if a.site:
        ca = ssl.create_default_context(cafile=a.gateway_ca)
        stall_auth = basic(*a.stalled_auth.split(":", 1))
        posting = [asyncio.create_task(stalled_post(proxy, a.site, stall_auth, ca, a.duration, results))
                   for _ in range(a.stalled)]
        await asyncio.sleep(1)  # the stalled bodies take their budget first
        posting.append(asyncio.create_task(normal_poster(proxy, a.site, auth, ca, a.duration, 0.1, results)))
    flood = [asyncio.create_task(signin_flooder(proxy, a.upstream_port, n, a.victim, a.duration, results))
             for n in range(a.signin_flood)]
    hold = []
    target = f"tunnel.test:{a.upstream_port}"
    hello = client_hello("tunnel.test")  # made once: building an SSL context is slow
    batch = 200
    for i in range(0, a.tunnels, batch):
        await asyncio.gather(*(open_tunnel(proxy, target, hello, hold, results)
                               for _ in range(min(batch, a.tunnels - i))))
    await asyncio.sleep(2)
    rss_tunnels = rss_kib(a.pid)
    abusers = [asyncio.create_task(slowloris(proxy, a.duration, results)) for _ in range(a.slowloris)]
    abusers += [asyncio.create_task(slow_post(proxy, a.upstream_port, a.duration, results)) for _ in range(a.slowposts)]
    await asyncio.sleep(min(20, a.duration / 2))
    rss_peak = rss_kib(a.pid)
    await normal
    await asyncio.gather(*flood)
    await asyncio.gather(*posting)
    for t in abusers:
        t.cancel()
    for w in hold:
        w.close()
    results["rss_before_kib"] = rss_before
    results["rss_with_tunnels_kib"] = rss_tunnels
    results["rss_under_abuse_kib"] = rss_peak
    if results["tunnels_open"]:
        results["rss_per_idle_tunnel_kib"] = round((rss_tunnels - rss_before) / results["tunnels_open"], 2)
    total = results["normal_ok"] + results["normal_failed"]
    results["normal_success_rate"] = round(results["normal_ok"] / total, 4) if total else 0
    print(json.dumps(results, indent=2))


async def sink_main(port, tls=None):
    """The plain sink on `port`; with `tls` (port, cert, key) also a TLS one."""
    stats = {"upstream_conns": 0}
    server = await sink_server("127.0.0.1", port, stats)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[1], tls[2])
        tls_server = await sink_server("127.0.0.1", int(tls[0]), stats, ctx)
        await tls_server.start_serving()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import sys
    if len(sys.argv) in (3, 6) and sys.argv[1] == "sink":
        asyncio.run(sink_main(int(sys.argv[2]), sys.argv[3:] if len(sys.argv) == 6 else None))
    else:
        asyncio.run(main())
