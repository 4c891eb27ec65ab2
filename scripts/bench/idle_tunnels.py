#!/usr/bin/env python3
"""M1 client: open N CONNECT tunnels through a proxy to a plain-HTTP upstream on
127.0.0.1, make one keep-alive request in each (so every tunnel is established end
to end), then hold them all idle. Prints `READY <ok> <failed>` when done and keeps
the tunnels open until stdin closes or a line arrives, then exits.

usage: idle_tunnels.py PROXY_PORT UPSTREAM_PORT COUNT
"""
import asyncio
import sys

PARALLEL = 100


async def one(proxy_port, up_port, held, sem):
    async with sem:
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", proxy_port), 20)
            w.write(f"CONNECT 127.0.0.1:{up_port} HTTP/1.1\r\n"
                    f"Host: 127.0.0.1:{up_port}\r\n\r\n".encode())
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 20)
            if b" 200" not in head.split(b"\r\n", 1)[0]:
                w.close()
                return False
            w.write(f"GET /idle HTTP/1.1\r\nHost: 127.0.0.1:{up_port}\r\n\r\n".encode())
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 20)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await asyncio.wait_for(r.readexactly(length), 20)
            held.append(w)
            return True
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ValueError):
            return False


async def main():
    proxy_port, up_port, count = (int(a) for a in sys.argv[1:4])
    held = []
    sem = asyncio.Semaphore(PARALLEL)
    results = await asyncio.gather(*(one(proxy_port, up_port, held, sem)
                                     for _ in range(count)))
    ok = sum(1 for x in results if x)
    print(f"READY {ok} {count - ok}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    for w in held:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
