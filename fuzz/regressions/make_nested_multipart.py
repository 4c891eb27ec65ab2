#!/usr/bin/env python3
"""Rebuilds the nested-multipart crash inputs of this directory (see README.md).

    python3 fuzz/regressions/make_nested_multipart.py [depth]   # default 15000

Each level is a multipart/mixed part whose only part is the next level; every
level has its own boundary (`<base36>.`, none a line prefix of another). The
body is gzip-encoded, so ~74 KB on the wire decode to ~820 KB.
"""
import gzip
import io
import os
import sys


def b36(i):
    s = ""
    while True:
        s = "0123456789abcdefghijklmnopqrstuvwxyz"[i % 36] + s
        i //= 36
        if i == 0:
            return s


def nested(depth):
    parts = [
        f"--{b36(i)}.\r\nContent-Type: multipart/mixed; boundary={b36(i + 1)}.\r\n\r\n"
        for i in range(depth)
    ]
    parts.append(f"--{b36(depth)}.\r\nContent-Type: text/plain\r\n\r\nJG103782B\r\n")
    return "".join(parts).encode()


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as f:
        f.write(data)
    return buf.getvalue()


depth = int(sys.argv[1]) if len(sys.argv) > 1 else 15000
body = gz(nested(depth))
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "dlp_extract", f"nested-multipart-depth{depth}-gzip"), "wb") as f:
    f.write(b"multipart/form-data; boundary=0.\ngzip\n\n" + body)
with open(
    os.path.join(here, "request_decision", f"linkedin-post-nested-multipart-depth{depth}-gzip"), "wb"
) as f:
    f.write(
        b"POST /voyager/api/contentcreation/normShares HTTP/1.1\r\nHost: www.linkedin.com\r\n"
        b"Content-Type: multipart/form-data; boundary=0.\r\nContent-Encoding: gzip\r\n\r\n" + body
    )
